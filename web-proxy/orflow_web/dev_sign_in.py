"""Development-only patient sign-in: a patient token for whoever names a patient id.

Off unless ORFLOW_WEB_DEV_SIGN_IN is on (`orflow up` turns it on for the embedded demo
database only). It proves nothing about who is asking, so it only ever issues PATIENT
tokens; a real deployment gets its tokens from the hospital's sign-in.

Even in development a web page on another site must not mint tokens through a
browser that can reach the proxy: a POST is answered only when the browser says
it comes from the portal itself (Sec-Fetch-Site same-origin, or an Origin equal
to the proxy's own), and only as JSON (not a "simple" content type, so a
cross-site form or fetch cannot send it without a preflight, which CORS
refuses). Each client address gets ORFLOW_WEB_DEV_SIGN_IN_PER_MINUTE tokens a
minute.
"""

from __future__ import annotations

import json
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

from .settings import ProxySettings
from .tokens import mint_patient_token

DEV_SIGN_IN_PATH = "/dev/sign-in"
TOKEN_TTL = timedelta(hours=4)
MAX_PATIENT_ID_LENGTH = 64  # the server's limit for patient ids
_MAX_BODY_BYTES = 4096
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})  # as the server's domain/text.py
_SAME_SITE_FETCHES = frozenset({"same-origin", "none"})  # "none": typed in the address bar, a bookmark


class DevSignIn:
    """`GET` says whether sign-in by patient id is available; `POST {"patient_id"}` issues the token."""

    def __init__(self, settings: ProxySettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._secret = settings.auth_secret if settings.web_dev_sign_in else None
        self._issuer = settings.auth_issuer
        self._audience = settings.auth_audience
        self._limit = ClientRate(per_minute=settings.web_dev_sign_in_per_minute, clock=clock)

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
        if not is_same_origin(request):
            return _error(403, "dev sign-in answers only the portal's own pages")
        if request.content_type != "application/json":
            return _error(415, 'send JSON: {"patient_id": "..."}')
        wait = self._limit.take(request.remote or "unknown")
        if wait:
            return _error(429, f"too many sign-ins; try again in {wait:.0f} s", retry_after=wait)
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
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in value):
        return None, "patient_id must not contain control characters"
    return value, ""


def is_same_origin(request: web.Request) -> bool:
    """True unless the browser says the request comes from another site (tools such as curl send neither header)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site in _SAME_SITE_FETCHES
    origin = request.headers.get("Origin")  # older browsers: no Sec-Fetch-Site, but an Origin on every POST
    return origin is None or urlparse(origin).netloc == request.host


class ClientRate:
    """A token bucket per client address: `per_minute` on average, bursts of as many."""

    def __init__(self, *, per_minute: int, clock: Callable[[], float], max_clients: int = 10_000) -> None:
        self._per_second = per_minute / 60
        self._burst = float(per_minute)
        self._clock = clock
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str) -> float:
        """0 when `client` may go ahead (and spends a token), else the seconds until it may."""
        now = self._clock()
        tokens, updated = self._buckets.pop(client, (self._burst, now))
        tokens = min(self._burst, tokens + (now - updated) * self._per_second)
        self._buckets[client] = (tokens - 1 if tokens >= 1 else tokens, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return 0.0 if tokens >= 1 else (1 - tokens) / self._per_second


def _error(status: int, message: str, *, retry_after: float | None = None) -> web.Response:
    headers = {"Cache-Control": "no-store"}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return web.json_response({"error": message}, status=status, headers=headers)
