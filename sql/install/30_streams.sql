-- mlma: stream management and ingestion
--
-- create_stream, configure, drop_stream, pause, resume, attach, detach and
-- the C entry points observe / observe_loss.  Every option is validated by
-- _validate_options before anything is stored.

-- C helper: raises a clear error when the loss kind is unknown or its
-- parameter is invalid (src/stream.c).
CREATE FUNCTION @extschema@._check_loss(loss text, loss_param float8)
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_check_loss'
LANGUAGE C CALLED ON NULL INPUT STABLE;

-- C helper: raises the error of an unknown method, from the list of the
-- numeric core (src/stats_sql.c), as every C caller does.
CREATE FUNCTION @extschema@._check_method(method text)
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_check_method'
LANGUAGE C CALLED ON NULL INPUT IMMUTABLE;

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
	PERFORM @extschema@._check_method(method);
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

-- C helper: this backend forgets its cached stream configuration and
-- per-transaction ingestion state (src/stream.c).  Called by every function
-- that changes a stream outside the hot path.
CREATE FUNCTION @extschema@._invalidate_cache()
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_invalidate_cache'
LANGUAGE C VOLATILE;

-- C helper: the stream's writer lock, held to the end of the transaction
-- (src/stream.c).  Every function that changes a stream's open batch or
-- state takes it, after the hot path's writers.
CREATE FUNCTION @extschema@._lock_stream_id(stream_id bigint)
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_lock_stream_sql'
LANGUAGE C STRICT VOLATILE;

-- The same lock, only if it is free at once (true), else false and no lock.
CREATE FUNCTION @extschema@._try_lock_stream_id(stream_id bigint)
RETURNS bool
AS 'MODULE_PATHNAME', 'mlma_try_lock_stream_sql'
LANGUAGE C STRICT VOLATILE;

-- Stream names: 1 to 255 characters without leading or trailing
-- whitespace.  Otherwise the bytes are kept as given: names that look alike
-- (NFC and NFD forms, zero-width or control characters) are different
-- streams.  The hot path applies the same rule (mlma_stream_name_problem).
CREATE FUNCTION @extschema@._check_stream_name(name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
AS $$
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'stream name must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF length(name) NOT BETWEEN 1 AND 255 THEN
		RAISE EXCEPTION 'stream name must be 1 to 255 characters'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('The name has %s characters.', length(name));
	END IF;
	IF name ~ '^[ \t\n\v\f\r]' OR name ~ '[ \t\n\v\f\r]$' THEN
		RAISE EXCEPTION 'stream name must not begin or end with whitespace'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('The name is %L.', name);
	END IF;
END;
$$;

-- The id of the stream of this name: the first 63 bits of the SHA-256 of
-- the name's UTF-8 bytes, as a positive bigint (0 becomes 1).  The same on
-- every node, in every database encoding and on every platform, so a
-- distributed cluster needs no shared sequence.  Streams created by 0.1.0
-- keep the ids its sequence gave them.
CREATE FUNCTION @extschema@._derive_stream_id(name text)
RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT greatest(1, ('x' || left(encode(sha256(convert_to(name, 'UTF8')), 'hex'), 16))::bit(64)::bigint
					   & 9223372036854775807)
$$;

-- Inserts a validated stream (its streams row o: the options and the
-- name; ids, flags and times unset) and its state row.  Returns the new
-- stream's id, or NULL when a stream of that name exists (also one
-- created by a concurrent transaction that committed first).  A different
-- stream that holds the id derived from the name (a hash collision, or a
-- stream of 0.1.0 numbered by its sequence) is an error, never a merge.
-- A new stream's config_version starts at a random value in [1, 2^30] (from
-- gen_random_uuid(), which leaves the session's setseed() sequence alone):
-- a backend that still caches a dropped stream of the same name (and so the
-- same id) sees another config_version and reloads (src/stream.c).
CREATE FUNCTION @extschema@._insert_stream(o @extschema@.streams)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint := @extschema@._derive_stream_id(o.name);
	v_other	text;
BEGIN
	INSERT INTO @extschema@.streams AS s
		(stream_id, name, batch_size, reference_size, method, alpha, loss,
		 loss_param, model_version, labels, check_mode, reference_policy,
		 min_effect, consecutive, season_length, max_model_age, approval,
		 approve_after)
	VALUES (v_id, o.name, o.batch_size, o.reference_size, o.method, o.alpha,
			o.loss, o.loss_param, o.model_version, o.labels, o.check_mode,
			o.reference_policy, o.min_effect, o.consecutive, o.season_length,
			o.max_model_age, o.approval, o.approve_after)
	ON CONFLICT DO NOTHING;
	IF FOUND THEN
		INSERT INTO @extschema@.stream_state (stream_id, config_version)
		VALUES (v_id, 1 + (('x' || left(gen_random_uuid()::text, 8))::bit(32)::int
						   & 1073741823));
		RETURN v_id;
	END IF;

	PERFORM 1 FROM @extschema@.streams s WHERE s.name = o.name;
	IF FOUND THEN
		RETURN NULL;
	END IF;
	SELECT s.name INTO v_other FROM @extschema@.streams s WHERE s.stream_id = v_id;
	RAISE EXCEPTION 'stream id % of stream "%" is taken by stream "%"',
		v_id, o.name, v_other
		USING ERRCODE = 'unique_violation',
		DETAIL = 'A stream''s id is derived from its name; two names gave the same id.',
		HINT = 'Choose another name for the new stream, or drop the other stream first.';
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
	o			@extschema@.streams;
BEGIN
	PERFORM @extschema@._check_stream_name(name);
	PERFORM @extschema@._validate_options(batch_size, v_refsize, method, alpha,
		loss, loss_param, check_mode, reference_policy, min_effect, consecutive,
		season_length, max_model_age, model_version, labels, approval,
		approve_after);

	o.name := create_stream.name;
	o.batch_size := create_stream.batch_size;
	o.reference_size := v_refsize;
	o.method := create_stream.method;
	o.alpha := create_stream.alpha;
	o.loss := create_stream.loss;
	o.loss_param := create_stream.loss_param;
	o.model_version := create_stream.model_version;
	o.labels := create_stream.labels;
	o.check_mode := create_stream.check_mode;
	o.reference_policy := create_stream.reference_policy;
	o.min_effect := create_stream.min_effect;
	o.consecutive := create_stream.consecutive;
	o.season_length := create_stream.season_length;
	o.max_model_age := create_stream.max_model_age;
	o.approval := create_stream.approval;
	o.approve_after := create_stream.approve_after;
	v_id := @extschema@._insert_stream(o);
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'stream "%" already exists', name
			USING ERRCODE = 'duplicate_object';
	END IF;
	RETURN v_id;
END;
$$;

-- The options an attachment's defaults give a stream it creates: the
-- defaults' values, create_stream's defaults for the keys they leave out,
-- as a streams row (name and ids unset).  Casts of malformed values raise.
CREATE FUNCTION @extschema@._options_from_defaults(defaults jsonb)
RETURNS @extschema@.streams
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	d		jsonb := coalesce(defaults, '{}');
	o		@extschema@.streams;
BEGIN
	o.batch_size := coalesce((d->>'batch_size')::int, 96);
	o.season_length := (d->>'season_length')::int;
	o.reference_size := coalesce((d->>'reference_size')::int, o.season_length, o.batch_size);
	o.method := coalesce(d->>'method', 'welch');
	o.alpha := coalesce((d->>'alpha')::float8, 0.05);
	o.loss := coalesce(d->>'loss', 'absolute');
	o.loss_param := (d->>'loss_param')::float8;
	o.model_version := coalesce(d->>'model_version', 'v1');
	o.labels := coalesce(d->'labels', '{}');
	o.check_mode := coalesce(d->>'check_mode', 'eager');
	o.reference_policy := coalesce(d->>'reference_policy', 'fixed');
	o.min_effect := coalesce((d->>'min_effect')::float8, 1.0);
	o.consecutive := coalesce((d->>'consecutive')::int, 1);
	o.max_model_age := (d->>'max_model_age')::interval;
	o.approval := coalesce(d->>'approval', 'auto');
	o.approve_after := (d->>'approve_after')::interval;
	RETURN o;
END;
$$;

-- Creates a stream seen for the first time by an attached table, with the
-- attachment's defaults.  Returns the stream id, also when a concurrent
-- transaction created the same name first.
CREATE FUNCTION @extschema@._auto_create_stream(name text, defaults jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	o		@extschema@.streams := @extschema@._options_from_defaults(defaults);
	v_id	bigint;
BEGIN
	PERFORM @extschema@._check_stream_name(name);
	o.name := _auto_create_stream.name;
	v_id := @extschema@._insert_stream(o);
	IF v_id IS NULL THEN
		SELECT s.stream_id INTO v_id FROM @extschema@.streams s
		 WHERE s.name = _auto_create_stream.name;
	END IF;
	RETURN v_id;
END;
$$;

-- Checks that defaults (attach) only uses create_stream option names with
-- valid values; raises a clear error otherwise.
CREATE FUNCTION @extschema@._validate_defaults(defaults jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	d		jsonb := coalesce(defaults, '{}');
	k		text;
	o		@extschema@.streams;
BEGIN
	IF jsonb_typeof(d) <> 'object' THEN
		RAISE EXCEPTION 'defaults must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF d ? 'create_streams' AND jsonb_typeof(d->'create_streams') <> 'boolean' THEN
		RAISE EXCEPTION 'create_streams in defaults must be true or false'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('create_streams is %s.', d->'create_streams');
	END IF;
	FOR k IN SELECT jsonb_object_keys(d) LOOP
		CONTINUE WHEN k = 'create_streams';
		IF k NOT IN ('batch_size', 'reference_size', 'method', 'alpha', 'loss',
					 'loss_param', 'model_version', 'labels', 'check_mode',
					 'reference_policy', 'min_effect', 'consecutive',
					 'season_length', 'max_model_age', 'approval',
					 'approve_after') THEN
			RAISE EXCEPTION 'unknown option in defaults: %', k
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'defaults takes the option names of create_stream and create_streams.';
		END IF;
	END LOOP;
	BEGIN
		o := @extschema@._options_from_defaults(d);
		PERFORM @extschema@._validate_options(o.batch_size, o.reference_size,
			o.method, o.alpha, o.loss, o.loss_param, o.check_mode,
			o.reference_policy, o.min_effect, o.consecutive, o.season_length,
			o.max_model_age, o.model_version, o.labels, o.approval,
			o.approve_after);
	EXCEPTION
		WHEN invalid_text_representation OR datetime_field_overflow
			OR invalid_datetime_format OR numeric_value_out_of_range THEN
			RAISE EXCEPTION 'invalid value in defaults: %', SQLERRM
				USING ERRCODE = 'invalid_parameter_value';
	END;
END;
$$;

-- Locks the stream's state row and returns its id; unknown name -> 42704.
CREATE FUNCTION @extschema@._lock_stream(name text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint;
BEGIN
	IF name IS NULL THEN
		RAISE EXCEPTION 'stream must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT s.stream_id INTO v_id FROM @extschema@.streams s
	 WHERE s.name = _lock_stream.name;
	IF v_id IS NULL THEN
		RAISE EXCEPTION 'stream "%" does not exist', name
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM @extschema@._lock_stream_id(v_id);
	PERFORM 1 FROM @extschema@.stream_state WHERE stream_id = v_id FOR UPDATE;
	PERFORM @extschema@._invalidate_cache();
	RETURN v_id;
END;
$$;

-- The batches of a stream queued for run_checks() can no longer be tested
-- (a new model version, or a reference that does not fit new settings):
-- they leave the queue and are recorded as skipped checks.
CREATE FUNCTION @extschema@._skip_queued_checks(p_stream_id bigint)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
	WITH q AS (DELETE FROM @extschema@.check_queue WHERE stream_id = p_stream_id
			   RETURNING batch_no, queued_at)
	INSERT INTO @extschema@.checks
		(stream_id, model_version, batch_no, method, alpha, check_mode, status,
		 created_at, checked_at)
	SELECT p_stream_id, b.model_version, q.batch_no, s.method, s.alpha,
		   'scheduled', 'skipped', q.queued_at, now()
	  FROM q
	  JOIN @extschema@.batches b ON b.stream_id = p_stream_id AND b.batch_no = q.batch_no
	  JOIN @extschema@.streams s ON s.stream_id = p_stream_id
$$;

-- Starts a new model version: the open batch is closed as 'partial', the
-- reference is dropped and the new version warms its own.  The caller holds
-- the stream's writer lock.
CREATE FUNCTION @extschema@._start_version(p_stream_id bigint, p_model_version text)
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
	PERFORM @extschema@._skip_queued_checks(p_stream_id);
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

	-- dm without season_length pairs the batch with the reference by
	-- position: a live reference of another length cannot serve the new
	-- settings, so it is dropped and the stream warms again from its open
	-- batch (checks would otherwise never be testable)
	IF n.model_version = s.model_version AND n.method = 'dm'
		AND n.season_length IS NULL AND n.reference_policy <> 'benchmark'
		AND EXISTS (SELECT 1 FROM @extschema@.reference_batches r
					 WHERE r.stream_id = v_id
					   AND cardinality(r.losses) <> n.batch_size) THEN
		DELETE FROM @extschema@.reference_batches WHERE stream_id = v_id;
		UPDATE @extschema@.stream_state
		   SET version_start_seq = open_start_seq, streak = 0
		 WHERE stream_id = v_id;
		PERFORM @extschema@._skip_queued_checks(v_id);
		RAISE NOTICE 'the reference of stream "%" does not fit the new settings: the stream warms again', name
			USING DETAIL = format('method dm pairs by position and batch_size is %s; the next %s observations become the reference.',
								  n.batch_size, n.reference_size);
	END IF;

	-- turning the approval gate off approves what waits behind it
	IF n.approval = 'auto' AND s.approval = 'manual' THEN
		PERFORM @extschema@.approve(q.request_id)
		   FROM @extschema@.retrain_requests q
		  WHERE q.stream_id = v_id AND q.status = 'proposed';
	END IF;

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

CREATE FUNCTION @extschema@.drop_stream(name text)
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
	DELETE FROM @extschema@.open_runs WHERE stream_id = v_id;
	DELETE FROM @extschema@.batches WHERE stream_id = v_id;
	DELETE FROM @extschema@.reference_batches WHERE stream_id = v_id;
	DELETE FROM @extschema@.reference_history WHERE stream_id = v_id;
	DELETE FROM @extschema@.checks WHERE stream_id = v_id;
	DELETE FROM @extschema@.retrain_requests WHERE stream_id = v_id;
	DELETE FROM @extschema@.stream_state WHERE stream_id = v_id;
	DELETE FROM @extschema@.streams WHERE stream_id = v_id;
END;
$$;

-- A paused stream keeps recording observations and closing batches, but
-- runs no check and raises no drift or age request.
CREATE FUNCTION @extschema@.pause(stream text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint := @extschema@._lock_stream(stream);
BEGIN
	UPDATE @extschema@.streams SET paused = true WHERE stream_id = v_id;
	UPDATE @extschema@.stream_state SET config_version = config_version + 1
	 WHERE stream_id = v_id;
END;
$$;

CREATE FUNCTION @extschema@.resume(stream text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint := @extschema@._lock_stream(stream);
BEGIN
	UPDATE @extschema@.streams SET paused = false WHERE stream_id = v_id;
	UPDATE @extschema@.stream_state SET config_version = config_version + 1, streak = 0
	 WHERE stream_id = v_id;
END;
$$;

-- Ingestion (src/ingest.c).  benchmark: a challenger's prediction of the
-- same actual (its loss is computed with the stream's loss function);
-- benchmark_loss: the challenger's loss.  Required by the benchmark
-- reference policy, stored for any stream when given.
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

-- Many observations in one call (src/ingest_bulk.c): element i of the
-- arrays is observe(streams[i], actuals[i], predicted[i], observed_at[i],
-- benchmarks[i]), recorded set-based as a multi-row statement on an
-- attached table is (each stream taken once, the batches the observations
-- fill closed and checked in C).  observed_at NULL: now() for all;
-- benchmarks NULL or a NULL element: no benchmark value.  Each stream's
-- observations are recorded in array order.  Any invalid observation
-- raises its error and nothing is stored.  Returns the number recorded.
CREATE FUNCTION @extschema@.observe_many(streams text[], actuals float8[],
	predicted float8[], observed_at timestamptz[] DEFAULT NULL,
	benchmarks float8[] DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mlma_observe_many'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION @extschema@._observe_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'mlma_observe_trigger'
LANGUAGE C;

-- The statement triggers attach() installs (src/ingest_bulk.c): every row
-- of an INSERT, UPDATE or COPY, recorded set-based, stream by stream.
CREATE FUNCTION @extschema@._observe_statement_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'mlma_observe_statement_trigger'
LANGUAGE C;

-- attach: watch a user table.  Two statement triggers (INSERT and COPY;
-- UPDATE) receive the column names, the defaults, the benchmark column,
-- on_invalid and whether unknown streams are created (defaults key
-- create_streams, default true) as arguments; mlma.attachments lists the
-- mappings.  on_invalid 'skip' (the default) keeps the user's writes going:
-- a row that cannot be an observation is stored in the table, left out of
-- the monitoring and counted.
CREATE FUNCTION @extschema@.attach(source regclass, stream_column name,
	actual_column name, predicted_column name, time_column name DEFAULT NULL,
	defaults jsonb DEFAULT '{}', benchmark_column name DEFAULT NULL,
	on_invalid text DEFAULT 'skip')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_kind	"char";
	v_type	regtype;
	v_col	name;
	v_create bool;
BEGIN
	IF source IS NULL OR stream_column IS NULL OR actual_column IS NULL
		OR predicted_column IS NULL THEN
		RAISE EXCEPTION 'source, stream_column, actual_column and predicted_column must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF on_invalid IS NULL OR on_invalid NOT IN ('error', 'skip') THEN
		RAISE EXCEPTION 'on_invalid must be error or skip'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('on_invalid is %s.', coalesce(on_invalid, 'NULL'));
	END IF;
	SELECT c.relkind INTO v_kind FROM pg_class c WHERE c.oid = source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table with OID % does not exist', source::oid
			USING ERRCODE = 'undefined_table';
	END IF;
	IF v_kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', source
			USING ERRCODE = 'wrong_object_type';
	END IF;
	-- mappings of dropped tables whose OID came back
	PERFORM @extschema@._forget_dropped_attachments();
	IF EXISTS (SELECT 1 FROM @extschema@.attachments a WHERE a.source = attach.source) THEN
		RAISE EXCEPTION 'table "%" is already attached', source
			USING ERRCODE = 'duplicate_object',
			HINT = 'Call detach() first to change the mapping.';
	END IF;

	FOREACH v_col IN ARRAY ARRAY[stream_column, actual_column, predicted_column,
								 time_column, benchmark_column] LOOP
		CONTINUE WHEN v_col IS NULL;
		SELECT a.atttypid::regtype INTO v_type FROM pg_attribute a
		 WHERE a.attrelid = source AND a.attname = v_col
		   AND a.attnum > 0 AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'column "%" of table "%" does not exist', v_col, source
				USING ERRCODE = 'undefined_column';
		END IF;
		IF v_col = stream_column
			AND v_type NOT IN ('text'::regtype, 'character varying'::regtype) THEN
			RAISE EXCEPTION 'stream column "%" must be of type text or varchar, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		ELSIF v_col IN (actual_column, predicted_column, benchmark_column)
			AND v_col <> stream_column
			AND v_type NOT IN ('double precision'::regtype, 'real'::regtype,
							   'numeric'::regtype, 'integer'::regtype,
							   'bigint'::regtype, 'smallint'::regtype) THEN
			RAISE EXCEPTION 'column "%" must be of a numeric type, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		ELSIF v_col = time_column
			AND v_col NOT IN (stream_column, actual_column, predicted_column)
			AND v_type NOT IN ('timestamp with time zone'::regtype,
							   'timestamp without time zone'::regtype) THEN
			RAISE EXCEPTION 'time column "%" must be of type timestamptz or timestamp, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		END IF;
	END LOOP;
	IF stream_column IN (actual_column, predicted_column, time_column, benchmark_column)
		OR actual_column IN (predicted_column, time_column, benchmark_column)
		OR predicted_column IN (time_column, benchmark_column)
		OR time_column = benchmark_column THEN
		RAISE EXCEPTION 'the mapped columns must be distinct'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM @extschema@._validate_defaults(defaults);
	v_create := coalesce((defaults->>'create_streams')::bool, true);

	INSERT INTO @extschema@.attachments
		(source, stream_column, actual_column, predicted_column, time_column,
		 defaults, benchmark_column, on_invalid, create_streams)
	VALUES (source, stream_column, actual_column, predicted_column, time_column,
			coalesce(defaults, '{}'), benchmark_column, on_invalid, v_create);
	EXECUTE format('CREATE TRIGGER mlma_observe AFTER INSERT ON %1$s '
				   'REFERENCING NEW TABLE AS mlma_new FOR EACH STATEMENT '
				   'EXECUTE FUNCTION @extschema@._observe_statement_trigger(%2$L, %3$L, %4$L, %5$L, %6$L, %7$L, %8$L, %9$L); '
				   'CREATE TRIGGER mlma_observe_update AFTER UPDATE ON %1$s '
				   'REFERENCING OLD TABLE AS mlma_old NEW TABLE AS mlma_new FOR EACH STATEMENT '
				   'EXECUTE FUNCTION @extschema@._observe_statement_trigger(%2$L, %3$L, %4$L, %5$L, %6$L, %7$L, %8$L, %9$L)',
				   source, stream_column, actual_column, predicted_column,
				   coalesce(time_column, ''),
				   (coalesce(defaults, '{}') - 'create_streams')::text,
				   coalesce(benchmark_column, ''), on_invalid,
				   CASE WHEN v_create THEN 't' ELSE 'f' END);
END;
$$;

-- Removes the mappings of tables that no longer exist (or whose OID now
-- belongs to another table, without the trigger).  Returns how many.
CREATE FUNCTION @extschema@._forget_dropped_attachments()
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_n		int;
BEGIN
	DELETE FROM @extschema@.attachments a
	 WHERE NOT EXISTS (SELECT 1 FROM pg_trigger t
						WHERE t.tgrelid = a.source AND t.tgname = 'mlma_observe'
						  AND t.tgfoid IN ('@extschema@._observe_trigger()'::regprocedure,
										   '@extschema@._observe_statement_trigger()'::regprocedure));
	GET DIAGNOSTICS v_n = ROW_COUNT;
	RETURN v_n;
END;
$$;

-- Event trigger function: DROP TABLE of an attached table removes its
-- mapping (temporary tables dropped at the end of a session are removed
-- lazily by attach() and detach()).  SECURITY DEFINER: any role may drop
-- its own tables.
CREATE FUNCTION @extschema@._drop_attachments()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM @extschema@.attachments a
	 USING pg_event_trigger_dropped_objects() d
	 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
	   AND d.objid = a.source::oid;
END;
$$;

CREATE EVENT TRIGGER mlma_drop_attachments ON sql_drop
	WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
	EXECUTE FUNCTION @extschema@._drop_attachments();

CREATE FUNCTION @extschema@.detach(source regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF source IS NULL THEN
		RAISE EXCEPTION 'source must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	DELETE FROM @extschema@.attachments a WHERE a.source = detach.source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" is not attached', source
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM @extschema@._forget_dropped_attachments();
	-- the mapping of a table dropped without detach is removed by its oid
	IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = source) THEN
		EXECUTE format('DROP TRIGGER IF EXISTS mlma_observe ON %1$s; '
					   'DROP TRIGGER IF EXISTS mlma_observe_update ON %1$s', source);
	END IF;
END;
$$;
