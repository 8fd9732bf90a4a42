/*-------------------------------------------------------------------------
 *
 * kernels.c
 *	  Times the two-sample tests of the mlma numeric core, outside the
 *	  server: nanoseconds per call of welch, mann_whitney, ks, hac and dm.
 *
 * Usage: kernels REF_FILE CUR_FILE [REF_FILE CUR_FILE ...]
 * Each file holds raw native doubles (one batch).  For every pair and every
 * test, prints one line "test nref ncur ns_per_call p_value".
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "stats.h"

static double *
ReadBatch(const char *path, size_t *n)
{
	FILE	   *f = fopen(path, "rb");
	long		size;
	double	   *x;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0)
	{
		fprintf(stderr, "kernels: cannot read %s\n", path);
		exit(2);
	}
	rewind(f);
	*n = (size_t) size / sizeof(double);
	x = malloc(*n * sizeof(double) + 1);
	if (x == NULL || fread(x, sizeof(double), *n, f) != *n)
	{
		fprintf(stderr, "kernels: cannot read %s\n", path);
		exit(2);
	}
	fclose(f);
	return x;
}

static double
Now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int
main(int argc, char **argv)
{
	int			arg;

	if (argc < 3 || argc % 2 == 0)
	{
		fprintf(stderr, "usage: kernels REF_FILE CUR_FILE [...]\n");
		return 2;
	}
	for (arg = 1; arg + 1 < argc; arg += 2)
	{
		size_t		nref,
					ncur;
		double	   *ref = ReadBatch(argv[arg], &nref);
		double	   *cur = ReadBatch(argv[arg + 1], &ncur);
		int			m;

		for (m = MLMA_METHOD_WELCH; m <= MLMA_METHOD_DM; m++)
		{
			MlmaTestResult res;
			long		reps = 1;
			double		best = 0.0;
			volatile double sink = 0.0;
			int			pass;

			/*
			 * Grow the repetition count until a run takes 0.1 s, then keep the
			 * best of three runs (the machine may be shared).
			 */
			for (pass = -1; pass < 3; pass++)
			{
				double		t0 = Now();
				double		elapsed;
				long		i;

				for (i = 0; i < reps; i++)
				{
					if (mlma_run_test((MlmaMethod) m, ref, nref, cur, ncur,
									  MLMA_ALT_GREATER, -1, &res) != MLMA_OK)
					{
						fprintf(stderr, "kernels: %s failed\n",
								mlma_method_name((MlmaMethod) m));
						return 1;
					}
					sink += res.p_value;
				}
				elapsed = Now() - t0;
				if (pass < 0)
				{
					/* calibration */
					if (elapsed < 0.1 && reps < (1L << 30))
					{
						reps *= (elapsed < 0.01) ? 10 : 2;
						pass--;
					}
					continue;
				}
				if (pass == 0 || elapsed < best)
					best = elapsed;
			}
			best /= reps;
			printf("%s %zu %zu %.1f %.17g\n", mlma_method_name((MlmaMethod) m),
				   nref, ncur, best * 1e9, res.p_value);
			(void) sink;
		}
		free(ref);
		free(cur);
	}
	return 0;
}
