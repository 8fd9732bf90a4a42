-- approval.sql
--	  The approval gate of retrain requests: streams with approval 'manual'
--	  get 'proposed' drift and age requests that agents cannot claim,
--	  complete or fail until approve() (or approve_after) makes them
--	  pending; the errors of approve(); the notification payload's status;
--	  the open-request rules with proposed requests; the option itself.
--
-- Runs with pg_prove in a database where pgtap and mlma are installed
-- (test/pgtap/run.sh); everything is rolled back.

\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only true

BEGIN;
SELECT plan(48);

-- a stream whose second batch drifts (one drift request)
CREATE FUNCTION pg_temp.drift(p_name text) RETURNS bigint LANGUAGE sql AS $$
	SELECT count(mlma.observe_loss(p_name, l))
	  FROM unnest('{1, 1.1, 0.9, 1.05, 10, 10.2, 9.8, 10.1}'::float8[]) l;
	SELECT max(r.request_id) FROM mlma.retrain_requests r
	  JOIN mlma.streams s USING (stream_id) WHERE s.name = p_name;
$$;
CREATE FUNCTION pg_temp.req(p_name text) RETURNS bigint LANGUAGE sql AS $$
	SELECT max(r.request_id) FROM mlma.retrain_requests r
	  JOIN mlma.streams s USING (stream_id) WHERE s.name = p_name;
$$;
CREATE FUNCTION pg_temp.status(p_id bigint) RETURNS text LANGUAGE sql AS $$
	SELECT status FROM mlma.retrain_requests WHERE request_id = p_id
$$;

-- ---- the option ------------------------------------------------------------
SELECT is(mlma.create_stream('ap/auto', batch_size => 4, min_effect => 0) > 0, true,
		  'create_stream without approval');
SELECT is((SELECT approval || coalesce(approve_after::text, '-') FROM mlma.streams
			WHERE name = 'ap/auto'), 'auto-', 'approval defaults to auto, approve_after to NULL');
SELECT throws_ok($$SELECT mlma.create_stream('ap/x', approval => 'sometimes')$$,
				 '22023', 'unknown approval: sometimes', 'unknown approval value');
SELECT throws_ok($$SELECT mlma.create_stream('ap/x', approval => NULL)$$,
				 '22023', 'unknown approval: NULL', 'NULL approval');
SELECT throws_ok($$SELECT mlma.create_stream('ap/x', approve_after => interval '-1 second')$$,
				 '22023', 'approve_after must be positive', 'negative approve_after');
SELECT lives_ok($$SELECT mlma.create_stream('ap/m', batch_size => 4, min_effect => 0,
											 approval => 'manual')$$,
				'create_stream with approval manual');
SELECT lives_ok($$SELECT mlma.configure('ap/m', approve_after => interval '1 hour')$$,
				'configure sets approve_after');
SELECT is((SELECT approval || ' ' || approve_after FROM mlma.streams WHERE name = 'ap/m'),
		  'manual 01:00:00', 'configure with NULL approval keeps it');
SELECT lives_ok($$SELECT mlma.configure('ap/m', approve_after => interval '0')$$,
				'configure approve_after => 0 turns automatic approval off');
SELECT is((SELECT approve_after FROM mlma.streams WHERE name = 'ap/m'), NULL::interval,
		  'approve_after is NULL again');
SELECT throws_ok($$SELECT mlma.configure('ap/m', approval => 'never')$$,
				 '22023', 'unknown approval: never', 'configure validates approval');

-- attach defaults
CREATE TABLE ap_forecasts (zone text, actual float8, predicted float8);
SELECT throws_ok($$SELECT mlma.attach('ap_forecasts', 'zone', 'actual', 'predicted',
									   defaults => '{"approval": "maybe"}')$$,
				 '22023', NULL, 'attach validates approval in defaults');
SELECT lives_ok($$SELECT mlma.attach('ap_forecasts', 'zone', 'actual', 'predicted',
									  defaults => '{"approval": "manual", "approve_after": "2 hours"}')$$,
				'attach accepts approval and approve_after in defaults');
INSERT INTO ap_forecasts VALUES ('ap/attached', 1, 2);
SELECT is((SELECT approval || ' ' || approve_after FROM mlma.streams WHERE name = 'ap/attached'),
		  'manual 02:00:00', 'a stream created by the attached table gets them');

-- ---- a proposed request ----------------------------------------------------
SELECT is(pg_temp.status(pg_temp.drift('ap/auto')), 'pending',
		  'approval auto: the drift request is pending');
SELECT is(pg_temp.status(pg_temp.drift('ap/m')), 'proposed',
		  'approval manual: the drift request is proposed');
SELECT is(mlma._notify_payload(pg_temp.req('ap/m'))::jsonb->>'status', 'proposed',
		  'the notification payload says proposed');
SELECT is((mlma._notify_payload(pg_temp.req('ap/auto'))::jsonb - 'status')
			?& ARRAY['v', 'request_id', 'stream_id', 'stream', 'model_version',
					 'reason', 'p_value', 'effect'], true,
		  'the payload keeps every key of version 1');
SELECT is((mlma._notify_payload(pg_temp.req('ap/m'))::jsonb->>'v'), '1', 'payload version 1');
SELECT is((SELECT state || ' ' || open_request_status FROM mlma.stream_status WHERE name = 'ap/m'),
		  'drift proposed', 'stream_status: drift, open request proposed');
SELECT is((SELECT proposed_requests || ' ' || pending_requests || ' ' || open_requests
			 FROM mlma.fleet_status), '1 1 2', 'fleet_status counts the proposed request as open');

-- agents cannot take it
SELECT lives_ok($$SELECT mlma.dismiss(pg_temp.req('ap/auto'), 'out of the way')$$,
				'the auto stream''s request is dismissed');
SELECT is((SELECT count(*) FROM mlma.claim_retrain('w1')), 0::bigint,
		  'claim_retrain does not claim a proposed request');
SELECT throws_ok(format('SELECT mlma.complete_retrain(%s, %L)', pg_temp.req('ap/m'), 'v2'),
				 '55000', format('cannot complete retrain request %s: it is proposed and not yet approved',
								 pg_temp.req('ap/m')),
				 'complete_retrain refuses a proposed request');
SELECT throws_ok(format('SELECT mlma.fail_retrain(%s, %L)', pg_temp.req('ap/m'), 'no'),
				 '55000', NULL, 'fail_retrain refuses a proposed request');

-- at most one open request: a proposed one counts
SELECT is((SELECT count(*) FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'ap/m'), 1::bigint, 'one open request per stream, proposed included');
SELECT is((SELECT requests FROM mlma.purge(interval '0')), 0::bigint,
		  'purge keeps proposed requests');

-- ---- approve() errors --------------------------------------------------------
SELECT throws_ok($$SELECT mlma.approve(NULL)$$, '22004', 'request_id must not be null',
				 'approve(NULL)');
SELECT throws_ok($$SELECT mlma.approve(987654321)$$, '42704',
				 'retrain request 987654321 does not exist', 'approve of an unknown id');
SELECT lives_ok(format('SELECT mlma.approve(%s, %L)', pg_temp.req('ap/m'), 'looked real'),
				'approve a proposed request');
SELECT is((SELECT status || ' ' || note || ' ' || (approved_by = session_user)::text
				  || ' ' || (approved_at IS NOT NULL)::text
			 FROM mlma.retrain_requests WHERE request_id = pg_temp.req('ap/m')),
		  'pending looked real true true', 'approved: pending, with note, approver and time');
SELECT is(mlma._notify_payload(pg_temp.req('ap/m'))::jsonb->>'status', 'pending',
		  'the payload now says pending');
SELECT throws_ok(format('SELECT mlma.approve(%s)', pg_temp.req('ap/m')), '55000',
				 format('cannot approve retrain request %s: it is pending', pg_temp.req('ap/m')),
				 'approve of a pending request');
SELECT is((SELECT stream FROM mlma.claim_retrain('w1')), 'ap/m', 'an approved request is claimed');
SELECT lives_ok(format('SELECT mlma.complete_retrain(%s, %L)', pg_temp.req('ap/m'), 'v2'),
				'and completed');
SELECT throws_ok(format('SELECT mlma.approve(%s)', pg_temp.req('ap/m')), '55000',
				 NULL, 'approve of a completed request');

-- ---- dismiss, manual requests, approve_after --------------------------------
SELECT mlma.create_stream('ap/d', batch_size => 4, min_effect => 0, approval => 'manual');
SELECT lives_ok(format('SELECT mlma.dismiss(%s, %L)', pg_temp.drift('ap/d'), 'festival'),
				'dismiss accepts a proposed request');
SELECT is(pg_temp.status(pg_temp.req('ap/d')), 'dismissed', 'it is dismissed');

SELECT mlma.create_stream('ap/r', approval => 'manual');
SELECT is(pg_temp.status(mlma.request_retrain('ap/r', 'by hand')), 'pending',
		  'a manual request is pending even with approval manual');

SELECT mlma.create_stream('ap/p', batch_size => 4, min_effect => 0, approval => 'manual');
SELECT is(pg_temp.status(pg_temp.drift('ap/p')), 'proposed', 'another proposed request');
SELECT is(mlma.request_retrain('ap/p', 'do it'), pg_temp.req('ap/p'),
		  'request_retrain on a stream with a proposed request returns it');
SELECT is(pg_temp.status(pg_temp.req('ap/p')), 'pending', '... approved');

SELECT mlma.create_stream('ap/t', batch_size => 4, min_effect => 0, approval => 'manual',
						  approve_after => interval '10 minutes');
SELECT is(pg_temp.status(pg_temp.drift('ap/t')), 'proposed', 'approve_after: proposed at first');
UPDATE mlma.retrain_requests SET requested_at = now() - interval '11 minutes'
 WHERE request_id = pg_temp.req('ap/t');
SELECT is(mlma._approve_due(), 1, '_approve_due promotes the request past approve_after');
SELECT is((SELECT status || ' ' || approved_by FROM mlma.retrain_requests
			WHERE request_id = pg_temp.req('ap/t')),
		  'pending approve_after', 'pending, approved by approve_after');

SELECT mlma.create_stream('ap/off', batch_size => 4, min_effect => 0, approval => 'manual');
SELECT is(pg_temp.status(pg_temp.drift('ap/off')), 'proposed', 'a proposed request ...');
SELECT lives_ok($$SELECT mlma.configure('ap/off', approval => 'auto')$$,
				'configure turns the approval gate off');
SELECT is(pg_temp.status(pg_temp.req('ap/off')), 'pending', '... is approved with it');

SELECT * FROM finish();
ROLLBACK;
