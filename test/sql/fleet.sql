--
-- Operating a fleet: scheduled checks with false discovery rate control,
-- key metrics, history, what-if replay and retention.
--
-- Two scheduled streams: 'steady' keeps its loss level, 'broken' gets five
-- times worse after its 20th observation.
SELECT mlma.create_stream('fleet/steady', batch_size => 10, check_mode => 'scheduled',
                          labels => '{"city": "london"}');
SELECT mlma.create_stream('fleet/broken', batch_size => 10, check_mode => 'scheduled',
                          labels => '{"city": "paris"}');
SELECT setseed(0.1);
SELECT count(mlma.observe_loss(s, l))
  FROM (SELECT s, CASE WHEN s = 'fleet/broken' AND i > 20 THEN 5 ELSE 1 END + random() AS l
          FROM generate_series(1, 40) i,
               unnest(ARRAY['fleet/steady', 'fleet/broken']) s
         ORDER BY i, s) x;

-- The first batch of each stream warmed its reference; the three others wait.
SELECT s.name, q.batch_no, 'waiting' AS status
  FROM mlma.check_queue q JOIN mlma.streams s USING (stream_id)
 ORDER BY s.name, q.batch_no;

-- One round tests all six batches together; p_adjusted is the
-- Benjamini-Hochberg adjusted p-value across the round.
SELECT s.name, c.batch_no, c.status, round(c.p_value::numeric, 6) AS p_value,
       round(c.p_adjusted::numeric, 6) AS p_adjusted,
       round(c.effect::numeric, 3) AS effect, c.significant, c.drift
  FROM mlma.run_checks(fdr => 0.05) c JOIN mlma.streams s USING (stream_id)
 ORDER BY s.name, c.batch_no;

-- Nothing waits any more: a second round has nothing to do.
SELECT count(*) FROM mlma.run_checks();

-- One request for the broken stream (not two: at most one open per stream).
SELECT s.name, r.reason, r.status, r.check_id IS NOT NULL AS from_check
  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id);

-- Key metrics: the fleet on one row, and labels to filter streams.
SELECT streams, warming, monitoring, drift, retraining, paused, checks_24h,
       drift_checks_24h, waiting_checks, flags_24h, open_requests
  FROM mlma.fleet_status;
SELECT name, state FROM mlma.stream_status WHERE labels @> '{"city": "paris"}';

-- History of one stream.
SELECT batch_no, status, drift FROM mlma.check_history('fleet/broken') ORDER BY batch_no;
SELECT reason, status FROM mlma.request_history('fleet/broken');

-- What-if: the logged losses replayed under other settings, without
-- touching live state.  With batches of 5 the break is seen in the same
-- place; after a flag the replay assumes a retrain and warms a new reference.
SELECT model_version, batch_no, n, round(p_value::numeric, 6) AS p_value,
       significant, drift, flag
  FROM mlma.replay('fleet/broken');
SELECT batch_no, n, significant, flag
  FROM mlma.replay('fleet/broken', method => 'mann_whitney', batch_size => 5);
SELECT count(*) FILTER (WHERE flag) AS flags
  FROM mlma.replay('fleet/steady', alpha => 0.5, min_effect => 0);
-- replay changed nothing
SELECT count(*) AS checks, count(*) FILTER (WHERE status = 'waiting') AS waiting
  FROM mlma.checks;

-- Bad input: clear errors.
\set VERBOSITY terse
SELECT * FROM mlma.run_checks(fdr => 1.5);
SELECT * FROM mlma.run_checks(fdr => 0);
SELECT * FROM mlma.replay('no/such/stream');
SELECT * FROM mlma.replay('fleet/broken', method => 'bogus');
SELECT * FROM mlma.replay('fleet/broken', batch_size => 1);
SELECT * FROM mlma.purge(interval '-1 day');
SELECT mlma.schedule_checks('* * * * *');
SELECT mlma.schedule_checks('');
\set VERBOSITY default

-- Retention: purge keeps open requests (and the batch and check each was
-- raised for), waiting checks and live references.
SELECT * FROM mlma.purge(interval '1 day');
SELECT * FROM mlma.purge(interval '0');
SELECT count(*) AS open_requests FROM mlma.retrain_requests
 WHERE status IN ('pending', 'claimed');
SELECT count(*) AS references FROM mlma.reference_batches;

-- A scheduled stream with the rolling policy: after each passing batch the
-- reference becomes the most recent reference_size losses that passed.
SELECT mlma.create_stream('fleet/rolling', batch_size => 4, check_mode => 'scheduled',
                          reference_policy => 'rolling');
SELECT count(mlma.observe_loss('fleet/rolling', 10 + (i % 4))) FROM generate_series(1, 12) i;
SELECT losses, seqs, source FROM mlma.reference_batches
 WHERE stream_id = (SELECT stream_id FROM mlma.streams WHERE name = 'fleet/rolling');
SELECT batch_no, significant FROM mlma.run_checks() ORDER BY batch_no;
SELECT losses, seqs, source FROM mlma.reference_batches
 WHERE stream_id = (SELECT stream_id FROM mlma.streams WHERE name = 'fleet/rolling');
-- replay under the same rolling policy agrees: two passing batches, no flag
SELECT batch_no, significant, flag FROM mlma.replay('fleet/rolling');
SELECT mlma.drop_stream('fleet/rolling');

SELECT mlma.drop_stream('fleet/steady');
SELECT mlma.drop_stream('fleet/broken');
