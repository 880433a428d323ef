"""The authorisation-code flow with PKCE over HTTP, and its error cases."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import jwt
import pytest

from identity.pairwise import pairwise_sub
from tests.api.oauth.oidc_support import (
    REDIRECT,
    approve,
    authorize,
    exchange,
    get_code,
    new_client,
    pkce_pair,
    query_of,
)
from tests.support import Api

pytestmark = pytest.mark.asyncio


async def test_discovery_documents(api: Api) -> None:
    issuer = api.services.settings.issuer
    oidc = (await api.get("/.well-known/openid-configuration")).json()
    assert oidc["issuer"] == issuer
    assert oidc["authorization_endpoint"] == issuer + "/oauth2/authorize"
    assert oidc["jwks_uri"] == issuer + "/.well-known/jwks.json"
    assert oidc["code_challenge_methods_supported"] == ["S256"]
    assert oidc["subject_types_supported"] == ["pairwise"]
    assert oidc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert "none" in oidc["token_endpoint_auth_methods_supported"]
    assert oidc["revocation_endpoint"] == issuer + "/oauth2/revoke"
    rfc8414 = (await api.get("/.well-known/oauth-authorization-server")).json()
    assert rfc8414["token_endpoint"] == oidc["token_endpoint"]


async def test_full_flow_with_pkce_id_token_userinfo_and_refresh(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    me = api.services.tokens.verify_access(citizen["access_token"])
    client, secret = await new_client(api)
    verifier, challenge = pkce_pair()

    page = await authorize(api, citizen["access_token"], client, challenge)
    assert page.status_code == 200 and client.name in page.text  # the consent screen
    assert page.headers["X-Frame-Options"] == "DENY"
    redirect = query_of(await approve(api, citizen["access_token"], page))
    assert redirect["state"] == "st-1" and redirect["iss"] == api.services.settings.issuer

    resp = await exchange(api, client, secret, redirect["code"], verifier)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "openid profile phone"

    jwks = jwt.PyJWKSet.from_dict((await api.get("/.well-known/jwks.json")).json())
    kid = jwt.get_unverified_header(body["id_token"])["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims = jwt.decode(
        body["id_token"],
        key.key,
        algorithms=["ES256"],
        audience=client.client_id,
        issuer=api.services.settings.issuer,
    )
    expected_sub = pairwise_sub(api.services.vault, me.sub, client.unit_id)
    assert claims["sub"] == expected_sub == body["sub"] != me.sub
    assert claims["nonce"] == "n-1" and claims["acr"] == "L1" and claims["auth_time"] > 0
    digest = hashlib.sha256(body["access_token"].encode()).digest()[:16]
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert await api.services.oidc.resolve_pairwise(client.unit_id, claims["sub"]) == me.sub

    # The app's access token is for the app, not for the platform API.
    assert (await api.get("/api/v1/identity/me", token=body["access_token"])).status_code == 401
    info = (await api.get("/oauth2/userinfo", token=body["access_token"])).json()
    assert info["sub"] == expected_sub and info["phone_number"] == phone
    assert info["phone_number_verified"] is True and "real_name" not in info

    # Consent is remembered: the next authorisation redirects at once.
    again = await authorize(api, citizen["access_token"], client, challenge)
    assert again.status_code == 302 and "code=" in again.headers["Location"]

    # Refresh rotates; replaying the old refresh token revokes the new one too.
    refreshed = await api.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(client.client_id, secret),
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != body["refresh_token"] and new["sub"] == expected_sub
    replay = await api.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        auth=(client.client_id, secret),
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    after = await api.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": new["refresh_token"]},
        auth=(client.client_id, secret),
    )
    assert after.json()["error"] == "invalid_grant"
    assert (await api.get("/oauth2/userinfo", token=new["access_token"])).status_code == 401


async def test_unregistered_redirect_uri_is_an_error_page_never_a_redirect(
    api: Api, phone: str
) -> None:
    citizen = await api.sign_in(phone)
    client, _ = await new_client(api)
    _, challenge = pkce_pair()
    for uri in ("https://evil.example/cb", REDIRECT + "/", REDIRECT + "?x=1", ""):
        resp = await api.get(
            "/oauth2/authorize",
            params={
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": uri,
                "scope": "openid",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
            token=citizen["access_token"],
        )
        assert resp.status_code == 400 and "Location" not in resp.headers
        assert resp.json()["error"] == "invalid_request"
    unknown = await api.get(
        "/oauth2/authorize", params={"client_id": "cli_nope", "redirect_uri": REDIRECT}
    )
    assert unknown.status_code == 400 and "Location" not in unknown.headers


async def test_pkce_rules(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    public, _ = await new_client(api, public=True)
    # A public client must use PKCE; plain is refused; errors go back with state.
    resp = await authorize(api, citizen["access_token"], public, None)
    assert resp.status_code == 302
    q = query_of(resp.headers["Location"])
    assert q["error"] == "invalid_request" and q["state"] == "st-1"
    verifier, _ = pkce_pair()
    resp = await authorize(
        api,
        citizen["access_token"],
        public,
        None,
        code_challenge=verifier,
        code_challenge_method="plain",
    )
    assert query_of(resp.headers["Location"])["error"] == "invalid_request"

    # A public client exchanges with client_id alone; a wrong verifier is invalid_grant.
    verifier, challenge = pkce_pair()
    code = (await get_code(api, citizen["access_token"], public, challenge))["code"]
    wrong = await exchange(api, public, None, code, pkce_pair()[0])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    # The code is burnt by the failed attempt.
    again = await exchange(api, public, None, code, verifier)
    assert again.json()["error"] == "invalid_grant"
    code = (await get_code(api, citizen["access_token"], public, challenge))["code"]
    missing = await exchange(api, public, None, code, None)
    assert missing.json()["error"] == "invalid_grant"
    code = (await get_code(api, citizen["access_token"], public, challenge))["code"]
    ok = await exchange(api, public, None, code, verifier)
    assert ok.status_code == 200, ok.text

    # A confidential client may skip PKCE, but then may not send a verifier.
    conf, secret = await new_client(api)
    code = (await get_code(api, citizen["access_token"], conf, None))["code"]
    resp = await exchange(api, conf, secret, code, verifier)
    assert resp.json()["error"] == "invalid_grant"
    code = (await get_code(api, citizen["access_token"], conf, None))["code"]
    assert (await exchange(api, conf, secret, code, None)).status_code == 200


async def test_code_reuse_revokes_the_tokens_issued_from_it(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    verifier, challenge = pkce_pair()
    code = (await get_code(api, citizen["access_token"], client, challenge))["code"]
    first = await exchange(api, client, secret, code, verifier)
    assert first.status_code == 200
    tokens = first.json()
    assert (await api.get("/oauth2/userinfo", token=tokens["access_token"])).status_code == 200
    replay = await exchange(api, client, secret, code, verifier)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    info = await api.get("/oauth2/userinfo", token=tokens["access_token"])
    assert info.status_code == 401 and info.json()["error"] == "invalid_token"
    assert "invalid_token" in info.headers["WWW-Authenticate"]
    refresh = await api.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(client.client_id, secret),
    )
    assert refresh.json()["error"] == "invalid_grant"


async def test_two_simultaneous_exchanges_of_one_code_exactly_one_succeeds(
    api: Api, phone: str
) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    verifier, challenge = pkce_pair()
    for _ in range(3):
        code = (await get_code(api, citizen["access_token"], client, challenge))["code"]
        results = await asyncio.gather(
            *(exchange(api, client, secret, code, verifier) for _ in range(2))
        )
        assert sorted(r.status_code for r in results) == [200, 400]


async def test_client_authentication(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    other, other_secret = await new_client(api)
    verifier, challenge = pkce_pair()
    code = (await get_code(api, citizen["access_token"], client, challenge))["code"]
    wrong = await exchange(api, client, (secret or "") + "x", code, verifier)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    assert wrong.headers["WWW-Authenticate"].startswith("Basic")
    # A confidential client cannot pose as public by leaving out its secret.
    bare = await exchange(api, client, None, code, verifier)
    assert bare.status_code == 401 and bare.json()["error"] == "invalid_client"
    # Another client's code is refused, and does not burn it.
    stolen = await exchange(api, other, other_secret, code, verifier)
    assert stolen.json()["error"] == "invalid_grant"
    # client_secret_post works too; the failed attempts did not use the code up.
    ok = await exchange(
        api, client, None, code, verifier, client_id=client.client_id, client_secret=secret or ""
    )
    assert ok.status_code == 200, ok.text


async def test_redirect_uri_must_match_at_the_token_endpoint(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    verifier, challenge = pkce_pair()
    code = (await get_code(api, citizen["access_token"], client, challenge))["code"]
    resp = await exchange(api, client, secret, code, verifier, redirect_uri=REDIRECT + "x")
    assert resp.json()["error"] == "invalid_grant"


async def test_deny_prompt_none_and_assurance(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    client, _ = await new_client(api)
    _, challenge = pkce_pair()
    page = await authorize(api, citizen["access_token"], client, challenge)
    q = query_of(await approve(api, citizen["access_token"], page, decision="deny"))
    assert q["error"] == "access_denied" and q["state"] == "st-1"
    # prompt=none: no consent yet -> consent_required; not signed in -> login_required.
    resp = await authorize(api, citizen["access_token"], client, challenge, prompt="none")
    assert query_of(resp.headers["Location"])["error"] == "consent_required"
    resp = await authorize(api, None, client, challenge, prompt="none")
    assert query_of(resp.headers["Location"])["error"] == "login_required"
    # The app needs L2 (real-name verified); this citizen is L1.
    resp = await authorize(api, citizen["access_token"], client, challenge, acr_values="L2 L3")
    q = query_of(resp.headers["Location"])
    assert q["error"] == "interaction_required" and "L2" in q["error_description"]
    # Unknown scopes are refused; a bad bearer token is a 401, not a sign-in page.
    resp = await authorize(api, citizen["access_token"], client, challenge, scope="openid admin")
    assert query_of(resp.headers["Location"])["error"] == "invalid_scope"
    resp = await authorize(api, "not-a-token", client, challenge)
    assert resp.status_code == 401


async def test_consent_form_is_csrf_protected_and_single_use(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    intruder = await api.sign_in(random_phone_())
    client, _ = await new_client(api)
    _, challenge = pkce_pair()
    page = await authorize(api, citizen["access_token"], client, challenge)
    from tests.api.oauth.oidc_support import hidden_fields

    fields = hidden_fields(page.text)
    forged = await api.post(
        "/oauth2/authorize",
        data={"request_id": fields["request_id"], "csrf": "guess", "decision": "allow"},
        token=citizen["access_token"],
    )
    assert forged.status_code == 403
    page = await authorize(api, citizen["access_token"], client, challenge)
    fields = hidden_fields(page.text)
    other = await api.post(
        "/oauth2/authorize", data={**fields, "decision": "allow"}, token=intruder["access_token"]
    )
    assert other.status_code == 403
    assert not await api.services.consents.get(
        api.services.tokens.verify_access(citizen["access_token"]).sub, client.client_id
    )


def random_phone_() -> str:
    from tests.support import random_phone

    return random_phone()


async def test_browsers_get_an_error_page_and_requests_may_be_posted(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    resp = await api.client.get(
        "/oauth2/authorize",
        params={"client_id": client.client_id, "redirect_uri": "https://evil.example/"},
        headers={"Accept": "text/html,application/xhtml+xml"},
    )
    assert resp.status_code == 400 and "Location" not in resp.headers
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "not registered" in resp.text and resp.headers["X-Request-Id"] in resp.text

    verifier, challenge = pkce_pair()
    form = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    page = await api.post("/oauth2/authorize", data=form, token=citizen["access_token"])
    q = query_of(await approve(api, citizen["access_token"], page))
    assert (await exchange(api, client, secret, q["code"], verifier)).status_code == 200
    again = await api.post("/oauth2/authorize", data=form, token=citizen["access_token"])
    assert again.status_code == 303 and "code=" in again.headers["Location"]
