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
#    case does no set-up; the daemons listen on port 18021, not 8021.
# 3. The Makefile does the right thing under bsd.regress.mk's rules, shown
#    with BSD make against a stand-in <bsd.regress.mk> (written below from
#    the interface bsd.regress.mk(5) documents and rev 1.28's behaviour):
#    without root or SUDO nothing runs and nothing is set up; with
#    SUDO=doas the driver runs under doas, set-up once before the first
#    case, clean-up at the end; a case that fails cleans up at once, both
#    when make stops there (REGRESS_FAIL_EARLY, the default) and when it
#    goes on (then the next case sets up again); the binary is
#    /usr/local/sbin's unless FTP_PROXY names another.
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
[ "$(grep -c '^+ /opt/test/ftp-proxy .* -p 18021 ' "$tmp/all")" = 4 ] ||
	fail "the daemons do not listen on port 18021"
[ "$(grep -c 'divert-to .* port 18021$' "$tmp/all")" = 2 ] ||
	fail "the divert-to rules do not name port 18021"
if grep -E '(^|[ (])(doas|sudo|su) ' "$tmp/all" >&2; then
	fail "the driver switches users itself; it must run under \${SUDO} as a whole"
fi

# One case alone: no set-up.
sh "$here/run.sh" -n passive-inet >"$tmp/case" 2>&1 || fail "run.sh -n passive-inet failed"
if grep -q -e ' create$' -e '^+ useradd ' "$tmp/case"; then
	fail "run.sh passive-inet sets up the network itself"
fi
grep -q 'update-crates' "$tmp/all" && fail "run.sh all runs the crates check (crates-inc's job, unprivileged)"

# Without FTP_PROXY: the installed binary, even with a build beside it.
unset FTP_PROXY
sh "$here/run.sh" -n passive-inet >"$tmp/installed" 2>&1
grep -q '^+ /usr/local/sbin/ftp-proxy -d ' "$tmp/installed" ||
	fail "without FTP_PROXY run.sh does not use /usr/local/sbin/ftp-proxy"

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
# REGRESS_CLEANUP is made at the end. As in rev 1.28, REGRESS_FAIL_EARLY
# defaults to yes when REGRESS_LOG is /dev/null (the default), and then
# the first failing target stops make before REGRESS_CLEANUP.
REGRESS_LOG ?= /dev/null
.if ${REGRESS_LOG} != "/dev/null"
REGRESS_FAIL_EARLY ?= no
.endif
REGRESS_FAIL_EARLY ?= yes
.if ${REGRESS_FAIL_EARLY} != no
_SKIP_FAIL =
.else
_SKIP_FAIL = -
.endif
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
	${_SKIP_FAIL}+${MAKE} -C ${.CURDIR} ${t}
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

# Not root, no SUDO (make -n): no set-up, no case.
bsdmake "$tmp/user" "$here" -n STUB_UID=1000
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
grep -q "^doas env FTP_PROXY=/usr/local/sbin/ftp-proxy sh " "$tmp/doas.log" ||
	fail "without FTP_PROXY the Makefile does not test /usr/local/sbin/ftp-proxy"
[ ! -e "$tmp/obj/stamp-setup" ] || fail "stamp-setup left after cleanup"

# FTP_PROXY names the build: that one.
bsdmake "$tmp/build" "$here" -n SUDO=doas FTP_PROXY=/opt/build/ftp-proxy
grep -q '^doas env FTP_PROXY=/opt/build/ftp-proxy sh ' "$tmp/build" ||
	fail "FTP_PROXY=/opt/build/ftp-proxy is not the binary tested"

# A failing case: a stand-in doas that fails the driver's active-inet.
printf '#!/bin/sh\nprintf "%%s\\n" "doas $*" >>"%s"\n[ "$5" != active-inet ]\n' \
	"$tmp/doas.log" >"$tmp/doas"
# bsdmake_fails OUT ARGS...: as bsdmake, but make must fail.
bsdmake_fails() {
	out=$1
	shift
	rm -rf "$tmp/obj"
	mkdir "$tmp/obj"
	if (cd "$here" && MAKEFLAGS= MAKEOBJDIR="$tmp/obj" \
	    $BSDMAKE -m "$tmp/mk" "$@" regress) >"$out" 2>&1; then
		cat "$out" >&2
		fail "$BSDMAKE $* regress succeeded with a failing case"
	fi
}
# REGRESS_FAIL_EARLY by default: make stops at active-inet, before
# REGRESS_CLEANUP, and the case itself has cleaned up.
: >"$tmp/doas.log"
bsdmake_fails "$tmp/early.out" STUB_UID=1000 SUDO="$tmp/doas"
before "$drv active-inet\$" "$drv cleanup\$" "$tmp/doas.log" \
	"a failing case does not clean up when make stops early"
grep -q "$drv passive-inet6\$" "$tmp/doas.log" &&
	fail "REGRESS_FAIL_EARLY is not the default: make went on after a failure"
[ ! -e "$tmp/obj/stamp-setup" ] || fail "stamp-setup left after a failing case"
# REGRESS_FAIL_EARLY=no: the next case sets up again; clean-up at the end.
: >"$tmp/doas.log"
bsdmake "$tmp/late.out" "$here" STUB_UID=1000 SUDO="$tmp/doas" REGRESS_FAIL_EARLY=no
[ "$(grep -c "$drv setup\$" "$tmp/doas.log")" = 2 ] ||
	fail "after a failing case the next one does not set up again: $(cat "$tmp/doas.log")"
before "$drv active-inet\$" "$drv passive-inet6\$" "$tmp/doas.log" "the cases after a failure do not run"
[ "$(grep -c "$drv cleanup\$" "$tmp/doas.log")" = 2 ] ||
	fail "want a clean-up after the failing case and one at the end: $(cat "$tmp/doas.log")"
grep -v '^#' "$here/Makefile" | grep -q 'REGRESS_FAIL_EARLY' &&
	fail "the Makefile sets REGRESS_FAIL_EARLY (the caller's choice)"

[ $failed = 0 ] && echo "check-dry: ok (sh -n, run.sh -n, $BSDMAKE -n with a stand-in bsd.regress.mk)"
exit $failed
