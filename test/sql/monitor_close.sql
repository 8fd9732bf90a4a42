--
-- monitor_close: closing a batch moves its observations out of
-- mlma.observations (mlma._take_open_batch, C) into the columns of one
-- mlma.batches row: losses and benchmark losses in seq order, times as
-- second offsets from the first observation's (floored, clamped to int4),
-- first and last times.  Compared here with the same columns computed in
-- SQL from a copy of the open observations.
--
SET timezone = 'UTC';

SELECT mlma.create_stream('cl/a', batch_size => 6) > 0 AS created;

-- times out of order, before the first, fractional seconds, and offsets
-- beyond the int4 range; benchmark losses on some observations only
SELECT count(mlma.observe_loss('cl/a', l, t, b))
  FROM (VALUES (1.0, '2024-01-01 00:00:00.5'::timestamptz, NULL::float8),
			   (2.0, '2023-12-31 23:59:59.25', 0.5),
			   (3.0, '2024-01-01 00:00:10.999999', NULL),
			   (4.0, '2200-01-01 00:00:00', 1.5),
			   (5.0, '1850-01-01 00:00:00', NULL)) v(l, t, b);

CREATE TEMP TABLE open_copy AS
SELECT o.* FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'cl/a';

CREATE TEMP VIEW expected AS
WITH f AS (SELECT seq, observed_at, loss, benchmark_loss,
				  first_value(observed_at) OVER (ORDER BY seq) AS t0
			 FROM open_copy)
SELECT array_agg(loss ORDER BY seq) AS losses,
	   array_agg(greatest(-2147483648, least(2147483647,
				 floor(extract(epoch FROM observed_at - t0))))::int4 ORDER BY seq) AS offsets,
	   min(seq) AS first_seq, min(t0) AS first_at,
	   (array_agg(observed_at ORDER BY seq DESC))[1] AS last_at,
	   CASE WHEN count(benchmark_loss) > 0
			THEN array_agg(benchmark_loss ORDER BY seq) END AS benchmark_losses
  FROM f;

BEGIN;
SELECT mlma._lock_stream_id(stream_id) FROM mlma.streams WHERE name = 'cl/a';
CREATE TEMP TABLE taken AS
SELECT t.* FROM mlma.streams s, mlma._take_open_batch(s.stream_id, 0) t
 WHERE s.name = 'cl/a';
SELECT * FROM taken;
SELECT (SELECT row(e.*)::text FROM expected e) = (SELECT row(t.*)::text FROM taken t)
	   AS same_as_sql;
-- the observations are gone; nothing is left to take
SELECT count(*) AS open_obs FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'cl/a';
SELECT t.* FROM mlma.streams s, mlma._take_open_batch(s.stream_id, 0) t
 WHERE s.name = 'cl/a';
ROLLBACK;

-- without benchmark losses the column is NULL; a bound above the open
-- batch takes nothing
SELECT mlma.create_stream('cl/b', batch_size => 10) > 0 AS created;
SELECT count(mlma.observe_loss('cl/b', g, '2024-01-01'::timestamptz + g * interval '90 seconds'))
  FROM generate_series(1, 4) g;
BEGIN;
SELECT t.* FROM mlma.streams s, mlma._take_open_batch(s.stream_id, 2) t
 WHERE s.name = 'cl/b';
SELECT t.* FROM mlma.streams s, mlma._take_open_batch(s.stream_id, 100) t
 WHERE s.name = 'cl/b';
ROLLBACK;

-- a full batch closes into batches with these columns
SELECT count(mlma.observe_loss('cl/a', 6.0, '2024-01-01 00:01:00'));
SELECT b.batch_no, b.role, b.first_seq, b.first_at, b.last_at, b.losses, b.offsets,
	   b.benchmark_losses
  FROM mlma.batches b JOIN mlma.streams s USING (stream_id) WHERE s.name = 'cl/a';
SELECT count(*) AS open_obs FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'cl/a';

-- a trigger an administrator put on mlma.open_runs still fires: the
-- direct path (src/ingest_direct.c) steps aside for SQL, for the insert of
-- an observation as for the close that deletes it
BEGIN;
CREATE TEMP TABLE obs_audit (op text, seq bigint);
CREATE FUNCTION pg_temp.obs_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO obs_audit VALUES (TG_OP, OLD.seq);
		RETURN OLD;
	END IF;
	INSERT INTO obs_audit VALUES (TG_OP, NEW.seq);
	RETURN NEW;
END $$;
CREATE TRIGGER obs_audit AFTER INSERT OR DELETE ON mlma.open_runs
	FOR EACH ROW EXECUTE FUNCTION pg_temp.obs_audit();
SELECT count(mlma.observe_loss('cl/b', g, '2024-01-02'::timestamptz + g * interval '1 minute'))
  FROM generate_series(5, 10) g;
SELECT op, count(*), min(seq), max(seq) FROM obs_audit GROUP BY op ORDER BY op;
SELECT b.batch_no, b.first_seq, b.losses
  FROM mlma.batches b JOIN mlma.streams s USING (stream_id) WHERE s.name = 'cl/b';
ROLLBACK;

SELECT mlma.drop_stream('cl/a'), mlma.drop_stream('cl/b');
