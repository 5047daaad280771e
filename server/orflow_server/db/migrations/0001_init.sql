-- OR Flow schema. The constraints here refuse a double booking even if the
-- application's checks were wrong: one active booking per slot, and no two
-- active bookings overlapping in one room, for one surgeon or for one patient.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE rooms (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT rooms_name_key UNIQUE (name)
);

CREATE TABLE doctors (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    specialty   text NOT NULL CHECK (length(specialty) BETWEEN 1 AND 200),
    create_time timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX doctors_name_idx ON doctors (name, id);

CREATE TABLE equipment (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    quantity    integer NOT NULL CHECK (quantity BETWEEN 0 AND 100000),
    create_time timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT equipment_name_key UNIQUE (name)
);

CREATE TABLE slots (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doctor_id      bigint NOT NULL REFERENCES doctors (id),
    room_id        bigint NOT NULL REFERENCES rooms (id),
    procedure_type text NOT NULL CHECK (length(procedure_type) BETWEEN 1 AND 200),
    start_time     timestamptz NOT NULL,
    end_time       timestamptz NOT NULL,
    create_time    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT slots_interval_check CHECK (end_time > start_time),
    -- Lets bookings copy the slot's room, surgeon and times under a foreign
    -- key, so their exclusion constraints see exactly the slot's facts.
    CONSTRAINT slots_booking_facts_key UNIQUE (id, room_id, doctor_id, start_time, end_time)
);
CREATE INDEX slots_start_idx ON slots (start_time, id);
CREATE INDEX slots_room_start_idx ON slots (room_id, start_time, id);
CREATE INDEX slots_doctor_start_idx ON slots (doctor_id, start_time, id);
CREATE INDEX slots_procedure_start_idx ON slots (lower(procedure_type), start_time, id);

CREATE TABLE slot_equipment (
    slot_id      bigint NOT NULL REFERENCES slots (id) ON DELETE CASCADE,
    equipment_id bigint NOT NULL REFERENCES equipment (id),
    quantity     integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (slot_id, equipment_id)
);

CREATE TABLE bookings (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slot_id           bigint NOT NULL,
    room_id           bigint NOT NULL,
    doctor_id         bigint NOT NULL,
    start_time        timestamptz NOT NULL,
    end_time          timestamptz NOT NULL,
    -- When the room is ready again: end_time plus the turnover buffer in
    -- force when the booking was made.
    room_free_time    timestamptz NOT NULL,
    patient_id        text NOT NULL CHECK (length(patient_id) BETWEEN 1 AND 64),
    request_id        text CHECK (length(request_id) BETWEEN 1 AND 128),
    status            text NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'FAILED', 'CANCELLED')),
    failure_reason    text CHECK (failure_reason IN ('HOLD_EXPIRED')),
    create_time       timestamptz NOT NULL,
    expire_time       timestamptz NOT NULL,
    update_time       timestamptz NOT NULL,
    during            tstzrange GENERATED ALWAYS AS (tstzrange(start_time, end_time, '[)')) STORED,
    room_during       tstzrange GENERATED ALWAYS AS (tstzrange(start_time, room_free_time, '[)')) STORED,
    CONSTRAINT bookings_slot_facts_fkey FOREIGN KEY (slot_id, room_id, doctor_id, start_time, end_time)
        REFERENCES slots (id, room_id, doctor_id, start_time, end_time),
    CONSTRAINT bookings_room_free_check CHECK (room_free_time >= end_time),
    CONSTRAINT bookings_failure_reason_matches_status CHECK ((status = 'FAILED') = (failure_reason IS NOT NULL))
);
-- A FAILED or CANCELLED booking never blocks rebooking the slot. Created
-- before the exclusion constraints so that a second booking of one slot is
-- reported as such (PostgreSQL checks indexes in creation order).
CREATE UNIQUE INDEX bookings_one_active_per_slot ON bookings (slot_id)
    WHERE status IN ('PENDING', 'CONFIRMED');
ALTER TABLE bookings
    ADD CONSTRAINT bookings_room_no_overlap EXCLUDE USING gist (room_id WITH =, room_during WITH &&)
        WHERE (status IN ('PENDING', 'CONFIRMED')),
    ADD CONSTRAINT bookings_surgeon_no_overlap EXCLUDE USING gist (doctor_id WITH =, during WITH &&)
        WHERE (status IN ('PENDING', 'CONFIRMED')),
    ADD CONSTRAINT bookings_patient_no_overlap EXCLUDE USING gist (patient_id WITH =, during WITH &&)
        WHERE (status IN ('PENDING', 'CONFIRMED'));
CREATE UNIQUE INDEX bookings_request_id_key ON bookings (patient_id, request_id)
    WHERE request_id IS NOT NULL;
-- The equipment check reads only active bookings in the slot's interval, so
-- its cost does not grow with the number of past bookings.
CREATE INDEX bookings_active_during_idx ON bookings USING gist (during)
    WHERE status IN ('PENDING', 'CONFIRMED');
-- Overdue holds are found by time window when booking (cost bounded by the
-- window, not by how many abandoned holds exist) and by expiry when sweeping.
CREATE INDEX bookings_pending_room_during_idx ON bookings USING gist (room_during)
    WHERE status = 'PENDING';
CREATE INDEX bookings_pending_expire_idx ON bookings (expire_time) WHERE status = 'PENDING';
CREATE INDEX bookings_slot_idx ON bookings (slot_id, id);
CREATE INDEX bookings_patient_idx ON bookings (patient_id, id);

-- Equipment cannot be an exclusion constraint (it is a count, not a yes/no),
-- so this trigger is its database-level guard: when a booking becomes active
-- it locks the slot's equipment rows (in id order, as the application does)
-- and checks that the PEAK use at any instant of the booking's interval stays
-- within the inventory. After the lock, each statement reads a fresh snapshot,
-- so concurrent bookings that committed first are counted.
CREATE FUNCTION bookings_check_equipment() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    item record;
    peak integer;
BEGIN
    IF NEW.status NOT IN ('PENDING', 'CONFIRMED')
       OR (TG_OP = 'UPDATE' AND OLD.status IN ('PENDING', 'CONFIRMED')) THEN
        RETURN NULL;
    END IF;
    FOR item IN
        SELECT e.id, e.name, e.quantity
        FROM slot_equipment se JOIN equipment e ON e.id = se.equipment_id
        WHERE se.slot_id = NEW.slot_id
        ORDER BY e.id
        FOR UPDATE OF e
    LOOP
        -- The peak over [start, end) is reached at the start of the window
        -- or at the start of some overlapping booking.
        SELECT max(in_use) INTO peak
        FROM (
            SELECT (SELECT coalesce(sum(x.quantity), 0)
                    FROM bookings b JOIN slot_equipment x ON x.slot_id = b.slot_id
                    WHERE x.equipment_id = item.id AND b.status IN ('PENDING', 'CONFIRMED')
                      AND b.during @> instant) AS in_use
            FROM (
                SELECT lower(NEW.during) AS instant
                UNION
                SELECT lower(b.during)
                FROM bookings b JOIN slot_equipment x ON x.slot_id = b.slot_id
                WHERE x.equipment_id = item.id AND b.status IN ('PENDING', 'CONFIRMED')
                  AND b.during && NEW.during AND lower(b.during) > lower(NEW.during)
            ) instants
        ) uses;
        IF peak > item.quantity THEN
            RAISE EXCEPTION 'equipment % over-used: % of % at the busiest moment', item.name, peak, item.quantity
                USING ERRCODE = 'check_violation', CONSTRAINT = 'bookings_equipment_within_inventory';
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER bookings_equipment_within_inventory
    AFTER INSERT OR UPDATE OF status ON bookings
    FOR EACH ROW EXECUTE FUNCTION bookings_check_equipment();
