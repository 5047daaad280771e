-- The audit trail: every change to a booking, slot, room, surgeon or
-- equipment type appends one event, written by a trigger in the SAME
-- transaction as the change (a change that rolls back leaves no event, and
-- no code path, not even raw SQL, can change a row without an event).
-- The application names the actor per transaction with
--   SELECT set_config('orflow.actor', <subject>, true), set_config('orflow.actor_role', <role>, true);
-- a change made without it (a DBA at psql) is recorded as db:<database role>.
CREATE TABLE audit_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_time    timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor         text NOT NULL,
    actor_role    text NOT NULL,
    action        text NOT NULL,
    resource_type text NOT NULL,
    resource_id   text NOT NULL DEFAULT '',
    before        jsonb,
    after         jsonb
);
CREATE INDEX audit_events_resource_idx ON audit_events (resource_type, resource_id, id);
CREATE INDEX audit_events_action_idx ON audit_events (action, id);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, id);

-- Append-only, enforced by the database. (A deployment should also grant
-- the application's role only INSERT and SELECT on this table.)
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- TG_ARGV[0]: the resource type; TG_ARGV[1]: the column holding its id.
CREATE FUNCTION audit_row_change() RETURNS trigger
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
            ELSE 'updated'
        END;
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

CREATE TRIGGER bookings_audit AFTER INSERT OR UPDATE OR DELETE ON bookings
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('booking', 'id');
CREATE TRIGGER slots_audit AFTER INSERT OR UPDATE OR DELETE ON slots
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('slot', 'id');
CREATE TRIGGER slot_equipment_audit AFTER INSERT OR UPDATE OR DELETE ON slot_equipment
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('slot_equipment', 'slot_id');
CREATE TRIGGER rooms_audit AFTER INSERT OR UPDATE OR DELETE ON rooms
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('room', 'id');
CREATE TRIGGER doctors_audit AFTER INSERT OR UPDATE OR DELETE ON doctors
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('doctor', 'id');
CREATE TRIGGER equipment_audit AFTER INSERT OR UPDATE OR DELETE ON equipment
    FOR EACH ROW EXECUTE FUNCTION audit_row_change('equipment', 'id');

-- TRUNCATE fires no row triggers: record the reset itself (SeedDatabase
-- truncates every table in one statement, rooms among them).
CREATE FUNCTION audit_reset() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_events (actor, actor_role, action, resource_type)
    VALUES (
        coalesce(nullif(current_setting('orflow.actor', true), ''), 'db:' || current_user),
        coalesce(nullif(current_setting('orflow.actor_role', true), ''), 'database'),
        'database.reset',
        'database'
    );
    RETURN NULL;
END;
$$;
CREATE TRIGGER rooms_audit_reset AFTER TRUNCATE ON rooms
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reset();
