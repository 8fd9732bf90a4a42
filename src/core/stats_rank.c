/*-------------------------------------------------------------------------
 *
 * stats_rank.c
 *	  Rank tests of the numeric core: Mann-Whitney U and the two-sample
 *	  Kolmogorov-Smirnov test.
 *
 * Both functions reproduce SciPy 1.10 (scipy.stats.mannwhitneyu and
 * scipy.stats.ks_2samp with method 'auto'), including the choice between
 * the exact null distribution and the asymptotic one; docs/statistics.md
 * describes the branches.  The one-sample Kolmogorov distribution of the
 * asymptotic KS branch is in stats_ks_dist.c.  Plain C over doubles: no backend headers, scratch
 * memory through malloc.
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

static int
CompareDouble(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

/*
 * SortDoubles
 *		Sorts finite doubles in place, ascending: quicksort (median of three,
 *		Hoare partition, comparisons inlined) with insertion sort for short
 *		runs, and qsort() as the fallback past a recursion depth of
 *		2*log2(n), so the worst case stays O(n log n).  Several times faster
 *		than qsort() with a comparison callback for batches of losses.
 */
static void
SortDoublesDepth(double *a, size_t n, int depth)
{
	while (n > 16)
	{
		size_t		m = n / 2;
		double		t;
		double		pivot;
		ptrdiff_t	i = -1;
		ptrdiff_t	j = (ptrdiff_t) n;

		if (depth-- <= 0)
		{
			qsort(a, n, sizeof(double), CompareDouble);
			return;
		}
		/* order a[0] <= a[m] <= a[n-1]: sentinels for the scans below */
		if (a[m] < a[0])
		{
			t = a[m]; a[m] = a[0]; a[0] = t;
		}
		if (a[n - 1] < a[m])
		{
			t = a[n - 1]; a[n - 1] = a[m]; a[m] = t;
			if (a[m] < a[0])
			{
				t = a[m]; a[m] = a[0]; a[0] = t;
			}
		}
		pivot = a[m];
		for (;;)
		{
			do
				i++;
			while (a[i] < pivot);
			do
				j--;
			while (a[j] > pivot);
			if (i >= j)
				break;
			t = a[i]; a[i] = a[j]; a[j] = t;
		}
		/* [0, j] <= pivot <= [j+1, n): recurse on the smaller part */
		if ((size_t) (j + 1) < n - (size_t) (j + 1))
		{
			SortDoublesDepth(a, (size_t) (j + 1), depth);
			a += j + 1;
			n -= (size_t) (j + 1);
		}
		else
		{
			SortDoublesDepth(a + j + 1, n - (size_t) (j + 1), depth);
			n = (size_t) (j + 1);
		}
	}
	for (size_t k = 1; k < n; k++)
	{
		double		v = a[k];
		size_t		l = k;

		while (l > 0 && a[l - 1] > v)
		{
			a[l] = a[l - 1];
			l--;
		}
		a[l] = v;
	}
}

static void
SortDoubles(double *a, size_t n)
{
	int			depth = 0;

	for (size_t k = n; k > 1; k >>= 1)
		depth += 2;
	SortDoublesDepth(a, n, depth);
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
	for (i = 1; i <= s; i++)
		binom = binom * (long double) (L + i) / (long double) i;

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
	double	   *xs;
	double	   *ys;
	size_t		i;
	size_t		j;
	size_t		pos = 0;
	double		r1 = 0.0;
	uint64_t	tie_term = 0;
	int			ties = 0;
	double		u1;
	double		u2;
	double		u;
	double		f;
	double		p;

	if (res == NULL || !mlma_valid_sample(ref, nref) || !mlma_valid_sample(cur, ncur))
		return MLMA_ERR_INPUT;
	if (alt != MLMA_ALT_GREATER && alt != MLMA_ALT_LESS &&
		alt != MLMA_ALT_TWO_SIDED)
		return MLMA_ERR_PARAM;

	xs = (double *) malloc(n * sizeof(double));
	if (xs == NULL)
		return MLMA_ERR_NOMEM;
	ys = xs + n1;
	memcpy(xs, cur, n1 * sizeof(double));
	memcpy(ys, ref, n2 * sizeof(double));
	SortDoubles(xs, n1);
	SortDoubles(ys, n2);

	/*
	 * Walk both sorted batches at once, one tie group (distinct value) at a
	 * time: the group takes positions pos+1 .. pos+t, each of its members
	 * the average rank, and the current batch's rank sum gets its share.
	 */
	i = 0;
	j = 0;
	while (i < n1 || j < n2)
	{
		double		v;
		size_t		c1 = 0;
		size_t		c2 = 0;
		uint64_t	t;

		if (j >= n2 || (i < n1 && xs[i] <= ys[j]))
			v = xs[i];
		else
			v = ys[j];
		while (i < n1 && xs[i] == v)
		{
			i++;
			c1++;
		}
		while (j < n2 && ys[j] == v)
		{
			j++;
			c2++;
		}
		t = c1 + c2;
		if (t > 1)
		{
			ties = 1;
			tie_term += t * t * t - t;
		}
		r1 += (double) c1 * ((double) (2 * pos + 1 + t) / 2.0);
		pos += t;
	}
	free(xs);

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
	res->p_value = mlma_clip_probability(p * f);
	res->df = NAN;
	res->lags = -1;
	return MLMA_OK;
}

/* ----------------------------------------------------------------------
 * Two-sample Kolmogorov-Smirnov
 * ----------------------------------------------------------------------
 */

#define KS_MAX_EXACT_N	10000	/* larger batches use the asymptotic branch */

static size_t
Gcd(size_t a, size_t b)
{
	while (b != 0)
	{
		size_t		t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * Binomial coefficient C(n, k) for integral n >= 0, k >= 0 in double, with
 * SciPy's (scipy.special.binom) recipe, so that it overflows to infinity
 * exactly where SciPy's does: a product for k < 20 (after using symmetry),
 * 1 / ((n + 1) B(n - k + 1, k + 1)) otherwise.
 */
static double
BinomialCoef(double n, double k)
{
	double		kx;
	double		lbeta;
	double		beta;

	if (k == 0)
		return 1.0;
	if (k == 1)
		return n;
	if (k == n)
		return 1.0;
	if (k > n)
		return 0.0;

	kx = k;
	if (kx > n / 2 && n > 0)
		kx = n - kx;
	if (kx < 20)
	{
		double		num = 1.0;
		double		den = 1.0;
		int			i;

		for (i = 1; i <= (int) kx; i++)
		{
			num *= i + n - kx;
			den *= i;
			if (fabs(num) > 1e50)
			{
				num /= den;
				den = 1.0;
			}
		}
		return num / den;
	}

	/* B(a, b) with a = n - k + 1, b = k + 1, through log-gamma */
	lbeta = lgamma(n - k + 1.0) + lgamma(k + 1.0) - lgamma(n + 2.0);
	beta = exp(lbeta);
	return 1.0 / (n + 1.0) / beta;
}

/*
 * P(D >= h/n) for two samples of the same size n, two-sided: Hodges'
 * alternating reflection sum evaluated in a nested (Horner-like) form to
 * avoid cancellation.
 */
static double
KsProbOutsideSquare(long n, long h)
{
	double		p = 0.0;
	long		k = (long) floor((double) n / (double) h);

	for (; k >= 0; k--)
	{
		double		p1 = 1.0;
		long		j;

		for (j = 0; j < h; j++)
			p1 = (double) (n - k * h - j) * p1 / (double) (n + k * h + j + 1);
		p = p1 * (1.0 - p);
	}
	return 2.0 * p;
}

/*
 * Two-sided tail for sizes m != n: the share of lattice paths from (0,0) to
 * (m,n) that leave the band |x/m - y/n| < h/lcm(m,n).  One column of the
 * path-count table is kept, normalised as it goes so that it holds the
 * complementary probability directly (the "inside method" of Hodges with
 * the numerically stable recursion of Viehmann, 2021).  O(m n) time, O(n)
 * memory.  Returns -1 when scratch memory is lacking.
 */
static double
KsOuterProbInside(long m, long n, long g, long h)
{
	long		mg;
	long		ng;
	long		minj;
	long		maxj;
	long		curlen;
	long		len_a;
	long		i;
	double	   *a;
	double		result;

	if (m < n)
	{
		long		t = m;

		m = n;
		n = t;
	}
	mg = m / g;
	ng = n / g;

	minj = 0;
	maxj = (long) ceil((double) h / (double) mg);
	if (maxj > n + 1)
		maxj = n + 1;
	curlen = maxj - minj;
	len_a = 2 * maxj + 2;
	if (len_a > n + 1)
		len_a = n + 1;

	a = (double *) malloc(sizeof(double) * (size_t) len_a);
	if (a == NULL)
		return -1.0;
	for (i = 0; i < len_a; i++)
		a[i] = (i >= minj && i < maxj) ? 0.0 : 1.0;

	for (i = 1; i <= m; i++)
	{
		long		lastminj = minj;
		long		lastlen = curlen;
		long		jj;
		double		val;

		minj = (long) floor((double) (ng * i - h) / (double) mg) + 1;
		if (minj < 0)
			minj = 0;
		if (minj > n)
			minj = n;
		maxj = (long) ceil((double) (ng * i + h) / (double) mg);
		if (maxj > n + 1)
			maxj = n + 1;
		if (maxj <= minj)
		{
			free(a);
			return 1.0;
		}
		val = (minj == 0) ? 0.0 : 1.0;
		for (jj = 0; jj < maxj - minj; jj++)
		{
			long		j = jj + minj;

			val = (a[jj + minj - lastminj] * (double) i + val * (double) j) /
				(double) (i + j);
			a[jj] = val;
		}
		curlen = maxj - minj;
		if (lastlen > curlen)
		{
			long		k;

			for (k = maxj - minj; k < maxj - minj + (lastlen - curlen) && k < len_a; k++)
				a[k] = 1.0;
		}
	}
	result = a[maxj - minj - 1];
	free(a);
	return result;
}

/*
 * One-sided count for sizes m != n: the number of lattice paths from (0,0)
 * to (m,n) that reach the line m*y = n*x - h*g (Hodges' treatment of
 * Drion/Gnedenko/Korolyuk, first-passage decomposition), into *count.  The
 * counts are binomial-sized and may overflow; the caller checks.  Returns 0
 * when scratch memory is lacking, 1 otherwise.
 */
static int
KsCountPathsOutside(long m, long n, long g, long h, double *count)
{
	long		mg;
	long		ng;
	long		lxj;
	long	   *xj;
	double	   *b;
	long		i;
	long		j;
	double		num_paths = 0.0;

	if (m < n)
	{
		long		t = m;

		m = n;
		n = t;
	}
	mg = m / g;
	ng = n / g;

	/* floor division as Python does it (mg - h may be negative) */
	lxj = (mg - h >= 0) ? (mg - h) / mg : -((h - mg + mg - 1) / mg);
	lxj += n;
	if (lxj <= 0)
	{
		*count = BinomialCoef((double) (m + n), (double) n);
		return 1;
	}

	xj = (long *) malloc(sizeof(long) * (size_t) lxj);
	b = (double *) malloc(sizeof(double) * (size_t) lxj);
	if (xj == NULL || b == NULL)
	{
		free(xj);
		free(b);
		return 0;
	}
	for (j = 0; j < lxj; j++)
		xj[j] = (h + mg * j + ng - 1) / ng;

	b[0] = 1.0;
	for (j = 1; j < lxj; j++)
	{
		double		bj = BinomialCoef((double) (xj[j] + j), (double) j);

		for (i = 0; i < j; i++)
			bj -= BinomialCoef((double) (xj[j] - xj[i] + j - i),
							   (double) (j - i)) * b[i];
		b[j] = bj;
	}
	for (j = 0; j < lxj; j++)
		num_paths += b[j] * BinomialCoef((double) ((m - xj[j]) + (n - j)),
										 (double) (n - j));
	free(xj);
	free(b);
	*count = num_paths;
	return 1;
}

/*
 * Exact p-value of the two-sample statistic, as SciPy's
 * _attempt_exact_2kssamp: *d is rounded to h/lcm(n1,n2).  Returns 1 on
 * success, 0 when the computation is not trustworthy (overflow, result
 * outside [0,1]) and the asymptotic branch must be used, -1 on lack of
 * memory.
 */
static int
KsExact(size_t n1, size_t n2, double *d, MlmaAlternative alt, double *p)
{
	long		g = (long) Gcd(n1, n2);
	long		lcm = (long) (n1 / g) * (long) n2;
	long		h = (long) rint(*d * (double) lcm);
	double		prob;

	*d = (double) h * 1.0 / (double) lcm;
	if (h == 0)
	{
		*p = 1.0;
		return 1;
	}

	if (alt == MLMA_ALT_TWO_SIDED)
	{
		if (n1 == n2)
			prob = KsProbOutsideSquare((long) n1, h);
		else
		{
			prob = KsOuterProbInside((long) n1, (long) n2, g, h);
			if (prob == -1.0)
				return -1;
		}
	}
	else if (n1 == n2)
	{
		/* binom(2n, n-h) / binom(2n, n) as a product */
		long		j;

		prob = 1.0;
		for (j = 0; j < h; j++)
			prob *= ((double) n1 - (double) j) / ((double) n1 + (double) j + 1.0);
	}
	else
	{
		double		bin = BinomialCoef((double) (n1 + n2), (double) n1);
		double		num_paths;

		if (!isfinite(bin))
			return 0;
		if (!KsCountPathsOutside((long) n1, (long) n2, g, h, &num_paths))
			return -1;
		if (!isfinite(num_paths) || num_paths > bin)
			return 0;
		prob = num_paths / bin;
	}

	if (!(prob >= 0.0 && prob <= 1.0))
		return 0;
	*p = prob;
	return 1;
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
	double		p = 1.0;
	int			exact_done = 0;

	if (res == NULL || !mlma_valid_sample(ref, nref) || !mlma_valid_sample(cur, ncur))
		return MLMA_ERR_INPUT;
	if (alt != MLMA_ALT_GREATER && alt != MLMA_ALT_LESS &&
		alt != MLMA_ALT_TWO_SIDED)
		return MLMA_ERR_PARAM;

	d1 = (double *) malloc((n1 + n2) * sizeof(double));
	if (d1 == NULL)
		return MLMA_ERR_NOMEM;
	d2 = d1 + n1;
	memcpy(d1, ref, n1 * sizeof(double));
	memcpy(d2, cur, n2 * sizeof(double));
	SortDoubles(d1, n1);
	SortDoubles(d2, n2);

	/*
	 * ECDF difference F_ref - F_cur just after each distinct value of the
	 * pooled sample (SciPy evaluates it at every pooled value with
	 * searchsorted(side='right'), which gives the same set of differences).
	 */
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

	if (n1 <= KS_MAX_EXACT_N && n2 <= KS_MAX_EXACT_N)
	{
		int			rc = KsExact(n1, n2, &d, alt, &p);

		if (rc < 0)
			return MLMA_ERR_NOMEM;
		exact_done = rc;
	}

	if (!exact_done)
	{
		double		m = (double) ((n1 > n2) ? n1 : n2);
		double		nn = (double) ((n1 > n2) ? n2 : n1);
		double		en = m * nn / (m + nn);

		if (alt == MLMA_ALT_TWO_SIDED)
		{
			p = mlma_kolmogorov_sf((long) rint(en), d);
			if (p == -1.0)
				return MLMA_ERR_NOMEM;
		}
		else
		{
			double		z = sqrt(en) * d;
			double		expt;

			/* Hodges (1958), eq. 5.3; m is the larger size */
			expt = -2 * (z * z) - 2 * z * (m + 2 * nn) / sqrt(m * nn * (m + nn)) / 3.0;
			p = exp(expt);
		}
	}

	res->statistic = d;
	res->p_value = mlma_clip_probability(p);
	res->df = NAN;
	res->lags = -1;
	return MLMA_OK;
}
