"""The real `orflow` processes: start-up, Ctrl-C, SIGTERM, and a crash mid-flight."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from orflow.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    booking_pb2,
    booking_service_pb2,
    booking_service_pb2_grpc,
    slot_service_pb2,
    slot_service_pb2_grpc,
)
from orflow_tools.testkit.ports import free_port

from tests.auth import ADMIN_TOKEN, TEST_SECRET, bearer


def _wait_serving(target: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} never became SERVING")
            time.sleep(0.1)


def _wait_http_json(url: str, timeout: float = 30.0) -> object:
    """The JSON body of the first 200 answer from `url` (the proxy starts beside the server)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                return json.loads(reply.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _orflow(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """`orflow ARGS` in a process group of its own, as a terminal runs a foreground command."""
    return subprocess.Popen(
        [sys.executable, "-m", "orflow_server", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        process_group=0,
    )


def _base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORFLOW_")}
    # Port 0: never collide with an OR Flow already running on this machine.
    env.update(
        ORFLOW_METRICS_ADDR="127.0.0.1:0", ORFLOW_WORKER_METRICS_ADDR="127.0.0.1:0", ORFLOW_WEB_ADDR="127.0.0.1:0"
    )
    env.update(extra)
    return env


def _pids_of(pattern: str) -> set[int]:
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


def test_up_runs_everything_embedded_and_ctrl_c_stops_it_all(tmp_path: Path) -> None:
    port, web_port = free_port(), free_port()
    data_dir = tmp_path / "data"
    env = _base_env(
        ORFLOW_DATA_DIR=str(data_dir), ORFLOW_GRPC_ADDR=f"127.0.0.1:{port}", ORFLOW_WEB_ADDR=f"127.0.0.1:{web_port}"
    )
    proc = _orflow(["up"], env)
    try:
        _wait_serving(f"127.0.0.1:{port}")
        assert _wait_http_json(f"http://127.0.0.1:{web_port}/healthz") == {"proxy": "SERVING", "upstream": "SERVING"}
        # The embedded demo database turns on the proxy's dev sign-in (a real database never does).
        assert _wait_http_json(f"http://127.0.0.1:{web_port}/dev/sign-in") == {"enabled": True}
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = slot_service_pb2_grpc.SlotServiceStub(channel).ListSlots(
                slot_service_pb2.ListSlotsRequest(page_size=100), timeout=10
            )
        assert len(reply.slots) >= 8
        assert {s.room.name for s in reply.slots} >= {"Apollo Room 101", "City Hospital 404"}
        assert _pids_of(str(data_dir)), "embedded services should run inside the data dir"
        # `orflow token` signs with the secret `up` made in the data dir; the embedded run allows resets.
        token = subprocess.run(
            [sys.executable, "-m", "orflow_server", "token", "--role", "admin"],
            env=_base_env(ORFLOW_DATA_DIR=str(data_dir)),
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            seeded = admin_service_pb2_grpc.AdminServiceStub(channel).SeedDatabase(
                admin_service_pb2.SeedDatabaseRequest(), metadata=bearer(token), timeout=30
            )
        assert seeded.slot_count == len(reply.slots)
        assert oct((data_dir / "auth-secret").stat().st_mode & 0o777) == "0o600"
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the whole foreground process group
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "Traceback" not in output, output
    # A plain Ctrl-C is a clean stop: no SAQ warning about unfinished tasks (worker/main.py's _Worker.stop).
    assert "did not finish" not in output and "WARNING" not in output, output
    # The banner's grpcurl command works when pasted where `up` ran: on PATH, or a path that exists.
    [tried] = [line.split()[1] for line in output.splitlines() if line.strip().startswith("try:")]
    assert tried.endswith("grpcurl") and (shutil.which(tried) or Path(tried).is_file()), tried
    assert "admin token: ey" in output
    assert "demo data loaded" in output
    assert "stopped cleanly" in output
    # Nothing the command started outlives it: not the server, PostgreSQL or Redis.
    assert _pids_of(str(data_dir)) == set()


def test_server_drains_on_sigterm_and_a_confirmed_booking_survives_a_kill(database_url: str, tmp_path: Path) -> None:
    """SIGKILL mid-flight loses nothing committed; SIGTERM exits cleanly."""
    import asyncio

    import asyncpg

    from tests.factories import insert_slot

    async def make_slot() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return await insert_slot(conn)
        finally:
            await conn.close()

    slot_id = asyncio.run(make_slot())
    port = free_port()
    env = _base_env(
        ORFLOW_DATABASE_URL=database_url, ORFLOW_GRPC_ADDR=f"127.0.0.1:{port}", ORFLOW_AUTH_SECRET=TEST_SECRET
    )
    target = f"127.0.0.1:{port}"

    server = _orflow(["server"], env)
    _wait_serving(target)
    with grpc.insecure_channel(target) as channel:
        stub = booking_service_pb2_grpc.BookingServiceStub(channel)
        booking = stub.CreateBooking(
            booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="crash-1", request_id="r-1"),
            timeout=10,
            metadata=bearer(ADMIN_TOKEN),
        ).booking
        stub.ConfirmBooking(
            booking_service_pb2.ConfirmBookingRequest(booking_id=booking.id), timeout=10, metadata=bearer(ADMIN_TOKEN)
        )
    server.kill()  # no chance to clean up
    server.communicate(timeout=30)

    server = _orflow(["server"], env)
    try:
        _wait_serving(target)
        with grpc.insecure_channel(target) as channel:
            stub = booking_service_pb2_grpc.BookingServiceStub(channel)
            after = stub.GetBooking(
                booking_service_pb2.GetBookingRequest(booking_id=booking.id), timeout=10, metadata=bearer(ADMIN_TOKEN)
            )
            retry = stub.CreateBooking(
                booking_service_pb2.CreateBookingRequest(slot_id=slot_id, patient_id="crash-1", request_id="r-1"),
                timeout=10,
                metadata=bearer(ADMIN_TOKEN),
            )
        assert after.booking.status == booking_pb2.BOOKING_STATUS_CONFIRMED
        assert retry.booking.id == booking.id  # the retry after the crash finds the same booking
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output


def test_server_refuses_to_start_without_a_way_to_verify_tokens(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orflow_server", "server"],
        env=_base_env(ORFLOW_DATABASE_URL=database_url, ORFLOW_GRPC_ADDR="127.0.0.1:0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "ORFLOW_AUTH_SECRET" in result.stderr


def test_proxy_refuses_dev_sign_in_without_a_secret_to_sign_with() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "orflow_server", "proxy"],
        env=_base_env(ORFLOW_WEB_DEV_SIGN_IN="1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "ORFLOW_WEB_DEV_SIGN_IN needs ORFLOW_AUTH_SECRET" in result.stderr


def test_token_command_signs_what_the_server_accepts() -> None:
    from orflow_server.domain.access import Actor, Role
    from orflow_server.security.tokens import TokenVerifier

    result = subprocess.run(
        [sys.executable, "-m", "orflow_server", "token", "--role", "patient", "--patient", "MRN-7", "--ttl", "5m"],
        env=_base_env(ORFLOW_AUTH_SECRET=TEST_SECRET),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    verifier = TokenVerifier(issuer="orflow", audience="orflow", secret=TEST_SECRET)
    assert verifier.verify(result.stdout.strip()) == Actor("MRN-7", Role.PATIENT)
