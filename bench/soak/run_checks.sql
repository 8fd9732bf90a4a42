-- the scheduled round, as pg_cron would run it, but every half second
SELECT count(*) FROM mlma.run_checks();
\sleep 500 ms
