"""Load shedding: past the in-flight limit a unary call is refused at once, UNAVAILABLE with RetryInfo."""

from __future__ import annotations

import grpc
import pytest
from orflow_server.domain import errors
from orflow_server.rpc.errors import status_for
from orflow_server.rpc.shedding import InFlightLimit


def test_the_call_past_the_limit_is_shed_and_a_finished_one_frees_its_place() -> None:
    limit = InFlightLimit(2)
    limit.enter()
    limit.enter()
    with pytest.raises(errors.UnavailableError) as shed:
        limit.enter()
    assert (limit.running, limit.shed) == (2, 1)
    code, status = status_for(shed.value)
    assert code is grpc.StatusCode.UNAVAILABLE
    assert any(d.type_url.endswith("google.rpc.RetryInfo") for d in status.details)
    limit.leave()
    limit.enter()
    assert limit.running == 2
