-- run_checks() reads each check's stream, batch and reference through the
-- access methods and writes the checks the same way; where mlma's tables
-- are not as mlma made them (row security on a table it reads, a trigger on
-- mlma.checks) it uses SQL instead.  Through the access methods, a round
-- whose streams are a large share of the fleet reads the streams, their
-- state and their references with one scan of each table, a smaller one by
-- primary key.  Every way must record the same checks: streams "a/<kind>"
-- are checked the first way (by scan: the 8 of a fleet of 24), the same
-- streams "b/<kind>", fed the same losses, with SQL, and "c/<kind>" by key
-- (8 of a fleet grown to 2 024).
BEGIN;
SELECT plan(12);
SET client_min_messages = warning;

-- the way a round reads depends on the sizes of mlma's tables: a fleet of
-- its own (emptied inside this transaction, which rolls back), so that the
-- streams and rows of the tests before it do not count
TRUNCATE mlma.streams, mlma.stream_state, mlma.reference_batches,
	mlma.reference_history, mlma.batches, mlma.checks, mlma.check_queue,
	mlma.open_runs, mlma.retrain_requests, mlma.rounds;

CREATE TEMP TABLE kinds (kind text, opts jsonb);
INSERT INTO kinds VALUES
	('welch',     '{"method": "welch"}'),
	('mw',        '{"method": "mann_whitney"}'),
	('ks',        '{"method": "ks"}'),
	('hac',       '{"method": "hac", "consecutive": 2}'),
	('dm',        '{"method": "dm", "min_effect": 1.05}'),
	('seasonal',  '{"method": "welch", "season_length": 4}'),
	('rolling',   '{"method": "welch", "reference_policy": "rolling"}'),
	('benchmark', '{"method": "welch", "reference_policy": "benchmark"}');

SELECT count(mlma.create_stream(p || '/' || kind, batch_size => 12,
		method => opts->>'method', check_mode => 'scheduled',
		reference_policy => coalesce(opts->>'reference_policy', 'fixed'),
		min_effect => coalesce((opts->>'min_effect')::float8, 1.0),
		consecutive => coalesce((opts->>'consecutive')::int, 1),
		season_length => (opts->>'season_length')::int))
  FROM kinds, (VALUES ('a'), ('b'), ('c')) v(p);

-- 48 losses: a reference batch, then three test batches, the last two
-- worse (the benchmark stream tests all four)
CREATE FUNCTION pg_temp.feed(p text) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(mlma.observe_loss(p || '/' || kind,
			(1 + 0.3 * sin(i * 1.3 + length(kind))) * CASE WHEN i > 24 THEN 1.8 ELSE 1 END,
			'2024-01-01'::timestamptz + i * interval '1 minute',
			benchmark_loss => 1 + 0.2 * cos(i * 0.7)))
	  FROM kinds, generate_series(1, 48) i
$$;

-- waiting batches this transaction locked itself are taken (SKIP LOCKED
-- skips only what another transaction holds)
CREATE FUNCTION pg_temp.lock_queue(p text) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(*) FROM (SELECT 1 FROM mlma.check_queue q
						   JOIN mlma.streams s USING (stream_id)
						  WHERE s.name LIKE p || '/%' AND s.name LIKE '%l%'
						    FOR UPDATE OF q) x
$$;

-- as if the references were built before the round's transaction (as in
-- production): a check then names the reference it was tested against
CREATE FUNCTION pg_temp.age_references() RETURNS void
LANGUAGE sql AS $$
	UPDATE mlma.reference_history SET built_at = built_at - interval '1 hour';
	UPDATE mlma.reference_batches SET built_at = built_at - interval '1 hour';
$$;
-- the checks of a round that do not name that reference (right after it)
CREATE TEMP TABLE wrong_reference (round text, n bigint);
CREATE FUNCTION pg_temp.wrong_reference(r text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format($q$
		INSERT INTO wrong_reference
		SELECT %L, count(*) FROM %I c
		 WHERE c.reference_id IS DISTINCT FROM
			   (SELECT max(h.reference_id) FROM mlma.reference_history h
				 WHERE h.stream_id = c.stream_id AND h.built_at < c.checked_at)$q$,
		r, 'round_' || r);
END $$;

-- what a round recorded, but the ids
CREATE FUNCTION pg_temp.recorded(r text) RETURNS text
LANGUAGE sql AS $$
	SELECT format('SELECT kind, model_version, batch_no, method, alpha, check_mode,
			status, n_reference, n_current, reference_mean, batch_mean, statistic,
			p_value, p_adjusted, effect, significant, drift, created_at, checked_at,
			note, reference_id IS NULL, threshold
		FROM %I ORDER BY kind, batch_no', 'round_' || r)
$$;

-- the test method names, on a reference and a batch
CREATE FUNCTION pg_temp.test_of(method text, ref float8[], cur float8[],
	OUT statistic float8, OUT p_value float8)
LANGUAGE sql AS $$
	SELECT w.statistic, w.p_value FROM mlma.welch_test(ref, cur) w WHERE method = 'welch'
	UNION ALL
	SELECT m.statistic, m.p_value FROM mlma.mann_whitney_test(ref, cur) m
	 WHERE method = 'mann_whitney'
$$;

-- a round over the streams p/<kind>: fed, their references aged, some of
-- their queue rows locked by this transaction; its checks go to round_<p>
CREATE FUNCTION pg_temp.round(p text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_temp.feed(p);
	PERFORM pg_temp.age_references();
	PERFORM pg_temp.lock_queue(p);
	EXECUTE format($q$
		CREATE TEMP TABLE %I AS
		SELECT substr(s.name, 3) AS kind, c.* FROM mlma.run_checks(fdr => 0.05) c
		  JOIN mlma.streams s USING (stream_id)$q$, 'round_' || p);
	PERFORM pg_temp.wrong_reference(p);
END $$;

SELECT pg_temp.round('a');

-- the other way: row security on the tables the round drains and reads
-- (the owner is not subject to it), a trigger on the table it writes
ALTER TABLE mlma.batches ENABLE ROW LEVEL SECURITY;
ALTER TABLE mlma.check_queue ENABLE ROW LEVEL SECURITY;
CREATE TEMP TABLE seen (check_id bigint);
CREATE FUNCTION pg_temp.seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO seen VALUES (NEW.check_id);
	RETURN NEW;
END $$;
CREATE TRIGGER noop BEFORE INSERT ON mlma.checks FOR EACH ROW EXECUTE FUNCTION pg_temp.seen();
SELECT pg_temp.round('b');
DROP TRIGGER noop ON mlma.checks;
ALTER TABLE mlma.batches DISABLE ROW LEVEL SECURITY;
ALTER TABLE mlma.check_queue DISABLE ROW LEVEL SECURITY;

-- settings by scan, references by key: 40 more streams, batch 96, whose
-- references (about 5 to a page) fill more pages than their settings; 20
-- of them have a batch waiting, a share large enough for a scan of
-- streams and stream_state, too small for one of reference_batches
SELECT count(mlma.create_stream('d/' || i, batch_size => 96, check_mode => 'scheduled',
		method => CASE WHEN i % 2 = 0 THEN 'welch' ELSE 'mann_whitney' END))
  FROM generate_series(1, 40) i;
SELECT count(mlma.observe_loss('d/' || i,
		(1 + 0.3 * sin(i * 7 + j)) * CASE WHEN i % 3 = 0 AND j > 96 THEN 1.5 ELSE 1 END,
		'2024-01-01'::timestamptz + j * interval '1 minute'))
  FROM generate_series(1, 40) i, generate_series(1, 192) j
 WHERE j <= 96 OR i <= 20;
SELECT pg_temp.age_references();
CREATE TEMP TABLE round_d AS
SELECT c.* FROM mlma.run_checks(fdr => 0.05) c;

-- by key: 2 000 more streams (without observations) make the 8 of the
-- round too small a share of the tables for a scan
SELECT count(mlma.create_stream('x/' || i, batch_size => 12, check_mode => 'scheduled'))
  FROM generate_series(1, 2000) i;
SELECT pg_temp.round('c');

SELECT is((SELECT count(*) FROM round_a), 25::bigint,
		  'the first round checks 25 batches, those whose queue rows it locked too');
SELECT is((SELECT count(*) FROM round_b), 25::bigint, 'so does the second');
SELECT is((SELECT count(*) FROM seen), 25::bigint,
		  'the second round inserts its checks with SQL (the trigger sees each)');
SELECT cmp_ok((SELECT count(*) FILTER (WHERE drift) FROM round_a), '>', 0::bigint,
			  'some streams drift');
SELECT is((SELECT count(*) FROM round_a WHERE status = 'done' AND note IS NULL
			  AND p_value BETWEEN 0 AND 1 AND p_adjusted BETWEEN p_value AND 1), 25::bigint,
		  'every check is done, with its p-value and adjusted p-value');
SELECT results_eq(
	pg_temp.recorded('a'),
	pg_temp.recorded('b'),
	'both ways record the same checks');
SELECT results_eq(
	pg_temp.recorded('a'),
	pg_temp.recorded('c'),
	'a round read by key records the same checks as one read by scan');
SELECT is((SELECT count(*) FROM round_c), 25::bigint, 'the round read by key checks 25 batches');
SELECT is((SELECT count(*) FROM round_d d
			 JOIN mlma.streams s USING (stream_id)
			 JOIN mlma.batches b USING (stream_id, batch_no)
			 JOIN mlma.reference_batches r USING (stream_id)
			 JOIN mlma.reference_history h ON h.reference_id = d.reference_id
			WHERE d.status = 'done' AND d.n_current = 96 AND d.n_reference = 96
			  AND d.method = CASE WHEN split_part(s.name, '/', 2)::int % 2 = 0
								  THEN 'welch' ELSE 'mann_whitney' END
			  AND (d.statistic, d.p_value) =
				  (SELECT t.statistic, t.p_value FROM pg_temp.test_of(d.method, r.losses, b.losses) t)
			  AND h.stream_id = d.stream_id),
		  20::bigint,
		  'a round read partly by scan tests each of its 20 batches with its stream''s method against its stream''s reference');
SELECT is((SELECT count(*) FILTER (WHERE drift) FROM round_d), 6::bigint,
		  '... and finds the 6 that got worse');

SELECT is((SELECT array_agg(round || ': ' || n ORDER BY round) FROM wrong_reference),
		  ARRAY['a: 0', 'b: 0', 'c: 0'],
		  'every way, a check names the newest reference built before its round');
SELECT is((SELECT count(*) FROM round_a WHERE reference_id IS NULL AND kind <> 'benchmark'),
		  0::bigint, '... which every stream with a reference has');

SELECT * FROM finish();
ROLLBACK;
