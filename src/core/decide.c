/*-------------------------------------------------------------------------
 *
 * decide.c
 *	  The decision rule of a check (see decide.h).
 *
 * Plain C, no PostgreSQL headers.
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>

#include "decide.h"

/*
 * mlma_decide
 *		Significance, streak and drift of one evaluation.  Comparisons with
 *		NaN are false, so a NaN p-value or effect is not significant.  The
 *		streak saturates at INT_MAX instead of overflowing; a negative
 *		streak_before counts as 0.
 */
MlmaDecision
mlma_decide(double p, double threshold, double effect, double min_effect,
			int streak_before, int consecutive)
{
	MlmaDecision d;

	d.significant = (p <= threshold && effect >= min_effect);
	if (!d.significant)
		d.streak = 0;
	else if (streak_before < 0)
		d.streak = 1;
	else if (streak_before == INT_MAX)
		d.streak = INT_MAX;
	else
		d.streak = streak_before + 1;
	d.drift = d.significant && d.streak >= consecutive;
	return d;
}
