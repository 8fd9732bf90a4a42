/*-------------------------------------------------------------------------
 *
 * fuzz_core.c
 *	  libFuzzer target over the numeric core (src/core): the five two-sample
 *	  tests with every alternative, the losses, the Benjamini-Hochberg
 *	  adjustment and the decision rule, on arrays decoded from the fuzz
 *	  input.
 *
 * Input layout: byte 0 holds flags (paired sizes, constant or nearly
 * constant batches), byte 1 the lags (0 = default), bytes 2 and 3 the sizes
 * of the reference and the current batch; then one byte per value chooses
 * its kind (see NextValue:
 * small integers for ties, zero, subnormals, values near the largest
 * double, raw bit patterns), followed by the bytes of the value when it
 * needs any.  Every method runs with every alternative on these batches.
 * Whatever follows drives one loss, one adjustment and one decision.
 *
 * Properties, checked on every input; a violation aborts:
 *	- valid input is accepted (return code MLMA_OK; MLMA_ERR_LENGTH only for
 *	  dm with batches of different sizes);
 *	- the p-value is a number in [0, 1];
 *	- the statistic is never NaN; it is infinite only for welch, hac and dm
 *	  when the standard error is exactly zero and the means differ, and then
 *	  the p-value is 0 or 1 (docs/statistics.md, "Degenerate input");
 *	- both batches constant and equal: statistic 0 (U = n1 n2 / 2 for
 *	  Mann-Whitney) and p-value 1;
 *	- a loss that is computed is a finite number >= 0;
 *	- adjusted p-values are in [0, 1] and not below the raw ones, NaN
 *	  counting as 1;
 *	- the decision is consistent with its definition.
 *
 *-------------------------------------------------------------------------
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "stats.h"

#define MAX_BATCH 200

typedef struct Reader
{
	const uint8_t *data;
	size_t		size;
	size_t		pos;
} Reader;

static unsigned
NextByte(Reader *r)
{
	if (r->pos >= r->size)
		return 0;
	return r->data[r->pos++];
}

static double
NextRaw(Reader *r)
{
	uint64_t	bits = 0;
	double		v;
	int			i;

	for (i = 0; i < 8; i++)
		bits = (bits << 8) | NextByte(r);
	memcpy(&v, &bits, sizeof(v));
	return v;
}

/* one finite value: the kind byte picks a family that stresses the core */
static double
NextValue(Reader *r)
{
	unsigned	kind = NextByte(r);
	unsigned	b = kind >> 4;
	double		v;

	switch (kind & 15)
	{
		case 0:
			return 0.0;
		case 1:
		case 2:
			return (double) b;	/* small integers: ties */
		case 3:
			return ldexp((double) (b + 1), -1074);	/* smallest subnormals */
		case 4:
			return ldexp((double) (NextByte(r) + 1), -1060 + (int) b);	/* subnormal */
		case 5:
			return DBL_MAX * (1.0 - (double) b / 64.0);	/* largest doubles */
		case 6:
			return ldexp(1.0 + (double) NextByte(r) / 256.0, 1000 + (int) b);
		case 7:
			return -(double) b;
		case 8:
			return DBL_MIN * (double) (b + 1);
		case 9:
			return 1.0 + (double) b * DBL_EPSILON;	/* nearly tied */
		case 10:
			return 1e-300 * (double) (b + 1);
		case 11:
			return -DBL_MAX;
		default:
			v = NextRaw(r);
			return isfinite(v) ? v : (double) b;
	}
}

static void
Fail(const char *what, MlmaMethod m, MlmaAlternative alt, double stat, double p)
{
	fprintf(stderr, "property violated: %s (method %s, alternative %d, statistic %.17g, p %.17g)\n",
			what, mlma_method_name(m), (int) alt, stat, p);
	abort();
}

static int
Constant(const double *x, size_t n)
{
	size_t		i;

	for (i = 1; i < n; i++)
		if (x[i] != x[0])
			return 0;
	return 1;
}

static void
CheckTest(MlmaMethod m, MlmaAlternative alt, int lags,
		  const double *ref, size_t nref, const double *cur, size_t ncur)
{
	MlmaTestResult res;
	int			rc = mlma_run_test(m, ref, nref, cur, ncur, alt, lags, &res);

	if (m == MLMA_METHOD_DM && nref != ncur)
	{
		if (rc != MLMA_ERR_LENGTH)
			Fail("dm with different sizes not refused", m, alt, NAN, NAN);
		return;
	}
	if (rc != MLMA_OK)
		Fail("valid input refused", m, alt, NAN, NAN);
	if (!(res.p_value >= 0.0 && res.p_value <= 1.0))
		Fail("p-value outside [0, 1]", m, alt, res.statistic, res.p_value);
	if (isnan(res.statistic))
		Fail("statistic is NaN", m, alt, res.statistic, res.p_value);
	if (isinf(res.statistic))
	{
		if (m == MLMA_METHOD_MANN_WHITNEY || m == MLMA_METHOD_KS)
			Fail("infinite rank statistic", m, alt, res.statistic, res.p_value);
		if (res.p_value != 0.0 && res.p_value != 1.0)
			Fail("infinite statistic with a p-value other than 0 or 1",
				 m, alt, res.statistic, res.p_value);
	}
	if (m == MLMA_METHOD_KS && !(res.statistic >= 0.0 && res.statistic <= 1.0))
		Fail("KS statistic outside [0, 1]", m, alt, res.statistic, res.p_value);
	if (m == MLMA_METHOD_WELCH && !(res.df >= 1.0 && isfinite(res.df)))
		Fail("Welch df not finite or below 1", m, alt, res.df, res.p_value);
	if (Constant(ref, nref) && Constant(cur, ncur) && ref[0] == cur[0])
	{
		double		expected = (m == MLMA_METHOD_MANN_WHITNEY) ?
			(double) nref * (double) ncur / 2.0 : 0.0;

		if (res.statistic != expected || res.p_value != 1.0)
			Fail("equal constant batches not statistic 0, p 1",
				 m, alt, res.statistic, res.p_value);
	}
}

static void
CheckLoss(Reader *r)
{
	unsigned	k = NextByte(r) % 10;
	MlmaLossKind kind = (k == 9) ? MLMA_LOSS_INVALID : (MlmaLossKind) k;
	double		actual = NextValue(r);
	double		predicted = NextValue(r);
	double		param;
	double		out = -1.0;
	unsigned	pk = NextByte(r);
	int			rc;

	if (pk & 1)
		param = NAN;
	else if (pk & 2)
		param = (double) (pk >> 2) / 64.0;
	else
		param = NextValue(r);
	if (pk & 128)
		actual = (double) ((pk >> 2) & 1);	/* logloss / poisson friendly */

	rc = mlma_loss(kind, actual, predicted, param, &out);
	if (rc == MLMA_OK && !(out >= 0.0 && isfinite(out)))
	{
		fprintf(stderr, "property violated: loss %d of (%.17g, %.17g; %.17g) = %.17g\n",
				(int) kind, actual, predicted, param, out);
		abort();
	}
	if (rc != MLMA_OK && rc != MLMA_ERR_PARAM && rc != MLMA_ERR_DOMAIN)
	{
		fprintf(stderr, "property violated: loss returned code %d\n", rc);
		abort();
	}
}

static void
CheckAdjust(Reader *r)
{
	double		p[64];
	double		q[64];
	size_t		n = NextByte(r) % 64;
	size_t		i;

	for (i = 0; i < n; i++)
	{
		unsigned	k = NextByte(r);

		if (k == 255)
			p[i] = NAN;
		else if (k & 1)
			p[i] = (double) (k >> 1) / 127.0;
		else
			p[i] = fabs(NextValue(r));
		if (p[i] > 1.0)
			p[i] = 1.0 / p[i];
	}
	if (mlma_bh_adjust(p, n, q) != MLMA_OK)
	{
		fprintf(stderr, "property violated: BH adjustment failed\n");
		abort();
	}
	for (i = 0; i < n; i++)
	{
		double		raw = isnan(p[i]) ? 1.0 : p[i];

		if (!(q[i] >= raw && q[i] <= 1.0))
		{
			fprintf(stderr, "property violated: adjusted %.17g for raw %.17g\n",
					q[i], p[i]);
			abort();
		}
	}
}

static void
CheckDecide(Reader *r)
{
	double		p = (NextByte(r) == 255) ? NAN : (double) NextByte(r) / 255.0;
	double		threshold = (double) NextByte(r) / 255.0;
	double		effect = NextValue(r);
	double		min_effect = (double) NextByte(r) / 16.0;
	int			streak = (int) NextByte(r);
	int			consecutive = (int) (NextByte(r) % 8);
	MlmaDecision d = mlma_decide(p, threshold, effect, min_effect,
								 streak, consecutive);
	int			sig = (p <= threshold && effect >= min_effect);

	if (d.significant != sig || d.streak != (sig ? streak + 1 : 0) ||
		d.drift != (sig && d.streak >= consecutive))
	{
		fprintf(stderr, "property violated: decision for p %.17g effect %.17g\n",
				p, effect);
		abort();
	}
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Reader		r = {data, size, 0};
	double		ref[MAX_BATCH];
	double		cur[MAX_BATCH];
	unsigned	mbyte = NextByte(&r);
	int			lags = (int) NextByte(&r) - 1;	/* -1: default */
	size_t		nref = 2 + NextByte(&r) % (MAX_BATCH - 1);
	size_t		ncur = 2 + NextByte(&r) % (MAX_BATCH - 1);
	size_t		i;
	int			m;
	int			alt;

	if (mbyte & 128)
		ncur = nref;			/* paired batches for dm */
	if (mbyte & 64)
	{
		/* a repeated pattern: constant batches and heavy ties */
		double		a = NextValue(&r);
		double		b = (mbyte & 32) ? a : NextValue(&r);

		for (i = 0; i < nref; i++)
			ref[i] = a;
		for (i = 0; i < ncur; i++)
			cur[i] = b;
		if (mbyte & 16)
			cur[ncur - 1] = NextValue(&r);
	}
	else
	{
		for (i = 0; i < nref; i++)
			ref[i] = NextValue(&r);
		for (i = 0; i < ncur; i++)
			cur[i] = NextValue(&r);
	}

	/* every method and alternative on the same batches */
	for (m = MLMA_METHOD_WELCH; m <= MLMA_METHOD_DM; m++)
		for (alt = MLMA_ALT_GREATER; alt <= MLMA_ALT_TWO_SIDED; alt++)
			CheckTest((MlmaMethod) m, (MlmaAlternative) alt, lags,
					  ref, nref, cur, ncur);

	CheckLoss(&r);
	CheckAdjust(&r);
	CheckDecide(&r);
	return 0;
}
