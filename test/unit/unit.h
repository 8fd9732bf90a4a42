/*-------------------------------------------------------------------------
 *
 * unit.h
 *	  Minimal assertion helpers for the unit tests of the mlma numeric core.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MLMA_UNIT_H
#define MLMA_UNIT_H

#include <math.h>
#include <stdio.h>

#include "stats.h"

extern int	unit_passed;
extern int	unit_failed;

extern void unit_check(int ok, const char *file, int line, const char *what);
extern void unit_check_close(double got, double expected, double rel,
							 const char *file, int line, const char *what);

/* a condition */
#define CHECK(cond) unit_check((cond) ? 1 : 0, __FILE__, __LINE__, #cond)
/* |got - expected| <= rel * |expected| (equal infinities pass) */
#define CHECK_CLOSE(got, expected, rel) \
	unit_check_close((got), (expected), (rel), __FILE__, __LINE__, #got)

extern void test_dist(void);
extern void test_param(void);
extern void test_loss(void);
extern void test_robust(void);
extern void test_decide(void);

#endif							/* MLMA_UNIT_H */
