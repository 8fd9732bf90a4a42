/*-------------------------------------------------------------------------
 *
 * ingest_direct.c
 *	  The row path without SQL: taking a stream (the row lock on its
 *	  mlma.stream_state row, then where its open batch stands) and inserting
 *	  one observation, a run of one, into mlma.open_runs through the table and index
 *	  access methods; and reading mlma's tables by primary key the same way
 *	  (the key reader of run_checks(), fleet.c).
 *
 * A single-row INSERT into an attached table, or one observe() call, is a
 * transaction of its own in the common case, so it takes its stream every
 * time; done with saved SQL statements, executor start-up of those
 * statements is most of mlma's cost per row.  This file does the same work
 * as the READ COMMITTED statement of ingest.c (read_plan) with the access
 * methods directly:
 *
 *	1. find the visible version of the stream's state row through its
 *	   primary key with a new snapshot, and lock it FOR NO KEY UPDATE as
 *	   SELECT ... FOR NO KEY UPDATE does under READ COMMITTED: wait for the
 *	   stream's current writer, follow the update chain to the latest
 *	   version, and find the stream gone when that version is deleted;
 *	2. with a snapshot taken after the lock is held (it sees the commits of
 *	   every earlier holder), read where the open batch's last run ends,
 *	   backwards on the primary key of mlma.open_runs, bounded below by the
 *	   open batch's first seq, or by the seq this backend last wrote when a
 *	   run starts at or after it (fewer index entries to read);
 *	3. insert the observation into the heap and every index (the unique
 *	   primary key checks it as an INSERT would).
 *
 * Since step 2 runs under the lock with a snapshot that sees every earlier
 * writer, the seq it computes is always free: the re-read of read_plan
 * (ON CONFLICT DO NOTHING, then max_plan) is not needed.  REPEATABLE READ and
 * SERIALIZABLE keep the SQL statement (touch_plan: the update of the state
 * row that makes concurrent writers fail, predicate locks).
 *
 * Closing a batch takes its observations out the same way
 * (mlma._take_open_batch, called by mlma._close_batch): one index scan from
 * the open batch's first seq, each row deleted and collected in seq order.
 *
 * Every table and index is opened with the lock the SQL statement would
 * take, held to the end of the transaction as the executor holds it.
 *
 * The direct path is used only when both tables are what mlma created:
 * plain local tables without triggers, rules, row security, check
 * constraints or generated columns, with the column types and the btree
 * primary keys it scans, and
 * the session's user allowed what the SQL statements would do; with Citus
 * in the database (its catalog pg_dist_partition exists) the statements
 * stay, so that they are routed.  Otherwise the caller uses SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/execnodes.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "mlma.h"

PG_FUNCTION_INFO_V1(mlma_take_open_batch);

/* columns of mlma.open_runs the row path writes */
typedef struct RunColumns
{
	AttrNumber	stream_id;
	AttrNumber	seq;
	AttrNumber	times;
	AttrNumber	losses;
	AttrNumber	benchmark_losses;
} RunColumns;

/*
 * AttnumOf
 *		The attribute number of the live column name of type typid, or
 *		InvalidAttrNumber.
 */
static AttrNumber
AttnumOf(TupleDesc desc, const char *name, Oid typid)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->atttypid == typid ? att->attnum : InvalidAttrNumber;
	}
	return InvalidAttrNumber;
}

/*
 * LocalTable
 *		Whether rel is an ordinary local table without row security on
 *		which the session's user holds every privilege of mode: the direct
 *		path may read it as a SELECT would.
 */
static bool
LocalTable(Relation rel, AclMode mode)
{
	return rel->rd_rel->relkind == RELKIND_RELATION &&
		!rel->rd_rel->relispartition &&
		!rel->rd_rel->relrowsecurity &&
		pg_class_aclmask(RelationGetRelid(rel), GetUserId(), mode, ACLMASK_ALL) == mode;
}

/*
 * WritableTable
 *		A LocalTable with nothing that a SQL write would run besides its
 *		indexes and constraints: no rules, triggers or generated columns.
 */
static bool
WritableTable(Relation rel, AclMode mode)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	return LocalTable(rel, mode) &&
		!rel->rd_rel->relhasrules &&
		rel->trigdesc == NULL &&
		(constr == NULL || !constr->has_generated_stored);
}

/*
 * PlainTable
 *		Whether rel is a table the direct path may write as mlma created
 *		it without checking constraints: a WritableTable with no CHECK
 *		constraint (NOT NULL ones hold by construction).
 */
static bool
PlainTable(Relation rel, AclMode mode)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	return WritableTable(rel, mode) && (constr == NULL || constr->num_check == 0);
}

/*
 * KeyBegins
 *		Whether the index's first key columns are the table's columns
 *		first (and second, when given), so that scan keys 1 and 2 mean them.
 */
static bool
KeyBegins(Relation index, AttrNumber first, AttrNumber second)
{
	int2vector *key = &index->rd_index->indkey;
	int			nkeys = index->rd_index->indnkeyatts;

	if (index->rd_rel->relam != BTREE_AM_OID ||
		first == InvalidAttrNumber || nkeys < 1 || key->values[0] != first)
		return false;
	if (second == InvalidAttrNumber)
		return true;
	return nkeys >= 2 && key->values[1] == second;
}

/*
 * OpenTable
 *		Open mlma.<name> with lockmode, or NULL when it is not there.
 */
static Relation
OpenTable(const char *name, LOCKMODE lockmode)
{
	Oid			nsp = get_namespace_oid("mlma", true);
	Oid			relid;

	if (!OidIsValid(nsp))
		return NULL;
	relid = get_relname_relid(name, nsp);
	if (!OidIsValid(relid))
		return NULL;
	return table_open(relid, lockmode);
}

/*
 * OpenPrimaryKey
 *		The primary key index of rel, opened with lockmode, or NULL.
 */
static Relation
OpenPrimaryKey(Relation rel, LOCKMODE lockmode)
{
	Oid			pk;

	(void) RelationGetIndexList(rel);	/* fills rd_pkindex */
	pk = rel->rd_pkindex;
	if (!OidIsValid(pk))
		return NULL;
	return index_open(pk, lockmode);
}

/*
 * OpenKeyed
 *		mlma.<table> opened with lockmode, and its primary key (in *pk,
 *		AccessShareLock), when the direct path may be used, usable(rel,
 *		mode) holds (LocalTable, WritableTable or PlainTable) and the key
 *		begins with stream_id bigint, then with the int4 column second when
 *		it is given; else NULL, with nothing left open: the caller uses SQL.
 */
static Relation
OpenKeyed(const char *table, LOCKMODE lockmode,
		  bool (*usable) (Relation rel, AclMode mode), AclMode mode,
		  const char *second, Relation *pk)
{
	Relation	rel;
	TupleDesc	desc;
	AttrNumber	k2 = InvalidAttrNumber;

	*pk = NULL;
	if (!mlma_direct_usable())
		return NULL;
	rel = OpenTable(table, lockmode);
	if (rel == NULL)
		return NULL;
	desc = RelationGetDescr(rel);
	if (second != NULL)
		k2 = AttnumOf(desc, second, INT4OID);
	if ((second == NULL || k2 != InvalidAttrNumber) && usable(rel, mode))
		*pk = OpenPrimaryKey(rel, AccessShareLock);
	if (*pk != NULL && KeyBegins(*pk, AttnumOf(desc, "stream_id", INT8OID), k2))
		return rel;
	if (*pk != NULL)
		index_close(*pk, NoLock);
	*pk = NULL;
	table_close(rel, NoLock);
	return NULL;
}

/*
 * mlma_direct_usable
 *		Whether this transaction's observations may take the direct path:
 *		READ COMMITTED, no Citus.
 */
bool
mlma_direct_usable(void)
{
	return !IsolationUsesXactSnapshot() &&
		!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE));
}

/*
 * RunsWritable
 *		Whether the direct path can write runs of observations to rel
 *		(mlma.open_runs, opened by the caller): a plain table with no other
 *		column than the five written, except dropped ones.  Fills *cols.
 */
static bool
RunsWritable(Relation rel, RunColumns *cols, AclMode mode)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			live = 0;
	int			i;

	if (!PlainTable(rel, mode))
		return false;
	cols->stream_id = AttnumOf(desc, "stream_id", INT8OID);
	cols->seq = AttnumOf(desc, "seq", INT8OID);
	cols->times = AttnumOf(desc, "times", TIMESTAMPTZARRAYOID);
	cols->losses = AttnumOf(desc, "losses", FLOAT8ARRAYOID);
	cols->benchmark_losses = AttnumOf(desc, "benchmark_losses", FLOAT8ARRAYOID);
	for (i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			live++;
	return live == 5 &&
		cols->stream_id != InvalidAttrNumber && cols->seq != InvalidAttrNumber &&
		cols->times != InvalidAttrNumber && cols->losses != InvalidAttrNumber &&
		cols->benchmark_losses != InvalidAttrNumber;
}

/*
 * mlma_run_arrays
 *		The array columns of a run of n observations of mlma.open_runs:
 *		out[0] times, out[1] losses, out[2] benchmark losses ((Datum) 0,
 *		meaning NULL, when has_bench is NULL or none of them has one).
 */
void
mlma_run_arrays(int n, const TimestampTz *at, const double *losses,
				const double *bench, const bool *has_bench, Datum *out)
{
	int			nbench = 0;
	int			i;

	out[0] = mlma_packed_array(at, n, TIMESTAMPTZOID, sizeof(TimestampTz));
	out[1] = mlma_packed_array(losses, n, FLOAT8OID, sizeof(float8));
	for (i = 0; has_bench != NULL && i < n; i++)
		if (has_bench[i])
			nbench++;
	out[2] = (Datum) 0;
	if (nbench > 0)
		out[2] = mlma_float8_array_with_nulls(bench, has_bench, n);
}

/*
 * FillRun
 *		Store one row of mlma.open_runs (arrays: see mlma_run_arrays) in a
 *		virtual slot of its descriptor.
 */
static void
FillRun(TupleTableSlot *slot, const RunColumns *cols, int64 stream_id,
		int64 seq, const Datum *arrays)
{
	int			i;

	ExecClearTuple(slot);
	for (i = 0; i < slot->tts_tupleDescriptor->natts; i++)
		slot->tts_isnull[i] = true;
	slot->tts_values[cols->stream_id - 1] = Int64GetDatum(stream_id);
	slot->tts_isnull[cols->stream_id - 1] = false;
	slot->tts_values[cols->seq - 1] = Int64GetDatum(seq);
	slot->tts_isnull[cols->seq - 1] = false;
	slot->tts_values[cols->times - 1] = arrays[0];
	slot->tts_isnull[cols->times - 1] = false;
	slot->tts_values[cols->losses - 1] = arrays[1];
	slot->tts_isnull[cols->losses - 1] = false;
	if (arrays[2] != (Datum) 0)
	{
		slot->tts_values[cols->benchmark_losses - 1] = arrays[2];
		slot->tts_isnull[cols->benchmark_losses - 1] = false;
	}
	ExecStoreVirtualTuple(slot);
}

/*
 * InsertObservation
 *		Insert one observation, a run of one, into mlma.open_runs (rel,
 *		opened with RowExclusiveLock) and into each of its indexes, as an
 *		INSERT statement would; a duplicate (stream_id, seq) fails on the
 *		unique primary key.  pk: that key, open, when the caller has it:
 *		when it is the table's only index (as mlma creates it), the entry
 *		goes straight into it.
 */
static void
InsertObservation(Relation rel, Relation pk, const RunColumns *cols,
				  int64 stream_id, int64 seq, TimestampTz observed_at,
				  double loss, const double *bench)
{
	TupleTableSlot *slot;
	Datum		arrays[3];
	bool		has_bench = bench != NULL;
	List	   *indexes = RelationGetIndexList(rel);
	bool		only_pk = pk != NULL && list_length(indexes) == 1 &&
		linitial_oid(indexes) == RelationGetRelid(pk) &&
		pk->rd_index->indnatts == 2;

	list_free(indexes);
	mlma_run_arrays(1, &observed_at, &loss, bench, &has_bench, arrays);
	if (only_pk)
	{
		/* the key is (stream_id, seq): KeyBegins was checked by the caller */
		Datum		key[2] = {Int64GetDatum(stream_id), Int64GetDatum(seq)};
		bool		key_null[2] = {false, false};

		slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
		FillRun(slot, cols, stream_id, seq, arrays);
		table_tuple_insert(rel, slot, GetCurrentCommandId(true), 0, NULL);
		(void) index_insert(pk, key, key_null, &slot->tts_tid, rel, UNIQUE_CHECK_YES,
							false, BuildIndexInfo(pk));
		ExecDropSingleTupleTableSlot(slot);
	}
	else
	{
		EState	   *estate = CreateExecutorState();
		ResultRelInfo *rri = makeNode(ResultRelInfo);
		List	   *recheck;

		InitResultRelInfo(rri, rel, 1, NULL, 0);
		ExecOpenIndices(rri, false);
		slot = ExecInitExtraTupleSlot(estate, RelationGetDescr(rel), &TTSOpsVirtual);
		FillRun(slot, cols, stream_id, seq, arrays);
		table_tuple_insert(rel, slot, GetCurrentCommandId(true), 0, NULL);
		recheck = ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL);
		list_free(recheck);
		ExecCloseIndices(rri);
		ExecResetTupleTable(estate->es_tupleTable, false);
		FreeExecutorState(estate);
	}
}

/* the number of elements of an array datum */
static int
ArrayLength(Datum d)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	int			n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));

	if ((Pointer) a != DatumGetPointer(d))
		pfree(a);
	return n;
}

/*
 * LockStateRow
 *		Find the stream's state row with a new snapshot and lock its latest
 *		version FOR NO KEY UPDATE, waiting for its current holder (wait
 *		LockWaitBlock) or not (LockWaitSkip: false when another transaction
 *		holds it, as SKIP LOCKED); slot gets that version.  False when the
 *		stream has no state row (dropped).
 */
static bool
LockStateRow(Relation rel, Relation pk, int64 stream_id, TupleTableSlot *slot,
			 LockWaitPolicy wait)
{
	Snapshot	snap;
	IndexScanDesc scan;
	ScanKeyData key;
	ItemPointerData tid;
	TM_FailureData tmfd;
	TM_Result	res;
	bool		found;

	snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(stream_id));
	scan = index_beginscan(rel, pk, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
		tid = slot->tts_tid;
	index_endscan(scan);
	if (!found)
	{
		UnregisterSnapshot(snap);
		return false;
	}

	/* SELECT ... FOR NO KEY UPDATE under READ COMMITTED (ExecLockRows) */
	res = table_tuple_lock(rel, &tid, snap, slot, GetCurrentCommandId(true),
						   LockTupleNoKeyExclusive, wait,
						   TUPLE_LOCK_FLAG_LOCK_UPDATE_IN_PROGRESS |
						   TUPLE_LOCK_FLAG_FIND_LAST_VERSION,
						   &tmfd);
	UnregisterSnapshot(snap);
	switch (res)
	{
		case TM_Ok:
			return true;
		case TM_Deleted:
			/* the stream was dropped while we waited */
			return false;
		case TM_WouldBlock:
			/* LockWaitSkip: another transaction holds it */
			return false;
		default:
			/* updated by this command, or invisible: cannot happen here */
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("unexpected result %d locking the state row of stream %lld",
							(int) res, (long long) stream_id)));
	}
	return false;
}

/*
 * BeginOpenBatchScan
 *		An index scan of the stream's runs with seq >= from, on the primary
 *		key of mlma.open_runs.
 */
static IndexScanDesc
BeginOpenBatchScan(Relation rel, Relation pk, Snapshot snap, int64 stream_id,
				   int64 from)
{
	IndexScanDesc scan;
	ScanKeyData keys[2];

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(stream_id));
	ScanKeyInit(&keys[1], 2, BTGreaterEqualStrategyNumber, F_INT8GE,
				Int64GetDatum(from));
	scan = index_beginscan(rel, pk, snap, 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	return scan;
}

/*
 * EndFrom
 *		One past the last seq of the stream's last run starting at or after
 *		from, visible to snap: the first entry of a backward scan of the
 *		primary key.  False when there is none.
 */
static bool
EndFrom(Relation rel, Relation pk, const RunColumns *cols,
		Snapshot snap, TupleTableSlot *slot, int64 stream_id, int64 from,
		int64 *end)
{
	IndexScanDesc scan = BeginOpenBatchScan(rel, pk, snap, stream_id, from);
	bool		found;
	bool		isnull = true;
	bool		lnull = true;

	found = index_getnext_slot(scan, BackwardScanDirection, slot);
	if (found)
	{
		Datum		losses = slot_getattr(slot, cols->losses, &lnull);

		*end = DatumGetInt64(slot_getattr(slot, cols->seq, &isnull));
		if (!lnull)
			*end += ArrayLength(losses);
	}
	index_endscan(scan);
	return found && !isnull && !lnull;
}

/*
 * NextSeq
 *		The seq of the stream's next observation: the end of its last run
 *		at or after open_start_seq, read with a new snapshot, or
 *		open_start_seq when the open batch is empty.  hint (0: none) is a
 *		seq this backend saw the stream reach: when a run starts at or
 *		after hint - 1, the last one ends where the answer is, and the scan
 *		reads only the entries from there instead of the whole open batch.
 */
static int64
NextSeq(Relation rel, Relation pk, const RunColumns *cols,
		int64 stream_id, int64 open_start_seq, int64 hint)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int64		next = open_start_seq;
	int64		end;

	if (hint - 1 > open_start_seq &&
		EndFrom(rel, pk, cols, snap, slot, stream_id, hint - 1, &end))
		next = end;
	else if (EndFrom(rel, pk, cols, snap, slot, stream_id, open_start_seq, &end))
		next = Max(open_start_seq, end);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	return next;
}

/*
 * mlma_direct_take
 *		Take the stream (the first observation of it in this transaction):
 *		lock its state row, read where its open batch stands into *batch,
 *		and when its config_version equals expected_config, insert the
 *		observation (observed_at, loss, *bench or NULL) at batch->next_seq
 *		(not advanced).  seq_hint: a seq the stream reached, as this
 *		backend last saw it (0: unknown), a shortcut for NextSeq.
 *		Returns MLMA_DIRECT_INSERTED, MLMA_DIRECT_TAKEN
 *		(locked, configuration changed, nothing inserted), MLMA_DIRECT_GONE
 *		(no state row: dropped) or MLMA_DIRECT_UNUSABLE (nothing done: the
 *		caller uses SQL).  Only under READ COMMITTED (mlma_direct_usable).
 */
MlmaDirectResult
mlma_direct_take(int64 stream_id, int32 expected_config, int64 seq_hint,
				 MlmaOpenBatch *batch, TimestampTz observed_at, double loss,
				 const double *bench)
{
	Relation	state;
	Relation	state_pk;
	Relation	obs;
	Relation	obs_pk;
	TupleTableSlot *slot;
	RunColumns cols;
	AttrNumber	a_config;
	AttrNumber	a_start;
	AttrNumber	a_age;
	bool		isnull;
	MlmaDirectResult result = MLMA_DIRECT_UNUSABLE;

	state = OpenTable("stream_state", RowShareLock);
	if (state == NULL)
		return MLMA_DIRECT_UNUSABLE;
	obs = OpenTable("open_runs", RowExclusiveLock);
	if (obs == NULL)
	{
		table_close(state, NoLock);
		return MLMA_DIRECT_UNUSABLE;
	}
	state_pk = OpenPrimaryKey(state, AccessShareLock);
	/* read and written: locked as an INSERT locks the indexes it writes */
	obs_pk = OpenPrimaryKey(obs, RowExclusiveLock);
	a_config = AttnumOf(RelationGetDescr(state), "config_version", INT4OID);
	a_start = AttnumOf(RelationGetDescr(state), "open_start_seq", INT8OID);
	a_age = AttnumOf(RelationGetDescr(state), "age_flagged", BOOLOID);

	if (state_pk != NULL && obs_pk != NULL &&
		a_config != InvalidAttrNumber && a_start != InvalidAttrNumber &&
		a_age != InvalidAttrNumber &&
		PlainTable(state, ACL_SELECT | ACL_UPDATE) &&
		RunsWritable(obs, &cols, ACL_SELECT | ACL_INSERT) &&
		KeyBegins(state_pk, AttnumOf(RelationGetDescr(state), "stream_id", INT8OID),
				  InvalidAttrNumber) &&
		KeyBegins(obs_pk, cols.stream_id, cols.seq))
	{
		/* see this transaction's earlier work, as a new statement would */
		CommandCounterIncrement();
		slot = table_slot_create(state, NULL);
		if (!LockStateRow(state, state_pk, stream_id, slot, LockWaitBlock))
			result = MLMA_DIRECT_GONE;
		else
		{
			batch->config_version = DatumGetInt32(slot_getattr(slot, a_config, &isnull));
			batch->open_start_seq = DatumGetInt64(slot_getattr(slot, a_start, &isnull));
			batch->age_flagged = DatumGetBool(slot_getattr(slot, a_age, &isnull));
			batch->next_seq = NextSeq(obs, obs_pk, &cols, stream_id,
									  batch->open_start_seq, seq_hint);
			result = MLMA_DIRECT_TAKEN;
			if (batch->config_version == expected_config)
			{
				InsertObservation(obs, obs_pk, &cols, stream_id, batch->next_seq,
								  observed_at, loss, bench);
				result = MLMA_DIRECT_INSERTED;
			}
		}
		ExecDropSingleTupleTableSlot(slot);
	}

	if (obs_pk != NULL)
		index_close(obs_pk, NoLock);
	if (state_pk != NULL)
		index_close(state_pk, NoLock);
	table_close(obs, NoLock);
	table_close(state, NoLock);
	return result;
}

/*
 * mlma_lock_streams
 *		The writer locks (mlma_lock_stream) of the n streams ids, taken in
 *		order through stream_state's primary key until max_locked are held,
 *		waiting for each current holder (LockWaitBlock) or not
 *		(LockWaitSkip, as mlma_try_lock_stream): locked[i] says whether
 *		ids[i]'s is held (false: another transaction holds it, the stream
 *		is gone, or the limit was reached).  Returns how many are held, or
 *		-1 when the direct path cannot be used (none was taken: the caller
 *		uses SQL).
 */
int
mlma_lock_streams(const int64 *ids, int n, int max_locked, LockWaitPolicy wait,
				  bool *locked)
{
	Relation	state;
	Relation	pk;
	TupleTableSlot *slot;
	int			nlocked = 0;
	int			i;

	state = OpenKeyed("stream_state", RowShareLock, PlainTable,
					  ACL_SELECT | ACL_UPDATE, NULL, &pk);
	if (state == NULL)
		return -1;
	CommandCounterIncrement();
	slot = table_slot_create(state, NULL);
	for (i = 0; i < n; i++)
	{
		locked[i] = nlocked < max_locked &&
			LockStateRow(state, pk, ids[i], slot, wait);
		if (locked[i])
			nlocked++;
	}
	ExecDropSingleTupleTableSlot(slot);
	index_close(pk, NoLock);
	table_close(state, NoLock);
	return nlocked;
}

/*
 * mlma_update_state_rows
 *		Set ncols columns of the mlma.stream_state rows of n streams whose
 *		writer locks this transaction holds (ids: int8 datums, ascending,
 *		as the caller's SQL fallback takes them too): row i gets
 *		values[c][i] in column cols[c], of type types[c].  Through the
 *		primary key and the table's access methods, as an UPDATE writes
 *		(a new row version; index entries where it cannot be a HOT update),
 *		one index probe per stream whatever the number of streams.  A
 *		stream without a state row is left out.  False when the direct path
 *		cannot be used: nothing was written, the caller uses SQL.
 */
bool
mlma_update_state_rows(int n, const Datum *ids, int ncols,
					   const char *const *cols, const Oid *types,
					   Datum *const *values)
{
	Relation	rel;
	Relation	pk;
	TupleDesc	desc;
	AttrNumber *atts;
	Datum	   *repl;
	bool	   *repl_null;
	bool	   *do_repl;
	EState	   *estate;
	ResultRelInfo *rri;
	Snapshot	snap;
	CommandId	cid;
	IndexScanDesc scan;
	TupleTableSlot *found;
	TupleTableSlot *upd;
	int			i;
	int			c;

	rel = OpenKeyed("stream_state", RowExclusiveLock, PlainTable,
					ACL_SELECT | ACL_UPDATE, NULL, &pk);
	if (rel == NULL)
		return false;
	desc = RelationGetDescr(rel);
	atts = palloc(sizeof(AttrNumber) * Max(ncols, 1));
	for (c = 0; c < ncols; c++)
		if ((atts[c] = AttnumOf(desc, cols[c], types[c])) == InvalidAttrNumber)
		{
			index_close(pk, NoLock);
			table_close(rel, NoLock);
			pfree(atts);
			return false;
		}

	/* see this transaction's earlier work, as a new statement would */
	CommandCounterIncrement();
	cid = GetCurrentCommandId(true);
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	snap = RegisterSnapshot(GetLatestSnapshot());
	found = table_slot_create(rel, NULL);
	upd = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	repl = palloc0(sizeof(Datum) * desc->natts);
	repl_null = palloc0(sizeof(bool) * desc->natts);
	do_repl = palloc0(sizeof(bool) * desc->natts);
	scan = index_beginscan(rel, pk, snap, 1, 0);
	for (i = 0; i < n; i++)
	{
		ScanKeyData key;
		HeapTuple	oldtup;
		HeapTuple	newtup;
		bool		should_free;
		ItemPointerData tid;
		TM_FailureData tmfd;
		LockTupleMode lockmode;
		bool		update_indexes;
		TM_Result	res;

		/* a stream once: its second version is this command's own */
		if (i > 0 && DatumGetInt64(ids[i]) == DatumGetInt64(ids[i - 1]))
			continue;
		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, ids[i]);
		index_rescan(scan, &key, 1, NULL, 0);
		if (!index_getnext_slot(scan, ForwardScanDirection, found))
			continue;
		tid = found->tts_tid;
		oldtup = ExecFetchSlotHeapTuple(found, false, &should_free);
		for (c = 0; c < ncols; c++)
		{
			repl[atts[c] - 1] = values[c][i];
			do_repl[atts[c] - 1] = true;
		}
		newtup = heap_modify_tuple(oldtup, desc, repl, repl_null, do_repl);
		if (should_free)
			heap_freetuple(oldtup);
		ExecClearTuple(found);
		ExecStoreHeapTuple(newtup, upd, true);
		res = table_tuple_update(rel, &tid, upd, cid, snap, InvalidSnapshot,
								 true, &tmfd, &lockmode, &update_indexes);
		if (res != TM_Ok)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("unexpected result %d updating the state row of stream %lld",
							(int) res, (long long) DatumGetInt64(ids[i]))));
		if (update_indexes)
			list_free(ExecInsertIndexTuples(rri, upd, estate, true, false,
											NULL, NIL));
		ExecClearTuple(upd);
		ResetPerTupleExprContext(estate);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(found);
	ExecDropSingleTupleTableSlot(upd);
	UnregisterSnapshot(snap);
	ExecCloseIndices(rri);
	FreeExecutorState(estate);
	index_close(pk, NoLock);
	table_close(rel, NoLock);
	pfree(atts);
	pfree(repl);
	pfree(repl_null);
	pfree(do_repl);
	CommandCounterIncrement();
	return true;
}

/*
 * mlma_direct_insert
 *		Insert one observation of a stream this transaction has taken, at
 *		seq.  False when nothing was done (the caller uses SQL).
 */
bool
mlma_direct_insert(int64 stream_id, int64 seq, TimestampTz observed_at,
				   double loss, const double *bench)
{
	Relation	obs;
	RunColumns cols;
	bool		done = false;

	if (!mlma_direct_usable())
		return false;
	obs = OpenTable("open_runs", RowExclusiveLock);
	if (obs == NULL)
		return false;
	if (RunsWritable(obs, &cols, ACL_INSERT))
	{
		Relation	pk = OpenPrimaryKey(obs, RowExclusiveLock);

		if (pk != NULL && !KeyBegins(pk, cols.stream_id, cols.seq))
		{
			index_close(pk, NoLock);
			pk = NULL;
		}
		CommandCounterIncrement();
		InsertObservation(obs, pk, &cols, stream_id, seq, observed_at, loss, bench);
		if (pk != NULL)
			index_close(pk, NoLock);
		done = true;
	}
	table_close(obs, NoLock);
	return done;
}

/*
 * A row writer: rows inserted into one of mlma's tables and its indexes
 * through the access methods, up to 128 heap rows at a time as COPY does,
 * each checked against the table's constraints as an INSERT would.
 */
#define ROW_WRITER_SLOTS 128

struct MlmaRowWriter
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	TupleTableSlot **slots;
	int			n;				/* slots filled */
	BulkInsertState bistate;
	CommandId	cid;
	bool		constraints;	/* the table has constraints to check */
	int64		written;
};

static MlmaRowWriter *
RowWriterBegin(Relation rel)
{
	MlmaRowWriter *w = palloc0(sizeof(MlmaRowWriter));

	w->rel = rel;
	CommandCounterIncrement();
	w->cid = GetCurrentCommandId(true);
	w->estate = CreateExecutorState();
	w->rri = makeNode(ResultRelInfo);
	/* not in a range table: a constraint's message names no column set */
	InitResultRelInfo(w->rri, rel, 0, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->bistate = GetBulkInsertState();
	w->constraints = RelationGetDescr(rel)->constr != NULL;
	/* made as they are first needed */
	w->slots = palloc0(sizeof(TupleTableSlot *) * ROW_WRITER_SLOTS);
	return w;
}

/*
 * mlma_row_writer_open
 *		A writer of rows of mlma.<table>, or NULL when the direct path
 *		cannot be used (the caller uses SQL): the table is not a
 *		WritableTable (its CHECK constraints are checked as rows go in), or
 *		it has a live column not in columns[] (whose default a row would
 *		miss).
 */
MlmaRowWriter *
mlma_row_writer_open(const char *table, const char *const *columns, int ncolumns)
{
	Relation	rel;
	TupleDesc	desc;
	int			i;
	int			j;

	if (!mlma_direct_usable())
		return NULL;
	rel = OpenTable(table, RowExclusiveLock);
	if (rel == NULL)
		return NULL;
	desc = RelationGetDescr(rel);
	if (!WritableTable(rel, ACL_INSERT))
	{
		table_close(rel, NoLock);
		return NULL;
	}
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		for (j = 0; j < ncolumns; j++)
			if (strcmp(NameStr(att->attname), columns[j]) == 0)
				break;
		if (j == ncolumns)
		{
			table_close(rel, NoLock);
			return NULL;
		}
	}
	return RowWriterBegin(rel);
}

/*
 * mlma_row_writer_fits
 *		Whether rows of desc can be written column by column: the same
 *		columns, of the same types, dropped in the same places as the
 *		table's (a row type of the table, or a row of it).
 */
bool
mlma_row_writer_fits(MlmaRowWriter *w, TupleDesc desc)
{
	TupleDesc	own = RelationGetDescr(w->rel);
	int			i;

	if (desc->natts != own->natts)
		return false;
	for (i = 0; i < desc->natts; i++)
		if (TupleDescAttr(desc, i)->atttypid != TupleDescAttr(own, i)->atttypid ||
			TupleDescAttr(desc, i)->attisdropped != TupleDescAttr(own, i)->attisdropped)
			return false;
	return true;
}

/* the one sequence the table relid owns (a serial column), or InvalidOid */
static Oid
OwnedSequence(Oid relid)
{
	List	   *seqs = getOwnedSequences(relid);
	Oid			seq = list_length(seqs) == 1 ? linitial_oid(seqs) : InvalidOid;

	list_free(seqs);
	return seq;
}

/*
 * mlma_owned_sequence
 *		The one sequence mlma.<table> owns, or InvalidOid (none, several, no
 *		such table).
 */
Oid
mlma_owned_sequence(const char *table)
{
	Oid			nsp = get_namespace_oid("mlma", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(table, nsp) : InvalidOid;

	return OidIsValid(relid) ? OwnedSequence(relid) : InvalidOid;
}

/* the one sequence the writer's table owns, or InvalidOid */
Oid
mlma_row_writer_sequence(MlmaRowWriter *w)
{
	return OwnedSequence(RelationGetRelid(w->rel));
}

/* the attribute number of column name of type typid, or InvalidAttrNumber */
AttrNumber
mlma_row_writer_column(MlmaRowWriter *w, const char *name, Oid typid)
{
	return AttnumOf(RelationGetDescr(w->rel), name, typid);
}

static void
RowWriterFlush(MlmaRowWriter *w)
{
	int			j;

	if (w->n == 0)
		return;
	if (w->constraints)
		for (j = 0; j < w->n; j++)
			ExecConstraints(w->rri, w->slots[j], w->estate);
	table_multi_insert(w->rel, w->slots, w->n, w->cid, 0, w->bistate);
	for (j = 0; j < w->n; j++)
	{
		List	   *recheck = ExecInsertIndexTuples(w->rri, w->slots[j], w->estate,
													false, false, NULL, NIL);

		list_free(recheck);
		ResetPerTupleExprContext(w->estate);
	}
	w->written += w->n;
	w->n = 0;
}

/*
 * mlma_row_writer_row
 *		The slot of the next row, every column NULL: the caller sets
 *		tts_values and tts_isnull, then calls mlma_row_writer_add.  Values
 *		passed by reference must live until mlma_row_writer_close.
 */
TupleTableSlot *
mlma_row_writer_row(MlmaRowWriter *w)
{
	TupleTableSlot *slot = w->slots[w->n];
	int			i;

	if (slot == NULL)
		slot = w->slots[w->n] = ExecInitExtraTupleSlot(w->estate,
													   RelationGetDescr(w->rel),
													   &TTSOpsVirtual);
	ExecClearTuple(slot);
	for (i = 0; i < slot->tts_tupleDescriptor->natts; i++)
		slot->tts_isnull[i] = true;
	return slot;
}

/*
 * mlma_row_writer_add_tuple
 *		Add a row formed with the table's descriptor (heap_form_tuple); the
 *		writer owns it from now on and frees it once written.  A writer
 *		takes its rows either this way or through mlma_row_writer_row.
 */
void
mlma_row_writer_add_tuple(MlmaRowWriter *w, HeapTuple tup)
{
	TupleTableSlot *slot = w->slots[w->n];

	if (slot == NULL)
		slot = w->slots[w->n] = ExecInitExtraTupleSlot(w->estate,
													   RelationGetDescr(w->rel),
													   &TTSOpsHeapTuple);
	Assert(slot->tts_ops == &TTSOpsHeapTuple);
	ExecStoreHeapTuple(tup, slot, true);
	if (++w->n == ROW_WRITER_SLOTS)
		RowWriterFlush(w);
}

void
mlma_row_writer_add(MlmaRowWriter *w)
{
	ExecStoreVirtualTuple(w->slots[w->n]);
	if (++w->n == ROW_WRITER_SLOTS)
		RowWriterFlush(w);
}

/* writes what is left and closes the writer; returns the rows written */
int64
mlma_row_writer_close(MlmaRowWriter *w)
{
	int64		written;

	RowWriterFlush(w);
	written = w->written;
	FreeBulkInsertState(w->bistate);
	ExecCloseIndices(w->rri);
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	FreeExecutorState(w->estate);
	table_close(w->rel, NoLock);
	pfree(w->slots);
	pfree(w);
	CommandCounterIncrement();
	return written;
}

/*
 * InsertRunsSql
 *		Insert runs with SQL, one saved statement per run, where the direct
 *		path cannot be used (a trigger on mlma.open_runs then fires once per
 *		run, as it would for the direct path's rows).
 */
static void
InsertRunsSql(int n, const int64 *stream_ids, const int64 *seqs, const Datum *arrays)
{
	static MlmaPlan plan;
	Oid			types[5] = {INT8OID, INT8OID, TIMESTAMPTZARRAYOID, FLOAT8ARRAYOID,
	FLOAT8ARRAYOID};
	int			r;

	SPI_connect();
	for (r = 0; r < n; r++)
	{
		Datum		args[5];
		char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
		int			ret;

		args[0] = Int64GetDatum(stream_ids[r]);
		args[1] = Int64GetDatum(seqs[r]);
		args[2] = arrays[3 * r];
		args[3] = arrays[3 * r + 1];
		args[4] = arrays[3 * r + 2];
		if (args[4] == (Datum) 0)
			nulls[4] = 'n';
		ret = SPI_execute_plan(mlma_plan(&plan,
										 "INSERT INTO mlma.open_runs "
										 "(stream_id, seq, times, losses, benchmark_losses) "
										 "VALUES ($1, $2, $3, $4, $5)",
										 5, types),
							   args, nulls, false, 0);
		if (ret != SPI_OK_INSERT)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("recording observations failed: %s",
							SPI_result_code_string(ret))));
	}
	SPI_finish();
}

/*
 * mlma_insert_runs
 *		Insert n runs of observations into mlma.open_runs: run r of stream
 *		stream_ids[r] starts at seqs[r], its array columns arrays[3 r ..
 *		3 r + 2] (see mlma_run_arrays).  Through a row writer (the table
 *		and index access methods, as COPY writes) when mlma's table allows
 *		it, else with SQL.
 */
void
mlma_insert_runs(int n, const int64 *stream_ids, const int64 *seqs,
				 const Datum *arrays)
{
	Relation	rel = NULL;
	RunColumns	cols;
	MlmaRowWriter *w;
	int			r;

	if (n <= 0)
		return;
	if (mlma_direct_usable())
		rel = OpenTable("open_runs", RowExclusiveLock);
	if (rel != NULL && !RunsWritable(rel, &cols, ACL_INSERT))
	{
		table_close(rel, NoLock);
		rel = NULL;
	}
	if (rel == NULL)
	{
		InsertRunsSql(n, stream_ids, seqs, arrays);
		return;
	}
	w = RowWriterBegin(rel);
	for (r = 0; r < n; r++)
	{
		FillRun(mlma_row_writer_row(w), &cols, stream_ids[r], seqs[r], &arrays[3 * r]);
		mlma_row_writer_add(w);
	}
	(void) mlma_row_writer_close(w);
}

/*
 * A keyed reader: the primary key of one of mlma's tables, scanned for
 * one key at a time with a snapshot of the caller's.
 */
struct MlmaKeyReader
{
	Relation	rel;
	Relation	pk;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int			nkeys;
	AttrNumber	key_att;		/* stream_id */
	MemoryContext cxt;			/* the scan's: it allocates as it goes */
	bool		positioned;		/* seek: the scan stands on a row of ... */
	int64		at;				/* ... this stream */
};

/* rows mlma_key_reader_seek steps over before it searches the key anew */
#define KEY_READER_STEPS 4

/*
 * The scan of a reader, restarted and advanced in the memory context it
 * was made in: the btree scan allocates some of its state on the way
 * (the items it finds dead), and the caller's context may be reset between
 * two rows.
 */
static void
ReaderRescan(MlmaKeyReader *r, ScanKey keys, int nkeys)
{
	MemoryContext old = MemoryContextSwitchTo(r->cxt);

	index_rescan(r->scan, keys, nkeys, NULL, 0);
	MemoryContextSwitchTo(old);
}

static bool
ReaderNext(MlmaKeyReader *r, ScanDirection dir)
{
	MemoryContext old = MemoryContextSwitchTo(r->cxt);
	bool		found = index_getnext_slot(r->scan, dir, r->slot);

	MemoryContextSwitchTo(old);
	return found;
}

/*
 * mlma_key_reader_open
 *		A reader of mlma.<table> by stream_id, and by the int4 column second
 *		after it (NULL: by stream_id alone), visible to snap; NULL when the
 *		direct path cannot be used (the caller uses SQL): the table is not
 *		a plain local table the session's user may read, or its primary key
 *		does not begin with those columns.
 */
MlmaKeyReader *
mlma_key_reader_open(const char *table, const char *second, Snapshot snap)
{
	Relation	rel;
	Relation	pk;
	MlmaKeyReader *r;

	rel = OpenKeyed(table, AccessShareLock, LocalTable, ACL_SELECT, second, &pk);
	if (rel == NULL)
		return NULL;
	r = palloc0(sizeof(MlmaKeyReader));
	r->rel = rel;
	r->pk = pk;
	r->nkeys = second != NULL ? 2 : 1;
	r->key_att = AttnumOf(RelationGetDescr(rel), "stream_id", INT8OID);
	r->cxt = CurrentMemoryContext;
	r->slot = table_slot_create(rel, NULL);
	r->scan = index_beginscan(rel, pk, snap, r->nkeys, 0);
	return r;
}

/*
 * mlma_key_reader_find
 *		The row of the key (second ignored when reading by stream_id
 *		alone), all its columns in the slot, or NULL when there is none.
 *		The slot is valid until the next call.
 */
TupleTableSlot *
mlma_key_reader_find(MlmaKeyReader *r, int64 stream_id, int32 second)
{
	ScanKeyData keys[2];

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(stream_id));
	if (r->nkeys == 2)
		ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT4EQ,
					Int32GetDatum(second));
	r->positioned = false;
	ReaderRescan(r, keys, r->nkeys);
	return mlma_key_reader_next(r, ForwardScanDirection);
}

/*
 * mlma_key_reader_seek
 *		The row of stream_id (readers by stream_id alone), all its columns
 *		in the slot, or NULL, for keys asked in ascending order: the scan
 *		runs on from the row found last, and a key a few rows further on
 *		costs a step instead of a search from the root of the index.
 */
TupleTableSlot *
mlma_key_reader_seek(MlmaKeyReader *r, int64 stream_id)
{
	ScanKeyData key;
	int			steps;

	Assert(r->nkeys == 1);
	if (r->positioned && r->at == stream_id)
	{
		slot_getallattrs(r->slot);
		return r->slot;
	}
	if (r->positioned && r->at < stream_id)
	{
		for (steps = 0; steps < KEY_READER_STEPS; steps++)
		{
			bool		isnull;

			if (!ReaderNext(r, ForwardScanDirection))
			{
				/* no row at or after the key */
				r->positioned = false;
				return NULL;
			}
			r->at = DatumGetInt64(slot_getattr(r->slot, r->key_att, &isnull));
			if (r->at == stream_id)
			{
				slot_getallattrs(r->slot);
				return r->slot;
			}
			if (r->at > stream_id)
				return NULL;
		}
	}
	/* from the root: the first row at or after the key */
	ScanKeyInit(&key, 1, BTGreaterEqualStrategyNumber, F_INT8GE,
				Int64GetDatum(stream_id));
	ReaderRescan(r, &key, 1);
	r->positioned = ReaderNext(r, ForwardScanDirection);
	if (!r->positioned)
		return NULL;
	{
		bool		isnull;

		r->at = DatumGetInt64(slot_getattr(r->slot, r->key_att, &isnull));
	}
	if (r->at != stream_id)
		return NULL;
	slot_getallattrs(r->slot);
	return r->slot;
}

/*
 * mlma_key_reader_next
 *		The next row of the key last searched, in the primary key's order
 *		or backwards (the first call after mlma_key_reader_find with
 *		BackwardScanDirection gives the key's last row), or NULL.
 */
TupleTableSlot *
mlma_key_reader_next(MlmaKeyReader *r, ScanDirection dir)
{
	if (!ReaderNext(r, dir))
		return NULL;
	slot_getallattrs(r->slot);
	return r->slot;
}

/*
 * mlma_key_reader_last
 *		The last row of the stream in the primary key's order (readers by
 *		stream_id alone), or NULL; mlma_key_reader_next(r,
 *		BackwardScanDirection) gives the ones before it.
 */
TupleTableSlot *
mlma_key_reader_last(MlmaKeyReader *r, int64 stream_id)
{
	ScanKeyData key;

	Assert(r->nkeys == 1);
	r->positioned = false;
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(stream_id));
	ReaderRescan(r, &key, 1);
	return mlma_key_reader_next(r, BackwardScanDirection);
}

/*
 * mlma_key_reader_sweep
 *		The rows of the n streams ids (ascending, distinct) read with one
 *		scan of the whole table, with the reader's snapshot, instead of n
 *		searches of its primary key: fn(arg, k, slot) for the row of ids[k]
 *		(readers by stream_id alone), its columns up to natts deformed;
 *		the slot is valid until fn returns.  Only when that is cheaper: the
 *		streams are at least a quarter of the table's rows (its pages times
 *		the rows per page VACUUM or ANALYZE last counted, 16 before or when
 *		they counted none), as in
 *		a fleet-wide round, or the table is one page.  Returns false, and
 *		has read nothing, otherwise: the caller seeks.
 */
bool
mlma_key_reader_sweep(MlmaKeyReader *r, const int64 *ids, int n, AttrNumber natts,
					  void (*fn) (void *arg, int k, TupleTableSlot *slot),
					  void *arg)
{
	BlockNumber pages;
	double		density;
	TableScanDesc scan;
	TupleTableSlot *slot;

	Assert(r->nkeys == 1);
	if (n <= 0)
		return false;
	/* the table's rows now: its pages times the rows per page last counted */
	pages = RelationGetNumberOfBlocks(r->rel);
	density = r->rel->rd_rel->relpages > 0 && r->rel->rd_rel->reltuples > 0
		? r->rel->rd_rel->reltuples / r->rel->rd_rel->relpages : 16.0;
	if (pages > 1 && (double) n * 4.0 < density * pages)
		return false;

	slot = table_slot_create(r->rel, NULL);
	scan = table_beginscan(r->rel, r->scan->xs_snapshot, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		int64		id = DatumGetInt64(slot_getattr(slot, r->key_att, &isnull));
		int			lo = 0;
		int			hi = n - 1;

		if (isnull)
			continue;
		while (lo < hi)
		{
			int			mid = lo + (hi - lo) / 2;

			if (ids[mid] < id)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (ids[lo] != id)
			continue;
		slot_getsomeattrs(slot, natts);
		fn(arg, lo, slot);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	r->positioned = false;
	return true;
}

/* the attribute number of column name of type typid, or InvalidAttrNumber */
AttrNumber
mlma_key_reader_column(MlmaKeyReader *r, const char *name, Oid typid)
{
	return AttnumOf(RelationGetDescr(r->rel), name, typid);
}

void
mlma_key_reader_close(MlmaKeyReader *r)
{
	if (r == NULL)
		return;
	index_endscan(r->scan);
	ExecDropSingleTupleTableSlot(r->slot);
	index_close(r->pk, NoLock);
	table_close(r->rel, NoLock);
	pfree(r);
}

/*
 * mlma_take_queue
 *		Takes up to limit waiting checks out of mlma.check_queue, in primary
 *		key order, as DELETE of the rows a SELECT … FOR UPDATE SKIP LOCKED
 *		finds: a row another transaction is deleting or holds is left for
 *		it, one deleted since the snapshot was taken is gone.  Sets *rows
 *		(palloc'd, in that order) and returns how many; -1 when the direct
 *		path cannot be used, and nothing was taken.
 */
int64
mlma_take_queue(int64 limit, MlmaQueued **rows)
{
	Relation	rel;
	Relation	pk;
	TupleDesc	desc;
	AttrNumber	sid_att;
	AttrNumber	bno_att;
	AttrNumber	at_att;
	Snapshot	snap;
	CommandId	cid;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	int64		n = 0;
	int64		cap = 64;
	MlmaQueued *out;

	rel = OpenKeyed("check_queue", RowExclusiveLock, WritableTable,
					ACL_SELECT | ACL_DELETE, "batch_no", &pk);
	if (rel == NULL)
		return -1;
	desc = RelationGetDescr(rel);
	sid_att = AttnumOf(desc, "stream_id", INT8OID);
	bno_att = AttnumOf(desc, "batch_no", INT4OID);
	at_att = AttnumOf(desc, "queued_at", TIMESTAMPTZOID);
	if (at_att == InvalidAttrNumber)
	{
		index_close(pk, NoLock);
		table_close(rel, NoLock);
		return -1;
	}

	snap = RegisterSnapshot(GetTransactionSnapshot());
	cid = GetCurrentCommandId(true);
	slot = table_slot_create(rel, NULL);
	scan = index_beginscan(rel, pk, snap, 0, 0);
	index_rescan(scan, NULL, 0, NULL, 0);
	out = palloc(sizeof(MlmaQueued) * cap);
	while (n < limit && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		ItemPointerData tid = slot->tts_tid;
		TM_FailureData tmfd;
		TM_Result	res;
		bool		isnull;
		MlmaQueued	q;

		q.stream_id = DatumGetInt64(slot_getattr(slot, sid_att, &isnull));
		q.batch_no = DatumGetInt32(slot_getattr(slot, bno_att, &isnull));
		q.queued_at = DatumGetTimestampTz(slot_getattr(slot, at_att, &isnull));
		/* without waiting: a row another transaction holds is skipped */
		res = table_tuple_delete(rel, &tid, cid, snap, InvalidSnapshot, false,
								 &tmfd, false);
		/*
		 * Held, or locked by this transaction itself (which SKIP LOCKED
		 * does not skip): taken when its lock can be had at once.
		 */
		if (res == TM_BeingModified &&
			table_tuple_lock(rel, &tid, snap, slot, cid, LockTupleExclusive,
							 LockWaitSkip, 0, &tmfd) == TM_Ok)
			res = table_tuple_delete(rel, &tid, cid, snap, InvalidSnapshot, true,
									 &tmfd, false);
		if (res != TM_Ok)
			continue;
		if (n == cap)
		{
			cap *= 2;
			out = repalloc(out, sizeof(MlmaQueued) * cap);
		}
		out[n++] = q;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	index_close(pk, NoLock);
	table_close(rel, NoLock);
	*rows = out;
	return n;
}

static void
TakenAdd(MlmaTakenBatch *b, int64 seq, TimestampTz at, double loss, bool has_bench,
		 double bench)
{
	if (b->n == b->cap)
	{
		b->cap = b->cap == 0 ? 128 : b->cap * 2;
		b->losses = b->losses ? repalloc(b->losses, sizeof(double) * b->cap)
			: palloc(sizeof(double) * b->cap);
		b->at = b->at ? repalloc(b->at, sizeof(TimestampTz) * b->cap)
			: palloc(sizeof(TimestampTz) * b->cap);
		b->bench = b->bench ? repalloc(b->bench, sizeof(double) * b->cap)
			: palloc(sizeof(double) * b->cap);
		b->bench_null = b->bench_null ? repalloc(b->bench_null, sizeof(bool) * b->cap)
			: palloc(sizeof(bool) * b->cap);
	}
	if (b->n == 0)
		b->first_seq = seq;
	b->losses[b->n] = loss;
	b->at[b->n] = at;
	b->bench[b->n] = bench;
	b->bench_null[b->n] = !has_bench;
	if (has_bench)
		b->nbench++;
	b->n++;
}

/*
 * mlma_run_elems
 *		The elements of the array columns of a run of mlma.open_runs (bench
 *		NULL when bench_null): *times, *losses, and *bench with *bench_nulls
 *		(both NULL when the run has no benchmark losses).  Returns the
 *		run's length; an error when the arrays differ in length.
 */
int
mlma_run_elems(Datum times, Datum losses, Datum bench, bool bench_null,
			   Datum **t, Datum **l, Datum **x, bool **xnull)
{
	int			nt;
	int			nl;
	int			nx = 0;

	*x = NULL;
	*xnull = NULL;
	deconstruct_array(DatumGetArrayTypeP(times), TIMESTAMPTZOID, sizeof(TimestampTz),
					  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, t, NULL, &nt);
	deconstruct_array(DatumGetArrayTypeP(losses), FLOAT8OID, sizeof(float8),
					  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, l, NULL, &nl);
	if (!bench_null)
		deconstruct_array(DatumGetArrayTypeP(bench), FLOAT8OID, sizeof(float8),
						  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, x, xnull, &nx);
	if (nt != nl || (!bench_null && nx != nl))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a run of open observations has arrays of different lengths"),
				 errdetail("times has %d elements, losses %d, benchmark_losses %d.",
						   nt, nl, bench_null ? nl : nx)));
	return nl;
}

/* add the observations of one run, which starts at seq, to b */
static void
TakenAddRun(MlmaTakenBatch *b, int64 seq, Datum times, Datum losses, Datum bench,
			bool bench_null)
{
	Datum	   *t;
	Datum	   *l;
	Datum	   *x;
	bool	   *xnull;
	int			n = mlma_run_elems(times, losses, bench, bench_null, &t, &l, &x, &xnull);
	int			i;

	for (i = 0; i < n; i++)
	{
		bool		has = x != NULL && !xnull[i];

		TakenAdd(b, seq + i, DatumGetTimestampTz(t[i]), DatumGetFloat8(l[i]), has,
				 has ? DatumGetFloat8(x[i]) : 0.0);
	}
	/* copied: a set-wise take reuses this memory for the next stream */
	pfree(t);
	pfree(l);
	if (x != NULL)
	{
		pfree(x);
		pfree(xnull);
	}
}

/*
 * DeleteOpenRows
 *		Delete the stream's runs with seq >= from_seq, visible to snap, as
 *		DELETE ... RETURNING does (rel opened with RowExclusiveLock),
 *		collecting their observations in seq order.
 */
static void
DeleteOpenRows(Relation rel, Relation pk, const RunColumns *cols, Snapshot snap,
			   int64 stream_id, int64 from_seq, MlmaTakenBatch *b)
{
	CommandId	cid = GetCurrentCommandId(true);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	IndexScanDesc scan = BeginOpenBatchScan(rel, pk, snap, stream_id, from_seq);

	while (index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		ItemPointerData tid = slot->tts_tid;
		TM_FailureData tmfd;
		TM_Result	res;
		bool		isnull;
		bool		bnull;
		int64		seq;
		Datum		times;
		Datum		losses;
		Datum		bench;

		/* the slot keeps the row's buffer pinned while it is deleted */
		seq = DatumGetInt64(slot_getattr(slot, cols->seq, &isnull));
		times = slot_getattr(slot, cols->times, &isnull);
		losses = slot_getattr(slot, cols->losses, &isnull);
		bench = slot_getattr(slot, cols->benchmark_losses, &bnull);

		res = table_tuple_delete(rel, &tid, cid, snap, InvalidSnapshot, true,
								 &tmfd, false);
		switch (res)
		{
			case TM_Ok:
				TakenAddRun(b, seq, times, losses, bench, bnull);
				break;
			case TM_SelfModified:
				/* already deleted by this command: as DELETE, skip it */
				break;
			case TM_Deleted:
			case TM_Updated:
				if (IsolationUsesXactSnapshot())
					ereport(ERROR,
							(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
							 errmsg("could not serialize access due to concurrent delete")));
				/* deleted by a concurrent transaction: gone, as DELETE skips it */
				break;
			default:
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("unexpected result %d deleting an observation of stream %lld",
								(int) res, (long long) stream_id)));
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * OpenRunsToTake
 *		mlma.open_runs opened to take runs out of it (RowExclusiveLock), with
 *		its primary key in *pk and its columns in *cols, when the direct
 *		path may be used; else NULL, with nothing left open.
 */
static Relation
OpenRunsToTake(RunColumns *cols, Relation *pk)
{
	Relation	rel;

	*pk = NULL;
	if (!mlma_direct_usable() || (rel = OpenTable("open_runs", RowExclusiveLock)) == NULL)
		return NULL;
	*pk = OpenPrimaryKey(rel, AccessShareLock);
	if (*pk != NULL && RunsWritable(rel, cols, ACL_SELECT | ACL_DELETE) &&
		KeyBegins(*pk, cols->stream_id, cols->seq))
		return rel;
	if (*pk != NULL)
		index_close(*pk, NoLock);
	*pk = NULL;
	table_close(rel, NoLock);
	return NULL;
}

/*
 * mlma_direct_take_open
 *		Take the open observations of n streams whose writer locks this
 *		transaction holds out of mlma.open_runs: those of ids[i] with seq >=
 *		from[i] go to out[i] (zeroed by the caller), in seq order, read
 *		with a snapshot taken now, as a statement of their own would (it
 *		sees this transaction's earlier writes and every commit before
 *		it).  False when the direct path cannot be used: nothing was taken.
 */
bool
mlma_direct_take_open(int n, const int64 *ids, const int64 *from,
					  MlmaTakenBatch *out)
{
	Relation	pk;
	RunColumns	cols;
	Relation	rel = OpenRunsToTake(&cols, &pk);
	Snapshot	snap;
	int			i;

	if (rel == NULL)
		return false;
	CommandCounterIncrement();
	snap = RegisterSnapshot(GetLatestSnapshot());
	for (i = 0; i < n; i++)
		DeleteOpenRows(rel, pk, &cols, snap, ids[i], from[i], &out[i]);
	UnregisterSnapshot(snap);
	index_close(pk, NoLock);
	table_close(rel, NoLock);
	return true;
}

/*
 * DeleteOpenRowsSql
 *		The same through SQL, where the direct path cannot be used.
 */
static void
DeleteOpenRowsSql(int64 stream_id, int64 from_seq, MlmaTakenBatch *b)
{
	static MlmaPlan plan;
	Oid			types[2] = {INT8OID, INT8OID};
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[2];
	int			ret;
	uint64		i;

	SPI_connect();
	args[0] = Int64GetDatum(stream_id);
	args[1] = Int64GetDatum(from_seq);
	ret = SPI_execute_plan(mlma_plan(&plan,
									 "WITH d AS (DELETE FROM mlma.open_runs "
									 "            WHERE stream_id = $1 AND seq >= $2 "
									 "        RETURNING seq, times, losses, benchmark_losses) "
									 "SELECT seq, times, losses, benchmark_losses FROM d ORDER BY seq",
									 2, types),
						   args, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("taking the open batch failed: %s", SPI_result_code_string(ret))));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bool		bnull;
		Datum		bench = SPI_getbinval(tup, desc, 4, &bnull);
		MemoryContext old = MemoryContextSwitchTo(caller);

		TakenAddRun(b, DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)),
					SPI_getbinval(tup, desc, 2, &isnull),
					SPI_getbinval(tup, desc, 3, &isnull), bench, bnull);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

/*
 * mlma._take_open_batch(stream_id bigint, from_seq bigint,
 *		OUT losses float8[], OUT offsets int4[], OUT first_seq bigint,
 *		OUT first_at timestamptz, OUT last_at timestamptz,
 *		OUT benchmark_losses float8[]) -> record
 *
 *		Delete the stream's open observations (seq >= from_seq) and return
 *		them as the columns of a closed batch, in seq order: losses, second
 *		offsets from the first one's time (clamped to int4), the first seq,
 *		the first and last times, and the benchmark losses (NULL when none
 *		has one, NULL elements where missing).  Every column is NULL when
 *		the open batch is empty.  The caller holds the stream's writer lock
 *		(mlma._close_batch).
 */
Datum
mlma_take_open_batch(PG_FUNCTION_ARGS)
{
	int64		stream_id = PG_GETARG_INT64(0);
	int64		from_seq = PG_GETARG_INT64(1);
	TupleDesc	tupdesc;
	MlmaTakenBatch	b;
	Datum		values[6];
	bool		nulls[6] = {true, true, true, true, true, true};
	Relation	rel;
	Relation	pk;
	RunColumns cols;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("mlma._take_open_batch() must return a record")));
	tupdesc = BlessTupleDesc(tupdesc);
	memset(&b, 0, sizeof(b));

	rel = OpenRunsToTake(&cols, &pk);
	if (rel != NULL)
	{
		DeleteOpenRows(rel, pk, &cols, GetActiveSnapshot(), stream_id, from_seq, &b);
		index_close(pk, NoLock);
		table_close(rel, NoLock);
	}
	else
		DeleteOpenRowsSql(stream_id, from_seq, &b);

	if (b.n > 0)
	{
		int32	   *offsets = palloc(sizeof(int32) * b.n);
		int			i;

		values[0] = mlma_packed_array(b.losses, b.n, FLOAT8OID, sizeof(double));
		for (i = 0; i < b.n; i++)
			offsets[i] = mlma_seconds_since(b.at[i], b.at[0]);
		values[1] = mlma_packed_array(offsets, b.n, INT4OID, sizeof(int32));
		values[2] = Int64GetDatum(b.first_seq);
		values[3] = TimestampTzGetDatum(b.at[0]);
		values[4] = TimestampTzGetDatum(b.at[b.n - 1]);
		if (b.nbench > 0)
		{
			Datum	   *d = palloc(sizeof(Datum) * b.n);

			for (i = 0; i < b.n; i++)
				d[i] = Float8GetDatum(b.bench[i]);
			values[5] = mlma_array_datum(d, b.bench_null, b.n, FLOAT8OID);
		}
		for (i = 0; i < 6; i++)
			nulls[i] = i == 5 && b.nbench == 0;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
