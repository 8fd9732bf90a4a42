/*-------------------------------------------------------------------------
 *
 * stats_rank.c
 *	  Rank tests of the numeric core: Mann-Whitney U and the two-sample
 *	  Kolmogorov-Smirnov test.
 *
 * Both functions reproduce SciPy 1.10 (scipy.stats.mannwhitneyu and
 * scipy.stats.ks_2samp with method 'auto'), including the choice between
 * the exact null distribution and the asymptotic one; docs/statistics.md
 * describes the branches.  Plain C over doubles: no backend headers, scratch
 * memory through malloc.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "stats.h"

/* a value of the pooled sample and the batch it came from */
typedef struct RankItem
{
	double		value;
	int			from_current;
} RankItem;

/*
 * Are there at least 2 values, all finite?
 */
static int
CheckSample(const double *x, size_t n)
{
	size_t		i;

	if (x == NULL || n < 2)
		return 0;
	for (i = 0; i < n; i++)
		if (!isfinite(x[i]))
			return 0;
	return 1;
}

static int
CompareDouble(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

static int
CompareRankItem(const void *a, const void *b)
{
	double		x = ((const RankItem *) a)->value;
	double		y = ((const RankItem *) b)->value;

	return (x > y) - (x < y);
}

/*
 * Upper tail of the standard normal, P(Z > z), the way the Cephes ndtr
 * routine of SciPy evaluates it (erf near the centre, erfc in the tails).
 */
static double
NormalSf(double z)
{
	double		x = -z * M_SQRT1_2;
	double		ax = fabs(x);
	double		y;

	if (isnan(z))
		return 1.0;
	if (ax < M_SQRT1_2)
		return 0.5 + 0.5 * erf(x);
	y = 0.5 * erfc(ax);
	return (x > 0) ? 1.0 - y : y;
}

static double
Clip01(double p)
{
	if (!(p >= 0.0))
		return 0.0;
	if (p > 1.0)
		return 1.0;
	return p;
}

/* ----------------------------------------------------------------------
 * Mann-Whitney U
 * ----------------------------------------------------------------------
 */

/*
 * P(U >= u) under the null for samples of sizes m and n without ties:
 * the counts of the U distribution are the coefficients of the Gaussian
 * binomial [m+n choose m]_q, built as prod_{i=1..s} (1 - q^{L+i}) / (1 - q^i)
 * with s = min(m, n), L = max(m, n).  Only coefficients up to the needed
 * half of the (symmetric) distribution are kept.  Returns -1 on failure.
 */
static double
MannWhitneyExactSf(double u, size_t m, size_t n)
{
	size_t		s = (m < n) ? m : n;
	size_t		L = (m < n) ? n : m;
	size_t		mn = m * n;
	size_t		kcdf;
	size_t		kmax;
	size_t		i;
	size_t		k;
	int			complement;
	long double *c;
	long double total;
	long double binom;
	long double num;

	/* sf(u) = cdf(mn - u) by symmetry */
	if (u <= 0)
		return 1.0;
	kcdf = mn - (size_t) u;

	/* sum the shorter side of the distribution */
	if (kcdf <= mn / 2)
	{
		kmax = kcdf;
		complement = 0;
	}
	else
	{
		if (kcdf >= mn)
			return 1.0;
		kmax = mn - kcdf - 1;
		complement = 1;
	}

	c = (long double *) calloc(kmax + 1, sizeof(long double));
	if (c == NULL)
		return -1.0;
	c[0] = 1.0L;
	for (i = 1; i <= s; i++)
	{
		/* divide by (1 - q^i): running sum with stride i */
		for (k = i; k <= kmax; k++)
			c[k] += c[k - i];
		/* multiply by (1 - q^(L+i)) */
		if (L + i <= kmax)
			for (k = kmax; k >= L + i; k--)
				c[k] -= c[k - L - i];
	}

	total = 0.0L;
	for (k = 0; k <= kmax; k++)
		total += c[k];
	free(c);

	/* binom(m + n, s) */
	binom = 1.0L;
	num = 0.0L;
	for (i = 1; i <= s; i++)
		binom = binom * (long double) (L + i) / (long double) i;
	(void) num;

	if (complement)
		return (double) (1.0L - total / binom);
	return (double) (total / binom);
}

int
mlma_mann_whitney_test(const double *ref, size_t nref,
					   const double *cur, size_t ncur,
					   MlmaAlternative alt, MlmaTestResult *res)
{
	size_t		n1 = ncur;		/* "x" of SciPy: the current batch */
	size_t		n2 = nref;
	size_t		n = n1 + n2;
	RankItem   *items;
	size_t		i;
	size_t		j;
	double		r1 = 0.0;
	uint64_t	tie_term = 0;
	int			ties = 0;
	double		u1;
	double		u2;
	double		u;
	double		f;
	double		p;

	if (res == NULL || !CheckSample(ref, nref) || !CheckSample(cur, ncur))
		return MLMA_ERR_INPUT;
	if (alt != MLMA_ALT_GREATER && alt != MLMA_ALT_LESS &&
		alt != MLMA_ALT_TWO_SIDED)
		return MLMA_ERR_PARAM;

	items = (RankItem *) malloc(n * sizeof(RankItem));
	if (items == NULL)
		return MLMA_ERR_NOMEM;
	for (i = 0; i < n1; i++)
	{
		items[i].value = cur[i];
		items[i].from_current = 1;
	}
	for (i = 0; i < n2; i++)
	{
		items[n1 + i].value = ref[i];
		items[n1 + i].from_current = 0;
	}
	qsort(items, n, sizeof(RankItem), CompareRankItem);

	/* average ranks of tie groups; rank sum of the current batch */
	for (i = 0; i < n; i = j)
	{
		size_t		ncurgroup = 0;
		uint64_t	t;

		for (j = i; j < n && items[j].value == items[i].value; j++)
			ncurgroup += items[j].from_current;
		t = j - i;
		if (t > 1)
		{
			ties = 1;
			tie_term += t * t * t - t;
		}
		/* positions i+1 .. j share the rank (i + 1 + j) / 2 */
		r1 += (double) ncurgroup * ((double) (i + 1 + j) / 2.0);
	}
	free(items);

	u1 = r1 - (double) n1 * (double) (n1 + 1) / 2.0;
	u2 = (double) n1 * (double) n2 - u1;

	switch (alt)
	{
		case MLMA_ALT_GREATER:
			u = u1;
			f = 1.0;
			break;
		case MLMA_ALT_LESS:
			u = u2;
			f = 1.0;
			break;
		default:
			u = (u1 > u2) ? u1 : u2;
			f = 2.0;
			break;
	}

	if ((n1 <= 8 || n2 <= 8) && !ties)
	{
		p = MannWhitneyExactSf(u, n1, n2);
		if (p < 0)
			return MLMA_ERR_NOMEM;
	}
	else
	{
		double		mu = (double) n1 * (double) n2 / 2.0;
		double		s;
		double		z;

		s = sqrt((double) n1 * (double) n2 / 12.0 *
				 ((double) (n + 1) -
				  (double) tie_term / ((double) n * (double) (n - 1))));
		z = u - mu - 0.5;
		if (s > 0)
			z = z / s;
		else
			z = (z > 0) ? INFINITY : -INFINITY;
		p = NormalSf(z);
	}

	res->statistic = u1;
	res->p_value = Clip01(p * f);
	res->df = NAN;
	res->lags = -1;
	return MLMA_OK;
}

/* ----------------------------------------------------------------------
 * Two-sample Kolmogorov-Smirnov
 * ----------------------------------------------------------------------
 */

/*
 * Kolmogorov limiting distribution, P(K > x).
 */
static double
KolmogorovSf(double x)
{
	double		sum = 0.0;
	int			k;

	if (x <= 0)
		return 1.0;
	if (x < 0.2)
		return 1.0;
	for (k = 1; k < 200; k++)
	{
		double		term = exp(-2.0 * k * k * x * x);

		sum += (k % 2 ? 2.0 : -2.0) * term;
		if (term < 1e-300)
			break;
	}
	return Clip01(sum);
}

int
mlma_ks_test(const double *ref, size_t nref,
			 const double *cur, size_t ncur,
			 MlmaAlternative alt, MlmaTestResult *res)
{
	double	   *d1;
	double	   *d2;
	size_t		n1 = nref;		/* data1 of SciPy: the reference batch */
	size_t		n2 = ncur;
	size_t		i1 = 0;
	size_t		i2 = 0;
	double		maxs = -INFINITY;
	double		mins = INFINITY;
	double		d;
	double		p;
	double		m;
	double		nn;
	double		en;

	if (res == NULL || !CheckSample(ref, nref) || !CheckSample(cur, ncur))
		return MLMA_ERR_INPUT;
	if (alt != MLMA_ALT_GREATER && alt != MLMA_ALT_LESS &&
		alt != MLMA_ALT_TWO_SIDED)
		return MLMA_ERR_PARAM;

	d1 = (double *) malloc((n1 + n2) * sizeof(double));
	if (d1 == NULL)
		return MLMA_ERR_NOMEM;
	d2 = d1 + n1;
	for (i1 = 0; i1 < n1; i1++)
		d1[i1] = ref[i1];
	for (i2 = 0; i2 < n2; i2++)
		d2[i2] = cur[i2];
	qsort(d1, n1, sizeof(double), CompareDouble);
	qsort(d2, n2, sizeof(double), CompareDouble);

	/* walk the distinct values of the pooled sample */
	i1 = i2 = 0;
	while (i1 < n1 || i2 < n2)
	{
		double		v;
		double		diff;

		if (i2 >= n2 || (i1 < n1 && d1[i1] <= d2[i2]))
			v = d1[i1];
		else
			v = d2[i2];
		while (i1 < n1 && d1[i1] == v)
			i1++;
		while (i2 < n2 && d2[i2] == v)
			i2++;
		diff = (double) i1 / (double) n1 - (double) i2 / (double) n2;
		if (diff > maxs)
			maxs = diff;
		if (diff < mins)
			mins = diff;
	}
	free(d1);

	mins = -mins;
	if (mins < 0)
		mins = 0;
	if (mins > 1)
		mins = 1;
	if (alt == MLMA_ALT_LESS || (alt == MLMA_ALT_TWO_SIDED && mins > maxs))
		d = mins;
	else
		d = maxs;

	m = (double) ((n1 > n2) ? n1 : n2);
	nn = (double) ((n1 > n2) ? n2 : n1);
	en = m * nn / (m + nn);
	if (alt == MLMA_ALT_TWO_SIDED)
		p = KolmogorovSf(d * sqrt(en));
	else
	{
		double		z = sqrt(en) * d;

		p = exp(-2.0 * z * z - 2.0 * z * (m + 2.0 * nn) /
				sqrt(m * nn * (m + nn)) / 3.0);
	}

	res->statistic = d;
	res->p_value = Clip01(p);
	res->df = NAN;
	res->lags = -1;
	return MLMA_OK;
}
