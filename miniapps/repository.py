"""All SQL of the mini-app registry, releases, uses, ratings and usage.

Methods take the connection of the caller's transaction and return domain
dataclasses; the services own the transactions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from miniapps.domain import App, Manifest, Version

Conn = asyncpg.Connection


def _app(r: asyncpg.Record) -> App:
    return App(
        app_id=r["app_id"],
        unit_id=r["unit_id"],
        client_id=r["client_id"],
        status=r["status"],
        name_zh=r["name_zh"],
        name_en=r["name_en"],
        description=r["description"],
        icon=r["icon"],
        category=r["category"],
        kind=r["kind"],
        districts=tuple(r["districts"]),
        unit_name=r["unit_name"],
        current_version=r["current_version"],
        percent=r["percent"],
        cohort=json.loads(r["cohort"]) if r["cohort"] else None,
        previous_version=r["previous_version"],
        use_count=r["use_count"],
        rating_sum=r["rating_sum"],
        rating_count=r["rating_count"],
        created_at=r["created_at"],
    )


def _version(r: asyncpg.Record) -> Version:
    return Version(
        app_id=r["app_id"],
        version=r["version"],
        status=r["status"],
        manifest=Manifest.parse(json.loads(r["manifest"])),
        review_reason=r["review_reason"],
        reviewed_by=r["reviewed_by"],
        reviewed_at=r["reviewed_at"],
        created_at=r["created_at"],
    )


def _param(column: str, i: int) -> str:
    # Lexemes arrive as text[]: no text-search parser touches the Chinese text.
    return f"array_to_tsvector(${i}::text[])" if column == "search_vector" else f"${i}"


SEARCH_COLUMNS = (
    "app_id", "unit_id", "status", "name_zh", "name_en", "description", "icon", "category",
    "category_zh", "kind", "districts", "unit_name", "name_pinyin", "name_initials",
)  # fmt: skip


class MiniAppRepository:
    # registry -----------------------------------------------------------------------

    async def create_app(self, conn: Conn, app_id: str, unit_id: str, doc: dict[str, Any]) -> None:
        cols = ", ".join(doc)
        params = ", ".join(_param(c, i) for i, c in enumerate(doc, start=3))
        await conn.execute(
            f"INSERT INTO miniapps (app_id, unit_id, {cols}) VALUES ($1, $2, {params})",  # noqa: S608
            app_id,
            unit_id,
            *doc.values(),
        )

    async def update_search_doc(self, conn: Conn, app_id: str, doc: dict[str, Any]) -> None:
        sets = ", ".join(f"{c} = {_param(c, i)}" for i, c in enumerate(doc, start=2))
        await conn.execute(
            f"UPDATE miniapps SET {sets}, updated_at = now() WHERE app_id = $1",  # noqa: S608
            app_id,
            *doc.values(),
        )

    async def set_client(self, conn: Conn, app_id: str, client_id: str) -> None:
        await conn.execute(
            "UPDATE miniapps SET client_id = $2 WHERE app_id = $1", app_id, client_id
        )

    async def app(self, conn: Conn, app_id: str, *, lock: bool = False) -> App | None:
        sql = "SELECT * FROM miniapps WHERE app_id = $1" + (" FOR UPDATE" if lock else "")  # noqa: S608
        row = await conn.fetchrow(sql, app_id)
        return _app(row) if row else None

    async def add_version(
        self, conn: Conn, app_id: str, version: str, manifest: Manifest, created_by: str | None
    ) -> bool:
        status = await conn.execute(
            """INSERT INTO miniapp_versions (app_id, version, manifest, upstream_url, created_by)
               VALUES ($1, $2, $3::jsonb, $4, $5) ON CONFLICT DO NOTHING""",
            app_id,
            version,
            json.dumps(manifest.to_json(), ensure_ascii=False),
            manifest.upstream,
            created_by,
        )
        return status.endswith(" 1")

    async def version(
        self, conn: Conn, app_id: str, version: str, *, lock: bool = False
    ) -> Version | None:
        sql = "SELECT * FROM miniapp_versions WHERE app_id = $1 AND version = $2"
        row = await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), app_id, version)
        return _version(row) if row else None

    async def versions(self, conn: Conn, app_id: str) -> list[Version]:
        rows = await conn.fetch(
            "SELECT * FROM miniapp_versions WHERE app_id = $1 ORDER BY created_at", app_id
        )
        return [_version(r) for r in rows]

    async def set_version_status(
        self,
        conn: Conn,
        app_id: str,
        version: str,
        status: str,
        *,
        reason: str | None = None,
        reviewer: str | None = None,
    ) -> None:
        await conn.execute(
            """UPDATE miniapp_versions SET status = $3,
                   review_reason = CASE WHEN $5::text IS NULL THEN review_reason ELSE $4 END,
                   reviewed_by = COALESCE($5, reviewed_by),
                   reviewed_at = CASE WHEN $5::text IS NULL THEN reviewed_at ELSE now() END
               WHERE app_id = $1 AND version = $2""",
            app_id,
            version,
            status,
            reason,
            reviewer,
        )

    async def set_release(
        self,
        conn: Conn,
        app_id: str,
        *,
        status: str,
        current: str | None,
        percent: float,
        cohort: dict[str, Any] | None,
        previous: str | None,
    ) -> None:
        await conn.execute(
            """UPDATE miniapps SET status = $2, current_version = $3, percent = $4,
                   cohort = $5::jsonb, previous_version = $6, updated_at = now()
               WHERE app_id = $1""",
            app_id,
            status,
            current,
            percent,
            json.dumps(cohort) if cohort is not None else None,
            previous,
        )

    async def record_release(
        self,
        conn: Conn,
        app_id: str,
        version: str,
        percent: float,
        cohort: dict[str, Any] | None,
        action: str,
        actor: str | None,
    ) -> None:
        await conn.execute(
            """INSERT INTO miniapp_releases (app_id, version, percent, cohort, action, actor)
               VALUES ($1, $2, $3, $4::jsonb, $5, $6)""",
            app_id,
            version,
            percent,
            json.dumps(cohort) if cohort is not None else None,
            action,
            actor,
        )

    async def recent_released(self, conn: Conn, app_id: str, depth: int) -> list[str]:
        """The last ``depth`` distinct versions released to everyone or in gray, newest first."""
        rows = await conn.fetch(
            """SELECT version FROM miniapp_releases WHERE app_id = $1
                   AND action IN ('release', 'rollback')
               GROUP BY version ORDER BY max(id) DESC LIMIT $2""",
            app_id,
            depth,
        )
        return [r["version"] for r in rows]

    async def releases(self, conn: Conn, app_id: str, limit: int) -> list[dict[str, Any]]:
        rows = await conn.fetch(
            """SELECT version, percent, cohort, action, actor, created_at FROM miniapp_releases
               WHERE app_id = $1 ORDER BY id DESC LIMIT $2""",
            app_id,
            limit,
        )
        return [
            {**dict(r), "cohort": json.loads(r["cohort"]) if r["cohort"] else None} for r in rows
        ]

    # routes -------------------------------------------------------------------------

    async def route_rows(self, conn: Conn, app_id: str | None = None) -> list[asyncpg.Record]:
        """Released/suspended apps with the manifests of their current and previous versions."""
        return await conn.fetch(
            """SELECT m.app_id, m.unit_id, m.client_id, m.status, m.current_version, m.percent,
                      m.cohort, m.previous_version, v.version, v.manifest
               FROM miniapps m JOIN miniapp_versions v ON v.app_id = m.app_id
                    AND v.version IN (m.current_version, m.previous_version)
               WHERE m.status IN ('released', 'suspended')
                 AND ($1::text IS NULL OR m.app_id = $1)""",
            app_id,
        )

    async def citizen_profile(self, conn: Conn, account_id: str) -> asyncpg.Record | None:
        return await conn.fetchrow(
            "SELECT region_code, birth_date, assurance_level FROM accounts WHERE id = $1",
            account_id,
        )

    # uses, ratings, follow-ups --------------------------------------------------------

    async def add_uses(self, conn: Conn, uses: Sequence[tuple[str, str, str]]) -> None:
        """Record (app, account, session) uses; each new one adds to the app's use count."""
        await conn.execute(
            """WITH new AS (
                   INSERT INTO miniapp_uses (app_id, account_id, session_id)
                   SELECT u.a, u.b, u.c
                   FROM unnest($1::text[], $2::text[], $3::text[]) AS u(a, b, c)
                   WHERE EXISTS (SELECT 1 FROM miniapps m WHERE m.app_id = u.a)
                   ON CONFLICT DO NOTHING RETURNING app_id)
               UPDATE miniapps m SET use_count = use_count + n.count
               FROM (SELECT app_id, count(*) FROM new GROUP BY app_id) n
               WHERE m.app_id = n.app_id""",
            [u[0] for u in uses],
            [u[1] for u in uses],
            [u[2] for u in uses],
        )

    async def has_use(self, conn: Conn, app_id: str, account_id: str, session_id: str) -> bool:
        return bool(
            await conn.fetchval(
                """SELECT 1 FROM miniapp_uses
                   WHERE app_id = $1 AND account_id = $2 AND session_id = $3""",
                app_id,
                account_id,
                session_id,
            )
        )

    async def add_usage(self, conn: Conn, rows: Sequence[tuple[Any, ...]]) -> None:
        """(app_id, hour, requests, errors, latency_ms_sum, buckets) added to the hour's row."""
        await conn.executemany(
            """INSERT INTO miniapp_usage AS u (app_id, hour, requests, errors, latency_ms_sum,
                   latency_buckets)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (app_id, hour) DO UPDATE SET
                   requests = u.requests + EXCLUDED.requests,
                   errors = u.errors + EXCLUDED.errors,
                   latency_ms_sum = u.latency_ms_sum + EXCLUDED.latency_ms_sum,
                   latency_buckets = ARRAY(SELECT a + b FROM unnest(u.latency_buckets,
                       EXCLUDED.latency_buckets) AS t(a, b))""",
            rows,
        )
