/*-------------------------------------------------------------------------
 *
 * stats_sql.c
 *	  SQL-callable wrappers of the numeric core: welch_test,
 *	  mann_whitney_test, ks_test, hac_test, dm_test, loss and bh_adjust.
 *
 * The wrappers validate arrays (one dimension, no NULL, finite values, at
 * least 2 values), parse names, call the core in stats.h and turn its return
 * codes into ereport() calls.  The Mlma* functions at the end are also meant
 * for the other backend parts of mlma (ingestion and checks), so that the
 * same input gets the same error everywhere.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "mlma.h"

PG_FUNCTION_INFO_V1(welch_test);
PG_FUNCTION_INFO_V1(mann_whitney_test);
PG_FUNCTION_INFO_V1(ks_test);
PG_FUNCTION_INFO_V1(hac_test);
PG_FUNCTION_INFO_V1(dm_test);
PG_FUNCTION_INFO_V1(loss);
PG_FUNCTION_INFO_V1(bh_adjust);

PG_FUNCTION_INFO_V1(mlma_check_method);

/* which list ValidNames spells out */
typedef enum NameList
{
	NAMES_METHODS,
	NAMES_ALTERNATIVES,
	NAMES_LOSSES
} NameList;

/*
 * ValidNames
 *		The hint listing every valid name, from the tables of the numeric
 *		core (src/core), e.g. Valid losses are "squared", ... and "zero_one".
 */
static char *
ValidNames(NameList list)
{
	StringInfoData buf;
	const char *names[32];
	int			n = 0;
	int			i;

	for (;;)
	{
		const char *name;

		if (list == NAMES_METHODS)
			name = mlma_method_name((MlmaMethod) n);
		else if (list == NAMES_ALTERNATIVES)
			name = mlma_alternative_name((MlmaAlternative) n);
		else
			name = mlma_loss_name((MlmaLossKind) n);
		if (name == NULL || n == lengthof(names))
			break;
		names[n++] = name;
	}
	initStringInfo(&buf);
	appendStringInfo(&buf, "Valid %s are ",
					 list == NAMES_METHODS ? "methods" :
					 list == NAMES_ALTERNATIVES ? "alternatives" : "losses");
	for (i = 0; i < n; i++)
		appendStringInfo(&buf, "%s\"%s\"",
						 i == 0 ? "" : (i == n - 1 ? " and " : ", "), names[i]);
	appendStringInfoChar(&buf, '.');
	return buf.data;
}

/*
 * ArrayValues
 *		The elements of a float8[] argument as a C array of doubles, after
 *		checking that it is one-dimensional, without NULL and finite, with at
 *		least min_n elements (allow_nan: NaN passes the finiteness check).
 *		argname names the argument in messages.
 *		Returns a pointer into the array itself when possible.
 */
static double *
ArrayValuesExt(ArrayType *arr, const char *argname, int min_n, bool allow_nan,
			   int *n_out)
{
	int			ndim = ARR_NDIM(arr);
	int			n;
	double	   *values;
	int			i;

	if (ARR_ELEMTYPE(arr) != FLOAT8OID)
		elog(ERROR, "%s is not a float8 array", argname);
	if (ndim > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a one-dimensional array", argname)));

	n = (ndim == 0) ? 0 : ARR_DIMS(arr)[0];
	if (n < min_n)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must contain at least %d values", argname, min_n)));

	if (ARR_HASNULL(arr))
	{
		bits8	   *bitmap = ARR_NULLBITMAP(arr);

		for (i = 0; i < n; i++)
			if (!(bitmap[i / 8] & (1 << (i % 8))))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("%s contains a null value at position %d",
								argname, i + 1)));
	}

	values = (double *) ARR_DATA_PTR(arr);
	for (i = 0; i < n; i++)
		if (!isfinite(values[i]) && !(allow_nan && isnan(values[i])))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s contains a non-finite value at position %d",
							argname, i + 1)));

	*n_out = n;
	return values;
}

#define ArrayValues(arr, argname, min_n, n_out) \
	ArrayValuesExt((arr), (argname), (min_n), false, (n_out))
#define ArrayValuesAllowNaN(arr, argname, min_n, n_out) \
	ArrayValuesExt((arr), (argname), (min_n), true, (n_out))

/*
 * MlmaParseAlternative
 *		Alternative by name, or an error listing the valid names.
 */
MlmaAlternative
MlmaParseAlternative(const char *name)
{
	MlmaAlternative alt;

	if (mlma_alternative_kind(name, &alt) != MLMA_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown alternative \"%s\"", name),
				 errhint("%s", ValidNames(NAMES_ALTERNATIVES))));
	return alt;
}

/*
 * MlmaParseMethod
 *		Test method by name, or an error listing the valid names.
 */
MlmaMethod
MlmaParseMethod(const char *name)
{
	MlmaMethod	m = mlma_method_kind(name);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("method must not be null")));
	if (m == MLMA_METHOD_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown method \"%s\"", name),
				 errhint("%s", ValidNames(NAMES_METHODS))));
	return m;
}

/*
 * MlmaLossParam
 *		The loss parameter argument as the core takes it: NaN when absent
 *		(NULL); a NaN given explicitly is an error.
 */
double
MlmaLossParam(bool isnull, double value)
{
	if (isnull)
		return NAN;
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("loss parameter must not be NaN"),
				 errhint("Pass NULL for a loss without parameter.")));
	return value;
}

/*
 * MlmaParseLossKind
 *		Loss kind by name, with its parameter (NaN = none) checked.
 */
MlmaLossKind
MlmaParseLossKind(const char *name, double param)
{
	MlmaLossKind kind = mlma_loss_kind(name);

	if (kind == MLMA_LOSS_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown loss \"%s\"", name),
				 errhint("%s", ValidNames(NAMES_LOSSES))));

	if (mlma_loss_check_param(kind, param) != MLMA_OK)
	{
		switch (kind)
		{
			case MLMA_LOSS_PINBALL:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 isnan(param) ?
						 errmsg("loss \"pinball\" requires a parameter") :
						 errmsg("pinball parameter must be between 0 and 1 exclusive"),
						 errdetail("The parameter of the pinball loss is the quantile level tau, 0 < tau < 1.")));
				break;
			case MLMA_LOSS_HUBER:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 isnan(param) ?
						 errmsg("loss \"huber\" requires a parameter") :
						 errmsg("huber parameter must be positive and finite"),
						 errdetail("The parameter of the huber loss is the threshold delta > 0 between its quadratic and linear parts.")));
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("loss \"%s\" takes no parameter", name),
						 errhint("Only the pinball and huber losses take a parameter; pass NULL.")));
				break;
		}
	}
	return kind;
}

/*
 * MlmaComputeLoss
 *		Loss of one pair, or an error saying why it is undefined.
 */
double
MlmaComputeLoss(MlmaLossKind kind, double actual, double predicted,
				double param)
{
	double		v = 0.0;

	if (mlma_loss(kind, actual, predicted, param, &v) != MLMA_OK)
		MlmaLossError(kind, actual, predicted, param, NULL);
	return v;
}

/*
 * MlmaLossError
 *		The error for a pair whose loss the core refused (mlma_loss did not
 *		return MLMA_OK): one message per condition, for loss() and for the
 *		observations of a stream (stream: its name, for the detail; NULL
 *		for loss()).
 */
void
MlmaLossError(MlmaLossKind kind, double actual, double predicted,
			  double param, const char *stream)
{
	const char *name = mlma_loss_name(kind);

#define LOSS_DETAIL() \
	(stream ? errdetail("Stream \"%s\" received actual %g, predicted %g.", \
						stream, actual, predicted) : 0)

	(void) MlmaParseLossKind(name, param);
	if (!isfinite(actual) || !isfinite(predicted))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("actual and predicted must be finite"),
				 LOSS_DETAIL()));
	switch (kind)
	{
		case MLMA_LOSS_APE:
			if (actual == 0.0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("loss \"ape\" is undefined when actual is 0"),
						 LOSS_DETAIL(),
						 errhint("Use the \"sape\" or \"absolute\" loss for series that can be 0.")));
			break;
		case MLMA_LOSS_POISSON:
			if (actual < 0.0 || predicted <= 0.0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("loss \"poisson\" requires actual >= 0 and predicted > 0"),
						 LOSS_DETAIL()));
			break;
		case MLMA_LOSS_LOGLOSS:
			if ((actual != 0.0 && actual != 1.0) ||
				predicted < 0.0 || predicted > 1.0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("loss \"logloss\" requires actual 0 or 1 and predicted between 0 and 1"),
						 LOSS_DETAIL()));
			break;
		default:
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
			 errmsg("loss \"%s\" is out of range for actual %g and predicted %g",
					name, actual, predicted),
			 LOSS_DETAIL()));
#undef LOSS_DETAIL
}

/*
 * MlmaReportTestError
 *		ereport() for a non-OK return code of a test of the core.  Inputs are
 *		validated before the call, so only resource failures are expected.
 */
void
MlmaReportTestError(int rc, MlmaMethod method)
{
	const char *name = mlma_method_name(method);

	switch (rc)
	{
		case MLMA_OK:
			return;
		case MLMA_ERR_NOMEM:
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory in %s test", name ? name : "unknown")));
			break;
		case MLMA_ERR_LENGTH:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reference and current must have the same length for the %s test",
							name ? name : "paired")));
			break;
		case MLMA_ERR_INPUT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("each batch must contain at least 2 finite values")));
			break;
		default:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid parameter for the %s test",
							name ? name : "unknown")));
			break;
	}
}

/*
 * RunTestSql
 *		Common body of the test functions: arguments (reference, current,
 *		alternative[, lags]); returns the composite result.
 */
static Datum
RunTestSql(FunctionCallInfo fcinfo, MlmaMethod method)
{
	int			nref,
				ncur;
	double	   *ref;
	double	   *cur;
	char	   *altname;
	MlmaAlternative alt;
	int			lags = -1;
	MlmaTestResult res;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int			rc;
	int			natts;

	/* STRICT in the data and the alternative, lags NULL = default */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function returning record called in context that cannot accept type record")));
	tupdesc = BlessTupleDesc(tupdesc);

	altname = text_to_cstring(PG_GETARG_TEXT_PP(2));
	alt = MlmaParseAlternative(altname);

	if ((method == MLMA_METHOD_HAC || method == MLMA_METHOD_DM) &&
		PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		lags = PG_GETARG_INT32(3);
		if (lags < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("lags must not be negative"),
					 errhint("Pass NULL for the default floor(4 * (n/100)^(2/9)).")));
	}

	ref = ArrayValues(PG_GETARG_ARRAYTYPE_P(0), "reference", 2, &nref);
	cur = ArrayValues(PG_GETARG_ARRAYTYPE_P(1), "current", 2, &ncur);
	if (method == MLMA_METHOD_DM && nref != ncur)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reference and current must have the same length for dm_test"),
				 errdetail("reference has %d values, current has %d.", nref, ncur)));

	rc = mlma_run_test(method, ref, (size_t) nref, cur, (size_t) ncur,
					   alt, lags, &res);
	MlmaReportTestError(rc, method);

	natts = tupdesc->natts;
	values[0] = Float8GetDatum(res.statistic);
	values[1] = Float8GetDatum(res.p_value);
	if (natts > 2)
	{
		if (method == MLMA_METHOD_WELCH)
			values[2] = Float8GetDatum(res.df);
		else
			values[2] = Int32GetDatum(res.lags);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * welch_test(reference float8[], current float8[], alternative text)
 *		-> (statistic, p_value, df)
 */
Datum
welch_test(PG_FUNCTION_ARGS)
{
	return RunTestSql(fcinfo, MLMA_METHOD_WELCH);
}

/*
 * mann_whitney_test(reference, current, alternative) -> (statistic, p_value)
 */
Datum
mann_whitney_test(PG_FUNCTION_ARGS)
{
	return RunTestSql(fcinfo, MLMA_METHOD_MANN_WHITNEY);
}

/*
 * ks_test(reference, current, alternative) -> (statistic, p_value)
 */
Datum
ks_test(PG_FUNCTION_ARGS)
{
	return RunTestSql(fcinfo, MLMA_METHOD_KS);
}

/*
 * hac_test(reference, current, alternative, lags) -> (statistic, p_value, lags)
 */
Datum
hac_test(PG_FUNCTION_ARGS)
{
	return RunTestSql(fcinfo, MLMA_METHOD_HAC);
}

/*
 * dm_test(reference, current, alternative, lags) -> (statistic, p_value, lags)
 */
Datum
dm_test(PG_FUNCTION_ARGS)
{
	return RunTestSql(fcinfo, MLMA_METHOD_DM);
}

/*
 * loss(kind text, actual float8, predicted float8, param float8) -> float8
 *
 * Not STRICT: a NULL param means "no parameter".  The kind and parameter are
 * checked even when actual or predicted is NULL (which gives NULL).
 */
Datum
loss(PG_FUNCTION_ARGS)
{
	char	   *name;
	double		param;
	MlmaLossKind kind;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	param = MlmaLossParam(PG_ARGISNULL(3), PG_ARGISNULL(3) ? 0.0 : PG_GETARG_FLOAT8(3));
	kind = MlmaParseLossKind(name, param);

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(MlmaComputeLoss(kind, PG_GETARG_FLOAT8(1),
									 PG_GETARG_FLOAT8(2), param));
}

/*
 * bh_adjust(p_values float8[]) -> float8[]
 *		Benjamini-Hochberg adjusted p-values, in input order.  NaN counts
 *		as 1 (a test without evidence), so a NaN never makes it fail.
 */
Datum
bh_adjust(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	int			n;
	double	   *p;
	double	   *out;
	Datum	   *elems;
	int			i;
	int			rc;

	p = ArrayValuesAllowNaN(arr, "p_values", 0, &n);
	for (i = 0; i < n; i++)
		if (p[i] < 0.0 || p[i] > 1.0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("p_values contains a value outside [0, 1] at position %d",
							i + 1)));
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(FLOAT8OID));

	out = palloc(sizeof(double) * n);
	rc = mlma_bh_adjust(p, (size_t) n, out);
	if (rc == MLMA_ERR_NOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory in bh_adjust")));
	else if (rc != MLMA_OK)
		elog(ERROR, "bh_adjust failed with code %d", rc);

	elems = palloc(sizeof(Datum) * n);
	for (i = 0; i < n; i++)
		elems[i] = Float8GetDatum(out[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, FLOAT8OID, sizeof(float8),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * mlma._check_method(method text) -> void
 *		The method check of the SQL side (stream options): the same list and
 *		the same error as every C caller.
 */
Datum
mlma_check_method(PG_FUNCTION_ARGS)
{
	(void) MlmaParseMethod(PG_ARGISNULL(0) ? NULL :
						   text_to_cstring(PG_GETARG_TEXT_PP(0)));
	PG_RETURN_VOID();
}
