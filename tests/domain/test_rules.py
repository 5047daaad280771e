"""Pure booking rules: peak equipment use, effective booking state, slot checks. No database."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from orflow_server.domain.models import (
    BookingStatus,
    EquipmentNeed,
    FailureReason,
    NewSlot,
    Usage,
)
from orflow_server.domain.rules import effective_booking, peak_usage, slot_violations

from tests.factories import make_booking, make_usage

BASE = datetime(2030, 1, 1, tzinfo=UTC)


def at(hour: float) -> datetime:
    return BASE + timedelta(hours=hour)


# --- peak_usage -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usages", "window", "expected"),
    [
        pytest.param([], (8, 12), 0, id="empty"),
        pytest.param([make_usage(9, 10)], (8, 12), 1, id="one"),
        pytest.param([make_usage(8, 10), make_usage(10, 12)], (8, 12), 1, id="back-to-back-half-open"),
        pytest.param([make_usage(8, 12), make_usage(9, 10)], (8, 12), 2, id="nested"),
        pytest.param([make_usage(8, 12), make_usage(9, 11), make_usage(9.5, 10)], (8, 12), 3, id="nested-three"),
        pytest.param([make_usage(6, 9), make_usage(11, 14)], (8, 12), 1, id="partially-outside-clipped"),
        pytest.param([make_usage(6, 9), make_usage(8.5, 13)], (8, 12), 2, id="overlap-inside-window"),
        pytest.param([make_usage(6, 8), make_usage(12, 14)], (8, 12), 0, id="touching-window-edges-outside"),
        pytest.param([make_usage(6, 9), make_usage(6, 8.5)], (9, 12), 0, id="overlap-only-before-window"),
        pytest.param([make_usage(8, 10, 3), make_usage(9, 11, 2)], (8, 12), 5, id="quantity-weights"),
        pytest.param([make_usage(8, 10, 3), make_usage(10, 12, 4)], (8, 12), 4, id="quantity-back-to-back"),
        pytest.param([make_usage(8, 9), make_usage(10, 11)], (8, 11), 1, id="sum-would-overcount"),
        pytest.param(
            [make_usage(8, 9, 2), make_usage(9, 10, 2), make_usage(10, 11, 2)], (8, 11), 2, id="chain-of-three"
        ),
    ],
)
def test_peak_usage(usages: list[Usage], window: tuple[float, float], expected: int) -> None:
    assert peak_usage(usages, at(window[0]), at(window[1])) == expected


def test_peak_usage_ignores_order_of_input() -> None:
    usages = [make_usage(8, 10, 2), make_usage(10, 12, 5), make_usage(9, 11, 1)]
    expected = peak_usage(usages, at(8), at(12))
    assert expected == 6
    assert peak_usage(list(reversed(usages)), at(8), at(12)) == expected


def test_peak_usage_accepts_a_generator() -> None:
    assert peak_usage((u for u in [make_usage(8, 10), make_usage(9, 11)]), at(8), at(12)) == 2


def _brute_force_peak(usages: list[Usage], start: datetime, end: datetime) -> int:
    """Minute-by-minute count; every boundary in the tests is on a whole minute."""
    peak = 0
    moment = start
    while moment < end:
        in_use = sum(u.quantity for u in usages if u.start <= moment < u.end)
        peak = max(peak, in_use)
        moment += timedelta(minutes=1)
    return peak


def test_peak_usage_matches_brute_force_on_random_intervals() -> None:
    rng = random.Random(20300101)
    for _ in range(300):
        usages = []
        for _ in range(rng.randint(0, 8)):
            lo = rng.randint(0, 23 * 60)
            hi = lo + rng.randint(1, 4 * 60)
            usages.append(Usage(BASE + timedelta(minutes=lo), BASE + timedelta(minutes=hi), rng.randint(1, 4)))
        w_lo = rng.randint(0, 20 * 60)
        w_hi = w_lo + rng.randint(1, 6 * 60)
        start, end = BASE + timedelta(minutes=w_lo), BASE + timedelta(minutes=w_hi)
        assert peak_usage(usages, start, end) == _brute_force_peak(usages, start, end), (usages, start, end)


def test_peak_usage_brute_force_with_many_shared_boundaries() -> None:
    """Boundaries on a coarse grid, so ends and starts often coincide."""
    rng = random.Random(7)
    for _ in range(300):
        usages = []
        for _ in range(rng.randint(1, 10)):
            lo = rng.randint(0, 10) * 30
            hi = lo + rng.randint(1, 4) * 30
            usages.append(Usage(BASE + timedelta(minutes=lo), BASE + timedelta(minutes=hi), rng.randint(1, 3)))
        start = BASE + timedelta(minutes=rng.randint(0, 8) * 30)
        end = start + timedelta(minutes=rng.randint(1, 8) * 30)
        assert peak_usage(usages, start, end) == _brute_force_peak(usages, start, end), (usages, start, end)


# --- effective_booking ------------------------------------------------------------------------


def test_pending_before_expiry_is_unchanged() -> None:
    booking = make_booking()
    assert effective_booking(booking, booking.expire_time - timedelta(microseconds=1)) is booking


def test_pending_at_expire_time_is_failed() -> None:
    booking = make_booking()
    seen = effective_booking(booking, booking.expire_time)
    assert seen.status is BookingStatus.FAILED
    assert seen.failure_reason is FailureReason.HOLD_EXPIRED
    assert seen.update_time == booking.expire_time
    # Everything else is as stored.
    assert (seen.id, seen.slot_id, seen.patient_id, seen.create_time, seen.expire_time, seen.request_id) == (
        booking.id,
        booking.slot_id,
        booking.patient_id,
        booking.create_time,
        booking.expire_time,
        booking.request_id,
    )
    assert booking.status is BookingStatus.PENDING  # the input is not mutated


def test_pending_after_expiry_is_failed_with_update_time_at_expiry() -> None:
    booking = make_booking()
    seen = effective_booking(booking, booking.expire_time + timedelta(days=3))
    assert seen.status is BookingStatus.FAILED
    assert seen.failure_reason is FailureReason.HOLD_EXPIRED
    assert seen.update_time == booking.expire_time


@pytest.mark.parametrize("status", [BookingStatus.CONFIRMED, BookingStatus.CANCELLED, BookingStatus.FAILED])
@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(0), timedelta(days=365)])
def test_non_pending_never_changes(status: BookingStatus, offset: timedelta) -> None:
    booking = make_booking(status=status)
    assert effective_booking(booking, booking.expire_time + offset) is booking


# --- slot_violations --------------------------------------------------------------------------

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
INVENTORY = {1: 5, 2: 1}


def new_slot(*, start_hours: float = 24, length_hours: float = 2, equipment: tuple[EquipmentNeed, ...] = ()) -> NewSlot:
    start = NOW + timedelta(hours=start_hours)
    return NewSlot(
        doctor_id=1,
        procedure_type="Appendectomy",
        room_id=1,
        start_time=start,
        end_time=start + timedelta(hours=length_hours),
        required_equipment=equipment,
    )


def fields(slot: NewSlot) -> list[str]:
    return [v.field for v in slot_violations(slot, NOW, INVENTORY)]


def test_valid_slot_has_no_violations() -> None:
    slot = new_slot(equipment=(EquipmentNeed(1, 5), EquipmentNeed(2, 1)))
    assert slot_violations(slot, NOW, INVENTORY) == []


@pytest.mark.parametrize("length", [0, -1])
def test_end_not_after_start(length: float) -> None:
    assert fields(new_slot(length_hours=length)) == ["end_time"]


def test_exactly_24_hours_is_allowed_but_longer_is_not() -> None:
    assert fields(new_slot(length_hours=24)) == []
    slot = new_slot(length_hours=24)
    longer = NewSlot(**{**slot.__dict__, "end_time": slot.end_time + timedelta(microseconds=1)})
    assert fields(longer) == ["end_time"]


@pytest.mark.parametrize("start_hours", [0, -1])
def test_start_not_in_future(start_hours: float) -> None:
    assert fields(new_slot(start_hours=start_hours)) == ["start_time"]


def test_duplicate_equipment() -> None:
    slot = new_slot(equipment=(EquipmentNeed(1, 1), EquipmentNeed(2, 1), EquipmentNeed(1, 1)))
    assert fields(slot) == ["required_equipment[2].equipment_id"]


def test_zero_quantity() -> None:
    assert fields(new_slot(equipment=(EquipmentNeed(1, 0),))) == ["required_equipment[0].quantity"]


def test_negative_quantity() -> None:
    assert fields(new_slot(equipment=(EquipmentNeed(2, 1), EquipmentNeed(1, -3)))) == ["required_equipment[1].quantity"]


def test_more_than_inventory() -> None:
    violations = slot_violations(new_slot(equipment=(EquipmentNeed(2, 2),)), NOW, INVENTORY)
    assert [v.field for v in violations] == ["required_equipment[0].quantity"]
    assert "2" in violations[0].description and "1" in violations[0].description


def test_unknown_equipment_is_left_to_the_caller() -> None:
    assert fields(new_slot(equipment=(EquipmentNeed(99, 3),))) == []


def test_all_violations_are_reported_together() -> None:
    slot = new_slot(
        start_hours=-2,
        length_hours=0,
        equipment=(EquipmentNeed(1, 0), EquipmentNeed(1, 6), EquipmentNeed(2, 2)),
    )
    assert fields(slot) == [
        "end_time",
        "start_time",
        "required_equipment[0].quantity",
        "required_equipment[1].equipment_id",
        "required_equipment[1].quantity",
        "required_equipment[2].quantity",
    ]
