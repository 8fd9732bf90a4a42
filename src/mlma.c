/*-------------------------------------------------------------------------
 *
 * mlma.c
 *	  Module entry point of mlma: PG_MODULE_MAGIC, _PG_init and GUCs, and
 *	  mlma._notify_on(), which tells the SQL side whether to send NOTIFY.
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
int			mlma_stream_cache_size = 10000;
int			mlma_statement_chunk_size = 100000;
bool		mlma_notify = true;

void		_PG_init(void);

PG_FUNCTION_INFO_V1(mlma_notify_on);

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
							"0: no limit (writer locks are row locks and take nothing "
							"from the shared lock table).  Streams beyond it keep their "
							"batches queued for the next round.",
							&mlma_round_max_locks,
							0, 0, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("mlma.stream_cache_size",
							"Most streams whose configuration one backend keeps cached.",
							"Also bounds the per-transaction state kept for the streams a "
							"transaction writes; beyond it the state is read again from the "
							"tables, so any number of streams can be written.",
							&mlma_stream_cache_size,
							10000, 16, 10000000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("mlma.statement_chunk_size",
							"Rows of a multi-row statement on an attached table recorded at a time.",
							"Bounds the working memory of the statement triggers: the rows "
							"are decoded, grouped by stream and recorded this many at a time; "
							"the open batches between chunks stay in memory up to twice as "
							"many observations.",
							&mlma_statement_chunk_size,
							100000, 1, 10000000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("mlma.notify",
							 "Send NOTIFY mlma_retrain and mlma_cancel with retrain requests.",
							 "Off: no NOTIFY at all, so a transaction that is prepared "
							 "(two-phase commit, e.g. on Citus) can raise requests; they are "
							 "recorded all the same and agents find them by polling.",
							 &mlma_notify,
							 true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("mlma");
}

/*
 * mlma_notify_on() -> bool
 *		mlma._notify_on(): the value of mlma.notify.  Calling it loads the
 *		module, so the setting is defined (and a placeholder set before the
 *		load validated) whenever SQL asks.
 */
Datum
mlma_notify_on(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(mlma_notify);
}
