-- Statistics: two-sample tests on loss batches, losses, multiple testing.
-- All are pure C functions.  "greater" means the current losses are larger
-- than the reference losses (the model got worse).

CREATE FUNCTION @extschema@.welch_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	OUT statistic float8, OUT p_value float8, OUT df float8)
RETURNS record
AS 'MODULE_PATHNAME', 'welch_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.welch_test(float8[], float8[], text) IS
'Welch unequal-variance t-test of current against reference (= scipy.stats.ttest_ind(current, reference, equal_var=False))';

CREATE FUNCTION @extschema@.mann_whitney_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	OUT statistic float8, OUT p_value float8)
RETURNS record
AS 'MODULE_PATHNAME', 'mann_whitney_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.mann_whitney_test(float8[], float8[], text) IS
'Mann-Whitney U test, statistic = U of current (= scipy.stats.mannwhitneyu(current, reference))';

CREATE FUNCTION @extschema@.ks_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	OUT statistic float8, OUT p_value float8)
RETURNS record
AS 'MODULE_PATHNAME', 'ks_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.ks_test(float8[], float8[], text) IS
'two-sample Kolmogorov-Smirnov test (= scipy.stats.ks_2samp(reference, current))';

-- hac_test and dm_test are not STRICT because a NULL lags means the default
-- floor(4 * (n/100)^(2/9)); a NULL batch or alternative still gives NULL.
CREATE FUNCTION @extschema@.hac_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	lags int DEFAULT NULL,
	OUT statistic float8, OUT p_value float8, OUT lags int)
RETURNS record
AS 'MODULE_PATHNAME', 'hac_test'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.hac_test(float8[], float8[], text, int) IS
'Welch-type z-test with Newey-West (Bartlett) long-run variances, for autocorrelated losses; lags NULL = floor(4 * (n/100)^(2/9)) per batch, clamped to n - 1; the lags returned are the larger of the two batches''';

CREATE FUNCTION @extschema@.dm_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	lags int DEFAULT NULL,
	OUT statistic float8, OUT p_value float8, OUT lags int)
RETURNS record
AS 'MODULE_PATHNAME', 'dm_test'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.dm_test(float8[], float8[], text, int) IS
'Diebold-Mariano test on current - reference, paired by position, Newey-West (Bartlett) long-run variance; lags NULL = floor(4 * (n/100)^(2/9)), clamped to n - 1';

-- loss is not STRICT: a NULL param means "no parameter".
CREATE FUNCTION @extschema@.loss(
	kind text, actual float8, predicted float8, param float8 DEFAULT NULL)
RETURNS float8
AS 'MODULE_PATHNAME', 'loss'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.loss(text, float8, float8, float8) IS
'loss of one forecast: squared, absolute, ape, sape, pinball (param tau), huber (param delta), poisson, logloss, zero_one';

CREATE FUNCTION @extschema@.bh_adjust(p_values float8[])
RETURNS float8[]
AS 'MODULE_PATHNAME', 'bh_adjust'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.bh_adjust(float8[]) IS
'Benjamini-Hochberg adjusted p-values in input order (= statsmodels multipletests(p, method=''fdr_bh'')[1])';
-- mlma: tables of the monitoring loop
--
-- Every table is keyed by stream_id first, so that a distributed PostgreSQL
-- (Citus, distributed by stream_id) could shard all of them the same way.
-- See docs/monitoring.md for how the loop uses them.

-- Configuration: one row per stream, every create_stream option.
CREATE TABLE @extschema@.streams (
	stream_id		bigserial PRIMARY KEY,
	name			text NOT NULL UNIQUE
		CHECK (length(name) BETWEEN 1 AND 255),
	batch_size		int NOT NULL CHECK (batch_size >= 2),
	reference_size	int NOT NULL CHECK (reference_size >= 2),
	method			text NOT NULL
		CHECK (method IN ('welch', 'mann_whitney', 'ks', 'hac', 'dm')),
	alpha			float8 NOT NULL CHECK (alpha > 0 AND alpha < 1),
	loss			text NOT NULL,
	loss_param		float8,
	model_version	text NOT NULL CHECK (model_version <> ''),
	labels			jsonb NOT NULL DEFAULT '{}'
		CHECK (jsonb_typeof(labels) = 'object'),
	check_mode		text NOT NULL CHECK (check_mode IN ('eager', 'scheduled')),
	reference_policy text NOT NULL
		CHECK (reference_policy IN ('fixed', 'rolling')),
	min_effect		float8 NOT NULL CHECK (min_effect >= 0),
	consecutive		int NOT NULL CHECK (consecutive >= 1),
	season_length	int CHECK (season_length >= 2),
	max_model_age	interval CHECK (max_model_age > interval '0'),
	paused			bool NOT NULL DEFAULT false,
	version_started_at timestamptz NOT NULL DEFAULT now(),
	created_at		timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX streams_labels_idx ON @extschema@.streams USING gin (labels);

-- State: one narrow row per stream, written when a batch closes and on
-- configuration changes (no indexed column changes and the fillfactor leaves
-- room on the page, so the updates are HOT).  Adding observations does not
-- write it: writers of a stream serialize on the stream's writer lock, a
-- heavyweight lock on (mlma.streams, stream_id) held to the end of the
-- transaction (src/stream.c), and keep their counters in memory.  Under
-- REPEATABLE READ the first observation also bumps touch_count so that
-- concurrent writers get a serialization failure.
CREATE TABLE @extschema@.stream_state (
	stream_id		bigint PRIMARY KEY,
	config_version	int NOT NULL DEFAULT 1,	-- bumped by every configuration change
	touch_count		bigint NOT NULL DEFAULT 0,	-- REPEATABLE READ writing transactions
	open_start_seq	bigint NOT NULL DEFAULT 0,	-- seq of the open batch's first observation
	batch_no		int NOT NULL DEFAULT 1,	-- number of the open batch
	version_no		int NOT NULL DEFAULT 1,	-- model versions deployed so far
	version_start_seq bigint NOT NULL DEFAULT 0,	-- first seq of this version
	streak			int NOT NULL DEFAULT 0,	-- significant batches in a row
	age_flagged		bool NOT NULL DEFAULT false	-- max_model_age request raised
) WITH (fillfactor = 50);

-- The open batch: one row per observation not yet in a closed batch.  seq is
-- the stream's observation number (0-based, never reset), so the seasonal
-- position of an observation is seq % season_length.
CREATE TABLE @extschema@.observations (
	stream_id		bigint NOT NULL,
	seq				bigint NOT NULL,
	observed_at		timestamptz NOT NULL,
	loss			float8 NOT NULL,
	PRIMARY KEY (stream_id, seq)
);

-- Closed batches, compact: the losses as one float8[] and the times as int4
-- second offsets from first_at, about 12 bytes per observation plus one row
-- header per batch.
CREATE TABLE @extschema@.batches (
	stream_id		bigint NOT NULL,
	batch_no		int NOT NULL,
	model_version	text NOT NULL,
	version_no		int NOT NULL,
	role			text NOT NULL
		CHECK (role IN ('reference', 'test', 'partial')),
	first_seq		bigint NOT NULL,
	first_at		timestamptz NOT NULL,
	last_at			timestamptz NOT NULL,
	losses			float8[] NOT NULL,
	offsets			int4[] NOT NULL,
	PRIMARY KEY (stream_id, batch_no)
);
ALTER TABLE @extschema@.batches ALTER COLUMN losses SET STORAGE MAIN;
ALTER TABLE @extschema@.batches ALTER COLUMN offsets SET STORAGE MAIN;

-- The live reference loss batch of each stream (at most one).  seqs holds the
-- observation number of each loss, which gives its seasonal position.
CREATE TABLE @extschema@.reference_batches (
	stream_id		bigint PRIMARY KEY,
	version_no		int NOT NULL,
	model_version	text NOT NULL,
	source			text NOT NULL
		CHECK (source IN ('warmup', 'rolling', 'pinned', 'accepted')),
	losses			float8[] NOT NULL,
	seqs			int8[] NOT NULL,
	end_seq			bigint NOT NULL,	-- 1 + the last seq the reference covers
	mean			float8 NOT NULL,
	built_at		timestamptz NOT NULL DEFAULT now()
);

-- One row per check of a closed batch.  status: 'waiting' (scheduled mode,
-- until run_checks() evaluates it), 'done', or 'skipped' (the model version
-- changed before the check ran).  significant: p-value (adjusted in
-- scheduled mode) at or below alpha and effect at or above min_effect; drift:
-- significant for `consecutive` batches in a row.
CREATE TABLE @extschema@.checks (
	check_id		bigserial PRIMARY KEY,
	stream_id		bigint NOT NULL,
	model_version	text NOT NULL,
	batch_no		int NOT NULL,
	method			text NOT NULL,
	alpha			float8 NOT NULL,
	check_mode		text NOT NULL,
	status			text NOT NULL DEFAULT 'done'
		CHECK (status IN ('waiting', 'done', 'skipped')),
	n_reference		int,
	n_current		int,
	reference_mean	float8,
	batch_mean		float8,
	statistic		float8,
	p_value			float8,
	p_adjusted		float8,
	effect			float8,
	significant		bool,
	drift			bool,
	created_at		timestamptz NOT NULL DEFAULT now(),
	checked_at		timestamptz,
	UNIQUE (stream_id, batch_no)
);
CREATE INDEX checks_waiting_idx ON @extschema@.checks (stream_id, batch_no)
	WHERE status = 'waiting';
CREATE INDEX checks_checked_at_idx ON @extschema@.checks (checked_at);

-- Retrain requests and their lifecycle:
-- pending -> claimed -> completed | failed, pending|claimed -> dismissed.
CREATE TABLE @extschema@.retrain_requests (
	request_id		bigserial PRIMARY KEY,
	stream_id		bigint NOT NULL,
	model_version	text NOT NULL,
	reason			text NOT NULL CHECK (reason IN ('drift', 'manual', 'age')),
	status			text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'claimed', 'completed', 'failed', 'dismissed')),
	p_value			float8,
	effect			float8,
	check_id		bigint,
	note			text,
	requested_at	timestamptz NOT NULL DEFAULT now(),
	claimed_by		text,
	claimed_at		timestamptz,
	lease_until		timestamptz,
	finished_at		timestamptz,
	new_model_version text,
	error			text
);
-- at most one open request per stream
CREATE UNIQUE INDEX retrain_requests_open_idx
	ON @extschema@.retrain_requests (stream_id)
	WHERE status IN ('pending', 'claimed');
CREATE INDEX retrain_requests_queue_idx
	ON @extschema@.retrain_requests (requested_at, request_id)
	WHERE status IN ('pending', 'claimed');
CREATE INDEX retrain_requests_stream_idx
	ON @extschema@.retrain_requests (stream_id, requested_at);

-- Tables watched by attach(): the mapping of their columns.
CREATE TABLE @extschema@.attachments (
	source			regclass PRIMARY KEY,
	stream_column	name NOT NULL,
	actual_column	name NOT NULL,
	predicted_column name NOT NULL,
	time_column		name,
	defaults		jsonb NOT NULL DEFAULT '{}',
	attached_at		timestamptz NOT NULL DEFAULT now()
);

-- configuration and history survive pg_dump / restore
SELECT pg_catalog.pg_extension_config_dump('@extschema@.streams', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.streams_stream_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stream_state', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.observations', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.batches', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reference_batches', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.checks', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.checks_check_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.retrain_requests', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.retrain_requests_request_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.attachments', '');
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

CREATE FUNCTION @extschema@._validate_options(
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
	max_model_age interval DEFAULT NULL)
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
		season_length, max_model_age, model_version, labels);

	INSERT INTO @extschema@.streams AS s
		(name, batch_size, reference_size, method, alpha, loss, loss_param,
		 model_version, labels, check_mode, reference_policy, min_effect,
		 consecutive, season_length, max_model_age)
	VALUES (create_stream.name, create_stream.batch_size, v_refsize,
			create_stream.method, create_stream.alpha, create_stream.loss,
			create_stream.loss_param, create_stream.model_version,
			create_stream.labels, create_stream.check_mode,
			create_stream.reference_policy, create_stream.min_effect,
			create_stream.consecutive, create_stream.season_length,
			create_stream.max_model_age)
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

-- Creates a stream seen for the first time by an attached table, with the
-- attachment's defaults.  Returns the stream id, also when a concurrent
-- transaction created the same name first.
CREATE FUNCTION @extschema@._auto_create_stream(name text, defaults jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	d		jsonb := coalesce(defaults, '{}');
	v_id	bigint;
	v_bs	int := coalesce((d->>'batch_size')::int, 96);
	v_sl	int := (d->>'season_length')::int;
BEGIN
	PERFORM @extschema@._check_stream_name(name);
	INSERT INTO @extschema@.streams AS s
		(name, batch_size, reference_size, method, alpha, loss, loss_param,
		 model_version, labels, check_mode, reference_policy, min_effect,
		 consecutive, season_length, max_model_age)
	VALUES (name, v_bs,
			coalesce((d->>'reference_size')::int, v_sl, v_bs),
			coalesce(d->>'method', 'welch'),
			coalesce((d->>'alpha')::float8, 0.05),
			coalesce(d->>'loss', 'absolute'),
			(d->>'loss_param')::float8,
			coalesce(d->>'model_version', 'v1'),
			coalesce(d->'labels', '{}'),
			coalesce(d->>'check_mode', 'eager'),
			coalesce(d->>'reference_policy', 'fixed'),
			coalesce((d->>'min_effect')::float8, 1.0),
			coalesce((d->>'consecutive')::int, 1),
			v_sl,
			(d->>'max_model_age')::interval)
	ON CONFLICT ON CONSTRAINT streams_name_key DO NOTHING
	RETURNING s.stream_id INTO v_id;

	IF v_id IS NULL THEN
		SELECT s.stream_id INTO v_id FROM @extschema@.streams s
		 WHERE s.name = _auto_create_stream.name;
	ELSE
		INSERT INTO @extschema@.stream_state (stream_id) VALUES (v_id);
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
	v_bs	int;
	v_sl	int;
BEGIN
	IF jsonb_typeof(d) <> 'object' THEN
		RAISE EXCEPTION 'defaults must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR k IN SELECT jsonb_object_keys(d) LOOP
		IF k NOT IN ('batch_size', 'reference_size', 'method', 'alpha', 'loss',
					 'loss_param', 'model_version', 'labels', 'check_mode',
					 'reference_policy', 'min_effect', 'consecutive',
					 'season_length', 'max_model_age') THEN
			RAISE EXCEPTION 'unknown option in defaults: %', k
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'defaults takes the option names of create_stream.';
		END IF;
	END LOOP;
	BEGIN
		v_bs := coalesce((d->>'batch_size')::int, 96);
		v_sl := (d->>'season_length')::int;
		PERFORM @extschema@._validate_options(v_bs,
			coalesce((d->>'reference_size')::int, v_sl, v_bs),
			coalesce(d->>'method', 'welch'),
			coalesce((d->>'alpha')::float8, 0.05),
			coalesce(d->>'loss', 'absolute'),
			(d->>'loss_param')::float8,
			coalesce(d->>'check_mode', 'eager'),
			coalesce(d->>'reference_policy', 'fixed'),
			coalesce((d->>'min_effect')::float8, 1.0),
			coalesce((d->>'consecutive')::int, 1),
			v_sl,
			(d->>'max_model_age')::interval,
			coalesce(d->>'model_version', 'v1'),
			coalesce(d->'labels', '{}'));
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
	UPDATE @extschema@.checks SET status = 'skipped'
	 WHERE stream_id = p_stream_id AND status = 'waiting';
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
	DELETE FROM @extschema@.observations WHERE stream_id = v_id;
	DELETE FROM @extschema@.batches WHERE stream_id = v_id;
	DELETE FROM @extschema@.reference_batches WHERE stream_id = v_id;
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

-- Ingestion (src/ingest.c)
CREATE FUNCTION @extschema@.observe(stream text, actual float8, predicted float8,
									 observed_at timestamptz DEFAULT now())
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_observe'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION @extschema@.observe_loss(stream text, loss float8,
										  observed_at timestamptz DEFAULT now())
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_observe_loss'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION @extschema@._observe_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'mlma_observe_trigger'
LANGUAGE C;

-- attach: watch a user table.  The row trigger receives the column names and
-- the defaults as arguments; mlma.attachments lists the mappings.
CREATE FUNCTION @extschema@.attach(source regclass, stream_column name,
	actual_column name, predicted_column name, time_column name DEFAULT NULL,
	defaults jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_kind	"char";
	v_type	regtype;
	v_col	name;
BEGIN
	IF source IS NULL OR stream_column IS NULL OR actual_column IS NULL
		OR predicted_column IS NULL THEN
		RAISE EXCEPTION 'source, stream_column, actual_column and predicted_column must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT c.relkind INTO v_kind FROM pg_class c WHERE c.oid = source;
	IF v_kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', source
			USING ERRCODE = 'wrong_object_type';
	END IF;
	IF EXISTS (SELECT 1 FROM @extschema@.attachments a WHERE a.source = attach.source) THEN
		RAISE EXCEPTION 'table "%" is already attached', source
			USING ERRCODE = 'duplicate_object',
			HINT = 'Call detach() first to change the mapping.';
	END IF;

	FOREACH v_col IN ARRAY ARRAY[stream_column, actual_column, predicted_column, time_column] LOOP
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
		ELSIF v_col IN (actual_column, predicted_column) AND v_col <> stream_column
			AND v_type NOT IN ('double precision'::regtype, 'real'::regtype,
							   'numeric'::regtype, 'integer'::regtype,
							   'bigint'::regtype, 'smallint'::regtype) THEN
			RAISE EXCEPTION 'column "%" must be of a numeric type, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		ELSIF v_col = time_column AND v_col NOT IN (stream_column, actual_column, predicted_column)
			AND v_type NOT IN ('timestamp with time zone'::regtype,
							   'timestamp without time zone'::regtype) THEN
			RAISE EXCEPTION 'time column "%" must be of type timestamptz or timestamp, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		END IF;
	END LOOP;
	IF stream_column IN (actual_column, predicted_column, time_column)
		OR actual_column IN (predicted_column, time_column)
		OR predicted_column = time_column THEN
		RAISE EXCEPTION 'the mapped columns must be distinct'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM @extschema@._validate_defaults(defaults);

	INSERT INTO @extschema@.attachments
		(source, stream_column, actual_column, predicted_column, time_column, defaults)
	VALUES (source, stream_column, actual_column, predicted_column, time_column,
			coalesce(defaults, '{}'));
	EXECUTE format('CREATE TRIGGER mlma_observe AFTER INSERT OR UPDATE ON %s '
				   'FOR EACH ROW EXECUTE FUNCTION @extschema@._observe_trigger(%L, %L, %L, %L, %L)',
				   source, stream_column, actual_column, predicted_column,
				   coalesce(time_column, ''), coalesce(defaults, '{}')::text);
END;
$$;

CREATE FUNCTION @extschema@.detach(source regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM @extschema@.attachments a WHERE a.source = detach.source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" is not attached', source
			USING ERRCODE = 'undefined_object';
	END IF;
	-- the mapping of a table dropped without detach is removed by its oid
	IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = source) THEN
		EXECUTE format('DROP TRIGGER IF EXISTS mlma_observe ON %s', source);
	END IF;
END;
$$;
-- mlma: closing batches, building references, checks and decisions
--
-- The C hot path (src/ingest.c) calls _close_batch when an observation fills
-- the open batch, inside the writer's transaction and while it holds the
-- stream's writer lock.  Scheduled checking (run_checks) reuses
-- evaluate_batch and _finish_check on the checks left 'waiting'.

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

-- The JSON payload of a retrain notification; always well below 8000 bytes:
-- stream names have at most 255 characters, model versions at most 255
-- (longer historical values are cut), and every string is JSON-escaped.
CREATE FUNCTION @extschema@._notify_payload(p_request_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT format('{"v":1,"request_id":%s,"stream_id":%s,"stream":%s,"model_version":%s,"reason":%s,"p_value":%s,"effect":%s}',
				  r.request_id, r.stream_id,
				  to_json(left(s.name, 255))::text,
				  to_json(left(r.model_version, 255))::text,
				  to_json(r.reason)::text,
				  CASE WHEN r.p_value IS NULL OR r.p_value IN ('NaN', 'Infinity', '-Infinity')
					   THEN 'null' ELSE to_json(r.p_value)::text END,
				  CASE WHEN r.effect IS NULL OR r.effect IN ('NaN', 'Infinity', '-Infinity')
					   THEN 'null' ELSE to_json(r.effect)::text END)
	  FROM @extschema@.retrain_requests r
	  JOIN @extschema@.streams s USING (stream_id)
	 WHERE r.request_id = p_request_id
$$;

-- Raises retrain requests for several streams at once (run_checks raises
-- all of a round's in one call): a stream that already has an open request
-- gets none.  Each new request sends NOTIFY mlma_retrain (delivered on
-- commit only).  Returns the new request ids.
CREATE FUNCTION @extschema@._raise_requests(p_stream_ids bigint[], p_reason text,
	p_p_values float8[], p_effects float8[], p_check_ids bigint[], p_note text)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_ids	bigint[];
BEGIN
	WITH ins AS (
		INSERT INTO @extschema@.retrain_requests
			(stream_id, model_version, reason, p_value, effect, check_id, note)
		SELECT s.stream_id, s.model_version, p_reason, u.p, u.e, u.c, p_note
		  FROM unnest(p_stream_ids, p_p_values, p_effects, p_check_ids) AS u(sid, p, e, c)
		  JOIN @extschema@.streams s ON s.stream_id = u.sid
		 ORDER BY u.sid
		ON CONFLICT (stream_id) WHERE status IN ('pending', 'claimed') DO NOTHING
		RETURNING request_id)
	SELECT array_agg(request_id ORDER BY request_id) INTO v_ids FROM ins;
	PERFORM pg_notify('mlma_retrain', @extschema@._notify_payload(id))
	   FROM unnest(v_ids) AS id ORDER BY id;
	RETURN coalesce(v_ids, '{}');
END;
$$;

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

-- Stores a reference for the stream from the observations with seq in
-- [from_seq, to_seq), closed or still open.  Returns the number of losses.
CREATE FUNCTION @extschema@._set_reference_seqs(p_stream_id bigint,
	p_from_seq bigint, p_to_seq bigint, p_source text)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_losses	float8[];
	v_seqs		int8[];
BEGIN
	SELECT array_agg(l ORDER BY q), array_agg(q ORDER BY q)
	  INTO v_losses, v_seqs
	  FROM (SELECT u.l, b.first_seq + u.o - 1 AS q
			  FROM @extschema@.batches b,
				   unnest(b.losses) WITH ORDINALITY AS u(l, o)
			 WHERE b.stream_id = p_stream_id
			   AND b.first_seq < p_to_seq
			   AND b.first_seq + cardinality(b.losses) > p_from_seq
			UNION ALL
			SELECT o.loss, o.seq FROM @extschema@.observations o
			 WHERE o.stream_id = p_stream_id
			   AND o.seq >= p_from_seq AND o.seq < p_to_seq) x
	 WHERE q >= p_from_seq AND q < p_to_seq;
	PERFORM @extschema@._store_reference(p_stream_id, p_source, v_losses, v_seqs);
	RETURN coalesce(cardinality(v_losses), 0);
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
BEGIN
	IF coalesce(cardinality(p_losses), 0) < 2 THEN
		RAISE EXCEPTION 'a reference needs at least 2 observations'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('%s observations were found.', coalesce(cardinality(p_losses), 0));
	END IF;
	SELECT * INTO s FROM @extschema@.streams WHERE stream_id = p_stream_id;
	SELECT * INTO st FROM @extschema@.stream_state WHERE stream_id = p_stream_id;
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
	PERFORM @extschema@._store_reference(p_stream_id, 'rolling', v_l, v_q);
END;
$$;

-- Evaluates one closed batch against the stream's live reference: the test
-- (alternative 'greater'), the effect and the sample sizes, without
-- recording anything.  No row when the stream has no reference.
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
	  JOIN @extschema@.reference_batches r USING (stream_id),
		   LATERAL @extschema@._evaluate(s.method, r.losses, r.seqs, b.losses,
										  b.first_seq, s.season_length) e
	 WHERE b.stream_id = evaluate_batch.stream_id
	   AND b.batch_no = evaluate_batch.batch_no
$$;

-- Records the outcome of a check and applies the decision: the streak of
-- significant batches, drift after `consecutive` of them, the retrain
-- request, and the rolling reference after a passing batch.  The caller
-- has evaluated the batch; `significant` is its p-value (adjusted, in
-- scheduled mode) at or below alpha with the effect at or above min_effect.
-- Checks of one stream must be finished in batch order.
CREATE FUNCTION @extschema@._finish_check(p_check_id bigint,
	p_statistic float8, p_p_value float8, p_p_adjusted float8, p_effect float8,
	p_n_reference int, p_n_current int, p_reference_mean float8,
	p_batch_mean float8, p_significant bool)
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	c		@extschema@.checks;
	s		@extschema@.streams;
	v_streak int;
	v_drift	bool;
BEGIN
	SELECT * INTO c FROM @extschema@.checks WHERE check_id = p_check_id;
	IF c.check_id IS NULL THEN
		RAISE EXCEPTION 'check % does not exist', p_check_id
			USING ERRCODE = 'undefined_object';
	END IF;
	SELECT * INTO s FROM @extschema@.streams WHERE stream_id = c.stream_id;
	UPDATE @extschema@.stream_state
	   SET streak = CASE WHEN p_significant THEN streak + 1 ELSE 0 END
	 WHERE stream_id = c.stream_id
	RETURNING streak INTO v_streak;
	v_drift := p_significant AND v_streak >= s.consecutive;

	UPDATE @extschema@.checks
	   SET status = 'done', statistic = p_statistic, p_value = p_p_value,
		   p_adjusted = p_p_adjusted, effect = p_effect,
		   n_reference = p_n_reference, n_current = p_n_current,
		   reference_mean = p_reference_mean, batch_mean = p_batch_mean,
		   significant = p_significant, drift = v_drift, checked_at = now()
	 WHERE check_id = p_check_id;

	IF v_drift AND NOT s.paused THEN
		PERFORM @extschema@._raise_request(c.stream_id, 'drift', p_p_value,
										   p_effect, p_check_id, NULL);
	ELSIF NOT p_significant AND s.reference_policy = 'rolling' THEN
		PERFORM @extschema@._roll_reference(c.stream_id, c.batch_no);
	END IF;
	RETURN v_drift;
END;
$$;

-- Closes the open batch of a stream: its observations move from
-- mlma.observations into one mlma.batches row; a warming stream whose
-- version reached reference_size observations gets its reference; a test
-- batch gets its check (eager: now, scheduled: left 'waiting').  With
-- p_partial the batch is closed even if not full (new model version) and is
-- never tested.  The caller holds the stream's writer lock.
--
-- This runs once every batch_size observations inside the writer's
-- transaction, so it is written with few statements; the eager decision
-- below is the same as _finish_check's (which serves run_checks).
CREATE FUNCTION @extschema@._close_batch(p_stream_id bigint, p_partial bool DEFAULT false)
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
-- mlma: the retrain request lifecycle and the engineer's actions
--
--   pending -> claimed -> completed | failed
--   pending | claimed -> dismissed
--
-- complete_retrain and fail_retrain also accept a pending request (a model
-- retrained by hand, without an agent claiming it first).  Finished requests
-- (completed, failed, dismissed) cannot change any more.

-- Locks an open request and returns it; clear errors otherwise.
CREATE FUNCTION @extschema@._lock_open_request(p_request_id bigint, p_action text)
RETURNS @extschema@.retrain_requests
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
BEGIN
	IF p_request_id IS NULL THEN
		RAISE EXCEPTION 'request_id must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO r FROM @extschema@.retrain_requests
	 WHERE request_id = p_request_id;
	IF r.request_id IS NULL THEN
		RAISE EXCEPTION 'retrain request % does not exist', p_request_id
			USING ERRCODE = 'undefined_object';
	END IF;
	-- stream first, then request: the order every writer uses
	PERFORM @extschema@._lock_stream_id(r.stream_id);
	PERFORM 1 FROM @extschema@.stream_state WHERE stream_id = r.stream_id FOR UPDATE;
	SELECT * INTO r FROM @extschema@.retrain_requests
	 WHERE request_id = p_request_id FOR UPDATE;
	IF r.status NOT IN ('pending', 'claimed') THEN
		RAISE EXCEPTION 'cannot % retrain request %: it is %', p_action, p_request_id, r.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Only pending or claimed requests can change.';
	END IF;
	RETURN r;
END;
$$;

CREATE FUNCTION @extschema@.claim_retrain(worker text, lease interval DEFAULT '1 hour')
RETURNS TABLE (request_id bigint, stream_id bigint, stream text,
			   model_version text, reason text, p_value float8, effect float8)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint;
	v_cand	record;
BEGIN
	IF worker IS NULL OR worker = '' THEN
		RAISE EXCEPTION 'worker must be a non-empty name'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF lease IS NULL OR lease <= interval '0' THEN
		RAISE EXCEPTION 'lease must be positive'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	-- The oldest pending request, or a claimed one whose lease expired, of a
	-- stream whose writer lock is free: stream first, then request, the
	-- order every writer uses (a writer raising a request on a stream holds
	-- its lock and may wait for the request row), so claiming never
	-- deadlocks with ingestion.  Streams busy right now are skipped.
	FOR v_cand IN
		SELECT q.request_id, q.stream_id
		  FROM @extschema@.retrain_requests q
		 WHERE q.status IN ('pending', 'claimed')
		   AND (q.status = 'pending' OR q.lease_until < now())
		 ORDER BY q.requested_at, q.request_id
	LOOP
		CONTINUE WHEN NOT @extschema@._try_lock_stream_id(v_cand.stream_id);
		SELECT q.request_id INTO v_id
		  FROM @extschema@.retrain_requests q
		 WHERE q.request_id = v_cand.request_id
		   AND (q.status = 'pending'
				OR (q.status = 'claimed' AND q.lease_until < now()))
		   FOR UPDATE SKIP LOCKED;
		EXIT WHEN v_id IS NOT NULL;
	END LOOP;
	IF v_id IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY
	UPDATE @extschema@.retrain_requests q
	   SET status = 'claimed', claimed_by = worker, claimed_at = now(),
		   lease_until = now() + lease
	  FROM @extschema@.streams s
	 WHERE q.request_id = v_id AND s.stream_id = q.stream_id
	RETURNING q.request_id, q.stream_id, s.name, q.model_version, q.reason,
			  q.p_value, q.effect;
END;
$$;

CREATE FUNCTION @extschema@.complete_retrain(request_id bigint, model_version text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
BEGIN
	IF model_version IS NULL OR length(model_version) NOT BETWEEN 1 AND 255 THEN
		RAISE EXCEPTION 'model_version must be 1 to 255 characters'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	r := @extschema@._lock_open_request(request_id, 'complete');
	UPDATE @extschema@.retrain_requests q
	   SET status = 'completed', finished_at = now(),
		   new_model_version = complete_retrain.model_version, lease_until = NULL
	 WHERE q.request_id = r.request_id;
	PERFORM @extschema@._start_version(r.stream_id, model_version);
END;
$$;

CREATE FUNCTION @extschema@.fail_retrain(request_id bigint, error text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
BEGIN
	r := @extschema@._lock_open_request(request_id, 'fail');
	UPDATE @extschema@.retrain_requests q
	   SET status = 'failed', finished_at = now(), error = fail_retrain.error,
		   lease_until = NULL
	 WHERE q.request_id = r.request_id;
END;
$$;

-- A dismissed request was a false alarm: the streak restarts.  With
-- accept_as_reference the flagged batch becomes the new reference.
CREATE FUNCTION @extschema@.dismiss(request_id bigint, note text,
									 accept_as_reference bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
	b		@extschema@.batches;
BEGIN
	r := @extschema@._lock_open_request(request_id, 'dismiss');
	IF coalesce(accept_as_reference, false) THEN
		SELECT bt.* INTO b
		  FROM @extschema@.checks c
		  JOIN @extschema@.batches bt USING (stream_id, batch_no)
		 WHERE c.check_id = r.check_id;
		IF b.stream_id IS NULL THEN
			RAISE EXCEPTION 'retrain request % has no flagged batch to accept as reference', r.request_id
				USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = format('The request was raised for reason %s.', r.reason);
		END IF;
		PERFORM @extschema@._store_reference(r.stream_id, 'accepted', b.losses,
			ARRAY(SELECT b.first_seq + g
					FROM generate_series(0, cardinality(b.losses) - 1) g));
	END IF;
	UPDATE @extschema@.retrain_requests q
	   SET status = 'dismissed', finished_at = now(), note = dismiss.note,
		   lease_until = NULL
	 WHERE q.request_id = r.request_id;
	UPDATE @extschema@.stream_state SET streak = 0 WHERE stream_id = r.stream_id;
END;
$$;

-- A manual request.  When the stream already has an open request, that one
-- is returned (at most one open request per stream).
CREATE FUNCTION @extschema@.request_retrain(stream text, note text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_sid	bigint := @extschema@._lock_stream(stream);
	v_id	bigint;
BEGIN
	v_id := @extschema@._raise_request(v_sid, 'manual', NULL, NULL, NULL, note);
	IF v_id IS NULL THEN
		SELECT q.request_id INTO v_id FROM @extschema@.retrain_requests q
		 WHERE q.stream_id = v_sid AND q.status IN ('pending', 'claimed');
		RAISE NOTICE 'stream "%" already has an open retrain request', stream;
	END IF;
	RETURN v_id;
END;
$$;

-- Pins the reference to the stream's observations in [from_ts, to_ts]
-- (closed batches, second precision after the first observation of each,
-- and the open batch).  A pinned reference is not rolled; it stays until
-- the next model version or another pin.
CREATE FUNCTION @extschema@.pin_reference(stream text, from_ts timestamptz,
										   to_ts timestamptz)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_sid	bigint;
	v_l		float8[];
	v_q		int8[];
BEGIN
	IF from_ts IS NULL OR to_ts IS NULL OR from_ts > to_ts THEN
		RAISE EXCEPTION 'from_ts and to_ts must be a non-empty time range'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_sid := @extschema@._lock_stream(stream);
	SELECT array_agg(l ORDER BY q), array_agg(q ORDER BY q) INTO v_l, v_q
	  FROM (SELECT u.l, b.first_seq + u.o - 1 AS q,
				   CASE WHEN u.o = 1 THEN b.first_at
						ELSE b.first_at + b.offsets[u.o] * interval '1 second' END AS t
			  FROM @extschema@.batches b,
				   unnest(b.losses) WITH ORDINALITY AS u(l, o)
			 WHERE b.stream_id = v_sid
			UNION ALL
			SELECT o.loss, o.seq, o.observed_at FROM @extschema@.observations o
			 WHERE o.stream_id = v_sid) x
	 WHERE t BETWEEN from_ts AND to_ts;
	PERFORM @extschema@._store_reference(v_sid, 'pinned', v_l, v_q);
	UPDATE @extschema@.stream_state SET streak = 0 WHERE stream_id = v_sid;
	RETURN cardinality(v_l);
END;
$$;
-- mlma: the per-stream status view
--
-- state, by precedence: paused; retraining (a request is claimed, or a
-- manual request is pending); drift (a drift or age request is pending);
-- warming (no reference yet for this model version); monitoring.

CREATE VIEW @extschema@.stream_status AS
SELECT s.stream_id,
	   s.name,
	   s.labels,
	   CASE WHEN s.paused THEN 'paused'
			WHEN q.status = 'claimed' OR q.reason = 'manual' THEN 'retraining'
			WHEN q.status = 'pending' THEN 'drift'
			WHEN r.stream_id IS NULL THEN 'warming'
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
		   AND rr.finished_at > now() - interval '30 days') AS retrains_30d
  FROM @extschema@.streams s
  JOIN @extschema@.stream_state st USING (stream_id)
  LEFT JOIN @extschema@.reference_batches r USING (stream_id)
  LEFT JOIN @extschema@.retrain_requests q
		 ON q.stream_id = s.stream_id AND q.status IN ('pending', 'claimed')
  LEFT JOIN LATERAL (SELECT count(*)::int AS batch_n, avg(ob.loss) AS batch_mean
					   FROM @extschema@.observations ob
					  WHERE ob.stream_id = s.stream_id) o ON true
  LEFT JOIN LATERAL (SELECT ck.p_value, ck.effect, ck.drift, ck.checked_at
					   FROM @extschema@.checks ck
					  WHERE ck.stream_id = s.stream_id AND ck.status = 'done'
					  ORDER BY ck.batch_no DESC
					  LIMIT 1) c ON true;
-- mlma: operating the fleet — scheduled checks with FDR control, pg_cron,
-- key metrics, history, replay and retention.

-- One scheduled round (src/fleet.c): returns the ids of the checks finished.
CREATE FUNCTION @extschema@._run_checks(fdr float8)
RETURNS int8[]
AS 'MODULE_PATHNAME', 'mlma_run_checks'
LANGUAGE C VOLATILE CALLED ON NULL INPUT;

-- Tests every closed batch waiting for a scheduled check, across all
-- streams at once, with the false discovery rate controlled at `fdr`
-- (Benjamini-Hochberg; default: the mlma.fdr setting).  Returns the checks
-- it recorded.  Concurrent calls never test the same batch twice.
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
	RETURN v_job;
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
	SELECT count(*) AS waiting_checks
	  FROM @extschema@.checks WHERE status = 'waiting'
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
		   AS dismissal_rate_30d
  FROM st, ck, wt, rq;

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
-- run_checks() or their batches, or open requests.
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
	   AND NOT EXISTS (SELECT 1 FROM @extschema@.checks c
					    WHERE c.stream_id = b.stream_id
						  AND c.batch_no = b.batch_no
						  AND c.status = 'waiting');
	GET DIAGNOSTICS v_b = ROW_COUNT;
	DELETE FROM @extschema@.checks
	 WHERE status <> 'waiting' AND coalesce(checked_at, created_at) < v_cut;
	GET DIAGNOSTICS v_c = ROW_COUNT;
	DELETE FROM @extschema@.retrain_requests
	 WHERE status IN ('completed', 'failed', 'dismissed')
	   AND finished_at < v_cut;
	GET DIAGNOSTICS v_r = ROW_COUNT;
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
-- mlma: roles and privileges
--
--   mlma_reader  views, tables (read only), history, replay, the statistics
--   mlma_writer  observe, observe_loss (and the triggers of attached tables)
--   mlma_agent   claim_retrain, complete_retrain, fail_retrain
--   mlma_admin   everything: member of the three, every function and table
--
-- Nothing is granted to PUBLIC.  The functions a role may call but whose work
-- touches tables the role cannot write are SECURITY DEFINER with a pinned
-- search_path; everything else runs with the caller's rights.

DO $$
DECLARE
	r	text;
BEGIN
	FOREACH r IN ARRAY ARRAY['mlma_reader', 'mlma_writer', 'mlma_agent', 'mlma_admin'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END;
$$;

REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA @extschema@ FROM PUBLIC;

GRANT USAGE ON SCHEMA @extschema@ TO mlma_reader, mlma_writer, mlma_agent, mlma_admin;

-- functions called by roles without write access to the tables
ALTER FUNCTION @extschema@.observe(text, float8, float8, timestamptz)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.observe_loss(text, float8, timestamptz)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@._observe_trigger()
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.claim_retrain(text, interval) SECURITY DEFINER;
ALTER FUNCTION @extschema@.complete_retrain(bigint, text) SECURITY DEFINER;
ALTER FUNCTION @extschema@.fail_retrain(bigint, text) SECURITY DEFINER;
ALTER FUNCTION @extschema@.replay(text, text, float8, int, int, int, text, float8, int)
	SECURITY DEFINER;
ALTER FUNCTION @extschema@.check_history(text, timestamptz) SECURITY DEFINER;
ALTER FUNCTION @extschema@.request_history(text, timestamptz) SECURITY DEFINER;

-- reader: every table and view, read only; the pure statistics; history
GRANT SELECT ON ALL TABLES IN SCHEMA @extschema@ TO mlma_reader;
GRANT EXECUTE ON FUNCTION
	@extschema@.welch_test(float8[], float8[], text),
	@extschema@.mann_whitney_test(float8[], float8[], text),
	@extschema@.ks_test(float8[], float8[], text),
	@extschema@.hac_test(float8[], float8[], text, int),
	@extschema@.dm_test(float8[], float8[], text, int),
	@extschema@.loss(text, float8, float8, float8),
	@extschema@.bh_adjust(float8[]),
	@extschema@.check_history(text, timestamptz),
	@extschema@.request_history(text, timestamptz),
	@extschema@.replay(text, text, float8, int, int, int, text, float8, int)
	TO mlma_reader;

-- writer: observations
GRANT EXECUTE ON FUNCTION
	@extschema@.observe(text, float8, float8, timestamptz),
	@extschema@.observe_loss(text, float8, timestamptz),
	@extschema@.loss(text, float8, float8, float8)
	TO mlma_writer;

-- agent: the request queue
GRANT EXECUTE ON FUNCTION
	@extschema@.claim_retrain(text, interval),
	@extschema@.complete_retrain(bigint, text),
	@extschema@.fail_retrain(bigint, text)
	TO mlma_agent;
GRANT SELECT ON @extschema@.retrain_requests, @extschema@.streams TO mlma_agent;

-- admin: everything
GRANT mlma_reader, mlma_writer, mlma_agent TO mlma_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA @extschema@ TO mlma_admin;
GRANT ALL ON ALL TABLES IN SCHEMA @extschema@ TO mlma_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA @extschema@ TO mlma_admin;
