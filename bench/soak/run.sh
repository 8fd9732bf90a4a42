#!/usr/bin/env bash
# bench/soak/run.sh
#	  Bounded concurrency soak of the monitoring loop (docs/proof.md).
#
# In a throwaway cluster (pg_virtualenv): SOAK_CLIENTS (8) pgbench clients
# write into 120 streams for SOAK_SECONDS (180) -- 100 eager, 20
# scheduled -- through an attached table (4 rows a transaction) and
# observe_loss (1 a transaction, logged by the client); two clients run
# mlma.run_checks() every half second, one worker claims requests and
# completes (or fails) them in a second transaction, as mlma-agent does.  Afterwards every observation, batch, check
# and request is counted against what the clients committed.
#
# Prints the figures and PASS or FAIL; exits 1 on any lost observation,
# unchecked or twice-checked batch, deadlock or error.
#
# Usage: bench/soak/run.sh            (as root or postgres, after make install)
#		 SOAK_SECONDS=30 bench/soak/run.sh
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

# Re-run inside a throwaway cluster.  pg_virtualenv can lose a race for a
# port against another one starting at the same moment: then the inner
# run never started, and it is retried.
if [ -z "${MLMA_SOAK_INSIDE:-}" ]; then
	export MLMA_SOAK_INSIDE=$(mktemp)
	for attempt in 1 2 3; do
		pg_virtualenv -t -o max_connections=50 -o shared_buffers=256MB "$0" "$@"
		rc=$?
		[ -s "$MLMA_SOAK_INSIDE" ] && break
		sleep $((attempt * 5))
	done
	rm -f "$MLMA_SOAK_INSIDE"
	exit $rc
fi
echo started >"$MLMA_SOAK_INSIDE"

SOAK_SECONDS=${SOAK_SECONDS:-180}
CLIENTS=${SOAK_CLIENTS:-8}
WORK=$(mktemp -d /tmp/mlma-soak.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export PGDATABASE=mlma_soak
SERVER_LOG="${PG_CLUSTER_CONF_ROOT%/postgresql}/log/postgresql-15-regress.log"

createdb mlma_soak || exit 1
psql -X -q -v ON_ERROR_STOP=1 -f "$HERE/setup.sql" >/dev/null || exit 1

echo "soak: $CLIENTS writers x 120 streams (100 eager, 20 scheduled), 2 run_checks loops, 1 worker, ${SOAK_SECONDS}s"
start=$(date +%s)
pgbench -n -c "$CLIENTS" -j 2 -T "$SOAK_SECONDS" \
	-f "$HERE/ingest_attached.sql@6" -f "$HERE/ingest_direct.sql@4" \
	>"$WORK/ingest.log" 2>&1 &
p_ingest=$!
pgbench -n -c 2 -j 1 -T "$SOAK_SECONDS" -f "$HERE/run_checks.sql" \
	>"$WORK/checks.log" 2>&1 &
p_checks=$!
pgbench -n -c 1 -j 1 -T "$SOAK_SECONDS" -f "$HERE/worker.sql" \
	>"$WORK/worker.log" 2>&1 &
p_worker=$!
wait $p_ingest; rc_ingest=$?
wait $p_checks; rc_checks=$?
wait $p_worker; rc_worker=$?
elapsed=$(( $(date +%s) - start ))

# the batches closed in the last half second wait for one more round
psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT count(*) FROM mlma.run_checks()" >/dev/null
rc_final=$?

# what the clients saw committed
script_txns() {			# script file name -> transactions pgbench completed
	awk -v f="$1" '/^SQL script [0-9]+:/ { cur = ($4 ~ f) }
		cur && /^ - [0-9]+ transactions/ { print $2; exit }' "$WORK/ingest.log"
}
failed() {				# pgbench log -> failed transactions
	awk '/^number of failed transactions:/ { print $5; exit }' "$1"
}
t_attached=$(script_txns ingest_attached)
t_direct=$(script_txns ingest_direct)
acked=$(( 4 * ${t_attached:-0} + ${t_direct:-0} ))

psql -X -At -v ON_ERROR_STOP=1 -f "$HERE/verify.sql" >"$WORK/verify.out" || exit 1
get() { awk -F'|' -v k="$1" '$1 == k { print $2 }' "$WORK/verify.out"; }
present=$(get info_observations)
errors_in_log=$(grep -c 'ERROR:' "$SERVER_LOG" 2>/dev/null || true)
deadlocks_in_log=$(grep -c 'deadlock detected' "$SERVER_LOG" 2>/dev/null || true)

{
	echo "elapsed_seconds|$elapsed"
	echo "info_transactions_attached|${t_attached:-?}"
	echo "info_transactions_observe_loss|${t_direct:-?}"
	echo "info_observations_committed_by_clients|$acked"
	echo "info_observations_per_second|$(( ${present:-0} / (elapsed > 0 ? elapsed : 1) ))"
	# pgbench does not count the transactions that were in flight at the
	# deadline, though they may commit: present may exceed what pgbench
	# counted, never fall below it.  Extra observations would show as
	# streams whose observations disagree with the rows logged in the same
	# transactions (streams_with_lost_or_extra_observations).
	diff=$(( ${present:-0} - acked ))
	echo "lost_observations|$(( diff < 0 ? -diff : 0 ))"
	echo "info_committed_in_flight_at_deadline|$(( diff > 0 ? diff : 0 ))"
	cat "$WORK/verify.out"
	echo "failed_transactions_writers|$(failed "$WORK/ingest.log")"
	echo "failed_transactions_run_checks|$(failed "$WORK/checks.log")"
	echo "failed_transactions_worker|$(failed "$WORK/worker.log")"
	echo "pgbench_exit_codes|$(( rc_ingest + rc_checks + rc_worker + rc_final ))"
	echo "errors_in_server_log|$errors_in_log"
	echo "deadlocks_in_server_log|$deadlocks_in_log"
} >"$WORK/figures"

column -t -s'|' "$WORK/figures"
bad=$(awk -F'|' '$1 !~ /^(info_|elapsed)/ && $2 != "0" { print $1 "=" $2 }' "$WORK/figures")
if [ -n "$bad" ]; then
	echo
	echo "---- ingest pgbench"; tail -25 "$WORK/ingest.log"
	echo "---- server log errors"; grep -A2 'ERROR:' "$SERVER_LOG" | head -40
	echo "FAIL: $(echo $bad)"
	exit 1
fi
echo "PASS: $acked observations committed, all present; each closed batch checked once; no deadlock, no error"
