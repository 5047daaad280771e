"""Token verification without a server: every way a token can be wrong, HS256 and RS256."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from orflow_client import OrFlowClient
from orflow_server.domain.access import Actor, Role
from orflow_server.domain.errors import UnauthenticatedError
from orflow_server.security.tokens import TokenVerifier, issue_token, load_public_keys

from ..auth import TEST_SECRET
from ..conftest import ServerFactory

HS = TokenVerifier(issuer="orflow", audience="orflow", secret=TEST_SECRET)
NOW = datetime.now(UTC)


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "ehr",
        "role": "service",
        "iss": "orflow",
        "aud": "orflow",
        "iat": NOW,
        "exp": NOW + timedelta(hours=1),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(UnauthenticatedError) as caught:
        verifier.verify(token)
    return caught.value.reason


def test_a_good_token_names_its_actor() -> None:
    token = issue_token(
        TEST_SECRET, subject="MRN-1", role=Role.PATIENT, ttl=timedelta(minutes=5), issuer="orflow", audience="orflow"
    )
    assert HS.verify(token) == Actor("MRN-1", Role.PATIENT)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("not-a-jwt", "TOKEN_MALFORMED"),
        ("a.b.c", "TOKEN_MALFORMED"),
        ("x" * 9000, "TOKEN_MALFORMED"),
        (jwt.encode(_claims(exp=NOW - timedelta(minutes=5)), TEST_SECRET, algorithm="HS256"), "TOKEN_EXPIRED"),
        (jwt.encode(_claims(), "another-secret-that-is-long-enough-0000", algorithm="HS256"), "TOKEN_BAD_SIGNATURE"),
        (jwt.encode(_claims(), TEST_SECRET * 2, algorithm="HS512"), "TOKEN_ALGORITHM"),
        (jwt.encode(_claims(iss="someone-else"), TEST_SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(aud="another-api"), TEST_SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(exp=None), TEST_SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(role="superuser"), TEST_SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(role="system"), TEST_SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(sub=""), TEST_SECRET, algorithm="HS256"), "TOKEN_INVALID"),
        (jwt.encode(_claims(sub="p" * 65), TEST_SECRET, algorithm="HS256"), "TOKEN_INVALID"),
    ],
    ids=[
        "garbage",
        "three-bad-parts",
        "too-long",
        "expired",
        "bad-signature",
        "other-algorithm",
        "wrong-issuer",
        "wrong-audience",
        "no-expiry",
        "unknown-role",
        "internal-role",
        "empty-subject",
        "long-subject",
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token: str, reason: str) -> None:
    assert _reason(HS, token) == reason


def test_alg_none_is_refused() -> None:
    token = jwt.encode(_claims(role="admin"), None, algorithm="none")
    assert _reason(HS, token) == "TOKEN_ALGORITHM"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_rs256_with_a_pem_key(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    pem = tmp_path / "idp.pem"
    pem.write_bytes(_public_pem(rsa_key))
    verifier = TokenVerifier(
        issuer="orflow", audience="orflow", public_keys=load_public_keys(pem_file=pem, jwks_file=None)
    )

    assert verifier.verify(jwt.encode(_claims(), rsa_key, algorithm="RS256")) == Actor("ehr", Role.SERVICE)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _reason(verifier, jwt.encode(_claims(), other, algorithm="RS256")) == "TOKEN_BAD_SIGNATURE"
    # No secret is configured, so an HS256 token (e.g. signed with the public key as its secret) has no key.
    assert _reason(verifier, jwt.encode(_claims(), TEST_SECRET, algorithm="HS256")) == "TOKEN_ALGORITHM"


def test_rs256_with_a_jwks_file_picks_the_key_by_kid(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    second = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    keys = []
    for kid, key in (("k1", rsa_key), ("k2", second)):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": keys}))
    verifier = TokenVerifier(
        issuer="orflow", audience="orflow", public_keys=load_public_keys(pem_file=None, jwks_file=jwks)
    )

    signed_by_second = jwt.encode(_claims(), second, algorithm="RS256", headers={"kid": "k2"})
    mislabelled = jwt.encode(_claims(), second, algorithm="RS256", headers={"kid": "k1"})

    assert verifier.verify(signed_by_second) == Actor("ehr", Role.SERVICE)
    assert _reason(verifier, mislabelled) == "TOKEN_BAD_SIGNATURE"


async def test_the_server_accepts_identity_provider_tokens(
    start_server: ServerFactory, rsa_key: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    pem = tmp_path / "idp.pem"
    pem.write_bytes(_public_pem(rsa_key))
    target = await start_server(auth_public_key_file=pem, auth_issuer="https://idp.hospital.example")
    token = jwt.encode(_claims(role="admin", iss="https://idp.hospital.example"), rsa_key, algorithm="RS256")

    async with OrFlowClient(target, token=token) as client:
        assert isinstance(await client.list_rooms(), list)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        TokenVerifier(issuer="orflow", audience="orflow", secret="short")
