-- mlma: the per-stream status view
--
-- state, by precedence: paused; retraining (a request is claimed, or a
-- manual request is pending); drift (a drift or age request is pending, or
-- proposed and waiting for approval: open_request_status tells which);
-- warming (no reference yet for this model version); monitoring.
-- skipped: rows of attached tables left out under on_invalid 'skip', with
-- the last reason and time.

CREATE VIEW @extschema@.stream_status AS
SELECT s.stream_id,
	   s.name,
	   s.labels,
	   CASE WHEN s.paused THEN 'paused'
			WHEN q.status = 'claimed' OR q.reason = 'manual' THEN 'retraining'
			WHEN q.status IN ('pending', 'proposed') THEN 'drift'
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
		   AND rr.finished_at > now() - interval '30 days') AS retrains_30d,
	   st.skipped,
	   st.last_skip_reason,
	   st.last_skip_at,
	   q.status AS open_request_status
  FROM @extschema@.streams s
  JOIN @extschema@.stream_state st USING (stream_id)
  LEFT JOIN @extschema@.reference_batches r USING (stream_id)
  LEFT JOIN @extschema@.retrain_requests q
		 ON q.stream_id = s.stream_id AND q.status IN ('proposed', 'pending', 'claimed')
  LEFT JOIN LATERAL (SELECT count(*)::int AS batch_n,
							 @extschema@._mean(array_agg(ob.loss)) AS batch_mean
					   FROM @extschema@.observations ob
					  WHERE ob.stream_id = s.stream_id) o ON true
  LEFT JOIN LATERAL (SELECT ck.p_value, ck.effect, ck.drift, ck.checked_at
					   FROM @extschema@.checks ck
					  WHERE ck.stream_id = s.stream_id AND ck.status = 'done'
					  ORDER BY ck.batch_no DESC
					  LIMIT 1) c ON true;
