-- bench/report/bench.sql: times report() and dashboard queries of the views
-- on the fleet of fleet.sql (median of :runs runs, milliseconds).
\set ON_ERROR_STOP on
CREATE FUNCTION pg_temp.median_ms(q text, runs int) RETURNS numeric
LANGUAGE plpgsql AS $$
DECLARE
	t		timestamptz;
	ms		float8[] := '{}';
BEGIN
	FOR i IN 1 .. runs LOOP
		t := clock_timestamp();
		EXECUTE q;
		ms := ms || extract(epoch FROM clock_timestamp() - t) * 1000;
	END LOOP;
	RETURN round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(ms) x)::numeric, 1);
END;
$$;

SELECT (SELECT count(*) FROM mlma.streams) AS streams,
	   (SELECT count(*) FROM mlma.batches) AS batches,
	   (SELECT count(*) FROM mlma.checks) AS checks,
	   (SELECT count(*) FROM mlma.retrain_requests) AS requests,
	   (SELECT pg_size_pretty(length(mlma.report())::bigint)) AS report_size;

SELECT q.what, pg_temp.median_ms(q.sql, :runs) AS median_ms
  FROM (VALUES
	(1, 'report(), whole fleet', 'SELECT length(mlma.report())'),
	(2, 'report(''{"city": "london"}''), a sixth', $q$SELECT length(mlma.report('{"city": "london"}'))$q$),
	(3, 'report(since => ''7 days'')', $q$SELECT length(mlma.report(since => '7 days'))$q$),
	(4, 'fleet_daily, one day', $q$SELECT * FROM mlma.fleet_daily WHERE day = (now() AT TIME ZONE 'UTC')::date - 3$q$),
	(5, 'fleet_daily, 30 days', $q$SELECT * FROM mlma.fleet_daily WHERE day > (now() AT TIME ZONE 'UTC')::date - 30$q$),
	(6, 'batch_series, one stream, 30 days', $q$SELECT * FROM mlma.batch_series WHERE stream = (SELECT name FROM mlma.streams ORDER BY stream_id LIMIT 1 OFFSET 9) AND last_at > now() - interval '30 days'$q$),
	(7, 'batch_series, one day, whole fleet', $q$SELECT * FROM mlma.batch_series WHERE last_at >= date_trunc('day', now()) - interval '3 days' AND last_at < date_trunc('day', now()) - interval '2 days'$q$),
	(8, 'batch_series, one day, one stream', $q$SELECT * FROM mlma.batch_series WHERE stream_id = 10 AND last_at >= date_trunc('day', now()) - interval '3 days' AND last_at < date_trunc('day', now()) - interval '2 days'$q$)
  ) q(n, what, sql)
 ORDER BY q.n;
