/*-------------------------------------------------------------------------
 *
 * ingest.c
 *	  Recording observations: observe(), observe_loss() and the row trigger
 *	  installed by attach() on a user's table.
 *
 * This is the hottest path of mlma.  The first observation of a stream in
 * a transaction takes the stream's writer lock (a row lock on its state row
 * held to the end of the transaction, see mlma_lock_stream), then reads where the
 * open batch stands and inserts the observation: under READ COMMITTED
 * through the access methods (ingest_direct.c), otherwise in one saved
 * statement; the transaction then owns the stream, keeps the counters in
 * backend memory, and every further observation is one insert.  The state row is written
 * only when a batch closes (mlma_close_full_batch, the set path's close for
 * one stream, or mlma._close_batch where the direct path cannot be used;
 * once every batch_size observations), so neither a single-row transaction nor a COPY of a
 * million rows into one stream piles up row versions.  Under REPEATABLE
 * READ and SERIALIZABLE the first observation also updates the state row
 * (touch_count), so that concurrent writers get a serialization failure.
 *
 * Writers of one stream therefore serialize on its lock, and exactly
 * one of them sees its observation fill the open batch.  The per-transaction
 * counters are valid for one mlma_xact_generation: a transaction end, a
 * subtransaction abort or a configuration change made through SQL by this
 * backend starts a new one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "mlma.h"

PG_FUNCTION_INFO_V1(mlma_observe);
PG_FUNCTION_INFO_V1(mlma_observe_loss);
PG_FUNCTION_INFO_V1(mlma_observe_trigger);

static MlmaPlan touch_plan;
static MlmaPlan read_plan;
static MlmaPlan max_plan;
static MlmaPlan insert_plan;
static MlmaPlan close_plan;
static MlmaPlan age_plan;

/* attempts when the stream's configuration changes under our feet */
#define MLMA_RECORD_ATTEMPTS 5

/*
 * What this transaction knows about a stream it has locked.
 */
typedef struct OwnedStream
{
	int64		stream_id;		/* hash key */
	uint64		generation;		/* valid while == mlma_xact_generation */
	int64		next_seq;		/* seq of the next observation */
	int64		open_start_seq; /* first seq of the open batch */
	bool		age_flagged;
} OwnedStream;

static HTAB *owned_streams = NULL;

static void AfterInsert(MlmaStream *stream, OwnedStream *owned);

/* owned-stream tables up to this size are kept across transactions */
#define MLMA_OWNED_KEEP 256

/*
 * OwnedStreamsXactCallback
 *		At the end of a transaction that wrote many streams, free their
 *		state (it is valid for that transaction only); a small table is
 *		kept for the next one.
 */
static void
OwnedStreamsXactCallback(XactEvent event, void *arg)
{
	if ((event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		 event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		 event == XACT_EVENT_PREPARE) &&
		owned_streams != NULL &&
		hash_get_num_entries(owned_streams) > MLMA_OWNED_KEEP)
	{
		hash_destroy(owned_streams);
		owned_streams = NULL;
	}
}

/*
 * OwnedStreamsCreate
 *		(Re)create the empty table of the streams this transaction owns.
 */
static void
OwnedStreamsCreate(void)
{
	static bool callback_registered = false;
	HASHCTL		ctl;

	if (!callback_registered)
	{
		RegisterXactCallback(OwnedStreamsXactCallback, NULL);
		callback_registered = true;
	}
	if (owned_streams != NULL)
		hash_destroy(owned_streams);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(OwnedStream);
	ctl.hcxt = TopMemoryContext;
	owned_streams = hash_create("mlma owned streams", 256, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * OwnedStreamEnter
 *		The entry of a stream this transaction is taking.  The table holds
 *		at most mlma.stream_cache_size streams: when full it is emptied.
 *		That is safe: a stream whose entry is gone is taken again by its
 *		next observation, which finds the lock already held and reads the
 *		open batch with a snapshot that sees this transaction's own work.
 */
static OwnedStream *
OwnedStreamEnter(int64 stream_id)
{
	bool		found;

	if (hash_search(owned_streams, &stream_id, HASH_FIND, NULL) == NULL &&
		hash_get_num_entries(owned_streams) >= mlma_stream_cache_size)
		OwnedStreamsCreate();
	return (OwnedStream *) hash_search(owned_streams, &stream_id,
									   HASH_ENTER, &found);
}

static void
PreparePlans(void)
{
	Oid			id_type[1] = {INT8OID};

	{
		Oid			types[5] = {INT8OID, INT4OID, TIMESTAMPTZOID, FLOAT8OID,
		FLOAT8OID};

		/*
		 * REPEATABLE READ and SERIALIZABLE: the first observation of a
		 * stream in a transaction, once the writer lock is held, updates the
		 * state row (so a concurrent writer's commit raises a serialization
		 * failure), finds the next seq and inserts, in one statement.  "old" and
		 * the max(seq) subquery read the statement's snapshot; "upd" reads
		 * the latest row version after waiting for a concurrent writer.  If
		 * touch_count moved by exactly one, no writer committed between the
		 * snapshot and the lock, so the snapshot's max(seq) is current;
		 * otherwise nothing is inserted and the caller asks again with a
		 * new snapshot.  Nothing is inserted either when the configuration
		 * version differs from the cached one ($2).
		 */
		(void) mlma_plan(&touch_plan,
								 "WITH old AS (SELECT touch_count FROM mlma.stream_state "
								 "             WHERE stream_id = $1), "
								 "upd AS (UPDATE mlma.stream_state SET touch_count = touch_count + 1 "
								 "        WHERE stream_id = $1 "
								 "        RETURNING config_version, open_start_seq, age_flagged, touch_count), "
								 "cur AS (SELECT u.config_version, u.open_start_seq, u.age_flagged, "
								 "               u.touch_count = o.touch_count + 1 AS fresh, "
								 "               greatest(u.open_start_seq, "
								 "                        (SELECT r.seq + cardinality(r.losses) FROM mlma.open_runs r "
								 "                          WHERE r.stream_id = $1 AND r.seq >= u.open_start_seq "
								 "                          ORDER BY r.seq DESC LIMIT 1)) AS next_seq "
								 "          FROM upd u, old o), "
								 "ins AS (INSERT INTO mlma.open_runs "
								 "               (stream_id, seq, times, losses, benchmark_losses) "
								 "        SELECT $1, next_seq, ARRAY[$3], ARRAY[$4], "
								 "               CASE WHEN $5 IS NOT NULL THEN ARRAY[$5] END FROM cur "
								 "         WHERE fresh AND config_version = $2 RETURNING seq) "
								 "SELECT c.config_version, c.open_start_seq, c.age_flagged, c.fresh, "
								 "       c.next_seq, (SELECT count(*) FROM ins) AS inserted "
								 "  FROM cur c",
								 5, types);
	}
	{
		Oid			types[5] = {INT8OID, INT4OID, TIMESTAMPTZOID, FLOAT8OID,
		FLOAT8OID};

		/*
		 * The same under READ COMMITTED, where the statement also takes the
		 * stream's writer lock (the row lock on its state row) and needs no
		 * write of the state row.  After waiting for the lock (or when a
		 * writer committed between the statement's snapshot and the lock),
		 * the snapshot may miss that writer's observations; the state row
		 * is the latest version (a closed batch moved open_start_seq past
		 * them), and since a stream's seqs are contiguous, a missed
		 * observation always holds the seq computed here: the insert then
		 * conflicts, inserts nothing, and the caller reads the open batch
		 * again with a new snapshot, under the lock now held.
		 */
		(void) mlma_plan(&read_plan,
								"WITH cur AS (SELECT st.config_version, st.open_start_seq, st.age_flagged, "
								"                    greatest(st.open_start_seq, "
								"                             (SELECT r.seq + cardinality(r.losses) FROM mlma.open_runs r "
								"                               WHERE r.stream_id = $1 "
								"                                 AND r.seq >= st.open_start_seq "
								"                               ORDER BY r.seq DESC LIMIT 1)) AS next_seq "
								"               FROM mlma.stream_state st WHERE st.stream_id = $1 "
								"                FOR NO KEY UPDATE OF st), "
								"ins AS (INSERT INTO mlma.open_runs "
								"               (stream_id, seq, times, losses, benchmark_losses) "
								"        SELECT $1, next_seq, ARRAY[$3], ARRAY[$4], "
								"               CASE WHEN $5 IS NOT NULL THEN ARRAY[$5] END FROM cur "
								"         WHERE config_version = $2 "
								"        ON CONFLICT DO NOTHING RETURNING seq) "
								"SELECT c.config_version, c.open_start_seq, c.age_flagged, true, "
								"       c.next_seq, (SELECT count(*) FROM ins) AS inserted "
								"  FROM cur c",
								5, types);
	}
	{
		Oid			types[2] = {INT8OID, INT8OID};

		/*
		 * The last seq of the open batch: where its last run ends.  Runs
		 * below open_start_seq are gone (closed batches); the bound keeps
		 * the index scan off their dead index entries.
		 */
		(void) mlma_plan(&max_plan, "SELECT (SELECT r.seq + cardinality(r.losses) - 1 "
							   "          FROM mlma.open_runs r "
							   "         WHERE r.stream_id = $1 AND r.seq >= $2 "
							   "         ORDER BY r.seq DESC LIMIT 1)",
							   2, types);
	}
	{
		Oid			types[5] = {INT8OID, INT8OID, TIMESTAMPTZOID, FLOAT8OID,
		FLOAT8OID};

		(void) mlma_plan(&insert_plan, "INSERT INTO mlma.open_runs "
								  "(stream_id, seq, times, losses, benchmark_losses) "
								  "VALUES ($1, $2, ARRAY[$3], ARRAY[$4], "
								  "        CASE WHEN $5 IS NOT NULL THEN ARRAY[$5] END)",
								  5, types);
	}
	(void) mlma_plan(&close_plan, "SELECT mlma._close_batch($1)", 1, id_type);
	(void) mlma_plan(&age_plan, "SELECT mlma._raise_age($1)", 1, id_type);
	if (owned_streams == NULL)
		OwnedStreamsCreate();
}

/*
 * TouchStream
 *		First observation of a stream in this transaction: lock its state
 *		row, learn where its open batch stands and, when possible, insert the
 *		observation in the same statement.  Returns -1 when the stream is
 *		gone, 0 when the lock is held and *owned is valid but the
 *		observation is not inserted yet (configuration changed: the caller
 *		reloads it), 1 when the observation was inserted.
 */
static int
TouchStream(MlmaStream *stream, TimestampTz observed_at, double loss,
			const double *bench, bool insert, OwnedStream **owned)
{
	OwnedStream *o;
	bool		combined;
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;
	int			ret;
	HeapTuple	tup;
	TupleDesc	desc;
	int32		config_version;
	bool		fresh;
	bool		inserted;
	Datum		d;

	/*
	 * Wait for the stream's other writers, then look at it.  Under READ
	 * COMMITTED with an observation to insert, the access methods do it
	 * (ingest_direct.c), or else read_plan takes the lock itself (one
	 * statement instead of two).
	 */
	combined = insert && !IsolationUsesXactSnapshot();
	if (combined && mlma_direct_usable())
	{
		MlmaOpenBatch batch;
		MlmaDirectResult r = mlma_direct_take(stream->stream_id,
											  stream->config_version,
											  stream->seq_hint, &batch,
											  observed_at, loss, bench);

		if (r == MLMA_DIRECT_GONE)
			return -1;
		if (r != MLMA_DIRECT_UNUSABLE)
		{
			o = OwnedStreamEnter(stream->stream_id);
			o->open_start_seq = batch.open_start_seq;
			o->age_flagged = batch.age_flagged;
			o->next_seq = batch.next_seq;
			o->generation = mlma_xact_generation;
			*owned = o;
			if (r == MLMA_DIRECT_INSERTED)
			{
				o->next_seq++;
				stream->seq_hint = o->next_seq;
				return 1;
			}
			if (batch.config_version != stream->config_version)
				stream->config_version = -1;	/* caller reloads */
			return 0;
		}
	}
	if (!combined && !mlma_lock_stream(stream->stream_id))
		return -1;

	args[0] = Int64GetDatum(stream->stream_id);
	/* config_version -1 matches nothing: only take the stream */
	args[1] = Int32GetDatum(insert ? stream->config_version : -1);
	args[2] = TimestampTzGetDatum(observed_at);
	args[3] = Float8GetDatum(loss);
	args[4] = Float8GetDatum(bench ? *bench : 0.0);
	nulls[4] = bench ? ' ' : 'n';
	ret = SPI_execute_plan(IsolationUsesXactSnapshot() ? touch_plan.plan : read_plan.plan,
						   args, nulls, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "locking a stream failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		return -1;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	o = OwnedStreamEnter(stream->stream_id);
	config_version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	o->open_start_seq = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	o->age_flagged = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
	fresh = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	o->next_seq = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
	inserted = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull)) > 0;
	if (combined && !inserted)
		fresh = false;			/* maybe read before the lock: read again */

	if (!fresh)
	{
		/* a writer committed while we waited: a new snapshot sees it */
		Datum		margs[2];

		SPI_freetuptable(SPI_tuptable);
		margs[0] = Int64GetDatum(stream->stream_id);
		margs[1] = Int64GetDatum(o->open_start_seq);
		ret = SPI_execute_plan(max_plan.plan, margs, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading the open batch failed: %s",
				 SPI_result_code_string(ret));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		o->next_seq = isnull ? o->open_start_seq
			: Max(o->open_start_seq, DatumGetInt64(d) + 1);
	}
	SPI_freetuptable(SPI_tuptable);
	o->generation = mlma_xact_generation;
	*owned = o;

	if (inserted)
	{
		o->next_seq++;
		return 1;
	}
	if (config_version != stream->config_version)
		stream->config_version = -1;	/* caller reloads */
	return 0;
}

/*
 * Reasons for a row that is not recorded (skipped under on_invalid 'skip',
 * an error otherwise).
 */
static const char *const REASON_TIME = "observed_at is not finite";
static const char *const REASON_VALUES = "actual or predicted is not finite";
static const char *const REASON_UNDEFINED = "the loss is undefined for actual and predicted";
static const char *const REASON_LOSS = "loss is not finite";
static const char *const REASON_NEGATIVE = "loss is negative";
static const char *const REASON_BENCHMARK_MISSING = "benchmark value missing (reference_policy benchmark)";
static const char *const REASON_BENCHMARK_INVALID = "benchmark value gives no finite non-negative loss";
static bool
IsSpace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static const char *const REASON_UNKNOWN = "stream does not exist and the attachment does not create streams";

/*
 * mlma_stream_name_problem
 *		Why name cannot be the name of a new stream, or NULL: 1 to 255
 *		characters, no leading or trailing whitespace.  Other bytes are kept
 *		as given (see README), the same rule as mlma._check_stream_name.
 */
const char *
mlma_stream_name_problem(const char *name)
{
	size_t		len = strlen(name);

	if (len == 0 || len >= MLMA_NAME_MAXBYTES || pg_mbstrlen(name) > 255)
		return "stream name must be 1 to 255 characters";
	if (IsSpace(name[0]) || IsSpace(name[len - 1]))
		return "stream name must not begin or end with whitespace";
	return NULL;
}

/*
 * ComputeLoss
 *		The stream's loss of (actual, predicted); NULL when recorded in
 *		*loss, else the reason.
 */
static const char *
ComputeLoss(MlmaStream *stream, double actual, double predicted, double *loss)
{
	if (!isfinite(actual) || !isfinite(predicted))
		return REASON_VALUES;
	if (mlma_loss(stream->loss_kind, actual, predicted, stream->loss_param, loss) != MLMA_OK)
		return REASON_UNDEFINED;
	return NULL;
}

static const char *
CheckLoss(double loss)
{
	if (isnan(loss) || isinf(loss))
		return REASON_LOSS;
	if (loss < 0)
		return REASON_NEGATIVE;
	return NULL;
}

/*
 * BenchmarkProblem
 *		Why the benchmark value of an observation cannot be recorded, or
 *		NULL when it can; *bench is its loss (the stream's loss function of
 *		actual and the benchmark's prediction, or the benchmark loss given).
 *		A stream with the benchmark reference policy needs one with every
 *		observation; other streams store it when given (so that a later
 *		switch of policy, or a replay under it, finds it).
 */
static const char *
BenchmarkProblem(const MlmaObservation *obs, MlmaStream *stream, double *bench)
{
	if (!obs->has_benchmark)
		return stream->benchmark ? REASON_BENCHMARK_MISSING : NULL;
	if (obs->by_loss)
	{
		*bench = obs->benchmark;
		return (isnan(*bench) || isinf(*bench) || *bench < 0)
			? REASON_BENCHMARK_INVALID : NULL;
	}
	if (!isfinite(obs->benchmark) ||
		mlma_loss(stream->loss_kind, obs->actual, obs->benchmark,
				  stream->loss_param, bench) != MLMA_OK ||
		!isfinite(*bench) || *bench < 0)
		return REASON_BENCHMARK_INVALID;
	return NULL;
}

/*
 * Invalid
 *		The error of an observation that cannot be recorded (observe and
 *		observe_loss, and attached tables under on_invalid 'error' through
 *		their own message).
 */
static void
Invalid(const MlmaObservation *obs, MlmaStream *stream, const char *reason)
{
	if (reason == REASON_TIME)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("observed_at must be finite"),
				 errdetail("Stream \"%s\".", obs->name)));
	if (reason == REASON_VALUES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("actual and predicted must be finite"),
				 errdetail("Stream \"%s\" received actual %g, predicted %g.",
						   obs->name, obs->actual, obs->predicted)));
	if (reason == REASON_UNDEFINED)
		MlmaLossError(stream->loss_kind, obs->actual, obs->predicted,
					  stream->loss_param, obs->name);
	if (reason == REASON_LOSS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("loss must be finite"),
				 errdetail("Stream \"%s\" received loss %g.", obs->name, obs->loss)));
	if (reason == REASON_NEGATIVE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("loss must not be negative"),
				 errdetail("Stream \"%s\" received loss %g.", obs->name, obs->loss)));
	if (reason == REASON_BENCHMARK_MISSING)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stream \"%s\" needs a benchmark value with every observation",
						obs->name),
				 errdetail("The stream uses reference_policy benchmark: every observation needs the benchmark's %s.",
						   obs->by_loss ? "loss (benchmark_loss)" : "prediction (benchmark)"),
				 errhint("Pass benchmark => the challenger's prediction (observe) or benchmark_loss => its loss (observe_loss), or configure another reference_policy.")));
	if (reason == REASON_BENCHMARK_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be finite and give a non-negative loss",
						obs->by_loss ? "benchmark_loss" : "benchmark"),
				 errdetail("Stream \"%s\" received actual %g, %s %g.", obs->name,
						   obs->actual, obs->by_loss ? "benchmark_loss" : "benchmark",
						   obs->benchmark)));
	if (reason == REASON_UNKNOWN)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("stream \"%s\" does not exist", obs->name),
				 errhint("Create it with mlma.create_stream().")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", reason),
			 errdetail("The stream name is \"%s\".", obs->name)));
}

#define REJECT(stream, reason) \
	do { \
		if (obs->skip_invalid) \
			return (reason); \
		Invalid(obs, (stream), (reason)); \
	} while (0)

/*
 * mlma_record
 *		Record one observation of the named stream.  by_loss: the loss is
 *		given; otherwise it is computed from actual and predicted with the
 *		stream's loss function.  defaults: NULL for observe() and for
 *		attachments that do not create streams (unknown stream is invalid),
 *		the attachment's defaults otherwise (unknown stream is created).
 *		An invalid observation raises an error, or with skip_invalid
 *		returns the reason and records nothing.  The caller is connected
 *		to SPI.
 */
const char *
mlma_record(const MlmaObservation *obs)
{
	const char *name = obs->name;
	double		loss = obs->loss;
	const char *problem;
	MlmaStream *stream;
	OwnedStream *owned = NULL;
	int			attempt;
	Datum		args[5];
	int			ret;
	bool		found;
	bool		done = false;
	double		bench = 0.0;
	const double *benchp = NULL;
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

	if (TIMESTAMP_NOT_FINITE(obs->observed_at))
		REJECT(NULL, REASON_TIME);
	if (obs->by_loss && (problem = CheckLoss(loss)) != NULL)
		REJECT(NULL, problem);
	/* before a stream is created for it */
	if (!obs->by_loss && (!isfinite(obs->actual) || !isfinite(obs->predicted)))
		REJECT(NULL, REASON_VALUES);

	PreparePlans();
	stream = mlma_stream_get(name, false);

	for (attempt = 0; !done; attempt++)
	{
		if (stream == NULL)
		{
			if (obs->defaults == NULL)
				REJECT(NULL, REASON_UNKNOWN);
			if ((problem = mlma_stream_name_problem(name)) != NULL)
				REJECT(NULL, problem);
			stream = mlma_stream_auto_create(name, obs->defaults);
		}
		if (attempt >= MLMA_RECORD_ATTEMPTS)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not record an observation of stream \"%s\"", name),
					 errdetail("The stream's configuration changed during every attempt.")));

		if (!obs->by_loss &&
			(problem = ComputeLoss(stream, obs->actual, obs->predicted, &loss)) != NULL)
			REJECT(stream, problem);
		if ((problem = BenchmarkProblem(obs, stream, &bench)) != NULL)
			REJECT(stream, problem);
		benchp = obs->has_benchmark ? &bench : NULL;

		owned = (OwnedStream *) hash_search(owned_streams, &stream->stream_id,
											HASH_FIND, &found);
		if (owned != NULL && owned->generation == mlma_xact_generation)
		{
			/* this transaction owns the stream: one insert */
			if (!mlma_direct_insert(stream->stream_id, owned->next_seq,
									obs->observed_at, loss, benchp))
			{
				args[0] = Int64GetDatum(stream->stream_id);
				args[1] = Int64GetDatum(owned->next_seq);
				args[2] = TimestampTzGetDatum(obs->observed_at);
				args[3] = Float8GetDatum(loss);
				args[4] = Float8GetDatum(bench);
				nulls[4] = benchp ? ' ' : 'n';
				ret = SPI_execute_plan(insert_plan.plan, args, nulls, false, 0);
				if (ret != SPI_OK_INSERT)
					elog(ERROR, "recording an observation failed: %s",
						 SPI_result_code_string(ret));
			}
			owned->next_seq++;
			stream->seq_hint = owned->next_seq;
			done = true;
			continue;
		}

		switch (TouchStream(stream, obs->observed_at, loss, benchp, true, &owned))
		{
			case 1:
				done = true;
				break;
			case 0:
				/* locked; insert on the next round, after a reload if needed */
				if (stream->config_version < 0)
					stream = mlma_stream_get(name, true);
				break;
			default:
				/* the stream was dropped (and maybe created again) */
				stream = mlma_stream_get(name, true);
				break;
		}
	}

	AfterInsert(stream, owned);
	return NULL;
}

/*
 * AfterInsert
 *		Close the open batch when it is full, and raise the age request
 *		the first time the model version is found too old.
 */
static void
AfterInsert(MlmaStream *stream, OwnedStream *owned)
{
	Datum		args[1];
	int			ret;

	args[0] = Int64GetDatum(stream->stream_id);
	if (owned->next_seq - owned->open_start_seq >= stream->batch_size)
	{
		int64		next_seq = owned->next_seq;

		if (!mlma_close_full_batch(stream, owned->open_start_seq, next_seq))
		{
			ret = SPI_execute_plan(close_plan.plan, args, NULL, false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "closing a batch failed: %s", SPI_result_code_string(ret));
			SPI_freetuptable(SPI_tuptable);
		}
		owned->open_start_seq = next_seq;
	}

	if (stream->has_deadline && !owned->age_flagged && !stream->paused &&
		GetCurrentTransactionStartTimestamp() > stream->deadline)
	{
		ret = SPI_execute_plan(age_plan.plan, args, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "raising an age request failed: %s",
				 SPI_result_code_string(ret));
		SPI_freetuptable(SPI_tuptable);
		owned->age_flagged = true;
	}
}

/*
 * mlma_check_rows
 *		Check n observations of one stream (loss computed from actual and
 *		predicted) as mlma_record checks them: losses[i] and benches[i] get
 *		the losses of the valid ones, whose indexes go to keep[] in order;
 *		an invalid one raises its error, or with skip_invalid is left out
 *		with its reason in reasons[i] (NULL for the valid ones).  Returns
 *		the number kept.
 */
int
mlma_check_rows(MlmaStream *stream, const MlmaObservation *const *obs, int n,
				double *losses, double *benches, int *keep, const char **reasons)
{
	int			nkeep = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		const char *problem = NULL;

		/*
		 * A statement's rows come here stream by stream, scattered over
		 * the chunk (one cache line each): ask for them a few ahead.
		 */
#ifdef __GNUC__
		if (i + 12 < n)
			__builtin_prefetch(obs[i + 12]);
#endif
		benches[i] = 0.0;
		if (TIMESTAMP_NOT_FINITE(obs[i]->observed_at))
			problem = REASON_TIME;
		else
			problem = ComputeLoss(stream, obs[i]->actual, obs[i]->predicted,
								  &losses[i]);
		if (problem == NULL)
			problem = BenchmarkProblem(obs[i], stream, &benches[i]);
		reasons[i] = problem;
		if (problem == NULL)
			keep[nkeep++] = i;
		else if (!obs[i]->skip_invalid)
			Invalid(obs[i], stream, problem);
	}
	return nkeep;
}

/*
 * mlma_own_stream
 *		Note that this transaction holds the writer lock of stream_id and
 *		where its open batch stands (after the set-based path wrote it,
 *		ingest_set.c), so that the next observation of the stream in this
 *		transaction is one INSERT.
 */
void
mlma_own_stream(int64 stream_id, int64 open_start_seq, int64 next_seq,
				bool age_flagged)
{
	OwnedStream *o;

	if (owned_streams == NULL)
		OwnedStreamsCreate();
	o = OwnedStreamEnter(stream_id);
	o->open_start_seq = open_start_seq;
	o->next_seq = next_seq;
	o->age_flagged = age_flagged;
	o->generation = mlma_xact_generation;
}

/*
 * mlma_record_stream
 *		Record n observations of one stream (obs[i].name all the same, loss
 *		computed from actual and predicted), in order: the stream is taken
 *		once, the observations go in with one INSERT per stretch up to the
 *		next batch boundary, and each full batch is closed as by mlma_record.
 *		Each observation is checked as mlma_record checks it: an invalid one
 *		raises its error, or with skip_invalid is left out and its reason set
 *		in reasons[i] (NULL for the recorded ones).  Returns the number
 *		recorded.  The caller is connected to SPI.
 */
int
mlma_record_stream(const MlmaObservation *const *obs, int n, const char **reasons)
{
	const char *name = obs[0]->name;
	MlmaStream *stream;
	OwnedStream *owned = NULL;
	int			attempt;
	int			i;
	int			nkeep = 0;
	int		   *keep;
	double	   *losses;
	double	   *benches;
	double	   *ds;
	TimestampTz *ts;
	double	   *bs;
	bool	   *bh;

	if (n <= 0)
		return 0;

	PreparePlans();
	losses = palloc(sizeof(double) * n);
	benches = palloc0(sizeof(double) * n);
	keep = palloc(sizeof(int) * n);
	stream = mlma_stream_get(name, false);

	/* take the stream: its lock and where its open batch stands */
	for (attempt = 0;; attempt++)
	{
		bool		found;

		if (stream == NULL)
		{
			const char *problem = obs[0]->defaults == NULL ? REASON_UNKNOWN
				: mlma_stream_name_problem(name);

			if (problem != NULL)
			{
				for (i = 0; i < n; i++)
				{
					if (!obs[i]->skip_invalid)
						Invalid(obs[i], NULL, problem);
					reasons[i] = problem;
				}
				return 0;
			}
			stream = mlma_stream_auto_create(name, obs[0]->defaults);
		}
		if (attempt >= MLMA_RECORD_ATTEMPTS)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not record an observation of stream \"%s\"", name),
					 errdetail("The stream's configuration changed during every attempt.")));

		owned = (OwnedStream *) hash_search(owned_streams, &stream->stream_id,
											HASH_FIND, &found);
		if (owned != NULL && owned->generation == mlma_xact_generation)
			break;
		if (TouchStream(stream, 0, 0.0, NULL, false, &owned) == 0 &&
			stream->config_version >= 0)
			break;
		stream = mlma_stream_get(name, true);
	}

	nkeep = mlma_check_rows(stream, obs, n, losses, benches, keep, reasons);

	ds = palloc(sizeof(double) * Max(nkeep, 1));
	ts = palloc(sizeof(TimestampTz) * Max(nkeep, 1));
	bs = palloc(sizeof(double) * Max(nkeep, 1));
	bh = palloc(sizeof(bool) * Max(nkeep, 1));
	for (i = 0; i < nkeep;)
	{
		int64		room = stream->batch_size - (owned->next_seq - owned->open_start_seq);
		int			k = (int) Max(1, Min(room, nkeep - i));
		int			j;
		Datum		arrays[3];

		/* the observations up to the end of the open batch: one run */
		for (j = 0; j < k; j++)
		{
			ds[j] = losses[keep[i + j]];
			bs[j] = benches[keep[i + j]];
			bh[j] = obs[keep[i + j]]->has_benchmark;
			ts[j] = obs[keep[i + j]]->observed_at;
		}
		mlma_run_arrays(k, ts, ds, bs, bh, arrays);
		mlma_insert_runs(1, &stream->stream_id, &owned->next_seq, arrays);
		for (j = 0; j < 3; j++)
			if (arrays[j] != (Datum) 0)
				pfree(DatumGetPointer(arrays[j]));
		owned->next_seq += k;
		i += k;
		AfterInsert(stream, owned);
	}
	pfree(ds);
	pfree(ts);
	pfree(bs);
	pfree(bh);
	pfree(keep);
	pfree(benches);
	pfree(losses);
	return nkeep;
}

/*
 * mlma_count_skip
 *		Count a row that was skipped: on the stream of that name (taking its
 *		writer lock first, the order every writer uses), else on the
 *		attachment.  The caller is connected to SPI.
 */
void
mlma_count_skip(const char *name, Oid source, const char *reason)
{
	static MlmaPlan stream_plan;
	static MlmaPlan attach_plan;
	Oid			stream_types[2] = {INT8OID, TEXTOID};
	Oid			attach_types[2] = {OIDOID, TEXTOID};
	MlmaStream *stream = NULL;
	Datum		args[2];
	int			ret;

	if (name != NULL)
		stream = mlma_stream_get(name, false);
	args[1] = CStringGetTextDatum(reason);
	if (stream != NULL)
	{
		(void) mlma_lock_stream(stream->stream_id);
		args[0] = Int64GetDatum(stream->stream_id);
		ret = SPI_execute_plan(mlma_plan(&stream_plan,
										 "UPDATE mlma.stream_state "
										 "SET skipped = skipped + 1, last_skip_reason = $2, "
										 "    last_skip_at = now() "
										 "WHERE stream_id = $1",
										 2, stream_types),
							   args, NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "counting a skipped row failed: %s",
				 SPI_result_code_string(ret));
		if (SPI_processed == 1)
			return;
	}
	if (!OidIsValid(source))
		return;
	args[0] = ObjectIdGetDatum(source);
	ret = SPI_execute_plan(mlma_plan(&attach_plan,
									 "UPDATE mlma.attachments "
									 "SET skipped = skipped + 1, last_skip_reason = $2, "
									 "    last_skip_at = now() "
									 "WHERE source = $1::regclass",
									 2, attach_types),
						   args, NULL, false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "counting a skipped row failed: %s",
			 SPI_result_code_string(ret));
}

/*
 * RequireArg
 *		Error for a NULL argument that must be given.
 */
static void
RequireArg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
}

/*
 * observe(stream text, actual float8, predicted float8,
 *		   observed_at timestamptz DEFAULT now()) -> void
 */
Datum
mlma_observe(PG_FUNCTION_ARGS)
{
	char	   *name;
	MlmaObservation obs;

	RequireArg(fcinfo, 0, "stream");
	RequireArg(fcinfo, 1, "actual");
	RequireArg(fcinfo, 2, "predicted");
	RequireArg(fcinfo, 3, "observed_at");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	memset(&obs, 0, sizeof(obs));
	obs.name = name;
	obs.actual = PG_GETARG_FLOAT8(1);
	obs.predicted = PG_GETARG_FLOAT8(2);
	obs.observed_at = PG_GETARG_TIMESTAMPTZ(3);
	/* 0.1.0's observe has no benchmark argument */
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
	{
		obs.has_benchmark = true;
		obs.benchmark = PG_GETARG_FLOAT8(4);
	}

	SPI_connect();
	(void) mlma_record(&obs);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * observe_loss(stream text, loss float8,
 *				observed_at timestamptz DEFAULT now()) -> void
 */
Datum
mlma_observe_loss(PG_FUNCTION_ARGS)
{
	char	   *name;
	MlmaObservation obs;

	RequireArg(fcinfo, 0, "stream");
	RequireArg(fcinfo, 1, "loss");
	RequireArg(fcinfo, 2, "observed_at");
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));

	memset(&obs, 0, sizeof(obs));
	obs.name = name;
	obs.by_loss = true;
	obs.loss = PG_GETARG_FLOAT8(1);
	obs.observed_at = PG_GETARG_TIMESTAMPTZ(2);
	/* 0.1.0's observe_loss has no benchmark_loss argument */
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		obs.has_benchmark = true;
		obs.benchmark = PG_GETARG_FLOAT8(3);
	}

	SPI_connect();
	(void) mlma_record(&obs);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Column positions of an attached table, cached per trigger and checked
 * against the current tuple descriptor before each use (cheap: a name
 * comparison per column), so ALTER TABLE on the user's table is harmless.
 * A position is 0 when the column is missing; the column types are checked
 * with every use (ColumnProblem, in mlma_attached_columns: once per
 * statement, whose rows all have the same columns), never only when the
 * cache is filled.
 */
typedef struct AttachedColumns
{
	Oid			tgoid;			/* the attachment's trigger */
	int			stream;
	int			actual;
	int			predicted;
	int			time;
	int			benchmark;
} AttachedColumns;

#define MLMA_ATTACH_CACHE 16
static AttachedColumns attach_cache[MLMA_ATTACH_CACHE];
static int	attach_next = 0;


static bool
ColumnMatches(TupleDesc desc, int attnum, const char *name)
{
	Form_pg_attribute att;

	if (name[0] == '\0')
		return attnum == 0;
	if (attnum <= 0 || attnum > desc->natts)
		return false;
	att = TupleDescAttr(desc, attnum - 1);
	return !att->attisdropped && strcmp(NameStr(att->attname), name) == 0;
}

static int
ResolveColumn(TupleDesc desc, const char *name)
{
	int			attnum;

	if (name[0] == '\0')
		return 0;
	attnum = SPI_fnumber(desc, name);
	return attnum > 0 ? attnum : 0;
}

static AttachedColumns *
GetAttachedColumns(Trigger *trigger, TupleDesc desc, const MlmaAttachArgs *a)
{
	AttachedColumns *c = NULL;
	int			i;

	for (i = 0; i < MLMA_ATTACH_CACHE; i++)
		if (attach_cache[i].tgoid == trigger->tgoid)
		{
			c = &attach_cache[i];
			break;
		}
	if (c != NULL &&
		ColumnMatches(desc, c->stream, a->stream) &&
		ColumnMatches(desc, c->actual, a->actual) &&
		ColumnMatches(desc, c->predicted, a->predicted) &&
		ColumnMatches(desc, c->time, a->time) &&
		ColumnMatches(desc, c->benchmark, a->benchmark))
		return c;

	if (c == NULL)
	{
		c = &attach_cache[attach_next];
		attach_next = (attach_next + 1) % MLMA_ATTACH_CACHE;
	}
	c->tgoid = InvalidOid;
	c->stream = ResolveColumn(desc, a->stream);
	c->actual = ResolveColumn(desc, a->actual);
	c->predicted = ResolveColumn(desc, a->predicted);
	c->time = ResolveColumn(desc, a->time);
	c->benchmark = ResolveColumn(desc, a->benchmark);
	c->tgoid = trigger->tgoid;
	return c;
}

typedef enum ColumnKind
{
	COL_STREAM,
	COL_NUMBER,
	COL_TIME
} ColumnKind;

static bool
TypeFits(Oid type, ColumnKind kind)
{
	switch (kind)
	{
		case COL_STREAM:
			return type == TEXTOID || type == VARCHAROID;
		case COL_NUMBER:
			return type == FLOAT8OID || type == FLOAT4OID || type == INT2OID ||
				type == INT4OID || type == INT8OID || type == NUMERICOID;
		case COL_TIME:
			return type == TIMESTAMPTZOID || type == TIMESTAMPOID;
	}
	return false;
}

/*
 * ColumnProblem
 *		NULL when the mapped column exists with a type the trigger reads,
 *		else the problem (an error under on_invalid 'error').  *code gets
 *		the SQLSTATE.
 */
static char *
ColumnProblem(TupleDesc desc, int attnum, const char *name, ColumnKind kind,
			  Relation rel, int *code)
{
	Oid			type;

	if (attnum <= 0)
	{
		*code = ERRCODE_UNDEFINED_COLUMN;
		return psprintf("column \"%s\" of attached table \"%s\" does not exist",
						name, RelationGetRelationName(rel));
	}
	type = TupleDescAttr(desc, attnum - 1)->atttypid;
	if (TypeFits(type, kind))
		return NULL;
	*code = ERRCODE_DATATYPE_MISMATCH;
	switch (kind)
	{
		case COL_STREAM:
			return psprintf("stream column \"%s\" must be of type text or varchar, not %s",
							name, format_type_be(type));
		case COL_NUMBER:
			return psprintf("column \"%s\" must be of a numeric type, not %s",
							name, format_type_be(type));
		case COL_TIME:
			break;
	}
	return psprintf("time column \"%s\" must be of type timestamptz or timestamp, not %s",
					name, format_type_be(type));
}

/*
 * NumericValue
 *		A numeric column value as double (the type was checked).
 */
static double
NumericValue(Datum d, Oid type)
{
	switch (type)
	{
		case FLOAT8OID:
			return DatumGetFloat8(d);
		case FLOAT4OID:
			return (double) DatumGetFloat4(d);
		case INT2OID:
			return (double) DatumGetInt16(d);
		case INT4OID:
			return (double) DatumGetInt32(d);
		case INT8OID:
			return (double) DatumGetInt64(d);
		case NUMERICOID:
			/* out of the float8 range: +-Infinity, not an error */
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
	}
	return NAN;
}

/*
 * mlma_attach_args
 *		What the trigger's arguments say: stream, actual, predicted and time
 *		column names ('' = none), the defaults of automatically created
 *		streams (JSON), and since 0.2.0 the benchmark column ('' = none),
 *		on_invalid ('error' or 'skip') and whether unknown streams are
 *		created ('t' or 'f').  Triggers of 0.1.0 have the first five.
 */
void
mlma_attach_args(Trigger *trigger, const char *function, MlmaAttachArgs *a)
{
	if (trigger->tgnargs != 5 && trigger->tgnargs != 8)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s needs 8 arguments, got %d", function, trigger->tgnargs),
				 errhint("Install it with mlma.attach().")));
	a->stream = trigger->tgargs[0];
	a->actual = trigger->tgargs[1];
	a->predicted = trigger->tgargs[2];
	a->time = trigger->tgargs[3];
	a->defaults = trigger->tgargs[4];
	a->benchmark = trigger->tgnargs == 8 ? trigger->tgargs[5] : "";
	a->skip = trigger->tgnargs == 8 && strcmp(trigger->tgargs[6], "skip") == 0;
	a->create = trigger->tgnargs != 8 || strcmp(trigger->tgargs[7], "f") != 0;
}

/*
 * mlma_attached_columns
 *		Where the mapped columns of the table of an attachment's trigger are
 *		now, checked by name and type against the table's current
 *		descriptor (the columns of one statement's rows: a statement trigger
 *		looks once); cols->problem says why its rows cannot be read.
 */
void
mlma_attached_columns(Trigger *trigger, Relation rel, const MlmaAttachArgs *a,
					  MlmaAttachedColumns *cols)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const AttachedColumns *c = GetAttachedColumns(trigger, desc, a);
	char	   *problem;
	int			code = 0;

	cols->stream = c->stream;
	cols->actual = c->actual;
	cols->predicted = c->predicted;
	cols->time = c->time;
	cols->benchmark = c->benchmark;
	/* every row of the statement has these columns: checked once */
	problem = ColumnProblem(desc, cols->actual, a->actual, COL_NUMBER, rel, &code);
	if (problem == NULL)
		problem = ColumnProblem(desc, cols->predicted, a->predicted, COL_NUMBER, rel, &code);
	if (problem == NULL)
		problem = ColumnProblem(desc, cols->stream, a->stream, COL_STREAM, rel, &code);
	if (problem == NULL && a->time[0] != '\0')
		problem = ColumnProblem(desc, cols->time, a->time, COL_TIME, rel, &code);
	if (problem == NULL && a->benchmark[0] != '\0')
		problem = ColumnProblem(desc, cols->benchmark, a->benchmark, COL_NUMBER, rel, &code);
	cols->problem = problem;
	cols->code = code;
}

/*
 * The stream names of one statement's rows, each kept once: rows of the
 * same stream share one name (the statement trigger groups them by its
 * address), and a name read again costs a hash of its bytes, not a copy.
 * A simplehash table (lib/simplehash.h): no call through a function
 * pointer per row, as dynahash would make.
 */
typedef struct NameKey
{
	const char *bytes;
	int			len;
} NameKey;

typedef struct NameEntry
{
	NameKey		key;			/* bytes: the name, NUL-terminated, in names->cxt */
	uint32		hash;
	char		status;
} NameEntry;

/*
 * The hash of a stream name: eight bytes at a time, each word mixed in with
 * a multiply and a shift (the name table is looked up once per row of a
 * statement, and hash_bytes costs more than the lookup).
 */
static inline uint32
NameHash(const char *p, int len)
{
	uint64		h = UINT64CONST(0x9E3779B97F4A7C15) ^ (uint64) len;

	while (len >= 8)
	{
		uint64		w;

		memcpy(&w, p, 8);
		h = (h ^ w) * UINT64CONST(0xBF58476D1CE4E5B9);
		h ^= h >> 31;
		p += 8;
		len -= 8;
	}
	if (len > 0)
	{
		uint64		w = 0;
		int			i;

		for (i = 0; i < len; i++)
			w |= (uint64) (unsigned char) p[i] << (8 * i);
		h = (h ^ w) * UINT64CONST(0x94D049BB133111EB);
		h ^= h >> 29;
	}
	h *= UINT64CONST(0xBF58476D1CE4E5B9);
	return (uint32) (h ^ (h >> 32));
}

#define SH_PREFIX		nametab
#define SH_ELEMENT_TYPE	NameEntry
#define SH_KEY_TYPE		NameKey
#define SH_KEY			key
#define SH_HASH_KEY(tb, key)	NameHash((key).bytes, (key).len)
#define SH_EQUAL(tb, a, b)	((a).len == (b).len && memcmp((a).bytes, (b).bytes, (a).len) == 0)
#define SH_GET_HASH(tb, a)	((a)->hash)
#define SH_STORE_HASH
#define SH_SCOPE		static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

struct MlmaNames
{
	nametab_hash *hash;
	MemoryContext cxt;
};

/*
 * An empty name table for about expected names, in the current memory
 * context (a single-row statement sets up no more than it uses).
 */
MlmaNames *
mlma_name_table_create(long expected)
{
	MlmaNames  *names = palloc(sizeof(MlmaNames));

	names->cxt = CurrentMemoryContext;
	names->hash = nametab_create(CurrentMemoryContext,
							   (uint32) Max(Min(expected, 1024), 16), NULL);
	return names;
}

/*
 * An interned name: its bytes follow a tag the caller may use (the
 * statement trigger keeps the name's group of rows there).
 */
typedef struct InternedName
{
	void	   *tag;
	char		name[FLEXIBLE_ARRAY_MEMBER];
} InternedName;

/*
 * mlma_name_tag
 *		The tag of a name kept in a name table (the obs->name that
 *		mlma_decode_attached_row set with a name table): NULL until set.
 */
void	  **
mlma_name_tag(const char *interned)
{
	return &((InternedName *) (interned - offsetof(InternedName, name)))->tag;
}

/* the name of text d, kept once in names (in the table's memory) */
static const char *
InternName(MlmaNames *names, Datum d)
{
	text	   *t = DatumGetTextPP(d);
	NameKey		key;
	NameEntry  *e;
	bool		found;

	key.bytes = VARDATA_ANY(t);
	key.len = VARSIZE_ANY_EXHDR(t);
	e = nametab_insert(names->hash, key, &found);
	if (!found)
	{
		InternedName *in = MemoryContextAlloc(names->cxt,
											  offsetof(InternedName, name) + key.len + 1);

		in->tag = NULL;
		memcpy(in->name, key.bytes, key.len);
		in->name[key.len] = '\0';
		e->key.bytes = in->name;
	}
	if ((Pointer) t != DatumGetPointer(d))
		pfree(t);
	return e->key.bytes;
}

/*
 * mlma_decode_attached_row
 *		One row of an attached table as an observation, shared by the row
 *		trigger and the statement triggers (ingest_bulk.c), so both apply
 *		the same checks.  cols: from mlma_attached_columns.  old_slot: the
 *		row before an UPDATE, NULL for an INSERT.  names: a name table
 *		(mlma_name_table_create) the stream name is kept in, or NULL for a
 *		palloc'd copy.  Returns MLMA_ROW_NONE when the row is no observation (NULL
 *		stream, actual or predicted; an UPDATE that does not fill in actual),
 *		MLMA_ROW_OBSERVATION with *obs filled in (name palloc'd; skip_invalid
 *		and defaults as the attachment says), or MLMA_ROW_PROBLEM when a
 *		mapped column is gone or of a type the trigger cannot read: *problem
 *		says which and *code has the SQLSTATE (cols->problem: every column
 *		is checked by name and type for every statement, never only when
 *		the cache is filled).
 */
MlmaRowKind
mlma_decode_attached_row(const MlmaAttachedColumns *cols, const MlmaAttachArgs *a,
						 Relation rel, TupleTableSlot *old_slot,
						 TupleTableSlot *new_slot, MlmaNames *names,
						 MlmaObservation *obs, char **problem, int *code)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Datum		d;
	bool		isnull;

	memset(obs, 0, sizeof(*obs));
	*problem = cols->problem;
	*code = cols->code;
	if (*problem != NULL)
		return MLMA_ROW_PROBLEM;

	if (old_slot != NULL)
	{
		/* only an UPDATE that fills in actual is an observation */
		(void) slot_getattr(old_slot, cols->actual, &isnull);
		if (!isnull)
			return MLMA_ROW_NONE;
	}

	d = slot_getattr(new_slot, cols->actual, &isnull);
	if (isnull)
		return MLMA_ROW_NONE;
	obs->actual = NumericValue(d, TupleDescAttr(desc, cols->actual - 1)->atttypid);

	d = slot_getattr(new_slot, cols->predicted, &isnull);
	if (isnull)
		return MLMA_ROW_NONE;
	obs->predicted = NumericValue(d, TupleDescAttr(desc, cols->predicted - 1)->atttypid);

	d = slot_getattr(new_slot, cols->stream, &isnull);
	if (isnull)
		return MLMA_ROW_NONE;
	obs->name = names != NULL ? InternName(names, d) : TextDatumGetCString(d);

	obs->observed_at = GetCurrentTransactionStartTimestamp();
	if (cols->time > 0)
	{
		d = slot_getattr(new_slot, cols->time, &isnull);
		if (!isnull)
		{
			if (TupleDescAttr(desc, cols->time - 1)->atttypid == TIMESTAMPTZOID)
				obs->observed_at = DatumGetTimestampTz(d);
			else
				obs->observed_at = DatumGetTimestampTz(DirectFunctionCall1(timestamp_timestamptz, d));
		}
	}
	if (cols->benchmark > 0)
	{
		d = slot_getattr(new_slot, cols->benchmark, &isnull);
		if (!isnull)
		{
			obs->has_benchmark = true;
			obs->benchmark = NumericValue(d, TupleDescAttr(desc, cols->benchmark - 1)->atttypid);
		}
	}
	obs->defaults = a->create ? a->defaults : NULL;
	obs->skip_invalid = a->skip;
	return MLMA_ROW_OBSERVATION;
}

/*
 * mlma_attached_row_error
 *		The error for a row of an attached table, naming the table and the
 *		attachment.
 */
void
mlma_attached_row_error(Relation rel, const MlmaAttachArgs *a, int code,
						const char *msg)
{
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", msg),
			 errdetail("Row of table \"%s\", attached to mlma with stream column \"%s\" (mlma.attachments).",
					   RelationGetRelationName(rel), a->stream),
			 errhint("Fix the row or the table, detach() the table, or attach it with on_invalid => 'skip'.")));
}

/*
 * mlma_rethrow_with_table
 *		Called in a PG_CATCH block: the error of recording a row of an
 *		attached table, its detail extended with the table and the
 *		attachment, raised again.
 */
void
mlma_rethrow_with_table(Relation rel, const MlmaAttachArgs *a)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(TopTransactionContext);
	edata = CopyErrorData();
	FlushErrorState();
	edata->detail = psprintf("%s%sRow of table \"%s\", attached to mlma with stream column \"%s\" (mlma.attachments).",
							 edata->detail ? edata->detail : "",
							 edata->detail ? " " : "",
							 RelationGetRelationName(rel), a->stream);
	ReThrowError(edata);
}

/*
 * mlma_observe_trigger
 *		AFTER INSERT OR UPDATE row trigger of tables attached before 0.2.0
 *		(attach() now installs the statement triggers of ingest_bulk.c).
 *		Arguments: see mlma_attach_args.  A row becomes an observation
 *		when it is inserted with actual and predicted, or when an UPDATE
 *		fills in actual (NULL before) with predicted present.  Rows with a
 *		NULL stream name are ignored.  A row that cannot be an observation
 *		(a mapped column gone or of another type, non-finite values, a name
 *		that cannot be a stream) fails the statement under on_invalid
 *		'error', and is counted and left out under 'skip'.
 */
Datum
mlma_observe_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Relation	rel;
	MlmaAttachArgs a;
	MlmaAttachedColumns cols;
	MlmaObservation obs;
	MlmaRowKind kind;
	char	   *problem = NULL;
	const char *reason;
	int			code = ERRCODE_INVALID_PARAMETER_VALUE;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mlma._observe_trigger() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mlma._observe_trigger() must be an AFTER ... FOR EACH ROW trigger")));
	mlma_attach_args(trigdata->tg_trigger, "mlma._observe_trigger()", &a);
	rel = trigdata->tg_relation;

	mlma_attached_columns(trigdata->tg_trigger, rel, &a, &cols);
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		kind = mlma_decode_attached_row(&cols, &a, rel, trigdata->tg_trigslot,
										trigdata->tg_newslot, NULL, &obs,
										&problem, &code);
	else if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		kind = mlma_decode_attached_row(&cols, &a, rel, NULL,
										trigdata->tg_trigslot, NULL, &obs,
										&problem, &code);
	else
		return PointerGetDatum(NULL);
	if (kind == MLMA_ROW_NONE)
		return PointerGetDatum(NULL);
	if (kind == MLMA_ROW_PROBLEM && !a.skip)
		mlma_attached_row_error(rel, &a, code, problem);

	SPI_connect();
	if (kind == MLMA_ROW_OBSERVATION)
	{
		obs.skip_invalid = true;
		reason = mlma_record(&obs);
		if (reason != NULL && !a.skip)
		{
			/* the same message as observe(), naming the table */
			PG_TRY();
			{
				obs.skip_invalid = false;
				(void) mlma_record(&obs);
			}
			PG_CATCH();
			{
				mlma_rethrow_with_table(rel, &a);
			}
			PG_END_TRY();
			/* recorded the second time: cannot happen, the data is the same */
			mlma_attached_row_error(rel, &a, code, reason);
		}
		if (reason != NULL)
			mlma_count_skip(obs.name, RelationGetRelid(rel), reason);
	}
	else
		mlma_count_skip(NULL, RelationGetRelid(rel), problem);
	SPI_finish();

	return PointerGetDatum(NULL);
}
