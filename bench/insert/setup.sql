-- mlma insert benchmark: 1 000 streams, batch 96, eager Welch checks.
-- Two identical user tables; only bench_monitored is attached.
CREATE TABLE bench_plain (
	zone		text NOT NULL,
	target_at	timestamptz NOT NULL,
	predicted	float8,
	actual		float8
);
CREATE TABLE bench_monitored (LIKE bench_plain);

SELECT count(mlma.create_stream('bench/zone-' || z, batch_size => 96, method => 'welch'))
  FROM generate_series(1, 1000) z;
SELECT mlma.attach('bench_monitored', 'zone', 'actual', 'predicted', 'target_at',
				   '{"batch_size": 96, "method": "welch"}');

-- warm every stream: one batch each becomes its reference, and the open
-- batches are filled to staggered levels, so that from the first second one
-- insert in 96 closes a batch that is tested, as in steady state
INSERT INTO bench_monitored
SELECT 'bench/zone-' || z, now(), 100, 100 + random()
  FROM generate_series(1, 1000) z, generate_series(1, 96 + (z * 37) % 96) g;
TRUNCATE bench_plain;
VACUUM ANALYZE;
