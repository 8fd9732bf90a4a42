/*-------------------------------------------------------------------------
 *
 * mlma.c
 *	  Module entry point of mlma: PG_MODULE_MAGIC, _PG_init and GUCs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "utils/guc.h"

#include "mlma.h"

PG_MODULE_MAGIC;

double		mlma_fdr = 0.05;
int			mlma_round_size = 100000;
int			mlma_round_max_locks = 0;

void		_PG_init(void);

/*
 * _PG_init
 *		Define the mlma.* settings.
 */
void
_PG_init(void)
{
	DefineCustomRealVariable("mlma.fdr",
							 "False discovery rate controlled by run_checks() across the fleet.",
							 "Used when run_checks() is called without an explicit fdr.",
							 &mlma_fdr,
							 0.05, 1e-12, 1.0 - 1e-12,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("mlma.round_size",
							"Most waiting checks one run_checks() round takes.",
							"A larger backlog is worked off by the following rounds, "
							"lowest stream_id first.  Benjamini-Hochberg covers the whole round.",
							&mlma_round_size,
							100000, 1, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("mlma.round_max_locks",
							"Most stream writer locks one run_checks() round holds.",
							"0: a quarter of the shared lock table "
							"(max_locks_per_transaction * (max_connections + ...) / 4).  "
							"Streams beyond it keep their batches queued for the next round.",
							&mlma_round_max_locks,
							0, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("mlma");
}
