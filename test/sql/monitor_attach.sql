--
-- monitor_attach: the user's own forecast table, watched by a row trigger.
-- Rows become observations on INSERT (and COPY) when they carry both the
-- actual and the prediction, or when an UPDATE fills in the actual later.
-- Unknown zones become streams, created with the attachment's defaults.
--
SET timezone = 'UTC';
\set VERBOSITY terse

CREATE TABLE forecasts (
	id			bigserial PRIMARY KEY,
	zone		text,
	target_at	timestamptz NOT NULL,
	predicted	real,
	actual		numeric
);

SELECT mlma.attach('forecasts', 'zone', 'actual', 'predicted', 'target_at',
				   '{"batch_size": 4, "loss": "squared", "labels": {"source": "forecasts"}}',
				   on_invalid => 'error');
SELECT source, stream_column, actual_column, predicted_column, time_column, defaults
  FROM mlma.attachments;
SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'forecasts'::regclass;

CREATE TEMP VIEW obs AS
SELECT s.name, o.seq, o.observed_at, o.loss
  FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name LIKE 'zone-%'
UNION ALL
SELECT s.name, b.first_seq + u.o - 1, b.first_at + b.offsets[u.o] * interval '1 second', u.l
  FROM mlma.batches b JOIN mlma.streams s USING (stream_id),
	   unnest(b.losses) WITH ORDINALITY AS u(l, o)
 WHERE s.name LIKE 'zone-%';

-- INSERT: rows with an actual are observations; the streams are created
INSERT INTO forecasts (zone, target_at, predicted, actual) VALUES
	('zone-a', '2024-06-01 00:00', 10, 11),
	('zone-a', '2024-06-01 01:00', 10, 12),
	('zone-b', '2024-06-01 00:00', 20, 20.5),
	('zone-b', '2024-06-01 01:00', 20, NULL),	-- not known yet
	(NULL,     '2024-06-01 01:00', 20, 21);		-- no stream: ignored
SELECT * FROM obs ORDER BY name, seq;
SELECT name, batch_size, loss, labels FROM mlma.streams WHERE name LIKE 'zone-%' ORDER BY name;

-- UPDATE that fills in the actual: one observation
UPDATE forecasts SET actual = 23 WHERE zone = 'zone-b' AND target_at = '2024-06-01 01:00';
-- UPDATE of a row that already had its actual: nothing
UPDATE forecasts SET actual = actual + 1 WHERE zone = 'zone-a' AND target_at = '2024-06-01 00:00';
-- UPDATE of other columns: nothing
UPDATE forecasts SET predicted = 1 WHERE zone = 'zone-a';
SELECT * FROM obs ORDER BY name, seq;

-- COPY: the same as INSERT; zone-a closes its first batch (the reference)
COPY forecasts (zone, target_at, predicted, actual) FROM STDIN;
zone-a	2024-06-01 02:00	10	10.5
zone-a	2024-06-01 03:00	10	9
zone-c	2024-06-01 00:00	5	\N
zone-a	2024-06-01 04:00	10	11
\.
SELECT * FROM obs ORDER BY name, seq;
SELECT name, state, batch_no, batch_n, reference_n, round(reference_mean::numeric, 4) AS ref_mean
  FROM mlma.stream_status WHERE name LIKE 'zone-%' ORDER BY name;

-- a batch of large errors from one statement: zone-a drifts
INSERT INTO forecasts (zone, target_at, predicted, actual)
SELECT 'zone-a', '2024-06-01 05:00'::timestamptz + g * interval '1 hour', 10, 10 + 5 + g % 2
  FROM generate_series(0, 3) g;
SELECT name, state, batch_no, batch_n, round(last_p_value::numeric, 6) AS last_p,
	   round(last_effect::numeric, 3) AS last_effect
  FROM mlma.stream_status WHERE name LIKE 'zone-%' ORDER BY name;

-- a row whose loss is undefined fails the user's statement: nothing stored
SELECT mlma.create_stream('zone-ape', batch_size => 2, loss => 'ape') > 0 AS created;
INSERT INTO forecasts (zone, target_at, predicted, actual) VALUES
	('zone-ape', '2024-06-01 00:00', 1, 2),
	('zone-ape', '2024-06-01 01:00', 1, 0);
SELECT count(*) FROM forecasts WHERE zone = 'zone-ape';
SELECT count(*) FROM obs WHERE name = 'zone-ape';

-- the trigger follows renamed columns only through attach: a clear error
ALTER TABLE forecasts RENAME COLUMN actual TO observed;
INSERT INTO forecasts (zone, target_at, predicted, observed) VALUES ('zone-a', '2024-06-02', 1, 1);
ALTER TABLE forecasts RENAME COLUMN observed TO actual;
-- dropping an unrelated column moves nothing
ALTER TABLE forecasts ADD COLUMN note text;
ALTER TABLE forecasts DROP COLUMN note;
INSERT INTO forecasts (zone, target_at, predicted, actual) VALUES ('zone-c', '2024-06-02', 5, 6);
SELECT * FROM obs WHERE name = 'zone-c';

-- attach errors
SELECT mlma.attach('forecasts', 'zone', 'actual', 'predicted');
CREATE TABLE f2 (zone int, t date, p float8, a text, s varchar(20), ts timestamp);
SELECT mlma.attach('f2', 'zone', 'p', 'p');
SELECT mlma.attach('f2', 's', 'a', 'p');
SELECT mlma.attach('f2', 's', 'p', 'p');
SELECT mlma.attach('f2', 's', 'p', 'nope');
SELECT mlma.attach('f2', 's', 'p', 'zone', 't');
SELECT mlma.attach('f2', 's', 'p', 'zone', 'ts', '{"batch_size": 1}');
SELECT mlma.attach('f2', 's', 'p', 'zone', 'ts', '{"batchsize": 10}');
SELECT mlma.attach('f2', 's', 'p', 'zone', 'ts', '{"alpha": "high"}');
SELECT mlma.attach('f2', 's', 'p', 'zone', 'ts', '[]');
CREATE VIEW v2 AS SELECT * FROM f2;
SELECT mlma.attach('v2', 's', 'p', 'zone');
SELECT count(*) FROM mlma.attachments WHERE source = 'f2'::regclass;

-- varchar stream, integer prediction, timestamp without time zone
SELECT mlma.attach('f2', 's', 'p', 'zone', 'ts', '{"batch_size": 3}');
INSERT INTO f2 (s, p, zone, ts) VALUES ('zone-d', 4.5, 4, '2024-06-03 10:00');
SELECT * FROM obs WHERE name = 'zone-d';

-- detach: the trigger and the mapping are gone
SELECT mlma.detach('forecasts');
SELECT mlma.detach('forecasts');
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'forecasts'::regclass AND NOT tgisinternal;
INSERT INTO forecasts (zone, target_at, predicted, actual) VALUES ('zone-a', '2024-06-03', 1, 100);
SELECT count(*) FROM obs WHERE name = 'zone-a';
SELECT source FROM mlma.attachments;

-- a table dropped without detach: its mapping goes with it (event trigger)
CREATE TEMP TABLE f2_oid AS SELECT 'f2'::regclass::oid AS oid;
DROP VIEW v2;
DROP TABLE f2;
SELECT count(*) FROM mlma.attachments a JOIN f2_oid o ON a.source::oid = o.oid;
SELECT count(*) FROM mlma.attachments;
DROP TABLE forecasts;
SELECT mlma.drop_stream(name) FROM mlma.streams WHERE name LIKE 'zone-%';
