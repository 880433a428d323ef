"""Migrations apply once, under a lock, and re-running changes nothing."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from server.migrate import apply_migrations, discover

pytestmark = pytest.mark.asyncio


async def test_rerun_is_a_noop(database_url: str, services: object) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await apply_migrations(conn) == []
        count = await conn.fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(discover())
    finally:
        await conn.close()


async def test_concurrent_workers_apply_each_file_once(storage: dict[str, str]) -> None:
    name = "superapp_m_" + secrets.token_hex(4)
    admin = await asyncpg.connect(storage["server_url"])
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        from tests.conftest import _with_database

        url = _with_database(storage["server_url"], name)
        conns = [await asyncpg.connect(url) for _ in range(4)]
        try:
            results = await asyncio.gather(*(apply_migrations(c) for c in conns))
            applied = [m for r in results for m in r]
            assert sorted(applied) == sorted(f"{m.context}/{m.name}" for m in discover())
        finally:
            for c in conns:
                await c.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()
