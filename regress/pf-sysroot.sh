#!/bin/sh
# Prints the OpenBSD header sysroot the pf targets use: $PF_SYSROOT, or
# else shared/openbsd-sysroot beside the repository, as an absolute path.
# Without one that holds usr/include/net/pfvar.h it prints nothing, writes
# why to $REGRESS_SKIP_FILE (the regress loop then says SKIP) and stderr,
# and exits 1.
#
# Usage (from regress/): root=$(sh pf-sysroot.sh) || exit 0
root=${PF_SYSROOT:-}
if [ -z "$root" ] && [ -d ../../shared/openbsd-sysroot ]; then
	root=$(cd ../../shared/openbsd-sysroot && pwd)
fi
if [ -z "$root" ] || [ ! -f "$root/usr/include/net/pfvar.h" ]; then
	echo "no OpenBSD header sysroot (set PF_SYSROOT, or put shared/openbsd-sysroot beside the repository)" |
		tee "${REGRESS_SKIP_FILE:-/dev/null}" >&2
	exit 1
fi
echo "$root"
