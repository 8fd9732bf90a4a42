-- mlma 0.1.0 -> 0.2.0: the open batch stored as runs (mlma.open_runs, one
-- row per run of consecutive observations of a stream) instead of one row
-- per observation; mlma.observations becomes a view of one row per
-- observation (90_views.sql).  Each open observation of 0.1.0 becomes a
-- run of one.  The views that read the table go first (90_views.sql
-- creates them all again).
DROP VIEW IF EXISTS @extschema@.fleet_status CASCADE;
DROP VIEW IF EXISTS @extschema@.stream_status CASCADE;
ALTER TABLE @extschema@.observations RENAME TO open_runs;
ALTER INDEX @extschema@.observations_pkey RENAME TO open_runs_pkey;
ALTER TABLE @extschema@.open_runs
	ALTER COLUMN observed_at TYPE timestamptz[] USING ARRAY[observed_at],
	ALTER COLUMN loss TYPE float8[] USING ARRAY[loss],
	ALTER COLUMN benchmark_loss TYPE float8[]
		USING CASE WHEN benchmark_loss IS NULL THEN NULL ELSE ARRAY[benchmark_loss] END;
ALTER TABLE @extschema@.open_runs RENAME COLUMN observed_at TO times;
ALTER TABLE @extschema@.open_runs RENAME COLUMN loss TO losses;
ALTER TABLE @extschema@.open_runs RENAME COLUMN benchmark_loss TO benchmark_losses;
ALTER TABLE @extschema@.open_runs ALTER COLUMN times SET STORAGE MAIN;
ALTER TABLE @extschema@.open_runs ALTER COLUMN losses SET STORAGE MAIN;
ALTER TABLE @extschema@.open_runs ALTER COLUMN benchmark_losses SET STORAGE MAIN;
