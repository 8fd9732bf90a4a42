/*-------------------------------------------------------------------------
 *
 * stream.c
 *	  Streams seen from C: the backend-local name -> stream cache used by
 *	  the observation hot path, automatic creation of streams seen by an
 *	  attached table, and the loss option check used by create_stream and
 *	  configure.
 *
 * The cache holds, per stream name, what recording an observation needs
 * (id, loss function, batch size, pause flag, model age deadline, whether
 * observations need a benchmark value) together
 * with the config_version it was read at.  The first observation of a
 * stream in a transaction takes the stream's writer lock and compares
 * config_version, so a stale entry is detected there and reloaded; nothing
 * has to be broadcast between backends.  The whole cache is dropped when a
 * (sub)transaction aborts, since it may hold rows that never committed, when
 * mlma.streams itself is invalidated (e.g. DROP EXTENSION), and when this
 * backend changes a stream through SQL (mlma._invalidate_cache()).
 *
 * The writer lock of a stream (mlma_lock_stream) is a row lock on its
 * mlma.stream_state row: it lives in the tuple, not in the shared lock
 * table, so one transaction can hold it on any number of streams; it is
 * released at transaction or subtransaction abort and a waiter takes part in
 * deadlock detection.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "mlma.h"

PG_FUNCTION_INFO_V1(mlma_check_loss);
PG_FUNCTION_INFO_V1(mlma_invalidate_cache);
PG_FUNCTION_INFO_V1(mlma_lock_stream_sql);
PG_FUNCTION_INFO_V1(mlma_try_lock_stream_sql);

/*
 * Bumped at every transaction end, subtransaction abort and configuration
 * change made by this backend: per-transaction state of ingest.c is valid
 * only for the generation it was built in.
 */
uint64		mlma_xact_generation = 1;

static HTAB *stream_cache = NULL;
static MemoryContext stream_cache_cxt = NULL;
static bool cache_stale = false;
static bool callbacks_registered = false;
static Oid	streams_relid = InvalidOid;
static MlmaPlan load_plan;
static MlmaPlan create_plan;
static MlmaPlan lock_plan;
static MlmaPlan try_lock_plan;

/*
 * The columns of a stream's cache entry (FillStream), and its name ninth.
 */
#define STREAM_COLUMNS \
	"SELECT s.stream_id, st.config_version, s.loss, s.loss_param, " \
	"s.batch_size, s.paused, s.version_started_at + s.max_model_age, " \
	"s.reference_policy = 'benchmark', s.name " \
	"FROM mlma.streams s JOIN mlma.stream_state st USING (stream_id) "

/*
 * StreamCacheXactCallback / StreamCacheSubXactCallback
 *		Forget every cached stream when a (sub)transaction aborts.
 */
static void
StreamCacheXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		cache_stale = true;
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		mlma_xact_generation++;
}

static void
StreamCacheSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
						   SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		cache_stale = true;
		mlma_xact_generation++;
	}
}

/*
 * StreamCacheRelcacheCallback
 *		Forget every cached stream when mlma.streams changes shape or goes
 *		away (DROP EXTENSION; stream ids restart after CREATE EXTENSION).
 */
static void
StreamCacheRelcacheCallback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == streams_relid)
	{
		cache_stale = true;
		streams_relid = InvalidOid;
		mlma_xact_generation++;
	}
}

/*
 * StreamsRelid
 *		The oid of mlma.streams (looked up once, forgotten when the table is
 *		invalidated), and the callbacks that keep the caches honest.
 */
static Oid
StreamsRelid(void)
{
	if (!callbacks_registered)
	{
		RegisterXactCallback(StreamCacheXactCallback, NULL);
		RegisterSubXactCallback(StreamCacheSubXactCallback, NULL);
		CacheRegisterRelcacheCallback(StreamCacheRelcacheCallback, (Datum) 0);
		callbacks_registered = true;
	}
	if (!OidIsValid(streams_relid))
	{
		Oid			nsp = get_namespace_oid("mlma", true);

		if (OidIsValid(nsp))
			streams_relid = get_relname_relid("streams", nsp);
	}
	return streams_relid;
}

/*
 * The cache is keyed by a pointer to the name: an entry holds its own copy
 * of the name (allocated in the cache's memory context when it is entered),
 * so it costs the name's length and not MLMA_NAME_MAXBYTES.
 */
static uint32
StreamNameHash(const void *key, Size keysize)
{
	const char *name = *(char *const *) key;

	return string_hash(name, MLMA_NAME_MAXBYTES);
}

static int
StreamNameMatch(const void *key1, const void *key2, Size keysize)
{
	return strcmp(*(char *const *) key1, *(char *const *) key2);
}

static void *
StreamNameCopy(void *dest, const void *src, Size keysize)
{
	*(char **) dest = MemoryContextStrdup(stream_cache_cxt, *(char *const *) src);
	return dest;
}

/*
 * StreamCacheDrop
 *		Forget every cached stream and free the cache's memory.
 */
static void
StreamCacheDrop(void)
{
	if (stream_cache_cxt != NULL)
		MemoryContextDelete(stream_cache_cxt);
	stream_cache_cxt = NULL;
	stream_cache = NULL;
}

/*
 * StreamCacheInit
 *		Create (or re-create after invalidation) the cache and its plans.
 *		The caller is connected to SPI.
 */
static void
StreamCacheInit(void)
{
	StreamsRelid();

	if (cache_stale && stream_cache != NULL)
		StreamCacheDrop();
	cache_stale = false;

	if (stream_cache == NULL)
	{
		HASHCTL		ctl;

		stream_cache_cxt = AllocSetContextCreate(TopMemoryContext,
												 "mlma stream cache",
												 ALLOCSET_DEFAULT_SIZES);
		ctl.keysize = sizeof(char *);
		ctl.entrysize = sizeof(MlmaStream);
		ctl.hash = StreamNameHash;
		ctl.match = StreamNameMatch;
		ctl.keycopy = StreamNameCopy;
		ctl.hcxt = stream_cache_cxt;
		stream_cache = hash_create("mlma streams by name", 256, &ctl,
								   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE |
								   HASH_KEYCOPY | HASH_CONTEXT);
	}

	StreamsRelid();
}

/*
 * FillStream
 *		A stream's configuration from a row of STREAM_COLUMNS.
 */
static void
FillStream(MlmaStream *entry, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	Datum		d;

	entry->stream_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	entry->config_version = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	entry->loss_kind = mlma_loss_kind(SPI_getvalue(tup, desc, 3));
	d = SPI_getbinval(tup, desc, 4, &isnull);
	entry->loss_param = isnull ? NAN : DatumGetFloat8(d);
	entry->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	entry->paused = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	d = SPI_getbinval(tup, desc, 7, &isnull);
	entry->has_deadline = !isnull;
	entry->deadline = isnull ? 0 : DatumGetTimestampTz(d);
	entry->benchmark = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
	entry->seq_hint = 0;
}

/*
 * mlma_stream_get
 *		The cache entry of a stream, loaded when absent or when reload is
 *		set; NULL when no stream has this name.  The caller is connected to
 *		SPI.
 */
MlmaStream *
mlma_stream_get(const char *name, bool reload)
{
	MlmaStream *entry;
	bool		found;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			ret;

	if (strlen(name) >= MLMA_NAME_MAXBYTES)
		return NULL;

	StreamCacheInit();

	if (!reload)
	{
		entry = (MlmaStream *) hash_search(stream_cache, &name, HASH_FIND, NULL);
		if (entry != NULL)
			return entry;
	}

	args[0] = CStringGetTextDatum(name);
	ret = SPI_execute_plan(mlma_plan(&load_plan, STREAM_COLUMNS "WHERE s.name = $1",
									 1, argtypes),
						   args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "stream lookup failed: %s", SPI_result_code_string(ret));

	if (SPI_processed == 0)
	{
		hash_search(stream_cache, &name, HASH_REMOVE, NULL);
		SPI_freetuptable(SPI_tuptable);
		return NULL;
	}

	/*
	 * A full cache is emptied before a new name enters it: the entries are
	 * cheap to load again, and the backend's memory stays bounded however
	 * many streams it sees.  Entries held by a caller stay valid only until
	 * its next call of mlma_stream_get.
	 */
	if (hash_search(stream_cache, &name, HASH_FIND, NULL) == NULL &&
		hash_get_num_entries(stream_cache) >= mlma_stream_cache_size)
	{
		StreamCacheDrop();
		StreamCacheInit();
	}

	entry = (MlmaStream *) hash_search(stream_cache, &name, HASH_ENTER, &found);
	FillStream(entry, SPI_tuptable->vals[0], SPI_tuptable->tupdesc);
	SPI_freetuptable(SPI_tuptable);

	return entry;
}

/* a name and where it goes, for mlma_stream_get_many */
typedef struct NameSlot
{
	const char *name;
	int			index;
} NameSlot;

static int
NameSlotCmp(const void *a, const void *b)
{
	return strcmp(((const NameSlot *) a)->name, ((const NameSlot *) b)->name);
}

/*
 * mlma_stream_get_many
 *		The configuration of n streams at once: out[i] gets a copy of the
 *		stream named names[i] (its name field pointing to names[i]) and
 *		found[i] whether there is one.  Names not cached are read with one
 *		statement and enter the cache while it has room: a statement that
 *		writes more streams than the cache holds does not thrash it.  The
 *		caller is connected to SPI.
 */
void
mlma_stream_get_many(const char *const *names, int n, MlmaStream *out, bool *found)
{
	NameSlot   *miss = palloc(sizeof(NameSlot) * Max(n, 1));
	Datum	   *texts;
	int			nmiss = 0;
	int			i;
	int			ret;
	uint64		r;
	Oid			argtype = TEXTARRAYOID;
	Datum		arg;
	static MlmaPlan many_plan;

	StreamCacheInit();
	for (i = 0; i < n; i++)
	{
		MlmaStream *entry = NULL;

		found[i] = false;
		if (strlen(names[i]) >= MLMA_NAME_MAXBYTES)
			continue;
		entry = (MlmaStream *) hash_search(stream_cache, &names[i], HASH_FIND, NULL);
		if (entry != NULL)
		{
			out[i] = *entry;
			out[i].name = (char *) names[i];
			found[i] = true;
		}
		else
		{
			miss[nmiss].name = names[i];
			miss[nmiss].index = i;
			nmiss++;
		}
	}
	if (nmiss == 0)
		return;

	texts = palloc(sizeof(Datum) * nmiss);
	for (i = 0; i < nmiss; i++)
		texts[i] = CStringGetTextDatum(miss[i].name);
	arg = mlma_array_datum(texts, NULL, nmiss, TEXTOID);
	ret = SPI_execute_plan(mlma_plan(&many_plan,
									 STREAM_COLUMNS "WHERE s.name = ANY ($1)",
									 1, &argtype),
						   &arg, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "stream lookup failed: %s", SPI_result_code_string(ret));

	qsort(miss, nmiss, sizeof(NameSlot), NameSlotCmp);
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		NameSlot	key;
		NameSlot   *hit;

		key.name = SPI_getvalue(tup, SPI_tuptable->tupdesc, 9);	/* s.name */
		hit = bsearch(&key, miss, nmiss, sizeof(NameSlot), NameSlotCmp);
		if (hit == NULL)
			continue;
		i = hit->index;
		FillStream(&out[i], tup, SPI_tuptable->tupdesc);
		out[i].name = (char *) names[i];
		found[i] = true;
		if (hash_get_num_entries(stream_cache) < mlma_stream_cache_size)
		{
			bool		entered;
			MlmaStream *entry = (MlmaStream *) hash_search(stream_cache, &names[i],
														   HASH_ENTER, &entered);
			char	   *cached_name = entry->name;

			*entry = out[i];
			entry->name = cached_name;
		}
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * mlma_stream_auto_create
 *		Create a stream first seen by an attached table with the
 *		attachment's defaults (a JSON object of create_stream options) and
 *		return its cache entry.  A concurrent creation of the same name is
 *		not an error: the other transaction's stream is used.
 */
MlmaStream *
mlma_stream_auto_create(const char *name, const char *defaults)
{
	Datum		args[2];
	int			ret;
	MlmaStream *entry;

	Oid			argtypes[2] = {TEXTOID, TEXTOID};

	StreamCacheInit();
	args[0] = CStringGetTextDatum(name);
	args[1] = CStringGetTextDatum(defaults ? defaults : "{}");
	ret = SPI_execute_plan(mlma_plan(&create_plan,
									 "SELECT mlma._auto_create_stream($1, $2::jsonb)",
									 2, argtypes),
						   args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "stream creation failed: %s", SPI_result_code_string(ret));
	SPI_freetuptable(SPI_tuptable);

	entry = mlma_stream_get(name, true);
	if (entry == NULL)
		elog(ERROR, "stream \"%s\" vanished after its creation", name);
	return entry;
}

/*
 * mlma_check_loss(loss text, loss_param float8) -> void
 *		Raise a clear error when the loss kind is unknown or the parameter
 *		does not suit it.
 */
Datum
mlma_check_loss(PG_FUNCTION_ARGS)
{
	char	   *name;
	double		param;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("loss must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	/* the same checks and messages as mlma.loss() (stats_sql.c) */
	param = MlmaLossParam(PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0.0 : PG_GETARG_FLOAT8(1));
	(void) MlmaParseLossKind(name, param);
	PG_RETURN_VOID();
}

/*
 * mlma._invalidate_cache() -> void
 *		Called by every SQL function that changes a stream's configuration
 *		or state outside the hot path (configure, pause, resume, a new model
 *		version, drop_stream): this backend forgets what it cached.
 */
Datum
mlma_invalidate_cache(PG_FUNCTION_ARGS)
{
	cache_stale = true;
	mlma_xact_generation++;
	PG_RETURN_VOID();
}

/*
 * LockStreamRow
 *		Lock the stream's state row (FOR NO KEY UPDATE) until the end of the
 *		transaction; with skip_locked, give up at once when another
 *		transaction holds it.  True when the row was locked, false when it
 *		does not exist (dropped stream) or, with skip_locked, is busy.
 */
static bool
LockStreamRow(int64 stream_id, bool skip_locked)
{
	Oid			argtypes[1] = {INT8OID};
	SPIPlanPtr	plan;
	Datum		args[1];
	int			ret;
	bool		locked;

	plan = skip_locked
		? mlma_plan(&try_lock_plan,
					"SELECT 1 FROM mlma.stream_state WHERE stream_id = $1 "
					"FOR NO KEY UPDATE SKIP LOCKED", 1, argtypes)
		: mlma_plan(&lock_plan,
					"SELECT 1 FROM mlma.stream_state WHERE stream_id = $1 "
					"FOR NO KEY UPDATE", 1, argtypes);
	args[0] = Int64GetDatum(stream_id);
	ret = SPI_execute_plan(plan, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "locking a stream failed: %s", SPI_result_code_string(ret));
	locked = SPI_processed == 1;
	SPI_freetuptable(SPI_tuptable);
	return locked;
}

/*
 * mlma_lock_stream
 *		Take the stream's writer lock until the end of the transaction: a
 *		row lock (FOR NO KEY UPDATE) on its mlma.stream_state row.  A row
 *		lock lives in the tuple, not in the shared lock table, so a
 *		transaction may hold it on any number of streams; a waiter takes
 *		part in deadlock detection, and the lock goes away with the
 *		(sub)transaction that took it.  Every writer of a stream's open
 *		batch or state takes it first: the hot path, _close_batch's callers,
 *		configure, pause, resume, drop_stream, the request lifecycle.
 *
 *		Under READ COMMITTED the caller's next statement takes a new snapshot
 *		that sees every earlier holder's commit.  Returns false when the
 *		stream has no state row (it was dropped).  The caller is connected
 *		to SPI.
 */
bool
mlma_lock_stream(int64 stream_id)
{
	return LockStreamRow(stream_id, false);
}

/*
 * mlma_try_lock_stream
 *		The stream's writer lock if it can be had at once; false (and no
 *		lock) when another transaction holds it or the stream is gone.
 *		claim_retrain and run_checks use it so they never wait for a
 *		writer.  The caller is connected to SPI.
 */
bool
mlma_try_lock_stream(int64 stream_id)
{
	return LockStreamRow(stream_id, true);
}

/*
 * mlma._try_lock_stream_id(stream_id bigint) -> bool
 */
Datum
mlma_try_lock_stream_sql(PG_FUNCTION_ARGS)
{
	bool		locked;

	SPI_connect();
	locked = mlma_try_lock_stream(PG_GETARG_INT64(0));
	SPI_finish();
	PG_RETURN_BOOL(locked);
}

/*
 * mlma._lock_stream_id(stream_id bigint) -> void
 */
Datum
mlma_lock_stream_sql(PG_FUNCTION_ARGS)
{
	SPI_connect();
	(void) mlma_lock_stream(PG_GETARG_INT64(0));
	SPI_finish();
	PG_RETURN_VOID();
}
