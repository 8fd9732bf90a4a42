-- mlma bulk benchmark: 1 000 streams, batch 96, eager Welch, references
-- warmed.  bulk_plain and bulk_monitored are identical; only bulk_monitored
-- is attached (bulk_rowtrigger: see below).
CREATE TABLE bulk_plain (
	zone		text NOT NULL,
	target_at	timestamptz NOT NULL,
	predicted	float8,
	actual		float8
);
CREATE TABLE bulk_monitored (LIKE bulk_plain);
-- the same mapping through the row trigger of 0.1.0, for comparison
CREATE TABLE bulk_rowtrigger (LIKE bulk_plain);
CREATE TRIGGER mlma_observe AFTER INSERT OR UPDATE ON bulk_rowtrigger
	FOR EACH ROW EXECUTE FUNCTION mlma._observe_trigger('zone', 'actual',
		'predicted', 'target_at', '{"batch_size": 96, "method": "welch"}');
SELECT count(mlma.create_stream('bulk/zone-' || z, batch_size => 96, method => 'welch'))
  FROM generate_series(1, 1000) z;
-- the row trigger's table writes 1 000 streams of its own: the open
-- observations it leaves (a row each) would otherwise be taken out by the
-- next monitored statement, and timed with it
SELECT count(mlma.create_stream('bulk/rt-zone-' || z, batch_size => 96, method => 'welch'))
  FROM generate_series(1, 1000) z;
SELECT mlma.attach('bulk_monitored', 'zone', 'actual', 'predicted', 'target_at',
				   '{"batch_size": 96, "method": "welch"}');
-- one batch per stream becomes its reference
INSERT INTO bulk_monitored
SELECT prefix || z, now(), 100, 100 + random()
  FROM unnest(ARRAY['bulk/zone-', 'bulk/rt-zone-']) prefix,
	   generate_series(1, 1000) z, generate_series(1, 96) g;
TRUNCATE bulk_monitored;
-- the rows: 300 000 over 1 000 streams
CREATE TABLE bulk_rows AS
SELECT 'bulk/zone-' || (g % 1000 + 1) AS zone, now() AS target_at,
	   100::float8 AS predicted, 100 + random() AS actual
  FROM generate_series(1, 300000) g;
COPY bulk_rows TO '/tmp/mlma_bulk_rows.csv' WITH (FORMAT csv);
-- the same rows for the row trigger's streams
CREATE TABLE bulk_rows_rt AS
SELECT replace(zone, 'bulk/zone-', 'bulk/rt-zone-') AS zone, target_at, predicted, actual
  FROM bulk_rows;
COPY bulk_rows_rt TO '/tmp/mlma_bulk_rows_rt.csv' WITH (FORMAT csv);
VACUUM ANALYZE;
