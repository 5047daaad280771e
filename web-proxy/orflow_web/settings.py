"""The proxy's own typed settings, from the same ORFLOW_* variables the server documents.

The proxy is deployed on its own, so it reads only what it uses and imports
nothing from the server package.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

MIN_SECRET_LENGTH = 32  # HS256 wants a key at least as long as its 256-bit output


class SettingsError(ValueError):
    """A setting is invalid; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class ProxySettings:
    grpc_addr: str = "127.0.0.1:50051"  # the gRPC server the proxy forwards to (unless web_upstream names others)
    # The servers the proxy balances over (round robin): a gRPC target such as dns:///orflow-server:50051 (every
    # address the name resolves to, as a headless Service answers) or IP:port,IP:port,...; "" = grpc_addr.
    web_upstream: str = ""
    # Connections the proxy keeps to each server; its calls spread over them by open calls. A server caps the
    # WatchSlots streams of one connection (ORFLOW_WATCH_STREAMS_PER_CONNECTION): this many times that cap is how
    # many browsers can watch live through one proxy.
    web_upstream_connections: int = 4
    web_addr: str = "127.0.0.1:8080"
    web_max_body_bytes: int = 1024 * 1024
    web_cors_origins: tuple[str, ...] = ()  # none: only the portal's own origin (no CORS headers)
    web_portal_dir: Path | None = None  # None: the portal shipped in the wheel, or web-proxy/portal/dist
    # POST /dev/sign-in hands a patient token to anyone who names a patient id: development only.
    web_dev_sign_in: bool = False
    web_dev_sign_in_per_minute: int = 10  # tokens dev sign-in issues per client address per minute
    # Slow and greedy clients: a request's headers (and an idle keep-alive connection) get header_timeout,
    # its body body_timeout; connections are capped per client address and in total.
    web_header_timeout_seconds: int = 15
    web_body_timeout_seconds: int = 30
    web_max_connections: int = 1000
    web_max_connections_per_client: int = 50
    web_max_grpc_timeout_seconds: int = 3600  # a longer grpc-timeout from a browser is cut to this
    # What dev sign-in signs its tokens with, for the server to verify (HS256).
    auth_secret: str | None = None
    auth_issuer: str = "orflow"
    auth_audience: str = "orflow"
    log_format: str = "auto"  # auto: console on a terminal, JSON lines otherwise; or json / console
    log_level: str = "INFO"

    @property
    def upstream_target(self) -> str:
        """The gRPC target the proxy dials: web_upstream as gRPC names it, else grpc_addr."""
        return _grpc_target(self.web_upstream) if self.web_upstream else self.grpc_addr

    def __post_init__(self) -> None:
        if self.auth_secret is not None and len(self.auth_secret) < MIN_SECRET_LENGTH:
            raise SettingsError(f"ORFLOW_AUTH_SECRET must be at least {MIN_SECRET_LENGTH} characters")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ProxySettings:
        """Reads the proxy's ORFLOW_* variables; fails naming the first bad one."""
        portal = environ.get("ORFLOW_WEB_PORTAL_DIR", "").strip()
        return cls(
            grpc_addr=_addr(environ, "ORFLOW_GRPC_ADDR", "127.0.0.1:50051"),
            web_addr=_addr(environ, "ORFLOW_WEB_ADDR", "127.0.0.1:8080"),
            web_upstream=_upstream(environ, "ORFLOW_WEB_UPSTREAM"),
            web_upstream_connections=_whole(environ, "ORFLOW_WEB_UPSTREAM_CONNECTIONS", 4, low=1, high=256),
            web_max_body_bytes=_whole(environ, "ORFLOW_WEB_MAX_BODY_BYTES", 1024 * 1024, low=16, high=64 * 1024 * 1024),
            web_cors_origins=_origins(environ, "ORFLOW_WEB_CORS_ORIGINS"),
            web_portal_dir=Path(portal) if portal else None,
            web_dev_sign_in=_flag(environ, "ORFLOW_WEB_DEV_SIGN_IN"),
            web_dev_sign_in_per_minute=_whole(environ, "ORFLOW_WEB_DEV_SIGN_IN_PER_MINUTE", 10, low=1, high=100_000),
            web_header_timeout_seconds=_whole(environ, "ORFLOW_WEB_HEADER_TIMEOUT_SECONDS", 15, low=1, high=3600),
            web_body_timeout_seconds=_whole(environ, "ORFLOW_WEB_BODY_TIMEOUT_SECONDS", 30, low=1, high=3600),
            web_max_connections=_whole(environ, "ORFLOW_WEB_MAX_CONNECTIONS", 1000, low=1, high=1_000_000),
            web_max_connections_per_client=_whole(
                environ, "ORFLOW_WEB_MAX_CONNECTIONS_PER_CLIENT", 50, low=1, high=1_000_000
            ),
            web_max_grpc_timeout_seconds=_whole(
                environ, "ORFLOW_WEB_MAX_GRPC_TIMEOUT_SECONDS", 3600, low=1, high=30 * 86_400
            ),
            auth_secret=environ.get("ORFLOW_AUTH_SECRET", "").strip() or None,
            auth_issuer=environ.get("ORFLOW_AUTH_ISSUER", "").strip() or "orflow",
            auth_audience=environ.get("ORFLOW_AUTH_AUDIENCE", "").strip() or "orflow",
            log_format=_choice(environ, "ORFLOW_LOG_FORMAT", ("auto", "json", "console")),
            log_level=_choice(environ, "ORFLOW_LOG_LEVEL", ("INFO", "DEBUG", "WARNING", "ERROR")),
        )


def _addr(environ: Mapping[str, str], name: str, default: str) -> str:
    value = environ.get(name, "").strip() or default
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise SettingsError(f"{name}={value!r} is not host:port (e.g. 127.0.0.1:8080)")
    return value


_TARGET_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:")


def _upstream(environ: Mapping[str, str], name: str) -> str:
    """A gRPC target (dns:///host:port, ipv4:..., unix:...) as given, or a comma-separated list of IP:port."""
    raw = environ.get(name, "").strip()
    if not raw or raw.startswith(_TARGET_SCHEMES):
        return raw
    try:
        _grpc_target(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r}: {exc}") from None
    return raw


def _grpc_target(upstream: str) -> str:
    """One gRPC target for a list of IP:port (gRPC's ipv4:/ipv6: schemes); a target with a scheme is kept."""
    if upstream.startswith(_TARGET_SCHEMES):
        return upstream
    hosts = [part.strip() for part in upstream.split(",") if part.strip()]
    families = set()
    for host_port in hosts:
        host, _, port = host_port.rpartition(":")
        if not port.isdigit():
            raise ValueError(f"{host_port!r} is not IP:port")
        try:
            families.add(ipaddress.ip_address(host.strip("[]")).version)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address (name a DNS name as dns:///{host_port})") from None
    if len(families) != 1:
        raise ValueError("list IPv4 or IPv6 addresses, not both")
    return f"ipv{families.pop()}:" + ",".join(hosts)


def _whole(environ: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value != int(value) or not low <= value <= high:
        raise SettingsError(f"{name}={raw!r} must be a whole number between {low} and {high}")
    return int(value)


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={raw!r} is not a yes/no value (1/0, true/false, yes/no, on/off)")


def _origins(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """`*` or a comma-separated list of browser origins (scheme://host[:port]) allowed by CORS; none by default."""
    raw = environ.get(name, "").strip()
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
