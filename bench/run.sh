#!/usr/bin/env bash
# mlma benchmarks (make bench).  Runs each section in order and prints its
# table; exits non-zero when a section failed.
set -uo pipefail
cd "$(dirname "$0")/.."

status=0
section() {
	local name=$1; shift
	echo "==== bench: $name"
	"$@" || status=1
	echo
}

# -- kernels: the numeric core in C against SciPy, same data, same run
build_kernels() {
	local core
	core=$(ls src/stats_*.c src/loss.c | grep -v 'src/stats_sql.c')
	cc -O2 -Wall -Wextra -Werror -Isrc -o bench/kernels bench/kernels.c $core -lm
}
kernels() {
	build_kernels && /usr/bin/python3 bench/bench_kernels.py bench/kernels
}
section kernels kernels

exit $status
