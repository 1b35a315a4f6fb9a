#!/bin/sh
#
# What can be proven about regress/openbsd without OpenBSD (make regress:
# openbsd-dry):
#
# 1. run.sh parses (sh -n).
# 2. Its dry run (run.sh -n) does things in a safe order: set-up removes an
#    earlier run's leftovers before creating anything; every interface,
#    sysctl, pf anchor, user and daemon it creates is undone by the
#    cleanup that ends `all`; each case stops the daemon it started; no
#    command switches users (the whole driver runs under ${SUDO}); a single
#    case and the crates check do no set-up.
# 3. The Makefile does the right thing under bsd.regress.mk's rules, shown
#    with BSD make -n against a stand-in <bsd.regress.mk> (written below from
#    the interface bsd.regress.mk(5) documents): without root or SUDO only
#    run-crates runs and nothing is set up; with SUDO=doas the driver runs
#    under doas, set-up once before the first case, clean-up at the end;
#    the binary is the build when there is one, else /usr/local/sbin's.
#
# usage: check-dry.sh	(BSD make: bmake, or make on a BSD)

set -u

here=$(cd -- "$(dirname -- "$0")" && pwd)
top=$(cd -- "$here/../.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-dry.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() {
	echo "check-dry: FAIL: $*" >&2
	failed=1
}

# first LINE-REGEX FILE: number of the first line matching, or 0.
first() {
	n=$(grep -n -e "$1" "$2" | head -n 1 | cut -d: -f1)
	echo "${n:-0}"
}
# last LINE-REGEX FILE: number of the last line matching, or 0.
last() {
	n=$(grep -n -e "$1" "$2" | tail -n 1 | cut -d: -f1)
	echo "${n:-0}"
}
# before A B FILE WHY: the first A comes before the last B, both present.
before() {
	a=$(first "$1" "$3")
	b=$(last "$2" "$3")
	if [ "$a" = 0 ] || [ "$b" = 0 ] || [ "$a" -ge "$b" ]; then
		fail "$4 ('$1' at line $a, '$2' at line $b)"
	fi
}

# ------------------------------------------------------------ 1. syntax

sh -n "$here/run.sh" || fail "run.sh: sh -n"
sh -n "$0" || fail "check-dry.sh: sh -n"

# ------------------------------------------------------------ 2. dry run

export FTP_PROXY=/opt/test/ftp-proxy
W=/tmp/ftp-proxy-regress
if ! sh "$here/run.sh" -n all >"$tmp/all" 2>&1; then
	cat "$tmp/all" >&2
	fail "run.sh -n all failed"
fi
grep -q '^+ ' "$tmp/all" || fail "run.sh -n all printed no commands"

# Leftovers first: the first destroy of each interface precedes its create.
for i in pair90 pair91 pair92 pair93; do
	before "^+ ifconfig $i destroy\$" "^+ ifconfig $i create\$" "$tmp/all" \
		"set-up does not remove a leftover $i before creating it"
	# and the cleanup at the end destroys it again.
	before "^+ ifconfig $i create\$" "^+ ifconfig $i destroy\$" "$tmp/all" \
		"$i is not destroyed after the cases"
done
for i in lo91 lo92; do
	before "^+ ifconfig pair93 create\$" "^+ ifconfig $i destroy\$" "$tmp/all" \
		"rdomain loopback $i is not destroyed at the end"
done
before '^+ useradd ' '^+ userdel ftpregress$' "$tmp/all" "the test user is not removed"
before '^+ userdel ftpregress$' '^+ useradd ' "$tmp/all" "a leftover test user is not removed first"
before "^+ sysctl -n net.inet.ip.forwarding > $W/forwarding4\$" \
	'^+ sysctl -q net.inet.ip.forwarding=1$' "$tmp/all" "forwarding is set before its old value is saved"
before '^+ sysctl -q net.inet.ip.forwarding=1$' \
	"^+ sysctl -q net.inet.ip.forwarding=\$(cat $W/forwarding4)\$" "$tmp/all" \
	"IPv4 forwarding is not put back"
before '^+ sysctl -q net.inet6.ip6.forwarding=1$' \
	"^+ sysctl -q net.inet6.ip6.forwarding=\$(cat $W/forwarding6)\$" "$tmp/all" \
	"IPv6 forwarding is not put back"
before "^+ pfctl -a regress -s rules > $W/anchor.saved\$" \
	"^+ pfctl -a regress -f $W/anchor.conf\$" "$tmp/all" "the anchor is loaded before its rules are saved"
before "^+ pfctl -a regress -f $W/anchor.conf\$" '^+ pfctl -a regress -F rules$' "$tmp/all" \
	"the anchor is not flushed at the end"
before '^+ route -T 92 exec /usr/libexec/ftpd -D -6$' '^+ kill \$(pgrep -T 92)$' "$tmp/all" \
	"ftpd is not stopped at the end"
before '^+ mkdir -p /tmp/ftp-proxy-regress/home$' "^+ rm -rf $W\$" "$tmp/all" \
	"the work directory is not removed at the end"

# Each case: its own daemon, the one under test, stopped by the case.
for c in passive-inet active-inet passive-inet6 active-inet6; do
	before "^+ /opt/test/ftp-proxy -d -D 7 .* > $W/$c/proxy.log 2>&1 &\$" \
		"^+ kill \$(cat $W/$c/proxy.pid)\$" "$tmp/all" "case $c does not stop its daemon"
	before "^+ kill \$(cat $W/$c/proxy.pid)\$" '^+ userdel ftpregress$' "$tmp/all" \
		"case $c stops its daemon only in the final cleanup"
	before "^+ trap 'stop_proxy $W/$c' EXIT\$" "^+ route -T 91 exec ftp .* $W/$c/ftp.log 2>&1\$" \
		"$tmp/all" "case $c has no trap to stop its daemon whatever fails"
done
[ "$(grep -c '^+ /opt/test/ftp-proxy ' "$tmp/all")" = 4 ] ||
	fail "want 4 daemons started (one per case) from \$FTP_PROXY"
if grep -E '(^|[ (])(doas|sudo|su) ' "$tmp/all" >&2; then
	fail "the driver switches users itself; it must run under \${SUDO} as a whole"
fi

# One case alone, and the crates: no set-up.
sh "$here/run.sh" -n passive-inet >"$tmp/case" 2>&1 || fail "run.sh -n passive-inet failed"
if grep -q -e ' create$' -e '^+ useradd ' "$tmp/case"; then
	fail "run.sh passive-inet sets up the network itself"
fi
sh "$here/run.sh" -n crates >"$tmp/crates" 2>&1 || fail "run.sh -n crates failed"
[ "$(grep -c '^+ ' "$tmp/crates")" = 1 ] && grep -q 'update-crates --check$' "$tmp/crates" ||
	fail "run.sh -n crates does more than port/update-crates --check: $(cat "$tmp/crates")"

# Without FTP_PROXY and without a build: the installed binary.
mkdir -p "$tmp/tree/regress/openbsd"
cp "$here/run.sh" "$here/Makefile" "$tmp/tree/regress/openbsd/"
unset FTP_PROXY
sh "$tmp/tree/regress/openbsd/run.sh" -n passive-inet >"$tmp/installed" 2>&1
grep -q '^+ /usr/local/sbin/ftp-proxy -d ' "$tmp/installed" ||
	fail "without a build run.sh does not use /usr/local/sbin/ftp-proxy"

# ------------------------------------------------------------ 3. make -n

BSDMAKE=
if command -v bmake >/dev/null 2>&1; then
	BSDMAKE=bmake
elif [ "$(uname -s)" = OpenBSD ] || [ "$(uname -s)" = NetBSD ]; then
	BSDMAKE=make
fi
if [ -z "$BSDMAKE" ]; then
	echo "no BSD make (bmake): the Makefile part is not checked" |
		tee "${REGRESS_SKIP_FILE:-/dev/null}"
	exit $failed
fi

# The stand-in: bsd.regress.mk(5)'s interface, as far as the Makefile uses
# it. Root-ness comes from STUB_UID (id -u), which a test overrides.
mkdir -p "$tmp/mk"
: >"$tmp/mk/sys.mk"
cat >"$tmp/mk/bsd.regress.mk" <<'EOF'
# Stand-in for <bsd.regress.mk>: REGRESS_TARGETS run in order through
# ${MAKE}; REGRESS_ROOT_TARGETS are skipped unless root or SUDO is set;
# REGRESS_SETUP_ONCE is made first and every target depends on it;
# REGRESS_CLEANUP is made at the end.
REGRESS_SKIP_TARGETS ?=
REGRESS_SETUP_ONCE ?=
REGRESS_CLEANUP ?=
SUDO ?=
STUB_UID != id -u
.if defined(REGRESS_ROOT_TARGETS) && ${STUB_UID} != 0 && empty(SUDO)
REGRESS_SKIP_TARGETS += ${REGRESS_ROOT_TARGETS}
.endif
.if !empty(REGRESS_SETUP_ONCE)
${REGRESS_TARGETS}: ${REGRESS_SETUP_ONCE}
.endif
all: regress
regress:
.for t in ${REGRESS_SETUP_ONCE}
	+${MAKE} -C ${.CURDIR} ${t}
.endfor
.for t in ${REGRESS_TARGETS}
.  if ${REGRESS_SKIP_TARGETS:M${t}}
	@echo SKIP ${t}
.  else
	+${MAKE} -C ${.CURDIR} ${t}
.  endif
.endfor
.for t in ${REGRESS_CLEANUP}
	+${MAKE} -C ${.CURDIR} ${t}
.endfor
EOF

# bsdmake OUT DIR ARGS...: make regress in DIR with the stand-in, objects
# (the set-up stamp) in a scratch directory. With -n among ARGS nothing is
# run but the recursive makes (+ in the stand-in).
bsdmake() {
	out=$1 dir=$2
	shift 2
	rm -rf "$tmp/obj"
	mkdir "$tmp/obj"
	if ! (cd "$dir" && MAKEFLAGS= MAKEOBJDIR="$tmp/obj" \
	    $BSDMAKE -m "$tmp/mk" "$@" regress) >"$out" 2>&1; then
		cat "$out" >&2
		fail "$BSDMAKE $* regress failed"
	fi
}

# Not root, no SUDO (make -n): the crates only; no set-up, no case.
bsdmake "$tmp/user" "$here" -n STUB_UID=1000
grep -q "run.sh crates\$" "$tmp/user" || fail "without root run-crates does not run"
if grep -q -e 'run.sh setup$' -e 'run.sh passive-inet$' "$tmp/user"; then
	fail "without root or SUDO the network set-up or a case would run:"
	cat "$tmp/user" >&2
fi
grep -q 'SKIP run-passive-inet$' "$tmp/user" || fail "without root the root cases are not skipped"

# SUDO: a stand-in doas that only logs what it is asked to run, so the
# Makefile really runs (stamps and all) and the log shows the order.
printf '#!/bin/sh\nprintf "%%s\\n" "doas $*" >>"%s"\n' "$tmp/doas.log" >"$tmp/doas"
chmod 755 "$tmp/doas"
: >"$tmp/doas.log"
bsdmake "$tmp/doas.out" "$here" STUB_UID=1000 SUDO="$tmp/doas"
drv="^doas env FTP_PROXY=[^ ]* sh $here/run.sh"
[ "$(grep -c "$drv setup\$" "$tmp/doas.log")" = 1 ] ||
	fail "with SUDO set-up does not run exactly once under it: $(cat "$tmp/doas.log")"
before "$drv setup\$" "$drv passive-inet\$" "$tmp/doas.log" "set-up does not precede the first case"
before "$drv active-inet6\$" "$drv cleanup\$" "$tmp/doas.log" "clean-up does not follow the last case"
for c in passive-inet active-inet passive-inet6 active-inet6; do
	grep -q "$drv $c\$" "$tmp/doas.log" || fail "case $c is not run under SUDO"
done
grep -q "run.sh crates" "$tmp/doas.log" && fail "run-crates runs under SUDO"
grep -q "update-crates: ok" "$tmp/doas.out" || fail "run-crates did not run port/update-crates --check"
if [ -x "$top/target/release/ftp-proxy" ]; then
	grep -q "^doas env FTP_PROXY=$top/regress/openbsd/../../target/release/ftp-proxy " "$tmp/doas.log" ||
		fail "with a build in target/release the Makefile does not test it"
fi
[ ! -e "$tmp/obj/stamp-setup" ] || fail "stamp-setup left after cleanup"

# No build beside the Makefile: the installed binary.
bsdmake "$tmp/pkg" "$tmp/tree/regress/openbsd" -n SUDO=doas
grep -q '^doas env FTP_PROXY=/usr/local/sbin/ftp-proxy sh ' "$tmp/pkg" ||
	fail "without a build the Makefile does not test /usr/local/sbin/ftp-proxy"

[ $failed = 0 ] && echo "check-dry: ok (sh -n, run.sh -n, $BSDMAKE -n with a stand-in bsd.regress.mk)"
exit $failed
