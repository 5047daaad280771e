"""Opaque keyset page tokens and page sizes. No database."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import ClassVar

import pytest
from orflow_server.domain.errors import InvalidArgumentError
from orflow_server.domain.filters import AuditFilters, BookingFilters, DoctorFilters, SlotFilters
from orflow_server.domain.models import BookingStatus
from orflow_server.domain.paging import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    FilterValue,
    PageFilters,
    decode_page_token,
    encode_page_token,
    filter_encoding,
    page_size_or_default,
)


@dataclass(frozen=True)
class Filters:
    listing: ClassVar[str] = "things"

    room_id: int = 0
    doctor_id: int = 0

    def token_fields(self) -> dict[str, FilterValue]:
        return {"room_id": self.room_id, "doctor_id": self.doctor_id}


FILTERS = Filters(room_id=3)


def raw_token(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def json_token(value: object) -> str:
    return raw_token(json.dumps(value).encode())


def fingerprint_of(filters: PageFilters) -> str:
    """The fingerprint a real token carries, read back from one the module issued."""
    token = encode_page_token([1], filters)
    decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    return str(decoded["f"])


def assert_page_token_error(
    token: str, *, shape: tuple[type, ...] = (int, int), filters: PageFilters = FILTERS
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        decode_page_token(token, filters, shape=shape)
    assert [v.field for v in caught.value.violations] == ["page_token"]


# --- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        ([1_700_000_000_000_000, 42], (int, int)),
        (["Dr. Meera Iyer", 7], (str, int)),
        (["名前 with ünïcode / +=", 0], (str, int)),
        ([9], (int,)),
        ([0, 2**62], (int, int)),
    ],
)
def test_round_trip(key: list[str | int], shape: tuple[type, ...]) -> None:
    token = encode_page_token(key, FILTERS)
    assert decode_page_token(token, FILTERS, shape=shape) == key


def test_token_is_url_safe_and_unpadded() -> None:
    token = encode_page_token(["??>>~~", 1], FILTERS)
    assert not set(token) & set("+/=")


def test_empty_token_is_the_first_page() -> None:
    assert decode_page_token("", FILTERS, shape=(int, int)) is None


def test_equal_filters_share_tokens() -> None:
    token = encode_page_token([1, 2], Filters(room_id=3))
    assert decode_page_token(token, Filters(room_id=3), shape=(int, int)) == [1, 2]


# --- page sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "served"),
    [
        (0, DEFAULT_PAGE_SIZE),
        (1, 1),
        (50, 50),
        (MAX_PAGE_SIZE, MAX_PAGE_SIZE),
        (MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE),
        (2**31 - 1, MAX_PAGE_SIZE),
    ],
)
def test_page_size_defaults_and_caps(requested: int, served: int) -> None:
    assert DEFAULT_PAGE_SIZE == 50 and MAX_PAGE_SIZE == 1000
    assert page_size_or_default(requested) == served


@pytest.mark.parametrize("requested", [-1, -(2**31)])
def test_negative_page_size_is_invalid(requested: int) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        page_size_or_default(requested)
    assert [v.field for v in caught.value.violations] == ["page_size"]


# --- tokens the API never issued ------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("!!!", id="not-base64"),
        pytest.param("a", id="one-char"),
        pytest.param("abcde", id="impossible-length"),
        pytest.param("éééé", id="non-ascii"),
        pytest.param("%%%%", id="punctuation"),
        pytest.param(raw_token(b"hello, world"), id="base64-not-json"),
        pytest.param(raw_token(b"\xff\xfe\x00garbage"), id="base64-not-utf8"),
        pytest.param(json_token([1, 2]), id="json-list"),
        pytest.param(json_token("k"), id="json-string"),
        pytest.param(json_token(12), id="json-number"),
        pytest.param(json_token(None), id="json-null"),
        pytest.param(json_token({"k": [1, 2]}), id="dict-without-fingerprint"),
        pytest.param(json_token({"f": "x"}), id="dict-without-key"),
        pytest.param(raw_token(b'{"k":[1,2],"f":"' + b"9" * 5000 + b'"'), id="truncated-json"),
        pytest.param(raw_token(b'{"k":[' + b"9" * 5000 + b',1],"f":"x"}'), id="int-too-long-to-parse"),
    ],
)
def test_garbage_tokens_are_invalid_page_token(token: str) -> None:
    assert_page_token_error(token)


def test_token_issued_for_other_filters_is_refused() -> None:
    token = encode_page_token([1, 2], Filters(room_id=3))
    assert_page_token_error(token, filters=Filters(room_id=4))


def test_forged_fingerprint_is_refused() -> None:
    assert_page_token_error(json_token({"k": [1, 2], "f": "0" * 16}))


@pytest.mark.parametrize(
    ("key", "shape"),
    [
        pytest.param([1], (int, int), id="too-short"),
        pytest.param([1, 2, 3], (int, int), id="too-long"),
        pytest.param([], (int,), id="empty-key"),
        pytest.param(["1", 2], (int, int), id="str-for-int"),
        pytest.param([1, 2], (str, int), id="int-for-str"),
        pytest.param([1.5, 2], (int, int), id="float-for-int"),
        pytest.param([True, 2], (int, int), id="bool-for-int"),
        pytest.param([1, False], (int, int), id="bool-for-int-second"),
        pytest.param([None, 2], (int, int), id="null"),
        pytest.param([[1], 2], (int, int), id="nested-list"),
        pytest.param([{"a": 1}, 2], (int, int), id="nested-dict"),
    ],
)
def test_wrong_shape_is_invalid_page_token(key: list[object], shape: tuple[type, ...]) -> None:
    token = json_token({"k": key, "f": fingerprint_of(FILTERS)})
    assert_page_token_error(token, shape=shape)


@pytest.mark.parametrize("key", [{"a": 1}, "1,2", 12, None])
def test_key_that_is_not_a_list_is_invalid_page_token(key: object) -> None:
    assert_page_token_error(json_token({"k": key, "f": fingerprint_of(FILTERS)}))


def test_deeply_nested_json_is_invalid_page_token() -> None:
    # About 130 KB, below gRPC's 4 MB request limit: once escaped as RecursionError (INTERNAL).
    assert_page_token_error(raw_token(b"[" * 100_000))


@pytest.mark.parametrize("key", [[-1], [2**62 + 1], [2**63]])
def test_key_ints_out_of_range_are_invalid_page_token(key: list[int]) -> None:
    assert_page_token_error(json_token({"k": key, "f": fingerprint_of(FILTERS)}), shape=(int,))


# --- the filter encoding is explicit, versioned and pinned ---------------------------------------------

MOMENT = datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=UTC)

# Tokens clients may hold right now. If one of these changes, every token in the wild stops working:
# change the encoding only on purpose, bump FILTER_ENCODING_VERSION, and pin the new tokens here.
# Filters added since (sites' site_id and day, show_retired, slot_ids) join only when set: these stay valid.
PINNED = [
    pytest.param(
        SlotFilters(procedure_type="Knee", room_id=3, window_start=MOMENT, is_available_only=True),
        [1_700_000_000_000_000, 42],
        "eyJrIjpbMTcwMDAwMDAwMDAwMDAwMCw0Ml0sImYiOiJlYzJkNzVjNWE2Njc5MjMyIn0",
        id="slots",
    ),
    pytest.param(
        BookingFilters(status=BookingStatus.CONFIRMED, patient_id="P-1"),
        [9],
        "eyJrIjpbOV0sImYiOiIxZGNkZTg1ZWM2MmUwODhmIn0",
        id="bookings",
    ),
    pytest.param(
        AuditFilters(action="booking.create", end_time=MOMENT),
        [7],
        "eyJrIjpbN10sImYiOiJlZWJjZTczNmQwMWM4OTA2In0",
        id="audit_events",
    ),
    pytest.param(
        DoctorFilters(query="card"),
        ["Dr. Meera Iyer", 7],
        "eyJrIjpbIkRyLiBNZWVyYSBJeWVyIiw3XSwiZiI6IjM4MjY4MTFiYThkYzVjZjcifQ",
        id="doctors",
    ),
    pytest.param(
        SlotFilters(site_id=2, day=date(2027, 3, 28)),
        [1_811_000_000_000_000, 5],
        "eyJrIjpbMTgxMTAwMDAwMDAwMDAwMCw1XSwiZiI6IjFlZjc3ZjM5ZTNlMTE4ZDIifQ",
        id="slots-site-day",
    ),
]


def test_a_token_for_a_site_is_refused_for_another_site_or_none() -> None:
    """site_id joins the encoding only when set, yet still binds the token to its site."""
    token = encode_page_token([1_811_000_000_000_000, 5], SlotFilters(site_id=2))
    for other in (SlotFilters(site_id=3), SlotFilters()):
        with pytest.raises(InvalidArgumentError):
            decode_page_token(token, other, shape=(int, int))


@pytest.mark.parametrize(("filters", "key", "token"), PINNED)
def test_tokens_for_known_filters_are_pinned(filters: PageFilters, key: list[str | int], token: str) -> None:
    assert encode_page_token(key, filters) == token
    assert decode_page_token(token, filters, shape=tuple(type(part) for part in key)) == key


def test_the_encoding_is_a_version_byte_then_named_fields_sorted_by_name() -> None:
    encoded = filter_encoding(BookingFilters(status=BookingStatus.PENDING, slot_id=5))
    assert encoded == b'\x01["bookings",[["patient_id",""],["slot_id",5],["status","PENDING"]]]'


def test_times_are_encoded_in_utc_whatever_their_zone() -> None:
    here = SlotFilters(window_start=MOMENT)
    india = datetime.fromisoformat("2030-01-01T00:00:00+05:30").tzinfo
    elsewhere = SlotFilters(window_start=MOMENT.astimezone(india))
    assert elsewhere.window_start is not None and elsewhere.window_start.utcoffset() != MOMENT.utcoffset()
    assert filter_encoding(here) == filter_encoding(elsewhere)


@pytest.mark.parametrize(
    ("issued_for", "replayed_with"),
    [
        pytest.param(SlotFilters(room_id=3), SlotFilters(room_id=4), id="slots-other-room"),
        pytest.param(SlotFilters(), SlotFilters(is_available_only=True), id="slots-available-only"),
        pytest.param(SlotFilters(window_start=MOMENT), SlotFilters(window_end=MOMENT), id="slots-start-vs-end"),
        pytest.param(SlotFilters(site_id=1), SlotFilters(site_id=2), id="slots-other-site"),
        pytest.param(
            SlotFilters(site_id=1, day=date(2027, 3, 28)), SlotFilters(site_id=1, day=date(2027, 3, 29)), id="slots-day"
        ),
        pytest.param(SlotFilters(room_id=1), SlotFilters(site_id=1), id="slots-room-vs-site"),
        pytest.param(BookingFilters(status=BookingStatus.PENDING), BookingFilters(), id="bookings-status"),
        pytest.param(BookingFilters(slot_id=1), BookingFilters(patient_id="1"), id="bookings-slot-vs-patient"),
        pytest.param(AuditFilters(actor="a"), AuditFilters(action="a"), id="audit-actor-vs-action"),
        pytest.param(DoctorFilters(query="a"), DoctorFilters(query="b"), id="doctors-query"),
        pytest.param(DoctorFilters(), AuditFilters(), id="another-listing-with-empty-filters"),
    ],
)
def test_a_token_from_other_filters_is_refused(issued_for: PageFilters, replayed_with: PageFilters) -> None:
    token = encode_page_token([1], issued_for)
    with pytest.raises(InvalidArgumentError) as caught:
        decode_page_token(token, replayed_with, shape=(int,))
    [violation] = caught.value.violations
    assert (violation.field, violation.description) == (
        "page_token",
        "was issued for different filters; start again without it",
    )
