#!/bin/sh
#
# OpenBSD end-to-end regress for ftp-proxy: real pf, ftpd(8) and ftp(1).
#
#   sh regress/openbsd/run.sh [all]              set up, every case, clean up
#   sh regress/openbsd/run.sh setup|cleanup      (for bsd.regress.mk's
#   sh regress/openbsd/run.sh <case>              REGRESS_SETUP_ONCE etc.)
#
# Cases: passive-inet active-inet passive-inet6 active-inet6, and crates
# (port/crates.inc matches Cargo.lock; needs no root).
#
# Needs root, or SUDO=doas (commands that need root are run through it),
# pf enabled, and an `anchor "regress"` line in the main ruleset, as
# regress/sys/net/pf_divert does: the harness loads its rules only into
# that anchor and never touches the main ruleset. Everything it changes is
# put back by cleanup: the anchor's previous rules, the forwarding sysctls,
# the interfaces and routing domains it made, the test account.
#
# Topology, all on this host, with pf filtering between routing domains:
#
#   client (rdomain 91)                firewall (rdomain 0)         server (rdomain 92)
#   pair90 10.254.91.2 --- pair91 10.254.91.1   pair92 10.254.92.1 --- pair93 10.254.92.2
#          fd00:fe91::2           fd00:fe91::1         fd00:fe92::1           fd00:fe92::2
#
# The client reaches the server only through the firewall; the server has
# no route back to the client at all, so every data connection works only
# through the proxy's pinhole (rdr-to and nat-to), never around it. The
# control connection is diverted to ftp-proxy on 127.0.0.1/::1 port 8021.
#
# Each case checks: the file arrives intact (sha256); while the session is
# still open, `pfctl -a ftp-proxy/<pid>.<id> -sr` shows exactly the two rules
# the daemon logged as its own rendering (`#<id> rules: …` at -D 7); after
# the session the anchor is gone.

set -eu

here=$(cd -- "$(dirname -- "$0")" && pwd)
top=$(cd -- "$here/../.." && pwd)
SUDO=${SUDO:-}
FTP_PROXY=${FTP_PROXY:-$top/target/release/ftp-proxy}
ANCHOR=${REGRESS_ANCHOR:-regress}
WORK=${REGRESS_WORK:-/tmp/ftp-proxy-regress}
USER_NAME=ftpregress
# Fixed so cleanup finds everything again from a fresh shell.
CLIENT_RD=91 SERVER_RD=92
C_IF=pair90 FWC_IF=pair91 FWS_IF=pair92 S_IF=pair93
C4=10.254.91.2 FWC4=10.254.91.1 FWS4=10.254.92.1 S4=10.254.92.2
C6=fd00:fe91::2 FWC6=fd00:fe91::1 FWS6=fd00:fe92::1 S6=fd00:fe92::2
PORT=8021

say() { printf '%s\n' "$*"; }
fail() { say "FAIL: $*" >&2; exit 1; }
# bsd.regress.mk reports a target that prints SKIPPED as SKIP.
skip() {
	say "$*"
	say SKIPPED
	exit 0
}
as_root() { $SUDO "$@"; }

# ---------------------------------------------------------------- checks

preconditions() {
	[ "$(uname -s)" = OpenBSD ] || skip "OpenBSD only"
	if [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; then
		skip "needs root or SUDO=doas"
	fi
	[ -x "$FTP_PROXY" ] || fail "$FTP_PROXY missing: run 'cargo build --release' first"
	for t in pfctl ifconfig route sysctl ftp sha256 encrypt useradd userdel; do
		command -v "$t" >/dev/null 2>&1 || fail "$t not found"
	done
	[ -x /usr/libexec/ftpd ] || fail "/usr/libexec/ftpd not found"
	as_root pfctl -s info | grep -q '^Status: Enabled' ||
		skip "pf is disabled (pfctl -e)"
	as_root pfctl -s rules | grep -q "^anchor \"$ANCHOR\"" ||
		skip "the main ruleset has no 'anchor \"$ANCHOR\"' line to load into"
}

# ---------------------------------------------------------------- setup

setup() {
	preconditions
	for i in $C_IF $FWC_IF $FWS_IF $S_IF; do
		if ifconfig "$i" >/dev/null 2>&1; then
			fail "$i exists already; run '$0 cleanup' or pick other names"
		fi
	done
	as_root rm -rf "$WORK"
	as_root mkdir -p "$WORK/home"
	as_root chmod 755 "$WORK"

	# Anything the admin had in the anchor comes back at cleanup.
	as_root pfctl -a "$ANCHOR" -s rules >"$WORK/anchor.saved" 2>/dev/null ||
		: >"$WORK/anchor.saved"
	sysctl -n net.inet.ip.forwarding >"$WORK/forwarding4"
	sysctl -n net.inet6.ip6.forwarding >"$WORK/forwarding6"

	as_root ifconfig $C_IF create rdomain $CLIENT_RD
	as_root ifconfig $FWC_IF create
	as_root ifconfig $FWS_IF create
	as_root ifconfig $S_IF create rdomain $SERVER_RD
	as_root ifconfig $C_IF inet $C4/24 up
	as_root ifconfig $C_IF inet6 $C6/64
	as_root ifconfig $FWC_IF inet $FWC4/24 up
	as_root ifconfig $FWC_IF inet6 $FWC6/64
	as_root ifconfig $FWS_IF inet $FWS4/24 up
	as_root ifconfig $FWS_IF inet6 $FWS6/64
	as_root ifconfig $S_IF inet $S4/24 up
	as_root ifconfig $S_IF inet6 $S6/64
	as_root ifconfig $C_IF patch $FWC_IF
	as_root ifconfig $FWS_IF patch $S_IF
	as_root route -qn -T $CLIENT_RD add -inet default $FWC4 >/dev/null
	as_root route -qn -T $CLIENT_RD add -inet6 default $FWC6 >/dev/null
	as_root sysctl -q net.inet.ip.forwarding=1
	as_root sysctl -q net.inet6.ip6.forwarding=1
	sleep 2	# IPv6 duplicate address detection

	# pf: the proxy's anchors (absolute path: we are inside "$ANCHOR"), the
	# divert of the control connections, the proxy's own control
	# connections, and the two end hosts' interfaces. No rule passes data
	# connections: only the pinholes do.
	as_root pfctl -a "$ANCHOR" -f - <<-EOF
		anchor "/ftp-proxy/*"
		pass in quick on $FWC_IF inet proto tcp to port 21 divert-to 127.0.0.1 port $PORT
		pass in quick on $FWC_IF inet6 proto tcp to port 21 divert-to ::1 port $PORT
		pass out quick on $FWS_IF proto tcp from ($FWS_IF) to port 21
		pass quick on { $C_IF $S_IF } all
		pass quick on { $FWC_IF $FWS_IF } inet6 proto icmp6 all
		block quick on { $FWC_IF $FWS_IF } all
	EOF

	# The FTP account: a password login (anonymous FTP would need the
	# system's "ftp" account and its home).
	pw=regress-$$
	printf '%s\n' "$pw" >"$WORK/password"
	as_root useradd -d "$WORK/home" -s /bin/sh -c "ftp-proxy regress" \
		-p "$(encrypt "$pw")" $USER_NAME
	as_root dd if=/dev/random of="$WORK/home/data.bin" bs=64k count=64 2>/dev/null
	as_root chown -R $USER_NAME "$WORK/home"
	as_root sha256 -q "$WORK/home/data.bin" >"$WORK/data.sha256"

	# ftpd in the server's rdomain, one per family; ftp-proxy in rdomain 0.
	as_root route -T $SERVER_RD exec /usr/libexec/ftpd -D -4
	as_root route -T $SERVER_RD exec /usr/libexec/ftpd -D -6
	pgrep -T $SERVER_RD -x ftpd >"$WORK/ftpd.pids" ||
		fail "ftpd did not start"

	start_proxy inet -b 127.0.0.1
	start_proxy inet6 -6 -b ::1
	sleep 1
}

# start_proxy <name> <flags>: foreground (-d), everything logged (-D 7).
start_proxy() {
	name=$1
	shift
	as_root sh -c "exec '$FTP_PROXY' -d -D 7 $* -p $PORT >'$WORK/proxy-$name.log' 2>&1 & echo \$! >'$WORK/proxy-$name.pid'"
	sleep 1
	pid=$(cat "$WORK/proxy-$name.pid")
	as_root kill -0 "$pid" 2>/dev/null || {
		cat "$WORK/proxy-$name.log" >&2
		fail "ftp-proxy ($name) did not start"
	}
}

# ---------------------------------------------------------------- a case

# run_case <passive|active> <inet|inet6>
run_case() {
	mode=$1 family=$2
	[ -s "$WORK/data.sha256" ] || fail "not set up: run '$0 setup' first"
	case $family in
	inet) server=$S4 ;;
	inet6) server=$S6 ;;
	esac
	case $mode in
	passive) passive=on ;;
	active) passive=off ;;
	esac
	pid=$(cat "$WORK/proxy-$family.pid")
	log=$WORK/proxy-$family.log
	out=$WORK/$mode-$family
	as_root rm -rf "$out"
	as_root mkdir -p "$out"

	# ftp(1) in the client's rdomain. After the transfer, while the
	# session is still open, a shell escape captures the pinhole's anchor.
	as_root route -T $CLIENT_RD exec ftp -n -v "$server" >"$out/ftp.log" 2>&1 <<-EOF
		user $USER_NAME $(cat "$WORK/password")
		binary
		passive $passive
		get data.bin $out/data.bin
		!sh $here/run.sh capture $pid $out
		quit
	EOF

	# 1. The data arrived intact.
	[ -f "$out/data.bin" ] || { cat "$out/ftp.log" >&2; fail "$mode $family: no file"; }
	got=$(sha256 -q "$out/data.bin")
	[ "$got" = "$(cat "$WORK/data.sha256")" ] || fail "$mode $family: sha256 differs"

	# 2. pf showed the rules the daemon said it installed: its last
	# "#<id> rules:" pair, for the session the anchor belongs to.
	[ -s "$out/anchor" ] || fail "$mode $family: no ftp-proxy/$pid.* anchor during the session"
	id=$(sed 's/^.*\.//' "$out/anchor")
	grep "^#$id rules: " "$log" | tail -n 2 | sed "s/^#$id rules: //" >"$out/rules.daemon"
	[ -s "$out/rules.daemon" ] || fail "$mode $family: the daemon logged no '#$id rules:' lines"
	if ! diff -u "$out/rules.daemon" "$out/rules.pfctl"; then
		fail "$mode $family: pfctl and the daemon's rendering differ"
	fi
	grep -q " rdr-to " "$out/rules.pfctl" && grep -q " nat-to " "$out/rules.pfctl" ||
		fail "$mode $family: the anchor lacks the rdr-to/nat-to pair"

	# 3. The session's end emptied the anchor and pf removed it.
	sleep 1
	if as_root pfctl -a ftp-proxy -s Anchors 2>/dev/null | grep -q "ftp-proxy/$pid\.$id\$"; then
		fail "$mode $family: anchor ftp-proxy/$pid.$id left behind"
	fi
	say "ok: $mode $family ($(wc -l <"$out/rules.pfctl" | tr -d ' ') rules, sha256 match)"
}

# capture <pid> <dir>: called from ftp(1)'s shell escape mid-session.
capture() {
	pid=$1 dir=$2
	a=$(as_root pfctl -a ftp-proxy -s Anchors 2>/dev/null |
		sed 's/^ *//' | grep "^ftp-proxy/$pid\." | tail -n 1) || true
	printf '%s\n' "$a" >"$dir/anchor"
	[ -n "$a" ] || return 0
	as_root pfctl -a "$a" -s rules >"$dir/rules.pfctl"
}

# ---------------------------------------------------------------- cleanup

cleanup() {
	set +e
	for name in inet inet6; do
		f=$WORK/proxy-$name.pid
		if [ -s "$f" ]; then
			as_root kill "$(cat "$f")" 2>/dev/null
		fi
	done
	if [ -s "$WORK/ftpd.pids" ]; then
		as_root kill $(cat "$WORK/ftpd.pids") 2>/dev/null
	fi
	sleep 1
	# The daemons remove their anchors on SIGTERM; check that they did.
	for name in inet inet6; do
		f=$WORK/proxy-$name.pid
		[ -s "$f" ] || continue
		left=$(as_root pfctl -a ftp-proxy -s Anchors 2>/dev/null |
			grep -c "ftp-proxy/$(cat "$f")\.")
		[ "$left" = 0 ] || say "WARNING: $left anchors of ftp-proxy ($name) left" >&2
	done
	if [ -f "$WORK/anchor.saved" ]; then
		as_root pfctl -a "$ANCHOR" -F rules >/dev/null 2>&1
		[ -s "$WORK/anchor.saved" ] &&
			as_root pfctl -a "$ANCHOR" -f "$WORK/anchor.saved"
	fi
	[ -s "$WORK/forwarding4" ] &&
		as_root sysctl -q net.inet.ip.forwarding="$(cat "$WORK/forwarding4")"
	[ -s "$WORK/forwarding6" ] &&
		as_root sysctl -q net.inet6.ip6.forwarding="$(cat "$WORK/forwarding6")"
	for i in $C_IF $FWC_IF $FWS_IF $S_IF; do
		ifconfig "$i" >/dev/null 2>&1 && as_root ifconfig "$i" destroy
	done
	# The rdomains' loopbacks appear with the first interface moved in.
	for i in lo$CLIENT_RD lo$SERVER_RD; do
		ifconfig "$i" >/dev/null 2>&1 && as_root ifconfig "$i" destroy
	done
	id $USER_NAME >/dev/null 2>&1 && as_root userdel $USER_NAME
	as_root rm -rf "$WORK"
	return 0
}

# ---------------------------------------------------------------- main

case ${1:-all} in
all)
	preconditions
	trap cleanup EXIT
	setup
	failed=0
	for c in passive-inet active-inet passive-inet6 active-inet6; do
		(run_case ${c%-*} ${c#*-}) || failed=$((failed + 1))
	done
	sh "$top/port/update-crates" --check || failed=$((failed + 1))
	[ $failed = 0 ] || fail "$failed case(s) failed"
	;;
setup) setup ;;
cleanup) cleanup ;;
capture) capture "$2" "$3" ;;
passive-inet | active-inet | passive-inet6 | active-inet6)
	preconditions
	run_case ${1%-*} ${1#*-}
	;;
crates) sh "$top/port/update-crates" --check ;;
*)
	say "usage: run.sh [all | setup | cleanup | crates | {passive,active}-{inet,inet6}]" >&2
	exit 2
	;;
esac
