-- 70: scheduled checks wait in a queue (check_queue) and are inserted into
-- checks once with their outcome; rounds are logged (rounds); fleet_status
-- shows the oldest waiting check and the last round; schedule_checks warns
-- about a pg_cron setup that cannot run the job.

ALTER TABLE @extschema@.checks ADD COLUMN note text;

CREATE TABLE @extschema@.check_queue (
	stream_id		bigint NOT NULL,
	batch_no		int NOT NULL,
	queued_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (stream_id, batch_no)
);

CREATE TABLE @extschema@.rounds (
	started_at		timestamptz NOT NULL,
	finished_at		timestamptz NOT NULL,
	checks			int NOT NULL,
	flags			int NOT NULL,
	deferred		int NOT NULL
);
CREATE INDEX rounds_finished_at_idx ON @extschema@.rounds (finished_at);

-- the checks still waiting move to the queue
INSERT INTO @extschema@.check_queue (stream_id, batch_no, queued_at)
SELECT stream_id, batch_no, created_at FROM @extschema@.checks
 WHERE status = 'waiting';
DELETE FROM @extschema@.checks WHERE status = 'waiting';
DROP INDEX @extschema@.checks_waiting_idx;

SELECT pg_catalog.pg_extension_config_dump('@extschema@.check_queue', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.rounds', '');

ALTER FUNCTION @extschema@._run_checks(float8) SET jit = off;

CREATE OR REPLACE FUNCTION @extschema@._close_batch(p_stream_id bigint, p_partial bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c		record;
	v_l		float8[];
	v_off	int4[];
	v_first	bigint;
	v_t0	timestamptz;
	v_t1	timestamptz;
	v_next	bigint;
	v_role	text;
	v_cid	bigint;
	e		record;
	v_sig	bool;
	v_streak int;
	v_drift	bool;
BEGIN
	SELECT s.model_version, s.method, s.alpha, s.check_mode, s.paused,
		   s.season_length, s.reference_size, s.min_effect, s.consecutive,
		   s.reference_policy, st.batch_no, st.version_no, st.version_start_seq,
		   st.open_start_seq, st.streak, r.stream_id IS NOT NULL AS has_ref,
		   r.losses AS ref_losses, r.seqs AS ref_seqs, r.end_seq AS ref_end
	  INTO c
	  FROM @extschema@.streams s
	  JOIN @extschema@.stream_state st USING (stream_id)
	  LEFT JOIN @extschema@.reference_batches r USING (stream_id)
	 WHERE s.stream_id = p_stream_id;

	-- the range on seq keeps the index scan off observations deleted by
	-- earlier batch closes of this same transaction (bulk loads); offsets
	-- beyond +-68 years from the batch's first observation are clamped
	WITH d AS (DELETE FROM @extschema@.observations
				WHERE stream_id = p_stream_id AND seq >= c.open_start_seq
			RETURNING seq, observed_at, loss),
		 f AS (SELECT seq, observed_at, loss,
					  first_value(observed_at) OVER (ORDER BY seq) AS t0
				 FROM d)
	SELECT array_agg(loss ORDER BY seq),
		   array_agg(greatest(-2147483648, least(2147483647,
					 floor(extract(epoch FROM observed_at - t0))))::int4 ORDER BY seq),
		   min(seq), min(t0), (array_agg(observed_at ORDER BY seq DESC))[1]
	  INTO v_l, v_off, v_first, v_t0, v_t1
	  FROM f;
	IF v_l IS NULL THEN
		RETURN;
	END IF;
	v_next := v_first + cardinality(v_l);

	IF p_partial THEN
		v_role := 'partial';
	ELSIF NOT c.has_ref OR v_first < c.ref_end THEN
		v_role := 'reference';
	ELSE
		v_role := 'test';
	END IF;

	INSERT INTO @extschema@.batches
		(stream_id, batch_no, model_version, version_no, role, first_seq,
		 first_at, last_at, losses, offsets)
	VALUES (p_stream_id, c.batch_no, c.model_version, c.version_no, v_role,
			v_first, v_t0, v_t1, v_l, v_off);

	IF v_role <> 'test' OR c.paused OR c.check_mode <> 'eager' THEN
		UPDATE @extschema@.stream_state
		   SET batch_no = batch_no + 1, open_start_seq = v_next
		 WHERE stream_id = p_stream_id;
		-- warming: the version's first reference_size observations
		IF NOT c.has_ref AND NOT p_partial
			AND v_next - c.version_start_seq >= c.reference_size THEN
			PERFORM @extschema@._set_reference_seqs(p_stream_id, c.version_start_seq,
				c.version_start_seq + c.reference_size, 'warmup');
		END IF;
		-- scheduled: the check waits in the queue for run_checks()
		IF v_role = 'test' AND NOT c.paused THEN
			INSERT INTO @extschema@.check_queue (stream_id, batch_no)
			VALUES (p_stream_id, c.batch_no);
		END IF;
		RETURN;
	END IF;

	-- eager check and decision
	SELECT * INTO e FROM @extschema@._evaluate(c.method, c.ref_losses, c.ref_seqs,
											   v_l, v_first, c.season_length);
	v_sig := e.p_value <= c.alpha AND e.effect >= c.min_effect;
	v_streak := CASE WHEN v_sig THEN c.streak + 1 ELSE 0 END;
	v_drift := v_sig AND v_streak >= c.consecutive;

	UPDATE @extschema@.stream_state
	   SET batch_no = batch_no + 1, open_start_seq = v_next, streak = v_streak
	 WHERE stream_id = p_stream_id;
	INSERT INTO @extschema@.checks
		(stream_id, model_version, batch_no, method, alpha, check_mode, status,
		 n_reference, n_current, reference_mean, batch_mean, statistic, p_value,
		 effect, significant, drift, checked_at)
	VALUES (p_stream_id, c.model_version, c.batch_no, c.method, c.alpha,
			'eager', 'done', e.n_reference, e.n_current, e.reference_mean,
			e.batch_mean, e.statistic, e.p_value, e.effect, v_sig, v_drift, now())
	RETURNING check_id INTO v_cid;

	IF v_drift THEN
		PERFORM @extschema@._raise_request(p_stream_id, 'drift', e.p_value,
										   e.effect, v_cid, NULL);
	ELSIF NOT v_sig AND c.reference_policy = 'rolling' THEN
		PERFORM @extschema@._roll_reference(p_stream_id, c.batch_no);
	END IF;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@._start_version(p_stream_id bigint, p_model_version text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	PERFORM @extschema@._invalidate_cache();
	PERFORM @extschema@._close_batch(p_stream_id, true);
	UPDATE @extschema@.streams
	   SET model_version = p_model_version, version_started_at = now()
	 WHERE stream_id = p_stream_id;
	UPDATE @extschema@.stream_state
	   SET version_no = version_no + 1, version_start_seq = open_start_seq,
		   streak = 0, age_flagged = false, config_version = config_version + 1
	 WHERE stream_id = p_stream_id;
	DELETE FROM @extschema@.reference_batches WHERE stream_id = p_stream_id;
	-- queued checks of the old version are recorded as skipped
	WITH q AS (DELETE FROM @extschema@.check_queue WHERE stream_id = p_stream_id
			   RETURNING batch_no, queued_at)
	INSERT INTO @extschema@.checks
		(stream_id, model_version, batch_no, method, alpha, check_mode, status,
		 created_at, checked_at)
	SELECT p_stream_id, b.model_version, q.batch_no, s.method, s.alpha,
		   'scheduled', 'skipped', q.queued_at, now()
	  FROM q
	  JOIN @extschema@.batches b ON b.stream_id = p_stream_id AND b.batch_no = q.batch_no
	  JOIN @extschema@.streams s ON s.stream_id = p_stream_id;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@.drop_stream(name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint := @extschema@._lock_stream(name);
BEGIN
	-- the queue first: a round that took the stream's batches holds their
	-- queue rows until it commits, and its check rows are then deleted below
	DELETE FROM @extschema@.check_queue WHERE stream_id = v_id;
	DELETE FROM @extschema@.observations WHERE stream_id = v_id;
	DELETE FROM @extschema@.batches WHERE stream_id = v_id;
	DELETE FROM @extschema@.reference_batches WHERE stream_id = v_id;
	DELETE FROM @extschema@.checks WHERE stream_id = v_id;
	DELETE FROM @extschema@.retrain_requests WHERE stream_id = v_id;
	DELETE FROM @extschema@.stream_state WHERE stream_id = v_id;
	DELETE FROM @extschema@.streams WHERE stream_id = v_id;
END;
$$;

CREATE FUNCTION @extschema@._warn_cron_setup()
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_cron_db	text := current_setting('cron.database_name', true);
	v_bgw		text := current_setting('cron.use_background_workers', true);
	v_host		text := current_setting('cron.host', true);
	v_warnings	int := 0;
BEGIN
	IF v_cron_db IS NULL THEN
		RAISE WARNING 'the pg_cron library is not loaded: the job will not run'
			USING HINT = 'Add pg_cron to shared_preload_libraries and restart the server.';
		RETURN 1;
	END IF;
	IF v_cron_db <> current_database() THEN
		v_warnings := v_warnings + 1;
		RAISE WARNING 'pg_cron runs in database %, not in %', v_cron_db, current_database()
			USING DETAIL = 'The job was registered with cron.schedule_in_database() for this database.',
			HINT = 'Check that cron.job of database ' || v_cron_db || ' lists the job.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher') THEN
		v_warnings := v_warnings + 1;
		RAISE WARNING 'the pg_cron launcher is not running: the job will not run'
			USING HINT = 'Check the server log for pg_cron errors; max_worker_processes must leave room for it.';
	END IF;
	IF coalesce(v_bgw, 'off') <> 'on' THEN
		v_warnings := v_warnings + 1;
		RAISE WARNING 'cron.use_background_workers is off: pg_cron runs the job over a TCP connection to % as user %',
			coalesce(v_host, 'localhost'), current_user
			USING DETAIL = 'Without a pg_hba.conf entry for that connection and a password-less login (trust, or a password in the .pgpass file of the server''s operating-system user), every run fails and is only logged in cron.job_run_details.',
			HINT = 'Set cron.use_background_workers = on (and restart), or add e.g. "host ' || current_database() || ' ' || current_user || ' 127.0.0.1/32 scram-sha-256" to pg_hba.conf with a matching .pgpass entry.  fleet_status.last_round_at shows whether rounds run.';
	END IF;
	RETURN v_warnings;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@.schedule_checks(schedule text DEFAULT '*/5 * * * *')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_cron_db	text := current_setting('cron.database_name', true);
	v_job		bigint;
BEGIN
	IF schedule IS NULL OR btrim(schedule) = '' THEN
		RAISE EXCEPTION 'schedule must not be empty'
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use cron format, e.g. ''*/5 * * * *''.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
			USING ERRCODE = 'feature_not_supported',
			DETAIL = CASE WHEN v_cron_db IS NULL
						  THEN 'The pg_cron library is not loaded (shared_preload_libraries).'
						  ELSE format('pg_cron runs in database %s (cron.database_name).', v_cron_db) END,
			HINT = 'Add pg_cron to shared_preload_libraries and run CREATE EXTENSION pg_cron in the database named by cron.database_name; from there, cron.schedule_in_database() can also schedule SELECT mlma.run_checks() in other databases.';
	END IF;
	EXECUTE 'SELECT cron.schedule_in_database($1, $2, $3, $4)'
	   INTO v_job
	  USING 'mlma_run_checks_' || current_database(), schedule,
			'SELECT count(*) FROM @extschema@.run_checks()', current_database();
	PERFORM @extschema@._warn_cron_setup();
	RETURN v_job;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@.purge(older_than interval)
RETURNS TABLE (batches bigint, checks bigint, requests bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_cut	timestamptz;
	v_b		bigint;
	v_c		bigint;
	v_r		bigint;
BEGIN
	IF older_than IS NULL OR older_than < interval '0' THEN
		RAISE EXCEPTION 'older_than must be a non-negative interval'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_cut := now() - older_than;
	DELETE FROM @extschema@.batches b
	 WHERE b.last_at < v_cut
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.check_queue q
					    WHERE q.stream_id = b.stream_id
						  AND q.batch_no = b.batch_no);
	GET DIAGNOSTICS v_b = ROW_COUNT;
	DELETE FROM @extschema@.checks
	 WHERE status <> 'waiting' AND coalesce(checked_at, created_at) < v_cut;
	GET DIAGNOSTICS v_c = ROW_COUNT;
	DELETE FROM @extschema@.retrain_requests
	 WHERE status IN ('completed', 'failed', 'dismissed')
	   AND finished_at < v_cut;
	GET DIAGNOSTICS v_r = ROW_COUNT;
	DELETE FROM @extschema@.rounds WHERE finished_at < v_cut;
	RETURN QUERY SELECT v_b, v_c, v_r;
END;
$$;



REVOKE ALL ON @extschema@.check_queue, @extschema@.rounds FROM PUBLIC;
GRANT SELECT ON @extschema@.check_queue, @extschema@.rounds TO mlma_reader;
GRANT ALL ON @extschema@.check_queue, @extschema@.rounds TO mlma_admin;
REVOKE ALL ON FUNCTION @extschema@._warn_cron_setup() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._warn_cron_setup() TO mlma_admin;
