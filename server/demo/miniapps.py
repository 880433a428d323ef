"""Demo mini-apps: the 8,606 manifests of :mod:`server.demo.miniapp_catalog`
over the 76 units, released and searchable, plus ``apps.echo``, whose upstream
is the echo simulator (``superapp sim miniapp``). Bulk-loaded with COPY into a
staging table; idempotent (existing apps are left as they are).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from miniapps.search import SearchDoc, pinyin_full, pinyin_initials, search_lexemes
from server.bootstrap import Services
from server.demo.miniapp_catalog import CATEGORIES, Manifest, generate
from server.sims.launcher import sim_url

Progress = Callable[[str, int, int], None]
ECHO_APP_ID = "app_echodemo0000000000000000"
VERSION = "1.0.0"
CHUNK = 1000

_APP_COLS = (
    "app_id", "unit_id", "client_id", "status", "name_zh", "name_en", "description", "category",
    "category_zh", "kind", "districts", "unit_name", "name_pinyin", "name_initials",
    "current_version", "use_count", "rating_sum", "rating_count", "lexemes", "manifest",
    "upstream_url", "scopes",
)  # fmt: skip


def _echo_manifest() -> Manifest:
    return Manifest(
        app_id=ECHO_APP_ID,
        slug="gsdata-echo",
        unit_code="sz-gsdata",
        unit_name="",
        name_zh="回声演示应用",
        name_en="Echo demo app",
        description="显示网关转发的请求和身份断言，供开发者试用网关。",
        category="community",
        kind="service",
        districts=(),
        min_assurance="L1",
        scopes=("openid", "phone"),
        use_count=0,
        rating_sum=0.0,
        rating_count=0,
    )


def _row(m: Manifest, unit_id: str, unit_name: str, upstream: str) -> tuple[Any, ...]:
    category_zh = CATEGORIES[m.category]
    doc = SearchDoc(m.name_zh, m.name_en, m.description, category_zh, unit_name)
    manifest = {
        "name_zh": m.name_zh,
        "name_en": m.name_en,
        "category": m.category,
        "kind": m.kind,
        "description": m.description,
        "icon": "",
        "districts": list(m.districts),
        "upstream": upstream,
        "scopes": list(m.scopes),
        "min_assurance": m.min_assurance,
        "contact": {"name": unit_name, "phone": "12345"},
    }
    client_id = "cli_" + hashlib.sha256(m.app_id.encode()).hexdigest()[:24]
    return (
        m.app_id, unit_id, client_id, "released", m.name_zh, m.name_en, m.description,
        m.category, category_zh, m.kind, list(m.districts), unit_name, pinyin_full(m.name_zh),
        pinyin_initials(m.name_zh), VERSION, m.use_count, m.rating_sum, m.rating_count,
        search_lexemes(doc), json.dumps(manifest, ensure_ascii=False), upstream, list(m.scopes),
    )  # fmt: skip


async def seed_miniapps(
    svc: Services, units: dict[str, str], progress: Progress | None = None
) -> dict[str, Any]:
    catalog = [_echo_manifest(), *generate()]
    total = len(catalog)
    async with svc.pool.acquire() as conn:
        names = {r["id"]: r["name_zh"] for r in await conn.fetch("SELECT id, name_zh FROM units")}
        present = await conn.fetchval(
            "SELECT count(*) FROM miniapps WHERE app_id = ANY($1::text[])",
            [m.app_id for m in catalog],
        )
        if present < total:
            upstream = sim_url("miniapp") + "/"
            rows = []
            for i, m in enumerate(catalog, 1):
                unit_id = units[m.unit_code]
                rows.append(_row(m, unit_id, names[unit_id], upstream))
                if progress and (i % CHUNK == 0 or i == total):
                    progress("mini-apps", i, total)
            async with conn.transaction():
                await _load(conn, rows)
        elif progress:
            progress("mini-apps", total, total)  # already seeded: say so
    return {
        "count": total,
        "echo": {
            "app_id": ECHO_APP_ID,
            "unit_id": units["sz-gsdata"],
            "upstream": sim_url("miniapp"),
            "gateway_path": f"/m/{ECHO_APP_ID}/",
        },
    }


async def _load(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    await conn.execute(
        """CREATE TEMP TABLE demo_apps (app_id text, unit_id text, client_id text, status text,
               name_zh text, name_en text, description text, category text, category_zh text,
               kind text, districts text[], unit_name text, name_pinyin text,
               name_initials text, current_version text, use_count bigint,
               rating_sum double precision, rating_count int, lexemes text[], manifest text,
               upstream_url text, scopes text[]) ON COMMIT DROP"""
    )
    await conn.copy_records_to_table("demo_apps", records=rows, columns=list(_APP_COLS))
    await conn.execute(
        """INSERT INTO oauth_clients (client_id, name, unit_id, app_id, client_type, allowed_scopes)
           SELECT client_id, name_zh, unit_id, app_id, 'confidential', scopes FROM demo_apps
           ON CONFLICT DO NOTHING"""
    )
    await conn.execute(
        """INSERT INTO miniapps (app_id, unit_id, client_id, status, name_zh, name_en,
               description, category, category_zh, kind, districts, unit_name, name_pinyin,
               name_initials, current_version, use_count, rating_sum, rating_count, search_vector)
           SELECT app_id, unit_id, client_id, status, name_zh, name_en, description, category,
               category_zh, kind, districts, unit_name, name_pinyin, name_initials,
               current_version, use_count, rating_sum, rating_count, array_to_tsvector(lexemes)
           FROM demo_apps ON CONFLICT DO NOTHING"""
    )
    await conn.execute(
        """INSERT INTO miniapp_versions (app_id, version, status, manifest, upstream_url,
               review_reason, reviewed_at)
           SELECT app_id, current_version, 'released', manifest::jsonb, upstream_url,
               'demo data', now() FROM demo_apps ON CONFLICT DO NOTHING"""
    )
    await conn.execute(
        """INSERT INTO miniapp_releases (app_id, version, percent, action)
           SELECT d.app_id, d.current_version, 100, 'release' FROM demo_apps d
           WHERE NOT EXISTS (SELECT 1 FROM miniapp_releases r WHERE r.app_id = d.app_id)"""
    )
    await conn.execute("ANALYZE miniapps")
