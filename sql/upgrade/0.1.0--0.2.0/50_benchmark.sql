-- mlma 0.1.0 -> 0.2.0: benchmark values and the benchmark reference policy.
--
-- observe / observe_loss take a benchmark value, observations and batches
-- store the challenger's losses, streams accept reference_policy
-- 'benchmark' (tested against the challenger's losses on the same
-- observations), stream_status shows the benchmark's mean.

ALTER TABLE @extschema@.observations ADD COLUMN benchmark_loss float8;
ALTER TABLE @extschema@.batches ADD COLUMN benchmark_losses float8[];
ALTER TABLE @extschema@.batches ALTER COLUMN benchmark_losses SET STORAGE MAIN;
ALTER TABLE @extschema@.streams DROP CONSTRAINT streams_reference_policy_check;
ALTER TABLE @extschema@.streams ADD CONSTRAINT streams_reference_policy_check
	CHECK (reference_policy IN ('fixed', 'rolling', 'benchmark'));

-- the same C symbols as 0.1.0, one argument more (PG_NARGS tells them apart)
DROP FUNCTION @extschema@.observe(text, float8, float8, timestamptz);
DROP FUNCTION @extschema@.observe_loss(text, float8, timestamptz);
CREATE FUNCTION @extschema@.observe(stream text, actual float8, predicted float8,
									 observed_at timestamptz DEFAULT now(),
									 benchmark float8 DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_observe'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION @extschema@.observe_loss(stream text, loss float8,
										  observed_at timestamptz DEFAULT now(),
										  benchmark_loss float8 DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_observe_loss'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
ALTER FUNCTION @extschema@.observe(text, float8, float8, timestamptz, float8)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.observe_loss(text, float8, timestamptz, float8)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION @extschema@.observe(text, float8, float8, timestamptz, float8),
	@extschema@.observe_loss(text, float8, timestamptz, float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.observe(text, float8, float8, timestamptz, float8),
	@extschema@.observe_loss(text, float8, timestamptz, float8)
	TO mlma_writer, mlma_admin;

CREATE FUNCTION @extschema@._evaluate_benchmark(
	method text, benchmark float8[], current float8[],
	OUT statistic float8, OUT p_value float8, OUT effect float8,
	OUT n_reference int, OUT n_current int,
	OUT reference_mean float8, OUT batch_mean float8)
RETURNS record
AS 'MODULE_PATHNAME', 'mlma_evaluate_benchmark'
LANGUAGE C IMMUTABLE PARALLEL SAFE CALLED ON NULL INPUT;
REVOKE ALL ON FUNCTION @extschema@._evaluate_benchmark(text, float8[], float8[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._evaluate_benchmark(text, float8[], float8[]) TO mlma_admin;

CREATE OR REPLACE FUNCTION @extschema@._validate_options(
	batch_size int, reference_size int, method text, alpha float8,
	loss text, loss_param float8, check_mode text, reference_policy text,
	min_effect float8, consecutive int, season_length int,
	max_model_age interval, model_version text, labels jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF batch_size IS NULL OR batch_size < 2 OR batch_size > 100000 THEN
		RAISE EXCEPTION 'batch_size must be between 2 and 100000'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('batch_size is %s.', coalesce(batch_size::text, 'NULL'));
	END IF;
	IF season_length IS NOT NULL AND (season_length < 2 OR season_length > 100000) THEN
		RAISE EXCEPTION 'season_length must be between 2 and 100000'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('season_length is %s.', season_length);
	END IF;
	IF reference_size IS NULL OR reference_size < 2 OR reference_size > 1000000 THEN
		RAISE EXCEPTION 'reference_size must be between 2 and 1000000'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('reference_size is %s.', coalesce(reference_size::text, 'NULL'));
	END IF;
	IF season_length IS NOT NULL AND reference_size < season_length THEN
		RAISE EXCEPTION 'reference_size must span at least one season'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('reference_size is %s, season_length is %s.',
							reference_size, season_length);
	END IF;
	IF method IS NULL OR method NOT IN ('welch', 'mann_whitney', 'ks', 'hac', 'dm') THEN
		RAISE EXCEPTION 'unknown method: %', coalesce(method, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use one of welch, mann_whitney, ks, hac, dm.';
	END IF;
	IF method = 'dm' AND season_length IS NULL AND reference_size <> batch_size
		AND reference_policy IS DISTINCT FROM 'benchmark' THEN
		RAISE EXCEPTION 'method dm requires season_length or reference_size equal to batch_size'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('batch_size is %s, reference_size is %s.',
							batch_size, reference_size),
			HINT = 'dm pairs each observation with a reference loss by position.';
	END IF;
	IF alpha IS NULL OR NOT (alpha > 0 AND alpha < 1) THEN
		RAISE EXCEPTION 'alpha must be between 0 and 1 (exclusive)'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('alpha is %s.', coalesce(alpha::text, 'NULL'));
	END IF;
	PERFORM @extschema@._check_loss(loss, loss_param);
	IF check_mode IS NULL OR check_mode NOT IN ('eager', 'scheduled') THEN
		RAISE EXCEPTION 'unknown check_mode: %', coalesce(check_mode, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use eager or scheduled.';
	END IF;
	IF reference_policy IS NULL
		OR reference_policy NOT IN ('fixed', 'rolling', 'benchmark') THEN
		RAISE EXCEPTION 'unknown reference_policy: %', coalesce(reference_policy, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use fixed, rolling or benchmark.';
	END IF;
	IF min_effect IS NULL OR NOT (min_effect >= 0 AND min_effect < 'Infinity') THEN
		RAISE EXCEPTION 'min_effect must be a finite number at least 0'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('min_effect is %s.', coalesce(min_effect::text, 'NULL'));
	END IF;
	IF consecutive IS NULL OR consecutive < 1 OR consecutive > 1000 THEN
		RAISE EXCEPTION 'consecutive must be between 1 and 1000'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('consecutive is %s.', coalesce(consecutive::text, 'NULL'));
	END IF;
	IF max_model_age IS NOT NULL AND max_model_age <= interval '0' THEN
		RAISE EXCEPTION 'max_model_age must be positive'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('max_model_age is %s.', max_model_age);
	END IF;
	IF model_version IS NULL OR length(model_version) NOT BETWEEN 1 AND 255 THEN
		RAISE EXCEPTION 'model_version must be 1 to 255 characters'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF labels IS NULL OR jsonb_typeof(labels) <> 'object' THEN
		RAISE EXCEPTION 'labels must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('labels is %s.', coalesce(labels::text, 'NULL'));
	END IF;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@.configure(
	name text,
	batch_size int DEFAULT NULL,
	reference_size int DEFAULT NULL,
	method text DEFAULT NULL,
	alpha float8 DEFAULT NULL,
	loss text DEFAULT NULL,
	loss_param float8 DEFAULT NULL,
	model_version text DEFAULT NULL,
	labels jsonb DEFAULT NULL,
	check_mode text DEFAULT NULL,
	reference_policy text DEFAULT NULL,
	min_effect float8 DEFAULT NULL,
	consecutive int DEFAULT NULL,
	season_length int DEFAULT NULL,
	max_model_age interval DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint := @extschema@._lock_stream(name);
	s		@extschema@.streams;
	n		@extschema@.streams;
BEGIN
	SELECT * INTO s FROM @extschema@.streams WHERE stream_id = v_id;
	n := s;
	n.batch_size := coalesce(configure.batch_size, s.batch_size);
	n.season_length := coalesce(configure.season_length, s.season_length);
	n.reference_size := coalesce(configure.reference_size, s.reference_size);
	n.method := coalesce(configure.method, s.method);
	n.alpha := coalesce(configure.alpha, s.alpha);
	n.loss := coalesce(configure.loss, s.loss);
	-- a new loss kind starts without the old kind's parameter
	n.loss_param := CASE WHEN configure.loss IS NOT NULL
						 THEN configure.loss_param
						 ELSE coalesce(configure.loss_param, s.loss_param) END;
	n.model_version := coalesce(configure.model_version, s.model_version);
	n.labels := coalesce(configure.labels, s.labels);
	n.check_mode := coalesce(configure.check_mode, s.check_mode);
	n.reference_policy := coalesce(configure.reference_policy, s.reference_policy);
	n.min_effect := coalesce(configure.min_effect, s.min_effect);
	n.consecutive := coalesce(configure.consecutive, s.consecutive);
	n.max_model_age := coalesce(configure.max_model_age, s.max_model_age);

	PERFORM @extschema@._validate_options(n.batch_size, n.reference_size,
		n.method, n.alpha, n.loss, n.loss_param, n.check_mode,
		n.reference_policy, n.min_effect, n.consecutive, n.season_length,
		n.max_model_age, n.model_version, n.labels);

	UPDATE @extschema@.streams
	   SET batch_size = n.batch_size, reference_size = n.reference_size,
		   method = n.method, alpha = n.alpha, loss = n.loss,
		   loss_param = n.loss_param, labels = n.labels,
		   check_mode = n.check_mode, reference_policy = n.reference_policy,
		   min_effect = n.min_effect, consecutive = n.consecutive,
		   season_length = n.season_length, max_model_age = n.max_model_age
	 WHERE stream_id = v_id;
	UPDATE @extschema@.stream_state SET config_version = config_version + 1
	 WHERE stream_id = v_id;

	-- switching to the benchmark policy: the challenger's losses are the
	-- reference, the live one is dropped and nothing warms; switching away
	-- from it: a new reference warms from the open batch on
	IF n.reference_policy <> s.reference_policy
		AND 'benchmark' IN (n.reference_policy, s.reference_policy) THEN
		DELETE FROM @extschema@.reference_batches WHERE stream_id = v_id;
		IF s.reference_policy = 'benchmark' THEN
			UPDATE @extschema@.stream_state
			   SET version_start_seq = open_start_seq, streak = 0
			 WHERE stream_id = v_id;
		ELSE
			UPDATE @extschema@.stream_state SET streak = 0
			 WHERE stream_id = v_id;
		END IF;
	END IF;

	-- deploying another model version by hand starts a new reference
	IF n.model_version <> s.model_version THEN
		PERFORM @extschema@._start_version(v_id, n.model_version);
	END IF;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@._store_reference(p_stream_id bigint, p_source text,
	p_losses float8[], p_seqs int8[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s		@extschema@.streams;
	st		@extschema@.stream_state;
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
	INSERT INTO @extschema@.reference_batches AS r
		(stream_id, version_no, model_version, source, losses, seqs, end_seq, mean)
	VALUES (p_stream_id, st.version_no, s.model_version, p_source, p_losses, p_seqs,
			(SELECT max(q) + 1 FROM unnest(p_seqs) q),
			(SELECT avg(l) FROM unnest(p_losses) l))
	ON CONFLICT (stream_id) DO UPDATE
	   SET version_no = excluded.version_no, model_version = excluded.model_version,
		   source = excluded.source, losses = excluded.losses, seqs = excluded.seqs,
		   end_seq = excluded.end_seq, mean = excluded.mean, built_at = now();
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@.evaluate_batch(stream_id bigint, batch_no int)
RETURNS TABLE (statistic float8, p_value float8, effect float8,
			   n_reference int, n_current int,
			   reference_mean float8, batch_mean float8)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT e.*
	  FROM @extschema@.batches b
	  JOIN @extschema@.streams s USING (stream_id)
	  LEFT JOIN @extschema@.reference_batches r USING (stream_id),
		   LATERAL (SELECT x.*
					  FROM @extschema@._evaluate(s.method, r.losses, r.seqs, b.losses,
												  b.first_seq, s.season_length) x
					 WHERE s.reference_policy <> 'benchmark' AND r.stream_id IS NOT NULL
					UNION ALL
					SELECT y.*
					  FROM @extschema@._evaluate_benchmark(s.method, b.benchmark_losses,
															b.losses) y
					 WHERE s.reference_policy = 'benchmark') e
	 WHERE b.stream_id = evaluate_batch.stream_id
	   AND b.batch_no = evaluate_batch.batch_no
$$;

CREATE OR REPLACE FUNCTION @extschema@._close_batch(p_stream_id bigint, p_partial bool DEFAULT false)
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
			RETURNING seq, observed_at, loss, benchmark_loss),
		 f AS (SELECT seq, observed_at, loss, benchmark_loss,
					  first_value(observed_at) OVER (ORDER BY seq) AS t0
				 FROM d)
	SELECT array_agg(loss ORDER BY seq),
		   array_agg(greatest(-2147483648, least(2147483647,
					 floor(extract(epoch FROM observed_at - t0))))::int4 ORDER BY seq),
		   min(seq), min(t0), (array_agg(observed_at ORDER BY seq DESC))[1],
		   CASE WHEN count(benchmark_loss) > 0
				THEN array_agg(benchmark_loss ORDER BY seq) END
	  INTO v_l, v_off, v_first, v_t0, v_t1, v_bl
	  FROM f;
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
			PERFORM @extschema@._set_reference_seqs(p_stream_id, c.version_start_seq,
				c.version_start_seq + c.reference_size, 'warmup');
		END IF;
		-- scheduled: the check waits for run_checks()
		IF v_role = 'test' AND NOT c.paused THEN
			INSERT INTO @extschema@.checks
				(stream_id, model_version, batch_no, method, alpha, check_mode, status)
			VALUES (p_stream_id, c.model_version, c.batch_no, c.method, c.alpha,
					c.check_mode, 'waiting');
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
				 status, n_reference, n_current, checked_at)
			VALUES (p_stream_id, c.model_version, c.batch_no, c.method, c.alpha,
					'eager', 'skipped', e.n_reference, e.n_current, now());
			RETURN;
		END IF;
	ELSE
		SELECT * INTO e FROM @extschema@._evaluate(c.method, c.ref_losses, c.ref_seqs,
												   v_l, v_first, c.season_length);
	END IF;
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

CREATE OR REPLACE VIEW @extschema@.stream_status AS
SELECT s.stream_id,
	   s.name,
	   s.labels,
	   CASE WHEN s.paused THEN 'paused'
			WHEN q.status = 'claimed' OR q.reason = 'manual' THEN 'retraining'
			WHEN q.status = 'pending' THEN 'drift'
			WHEN r.stream_id IS NULL AND s.reference_policy <> 'benchmark' THEN 'warming'
			ELSE 'monitoring' END AS state,
	   s.model_version,
	   s.version_started_at,
	   s.method,
	   s.check_mode,
	   s.batch_size,
	   r.mean AS reference_mean,
	   r.source AS reference_source,
	   cardinality(r.losses) AS reference_n,
	   st.batch_no,
	   o.batch_n,
	   o.batch_mean,
	   st.open_start_seq + o.batch_n AS observations,
	   st.streak,
	   c.p_value AS last_p_value,
	   c.effect AS last_effect,
	   c.drift AS last_drift,
	   c.checked_at AS last_checked_at,
	   q.request_id AS open_request_id,
	   (SELECT count(*)
		  FROM @extschema@.retrain_requests rr
		 WHERE rr.stream_id = s.stream_id AND rr.status = 'completed'
		   AND rr.finished_at > now() - interval '30 days') AS retrains_30d,
	   s.reference_policy,
	   o.batch_benchmark_mean,
	   o.batch_benchmark_n,
	   c.reference_mean AS last_reference_mean,
	   c.batch_mean AS last_batch_mean
  FROM @extschema@.streams s
  JOIN @extschema@.stream_state st USING (stream_id)
  LEFT JOIN @extschema@.reference_batches r USING (stream_id)
  LEFT JOIN @extschema@.retrain_requests q
		 ON q.stream_id = s.stream_id AND q.status IN ('pending', 'claimed')
  LEFT JOIN LATERAL (SELECT count(*)::int AS batch_n, avg(ob.loss) AS batch_mean,
							avg(ob.benchmark_loss) AS batch_benchmark_mean,
							count(ob.benchmark_loss)::int AS batch_benchmark_n
					   FROM @extschema@.observations ob
					  WHERE ob.stream_id = s.stream_id) o ON true
  LEFT JOIN LATERAL (SELECT ck.p_value, ck.effect, ck.drift, ck.checked_at,
							ck.reference_mean, ck.batch_mean
					   FROM @extschema@.checks ck
					  WHERE ck.stream_id = s.stream_id AND ck.status = 'done'
					  ORDER BY ck.batch_no DESC
					  LIMIT 1) c ON true;
