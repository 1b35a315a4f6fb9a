#!/bin/sh
# Installs or uninstalls ftp-proxy in the layout of the system it runs on.
# Called by `make install` and `make uninstall`.
#
# usage: install.sh install|uninstall DESTDIR PREFIX
#
# Linux (and any system but OpenBSD):
#	$DESTDIR$PREFIX/sbin/ftp-proxy
#	$DESTDIR$PREFIX/share/man/man8/ftp-proxy.8
#	$DESTDIR$PREFIX/share/doc/ftp-proxy/examples/ftp-proxy.nft
#	$DESTDIR/lib/systemd/system/ftp-proxy.service	(PREFIX /usr)
#	$DESTDIR$PREFIX/lib/systemd/system/ftp-proxy.service	(other PREFIX)
#
# The unit goes where systemd looks for it: /lib/systemd/system for the
# system's own packages (PREFIX=/usr, as a Debian package would), and
# $PREFIX/lib/systemd/system otherwise, which systemd also reads for
# /usr/local, the default. For any other PREFIX, link the unit into
# /etc/systemd/system. Its ExecStart names $PREFIX/sbin/ftp-proxy.
#
# OpenBSD, as hier(7) and the port lay it out:
#	$DESTDIR$PREFIX/sbin/ftp-proxy
#	$DESTDIR$PREFIX/man/man8/ftp-proxy.8
# No systemd unit and no nftables example; the rc.d(8) scripts ftp_proxy
# and ftp_proxy6 come with the package (port/pkg/ftp_proxy.rc and
# ftp_proxy6.rc), which is the supported way
# to install on OpenBSD.
#
# INSTALL_SYSTEM=Linux|OpenBSD overrides `uname -s` (regress/check-install.sh
# checks both layouts on either system).
#
# uninstall removes exactly these files, and the documentation directory
# that only this package uses; shared directories stay.

set -eu

usage() {
	echo "usage: install.sh install|uninstall DESTDIR PREFIX" >&2
	exit 1
}

[ $# -eq 3 ] || usage
action=$1
destdir=$2
prefix=$3
case $prefix in
/*) ;;
*) echo "install.sh: PREFIX must be an absolute path: $prefix" >&2; exit 1 ;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
system=${INSTALL_SYSTEM:-$(uname -s)}
sbindir=$prefix/sbin
case $system in
OpenBSD)
	man8dir=$prefix/man/man8
	docdir= exampledir= unitdir=
	;;
*)
	man8dir=$prefix/share/man/man8
	docdir=$prefix/share/doc/ftp-proxy
	exampledir=$docdir/examples
	if [ "$prefix" = /usr ]; then
		unitdir=/lib/systemd/system
	else
		unitdir=$prefix/lib/systemd/system
	fi
	;;
esac

do_install() {
	binary=$top/target/release/ftp-proxy
	if [ ! -x "$binary" ]; then
		echo "install.sh: $binary not found: run make (cargo build --release) first" >&2
		exit 1
	fi
	install -d -m 755 "$destdir$sbindir" "$destdir$man8dir"
	install -c -m 755 "$binary" "$destdir$sbindir/ftp-proxy"
	install -c -m 644 "$top/man/ftp-proxy.8" "$destdir$man8dir/ftp-proxy.8"
	[ -n "$unitdir" ] || return 0
	install -d -m 755 "$destdir$exampledir" "$destdir$unitdir"
	install -c -m 644 "$top/dist/ftp-proxy.nft" "$destdir$exampledir/ftp-proxy.nft"
	unit=$(mktemp) || exit 1
	trap 'rm -f "$unit"' EXIT
	sed "s|@SBINDIR@|$sbindir|g" "$top/dist/ftp-proxy.service" >"$unit"
	install -c -m 644 "$unit" "$destdir$unitdir/ftp-proxy.service"
}

do_uninstall() {
	rm -f "$destdir$sbindir/ftp-proxy" "$destdir$man8dir/ftp-proxy.8"
	[ -n "$unitdir" ] || return 0
	rm -f "$destdir$exampledir/ftp-proxy.nft" \
		"$destdir$unitdir/ftp-proxy.service"
	# Only if empty: an admin's own files there stay.
	rmdir "$destdir$exampledir" 2>/dev/null || true
	rmdir "$destdir$docdir" 2>/dev/null || true
}

case $action in
install) do_install ;;
uninstall) do_uninstall ;;
*) usage ;;
esac
