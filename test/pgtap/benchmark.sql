-- The benchmark reference policy: a challenger's losses on the same
-- observations are the reference of each closed batch.
--
-- Benchmark values through observe (a prediction, its loss computed with the
-- stream's loss function) and observe_loss (the loss itself), their
-- validation, the compact storage in batches, no warm-up, a drifting
-- champion flagged against a steady challenger, a common shock that hits
-- both flagging nothing (while a fixed reference flags it), switching
-- policies with configure, and a scheduled benchmark stream.
BEGIN;
SELECT plan(43);

-- deterministic noise in [0, 1): the same every run
CREATE TEMP TABLE u AS
SELECT i, (sin(i * 12.9898) * 43758.5453 - floor(sin(i * 12.9898) * 43758.5453)) AS a,
		  (sin(i * 78.233) * 12345.6789 - floor(sin(i * 78.233) * 12345.6789)) AS b,
		  (sin(i * 3.7719) * 9876.54321 - floor(sin(i * 3.7719) * 9876.54321)) AS c
  FROM generate_series(1, 2000) i;

-- 1. values and validation -------------------------------------------------
SELECT mlma.create_stream('bm/a', batch_size => 4, method => 'dm', loss => 'squared',
						  reference_policy => 'benchmark');
SELECT mlma.observe('bm/a', 10, 12, '2024-01-01 00:00', benchmark => 9);
SELECT mlma.observe_loss('bm/a', 2.5, '2024-01-01 01:00', benchmark_loss => 0.5);
SELECT results_eq(
	$$SELECT o.loss, o.benchmark_loss FROM mlma.observations o
		JOIN mlma.streams s USING (stream_id) WHERE s.name = 'bm/a' ORDER BY seq$$,
	$$VALUES (4::float8, 1::float8), (2.5, 0.5)$$,
	'observe computes the benchmark loss with the stream''s loss function; observe_loss stores it');

SELECT throws_ok($$SELECT mlma.observe('bm/a', 10, 12, '2024-01-01 02:00')$$,
	'22004', 'stream "bm/a" needs a benchmark value with every observation',
	'observe without a benchmark on a benchmark stream: a clear error');
SELECT throws_ok($$SELECT mlma.observe_loss('bm/a', 1, '2024-01-01 02:00')$$,
	'22004', 'stream "bm/a" needs a benchmark value with every observation',
	'observe_loss without a benchmark_loss on a benchmark stream: the same error');
SELECT throws_ok($$SELECT mlma.observe_loss('bm/a', 1, now(), benchmark_loss => -0.1)$$,
	'22023', 'benchmark_loss must be finite and give a non-negative loss',
	'a negative benchmark_loss is rejected');
SELECT throws_ok($$SELECT mlma.observe_loss('bm/a', 1, now(), benchmark_loss => 'NaN')$$,
	'22023', 'benchmark_loss must be finite and give a non-negative loss',
	'a NaN benchmark_loss is rejected');
SELECT throws_ok($$SELECT mlma.observe('bm/a', 1, 1, now(), benchmark => 'Infinity')$$,
	'22023', 'benchmark must be finite and give a non-negative loss',
	'an infinite benchmark prediction is rejected');
SELECT mlma.create_stream('bm/poisson', batch_size => 4, loss => 'poisson');
SELECT throws_ok($$SELECT mlma.observe('bm/poisson', 3, 2, now(), benchmark => 0)$$,
	'22023', 'benchmark must be finite and give a non-negative loss',
	'a benchmark prediction outside the loss''s domain is rejected');
SELECT is((SELECT count(*) FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
			WHERE s.name IN ('bm/a', 'bm/poisson')), 2::bigint,
	'rejected observations store nothing');

-- a stream of another policy keeps a benchmark value when given one
SELECT mlma.observe('bm/poisson', 3, 2, now(), benchmark => 3);
SELECT mlma.observe('bm/poisson', 3, 2, now());
SELECT results_eq(
	$$SELECT benchmark_loss FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/poisson' ORDER BY seq$$,
	$$VALUES (0::float8), (NULL)$$,
	'a fixed-policy stream stores a benchmark loss when one comes, NULL otherwise');

-- 2. batches: compact storage, no warm-up ------------------------------------
SELECT is((SELECT state FROM mlma.stream_status WHERE name = 'bm/a'), 'monitoring',
	'a benchmark stream never warms');
SELECT is((SELECT batch_benchmark_mean FROM mlma.stream_status WHERE name = 'bm/a'), 0.75::float8,
	'stream_status shows the open batch''s benchmark mean');
SELECT mlma.observe_loss('bm/a', 3, '2024-01-01 02:00', 1);
SELECT mlma.observe_loss('bm/a', 5, '2024-01-01 03:00', 2);
SELECT results_eq(
	$$SELECT b.role, b.losses, b.benchmark_losses FROM mlma.batches b
		JOIN mlma.streams s USING (stream_id) WHERE s.name = 'bm/a'$$,
	$$VALUES ('test'::text, '{4,2.5,3,5}'::float8[], '{1,0.5,1,2}'::float8[])$$,
	'the closed batch holds the benchmark losses beside the losses, in order');
SELECT results_eq(
	$$SELECT c.status, c.n_reference, c.n_current, c.reference_mean, c.batch_mean, c.effect
		FROM mlma.checks c JOIN mlma.streams s USING (stream_id) WHERE s.name = 'bm/a'$$,
	$$VALUES ('done'::text, 4, 4, 1.125::float8, 3.625::float8, 3.625::float8 / 1.125)$$,
	'the first batch is checked at once: reference_mean = mean of the benchmark losses, effect = model / benchmark');
SELECT is((SELECT last_reference_mean FROM mlma.stream_status WHERE name = 'bm/a'), 1.125::float8,
	'stream_status shows the last check''s reference (benchmark) mean');
SELECT results_eq(
	$$SELECT e.p_value, e.effect FROM mlma.streams s, mlma.evaluate_batch(s.stream_id, 1) e
		WHERE s.name = 'bm/a'$$,
	$$SELECT p_value, effect FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/a'$$,
	'evaluate_batch gives the recorded check');
SELECT results_eq(
	$$SELECT (mlma.dm_test('{1,0.5,1,2}', '{4,2.5,3,5}')).p_value$$,
	$$SELECT p_value FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/a'$$,
	'dm pairs the model''s and the benchmark''s losses element by element');
SELECT is((SELECT count(*) FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'bm/a'), 0::bigint,
	'closing the batch empties the open batch');

SELECT throws_ok($$SELECT mlma.pin_reference('bm/a', '2024-01-01', '2024-01-02')$$,
	'55000', 'stream "bm/a" uses the benchmark reference policy',
	'a benchmark stream keeps no reference to pin');

-- dm needs no season_length nor reference_size = batch_size under the benchmark policy
SELECT lives_ok($$SELECT mlma.create_stream('bm/dm-any', batch_size => 24, reference_size => 48,
				   method => 'dm', reference_policy => 'benchmark')$$,
	'dm with reference_size <> batch_size is accepted for a benchmark stream');
SELECT throws_ok($$SELECT mlma.configure('bm/dm-any', reference_policy => 'fixed')$$,
	'22023', 'method dm requires season_length or reference_size equal to batch_size',
	'and switching it to a fixed reference keeps dm''s own rule');

-- 3. a drifting champion against a steady challenger -------------------------
-- batches of 24; the champion's losses equal the challenger's (each with its
-- own noise) for 3 batches, then are 1.4 times as large
SELECT mlma.create_stream('bm/drift', batch_size => 24, method => 'dm',
						  reference_policy => 'benchmark');
SELECT count(mlma.observe_loss('bm/drift',
		(CASE WHEN i > 72 THEN 1.4 ELSE 1 END) * (1 + 0.6 * a),
		'2024-01-01'::timestamptz + i * interval '1 hour',
		benchmark_loss => 1 + 0.6 * b))
  FROM u WHERE i <= 120;
SELECT results_eq(
	$$SELECT c.batch_no, c.drift FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/drift' ORDER BY batch_no$$,
	$$VALUES (1, false), (2, false), (3, false), (4, true), (5, true)$$,
	'the champion is flagged from the first batch where it is worse than the challenger, not before');
SELECT is((SELECT count(*) FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'bm/drift' AND q.reason = 'drift'), 1::bigint,
	'one drift request');
SELECT cmp_ok((SELECT effect FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
				WHERE s.name = 'bm/drift' AND batch_no = 4), '>', 1.2::float8,
	'the effect is the ratio of the mean losses (about 1.4)');

-- a retrain: the new version is checked from its first batch, no warm-up
SELECT count(mlma.dismiss(q.request_id, 'not this one'))
  FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
 WHERE s.name <> 'bm/drift' AND q.status = 'pending';
SELECT mlma.complete_retrain(c.request_id, 'v2') FROM mlma.claim_retrain('w1') c;
SELECT count(mlma.observe_loss('bm/drift', 1 + 0.6 * a,
		'2024-01-10'::timestamptz + i * interval '1 hour', benchmark_loss => 1 + 0.6 * b))
  FROM u WHERE i > 120 AND i <= 144;
SELECT results_eq(
	$$SELECT c.model_version, c.status, c.drift FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/drift' AND c.batch_no = 6$$,
	$$VALUES ('v2'::text, 'done'::text, false)$$,
	'the retrained version''s first batch is checked at once');

-- 4. a common shock: every loss doubles for a day ----------------------------
-- both models' losses share the day's conditions s(i); on day 3 they double
CREATE TEMP TABLE shock AS
SELECT i, (CASE WHEN i BETWEEN 49 AND 72 THEN 2 ELSE 1 END) * (1 + a) AS s, b, c
  FROM u WHERE i <= 96;
SELECT mlma.create_stream('bm/shock', batch_size => 24, method => 'dm',
						  reference_policy => 'benchmark');
SELECT mlma.create_stream('bm/shock-fixed', batch_size => 24, method => 'dm');
SELECT count(mlma.observe_loss('bm/shock', s * (1 + 0.2 * b),
		'2024-01-01'::timestamptz + i * interval '1 hour', benchmark_loss => s * (1 + 0.2 * c)))
  FROM shock;
SELECT count(mlma.observe_loss('bm/shock-fixed', s * (1 + 0.2 * b),
		'2024-01-01'::timestamptz + i * interval '1 hour'))
  FROM shock;
SELECT is((SELECT count(*) FILTER (WHERE drift) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'bm/shock'), 0::bigint,
	'a shock that hits champion and challenger alike flags nothing');
SELECT is((SELECT count(*) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'bm/shock'), 4::bigint,
	'all four days are checked');
SELECT ok((SELECT bool_or(drift) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'bm/shock-fixed' AND batch_no = 3),
	'the same shock against a fixed reference is a drift');

-- 5. configure between policies never wedges ---------------------------------
SELECT mlma.create_stream('bm/switch', batch_size => 8, method => 'welch');
-- fixed: warm (batch 1), one test batch (2)
SELECT count(mlma.observe_loss('bm/switch', 1 + a, now())) FROM u WHERE i <= 16;
SELECT is((SELECT count(*) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'bm/switch' AND status = 'done'), 1::bigint,
	'fixed: warmed, then one check');
SELECT count(mlma.dismiss(q.request_id, 'not under test'))
  FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'bm/switch' AND q.status = 'pending';
-- 7 observations of batch 3 without a benchmark, then the switch
SELECT count(mlma.observe_loss('bm/switch', 1 + a, now())) FROM u WHERE i BETWEEN 17 AND 23;
SELECT mlma.configure('bm/switch', reference_policy => 'benchmark');
SELECT is((SELECT state FROM mlma.stream_status WHERE name = 'bm/switch'), 'monitoring',
	'switching to benchmark: no warm-up, the old reference is dropped');
SELECT is((SELECT count(*) FROM mlma.reference_batches r JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'bm/switch'), 0::bigint, 'no live reference under the benchmark policy');
SELECT lives_ok($$SELECT mlma.observe_loss('bm/switch', 1.5, now(), benchmark_loss => 1)$$,
	'the batch open at the switch closes without failing the writer');
SELECT results_eq(
	$$SELECT c.status, c.n_reference, c.n_current FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/switch' AND batch_no = 3$$,
	$$VALUES ('skipped'::text, 1, 8)$$,
	'a batch with fewer than 2 benchmark values is recorded as skipped');
SELECT count(mlma.observe_loss('bm/switch', 1 + a, now(), benchmark_loss => 1 + b))
  FROM u WHERE i BETWEEN 25 AND 36;
SELECT results_eq(
	$$SELECT c.status, c.n_reference, c.n_current FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/switch' AND batch_no = 4$$,
	$$VALUES ('done'::text, 8, 8)$$,
	'the next batch is tested against its benchmark losses (welch: as the reference sample)');
-- 4 observations of batch 5 are open: switch to rolling
SELECT mlma.configure('bm/switch', reference_policy => 'rolling');
SELECT is((SELECT state FROM mlma.stream_status WHERE name = 'bm/switch'), 'warming',
	'switching away from benchmark starts warming a new reference');
SELECT count(mlma.observe_loss('bm/switch', 1 + a, now())) FROM u WHERE i BETWEEN 37 AND 56;
SELECT results_eq(
	$$SELECT r.source, r.seqs[1], cardinality(r.losses) FROM mlma.reference_batches r
		JOIN mlma.streams s USING (stream_id) WHERE s.name = 'bm/switch'$$,
	$$VALUES ('rolling'::text, 48::bigint, 8)$$,
	'the new reference warmed from the batch open at the switch, then rolled');
SELECT results_eq(
	$$SELECT b.batch_no, b.role FROM mlma.batches b JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/switch' AND batch_no >= 5 ORDER BY batch_no$$,
	$$VALUES (5, 'reference'::text), (6, 'test'), (7, 'test')$$,
	'the batch open at the switch became the new reference batch');
SELECT results_eq(
	$$SELECT c.batch_no, c.status FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/switch' AND batch_no >= 5 ORDER BY batch_no$$,
	$$VALUES (6, 'done'::text), (7, 'done')$$,
	'after warming, batches are checked against the rolling reference again');

-- 6. scheduled: run_checks tests benchmark streams against their batch's benchmark
SELECT mlma.create_stream('bm/sched', batch_size => 24, method => 'dm',
						  reference_policy => 'benchmark', check_mode => 'scheduled');
SELECT count(mlma.observe_loss('bm/sched',
		(CASE WHEN i > 24 THEN 1.5 ELSE 1 END) * (1 + 0.6 * a),
		'2024-01-01'::timestamptz + i * interval '1 hour', benchmark_loss => 1 + 0.6 * b))
  FROM u WHERE i <= 48;
SELECT is((SELECT count(*) FROM mlma.check_queue q JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'bm/sched'), 2::bigint,
	'scheduled: both batches wait in the queue');
CREATE TEMP TABLE round AS
SELECT c.* FROM mlma.run_checks() c JOIN mlma.streams s USING (stream_id) WHERE s.name = 'bm/sched';
SELECT results_eq(
	$$SELECT batch_no, status, drift, p_adjusted IS NOT NULL FROM round ORDER BY batch_no$$,
	$$VALUES (1, 'done'::text, false, true), (2, 'done'::text, true, true)$$,
	'run_checks tests the waiting benchmark batches and flags the worse one');
SELECT is((SELECT reference_mean FROM round WHERE batch_no = 2),
		  (SELECT avg(1 + 0.6 * b) FROM u WHERE i BETWEEN 25 AND 48),
	'the scheduled check records the benchmark mean as its reference mean');
SELECT is((SELECT count(*) FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'bm/sched'), 1::bigint, 'and raises the request');
-- a waiting batch without benchmark values is skipped by the round, not an error
SELECT mlma.configure('bm/sched', reference_policy => 'fixed');
SELECT count(mlma.observe_loss('bm/sched', 1, now())) FROM u WHERE i <= 24;
SELECT mlma.configure('bm/sched', reference_policy => 'benchmark');
SELECT count(mlma.observe_loss('bm/sched', 1, now(), 1)) FROM u WHERE i <= 24;
SELECT lives_ok($$SELECT count(*) FROM mlma.run_checks()$$,
	'run_checks lives through a batch that has no benchmark values');
SELECT results_eq(
	$$SELECT c.batch_no, c.status FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
		WHERE s.name = 'bm/sched' AND batch_no > 2 ORDER BY batch_no$$,
	$$VALUES (4, 'done'::text)$$,
	'the benchmarked batch is checked (the fixed-policy batch in between warmed, nothing to check)');

SELECT * FROM finish();
ROLLBACK;
