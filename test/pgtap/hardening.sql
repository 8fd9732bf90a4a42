-- hardening.sql
--	  Regressions of the 0.2.0 hardening: a check never fails inside a
--	  writer's transaction (overflowing losses, settings the live reference
--	  cannot serve, purge during warm-up), purge keeps what open requests
--	  need, rows of attached tables that cannot be observations are skipped
--	  and counted (on_invalid 'skip'), unknown streams are not created when
--	  the attachment says so, dropped tables leave no mapping, and clear
--	  errors for a few arguments.  Every case failed on 0.1.0.
--
-- Runs in one transaction that is rolled back (test/pgtap/run.sh).

\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only true

BEGIN;

SET LOCAL client_min_messages = warning;
SELECT plan(43);

CREATE FUNCTION pg_temp.n_obs(p_name text)
RETURNS bigint
LANGUAGE sql
AS $$
	SELECT (SELECT count(*) FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
			 WHERE s.name = p_name)
		 + (SELECT coalesce(sum(cardinality(b.losses)), 0) FROM mlma.batches b
			  JOIN mlma.streams s USING (stream_id) WHERE s.name = p_name)
$$;

-- ---- huge finite losses ---------------------------------------------------

SELECT mlma.create_stream('h/fixed', batch_size => 4);
SELECT lives_ok($$SELECT mlma.observe_loss('h/fixed', 1.7e308) FROM generate_series(1, 4)$$,
	'huge losses: the warm-up batch closes');
SELECT is((SELECT reference_mean FROM mlma.stream_status WHERE name = 'h/fixed'),
	1.7e308::float8, 'the reference mean is computed without overflow');
SELECT lives_ok($$SELECT mlma.observe_loss('h/fixed', 1.7e308) FROM generate_series(1, 4)$$,
	'huge losses: the test batch closes');
SELECT is((SELECT count(*) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'h/fixed' AND c.status = 'done' AND c.significant IS NOT NULL),
	1::bigint, 'and its check is recorded with an outcome');

SELECT mlma.observe_loss('h/fixed', 1.7e308) FROM generate_series(1, 2);
SELECT is((SELECT batch_mean FROM mlma.stream_status WHERE name = 'h/fixed'),
	1.7e308::float8, 'stream_status shows the mean of an open batch of huge losses');

SELECT mlma.create_stream('h/rolling', batch_size => 4, reference_policy => 'rolling');
SELECT lives_ok($$SELECT mlma.observe_loss('h/rolling', 1.7e308 * (0.9 + (g % 2) / 10.0))
					FROM generate_series(1, 12) g$$,
	'huge losses: a rolling stream rolls its reference after passing batches');
SELECT is(pg_temp.n_obs('h/rolling'), 12::bigint, 'every observation is stored');

-- ---- settings the live reference cannot serve ------------------------------

SELECT mlma.create_stream('h/dm6', batch_size => 6, method => 'dm');
SELECT mlma.observe_loss('h/dm6', 1 + g % 3) FROM generate_series(1, 6) g;
SELECT mlma.configure('h/dm6', batch_size => 4, reference_size => 4);
SELECT is((SELECT state FROM mlma.stream_status WHERE name = 'h/dm6'), 'warming',
	'dm: a reference of another length is dropped by configure, the stream warms again');
SELECT lives_ok($$SELECT mlma.observe_loss('h/dm6', 1 + g % 3) FROM generate_series(1, 8) g$$,
	'dm: the next batches close');
SELECT is((SELECT reference_n FROM mlma.stream_status WHERE name = 'h/dm6'), 4,
	'dm: the new reference has batch_size losses');
SELECT is((SELECT count(*) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'h/dm6' AND c.p_value BETWEEN 0 AND 1),
	1::bigint, 'dm: and the next batch is tested');

SELECT mlma.create_stream('h/w8', batch_size => 4, reference_size => 8);
SELECT mlma.observe_loss('h/w8', 1 + g % 3) FROM generate_series(1, 8) g;
SELECT mlma.configure('h/w8', method => 'dm', reference_size => 4);
SELECT lives_ok($$SELECT mlma.observe_loss('h/w8', 1 + g % 3) FROM generate_series(1, 8) g$$,
	'welch to dm with a reference of 8: batches close');
SELECT is(pg_temp.n_obs('h/w8'), 16::bigint, 'every observation is stored');

-- _evaluate itself never raises for data: no p-value (NULL), the sizes kept
SELECT results_eq($$SELECT p_value IS NULL, statistic IS NULL, n_reference, n_current
					  FROM mlma._evaluate('dm', '{1,2,3}', NULL, '{1,2}', 0, NULL)$$,
	$$VALUES (true, true, 3, 2)$$,
	'_evaluate: dm samples of different lengths give no p-value');
SELECT results_eq($$SELECT p_value IS NULL, statistic IS NULL, n_reference, n_current
					  FROM mlma._evaluate('welch', '{1}', NULL, '{1,2}', 0, NULL)$$,
	$$VALUES (true, true, 1, 2)$$,
	'_evaluate: a reference of one loss gives no p-value');

-- ---- purge ------------------------------------------------------------------

SELECT mlma.create_stream('h/warm', batch_size => 4, reference_size => 12);
SELECT mlma.observe_loss('h/warm', 1 + g % 3, now() - interval '60 days') FROM generate_series(1, 8) g;
SELECT mlma.purge('30 days');
SELECT lives_ok($$SELECT mlma.observe_loss('h/warm', 1 + g % 3) FROM generate_series(1, 8) g$$,
	'purge during warm-up: the warm-up completes');
SELECT is((SELECT reference_n FROM mlma.stream_status WHERE name = 'h/warm'), 12,
	'with a reference of reference_size losses (purge kept the warm-up batches)');

SELECT mlma.create_stream('h/flag', batch_size => 4);
SELECT mlma.observe_loss('h/flag', 1 + g % 3, now() - interval '60 days') FROM generate_series(1, 4) g;
SELECT mlma.observe_loss('h/flag', 50 + g % 3, now() - interval '60 days') FROM generate_series(1, 4) g;
SELECT is((SELECT count(*) FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'h/flag' AND q.status = 'pending'), 1::bigint, 'the old batch raised a request');
SELECT mlma.purge('30 days');
SELECT lives_ok($$SELECT mlma.dismiss(q.request_id, 'false alarm', accept_as_reference => true)
					FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
				   WHERE s.name = 'h/flag'$$,
	'purge keeps the flagged batch of an open request: dismiss accepts it');
SELECT is((SELECT reference_source || ' ' || round(reference_mean)
			 FROM mlma.stream_status WHERE name = 'h/flag'),
	'accepted 51', 'the flagged batch is the reference');
SELECT is((SELECT status FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'h/flag'), 'dismissed', 'and the request is dismissed');

-- ---- attached tables: on_invalid, create_streams, dropped tables -------------

CREATE TABLE public.h_preds (zone text, actual float8, predicted float8);
SELECT mlma.attach('public.h_preds', 'zone', 'actual', 'predicted', NULL, '{"batch_size": 4}');
SELECT is((SELECT on_invalid FROM mlma.attachments WHERE source = 'public.h_preds'::regclass),
	'skip', 'on_invalid defaults to skip');
INSERT INTO public.h_preds VALUES ('h/zone', 1, 2);
SELECT lives_ok($$INSERT INTO public.h_preds VALUES ('h/zone', 1, 'NaN')$$,
	'a NaN prediction does not fail the INSERT');
SELECT is((SELECT count(*) FROM public.h_preds), 2::bigint, 'the row is in the user''s table');
SELECT is(pg_temp.n_obs('h/zone'), 1::bigint, 'but it is not an observation');
SELECT is((SELECT skipped || ' ' || last_skip_reason || ' ' || (last_skip_at IS NOT NULL)
			 FROM mlma.stream_status WHERE name = 'h/zone'),
	'1 actual or predicted is not finite true', 'the skip is counted on the stream with its reason');
SELECT lives_ok($$INSERT INTO public.h_preds VALUES (''), (repeat('n', 256)), (' h/zone')$$,
	'empty, 256-character and space-led names do not fail the INSERT');
SELECT is((SELECT skipped || ' ' || coalesce(last_skip_reason, '') FROM mlma.attachments
			WHERE source = 'public.h_preds'::regclass),
	'0 ', 'rows without actual are not observations, not skips');
INSERT INTO public.h_preds VALUES ('', 1, 2), (repeat('n', 256), 1, 2), (' h/zone', 1, 2);
SELECT is((SELECT skipped FROM mlma.attachments WHERE source = 'public.h_preds'::regclass),
	3::bigint, 'names that cannot be streams are counted on the attachment');
SELECT is((SELECT count(*) FROM mlma.streams WHERE name IN ('', ' h/zone') OR length(name) > 255),
	0::bigint, 'and no such stream exists');

-- on_invalid 'error' names the table and the attachment
CREATE TABLE public.h_strict (zone text, actual float8, predicted float8);
SELECT mlma.attach('public.h_strict', 'zone', 'actual', 'predicted', on_invalid => 'error');
SELECT throws_ok($$INSERT INTO public.h_strict VALUES (repeat('n', 256), 1, 2)$$,
	'22023', 'stream name must be 1 to 255 characters', 'on_invalid error: a long name fails the row');
CREATE FUNCTION pg_temp.detail_of(p_sql text)
RETURNS text
LANGUAGE plpgsql
AS $$
DECLARE
	v_detail	text;
BEGIN
	EXECUTE p_sql;
	RETURN NULL;
EXCEPTION WHEN OTHERS THEN
	GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
	RETURN v_detail;
END;
$$;
SELECT matches(pg_temp.detail_of($$INSERT INTO public.h_strict VALUES ('', 1, 2)$$),
	'Row of table "h_strict", attached to mlma with stream column "zone"',
	'the error detail names the table and the attachment');

-- create_streams false: rows of unknown streams follow on_invalid
CREATE TABLE public.h_known (zone text, actual float8, predicted float8);
SELECT mlma.attach('public.h_known', 'zone', 'actual', 'predicted', NULL, '{"create_streams": false}');
INSERT INTO public.h_known VALUES ('h/zone', 1, 2), ('h/unknown', 1, 2);
SELECT is(pg_temp.n_obs('h/zone'), 2::bigint, 'create_streams false: a known stream is observed');
SELECT is((SELECT count(*) FROM mlma.streams WHERE name = 'h/unknown'), 0::bigint,
	'an unknown one is not created');
SELECT is((SELECT skipped FROM mlma.attachments WHERE source = 'public.h_known'::regclass),
	1::bigint, 'its row is counted as skipped on the attachment');
CREATE TABLE public.h_free (zone text, actual float8, predicted float8);
SELECT throws_ok($$SELECT mlma.attach('public.h_free', 'zone', 'actual', 'predicted', NULL, '{"create_streams": "no"}')$$,
	'22023', 'create_streams in defaults must be true or false', 'create_streams must be a boolean');

-- dropping an attached table removes its mapping
DROP TABLE public.h_known;
SELECT is((SELECT count(*) FROM mlma.attachments WHERE source::text ~ '^[0-9]+$'), 0::bigint,
	'DROP TABLE of an attached table leaves no mapping behind');

-- ---- names and clear errors --------------------------------------------------

SELECT throws_ok($$SELECT mlma.create_stream(' h/lead')$$, '22023',
	'stream name must not begin or end with whitespace', 'a stream name with a leading space is refused');
SELECT throws_ok($$SELECT mlma.create_stream('h/trail' || chr(9))$$, '22023',
	'stream name must not begin or end with whitespace', 'a stream name with a trailing tab is refused');
SELECT throws_ok($$SELECT * FROM mlma.claim_retrain('w', '1000000 years')$$, '22023',
	'lease must be at most 1 year', 'claim_retrain: an endless lease');
SELECT throws_ok($$SELECT * FROM mlma.replay(NULL)$$, '22004',
	'stream must not be null', 'replay(NULL)');
SELECT throws_ok($$SELECT mlma.attach(0, 'a', 'b', 'c')$$, '42P01',
	'table with OID 0 does not exist', 'attach(0, ...)');
SELECT throws_ok($$SELECT mlma.attach('public.h_preds', 'zone', 'actual', 'predicted', on_invalid => 'ignore')$$,
	'22023', 'on_invalid must be error or skip', 'attach: unknown on_invalid');

SELECT * FROM finish();
ROLLBACK;
