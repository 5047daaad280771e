"""Settings from ORFLOW_* variables, and how the CLI reports a bad one. No database."""

from __future__ import annotations

import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from orflow_server.settings import Settings, SettingsError

REPO_ROOT = Path(__file__).resolve().parents[1]
ORFLOW = REPO_ROOT / ".venv" / "bin" / "orflow"


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.grpc_addr == "127.0.0.1:50051"
    assert settings.hold_ttl == timedelta(seconds=120)
    assert settings.turnover == timedelta(0)
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.data_dir == Path(".orflow-data")
    assert (settings.db_pool_min, settings.db_pool_max) == (2, 20)
    assert settings == Settings()


def test_blank_values_mean_defaults() -> None:
    blank = {
        name: "  "
        for name in (
            "ORFLOW_DATABASE_URL",
            "ORFLOW_REDIS_URL",
            "ORFLOW_GRPC_ADDR",
            "ORFLOW_HOLD_TTL_SECONDS",
            "ORFLOW_TURNOVER_MINUTES",
            "ORFLOW_DB_POOL_MIN",
            "ORFLOW_DB_POOL_MAX",
        )
    }
    assert Settings.from_env(blank) == Settings()


def test_good_values() -> None:
    settings = Settings.from_env(
        {
            "ORFLOW_DATABASE_URL": "postgresql://u:p@db:5432/orflow",
            "ORFLOW_REDIS_URL": "redis://cache:6379/0",
            "ORFLOW_GRPC_ADDR": "[::]:6000",
            "ORFLOW_HOLD_TTL_SECONDS": "1.5",
            "ORFLOW_TURNOVER_MINUTES": "15",
            "ORFLOW_DATA_DIR": "/var/lib/orflow",
            "ORFLOW_DB_POOL_MIN": "1",
            "ORFLOW_DB_POOL_MAX": "50",
        }
    )
    assert settings.database_url == "postgresql://u:p@db:5432/orflow"
    assert settings.redis_url == "redis://cache:6379/0"
    assert settings.grpc_addr == "[::]:6000"
    assert settings.hold_ttl == timedelta(seconds=1.5)
    assert settings.turnover == timedelta(minutes=15)
    assert settings.data_dir == Path("/var/lib/orflow")
    assert (settings.db_pool_min, settings.db_pool_max) == (1, 50)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORFLOW_HOLD_TTL_SECONDS", "abc"),
        ("ORFLOW_HOLD_TTL_SECONDS", "0"),
        ("ORFLOW_HOLD_TTL_SECONDS", "-1"),
        ("ORFLOW_HOLD_TTL_SECONDS", "nan"),
        ("ORFLOW_HOLD_TTL_SECONDS", "inf"),
        ("ORFLOW_HOLD_TTL_SECONDS", "86401"),
        ("ORFLOW_TURNOVER_MINUTES", "-5"),
        ("ORFLOW_TURNOVER_MINUTES", "ten"),
        ("ORFLOW_DB_POOL_MIN", "0"),
        ("ORFLOW_DB_POOL_MAX", "x"),
        ("ORFLOW_GRPC_ADDR", "nonsense"),
        ("ORFLOW_GRPC_ADDR", "127.0.0.1:"),
        ("ORFLOW_GRPC_ADDR", ":50051"),
        ("ORFLOW_GRPC_ADDR", "127.0.0.1:http"),
        ("ORFLOW_GRPC_ADDR", "127.0.0.1:65536"),
        ("ORFLOW_DATABASE_URL", "mysql://x"),
        ("ORFLOW_DATABASE_URL", "localhost:5432"),
        ("ORFLOW_REDIS_URL", "http://x"),
        ("ORFLOW_AUTH_SECRET", "too-short"),
        ("ORFLOW_AUTH_PUBLIC_KEY_FILE", "/no/such/key.pem"),
        ("ORFLOW_AUTH_JWKS_FILE", "/no/such/jwks.json"),
        ("ORFLOW_ALLOW_RESET", "maybe"),
        ("ORFLOW_TLS_CERT_FILE", "/no/such/cert.pem"),
        ("ORFLOW_MAX_REQUEST_BYTES", "10"),
        ("ORFLOW_MAX_REQUEST_BYTES", "2048.5"),
        ("ORFLOW_BOOKING_RATE_PER_MINUTE", "0"),
        ("ORFLOW_BOOKING_BURST", "0"),
        ("ORFLOW_SERVICE_BOOKING_RATE_PER_MINUTE", "-1"),
    ],
)
def test_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value)


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


def test_cli_reports_a_bad_setting_in_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORFLOW_")}
    env["ORFLOW_HOLD_TTL_SECONDS"] = "abc"
    result = subprocess.run(
        [str(ORFLOW), "migrate"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "ORFLOW_HOLD_TTL_SECONDS" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_security_settings(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("cert")
    key.write_text("key")
    settings = Settings.from_env(
        {
            "ORFLOW_AUTH_SECRET": "s" * 32,
            "ORFLOW_ALLOW_RESET": "yes",
            "ORFLOW_TLS_CERT_FILE": str(cert),
            "ORFLOW_TLS_KEY_FILE": str(key),
            "ORFLOW_BOOKING_RATE_PER_MINUTE": "12",
        }
    )
    assert settings.has_auth and settings.allow_reset
    assert (settings.tls_cert_file, settings.tls_key_file) == (cert, key)
    assert settings.booking_rate_per_minute == 12
    assert not Settings().allow_reset and not Settings().has_auth  # off unless asked for
    with pytest.raises(SettingsError, match="ORFLOW_TLS_KEY_FILE"):
        Settings.from_env({"ORFLOW_TLS_CERT_FILE": str(cert)})


def test_pooler_settings() -> None:
    """Pools through a transaction pooler, LISTEN and migrations on a direct URL, the statement cache off."""
    settings = Settings.from_env(
        {
            "ORFLOW_DATABASE_URL": "postgresql://app@pooler:6432/orflow",
            "ORFLOW_DATABASE_DIRECT_URL": "postgresql://app@primary:5432/orflow",
            "ORFLOW_DB_STATEMENT_CACHE_SIZE": "0",
        }
    )
    assert settings.database_direct_url == "postgresql://app@primary:5432/orflow"
    assert settings.db_statement_cache_size == 0
    assert Settings.from_env({}).db_statement_cache_size == 100
    for name, value in (("ORFLOW_DATABASE_DIRECT_URL", "mysql://x"), ("ORFLOW_DB_STATEMENT_CACHE_SIZE", "-1")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})
