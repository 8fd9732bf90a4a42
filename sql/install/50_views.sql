-- mlma: the per-stream status view
--
-- state, by precedence: paused; retraining (a request is claimed, or a
-- manual request is pending); drift (a drift or age request is pending, or
-- proposed and waiting for approval: open_request_status tells which);
-- warming (no reference yet for this model version; never under the
-- benchmark policy, whose reference is the challenger's losses on each
-- batch); monitoring.  The model's mean loss stands beside its reference:
-- reference_mean (live reference) or, for benchmark streams,
-- batch_benchmark_mean (the open batch's benchmark losses) and
-- last_reference_mean (the mean the last check tested against).
-- skipped: rows of attached tables left out under on_invalid 'skip', with
-- the last reason and time.
-- last_decision_reason says in a few words why the last check decided as
-- it did (the adjusted p-value and the round's fdr in scheduled mode);
-- last_failed_at/last_failed_error: the stream's last failed retrain.

-- A number for a sentence: 4 decimals, or 3 significant digits when tiny.
CREATE FUNCTION @extschema@._fmt(x float8)
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
CREATE FUNCTION @extschema@._decision_reason(p_status text, p_check_mode text,
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

CREATE VIEW @extschema@.stream_status AS
SELECT s.stream_id,
	   s.name,
	   s.labels,
	   CASE WHEN s.paused THEN 'paused'
			WHEN q.status = 'claimed' OR q.reason = 'manual' THEN 'retraining'
			WHEN q.status IN ('pending', 'proposed') THEN 'drift'
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
	   st.skipped,
	   st.last_skip_reason,
	   st.last_skip_at,
	   q.status AS open_request_status,
	   c.p_adjusted AS last_p_adjusted,
	   @extschema@._decision_reason(c.status, c.check_mode, c.p_value,
			c.p_adjusted, coalesce(c.threshold, CASE WHEN c.check_mode = 'eager' THEN c.alpha END),
			c.effect, s.min_effect, c.significant, c.drift, st.streak,
			s.consecutive) AS last_decision_reason,
	   f.finished_at AS last_failed_at,
	   right(f.error, 200) AS last_failed_error,
	   s.reference_policy,
	   o.batch_benchmark_mean,
	   o.batch_benchmark_n,
	   c.reference_mean AS last_reference_mean,
	   c.batch_mean AS last_batch_mean
  FROM @extschema@.streams s
  JOIN @extschema@.stream_state st USING (stream_id)
  LEFT JOIN @extschema@.reference_batches r USING (stream_id)
  LEFT JOIN @extschema@.retrain_requests q
		 ON q.stream_id = s.stream_id AND q.status IN ('proposed', 'pending', 'claimed')
  LEFT JOIN LATERAL (SELECT count(*)::int AS batch_n,
							 @extschema@._mean(array_agg(ob.loss)) AS batch_mean,
							 @extschema@._mean(array_agg(ob.benchmark_loss)
											   FILTER (WHERE ob.benchmark_loss IS NOT NULL))
								 AS batch_benchmark_mean,
							 count(ob.benchmark_loss)::int AS batch_benchmark_n
					   FROM @extschema@.observations ob
					  WHERE ob.stream_id = s.stream_id) o ON true
  LEFT JOIN LATERAL (SELECT ck.p_value, ck.effect, ck.drift, ck.checked_at,
							ck.p_adjusted, ck.status, ck.check_mode, ck.threshold,
							ck.alpha, ck.significant, ck.reference_mean, ck.batch_mean
					   FROM @extschema@.checks ck
					  WHERE ck.stream_id = s.stream_id AND ck.status = 'done'
					  ORDER BY ck.batch_no DESC
					  LIMIT 1) c ON true
  LEFT JOIN LATERAL (SELECT rf.finished_at, rf.error
					   FROM @extschema@.retrain_requests rf
					  WHERE rf.stream_id = s.stream_id AND rf.status = 'failed'
					  ORDER BY rf.requested_at DESC, rf.request_id DESC
					  LIMIT 1) f ON true;
