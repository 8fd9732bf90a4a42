/*-------------------------------------------------------------------------
 *
 * stats_sample.c
 *	  The sample check shared by every test of the numeric core.
 *
 * Plain C over doubles: no PostgreSQL headers (see stats.h).
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stddef.h>

#include "stats.h"

/*
 * mlma_valid_sample
 *		At least two values, all finite.
 */
int
mlma_valid_sample(const double *x, size_t n)
{
	size_t		i;

	if (x == NULL || n < 2)
		return 0;
	for (i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}

/*
 * mlma_clip_probability
 *		A probability computed with rounding error, clipped to [0, 1]; NaN
 *		gives 0.
 */
double
mlma_clip_probability(double p)
{
	if (!(p >= 0.0))
		return 0.0;
	if (p > 1.0)
		return 1.0;
	return p;
}
