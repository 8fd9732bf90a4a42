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

-- attach: watch a user table.  The triggers receive the column names and
-- the defaults as arguments; mlma.attachments lists the mappings.
CREATE OR REPLACE FUNCTION @extschema@.attach(source regclass, stream_column name,
	actual_column name, predicted_column name, time_column name DEFAULT NULL,
	defaults jsonb DEFAULT '{}')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_kind	"char";
	v_type	regtype;
	v_col	name;
BEGIN
	IF source IS NULL OR stream_column IS NULL OR actual_column IS NULL
		OR predicted_column IS NULL THEN
		RAISE EXCEPTION 'source, stream_column, actual_column and predicted_column must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT c.relkind INTO v_kind FROM pg_class c WHERE c.oid = source;
	IF v_kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', source
			USING ERRCODE = 'wrong_object_type';
	END IF;
	IF EXISTS (SELECT 1 FROM @extschema@.attachments a WHERE a.source = attach.source) THEN
		RAISE EXCEPTION 'table "%" is already attached', source
			USING ERRCODE = 'duplicate_object',
			HINT = 'Call detach() first to change the mapping.';
	END IF;

	FOREACH v_col IN ARRAY ARRAY[stream_column, actual_column, predicted_column, time_column] LOOP
		CONTINUE WHEN v_col IS NULL;
		SELECT a.atttypid::regtype INTO v_type FROM pg_attribute a
		 WHERE a.attrelid = source AND a.attname = v_col
		   AND a.attnum > 0 AND NOT a.attisdropped;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'column "%" of table "%" does not exist', v_col, source
				USING ERRCODE = 'undefined_column';
		END IF;
		IF v_col = stream_column
			AND v_type NOT IN ('text'::regtype, 'character varying'::regtype) THEN
			RAISE EXCEPTION 'stream column "%" must be of type text or varchar, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		ELSIF v_col IN (actual_column, predicted_column) AND v_col <> stream_column
			AND v_type NOT IN ('double precision'::regtype, 'real'::regtype,
							   'numeric'::regtype, 'integer'::regtype,
							   'bigint'::regtype, 'smallint'::regtype) THEN
			RAISE EXCEPTION 'column "%" must be of a numeric type, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		ELSIF v_col = time_column AND v_col NOT IN (stream_column, actual_column, predicted_column)
			AND v_type NOT IN ('timestamp with time zone'::regtype,
							   'timestamp without time zone'::regtype) THEN
			RAISE EXCEPTION 'time column "%" must be of type timestamptz or timestamp, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		END IF;
	END LOOP;
	IF stream_column IN (actual_column, predicted_column, time_column)
		OR actual_column IN (predicted_column, time_column)
		OR predicted_column = time_column THEN
		RAISE EXCEPTION 'the mapped columns must be distinct'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM @extschema@._validate_defaults(defaults);

	INSERT INTO @extschema@.attachments
		(source, stream_column, actual_column, predicted_column, time_column, defaults)
	VALUES (source, stream_column, actual_column, predicted_column, time_column,
			coalesce(defaults, '{}'));
	EXECUTE format('CREATE TRIGGER mlma_observe AFTER INSERT ON %1$s '
				   'REFERENCING NEW TABLE AS mlma_new FOR EACH STATEMENT '
				   'EXECUTE FUNCTION @extschema@._observe_statement_trigger(%2$L, %3$L, %4$L, %5$L, %6$L); '
				   'CREATE TRIGGER mlma_observe_update AFTER UPDATE ON %1$s '
				   'REFERENCING OLD TABLE AS mlma_old NEW TABLE AS mlma_new FOR EACH STATEMENT '
				   'EXECUTE FUNCTION @extschema@._observe_statement_trigger(%2$L, %3$L, %4$L, %5$L, %6$L)',
				   source, stream_column, actual_column, predicted_column,
				   coalesce(time_column, ''), coalesce(defaults, '{}')::text);
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@.detach(source regclass)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM @extschema@.attachments a WHERE a.source = detach.source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table "%" is not attached', source
			USING ERRCODE = 'undefined_object';
	END IF;
	-- the mapping of a table dropped without detach is removed by its oid
	IF EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = source) THEN
		EXECUTE format('DROP TRIGGER IF EXISTS mlma_observe ON %1$s; '
					   'DROP TRIGGER IF EXISTS mlma_observe_update ON %1$s', source);
	END IF;
END;
$$;

REVOKE ALL ON FUNCTION @extschema@._observe_statement_trigger() FROM PUBLIC;
ALTER FUNCTION @extschema@._observe_statement_trigger()
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
GRANT EXECUTE ON FUNCTION @extschema@._observe_statement_trigger() TO mlma_admin;
