"""Units and role grants: who may create units and add members."""

from __future__ import annotations

import secrets

import pytest

from tests.support import Api, random_phone

pytestmark = pytest.mark.asyncio

UNIT = {
    "name_zh": "深圳市测试局",
    "name_en": "Test bureau",
    "kind": "municipal",
    "district_code": "440300",
}


async def test_platform_admin_creates_units_others_cannot(api: Api) -> None:
    _, admin = await api.staff("platform-admin", None)
    code = "t-" + secrets.token_hex(4)
    resp = await api.post("/api/v1/units", json={**UNIT, "code": code}, token=admin)
    assert resp.status_code == 201
    unit = resp.json()
    assert unit["id"].startswith("unt_") and unit["kind"] == "municipal"
    citizen = (await api.sign_in(random_phone()))["access_token"]
    resp = await api.post("/api/v1/units", json={**UNIT, "code": code + "x"}, token=citizen)
    assert resp.status_code == 403
    listed = (await api.get("/api/v1/units", params={"kind": "municipal", "limit": 500})).json()
    assert unit["id"] in [u["id"] for u in listed["units"]]


async def test_bad_unit_fields(api: Api) -> None:
    _, admin = await api.staff("platform-admin", None)
    resp = await api.post(
        "/api/v1/units", json={**UNIT, "code": "x", "kind": "ministry"}, token=admin
    )
    assert resp.status_code == 422 and resp.json()["field"] == "kind"
    resp = await api.post(
        "/api/v1/units", json={**UNIT, "code": "x", "district_code": "44"}, token=admin
    )
    assert resp.status_code == 422 and resp.json()["field"] == "district_code"


async def test_unit_admin_adds_members_only_to_their_unit(api: Api) -> None:
    mine, other = await api.unit(), await api.unit()
    _, admin = await api.staff("unit-admin", mine)
    new_phone = random_phone()
    resp = await api.post(
        f"/api/v1/units/{mine}/members",
        json={"phone": new_phone, "role": "counter-staff"},
        token=admin,
    )
    assert resp.status_code == 201
    # The new member's token carries the role once they sign in.
    me = (
        await api.get("/api/v1/identity/me", token=(await api.sign_in(new_phone))["access_token"])
    ).json()
    assert f"counter-staff:{mine}" in me["roles"]
    resp = await api.post(
        f"/api/v1/units/{other}/members",
        json={"phone": random_phone(), "role": "issuer"},
        token=admin,
    )
    assert resp.status_code == 403
    resp = await api.post(
        f"/api/v1/units/{mine}/members",
        json={"phone": random_phone(), "role": "platform-admin"},
        token=admin,
    )
    assert resp.status_code == 422


async def test_counter_staff_cannot_grant(api: Api) -> None:
    unit = await api.unit()
    _, staff = await api.staff("counter-staff", unit)
    resp = await api.post(
        f"/api/v1/units/{unit}/members",
        json={"phone": random_phone(), "role": "unit-admin"},
        token=staff,
    )
    assert resp.status_code == 403


async def test_unknown_unit_is_404(api: Api) -> None:
    _, admin = await api.staff("platform-admin", None)
    resp = await api.post(
        "/api/v1/units/unt_nope/members",
        json={"phone": random_phone(), "role": "issuer"},
        token=admin,
    )
    assert resp.status_code == 404
