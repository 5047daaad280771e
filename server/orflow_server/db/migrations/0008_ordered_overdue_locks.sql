-- Overdue holds are failed in one lock order everywhere (issue 15's multi-process test found the deadlock):
-- the booking rule's step that fails overdue holds in the slot's room window locked them in whatever order
-- the scan met them, while the worker's bulk expiry (db/bookings.py fail_all_overdue_holds) locked every
-- overdue hold in its own order; many holds expiring at once made the two wait on each other in a cycle
-- (DeadlockDetectedError, rolled back, so nothing was double-booked, but the call failed). Now both lock
-- by ascending id. Only the UPDATE differs from 0007's orflow_check_slot_free.

CREATE OR REPLACE FUNCTION orflow_check_slot_free(p_slot_id bigint, p_patient_id text, p_turnover interval, p_ignore bigint)
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
    -- The rows are locked in id order (the sub-select), as the worker's bulk
    -- expiry locks them, so the two never wait on each other in a cycle.
    UPDATE bookings b SET status = 'FAILED', failure_reason = 'HOLD_EXPIRED', update_time = now_
    WHERE b.id IN (SELECT o.id FROM bookings o
                   WHERE o.status = 'PENDING' AND o.expire_time <= now_
                     AND o.room_during && tstzrange(s.start_time, s.end_time + p_turnover, '[)')
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
