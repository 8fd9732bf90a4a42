-- mlma: the per-stream status view
--
-- state, by precedence: paused; retraining (a request is claimed, or a
-- manual request is pending); drift (a drift or age request is pending);
-- warming (no reference yet for this model version; never under the
-- benchmark policy, whose reference is the challenger's losses on each
-- batch); monitoring.  The model's mean loss stands beside its reference:
-- reference_mean (live reference) or, for benchmark streams,
-- batch_benchmark_mean (the open batch's benchmark losses) and
-- last_reference_mean (the mean the last check tested against).

CREATE VIEW @extschema@.stream_status AS
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
