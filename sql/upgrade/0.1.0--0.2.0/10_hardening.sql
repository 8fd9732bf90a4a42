-- Hardening: attach options (benchmark_column, on_invalid, create_streams),
-- skipped-row counters, column type checks of attached tables, stream name
-- rules, wedge-free batch closes (overflow-safe means, warm-up and rolling
-- that never raise, configure re-warms a reference dm cannot use), purge
-- keeps what open requests and warm-ups need, pg_cron as the extension's
-- owner, clearer errors, and the mappings of dropped tables cleaned up.

ALTER TABLE @extschema@.stream_state
	ADD COLUMN skipped bigint NOT NULL DEFAULT 0,
	ADD COLUMN last_skip_reason text,
	ADD COLUMN last_skip_at timestamptz;

ALTER TABLE @extschema@.attachments
	ADD COLUMN benchmark_column name,
	ADD COLUMN on_invalid text NOT NULL DEFAULT 'skip'
		CHECK (on_invalid IN ('error', 'skip')),
	ADD COLUMN create_streams bool NOT NULL DEFAULT true,
	ADD COLUMN skipped bigint NOT NULL DEFAULT 0,
	ADD COLUMN last_skip_reason text,
	ADD COLUMN last_skip_at timestamptz;
-- tables attached by 0.1.0 keep their trigger (five arguments), which
-- behaves as on_invalid 'error'; attach them again for 'skip'
UPDATE @extschema@.attachments SET on_invalid = 'error';

CREATE FUNCTION @extschema@._mean(losses float8[])
RETURNS float8
AS 'MODULE_PATHNAME', 'mlma_mean'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE OR REPLACE FUNCTION @extschema@._forget_dropped_attachments()
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_n		int;
BEGIN
	DELETE FROM @extschema@.attachments a
	 WHERE NOT EXISTS (SELECT 1 FROM pg_trigger t
						WHERE t.tgrelid = a.source AND t.tgname = 'mlma_observe'
						  AND t.tgfoid = '@extschema@._observe_trigger()'::regprocedure);
	GET DIAGNOSTICS v_n = ROW_COUNT;
	RETURN v_n;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@._drop_attachments()
RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	DELETE FROM @extschema@.attachments a
	 USING pg_event_trigger_dropped_objects() d
	 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
	   AND d.objid = a.source::oid;
END;
$$;

CREATE OR REPLACE FUNCTION @extschema@._warm_reference(p_stream_id bigint, p_from_seq bigint,
	p_size int, p_next_seq bigint)
RETURNS bool
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s		@extschema@.streams;
	v_losses	float8[];
	v_seqs		int8[];
	v_to		bigint := p_from_seq + p_size;
BEGIN
	SELECT * INTO s FROM @extschema@.streams WHERE stream_id = p_stream_id;
	SELECT array_agg(l ORDER BY q), array_agg(q ORDER BY q)
	  INTO v_losses, v_seqs
	  FROM (SELECT u.l, b.first_seq + u.o - 1 AS q
			  FROM @extschema@.batches b,
				   unnest(b.losses) WITH ORDINALITY AS u(l, o)
			 WHERE b.stream_id = p_stream_id
			   AND b.first_seq < v_to
			   AND b.first_seq + cardinality(b.losses) > p_from_seq
			UNION ALL
			SELECT o.loss, o.seq FROM @extschema@.observations o
			 WHERE o.stream_id = p_stream_id
			   AND o.seq >= p_from_seq AND o.seq < v_to) x
	 WHERE q >= p_from_seq AND q < v_to;
	IF coalesce(cardinality(v_losses), 0) < greatest(p_size, 2)
		OR (s.method = 'dm' AND s.season_length IS NULL
			AND cardinality(v_losses) <> s.batch_size) THEN
		UPDATE @extschema@.stream_state SET version_start_seq = p_next_seq
		 WHERE stream_id = p_stream_id;
		RETURN false;
	END IF;
	PERFORM @extschema@._store_reference(p_stream_id, 'warmup', v_losses, v_seqs);
	RETURN true;
END;
$$;

CREATE EVENT TRIGGER mlma_drop_attachments ON sql_drop
	WHEN TAG IN ('DROP TABLE', 'DROP SCHEMA', 'DROP OWNED')
	EXECUTE FUNCTION @extschema@._drop_attachments();

DROP FUNCTION @extschema@.attach(regclass, name, name, name, name, jsonb);
CREATE FUNCTION @extschema@.attach(source regclass, stream_column name,
	actual_column name, predicted_column name, time_column name DEFAULT NULL,
	defaults jsonb DEFAULT '{}', benchmark_column name DEFAULT NULL,
	on_invalid text DEFAULT 'skip')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_kind	"char";
	v_type	regtype;
	v_col	name;
	v_create bool;
BEGIN
	IF source IS NULL OR stream_column IS NULL OR actual_column IS NULL
		OR predicted_column IS NULL THEN
		RAISE EXCEPTION 'source, stream_column, actual_column and predicted_column must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	IF on_invalid IS NULL OR on_invalid NOT IN ('error', 'skip') THEN
		RAISE EXCEPTION 'on_invalid must be error or skip'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('on_invalid is %s.', coalesce(on_invalid, 'NULL'));
	END IF;
	SELECT c.relkind INTO v_kind FROM pg_class c WHERE c.oid = source;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'table with OID % does not exist', source::oid
			USING ERRCODE = 'undefined_table';
	END IF;
	IF v_kind NOT IN ('r', 'p') THEN
		RAISE EXCEPTION '"%" is not a table', source
			USING ERRCODE = 'wrong_object_type';
	END IF;
	-- mappings of dropped tables whose OID came back
	PERFORM @extschema@._forget_dropped_attachments();
	IF EXISTS (SELECT 1 FROM @extschema@.attachments a WHERE a.source = attach.source) THEN
		RAISE EXCEPTION 'table "%" is already attached', source
			USING ERRCODE = 'duplicate_object',
			HINT = 'Call detach() first to change the mapping.';
	END IF;

	FOREACH v_col IN ARRAY ARRAY[stream_column, actual_column, predicted_column,
								 time_column, benchmark_column] LOOP
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
		ELSIF v_col IN (actual_column, predicted_column, benchmark_column)
			AND v_col <> stream_column
			AND v_type NOT IN ('double precision'::regtype, 'real'::regtype,
							   'numeric'::regtype, 'integer'::regtype,
							   'bigint'::regtype, 'smallint'::regtype) THEN
			RAISE EXCEPTION 'column "%" must be of a numeric type, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		ELSIF v_col = time_column
			AND v_col NOT IN (stream_column, actual_column, predicted_column)
			AND v_type NOT IN ('timestamp with time zone'::regtype,
							   'timestamp without time zone'::regtype) THEN
			RAISE EXCEPTION 'time column "%" must be of type timestamptz or timestamp, not %', v_col, v_type
				USING ERRCODE = 'datatype_mismatch';
		END IF;
	END LOOP;
	IF stream_column IN (actual_column, predicted_column, time_column, benchmark_column)
		OR actual_column IN (predicted_column, time_column, benchmark_column)
		OR predicted_column IN (time_column, benchmark_column)
		OR time_column = benchmark_column THEN
		RAISE EXCEPTION 'the mapped columns must be distinct'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM @extschema@._validate_defaults(defaults);
	v_create := coalesce((defaults->>'create_streams')::bool, true);

	INSERT INTO @extschema@.attachments
		(source, stream_column, actual_column, predicted_column, time_column,
		 defaults, benchmark_column, on_invalid, create_streams)
	VALUES (source, stream_column, actual_column, predicted_column, time_column,
			coalesce(defaults, '{}'), benchmark_column, on_invalid, v_create);
	EXECUTE format('CREATE TRIGGER mlma_observe AFTER INSERT OR UPDATE ON %s '
				   'FOR EACH ROW EXECUTE FUNCTION @extschema@._observe_trigger(%L, %L, %L, %L, %L, %L, %L, %L)',
				   source, stream_column, actual_column, predicted_column,
				   coalesce(time_column, ''),
				   (coalesce(defaults, '{}') - 'create_streams')::text,
				   coalesce(benchmark_column, ''), on_invalid,
				   CASE WHEN v_create THEN 't' ELSE 'f' END);
END;
$$;

ALTER FUNCTION @extschema@.claim_retrain(text, interval) SECURITY DEFINER;
ALTER FUNCTION @extschema@.schedule_checks(text) SECURITY DEFINER;
ALTER FUNCTION @extschema@.unschedule_checks() SECURITY DEFINER;

REVOKE ALL ON FUNCTION
	@extschema@._mean(float8[]),
	@extschema@._warm_reference(bigint, bigint, int, bigint),
	@extschema@._forget_dropped_attachments(),
	@extschema@._drop_attachments(),
	@extschema@.attach(regclass, name, name, name, name, jsonb, name, text)
	FROM PUBLIC;
-- stream_status computes the open batch's mean with it
GRANT EXECUTE ON FUNCTION @extschema@._mean(float8[]) TO mlma_reader;
GRANT EXECUTE ON FUNCTION
	@extschema@._mean(float8[]),
	@extschema@._warm_reference(bigint, bigint, int, bigint),
	@extschema@._forget_dropped_attachments(),
	@extschema@._drop_attachments(),
	@extschema@.attach(regclass, name, name, name, name, jsonb, name, text)
	TO mlma_admin;
