--
-- Statistics of mlma: two-sample tests on loss batches, losses and the
-- Benjamini-Hochberg adjustment.  Every function is pure; "greater" (the
-- default alternative) means the current losses are larger than the
-- reference losses, i.e. the model got worse.
--
-- Numbers are rounded to 12 significant decimals so that the file reads as
-- documentation; test/oracle/test_param.py compares the full precision
-- against SciPy.
--
SET extra_float_digits = 0;

-- Welch's t-test = scipy.stats.ttest_ind(current, reference, equal_var=False)
SELECT round(statistic::numeric, 12) AS statistic,
       round(p_value::numeric, 12) AS p_value,
       round(df::numeric, 12) AS df
FROM mlma.welch_test('{1,2,3,4}', '{2,3,4,5,7}');

SELECT alt, round(p_value::numeric, 12) AS p_value
FROM unnest(ARRAY['greater', 'less', 'two-sided']) AS alt,
     LATERAL mlma.welch_test('{1,2,3,4}', '{2,3,4,5,7}', alt);

-- the tests are scale invariant, also far from 1
SELECT round(statistic::numeric, 12) AS statistic, round(p_value::numeric, 12) AS p_value
FROM mlma.welch_test('{1e-300,2e-300,3e-300,4e-300}', '{2e-300,3e-300,4e-300,5e-300,7e-300}');
SELECT round(statistic::numeric, 12) AS statistic, round(p_value::numeric, 12) AS p_value
FROM mlma.welch_test('{1e300,2e300,3e300,4e300}', '{2e300,3e300,4e300,5e300,7e300}');

-- deep tails keep their relative precision (SciPy: 7.166859e-43)
SELECT to_char(p_value, '9.999999EEEE') AS p_value
FROM mlma.welch_test('{1.0,1.1,0.9,1.05,0.95,1.0,1.02,0.98}',
                     '{100.0,100.1,99.9,100.05,99.95,100.0,100.02,99.98}');

-- Mann-Whitney U (statistic = U of current) and two-sample Kolmogorov-Smirnov
SELECT statistic, round(p_value::numeric, 12) AS p_value
FROM mlma.mann_whitney_test('{1,2,3,4,5,6}', '{4,5,6,7,8,9,10}');
SELECT round(statistic::numeric, 12) AS statistic, round(p_value::numeric, 12) AS p_value
FROM mlma.ks_test('{1,2,3,4,5,6}', '{4,5,6,7,8,9,10}');

-- HAC: Welch-type z statistic with Newey-West (Bartlett) long-run variances.
-- Default lags floor(4 * (n/100)^(2/9)) per batch; the larger one is reported.
SELECT round(statistic::numeric, 12) AS statistic, round(p_value::numeric, 12) AS p_value, lags
FROM mlma.hac_test('{1,2,3,4,5,6,5,4,3,2}', '{3,4,5,6,7,8,7,6,5,4,3}');
SELECT round(statistic::numeric, 12) AS statistic, round(p_value::numeric, 12) AS p_value, lags
FROM mlma.hac_test('{1,2,3,4,5,6,5,4,3,2}', '{3,4,5,6,7,8,7,6,5,4,3}', lags => 0);
-- lags beyond n - 1 are clamped per batch
SELECT lags FROM mlma.hac_test('{1,2,3}', '{3,4,5,6}', 'greater', 100);
SELECT lags FROM mlma.hac_test(array_fill(1.5::float8, '{500}') || '{2}'::float8[],
                               array_fill(2.5::float8, '{5000}') || '{2}'::float8[]);

-- Diebold-Mariano: d = current - reference, paired by position
SELECT round(statistic::numeric, 12) AS statistic, round(p_value::numeric, 12) AS p_value, lags
FROM mlma.dm_test('{1,2,3,4,5,6}', '{2,2,4,5,5,8}');
SELECT round(statistic::numeric, 12) AS statistic, round(p_value::numeric, 12) AS p_value, lags
FROM mlma.dm_test('{1,2,3,4,5,6}', '{2,2,4,5,5,8}', 'two-sided', 2);

-- degenerate batches are defined, never NaN
SELECT 'welch' AS test, * FROM mlma.welch_test('{2,2,2}', '{2,2}');
SELECT 'welch' AS test, * FROM mlma.welch_test('{2,2,2}', '{3,3}');
SELECT 'welch' AS test, * FROM mlma.welch_test('{2,2,2}', '{3,3}', 'less');
SELECT 'hac' AS test, * FROM mlma.hac_test('{0,0,0}', '{0,0,0,0}');
SELECT 'dm' AS test, * FROM mlma.dm_test('{1,5,2}', '{1,5,2}');
SELECT 'dm' AS test, * FROM mlma.dm_test('{1,5,2}', '{2,6,3}', 'two-sided');

-- NULL batches give NULL; NULL lags means the default
SELECT mlma.welch_test(NULL, '{1,2}') IS NULL AS is_null;
SELECT (mlma.dm_test('{1,2,3}', '{2,3,5}', 'greater', NULL)).lags;

-- losses
SELECT kind, a, p, param, mlma.loss(kind, a, p, param) AS loss
FROM (VALUES ('squared', 3.0, 1.0, NULL),
             ('absolute', 1.0, 3.5, NULL),
             ('ape', -4.0, -3.0, NULL),
             ('sape', 1.0, 3.0, NULL),
             ('sape', 0.0, 0.0, NULL),
             ('pinball', 3.0, 1.0, 0.9),
             ('pinball', 1.0, 3.0, 0.9),
             ('huber', 1.0, 1.5, 1.0),
             ('huber', 1.0, 4.0, 1.0),
             ('poisson', 0.0, 2.0, NULL),
             ('poisson', 2.0, 1.0, NULL),
             ('logloss', 1.0, 0.25, NULL),
             ('logloss', 1.0, 0.0, NULL),
             ('zero_one', 2.0, 2.0, NULL),
             ('zero_one', 2.0, 3.0, NULL)) AS v(kind, a, p, param);
SELECT mlma.loss('absolute', NULL, 3) IS NULL AS is_null;

-- Benjamini-Hochberg = statsmodels multipletests(p, method='fdr_bh')[1],
-- in input order
SELECT mlma.bh_adjust('{0.01,0.04,0.03,0.5}');
SELECT mlma.bh_adjust('{0.2,0.2,0,1}');
SELECT mlma.bh_adjust('{}');

-- bad input: SQLSTATE 22023 with a message naming the argument
\set VERBOSITY default
SELECT * FROM mlma.welch_test('{1}', '{1,2,3}');
SELECT * FROM mlma.welch_test('{1,2}', '{}');
SELECT * FROM mlma.mann_whitney_test('{1,NULL,3}', '{1,2,3}');
SELECT * FROM mlma.ks_test('{1,2,3}', '{1,NaN,3}');
SELECT * FROM mlma.hac_test('{1,2,Infinity}', '{1,2,3}');
SELECT * FROM mlma.dm_test('{{1,2},{3,4}}', '{1,2,3,4}');
SELECT * FROM mlma.welch_test('{1,2,3}', '{1,2,3}', 'bigger');
SELECT * FROM mlma.hac_test('{1,2,3}', '{1,2,3}', 'greater', -1);
SELECT * FROM mlma.dm_test('{1,2,3}', '{1,2,3,4}');
SELECT mlma.loss('mse', 1, 2);
SELECT mlma.loss('squared', 1, 2, 0.5);
SELECT mlma.loss('pinball', 1, 2);
SELECT mlma.loss('pinball', 1, 2, 1);
SELECT mlma.loss('huber', 1, 2, 0);
SELECT mlma.loss('ape', 0, 2);
SELECT mlma.loss('poisson', 1, 0);
SELECT mlma.loss('logloss', 0.5, 0.5);
SELECT mlma.loss('absolute', 'Infinity', 2);
SELECT mlma.loss('squared', 1e200, -1e200);
SELECT mlma.bh_adjust('{0.1,1.5}');
SELECT mlma.bh_adjust('{0.1,NULL}');
