"""Client registry and the client_credentials grant."""

from __future__ import annotations

import pytest

from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_client_credentials_grant(api: Api) -> None:
    unit = await api.unit()
    client, secret = await api.services.clients.create(
        unit_id=unit, name="Hospital server", allowed_scopes=("payments",)
    )
    resp = await api.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, secret),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    principal = api.services.tokens.verify_access(body["access_token"])
    assert principal.kind == "client"
    assert principal.client_id == client.client_id and principal.unit_id == unit
    assert principal.scope == ("payments",)
    # A client token is not a citizen: user routes refuse it.
    me = await api.get("/api/v1/identity/me", token=body["access_token"])
    assert me.status_code == 401


async def test_wrong_secret_unknown_client_and_scope(api: Api) -> None:
    unit = await api.unit()
    client, secret = await api.services.clients.create(unit_id=unit, name="x")
    for auth in ((client.client_id, secret + "x"), ("cli_nope", secret)):
        resp = await api.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=auth)
        assert resp.status_code == 401
        assert resp.json()["error"] == "invalid_client"
    resp = await api.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "real_name"},
        auth=(client.client_id, secret),
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"
    resp = await api.post(
        "/oauth2/token", data={"grant_type": "password"}, auth=(client.client_id, secret)
    )
    assert resp.json()["error"] == "unsupported_grant_type"


async def test_secret_rotation_keeps_the_old_secret_for_the_overlap(api: Api) -> None:
    unit = await api.unit()
    client, old = await api.services.clients.create(unit_id=unit, name="x")
    new = await api.services.clients.rotate_secret(client.client_id)
    for secret in (old, new):
        assert (await api.services.clients.authenticate(client.client_id, secret)).client_id
    from datetime import timedelta

    newer = await api.services.clients.rotate_secret(client.client_id, timedelta(0))
    with pytest.raises(Exception, match="Unknown client or wrong secret"):
        await api.services.clients.authenticate(client.client_id, new)
    assert await api.services.clients.authenticate(client.client_id, newer)


async def test_consents_grant_list_revoke(api: Api, phone: str) -> None:
    tokens = await api.sign_in(phone)
    me = api.services.tokens.verify_access(tokens["access_token"])
    unit = await api.unit()
    client, _ = await api.services.clients.create(unit_id=unit, name="App")
    c = await api.services.consents.grant(me.sub, client.client_id, ["openid", "phone"])
    assert c.scopes == ("openid", "phone")
    c = await api.services.consents.grant(me.sub, client.client_id, ["profile"])
    assert c.scopes == ("openid", "phone", "profile")
    assert await api.services.consents.has(me.sub, client.client_id, "phone")
    await api.services.consents.revoke(me.sub, client.client_id)
    assert not await api.services.consents.has(me.sub, client.client_id, "phone")
    c = await api.services.consents.grant(me.sub, client.client_id, ["openid"])
    assert c.scopes == ("openid",)  # a revoked consent starts over
