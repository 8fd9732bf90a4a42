/*-------------------------------------------------------------------------
 *
 * spi_values.c
 *	  Reading the columns of SPI result rows and building array arguments:
 *	  the helpers shared by the set-based statements of run_checks
 *	  (fleet.c) and of the set ingest path (ingest_set.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/array.h"
#include "utils/lsyscache.h"

#include "mlma.h"

/* column col of an SPI row as float8; 0 and *isnull when NULL */
double
mlma_spi_float8(HeapTuple tup, TupleDesc desc, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(tup, desc, col, isnull);

	return *isnull ? 0.0 : DatumGetFloat8(d);
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
 * mlma_spi_array
 *		The elements of a one-dimensional array column without NULLs, read
 *		in place (detoasted into the current memory context, else valid as
 *		long as the SPI row); NULL when the column is NULL, has NULL
 *		elements or is not one-dimensional.
 */
const void *
mlma_spi_array(HeapTuple tup, TupleDesc desc, int col, int *n)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);
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
