"""Settings are read once, typed, and a bad value names its variable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from server.settings import Settings, SettingsError


def test_defaults() -> None:
    s = Settings.from_env({})
    assert s.port == 8080
    assert str(s.data_dir) == "var"
    assert s.embedded_database and s.embedded_redis
    assert s.issuer == "http://127.0.0.1:8080"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SUPERAPP_PORT", "eighty"),
        ("SUPERAPP_PORT", "70000"),
        ("SUPERAPP_WORKERS", "0"),
        ("SUPERAPP_DATABASE_URL", "mysql://x/y"),
        ("SUPERAPP_REDIS_URL", "http://localhost"),
        ("SUPERAPP_MASTER_KEY", "short"),
        ("SUPERAPP_LOG_LEVEL", "LOUD"),
        ("SUPERAPP_PUBLIC_URL", "ftp://x"),
        ("SUPERAPP_UPSTREAM_ALLOW_CIDRS", "10.0.0.0/8,nonsense"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    assert info.value.name == name


def test_production_requires_a_master_key() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"SUPERAPP_ENV": "production"})
    assert info.value.name == "SUPERAPP_MASTER_KEY"


def test_cli_exits_2_with_one_line_on_a_bad_setting() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "server.cli", "migrate"],
        env={"SUPERAPP_PORT": "not-a-port", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "SUPERAPP_PORT" in lines[0]


def test_importing_reads_no_environment() -> None:
    code = (
        "import os; os.environ['SUPERAPP_PORT']='bad';"
        "import server.app, server.bootstrap, server.cli, identity.service; print('ok')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "ok", proc.stderr
