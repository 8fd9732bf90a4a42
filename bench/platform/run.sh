#!/usr/bin/env bash
# bench/platform/run.sh
#	  A whole platform, measured: PLATFORM_STREAMS (100 000) forecast streams
#	  with one day of 96 observations each (every 15 minutes) loaded by COPY
#	  into an attached table, then one scheduled round with FDR control over
#	  every stream, fleet_status, stream_status filtered by a label, and
#	  purge.  Prints each step's time, mlma's storage per observation and the
#	  peak memory (VmHWM) of the one backend that ran every step.
#
# Streams: batch_size 48, check_mode 'scheduled', labels {"region": "r<i % 20>"};
# the first 48 observations of the day warm the reference, the other 48 make
# one test batch per stream, so the round has PLATFORM_STREAMS due checks.
# One stream in 100 gets twice as bad in the second half of the day.
#
# Day 1 is loaded by COPY, PLATFORM_CHUNK (1 000) streams per COPY (a
# transaction each); after the round, day 2's forecasts are copied without
# actuals (no observation yet), and ONE UPDATE fills in the actual of all of
# them: one statement, one transaction, every stream's writer lock held to
# its end (row locks: the lock table is not involved).  A second round then
# tests day 2.
#
# Usage: bench/platform/run.sh                   (after make install)
#		 PLATFORM_STREAMS=10000 bench/platform/run.sh
# With PLATFORM_INSIDE=1 it runs against the server of the libpq
# environment (PGHOST, PGPORT...) instead of a throwaway cluster.
set -uo pipefail

if [ -z "${PLATFORM_INSIDE:-}" ]; then
	export PLATFORM_INSIDE=1
	exec pg_virtualenv -t -o shared_buffers=1GB -o max_wal_size=8GB \
		-o synchronous_commit=off -o checkpoint_timeout=30min "$0" "$@"
fi

N=${PLATFORM_STREAMS:-100000}
CHUNK=${PLATFORM_CHUNK:-1000}
export PGDATABASE=${PLATFORM_DB:-mlma_platform}
WORK=$(mktemp -d /tmp/mlma-platform.XXXXXX)
chmod 755 "$WORK"
trap 'rm -rf "$WORK"' EXIT
dropdb --if-exists "$PGDATABASE" >/dev/null 2>&1
createdb "$PGDATABASE" || exit 1

# the 96 timestamps of the day (UTC), ending now, and of the day after
now=$(date -u +%s)
start=$((now - now % 900 - 96 * 900))
stamps=""
stamps2=""
for t in $(seq 0 95); do
	stamps="$stamps$(date -u -d "@$((start + t * 900))" '+%Y-%m-%d %H:%M:%S+00')|"
	stamps2="$stamps2$(date -u -d "@$((start + 86400 + t * 900))" '+%Y-%m-%d %H:%M:%S+00')|"
done
printf '%s\n%s\n' "$stamps" "$stamps2" >"$WORK/stamps"

# rows of streams lo..hi, in time order: stream, observed_at, actual,
# predicted; day 2 (third argument): the day after, actual NULL
cat >"$WORK/gen.sh" <<'EOF'
#!/bin/sh
awk -v lo="$1" -v hi="$2" -v day="${3:-1}" 'NR == day { stamps = $0 }
END {
	split(stamps, ts, "|"); srand(lo);
	for (t = 1; t <= 96; t++)
		for (s = lo; s <= hi; s++) {
			z = sqrt(-2 * log(1 - rand())) * cos(6.283185307179586 * rand());
			f = (s % 100 == 0 && t > 48) ? 2.0 : 1.0;
			if (day == 1)
				printf "p/%d\t%s\t%.4f\t100\n", s, ts[t], 100 + 10 * f * z;
			else
				printf "p/%d\t%s\t\\N\t100\n", s, ts[t];
		}
}' "$(dirname "$0")/stamps"
EOF
chmod 755 "$WORK/gen.sh"

# the COPYs of day $1 (1; 2: without actuals), PLATFORM_CHUNK streams each
copy_day() {
	local lo hi
	for ((lo = 1; lo <= N; lo += CHUNK)); do
		hi=$((lo + CHUNK - 1)); [ $hi -gt "$N" ] && hi=$N
		echo "\\copy forecasts FROM PROGRAM '$WORK/gen.sh $lo $hi $1'"
	done
}

# one scheduled round over every waiting check, timed as step $1
round() {
	cat <<'SQL'
SELECT count(*) AS waiting FROM mlma.check_queue \gset
\echo   :waiting checks wait
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) AS checks, count(*) FILTER (WHERE drift) AS flags FROM mlma.run_checks(fdr => 0.05) \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 2) AS s \gset
SQL
	echo "\\echo step $1 :checks checks :flags flags :s s"
}

# one psql session runs every step, so VmHWM is the peak of one backend
{
	cat <<'SQL'
\set ON_ERROR_STOP 1
\pset footer off
CREATE EXTENSION IF NOT EXISTS mlma;
CREATE TABLE forecasts (stream text NOT NULL, observed_at timestamptz NOT NULL,
						actual float8, predicted float8 NOT NULL);
SELECT mlma.attach('forecasts', 'stream', 'actual', 'predicted', 'observed_at');
-- the backend's own peak resident memory, from /proc/self/status
CREATE FUNCTION pg_temp.hwm() RETURNS text LANGUAGE sql AS
$$ SELECT substring(pg_read_file('/proc/self/status') FROM 'VmHWM:\s*(\d+ kB)')
		  || ' (peak, shared buffers touched included), RssAnon '
		  || substring(pg_read_file('/proc/self/status') FROM 'RssAnon:\s*(\d+ kB)')
		  || ' (private, now)' $$;
SELECT clock_timestamp() AS t0 \gset
SQL
	for ((lo = 1; lo <= N; lo += CHUNK)); do
		hi=$((lo + CHUNK - 1)); [ $hi -gt "$N" ] && hi=$N
		echo "SELECT count(mlma.create_stream('p/' || i, batch_size => 48, check_mode => 'scheduled', labels => jsonb_build_object('region', 'r' || i % 20))) FROM generate_series($lo, $hi) i \\g /dev/null"
	done
	cat <<'SQL'
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 1) AS s \gset
\echo step create_streams :s s
SELECT pg_temp.hwm() AS hwm \gset
\echo   after create_streams: VmHWM :hwm
SELECT clock_timestamp() AS t0 \gset
SQL
	copy_day 1
	cat <<'SQL'
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 1) AS s,
	   (SELECT count(*) FROM forecasts) AS rows \gset
\echo step copy :rows rows :s s
SELECT round(:rows / :s) AS rate \gset
\echo   :rate rows/s
SELECT pg_temp.hwm() AS hwm \gset
\echo   after copy: VmHWM :hwm

SQL
	round run_checks
	cat <<'SQL'
SELECT checks, flags, deferred, finished_at - started_at AS took FROM mlma.rounds;
SELECT pg_temp.hwm() AS hwm \gset
\echo   after run_checks: VmHWM :hwm

SQL
	# day 2: forecasts without actuals, then one UPDATE fills them all in
	echo "SELECT clock_timestamp() AS t0 \\gset"
	copy_day 2
	cat <<'SQL'
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 1) AS s,
	   (SELECT count(*) FROM forecasts WHERE actual IS NULL) AS rows \gset
\echo step copy_day2_without_actual :rows rows :s s
VACUUM ANALYZE forecasts;
SELECT clock_timestamp() AS t0 \gset
UPDATE forecasts SET actual = 100 + 10 * (CASE WHEN right(stream, 2) = '00' THEN 2 ELSE 1 END)
	   * sqrt(-2 * ln(1 - random())) * cos(6.283185307179586 * random())
 WHERE actual IS NULL;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 1) AS s \gset
\echo step update_fills_actual :rows rows in one statement :s s
SELECT round(:rows / :s) AS rate \gset
\echo   :rate rows/s
SELECT pg_temp.hwm() AS hwm \gset
\echo   after update: VmHWM :hwm
SQL
	round run_checks_day2
	cat <<'SQL'

SELECT clock_timestamp() AS t0 \gset
SELECT streams, monitoring, drift, waiting_checks, checks_24h, open_requests,
	   oldest_waiting_check_age, last_round_at IS NOT NULL AS has_last_round
  FROM mlma.fleet_status;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 2) AS s \gset
\echo step fleet_status :s s

SELECT clock_timestamp() AS t0 \gset
SELECT count(*) AS streams, count(*) FILTER (WHERE state = 'drift') AS drift
  FROM mlma.stream_status WHERE labels @> '{"region": "r7"}';
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 2) AS s \gset
\echo step stream_status_by_label :s s
SELECT pg_temp.hwm() AS hwm \gset
\echo   after status: VmHWM :hwm

-- storage: every mlma table and index, per observation recorded (after
-- VACUUM: the observations of closed batches are deleted rows until then)
VACUUM ANALYZE mlma.open_runs, mlma.batches, mlma.checks, mlma.check_queue,
	mlma.stream_state, mlma.reference_batches;
SELECT (SELECT count(*) FROM forecasts) AS obs,
	   sum(pg_total_relation_size(c.oid)) AS mlma_bytes
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'mlma' AND c.relkind = 'r' \gset
SELECT round(:mlma_bytes::numeric / :obs, 1) AS per_obs,
	   pg_size_pretty(:mlma_bytes::bigint) AS total,
	   round(pg_total_relation_size('forecasts')::numeric / :obs, 1) AS src_per_obs \gset
\echo storage mlma :total for :obs observations: :per_obs bytes per observation (the attached table itself: :src_per_obs)
SELECT relname, pg_size_pretty(pg_total_relation_size(c.oid)) AS size
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'mlma' AND c.relkind = 'r'
 ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 5;

SELECT clock_timestamp() AS t0 \gset
SELECT * FROM mlma.purge(interval '0');
SELECT round(extract(epoch FROM clock_timestamp() - :'t0')::numeric, 2) AS s \gset
\echo step purge :s s
SELECT pg_temp.hwm() AS hwm \gset
\echo   peak backend memory: VmHWM :hwm
SQL
} >"$WORK/platform.sql"

echo "platform: $N streams x 2 days of 96 observations; day 1 by COPY ($CHUNK streams per transaction), day 2 by one UPDATE that fills in actual"
t=$(date +%s)
psql -X -q -f "$WORK/platform.sql" || exit 1
echo "total $(( $(date +%s) - t )) s"
