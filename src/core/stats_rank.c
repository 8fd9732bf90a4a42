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
	res->p_value = Clip01(p * f);
	res->df = NAN;
	res->lags = -1;
	return MLMA_OK;
}

/* ----------------------------------------------------------------------
 * Two-sample Kolmogorov-Smirnov
 * ----------------------------------------------------------------------
 */

#define KS_MAX_EXACT_N	10000	/* larger batches use the asymptotic branch */
#define KS_SCALE_EXP	128		/* rescaling step of the Kolmogorov routines */

static const double pi_d = 3.14159265358979323846;

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

/* ---- the Kolmogorov distribution of one sample of size n (two-sided) ---- */

/*
 * Smirnov's one-sided distribution: P(D+_n >= x), Birnbaum-Tingey sum of
 * positive terms, in long double and through log-gamma.
 */
static double
SmirnovSf(long n, double x)
{
	long		nn;
	long		v;
	long double lg_n1;
	long double sum = 0.0L;

	if (x <= 0.0)
		return 1.0;
	if (x >= 1.0)
		return 0.0;
	nn = (long) floor((double) n * (1.0 - x));
	lg_n1 = lgammal((long double) n + 1.0L);
	for (v = 0; v <= nn; v++)
	{
		long double evn = (long double) x + (long double) v / (long double) n;
		long double omevn = 1.0L - evn;
		long double t;

		if (omevn <= 0.0L)
		{
			/* 0^(n-v) is 0 unless v == n */
			if (v == n)
				sum += expl((long double) (v - 1) * logl(evn));
			continue;
		}
		t = lg_n1 - lgammal((long double) v + 1.0L) -
			lgammal((long double) (n - v) + 1.0L) +
			(long double) (v - 1) * logl(evn) +
			(long double) (n - v) * logl(omevn);
		sum += expl(t);
	}
	return (double) (sum * (long double) x);
}

/*
 * MatMulInto
 *		out = a * b for m x m row-major matrices, through the scratch matrix
 *		tmp, so that out may be a or b.
 */
static void
MatMulInto(double *out, const double *a, const double *b, double *tmp, long m)
{
	long		i;
	long		j;
	long		r;

	for (i = 0; i < m; i++)
		for (j = 0; j < m; j++)
		{
			double		s = 0.0;

			for (r = 0; r < m; r++)
				s += a[i * m + r] * b[r * m + j];
			tmp[i * m + j] = s;
		}
	memcpy(out, tmp, sizeof(double) * (size_t) (m * m));
}

/*
 * Durbin's matrix formula as Marsaglia, Tsang and Wang compute it:
 * P(D_n < d) = n!/n^n (H^n)_{kk}, with binary powering and explicit
 * exponent bookkeeping.  Returns the CDF; -1 when out of memory.
 */
static double
KolmogorovCdfDurbin(long n, double d)
{
	double		nd = (double) n * d;
	int			k;
	int			m;
	double		h;
	double	   *hm;
	double	   *pw;
	double	   *tmp;
	double	   *v;
	double	   *w;
	double		fac;
	double		tt;
	double		p;
	long double lp;
	long		nn;
	int			expnt = 0;
	int			hexpnt = 0;
	int			i;
	int			j;
	int			r;
	long		ii;

	if (d >= 1.0)
		return 1.0;
	if (nd <= 0.5)
		return 0.0;
	k = (int) ceil(nd);
	h = (double) k - nd;
	m = 2 * k - 1;

	hm = (double *) malloc(sizeof(double) * (size_t) (3 * m * m + 2 * m));
	if (hm == NULL)
		return -1.0;
	pw = hm + m * m;
	tmp = pw + m * m;
	v = tmp + m * m;
	w = v + m;

	fac = 1.0;
	for (j = 1; j <= m; j++)
	{
		v[j - 1] = 1.0 - pow(h, (double) j);
		w[j - 1] = fac;
		fac /= j;
		v[j - 1] *= fac;
	}
	tt = pow(fmax(2.0 * h - 1.0, 0.0), (double) m) - 2.0 * pow(h, (double) m);
	v[m - 1] = (1.0 + tt) * fac;

	for (i = 0; i < m * m; i++)
		hm[i] = 0.0;
	for (i = 1; i < m; i++)
		for (r = i - 1; r < m; r++)
			hm[r * m + i] = w[r - i + 1];
	for (r = 0; r < m; r++)
		hm[r * m] = v[r];
	for (j = 0; j < m; j++)
		hm[(m - 1) * m + j] = v[m - 1 - j];

	for (i = 0; i < m * m; i++)
		pw[i] = 0.0;
	for (i = 0; i < m; i++)
		pw[i * m + i] = 1.0;

	nn = n;
	while (nn > 0)
	{
		if (nn % 2)
		{
			MatMulInto(pw, pw, hm, tmp, m);	/* pw = pw * hm */
			expnt += hexpnt;
		}
		MatMulInto(hm, hm, hm, tmp, m);	/* hm = hm * hm */
		hexpnt *= 2;
		if (fabs(hm[(k - 1) * m + (k - 1)]) > ldexp(1.0, KS_SCALE_EXP))
		{
			for (i = 0; i < m * m; i++)
				hm[i] = ldexp(hm[i], -KS_SCALE_EXP);
			hexpnt += KS_SCALE_EXP;
		}
		nn /= 2;
	}

	p = pw[(k - 1) * m + (k - 1)];
	free(hm);

	lp = p;
	for (ii = 1; ii <= n; ii++)
	{
		lp = (long double) ii * lp / (long double) n;
		if (fabsl(lp) < ldexpl(1.0L, -KS_SCALE_EXP))
		{
			lp = ldexpl(lp, KS_SCALE_EXP);
			expnt -= KS_SCALE_EXP;
		}
	}
	if (expnt != 0)
		lp = ldexpl(lp, expnt);
	return (double) lp;
}

/* row interval of Pomeranz's recursion */
static void
PomeranzJ1J2(long i, long n, long ll, long ceilf, long roundf,
			 long *j1, long *j2)
{
	long		a;
	long		b;

	if (i == 0)
	{
		a = -ll - ceilf - 1;
		b = ll + ceilf - 1;
	}
	else
	{
		long		ip1div2 = (i + 1) / 2;
		long		ip1mod2 = (i + 1) % 2;

		if (ip1mod2 == 0)
		{
			if (ip1div2 == n + 1)
			{
				a = n - ll - ceilf - 1;
				b = n + ll + ceilf - 1;
			}
			else
			{
				a = ip1div2 - 1 - ll - roundf - 1;
				b = ip1div2 + ll - 1 + ceilf - 1;
			}
		}
		else
		{
			a = ip1div2 - 1 - ll - 1;
			b = ip1div2 + ll + roundf - 1;
		}
	}
	*j1 = (a + 2 > 0) ? a + 2 : 0;
	*j2 = (b < n) ? b : n;
}

/*
 * Pomeranz's recursion for P(D_n <= x) (small n).  Returns -1 when out of
 * memory.
 */
static double
KolmogorovCdfPomeranz(long n, double x)
{
	double		t = (double) n * x;
	long		ll = (long) floor(t);
	double		f = t - (double) ll;
	double		g = fmin(f, 1.0 - f);
	long		ceilf = (f > 0) ? 1 : 0;
	long		roundf = (f > 0.5) ? 1 : 0;
	long		npwrs = 2 * (ll + 1);
	double	   *buf;
	double	   *gpower;
	double	   *twogpower;
	double	   *onem2gpower;
	double	   *v0;
	double	   *v1;
	long		v0s = 0;
	long		v1s = 0;
	long		j1;
	long		j2;
	long		i;
	long		mm;
	int			expnt = 0;
	double		ans;
	double		scale_hi = ldexp(1.0, KS_SCALE_EXP);
	double		scale_lo = ldexp(1.0, -KS_SCALE_EXP);

	buf = (double *) calloc((size_t) (5 * npwrs), sizeof(double));
	if (buf == NULL)
		return -1.0;
	gpower = buf;
	twogpower = buf + npwrs;
	onem2gpower = buf + 2 * npwrs;
	v0 = buf + 3 * npwrs;
	v1 = buf + 4 * npwrs;

	gpower[0] = twogpower[0] = onem2gpower[0] = 1.0;
	for (mm = 1; mm < npwrs; mm++)
	{
		gpower[mm] = gpower[mm - 1] * (g / n) / mm;
		twogpower[mm] = twogpower[mm - 1] * (2 * g / n) / mm;
		onem2gpower[mm] = onem2gpower[mm - 1] * ((1 - 2 * g) / n) / mm;
	}
	v1[0] = 1.0;

	PomeranzJ1J2(0, n, ll, ceilf, roundf, &j1, &j2);
	for (i = 1; i < 2 * n + 2; i++)
	{
		long		k1 = j1;
		double	   *swap = v0;
		long		ln2;
		const double *pwrs;

		v0 = v1;
		v1 = swap;
		v0s = v1s;
		for (mm = 0; mm < npwrs; mm++)
			v1[mm] = 0.0;
		PomeranzJ1J2(i, n, ll, ceilf, roundf, &j1, &j2);
		if (i == 1 || i == 2 * n + 1)
			pwrs = gpower;
		else
			pwrs = (i % 2) ? twogpower : onem2gpower;
		ln2 = j2 - k1 + 1;
		if (ln2 > 0)
		{
			long		conv_start = j1 - k1;
			long		conv_len = j2 - j1 + 1;
			long		base = k1 - v0s;
			double		vmax = 0.0;
			long		c;

			/* conv[q] = sum_a v0[base + a] * pwrs[q - a], a, q - a < ln2 */
			for (c = 0; c < conv_len; c++)
			{
				long		q = conv_start + c;
				double		s = 0.0;
				long		aa;

				for (aa = 0; aa <= q && aa < ln2; aa++)
				{
					if (q - aa >= ln2 || base + aa >= npwrs || q - aa >= npwrs)
						continue;
					s += v0[base + aa] * pwrs[q - aa];
				}
				v1[c] = s;
			}
			for (mm = 0; mm < npwrs; mm++)
				if (v1[mm] > vmax)
					vmax = v1[mm];
			if (vmax > 0 && vmax < scale_lo)
			{
				for (mm = 0; mm < npwrs; mm++)
					v1[mm] *= scale_hi;
				expnt -= KS_SCALE_EXP;
			}
			v1s = v0s + j1 - k1;
		}
	}
	ans = v1[n - v1s];
	free(buf);
	for (mm = 1; mm <= n; mm++)
	{
		if (fabs(ans) > scale_hi)
		{
			ans *= scale_lo;
			expnt += KS_SCALE_EXP;
		}
		ans *= mm;
	}
	if (expnt != 0)
		ans = ldexp(ans, expnt);
	return ans;
}

/*
 * Pelz-Good asymptotic expansion of P(D_n <= x) (large n).
 */
static double
KolmogorovCdfPelzGood(long n, double x)
{
	double		z;
	double		z2;
	double		z3;
	double		z4;
	double		z6;
	double		qlog;
	double		q;
	double		k1a,
				k1b,
				k2a,
				k2b,
				k2c,
				k3a,
				k3b,
				k3c,
				k3d;
	double		kk[4] = {0.0, 0.0, 0.0, 0.0};
	double		sqrt2pi = sqrt(2.0 * pi_d);
	double		pi2 = pi_d * pi_d;
	double		pi4 = pi2 * pi2;
	double		pi6 = pi4 * pi2;
	double		sqrt3z;
	double		k2extra = 0.0;
	double		k3extra = 0.0;
	long		maxk;
	long		k;
	int			i;

	if (x <= 0.0)
		return 0.0;
	if (x >= 1.0)
		return 1.0;
	z = sqrt((double) n) * x;
	z2 = z * z;
	z3 = z2 * z;
	z4 = z2 * z2;
	z6 = z4 * z2;
	qlog = -pi2 / 8 / z2;
	if (qlog < -708)
		return 0.0;
	q = exp(qlog);

	k1a = -z2;
	k1b = pi2 / 4;
	k2a = 6 * z6 + 2 * z4;
	k2b = (2 * z4 - 5 * z2) * pi2 / 4;
	k2c = pi4 * (1 - 2 * z2) / 16;
	k3d = pi6 * (5 - 30 * z2) / 64;
	k3c = pi4 * (-60 * z2 + 212 * z4) / 16;
	k3b = pi2 * (135 * z4 - 96 * z6) / 4;
	k3a = -30 * z6 - 90 * pow(z, 8);

	maxk = (long) ceil(16 * z / pi_d);
	for (k = maxk; k > 0; k--)
	{
		double		mo = 2.0 * k - 1;
		double		m2 = mo * mo;
		double		m4 = m2 * m2;
		double		m6 = m4 * m2;
		double		qpower = pow(q, 8.0 * k);
		double		coeffs[4];

		coeffs[0] = 1.0;
		coeffs[1] = k1a + k1b * m2;
		coeffs[2] = k2a + k2b * m2 + k2c * m4;
		coeffs[3] = k3a + k3b * m2 + k3c * m4 + k3d * m6;
		for (i = 0; i < 4; i++)
			kk[i] = kk[i] * qpower + coeffs[i];
	}
	for (i = 0; i < 4; i++)
		kk[i] = kk[i] * q * sqrt2pi;
	kk[0] /= z;
	kk[1] /= 6 * z4;
	kk[2] /= 72 * pow(z, 7);
	kk[3] /= 6480 * pow(z, 10);

	q = exp(-pi2 / 2 / z2);
	sqrt3z = sqrt(3.0) * z;
	for (k = maxk; k > 0; k--)
	{
		double		ksq = (double) k * (double) k;
		double		qp = pow(q, ksq);
		double		kspi = pi_d * (double) k;

		k2extra += ksq * qp;
		k3extra += (sqrt3z + kspi) * (sqrt3z - kspi) * ksq * qp;
	}
	k2extra *= pi2 * sqrt2pi / (-36 * z3);
	kk[2] += k2extra;
	k3extra *= pi2 * sqrt2pi / (216 * z6);
	kk[3] += k3extra;
	for (i = 1; i < 4; i++)
		kk[i] /= pow((double) n, i / 2.0);
	return kk[0] + kk[1] + kk[2] + kk[3];
}

/* log(n!/n^n) by Stirling's series */
static double
LogFactorialOverPower(long n)
{
	static const double c[8] = {
		-2.955065359477124183e-2, 6.4102564102564102564e-3,
		-1.9175269175269175269e-3, 8.4175084175084175084e-4,
		-5.952380952380952381e-4, 7.9365079365079365079e-4,
		-2.7777777777777777778e-3, 8.3333333333333333333e-2
	};
	double		rn = 1.0 / n;
	double		y = rn / n;
	double		poly = 0.0;
	int			i;

	for (i = 0; i < 8; i++)
		poly = poly * y + c[i];
	return log((double) n) / 2 - n + log(2 * pi_d) / 2 + rn * poly;
}

/*
 * P(D_n > x) of the two-sided one-sample statistic (SciPy's kstwo.sf),
 * choosing between the exact formulas and approximations as Simard and
 * L'Ecuyer (2011) recommend.  Returns -1 when out of memory.
 */
static double
KolmogorovSf(long n, double x)
{
	double		t;
	double		nx2;
	double		cdf;

	if (x >= 1.0)
		return 0.0;
	if (x <= 0.5 / n)
		return 1.0;
	t = n * x;
	if (t <= 1.0)
	{
		double		prob;

		if (t <= 0.5)
			return 1.0;
		if (n <= 140)
		{
			long		i;

			prob = 1.0;
			for (i = 1; i <= n; i++)
				prob *= (double) i * (1.0 / n) * (2 * t - 1);
		}
		else
			prob = exp(LogFactorialOverPower(n) + n * log(2 * t - 1));
		return Clip01(1.0 - prob);
	}
	if (t >= n - 1)
		return Clip01(2 * pow(1.0 - x, (double) n));
	if (x >= 0.5)
		return Clip01(2 * SmirnovSf(n, x));

	nx2 = t * x;
	if (n <= 140)
	{
		if (nx2 <= 0.754693)
			cdf = KolmogorovCdfDurbin(n, x);
		else if (nx2 <= 4)
			cdf = KolmogorovCdfPomeranz(n, x);
		else
			return Clip01(2 * SmirnovSf(n, x));
		if (cdf == -1.0)
			return -1.0;
		return Clip01(1.0 - cdf);
	}
	if (nx2 >= 370.0)
		return 0.0;
	if (nx2 >= 2.2)
		return Clip01(2 * SmirnovSf(n, x));
	if (n <= 100000 && n * pow(x, 1.5) <= 1.4)
	{
		cdf = KolmogorovCdfDurbin(n, x);
		if (cdf == -1.0)
			return -1.0;
	}
	else
		cdf = KolmogorovCdfPelzGood(n, x);
	return Clip01(1.0 - cdf);
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
			p = KolmogorovSf((long) rint(en), d);
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
	res->p_value = Clip01(p);
	res->df = NAN;
	res->lags = -1;
	return MLMA_OK;
}
