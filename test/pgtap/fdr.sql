-- False discovery rate control across the fleet (scheduled mode).
--
-- 2 000 streams, one test batch each (50 vs 50 losses, lognormal).  Under a
-- global null a BH round must raise at most 5% as many false alarms as
-- testing every stream at its own alpha; with 200 truly worse streams it
-- must find at least 80% of them while the false share among its flags
-- stays near the FDR level.  Fixed seeds: the data are the same every run.
BEGIN;
SELECT plan(7);

CREATE TEMP TABLE fleet_truth (name text PRIMARY KEY, shifted bool NOT NULL);

-- round 1: global null
INSERT INTO fleet_truth SELECT 'null/' || i, false FROM generate_series(1, 2000) i;
SELECT count(mlma.create_stream(name, batch_size => 50, check_mode => 'scheduled'))
  FROM fleet_truth;
SELECT setseed(0.42);
SELECT count(mlma.observe_loss('null/' || i,
		exp(0.3 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))))
  FROM generate_series(1, 100) j, generate_series(1, 2000) i;

CREATE TEMP TABLE round1 AS SELECT * FROM mlma.run_checks(fdr => 0.05);

SELECT is((SELECT count(*) FROM round1), 2000::bigint,
		  'global null: the round tests one batch of each of the 2000 streams');
SELECT cmp_ok((SELECT count(*) FROM round1 WHERE p_value <= 0.05), '>=', 50::bigint,
			  'global null: per-stream alpha = 0.05 would raise dozens of false alarms');
SELECT ok((SELECT count(*) FILTER (WHERE drift) FROM round1)
		  <= 0.05 * (SELECT count(*) FROM round1 WHERE p_value <= 0.05),
		  'global null: BH raises at most 5% as many false alarms as per-stream alpha');
SELECT is((SELECT count(*) FROM mlma.retrain_requests),
		  (SELECT count(*) FILTER (WHERE drift) FROM round1),
		  'global null: one request per flagged stream, nothing else');

SELECT diag(format('global null: %s of 2000 batches at p <= 0.05, %s flagged by BH',
				   count(*) FILTER (WHERE p_value <= 0.05), count(*) FILTER (WHERE drift)))
  FROM round1;

SELECT count(mlma.drop_stream(name)) FROM fleet_truth;
TRUNCATE fleet_truth;

-- round 2: 200 of 2000 streams get 30% worse in their test batch
INSERT INTO fleet_truth SELECT 'mix/' || i, i <= 200 FROM generate_series(1, 2000) i;
SELECT count(mlma.create_stream(name, batch_size => 50, check_mode => 'scheduled'))
  FROM fleet_truth;
SELECT setseed(0.17);
SELECT count(mlma.observe_loss('mix/' || i,
		CASE WHEN i <= 200 AND j > 50 THEN 1.3 ELSE 1 END
		* exp(0.3 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()))))
  FROM generate_series(1, 100) j, generate_series(1, 2000) i;

CREATE TEMP TABLE round2 AS
SELECT c.*, t.shifted
  FROM mlma.run_checks(fdr => 0.05) c
  JOIN mlma.streams s USING (stream_id)
  JOIN fleet_truth t ON t.name = s.name;

SELECT is((SELECT count(*) FROM round2), 2000::bigint,
		  'mixed fleet: the round tests all 2000 streams');
SELECT cmp_ok((SELECT count(*) FILTER (WHERE drift AND shifted) FROM round2)::float8 / 200,
			  '>=', 0.80::float8,
			  'mixed fleet: at least 80% of the 200 worse streams are found');
SELECT cmp_ok((SELECT count(*) FILTER (WHERE drift AND NOT shifted)::float8
						/ greatest(count(*) FILTER (WHERE drift), 1) FROM round2),
			  '<=', 0.10::float8,
			  'mixed fleet: the false share among flags stays near the FDR level (<= 0.10 at fdr 0.05)');

SELECT diag(format('mixed fleet: %s flags, %s of 200 worse streams found, %s false',
				   count(*) FILTER (WHERE drift), count(*) FILTER (WHERE drift AND shifted),
				   count(*) FILTER (WHERE drift AND NOT shifted)))
  FROM round2;

SELECT * FROM finish();
ROLLBACK;
