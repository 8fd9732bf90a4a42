-- bytes per retained observation after 1 000 000 observations
-- (1 000 streams x 1 000 observations, batch 96, eager Welch checks)
SELECT count(mlma.create_stream('store/zone-' || z, batch_size => 96))
  FROM generate_series(1, 1000) z;
DO $$
BEGIN
	FOR chunk IN 0 .. 9 LOOP
		PERFORM count(mlma.observe_loss('store/zone-' || z, 1 + random(),
						'2024-01-01'::timestamptz + (chunk * 100 + g) * interval '15 minutes'))
		   FROM generate_series(1, 100) g, generate_series(1, 1000) z;
		COMMIT;
	END LOOP;
END;
$$;
VACUUM ANALYZE mlma.batches, mlma.observations, mlma.checks, mlma.reference_batches;
SELECT (SELECT sum(cardinality(losses)) FROM mlma.batches) AS closed_obs,
	   (SELECT count(*) FROM mlma.observations) AS open_obs,
	   (SELECT count(*) FROM mlma.batches) AS batches,
	   (SELECT count(*) FROM mlma.checks) AS checks,
	   pg_total_relation_size('mlma.batches') AS batches_bytes,
	   pg_total_relation_size('mlma.observations') AS open_bytes,
	   pg_total_relation_size('mlma.checks') AS checks_bytes,
	   round(pg_total_relation_size('mlma.batches')::numeric
			 / (SELECT sum(cardinality(losses)) FROM mlma.batches), 2) AS bytes_per_closed_obs,
	   round((pg_total_relation_size('mlma.batches') + pg_total_relation_size('mlma.observations')
			  + pg_total_relation_size('mlma.checks') + pg_total_relation_size('mlma.reference_batches'))::numeric
			 / ((SELECT sum(cardinality(losses)) FROM mlma.batches)
				+ (SELECT count(*) FROM mlma.observations)), 2) AS bytes_per_obs_all_tables;
