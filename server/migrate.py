"""Numbered SQL migrations per context, applied once under an advisory lock.

Each context keeps ``<context>/migrations/NNN_name.sql``. They are applied in
dependency order (identity first) and recorded in ``schema_migrations``; the
PostgreSQL advisory lock makes N workers starting together apply each file
exactly once. Re-running is a no-op.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

log = logging.getLogger("superapp.migrate")

CONTEXTS = ("identity", "ecert", "payments", "miniapps")
_LOCK_ID = 0x5A5A_0001  # any constant shared by every worker
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    context: str
    version: int
    name: str
    sql: str


def discover() -> list[Migration]:
    found: list[Migration] = []
    for context in CONTEXTS:
        folder = resources.files(context) / "migrations"
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            match = _NAME.match(entry.name)
            if match:
                found.append(
                    Migration(context, int(match.group(1)), entry.name, entry.read_text("utf-8"))
                )
    return found


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; return the names applied."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   context text NOT NULL,
                   version int NOT NULL,
                   name text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (context, version))"""
        )
        done = {
            (r["context"], r["version"])
            for r in await conn.fetch("SELECT context, version FROM schema_migrations")
        }
        for m in discover():
            if (m.context, m.version) in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (context, version, name) VALUES ($1, $2, $3)",
                    m.context,
                    m.version,
                    m.name,
                )
            log.info("migration applied", extra={"migration": f"{m.context}/{m.name}"})
            applied.append(f"{m.context}/{m.name}")
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied
