-- Benchmark values through an attached table: attach(..., benchmark_column)
-- on every ingest path — a single-row INSERT (the row path), a multi-row
-- INSERT and a COPY (the set-based statement path) and the UPDATE that fills
-- in actual — and the benchmark policy's checks of the batches they close;
-- a row of a benchmark stream without a benchmark value follows on_invalid.
BEGIN;
SELECT plan(12);

CREATE TABLE fc (zone text, slot timestamptz, predicted float8, shadow float8,
				 actual float8);
SELECT lives_ok($$SELECT mlma.attach('fc', 'zone', 'actual', 'predicted', 'slot',
	defaults => '{"batch_size": 4, "method": "dm", "loss": "absolute",
				  "reference_policy": "benchmark"}',
	benchmark_column => 'shadow')$$,
	'attach with a benchmark column');
SELECT is((SELECT benchmark_column::text FROM mlma.attachments WHERE source = 'fc'::regclass),
		  'shadow', 'the mapping keeps the benchmark column');

-- a single-row INSERT: the row path
INSERT INTO fc VALUES ('z/1', '2024-01-01 00:00', 10, 11, 12);
SELECT results_eq(
	$$SELECT o.loss, o.benchmark_loss FROM mlma.observations o
		JOIN mlma.streams s USING (stream_id) WHERE s.name = 'z/1'$$,
	$$VALUES (2::float8, 1::float8)$$,
	'a single-row INSERT records the loss and the benchmark''s loss');

-- a multi-row INSERT: the statement path closes the first batch
INSERT INTO fc
SELECT 'z/1', '2024-01-01'::timestamptz + i * interval '1 hour', 10, 10.5, 10 + i % 2
  FROM generate_series(1, 3) i;
SELECT results_eq(
	$$SELECT b.losses, b.benchmark_losses FROM mlma.batches b
		JOIN mlma.streams s USING (stream_id) WHERE s.name = 'z/1' AND b.batch_no = 1$$,
	$$VALUES ('{2,1,0,1}'::float8[], '{1,0.5,0.5,0.5}'::float8[])$$,
	'a multi-row INSERT stores the benchmark losses with the batch');
SELECT is((SELECT c.status FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'z/1' AND c.batch_no = 1),
		  'done', 'the first batch of a benchmark stream is checked at once (no warm-up)');
SELECT is((SELECT round(c.reference_mean::numeric, 6) FROM mlma.checks c
			JOIN mlma.streams s USING (stream_id) WHERE s.name = 'z/1' AND c.batch_no = 1),
		  0.625, 'the check''s reference mean is the benchmark''s mean loss');

-- COPY: the statement path too
COPY fc FROM PROGRAM 'printf "z/2\t2024-01-02 00:00\t5\t5\t6\nz/2\t2024-01-02 01:00\t5\t5\t7\nz/2\t2024-01-02 02:00\t5\t5\t8\nz/2\t2024-01-02 03:00\t5\t5\t9\n"';
SELECT results_eq(
	$$SELECT b.losses, b.benchmark_losses FROM mlma.batches b
		JOIN mlma.streams s USING (stream_id) WHERE s.name = 'z/2' AND b.batch_no = 1$$,
	$$VALUES ('{1,2,3,4}'::float8[], '{1,2,3,4}'::float8[])$$,
	'COPY stores the benchmark losses');

-- the UPDATE that fills in actual
INSERT INTO fc SELECT 'z/3', '2024-01-03'::timestamptz + i * interval '1 hour', 20, 21, NULL
  FROM generate_series(0, 3) i;
SELECT is((SELECT count(*) FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'z/3'), 0::bigint, 'rows without actual are no observations yet');
UPDATE fc SET actual = 24 WHERE zone = 'z/3';
SELECT results_eq(
	$$SELECT b.losses, b.benchmark_losses FROM mlma.batches b
		JOIN mlma.streams s USING (stream_id) WHERE s.name = 'z/3' AND b.batch_no = 1$$,
	$$VALUES ('{4,4,4,4}'::float8[], '{3,3,3,3}'::float8[])$$,
	'the UPDATE that fills in actual records the benchmark losses');
SELECT is((SELECT round(c.effect::numeric, 6) FROM mlma.checks c JOIN mlma.streams s USING (stream_id)
			WHERE s.name = 'z/3' AND c.batch_no = 1),
		  1.333333, 'effect = mean(model loss) / mean(benchmark loss)');

-- a benchmark stream's row without a benchmark: stored in the table, skipped
INSERT INTO fc VALUES ('z/1', '2024-01-01 05:00', 10, NULL, 12);
SELECT is((SELECT count(*) FROM fc WHERE zone = 'z/1'), 5::bigint,
		  'the row without a benchmark value is stored in the user''s table');
SELECT ok((SELECT skipped = 1 AND last_skip_reason LIKE '%benchmark%'
			 FROM mlma.stream_status WHERE name = 'z/1'),
		  'and skipped under on_invalid ''skip'', with the reason');

SELECT * FROM finish();
ROLLBACK;
