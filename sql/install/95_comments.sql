-- mlma: the catalog documents itself (\df+ mlma.*, \d+ mlma.checks).
--
-- Functions are commented by name, whatever their signature, so one comment
-- serves every overload.  Functions whose name starts with an underscore are
-- internal helpers: not part of the SQL interface, not granted to the
-- reader, writer or agent roles, and marked as such here; `\df mlma.[^_]*`
-- lists the interface alone.

DO $comments$
DECLARE
	f	record;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure AS sig, c.comment
		  FROM pg_catalog.pg_proc p
		  JOIN (VALUES
			('welch_test', 'Welch''s t-test of current vs reference losses; equals scipy.stats.ttest_ind(current, reference, equal_var=False). alternative ''greater'' (default): current losses are larger.'),
			('mann_whitney_test', 'Mann-Whitney U test of current vs reference losses; U of current; equals scipy.stats.mannwhitneyu(current, reference, method=''auto'').'),
			('ks_test', 'Two-sample Kolmogorov-Smirnov test; equals scipy.stats.ks_2samp(reference, current, method=''auto''); ''greater'': current losses are stochastically larger.'),
			('hac_test', 'Welch-type z-test with Newey-West (Bartlett) long-run variances per batch, for autocorrelated losses; default lags floor(4 (n/100)^(2/9)).'),
			('dm_test', 'Diebold-Mariano test on d = current - reference, paired element by element (equal lengths); Newey-West long-run variance, normal p-value.'),
			('loss', 'Loss of one forecast: squared, absolute, ape, sape, pinball (param tau), huber (param delta), poisson (deviance), logloss, zero_one.'),
			('bh_adjust', 'Benjamini-Hochberg adjusted p-values; equals statsmodels multipletests(p, method=''fdr_bh'')[1].'),
			('create_stream', 'Creates a monitored stream (one deployed model on one data stream) with its batch size, test, loss, reference policy and labels; returns its stream_id.'),
			('configure', 'Changes options of a stream; NULL keeps an option. A new model_version starts a new reference; settings the live reference cannot serve are refused or start a new reference.'),
			('drop_stream', 'Deletes a stream with its observations, batches, checks and requests.'),
			('pause', 'Pauses a stream: observations are still recorded and batches closed, but no check runs and no drift or age request is raised.'),
			('resume', 'Resumes a paused stream.'),
			('observe', 'Records one realized forecast (actual, predicted) of a stream; the loss is computed with the stream''s loss function. Closing a batch runs its check (eager mode) in this transaction.'),
			('observe_loss', 'Records one observation of a stream by its loss.'),
			('observe_many', 'Records many observations in one call (element i of the arrays is one observe()), set-based: each stream is taken once and the batches they fill are closed and checked together. Returns the number recorded.'),
			('attach', 'Watches a table: each inserted, copied or actual-filling updated row becomes an observation of the stream named in stream_column (unknown streams are created with defaults).'),
			('detach', 'Stops watching a table attached with attach().'),
			('evaluate_batch', 'Re-tests a closed batch and returns the statistic, p-value and effect without recording anything.'),
			('claim_retrain', 'For retrain workers: claims the oldest pending retrain request (SKIP LOCKED) with a lease; no row when there is none.'),
			('complete_retrain', 'For retrain workers: completes a request with the new model version, which starts warming a new reference.'),
			('fail_retrain', 'For retrain workers: records that a retrain failed, with its error.'),
			('dismiss', 'Dismisses an open retrain request as a false alarm; with accept_as_reference the flagged batch becomes the reference.'),
			('request_retrain', 'Raises a manual retrain request for a stream (or returns its open one).'),
			('pin_reference', 'Pins the reference of a stream to its observations in a time range; a pinned reference is not rolled.'),
			('run_checks', 'One scheduled round: tests every waiting closed batch of the fleet with the false discovery rate controlled across them (Benjamini-Hochberg at fdr, default mlma.fdr); returns the checks recorded.'),
			('schedule_checks', 'Registers run_checks() with pg_cron for the current database; returns the pg_cron job id.'),
			('unschedule_checks', 'Removes the pg_cron job of schedule_checks(); false when there was none.'),
			('check_history', 'The checks of one stream since a time, newest first.'),
			('request_history', 'The retrain requests of one stream since a time, newest first.'),
			('purge', 'Deletes history (closed batches, finished checks and requests) older than an interval; keeps everything live references, open batches, waiting checks and open requests need.'),
			('replay', 'What-if: replays a stream''s logged losses under other settings and returns the checks and flags they would have produced; touches no live state.'),
			('approve', 'Approves a proposed retrain request (approval gate, streams with approval => ''manual''): it becomes pending and agents may claim it.'),
			('explain', 'Why a batch was or was not flagged: one (item, value, note) row per step of its check — time range, reference, test, p, adjusted p and threshold, effect, streak, decision, request.'),
			('replay_fleet', 'What-if for many streams at once: replays their history round by round, with Benjamini-Hochberg across the fleet for scheduled settings; a row per stream and a summary row.'),
			('report', 'The fleet as one self-contained HTML document (inline SVG and CSS): save it with psql -XAtc "SELECT mlma.report()" > fleet.html.')
		  ) AS c(name, comment) ON c.name = p.proname
		 WHERE p.pronamespace = '@extschema@'::regnamespace
	LOOP
		EXECUTE format('COMMENT ON FUNCTION %s IS %L', f.sig, f.comment);
	END LOOP;
	-- internal helpers, whatever they are
	FOR f IN
		SELECT p.oid::regprocedure AS sig
		  FROM pg_catalog.pg_proc p
		 WHERE p.pronamespace = '@extschema@'::regnamespace
		   AND p.proname LIKE '\_%'
		   AND pg_catalog.obj_description(p.oid, 'pg_proc') IS NULL
	LOOP
		EXECUTE format('COMMENT ON FUNCTION %s IS %L', f.sig,
					   'internal helper of mlma, not part of its SQL interface');
	END LOOP;
END;
$comments$;

COMMENT ON SCHEMA @extschema@ IS 'mlma: model loss monitoring — drift tests on forecast losses, retrain requests and NOTIFY mlma_retrain';
COMMENT ON TABLE @extschema@.streams IS 'One row per monitored stream: its name, labels, model version and every create_stream option.';
COMMENT ON TABLE @extschema@.stream_state IS 'Internal: the position of each stream''s open batch, model version counter and significance streak.';
COMMENT ON TABLE @extschema@.open_runs IS 'The open batches, stored as runs: consecutive observations of one stream not yet in a closed batch, from seq on.';
COMMENT ON VIEW @extschema@.observations IS 'The open batches: one row per observation not yet in a closed batch.';
COMMENT ON TABLE @extschema@.batches IS 'Closed batches, compact: the losses as float8[] and the times as int4 second offsets from first_at.';
COMMENT ON TABLE @extschema@.reference_batches IS 'The live reference loss batch of each stream (at most one).';
COMMENT ON TABLE @extschema@.checks IS 'One row per check of a closed batch: the test, its statistic, p-value (and BH-adjusted p-value in scheduled mode), effect and decision.';
COMMENT ON TABLE @extschema@.retrain_requests IS 'Retrain requests and their lifecycle (pending, claimed, completed, failed, dismissed).';
COMMENT ON TABLE @extschema@.attachments IS 'Tables watched by attach() and the mapping of their columns.';
COMMENT ON VIEW @extschema@.stream_status IS 'One row per stream: its state (warming, monitoring, drift, retraining, paused), reference and open batch, last check, open request and recent retrains.';
COMMENT ON TABLE @extschema@.check_queue IS 'Closed batches of scheduled streams waiting for run_checks(), drained set-wise.';
COMMENT ON TABLE @extschema@.rounds IS 'One row per run_checks() round: when it ran, the checks it recorded, the requests it raised, the batches it left queued.';
COMMENT ON TABLE @extschema@.reference_history IS 'Every reference that was ever live (warm-up, roll, pin, accepted batch); checks.reference_id points here.';
COMMENT ON VIEW @extschema@.fleet_daily IS 'For dashboards: one row per day — streams, checks, flags, retrains, dismissals, failures, median time to retrain.';
COMMENT ON VIEW @extschema@.batch_series IS 'For dashboards: one row per checked batch — stream, labels, model version, time range, batch mean, reference mean, p, adjusted p, effect, decision.';
COMMENT ON VIEW @extschema@.fleet_status IS 'One row of key metrics for the whole fleet: streams by state, checks and flags in 24 hours, requests, median time to retrain, dismissal rate.';

COMMENT ON COLUMN @extschema@.streams.stream_id IS 'Derived from the name: the first 63 bits of the SHA-256 of its UTF-8 bytes, the same on every node (streams created by 0.1.0 keep the ids of its sequence).';
COMMENT ON COLUMN @extschema@.checks.p_value IS 'p-value of the test (alternative greater: the model got worse).';
COMMENT ON COLUMN @extschema@.checks.p_adjusted IS 'Benjamini-Hochberg adjusted p-value of the scheduled round; NULL for eager checks.';
COMMENT ON COLUMN @extschema@.checks.effect IS 'mean(batch losses) / mean(reference losses).';
COMMENT ON COLUMN @extschema@.checks.significant IS 'p (adjusted in scheduled mode) at or below the threshold and effect at or above min_effect.';
COMMENT ON COLUMN @extschema@.checks.drift IS 'Significant for consecutive batches in a row: a retrain request was raised (unless one was open or the stream paused).';
COMMENT ON COLUMN @extschema@.checks.status IS 'waiting (scheduled, until run_checks), done, or skipped (the model version changed first).';
COMMENT ON COLUMN @extschema@.retrain_requests.reason IS 'drift (a check), manual (request_retrain) or age (max_model_age).';
COMMENT ON COLUMN @extschema@.streams.reference_policy IS 'How the reference follows the data: fixed, rolling, or benchmark (a challenger''s losses on the same observations).';
COMMENT ON COLUMN @extschema@.streams.season_length IS 'Seasonal pairing: each observation is compared with reference losses at the same position modulo season_length.';
