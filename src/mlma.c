/*-------------------------------------------------------------------------
 *
 * mlma.c
 *	  Module entry point of mlma: PG_MODULE_MAGIC, _PG_init and GUCs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/guc.h"

#include "mlma.h"

PG_MODULE_MAGIC;

double		mlma_fdr = 0.05;

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

	MarkGUCPrefixReserved("mlma");
}
