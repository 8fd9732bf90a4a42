-- Hardening: attach options (benchmark_column, on_invalid, create_streams),
-- skipped-row counters, column type checks of attached tables, stream name
-- rules, wedge-free batch closes (overflow-safe means, warm-up and rolling
-- that never raise, configure re-warms a reference dm cannot use), purge
-- keeps what open requests and warm-ups need, pg_cron as the extension's
-- owner, clearer errors, and the mappings of dropped tables cleaned up.

ALTER TABLE @extschema@.stream_state
	ADD COLUMN skipped bigint NOT NULL DEFAULT 0,
	ADD COLUMN last_skip_reason text,
	ADD COLUMN last_skip_at timestamptz;

ALTER TABLE @extschema@.attachments
	ADD COLUMN benchmark_column name,
	ADD COLUMN on_invalid text NOT NULL DEFAULT 'skip'
		CHECK (on_invalid IN ('error', 'skip')),
	ADD COLUMN create_streams bool NOT NULL DEFAULT true,
	ADD COLUMN skipped bigint NOT NULL DEFAULT 0,
	ADD COLUMN last_skip_reason text,
	ADD COLUMN last_skip_at timestamptz;
-- tables attached by 0.1.0 keep their trigger (five arguments), which
-- behaves as on_invalid 'error'; attach them again for 'skip'
UPDATE @extschema@.attachments SET on_invalid = 'error';

CREATE FUNCTION @extschema@._mean(losses float8[])
RETURNS float8
AS 'MODULE_PATHNAME', 'mlma_mean'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION @extschema@._check_stream_name(name text)
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

CREATE OR REPLACE FUNCTION @extschema@._validate_defaults(defaults jsonb)
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
					 'season_length', 'max_model_age') THEN
			RAISE EXCEPTION 'unknown option in defaults: %', k
				USING ERRCODE = 'invalid_parameter_value',
				HINT = 'defaults takes the option names of create_stream and create_streams.';
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

	-- dm without season_length pairs the batch with the reference by
	-- position: a live reference of another length cannot serve the new
	-- settings, so it is dropped and the stream warms again from its open
	-- batch (checks would otherwise never be testable)
	IF n.model_version = s.model_version AND n.method = 'dm'
		AND n.season_length IS NULL
		AND EXISTS (SELECT 1 FROM @extschema@.reference_batches r
					 WHERE r.stream_id = v_id
					   AND cardinality(r.losses) <> n.batch_size) THEN
		DELETE FROM @extschema@.reference_batches WHERE stream_id = v_id;
		UPDATE @extschema@.stream_state
		   SET version_start_seq = open_start_seq, streak = 0
		 WHERE stream_id = v_id;
		UPDATE @extschema@.checks SET status = 'skipped'
		 WHERE stream_id = v_id AND status = 'waiting';
		RAISE NOTICE 'the reference of stream "%" does not fit the new settings: the stream warms again', name
			USING DETAIL = format('method dm pairs by position and batch_size is %s; the next %s observations become the reference.',
								  n.batch_size, n.reference_size);
	END IF;

	-- deploying another model version by hand starts a new reference
	IF n.model_version <> s.model_version THEN
		PERFORM @extschema@._start_version(v_id, n.model_version);
	END IF;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@.detach(source regclass)
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
		EXECUTE format('DROP TRIGGER IF EXISTS mlma_observe ON %s', source);
	END IF;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@._forget_dropped_attachments()
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
						  AND t.tgfoid = '@extschema@._observe_trigger()'::regprocedure);
	GET DIAGNOSTICS v_n = ROW_COUNT;
	RETURN v_n;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@._drop_attachments()
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

CREATE OR REPLACE FUNCTION @extschema@._warm_reference(p_stream_id bigint, p_from_seq bigint,
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
			@extschema@._mean(p_losses))
	ON CONFLICT (stream_id) DO UPDATE
	   SET version_no = excluded.version_no, model_version = excluded.model_version,
		   source = excluded.source, losses = excluded.losses, seqs = excluded.seqs,
		   end_seq = excluded.end_seq, mean = excluded.mean, built_at = now();
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@._roll_reference(p_stream_id bigint, p_batch_no int)
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
			PERFORM @extschema@._warm_reference(p_stream_id, c.version_start_seq,
				c.reference_size, v_next);
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

CREATE OR REPLACE FUNCTION @extschema@.claim_retrain(worker text, lease interval DEFAULT '1 hour')
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
	IF lease > interval '1 year' THEN
		RAISE EXCEPTION 'lease must be at most 1 year'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('lease is %s.', lease);
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

CREATE OR REPLACE FUNCTION @extschema@._stream_id(p_name text)
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
	WITH gone AS (
		DELETE FROM @extschema@.batches b
		 USING @extschema@.stream_state st
		 WHERE st.stream_id = b.stream_id
		   AND b.last_at < v_cut
		   -- waiting checks
		   AND NOT EXISTS (SELECT 1 FROM @extschema@.checks c
							WHERE c.stream_id = b.stream_id
							  AND c.batch_no = b.batch_no
							  AND c.status = 'waiting')
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
	RETURN QUERY SELECT v_b, v_c, v_r;
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
	RETURN v_job;
END;
$$;

CREATE EVENT TRIGGER mlma_drop_attachments ON sql_drop
	WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
	EXECUTE FUNCTION @extschema@._drop_attachments();

DROP FUNCTION @extschema@.attach(regclass, name, name, name, name, jsonb);
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
	EXECUTE format('CREATE TRIGGER mlma_observe AFTER INSERT OR UPDATE ON %s '
				   'FOR EACH ROW EXECUTE FUNCTION @extschema@._observe_trigger(%L, %L, %L, %L, %L, %L, %L, %L)',
				   source, stream_column, actual_column, predicted_column,
				   coalesce(time_column, ''),
				   (coalesce(defaults, '{}') - 'create_streams')::text,
				   coalesce(benchmark_column, ''), on_invalid,
				   CASE WHEN v_create THEN 't' ELSE 'f' END);
END;
$$;


ALTER FUNCTION @extschema@.claim_retrain(text, interval) SECURITY DEFINER;
ALTER FUNCTION @extschema@.schedule_checks(text) SECURITY DEFINER;
ALTER FUNCTION @extschema@.unschedule_checks() SECURITY DEFINER;

REVOKE ALL ON FUNCTION
	@extschema@._mean(float8[]),
	@extschema@._warm_reference(bigint, bigint, int, bigint),
	@extschema@._forget_dropped_attachments(),
	@extschema@._drop_attachments(),
	@extschema@.attach(regclass, name, name, name, name, jsonb, name, text)
	FROM PUBLIC;
-- stream_status computes the open batch's mean with it
GRANT EXECUTE ON FUNCTION @extschema@._mean(float8[]) TO mlma_reader;
GRANT EXECUTE ON FUNCTION
	@extschema@._mean(float8[]),
	@extschema@._warm_reference(bigint, bigint, int, bigint),
	@extschema@._forget_dropped_attachments(),
	@extschema@._drop_attachments(),
	@extschema@.attach(regclass, name, name, name, name, jsonb, name, text)
	TO mlma_admin;
