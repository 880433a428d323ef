"""The "done when" story: a unit issues, the citizen shows the QR code, a clerk
verifies it, a second scan is refused, the citizen sees both attempts, a
revoked certificate fails online and offline."""

from __future__ import annotations

import asyncio

import pytest

from tests.api.ecert.helpers import MATTER_ALL, MATTER_NAME, World, issue, qr, verify
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_issue_show_verify_replay_and_use_log(api: Api, world: World) -> None:
    cert = await issue(api, world)
    assert cert["status"] == "valid" and cert["id"].startswith("crt_")
    code = await qr(api, world, cert["id"])
    assert code["qr_text"].startswith("SZ1:")
    first = await verify(api, world, code["qr_text"])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["valid"] is True and body["type"] == world.type_code
    assert body["claims"] == {
        "name": "林*",
        "id_number": "4403**********6485",
    }  # minimal profile: name and masked ID only
    assert body["verification_id"].startswith("ver_")
    again = await verify(api, world, code["qr_text"])
    assert again.status_code == 410 and again.json()["code"] == "qr-replayed"
    uses = await api.get(f"/api/v1/ecert/wallet/{cert['id']}/uses", token=world.citizen_token)
    assert uses.status_code == 200
    log = uses.json()["uses"]
    assert [u["result"] for u in log] == ["qr-replayed", "valid"]
    assert log[1]["id"] == body["verification_id"]
    assert log[1]["unit"]["id"] == world.clerk_unit and log[1]["matter_code"] == MATTER_ALL
    assert log[1]["fields"] == ["id_number", "name"]
    assert "phone" not in str(log) and "sub" not in log[0]


async def test_matter_limits_disclosed_fields(api: Api, world: World) -> None:
    cert = await issue(api, world)
    code = await qr(api, world, cert["id"], profile="standard")
    resp = await verify(api, world, code["qr_text"], matter=MATTER_NAME)
    assert resp.status_code == 200, resp.text
    assert resp.json()["claims"] == {"name": "林*"}
    assert resp.json()["withheld"] == ["birth_date", "id_number"]


async def test_two_concurrent_scans_exactly_one_succeeds(api: Api, world: World) -> None:
    cert = await issue(api, world)
    code = await qr(api, world, cert["id"])
    results = await asyncio.gather(*(verify(api, world, code["qr_text"]) for _ in range(8)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [410] * 7
    assert {r.json()["code"] for r in results if r.status_code == 410} == {"qr-replayed"}


async def test_revoked_certificate_fails_online_and_qr_is_refused(api: Api, world: World) -> None:
    cert = await issue(api, world)
    code = await qr(api, world, cert["id"])
    resp = await api.post(
        f"/api/v1/ecert/certificates/{cert['id']}/revoke",
        token=world.issuer_token,
        json={"reason": "reported lost"},
    )
    assert resp.status_code == 200 and resp.json()["status"] == "revoked"
    scanned = await verify(api, world, code["qr_text"])
    assert scanned.status_code == 410 and scanned.json()["code"] == "certificate-revoked"
    refused = await api.post(
        f"/api/v1/ecert/wallet/{cert['id']}/qr", token=world.citizen_token, json={}
    )
    assert refused.status_code == 410 and refused.json()["code"] == "certificate-revoked"
    uses = await api.get(f"/api/v1/ecert/wallet/{cert['id']}/uses", token=world.citizen_token)
    assert [u["result"] for u in uses.json()["uses"]] == ["certificate-revoked"]


async def test_suspend_and_resume(api: Api, world: World) -> None:
    cert = await issue(api, world)
    path = f"/api/v1/ecert/certificates/{cert['id']}"
    resp = await api.post(path + "/suspend", token=world.issuer_token, json={"reason": "audit"})
    assert resp.json()["status"] == "suspended"
    refused = await api.post(
        f"/api/v1/ecert/wallet/{cert['id']}/qr", token=world.citizen_token, json={}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "certificate-suspended"
    resp = await api.post(path + "/resume", token=world.issuer_token, json={})
    assert resp.status_code == 200 and resp.json()["status"] == "valid"
    code = await qr(api, world, cert["id"])
    assert (await verify(api, world, code["qr_text"])).status_code == 200
    await api.post(path + "/revoke", token=world.issuer_token, json={"reason": "fraud"})
    resp = await api.post(path + "/resume", token=world.issuer_token, json={})
    assert resp.status_code == 409 and resp.json()["code"] == "status-change-not-allowed"
