-- bench/replay/run.sh: time replay() over :n observations of one stream.
-- Only the table at the end is printed.
CREATE EXTENSION IF NOT EXISTS mlma;
\o /dev/null
SELECT mlma.create_stream('bench/replay', batch_size => 100, reference_size => 200,
						  reference_policy => 'rolling', alpha => 0.01);
SELECT setseed(0.5);
SELECT count(mlma.observe_loss('bench/replay',
		CASE WHEN (i / 50000) % 4 = 3 THEN 1.3 ELSE 1 END * (0.5 + random()),
		timestamptz '2024-01-01' + i * interval '1 minute'))
  FROM generate_series(1, :n) i;

CREATE TEMP TABLE timing (what text, seconds float8, rows bigint);
CREATE FUNCTION pg_temp.timed(p_what text, p_sql text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	t0	timestamptz := clock_timestamp();
	v_n	bigint;
BEGIN
	EXECUTE p_sql INTO v_n;
	INSERT INTO timing VALUES (p_what, extract(epoch FROM clock_timestamp() - t0), v_n);
END;
$$;
SELECT pg_temp.timed('replay, as configured (rolling, batch 100)',
	'SELECT count(*) FROM mlma.replay(''bench/replay'')');
SELECT pg_temp.timed('replay, fixed reference',
	'SELECT count(*) FROM mlma.replay(''bench/replay'', reference_policy => ''fixed'')');
SELECT pg_temp.timed('replay, batch_size 12',
	'SELECT count(*) FROM mlma.replay(''bench/replay'', batch_size => 12)');
SELECT pg_temp.timed('replay, mann_whitney',
	'SELECT count(*) FROM mlma.replay(''bench/replay'', method => ''mann_whitney'')');
SELECT pg_temp.timed('replay_fleet, scheduled',
	'SELECT count(*) FROM mlma.replay_fleet(''{}'', ''{"check_mode": "scheduled"}'')');

\o
SELECT what, rows AS tested_batches, round(seconds::numeric, 3) AS seconds,
	   round((seconds / (:n / 1e6))::numeric, 3) AS seconds_per_million
  FROM timing;
