/*-------------------------------------------------------------------------
 *
 * spi_values.c
 *	  Reading the columns of SPI result rows and building array arguments:
 *	  the helpers shared by the set-based statements of run_checks
 *	  (fleet.c) and of the set ingest path (ingest_set.c); the saved
 *	  statements of the ingest paths and the stream cache (mlma_plan).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "mlma.h"

/* column col of an SPI row as float8; 0 and *isnull when NULL */
double
mlma_spi_float8(HeapTuple tup, TupleDesc desc, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(tup, desc, col, isnull);

	return *isnull ? 0.0 : DatumGetFloat8(d);
}

/* column col (text) as a C string; "" when NULL */
char *
mlma_spi_text(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? "" : TextDatumGetCString(d);
}

/* column col as int8, int4 or bool; 0 (false) when NULL */
int64
mlma_spi_int64(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

int32
mlma_spi_int32(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : DatumGetInt32(d);
}

bool
mlma_spi_bool(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? false : DatumGetBool(d);
}

/*
 * mlma_array_values
 *		The elements of a one-dimensional array datum without NULLs, read
 *		in place (detoasted into the current memory context, else valid as
 *		long as the datum); NULL when the datum is NULL, has NULL elements
 *		or is not one-dimensional.
 */
const void *
mlma_array_values(Datum d, bool isnull, int *n)
{
	ArrayType  *a;

	*n = 0;
	if (isnull)
		return NULL;
	a = DatumGetArrayTypeP(d);
	if (ARR_NDIM(a) != 1 || ARR_HASNULL(a))
		return NULL;
	*n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
	return ARR_DATA_PTR(a);
}

/* mlma_array_values of column col of an SPI row (valid as long as the row) */
const void *
mlma_spi_array(HeapTuple tup, TupleDesc desc, int col, int *n)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return mlma_array_values(d, isnull, n);
}

/*
 * mlma_packed_array
 *		A one-dimensional array without NULLs of n values of a fixed-length
 *		type stored as in C (float8, int8, int4, timestamptz: elemsize bytes,
 *		aligned as the array aligns them), copied from values in one piece.
 */
Datum
mlma_packed_array(const void *values, int n, Oid elemtype, int elemsize)
{
	Size		bytes = ARR_OVERHEAD_NONULLS(1) + (Size) elemsize * n;
	ArrayType  *a;

	if (n == 0)
		return PointerGetDatum(construct_empty_array(elemtype));
	a = palloc(bytes);
	SET_VARSIZE(a, bytes);
	a->ndim = 1;
	a->dataoffset = 0;
	a->elemtype = elemtype;
	ARR_DIMS(a)[0] = n;
	ARR_LBOUND(a)[0] = 1;
	memcpy(ARR_DATA_PTR(a), values, (Size) elemsize * n);
	return PointerGetDatum(a);
}

/*
 * mlma_float8_array_with_nulls
 *		A one-dimensional float8 array of n values, NULL where present[i] is
 *		false (the challenger's losses of a batch or a run, missing where an
 *		observation had none).
 */
Datum
mlma_float8_array_with_nulls(const double *values, const bool *present, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	bool	   *nulls = palloc(sizeof(bool) * Max(n, 1));
	Datum		result;
	int			i;

	for (i = 0; i < n; i++)
	{
		nulls[i] = !present[i];
		d[i] = Float8GetDatum(present[i] ? values[i] : 0.0);
	}
	result = mlma_array_datum(d, nulls, n, FLOAT8OID);
	pfree(d);
	pfree(nulls);
	return result;
}

/*
 * mlma_text_of
 *		cstr as a text datum: the memo's when it holds the same string, else
 *		a new one made in the current memory context, which the memo then
 *		holds (rows copy the value when they are formed).
 */
Datum
mlma_text_of(MlmaTextMemo *memo, const char *cstr)
{
	size_t		len = strlen(cstr);

	if (memo->text == NULL || VARSIZE_ANY_EXHDR(memo->text) != len ||
		memcmp(VARDATA_ANY(memo->text), cstr, len) != 0)
		memo->text = cstring_to_text_with_len(cstr, (int) len);
	return PointerGetDatum(memo->text);
}

/* a one-dimensional array of n Datums of the given type (nulls may be NULL) */
Datum
mlma_array_datum(const Datum *elems, const bool *nulls, int n, Oid type)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1];
	int			lbs[1] = {1};

	if (n == 0)
		return PointerGetDatum(construct_empty_array(type));
	dims[0] = n;
	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	return PointerGetDatum(construct_md_array((Datum *) elems, (bool *) nulls, 1,
											  dims, lbs, type, typlen, typbyval,
											  typalign));
}

/* how long a saved statement is kept before it is prepared anew */
#define MLMA_PLAN_LIFETIME_USEC	(5 * USECS_PER_SEC)

/*
 * mlma_plan
 *		The saved statement of p, prepared (again) when p has none or when
 *		it was prepared more than MLMA_PLAN_LIFETIME_USEC before the current
 *		statement started.  The plan cache keeps a generic plan once it
 *		chose one, until a relation is invalidated, and mlma's tables start
 *		empty: a generic plan made then (a sequential scan of a table of
 *		one page under a nested loop) would stay while the table grows to
 *		millions of rows, as long as autovacuum leaves it alone.  Preparing
 *		anew lets the plan cache choose with the tables as they are now.
 *
 *		Whether a statement is too old depends only on the start of the
 *		current top-level statement and on when it was prepared, so a call
 *		nested in the execution of the same statement (a trigger of mlma's
 *		own writes) never frees a plan that is running.
 */
SPIPlanPtr
mlma_plan(MlmaPlan *p, const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan;

	if (p->plan != NULL &&
		GetCurrentStatementStartTimestamp() - p->made_at <= MLMA_PLAN_LIFETIME_USEC)
		return p->plan;
	if (p->plan != NULL)
	{
		SPI_freeplan(p->plan);
		p->plan = NULL;
	}
	plan = SPI_prepare(sql, nargs, types);
	if (plan == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("mlma: preparing a statement failed: %s",
						SPI_result_code_string(SPI_result))));
	SPI_keepplan(plan);
	p->plan = plan;
	p->made_at = GetCurrentTimestamp();
	return plan;
}
