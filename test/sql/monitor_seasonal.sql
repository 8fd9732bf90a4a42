--
-- monitor_seasonal: seasonal pairing, and the reference policies.
--
-- Hourly streams with a daily cycle: afternoon forecasts (hours 12-23) are
-- harder, their losses are four times larger.  Batches of 6 hours.  Without
-- season_length an afternoon batch is compared with the whole day and looks
-- like drift; with season_length => 24 it is compared with the afternoon
-- hours of the reference day.
--
SET timezone = 'UTC';
\set VERBOSITY terse

SELECT mlma.create_stream('season/unpaired', batch_size => 6, reference_size => 24) > 0,
	   mlma.create_stream('season/paired', batch_size => 6, season_length => 24) > 0,
	   mlma.create_stream('season/dm', batch_size => 6, season_length => 24, method => 'dm') > 0,
	   mlma.create_stream('season/hac', batch_size => 6, season_length => 24, method => 'hac') > 0;
SELECT name, reference_size FROM mlma.streams WHERE name LIKE 'season/%' ORDER BY name;

-- loss at hour g: `am` in the morning, 4 * `pm` in the afternoon,
-- with a small deterministic wiggle
CREATE FUNCTION pg_temp.feed(g0 int, g1 int, am float8, pm float8) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(mlma.observe_loss(n, CASE WHEN g % 24 < 12 THEN am ELSE 4 * pm END
									  * (1 + 0.1 * abs(sin(g * 1.7))),
								   '2024-05-01'::timestamptz + g * interval '1 hour'))
	  FROM generate_series(g0, g1) g,
		   unnest(ARRAY['season/unpaired', 'season/paired', 'season/dm', 'season/hac']) n
$$;

-- day 0 is the reference of every stream; day 1 has the same profile
SELECT pg_temp.feed(0, 47, 1, 1);
SELECT s.name, c.batch_no, c.n_reference, c.n_current,
	   round(c.reference_mean::numeric, 3) AS ref_mean,
	   round(c.batch_mean::numeric, 3) AS batch_mean,
	   round(c.p_value::numeric, 4) AS p_value, round(c.effect::numeric, 3) AS effect,
	   c.drift
  FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
 WHERE s.name LIKE 'season/%' ORDER BY s.name, c.batch_no;
SELECT name, state FROM mlma.stream_status WHERE name LIKE 'season/%' ORDER BY name;

-- the paired reference sample of a batch is the reference at the same hours
SELECT e.n_reference, round(e.reference_mean::numeric, 3) AS ref_mean
  FROM mlma.streams s, mlma.evaluate_batch(s.stream_id, 7) e
 WHERE s.name = 'season/paired';
SELECT round(avg(l)::numeric, 3) AS ref_hours_12_to_17
  FROM mlma.reference_batches r JOIN mlma.streams s USING (stream_id),
	   unnest(r.losses, r.seqs) AS u(l, q)
 WHERE s.name = 'season/paired' AND q % 24 BETWEEN 12 AND 17;

-- day 2: the afternoon gets 50% worse; the paired streams flag it
SELECT pg_temp.feed(48, 71, 1, 1.5);
SELECT s.name, c.batch_no, round(c.p_value::numeric, 4) AS p_value,
	   round(c.effect::numeric, 3) AS effect, c.drift
  FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
 WHERE s.name LIKE 'season/%' AND c.batch_no > 8 ORDER BY s.name, c.batch_no;

-- Reference policies.  A slow, benign drift: +1.5% loss per batch of 12.
-- The fixed reference ends up flagging it, the rolling one follows it.
SELECT mlma.create_stream('policy/fixed', batch_size => 12) > 0,
	   mlma.create_stream('policy/rolling', batch_size => 12,
						  reference_policy => 'rolling') > 0;
CREATE FUNCTION pg_temp.slow(g0 int, g1 int) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(mlma.observe_loss(n, power(1.015, g / 12) * (1 + 0.5 * abs(sin(g * 1.3))),
								   '2024-05-01'::timestamptz + g * interval '1 hour'))
	  FROM generate_series(g0, g1) g,
		   unnest(ARRAY['policy/fixed', 'policy/rolling']) n
$$;
SELECT pg_temp.slow(0, 239);
SELECT s.name, count(*) AS checks, count(*) FILTER (WHERE c.drift) AS drifts,
	   min(c.batch_no) FILTER (WHERE c.drift) AS first_drift
  FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
 WHERE s.name LIKE 'policy/%' GROUP BY s.name ORDER BY s.name;
SELECT name, state, reference_source, reference_n,
	   round(reference_mean::numeric, 3) AS ref_mean
  FROM mlma.stream_status WHERE name LIKE 'policy/%' ORDER BY name;
-- the rolling reference holds the last reference_size passing observations
SELECT r.seqs[1] AS first_seq, r.seqs[12] AS last_seq
  FROM mlma.reference_batches r JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'policy/rolling';

-- pin_reference: the first day becomes the reference, and is not rolled
SELECT mlma.pin_reference('policy/rolling', '2024-05-01 00:00+00', '2024-05-01 23:59+00');
SELECT pg_temp.slow(240, 263);
SELECT name, reference_source, reference_n, round(reference_mean::numeric, 3) AS ref_mean
  FROM mlma.stream_status WHERE name = 'policy/rolling';
SELECT c.batch_no, round(c.effect::numeric, 3) AS effect, c.drift
  FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'policy/rolling' AND c.batch_no > 20 ORDER BY c.batch_no;
SELECT mlma.pin_reference('policy/rolling', '2030-01-01', '2030-01-02');
SELECT mlma.pin_reference('policy/rolling', '2024-05-02', '2024-05-01');

-- consecutive => 2: one bad batch is significant but not yet drift
SELECT mlma.create_stream('policy/twice', batch_size => 8, consecutive => 2) > 0;
SELECT count(mlma.observe_loss('policy/twice', CASE WHEN g < 16 THEN 1 ELSE 3 END
												+ 0.2 * abs(sin(g * 1.3))))
  FROM generate_series(0, 23) g;
SELECT c.batch_no, c.significant, c.drift FROM mlma.checks c
  JOIN mlma.streams s USING (stream_id) WHERE s.name = 'policy/twice' ORDER BY c.batch_no;
SELECT count(mlma.observe_loss('policy/twice', 3 + 0.2 * abs(sin(g * 1.3))))
  FROM generate_series(24, 31) g;
SELECT c.batch_no, c.significant, c.drift FROM mlma.checks c
  JOIN mlma.streams s USING (stream_id) WHERE s.name = 'policy/twice' ORDER BY c.batch_no;
SELECT state FROM mlma.stream_status WHERE name = 'policy/twice';

-- min_effect => 2: a clearly significant 50% increase is not enough
SELECT mlma.create_stream('policy/effect', batch_size => 8, min_effect => 2) > 0;
SELECT count(mlma.observe_loss('policy/effect', CASE WHEN g < 8 THEN 1 ELSE 1.5 END
												 + 0.05 * abs(sin(g * 1.3))))
  FROM generate_series(0, 15) g;
SELECT round(c.p_value::numeric, 6) AS p_value, round(c.effect::numeric, 3) AS effect,
	   c.significant, c.drift
  FROM mlma.checks c JOIN mlma.streams s USING (stream_id) WHERE s.name = 'policy/effect';

-- a perfect model: reference mean 0; effect is 1 for a perfect batch and
-- +Infinity (reported as null in the notification) for any loss
SELECT mlma.create_stream('policy/perfect', batch_size => 4, method => 'mann_whitney') > 0;
SELECT count(mlma.observe_loss('policy/perfect', CASE WHEN g < 8 THEN 0 ELSE 1 END))
  FROM generate_series(0, 11) g;
SELECT c.batch_no, c.p_value, c.effect, c.drift FROM mlma.checks c
  JOIN mlma.streams s USING (stream_id) WHERE s.name = 'policy/perfect' ORDER BY c.batch_no;
SELECT mlma._notify_payload(r.request_id)::json->'effect' AS payload_effect
  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'policy/perfect';

SELECT mlma.drop_stream(name) FROM mlma.streams
 WHERE name LIKE 'season/%' OR name LIKE 'policy/%';

-- max_model_age: the first observation after the version got too old raises
-- one request with reason 'age' (p_value and effect null)
SELECT mlma.create_stream('policy/age', batch_size => 4, max_model_age => '1 millisecond') > 0;
SELECT pg_sleep(0.01);
SELECT mlma.observe_loss('policy/age', 1);
SELECT mlma.observe_loss('policy/age', 1);
SELECT r.reason, r.status, r.p_value, r.effect, r.note LIKE 'model version v1 deployed at % is older than %' AS note_ok
  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id) WHERE s.name = 'policy/age';
SELECT state FROM mlma.stream_status WHERE name = 'policy/age';
-- once per model version: after dismissing it, no new age request
SELECT mlma.dismiss(r.request_id, 'later')
  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id) WHERE s.name = 'policy/age';
SELECT mlma.observe_loss('policy/age', 1);
SELECT count(*) FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'policy/age';
SELECT mlma.drop_stream('policy/age');
