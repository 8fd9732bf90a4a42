-- Why a batch was or was not flagged: explain() agrees with the recorded
-- checks (eager: p vs alpha; scheduled: p_adjusted vs the round's fdr),
-- evaluate_batch re-tests against the reference live at close, replay
-- numbers batches as live, and replay_fleet of a scheduled fleet reproduces
-- the live rounds' flags.  The rounds are separate transactions (a round
-- is one run_checks transaction), so this file does not run in one
-- transaction; it drops its streams at the end.
SELECT plan(21);

-- an eager stream, worse after observation 100; a rolling one, steady
SELECT mlma.create_stream('explain/e', batch_size => 20, reference_size => 40,
						  labels => '{"suite": "explain-eager"}');
SELECT mlma.create_stream('explain/r', batch_size => 20, reference_size => 40,
						  reference_policy => 'rolling', alpha => 0.01,
						  labels => '{"suite": "explain-eager"}');
SELECT setseed(0.31);
SELECT count(mlma.observe_loss('explain/e',
		CASE WHEN j > 100 THEN 1.6 ELSE 1 END * (0.5 + random()),
		timestamptz '2024-01-01' + j * interval '1 minute'))
  FROM generate_series(1, 160) j;
SELECT count(mlma.observe_loss('explain/r', 0.5 + random(),
		timestamptz '2024-01-01' + j * interval '1 minute'))
  FROM generate_series(1, 200) j;

CREATE TEMP TABLE ex_e AS
SELECT c.* FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'explain/e';
CREATE TEMP TABLE ex_first_drift AS
SELECT min(batch_no) AS batch_no FROM ex_e WHERE drift;

SELECT ok((SELECT batch_no FROM ex_first_drift) IS NOT NULL,
		  'eager: the worse losses are flagged');
SELECT is((SELECT value FROM mlma.explain('explain/e', (SELECT batch_no FROM ex_first_drift))
			WHERE item = 'decision'), 'drift',
		  'eager: explain shows the recorded drift');
SELECT is((SELECT value FROM mlma.explain('explain/e', (SELECT batch_no FROM ex_first_drift))
			WHERE item = 'p_value'),
		  (SELECT mlma._fmt(p_value) FROM ex_e WHERE batch_no = (SELECT batch_no FROM ex_first_drift)),
		  'eager: explain shows the recorded p-value');
SELECT alike((SELECT note FROM mlma.explain('explain/e', (SELECT batch_no FROM ex_first_drift))
			  WHERE item = 'threshold'), 'p % <= alpha 0.05: met',
			'eager: the p-value met alpha');
SELECT alike((SELECT value FROM mlma.explain('explain/e', (SELECT batch_no FROM ex_first_drift))
			  WHERE item = 'request'), '#% pending',
			'eager: explain names the request the drift raised');
SELECT is((SELECT count(*) FROM ex_e e
			CROSS JOIN LATERAL mlma.explain('explain/e', e.batch_no) x
		   WHERE x.item = 'decision'
			 AND x.value = CASE WHEN e.drift THEN 'drift' WHEN e.significant THEN 'significant'
								ELSE 'not significant' END),
		  (SELECT count(*) FROM ex_e),
		  'eager: explain agrees with every recorded decision');
SELECT is((SELECT split_part(value, ' ', 1) FROM mlma.explain('explain/e') WHERE item = 'batch'),
		  (SELECT max(batch_no)::text FROM ex_e),
		  'explain without batch_no explains the last checked batch');
SELECT is((SELECT value FROM mlma.explain('explain/e', 1) WHERE item = 'decision'),
		  'not tested', 'a reference batch is explained as not tested');

-- stream_status and check_history
SELECT is((SELECT last_decision_reason FROM mlma.stream_status WHERE name = 'explain/e'),
		  (SELECT mlma._decision_reason('done', 'eager', p_value, p_adjusted, 0.05, effect,
				1.0, significant, drift,
				(SELECT streak FROM mlma.stream_state st JOIN mlma.streams s USING (stream_id)
				  WHERE s.name = 'explain/e'), 1)
			 FROM ex_e ORDER BY batch_no DESC LIMIT 1),
		  'stream_status explains the last decision');
SELECT is((SELECT count(*) FROM mlma.check_history('explain/e') h
			JOIN mlma.batches b USING (stream_id, batch_no)
		   WHERE h.batch_first_at = b.first_at AND h.batch_last_at = b.last_at),
		  (SELECT count(*) FROM ex_e),
		  'check_history gives every batch''s time range');

-- evaluate_batch against the reference live at close (rolling: it moved)
SELECT cmp_ok((SELECT count(DISTINCT reference_id) FROM mlma.checks c
				 JOIN mlma.streams s USING (stream_id) WHERE s.name = 'explain/r'),
			  '>', 3::bigint, 'rolling: each check was tested against another reference');
SELECT is((SELECT count(*) FROM mlma.checks c JOIN mlma.streams s USING (stream_id),
				 LATERAL mlma.evaluate_batch(c.stream_id, c.batch_no) e
			WHERE s.name = 'explain/r' AND e.p_value = c.p_value
			  AND e.n_reference = c.n_reference),
		  (SELECT count(*) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'explain/r'),
		  'evaluate_batch reproduces every recorded check of a rolling stream');

-- replay: the live batch numbers and p-values (up to the first flag, after
-- which the replay assumes a retrain)
SELECT is((SELECT count(*) FROM mlma.replay('explain/e') r
			JOIN ex_e c USING (batch_no)
		   WHERE r.p_value = c.p_value AND r.drift = c.drift
			 AND r.batch_no <= (SELECT batch_no FROM ex_first_drift)),
		  (SELECT count(*) FROM ex_e WHERE batch_no <= (SELECT batch_no FROM ex_first_drift)),
		  'replay numbers batches as live and reproduces the checks');
SELECT is((SELECT count(*) FROM mlma.replay('explain/r') r
			JOIN mlma.checks c ON c.batch_no = r.batch_no
			JOIN mlma.streams s ON s.stream_id = c.stream_id AND s.name = 'explain/r'
		   WHERE r.p_value = c.p_value),
		  (SELECT count(*) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'explain/r'),
		  'replay of a rolling stream reproduces every live check');

-- a scheduled fleet: 12 streams, 3 of them worse from round 3; one round
-- per transaction; a flagged stream is retrained right after its round
SELECT count(mlma.create_stream('explain/s' || i, batch_size => 20, reference_size => 40,
								check_mode => 'scheduled',
								labels => '{"suite": "explain-fleet"}'))
  FROM generate_series(1, 12) i;
SELECT setseed(0.77);
SELECT count(mlma.observe_loss('explain/s' || i, 0.5 + random()))
  FROM generate_series(1, 40) j, generate_series(1, 12) i;
CREATE TEMP TABLE ex_round (r int PRIMARY KEY);
CREATE FUNCTION pg_temp.ex_feed(p_round int) RETURNS void LANGUAGE sql AS $$
	SELECT count(mlma.observe_loss('explain/s' || i,
			CASE WHEN i <= 3 AND p_round >= 3 THEN 2.2 ELSE 1 END * (0.5 + random())))
	  FROM generate_series(1, 12) i,
		   generate_series(1, CASE WHEN i > 8 THEN 40 ELSE 20 END) j;
	INSERT INTO ex_round VALUES (p_round);
$$;
CREATE FUNCTION pg_temp.ex_retrain() RETURNS void LANGUAGE sql AS $$
	SELECT count(mlma.complete_retrain(q.request_id, q.model_version || 'r'))
	  FROM mlma.retrain_requests q JOIN mlma.streams s USING (stream_id)
	 WHERE s.name LIKE 'explain/s%' AND q.status = 'pending';
$$;
SELECT pg_temp.ex_feed(1);
SELECT count(*) FROM mlma.run_checks(fdr => 0.1);
SELECT pg_temp.ex_retrain();
SELECT pg_temp.ex_feed(2);
SELECT count(*) FROM mlma.run_checks(fdr => 0.1);
SELECT pg_temp.ex_retrain();
SELECT pg_temp.ex_feed(3);
SELECT count(*) FROM mlma.run_checks(fdr => 0.1);
SELECT pg_temp.ex_retrain();
SELECT pg_temp.ex_feed(4);
SELECT count(*) FROM mlma.run_checks(fdr => 0.1);
SELECT pg_temp.ex_retrain();
SELECT pg_temp.ex_feed(5);
SELECT pg_temp.ex_feed(6);
SELECT count(*) FROM mlma.run_checks(fdr => 0.1);
SELECT pg_temp.ex_retrain();

CREATE TEMP TABLE ex_s AS
SELECT s.name, c.* FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
 WHERE s.name LIKE 'explain/s%';
CREATE TEMP TABLE ex_live_flags AS
SELECT s.name, array_agg(c.batch_no ORDER BY c.batch_no) AS flags
  FROM mlma.retrain_requests q
  JOIN mlma.checks c ON c.check_id = q.check_id
  JOIN mlma.streams s ON s.stream_id = q.stream_id
 WHERE s.name LIKE 'explain/s%' AND q.reason = 'drift'
 GROUP BY s.name;

SELECT cmp_ok((SELECT count(*) FROM ex_live_flags), '>=', 2::bigint,
			  'scheduled: live rounds flagged the worse streams');
SELECT is((SELECT count(DISTINCT checked_at) FROM ex_s WHERE status = 'done'), 5::bigint,
		  'scheduled: five recorded rounds');
SELECT is((SELECT count(*) FROM ex_s c
			CROSS JOIN LATERAL mlma.explain(c.name, c.batch_no) x
		   WHERE c.status = 'done' AND x.item = 'p_adjusted'
			 AND x.value = mlma._fmt(c.p_adjusted)),
		  (SELECT count(*) FROM ex_s WHERE status = 'done'),
		  'scheduled: explain shows the recorded adjusted p-values');
SELECT is((SELECT count(*) FROM ex_s c
			CROSS JOIN LATERAL mlma.explain(c.name, c.batch_no) x
		   WHERE c.status = 'done' AND x.item = 'threshold' AND x.value = 'fdr 0.1'
			 AND x.note LIKE CASE WHEN c.p_adjusted <= 0.1 THEN '% met' ELSE '% missed' END),
		  (SELECT count(*) FROM ex_s WHERE status = 'done'),
		  'scheduled: explain compares p_adjusted with the round''s fdr');
SELECT is((SELECT count(*) FROM mlma.stream_status st
			JOIN (SELECT DISTINCT ON (name) name, p_adjusted FROM ex_s
				   WHERE status = 'done' ORDER BY name, batch_no DESC) c USING (name)
		   WHERE st.last_p_adjusted = c.p_adjusted
			 AND st.last_decision_reason IS NOT NULL),
		  12::bigint, 'stream_status shows the last adjusted p-value and a reason');

-- fleet replay reproduces the live flags, with live batch numbers
CREATE TEMP TABLE ex_replay AS
SELECT * FROM mlma.replay_fleet('{"suite": "explain-fleet"}');
SELECT is((SELECT string_agg(format('%s:%s', stream, flag_batches), ' ' ORDER BY stream)
			 FROM ex_replay WHERE stream IS NOT NULL AND flags > 0),
		  (SELECT string_agg(format('%s:%s', name, flags), ' ' ORDER BY name)
			 FROM ex_live_flags),
		  'replay_fleet reproduces the live rounds'' flags and batch numbers');
SELECT is((SELECT sum(checks) FROM ex_replay
			WHERE stream IS NOT NULL AND stream NOT IN (SELECT name FROM ex_live_flags)),
		  (SELECT count(*)::numeric FROM ex_s
			WHERE status = 'done' AND name NOT IN (SELECT name FROM ex_live_flags)),
		  'replay_fleet decides the batches of the unflagged streams as the live rounds did');
SELECT diag(format('fleet replay: %s flags, %s with eager per-stream alpha',
				   (SELECT flags FROM ex_replay WHERE stream IS NULL),
				   (SELECT flags FROM mlma.replay_fleet('{"suite": "explain-fleet"}',
														'{"check_mode": "eager", "alpha": 0.1}')
					 WHERE stream IS NULL)));

SELECT * FROM finish();

SELECT count(mlma.drop_stream(name)) FROM mlma.streams WHERE name LIKE 'explain/%';
