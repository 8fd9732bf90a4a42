#!/usr/bin/env bash
# bench/memory/run.sh
#	  Backend memory over MEMORY_ROWS (10 000 000) observations through the
#	  trigger path, in ONE backend (docs/proof.md).
#
# In a throwaway cluster (pg_virtualenv), one psql session inserts rows into
# an attached table, MEMORY_CHUNK (10 000) rows per INSERT, autocommit, rows
# spread over 100 streams (batch_size 96, eager checks).  After every
# MEMORY_STEP (1 000 000) rows the same backend records its resident set
# (VmRSS, and RssAnon: its private memory, without the shared buffers it
# touched) from /proc and the totals of pg_backend_memory_contexts.
#
# Prints the table and FLAT or GROWING: GROWING when RssAnon or the
# memory contexts grew by more than MEMORY_TOLERANCE_KB (4096) between the
# first step and the last (exit 1).
#
# Usage: bench/memory/run.sh                  (after make install)
#		 MEMORY_ROWS=2000000 bench/memory/run.sh
set -uo pipefail

# Re-run inside a throwaway cluster.  pg_virtualenv can lose a race for a
# port against another one starting at the same moment: then the inner
# run never started, and it is retried.
if [ -z "${MLMA_MEMORY_INSIDE:-}" ]; then
	export MLMA_MEMORY_INSIDE=$(mktemp)
	for attempt in 1 2 3; do
		pg_virtualenv -t -o shared_buffers=256MB -o max_wal_size=4GB \
			-o synchronous_commit=off "$0" "$@"
		rc=$?
		[ -s "$MLMA_MEMORY_INSIDE" ] && break
		sleep $((attempt * 5))
	done
	rm -f "$MLMA_MEMORY_INSIDE"
	exit $rc
fi
echo started >"$MLMA_MEMORY_INSIDE"

ROWS=${MEMORY_ROWS:-10000000}
STEP=${MEMORY_STEP:-1000000}
CHUNK=${MEMORY_CHUNK:-10000}
TOL=${MEMORY_TOLERANCE_KB:-4096}
[ "$STEP" -gt "$ROWS" ] && STEP=$ROWS
WORK=$(mktemp -d /tmp/mlma-memory.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export PGDATABASE=mlma_memory
createdb mlma_memory || exit 1

# the script of the one session
{
	cat <<'SQL'
\set ON_ERROR_STOP 1
\o /dev/null
CREATE EXTENSION mlma;
CREATE TABLE mem_preds (stream text, actual float8, predicted float8);
SELECT mlma.attach('mem_preds', 'stream', 'actual', 'predicted');
CREATE TABLE mem_log (rows bigint, seconds numeric, vm_rss_kb bigint,
					  rss_anon_kb bigint, contexts int, context_total_kb bigint,
					  context_used_kb bigint, cache_kb bigint);
CREATE FUNCTION pg_temp.proc_kb(field text) RETURNS bigint LANGUAGE sql AS $$
	SELECT substring(pg_read_file('/proc/' || pg_backend_pid() || '/status')
					 FROM field || ':\s+(\d+) kB')::bigint
$$;
CREATE FUNCTION pg_temp.sample(n bigint) RETURNS void LANGUAGE sql AS $$
	INSERT INTO mem_log
	SELECT n, round(extract(epoch FROM clock_timestamp() -
			(SELECT min(backend_start) FROM pg_stat_activity WHERE pid = pg_backend_pid()))::numeric, 1),
		   pg_temp.proc_kb('VmRSS'), pg_temp.proc_kb('RssAnon'),
		   count(*), sum(total_bytes) / 1024, sum(used_bytes) / 1024,
		   sum(total_bytes) FILTER (WHERE name = 'CacheMemoryContext') / 1024
	  FROM pg_backend_memory_contexts
$$;
SELECT pg_temp.sample(0);
SQL
	done_rows=0
	while [ "$done_rows" -lt "$ROWS" ]; do
		n=$CHUNK
		[ $((done_rows + n)) -gt "$ROWS" ] && n=$((ROWS - done_rows))
		echo "INSERT INTO mem_preds SELECT 'mem/' || (g % 100), a, a + random() FROM (SELECT g, 10 * random() AS a FROM generate_series($((done_rows + 1)), $((done_rows + n))) g) x;"
		done_rows=$((done_rows + n))
		if [ $((done_rows % STEP)) -eq 0 ] || [ "$done_rows" -eq "$ROWS" ]; then
			echo "SELECT pg_temp.sample($done_rows);"
		fi
	done
	echo '\o'
	echo "SELECT (SELECT sum(open_start_seq) FROM mlma.stream_state) + (SELECT count(*) FROM mlma.observations) AS observations, (SELECT count(*) FROM mlma.batches) AS batches, (SELECT count(*) FROM mlma.checks) AS checks;"
	echo "SELECT * FROM mem_log ORDER BY rows;"
} >"$WORK/session.sql"

echo "memory: $ROWS observations through an attached table in one backend, sampled every $STEP"
psql -X -q -v ON_ERROR_STOP=1 -P pager=off -f "$WORK/session.sql" >"$WORK/out.txt" || { cat "$WORK/out.txt"; exit 1; }
cat "$WORK/out.txt"

# growth from the first sample after warm-up to the last
read -r d_anon d_ctx <<<"$(psql -X -At -F' ' -c "
	SELECT l.rss_anon_kb - f.rss_anon_kb, l.context_total_kb - f.context_total_kb
	  FROM (SELECT * FROM mem_log WHERE rows > 0 ORDER BY rows LIMIT 1) f,
		   (SELECT * FROM mem_log ORDER BY rows DESC LIMIT 1) l")"
echo "growth from the first sample to the last: RssAnon ${d_anon} kB, memory contexts ${d_ctx} kB (tolerance ${TOL} kB)"
if [ "${d_anon:-999999}" -gt "$TOL" ] || [ "${d_ctx:-999999}" -gt "$TOL" ]; then
	echo "GROWING"
	exit 1
fi
echo "FLAT"
