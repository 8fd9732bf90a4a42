-- run_checks() at fleet scale, with the default max_locks_per_transaction.
--
-- 20 000 scheduled streams with one test batch each (4 losses against a
-- 4-loss reference), 300 of them ten times worse, and one stream fed
-- subnormal losses that give the test no p-value.  One round must record
-- every check, flag exactly the 300, record the degenerate stream's check
-- with p = 1 and a note, and hold stream locks only for the 300 streams whose
-- state changed.  Then 500 drifting streams with a lock budget of 100 per
-- round: each round flags 100 and leaves the rest queued, until all are
-- flagged.
--
-- Observations are loaded 1 000 streams per transaction (each writer holds
-- its streams' writer locks to the end of its transaction), so the file runs
-- without an enclosing transaction and drops its streams at the end.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
SELECT plan(17);

SELECT is(current_setting('max_locks_per_transaction'), '64',
		  'the cluster runs with the default max_locks_per_transaction');

SELECT format('SELECT count(mlma.create_stream(''scale/'' || i, batch_size => 4, check_mode => ''scheduled'')) FROM generate_series(%s, %s) i',
			  k * 1000 + 1, k * 1000 + 1000)
  FROM generate_series(0, 19) k \gexec
SELECT count(mlma.create_stream('scale/degenerate', batch_size => 4, check_mode => 'scheduled'));

SELECT format('SELECT count(mlma.observe_loss(''scale/'' || i, CASE WHEN i <= 300 AND j > 4 THEN 10 ELSE 1 END + (j %% 4) * 0.1)) FROM generate_series(1, 8) j, generate_series(%s, %s) i',
			  k * 1000 + 1, k * 1000 + 1000)
  FROM generate_series(0, 19) k \gexec
SELECT count(mlma.observe_loss('scale/degenerate',
		CASE WHEN j % 2 = 0 THEN 5e-324 ELSE 1e-323 END))
  FROM generate_series(1, 8) j;

SELECT is((SELECT waiting_checks FROM mlma.fleet_status), 20001::bigint,
		  '20 001 batches wait in the queue');

-- one round, in a transaction of its own so its locks can be counted
BEGIN;
CREATE TEMP TABLE round1 AS
SELECT c.*, s.name FROM mlma.run_checks(fdr => 0.05) c JOIN mlma.streams s USING (stream_id);
SELECT is((SELECT count(*) FROM pg_locks
			WHERE locktype = 'object' AND pid = pg_backend_pid()
			  AND classid = 'mlma.streams'::regclass),
		  0::bigint,
		  'the round takes no heavyweight stream lock: writer locks are row locks, outside the shared lock table');
COMMIT;

SELECT is((SELECT count(*) FROM round1), 20001::bigint,
		  'one round records a check for every waiting batch');
SELECT is((SELECT count(*) FROM round1 WHERE status = 'done'), 20001::bigint,
		  'every check is done');
SELECT is((SELECT count(*) FILTER (WHERE drift) FROM round1), 300::bigint,
		  'exactly 300 streams drift');
SELECT is((SELECT count(*) FROM round1
			WHERE drift AND substr(name, 7) ~ '^\d+$' AND substr(name, 7)::int <= 300),
		  300::bigint, 'the drifting streams are the 300 worse ones');
SELECT is((SELECT count(*) FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			WHERE s.name LIKE 'scale/%' AND r.reason = 'drift'),
		  300::bigint, 'one retrain request per drifting stream');
SELECT results_eq(
	$$SELECT p_value BETWEEN 0 AND 1, p_adjusted BETWEEN 0 AND 1, significant, drift
		FROM round1 WHERE name = 'scale/degenerate'$$,
	$$VALUES (true, true, false, false)$$,
	'the stream of subnormal losses gets a defined p-value and is not flagged');
SELECT is((SELECT count(*) FROM round1 WHERE note IS NULL AND p_value BETWEEN 0 AND 1),
		  20001::bigint, 'every check has its own p-value');
SELECT results_eq(
	$$SELECT checks, flags, deferred FROM mlma.rounds ORDER BY finished_at DESC LIMIT 1$$,
	$$VALUES (20001, 300, 0)$$,
	'the round is logged in mlma.rounds');
SELECT results_eq(
	$$SELECT waiting_checks, oldest_waiting_check_age IS NULL, last_round_at IS NOT NULL
		FROM mlma.fleet_status$$,
	$$VALUES (0::bigint, true, true)$$,
	'fleet_status: nothing waits, and the last round is shown');

-- a lock budget of 100 per round: 500 drifting streams need five rounds
SELECT count(mlma.create_stream('budget/' || i, batch_size => 4, check_mode => 'scheduled'))
  FROM generate_series(1, 500) i;
SELECT count(mlma.observe_loss('budget/' || i, CASE WHEN j > 4 THEN 10 ELSE 1 END + (j % 4) * 0.1))
  FROM generate_series(1, 8) j, generate_series(1, 500) i;
SET mlma.round_max_locks = 100;
CREATE TEMP TABLE budget_round AS SELECT * FROM mlma.run_checks();
SELECT is((SELECT count(*) FILTER (WHERE drift) FROM budget_round), 100::bigint,
		  'with a budget of 100 locks a round flags 100 streams');
SELECT results_eq(
	$$SELECT checks, flags, deferred FROM mlma.rounds ORDER BY finished_at DESC LIMIT 1$$,
	$$VALUES (100, 100, 400)$$,
	'the other 400 are logged as deferred');
SELECT is((SELECT waiting_checks FROM mlma.fleet_status), 400::bigint,
		  'and stay queued for the next round');
SELECT count(*) FROM mlma.run_checks();
SELECT count(*) FROM mlma.run_checks();
SELECT count(*) FROM mlma.run_checks();
SELECT count(*) FROM mlma.run_checks();
SELECT is((SELECT count(*) FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
			WHERE s.name LIKE 'budget/%'),
		  500::bigint, 'four more rounds flag the rest: every drifting stream has its request');
SELECT is((SELECT count(*) FROM mlma.check_queue), 0::bigint, 'the queue is empty');
RESET mlma.round_max_locks;

SELECT * FROM finish();

-- clean up, 1 000 streams per transaction
SELECT format('SELECT count(mlma.drop_stream(name)) FROM mlma.streams WHERE name LIKE %L AND stream_id %% 20 = %s',
			  p, k)
  FROM unnest(ARRAY['scale/%', 'budget/%']) p, generate_series(0, 19) k \gexec
DELETE FROM mlma.rounds;
