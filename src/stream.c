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
 * The writer lock of a stream (mlma_lock_stream) is a heavyweight lock on
 * the object (mlma.streams, stream_id): it lives in the lock manager, so it
 * is released at transaction or subtransaction abort, shows in pg_locks and
 * takes part in deadlock detection.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "monitor.h"

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
static bool cache_stale = false;
static bool callbacks_registered = false;
static Oid	streams_relid = InvalidOid;
static SPIPlanPtr load_plan = NULL;
static SPIPlanPtr create_plan = NULL;

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
 * StreamCacheInit
 *		Create (or re-create after invalidation) the cache and its plans.
 *		The caller is connected to SPI.
 */
static void
StreamCacheInit(void)
{
	StreamsRelid();

	if (cache_stale && stream_cache != NULL)
	{
		hash_destroy(stream_cache);
		stream_cache = NULL;
	}
	cache_stale = false;

	if (stream_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = MLMA_NAME_MAXBYTES;
		ctl.entrysize = sizeof(MlmaStream);
		ctl.hcxt = TopMemoryContext;
		stream_cache = hash_create("mlma stream cache", 1024, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}

	StreamsRelid();

	if (load_plan == NULL)
	{
		Oid			argtypes[1] = {TEXTOID};

		load_plan = SPI_prepare("SELECT s.stream_id, st.config_version, s.loss, "
								"s.loss_param, s.batch_size, s.paused, "
								"s.version_started_at + s.max_model_age, "
								"s.reference_policy = 'benchmark' "
								"FROM mlma.streams s "
								"JOIN mlma.stream_state st USING (stream_id) "
								"WHERE s.name = $1",
								1, argtypes);
		if (load_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(load_plan);
	}
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
	Datum		args[1];
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	Datum		d;
	char	   *loss;
	int			ret;

	if (strlen(name) >= MLMA_NAME_MAXBYTES)
		return NULL;

	StreamCacheInit();

	if (!reload)
	{
		entry = (MlmaStream *) hash_search(stream_cache, name, HASH_FIND, NULL);
		if (entry != NULL)
			return entry;
	}

	args[0] = CStringGetTextDatum(name);
	ret = SPI_execute_plan(load_plan, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "stream lookup failed: %s", SPI_result_code_string(ret));

	if (SPI_processed == 0)
	{
		hash_search(stream_cache, name, HASH_REMOVE, NULL);
		return NULL;
	}

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	entry = (MlmaStream *) hash_search(stream_cache, name, HASH_ENTER, &found);

	entry->stream_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	entry->config_version = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
	loss = SPI_getvalue(tup, desc, 3);
	entry->loss_kind = mlma_loss_kind(loss);
	d = SPI_getbinval(tup, desc, 4, &isnull);
	entry->loss_param = isnull ? NAN : DatumGetFloat8(d);
	entry->batch_size = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	entry->paused = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
	d = SPI_getbinval(tup, desc, 7, &isnull);
	entry->has_deadline = !isnull;
	entry->deadline = isnull ? 0 : DatumGetTimestampTz(d);
	entry->benchmark = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));

	return entry;
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

	StreamCacheInit();
	if (create_plan == NULL)
	{
		Oid			argtypes[2] = {TEXTOID, TEXTOID};

		create_plan = SPI_prepare("SELECT mlma._auto_create_stream($1, $2::jsonb)",
								  2, argtypes);
		if (create_plan == NULL)
			elog(ERROR, "SPI_prepare failed: %s",
				 SPI_result_code_string(SPI_result));
		SPI_keepplan(create_plan);
	}

	args[0] = CStringGetTextDatum(name);
	args[1] = CStringGetTextDatum(defaults ? defaults : "{}");
	ret = SPI_execute_plan(create_plan, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "stream creation failed: %s", SPI_result_code_string(ret));

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
	MlmaLossKind kind;
	double		param;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("loss must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	kind = mlma_loss_kind(name);
	if (kind == MLMA_LOSS_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown loss: %s", name),
				 errhint("Use one of squared, absolute, ape, sape, pinball, huber, poisson, logloss, zero_one.")));

	if (!PG_ARGISNULL(1) && isnan(PG_GETARG_FLOAT8(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("loss_param must not be NaN")));
	param = PG_ARGISNULL(1) ? NAN : PG_GETARG_FLOAT8(1);

	if (mlma_loss_check_param(kind, param) != MLMA_OK)
	{
		if (kind == MLMA_LOSS_PINBALL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("loss pinball needs loss_param between 0 and 1 (exclusive)"),
					 errdetail("loss_param is the quantile level tau.")));
		else if (kind == MLMA_LOSS_HUBER)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("loss huber needs a finite positive loss_param"),
					 errdetail("loss_param is the threshold delta.")));
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("loss %s takes no loss_param", name)));
	}
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
 * StreamLockTag
 *		The lock tag of a stream's writer lock: the object (mlma.streams,
 *		stream_id) in this database.
 */
static void
StreamLockTag(LOCKTAG *tag, int64 stream_id)
{
	Oid			relid = StreamsRelid();

	if (!OidIsValid(relid))
		elog(ERROR, "mlma.streams not found");
	SET_LOCKTAG_OBJECT(*tag, MyDatabaseId, relid,
					   (uint32) (stream_id & 0xFFFFFFFF),
					   (uint16) ((uint64) stream_id >> 32));
}

/*
 * mlma_lock_stream
 *		Take the stream's writer lock until the end of the transaction: a
 *		heavyweight lock on the object (mlma.streams, stream_id), so it shows
 *		in pg_locks as an object lock of class mlma.streams and takes part in
 *		deadlock detection.  Every writer of a stream's open batch or state
 *		takes it first: the hot path, _close_batch's callers, configure,
 *		pause, resume, drop_stream, the request lifecycle.
 */
void
mlma_lock_stream(int64 stream_id)
{
	LOCKTAG		tag;

	StreamLockTag(&tag, stream_id);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/*
 * mlma_try_lock_stream
 *		The stream's writer lock if it can be had at once; false (and no
 *		lock) when another transaction holds it.  claim_retrain uses it so a
 *		worker never waits for a writer while holding a request row.
 */
bool
mlma_try_lock_stream(int64 stream_id)
{
	LOCKTAG		tag;

	StreamLockTag(&tag, stream_id);
	return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * mlma._try_lock_stream_id(stream_id bigint) -> bool
 */
Datum
mlma_try_lock_stream_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(mlma_try_lock_stream(PG_GETARG_INT64(0)));
}

/*
 * mlma._lock_stream_id(stream_id bigint) -> void
 */
Datum
mlma_lock_stream_sql(PG_FUNCTION_ARGS)
{
	mlma_lock_stream(PG_GETARG_INT64(0));
	PG_RETURN_VOID();
}
