-- mlma: the fleet as a picture -- report() and the views for dashboards
--
-- Time here is the time of the data: a batch is dated by its last
-- observation, a check by its batch, a request by the batch it flagged (its
-- requested_at when it has no check: manual and age requests).  A live fleet
-- writes observations as they happen, so this is the wall clock; a replayed
-- or back-filled fleet is shown on its own calendar.  Durations of the
-- engineer's loop (time to retrain, oldest waiting check) are wall-clock.
-- docs/report.md describes the page.  Privileges: 90_roles.sql.

-- Every batch dated by its day (UTC) and by its last observation: the keys of
-- fleet_daily and batch_series queries over a day or a time range, and of
-- report()'s period.  They cover the batch's key, so that finding the checks
-- of a period reads the index only, not the wide rows of losses.
CREATE INDEX batches_day_idx
	ON @extschema@.batches (((last_at AT TIME ZONE 'UTC')::date))
	INCLUDE (stream_id, batch_no, last_at);
CREATE INDEX batches_last_at_idx
	ON @extschema@.batches (last_at) INCLUDE (stream_id, batch_no);

-- One row per day of data (UTC): streams checked, checks, flags (checks that
-- decided drift), retrain requests completed, dismissed and failed, and the
-- median wall-clock time from request to completed retrain of that day's
-- requests.
CREATE VIEW @extschema@.fleet_daily AS
SELECT e.day,
	   count(DISTINCT e.stream_id) FILTER (WHERE e.kind = 'check') AS streams,
	   count(*) FILTER (WHERE e.kind = 'check') AS checks,
	   count(*) FILTER (WHERE e.kind = 'check' AND e.flag) AS flags,
	   count(*) FILTER (WHERE e.kind = 'completed') AS retrains,
	   count(*) FILTER (WHERE e.kind = 'dismissed') AS dismissals,
	   count(*) FILTER (WHERE e.kind = 'failed') AS failures,
	   percentile_cont(0.5) WITHIN GROUP (ORDER BY e.wait)
		   FILTER (WHERE e.kind = 'completed') AS median_time_to_retrain
  FROM (SELECT (b.last_at AT TIME ZONE 'UTC')::date AS day, c.stream_id,
			   'check'::text AS kind, c.drift AS flag, NULL::interval AS wait
		  FROM @extschema@.checks c
		  JOIN @extschema@.batches b USING (stream_id, batch_no)
		 WHERE c.status = 'done'
		UNION ALL
		SELECT (coalesce(b.last_at, r.requested_at) AT TIME ZONE 'UTC')::date,
			   r.stream_id, r.status, NULL, r.finished_at - r.requested_at
		  FROM @extschema@.retrain_requests r
		  LEFT JOIN @extschema@.checks c ON c.check_id = r.check_id
		  LEFT JOIN @extschema@.batches b
				 ON b.stream_id = c.stream_id AND b.batch_no = c.batch_no
		 WHERE r.status IN ('completed', 'dismissed', 'failed')) e
 GROUP BY e.day;

-- One row per closed batch: its stream, model version, time range, mean
-- loss, the reference mean it was tested against (the benchmark's mean for
-- a benchmark check), p-value, adjusted p-value, effect and the decision:
-- reference | partial (batches without a check), waiting | skipped, drift |
-- significant (not yet `consecutive` in a row) | pass.
CREATE VIEW @extschema@.batch_series AS
SELECT b.stream_id,
	   s.name AS stream,
	   s.labels,
	   b.model_version,
	   b.batch_no,
	   b.first_at,
	   b.last_at,
	   coalesce(c.batch_mean,
				@extschema@._mean(b.losses)) AS batch_mean,
	   c.reference_mean,
	   c.p_value,
	   c.p_adjusted,
	   c.effect,
	   CASE WHEN c.status IN ('waiting', 'skipped') THEN c.status
			WHEN c.drift THEN 'drift'
			WHEN c.significant THEN 'significant'
			WHEN c.check_id IS NOT NULL THEN 'pass'
			ELSE b.role END AS decision
  FROM @extschema@.batches b
  JOIN @extschema@.streams s USING (stream_id)
  LEFT JOIN @extschema@.checks c USING (stream_id, batch_no);

-- The one escaping function of the report: every string that comes from the
-- database goes through it before it enters the page.
CREATE FUNCTION @extschema@._html(t text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
	SELECT pg_catalog.replace(pg_catalog.replace(pg_catalog.replace(
		pg_catalog.replace(pg_catalog.replace(coalesce(t, ''),
		'&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;')
$$;

-- Labels for people: key=value pairs, escaped.
CREATE FUNCTION @extschema@._report_labels(l jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(string_agg(@extschema@._html(e.key || '=' ||
				CASE WHEN jsonb_typeof(e.value) = 'string' THEN e.value #>> '{}'
					 ELSE e.value::text END), ' &middot; ' ORDER BY e.key), 'no labels')
	  FROM jsonb_each(l) e
$$;

-- A number for people: up to `digits` significant digits, scientific below
-- 0.001, an en dash for NULL.  No SET clause, so that the planner inlines it
-- (called for every point of every chart); it names pg_catalog itself.
CREATE FUNCTION @extschema@._report_num(x float8, digits int DEFAULT 3)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
	SELECT CASE WHEN x IS NULL OR x = 'NaN'::float8 THEN '&#8211;'
				WHEN x = 0 THEN '0'
				WHEN pg_catalog.abs(x) < 0.001 THEN
					pg_catalog.replace(pg_catalog.to_char(x, '9.9EEEE'), ' ', '')
				ELSE pg_catalog.trim_scale(pg_catalog.round(x::numeric,
					greatest(0, digits - 1
						- pg_catalog.floor(pg_catalog.log(pg_catalog.abs(x)::numeric))::int)))::text END
$$;

-- A duration for people: 3 d 4 h, 2 h 5 min, 40 min, 12 s.
CREATE FUNCTION @extschema@._report_duration(d interval)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN d IS NULL THEN '&#8211;'
				WHEN s >= 86400 THEN format('%s d %s h', floor(s / 86400), floor(s % 86400 / 3600))
				WHEN s >= 3600 THEN format('%s h %s min', floor(s / 3600), floor(s % 3600 / 60))
				WHEN s >= 60 THEN format('%s min', floor(s / 60))
				WHEN s >= 1 THEN format('%s s', floor(s))
				ELSE '&lt; 1 s' END
	  FROM (SELECT extract(epoch FROM d)::numeric AS s) x
$$;

-- One line that says why the stream's last check decided what it did:
-- p (adjusted p in scheduled mode) against alpha, effect against
-- min_effect, streak against consecutive.
CREATE FUNCTION @extschema@._report_explain(p_stream_id bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE WHEN c.check_id IS NULL THEN 'no check yet'
		ELSE format('batch %s: %s %s &#945; %s &middot; effect %s %s min %s%s &rarr; <b class="d-%s">%s</b>',
			c.batch_no,
			CASE WHEN c.p_adjusted IS NOT NULL
				 THEN format('adjusted p %s (p %s)', @extschema@._report_num(c.p_adjusted),
							 @extschema@._report_num(c.p_value))
				 ELSE format('p %s', @extschema@._report_num(c.p_value)) END,
			CASE WHEN coalesce(c.p_adjusted, c.p_value) <= c.alpha THEN '&le;' ELSE '&gt;' END,
			@extschema@._report_num(c.alpha),
			@extschema@._report_num(c.effect),
			CASE WHEN c.effect >= s.min_effect THEN '&ge;' ELSE '&lt;' END,
			@extschema@._report_num(s.min_effect),
			CASE WHEN c.significant OR s.consecutive > 1
				 THEN format(' &middot; %s in a row, flag at %s', k.streak, s.consecutive) ELSE '' END,
			CASE WHEN c.drift THEN 'drift' WHEN c.significant THEN 'significant' ELSE 'pass' END,
			CASE WHEN c.drift THEN 'drift' WHEN c.significant THEN 'significant, not yet in a row'
				 ELSE 'pass' END) END
	  FROM @extschema@.streams s
	  LEFT JOIN LATERAL (SELECT * FROM @extschema@.checks ck
						  WHERE ck.stream_id = s.stream_id AND ck.status = 'done'
						  ORDER BY ck.batch_no DESC LIMIT 1) c ON true
	  LEFT JOIN LATERAL (SELECT count(*) AS streak FROM @extschema@.checks ck
						  WHERE ck.stream_id = s.stream_id AND ck.status = 'done'
							AND ck.model_version = c.model_version
							AND ck.batch_no <= c.batch_no AND ck.significant
							AND ck.batch_no > coalesce((SELECT max(n.batch_no) FROM @extschema@.checks n
														 WHERE n.stream_id = s.stream_id
														   AND n.status = 'done'
														   AND n.batch_no <= c.batch_no
														   AND NOT coalesce(n.significant, false)), 0)) k ON true
	 WHERE s.stream_id = p_stream_id
$$;

-- The chart of one stream over [t0, t1]: batch mean loss against the
-- reference mean (the benchmark's under the benchmark policy), checks
-- coloured by decision, retrains (new model versions), dismissed flags and
-- the pinned or accepted reference.  `small`: a thumbnail without axes.
CREATE FUNCTION @extschema@._report_chart(p_stream_id bigint, t0 timestamptz,
										  t1 timestamptz, small bool)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	w		int := CASE WHEN small THEN 260 ELSE 880 END;
	h		int := CASE WHEN small THEN 90 ELSE 210 END;
	l		int := CASE WHEN small THEN 4 ELSE 52 END;	-- plot area
	r		int := CASE WHEN small THEN 4 ELSE 128 END;
	tp		int := CASE WHEN small THEN 6 ELSE 14 END;
	bt		int := CASE WHEN small THEN 6 ELSE 28 END;
	pw		float8;
	ph		float8;
	span	float8 := greatest(extract(epoch FROM t1 - t0), 1);
	ymax	float8;
	out		text;
	v_ref_label text;
BEGIN
	pw := w - l - r;
	ph := h - tp - bt;
	SELECT CASE WHEN s.reference_policy = 'benchmark' THEN 'benchmark mean'
				ELSE 'reference mean' END
	  INTO v_ref_label FROM @extschema@.streams s WHERE s.stream_id = p_stream_id;

	WITH pts AS (
		SELECT b.batch_no, b.version_no, b.model_version, b.role, b.last_at, b.first_seq,
			   cardinality(b.losses) AS n,
			   coalesce(c.batch_mean, @extschema@._mean(b.losses)) AS bm,
			   CASE WHEN b.role = 'reference'
					THEN @extschema@._mean(b.losses)
					ELSE c.reference_mean END AS rm,
			   coalesce(c.p_adjusted, c.p_value) AS pv, c.effect, c.check_id,
			   CASE WHEN c.drift THEN 'drift' WHEN c.significant THEN 'significant'
					WHEN c.status = 'done' THEN 'pass' WHEN c.status IS NOT NULL THEN c.status
					ELSE b.role END AS decision,
			   l + pw * extract(epoch FROM b.last_at - t0) / span AS x
		  FROM @extschema@.batches b
		  LEFT JOIN @extschema@.checks c USING (stream_id, batch_no)
		 WHERE b.stream_id = p_stream_id
		   -- the stream's few batches, not the window's many (batches_last_at_idx)
		   AND (b.last_at BETWEEN t0 AND t1) IS TRUE
	), sc AS (
		SELECT greatest(max(greatest(bm, coalesce(rm, 0))) * 1.12, 1e-9) AS ymax FROM pts
	), p AS (
		SELECT pts.*, tp + ph * (1 - bm / sc.ymax) AS y,
			   tp + ph * (1 - rm / sc.ymax) AS yr, sc.ymax
		  FROM pts, sc
	), versions AS (	-- the first batch of each new model version in the window
		SELECT DISTINCT ON (p.version_no) p.version_no, p.model_version, p.x
		  FROM p
		 WHERE p.version_no > (SELECT min(b.version_no) FROM @extschema@.batches b
								WHERE b.stream_id = p_stream_id)
		 ORDER BY p.version_no, p.batch_no
	), dismissed AS (
		SELECT p.x, p.y, q.note
		  FROM @extschema@.retrain_requests q JOIN p ON p.check_id = q.check_id
		 WHERE q.stream_id = p_stream_id AND q.status = 'dismissed'
	), pinned AS (	-- the live reference when pinned or accepted: its batches
		SELECT rb.source, min(p.x) - CASE WHEN small THEN 2 ELSE 4 END AS x0,
			   max(p.x) + CASE WHEN small THEN 2 ELSE 4 END AS x1
		  FROM @extschema@.reference_batches rb
		  JOIN p ON p.first_seq < rb.end_seq
				AND p.first_seq + p.n > rb.seqs[1]
		 WHERE rb.stream_id = p_stream_id AND rb.source IN ('pinned', 'accepted')
		 GROUP BY rb.source
	)
	SELECT max(p.ymax),
		format('<svg class="chart" viewBox="0 0 %s %s" width="%s" height="%s" role="img">', w, h, w, h)
		|| format('<rect x="%s" y="%s" width="%s" height="%s" class="plot"/>', l, tp, pw, ph)
		-- pinned / accepted reference band
		|| coalesce((SELECT string_agg(format('<rect x="%s" y="%s" width="%s" height="%s" class="pin"><title>%s reference</title></rect>',
					   round(x0::numeric, 1), tp, round(greatest(x1 - x0, 2)::numeric, 1), ph, source), '')
					  FROM pinned), '')
		-- retrains: a new model version starts
		|| coalesce((SELECT string_agg(format('<line x1="%s" x2="%s" y1="%s" y2="%s" class="retrain"/>',
					   round(v.x::numeric, 1), round(v.x::numeric, 1), tp, tp + ph)
					   || CASE WHEN small THEN '' ELSE
						  format('<text x="%s" y="%s" class="vlabel">%s</text>',
								 round(v.x::numeric + 3, 1), tp + 10, @extschema@._html(v.model_version)) END, '')
					  FROM versions v), '')
		-- reference mean, one step line per model version
		|| coalesce((SELECT string_agg(format('<polyline class="ref" points="%s"/>', pts), '')
					  FROM (SELECT string_agg(format('%s,%s', round(x::numeric, 1), round(yr::numeric, 1)), ' ' ORDER BY batch_no) AS pts
							  FROM p WHERE rm IS NOT NULL GROUP BY version_no) s), '')
		-- batch mean loss
		|| coalesce((SELECT format('<polyline class="loss" points="%s"/>',
					   string_agg(format('%s,%s', round(x::numeric, 1), round(y::numeric, 1)), ' ' ORDER BY batch_no))
					  FROM p), '')
		-- one marker per batch
		|| coalesce((SELECT string_agg(
			   CASE WHEN decision IN ('reference', 'partial')
					THEN format('<rect x="%s" y="%s" width="%s" height="%s" class="m-reference">',
								round(x::numeric - 2.5, 1), round(y::numeric - 2.5, 1), 5, 5)
					ELSE format('<circle cx="%s" cy="%s" r="%s" class="m-%s">',
								round(x::numeric, 1), round(y::numeric, 1),
								CASE WHEN decision IN ('drift', 'significant') THEN (CASE WHEN small THEN 2.5 ELSE 4 END)
									 ELSE (CASE WHEN small THEN 1.2 ELSE 2.2 END) END, decision) END
			   || format('<title>batch %s (%s, %s): mean loss %s, %s %s, p %s, effect %s, %s</title>',
						 batch_no, @extschema@._html(model_version),
						 to_char(last_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
						 @extschema@._report_num(bm), v_ref_label, @extschema@._report_num(rm),
						 @extschema@._report_num(pv),
						 @extschema@._report_num(effect), decision)
			   || CASE WHEN decision IN ('reference', 'partial') THEN '</rect>' ELSE '</circle>' END,
			   '' ORDER BY batch_no)
					  FROM p), '')
		-- dismissed flags
		|| coalesce((SELECT string_agg(format('<path d="M%s %s l5 -5 l5 5 l-5 5 z" class="dismissed"><title>dismissed: %s</title></path>',
					   round(x::numeric - 5, 1), round(y::numeric, 1), @extschema@._html(note)), '')
					  FROM dismissed), '')
	  INTO ymax, out
	  FROM p;

	IF out IS NULL THEN
		RETURN format('<svg class="chart" viewBox="0 0 %s %s" width="%s" height="%s" role="img"><rect x="%s" y="%s" width="%s" height="%s" class="plot"/><text x="%s" y="%s" class="empty">no closed batch in the period</text></svg>',
					  w, h, w, h, l, tp, pw, ph, l + 8, tp + ph / 2);
	END IF;
	IF NOT small THEN
		out := out
			|| format('<text x="%s" y="%s" class="axis" text-anchor="end">%s</text>', l - 5, tp + 4, @extschema@._report_num(ymax))
			|| format('<text x="%s" y="%s" class="axis" text-anchor="end">0</text>', l - 5, tp + ph)
			|| format('<text x="%s" y="%s" class="axis">%s</text>', l, h - 10, to_char(t0 AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
			|| format('<text x="%s" y="%s" class="axis" text-anchor="end">%s</text>', l + pw, h - 10, to_char(t1 AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
			|| format('<g class="legend" transform="translate(%s,%s)">', l + pw + 10, tp + 6)
			|| '<line x1="0" x2="16" y1="0" y2="0" class="loss"/><text x="20" y="4">batch mean loss</text>'
			|| format('<line x1="0" x2="16" y1="16" y2="16" class="ref"/><text x="20" y="20">%s</text>', replace(v_ref_label, ' mean', ''))
			|| '<circle cx="8" cy="32" r="4" class="m-drift"/><text x="20" y="36">flag (drift)</text>'
			|| '<circle cx="8" cy="48" r="4" class="m-significant"/><text x="20" y="52">significant</text>'
			|| '<line x1="8" x2="8" y1="58" y2="72" class="retrain"/><text x="20" y="68">retrain</text>'
			|| '<path d="M3 80 l5 -5 l5 5 l-5 5 z" class="dismissed"/><text x="20" y="84">dismissed</text>'
			|| '<rect x="1" y="92" width="14" height="10" class="pin"/><text x="20" y="100">pinned ref.</text>'
			|| '<rect x="5.5" y="109.5" width="5" height="5" class="m-reference"/><text x="20" y="116">reference batch</text>'
			|| '</g>';
	END IF;
	RETURN out || '</svg>';
END;
$$;

-- The fleet report: one self-contained HTML document (inline CSS and SVG,
-- nothing loaded from elsewhere) for the streams whose labels contain
-- `labels`, over the `since` before the newest observation.
CREATE FUNCTION @extschema@.report(labels jsonb DEFAULT '{}',
								   since interval DEFAULT '30 days')
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
DECLARE
	c_top	CONSTANT int := 50;		-- streams with a section of their own
	c_thumb	CONSTANT int := 12;		-- of which thumbnails at the top
	v_ids	bigint[];
	v_top	bigint[];
	v_t1	timestamptz;
	v_t0	timestamptz;
	a_sid	bigint[];		-- the checks of the period: stream, day, drift, p
	a_day	date[];
	a_drift	bool[];
	a_p		float8[];
	k		record;
	html	text;
	part	text;
BEGIN
	IF labels IS NULL OR jsonb_typeof(labels) <> 'object' THEN
		RAISE EXCEPTION 'labels must be a JSON object'
			USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Pass labels such as ''{"team": "ops"}'', or ''{}'' for every stream.';
	END IF;
	IF since IS NULL OR since <= interval '0' THEN
		RAISE EXCEPTION 'since must be a positive interval'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;

	SELECT coalesce(array_agg(s.stream_id ORDER BY s.stream_id), '{}')
	  INTO v_ids FROM @extschema@.streams s WHERE s.labels @> report.labels;
	-- the window ends at the newest observation of the selection
	SELECT greatest(max(l.last_at), max(o.observed_at)), min(f.first_at)
	  INTO v_t1, v_t0
	  FROM unnest(v_ids) i(id)
	  LEFT JOIN LATERAL (SELECT b.last_at FROM @extschema@.batches b
						  WHERE b.stream_id = i.id
						  ORDER BY b.batch_no DESC LIMIT 1) l ON true
	  LEFT JOIN LATERAL (SELECT b.first_at FROM @extschema@.batches b
						  WHERE b.stream_id = i.id
						  ORDER BY b.batch_no LIMIT 1) f ON true
	  LEFT JOIN LATERAL (SELECT ob.observed_at FROM @extschema@.observations ob
						  WHERE ob.stream_id = i.id
						  ORDER BY ob.seq DESC LIMIT 1) o ON true;
	v_t1 := coalesce(v_t1, now());
	-- and starts at the oldest batch when the history is shorter
	v_t0 := coalesce(greatest(v_t1 - since, v_t0), v_t1 - since);

	-- the checks of the period, read once
	SELECT coalesce(array_agg(c.stream_id), '{}'),
		   coalesce(array_agg((b.last_at AT TIME ZONE 'UTC')::date), '{}'),
		   coalesce(array_agg(coalesce(c.drift, false)), '{}'),
		   coalesce(array_agg(coalesce(c.p_adjusted, c.p_value)), '{}')
	  INTO a_sid, a_day, a_drift, a_p
	  FROM @extschema@.checks c
	  JOIN @extschema@.batches b USING (stream_id, batch_no)
	 WHERE c.stream_id = ANY (v_ids) AND c.status = 'done'
	   AND b.last_at > v_t0 AND b.last_at <= v_t1;

	-- page head
	html := '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
		|| '<meta name="viewport" content="width=device-width, initial-scale=1">'
		|| '<title>mlma fleet report</title><style>'
		|| 'body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1a202c;background:#f4f5f7;margin:0}'
		|| 'main{max-width:1180px;margin:0 auto;padding:20px 24px 60px}'
		|| 'h1{font-size:22px;margin:0 0 2px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #d8dde4;padding-bottom:4px}'
		|| 'h3{font-size:15px;margin:0 0 4px;word-break:break-all}.sub{color:#5a6472;font-size:13px}'
		|| '.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(118px,1fr));gap:10px;margin-top:14px}'
		|| '.kpi{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 12px}'
		|| '.kpi .v{font-size:20px;white-space:nowrap;font-weight:600}.kpi .l{color:#5a6472;font-size:12px}'
		|| '.kpi.warn .v{color:#c53030}.states span{display:inline-block;margin:2px 6px 0 0;font-size:12px}'
		|| '.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:3px;vertical-align:0}'
		|| '.row{display:grid;grid-template-columns:1fr 1.08fr .8fr;gap:12px}.card{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 12px}'
		|| 'table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}'
		|| 'th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e6e9ee;vertical-align:top}th{background:#eef1f5;font-weight:600}'
		|| 'td.n{text-align:right;white-space:nowrap}.name{font-family:ui-monospace,Menlo,Consolas,monospace;overflow-wrap:anywhere}'
		|| '#attention td:first-child{width:27%}#attention td:nth-child(2){width:33%}'
		|| '.statebar{display:flex;height:26px;border-radius:5px;overflow:hidden;margin:12px 0 4px;background:#e2e8f0}.statebar div{color:#fff;font-size:12px;line-height:26px;padding-left:6px;white-space:nowrap;overflow:hidden}'
		|| '.tag{display:inline-block;border-radius:3px;padding:0 5px;font-size:12px;margin:1px 3px 1px 0;color:#fff}'
		|| '.t-proposed{background:#805ad5}.t-open{background:#c53030}.t-failed{background:#9c4221}.t-flags{background:#dd6b20}.t-dismissed{background:#b7791f}.t-paused{background:#718096}'
		|| '.lbl{color:#5a6472;font-size:12px}.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(272px,1fr));gap:10px}'
		|| '.thumb{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:6px 6px 4px}.thumb a{color:inherit;text-decoration:none}'
		|| '.thumb .t{font-size:12px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}'
		|| 'section.stream{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:12px 14px;margin:12px 0}'
		|| '.why{font-size:13px;margin:4px 0}.d-drift{color:#c53030}.d-significant{color:#dd6b20}.d-pass{color:#2f855a}'
		|| 'svg.chart{width:100%;height:auto;display:block}svg text{font:11px system-ui,sans-serif;fill:#4a5568}'
		|| '.plot{fill:#fbfcfd;stroke:#e2e6eb}.loss{fill:none;stroke:#2b6cb0;stroke-width:1.5}.ref{fill:none;stroke:#4a5568;stroke-width:1.5;stroke-dasharray:5 3}'
		|| '.m-pass{fill:#2b6cb0}.m-drift{fill:#e53e3e;stroke:#fff;stroke-width:1}.m-significant{fill:#ed8936;stroke:#fff;stroke-width:1}'
		|| '.m-waiting{fill:#a0aec0}.m-skipped{fill:#cbd5e0}.m-reference{fill:#fff;stroke:#4a5568;stroke-width:1.2}'
		|| '.retrain{stroke:#2f855a;stroke-width:1.5;stroke-dasharray:3 2}.vlabel{fill:#2f855a;font-size:10px}'
		|| '.dismissed{fill:#ecc94b;stroke:#975a16;stroke-width:1}.pin{fill:#e9d8fd;opacity:.7}'
		|| '.bar-c{fill:#90cdf4}.bar-f{fill:#e53e3e}.bar-r{fill:#2f855a}.bar-d{fill:#d69e2e}.bar-x{fill:#9c4221}.bar-p{fill:#718096}.bar-p0{fill:#e53e3e}'
		|| '.empty{fill:#718096;font-size:12px}.legend text{font-size:11px}footer{color:#718096;font-size:12px;margin-top:30px}'
		|| '</style></head><body><main>';

	html := html || format('<h1>mlma fleet report</h1><div class="sub" id="window">%s stream%s%s &middot; data from %s to %s UTC (at most %s) &middot; generated %s UTC</div>',
		cardinality(v_ids), CASE WHEN cardinality(v_ids) = 1 THEN '' ELSE 's' END,
		CASE WHEN report.labels = '{}'::jsonb THEN ''
			 ELSE ' with labels ' || @extschema@._html(report.labels::text) END,
		to_char(v_t0 AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
		to_char(v_t1 AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
		@extschema@._html(since::text),
		to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'));

	-- 1. the fleet at a glance
	SELECT format('<div class="kpis" id="kpis">'
		|| '<div class="kpi"><div class="v" id="k-streams">%s</div><div class="l">streams</div></div>'
		|| '<div class="kpi"><div class="v" id="k-checks">%s</div><div class="l">checks</div></div>'
		|| '<div class="kpi%s"><div class="v" id="k-flags">%s</div><div class="l">flags (drift)</div></div>'
		|| '<div class="kpi"><div class="v" id="k-retrains">%s</div><div class="l">retrains completed</div></div>'
		|| '<div class="kpi"><div class="v" id="k-dismissals">%s</div><div class="l">dismissed &middot; %s of finished requests</div></div>'
		|| '<div class="kpi"><div class="v" id="k-median">%s</div><div class="l">median time to retrain</div></div>'
		|| '<div class="kpi%s"><div class="v" id="k-open">%s</div><div class="l">open requests &middot; %s to approve</div></div>'
		|| '<div class="kpi%s"><div class="v" id="k-failed">%s</div><div class="l">failed retrains</div></div>'
		|| '<div class="kpi%s"><div class="v" id="k-waiting">%s</div><div class="l">oldest waiting check (%s waiting)</div></div>'
		|| '</div><div class="statebar" id="states">%s</div>',
		cardinality(v_ids),
		ck.checks, CASE WHEN ck.flags > 0 THEN ' warn' ELSE '' END, ck.flags,
		rq.completed, rq.dismissed,
		CASE WHEN rq.completed + rq.failed + rq.dismissed > 0
			 THEN round(100.0 * rq.dismissed / (rq.completed + rq.failed + rq.dismissed)) || '%'
			 ELSE '&#8211;' END,
		@extschema@._report_duration(rq.median),
		CASE WHEN op.open > 0 THEN ' warn' ELSE '' END, op.open, op.proposed,
		CASE WHEN rq.failed > 0 THEN ' warn' ELSE '' END, rq.failed,
		CASE WHEN wt.oldest > interval '1 hour' THEN ' warn' ELSE '' END,
		CASE WHEN wt.n = 0 THEN 'none' ELSE @extschema@._report_duration(wt.oldest) END, wt.n,
		st.states)
	  INTO part
	  FROM (SELECT coalesce(string_agg(format('<div style="flex:%s 1 0;min-width:%spx;background:%s" title="%s %s">%s %s</div>',
					   x.n, CASE WHEN x.n > 0 THEN 90 ELSE 0 END,
					   CASE x.state WHEN 'monitoring' THEN '#38a169' WHEN 'warming' THEN '#4299e1'
							WHEN 'drift' THEN '#e53e3e' WHEN 'retraining' THEN '#d69e2e' ELSE '#a0aec0' END,
					   x.n, @extschema@._html(x.state), x.n, @extschema@._html(x.state)), '' ORDER BY x.ord), '') AS states
			  FROM (SELECT ss.state, count(*) AS n,
						   array_position(ARRAY['drift', 'retraining', 'warming', 'monitoring', 'paused'], ss.state) AS ord
					  FROM @extschema@.stream_status ss WHERE ss.stream_id = ANY (v_ids)
					 GROUP BY ss.state) x) st,
		   (SELECT count(*) AS checks, count(*) FILTER (WHERE f) AS flags
			  FROM unnest(a_drift) f) ck,
		   (SELECT count(*) FILTER (WHERE q.status = 'completed') AS completed,
				   count(*) FILTER (WHERE q.status = 'failed') AS failed,
				   count(*) FILTER (WHERE q.status = 'dismissed') AS dismissed,
				   percentile_cont(0.5) WITHIN GROUP (ORDER BY q.finished_at - q.requested_at)
					   FILTER (WHERE q.status = 'completed') AS median
			  FROM @extschema@.retrain_requests q
			  LEFT JOIN @extschema@.checks c ON c.check_id = q.check_id
			  LEFT JOIN @extschema@.batches b ON b.stream_id = c.stream_id AND b.batch_no = c.batch_no
			 WHERE q.stream_id = ANY (v_ids)
			   AND coalesce(b.last_at, q.requested_at) > v_t0
			   AND coalesce(b.last_at, q.requested_at) <= v_t1) rq,
		   (SELECT count(*) FILTER (WHERE q.status IN ('proposed', 'pending', 'claimed')) AS open,
				   count(*) FILTER (WHERE q.status = 'proposed') AS proposed
			  FROM @extschema@.retrain_requests q
			 WHERE q.stream_id = ANY (v_ids)
			   AND q.status IN ('proposed', 'pending', 'claimed')) op,
		   (SELECT count(*) AS n, now() - min(c.created_at) AS oldest
			  FROM @extschema@.checks c
			 WHERE c.stream_id = ANY (v_ids) AND c.status = 'waiting') wt;
	html := html || part;

	-- activity per day and the p-value histogram
	WITH days AS (
		SELECT d::date AS day, row_number() OVER (ORDER BY d) - 1 AS i
		  FROM generate_series((v_t0 AT TIME ZONE 'UTC')::date,
							   (v_t1 AT TIME ZONE 'UTC')::date, interval '1 day') d
	), ck AS (
		SELECT u.day, count(*) AS checks, count(*) FILTER (WHERE u.f) AS flags
		  FROM unnest(a_day, a_drift) u(day, f)
		 GROUP BY u.day
	), rq AS (
		SELECT (coalesce(b.last_at, q.requested_at) AT TIME ZONE 'UTC')::date AS day,
			   count(*) FILTER (WHERE q.status = 'completed') AS retrains,
			   count(*) FILTER (WHERE q.status = 'dismissed') AS dismissals,
			   count(*) FILTER (WHERE q.status = 'failed') AS failures
		  FROM @extschema@.retrain_requests q
		  LEFT JOIN @extschema@.checks c ON c.check_id = q.check_id
		  LEFT JOIN @extschema@.batches b ON b.stream_id = c.stream_id AND b.batch_no = c.batch_no
		 WHERE q.stream_id = ANY (v_ids)
		   AND coalesce(b.last_at, q.requested_at) > v_t0
		   AND coalesce(b.last_at, q.requested_at) <= v_t1
		 GROUP BY 1
	), a AS (
		SELECT d.day, d.i, coalesce(ck.checks, 0) AS checks, coalesce(ck.flags, 0) AS flags,
			   coalesce(rq.retrains, 0) AS retrains, coalesce(rq.dismissals, 0) AS dismissals,
			   coalesce(rq.failures, 0) AS failures,
			   count(*) OVER () AS nd,
			   greatest(max(coalesce(ck.checks, 0)) OVER (), 1) AS cmax,
			   greatest(max(greatest(coalesce(ck.flags, 0), coalesce(rq.retrains, 0),
									 coalesce(rq.dismissals, 0), coalesce(rq.failures, 0))) OVER (), 1) AS emax
		  FROM days d LEFT JOIN ck USING (day) LEFT JOIN rq USING (day)
	)
	SELECT '<h2>Activity per day</h2><div class="row">'
		-- checks per day
		|| '<div class="card"><div class="lbl">checks per day (max ' || max(cmax) || ')</div>'
		|| '<svg class="chart" id="chart-checks" viewBox="0 0 400 150" role="img">'
		|| '<rect x="30" y="8" width="360" height="112" class="plot"/>'
		|| string_agg(format('<rect x="%s" y="%s" width="%s" height="%s" class="bar-c"><title>%s: %s checks</title></rect>',
			   round((32 + i * 356.0 / nd)::numeric, 1),
			   round((120 - 110.0 * checks / cmax)::numeric, 1),
			   round(greatest(356.0 / nd - 2, 1)::numeric, 1),
			   round((110.0 * checks / cmax)::numeric, 1), day, checks), '' ORDER BY day)
		|| format('<text x="26" y="16" class="axis" text-anchor="end">%s</text><text x="26" y="120" text-anchor="end">0</text>', max(cmax))
		|| format('<text x="30" y="138">%s</text><text x="390" y="138" text-anchor="end">%s</text>', min(day), max(day))
		|| '</svg></div>'
		-- events per day
		|| '<div class="card"><div class="lbl"><i class="dot" style="background:#e53e3e"></i>flags '
		|| '<i class="dot" style="background:#2f855a"></i>retrains <i class="dot" style="background:#d69e2e"></i>dismissals '
		|| '<i class="dot" style="background:#9c4221"></i>failed retrains (max ' || max(emax) || ' a day)</div>'
		|| '<svg class="chart" id="chart-events" viewBox="0 0 420 150" role="img">'
		|| '<rect x="30" y="8" width="380" height="112" class="plot"/>'
		|| coalesce(string_agg(
			   (SELECT string_agg(format('<rect x="%s" y="%s" width="%s" height="%s" class="bar-%s"><title>%s: %s %s</title></rect>',
						   round((32 + i * 376.0 / nd + j * (376.0 / nd - 1) / 4)::numeric, 1),
						   round((120 - 110.0 * v / emax)::numeric, 1),
						   round(greatest((376.0 / nd - 1) / 4 - 0.5, 0.8)::numeric, 1),
						   round((110.0 * v / emax)::numeric, 1), cls, day, v, what), '')
				  FROM (VALUES (0, flags, 'f', 'flags'), (1, retrains, 'r', 'retrains'),
							   (2, dismissals, 'd', 'dismissals'), (3, failures, 'x', 'failed retrains')) e(j, v, cls, what)
				 WHERE v > 0), '' ORDER BY day), '')
		|| format('<text x="26" y="16" text-anchor="end">%s</text><text x="26" y="120" text-anchor="end">0</text>', max(emax))
		|| format('<text x="30" y="138">%s</text><text x="410" y="138" text-anchor="end">%s</text>', min(day), max(day))
		|| '</svg></div>'
	  INTO part
	  FROM a;
	html := html || coalesce(part, '');

	-- p-value histogram of the period: flat when healthy, a spike near 0 is drift
	WITH p AS (
		SELECT least(floor(u.p * 20), 19)::int AS bin
		  FROM unnest(a_p) u(p) WHERE u.p IS NOT NULL
	), h AS (
		SELECT g AS bin, count(p.bin) AS n
		  FROM generate_series(0, 19) g LEFT JOIN p ON p.bin = g GROUP BY g
	), m AS (
		SELECT greatest(max(n), 1) AS nmax, sum(n) AS total FROM h
	)
	SELECT '<div class="card"><div class="lbl">p-values of the period (' || m.total
		|| ' checks; dashed: a healthy fleet, flat)</div>'
		|| '<svg class="chart" id="chart-p" viewBox="0 0 300 150" role="img">'
		|| '<rect x="30" y="8" width="262" height="112" class="plot"/>'
		|| string_agg(format('<rect x="%s" y="%s" width="12" height="%s" class="bar-p%s"><title>p in [%s, %s): %s checks</title></rect>',
			   32 + h.bin * 13, round((120 - 110.0 * h.n / m.nmax)::numeric, 1),
			   round((110.0 * h.n / m.nmax)::numeric, 1),
			   CASE WHEN h.bin = 0 THEN '0' ELSE '' END, h.bin / 20.0, (h.bin + 1) / 20.0, h.n), '' ORDER BY h.bin)
		|| CASE WHEN m.total > 0 THEN format('<line x1="30" x2="292" y1="%s" y2="%s" class="ref"/>',
				round((120 - 110.0 * m.total / 20.0 / m.nmax)::numeric, 1),
				round((120 - 110.0 * m.total / 20.0 / m.nmax)::numeric, 1)) ELSE '' END
		|| format('<text x="26" y="16" text-anchor="end">%s</text><text x="26" y="120" text-anchor="end">0</text>', m.nmax)
		|| '<text x="30" y="138">0</text><text x="161" y="138" text-anchor="middle">0.5</text><text x="292" y="138" text-anchor="end">1</text>'
		|| '</svg></div></div>'
	  INTO part
	  FROM h, m GROUP BY m.total, m.nmax;
	html := html || coalesce(part, '</div>');

	-- 2. the streams that need attention first, and the most relevant ones
	WITH a AS (
		SELECT s.stream_id, s.name, op.open_status, ev.flags, ev.min_p, rq.failed, rq.dismissed
		  FROM @extschema@.streams s
		  LEFT JOIN (SELECT DISTINCT ON (q.stream_id) q.stream_id, q.status AS open_status
					   FROM @extschema@.retrain_requests q
					  WHERE q.stream_id = ANY (v_ids)
						AND q.status IN ('proposed', 'pending', 'claimed')
					  ORDER BY q.stream_id, q.request_id DESC) op USING (stream_id)
		  LEFT JOIN (SELECT u.stream_id, count(*) FILTER (WHERE u.f) AS flags,
							min(u.p) AS min_p
					   FROM unnest(a_sid, a_drift, a_p) u(stream_id, f, p)
					  GROUP BY u.stream_id) ev USING (stream_id)
		  LEFT JOIN (SELECT q.stream_id, count(*) FILTER (WHERE q.status = 'failed') AS failed,
							count(*) FILTER (WHERE q.status = 'dismissed') AS dismissed
					   FROM @extschema@.retrain_requests q
					  WHERE q.stream_id = ANY (v_ids) AND q.status IN ('failed', 'dismissed')
						AND q.finished_at > v_t0
					  GROUP BY q.stream_id) rq USING (stream_id)
		 WHERE s.stream_id = ANY (v_ids)
	)
	SELECT array_agg(stream_id ORDER BY rank, flags DESC NULLS LAST, min_p NULLS LAST, name)
	  INTO v_top
	  FROM (SELECT a.*,
				   CASE WHEN open_status = 'proposed' THEN 1
						WHEN open_status IS NOT NULL THEN 2
						WHEN failed > 0 THEN 3
						WHEN flags > 1 THEN 4
						WHEN flags > 0 OR dismissed > 0 THEN 5
						ELSE 6 END AS rank,
				   row_number() OVER (ORDER BY CASE WHEN open_status = 'proposed' THEN 1
						WHEN open_status IS NOT NULL THEN 2 WHEN failed > 0 THEN 3
						WHEN flags > 1 THEN 4 WHEN flags > 0 OR dismissed > 0 THEN 5 ELSE 6 END,
						flags DESC NULLS LAST, min_p NULLS LAST, name) AS rn
			  FROM a) x
	 WHERE rn <= c_top;
	v_top := coalesce(v_top, '{}');

	html := html || format('<h2>Needs attention</h2><p class="sub">Open requests (awaiting approval first), failed retrains, repeated flags and dismissals in the period, then the smallest p-values: the %s most relevant of %s streams are listed here and have a section of their own below.</p>',
						   cardinality(v_top), cardinality(v_ids));
	SELECT '<table id="attention"><tr><th>stream</th><th>why</th><th>last decision</th><th class="n">flags</th></tr>'
		|| coalesce(string_agg(format('<tr><td class="name"><a href="#s%s">%s</a><div class="lbl">%s &middot; %s</div></td><td>%s</td><td class="why">%s</td><td class="n">%s</td></tr>',
			   x.stream_id, @extschema@._html(x.name), @extschema@._html(x.model_version),
			   @extschema@._report_labels(x.labels), x.tags,
			   @extschema@._report_explain(x.stream_id), x.flags), '' ORDER BY x.o), '')
		|| '</table>'
	  INTO part
	  FROM (SELECT t.o, s.stream_id, s.name, s.model_version, s.labels,
				   coalesce(ev.flags, 0) AS flags,
				   concat_ws(' ',
					   CASE WHEN s.paused THEN '<span class="tag t-paused">paused</span>' END,
					   (SELECT format('<span class="tag t-%s">%s</span> <span class="lbl">%s request since %s</span>',
								CASE WHEN q.status = 'proposed' THEN 'proposed' ELSE 'open' END,
								CASE q.status WHEN 'proposed' THEN 'awaiting approval'
											  WHEN 'claimed' THEN 'retraining' ELSE 'retrain requested' END,
								@extschema@._html(q.reason),
								@extschema@._report_duration(now() - q.requested_at))
						  FROM @extschema@.retrain_requests q
						 WHERE q.stream_id = s.stream_id AND q.status IN ('proposed', 'pending', 'claimed')
						 ORDER BY q.request_id DESC LIMIT 1),
					   (SELECT format('<span class="tag t-failed">%s failed</span> <span class="lbl">%s</span>',
								count(*), @extschema@._html(left(max(q.error), 80)))
						  FROM @extschema@.retrain_requests q
						 WHERE q.stream_id = s.stream_id AND q.status = 'failed' AND q.finished_at > v_t0
						HAVING count(*) > 0),
					   CASE WHEN ev.flags > 1 THEN format('<span class="tag t-flags">%s flags</span>', ev.flags)
							WHEN ev.flags = 1 THEN '<span class="tag t-flags">1 flag</span>' END,
					   (SELECT format('<span class="tag t-dismissed">%s dismissed</span>', count(*))
						  FROM @extschema@.retrain_requests q
						 WHERE q.stream_id = s.stream_id AND q.status = 'dismissed' AND q.finished_at > v_t0
						HAVING count(*) > 0)) AS tags
			  FROM unnest(v_top) WITH ORDINALITY t(id, o)
			  JOIN @extschema@.streams s ON s.stream_id = t.id
			  LEFT JOIN (SELECT u.stream_id, count(*) AS flags
						   FROM unnest(a_sid, a_drift) u(stream_id, f)
						  WHERE u.f AND u.stream_id = ANY (v_top)
						  GROUP BY u.stream_id) ev USING (stream_id)) x;
	html := html || part;

	-- 3. small multiples of the first streams, then a section per stream
	html := html || format('<h2>At a glance: the first %s</h2><div class="grid" id="thumbs">', least(c_thumb, cardinality(v_top)));
	FOR k IN SELECT s.stream_id, s.name, t.o
			   FROM unnest(v_top) WITH ORDINALITY t(id, o)
			   JOIN @extschema@.streams s ON s.stream_id = t.id
			  WHERE t.o <= c_thumb ORDER BY t.o
	LOOP
		html := html || format('<div class="thumb"><a href="#s%s"><div class="t name">%s</div>%s</a></div>',
			k.stream_id, @extschema@._html(k.name),
			@extschema@._report_chart(k.stream_id, v_t0, v_t1, true));
	END LOOP;
	html := html || '</div>';

	html := html || format('<h2>Streams</h2><p class="sub">The %s most relevant streams, in the order above; hover a point for its numbers.</p>', cardinality(v_top));
	FOR k IN SELECT s.stream_id, s.name, s.labels, s.model_version, s.method, s.alpha,
					s.min_effect, s.consecutive, s.batch_size, s.check_mode, s.reference_policy,
					ss.state, t.o
			   FROM unnest(v_top) WITH ORDINALITY t(id, o)
			   JOIN @extschema@.streams s ON s.stream_id = t.id
			   JOIN @extschema@.stream_status ss ON ss.stream_id = s.stream_id
			  ORDER BY t.o
	LOOP
		html := html || format('<section class="stream" id="s%s"><h3 class="name">%s</h3>'
			|| '<div class="lbl">%s &middot; model %s &middot; %s &middot; %s, &#945; %s, min effect %s, %s in a row, batches of %s, %s, %s reference</div>'
			|| '<div class="why">%s</div>%s',
			k.stream_id, @extschema@._html(k.name), @extschema@._html(k.state),
			@extschema@._html(k.model_version), @extschema@._report_labels(k.labels),
			@extschema@._html(k.method), @extschema@._report_num(k.alpha),
			@extschema@._report_num(k.min_effect), k.consecutive, k.batch_size,
			@extschema@._html(k.check_mode), @extschema@._html(k.reference_policy),
			@extschema@._report_explain(k.stream_id),
			@extschema@._report_chart(k.stream_id, v_t0, v_t1, false));
		-- its requests of the period
		SELECT '<table class="requests"><tr><th>request</th><th>reason</th><th>status</th><th>raised</th><th>finished</th><th>model</th><th>note / error</th></tr>'
			|| string_agg(format('<tr><td class="n">%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>',
				   q.request_id, @extschema@._html(q.reason), @extschema@._html(q.status),
				   to_char(q.requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
				   coalesce(to_char(q.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''),
				   @extschema@._html(q.model_version)
					   || CASE WHEN q.new_model_version IS NOT NULL
							   THEN ' &rarr; ' || @extschema@._html(q.new_model_version) ELSE '' END,
				   @extschema@._html(coalesce(q.note, q.error))), '' ORDER BY q.request_id DESC)
			|| '</table>'
		  INTO part
		  FROM (SELECT * FROM @extschema@.retrain_requests q
				 WHERE q.stream_id = k.stream_id
				   AND (q.status IN ('proposed', 'pending', 'claimed') OR q.finished_at > v_t0
						OR q.requested_at > v_t0)
				 ORDER BY q.request_id DESC LIMIT 10) q;
		html := html || coalesce(part, '') || '</section>';
	END LOOP;

	html := html || '<footer>mlma ' || @extschema@._html((SELECT e.extversion FROM pg_catalog.pg_extension e WHERE e.extname = 'mlma'))
		|| ' &middot; SELECT mlma.report(' || @extschema@._html(quote_literal(report.labels::text)) || ', '
		|| @extschema@._html(quote_literal(since::text)) || ')</footer></main></body></html>';
	RETURN html;
END;
$$;

COMMENT ON VIEW @extschema@.fleet_daily IS
	'One row per day of data (UTC): streams checked, checks, flags, retrains, dismissals, failed retrains, median time to retrain.';
COMMENT ON VIEW @extschema@.batch_series IS
	'One row per closed batch: stream, labels, model version, time range, batch and reference mean, p, adjusted p, effect, decision.';
COMMENT ON FUNCTION @extschema@.report(jsonb, interval) IS
	'The fleet report: one self-contained HTML page for the streams whose labels contain `labels`, over `since` before the newest observation.';
