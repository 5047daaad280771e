"""All of the bench's SQL: bulk loading with generate_series and the ceiling transaction.

The invariant checks are the test kit's (orflow_tools.testkit.invariants), shared with the tests.

Bulk data never goes through RPC: millions of rows in one INSERT ... SELECT
take seconds. The slot-change NOTIFY triggers are switched off while loading,
so a bulk load does not flood the server's LISTEN connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from orflow_server.db.active import is_active  # the server's one spelling of "active", as its indexes read it
from orflow_server.db.bookings import PATIENT_LOCK_SPACE  # the server's own number
from orflow_server.db.connection import Conn

VENTILATOR = "Bench ventilator"
PROCEDURES = ("Cardiac", "Neuro", "Ortho", "Spine", "Vascular", "Thoracic", "Plastic", "General")
_NOTIFY_TRIGGERS = (("slots", "slots_slot_change_notify"), ("bookings", "bookings_slot_change_notify"))


async def reset(conn: asyncpg.Connection, *, rooms: int) -> None:
    """Empties every table, then adds `rooms` rooms, one surgeon per room, and one ventilator."""
    await conn.execute("TRUNCATE bookings, slot_equipment, slots, equipment, doctors, rooms RESTART IDENTITY")
    await conn.execute("INSERT INTO rooms (name) SELECT 'OR ' || g FROM generate_series(1, $1) g", rooms)
    await conn.execute(
        "INSERT INTO doctors (name, specialty) SELECT 'Dr. Bench ' || g, 'Surgery' FROM generate_series(1, $1) g",
        rooms,
    )
    await conn.execute("INSERT INTO equipment (name, quantity) VALUES ($1, 1)", VENTILATOR)


async def clear_bookings(conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE bookings RESTART IDENTITY")


async def set_notify_triggers(conn: asyncpg.Connection, *, is_enabled: bool) -> None:
    verb = "ENABLE" if is_enabled else "DISABLE"
    for table, trigger in _NOTIFY_TRIGGERS:
        await conn.execute(f"ALTER TABLE {table} {verb} TRIGGER {trigger}")


@dataclass(frozen=True)
class SlotBlock:
    """Slots first_id..last_id: slot i is in room (i mod rooms)+1 with that room's surgeon, 1 h each."""

    first_id: int
    last_id: int

    @property
    def ids(self) -> list[int]:
        return list(range(self.first_id, self.last_id + 1))


async def load_slots(
    conn: asyncpg.Connection, *, count: int, rooms: int, start: datetime, step: timedelta = timedelta(hours=1)
) -> SlotBlock:
    """`count` one-hour slots round robin over the rooms: consecutive ids never share a room or a surgeon.

    Slot n (0-based) starts at start + (n div rooms) * step, so a room's slots never overlap.
    """
    await set_notify_triggers(conn, is_enabled=False)
    try:
        row = await conn.fetchrow(
            """
            WITH made AS (
              INSERT INTO slots (doctor_id, room_id, procedure_type, start_time, end_time)
              SELECT (n % $2) + 1, (n % $2) + 1, ($5::text[])[(n % array_length($5::text[], 1)) + 1],
                     $3::timestamptz + (n / $2) * $4::interval,
                     $3::timestamptz + (n / $2) * $4::interval + interval '1 hour'
              FROM generate_series(0, $1 - 1) n
              ORDER BY n
              RETURNING id)
            SELECT min(id) AS first_id, max(id) AS last_id FROM made
            """,
            count,
            rooms,
            start,
            step,
            list(PROCEDURES),
        )
    finally:
        await set_notify_triggers(conn, is_enabled=True)
    assert row is not None
    return SlotBlock(row["first_id"], row["last_id"])


async def load_ventilator_slots(conn: asyncpg.Connection, *, count: int, start: datetime) -> list[int]:
    """`count` slots in different rooms, with different surgeons, at overlapping times, all needing the ventilator."""
    ids: list[int] = await conn.fetchval(
        """
        WITH made AS (
          INSERT INTO slots (doctor_id, room_id, procedure_type, start_time, end_time)
          SELECT n + 1, n + 1, 'Thoracic', $2::timestamptz + n * interval '1 minute',
                 $2::timestamptz + n * interval '1 minute' + interval '2 hours'
          FROM generate_series(0, $1 - 1) n
          RETURNING id),
        needs AS (
          INSERT INTO slot_equipment (slot_id, equipment_id, quantity)
          SELECT made.id, e.id, 1 FROM made, equipment e WHERE e.name = $3)
        SELECT array_agg(id ORDER BY id) FROM made
        """,
        count,
        start,
        VENTILATOR,
    )
    return ids


async def book_every(conn: asyncpg.Connection, block: SlotBlock, *, nth: int, status: str, tag: str) -> int:
    """Books every `nth` slot of the block for a made-up patient; returns how many (notify triggers off)."""
    await set_notify_triggers(conn, is_enabled=False)
    try:
        result: str = await conn.execute(
            """
            INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,
                                  status, create_time, expire_time, update_time)
            SELECT s.id, s.room_id, s.doctor_id, s.start_time, s.end_time, s.end_time, $4 || s.id, $3,
                   s.start_time - interval '30 days', s.start_time - interval '29 days',
                   s.start_time - interval '29 days'
            FROM slots s WHERE s.id BETWEEN $1 AND $2 AND s.id % $5 = 0
            """,
            block.first_id,
            block.last_id,
            status,
            tag,
            nth,
        )
    finally:
        await set_notify_triggers(conn, is_enabled=True)
    return int(result.rsplit(" ", 1)[-1])


async def load_history(conns: Sequence[asyncpg.Connection], *, count: int, rooms: int, now: datetime) -> int:
    """`count` past bookings on `count` past slots, loaded over several connections at once.

    The mix: half CONFIRMED (surgery done), three in ten FAILED (holds left
    to expire, common when patients hold while they browse), one in five
    CANCELLED. Only the CONFIRMED ones enter the active-booking indexes.
    """
    conn = conns[0]
    past = await load_slots(conn, count=count, rooms=rooms, start=now - timedelta(hours=count // rooms + 48))
    # The equipment trigger has nothing to check here (history slots need no
    # equipment); skipping it and NOTIFY keeps a million-row load to a minute.
    await conn.execute("ALTER TABLE bookings DISABLE TRIGGER USER")
    try:
        step = -(-count // len(conns))
        done = await asyncio.gather(
            *(
                c.execute(_HISTORY, past.first_id + i * step, min(past.last_id, past.first_id + (i + 1) * step - 1))
                for i, c in enumerate(conns)
            )
        )
    finally:
        await conn.execute("ALTER TABLE bookings ENABLE TRIGGER USER")
    return sum(int(result.rsplit(" ", 1)[-1]) for result in done)


_HISTORY = """
INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,
                      status, failure_reason, create_time, expire_time, update_time)
SELECT s.id, s.room_id, s.doctor_id, s.start_time, s.end_time, s.end_time, 'hist-' || s.id,
       CASE WHEN s.id % 10 < 5 THEN 'CONFIRMED' WHEN s.id % 10 < 8 THEN 'FAILED' ELSE 'CANCELLED' END,
       CASE WHEN s.id % 10 BETWEEN 5 AND 7 THEN 'HOLD_EXPIRED' END,
       s.start_time - interval '30 days', s.start_time - interval '29 days', s.start_time - interval '29 days'
FROM slots s WHERE s.id BETWEEN $1 AND $2
"""


async def insert_holds(conn: asyncpg.Connection, block: SlotBlock, *, expire_time: datetime) -> list[asyncpg.Record]:
    """One PENDING hold per slot of the block, all expiring at `expire_time`; returns id and create_time of each."""
    return await conn.fetch(
        """
        INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id,
                              status, create_time, expire_time, update_time)
        SELECT s.id, s.room_id, s.doctor_id, s.start_time, s.end_time, s.end_time, 'hold-' || s.id,
               'PENDING', clock_timestamp(), $3, clock_timestamp()
        FROM slots s WHERE s.id BETWEEN $1 AND $2
        RETURNING id, slot_id, patient_id, create_time, expire_time, update_time
        """,
        block.first_id,
        block.last_id,
        expire_time,
    )


@dataclass(frozen=True)
class ExpiryProgress:
    failed: int
    lag_p50_s: float | None
    lag_p99_s: float | None
    lag_max_s: float | None


async def expiry_progress(conn: asyncpg.Connection, *, first_id: int, last_id: int) -> ExpiryProgress:
    """How many of the holds are stored FAILED, and their lag from expire_time to the FAILED write."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS failed,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM update_time - expire_time)) AS p50,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM update_time - expire_time)) AS p99,
               max(extract(epoch FROM update_time - expire_time))::float8 AS worst
        FROM bookings WHERE id BETWEEN $1 AND $2 AND status = 'FAILED'
        """,
        first_id,
        last_id,
    )
    assert row is not None
    return ExpiryProgress(row["failed"], row["p50"], row["p99"], row["worst"])


async def active_bookings_per_slot(conn: asyncpg.Connection, slot_ids: list[int]) -> dict[int, int]:
    rows = await conn.fetch(
        f"""
        SELECT s, count(b.id) AS n FROM unnest($1::bigint[]) s
        LEFT JOIN bookings b ON b.slot_id = s AND {is_active("b")}
        GROUP BY s
        """,
        slot_ids,
    )
    return {r["s"]: r["n"] for r in rows}


_LISTING = """
FROM slots WHERE start_time >= $1 AND ($2 = '' OR lower(procedure_type) = lower($2)) AND ($3 = 0 OR room_id = $3)
"""


async def count_listing(conn: asyncpg.Connection, *, procedure: str, room_id: int, window_start: datetime) -> int:
    """Rows in a ListSlots listing (before the availability filter)."""
    return int(await conn.fetchval("SELECT count(*) " + _LISTING, window_start, procedure, room_id))


async def page_key_at(
    conn: asyncpg.Connection, *, procedure: str, room_id: int, window_start: datetime, offset: int
) -> tuple[datetime, int]:
    """The (start_time, id) of the row `offset` rows into a listing: where a deep page starts."""
    row = await conn.fetchrow(
        "SELECT start_time, id " + _LISTING + " ORDER BY start_time, id OFFSET $4 LIMIT 1",
        window_start,
        procedure,
        room_id,
        offset,
    )
    assert row is not None, "no slot that deep"
    return row["start_time"], row["id"]


async def count_slots(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM slots"))


async def count_bookings(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM bookings"))


# --- the ceiling ---------------------------------------------------------------------------------------

_CEILING_LOCK_SLOT = """
SELECT s.id, s.room_id, s.doctor_id, s.start_time, s.end_time,
       ARRAY(SELECT equipment_id FROM slot_equipment WHERE slot_id = s.id ORDER BY equipment_id) AS equipment_ids
FROM slots s WHERE s.id = $1 FOR UPDATE
"""
# Room, surgeon, equipment (by id) and patient, in the server's lock order, in one round trip.
_CEILING_LOCK_RESOURCES = """
SELECT (SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE),
       (SELECT 1 FROM doctors WHERE id = $2 FOR UPDATE),
       (SELECT count(*) FROM (SELECT 1 FROM equipment WHERE id = ANY($3::bigint[]) ORDER BY id FOR UPDATE) e),
       pg_advisory_xact_lock($5, hashtext($4))
"""
# Active spelt as the server spells it (db/active.py): literal SQL, so the partial indexes apply.
_CEILING_CHECK = f"""
SELECT EXISTS (SELECT 1 FROM bookings WHERE slot_id = $1 AND {is_active()})
    OR EXISTS (SELECT 1 FROM bookings WHERE room_id = $2 AND {is_active()}
               AND room_during && tstzrange($4, $5, '[)'))
    OR EXISTS (SELECT 1 FROM bookings WHERE doctor_id = $3 AND {is_active()}
               AND during && tstzrange($4, $5, '[)'))
    OR EXISTS (SELECT 1 FROM bookings WHERE patient_id = $6 AND {is_active()}
               AND during && tstzrange($4, $5, '[)'))
    OR EXISTS (SELECT 1 FROM slot_equipment need JOIN equipment e ON e.id = need.equipment_id
               WHERE need.slot_id = $1 AND need.quantity + (
                 SELECT coalesce(sum(se.quantity), 0) FROM bookings b
                 JOIN slot_equipment se ON se.slot_id = b.slot_id AND se.equipment_id = e.id
                 WHERE {is_active("b")} AND b.during && tstzrange($4, $5, '[)')) > e.quantity)
"""
_CEILING_INSERT = """
INSERT INTO bookings (slot_id, room_id, doctor_id, start_time, end_time, room_free_time, patient_id, request_id,
                      status, create_time, expire_time, update_time)
VALUES ($1, $2, $3, $4, $5, $5, $6, $7, 'PENDING', clock_timestamp(), clock_timestamp() + interval '120 s',
        clock_timestamp())
"""


async def ceiling_book(conn: Conn, slot_id: int, patient_id: str, request_id: str) -> bool:
    """The booking transaction with nothing around it: lock the slot and resources FOR UPDATE, check, insert, commit.

    True if it booked, False if the slot or a resource was taken. The
    equipment check is a plain sum over the interval (stricter than peak use).
    """
    async with conn.transaction():
        slot = await conn.fetchrow(_CEILING_LOCK_SLOT, slot_id)
        if slot is None:
            return False
        await conn.fetchrow(
            _CEILING_LOCK_RESOURCES,
            slot["room_id"],
            slot["doctor_id"],
            slot["equipment_ids"],
            patient_id,
            PATIENT_LOCK_SPACE,
        )
        facts = (slot_id, slot["room_id"], slot["doctor_id"], slot["start_time"], slot["end_time"])
        if await conn.fetchval(_CEILING_CHECK, *facts, patient_id):
            return False
        await conn.execute(_CEILING_INSERT, *facts, patient_id, request_id)
    return True


# The server's own booking function (migration 0006), called raw: one statement, its own transaction.
_CEILING_FUNCTION = "SELECT outcome FROM orflow_book($1, $2, $3, 'orflow-bench', 'SERVICE', $4::interval, $5::interval)"
REFUSED_SQLSTATE = "ORF01"  # what orflow_book() raises a refusal with


async def ceiling_book_function(
    conn: Conn, slot_id: int, patient_id: str, request_id: str, *, turnover: timedelta, hold_ttl: timedelta
) -> bool:
    """The same rule as CreateBooking in its fastest raw form: one round trip to orflow_book(), nothing around it.

    True if it booked, False if the function refused (a conflict).
    """
    try:
        await conn.fetchval(_CEILING_FUNCTION, slot_id, patient_id, request_id, turnover, hold_ttl)
    except asyncpg.PostgresError as exc:
        if exc.sqlstate == REFUSED_SQLSTATE:
            return False
        raise
    return True


async def vacuum_analyze(conn: asyncpg.Connection) -> None:
    """After a bulk load: statistics, hint bits and the visibility map, as a real database has them in time.

    Without it the first reads after loading a million rows pay for setting
    hint bits (and race autovacuum), which measures the load, not the size.
    """
    await conn.execute("VACUUM (ANALYZE)")
