-- bad_input.sql
--	  The bad input catalogue: every way a caller can hand mlma something
--	  wrong gets a clear error with its SQLSTATE, and nothing is stored.
--
-- Each case runs through pg_temp.bad(), which takes a footprint of
-- everything mlma keeps (configuration, hot state, open and closed
-- batches, references, checks, requests, attachments, triggers) and of the
-- user tables of this file, runs the statement with throws_ok, and checks
-- that the footprint did not change.  The whole file runs in one
-- transaction that is rolled back, so it leaves nothing behind.
--
-- Runs with pg_prove in a database where pgtap and mlma are installed
-- (test/pgtap/run.sh).

\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only true

BEGIN;

SELECT plan(302);

-- the helpers read tables created further down
SET LOCAL check_function_bodies = off;

-- ---- helpers ---------------------------------------------------------------

CREATE FUNCTION pg_temp.footprint()
RETURNS text
LANGUAGE sql
AS $$
	SELECT concat_ws(' | ',
		(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY stream_id), ''))
		   FROM mlma.streams t),
		(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY stream_id), ''))
		   FROM mlma.stream_state t),
		(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY stream_id, seq), ''))
		   FROM mlma.observations t),
		(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY stream_id, batch_no), ''))
		   FROM mlma.batches t),
		(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY stream_id), ''))
		   FROM mlma.reference_batches t),
		(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY check_id), ''))
		   FROM mlma.checks t),
		(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY request_id), ''))
		   FROM mlma.retrain_requests t),
		(SELECT count(*) || ':' || md5(coalesce(string_agg(t::text, ',' ORDER BY source), ''))
		   FROM mlma.attachments t),
		(SELECT count(*) FROM pg_trigger WHERE tgname = 'mlma_observe'),
		(SELECT count(*) FROM public.bad_preds),
		(SELECT count(*) FROM public.bad_free),
		(SELECT count(*) FROM public.bad_altered))
$$;

-- one case: the error, then the unchanged footprint
CREATE FUNCTION pg_temp.bad(p_sql text, p_state text, p_msg text, p_what text)
RETURNS SETOF text
LANGUAGE plpgsql
AS $$
DECLARE
	v_before	text := pg_temp.footprint();
BEGIN
	RETURN NEXT throws_ok(p_sql, p_state, p_msg, p_what);
	RETURN NEXT is(pg_temp.footprint(), v_before, p_what || ': nothing stored');
END;
$$;

-- ---- fixtures --------------------------------------------------------------

\o /dev/null

SELECT mlma.create_stream('bad/s1', batch_size => 4);
SELECT mlma.create_stream('bad/ape', batch_size => 4, loss => 'ape');
SELECT mlma.observe_loss('bad/s1', x) FROM (VALUES (1.0), (2.0), (1.5)) v(x);

CREATE TABLE public.bad_preds (stream text, actual float8, predicted float8,
							   at timestamptz);
SELECT mlma.attach('public.bad_preds', 'stream', 'actual', 'predicted', 'at',
				   '{"batch_size": 4}', on_invalid => 'error');
-- a forecast waiting for its actual: the UPDATE that fills it in observes
INSERT INTO public.bad_preds VALUES ('bad/update', NULL, 1, now());
CREATE TABLE public.bad_free (stream text, actual float8, predicted float8);
CREATE TABLE public.bad_intstream (stream int, actual float8, predicted float8);
CREATE TABLE public.bad_textactual (stream text, actual text, predicted float8);
CREATE TABLE public.bad_texttime (stream text, actual float8, predicted float8,
								  at text);
CREATE VIEW public.bad_view AS SELECT * FROM public.bad_preds;
-- attached, then the user changes a mapped column to a non-numeric type
CREATE TABLE public.bad_altered (stream text, actual float8, predicted float8);
SELECT mlma.attach('public.bad_altered', 'stream', 'actual', 'predicted',
				   on_invalid => 'error');
ALTER TABLE public.bad_altered ALTER COLUMN actual TYPE text;

-- requests in each state: pending, completed, dismissed, and a claimed one
SELECT mlma.create_stream('bad/done');
SELECT mlma.create_stream('bad/dismissed');
SELECT mlma.create_stream('bad/pending');
SELECT mlma.create_stream('bad/claimed');
SELECT mlma.complete_retrain(mlma.request_retrain('bad/done', 'fixture'), 'v2');
SELECT mlma.dismiss(mlma.request_retrain('bad/dismissed', 'fixture'), 'fixture');
SELECT mlma.request_retrain('bad/pending', 'fixture');
SELECT mlma.request_retrain('bad/claimed', 'fixture');
UPDATE mlma.retrain_requests q
   SET status = 'claimed', claimed_by = 'other-worker', claimed_at = now(),
	   lease_until = now() + interval '1 hour'
  FROM mlma.streams s
 WHERE s.stream_id = q.stream_id AND s.name = 'bad/claimed';

\o

CREATE TEMP TABLE req AS
SELECT s.name, q.request_id
  FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
 WHERE s.name LIKE 'bad/%';

-- ---- observe / observe_loss ------------------------------------------------

SELECT pg_temp.bad($$SELECT mlma.observe_loss('bad/s1', 'NaN')$$,
	'22023', 'loss must be finite', 'observe_loss NaN');
SELECT pg_temp.bad($$SELECT mlma.observe_loss('bad/s1', 'Infinity')$$,
	'22023', 'loss must be finite', 'observe_loss +Infinity');
SELECT pg_temp.bad($$SELECT mlma.observe_loss('bad/s1', '-Infinity')$$,
	'22023', 'loss must be finite', 'observe_loss -Infinity');
SELECT pg_temp.bad($$SELECT mlma.observe_loss('bad/s1', NULL)$$,
	'22004', 'loss must not be null', 'observe_loss NULL loss');
SELECT pg_temp.bad($$SELECT mlma.observe_loss('bad/s1', -0.001)$$,
	'22023', 'loss must not be negative', 'observe_loss negative loss');
SELECT pg_temp.bad($$SELECT mlma.observe_loss('bad/nosuch', 1)$$,
	'42704', 'stream "bad/nosuch" does not exist', 'observe_loss unknown stream');
SELECT pg_temp.bad($$SELECT mlma.observe_loss(NULL, 1)$$,
	'22004', 'stream must not be null', 'observe_loss NULL stream');
SELECT pg_temp.bad($$SELECT mlma.observe_loss('bad/s1', 1, 'infinity')$$,
	'22023', 'observed_at must be finite', 'observe_loss infinite observed_at');
SELECT pg_temp.bad($$SELECT mlma.observe_loss('bad/s1', 1, NULL)$$,
	'22004', 'observed_at must not be null', 'observe_loss NULL observed_at');
SELECT pg_temp.bad($$SELECT mlma.observe('bad/s1', 'NaN', 1)$$,
	'22023', 'actual and predicted must be finite', 'observe actual NaN');
SELECT pg_temp.bad($$SELECT mlma.observe('bad/s1', 1, '-Infinity')$$,
	'22023', 'actual and predicted must be finite', 'observe predicted -Infinity');
SELECT pg_temp.bad($$SELECT mlma.observe('bad/s1', NULL, 1)$$,
	'22004', 'actual must not be null', 'observe NULL actual');
SELECT pg_temp.bad($$SELECT mlma.observe('bad/s1', 1, NULL)$$,
	'22004', 'predicted must not be null', 'observe NULL predicted');
SELECT pg_temp.bad($$SELECT mlma.observe('bad/ape', 0, 2)$$,
	'22023', 'loss "ape" is undefined when actual is 0',
	'observe: loss undefined for the input (ape with actual 0)');
-- the fourth observation would close the batch (and check nothing yet):
-- an error later in the same statement takes the closed batch back too
SELECT pg_temp.bad($$SELECT mlma.observe_loss('bad/s1', x) FROM (VALUES (1.0), ('NaN')) v(x)$$,
	'22023', 'loss must be finite', 'error after the observation that closed a batch');

-- ---- stream names ----------------------------------------------------------

SELECT pg_temp.bad($$SELECT mlma.create_stream('')$$,
	'22023', 'stream name must be 1 to 255 characters', 'stream name of 0 characters');
SELECT pg_temp.bad($$SELECT mlma.create_stream(repeat('n', 256))$$,
	'22023', 'stream name must be 1 to 255 characters', 'stream name of 256 characters');
SELECT pg_temp.bad($$SELECT mlma.create_stream(NULL)$$,
	'22004', 'stream name must not be null', 'NULL stream name');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/s1')$$,
	'42710', 'stream "bad/s1" already exists', 'duplicate stream name');

-- ---- every out-of-range option ---------------------------------------------

SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', batch_size => 1)$$,
	'22023', 'batch_size must be between 2 and 100000', 'batch_size 1');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', batch_size => 2147483647)$$,
	'22023', 'batch_size must be between 2 and 100000', 'huge batch_size');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', batch_size => NULL)$$,
	'22023', 'batch_size must be between 2 and 100000', 'NULL batch_size');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', reference_size => 1)$$,
	'22023', 'reference_size must be between 2 and 1000000', 'reference_size 1');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', reference_size => 1000001)$$,
	'22023', 'reference_size must be between 2 and 1000000', 'huge reference_size');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', method => 'ttest')$$,
	'22023', 'unknown method "ttest"', 'unknown method');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', method => 'dm', batch_size => 10, reference_size => 20)$$,
	'22023', 'method dm requires season_length or reference_size equal to batch_size',
	'dm without pairing');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', alpha => 0)$$,
	'22023', 'alpha must be between 0 and 1 (exclusive)', 'alpha 0');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', alpha => 1)$$,
	'22023', 'alpha must be between 0 and 1 (exclusive)', 'alpha 1');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', alpha => 'NaN')$$,
	'22023', 'alpha must be between 0 and 1 (exclusive)', 'alpha NaN');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', loss => 'cubic')$$,
	'22023', 'unknown loss "cubic"', 'unknown loss kind');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', loss => 'pinball')$$,
	'22023', 'loss "pinball" requires a parameter',
	'pinball without tau');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', loss => 'pinball', loss_param => 1.5)$$,
	'22023', 'pinball parameter must be between 0 and 1 exclusive',
	'pinball tau 1.5');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', loss => 'huber', loss_param => -1)$$,
	'22023', 'huber parameter must be positive and finite', 'huber delta -1');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', check_mode => 'lazy')$$,
	'22023', 'unknown check_mode: lazy', 'unknown check_mode');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', reference_policy => 'sliding')$$,
	'22023', 'unknown reference_policy: sliding', 'unknown reference_policy');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', min_effect => -0.5)$$,
	'22023', 'min_effect must be a finite number at least 0', 'negative min_effect');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', min_effect => 'Infinity')$$,
	'22023', 'min_effect must be a finite number at least 0', 'infinite min_effect');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', consecutive => 0)$$,
	'22023', 'consecutive must be between 1 and 1000', 'consecutive 0');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', consecutive => 1001)$$,
	'22023', 'consecutive must be between 1 and 1000', 'consecutive 1001');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', season_length => 1)$$,
	'22023', 'season_length must be between 2 and 100000', 'season_length 1');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', season_length => 10, reference_size => 5)$$,
	'22023', 'reference_size must span at least one season',
	'reference shorter than a season');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', max_model_age => '-1 day')$$,
	'22023', 'max_model_age must be positive', 'negative max_model_age');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', model_version => '')$$,
	'22023', 'model_version must be 1 to 255 characters', 'empty model_version');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', model_version => repeat('v', 256))$$,
	'22023', 'model_version must be 1 to 255 characters', 'model_version of 256 characters');
SELECT pg_temp.bad($$SELECT mlma.create_stream('bad/o', labels => '[1, 2]')$$,
	'22023', 'labels must be a JSON object', 'labels not an object');

-- ---- configure, drop, pause, pin on bad input ------------------------------

SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', alpha => 2)$$,
	'22023', 'alpha must be between 0 and 1 (exclusive)', 'configure alpha 2');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', batch_size => 1000000)$$,
	'22023', 'batch_size must be between 2 and 100000', 'configure huge batch_size');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/nosuch', alpha => 0.1)$$,
	'42704', 'stream "bad/nosuch" does not exist', 'configure unknown stream');
SELECT pg_temp.bad($$SELECT mlma.drop_stream('bad/nosuch')$$,
	'42704', 'stream "bad/nosuch" does not exist', 'drop_stream unknown stream');
SELECT pg_temp.bad($$SELECT mlma.pause('bad/nosuch')$$,
	'42704', 'stream "bad/nosuch" does not exist', 'pause unknown stream');
SELECT pg_temp.bad($$SELECT mlma.request_retrain('bad/nosuch')$$,
	'42704', 'stream "bad/nosuch" does not exist', 'request_retrain unknown stream');
SELECT pg_temp.bad($$SELECT mlma.pin_reference('bad/s1', now(), now() - interval '1 day')$$,
	'22023', 'from_ts and to_ts must be a non-empty time range', 'pin_reference reversed range');

-- ---- agent functions with foreign or finished request ids ------------------

SELECT pg_temp.bad($$SELECT mlma.complete_retrain(-1, 'v9')$$,
	'42704', 'retrain request -1 does not exist', 'complete_retrain unknown id');
SELECT pg_temp.bad($$SELECT mlma.fail_retrain(2147483647000, 'boom')$$,
	'42704', 'retrain request 2147483647000 does not exist', 'fail_retrain unknown id');
SELECT pg_temp.bad($$SELECT mlma.dismiss(0, 'no')$$,
	'42704', 'retrain request 0 does not exist', 'dismiss unknown id');
SELECT pg_temp.bad($$SELECT mlma.complete_retrain(NULL, 'v9')$$,
	'22004', 'request_id must not be null', 'complete_retrain NULL id');
SELECT pg_temp.bad(format($$SELECT mlma.complete_retrain(%s, 'v9')$$,
						  (SELECT request_id FROM req WHERE name = 'bad/done')),
	'55000', format('cannot complete retrain request %s: it is completed',
					(SELECT request_id FROM req WHERE name = 'bad/done')),
	'complete_retrain of a completed request');
SELECT pg_temp.bad(format($$SELECT mlma.fail_retrain(%s, 'late')$$,
						  (SELECT request_id FROM req WHERE name = 'bad/dismissed')),
	'55000', format('cannot fail retrain request %s: it is dismissed',
					(SELECT request_id FROM req WHERE name = 'bad/dismissed')),
	'fail_retrain of a dismissed request');
SELECT pg_temp.bad(format($$SELECT mlma.dismiss(%s, 'again')$$,
						  (SELECT request_id FROM req WHERE name = 'bad/done')),
	'55000', format('cannot dismiss retrain request %s: it is completed',
					(SELECT request_id FROM req WHERE name = 'bad/done')),
	'dismiss of a completed request');
SELECT pg_temp.bad(format($$SELECT mlma.complete_retrain(%s, '')$$,
						  (SELECT request_id FROM req WHERE name = 'bad/pending')),
	'22023', 'model_version must be 1 to 255 characters',
	'complete_retrain with an empty model_version');
SELECT pg_temp.bad(format($$SELECT mlma.dismiss(%s, 'keep', true)$$,
						  (SELECT request_id FROM req WHERE name = 'bad/pending')),
	'55000', format('retrain request %s has no flagged batch to accept as reference',
					(SELECT request_id FROM req WHERE name = 'bad/pending')),
	'accept_as_reference on a manual request');
SELECT pg_temp.bad($$SELECT * FROM mlma.claim_retrain('')$$,
	'22023', 'worker must be a non-empty name', 'claim_retrain empty worker');
SELECT pg_temp.bad($$SELECT * FROM mlma.claim_retrain('w', '-1 hour')$$,
	'22023', 'lease must be positive', 'claim_retrain negative lease');
SELECT pg_temp.bad($$SELECT mlma.run_checks(-1)$$,
	'22023', 'fdr must be between 0 and 1 (exclusive), got -1', 'run_checks fdr -1');
SELECT pg_temp.bad($$SELECT mlma.run_checks(2)$$,
	'22023', 'fdr must be between 0 and 1 (exclusive), got 2', 'run_checks fdr 2');

-- ---- attach and wrong types in attached tables -----------------------------

SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_intstream', 'stream', 'actual', 'predicted')$$,
	'42804', 'stream column "stream" must be of type text or varchar, not integer',
	'attach: integer stream column');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_textactual', 'stream', 'actual', 'predicted')$$,
	'42804', 'column "actual" must be of a numeric type, not text',
	'attach: text actual column');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_texttime', 'stream', 'actual', 'predicted', 'at')$$,
	'42804', 'time column "at" must be of type timestamptz or timestamp, not text',
	'attach: text time column');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_view', 'stream', 'actual', 'predicted')$$,
	'42809', '"public.bad_view" is not a table', 'attach a view');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_preds', 'stream', 'actual', 'predicted')$$,
	'42710', 'table "public.bad_preds" is already attached', 'attach twice');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'nosuch', 'predicted')$$,
	'42703', 'column "nosuch" of table "public.bad_free" does not exist', 'attach: unknown column');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'actual', 'actual')$$,
	'22023', 'the mapped columns must be distinct', 'attach: one column mapped twice');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'actual', 'predicted', NULL, '{"batchsize": 4}')$$,
	'22023', 'unknown option in defaults: batchsize', 'attach: unknown option in defaults');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'actual', 'predicted', NULL, '{"alpha": 5}')$$,
	'22023', 'alpha must be between 0 and 1 (exclusive)', 'attach: out-of-range default');
SELECT pg_temp.bad($$SELECT mlma.detach('public.bad_free')$$,
	'42704', 'table "public.bad_free" is not attached', 'detach a table that is not attached');
SELECT pg_temp.bad($$INSERT INTO public.bad_altered VALUES ('bad/alt', 'x', 1)$$,
	'42804', 'column "actual" must be of a numeric type, not text',
	'attached column changed to text after attach');
SELECT pg_temp.bad($$INSERT INTO public.bad_preds VALUES ('bad/s1', 'NaN', 1, now())$$,
	'22023', 'actual and predicted must be finite', 'attached table: NaN actual');
SELECT pg_temp.bad($$INSERT INTO public.bad_preds VALUES ('bad/s1', 1, 'Infinity', now())$$,
	'22023', 'actual and predicted must be finite', 'attached table: infinite predicted');
SELECT pg_temp.bad($$INSERT INTO public.bad_preds VALUES ('bad/auto', 1, 1, 'infinity')$$,
	'22023', 'observed_at must be finite', 'attached table: infinite time');
SELECT pg_temp.bad($$INSERT INTO public.bad_preds VALUES ('', 1, 1, now())$$,
	'22023', 'stream name must be 1 to 255 characters', 'attached table: stream name of 0 characters');
SELECT pg_temp.bad($$INSERT INTO public.bad_preds VALUES (repeat('n', 256), 1, 1, now())$$,
	'22023', 'stream name must be 1 to 255 characters', 'attached table: stream name of 256 characters');
-- a multi-row INSERT whose last row is bad: the good rows before it, the
-- stream they created and the batch they closed are all taken back
SELECT pg_temp.bad($$INSERT INTO public.bad_preds
	SELECT 'bad/multi', g::float8, g + 1.0, now() FROM generate_series(1, 9) g
	UNION ALL SELECT 'bad/multi', 'NaN', 1, now()$$,
	'22023', 'actual and predicted must be finite', 'attached table: bad last row of ten');
SELECT pg_temp.bad($$COPY public.bad_preds FROM PROGRAM 'printf "bad/copy\t1\t2\t2024-01-01\nbad/copy\tNaN\t2\t2024-01-01\n"'$$,
	'22023', 'actual and predicted must be finite', 'attached table: COPY with a bad row');
SELECT pg_temp.bad($$UPDATE public.bad_preds SET actual = 'NaN' WHERE stream = 'bad/update'$$,
	'22023', 'actual and predicted must be finite', 'attached table: UPDATE filling in NaN');

-- ---- every argument of every public function: NULLs, out-of-range values,
-- unknown names (0.2.0) ---------------------------------------------------

SELECT pg_temp.bad($$SELECT mlma.resume(NULL)$$,
	'22004', 'stream must not be null', 'resume: NULL stream');
SELECT pg_temp.bad($$SELECT mlma.resume('no/such')$$,
	'42704', 'stream "no/such" does not exist', 'resume: unknown stream');
SELECT pg_temp.bad($$SELECT mlma.pause(NULL)$$,
	'22004', 'stream must not be null', 'pause: NULL stream');
SELECT pg_temp.bad($$SELECT mlma.drop_stream(NULL)$$,
	'22004', 'stream must not be null', 'drop_stream: NULL stream');
SELECT pg_temp.bad($$SELECT mlma.drop_stream('no/such')$$,
	'42704', 'stream "no/such" does not exist', 'drop_stream: unknown stream');
SELECT pg_temp.bad($$SELECT mlma.configure(NULL, alpha => 0.1)$$,
	'22004', 'stream must not be null', 'configure: NULL stream');
SELECT pg_temp.bad($$SELECT mlma.configure('no/such', alpha => 0.1)$$,
	'42704', 'stream "no/such" does not exist', 'configure: unknown stream');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', alpha => 2)$$,
	'22023', 'alpha must be between 0 and 1 (exclusive)', 'configure: alpha out of range');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', batch_size => 1)$$,
	'22023', 'batch_size must be between 2 and 100000', 'configure: batch_size out of range');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', method => 'bogus')$$,
	'22023', 'unknown method "bogus"', 'configure: unknown method');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', loss => 'bogus')$$,
	'22023', 'unknown loss "bogus"', 'configure: unknown loss');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', consecutive => 0)$$,
	'22023', 'consecutive must be between 1 and 1000', 'configure: consecutive out of range');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', min_effect => -1)$$,
	'22023', 'min_effect must be a finite number at least 0', 'configure: negative min_effect');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', season_length => 1)$$,
	'22023', 'season_length must be between 2 and 100000', 'configure: season_length out of range');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', max_model_age => '-1 day')$$,
	'22023', 'max_model_age must be positive', 'configure: negative max_model_age');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', labels => '[]')$$,
	'22023', 'labels must be a JSON object', 'configure: labels not an object');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', model_version => '')$$,
	'22023', 'model_version must be 1 to 255 characters', 'configure: empty model_version');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', check_mode => 'bogus')$$,
	'22023', 'unknown check_mode: bogus', 'configure: unknown check_mode');
SELECT pg_temp.bad($$SELECT mlma.configure('bad/s1', reference_policy => 'bogus')$$,
	'22023', 'unknown reference_policy: bogus', 'configure: unknown reference_policy');
SELECT pg_temp.bad($$SELECT mlma.detach(NULL)$$,
	'22004', 'source must not be null', 'detach: NULL source');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'actual', 'predicted', on_invalid => NULL)$$,
	'22023', 'on_invalid must be error or skip', 'attach: NULL on_invalid');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'actual', 'predicted', on_invalid => 'ignore')$$,
	'22023', 'on_invalid must be error or skip', 'attach: unknown on_invalid');
SELECT pg_temp.bad($$SELECT mlma.attach(0, 'stream', 'actual', 'predicted')$$,
	'42P01', 'table with OID 0 does not exist', 'attach: OID 0');
SELECT pg_temp.bad($$SELECT mlma.attach(NULL, 'stream', 'actual', 'predicted')$$,
	'22004', 'source, stream_column, actual_column and predicted_column must not be null', 'attach: NULL source');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', NULL, 'actual', 'predicted')$$,
	'22004', 'source, stream_column, actual_column and predicted_column must not be null', 'attach: NULL stream_column');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', NULL, 'predicted')$$,
	'22004', 'source, stream_column, actual_column and predicted_column must not be null', 'attach: NULL actual_column');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'actual', NULL)$$,
	'22004', 'source, stream_column, actual_column and predicted_column must not be null', 'attach: NULL predicted_column');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_textactual', 'stream', 'predicted', 'stream', benchmark_column => 'actual')$$,
	'42804', 'column "actual" must be of a numeric type, not text', 'attach: text benchmark column');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'actual', 'predicted', benchmark_column => 'nosuch')$$,
	'42703', 'column "nosuch" of table "public.bad_free" does not exist', 'attach: unknown benchmark column');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'actual', 'predicted', benchmark_column => 'actual')$$,
	'22023', 'the mapped columns must be distinct', 'attach: benchmark column mapped twice');
SELECT pg_temp.bad($$SELECT mlma.attach('public.bad_free', 'stream', 'actual', 'predicted', NULL, '{"create_streams": 1}')$$,
	'22023', 'create_streams in defaults must be true or false', 'attach: create_streams not a boolean');
SELECT pg_temp.bad($$SELECT * FROM mlma.claim_retrain('w', '1000000 years')$$,
	'22023', 'lease must be at most 1 year', 'claim_retrain: endless lease');
SELECT pg_temp.bad($$SELECT * FROM mlma.claim_retrain(NULL)$$,
	'22023', 'worker must be a non-empty name', 'claim_retrain: NULL worker');
SELECT pg_temp.bad($$SELECT * FROM mlma.claim_retrain('w', NULL)$$,
	'22023', 'lease must be positive', 'claim_retrain: NULL lease');
SELECT pg_temp.bad($$SELECT mlma.complete_retrain(NULL, 'v9')$$,
	'22004', 'request_id must not be null', 'complete_retrain: NULL request_id');
SELECT pg_temp.bad($$SELECT mlma.fail_retrain(NULL, 'x')$$,
	'22004', 'request_id must not be null', 'fail_retrain: NULL request_id');
SELECT pg_temp.bad($$SELECT mlma.dismiss(NULL, 'x')$$,
	'22004', 'request_id must not be null', 'dismiss: NULL request_id');
SELECT pg_temp.bad($$SELECT mlma.request_retrain(NULL)$$,
	'22004', 'stream must not be null', 'request_retrain: NULL stream');
SELECT pg_temp.bad($$SELECT mlma.request_retrain('no/such')$$,
	'42704', 'stream "no/such" does not exist', 'request_retrain: unknown stream');
SELECT pg_temp.bad($$SELECT mlma.pin_reference(NULL, now() - interval '1 day', now())$$,
	'22004', 'stream must not be null', 'pin_reference: NULL stream');
SELECT pg_temp.bad($$SELECT mlma.pin_reference('bad/s1', NULL, now())$$,
	'22023', 'from_ts and to_ts must be a non-empty time range', 'pin_reference: NULL from_ts');
SELECT pg_temp.bad($$SELECT mlma.pin_reference('bad/s1', now(), now() - interval '1 day')$$,
	'22023', 'from_ts and to_ts must be a non-empty time range', 'pin_reference: reversed range');
SELECT pg_temp.bad($$SELECT mlma.pin_reference('no/such', now() - interval '1 day', now())$$,
	'42704', 'stream "no/such" does not exist', 'pin_reference: unknown stream');
SELECT pg_temp.bad($$SELECT * FROM mlma.purge(NULL)$$,
	'22023', 'older_than must be a non-negative interval', 'purge: NULL older_than');
SELECT pg_temp.bad($$SELECT * FROM mlma.purge('-1 day')$$,
	'22023', 'older_than must be a non-negative interval', 'purge: negative older_than');
SELECT pg_temp.bad($$SELECT * FROM mlma.replay(NULL)$$,
	'22004', 'stream must not be null', 'replay: NULL stream');
SELECT pg_temp.bad($$SELECT * FROM mlma.replay('no/such')$$,
	'42704', 'stream "no/such" does not exist', 'replay: unknown stream');
SELECT pg_temp.bad($$SELECT * FROM mlma.replay('bad/s1', alpha => 2)$$,
	'22023', 'alpha must be between 0 and 1 (exclusive)', 'replay: alpha out of range');
SELECT pg_temp.bad($$SELECT * FROM mlma.replay('bad/s1', method => 'bogus')$$,
	'22023', 'unknown method "bogus"', 'replay: unknown method');
SELECT pg_temp.bad($$SELECT * FROM mlma.check_history(NULL)$$,
	'22004', 'stream must not be null', 'check_history: NULL stream');
SELECT pg_temp.bad($$SELECT * FROM mlma.check_history('no/such')$$,
	'42704', 'stream "no/such" does not exist', 'check_history: unknown stream');
SELECT pg_temp.bad($$SELECT * FROM mlma.request_history(NULL)$$,
	'22004', 'stream must not be null', 'request_history: NULL stream');
SELECT pg_temp.bad($$SELECT * FROM mlma.request_history('no/such')$$,
	'42704', 'stream "no/such" does not exist', 'request_history: unknown stream');
SELECT pg_temp.bad($$SELECT mlma.schedule_checks(NULL)$$,
	'22023', 'schedule must not be empty', 'schedule_checks: NULL schedule');
SELECT pg_temp.bad($$SELECT * FROM mlma.run_checks(fdr => -1)$$,
	'22023', 'fdr must be between 0 and 1 (exclusive), got -1', 'run_checks: negative fdr');
SELECT pg_temp.bad($$SELECT * FROM mlma.welch_test('{1,2}', '{1,2}', 'bogus')$$,
	'22023', 'unknown alternative "bogus"', 'welch_test: unknown alternative');
SELECT pg_temp.bad($$SELECT * FROM mlma.mann_whitney_test('{1}', '{1,2}')$$,
	'22023', 'reference must contain at least 2 values', 'mann_whitney_test: one observation');
SELECT pg_temp.bad($$SELECT * FROM mlma.hac_test('{1,2,3}', '{1,2,3}', 'greater', -1)$$,
	'22023', 'lags must not be negative', 'hac_test: negative lag');
SELECT pg_temp.bad($$SELECT * FROM mlma.dm_test('{1,2,3}', '{1,2}')$$,
	'22023', 'reference and current must have the same length for dm_test', 'dm_test: samples of different lengths');
SELECT pg_temp.bad($$SELECT mlma.loss('bogus', 1, 2)$$,
	'22023', 'unknown loss "bogus"', 'loss: unknown kind');
SELECT pg_temp.bad($$SELECT mlma.bh_adjust('{0.5,NULL}')$$,
	'22023', 'p_values contains a null value at position 2', 'bh_adjust: NULL element');
SELECT pg_temp.bad($$SELECT mlma.bh_adjust('{2}')$$,
	'22023', 'p_values contains a value outside [0, 1] at position 1', 'bh_adjust: p-value above 1');

-- ---- names that are valid though hostile, and the notification limit ------

SELECT lives_ok($$SELECT mlma.create_stream($q$it's "q";DROP TABLE mlma.streams;--$q$, batch_size => 4)$$,
	'a stream name with quotes and semicolons is accepted');
SELECT lives_ok($$INSERT INTO public.bad_preds VALUES ($q$it's "q";DROP TABLE mlma.streams;--$q$, 2, 1, now())$$,
	'and observed through an attached table');
SELECT is((SELECT count(*) FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
			WHERE s.name = $q$it's "q";DROP TABLE mlma.streams;--$q$),
	1::bigint, 'the observation went to that stream');
SELECT has_table('mlma', 'streams', 'and mlma.streams is still there');

-- worst case for the NOTIFY payload: 255 characters that each need a
-- six-byte JSON escape, in both the stream name and the model version
SELECT lives_ok($$SELECT mlma.create_stream(repeat(chr(1), 254) || '"',
					model_version => repeat(chr(31), 255))$$,
	'a 255-character stream name of control characters is accepted');
SELECT lives_ok($$SELECT mlma.request_retrain(repeat(chr(1), 254) || '"')$$,
	'a request for it raises its notification');
SELECT cmp_ok((SELECT octet_length(mlma._notify_payload(q.request_id))
				 FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
				WHERE s.name = repeat(chr(1), 254) || '"'),
	'<', 8000, 'its payload stays below the 8000-byte NOTIFY limit');
SELECT is((SELECT mlma._notify_payload(q.request_id)::jsonb ->> 'stream'
			 FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
			WHERE s.name = repeat(chr(1), 254) || '"'),
	repeat(chr(1), 254) || '"', 'and is JSON that gives the exact name back');

-- the payload is made in C (src/requests.c); it must be the JSON that
-- to_json would make of the same values, for any name, version and number:
-- multibyte names cut at 255 characters, escapes, NaN and infinities as
-- null, every float as float8out writes it
SELECT is((WITH v AS (
	SELECT g AS id, g * 7 AS sid,
		   (ARRAY['zone-1', 'a"b\c', E'tab\there\nnl', repeat('é', 300),
				  repeat('x', 254) || '"yy', E'\u0001ctl', '日本語', ''])[1 + g % 8] AS name,
		   (ARRAY['v1', repeat('ü', 400), 'm"v'])[1 + g % 3] AS mv,
		   (ARRAY['drift', 'age', 'manual'])[1 + g % 3] AS reason,
		   CASE g % 9 WHEN 0 THEN NULL WHEN 1 THEN 'NaN'::float8 WHEN 2 THEN 'Infinity'
				WHEN 3 THEN '-Infinity' WHEN 4 THEN 1e-300 WHEN 5 THEN 5e-324
				WHEN 6 THEN -0.0 ELSE random() * 10 ^ (random() * 40 - 20) END AS p,
		   CASE g % 7 WHEN 0 THEN NULL WHEN 1 THEN 'NaN'::float8
				ELSE (random() - 0.5) * 10 ^ (random() * 600 - 300) END AS e,
		   (ARRAY['pending', 'proposed'])[1 + g % 2] AS st
	  FROM generate_series(1, 5000) g)
	SELECT count(*) FROM v
	 WHERE mlma._request_payload(id, sid, name, mv, reason, p, e, st) IS DISTINCT FROM
		   format('{"v":1,"request_id":%s,"stream_id":%s,"stream":%s,"model_version":%s,"reason":%s,"p_value":%s,"effect":%s,"status":%s}',
				  id, sid, to_json(left(name, 255))::text, to_json(left(mv, 255))::text,
				  to_json(reason)::text,
				  CASE WHEN p IS NULL OR p IN ('NaN', 'Infinity', '-Infinity') THEN 'null'
					   ELSE to_json(p)::text END,
				  CASE WHEN e IS NULL OR e IN ('NaN', 'Infinity', '-Infinity') THEN 'null'
					   ELSE to_json(e)::text END,
				  to_json(st)::text)),
	0::bigint, 'a payload made in C equals the JSON of its values, for 5 000 adversarial ones');
SET LOCAL extra_float_digits = 0;
SELECT is(mlma._request_payload(1, 2, 'z', 'v', 'drift', 1 / 3.0, 0.1, 'pending')::jsonb ->> 'p_value',
	'0.333333333333333', 'its numbers follow extra_float_digits as to_json does');
RESET extra_float_digits;

SELECT * FROM finish();
ROLLBACK;
