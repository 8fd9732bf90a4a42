-- numeric: the decision rule written once.  mlma._decide (C, the rule of
-- run_checks too) makes the eager decision of _close_batch; _finish_check,
-- which nothing calls any more, goes.
DROP FUNCTION @extschema@._finish_check(bigint, float8, float8, float8, float8,
	int, int, float8, float8, bool);

-- The decision rule of a check (src/core/decide.c), shared with run_checks:
-- significant when p <= threshold and effect >= min_effect (NaN or NULL:
-- not significant), streak = streak_before + 1 when significant else 0,
-- drift when significant and streak >= consecutive.
CREATE FUNCTION @extschema@._decide(p float8, threshold float8, effect float8,
	min_effect float8, streak_before int, consecutive int,
	OUT significant bool, OUT streak int, OUT drift bool)
RETURNS record
AS 'MODULE_PATHNAME', 'mlma_decide_sql'
LANGUAGE C IMMUTABLE PARALLEL SAFE CALLED ON NULL INPUT;

REVOKE ALL ON FUNCTION @extschema@._decide(float8, float8, float8, float8, int, int)
	FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._decide(float8, float8, float8, float8, int, int)
	TO mlma_admin;

-- numeric: one vocabulary.  The method list of stream options comes from C
-- (the same list and error as mlma.welch_test & co.).
-- C helper: raises the error of an unknown method, from the list of the
-- numeric core (src/stats_sql.c), as every C caller does.
CREATE FUNCTION @extschema@._check_method(method text)
RETURNS void
AS 'MODULE_PATHNAME', 'mlma_check_method'
LANGUAGE C CALLED ON NULL INPUT IMMUTABLE;

REVOKE ALL ON FUNCTION @extschema@._check_method(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@._check_method(text) TO mlma_admin;

