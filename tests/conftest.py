"""Shared fixtures: real PostgreSQL and Redis, the app over HTTP, signed-in users.

PostgreSQL: the server named by ``SUPERAPP_TEST_DATABASE_URL``, or an embedded
one (pgserver) started once per run; either way a throwaway database is
created for the run, migrated once, and dropped at the end. Tests use unique
ids (random phone numbers, codes) instead of truncating tables.
Redis: ``SUPERAPP_TEST_REDIS_URL`` or an embedded redis-server.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
import tornado.httpserver
import tornado.netutil

from server import loops
from server.bootstrap import Services, build, prepare_database
from server.embedded import EmbeddedPostgres, EmbeddedRedis
from server.settings import Settings
from tests.support import Api, random_phone

SLOW = os.environ.get("SUPERAPP_SLOW_TESTS") == "1"
# The loop the in-process tests run on: asyncio's by default; .ci/run's second pass uses
# uvloop, the loop `superapp serve` runs on (server/loops.py). The subprocess tests
# (tests/e2e) run the server on its own default, uvloop.
TEST_EVENT_LOOP = os.environ.get("SUPERAPP_TEST_EVENT_LOOP", "asyncio")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {TEST_EVENT_LOOP: loops.loop_factory(TEST_EVENT_LOOP) or asyncio.new_event_loop}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SLOW:
        return
    skip = pytest.mark.skip(reason="slow test: set SUPERAPP_SLOW_TESTS=1 (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    base = tmp_path_factory.mktemp("storage")
    started: list[Any] = []
    server_url = os.environ.get("SUPERAPP_TEST_DATABASE_URL")
    # Not under pytest's basetemp: pytest resets pytest-of-<user> to mode 0700 at
    # every session start (locking out the pgserver user) and prunes old runs.
    own_dir = tempfile.mkdtemp(prefix="superapp-test-")
    if not server_url:
        # A short path: PostgreSQL's socket path must fit in 107 bytes.
        pg = EmbeddedPostgres(Path(own_dir) / "pg")
        pg.start()
        started.append(pg)
        server_url = pg.url
    redis_url = os.environ.get("SUPERAPP_TEST_REDIS_URL")
    if not redis_url:
        rd = EmbeddedRedis(Path(own_dir) / "redis")
        rd.start()
        started.append(rd)
        redis_url = rd.url
    yield {"server_url": server_url, "redis_url": redis_url, "dir": str(base)}
    for s in reversed(started):
        s.stop()
    shutil.rmtree(own_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def database_url(storage: dict[str, str]) -> AsyncIterator[str]:
    name = "superapp_t_" + secrets.token_hex(6)
    admin = await asyncpg.connect(storage["server_url"])
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(storage["server_url"], name)
    admin = await asyncpg.connect(storage["server_url"])
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def listen_socket() -> Iterator[socket.socket]:
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    yield sock
    sock.close()


@pytest.fixture(scope="session")
def settings(database_url: str, storage: dict[str, str], listen_socket: socket.socket) -> Settings:
    port = listen_socket.getsockname()[1]
    return Settings(
        database_url=database_url,
        redis_url=storage["redis_url"],
        data_dir=Path(storage["dir"]) / "data",
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        workers=1,
        simulators=False,
        upstream_allow_cidrs=("127.0.0.0/8",),
        # Every test client is 127.0.0.1: per-IP limits are tested with their own settings.
        otp_per_ip_per_hour=1_000_000,
        token_per_ip_per_minute=1_000_000,
    )


@pytest_asyncio.fixture(scope="session")
async def services(settings: Settings) -> AsyncIterator[Services]:
    await prepare_database(settings)
    svc = await build(settings)
    yield svc
    await svc.close()


@pytest_asyncio.fixture(scope="session")
async def base_url(services: Services, listen_socket: socket.socket) -> AsyncIterator[str]:
    from server.app import make_app

    server = tornado.httpserver.HTTPServer(
        make_app(services), max_body_size=services.settings.max_body_bytes * 2 + 1
    )
    server.add_sockets([listen_socket])
    yield services.settings.issuer
    server.stop()
    await server.close_all_connections()


@pytest_asyncio.fixture
async def api(base_url: str, services: Services) -> AsyncIterator[Api]:
    client = Api(base_url, services)
    yield client
    await client.aclose()


@pytest.fixture
def phone() -> str:
    return random_phone()


class _ErrorLogs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_error_logs = _ErrorLogs()
logging.getLogger().addHandler(_error_logs)


@pytest.fixture(autouse=True)
def no_unexpected_error_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """An ERROR log line that the test did not expect fails it (Tornado's ExpectLog idea)."""
    _error_logs.records.clear()
    yield
    if request.node.get_closest_marker("expect_error_logs"):
        return
    found = [r for r in _error_logs.records if not r.name.startswith("pgserver")]
    if found:
        messages = "; ".join(f"{r.name}: {r.getMessage()}" for r in found[:3])
        pytest.fail(f"unexpected ERROR log: {messages}")
