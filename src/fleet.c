/*-------------------------------------------------------------------------
 *
 * fleet.c
 *	  Scheduled checks across the fleet: run_checks() tests the closed
 *	  batches waiting in mlma.check_queue (check_mode = 'scheduled'),
 *	  adjusts the p-values of the whole round with Benjamini-Hochberg,
 *	  applies the decisions and records one mlma.checks row per batch.
 *
 * One round is a handful of set-based statements, whatever the number of
 * due batches:
 *
 *	1. drain the queue: one DELETE ... RETURNING of at most mlma.round_size
 *	   waiting checks, in (stream_id, batch_no) order, whose rows it can lock
 *	   at once (SKIP LOCKED: a concurrent round never takes the same batch;
 *	   the deleted rows stay locked until this round commits);
 *	2. read each batch, its reference and its stream's settings by primary
 *	   key through the access methods (MlmaKeyReader, ingest_direct.c), or,
 *	   when the round's streams are a large share of the fleet, the
 *	   settings, streaks and references with one scan of each table
 *	   (SweepStreams, EvaluateSwept); with chunk_query, CHUNK_SIZE checks
 *	   at a time, where the tables are not as mlma made them; and evaluate
 *	   the batch in C on the arrays as stored (mlma_evaluate_losses, the
 *	   same code as mlma._evaluate),
 *	   keeping only the results, so memory does not grow with the batches
 *	   read;
 *	3. adjust all p-values of the round together (BH at level fdr) and
 *	   decide per batch in batch order (DecideBatch): significant when
 *	   p_adjusted <= fdr and effect >= min_effect, drift after `consecutive`
 *	   significant batches;
 *	4. a stream whose state changes (its streak, a request, a rolling
 *	   reference) needs its writer lock, taken without waiting in stream_id
 *	   order.  A stream a writer holds right now, or beyond the round's lock
 *	   budget (mlma.round_max_locks, none by default),
 *	   keeps its batches queued for the next round.  Most streams pass with a
 *	   streak of 0 and need no lock at all;
 *	5. insert the checks (in chunks), put deferred batches back into the
 *	   queue, write the changed streaks, raise one request per drifting
 *	   stream in one call (mlma_raise_drift_requests sends the NOTIFYs), roll the
 *	   reference of 'rolling' streams after passing batches, and record the
 *	   round in mlma.rounds.
 *
 * A batch that cannot be evaluated (losses that make the test fail, a NaN
 * p-value) never stops the round: its check is recorded as done with
 * p_value = p_adjusted = 1, not significant, and a note saying why; it is
 * left out of the BH adjustment.  Checks whose batch no longer has a
 * reference of its model version (the model was retrained meanwhile) are
 * recorded as 'skipped'.  Streams with the benchmark reference policy are
 * tested against their batch's own benchmark losses
 * (mlma_evaluate_benchmark_losses); a batch with fewer than 2 of them is
 * recorded as not tested.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "portability/instr_time.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "mlma.h"
#include "core/decide.h"
#include "core/stats.h"

PG_FUNCTION_INFO_V1(mlma_run_checks);
PG_FUNCTION_INFO_V1(mlma_run_checks_rows);

/* rows read or written per statement */
#define CHUNK_SIZE	5000

/* one waiting check of the round */
typedef struct DueCheck
{
	int64		stream_id;
	int32		batch_no;
	TimestampTz queued_at;
	int64		check_id;		/* after the INSERT */
	bool		found;			/* its stream still exists */
	bool		skip;			/* no reference for its model version */
	const char *note;			/* evaluation failed: why (else NULL) */
	char	   *model_version;
	char	   *method;
	double		alpha;
	MlmaEvaluation ev;
	double		p_adjusted;
	double		min_effect;
	int32		consecutive;
	bool		paused;
	bool		rolling;
	int32		streak;			/* the stream's streak, read with the round */
	bool		significant;
	bool		drift;
	bool		excluded;		/* stream busy: back to the queue */
	int64		ref_id;			/* the live reference's history row as read
								 * with it, built before the round (0: look
								 * it up) */
} DueCheck;

static const char *drain_query =
"DELETE FROM @extschema@.check_queue q "
" WHERE q.ctid OPERATOR(pg_catalog.=) ANY (ARRAY("
"       SELECT w.ctid FROM @extschema@.check_queue w "
"        ORDER BY w.stream_id, w.batch_no LIMIT $1 "
"          FOR UPDATE SKIP LOCKED)) "
"RETURNING q.stream_id, q.batch_no, q.queued_at";

/*
 * Every lookup is a LATERAL subquery with LIMIT 1: one index probe per
 * waiting check, whatever the sizes of the tables (a hash of all batches
 * would read the whole history).
 */
static const char *chunk_query =
"SELECT u.ord, (b.batch_no IS NULL OR (r.losses IS NULL AND "
"        s.reference_policy OPERATOR(pg_catalog.<>) 'benchmark')) AS skip, "
"       COALESCE(b.model_version, s.model_version), s.method, s.alpha, "
"       s.season_length, s.min_effect, s.consecutive, s.paused, "
"       s.reference_policy OPERATOR(pg_catalog.=) 'rolling' AS rolling, "
"       st.streak, b.losses, b.first_seq, r.losses, r.seqs, "
"       s.reference_policy OPERATOR(pg_catalog.=) 'benchmark', b.benchmark_losses "
"  FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::int4[])) "
"       WITH ORDINALITY AS u(stream_id, batch_no, ord) "
"  CROSS JOIN LATERAL (SELECT s.model_version, s.method, s.alpha, s.season_length, "
"         s.min_effect, s.consecutive, s.paused, s.reference_policy "
"         FROM @extschema@.streams s "
"        WHERE s.stream_id OPERATOR(pg_catalog.=) u.stream_id LIMIT 1) s "
"  CROSS JOIN LATERAL (SELECT st.streak FROM @extschema@.stream_state st "
"        WHERE st.stream_id OPERATOR(pg_catalog.=) u.stream_id LIMIT 1) st "
"  LEFT JOIN LATERAL (SELECT b.batch_no, b.model_version, b.version_no, b.losses, "
"         b.first_seq, b.benchmark_losses FROM @extschema@.batches b "
"        WHERE b.stream_id OPERATOR(pg_catalog.=) u.stream_id "
"          AND b.batch_no OPERATOR(pg_catalog.=) u.batch_no LIMIT 1) b ON true "
"  LEFT JOIN LATERAL (SELECT r.losses, r.seqs FROM @extschema@.reference_batches r "
"        WHERE r.stream_id OPERATOR(pg_catalog.=) u.stream_id "
"          AND r.version_no OPERATOR(pg_catalog.=) b.version_no LIMIT 1) r ON true";

static const char *streak_query =
"SELECT stream_id, streak FROM @extschema@.stream_state "
" WHERE stream_id OPERATOR(pg_catalog.=) ANY ($1) "
" ORDER BY stream_id";

static const char *insert_checks_query =
"INSERT INTO @extschema@.checks (stream_id, model_version, batch_no, method, "
"       alpha, check_mode, status, n_reference, n_current, reference_mean, "
"       batch_mean, statistic, p_value, p_adjusted, effect, significant, drift, "
"       created_at, checked_at, note, reference_id, threshold) "
"SELECT u.sid, u.mv, u.bno, u.m, u.a, 'scheduled', u.st, u.nr, u.nc, u.rm, "
"       u.bm, u.stat, u.p, u.pa, u.e, u.sig, u.dr, u.q, pg_catalog.now(), u.note, "
"       (SELECT pg_catalog.max(h.reference_id) FROM @extschema@.reference_history h "
"         WHERE h.stream_id OPERATOR(pg_catalog.=) u.sid "
"           AND h.built_at OPERATOR(pg_catalog.<) pg_catalog.now()), "
"       CASE WHEN u.st OPERATOR(pg_catalog.=) 'done' THEN $19 END "
"  FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::text[]), "
"       pg_catalog.unnest($3::int4[]), pg_catalog.unnest($4::text[]), "
"       pg_catalog.unnest($5::float8[]), pg_catalog.unnest($6::text[]), "
"       pg_catalog.unnest($7::int4[]), pg_catalog.unnest($8::int4[]), "
"       pg_catalog.unnest($9::float8[]), pg_catalog.unnest($10::float8[]), "
"       pg_catalog.unnest($11::float8[]), pg_catalog.unnest($12::float8[]), "
"       pg_catalog.unnest($13::float8[]), pg_catalog.unnest($14::float8[]), "
"       pg_catalog.unnest($15::bool[]), pg_catalog.unnest($16::bool[]), "
"       pg_catalog.unnest($17::timestamptz[]), pg_catalog.unnest($18::text[])) "
"       AS u(sid, mv, bno, m, a, st, nr, nc, rm, bm, stat, p, pa, e, sig, dr, q, note) "
"RETURNING check_id, stream_id, batch_no";

static const char *requeue_query =
"INSERT INTO @extschema@.check_queue (stream_id, batch_no, queued_at) "
"SELECT * FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::int4[]), "
"       pg_catalog.unnest($3::timestamptz[]))";

static const char *update_streaks_query =
"UPDATE @extschema@.stream_state st SET streak = u.streak "
"  FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::int4[])) "
"       AS u(stream_id, streak) "
" WHERE st.stream_id OPERATOR(pg_catalog.=) u.stream_id";

static const char *roll_query =
"SELECT @extschema@._roll_reference($1, $2)";

static const char *checks_rows_query =
"SELECT c.* FROM pg_catalog.unnest($1::int8[]) AS u(id) "
"  JOIN @extschema@.checks c ON c.check_id OPERATOR(pg_catalog.=) u.id "
" ORDER BY c.check_id";

static const char *round_query =
"INSERT INTO @extschema@.rounds (started_at, finished_at, checks, flags, deferred) "
"VALUES ($1, pg_catalog.clock_timestamp(), $2, $3, $4)";

/*
 * ExtQuery
 *		The query text with @extschema@ replaced by the extension's schema.
 */
static char *
ExtQuery(const char *query, const char *schema)
{
	StringInfoData buf;
	const char *p = query;
	const char *hit;
	const char *quoted = quote_identifier(schema);

	initStringInfo(&buf);
	while ((hit = strstr(p, "@extschema@")) != NULL)
	{
		appendBinaryStringInfo(&buf, p, hit - p);
		appendStringInfoString(&buf, quoted);
		p = hit + strlen("@extschema@");
	}
	appendStringInfoString(&buf, p);
	return buf.data;
}

static void
ExecOrError(const char *query, int nargs, Oid *types, Datum *values, int expected)
{
	int			rc = SPI_execute_with_args(query, nargs, types, values, NULL,
										   false, 0);

	if (rc != expected)
		elog(ERROR, "mlma: run_checks statement failed: %s",
			 SPI_result_code_string(rc));
}

static int
CompareDue(const void *a, const void *b)
{
	const DueCheck *x = a;
	const DueCheck *y = b;

	if (x->stream_id != y->stream_id)
		return x->stream_id < y->stream_id ? -1 : 1;
	if (x->batch_no != y->batch_no)
		return x->batch_no < y->batch_no ? -1 : 1;
	return 0;
}

/* the check of (stream_id, batch_no) in the sorted round, or NULL */
static DueCheck *
FindDue(DueCheck *due, uint64 ndue, int64 stream_id, int32 batch_no)
{
	DueCheck	key;

	key.stream_id = stream_id;
	key.batch_no = batch_no;
	return bsearch(&key, due, ndue, sizeof(DueCheck), CompareDue);
}

/* a stream's settings and streak as the round reads them */
typedef struct StreamRead
{
	bool		found;			/* its streams row was read */
	bool		has_state;		/* its stream_state row was read */
	char	   *method;
	char	   *model_version;
	double		alpha;
	int32		season;
	double		min_effect;
	int32		consecutive;
	bool		paused;
	bool		rolling;
	bool		benchmark;
	int32		streak;
} StreamRead;

/* what one check is evaluated from: its stream, batch and reference */
typedef struct CheckInput
{
	bool		skip;			/* no batch, or no reference to test it against */
	StreamRead	st;				/* the stream's settings and streak */
	const char *model_version;	/* the batch's (the stream's without one) */
	const double *cur;			/* the batch's losses (NULL: unusable) */
	int			ncur;
	int64		first_seq;
	const double *ref;			/* the reference's losses (NULL: none) */
	int			nref;
	const int64 *ref_seqs;
	int			nseq;
	ArrayType  *bench;			/* the batch's benchmark losses (NULL: none) */
} CheckInput;

/*
 * Evaluate
 *		Fills d from its input: the stream's settings and the evaluation of
 *		the batch against the reference.  A batch that cannot be evaluated
 *		gets p = 1 and a note instead of an error.
 */
static void
Evaluate(DueCheck *d, const CheckInput *in, MemoryContext round_cxt)
{
	MemoryContext old;
	MlmaMethod	method;
	int			rc;

	d->found = true;
	d->skip = in->skip;
	old = MemoryContextSwitchTo(round_cxt);
	d->model_version = pstrdup(in->model_version ? in->model_version : "");
	d->method = pstrdup(in->st.method ? in->st.method : "");
	MemoryContextSwitchTo(old);
	d->alpha = in->st.alpha;
	d->min_effect = in->st.min_effect;
	d->consecutive = in->st.consecutive;
	d->paused = in->st.paused;
	d->rolling = in->st.rolling;
	d->streak = in->st.streak;
	if (d->skip)
		return;

	method = mlma_method_kind(d->method);
	if (in->cur != NULL && method != MLMA_METHOD_INVALID && in->st.benchmark)
		/* benchmark policy: the challenger's losses on the same observations */
		rc = mlma_evaluate_benchmark_losses(method, in->bench, in->cur, in->ncur,
											&d->ev);
	else if (in->cur == NULL || in->ref == NULL)
		rc = MLMA_ERR_INPUT;
	else if (method == MLMA_METHOD_INVALID)
		rc = MLMA_ERR_PARAM;
	else
		rc = mlma_evaluate_losses(method, in->ref,
								  (in->ref_seqs != NULL && in->nseq == in->nref)
								  ? in->ref_seqs : NULL,
								  in->nref, in->cur, in->ncur, in->first_seq,
								  in->st.season, &d->ev);

	if (rc == MLMA_OK && !(d->ev.p_value >= 0.0 && d->ev.p_value <= 1.0))
		d->note = "not tested: the test gave no p-value (NaN); recorded as p = 1, not significant";
	else if (rc != MLMA_OK)
	{
		old = MemoryContextSwitchTo(round_cxt);
		d->note = psprintf("not tested: test %s failed on this batch (code %d, the losses "
						   "must be finite and at least 2 on each side); recorded as p = 1, "
						   "not significant", d->method, rc);
		MemoryContextSwitchTo(old);
	}
	if (d->note != NULL)
	{
		d->ev.statistic = get_float8_nan();
		d->ev.p_value = 1.0;
		d->ev.effect = get_float8_nan();
	}
}

/* the input of a check from one row of chunk_query */
static void
EvaluateRow(DueCheck *d, HeapTuple tup, TupleDesc desc, MemoryContext round_cxt)
{
	CheckInput	in;
	bool		isnull;
	Datum		bd;

	memset(&in, 0, sizeof(in));
	in.skip = mlma_spi_bool(tup, desc, 2);
	in.model_version = SPI_getvalue(tup, desc, 3);
	in.st.method = SPI_getvalue(tup, desc, 4);
	in.st.alpha = mlma_spi_float8(tup, desc, 5, &isnull);
	in.st.season = mlma_spi_int32(tup, desc, 6);
	in.st.min_effect = mlma_spi_float8(tup, desc, 7, &isnull);
	in.st.consecutive = mlma_spi_int32(tup, desc, 8);
	in.st.paused = mlma_spi_bool(tup, desc, 9);
	in.st.rolling = mlma_spi_bool(tup, desc, 10);
	in.st.streak = mlma_spi_int32(tup, desc, 11);
	in.cur = mlma_spi_array(tup, desc, 12, &in.ncur);
	in.first_seq = mlma_spi_int64(tup, desc, 13);
	in.ref = mlma_spi_array(tup, desc, 14, &in.nref);
	in.ref_seqs = mlma_spi_array(tup, desc, 15, &in.nseq);
	in.st.benchmark = mlma_spi_bool(tup, desc, 16);
	bd = SPI_getbinval(tup, desc, 17, &isnull);
	in.bench = isnull ? NULL : DatumGetArrayTypeP(bd);
	Evaluate(d, &in, round_cxt);
}

/*
 * The readers of the four tables a check reads by primary key (the direct
 * path of step 2), and the columns it reads from each.
 */
typedef struct RoundReaders
{
	MlmaKeyReader *streams;
	MlmaKeyReader *state;
	MlmaKeyReader *batches;
	MlmaKeyReader *refs;
	AttrNumber	s_model_version;
	AttrNumber	s_method;
	AttrNumber	s_alpha;
	AttrNumber	s_season_length;
	AttrNumber	s_min_effect;
	AttrNumber	s_consecutive;
	AttrNumber	s_paused;
	AttrNumber	s_reference_policy;
	AttrNumber	st_streak;
	AttrNumber	b_model_version;
	AttrNumber	b_version_no;
	AttrNumber	b_losses;
	AttrNumber	b_first_seq;
	AttrNumber	b_benchmark_losses;
	AttrNumber	r_version_no;
	AttrNumber	r_losses;
	AttrNumber	r_seqs;
	AttrNumber	r_reference_id;
	AttrNumber	r_built_at;
} RoundReaders;

static void
CloseReaders(RoundReaders *rr)
{
	mlma_key_reader_close(rr->streams);
	mlma_key_reader_close(rr->state);
	mlma_key_reader_close(rr->batches);
	mlma_key_reader_close(rr->refs);
	memset(rr, 0, sizeof(RoundReaders));
}

/*
 * OpenReaders
 *		The four readers with snap, or false (nothing left open) when one
 *		of them cannot be used: the round then reads with chunk_query.
 */
static bool
OpenReaders(RoundReaders *rr, Snapshot snap)
{
	memset(rr, 0, sizeof(RoundReaders));
	rr->streams = mlma_key_reader_open("streams", NULL, snap);
	rr->state = mlma_key_reader_open("stream_state", NULL, snap);
	rr->batches = mlma_key_reader_open("batches", "batch_no", snap);
	rr->refs = mlma_key_reader_open("reference_batches", NULL, snap);
	if (rr->streams == NULL || rr->state == NULL || rr->batches == NULL ||
		rr->refs == NULL)
	{
		CloseReaders(rr);
		return false;
	}
	rr->s_model_version = mlma_key_reader_column(rr->streams, "model_version", TEXTOID);
	rr->s_method = mlma_key_reader_column(rr->streams, "method", TEXTOID);
	rr->s_alpha = mlma_key_reader_column(rr->streams, "alpha", FLOAT8OID);
	rr->s_season_length = mlma_key_reader_column(rr->streams, "season_length", INT4OID);
	rr->s_min_effect = mlma_key_reader_column(rr->streams, "min_effect", FLOAT8OID);
	rr->s_consecutive = mlma_key_reader_column(rr->streams, "consecutive", INT4OID);
	rr->s_paused = mlma_key_reader_column(rr->streams, "paused", BOOLOID);
	rr->s_reference_policy = mlma_key_reader_column(rr->streams, "reference_policy", TEXTOID);
	rr->st_streak = mlma_key_reader_column(rr->state, "streak", INT4OID);
	rr->b_model_version = mlma_key_reader_column(rr->batches, "model_version", TEXTOID);
	rr->b_version_no = mlma_key_reader_column(rr->batches, "version_no", INT4OID);
	rr->b_losses = mlma_key_reader_column(rr->batches, "losses", FLOAT8ARRAYOID);
	rr->b_first_seq = mlma_key_reader_column(rr->batches, "first_seq", INT8OID);
	rr->b_benchmark_losses = mlma_key_reader_column(rr->batches, "benchmark_losses", FLOAT8ARRAYOID);
	rr->r_version_no = mlma_key_reader_column(rr->refs, "version_no", INT4OID);
	rr->r_losses = mlma_key_reader_column(rr->refs, "losses", FLOAT8ARRAYOID);
	rr->r_seqs = mlma_key_reader_column(rr->refs, "seqs", INT8ARRAYOID);
	rr->r_reference_id = mlma_key_reader_column(rr->refs, "reference_id", INT8OID);
	rr->r_built_at = mlma_key_reader_column(rr->refs, "built_at", TIMESTAMPTZOID);
	if (rr->s_model_version == InvalidAttrNumber || rr->s_method == InvalidAttrNumber ||
		rr->s_alpha == InvalidAttrNumber || rr->s_season_length == InvalidAttrNumber ||
		rr->s_min_effect == InvalidAttrNumber || rr->s_consecutive == InvalidAttrNumber ||
		rr->s_paused == InvalidAttrNumber || rr->s_reference_policy == InvalidAttrNumber ||
		rr->st_streak == InvalidAttrNumber || rr->b_model_version == InvalidAttrNumber ||
		rr->b_version_no == InvalidAttrNumber || rr->b_losses == InvalidAttrNumber ||
		rr->b_first_seq == InvalidAttrNumber || rr->b_benchmark_losses == InvalidAttrNumber ||
		rr->r_version_no == InvalidAttrNumber || rr->r_losses == InvalidAttrNumber ||
		rr->r_seqs == InvalidAttrNumber || rr->r_reference_id == InvalidAttrNumber ||
		rr->r_built_at == InvalidAttrNumber)
	{
		CloseReaders(rr);
		return false;
	}
	return true;
}

/* column att of the slot (valid until the slot's next row) */
static inline Datum
Col(TupleTableSlot *slot, AttrNumber att, bool *isnull)
{
	*isnull = slot->tts_isnull[att - 1];
	return slot->tts_values[att - 1];
}

/* a text column as a C string ("" when NULL: an unknown method, no test) */
static char *
ColText(TupleTableSlot *slot, AttrNumber att)
{
	bool		isnull;
	Datum		d = Col(slot, att, &isnull);

	return isnull ? pstrdup("") : TextDatumGetCString(d);
}

static const void *
ColArray(TupleTableSlot *slot, AttrNumber att, int *n)
{
	bool		isnull;
	Datum		d = Col(slot, att, &isnull);

	return mlma_array_values(d, isnull, n);
}

/* the settings of a streams row (strings in the current memory context) */
static void
ReadStreamRow(const RoundReaders *rr, TupleTableSlot *s, StreamRead *out)
{
	bool		isnull;
	char	   *policy;

	out->found = true;
	out->method = ColText(s, rr->s_method);
	out->model_version = ColText(s, rr->s_model_version);
	out->alpha = DatumGetFloat8(Col(s, rr->s_alpha, &isnull));
	out->season = DatumGetInt32(Col(s, rr->s_season_length, &isnull));
	if (isnull)
		out->season = 0;
	out->min_effect = DatumGetFloat8(Col(s, rr->s_min_effect, &isnull));
	out->consecutive = DatumGetInt32(Col(s, rr->s_consecutive, &isnull));
	out->paused = DatumGetBool(Col(s, rr->s_paused, &isnull));
	policy = ColText(s, rr->s_reference_policy);
	out->rolling = strcmp(policy, "rolling") == 0;
	out->benchmark = strcmp(policy, "benchmark") == 0;
	pfree(policy);
}

/* the streak of a stream_state row */
static void
ReadStateRow(const RoundReaders *rr, TupleTableSlot *st, StreamRead *out)
{
	bool		isnull;

	out->has_state = true;
	out->streak = DatumGetInt32(Col(st, rr->st_streak, &isnull));
}

/* what a sweep of streams or stream_state reads into: one StreamRead per stream */
typedef struct SweepTarget
{
	const RoundReaders *rr;
	StreamRead *reads;
	const char *method;			/* the last stream's strings: most streams */
	const char *model_version;	/* share them, and then share the copy */
} SweepTarget;

/* s, or *last when s equals it (s freed); *last becomes the answer */
static char *
Shared(char *s, const char **last)
{
	if (*last != NULL && strcmp(s, *last) == 0)
	{
		pfree(s);
		return unconstify(char *, *last);
	}
	*last = s;
	return s;
}

static void
SweepStream(void *arg, int k, TupleTableSlot *slot)
{
	SweepTarget *t = arg;
	StreamRead *sr = &t->reads[k];

	ReadStreamRow(t->rr, slot, sr);
	sr->method = Shared(sr->method, &t->method);
	sr->model_version = Shared(sr->model_version, &t->model_version);
}

static void
SweepState(void *arg, int k, TupleTableSlot *slot)
{
	SweepTarget *t = arg;

	ReadStateRow(t->rr, slot, &t->reads[k]);
}

/*
 * SweepStreams
 *		When the round's nstreams streams (stream_ids, ascending) are a
 *		large share of the fleet, their streams and stream_state rows read
 *		with one scan of each table (mlma_key_reader_sweep) instead of a
 *		search per stream, into a StreamRead each (made in the current
 *		memory context); NULL when the searches are cheaper.  A stream
 *		without a row keeps found / has_state false.
 */
static StreamRead *
SweepStreams(const RoundReaders *rr, const int64 *stream_ids, int nstreams)
{
	SweepTarget t;
	AttrNumber	natts = 0;
	AttrNumber	atts[8] = {rr->s_model_version, rr->s_method, rr->s_alpha,
		rr->s_season_length, rr->s_min_effect, rr->s_consecutive, rr->s_paused,
	rr->s_reference_policy};
	int			a;

	for (a = 0; a < lengthof(atts); a++)
		natts = Max(natts, atts[a]);
	t.rr = rr;
	t.method = NULL;
	t.model_version = NULL;
	t.reads = palloc0(sizeof(StreamRead) * Max(nstreams, 1));
	if (!mlma_key_reader_sweep(rr->streams, stream_ids, nstreams, natts,
							   SweepStream, &t))
	{
		pfree(t.reads);
		return NULL;
	}
	if (!mlma_key_reader_sweep(rr->state, stream_ids, nstreams, rr->st_streak,
							   SweepState, &t))
	{
		/* the state rows by key instead (the tables differ in size) */
		int			k;

		for (k = 0; k < nstreams; k++)
		{
			TupleTableSlot *st;

			if (!t.reads[k].found)
				continue;
			st = mlma_key_reader_seek(rr->state, stream_ids[k]);
			if (st != NULL)
				ReadStateRow(rr, st, &t.reads[k]);
		}
	}
	return t.reads;
}

/*
 * EvaluateDirect
 *		Reads what chunk_query reads for d with the readers (the same
 *		joins: no stream or state row, no check; no batch, or no reference
 *		of the batch's model version unless the stream tests against its
 *		benchmark, skipped) and evaluates it.  swept: the stream's settings
 *		and streak when SweepStreams read them (else NULL: read here);
 *		ref_given: ref is the stream's reference_batches row (NULL: none),
 *		as a sweep of that table passes it (else it is read here).
 *		What is read and detoasted goes into the current memory context.
 */
static void
EvaluateDirect(RoundReaders *rr, DueCheck *d, const StreamRead *swept,
			   bool ref_given, TupleTableSlot *ref, MemoryContext round_cxt)
{
	StreamRead	sr;
	TupleTableSlot *b;
	TupleTableSlot *r;
	CheckInput	in;
	bool		isnull;
	int32		version_no = 0;

	if (swept == NULL)
	{
		TupleTableSlot *s = mlma_key_reader_seek(rr->streams, d->stream_id);
		TupleTableSlot *st;

		memset(&sr, 0, sizeof(sr));
		if (s != NULL)
			ReadStreamRow(rr, s, &sr);
		st = s != NULL ? mlma_key_reader_seek(rr->state, d->stream_id) : NULL;
		if (st != NULL)
			ReadStateRow(rr, st, &sr);
		swept = &sr;
	}
	if (!swept->found || !swept->has_state)
		return;
	in.st = *swept;

	in.model_version = swept->model_version;
	in.cur = NULL;
	in.ncur = 0;
	in.first_seq = 0;
	in.bench = NULL;
	b = mlma_key_reader_find(rr->batches, d->stream_id, d->batch_no);
	if (b != NULL)
	{
		Datum		bd;

		in.model_version = ColText(b, rr->b_model_version);
		version_no = DatumGetInt32(Col(b, rr->b_version_no, &isnull));
		in.cur = ColArray(b, rr->b_losses, &in.ncur);
		in.first_seq = DatumGetInt64(Col(b, rr->b_first_seq, &isnull));
		bd = Col(b, rr->b_benchmark_losses, &isnull);
		in.bench = isnull ? NULL : DatumGetArrayTypeP(bd);
	}
	in.ref = NULL;
	in.nref = 0;
	in.ref_seqs = NULL;
	in.nseq = 0;
	r = b == NULL ? NULL : ref_given ? ref : mlma_key_reader_seek(rr->refs, d->stream_id);
	d->ref_id = 0;
	if (r != NULL)
	{
		/* what LiveReferenceId finds, unless the reference is this transaction's */
		bool		id_null;
		bool		built_null;
		int64		id = DatumGetInt64(Col(r, rr->r_reference_id, &id_null));
		TimestampTz built = DatumGetTimestampTz(Col(r, rr->r_built_at, &built_null));

		if (!id_null && !built_null && built < GetCurrentTransactionStartTimestamp())
			d->ref_id = id;
	}
	if (r != NULL && DatumGetInt32(Col(r, rr->r_version_no, &isnull)) == version_no)
	{
		in.ref = ColArray(r, rr->r_losses, &in.nref);
		in.ref_seqs = ColArray(r, rr->r_seqs, &in.nseq);
	}
	in.skip = b == NULL || (in.ref == NULL && !in.st.benchmark);
	Evaluate(d, &in, round_cxt);
}

/* a round that evaluates its checks as a sweep of reference_batches passes */
typedef struct RefSweep
{
	RoundReaders *rr;
	DueCheck   *due;
	const int  *first;			/* the due checks of stream k: first[k] ..
								 * first[k + 1] - 1 */
	const StreamRead *swept;
	bool	   *done;			/* stream k evaluated */
	MemoryContext round_cxt;
	MemoryContext check_cxt;
} RefSweep;

/* the due checks of stream k, against ref (NULL: the stream has none) */
static void
EvaluateStream(RefSweep *rs, int k, TupleTableSlot *ref)
{
	int			i;

	for (i = rs->first[k]; i < rs->first[k + 1]; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(rs->check_cxt);

		EvaluateDirect(rs->rr, &rs->due[i], &rs->swept[k], true, ref, rs->round_cxt);
		MemoryContextSwitchTo(old);
		MemoryContextReset(rs->check_cxt);
	}
	rs->done[k] = true;
}

static void
SweepRef(void *arg, int k, TupleTableSlot *slot)
{
	EvaluateStream((RefSweep *) arg, k, slot);
}

/*
 * EvaluateSwept
 *		Evaluates the round's due checks (sorted) of the nids streams ids,
 *		whose settings SweepStreams read into swept, as one scan of
 *		reference_batches passes each stream's reference (the streams
 *		without one after it).  False, nothing evaluated, when that scan is
 *		not cheaper than a search per stream.
 */
static bool
EvaluateSwept(RoundReaders *rr, DueCheck *due, uint64 ndue, const int64 *ids,
			  int nids, const StreamRead *swept, MemoryContext round_cxt,
			  MemoryContext check_cxt)
{
	RefSweep	rs;
	int		   *first = palloc(sizeof(int) * (nids + 1));
	AttrNumber	natts = 0;
	AttrNumber	atts[5] = {rr->r_version_no, rr->r_losses, rr->r_seqs,
	rr->r_reference_id, rr->r_built_at};
	uint64		i;
	int			k = 0;
	int			a;

	for (a = 0; a < lengthof(atts); a++)
		natts = Max(natts, atts[a]);
	for (i = 0; i < ndue; i++)
		if (i == 0 || due[i].stream_id != due[i - 1].stream_id)
			first[k++] = (int) i;
	first[k] = (int) ndue;
	Assert(k == nids);
	rs.rr = rr;
	rs.due = due;
	rs.first = first;
	rs.swept = swept;
	rs.done = palloc0(sizeof(bool) * Max(nids, 1));
	rs.round_cxt = round_cxt;
	rs.check_cxt = check_cxt;
	if (!mlma_key_reader_sweep(rr->refs, ids, nids, natts, SweepRef, &rs))
	{
		pfree(first);
		pfree(rs.done);
		return false;
	}
	for (k = 0; k < nids; k++)
		if (!rs.done[k])
			EvaluateStream(&rs, k, NULL);
	pfree(first);
	pfree(rs.done);
	return true;
}

/*
 * DecideBatch
 *		The decision for one batch from the stream's streak before it: the
 *		whole rule in one place (it is mlma_decide() of the numeric core in
 *		one call): significant when the adjusted p-value is at most fdr and
 *		the effect at least min_effect (NaN: not significant), the streak
 *		grows with each significant batch and falls to 0 otherwise, drift
 *		when significant with a streak of at least `consecutive`.
 */
static void
DecideBatch(DueCheck *d, double fdr, int32 *streak)
{
	MlmaDecision dec = mlma_decide(d->p_adjusted, fdr, d->ev.effect,
								   d->min_effect, *streak, d->consecutive);

	*streak = dec.streak;
	d->significant = dec.significant;
	d->drift = dec.drift;
}

/*
 * Decide
 *		The decisions of the round in batch order per stream, from each
 *		stream's streak before the round (start).  Leaves in streaks the
 *		streak after the round.
 */
static void
Decide(DueCheck *due, uint64 ndue, const int64 *stream_ids,
	   const int32 *start, int32 *streaks, double fdr)
{
	uint64		i;
	int			k = 0;

	for (i = 0; i < ndue; i++)
	{
		DueCheck   *d = &due[i];

		if (i == 0 || d->stream_id != due[i - 1].stream_id)
		{
			while (stream_ids[k] != d->stream_id)
				k++;
			streaks[k] = start[k];
		}
		if (!d->found || d->skip || d->excluded)
			continue;
		DecideBatch(d, fdr, &streaks[k]);
	}
}

/* most stream locks one round may hold */
static int
LockBudget(void)
{
	/* writer locks are row locks: they take nothing from the lock table */
	return mlma_round_max_locks > 0 ? mlma_round_max_locks : INT_MAX;
}

/*
 * InsertChecks
 *		One INSERT per chunk of the finished checks; sets their check_id.
 */
static void
InsertChecks(DueCheck *due, uint64 ndue, const char *schema, double fdr)
{
	char	   *sql = ExtQuery(insert_checks_query, schema);
	Oid			types[19] = {INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
		TEXTARRAYOID, FLOAT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, INT4ARRAYOID,
		FLOAT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID,
		FLOAT8ARRAYOID, FLOAT8ARRAYOID, BOOLARRAYOID, BOOLARRAYOID,
	TIMESTAMPTZARRAYOID, TEXTARRAYOID, FLOAT8OID};
	Oid			elemtypes[18] = {INT8OID, TEXTOID, INT4OID, TEXTOID, FLOAT8OID,
		TEXTOID, INT4OID, INT4OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID,
	FLOAT8OID, FLOAT8OID, BOOLOID, BOOLOID, TIMESTAMPTZOID, TEXTOID};
	Datum	   *cols[18];
	bool	   *nulls[18];
	Datum		args[19];
	uint64		i = 0;
	int			c;
	MemoryContext chunk_cxt;
	MemoryContext old;

	chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "mlma round insert",
									  ALLOCSET_DEFAULT_SIZES);
	for (c = 0; c < 18; c++)
	{
		cols[c] = palloc(sizeof(Datum) * CHUNK_SIZE);
		nulls[c] = palloc(sizeof(bool) * CHUNK_SIZE);
	}
	while (i < ndue)
	{
		int			n = 0;
		uint64		r;

		old = MemoryContextSwitchTo(chunk_cxt);
		for (; i < ndue && n < CHUNK_SIZE; i++)
		{
			DueCheck   *d = &due[i];
			bool		tested = !d->skip;
			bool		failed = d->note != NULL;

			if (!d->found || d->excluded)
				continue;
			for (c = 0; c < 18; c++)
				nulls[c][n] = false;
			cols[0][n] = Int64GetDatum(d->stream_id);
			cols[1][n] = CStringGetTextDatum(d->model_version);
			cols[2][n] = Int32GetDatum(d->batch_no);
			cols[3][n] = CStringGetTextDatum(d->method);
			cols[4][n] = Float8GetDatum(d->alpha);
			cols[5][n] = CStringGetTextDatum(tested ? "done" : "skipped");
			cols[6][n] = Int32GetDatum(d->ev.n_reference);
			cols[7][n] = Int32GetDatum(d->ev.n_current);
			cols[8][n] = Float8GetDatum(d->ev.reference_mean);
			cols[9][n] = Float8GetDatum(d->ev.batch_mean);
			cols[10][n] = Float8GetDatum(d->ev.statistic);
			cols[11][n] = Float8GetDatum(d->ev.p_value);
			cols[12][n] = Float8GetDatum(d->p_adjusted);
			cols[13][n] = Float8GetDatum(d->ev.effect);
			cols[14][n] = BoolGetDatum(d->significant);
			cols[15][n] = BoolGetDatum(d->drift);
			cols[16][n] = TimestampTzGetDatum(d->queued_at);
			cols[17][n] = d->note ? CStringGetTextDatum(d->note) : (Datum) 0;
			nulls[17][n] = d->note == NULL;
			if (!tested)
				for (c = 6; c <= 15; c++)
					nulls[c][n] = true;
			else if (failed)
			{
				nulls[8][n] = nulls[9][n] = true;	/* means */
				nulls[10][n] = nulls[13][n] = true; /* statistic, effect */
			}
			n++;
		}
		if (n > 0)
		{
			for (c = 0; c < 18; c++)
				args[c] = mlma_array_datum(cols[c], nulls[c], n, elemtypes[c]);
			MemoryContextSwitchTo(old);
			args[18] = Float8GetDatum(fdr);	/* the round's threshold */
			ExecOrError(sql, 19, types, args, SPI_OK_INSERT_RETURNING);
			for (r = 0; r < SPI_processed; r++)
			{
				HeapTuple	tup = SPI_tuptable->vals[r];
				TupleDesc	desc = SPI_tuptable->tupdesc;
				DueCheck   *d = FindDue(due, ndue, mlma_spi_int64(tup, desc, 2),
										mlma_spi_int32(tup, desc, 3));

				if (d != NULL)
					d->check_id = mlma_spi_int64(tup, desc, 1);
			}
			SPI_freetuptable(SPI_tuptable);
		}
		else
			MemoryContextSwitchTo(old);
		MemoryContextReset(chunk_cxt);
	}
	MemoryContextDelete(chunk_cxt);
}

/* the columns of mlma.checks, as InsertChecksDirect fills them */
static const char *const check_columns[] = {
	"check_id", "stream_id", "model_version", "batch_no", "method", "alpha",
	"check_mode", "status", "n_reference", "n_current", "reference_mean",
	"batch_mean", "statistic", "p_value", "p_adjusted", "effect", "significant",
	"drift", "created_at", "checked_at", "note", "reference_id", "threshold"
};
#define NCHECK_COLUMNS lengthof(check_columns)

static const Oid check_column_types[NCHECK_COLUMNS] = {
	INT8OID, INT8OID, TEXTOID, INT4OID, TEXTOID, FLOAT8OID,
	TEXTOID, TEXTOID, INT4OID, INT4OID, FLOAT8OID,
	FLOAT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID, BOOLOID,
	BOOLOID, TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID, INT8OID, FLOAT8OID
};

/*
 * LiveReferenceId
 *		What insert_checks_query computes for a check's reference_id: the
 *		stream's newest reference_history row built before this transaction
 *		started (0: none).
 */
static int64
LiveReferenceId(MlmaKeyReader *history, AttrNumber id_col, AttrNumber built_col,
				int64 stream_id, TimestampTz now)
{
	TupleTableSlot *h;

	for (h = mlma_key_reader_last(history, stream_id); h != NULL;
		 h = mlma_key_reader_next(history, BackwardScanDirection))
	{
		if (h->tts_isnull[built_col - 1] || h->tts_isnull[id_col - 1])
			continue;
		if (DatumGetTimestampTz(h->tts_values[built_col - 1]) < now)
			return DatumGetInt64(h->tts_values[id_col - 1]);
	}
	return 0;
}

/*
 * InsertChecksDirect
 *		The same rows as InsertChecks, written through a row writer (ids
 *		from the table's sequence, the reference_id read by primary key),
 *		and put into rows too when it is given.  False when nothing was
 *		written: the caller uses SQL.
 */
static bool
InsertChecksDirect(DueCheck *due, uint64 ndue, double fdr, Snapshot snap,
				   Tuplestorestate *rows, TupleDesc desc)
{
	MlmaRowWriter *w;
	MlmaKeyReader *history;
	AttrNumber	att[NCHECK_COLUMNS];
	AttrNumber	hist_id;
	AttrNumber	hist_built;
	Oid			seq;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	MemoryContext cxt;
	MemoryContext old;
	int64		ref_for = -1;
	int64		ref_id = 0;
	MlmaTextMemo version_text = {NULL};
	MlmaTextMemo method_text = {NULL};
	MlmaTextMemo mode_text = {NULL};
	MlmaTextMemo status_text = {NULL};
	uint64		i;
	int			c;

	history = mlma_key_reader_open("reference_history", NULL, snap);
	if (history == NULL)
		return false;
	hist_id = mlma_key_reader_column(history, "reference_id", INT8OID);
	hist_built = mlma_key_reader_column(history, "built_at", TIMESTAMPTZOID);
	w = hist_id != InvalidAttrNumber && hist_built != InvalidAttrNumber
		? mlma_row_writer_open("checks", check_columns, NCHECK_COLUMNS) : NULL;
	if (w == NULL)
	{
		mlma_key_reader_close(history);
		return false;
	}
	seq = mlma_row_writer_sequence(w);
	for (c = 0; c < (int) NCHECK_COLUMNS; c++)
		att[c] = mlma_row_writer_column(w, check_columns[c], check_column_types[c]);
	for (c = 0; c < (int) NCHECK_COLUMNS; c++)
		if (att[c] == InvalidAttrNumber)
			break;
	if (!OidIsValid(seq) || c < (int) NCHECK_COLUMNS ||
		(rows != NULL && !mlma_row_writer_fits(w, desc)))
	{
		/* nothing was written yet: closing writes nothing */
		(void) mlma_row_writer_close(w);
		mlma_key_reader_close(history);
		return false;
	}

	cxt = AllocSetContextCreate(CurrentMemoryContext, "mlma round checks",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	for (i = 0; i < ndue; i++)
	{
		DueCheck   *d = &due[i];
		bool		tested = !d->skip;
		bool		failed = d->note != NULL;
		TupleTableSlot *slot;
		Datum	   *v;
		bool	   *nul;

		if (!d->found || d->excluded)
			continue;
		if (d->stream_id != ref_for)
		{
			ref_id = d->ref_id > 0 ? d->ref_id
				: LiveReferenceId(history, hist_id, hist_built, d->stream_id, now);
			ref_for = d->stream_id;
		}
		d->check_id = nextval_internal(seq, true);
		slot = mlma_row_writer_row(w);
		v = slot->tts_values;
		nul = slot->tts_isnull;
#define SET(col, datum) (v[att[col] - 1] = (datum), nul[att[col] - 1] = false)
		SET(0, Int64GetDatum(d->check_id));
		SET(1, Int64GetDatum(d->stream_id));
		/* text values: made once for the rows that share them */
		SET(2, mlma_text_of(&version_text, d->model_version));
		SET(3, Int32GetDatum(d->batch_no));
		SET(4, mlma_text_of(&method_text, d->method));
		SET(5, Float8GetDatum(d->alpha));
		SET(6, mlma_text_of(&mode_text, "scheduled"));
		SET(7, mlma_text_of(&status_text, tested ? "done" : "skipped"));
		if (tested)
		{
			SET(8, Int32GetDatum(d->ev.n_reference));
			SET(9, Int32GetDatum(d->ev.n_current));
			if (!failed)
			{
				SET(10, Float8GetDatum(d->ev.reference_mean));
				SET(11, Float8GetDatum(d->ev.batch_mean));
				SET(12, Float8GetDatum(d->ev.statistic));
				SET(15, Float8GetDatum(d->ev.effect));
			}
			SET(13, Float8GetDatum(d->ev.p_value));
			SET(14, Float8GetDatum(d->p_adjusted));
			SET(16, BoolGetDatum(d->significant));
			SET(17, BoolGetDatum(d->drift));
			SET(22, Float8GetDatum(fdr));	/* the round's threshold */
		}
		SET(18, TimestampTzGetDatum(d->queued_at));
		SET(19, TimestampTzGetDatum(now));
		if (d->note != NULL)
			SET(20, CStringGetTextDatum(d->note));
		if (ref_id != 0)
			SET(21, Int64GetDatum(ref_id));
#undef SET
		if (rows != NULL)
			tuplestore_putvalues(rows, desc, v, nul);
		mlma_row_writer_add(w);
	}
	MemoryContextSwitchTo(old);
	(void) mlma_row_writer_close(w);
	mlma_key_reader_close(history);
	MemoryContextDelete(cxt);
	return true;
}

/*
 * RunRound
 *		One scheduled round at level fdr.  Returns the ids of the checks it
 *		recorded (done or skipped) as an int8[] made in the caller's memory
 *		context; with rows, it also puts the recorded checks, in check_id
 *		order, into rows (of desc, mlma.checks' row type).
 */
static ArrayType *
RunRound(double fdr, const char *schema, Tuplestorestate *rows, TupleDesc desc)
{
	TimestampTz started_at = GetCurrentTimestamp();
	DueCheck   *due;
	uint64		ndue;
	uint64		i;
	int			nstreams = 0;
	int64	   *stream_ids;
	int32	   *streaks;
	int32	   *old_streaks;
	double	   *pvals;
	int			ntested;
	int			nflags = 0;
	int			ndeferred = 0;
	int			nrecorded = 0;
	Datum	   *result;
	int			nresult = 0;
	ArrayType  *result_array;
	MemoryContext caller_cxt = CurrentMemoryContext;
	MemoryContext round_cxt;
	RoundReaders readers;
	Snapshot	snap;
	bool		rows_put = false;
	instr_time	t0;
	instr_time	t;
	double		ms[6] = {0};
	const char *reads = "with SQL";	/* how the checks' rows were read */

	if (isnan(fdr) || fdr <= 0.0 || fdr >= 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fdr must be between 0 and 1 (exclusive), got %g", fdr)));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "mlma: SPI_connect failed");
	round_cxt = CurrentMemoryContext;

	INSTR_TIME_SET_CURRENT(t0);

	/*
	 * 1. drain the queue: through its primary key, in order, else with
	 * drain_query (sorted here)
	 */
	{
		MlmaQueued *taken;
		int64		ntaken = mlma_take_queue((int64) mlma_round_size, &taken);

		if (ntaken >= 0)
		{
			ndue = (uint64) ntaken;
			due = palloc0(sizeof(DueCheck) * Max(ndue, 1));
			for (i = 0; i < ndue; i++)
			{
				due[i].stream_id = taken[i].stream_id;
				due[i].batch_no = taken[i].batch_no;
				due[i].queued_at = taken[i].queued_at;
			}
			pfree(taken);
		}
		else
		{
			Oid			types[1] = {INT8OID};
			Datum		args[1];

			args[0] = Int64GetDatum((int64) mlma_round_size);
			ExecOrError(ExtQuery(drain_query, schema), 1, types, args,
						SPI_OK_DELETE_RETURNING);
			ndue = SPI_processed;
			due = palloc0(sizeof(DueCheck) * Max(ndue, 1));
			for (i = 0; i < ndue; i++)
			{
				HeapTuple	tup = SPI_tuptable->vals[i];
				TupleDesc	desc = SPI_tuptable->tupdesc;
				bool		isnull;

				due[i].stream_id = mlma_spi_int64(tup, desc, 1);
				due[i].batch_no = mlma_spi_int32(tup, desc, 2);
				due[i].queued_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
			}
			SPI_freetuptable(SPI_tuptable);
			if (ndue > 1)
				qsort(due, ndue, sizeof(DueCheck), CompareDue);
		}
	}
	INSTR_TIME_SET_CURRENT(t);
	INSTR_TIME_SUBTRACT(t, t0);
	ms[0] = INSTR_TIME_GET_MILLISEC(t);

	/* the streams of the round, in stream_id order (due is sorted) */
	stream_ids = palloc(sizeof(int64) * Max(ndue, 1));
	streaks = palloc0(sizeof(int32) * Max(ndue, 1));
	old_streaks = palloc0(sizeof(int32) * Max(ndue, 1));
	for (i = 0; i < ndue; i++)
		if (nstreams == 0 || stream_ids[nstreams - 1] != due[i].stream_id)
			stream_ids[nstreams++] = due[i].stream_id;

	/*
	 * 2. read and evaluate: through the primary keys (a new snapshot, as a
	 * statement would take), else with chunk_query, chunk by chunk
	 */
	CommandCounterIncrement();
	snap = RegisterSnapshot(GetTransactionSnapshot());
	if (ndue > 0 && OpenReaders(&readers, snap))
	{
		MemoryContext check_cxt = AllocSetContextCreate(round_cxt, "mlma round check",
														ALLOCSET_DEFAULT_SIZES);
		MemoryContext old;
		StreamRead *swept;
		int			k = 0;

		/* a fleet-wide round reads the settings and streaks in one scan */
		swept = SweepStreams(&readers, stream_ids, nstreams);
		reads = swept == NULL ? "by key" : "settings by scan, references by key";
		if (swept != NULL &&
			EvaluateSwept(&readers, due, ndue, stream_ids, nstreams, swept,
						  round_cxt, check_cxt))
			reads = "settings and references by scan";
		else
		{
			old = MemoryContextSwitchTo(check_cxt);
			for (i = 0; i < ndue; i++)
			{
				while (stream_ids[k] != due[i].stream_id)
					k++;
				EvaluateDirect(&readers, &due[i], swept != NULL ? &swept[k] : NULL,
							   false, NULL, round_cxt);
				MemoryContextReset(check_cxt);
			}
			MemoryContextSwitchTo(old);
		}
		MemoryContextDelete(check_cxt);
		CloseReaders(&readers);
	}
	else
	{
		char	   *sql = ExtQuery(chunk_query, schema);
		MemoryContext chunk_cxt = AllocSetContextCreate(round_cxt, "mlma round chunk",
														ALLOCSET_DEFAULT_SIZES);
		Datum	   *sids = palloc(sizeof(Datum) * CHUNK_SIZE);
		Datum	   *bnos = palloc(sizeof(Datum) * CHUNK_SIZE);
		uint64		base;

		for (base = 0; base < ndue; base += CHUNK_SIZE)
		{
			int			n = (int) Min((uint64) CHUNK_SIZE, ndue - base);
			Oid			types[2] = {INT8ARRAYOID, INT4ARRAYOID};
			Datum		args[2];
			uint64		r;
			int			j;
			MemoryContext old;

			for (j = 0; j < n; j++)
			{
				sids[j] = Int64GetDatum(due[base + j].stream_id);
				bnos[j] = Int32GetDatum(due[base + j].batch_no);
			}
			old = MemoryContextSwitchTo(chunk_cxt);
			args[0] = mlma_array_datum(sids, NULL, n, INT8OID);
			args[1] = mlma_array_datum(bnos, NULL, n, INT4OID);
			MemoryContextSwitchTo(old);
			ExecOrError(sql, 2, types, args, SPI_OK_SELECT);
			old = MemoryContextSwitchTo(chunk_cxt);
			for (r = 0; r < SPI_processed; r++)
			{
				HeapTuple	tup = SPI_tuptable->vals[r];
				int64		ord = mlma_spi_int64(tup, SPI_tuptable->tupdesc, 1);

				if (ord >= 1 && ord <= n)
					EvaluateRow(&due[base + ord - 1], tup, SPI_tuptable->tupdesc,
								round_cxt);
			}
			MemoryContextSwitchTo(old);
			SPI_freetuptable(SPI_tuptable);
			MemoryContextReset(chunk_cxt);
		}
		MemoryContextDelete(chunk_cxt);
	}
	UnregisterSnapshot(snap);
	INSTR_TIME_SET_CURRENT(t);
	INSTR_TIME_SUBTRACT(t, t0);
	ms[1] = INSTR_TIME_GET_MILLISEC(t);

	/* each stream's streak before the round, as its first check read it */
	{
		int			k = -1;

		for (i = 0; i < ndue; i++)
			if (i == 0 || due[i].stream_id != due[i - 1].stream_id)
				old_streaks[++k] = due[i].streak;
	}

	/*
	 * 3. Benjamini-Hochberg over every batch tested in the round (not the
	 * skipped or failed ones), then decide in order
	 */
	pvals = palloc(sizeof(double) * Max(ndue, 1));
	ntested = 0;
	for (i = 0; i < ndue; i++)
		if (due[i].found && !due[i].skip && due[i].note == NULL)
			pvals[ntested++] = due[i].ev.p_value;
	if (ntested > 0 && mlma_bh_adjust(pvals, ntested, pvals) != MLMA_OK)
		elog(ERROR, "mlma: Benjamini-Hochberg adjustment failed");
	{
		int			t = 0;

		for (i = 0; i < ndue; i++)
			if (due[i].found && !due[i].skip)
				due[i].p_adjusted = due[i].note == NULL ? pvals[t++] : 1.0;
	}
	Decide(due, ndue, stream_ids, old_streaks, streaks, fdr);

	/*
	 * 4. The writer lock of every stream whose state changes, without
	 * waiting and within the lock budget; busy streams are left for the next
	 * round.  Under the lock the streak is read again and the decisions are
	 * made anew.
	 */
	if (nstreams > 0)
	{
		/* per stream: 0 = no lock needed, 1 = locked, 2 = busy */
		char	   *lockstate = palloc0(sizeof(char) * nstreams);
		Datum	   *locked = palloc(sizeof(Datum) * nstreams);
		int			nlocked = 0;
		bool		streaks_read = false;
		int			budget = LockBudget();
		int			k = 0;

		for (i = 0; i < ndue; i++)
		{
			DueCheck   *d = &due[i];

			while (stream_ids[k] != d->stream_id)
				k++;
			if (d->found && !d->skip &&
				(d->significant || (d->rolling && d->note == NULL)))
				lockstate[k] = 1;
		}
		{
			/* the streams to lock, in stream_id order: directly, else one by one */
			int64	   *want = palloc(sizeof(int64) * nstreams);
			bool	   *got = palloc(sizeof(bool) * nstreams);
			int			nwant = 0;
			int			w = 0;

			for (k = 0; k < nstreams; k++)
			{
				if (streaks[k] != old_streaks[k])
					lockstate[k] = 1;
				if (lockstate[k] == 1)
					want[nwant++] = stream_ids[k];
			}
			if (mlma_lock_streams(want, nwant, budget, LockWaitSkip, got) < 0)
			{
				int			held = 0;

				for (w = 0; w < nwant; w++)
				{
					got[w] = held < budget && mlma_try_lock_stream(want[w]);
					if (got[w])
						held++;
				}
				w = 0;
			}
			for (k = 0; k < nstreams; k++)
			{
				if (lockstate[k] == 0)
					continue;
				if (got[w++])
					locked[nlocked++] = Int64GetDatum(stream_ids[k]);
				else
					lockstate[k] = 2;
			}
		}
		k = 0;
		for (i = 0; i < ndue; i++)
		{
			while (stream_ids[k] != due[i].stream_id)
				k++;
			due[i].excluded = (lockstate[k] == 2);
		}
		if (nlocked > 0)
		{
			Snapshot	lsnap;
			MlmaKeyReader *st;
			AttrNumber	st_streak = InvalidAttrNumber;

			/* a new snapshot under the locks: by primary key, else with SQL */
			CommandCounterIncrement();
			lsnap = RegisterSnapshot(GetTransactionSnapshot());
			st = mlma_key_reader_open("stream_state", NULL, lsnap);
			if (st != NULL)
				st_streak = mlma_key_reader_column(st, "streak", INT4OID);
			if (st_streak != InvalidAttrNumber)
			{
				/* both lists are sorted by stream_id: merge */
				k = 0;
				for (i = 0; i < (uint64) nlocked; i++)
				{
					int64		sid = DatumGetInt64(locked[i]);
					TupleTableSlot *slot = mlma_key_reader_seek(st, sid);
					bool		isnull;

					while (k < nstreams && stream_ids[k] < sid)
						k++;
					if (slot != NULL && k < nstreams && stream_ids[k] == sid)
					{
						Datum		d = Col(slot, st_streak, &isnull);

						old_streaks[k] = isnull ? 0 : DatumGetInt32(d);
					}
				}
				streaks_read = true;
			}
			mlma_key_reader_close(st);
			UnregisterSnapshot(lsnap);
		}
		if (nlocked > 0 && !streaks_read)
		{
			Oid			argtypes[1] = {INT8ARRAYOID};
			Datum		args[1];

			args[0] = mlma_array_datum(locked, NULL, nlocked, INT8OID);
			ExecOrError(ExtQuery(streak_query, schema), 1, argtypes, args,
						SPI_OK_SELECT);
			/* both lists are sorted by stream_id: merge */
			k = 0;
			for (i = 0; i < SPI_processed; i++)
			{
				int64		sid = mlma_spi_int64(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

				while (k < nstreams && stream_ids[k] < sid)
					k++;
				if (k < nstreams && stream_ids[k] == sid)
					old_streaks[k] = mlma_spi_int32(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 2);
			}
			SPI_freetuptable(SPI_tuptable);
		}
		/* anew, also when only busy streams were left out */
		Decide(due, ndue, stream_ids, old_streaks, streaks, fdr);
	}

	INSTR_TIME_SET_CURRENT(t);
	INSTR_TIME_SUBTRACT(t, t0);
	ms[2] = INSTR_TIME_GET_MILLISEC(t);

	/* 5. write: the checks, then the deferred batches back into the queue */
	snap = RegisterSnapshot(GetTransactionSnapshot());
	if (InsertChecksDirect(due, ndue, fdr, snap, rows, desc))
		rows_put = rows != NULL;
	else
		InsertChecks(due, ndue, schema, fdr);
	UnregisterSnapshot(snap);
	INSTR_TIME_SET_CURRENT(t);
	INSTR_TIME_SUBTRACT(t, t0);
	ms[3] = INSTR_TIME_GET_MILLISEC(t);

	{
		Datum	   *sids = palloc(sizeof(Datum) * Max(ndue, 1));
		Datum	   *bnos = palloc(sizeof(Datum) * Max(ndue, 1));
		Datum	   *qs = palloc(sizeof(Datum) * Max(ndue, 1));

		for (i = 0; i < ndue; i++)
		{
			if (!due[i].found)
				continue;
			if (!due[i].excluded)
			{
				nrecorded++;
				continue;
			}
			sids[ndeferred] = Int64GetDatum(due[i].stream_id);
			bnos[ndeferred] = Int32GetDatum(due[i].batch_no);
			qs[ndeferred] = TimestampTzGetDatum(due[i].queued_at);
			ndeferred++;
		}
		if (ndeferred > 0)
		{
			Oid			types[3] = {INT8ARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID};
			Datum		args[3];

			args[0] = mlma_array_datum(sids, NULL, ndeferred, INT8OID);
			args[1] = mlma_array_datum(bnos, NULL, ndeferred, INT4OID);
			args[2] = mlma_array_datum(qs, NULL, ndeferred, TIMESTAMPTZOID);
			ExecOrError(ExtQuery(requeue_query, schema), 3, types, args,
						SPI_OK_INSERT);
		}
	}
	{
		Datum	   *sids = palloc(sizeof(Datum) * Max(nstreams, 1));
		Datum	   *sks = palloc(sizeof(Datum) * Max(nstreams, 1));
		Oid			types[2] = {INT8ARRAYOID, INT4ARRAYOID};
		Datum		args[2];
		int			k;
		int			nchanged = 0;
		static const char *const streak_column[1] = {"streak"};
		static const Oid streak_type[1] = {INT4OID};

		/* only the streaks that changed: most streams stay at 0 */
		for (k = 0; k < nstreams; k++)
		{
			if (streaks[k] == old_streaks[k])
				continue;
			sids[nchanged] = Int64GetDatum(stream_ids[k]);
			sks[nchanged] = Int32GetDatum(streaks[k]);
			nchanged++;
		}
		/* through stream_state's primary key, else with SQL */
		if (nchanged > 0 &&
			!mlma_update_state_rows(nchanged, sids, 1, streak_column, streak_type,
									&sks))
		{
			args[0] = mlma_array_datum(sids, NULL, nchanged, INT8OID);
			args[1] = mlma_array_datum(sks, NULL, nchanged, INT4OID);
			ExecOrError(ExtQuery(update_streaks_query, schema), 2, types, args,
						SPI_OK_UPDATE);
		}
	}

	/*
	 * Requests: one per drifting stream (the first drift of the round), all
	 * in one call.  Then the rolling references, in stream and batch order.
	 */
	{
		Datum	   *sids = palloc(sizeof(Datum) * Max(ndue, 1));
		Datum	   *ps = palloc(sizeof(Datum) * Max(ndue, 1));
		Datum	   *es = palloc(sizeof(Datum) * Max(ndue, 1));
		Datum	   *cids = palloc(sizeof(Datum) * Max(ndue, 1));
		int			nraise = 0;
		int64		raised_for = -1;
		char	   *roll_sql = ExtQuery(roll_query, schema);

		for (i = 0; i < ndue; i++)
		{
			DueCheck   *d = &due[i];

			if (!d->found || d->skip || d->excluded || !d->drift || d->paused ||
				raised_for == d->stream_id)
				continue;
			sids[nraise] = Int64GetDatum(d->stream_id);
			ps[nraise] = Float8GetDatum(d->ev.p_value);
			es[nraise] = Float8GetDatum(d->ev.effect);
			cids[nraise] = Int64GetDatum(d->check_id);
			nraise++;
			raised_for = d->stream_id;
		}
		if (nraise > 0)
			nflags = mlma_raise_drift_requests(sids, ps, es, cids, nraise);

		for (i = 0; i < ndue; i++)
		{
			DueCheck   *d = &due[i];

			if (d->found && !d->skip && !d->excluded && d->note == NULL &&
				!d->significant && d->rolling)
			{
				Oid			types[2] = {INT8OID, INT4OID};
				Datum		args[2];

				args[0] = Int64GetDatum(d->stream_id);
				args[1] = Int32GetDatum(d->batch_no);
				ExecOrError(roll_sql, 2, types, args, SPI_OK_SELECT);
			}
		}
	}

	INSTR_TIME_SET_CURRENT(t);
	INSTR_TIME_SUBTRACT(t, t0);
	ms[4] = INSTR_TIME_GET_MILLISEC(t);

	/* the round, for fleet_status and dashboards */
	{
		Oid			types[4] = {TIMESTAMPTZOID, INT4OID, INT4OID, INT4OID};
		Datum		args[4];

		args[0] = TimestampTzGetDatum(started_at);
		args[1] = Int32GetDatum(nrecorded);
		args[2] = Int32GetDatum(nflags);
		args[3] = Int32GetDatum(ndeferred);
		ExecOrError(ExtQuery(round_query, schema), 4, types, args, SPI_OK_INSERT);
	}

	INSTR_TIME_SET_CURRENT(t);
	INSTR_TIME_SUBTRACT(t, t0);
	ms[5] = INSTR_TIME_GET_MILLISEC(t);

	/* the ids of every recorded check, allocated outside SPI's context */
	{
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

		result = palloc(sizeof(Datum) * Max(ndue, 1));
		for (i = 0; i < ndue; i++)
			if (due[i].found && !due[i].excluded && due[i].check_id != 0)
				result[nresult++] = Int64GetDatum(due[i].check_id);
		if (nresult == 0)
			result_array = construct_empty_array(INT8OID);
		else
			result_array = construct_array(result, nresult, INT8OID, 8,
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
		MemoryContextSwitchTo(spi_cxt);
	}

	/* the rows of the checks, when the inserts did not give them */
	if (rows != NULL && !rows_put && nresult > 0)
	{
		Oid			argtype = INT8ARRAYOID;
		Datum		arg = PointerGetDatum(result_array);
		uint64		r;

		ExecOrError(ExtQuery(checks_rows_query, schema), 1, &argtype, &arg,
					SPI_OK_SELECT);
		for (r = 0; r < SPI_processed; r++)
		{
			Datum	   *values = palloc(sizeof(Datum) * desc->natts);
			bool	   *nulls = palloc(sizeof(bool) * desc->natts);

			heap_deform_tuple(SPI_tuptable->vals[r], SPI_tuptable->tupdesc,
							  values, nulls);
			tuplestore_putvalues(rows, desc, values, nulls);
		}
	}

	elog(DEBUG1, "mlma: round of %llu checks (%d recorded, %d flags, %d deferred): "
		 "drained %.1f ms, evaluated %.1f ms (read %s), decided and locked %.1f ms, "
		 "checks inserted %.1f ms, streaks, requests and references %.1f ms, "
		 "done %.1f ms",
		 (unsigned long long) ndue, nrecorded, nflags, ndeferred,
		 ms[0], ms[1] - ms[0], reads, ms[2] - ms[1], ms[3] - ms[2], ms[4] - ms[3], ms[5]);

	SPI_finish();
	return result_array;
}

/*
 * mlma_run_checks
 *		_run_checks(fdr float8) RETURNS int8[]: one scheduled round; returns
 *		the ids of the checks it recorded (done or skipped).
 */
Datum
mlma_run_checks(PG_FUNCTION_ARGS)
{
	double		fdr = PG_ARGISNULL(0) ? mlma_fdr : PG_GETARG_FLOAT8(0);
	const char *schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));

	PG_RETURN_ARRAYTYPE_P(RunRound(fdr, schema, NULL, NULL));
}

/*
 * mlma_run_checks_rows
 *		run_checks(fdr float8) RETURNS SETOF mlma.checks: the proposed
 *		requests past their stream's approve_after become pending
 *		(mlma._approve_due), then one round; returns the checks it
 *		recorded, in check_id order, as it wrote them.
 */
Datum
mlma_run_checks_rows(PG_FUNCTION_ARGS)
{
	double		fdr = PG_ARGISNULL(0) ? mlma_fdr : PG_GETARG_FLOAT8(0);
	const char *schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "mlma: SPI_connect failed");
	ExecOrError(ExtQuery("SELECT @extschema@._approve_due()", schema), 0, NULL, NULL,
				SPI_OK_SELECT);
	SPI_finish();
	(void) RunRound(fdr, schema, rsinfo->setResult, rsinfo->setDesc);
	return (Datum) 0;
}
