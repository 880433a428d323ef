"""The citizen's catalog: search and browse released mini-apps.

Search follows the index design of ``tests/integration/miniapps/test_search_pg.py``
(tsvector of Chinese uni/bigrams and pinyin forms, GIN index, core PostgreSQL
only): stage one takes the most popular ``CANDIDATES`` matches, stage two
scores only those by text match (the SQL twin of ``miniapps.search.text_match``)
plus the stored popularity/rating score. Only released apps are listed.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from identity.errors import ValidationError
from miniapps.domain import CATEGORIES, KINDS
from miniapps.errors import MiniAppNotFound
from miniapps.search import build_tsquery, normalize

PAGE_SIZE = 20
CANDIDATES = 200
MAX_PAGE = 50

_COLUMNS = """app_id, unit_id, unit_name, name_zh, name_en, description, icon, category,
    category_zh, kind, districts, use_count, rating_sum, rating_count, current_version"""

# $1..$4 filters (category, unit, district, kind), $5 tsquery, $6 normalized q, $7 compact q,
# $8 candidates, $9 limit, $10 offset.
_SEARCH = f"""
SELECT {_COLUMNS},
       0.6 * CASE
           WHEN lower(name_zh) = $6 OR lower(name_en) = $6 THEN 1.0
           WHEN starts_with(lower(name_zh), $6) OR starts_with(lower(name_en), $6) THEN 0.9
           WHEN name_pinyin = $7 OR name_initials = $7 THEN 0.9
           WHEN starts_with(name_pinyin, $7) OR starts_with(name_initials, $7) THEN 0.85
           WHEN strpos(lower(name_zh), $6) > 0 OR strpos(lower(name_en), $6) > 0 THEN 0.8
           WHEN strpos(name_pinyin, $7) > 0 OR strpos(name_initials, $7) > 0 THEN 0.7
           WHEN strpos(unit_name, $6) > 0 OR strpos(category_zh, $6) > 0 THEN 0.5
           ELSE 0.3 END + static_score AS score
FROM (
    SELECT * FROM miniapps
    WHERE status = 'released' AND search_vector @@ $5::tsquery
      AND ($1::text IS NULL OR category = $1) AND ($2::text IS NULL OR unit_id = $2)
      AND ($3::text IS NULL OR districts @> ARRAY[$3::text]) AND ($4::text IS NULL OR kind = $4)
    ORDER BY static_score DESC
    LIMIT $8
) AS candidates
ORDER BY score DESC, app_id
LIMIT $9 OFFSET $10
"""  # noqa: S608 - a constant column list, no input

_BROWSE = f"""
SELECT {_COLUMNS}, static_score AS score FROM miniapps
WHERE status = 'released'
  AND ($1::text IS NULL OR category = $1) AND ($2::text IS NULL OR unit_id = $2)
  AND ($3::text IS NULL OR districts @> ARRAY[$3::text]) AND ($4::text IS NULL OR kind = $4)
ORDER BY static_score DESC, app_id
LIMIT $5 OFFSET $6
"""  # noqa: S608 - a constant column list, no input


def _item(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "app_id": r["app_id"],
        "name_zh": r["name_zh"],
        "name_en": r["name_en"],
        "description": r["description"],
        "icon": r["icon"],
        "category": r["category"],
        "category_zh": r["category_zh"],
        "kind": r["kind"],
        "unit_id": r["unit_id"],
        "unit_name": r["unit_name"],
        "districts": list(r["districts"]),
        "version": r["current_version"],
        "use_count": r["use_count"],
        "rating": round(r["rating_sum"] / r["rating_count"], 2) if r["rating_count"] else None,
        "rating_count": r["rating_count"],
        "score": round(r["score"], 6),
    }


def _filter(name: str, value: str | None, allowed: Any = None, max_len: int = 64) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > max_len or (allowed is not None and value not in allowed):
        raise ValidationError(name, "Unknown value." if allowed else "Too long.")
    return value


class Catalog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def search(
        self,
        *,
        q: str | None,
        category: str | None,
        unit: str | None,
        district: str | None,
        kind: str | None,
        page: int,
    ) -> dict[str, Any]:
        if not 1 <= page <= MAX_PAGE:
            raise ValidationError("page", f"Must be from 1 to {MAX_PAGE}.")
        filters = (
            _filter("category", category, CATEGORIES),
            _filter("unit", unit),
            _filter("district", district, max_len=6),
            _filter("kind", kind, KINDS),
        )
        if q is not None and len(q) > 100:
            raise ValidationError("q", "At most 100 characters.")
        offset = (page - 1) * PAGE_SIZE
        query = (q or "").strip()
        async with self.pool.acquire() as conn, conn.transaction():
            # A generic plan cannot see a tsquery's selectivity (GIN scan vs. score walk).
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            if query:
                tsquery = build_tsquery(query)
                if tsquery is None:
                    return {"items": [], "page": page, "page_size": PAGE_SIZE, "has_more": False}
                nq = normalize(query)
                rows = await conn.fetch(
                    _SEARCH, *filters, tsquery, nq, nq.replace(" ", ""),
                    max(CANDIDATES, offset + PAGE_SIZE + 1), PAGE_SIZE + 1, offset,
                )  # fmt: skip
            else:
                rows = await conn.fetch(_BROWSE, *filters, PAGE_SIZE + 1, offset)
        return {
            "items": [_item(r) for r in rows[:PAGE_SIZE]],
            "page": page,
            "page_size": PAGE_SIZE,
            "has_more": len(rows) > PAGE_SIZE,
        }

    async def entry(self, app_id: str) -> dict[str, Any]:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS}, static_score AS score FROM miniapps "  # noqa: S608
            "WHERE app_id = $1 AND status = 'released'",
            app_id,
        )
        if row is None:
            raise MiniAppNotFound()
        return _item(row)
