"""RequestChecker: field checks that collect every violation. No server, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from google.protobuf import timestamp_pb2
from orflow.v1 import booking_pb2
from orflow_server.domain.errors import FieldViolation, InvalidArgumentError
from orflow_server.rpc.validate import RequestChecker

MAX_SECONDS = 221_845_392_000  # 9000-01-01T00:00:00Z


def fields(checker: RequestChecker) -> list[str]:
    return [v.field for v in checker.violations]


# --- ids --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 2**63 - 1])
def test_positive_id_accepts(value: int) -> None:
    checker = RequestChecker()
    assert checker.positive_id("slot_id", value) == value
    assert checker.violations == []


def test_positive_id_zero_is_required() -> None:
    checker = RequestChecker()
    checker.positive_id("slot_id", 0)
    assert checker.violations == [FieldViolation("slot_id", "is required")]


@pytest.mark.parametrize("value", [-1, -(2**63)])
def test_positive_id_negative(value: int) -> None:
    checker = RequestChecker()
    checker.positive_id("slot_id", value)
    assert checker.violations == [FieldViolation("slot_id", "must be a positive id")]


@pytest.mark.parametrize("value", [0, 1, 2**63 - 1])
def test_optional_id_accepts_zero_and_positive(value: int) -> None:
    checker = RequestChecker()
    assert checker.optional_id("room_id", value) == value
    assert checker.violations == []


def test_optional_id_negative() -> None:
    checker = RequestChecker()
    checker.optional_id("room_id", -1)
    assert fields(checker) == ["room_id"]


# --- text -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["p", "patient-1", "x" * 64, "Ünïcödé 名前", "with inner space"])
def test_text_accepts(value: str) -> None:
    checker = RequestChecker()
    assert checker.text("patient_id", value, max_length=64) == value
    assert checker.violations == []


@pytest.mark.parametrize("value", ["", " ", "\t\n ", "\u3000"])
def test_required_text_blank(value: str) -> None:
    checker = RequestChecker()
    assert checker.text("patient_id", value, max_length=64) == ""
    assert checker.violations == [FieldViolation("patient_id", "is required")]


def test_optional_text_empty_is_fine() -> None:
    checker = RequestChecker()
    assert checker.text("query", "", max_length=64, is_required=False) == ""
    assert checker.violations == []


@pytest.mark.parametrize("value", [" ", "\t", "   \n"])
def test_optional_text_blank_is_refused(value: str) -> None:
    checker = RequestChecker()
    assert checker.text("query", value, max_length=64, is_required=False) == ""
    assert checker.violations == [FieldViolation("query", "must not be blank")]


@pytest.mark.parametrize("is_required", [True, False])
def test_text_too_long(is_required: bool) -> None:
    checker = RequestChecker()
    checker.text("patient_id", "x" * 65, max_length=64, is_required=is_required)
    assert checker.violations == [FieldViolation("patient_id", "must be at most 64 characters")]


def test_text_length_counts_characters_not_bytes() -> None:
    checker = RequestChecker()
    checker.text("patient_id", "é" * 64, max_length=64)
    assert checker.violations == []


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("abc\x00def", id="NUL"),
        pytest.param("\x00", id="only-NUL"),
        pytest.param("abc\n", id="newline"),
        pytest.param("a\tb", id="tab"),
        pytest.param("a\x1bb", id="escape"),
        pytest.param("a\x7fb", id="DEL"),
        pytest.param("a\x85b", id="C1-NEL"),
        pytest.param("a\ud800b", id="lone-surrogate"),
    ],
)
@pytest.mark.parametrize("is_required", [True, False])
def test_text_control_characters(value: str, is_required: bool) -> None:
    checker = RequestChecker()
    checker.text("patient_id", value, max_length=64, is_required=is_required)
    assert checker.violations == [FieldViolation("patient_id", "must not contain control characters")]


# --- timestamps -------------------------------------------------------------------------------


def stamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def test_timestamp_unset_is_none_without_violation() -> None:
    checker = RequestChecker()
    assert checker.timestamp("start_time", stamp(-5, -5), is_set=False) is None
    assert checker.violations == []


@pytest.mark.parametrize(
    ("seconds", "nanos", "expected"),
    [
        (0, 0, datetime(1970, 1, 1, tzinfo=UTC)),
        (1_893_456_000, 123_456_000, datetime(2030, 1, 1, 0, 0, 0, 123_456, tzinfo=UTC)),
        (MAX_SECONDS - 1, 999_999_999, datetime(8999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)),
    ],
)
def test_timestamp_valid(seconds: int, nanos: int, expected: datetime) -> None:
    checker = RequestChecker()
    got = checker.timestamp("start_time", stamp(seconds, nanos), is_set=True)
    assert got == expected
    assert got is not None and got.tzinfo is not None
    assert checker.violations == []


@pytest.mark.parametrize("nanos", [-1, 1_000_000_000, 2**31 - 1, -(2**31)])
def test_timestamp_nanos_out_of_range(nanos: int) -> None:
    checker = RequestChecker()
    assert checker.timestamp("start_time", stamp(1_893_456_000, nanos), is_set=True) is None
    assert fields(checker) == ["start_time"]
    assert "nanos" in checker.violations[0].description


@pytest.mark.parametrize("seconds", [-1, -62_135_596_800, MAX_SECONDS, 253_402_300_799, 2**62])
def test_timestamp_seconds_out_of_range(seconds: int) -> None:
    checker = RequestChecker()
    assert checker.timestamp("start_time", stamp(seconds), is_set=True) is None
    assert checker.violations == [FieldViolation("start_time", "must be between 1970-01-01 and 9000-01-01")]


def test_required_timestamp_missing() -> None:
    checker = RequestChecker()
    assert checker.required_timestamp("booking.create_time", booking_pb2.Booking(), "create_time") is None
    assert checker.violations == [FieldViolation("booking.create_time", "is required")]


def test_required_timestamp_set_to_epoch_counts_as_set() -> None:
    message = booking_pb2.Booking(create_time=stamp(0))
    checker = RequestChecker()
    assert checker.required_timestamp("create_time", message, "create_time") == datetime(1970, 1, 1, tzinfo=UTC)
    assert checker.violations == []


def test_required_timestamp_present_but_invalid() -> None:
    message = booking_pb2.Booking(create_time=stamp(10, -1))
    checker = RequestChecker()
    assert checker.required_timestamp("create_time", message, "create_time") is None
    assert fields(checker) == ["create_time"]


# --- raise_if_any -----------------------------------------------------------------------------


def test_raise_if_any_without_violations_is_silent() -> None:
    checker = RequestChecker()
    checker.positive_id("slot_id", 1)
    checker.text("patient_id", "p", max_length=64)
    checker.raise_if_any()


def test_raise_if_any_collects_every_violation_in_order() -> None:
    checker = RequestChecker()
    checker.positive_id("slot_id", 0)
    checker.optional_id("room_id", -3)
    checker.text("patient_id", "", max_length=64)
    checker.text("request_id", "bad\x00id", max_length=64)
    checker.text("query", "q" * 200, max_length=100, is_required=False)
    checker.timestamp("start_time", stamp(1, 1_000_000_000), is_set=True)
    checker.timestamp("end_time", stamp(-1), is_set=True)
    checker.required_timestamp("create_time", booking_pb2.Booking(), "create_time")
    checker.fail("custom", "custom problem")
    with pytest.raises(InvalidArgumentError) as caught:
        checker.raise_if_any()
    assert [v.field for v in caught.value.violations] == [
        "slot_id",
        "room_id",
        "patient_id",
        "request_id",
        "query",
        "start_time",
        "end_time",
        "create_time",
        "custom",
    ]
    for field in ("slot_id", "room_id", "patient_id", "request_id", "query", "custom"):
        assert field in caught.value.message
