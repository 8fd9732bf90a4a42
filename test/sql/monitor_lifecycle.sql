--
-- monitor_lifecycle: a stream that warms, passes, drifts, is retrained and
-- warms again.  Hourly forecasts, one batch per day (24 observations).
--
-- a database of its own, so that claim_retrain only sees this story
CREATE DATABASE mlma_lifecycle;
\c mlma_lifecycle
CREATE EXTENSION mlma;
SET timezone = 'UTC';
SELECT setseed(0.25);

-- errors are shown as SQLSTATE and message, numbers masked
CREATE FUNCTION pg_temp.try(q text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9]+', 'N', 'g');
END;
$$;

SELECT mlma.create_stream('london/zone-042/orders', batch_size => 24,
						  labels => '{"city": "london", "team": "ops"}') > 0 AS created;

-- a compact view of the stream for this test
CREATE TEMP VIEW st AS
SELECT name, state, model_version, reference_source AS ref_source,
	   reference_n AS ref_n, round(reference_mean::numeric, 4) AS ref_mean,
	   batch_no, batch_n, round(batch_mean::numeric, 4) AS batch_mean,
	   observations, round(last_p_value::numeric, 6) AS last_p,
	   round(last_effect::numeric, 3) AS last_effect,
	   open_request_id IS NOT NULL AS has_request, retrains_30d
  FROM mlma.stream_status WHERE name = 'london/zone-042/orders';

-- hours h0..h1 of day d: actual 100, prediction off by up to `scale`
CREATE FUNCTION pg_temp.hours(d int, h0 int, h1 int, scale float8) RETURNS bigint
LANGUAGE sql AS $$
	SELECT count(mlma.observe('london/zone-042/orders', 100,
							  100 + (random() * 2 - 1) * scale,
							  '2024-03-01'::timestamptz + (d * 24 + h) * interval '1 hour'))
	  FROM generate_series(h0, h1) h
$$;
CREATE FUNCTION pg_temp.day(d int, scale float8) RETURNS bigint
LANGUAGE sql AS $$ SELECT pg_temp.hours(d, 0, 23, scale) $$;

-- a new stream is warming: no reference yet
SELECT * FROM st;

-- half a day: the open batch grows, still warming
SELECT pg_temp.hours(0, 0, 11, 2);
SELECT * FROM st;
SELECT count(*) AS open_rows FROM mlma.observations o
  JOIN mlma.streams s USING (stream_id) WHERE s.name = 'london/zone-042/orders';

-- the rest of day 0 closes batch 1, which becomes the reference (no check)
SELECT pg_temp.hours(0, 12, 23, 2);
SELECT * FROM st;
SELECT count(*) AS checks FROM mlma.checks c
  JOIN mlma.streams s USING (stream_id) WHERE s.name = 'london/zone-042/orders';

-- days 1 and 2: the same error level, both batches pass
SELECT pg_temp.day(1, 2), pg_temp.day(2, 2);
SELECT * FROM st;

-- day 3: errors three times larger, the batch is flagged
SELECT pg_temp.day(3, 6);
SELECT * FROM st;

-- the checks so far
SELECT c.batch_no, c.model_version, c.method, c.status, c.n_reference,
	   c.n_current, round(c.p_value::numeric, 6) AS p_value,
	   round(c.effect::numeric, 3) AS effect, c.significant, c.drift,
	   c.checked_at IS NOT NULL AS checked
  FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'london/zone-042/orders' ORDER BY c.batch_no;

-- the check equals welch_test on the stored arrays
SELECT round(w.p_value::numeric, 12) = round(c.p_value::numeric, 12) AS same_p
  FROM mlma.checks c
  JOIN mlma.batches b USING (stream_id, batch_no)
  JOIN mlma.batches r ON r.stream_id = b.stream_id AND r.batch_no = 1,
	   LATERAL mlma.welch_test(r.losses, b.losses) w
 WHERE b.batch_no = 4 AND c.stream_id = (SELECT stream_id FROM mlma.streams
										  WHERE name = 'london/zone-042/orders');

-- closed batches are stored as arrays: losses and second offsets
SELECT b.batch_no, b.role, b.model_version, b.first_seq, b.first_at, b.last_at,
	   cardinality(b.losses) AS n, b.offsets[1:3] AS first_offsets
  FROM mlma.batches b JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'london/zone-042/orders' ORDER BY b.batch_no;

-- the retrain request and the NOTIFY payload sent with it (ids masked)
SELECT r.reason, r.status, r.model_version, round(r.p_value::numeric, 6) AS p_value,
	   round(r.effect::numeric, 3) AS effect, r.check_id = c.check_id AS from_check
  FROM mlma.retrain_requests r
  JOIN mlma.streams s USING (stream_id)
  JOIN mlma.checks c ON c.stream_id = r.stream_id AND c.batch_no = 4
 WHERE s.name = 'london/zone-042/orders';
SELECT regexp_replace(regexp_replace(mlma._notify_payload(r.request_id),
			'"(request_id|stream_id)":[0-9]+', '"\1":N', 'g'),
			'"(p_value|effect)":[-+.e0-9]+', '"\1":X', 'g') AS payload,
	   (mlma._notify_payload(r.request_id)::json->>'effect')::float8 = r.effect AS effect_matches
  FROM mlma.retrain_requests r JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'london/zone-042/orders';

-- day 4 drifts as well: the check is recorded, but no second request
SELECT pg_temp.day(4, 6);
SELECT count(*) FILTER (WHERE c.drift) AS drifting_checks,
	   (SELECT count(*) FROM mlma.retrain_requests r WHERE r.stream_id = s.stream_id) AS requests
  FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'london/zone-042/orders'
 GROUP BY s.stream_id;
SELECT mlma.request_retrain('london/zone-042/orders', 'asked twice')
	   = (SELECT open_request_id FROM mlma.stream_status
		   WHERE name = 'london/zone-042/orders') AS same_request;

-- half of day 5, then an agent claims the request: the stream is retraining
SELECT pg_temp.hours(5, 0, 11, 6);
SELECT stream, model_version, reason, round(p_value::numeric, 6) AS p_value
  FROM mlma.claim_retrain('worker-1', '10 minutes');
SELECT claimed_by, status, lease_until - claimed_at AS lease
  FROM mlma.retrain_requests;
SELECT * FROM st;
-- nothing else to claim
SELECT count(*) FROM mlma.claim_retrain('worker-2');

-- the agent completes it with model v2: the open half batch of v1 is closed
-- as 'partial' (never tested) and v2 warms its own reference
SELECT mlma.complete_retrain(request_id, 'v2') FROM mlma.retrain_requests;
SELECT status, new_model_version, finished_at IS NOT NULL AS finished
  FROM mlma.retrain_requests;
SELECT * FROM st;

-- v2 is better: errors up to 1.5; one day warms, the next one is tested
SELECT pg_temp.hours(5, 12, 23, 1.5);
SELECT * FROM st;
SELECT pg_temp.hours(6, 0, 11, 1.5);
SELECT * FROM st;
SELECT pg_temp.hours(6, 12, 23, 1.5), pg_temp.hours(7, 0, 11, 1.5);
SELECT * FROM st;
SELECT b.batch_no, b.role, b.model_version, b.first_at, cardinality(b.losses) AS n
  FROM mlma.batches b JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'london/zone-042/orders' ORDER BY b.batch_no;

-- finished requests cannot change any more; wrong input is refused
SELECT pg_temp.try($$SELECT mlma.complete_retrain(request_id, 'v3') FROM mlma.retrain_requests$$);
SELECT pg_temp.try($$SELECT mlma.fail_retrain(request_id, 'late') FROM mlma.retrain_requests$$);
SELECT pg_temp.try($$SELECT mlma.dismiss(request_id, 'late') FROM mlma.retrain_requests$$);
SELECT pg_temp.try($$SELECT mlma.complete_retrain(999999, 'v3')$$);
SELECT pg_temp.try($$SELECT mlma.complete_retrain(NULL, 'v3')$$);
SELECT pg_temp.try($$SELECT mlma.complete_retrain(1, '')$$);
SELECT pg_temp.try($$SELECT mlma.claim_retrain('w', '-1 hour')$$);
SELECT pg_temp.try($$SELECT mlma.claim_retrain('', '1 hour')$$);
SELECT pg_temp.try($$SELECT mlma.request_retrain('no/such/stream')$$);

-- a manual request, failed by the agent, then a new one dismissed
SELECT mlma.request_retrain('london/zone-042/orders', 'new features') IS NOT NULL AS requested;
SELECT mlma.fail_retrain(request_id, 'trainer crashed')
  FROM mlma.claim_retrain('worker-1');
SELECT mlma.request_retrain('london/zone-042/orders') IS NOT NULL AS requested;
SELECT pg_temp.try($$SELECT mlma.dismiss(max(request_id), 'no', accept_as_reference => true)
					   FROM mlma.retrain_requests$$);
SELECT mlma.dismiss(max(request_id), 'not needed') FROM mlma.retrain_requests;
SELECT reason, status, note, error FROM mlma.retrain_requests ORDER BY request_id;
SELECT * FROM st;

-- pause: observations are still recorded and batches closed, but no check
-- runs and no request is raised, even for errors twenty times larger
SELECT mlma.pause('london/zone-042/orders');
SELECT pg_temp.hours(7, 12, 23, 30), pg_temp.hours(8, 0, 11, 30);
SELECT * FROM st;
SELECT mlma.resume('london/zone-042/orders');
SELECT * FROM st;

-- the next day drifts; the engineer accepts it as the new normal
SELECT pg_temp.hours(8, 12, 23, 5), pg_temp.hours(9, 0, 11, 5);
SELECT * FROM st;
SELECT mlma.dismiss(open_request_id, 'demand doubled, expected',
					accept_as_reference => true)
  FROM mlma.stream_status WHERE name = 'london/zone-042/orders';
SELECT * FROM st;
SELECT reason, status, note FROM mlma.retrain_requests ORDER BY request_id;

-- expired leases return to the queue
SELECT mlma.request_retrain('london/zone-042/orders', 'lease test') IS NOT NULL AS requested;
SELECT count(*) FROM mlma.claim_retrain('worker-1', '1 microsecond');
SELECT pg_sleep(0.01);
SELECT stream, reason FROM mlma.claim_retrain('worker-2');
SELECT claimed_by, status FROM mlma.retrain_requests WHERE note = 'lease test';

SELECT mlma.drop_stream('london/zone-042/orders');
SELECT count(*) FROM mlma.stream_status WHERE name = 'london/zone-042/orders';
SELECT count(*) FROM mlma.retrain_requests;
SELECT count(*) FROM mlma.batches;

\c contrib_regression
DROP DATABASE mlma_lifecycle;
