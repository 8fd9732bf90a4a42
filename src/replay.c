/*-------------------------------------------------------------------------
 *
 * replay.c
 *	  What-if replays of the logged losses, in one pass over each stream's
 *	  history: mlma._replay (one stream, one row per tested batch, behind
 *	  replay()) and mlma._replay_fleet (many streams together, round by
 *	  round with Benjamini-Hochberg across the fleet, behind replay_fleet()).
 *	  Nothing here writes: the history is read with one SELECT per table
 *	  and stream, and every state lives in this backend's memory.
 *
 * Batches.  With the stream's own batch_size the replayed batches are the
 * live batches (mlma.batches), numbered as live.  With another batch_size
 * each model version's observations are cut into chunks of batch_size
 * from the version's first observation; the tail of a version that ended
 * is a partial batch (numbered, never tested); numbering starts at the
 * first live batch number kept and counts every batch, reference and
 * partial ones included, like live.
 *
 * Per stream, as live: each model version warms its reference from its
 * first reference_size observations; batches starting at or after the
 * reference's end are tested (check.c's like-for-like sample, alternative
 * 'greater'); the decision (Decide below) is the shared rule; a rolling
 * reference rolls after a passing batch.  After a flag the retrain is
 * assumed to complete at once: the next reference_size observations warm a
 * new reference.  Policy 'benchmark': each batch is tested against its own
 * benchmark losses (paired), when mlma.batches has benchmark_losses.
 *
 * Rounds (scheduled streams of _replay_fleet).  The recorded rounds are
 * the distinct checked_at of the live scheduled checks of the selected
 * streams.  A replayed batch that is a live batch with a scheduled check
 * belongs to that check's round; any other batch to the first recorded
 * round at or after its close (the close of the live batch holding its
 * last observation: the check's created_at, else the observation time);
 * batches closed after the last recorded round stay undecided (as live
 * they wait for the next run_checks).  Without recorded rounds, rounds are
 * fixed windows of round_interval on the close time, each decided at its
 * end.  In a round every test batch is evaluated against its stream's
 * reference at the round's start, the p-values of the whole round are
 * BH-adjusted together and the decisions are made per stream in batch
 * order with p_adjusted <= fdr, exactly as run_checks() does.  A flagged
 * stream's later batches of the round go to the next round (retrained at
 * once); a model version change drops the stream's undecided tests of the
 * old version (live: 'skipped').
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "mlma.h"
#include "core/decide.h"
#include "core/stats.h"

PG_FUNCTION_INFO_V1(mlma_replay);
PG_FUNCTION_INFO_V1(mlma_replay_fleet);

#define ROLE_TEST		0
#define ROLE_REFERENCE	1
#define ROLE_PARTIAL	2
#define KEY_NEVER		PG_INT64_MAX	/* closed after the last round */

typedef struct ReplayStream
{
	int64		stream_id;
	/* settings */
	MlmaMethod	method;
	double		alpha;
	int			bs;
	int			rs;
	int			season;			/* 0: none */
	bool		rolling;
	bool		benchmark;
	double		min_effect;
	int			consecutive;
	bool		scheduled;
	/* observations, in seq order */
	int			n;
	int			cap;
	double	   *L;
	double	   *B;				/* benchmark losses, NaN: none; NULL: no column */
	int64	   *Q;
	TimestampTz *T;
	int32	   *lb;				/* live batch of each observation, -1: open */
	/* live batches */
	int			nlb;
	int			lbcap;
	int		   *lb_start;
	int		   *lb_len;
	int32	   *lb_no;
	int32	   *lb_ver;
	char	  **lb_mv;
	bool	   *lb_partial;
	TimestampTz *lb_close;
	TimestampTz *lb_round;		/* 0: no scheduled check */
	int32		open_ver;
	char	   *open_mv;
	int32		next_no;		/* first number when there is no live batch */
	/* replayed batches */
	int			ng;
	int		   *g_start;
	int		   *g_len;
	int32	   *g_no;
	int32	   *g_ver;
	char	  **g_mv;
	bool	   *g_partial;
	int64	   *g_key;			/* round key */
	/* state */
	int			next;			/* next replayed batch */
	int32		cur_ver;
	bool		has_ref;
	int			ref_end;		/* observation index where the reference ends */
	int			warm_start;
	double	   *ref;
	int64	   *refq;
	int			nref;
	int			streak;
	/* results */
	int64		checks;
	int64		flags;
	int32	   *flag_nos;
} ReplayStream;

typedef struct ReplayEval
{
	double		statistic;
	double		p_value;
	double		effect;
} ReplayEval;

/*
 * Decide
 *		The decision rule shared with the live checks (mlma_decide): significant when p is
 *		at most the threshold and the effect at least min_effect (NaN: not
 *		significant), drift after `consecutive` significant batches in a row.
 */
static void
Decide(double p, double threshold, double effect, double min_effect,
	   int streak_before, int consecutive, bool *significant, int *streak,
	   bool *drift)
{
	MlmaDecision d = mlma_decide(p, threshold, effect, min_effect,
								 streak_before, consecutive);

	*significant = d.significant;
	*streak = d.streak;
	*drift = d.drift;
}

static void
Grow(ReplayStream *s, int need)
{
	if (need <= s->cap)
		return;
	s->cap = Max(need, s->cap * 2);
	s->L = repalloc_huge(s->L, sizeof(double) * s->cap);
	s->Q = repalloc_huge(s->Q, sizeof(int64) * s->cap);
	s->T = repalloc_huge(s->T, sizeof(TimestampTz) * s->cap);
	s->lb = repalloc_huge(s->lb, sizeof(int32) * s->cap);
	if (s->B)
		s->B = repalloc_huge(s->B, sizeof(double) * s->cap);
}

static void
GrowBatches(ReplayStream *s)
{
	if (s->nlb < s->lbcap)
		return;
	s->lbcap *= 2;
	s->lb_start = repalloc(s->lb_start, sizeof(int) * s->lbcap);
	s->lb_len = repalloc(s->lb_len, sizeof(int) * s->lbcap);
	s->lb_no = repalloc(s->lb_no, sizeof(int32) * s->lbcap);
	s->lb_ver = repalloc(s->lb_ver, sizeof(int32) * s->lbcap);
	s->lb_mv = repalloc(s->lb_mv, sizeof(char *) * s->lbcap);
	s->lb_partial = repalloc(s->lb_partial, sizeof(bool) * s->lbcap);
	s->lb_close = repalloc(s->lb_close, sizeof(TimestampTz) * s->lbcap);
	s->lb_round = repalloc(s->lb_round, sizeof(TimestampTz) * s->lbcap);
}

static bool
HasBenchmarkColumn(const char *schema)
{
	StringInfoData q;

	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT 1 FROM pg_catalog.pg_attribute "
					 " WHERE attrelid OPERATOR(pg_catalog.=) '%s.batches'::pg_catalog.regclass "
					 "   AND attname OPERATOR(pg_catalog.=) 'benchmark_losses' AND NOT attisdropped",
					 quote_identifier(schema));
	if (SPI_execute(q.data, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "mlma: could not read the catalog");
	return SPI_processed > 0;
}

/*
 * LoadStream
 *		Reads the stream's closed batches and open observations (inside
 *		SPI); the arrays are allocated in cxt.
 */
static void
LoadStream(ReplayStream *s, const char *schema, bool has_bench, MemoryContext cxt)
{
	StringInfoData q;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	uint64		r;
	MemoryContext old;
	char	   *last_mv = NULL;
	const char *qs = quote_identifier(schema);

	args[0] = Int64GetDatum(s->stream_id);
	old = MemoryContextSwitchTo(cxt);
	s->cap = 1024;
	s->L = palloc(sizeof(double) * s->cap);
	s->Q = palloc(sizeof(int64) * s->cap);
	s->T = palloc(sizeof(TimestampTz) * s->cap);
	s->lb = palloc(sizeof(int32) * s->cap);
	s->B = has_bench ? palloc(sizeof(double) * s->cap) : NULL;
	s->lbcap = 64;
	s->lb_start = palloc(sizeof(int) * s->lbcap);
	s->lb_len = palloc(sizeof(int) * s->lbcap);
	s->lb_no = palloc(sizeof(int32) * s->lbcap);
	s->lb_ver = palloc(sizeof(int32) * s->lbcap);
	s->lb_mv = palloc(sizeof(char *) * s->lbcap);
	s->lb_partial = palloc(sizeof(bool) * s->lbcap);
	s->lb_close = palloc(sizeof(TimestampTz) * s->lbcap);
	s->lb_round = palloc(sizeof(TimestampTz) * s->lbcap);
	MemoryContextSwitchTo(old);

	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT b.batch_no, b.version_no, b.model_version, "
					 "       b.role OPERATOR(pg_catalog.=) 'partial', b.first_seq, b.first_at, "
					 "       b.losses, b.offsets, c.created_at, "
					 "       CASE WHEN c.check_mode OPERATOR(pg_catalog.=) 'scheduled' "
					 "             AND c.status OPERATOR(pg_catalog.<>) 'waiting' THEN c.checked_at END, "
					 "       %s "
					 "  FROM %s.batches b LEFT JOIN %s.checks c "
					 "    ON c.stream_id OPERATOR(pg_catalog.=) b.stream_id "
					 "   AND c.batch_no OPERATOR(pg_catalog.=) b.batch_no "
					 " WHERE b.stream_id OPERATOR(pg_catalog.=) $1 ORDER BY b.batch_no",
					 has_bench ? "b.benchmark_losses" : "NULL::float8[]", qs, qs);
	if (SPI_execute_with_args(q.data, 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "mlma: could not read the batches of stream %lld",
			 (long long) s->stream_id);
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum	   *le;
		Datum	   *oe;
		Datum	   *be = NULL;
		bool	   *bn = NULL;
		int			nl;
		int			no;
		int			nb = 0;
		int64		first_seq = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
		TimestampTz first_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 6, &isnull));
		char	   *mv = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
		Datum		d;
		int			k = s->nlb;
		int			i;

		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 7, &isnull)),
						  FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &le, NULL, &nl);
		deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 8, &isnull)),
						  INT4OID, 4, true, TYPALIGN_INT, &oe, NULL, &no);
		d = SPI_getbinval(tup, desc, 11, &isnull);
		if (!isnull)
			deconstruct_array(DatumGetArrayTypeP(d), FLOAT8OID, 8, FLOAT8PASSBYVAL,
							  TYPALIGN_DOUBLE, &be, &bn, &nb);

		old = MemoryContextSwitchTo(cxt);
		GrowBatches(s);
		Grow(s, s->n + nl);
		if (last_mv == NULL || strcmp(last_mv, mv) != 0)
			last_mv = pstrdup(mv);
		MemoryContextSwitchTo(old);

		s->lb_start[k] = s->n;
		s->lb_len[k] = nl;
		s->lb_no[k] = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		s->lb_ver[k] = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		s->lb_mv[k] = last_mv;
		s->lb_partial[k] = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		for (i = 0; i < nl; i++)
		{
			s->L[s->n + i] = DatumGetFloat8(le[i]);
			s->Q[s->n + i] = first_seq + i;
			s->T[s->n + i] = first_at +
				(i < no ? (int64) DatumGetInt32(oe[i]) * USECS_PER_SEC : 0);
			s->lb[s->n + i] = k;
			if (s->B)
				s->B[s->n + i] = (i < nb && !bn[i]) ? DatumGetFloat8(be[i]) : get_float8_nan();
		}
		s->n += nl;
		d = SPI_getbinval(tup, desc, 9, &isnull);
		s->lb_close[k] = isnull ? s->T[s->n - 1] : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 10, &isnull);
		s->lb_round[k] = isnull ? 0 : DatumGetTimestampTz(d);
		s->nlb++;
	}

	resetStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT o.seq, o.observed_at, o.loss, st.version_no, s.model_version, "
					 "       st.batch_no, %s "
					 "  FROM %s.streams s JOIN %s.stream_state st "
					 "    ON st.stream_id OPERATOR(pg_catalog.=) s.stream_id "
					 "  LEFT JOIN %s.observations o "
					 "    ON o.stream_id OPERATOR(pg_catalog.=) s.stream_id "
					 " WHERE s.stream_id OPERATOR(pg_catalog.=) $1 ORDER BY o.seq",
					 has_bench ? "o.benchmark_loss" : "NULL::float8", qs, qs, qs);
	if (SPI_execute_with_args(q.data, 1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "mlma: could not read the open batch of stream %lld",
			 (long long) s->stream_id);
	old = MemoryContextSwitchTo(cxt);
	Grow(s, s->n + (int) SPI_processed);
	MemoryContextSwitchTo(old);
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		noobs;
		Datum		seq = SPI_getbinval(tup, desc, 1, &noobs);
		Datum		d;

		if (r == 0)
		{
			s->open_ver = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
			s->open_mv = MemoryContextStrdup(cxt, TextDatumGetCString(SPI_getbinval(tup, desc, 5, &isnull)));
			s->next_no = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
		}
		if (noobs)
			continue;		/* no open observation */
		s->Q[s->n] = DatumGetInt64(seq);
		s->T[s->n] = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
		s->L[s->n] = DatumGetFloat8(SPI_getbinval(tup, desc, 3, &isnull));
		s->lb[s->n] = -1;
		if (s->B)
		{
			d = SPI_getbinval(tup, desc, 7, &isnull);
			s->B[s->n] = isnull ? get_float8_nan() : DatumGetFloat8(d);
		}
		s->n++;
	}
}

/* first index in the sorted rounds with rounds[i] >= t, or n */
static int
FirstRoundAtOrAfter(const TimestampTz *rounds, int n, TimestampTz t)
{
	int			lo = 0;
	int			hi = n;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (rounds[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * BuildGrid
 *		The replayed batches of the stream and the round key of each (see
 *		the file header).  own_grid: the live batches as they are.
 */
static void
BuildGrid(ReplayStream *s, bool own_grid, const TimestampTz *rounds, int nrounds,
		  int64 window)
{
	int			cap = own_grid ? Max(s->nlb, 1) : Max(s->n / s->bs + s->nlb + 2, 1);
	int			j;

	s->g_start = palloc(sizeof(int) * cap);
	s->g_len = palloc(sizeof(int) * cap);
	s->g_no = palloc(sizeof(int32) * cap);
	s->g_ver = palloc(sizeof(int32) * cap);
	s->g_mv = palloc(sizeof(char *) * cap);
	s->g_partial = palloc(sizeof(bool) * cap);
	s->g_key = palloc(sizeof(int64) * cap);
	s->ng = 0;
	if (own_grid)
	{
		for (j = 0; j < s->nlb; j++)
		{
			s->g_start[j] = s->lb_start[j];
			s->g_len[j] = s->lb_len[j];
			s->g_no[j] = s->lb_no[j];
			s->g_ver[j] = s->lb_ver[j];
			s->g_mv[j] = s->lb_mv[j];
			s->g_partial[j] = s->lb_partial[j];
		}
		s->ng = s->nlb;
	}
	else
	{
		int32		no = s->nlb > 0 ? s->lb_no[0] : s->next_no;
		int			a = 0;

		while (a < s->n)
		{
			int32		ver = s->lb[a] >= 0 ? s->lb_ver[s->lb[a]] : s->open_ver;
			char	   *mv = s->lb[a] >= 0 ? s->lb_mv[s->lb[a]] : s->open_mv;
			int			e = a;
			int			pos;

			while (e < s->n &&
				   (s->lb[e] >= 0 ? s->lb_ver[s->lb[e]] : s->open_ver) == ver)
				e++;
			for (pos = a; pos < e; pos += s->bs)
			{
				int			len = Min(s->bs, e - pos);

				if (len < s->bs && e == s->n)
					break;		/* the open batch */
				s->g_start[s->ng] = pos;
				s->g_len[s->ng] = len;
				s->g_no[s->ng] = no++;
				s->g_ver[s->ng] = ver;
				s->g_mv[s->ng] = mv;
				s->g_partial[s->ng] = len < s->bs;
				s->ng++;
			}
			a = e;
		}
	}

	/* round keys, non-decreasing along the stream */
	for (j = 0; j < s->ng; j++)
	{
		int			last = s->g_start[j] + s->g_len[j] - 1;
		int			k = s->lb[last];
		TimestampTz close = k >= 0 ? s->lb_close[k] : s->T[last];
		int64		key;

		if (nrounds > 0)
		{
			if (k >= 0 && s->lb_round[k] != 0 && s->lb_start[k] == s->g_start[j] &&
				s->lb_len[k] == s->g_len[j])
				key = s->lb_round[k];
			else
			{
				int			ri = FirstRoundAtOrAfter(rounds, nrounds, close);

				key = ri < nrounds ? rounds[ri] : KEY_NEVER;
			}
		}
		else
		{
			/* the end of the fixed window holding the close time */
			int64		w = close / window;

			if (close < 0 && close % window != 0)
				w--;
			key = (w + 1) * window;
		}
		if (j > 0 && key < s->g_key[j - 1])
			key = s->g_key[j - 1];
		s->g_key[j] = key;
	}
}

static int
Position(int64 seq, int season)
{
	int64		p = seq % season;

	return (int) (p < 0 ? p + season : p);
}

/*
 * Prepare
 *		The role of replayed batch j, applying what its close does: a new
 *		model version resets the state, a warming version gets its
 *		reference.  *new_version tells that j started a version.
 */
static int
Prepare(ReplayStream *s, int j, bool *new_version)
{
	int			start = s->g_start[j];
	int			end = start + s->g_len[j];

	*new_version = false;
	if (s->g_ver[j] != s->cur_ver)
	{
		*new_version = true;
		s->cur_ver = s->g_ver[j];
		s->has_ref = false;
		s->streak = 0;
		s->warm_start = start;
	}
	if (s->g_partial[j])
		return ROLE_PARTIAL;
	if (s->benchmark)
		return ROLE_TEST;
	if (!s->has_ref)
	{
		if (end - s->warm_start >= s->rs)
		{
			memcpy(s->ref, s->L + s->warm_start, sizeof(double) * s->rs);
			memcpy(s->refq, s->Q + s->warm_start, sizeof(int64) * s->rs);
			s->nref = s->rs;
			s->has_ref = true;
			s->ref_end = s->warm_start + s->rs;
			s->streak = 0;
		}
		return ROLE_REFERENCE;
	}
	return start >= s->ref_end ? ROLE_TEST : ROLE_REFERENCE;
}

static double
Mean(const double *x, int n)
{
	double		t = 0.0;
	int			i;

	for (i = 0; i < n; i++)
		t += x[i];
	return n > 0 ? t / n : 0.0;
}

/*
 * Evaluate
 *		Tests batch j against the stream's reference (or its own benchmark
 *		losses) with check.c's like-for-like sample.  false: not testable.
 */
static bool
Evaluate(ReplayStream *s, int j, ReplayEval *out)
{
	int			start = s->g_start[j];
	int			ncur = s->g_len[j];
	const double *cur = s->L + start;
	int64		first_seq = s->Q[start];
	const double *ref = s->ref;
	const int64 *refq = s->refq;
	int			nref = s->nref;
	double	   *sample;
	int			nsample;
	MlmaTestResult res;
	int			rc;
	int			i;
	double		rm;
	double		cm;

	if (s->benchmark)
	{
		double	   *bl = palloc(sizeof(double) * ncur);
		double	   *cl = palloc(sizeof(double) * ncur);
		int64	   *bq = palloc(sizeof(int64) * ncur);

		nref = 0;
		if (s->B)
			for (i = 0; i < ncur; i++)
				if (!isnan(s->B[start + i]))
				{
					bl[nref] = s->B[start + i];
					cl[nref] = cur[i];
					bq[nref] = s->Q[start + i];
					nref++;
				}
		if (nref < 2)
			return false;
		ref = bl;
		refq = bq;
		cur = cl;
		ncur = nref;
	}
	if (nref < 2 || ncur < 2)
		return false;

	if (s->season == 0)
	{
		if (s->method == MLMA_METHOD_DM && nref != ncur)
			return false;
		sample = (double *) ref;
		nsample = nref;
	}
	else if (s->method == MLMA_METHOD_DM)
	{
		double	   *sum = palloc0(sizeof(double) * s->season);
		int		   *cnt = palloc0(sizeof(int) * s->season);
		double		all = Mean(ref, nref);

		for (i = 0; i < nref; i++)
		{
			int			p = Position(refq[i], s->season);

			sum[p] += ref[i];
			cnt[p]++;
		}
		sample = palloc(sizeof(double) * ncur);
		nsample = ncur;
		for (i = 0; i < ncur; i++)
		{
			int			p = Position(s->benchmark ? refq[i] : first_seq + i, s->season);

			sample[i] = cnt[p] > 0 ? sum[p] / cnt[p] : all;
		}
		pfree(sum);
		pfree(cnt);
	}
	else
	{
		bool	   *used = palloc0(sizeof(bool) * s->season);

		for (i = 0; i < ncur; i++)
			used[Position(s->benchmark ? refq[i] : first_seq + i, s->season)] = true;
		sample = palloc(sizeof(double) * nref);
		nsample = 0;
		for (i = 0; i < nref; i++)
			if (used[Position(refq[i], s->season)])
				sample[nsample++] = ref[i];
		if (nsample < 2)
		{
			sample = (double *) ref;
			nsample = nref;
		}
		pfree(used);
	}

	rc = mlma_run_test(s->method, sample, nsample, cur, ncur,
					   MLMA_ALT_GREATER, -1, &res);
	if (rc != MLMA_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("replay: the test failed on batch %d of stream %lld (code %d)",
						s->g_no[j], (long long) s->stream_id, rc),
				 errdetail("The losses must be finite; reference has %d, current has %d.",
						   nsample, ncur)));
	rm = Mean(sample, nsample);
	cm = Mean(cur, ncur);
	out->statistic = res.statistic;
	out->p_value = res.p_value;
	if (rm > 0)
		out->effect = cm / rm;
	else
		out->effect = cm > 0 ? get_float8_infinity() : 1.0;
	if (sample != ref)
		pfree(sample);
	return true;
}

/*
 * Roll
 *		Rolling reference after passing batch j (mlma._rolled_reference):
 *		the most recent reference_size losses; with season_length each
 *		position keeps as many values as it had, at least one.
 */
static void
Roll(ReplayStream *s, int j)
{
	int			start = s->g_start[j];
	int			len = s->g_len[j];
	int			total = s->nref + len;
	int			keep = 0;
	int			i;
	double	   *nl = palloc(sizeof(double) * total);
	int64	   *nq = palloc(sizeof(int64) * total);

	if (s->season == 0)
	{
		int			from = Max(0, total - s->rs);

		for (i = from; i < total; i++)
		{
			nl[keep] = i < s->nref ? s->ref[i] : s->L[start + i - s->nref];
			nq[keep] = i < s->nref ? s->refq[i] : s->Q[start + i - s->nref];
			keep++;
		}
	}
	else
	{
		int		   *quota = palloc0(sizeof(int) * s->season);
		int		   *kept = palloc0(sizeof(int) * s->season);
		bool	   *take = palloc0(sizeof(bool) * total);

		for (i = 0; i < s->nref; i++)
			quota[Position(s->refq[i], s->season)]++;
		for (i = total - 1; i >= 0; i--)
		{
			int64		q = i < s->nref ? s->refq[i] : s->Q[start + i - s->nref];
			int			p = Position(q, s->season);

			if (kept[p] < Max(1, quota[p]))
			{
				kept[p]++;
				take[i] = true;
			}
		}
		for (i = 0; i < total; i++)
			if (take[i])
			{
				nl[keep] = i < s->nref ? s->ref[i] : s->L[start + i - s->nref];
				nq[keep] = i < s->nref ? s->refq[i] : s->Q[start + i - s->nref];
				keep++;
			}
		pfree(quota);
		pfree(kept);
		pfree(take);
	}
	if (keep > s->rs + s->bs + s->season + 2)
		elog(ERROR, "mlma: replay reference overflow");
	memcpy(s->ref, nl, sizeof(double) * keep);
	memcpy(s->refq, nq, sizeof(int64) * keep);
	s->nref = keep;
	pfree(nl);
	pfree(nq);
}

/* Applies the decision on batch j: a flag retrains at once, a pass rolls. */
static void
Apply(ReplayStream *s, int j, bool significant, bool drift)
{
	s->checks++;
	if (drift)
	{
		s->flag_nos[s->flags++] = s->g_no[j];
		s->has_ref = false;
		s->warm_start = s->g_start[j] + s->g_len[j];
		s->streak = 0;
	}
	else if (!significant && s->rolling && !s->benchmark)
		Roll(s, j);
}

static void
InitState(ReplayStream *s)
{
	s->next = 0;
	s->cur_ver = -1;
	s->has_ref = false;
	s->warm_start = -1;
	s->streak = 0;
	s->ref = palloc(sizeof(double) * (s->rs + s->bs + s->season + 2));
	s->refq = palloc(sizeof(int64) * (s->rs + s->bs + s->season + 2));
	s->nref = 0;
	s->checks = 0;
	s->flags = 0;
	s->flag_nos = palloc(sizeof(int32) * Max(s->ng, 1));
}

static MlmaMethod
ParseMethod(text *t)
{
	char	   *name = text_to_cstring(t);
	MlmaMethod	m = mlma_method_kind(name);

	if (m == MLMA_METHOD_INVALID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown method: %s", name)));
	return m;
}

/*
 * mlma_replay
 *		_replay(stream_id, method, alpha, batch_size, reference_size,
 *		season_length, reference_policy, min_effect, consecutive,
 *		own_grid) -> one row per tested batch, each decided at alpha.
 */
Datum
mlma_replay(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = CurrentMemoryContext;
	ReplayStream s;
	char	   *policy;
	const char *schema;
	bool		has_bench;
	int			j;

	memset(&s, 0, sizeof(s));
	s.stream_id = PG_GETARG_INT64(0);
	s.method = ParseMethod(PG_GETARG_TEXT_PP(1));
	s.alpha = PG_GETARG_FLOAT8(2);
	s.bs = PG_GETARG_INT32(3);
	s.rs = PG_GETARG_INT32(4);
	s.season = PG_ARGISNULL(5) ? 0 : PG_GETARG_INT32(5);
	policy = text_to_cstring(PG_GETARG_TEXT_PP(6));
	s.rolling = strcmp(policy, "rolling") == 0;
	s.benchmark = strcmp(policy, "benchmark") == 0;
	s.min_effect = PG_GETARG_FLOAT8(7);
	s.consecutive = PG_GETARG_INT32(8);

	InitMaterializedSRF(fcinfo, 0);
	schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "mlma: SPI_connect failed");
	has_bench = HasBenchmarkColumn(schema);
	LoadStream(&s, schema, has_bench, cxt);
	SPI_finish();

	BuildGrid(&s, PG_GETARG_BOOL(9), NULL, 0, USECS_PER_SEC);
	InitState(&s);
	for (j = 0; j < s.ng; j++)
	{
		bool		nv;
		ReplayEval	e;
		bool		sig;
		bool		drift;
		Datum		values[11];
		bool		nulls[11] = {false};

		if (Prepare(&s, j, &nv) != ROLE_TEST || !Evaluate(&s, j, &e))
			continue;
		Decide(e.p_value, s.alpha, e.effect, s.min_effect, s.streak,
			   s.consecutive, &sig, &s.streak, &drift);
		values[0] = CStringGetTextDatum(s.g_mv[j]);
		values[1] = Int32GetDatum(s.g_no[j]);
		values[2] = TimestampTzGetDatum(s.T[s.g_start[j]]);
		values[3] = TimestampTzGetDatum(s.T[s.g_start[j] + s.g_len[j] - 1]);
		values[4] = Int32GetDatum(s.g_len[j]);
		values[5] = Float8GetDatum(e.statistic);
		values[6] = Float8GetDatum(e.p_value);
		values[7] = Float8GetDatum(e.effect);
		values[8] = BoolGetDatum(sig);
		values[9] = BoolGetDatum(drift);
		values[10] = BoolGetDatum(drift);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		Apply(&s, j, sig, drift);
	}
	return (Datum) 0;
}

/* one test of a round */
typedef struct RoundTest
{
	int			stream;
	int			batch;
	ReplayEval	e;
	double		p_adjusted;
} RoundTest;

static int
CompareTs(const void *a, const void *b)
{
	TimestampTz x = *(const TimestampTz *) a;
	TimestampTz y = *(const TimestampTz *) b;

	return x < y ? -1 : (x > y ? 1 : 0);
}

static Datum *
DeconstructArg(ArrayType *a, Oid type, int *n, bool **nulls)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;

	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	deconstruct_array(a, type, typlen, typbyval, typalign, &elems, nulls, n);
	return elems;
}

/*
 * mlma_replay_fleet
 *		_replay_fleet(stream_ids int8[], methods text[], alphas float8[],
 *		batch_sizes int4[], reference_sizes int4[], season_lengths int4[],
 *		policies text[], min_effects float8[], consecutives int4[],
 *		scheduled bool[], own_grid bool[], fdr float8, round_interval
 *		interval) -> (stream_id, checks, flags, first_at, last_at,
 *		flag_batches int4[]) per stream.
 */
Datum
mlma_replay_fleet(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext cxt = CurrentMemoryContext;
	Datum	   *a[11];
	bool	   *an[11];
	Oid			at[11] = {INT8OID, TEXTOID, FLOAT8OID, INT4OID, INT4OID, INT4OID,
	TEXTOID, FLOAT8OID, INT4OID, BOOLOID, BOOLOID};
	int			ns = 0;
	int			i;
	double		fdr = PG_GETARG_FLOAT8(11);
	Interval   *iv = PG_GETARG_INTERVAL_P(12);
	int64		window;
	ReplayStream *st;
	const char *schema;
	bool		has_bench;
	TimestampTz *rounds;
	int			nrounds = 0;
	int			rcap = 64;
	RoundTest  *tests;
	int			tcap = 64;
	double	   *pv;

	for (i = 0; i < 11; i++)
	{
		int			n;

		a[i] = DeconstructArg(PG_GETARG_ARRAYTYPE_P(i), at[i], &n, &an[i]);
		if (i == 0)
			ns = n;
		else if (n != ns)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("replay_fleet arrays differ in length")));
	}
	window = iv->time + (int64) iv->day * USECS_PER_DAY +
		(int64) iv->month * DAYS_PER_MONTH * USECS_PER_DAY;
	if (window <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("round_interval must be positive")));

	InitMaterializedSRF(fcinfo, 0);
	st = palloc0(sizeof(ReplayStream) * Max(ns, 1));
	for (i = 0; i < ns; i++)
	{
		char	   *policy = TextDatumGetCString(a[6][i]);

		st[i].stream_id = DatumGetInt64(a[0][i]);
		st[i].method = ParseMethod(DatumGetTextPP(a[1][i]));
		st[i].alpha = DatumGetFloat8(a[2][i]);
		st[i].bs = DatumGetInt32(a[3][i]);
		st[i].rs = DatumGetInt32(a[4][i]);
		st[i].season = an[5][i] ? 0 : DatumGetInt32(a[5][i]);
		st[i].rolling = strcmp(policy, "rolling") == 0;
		st[i].benchmark = strcmp(policy, "benchmark") == 0;
		st[i].min_effect = DatumGetFloat8(a[7][i]);
		st[i].consecutive = DatumGetInt32(a[8][i]);
		st[i].scheduled = DatumGetBool(a[9][i]);
	}

	schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "mlma: SPI_connect failed");
	has_bench = HasBenchmarkColumn(schema);
	for (i = 0; i < ns; i++)
		LoadStream(&st[i], schema, has_bench, cxt);
	SPI_finish();

	/* the recorded rounds of the selected streams */
	rounds = palloc(sizeof(TimestampTz) * rcap);
	for (i = 0; i < ns; i++)
	{
		int			k;

		for (k = 0; k < st[i].nlb; k++)
			if (st[i].lb_round[k] != 0)
			{
				if (nrounds == rcap)
				{
					rcap *= 2;
					rounds = repalloc(rounds, sizeof(TimestampTz) * rcap);
				}
				rounds[nrounds++] = st[i].lb_round[k];
			}
	}
	if (nrounds > 0)
	{
		int			k = 0;

		qsort(rounds, nrounds, sizeof(TimestampTz), CompareTs);
		for (i = 0; i < nrounds; i++)
			if (k == 0 || rounds[k - 1] != rounds[i])
				rounds[k++] = rounds[i];
		nrounds = k;
	}

	for (i = 0; i < ns; i++)
	{
		ReplayStream *s = &st[i];
		int			j;

		BuildGrid(s, DatumGetBool(a[10][i]), rounds, nrounds, window);
		InitState(s);
		if (s->scheduled)
			continue;
		/* eager: each batch decided at alpha when it closes */
		for (j = 0; j < s->ng; j++)
		{
			bool		nv;
			ReplayEval	e;
			bool		sig;
			bool		drift;

			if (Prepare(s, j, &nv) != ROLE_TEST || !Evaluate(s, j, &e))
				continue;
			Decide(e.p_value, s->alpha, e.effect, s->min_effect, s->streak,
				   s->consecutive, &sig, &s->streak, &drift);
			Apply(s, j, sig, drift);
		}
	}

	/* scheduled streams: round by round */
	tests = palloc(sizeof(RoundTest) * tcap);
	pv = palloc(sizeof(double) * tcap);
	for (;;)
	{
		int64		K = KEY_NEVER;
		int			nt = 0;
		int			t;

		for (i = 0; i < ns; i++)
			if (st[i].scheduled && st[i].next < st[i].ng &&
				st[i].g_key[st[i].next] < K)
				K = st[i].g_key[st[i].next];
		if (K == KEY_NEVER)
			break;				/* the rest closed after the last round */

		/* 1. close the batches of the round; evaluate the tests */
		for (i = 0; i < ns; i++)
		{
			ReplayStream *s = &st[i];
			int			first = nt;

			if (!s->scheduled)
				continue;
			while (s->next < s->ng && s->g_key[s->next] <= K)
			{
				int			j = s->next++;
				bool		nv;
				int			role = Prepare(s, j, &nv);
				ReplayEval	e;

				if (nv)
					nt = first; /* old version's tests: skipped */
				if (role != ROLE_TEST || !Evaluate(s, j, &e))
					continue;
				if (nt == tcap)
				{
					tcap *= 2;
					tests = repalloc(tests, sizeof(RoundTest) * tcap);
					pv = repalloc(pv, sizeof(double) * tcap);
				}
				tests[nt].stream = i;
				tests[nt].batch = j;
				tests[nt].e = e;
				nt++;
			}
		}
		if (nt == 0)
			continue;

		/* 2. Benjamini-Hochberg over the round */
		for (t = 0; t < nt; t++)
			pv[t] = tests[t].e.p_value;
		if (mlma_bh_adjust(pv, nt, pv) != MLMA_OK)
			elog(ERROR, "mlma: Benjamini-Hochberg adjustment failed");
		for (t = 0; t < nt; t++)
			tests[t].p_adjusted = pv[t];

		/* 3. decide per stream in batch order */
		for (t = 0; t < nt; t++)
		{
			ReplayStream *s = &st[tests[t].stream];
			int			j = tests[t].batch;
			bool		sig;
			bool		drift;

			Decide(tests[t].p_adjusted, fdr, tests[t].e.effect, s->min_effect,
				   s->streak, s->consecutive, &sig, &s->streak, &drift);
			Apply(s, j, sig, drift);
			if (drift)
			{
				/* retrained at once: the later batches go to the next round */
				s->next = j + 1;
				while (t + 1 < nt && tests[t + 1].stream == tests[t].stream)
					t++;
			}
		}
	}

	for (i = 0; i < ns; i++)
	{
		ReplayStream *s = &st[i];
		Datum		values[6];
		bool		nulls[6] = {false};
		Datum	   *fl = palloc(sizeof(Datum) * Max(s->flags, 1));
		int			k;

		for (k = 0; k < s->flags; k++)
			fl[k] = Int32GetDatum(s->flag_nos[k]);
		values[0] = Int64GetDatum(s->stream_id);
		values[1] = Int64GetDatum(s->checks);
		values[2] = Int64GetDatum(s->flags);
		if (s->n > 0)
		{
			values[3] = TimestampTzGetDatum(s->T[0]);
			values[4] = TimestampTzGetDatum(s->T[s->n - 1]);
		}
		else
			nulls[3] = nulls[4] = true;
		values[5] = PointerGetDatum(construct_array(fl, s->flags, INT4OID, 4,
													true, TYPALIGN_INT));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
