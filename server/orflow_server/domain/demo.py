"""The demo data set SeedDatabase loads: the seed system's own data plus more.

The seed's rooms, inventory and eight 2-hour slots, a scarce item with one
unit, and a few days of slots that contend for rooms, surgeons and equipment.
Times are relative to `now` so the demo is always bookable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

ROOMS = ("Apollo Room 101", "Fortis Room 202", "Max Care 303", "City Hospital 404")

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


def demo_slots(now: datetime, *, days: int = 5) -> list[DemoSlot]:
    """The seed's eight slots tomorrow, then three 2-hour slots per room per day after."""
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
    return slots
