"""JWT bearer tokens: HS256 with a shared secret (OR Flow's own tokens), RS256 with
public keys (tokens from a hospital's identity provider).

A token names its subject (`sub`), its `role` (admin, service or patient) and
expires (`exp` is required). Only the algorithms a key exists for are
accepted, so `alg: none` and algorithm-confusion tokens are refused before any
signature check.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..domain.access import Actor, Role
from ..domain.errors import UnauthenticatedError
from ..domain.reasons import ErrorReason
from ..domain.text import has_refused_characters
from ..settings import MIN_SECRET_LENGTH

TOKEN_ROLES = (Role.ADMIN, Role.SERVICE, Role.PATIENT)

MAX_TOKEN_LENGTH = 8192
_LEEWAY = timedelta(seconds=30)  # clock skew between the token's issuer and us


def new_secret() -> str:
    """A fresh HS256 secret (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def issue_token(
    secret: str,
    *,
    subject: str,
    role: Role,
    ttl: timedelta,
    issuer: str,
    audience: str,
    now: datetime | None = None,
) -> str:
    """An HS256 token for `subject` in `role`, valid for `ttl`."""
    if role not in TOKEN_ROLES:
        raise ValueError(f"tokens are issued for {', '.join(TOKEN_ROLES)}, not {role}")
    issued = now or datetime.now(UTC)
    claims = {"sub": subject, "role": role.value, "iss": issuer, "aud": audience, "iat": issued, "exp": issued + ttl}
    return jwt.encode(claims, secret, algorithm="HS256")


def load_public_keys(*, pem_file: Path | None, jwks_file: Path | None) -> dict[str | None, RSAPublicKey]:
    """RS256 keys by key id (`kid`); a lone PEM key has the id None and verifies tokens without a kid."""
    keys: dict[str | None, RSAPublicKey] = {}
    if pem_file is not None:
        key = load_pem_public_key(pem_file.read_bytes())
        if not isinstance(key, RSAPublicKey):
            raise ValueError(f"{pem_file} is not an RSA public key")
        keys[None] = key
    if jwks_file is not None:
        for jwk in jwt.PyJWKSet.from_dict(json.loads(jwks_file.read_text())).keys:
            if isinstance(jwk.key, RSAPublicKey):
                keys[jwk.key_id] = jwk.key
    return keys


@dataclass(frozen=True)
class TokenVerifier:
    """Turns a bearer token into an Actor, or raises UnauthenticatedError saying why."""

    issuer: str
    audience: str
    secret: str | None = None
    public_keys: Mapping[str | None, RSAPublicKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.secret is not None and len(self.secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"the HS256 secret must be at least {MIN_SECRET_LENGTH} characters")

    @property
    def is_configured(self) -> bool:
        return self.secret is not None or bool(self.public_keys)

    def verify(self, token: str) -> Actor:
        if len(token) > MAX_TOKEN_LENGTH:
            raise UnauthenticatedError("the token is too long", reason=ErrorReason.TOKEN_MALFORMED)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise UnauthenticatedError("the token is not a JWT", reason=ErrorReason.TOKEN_MALFORMED) from None
        claims = self._decode(token, header)
        try:
            role = Role(str(claims.get("role")))
        except ValueError:
            role = Role.ANONYMOUS
        subject = claims.get("sub")
        if role not in TOKEN_ROLES or not isinstance(subject, str) or not _is_valid_subject(subject):
            raise UnauthenticatedError("the token has no valid role and subject", reason=ErrorReason.TOKEN_INVALID)
        return Actor(subject, role)

    def _decode(self, token: str, header: Mapping[str, Any]) -> dict[str, Any]:
        algorithm = str(header.get("alg"))
        key: str | RSAPublicKey | None = None
        if algorithm == "HS256":
            key = self.secret
        elif algorithm == "RS256":
            key = self.public_keys.get(header.get("kid")) or self.public_keys.get(None)
        if key is None:
            raise UnauthenticatedError(
                f"tokens signed with {algorithm!r} are not accepted", reason=ErrorReason.TOKEN_ALGORITHM
            )
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=_LEEWAY,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise UnauthenticatedError("the token has expired", reason=ErrorReason.TOKEN_EXPIRED) from None
        except jwt.InvalidSignatureError:
            raise UnauthenticatedError(
                "the token's signature is not valid", reason=ErrorReason.TOKEN_BAD_SIGNATURE
            ) from None
        except jwt.InvalidTokenError as exc:
            raise UnauthenticatedError(f"the token is not valid: {exc}", reason=ErrorReason.TOKEN_INVALID) from None


def _is_valid_subject(subject: str) -> bool:
    """A subject is an identifier: 1 to 64 characters, none of them control or invisible (domain/text.py)."""
    return 1 <= len(subject) <= 64 and not has_refused_characters(subject)
