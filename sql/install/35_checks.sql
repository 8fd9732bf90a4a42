-- mlma: closing batches, building references, checks and decisions
--
-- The C hot path (src/ingest.c) calls _close_batch when an observation fills
-- the open batch, inside the writer's transaction and while it holds the
-- stream's writer lock.  Scheduled checks wait in check_queue for
-- run_checks() (src/fleet.c), which evaluates them with the same C code as
-- _evaluate.  Both decide with one C function, mlma_decide
-- (src/core/decide.c); here through mlma._decide.

-- The mean of losses without overflow (avg() raises on a sum beyond the
-- float8 range), src/check.c.
CREATE FUNCTION @extschema@._mean(losses float8[])
RETURNS float8
AS 'MODULE_PATHNAME', 'mlma_mean'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- C core of one check (src/check.c): the like-for-like reference sample
-- (seasonal positions), the test with alternative 'greater', and the effect.
CREATE FUNCTION @extschema@._evaluate(
	method text, reference float8[], reference_seqs int8[],
	current float8[], current_first_seq int8, season_length int,
	OUT statistic float8, OUT p_value float8, OUT effect float8,
	OUT n_reference int, OUT n_current int,
	OUT reference_mean float8, OUT batch_mean float8)
RETURNS record
AS 'MODULE_PATHNAME', 'mlma_evaluate'
LANGUAGE C IMMUTABLE PARALLEL SAFE CALLED ON NULL INPUT;

-- The same row for the benchmark reference policy: the reference sample is
-- the challenger's losses on the batch's own observations (benchmark, NULL
-- elements where an observation had none: those pairs are left out).  dm
-- pairs element by element; effect = mean(model loss) / mean(benchmark
-- loss).  Fewer than 2 pairs: statistic, p_value and effect are NULL.
CREATE FUNCTION @extschema@._evaluate_benchmark(
	method text, benchmark float8[], current float8[],
	OUT statistic float8, OUT p_value float8, OUT effect float8,
	OUT n_reference int, OUT n_current int,
	OUT reference_mean float8, OUT batch_mean float8)
RETURNS record
AS 'MODULE_PATHNAME', 'mlma_evaluate_benchmark'
LANGUAGE C IMMUTABLE PARALLEL SAFE CALLED ON NULL INPUT;

-- C helper: the setting mlma.notify (src/mlma.c).  Every NOTIFY of mlma
-- (mlma_retrain, mlma_cancel) is sent only when it is on; off, a
-- transaction that raises a request can be prepared (PREPARE TRANSACTION,
-- Citus two-phase commit) and agents find the request by polling.
CREATE FUNCTION @extschema@._notify_on()
RETURNS bool
AS 'MODULE_PATHNAME', 'mlma_notify_on'
LANGUAGE C STABLE;

-- C helper: the JSON payload of one retrain notification (src/requests.c,
-- where every new request's payload is made): always well below 8000
-- bytes, as stream names and model versions are cut to 255 characters and
-- every string is JSON-escaped; NULL, NaN and infinite numbers are null.
CREATE FUNCTION @extschema@._request_payload(p_request_id bigint, p_stream_id bigint,
	p_stream text, p_model_version text, p_reason text, p_p_value float8,
	p_effect float8, p_status text)
RETURNS text
AS 'MODULE_PATHNAME', 'mlma_request_payload_sql'
LANGUAGE C STABLE CALLED ON NULL INPUT;

-- The JSON payloads of retrain notifications, one row per request, in
-- request order.
CREATE FUNCTION @extschema@._notify_payloads(p_request_ids bigint[])
RETURNS TABLE (request_id bigint, payload text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT r.request_id,
		   @extschema@._request_payload(r.request_id, r.stream_id, s.name,
				r.model_version, r.reason, r.p_value, r.effect, r.status)
	  FROM unnest(p_request_ids) AS u(id)
	  -- index probes: the requests' history and the fleet are never scanned
	  CROSS JOIN LATERAL (SELECT * FROM @extschema@.retrain_requests x
						   WHERE x.request_id = u.id LIMIT 1) r
	  CROSS JOIN LATERAL (SELECT x.name FROM @extschema@.streams x
						   WHERE x.stream_id = r.stream_id LIMIT 1) s
	 ORDER BY r.request_id
$$;

-- The payload of one request's notification.
CREATE FUNCTION @extschema@._notify_payload(p_request_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT p.payload FROM @extschema@._notify_payloads(ARRAY[p_request_id]) p
$$;

-- Raises retrain requests for several streams at once (run_checks and the
-- set ingest path raise all of theirs in one call, in C): a stream that
-- already has an open request gets none.  Each new request sends NOTIFY
-- mlma_retrain (delivered on commit only) unless mlma.notify is off.  Drift
-- and age requests of a stream with approval 'manual' start as 'proposed'
-- (the payload says so; agents do not claim them); manual requests are
-- approved by definition.  Returns the new request ids, ascending
-- (src/requests.c).
CREATE FUNCTION @extschema@._raise_requests(p_stream_ids bigint[], p_reason text,
	p_p_values float8[], p_effects float8[], p_check_ids bigint[], p_note text)
RETURNS bigint[]
AS 'MODULE_PATHNAME', 'mlma_raise_requests_sql'
LANGUAGE C VOLATILE CALLED ON NULL INPUT
SET search_path = pg_catalog, pg_temp;

-- One request: the id of the new request, or NULL when one was already open.
CREATE FUNCTION @extschema@._raise_request(p_stream_id bigint, p_reason text,
	p_p_value float8, p_effect float8, p_check_id bigint, p_note text)
RETURNS bigint
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT (@extschema@._raise_requests(ARRAY[p_stream_id], p_reason,
		ARRAY[p_p_value], ARRAY[p_effect], ARRAY[p_check_id], p_note))[1]
$$;

-- Called by the hot path the first time an observation arrives after the
-- model version became older than max_model_age.
CREATE FUNCTION @extschema@._raise_age(p_stream_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s		@extschema@.streams;
BEGIN
	SELECT * INTO s FROM @extschema@.streams WHERE stream_id = p_stream_id;
	UPDATE @extschema@.stream_state SET age_flagged = true
	 WHERE stream_id = p_stream_id;
	IF s.paused OR s.max_model_age IS NULL
		OR now() - s.version_started_at <= s.max_model_age THEN
		RETURN NULL;
	END IF;
	RETURN @extschema@._raise_request(p_stream_id, 'age', NULL, NULL, NULL,
		format('model version %s deployed at %s is older than %s',
			   s.model_version, s.version_started_at, s.max_model_age));
END;
$$;

-- Warm-up of a stream's reference from the reference_size observations
-- starting at p_from_seq, inside the writer's transaction that closed a
-- batch: never raises for data reasons.  When some of them are gone
-- (purged by an older version of purge, or a dm reference that would not
-- fit), the warm-up starts again at p_next_seq instead of building a
-- reference from fewer observations.  Returns whether a reference was built.
CREATE FUNCTION @extschema@._warm_reference(p_stream_id bigint, p_from_seq bigint,
	p_size int, p_next_seq bigint)
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s		@extschema@.streams;
	v_losses	float8[];
	v_seqs		int8[];
	v_to		bigint := p_from_seq + p_size;
BEGIN
	SELECT * INTO s FROM @extschema@.streams WHERE stream_id = p_stream_id;
	SELECT array_agg(l ORDER BY q), array_agg(q ORDER BY q)
	  INTO v_losses, v_seqs
	  FROM (SELECT u.l, b.first_seq + u.o - 1 AS q
			  FROM @extschema@.batches b,
				   unnest(b.losses) WITH ORDINALITY AS u(l, o)
			 WHERE b.stream_id = p_stream_id
			   AND b.first_seq < v_to
			   AND b.first_seq + cardinality(b.losses) > p_from_seq
			UNION ALL
			SELECT o.loss, o.seq FROM @extschema@.observations o
			 WHERE o.stream_id = p_stream_id
			   AND o.seq >= p_from_seq AND o.seq < v_to) x
	 WHERE q >= p_from_seq AND q < v_to;
	IF coalesce(cardinality(v_losses), 0) < greatest(p_size, 2)
		OR (s.method = 'dm' AND s.season_length IS NULL
			AND cardinality(v_losses) <> s.batch_size) THEN
		UPDATE @extschema@.stream_state SET version_start_seq = p_next_seq
		 WHERE stream_id = p_stream_id;
		RETURN false;
	END IF;
	PERFORM @extschema@._store_reference(p_stream_id, 'warmup', v_losses, v_seqs);
	RETURN true;
END;
$$;

-- Replaces the live reference of a stream.
CREATE FUNCTION @extschema@._store_reference(p_stream_id bigint, p_source text,
	p_losses float8[], p_seqs int8[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s		@extschema@.streams;
	st		@extschema@.stream_state;
	v_id	bigint;
BEGIN
	IF coalesce(cardinality(p_losses), 0) < 2 THEN
		RAISE EXCEPTION 'a reference needs at least 2 observations'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('%s observations were found.', coalesce(cardinality(p_losses), 0));
	END IF;
	SELECT * INTO s FROM @extschema@.streams WHERE stream_id = p_stream_id;
	SELECT * INTO st FROM @extschema@.stream_state WHERE stream_id = p_stream_id;
	IF s.reference_policy = 'benchmark' THEN
		RAISE EXCEPTION 'stream "%" uses the benchmark reference policy', s.name
			USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = 'Each batch is tested against the benchmark''s losses on the same observations; the stream keeps no reference.',
			HINT = 'Configure reference_policy fixed or rolling first.';
	END IF;
	IF s.method = 'dm' AND s.season_length IS NULL
		AND cardinality(p_losses) <> s.batch_size THEN
		RAISE EXCEPTION 'a dm reference without season_length needs exactly batch_size observations'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('batch_size is %s, %s observations were found.',
							s.batch_size, cardinality(p_losses));
	END IF;
	INSERT INTO @extschema@.reference_history
		(stream_id, version_no, model_version, source, n, mean, first_seq, end_seq, seq_runs)
	SELECT p_stream_id, st.version_no, s.model_version, p_source, cardinality(p_losses),
		   @extschema@._mean(p_losses), min(lo), max(hi),
		   array_agg(x ORDER BY lo, k)
	  FROM (SELECT min(q) AS lo, max(q) + 1 AS hi
			  FROM (SELECT q, q - row_number() OVER (ORDER BY q) AS g
					  FROM unnest(p_seqs) q) a
			 GROUP BY g) r,
		   LATERAL (VALUES (1, r.lo), (2, r.hi)) v(k, x)
	RETURNING reference_id INTO v_id;
	INSERT INTO @extschema@.reference_batches AS r
		(stream_id, version_no, model_version, source, losses, seqs, end_seq, mean,
		 reference_id)
	VALUES (p_stream_id, st.version_no, s.model_version, p_source, p_losses, p_seqs,
			(SELECT max(q) + 1 FROM unnest(p_seqs) q),
			@extschema@._mean(p_losses), v_id)
	ON CONFLICT (stream_id) DO UPDATE
	   SET version_no = excluded.version_no, model_version = excluded.model_version,
		   source = excluded.source, losses = excluded.losses, seqs = excluded.seqs,
		   end_seq = excluded.end_seq, mean = excluded.mean, built_at = now(),
		   reference_id = excluded.reference_id;
END;
$$;

-- The reference after a passing batch under the rolling policy, as a pure
-- function of the arrays: the most recent reference_size losses of the old
-- reference and the batch; with season_length, each seasonal position keeps
-- as many values as it had (at least one), so every position stays covered.
CREATE FUNCTION @extschema@._rolled_reference(ref_losses float8[], ref_seqs int8[],
	batch_losses float8[], batch_first_seq bigint, season_length int,
	reference_size int, OUT losses float8[], OUT seqs int8[])
RETURNS record
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH a AS (
		SELECT u.l, u.q FROM unnest(ref_losses, ref_seqs) AS u(l, q)
		UNION ALL
		SELECT v.l, batch_first_seq + v.o - 1
		  FROM unnest(batch_losses) WITH ORDINALITY AS v(l, o)
	), keep AS (
		SELECT l, q FROM a
		 WHERE season_length IS NULL
		 ORDER BY q DESC LIMIT reference_size
	), keep_seasonal AS (
		SELECT l, q FROM (
			SELECT l, q, q % season_length AS p,
				   row_number() OVER (PARTITION BY q % season_length ORDER BY q DESC) AS rn
			  FROM a WHERE season_length IS NOT NULL) c
		 WHERE rn <= greatest(1, (SELECT count(*) FROM unnest(ref_seqs) q2
								   WHERE q2 % season_length = c.p))
	)
	SELECT array_agg(l ORDER BY q), array_agg(q ORDER BY q)
	  FROM (SELECT * FROM keep UNION ALL SELECT * FROM keep_seasonal) k
$$;


-- Rolling policy: after a passing batch the reference becomes the most
-- recent reference_size observations that passed.  With season_length each
-- seasonal position keeps as many values as it had, so every position stays
-- covered.
CREATE FUNCTION @extschema@._roll_reference(p_stream_id bigint, p_batch_no int)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s		@extschema@.streams;
	r		@extschema@.reference_batches;
	b		@extschema@.batches;
	v_l		float8[];
	v_q		int8[];
BEGIN
	SELECT * INTO s FROM @extschema@.streams WHERE stream_id = p_stream_id;
	SELECT * INTO r FROM @extschema@.reference_batches WHERE stream_id = p_stream_id;
	SELECT * INTO b FROM @extschema@.batches
	 WHERE stream_id = p_stream_id AND batch_no = p_batch_no;
	IF r.stream_id IS NULL OR b.stream_id IS NULL OR r.source = 'pinned'
		OR b.version_no <> r.version_no THEN
		RETURN;
	END IF;
	SELECT x.losses, x.seqs INTO v_l, v_q
	  FROM @extschema@._rolled_reference(r.losses, r.seqs, b.losses, b.first_seq,
										 s.season_length, s.reference_size) x;
	-- runs inside the writer's transaction: a rolled reference that would
	-- not be valid keeps the old one
	IF coalesce(cardinality(v_l), 0) < 2
		OR (s.method = 'dm' AND s.season_length IS NULL
			AND cardinality(v_l) <> s.batch_size) THEN
		RETURN;
	END IF;
	PERFORM @extschema@._store_reference(p_stream_id, 'rolling', v_l, v_q);
END;
$$;

-- The losses and seqs of a reference of reference_history, read back from
-- the closed batches and the open batch (NULL once they were purged).
CREATE FUNCTION @extschema@._reference_losses(p_reference_id bigint,
	OUT losses float8[], OUT seqs int8[])
RETURNS record
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	WITH h AS (SELECT * FROM @extschema@.reference_history
				WHERE reference_id = p_reference_id),
	runs AS (SELECT h.seq_runs[2 * i - 1] AS lo, h.seq_runs[2 * i] AS hi
			   FROM h, generate_series(1, cardinality(h.seq_runs) / 2) i),
	x AS (SELECT u.l, b.first_seq + u.o - 1 AS q
			FROM h JOIN @extschema@.batches b USING (stream_id),
				 unnest(b.losses) WITH ORDINALITY AS u(l, o)
		   WHERE b.first_seq < h.end_seq
			 AND b.first_seq + cardinality(b.losses) > h.first_seq
		  UNION ALL
		  SELECT o.loss, o.seq FROM h JOIN @extschema@.observations o USING (stream_id)
		   WHERE o.seq >= h.first_seq AND o.seq < h.end_seq)
	SELECT CASE WHEN count(*) = (SELECT n FROM h) THEN array_agg(x.l ORDER BY x.q) END,
		   CASE WHEN count(*) = (SELECT n FROM h) THEN array_agg(x.q ORDER BY x.q) END
	  FROM x
	 WHERE EXISTS (SELECT 1 FROM runs WHERE x.q >= runs.lo AND x.q < runs.hi)
$$;

-- Evaluates one closed batch against the reference that was live when the
-- batch closed (checks.reference_id, kept in reference_history), so it
-- agrees with the recorded check: the test (alternative 'greater'), the
-- effect and the sample sizes, without recording anything.  A batch
-- without a recorded reference (a reference batch, or a check recorded
-- before reference_history existed) is evaluated against the live
-- reference of its model version.  No row when there is no reference (or
-- its losses were purged).
-- Under the benchmark policy the reference is the batch's own benchmark
-- losses (NULL p_value when it has fewer than 2 of them).
CREATE FUNCTION @extschema@.evaluate_batch(stream_id bigint, batch_no int)
RETURNS TABLE (statistic float8, p_value float8, effect float8,
			   n_reference int, n_current int,
			   reference_mean float8, batch_mean float8)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT e.*
	  FROM @extschema@.batches b
	  JOIN @extschema@.streams s USING (stream_id)
	  LEFT JOIN @extschema@.checks c
			 ON c.stream_id = b.stream_id AND c.batch_no = b.batch_no
	  LEFT JOIN LATERAL @extschema@._reference_losses(c.reference_id) h ON true
	  LEFT JOIN @extschema@.reference_batches r
			 ON r.stream_id = b.stream_id AND r.version_no = b.version_no
			AND c.reference_id IS NULL,
		   LATERAL (SELECT x.*
					  FROM @extschema@._evaluate(s.method,
							coalesce(h.losses, r.losses), coalesce(h.seqs, r.seqs),
							b.losses, b.first_seq, s.season_length) x
					 WHERE s.reference_policy <> 'benchmark'
					   AND coalesce(h.losses, r.losses) IS NOT NULL
					UNION ALL
					SELECT y.*
					  FROM @extschema@._evaluate_benchmark(s.method, b.benchmark_losses,
															b.losses) y
					 WHERE s.reference_policy = 'benchmark') e
	 WHERE b.stream_id = evaluate_batch.stream_id
	   AND b.batch_no = evaluate_batch.batch_no
$$;

-- The decision rule of a check (src/core/decide.c), shared with run_checks:
-- significant when p <= threshold and effect >= min_effect (NaN or NULL:
-- not significant), streak = streak_before + 1 when significant else 0,
-- drift when significant and streak >= consecutive.
CREATE FUNCTION @extschema@._decide(p float8, threshold float8, effect float8,
	min_effect float8, streak_before int, consecutive int,
	OUT significant bool, OUT streak int, OUT drift bool)
RETURNS record
AS 'MODULE_PATHNAME', 'mlma_decide_sql'
LANGUAGE C IMMUTABLE PARALLEL SAFE CALLED ON NULL INPUT;

-- Deletes a stream's open observations (seq >= from_seq) and returns them
-- as the columns of a closed batch, in seq order: losses, second offsets
-- from the first observation's time (beyond +-68 years clamped), first seq,
-- first and last times, benchmark losses (NULL when none has one).  Every
-- column is NULL when the batch is empty.  C (src/ingest_direct.c): the
-- index scan starts at from_seq, off the observations deleted by earlier
-- closes of the same transaction.  The caller holds the writer lock.
CREATE FUNCTION @extschema@._take_open_batch(p_stream_id bigint, p_from_seq bigint,
	OUT losses float8[], OUT offsets int4[], OUT first_seq bigint,
	OUT first_at timestamptz, OUT last_at timestamptz,
	OUT benchmark_losses float8[])
RETURNS record
AS 'MODULE_PATHNAME', 'mlma_take_open_batch'
LANGUAGE C VOLATILE STRICT;

-- Closes the open batch of a stream: its observations move from
-- mlma.observations into one mlma.batches row (their benchmark losses into
-- benchmark_losses); a warming stream whose version reached reference_size
-- observations gets its reference; a test batch gets its check (eager: now,
-- scheduled: queued in check_queue).  Under the benchmark policy every full batch
-- is a test batch (no warm-up) and is tested against its own benchmark
-- losses; with fewer than 2 of them the check is recorded 'skipped'.  With
-- p_partial the batch is closed even if not full (new model version) and is
-- never tested.  The caller holds the stream's writer lock.
--
-- This runs once every batch_size observations inside the writer's
-- transaction, so it is written with few statements; the eager decision
-- is mlma._decide, the rule run_checks applies too.
CREATE FUNCTION @extschema@._close_batch(p_stream_id bigint, p_partial bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c		record;
	v_l		float8[];
	v_bl	float8[];
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
		   r.losses AS ref_losses, r.seqs AS ref_seqs, r.end_seq AS ref_end,
		   (SELECT max(h.reference_id) FROM @extschema@.reference_history h
			 WHERE h.stream_id = r.stream_id) AS ref_id
	  INTO c
	  FROM @extschema@.streams s
	  JOIN @extschema@.stream_state st USING (stream_id)
	  LEFT JOIN @extschema@.reference_batches r USING (stream_id)
	 WHERE s.stream_id = p_stream_id;

	-- the open batch's observations leave mlma.observations
	SELECT t.losses, t.offsets, t.first_seq, t.first_at, t.last_at, t.benchmark_losses
	  INTO v_l, v_off, v_first, v_t0, v_t1, v_bl
	  FROM @extschema@._take_open_batch(p_stream_id, c.open_start_seq) t;
	IF v_l IS NULL THEN
		RETURN;
	END IF;
	v_next := v_first + cardinality(v_l);

	IF p_partial THEN
		v_role := 'partial';
	ELSIF c.reference_policy = 'benchmark' THEN
		v_role := 'test';
	ELSIF NOT c.has_ref OR v_first < c.ref_end THEN
		v_role := 'reference';
	ELSE
		v_role := 'test';
	END IF;

	INSERT INTO @extschema@.batches
		(stream_id, batch_no, model_version, version_no, role, first_seq,
		 first_at, last_at, losses, offsets, benchmark_losses)
	VALUES (p_stream_id, c.batch_no, c.model_version, c.version_no, v_role,
			v_first, v_t0, v_t1, v_l, v_off, v_bl);

	IF v_role <> 'test' OR c.paused OR c.check_mode <> 'eager' THEN
		UPDATE @extschema@.stream_state
		   SET batch_no = batch_no + 1, open_start_seq = v_next
		 WHERE stream_id = p_stream_id;
		-- warming: the version's first reference_size observations
		IF NOT c.has_ref AND NOT p_partial AND c.reference_policy <> 'benchmark'
			AND v_next - c.version_start_seq >= c.reference_size THEN
			PERFORM @extschema@._warm_reference(p_stream_id, c.version_start_seq,
				c.reference_size, v_next);
		END IF;
		-- scheduled: the check waits in the queue for run_checks()
		IF v_role = 'test' AND NOT c.paused THEN
			INSERT INTO @extschema@.check_queue (stream_id, batch_no)
			VALUES (p_stream_id, c.batch_no);
		END IF;
		RETURN;
	END IF;

	-- eager check and decision
	IF c.reference_policy = 'benchmark' THEN
		SELECT * INTO e FROM @extschema@._evaluate_benchmark(c.method, v_bl, v_l);
		IF e.p_value IS NULL THEN
			-- too few benchmark values (policy switched while the batch
			-- was open): no test, the streak stands
			UPDATE @extschema@.stream_state
			   SET batch_no = batch_no + 1, open_start_seq = v_next
			 WHERE stream_id = p_stream_id;
			INSERT INTO @extschema@.checks
				(stream_id, model_version, batch_no, method, alpha, check_mode,
				 status, n_reference, n_current, checked_at, note)
			VALUES (p_stream_id, c.model_version, c.batch_no, c.method, c.alpha,
					'eager', 'skipped', e.n_reference, e.n_current, now(),
					'not tested: fewer than 2 benchmark values in the batch');
			RETURN;
		END IF;
	ELSE
		SELECT * INTO e FROM @extschema@._evaluate(c.method, c.ref_losses, c.ref_seqs,
												   v_l, v_first, c.season_length);
	END IF;
	SELECT d.significant, d.streak, d.drift INTO v_sig, v_streak, v_drift
	  FROM @extschema@._decide(e.p_value, c.alpha, e.effect, c.min_effect,
							   c.streak, c.consecutive) d;

	UPDATE @extschema@.stream_state
	   SET batch_no = batch_no + 1, open_start_seq = v_next, streak = v_streak
	 WHERE stream_id = p_stream_id;
	INSERT INTO @extschema@.checks
		(stream_id, model_version, batch_no, method, alpha, check_mode, status,
		 n_reference, n_current, reference_mean, batch_mean, statistic, p_value,
		 effect, significant, drift, checked_at, reference_id, threshold)
	VALUES (p_stream_id, c.model_version, c.batch_no, c.method, c.alpha,
			'eager', 'done', e.n_reference, e.n_current, e.reference_mean,
			e.batch_mean, e.statistic, e.p_value, e.effect, v_sig, v_drift, now(),
			CASE WHEN c.reference_policy <> 'benchmark' THEN c.ref_id END, c.alpha)
	RETURNING check_id INTO v_cid;

	IF v_drift THEN
		PERFORM @extschema@._raise_request(p_stream_id, 'drift', e.p_value,
										   e.effect, v_cid, NULL);
	ELSIF NOT v_sig AND c.reference_policy = 'rolling' THEN
		PERFORM @extschema@._roll_reference(p_stream_id, c.batch_no);
	END IF;
END;
$$;
