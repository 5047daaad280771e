-- Edits and retirements (issue 14): rooms, surgeons, equipment types and
-- slots get a revision (the etag of AIP-154, bumped by the database on every
-- change, so no code path can change a row and keep its etag) and a retire
-- time (a soft delete: history and the audit trail keep the row).
--
-- Retired things cannot be booked: a booking that becomes active on a slot
-- that is retired, or whose room, surgeon or any equipment type is, is
-- refused here, in the database, with SQLSTATE ORF01 and reason
-- RESOURCE_RETIRED {resource, id}, the way orflow_book() refuses (0006).
-- A retire locks the resource's future slot rows (ascending id) and then the
-- resource row, the one global lock order (slot rows, then rooms, surgeons,
-- equipment by ascending id, then the patient: orflow_lock_resources, 0007),
-- so a booking racing a retire either committed first (and the retire sees
-- it) or waits and then meets the retire time.
--
-- Moving a slot rewrites its bookings' copies of the slot's facts (room,
-- surgeon, times), so the foreign key that ties them to the slot becomes
-- deferrable: the move defers it for its own transaction only.
--
-- Only objects of this migration are created here; the rule functions of
-- 0006-0009 (orflow_book, orflow_reschedule, orflow_check_slot_free) are
-- called, never redefined.

ALTER TABLE rooms
    ADD COLUMN revision bigint NOT NULL DEFAULT 1,
    ADD COLUMN retire_time timestamptz;
ALTER TABLE doctors
    ADD COLUMN revision bigint NOT NULL DEFAULT 1,
    ADD COLUMN retire_time timestamptz;
ALTER TABLE equipment
    ADD COLUMN revision bigint NOT NULL DEFAULT 1,
    ADD COLUMN retire_time timestamptz;
ALTER TABLE slots
    ADD COLUMN revision bigint NOT NULL DEFAULT 1,
    ADD COLUMN retire_time timestamptz;

-- Any change to the row (whatever column, whoever makes it) is a new revision.
CREATE FUNCTION orflow_bump_revision() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW IS DISTINCT FROM OLD THEN
        NEW.revision := OLD.revision + 1;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER rooms_revision BEFORE UPDATE ON rooms
    FOR EACH ROW EXECUTE FUNCTION orflow_bump_revision();
CREATE TRIGGER doctors_revision BEFORE UPDATE ON doctors
    FOR EACH ROW EXECUTE FUNCTION orflow_bump_revision();
CREATE TRIGGER equipment_revision BEFORE UPDATE ON equipment
    FOR EACH ROW EXECUTE FUNCTION orflow_bump_revision();
CREATE TRIGGER slots_revision BEFORE UPDATE ON slots
    FOR EACH ROW EXECUTE FUNCTION orflow_bump_revision();

ALTER TABLE bookings ALTER CONSTRAINT bookings_slot_facts_fkey DEFERRABLE INITIALLY IMMEDIATE;

-- The retired guard. Each statement of a volatile function reads a fresh
-- snapshot, so a retire that committed while this booking waited for its
-- locks is seen.
CREATE FUNCTION bookings_refuse_retired() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    found_one record;
BEGIN
    IF NEW.status NOT IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
       OR (TG_OP = 'UPDATE' AND NEW.slot_id = OLD.slot_id) THEN
        RETURN NEW;
    END IF;
    SELECT x.resource, x.id INTO found_one FROM (
        SELECT 1 AS rank, 'slot' AS resource, s.id FROM slots s
        WHERE s.id = NEW.slot_id AND s.retire_time IS NOT NULL
        UNION ALL
        SELECT 2, 'room', r.id FROM slots s JOIN rooms r ON r.id = s.room_id
        WHERE s.id = NEW.slot_id AND r.retire_time IS NOT NULL
        UNION ALL
        SELECT 3, 'doctor', d.id FROM slots s JOIN doctors d ON d.id = s.doctor_id
        WHERE s.id = NEW.slot_id AND d.retire_time IS NOT NULL
        UNION ALL
        SELECT 4, 'equipment', e.id FROM slot_equipment se JOIN equipment e ON e.id = se.equipment_id
        WHERE se.slot_id = NEW.slot_id AND e.retire_time IS NOT NULL
    ) x ORDER BY x.rank, x.id LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'RESOURCE_RETIRED' USING ERRCODE = 'ORF01',
            DETAIL = json_build_object('resource', found_one.resource, 'id', found_one.id)::text;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER bookings_not_retired
    BEFORE INSERT OR UPDATE OF slot_id ON bookings
    FOR EACH ROW EXECUTE FUNCTION bookings_refuse_retired();

-- The equipment backstop (0001/0007's trigger runs on status and slot_id
-- changes) for a booking whose slot moved in time: the same peak check.
CREATE FUNCTION bookings_check_equipment_moved() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    item record;
    peak integer;
BEGIN
    IF NEW.status NOT IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
       OR (NEW.start_time = OLD.start_time AND NEW.end_time = OLD.end_time) THEN
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
CREATE CONSTRAINT TRIGGER bookings_equipment_within_inventory_on_move
    AFTER UPDATE OF start_time, end_time ON bookings
    FOR EACH ROW EXECUTE FUNCTION bookings_check_equipment_moved();

-- Most units of an equipment type that active bookings still to end need at
-- any one instant from now on (the peak is reached at now or at some
-- booking's start). Past cases never block lowering the count, nor do
-- holds past their expiry (they can never be confirmed, and the booking rule
-- fails them before it counts).
CREATE FUNCTION orflow_equipment_future_peak(p_equipment_id bigint) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT coalesce(max((
        SELECT sum(x.quantity)
        FROM bookings b JOIN slot_equipment x ON x.slot_id = b.slot_id
        WHERE x.equipment_id = p_equipment_id
          AND b.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
          AND (b.status <> 'PENDING' OR b.expire_time > now())
          AND b.during @> instants.instant
    )), 0)::integer
    FROM (
        SELECT greatest(lower(b.during), now()) AS instant
        FROM bookings b JOIN slot_equipment x ON x.slot_id = b.slot_id
        WHERE x.equipment_id = p_equipment_id
          AND b.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED')
          AND (b.status <> 'PENDING' OR b.expire_time > now())
          AND upper(b.during) > now()
    ) instants
$$;

-- The backstop for UpdateEquipment (which checks first, naming the bookings
-- in the way): the count never drops below what booked cases need.
CREATE FUNCTION equipment_check_quantity() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    peak integer;
BEGIN
    IF NEW.quantity >= OLD.quantity THEN
        RETURN NULL;
    END IF;
    peak := orflow_equipment_future_peak(NEW.id);
    IF peak > NEW.quantity THEN
        RAISE EXCEPTION 'equipment % is needed % at once by booked cases; % is too few', NEW.name, peak, NEW.quantity
            USING ERRCODE = 'check_violation', CONSTRAINT = 'equipment_quantity_covers_bookings';
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER equipment_quantity_covers_bookings
    AFTER UPDATE OF quantity ON equipment
    FOR EACH ROW EXECUTE FUNCTION equipment_check_quantity();

-- WatchSlots hears edits and retirements: an edited or retired slot, and
-- every slot still to end of a retired room, surgeon or equipment type, as
-- AVAILABILITY_CHANGED (listeners re-read the slot, which then shows its
-- retire_time and that it is not available).
CREATE FUNCTION slots_notify_edit() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', NEW.id, 'kind', 'AVAILABILITY_CHANGED')::text);
    RETURN NULL;
END;
$$;
CREATE TRIGGER slots_edit_notify
    AFTER UPDATE OF start_time, end_time, room_id, doctor_id, procedure_type, retire_time ON slots
    FOR EACH ROW WHEN (OLD.start_time IS DISTINCT FROM NEW.start_time OR OLD.end_time IS DISTINCT FROM NEW.end_time
                       OR OLD.room_id IS DISTINCT FROM NEW.room_id OR OLD.doctor_id IS DISTINCT FROM NEW.doctor_id
                       OR OLD.procedure_type IS DISTINCT FROM NEW.procedure_type
                       OR OLD.retire_time IS DISTINCT FROM NEW.retire_time)
    EXECUTE FUNCTION slots_notify_edit();

-- TG_ARGV[0]: which slots column names the retired resource.
CREATE FUNCTION orflow_notify_retired_resource() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    affected bigint;
BEGIN
    FOR affected IN
        SELECT s.id FROM slots s
        WHERE s.end_time > now()
          AND CASE TG_ARGV[0]
                WHEN 'room' THEN s.room_id = NEW.id
                WHEN 'doctor' THEN s.doctor_id = NEW.id
                ELSE EXISTS (SELECT 1 FROM slot_equipment se WHERE se.slot_id = s.id AND se.equipment_id = NEW.id)
              END
    LOOP
        PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', affected, 'kind', 'AVAILABILITY_CHANGED')::text);
    END LOOP;
    RETURN NULL;
END;
$$;
CREATE TRIGGER rooms_retire_notify AFTER UPDATE OF retire_time ON rooms
    FOR EACH ROW WHEN (OLD.retire_time IS DISTINCT FROM NEW.retire_time)
    EXECUTE FUNCTION orflow_notify_retired_resource('room');
CREATE TRIGGER doctors_retire_notify AFTER UPDATE OF retire_time ON doctors
    FOR EACH ROW WHEN (OLD.retire_time IS DISTINCT FROM NEW.retire_time)
    EXECUTE FUNCTION orflow_notify_retired_resource('doctor');
CREATE TRIGGER equipment_retire_notify AFTER UPDATE OF retire_time ON equipment
    FOR EACH ROW WHEN (OLD.retire_time IS DISTINCT FROM NEW.retire_time)
    EXECUTE FUNCTION orflow_notify_retired_resource('equipment');

-- A booking that moved with its slot changes what else its room and surgeon
-- can take, at the old time and room and at the new: announce both.
CREATE FUNCTION bookings_notify_moved_with_slot() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM orflow_notify_siblings(OLD);
    PERFORM orflow_notify_siblings(NEW);
    RETURN NULL;
END;
$$;
CREATE TRIGGER bookings_moved_with_slot_notify
    AFTER UPDATE OF start_time, end_time, room_id, doctor_id ON bookings
    FOR EACH ROW WHEN (NEW.slot_id = OLD.slot_id
                       AND NEW.status IN ('PENDING', 'CONFIRMED', 'CHECKED_IN', 'IN_PROGRESS', 'COMPLETED'))
    EXECUTE FUNCTION bookings_notify_moved_with_slot();
