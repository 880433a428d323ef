"""Published material (JWKS, signed status lists) for offline verifiers, and
certificate-free handling: a mini-app reads a certificate only after consent."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ecert.errors import CertificateRevoked, CertificateSuspended
from ecert.presentation.cwt import decode_and_verify
from ecert.presentation.keys import jwks_key_lookup, verify_credential
from ecert.presentation.offline import verify_offline
from ecert.presentation.status_list import verify_status_list_token
from identity.pairwise import pairwise_sub, remember_pairwise
from tests.api.ecert.helpers import World, issue, qr
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def published(api: Api, text: str) -> tuple[dict, dict[str, str]]:
    jwks = (await api.get("/.well-known/jwks.json")).json()
    p = decode_and_verify(text, jwks_key_lookup(jwks), datetime.now(UTC))
    assert p.status is not None
    resp = await api.client.get(p.status.uri)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/statuslist+jwt"
    return jwks, {p.status.uri: resp.text}


async def test_offline_verification_sees_revocation_and_suspension(api: Api, world: World) -> None:
    cert = await issue(api, world)
    text = (await qr(api, world, cert["id"]))["qr_text"]
    jwks, lists = await published(api, text)
    result = verify_offline(text, jwks, lists, datetime.now(UTC))
    assert result.status_checked and result.presentation.masked_name == "林*"
    path = f"/api/v1/ecert/certificates/{cert['id']}"
    await api.post(path + "/suspend", token=world.issuer_token, json={"reason": "check"})
    jwks, lists = await published(api, text)
    with pytest.raises(CertificateSuspended):
        verify_offline(text, jwks, lists, datetime.now(UTC))
    await api.post(path + "/revoke", token=world.issuer_token, json={"reason": "lost"})
    jwks, lists = await published(api, text)
    with pytest.raises(CertificateRevoked):
        verify_offline(text, jwks, lists, datetime.now(UTC))
    # The same list is served under the API path.
    list_id = api.services.presentations._list_id(next(iter(lists)))
    resp = await api.get(f"/api/v1/ecert/status-lists/{list_id}")
    token = verify_status_list_token(resp.text, jwks, now=datetime.now(UTC))
    assert token.status_list.bits == 2
    assert (await api.get("/api/v1/ecert/status-lists/999999")).status_code == 404
    assert (await api.get("/api/v1/ecert/status-lists/abc")).status_code == 404


async def test_expired_certificate_is_invalid_in_the_status_list(api: Api, world: World) -> None:
    cert = await issue(api, world)
    text = (await qr(api, world, cert["id"]))["qr_text"]
    await api.services.pool.execute(
        "UPDATE ecert_certificates SET valid_until = now() - interval '1 day' WHERE id = $1",
        cert["id"],
    )
    jwks, lists = await published(api, text)
    with pytest.raises(CertificateRevoked):  # INVALID: an offline verifier cannot tell why
        verify_offline(text, jwks, lists, datetime.now(UTC))
    resp = await api.post(
        "/api/v1/ecert/verify",
        token=world.clerk_token,
        json={"qr_text": text, "matter_code": "t-all"},
    )
    assert resp.status_code == 410 and resp.json()["code"] == "certificate-expired"
    wallet = await api.get("/api/v1/ecert/wallet", token=world.citizen_token)
    assert wallet.json()["certificates"][0]["status"] == "expired"


async def test_mini_app_reads_only_after_consent(api: Api, world: World) -> None:
    svc = api.services
    cert = await issue(api, world)
    app_unit = await api.unit()
    client, _ = await svc.clients.create(unit_id=app_unit, name="Housing mini-app", app_id=None)
    token = svc.clients.issue_client_token(client)
    sub = pairwise_sub(svc.vault, world.citizen_sub, app_unit)
    url = f"/api/v1/ecert/shared/{world.type_code}?sub={sub}&matter_code=rent-subsidy"
    # A subject never handed out to the app's unit names nobody, even if it is the right one.
    assert (await api.get(url, token=token)).status_code == 404
    await remember_pairwise(svc.pool, app_unit, sub, world.citizen_sub)  # as an ID token does
    refused = await api.get(url, token=token)
    assert refused.status_code == 403 and refused.json()["code"] == "consent-required"
    await svc.consents.grant(world.citizen_sub, client.client_id, [f"ecert:{world.type_code}"])
    resp = await api.get(url, token=token)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["certificate_id"] == cert["id"]
    assert body["claims"]["id_number"] == "440305198608126485"
    # The mini-app checks the issuer's signature itself with the published issuer keys.
    jwks = (await api.client.get(body["issuer_jwks_uri"])).json()
    signed = verify_credential(body["credential"], jwks)
    assert signed["claims"] == body["claims"] and signed["iss"] == world.unit_id
    # The holder sees both the refused and the allowed read, with the app's name.
    uses = await api.get(f"/api/v1/ecert/wallet/{cert['id']}/uses", token=world.citizen_token)
    log = uses.json()["uses"]
    assert [(u["kind"], u["result"]) for u in log] == [
        ("service-read", "valid"),
        ("service-read", "consent-required"),
    ]
    assert log[0]["client"]["name"] == "Housing mini-app" and log[0]["unit"]["id"] == app_unit
    assert log[0]["matter_code"] == "rent-subsidy"
    assert log[0]["fields"] == ["birth_date", "id_number", "name"]
    # Consent to another type does not help; revoked consent stops reads.
    other_sub = pairwise_sub(svc.vault, world.citizen_sub, world.unit_id)
    resp = await api.get(f"/api/v1/ecert/shared/{world.type_code}?sub={other_sub}", token=token)
    assert resp.status_code == 404  # a subject from another sector names nobody here
    await svc.consents.revoke(world.citizen_sub, client.client_id)
    assert (await api.get(url, token=token)).status_code == 403
    # A citizen's own token is not a client token.
    assert (await api.get(url, token=world.citizen_token)).status_code == 401


async def test_shared_read_of_a_revoked_certificate_fails(api: Api, world: World) -> None:
    svc = api.services
    cert = await issue(api, world)
    app_unit = await api.unit()
    client, _ = await svc.clients.create(unit_id=app_unit, name="Bank app")
    token = svc.clients.issue_client_token(client)
    await svc.consents.grant(world.citizen_sub, client.client_id, [f"ecert:{world.type_code}"])
    await api.post(
        f"/api/v1/ecert/certificates/{cert['id']}/suspend",
        token=world.issuer_token,
        json={"reason": "x"},
    )
    sub = pairwise_sub(svc.vault, world.citizen_sub, app_unit)
    await remember_pairwise(svc.pool, app_unit, sub, world.citizen_sub)
    resp = await api.get(f"/api/v1/ecert/shared/{world.type_code}?sub={sub}", token=token)
    assert resp.status_code == 403 and resp.json()["code"] == "certificate-suspended"
    resp = await api.get(f"/api/v1/ecert/shared/{world.type_code}?sub=nope", token=token)
    assert resp.status_code == 422
