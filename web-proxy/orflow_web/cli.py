"""`orflow proxy` (an `orflow.commands` entry point when the server is installed beside it) and
`orflow-proxy` / `python -m orflow_web` (the same command, for a proxy installed on its own)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence

from .settings import ProxySettings, SettingsError


class ProxyCommand:
    help = "run the gRPC-web proxy that also serves the portal (ORFLOW_WEB_ADDR)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def run(self, args: argparse.Namespace, environ: Mapping[str, str]) -> int:
        try:
            settings = ProxySettings.from_env(environ)
        except SettingsError as exc:
            print(f"orflow: bad setting: {exc}", file=sys.stderr)
            return 2
        if settings.web_dev_sign_in and not settings.auth_secret:
            print(
                "orflow: ORFLOW_WEB_DEV_SIGN_IN needs ORFLOW_AUTH_SECRET to sign the tokens it issues", file=sys.stderr
            )
            return 2
        from .app import run_proxy  # aiohttp only for this command, not for `orflow --help`
        from .observability import TracingConfigError, configure_logging, configure_tracing

        configure_logging(log_format=settings.log_format, level=settings.log_level, stream=sys.stderr)
        try:
            provider = configure_tracing(environ)
        except TracingConfigError as exc:
            print(f"orflow: bad setting: {exc}", file=sys.stderr)
            return 2
        try:
            asyncio.run(run_proxy(settings, tracer_provider=provider))
        finally:
            if provider is not None:
                provider.shutdown()  # exports the last batch
        return 0


COMMAND = ProxyCommand()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="orflow-proxy", description=COMMAND.help)
    COMMAND.add_arguments(parser)
    return COMMAND.run(parser.parse_args(argv), os.environ)
