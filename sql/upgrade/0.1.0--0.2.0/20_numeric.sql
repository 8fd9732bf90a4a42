-- numeric: the decision rule written once.  mlma._decide (C, the rule of
-- run_checks too) makes the eager decision of _close_batch; _finish_check,
-- which nothing calls any more, goes.
DROP FUNCTION @extschema@._finish_check(bigint, float8, float8, float8, float8,
	int, int, float8, float8, bool);

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

REVOKE ALL ON FUNCTION @extschema@._decide(float8, float8, float8, float8, int, int)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._decide(float8, float8, float8, float8, int, int)
	TO mlma_admin;

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
	SELECT * INTO e FROM @extschema@._evaluate(c.method, c.ref_losses, c.ref_seqs,
											   v_l, v_first, c.season_length);
	SELECT d.significant, d.streak, d.drift INTO v_sig, v_streak, v_drift
	  FROM @extschema@._decide(e.p_value, c.alpha, e.effect, c.min_effect,
							   c.streak, c.consecutive) d;

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

-- numeric: one vocabulary.  The method list of stream options comes from C
-- (the same list and error as mlma.welch_test & co.).
-- C helper: raises the error of an unknown method, from the list of the
-- numeric core (src/stats_sql.c), as every C caller does.
CREATE FUNCTION @extschema@._check_method(method text)
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_check_method'
LANGUAGE C CALLED ON NULL INPUT IMMUTABLE;

REVOKE ALL ON FUNCTION @extschema@._check_method(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._check_method(text) TO mlma_admin;

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
	PERFORM @extschema@._check_method(method);
	IF method = 'dm' AND season_length IS NULL AND reference_size <> batch_size THEN
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
	IF reference_policy IS NULL OR reference_policy NOT IN ('fixed', 'rolling') THEN
		RAISE EXCEPTION 'unknown reference_policy: %', coalesce(reference_policy, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use fixed or rolling.';
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
