-- Bulk ingestion and storage after 1 000 000 observations
-- (1 000 streams x 1 000 observations, batch 96, eager Welch checks).
-- The rows go through an attached table in 10 transactions of 100 000 rows
-- (INSERT ... SELECT, like COPY); the same rows into a plain table give the
-- bulk ratio.
CREATE TABLE store_src AS
SELECT 'store/zone-' || z AS zone,
	   '2024-01-01'::timestamptz + g * interval '15 minutes' AS target_at,
	   100::float8 AS predicted, 100 + random() * 2 AS actual, g / 100 AS chunk
  FROM generate_series(0, 999) g, generate_series(1, 1000) z;
CREATE TABLE store_plain (zone text, target_at timestamptz, predicted float8, actual float8);
CREATE TABLE store_monitored (LIKE store_plain);
SELECT mlma.attach('store_monitored', 'zone', 'actual', 'predicted', 'target_at',
				   '{"batch_size": 96}');

CREATE TABLE store_timing (target text, seconds float8);
CREATE PROCEDURE store_load(target text)
LANGUAGE plpgsql AS $$
DECLARE
	t0		timestamptz;
	total	float8 := 0;
BEGIN
	FOR c IN 0 .. 9 LOOP
		t0 := clock_timestamp();
		EXECUTE format('INSERT INTO %I SELECT zone, target_at, predicted, actual
						  FROM store_src WHERE chunk = %s', target, c);
		total := total + extract(epoch FROM clock_timestamp() - t0);
		COMMIT;
	END LOOP;
	INSERT INTO store_timing VALUES (target, total);
END;
$$;
CALL store_load('store_plain');
CALL store_load('store_monitored');
SELECT target, round(seconds::numeric, 2) AS seconds,
	   round(1000000 / seconds) AS rows_per_second
  FROM store_timing;
SELECT round(((SELECT seconds FROM store_timing WHERE target = 'store_plain')
			 / (SELECT seconds FROM store_timing WHERE target = 'store_monitored'))::numeric, 3)
	   AS bulk_ratio;

VACUUM ANALYZE mlma.batches, mlma.open_runs, mlma.checks, mlma.reference_batches;
SELECT (SELECT sum(cardinality(losses)) FROM mlma.batches) AS closed_obs,
	   (SELECT count(*) FROM mlma.observations) AS open_obs,
	   (SELECT count(*) FROM mlma.batches) AS batches,
	   (SELECT count(*) FROM mlma.checks) AS checks,
	   pg_total_relation_size('mlma.batches') AS batches_bytes,
	   round(pg_total_relation_size('mlma.batches')::numeric
			 / (SELECT sum(cardinality(losses)) FROM mlma.batches), 2) AS bytes_per_closed_obs;
SELECT pg_total_relation_size('mlma.open_runs') AS open_table_bytes,
	   pg_total_relation_size('mlma.checks') AS checks_bytes,
	   pg_total_relation_size('mlma.reference_batches') AS references_bytes;
-- the open-batch table is a queue: VACUUM makes its space reusable but keeps
-- the file at its high-water mark; VACUUM FULL shows what it really holds
VACUUM FULL mlma.open_runs;
SELECT pg_total_relation_size('mlma.open_runs') AS open_table_bytes_compacted,
	   round((pg_total_relation_size('mlma.batches') + pg_total_relation_size('mlma.open_runs')
			  + pg_total_relation_size('mlma.checks') + pg_total_relation_size('mlma.reference_batches'))::numeric
			 / 1000000, 2) AS bytes_per_obs_all_tables;
