/*-------------------------------------------------------------------------
 *
 * mlma.h
 *	  The one header of mlma's backend code (the .c files of src; the
 *	  numeric core in src/core has its own, stats.h and decide.h):
 *	  settings, name parsing and messages, the stream cache and writer lock
 *	  (stream.c), the evaluation of one check (check.c) and the recording
 *	  of observations (ingest.c, ingest_bulk.c).  Every .c file includes
 *	  postgres.h first.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MLMA_H
#define MLMA_H

#include "access/htup.h"
#include "access/sdir.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "nodes/lockoptions.h"
#include "utils/array.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
#include "utils/timestamp.h"

#include "core/stats.h"

/* mlma.fdr: the false discovery rate of run_checks() (mlma.c) */
extern double mlma_fdr;

/*
 * mlma.round_size: the most waiting checks one run_checks() round takes;
 * mlma.round_max_locks: the most stream locks it takes (0: no limit) (mlma.c)
 */
extern int	mlma_round_size;
extern int	mlma_round_max_locks;

/* mlma.notify: whether retrain requests and cancellations send NOTIFY (mlma.c) */
extern bool mlma_notify;

/*
 * Name parsing, losses and test errors with the same messages everywhere
 * (stats_sql.c): each raises a clear ereport(ERROR) on bad input.
 */
extern MlmaAlternative MlmaParseAlternative(const char *name);
extern MlmaMethod MlmaParseMethod(const char *name);
extern MlmaLossKind MlmaParseLossKind(const char *name, double param);
extern double MlmaLossParam(bool isnull, double value);
extern double MlmaComputeLoss(MlmaLossKind kind, double actual,
							  double predicted, double param);
extern void MlmaLossError(MlmaLossKind kind, double actual, double predicted,
						  double param, const char *stream) pg_attribute_noreturn();
extern void MlmaReportTestError(int rc, MlmaMethod method);

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
	char	   *name;			/* hash key (the cache's own copy) */
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
	int64		seq_hint;		/* next seq as this backend last wrote it (0:
								 * unknown): where ingest_direct.c starts
								 * looking for the open batch's end */
} MlmaStream;

/* mlma.stream_cache_size: most streams cached per backend (mlma.c) */
extern int	mlma_stream_cache_size;

/* mlma.statement_chunk_size: rows of a statement recorded at a time */
extern int	mlma_statement_chunk_size;

/* stream.c */
extern uint64 mlma_xact_generation;
extern MlmaStream *mlma_stream_get(const char *name, bool reload);
extern void mlma_stream_get_many(const char *const *names, int n, MlmaStream *out,
								 bool *found);
extern MlmaStream *mlma_stream_auto_create(const char *name, const char *defaults);
extern bool mlma_lock_stream(int64 stream_id);
extern bool mlma_try_lock_stream(int64 stream_id);

/* spi_values.c: columns of SPI rows, array arguments */
extern double mlma_spi_float8(HeapTuple tup, TupleDesc desc, int col, bool *isnull);
extern char *mlma_spi_text(HeapTuple tup, TupleDesc desc, int col);
extern int64 mlma_spi_int64(HeapTuple tup, TupleDesc desc, int col);
extern int32 mlma_spi_int32(HeapTuple tup, TupleDesc desc, int col);
extern bool mlma_spi_bool(HeapTuple tup, TupleDesc desc, int col);
extern const void *mlma_spi_array(HeapTuple tup, TupleDesc desc, int col, int *n);
extern const void *mlma_array_values(Datum d, bool isnull, int *n);
extern Datum mlma_array_datum(const Datum *elems, const bool *nulls, int n, Oid type);
extern Datum mlma_packed_array(const void *values, int n, Oid elemtype, int elemsize);
extern Datum mlma_float8_array_with_nulls(const double *values, const bool *present, int n);

/* requests.c: new retrain requests and their notification payload */
extern int	mlma_raise_drift_requests(const Datum *stream_ids, const Datum *p_values,
									  const Datum *effects, const Datum *check_ids,
									  int n);
extern char *mlma_request_payload(int64 request_id, int64 stream_id,
								  const char *stream, const char *model_version,
								  const char *reason, bool p_null, double p_value,
								  bool e_null, double effect, const char *status);

/*
 * The text value of the rows being built (mlma_text_of): made anew only when
 * the string differs from the previous one, as a run of rows mostly repeats
 * one (a stream's model version, a check's mode).
 */
typedef struct MlmaTextMemo
{
	text	   *text;			/* the last value, NULL before the first */
} MlmaTextMemo;

extern Datum mlma_text_of(MlmaTextMemo *memo, const char *cstr);

/*
 * A statement prepared once and kept (SPI_keepplan), prepared anew when it
 * is older than a few seconds at the start of a statement: mlma's tables
 * grow from empty, and a generic plan made while they were small would
 * scan them whole for every key.
 */
typedef struct MlmaPlan
{
	struct _SPI_plan *plan;
	TimestampTz made_at;
} MlmaPlan;
extern struct _SPI_plan *mlma_plan(MlmaPlan *p, const char *sql, int nargs,
								   Oid *types);

/* check.c: one check of a closed batch, in plain C (no error raised) */
typedef struct MlmaEvaluation
{
	double		statistic;
	double		p_value;
	double		effect;
	int32		n_reference;
	int32		n_current;
	double		reference_mean;
	double		batch_mean;
} MlmaEvaluation;

extern int	mlma_evaluate_losses(MlmaMethod method, const double *ref,
								 const int64 *ref_seqs, int nref,
								 const double *cur, int ncur, int64 first_seq,
								 int season, MlmaEvaluation *out);
extern double mlma_losses_mean(const double *x, int n);
extern int	mlma_evaluate_benchmark_losses(MlmaMethod method, ArrayType *benchmark,
										   const double *cur, int ncur,
										   MlmaEvaluation *out);

/* ingest.c */

/*
 * One observation, as every ingest path hands it to mlma_record.
 */
typedef struct MlmaObservation
{
	const char *name;			/* stream name */
	double		actual;
	double		predicted;
	double		loss;			/* when by_loss */
	double		benchmark;		/* benchmark prediction, or its loss when by_loss */
	TimestampTz observed_at;
	const char *defaults;		/* attachment defaults (JSON); NULL: unknown stream is an error */
	bool		by_loss;		/* loss given (observe_loss) or computed */
	bool		has_benchmark;	/* a benchmark value came with it */
	bool		skip_invalid;	/* attachment on_invalid = 'skip' */
} MlmaObservation;

/*
 * Records one observation.  Returns NULL when recorded; with skip_invalid,
 * returns a short reason (static string) when the row was skipped instead of
 * raising an error.  The caller counts the skip with mlma_count_skip.
 */
extern const char *mlma_record(const MlmaObservation *obs);

/*
 * Counts a skipped row: on the stream when one has this name, else on the
 * attachment of the table source (InvalidOid: nowhere).
 */
extern void mlma_count_skip(const char *name, Oid source, const char *reason);

/* NULL when name can be a new stream's name, else why not (static string) */
extern const char *mlma_stream_name_problem(const char *name);

/*
 * Records observations of ONE stream (every obs[i].name the same), in
 * order, taking the stream once: the set-based path of the statement
 * trigger (ingest_bulk.c).  reasons[i] gets the reason of each skipped
 * observation (skip_invalid), NULL for the recorded ones.  Returns the
 * number recorded.
 */
extern int	mlma_record_stream(const MlmaObservation *const *obs, int n,
							   const char **reasons);

/*
 * Checks n observations of one stream as mlma_record does (ingest.c):
 * losses and benchmark losses of the valid ones, their indexes in keep[],
 * reasons[i] of the skipped ones; raises for an invalid one unless
 * skip_invalid.  Returns the number kept.
 */
extern int	mlma_check_rows(MlmaStream *stream, const MlmaObservation *const *obs,
							int n, double *losses, double *benches, int *keep,
							const char **reasons);

/* this transaction holds stream_id's writer lock; its open batch (ingest.c) */
extern void mlma_own_stream(int64 stream_id, int64 open_start_seq,
							int64 next_seq, bool age_flagged);

/*
 * The rows of one stream in a statement, for mlma_record_streams.
 */
typedef struct MlmaStreamRows
{
	int64		stream_id;		/* -1: unknown stream that cannot be created */
	const MlmaStream *stream;	/* its configuration as cached, or NULL */
	const MlmaObservation *const *obs;	/* the rows, in order */
	int			n;
	const char **reasons;		/* out: reason of each skipped row, or NULL */
} MlmaStreamRows;

/*
 * Records the rows of several streams (sorted by stream_id, each stream
 * once) set-wise (ingest_set.c): the writer locks in stream_id order, the
 * batches they fill closed and checked in C, a few statements for all of
 * them.  Streams it cannot serve that way go through mlma_record_stream.
 * A statement read in chunks passes the same carry to every chunk: the
 * streams it took stay taken, their open tails stay in memory, and
 * mlma_set_carry_finish writes them at the end.  rows: the most rows a
 * chunk has (sizes the carry's working memory).
 */
typedef struct MlmaSetCarry MlmaSetCarry;
extern MlmaSetCarry *mlma_set_carry_create(int64 rows);
extern void mlma_record_streams(MlmaStreamRows *streams, int nstreams,
								MlmaSetCarry *carry);
extern void mlma_set_carry_finish(MlmaSetCarry *carry);

/*
 * The row path closes a full batch the set path's way (ingest_set.c):
 * false when it cannot (nothing done: mlma._close_batch closes it).
 */
extern bool mlma_close_full_batch(const MlmaStream *stream, int64 open_start_seq,
								  int64 next_seq);

/*
 * ingest_direct.c: the row path through the access methods (READ COMMITTED)
 */
typedef struct MlmaOpenBatch
{
	int32		config_version;
	int64		open_start_seq;	/* first seq of the open batch */
	bool		age_flagged;
	int64		next_seq;		/* seq of the next observation */
} MlmaOpenBatch;

typedef enum MlmaDirectResult
{
	MLMA_DIRECT_UNUSABLE,		/* nothing done: use SQL */
	MLMA_DIRECT_GONE,			/* the stream has no state row */
	MLMA_DIRECT_TAKEN,			/* locked and read, nothing inserted */
	MLMA_DIRECT_INSERTED		/* locked, read, observation inserted */
} MlmaDirectResult;

extern bool mlma_direct_usable(void);
extern MlmaDirectResult mlma_direct_take(int64 stream_id, int32 expected_config,
										 int64 seq_hint, MlmaOpenBatch *batch,
										 TimestampTz observed_at, double loss,
										 const double *bench);
extern void mlma_run_arrays(int n, const TimestampTz *at, const double *losses,
							const double *bench, const bool *has_bench,
							Datum *out);
/*
 * mlma_seconds_since
 *		floor(extract(epoch FROM at - t0)) clamped to int4, as _close_batch
 *		stores the times of a closed batch (batches.offsets); inline, as
 *		every observation of a closed batch goes through it.
 */
static inline int32
mlma_seconds_since(TimestampTz at, TimestampTz t0)
{
	int64		d = at - t0;
	int64		q = d / USECS_PER_SEC;

	if (d % USECS_PER_SEC != 0 && d < 0)
		q--;
	return (int32) Max(PG_INT32_MIN, Min(PG_INT32_MAX, q));
}
extern void mlma_insert_runs(int n, const int64 *stream_ids,
							 const int64 *seqs, const Datum *arrays);
extern int	mlma_run_elems(Datum times, Datum losses, Datum bench, bool bench_null,
						   Datum **t, Datum **l, Datum **x, bool **xnull);
extern int	mlma_lock_streams(const int64 *ids, int n, int max_locked,
							  LockWaitPolicy wait, bool *locked);

/* the open observations of a stream taken out of mlma.open_runs, in seq order */
typedef struct MlmaTakenBatch
{
	int			n;
	int			cap;
	double	   *losses;
	TimestampTz *at;
	double	   *bench;
	bool	   *bench_null;
	int			nbench;			/* how many carry a benchmark loss */
	int64		first_seq;
} MlmaTakenBatch;
extern bool mlma_direct_take_open(int n, const int64 *ids, const int64 *from,
								  MlmaTakenBatch *out);
extern bool mlma_update_state_rows(int n, const Datum *ids, int ncols,
								   const char *const *cols, const Oid *types,
								   Datum *const *values);
extern bool mlma_direct_insert(int64 stream_id, int64 seq,
							   TimestampTz observed_at, double loss,
							   const double *bench);

/*
 * Reading rows of one of mlma's tables by the first one or two columns of
 * its primary key (stream_id bigint, then an int4 column), through the
 * access methods: run_checks() reads every waiting check's stream, state,
 * batch and reference this way.
 */
typedef struct MlmaKeyReader MlmaKeyReader;
extern MlmaKeyReader *mlma_key_reader_open(const char *table, const char *second,
										   Snapshot snap);
extern TupleTableSlot *mlma_key_reader_find(MlmaKeyReader *r, int64 stream_id,
											int32 second);
extern TupleTableSlot *mlma_key_reader_seek(MlmaKeyReader *r, int64 stream_id);
extern TupleTableSlot *mlma_key_reader_last(MlmaKeyReader *r, int64 stream_id);
extern TupleTableSlot *mlma_key_reader_next(MlmaKeyReader *r, ScanDirection dir);
extern bool mlma_key_reader_sweep(MlmaKeyReader *r, const int64 *ids, int n,
								  AttrNumber natts,
								  void (*fn) (void *arg, int k, TupleTableSlot *slot),
								  void *arg);
extern AttrNumber mlma_key_reader_column(MlmaKeyReader *r, const char *name,
										 Oid typid);
extern void mlma_key_reader_close(MlmaKeyReader *r);

/* a waiting check taken out of mlma.check_queue by run_checks() */
typedef struct MlmaQueued
{
	int64		stream_id;
	int32		batch_no;
	TimestampTz queued_at;
} MlmaQueued;
extern int64 mlma_take_queue(int64 limit, MlmaQueued **rows);

/*
 * Inserting rows into one of mlma's tables through the access methods, as
 * COPY does (run_checks() writes its checks this way).
 */
typedef struct MlmaRowWriter MlmaRowWriter;
extern MlmaRowWriter *mlma_row_writer_open(const char *table,
										   const char *const *columns,
										   int ncolumns);
extern AttrNumber mlma_row_writer_column(MlmaRowWriter *w, const char *name,
										 Oid typid);
extern Oid	mlma_row_writer_sequence(MlmaRowWriter *w);
extern Oid	mlma_owned_sequence(const char *table);
extern bool mlma_row_writer_fits(MlmaRowWriter *w, TupleDesc desc);
extern TupleTableSlot *mlma_row_writer_row(MlmaRowWriter *w);
extern void mlma_row_writer_add_tuple(MlmaRowWriter *w, HeapTuple tup);
extern void mlma_row_writer_add(MlmaRowWriter *w);
extern int64 mlma_row_writer_close(MlmaRowWriter *w);

/* what the arguments of an attached table's trigger say */
typedef struct MlmaAttachArgs
{
	const char *stream;
	const char *actual;
	const char *predicted;
	const char *time;			/* "" = none */
	const char *defaults;
	const char *benchmark;		/* "" = none */
	bool		skip;			/* on_invalid = 'skip' */
	bool		create;			/* unknown streams are created */
} MlmaAttachArgs;

typedef enum MlmaRowKind
{
	MLMA_ROW_NONE,				/* not an observation */
	MLMA_ROW_OBSERVATION,
	MLMA_ROW_PROBLEM			/* a mapped column is gone or of another type */
} MlmaRowKind;

extern void mlma_attach_args(Trigger *trigger, const char *function,
							 MlmaAttachArgs *a);
/* stream names kept once each (ingest.c) */
typedef struct MlmaNames MlmaNames;

/*
 * Where the mapped columns of an attached table are for one statement's
 * rows (0: missing or none), and whether they can be read
 * (mlma_attached_columns).
 */
typedef struct MlmaAttachedColumns
{
	int			stream;
	int			actual;
	int			predicted;
	int			time;
	int			benchmark;
	char	   *problem;		/* why the rows cannot be read (a column is
								 * missing or of a type mlma cannot read), or
								 * NULL */
	int			code;			/* its SQLSTATE */
} MlmaAttachedColumns;

extern void mlma_attached_columns(Trigger *trigger, Relation rel,
								  const MlmaAttachArgs *a,
								  MlmaAttachedColumns *cols);
extern MlmaRowKind mlma_decode_attached_row(const MlmaAttachedColumns *cols,
											const MlmaAttachArgs *a,
											Relation rel, TupleTableSlot *old_slot,
											TupleTableSlot *new_slot, MlmaNames *names,
											MlmaObservation *obs,
											char **problem, int *code);
extern MlmaNames *mlma_name_table_create(long expected);
extern void **mlma_name_tag(const char *interned);
extern void mlma_attached_row_error(Relation rel, const MlmaAttachArgs *a,
									int code, const char *msg) pg_attribute_noreturn();
extern void mlma_rethrow_with_table(Relation rel, const MlmaAttachArgs *a) pg_attribute_noreturn();

#endif							/* MLMA_H */
