-- mlma: tables of the monitoring loop
--
-- Every per-stream table is keyed by stream_id first (primary keys and
-- unique indexes), so that a distributed PostgreSQL (Citus, distributed by
-- stream_id) can shard all of them the same way; the fleet-wide tables
-- rounds and attachments are not per-stream and keep keys of their own.
-- See docs/monitoring.md for how the loop uses them.

-- Configuration: one row per stream, every create_stream option.
-- stream_id is derived from the name (_derive_stream_id: 63 bits of the SHA-256 of
-- its UTF-8 bytes), the same on every node; streams created by 0.1.0 keep
-- the ids its sequence gave them.  The name is unique on its own: a stream
-- of 0.1.0 has an id that is not derived from its name.
CREATE TABLE @extschema@.streams (
	stream_id		bigint PRIMARY KEY CHECK (stream_id > 0),
	name			text NOT NULL UNIQUE
		CHECK (length(name) BETWEEN 1 AND 255),
	batch_size		int NOT NULL CHECK (batch_size >= 2),
	reference_size	int NOT NULL CHECK (reference_size >= 2),
	method			text NOT NULL
		CHECK (method IN ('welch', 'mann_whitney', 'ks', 'hac', 'dm')),
	alpha			float8 NOT NULL CHECK (alpha > 0 AND alpha < 1),
	loss			text NOT NULL,
	loss_param		float8,
	model_version	text NOT NULL CHECK (model_version <> ''),
	labels			jsonb NOT NULL DEFAULT '{}'
		CHECK (jsonb_typeof(labels) = 'object'),
	check_mode		text NOT NULL CHECK (check_mode IN ('eager', 'scheduled')),
	reference_policy text NOT NULL
		CHECK (reference_policy IN ('fixed', 'rolling', 'benchmark')),
	min_effect		float8 NOT NULL CHECK (min_effect >= 0),
	consecutive		int NOT NULL CHECK (consecutive >= 1),
	season_length	int CHECK (season_length >= 2),
	max_model_age	interval CHECK (max_model_age > interval '0'),
	paused			bool NOT NULL DEFAULT false,
	version_started_at timestamptz NOT NULL DEFAULT now(),
	created_at		timestamptz NOT NULL DEFAULT now(),
	-- approval gate of drift and age requests: 'auto' (agents may claim them
	-- at once) or 'manual' (they wait as 'proposed' for approve() or dismiss(),
	-- or for approve_after to pass)
	approval		text NOT NULL DEFAULT 'auto'
		CHECK (approval IN ('auto', 'manual')),
	approve_after	interval CHECK (approve_after > interval '0')
);
CREATE INDEX streams_labels_idx ON @extschema@.streams USING gin (labels);

-- State: one narrow row per stream, written when a batch closes and on
-- configuration changes (no indexed column changes and the fillfactor leaves
-- room on the page, so the updates are HOT).  Adding observations does not
-- write it: writers of a stream serialize on the stream's writer lock, a
-- row lock (FOR NO KEY UPDATE) on this row held to the end of the
-- transaction (src/stream.c), and keep their counters in memory.  Under
-- REPEATABLE READ the first observation also bumps touch_count so that
-- concurrent writers get a serialization failure.
CREATE TABLE @extschema@.stream_state (
	stream_id		bigint PRIMARY KEY,
	config_version	int NOT NULL DEFAULT 1,	-- bumped by every configuration change
	touch_count		bigint NOT NULL DEFAULT 0,	-- REPEATABLE READ writing transactions
	open_start_seq	bigint NOT NULL DEFAULT 0,	-- seq of the open batch's first observation
	batch_no		int NOT NULL DEFAULT 1,	-- number of the open batch
	version_no		int NOT NULL DEFAULT 1,	-- model versions deployed so far
	version_start_seq bigint NOT NULL DEFAULT 0,	-- first seq of this version's warm-up
	streak			int NOT NULL DEFAULT 0,	-- significant batches in a row
	age_flagged		bool NOT NULL DEFAULT false,	-- max_model_age request raised
	skipped			bigint NOT NULL DEFAULT 0,	-- rows of attached tables left out (on_invalid 'skip')
	last_skip_reason text,
	last_skip_at	timestamptz
) WITH (fillfactor = 50);

-- The open batch, as runs: each row holds consecutive observations of one
-- stream not yet in a closed batch, seq being the number of its first one
-- (the stream's observation number, 0-based, never reset, so the seasonal
-- position of an observation is seq % season_length).  A single-row
-- INSERT or observe() writes a run of one; a multi-row statement writes
-- each stream's open tail as one run (src/ingest_set.c), so a statement
-- over a thousand streams leaves a thousand rows, not one per observation.
-- benchmark_losses: the challenger's losses on the same observations (NULL
-- when none of the run had one; else as long as losses, NULL elements where
-- missing; required by the benchmark reference policy).  Closing a batch
-- takes every run of the stream out.  Read it through mlma.observations.
CREATE TABLE @extschema@.open_runs (
	stream_id		bigint NOT NULL,
	seq				bigint NOT NULL,
	times			timestamptz[] NOT NULL,
	losses			float8[] NOT NULL,
	benchmark_losses float8[],
	PRIMARY KEY (stream_id, seq)
);
ALTER TABLE @extschema@.open_runs ALTER COLUMN times SET STORAGE MAIN;
ALTER TABLE @extschema@.open_runs ALTER COLUMN losses SET STORAGE MAIN;
ALTER TABLE @extschema@.open_runs ALTER COLUMN benchmark_losses SET STORAGE MAIN;

-- The open batches, one row per observation.
CREATE VIEW @extschema@.observations AS
SELECT r.stream_id,
	   r.seq + u.i - 1 AS seq,
	   u.observed_at,
	   u.loss,
	   u.benchmark_loss
  FROM @extschema@.open_runs r,
	   unnest(r.times, r.losses, r.benchmark_losses)
		   WITH ORDINALITY AS u(observed_at, loss, benchmark_loss, i);

-- Closed batches, compact: the losses as one float8[] and the times as int4
-- second offsets from first_at, about 12 bytes per observation plus one row
-- header per batch.  benchmark_losses: the challenger's losses of the same
-- observations (NULL when none of them had one; else as long as losses,
-- NULL elements where missing), 8 more bytes per observation.
CREATE TABLE @extschema@.batches (
	stream_id		bigint NOT NULL,
	batch_no		int NOT NULL,
	model_version	text NOT NULL,
	version_no		int NOT NULL,
	role			text NOT NULL
		CHECK (role IN ('reference', 'test', 'partial')),
	first_seq		bigint NOT NULL,
	first_at		timestamptz NOT NULL,
	last_at			timestamptz NOT NULL,
	losses			float8[] NOT NULL,
	offsets			int4[] NOT NULL,
	benchmark_losses float8[],
	PRIMARY KEY (stream_id, batch_no)
);
ALTER TABLE @extschema@.batches ALTER COLUMN losses SET STORAGE MAIN;
ALTER TABLE @extschema@.batches ALTER COLUMN offsets SET STORAGE MAIN;
ALTER TABLE @extschema@.batches ALTER COLUMN benchmark_losses SET STORAGE MAIN;

-- The live reference loss batch of each stream (at most one).  seqs holds the
-- observation number of each loss, which gives its seasonal position.
CREATE TABLE @extschema@.reference_batches (
	stream_id		bigint PRIMARY KEY,
	version_no		int NOT NULL,
	model_version	text NOT NULL,
	source			text NOT NULL
		CHECK (source IN ('warmup', 'rolling', 'pinned', 'accepted')),
	losses			float8[] NOT NULL,
	seqs			int8[] NOT NULL,
	end_seq			bigint NOT NULL,	-- 1 + the last seq the reference covers
	mean			float8 NOT NULL,
	built_at		timestamptz NOT NULL DEFAULT now(),
	reference_id	bigint		-- its reference_history row
);

-- One row per check of a closed batch, inserted once with its outcome.
-- status: 'done', or 'skipped' (the model version changed before the check
-- ran); 'waiting' is not used any more (scheduled checks wait in
-- check_queue).  significant: p-value (adjusted in scheduled mode) at or
-- below alpha and effect at or above min_effect; drift: significant for
-- `consecutive` batches in a row.  note: why a batch could not be tested
-- (recorded as p = 1, not significant).
CREATE TABLE @extschema@.checks (
	check_id		bigserial,
	stream_id		bigint NOT NULL,
	model_version	text NOT NULL,
	batch_no		int NOT NULL,
	method			text NOT NULL,
	alpha			float8 NOT NULL,
	check_mode		text NOT NULL,
	status			text NOT NULL DEFAULT 'done'
		CHECK (status IN ('waiting', 'done', 'skipped')),
	n_reference		int,
	n_current		int,
	reference_mean	float8,
	batch_mean		float8,
	statistic		float8,
	p_value			float8,
	p_adjusted		float8,
	effect			float8,
	significant		bool,
	drift			bool,
	created_at		timestamptz NOT NULL DEFAULT now(),
	checked_at		timestamptz,
	note			text,
	reference_id	bigint,		-- reference_history row live when the batch closed
	threshold		float8,		-- level p (eager) or p_adjusted (scheduled: the round's fdr) was compared with
	PRIMARY KEY (stream_id, batch_no)	-- a batch is checked once
);
-- requests, reports and explain find a check by its id alone
CREATE INDEX checks_check_id_idx ON @extschema@.checks (check_id);
CREATE INDEX checks_checked_at_idx ON @extschema@.checks (checked_at);

-- Closed batches of scheduled streams waiting for run_checks(): a queue
-- drained set-wise (DELETE ... RETURNING with SKIP LOCKED); the check row is
-- inserted when the round has its outcome.
CREATE TABLE @extschema@.check_queue (
	stream_id		bigint NOT NULL,
	batch_no		int NOT NULL,
	queued_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (stream_id, batch_no)
);

-- One row per run_checks() round: when it ran, the checks it recorded, the
-- new retrain requests, and the batches it left queued (stream busy).
-- Fleet-wide, not per stream: no stream_id and no key (on a distributed
-- cluster it stays on the coordinator).
CREATE TABLE @extschema@.rounds (
	started_at		timestamptz NOT NULL,
	finished_at		timestamptz NOT NULL,
	checks			int NOT NULL,
	flags			int NOT NULL,
	deferred		int NOT NULL
);
CREATE INDEX rounds_finished_at_idx ON @extschema@.rounds (finished_at);

-- Retrain requests and their lifecycle:
-- proposed -> pending (approve, approve_after) | dismissed (approval gate),
-- pending -> claimed -> completed | failed, pending|claimed -> dismissed.
-- Open requests: proposed, pending, claimed.
CREATE TABLE @extschema@.retrain_requests (
	request_id		bigserial,
	stream_id		bigint NOT NULL,
	model_version	text NOT NULL,
	reason			text NOT NULL CHECK (reason IN ('drift', 'manual', 'age')),
	status			text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('proposed', 'pending', 'claimed', 'completed', 'failed', 'dismissed')),
	p_value			float8,
	effect			float8,
	check_id		bigint,
	note			text,
	requested_at	timestamptz NOT NULL DEFAULT now(),
	claimed_by		text,
	claimed_at		timestamptz,
	lease_until		timestamptz,
	finished_at		timestamptz,
	new_model_version text,
	error			text,
	approved_at		timestamptz,	-- a proposed request became pending
	approved_by		text,			-- the approving role, or 'approve_after'
	PRIMARY KEY (stream_id, request_id)
);
-- the lifecycle functions and the agent find a request by its id alone
CREATE INDEX retrain_requests_request_id_idx
	ON @extschema@.retrain_requests (request_id);
-- at most one open request per stream
CREATE UNIQUE INDEX retrain_requests_open_idx
	ON @extschema@.retrain_requests (stream_id)
	WHERE status IN ('proposed', 'pending', 'claimed');
CREATE INDEX retrain_requests_queue_idx
	ON @extschema@.retrain_requests (requested_at, request_id)
	WHERE status IN ('proposed', 'pending', 'claimed');
CREATE INDEX retrain_requests_stream_idx
	ON @extschema@.retrain_requests (stream_id, requested_at);

-- Every reference that was ever live, one row per _store_reference call
-- (warm-up, each roll, pin, accepted batch).  The losses are not copied:
-- seq_runs holds the observation numbers as [from, to) pairs, so the losses
-- are read back from batches/observations (_reference_losses) while that
-- history is kept.  checks.reference_id points here.
CREATE TABLE @extschema@.reference_history (
	reference_id	bigserial,
	stream_id		bigint NOT NULL,
	version_no		int NOT NULL,
	model_version	text NOT NULL,
	source			text NOT NULL,
	n				int NOT NULL,
	mean			float8 NOT NULL,
	first_seq		bigint NOT NULL,
	end_seq			bigint NOT NULL,	-- 1 + the last seq
	seq_runs		int8[] NOT NULL,
	built_at		timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (stream_id, reference_id)
);
-- explain finds a check's reference by its id alone
CREATE INDEX reference_history_reference_id_idx
	ON @extschema@.reference_history (reference_id);

-- Tables watched by attach() (fleet-wide, not per stream: keyed by the
-- user's table): the mapping of their columns.  on_invalid:
-- what a row that cannot be an observation does ('error': fails the
-- statement, 'skip': stored in the table, not observed, counted).  A skip
-- of a known stream is counted in its stream_state row, any other skip
-- (a mapped column gone or of another type, a name that cannot be a
-- stream) here.  Rows of dropped tables are removed by the event trigger
-- mlma_drop_attachments (and by attach() and detach(), lazily).
CREATE TABLE @extschema@.attachments (
	source			regclass PRIMARY KEY,
	stream_column	name NOT NULL,
	actual_column	name NOT NULL,
	predicted_column name NOT NULL,
	time_column		name,
	defaults		jsonb NOT NULL DEFAULT '{}',
	attached_at		timestamptz NOT NULL DEFAULT now(),
	benchmark_column name,
	on_invalid		text NOT NULL DEFAULT 'skip'
		CHECK (on_invalid IN ('error', 'skip')),
	create_streams	bool NOT NULL DEFAULT true,
	skipped			bigint NOT NULL DEFAULT 0,
	last_skip_reason text,
	last_skip_at	timestamptz
);

-- configuration and history survive pg_dump / restore
SELECT pg_catalog.pg_extension_config_dump('@extschema@.streams', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.stream_state', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.open_runs', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.batches', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reference_batches', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.checks', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.checks_check_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.check_queue', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.rounds', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.retrain_requests', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.retrain_requests_request_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.attachments', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reference_history', '');
SELECT pg_catalog.pg_extension_config_dump('@extschema@.reference_history_reference_id_seq', '');
