/*-------------------------------------------------------------------------
 *
 * stats_test.c
 *	  The tests of the numeric core by name: methods and alternatives by
 *	  their SQL names, and the dispatch of one test by method.
 *
 * Plain C over doubles: no PostgreSQL headers (see stats.h).
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <string.h>

#include "stats.h"

/*
 * mlma_method_kind
 *		Test method by SQL name.
 */
MlmaMethod
mlma_method_kind(const char *name)
{
	if (name == NULL)
		return MLMA_METHOD_INVALID;
	if (strcmp(name, "welch") == 0)
		return MLMA_METHOD_WELCH;
	if (strcmp(name, "mann_whitney") == 0)
		return MLMA_METHOD_MANN_WHITNEY;
	if (strcmp(name, "ks") == 0)
		return MLMA_METHOD_KS;
	if (strcmp(name, "hac") == 0)
		return MLMA_METHOD_HAC;
	if (strcmp(name, "dm") == 0)
		return MLMA_METHOD_DM;
	return MLMA_METHOD_INVALID;
}

/*
 * mlma_method_name
 *		SQL name of a test method, NULL when invalid.
 */
const char *
mlma_method_name(MlmaMethod m)
{
	switch (m)
	{
		case MLMA_METHOD_WELCH:
			return "welch";
		case MLMA_METHOD_MANN_WHITNEY:
			return "mann_whitney";
		case MLMA_METHOD_KS:
			return "ks";
		case MLMA_METHOD_HAC:
			return "hac";
		case MLMA_METHOD_DM:
			return "dm";
		default:
			return NULL;
	}
}

/*
 * mlma_alternative_kind
 *		Alternative by SQL name: greater, less, two-sided.
 */
int
mlma_alternative_kind(const char *name, MlmaAlternative *alt)
{
	if (name == NULL)
		return MLMA_ERR_PARAM;
	if (strcmp(name, "greater") == 0)
		*alt = MLMA_ALT_GREATER;
	else if (strcmp(name, "less") == 0)
		*alt = MLMA_ALT_LESS;
	else if (strcmp(name, "two-sided") == 0)
		*alt = MLMA_ALT_TWO_SIDED;
	else
		return MLMA_ERR_PARAM;
	return MLMA_OK;
}

/*
 * mlma_run_test
 *		Run one test by method; lags (< 0 = default) only matter for hac
 *		and dm.
 */
int
mlma_run_test(MlmaMethod m, const double *ref, size_t nref,
			  const double *cur, size_t ncur,
			  MlmaAlternative alt, int lags, MlmaTestResult *res)
{
	res->statistic = NAN;
	res->p_value = NAN;
	res->df = NAN;
	res->lags = -1;

	switch (m)
	{
		case MLMA_METHOD_WELCH:
			return mlma_welch_test(ref, nref, cur, ncur, alt, res);
		case MLMA_METHOD_MANN_WHITNEY:
			return mlma_mann_whitney_test(ref, nref, cur, ncur, alt, res);
		case MLMA_METHOD_KS:
			return mlma_ks_test(ref, nref, cur, ncur, alt, res);
		case MLMA_METHOD_HAC:
			return mlma_hac_test(ref, nref, cur, ncur, alt, lags, res);
		case MLMA_METHOD_DM:
			return mlma_dm_test(ref, nref, cur, ncur, alt, lags, res);
		default:
			return MLMA_ERR_PARAM;
	}
}
