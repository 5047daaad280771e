"""The proxy's own settings: the same ORFLOW_* variable names the server documents, read without the server."""

from __future__ import annotations

from pathlib import Path

import pytest
from orflow_server.settings import Settings
from orflow_web.settings import ProxySettings, SettingsError


def test_reads_the_proxy_variables() -> None:
    settings = ProxySettings.from_env(
        {
            "ORFLOW_GRPC_ADDR": "10.0.0.5:50051",
            "ORFLOW_WEB_ADDR": "0.0.0.0:9000",
            "ORFLOW_WEB_MAX_BODY_BYTES": "2048",
            "ORFLOW_WEB_CORS_ORIGINS": "https://or.example, http://localhost:5173/",
            "ORFLOW_WEB_PORTAL_DIR": "/srv/portal",
            "ORFLOW_WEB_DEV_SIGN_IN": "on",
            "ORFLOW_AUTH_SECRET": "s" * 32,
            "ORFLOW_AUTH_ISSUER": "hospital",
            "ORFLOW_AUTH_AUDIENCE": "or-flow",
        }
    )
    assert settings == ProxySettings(
        grpc_addr="10.0.0.5:50051",
        web_addr="0.0.0.0:9000",
        web_max_body_bytes=2048,
        web_cors_origins=("https://or.example", "http://localhost:5173"),
        web_portal_dir=Path("/srv/portal"),
        web_dev_sign_in=True,
        auth_secret="s" * 32,
        auth_issuer="hospital",
        auth_audience="or-flow",
    )


def test_defaults_match_the_servers_reading_of_the_same_variables() -> None:
    """One environment, two readers: the proxy's and the server's values never disagree."""
    assert ProxySettings.from_env({}) == ProxySettings()
    assert not ProxySettings().web_dev_sign_in, "the dev sign-in endpoint is off unless asked for"
    for environ in ({}, {"ORFLOW_WEB_ADDR": "0.0.0.0:9000", "ORFLOW_WEB_CORS_ORIGINS": "https://a.example"}):
        proxy, server = ProxySettings.from_env(environ), Settings.from_env(environ)
        assert proxy.grpc_addr == server.grpc_addr  # the web_* variables are the proxy's alone
        assert (proxy.auth_issuer, proxy.auth_audience) == (server.auth_issuer, server.auth_audience)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORFLOW_GRPC_ADDR", "50051"),
        ("ORFLOW_WEB_ADDR", "8080"),
        ("ORFLOW_WEB_MAX_BODY_BYTES", "lots"),
        ("ORFLOW_WEB_MAX_BODY_BYTES", "1.5"),
        ("ORFLOW_WEB_MAX_BODY_BYTES", "0"),
        ("ORFLOW_WEB_CORS_ORIGINS", "or.example"),
        ("ORFLOW_WEB_CORS_ORIGINS", "https://or.example/path"),
        ("ORFLOW_WEB_DEV_SIGN_IN", "maybe"),
        ("ORFLOW_AUTH_SECRET", "too-short"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        ProxySettings.from_env({name: value})
