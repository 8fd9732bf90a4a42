/*-------------------------------------------------------------------------
 *
 * decide.h
 *	  The decision rule of a check, written once: is one evaluation
 *	  significant, how long is the run of significant evaluations, and is
 *	  the stream drifting.  Used by the eager check of a closing batch
 *	  (mlma._decide, sql/install/35_checks.sql) and by run_checks()
 *	  (src/fleet.c).
 *
 * Plain C, no PostgreSQL headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MLMA_DECIDE_H
#define MLMA_DECIDE_H

#include <stdbool.h>

typedef struct MlmaDecision
{
	bool		significant;
	int			streak;
	bool		drift;
} MlmaDecision;

/*
 * significant: p <= threshold and effect >= min_effect (NaN p or effect:
 * not significant); streak: streak_before + 1 when significant, else 0;
 * drift: significant and streak >= consecutive.
 */
extern MlmaDecision mlma_decide(double p, double threshold, double effect,
								double min_effect, int streak_before,
								int consecutive);

#endif							/* MLMA_DECIDE_H */
