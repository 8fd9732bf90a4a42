-- mlma: operating the fleet — scheduled checks with FDR control, pg_cron,
-- key metrics, history, replay and retention.

-- One scheduled round (src/fleet.c): returns the ids of the checks finished.
-- Its statements are one index probe per check: JIT compilation would only
-- add to them.
CREATE FUNCTION @extschema@._run_checks(fdr float8)
RETURNS int8[]
AS 'MODULE_PATHNAME', 'mlma_run_checks'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET jit = off;

-- Tests the closed batches waiting for a scheduled check (check_queue, at
-- most mlma.round_size of them), across all streams at once, with the false
-- discovery rate controlled at `fdr` over the whole round
-- (Benjamini-Hochberg; default: the mlma.fdr setting).  Returns the checks
-- it recorded, in check_id order, and logs the round in mlma.rounds.
-- Concurrent calls never test the same batch twice.  First, proposed
-- requests past their stream's approve_after become pending
-- (_approve_due).
CREATE FUNCTION @extschema@.run_checks(fdr float8 DEFAULT NULL)
RETURNS SETOF @extschema@.checks
AS 'MODULE_PATHNAME', 'mlma_run_checks_rows'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp
SET jit = off;

-- Registers run_checks() with pg_cron for the current database.  Returns the
-- pg_cron job id.  SECURITY DEFINER (90_roles.sql): pg_cron filters
-- cron.job by user name and cron.database_name needs pg_read_all_settings,
-- so the job belongs to the extension's owner and runs run_checks() with its
-- rights; the command is fixed, the caller only chooses the schedule.  The job is named mlma_run_checks_<database>, so calling it
-- again changes the schedule of the same job.
CREATE FUNCTION @extschema@.schedule_checks(schedule text DEFAULT '*/5 * * * *')
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

-- What can be verified of the pg_cron setup from SQL, as WARNINGs (a job
-- that never runs is silent otherwise): the launcher is running, this is
-- pg_cron's database, and either cron.use_background_workers is on or the
-- job connects over TCP (needing a pg_hba entry and a password-less login
-- for the job's user).  Returns the number of warnings.
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

-- Removes the pg_cron job of schedule_checks(); false when there was none.
CREATE FUNCTION @extschema@.unschedule_checks()
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_done	bool;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
		RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
			USING ERRCODE = 'feature_not_supported';
	END IF;
	EXECUTE 'SELECT count(*) > 0 FROM cron.job WHERE jobname = $1'
	   INTO v_done USING 'mlma_run_checks_' || current_database();
	IF v_done THEN
		EXECUTE 'SELECT cron.unschedule($1)'
		  USING 'mlma_run_checks_' || current_database();
	END IF;
	RETURN v_done;
END;
$$;

-- One row of key metrics for the whole fleet.
CREATE VIEW @extschema@.fleet_status AS
WITH st AS (
	SELECT count(*) AS streams,
		   count(*) FILTER (WHERE state = 'warming') AS warming,
		   count(*) FILTER (WHERE state = 'monitoring') AS monitoring,
		   count(*) FILTER (WHERE state = 'drift') AS drift,
		   count(*) FILTER (WHERE state = 'retraining') AS retraining,
		   count(*) FILTER (WHERE state = 'paused') AS paused
	  FROM @extschema@.stream_status
), ck AS (
	SELECT count(*) FILTER (WHERE status = 'done') AS checks_24h,
		   count(*) FILTER (WHERE drift) AS drift_checks_24h
	  FROM @extschema@.checks
	 WHERE checked_at > now() - interval '24 hours'
), wt AS (
	SELECT count(*) AS waiting_checks,
		   now() - min(queued_at) AS oldest_waiting_check_age
	  FROM @extschema@.check_queue
), rd AS (
	SELECT max(finished_at) AS last_round_at FROM @extschema@.rounds
), rq AS (
	SELECT count(*) FILTER (WHERE requested_at > now() - interval '24 hours') AS flags_24h,
		   count(*) FILTER (WHERE status = 'pending') AS pending_requests,
		   count(*) FILTER (WHERE status = 'claimed') AS claimed_requests,
		   count(*) FILTER (WHERE status = 'proposed') AS proposed_requests,
		   count(*) FILTER (WHERE status = 'failed'
							  AND finished_at > now() - interval '30 days') AS failed_30d,
		   count(*) FILTER (WHERE status = 'dismissed'
							  AND finished_at > now() - interval '30 days') AS dismissed_30d,
		   count(*) FILTER (WHERE status = 'completed'
							  AND finished_at > now() - interval '30 days') AS completed_30d,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY finished_at - requested_at)
			   FILTER (WHERE status = 'completed'
						 AND finished_at > now() - interval '30 days') AS median_time_to_retrain
	  FROM @extschema@.retrain_requests
)
SELECT st.streams, st.warming, st.monitoring, st.drift, st.retraining, st.paused,
	   ck.checks_24h, ck.drift_checks_24h, wt.waiting_checks, rq.flags_24h,
	   rq.proposed_requests + rq.pending_requests + rq.claimed_requests AS open_requests,
	   rq.pending_requests, rq.claimed_requests,
	   rq.completed_30d, rq.failed_30d, rq.dismissed_30d,
	   rq.median_time_to_retrain,
	   CASE WHEN rq.completed_30d + rq.failed_30d + rq.dismissed_30d > 0
			THEN rq.dismissed_30d::float8
				 / (rq.completed_30d + rq.failed_30d + rq.dismissed_30d) END
		   AS dismissal_rate_30d,
	   rq.proposed_requests,
	   wt.oldest_waiting_check_age, rd.last_round_at
  FROM st, ck, wt, rq, rd;

-- The stream's id, or a clear error.
CREATE FUNCTION @extschema@._stream_id(p_name text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint;
BEGIN
	IF p_name IS NULL THEN
		RAISE EXCEPTION 'stream must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT stream_id INTO v_id FROM @extschema@.streams WHERE name = p_name;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'stream "%" does not exist', p_name
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN v_id;
END;
$$;

-- History of one stream: its checks, newest first, with the time range of
-- each checked batch (its first and last observation; NULL once purged).
CREATE FUNCTION @extschema@.check_history(stream text,
	since timestamptz DEFAULT now() - interval '30 days')
RETURNS TABLE (check_id bigint, stream_id bigint, model_version text,
			   batch_no int, method text, alpha float8, check_mode text,
			   status text, n_reference int, n_current int,
			   reference_mean float8, batch_mean float8, statistic float8,
			   p_value float8, p_adjusted float8, effect float8,
			   significant bool, drift bool, created_at timestamptz,
			   checked_at timestamptz, reference_id bigint, threshold float8,
			   batch_first_at timestamptz, batch_last_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.check_id, c.stream_id, c.model_version, c.batch_no, c.method,
		   c.alpha, c.check_mode, c.status, c.n_reference, c.n_current,
		   c.reference_mean, c.batch_mean, c.statistic, c.p_value,
		   c.p_adjusted, c.effect, c.significant, c.drift, c.created_at,
		   c.checked_at, c.reference_id, c.threshold, b.first_at, b.last_at
	  FROM @extschema@.checks c
	  LEFT JOIN @extschema@.batches b
			 ON b.stream_id = c.stream_id AND b.batch_no = c.batch_no
	 WHERE c.stream_id = @extschema@._stream_id(check_history.stream)
	   AND coalesce(c.checked_at, c.created_at) >= check_history.since
	 ORDER BY c.batch_no DESC
$$;

-- History of one stream: its retrain requests, newest first.
CREATE FUNCTION @extschema@.request_history(stream text,
	since timestamptz DEFAULT now() - interval '365 days')
RETURNS SETOF @extschema@.retrain_requests
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT r.* FROM @extschema@.retrain_requests r
	 WHERE r.stream_id = @extschema@._stream_id(request_history.stream)
	   AND r.requested_at >= request_history.since
	 ORDER BY r.requested_at DESC, r.request_id DESC
$$;

-- Removes history older than `older_than`.  One rule: history is aged by
-- the time of the observations it describes.  A closed batch goes when its
-- last observation (last_at) is older than now() - older_than, and its
-- check goes with it (checks whose batch is already gone go by the time
-- they were checked).  A finished request goes when it finished before the
-- cut.  Always kept, whatever their age: the open batches, the live
-- references (kept apart in reference_batches), the batches of a stream
-- still warming its reference, batches queued for run_checks() (check_queue), open requests, and the check and batch an open request was
-- raised for (dismiss(..., accept_as_reference => true) needs them).
-- The log of rounds (mlma.rounds) older than the cut goes too.
CREATE FUNCTION @extschema@.purge(older_than interval)
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
	WITH gone AS (
		DELETE FROM @extschema@.batches b
		 USING @extschema@.stream_state st
		 WHERE st.stream_id = b.stream_id
		   AND b.last_at < v_cut
		   -- batches queued for run_checks()
		   AND NOT EXISTS (SELECT 1 FROM @extschema@.check_queue cq
							WHERE cq.stream_id = b.stream_id
							  AND cq.batch_no = b.batch_no)
		   -- the flagged batch of an open request
		   AND NOT EXISTS (SELECT 1 FROM @extschema@.retrain_requests q
							 JOIN @extschema@.checks c ON c.check_id = q.check_id
							WHERE q.stream_id = b.stream_id
							  AND q.status NOT IN ('completed', 'failed', 'dismissed')
							  AND c.stream_id = b.stream_id AND c.batch_no = b.batch_no)
		   -- the warm-up of a stream without a reference
		   AND NOT (b.first_seq + cardinality(b.losses) > st.version_start_seq
					AND NOT EXISTS (SELECT 1 FROM @extschema@.reference_batches r
									 WHERE r.stream_id = b.stream_id))
		RETURNING b.stream_id, b.batch_no
	), gone_checks AS (
		DELETE FROM @extschema@.checks c
		 WHERE c.status <> 'waiting'
		   AND NOT EXISTS (SELECT 1 FROM @extschema@.retrain_requests q
							WHERE q.check_id = c.check_id
							  AND q.status NOT IN ('completed', 'failed', 'dismissed'))
		   AND ((c.stream_id, c.batch_no) IN (SELECT g.stream_id, g.batch_no FROM gone g)
				OR (coalesce(c.checked_at, c.created_at) < v_cut
					AND NOT EXISTS (SELECT 1 FROM @extschema@.batches b
									 WHERE b.stream_id = c.stream_id
									   AND b.batch_no = c.batch_no)))
		RETURNING 1
	)
	SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM gone_checks)
	  INTO v_b, v_c;
	DELETE FROM @extschema@.retrain_requests
	 WHERE status IN ('completed', 'failed', 'dismissed')
	   AND finished_at < v_cut;
	GET DIAGNOSTICS v_r = ROW_COUNT;
	DELETE FROM @extschema@.rounds WHERE finished_at < v_cut;
	RETURN QUERY SELECT v_b, v_c, v_r;
END;
$$;

-- The replay settings of one stream: the stream's own where an option is
-- NULL (season_length => 0 turns seasonal pairing off); reference_size
-- follows a changed batch_size or season_length unless given.  Validated
-- like create_stream's options.  own_grid: the batches are the live ones.
CREATE FUNCTION @extschema@._replay_options(p_stream_id bigint, p_method text,
	p_alpha float8, p_batch_size int, p_reference_size int, p_season_length int,
	p_reference_policy text, p_min_effect float8, p_consecutive int,
	p_check_mode text,
	OUT method text, OUT alpha float8, OUT batch_size int,
	OUT reference_size int, OUT season_length int, OUT reference_policy text,
	OUT min_effect float8, OUT consecutive int, OUT check_mode text,
	OUT own_grid bool)
RETURNS record
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s		@extschema@.streams;
BEGIN
	SELECT * INTO s FROM @extschema@.streams x WHERE x.stream_id = p_stream_id;
	method := coalesce(p_method, s.method);
	alpha := coalesce(p_alpha, s.alpha);
	batch_size := coalesce(p_batch_size, s.batch_size);
	season_length := CASE WHEN p_season_length = 0 THEN NULL
						  ELSE coalesce(p_season_length, s.season_length) END;
	reference_size := coalesce(p_reference_size,
		CASE WHEN p_batch_size IS NULL AND p_season_length IS NULL
			 THEN s.reference_size
			 ELSE greatest(coalesce(season_length, batch_size), batch_size) END);
	reference_policy := coalesce(p_reference_policy, s.reference_policy);
	min_effect := coalesce(p_min_effect, s.min_effect);
	consecutive := coalesce(p_consecutive, s.consecutive);
	check_mode := coalesce(p_check_mode, s.check_mode);
	own_grid := batch_size = s.batch_size;
	PERFORM @extschema@._validate_options(batch_size, reference_size, method,
		alpha, s.loss, s.loss_param, check_mode, reference_policy, min_effect,
		consecutive, season_length, s.max_model_age, s.model_version, s.labels);
END;
$$;

-- C core of replay (src/replay.c): one pass over the stream's history.
CREATE FUNCTION @extschema@._replay(stream_id bigint, method text,
	alpha float8, batch_size int, reference_size int, season_length int,
	reference_policy text, min_effect float8, consecutive int, own_grid bool)
RETURNS TABLE (model_version text, batch_no int, first_at timestamptz,
			   last_at timestamptz, n int, statistic float8, p_value float8,
			   effect float8, significant bool, drift bool, flag bool)
AS 'MODULE_PATHNAME', 'mlma_replay'
LANGUAGE C STABLE CALLED ON NULL INPUT;

-- What-if: replays the stream's logged losses under other settings and
-- returns the checks they would have produced, one row per tested batch
-- decided at alpha (as eager checks; replay_fleet() replays scheduled
-- fleets round by round), without touching any live state.  NULL
-- arguments keep the stream's own setting; season_length => 0 turns
-- seasonal pairing off.  batch_no is the live batch number: with the
-- stream's batch_size the replayed batches are the live ones; with another
-- they are counted like live batches (reference and partial batches
-- included).  Each logged model version starts warming as it did live;
-- after a flag the replay assumes the retrain completed at once, so the
-- next reference_size observations warm a new reference (as
-- complete_retrain does live).  One pass in C (src/replay.c), linear in
-- the history.  Purged history is not replayed.
CREATE FUNCTION @extschema@.replay(stream text, method text DEFAULT NULL,
	alpha float8 DEFAULT NULL, batch_size int DEFAULT NULL,
	reference_size int DEFAULT NULL, season_length int DEFAULT NULL,
	reference_policy text DEFAULT NULL, min_effect float8 DEFAULT NULL,
	consecutive int DEFAULT NULL)
RETURNS TABLE (model_version text, batch_no int, first_at timestamptz,
			   last_at timestamptz, n int, statistic float8, p_value float8,
			   effect float8, significant bool, drift bool, flag bool)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT r.*
	  FROM @extschema@._replay_options(@extschema@._stream_id(replay.stream),
			replay.method, replay.alpha, replay.batch_size, replay.reference_size,
			replay.season_length, replay.reference_policy, replay.min_effect,
			replay.consecutive, NULL) o,
		   LATERAL @extschema@._replay(@extschema@._stream_id(replay.stream),
			o.method, o.alpha, o.batch_size, o.reference_size, o.season_length,
			o.reference_policy, o.min_effect, o.consecutive, o.own_grid) r
$$;
