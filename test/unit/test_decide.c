/*-------------------------------------------------------------------------
 *
 * test_decide.c
 *	  The decision rule (src/core/decide.c).
 *
 *-------------------------------------------------------------------------
 */
#include <limits.h>

#include "decide.h"
#include "unit.h"

void
test_decide(void)
{
	MlmaDecision d;

	/* significant: p at or below the threshold and effect at or above */
	d = mlma_decide(0.05, 0.05, 1.0, 1.0, 0, 1);
	CHECK(d.significant && d.streak == 1 && d.drift);
	d = mlma_decide(0.0500001, 0.05, 2.0, 1.0, 3, 1);
	CHECK(!d.significant && d.streak == 0 && !d.drift);
	d = mlma_decide(0.01, 0.05, 0.99, 1.0, 3, 1);
	CHECK(!d.significant && d.streak == 0 && !d.drift);

	/* the streak grows; drift once it reaches consecutive */
	d = mlma_decide(0.01, 0.05, 1.5, 1.0, 0, 3);
	CHECK(d.significant && d.streak == 1 && !d.drift);
	d = mlma_decide(0.01, 0.05, 1.5, 1.0, 1, 3);
	CHECK(d.significant && d.streak == 2 && !d.drift);
	d = mlma_decide(0.01, 0.05, 1.5, 1.0, 2, 3);
	CHECK(d.significant && d.streak == 3 && d.drift);
	d = mlma_decide(0.01, 0.05, 1.5, 1.0, 7, 3);
	CHECK(d.significant && d.streak == 8 && d.drift);

	/* NaN p-value or effect: not significant, the streak resets */
	d = mlma_decide(NAN, 0.05, 1.5, 1.0, 2, 1);
	CHECK(!d.significant && d.streak == 0 && !d.drift);
	d = mlma_decide(0.01, 0.05, NAN, 1.0, 2, 1);
	CHECK(!d.significant && d.streak == 0 && !d.drift);

	/* an infinite effect (reference mean 0) is significant */
	d = mlma_decide(0.0, 0.05, INFINITY, 1.0, 0, 1);
	CHECK(d.significant && d.streak == 1 && d.drift);

	/* the streak saturates instead of overflowing */
	d = mlma_decide(0.0, 0.05, 2.0, 1.0, INT_MAX, 2);
	CHECK(d.significant && d.streak == INT_MAX && d.drift);
	d = mlma_decide(0.0, 0.05, 2.0, 1.0, -4, 2);
	CHECK(d.significant && d.streak == 1 && !d.drift);
}
