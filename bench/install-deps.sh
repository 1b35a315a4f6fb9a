#!/bin/sh
# What `make bench` needs on Debian, only what is missing.
#
# The lab's own packages (namespaces, nftables, conntrack, vsftpd, curl,
# proftpd unpacked privately) come from regress/linux/install-deps.sh. On top
# of that, the userspace relays compared against:
#   ftp-proxy            SuSE proxy suite relay
#   proftpd-mod-proxy    proftpd's mod_proxy, with mod_tls from
#   proftpd-mod-crypto   (mod_proxy will not load without it)
# and, for the system-call counts and the per-session timeline (--timeline):
#   strace tcpdump       installed normally.
# The relays are fetched with `apt-get download` and unpacked with `dpkg -x` into
# $FTP_PROXY_BENCH_PKGS/root (default /var/tmp/ftp-proxy-bench/pkgs/root):
# nothing is registered as a service and nothing conflicts with vsftpd. Their
# shared libraries are installed normally. A relay that cannot be had is
# reported and left out; the benchmark says so in its output.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
sh "$here/../regress/linux/install-deps.sh" netns

PKGS=${FTP_PROXY_BENCH_PKGS:-/var/tmp/ftp-proxy-bench/pkgs}
say() { echo "bench/install-deps: $*" >&2; }

if ! command -v dpkg-query >/dev/null 2>&1; then
	say "not a Debian system, relays not installed"
	exit 0
fi

missing() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
			echo "$p"
	done
}

libs_of() {	# the shared-library dependencies of a .deb (first alternative)
	dpkg-deb -f "$1" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' |
		grep '^lib' | grep -v '^libpam-runtime$' || true
}

unpack() {	# package file-it-must-provide
	pkg=$1 provides=$2
	[ -e "$PKGS/root/$provides" ] && return 0
	mkdir -p "$PKGS/root"
	say "apt-get download $pkg, unpacked into $PKGS/root"
	# A fresh machine may have no package lists yet: update once, retry.
	(cd "$PKGS" && rm -f "$pkg"_*.deb && timeout 300 apt-get download -qq "$pkg" 2>/dev/null) ||
		{ timeout 300 apt-get update -qq >/dev/null 2>&1 &&
		  (cd "$PKGS" && timeout 300 apt-get download -qq "$pkg" 2>/dev/null); } ||
		{ say "cannot download $pkg"; return 1; }
	deb=$(ls "$PKGS/$pkg"_*.deb)
	want=$(missing $(libs_of "$deb"))
	if [ -n "$want" ]; then
		say "apt-get install" $want
		DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
			--no-install-recommends $want >/dev/null || { say "cannot install $want"; return 1; }
	fi
	dpkg -x "$deb" "$PKGS/root"
}

# The measuring tools: installed normally, only when missing.
tools=$(missing strace tcpdump)
if [ -n "$tools" ]; then
	say "apt-get install" $tools
	{ DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
		--no-install-recommends $tools >/dev/null 2>&1 ||
	  { timeout 300 apt-get update -qq >/dev/null 2>&1 &&
	    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
		--no-install-recommends $tools >/dev/null; }; } ||
		say "cannot install $tools: system calls per round trip and --timeline not measured"
fi

unpack ftp-proxy usr/sbin/ftp-proxy || say "SuSE ftp-proxy unavailable: left out"
{ unpack proftpd-mod-crypto usr/lib/proftpd/mod_tls.so &&
	unpack proftpd-mod-proxy usr/lib/proftpd/mod_proxy.so; } ||
	say "proftpd mod_proxy unavailable: left out"
exit 0
