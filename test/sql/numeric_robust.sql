--
-- Statistics are defined for every finite input: subnormal and huge losses,
-- ties, constant batches.  A scheduled round never fails because of one
-- stream's losses.  The decision rule (mlma._decide).
--
-- The NaN case of the issue: subnormal batches; scaled into the normal range
-- ({1,0,1} against {0,0,1}) the statistic is the same.
SELECT round(statistic::numeric, 12) AS t, round(p_value::numeric, 12) AS p, df
  FROM mlma.welch_test('{1e-310,0,1e-310}', '{0,0,1e-310}', 'two-sided');
SELECT round(statistic::numeric, 12) AS t, round(p_value::numeric, 12) AS p, df
  FROM mlma.welch_test('{1,0,1}', '{0,0,1}', 'two-sided');
SELECT round(statistic::numeric, 12) AS z, round(p_value::numeric, 12) AS p, lags
  FROM mlma.hac_test('{1e-310,0,1e-310}', '{0,0,1e-310}', 'less');
SELECT round(statistic::numeric, 12) AS z, round(p_value::numeric, 12) AS p, lags
  FROM mlma.dm_test('{1e-310,0,1e-310}', '{0,0,1e-310}', 'less');

-- every test and alternative on extreme batches: p in [0, 1], never NaN
SELECT v.name, t.alt,
       bool_and(r.p_value BETWEEN 0 AND 1) AS p_in_01,
       bool_and(r.statistic <> 'NaN') AS stat_not_nan
  FROM (VALUES ('subnormal', '{5e-324,0,1e-320,1e-310}'::float8[], '{0,0,5e-324,2e-310}'::float8[]),
               ('huge', '{1e308,1.7e308,-1.7e308,9e307}', '{1.79e308,1.5e308,1e308,1.6e308}'),
               ('mixed', '{1e308,1e-310,0,5e-324}', '{5e-324,1.7e308,2e-310,0}'),
               ('ties', '{1,1,1,2}', '{1,2,2,2}'),
               ('constant equal', '{1e-310,1e-310,1e-310,1e-310}', '{1e-310,1e-310,1e-310,1e-310}'),
               ('constant different', '{1e308,1e308,1e308,1e308}', '{1.7e308,1.7e308,1.7e308,1.7e308}'))
         AS v(name, a, b),
       unnest(ARRAY['greater', 'less', 'two-sided']) t(alt),
       LATERAL (SELECT statistic, p_value FROM mlma.welch_test(v.a, v.b, t.alt)
                UNION ALL SELECT statistic, p_value FROM mlma.mann_whitney_test(v.a, v.b, t.alt)
                UNION ALL SELECT statistic, p_value FROM mlma.ks_test(v.a, v.b, t.alt)
                UNION ALL SELECT statistic, p_value FROM mlma.hac_test(v.a, v.b, t.alt)
                UNION ALL SELECT statistic, p_value FROM mlma.dm_test(v.a, v.b, t.alt)) r
 GROUP BY v.name, t.alt
 ORDER BY v.name, t.alt;

-- both batches constant and equal: statistic 0 and p-value 1 (U = n1 n2 / 2)
SELECT statistic, p_value, df FROM mlma.welch_test('{0,0,0}', '{0,0,0}');
SELECT statistic, p_value FROM mlma.mann_whitney_test('{7,7,7}', '{7,7,7}');
SELECT statistic, p_value FROM mlma.ks_test('{7,7,7}', '{7,7,7}', 'two-sided');
SELECT statistic, p_value FROM mlma.hac_test('{1e308,1e308}', '{1e308,1e308}');
SELECT statistic, p_value FROM mlma.dm_test('{5e-324,5e-324}', '{5e-324,5e-324}');
-- constant but different: +/-Infinity with p-value 0 or 1
SELECT statistic, p_value FROM mlma.welch_test('{1,1,1}', '{2,2,2}');
SELECT statistic, p_value FROM mlma.hac_test('{2,2,2}', '{1,1,1}', 'two-sided');
SELECT statistic, p_value FROM mlma.dm_test('{5e-324,5e-324}', '{0,0}', 'less');

-- Benjamini-Hochberg: NaN counts as 1
SELECT mlma.bh_adjust('{0.1,NaN}') = mlma.bh_adjust('{0.1,1}') AS nan_is_one;
SELECT mlma.bh_adjust('{NaN,NaN}');

-- A scheduled stream fed subnormal losses next to an ordinary one: the
-- round decides both.
SELECT mlma.create_stream('robust/tiny', batch_size => 4, check_mode => 'scheduled') > 0 AS created;
SELECT mlma.create_stream('robust/plain', batch_size => 4, check_mode => 'scheduled') > 0 AS created;
SELECT count(mlma.observe_loss('robust/tiny', l))
  FROM unnest('{1e-310,0,1e-310,0, 0,0,1e-310,5e-324, 1e-310,1e-310,1e-310,0}'::float8[]) l;
SELECT count(mlma.observe_loss('robust/plain', l))
  FROM unnest('{1,2,3,4, 1,2,3,5, 2,2,3,4}'::float8[]) l;
SELECT s.name, c.batch_no, c.status, c.p_value BETWEEN 0 AND 1 AS p_ok,
       c.p_adjusted BETWEEN 0 AND 1 AS p_adjusted_ok, c.significant, c.drift
  FROM mlma.run_checks() c JOIN mlma.streams s USING (stream_id)
 ORDER BY s.name, c.batch_no;
SELECT mlma.drop_stream('robust/tiny');
SELECT mlma.drop_stream('robust/plain');

-- The decision rule: significant, streak, drift
SELECT * FROM mlma._decide(0.01, 0.05, 1.5, 1.0, 0, 1);
SELECT * FROM mlma._decide(0.01, 0.05, 1.5, 1.0, 1, 3);
SELECT * FROM mlma._decide(0.01, 0.05, 1.5, 1.0, 2, 3);
SELECT * FROM mlma._decide(0.05, 0.05, 1.0, 1.0, 4, 2);
SELECT * FROM mlma._decide(0.06, 0.05, 1.5, 1.0, 4, 2);
SELECT * FROM mlma._decide(0.01, 0.05, 0.9, 1.0, 4, 2);
SELECT * FROM mlma._decide('NaN', 0.05, 1.5, 1.0, 4, 1);
SELECT * FROM mlma._decide(0.01, 0.05, 'NaN', 1.0, 4, 1);
SELECT * FROM mlma._decide(0, 0.05, 'Infinity', 1.0, 0, 1);
SELECT * FROM mlma._decide(NULL, 0.05, 1.5, 1.0, 4, 1);

-- Data that allow no test: a NULL result with the sizes, never an error
SELECT * FROM mlma._evaluate('dm', '{1,2,3}', NULL, '{1,2}', 0, NULL);
SELECT * FROM mlma._evaluate('welch', '{1}', NULL, '{1,2}', 0, NULL);
SELECT * FROM mlma._evaluate('welch', '{1,2}', NULL, '{1,Infinity}', 0, NULL);
