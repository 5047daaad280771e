"""The one typed settings object, read from ORFLOW_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

MIN_SECRET_LENGTH = 32  # HS256 wants a key at least as long as its 256-bit output


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str | None = None  # None: start the embedded PostgreSQL
    redis_url: str | None = None  # None: start the embedded Redis
    grpc_addr: str = "127.0.0.1:50051"
    hold_ttl: timedelta = timedelta(seconds=120)
    turnover: timedelta = timedelta(0)
    data_dir: Path = Path(".orflow-data")
    db_pool_min: int = 2
    db_pool_max: int = 20
    sweep_seconds: int = 5
    queue_name: str = "orflow"
    metrics_addr: str = "127.0.0.1:9464"
    worker_metrics_addr: str = "127.0.0.1:9465"
    # Auth: HS256 tokens signed with auth_secret, and/or RS256 tokens from an
    # identity provider (a PEM public key or a JWKS file).
    auth_secret: str | None = None
    auth_public_key_file: Path | None = None
    auth_jwks_file: Path | None = None
    auth_issuer: str = "orflow"
    auth_audience: str = "orflow"
    allow_reset: bool = False  # SeedDatabase wipes everything: off unless a deployment opts in
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    max_request_bytes: int = 64 * 1024
    booking_rate_per_minute: float = 30.0  # per patient token
    booking_burst: int = 10
    service_booking_rate_per_minute: float = 0.0  # per service/admin token; 0 = no limit

    def __post_init__(self) -> None:
        if self.auth_secret is not None and len(self.auth_secret) < MIN_SECRET_LENGTH:
            raise SettingsError(f"ORFLOW_AUTH_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise SettingsError("ORFLOW_TLS_CERT_FILE and ORFLOW_TLS_KEY_FILE must be set together")

    @property
    def has_auth(self) -> bool:
        return bool(self.auth_secret or self.auth_public_key_file or self.auth_jwks_file)

    web_addr: str = "127.0.0.1:8080"
    web_max_body_bytes: int = 1024 * 1024
    web_cors_origins: tuple[str, ...] = ("*",)
    web_portal_dir: Path | None = None  # None: web-proxy/portal/dist next to the orflow_web package
    # POST /dev/sign-in hands a patient token to anyone who names a patient id: development only.
    web_dev_sign_in: bool = False
    log_format: str = "auto"  # auto: console on a terminal, JSON lines otherwise; or json / console
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Reads ORFLOW_* variables; fails naming the first bad one."""
        return cls(
            database_url=_url(environ, "ORFLOW_DATABASE_URL", ("postgres", "postgresql")),
            redis_url=_url(environ, "ORFLOW_REDIS_URL", ("redis", "rediss", "unix")),
            grpc_addr=_addr(environ, "ORFLOW_GRPC_ADDR", "127.0.0.1:50051"),
            hold_ttl=timedelta(seconds=_number(environ, "ORFLOW_HOLD_TTL_SECONDS", 120, low=1, high=86_400)),
            turnover=timedelta(minutes=_number(environ, "ORFLOW_TURNOVER_MINUTES", 0, low=0, high=24 * 60)),
            data_dir=Path(environ.get("ORFLOW_DATA_DIR") or ".orflow-data"),
            db_pool_min=int(_number(environ, "ORFLOW_DB_POOL_MIN", 2, low=1, high=1000)),
            db_pool_max=int(_number(environ, "ORFLOW_DB_POOL_MAX", 20, low=1, high=1000)),
            sweep_seconds=_whole(environ, "ORFLOW_SWEEP_SECONDS", 5, low=1, high=59),
            queue_name=environ.get("ORFLOW_QUEUE_NAME", "").strip() or "orflow",
            metrics_addr=_addr(environ, "ORFLOW_METRICS_ADDR", "127.0.0.1:9464"),
            worker_metrics_addr=_addr(environ, "ORFLOW_WORKER_METRICS_ADDR", "127.0.0.1:9465"),
            auth_secret=environ.get("ORFLOW_AUTH_SECRET", "").strip() or None,
            auth_public_key_file=_file(environ, "ORFLOW_AUTH_PUBLIC_KEY_FILE"),
            auth_jwks_file=_file(environ, "ORFLOW_AUTH_JWKS_FILE"),
            auth_issuer=environ.get("ORFLOW_AUTH_ISSUER", "").strip() or "orflow",
            auth_audience=environ.get("ORFLOW_AUTH_AUDIENCE", "").strip() or "orflow",
            allow_reset=_flag(environ, "ORFLOW_ALLOW_RESET", False),
            tls_cert_file=_file(environ, "ORFLOW_TLS_CERT_FILE"),
            tls_key_file=_file(environ, "ORFLOW_TLS_KEY_FILE"),
            max_request_bytes=_whole(environ, "ORFLOW_MAX_REQUEST_BYTES", 64 * 1024, low=1024, high=16 * 1024 * 1024),
            booking_rate_per_minute=_number(environ, "ORFLOW_BOOKING_RATE_PER_MINUTE", 30, low=0.1, high=1e6),
            booking_burst=_whole(environ, "ORFLOW_BOOKING_BURST", 10, low=1, high=10_000),
            service_booking_rate_per_minute=_number(
                environ, "ORFLOW_SERVICE_BOOKING_RATE_PER_MINUTE", 0, low=0, high=1e7
            ),
            web_addr=_addr(environ, "ORFLOW_WEB_ADDR", "127.0.0.1:8080"),
            web_max_body_bytes=_whole(environ, "ORFLOW_WEB_MAX_BODY_BYTES", 1024 * 1024, low=16, high=64 * 1024 * 1024),
            web_cors_origins=_origins(environ, "ORFLOW_WEB_CORS_ORIGINS"),
            web_portal_dir=Path(environ["ORFLOW_WEB_PORTAL_DIR"]) if environ.get("ORFLOW_WEB_PORTAL_DIR") else None,
            web_dev_sign_in=_flag(environ, "ORFLOW_WEB_DEV_SIGN_IN", False),
            log_format=_choice(environ, "ORFLOW_LOG_FORMAT", ("auto", "json", "console")),
            log_level=_choice(environ, "ORFLOW_LOG_LEVEL", ("INFO", "DEBUG", "WARNING", "ERROR")),
        )


def _url(environ: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    if urlparse(value).scheme not in schemes:
        raise SettingsError(f"{name}={value!r} is not a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value


def _addr(environ: Mapping[str, str], name: str, default: str) -> str:
    value = environ.get(name, "").strip() or default
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{name}={value!r} is not host:port (e.g. 127.0.0.1:50051)")
    return value


def _number(environ: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} must be between {low:g} and {high:g}")
    return value


def _whole(environ: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    """A whole number (SAQ's cron takes whole seconds only; byte limits are whole too)."""
    value = _number(environ, name, default, low=low, high=high)
    if value != int(value):
        raise SettingsError(f"{name}={environ.get(name)!r} must be a whole number")
    return int(value)


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a yes/no value (1/0, true/false, yes/no, on/off)")


def _file(environ: Mapping[str, str], name: str) -> Path | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    path = Path(raw)
    if not path.is_file():
        raise SettingsError(f"{name}={raw!r} is not a readable file")
    return path


def _origins(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """`*` or a comma-separated list of browser origins (scheme://host[:port]) allowed by CORS."""
    raw = environ.get(name, "").strip() or "*"
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        parts = urlparse(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
            raise SettingsError(f"{name}={raw!r}: {origin!r} is not * or an origin like https://portal.example")
    return origins


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default), case-insensitively."""
    raw = environ.get(name, "").strip()
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    if raw:
        raise SettingsError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return choices[0]
