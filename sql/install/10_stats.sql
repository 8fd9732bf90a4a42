-- Statistics: two-sample tests on loss batches, losses, multiple testing.
-- All are pure C functions.  "greater" means the current losses are larger
-- than the reference losses (the model got worse).

CREATE FUNCTION @extschema@.welch_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	OUT statistic float8, OUT p_value float8, OUT df float8)
RETURNS record
AS 'MODULE_PATHNAME', 'welch_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.welch_test(float8[], float8[], text) IS
'Welch unequal-variance t-test of current against reference (= scipy.stats.ttest_ind(current, reference, equal_var=False))';

CREATE FUNCTION @extschema@.mann_whitney_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	OUT statistic float8, OUT p_value float8)
RETURNS record
AS 'MODULE_PATHNAME', 'mann_whitney_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.mann_whitney_test(float8[], float8[], text) IS
'Mann-Whitney U test, statistic = U of current (= scipy.stats.mannwhitneyu(current, reference))';

CREATE FUNCTION @extschema@.ks_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	OUT statistic float8, OUT p_value float8)
RETURNS record
AS 'MODULE_PATHNAME', 'ks_test'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.ks_test(float8[], float8[], text) IS
'two-sample Kolmogorov-Smirnov test (= scipy.stats.ks_2samp(reference, current))';

-- hac_test and dm_test are not STRICT because a NULL lags means the default
-- floor(4 * (n/100)^(2/9)); a NULL batch or alternative still gives NULL.
CREATE FUNCTION @extschema@.hac_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	lags int DEFAULT NULL,
	OUT statistic float8, OUT p_value float8, OUT lags int)
RETURNS record
AS 'MODULE_PATHNAME', 'hac_test'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.hac_test(float8[], float8[], text, int) IS
'Welch-type z-test with Newey-West (Bartlett) long-run variances, for autocorrelated losses; lags NULL = floor(4 * (n/100)^(2/9)) per batch, clamped to n - 1; the lags returned are the larger of the two batches''';

CREATE FUNCTION @extschema@.dm_test(
	reference float8[], current float8[], alternative text DEFAULT 'greater',
	lags int DEFAULT NULL,
	OUT statistic float8, OUT p_value float8, OUT lags int)
RETURNS record
AS 'MODULE_PATHNAME', 'dm_test'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.dm_test(float8[], float8[], text, int) IS
'Diebold-Mariano test on current - reference, paired by position, Newey-West (Bartlett) long-run variance; lags NULL = floor(4 * (n/100)^(2/9)), clamped to n - 1';

-- loss is not STRICT: a NULL param means "no parameter".
CREATE FUNCTION @extschema@.loss(
	kind text, actual float8, predicted float8, param float8 DEFAULT NULL)
RETURNS float8
AS 'MODULE_PATHNAME', 'loss'
LANGUAGE C IMMUTABLE PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.loss(text, float8, float8, float8) IS
'loss of one forecast: squared, absolute, ape, sape, pinball (param tau), huber (param delta), poisson, logloss, zero_one';

CREATE FUNCTION @extschema@.bh_adjust(p_values float8[])
RETURNS float8[]
AS 'MODULE_PATHNAME', 'bh_adjust'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION @extschema@.bh_adjust(float8[]) IS
'Benjamini-Hochberg adjusted p-values in input order (= statsmodels multipletests(p, method=''fdr_bh'')[1])';
