-- mlma: the retrain request lifecycle and the engineer's actions
--
--   proposed -> pending (approve, or approve_after passed)
--   pending -> claimed -> completed | failed
--   proposed | pending | claimed -> dismissed
--
-- 'proposed' is the approval gate (streams with approval 'manual'): agents
-- never claim a proposed request and cannot complete or fail it.  Dismissing
-- a claimed request sends NOTIFY mlma_cancel (payload: the request id) so
-- that the agent running it stops its command (with mlma.notify off the
-- agent finds out on its next poll).  No NOTIFY is sent when mlma.notify
-- is off.
--
-- complete_retrain and fail_retrain also accept a pending request (a model
-- retrained by hand, without an agent claiming it first).  Finished requests
-- (completed, failed, dismissed) cannot change any more.

-- Locks an open request and returns it; clear errors otherwise.
CREATE FUNCTION @extschema@._lock_open_request(p_request_id bigint, p_action text)
RETURNS @extschema@.retrain_requests
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
BEGIN
	IF p_request_id IS NULL THEN
		RAISE EXCEPTION 'request_id must not be null'
			USING ERRCODE = 'null_value_not_allowed';
	END IF;
	SELECT * INTO r FROM @extschema@.retrain_requests
	 WHERE request_id = p_request_id;
	IF r.request_id IS NULL THEN
		RAISE EXCEPTION 'retrain request % does not exist', p_request_id
			USING ERRCODE = 'undefined_object';
	END IF;
	-- stream first, then request: the order every writer uses
	PERFORM @extschema@._lock_stream_id(r.stream_id);
	PERFORM 1 FROM @extschema@.stream_state WHERE stream_id = r.stream_id FOR UPDATE;
	SELECT * INTO r FROM @extschema@.retrain_requests
	 WHERE request_id = p_request_id FOR UPDATE;
	IF r.status NOT IN ('proposed', 'pending', 'claimed') THEN
		RAISE EXCEPTION 'cannot % retrain request %: it is %', p_action, p_request_id, r.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
			HINT = 'Only proposed, pending or claimed requests can change.';
	END IF;
	IF r.status = 'proposed' AND p_action IN ('complete', 'fail') THEN
		RAISE EXCEPTION 'cannot % retrain request %: it is proposed and not yet approved', p_action, p_request_id
			USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = 'The stream''s approval setting is manual, so its drift and age requests wait for an engineer.',
			HINT = 'Approve it with mlma.approve() or dismiss it with mlma.dismiss().';
	END IF;
	RETURN r;
END;
$$;

-- Proposed requests whose stream's approve_after has passed become pending
-- (approved_by 'approve_after'), each with a NOTIFY mlma_retrain so that
-- agents wake.  Streams busy right now are skipped (their requests are
-- promoted by the next call).  Called by claim_retrain and run_checks.
-- Returns the number of requests promoted.
CREATE FUNCTION @extschema@._approve_due()
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_cand	record;
	v_n		int := 0;
BEGIN
	FOR v_cand IN
		SELECT q.request_id, q.stream_id
		  FROM @extschema@.retrain_requests q
		  JOIN @extschema@.streams s ON s.stream_id = q.stream_id
		 WHERE q.status = 'proposed'
		   AND s.approve_after IS NOT NULL
		   AND q.requested_at + s.approve_after <= now()
		 ORDER BY q.requested_at, q.request_id
	LOOP
		-- stream first, then request, as every writer does
		CONTINUE WHEN NOT @extschema@._try_lock_stream_id(v_cand.stream_id);
		UPDATE @extschema@.retrain_requests q
		   SET status = 'pending', approved_at = now(), approved_by = 'approve_after'
		 WHERE q.request_id = (SELECT x.request_id
								 FROM @extschema@.retrain_requests x
								WHERE x.request_id = v_cand.request_id
								  AND x.status = 'proposed'
								  FOR UPDATE SKIP LOCKED);
		IF FOUND THEN
			IF @extschema@._notify_on() THEN
				PERFORM pg_notify('mlma_retrain', @extschema@._notify_payload(v_cand.request_id));
			END IF;
			v_n := v_n + 1;
		END IF;
	END LOOP;
	RETURN v_n;
END;
$$;

-- Approves a proposed request: it becomes pending and agents may claim it.
CREATE FUNCTION @extschema@.approve(request_id bigint, note text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
BEGIN
	r := @extschema@._lock_open_request(request_id, 'approve');
	IF r.status <> 'proposed' THEN
		RAISE EXCEPTION 'cannot approve retrain request %: it is %', r.request_id, r.status
			USING ERRCODE = 'object_not_in_prerequisite_state',
			DETAIL = 'Only proposed requests wait for approval.';
	END IF;
	UPDATE @extschema@.retrain_requests q
	   SET status = 'pending', approved_at = now(), approved_by = session_user,
		   note = coalesce(approve.note, q.note)
	 WHERE q.request_id = r.request_id;
	IF @extschema@._notify_on() THEN
		PERFORM pg_notify('mlma_retrain', @extschema@._notify_payload(r.request_id));
	END IF;
END;
$$;

CREATE FUNCTION @extschema@.claim_retrain(worker text, lease interval DEFAULT '1 hour')
RETURNS TABLE (request_id bigint, stream_id bigint, stream text,
			   model_version text, reason text, p_value float8, effect float8)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_id	bigint;
	v_cand	record;
BEGIN
	IF worker IS NULL OR worker = '' THEN
		RAISE EXCEPTION 'worker must be a non-empty name'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF lease IS NULL OR lease <= interval '0' THEN
		RAISE EXCEPTION 'lease must be positive'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	IF lease > interval '1 year' THEN
		RAISE EXCEPTION 'lease must be at most 1 year'
			USING ERRCODE = 'invalid_parameter_value',
			DETAIL = format('lease is %s.', lease);
	END IF;
	PERFORM @extschema@._approve_due();
	-- The oldest pending request, or a claimed one whose lease expired, of a
	-- stream whose writer lock is free: stream first, then request, the
	-- order every writer uses (a writer raising a request on a stream holds
	-- its lock and may wait for the request row), so claiming never
	-- deadlocks with ingestion.  Streams busy right now are skipped.
	FOR v_cand IN
		SELECT q.request_id, q.stream_id
		  FROM @extschema@.retrain_requests q
		 WHERE q.status IN ('pending', 'claimed')
		   AND (q.status = 'pending' OR q.lease_until < now())
		 ORDER BY q.requested_at, q.request_id
	LOOP
		CONTINUE WHEN NOT @extschema@._try_lock_stream_id(v_cand.stream_id);
		SELECT q.request_id INTO v_id
		  FROM @extschema@.retrain_requests q
		 WHERE q.request_id = v_cand.request_id
		   AND (q.status = 'pending'
				OR (q.status = 'claimed' AND q.lease_until < now()))
		   FOR UPDATE SKIP LOCKED;
		EXIT WHEN v_id IS NOT NULL;
	END LOOP;
	IF v_id IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY
	UPDATE @extschema@.retrain_requests q
	   SET status = 'claimed', claimed_by = worker, claimed_at = now(),
		   lease_until = now() + lease
	  FROM @extschema@.streams s
	 WHERE q.request_id = v_id AND s.stream_id = q.stream_id
	RETURNING q.request_id, q.stream_id, s.name, q.model_version, q.reason,
			  q.p_value, q.effect;
END;
$$;

CREATE FUNCTION @extschema@.complete_retrain(request_id bigint, model_version text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
BEGIN
	IF model_version IS NULL OR length(model_version) NOT BETWEEN 1 AND 255 THEN
		RAISE EXCEPTION 'model_version must be 1 to 255 characters'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	r := @extschema@._lock_open_request(request_id, 'complete');
	UPDATE @extschema@.retrain_requests q
	   SET status = 'completed', finished_at = now(),
		   new_model_version = complete_retrain.model_version, lease_until = NULL
	 WHERE q.request_id = r.request_id;
	PERFORM @extschema@._start_version(r.stream_id, model_version);
END;
$$;

CREATE FUNCTION @extschema@.fail_retrain(request_id bigint, error text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
BEGIN
	r := @extschema@._lock_open_request(request_id, 'fail');
	UPDATE @extschema@.retrain_requests q
	   SET status = 'failed', finished_at = now(), error = fail_retrain.error,
		   lease_until = NULL
	 WHERE q.request_id = r.request_id;
END;
$$;

-- A dismissed request was a false alarm: the streak restarts.  With
-- accept_as_reference the flagged batch becomes the new reference.
CREATE FUNCTION @extschema@.dismiss(request_id bigint, note text,
									 accept_as_reference bool DEFAULT false)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r		@extschema@.retrain_requests;
	b		@extschema@.batches;
BEGIN
	r := @extschema@._lock_open_request(request_id, 'dismiss');
	IF coalesce(accept_as_reference, false) THEN
		SELECT bt.* INTO b
		  FROM @extschema@.checks c
		  JOIN @extschema@.batches bt USING (stream_id, batch_no)
		 WHERE c.check_id = r.check_id;
		IF b.stream_id IS NULL THEN
			RAISE EXCEPTION 'retrain request % has no flagged batch to accept as reference', r.request_id
				USING ERRCODE = 'object_not_in_prerequisite_state',
				DETAIL = format('The request was raised for reason %s.', r.reason);
		END IF;
		PERFORM @extschema@._store_reference(r.stream_id, 'accepted', b.losses,
			ARRAY(SELECT b.first_seq + g
					FROM generate_series(0, cardinality(b.losses) - 1) g));
	END IF;
	UPDATE @extschema@.retrain_requests q
	   SET status = 'dismissed', finished_at = now(), note = dismiss.note,
		   lease_until = NULL
	 WHERE q.request_id = r.request_id;
	UPDATE @extschema@.stream_state SET streak = 0 WHERE stream_id = r.stream_id;
	-- an agent is running it: tell it to stop (delivered on commit; with
	-- mlma.notify off the agent notices on its next poll)
	IF r.status = 'claimed' AND @extschema@._notify_on() THEN
		PERFORM pg_notify('mlma_cancel', r.request_id::text);
	END IF;
END;
$$;

-- A manual request (approved by definition: pending).  When the stream
-- already has an open request, that one is returned (at most one open
-- request per stream); a proposed one is approved by asking for a retrain.
CREATE FUNCTION @extschema@.request_retrain(stream text, note text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_sid	bigint := @extschema@._lock_stream(stream);
	v_id	bigint;
	v_status text;
BEGIN
	v_id := @extschema@._raise_request(v_sid, 'manual', NULL, NULL, NULL, note);
	IF v_id IS NULL THEN
		SELECT q.request_id, q.status INTO v_id, v_status
		  FROM @extschema@.retrain_requests q
		 WHERE q.stream_id = v_sid AND q.status IN ('proposed', 'pending', 'claimed');
		IF v_status = 'proposed' THEN
			PERFORM @extschema@.approve(v_id, note);
			RAISE NOTICE 'stream "%" had a proposed retrain request: approved it', stream;
		ELSE
			RAISE NOTICE 'stream "%" already has an open retrain request', stream;
		END IF;
	END IF;
	RETURN v_id;
END;
$$;

-- Pins the reference to the stream's observations in [from_ts, to_ts]
-- (closed batches, second precision after the first observation of each,
-- and the open batch).  A pinned reference is not rolled; it stays until
-- the next model version or another pin.
CREATE FUNCTION @extschema@.pin_reference(stream text, from_ts timestamptz,
										   to_ts timestamptz)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	v_sid	bigint;
	v_l		float8[];
	v_q		int8[];
BEGIN
	IF from_ts IS NULL OR to_ts IS NULL OR from_ts > to_ts THEN
		RAISE EXCEPTION 'from_ts and to_ts must be a non-empty time range'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	v_sid := @extschema@._lock_stream(stream);
	SELECT array_agg(l ORDER BY q), array_agg(q ORDER BY q) INTO v_l, v_q
	  FROM (SELECT u.l, b.first_seq + u.o - 1 AS q,
				   CASE WHEN u.o = 1 THEN b.first_at
						ELSE b.first_at + b.offsets[u.o] * interval '1 second' END AS t
			  FROM @extschema@.batches b,
				   unnest(b.losses) WITH ORDINALITY AS u(l, o)
			 WHERE b.stream_id = v_sid
			UNION ALL
			SELECT o.loss, o.seq, o.observed_at FROM @extschema@.observations o
			 WHERE o.stream_id = v_sid) x
	 WHERE t BETWEEN from_ts AND to_ts;
	PERFORM @extschema@._store_reference(v_sid, 'pinned', v_l, v_q);
	UPDATE @extschema@.stream_state SET streak = 0 WHERE stream_id = v_sid;
	RETURN cardinality(v_l);
END;
$$;
