/*-------------------------------------------------------------------------
 *
 * fleet.c
 *	  Scheduled checks across the fleet: run_checks() tests every closed
 *	  batch that waits (check_mode = 'scheduled'), adjusts the p-values of
 *	  the whole round with Benjamini-Hochberg and applies the decisions.
 *
 * One round is a handful of set-based statements, whatever the number of
 * due batches:
 *
 *	1. lock the waiting checks (FOR UPDATE SKIP LOCKED, so a concurrent
 *	   round never tests the same batch) and evaluate each against its
 *	   stream's live reference (mlma._evaluate, the same C code as the eager
 *	   path);
 *	2. adjust all p-values of the round together (BH at level fdr) and
 *	   decide per batch in batch order: significant when p_adjusted <= fdr
 *	   and effect >= min_effect, drift after `consecutive` significant
 *	   batches;
 *	3. a stream whose state changes (its streak, a request, a rolling
 *	   reference) needs its writer lock, taken without waiting in stream_id
 *	   order — stream lock before rows, like every writer.  A stream a writer
 *	   holds right now keeps its batches waiting for the next round.  Most
 *	   streams pass with a streak of 0 and need no lock at all, so a round
 *	   over 10 000 streams does not hold 10 000 locks;
 *	4. write checks and streaks back with one UPDATE each, raise one request
 *	   per drifting stream, all in one call (mlma._raise_requests sends the
 *	   NOTIFYs), roll the reference of 'rolling' streams after passing
 *	   batches.
 *
 * Checks whose batch no longer has a reference of its model version (the
 * model was retrained meanwhile) are marked 'skipped'.  Streams with the
 * benchmark reference policy are tested against their batch's own
 * benchmark losses (mlma._evaluate_benchmark); a batch with fewer than 2 of
 * them is skipped too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "mlma.h"
#include "monitor.h"
#include "core/stats.h"

PG_FUNCTION_INFO_V1(mlma_run_checks);

/* one waiting check of the round */
typedef struct DueCheck
{
	int64		check_id;
	int64		stream_id;
	int32		batch_no;
	bool		skip;			/* no reference for its model version */
	double		statistic;
	double		p_value;
	double		p_adjusted;
	double		effect;
	int32		n_reference;
	int32		n_current;
	double		reference_mean;
	double		batch_mean;
	double		min_effect;
	int32		consecutive;
	bool		paused;
	bool		rolling;
	int32		streak;			/* the stream's streak, read with the round */
	bool		significant;
	bool		drift;
	bool		excluded;		/* stream busy: left waiting for next round */
} DueCheck;

static const char *due_query =
"SELECT c.check_id, c.stream_id, c.batch_no, "
"       (b.stream_id IS NULL OR (r.stream_id IS NULL AND NOT bm.benchmark)) AS skip, "
"       e.statistic, e.p_value, e.effect, e.n_reference, e.n_current, "
"       e.reference_mean, e.batch_mean, "
"       s.min_effect, s.consecutive, s.paused, "
"       s.reference_policy OPERATOR(pg_catalog.=) 'rolling' AS rolling, "
"       st.streak "
"  FROM @extschema@.checks c "
"  JOIN @extschema@.streams s ON s.stream_id OPERATOR(pg_catalog.=) c.stream_id "
"  JOIN @extschema@.stream_state st ON st.stream_id OPERATOR(pg_catalog.=) c.stream_id "
"  CROSS JOIN LATERAL (SELECT s.reference_policy OPERATOR(pg_catalog.=) 'benchmark' AS benchmark) bm "
"  LEFT JOIN @extschema@.batches b "
"         ON b.stream_id OPERATOR(pg_catalog.=) c.stream_id "
"        AND b.batch_no OPERATOR(pg_catalog.=) c.batch_no "
"  LEFT JOIN @extschema@.reference_batches r "
"         ON r.stream_id OPERATOR(pg_catalog.=) c.stream_id "
"        AND r.version_no OPERATOR(pg_catalog.=) b.version_no "
"  LEFT JOIN LATERAL (SELECT x.* FROM @extschema@._evaluate(s.method, "
"         r.losses, r.seqs, b.losses, b.first_seq, s.season_length) x "
"         WHERE r.stream_id IS NOT NULL AND b.stream_id IS NOT NULL AND NOT bm.benchmark "
"         UNION ALL "
"         SELECT y.* FROM @extschema@._evaluate_benchmark(s.method, "
"         b.benchmark_losses, b.losses) y "
"         WHERE b.stream_id IS NOT NULL AND bm.benchmark) e ON true "
" WHERE c.status OPERATOR(pg_catalog.=) 'waiting' "
" ORDER BY c.stream_id, c.batch_no "
"   FOR UPDATE OF c SKIP LOCKED";

static const char *streak_query =
"SELECT stream_id, streak FROM @extschema@.stream_state "
" WHERE stream_id OPERATOR(pg_catalog.=) ANY ($1) "
" ORDER BY stream_id";

static const char *update_checks_query =
"UPDATE @extschema@.checks c "
"   SET status = 'done', statistic = u.statistic, p_value = u.p_value, "
"       p_adjusted = u.p_adjusted, effect = u.effect, "
"       n_reference = u.n_reference, n_current = u.n_current, "
"       reference_mean = u.reference_mean, batch_mean = u.batch_mean, "
"       significant = u.significant, drift = u.drift, checked_at = pg_catalog.now() "
"  FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::float8[]), "
"                  pg_catalog.unnest($3::float8[]), pg_catalog.unnest($4::float8[]), "
"                  pg_catalog.unnest($5::float8[]), pg_catalog.unnest($6::int4[]), "
"                  pg_catalog.unnest($7::int4[]), pg_catalog.unnest($8::float8[]), "
"                  pg_catalog.unnest($9::float8[]), pg_catalog.unnest($10::bool[]), "
"                  pg_catalog.unnest($11::bool[])) "
"       AS u(check_id, statistic, p_value, p_adjusted, effect, n_reference, "
"            n_current, reference_mean, batch_mean, significant, drift) "
" WHERE c.check_id OPERATOR(pg_catalog.=) u.check_id";

static const char *skip_checks_query =
"UPDATE @extschema@.checks SET status = 'skipped', checked_at = pg_catalog.now() "
" WHERE check_id OPERATOR(pg_catalog.=) ANY ($1)";

static const char *update_streaks_query =
"UPDATE @extschema@.stream_state st SET streak = u.streak "
"  FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::int4[])) "
"       AS u(stream_id, streak) "
" WHERE st.stream_id OPERATOR(pg_catalog.=) u.stream_id";

static const char *raise_query =
"SELECT @extschema@._raise_requests($1, 'drift', $2, $3, $4, NULL)";

static const char *roll_query =
"SELECT @extschema@._roll_reference($1, $2)";

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

static double
GetFloat8(HeapTuple tup, TupleDesc desc, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(tup, desc, col, isnull);

	return *isnull ? 0.0 : DatumGetFloat8(d);
}

static int64
GetInt64(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

static int32
GetInt32(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

static bool
GetBool(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? false : DatumGetBool(d);
}

/* A one-dimensional array of n Datums of the given type. */
static Datum
MakeArray(Datum *elems, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_array(elems, n, type, typlen, typbyval,
										   typalign));
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

/*
 * Decide
 *		The decisions of the round in batch order per stream, from each
 *		stream's streak before the round (start): significant when the
 *		adjusted p-value is at most fdr and the effect at least min_effect,
 *		drift after `consecutive` significant batches.  Leaves in streaks
 *		the streak after the round.
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
		if (d->skip || d->excluded)
			continue;
		d->significant = d->p_adjusted <= fdr && d->effect >= d->min_effect;
		streaks[k] = d->significant ? streaks[k] + 1 : 0;
		d->drift = d->significant && streaks[k] >= d->consecutive;
	}
}

/*
 * mlma_run_checks
 *		_run_checks(fdr float8) RETURNS int8[]: one scheduled round; returns
 *		the ids of the checks it finished (done or skipped).
 */
Datum
mlma_run_checks(PG_FUNCTION_ARGS)
{
	double		fdr = PG_ARGISNULL(0) ? mlma_fdr : PG_GETARG_FLOAT8(0);
	const char *schema;
	DueCheck   *due;
	uint64		ndue;
	uint64		i;
	int			nstreams;
	int64	   *stream_ids;
	int32	   *streaks;
	int32	   *old_streaks;
	double	   *pvals;
	int			ntested;
	Datum	   *result;
	int			nresult = 0;
	ArrayType  *result_array;
	MemoryContext caller_cxt = CurrentMemoryContext;

	if (isnan(fdr) || fdr <= 0.0 || fdr >= 1.0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fdr must be between 0 and 1 (exclusive), got %g", fdr)));

	schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "mlma: SPI_connect failed");

	/* 1. lock and evaluate the waiting checks */
	if (SPI_execute(ExtQuery(due_query, schema), false, 0) != SPI_OK_SELECT)
		elog(ERROR, "mlma: could not read waiting checks");
	ndue = SPI_processed;
	due = palloc0(sizeof(DueCheck) * Max(ndue, 1));
	for (i = 0; i < ndue; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		DueCheck   *d = &due[i];
		bool		isnull;

		d->check_id = GetInt64(tup, desc, 1);
		d->stream_id = GetInt64(tup, desc, 2);
		d->batch_no = GetInt32(tup, desc, 3);
		d->skip = GetBool(tup, desc, 4);
		d->statistic = GetFloat8(tup, desc, 5, &isnull);
		d->p_value = GetFloat8(tup, desc, 6, &isnull);
		if (isnull)
			d->skip = true;
		d->effect = GetFloat8(tup, desc, 7, &isnull);
		d->n_reference = GetInt32(tup, desc, 8);
		d->n_current = GetInt32(tup, desc, 9);
		d->reference_mean = GetFloat8(tup, desc, 10, &isnull);
		d->batch_mean = GetFloat8(tup, desc, 11, &isnull);
		d->min_effect = GetFloat8(tup, desc, 12, &isnull);
		d->consecutive = GetInt32(tup, desc, 13);
		d->paused = GetBool(tup, desc, 14);
		d->rolling = GetBool(tup, desc, 15);
		d->streak = GetInt32(tup, desc, 16);
	}

	if (ndue == 0)
	{
		SPI_finish();
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(INT8OID));
	}

	/* the streams of the round, in stream_id order (due is sorted) */
	stream_ids = palloc(sizeof(int64) * ndue);
	streaks = palloc0(sizeof(int32) * ndue);
	old_streaks = palloc0(sizeof(int32) * ndue);
	nstreams = 0;
	for (i = 0; i < ndue; i++)
		if (nstreams == 0 || stream_ids[nstreams - 1] != due[i].stream_id)
		{
			stream_ids[nstreams] = due[i].stream_id;
			old_streaks[nstreams] = due[i].streak;
			nstreams++;
		}

	/* 2. Benjamini-Hochberg over the whole round, then decide in order */
	pvals = palloc(sizeof(double) * ndue);
	ntested = 0;
	for (i = 0; i < ndue; i++)
		if (!due[i].skip)
			pvals[ntested++] = due[i].p_value;
	if (ntested > 0 && mlma_bh_adjust(pvals, ntested, pvals) != MLMA_OK)
		elog(ERROR, "mlma: Benjamini-Hochberg adjustment failed");
	{
		int			t = 0;

		for (i = 0; i < ndue; i++)
			if (!due[i].skip)
				due[i].p_adjusted = pvals[t++];
	}
	Decide(due, ndue, stream_ids, old_streaks, streaks, fdr);

	/*
	 * 3. The writer lock of every stream whose state changes, without
	 * waiting; busy streams are left for the next round.  Under the lock
	 * the streak is read again and the decisions are made anew.
	 */
	{
		/* per stream: 0 = no lock needed, 1 = locked, 2 = busy */
		char	   *lockstate = palloc0(sizeof(char) * nstreams);
		Datum	   *locked = palloc(sizeof(Datum) * nstreams);
		int			nlocked = 0;
		int			k = 0;

		for (i = 0; i < ndue; i++)
		{
			while (stream_ids[k] != due[i].stream_id)
				k++;
			if (!due[i].skip && (due[i].significant || due[i].rolling))
				lockstate[k] = 1;
		}
		for (k = 0; k < nstreams; k++)
		{
			if (streaks[k] != old_streaks[k])
				lockstate[k] = 1;
			if (lockstate[k] == 0)
				continue;
			if (mlma_try_lock_stream(stream_ids[k]))
				locked[nlocked++] = Int64GetDatum(stream_ids[k]);
			else
				lockstate[k] = 2;
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
			Oid			argtypes[1] = {INT8ARRAYOID};
			Datum		args[1];

			args[0] = MakeArray(locked, nlocked, INT8OID);
			ExecOrError(ExtQuery(streak_query, schema), 1, argtypes, args,
						SPI_OK_SELECT);
			/* both lists are sorted by stream_id: merge */
			k = 0;
			for (i = 0; i < SPI_processed; i++)
			{
				int64		sid = GetInt64(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

				while (k < nstreams && stream_ids[k] < sid)
					k++;
				if (k < nstreams && stream_ids[k] == sid)
					old_streaks[k] = GetInt32(SPI_tuptable->vals[i],
											  SPI_tuptable->tupdesc, 2);
			}
			Decide(due, ndue, stream_ids, old_streaks, streaks, fdr);
		}
	}

	/* 4. write back */
	{
		int			n = 0;
		int			nskip = 0;
		Datum	   *cols[11];
		Datum	   *skipped = palloc(sizeof(Datum) * ndue);
		Oid			types[11] = {INT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID,
			FLOAT8ARRAYOID, FLOAT8ARRAYOID, INT4ARRAYOID, INT4ARRAYOID,
		FLOAT8ARRAYOID, FLOAT8ARRAYOID, BOOLARRAYOID, BOOLARRAYOID};
		Oid			elemtypes[11] = {INT8OID, FLOAT8OID, FLOAT8OID, FLOAT8OID,
			FLOAT8OID, INT4OID, INT4OID, FLOAT8OID, FLOAT8OID, BOOLOID,
		BOOLOID};
		Datum		args[11];
		int			c;

		for (c = 0; c < 11; c++)
			cols[c] = palloc(sizeof(Datum) * ndue);
		for (i = 0; i < ndue; i++)
		{
			DueCheck   *d = &due[i];

			if (d->excluded)
				continue;
			if (d->skip)
			{
				skipped[nskip++] = Int64GetDatum(d->check_id);
				continue;
			}
			cols[0][n] = Int64GetDatum(d->check_id);
			cols[1][n] = Float8GetDatum(d->statistic);
			cols[2][n] = Float8GetDatum(d->p_value);
			cols[3][n] = Float8GetDatum(d->p_adjusted);
			cols[4][n] = Float8GetDatum(d->effect);
			cols[5][n] = Int32GetDatum(d->n_reference);
			cols[6][n] = Int32GetDatum(d->n_current);
			cols[7][n] = Float8GetDatum(d->reference_mean);
			cols[8][n] = Float8GetDatum(d->batch_mean);
			cols[9][n] = BoolGetDatum(d->significant);
			cols[10][n] = BoolGetDatum(d->drift);
			n++;
		}
		if (n > 0)
		{
			for (c = 0; c < 11; c++)
				args[c] = MakeArray(cols[c], n, elemtypes[c]);
			ExecOrError(ExtQuery(update_checks_query, schema), 11, types, args,
						SPI_OK_UPDATE);
		}
		if (nskip > 0)
		{
			Oid			t1[1] = {INT8ARRAYOID};

			args[0] = MakeArray(skipped, nskip, INT8OID);
			ExecOrError(ExtQuery(skip_checks_query, schema), 1, t1, args,
						SPI_OK_UPDATE);
		}
	}
	{
		Datum	   *sids = palloc(sizeof(Datum) * nstreams);
		Datum	   *sks = palloc(sizeof(Datum) * nstreams);
		Oid			types[2] = {INT8ARRAYOID, INT4ARRAYOID};
		Datum		args[2];
		int			k;
		int			nchanged = 0;

		/* only the streaks that changed: most streams stay at 0 */
		for (k = 0; k < nstreams; k++)
		{
			if (streaks[k] == old_streaks[k])
				continue;
			sids[nchanged] = Int64GetDatum(stream_ids[k]);
			sks[nchanged] = Int32GetDatum(streaks[k]);
			nchanged++;
		}
		if (nchanged > 0)
		{
			args[0] = MakeArray(sids, nchanged, INT8OID);
			args[1] = MakeArray(sks, nchanged, INT4OID);
			ExecOrError(ExtQuery(update_streaks_query, schema), 2, types, args,
						SPI_OK_UPDATE);
		}
	}

	/*
	 * Requests: one per drifting stream (the first drift of the round), all
	 * in one call.  Then the rolling references, in stream and batch order.
	 */
	{
		Datum	   *sids = palloc(sizeof(Datum) * ndue);
		Datum	   *ps = palloc(sizeof(Datum) * ndue);
		Datum	   *es = palloc(sizeof(Datum) * ndue);
		Datum	   *cids = palloc(sizeof(Datum) * ndue);
		int			nraise = 0;
		int64		raised_for = -1;
		char	   *roll_sql = ExtQuery(roll_query, schema);

		for (i = 0; i < ndue; i++)
		{
			DueCheck   *d = &due[i];

			if (d->skip || d->excluded || !d->drift || d->paused ||
				raised_for == d->stream_id)
				continue;
			sids[nraise] = Int64GetDatum(d->stream_id);
			ps[nraise] = Float8GetDatum(d->p_value);
			es[nraise] = Float8GetDatum(d->effect);
			cids[nraise] = Int64GetDatum(d->check_id);
			nraise++;
			raised_for = d->stream_id;
		}
		if (nraise > 0)
		{
			Oid			types[4] = {INT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID,
			INT8ARRAYOID};
			Datum		args[4];

			args[0] = MakeArray(sids, nraise, INT8OID);
			args[1] = MakeArray(ps, nraise, FLOAT8OID);
			args[2] = MakeArray(es, nraise, FLOAT8OID);
			args[3] = MakeArray(cids, nraise, INT8OID);
			ExecOrError(ExtQuery(raise_query, schema), 4, types, args,
						SPI_OK_SELECT);
		}

		for (i = 0; i < ndue; i++)
		{
			DueCheck   *d = &due[i];

			if (!d->skip && !d->excluded && !d->significant && d->rolling)
			{
				Oid			types[2] = {INT8OID, INT4OID};
				Datum		args[2];

				args[0] = Int64GetDatum(d->stream_id);
				args[1] = Int32GetDatum(d->batch_no);
				ExecOrError(roll_sql, 2, types, args, SPI_OK_SELECT);
			}
		}
	}

	/* the ids of every finished check, allocated outside SPI's context */
	{
		MemoryContext spi_cxt = MemoryContextSwitchTo(caller_cxt);

		result = palloc(sizeof(Datum) * ndue);
		for (i = 0; i < ndue; i++)
			if (!due[i].excluded)
				result[nresult++] = Int64GetDatum(due[i].check_id);
		result_array = construct_array(result, nresult, INT8OID, 8,
									   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
		MemoryContextSwitchTo(spi_cxt);
	}

	SPI_finish();
	PG_RETURN_ARRAYTYPE_P(result_array);
}
