-- schema.sql -- the delivery platform of the mlma demo, as its own schema.
--
-- The platform keeps, per delivery zone, a slot-of-week demand profile (the
-- forecasting model) and writes its forecasts into an ordinary table,
-- demo.orders_forecast, which mlma watches through mlma.attach().  Forecasts
-- are inserted a day ahead; the actual order count of a slot is filled in by
-- an UPDATE once the slot is over.
--
-- The model of a zone, fitted at midnight F from the orders before F (as
-- rolled up every night into demo.zone_days):
--   profile(sow)  mean orders of slot-of-week sow over the 14 days before F,
--                 smoothed over the neighbouring slots (sow-1, sow, sow+1):
--                 6 counts per value;
--   level         orders of the last day before F divided by the mean of the
--                 same weekday one and two weeks earlier: how far the zone
--                 has moved away from the 2-week average lately;
--   forecast(t) = greatest(profile(sow(t)) * level, 0.05).
-- The same fit serves three policies held side by side ('mlma': refit when
-- mlma flags the zone, 'never': fitted once at go-live, 'daily': every zone
-- refitted every midnight), so the comparison is between retrain policies
-- only.

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS demo CASCADE;
CREATE SCHEMA demo;

-- Slot of week of a timestamp: 0 = Monday 00:00 UTC, 671 = Sunday 23:45.
CREATE FUNCTION demo.sow(t timestamptz) RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ((floor(extract(epoch FROM t))::bigint - 1704067200) / 900 % 672)::int;

-- What will happen: the order counts of every zone and day, drawn by world.py.
-- Only the replay (simulate.py) reads it; the models never do.
CREATE TABLE demo.world (
	day			date NOT NULL,
	zone		text NOT NULL,
	orders		int[] NOT NULL,			-- 96 slots
	PRIMARY KEY (day, zone)
);

CREATE TABLE demo.zones (
	zone		text PRIMARY KEY,
	zone_kind	text NOT NULL,			-- residential | mixed | business
	base		float8 NOT NULL			-- mean orders per day
);

-- The injected breaks (ground truth for detection delay and false alarms).
CREATE TABLE demo.breaks (
	zone		text PRIMARY KEY,
	kind		text NOT NULL,
	break_at	timestamptz NOT NULL,
	ends_at		timestamptz,			-- road closures only
	factor		float8 NOT NULL
);

-- The forecast table of the platform: the one mlma.attach() watches.
CREATE TABLE demo.orders_forecast (
	zone		text NOT NULL,
	slot_at		timestamptz NOT NULL,
	predicted	float8 NOT NULL,
	actual		float8,
	model_version text NOT NULL,
	PRIMARY KEY (zone, slot_at)
) WITH (fillfactor = 70);	-- room for the UPDATE that fills in actual (HOT)
CREATE INDEX orders_forecast_slot_idx ON demo.orders_forecast (slot_at);

-- The second mlma setup, champion against challenger: the forecasts of the
-- 'mlma_bm' policy (same model, retrained when mlma flags stream
-- 'bm/<zone>', whose reference_policy is 'benchmark') and of the challenger,
-- a cheap model refitted every midnight (simulate.py: the trailing 2-week
-- slot-of-week profile corrected by how yesterday's orders, hour by hour,
-- compared with what that profile expected).  Both are recorded with
-- mlma.observe_many(streams, actuals, predicted, slot_ats, benchmarks => challengers).
CREATE UNLOGGED TABLE demo.bm_forecast (
	zone		text NOT NULL,
	slot_at		timestamptz NOT NULL,
	predicted	float8 NOT NULL,
	model_version text NOT NULL,
	PRIMARY KEY (zone, slot_at)
);
CREATE UNLOGGED TABLE demo.challenger_forecast (
	zone		text NOT NULL,
	slot_at		timestamptz NOT NULL,
	predicted	float8 NOT NULL,
	PRIMARY KEY (zone, slot_at)
);
-- the hourly read of both by slot range (simulate.py, realize)
CREATE INDEX bm_forecast_slot_idx ON demo.bm_forecast (slot_at);
CREATE INDEX challenger_forecast_slot_idx ON demo.challenger_forecast (slot_at);

-- The order history the models learn from: one row per zone and day, the
-- 96 slot counts as an array, rolled up from demo.orders_forecast every
-- night (and loaded for the days before go-live).
CREATE TABLE demo.zone_days (
	zone		text NOT NULL,
	day			date NOT NULL,
	orders		float8[] NOT NULL CHECK (cardinality(orders) = 96),
	PRIMARY KEY (zone, day)
);

-- The zone models of every policy: profile[sow + 1] is the profile value of
-- slot of week sow (NULL where a one-day model was not fitted).
CREATE TABLE demo.model (
	policy		text NOT NULL,
	zone		text NOT NULL,
	version		int NOT NULL,
	fitted_at	timestamptz NOT NULL,
	level		float8 NOT NULL,
	profile		float8[] NOT NULL,
	PRIMARY KEY (policy, zone)
);
-- 672 values fit in a page: kept inline, a forecast reads them without
-- detoasting the array once per slot.
ALTER TABLE demo.model ALTER COLUMN profile SET STORAGE PLAIN;

-- The periodic baselines' absolute errors, per zone and day: their
-- forecasts of a day are computed from their models once the day's actuals
-- are in (the models change only at midnight), so no forecast row is kept.
CREATE UNLOGGED TABLE demo.baseline_error (
	policy		text NOT NULL,
	zone		text NOT NULL,
	day			date NOT NULL,
	abs_error	float8 NOT NULL,
	n			int NOT NULL,
	PRIMARY KEY (policy, zone, day)
);

-- Every fit after go-live, of every policy.
CREATE TABLE demo.retrains (
	policy		text NOT NULL,
	zone		text NOT NULL,
	fitted_at	timestamptz NOT NULL,
	version		int NOT NULL
);

-- Retrain requests the replay saw, with the simulated time it saw them at.
CREATE TABLE demo.flags (
	request_id	bigint PRIMARY KEY,
	zone		text NOT NULL,
	reason		text NOT NULL,
	seen_at		timestamptz NOT NULL	-- simulated time
);

-- Rolls the realized slots of `day` up into demo.zone_days (zones whose 96
-- slots all have their actual).
CREATE FUNCTION demo.roll_up(p_day date) RETURNS int
LANGUAGE sql AS $$
	WITH d AS (
		INSERT INTO demo.zone_days (zone, day, orders)
		SELECT zone, p_day, array_agg(actual ORDER BY slot_at)
		FROM demo.orders_forecast
		WHERE slot_at >= p_day::timestamp AT TIME ZONE 'UTC'
		  AND slot_at < (p_day + 1)::timestamp AT TIME ZONE 'UTC'
		GROUP BY zone
		HAVING count(actual) = 96
		ON CONFLICT (zone, day) DO UPDATE SET orders = excluded.orders
		RETURNING 1
	)
	SELECT count(*)::int FROM d
$$;

-- Fits the model of `zones` (NULL: every zone) for `policy` at midnight
-- `at`, from the 15 days of orders before it.  With a[i][k] the count of
-- slot k of day i (i = 1 is 15 days back, 15 the day before `at`), the days
-- 2..15 are the 14-day window, and the profile value of slot of week s is
-- the mean of its 6 counts in the window (slots s-1, s, s+1, two weeks).
-- `horizon` (days) limits the profile to the slots of the next `horizon`
-- days: a model refitted every day only forecasts one day.  Returns the
-- number of zones fitted; zones without 15 full days are left alone.
CREATE FUNCTION demo.fit(p_policy text, p_zones text[], p_at timestamptz,
						 p_horizon int DEFAULT 7)
RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
	nfit int;
	first_sow int := demo.sow(p_at);
	nsow int := least(greatest(p_horizon, 1), 7) * 96;
	last_day date := (p_at AT TIME ZONE 'UTC')::date - 1;
	-- the zones as a list either way: a condition "p_zones IS NULL OR ..."
	-- would keep the (generic) plans of a one-zone refit off the indexes
	v_zones text[] := coalesce(p_zones, ARRAY(SELECT zone FROM demo.zones));
BEGIN
	IF first_sow % 96 <> 0 THEN
		RAISE EXCEPTION 'models are fitted at midnight UTC, not at %', p_at;
	END IF;

	WITH z AS (
		SELECT zone, array_agg(orders ORDER BY day) AS a
		FROM demo.zone_days
		WHERE day BETWEEN last_day - 14 AND last_day
		  AND zone = ANY (v_zones)
		GROUP BY zone
		HAVING count(*) = 15
	),
	f AS (
		SELECT z.zone,
			   (SELECT array_agg(CASE WHEN j < nsow THEN (
						 a[2 + j0 / 96][1 + j0 % 96] + a[2 + jm / 96][1 + jm % 96]
						 + a[2 + jp / 96][1 + jp % 96] + a[9 + j0 / 96][1 + j0 % 96]
						 + a[9 + jm / 96][1 + jm % 96] + a[9 + jp / 96][1 + jp % 96]
					 ) / 6.0 END ORDER BY s)
				FROM generate_series(0, 671) AS s,
					 LATERAL (SELECT (s - first_sow + 672) % 672) AS o(j),
					 LATERAL (SELECT j, (j + 671) % 672, (j + 1) % 672) AS w(j0, jm, jp)
			   ) AS profile,
			   (SELECT sum(x) FROM unnest(a[15:15][1:96]) AS x) AS d1,
			   (SELECT sum(x) FROM unnest(a[8:8][1:96]) AS x) AS d8,
			   (SELECT sum(x) FROM unnest(a[1:1][1:96]) AS x) AS d15
		FROM z
	)
	INSERT INTO demo.model AS m (policy, zone, version, fitted_at, level, profile)
	SELECT p_policy, zone, 1, p_at,
		   least(greatest(coalesce(d1 / nullif((d8 + d15) / 2, 0), 1.0), 0.05), 20.0),
		   profile
	FROM f
	ON CONFLICT (policy, zone) DO UPDATE
		SET version = m.version + 1, fitted_at = excluded.fitted_at,
			level = excluded.level, profile = excluded.profile;
	GET DIAGNOSTICS nfit = ROW_COUNT;

	INSERT INTO demo.retrains (policy, zone, fitted_at, version)
	SELECT policy, zone, fitted_at, version
	FROM demo.model
	WHERE policy = p_policy AND fitted_at = p_at AND version > 1
	  AND zone = ANY (v_zones);
	RETURN nfit;
END
$$;

-- Copies the models of one policy to another (the policies start alike).
CREATE FUNCTION demo.copy_model(p_from text, p_to text) RETURNS void
LANGUAGE sql AS $$
	DELETE FROM demo.model WHERE policy = p_to;
	INSERT INTO demo.model
	SELECT p_to, zone, version, fitted_at, level, profile
	FROM demo.model WHERE policy = p_from;
$$;

-- Forecasts of `policy` for the slots [from, to) (at most a week): the
-- model's profile from the slot of week of `from` on, read as one slice of
-- the profile followed by itself (the week wraps around), one row per slot.
CREATE FUNCTION demo.forecast(p_policy text, p_from timestamptz,
							  p_to timestamptz, p_zone text DEFAULT NULL)
RETURNS TABLE (zone text, slot_at timestamptz, predicted float8, version int)
LANGUAGE sql STABLE AS $$
	SELECT m.zone, p_from + (u.k - 1) * interval '15 minutes',
		   greatest(u.v * m.level, 0.05), m.version
	FROM demo.model m
	CROSS JOIN LATERAL unnest((m.profile || m.profile)
			[demo.sow(p_from) + 1 :
			 demo.sow(p_from) + (extract(epoch FROM p_to - p_from) / 900)::int])
		WITH ORDINALITY AS u(v, k)
	WHERE m.policy = p_policy AND (p_zone IS NULL OR m.zone = p_zone)
$$;

-- The retrain the agent runs for a flagged stream: refit the zone's profile
-- at the end of the last day rolled up, re-forecast its slots not yet
-- realized, return the new model version ('v2', 'v3', ...).  Stream
-- 'zone-042' is the 'mlma' policy's zone-042, 'bm/zone-042' the 'mlma_bm'
-- policy's.
CREATE FUNCTION demo.retrain(p_stream text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	t timestamptz;
	v int;
	p_zone text := regexp_replace(p_stream, '^bm/', '');
BEGIN
	IF p_stream LIKE 'bm/%' THEN
		SELECT (max(day) + 1)::timestamp AT TIME ZONE 'UTC' INTO t
		FROM demo.zone_days WHERE zone = p_zone;
		IF t IS NULL OR demo.fit('mlma_bm', ARRAY[p_zone], t) <> 1 THEN
			RAISE EXCEPTION 'zone % has less than 15 days of orders', p_zone;
		END IF;
		SELECT version INTO v FROM demo.model WHERE policy = 'mlma_bm' AND zone = p_zone;
		UPDATE demo.bm_forecast f
		SET predicted = n.predicted, model_version = 'v' || n.version
		FROM demo.forecast('mlma_bm', t, t + interval '2 days', p_zone) n
		WHERE f.zone = n.zone AND f.slot_at = n.slot_at;
		RETURN 'v' || v;
	END IF;
	SELECT (max(day) + 1)::timestamp AT TIME ZONE 'UTC' INTO t
	FROM demo.zone_days WHERE zone = p_zone;
	IF t IS NULL THEN
		RAISE EXCEPTION 'unknown zone: %', p_zone;
	END IF;
	IF demo.fit('mlma', ARRAY[p_zone], t) <> 1 THEN
		RAISE EXCEPTION 'zone % has less than 15 days of orders', p_zone;
	END IF;
	SELECT version INTO v FROM demo.model WHERE policy = 'mlma' AND zone = p_zone;

	UPDATE demo.orders_forecast f
	SET predicted = n.predicted, model_version = 'v' || n.version
	FROM demo.forecast('mlma', t, t + interval '2 days', p_zone) n
	WHERE f.zone = n.zone AND f.slot_at = n.slot_at AND f.actual IS NULL;
	RETURN 'v' || v;
END
$$;
