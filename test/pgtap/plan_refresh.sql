-- mlma's saved statements are prepared anew a few seconds after they were
-- made (mlma_plan, src/spi_values.c).  A backend that starts writing while
-- mlma's tables are empty (and analyzed as empty) gets, after five runs of
-- each statement, a generic plan that reads those tables by sequential
-- scan; when the tables have grown, a statement run more than five seconds
-- later must read them by index again.  The tables' scan counters of this
-- transaction (pg_stat_xact_user_tables) show which.
BEGIN;
SELECT plan(4);

CREATE TABLE plan_feed (zone text, at timestamptz, predicted float8, actual float8);
SELECT mlma.attach('plan_feed', 'zone', 'actual', 'predicted', 'at',
				   '{"batch_size": 4, "method": "welch"}');

-- the tables as a new installation has them: empty, and analyzed so
ANALYZE mlma.streams, mlma.stream_state, mlma.reference_batches,
		mlma.reference_history, mlma.open_runs, mlma.batches;

-- ten multi-row statements over two streams: the plan cache settles on
-- its generic plans while the tables hold a handful of rows
CREATE FUNCTION pg_temp.feed(streams int, rows_per_stream int, t0 int) RETURNS void
LANGUAGE sql AS $$
	INSERT INTO plan_feed
	SELECT 'z' || s, '2024-01-01'::timestamptz + (t0 + k) * interval '1 minute',
		   10, 10 + (k % 3)
	  FROM generate_series(1, streams) s, generate_series(1, rows_per_stream) k
$$;
SELECT pg_temp.feed(2, 5, i * 10) FROM generate_series(1, 10) i;

-- 3 000 streams, each with a reference (a warmed first batch) and an open
-- batch: mlma.reference_batches and mlma.reference_history grow to
-- hundreds of pages
SELECT pg_temp.feed(3000, 6, 1000);
SELECT cmp_ok((SELECT count(*) FROM mlma.reference_batches), '>=', 3000::bigint,
			  'every stream has its reference');

-- a statement more than five seconds later, over a few streams
SELECT pg_sleep(5.5);
CREATE TEMP TABLE scans_before AS
SELECT relname, seq_scan, coalesce(idx_scan, 0) AS idx_scan
  FROM pg_stat_xact_user_tables WHERE schemaname = 'mlma';
SELECT pg_temp.feed(20, 5, 2000);
CREATE TEMP TABLE scans_after AS
SELECT relname, seq_scan, coalesce(idx_scan, 0) AS idx_scan
  FROM pg_stat_xact_user_tables WHERE schemaname = 'mlma';

SELECT is((SELECT a.seq_scan - coalesce(b.seq_scan, 0)
			 FROM scans_after a LEFT JOIN scans_before b USING (relname)
			WHERE a.relname = 'reference_batches'), 0::bigint,
		  'a statement of 20 streams reads no reference by sequential scan');
SELECT is((SELECT a.seq_scan - coalesce(b.seq_scan, 0)
			 FROM scans_after a LEFT JOIN scans_before b USING (relname)
			WHERE a.relname = 'reference_history'), 0::bigint,
		  'nor the reference history');
SELECT cmp_ok((SELECT a.idx_scan - coalesce(b.idx_scan, 0)
				 FROM scans_after a LEFT JOIN scans_before b USING (relname)
				WHERE a.relname = 'reference_batches'), '>', 0::bigint,
			  'it reads the references by index');

SELECT * FROM finish();
ROLLBACK;
