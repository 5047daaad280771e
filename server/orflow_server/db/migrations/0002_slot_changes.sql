-- Slot changes, announced by the database itself: every server process
-- LISTENs on orflow_slot_changes, so it hears every change whichever process
-- or worker made it, and only once the change commits (NOTIFY is delivered at
-- commit, dropped on rollback). The payload is tiny ({"slot_id":…,"kind":…});
-- listeners re-read the slot, so no patient ever appears in it.
CREATE FUNCTION bookings_notify_slot_change() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kind text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        kind := CASE WHEN NEW.status IN ('PENDING', 'CONFIRMED') THEN 'BOOKED' END;
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        kind := CASE
            WHEN NEW.status = 'CONFIRMED' THEN 'CONFIRMED'
            WHEN NEW.status IN ('FAILED', 'CANCELLED') AND OLD.status IN ('PENDING', 'CONFIRMED') THEN 'RELEASED'
        END;
    END IF;
    IF kind IS NOT NULL THEN
        PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', NEW.slot_id, 'kind', kind)::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER bookings_slot_change_notify
    AFTER INSERT OR UPDATE OF status ON bookings
    FOR EACH ROW EXECUTE FUNCTION bookings_notify_slot_change();

CREATE FUNCTION slots_notify_slot_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orflow_slot_changes', json_build_object('slot_id', NEW.id, 'kind', 'CREATED')::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER slots_slot_change_notify
    AFTER INSERT ON slots
    FOR EACH ROW EXECUTE FUNCTION slots_notify_slot_change();

-- TRUNCATE (SeedDatabase resets the demo data) fires no row triggers, so say
-- "everything changed": listeners send every watcher a fresh snapshot.
CREATE FUNCTION slots_notify_reset() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('orflow_slot_changes', json_build_object('kind', 'RESET')::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER slots_reset_notify
    AFTER TRUNCATE ON slots
    FOR EACH STATEMENT EXECUTE FUNCTION slots_notify_reset();
CREATE TRIGGER bookings_reset_notify
    AFTER TRUNCATE ON bookings
    FOR EACH STATEMENT EXECUTE FUNCTION slots_notify_reset();
