-- mlma 0.1.0 -> 0.2.0: the approval gate of retrain requests and the
-- cancellation of running retrains (docs/agent.md).
--
--   streams.approval ('auto' | 'manual') and streams.approve_after: drift and
--   age requests of a 'manual' stream start as 'proposed' and wait for
--   approve() (or approve_after); dismissing a claimed request sends NOTIFY
--   mlma_cancel.

ALTER TABLE @extschema@.streams
	ADD COLUMN approval text NOT NULL DEFAULT 'auto'
		CHECK (approval IN ('auto', 'manual')),
	ADD COLUMN approve_after interval CHECK (approve_after > interval '0');

ALTER TABLE @extschema@.retrain_requests
	DROP CONSTRAINT retrain_requests_status_check,
	ADD CONSTRAINT retrain_requests_status_check
		CHECK (status IN ('proposed', 'pending', 'claimed', 'completed', 'failed', 'dismissed')),
	ADD COLUMN approved_at timestamptz,
	ADD COLUMN approved_by text;

DROP INDEX @extschema@.retrain_requests_open_idx;
CREATE UNIQUE INDEX retrain_requests_open_idx
	ON @extschema@.retrain_requests (stream_id)
	WHERE status IN ('proposed', 'pending', 'claimed');
DROP INDEX @extschema@.retrain_requests_queue_idx;
CREATE INDEX retrain_requests_queue_idx
	ON @extschema@.retrain_requests (requested_at, request_id)
	WHERE status IN ('proposed', 'pending', 'claimed');

-- new signatures
DROP FUNCTION @extschema@._validate_options(int, int, text, float8, text,
	float8, text, text, float8, int, int, interval, text, jsonb);
DROP FUNCTION @extschema@.create_stream(text, int, int, text, float8, text,
	float8, text, jsonb, text, text, float8, int, int, interval);
DROP FUNCTION @extschema@.configure(text, int, int, text, float8, text,
	float8, text, jsonb, text, text, float8, int, int, interval);
CREATE FUNCTION @extschema@._validate_options(
	batch_size int, reference_size int, method text, alpha float8,
	loss text, loss_param float8, check_mode text, reference_policy text,
	min_effect float8, consecutive int, season_length int,
	max_model_age interval, model_version text, labels jsonb,
	approval text DEFAULT 'auto', approve_after interval DEFAULT NULL)
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
	IF approval IS NULL OR approval NOT IN ('auto', 'manual') THEN
		RAISE EXCEPTION 'unknown approval: %', coalesce(approval, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use auto (agents retrain at once) or manual (requests wait for approve()).';
	END IF;
	IF approve_after IS NOT NULL AND approve_after <= interval '0' THEN
		RAISE EXCEPTION 'approve_after must be positive'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('approve_after is %s.', approve_after);
	END IF;
END;
$$;
CREATE FUNCTION @extschema@.create_stream(
	name text,
	batch_size int DEFAULT 96,
	reference_size int DEFAULT NULL,
	method text DEFAULT 'welch',
	alpha float8 DEFAULT 0.05,
	loss text DEFAULT 'absolute',
	loss_param float8 DEFAULT NULL,
	model_version text DEFAULT 'v1',
	labels jsonb DEFAULT '{}',
	check_mode text DEFAULT 'eager',
	reference_policy text DEFAULT 'fixed',
	min_effect float8 DEFAULT 1.0,
	consecutive int DEFAULT 1,
	season_length int DEFAULT NULL,
	max_model_age interval DEFAULT NULL,
	approval text DEFAULT 'auto',
	approve_after interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id		bigint;
	v_refsize	int := coalesce(reference_size, season_length, batch_size);
BEGIN
	PERFORM @extschema@._check_stream_name(name);
	PERFORM @extschema@._validate_options(batch_size, v_refsize, method, alpha,
		loss, loss_param, check_mode, reference_policy, min_effect, consecutive,
		season_length, max_model_age, model_version, labels, approval,
		approve_after);

	INSERT INTO @extschema@.streams AS s
		(name, batch_size, reference_size, method, alpha, loss, loss_param,
		 model_version, labels, check_mode, reference_policy, min_effect,
		 consecutive, season_length, max_model_age, approval, approve_after)
	VALUES (create_stream.name, create_stream.batch_size, v_refsize,
			create_stream.method, create_stream.alpha, create_stream.loss,
			create_stream.loss_param, create_stream.model_version,
			create_stream.labels, create_stream.check_mode,
			create_stream.reference_policy, create_stream.min_effect,
			create_stream.consecutive, create_stream.season_length,
			create_stream.max_model_age, create_stream.approval,
			create_stream.approve_after)
	ON CONFLICT ON CONSTRAINT streams_name_key DO NOTHING
	RETURNING s.stream_id INTO v_id;

	IF v_id IS NULL THEN
		RAISE EXCEPTION 'stream "%" already exists', name
			USING ERRCODE = 'duplicate_object';
	END IF;
	INSERT INTO @extschema@.stream_state (stream_id) VALUES (v_id);
	RETURN v_id;
END;
$$;
CREATE FUNCTION @extschema@.configure(
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
	max_model_age interval DEFAULT NULL,
	approval text DEFAULT NULL,
	approve_after interval DEFAULT NULL)
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
	n.approval := coalesce(configure.approval, s.approval);
	-- approve_after => interval '0' turns automatic approval off
	n.approve_after := CASE WHEN configure.approve_after = interval '0' THEN NULL
							ELSE coalesce(configure.approve_after, s.approve_after) END;

	PERFORM @extschema@._validate_options(n.batch_size, n.reference_size,
		n.method, n.alpha, n.loss, n.loss_param, n.check_mode,
		n.reference_policy, n.min_effect, n.consecutive, n.season_length,
		n.max_model_age, n.model_version, n.labels, n.approval,
		n.approve_after);

	UPDATE @extschema@.streams
	   SET batch_size = n.batch_size, reference_size = n.reference_size,
		   method = n.method, alpha = n.alpha, loss = n.loss,
		   loss_param = n.loss_param, labels = n.labels,
		   check_mode = n.check_mode, reference_policy = n.reference_policy,
		   min_effect = n.min_effect, consecutive = n.consecutive,
		   season_length = n.season_length, max_model_age = n.max_model_age,
		   approval = n.approval, approve_after = n.approve_after
	 WHERE stream_id = v_id;
	UPDATE @extschema@.stream_state SET config_version = config_version + 1
	 WHERE stream_id = v_id;

	-- turning the approval gate off approves what waits behind it
	IF n.approval = 'auto' AND s.approval = 'manual' THEN
		PERFORM @extschema@.approve(q.request_id)
		   FROM @extschema@.retrain_requests q
		  WHERE q.stream_id = v_id AND q.status = 'proposed';
	END IF;

	-- deploying another model version by hand starts a new reference
	IF n.model_version <> s.model_version THEN
		PERFORM @extschema@._start_version(v_id, n.model_version);
	END IF;
END;
$$;

-- changed bodies

-- new functions
CREATE FUNCTION @extschema@._approve_due()
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_cand	record;
	v_n		int := 0;
BEGIN
	FOR v_cand IN
		SELECT q.request_id, q.stream_id
		  FROM @extschema@.retrain_requests q
		  JOIN @extschema@.streams s ON s.stream_id = q.stream_id
		 WHERE q.status = 'proposed'
		   AND s.approve_after IS NOT NULL
		   AND q.requested_at + s.approve_after <= now()
		 ORDER BY q.requested_at, q.request_id
	LOOP
		-- stream first, then request, as every writer does
		CONTINUE WHEN NOT @extschema@._try_lock_stream_id(v_cand.stream_id);
		UPDATE @extschema@.retrain_requests q
		   SET status = 'pending', approved_at = now(), approved_by = 'approve_after'
		 WHERE q.request_id = (SELECT x.request_id
								 FROM @extschema@.retrain_requests x
								WHERE x.request_id = v_cand.request_id
								  AND x.status = 'proposed'
								  FOR UPDATE SKIP LOCKED);
		IF FOUND THEN
			PERFORM pg_notify('mlma_retrain', @extschema@._notify_payload(v_cand.request_id));
			v_n := v_n + 1;
		END IF;
	END LOOP;
	RETURN v_n;
END;
$$;
CREATE FUNCTION @extschema@.approve(request_id bigint, note text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
BEGIN
	r := @extschema@._lock_open_request(request_id, 'approve');
	IF r.status <> 'proposed' THEN
		RAISE EXCEPTION 'cannot approve retrain request %: it is %', r.request_id, r.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = 'Only proposed requests wait for approval.';
	END IF;
	UPDATE @extschema@.retrain_requests q
	   SET status = 'pending', approved_at = now(), approved_by = session_user,
		   note = coalesce(approve.note, q.note)
	 WHERE q.request_id = r.request_id;
	PERFORM pg_notify('mlma_retrain', @extschema@._notify_payload(r.request_id));
END;
$$;

-- privileges: as in 90_roles.sql (CREATE OR REPLACE keeps the grants but
-- not SECURITY DEFINER)
ALTER FUNCTION @extschema@.claim_retrain(text, interval) SECURITY DEFINER;
REVOKE ALL ON FUNCTION
	@extschema@._validate_options(int, int, text, float8, text, float8, text,
		text, float8, int, int, interval, text, jsonb, text, interval),
	@extschema@.create_stream(text, int, int, text, float8, text, float8, text,
		jsonb, text, text, float8, int, int, interval, text, interval),
	@extschema@.configure(text, int, int, text, float8, text, float8, text,
		jsonb, text, text, float8, int, int, interval, text, interval),
	@extschema@._approve_due(),
	@extschema@.approve(bigint, text)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@._validate_options(int, int, text, float8, text, float8, text,
		text, float8, int, int, interval, text, jsonb, text, interval),
	@extschema@.create_stream(text, int, int, text, float8, text, float8, text,
		jsonb, text, text, float8, int, int, interval, text, interval),
	@extschema@.configure(text, int, int, text, float8, text, float8, text,
		jsonb, text, text, float8, int, int, interval, text, interval),
	@extschema@._approve_due(),
	@extschema@.approve(bigint, text)
	TO mlma_admin;
