--
-- monitor_rollback: everything is transactional with the user's
-- transaction.  A rollback leaves no observation, batch, check, request or
-- notification (this session LISTENs: a notification would show up here).
--
SET timezone = 'UTC';
LISTEN mlma_retrain;

SELECT mlma.create_stream('rb/zone', batch_size => 4) > 0 AS created;
CREATE TEMP VIEW counts AS
SELECT (SELECT count(*) FROM mlma.observations o WHERE o.stream_id = s.stream_id) AS open_obs,
	   (SELECT count(*) FROM mlma.batches b WHERE b.stream_id = s.stream_id) AS batches,
	   (SELECT count(*) FROM mlma.checks c WHERE c.stream_id = s.stream_id) AS checks,
	   (SELECT count(*) FROM mlma.retrain_requests r WHERE r.stream_id = s.stream_id) AS requests,
	   (SELECT count(*) FROM mlma.reference_batches r WHERE r.stream_id = s.stream_id) AS refs,
	   st.open_start_seq, st.batch_no, st.streak
  FROM mlma.streams s JOIN mlma.stream_state st USING (stream_id)
 WHERE s.name = 'rb/zone';

-- the reference: 4 small losses
SELECT count(mlma.observe_loss('rb/zone', 1 + g / 10.0, '2024-01-01'::timestamptz + g * interval '1 hour'))
  FROM generate_series(0, 3) g;
SELECT * FROM counts;

-- a drifting batch, rolled back: no trace, no notification
BEGIN;
SELECT count(mlma.observe_loss('rb/zone', 10 + g / 10.0, '2024-01-01'::timestamptz + g * interval '1 hour'))
  FROM generate_series(4, 7) g;
SELECT * FROM counts;
SELECT state FROM mlma.stream_status WHERE name = 'rb/zone';
ROLLBACK;
SELECT * FROM counts;
SELECT state FROM mlma.stream_status WHERE name = 'rb/zone';

-- the same inside a savepoint; the rest of the transaction commits
BEGIN;
SELECT mlma.observe_loss('rb/zone', 1.05, '2024-01-01 04:00+00');
SAVEPOINT s1;
SELECT count(mlma.observe_loss('rb/zone', 10, '2024-01-01 05:00+00')) FROM generate_series(1, 3);
ROLLBACK TO SAVEPOINT s1;
SELECT mlma.observe_loss('rb/zone', 1.15, '2024-01-01 05:00+00');
COMMIT;
SELECT * FROM counts;
SELECT o.seq, o.loss FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'rb/zone' ORDER BY o.seq;

-- a statement that fails half-way records nothing
SELECT mlma.observe_loss('rb/zone', x, '2024-01-01 06:00+00')
  FROM unnest(ARRAY[1.2, 1.3, -1]) x;
SELECT * FROM counts;

-- a configuration change that is rolled back does not linger in the
-- session's stream cache: the loss is absolute again afterwards
BEGIN;
SELECT mlma.configure('rb/zone', loss => 'squared');
SELECT mlma.observe('rb/zone', 10, 13, '2024-01-01 06:00+00');
SELECT round(o.loss::numeric, 6) AS loss FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'rb/zone' ORDER BY o.seq DESC LIMIT 1;
ROLLBACK;
SELECT mlma.observe('rb/zone', 10, 11.2, '2024-01-01 06:00+00');
SELECT round(o.loss::numeric, 6) AS loss FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'rb/zone' ORDER BY o.seq DESC LIMIT 1;

-- a stream created in a rolled-back transaction does not exist afterwards
BEGIN;
SELECT mlma.create_stream('rb/ghost', batch_size => 2) > 0 AS created;
SELECT mlma.observe_loss('rb/ghost', 1);
ROLLBACK;
SELECT mlma.observe_loss('rb/ghost', 1);
SELECT count(*) FROM mlma.streams WHERE name = 'rb/ghost';

-- a manual request rolled back: no request, no notification
BEGIN;
SELECT mlma.request_retrain('rb/zone', 'not really') IS NOT NULL AS requested;
ROLLBACK;
SELECT * FROM counts;

-- a completed retrain rolled back: the old version and its reference stay
SELECT mlma.observe('rb/zone', 10, 11.1, '2024-01-01 07:00+00');
UNLISTEN mlma_retrain;
SELECT mlma.request_retrain('rb/zone', 'for real') IS NOT NULL AS requested;
BEGIN;
SELECT mlma.complete_retrain(r.request_id, 'v2')
  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'rb/zone';
SELECT name, state, model_version, reference_source FROM mlma.stream_status
 WHERE name = 'rb/zone';
ROLLBACK;
SELECT name, state, model_version, reference_source FROM mlma.stream_status
 WHERE name = 'rb/zone';
SELECT * FROM counts;
SELECT r.status FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'rb/zone';
SELECT mlma.drop_stream('rb/zone');
