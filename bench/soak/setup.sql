-- soak fixtures: 100 eager streams and 20 scheduled ones (checked by the
-- run_checks loop), an attached table and the client's log of observe_loss
CREATE EXTENSION IF NOT EXISTS mlma;
SELECT mlma.create_stream('soak/' || i, batch_size => 20,
						  check_mode => CASE WHEN i > 100 THEN 'scheduled' ELSE 'eager' END)
  FROM generate_series(1, 120) i;
CREATE TABLE soak_preds (id bigserial PRIMARY KEY, stream text NOT NULL,
						 actual float8, predicted float8);
SELECT mlma.attach('soak_preds', 'stream', 'actual', 'predicted');
CREATE TABLE soak_direct (id bigserial PRIMARY KEY, stream text NOT NULL);
