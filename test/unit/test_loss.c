/*-------------------------------------------------------------------------
 *
 * test_loss.c
 *	  Unit tests of the loss functions: values, parameters, domains.
 *
 *-------------------------------------------------------------------------
 */
#include "unit.h"

static double
L(MlmaLossKind kind, double a, double p, double param)
{
	double		v = NAN;

	if (mlma_loss(kind, a, p, param, &v) != MLMA_OK)
		return NAN;
	return v;
}

void
test_loss(void)
{
	double		v;
	int			k;

	for (k = MLMA_LOSS_SQUARED; k <= MLMA_LOSS_ZERO_ONE; k++)
		CHECK(mlma_loss_kind(mlma_loss_name((MlmaLossKind) k)) == k);
	CHECK(mlma_loss_kind("mse") == MLMA_LOSS_INVALID);
	CHECK(mlma_loss_kind(NULL) == MLMA_LOSS_INVALID);
	CHECK(mlma_loss_name(MLMA_LOSS_INVALID) == NULL);

	/* values */
	CHECK(L(MLMA_LOSS_SQUARED, 3, 1, NAN) == 4.0);
	CHECK(L(MLMA_LOSS_ABSOLUTE, 1, 3.5, NAN) == 2.5);
	CHECK(L(MLMA_LOSS_APE, -4, -3, NAN) == 0.25);
	CHECK(L(MLMA_LOSS_SAPE, 1, 3, NAN) == 1.0);
	CHECK(L(MLMA_LOSS_SAPE, 0, 0, NAN) == 0.0);
	CHECK(L(MLMA_LOSS_SAPE, 0, 5, NAN) == 2.0);
	CHECK_CLOSE(L(MLMA_LOSS_PINBALL, 3, 1, 0.9), 1.8, 1e-15);
	CHECK_CLOSE(L(MLMA_LOSS_PINBALL, 1, 3, 0.9), 0.2, 1e-14);
	CHECK(L(MLMA_LOSS_HUBER, 1, 1.5, 1.0) == 0.125);
	CHECK(L(MLMA_LOSS_HUBER, 1, 4, 1.0) == 2.5);
	CHECK(L(MLMA_LOSS_HUBER, 1, 2, 1.0) == 0.5);	/* the boundary is quadratic */
	CHECK(L(MLMA_LOSS_POISSON, 0, 2, NAN) == 4.0);
	CHECK(L(MLMA_LOSS_POISSON, 3, 3, NAN) == 0.0);
	CHECK_CLOSE(L(MLMA_LOSS_POISSON, 2, 1, NAN), 2 * (2 * log(2.0) - 1), 1e-15);
	CHECK_CLOSE(L(MLMA_LOSS_LOGLOSS, 1, 0.25, NAN), log(4.0), 1e-15);
	CHECK_CLOSE(L(MLMA_LOSS_LOGLOSS, 0, 0.75, NAN), log(4.0), 1e-15);
	CHECK_CLOSE(L(MLMA_LOSS_LOGLOSS, 1, 0, NAN), -log(1e-15), 1e-15);
	CHECK_CLOSE(L(MLMA_LOSS_LOGLOSS, 0, 1, NAN), -log1p(-(1 - 1e-15)), 1e-15);
	CHECK_CLOSE(L(MLMA_LOSS_LOGLOSS, 0, 1e-10, NAN), 1e-10, 1e-9);
	CHECK(L(MLMA_LOSS_ZERO_ONE, 2, 2, NAN) == 0.0);
	CHECK(L(MLMA_LOSS_ZERO_ONE, 2, 3, NAN) == 1.0);

	/* parameters */
	CHECK(mlma_loss_check_param(MLMA_LOSS_PINBALL, 0.5) == MLMA_OK);
	CHECK(mlma_loss_check_param(MLMA_LOSS_PINBALL, NAN) == MLMA_ERR_PARAM);
	CHECK(mlma_loss_check_param(MLMA_LOSS_PINBALL, 0.0) == MLMA_ERR_PARAM);
	CHECK(mlma_loss_check_param(MLMA_LOSS_PINBALL, 1.0) == MLMA_ERR_PARAM);
	CHECK(mlma_loss_check_param(MLMA_LOSS_HUBER, 2.0) == MLMA_OK);
	CHECK(mlma_loss_check_param(MLMA_LOSS_HUBER, 0.0) == MLMA_ERR_PARAM);
	CHECK(mlma_loss_check_param(MLMA_LOSS_HUBER, INFINITY) == MLMA_ERR_PARAM);
	CHECK(mlma_loss_check_param(MLMA_LOSS_SQUARED, NAN) == MLMA_OK);
	CHECK(mlma_loss_check_param(MLMA_LOSS_SQUARED, 1.0) == MLMA_ERR_PARAM);
	CHECK(mlma_loss_check_param(MLMA_LOSS_INVALID, NAN) == MLMA_ERR_PARAM);
	CHECK(mlma_loss(MLMA_LOSS_ABSOLUTE, 1, 2, 0.5, &v) == MLMA_ERR_PARAM);

	/* domains */
	CHECK(mlma_loss(MLMA_LOSS_APE, 0, 2, NAN, &v) == MLMA_ERR_DOMAIN);
	CHECK(mlma_loss(MLMA_LOSS_POISSON, -1, 2, NAN, &v) == MLMA_ERR_DOMAIN);
	CHECK(mlma_loss(MLMA_LOSS_POISSON, 1, 0, NAN, &v) == MLMA_ERR_DOMAIN);
	CHECK(mlma_loss(MLMA_LOSS_LOGLOSS, 0.5, 0.5, NAN, &v) == MLMA_ERR_DOMAIN);
	CHECK(mlma_loss(MLMA_LOSS_LOGLOSS, 1, 1.01, NAN, &v) == MLMA_ERR_DOMAIN);
	CHECK(mlma_loss(MLMA_LOSS_SQUARED, 1e200, -1e200, NAN, &v) == MLMA_ERR_DOMAIN);
	CHECK(mlma_loss(MLMA_LOSS_SQUARED, INFINITY, 1, NAN, &v) == MLMA_ERR_INPUT);
	CHECK(mlma_loss(MLMA_LOSS_ZERO_ONE, 1, NAN, NAN, &v) == MLMA_ERR_INPUT);
}
