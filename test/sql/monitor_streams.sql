--
-- monitor_streams: create_stream, configure, drop_stream and every
-- validation error (SQLSTATE shown; nothing is stored on error).
--
CREATE FUNCTION pg_temp.try(q text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END;
$$;

CREATE TEMP VIEW cfg AS
SELECT name, batch_size, reference_size, method, alpha, loss, loss_param,
	   model_version, labels, check_mode, reference_policy, min_effect,
	   consecutive, season_length, max_model_age, paused
  FROM mlma.streams WHERE name LIKE 'cfg/%' ORDER BY name;

-- defaults of the contract
SELECT mlma.create_stream('cfg/defaults') > 0 AS created;
-- the id is derived from the name; the configuration version starts at a
-- random value, so that a backend caching a dropped stream of the same name
-- (the same id) does not take the new one for it
SELECT s.stream_id = mlma._derive_stream_id('cfg/defaults') AS derived,
	   st.config_version BETWEEN 1 AND 1073741824 AS in_range
  FROM mlma.streams s JOIN mlma.stream_state st USING (stream_id)
 WHERE s.name = 'cfg/defaults';
CREATE TEMP TABLE cv0 AS
SELECT st.config_version AS v FROM mlma.stream_state st JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'cfg/defaults';
-- every option
SELECT mlma.create_stream('cfg/all', batch_size => 48, reference_size => 96,
	method => 'hac', alpha => 0.01, loss => 'pinball', loss_param => 0.9,
	model_version => '2024-03-01', labels => '{"city": "paris"}',
	check_mode => 'scheduled', reference_policy => 'rolling', min_effect => 1.2,
	consecutive => 2, season_length => 96, max_model_age => '30 days') > 0 AS created;
-- reference_size defaults to season_length for a seasonal stream
SELECT mlma.create_stream('cfg/seasonal', batch_size => 24, season_length => 168,
						  method => 'dm') > 0 AS created;
SELECT * FROM cfg;
SELECT s.name, st.open_start_seq, st.batch_no, st.version_no, st.streak
  FROM mlma.stream_state st JOIN mlma.streams s USING (stream_id)
 WHERE s.name LIKE 'cfg/%' ORDER BY s.name;
SELECT name, state FROM mlma.stream_status WHERE name LIKE 'cfg/%' ORDER BY name;

-- bad names
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/defaults')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream(NULL)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream(repeat('x', 256))$$);
SELECT pg_temp.try($$SELECT mlma.create_stream(repeat('é', 255))$$);
SELECT mlma.drop_stream(repeat('é', 255));

-- bad options
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', batch_size => 1)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', batch_size => NULL)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', reference_size => 1)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', method => 'ttest')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', method => 'dm', batch_size => 24, reference_size => 48)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', alpha => 0)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', alpha => 1)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', alpha => 'NaN')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', loss => 'rmse')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', loss => NULL)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', loss => 'pinball')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', loss => 'pinball', loss_param => 1)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', loss => 'huber', loss_param => 0)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', loss => 'absolute', loss_param => 2)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', loss => 'huber', loss_param => 'NaN')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', check_mode => 'lazy')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', reference_policy => 'sliding')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', min_effect => -1)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', min_effect => 'NaN')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', consecutive => 0)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', season_length => 1)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', season_length => 96, reference_size => 48)$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', max_model_age => '-1 day')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', model_version => '')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', labels => '[1, 2]')$$);
SELECT pg_temp.try($$SELECT mlma.create_stream('cfg/bad', labels => NULL)$$);
-- nothing was stored
SELECT count(*) FROM mlma.streams WHERE name = 'cfg/bad';
SELECT count(*) FROM mlma.stream_state st
 WHERE NOT EXISTS (SELECT FROM mlma.streams s WHERE s.stream_id = st.stream_id);

-- configure changes only what is given
SELECT mlma.configure('cfg/defaults', alpha => 0.01, labels => '{"team": "ml"}');
SELECT mlma.configure('cfg/defaults', batch_size => 24, method => 'mann_whitney',
					  consecutive => 3, max_model_age => '7 days');
SELECT mlma.configure('cfg/all', loss => 'squared');	-- drops pinball's parameter
SELECT mlma.configure('cfg/all', reference_policy => 'fixed', check_mode => 'eager');
SELECT * FROM cfg;
-- configure bumps the configuration version (the hot path cache key)
SELECT st.config_version - cv0.v AS config_changes
  FROM mlma.stream_state st JOIN mlma.streams s USING (stream_id), cv0
 WHERE s.name = 'cfg/defaults';
-- configure validates the merged options and stores nothing on error
SELECT pg_temp.try($$SELECT mlma.configure('cfg/defaults', alpha => 2)$$);
SELECT pg_temp.try($$SELECT mlma.configure('cfg/defaults', method => 'dm')$$);
SELECT pg_temp.try($$SELECT mlma.configure('cfg/seasonal', reference_size => 100)$$);
SELECT pg_temp.try($$SELECT mlma.configure('cfg/all', loss_param => 0.5)$$);
SELECT pg_temp.try($$SELECT mlma.configure('cfg/nope', alpha => 0.1)$$);
SELECT pg_temp.try($$SELECT mlma.configure(NULL, alpha => 0.1)$$);
SELECT * FROM cfg;
-- a new model_version through configure starts a new reference
SELECT mlma.configure('cfg/defaults', model_version => 'v7');
SELECT s.name, s.model_version, st.version_no, st.config_version - cv0.v AS config_changes
  FROM mlma.stream_state st JOIN mlma.streams s USING (stream_id), cv0
 WHERE s.name = 'cfg/defaults';

-- observe: bad input is refused with a clear error, nothing is stored
SELECT pg_temp.try($$SELECT mlma.observe('cfg/nope', 1, 2)$$);
SELECT pg_temp.try($$SELECT mlma.observe_loss('cfg/nope', 1)$$);
SELECT pg_temp.try($$SELECT mlma.observe(NULL, 1, 2)$$);
SELECT pg_temp.try($$SELECT mlma.observe('cfg/defaults', NULL, 2)$$);
SELECT pg_temp.try($$SELECT mlma.observe('cfg/defaults', 1, NULL)$$);
SELECT pg_temp.try($$SELECT mlma.observe('cfg/defaults', 'NaN', 2)$$);
SELECT pg_temp.try($$SELECT mlma.observe('cfg/defaults', 1, 'Infinity')$$);
SELECT pg_temp.try($$SELECT mlma.observe('cfg/defaults', 1, 2, NULL)$$);
SELECT pg_temp.try($$SELECT mlma.observe('cfg/defaults', 1, 2, 'infinity')$$);
SELECT pg_temp.try($$SELECT mlma.observe_loss('cfg/defaults', NULL)$$);
SELECT pg_temp.try($$SELECT mlma.observe_loss('cfg/defaults', 'NaN')$$);
SELECT pg_temp.try($$SELECT mlma.observe_loss('cfg/defaults', '-Infinity')$$);
SELECT pg_temp.try($$SELECT mlma.observe_loss('cfg/defaults', -0.5)$$);
SELECT mlma.create_stream('cfg/ape', loss => 'ape', batch_size => 2) > 0 AS created;
SELECT pg_temp.try($$SELECT mlma.observe('cfg/ape', 0, 2)$$);
SELECT mlma.create_stream('cfg/logloss', loss => 'logloss', batch_size => 2) > 0 AS created;
SELECT pg_temp.try($$SELECT mlma.observe('cfg/logloss', 0.5, 0.2)$$);
SELECT count(*) FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name LIKE 'cfg/%';
SELECT name, observations, batch_n FROM mlma.stream_status
 WHERE name LIKE 'cfg/%' ORDER BY name;

-- the loss of the stream's kind is what is recorded
SELECT mlma.create_stream('cfg/huber', loss => 'huber', loss_param => 1, batch_size => 10) > 0;
SELECT mlma.observe('cfg/huber', 10, 10.5), mlma.observe('cfg/huber', 10, 13),
	   mlma.observe_loss('cfg/huber', 0.25);
SELECT o.seq, o.loss,
	   o.loss = CASE o.seq WHEN 0 THEN mlma.loss('huber', 10, 10.5, 1)
						   WHEN 1 THEN mlma.loss('huber', 10, 13, 1)
						   ELSE 0.25 END AS expected
  FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'cfg/huber' ORDER BY o.seq;

-- a configure that changes the loss is seen at once by this session's cache
SELECT mlma.configure('cfg/huber', loss => 'squared');
SELECT mlma.observe('cfg/huber', 10, 13);
SELECT o.seq, o.loss FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'cfg/huber' ORDER BY o.seq;

-- drop_stream removes everything of the stream
SELECT pg_temp.try($$SELECT mlma.drop_stream('cfg/nope')$$);
SELECT mlma.drop_stream(name) FROM mlma.streams WHERE name LIKE 'cfg/%' ORDER BY name;
SELECT count(*) FROM mlma.observations o
 WHERE NOT EXISTS (SELECT FROM mlma.streams s WHERE s.stream_id = o.stream_id);
SELECT count(*) FROM mlma.stream_state st
 WHERE NOT EXISTS (SELECT FROM mlma.streams s WHERE s.stream_id = st.stream_id);
-- a dropped name can be created again, and observed at once
SELECT mlma.create_stream('cfg/huber', batch_size => 10) > 0 AS created;
SELECT mlma.observe('cfg/huber', 10, 13);
SELECT o.seq, o.loss FROM mlma.observations o JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'cfg/huber' ORDER BY o.seq;
SELECT mlma.drop_stream('cfg/huber');

-- observation times far apart in one batch: offsets are clamped, the
-- batch still closes
SELECT mlma.create_stream('cfg/times', batch_size => 3) > 0 AS created;
SELECT mlma.observe_loss('cfg/times', 1, t)
  FROM unnest(ARRAY['2000-01-01', '1800-01-01', '2300-01-01']::timestamptz[]) t;
SELECT b.first_at, b.offsets FROM mlma.batches b JOIN mlma.streams s USING (stream_id)
 WHERE s.name = 'cfg/times';
SELECT mlma.drop_stream('cfg/times');
