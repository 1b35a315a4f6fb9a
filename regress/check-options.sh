#!/bin/sh
# Checks that every option the code accepts is documented: each letter of
# OPTSTRING in src/options.rs must be in the usage text (USAGE), in the
# SYNOPSIS of the man page and in its option list (.It Fl x), and the
# SYNOPSIS must say what USAGE says. A new option that the page or the usage
# text forgets makes this fail, naming what is missing.
#
# usage: check-options.sh [options.rs [ftp-proxy.8]]
#        check-options.sh -selftest
#
# -selftest proves the check can fail: it runs it against copies broken in
# each way it must catch, and fails unless every one is rejected.

set -u

top=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = -selftest ]; then
	self=$0
	src=$top/src/options.rs
	man=$top/man/ftp-proxy.8
	tmp=$(mktemp -d) || exit 1
	trap 'rm -rf "$tmp"' EXIT
	bad=0
	# expect_failure name options.rs ftp-proxy.8
	expect_failure() {
		if sh "$self" "$2" "$3" >"$tmp/out" 2>&1; then
			echo "check-options: selftest: $1: not detected" >&2
			bad=1
		else
			echo "check-options: selftest: $1: detected: $(head -n 1 "$tmp/out")"
		fi
	}
	sh "$self" "$src" "$man" >/dev/null || exit 1
	sed 's/^pub const OPTSTRING: &str = "/&x/' "$src" >"$tmp/new-option.rs"
	expect_failure "new option" "$tmp/new-option.rs" "$man"
	sed 's/\[-q queue\] //' "$src" >"$tmp/no-q-usage.rs"
	expect_failure "-q not in USAGE" "$tmp/no-q-usage.rs" "$man"
	sed '/^\.It Fl r$/d' "$man" >"$tmp/no-r-item.8"
	expect_failure "-r not described" "$src" "$tmp/no-r-item.8"
	sed '/^\.Op Fl T Ar tag$/d' "$man" >"$tmp/no-T-synopsis.8"
	expect_failure "-T not in SYNOPSIS" "$src" "$tmp/no-T-synopsis.8"
	sed 's/^\.Op Fl t Ar timeout$/.Op Fl t Ar seconds/' "$man" >"$tmp/renamed.8"
	expect_failure "SYNOPSIS differs from USAGE" "$src" "$tmp/renamed.8"
	exit $bad
fi

src=${1:-$top/src/options.rs}
man=${2:-$top/man/ftp-proxy.8}
failed=0

fail() {
	echo "check-options: $*" >&2
	failed=1
}

for f in "$src" "$man"; do
	[ -r "$f" ] || { echo "check-options: cannot read $f" >&2; exit 1; }
done

# The value of a one-line `pub const NAME: &str = "...";` in options.rs.
rust_const() {
	sed -n "s/^pub const $1: &str = \"\\(.*\\)\";\$/\\1/p" "$src"
}

optstring=$(rust_const OPTSTRING)
usage=$(rust_const USAGE | sed 's/\\n/ /g')
[ -n "$optstring" ] || { echo "check-options: no OPTSTRING in $src" >&2; exit 1; }
[ -n "$usage" ] || { echo "check-options: no USAGE in $src" >&2; exit 1; }
letters=$(printf '%s\n' "$optstring" | tr -d ':' | sed 's/./& /g')

# Letters in USAGE: the characters after each "[-" ("[-6Adrv]" gives
# 6Adrv, "[-a sourceaddr]" gives a).
usage_letters=$(printf '%s\n' "$usage" | tr ' ' '\n' |
	sed -n 's/^\[-\([[:alnum:]]*\).*/\1/p' | tr -d '\n')

# The man page's SYNOPSIS and DESCRIPTION sections.
section() {
	awk -v want="$1" '
		/^\.Sh / { on = ($0 == ".Sh " want); next }
		on { print }' "$man"
}
synopsis=$(section SYNOPSIS)
description=$(section DESCRIPTION)

# Letters in the SYNOPSIS: every word after "Fl".
synopsis_letters=$(printf '%s\n' "$synopsis" |
	sed -n 's/.*Fl \([[:alnum:]]*\).*/\1/p' | tr -d '\n')

# Letters with an entry in the option list: ".It Fl x".
described_letters=$(printf '%s\n' "$description" |
	sed -n 's/^\.It Fl \([[:alnum:]]\)\( .*\)\{0,1\}$/\1/p' | tr -d '\n')

for x in $letters; do
	case $usage_letters in *"$x"*) ;; *) fail "-$x missing from USAGE in $src" ;; esac
	case $synopsis_letters in *"$x"*) ;; *) fail "-$x missing from SYNOPSIS in $man" ;; esac
	case $described_letters in *"$x"*) ;;
	*) fail "-$x missing from DESCRIPTION in $man (no .It Fl $x)" ;;
	esac
done

# Documented options that the code does not have (-h is the one addition
# that is not in the original's option string or usage text).
for x in $(printf '%s\n' "$described_letters" | sed 's/./& /g'); do
	case "${optstring}h" in *"$x"*) ;; *) fail "-$x in DESCRIPTION of $man but not in OPTSTRING" ;; esac
done

# SYNOPSIS and USAGE must list the same options in the same order:
# ".Op Fl a Ar sourceaddr" is "[-a sourceaddr]".
from_man=$(printf '%s\n' "$synopsis" |
	sed -n 's/^\.Op Fl \([^ ]*\)\( Ar \(.*\)\)\{0,1\}$/[-\1 \3]/p' |
	sed 's/ ]$/]/' | tr '\n' ' ' | sed 's/ $//')
from_usage=$(printf '%s\n' "$usage" | tr -s ' ' | sed 's/^usage: ftp-proxy //; s/ $//')
if [ "$from_man" != "$from_usage" ]; then
	fail "SYNOPSIS and USAGE differ:"
	echo "	man:   $from_man" >&2
	echo "	usage: $from_usage" >&2
fi

if [ $failed -ne 0 ]; then
	exit 1
fi
echo "check-options: ok: $(printf '%s' "$letters" | tr -d ' ') in USAGE, SYNOPSIS and DESCRIPTION"
