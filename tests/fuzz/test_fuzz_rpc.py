"""Hypothesis-made requests for every RPC (from the descriptors), sent as raw bytes to the real server.

Every answer is a clean status (never INTERNAL or UNKNOWN), a refused call writes nothing (every table's
rows, audit_events included, fingerprinted in SQL before and after), and the server still serves afterwards.
Runtime with the CI profile: about 25 examples per RPC, a few seconds in all.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st
from orflow.v1 import slot_service_pb2, slot_service_pb2_grpc
from orflow_server.domain.access import Role

from tests.auth import ADMIN_TOKEN, bearer, token_for
from tests.conftest import REPO_ROOT

from .conftest import PROFILE, Bridge, FuzzStack, fingerprint
from .protos import Rpc, all_rpcs, request_bytes

RPCS = all_rpcs()
CALLERS = {"admin": ADMIN_TOKEN, "patient": token_for(Role.PATIENT, "p-1"), "anonymous": None}
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
SEEN: Counter[tuple[str, str, str]] = Counter()  # (rpc, request kind, status) over the session


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_channel(fuzz_stack: FuzzStack) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(fuzz_stack.target) as channel:
        yield channel
    path = REPO_ROOT / "test-artifacts" / "fuzz-grpc.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps([[*key, n] for key, n in sorted(SEEN.items())], indent=0))


async def _call(channel: grpc.aio.Channel, rpc: Rpc, payload: bytes, token: str | None) -> grpc.StatusCode:
    """The status of one call with identity serializers; a stream's first answer is enough."""
    metadata = bearer(token) if token else ()
    try:
        if rpc.is_server_streaming:
            stream = channel.unary_stream(rpc.path)(payload, metadata=metadata, timeout=15)
            try:
                await stream.read()
            finally:
                stream.cancel()
        else:
            await channel.unary_unary(rpc.path)(payload, metadata=metadata, timeout=15)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_every_rpc_in_the_protos_is_fuzzed() -> None:
    """The list comes from the generated descriptors; it must hold every `rpc` the .proto sources declare."""
    declared = {
        match
        for source in (REPO_ROOT / "protos" / "orflow" / "v1").glob("*.proto")
        for match in re.findall(r"^\s*rpc\s+(\w+)\s*\(", source.read_text(), flags=re.MULTILINE)
    }
    assert {rpc.name for rpc in RPCS} == declared
    assert len(RPCS) == len(declared)


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.label)
async def test_fuzzed_requests_get_clean_statuses_and_write_nothing_when_refused(
    rpc: Rpc, fuzz_stack: FuzzStack, fuzz_channel: grpc.aio.Channel
) -> None:
    bridge = Bridge(asyncio.get_running_loop())

    async def one(kind: str, payload: bytes, caller: str) -> tuple[grpc.StatusCode, Any, Any]:
        async with fuzz_stack.pool.acquire() as conn:
            before = await fingerprint(conn)
            code = await _call(fuzz_channel, rpc, payload, CALLERS[caller])
            return code, before, await fingerprint(conn)

    @PROFILE
    @given(request=request_bytes(rpc.request), caller=st.sampled_from(sorted(CALLERS)))
    def check(request: tuple[str, bytes], caller: str) -> None:
        kind, payload = request
        code, before, after = bridge.run(one(kind, payload, caller))
        SEEN[(rpc.label, kind, code.name)] += 1
        assert code not in NEVER, f"{rpc.label} answered {code.name} to {kind} {payload!r} as {caller}"
        if code is not grpc.StatusCode.OK:
            assert after == before, f"{rpc.label} refused {kind} {payload!r} ({code.name}) but wrote"

    await asyncio.to_thread(check)
    assert any(label == rpc.label for label, _, _ in SEEN)

    # Still serving: a plain, valid call answers.
    stub = slot_service_pb2_grpc.SlotServiceStub(fuzz_channel)
    await stub.ListSlots(slot_service_pb2.ListSlotsRequest(page_size=1))
