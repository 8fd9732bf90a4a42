/*-------------------------------------------------------------------------
 *
 * ingest.c
 *	  Recording observations: observe(), observe_loss() and the row trigger
 *	  installed by attach() on a user's table.
 *
 * This is the hottest path of mlma.  The first observation of a stream in
 * a transaction takes the stream's writer lock (a heavyweight lock held to
 * the end of the transaction, see mlma_lock_stream), then reads where the
 * open batch stands and inserts the observation in one saved statement; the
 * transaction then owns the stream, keeps the counters in backend memory,
 * and every further observation is one INSERT.  The state row is written
 * only when a batch closes (mlma._close_batch, once every batch_size
 * observations), so neither a single-row transaction nor a COPY of a
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
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "monitor.h"

PG_FUNCTION_INFO_V1(mlma_observe);
PG_FUNCTION_INFO_V1(mlma_observe_loss);
PG_FUNCTION_INFO_V1(mlma_observe_trigger);

static SPIPlanPtr touch_plan = NULL;
static SPIPlanPtr read_plan = NULL;
static SPIPlanPtr max_plan = NULL;
static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr close_plan = NULL;
static SPIPlanPtr age_plan = NULL;

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

/*
 * PreparePlan
 *		Prepare and keep one statement of the hot path.
 */
static SPIPlanPtr
PreparePlan(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

static void
PreparePlans(void)
{
	Oid			id_type[1] = {INT8OID};

	if (touch_plan == NULL)
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
		touch_plan = PreparePlan(
								 "WITH old AS (SELECT touch_count FROM mlma.stream_state "
								 "             WHERE stream_id = $1), "
								 "upd AS (UPDATE mlma.stream_state SET touch_count = touch_count + 1 "
								 "        WHERE stream_id = $1 "
								 "        RETURNING config_version, open_start_seq, age_flagged, touch_count), "
								 "cur AS (SELECT u.config_version, u.open_start_seq, u.age_flagged, "
								 "               u.touch_count = o.touch_count + 1 AS fresh, "
								 "               greatest(u.open_start_seq, "
								 "                        (SELECT max(seq) + 1 FROM mlma.observations "
								 "                          WHERE stream_id = $1)) AS next_seq "
								 "          FROM upd u, old o), "
								 "ins AS (INSERT INTO mlma.observations "
								 "               (stream_id, seq, observed_at, loss, benchmark_loss) "
								 "        SELECT $1, next_seq, $3, $4, $5 FROM cur "
								 "         WHERE fresh AND config_version = $2 RETURNING seq) "
								 "SELECT c.config_version, c.open_start_seq, c.age_flagged, c.fresh, "
								 "       c.next_seq, (SELECT count(*) FROM ins) AS inserted "
								 "  FROM cur c",
								 5, types);
	}
	if (read_plan == NULL)
	{
		Oid			types[5] = {INT8OID, INT4OID, TIMESTAMPTZOID, FLOAT8OID,
		FLOAT8OID};

		/*
		 * The same under READ COMMITTED, where the statement's snapshot is
		 * taken after the stream lock was granted and so sees every writer
		 * that held it: no need to write the state row.
		 */
		read_plan = PreparePlan(
								"WITH cur AS (SELECT st.config_version, st.open_start_seq, st.age_flagged, "
								"                    greatest(st.open_start_seq, "
								"                             (SELECT max(seq) + 1 FROM mlma.observations "
								"                               WHERE stream_id = $1)) AS next_seq "
								"               FROM mlma.stream_state st WHERE st.stream_id = $1), "
								"ins AS (INSERT INTO mlma.observations "
								"               (stream_id, seq, observed_at, loss, benchmark_loss) "
								"        SELECT $1, next_seq, $3, $4, $5 FROM cur "
								"         WHERE config_version = $2 RETURNING seq) "
								"SELECT c.config_version, c.open_start_seq, c.age_flagged, true, "
								"       c.next_seq, (SELECT count(*) FROM ins) AS inserted "
								"  FROM cur c",
								5, types);
	}
	if (max_plan == NULL)
		max_plan = PreparePlan("SELECT max(seq) FROM mlma.observations "
							   "WHERE stream_id = $1",
							   1, id_type);
	if (insert_plan == NULL)
	{
		Oid			types[5] = {INT8OID, INT8OID, TIMESTAMPTZOID, FLOAT8OID,
		FLOAT8OID};

		insert_plan = PreparePlan("INSERT INTO mlma.observations "
								  "(stream_id, seq, observed_at, loss, benchmark_loss) "
								  "VALUES ($1, $2, $3, $4, $5)",
								  5, types);
	}
	if (close_plan == NULL)
		close_plan = PreparePlan("SELECT mlma._close_batch($1)", 1, id_type);
	if (age_plan == NULL)
		age_plan = PreparePlan("SELECT mlma._raise_age($1)", 1, id_type);
	if (owned_streams == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(OwnedStream);
		ctl.hcxt = TopMemoryContext;
		owned_streams = hash_create("mlma owned streams", 256, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
}

/*
 * TouchStream
 *		First observation of a stream in this transaction: lock its state
 *		row, learn where its open batch stands and, when possible, insert the
 *		observation in the same statement.  Returns -1 when the stream is
 *		gone, 0 when the lock is held and *owned is valid but the
 *		observation is not inserted yet (configuration changed: the caller
 *		reloads it), 1 when the observation was inserted.  bench: the
 *		benchmark's loss, NULL when there is none.
 */
static int
TouchStream(MlmaStream *stream, TimestampTz observed_at, double loss,
			const double *bench, OwnedStream **owned)
{
	OwnedStream *o;
	bool		found;
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

	/* wait for the stream's other writers, then look at it */
	mlma_lock_stream(stream->stream_id);

	args[0] = Int64GetDatum(stream->stream_id);
	args[1] = Int32GetDatum(stream->config_version);
	args[2] = TimestampTzGetDatum(observed_at);
	args[3] = Float8GetDatum(loss);
	args[4] = Float8GetDatum(bench ? *bench : 0.0);
	nulls[4] = bench ? ' ' : 'n';
	ret = SPI_execute_plan(IsolationUsesXactSnapshot() ? touch_plan : read_plan,
						   args, nulls, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "locking a stream failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		return -1;

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	o = (OwnedStream *) hash_search(owned_streams, &stream->stream_id,
									HASH_ENTER, &found);
	config_version = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
	o->open_start_seq = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	o->age_flagged = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
	fresh = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	o->next_seq = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
	inserted = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull)) > 0;

	if (!fresh)
	{
		/* a writer committed while we waited: a new snapshot sees it */
		ret = SPI_execute_plan(max_plan, args, NULL, false, 1);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "reading the open batch failed: %s",
				 SPI_result_code_string(ret));
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		o->next_seq = isnull ? o->open_start_seq
			: Max(o->open_start_seq, DatumGetInt64(d) + 1);
	}
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
 * ComputeLoss
 *		The stream's loss of (actual, predicted), with clear errors.
 */
static double
ComputeLoss(MlmaStream *stream, double actual, double predicted)
{
	double		loss;
	int			rc;

	if (!isfinite(actual) || !isfinite(predicted))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("actual and predicted must be finite"),
				 errdetail("Stream \"%s\" received actual %g, predicted %g.",
						   stream->name, actual, predicted)));

	rc = mlma_loss(stream->loss_kind, actual, predicted, stream->loss_param, &loss);
	if (rc != MLMA_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("loss %s is undefined for actual %g and predicted %g",
						mlma_loss_name(stream->loss_kind) ? mlma_loss_name(stream->loss_kind) : "?",
						actual, predicted),
				 errdetail("Stream \"%s\".", stream->name)));
	return loss;
}

static void
CheckLoss(const char *name, double loss)
{
	if (isnan(loss) || isinf(loss))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("loss must be finite"),
				 errdetail("Stream \"%s\" received loss %g.", name, loss)));
	if (loss < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("loss must not be negative"),
				 errdetail("Stream \"%s\" received loss %g.", name, loss)));
}

/*
 * BenchmarkProblem
 *		Why the benchmark value of an observation cannot be recorded, or
 *		NULL when it can; *bench is its loss.  A stream with the benchmark
 *		reference policy needs one with every observation; other streams
 *		store it when given (so a later switch of policy finds it).
 */
static const char *
BenchmarkProblem(const MlmaObservation *obs, MlmaStream *stream, double *bench,
				 char **detail)
{
	int			rc;

	*detail = NULL;
	if (!obs->has_benchmark)
	{
		if (stream->benchmark)
		{
			*detail = psprintf("Stream \"%s\" uses reference_policy benchmark: every observation needs the benchmark's %s.",
							   stream->name, obs->by_loss ? "loss (benchmark_loss)" : "prediction (benchmark)");
			return "benchmark missing";
		}
		return NULL;
	}
	if (obs->by_loss)
	{
		*bench = obs->benchmark;
		if (isnan(*bench) || isinf(*bench) || *bench < 0)
		{
			*detail = psprintf("Stream \"%s\" received benchmark_loss %g.",
							   stream->name, *bench);
			return "benchmark loss invalid";
		}
		return NULL;
	}
	if (!isfinite(obs->benchmark))
	{
		*detail = psprintf("Stream \"%s\" received benchmark %g.",
						   stream->name, obs->benchmark);
		return "benchmark invalid";
	}
	rc = mlma_loss(stream->loss_kind, obs->actual, obs->benchmark,
				   stream->loss_param, bench);
	if (rc != MLMA_OK || !isfinite(*bench) || *bench < 0)
	{
		*detail = psprintf("Loss %s is undefined for actual %g and benchmark %g (stream \"%s\").",
						   mlma_loss_name(stream->loss_kind) ? mlma_loss_name(stream->loss_kind) : "?",
						   obs->actual, obs->benchmark, stream->name);
		return "benchmark loss undefined";
	}
	return NULL;
}

/*
 * mlma_record
 *		Record one observation of the named stream.  by_loss: the loss is
 *		given; otherwise it is computed from actual and predicted with the
 *		stream's loss function, and so is the benchmark's loss from its
 *		prediction.  defaults: NULL for observe() (unknown stream is an
 *		error), the attachment's defaults for the trigger (unknown stream is
 *		created).  Returns NULL when recorded; with skip_invalid, a short
 *		reason when the observation was skipped because its benchmark value
 *		was missing or invalid.  The caller is connected to SPI.
 */
const char *
mlma_record(const MlmaObservation *obs)
{
	const char *name = obs->name;
	double		loss = obs->loss;
	double		bench = 0.0;
	const double *benchp = NULL;
	MlmaStream *stream;
	OwnedStream *owned = NULL;
	int			attempt;
	Datum		args[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int			ret;
	bool		found;
	bool		done = false;

	if (TIMESTAMP_NOT_FINITE(obs->observed_at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("observed_at must be finite"),
				 errdetail("Stream \"%s\".", name)));
	if (obs->by_loss)
		CheckLoss(name, loss);

	PreparePlans();
	stream = mlma_stream_get(name, false);

	for (attempt = 0; !done; attempt++)
	{
		const char *problem;
		char	   *detail;

		if (stream == NULL)
		{
			if (obs->defaults == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("stream \"%s\" does not exist", name),
						 errhint("Create it with mlma.create_stream().")));
			stream = mlma_stream_auto_create(name, obs->defaults);
		}
		if (attempt >= MLMA_RECORD_ATTEMPTS)
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not record an observation of stream \"%s\"", name),
					 errdetail("The stream's configuration changed during every attempt.")));

		if (!obs->by_loss)
			loss = ComputeLoss(stream, obs->actual, obs->predicted);

		problem = BenchmarkProblem(obs, stream, &bench, &detail);
		if (problem != NULL)
		{
			if (obs->skip_invalid)
				return problem;
			if (!obs->has_benchmark)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("stream \"%s\" needs a benchmark value with every observation",
								name),
						 errdetail_internal("%s", detail),
						 errhint("Pass benchmark => the challenger's prediction (observe) or benchmark_loss => its loss (observe_loss), or configure another reference_policy.")));
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must be finite and give a non-negative loss",
							obs->by_loss ? "benchmark_loss" : "benchmark"),
					 errdetail_internal("%s", detail)));
		}
		benchp = obs->has_benchmark ? &bench : NULL;

		owned = (OwnedStream *) hash_search(owned_streams, &stream->stream_id,
											HASH_FIND, &found);
		if (owned != NULL && owned->generation == mlma_xact_generation)
		{
			/* this transaction owns the stream: one INSERT */
			args[0] = Int64GetDatum(stream->stream_id);
			args[1] = Int64GetDatum(owned->next_seq);
			args[2] = TimestampTzGetDatum(obs->observed_at);
			args[3] = Float8GetDatum(loss);
			args[4] = Float8GetDatum(bench);
			nulls[4] = benchp ? ' ' : 'n';
			ret = SPI_execute_plan(insert_plan, args, nulls, false, 0);
			if (ret != SPI_OK_INSERT)
				elog(ERROR, "recording an observation failed: %s",
					 SPI_result_code_string(ret));
			owned->next_seq++;
			done = true;
			continue;
		}

		switch (TouchStream(stream, obs->observed_at, loss, benchp, &owned))
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

	args[0] = Int64GetDatum(stream->stream_id);
	if (owned->next_seq - owned->open_start_seq >= stream->batch_size)
	{
		int64		next_seq = owned->next_seq;

		ret = SPI_execute_plan(close_plan, args, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "closing a batch failed: %s", SPI_result_code_string(ret));
		owned->open_start_seq = next_seq;
	}

	if (stream->has_deadline && !owned->age_flagged && !stream->paused &&
		GetCurrentTransactionStartTimestamp() > stream->deadline)
	{
		ret = SPI_execute_plan(age_plan, args, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "raising an age request failed: %s",
				 SPI_result_code_string(ret));
		owned->age_flagged = true;
	}
	return NULL;
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
 *		   observed_at timestamptz DEFAULT now(),
 *		   benchmark float8 DEFAULT NULL) -> void
 *
 * The 0.1.0 definition (four arguments, no benchmark) calls the same
 * symbol: PG_NARGS() tells them apart.
 */
Datum
mlma_observe(PG_FUNCTION_ARGS)
{
	MlmaObservation obs = {0};

	RequireArg(fcinfo, 0, "stream");
	RequireArg(fcinfo, 1, "actual");
	RequireArg(fcinfo, 2, "predicted");
	RequireArg(fcinfo, 3, "observed_at");
	obs.name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	obs.actual = PG_GETARG_FLOAT8(1);
	obs.predicted = PG_GETARG_FLOAT8(2);
	obs.observed_at = PG_GETARG_TIMESTAMPTZ(3);
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
 *				observed_at timestamptz DEFAULT now(),
 *				benchmark_loss float8 DEFAULT NULL) -> void
 *
 * Like observe, the 0.1.0 definition has one argument less.
 */
Datum
mlma_observe_loss(PG_FUNCTION_ARGS)
{
	MlmaObservation obs = {0};

	RequireArg(fcinfo, 0, "stream");
	RequireArg(fcinfo, 1, "loss");
	RequireArg(fcinfo, 2, "observed_at");
	obs.name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	obs.by_loss = true;
	obs.loss = PG_GETARG_FLOAT8(1);
	obs.observed_at = PG_GETARG_TIMESTAMPTZ(2);
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
 */
typedef struct AttachedColumns
{
	Oid			tgoid;
	int			stream;
	int			actual;
	int			predicted;
	int			time;			/* 0: no time column, now() is used */
} AttachedColumns;

#define MLMA_ATTACH_CACHE 16
static AttachedColumns attach_cache[MLMA_ATTACH_CACHE];
static int	attach_next = 0;

static bool
ColumnMatches(TupleDesc desc, int attnum, const char *name)
{
	Form_pg_attribute att;

	if (attnum <= 0 || attnum > desc->natts)
		return false;
	att = TupleDescAttr(desc, attnum - 1);
	return !att->attisdropped && strcmp(NameStr(att->attname), name) == 0;
}

static int
ResolveColumn(TupleDesc desc, const char *name, Relation rel)
{
	int			attnum = SPI_fnumber(desc, name);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of attached table \"%s\" does not exist",
						name, RelationGetRelationName(rel)),
				 errhint("Call mlma.detach() and mlma.attach() again after renaming columns.")));
	return attnum;
}

static AttachedColumns *
GetAttachedColumns(Trigger *trigger, TupleDesc desc, Relation rel)
{
	char	  **a = trigger->tgargs;
	AttachedColumns *c = NULL;
	int			i;

	for (i = 0; i < MLMA_ATTACH_CACHE; i++)
		if (attach_cache[i].tgoid == trigger->tgoid)
		{
			c = &attach_cache[i];
			break;
		}
	if (c != NULL &&
		ColumnMatches(desc, c->stream, a[0]) &&
		ColumnMatches(desc, c->actual, a[1]) &&
		ColumnMatches(desc, c->predicted, a[2]) &&
		(a[3][0] == '\0' ? c->time == 0 : ColumnMatches(desc, c->time, a[3])))
		return c;

	if (c == NULL)
	{
		c = &attach_cache[attach_next];
		attach_next = (attach_next + 1) % MLMA_ATTACH_CACHE;
	}
	c->tgoid = InvalidOid;
	c->stream = ResolveColumn(desc, a[0], rel);
	c->actual = ResolveColumn(desc, a[1], rel);
	c->predicted = ResolveColumn(desc, a[2], rel);
	c->time = a[3][0] == '\0' ? 0 : ResolveColumn(desc, a[3], rel);
	c->tgoid = trigger->tgoid;
	return c;
}

/*
 * NumericValue
 *		A numeric column value as double.
 */
static double
NumericValue(Datum d, Oid type, const char *column)
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
			return DatumGetFloat8(DirectFunctionCall1(numeric_float8, d));
		default:
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" must be of a numeric type, not %s",
							column, format_type_be(type))));
	}
	return 0.0;					/* keep compiler quiet */
}

/*
 * mlma_observe_trigger
 *		AFTER INSERT OR UPDATE row trigger of an attached table.  Arguments:
 *		stream, actual, predicted and time column names ('' = none), and the
 *		defaults of automatically created streams (JSON).  A row becomes an
 *		observation when it is inserted with actual and predicted, or when
 *		an UPDATE fills in actual (NULL before) with predicted present.
 *		Rows with a NULL stream name are ignored.
 */
Datum
mlma_observe_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Trigger    *trigger;
	TupleDesc	desc;
	HeapTuple	tuple;
	AttachedColumns *cols;
	Datum		d;
	bool		isnull;
	char	   *name;
	double		actual;
	double		predicted;
	TimestampTz at;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mlma._observe_trigger() must be called as a trigger")));
	if (!TRIGGER_FIRED_AFTER(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mlma._observe_trigger() must be an AFTER ... FOR EACH ROW trigger")));

	trigger = trigdata->tg_trigger;
	if (trigger->tgnargs != 5)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mlma._observe_trigger() needs 5 arguments, got %d",
						trigger->tgnargs),
				 errhint("Install it with mlma.attach().")));

	desc = RelationGetDescr(trigdata->tg_relation);
	cols = GetAttachedColumns(trigger, desc, trigdata->tg_relation);

	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
	{
		tuple = trigdata->tg_newtuple;
		/* only an UPDATE that fills in actual is an observation */
		(void) heap_getattr(trigdata->tg_trigtuple, cols->actual, desc, &isnull);
		if (!isnull)
			return PointerGetDatum(NULL);
	}
	else if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		tuple = trigdata->tg_trigtuple;
	else
		return PointerGetDatum(NULL);

	d = heap_getattr(tuple, cols->actual, desc, &isnull);
	if (isnull)
		return PointerGetDatum(NULL);
	actual = NumericValue(d, TupleDescAttr(desc, cols->actual - 1)->atttypid,
						  trigger->tgargs[1]);

	d = heap_getattr(tuple, cols->predicted, desc, &isnull);
	if (isnull)
		return PointerGetDatum(NULL);
	predicted = NumericValue(d, TupleDescAttr(desc, cols->predicted - 1)->atttypid,
							 trigger->tgargs[2]);

	d = heap_getattr(tuple, cols->stream, desc, &isnull);
	if (isnull)
		return PointerGetDatum(NULL);
	name = TextDatumGetCString(d);

	at = GetCurrentTransactionStartTimestamp();
	if (cols->time > 0)
	{
		d = heap_getattr(tuple, cols->time, desc, &isnull);
		if (!isnull)
		{
			Oid			ttype = TupleDescAttr(desc, cols->time - 1)->atttypid;

			if (ttype == TIMESTAMPTZOID)
				at = DatumGetTimestampTz(d);
			else if (ttype == TIMESTAMPOID)
				at = DatumGetTimestampTz(DirectFunctionCall1(timestamp_timestamptz, d));
			else
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("time column \"%s\" must be of type timestamptz or timestamp, not %s",
								trigger->tgargs[3], format_type_be(ttype))));
		}
	}

	SPI_connect();
	{
		MlmaObservation obs = {0};

		obs.name = name;
		obs.actual = actual;
		obs.predicted = predicted;
		obs.observed_at = at;
		obs.defaults = trigger->tgargs[4];
		(void) mlma_record(&obs);
	}
	SPI_finish();

	return PointerGetDatum(NULL);
}
