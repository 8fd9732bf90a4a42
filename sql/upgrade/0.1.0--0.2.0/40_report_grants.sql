-- The privileges of 70_report.sql's objects, as 90_roles.sql gives them
-- in a fresh install (40_report.sql, which links to 70_report.sql, creates
-- them).
REVOKE ALL ON FUNCTION
	@extschema@._html(text),
	@extschema@._report_labels(jsonb),
	@extschema@._report_num(float8, int),
	@extschema@._report_duration(interval),
	@extschema@._report_explain(bigint),
	@extschema@._report_chart(bigint, timestamptz, timestamptz, bool),
	@extschema@.report(jsonb, interval)
	FROM PUBLIC;
GRANT SELECT ON @extschema@.fleet_daily, @extschema@.batch_series TO mlma_reader;
GRANT EXECUTE ON FUNCTION
	@extschema@._html(text),
	@extschema@._report_labels(jsonb),
	@extschema@._report_num(float8, int),
	@extschema@._report_duration(interval),
	@extschema@._report_explain(bigint),
	@extschema@._report_chart(bigint, timestamptz, timestamptz, bool),
	@extschema@.report(jsonb, interval)
	TO mlma_reader;
GRANT ALL ON @extschema@.fleet_daily, @extschema@.batch_series TO mlma_admin;
GRANT EXECUTE ON FUNCTION
	@extschema@._html(text),
	@extschema@._report_labels(jsonb),
	@extschema@._report_num(float8, int),
	@extschema@._report_duration(interval),
	@extschema@._report_explain(bigint),
	@extschema@._report_chart(bigint, timestamptz, timestamptz, bool),
	@extschema@.report(jsonb, interval)
	TO mlma_admin;
