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
 * Benchmark policy (mlma._evaluate_benchmark): the reference sample is the
 * challenger's losses on the batch's own observations.  Observations that
 * came without a benchmark value (the policy was switched while the batch
 * was open) are left out of both samples, so dm still pairs element by
 * element; with fewer than 2 pairs the check is undefined (NULL p-value)
 * and the caller records it as skipped.
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

#include "monitor.h"

PG_FUNCTION_INFO_V1(mlma_evaluate);
PG_FUNCTION_INFO_V1(mlma_evaluate_benchmark);

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
	int			i;

	for (i = 0; i < n; i++)
		s += x[i];
	return n > 0 ? s / n : 0.0;
}

static int
Position(int64 seq, int season)
{
	int64		p = seq % season;

	return (int) (p < 0 ? p + season : p);
}

/*
 * TestResultDatum
 *		Runs the test of current against the reference sample (alternative
 *		"greater") and returns the row of _evaluate: statistic, p_value,
 *		effect, n_reference, n_current, reference_mean, batch_mean.
 */
static Datum
TestResultDatum(FunctionCallInfo fcinfo, MlmaMethod method,
				const char *method_name, double *sample, int nsample,
				double *cur, int ncur)
{
	MlmaTestResult res;
	int			rc;
	double		ref_mean;
	double		cur_mean;
	double		effect;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {false};

	rc = mlma_run_test(method, sample, nsample, cur, ncur,
					   MLMA_ALT_GREATER, -1, &res);
	if (rc != MLMA_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("test %s failed on this batch (code %d)", method_name, rc),
				 errdetail("The losses must be finite; reference has %d, current has %d.",
						   nsample, ncur)));

	ref_mean = Mean(sample, nsample);
	cur_mean = Mean(cur, ncur);
	if (ref_mean > 0)
		effect = cur_mean / ref_mean;
	else
		effect = cur_mean > 0 ? get_float8_infinity() : 1.0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = Float8GetDatum(res.statistic);
	values[1] = Float8GetDatum(res.p_value);
	values[2] = Float8GetDatum(effect);
	values[3] = Int32GetDatum(nsample);
	values[4] = Int32GetDatum(ncur);
	values[5] = Float8GetDatum(ref_mean);
	values[6] = Float8GetDatum(cur_mean);
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
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
	double	   *sample;
	int			nsample;
	int			i;

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
	if (nref < 2 || ncur < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a check needs at least 2 reference and 2 current losses"),
				 errdetail("reference has %d, current has %d.", nref, ncur)));

	if (season == 0)
	{
		if (method == MLMA_METHOD_DM && nref != ncur)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("method dm pairs by position: reference and current must have the same length"),
					 errdetail("reference has %d, current has %d.", nref, ncur)));
		sample = ref;
		nsample = nref;
	}
	else if (method == MLMA_METHOD_DM)
	{
		double	   *sum = palloc0(sizeof(double) * season);
		int		   *cnt = palloc0(sizeof(int) * season);
		double		all = Mean(ref, nref);

		for (i = 0; i < nref; i++)
		{
			int			p = Position(ref_seqs[i], season);

			sum[p] += ref[i];
			cnt[p]++;
		}
		sample = palloc(sizeof(double) * ncur);
		nsample = ncur;
		for (i = 0; i < ncur; i++)
		{
			int			p = Position(first_seq + i, season);

			sample[i] = cnt[p] > 0 ? sum[p] / cnt[p] : all;
		}
	}
	else
	{
		bool	   *used = palloc0(sizeof(bool) * season);

		for (i = 0; i < ncur; i++)
			used[Position(first_seq + i, season)] = true;
		sample = palloc(sizeof(double) * nref);
		nsample = 0;
		for (i = 0; i < nref; i++)
			if (used[Position(ref_seqs[i], season)])
				sample[nsample++] = ref[i];
		if (nsample < 2)
		{
			sample = ref;
			nsample = nref;
		}
	}

	PG_RETURN_DATUM(TestResultDatum(fcinfo, method, method_name, sample,
									nsample, cur, ncur));
}

/*
 * mlma._evaluate_benchmark(method, benchmark, current)
 *	-> the same row as mlma._evaluate
 *
 * benchmark holds the challenger's loss of each observation of the batch
 * (NULL where none came); current the model's losses.
 */
Datum
mlma_evaluate_benchmark(PG_FUNCTION_ARGS)
{
	char	   *method_name;
	MlmaMethod	method;
	double	   *cur;
	int			ncur;
	double	   *ref;
	double	   *paired;
	int			npairs = 0;
	int			i;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("method and current must not be null")));
	method_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	method = mlma_method_kind(method_name);
	if (method == MLMA_METHOD_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown method: %s", method_name)));
	cur = Float8Array(PG_GETARG_ARRAYTYPE_P(2), &ncur, "current");
	ref = palloc(sizeof(double) * Max(ncur, 1));
	paired = palloc(sizeof(double) * Max(ncur, 1));

	if (!PG_ARGISNULL(1))
	{
		Datum	   *elems;
		bool	   *enulls;
		int			nbench;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), FLOAT8OID, 8,
						  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &elems, &enulls, &nbench);
		if (nbench != ncur)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("benchmark and current differ in length (%d and %d)",
							nbench, ncur)));
		for (i = 0; i < ncur; i++)
		{
			if (enulls[i])
				continue;
			ref[npairs] = DatumGetFloat8(elems[i]);
			paired[npairs] = cur[i];
			npairs++;
		}
	}

	if (npairs < 2)
	{
		TupleDesc	tupdesc;
		Datum		values[7] = {0};
		bool		nulls[7] = {true, true, true, false, false, true, true};

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		tupdesc = BlessTupleDesc(tupdesc);
		values[3] = Int32GetDatum(npairs);
		values[4] = Int32GetDatum(ncur);
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
	}
	PG_RETURN_DATUM(TestResultDatum(fcinfo, method, method_name, ref, npairs,
									paired, npairs));
}
