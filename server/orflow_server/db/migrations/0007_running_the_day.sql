-- Running the day: cancellation reasons, the day-of-surgery states, and the
-- booking rule split into helpers that RescheduleBooking will share.
--
-- Active (holding the slot, room, surgeon, patient and equipment for the
-- slot's scheduled time) is now PENDING, CONFIRMED, CHECKED_IN, IN_PROGRESS
-- and COMPLETED: a case in the building or in the room holds exactly what
-- its confirmed booking held, and a completed case keeps its slot (a slot is
-- used once; like a past CONFIRMED booking it stays in the active indexes).
-- NO_SHOW frees everything, as CANCELLED and FAILED do. An overrun changes no
-- interval: bookings are the plan, and a refusal cannot stop a surgery; the
-- overrun is recorded (actual_end_time) and announced (kind DELAYED).
-- db/active.py and domain.models.ACTIVE_STATUSES say the same list.

ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings ADD CONSTRAINT bookings_status_check CHECK (
    status IN ('PENDING', 'CONFIRMED', 'FAILED', 'CANCELLED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED', 'NO_SHOW'));
ALTER TABLE bookings
    ADD COLUMN cancellation_reason text CHECK (cancellation_reason IN (
        'PATIENT_REQUEST', 'SURGEON_UNAVAILABLE', 'EQUIPMENT_UNAVAILABLE', 'MEDICAL', 'SLOT_CANCELLED', 'OTHER')),
    ADD COLUMN cancellation_note text CHECK (length(cancellation_note) <= 500),
    ADD COLUMN cancelled_by text,
    ADD COLUMN actual_start_time timestamptz,
    ADD COLUMN actual_end_time timestamptz,
    -- The request_id of the last RescheduleBooking that moved it (its replay key).
    ADD COLUMN reschedule_request_id text CHECK (length(reschedule_request_id) BETWEEN 1 AND 128),
    ADD CONSTRAINT bookings_cancellation_only_when_cancelled CHECK (
        status = 'CANCELLED' OR (cancellation_reason IS NULL AND cancellation_note IS NULL AND cancelled_by IS NULL)),
    ADD CONSTRAINT bookings_actual_end_after_start CHECK (actual_end_time >= actual_start_time);

-- A cancelled slot (CancelSlot: surgeon ill, theatre closed) stays, for
-- history and audit, but is never bookable again.
ALTER TABLE slots
    ADD COLUMN cancel_time timestamptz,
    ADD COLUMN cancel_note text CHECK (length(cancel_note) <= 500);

-- The active predicate, widened. The unique index first, as in 0001, so a
-- second booking of one slot is reported as such.
ALTER TABLE bookings
    DROP CONSTRAINT bookings_room_no_overlap,
    DROP CONSTRAINT bookings_surgeon_no_overlap,
    DROP CONSTRAINT bookings_patient_no_overlap;
DROP INDEX bookings_one_active_per_slot;
DROP INDEX bookings_active_during_idx;
CREATE UNIQUE INDEX bookings_one_active_per_slot ON bookings (slot_id)
    WHERE status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED');
ALTER TABLE bookings
    ADD CONSTRAINT bookings_room_no_overlap EXCLUDE USING gist (room_id WITH =, room_during WITH &&)
        WHERE (status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')),
    ADD CONSTRAINT bookings_surgeon_no_overlap EXCLUDE USING gist (doctor_id WITH =, during WITH &&)
        WHERE (status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')),
    ADD CONSTRAINT bookings_patient_no_overlap EXCLUDE USING gist (patient_id WITH =, during WITH &&)
        WHERE (status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED'));
CREATE INDEX bookings_active_during_idx ON bookings USING gist (during)
    WHERE status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED');

-- The equipment guard (0001), with the wider predicate; it also runs when a
-- booking moves to another slot (slot_id changes: RescheduleBooking).
CREATE OR REPLACE FUNCTION bookings_check_equipment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    item record;
    peak integer;
BEGIN
    IF NEW.status NOT IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
       OR (TG_OP = 'UPDATE' AND OLD.slot_id = NEW.slot_id
           AND OLD.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')) THEN
        RETURN NULL;
    END IF;
    FOR item IN
        SELECT e.id, e.name, e.quantity
        FROM slot_equipment se JOIN equipment e ON e.id = se.equipment_id
        WHERE se.slot_id = NEW.slot_id
        ORDER BY e.id
        FOR UPDATE OF e
    LOOP
        peak := orflow_equipment_peak(item.id, NEW.during);
        IF peak > item.quantity THEN
            RAISE EXCEPTION 'equipment % over-used: % of % at the busiest moment', item.name, peak, item.quantity
                USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_equipment_within_inventory';
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
DROP TRIGGER bookings_equipment_within_inventory ON bookings;
CREATE CONSTRAINT TRIGGER bookings_equipment_within_inventory
    AFTER INSERT OR UPDATE OF status, slot_id ON bookings
    FOR EACH ROW EXECUTE FUNCTION bookings_check_equipment();

-- Peak use by active bookings other than p_ignore (a booking being moved
-- does not compete with itself); the two-argument form ignores none.
CREATE FUNCTION orflow_equipment_peak(p_equipment_id bigint, p_during tstzrange, p_ignore bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(uses.in_use), 0)::integer
    FROM (
        SELECT (SELECT coalesce(sum(x.quantity), 0)
                FROM bookings b JOIN slot_equipment x ON x.slot_id = b.slot_id
                WHERE x.equipment_id = p_equipment_id
                  AND b.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
                  AND b.during @> instants.instant AND b.id <> p_ignore) AS in_use
        FROM (
            SELECT lower(p_during) AS instant
            UNION
            SELECT lower(b.during)
            FROM bookings b JOIN slot_equipment x ON x.slot_id = b.slot_id
            WHERE x.equipment_id = p_equipment_id
              AND b.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
              AND b.during && p_during AND lower(b.during) > lower(p_during) AND b.id <> p_ignore
        ) instants
    ) uses
$$;
CREATE OR REPLACE FUNCTION orflow_equipment_peak(p_equipment_id bigint, p_during tstzrange) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT orflow_equipment_peak(p_equipment_id, p_during, 0)
$$;

-- The lock order for one or more slots (their rows already locked, by
-- ascending id): every room, then every surgeon, then every equipment type,
-- each by ascending id, then the patient. One total order over all
-- transactions, so two reschedules crossing each other wait, never deadlock.
CREATE FUNCTION orflow_lock_resources(p_slot_ids bigint[], p_patient_id text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    rid bigint;
BEGIN
    FOR rid IN SELECT DISTINCT sl.room_id FROM slots sl WHERE sl.id = ANY (p_slot_ids) ORDER BY 1 LOOP
        PERFORM 1 FROM rooms r WHERE r.id = rid FOR UPDATE;
    END LOOP;
    FOR rid IN SELECT DISTINCT sl.doctor_id FROM slots sl WHERE sl.id = ANY (p_slot_ids) ORDER BY 1 LOOP
        PERFORM 1 FROM doctors d WHERE d.id = rid FOR UPDATE;
    END LOOP;
    FOR rid IN SELECT DISTINCT se.equipment_id FROM slot_equipment se WHERE se.slot_id = ANY (p_slot_ids) ORDER BY 1
    LOOP
        PERFORM 1 FROM equipment e WHERE e.id = rid FOR UPDATE;
    END LOOP;
    PERFORM pg_advisory_xact_lock(7406115, hashtext(p_patient_id));
END;
$$;

-- The booking rule's checks (README "The booking rule", steps 3 and 4) for
-- putting p_patient_id on slot p_slot_id, its resources locked, ignoring
-- booking p_ignore (0: none). Refusals are RAISEd as in 0006. Returns the
-- clock the checks ran at.
CREATE FUNCTION orflow_check_slot_free(p_slot_id bigint, p_patient_id text, p_turnover interval, p_ignore bigint)
RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    s      record;
    item   record;
    in_use integer;
    now_   timestamptz;
BEGIN
    SELECT sl.id, sl.room_id, sl.doctor_id, sl.start_time, sl.end_time, sl.cancel_time INTO s
    FROM slots sl WHERE sl.id = p_slot_id;
    IF s.cancel_time IS NOT NULL THEN
        RAISE EXCEPTION 'SLOT_CANCELLED' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    -- An overdue hold counts as free; failing it under its row lock, before
    -- the checks read, means a racing confirm either committed first or
    -- finds it FAILED.
    now_ := clock_timestamp();
    UPDATE bookings b SET status = 'FAILED', failure_reason = 'HOLD_EXPIRED', update_time = now_
    WHERE b.status = 'PENDING' AND b.expire_time <= now_
      AND b.room_during && tstzrange(s.start_time, s.end_time + p_turnover, '[)');

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
                 AND b.room_during && tstzrange(s.start_time, s.end_time + p_turnover, '[)') AND b.id <> p_ignore) THEN
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

-- CreateBooking (0006's contract, unchanged), now through the shared helpers.
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
    SELECT sl.id, sl.room_id, sl.doctor_id, sl.start_time, sl.end_time, sl.end_time + p_turnover,
           p_patient_id, p_request_id, 'PENDING', now_, now_ + p_hold_ttl, now_
    FROM slots sl WHERE sl.id = p_slot_id
    RETURNING 'BOOKED', b.id, b.slot_id, b.patient_id, b.status, b.failure_reason, b.create_time,
              b.expire_time, b.update_time, b.request_id, now_
    INTO outcome, id, slot_id, patient_id, status, failure_reason, create_time, expire_time,
         update_time, request_id, clock;
END;
$$;

-- WatchSlots' kinds (0004) for the new states: CASE_PROGRESSED on the slot;
-- NO_SHOW releases like a cancel; a booking moved to another slot
-- (RescheduleBooking) releases the old slot and books the new one; a case
-- completed past its slot's end announces the room's later slots it delays
-- (DELAYED).
CREATE FUNCTION orflow_notify_siblings(p_booking bookings) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sibling bigint;
BEGIN
    -- Slots last at most 24 h and turnover is at most 24 h (0004).
    FOR sibling IN
        SELECT s.id FROM slots s
        WHERE s.room_id = p_booking.room_id AND s.id <> p_booking.slot_id
          AND s.start_time > p_booking.start_time - interval '2 days' AND s.start_time < p_booking.room_free_time
          AND s.end_time + (p_booking.room_free_time - p_booking.end_time) > p_booking.start_time
        UNION
        SELECT s.id FROM slots s
        WHERE s.doctor_id = p_booking.doctor_id AND s.id <> p_booking.slot_id
          AND s.start_time > p_booking.start_time - interval '2 days' AND s.start_time < p_booking.end_time
          AND s.end_time > p_booking.start_time
    LOOP
        PERFORM pg_notify(
            'orflow_slot_changes', json_build_object('slot_id', sibling, 'kind', 'AVAILABILITY_CHANGED')::text
        );
    END LOOP;
END;
$$;

CREATE OR REPLACE FUNCTION bookings_notify_slot_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    sibling bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.slot_id <> OLD.slot_id THEN
        PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', OLD.slot_id, 'kind', 'RELEASED')::text);
        PERFORM orflow_notify_siblings(OLD);
        PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', NEW.slot_id, 'kind', 'BOOKED')::text);
        PERFORM orflow_notify_siblings(NEW);
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        kind := CASE WHEN NEW.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
                     THEN 'BOOKED' END;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        kind := CASE
            WHEN NEW.status = 'CONFIRMED' THEN 'CONFIRMED'
            WHEN NEW.status IN ('CHECKED_IN', 'IN_PROGRESS', 'COMPLETED') THEN 'CASE_PROGRESSED'
            WHEN NEW.status IN ('FAILED', 'CANCELLED', 'NO_SHOW')
                 AND OLD.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED') THEN 'RELEASED'
        END;
    END IF;
    IF kind IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', NEW.slot_id, 'kind', kind)::text);
    IF kind IN ('BOOKED', 'RELEASED') THEN
        PERFORM orflow_notify_siblings(NEW);
    ELSIF NEW.status = 'COMPLETED' AND NEW.actual_end_time > NEW.end_time THEN
        -- The room is really free at the actual end plus the booking's turnover.
        FOR sibling IN
            SELECT s.id FROM slots s
            WHERE s.room_id = NEW.room_id AND s.id <> NEW.slot_id
              AND s.start_time >= NEW.end_time
              AND s.start_time < NEW.actual_end_time + (NEW.room_free_time - NEW.end_time)
        LOOP
            PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', sibling, 'kind', 'DELAYED')::text);
        END LOOP;
    END IF;
    RETURN NULL;
END;
$$;
DROP TRIGGER bookings_slot_change_notify ON bookings;
CREATE TRIGGER bookings_slot_change_notify
    AFTER INSERT OR UPDATE OF status, slot_id ON bookings
    FOR EACH ROW EXECUTE FUNCTION bookings_notify_slot_change();

-- The audit trail's verbs for the new states (0003); the row's before and
-- after documents carry the cancellation reason, note, canceller and times.
CREATE OR REPLACE FUNCTION audit_row_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    old_doc jsonb;
    new_doc jsonb;
    verb    text;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_doc := to_jsonb(OLD) - 'during' - 'room_during';
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_doc := to_jsonb(NEW) - 'during' - 'room_during';
    END IF;
    verb := CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'DELETE' THEN 'deleted' ELSE 'updated' END;
    IF TG_ARGV[0] = 'booking' AND TG_OP = 'UPDATE'
       AND (new_doc ->> 'status') IS DISTINCT FROM (old_doc ->> 'status') THEN
        verb := CASE new_doc ->> 'status'
            WHEN 'CONFIRMED' THEN 'confirmed'
            WHEN 'CANCELLED' THEN 'cancelled'
            WHEN 'FAILED' THEN 'expired'
            WHEN 'CHECKED_IN' THEN 'checked_in'
            WHEN 'IN_PROGRESS' THEN 'started'
            WHEN 'COMPLETED' THEN 'completed'
            WHEN 'NO_SHOW' THEN 'no_show'
            ELSE 'updated'
        END;
    ELSIF TG_ARGV[0] = 'booking' AND TG_OP = 'UPDATE'
       AND (new_doc ->> 'slot_id') IS DISTINCT FROM (old_doc ->> 'slot_id') THEN
        verb := 'rescheduled';
    END IF;
    INSERT INTO audit_events (actor, actor_role, action, resource_type, resource_id, before, after)
    VALUES (
        coalesce(nullif(current_setting('orflow.actor', true), ''), 'db:' || current_user),
        coalesce(nullif(current_setting('orflow.actor_role', true), ''), 'database'),
        TG_ARGV[0] || '.' || verb,
        TG_ARGV[0],
        coalesce(coalesce(new_doc, old_doc) ->> TG_ARGV[1], ''),
        old_doc,
        new_doc
    );
    RETURN NULL;
END;
$$;

-- RescheduleBooking: ONE transaction moves a PENDING or CONFIRMED booking
-- to another slot under every rule of orflow_book() (the same helpers, so
-- one rule), releasing the old slot in the same UPDATE: both or neither.
-- The booking keeps its id, status and expire_time (a hold keeps its
-- deadline). Lock order: both slot rows by ascending id, the booking row,
-- then orflow_lock_resources() over both slots. A repeated request_id
-- returns the booking as it is (REPLAYED). Refusals as orflow_book()'s, and:
-- BOOKING_NOT_FOUND, BOOKING_NOT_ACTIVE {status}, SAME_SLOT, and
-- BOOKING_MOVED (another reschedule of the same booking moved it between
-- this one's first read and its locks: the caller retries).
CREATE FUNCTION orflow_reschedule(
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
        end_time = sl.end_time, room_free_time = sl.end_time + p_turnover, update_time = now_,
        reschedule_request_id = p_request_id
    FROM slots sl
    WHERE sl.id = p_slot_id AND bk.id = b.id AND bk.status IN ('PENDING', 'CONFIRMED');
    IF NOT FOUND THEN
        -- Its own hold ran out in the instant between the two clock reads.
        RAISE EXCEPTION 'BOOKING_NOT_ACTIVE' USING ERRCODE = 'ORF01', DETAIL = '{"status": "FAILED"}';
    END IF;
    SELECT 'RESCHEDULED', b.id, now_ INTO outcome, booking_id, clock;
END;
$$;

-- CancelSlot in ONE transaction, under the slot's row lock (so a booking
-- racing it either committed first, and is cancelled here, or finds the slot
-- cancelled): the slot is marked cancelled and its active booking, if any,
-- CANCELLED with reason SLOT_CANCELLED, the note and the canceller. A slot
-- whose case is IN_PROGRESS or COMPLETED cannot be cancelled (SLOT_IN_USE
-- {status}). Cancelling a cancelled slot again changes nothing (REPLAYED).
CREATE FUNCTION orflow_cancel_slot(
    p_slot_id bigint,
    p_note text,
    p_actor text,
    p_actor_role text,
    OUT outcome text,
    OUT booking_id bigint
) RETURNS record
LANGUAGE plpgsql AS $$
DECLARE
    s       record;
    in_use  text;
BEGIN
    SELECT sl.id, sl.cancel_time INTO s FROM slots sl WHERE sl.id = p_slot_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'SLOT_NOT_FOUND' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    IF s.cancel_time IS NOT NULL THEN
        outcome := 'REPLAYED';
        RETURN;
    END IF;
    SELECT b.status INTO in_use FROM bookings b
    WHERE b.slot_id = p_slot_id AND b.status IN ('IN_PROGRESS', 'COMPLETED');
    IF FOUND THEN
        RAISE EXCEPTION 'SLOT_IN_USE' USING ERRCODE = 'ORF01', DETAIL = json_build_object('status', in_use)::text;
    END IF;
    PERFORM set_config('orflow.actor', p_actor, true), set_config('orflow.actor_role', p_actor_role, true);
    UPDATE slots SET cancel_time = clock_timestamp(), cancel_note = nullif(p_note, '') WHERE id = p_slot_id;
    UPDATE bookings b
    SET status = 'CANCELLED', cancellation_reason = 'SLOT_CANCELLED', cancellation_note = nullif(p_note, ''),
        cancelled_by = p_actor, update_time = clock_timestamp()
    WHERE b.slot_id = p_slot_id AND b.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN')
    RETURNING b.id INTO booking_id;
    outcome := 'CANCELLED';
END;
$$;

-- Watchers hear a cancelled slot as such (kind CANCELLED), besides the
-- RELEASED of its booking.
CREATE FUNCTION slots_notify_cancel() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', NEW.id, 'kind', 'CANCELLED')::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER slots_cancel_notify
    AFTER UPDATE OF cancel_time ON slots
    FOR EACH ROW WHEN (OLD.cancel_time IS NULL AND NEW.cancel_time IS NOT NULL)
    EXECUTE FUNCTION slots_notify_cancel();
