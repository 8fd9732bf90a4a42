/*-------------------------------------------------------------------------
 *
 * loss.c
 *	  Loss functions turning (actual, predicted) into a loss.
 *
 * With a = actual and p = predicted:
 *	squared		(a - p)^2
 *	absolute	|a - p|
 *	ape			|a - p| / |a|; undefined for a = 0
 *	sape		2 |a - p| / (|a| + |p|); 0 when a = p = 0
 *	pinball		tau (a - p) when a >= p, (1 - tau) (p - a) otherwise;
 *				param tau in (0, 1) required
 *	huber		(a - p)^2 / 2 when |a - p| <= delta,
 *				delta (|a - p| - delta / 2) otherwise; param delta > 0 required
 *	poisson		unit deviance 2 (a log(a / p) - (a - p)), 2 p when a = 0;
 *				a >= 0, p > 0
 *	logloss		-(a log p + (1 - a) log(1 - p)), p clipped to
 *				[1e-15, 1 - 1e-15]; a in {0, 1}, p in [0, 1]
 *	zero_one	0 when a = p, 1 otherwise
 *
 * Only pinball and huber take a parameter; giving one to another kind is an
 * error rather than silently ignored.  Inputs must be finite, and so must
 * the loss (a squared error that overflows is reported, not stored).
 *
 * Plain C over doubles: no PostgreSQL headers (see stats.h).
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <string.h>

#include "stats.h"

#define LOGLOSS_EPS 1e-15

static const char *const loss_names[] = {
	"squared", "absolute", "ape", "sape", "pinball", "huber", "poisson",
	"logloss", "zero_one"
};

#define N_LOSS_KINDS ((int) (sizeof(loss_names) / sizeof(loss_names[0])))

/*
 * mlma_loss_kind
 *		Loss kind by SQL name; MLMA_LOSS_INVALID when unknown.
 */
MlmaLossKind
mlma_loss_kind(const char *name)
{
	int			i;

	if (name == NULL)
		return MLMA_LOSS_INVALID;
	for (i = 0; i < N_LOSS_KINDS; i++)
		if (strcmp(name, loss_names[i]) == 0)
			return (MlmaLossKind) i;
	return MLMA_LOSS_INVALID;
}

/*
 * mlma_loss_name
 *		SQL name of a loss kind, NULL when invalid.
 */
const char *
mlma_loss_name(MlmaLossKind kind)
{
	if ((int) kind < 0 || (int) kind >= N_LOSS_KINDS)
		return NULL;
	return loss_names[kind];
}

/*
 * mlma_loss_check_param
 *		MLMA_OK when param (NaN = absent) suits the kind: required and in
 *		range for pinball (0 < tau < 1) and huber (delta > 0, finite),
 *		absent for every other kind.
 */
int
mlma_loss_check_param(MlmaLossKind kind, double param)
{
	switch (kind)
	{
		case MLMA_LOSS_PINBALL:
			return (param > 0.0 && param < 1.0) ? MLMA_OK : MLMA_ERR_PARAM;
		case MLMA_LOSS_HUBER:
			return (param > 0.0 && isfinite(param)) ? MLMA_OK : MLMA_ERR_PARAM;
		case MLMA_LOSS_SQUARED:
		case MLMA_LOSS_ABSOLUTE:
		case MLMA_LOSS_APE:
		case MLMA_LOSS_SAPE:
		case MLMA_LOSS_POISSON:
		case MLMA_LOSS_LOGLOSS:
		case MLMA_LOSS_ZERO_ONE:
			return isnan(param) ? MLMA_OK : MLMA_ERR_PARAM;
		default:
			return MLMA_ERR_PARAM;
	}
}

/*
 * mlma_loss
 *		Loss of one (actual, predicted) pair into *out.
 *
 * MLMA_ERR_PARAM: bad kind or parameter; MLMA_ERR_INPUT: non-finite actual
 * or predicted; MLMA_ERR_DOMAIN: the loss is undefined for these values
 * (see the file header) or not finite.
 */
int
mlma_loss(MlmaLossKind kind, double actual, double predicted,
		  double param, double *out)
{
	double		a = actual;
	double		p = predicted;
	double		r;
	double		v;

	if (mlma_loss_check_param(kind, param) != MLMA_OK)
		return MLMA_ERR_PARAM;
	if (!isfinite(a) || !isfinite(p))
		return MLMA_ERR_INPUT;

	r = a - p;
	switch (kind)
	{
		case MLMA_LOSS_SQUARED:
			v = r * r;
			break;
		case MLMA_LOSS_ABSOLUTE:
			v = fabs(r);
			break;
		case MLMA_LOSS_APE:
			if (a == 0.0)
				return MLMA_ERR_DOMAIN;
			v = fabs(r) / fabs(a);
			break;
		case MLMA_LOSS_SAPE:
			if (a == 0.0 && p == 0.0)
				v = 0.0;
			else
				v = 2.0 * fabs(r) / (fabs(a) + fabs(p));
			break;
		case MLMA_LOSS_PINBALL:
			v = (a >= p) ? param * r : (1.0 - param) * (-r);
			break;
		case MLMA_LOSS_HUBER:
			if (fabs(r) <= param)
				v = 0.5 * r * r;
			else
				v = param * (fabs(r) - 0.5 * param);
			break;
		case MLMA_LOSS_POISSON:
			if (a < 0.0 || p <= 0.0)
				return MLMA_ERR_DOMAIN;
			if (a == 0.0)
				v = 2.0 * p;
			else
				v = 2.0 * (a * log(a / p) - r);
			break;
		case MLMA_LOSS_LOGLOSS:
			if ((a != 0.0 && a != 1.0) || p < 0.0 || p > 1.0)
				return MLMA_ERR_DOMAIN;
			if (p < LOGLOSS_EPS)
				p = LOGLOSS_EPS;
			if (p > 1.0 - LOGLOSS_EPS)
				p = 1.0 - LOGLOSS_EPS;
			v = (a == 1.0) ? -log(p) : -log1p(-p);
			break;
		case MLMA_LOSS_ZERO_ONE:
			v = (a != p) ? 1.0 : 0.0;
			break;
		default:
			return MLMA_ERR_PARAM;
	}

	if (!isfinite(v))
		return MLMA_ERR_DOMAIN;
	/* rounding in a log(a/p) - (a - p) can leave a tiny negative deviance */
	if (v < 0.0)
		v = 0.0;
	*out = v;
	return MLMA_OK;
}
