-- soak verification: one "name|value" line per figure.  Every figure but
-- the informative ones (prefixed "info_") must be 0 for a PASS.
WITH o AS (SELECT stream_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi
			 FROM mlma.observations GROUP BY stream_id),
	 b AS (SELECT stream_id, count(*) AS n, sum(cardinality(losses)) AS obs
			 FROM mlma.batches GROUP BY stream_id),
	 st AS (SELECT s.stream_id, s.name, s.batch_size, t.open_start_seq, t.batch_no,
				   coalesce(o.n, 0) AS n_open, o.lo, o.hi,
				   coalesce(b.n, 0) AS n_closed, coalesce(b.obs, 0) AS closed_obs,
				   t.open_start_seq + coalesce(o.n, 0) AS total
			  FROM mlma.streams s JOIN mlma.stream_state t USING (stream_id)
			  LEFT JOIN o USING (stream_id) LEFT JOIN b USING (stream_id)),
	 logged AS (SELECT stream, count(*) AS n
				  FROM (SELECT stream FROM soak_preds
						UNION ALL SELECT stream FROM soak_direct) x
				 GROUP BY stream),
	 per_check AS (SELECT bt.stream_id, bt.batch_no, bt.role,
						  count(c.check_id) + count(q.batch_no) AS n,
						  count(q.batch_no) > 0 AS waiting
					 FROM mlma.batches bt
					 LEFT JOIN mlma.checks c USING (stream_id, batch_no)
					 LEFT JOIN mlma.check_queue q USING (stream_id, batch_no)
					GROUP BY 1, 2, 3)
SELECT 'info_observations|' || (SELECT sum(total) FROM st)
UNION ALL
SELECT 'info_logged_rows|' || (SELECT sum(n) FROM logged)
UNION ALL
SELECT 'streams_with_lost_or_extra_observations|' || count(*)
  FROM st LEFT JOIN logged l ON l.stream = st.name
 WHERE st.total <> coalesce(l.n, 0)
UNION ALL
SELECT 'streams_whose_state_disagrees_with_batches|' || count(*)
  FROM st
 WHERE open_start_seq <> closed_obs OR batch_no <> n_closed + 1 OR n_open >= batch_size
	OR (n_open > 0 AND (lo <> open_start_seq OR hi <> open_start_seq + n_open - 1))
UNION ALL
SELECT 'batches_not_full_or_not_contiguous|' || count(*)
  FROM (SELECT bt.*, s.batch_size,
			   coalesce(sum(cardinality(bt.losses)) OVER w, 0) AS before
		  FROM mlma.batches bt JOIN mlma.streams s USING (stream_id)
		WINDOW w AS (PARTITION BY bt.stream_id ORDER BY bt.batch_no
					 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)) x
 WHERE (x.role <> 'partial' AND cardinality(x.losses) <> x.batch_size)
	OR x.first_seq <> x.before
UNION ALL
SELECT 'info_closed_batches|' || count(*) FROM mlma.batches
UNION ALL
SELECT 'info_test_batches|' || count(*) FROM mlma.batches WHERE role = 'test'
UNION ALL
SELECT 'info_checks_done|' || count(*) FROM mlma.checks WHERE status = 'done'
UNION ALL
SELECT 'info_checks_skipped_after_retrain|' || count(*) FROM mlma.checks WHERE status = 'skipped'
UNION ALL
SELECT 'test_batches_not_checked|' || count(*) FROM per_check WHERE role = 'test' AND n = 0
UNION ALL
SELECT 'batches_checked_more_than_once|' || count(*) FROM per_check WHERE n > 1
UNION ALL
SELECT 'non_test_batches_with_a_check|' || count(*) FROM per_check WHERE role <> 'test' AND n > 0
UNION ALL
SELECT 'checks_still_waiting|' || count(*) FROM mlma.check_queue
UNION ALL
SELECT 'checks_without_batch|' || count(*)
  FROM mlma.checks c
 WHERE NOT EXISTS (SELECT 1 FROM mlma.batches bt
					WHERE bt.stream_id = c.stream_id AND bt.batch_no = c.batch_no)
UNION ALL
SELECT 'skipped_checks_of_a_live_version|' || count(*)
  FROM mlma.checks c JOIN mlma.batches bt USING (stream_id, batch_no)
  JOIN mlma.stream_state t USING (stream_id)
 WHERE c.status = 'skipped' AND bt.version_no = t.version_no
UNION ALL
SELECT 'drift_requests_without_drifting_check|' || count(*)
  FROM mlma.retrain_requests q LEFT JOIN mlma.checks c ON c.check_id = q.check_id
 WHERE q.reason = 'drift' AND (c.check_id IS NULL OR NOT c.drift)
UNION ALL
SELECT 'streams_with_two_open_requests|' || count(*)
  FROM (SELECT stream_id FROM mlma.retrain_requests
		 WHERE status IN ('pending', 'claimed') GROUP BY 1 HAVING count(*) > 1) x
UNION ALL
SELECT 'versions_not_matching_completed_retrains|' || count(*)
  FROM mlma.stream_state t
 WHERE t.version_no <> 1 + (SELECT count(*) FROM mlma.retrain_requests q
							 WHERE q.stream_id = t.stream_id AND q.status = 'completed')
UNION ALL
SELECT 'info_drift_checks|' || count(*) FROM mlma.checks WHERE drift
UNION ALL
SELECT 'info_requests_' || status || '|' || count(*)
  FROM mlma.retrain_requests GROUP BY status
UNION ALL
SELECT 'deadlocks|' || deadlocks FROM pg_stat_database WHERE datname = current_database();
