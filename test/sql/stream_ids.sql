--
-- stream_ids: a new stream's id is derived from its name (the first 63
-- bits of the SHA-256 of its UTF-8 bytes), the same on every node; another
-- stream holding that id is an error, never a merge; a stream dropped and
-- created again gets its id back with none of its old history.
--
CREATE FUNCTION pg_temp.try(q text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END;
$$;

-- the values of an independent implementation (Python):
--   int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], 'big') & (2**63 - 1)
SELECT name, mlma._derive_stream_id(name) AS stream_id,
	   mlma._derive_stream_id(name) = expected AS same
  FROM (VALUES ('london/zone-042/orders', 1463882931163730216),
			   ('zürich/øre', 8673934892020029975),
			   ('cfg/defaults', 5371437740804373581)) v(name, expected);

SELECT mlma.create_stream('ids/a', batch_size => 4, min_effect => 0)
	   = mlma._derive_stream_id('ids/a') AS derived;

-- history of ids/a: a reference, a drifting batch with its check and
-- request, an open batch
SELECT count(mlma.observe_loss('ids/a', l))
  FROM unnest('{1, 1.1, 0.9, 1.05, 10, 10.2, 9.8, 10.1, 3}'::float8[]) l;
CREATE TEMP VIEW ids_history AS
SELECT (SELECT count(*) FROM mlma.observations WHERE stream_id = s.stream_id) AS observations,
	   (SELECT count(*) FROM mlma.batches WHERE stream_id = s.stream_id) AS batches,
	   (SELECT count(*) FROM mlma.reference_batches WHERE stream_id = s.stream_id) AS refs,
	   (SELECT count(*) FROM mlma.reference_history WHERE stream_id = s.stream_id) AS ref_history,
	   (SELECT count(*) FROM mlma.checks WHERE stream_id = s.stream_id) AS checks,
	   (SELECT count(*) FROM mlma.retrain_requests WHERE stream_id = s.stream_id) AS requests,
	   st.batch_no, st.version_no, st.streak
  FROM mlma.streams s JOIN mlma.stream_state st USING (stream_id)
 WHERE s.name = 'ids/a';
SELECT * FROM ids_history;

-- dropped and created again: the same id, nothing of the old stream
SELECT mlma.drop_stream('ids/a');
SELECT mlma.create_stream('ids/a', batch_size => 4)
	   = mlma._derive_stream_id('ids/a') AS same_id_again;
SELECT * FROM ids_history;
SELECT state, batch_n, open_request_id, retrains_30d
  FROM mlma.stream_status WHERE name = 'ids/a';

-- a new stream's config_version starts at a random value in [1, 2^30]
-- (never 0 or negative: the hot path uses -1 as "matches nothing")
SELECT count(mlma.create_stream('ids/many-' || g, batch_size => 4))
  FROM generate_series(1, 200) g;
SELECT min(st.config_version) >= 1 AS positive,
	   max(st.config_version) <= 1073741824 AS bounded,
	   count(DISTINCT st.config_version) > 190 AS spread
  FROM mlma.stream_state st JOIN mlma.streams s USING (stream_id)
 WHERE s.name LIKE 'ids/many-%';
SELECT count(mlma.drop_stream(name)) FROM mlma.streams WHERE name LIKE 'ids/many-%';

-- another stream holds the id derived from a name (put in by hand here; by
-- the hash, practically impossible): creating that name is an error
INSERT INTO mlma.streams (stream_id, name, batch_size, reference_size, method,
	alpha, loss, model_version, check_mode, reference_policy, min_effect, consecutive)
VALUES (mlma._derive_stream_id('ids/victim'), 'ids/squatter', 4, 4, 'welch',
	0.05, 'absolute', 'v1', 'eager', 'fixed', 1, 1);
INSERT INTO mlma.stream_state (stream_id) VALUES (mlma._derive_stream_id('ids/victim'));
SELECT pg_temp.try($$SELECT mlma.create_stream('ids/victim')$$);
-- so is its first row in an attached table
CREATE TABLE ids_t (zone text, actual float8, predicted float8);
SELECT mlma.attach('ids_t', 'zone', 'actual', 'predicted');
SELECT pg_temp.try($$INSERT INTO ids_t VALUES ('ids/victim', 1, 2)$$);
SELECT pg_temp.try($$INSERT INTO ids_t VALUES ('ids/victim', 1, 2), ('ids/b', 1, 2)$$);
-- nothing was merged into the other stream
SELECT s.name, (SELECT count(*) FROM mlma.observations o WHERE o.stream_id = s.stream_id) AS observations
  FROM mlma.streams s WHERE s.name LIKE 'ids/%' ORDER BY s.name;
-- a stream id must be positive
SELECT pg_temp.try($$INSERT INTO mlma.streams (stream_id, name, batch_size, reference_size,
	method, alpha, loss, model_version, check_mode, reference_policy, min_effect, consecutive)
	VALUES (0, 'ids/zero', 4, 4, 'welch', 0.05, 'absolute', 'v1', 'eager', 'fixed', 1, 1)$$);

SELECT mlma.detach('ids_t');
DROP TABLE ids_t;
SELECT mlma.drop_stream(name) FROM mlma.streams WHERE name LIKE 'ids/%';
