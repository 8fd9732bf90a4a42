#!/usr/bin/env bash
# mlma insert benchmark.
#
#   bench/insert/run.sh [seconds]
#
# 1. Throughput: pgbench, 2 clients, one run mixing two scripts with equal
#    weight: INSERT into bench_plain (no trigger) and INSERT into
#    bench_monitored (attached: 1 000 streams, batch 96, eager Welch).  The
#    ratio is mean latency plain / mean latency monitored, i.e. the
#    throughput of monitored inserts relative to plain ones under the same
#    conditions.  Measured with synchronous_commit on (the default) and off
#    (no WAL flush wait, the harsher comparison).
# 2. Bulk load: 1 000 000 rows (1 000 streams) through an attached table in
#    transactions of 100 000 rows, against the same rows into a plain table.
# 3. Storage: bytes per retained observation after those 1 000 000.
#
# Uses the server in PGHOST/PGPORT, or starts a throwaway one (pg_virtualenv).
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-20}

if [ -z "${PGPORT:-}" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		exec runuser -u postgres -- pg_virtualenv "$PWD/run.sh" "$SECS"
	fi
	exec pg_virtualenv "$PWD/run.sh" "$SECS"
fi

DB=mlma_bench_insert
dropdb --if-exists "$DB" >/dev/null 2>&1 || true
createdb "$DB"
psql -qX -v ON_ERROR_STOP=1 -d "$DB" -c "CREATE EXTENSION mlma"
echo "setup: 1000 streams, batch 96, welch, references warmed"
psql -qX -v ON_ERROR_STOP=1 -d "$DB" -f setup.sql >/dev/null

lat() {	# mean latency (ms) of the script named $2 in pgbench output $1
	awk -v s="$2" '
		$0 ~ "^SQL script [0-9]+: .*" s { found = 1 }
		found && /latency average/ { sub(/.*= */, ""); print $1; exit }' "$1"
}

run() {	# $1: label, $2: PGOPTIONS
	local out
	out=$(mktemp)
	PGOPTIONS="$2" pgbench -n -c 2 -j 2 -T "$SECS" -d "$DB" \
		-f plain.sql@1 -f monitored.sql@1 >"$out" 2>&1 || { cat "$out"; return 1; }
	local lp lm
	lp=$(lat "$out" plain.sql)
	lm=$(lat "$out" monitored.sql)
	local tps
	tps=$(awk '/^tps/ { print $3; exit }' "$out")
	printf '%-26s plain %7s ms  monitored %7s ms  ratio %s  (total tps %s)\n' \
		"$1" "$lp" "$lm" "$(awk -v a="$lp" -v b="$lm" 'BEGIN { printf "%.3f", a / b }')" "$tps"
	rm -f "$out"
}

echo "pgbench: 2 clients, ${SECS}s, plain and monitored INSERT mixed 1:1 in the same run"
run "synchronous_commit=on" ""
run "synchronous_commit=off" "-c synchronous_commit=off"

psql -qX -d "$DB" -c "SELECT (SELECT count(*) FROM bench_plain) AS plain_rows,
	(SELECT count(*) FROM bench_monitored) AS monitored_rows,
	(SELECT sum(observations) FROM mlma.stream_status) AS observations,
	(SELECT count(*) FROM mlma.checks) AS checks,
	(SELECT count(*) FROM mlma.retrain_requests) AS requests"

echo "bulk load and storage: 1 000 000 observations through an attached table"
dropdb "$DB"
createdb "$DB"
psql -qX -v ON_ERROR_STOP=1 -d "$DB" -c "CREATE EXTENSION mlma"
psql -X -v ON_ERROR_STOP=1 -d "$DB" -f storage.sql | sed -n '/target/,$p'
dropdb "$DB"
