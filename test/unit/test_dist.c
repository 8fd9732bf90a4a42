/*-------------------------------------------------------------------------
 *
 * test_dist.c
 *	  Unit tests of the distribution functions: closed forms, symmetries
 *	  and reference values of scipy.special (ndtr, stdtr, betainc).
 *
 *-------------------------------------------------------------------------
 */
#include "unit.h"

/* Student t with 1 df (Cauchy): P(T > t) = atan(1/t) / pi for t > 0 */
static double
cauchy_sf(double t)
{
	return atan(1.0 / t) / M_PI;
}

/* Student t with 2 df: P(T > t) = 1 / ((s + t) s), s = sqrt(2 + t^2), t > 0 */
static double
t2_sf(double t)
{
	double		s = sqrt(2.0 + t * t);

	return 1.0 / ((s + t) * s);
}

void
test_dist(void)
{
	double		t;
	int			i;

	/* normal */
	CHECK(mlma_normal_sf(0.0) == 0.5);
	CHECK_CLOSE(mlma_normal_sf(1.96), 0.024997895148220435, 1e-14);
	CHECK_CLOSE(mlma_normal_sf(10.0), 7.61985302416047e-24, 1e-13);
	CHECK_CLOSE(mlma_normal_sf(37.5), 4.605353009581954e-308, 1e-12);
	CHECK_CLOSE(mlma_normal_cdf(-1.96), 0.024997895148220435, 1e-14);
	CHECK(mlma_normal_sf(-40.0) == 1.0);
	CHECK(mlma_normal_sf(INFINITY) == 0.0);

	/* t: closed forms with 1 and 2 df, from the centre to the far tail */
	for (t = 1e-3; t < 1e250; t *= 7.3)
	{
		/* relative error grows like eps * |log p| in the far tail */
		CHECK_CLOSE(mlma_t_sf(t, 1.0), cauchy_sf(t), 3e-13);
		if (t < 1e150)
			CHECK_CLOSE(mlma_t_sf(t, 2.0), t2_sf(t), 1e-13);
	}
	/* t: scipy.special.stdtr(df, -t) */
	CHECK_CLOSE(mlma_t_sf(2.5, 3.0), 0.04385332350403277, 1e-13);
	CHECK_CLOSE(mlma_t_sf(40.0, 7.5), 2.559528381854895e-10, 1e-12);
	CHECK_CLOSE(mlma_t_sf(1e5, 2.5), 2.2747519231756245e-13, 1e-12);
	CHECK_CLOSE(mlma_t_sf(0.1, 30.0), 0.46050480589513554, 1e-13);
	CHECK_CLOSE(mlma_t_sf(3.0, 1e5), 0.0013502304420323597, 1e-11);
	CHECK_CLOSE(mlma_t_sf(-1.3, 4.2), 0.8698212290621732, 1e-13);
	CHECK_CLOSE(mlma_t_sf(1e3, 0.7), 0.002469002170350087, 1e-12);
	/* symmetry, special values */
	for (i = 0; i < 50; i++)
	{
		double		df = 0.5 + i * 3.7;
		double		x = -6.0 + i * 0.25;

		CHECK_CLOSE(mlma_t_sf(x, df) + mlma_t_cdf(x, df), 1.0, 1e-14);
		CHECK_CLOSE(mlma_t_sf(-x, df), mlma_t_cdf(x, df), 1e-14);
	}
	CHECK(mlma_t_sf(0.0, 5.0) == 0.5);
	CHECK(mlma_t_sf(INFINITY, 5.0) == 0.0);
	CHECK(mlma_t_sf(-INFINITY, 5.0) == 1.0);
	CHECK(isnan(mlma_t_sf(1.0, 0.0)));
	CHECK(isnan(mlma_t_sf(NAN, 3.0)));
	/* large df tends to the normal */
	CHECK_CLOSE(mlma_t_sf(2.0, 1e12), 0.022750131948314184, 1e-12);
	/* huge df, both sides of the switch to the large-df expansion */
	CHECK_CLOSE(mlma_t_sf(5.0, 1e9), 2.866516201975811e-07, 1e-11);
	CHECK_CLOSE(mlma_t_sf(3.0, 1e7), 0.0013499013555185806, 1e-9);
	CHECK_CLOSE(mlma_t_sf(3.0, 1e8), 0.0013498983640187472, 1e-11);
	CHECK_CLOSE(mlma_t_sf(2.0, INFINITY), mlma_normal_sf(2.0), 0.0);

	/* incomplete beta: closed forms and scipy.special.betainc */
	for (i = 1; i < 20; i++)
	{
		double		x = i / 20.0;

		CHECK_CLOSE(mlma_incbet(3.5, 1.0, x), pow(x, 3.5), 1e-13);
		CHECK_CLOSE(mlma_incbet(1.0, 2.5, x), -expm1(2.5 * log1p(-x)), 1e-13);
		CHECK_CLOSE(mlma_incbet(4.0, 9.0, x) + mlma_incbet(9.0, 4.0, 1.0 - x), 1.0, 1e-14);
	}
	CHECK_CLOSE(mlma_incbet(7.0, 7.0, 0.5), 0.5, 1e-14);
	CHECK_CLOSE(mlma_incbet(2.5, 0.5, 0.3), 0.01892712407194565, 1e-13);
	CHECK_CLOSE(mlma_incbet(50.0, 60.0, 0.45), 0.4642352914306064, 1e-12);
	CHECK_CLOSE(mlma_incbet(0.3, 7.0, 0.01), 0.4874920509337245, 1e-13);
	CHECK_CLOSE(mlma_incbet(1000.0, 0.5, 0.999), 0.15724727426683946, 1e-11);
	CHECK(mlma_incbet(2.0, 3.0, 0.0) == 0.0);
	CHECK(mlma_incbet(2.0, 3.0, 1.0) == 1.0);
	CHECK(isnan(mlma_incbet(2.0, 3.0, 1.5)));
	CHECK(isnan(mlma_incbet(-1.0, 3.0, 0.5)));
}
