"""The citizen's catalog: search and browse released mini-apps.

Search follows the index design of ``tests/integration/miniapps/test_search_pg.py``
(tsvector of Chinese uni/bigrams and pinyin forms, GIN index, core PostgreSQL
only): stage one takes the most popular ``CANDIDATES`` matches, stage two
scores only those by text match (the SQL twin of ``miniapps.search.text_match``)
plus the stored popularity/rating score. Only released apps are listed.

Gray releases (``miniapps.gray``) shape what each citizen sees: an app whose
*first* release is still in gray is listed only to the citizens inside that
gray (never to anonymous callers), and a citizen outside a later gray sees the
previous version's number. Apps in gray are few at any time, so they are read
in the same transaction and decided in Python with the gateway's own rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from identity.errors import ValidationError
from miniapps.domain import CATEGORIES, KINDS
from miniapps.errors import MiniAppNotFound
from miniapps.gray import Citizen, Cohort, GrayRelease, choose_version
from miniapps.repository import MiniAppRepository
from miniapps.search import build_tsquery, normalize

PAGE_SIZE = 20
CANDIDATES = 200
MAX_PAGE = 50

_COLUMNS = """app_id, unit_id, unit_name, name_zh, name_en, description, icon, category,
    category_zh, kind, districts, use_count, rating_sum, rating_count, current_version"""

# $1..$4 filters (category, unit, district, kind), $5 tsquery, $6 normalized q, $7 compact q,
# $8 candidates, $9 limit, $10 offset, $11 app ids hidden from this caller (first release in gray).
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
      AND NOT (app_id = ANY($11::text[]))
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
  AND NOT (app_id = ANY($7::text[]))
ORDER BY static_score DESC, app_id
LIMIT $5 OFFSET $6
"""  # noqa: S608 - a constant column list, no input


# $1: one app (an entry) or NULL (a search).
_GRAY = """
SELECT app_id, unit_id, current_version, previous_version, percent, cohort FROM miniapps
WHERE status = 'released' AND (percent < 100 OR cohort IS NOT NULL)
  AND ($1::text IS NULL OR app_id = $1)
"""


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in citizen as gray selection sees them (see ``miniapps.gray.Citizen``)."""

    account_id: str
    acr: int
    subject_for: Callable[[str], str]  # unit id -> the citizen's pairwise sub for that unit


@dataclass(frozen=True, slots=True)
class GrayView:
    hidden: list[str]  # first releases in gray that this caller is outside of
    versions: dict[str, str]  # app id -> the version this caller is served, where it differs


def _item(r: asyncpg.Record, view: GrayView | None = None) -> dict[str, Any]:
    version = r["current_version"]
    if view is not None:
        version = view.versions.get(r["app_id"], version)
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
        "version": version,
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
    def __init__(self, pool: asyncpg.Pool, repo: MiniAppRepository) -> None:
        self.pool = pool
        self.repo = repo

    async def _gray_view(
        self, conn: asyncpg.Connection, viewer: Viewer | None, app_id: str | None = None
    ) -> GrayView:
        """Which released apps in gray (or only ``app_id``) this caller may not see, and
        which version they get."""
        hidden: list[str] = []
        versions: dict[str, str] = {}
        rows = await conn.fetch(_GRAY, app_id)
        if not rows:
            return GrayView(hidden, versions)
        profile = None
        today = datetime.now(UTC).date()
        for r in rows:
            cohort = Cohort.from_json(json.loads(r["cohort"])) if r["cohort"] else None
            release = GrayRelease(r["current_version"], r["percent"], cohort)
            served = None
            if viewer is not None:
                if profile is None and cohort is not None:
                    profile = await self.repo.citizen_profile(conn, viewer.account_id)
                citizen = Citizen(
                    viewer.subject_for(r["unit_id"]),
                    profile["region_code"] if profile else None,
                    f"L{viewer.acr}",
                    profile["birth_date"] if profile else None,
                )
                served = choose_version(r["app_id"], citizen, release, r["previous_version"], today)
            else:
                served = r["previous_version"]
            if served is None:
                hidden.append(r["app_id"])
            elif served != r["current_version"]:
                versions[r["app_id"]] = served
        return GrayView(hidden, versions)

    async def search(
        self,
        *,
        q: str | None,
        category: str | None,
        unit: str | None,
        district: str | None,
        kind: str | None,
        page: int,
        viewer: Viewer | None = None,
    ) -> dict[str, Any]:
        """One page of results; ``viewer`` (a signed-in citizen) sees the gray apps they are in."""
        if not 1 <= page <= MAX_PAGE:
            raise ValidationError("page", f"Must be from 1 to {MAX_PAGE}.")
        if district and not (len(district) == 6 and district.isascii() and district.isdigit()):
            raise ValidationError("district", "An administrative code: 6 digits.")
        filters = (
            _filter("category", category, CATEGORIES),
            _filter("unit", unit),
            district or None,
            _filter("kind", kind, KINDS),
        )
        if q is not None and len(q) > 100:
            raise ValidationError("q", "At most 100 characters.")
        offset = (page - 1) * PAGE_SIZE
        query = (q or "").strip()
        async with self.pool.acquire() as conn, conn.transaction():
            # A generic plan cannot see a tsquery's selectivity (GIN scan vs. score walk).
            await conn.execute("SET LOCAL plan_cache_mode = force_custom_plan")
            view = await self._gray_view(conn, viewer)
            if query:
                tsquery = build_tsquery(query)
                if tsquery is None:
                    return {"items": [], "page": page, "page_size": PAGE_SIZE, "has_more": False}
                nq = normalize(query)
                rows = await conn.fetch(
                    _SEARCH, *filters, tsquery, nq, nq.replace(" ", ""),
                    max(CANDIDATES, offset + PAGE_SIZE + 1), PAGE_SIZE + 1, offset, view.hidden,
                )  # fmt: skip
            else:
                rows = await conn.fetch(_BROWSE, *filters, PAGE_SIZE + 1, offset, view.hidden)
        return {
            "items": [_item(r, view) for r in rows[:PAGE_SIZE]],
            "page": page,
            "page_size": PAGE_SIZE,
            "has_more": len(rows) > PAGE_SIZE,
        }

    async def entry(self, app_id: str, viewer: Viewer | None = None) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS}, static_score AS score FROM miniapps "  # noqa: S608
                "WHERE app_id = $1 AND status = 'released'",
                app_id,
            )
            view = await self._gray_view(conn, viewer, app_id) if row is not None else None
        if row is None or view is None or app_id in view.hidden:
            raise MiniAppNotFound()
        return _item(row, view)
