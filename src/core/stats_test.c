/*-------------------------------------------------------------------------
 *
 * stats_test.c
 *	  The tests of the numeric core by name: the lists of methods and
 *	  alternatives with their SQL names (the only place they are spelled:
 *	  SQL validation and error hints ask these functions), and the dispatch
 *	  of one test by method.
 *
 * Plain C over doubles: no PostgreSQL headers (see stats.h).
 *
 *-------------------------------------------------------------------------
 */
#include <math.h>
#include <string.h>

#include "stats.h"

/* SQL names, indexed by MlmaMethod and MlmaAlternative: the one list */
static const char *const method_names[] = {
	"welch", "mann_whitney", "ks", "hac", "dm"
};
static const char *const alternative_names[] = {
	"greater", "less", "two-sided"
};

#define N_METHODS ((int) (sizeof(method_names) / sizeof(method_names[0])))
#define N_ALTERNATIVES ((int) (sizeof(alternative_names) / sizeof(alternative_names[0])))

/*
 * mlma_method_kind
 *		Test method by SQL name; MLMA_METHOD_INVALID when unknown.
 */
MlmaMethod
mlma_method_kind(const char *name)
{
	int			i;

	if (name == NULL)
		return MLMA_METHOD_INVALID;
	for (i = 0; i < N_METHODS; i++)
		if (strcmp(name, method_names[i]) == 0)
			return (MlmaMethod) i;
	return MLMA_METHOD_INVALID;
}

/*
 * mlma_method_name
 *		SQL name of a test method, NULL when invalid (so callers can list
 *		every method by counting up from 0).
 */
const char *
mlma_method_name(MlmaMethod m)
{
	if ((int) m < 0 || (int) m >= N_METHODS)
		return NULL;
	return method_names[m];
}

/*
 * mlma_alternative_kind
 *		Alternative by SQL name: greater, less, two-sided.
 */
int
mlma_alternative_kind(const char *name, MlmaAlternative *alt)
{
	int			i;

	if (name == NULL)
		return MLMA_ERR_PARAM;
	for (i = 0; i < N_ALTERNATIVES; i++)
		if (strcmp(name, alternative_names[i]) == 0)
		{
			*alt = (MlmaAlternative) i;
			return MLMA_OK;
		}
	return MLMA_ERR_PARAM;
}

/*
 * mlma_alternative_name
 *		SQL name of an alternative, NULL when invalid.
 */
const char *
mlma_alternative_name(MlmaAlternative alt)
{
	if ((int) alt < 0 || (int) alt >= N_ALTERNATIVES)
		return NULL;
	return alternative_names[alt];
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
