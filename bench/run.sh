#!/usr/bin/env bash
# mlma benchmarks (make bench).  Runs each section in order and prints its
# table; exits non-zero when a section failed.  The soak and the memory
# measurement have their own commands (bench/soak/run.sh, bench/memory/run.sh).
#   INSERT_SECONDS=N   length of each pgbench run (default 20)
#   FLEET_STREAMS=N    streams of the run_checks benchmark (default 10000)
#   PLATFORM_STREAMS=N streams of the platform benchmark (default 100000;
#                      0 skips it)
#   REPORT_STREAMS=N   streams of the report benchmark (default 1000)
#   BULK_ROUNDS=N      rounds per form of the bulk benchmark (default 5)
set -uo pipefail
cd "$(dirname "$0")/.."

./test/deps.sh
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
make -s -j2
$SUDO make -s install >/dev/null
echo "machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GB, $(. /etc/os-release; echo "$PRETTY_NAME"), $(pg_config --version)"
echo

status=0
section() {
	local name=$1; shift
	echo "==== bench: $name"
	"$@" || status=1
	echo
}

# -- kernels: the numeric core in C against SciPy, same data, same run
#    (every src/core/*.c: the core has no PostgreSQL headers)
build_kernels() {
	local core
	core=$(ls src/core/*.c)
	cc -O2 -Wall -Wextra -Werror -Isrc/core -o bench/kernels bench/kernels.c $core -lm
}
kernels() {
	build_kernels && /usr/bin/python3 bench/bench_kernels.py bench/kernels
}
section kernels kernels

# -- monitored INSERT into an attached table vs plain INSERT (pgbench), bulk
#    load, and bytes per retained observation
section insert ./bench/insert/run.sh "${INSERT_SECONDS:-20}"

# -- multi-row statements into an attached table vs a plain one: INSERT ...
#    SELECT, UPDATE filling in actual, COPY (300 000 rows, 1 000 streams)
section bulk ./bench/bulk/run.sh "${BULK_ROUNDS:-5}"

# -- run_checks() at 10 000 streams vs a Python/SciPy job
section fleet ./bench/fleet/run.sh

# -- replay() over 1 000 000 observations, seconds per million
section replay ./bench/replay/run.sh
# -- a whole platform: PLATFORM_STREAMS streams x one day through an attached
#    table, a scheduled round, fleet_status, stream_status, purge
[ "${PLATFORM_STREAMS:-100000}" -gt 0 ] && section platform ./bench/platform/run.sh
# -- report() and the dashboard views at 1 000 streams x 30 days
section report ./bench/report/run.sh

exit $status
