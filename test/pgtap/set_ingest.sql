-- The set-based path of multi-row statements (src/ingest_set.c) against the
-- row path: the same observations, fed to stream "a/<kind>" one observe()
-- call at a time and to stream "b/<kind>" through an attached table in a
-- few multi-row statements of uneven sizes, leave the same batches, checks,
-- references, reference history, queue, requests, open batch and state —
-- and so does stream "s/<kind>", fed like "a/<kind>" but with its batches
-- closed by mlma._close_batch (PL/pgSQL) instead of the C close —
-- for every reference policy, method and check mode the set path serves,
-- and for the cases it hands to the row path (a warm-up that spans
-- statements); a rollback to a savepoint; invalid rows.
BEGIN;
SELECT plan(49);

CREATE TEMP TABLE kinds (kind text, opts jsonb);
INSERT INTO kinds VALUES
	('fixed',     '{"batch_size": 20, "method": "welch"}'),
	('rolling',   '{"batch_size": 20, "reference_size": 30, "method": "welch", "reference_policy": "rolling"}'),
	('seasonal',  '{"batch_size": 24, "season_length": 12, "method": "mann_whitney", "reference_policy": "rolling"}'),
	('dm',        '{"batch_size": 16, "method": "dm", "reference_policy": "rolling", "min_effect": 1.02}'),
	('ks',        '{"batch_size": 25, "method": "ks", "check_mode": "scheduled"}'),
	('hac',       '{"batch_size": 20, "method": "hac", "consecutive": 2, "min_effect": 1.05}'),
	('benchmark', '{"batch_size": 20, "method": "welch", "reference_policy": "benchmark"}'),
	('paused',    '{"batch_size": 20, "method": "welch"}');

SELECT count(mlma.create_stream(p || '/' || kind,
		batch_size => (opts->>'batch_size')::int,
		reference_size => (opts->>'reference_size')::int,
		method => opts->>'method',
		check_mode => coalesce(opts->>'check_mode', 'eager'),
		reference_policy => coalesce(opts->>'reference_policy', 'fixed'),
		min_effect => coalesce((opts->>'min_effect')::float8, 1.0),
		consecutive => coalesce((opts->>'consecutive')::int, 1),
		season_length => (opts->>'season_length')::int))
  FROM kinds, (VALUES ('a'), ('b'), ('c'), ('d'), ('x'), ('s')) v(p);
SELECT mlma.pause(p || '/paused') FROM (VALUES ('a'), ('b'), ('c'), ('d'), ('x'), ('s')) v(p);

-- 700 observations per kind, much worse from the 450th on; a benchmark value
-- with each (the challenger's prediction), a second apart
CREATE TEMP TABLE feed AS
SELECT kind, i,
	   '2024-03-01'::timestamptz + i * interval '1 second' AS at,
	   100 + 10 * sin(i * 1.7) + 7 * cos(i * 0.31 + length(kind)) AS actual,
	   100 + CASE WHEN i >= 450 THEN 20 ELSE 0 END AS predicted,
	   100 + 3 * sin(i * 0.9) AS bench
  FROM kinds, generate_series(1, 700) i;

CREATE TABLE set_fc (zone text, at timestamptz, predicted float8, bench float8,
					 actual float8);
SELECT mlma.attach('set_fc', 'zone', 'actual', 'predicted', 'at',
				   benchmark_column => 'bench', on_invalid => 'error');

-- c: the same statements recorded a few rows at a time (the open batches
-- carried in memory from chunk to chunk, and written out when they grow),
-- with a stream cache smaller than the streams written
SET LOCAL mlma.stream_cache_size = 16;
SET LOCAL mlma.statement_chunk_size = 7;
INSERT INTO set_fc SELECT 'c/' || kind, at, predicted, bench, actual
  FROM feed WHERE i <= 29 ORDER BY i, kind;
SET LOCAL mlma.statement_chunk_size = 1;
INSERT INTO set_fc SELECT 'c/' || kind, at, predicted, bench, actual
  FROM feed WHERE i > 29 AND i <= 40 ORDER BY i, kind;
SET LOCAL mlma.statement_chunk_size = 500;
INSERT INTO set_fc SELECT 'c/' || kind, at, predicted, bench, actual
  FROM feed WHERE i > 40 ORDER BY i, kind;
RESET mlma.statement_chunk_size;
RESET mlma.stream_cache_size;

-- x: one statement in chunks of 30 rows with the streams carried from chunk
-- to chunk (state rows written once, at the statement's end; a warm-up
-- stream that closed a batch in an earlier chunk moves to the row path)
SET LOCAL mlma.statement_chunk_size = 30;
INSERT INTO set_fc SELECT 'x/' || kind, at, predicted, bench, actual
  FROM feed ORDER BY i, kind;
RESET mlma.statement_chunk_size;

-- d: observe_many, two calls, the second in chunks of 9
SELECT is(mlma.observe_many(array_agg('d/' || kind ORDER BY i, kind),
		array_agg(actual ORDER BY i, kind), array_agg(predicted ORDER BY i, kind),
		array_agg(at ORDER BY i, kind), array_agg(bench ORDER BY i, kind)),
		(SELECT count(*) FROM feed WHERE i <= 100), 'observe_many returns the number recorded')
  FROM feed WHERE i <= 100;
SET LOCAL mlma.statement_chunk_size = 9;
SELECT mlma.observe_many(array_agg('d/' || kind ORDER BY i, kind),
		array_agg(actual ORDER BY i, kind), array_agg(predicted ORDER BY i, kind),
		array_agg(at ORDER BY i, kind), array_agg(bench ORDER BY i, kind))
  FROM feed WHERE i > 100;
RESET mlma.statement_chunk_size;

-- a: the row path, one observation at a time, in order; full batches are
-- closed in C (mlma._close_batch only for a warm-up that needs batches
-- closed before)
SET LOCAL track_functions = 'pl';
CREATE TEMP TABLE close_calls (p text, n bigint);
INSERT INTO close_calls SELECT 'before', coalesce(sum(calls), 0)
  FROM pg_stat_xact_user_functions WHERE funcname = '_close_batch';
SELECT count(mlma.observe('a/' || kind, actual, predicted, at, bench))
  FROM (SELECT * FROM feed ORDER BY i, kind) f;
INSERT INTO close_calls SELECT 'a', coalesce(sum(calls), 0)
  FROM pg_stat_xact_user_functions WHERE funcname = '_close_batch';

-- s: the same with row security on a table the C close reads by key, so
-- that it steps aside and mlma._close_batch closes every batch
ALTER TABLE mlma.reference_history ENABLE ROW LEVEL SECURITY;
SELECT count(mlma.observe('s/' || kind, actual, predicted, at, bench))
  FROM (SELECT * FROM feed ORDER BY i, kind) f;
ALTER TABLE mlma.reference_history DISABLE ROW LEVEL SECURITY;
INSERT INTO close_calls SELECT 's', coalesce(sum(calls), 0)
  FROM pg_stat_xact_user_functions WHERE funcname = '_close_batch';

-- b: multi-row statements, rows of all streams interleaved
INSERT INTO set_fc SELECT 'b/' || kind, at, predicted, bench, actual
  FROM feed WHERE i <= 7 ORDER BY i, kind;
INSERT INTO set_fc SELECT 'b/' || kind, at, predicted, bench, actual
  FROM feed WHERE i > 7 AND i <= 29 ORDER BY i, kind;
INSERT INTO set_fc SELECT 'b/' || kind, at, predicted, bench, actual
  FROM feed WHERE i > 29 AND i <= 31 ORDER BY i, kind;
INSERT INTO set_fc SELECT 'b/' || kind, at, predicted, bench, actual
  FROM feed WHERE i > 31 AND i <= 333 ORDER BY i, kind;
-- a single-row statement in between (the row path of the trigger)
INSERT INTO set_fc SELECT 'b/' || kind, at, predicted, bench, actual
  FROM feed WHERE i = 334 AND kind = 'fixed';
INSERT INTO set_fc SELECT 'b/' || kind, at, predicted, bench, actual
  FROM feed WHERE i > 333 AND NOT (i = 334 AND kind = 'fixed') ORDER BY i, kind;

-- every table, per kind, without ids and times of the transaction
CREATE TEMP VIEW cmp_batches AS
SELECT split_part(s.name, '/', 1) AS p, split_part(s.name, '/', 2) AS kind,
	   b.batch_no, b.model_version, b.version_no, b.role, b.first_seq, b.first_at,
	   b.last_at, b.losses, b.offsets, b.benchmark_losses
  FROM mlma.batches b JOIN mlma.streams s USING (stream_id);
CREATE TEMP VIEW cmp_checks AS
SELECT split_part(s.name, '/', 1) AS p, split_part(s.name, '/', 2) AS kind,
	   c.batch_no, c.model_version, c.method, c.alpha, c.check_mode, c.status,
	   c.n_reference, c.n_current, c.reference_mean, c.batch_mean, c.statistic,
	   c.p_value, c.p_adjusted, c.effect, c.significant, c.drift, c.note,
	   c.threshold, h.first_seq AS ref_first, h.end_seq AS ref_end, h.source AS ref_source
  FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
  LEFT JOIN mlma.reference_history h ON h.reference_id = c.reference_id;
CREATE TEMP VIEW cmp_history AS
SELECT split_part(s.name, '/', 1) AS p, split_part(s.name, '/', 2) AS kind,
	   row_number() OVER (PARTITION BY h.stream_id ORDER BY h.reference_id) AS k,
	   h.version_no, h.model_version, h.source, h.n, h.mean, h.first_seq,
	   h.end_seq, h.seq_runs
  FROM mlma.reference_history h JOIN mlma.streams s USING (stream_id);
CREATE TEMP VIEW cmp_refs AS
SELECT split_part(s.name, '/', 1) AS p, split_part(s.name, '/', 2) AS kind,
	   r.version_no, r.model_version, r.source, r.losses, r.seqs, r.end_seq, r.mean
  FROM mlma.reference_batches r JOIN mlma.streams s USING (stream_id);
CREATE TEMP VIEW cmp_state AS
SELECT split_part(s.name, '/', 1) AS p, split_part(s.name, '/', 2) AS kind,
	   st.open_start_seq, st.batch_no, st.version_no,
	   st.version_start_seq, st.streak, st.age_flagged, st.skipped
  FROM mlma.stream_state st JOIN mlma.streams s USING (stream_id);
CREATE TEMP VIEW cmp_open AS
SELECT split_part(s.name, '/', 1) AS p, split_part(s.name, '/', 2) AS kind,
	   o.seq, o.observed_at, o.loss, o.benchmark_loss
  FROM mlma.observations o JOIN mlma.streams s USING (stream_id);
CREATE TEMP VIEW cmp_queue AS
SELECT split_part(s.name, '/', 1) AS p, split_part(s.name, '/', 2) AS kind,
	   q.batch_no
  FROM mlma.check_queue q JOIN mlma.streams s USING (stream_id);
CREATE TEMP VIEW cmp_requests AS
SELECT split_part(s.name, '/', 1) AS p, split_part(s.name, '/', 2) AS kind,
	   r.model_version, r.reason, r.status, r.p_value, r.effect, c.batch_no, r.note
  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
  LEFT JOIN mlma.checks c ON c.check_id = r.check_id;

-- the rows differ only in their p column: compare the streams of p1 and p2
CREATE FUNCTION pg_temp.diff(v text, p1 text DEFAULT 'a', p2 text DEFAULT 'b')
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE format($q$
		WITH t AS (SELECT p, kind, (to_jsonb(x) - 'p')::text AS r FROM %s x)
		SELECT count(*) FROM (
			(SELECT kind, r FROM t WHERE p = %L EXCEPT ALL SELECT kind, r FROM t WHERE p = %L)
			UNION ALL
			(SELECT kind, r FROM t WHERE p = %L EXCEPT ALL SELECT kind, r FROM t WHERE p = %L)) d
	$q$, v, p1, p2, p2, p1) INTO n;
	RETURN n;
END;
$$;

-- what closing batches wrote (batches, checks, reference history, live
-- references), and what it left (state, open batches, queue, requests)
CREATE FUNCTION pg_temp.diff_written(p1 text, p2 text) RETURNS bigint
LANGUAGE sql AS $$
	SELECT pg_temp.diff('cmp_batches', p1, p2) + pg_temp.diff('cmp_checks', p1, p2)
		   + pg_temp.diff('cmp_history', p1, p2) + pg_temp.diff('cmp_refs', p1, p2)
$$;
CREATE FUNCTION pg_temp.diff_left(p1 text, p2 text) RETURNS bigint
LANGUAGE sql AS $$
	SELECT pg_temp.diff('cmp_state', p1, p2) + pg_temp.diff('cmp_open', p1, p2)
		   + pg_temp.diff('cmp_queue', p1, p2) + pg_temp.diff('cmp_requests', p1, p2)
$$;

SELECT is(pg_temp.diff('cmp_batches'), 0::bigint, 'closed batches: the same');
SELECT is(pg_temp.diff('cmp_checks'), 0::bigint, 'checks: the same, against the same references');
SELECT is(pg_temp.diff('cmp_history'), 0::bigint, 'reference history: the same');
SELECT is(pg_temp.diff('cmp_refs'), 0::bigint, 'live references: the same');
SELECT is(pg_temp.diff('cmp_state'), 0::bigint, 'stream state: the same');
SELECT is(pg_temp.diff('cmp_open'), 0::bigint, 'open batches: the same');
SELECT is(pg_temp.diff('cmp_queue'), 0::bigint, 'queued scheduled checks: the same');
SELECT is(pg_temp.diff('cmp_requests'), 0::bigint, 'retrain requests: the same');

SELECT is(pg_temp.diff_written('a', 's'), 0::bigint,
		  'C close and mlma._close_batch: the same batches, checks and references');
SELECT is(pg_temp.diff_left('a', 's'), 0::bigint,
		  'C close and mlma._close_batch: the same state, open batches, queue and requests');
SELECT ok((SELECT (SELECT n FROM close_calls WHERE p = 'a') - (SELECT n FROM close_calls WHERE p = 'before') <= 2
			  AND (SELECT n FROM close_calls WHERE p = 's') - (SELECT n FROM close_calls WHERE p = 'a')
				  = (SELECT count(*) FROM cmp_batches WHERE p = 's')),
		  'the row path closed its batches in C, mlma._close_batch closed every batch of s');

SELECT is(pg_temp.diff('cmp_batches', 'a', 'c'), 0::bigint, 'in chunks: closed batches the same');
SELECT is(pg_temp.diff('cmp_checks', 'a', 'c'), 0::bigint, 'in chunks: checks the same');
SELECT is(pg_temp.diff('cmp_history', 'a', 'c'), 0::bigint, 'in chunks: reference history the same');
SELECT is(pg_temp.diff('cmp_refs', 'a', 'c'), 0::bigint, 'in chunks: live references the same');
SELECT is(pg_temp.diff('cmp_state', 'a', 'c'), 0::bigint, 'in chunks: stream state the same');
SELECT is(pg_temp.diff('cmp_open', 'a', 'c'), 0::bigint, 'in chunks: open batches the same');
SELECT is(pg_temp.diff('cmp_queue', 'a', 'c'), 0::bigint, 'in chunks: queued checks the same');
SELECT is(pg_temp.diff('cmp_requests', 'a', 'c'), 0::bigint, 'in chunks: requests the same');

SELECT is(pg_temp.diff_written('a', 'x'), 0::bigint,
		  'carried chunks: the same batches, checks and references');
SELECT is(pg_temp.diff_left('a', 'x'), 0::bigint,
		  'carried chunks: the same state, open batches, queue and requests');

SELECT is(pg_temp.diff('cmp_batches', 'a', 'd'), 0::bigint, 'observe_many: closed batches the same');
SELECT is(pg_temp.diff('cmp_checks', 'a', 'd'), 0::bigint, 'observe_many: checks the same');
SELECT is(pg_temp.diff('cmp_history', 'a', 'd') + pg_temp.diff('cmp_refs', 'a', 'd'), 0::bigint,
		  'observe_many: references the same');
SELECT is(pg_temp.diff_left('a', 'd'), 0::bigint,
		  'observe_many: state, open batches, queue and requests the same');

-- the live reference names its history row, however it was built (warm-up,
-- rolled; in C or by mlma._store_reference)
SELECT is((SELECT count(*) FROM mlma.reference_batches r
			WHERE r.reference_id IS DISTINCT FROM
				  (SELECT max(h.reference_id) FROM mlma.reference_history h
					WHERE h.stream_id = r.stream_id)), 0::bigint,
		  'every live reference names the newest history row of its stream');

-- bad input to observe_many: an error, and nothing stored
CREATE TEMP TABLE before_bad AS SELECT count(*) AS n FROM mlma.observations;
SELECT throws_ok($$SELECT mlma.observe_many(ARRAY['d/fixed', 'd/fixed'], ARRAY[1.0], ARRAY[1.0, 2.0])$$,
	'2202E', 'the arrays of observe_many must have the same length',
	'observe_many: arrays of different lengths');
SELECT throws_ok($$SELECT mlma.observe_many(ARRAY['d/fixed', 'd/fixed'], ARRAY[1.0, NULL], ARRAY[1.0, 2.0])$$,
	'22004', 'actuals must not contain NULL', 'observe_many: a NULL actual');
SELECT throws_ok($$SELECT mlma.observe_many(ARRAY['d/fixed', 'd/nope', 'd/fixed'],
		ARRAY[1.0, 2.0, 3.0], ARRAY[1.0, 2.0, 3.0])$$,
	'42704', 'stream "d/nope" does not exist', 'observe_many: an unknown stream');
SELECT is((SELECT count(*) FROM mlma.observations), (SELECT n FROM before_bad),
		  '... and nothing was stored');

-- the comparison is not empty: every kind closed batches, was tested and
-- (except paused and scheduled) flagged its drift
SELECT is((SELECT count(DISTINCT kind) FROM cmp_batches WHERE p = 'b'), 8::bigint,
		  'every kind closed batches');
SELECT ok((SELECT count(*) FROM cmp_checks WHERE p = 'b' AND status = 'done') >= 100,
		  'the set path ran the eager checks');
SELECT is((SELECT array_agg(DISTINCT kind ORDER BY kind) FROM cmp_requests WHERE p = 'b'),
		  ARRAY['benchmark', 'dm', 'fixed', 'hac', 'rolling', 'seasonal'],
		  'the drifting streams got their requests');
SELECT ok((SELECT count(*) FROM cmp_history WHERE p = 'b' AND source = 'rolling') >= 10,
		  'rolling references rolled');
SELECT is((SELECT count(*) FROM cmp_queue WHERE p = 'b'), 27::bigint,
		  'the scheduled stream queued its test batches');

-- a set-path statement rolled back to a savepoint leaves nothing behind
SAVEPOINT before_rollback;
INSERT INTO set_fc SELECT 'b/' || kind, at + interval '1 day', predicted, bench, actual
  FROM feed ORDER BY i, kind;
ROLLBACK TO SAVEPOINT before_rollback;
SELECT is(pg_temp.diff('cmp_batches'), 0::bigint, 'a rolled back statement leaves no batch');
SELECT is(pg_temp.diff('cmp_state'), 0::bigint, '... and the state as it was');

-- the same statement after the rollback: the writer's own earlier work
-- (the open batch it knows) is read again, not taken from a stale cache
SELECT count(mlma.observe('a/' || kind, actual, predicted, at + interval '1 day', bench))
  FROM (SELECT * FROM feed WHERE i <= 50 ORDER BY i, kind) f;
INSERT INTO set_fc SELECT 'b/' || kind, at + interval '1 day', predicted, bench, actual
  FROM feed WHERE i <= 50 ORDER BY i, kind;
SELECT is(pg_temp.diff('cmp_batches'), 0::bigint, 'after a rollback to a savepoint: the same batches');
SELECT is(pg_temp.diff('cmp_open'), 0::bigint, '... and open batches');

-- invalid rows are skipped on both paths and counted alike
SELECT mlma.detach('set_fc');
SELECT mlma.attach('set_fc', 'zone', 'actual', 'predicted', 'at',
				   benchmark_column => 'bench', on_invalid => 'skip');
SELECT count(mlma.observe('a/fixed', x, 100, '2024-04-01', 100))
  FROM unnest(ARRAY[101, 'NaN', 102, 'Infinity', 99]::float8[]) x
 WHERE x::text NOT IN ('NaN', 'Infinity');
UPDATE mlma.stream_state SET skipped = skipped + 2
 WHERE stream_id = (SELECT stream_id FROM mlma.streams WHERE name = 'a/fixed');
INSERT INTO set_fc SELECT 'b/fixed', '2024-04-01', 100, 100, x
  FROM unnest(ARRAY[101, 'NaN', 102, 'Infinity', 99]::float8[]) x;
SELECT is(pg_temp.diff('cmp_open'), 0::bigint, 'invalid rows: the valid ones recorded');
SELECT is((SELECT skipped FROM mlma.stream_state JOIN mlma.streams USING (stream_id)
			WHERE name = 'b/fixed'), 2::bigint, '... the others counted as skipped');
SELECT is(pg_temp.diff('cmp_state'), 0::bigint, '... and the state the same');

-- more streams in a statement than mlma.stream_cache_size: the state
-- carried from chunk to chunk is dropped and read again (bounded memory)
SELECT count(mlma.create_stream(p || '/many-' || z, batch_size => 5))
  FROM (VALUES ('e'), ('f')) v(p), generate_series(1, 40) z;
SELECT count(mlma.observe('f/many-' || z, 10 + (g * 7 + z) % 5, 10, '2024-05-01'::timestamptz + g * interval '1 minute'))
  FROM (SELECT * FROM generate_series(1, 23) g, generate_series(1, 40) z ORDER BY g, z) x;
SET LOCAL mlma.stream_cache_size = 16;
SET LOCAL mlma.statement_chunk_size = 30;
INSERT INTO set_fc SELECT 'e/many-' || z, '2024-05-01'::timestamptz + g * interval '1 minute', 10, NULL, 10 + (g * 7 + z) % 5
  FROM generate_series(1, 23) g, generate_series(1, 40) z ORDER BY g, z;
RESET mlma.statement_chunk_size;
RESET mlma.stream_cache_size;
SELECT is(pg_temp.diff('cmp_batches', 'e', 'f') + pg_temp.diff('cmp_checks', 'e', 'f')
		  + pg_temp.diff('cmp_history', 'e', 'f'), 0::bigint,
		  'many streams in chunks: batches, checks and references the same');
SELECT is(pg_temp.diff('cmp_state', 'e', 'f') + pg_temp.diff('cmp_open', 'e', 'f'), 0::bigint,
		  'many streams in chunks: state and open batches the same');

-- a benchmark value with some observations only: the batches keep NULL
-- where one had none (the set path's arrays with NULLs), as the row path
-- keeps them; batches of 10, two statements, the second closing the batch
-- the first left open
SELECT count(mlma.create_stream(p || '/mixed', batch_size => 10))
  FROM (VALUES ('m'), ('n')) v(p);
SELECT count(mlma.observe('n/mixed', 10 + i % 3, 10, '2024-07-01'::timestamptz + i * interval '1 minute',
						  CASE WHEN i % 4 = 0 THEN NULL ELSE 11 + i % 2 END))
  FROM generate_series(1, 47) i;
INSERT INTO set_fc SELECT 'm/mixed', '2024-07-01'::timestamptz + i * interval '1 minute', 10,
		CASE WHEN i % 4 = 0 THEN NULL ELSE 11 + i % 2 END, 10 + i % 3
  FROM generate_series(1, 25) i;
INSERT INTO set_fc SELECT 'm/mixed', '2024-07-01'::timestamptz + i * interval '1 minute', 10,
		CASE WHEN i % 4 = 0 THEN NULL ELSE 11 + i % 2 END, 10 + i % 3
  FROM generate_series(26, 47) i;
SELECT is((SELECT count(*) FROM mlma.batches b JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'm/mixed' AND array_position(b.benchmark_losses, NULL) IS NOT NULL),
		  4::bigint, 'benchmark values with some observations: NULL where missing');
SELECT is(pg_temp.diff_written('m', 'n') + pg_temp.diff_left('m', 'n'), 0::bigint,
		  '... batches, checks, state and open batch as the row path leaves them');

-- a trigger on mlma.open_runs: the open batches a statement leaves are
-- then written with SQL (the trigger fires), not through the access methods;
-- the statement's 30 observations of the stream are one run
CREATE TEMP TABLE tail_rows (n int);
CREATE FUNCTION pg_temp.count_tail() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN INSERT INTO tail_rows VALUES (1); RETURN NULL; END $$;
CREATE TRIGGER set_ingest_tail AFTER INSERT ON mlma.open_runs
	FOR EACH ROW EXECUTE FUNCTION pg_temp.count_tail();
SELECT count(mlma.create_stream(p || '/tail', batch_size => 50)) FROM (VALUES ('g'), ('h')) v(p);
SELECT count(mlma.observe('h/tail', 10 + i % 4, 10, '2024-06-01'::timestamptz + i * interval '1 minute'))
  FROM generate_series(1, 30) i;
DELETE FROM tail_rows;
INSERT INTO set_fc SELECT 'g/tail', '2024-06-01'::timestamptz + i * interval '1 minute', 10, NULL, 10 + i % 4
  FROM generate_series(1, 30) i;
SELECT is((SELECT count(*) FROM tail_rows), 1::bigint,
		  'with a trigger on mlma.open_runs the open batch is written with SQL, as one run');
SELECT is(pg_temp.diff('cmp_open', 'g', 'h') + pg_temp.diff('cmp_state', 'g', 'h'), 0::bigint,
		  '... and is the same');
DROP TRIGGER set_ingest_tail ON mlma.open_runs;

SELECT * FROM finish();
ROLLBACK;
