"""What the FHIR edge supports, declared once, and the parsing of search parameters into gRPC filters.

`SUPPORTED` is the registry the routes check every request against (an
unknown search parameter is a 400, never silently ignored) and the
CapabilityStatement is rendered from: what it says is exactly what runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from multidict import MultiMapping

from .errors import invalid

COUNT: Final = "_count"
PAGE_TOKEN: Final = "_page_token"  # ours: the gRPC next_page_token, carried in Bundle.link[next]
MAX_COUNT: Final = 1000
_IGNORED = frozenset({"_format"})  # accepted for JSON only (checked by the routes)


@dataclass(frozen=True)
class Param:
    type: str  # FHIR search parameter type
    documentation: str


@dataclass(frozen=True)
class ResourceSupport:
    interactions: tuple[str, ...]
    params: Mapping[str, Param] = field(default_factory=dict)
    documentation: str = ""
    conditional_create: bool = False
    versioned: bool = False


_PAGED = {COUNT: Param("number", "page size, 1 to 1000"), PAGE_TOKEN: Param("string", "opaque; follow link[next]")}

SUPPORTED: Final[Mapping[str, ResourceSupport]] = {
    "Slot": ResourceSupport(
        ("read", "search-type"),
        {
            "schedule.actor": Param("reference", "Location/<room id> or Practitioner/<surgeon id> (AND when repeated)"),
            "schedule": Param("reference", "Schedule/room-<room id>-surgeon-<surgeon id>"),
            "start": Param("date", "prefixes ge, gt, le, lt, eq (the slot's start); repeat for a window"),
            "status": Param("token", "free only (slots someone may book now)"),
            "service-type": Param("token", "the procedure, e.g. Appendectomy (exact, case-insensitive)"),
            **_PAGED,
        },
        "Published operating-room slots; never says who holds one.",
    ),
    "Appointment": ResourceSupport(
        ("read", "search-type", "create", "update", "patch"),
        {
            "patient": Param("reference", "Patient/<patient id>; a patient token may omit it (its own)"),
            "status": Param("token", "pending, booked or cancelled"),
            "date": Param("date", "prefixes ge, gt, le, lt, eq (the appointment's start)"),
            **_PAGED,
        },
        "A booking. POST holds a Slot (status pending); PATCH/PUT status booked confirms, cancelled cancels.",
        conditional_create=True,
        versioned=True,
    ),
    "Schedule": ResourceSupport(("read",), {}, "One surgeon's calendar in one room: id room-<room>-surgeon-<surgeon>."),
    "Practitioner": ResourceSupport(
        ("read", "search-type"), {"name": Param("string", "part of the surgeon's name"), **_PAGED}, "Surgeons."
    ),
    "PractitionerRole": ResourceSupport(
        ("read", "search-type"),
        {"specialty": Param("token", "part of the specialty, e.g. cardio"), **_PAGED},
        "A surgeon's role and specialty (one per surgeon, same id as the Practitioner).",
    ),
    "Location": ResourceSupport(
        ("read", "search-type"),
        {"name": Param("string", "part of the room's name")},
        "Operating rooms (admin tokens, as gRPC's ListRooms).",
    ),
    "Device": ResourceSupport(
        ("read", "search-type"),
        {"device-name": Param("string", "part of the equipment type's name")},
        "One Device per equipment type, its unit count in property (admin tokens, as gRPC's ListEquipment).",
    ),
    "Organization": ResourceSupport(("read",), {}, "The hospital (one, until sites exist)."),
}


class Query:
    """A request's search parameters; every one must be read, or the request is refused (strict handling)."""

    def __init__(self, resource_type: str, raw: MultiMapping[str]) -> None:
        allowed = SUPPORTED[resource_type].params
        unknown = sorted({k for k in raw if k not in allowed and k not in _IGNORED})
        if unknown:
            raise invalid(f"unsupported search parameter(s) for {resource_type}: {', '.join(unknown)}")
        self._raw = raw

    def all(self, name: str) -> list[str]:
        return [v for v in self._raw.getall(name, []) if v != ""]

    def one(self, name: str) -> str:
        values = self.all(name)
        if len(values) > 1:
            raise invalid(f"{name} may be given once", field_name=name)
        return values[0] if values else ""

    def count(self) -> int:
        raw = self.one(COUNT)
        if not raw:
            return 0
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_COUNT:
            raise invalid(f"_count must be a whole number from 1 to {MAX_COUNT}", field_name=COUNT)
        return int(raw)

    def page_token(self) -> str:
        return self.one(PAGE_TOKEN)


_PREFIX = re.compile(r"^(eq|ge|gt|le|lt)?(\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?)$")


@dataclass(frozen=True)
class Window:
    """Starts in [low, high): what date prefixes on a start time become (open ends are None)."""

    low: datetime | None = None
    high: datetime | None = None

    def narrowed(self, low: datetime | None, high: datetime | None) -> Window:
        new_low = max(x for x in (self.low, low) if x is not None) if (self.low or low) else None
        new_high = min(x for x in (self.high, high) if x is not None) if (self.high or high) else None
        return Window(new_low, new_high)

    def holds(self, moment: datetime) -> bool:
        return (self.low is None or moment >= self.low) and (self.high is None or moment < self.high)


def window(name: str, values: list[str]) -> Window:
    """`ge2030-01-01`, `lt2030-01-02T09:00:00Z`, …: a date means its whole UTC day, a dateTime its instant."""
    result = Window()
    for value in values:
        match = _PREFIX.match(value)
        if not match:
            raise invalid(f"{name}={value!r} is not [prefix]YYYY-MM-DD[Thh:mm:ss[Z|±hh:mm]]", field_name=name)
        prefix, text = match[1] or "eq", match[2]
        try:
            start = datetime.fromisoformat(text)
        except ValueError:
            raise invalid(f"{name}={value!r} is not a valid date", field_name=name) from None
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
        end = start + (timedelta(days=1) if "T" not in text else timedelta(microseconds=1))
        bounds = {"ge": (start, None), "gt": (end, None), "le": (None, end), "lt": (None, start), "eq": (start, end)}
        result = result.narrowed(*bounds[prefix])
    return result


def reference_id(name: str, value: str, resource_type: str) -> str:
    """`Location/3` or `3` (when only one type fits) → `3`."""
    kind, slash, rest = value.rpartition("/")
    if slash and kind.split("/")[-1] != resource_type:
        raise invalid(f"{name} must reference a {resource_type}, not {value!r}", field_name=name)
    return rest


def positive_id(name: str, value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 2**63:
        raise invalid(f"{name}: {value!r} is not an id of ours (a positive whole number)", field_name=name)
    return int(value)


def token_code(value: str) -> str:
    """`system|code` or `code` → code."""
    return value.rpartition("|")[2]
