-- mlma: roles and privileges
--
--   mlma_reader  views, tables (read only), history, replay, the statistics
--   mlma_writer  observe, observe_loss, observe_many (and the triggers of attached tables)
--   mlma_agent   claim_retrain, complete_retrain, fail_retrain
--   mlma_admin   everything: member of the three, every function and table
--                (approve and dismiss of retrain requests are the admin's only)
--
-- Nothing is granted to PUBLIC.  The functions a role may call but whose work
-- touches tables the role cannot write are SECURITY DEFINER with a pinned
-- search_path; everything else runs with the caller's rights.

DO $$
DECLARE
	r	text;
BEGIN
	FOREACH r IN ARRAY ARRAY['mlma_reader', 'mlma_writer', 'mlma_agent', 'mlma_admin'] LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END;
$$;

REVOKE ALL ON SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA @extschema@ FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA @extschema@ FROM PUBLIC;

GRANT USAGE ON SCHEMA @extschema@ TO mlma_reader, mlma_writer, mlma_agent, mlma_admin;

-- functions called by roles without write access to the tables
ALTER FUNCTION @extschema@.observe(text, float8, float8, timestamptz, float8)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.observe_loss(text, float8, timestamptz, float8)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.observe_many(text[], float8[], float8[], timestamptz[], float8[])
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@._observe_trigger()
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@._observe_statement_trigger()
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.claim_retrain(text, interval) SECURITY DEFINER;
ALTER FUNCTION @extschema@.complete_retrain(bigint, text) SECURITY DEFINER;
ALTER FUNCTION @extschema@.fail_retrain(bigint, text) SECURITY DEFINER;
ALTER FUNCTION @extschema@.replay(text, text, float8, int, int, int, text, float8, int)
	SECURITY DEFINER;
ALTER FUNCTION @extschema@.check_history(text, timestamptz) SECURITY DEFINER;
-- pg_cron jobs belong to the extension's owner (see schedule_checks)
ALTER FUNCTION @extschema@.schedule_checks(text) SECURITY DEFINER;
ALTER FUNCTION @extschema@.unschedule_checks() SECURITY DEFINER;
ALTER FUNCTION @extschema@.request_history(text, timestamptz) SECURITY DEFINER;
ALTER FUNCTION @extschema@.explain(text, bigint) SECURITY DEFINER;
ALTER FUNCTION @extschema@.replay_fleet(jsonb, jsonb) SECURITY DEFINER;

-- reader: every table and view, read only; the pure statistics; history
GRANT SELECT ON ALL TABLES IN SCHEMA @extschema@ TO mlma_reader;
GRANT EXECUTE ON FUNCTION
	@extschema@.welch_test(float8[], float8[], text),
	@extschema@.mann_whitney_test(float8[], float8[], text),
	@extschema@.ks_test(float8[], float8[], text),
	@extschema@.hac_test(float8[], float8[], text, int),
	@extschema@.dm_test(float8[], float8[], text, int),
	@extschema@.loss(text, float8, float8, float8),
	@extschema@.bh_adjust(float8[]),
	@extschema@._mean(float8[]),
	@extschema@.check_history(text, timestamptz),
	@extschema@.request_history(text, timestamptz),
	@extschema@.replay(text, text, float8, int, int, int, text, float8, int),
	@extschema@.explain(text, bigint),
	@extschema@.replay_fleet(jsonb, jsonb),
	@extschema@._fmt(float8),
	@extschema@._decision_reason(text, text, float8, float8, float8, float8,
								 float8, bool, bool, int, int)
	TO mlma_reader;

-- reader: the fleet report (70_report.sql)
GRANT EXECUTE ON FUNCTION
	@extschema@._html(text),
	@extschema@._report_labels(jsonb),
	@extschema@._report_num(float8, int),
	@extschema@._report_duration(interval),
	@extschema@._report_explain(bigint),
	@extschema@._report_chart(bigint, timestamptz, timestamptz, bool),
	@extschema@.report(jsonb, interval)
	TO mlma_reader;

-- writer: observations
GRANT EXECUTE ON FUNCTION
	@extschema@.observe(text, float8, float8, timestamptz, float8),
	@extschema@.observe_loss(text, float8, timestamptz, float8),
	@extschema@.observe_many(text[], float8[], float8[], timestamptz[], float8[]),
	@extschema@.loss(text, float8, float8, float8)
	TO mlma_writer;

-- agent: the request queue
GRANT EXECUTE ON FUNCTION
	@extschema@.claim_retrain(text, interval),
	@extschema@.complete_retrain(bigint, text),
	@extschema@.fail_retrain(bigint, text)
	TO mlma_agent;
GRANT SELECT ON @extschema@.retrain_requests, @extschema@.streams TO mlma_agent;

-- admin: everything
GRANT mlma_reader, mlma_writer, mlma_agent TO mlma_admin;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA @extschema@ TO mlma_admin;
GRANT EXECUTE ON FUNCTION @extschema@.approve(bigint, text) TO mlma_admin;
GRANT ALL ON ALL TABLES IN SCHEMA @extschema@ TO mlma_admin;
GRANT ALL ON ALL SEQUENCES IN SCHEMA @extschema@ TO mlma_admin;
