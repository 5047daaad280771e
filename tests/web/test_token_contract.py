"""One token format: what the proxy's dev sign-in mints is exactly what the server's issue_token writes,
and the server's verifier takes it as that patient (orflow_web.tokens says why the proxy writes it itself)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from orflow_server.domain.access import Actor, Role
from orflow_server.security.tokens import TokenVerifier, issue_token
from orflow_web.tokens import PATIENT_ROLE, mint_patient_token

from tests.auth import TEST_SECRET


def test_the_proxy_mints_the_servers_format_claim_for_claim() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    ttl = timedelta(hours=4)
    minted = mint_patient_token(TEST_SECRET, patient_id="MRN-1001", ttl=ttl, issuer="orflow", audience="or", now=now)
    issued = issue_token(
        TEST_SECRET, subject="MRN-1001", role=Role.PATIENT, ttl=ttl, issuer="orflow", audience="or", now=now
    )

    assert jwt.get_unverified_header(minted) == jwt.get_unverified_header(issued)
    options = {"verify_signature": False}
    assert jwt.decode(minted, options=options) == jwt.decode(issued, options=options)
    assert minted == issued
    assert Role.PATIENT.value == PATIENT_ROLE


def test_the_server_takes_a_minted_token_as_that_patient() -> None:
    token = mint_patient_token(
        TEST_SECRET,
        patient_id="MRN-7",
        ttl=timedelta(minutes=5),
        issuer="orflow",
        audience="orflow",
        now=datetime.now(UTC),
    )
    verifier = TokenVerifier(issuer="orflow", audience="orflow", secret=TEST_SECRET)
    assert verifier.verify(token) == Actor("MRN-7", Role.PATIENT)
