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
-- it recorded and logs the round in mlma.rounds.  Concurrent calls never
-- test the same batch twice.
CREATE FUNCTION @extschema@.run_checks(fdr float8 DEFAULT NULL)
RETURNS SETOF @extschema@.checks
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_ids	int8[];
BEGIN
	v_ids := @extschema@._run_checks(fdr);
	RETURN QUERY
	SELECT c.* FROM @extschema@.checks c
	 WHERE c.check_id = ANY (v_ids)
	 ORDER BY c.check_id;
END;
$$;

-- Registers run_checks() with pg_cron for the current database.  Returns the
-- pg_cron job id.  The job is named mlma_run_checks_<database>, so calling it
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
	   rq.pending_requests + rq.claimed_requests AS open_requests,
	   rq.pending_requests, rq.claimed_requests,
	   rq.completed_30d, rq.failed_30d, rq.dismissed_30d,
	   rq.median_time_to_retrain,
	   CASE WHEN rq.completed_30d + rq.failed_30d + rq.dismissed_30d > 0
			THEN rq.dismissed_30d::float8
				 / (rq.completed_30d + rq.failed_30d + rq.dismissed_30d) END
		   AS dismissal_rate_30d,
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
	SELECT stream_id INTO v_id FROM @extschema@.streams WHERE name = p_name;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'stream "%" does not exist', p_name
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN v_id;
END;
$$;

-- History of one stream: its checks, newest first.
CREATE FUNCTION @extschema@.check_history(stream text,
	since timestamptz DEFAULT now() - interval '30 days')
RETURNS SETOF @extschema@.checks
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.* FROM @extschema@.checks c
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

-- Removes history older than `older_than`: closed batches, finished checks
-- and finished requests.  Never touches the live references (they are kept
-- apart in reference_batches), the open batches, checks still waiting for
-- run_checks() (check_queue) or their batches, or open requests; also the
-- log of rounds older than `older_than`.
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

-- What-if: replays the stream's logged losses under other settings and
-- returns the checks they would have produced, without touching any live
-- state.  NULL arguments keep the stream's own setting; season_length => 0
-- turns seasonal pairing off.  Each logged model version starts warming as
-- it did live; after a flag the replay assumes the retrain completed at once,
-- so the next reference_size observations warm a new reference (as
-- complete_retrain does live).  Purged history is not replayed.
CREATE FUNCTION @extschema@.replay(stream text, method text DEFAULT NULL,
	alpha float8 DEFAULT NULL, batch_size int DEFAULT NULL,
	reference_size int DEFAULT NULL, season_length int DEFAULT NULL,
	reference_policy text DEFAULT NULL, min_effect float8 DEFAULT NULL,
	consecutive int DEFAULT NULL)
RETURNS TABLE (model_version text, batch_no int, first_at timestamptz,
			   last_at timestamptz, n int, statistic float8, p_value float8,
			   effect float8, significant bool, drift bool, flag bool)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			@extschema@.streams;
	v_method	text;
	v_alpha		float8;
	v_bs		int;
	v_rs		int;
	v_season	int;
	v_policy	text;
	v_min		float8;
	v_consec	int;
	ver			record;
	L			float8[];
	Q			int8[];
	T			timestamptz[];
	v_n			int;
	v_start		int;
	b0			int;
	ref_l		float8[];
	ref_q		int8[];
	v_streak	int;
	v_no		int := 0;
	e			record;
	rr			record;
BEGIN
	SELECT * INTO s FROM @extschema@.streams x
	 WHERE x.stream_id = @extschema@._stream_id(replay.stream);
	v_method := coalesce(replay.method, s.method);
	v_alpha := coalesce(replay.alpha, s.alpha);
	v_bs := coalesce(replay.batch_size, s.batch_size);
	v_season := CASE WHEN replay.season_length = 0 THEN NULL
					 ELSE coalesce(replay.season_length, s.season_length) END;
	v_rs := coalesce(replay.reference_size,
					 CASE WHEN replay.batch_size IS NULL AND replay.season_length IS NULL
						  THEN s.reference_size
						  ELSE greatest(coalesce(v_season, v_bs), v_bs) END);
	v_policy := coalesce(replay.reference_policy, s.reference_policy);
	v_min := coalesce(replay.min_effect, s.min_effect);
	v_consec := coalesce(replay.consecutive, s.consecutive);
	PERFORM @extschema@._validate_options(v_bs, v_rs, v_method, v_alpha,
		s.loss, s.loss_param, s.check_mode, v_policy, v_min, v_consec, v_season,
		s.max_model_age, s.model_version, s.labels);

	FOR ver IN
		SELECT x.version_no, min(x.model_version) AS model_version,
			   array_agg(x.l ORDER BY x.q) AS l, array_agg(x.q ORDER BY x.q) AS q,
			   array_agg(x.t ORDER BY x.q) AS t
		  FROM (SELECT b.version_no, b.model_version, u.l,
					   b.first_seq + u.o - 1 AS q,
					   b.first_at + make_interval(secs => b.offsets[u.o]) AS t
				  FROM @extschema@.batches b,
					   unnest(b.losses) WITH ORDINALITY AS u(l, o)
				 WHERE b.stream_id = s.stream_id
				UNION ALL
				SELECT st.version_no, s.model_version, o.loss, o.seq, o.observed_at
				  FROM @extschema@.observations o
				  JOIN @extschema@.stream_state st ON st.stream_id = o.stream_id
				 WHERE o.stream_id = s.stream_id) x
		 GROUP BY x.version_no
		 ORDER BY x.version_no
	LOOP
		L := ver.l; Q := ver.q; T := ver.t;
		v_n := cardinality(L);
		v_start := 1;
		<<warm>>
		LOOP
			-- a new reference warms from v_start
			EXIT warm WHEN v_start + v_rs - 1 > v_n;
			ref_l := L[v_start : v_start + v_rs - 1];
			ref_q := Q[v_start : v_start + v_rs - 1];
			v_streak := 0;
			b0 := v_start;
			WHILE b0 + v_bs - 1 <= v_n LOOP
				IF b0 >= v_start + v_rs THEN
					SELECT * INTO e FROM @extschema@._evaluate(v_method, ref_l, ref_q,
						L[b0 : b0 + v_bs - 1], Q[b0], v_season);
					v_no := v_no + 1;
					model_version := ver.model_version;
					batch_no := v_no;
					first_at := T[b0];
					last_at := T[b0 + v_bs - 1];
					n := v_bs;
					statistic := e.statistic;
					p_value := e.p_value;
					effect := e.effect;
					significant := e.p_value <= v_alpha AND e.effect >= v_min;
					v_streak := CASE WHEN significant THEN v_streak + 1 ELSE 0 END;
					drift := significant AND v_streak >= v_consec;
					flag := drift;
					RETURN NEXT;
					IF flag THEN
						-- retrained at once: a new reference warms after this batch
						v_start := b0 + v_bs;
						CONTINUE warm;
					ELSIF NOT significant AND v_policy = 'rolling' THEN
						SELECT * INTO rr FROM @extschema@._rolled_reference(ref_l, ref_q,
							L[b0 : b0 + v_bs - 1], Q[b0], v_season, v_rs);
						ref_l := rr.losses;
						ref_q := rr.seqs;
					END IF;
				END IF;
				b0 := b0 + v_bs;
			END LOOP;
			EXIT warm;
		END LOOP;
	END LOOP;
END;
$$;
