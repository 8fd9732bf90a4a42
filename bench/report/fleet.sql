-- bench/report/fleet.sql: a fleet's 30 days of history, written directly into
-- mlma's tables (psql -v streams=1000 -v days=30 -f fleet.sql).
--
-- Every stream is a 15-minute model (batch_size 96: one batch a day).  Its
-- first batch is the reference, each later batch has a check.  One stream in
-- ten drifts on some day (its losses rise by half); the request that follows
-- is completed (a new version warms from the next day), dismissed (the drift
-- was a one-day blip), failed (a second request is pending), claimed or
-- still pending.  A few streams are paused.  p-values of healthy batches are
-- uniform, so the fleet's histogram is flat with a spike near 0.  Times end
-- at the current hour, as in a live fleet.
\set ON_ERROR_STOP on
SELECT setseed(0.42);

CREATE TEMP TABLE fleet_plan AS
WITH s AS (
	SELECT s,
		   (ARRAY['london','paris','berlin','madrid','rome','vienna'])[1 + s % 6] AS city,
		   0.8 + 0.4 * ((s * 37) % 11) / 10.0 AS level,
		   CASE WHEN s % 10 = 0 THEN 8 + (s * 7) % (:days - 12) END AS k,
		   CASE (s / 10) % 5 WHEN 0 THEN 'completed' WHEN 1 THEN 'dismissed'
				WHEN 2 THEN 'failed' WHEN 3 THEN 'claimed' ELSE 'pending' END AS outcome
	  FROM generate_series(1, :streams) s
)
SELECT s.*, d,
	   date_trunc('hour', now()) - (:days - d) * interval '1 day' AS first_at,
	   CASE WHEN s.outcome = 'completed' AND d > s.k THEN 2 ELSE 1 END AS version_no,
	   CASE WHEN d = 0 OR (s.outcome = 'completed' AND d = s.k + 1) THEN 'reference'
			ELSE 'test' END AS role,
	   d >= s.k AND NOT (s.outcome = 'completed' AND d > s.k)
			AND NOT (s.outcome = 'dismissed' AND d > s.k) AS drifted,
	   random() AS u
  FROM s, generate_series(0, :days - 1) d;

INSERT INTO mlma.streams (stream_id, name, batch_size, reference_size, method,
	alpha, loss, model_version, labels, check_mode, reference_policy, min_effect,
	consecutive, paused, version_started_at, created_at)
SELECT s, format('%s/zone-%s/orders', city, lpad(s::text, 4, '0')), 96, 96, 'welch',
	   0.05, 'absolute', CASE WHEN outcome = 'completed' AND k IS NOT NULL THEN 'v2' ELSE 'v1' END,
	   jsonb_build_object('city', city, 'team', CASE WHEN s % 3 = 0 THEN 'growth' ELSE 'ops' END),
	   'eager', 'fixed', 1.1, 1, s % 97 = 0,
	   min(first_at), min(first_at)
  FROM fleet_plan GROUP BY s, city, outcome, k;
-- (numbered 1..:streams like streams of 0.1.0; a stream created later
-- gets the id derived from its name, 63 bits: practically never one of these)

INSERT INTO mlma.batches (stream_id, batch_no, model_version, version_no, role,
	first_seq, first_at, last_at, losses, offsets)
SELECT s, d + 1, 'v' || version_no, version_no, role, d * 96, first_at,
	   first_at + interval '23 hours 45 minutes',
	   ARRAY(SELECT level * (CASE WHEN drifted THEN 1.5 ELSE 1 END) * (0.5 + random())
			   FROM generate_series(1, 96) i WHERE i > d * 0),  -- (d: one draw per batch)
	   ARRAY(SELECT i * 900 FROM generate_series(0, 95) i)
  FROM fleet_plan;

CREATE TEMP TABLE fleet_ref AS
SELECT b.stream_id, b.version_no, b.model_version, b.losses, b.first_seq,
	   (SELECT avg(x) FROM unnest(b.losses) x) AS mean
  FROM mlma.batches b WHERE b.role = 'reference';

INSERT INTO mlma.checks (stream_id, model_version, batch_no, method, alpha,
	check_mode, status, n_reference, n_current, reference_mean, batch_mean,
	statistic, p_value, effect, significant, drift, created_at, checked_at)
SELECT b.stream_id, b.model_version, b.batch_no, 'welch', 0.05, 'eager', 'done',
	   96, 96, r.mean, m.mean, 0, p.p, m.mean / r.mean,
	   p.p <= 0.05 AND m.mean / r.mean >= 1.1, p.p <= 0.05 AND m.mean / r.mean >= 1.1,
	   b.last_at + interval '1 minute', b.last_at + interval '1 minute'
  FROM mlma.batches b
  JOIN fleet_plan f ON f.s = b.stream_id AND f.d = b.batch_no - 1
  JOIN fleet_ref r ON r.stream_id = b.stream_id AND r.version_no = b.version_no
  CROSS JOIN LATERAL (SELECT avg(x) AS mean FROM unnest(b.losses) x) m
  CROSS JOIN LATERAL (SELECT f.u * CASE WHEN f.drifted THEN 1e-6 ELSE 1 END AS p) p
 WHERE b.role = 'test';

-- the request of each drifting stream (and the second one of a failed retrain)
INSERT INTO mlma.retrain_requests (stream_id, model_version, reason, status,
	p_value, effect, check_id, note, requested_at, claimed_by, claimed_at,
	lease_until, finished_at, new_model_version, error)
SELECT c.stream_id, c.model_version, 'drift', x.status, c.p_value, c.effect,
	   c.check_id, CASE WHEN x.status = 'dismissed' THEN 'holiday traffic, not the model' END,
	   c.checked_at,
	   CASE WHEN x.status IN ('claimed', 'completed', 'failed') THEN 'agent-1' END,
	   CASE WHEN x.status IN ('claimed', 'completed', 'failed') THEN c.checked_at + interval '5 minutes' END,
	   CASE WHEN x.status = 'claimed' THEN now() + interval '1 hour' END,
	   CASE WHEN x.status IN ('completed', 'failed', 'dismissed')
			THEN c.checked_at + interval '40 minutes' + (c.stream_id % 7) * interval '10 minutes' END,
	   CASE WHEN x.status = 'completed' THEN 'v2' END,
	   CASE WHEN x.status = 'failed' THEN 'training job ran out of memory' END
  FROM fleet_plan f
  JOIN mlma.checks c ON c.stream_id = f.s AND c.batch_no = f.d + 1
  CROSS JOIN LATERAL (VALUES (f.outcome)) x(status)
 WHERE f.d = f.k
UNION ALL
SELECT c.stream_id, c.model_version, 'drift', 'pending', c.p_value, c.effect,
	   c.check_id, NULL, c.checked_at, NULL, NULL, NULL, NULL, NULL, NULL
  FROM fleet_plan f
  JOIN mlma.checks c ON c.stream_id = f.s AND c.batch_no = f.d + 2
 WHERE f.d = f.k AND f.outcome = 'failed';

INSERT INTO mlma.stream_state (stream_id, open_start_seq, batch_no, version_no,
	version_start_seq, streak)
SELECT f.s, :days * 96, :days + 1, max(f.version_no),
	   max(CASE WHEN f.role = 'reference' THEN f.d * 96 END),
	   CASE WHEN bool_or(f.drifted AND f.d = :days - 1) THEN 1 ELSE 0 END
  FROM fleet_plan f GROUP BY f.s;

INSERT INTO mlma.reference_batches (stream_id, version_no, model_version, source,
	losses, seqs, end_seq, mean, built_at)
SELECT DISTINCT ON (r.stream_id) r.stream_id, r.version_no, r.model_version, 'warmup',
	   r.losses, ARRAY(SELECT r.first_seq + g FROM generate_series(0, 95) g),
	   r.first_seq + 96, r.mean, now()
  FROM fleet_ref r ORDER BY r.stream_id, r.version_no DESC;

-- as autovacuum would have on a live fleet (statistics, visibility map)
VACUUM ANALYZE mlma.streams, mlma.stream_state, mlma.batches, mlma.checks,
	mlma.retrain_requests, mlma.reference_batches;
