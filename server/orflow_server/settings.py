"""The one typed settings object, read from ORFLOW_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse


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
    web_addr: str = "127.0.0.1:8080"
    web_max_body_bytes: int = 1024 * 1024
    web_cors_origins: tuple[str, ...] = ("*",)
    web_portal_dir: Path | None = None  # None: web-proxy/portal/dist next to the orflow_web package

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
            web_addr=_addr(environ, "ORFLOW_WEB_ADDR", "127.0.0.1:8080"),
            web_max_body_bytes=_whole(environ, "ORFLOW_WEB_MAX_BODY_BYTES", 1024 * 1024, low=16, high=64 * 1024 * 1024),
            web_cors_origins=_origins(environ, "ORFLOW_WEB_CORS_ORIGINS"),
            web_portal_dir=Path(environ["ORFLOW_WEB_PORTAL_DIR"]) if environ.get("ORFLOW_WEB_PORTAL_DIR") else None,
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


def _origins(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """`*` or a comma-separated list of browser origins (scheme://host[:port]) allowed by CORS."""
    raw = environ.get(name, "").strip() or "*"
    origins = tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    for origin in origins:
        parts = urlparse(origin)
        if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
            raise SettingsError(f"{name}={raw!r}: {origin!r} is not * or an origin like https://portal.example")
    return origins
