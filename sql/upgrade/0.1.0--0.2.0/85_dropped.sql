-- Functions of 0.1.0 that 0.2.0 no longer has.
DROP FUNCTION IF EXISTS @extschema@._set_reference_seqs(bigint, bigint, bigint, text);
