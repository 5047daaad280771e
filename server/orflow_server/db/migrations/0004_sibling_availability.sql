-- A booking blocks more than its own slot: every other slot in the same room
-- (within the booking's turnover) or with the same surgeon at an overlapping
-- time becomes unavailable too, and available again when the booking is
-- released. Announce those slots as well (kind AVAILABILITY_CHANGED), so a
-- live slot list never shows a slot that the room or surgeon can't take.
-- Slots last at most 24 h and turnover is at most 24 h, so candidates start
-- within 2 days before the booking: the (room_id, start_time) and
-- (doctor_id, start_time) indexes bound the search.
CREATE OR REPLACE FUNCTION bookings_notify_slot_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text;
    sibling bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        kind := CASE WHEN NEW.status IN ('PENDING', 'CONFIRMED') THEN 'BOOKED' END;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        kind := CASE
            WHEN NEW.status = 'CONFIRMED' THEN 'CONFIRMED'
            WHEN NEW.status IN ('FAILED', 'CANCELLED') AND OLD.status IN ('PENDING', 'CONFIRMED') THEN 'RELEASED'
        END;
    END IF;
    IF kind IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', NEW.slot_id, 'kind', kind)::text);
    IF kind IN ('BOOKED', 'RELEASED') THEN
        FOR sibling IN
            SELECT s.id FROM slots s
            WHERE s.room_id = NEW.room_id AND s.id <> NEW.slot_id
              AND s.start_time > NEW.start_time - interval '2 days' AND s.start_time < NEW.room_free_time
              AND s.end_time + (NEW.room_free_time - NEW.end_time) > NEW.start_time
            UNION
            SELECT s.id FROM slots s
            WHERE s.doctor_id = NEW.doctor_id AND s.id <> NEW.slot_id
              AND s.start_time > NEW.start_time - interval '2 days' AND s.start_time < NEW.end_time
              AND s.end_time > NEW.start_time
        LOOP
            PERFORM pg_notify(
                'orflow_slot_changes', json_build_object('slot_id', sibling, 'kind', 'AVAILABILITY_CHANGED')::text
            );
        END LOOP;
    END IF;
    RETURN NULL;
END;
$$;
