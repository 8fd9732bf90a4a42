/*-------------------------------------------------------------------------
 *
 * ingest_set.c
 *	  Set-based recording of the observations of many streams at once: the
 *	  path of a multi-row statement on an attached table (ingest_bulk.c).
 *
 * A statement of 300 000 rows over 1 000 streams closes about 3 000
 * batches.  Closing each with mlma._close_batch (PL/pgSQL, a dozen
 * statements) would cost far more than the rows themselves, so here the
 * batches the statement fills are closed in C, and every table is written
 * with one statement for all streams:
 *
 *	1. the writer locks of all the streams, in stream_id order, through
 *	   stream_state's primary key (mlma_lock_streams; where the direct path
 *	   cannot be used, one SELECT ... ORDER BY stream_id FOR NO KEY UPDATE):
 *	   the same row lock as mlma_lock_stream, the same order as every other
 *	   set-wise writer;
 *	2. with a new snapshot, taken after the locks (so it sees every writer
 *	   that committed before us): configuration, state, live reference and
 *	   where each open batch stands, read by primary key (read_query where
 *	   the direct path cannot be used);
 *	3. the open observations of the streams whose batch closes now, taken
 *	   out of mlma.open_runs (mlma_direct_take_open, or DELETE ...
 *	   RETURNING);
 *	4. in memory, each stream's observations in order: every batch they
 *	   fill is closed exactly as mlma._close_batch closes it (role, warm-up,
 *	   rolled reference, eager check and decision with mlma_evaluate_losses
 *	   and mlma_decide, or the scheduled queue);
 *	5. one INSERT each for batches, reference_history, checks and
 *	   check_queue, one upsert of reference_batches, the stream_state
 *	   rows updated through their primary key (mlma_update_state_rows; one
 *	   UPDATE where the direct path cannot be used), and one
 *	   mlma_raise_drift_requests (requests.c) for the streams that
 *	   drift (NOTIFY as always, on commit);
 *	6. at the end of the statement, the observations left in open batches:
 *	   one run per stream (mlma.open_runs).
 *
 * A statement read in chunks (mlma.statement_chunk_size) runs steps 1-5
 * per chunk; a stream taken by an earlier chunk is not read again (its
 * state is the one in memory), and its open tail stays in memory until
 * step 6 (or until the tails of all streams exceed twice the chunk size).
 * Observations of batches that close within the statement never touch
 * mlma.open_runs.  Everything runs inside the writer's transaction:
 * a rollback leaves nothing.
 *
 * The row path closes the batch a single observation fills the same way
 * (mlma_close_full_batch): steps 1-5 for one stream, whose open batch is
 * all in mlma.open_runs.
 *
 * Streams this path does not serve go through mlma_record_stream (one
 * stream at a time on the row path: mlma_close_full_batch where it can,
 * else mlma._close_batch): transactions under REPEATABLE READ
 * or SERIALIZABLE (their first write of a stream must bump touch_count),
 * unknown or just dropped streams, a configuration changed since the
 * stream cache read it, a model version due for its age request, and a
 * warm-up that needs observations of batches closed by earlier statements.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "mlma.h"
#include "core/decide.h"
#include "core/stats.h"

/* policies */
#define POLICY_FIXED		'f'
#define POLICY_ROLLING		'r'
#define POLICY_BENCHMARK	'b'

/* one observation of a stream, in order */
typedef struct SetObs
{
	int64		seq;
	TimestampTz at;
	double		loss;
	double		bench;
	bool		has_bench;
} SetObs;

/* a live reference (reference_batches), kept in memory while batches close */
typedef struct SetRef
{
	double	   *losses;
	int64	   *seqs;
	int			n;
	int64		end_seq;
	int32		version_no;
	bool		pinned;
	int64		id;				/* reference_history id; 0: none recorded */
	int			pending;		/* index in the new history rows + 1; 0: old */
} SetRef;

/* what the set path knows about one stream */
typedef struct SetStream
{
	MlmaStreamRows *rows;
	MlmaStream	stream;			/* copy of the cache entry */
	bool		fast;
	bool		known;			/* taken by an earlier chunk of the statement */
	bool		closes;			/* a batch closes in this statement */
	bool		wrote;			/* stream_state changes */
	bool		state_due;		/* changes kept for the statement's end */
	/* configuration */
	char	   *model_version;
	char	   *method_name;
	MlmaMethod	method;
	double		alpha;
	bool		eager;
	bool		paused;
	int32		season;			/* 0: none */
	int32		reference_size;
	double		min_effect;
	int32		consecutive;
	char		policy;
	int32		batch_size;
	/* state */
	int32		config_version;
	int64		open_start_seq;
	int64		next_seq;
	bool		age_flagged;
	int32		batch_no;
	int32		version_no;
	int64		version_start_seq;
	int32		streak;
	bool		has_ref;
	SetRef		ref;
	bool		ref_changed;	/* upsert reference_batches */
	/* open observations still in mlma.open_runs, from table_lo on */
	int64		table_open;
	int64		table_lo;
	/* observations: the open ones (when it closes) then the new ones */
	SetObs	   *obs;
	int			front;			/* room allocated before obs[0] */
	int			nobs;
	int			nopen;			/* open ones (table and tail) before the new */
	bool		drifted;		/* first drift check of the statement */
	int			drift_check;	/* its index in the new checks */
} SetStream;

/* a new check row */
typedef struct SetCheck
{
	SetStream  *s;
	int32		batch_no;
	bool		skipped;		/* benchmark policy, too few benchmark values */
	bool		defined;
	MlmaEvaluation ev;
	MlmaDecision d;
	int64		ref_id;			/* 0: NULL */
	int			ref_pending;	/* new history row + 1, or 0 */
	int64		check_id;
} SetCheck;

/* a new reference_history row */
typedef struct SetHistory
{
	SetStream  *s;
	const char *source;
	double	   *losses;
	int64	   *seqs;
	int			n;
	int64		id;
} SetHistory;

/*
 * RowSet: rows of one mlma table built in C and handed to one statement
 * as an array of the table's row type (columns set by name, so the
 * physical column order of an upgraded table does not matter).
 */
typedef struct RowSet
{
	Oid			typid;
	TupleDesc	desc;
	Datum	   *values;
	bool	   *nulls;
	HeapTuple  *rows;
	int			n;
	int			cap;
	int			hint;			/* where RowSetCol looks first */
} RowSet;

static void
RowSetInit(RowSet *rs, const char *table)
{
	Oid			nsp = get_namespace_oid("mlma", false);
	Oid			relid = get_relname_relid(table, nsp);
	TupleDesc	cached;

	if (!OidIsValid(relid))
		elog(ERROR, "mlma.%s does not exist", table);

	rs->typid = get_rel_type_id(relid);
	cached = lookup_rowtype_tupdesc(rs->typid, -1);
	rs->desc = CreateTupleDescCopy(cached);
	ReleaseTupleDesc(cached);
	rs->desc->tdtypeid = rs->typid;
	rs->desc->tdtypmod = -1;
	rs->values = palloc(sizeof(Datum) * rs->desc->natts);
	rs->nulls = palloc(sizeof(bool) * rs->desc->natts);
	rs->cap = 64;
	rs->rows = palloc(sizeof(HeapTuple) * rs->cap);
	rs->n = 0;
	rs->hint = 0;
}

/*
 * The index of a column, by name: looked for from the column after the one
 * found last, so that columns set in the table's order cost one comparison.
 */
static int
RowSetCol(RowSet *rs, const char *name)
{
	int			natts = rs->desc->natts;
	int			k;

	for (k = 0; k < natts; k++)
	{
		int			i = (rs->hint + k) % natts;
		Form_pg_attribute att = TupleDescAttr(rs->desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
		{
			rs->hint = (i + 1) % natts;
			return i;
		}
	}
	elog(ERROR, "column %s of mlma's row type %u not found", name, rs->typid);
	return -1;					/* keep compiler quiet */
}

static void
RowSetBegin(RowSet *rs)
{
	int			i;

	for (i = 0; i < rs->desc->natts; i++)
	{
		rs->values[i] = (Datum) 0;
		rs->nulls[i] = true;
	}
}

static void
RowSetPut(RowSet *rs, const char *col, Datum value)
{
	int			i = RowSetCol(rs, col);

	rs->values[i] = value;
	rs->nulls[i] = false;
}

static void
RowSetEnd(RowSet *rs)
{
	HeapTuple	tup = heap_form_tuple(rs->desc, rs->values, rs->nulls);

	if (rs->n == rs->cap)
	{
		rs->cap *= 2;
		rs->rows = repalloc(rs->rows, sizeof(HeapTuple) * rs->cap);
	}
	rs->rows[rs->n++] = tup;
}

/*
 * The statements of the set path, prepared and kept (mlma_plan): a small
 * multi-row statement then costs no parsing and planning.  A plan is found
 * by its text and argument types (the row types of mlma's tables get new
 * OIDs when the extension is created again).
 */
#define SET_PLANS 32

typedef struct SetPlan
{
	char	   *sql;
	int			nargs;
	Oid			types[5];
	MlmaPlan	plan;
} SetPlan;

static SetPlan set_plans[SET_PLANS];
static int	set_nplans = 0;

static int
RunCached(const char *sql, int nargs, Oid *types, Datum *values)
{
	SetPlan    *p = NULL;
	int			i;

	Assert(nargs <= 5);
	for (i = 0; i < set_nplans && p == NULL; i++)
		if (set_plans[i].nargs == nargs &&
			memcmp(set_plans[i].types, types, sizeof(Oid) * nargs) == 0 &&
			strcmp(set_plans[i].sql, sql) == 0)
			p = &set_plans[i];
	if (p == NULL)
	{
		if (set_nplans == SET_PLANS)
		{
			for (i = 0; i < set_nplans; i++)
			{
				if (set_plans[i].plan.plan != NULL)
					SPI_freeplan(set_plans[i].plan.plan);
				pfree(set_plans[i].sql);
			}
			set_nplans = 0;
		}
		p = &set_plans[set_nplans++];
		p->sql = MemoryContextStrdup(TopMemoryContext, sql);
		p->nargs = nargs;
		memcpy(p->types, types, sizeof(Oid) * nargs);
		p->plan.plan = NULL;
	}
	return SPI_execute_plan(mlma_plan(&p->plan, p->sql, nargs, p->types),
							values, NULL, false, 0);
}

/*
 * RowSetRun
 *		Run sql with $1 = the rows as an array of the row type.  Returns
 *		SPI's result code (the rows returned, if any, in SPI_tuptable).
 */
static int
RowSetRun(RowSet *rs, const char *sql, int expect)
{
	Oid			arrtype = get_array_type(rs->typid);
	Datum		arg;
	Datum	   *rows;
	int			ret;
	int			i;

	if (rs->n == 0)
		return expect;
	/* each row as a composite datum, copied only to flatten toasted values */
	rows = palloc(sizeof(Datum) * rs->n);
	for (i = 0; i < rs->n; i++)
		rows[i] = HeapTupleGetDatum(rs->rows[i]);
	arg = PointerGetDatum(construct_array(rows, rs->n, rs->typid, -1, false,
										  TYPALIGN_DOUBLE));
	ret = RunCached(sql, 1, &arrtype, &arg);
	if (ret != expect)
		elog(ERROR, "mlma: writing observations set-wise failed: %s",
			 SPI_result_code_string(ret));
	return ret;
}

/*
 * RowSetInsert
 *		Insert the rows into mlma.<table>: through a row writer (the table
 *		and index access methods, as COPY writes), else with
 *		INSERT ... SELECT * FROM unnest($1::mlma.<table>[]).
 */
static void
RowSetInsert(RowSet *rs, const char *table)
{
	MlmaRowWriter *w;
	const char **names;
	int			nnames = 0;
	int			i;

	if (rs->n == 0)
		return;
	names = palloc(sizeof(char *) * rs->desc->natts);
	for (i = 0; i < rs->desc->natts; i++)
		if (!TupleDescAttr(rs->desc, i)->attisdropped)
			names[nnames++] = NameStr(TupleDescAttr(rs->desc, i)->attname);
	w = mlma_row_writer_open(table, names, nnames);
	if (w != NULL && mlma_row_writer_fits(w, rs->desc))
	{
		/* the row type's columns are the table's: the rows go in as formed */
		for (i = 0; i < rs->n; i++)
			mlma_row_writer_add_tuple(w, rs->rows[i]);
		rs->n = 0;
		(void) mlma_row_writer_close(w);
	}
	else
	{
		if (w != NULL)
			(void) mlma_row_writer_close(w);	/* nothing written */
		RowSetRun(rs, psprintf("INSERT INTO mlma.%s SELECT * FROM unnest($1::mlma.%s[])",
							   table, table),
				  SPI_OK_INSERT);
	}
	pfree(names);
}

static Datum
IdArray(SetStream *ss, int n, bool (*want) (SetStream *))
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;
	int			k = 0;

	for (i = 0; i < n; i++)
		if (want == NULL || want(&ss[i]))
			d[k++] = Int64GetDatum(ss[i].rows->stream_id);
	return mlma_array_datum(d, NULL, k, INT8OID);
}

static bool
IsToRead(SetStream *s)
{
	return s->fast && !s->known;
}

static SetStream *
FindStream(SetStream *ss, int n, int64 id)
{
	int			lo = 0;
	int			hi = n - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (ss[mid].rows->stream_id == id)
			return &ss[mid];
		if (ss[mid].rows->stream_id < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

static const char *lock_query =
"SELECT st.stream_id FROM mlma.stream_state st "
" WHERE st.stream_id = ANY ($1) ORDER BY st.stream_id FOR NO KEY UPDATE OF st";

/* one index probe per stream, whatever the sizes of the tables */
static const char *read_query =
"SELECT u.id, st.config_version, st.open_start_seq, st.age_flagged, st.batch_no, "
"       st.version_no, st.version_start_seq, st.streak, "
"       greatest(st.open_start_seq, (SELECT o.seq + cardinality(o.losses) "
"                 FROM mlma.open_runs o "
"                 WHERE o.stream_id = u.id AND o.seq >= st.open_start_seq "
"                 ORDER BY o.seq DESC LIMIT 1)), "
"       s.model_version, s.method, s.alpha, s.check_mode = 'eager', s.paused, "
"       s.season_length, s.reference_size, s.min_effect, s.consecutive, "
"       s.reference_policy, s.batch_size, "
"       r.stream_id IS NOT NULL, r.losses, r.seqs, r.end_seq, r.source = 'pinned', "
"       r.version_no, "
"       coalesce(r.reference_id, (SELECT max(h.reference_id) "
"                 FROM mlma.reference_history h WHERE h.stream_id = r.stream_id)) "
"  FROM unnest($1::int8[]) AS u(id) "
"  CROSS JOIN LATERAL (SELECT * FROM mlma.stream_state st "
"        WHERE st.stream_id = u.id LIMIT 1) st "
"  CROSS JOIN LATERAL (SELECT * FROM mlma.streams s "
"        WHERE s.stream_id = u.id LIMIT 1) s "
"  LEFT JOIN LATERAL (SELECT * FROM mlma.reference_batches r "
"        WHERE r.stream_id = u.id LIMIT 1) r ON true";

static const char *take_open_query =
"DELETE FROM mlma.open_runs o "
" USING ROWS FROM (unnest($1::int8[]), unnest($2::int8[])) AS u(id, lo) "
" WHERE o.stream_id = u.id AND o.seq >= u.lo "
"RETURNING o.stream_id, o.seq, o.times, o.losses, o.benchmark_losses";

/*
 * What ReadStreams reads of a stream, in read_query's order (column
 * F_x + 2; column 1 is the stream's id).
 */
enum
{
	F_CONFIG, F_OPEN_START, F_AGE, F_BATCH_NO, F_VERSION_NO, F_VERSION_START,
	F_STREAK, F_NEXT_SEQ, F_MODEL_VERSION, F_METHOD, F_ALPHA, F_EAGER, F_PAUSED,
	F_SEASON, F_REF_SIZE, F_MIN_EFFECT, F_CONSECUTIVE, F_POLICY, F_BATCH_SIZE,
	F_HAS_REF, F_REF_LOSSES, F_REF_SEQS, F_REF_END, F_REF_PINNED,
	F_REF_VERSION, F_REF_ID, NFIELDS
};

static int32
FieldInt32(const Datum *v, const bool *nl, int f)
{
	return nl[f] ? 0 : DatumGetInt32(v[f]);
}

static int64
FieldInt64(const Datum *v, const bool *nl, int f)
{
	return nl[f] ? 0 : DatumGetInt64(v[f]);
}

static bool
FieldBool(const Datum *v, const bool *nl, int f)
{
	return !nl[f] && DatumGetBool(v[f]);
}

static double
FieldFloat8(const Datum *v, const bool *nl, int f)
{
	return nl[f] ? 0.0 : DatumGetFloat8(v[f]);
}

static char *
FieldText(const Datum *v, const bool *nl, int f)
{
	return nl[f] ? NULL : TextDatumGetCString(v[f]);
}

/*
 * FillStream
 *		Step 2 for one stream from what was read of it (v, nl: NFIELDS
 *		values); a stream the set path does not serve is marked slow.
 */
static void
FillStream(SetStream *s, const Datum *v, const bool *nl, TimestampTz xact_start)
{
	char	   *policy;

	s->config_version = FieldInt32(v, nl, F_CONFIG);
	s->open_start_seq = FieldInt64(v, nl, F_OPEN_START);
	s->age_flagged = FieldBool(v, nl, F_AGE);
	s->batch_no = FieldInt32(v, nl, F_BATCH_NO);
	s->version_no = FieldInt32(v, nl, F_VERSION_NO);
	s->version_start_seq = FieldInt64(v, nl, F_VERSION_START);
	s->streak = FieldInt32(v, nl, F_STREAK);
	s->next_seq = FieldInt64(v, nl, F_NEXT_SEQ);
	s->model_version = FieldText(v, nl, F_MODEL_VERSION);
	s->method_name = FieldText(v, nl, F_METHOD);
	s->method = s->method_name ? mlma_method_kind(s->method_name) : MLMA_METHOD_INVALID;
	s->alpha = FieldFloat8(v, nl, F_ALPHA);
	s->eager = FieldBool(v, nl, F_EAGER);
	s->paused = FieldBool(v, nl, F_PAUSED);
	s->season = FieldInt32(v, nl, F_SEASON);
	if (s->season < 2)
		s->season = 0;
	s->reference_size = FieldInt32(v, nl, F_REF_SIZE);
	s->min_effect = FieldFloat8(v, nl, F_MIN_EFFECT);
	s->consecutive = FieldInt32(v, nl, F_CONSECUTIVE);
	policy = FieldText(v, nl, F_POLICY);
	s->policy = policy ? policy[0] : POLICY_FIXED;	/* fixed, rolling, benchmark */
	s->batch_size = FieldInt32(v, nl, F_BATCH_SIZE);
	s->has_ref = FieldBool(v, nl, F_HAS_REF);
	if (s->has_ref)
	{
		int			nseq;
		const void *l = mlma_array_values(v[F_REF_LOSSES], nl[F_REF_LOSSES], &s->ref.n);
		const void *q = mlma_array_values(v[F_REF_SEQS], nl[F_REF_SEQS], &nseq);

		/* copies: the row they were read from does not stay */
		s->ref.losses = palloc(sizeof(double) * Max(s->ref.n, 1));
		if (l != NULL)
			memcpy(s->ref.losses, l, sizeof(double) * s->ref.n);
		s->ref.seqs = NULL;
		if (q != NULL && nseq == s->ref.n)
		{
			s->ref.seqs = palloc(sizeof(int64) * Max(nseq, 1));
			memcpy(s->ref.seqs, q, sizeof(int64) * nseq);
		}
		s->ref.end_seq = FieldInt64(v, nl, F_REF_END);
		s->ref.pinned = FieldBool(v, nl, F_REF_PINNED);
		s->ref.version_no = FieldInt32(v, nl, F_REF_VERSION);
		s->ref.id = FieldInt64(v, nl, F_REF_ID);
		s->ref.pending = 0;
	}
	s->table_open = s->next_seq - s->open_start_seq;
	s->table_lo = s->open_start_seq;

	/* what the set path does not serve */
	if (s->config_version != s->stream.config_version ||
		s->method == MLMA_METHOD_INVALID ||
		(s->stream.has_deadline && !s->age_flagged && !s->paused &&
		 xact_start > s->stream.deadline) ||
		(!s->has_ref && s->policy != POLICY_BENCHMARK &&
		 s->version_start_seq < s->open_start_seq))
		s->fast = false;
}

/*
 * The tables ReadStreamsDirect reads by primary key, and the columns it
 * reads from each (the fields of read_query that are plain columns).
 */
enum
{
	T_STATE, T_STREAMS, T_REFS, T_HISTORY, T_RUNS, NTABLES
};

static const char *const read_tables[NTABLES] = {
	"stream_state", "streams", "reference_batches", "reference_history", "open_runs"
};

typedef struct ReadColumn
{
	int			field;			/* F_x, or -1: read by ReadStreamsDirect itself */
	int			table;
	const char *name;
	Oid			type;
} ReadColumn;

enum
{
	X_CHECK_MODE, X_SOURCE, X_REF_ID, X_RUN_SEQ, X_RUN_LOSSES, NEXTRA
};

static const ReadColumn read_columns[] = {
	{F_CONFIG, T_STATE, "config_version", INT4OID},
	{F_OPEN_START, T_STATE, "open_start_seq", INT8OID},
	{F_AGE, T_STATE, "age_flagged", BOOLOID},
	{F_BATCH_NO, T_STATE, "batch_no", INT4OID},
	{F_VERSION_NO, T_STATE, "version_no", INT4OID},
	{F_VERSION_START, T_STATE, "version_start_seq", INT8OID},
	{F_STREAK, T_STATE, "streak", INT4OID},
	{F_MODEL_VERSION, T_STREAMS, "model_version", TEXTOID},
	{F_METHOD, T_STREAMS, "method", TEXTOID},
	{F_ALPHA, T_STREAMS, "alpha", FLOAT8OID},
	{F_PAUSED, T_STREAMS, "paused", BOOLOID},
	{F_SEASON, T_STREAMS, "season_length", INT4OID},
	{F_REF_SIZE, T_STREAMS, "reference_size", INT4OID},
	{F_MIN_EFFECT, T_STREAMS, "min_effect", FLOAT8OID},
	{F_CONSECUTIVE, T_STREAMS, "consecutive", INT4OID},
	{F_POLICY, T_STREAMS, "reference_policy", TEXTOID},
	{F_BATCH_SIZE, T_STREAMS, "batch_size", INT4OID},
	{F_REF_LOSSES, T_REFS, "losses", FLOAT8ARRAYOID},
	{F_REF_SEQS, T_REFS, "seqs", INT8ARRAYOID},
	{F_REF_END, T_REFS, "end_seq", INT8OID},
	{F_REF_VERSION, T_REFS, "version_no", INT4OID},
	{F_REF_ID, T_HISTORY, "reference_id", INT8OID},
	/* NEXTRA columns, X_x order */
	{-1, T_STREAMS, "check_mode", TEXTOID},
	{-1, T_REFS, "source", TEXTOID},
	{-1, T_REFS, "reference_id", INT8OID},
	{-1, T_RUNS, "seq", INT8OID},
	{-1, T_RUNS, "losses", FLOAT8ARRAYOID},
};

#define NREAD_COLUMNS lengthof(read_columns)
#define EXTRA(x) (NREAD_COLUMNS - NEXTRA + (x))

/* the column att of slot, and whether it is NULL */
static inline Datum
SlotCol(TupleTableSlot *slot, AttrNumber att, bool *isnull)
{
	*isnull = slot->tts_isnull[att - 1];
	return slot->tts_values[att - 1];
}

/*
 * ReadStreamsDirect
 *		ReadStreams through the access methods: the locks through
 *		stream_state's primary key, then, with a snapshot taken after them,
 *		each stream's rows by primary key (the probes of read_query).
 *		False when the direct path cannot be used: nothing was read (some
 *		locks may be held; taking them again costs nothing).
 */
static bool
ReadStreamsDirect(SetStream *ss, int n)
{
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	bool	   *locked = palloc(sizeof(bool) * Max(n, 1));
	MlmaKeyReader *r[NTABLES];
	AttrNumber	att[NREAD_COLUMNS];
	Snapshot	snap;
	TimestampTz xact_start = GetCurrentTransactionStartTimestamp();
	bool		usable = true;
	int			k = 0;
	int			i;
	int			t;

	if (!mlma_direct_usable())
		return false;
	for (i = 0; i < n; i++)
		if (IsToRead(&ss[i]))
			ids[k++] = ss[i].rows->stream_id;
	if (mlma_lock_streams(ids, k, k, LockWaitBlock, locked) < 0)
		return false;

	/* a new snapshot: every writer that held a lock we waited for is in it */
	snap = RegisterSnapshot(GetLatestSnapshot());
	for (t = 0; t < NTABLES; t++)
	{
		r[t] = mlma_key_reader_open(read_tables[t], NULL, snap);
		usable &= r[t] != NULL;
	}
	for (i = 0; usable && i < (int) NREAD_COLUMNS; i++)
	{
		att[i] = mlma_key_reader_column(r[read_columns[i].table],
										read_columns[i].name, read_columns[i].type);
		usable &= att[i] != InvalidAttrNumber;
	}

	k = 0;
	for (i = 0; usable && i < n; i++)
	{
		SetStream  *s = &ss[i];
		int64		id = s->rows->stream_id;
		TupleTableSlot *slot[NTABLES];
		Datum		v[NFIELDS];
		bool		nl[NFIELDS];
		bool		isnull;
		int			c;

		if (!IsToRead(s))
			continue;
		if (!locked[k++])
		{
			s->fast = false;	/* dropped meanwhile */
			continue;
		}
		slot[T_STATE] = mlma_key_reader_seek(r[T_STATE], id);
		slot[T_STREAMS] = mlma_key_reader_seek(r[T_STREAMS], id);
		if (slot[T_STATE] == NULL || slot[T_STREAMS] == NULL)
		{
			s->fast = false;
			continue;
		}
		slot[T_REFS] = mlma_key_reader_seek(r[T_REFS], id);
		/* the live reference's history row: named by it, else the newest */
		slot[T_HISTORY] = NULL;
		if (slot[T_REFS] != NULL)
		{
			(void) SlotCol(slot[T_REFS], att[EXTRA(X_REF_ID)], &isnull);
			if (isnull)
				slot[T_HISTORY] = mlma_key_reader_last(r[T_HISTORY], id);
		}
		slot[T_RUNS] = mlma_key_reader_last(r[T_RUNS], id);

		for (c = 0; c < NFIELDS; c++)
			nl[c] = true;
		for (c = 0; c < (int) NREAD_COLUMNS - NEXTRA; c++)
		{
			const ReadColumn *rc = &read_columns[c];

			if (slot[rc->table] != NULL)
				v[rc->field] = SlotCol(slot[rc->table], att[c], &nl[rc->field]);
		}
		if (slot[T_REFS] != NULL && slot[T_HISTORY] == NULL)
			v[F_REF_ID] = SlotCol(slot[T_REFS], att[EXTRA(X_REF_ID)], &nl[F_REF_ID]);
		v[F_EAGER] = BoolGetDatum(false);
		v[F_HAS_REF] = BoolGetDatum(slot[T_REFS] != NULL);
		v[F_REF_PINNED] = BoolGetDatum(false);
		nl[F_EAGER] = nl[F_HAS_REF] = nl[F_REF_PINNED] = false;
		{
			Datum		mode = SlotCol(slot[T_STREAMS], att[EXTRA(X_CHECK_MODE)], &isnull);

			if (!isnull)
				v[F_EAGER] = BoolGetDatum(strcmp(TextDatumGetCString(mode), "eager") == 0);
		}
		if (slot[T_REFS] != NULL)
		{
			Datum		src = SlotCol(slot[T_REFS], att[EXTRA(X_SOURCE)], &isnull);

			if (!isnull)
				v[F_REF_PINNED] = BoolGetDatum(strcmp(TextDatumGetCString(src), "pinned") == 0);
		}
		/* where the open batch ends: its last run (earlier ones are gone) */
		v[F_NEXT_SEQ] = v[F_OPEN_START];
		nl[F_NEXT_SEQ] = nl[F_OPEN_START];
		if (slot[T_RUNS] != NULL && !nl[F_OPEN_START])
		{
			bool		lnull;
			int64		seq = DatumGetInt64(SlotCol(slot[T_RUNS], att[EXTRA(X_RUN_SEQ)], &isnull));
			Datum		losses = SlotCol(slot[T_RUNS], att[EXTRA(X_RUN_LOSSES)], &lnull);

			if (!isnull && !lnull && seq >= DatumGetInt64(v[F_OPEN_START]))
			{
				ArrayType  *a = DatumGetArrayTypeP(losses);

				v[F_NEXT_SEQ] = Int64GetDatum(Max(DatumGetInt64(v[F_OPEN_START]),
												  seq + ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a))));
			}
		}
		FillStream(s, v, nl, xact_start);
	}

	for (t = 0; t < NTABLES; t++)
		mlma_key_reader_close(r[t]);
	UnregisterSnapshot(snap);
	return usable;
}

/*
 * ReadStreams
 *		Steps 1 and 2: lock every known stream, then read what each one
 *		needs (through the access methods where they may be used, else
 *		lock_query and read_query); a stream that cannot take the set path
 *		is marked slow.
 */
static void
ReadStreams(SetStream *ss, int n)
{
	Oid			argtype = INT8ARRAYOID;
	Datum		ids;
	int			ret;
	uint64		i;
	bool	   *read;
	TimestampTz xact_start = GetCurrentTransactionStartTimestamp();

	if (ReadStreamsDirect(ss, n))
		return;
	ids = IdArray(ss, n, IsToRead);
	ret = RunCached(lock_query, 1, &argtype, &ids);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "mlma: locking streams failed: %s", SPI_result_code_string(ret));
	SPI_freetuptable(SPI_tuptable);

	/* a new snapshot: every writer that held a lock we waited for is in it */
	ret = RunCached(read_query, 1, &argtype, &ids);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "mlma: reading streams failed: %s", SPI_result_code_string(ret));

	/* a stream not read (dropped meanwhile) takes the slow path */
	read = palloc0(sizeof(bool) * n);
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		SetStream  *s = FindStream(ss, n, mlma_spi_int64(tup, desc, 1));
		Datum		v[NFIELDS];
		bool		nl[NFIELDS];
		int			f;

		if (s == NULL || !s->fast || s->known)
			continue;
		read[s - ss] = true;
		for (f = 0; f < NFIELDS; f++)
			v[f] = SPI_getbinval(tup, desc, f + 2, &nl[f]);
		FillStream(s, v, nl, xact_start);
	}
	for (i = 0; i < (uint64) n; i++)
		if (!read[i] && !ss[i].known)
			ss[i].fast = false;
	SPI_freetuptable(SPI_tuptable);
}

/* a run taken out of mlma.open_runs */
typedef struct TakenRun
{
	SetStream  *s;
	int64		seq;
	int			n;
	Datum	   *times;
	Datum	   *losses;
	Datum	   *bench;			/* NULL: none */
	bool	   *bench_null;
} TakenRun;

static int
CmpTakenRun(const void *a, const void *b)
{
	const TakenRun *x = a;
	const TakenRun *y = b;

	if (x->s != y->s)
		return x->s < y->s ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

/*
 * TakeOpenDirect
 *		TakeOpen through the access methods for the k streams ids[] (from
 *		los[]); false when they cannot be used (nothing was taken).
 */
static bool
TakeOpenDirect(SetStream *ss, int n, const Datum *ids, const Datum *los, int k)
{
	int64	   *id = palloc(sizeof(int64) * k);
	int64	   *lo = palloc(sizeof(int64) * k);
	MlmaTakenBatch *taken = palloc0(sizeof(MlmaTakenBatch) * k);
	int			i;

	for (i = 0; i < k; i++)
	{
		id[i] = DatumGetInt64(ids[i]);
		lo[i] = DatumGetInt64(los[i]);
	}
	if (!mlma_direct_take_open(k, id, lo, taken))
		return false;
	for (i = 0; i < k; i++)
	{
		SetStream  *s = FindStream(ss, n, id[i]);
		MlmaTakenBatch *b = &taken[i];
		SetObs	   *all;
		int			j;

		if (b->n == 0)
			continue;
		/* the open observations go before those in memory (in the room there) */
		if (b->n <= s->front)
			all = s->obs - b->n;
		else
		{
			all = palloc(sizeof(SetObs) * (b->n + s->nobs));
			memcpy(all + b->n, s->obs, sizeof(SetObs) * s->nobs);
			if (s->obs != NULL)
				pfree(s->obs - s->front);
			s->front = b->n;
		}
		s->front -= b->n;
		for (j = 0; j < b->n; j++)
		{
			all[j].seq = b->first_seq + j;
			all[j].at = b->at[j];
			all[j].loss = b->losses[j];
			all[j].has_bench = !b->bench_null[j];
			all[j].bench = all[j].has_bench ? b->bench[j] : 0.0;
		}
		/* what was copied goes back for the next stream's arrays */
		pfree(b->losses);
		pfree(b->at);
		pfree(b->bench);
		pfree(b->bench_null);
		s->obs = all;
		s->nobs += b->n;
		s->nopen += b->n;
		s->table_open = 0;
	}
	return true;
}

/*
 * TakeOpen
 *		Step 3: the open observations of the streams whose batch closes now,
 *		their runs deleted from mlma.open_runs, placed before the new ones.
 */
static void
TakeOpen(SetStream *ss, int n)
{
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *los = palloc(sizeof(Datum) * n);
	Datum		args[2];
	Oid			types[2] = {INT8ARRAYOID, INT8ARRAYOID};
	int			k = 0;
	int			i;
	int			ret;
	uint64		r;
	int		   *fill;
	int		   *cnt;
	TakenRun   *runs;
	int			nruns = 0;

	for (i = 0; i < n; i++)
		if (ss[i].fast && ss[i].closes && ss[i].table_open > 0)
		{
			ids[k] = Int64GetDatum(ss[i].rows->stream_id);
			los[k] = Int64GetDatum(ss[i].table_lo);
			k++;
		}
	if (k == 0)
		return;
	if (TakeOpenDirect(ss, n, ids, los, k))
		return;
	args[0] = mlma_array_datum(ids, NULL, k, INT8OID);
	args[1] = mlma_array_datum(los, NULL, k, INT8OID);
	ret = RunCached(take_open_query, 2, types, args);
	if (ret != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "mlma: reading open batches failed: %s",
			 SPI_result_code_string(ret));
	fill = palloc0(sizeof(int) * n);
	cnt = palloc0(sizeof(int) * n);

	/* the runs, each stream's in seq order (the DELETE returns them in any order) */
	runs = palloc(sizeof(TakenRun) * Max(SPI_processed, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		TakenRun   *t = &runs[nruns];
		bool		isnull;
		bool		bnull;
		Datum		bench;

		t->s = FindStream(ss, n, mlma_spi_int64(tup, desc, 1));
		if (t->s == NULL)
			continue;
		t->seq = mlma_spi_int64(tup, desc, 2);
		bench = SPI_getbinval(tup, desc, 5, &bnull);
		t->n = mlma_run_elems(SPI_getbinval(tup, desc, 3, &isnull),
							  SPI_getbinval(tup, desc, 4, &isnull), bench, bnull,
							  &t->times, &t->losses, &t->bench, &t->bench_null);
		cnt[t->s - ss] += t->n;
		nruns++;
	}
	SPI_freetuptable(SPI_tuptable);
	qsort(runs, nruns, sizeof(TakenRun), CmpTakenRun);

	/* place the observations before those in memory */
	for (i = 0; i < n; i++)
		if (cnt[i] > 0)
		{
			SetObs	   *all = palloc(sizeof(SetObs) * (cnt[i] + ss[i].nobs));

			memcpy(all + cnt[i], ss[i].obs, sizeof(SetObs) * ss[i].nobs);
			ss[i].obs = all;
			ss[i].front = 0;
		}
	for (r = 0; r < (uint64) nruns; r++)
	{
		TakenRun   *t = &runs[r];
		int			j;

		for (j = 0; j < t->n; j++)
		{
			SetObs	   *o = &t->s->obs[fill[t->s - ss]++];

			o->seq = t->seq + j;
			o->at = DatumGetTimestampTz(t->times[j]);
			o->loss = DatumGetFloat8(t->losses[j]);
			o->has_bench = t->bench != NULL && !t->bench_null[j];
			o->bench = o->has_bench ? DatumGetFloat8(t->bench[j]) : 0.0;
		}
	}
	for (i = 0; i < n; i++)
	{
		if (cnt[i] == 0)
			continue;
		ss[i].nobs += cnt[i];
		ss[i].nopen += cnt[i];
		ss[i].table_open = 0;
	}
}

/* the working state of one statement's set path */
typedef struct SetWork
{
	RowSet		batches;
	RowSet		history;
	SetCheck   *checks;
	int			nchecks;
	int			capchecks;
	SetHistory *hist;
	int			nhist;
	int			caphist;
	Datum	   *queue_ids;
	Datum	   *queue_bnos;
	int			nqueue;
	int			capqueue;
	TimestampTz now;
	bool		defer_state;	/* the streams are carried: state at the end */
	/* the text values of batches and checks rows, made once each */
	MlmaTextMemo version_text;
	MlmaTextMemo role_text;
	MlmaTextMemo method_text;
	MlmaTextMemo mode_text;
	MlmaTextMemo status_text;
} SetWork;

/*
 * NewReference
 *		Make losses/seqs the stream's live reference (as _store_reference):
 *		a new reference_history row, and reference_batches at the end.
 */
static void
NewReference(SetWork *w, SetStream *s, const char *source, double *losses,
			 int64 *seqs, int n)
{
	SetHistory *h;
	int			i;

	if (w->nhist == w->caphist)
	{
		w->caphist = Max(16, w->caphist * 2);
		w->hist = w->hist ? repalloc(w->hist, sizeof(SetHistory) * w->caphist)
			: palloc(sizeof(SetHistory) * w->caphist);
	}
	h = &w->hist[w->nhist++];
	h->s = s;
	h->source = source;
	h->losses = losses;
	h->seqs = seqs;
	h->n = n;
	h->id = 0;

	s->has_ref = true;
	s->ref_changed = true;
	s->ref.losses = losses;
	s->ref.seqs = seqs;
	s->ref.n = n;
	s->ref.end_seq = seqs[0] + 1;
	for (i = 1; i < n; i++)
		s->ref.end_seq = Max(s->ref.end_seq, seqs[i] + 1);
	s->ref.version_no = s->version_no;
	s->ref.pinned = false;
	s->ref.pending = w->nhist;
	s->ref.id = 0;
}

/* sort helper for the rolled reference: by seq */
static int
CmpObsSeq(const void *a, const void *b)
{
	int64		x = ((const SetObs *) a)->seq;
	int64		y = ((const SetObs *) b)->seq;

	return x < y ? -1 : x > y ? 1 : 0;
}

static int
CmpObsSeqDesc(const void *a, const void *b)
{
	return -CmpObsSeq(a, b);
}

static int64
PosOf(int64 seq, int season)
{
	int64		p = seq % season;

	return p < 0 ? p + season : p;
}

/*
 * Roll
 *		The rolling policy after a passing batch (as _roll_reference and
 *		_rolled_reference): the most recent reference_size losses of the
 *		old reference and the batch; with season_length each seasonal
 *		position keeps as many as it had (at least one).
 */
static void
Roll(SetWork *w, SetStream *s, const SetObs *batch, int nb)
{
	SetObs	   *a;
	int			na = s->ref.n + nb;
	int			i;
	int			keep = 0;
	double	   *losses;
	int64	   *seqs;

	if (!s->has_ref || s->ref.pinned || s->ref.version_no != s->version_no ||
		s->ref.seqs == NULL)
		return;
	a = palloc(sizeof(SetObs) * Max(na, 1));
	for (i = 0; i < s->ref.n; i++)
	{
		a[i].seq = s->ref.seqs[i];
		a[i].loss = s->ref.losses[i];
	}
	for (i = 0; i < nb; i++)
	{
		a[s->ref.n + i].seq = batch[i].seq;
		a[s->ref.n + i].loss = batch[i].loss;
	}
	qsort(a, na, sizeof(SetObs), CmpObsSeqDesc);
	if (s->season == 0)
		keep = Min(na, s->reference_size);
	else
	{
		int		   *had = palloc0(sizeof(int) * s->season);
		int		   *taken = palloc0(sizeof(int) * s->season);

		for (i = 0; i < s->ref.n; i++)
			had[PosOf(s->ref.seqs[i], s->season)]++;
		for (i = 0; i < na; i++)
		{
			int64		p = PosOf(a[i].seq, s->season);

			if (taken[p] < Max(1, had[p]))
			{
				taken[p]++;
				a[keep++] = a[i];
			}
		}
	}
	qsort(a, keep, sizeof(SetObs), CmpObsSeq);
	/* a rolled reference that would not be valid keeps the old one */
	if (keep < 2 ||
		(s->method == MLMA_METHOD_DM && s->season == 0 && keep != s->batch_size))
		return;
	losses = palloc(sizeof(double) * keep);
	seqs = palloc(sizeof(int64) * keep);
	for (i = 0; i < keep; i++)
	{
		losses[i] = a[i].loss;
		seqs[i] = a[i].seq;
	}
	NewReference(w, s, "rolling", losses, seqs, keep);
}

static SetCheck *
NewCheck(SetWork *w, SetStream *s)
{
	SetCheck   *c;

	if (w->nchecks == w->capchecks)
	{
		w->capchecks = Max(64, w->capchecks * 2);
		w->checks = w->checks ? repalloc(w->checks, sizeof(SetCheck) * w->capchecks)
			: palloc(sizeof(SetCheck) * w->capchecks);
	}
	c = &w->checks[w->nchecks++];
	memset(c, 0, sizeof(*c));
	c->s = s;
	c->batch_no = s->batch_no;
	return c;
}

/*
 * CloseBatch
 *		Close the batch of s->obs[from, to): as mlma._close_batch.
 */
static void
CloseBatch(SetWork *w, SetStream *s, int from, int to)
{
	const SetObs *b = &s->obs[from];
	int			nb = to - from;
	int64		first = b[0].seq;
	int64		next = first + nb;
	double	   *losses = palloc(sizeof(double) * nb);
	int32	   *offsets = palloc(sizeof(int32) * nb);
	Datum		la;
	Datum		oa;
	bool		any_bench = false;
	ArrayType  *bench = NULL;
	const char *role;
	int			i;

	for (i = 0; i < nb; i++)
	{
		losses[i] = b[i].loss;
		offsets[i] = mlma_seconds_since(b[i].at, b[0].at);
		any_bench |= b[i].has_bench;
	}
	if (any_bench)
	{
		/* the challenger's losses, NULL where an observation had none */
		double	   *bx = palloc(sizeof(double) * nb);
		bool	   *bp = palloc(sizeof(bool) * nb);

		for (i = 0; i < nb; i++)
		{
			bx[i] = b[i].bench;
			bp[i] = b[i].has_bench;
		}
		bench = DatumGetArrayTypeP(mlma_float8_array_with_nulls(bx, bp, nb));
		pfree(bx);
		pfree(bp);
	}

	if (s->policy == POLICY_BENCHMARK)
		role = "test";
	else if (!s->has_ref || first < s->ref.end_seq)
		role = "reference";
	else
		role = "test";

	RowSetBegin(&w->batches);
	RowSetPut(&w->batches, "stream_id", Int64GetDatum(s->rows->stream_id));
	RowSetPut(&w->batches, "batch_no", Int32GetDatum(s->batch_no));
	RowSetPut(&w->batches, "model_version", mlma_text_of(&w->version_text, s->model_version));
	RowSetPut(&w->batches, "version_no", Int32GetDatum(s->version_no));
	RowSetPut(&w->batches, "role", mlma_text_of(&w->role_text, role));
	RowSetPut(&w->batches, "first_seq", Int64GetDatum(first));
	RowSetPut(&w->batches, "first_at", TimestampTzGetDatum(b[0].at));
	RowSetPut(&w->batches, "last_at", TimestampTzGetDatum(b[nb - 1].at));
	la = mlma_packed_array(losses, nb, FLOAT8OID, sizeof(double));
	oa = mlma_packed_array(offsets, nb, INT4OID, sizeof(int32));
	RowSetPut(&w->batches, "losses", la);
	RowSetPut(&w->batches, "offsets", oa);
	if (bench != NULL)
		RowSetPut(&w->batches, "benchmark_losses", PointerGetDatum(bench));
	RowSetEnd(&w->batches);
	s->wrote = true;
	/* the row holds its own copy: the next batch reuses this memory */
	pfree(DatumGetPointer(la));
	pfree(DatumGetPointer(oa));
	pfree(offsets);
	/* not bench: the check below tests the batch against it */

	if (strcmp(role, "test") != 0 || s->paused || !s->eager)
	{
		int32		bno = s->batch_no;

		s->batch_no++;
		s->open_start_seq = next;
		/* warming: the version's first reference_size observations */
		if (!s->has_ref && s->policy != POLICY_BENCHMARK &&
			next - s->version_start_seq >= s->reference_size)
		{
			int64		lo = s->version_start_seq;
			int64		hi = lo + s->reference_size;
			double	   *rl = palloc(sizeof(double) * s->reference_size);
			int64	   *rq = palloc(sizeof(int64) * s->reference_size);
			int			k = 0;

			for (i = 0; i < to; i++)
				if (s->obs[i].seq >= lo && s->obs[i].seq < hi)
				{
					rl[k] = s->obs[i].loss;
					rq[k] = s->obs[i].seq;
					k++;
				}
			if (k < Max(s->reference_size, 2) ||
				(s->method == MLMA_METHOD_DM && s->season == 0 &&
				 k != s->batch_size))
				s->version_start_seq = next;
			else
				NewReference(w, s, "warmup", rl, rq, k);
		}
		/* scheduled: the check waits in the queue for run_checks() */
		if (strcmp(role, "test") == 0 && !s->paused)
		{
			if (w->nqueue == w->capqueue)
			{
				w->capqueue = Max(64, w->capqueue * 2);
				w->queue_ids = w->queue_ids
					? repalloc(w->queue_ids, sizeof(Datum) * w->capqueue)
					: palloc(sizeof(Datum) * w->capqueue);
				w->queue_bnos = w->queue_bnos
					? repalloc(w->queue_bnos, sizeof(Datum) * w->capqueue)
					: palloc(sizeof(Datum) * w->capqueue);
			}
			w->queue_ids[w->nqueue] = Int64GetDatum(s->rows->stream_id);
			w->queue_bnos[w->nqueue] = Int32GetDatum(bno);
			w->nqueue++;
		}
		pfree(losses);
		return;
	}

	/* eager check and decision */
	{
		SetCheck   *c = NewCheck(w, s);
		int			rc;

		if (s->policy == POLICY_BENCHMARK)
		{
			rc = mlma_evaluate_benchmark_losses(s->method, bench, losses, nb, &c->ev);
			if (rc != MLMA_OK)
			{
				/* too few benchmark values: no test, the streak stands */
				c->skipped = true;
				s->batch_no++;
				s->open_start_seq = next;
				pfree(losses);
				return;
			}
		}
		else
			rc = mlma_evaluate_losses(s->method, s->ref.losses, s->ref.seqs,
									  s->ref.n, losses, nb, first, s->season,
									  &c->ev);
		if (rc == MLMA_ERR_NOMEM)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory in the %s test", s->method_name)));
		c->defined = (rc == MLMA_OK);
		c->d = mlma_decide(c->defined ? c->ev.p_value : get_float8_nan(),
						   s->alpha,
						   c->defined ? c->ev.effect : get_float8_nan(),
						   s->min_effect, s->streak, s->consecutive);
		if (s->policy != POLICY_BENCHMARK)
		{
			c->ref_id = s->ref.id;
			c->ref_pending = s->ref.pending;
		}
		s->batch_no++;
		s->open_start_seq = next;
		s->streak = c->d.streak;
		if (c->d.drift)
		{
			if (!s->drifted)
			{
				s->drifted = true;
				s->drift_check = w->nchecks - 1;
			}
		}
		else if (!c->d.significant && s->policy == POLICY_ROLLING)
			Roll(w, s, b, nb);
	}
	pfree(losses);
}

/*
 * NextIds
 *		n new values of the serial column of mlma.<table>: from its sequence
 *		directly when the direct path may be used and the table owns exactly
 *		one, else with SQL.
 */
static int64 *
NextIds(const char *table, const char *column, int n)
{
	Oid			seq = mlma_direct_usable() ? mlma_owned_sequence(table) : InvalidOid;
	int64	   *ids = palloc(sizeof(int64) * Max(n, 1));
	int			i;

	if (OidIsValid(seq))
	{
		for (i = 0; i < n; i++)
			ids[i] = nextval_internal(seq, true);
	}
	else
	{
		Oid			t = INT4OID;
		Datum		cnt = Int32GetDatum(n);
		int			ret;

		ret = RunCached(psprintf("SELECT nextval(pg_get_serial_sequence('mlma.%s', '%s')) "
								 "  FROM generate_series(1, $1)", table, column),
						1, &t, &cnt);
		if (ret != SPI_OK_SELECT || SPI_processed != (uint64) n)
			elog(ERROR, "mlma: numbering new rows of mlma.%s failed: %s", table,
				 SPI_result_code_string(ret));
		for (i = 0; i < n; i++)
			ids[i] = mlma_spi_int64(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		SPI_freetuptable(SPI_tuptable);
	}
	return ids;
}

/*
 * WriteStates
 *		Write the state of the k streams ss[] (in stream_id order) to their
 *		stream_state rows: through the primary key, else with SQL.
 */
static void
WriteStates(SetStream *const *ss, int k)
{
	Datum	   *ids;
	Datum	   *vals[4];
	int			i;
	int			ret;
	static const char *const state_columns[4] = {
		"batch_no", "open_start_seq", "streak", "version_start_seq"
	};
	static const Oid state_types[4] = {INT4OID, INT8OID, INT4OID, INT8OID};

	if (k == 0)
		return;
	ids = palloc(sizeof(Datum) * k);
	for (i = 0; i < 4; i++)
		vals[i] = palloc(sizeof(Datum) * k);
	for (i = 0; i < k; i++)
	{
		const SetStream *s = ss[i];

		ids[i] = Int64GetDatum(s->stream.stream_id);
		vals[0][i] = Int32GetDatum(s->batch_no);
		vals[1][i] = Int64GetDatum(s->open_start_seq);
		vals[2][i] = Int32GetDatum(s->streak);
		vals[3][i] = Int64GetDatum(s->version_start_seq);
	}
	if (!mlma_update_state_rows(k, ids, 4, state_columns, state_types, vals))
	{
		Oid			types[5] = {INT8ARRAYOID, INT4ARRAYOID, INT8ARRAYOID,
		INT4ARRAYOID, INT8ARRAYOID};
		Datum		args[5];

		args[0] = mlma_array_datum(ids, NULL, k, INT8OID);
		args[1] = mlma_array_datum(vals[0], NULL, k, INT4OID);
		args[2] = mlma_array_datum(vals[1], NULL, k, INT8OID);
		args[3] = mlma_array_datum(vals[2], NULL, k, INT4OID);
		args[4] = mlma_array_datum(vals[3], NULL, k, INT8OID);
		ret = RunCached("UPDATE mlma.stream_state st "
						"   SET batch_no = u.b, open_start_seq = u.o, "
						"       streak = u.s, version_start_seq = u.v "
						"  FROM ROWS FROM (unnest($1::int8[]), unnest($2::int4[]), "
						"       unnest($3::int8[]), unnest($4::int4[]), "
						"       unnest($5::int8[])) AS u(id, b, o, s, v) "
						" WHERE st.stream_id = u.id",
						5, types, args);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "mlma: updating stream state failed: %s",
				 SPI_result_code_string(ret));
	}
	pfree(ids);
	for (i = 0; i < 4; i++)
		pfree(vals[i]);
}

/*
 * Flush
 *		Step 5: write what the statement changed, a statement per table.
 */
static void
Flush(SetWork *w, SetStream *ss, int n)
{
	int			i;
	int			ret;
	RowSet		checks;
	RowSet		refs;
	SetStream **due;
	Datum	   *ids;
	Datum	   *vals[3];
	int			k;

	RowSetInsert(&w->batches, "batches");

	/* new references: their history ids first (the checks point to them) */
	if (w->nhist > 0)
	{
		int64	   *hist_ids = NextIds("reference_history", "reference_id", w->nhist);

		for (i = 0; i < w->nhist; i++)
			w->hist[i].id = hist_ids[i];

		RowSetInit(&w->history, "reference_history");
		for (i = 0; i < w->nhist; i++)
		{
			SetHistory *h = &w->hist[i];
			Datum	   *runs = palloc(sizeof(Datum) * 2 * h->n);
			int			nruns = 0;
			int			j;
			int64		lo = h->seqs[0];
			int64		hi = h->seqs[0] + 1;

			for (j = 0; j < h->n; j++)
			{
				lo = Min(lo, h->seqs[j]);
				hi = Max(hi, h->seqs[j] + 1);
			}
			/* [from, to) runs of consecutive seqs (seqs are ascending) */
			for (j = 0; j < h->n; j++)
			{
				if (j == 0 || h->seqs[j] != h->seqs[j - 1] + 1)
				{
					runs[nruns++] = Int64GetDatum(h->seqs[j]);
					runs[nruns++] = Int64GetDatum(h->seqs[j] + 1);
				}
				else
					runs[nruns - 1] = Int64GetDatum(h->seqs[j] + 1);
			}
			RowSetBegin(&w->history);
			RowSetPut(&w->history, "reference_id", Int64GetDatum(h->id));
			RowSetPut(&w->history, "stream_id", Int64GetDatum(h->s->rows->stream_id));
			RowSetPut(&w->history, "version_no", Int32GetDatum(h->s->version_no));
			RowSetPut(&w->history, "model_version", CStringGetTextDatum(h->s->model_version));
			RowSetPut(&w->history, "source", CStringGetTextDatum(h->source));
			RowSetPut(&w->history, "n", Int32GetDatum(h->n));
			RowSetPut(&w->history, "mean", Float8GetDatum(mlma_losses_mean(h->losses, h->n)));
			RowSetPut(&w->history, "first_seq", Int64GetDatum(lo));
			RowSetPut(&w->history, "end_seq", Int64GetDatum(hi));
			RowSetPut(&w->history, "seq_runs", mlma_array_datum(runs, NULL, nruns, INT8OID));
			RowSetPut(&w->history, "built_at", TimestampTzGetDatum(w->now));
			RowSetEnd(&w->history);
		}
		RowSetInsert(&w->history, "reference_history");

		/* each stream's live reference, once */
		RowSetInit(&refs, "reference_batches");
		for (i = 0; i < n; i++)
		{
			SetStream  *s = &ss[i];

			if (!s->fast || !s->ref_changed)
				continue;
			RowSetBegin(&refs);
			RowSetPut(&refs, "stream_id", Int64GetDatum(s->rows->stream_id));
			RowSetPut(&refs, "version_no", Int32GetDatum(s->ref.version_no));
			RowSetPut(&refs, "model_version", CStringGetTextDatum(s->model_version));
			RowSetPut(&refs, "source",
					  CStringGetTextDatum(w->hist[s->ref.pending - 1].source));
			RowSetPut(&refs, "losses", mlma_packed_array(s->ref.losses, s->ref.n, FLOAT8OID, sizeof(double)));
			RowSetPut(&refs, "seqs", mlma_packed_array(s->ref.seqs, s->ref.n, INT8OID, sizeof(int64)));
			RowSetPut(&refs, "end_seq", Int64GetDatum(s->ref.end_seq));
			RowSetPut(&refs, "mean",
					  Float8GetDatum(mlma_losses_mean(s->ref.losses, s->ref.n)));
			RowSetPut(&refs, "built_at", TimestampTzGetDatum(w->now));
			RowSetPut(&refs, "reference_id",
					  Int64GetDatum(w->hist[s->ref.pending - 1].id));
			RowSetEnd(&refs);
		}
		RowSetRun(&refs,
				  "INSERT INTO mlma.reference_batches AS r "
				  "SELECT * FROM unnest($1::mlma.reference_batches[]) "
				  "ON CONFLICT (stream_id) DO UPDATE "
				  "   SET version_no = excluded.version_no, "
				  "       model_version = excluded.model_version, "
				  "       source = excluded.source, losses = excluded.losses, "
				  "       seqs = excluded.seqs, end_seq = excluded.end_seq, "
				  "       mean = excluded.mean, built_at = excluded.built_at, "
				  "       reference_id = excluded.reference_id",
				  SPI_OK_INSERT);
	}

	/* the eager checks */
	if (w->nchecks > 0)
	{
		int64	   *check_ids = NextIds("checks", "check_id", w->nchecks);

		RowSetInit(&checks, "checks");
		for (i = 0; i < w->nchecks; i++)
		{
			SetCheck   *c = &w->checks[i];
			SetStream  *s = c->s;

			c->check_id = check_ids[i];
			RowSetBegin(&checks);
			RowSetPut(&checks, "check_id", Int64GetDatum(c->check_id));
			RowSetPut(&checks, "stream_id", Int64GetDatum(s->rows->stream_id));
			RowSetPut(&checks, "model_version", mlma_text_of(&w->version_text, s->model_version));
			RowSetPut(&checks, "batch_no", Int32GetDatum(c->batch_no));
			RowSetPut(&checks, "method", mlma_text_of(&w->method_text, s->method_name));
			RowSetPut(&checks, "alpha", Float8GetDatum(s->alpha));
			RowSetPut(&checks, "check_mode", mlma_text_of(&w->mode_text, "eager"));
			RowSetPut(&checks, "status",
					  mlma_text_of(&w->status_text, c->skipped ? "skipped" : "done"));
			RowSetPut(&checks, "n_reference", Int32GetDatum(c->ev.n_reference));
			RowSetPut(&checks, "n_current", Int32GetDatum(c->ev.n_current));
			RowSetPut(&checks, "created_at", TimestampTzGetDatum(w->now));
			RowSetPut(&checks, "checked_at", TimestampTzGetDatum(w->now));
			if (c->skipped)
			{
				RowSetPut(&checks, "note",
						  CStringGetTextDatum("not tested: fewer than 2 benchmark values in the batch"));
				RowSetEnd(&checks);
				continue;
			}
			if (c->defined)
			{
				RowSetPut(&checks, "reference_mean", Float8GetDatum(c->ev.reference_mean));
				RowSetPut(&checks, "batch_mean", Float8GetDatum(c->ev.batch_mean));
				RowSetPut(&checks, "statistic", Float8GetDatum(c->ev.statistic));
				RowSetPut(&checks, "p_value", Float8GetDatum(c->ev.p_value));
				RowSetPut(&checks, "effect", Float8GetDatum(c->ev.effect));
			}
			RowSetPut(&checks, "significant", BoolGetDatum(c->d.significant));
			RowSetPut(&checks, "drift", BoolGetDatum(c->d.drift));
			if (c->ref_pending > 0)
				RowSetPut(&checks, "reference_id",
						  Int64GetDatum(w->hist[c->ref_pending - 1].id));
			else if (c->ref_id > 0)
				RowSetPut(&checks, "reference_id", Int64GetDatum(c->ref_id));
			RowSetPut(&checks, "threshold", Float8GetDatum(s->alpha));
			RowSetEnd(&checks);
		}
		RowSetInsert(&checks, "checks");
	}

	if (w->nqueue > 0)
	{
		Oid			types[2] = {INT8ARRAYOID, INT4ARRAYOID};
		Datum		args[2];

		args[0] = mlma_array_datum(w->queue_ids, NULL, w->nqueue, INT8OID);
		args[1] = mlma_array_datum(w->queue_bnos, NULL, w->nqueue, INT4OID);
		ret = RunCached("INSERT INTO mlma.check_queue (stream_id, batch_no) "
									"SELECT * FROM ROWS FROM (unnest($1::int8[]), unnest($2::int4[]))",
						2, types, args);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "mlma: queueing checks failed: %s", SPI_result_code_string(ret));
	}

	/*
	 * The state rows of the streams whose batches closed; a statement's
	 * carried streams write theirs once, at its end (WriteDueStates).
	 */
	due = palloc(sizeof(SetStream *) * Max(n, 1));
	k = 0;
	for (i = 0; i < n; i++)
	{
		SetStream  *s = &ss[i];

		if (!s->fast || !s->wrote)
			continue;
		if (w->defer_state)
			s->state_due = true;
		else
			due[k++] = s;
	}
	WriteStates(due, k);

	ids = palloc(sizeof(Datum) * n);
	for (i = 0; i < 3; i++)
		vals[i] = palloc(sizeof(Datum) * n);

	/* retrain requests of the streams that drift, in stream_id order */
	k = 0;
	for (i = 0; i < n; i++)
	{
		SetCheck   *c;

		if (!ss[i].fast || !ss[i].drifted)
			continue;
		c = &w->checks[ss[i].drift_check];
		ids[k] = Int64GetDatum(ss[i].rows->stream_id);
		vals[0][k] = Float8GetDatum(c->ev.p_value);
		vals[1][k] = Float8GetDatum(c->ev.effect);
		vals[2][k] = Int64GetDatum(c->check_id);
		k++;
	}
	if (k > 0)
		(void) mlma_raise_drift_requests(ids, vals[0], vals[1], vals[2], k);
}

/* the first block of a carry's working memory, and its size per row */
#define SET_WORK_BLOCK (32 * 1024 * 1024)
#define SET_WORK_PER_ROW 320

/*
 * The streams a statement took in earlier chunks: their state as this
 * statement left it, and their open tail (observations after the last
 * batch closed) kept in memory instead of mlma.open_runs until the
 * statement ends or the tails grow beyond twice mlma.statement_chunk_size
 * observations; beyond mlma.stream_cache_size streams, the carried state is
 * dropped after each chunk (memory stays bounded).
 */
typedef struct CarryEntry
{
	int64		stream_id;		/* hash key */
	SetStream	s;
} CarryEntry;

struct MlmaSetCarry
{
	MemoryContext cxt;
	MemoryContext work;			/* a chunk's working memory, reset after it */
	HTAB	   *streams;
	int64		ntail;			/* observations in all tails */
};

/* empty the carry: no stream taken, nothing in memory */
static void
CarryReset(MlmaSetCarry *c)
{
	HASHCTL		ctl;

	MemoryContextReset(c->cxt);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(CarryEntry);
	ctl.hcxt = c->cxt;
	c->streams = hash_create("mlma statement streams taken", 1024, &ctl,
							 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	c->ntail = 0;
}

MlmaSetCarry *
mlma_set_carry_create(int64 rows)
{
	MlmaSetCarry *c = palloc0(sizeof(MlmaSetCarry));
	Size		block = SET_WORK_BLOCK;

	c->cxt = AllocSetContextCreate(CurrentMemoryContext, "mlma set carry",
								   ALLOCSET_DEFAULT_SIZES);

	/*
	 * One block for what a chunk allocates, kept when the context is reset:
	 * the next chunk reuses its pages instead of faulting in new ones (a
	 * page fault costs about as much as recording an observation).  A
	 * small statement gets a block of its size.
	 */
	if (rows < (int64) (SET_WORK_BLOCK / SET_WORK_PER_ROW))
		block = Max(ALLOCSET_DEFAULT_INITSIZE,
					MAXALIGN((Size) Max(rows, 0) * SET_WORK_PER_ROW));
	c->work = AllocSetContextCreate(CurrentMemoryContext, "mlma set ingest",
									0, block, SET_WORK_BLOCK);
	CarryReset(c);
	return c;
}

/* a copy in cxt of n elements of size sz */
static void *
CopyTo(MemoryContext cxt, const void *p, Size sz, int n)
{
	void	   *q = MemoryContextAlloc(cxt, sz * Max(n, 1));

	if (n > 0)
		memcpy(q, p, sz * n);
	return q;
}

/*
 * KeepStream
 *		Carry the state of stream s, whose open tail is s->obs[0, nobs),
 *		to the next chunk of the statement.
 */
static void
KeepStream(MlmaSetCarry *carry, SetStream *s)
{
	bool		found;
	CarryEntry *e = hash_search(carry->streams, &s->rows->stream_id,
								HASH_ENTER, &found);
	int			ntail = s->nobs;

	if (found)
	{
		carry->ntail -= e->s.nobs;
		pfree(e->s.obs);
		if (e->s.ref.losses != s->ref.losses && e->s.ref.losses != NULL)
		{
			pfree(e->s.ref.losses);
			if (e->s.ref.seqs != NULL)
				pfree(e->s.ref.seqs);
		}
	}
	else
	{
		s->stream.name = MemoryContextStrdup(carry->cxt, s->stream.name);
		s->model_version = MemoryContextStrdup(carry->cxt, s->model_version);
		s->method_name = MemoryContextStrdup(carry->cxt, s->method_name);
	}
	if (!found || e->s.ref.losses != s->ref.losses)
	{
		if (s->ref.losses != NULL)
			s->ref.losses = CopyTo(carry->cxt, s->ref.losses, sizeof(double), s->ref.n);
		if (s->ref.seqs != NULL)
			s->ref.seqs = CopyTo(carry->cxt, s->ref.seqs, sizeof(int64), s->ref.n);
	}
	s->obs = CopyTo(carry->cxt, s->obs, sizeof(SetObs), ntail);
	s->front = 0;
	s->nobs = ntail;
	s->nopen = ntail;
	s->ref.pending = 0;
	s->ref_changed = false;
	s->drifted = false;
	s->wrote = false;
	s->rows = NULL;
	e->s = *s;
	carry->ntail += ntail;
}

/*
 * InsertTails
 *		Write the open tails of the n carried streams es[] to
 *		mlma.open_runs, one run per stream (a new run wherever seqs are not
 *		consecutive), with mlma_insert_runs.  Their open batches are then
 *		all in the table.  Returns the number of observations written.
 */
static int
InsertTails(CarryEntry **es, int n)
{
	int			total = 0;
	int			nruns = 0;
	int			i;
	int64	   *ids;
	int64	   *seqs;
	Datum	   *arrays;
	TimestampTz *at;
	double	   *losses;
	double	   *benches;
	bool	   *has_bench;
	int			cap = 1;

	for (i = 0; i < n; i++)
	{
		total += es[i]->s.nobs;
		cap = Max(cap, es[i]->s.nobs);
	}
	ids = palloc(sizeof(int64) * Max(total, 1));
	seqs = palloc(sizeof(int64) * Max(total, 1));
	arrays = palloc(sizeof(Datum) * 3 * Max(total, 1));
	at = palloc(sizeof(TimestampTz) * cap);
	losses = palloc(sizeof(double) * cap);
	benches = palloc(sizeof(double) * cap);
	has_bench = palloc(sizeof(bool) * cap);
	for (i = 0; i < n; i++)
	{
		SetStream  *s = &es[i]->s;
		int			j;
		int			k;

		for (j = 0; j < s->nobs; j = k)
		{
			/* the consecutive seqs from j on */
			for (k = j; k < s->nobs && s->obs[k].seq == s->obs[j].seq + (k - j); k++)
			{
				at[k - j] = s->obs[k].at;
				losses[k - j] = s->obs[k].loss;
				benches[k - j] = s->obs[k].bench;
				has_bench[k - j] = s->obs[k].has_bench;
			}
			ids[nruns] = es[i]->stream_id;
			seqs[nruns] = s->obs[j].seq;
			mlma_run_arrays(k - j, at, losses, benches, has_bench, &arrays[3 * nruns]);
			nruns++;
		}
		if (s->nobs > 0)
		{
			s->table_open = s->next_seq - s->open_start_seq;
			s->table_lo = s->open_start_seq;
			s->nobs = 0;
			s->nopen = 0;
		}
	}

	mlma_insert_runs(nruns, ids, seqs, arrays);
	return total;
}

static int
CmpCarriedById(const void *a, const void *b)
{
	int64		x = (*(SetStream *const *) a)->stream.stream_id;
	int64		y = (*(SetStream *const *) b)->stream.stream_id;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * WriteDueStates
 *		Write the state rows the n carried streams es[] still owe (their
 *		batches closed in chunks whose Flush left the state for the end).
 */
static void
WriteDueStates(CarryEntry **es, int n)
{
	SetStream **due = palloc(sizeof(SetStream *) * Max(n, 1));
	int			k = 0;
	int			i;

	for (i = 0; i < n; i++)
		if (es[i]->s.state_due)
		{
			due[k++] = &es[i]->s;
			es[i]->s.state_due = false;
		}
	qsort(due, k, sizeof(SetStream *), CmpCarriedById);
	WriteStates(due, k);
	pfree(due);
}

/*
 * WriteTails
 *		Write the open tails of the carried streams to mlma.open_runs;
 *		with own, also their state rows, and note the streams as this
 *		transaction's (end of statement, or the carry is dropped).
 */
static void
WriteTails(MlmaSetCarry *carry, bool own)
{
	HASH_SEQ_STATUS it;
	CarryEntry *e;
	CarryEntry **es;
	int			n = 0;
	int			i;

	if (hash_get_num_entries(carry->streams) == 0)
		return;
	es = palloc(sizeof(CarryEntry *) * hash_get_num_entries(carry->streams));
	hash_seq_init(&it, carry->streams);
	while ((e = hash_seq_search(&it)) != NULL)
		es[n++] = e;
	InsertTails(es, n);
	carry->ntail = 0;
	if (own)
		WriteDueStates(es, n);
	for (i = 0; own && i < n; i++)
		mlma_own_stream(es[i]->stream_id, es[i]->s.open_start_seq,
						es[i]->s.next_seq, es[i]->s.age_flagged);
}

/*
 * mlma_set_carry_finish
 *		End of the statement: the open tails go to mlma.open_runs.
 */
void
mlma_set_carry_finish(MlmaSetCarry *carry)
{
	WriteTails(carry, true);
	MemoryContextDelete(carry->cxt);
	MemoryContextDelete(carry->work);
}

/*
 * mlma_close_full_batch
 *		The row path's batch close (see mlma.h): the stream's open batch,
 *		[open_start_seq, next_seq) in mlma.open_runs, is full, and this
 *		transaction holds its writer lock.  Closed as the set path closes
 *		it, through the access methods; false when that cannot be done
 *		(nothing was written: the caller uses mlma._close_batch).
 */
bool
mlma_close_full_batch(const MlmaStream *stream, int64 open_start_seq,
					  int64 next_seq)
{
	MemoryContext cxt;
	MemoryContext old;
	MlmaStreamRows rows;
	SetStream	s;
	SetWork		w;
	bool		done = false;

	if (IsolationUsesXactSnapshot() || !mlma_direct_usable())
		return false;
	cxt = AllocSetContextCreate(CurrentMemoryContext, "mlma batch close",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	memset(&rows, 0, sizeof(rows));
	rows.stream_id = stream->stream_id;
	rows.stream = stream;
	memset(&s, 0, sizeof(s));
	s.rows = &rows;
	s.stream = *stream;
	s.fast = true;
	/* read as the set path reads; the batch must be the one we filled */
	if (ReadStreamsDirect(&s, 1) && s.fast &&
		s.open_start_seq == open_start_seq && s.next_seq == next_seq)
	{
		/* as _close_batch: whatever is open closes (nothing: no batch) */
		s.closes = true;
		TakeOpen(&s, 1);
		if (s.nobs > 0)
		{
			memset(&w, 0, sizeof(w));
			w.now = GetCurrentTransactionStartTimestamp();
			RowSetInit(&w.batches, "batches");
			CloseBatch(&w, &s, 0, s.nobs);
			Flush(&w, &s, 1);
		}
		done = true;
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return done;
}

/* statements of at most this many rows take the row path */
#define MLMA_SMALL_SET 8

/*
 * mlma_record_streams
 *		See mlma.h.  The caller is connected to SPI; streams[] is sorted by
 *		stream_id.
 */
void
mlma_record_streams(MlmaStreamRows *streams, int n, MlmaSetCarry *carry)
{
	MemoryContext cxt;
	MemoryContext old;
	SetStream  *ss;
	SetWork		w;
	int			ntoread = 0;
	int			nfast = 0;
	int			nrows = 0;
	int			i;

	/*
	 * A handful of rows: the row path (one direct insert each) costs less
	 * than the set path's fixed statements.  The streams are still taken in
	 * stream_id order.
	 */
	for (i = 0; i < n; i++)
		nrows += streams[i].n;
	if (nrows <= MLMA_SMALL_SET && hash_get_num_entries(carry->streams) == 0)
	{
		for (i = 0; i < n; i++)
		{
			int			j;

			for (j = 0; j < streams[i].n; j++)
				streams[i].reasons[j] = mlma_record(streams[i].obs[j]);
		}
		return;
	}

	cxt = carry->work;
	old = MemoryContextSwitchTo(cxt);
	ss = palloc0(sizeof(SetStream) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		const MlmaStream *cached;
		CarryEntry *e;

		ss[i].rows = &streams[i];
		ss[i].fast = !IsolationUsesXactSnapshot() && streams[i].stream_id > 0 &&
			streams[i].n > 0;
		if (!ss[i].fast)
			continue;
		nfast++;
		e = hash_search(carry->streams, &streams[i].stream_id, HASH_FIND, NULL);
		if (e != NULL && !e->s.has_ref && e->s.policy != POLICY_BENCHMARK &&
			e->s.version_start_seq < e->s.open_start_seq)
		{
			/*
			 * Its warm-up needs batches an earlier chunk closed: the row
			 * path takes it from here, with its open batch in the table.
			 */
			carry->ntail -= InsertTails(&e, 1);
			WriteDueStates(&e, 1);
			hash_search(carry->streams, &streams[i].stream_id, HASH_REMOVE, NULL);
			ss[i].fast = false;
			nfast--;
			continue;
		}
		if (e != NULL)
		{
			/* taken by an earlier chunk: its state is the one in memory */
			ss[i] = e->s;
			ss[i].rows = &streams[i];
			ss[i].known = true;
			continue;
		}
		cached = streams[i].stream != NULL ? streams[i].stream
			: mlma_stream_get(streams[i].obs[0]->name, false);
		if (cached == NULL || cached->stream_id != streams[i].stream_id)
		{
			ss[i].fast = false;
			nfast--;
			continue;
		}
		ss[i].stream = *cached;
		ss[i].stream.name = pstrdup(cached->name);
		ntoread++;
	}

	if (ntoread > 0)
		ReadStreams(ss, n);

	/* the new observations of each stream, after its tail; does it close? */
	memset(&w, 0, sizeof(w));
	w.now = GetCurrentTransactionStartTimestamp();
	w.defer_state = true;		/* every fast stream is carried below */
	for (i = 0; i < n; i++)
	{
		SetStream  *s = &ss[i];
		MlmaStreamRows *r = s->rows;
		double	   *losses;
		double	   *benches;
		int		   *keep;
		int			nkeep;
		int			j;
		int			front;
		SetObs	   *all;

		if (!s->fast)
			continue;
		losses = palloc(sizeof(double) * r->n);
		benches = palloc(sizeof(double) * r->n);
		keep = palloc(sizeof(int) * r->n);
		nkeep = mlma_check_rows(&s->stream, r->obs, r->n, losses, benches, keep,
								r->reasons);
		s->closes = nkeep > 0 &&
			(s->next_seq - s->open_start_seq) + nkeep >= s->batch_size;
		/* room in front for the open observations TakeOpen takes out */
		front = s->closes && s->table_open > 0 && s->table_open <= MaxAllocSize / sizeof(SetObs)
			? (int) s->table_open : 0;
		all = palloc(sizeof(SetObs) * Max(front + s->nobs + nkeep, 1));
		all += front;
		if (s->nobs > 0)
			memcpy(all, s->obs, sizeof(SetObs) * s->nobs);
		for (j = 0; j < nkeep; j++)
		{
			SetObs	   *o = &all[s->nobs + j];

			o->seq = s->next_seq + j;
			o->at = r->obs[keep[j]]->observed_at;
			o->loss = losses[keep[j]];
			o->bench = benches[keep[j]];
			o->has_bench = r->obs[keep[j]]->has_benchmark;
		}
		pfree(losses);
		pfree(benches);
		pfree(keep);
		s->obs = all;
		s->front = front;
		s->nobs += nkeep;
		s->next_seq += nkeep;
	}
	if (nfast > 0)
		TakeOpen(ss, n);

	/* close the batches in memory */
	RowSetInit(&w.batches, "batches");
	for (i = 0; i < n; i++)
	{
		SetStream  *s = &ss[i];
		int			start = 0;	/* first index of the open batch */
		int			pos = s->nopen; /* next observation to add */
		int64		count;		/* observations in the open batch */
		int64		nnew = s->nobs - s->nopen;

		if (!s->fast)
			continue;
		/* as observations arrive one by one: close when full */
		count = (s->next_seq - nnew) - s->open_start_seq;
		while (pos < s->nobs)
		{
			int64		room = s->batch_size - count;
			int			take = (int) Max(1, Min(room, s->nobs - pos));

			pos += take;
			count += take;
			if (count >= s->batch_size)
			{
				CloseBatch(&w, s, start, pos);
				start = pos;
				count = 0;
			}
		}
		/*
		 * The rest stays open: a tail in memory (after the table's open
		 * rows when nothing closed, those were not taken).
		 */
		s->obs = s->obs + start;
		s->nobs -= start;
	}
	if (nfast > 0)
		Flush(&w, ss, n);
	for (i = 0; i < n; i++)
		if (ss[i].fast)
		{
			if (ss[i].ref.pending > 0)
				ss[i].ref.id = w.hist[ss[i].ref.pending - 1].id;
			KeepStream(carry, &ss[i]);
		}
	/*
	 * Bounded memory: beyond twice a chunk's observations in open tails, the
	 * tails go to the table; beyond mlma.stream_cache_size streams taken,
	 * the carried state is dropped too (everything but the tails is written
	 * already; a stream of a later chunk is then read again).
	 */
	if (hash_get_num_entries(carry->streams) > mlma_stream_cache_size)
	{
		WriteTails(carry, true);
		CarryReset(carry);
	}
	else if (carry->ntail > 2 * (int64) mlma_statement_chunk_size)
		WriteTails(carry, false);

	/* the rest, one stream at a time */
	MemoryContextSwitchTo(old);
	for (i = 0; i < n; i++)
		if (!ss[i].fast)
			mlma_record_stream(streams[i].obs, streams[i].n, streams[i].reasons);
	MemoryContextReset(cxt);
}
