/*-------------------------------------------------------------------------
 *
 * ingest_bulk.c
 *	  The statement triggers that attach() installs on a user's table:
 *	  set-based recording of every observation a statement (INSERT, UPDATE,
 *	  COPY) brings.
 *
 * The trigger reads the statement's transition tables (NEW TABLE, and OLD
 * TABLE for an UPDATE, whose rows come in the same order), decodes each row
 * with the row trigger's mlma_decode_attached_row (same column and value
 * checks, same on_invalid policy: a row that cannot be an observation fails
 * the statement, or is stored, left out and counted) and groups the rows by
 * stream.  Streams first seen by the statement are created in name order;
 * then mlma_record_streams (ingest_set.c) records every stream's rows
 * set-wise: the streams are taken in stream_id order, the batches the rows
 * fill are closed and checked in C, and each mlma table is written with one
 * statement.  Checks, requests and NOTIFY are those of the row path.
 *
 * A very large statement is processed in chunks of
 * mlma.statement_chunk_size rows, so that its working memory stays
 * bounded; the streams stay taken from chunk to chunk and their open
 * batches stay in memory until the statement ends.  A single-row statement
 * takes the row path's one saved statement (mlma_record).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "mlma.h"

PG_FUNCTION_INFO_V1(mlma_observe_statement_trigger);
PG_FUNCTION_INFO_V1(mlma_observe_many);

/* the rows of one stream in a chunk */
typedef struct BulkGroup
{
	const char *name;			/* hash key */
	int64		stream_id;
	int			count;
	int			start;			/* first index in the sorted order */
	int			fill;
	MlmaStream	stream;			/* copy of the cache entry (stream_id > 0) */
} BulkGroup;

/*
 * RowsAlloc
 *		An array of n decoded rows (never freed alone: it goes with its
 *		memory context), each in one cache line: the passes over a chunk read
 *		its rows scattered, in stream order, and a row straddling two lines
 *		costs two misses.
 */
static MlmaObservation *
RowsAlloc(int n)
{
	StaticAssertStmt(sizeof(MlmaObservation) == 64,
					 "a decoded row fills one cache line");
	return (MlmaObservation *) TYPEALIGN(64, palloc(sizeof(MlmaObservation) * n + 64));
}

/*
 * The arrays of a chunk's rows, made once for all the chunks of a
 * statement: a later chunk reuses the pages an earlier one touched.
 */
typedef struct BulkScratch
{
	int			cap;			/* rows */
	BulkGroup  *groups;			/* a chunk's groups when names are interned */
	BulkGroup **list;
	BulkGroup **rowgroup;
	const MlmaObservation **run;	/* the rows, each stream's together */
	const char **reasons;
} BulkScratch;

static void
BulkScratchInit(BulkScratch *bs, int cap, bool interned)
{
	bs->cap = cap;
	bs->groups = interned ? palloc(sizeof(BulkGroup) * cap) : NULL;
	bs->list = palloc(sizeof(BulkGroup *) * cap);
	bs->rowgroup = palloc(sizeof(BulkGroup *) * cap);
	bs->run = palloc(sizeof(MlmaObservation *) * cap);
	bs->reasons = palloc(sizeof(const char *) * cap);
}

static uint32
BulkNameHash(const void *key, Size keysize)
{
	return string_hash(*(char *const *) key, MLMA_NAME_MAXBYTES);
}

static int
BulkNameMatch(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(char *const *) key1, *(char *const *) key2);
}

static int
GroupByStreamId(const void *a, const void *b)
{
	const BulkGroup *ga = *(BulkGroup *const *) a;
	const BulkGroup *gb = *(BulkGroup *const *) b;

	return ga->stream_id < gb->stream_id ? -1 : ga->stream_id > gb->stream_id ? 1 : 0;
}

static int
GroupByName(const void *a, const void *b)
{
	return strcmp((*(BulkGroup *const *) a)->name, (*(BulkGroup *const *) b)->name);
}

/*
 * RecordChunk
 *		Record the n decoded observations rows[] (statement order): group
 *		them by stream, create the new streams in name order, then record
 *		each stream's rows, in stream_id order.  The caller is connected to
 *		SPI.
 */
static void
RecordChunk(MlmaObservation *rows, int n, Oid source, MlmaSetCarry *carry,
			bool interned, BulkScratch *bs)
{
	HASHCTL		ctl;
	HTAB	   *groups;
	BulkGroup **list;
	BulkGroup **missing;
	int			ngroups = 0;
	int			nmissing = 0;
	const MlmaObservation **run;
	const char **reasons;
	MlmaStreamRows *streams;
	BulkGroup **rowgroup;
	const char **names;
	MlmaStream *configs;
	bool	   *found;
	int			i;
	int			pos;


	/*
	 * Names kept once (mlma_name_table_create) carry their group in their
	 * tag, cleared at the end; other names are looked up in a hash table.
	 */
	groups = NULL;
	if (!interned)
	{
		ctl.keysize = sizeof(char *);
		ctl.entrysize = sizeof(BulkGroup);
		ctl.hash = BulkNameHash;
		ctl.match = BulkNameMatch;
		ctl.hcxt = CurrentMemoryContext;
		groups = hash_create("mlma statement streams", Max(Min(n, 1024), 16), &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	}
	Assert(n <= bs->cap);
	list = bs->list;
	rowgroup = bs->rowgroup;
	for (i = 0; i < n; i++)
	{
		bool		found = true;
		BulkGroup  *g;

		/* rows of one stream often come together */
		if (i > 0 && (rows[i].name == rows[i - 1].name ||
					  (!interned && strcmp(rows[i].name, rows[i - 1].name) == 0)))
			g = rowgroup[i - 1];
		else if (interned)
		{
			void	  **tag = mlma_name_tag(rows[i].name);

			g = *tag;
			if (g == NULL)
			{
				g = *tag = &bs->groups[ngroups];
				g->name = rows[i].name;
				found = false;
			}
		}
		else
			g = hash_search(groups, &rows[i].name, HASH_ENTER, &found);
		rowgroup[i] = g;
		if (!found)
		{
			g->count = 0;
			g->fill = 0;
			g->stream_id = -1;
			list[ngroups++] = g;
		}
		g->count++;
	}

	/* stream ids (one lookup for all); new streams are created in name order */
	missing = palloc(sizeof(BulkGroup *) * ngroups);
	names = palloc(sizeof(char *) * ngroups);
	configs = palloc(sizeof(MlmaStream) * ngroups);
	found = palloc(sizeof(bool) * ngroups);
	for (i = 0; i < ngroups; i++)
		names[i] = list[i]->name;
	mlma_stream_get_many(names, ngroups, configs, found);
	for (i = 0; i < ngroups; i++)
	{
		if (found[i])
		{
			list[i]->stream_id = configs[i].stream_id;
			list[i]->stream = configs[i];
		}
		else
			missing[nmissing++] = list[i];
	}
	if (nmissing > 0)
	{
		qsort(missing, nmissing, sizeof(BulkGroup *), GroupByName);
		for (i = 0; i < nmissing; i++)
		{
			/* unknown streams the attachment may not create: see below */
			if (rows[0].defaults == NULL ||
				mlma_stream_name_problem(missing[i]->name) != NULL)
				continue;
			missing[i]->stream = *mlma_stream_auto_create(missing[i]->name,
														  rows[0].defaults);
			missing[i]->stream_id = missing[i]->stream.stream_id;
		}
	}

	/* the rows of each stream together, in statement order, streams by id */
	qsort(list, ngroups, sizeof(BulkGroup *), GroupByStreamId);
	pos = 0;
	for (i = 0; i < ngroups; i++)
	{
		list[i]->start = pos;
		pos += list[i]->count;
	}
	/* read in order, each row written after its stream's earlier ones */
	run = bs->run;
	for (i = 0; i < n; i++)
	{
		BulkGroup  *g = rowgroup[i];

		run[g->start + g->fill++] = &rows[i];
	}

	/*
	 * Each stream's rows, set-wise; the rows of unknown streams that could
	 * not be created (stream_id -1, first) are each refused or skipped by
	 * mlma_record_stream with the reason, as on the row path.
	 */
	reasons = bs->reasons;
	memset(reasons, 0, sizeof(const char *) * n);
	streams = palloc(sizeof(MlmaStreamRows) * ngroups);
	for (i = 0; i < ngroups; i++)
	{
		streams[i].stream_id = list[i]->stream_id;
		streams[i].stream = list[i]->stream_id > 0 ? &list[i]->stream : NULL;
		if (streams[i].stream != NULL)
			list[i]->stream.name = pstrdup(list[i]->name);	/* the cache may drop its own */
		streams[i].obs = &run[list[i]->start];
		streams[i].n = list[i]->count;
		streams[i].reasons = &reasons[list[i]->start];
	}
	mlma_record_streams(streams, ngroups, carry);
	for (i = 0; i < n; i++)
		if (reasons[i] != NULL)
			mlma_count_skip(run[i]->name, source, reasons[i]);

	pfree(streams);
	pfree(missing);
	if (groups != NULL)
		hash_destroy(groups);
	else
		for (i = 0; i < ngroups; i++)
			*mlma_name_tag(list[i]->name) = NULL;
}

/*
 * RecordChunkOf
 *		RecordChunk for the rows of table rel; an error (on_invalid 'error')
 *		names the table and the attachment.  *carry is made in carry_cxt
 *		when the set path first needs it (a single-row statement never does).
 */
static void
RecordChunkOf(MlmaObservation *rows, int n, Relation rel, const MlmaAttachArgs *a,
			  MlmaSetCarry **carry, MemoryContext carry_cxt, BulkScratch *bs,
			  int chunk, bool first, bool last)
{
	PG_TRY();
	{
		if (n == 1 && first && last)
		{
			/* a single-row statement: the row path's one saved statement */
			const char *reason = mlma_record(&rows[0]);

			if (reason != NULL)
				mlma_count_skip(rows[0].name, RelationGetRelid(rel), reason);
		}
		else
		{
			/*
			 * A connection of its own: every SPI call leaves the procedure
			 * context current, so what is allocated after it goes there;
			 * this way it goes with the chunk.
			 */
			if (*carry == NULL)
			{
				MemoryContext old = MemoryContextSwitchTo(carry_cxt);

				*carry = mlma_set_carry_create(chunk);
				BulkScratchInit(bs, chunk, true);
				MemoryContextSwitchTo(old);
			}
			SPI_connect();
			if (n > 0)
				RecordChunk(rows, n, RelationGetRelid(rel), *carry, true, bs);
			if (last)
				mlma_set_carry_finish(*carry);
			SPI_finish();
		}
	}
	PG_CATCH();
	{
		mlma_rethrow_with_table(rel, a);
	}
	PG_END_TRY();
}

/*
 * mlma_observe_statement_trigger
 *		AFTER INSERT ... REFERENCING NEW TABLE and AFTER UPDATE ...
 *		REFERENCING OLD TABLE NEW TABLE, FOR EACH STATEMENT trigger of an
 *		attached table; the same arguments as mlma._observe_trigger().  A
 *		row becomes an observation under the same rules as on the row
 *		trigger.
 */
Datum
mlma_observe_statement_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	Relation	rel;
	TupleDesc	desc;
	Tuplestorestate *newtable;
	Tuplestorestate *oldtable = NULL;
	TupleTableSlot *newslot;
	TupleTableSlot *oldslot = NULL;
	MemoryContext cxt;
	MemoryContext rowcxt;
	MemoryContext oldcxt;
	MlmaObservation *rows;
	MlmaAttachArgs a;
	MlmaAttachedColumns cols;
	MlmaNames  *names;
	int			n = 0;
	bool		more = true;
	bool		first = true;
	int			chunk;
	int64		total;
	int64		nread = 0;
	MlmaSetCarry *carry = NULL;
	BulkScratch scratch;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mlma._observe_statement_trigger() must be called as a trigger")));
	trigger = trigdata->tg_trigger;
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		trigdata->tg_newtable == NULL ||
		(TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && trigdata->tg_oldtable == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mlma._observe_statement_trigger() must be an AFTER ... FOR EACH STATEMENT trigger with transition tables"),
				 errhint("Install it with mlma.attach().")));
	mlma_attach_args(trigger, "mlma._observe_statement_trigger()", &a);
	if (!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) &&
		!TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		return PointerGetDatum(NULL);

	rel = trigdata->tg_relation;
	/* the table is locked: its columns stay where they are for the statement */
	mlma_attached_columns(trigger, rel, &a, &cols);
	desc = RelationGetDescr(rel);
	newtable = trigdata->tg_newtable;
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		oldtable = trigdata->tg_oldtable;

	SPI_connect();
	cxt = AllocSetContextCreate(CurrentMemoryContext, "mlma statement ingest",
								ALLOCSET_DEFAULT_SIZES);
	rowcxt = AllocSetContextCreate(cxt, "mlma statement rows",
								   ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);

	/* read with our own pointers, from the start, leaving others' alone */
	newslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	tuplestore_select_read_pointer(newtable,
								   tuplestore_alloc_read_pointer(newtable, 0));
	tuplestore_rescan(newtable);
	if (oldtable != NULL)
	{
		oldslot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
		tuplestore_select_read_pointer(oldtable,
									   tuplestore_alloc_read_pointer(oldtable, 0));
		tuplestore_rescan(oldtable);
	}

	/* chunks of at most the statement's rows: a single row allocates one */
	total = tuplestore_tuple_count(newtable);
	chunk = (int) Min((int64) mlma_statement_chunk_size, Max(total, 1));
	names = mlma_name_table_create(chunk);
	rows = RowsAlloc(chunk);
	while (more)
	{
		MemoryContextSwitchTo(rowcxt);
		n = 0;
		while (n < chunk)
		{
			char	   *problem;
			int			code;

			if (!tuplestore_gettupleslot(newtable, true, false, newslot))
			{
				more = false;
				break;
			}
			nread++;
			if (oldtable != NULL &&
				!tuplestore_gettupleslot(oldtable, true, false, oldslot))
				elog(ERROR, "transition tables of an UPDATE differ in length");
			switch (mlma_decode_attached_row(&cols, &a, rel, oldslot, newslot,
											 names, &rows[n], &problem, &code))
			{
				case MLMA_ROW_OBSERVATION:
					n++;
					break;
				case MLMA_ROW_PROBLEM:
					if (!a.skip)
						mlma_attached_row_error(rel, &a, code, problem);
					mlma_count_skip(NULL, RelationGetRelid(rel), problem);
					break;
				case MLMA_ROW_NONE:
					break;
			}
		}
		/* the last chunk is known as such (a single row: the row path) */
		if (nread >= total)
			more = false;
		/* a tuple read from a spilled store belongs to the slot, in rowcxt */
		ExecClearTuple(newslot);
		if (oldslot != NULL)
			ExecClearTuple(oldslot);
		/* what recording a chunk allocates goes with the chunk's rows */
		RecordChunkOf(rows, n, rel, &a, &carry, cxt, &scratch, chunk, first, !more);
		first = false;
		MemoryContextSwitchTo(cxt);
		MemoryContextReset(rowcxt);
	}

	ExecDropSingleTupleTableSlot(newslot);
	if (oldslot != NULL)
		ExecDropSingleTupleTableSlot(oldslot);
	tuplestore_select_read_pointer(newtable, 0);
	if (oldtable != NULL)
		tuplestore_select_read_pointer(oldtable, 0);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
	SPI_finish();

	return PointerGetDatum(NULL);
}

/*
 * ArrayElems
 *		The elements of the one-dimensional array argument argno (NULL
 *		argument: NULL, *n = -1).  Arrays of more dimensions are refused.
 */
static Datum *
ArrayElems(FunctionCallInfo fcinfo, int argno, const char *what, Oid elemtype,
		   bool **nulls, int *n)
{
	ArrayType  *a;
	Datum	   *elems;
	int16		len;
	bool		byval;
	char		align;

	*n = -1;
	*nulls = NULL;
	if (PG_ARGISNULL(argno))
		return NULL;
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	get_typlenbyvalalign(elemtype, &len, &byval, &align);
	deconstruct_array(a, elemtype, len, byval, align, &elems, nulls, n);
	return elems;
}

/* element i of an argument array must not be NULL */
static void
RequireElem(const bool *nulls, int i, const char *what)
{
	if (nulls[i])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not contain NULL", what),
				 errdetail("Element %d is NULL.", i + 1)));
}

/*
 * mlma.observe_many(streams text[], actuals float8[], predicted float8[],
 *					 observed_at timestamptz[], benchmarks float8[]) -> bigint
 *		Element i of each array is one observation, as observe() records
 *		it; recorded set-based like a multi-row statement on an attached
 *		table, in chunks of mlma.statement_chunk_size.  observed_at NULL:
 *		now() for all; benchmarks NULL or a NULL element: no benchmark.
 *		Any invalid observation raises its error and nothing is stored.
 *		Returns the number of observations recorded.
 */
Datum
mlma_observe_many(PG_FUNCTION_ARGS)
{
	Datum	   *names;
	Datum	   *actuals;
	Datum	   *predicted;
	Datum	   *times;
	Datum	   *benches;
	bool	   *nn;
	bool	   *an;
	bool	   *pn;
	bool	   *tn;
	bool	   *bn;
	int			n;
	int			na;
	int			np;
	int			nt;
	int			nb;
	int			chunk = mlma_statement_chunk_size;
	int			start;
	MlmaObservation *rows;
	MlmaSetCarry *carry;
	BulkScratch scratch;
	MemoryContext cxt;
	MemoryContext chunkcxt;
	MemoryContext old;

	names = ArrayElems(fcinfo, 0, "streams", TEXTOID, &nn, &n);
	actuals = ArrayElems(fcinfo, 1, "actuals", FLOAT8OID, &an, &na);
	predicted = ArrayElems(fcinfo, 2, "predicted", FLOAT8OID, &pn, &np);
	times = ArrayElems(fcinfo, 3, "observed_at", TIMESTAMPTZOID, &tn, &nt);
	benches = ArrayElems(fcinfo, 4, "benchmarks", FLOAT8OID, &bn, &nb);
	if (names == NULL || actuals == NULL || predicted == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("streams, actuals and predicted must not be null")));
	if (na != n || np != n || (times != NULL && nt != n) ||
		(benches != NULL && nb != n))
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the arrays of observe_many must have the same length"),
				 errdetail("Lengths: streams %d, actuals %d, predicted %d, observed_at %s, benchmarks %s.",
						   n, na, np,
						   times != NULL ? psprintf("%d", nt) : "NULL",
						   benches != NULL ? psprintf("%d", nb) : "NULL")));
	if (n == 0)
		PG_RETURN_INT64(0);

	SPI_connect();
	cxt = AllocSetContextCreate(CurrentMemoryContext, "mlma observe_many",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	carry = mlma_set_carry_create(Min(n, chunk));
	rows = RowsAlloc(Min(n, chunk));
	BulkScratchInit(&scratch, Min(n, chunk), false);
	chunkcxt = AllocSetContextCreate(cxt, "mlma observe_many chunk",
									 ALLOCSET_DEFAULT_SIZES);
	for (start = 0; start < n; start += chunk)
	{
		int			m = Min(chunk, n - start);
		int			i;

		MemoryContextReset(chunkcxt);
		MemoryContextSwitchTo(chunkcxt);

		for (i = 0; i < m; i++)
		{
			int			k = start + i;
			MlmaObservation *o = &rows[i];

			RequireElem(nn, k, "streams");
			RequireElem(an, k, "actuals");
			RequireElem(pn, k, "predicted");
			memset(o, 0, sizeof(*o));
			o->name = TextDatumGetCString(names[k]);
			o->actual = DatumGetFloat8(actuals[k]);
			o->predicted = DatumGetFloat8(predicted[k]);
			o->observed_at = GetCurrentTransactionStartTimestamp();
			if (times != NULL)
			{
				RequireElem(tn, k, "observed_at");
				o->observed_at = DatumGetTimestampTz(times[k]);
			}
			if (benches != NULL && !bn[k])
			{
				o->has_benchmark = true;
				o->benchmark = DatumGetFloat8(benches[k]);
			}
		}
		if (n == 1)
			(void) mlma_record(&rows[0]);
		else
		{
			/* SPI's procedure context, too, goes with the chunk */
			SPI_connect();
			RecordChunk(rows, m, InvalidOid, carry, false, &scratch);
			if (start + m >= n)
				mlma_set_carry_finish(carry);
			SPI_finish();
		}
		MemoryContextSwitchTo(cxt);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	SPI_finish();
	PG_RETURN_INT64(n);
}
