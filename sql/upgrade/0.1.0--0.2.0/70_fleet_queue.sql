-- 70: scheduled checks wait in a queue (check_queue) and are inserted into
-- checks once with their outcome; rounds are logged (rounds); fleet_status
-- shows the oldest waiting check and the last round; schedule_checks warns
-- about a pg_cron setup that cannot run the job.

ALTER TABLE @extschema@.checks ADD COLUMN note text;

CREATE TABLE @extschema@.check_queue (
	stream_id		bigint NOT NULL,
	batch_no		int NOT NULL,
	queued_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (stream_id, batch_no)
);

CREATE TABLE @extschema@.rounds (
	started_at		timestamptz NOT NULL,
	finished_at		timestamptz NOT NULL,
	checks			int NOT NULL,
	flags			int NOT NULL,
	deferred		int NOT NULL
);
CREATE INDEX rounds_finished_at_idx ON @extschema@.rounds (finished_at);

-- the checks still waiting move to the queue
INSERT INTO @extschema@.check_queue (stream_id, batch_no, queued_at)
SELECT stream_id, batch_no, created_at FROM @extschema@.checks
 WHERE status = 'waiting';
DELETE FROM @extschema@.checks WHERE status = 'waiting';
DROP INDEX @extschema@.checks_waiting_idx;

SELECT pg_catalog.pg_extension_config_dump('@extschema@.check_queue', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.rounds', '');

ALTER FUNCTION @extschema@._run_checks(float8) SET jit = off;

CREATE FUNCTION @extschema@._warn_cron_setup()
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_cron_db	text := current_setting('cron.database_name', true);
	v_bgw		text := current_setting('cron.use_background_workers', true);
	v_host		text := current_setting('cron.host', true);
	v_warnings	int := 0;
BEGIN
	IF v_cron_db IS NULL THEN
		RAISE WARNING 'the pg_cron library is not loaded: the job will not run'
			USING HINT = 'Add pg_cron to shared_preload_libraries and restart the server.';
		RETURN 1;
	END IF;
	IF v_cron_db <> current_database() THEN
		v_warnings := v_warnings + 1;
		RAISE WARNING 'pg_cron runs in database %, not in %', v_cron_db, current_database()
			USING DETAIL = 'The job was registered with cron.schedule_in_database() for this database.',
			HINT = 'Check that cron.job of database ' || v_cron_db || ' lists the job.';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE backend_type = 'pg_cron launcher') THEN
		v_warnings := v_warnings + 1;
		RAISE WARNING 'the pg_cron launcher is not running: the job will not run'
			USING HINT = 'Check the server log for pg_cron errors; max_worker_processes must leave room for it.';
	END IF;
	IF coalesce(v_bgw, 'off') <> 'on' THEN
		v_warnings := v_warnings + 1;
		RAISE WARNING 'cron.use_background_workers is off: pg_cron runs the job over a TCP connection to % as user %',
			coalesce(v_host, 'localhost'), current_user
			USING DETAIL = 'Without a pg_hba.conf entry for that connection and a password-less login (trust, or a password in the .pgpass file of the server''s operating-system user), every run fails and is only logged in cron.job_run_details.',
			HINT = 'Set cron.use_background_workers = on (and restart), or add e.g. "host ' || current_database() || ' ' || current_user || ' 127.0.0.1/32 scram-sha-256" to pg_hba.conf with a matching .pgpass entry.  fleet_status.last_round_at shows whether rounds run.';
	END IF;
	RETURN v_warnings;
END;
$$;

REVOKE ALL ON @extschema@.check_queue, @extschema@.rounds FROM PUBLIC;
GRANT SELECT ON @extschema@.check_queue, @extschema@.rounds TO mlma_reader;
GRANT ALL ON @extschema@.check_queue, @extschema@.rounds TO mlma_admin;
REVOKE ALL ON FUNCTION @extschema@._warn_cron_setup() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._warn_cron_setup() TO mlma_admin;
