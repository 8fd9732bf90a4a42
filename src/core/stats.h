/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  The numeric core of mlma: two-sample tests, distributions, multiple
 *	  testing and loss functions over plain C doubles.
 *
 * Nothing here includes PostgreSQL headers, allocates through palloc or
 * raises errors: every function reports failure through its return code, so
 * the core can be unit-tested and benchmarked outside the server.  The SQL
 * wrappers (stats_sql.c) convert arrays and turn codes into
 * ereport() calls.
 *
 * Conventions shared by all tests:
 *	- "reference" is the baseline batch, "current" the batch under test;
 *	- MLMA_ALT_GREATER means "current losses are larger than reference
 *	  losses" (the model got worse);
 *	- inputs must be finite and hold at least 2 values each (checked by the
 *	  callers; the core re-checks and returns MLMA_ERR_INPUT);
 *	- both batches constant and equal give statistic 0, p-value 1;
 *	- every valid input has a defined result: the p-value is in [0, 1] and
 *	  the statistic never NaN; it is +/-Infinity only for welch, hac and
 *	  dm when the standard error is exactly 0 and the means differ
 *	  (docs/statistics.md, checked by test/fuzz).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MLMA_STATS_H
#define MLMA_STATS_H

#include <stddef.h>

typedef enum MlmaAlternative
{
	MLMA_ALT_GREATER = 0,
	MLMA_ALT_LESS,
	MLMA_ALT_TWO_SIDED
} MlmaAlternative;

/* return codes of the core */
#define MLMA_OK				0
#define MLMA_ERR_INPUT		1	/* too few values, non-finite values */
#define MLMA_ERR_LENGTH		2	/* paired test with different lengths */
#define MLMA_ERR_NOMEM		3	/* scratch allocation failed */
#define MLMA_ERR_PARAM		4	/* bad parameter (lags, loss parameter...) */
#define MLMA_ERR_DOMAIN		5	/* loss undefined for these values */

typedef struct MlmaTestResult
{
	double		statistic;
	double		p_value;
	double		df;				/* Welch only; NaN otherwise */
	int			lags;			/* hac/dm only; -1 otherwise */
} MlmaTestResult;

/* at least 2 values, all finite (stats_sample.c) */
extern int	mlma_valid_sample(const double *x, size_t n);

/* a p-value clipped to [0, 1]; NaN gives 0 (stats_sample.c) */
extern double mlma_clip_probability(double p);

/* ---- distributions (stats_dist.c) ---- */
extern double mlma_normal_sf(double z);		/* P(Z > z) */
extern double mlma_normal_cdf(double z);	/* P(Z <= z) */
extern double mlma_t_sf(double t, double df);	/* P(T > t) */
extern double mlma_t_cdf(double t, double df);
extern double mlma_incbet(double a, double b, double x);	/* regularized I_x(a,b) */

/* ---- parametric tests (stats_param.c) ---- */
extern int	mlma_welch_test(const double *ref, size_t nref,
							const double *cur, size_t ncur,
							MlmaAlternative alt, MlmaTestResult *res);
/* lags < 0: default floor(4 * (n/100)^(2/9)) per batch */
extern int	mlma_hac_test(const double *ref, size_t nref,
						  const double *cur, size_t ncur,
						  MlmaAlternative alt, int lags, MlmaTestResult *res);
/* paired: nref == ncur; d = cur - ref */
extern int	mlma_dm_test(const double *ref, size_t nref,
						 const double *cur, size_t ncur,
						 MlmaAlternative alt, int lags, MlmaTestResult *res);
extern int	mlma_default_lags(size_t n);

/* ---- Kolmogorov distribution of one sample (stats_ks_dist.c) ---- */
/* P(D_n > x), two-sided (SciPy's kstwo.sf); -1 when out of memory */
extern double mlma_kolmogorov_sf(long n, double x);

/* ---- rank tests (stats_rank.c) ---- */
extern int	mlma_mann_whitney_test(const double *ref, size_t nref,
								   const double *cur, size_t ncur,
								   MlmaAlternative alt, MlmaTestResult *res);
extern int	mlma_ks_test(const double *ref, size_t nref,
						 const double *cur, size_t ncur,
						 MlmaAlternative alt, MlmaTestResult *res);

/* ---- multiple testing (stats_param.c) ---- */
/*
 * Benjamini-Hochberg adjusted p-values, as statsmodels fdr_bh; out may alias
 * p.  NaN counts as 1 and values outside [0, 1] are clamped: only lack of
 * memory makes it fail.
 */
extern int	mlma_bh_adjust(const double *p, size_t n, double *out);

/* ---- losses (loss.c) ---- */
typedef enum MlmaLossKind
{
	MLMA_LOSS_SQUARED = 0,
	MLMA_LOSS_ABSOLUTE,
	MLMA_LOSS_APE,
	MLMA_LOSS_SAPE,
	MLMA_LOSS_PINBALL,
	MLMA_LOSS_HUBER,
	MLMA_LOSS_POISSON,
	MLMA_LOSS_LOGLOSS,
	MLMA_LOSS_ZERO_ONE,
	MLMA_LOSS_INVALID = -1
} MlmaLossKind;

/* name -> kind; MLMA_LOSS_INVALID when unknown (loss.c holds the list) */
extern MlmaLossKind mlma_loss_kind(const char *name);
extern const char *mlma_loss_name(MlmaLossKind kind);
/* does the kind take a parameter, is this parameter valid (NaN = absent) */
extern int	mlma_loss_check_param(MlmaLossKind kind, double param);
/* computes the loss into *out; MLMA_ERR_DOMAIN / MLMA_ERR_PARAM on bad input */
extern int	mlma_loss(MlmaLossKind kind, double actual, double predicted,
					  double param, double *out);

/* ---- test methods by name (stats_test.c) ---- */
typedef enum MlmaMethod
{
	MLMA_METHOD_WELCH = 0,
	MLMA_METHOD_MANN_WHITNEY,
	MLMA_METHOD_KS,
	MLMA_METHOD_HAC,
	MLMA_METHOD_DM,
	MLMA_METHOD_INVALID = -1
} MlmaMethod;

extern MlmaMethod mlma_method_kind(const char *name);
extern const char *mlma_method_name(MlmaMethod m);
extern int	mlma_alternative_kind(const char *name, MlmaAlternative *alt);
/* SQL name of an alternative, NULL when invalid */
extern const char *mlma_alternative_name(MlmaAlternative alt);
/* dispatch one test by method (lags < 0 = default) */
extern int	mlma_run_test(MlmaMethod m, const double *ref, size_t nref,
						  const double *cur, size_t ncur,
						  MlmaAlternative alt, int lags, MlmaTestResult *res);

#endif							/* MLMA_STATS_H */
