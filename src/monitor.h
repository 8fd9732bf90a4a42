/*-------------------------------------------------------------------------
 *
 * monitor.h
 *	  The monitoring loop of mlma: the backend-local stream cache, the
 *	  observation hot path and the check of one closed batch.
 *
 * Tables and most of the batch-close logic live in sql/install/20..50;
 * these C parts are the per-observation path (ingest.c), the name -> stream
 * cache and option checks (stream.c) and the numeric side of a check
 * (check.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef MLMA_MONITOR_H
#define MLMA_MONITOR_H

#include "postgres.h"

#include "utils/timestamp.h"

#include "core/stats.h"

/* longest stream name in bytes: 255 characters of up to 4 bytes */
#define MLMA_NAME_MAXBYTES	1024

/*
 * What the hot path needs to know about a stream, cached per backend by
 * name.  An entry is trusted only together with config_version: the
 * per-observation UPDATE matches it against the state row, and every
 * configuration change bumps it.
 */
typedef struct MlmaStream
{
	char		name[MLMA_NAME_MAXBYTES];	/* hash key */
	int64		stream_id;
	int32		config_version;
	MlmaLossKind loss_kind;
	double		loss_param;		/* NaN when absent */
	int32		batch_size;
	bool		paused;
	bool		benchmark;		/* reference_policy 'benchmark': every
								 * observation carries a benchmark */
	bool		has_deadline;	/* max_model_age set */
	TimestampTz deadline;		/* version_started_at + max_model_age */
} MlmaStream;

/* stream.c */
extern uint64 mlma_xact_generation;
extern MlmaStream *mlma_stream_get(const char *name, bool reload);
extern MlmaStream *mlma_stream_auto_create(const char *name, const char *defaults);
extern void mlma_lock_stream(int64 stream_id);
extern bool mlma_try_lock_stream(int64 stream_id);

/* ingest.c */
typedef struct MlmaObservation
{
	const char *name;			/* stream name */
	bool		by_loss;		/* loss given (observe_loss) or computed */
	double		actual;
	double		predicted;
	double		loss;			/* when by_loss */
	bool		has_benchmark;	/* a benchmark value came with it */
	double		benchmark;		/* benchmark prediction, or its loss when by_loss */
	TimestampTz observed_at;
	const char *defaults;		/* attachment defaults (JSON); NULL: unknown stream is an error */
	bool		skip_invalid;	/* attachment on_invalid = 'skip' */
} MlmaObservation;

/*
 * Records one observation.  Returns NULL when recorded; with skip_invalid,
 * returns a short reason (static string) when the row was skipped instead of
 * raising an error.
 */
extern const char *mlma_record(const MlmaObservation *obs);

#endif							/* MLMA_MONITOR_H */
