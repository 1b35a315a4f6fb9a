#!/bin/sh
# Install what the regress targets need on Debian, only what is missing.
#
# Usage: sh regress/linux/install-deps.sh GROUP...
#   netns   namespaces, nftables, conntrack, FTP servers and clients, pytest
#   kernel  what the nftables backend's root tests use (ip, nft)
#   man     mandoc
#   make    bmake (to check that regress/Makefile works with BSD make too)
#   ha      keepalived, conntrackd and pytest for the two-gateway lab
#   rust    rustc and cargo from Debian, only when no cargo is on PATH
#   pypf    py-pf from PyPI into $FTP_PROXY_REGRESS_PYPF (default
#           /var/tmp/ftp-proxy-regress/pypf), for regress/pf-decode.py
#   all     every group
#
# Debian's FTP servers conflict with each other (Conflicts: ftp-server):
# vsftpd is installed normally; proftpd-core and pure-ftpd are fetched with
# `apt-get download` and unpacked with `dpkg -x` into $FTP_PROXY_REGRESS_PKGS
# (default /var/tmp/ftp-proxy-regress/pkgs), their shared libraries installed
# normally. No FTP daemon is started system-wide: a policy-rc.d that refuses
# service starts is put in place for the duration of the install when the
# machine has none.
set -eu

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps: not a Debian system, nothing installed" >&2
	exit 0
fi

PKGS=${FTP_PROXY_REGRESS_PKGS:-/var/tmp/ftp-proxy-regress/pkgs}
# The py-pf release whose structures match pfvar.h rev 1.543.
PYPF_VERSION=0.2.3
updated=no
policy_made=no

say() { echo "install-deps: $*" >&2; }

missing() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
			echo "$p"
	done
}

cleanup() {
	if [ "$policy_made" = yes ]; then
		rm -f /usr/sbin/policy-rc.d
	fi
}
trap cleanup EXIT

apt_update_once() {
	if [ "$updated" = no ]; then
		timeout 300 apt-get update -qq >/dev/null
		updated=yes
	fi
}

need_root() {
	if [ "$(id -u)" != 0 ]; then
		say "need root to install: $*"
		exit 2
	fi
}

install() {
	want=$(missing "$@")
	[ -n "$want" ] || return 0
	need_root $want
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		policy_made=yes
	fi
	say "apt-get install" $want
	apt_update_once
	DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq \
		--no-install-recommends $want >/dev/null
}

# The shared libraries a .deb depends on (first alternative, no versions).
libs_of() {
	dpkg-deb -f "$1" Depends | tr ',' '\n' | sed 's/|.*//; s/(.*)//; s/ //g' |
		grep '^lib' | grep -v '^libpam-runtime$' || true
}

unpack() {	# package: download and unpack into $PKGS/root unless already there
	pkg=$1 binary=$2
	if [ -x "$PKGS/root/$binary" ]; then
		return 0
	fi
	need_root "$pkg (unpacked)"
	mkdir -p "$PKGS/root"
	apt_update_once
	say "apt-get download $pkg, unpacked into $PKGS/root"
	(cd "$PKGS" && rm -f "$pkg"_*.deb && timeout 300 apt-get download -qq "$pkg" 2>/dev/null)
	deb=$(ls "$PKGS/$pkg"_*.deb)
	install $(libs_of "$deb")
	dpkg -x "$deb" "$PKGS/root"
}

group() {
	case $1 in
	netns)
		install nftables iproute2 conntrack util-linux procps coreutils \
			python3 python3-pytest lftp curl vsftpd
		unpack proftpd-core usr/sbin/proftpd
		unpack pure-ftpd usr/sbin/pure-ftpd
		;;
	kernel)	install nftables iproute2 conntrack util-linux ;;
	man)	install mandoc ;;
	rust)
		# A Rust toolchain for the build, when none is on PATH: Debian 12's
		# rustc-web and cargo-web (a current rustc; bookworm's own rustc
		# is too old for the crate's dependencies).
		command -v cargo >/dev/null 2>&1 || install rustc-web cargo-web gcc libc6-dev
		;;
	make)	install bmake ;;
	pypf)
		# py-pf, an independent reading of pf's ioctl structures: pip
		# installs it into a directory of its own (PYTHONPATH), never into
		# the system's Python.
		dir=${FTP_PROXY_REGRESS_PYPF:-/var/tmp/ftp-proxy-regress/pypf}
		py=${PYTHON:-python3}
		if [ ! -f "$dir/pf/rule.py" ]; then
			$py -m pip --version >/dev/null 2>&1 || install python3-pip
			say "pip install py-pf==$PYPF_VERSION into $dir"
			mkdir -p "$dir"
			timeout 300 $py -m pip install -q --disable-pip-version-check \
				--no-warn-script-location --target "$dir" \
				"py-pf==$PYPF_VERSION" >/dev/null 2>&1 ||
				{ say "pip install py-pf failed"; exit 1; }
		fi
		;;
	ha)	install keepalived conntrackd python3-pytest ;;
	all)	group netns; group kernel; group man; group make; group pypf; group ha ;;
	*)	say "unknown group $1"; exit 2 ;;
	esac
}

[ $# -gt 0 ] || set -- all
for g in "$@"; do
	group "$g"
done
