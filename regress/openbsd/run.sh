#!/bin/sh
#
# OpenBSD end-to-end regress for ftp-proxy: real pf, ftpd(8) and ftp(1).
#
#   run.sh [-n] all          set up, every case, clean up (whatever failed)
#   run.sh [-n] setup        remove leftovers of an earlier run, then set up
#   run.sh [-n] cleanup      put everything back; safe to run any time
#   run.sh [-n] CASE         one case (after setup): passive-inet,
#                            active-inet, passive-inet6, active-inet6
#
# (port/crates.inc against Cargo.lock is not checked here: that needs no
# root and runs unprivileged in the top regress/Makefile's crates-inc, where
# git may read the checkout.)
#
# The driver runs as root as a whole: the Makefiles start it as
# `${SUDO} env FTP_PROXY=... sh run.sh ...`, as OpenBSD's own network
# regress tests run their drivers under ${SUDO}, so every file it writes is
# root's and no step switches users half-way.
#
# -n (dry run) prints the commands that would change the system, in order,
# one `+ command` a line (files it would write as `+ write FILE` followed by
# their lines indented by a tab), and runs none of them. It works on any
# system; make regress checks its output on Linux (regress/openbsd/check-dry.sh).
#
# FTP_PROXY is the binary under test: by default the installed
# /usr/local/sbin/ftp-proxy (the package), as bsd.regress.mk(5) asks of
# tests of installed programs; a build is tested only when FTP_PROXY names
# it (regress/Makefile's `openbsd` target passes target/release's).
#
# Needs pf enabled and an `anchor "regress"` line in the main ruleset, as
# regress/sys/net/pf_divert does: the harness loads its rules only into
# that anchor and never touches the main ruleset.
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
# control connection is diverted to ftp-proxy on 127.0.0.1/::1 port 18021
# (REGRESS_PORT): not 8021, where base's ftp-proxy or the package's
# ftp_proxy may already listen; the run SKIPs when the port is taken.
#
# Each case starts its own ftp-proxy and checks: the file arrives intact
# (sha256); while the session is still open, `pfctl -a ftp-proxy/<pid>.<id>
# -sr` shows exactly the two rules the daemon logged as its own rendering
# (`#<id> rules: …` at -D 7); after the session the anchor is gone; when
# the daemon is stopped none of its anchors is left. A trap stops the
# case's daemon whatever failed.
#
# Clean-up, whatever failed before: every change is recorded in $WORK
# (the anchor's previous rules, the forwarding sysctls' previous values,
# the daemons' pids) and `cleanup` undoes what it finds, then removes
# $WORK. `setup` first runs `cleanup`, so a run that died half-way (or a
# make regress that stopped before its REGRESS_CLEANUP) does not block the
# next one: the pair(4) interfaces and the rdomains' loopbacks are
# destroyed, processes left in the two test rdomains (only this harness
# starts any there) are killed, the test user is removed. Only what carries
# the harness's mark (the interfaces' description, the account's comment,
# both "ftp-proxy-regress") is removed; an interface, routing domain or
# user of the same name that is someone else's makes the run SKIP instead.

set -eu

here=$(cd -- "$(dirname -- "$0")" && pwd)
DRY=no
if [ "${1:-}" = -n ]; then
	DRY=yes
	shift
fi
FTP_PROXY=${FTP_PROXY:-/usr/local/sbin/ftp-proxy}
ANCHOR=${REGRESS_ANCHOR:-regress}
WORK=${REGRESS_WORK:-/tmp/ftp-proxy-regress}
USER_NAME=ftpregress
# Fixed so cleanup finds everything again from a fresh shell.
CLIENT_RD=91 SERVER_RD=92
C_IF=pair90 FWC_IF=pair91 FWS_IF=pair92 S_IF=pair93
C4=10.254.91.2 FWC4=10.254.91.1 FWS4=10.254.92.1 S4=10.254.92.2
C6=fd00:fe91::2 FWC6=fd00:fe91::1 FWS6=fd00:fe92::1 S6=fd00:fe92::2
PORT=${REGRESS_PORT:-18021}
# Marks what this harness made (interface descriptions, the account's
# comment), so that cleanup never removes anything it did not make.
MARK=ftp-proxy-regress
CASES="passive-inet active-inet passive-inet6 active-inet6"

say() { printf '%s\n' "$*"; }
fail() {
	say "FAIL: $*" >&2
	exit 1
}
# bsd.regress.mk(5): a test that cannot run prints SKIPPED and exits 0.
skip() {
	say "$*"
	say SKIPPED
	exit 0
}

# run CMD...: a command that changes the system (printed in dry mode).
run() {
	if [ $DRY = yes ]; then
		say "+ $*"
	else
		"$@"
	fi
}

# put FILE: write stdin to FILE (printed in dry mode).
put() {
	if [ $DRY = yes ]; then
		say "+ write $1"
		sed 's/^/	/'
	else
		cat >"$1"
	fi
}

# is_if NAME: the interface exists (in dry mode: assume it does, so that
# cleanup prints every step it may take).
is_if() {
	[ $DRY = yes ] || ifconfig "$1" >/dev/null 2>&1
}

# ours NAME: the interface exists and carries this harness's description.
ours() {
	[ $DRY = yes ] || ifconfig "$1" 2>/dev/null | grep -q "description: $MARK\$"
}

# foreign RDOMAIN: interfaces in that routing domain this harness did not
# make (ifconfig prints "rdomain N" on an interface's first line).
foreign() {
	[ $DRY = no ] || return 0
	ifconfig 2>/dev/null | awk -v rd="$1" '
		/^[^ \t]/ { name = $1; sub(/:$/, "", name) }
		/^[^ \t]/ && $0 ~ (" rdomain " rd " ") { print name }
	' | while read -r i; do
		case $i in
		lo"$1") ;;
		*) ours "$i" || echo "$i" ;;
		esac
	done
}

# our_user: the test account exists and is the one this harness made.
our_user() {
	[ $DRY = yes ] || grep -q "^$USER_NAME:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:$MARK:" /etc/master.passwd 2>/dev/null
}

# wait_for SECONDS WHAT CMD...: poll CMD every 0.1 s until it succeeds;
# after SECONDS say so and return 1.
wait_for() {
	limit=$(($1 * 10))
	what=$2
	shift 2
	[ $DRY = no ] || { say "+ wait for $what: $*"; return 0; }
	n=0
	until "$@" >/dev/null 2>&1; do
		n=$((n + 1))
		if [ $n -gt $limit ]; then
			say "timed out waiting for $what" >&2
			return 1
		fi
		sleep 0.1
	done
}

# ---------------------------------------------------------------- checks

preconditions() {
	if [ $DRY = yes ]; then
		say "# preconditions: OpenBSD, root, $FTP_PROXY, pf enabled, anchor \"$ANCHOR\" in the main ruleset"
		return 0
	fi
	[ "$(uname -s)" = OpenBSD ] || skip "OpenBSD only"
	[ "$(id -u)" = 0 ] || skip "needs root: run it as \${SUDO} sh run.sh (make SUDO=doas regress)"
	[ -x "$FTP_PROXY" ] ||
		skip "no ftp-proxy: build it (cargo build --release), install the package, or set FTP_PROXY"
	for t in pfctl ifconfig route sysctl ftp sha256 encrypt useradd userdel pgrep netstat; do
		command -v "$t" >/dev/null 2>&1 || fail "$t not found"
	done
	[ -x /usr/libexec/ftpd ] || fail "/usr/libexec/ftpd not found"
	pfctl -s info | grep -q '^Status: Enabled' || skip "pf is disabled (pfctl -e)"
	# The cases' daemons listen on 127.0.0.1 and ::1 port $PORT in rdomain 0.
	for fam in inet inet6; do
		if listening 0 $fam "\.$PORT "; then
			skip "port $PORT is taken ($fam): stop what listens there or set REGRESS_PORT"
		fi
	done
	pfctl -s rules | grep -q "^anchor \"$ANCHOR\"" ||
		skip "the main ruleset has no 'anchor \"$ANCHOR\"' line to load into"
	# Leftovers of an earlier run are removed by setup; anything else
	# with the same names is not this harness's to touch.
	for i in $C_IF $FWC_IF $FWS_IF $S_IF; do
		if ifconfig "$i" >/dev/null 2>&1 && ! ours "$i"; then
			skip "$i exists and is not this harness's (no description $MARK)"
		fi
	done
	for rd in $CLIENT_RD $SERVER_RD; do
		f=$(foreign $rd)
		[ -z "$f" ] || skip "routing domain $rd is in use: $f"
	done
	if id $USER_NAME >/dev/null 2>&1 && ! our_user; then
		skip "a user $USER_NAME exists that this harness did not make"
	fi
}

# ---------------------------------------------------------------- setup

setup() {
	preconditions
	cleanup
	run mkdir -p "$WORK/home"
	run chmod 755 "$WORK"

	# What cleanup puts back: anything the admin had in the anchor, and
	# the forwarding sysctls.
	if [ $DRY = yes ]; then
		say "+ pfctl -a $ANCHOR -s rules > $WORK/anchor.saved"
		say "+ sysctl -n net.inet.ip.forwarding > $WORK/forwarding4"
		say "+ sysctl -n net.inet6.ip6.forwarding > $WORK/forwarding6"
	else
		pfctl -a "$ANCHOR" -s rules >"$WORK/anchor.saved" 2>/dev/null ||
			: >"$WORK/anchor.saved"
		sysctl -n net.inet.ip.forwarding >"$WORK/forwarding4"
		sysctl -n net.inet6.ip6.forwarding >"$WORK/forwarding6"
	fi

	for i in $C_IF $FWC_IF $FWS_IF $S_IF; do
		run ifconfig $i create
		run ifconfig $i description $MARK
	done
	run ifconfig $C_IF rdomain $CLIENT_RD
	run ifconfig $S_IF rdomain $SERVER_RD
	run ifconfig $C_IF inet $C4/24 up
	run ifconfig $C_IF inet6 $C6/64
	run ifconfig $FWC_IF inet $FWC4/24 up
	run ifconfig $FWC_IF inet6 $FWC6/64
	run ifconfig $FWS_IF inet $FWS4/24 up
	run ifconfig $FWS_IF inet6 $FWS6/64
	run ifconfig $S_IF inet $S4/24 up
	run ifconfig $S_IF inet6 $S6/64
	run ifconfig $C_IF patch $FWC_IF
	run ifconfig $FWS_IF patch $S_IF
	run route -qn -T $CLIENT_RD add -inet default $FWC4
	run route -qn -T $CLIENT_RD add -inet6 default $FWC6
	run sysctl -q net.inet.ip.forwarding=1
	run sysctl -q net.inet6.ip6.forwarding=1
	for i in $C_IF $FWC_IF $FWS_IF $S_IF; do
		wait_for 10 "duplicate address detection on $i" no_tentative $i || fail "$i"
	done

	# pf: the proxy's anchors (absolute path: we are inside "$ANCHOR"), the
	# divert of the control connections, the proxy's own control
	# connections, and the two end hosts' interfaces. No rule passes data
	# connections: only the pinholes do.
	put "$WORK/anchor.conf" <<-EOF
		anchor "/ftp-proxy/*"
		pass in quick on $FWC_IF inet proto tcp to port 21 divert-to 127.0.0.1 port $PORT
		pass in quick on $FWC_IF inet6 proto tcp to port 21 divert-to ::1 port $PORT
		pass out quick on $FWS_IF proto tcp from ($FWS_IF) to port 21
		pass quick on { $C_IF $S_IF } all
		pass quick on { $FWC_IF $FWS_IF } inet6 proto icmp6 all
		block quick on { $FWC_IF $FWS_IF } all
	EOF
	run pfctl -a "$ANCHOR" -f "$WORK/anchor.conf"

	# The FTP account: a password login (anonymous FTP would need the
	# system's "ftp" account and its home).
	pw=regress-$$
	printf '%s\n' "$pw" | put "$WORK/password"
	if [ $DRY = yes ]; then
		say "+ useradd -d $WORK/home -s /bin/sh -c $MARK -p \$(encrypt $pw) $USER_NAME"
	else
		useradd -d "$WORK/home" -s /bin/sh -c $MARK \
			-p "$(encrypt "$pw")" $USER_NAME
	fi
	run dd if=/dev/random of="$WORK/home/data.bin" bs=64k count=64
	run chown -R $USER_NAME "$WORK/home"
	if [ $DRY = no ]; then
		sha256 -q "$WORK/home/data.bin" >"$WORK/data.sha256"
	fi

	# ftpd in the server's rdomain, one per family (it daemonizes: cleanup
	# finds it as a process of that rdomain).
	run route -T $SERVER_RD exec /usr/libexec/ftpd -D -4
	run route -T $SERVER_RD exec /usr/libexec/ftpd -D -6
	wait_for 10 "ftpd (IPv4) in rdomain $SERVER_RD" listening $SERVER_RD inet '\.21 ' ||
		fail "ftpd -4 did not start"
	wait_for 10 "ftpd (IPv6) in rdomain $SERVER_RD" listening $SERVER_RD inet6 '\.21 ' ||
		fail "ftpd -6 did not start"
}

no_tentative() {
	! ifconfig "$1" | grep -q tentative
}

# listening RDOMAIN FAMILY PATTERN: a socket of that rdomain and address
# family listens on an address matching PATTERN.
listening() {
	netstat -T "$1" -an -f "$2" | grep LISTEN | grep -q -- "$3"
}

# ---------------------------------------------------------------- a case

# start_proxy DIR FAMILY: an ftp-proxy of its own for this case, in the
# foreground (-d), logging everything (-D 7); its pid in DIR/proxy.pid.
start_proxy() {
	dir=$1
	case $2 in
	inet) flags="-b 127.0.0.1" listen="127\\.0\\.0\\.1\\.$PORT " ;;
	inet6) flags="-6 -b ::1" listen="::1\\.$PORT " ;;
	esac
	if [ $DRY = yes ]; then
		say "+ $FTP_PROXY -d -D 7 $flags -p $PORT > $dir/proxy.log 2>&1 &"
		say "+ echo \$! > $dir/proxy.pid"
		return 0
	fi
	# shellcheck disable=SC2086 # flags are words
	"$FTP_PROXY" -d -D 7 $flags -p $PORT >"$dir/proxy.log" 2>&1 &
	echo $! >"$dir/proxy.pid"
	wait_for 10 "ftp-proxy listening ($2)" listening 0 "$2" "$listen" || {
		cat "$dir/proxy.log" >&2
		fail "ftp-proxy ($2) did not start"
	}
}

# stop_proxy DIR: SIGTERM the case's daemon, wait for it to exit, and
# check that it removed its anchors. Returns 1 if any was left (after
# flushing them).
stop_proxy() {
	dir=$1
	if [ $DRY = yes ]; then
		say "+ kill \$(cat $dir/proxy.pid)"
		say "+ wait for the daemon to exit; then no anchor ftp-proxy/<pid>.* may be left"
		return 0
	fi
	[ -s "$dir/proxy.pid" ] || return 0
	pid=$(cat "$dir/proxy.pid")
	# Signal it only if it still runs: a pid file of an earlier run may
	# name a recycled pid. Its anchors are checked either way.
	if [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = ftp-proxy ]; then
		kill "$pid" 2>/dev/null || :
		n=0
		while kill -0 "$pid" 2>/dev/null && [ $n -lt 100 ]; do
			sleep 0.1
			n=$((n + 1))
		done
		kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
	fi
	rm -f "$dir/proxy.pid"
	left=$(pfctl -a ftp-proxy -s Anchors 2>/dev/null | sed 's/^ *//' | grep "^ftp-proxy/$pid\." || :)
	[ -z "$left" ] && return 0
	say "anchors of ftp-proxy $pid left after SIGTERM: $left" >&2
	for a in $left; do
		pfctl -a "$a" -F rules >/dev/null 2>&1 || :
	done
	return 1
}

# run_case <passive|active> <inet|inet6>
run_case() {
	mode=$1 family=$2
	[ $DRY = yes ] || [ -s "$WORK/data.sha256" ] ||
		fail "not set up: run '$0 setup' first"
	case $family in
	inet) server=$S4 ;;
	inet6) server=$S6 ;;
	esac
	case $mode in
	passive) passive=on ;;
	active) passive=off ;;
	esac
	out=$WORK/$mode-$family
	run rm -rf "$out"
	run mkdir -p "$out"

	start_proxy "$out" "$family"
	trap 'stop_proxy "$out" || :' EXIT
	[ $DRY = no ] || say "+ trap 'stop_proxy $out' EXIT"
	trap 'exit 1' INT TERM HUP

	# ftp(1) in the client's rdomain. After the transfer, while the
	# session is still open, a shell escape captures the pinhole's anchor.
	pid=$(cat "$out/proxy.pid" 2>/dev/null || echo PID)
	put "$out/ftp.in" <<-EOF
		user $USER_NAME $(cat "$WORK/password" 2>/dev/null || echo PASSWORD)
		binary
		passive $passive
		get data.bin $out/data.bin
		!sh $here/run.sh capture $pid $out
		quit
	EOF
	if [ $DRY = yes ]; then
		say "+ route -T $CLIENT_RD exec ftp -n -v $server < $out/ftp.in > $out/ftp.log 2>&1"
		say "+ check: sha256 of $out/data.bin; pfctl's rules of the anchor = the daemon's '#<id> rules:' lines; the anchor gone after the session"
		stop_proxy "$out"
		trap - EXIT
		return 0
	fi
	route -T $CLIENT_RD exec ftp -n -v "$server" <"$out/ftp.in" >"$out/ftp.log" 2>&1 &
	ftp_pid=$!
	n=0
	while kill -0 $ftp_pid 2>/dev/null && [ $n -lt 1200 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if kill -0 $ftp_pid 2>/dev/null; then
		kill $ftp_pid 2>/dev/null || :
		cat "$out/ftp.log" >&2
		fail "$mode $family: ftp(1) still running after 120 s"
	fi
	wait $ftp_pid || :

	# 1. The data arrived intact.
	[ -f "$out/data.bin" ] || { cat "$out/ftp.log" >&2; fail "$mode $family: no file"; }
	got=$(sha256 -q "$out/data.bin")
	[ "$got" = "$(cat "$WORK/data.sha256")" ] || fail "$mode $family: sha256 differs"

	# 2. pf showed the rules the daemon said it installed: its last
	# "#<id> rules:" pair, for the session the anchor belongs to.
	[ -s "$out/anchor" ] || fail "$mode $family: no ftp-proxy/$pid.* anchor during the session"
	id=$(sed 's/^.*\.//' "$out/anchor")
	grep "^#$id rules: " "$out/proxy.log" | tail -n 2 | sed "s/^#$id rules: //" >"$out/rules.daemon"
	[ -s "$out/rules.daemon" ] || fail "$mode $family: the daemon logged no '#$id rules:' lines"
	if ! diff -u "$out/rules.daemon" "$out/rules.pfctl"; then
		fail "$mode $family: pfctl and the daemon's rendering differ"
	fi
	grep -q " rdr-to " "$out/rules.pfctl" && grep -q " nat-to " "$out/rules.pfctl" ||
		fail "$mode $family: the anchor lacks the rdr-to/nat-to pair"

	# 3. The session's end emptied the anchor and pf removed it.
	wait_for 10 "anchor ftp-proxy/$pid.$id to go" anchor_gone "$pid" "$id" ||
		fail "$mode $family: anchor ftp-proxy/$pid.$id left after the session"

	# 4. SIGTERM: the daemon exits and leaves no anchor.
	trap - EXIT
	stop_proxy "$out" || fail "$mode $family: ftp-proxy left anchors after SIGTERM"
	say "ok: $mode $family ($(wc -l <"$out/rules.pfctl" | tr -d ' ') rules, sha256 match)"
}

anchor_gone() {
	! pfctl -a ftp-proxy -s Anchors 2>/dev/null | grep -q "ftp-proxy/$1\.$2\$"
}

# capture <pid> <dir>: called from ftp(1)'s shell escape mid-session.
capture() {
	pid=$1 dir=$2
	a=$(pfctl -a ftp-proxy -s Anchors 2>/dev/null |
		sed 's/^ *//' | grep "^ftp-proxy/$pid\." | tail -n 1) || :
	printf '%s\n' "$a" >"$dir/anchor"
	[ -n "$a" ] || return 0
	pfctl -a "$a" -s rules >"$dir/rules.pfctl"
}

# ---------------------------------------------------------------- cleanup

# Undo whatever an earlier run left, as far as it is there. Fails only
# when there is something to undo and this is not root.
cleanup() {
	set +e
	# Nothing of this harness can exist elsewhere.
	[ $DRY = yes ] || [ "$(uname -s)" = OpenBSD ] || { set -e; return 0; }
	if [ $DRY = no ] && [ "$(id -u)" != 0 ]; then
		if [ -d "$WORK" ]; then
			say "cleanup: $WORK is there but this is not root: run it under \${SUDO}" >&2
			set -e
			return 1
		fi
		return 0
	fi
	# The cases' daemons, by their recorded pids.
	for f in "$WORK"/*/proxy.pid; do
		[ $DRY = yes ] || [ -s "$f" ] || continue
		stop_proxy "$(dirname -- "$f")"
	done
	# Whatever runs in the test rdomains: the ftpd daemons, a stuck ftp(1).
	# Only this harness starts processes there, unless the rdomain holds
	# interfaces it did not make: then it is someone else's, left alone.
	for rd in $CLIENT_RD $SERVER_RD; do
		if [ $DRY = yes ]; then
			say "+ kill \$(pgrep -T $rd)"
		elif [ -z "$(foreign $rd)" ]; then
			pids=$(pgrep -T $rd)
			[ -z "$pids" ] || kill $pids
		fi
	done
	if [ $DRY = yes ] || [ -f "$WORK/anchor.saved" ]; then
		run pfctl -a "$ANCHOR" -F rules
		if [ $DRY = yes ] || [ -s "$WORK/anchor.saved" ]; then
			run pfctl -a "$ANCHOR" -f "$WORK/anchor.saved"
		fi
	fi
	if [ $DRY = yes ]; then
		say "+ sysctl -q net.inet.ip.forwarding=\$(cat $WORK/forwarding4)"
		say "+ sysctl -q net.inet6.ip6.forwarding=\$(cat $WORK/forwarding6)"
	else
		[ -s "$WORK/forwarding4" ] &&
			sysctl -q net.inet.ip.forwarding="$(cat "$WORK/forwarding4")"
		[ -s "$WORK/forwarding6" ] &&
			sysctl -q net.inet6.ip6.forwarding="$(cat "$WORK/forwarding6")"
	fi
	for i in $C_IF $FWC_IF $FWS_IF $S_IF; do
		ours "$i" && run ifconfig "$i" destroy
	done
	# The rdomains' loopbacks appear with the first interface moved in;
	# with them gone the rdomains are gone. Not while another interface
	# is still in the rdomain.
	for rd in $CLIENT_RD $SERVER_RD; do
		is_if lo$rd && [ -z "$(foreign $rd)" ] && run ifconfig lo$rd destroy
	done
	our_user && run userdel $USER_NAME
	run rm -rf "$WORK"
	set -e
	return 0
}

# ---------------------------------------------------------------- main

is_case() {
	for c in $CASES; do
		[ "$c" = "$1" ] && return 0
	done
	return 1
}

cmd=${1:-all}
case $cmd in
all)
	preconditions
	trap cleanup EXIT
	trap 'exit 1' INT TERM HUP
	setup
	failed=0
	for c in $CASES; do
		(run_case ${c%-*} ${c#*-}) || failed=$((failed + 1))
	done
	[ $failed = 0 ] || fail "$failed case(s) failed"
	;;
setup) setup ;;
cleanup) cleanup ;;
capture) capture "$2" "$3" ;;
*)
	is_case "$cmd" || {
		say "usage: run.sh [-n] [all | setup | cleanup | {passive,active}-{inet,inet6}]" >&2
		exit 2
	}
	preconditions
	run_case ${cmd%-*} ${cmd#*-}
	;;
esac
