-- report(): the indexes behind the dashboard views (functions, views and
-- privileges come from the generated pieces and 90_roles.sql).
CREATE INDEX batches_day_idx
	ON @extschema@.batches (((last_at AT TIME ZONE 'UTC')::date))
	INCLUDE (stream_id, batch_no, last_at);
CREATE INDEX batches_last_at_idx
	ON @extschema@.batches (last_at) INCLUDE (stream_id, batch_no);

