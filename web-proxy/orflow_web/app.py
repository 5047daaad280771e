"""Builds the proxy's aiohttp application from settings and a channel, and runs it until a signal."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Sequence

import grpc
from aiohttp import web
from aiohttp.typedefs import Handler
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider

from .dev_sign_in import DevSignIn
from .fhir import BASE_PATH as FHIR_BASE_PATH
from .fhir import CORS_EXPOSED_HEADERS as FHIR_EXPOSED_HEADERS
from .fhir import build_fhir_app
from .grpc_web import EXPOSED_HEADERS, METHOD_PATH, GrpcWebForwarder, UpstreamChannels, status_pairs
from .guard import BodyDeadline, CappedSite, ConnectionCap, add_security_headers, refuse_odd_paths
from .observability import METRICS_PATH, ProxyMetrics, access_middleware
from .portal import Portal, default_portal_dir
from .settings import ProxySettings

_log = logging.getLogger(__name__)
HEALTH_PATH = "/healthz"
_ALLOWED_REQUEST_HEADERS = (
    "content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization, connect-protocol-version"
)


def build_app(
    settings: ProxySettings,
    *,
    channel: grpc.aio.Channel | Sequence[grpc.aio.Channel],
    metrics: ProxyMetrics | None = None,
) -> web.Application:
    """The proxy: gRPC-web on POST /package.Service/Method, the portal on GET, health on /healthz,
    and the development-only /dev/sign-in (off unless settings.web_dev_sign_in), metrics on /metrics.

    `channel`: one channel to the servers, or several (upstream_channels): gRPC-web calls spread
    over them by open calls; health checks and the FHIR door use the first.

    guard.py's protections apply to every route, present and future: security headers, 404 for odd
    paths, the body deadline (start_proxy adds the header timeout and the connection cap)."""
    metrics = metrics or ProxyMetrics()
    body_deadline = BodyDeadline(settings.web_body_timeout_seconds)
    app = web.Application(
        middlewares=[access_middleware(metrics), _errors, refuse_odd_paths, body_deadline.middleware],
        client_max_size=settings.web_max_body_bytes + 1024,
    )
    channels = UpstreamChannels([channel] if isinstance(channel, grpc.aio.Channel) else channel)
    channel = channels.first
    forwarder = GrpcWebForwarder(
        channels, max_body_bytes=settings.web_max_body_bytes, max_timeout=settings.web_max_grpc_timeout_seconds
    )
    portal = Portal(settings.web_portal_dir or default_portal_dir())
    origins = settings.web_cors_origins

    async def add_cors(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin is None or not ("*" in origins or origin in origins):
            return
        response.headers["Access-Control-Allow-Origin"] = "*" if "*" in origins else origin
        exposed = FHIR_EXPOSED_HEADERS if _is_fhir(request) else EXPOSED_HEADERS
        response.headers["Access-Control-Expose-Headers"] = ", ".join(exposed)
        response.headers.add("Vary", "Origin")

    async def health(request: web.Request) -> web.Response:
        upstream = await _upstream_status(channel)
        return web.json_response(
            {"proxy": "SERVING", "upstream": upstream}, status=200 if upstream == "SERVING" else 503
        )

    app.on_response_prepare.append(add_cors)
    app.on_response_prepare.append(add_security_headers)
    app.router.add_route("OPTIONS", "/{tail:.*}", _preflight)
    app.router.add_get(HEALTH_PATH, health)
    app.router.add_get(METRICS_PATH, metrics.handle)
    DevSignIn(settings).add_routes(app.router)  # before the catch-all routes below
    app.add_subapp(FHIR_BASE_PATH, build_fhir_app(channel))  # FHIR R4 scheduling (orflow_web/fhir), before them too
    app.router.add_post("/{tail:.*}", forwarder.handle)
    app.router.add_get("/{tail:.*}", portal.handle)
    return app


def _is_fhir(request: web.Request) -> bool:
    return request.path == FHIR_BASE_PATH or request.path.startswith(FHIR_BASE_PATH + "/")


async def _preflight(request: web.Request) -> web.Response:
    requested = request.headers.get("Access-Control-Request-Headers", "")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
            "Access-Control-Allow-Headers": requested or _ALLOWED_REQUEST_HEADERS,
            "Access-Control-Max-Age": "86400",
        },
    )


async def _upstream_status(channel: grpc.aio.Channel) -> str:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
    except grpc.aio.AioRpcError as exc:
        return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Anything unexpected is logged and answered INTERNAL (gRPC paths) or 500, never with a traceback."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:  # noqa: BLE001 - the one place an unexpected proxy error is answered
        _log.exception("proxy error on %s %s", request.method, request.path)
        if request.method == "POST" and METHOD_PATH.match(request.path):
            pairs = status_pairs(grpc.StatusCode.INTERNAL, "internal proxy error")
            return web.Response(status=200, headers=dict(pairs), content_type="application/grpc-web+proto")
        return web.Response(status=500, text="internal error")


async def start_proxy(
    settings: ProxySettings,
    *,
    channel: grpc.aio.Channel | Sequence[grpc.aio.Channel],
    metrics: ProxyMetrics | None = None,
) -> web.AppRunner:
    """Listens on ORFLOW_WEB_ADDR (port 0: any free port; `runner.addresses` says which)."""
    # WatchSlots streams never finish on their own: on shutdown they get 2 s, then are cancelled
    # (which cancels the upstream call); browsers reconnect.
    # keepalive_timeout is also how long a connection may take to send a request's headers (aiohttp closes a
    # connection still waiting for a whole request when it runs out): the header timeout.
    runner = web.AppRunner(
        build_app(settings, channel=channel, metrics=metrics),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=2,
        keepalive_timeout=settings.web_header_timeout_seconds,
    )
    await runner.setup()
    host, _, port = settings.web_addr.rpartition(":")
    cap = ConnectionCap(per_client=settings.web_max_connections_per_client, total=settings.web_max_connections)
    await CappedSite(runner, host.strip("[]"), int(port), cap=cap).start()
    return runner


# round_robin, not gRPC's default pick_first: each call goes to the next READY address, so a proxy spreads over
# every server its target resolves to and skips one that is down. gRPC re-resolves DNS when a connection drops,
# and servers recycle connections (ORFLOW_GRPC_MAX_CONNECTION_AGE_SECONDS), so new server pods are found too.
UPSTREAM_OPTIONS = (("grpc.lb_policy_name", "round_robin"),)


def upstream_channel(
    settings: ProxySettings, *, interceptors: Sequence[grpc.aio.ClientInterceptor] = (), index: int = 0
) -> grpc.aio.Channel:
    """A channel to the gRPC servers (ORFLOW_WEB_UPSTREAM, else ORFLOW_GRPC_ADDR), balanced per call, with
    connections of its own (a local subchannel pool: gRPC would otherwise share one connection per address
    among the proxy's channels)."""
    options = (*UPSTREAM_OPTIONS, ("grpc.use_local_subchannel_pool", 1), ("orflow.upstream_index", index))
    return grpc.aio.insecure_channel(settings.upstream_target, options=options, interceptors=interceptors)


def upstream_channels(
    settings: ProxySettings, *, interceptors: Sequence[grpc.aio.ClientInterceptor] = ()
) -> list[grpc.aio.Channel]:
    """ORFLOW_WEB_UPSTREAM_CONNECTIONS channels, each an upstream_channel."""
    return [
        upstream_channel(settings, interceptors=interceptors, index=index)
        for index in range(settings.web_upstream_connections)
    ]


async def run_proxy(settings: ProxySettings, *, tracer_provider: TracerProvider | None = None) -> None:
    """Serves until SIGINT/SIGTERM."""
    metrics = ProxyMetrics()
    channels = upstream_channels(settings, interceptors=metrics.client_interceptors(tracer_provider))
    try:
        runner = await start_proxy(settings, channel=channels, metrics=metrics)
        # What start-up built lives as long as the process: out of the collector's full passes, which otherwise
        # walk it while every open WatchSlots stream waits (the server does the same: orflow_server.app).
        gc.collect()
        gc.freeze()
        _log.info(
            "gRPC-web proxy on http://%s -> %s (round robin, %d connections per server)",
            settings.web_addr,
            settings.upstream_target,
            len(channels),
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()
    finally:
        for channel in channels:
            await channel.close(None)
