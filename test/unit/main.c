/*-------------------------------------------------------------------------
 *
 * main.c
 *	  Runs the unit tests of the mlma numeric core and prints a summary;
 *	  exits non-zero when a check failed.
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>

#include "unit.h"

int			unit_passed = 0;
int			unit_failed = 0;

void
unit_check(int ok, const char *file, int line, const char *what)
{
	if (ok)
		unit_passed++;
	else
	{
		unit_failed++;
		printf("FAILED %s:%d: %s\n", file, line, what);
	}
}

void
unit_check_close(double got, double expected, double rel,
				 const char *file, int line, const char *what)
{
	int			ok;

	if (isnan(got) || isnan(expected))
		ok = 0;
	else if (isinf(expected) || isinf(got))
		ok = (got == expected);
	else
		ok = fabs(got - expected) <= rel * fabs(expected);
	if (ok)
		unit_passed++;
	else
	{
		unit_failed++;
		printf("FAILED %s:%d: %s = %.17g, expected %.17g (rel %.3g)\n",
			   file, line, what, got, expected,
			   expected != 0.0 ? fabs(got - expected) / fabs(expected) : fabs(got));
	}
}

int
main(void)
{
	test_dist();
	test_param();
	test_loss();
	test_robust();
	test_decide();
	printf("%d passed, %d failed\n", unit_passed, unit_failed);
	return unit_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
