-- one transaction of the soak: four forecasts of one stream into the
-- attached table (the trigger path).  Every tenth stream's error grows in
-- a one-minute sawtooth, so it drifts, gets retrained and warms again.
\set s random(1, 120)
INSERT INTO soak_preds (stream, actual, predicted)
SELECT 'soak/' || :s, a,
	   a + (random() - 0.5) * (1 + CASE WHEN :s % 10 = 0
										THEN 3 * (extract(epoch FROM now())::int % 60) / 60.0
										ELSE 0 END)
  FROM (SELECT 10 * random() AS a FROM generate_series(1, 4)) g;
