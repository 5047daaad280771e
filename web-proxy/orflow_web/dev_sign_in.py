"""Development-only patient sign-in: a patient token for whoever names a patient id.

Off unless ORFLOW_WEB_DEV_SIGN_IN is on (`orflow up` turns it on for the embedded demo
database only). It proves nothing about who is asking, so it only ever issues PATIENT
tokens; a real deployment gets its tokens from the hospital's sign-in.
"""

from __future__ import annotations

import json
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from .settings import ProxySettings
from .tokens import mint_patient_token

DEV_SIGN_IN_PATH = "/dev/sign-in"
TOKEN_TTL = timedelta(hours=4)
MAX_PATIENT_ID_LENGTH = 64  # the server's limit for patient ids
_MAX_BODY_BYTES = 4096


class DevSignIn:
    """`GET` says whether sign-in by patient id is available; `POST {"patient_id"}` issues the token."""

    def __init__(self, settings: ProxySettings) -> None:
        self._secret = settings.auth_secret if settings.web_dev_sign_in else None
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience

    @property
    def is_enabled(self) -> bool:
        return self._secret is not None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(DEV_SIGN_IN_PATH, self.status)
        router.add_post(DEV_SIGN_IN_PATH, self.sign_in)

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"enabled": self.is_enabled}, headers={"Cache-Control": "no-store"})

    async def sign_in(self, request: web.Request) -> web.Response:
        if self._secret is None:
            return _error(404, "dev sign-in is off (ORFLOW_WEB_DEV_SIGN_IN)")
        if request.content_type != "application/json":
            return _error(415, 'send JSON: {"patient_id": "..."}')
        if (request.content_length or 0) > _MAX_BODY_BYTES:
            return _error(413, "the request is too large")
        patient_id, problem = _patient_id(await request.content.read(_MAX_BODY_BYTES + 1))
        if patient_id is None:
            return _error(400, problem)
        now = datetime.now(UTC)
        token = mint_patient_token(  # never admin or service: this endpoint checks no credentials
            self._secret,
            patient_id=patient_id,
            ttl=TOKEN_TTL,
            issuer=self._issuer,
            audience=self._audience,
            now=now,
        )
        expire_time = (now + TOKEN_TTL).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        body = {"token": token, "expire_time": expire_time, "patient_id": patient_id}
        return web.json_response(body, headers={"Cache-Control": "no-store"})


def _patient_id(raw: bytes) -> tuple[str | None, str]:
    """The patient id from the body (surrounding spaces trimmed), or None and what is wrong."""
    if len(raw) > _MAX_BODY_BYTES:
        return None, "the request is too large"
    try:
        body: Any = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, "the body is not JSON"
    if not isinstance(body, dict) or set(body) != {"patient_id"}:
        return None, "send exactly one field: patient_id"
    value = body["patient_id"]
    if not isinstance(value, str) or not value.strip():
        return None, "patient_id is required"
    value = value.strip()
    if len(value) > MAX_PATIENT_ID_LENGTH:
        return None, f"patient_id must be at most {MAX_PATIENT_ID_LENGTH} characters"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        return None, "patient_id must not contain control characters"
    return value, ""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store"})
