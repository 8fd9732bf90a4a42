/*-------------------------------------------------------------------------
 *
 * mlma.h
 *	  Declarations shared by the backend parts of mlma.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MLMA_H
#define MLMA_H

#include "core/stats.h"

/* mlma.fdr: the false discovery rate of run_checks() (mlma.c) */
extern double mlma_fdr;

/*
 * mlma.round_size: the most waiting checks one run_checks() round takes;
 * mlma.round_max_locks: the most stream locks it holds (0: a quarter of the
 * shared lock table) (mlma.c)
 */
extern int	mlma_round_size;
extern int	mlma_round_max_locks;

/*
 * Name parsing, losses and test errors with the same messages everywhere
 * (stats_sql.c): each raises a clear ereport(ERROR) on bad input.
 */
extern MlmaAlternative MlmaParseAlternative(const char *name);
extern MlmaMethod MlmaParseMethod(const char *name);
extern MlmaLossKind MlmaParseLossKind(const char *name, double param);
extern double MlmaLossParam(bool isnull, double value);
extern double MlmaComputeLoss(MlmaLossKind kind, double actual,
							  double predicted, double param);
extern void MlmaLossError(MlmaLossKind kind, double actual, double predicted,
						  double param, const char *stream) pg_attribute_noreturn();
extern void MlmaReportTestError(int rc, MlmaMethod method);

#endif							/* MLMA_H */
