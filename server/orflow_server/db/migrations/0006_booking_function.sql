-- The booking transaction as ONE server-side function, so CreateBooking costs
-- one statement round trip (and, called outside an explicit transaction, its
-- own implicit BEGIN/COMMIT). The rule is the one README.md states, step by
-- step, in the same order and under the same lock order as before: the slot
-- row, then its room, its surgeon, its equipment types by ascending id, and
-- the patient (an advisory lock in namespace 7406115). The constraints of
-- 0001_init.sql stay the backstop.
--
-- A refusal is RAISEd with SQLSTATE 'ORF01', MESSAGE the outcome code and
-- DETAIL a JSON object of its details, so the whole transaction rolls back
-- (an overdue hold failed on the way is not committed by a refused booking:
-- nothing is written on any error). Codes: SLOT_NOT_FOUND,
-- REQUEST_ID_REUSED {slot_id}, SLOT_STARTED {start_time}, SLOT_TAKEN,
-- ROOM_BUSY, SURGEON_BUSY, PATIENT_BUSY,
-- EQUIPMENT_UNAVAILABLE {equipment_id, equipment, needed, owned, in_use}.
-- A success returns one row: outcome BOOKED (a new hold) or REPLAYED (the
-- earlier booking of this request_id), the booking's columns and the clock.

-- The most units of one equipment type in use at any instant of a window,
-- by active bookings: domain/rules.peak_usage in SQL (the same form as the
-- constraint trigger's). The peak over [start, end) is reached at the start
-- of the window or at the start of some overlapping booking; intervals are
-- half-open, so one ending as another starts never counts twice.
CREATE FUNCTION orflow_equipment_peak(p_equipment_id bigint, p_during tstzrange) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max(uses.in_use), 0)::integer
    FROM (
        SELECT (SELECT coalesce(sum(x.quantity), 0)
                FROM bookings b JOIN slot_equipment x ON x.slot_id = b.slot_id
                WHERE x.equipment_id = p_equipment_id AND b.status IN ('PENDING', 'CONFIRMED')
                  AND b.during @> instants.instant) AS in_use
        FROM (
            SELECT lower(p_during) AS instant
            UNION
            SELECT lower(b.during)
            FROM bookings b JOIN slot_equipment x ON x.slot_id = b.slot_id
            WHERE x.equipment_id = p_equipment_id AND b.status IN ('PENDING', 'CONFIRMED')
              AND b.during && p_during AND lower(b.during) > lower(p_during)
        ) instants
    ) uses
$$;

CREATE FUNCTION orflow_book(
    p_slot_id bigint,
    p_patient_id text,
    p_request_id text,          -- NULL: no replay key
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
    need    record;
    item    record;
    in_use  integer;
    now_    timestamptz;
BEGIN
    SELECT sl.id, sl.room_id, sl.doctor_id, sl.start_time, sl.end_time INTO s
    FROM slots sl WHERE sl.id = p_slot_id
    FOR UPDATE;
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

    -- The lock order: room, surgeon, equipment by id, then the patient. A
    -- patient has no row, so a transaction-scoped advisory lock on a hash of
    -- the id stands in for one (a collision only makes two patients take turns).
    PERFORM 1 FROM rooms r WHERE r.id = s.room_id FOR UPDATE;
    PERFORM 1 FROM doctors d WHERE d.id = s.doctor_id FOR UPDATE;
    FOR need IN
        SELECT se.equipment_id, se.quantity FROM slot_equipment se WHERE se.slot_id = s.id ORDER BY se.equipment_id
    LOOP
        PERFORM 1 FROM equipment e WHERE e.id = need.equipment_id FOR UPDATE;
    END LOOP;
    PERFORM pg_advisory_xact_lock(7406115, hashtext(p_patient_id));
    -- The audit trail's actor (0003_audit.sql), before the first write.
    PERFORM set_config('orflow.actor', p_actor, true), set_config('orflow.actor_role', p_actor_role, true);

    -- An overdue hold counts as free. Failing it here, under its row lock,
    -- before the checks read, means a confirm racing this transaction either
    -- committed first (and the checks see CONFIRMED) or finds it FAILED. The
    -- window (the slot's room time with turnover) contains every interval
    -- the surgeon, patient and equipment checks look at.
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
               WHERE b.slot_id = s.id AND b.status IN ('PENDING', 'CONFIRMED')) THEN
        RAISE EXCEPTION 'SLOT_TAKEN' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    IF EXISTS (SELECT 1 FROM bookings b
               WHERE b.room_id = s.room_id AND b.status IN ('PENDING', 'CONFIRMED')
                 AND b.room_during && tstzrange(s.start_time, s.end_time + p_turnover, '[)')) THEN
        RAISE EXCEPTION 'ROOM_BUSY' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    IF EXISTS (SELECT 1 FROM bookings b
               WHERE b.doctor_id = s.doctor_id AND b.status IN ('PENDING', 'CONFIRMED')
                 AND b.during && tstzrange(s.start_time, s.end_time, '[)')) THEN
        RAISE EXCEPTION 'SURGEON_BUSY' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;
    IF EXISTS (SELECT 1 FROM bookings b
               WHERE b.patient_id = p_patient_id AND b.status IN ('PENDING', 'CONFIRMED')
                 AND b.during && tstzrange(s.start_time, s.end_time, '[)')) THEN
        RAISE EXCEPTION 'PATIENT_BUSY' USING ERRCODE = 'ORF01', DETAIL = '{}';
    END IF;

    FOR item IN
        SELECT e.id, e.name, e.quantity AS owned, se.quantity AS needed
        FROM slot_equipment se JOIN equipment e ON e.id = se.equipment_id
        WHERE se.slot_id = s.id
        ORDER BY e.id
    LOOP
        in_use := orflow_equipment_peak(item.id, tstzrange(s.start_time, s.end_time, '[)'));
        IF in_use + item.needed > item.owned THEN
            RAISE EXCEPTION 'EQUIPMENT_UNAVAILABLE' USING ERRCODE = 'ORF01',
                DETAIL = json_build_object('equipment_id', item.id, 'equipment', item.name,
                                           'needed', item.needed, 'owned', item.owned, 'in_use', in_use)::text;
        END IF;
    END LOOP;

    INSERT INTO bookings AS b (slot_id, room_id, doctor_id, start_time, end_time, room_free_time,
                               patient_id, request_id, status, create_time, expire_time, update_time)
    VALUES (s.id, s.room_id, s.doctor_id, s.start_time, s.end_time, s.end_time + p_turnover,
            p_patient_id, p_request_id, 'PENDING', now_, now_ + p_hold_ttl, now_)
    RETURNING 'BOOKED', b.id, b.slot_id, b.patient_id, b.status, b.failure_reason, b.create_time,
              b.expire_time, b.update_time, b.request_id, now_
    INTO outcome, id, slot_id, patient_id, status, failure_reason, create_time, expire_time,
         update_time, request_id, clock;
END;
$$;
