/*-------------------------------------------------------------------------
 *
 * decide_sql.c
 *	  mlma._decide: the decision rule of src/core/decide.c for SQL callers
 *	  (the eager check in mlma._close_batch), so that the eager and the
 *	  scheduled path (src/fleet.c) decide with the same code.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"

#include "core/decide.h"

PG_FUNCTION_INFO_V1(mlma_decide_sql);

/*
 * mlma._decide(p, threshold, effect, min_effect, streak_before, consecutive)
 *	-> (significant, streak, drift)
 *
 * A NULL p-value, threshold, effect or min_effect counts as NaN (not
 * significant), a NULL streak_before as 0 and a NULL consecutive as 1.
 */
Datum
mlma_decide_sql(PG_FUNCTION_ARGS)
{
	double		p = PG_ARGISNULL(0) ? NAN : PG_GETARG_FLOAT8(0);
	double		threshold = PG_ARGISNULL(1) ? NAN : PG_GETARG_FLOAT8(1);
	double		effect = PG_ARGISNULL(2) ? NAN : PG_GETARG_FLOAT8(2);
	double		min_effect = PG_ARGISNULL(3) ? NAN : PG_GETARG_FLOAT8(3);
	int32		streak_before = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT32(4);
	int32		consecutive = PG_ARGISNULL(5) ? 1 : PG_GETARG_INT32(5);
	MlmaDecision d;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	d = mlma_decide(p, threshold, effect, min_effect, streak_before,
					consecutive);
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = BoolGetDatum(d.significant);
	values[1] = Int32GetDatum(d.streak);
	values[2] = BoolGetDatum(d.drift);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
