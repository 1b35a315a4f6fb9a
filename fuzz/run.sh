#!/bin/sh
# Runs every fuzz target of the protocol core for a bounded time and fails
# if any of them finds a crash (a panic: a broken invariant or a bug).
#
#   sh fuzz/run.sh                       each target for 60 s (make fuzz)
#   FUZZ_SECONDS=20 sh fuzz/run.sh       CI
#   sh fuzz/run.sh session client_command   only these targets
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_SANITIZER  none (default) or address
#   FUZZ_WORK       where new corpus entries go (default fuzz/work, not
#                   committed); the committed seeds in fuzz/corpus are only read
#
# Toolchain: this works with the stable toolchain; no nightly is needed.
# cargo-fuzz normally builds with -Zsanitizer=address, which only nightly
# accepts. With `--sanitizer none` it passes nothing but stable flags:
# `-Cpasses=sancov-module` and `-Cllvm-args=-sanitizer-coverage-*` (the
# libFuzzer coverage instrumentation, inline 8-bit counters, comparison
# tracing) and `--cfg fuzzing`; libfuzzer-sys compiles libFuzzer itself with
# the system C++ compiler. The engine is safe Rust, so AddressSanitizer would
# find nothing the Rust bounds checks do not already turn into panics; it
# only halves the speed. Overflow checks and debug assertions stay on (the
# cargo-fuzz default), so an arithmetic overflow in a port parser is a crash.
# FUZZ_SANITIZER=address is still possible on stable: it sets
# RUSTC_BOOTSTRAP=1 so that stable rustc accepts -Zsanitizer.
# Tried with rustup's stable rustc 1.95 and with Debian's rustc-web 1.96
# (PATH=/usr/bin:$PATH, cargo-fuzz from ~/.cargo/bin).
#
# cargo-fuzz is installed from crates.io if missing.

set -u

cd "$(dirname "$0")/.." || exit 2

seconds=${FUZZ_SECONDS:-60}
sanitizer=${FUZZ_SANITIZER:-none}
work=${FUZZ_WORK:-fuzz/work}
targets=${*:-line_framing client_command server_reply session}
cargo=${CARGO:-cargo}

case $seconds in
'' | *[!0-9]*)
	echo "fuzz: FUZZ_SECONDS must be a number of seconds, not '$seconds'" >&2
	exit 2
	;;
esac

if [ "$sanitizer" != none ]; then
	RUSTC_BOOTSTRAP=1
	export RUSTC_BOOTSTRAP
fi

if ! $cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz: installing cargo-fuzz"
	$cargo install cargo-fuzz --version 0.13.2 --locked || exit 2
fi

echo "fuzz: building the targets ($($cargo fuzz --version), $(rustc --version))"
# Default profile of cargo-fuzz: optimised, with debug assertions and
# overflow checks.
$cargo fuzz build --sanitizer "$sanitizer" || exit 2

failed=
summary=
for t in $targets; do
	mkdir -p "$work/$t" "fuzz/artifacts/$t"
	log="$work/$t.log"
	echo "fuzz: $t for ${seconds}s"
	# The first directory receives new inputs; the seeds are only read.
	# -max_len bounds an input (a session of a few dozen lines); -timeout and
	# -rss_limit_mb turn a hang or a runaway buffer into a failure.
	$cargo fuzz run --sanitizer "$sanitizer" "$t" "$work/$t" "fuzz/corpus/$t" -- \
		-max_total_time="$seconds" -max_len=4096 -timeout=10 \
		-rss_limit_mb=1024 -print_final_stats=1 \
		-artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1
	status=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	cov=$(sed -n 's/^#[0-9]*.*cov: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
	line="$t: ${runs:-?} runs, ${rate:-?} exec/s, coverage ${cov:-?}"
	if [ "$status" -ne 0 ]; then
		artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		grep -A 2 'panicked at' "$log" | head -n 6
		echo "fuzz: $t FAILED (exit $status); log $log"
		echo "fuzz: artifact ${artifact:-none written}"
		[ -n "$artifact" ] &&
			echo "fuzz: reproduce with: cargo fuzz run --sanitizer $sanitizer $t $artifact"
		line="$line: FAILED, artifact ${artifact:-none}"
		failed="$failed $t"
	fi
	summary="$summary$line
"
done

printf '\nfuzz summary (%ss per target):\n%s' "$seconds" "$summary"
if [ -n "$failed" ]; then
	echo "fuzz: crashes in:$failed" >&2
	exit 1
fi
echo "fuzz: no crashes"
