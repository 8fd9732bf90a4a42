/*-------------------------------------------------------------------------
 *
 * check.c
 *	  The numeric side of checking one closed batch: choosing the
 *	  like-for-like reference sample, running the stream's test with the
 *	  alternative "greater" (the model got worse) and computing the effect.
 *
 * The rest of the check (closing the batch, the decision, the retrain
 * request and NOTIFY) is in sql/install/35_checks.sql; it calls
 * mlma._evaluate() defined here.
 *
 * Seasonal pairing: with season_length L, the seasonal position of an
 * observation is seq % L (seq counts the stream's observations, so two
 * observations one season apart share a position).  For welch,
 * mann_whitney, ks and hac the reference sample is every reference loss
 * whose position occurs in the batch, in seq order; for dm each
 * observation is paired with the mean reference loss at its position.
 * Positions the reference does not cover fall back to the whole reference
 * (welch...) or its mean (dm), so a check never fails inside a writer's
 * transaction because of a sparse pinned reference.
 *
 * effect = mean(batch) / mean(reference sample); when the reference mean is
 * 0 it is 1 if the batch mean is 0 too, +Infinity otherwise.
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
#include "utils/float.h"

#include "mlma.h"

PG_FUNCTION_INFO_V1(mlma_evaluate);
PG_FUNCTION_INFO_V1(mlma_evaluate_benchmark);
PG_FUNCTION_INFO_V1(mlma_mean);

/*
 * Float8Array / Int8Array
 *		The elements of a one-dimensional array without NULLs.
 */
static double *
Float8Array(ArrayType *a, int *n, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	double	   *out;
	int			i;

	deconstruct_array(a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, n);
	out = palloc(sizeof(double) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		out[i] = DatumGetFloat8(elems[i]);
	}
	return out;
}

static int64 *
Int8Array(ArrayType *a, int *n, const char *what)
{
	Datum	   *elems;
	bool	   *nulls;
	int64	   *out;
	int			i;

	deconstruct_array(a, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, n);
	out = palloc(sizeof(int64) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		out[i] = DatumGetInt64(elems[i]);
	}
	return out;
}

static double
Mean(const double *x, int n)
{
	double		s = 0.0;
	double		m = 0.0;
	int			i;

	if (n <= 0)
		return 0.0;
	for (i = 0; i < n; i++)
		s += x[i];
	if (isfinite(s))
		return s / n;
	for (i = 0; i < n; i++)
		m += x[i] / (i + 1) - m / (i + 1);
	return m;
}

/* the mean of n losses without overflow (the mean column of references) */
double
mlma_losses_mean(const double *x, int n)
{
	return Mean(x, n);
}

static int
Position(int64 seq, int season)
{
	int64		p = seq % season;

	return (int) (p < 0 ? p + season : p);
}

/*
 * mlma_evaluate_losses
 *		One check in plain C, without raising errors: the like-for-like
 *		reference sample (seasonal positions when season >= 2, which needs
 *		ref_seqs), the test with the alternative "greater" and the effect.
 *		Returns MLMA_OK or the error code of the test (or MLMA_ERR_INPUT
 *		when a sample has fewer than 2 losses or dm lengths differ); out's
 *		sizes are filled in either case.  run_checks (fleet.c) calls it on
 *		the arrays of the round without a per-row SQL call.
 */
int
mlma_evaluate_losses(MlmaMethod method, const double *ref, const int64 *ref_seqs,
					 int nref, const double *cur, int ncur, int64 first_seq,
					 int season, MlmaEvaluation *out)
{
	const double *sample;
	int			nsample;
	MlmaTestResult res;
	int			rc;
	double		ref_mean;
	double		cur_mean;
	int			i;

	memset(out, 0, sizeof(*out));
	out->n_reference = nref;
	out->n_current = ncur;
	if (season >= 2 && ref_seqs == NULL)
		season = 0;
	if (nref < 2 || ncur < 2)
		return MLMA_ERR_INPUT;
	if (season < 2)
	{
		if (method == MLMA_METHOD_DM && nref != ncur)
			return MLMA_ERR_INPUT;
		sample = ref;
		nsample = nref;
	}
	else if (method == MLMA_METHOD_DM)
	{
		double	   *sum = palloc0(sizeof(double) * season);
		int		   *cnt = palloc0(sizeof(int) * season);
		double		all = Mean(ref, nref);
		double	   *paired = palloc(sizeof(double) * ncur);

		for (i = 0; i < nref; i++)
		{
			int			p = Position(ref_seqs[i], season);

			sum[p] += ref[i];
			cnt[p]++;
		}
		for (i = 0; i < ncur; i++)
		{
			int			p = Position(first_seq + i, season);

			paired[i] = cnt[p] > 0 ? sum[p] / cnt[p] : all;
		}
		sample = paired;
		nsample = ncur;
	}
	else
	{
		bool	   *used = palloc0(sizeof(bool) * season);
		double	   *like = palloc(sizeof(double) * nref);

		for (i = 0; i < ncur; i++)
			used[Position(first_seq + i, season)] = true;

		nsample = 0;
		for (i = 0; i < nref; i++)
			if (used[Position(ref_seqs[i], season)])
				like[nsample++] = ref[i];
		sample = like;
		if (nsample < 2)
		{
			sample = ref;
			nsample = nref;
		}
	}

	out->n_reference = nsample;
	rc = mlma_run_test(method, sample, nsample, cur, ncur,
					   MLMA_ALT_GREATER, -1, &res);
	if (rc != MLMA_OK)
		return rc;

	ref_mean = Mean(sample, nsample);
	cur_mean = Mean(cur, ncur);
	out->statistic = res.statistic;
	out->p_value = res.p_value;
	out->reference_mean = ref_mean;
	out->batch_mean = cur_mean;
	if (ref_mean > 0)
		out->effect = cur_mean / ref_mean;
	else
		out->effect = cur_mean > 0 ? get_float8_infinity() : 1.0;
	return MLMA_OK;
}

/*
 * EvaluationDatum
 *		The row of mlma._evaluate and mlma._evaluate_benchmark: statistic,
 *		p_value, effect, n_reference, n_current, reference_mean, batch_mean.
 */
static Datum
EvaluationDatum(FunctionCallInfo fcinfo, const MlmaEvaluation *ev)
{
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {false};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = Float8GetDatum(ev->statistic);
	values[1] = Float8GetDatum(ev->p_value);
	values[2] = Float8GetDatum(ev->effect);
	values[3] = Int32GetDatum(ev->n_reference);
	values[4] = Int32GetDatum(ev->n_current);
	values[5] = Float8GetDatum(ev->reference_mean);
	values[6] = Float8GetDatum(ev->batch_mean);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * Undefined
 *		The result of a check the data do not allow (fewer than 2 losses on
 *		a side, dm with batches of different lengths, non-finite losses):
 *		the sizes, and NULL for everything else.  The caller records the
 *		check as not significant instead of failing a writer's transaction
 *		(run_checks records p = 1 with a note, src/fleet.c).
 */
static Datum
Undefined(FunctionCallInfo fcinfo, int nref, int ncur)
{
	TupleDesc	tupdesc;
	Datum		values[7] = {0};
	bool		nulls[7] = {true, true, true, false, false, true, true};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[3] = Int32GetDatum(nref);
	values[4] = Int32GetDatum(ncur);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * mlma._evaluate(method, reference, reference_seqs, current,
 *				  current_first_seq, season_length)
 *	-> (statistic, p_value, effect, n_reference, n_current,
 *		reference_mean, batch_mean)
 */
Datum
mlma_evaluate(PG_FUNCTION_ARGS)
{
	char	   *method_name;
	MlmaMethod	method;
	double	   *ref;
	int64	   *ref_seqs = NULL;
	double	   *cur;
	int			nref;
	int			nseq = 0;
	int			ncur;
	int64		first_seq;
	int			season = 0;
	MlmaEvaluation ev;
	int			rc;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("method, reference and current must not be null")));
	method_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	method = mlma_method_kind(method_name);
	if (method == MLMA_METHOD_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown method: %s", method_name)));

	ref = Float8Array(PG_GETARG_ARRAYTYPE_P(1), &nref, "reference");
	cur = Float8Array(PG_GETARG_ARRAYTYPE_P(3), &ncur, "current");
	first_seq = PG_ARGISNULL(4) ? 0 : PG_GETARG_INT64(4);
	if (!PG_ARGISNULL(5) && PG_GETARG_INT32(5) >= 2)
		season = PG_GETARG_INT32(5);
	if (season > 0)
	{
		if (PG_ARGISNULL(2))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("reference_seqs must not be null for a seasonal stream")));
		ref_seqs = Int8Array(PG_GETARG_ARRAYTYPE_P(2), &nseq, "reference_seqs");
		if (nseq != nref)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("reference and reference_seqs differ in length (%d and %d)",
							nref, nseq)));
	}
	rc = mlma_evaluate_losses(method, ref, ref_seqs, nref, cur, ncur,
							  first_seq, season, &ev);
	if (rc == MLMA_ERR_NOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory in the %s test", method_name)));
	if (rc != MLMA_OK)
		return Undefined(fcinfo, ev.n_reference, ev.n_current);

	return EvaluationDatum(fcinfo, &ev);
}

/*
 * mlma_evaluate_benchmark_losses
 *		One check under the benchmark policy, in plain C on a batch's arrays:
 *		the reference sample is the challenger's losses on the batch's own
 *		observations (benchmark, one per observation, NULL where none came).
 *		Observations without a benchmark value are left out of both samples,
 *		so dm still pairs element by element.  Returns as
 *		mlma_evaluate_losses: MLMA_ERR_INPUT with fewer than 2 pairs.
 *		run_checks (fleet.c) and mlma._evaluate_benchmark call it.
 */
int
mlma_evaluate_benchmark_losses(MlmaMethod method, ArrayType *benchmark,
							   const double *cur, int ncur, MlmaEvaluation *out)
{
	Datum	   *elems;
	bool	   *enulls;
	int			nbench;
	double	   *ref;
	double	   *paired;
	int			npairs = 0;
	int			i;
	int			rc;

	memset(out, 0, sizeof(*out));
	out->n_current = ncur;
	if (benchmark == NULL || ARR_NDIM(benchmark) != 1)
		return MLMA_ERR_INPUT;
	deconstruct_array(benchmark, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &enulls, &nbench);
	if (nbench != ncur)
		return MLMA_ERR_INPUT;
	ref = palloc(sizeof(double) * Max(ncur, 1));
	paired = palloc(sizeof(double) * Max(ncur, 1));
	for (i = 0; i < ncur; i++)
	{
		if (enulls[i])
			continue;
		ref[npairs] = DatumGetFloat8(elems[i]);
		paired[npairs] = cur[i];
		npairs++;
	}
	rc = mlma_evaluate_losses(method, ref, NULL, npairs, paired, npairs,
							  0, 0, out);
	if (rc != MLMA_OK)
		out->n_current = ncur;	/* the batch, of which too few had a pair */
	return rc;
}

/*
 * mlma._evaluate_benchmark(method, benchmark, current)
 *	-> the same row as mlma._evaluate
 *
 * benchmark holds the challenger's loss of each observation of the batch
 * (NULL where none came), current the model's losses.  With fewer than 2
 * pairs the check is undefined: NULL p-value (the caller records it as
 * skipped).
 */
Datum
mlma_evaluate_benchmark(PG_FUNCTION_ARGS)
{
	MlmaMethod	method;
	double	   *cur;
	int			ncur;
	MlmaEvaluation ev;
	int			rc;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("method and current must not be null")));
	method = MlmaParseMethod(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	cur = Float8Array(PG_GETARG_ARRAYTYPE_P(2), &ncur, "current");
	rc = mlma_evaluate_benchmark_losses(method,
										PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1),
										cur, ncur, &ev);
	if (rc == MLMA_ERR_NOMEM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory in a benchmark test")));
	if (rc != MLMA_OK)
		return Undefined(fcinfo, ev.n_reference, ev.n_current);

	return EvaluationDatum(fcinfo, &ev);
}

/*
 * mlma._mean(float8[]) -> float8
 *		The mean of the losses without overflow (avg() raises "value out of
 *		range" on a sum beyond DBL_MAX); NULL for an empty or NULL array.
 */
Datum
mlma_mean(PG_FUNCTION_ARGS)
{
	double	   *x;
	int			n;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	x = Float8Array(PG_GETARG_ARRAYTYPE_P(0), &n, "losses");
	if (n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(Mean(x, n));
}
