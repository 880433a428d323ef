"""Catalog search on a real PostgreSQL: the proposed index design, with the demo catalog.

Uses only core PostgreSQL (tsvector + GIN): the ``pgserver`` wheel's PostgreSQL 16
ships no ``pg_trgm``. Runs in a throwaway schema that is dropped afterwards.
Run as a script for latency figures: ``python tests/integration/miniapps/test_search_pg.py``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from miniapps.search import (
    POPULAR_USES,
    PRIOR_RATING,
    PRIOR_WEIGHT,
    SearchDoc,
    build_tsquery,
    normalize,
    pinyin_full,
    pinyin_initials,
    rank_score,
    search_lexemes,
    text_match,
)
from server.demo.miniapp_catalog import CATEGORIES, Manifest, generate

DATABASE_URL = os.environ.get(
    "SUPERAPP_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

SCHEMA_SQL = """
CREATE TABLE {s}.apps (
    app_id        text PRIMARY KEY,
    name_zh       text NOT NULL,
    name_en       text NOT NULL,
    unit_name     text NOT NULL,
    category_zh   text NOT NULL,
    name_pinyin   text NOT NULL,          -- 'zhufanggongjijintiqu'
    name_initials text NOT NULL,          -- 'zfgjjtq'
    districts     text[] NOT NULL,
    status        text NOT NULL DEFAULT 'published',
    use_count     bigint NOT NULL DEFAULT 0,
    rating_sum    double precision NOT NULL DEFAULT 0,
    rating_count  integer NOT NULL DEFAULT 0,
    search_vector tsvector NOT NULL,      -- array_to_tsvector(search_lexemes(app))
    -- The query-independent part of miniapps.search.rank_score.
    static_score  double precision GENERATED ALWAYS AS (
        0.25 * least(1.0, ln(1 + use_count) / ln(1 + {popular}))
      + 0.15 * (({prior} * {weight} + rating_sum) / ({weight} + rating_count) - 1) / 4
    ) STORED
);
CREATE INDEX apps_search_gin ON {s}.apps USING gin (search_vector)
    WHERE status = 'published';
CREATE INDEX apps_static_score ON {s}.apps (static_score DESC)
    WHERE status = 'published';
"""

# $1 tsquery text, $2 normalized query, $3 query without spaces, $4 district or NULL.
# Two stages: the 200 most popular matches (a walk down apps_static_score for broad
# queries, a GIN bitmap scan for narrow ones), then the text match on those only.
# Evaluating @@ and the CASE on every match of a broad query ("服务") costs 100+ ms.
SEARCH_SQL = """
SELECT app_id, name_zh, name_en, unit_name, category_zh, use_count, rating_sum, rating_count,
       0.6 * CASE
           WHEN lower(name_zh) = $2 OR lower(name_en) = $2 THEN 1.0
           WHEN starts_with(lower(name_zh), $2) OR starts_with(lower(name_en), $2) THEN 0.9
           WHEN name_pinyin = $3 OR name_initials = $3 THEN 0.9
           WHEN starts_with(name_pinyin, $3) OR starts_with(name_initials, $3) THEN 0.85
           WHEN strpos(lower(name_zh), $2) > 0 OR strpos(lower(name_en), $2) > 0 THEN 0.8
           WHEN strpos(name_pinyin, $3) > 0 OR strpos(name_initials, $3) > 0 THEN 0.7
           WHEN strpos(unit_name, $2) > 0 OR strpos(category_zh, $2) > 0 THEN 0.5
           ELSE 0.3 END + static_score AS score
FROM (
    SELECT * FROM {s}.apps
    WHERE status = 'published'
      AND search_vector @@ $1::tsquery
      AND ($4::text IS NULL OR districts @> ARRAY[$4::text])
    ORDER BY static_score DESC
    LIMIT 200
) AS candidates
ORDER BY score DESC, app_id
LIMIT 20
"""


def row(m: Manifest, suffix: str = "") -> tuple[Any, ...]:
    doc = SearchDoc(
        m.name_zh + suffix, m.name_en + suffix, m.description, CATEGORIES[m.category], m.unit_name
    )
    return (
        m.app_id + suffix.replace(" ", "_"),
        doc.name_zh,
        doc.name_en,
        m.unit_name,
        doc.category,
        pinyin_full(doc.name_zh),
        pinyin_initials(doc.name_zh),
        list(m.districts),
        m.use_count,
        m.rating_sum,
        m.rating_count,
        search_lexemes(doc),
    )


async def load(conn: asyncpg.Connection, schema: str, copies: int = 1) -> int:
    await conn.execute(f"CREATE SCHEMA {schema}")
    await conn.execute(
        SCHEMA_SQL.format(s=schema, popular=POPULAR_USES, prior=PRIOR_RATING, weight=PRIOR_WEIGHT)
    )
    catalog = generate()
    rows = [row(m, f" {n}" if n else "") for n in range(copies) for m in catalog]
    # COPY cannot call array_to_tsvector: stage lexemes as text[] and convert once.
    await conn.execute(f"CREATE TEMP TABLE staging (LIKE {schema}.apps INCLUDING DEFAULTS)")
    await conn.execute("ALTER TABLE staging DROP COLUMN search_vector, ADD COLUMN lexemes text[]")
    cols = [
        "app_id", "name_zh", "name_en", "unit_name", "category_zh", "name_pinyin",
        "name_initials", "districts", "use_count", "rating_sum", "rating_count", "lexemes",
    ]  # fmt: skip
    await conn.copy_records_to_table("staging", records=rows, columns=cols)
    await conn.execute(
        f"INSERT INTO {schema}.apps ({', '.join(cols[:-1])}, search_vector) "
        f"SELECT {', '.join(cols[:-1])}, array_to_tsvector(lexemes) FROM staging"
    )
    await conn.execute("DROP TABLE staging")
    await conn.execute(f"ANALYZE {schema}.apps")
    return len(rows)


def sql(schema: str) -> str:
    return SEARCH_SQL.format(
        s=schema, popular=POPULAR_USES, prior=PRIOR_RATING, weight=PRIOR_WEIGHT
    )


async def search(
    conn: asyncpg.Connection, schema: str, query: str, district: str | None = None
) -> list[str]:
    tsquery = build_tsquery(query)
    if tsquery is None:
        return []
    q = normalize(query)
    rows = await conn.fetch(sql(schema), tsquery, q, q.replace(" ", ""), district)
    return [r["name_zh"] for r in rows]


async def search_rows(conn: asyncpg.Connection, schema: str, query: str) -> list[Any]:
    q = normalize(query)
    return list(await conn.fetch(sql(schema), build_tsquery(query), q, q.replace(" ", ""), None))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def catalog() -> AsyncIterator[tuple[asyncpg.Connection, str]]:
    conn = await asyncpg.connect(DATABASE_URL)
    # asyncpg prepares named statements; a generic plan cannot see the tsquery's selectivity.
    await conn.execute("SET plan_cache_mode = force_custom_plan")
    schema = f"search_{uuid.uuid4().hex[:12]}"
    try:
        await load(conn, schema)
        yield conn, schema
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(120)
async def test_chinese_pinyin_and_initials_find_the_provident_fund(catalog: Any) -> None:
    conn, schema = catalog
    for query in ("公积金提取", "gjjtq", "gongjijintiqu", "provident fund withdrawal"):
        results = await search(conn, schema, query)
        assert results[0] == "住房公积金提取", (query, results[:3])
    assert "住房公积金查询" in (await search(conn, schema, "gjj"))[:5]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(120)
async def test_district_filter_and_no_false_hits(catalog: Any) -> None:
    conn, schema = catalog
    nanshan = await search(conn, schema, "学位申请", district="440305")
    assert "南山区学位申请" in nanshan[:2]  # with the city-wide 义务教育学位申请
    assert "福田区学位申请" not in nanshan
    assert "福田区学位申请" in await search(conn, schema, "学位申请")
    assert await search(conn, schema, "火星殖民") == []
    assert await search(conn, schema, "？！") == []


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(120)
async def test_query_uses_the_gin_index(catalog: Any) -> None:
    conn, schema = catalog
    plan = await conn.fetch("EXPLAIN " + sql(schema), build_tsquery("gjj"), "gjj", "gjj", None)
    text = "\n".join(r[0] for r in plan)
    assert "apps_search_gin" in text, text


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(120)
async def test_sql_score_equals_the_python_rank_score(catalog: Any) -> None:
    conn, schema = catalog
    for query in ("gjj", "公积金", "住房", "深圳市人民医院预约挂号", "traffic"):
        for r in await search_rows(conn, schema, query):
            doc = SearchDoc(r["name_zh"], r["name_en"], "", r["category_zh"], r["unit_name"])
            expected = rank_score(
                text_match(query, doc), r["use_count"], r["rating_sum"], r["rating_count"]
            )
            assert r["score"] == pytest.approx(expected, abs=1e-9), (query, r["name_zh"])


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.timeout(120)
async def test_broad_queries_still_rank_exact_name_matches_first(catalog: Any) -> None:
    conn, schema = catalog
    assert (await search(conn, schema, "电费缴纳"))[0] == "电费缴纳"
    top = await search_rows(conn, schema, "服务")  # matches every app
    assert len(top) == 20
    assert [r["score"] for r in top] == sorted((r["score"] for r in top), reverse=True)


QUERIES = [
    "公积金", "gjj", "gongjij", "社保", "sb", "shebao", "交通违法", "jtwf", "预约挂号",
    "南山", "ns", "fee", "school", "派出所", "pcs", "深圳", "服务", "电费", "水费",
    "人民医院", "rmyy", "幼儿园", "xw", "学位", "provident", "park", "停车", "tc", "z", "税",
]  # fmt: skip


async def bench(copies: int = 2, rounds: int = 20) -> None:
    conn = await asyncpg.connect(DATABASE_URL)
    await conn.execute("SET plan_cache_mode = force_custom_plan")
    schema = f"search_bench_{uuid.uuid4().hex[:8]}"
    try:
        started = time.perf_counter()
        n = await load(conn, schema, copies)
        print(f"loaded {n} apps in {time.perf_counter() - started:.1f} s")
        stmt = await conn.prepare(sql(schema))
        timings: dict[str, list[float]] = {q: [] for q in QUERIES}
        for _ in range(rounds):
            for q in QUERIES:
                nq = normalize(q)
                t0 = time.perf_counter()
                await stmt.fetch(build_tsquery(q), nq, nq.replace(" ", ""), None)
                timings[q].append((time.perf_counter() - t0) * 1000)
        every = sorted(t for ts in timings.values() for t in ts)
        p = statistics.quantiles(every, n=100)
        print(f"all queries: p50 {p[49]:.2f} ms  p95 {p[94]:.2f} ms  max {every[-1]:.2f} ms")
        for q, ts in sorted(timings.items(), key=lambda kv: -statistics.median(kv[1]))[:6]:
            hits = await conn.fetchval(
                f"SELECT count(*) FROM {schema}.apps WHERE search_vector @@ $1::tsquery",
                build_tsquery(q),
            )
            print(f"  slowest {q!r}: median {statistics.median(ts):.2f} ms, {hits} matches")
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


if __name__ == "__main__":
    asyncio.run(bench(copies=int(sys.argv[1]) if len(sys.argv) > 1 else 2))
