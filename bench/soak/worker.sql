-- a retrain worker speaking the agent protocol: the claim commits on its
-- own, then the request is completed with a new version in a second
-- transaction (every fifth one is failed instead)
SELECT coalesce((SELECT request_id FROM mlma.claim_retrain('soak-worker', '1 minute')), 0) AS rid \gset
\set r random(1, 5)
\if :rid > 0
\if :r = 1
SELECT mlma.fail_retrain(:rid, 'soak: simulated failure');
\else
SELECT mlma.complete_retrain(:rid, 'v' || :rid);
\endif
\endif
\sleep 100 ms
