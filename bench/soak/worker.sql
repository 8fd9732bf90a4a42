-- a retrain worker: claims the oldest request and deploys a new version
-- (every fifth claim fails instead, and the request stays finished)
\set r random(1, 5)
SELECT CASE WHEN :r = 1 THEN mlma.fail_retrain(request_id, 'soak: simulated failure')
			ELSE mlma.complete_retrain(request_id, 'v' || request_id) END
  FROM mlma.claim_retrain('soak-worker', '1 minute');
\sleep 100 ms
