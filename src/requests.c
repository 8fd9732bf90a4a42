/*-------------------------------------------------------------------------
 *
 * requests.c
 *	  Raising retrain requests and the payload of their notification: the
 *	  one place that writes new requests for several streams at once
 *	  (mlma._raise_requests; mlma_raise_drift_requests for the set ingest
 *	  path and run_checks) and the one
 *	  place that formats a mlma_retrain payload (mlma._request_payload,
 *	  used by the SQL functions that notify again on approval).
 *
 *	  A request is one INSERT … ON CONFLICT DO NOTHING for all the streams
 *	  (a stream with an open request gets none), whose new rows come back
 *	  with their stream's name; each then sends NOTIFY mlma_retrain
 *	  (delivered on commit only) unless mlma.notify is off.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"

#include "mlma.h"

PG_FUNCTION_INFO_V1(mlma_raise_requests_sql);
PG_FUNCTION_INFO_V1(mlma_request_payload_sql);

/*
 * New requests, returned with what their payload needs, in request order.
 * Every name is schema-qualified and every operator is pg_catalog's: the
 * statement runs under the caller's search_path.  The ON CONFLICT
 * predicate implies the partial unique index's (one open request per
 * stream).
 */
static const char *raise_query =
"WITH ins AS ("
"  INSERT INTO mlma.retrain_requests "
"         (stream_id, model_version, reason, status, p_value, effect, check_id, note) "
"  SELECT s.stream_id, s.model_version, $2, "
"         CASE WHEN s.approval OPERATOR(pg_catalog.=) 'manual' "
"               AND $2 OPERATOR(pg_catalog.<>) 'manual' "
"              THEN 'proposed' ELSE 'pending' END, "
"         u.p, u.e, u.c, $6 "
"    FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($3), "
"                    pg_catalog.unnest($4), pg_catalog.unnest($5)) "
"         AS u(sid, p, e, c) "
"   CROSS JOIN LATERAL (SELECT x.stream_id, x.model_version, x.approval "
"                         FROM mlma.streams x "
"                        WHERE x.stream_id OPERATOR(pg_catalog.=) u.sid LIMIT 1) s "
"   ORDER BY u.sid "
"  ON CONFLICT (stream_id) "
"     WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['proposed', 'pending', 'claimed']::pg_catalog.text[]) "
"     DO NOTHING "
"  RETURNING request_id, stream_id, model_version, reason, status, p_value, effect) "
"SELECT i.request_id, i.stream_id, n.name, i.model_version, i.reason, "
"       i.p_value, i.effect, i.status "
"  FROM ins i "
" CROSS JOIN LATERAL (SELECT x.name FROM mlma.streams x "
"                     WHERE x.stream_id OPERATOR(pg_catalog.=) i.stream_id LIMIT 1) n "
" ORDER BY i.request_id";

static MlmaPlan raise_plan;

/* s as a JSON string, cut to its first 255 characters */
static void
AppendJsonString(StringInfo buf, const char *s)
{
	int			len = strlen(s);
	int			cut = pg_mbcharcliplen(s, len, 255);

	if (cut < len)
		s = pnstrdup(s, cut);
	escape_json(buf, s);
}

/* a JSON number, or null for NULL and the values JSON has no number for */
static void
AppendJsonNumber(StringInfo buf, bool isnull, double v)
{
	if (isnull || isnan(v) || isinf(v))
		appendStringInfoString(buf, "null");
	else
		appendStringInfoString(buf, float8out_internal(v));
}

/*
 * mlma_request_payload
 *		The JSON payload of a request's mlma_retrain notification, always
 *		well below NOTIFY's 8 000 bytes: names and model versions cut to 255
 *		characters, every string escaped.  NULL, NaN and infinite p-values
 *		and effects are null.
 */
char *
mlma_request_payload(int64 request_id, int64 stream_id, const char *stream,
					 const char *model_version, const char *reason,
					 bool p_null, double p_value, bool e_null, double effect,
					 const char *status)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"v\":1,\"request_id\":" INT64_FORMAT
					 ",\"stream_id\":" INT64_FORMAT ",\"stream\":",
					 request_id, stream_id);
	AppendJsonString(&buf, stream);
	appendStringInfoString(&buf, ",\"model_version\":");
	AppendJsonString(&buf, model_version);
	appendStringInfoString(&buf, ",\"reason\":");
	AppendJsonString(&buf, reason);
	appendStringInfoString(&buf, ",\"p_value\":");
	AppendJsonNumber(&buf, p_null, p_value);
	appendStringInfoString(&buf, ",\"effect\":");
	AppendJsonNumber(&buf, e_null, effect);
	appendStringInfoString(&buf, ",\"status\":");
	AppendJsonString(&buf, status);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * RaiseRequests
 *		Raise retrain requests for the streams of args[0] (int8[]) for
 *		reason args[1] (text), with the p-values, effects (float8[] args[2],
 *		args[3]) and check ids (int8[] args[4]) of the same positions and
 *		the note args[5] (text), each NULL where isnull[] says so, in one
 *		statement; a stream that has an open request gets none.  Drift and
 *		age requests of a stream whose approval is 'manual' start as
 *		'proposed'.  Sends NOTIFY mlma_retrain for each new request unless
 *		mlma.notify is off.  Called connected to SPI.  Returns the number
 *		of new requests; their ids, ascending, in *ids (palloc'd in the
 *		current context) when ids is not NULL.
 */
static int
RaiseRequests(const Datum *args, const bool *isnull, int64 **ids)
{
	Oid			types[6] = {INT8ARRAYOID, TEXTOID, FLOAT8ARRAYOID,
	FLOAT8ARRAYOID, INT8ARRAYOID, TEXTOID};
	char		nulls[6];
	int			ret;
	uint64		i;
	uint64		n;
	int64	   *out;

	for (i = 0; i < 6; i++)
		nulls[i] = isnull[i] ? 'n' : ' ';
	ret = SPI_execute_plan(mlma_plan(&raise_plan, raise_query, 6, types),
						   (Datum *) args, nulls, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "mlma: raising retrain requests failed: %s",
			 SPI_result_code_string(ret));
	n = SPI_processed;
	out = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		p_null;
		bool		e_null;
		double		p = mlma_spi_float8(tup, desc, 6, &p_null);
		double		e = mlma_spi_float8(tup, desc, 7, &e_null);

		out[i] = mlma_spi_int64(tup, desc, 1);
		if (mlma_notify)
			Async_Notify("mlma_retrain",
						 mlma_request_payload(out[i], mlma_spi_int64(tup, desc, 2),
											  mlma_spi_text(tup, desc, 3),
											  mlma_spi_text(tup, desc, 4),
											  mlma_spi_text(tup, desc, 5),
											  p_null, p, e_null, e,
											  mlma_spi_text(tup, desc, 8)));
	}
	SPI_freetuptable(SPI_tuptable);
	if (ids != NULL)
		*ids = out;
	return (int) n;
}

/*
 * mlma_raise_drift_requests
 *		Drift requests for the n streams of stream_ids (int8 Datums), with
 *		the p-values, effects (float8) and check ids (int8) of the same
 *		positions, no note: run_checks' and the set path's, the streams in
 *		stream_id order.  Called connected to SPI.  Returns the number of
 *		new requests.
 */
int
mlma_raise_drift_requests(const Datum *stream_ids, const Datum *p_values,
						  const Datum *effects, const Datum *check_ids, int n)
{
	Datum		args[6];
	bool		isnull[6] = {false, false, false, false, false, true};

	args[0] = mlma_array_datum(stream_ids, NULL, n, INT8OID);
	args[1] = CStringGetTextDatum("drift");
	args[2] = mlma_array_datum(p_values, NULL, n, FLOAT8OID);
	args[3] = mlma_array_datum(effects, NULL, n, FLOAT8OID);
	args[4] = mlma_array_datum(check_ids, NULL, n, INT8OID);
	args[5] = (Datum) 0;
	return RaiseRequests(args, isnull, NULL);
}

/*
 * mlma._raise_requests(p_stream_ids bigint[], p_reason text,
 *		p_p_values float8[], p_effects float8[], p_check_ids bigint[],
 *		p_note text) -> bigint[]
 *		RaiseRequests for SQL: the new request ids, ascending.
 */
Datum
mlma_raise_requests_sql(PG_FUNCTION_ARGS)
{
	Datum		args[6];
	bool		isnull[6];
	int64	   *ids;
	int			n;
	int			i;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext old;
	Datum		result;

	for (i = 0; i < 6; i++)
	{
		isnull[i] = PG_ARGISNULL(i);
		args[i] = isnull[i] ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "mlma: SPI_connect failed");
	n = RaiseRequests(args, isnull, &ids);
	/* the result outlives SPI_finish */
	old = MemoryContextSwitchTo(caller);
	result = mlma_packed_array(ids, n, INT8OID, sizeof(int64));
	MemoryContextSwitchTo(old);
	SPI_finish();
	PG_RETURN_DATUM(result);
}

/*
 * mlma._request_payload(request_id bigint, stream_id bigint, stream text,
 *		model_version text, reason text, p_value float8, effect float8,
 *		status text) -> text
 *		mlma_request_payload for SQL (NULL strings as empty ones).
 */
Datum
mlma_request_payload_sql(PG_FUNCTION_ARGS)
{
	const char *text_args[4];
	static const int text_argnos[4] = {2, 3, 4, 7};
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	for (i = 0; i < 4; i++)
		text_args[i] = PG_ARGISNULL(text_argnos[i]) ? "" :
			text_to_cstring(PG_GETARG_TEXT_PP(text_argnos[i]));
	PG_RETURN_TEXT_P(cstring_to_text(
		mlma_request_payload(PG_GETARG_INT64(0), PG_GETARG_INT64(1),
							 text_args[0], text_args[1], text_args[2],
							 PG_ARGISNULL(5), PG_ARGISNULL(5) ? 0 : PG_GETARG_FLOAT8(5),
							 PG_ARGISNULL(6), PG_ARGISNULL(6) ? 0 : PG_GETARG_FLOAT8(6),
							 text_args[3])));
}
