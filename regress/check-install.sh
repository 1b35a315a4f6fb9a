#!/bin/sh
# Checks `make install` and `make uninstall` in each system's layout
# (dist/install.sh): installs into a temporary DESTDIR, compares the
# installed files with the exact list the documentation promises, checks
# that the systemd unit (Linux) names the installed binary, then uninstalls
# and checks that no file is left.
#
#   Linux, PREFIX=/usr/local and PREFIX=/usr: binary, man page under
#	share/man, nftables example, systemd unit
#   OpenBSD, PREFIX=/usr/local: binary, man page under man/man8, nothing
#	else (no unit; the rc.d script comes with the package)
#
# Both layouts are checked on either system (INSTALL_SYSTEM overrides
# uname -s in dist/install.sh).
#
# usage: check-install.sh	(after cargo build --release)

set -u

top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
failed=0

fail() {
	echo "check-install: $*" >&2
	failed=1
}

# check SYSTEM PREFIX: one install/uninstall round into a fresh DESTDIR.
check() {
	system=$1
	prefix=$2
	what="$system PREFIX=$prefix"
	dest=$tmp/dest-$system$(echo "$prefix" | tr / _)
	mkdir "$dest"
	case $system in
	OpenBSD)
		man8=$prefix/man/man8/ftp-proxy.8
		unit=
		cat >"$tmp/expected" <<-LIST
		$prefix/sbin/ftp-proxy
		$man8
		LIST
		;;
	*)
		man8=$prefix/share/man/man8/ftp-proxy.8
		if [ "$prefix" = /usr ]; then
			unit=/lib/systemd/system/ftp-proxy.service
		else
			unit=$prefix/lib/systemd/system/ftp-proxy.service
		fi
		cat >"$tmp/expected" <<-LIST
		$prefix/sbin/ftp-proxy
		$prefix/share/doc/ftp-proxy/examples/ftp-proxy.nft
		$man8
		$unit
		LIST
		;;
	esac
	sort -o "$tmp/expected" "$tmp/expected"
	export INSTALL_SYSTEM="$system"

	if ! (cd "$top" && make -s install DESTDIR="$dest" PREFIX="$prefix" \
	    >"$tmp/log" 2>&1); then
		fail "$what: make install failed:"
		cat "$tmp/log" >&2
		return
	fi
	(cd "$dest" && find . ! -type d | sed 's/^\.//' | sort) >"$tmp/installed"
	if ! cmp -s "$tmp/expected" "$tmp/installed"; then
		fail "$what: installed files differ from the list (-expected +installed):"
		diff "$tmp/expected" "$tmp/installed" >&2
	fi
	if [ -n "$unit" ]; then
		if ! grep -q "^ExecStart=$prefix/sbin/ftp-proxy " "$dest$unit" 2>/dev/null; then
			fail "$what: the unit does not start $prefix/sbin/ftp-proxy"
		fi
		if grep -q @SBINDIR@ "$dest$unit" 2>/dev/null; then
			fail "$what: @SBINDIR@ left in the unit"
		fi
	fi
	if ! cmp -s "$top/man/ftp-proxy.8" "$dest$man8"; then
		fail "$what: the installed man page differs from man/ftp-proxy.8"
	fi
	if [ ! -x "$dest$prefix/sbin/ftp-proxy" ]; then
		fail "$what: the binary is not executable"
	fi

	if ! (cd "$top" && make -s uninstall DESTDIR="$dest" PREFIX="$prefix" \
	    >"$tmp/log" 2>&1); then
		fail "$what: make uninstall failed:"
		cat "$tmp/log" >&2
		return
	fi
	left=$(cd "$dest" && find . ! -type d)
	if [ -n "$left" ]; then
		fail "$what: left after uninstall: $left"
	fi
	if [ -d "$dest$prefix/share/doc/ftp-proxy" ]; then
		fail "$what: $prefix/share/doc/ftp-proxy left after uninstall"
	fi
	unset INSTALL_SYSTEM
	[ $failed -eq 0 ] && echo "check-install: $what: ok"
}

if [ ! -x "$top/target/release/ftp-proxy" ]; then
	echo "check-install: build first (cargo build --release)" >&2
	exit 1
fi
check Linux /usr/local
check Linux /usr
check OpenBSD /usr/local
exit $failed
