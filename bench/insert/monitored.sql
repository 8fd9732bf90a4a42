\set z random(1, 1000)
INSERT INTO bench_monitored VALUES ('bench/zone-' || :z, now(), 100, 100 + random());
