"""Pairwise subjects, restricted scopes, consents, the in-app quick login and
RFC 7009 revocation."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from tests.api.oauth.oidc_support import exchange, get_code, new_client, pkce_pair
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def _tokens(api: Api, token: str, client, secret, scope: str = "openid") -> dict:  # type: ignore[no-untyped-def]
    verifier, challenge = pkce_pair()
    code = (await get_code(api, token, client, challenge, scope=scope))["code"]
    resp = await exchange(api, client, secret, code, verifier)
    assert resp.status_code == 200, resp.text
    body: dict = resp.json()
    return body


async def test_pairwise_sub_is_shared_within_a_unit_and_differs_across_units(
    api: Api, phone: str
) -> None:
    citizen = await api.sign_in(phone)
    unit = await api.unit()
    a, a_secret = await new_client(api, unit=unit)
    b, b_secret = await new_client(api, unit=unit)
    c, c_secret = await new_client(api)
    sub_a = (await _tokens(api, citizen["access_token"], a, a_secret))["sub"]
    sub_b = (await _tokens(api, citizen["access_token"], b, b_secret))["sub"]
    sub_c = (await _tokens(api, citizen["access_token"], c, c_secret))["sub"]
    assert sub_a == sub_b != sub_c
    me = api.services.tokens.verify_access(citizen["access_token"]).sub
    assert await api.services.oidc.resolve_pairwise(unit, sub_a) == me
    assert await api.services.oidc.resolve_pairwise(c.unit_id, sub_c) == me
    assert await api.services.oidc.resolve_pairwise(unit, sub_c) is None
    # Another citizen gets another sub from the same app.
    other = await api.sign_in("+86139" + "".join(str(secrets.randbelow(10)) for _ in range(8)))
    assert (await _tokens(api, other["access_token"], a, a_secret))["sub"] != sub_a


async def test_real_name_only_for_approved_clients(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    me = api.services.tokens.verify_access(citizen["access_token"]).sub
    from identity.verification.resident_id import generate_resident_id

    id_number = generate_resident_id(region_code="440301")
    await api.services.realname.bind_verified_identity(me, "张小明", id_number, source="test")
    plain, plain_secret = await new_client(api)
    body = await _tokens(
        api, citizen["access_token"], plain, plain_secret, "openid profile real_name"
    )
    assert body["scope"] == "openid profile"  # real_name not granted
    info = (await api.get("/oauth2/userinfo", token=body["access_token"])).json()
    assert info["name"] == "*小明" and "real_name" not in info and "id_number" not in info

    approved, secret = await new_client(api, scopes=("real_name",))
    body = await _tokens(api, citizen["access_token"], approved, secret, "openid real_name")
    assert body["scope"] == "openid real_name"
    info = (await api.get("/oauth2/userinfo", token=body["access_token"])).json()
    assert info["real_name"] == "张小明" and info["id_number"] == id_number
    assert "phone_number" not in info and "name" not in info


async def test_consents_are_listed_and_revoking_one_ends_the_apps_tokens(
    api: Api, phone: str
) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    body = await _tokens(api, citizen["access_token"], client, secret, "openid phone ecert:hukou")
    listed = (await api.get("/api/v1/identity/me/consents", token=citizen["access_token"])).json()
    [consent] = [c for c in listed["consents"] if c["client_id"] == client.client_id]
    assert consent["client_name"] == client.name
    assert set(consent["scopes"]) == {"openid", "phone", "ecert:hukou"}
    assert consent["granted_at"] and consent["expires_at"]

    resp = await api.delete(
        f"/api/v1/identity/me/consents/{client.client_id}", token=citizen["access_token"]
    )
    assert resp.status_code == 204
    refresh = await api.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(client.client_id, secret),
    )
    assert refresh.json()["error"] == "invalid_grant"
    assert (await api.get("/oauth2/userinfo", token=body["access_token"])).status_code == 401
    listed = (await api.get("/api/v1/identity/me/consents", token=citizen["access_token"])).json()
    assert client.client_id not in [c["client_id"] for c in listed["consents"]]
    again = await api.delete(
        f"/api/v1/identity/me/consents/{client.client_id}", token=citizen["access_token"]
    )
    assert again.status_code == 404


async def test_miniapp_quick_login_code(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    app_id = "app_" + secrets.token_hex(6)
    client, secret = await new_client(api, app_id=app_id)
    resp = await api.post(
        "/api/v1/identity/miniapp-code", json={"app_id": app_id}, token=citizen["access_token"]
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["expires_in"] == 300
    code = resp.json()["code"]
    # The app's server exchanges it with its credentials; no redirect_uri or PKCE.
    data = {"grant_type": "authorization_code", "code": code}
    other, other_secret = await new_client(api)
    stolen = await api.post("/oauth2/token", data=data, auth=(other.client_id, other_secret))
    assert stolen.json()["error"] == "invalid_grant"
    ok = await api.post("/oauth2/token", data=data, auth=(client.client_id, secret))
    assert ok.status_code == 200, ok.text
    body = ok.json()
    me = api.services.tokens.verify_access(citizen["access_token"]).sub
    assert body["sub"] == api.services.oidc.pairwise_sub(me, client.unit_id)
    assert body["scope"] == "openid" and body["id_token"] and body["refresh_token"]
    replay = await api.post("/oauth2/token", data=data, auth=(client.client_id, secret))
    assert replay.json()["error"] == "invalid_grant"
    # Scopes the citizen already agreed to come along; the client id works as app_id.
    await api.services.consents.grant(me, client.client_id, ["openid", "phone"])
    code = (
        await api.post(
            "/api/v1/identity/miniapp-code",
            json={"app_id": client.client_id},
            token=citizen["access_token"],
        )
    ).json()["code"]
    ok = await api.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code},
        auth=(client.client_id, secret),
    )
    assert ok.json()["scope"] == "openid phone"
    info = (await api.get("/oauth2/userinfo", token=ok.json()["access_token"])).json()
    assert info["phone_number"] == phone
    # Unknown apps and anonymous callers are refused.
    resp = await api.post(
        "/api/v1/identity/miniapp-code", json={"app_id": "app_nope"}, token=citizen["access_token"]
    )
    assert resp.status_code == 404
    resp = await api.post("/api/v1/identity/miniapp-code", json={"app_id": app_id})
    assert resp.status_code == 401


async def test_rfc7009_revocation(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    other, other_secret = await new_client(api)
    auth = (client.client_id, secret)
    body = await _tokens(api, citizen["access_token"], client, secret)
    # Unknown tokens and other clients' tokens: 200, nothing happens.
    for token in ("ort_unknown", "garbage", body["refresh_token"]):
        resp = await api.post(
            "/oauth2/revoke", data={"token": token}, auth=(other.client_id, other_secret)
        )
        assert resp.status_code == 200
    assert (await api.get("/oauth2/userinfo", token=body["access_token"])).status_code == 200
    # Wrong secret: invalid_client.
    resp = await api.post("/oauth2/revoke", data={"token": "x"}, auth=(client.client_id, "bad"))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    # Revoking the access token stops it at once; the refresh token still works.
    resp = await api.post(
        "/oauth2/revoke",
        data={"token": body["access_token"], "token_type_hint": "access_token"},
        auth=auth,
    )
    assert resp.status_code == 200
    assert (await api.get("/oauth2/userinfo", token=body["access_token"])).status_code == 401
    refreshed = await api.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=auth,
    )
    assert refreshed.status_code == 200
    new = refreshed.json()
    # Revoking the refresh token ends the grant: its access tokens stop too.
    resp = await api.post("/oauth2/revoke", data={"token": new["refresh_token"]}, auth=auth)
    assert resp.status_code == 200
    resp = await api.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": new["refresh_token"]},
        auth=auth,
    )
    assert resp.json()["error"] == "invalid_grant"
    assert (await api.get("/oauth2/userinfo", token=new["access_token"])).status_code == 401


async def test_two_refreshes_with_one_token_exactly_one_succeeds(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    body = await _tokens(api, citizen["access_token"], client, secret)
    data = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    results = await asyncio.gather(
        *(api.post("/oauth2/token", data=data, auth=(client.client_id, secret)) for _ in range(2))
    )
    assert sorted(r.status_code for r in results) == [200, 400]
    # The loser was a replay: the whole grant is revoked, the winner's tokens too.
    [winner] = [r.json() for r in results if r.status_code == 200]
    assert (await api.get("/oauth2/userinfo", token=winner["access_token"])).status_code == 401
