#!/usr/bin/env bash
# Fuzzes the numeric core (src/core) for a bounded time: builds the libFuzzer
# target with AddressSanitizer and UndefinedBehaviorSanitizer, runs it from
# the seed corpus, prints one result line.  Exit status 0 when no property
# was violated.
#   FUZZ_SECONDS=N   fuzzing time (default 45)
set -uo pipefail
cd "$(dirname "$0")/../.."

SECONDS_MAX=${FUZZ_SECONDS:-45}
WORK=$(mktemp -d /tmp/mlma-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if ! clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wall -Wextra -Werror -Isrc/core -o "$WORK/fuzz_core" \
	test/fuzz/fuzz_core.c src/core/*.c -lm; then
	echo "fuzz: FAILED to build the target"
	exit 1
fi

mkdir "$WORK/corpus"
# new inputs go to the scratch corpus; the seeds in the repository stay as
# they are
"$WORK/fuzz_core" -max_total_time="$SECONDS_MAX" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$WORK/" \
	"$WORK/corpus" test/fuzz/corpus >"$WORK/log" 2>&1
status=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/log")
if [ $status -eq 0 ]; then
	echo "fuzz: ${runs:-?} inputs in ${SECONDS_MAX} s, no property violated, no sanitizer report"
	exit 0
fi
grep -a -m1 -B2 -A20 "property violated\|ERROR: \(Address\|Undefined\|libFuzzer\)\|runtime error" "$WORK/log" || tail -40 "$WORK/log"
for f in "$WORK"/crash-* "$WORK"/timeout-* "$WORK"/oom-*; do
	[ -f "$f" ] && echo "reproducer (hex): $(od -An -tx1 -v "$f" | tr -d ' \n')"
done
echo "fuzz: FAILED after ${runs:-?} inputs (exit status $status)"
exit 1
