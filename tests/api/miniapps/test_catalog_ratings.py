"""Catalog search over released apps, ratings with follow-ups and re-rating, usage."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from tests.api.miniapps.conftest import Unit, citizen, manifest
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_catalog_lists_only_released_apps_and_finds_pinyin(
    api: Api, unit: Unit, echo_url: str
) -> None:
    tag = secrets.token_hex(3)
    live = await unit.live(echo_url, name_zh="公积金提取" + tag, name_en="Fund " + tag)
    draft = await unit.register(echo_url, name_zh="公积金查询" + tag)
    resp = await api.get("/api/v1/catalog", params={"q": "公积金提取" + tag})
    ids = [i["app_id"] for i in resp.json()["items"]]
    assert ids[0] == live and draft not in ids
    resp = await api.get("/api/v1/catalog", params={"q": "gjjtq", "unit": unit.id})
    assert [i["app_id"] for i in resp.json()["items"]] == [live]
    resp = await api.get(
        "/api/v1/catalog", params={"unit": unit.id, "district": "440305", "kind": "service"}
    )
    assert [i["app_id"] for i in resp.json()["items"]] == [live]
    resp = await api.get("/api/v1/catalog", params={"unit": unit.id, "district": "440303"})
    assert resp.json()["items"] == []
    assert (await api.get(f"/api/v1/catalog/{live}")).json()["name_en"] == "Fund " + tag
    assert (await api.get(f"/api/v1/catalog/{draft}")).status_code == 404
    resp = await api.get("/api/v1/catalog", params={"category": "nope"})
    assert resp.status_code == 422
    resp = await api.get("/api/v1/catalog", params={"district": "南山"})
    assert resp.status_code == 422 and resp.json()["field"] == "district"


async def test_bad_rating_follow_up_fix_and_one_rerate(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.live(echo_url)
    who = await citizen(api)
    assert (await api.get(f"/m/{app_id}/x", token=who["token"])).status_code == 200
    rate = f"/api/v1/miniapps/{app_id}/ratings"
    resp = await api.post(rate, token=who["token"], json={"score": 1, "comment": "打不开"})
    followup = resp.json()["followup"]
    assert followup["contact_due"] < followup["fix_due"]
    resp = await api.post(rate, token=who["token"], json={"score": 5})
    assert resp.status_code == 409 and resp.json()["code"] == "already-rated"
    fid = followup["followup_id"]
    resp = await api.post(
        f"/api/v1/followups/{fid}/contact", token=unit.dev, json={"note": "已电话联系"}
    )
    assert resp.json()["status"] == "contacted"
    resp = await api.post(f"/api/v1/followups/{fid}/fix", token=unit.admin, json={})
    assert resp.json()["status"] == "fixed"
    resp = await api.post(rate, token=who["token"], json={"score": 4})
    assert resp.status_code == 201 and resp.json()["rerated"] is True
    resp = await api.post(rate, token=who["token"], json={"score": 5})
    assert resp.status_code == 409
    entry = (await api.get(f"/api/v1/catalog/{app_id}")).json()
    assert entry["rating"] == 4.0 and entry["rating_count"] == 1 and entry["use_count"] == 1
    stats = (await api.get("/api/v1/ratings/units")).json()["items"]
    mine = next(s for s in stats if s["unit_id"] == unit.id)
    assert mine["ratings"] == 1 and mine["bad_ratings"] == 1 and mine["bad_rate"] == 1.0
    usage = (await api.get(f"/api/v1/miniapps/{app_id}/usage", token=unit.dev)).json()
    assert usage["hours"][0]["requests"] == 1 and usage["hours"][0]["errors"] == 0


async def test_two_concurrent_ratings_of_one_use_count_once(
    api: Api, unit: Unit, echo_url: str
) -> None:
    app_id = await unit.live(echo_url)
    who = await citizen(api)
    assert (await api.get(f"/m/{app_id}/x", token=who["token"])).status_code == 200
    rate = f"/api/v1/miniapps/{app_id}/ratings"
    results = await asyncio.gather(
        *(api.post(rate, token=who["token"], json={"score": s}) for s in (1, 5, 3, 2))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409]
    entry = (await api.get(f"/api/v1/catalog/{app_id}")).json()
    assert entry["rating_count"] == 1
    followups = (await api.get(f"/api/v1/units/{unit.id}/followups", token=unit.admin)).json()
    score = next(r.json()["score"] for r in results if r.status_code == 201)
    assert len(followups["items"]) == (1 if score <= 2 else 0)


async def test_catalog_follows_gray_releases_per_citizen(
    api: Api, unit: Unit, echo_url: str
) -> None:
    tag = secrets.token_hex(3)
    # A first release to 30% of Nanshan: only the citizens inside see the app at all.
    first = await unit.register(echo_url, name_zh="灰度首发" + tag, name_en="First " + tag)
    await unit.approve(first)
    await unit.release(first, percent=30, cohort={"districts": ["440305"]})
    inside = await citizen(
        api, app_id=first, unit_id=unit.id, inside=True, percent=30, district="440305"
    )
    outside = await citizen(
        api, app_id=first, unit_id=unit.id, inside=False, percent=30, district="440305"
    )
    elsewhere = await citizen(
        api, app_id=first, unit_id=unit.id, inside=True, percent=30, district="440303"
    )

    async def listed(token: str | None) -> list[str]:
        resp = await api.get("/api/v1/catalog", params={"unit": unit.id}, token=token)
        assert resp.status_code == 200
        return [i["app_id"] for i in resp.json()["items"]]

    assert await listed(None) == []
    assert await listed(inside["token"]) == [first]
    assert await listed(outside["token"]) == []
    assert await listed(elsewhere["token"]) == []
    assert (await api.get(f"/api/v1/catalog/{first}")).status_code == 404
    resp = await api.get(f"/api/v1/catalog/{first}", token=inside["token"])
    assert resp.status_code == 200 and resp.json()["version"] == "1.0.0"
    assert "private" in resp.headers["Cache-Control"]
    resp = await api.get("/api/v1/catalog", params={"q": "灰度首发" + tag}, token=outside["token"])
    assert resp.json()["items"] == []
    resp = await api.get("/api/v1/catalog", params={"q": "灰度首发" + tag}, token=inside["token"])
    assert [i["app_id"] for i in resp.json()["items"]] == [first]

    # A second version in gray over a full release: everyone sees the app, each their version.
    await unit.release(first)
    assert await listed(None) == [first]
    resp = await api.post(
        f"/api/v1/miniapps/{first}/versions",
        token=unit.dev,
        json={"version": "2.0.0", "manifest": manifest(echo_url)},
    )
    assert resp.status_code == 201, resp.text
    await unit.approve(first, "2.0.0")
    await unit.release(first, "2.0.0", percent=30, cohort={"districts": ["440305"]})
    versions = {}
    for who, token in (("anon", None), ("in", inside["token"]), ("out", outside["token"])):
        resp = await api.get(f"/api/v1/catalog/{first}", token=token)
        versions[who] = resp.json()["version"]
    assert versions == {"anon": "1.0.0", "in": "2.0.0", "out": "1.0.0"}
    # A bad token is refused rather than silently treated as anonymous.
    resp = await api.get("/api/v1/catalog", token="not-a-token")
    assert resp.status_code == 401
    resp = await api.get("/api/v1/catalog", params={"unit": unit.id})
    assert resp.headers["Cache-Control"] == "public, max-age=30"
    assert resp.headers["Vary"] == "Authorization"


async def test_a_first_use_is_written_at_once_for_ratings_on_any_worker(
    api: Api, unit: Unit, echo_url: str
) -> None:
    app_id = await unit.live(echo_url)
    who = await citizen(api)
    usage = api.services.usage
    usage.start()  # as a serving worker does (tests flush by hand otherwise)
    try:
        assert (await api.get(f"/m/{app_id}/x", token=who["token"])).status_code == 200
        # Well within the once-a-second flush: another worker taking the rating finds it.
        await asyncio.sleep(0.3)
        found = await api.services.pool.fetchval(
            "SELECT count(*) FROM miniapp_uses WHERE app_id = $1 AND account_id = $2",
            app_id,
            who["sub"],
        )
        assert found == 1
    finally:
        await usage.stop()
