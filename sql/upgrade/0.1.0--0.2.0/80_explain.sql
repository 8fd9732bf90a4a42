-- 80: explain — the reference history, checks linked to their reference
-- and threshold, explain(), stream_status reasons, check_history with batch
-- times, evaluate_batch against the reference live at close, replay in C
-- with live batch numbers, replay_fleet().

ALTER TABLE @extschema@.checks ADD COLUMN reference_id bigint;
ALTER TABLE @extschema@.checks ADD COLUMN threshold float8;

-- Every reference that was ever live, one row per _store_reference call
-- (warm-up, each roll, pin, accepted batch).  The losses are not copied:
-- seq_runs holds the observation numbers as [from, to) pairs, so the losses
-- are read back from batches/observations (_reference_losses) while that
-- history is kept.  checks.reference_id points here.
CREATE TABLE @extschema@.reference_history (
	reference_id	bigserial,
	stream_id		bigint NOT NULL,
	version_no		int NOT NULL,
	model_version	text NOT NULL,
	source			text NOT NULL,
	n				int NOT NULL,
	mean			float8 NOT NULL,
	first_seq		bigint NOT NULL,
	end_seq			bigint NOT NULL,	-- 1 + the last seq
	seq_runs		int8[] NOT NULL,
	built_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (stream_id, reference_id)
);
CREATE INDEX reference_history_reference_id_idx
	ON @extschema@.reference_history (reference_id);

SELECT pg_catalog.pg_extension_config_dump('@extschema@.reference_history', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reference_history_reference_id_seq', '');

-- Replaces the live reference of a stream.

-- The losses and seqs of a reference of reference_history, read back from
-- the closed batches and the open batch (NULL once they were purged).
CREATE OR REPLACE FUNCTION @extschema@._reference_losses(p_reference_id bigint,
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

-- A number for a sentence: 4 decimals, or 3 significant digits when tiny.
CREATE OR REPLACE FUNCTION @extschema@._fmt(x float8)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN x IS NULL THEN 'NULL'
				WHEN x IN ('NaN', 'Infinity', '-Infinity') THEN x::text
				WHEN x = 0 OR abs(x) >= 0.001 THEN trim_scale(round(x::numeric, 4))::text
				ELSE btrim(to_char(x, '9.99EEEE')) END
$$;

-- Why a check decided as it did, in a few words: 'drift: ...', 'streak 1 of
-- 2', 'p 0.2 > alpha 0.05', 'p_adjusted 0.01 > fdr 0.005',
-- 'effect 1.12 < min_effect 1.2', 'waiting for run_checks', 'skipped: ...'.
-- threshold: the level compared with p (eager: alpha) or p_adjusted
-- (scheduled: the round's fdr); streak: the streak after this check.
CREATE OR REPLACE FUNCTION @extschema@._decision_reason(p_status text, p_check_mode text,
	p_p_value float8, p_p_adjusted float8, p_threshold float8, p_effect float8,
	p_min_effect float8, p_significant bool, p_drift bool, p_streak int,
	p_consecutive int)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE
		WHEN p_status IS NULL THEN NULL
		WHEN p_status = 'waiting' THEN 'waiting for run_checks'
		WHEN p_status = 'skipped' THEN 'skipped: the model version changed before the check ran'
		WHEN p_drift THEN format('drift: %s %s <= %s %s, effect %s >= min_effect %s, streak %s of %s',
			x.pname, @extschema@._fmt(x.p), x.tname, @extschema@._fmt(p_threshold),
			@extschema@._fmt(p_effect), @extschema@._fmt(p_min_effect),
			coalesce(p_streak::text, '?'), p_consecutive)
		WHEN p_significant THEN format('streak %s of %s', coalesce(p_streak::text, '?'), p_consecutive)
		WHEN p_threshold IS NULL THEN format('%s %s, threshold not recorded', x.pname, @extschema@._fmt(x.p))
		WHEN x.p IS NULL OR x.p = 'NaN' OR x.p > p_threshold
			THEN format('%s %s > %s %s', x.pname, @extschema@._fmt(x.p), x.tname,
						@extschema@._fmt(p_threshold))
		ELSE format('effect %s < min_effect %s', @extschema@._fmt(p_effect),
					@extschema@._fmt(p_min_effect)) END
	  FROM (SELECT CASE WHEN p_check_mode = 'scheduled' THEN 'p_adjusted' ELSE 'p' END AS pname,
				   CASE WHEN p_check_mode = 'scheduled' THEN p_p_adjusted ELSE p_p_value END AS p,
				   CASE WHEN p_check_mode = 'scheduled' THEN 'fdr' ELSE 'alpha' END AS tname) x
$$;

-- The replay settings of one stream: the stream's own where an option is
-- NULL (season_length => 0 turns seasonal pairing off); reference_size
-- follows a changed batch_size or season_length unless given.  Validated
-- like create_stream's options.  own_grid: the batches are the live ones.
CREATE OR REPLACE FUNCTION @extschema@._replay_options(p_stream_id bigint, p_method text,
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
CREATE OR REPLACE FUNCTION @extschema@._replay(stream_id bigint, method text,
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

-- The time of observation p_seq of a stream (second precision in closed
-- batches), NULL once purged.
CREATE OR REPLACE FUNCTION @extschema@._seq_time(p_stream_id bigint, p_seq bigint)
RETURNS timestamptz
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(
		(SELECT b.first_at + make_interval(secs => b.offsets[p_seq - b.first_seq + 1])
		   FROM @extschema@.batches b
		  WHERE b.stream_id = p_stream_id AND b.first_seq <= p_seq
			AND b.first_seq + cardinality(b.losses) > p_seq
		  LIMIT 1),
		(SELECT o.observed_at FROM @extschema@.observations o
		  WHERE o.stream_id = p_stream_id AND o.seq = p_seq))
$$;

-- Why batch `batch_no` of the stream (default: the last checked batch) was
-- or was not flagged, one line per item: the batch, the reference it was
-- tested against, the test, the threshold met or missed, the effect, the
-- streak, the decision and the request it raised.
CREATE OR REPLACE FUNCTION @extschema@.explain(stream text, batch_no bigint DEFAULT NULL)
RETURNS TABLE (item text, value text, note text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_sid	bigint := @extschema@._stream_id(explain.stream);
	s		@extschema@.streams;
	b		@extschema@.batches;
	c		@extschema@.checks;
	h		@extschema@.reference_history;
	q		@extschema@.retrain_requests;
	v_no	bigint := explain.batch_no;
	v_thr	float8;
	v_streak int;
	v_round	bigint;
	v_open	bigint;
BEGIN
	SELECT * INTO s FROM @extschema@.streams x WHERE x.stream_id = v_sid;
	IF v_no IS NULL THEN
		SELECT max(ck.batch_no) INTO v_no FROM @extschema@.checks ck
		 WHERE ck.stream_id = v_sid AND ck.status = 'done';
		IF v_no IS NULL THEN
			RAISE EXCEPTION 'stream "%" has no checked batch', explain.stream
				USING ERRCODE = 'no_data_found',
				HINT = 'Pass batch_no to explain a batch that was not checked.';
		END IF;
	END IF;
	SELECT * INTO b FROM @extschema@.batches x
	 WHERE x.stream_id = v_sid AND x.batch_no = v_no;
	SELECT * INTO c FROM @extschema@.checks x
	 WHERE x.stream_id = v_sid AND x.batch_no = v_no;
	IF b.stream_id IS NULL AND c.check_id IS NULL THEN
		RAISE EXCEPTION 'batch % of stream "%" does not exist', v_no, explain.stream
			USING ERRCODE = 'undefined_object',
			DETAIL = 'It is still open, was never reached, or was purged.';
	END IF;

	item := 'batch';
	value := format('%s (%s)', v_no, coalesce(b.role, 'purged'));
	note := format('model version %s', coalesce(b.model_version, c.model_version));
	RETURN NEXT;
	IF b.stream_id IS NOT NULL THEN
		item := 'batch time';
		value := format('%s .. %s', b.first_at, b.last_at);
		note := format('%s observations, seq %s .. %s, mean %s', cardinality(b.losses),
					   b.first_seq, b.first_seq + cardinality(b.losses) - 1,
					   @extschema@._fmt((SELECT avg(l) FROM unnest(b.losses) l)));
		RETURN NEXT;
	END IF;
	IF c.check_id IS NULL THEN
		item := 'decision';
		value := 'not tested';
		note := CASE b.role WHEN 'reference' THEN 'the batch warmed the reference'
							WHEN 'partial' THEN 'a partial batch (closed by a new model version) is never tested'
							ELSE 'the stream was paused when the batch closed' END;
		RETURN NEXT;
		RETURN;
	END IF;

	-- the reference
	item := 'reference';
	IF s.reference_policy = 'benchmark' THEN
		value := 'benchmark';
		note := format('the batch''s own benchmark losses, paired; mean %s',
					   @extschema@._fmt(c.reference_mean));
	ELSE
		SELECT * INTO h FROM @extschema@.reference_history x
		 WHERE x.reference_id = c.reference_id;
		IF h.reference_id IS NULL THEN
			value := 'not recorded';
			note := 'the check predates the reference history';
		ELSE
			value := format('#%s %s, %s observations, mean %s', h.reference_id,
							h.source, h.n, @extschema@._fmt(h.mean));
			note := format('seq %s .. %s, %s .. %s, built %s', h.first_seq,
						   h.end_seq - 1,
						   coalesce(@extschema@._seq_time(v_sid, h.first_seq)::text, '(purged)'),
						   coalesce(@extschema@._seq_time(v_sid, h.end_seq - 1)::text, '(purged)'),
						   h.built_at);
		END IF;
	END IF;
	RETURN NEXT;
	IF c.status <> 'done' THEN
		item := 'decision';
		value := c.status;
		note := @extschema@._decision_reason(c.status, c.check_mode, NULL, NULL,
											 NULL, NULL, NULL, NULL, NULL, NULL, NULL);
		RETURN NEXT;
		RETURN;
	END IF;

	item := 'test';
	value := format('%s, %s mode', c.method, c.check_mode);
	note := format('%s reference vs %s current losses (sample means %s vs %s)%s',
				   c.n_reference, c.n_current, @extschema@._fmt(c.reference_mean),
				   @extschema@._fmt(c.batch_mean),
				   CASE WHEN s.season_length IS NOT NULL
						THEN format(', seasonal positions (season_length %s)', s.season_length)
						ELSE '' END);
	RETURN NEXT;
	item := 'statistic';
	value := @extschema@._fmt(c.statistic);
	note := NULL;
	RETURN NEXT;
	item := 'p_value';
	value := @extschema@._fmt(c.p_value);
	note := CASE WHEN c.check_mode = 'eager' THEN 'compared with alpha' END;
	RETURN NEXT;

	v_thr := coalesce(c.threshold, CASE WHEN c.check_mode = 'eager' THEN c.alpha END);
	IF c.check_mode = 'scheduled' THEN
		SELECT count(*) INTO v_round FROM @extschema@.checks x
		 WHERE x.checked_at = c.checked_at AND x.check_mode = 'scheduled'
		   AND x.status = 'done';
		item := 'p_adjusted';
		value := @extschema@._fmt(c.p_adjusted);
		note := format('Benjamini-Hochberg over the %s checks of the run_checks round at %s',
					   v_round, c.checked_at);
		RETURN NEXT;
	END IF;
	item := 'threshold';
	value := CASE WHEN v_thr IS NULL THEN 'not recorded'
				  ELSE format('%s %s', CASE WHEN c.check_mode = 'scheduled' THEN 'fdr' ELSE 'alpha' END,
							  @extschema@._fmt(v_thr)) END;
	note := CASE WHEN v_thr IS NULL THEN NULL
				 WHEN c.check_mode = 'scheduled' THEN
					format('p_adjusted %s %s fdr %s: %s', @extschema@._fmt(c.p_adjusted),
						   CASE WHEN c.p_adjusted <= v_thr THEN '<=' ELSE '>' END,
						   @extschema@._fmt(v_thr),
						   CASE WHEN c.p_adjusted <= v_thr THEN 'met' ELSE 'missed' END)
				 ELSE format('p %s %s alpha %s: %s', @extschema@._fmt(c.p_value),
							 CASE WHEN c.p_value <= v_thr THEN '<=' ELSE '>' END,
							 @extschema@._fmt(v_thr),
							 CASE WHEN c.p_value <= v_thr THEN 'met' ELSE 'missed' END) END;
	RETURN NEXT;
	item := 'effect';
	value := @extschema@._fmt(c.effect);
	note := format('%s min_effect %s: %s', CASE WHEN c.effect >= s.min_effect THEN '>=' ELSE '<' END,
				   @extschema@._fmt(s.min_effect),
				   CASE WHEN c.effect >= s.min_effect THEN 'met' ELSE 'missed' END);
	RETURN NEXT;

	-- the streak after this check: its significant checks in a row
	SELECT count(*) INTO v_streak
	  FROM (SELECT x.significant,
				   count(*) FILTER (WHERE NOT x.significant)
					   OVER (ORDER BY x.batch_no DESC) AS breaks
			  FROM @extschema@.checks x
			 WHERE x.stream_id = v_sid AND x.model_version = c.model_version
			   AND x.batch_no <= c.batch_no AND x.status = 'done') y
	 WHERE y.breaks = 0;
	item := 'streak';
	value := format('%s of %s', v_streak, s.consecutive);
	note := 'significant checks in a row (consecutive needed for drift)';
	RETURN NEXT;

	item := 'decision';
	value := CASE WHEN c.drift THEN 'drift' WHEN c.significant THEN 'significant'
				  ELSE 'not significant' END;
	note := @extschema@._decision_reason(c.status, c.check_mode, c.p_value,
		c.p_adjusted, v_thr, c.effect, s.min_effect, c.significant, c.drift,
		v_streak, s.consecutive);
	RETURN NEXT;

	item := 'request';
	SELECT * INTO q FROM @extschema@.retrain_requests x
	 WHERE x.check_id = c.check_id ORDER BY x.request_id LIMIT 1;
	IF q.request_id IS NOT NULL THEN
		value := format('#%s %s', q.request_id, q.status);
		note := format('reason %s, requested %s%s', q.reason, q.requested_at,
					   CASE WHEN q.error IS NOT NULL THEN ', error: ' || right(q.error, 200) ELSE '' END);
	ELSIF c.drift THEN
		SELECT x.request_id INTO v_open FROM @extschema@.retrain_requests x
		 WHERE x.stream_id = v_sid AND x.requested_at <= c.checked_at
		   AND (x.finished_at IS NULL OR x.finished_at >= c.checked_at)
		 ORDER BY x.requested_at DESC, x.request_id DESC LIMIT 1;
		value := 'none';
		note := CASE WHEN v_open IS NOT NULL
					 THEN format('request #%s was already open', v_open)
					 ELSE 'the stream was paused' END;
	ELSE
		value := 'none';
		note := 'no drift';
	END IF;
	RETURN NEXT;
END;
$$;

-- C core of replay_fleet (src/replay.c): every selected stream's history
-- in one pass, scheduled streams round by round.
CREATE OR REPLACE FUNCTION @extschema@._replay_fleet(stream_ids int8[], methods text[],
	alphas float8[], batch_sizes int[], reference_sizes int[],
	season_lengths int[], reference_policies text[], min_effects float8[],
	consecutives int[], scheduled bool[], own_grid bool[], fdr float8,
	round_interval interval)
RETURNS TABLE (stream_id bigint, checks bigint, flags bigint,
			   first_at timestamptz, last_at timestamptz, flag_batches int[])
AS 'MODULE_PATHNAME', 'mlma_replay_fleet'
LANGUAGE C STABLE STRICT;

-- What-if for a fleet: replays the history of the streams whose labels
-- contain `labels` together, with `settings` (replay()'s option names:
-- method, alpha, batch_size, reference_size, season_length,
-- reference_policy, min_effect, consecutive; and check_mode, fdr,
-- round_interval) applied to every selected stream, never touching live
-- state.  Eager streams are decided at alpha batch by batch; scheduled
-- streams round by round with Benjamini-Hochberg across the fleet at fdr
-- (default: mlma.fdr), the rounds being the recorded run_checks rounds
-- (else fixed windows of round_interval, default 5 minutes; see
-- src/replay.c).  With unchanged settings and the whole scheduled fleet
-- selected it reproduces the live rounds' flags.  One row per stream (the
-- live batch numbers it would flag) and a last row with stream NULL: the
-- fleet's totals.  A flag is assumed retrained at once (retrains = flags).
CREATE OR REPLACE FUNCTION @extschema@.replay_fleet(labels jsonb DEFAULT '{}',
	settings jsonb DEFAULT '{}')
RETURNS TABLE (stream text, check_mode text, checks bigint, flags bigint,
			   retrains bigint, stream_days float8,
			   flags_per_stream_day float8, flag_batches int[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_bad	text;
	v_fdr	float8;
	v_round	interval;
BEGIN
	IF labels IS NULL OR jsonb_typeof(labels) <> 'object' THEN
		RAISE EXCEPTION 'labels must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF settings IS NULL OR jsonb_typeof(settings) <> 'object' THEN
		RAISE EXCEPTION 'settings must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	SELECT string_agg(k, ', ') INTO v_bad
	  FROM jsonb_object_keys(settings) k
	 WHERE k NOT IN ('method', 'alpha', 'batch_size', 'reference_size',
					 'season_length', 'reference_policy', 'min_effect',
					 'consecutive', 'check_mode', 'fdr', 'round_interval');
	IF v_bad IS NOT NULL THEN
		RAISE EXCEPTION 'unknown replay setting: %', v_bad
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Use method, alpha, batch_size, reference_size, season_length, reference_policy, min_effect, consecutive, check_mode, fdr, round_interval.';
	END IF;
	v_fdr := coalesce((settings->>'fdr')::float8,
					  current_setting('mlma.fdr', true)::float8, 0.05);
	IF NOT (v_fdr > 0 AND v_fdr < 1) THEN
		RAISE EXCEPTION 'fdr must be between 0 and 1 (exclusive), got %', v_fdr
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_round := coalesce((settings->>'round_interval')::interval, interval '5 minutes');
	IF v_round <= interval '0' THEN
		RAISE EXCEPTION 'round_interval must be positive'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	RETURN QUERY
	WITH sel AS (
		SELECT s.stream_id, s.name, o.*
		  FROM @extschema@.streams s,
			   LATERAL @extschema@._replay_options(s.stream_id,
					settings->>'method', (settings->>'alpha')::float8,
					(settings->>'batch_size')::int, (settings->>'reference_size')::int,
					(settings->>'season_length')::int, settings->>'reference_policy',
					(settings->>'min_effect')::float8, (settings->>'consecutive')::int,
					settings->>'check_mode') o
		 WHERE s.labels @> replay_fleet.labels
	), r AS (
		SELECT sel.name, sel.check_mode, f.*
		  FROM @extschema@._replay_fleet(
				(SELECT coalesce(array_agg(x.stream_id ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.method ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.alpha ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.batch_size ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.reference_size ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.season_length ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.reference_policy ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.min_effect ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.consecutive ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.check_mode = 'scheduled' ORDER BY x.stream_id), '{}') FROM sel x),
				(SELECT coalesce(array_agg(x.own_grid ORDER BY x.stream_id), '{}') FROM sel x),
				v_fdr, v_round) f
		  JOIN sel USING (stream_id)
	), d AS (
		SELECT r.*, extract(epoch FROM r.last_at - r.first_at)::float8 / 86400 AS days
		  FROM r
	)
	SELECT x.stream, x.check_mode, x.checks, x.flags, x.retrains, x.stream_days,
		   x.flags_per_stream_day, x.flag_batches
	  FROM (SELECT 0 AS k, d.name AS stream, d.check_mode, d.checks, d.flags,
				   d.flags AS retrains, coalesce(d.days, 0) AS stream_days,
				   CASE WHEN d.days > 0 THEN d.flags / d.days END AS flags_per_stream_day,
				   d.flag_batches
			  FROM d
			UNION ALL
			SELECT 1, NULL, NULL, coalesce(sum(d.checks), 0)::bigint,
				   coalesce(sum(d.flags), 0)::bigint, coalesce(sum(d.flags), 0)::bigint,
				   coalesce(sum(d.days), 0),
				   CASE WHEN sum(d.days) > 0 THEN sum(d.flags) / sum(d.days) END,
				   NULL
			  FROM d) x
	 ORDER BY x.k, x.stream;
END;
$$;

DROP FUNCTION @extschema@.check_history(text, timestamptz);
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

-- privileges (as sql/install/90_roles.sql)
REVOKE ALL ON FUNCTION
	@extschema@._reference_losses(bigint),
	@extschema@._fmt(float8),
	@extschema@._decision_reason(text, text, float8, float8, float8, float8,
								 float8, bool, bool, int, int),
	@extschema@._replay_options(bigint, text, float8, int, int, int, text,
								float8, int, text),
	@extschema@._replay(bigint, text, float8, int, int, int, text, float8, int, bool),
	@extschema@._seq_time(bigint, bigint),
	@extschema@.explain(text, bigint),
	@extschema@._replay_fleet(int8[], text[], float8[], int[], int[], int[],
							  text[], float8[], int[], bool[], bool[], float8, interval),
	@extschema@.replay_fleet(jsonb, jsonb),
	@extschema@.check_history(text, timestamptz)
	FROM PUBLIC;
ALTER FUNCTION @extschema@.replay(text, text, float8, int, int, int, text, float8, int)
	SECURITY DEFINER;
ALTER FUNCTION @extschema@.check_history(text, timestamptz) SECURITY DEFINER;
ALTER FUNCTION @extschema@.explain(text, bigint) SECURITY DEFINER;
ALTER FUNCTION @extschema@.replay_fleet(jsonb, jsonb) SECURITY DEFINER;
GRANT EXECUTE ON FUNCTION
	@extschema@.check_history(text, timestamptz),
	@extschema@.explain(text, bigint),
	@extschema@.replay_fleet(jsonb, jsonb),
	@extschema@._fmt(float8),
	@extschema@._decision_reason(text, text, float8, float8, float8, float8,
								 float8, bool, bool, int, int)
	TO mlma_reader;
GRANT SELECT ON @extschema@.reference_history TO mlma_reader;
GRANT EXECUTE ON FUNCTION
	@extschema@._reference_losses(bigint),
	@extschema@._fmt(float8),
	@extschema@._decision_reason(text, text, float8, float8, float8, float8,
								 float8, bool, bool, int, int),
	@extschema@._replay_options(bigint, text, float8, int, int, int, text,
								float8, int, text),
	@extschema@._replay(bigint, text, float8, int, int, int, text, float8, int, bool),
	@extschema@._seq_time(bigint, bigint),
	@extschema@.explain(text, bigint),
	@extschema@._replay_fleet(int8[], text[], float8[], int[], int[], int[],
							  text[], float8[], int[], bool[], bool[], float8, interval),
	@extschema@.replay_fleet(jsonb, jsonb),
	@extschema@.check_history(text, timestamptz)
	TO mlma_admin;
GRANT ALL ON @extschema@.reference_history TO mlma_admin;
GRANT ALL ON SEQUENCE @extschema@.reference_history_reference_id_seq TO mlma_admin;
