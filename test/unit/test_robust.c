/*-------------------------------------------------------------------------
 *
 * test_robust.c
 *	  Every test of the numeric core is defined for every finite input:
 *	  subnormal values, values near the largest double, mixtures of both,
 *	  ties, constant batches.  The tests are invariant under scaling both
 *	  batches by a power of two, so a batch scaled into the normal range
 *	  must give the same answer.
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <string.h>

#include "unit.h"

#define NMETHODS 5

static void
Scaled(const double *x, size_t n, int e, double *out)
{
	size_t		i;

	for (i = 0; i < n; i++)
		out[i] = ldexp(x[i], e);
}

/* the result is a defined answer: p in [0, 1], statistic not NaN */
static int
Defined(const MlmaTestResult *r)
{
	return r->p_value >= 0.0 && r->p_value <= 1.0 && !isnan(r->statistic);
}

/*
 * Runs every method and alternative on (ref, cur) and on both scaled by
 * 2^e, and checks that both are defined and agree.
 */
static void
CheckScaleInvariant(const double *ref, const double *cur, size_t n, int e)
{
	double		rs[16];
	double		cs[16];
	int			m;
	int			alt;

	Scaled(ref, n, e, rs);
	Scaled(cur, n, e, cs);
	for (m = 0; m < NMETHODS; m++)
		for (alt = 0; alt < 3; alt++)
		{
			MlmaTestResult a;
			MlmaTestResult b;

			CHECK(mlma_run_test((MlmaMethod) m, ref, n, cur, n,
								(MlmaAlternative) alt, -1, &a) == MLMA_OK);
			CHECK(mlma_run_test((MlmaMethod) m, rs, n, cs, n,
								(MlmaAlternative) alt, -1, &b) == MLMA_OK);
			CHECK(Defined(&a));
			CHECK_CLOSE(a.statistic, b.statistic, 1e-13);
			CHECK_CLOSE(a.p_value, b.p_value, 1e-13);
		}
}

static void
test_subnormal(void)
{
	/* the case of the issue: NaN before rescaling was bounded */
	double		ref[] = {1e-310, 0, 1e-310};
	double		cur[] = {0, 0, 1e-310};
	double		one_ref[] = {1, 0, 1};
	double		one_cur[] = {0, 0, 1};
	MlmaTestResult r;
	MlmaTestResult o;
	double		tiny_ref[] = {4.9406564584124654e-324, 0, 9.8813129168249309e-324,
	4.9406564584124654e-324, 0};
	double		tiny_cur[] = {9.8813129168249309e-324, 1.4821969375237396e-323,
	4.9406564584124654e-324, 9.8813129168249309e-324, 0};
	double		mixed_ref[] = {1e-310, 3e-312, 2e-309, 7e-311, 1e-315, 5e-310};
	double		mixed_cur[] = {3e-310, 1e-309, 2e-309, 4e-310, 2e-308, 8e-310};

	CHECK(mlma_welch_test(ref, 3, cur, 3, MLMA_ALT_TWO_SIDED, &r) == MLMA_OK);
	CHECK(mlma_welch_test(one_ref, 3, one_cur, 3, MLMA_ALT_TWO_SIDED, &o) == MLMA_OK);
	CHECK_CLOSE(r.statistic, o.statistic, 1e-14);
	CHECK_CLOSE(r.p_value, o.p_value, 1e-14);
	CHECK_CLOSE(r.df, o.df, 1e-14);
	CHECK_CLOSE(r.statistic, -0.70710678118654746, 1e-14);

	/* into the normal range: 2^600 is exact for every subnormal */
	CheckScaleInvariant(ref, cur, 3, 600);
	CheckScaleInvariant(tiny_ref, tiny_cur, 5, 1000);
	CheckScaleInvariant(mixed_ref, mixed_cur, 6, 700);
}

static void
test_huge(void)
{
	double		ref[] = {1e308, 1.7e308, 1.2e308, 9e307, 1.79e308, 1.1e308};
	double		cur[] = {1.5e308, 1.6e308, 1.7e308, 1.75e308, 1.3e308, 1.78e308};
	double		neg[] = {-1e308, 1.7e308, -1.2e308, 9e307, -DBL_MAX, DBL_MAX};

	CheckScaleInvariant(ref, cur, 6, -600);
	CheckScaleInvariant(neg, cur, 6, -600);
	CheckScaleInvariant(ref, neg, 6, -600);
}

/* huge and tiny values together: the tiny ones vanish next to the huge */
static void
test_mixture(void)
{
	double		ref[] = {1e308, 1e-310, 0, 1e-300, 1.5e308, 5e-324};
	double		cur[] = {5e-324, 1e308, 1.7e308, 2e-310, 0, 1e-320};
	int			m;
	int			alt;

	for (m = 0; m < NMETHODS; m++)
		for (alt = 0; alt < 3; alt++)
		{
			MlmaTestResult r;

			CHECK(mlma_run_test((MlmaMethod) m, ref, 6, cur, 6,
								(MlmaAlternative) alt, -1, &r) == MLMA_OK);
			CHECK(Defined(&r));
		}
}

/* equal constant batches: statistic 0 (U = n1 n2 / 2), p 1 */
static void
test_constant(void)
{
	double		values[] = {0.0, 5e-324, 1e-310, 1.0, 1e308, DBL_MAX};
	double		ref[7];
	double		cur[5];
	int			v;
	int			m;
	int			alt;
	int			i;

	for (v = 0; v < 6; v++)
	{
		for (i = 0; i < 7; i++)
			ref[i] = values[v];
		for (i = 0; i < 5; i++)
			cur[i] = values[v];
		for (m = 0; m < NMETHODS; m++)
			for (alt = 0; alt < 3; alt++)
			{
				MlmaTestResult r;
				size_t		nr = (m == MLMA_METHOD_DM) ? 5 : 7;

				CHECK(mlma_run_test((MlmaMethod) m, ref, nr, cur, 5,
									(MlmaAlternative) alt, -1, &r) == MLMA_OK);
				CHECK(r.statistic == ((m == MLMA_METHOD_MANN_WHITNEY) ?
									  (double) nr * 5.0 / 2.0 : 0.0));
				CHECK(r.p_value == 1.0);
			}
	}
}

/*
 * constant but different batches: +Infinity for welch, hac and dm (zero
 * standard error, current larger) with p 0 for greater and two-sided and
 * 1 for less; D = 1 for KS
 */
static void
test_constant_different(void)
{
	double		pairs[][2] = {{0.0, 5e-324}, {1e-310, 2e-310}, {1.0, 2.0},
	{1e308, DBL_MAX}, {-DBL_MAX, DBL_MAX}};
	int			k;

	for (k = 0; k < 5; k++)
	{
		double		ref[4];
		double		cur[4];
		int			i;
		int			alt;
		MlmaMethod	loc[] = {MLMA_METHOD_WELCH, MLMA_METHOD_HAC, MLMA_METHOD_DM};

		for (i = 0; i < 4; i++)
		{
			ref[i] = pairs[k][0];
			cur[i] = pairs[k][1];
		}
		for (alt = 0; alt < 3; alt++)
		{
			MlmaTestResult r;

			for (i = 0; i < 3; i++)
			{
				CHECK(mlma_run_test(loc[i], ref, 4, cur, 4, (MlmaAlternative) alt,
									-1, &r) == MLMA_OK);
				CHECK(r.statistic == INFINITY);
				CHECK(r.p_value == ((alt == MLMA_ALT_LESS) ? 1.0 : 0.0));
			}
			CHECK(mlma_ks_test(ref, 4, cur, 4, (MlmaAlternative) alt, &r) == MLMA_OK);
			CHECK(r.statistic == ((alt == MLMA_ALT_LESS) ? 0.0 : 1.0));
			CHECK(Defined(&r));
			CHECK(mlma_mann_whitney_test(ref, 4, cur, 4, (MlmaAlternative) alt, &r) == MLMA_OK);
			CHECK(r.statistic == 16.0);
			CHECK(Defined(&r));
		}
	}
}

/* one constant batch against a varying one; ties across batches */
static void
test_ties(void)
{
	double		ref[] = {1, 1, 1, 1, 1, 1};
	double		cur[] = {1, 1, 1, 1, 1, 1 + DBL_EPSILON};
	double		sub[] = {0, 0, 0, 0, 0, 5e-324};
	int			m;
	int			alt;

	for (m = 0; m < NMETHODS; m++)
		for (alt = 0; alt < 3; alt++)
		{
			MlmaTestResult r;

			CHECK(mlma_run_test((MlmaMethod) m, ref, 6, cur, 6,
								(MlmaAlternative) alt, -1, &r) == MLMA_OK);
			CHECK(Defined(&r));
			CHECK(mlma_run_test((MlmaMethod) m, sub, 6, ref, 6,
								(MlmaAlternative) alt, -1, &r) == MLMA_OK);
			CHECK(Defined(&r));
		}
}

void
test_robust(void)
{
	test_subnormal();
	test_huge();
	test_mixture();
	test_constant();
	test_constant_different();
	test_ties();
}
