/*-------------------------------------------------------------------------
 *
 * stats_param.c
 *	  Parametric two-sample tests of the numeric core (Welch, HAC,
 *	  Diebold-Mariano) and the Benjamini-Hochberg adjustment.
 *
 * Every test is invariant under multiplying both batches by the same
 * positive constant, so the data are first scaled by a power of two (exact
 * in floating point) that brings the largest magnitude near 1.  Sums of
 * squares then neither overflow for values near 1e+300 nor underflow for
 * values near 1e-300.
 *
 * Degenerate batches follow one rule for all tests: when the variance
 * estimate of the statistic is exactly zero, equal means give statistic 0
 * and p-value 1, different means give statistic +/-Infinity and p-value
 * 0 or 1 depending on the alternative.  A batch is treated as constant only
 * when all its values are bitwise equal, in which case its mean is that
 * value and its variance exactly zero.
 *
 * Plain C over doubles: no PostgreSQL headers (see stats.h).
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

/* direct autocovariance sums up to this many lags, window sums beyond */
#define HAC_DIRECT_MAX_LAGS 64

typedef struct BatchMoments
{
	double		mean;			/* of the scaled values */
	double		m2;				/* sum of squared deviations, scaled */
	int			constant;		/* all values bitwise equal */
} BatchMoments;

/*
 * MaxAbs
 *		Largest magnitude in x.
 */
static double
MaxAbs(const double *x, size_t n, double m)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		double		a = fabs(x[i]);

		if (a > m)
			m = a;
	}
	return m;
}

/*
 * ScaleFor
 *		Power of two that brings a magnitude m into [0.5, 1).  Below the
 *		normal range the factor would exceed the largest double, so it stops
 *		at 2^1023: the largest magnitude of a subnormal batch then lands in
 *		[2^-51, 1), still far from underflow, and the scaling stays exact.
 */
static double
ScaleFor(double m)
{
	int			e;

	if (m == 0.0)
		return 1.0;
	(void) frexp(m, &e);
	if (e < -(DBL_MAX_EXP - 1))
		e = -(DBL_MAX_EXP - 1);
	return ldexp(1.0, -e);
}

/*
 * Moments
 *		Mean and sum of squared deviations of s * x, by the corrected
 *		two-pass algorithm.  Sums run over four interleaved accumulators,
 *		which shortens the floating-point dependency chains (and reduces
 *		rounding error) at no cost in accuracy.
 */
static void
Moments(const double *x, size_t n, double s, BatchMoments *bm)
{
	size_t		i;
	double		a0 = 0.0,
				a1 = 0.0,
				a2 = 0.0,
				a3 = 0.0;
	double		q0 = 0.0,
				q1 = 0.0,
				q2 = 0.0,
				q3 = 0.0;
	double		mean;
	double		dsum;
	double		ssq;

	bm->constant = 1;
	for (i = 1; i < n; i++)
	{
		if (x[i] != x[0])
		{
			bm->constant = 0;
			break;
		}
	}
	if (bm->constant)
	{
		bm->mean = x[0] * s;
		bm->m2 = 0.0;
		return;
	}

	for (i = 0; i + 4 <= n; i += 4)
	{
		a0 += x[i] * s;
		a1 += x[i + 1] * s;
		a2 += x[i + 2] * s;
		a3 += x[i + 3] * s;
	}
	for (; i < n; i++)
		a0 += x[i] * s;
	mean = ((a0 + a1) + (a2 + a3)) / (double) n;

	a0 = a1 = a2 = a3 = 0.0;
	for (i = 0; i + 4 <= n; i += 4)
	{
		double		d0 = x[i] * s - mean;
		double		d1 = x[i + 1] * s - mean;
		double		d2 = x[i + 2] * s - mean;
		double		d3 = x[i + 3] * s - mean;

		a0 += d0;
		a1 += d1;
		a2 += d2;
		a3 += d3;
		q0 += d0 * d0;
		q1 += d1 * d1;
		q2 += d2 * d2;
		q3 += d3 * d3;
	}
	for (; i < n; i++)
	{
		double		d0 = x[i] * s - mean;

		a0 += d0;
		q0 += d0 * d0;
	}
	dsum = (a0 + a1) + (a2 + a3);
	ssq = (q0 + q1) + (q2 + q3);
	bm->mean = mean + dsum / (double) n;
	bm->m2 = ssq - dsum * dsum / (double) n;
	if (bm->m2 < 0.0)
		bm->m2 = 0.0;
}

/*
 * Dot
 *		sum of a[i] * b[i], four accumulators.
 */
static double
Dot(const double *a, const double *b, size_t n)
{
	double		s0 = 0.0,
				s1 = 0.0,
				s2 = 0.0,
				s3 = 0.0;
	size_t		i;

	for (i = 0; i + 4 <= n; i += 4)
	{
		s0 += a[i] * b[i];
		s1 += a[i + 1] * b[i + 1];
		s2 += a[i + 2] * b[i + 2];
		s3 += a[i + 3] * b[i + 3];
	}
	for (; i < n; i++)
		s0 += a[i] * b[i];
	return (s0 + s1) + (s2 + s3);
}

/*
 * DegenerateResult
 *		Result when the standard error is zero: see the file header.
 */
static void
DegenerateResult(double diff, MlmaAlternative alt, MlmaTestResult *res)
{
	if (diff == 0.0)
	{
		res->statistic = 0.0;
		res->p_value = 1.0;
		return;
	}
	res->statistic = (diff > 0.0) ? INFINITY : -INFINITY;
	switch (alt)
	{
		case MLMA_ALT_GREATER:
			res->p_value = (diff > 0.0) ? 0.0 : 1.0;
			break;
		case MLMA_ALT_LESS:
			res->p_value = (diff < 0.0) ? 0.0 : 1.0;
			break;
		default:
			res->p_value = 0.0;
			break;
	}
}

/*
 * NormalPValue
 *		p-value of a standard normal statistic z for the alternative.
 */
static double
NormalPValue(double z, MlmaAlternative alt)
{
	double		p;

	switch (alt)
	{
		case MLMA_ALT_GREATER:
			return mlma_normal_sf(z);
		case MLMA_ALT_LESS:
			return mlma_normal_cdf(z);
		default:
			p = 2.0 * mlma_normal_sf(fabs(z));
			return (p > 1.0) ? 1.0 : p;
	}
}

/*
 * mlma_welch_test
 *		Welch's unequal-variance t-test of current against reference, as
 *		scipy.stats.ttest_ind(current, reference, equal_var=False).
 *
 * df is the Welch-Satterthwaite value; when both batches are constant it is
 * undefined and reported as 1 (SciPy's convention).
 */
int
mlma_welch_test(const double *ref, size_t nref,
				const double *cur, size_t ncur,
				MlmaAlternative alt, MlmaTestResult *res)
{
	BatchMoments r,
				c;
	double		s;
	double		vr,
				vc,
				big,
				qr,
				qc;

	if (!mlma_valid_sample(ref, nref) || !mlma_valid_sample(cur, ncur))
		return MLMA_ERR_INPUT;

	s = ScaleFor(MaxAbs(cur, ncur, MaxAbs(ref, nref, 0.0)));
	Moments(ref, nref, s, &r);
	Moments(cur, ncur, s, &c);

	res->lags = -1;
	vr = r.m2 / (double) (nref - 1) / (double) nref;
	vc = c.m2 / (double) (ncur - 1) / (double) ncur;

	if (vr + vc == 0.0)
	{
		res->df = 1.0;
		DegenerateResult(c.mean - r.mean, alt, res);
		return MLMA_OK;
	}

	/* Welch-Satterthwaite, in ratios to the larger term */
	big = (vr > vc) ? vr : vc;
	qr = vr / big;
	qc = vc / big;
	res->df = (qr + qc) * (qr + qc) /
		(qr * qr / (double) (nref - 1) + qc * qc / (double) (ncur - 1));
	res->statistic = (c.mean - r.mean) / sqrt(vr + vc);

	switch (alt)
	{
		case MLMA_ALT_GREATER:
			res->p_value = mlma_t_sf(res->statistic, res->df);
			break;
		case MLMA_ALT_LESS:
			res->p_value = mlma_t_cdf(res->statistic, res->df);
			break;
		default:
			res->p_value = 2.0 * mlma_t_sf(fabs(res->statistic), res->df);
			if (res->p_value > 1.0)
				res->p_value = 1.0;
			break;
	}
	return MLMA_OK;
}

/*
 * mlma_default_lags
 *		Newey-West rule of thumb floor(4 (n/100)^(2/9)).
 */
int
mlma_default_lags(size_t n)
{
	return (int) floor(4.0 * pow((double) n / 100.0, 2.0 / 9.0));
}

/*
 * LongRunVariance
 *		Newey-West long-run variance of e_t = s * x_t - mean with Bartlett
 *		weights 1 - k / (lags + 1); autocovariances are divided by n.
 *		Returns a negative value when scratch memory is not available.
 *
 * Up to HAC_DIRECT_MAX_LAGS lags the autocovariances are summed directly.
 * Beyond, the identity
 *		n * lrv = 1/(L+1) * sum_j (e_j + ... + e_{j+L})^2
 * over all windows of length L+1 overlapping the series (e = 0 outside)
 * gives the same value in O(n) from prefix sums, so even lags = n - 1 on
 * 100 000 values stays linear.
 */
static double
LongRunVariance(const double *x, size_t n, double s, double mean, int lags)
{
	double	   *e = malloc((n + 1) * sizeof(double));
	double		total;
	size_t		t;

	if (e == NULL)
		return -1.0;
	for (t = 0; t < n; t++)
		e[t] = x[t] * s - mean;

	if (lags <= HAC_DIRECT_MAX_LAGS)
	{
		int			k;

		total = Dot(e, e, n);
		for (k = 1; k <= lags; k++)
			total += 2.0 * (1.0 - (double) k / (double) (lags + 1)) *
				Dot(e + k, e, n - (size_t) k);
	}
	else
	{
		size_t		L = (size_t) lags;
		double		prev = 0.0;
		long		j;

		/* e becomes the prefix sums cum[0..n], cum[i] = e_0 + ... + e_{i-1} */
		for (t = 0; t < n; t++)
		{
			double		v = e[t];

			e[t] = prev;
			prev += v;
		}
		e[n] = prev;
		total = 0.0;
		/* window j covers e_j .. e_{j+L}, clipped to 0 .. n-1 */
		for (j = -(long) L; j < (long) n; j++)
		{
			size_t		lo = (j < 0) ? 0 : (size_t) j;
			size_t		hi = (size_t) (j + (long) L) + 1;
			double		w;

			if (hi > n)
				hi = n;
			w = e[hi] - e[lo];
			total += w * w;
		}
		total /= (double) (L + 1);
	}
	free(e);

	total /= (double) n;
	return (total < 0.0) ? 0.0 : total;
}

/*
 * ClampLags
 *		Lags used for a batch of n values: the default when lags < 0, at most
 *		n - 1 otherwise.
 */
static int
ClampLags(int lags, size_t n)
{
	if (lags < 0)
		lags = mlma_default_lags(n);
	if ((size_t) lags > n - 1)
		lags = (int) (n - 1);
	return lags;
}

/*
 * mlma_hac_test
 *		Welch-type test with Newey-West (Bartlett) long-run variances:
 *		z = (mean(cur) - mean(ref)) / sqrt(lrv(cur)/ncur + lrv(ref)/nref),
 *		p-value from the standard normal.  res->lags is the larger of the
 *		two per-batch lags actually used.
 */
int
mlma_hac_test(const double *ref, size_t nref,
			  const double *cur, size_t ncur,
			  MlmaAlternative alt, int lags, MlmaTestResult *res)
{
	BatchMoments r,
				c;
	double		s;
	int			lr,
				lc;
	double		vr,
				vc;

	if (!mlma_valid_sample(ref, nref) || !mlma_valid_sample(cur, ncur))
		return MLMA_ERR_INPUT;

	s = ScaleFor(MaxAbs(cur, ncur, MaxAbs(ref, nref, 0.0)));
	Moments(ref, nref, s, &r);
	Moments(cur, ncur, s, &c);
	lr = ClampLags(lags, nref);
	lc = ClampLags(lags, ncur);

	vr = r.constant ? 0.0 : LongRunVariance(ref, nref, s, r.mean, lr);
	vc = c.constant ? 0.0 : LongRunVariance(cur, ncur, s, c.mean, lc);
	if (vr < 0.0 || vc < 0.0)
		return MLMA_ERR_NOMEM;
	vr /= (double) nref;
	vc /= (double) ncur;

	res->df = NAN;
	res->lags = (lr > lc) ? lr : lc;
	if (vr + vc == 0.0)
	{
		DegenerateResult(c.mean - r.mean, alt, res);
		return MLMA_OK;
	}
	res->statistic = (c.mean - r.mean) / sqrt(vr + vc);
	res->p_value = NormalPValue(res->statistic, alt);
	return MLMA_OK;
}

/*
 * mlma_dm_test
 *		Diebold-Mariano test on d = cur - ref (paired by position):
 *		z = mean(d) / sqrt(lrv(d) / n), p-value from the standard normal.
 */
int
mlma_dm_test(const double *ref, size_t nref,
			 const double *cur, size_t ncur,
			 MlmaAlternative alt, int lags, MlmaTestResult *res)
{
	double		s;
	double	   *d;
	size_t		n = ncur;
	size_t		i;
	BatchMoments dm;
	int			l;
	double		v;

	if (!mlma_valid_sample(ref, nref) || !mlma_valid_sample(cur, ncur))
		return MLMA_ERR_INPUT;
	if (nref != ncur)
		return MLMA_ERR_LENGTH;

	s = ScaleFor(MaxAbs(cur, ncur, MaxAbs(ref, nref, 0.0)));
	d = malloc(n * sizeof(double));
	if (d == NULL)
		return MLMA_ERR_NOMEM;
	for (i = 0; i < n; i++)
		d[i] = cur[i] * s - ref[i] * s;

	Moments(d, n, 1.0, &dm);
	l = ClampLags(lags, n);
	v = dm.constant ? 0.0 : LongRunVariance(d, n, 1.0, dm.mean, l);
	free(d);
	if (v < 0.0)
		return MLMA_ERR_NOMEM;
	v /= (double) n;

	res->df = NAN;
	res->lags = l;
	if (v == 0.0)
	{
		DegenerateResult(dm.mean, alt, res);
		return MLMA_OK;
	}
	res->statistic = dm.mean / sqrt(v);
	res->p_value = NormalPValue(res->statistic, alt);
	return MLMA_OK;
}

typedef struct RankedP
{
	double		p;
	size_t		index;
} RankedP;

/*
 * CompareRankedP
 *		qsort comparator: ascending p-value, ties by input position.
 */
static int
CompareRankedP(const void *a, const void *b)
{
	const RankedP *ra = (const RankedP *) a;
	const RankedP *rb = (const RankedP *) b;

	if (ra->p < rb->p)
		return -1;
	if (ra->p > rb->p)
		return 1;
	return (ra->index < rb->index) ? -1 : (ra->index > rb->index);
}

/*
 * mlma_bh_adjust
 *		Benjamini-Hochberg adjusted p-values in input order:
 *		q_(i) = min over j >= i of p_(j) / (j / n), capped at 1, as
 *		statsmodels' multipletests(method='fdr_bh').
 *
 * A p-value that is not a number in [0, 1] never makes the adjustment fail
 * (one bad test must not stop the decisions of a whole round): NaN counts
 * as 1 (no evidence), values below 0 as 0 and above 1 as 1.  The only
 * failure left is lack of scratch memory.
 */
int
mlma_bh_adjust(const double *p, size_t n, double *out)
{
	RankedP    *ranked;
	size_t		i;
	double		running = INFINITY;

	if (n == 0)
		return MLMA_OK;

	ranked = malloc(n * sizeof(RankedP));
	if (ranked == NULL)
		return MLMA_ERR_NOMEM;
	for (i = 0; i < n; i++)
	{
		double		v = p[i];

		if (isnan(v) || v > 1.0)
			v = 1.0;
		else if (v < 0.0)
			v = 0.0;
		ranked[i].p = v;
		ranked[i].index = i;
	}
	qsort(ranked, n, sizeof(RankedP), CompareRankedP);

	/* out may alias p: p is no longer read from here on */
	for (i = n; i-- > 0;)
	{
		double		q = ranked[i].p / ((double) (i + 1) / (double) n);

		if (q < running)
			running = q;
		out[ranked[i].index] = (running > 1.0) ? 1.0 : running;
	}
	free(ranked);
	return MLMA_OK;
}
