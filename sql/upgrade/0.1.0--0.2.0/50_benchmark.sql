-- mlma 0.1.0 -> 0.2.0: benchmark values and the benchmark reference policy.
--
-- observe / observe_loss take a benchmark value, observations and batches
-- store the challenger's losses, streams accept reference_policy
-- 'benchmark' (tested against the challenger's losses on the same
-- observations), stream_status shows the benchmark's mean.

ALTER TABLE @extschema@.observations ADD COLUMN benchmark_loss float8;
ALTER TABLE @extschema@.batches ADD COLUMN benchmark_losses float8[];
ALTER TABLE @extschema@.batches ALTER COLUMN benchmark_losses SET STORAGE MAIN;
ALTER TABLE @extschema@.streams DROP CONSTRAINT streams_reference_policy_check;
ALTER TABLE @extschema@.streams ADD CONSTRAINT streams_reference_policy_check
	CHECK (reference_policy IN ('fixed', 'rolling', 'benchmark'));

-- the same C symbols as 0.1.0, one argument more (PG_NARGS tells them apart)
DROP FUNCTION @extschema@.observe(text, float8, float8, timestamptz);
DROP FUNCTION @extschema@.observe_loss(text, float8, timestamptz);
CREATE FUNCTION @extschema@.observe(stream text, actual float8, predicted float8,
									 observed_at timestamptz DEFAULT now(),
									 benchmark float8 DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_observe'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;

CREATE FUNCTION @extschema@.observe_loss(stream text, loss float8,
										  observed_at timestamptz DEFAULT now(),
										  benchmark_loss float8 DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_observe_loss'
LANGUAGE C CALLED ON NULL INPUT VOLATILE;
ALTER FUNCTION @extschema@.observe(text, float8, float8, timestamptz, float8)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION @extschema@.observe_loss(text, float8, timestamptz, float8)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION @extschema@.observe(text, float8, float8, timestamptz, float8),
	@extschema@.observe_loss(text, float8, timestamptz, float8) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
	@extschema@.observe(text, float8, float8, timestamptz, float8),
	@extschema@.observe_loss(text, float8, timestamptz, float8)
	TO mlma_writer, mlma_admin;

CREATE FUNCTION @extschema@._evaluate_benchmark(
	method text, benchmark float8[], current float8[],
	OUT statistic float8, OUT p_value float8, OUT effect float8,
	OUT n_reference int, OUT n_current int,
	OUT reference_mean float8, OUT batch_mean float8)
RETURNS record
AS 'MODULE_PATHNAME', 'mlma_evaluate_benchmark'
LANGUAGE C IMMUTABLE PARALLEL SAFE CALLED ON NULL INPUT;
REVOKE ALL ON FUNCTION @extschema@._evaluate_benchmark(text, float8[], float8[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._evaluate_benchmark(text, float8[], float8[]) TO mlma_admin;

