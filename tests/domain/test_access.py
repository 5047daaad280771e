"""Role rules in plain Python: who a caller may act for and which bookings it may see."""

from __future__ import annotations

import pytest
from orflow_server.domain.access import Actor, Role
from orflow_server.domain.errors import PermissionDeniedError

from ..factories import make_booking

PATIENT = Actor("p-1", Role.PATIENT)
SERVICE = Actor("ehr", Role.SERVICE)
ADMIN = Actor("root", Role.ADMIN)


def test_a_patient_sees_only_its_own_bookings() -> None:
    assert PATIENT.may_see(make_booking(patient_id="p-1"))
    assert not PATIENT.may_see(make_booking(patient_id="p-2"))
    assert SERVICE.may_see(make_booking(patient_id="p-2")) and ADMIN.may_see(make_booking(patient_id="p-2"))


def test_a_patient_acts_only_for_itself() -> None:
    assert PATIENT.patient_for("") == "p-1"
    assert PATIENT.patient_for("p-1") == "p-1"
    with pytest.raises(PermissionDeniedError) as caught:
        PATIENT.patient_for("p-2")
    assert caught.value.reason == "NOT_YOUR_PATIENT_ID"
    assert SERVICE.patient_for("p-2") == "p-2"
    assert (PATIENT.patient_scope, SERVICE.patient_scope, ADMIN.patient_scope) == ("p-1", None, None)
