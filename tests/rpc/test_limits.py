"""Limits a deployment sets: resets allowed or not, request size, the booking rate, and TLS."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from orflow_client import FailedPrecondition, OrFlowClient, ResourceExhausted, Unavailable
from orflow_server.domain.access import Role

from ..auth import ADMIN_TOKEN, token_for
from ..conftest import ServerFactory
from ..factories import future, insert_slot, snapshot


async def test_seed_is_refused_unless_resets_are_allowed(start_server: ServerFactory, db: asyncpg.Connection) -> None:
    await insert_slot(db)
    before = await snapshot(db)
    async with OrFlowClient(await start_server(allow_reset=False), token=ADMIN_TOKEN) as client:
        with pytest.raises(FailedPrecondition) as caught:
            await client.seed_database()
    assert caught.value.reason == "RESET_DISABLED"
    assert await snapshot(db) == before


async def test_an_oversized_request_is_refused(start_server: ServerFactory, db: asyncpg.Connection) -> None:
    target = await start_server(max_request_bytes=4096)
    async with OrFlowClient(target, token=ADMIN_TOKEN) as client:
        with pytest.raises(ResourceExhausted):
            await client.create_room(name="x" * 10_000)
        assert await client.list_rooms() == []  # and the server is fine


async def test_a_patient_booking_too_fast_is_told_when_to_retry(
    start_server: ServerFactory, db: asyncpg.Connection
) -> None:
    target = await start_server(booking_rate_per_minute=6, booking_burst=2)
    slots = [await insert_slot(db, start=future(24 + 3 * i)) for i in range(4)]
    async with OrFlowClient(target, token=token_for(Role.PATIENT, "p-fast")) as patient:
        for slot_id in slots[:2]:
            await patient.create_booking(slot_id=slot_id)
        with pytest.raises(ResourceExhausted) as caught:
            await patient.create_booking(slot_id=slots[2])
    assert caught.value.reason == "RATE_LIMITED"
    assert caught.value.retry_delay is not None and timedelta(seconds=5) < caught.value.retry_delay <= timedelta(
        seconds=10
    )
    assert await db.fetchval("SELECT count(*) FROM bookings") == 2
    async with OrFlowClient(target, token=token_for(Role.PATIENT, "p-slow")) as other:  # a bucket per patient
        await other.create_booking(slot_id=slots[3])


def _self_signed(tmp_path: Path) -> tuple[Path, Path, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file, cert_pem


async def test_tls_round_trip(start_server: ServerFactory, db: asyncpg.Connection, tmp_path: Path) -> None:
    cert_file, key_file, cert_pem = _self_signed(tmp_path)
    target = await start_server(tls_cert_file=cert_file, tls_key_file=key_file)
    slot_id = await insert_slot(db)

    async with OrFlowClient(target, token=ADMIN_TOKEN, root_certificates=cert_pem) as secure:
        booking = await secure.create_booking(slot_id=slot_id, patient_id="p-tls")
        assert (await secure.get_slot(slot_id)).available is False
    async with OrFlowClient(target, token=ADMIN_TOKEN, timeout=3) as plaintext:
        with pytest.raises(Unavailable):
            await plaintext.get_booking(booking.id)
