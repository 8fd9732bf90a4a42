#!/usr/bin/env bash
# mlma bulk benchmark: multi-row statements into an attached table against
# the same statements into a plain table (no trigger), same server, same run.
#
#   bench/bulk/run.sh [rounds]
#
# 300 000 rows over 1 000 streams (batch 96, eager Welch, references warmed),
# each form timed `rounds` times (default 5; medians are printed, the ratio
# is the median of the rounds' ratios, plain and monitored run back to back):
#   INSERT ... SELECT   one statement of 300 000 rows
#   UPDATE fills actual one statement: 300 000 rows inserted with actual NULL
#                       (not timed), then one UPDATE sets actual
#   COPY                one COPY FROM of the same 300 000 rows (CSV)
# ratio = time plain / time monitored (1.0: monitoring costs nothing).  The
# same statements through the row trigger of 0.1.0 (one observation at a
# time) are timed alongside, for comparison, on 1 000 streams of their own.
#
# Uses the server in PGHOST/PGPORT, or starts a throwaway one (pg_virtualenv).
set -euo pipefail
cd "$(dirname "$0")"
ROUNDS=${1:-5}

if [ -z "${PGPORT:-}" ]; then
	if [ "$(id -u)" -eq 0 ]; then
		exec runuser -u postgres -- pg_virtualenv "$PWD/run.sh" "$ROUNDS"
	fi
	exec pg_virtualenv "$PWD/run.sh" "$ROUNDS"
fi

DB=mlma_bench_bulk
dropdb --if-exists "$DB" >/dev/null 2>&1 || true
createdb "$DB"
psql -qX -v ON_ERROR_STOP=1 -d "$DB" -c "CREATE EXTENSION mlma"
psql -qX -v ON_ERROR_STOP=1 -d "$DB" -f setup.sql >/dev/null

# ms of the last statement of a psql script (\timing output)
timed() {
	psql -qX -v ON_ERROR_STOP=1 -d "$DB" -c '\timing on' "$@" |
		awk '/^Time:/ { t = $2 } END { print t }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

once() {	# $1 form, $2 table -> ms of one statement
	local form=$1 t=$2 rows=bulk_rows
	# the row trigger's table has streams of its own (setup.sql)
	[ "$t" = bulk_rowtrigger ] && rows=bulk_rows_rt
	psql -qX -d "$DB" -c "TRUNCATE $t" -c "VACUUM $t" -c "CHECKPOINT" >/dev/null
	case $form in
	insert)
		timed -c "INSERT INTO $t SELECT * FROM $rows" ;;
	update)
		psql -qX -d "$DB" -c "INSERT INTO $t SELECT zone, target_at, predicted, NULL FROM $rows" \
			-c "VACUUM ANALYZE $t" >/dev/null
		timed -c "UPDATE $t SET actual = 100 + random()" ;;
	copy)
		timed -c "COPY $t FROM '/tmp/mlma_$rows.csv' WITH (FORMAT csv)" ;;
	esac
}

# Each round times the plain, the monitored and the row-trigger statement
# back to back, so a round's ratio compares statements run under the same
# conditions (the machine's speed drifts between rounds); printed: the
# median time of each, and the median of the rounds' ratios.
echo "300 000 rows, 1 000 streams, batch 96, eager welch; median of $ROUNDS rounds"
for form in insert update copy; do
	out=$(mktemp)
	for i in $(seq "$ROUNDS"); do
		echo "$(once "$form" bulk_plain) $(once "$form" bulk_monitored) $(once "$form" bulk_rowtrigger)"
	done >"$out"
	p=$(awk '{ print $1 }' "$out" | median)
	m=$(awk '{ print $2 }' "$out" | median)
	r=$(awk '{ print $3 }' "$out" | median)
	rm_=$(awk '{ print $1 / $2 }' "$out" | median)
	rr=$(awk '{ print $1 / $3 }' "$out" | median)
	rm -f "$out"
	case $form in
	insert) label="INSERT ... SELECT" ;;
	update) label="UPDATE fills actual" ;;
	copy)   label="COPY FROM" ;;
	esac
	printf '%-20s plain %8.1f ms  monitored %8.1f ms  ratio %.2f   (row trigger %8.1f ms, ratio %.2f)\n' \
		"$label" "$p" "$m" "$rm_" "$r" "$rr"
done
psql -qX -d "$DB" -c "SELECT (SELECT count(*) FROM mlma.batches) AS batches,
	(SELECT count(*) FROM mlma.checks) AS checks" | cat
dropdb "$DB"
rm -f /tmp/mlma_bulk_rows.csv /tmp/mlma_bulk_rows_rt.csv
