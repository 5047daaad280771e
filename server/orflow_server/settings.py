"""The one typed settings object, read from ORFLOW_* environment variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

MIN_SECRET_LENGTH = 32  # HS256 wants a key at least as long as its 256-bit output
UNLIMITED_CALLS = 64  # health checks, reflection: calls neither the shedder nor the stream limits count


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    database_url: str | None = None  # None: start the embedded PostgreSQL
    # A session-capable connection (not through a transaction pooler) for LISTEN and migrations; None: database_url.
    database_direct_url: str | None = None
    redis_url: str | None = None  # None: start the embedded Redis
    grpc_addr: str = "127.0.0.1:50051"
    hold_ttl: timedelta = timedelta(seconds=120)
    turnover: timedelta = timedelta(0)
    data_dir: Path = Path(".orflow-data")
    db_pool_min: int = 2
    db_pool_max: int = 20
    db_statement_cache_size: int = 100  # asyncpg's default; 0 behind PgBouncer < 1.21 in transaction mode
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
    # Faults and load: every database call is bounded, streams are recycled, a stop drains.
    db_command_timeout: float = 30.0  # seconds: asyncpg's client-side bound on any one statement
    db_statement_timeout_ms: int = 10_000  # PostgreSQL's statement_timeout on every server connection
    db_lock_timeout_ms: int = 3_000  # PostgreSQL's lock_timeout: a lock wait that runs out answers UNAVAILABLE
    # Seconds one call's database work (pool wait and statements) may take at most; a caller's shorter
    # gRPC deadline bounds it sooner (ops/context.py).
    db_call_timeout: float = 15.0
    max_inflight_calls: int = 256  # unary calls running at once in one server; more are shed at once (UNAVAILABLE)
    # gRPC's own bound on calls (streams included) admitted at once, checked before any Python handler work:
    # past it a call is answered RESOURCE_EXHAUSTED by gRPC itself. 0 = the in-flight and stream limits added up,
    # plus room for health checks and reflection (concurrent_rpc_limit).
    grpc_max_concurrent_rpcs: int = 0
    # Seconds a call may wait inside gRPC, received but not yet taken up by the event loop (a busy loop takes
    # calls up late): older waiting calls are dropped by gRPC itself (CANCELLED), before any Python work is
    # spent on them. 0 = gRPC's default (30 s). Off by default: it drops WatchSlots opens too, and a thousand
    # watchers reconnecting at once (a server restart) wait longer than a second to be taken up.
    grpc_max_pending_seconds: int = 0
    # HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls (streams included) one client connection may have open;
    # more are refused by gRPC (REFUSED_STREAM: UNAVAILABLE) without reaching Python, so one connection's
    # backlog is bounded. 0 = what the in-flight and per-connection stream limits admit (streams_per_connection).
    grpc_max_streams_per_connection: int = 0
    grpc_keepalive_seconds: float = 60.0  # HTTP/2 PING on idle connections, so dead peers are noticed
    grpc_max_connection_age_seconds: float = 0.0  # 0 = never; else GOAWAY after this, so balancers rebalance
    grpc_max_connection_age_grace_seconds: float = 30.0  # calls (and streams) left to finish after a GOAWAY
    schema_wait_seconds: float = 45.0  # a server started before its migrations waits this long, then stops
    shutdown_grace_seconds: float = 10.0  # SIGTERM: in-flight calls (a worker's jobs) get this long, then are cancelled
    # Open WatchSlots streams at most: per token subject, per client connection, in this process.
    watch_streams_per_caller: int = 10
    watch_streams_per_connection: int = 100
    watch_streams_total: int = 500

    def __post_init__(self) -> None:
        if self.auth_secret is not None and len(self.auth_secret) < MIN_SECRET_LENGTH:
            raise SettingsError(f"ORFLOW_AUTH_SECRET must be at least {MIN_SECRET_LENGTH} characters")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise SettingsError("ORFLOW_TLS_CERT_FILE and ORFLOW_TLS_KEY_FILE must be set together")

    @property
    def concurrent_rpc_limit(self) -> int:
        """grpc_max_concurrent_rpcs, or (0) what the shedder and the stream limits admit, plus health and reflection."""
        return self.grpc_max_concurrent_rpcs or self.max_inflight_calls + self.watch_streams_total + UNLIMITED_CALLS

    @property
    def streams_per_connection(self) -> int:
        """grpc_max_streams_per_connection, or (0) max_inflight_calls + watch_streams_per_connection."""
        return self.grpc_max_streams_per_connection or self.max_inflight_calls + self.watch_streams_per_connection

    @property
    def has_auth(self) -> bool:
        return bool(self.auth_secret or self.auth_public_key_file or self.auth_jwks_file)

    log_format: str = "auto"  # auto: console on a terminal, JSON lines otherwise; or json / console
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Reads ORFLOW_* variables; fails naming the first bad one."""
        return cls(
            database_url=_url(environ, "ORFLOW_DATABASE_URL", ("postgres", "postgresql")),
            database_direct_url=_url(environ, "ORFLOW_DATABASE_DIRECT_URL", ("postgres", "postgresql")),
            redis_url=_url(environ, "ORFLOW_REDIS_URL", ("redis", "rediss", "unix")),
            grpc_addr=_addr(environ, "ORFLOW_GRPC_ADDR", "127.0.0.1:50051"),
            hold_ttl=timedelta(seconds=_number(environ, "ORFLOW_HOLD_TTL_SECONDS", 120, low=1, high=86_400)),
            turnover=timedelta(minutes=_number(environ, "ORFLOW_TURNOVER_MINUTES", 0, low=0, high=24 * 60)),
            data_dir=Path(environ.get("ORFLOW_DATA_DIR") or ".orflow-data"),
            db_pool_min=int(_number(environ, "ORFLOW_DB_POOL_MIN", 2, low=1, high=1000)),
            db_pool_max=int(_number(environ, "ORFLOW_DB_POOL_MAX", 20, low=1, high=1000)),
            db_statement_cache_size=_whole(environ, "ORFLOW_DB_STATEMENT_CACHE_SIZE", 100, low=0, high=100_000),
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
            db_command_timeout=_number(environ, "ORFLOW_DB_COMMAND_TIMEOUT_SECONDS", 30, low=0.1, high=3600),
            db_statement_timeout_ms=_whole(environ, "ORFLOW_DB_STATEMENT_TIMEOUT_MS", 10_000, low=0, high=3_600_000),
            db_lock_timeout_ms=_whole(environ, "ORFLOW_DB_LOCK_TIMEOUT_MS", 3_000, low=0, high=3_600_000),
            db_call_timeout=_number(environ, "ORFLOW_DB_CALL_TIMEOUT_SECONDS", 15, low=0.1, high=3600),
            max_inflight_calls=_whole(environ, "ORFLOW_MAX_INFLIGHT_CALLS", 256, low=1, high=100_000),
            grpc_max_concurrent_rpcs=_whole(environ, "ORFLOW_GRPC_MAX_CONCURRENT_RPCS", 0, low=0, high=10_000_000),
            grpc_max_pending_seconds=_whole(environ, "ORFLOW_GRPC_MAX_PENDING_SECONDS", 0, low=0, high=3600),
            grpc_max_streams_per_connection=_whole(
                environ, "ORFLOW_GRPC_MAX_STREAMS_PER_CONNECTION", 0, low=0, high=1_000_000
            ),
            grpc_keepalive_seconds=_number(environ, "ORFLOW_GRPC_KEEPALIVE_SECONDS", 60, low=1, high=86_400),
            grpc_max_connection_age_seconds=_number(
                environ, "ORFLOW_GRPC_MAX_CONNECTION_AGE_SECONDS", 0, low=0, high=86_400 * 30
            ),
            grpc_max_connection_age_grace_seconds=_number(
                environ, "ORFLOW_GRPC_MAX_CONNECTION_AGE_GRACE_SECONDS", 30, low=0, high=86_400
            ),
            schema_wait_seconds=_number(environ, "ORFLOW_SCHEMA_WAIT_SECONDS", 45, low=0, high=3600),
            shutdown_grace_seconds=_number(environ, "ORFLOW_SHUTDOWN_GRACE_SECONDS", 10, low=0, high=3600),
            watch_streams_per_caller=_whole(environ, "ORFLOW_WATCH_STREAMS_PER_CALLER", 10, low=1, high=100_000),
            watch_streams_per_connection=_whole(
                environ, "ORFLOW_WATCH_STREAMS_PER_CONNECTION", 100, low=1, high=100_000
            ),
            watch_streams_total=_whole(environ, "ORFLOW_WATCH_STREAMS_TOTAL", 500, low=1, high=1_000_000),
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


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (the first is the default), case-insensitively."""
    raw = environ.get(name, "").strip()
    for choice in choices:
        if raw.lower() == choice.lower():
            return choice
    if raw:
        raise SettingsError(f"{name}={raw!r} must be one of {', '.join(choices)}")
    return choices[0]
