"""The one set of SQL checks for OR Flow's promise: no double booking of a slot, room, surgeon, patient or equipment.

The tests (tests/rpc/test_concurrency.py), the bench (after every scenario) and
tests/tools/test_invariants.py (which plants each violation with the database's
own guards dropped, so the checks are shown to fail) all use these.

The checks do not trust what they check: the facts come from the slots table
(the source of truth), not from the columns a booking copies, and clashes are
found by sorting (window functions), not by the constraints themselves. That
keeps them linear-ish on a million-row history. An overdue PENDING hold counts
as active here, which is stricter than the rule. The one fact taken from the
booking row is room_free_time (the room's time ends at the later of the slot's
end and it): the turnover in force when the booking was made, the room's own
or the default (migration 0009), which no other table records.
"""

from __future__ import annotations

import asyncpg

# Spelt out here, not imported: the checks must not share the definition they check (domain.models has the same
# set; CHECKED_IN, IN_PROGRESS and COMPLETED hold everything a CONFIRMED booking holds, migration 0007).
ACTIVE_STATUSES = ("PENDING", "CONFIRMED", "CHECKED_IN", "IN_PROGRESS", "COMPLETED")

_ACTIVE = """
WITH active AS (
    SELECT b.id, b.slot_id, b.patient_id, s.room_id, s.doctor_id,
           tstzrange(s.start_time, s.end_time, '[)') AS during,
           tstzrange(s.start_time, greatest(s.end_time, b.room_free_time), '[)') AS room_during
    FROM bookings b JOIN slots s ON s.id = b.slot_id
    WHERE b.status = ANY($1::text[])
)
"""


def _overlaps(partition: str, span: str) -> str:
    """Active bookings that start before an earlier one (same `partition`) has ended."""
    return f"""
    SELECT count(*) FROM (
        SELECT lower({span}) < max(upper({span})) OVER w AS clash FROM active
        WINDOW w AS (PARTITION BY {partition} ORDER BY lower({span}), id
                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    ) x WHERE clash"""


# Rule → how many bookings break it (0 when sound).
_RULES = {
    # Active bookings beyond the first on one slot.
    "slot_double_booked": "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM active GROUP BY slot_id) x",
    "room_overlap": _overlaps("room_id", "room_during"),
    "surgeon_overlap": _overlaps("doctor_id", "during"),
    "patient_overlap": _overlaps("patient_id", "during"),
    # Instants (some booking's start: use only rises there) at which an equipment type is used beyond its stock.
    # Each instant once (DISTINCT): two uses starting together must not count each other twice.
    "equipment_over_use": """
    SELECT count(*) FROM (
        SELECT u.equipment_id, u.instant, sum(v.quantity) AS in_use FROM
            (SELECT DISTINCT se.equipment_id, lower(a.during) AS instant
             FROM active a JOIN slot_equipment se ON se.slot_id = a.slot_id) u
            JOIN (SELECT a.during, se.equipment_id, se.quantity FROM active a
                  JOIN slot_equipment se ON se.slot_id = a.slot_id) v
              ON v.equipment_id = u.equipment_id AND v.during @> u.instant
        GROUP BY u.equipment_id, u.instant) peaks
    JOIN equipment e ON e.id = peaks.equipment_id WHERE peaks.in_use > e.quantity""",
}

RULES = tuple(_RULES)
NO_VIOLATIONS = dict.fromkeys(RULES, 0)

_PEAK_USE = (
    _ACTIVE
    + """,
use AS (SELECT se.equipment_id, a.during, se.quantity FROM active a JOIN slot_equipment se ON se.slot_id = a.slot_id),
at_starts AS (
    SELECT p.equipment_id, sum(u.quantity) AS in_use
    FROM (SELECT DISTINCT equipment_id, lower(during) AS instant FROM use) p
    JOIN use u ON u.equipment_id = p.equipment_id AND u.during @> p.instant
    GROUP BY p.equipment_id, p.instant
)
SELECT e.id, e.quantity, coalesce(max(a.in_use), 0)::int AS peak
FROM equipment e LEFT JOIN at_starts a ON a.equipment_id = e.id
GROUP BY e.id, e.quantity
"""
)


async def violations(conn: asyncpg.Connection) -> dict[str, int]:
    """Rule name → number of violations in the database right now; equal to NO_VIOLATIONS when sound."""
    statuses = list(ACTIVE_STATUSES)
    return {name: int(await conn.fetchval(_ACTIVE + query, statuses)) for name, query in _RULES.items()}


async def peak_use(conn: asyncpg.Connection) -> dict[int, tuple[int, int]]:
    """Equipment id → (the most units active bookings use at one instant, the quantity owned)."""
    rows = await conn.fetch(_PEAK_USE, list(ACTIVE_STATUSES))
    return {r["id"]: (r["peak"], r["quantity"]) for r in rows}
