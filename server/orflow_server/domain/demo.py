"""The demo data set SeedDatabase loads: the seed system's own data plus more.

The seed's rooms, inventory and eight 2-hour slots, a scarce item with one
unit, and a few days of slots that contend for rooms, surgeons and equipment.
Times are relative to `now` so the demo is always bookable.

Sites: the seed's four Indian hospitals (Asia/Kolkata, no daylight saving;
their slots keep the seed's UTC hours), and a London hospital
(Europe/London, which changes its clocks) whose slots are at fixed local
hours, so they move by an hour in UTC across a daylight-saving change. Its
hybrid theatre has its own, longer turnover.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class DemoSite:
    name: str
    display_name: str
    time_zone: str


@dataclass(frozen=True)
class DemoRoom:
    name: str
    site: str
    turnover: timedelta | None = None


SITES = (
    DemoSite("apollo", "Apollo Hospital", "Asia/Kolkata"),
    DemoSite("fortis", "Fortis Hospital", "Asia/Kolkata"),
    DemoSite("max-care", "Max Care Hospital", "Asia/Kolkata"),
    DemoSite("city-hospital", "City Hospital", "Asia/Kolkata"),
    DemoSite("st-thomas-london", "St Thomas' Hospital, London", "Europe/London"),
)

ROOMS = ("Apollo Room 101", "Fortis Room 202", "Max Care 303", "City Hospital 404")
"""The seed's rooms, one per Indian hospital."""

LONDON_SITE = "st-thomas-london"
LONDON_ROOMS = ("St Thomas' Theatre 1", "St Thomas' Hybrid Theatre")

DEMO_ROOMS = (
    DemoRoom("Apollo Room 101", "apollo"),
    DemoRoom("Fortis Room 202", "fortis"),
    DemoRoom("Max Care 303", "max-care"),
    DemoRoom("City Hospital 404", "city-hospital"),
    DemoRoom("St Thomas' Theatre 1", LONDON_SITE),
    DemoRoom("St Thomas' Hybrid Theatre", LONDON_SITE, turnover=timedelta(minutes=45)),
)

EQUIPMENT = (
    ("Ventilator", 5),
    ("MRI Machine", 2),
    ("ECG Monitor", 10),
    ("Dialysis Unit", 3),
    ("ECMO Machine", 1),  # the scarce item: one unit for the whole hospital
)

DOCTORS = (
    ("Dr. Meera Iyer", "Cardiothoracic Surgery"),
    ("Dr. Arjun Mehta", "Neurosurgery"),
    ("Dr. Sarah Collins", "Orthopedic Surgery"),
    ("Dr. Rahul Verma", "Nephrology"),
    ("Dr. Gregory House", "Diagnostic Medicine"),
    ("Dr. Priya Nair", "General Surgery"),
    ("Dr. Eleanor Hughes", "Vascular Surgery"),
    ("Dr. James Whitfield", "Orthopedic Surgery"),
)


@dataclass(frozen=True)
class DemoSlot:
    doctor: str
    procedure_type: str
    room: str
    start_time: datetime
    end_time: datetime
    equipment: tuple[tuple[str, int], ...]


# The seed's eight 2-hour slots: (doctor, procedure, room, hour of day, equipment).
_SEED_SLOTS = (
    ("Dr. Meera Iyer", "Cardiac Bypass", "Apollo Room 101", 8, (("Ventilator", 1), ("ECG Monitor", 1))),
    ("Dr. Arjun Mehta", "Brain Tumor Resection", "Fortis Room 202", 8, (("MRI Machine", 1), ("Ventilator", 1))),
    ("Dr. Sarah Collins", "Knee Replacement", "Max Care 303", 9, (("ECG Monitor", 1),)),
    ("Dr. Rahul Verma", "Kidney Transplant", "City Hospital 404", 9, (("Dialysis Unit", 1), ("Ventilator", 1))),
    ("Dr. Gregory House", "Diagnostics", "Apollo Room 101", 11, (("MRI Machine", 1),)),
    ("Dr. Priya Nair", "Appendectomy", "Fortis Room 202", 11, (("ECG Monitor", 1),)),
    ("Dr. Arjun Mehta", "Spinal Fusion", "Max Care 303", 12, (("MRI Machine", 1), ("Ventilator", 1))),
    ("Dr. Meera Iyer", "Heart Valve Repair", "City Hospital 404", 13, (("ECMO Machine", 1), ("Ventilator", 1))),
)

_PROCEDURES = (
    ("Dr. Meera Iyer", "Cardiac Bypass", (("ECMO Machine", 1), ("Ventilator", 1))),
    ("Dr. Arjun Mehta", "Brain Tumor Resection", (("MRI Machine", 1),)),
    ("Dr. Sarah Collins", "Hip Replacement", (("ECG Monitor", 1),)),
    ("Dr. Rahul Verma", "Kidney Transplant", (("Dialysis Unit", 1), ("ECMO Machine", 1))),
    ("Dr. Gregory House", "Diagnostics", (("MRI Machine", 1),)),
    ("Dr. Priya Nair", "Laparoscopic Cholecystectomy", (("Ventilator", 1),)),
)


# One surgeon per London theatre, in LONDON_ROOMS' order: the vascular cases need the hybrid theatre.
_LONDON_PROCEDURES = (
    ("Dr. James Whitfield", "Hip Replacement", (("ECG Monitor", 1),)),
    ("Dr. Eleanor Hughes", "Endovascular Aneurysm Repair", (("Ventilator", 1), ("MRI Machine", 1))),
)


def london_slots(now: datetime, *, days: int = 5) -> list[DemoSlot]:
    """Two 2-hour slots a day in each London theatre, at 08:00 and 13:00 London time, from tomorrow (local)."""
    zone = ZoneInfo("Europe/London")
    today = now.astimezone(zone).date()
    slots = []
    for day in range(1, days + 1):
        for room, (doctor, procedure, equipment) in zip(LONDON_ROOMS, _LONDON_PROCEDURES, strict=True):
            for hour in (8, 13):
                local = datetime.combine(today + timedelta(days=day), time(hour), tzinfo=zone)
                start = local.astimezone(UTC)
                slots.append(DemoSlot(doctor, procedure, room, start, start + timedelta(hours=2), equipment))
    return slots


def demo_slots(now: datetime, *, days: int = 5) -> list[DemoSlot]:
    """The seed's eight slots tomorrow, three 2-hour slots per Indian room per day after, and London's."""
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    slots = [
        DemoSlot(doctor, procedure, room, tomorrow + timedelta(hours=h), tomorrow + timedelta(hours=h + 2), eq)
        for doctor, procedure, room, h, eq in _SEED_SLOTS
    ]
    for day in range(1, days + 1):
        base = tomorrow + timedelta(days=day)
        for room_index, room in enumerate(ROOMS):
            for block, hour in enumerate((8, 11, 14)):
                doctor, procedure, equipment = _PROCEDURES[(day + room_index * 3 + block) % len(_PROCEDURES)]
                start = base + timedelta(hours=hour)
                slots.append(DemoSlot(doctor, procedure, room, start, start + timedelta(hours=2), equipment))
    return slots + london_slots(now, days=days)
