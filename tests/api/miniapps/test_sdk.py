"""The developer SDK against the running platform: verify the identity assertion
the gateway sent, refuse forgeries, and get a client-credentials token."""

from __future__ import annotations

import asyncio

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from sdk.superapp_sdk import InvalidIdentity, Superapp, TokenError
from tests.api.miniapps.conftest import Unit, citizen
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_sdk_verifies_the_gateway_assertion_and_gets_tokens(
    api: Api, unit: Unit, echo_url: str, base_url: str
) -> None:
    app_id = await unit.live(echo_url)
    who = await citizen(api)
    echo = (await api.get(f"/m/{app_id}/x", token=who["token"])).json()
    assertion = echo["headers"]["X-Superapp-Identity"]
    creds = (await api.post(f"/api/v1/miniapps/{app_id}/credentials", token=unit.admin)).json()
    sdk = Superapp(
        base_url, app_id=app_id, client_id=creds["client_id"], client_secret=creds["client_secret"]
    )
    claims = await sdk.averify_identity(assertion)
    assert claims["sub"] == echo["identity"]["claims"]["sub"] and claims["aud"] == app_id
    # The blocking API works too (run off the loop that serves the platform).
    assert (await asyncio.to_thread(sdk.verify_identity, assertion))["sub"] == claims["sub"]

    other_app = Superapp(base_url, app_id="app_someoneelse")
    with pytest.raises(InvalidIdentity):
        await other_app.averify_identity(assertion)  # wrong audience
    rogue = ec.generate_private_key(ec.SECP256R1())
    kid = jwt.get_unverified_header(assertion)["kid"]
    forged = jwt.encode(
        {**claims, "sub": "pw_admin"},
        rogue,
        algorithm="ES256",
        headers={"kid": kid, "typ": "superapp-identity+jwt"},
    )
    for bad in (forged, None, "x.y.z", assertion + "x"):
        with pytest.raises(InvalidIdentity):
            await sdk.averify_identity(bad)

    token = await sdk.aclient_token(["openid"])
    principal = api.services.tokens.verify_access(token)
    assert principal.kind == "client" and principal.client_id == creds["client_id"]
    assert await sdk.aclient_token(["openid"]) == token  # cached
    wrong = Superapp(base_url, app_id=app_id, client_id=creds["client_id"], client_secret="cs_no")
    with pytest.raises(TokenError):
        await wrong.aclient_token()
