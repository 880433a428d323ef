"""Issuance: who may issue what, holder by subject or ID number, idempotency."""

from __future__ import annotations

import asyncio

import pytest

from tests.api.ecert.helpers import World, issue
from tests.support import Api

pytestmark = pytest.mark.asyncio
URL = "/api/v1/ecert/certificates"


async def test_types_are_listed(api: Api, world: World) -> None:
    resp = await api.get("/api/v1/ecert/types")
    t = next(t for t in resp.json()["types"] if t["code"] == world.type_code)
    assert t["issuer_units"] == [world.unit_code]
    assert {f["key"]: f["mask"] for f in t["fields"]}["id_number"] == "id"


async def test_same_document_same_certificate_different_body_conflicts(
    api: Api, world: World
) -> None:
    body = world.issue_body()
    first = await api.post(URL, token=world.issuer_token, json=body)
    assert first.status_code == 201
    again = await api.post(URL, token=world.issuer_token, json=body)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    changed = {**body, "claims": {**body["claims"], "name": "何佩玲"}}
    conflict = await api.post(URL, token=world.issuer_token, json=changed)
    assert conflict.status_code == 409 and conflict.json()["code"] == "idempotency-conflict"


async def test_concurrent_issuance_of_one_document_makes_one_certificate(
    api: Api, world: World
) -> None:
    body = world.issue_body()
    results = await asyncio.gather(
        *(api.post(URL, token=world.issuer_token, json=body) for _ in range(6))
    )
    assert sorted(r.status_code for r in results) == [200] * 5 + [201]
    assert len({r.json()["id"] for r in results}) == 1
    wallet = await api.get("/api/v1/ecert/wallet", token=world.citizen_token)
    assert len(wallet.json()["certificates"]) == 1


async def test_only_issuers_of_an_allowed_unit(api: Api, world: World) -> None:
    other_unit = await api.unit()
    _, stranger = await api.staff("issuer", other_unit)
    resp = await api.post(URL, token=stranger, json=world.issue_body())
    assert resp.status_code == 403 and resp.json()["code"] == "type-not-issuable"
    resp = await api.post(
        URL, token=stranger, json=world.issue_body(unit_id=world.unit_id)
    )  # claims the allowed unit without its role
    assert resp.status_code == 403 and resp.json()["code"] == "forbidden"
    resp = await api.post(URL, token=world.citizen_token, json=world.issue_body())
    assert resp.status_code == 422  # a citizen holds no issuer role: which unit?
    resp = await api.post(
        URL, token=world.citizen_token, json=world.issue_body(unit_id=world.unit_id)
    )
    assert resp.status_code == 403
    resp = await api.post(URL, json=world.issue_body())
    assert resp.status_code == 401


async def test_validation_errors(api: Api, world: World) -> None:
    cases = [
        ({"type": "nope"}, 422, "unknown-certificate-type"),
        ({"claims": {"name": "x"}}, 422, "validation-failed"),
        ({"claims": {"name": "x", "id_number": "1", "birth_date": "y", "zz": "q"}}, 422, None),
        ({"holder_sub": "usr_nobody"}, 422, "holder-not-found"),
        ({"valid_until": "2020-01-01", "valid_from": "2021-01-01"}, 422, "validation-failed"),
        ({"valid_until": "2100-01-01"}, 422, "validation-failed"),  # beyond max_days
        ({"valid_until": "not a date"}, 422, "validation-failed"),
        ({"doc_number": ""}, 422, "validation-failed"),
    ]
    for over, status, code in cases:
        resp = await api.post(URL, token=world.issuer_token, json=world.issue_body(**over))
        assert resp.status_code == status, (over, resp.text)
        if code:
            assert resp.json()["code"] == code, over


async def test_holder_by_id_number_through_the_blind_index(api: Api, world: World) -> None:
    from identity.verification.resident_id import generate_resident_id

    id_number = generate_resident_id(region_code="440305")
    await api.services.realname.bind_verified_identity(
        world.citizen_sub, "林测试", id_number, source="test"
    )
    body = world.issue_body(holder_id_number=id_number)
    del body["holder_sub"]
    resp = await api.post(URL, token=world.issuer_token, json=body)
    assert resp.status_code == 201, resp.text
    wallet = await api.get("/api/v1/ecert/wallet", token=world.citizen_token)
    assert [c["id"] for c in wallet.json()["certificates"]] == [resp.json()["id"]]
    body["holder_id_number"] = "440305198001010000"
    body["doc_number"] += "-2"
    resp = await api.post(URL, token=world.issuer_token, json=body)
    assert resp.status_code == 422 and resp.json()["code"] == "holder-not-found"


async def test_unit_server_issues_with_client_credentials(api: Api, world: World) -> None:
    clients = api.services.clients
    server, secret = await clients.create(
        unit_id=world.unit_id, name="Issuing system", allowed_scopes=("ecert:issue",)
    )
    resp = await api.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(server.client_id, secret)
    )
    token = resp.json()["access_token"]
    resp = await api.post(URL, token=token, json=world.issue_body())
    assert resp.status_code == 201, resp.text
    # Without the scope, a client of the same unit (say a mini-app) may not issue.
    app, app_secret = await clients.create(unit_id=world.unit_id, name="Some mini-app")
    app_token = clients.issue_client_token(app)
    resp = await api.post(URL, token=app_token, json=world.issue_body())
    assert resp.status_code == 403


async def test_issuer_keys_published_and_rotation_keeps_old_keys(api: Api, world: World) -> None:
    from ecert.presentation.keys import verify_credential

    cert = await issue(api, world)
    stored = await api.services.certificates.own(world.citizen_sub, cert["id"])
    jwks = (await api.get("/api/v1/ecert/issuers/jwks.json")).json()
    claims = verify_credential(stored.credential, jwks)
    assert claims["claims"]["id_number"] == "440305198608126485"
    new_kid = await api.services.issuer_keys.rotate(world.unit_id)
    second = await issue(api, world)
    stored2 = await api.services.certificates.own(world.citizen_sub, second["id"])
    assert stored2.issuer_kid == new_kid != stored.issuer_kid
    jwks = (await api.get("/api/v1/ecert/issuers/jwks.json")).json()
    kids = {k["kid"] for k in jwks["keys"]}
    assert {new_kid, stored.issuer_kid} <= kids
    verify_credential(stored.credential, jwks)  # the old one still verifies
    # and the old certificate can still be shown
    resp = await api.post(
        f"/api/v1/ecert/wallet/{cert['id']}/qr", token=world.citizen_token, json={}
    )
    assert resp.status_code == 200


async def test_claims_are_encrypted_at_rest(api: Api, world: World) -> None:
    cert = await issue(api, world)
    row = await api.services.pool.fetchrow(
        "SELECT * FROM ecert_certificates WHERE id = $1", cert["id"]
    )
    raw = b"".join(v for v in row.values() if isinstance(v, bytes))
    assert "林嘉怡".encode() not in raw and b"440305198608126485" not in raw
    text = " ".join(str(v) for v in row.values() if isinstance(v, str))
    assert "440305198608126485" not in text


async def test_concurrent_issuance_shares_one_status_list(api: Api, world: World) -> None:
    results = await asyncio.gather(
        *(api.post(URL, token=world.issuer_token, json=world.issue_body()) for _ in range(6))
    )
    assert [r.status_code for r in results] == [201] * 6
    rows = await api.services.pool.fetch(
        "SELECT status_list_id, status_idx FROM ecert_certificates WHERE id = ANY($1)",
        [r.json()["id"] for r in results],
    )
    assert len({r["status_list_id"] for r in rows}) == 1
    assert len({r["status_idx"] for r in rows}) == 6
