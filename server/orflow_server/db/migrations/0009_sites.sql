-- Sites (hospitals) with their IANA time zones, and turnover per room.
--
-- A site names the zone its rooms' days are kept in: the server computes a
-- local day's window [local midnight, next local midnight) in UTC from it
-- (23 h on a spring-forward day, 25 h on an autumn one), and every slot and
-- booking a client reads carries its site and zone. The zone is validated
-- against tzdata by the server (Python zoneinfo) before it is stored.
--
-- Every room belongs to one site. Rooms that existed before are backfilled
-- into a 'default' site in UTC (the only zone OR Flow knew until now); a room
-- inserted without a site goes to the oldest site (orflow_default_site_id()).
--
-- A room may carry its own turnover (a hybrid theatre needs longer cleaning);
-- NULL means the server's default (ORFLOW_TURNOVER_MINUTES, passed to the
-- rule functions as p_turnover). The rule functions keep their signatures and
-- p_turnover keeps meaning "the default when the room has none": they read
-- coalesce(room.turnover, p_turnover) under the room's row lock, so the
-- booking's room_free_time, the room-busy check and the overdue-hold window
-- all use the room's own value inside the one locked transaction. At most
-- 24 h, like the default (0004's sibling notifications rely on that bound).

CREATE TABLE sites (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    time_zone    text NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    create_time  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT sites_name_key UNIQUE (name)
);
CREATE TRIGGER sites_audit AFTER INSERT OR UPDATE OR DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('site', 'id');

INSERT INTO sites (name, display_name, time_zone) VALUES ('default', 'Default site', 'UTC');

-- The site a room without one joins: the oldest.
CREATE FUNCTION orflow_default_site_id() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT min(id) FROM sites
$$;

ALTER TABLE rooms
    ADD COLUMN site_id bigint REFERENCES sites (id),
    ADD COLUMN turnover interval CONSTRAINT rooms_turnover_check
        CHECK (turnover >= interval '0' AND turnover <= interval '24 hours');
UPDATE rooms SET site_id = orflow_default_site_id();
ALTER TABLE rooms
    ALTER COLUMN site_id SET DEFAULT orflow_default_site_id(),
    ALTER COLUMN site_id SET NOT NULL;
CREATE INDEX rooms_site_idx ON rooms (site_id, id);

-- 0008's orflow_check_slot_free, with the room's own turnover.
CREATE OR REPLACE FUNCTION orflow_check_slot_free(p_slot_id bigint, p_patient_id text, p_turnover interval, p_ignore bigint)
RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    s      record;
    item   record;
    in_use integer;
    now_   timestamptz;
BEGIN
    -- The room's own turnover, read under the room's row lock (taken by
    -- orflow_lock_resources() before this runs); p_turnover is the default.
    SELECT sl.id, sl.room_id, sl.doctor_id, sl.start_time, sl.end_time, sl.cancel_time,
           coalesce(r.turnover, p_turnover) AS turnover INTO s
    FROM slots sl JOIN rooms r ON r.id = sl.room_id WHERE sl.id = p_slot_id;
    IF s.cancel_time IS NOT NULL THEN
        RAISE EXCEPTION 'SLOT_CANCELLED' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    -- An overdue hold counts as free; failing it under its row lock, before
    -- the checks read, means a racing confirm either committed first or
    -- finds it FAILED.
    now_ := clock_timestamp();
    -- The rows are locked in id order (the sub-select), as the worker's bulk
    -- expiry locks them, so the two never wait on each other in a cycle.
    UPDATE bookings b SET status = 'FAILED', failure_reason = 'HOLD_EXPIRED', update_time = now_
    WHERE b.id IN (SELECT o.id FROM bookings o
                   WHERE o.status = 'PENDING' AND o.expire_time <= now_
                     AND o.room_during && tstzrange(s.start_time, s.end_time + s.turnover, '[)')
                   ORDER BY o.id
                   FOR UPDATE);

    IF s.start_time <= now_ THEN
        RAISE EXCEPTION 'SLOT_STARTED' USING ERRCODE = 'ORF01',
            DETAIL = json_build_object(
                'start_time', to_char(s.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))::text;
    END IF;
    IF EXISTS (SELECT 1 FROM bookings b
               WHERE b.slot_id = s.id AND b.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
                 AND b.id <> p_ignore) THEN
        RAISE EXCEPTION 'SLOT_TAKEN' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    IF EXISTS (SELECT 1 FROM bookings b
               WHERE b.room_id = s.room_id AND b.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
                 AND b.room_during && tstzrange(s.start_time, s.end_time + s.turnover, '[)') AND b.id <> p_ignore) THEN
        RAISE EXCEPTION 'ROOM_BUSY' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    IF EXISTS (SELECT 1 FROM bookings b
               WHERE b.doctor_id = s.doctor_id AND b.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
                 AND b.during && tstzrange(s.start_time, s.end_time, '[)') AND b.id <> p_ignore) THEN
        RAISE EXCEPTION 'SURGEON_BUSY' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    IF EXISTS (SELECT 1 FROM bookings b
               WHERE b.patient_id = p_patient_id AND b.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
                 AND b.during && tstzrange(s.start_time, s.end_time, '[)') AND b.id <> p_ignore) THEN
        RAISE EXCEPTION 'PATIENT_BUSY' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    FOR item IN
        SELECT e.id, e.name, e.quantity AS owned, se.quantity AS needed
        FROM slot_equipment se JOIN equipment e ON e.id = se.equipment_id
        WHERE se.slot_id = s.id
        ORDER BY e.id
    LOOP
        in_use := orflow_equipment_peak(item.id, tstzrange(s.start_time, s.end_time, '[)'), p_ignore);
        IF in_use + item.needed > item.owned THEN
            RAISE EXCEPTION 'EQUIPMENT_UNAVAILABLE' USING ERRCODE = 'ORF01',
                DETAIL = json_build_object('equipment_id', item.id, 'equipment', item.name,
                                           'needed', item.needed, 'owned', item.owned, 'in_use', in_use)::text;
        END IF;
    END LOOP;
    RETURN now_;
END;
$$;

-- 0007's orflow_book (0006's contract), inserting room_free_time with the room's own turnover.
CREATE OR REPLACE FUNCTION orflow_book(
    p_slot_id bigint,
    p_patient_id text,
    p_request_id text,
    p_actor text,
    p_actor_role text,
    p_turnover interval,
    p_hold_ttl interval,
    OUT outcome text,
    OUT id bigint,
    OUT slot_id bigint,
    OUT patient_id text,
    OUT status text,
    OUT failure_reason text,
    OUT create_time timestamptz,
    OUT expire_time timestamptz,
    OUT update_time timestamptz,
    OUT request_id text,
    OUT clock timestamptz
) RETURNS record
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    s       record;
    earlier record;
    now_    timestamptz;
BEGIN
    SELECT sl.id, sl.end_time INTO s FROM slots sl WHERE sl.id = p_slot_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'SLOT_NOT_FOUND' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    -- Read under the slot lock, so a concurrent retry of the same request
    -- waits for the first and then finds its booking.
    IF p_request_id IS NOT NULL THEN
        SELECT b.id, b.slot_id, b.patient_id, b.status, b.failure_reason, b.create_time, b.expire_time,
               b.update_time, b.request_id INTO earlier
        FROM bookings b WHERE b.patient_id = p_patient_id AND b.request_id = p_request_id;
        IF FOUND THEN
            IF earlier.slot_id <> p_slot_id THEN
                RAISE EXCEPTION 'REQUEST_ID_REUSED' USING ERRCODE = 'ORF01',
                    DETAIL = json_build_object('slot_id', earlier.slot_id)::text;
            END IF;
            SELECT 'REPLAYED', earlier.id, earlier.slot_id, earlier.patient_id, earlier.status,
                   earlier.failure_reason, earlier.create_time, earlier.expire_time, earlier.update_time,
                   earlier.request_id, clock_timestamp()
            INTO outcome, id, slot_id, patient_id, status, failure_reason, create_time, expire_time,
                 update_time, request_id, clock;
            RETURN;
        END IF;
    END IF;
    PERFORM orflow_lock_resources(ARRAY[p_slot_id], p_patient_id);
    PERFORM set_config('orflow.actor', p_actor, true), set_config('orflow.actor_role', p_actor_role, true);
    now_ := orflow_check_slot_free(p_slot_id, p_patient_id, p_turnover, 0);
    INSERT INTO bookings AS b (slot_id, room_id, doctor_id, start_time, end_time, room_free_time,
                               patient_id, request_id, status, create_time, expire_time, update_time)
    SELECT sl.id, sl.room_id, sl.doctor_id, sl.start_time, sl.end_time, sl.end_time + coalesce(r.turnover, p_turnover),
           p_patient_id, p_request_id, 'PENDING', now_, now_ + p_hold_ttl, now_
    FROM slots sl JOIN rooms r ON r.id = sl.room_id WHERE sl.id = p_slot_id
    RETURNING 'BOOKED', b.id, b.slot_id, b.patient_id, b.status, b.failure_reason, b.create_time,
              b.expire_time, b.update_time, b.request_id, now_
    INTO outcome, id, slot_id, patient_id, status, failure_reason, create_time, expire_time,
         update_time, request_id, clock;
END;
$$;

-- 0007's orflow_reschedule, moving the booking with the new slot's room's own turnover.
CREATE OR REPLACE FUNCTION orflow_reschedule(
    p_booking_id bigint,
    p_slot_id bigint,
    p_patient_scope text,       -- NULL: any patient's booking (staff)
    p_request_id text,          -- NULL: no replay key
    p_actor text,
    p_actor_role text,
    p_turnover interval,
    OUT outcome text,
    OUT booking_id bigint,
    OUT clock timestamptz
) RETURNS record
LANGUAGE plpgsql AS $$
DECLARE
    old_slot bigint;
    b        record;
    one_slot bigint;
    now_     timestamptz;
BEGIN
    SELECT bk.slot_id INTO old_slot FROM bookings bk
    WHERE bk.id = p_booking_id AND (p_patient_scope IS NULL OR bk.patient_id = p_patient_scope);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'BOOKING_NOT_FOUND' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    PERFORM 1 FROM slots sl WHERE sl.id = p_slot_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'SLOT_NOT_FOUND' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    FOR one_slot IN SELECT DISTINCT unnest(ARRAY[old_slot, p_slot_id]) ORDER BY 1 LOOP
        PERFORM 1 FROM slots sl WHERE sl.id = one_slot FOR UPDATE;
    END LOOP;
    SELECT bk.id, bk.slot_id, bk.patient_id, bk.status, bk.expire_time, bk.reschedule_request_id INTO b
    FROM bookings bk WHERE bk.id = p_booking_id FOR UPDATE;
    IF b.slot_id <> old_slot THEN
        RAISE EXCEPTION 'BOOKING_MOVED' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    IF p_request_id IS NOT NULL AND b.reschedule_request_id = p_request_id THEN
        IF b.slot_id <> p_slot_id THEN
            RAISE EXCEPTION 'REQUEST_ID_REUSED' USING ERRCODE = 'ORF01',
                DETAIL = json_build_object('slot_id', b.slot_id)::text;
        END IF;
        SELECT 'REPLAYED', b.id, clock_timestamp() INTO outcome, booking_id, clock;
        RETURN;
    END IF;
    now_ := clock_timestamp();
    IF NOT (b.status = 'CONFIRMED' OR (b.status = 'PENDING' AND b.expire_time > now_)) THEN
        RAISE EXCEPTION 'BOOKING_NOT_ACTIVE' USING ERRCODE = 'ORF01',
            DETAIL = json_build_object('status', CASE WHEN b.status = 'PENDING' THEN 'FAILED' ELSE b.status END)::text;
    END IF;
    IF b.slot_id = p_slot_id THEN
        RAISE EXCEPTION 'SAME_SLOT' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    PERFORM orflow_lock_resources(ARRAY[old_slot, p_slot_id], b.patient_id);
    PERFORM set_config('orflow.actor', p_actor, true), set_config('orflow.actor_role', p_actor_role, true);
    now_ := orflow_check_slot_free(p_slot_id, b.patient_id, p_turnover, b.id);
    UPDATE bookings bk
    SET slot_id = sl.id, room_id = sl.room_id, doctor_id = sl.doctor_id, start_time = sl.start_time,
        end_time = sl.end_time, room_free_time = sl.end_time + coalesce(r.turnover, p_turnover), update_time = now_,
        reschedule_request_id = p_request_id
    FROM slots sl JOIN rooms r ON r.id = sl.room_id
    WHERE sl.id = p_slot_id AND bk.id = b.id AND bk.status IN ('PENDING', 'CONFIRMED');
    IF NOT FOUND THEN
        -- Its own hold ran out in the instant between the two clock reads.
        RAISE EXCEPTION 'BOOKING_NOT_ACTIVE' USING ERRCODE = 'ORF01', DETAIL = '{"status": "FAILED"}';
    END IF;
    SELECT 'RESCHEDULED', b.id, now_ INTO outcome, booking_id, clock;
END;
$$;
