-- 86: ready for a distributed engine (Citus, every per-stream table
-- distributed by stream_id).
--  * A new stream's id is derived from its name (_derive_stream_id, in
--    89_functions.sql), the same on every node, instead of a per-node
--    sequence: the sequence and its default go.  Streams of 0.1.0 keep
--    their ids.
--  * Every key of a per-stream table begins with stream_id; the ids the
--    lifecycle functions look up alone keep a plain index.
--    (reference_history is created that way by 80_explain.sql.)
--  * mlma.notify (a setting of the module) turns every NOTIFY off.

ALTER TABLE @extschema@.streams ALTER COLUMN stream_id DROP DEFAULT;
-- leaving the extension first also takes it out of pg_extension_config_dump
-- (DROP SEQUENCE alone would leave its oid in pg_extension.extconfig)
ALTER EXTENSION mlma DROP SEQUENCE @extschema@.streams_stream_id_seq;
DROP SEQUENCE @extschema@.streams_stream_id_seq;
ALTER TABLE @extschema@.streams
	ADD CONSTRAINT streams_stream_id_check CHECK (stream_id > 0);

-- a check's key is its batch (stream_id, batch_no), unique as before: one
-- index fewer to write for every check
ALTER TABLE @extschema@.checks DROP CONSTRAINT checks_pkey;
ALTER TABLE @extschema@.checks DROP CONSTRAINT checks_stream_id_batch_no_key;
ALTER TABLE @extschema@.checks ADD PRIMARY KEY (stream_id, batch_no);
CREATE INDEX checks_check_id_idx ON @extschema@.checks (check_id);

ALTER TABLE @extschema@.retrain_requests DROP CONSTRAINT retrain_requests_pkey;
ALTER TABLE @extschema@.retrain_requests ADD PRIMARY KEY (stream_id, request_id);
CREATE INDEX retrain_requests_request_id_idx
	ON @extschema@.retrain_requests (request_id);
