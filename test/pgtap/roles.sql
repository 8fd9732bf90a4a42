-- The role matrix: each mlma role can do exactly its part and is refused
-- the rest; nothing is granted to PUBLIC.
BEGIN;
SELECT plan(40);

-- pgTAP keeps its state in temporary tables of the session owner: let the
-- roles this test switches to use them.
GRANT ALL ON ALL TABLES IN SCHEMA pg_temp TO PUBLIC;
GRANT ALL ON ALL SEQUENCES IN SCHEMA pg_temp TO PUBLIC;

CREATE ROLE mlma_test_reader IN ROLE mlma_reader;
CREATE ROLE mlma_test_writer IN ROLE mlma_writer;
CREATE ROLE mlma_test_agent IN ROLE mlma_agent;
CREATE ROLE mlma_test_admin IN ROLE mlma_admin;
CREATE ROLE mlma_test_nobody;

SELECT mlma.create_stream('roles/s', batch_size => 4);
CREATE TABLE roles_forecasts (zone text, actual float8, predicted float8);
SELECT mlma.attach('roles_forecasts', 'zone', 'actual', 'predicted');
GRANT INSERT ON roles_forecasts TO mlma_test_writer;
SELECT mlma.request_retrain('roles/s', 'for the agent');

-- PUBLIC gets nothing
SELECT is((SELECT count(*) FROM pg_proc p
			WHERE p.pronamespace = 'mlma'::regnamespace
			  AND has_function_privilege('mlma_test_nobody', p.oid, 'EXECUTE')),
		  0::bigint, 'a role without an mlma role can execute no mlma function');
SELECT is((SELECT count(*) FROM pg_class c
			WHERE c.relnamespace = 'mlma'::regnamespace AND c.relkind IN ('r', 'v')
			  AND has_table_privilege('mlma_test_nobody', c.oid, 'SELECT')),
		  0::bigint, 'a role without an mlma role can read no mlma table or view');
SELECT ok(NOT has_schema_privilege('mlma_test_nobody', 'mlma', 'USAGE'),
		  'PUBLIC has no USAGE on schema mlma');

-- SECURITY DEFINER functions pin their search_path
SELECT is((SELECT count(*) FROM pg_proc p
			WHERE p.pronamespace = 'mlma'::regnamespace AND p.prosecdef
			  AND NOT coalesce(p.proconfig::text LIKE '%search_path=pg_catalog%', false)),
		  0::bigint, 'every SECURITY DEFINER function pins search_path');

-- reader
SET ROLE mlma_test_reader;
SELECT lives_ok($$SELECT * FROM mlma.stream_status$$, 'reader reads stream_status');
SELECT lives_ok($$SELECT * FROM mlma.fleet_status$$, 'reader reads fleet_status');
SELECT lives_ok($$SELECT * FROM mlma.checks$$, 'reader reads checks');
SELECT lives_ok($$SELECT * FROM mlma.check_history('roles/s')$$, 'reader reads history');
SELECT lives_ok($$SELECT * FROM mlma.replay('roles/s')$$, 'reader replays');
SELECT lives_ok($$SELECT * FROM mlma.welch_test('{1,2,3}', '{2,3,4}')$$, 'reader runs statistics');
SELECT throws_ok($$SELECT mlma.observe_loss('roles/s', 1)$$, '42501', NULL, 'reader cannot observe');
SELECT throws_ok($$SELECT mlma.observe_many('{roles/s}', '{3}', '{2}')$$, '42501', NULL, 'reader cannot observe many');
SELECT throws_ok($$SELECT mlma.configure('roles/s', alpha => 0.01)$$, '42501', NULL, 'reader cannot configure');
SELECT throws_ok($$SELECT * FROM mlma.claim_retrain('w')$$, '42501', NULL, 'reader cannot claim');
SELECT throws_ok($$DELETE FROM mlma.checks$$, '42501', NULL, 'reader cannot delete history');
RESET ROLE;

-- writer
SET ROLE mlma_test_writer;
SELECT lives_ok($$SELECT mlma.observe_loss('roles/s', 1)$$, 'writer observes a loss');
SELECT lives_ok($$SELECT mlma.observe('roles/s', 3, 2)$$, 'writer observes actual and predicted');
SELECT lives_ok($$SELECT mlma.observe_many('{roles/s,roles/s}', '{3,4}', '{2,2}')$$, 'writer observes many');
SELECT throws_ok($$SELECT mlma.dismiss(1, 'no')$$, '42501', NULL, 'writer cannot dismiss');
SELECT throws_ok($$SELECT mlma.configure('roles/s', alpha => 0.01)$$, '42501', NULL, 'writer cannot configure');
SELECT throws_ok($$SELECT mlma.create_stream('roles/other')$$, '42501', NULL, 'writer cannot create streams');
SELECT throws_ok($$SELECT * FROM mlma.claim_retrain('w')$$, '42501', NULL, 'writer cannot claim');
SELECT throws_ok($$UPDATE mlma.streams SET alpha = 0.5$$, '42501', NULL, 'writer cannot edit configuration tables');
SELECT throws_ok($$SELECT * FROM mlma.checks$$, '42501', NULL, 'writer cannot read history');
SELECT lives_ok($$INSERT INTO roles_forecasts VALUES ('roles/s', 1, 2), ('roles/new', 5, 4)$$,
				'writer inserts into an attached table');
RESET ROLE;
SELECT is((SELECT observations FROM mlma.stream_status WHERE name = 'roles/s'), 5::bigint,
		  'the writer''s observations are recorded');
SELECT is((SELECT observations FROM mlma.stream_status WHERE name = 'roles/new'), 1::bigint,
		  'the attached table''s trigger created the new stream for the writer');

-- agent
SET ROLE mlma_test_agent;
SELECT is((SELECT stream FROM mlma.claim_retrain('agent-1')), 'roles/s', 'agent claims the request');
SELECT lives_ok($$SELECT mlma.complete_retrain((SELECT max(request_id) FROM mlma.retrain_requests), 'v2')$$,
				'agent completes the request');
SELECT throws_ok($$SELECT mlma.request_retrain('roles/s')$$, '42501', NULL, 'agent cannot raise requests');
SELECT throws_ok($$SELECT mlma.observe_loss('roles/s', 1)$$, '42501', NULL, 'agent cannot observe');
SELECT throws_ok($$SELECT mlma.pause('roles/s')$$, '42501', NULL, 'agent cannot pause');
SELECT throws_ok($$SELECT mlma.approve(1)$$, '42501', NULL, 'agent cannot approve');
RESET ROLE;

-- admin
SET ROLE mlma_test_admin;
SELECT lives_ok($$SELECT mlma.configure('roles/s', alpha => 0.01)$$, 'admin configures');
SELECT lives_ok($$SELECT mlma.pause('roles/s')$$, 'admin pauses');
SELECT lives_ok($$SELECT mlma.resume('roles/s')$$, 'admin resumes');
SELECT lives_ok($$SELECT mlma.request_retrain('roles/s', 'by hand')$$, 'admin raises a request');
SELECT lives_ok($$SELECT mlma.dismiss((SELECT max(request_id) FROM mlma.retrain_requests), 'not needed')$$,
				'admin dismisses');
SELECT lives_ok($$SELECT mlma.create_stream('roles/gated', batch_size => 4, min_effect => 0,
											 approval => 'manual');
				  SELECT mlma.observe_loss('roles/gated', l)
					FROM unnest('{1, 1.1, 0.9, 1.05, 10, 10.2, 9.8, 10.1}'::float8[]) l$$,
				'admin creates a stream whose drift requests need approval');
SELECT lives_ok($$SELECT mlma.approve((SELECT max(request_id) FROM mlma.retrain_requests
										WHERE status = 'proposed'), 'go')$$,
				'admin approves');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
