-- The views, as a fresh install defines them: dropped and created again
-- (their columns changed in ways CREATE OR REPLACE VIEW cannot follow),
-- with their privileges and comments.  Generated from the CREATE VIEW
-- statements of sql/install/*.sql, in the same order.
DROP VIEW IF EXISTS @extschema@.fleet_status CASCADE;
DROP VIEW IF EXISTS @extschema@.stream_status CASCADE;

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
	   q.status AS open_request_status,
	   c.p_adjusted AS last_p_adjusted,
	   @extschema@._decision_reason(c.status, c.check_mode, c.p_value,
			c.p_adjusted, coalesce(c.threshold, CASE WHEN c.check_mode = 'eager' THEN c.alpha END),
			c.effect, s.min_effect, c.significant, c.drift, st.streak,
			s.consecutive) AS last_decision_reason,
	   f.finished_at AS last_failed_at,
	   right(f.error, 200) AS last_failed_error
  FROM @extschema@.streams s
  JOIN @extschema@.stream_state st USING (stream_id)
  LEFT JOIN @extschema@.reference_batches r USING (stream_id)
  LEFT JOIN @extschema@.retrain_requests q
		 ON q.stream_id = s.stream_id AND q.status IN ('proposed', 'pending', 'claimed')
  LEFT JOIN LATERAL (SELECT count(*)::int AS batch_n,
							 @extschema@._mean(array_agg(ob.loss)) AS batch_mean
					   FROM @extschema@.observations ob
					  WHERE ob.stream_id = s.stream_id) o ON true
  LEFT JOIN LATERAL (SELECT ck.p_value, ck.effect, ck.drift, ck.checked_at,
							ck.p_adjusted, ck.status, ck.check_mode, ck.threshold,
							ck.alpha, ck.significant
					   FROM @extschema@.checks ck
					  WHERE ck.stream_id = s.stream_id AND ck.status = 'done'
					  ORDER BY ck.batch_no DESC
					  LIMIT 1) c ON true
  LEFT JOIN LATERAL (SELECT rf.finished_at, rf.error
					   FROM @extschema@.retrain_requests rf
					  WHERE rf.stream_id = s.stream_id AND rf.status = 'failed'
					  ORDER BY rf.requested_at DESC, rf.request_id DESC
					  LIMIT 1) f ON true;

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
		   count(*) FILTER (WHERE status = 'proposed') AS proposed_requests,
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
	   rq.proposed_requests + rq.pending_requests + rq.claimed_requests AS open_requests,
	   rq.pending_requests, rq.claimed_requests,
	   rq.completed_30d, rq.failed_30d, rq.dismissed_30d,
	   rq.median_time_to_retrain,
	   CASE WHEN rq.completed_30d + rq.failed_30d + rq.dismissed_30d > 0
			THEN rq.dismissed_30d::float8
				 / (rq.completed_30d + rq.failed_30d + rq.dismissed_30d) END
		   AS dismissal_rate_30d,
	   rq.proposed_requests
  FROM st, ck, wt, rq;

REVOKE ALL ON @extschema@.stream_status FROM PUBLIC;
GRANT SELECT ON @extschema@.stream_status TO mlma_reader;
GRANT ALL ON @extschema@.stream_status TO mlma_admin;
REVOKE ALL ON @extschema@.fleet_status FROM PUBLIC;
GRANT SELECT ON @extschema@.fleet_status TO mlma_reader;
GRANT ALL ON @extschema@.fleet_status TO mlma_admin;
