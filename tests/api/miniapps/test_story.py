"""The issue's "Done when" story over HTTP on real PostgreSQL and Redis: a unit
admin registers an app, a reviewer approves it, the developer releases it to
10% of one district, a citizen in the cohort reaches it through the gateway
with a verified identity assertion, another does not, a bad rating opens a
follow-up."""

from __future__ import annotations

import pytest

from identity.pairwise import pairwise_sub, resolve_pairwise
from tests.api.miniapps.conftest import Unit, citizen, manifest
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_register_review_gray_release_gateway_and_rating(
    api: Api, unit: Unit, echo_url: str
) -> None:
    # The unit admin registers; the developer submits; a reviewer first rejects with a reason.
    app_id = await unit.register(echo_url + "/svc", name_zh="南山区公积金提取")
    base = f"/api/v1/miniapps/{app_id}/versions/1.0.0"
    assert (await api.post(base + "/submit", token=unit.dev)).json()["status"] == "in_review"
    resp = await api.post(base + "/review", token=unit.reviewer, json={"decision": "reject"})
    assert resp.status_code == 422 and resp.json()["field"] == "reason"
    resp = await api.post(
        base + "/review", token=unit.reviewer, json={"decision": "reject", "reason": "缺少隐私政策"}
    )
    assert resp.json()["status"] == "rejected" and resp.json()["review_reason"] == "缺少隐私政策"
    # A developer may not review; the reviewer approves after resubmission.
    resp = await api.post(base + "/review", token=unit.dev, json={"decision": "approve"})
    assert resp.status_code == 403
    await unit.approve(app_id)

    # Released to 10% of Nanshan (440305).
    cohort = {"districts": ["440305"]}
    app = await unit.release(app_id, percent=10, cohort=cohort)
    assert app["status"] == "released" and app["release"]["percent"] == 10

    inside = await citizen(
        api, app_id=app_id, unit_id=unit.id, inside=True, percent=10, district="440305"
    )
    outside = await citizen(
        api, app_id=app_id, unit_id=unit.id, inside=False, percent=10, district="440305"
    )
    elsewhere = await citizen(
        api, app_id=app_id, unit_id=unit.id, inside=True, percent=10, district="440303"
    )

    resp = await api.get(
        f"/m/{app_id}/hello/world?x=1",
        token=inside["token"],
        headers={"X-Superapp-Identity": "forged", "X-Superapp-Role": "admin"},
    )
    assert resp.status_code == 200, resp.text
    echo = resp.json()
    assert echo["path"] == "/svc/hello/world" and echo["query"] == {"x": ["1"]}
    identity = echo["identity"]
    assert identity["verified"] is True, identity
    claims = identity["claims"]
    assert claims["aud"] == app_id and claims["acr"] == "L1" and claims["ver"] == "1.0.0"
    assert claims["sub"] == pairwise_sub(api.services.vault, inside["sub"], sector=unit.id)
    assert claims["sub"] != inside["sub"]
    # Remembered before the upstream saw it: the unit's server can name the citizen back.
    assert await resolve_pairwise(api.services.pool, unit.id, claims["sub"]) == inside["sub"]
    assert claims["rid"] == resp.headers["X-Request-Id"]
    assert identity["header"]["typ"] == "superapp-identity+jwt"
    # The forged headers and the citizen's platform token never reach the upstream.
    sent = {k.lower(): v for k, v in echo["headers"].items()}
    assert "x-superapp-role" not in sent and "authorization" not in sent
    assert sent["x-superapp-identity"] != "forged"

    for other in (outside, elsewhere):
        resp = await api.get(f"/m/{app_id}/hello", token=other["token"])
        assert resp.status_code == 404 and resp.json()["code"] == "miniapp-not-released"

    # No token, no entry.
    assert (await api.get(f"/m/{app_id}/hello")).status_code == 401

    # A bad rating for that use opens a follow-up for the unit with deadlines.
    resp = await api.post(
        f"/api/v1/miniapps/{app_id}/ratings",
        token=inside["token"],
        json={"score": 2, "comment": "提取一直失败"},
    )
    assert resp.status_code == 201, resp.text
    followup = resp.json()["followup"]
    assert followup["status"] == "open"
    resp = await api.get(f"/api/v1/units/{unit.id}/followups", token=unit.admin)
    assert [f["followup_id"] for f in resp.json()["items"]] == [followup["followup_id"]]
    # Never used by this citizen: no rating.
    resp = await api.post(
        f"/api/v1/miniapps/{app_id}/ratings", token=outside["token"], json={"score": 5}
    )
    assert resp.status_code == 409 and resp.json()["code"] == "no-use-to-rate"


async def test_other_units_staff_cannot_touch_the_app(api: Api, unit: Unit, echo_url: str) -> None:
    app_id = await unit.register(echo_url)
    other = await Unit(api).setup()
    base = f"/api/v1/miniapps/{app_id}"
    for path, token in (
        (base + "/versions/1.0.0/submit", other.dev),
        (base + "/credentials", other.admin),
        (base + "/versions", other.admin),
    ):
        resp = await api.post(
            path, token=token, json={"version": "2", "manifest": manifest(echo_url)}
        )
        assert resp.status_code == 403, (path, resp.text)
    assert (await api.get(base + "/usage", token=other.admin)).status_code == 403
    resp = await api.get(f"/api/v1/units/{unit.id}/followups", token=other.admin)
    assert resp.status_code == 403
    # Registering for another unit is refused too.
    resp = await api.post(
        "/api/v1/miniapps",
        token=other.admin,
        json={"unit_id": unit.id, "manifest": manifest(echo_url)},
    )
    assert resp.status_code == 403
