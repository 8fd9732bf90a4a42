/*-------------------------------------------------------------------------
 *
 * test_param.c
 *	  Unit tests of the parametric tests (Welch, HAC, Diebold-Mariano),
 *	  Benjamini-Hochberg and the dispatch by name.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>

#include "unit.h"

/* deterministic pseudo-random uniforms in (0, 1) */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;

static double
uniform(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}

/* AR(1) series with coefficient phi around level mu */
static void
ar1(double *x, int n, double phi, double mu)
{
	double		prev = 0.0;
	int			i;

	for (i = 0; i < n; i++)
	{
		prev = phi * prev + (uniform() - 0.5);
		x[i] = mu + prev;
	}
}

/* Newey-West long-run variance written directly from its definition */
static double
direct_lrv(const double *x, int n, int lags)
{
	double		mean = 0.0;
	double		total = 0.0;
	int			i,
				k;

	for (i = 0; i < n; i++)
		mean += x[i];
	mean /= n;
	for (k = 0; k <= lags; k++)
	{
		double		g = 0.0;

		for (i = k; i < n; i++)
			g += (x[i] - mean) * (x[i - k] - mean);
		total += (k == 0 ? 1.0 : 2.0 * (1.0 - (double) k / (lags + 1))) * g;
	}
	return total / n;
}

static void
test_welch(void)
{
	double		ref[] = {1, 2, 3, 4};
	double		cur[] = {2, 3, 4, 5, 7};
	double		c1[] = {3, 3, 3};
	double		c2[] = {3, 3};
	double		c3[] = {5, 5, 5, 5};
	double		bad[] = {1, NAN};
	double		sref[4],
				scur[5];
	MlmaTestResult r,
				r2;
	int			i;

	/* scipy.stats.ttest_ind(cur, ref, equal_var=False) */
	CHECK(mlma_welch_test(ref, 4, cur, 5, MLMA_ALT_GREATER, &r) == MLMA_OK);
	CHECK_CLOSE(r.statistic, 1.5806831048030465, 1e-14);
	CHECK_CLOSE(r.p_value, 0.07938802897855297, 1e-13);
	CHECK_CLOSE(r.df, 6.869000532440861, 1e-14);
	CHECK(r.lags == -1);
	CHECK(mlma_welch_test(ref, 4, cur, 5, MLMA_ALT_LESS, &r) == MLMA_OK);
	CHECK_CLOSE(r.p_value, 0.9206119710214471, 1e-14);
	CHECK(mlma_welch_test(ref, 4, cur, 5, MLMA_ALT_TWO_SIDED, &r) == MLMA_OK);
	CHECK_CLOSE(r.p_value, 2 * 0.07938802897855297, 1e-13);

	/* swapping the batches negates the statistic and swaps the tails */
	CHECK(mlma_welch_test(cur, 5, ref, 4, MLMA_ALT_LESS, &r2) == MLMA_OK);
	CHECK_CLOSE(r2.statistic, -1.5806831048030465, 1e-14);
	CHECK_CLOSE(r2.p_value, 0.07938802897855297, 1e-13);

	/* scale invariance, far from 1 */
	for (i = 0; i < 4; i++)
		sref[i] = ref[i] * 1e-300;
	for (i = 0; i < 5; i++)
		scur[i] = cur[i] * 1e-300;
	CHECK(mlma_welch_test(sref, 4, scur, 5, MLMA_ALT_GREATER, &r) == MLMA_OK);
	CHECK_CLOSE(r.statistic, 1.5806831048030465, 1e-13);
	CHECK_CLOSE(r.df, 6.869000532440861, 1e-13);
	for (i = 0; i < 4; i++)
		sref[i] = ref[i] * 1e300;
	for (i = 0; i < 5; i++)
		scur[i] = cur[i] * 1e300;
	CHECK(mlma_welch_test(sref, 4, scur, 5, MLMA_ALT_GREATER, &r) == MLMA_OK);
	CHECK_CLOSE(r.statistic, 1.5806831048030465, 1e-13);
	CHECK_CLOSE(r.p_value, 0.07938802897855297, 1e-12);

	/* degenerate: constant and equal, constant and different */
	CHECK(mlma_welch_test(c1, 3, c2, 2, MLMA_ALT_GREATER, &r) == MLMA_OK);
	CHECK(r.statistic == 0.0 && r.p_value == 1.0 && r.df == 1.0);
	CHECK(mlma_welch_test(c1, 3, c3, 4, MLMA_ALT_GREATER, &r) == MLMA_OK);
	CHECK(r.statistic == INFINITY && r.p_value == 0.0);
	CHECK(mlma_welch_test(c1, 3, c3, 4, MLMA_ALT_LESS, &r) == MLMA_OK);
	CHECK(r.p_value == 1.0);
	CHECK(mlma_welch_test(c3, 4, c1, 3, MLMA_ALT_TWO_SIDED, &r) == MLMA_OK);
	CHECK(r.statistic == -INFINITY && r.p_value == 0.0);
	/* one constant batch: df is n - 1 of the other */
	CHECK(mlma_welch_test(c1, 3, cur, 5, MLMA_ALT_GREATER, &r) == MLMA_OK);
	CHECK_CLOSE(r.df, 4.0, 1e-14);

	/* bad input */
	CHECK(mlma_welch_test(ref, 1, cur, 5, MLMA_ALT_GREATER, &r) == MLMA_ERR_INPUT);
	CHECK(mlma_welch_test(ref, 4, bad, 2, MLMA_ALT_GREATER, &r) == MLMA_ERR_INPUT);
	CHECK(mlma_welch_test(NULL, 0, cur, 5, MLMA_ALT_GREATER, &r) == MLMA_ERR_INPUT);
}

static void
test_hac_dm(void)
{
	enum
	{
	N = 3000};
	double	   *x = malloc(N * sizeof(double));
	double	   *y = malloc(N * sizeof(double));
	double		zeros[8] = {0};
	double		ones[8] = {1, 1, 1, 1, 1, 1, 1, 1};
	MlmaTestResult r;
	double		se;
	int			lags;

	CHECK(mlma_default_lags(2) == 1);
	CHECK(mlma_default_lags(10) == 2);
	CHECK(mlma_default_lags(100) == 4);
	CHECK(mlma_default_lags(1000) == 6);
	CHECK(mlma_default_lags(5000) == 9);
	CHECK(mlma_default_lags(100000) == 18);

	ar1(x, N, 0.8, 10.0);
	ar1(y, N, 0.5, 10.1);

	/* HAC equals its formula, in the direct and the window-sum ranges */
	for (lags = 0; lags <= 300; lags += (lags < 70 ? 7 : 115))
	{
		CHECK(mlma_hac_test(x, N, y, N - 500, MLMA_ALT_GREATER, lags, &r) == MLMA_OK);
		se = sqrt(direct_lrv(x, N, lags) / N + direct_lrv(y, N - 500, lags) / (N - 500));
		{
			double		mx = 0,
						my = 0;
			int			i;

			for (i = 0; i < N; i++)
				mx += x[i];
			for (i = 0; i < N - 500; i++)
				my += y[i];
			mx /= N;
			my /= N - 500;
			CHECK_CLOSE(r.statistic, (my - mx) / se, 1e-9);
			CHECK_CLOSE(r.p_value, mlma_normal_sf((my - mx) / se), 1e-8);
		}
		CHECK(r.lags == lags);
	}
	/* default and clamped lags; reported lags = the larger batch's */
	CHECK(mlma_hac_test(x, 100, y, 5000 > N ? N : 5000, MLMA_ALT_GREATER, -1, &r) == MLMA_OK);
	CHECK(r.lags == mlma_default_lags(N));
	CHECK(mlma_hac_test(x, 5, y, 7, MLMA_ALT_GREATER, 100, &r) == MLMA_OK);
	CHECK(r.lags == 6);
	CHECK(isnan(r.df));
	/* degenerate */
	CHECK(mlma_hac_test(zeros, 8, zeros, 5, MLMA_ALT_GREATER, -1, &r) == MLMA_OK);
	CHECK(r.statistic == 0.0 && r.p_value == 1.0);
	CHECK(mlma_hac_test(zeros, 8, ones, 5, MLMA_ALT_GREATER, -1, &r) == MLMA_OK);
	CHECK(r.statistic == INFINITY && r.p_value == 0.0);

	/* DM: d = y - x; a window-sum lag count and a direct one */
	for (lags = 0; lags <= 200; lags += 50)
	{
		double	   *d = malloc(N * sizeof(double));
		double		md = 0.0;
		int			i;

		for (i = 0; i < N; i++)
		{
			d[i] = y[i] - x[i];
			md += d[i];
		}
		md /= N;
		CHECK(mlma_dm_test(x, N, y, N, MLMA_ALT_TWO_SIDED, lags, &r) == MLMA_OK);
		se = sqrt(direct_lrv(d, N, lags) / N);
		CHECK_CLOSE(r.statistic, md / se, 1e-9);
		CHECK_CLOSE(r.p_value, 2 * mlma_normal_sf(fabs(md / se)), 1e-8);
		free(d);
	}
	/* DM: swapping the batches negates the statistic */
	{
		MlmaTestResult r2;

		CHECK(mlma_dm_test(x, 500, y, 500, MLMA_ALT_GREATER, -1, &r) == MLMA_OK);
		CHECK(mlma_dm_test(y, 500, x, 500, MLMA_ALT_LESS, -1, &r2) == MLMA_OK);
		CHECK_CLOSE(r2.statistic, -r.statistic, 1e-12);
		CHECK_CLOSE(r2.p_value, r.p_value, 1e-12);
		CHECK(r.lags == mlma_default_lags(500));
	}
	/* DM degenerate and errors */
	CHECK(mlma_dm_test(x, 20, x, 20, MLMA_ALT_GREATER, -1, &r) == MLMA_OK);
	CHECK(r.statistic == 0.0 && r.p_value == 1.0);
	CHECK(mlma_dm_test(zeros, 8, ones, 8, MLMA_ALT_LESS, -1, &r) == MLMA_OK);
	CHECK(r.statistic == INFINITY && r.p_value == 1.0);
	CHECK(mlma_dm_test(x, 20, y, 21, MLMA_ALT_GREATER, -1, &r) == MLMA_ERR_LENGTH);
	CHECK(mlma_dm_test(x, 1, y, 1, MLMA_ALT_GREATER, -1, &r) == MLMA_ERR_INPUT);

	free(x);
	free(y);
}

static void
test_bh(void)
{
	double		p[] = {0.01, 0.04, 0.03, 0.5};
	double		q[4];
	double		bad[] = {0.2, 1.5};
	double		nan[] = {0.2, NAN};
	double		big[1000];
	int			i;

	/* statsmodels multipletests(p, method='fdr_bh')[1] */
	CHECK(mlma_bh_adjust(p, 4, q) == MLMA_OK);
	CHECK_CLOSE(q[0], 0.04, 1e-15);
	CHECK_CLOSE(q[1], 0.05333333333333334, 1e-15);
	CHECK_CLOSE(q[2], 0.05333333333333334, 1e-15);
	CHECK_CLOSE(q[3], 0.5, 1e-15);
	/* in place */
	CHECK(mlma_bh_adjust(p, 4, p) == MLMA_OK);
	CHECK(p[0] == q[0] && p[1] == q[1] && p[2] == q[2] && p[3] == q[3]);
	/* monotone in p, never below p, capped at 1 */
	for (i = 0; i < 1000; i++)
		big[i] = uniform();
	{
		double		adj[1000];
		int			ok = 1;
		int			j;

		CHECK(mlma_bh_adjust(big, 1000, adj) == MLMA_OK);
		for (i = 0; i < 1000; i++)
		{
			if (adj[i] < big[i] || adj[i] > 1.0)
				ok = 0;
			for (j = 0; j < 1000; j += 37)
				if (big[j] < big[i] && adj[j] > adj[i])
					ok = 0;
		}
		CHECK(ok);
	}
	/* out of range counts as 1 (or 0 below 0), NaN as 1: never a failure */
	CHECK(mlma_bh_adjust(bad, 2, q) == MLMA_OK);
	CHECK(q[0] == 0.4 && q[1] == 1.0);
	CHECK(mlma_bh_adjust(nan, 2, q) == MLMA_OK);
	CHECK(q[0] == 0.4 && q[1] == 1.0);
	CHECK(mlma_bh_adjust(NULL, 0, q) == MLMA_OK);
}

static void
test_names(void)
{
	MlmaAlternative alt = MLMA_ALT_LESS;
	double		ref[] = {1, 2, 3, 4};
	double		cur[] = {2, 3, 4, 5, 7};
	MlmaTestResult r;
	int			m;

	for (m = MLMA_METHOD_WELCH; m <= MLMA_METHOD_DM; m++)
		CHECK(mlma_method_kind(mlma_method_name((MlmaMethod) m)) == m);
	CHECK(mlma_method_kind("t-test") == MLMA_METHOD_INVALID);
	CHECK(mlma_method_kind(NULL) == MLMA_METHOD_INVALID);
	CHECK(mlma_method_name(MLMA_METHOD_INVALID) == NULL);

	CHECK(mlma_alternative_kind("greater", &alt) == MLMA_OK && alt == MLMA_ALT_GREATER);
	CHECK(mlma_alternative_kind("less", &alt) == MLMA_OK && alt == MLMA_ALT_LESS);
	CHECK(mlma_alternative_kind("two-sided", &alt) == MLMA_OK && alt == MLMA_ALT_TWO_SIDED);
	CHECK(mlma_alternative_kind("Greater", &alt) == MLMA_ERR_PARAM);
	CHECK(mlma_alternative_kind(NULL, &alt) == MLMA_ERR_PARAM);

	/* dispatch: the same numbers as the direct call */
	CHECK(mlma_run_test(MLMA_METHOD_WELCH, ref, 4, cur, 5, MLMA_ALT_GREATER, -1, &r) == MLMA_OK);
	CHECK_CLOSE(r.statistic, 1.5806831048030465, 1e-14);
	for (m = MLMA_METHOD_WELCH; m <= MLMA_METHOD_DM; m++)
	{
		int			rc = mlma_run_test((MlmaMethod) m, ref, 4, cur, 5,
									   MLMA_ALT_GREATER, -1, &r);

		if (m == MLMA_METHOD_DM)
			CHECK(rc == MLMA_ERR_LENGTH);
		else
			CHECK(rc == MLMA_OK && r.p_value >= 0.0 && r.p_value <= 1.0);
	}
	CHECK(mlma_run_test(MLMA_METHOD_HAC, ref, 4, cur, 5, MLMA_ALT_GREATER, 2, &r) == MLMA_OK);
	CHECK(r.lags == 2);
	CHECK(mlma_run_test(MLMA_METHOD_INVALID, ref, 4, cur, 5, MLMA_ALT_GREATER, -1, &r) == MLMA_ERR_PARAM);
}

void
test_param(void)
{
	test_welch();
	test_hac_dm();
	test_bh();
	test_names();
}
