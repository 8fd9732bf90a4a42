-- mlma 0.1.0 -> 0.2.0: ingest at platform scale.
--  * the writer lock of a stream is a row lock on its stream_state row
--    (src/stream.c; _lock_stream_id and _try_lock_stream_id keep their
--    signatures);
--  * attach() installs statement triggers with transition tables
--    (_observe_statement_trigger, src/ingest_bulk.c) instead of the row
--    trigger; tables attached under 0.1.0 keep their row trigger, which
--    still works, until they are detached and attached again.

-- The statement triggers attach() installs (src/ingest_bulk.c): every row
-- of an INSERT, UPDATE or COPY, recorded set-based, stream by stream.
CREATE FUNCTION @extschema@._observe_statement_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'mlma_observe_statement_trigger'
LANGUAGE C;

-- attach() and detach() as 0.2.0 defines them: 89_functions.sql
REVOKE ALL ON FUNCTION @extschema@._observe_statement_trigger() FROM PUBLIC;
ALTER FUNCTION @extschema@._observe_statement_trigger()
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
GRANT EXECUTE ON FUNCTION @extschema@._observe_statement_trigger() TO mlma_admin;
