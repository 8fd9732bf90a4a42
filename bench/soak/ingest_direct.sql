-- one transaction of the soak: one loss through observe_loss, logged by
-- the client in the same transaction
\set s random(1, 120)
BEGIN;
SELECT mlma.observe_loss('soak/' || :s, random());
INSERT INTO soak_direct (stream) VALUES ('soak/' || :s);
COMMIT;
