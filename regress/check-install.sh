#!/bin/sh
# Checks `make install` and `make uninstall`: installs into a temporary
# DESTDIR for two prefixes, compares the installed files with the exact
# list the documentation promises, checks that the unit names the installed
# binary, then uninstalls and checks that no file is left.
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

# check PREFIX UNITDIR: one install/uninstall round into a fresh DESTDIR.
check() {
	prefix=$1
	unitdir=$2
	dest=$tmp/dest$(echo "$prefix" | tr / _)
	mkdir "$dest"
	cat >"$tmp/expected" <<-LIST
	$prefix/sbin/ftp-proxy
	$prefix/share/doc/ftp-proxy/examples/ftp-proxy.nft
	$prefix/share/man/man8/ftp-proxy.8
	$unitdir/ftp-proxy.service
	LIST
	sort -o "$tmp/expected" "$tmp/expected"

	if ! (cd "$top" && make -s install DESTDIR="$dest" PREFIX="$prefix" \
	    >"$tmp/log" 2>&1); then
		fail "PREFIX=$prefix: make install failed:"
		cat "$tmp/log" >&2
		return
	fi
	(cd "$dest" && find . ! -type d | sed 's/^\.//' | sort) >"$tmp/installed"
	if ! cmp -s "$tmp/expected" "$tmp/installed"; then
		fail "PREFIX=$prefix: installed files differ from the list (-expected +installed):"
		diff "$tmp/expected" "$tmp/installed" >&2
	fi
	unit=$dest$unitdir/ftp-proxy.service
	if ! grep -q "^ExecStart=$prefix/sbin/ftp-proxy " "$unit" 2>/dev/null; then
		fail "PREFIX=$prefix: the unit does not start $prefix/sbin/ftp-proxy"
	fi
	if grep -q @SBINDIR@ "$unit" 2>/dev/null; then
		fail "PREFIX=$prefix: @SBINDIR@ left in the unit"
	fi
	if ! cmp -s "$top/man/ftp-proxy.8" "$dest$prefix/share/man/man8/ftp-proxy.8"; then
		fail "PREFIX=$prefix: the installed man page differs from man/ftp-proxy.8"
	fi
	if [ ! -x "$dest$prefix/sbin/ftp-proxy" ]; then
		fail "PREFIX=$prefix: the binary is not executable"
	fi

	if ! (cd "$top" && make -s uninstall DESTDIR="$dest" PREFIX="$prefix" \
	    >"$tmp/log" 2>&1); then
		fail "PREFIX=$prefix: make uninstall failed:"
		cat "$tmp/log" >&2
		return
	fi
	left=$(cd "$dest" && find . ! -type d)
	if [ -n "$left" ]; then
		fail "PREFIX=$prefix: left after uninstall: $left"
	fi
	if [ -d "$dest$prefix/share/doc/ftp-proxy" ]; then
		fail "PREFIX=$prefix: $prefix/share/doc/ftp-proxy left after uninstall"
	fi
	[ $failed -eq 0 ] && echo "check-install: PREFIX=$prefix: ok"
}

if [ ! -x "$top/target/release/ftp-proxy" ]; then
	echo "check-install: build first (cargo build --release)" >&2
	exit 1
fi
check /usr/local /usr/local/lib/systemd/system
check /usr /lib/systemd/system
exit $failed
