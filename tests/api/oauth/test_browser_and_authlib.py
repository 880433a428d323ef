"""The browser sign-in page (phone + SMS code, login cookie) and an
off-the-shelf OpenID Connect client (Authlib) against the provider."""

from __future__ import annotations

import secrets
import warnings

import httpx
import jwt
import pytest
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Authlib 1.9 prefers the "httpx2" fork and warns when it falls back to httpx,
    # which is what this project uses; the client works the same.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.api.oauth.oidc_support import (
    REDIRECT,
    approve,
    hidden_fields,
    new_client,
    pkce_pair,
    query_of,
)
from tests.support import Api, check_response

pytestmark = pytest.mark.asyncio


def _cookies(resp: httpx.Response) -> dict[str, str]:
    out = {}
    for header in resp.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        out[name] = rest.split(";")[0]
        attrs = header.lower()
        assert "httponly" in attrs and "secure" in attrs and "samesite=lax" in attrs
    return out


async def test_browser_sign_in_then_consent(api: Api, phone: str) -> None:
    client, secret = await new_client(api)
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid phone",
        "state": "s",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    web = api.client  # raw client: the HTML error pages are not problem+json

    async def call(method: str, url: str, jar: dict[str, str], **kw: object) -> httpx.Response:
        cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
        resp = await web.request(method, url, headers={"Cookie": cookie}, **kw)  # type: ignore[arg-type]
        assert resp.headers.get("X-Request-Id")
        jar.update(_cookies(resp))
        return resp

    jar: dict[str, str] = {}
    page = await call("GET", "/oauth2/authorize", jar, params=params)
    assert page.status_code == 200 and 'name="phone"' in page.text
    form = hidden_fields(page.text)
    assert form["return_to"].startswith("/oauth2/authorize?")

    # Without the CSRF cookie the form is refused.
    forged = await web.post("/oauth2/login", data={**form, "step": "send", "phone": phone})
    check_response(forged)
    assert forged.status_code == 403

    sent = await call("POST", "/oauth2/login", jar, data={**form, "step": "send", "phone": phone})
    assert sent.status_code == 200 and 'name="code"' in sent.text
    wrong = await call(
        "POST",
        "/oauth2/login",
        jar,
        data={**form, "step": "verify", "phone": phone, "code": "000000"},
    )
    assert wrong.status_code == 401 and 'role="alert"' in wrong.text
    code = await api.last_code(phone)
    signed = await call(
        "POST", "/oauth2/login", jar, data={**form, "step": "verify", "phone": phone, "code": code}
    )
    assert signed.status_code == 303 and signed.headers["Location"] == form["return_to"]
    assert jar["sa_login"].startswith("ls_")

    consent = await call("GET", signed.headers["Location"], jar)
    assert consent.status_code == 200 and client.name in consent.text
    decided = await call(
        "POST", "/oauth2/authorize", jar, data={**hidden_fields(consent.text), "decision": "allow"}
    )
    assert decided.status_code == 303
    q = query_of(decided.headers["Location"])
    token = await api.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": q["code"],
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        },
        auth=(client.client_id, secret),
    )
    assert token.status_code == 200
    info = (await api.get("/oauth2/userinfo", token=token.json()["access_token"])).json()
    assert info["phone_number"] == phone

    # An open redirect through return_to is refused.
    bad = await call(
        "POST",
        "/oauth2/login",
        jar,
        data={**form, "return_to": "https://evil.example/", "step": "send", "phone": phone},
    )
    assert bad.status_code == 422


async def test_authlib_client_against_the_provider(api: Api, phone: str) -> None:
    citizen = await api.sign_in(phone)
    client, secret = await new_client(api)
    meta = (await api.get("/.well-known/openid-configuration")).json()
    nonce = secrets.token_urlsafe(12)
    async with AsyncOAuth2Client(
        client_id=client.client_id,
        client_secret=secret,
        scope="openid profile phone",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    ) as oauth:
        verifier = secrets.token_urlsafe(64)
        url, state = oauth.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        # The citizen's app webview opens the URL with its access token.
        page = await api.get(url, token=citizen["access_token"])
        location = await approve(api, citizen["access_token"], page)
        assert query_of(location)["state"] == state
        token = await oauth.fetch_token(
            meta["token_endpoint"], authorization_response=location, code_verifier=verifier
        )
        jwks = (await api.get(meta["jwks_uri"])).json()
        signing_key = jwt.PyJWKSet.from_dict(jwks)[
            jwt.get_unverified_header(token["id_token"])["kid"]
        ]
        claims = jwt.decode(
            token["id_token"],
            signing_key.key,
            algorithms=meta["id_token_signing_alg_values_supported"],
            audience=client.client_id,
            issuer=meta["issuer"],
        )
        assert claims["nonce"] == nonce
        info = (await oauth.get(meta["userinfo_endpoint"])).json()
        assert info["sub"] == claims["sub"] and info["phone_number"] == phone
        # Authlib's refresh and revocation helpers work against the endpoints too.
        refreshed = await oauth.refresh_token(meta["token_endpoint"])
        assert refreshed["refresh_token"] != token["refresh_token"]
        resp = await oauth.revoke_token(
            meta["revocation_endpoint"], refreshed["refresh_token"], token_type_hint="refresh_token"
        )
        assert resp.status_code == 200
        assert (await oauth.get(meta["userinfo_endpoint"])).status_code == 401
