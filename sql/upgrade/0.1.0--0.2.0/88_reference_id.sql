-- 88: the live reference names its reference_history row
-- (reference_batches.reference_id), so that a check finds the id of the
-- reference it was tested against without searching the history.  A
-- reference of 0.1.0 gets the newest history row of its stream (none: NULL,
-- and readers search the history as before).
ALTER TABLE @extschema@.reference_batches ADD COLUMN reference_id bigint;
UPDATE @extschema@.reference_batches r
   SET reference_id = (SELECT max(h.reference_id)
						 FROM @extschema@.reference_history h
						WHERE h.stream_id = r.stream_id);
