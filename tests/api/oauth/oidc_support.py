"""Helpers for the OpenID Connect provider tests: clients, PKCE, the consent page."""

from __future__ import annotations

import re
import secrets
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from identity.clients import Client
from identity.oauth.pkce import s256
from tests.support import Api

REDIRECT = "https://app.example/callback"


async def new_client(
    api: Api,
    *,
    unit: str | None = None,
    public: bool = False,
    scopes: tuple[str, ...] = (),
    app_id: str | None = None,
) -> tuple[Client, str | None]:
    return await api.services.clients.create(
        unit_id=unit or await api.unit(),
        name="Test app " + secrets.token_hex(3),
        client_type="public" if public else "confidential",
        redirect_uris=(REDIRECT,),
        allowed_scopes=scopes,
        app_id=app_id,
    )


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, s256(verifier)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def hidden_fields(html: str) -> dict[str, str]:
    found = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html)
    return {name: unescape(value) for name, value in found}


async def authorize(
    api: Api,
    token: str | None,
    client: Client,
    challenge: str | None,
    *,
    scope: str = "openid profile phone",
    state: str = "st-1",
    nonce: str | None = "n-1",
    **extra: str,
) -> httpx.Response:
    params: dict[str, Any] = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": state,
        **extra,
    }
    if nonce:
        params["nonce"] = nonce
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    return await api.get("/oauth2/authorize", params=params, token=token)


async def approve(api: Api, token: str, page: httpx.Response, decision: str = "allow") -> str:
    """Submit the consent form; return the redirect Location."""
    assert page.status_code == 200, page.text
    assert page.headers["Content-Type"].startswith("text/html")
    fields = hidden_fields(page.text)
    resp = await api.post(
        "/oauth2/authorize",
        data={**fields, "decision": decision},
        token=token,
    )
    assert resp.status_code == 303, resp.text
    return resp.headers["Location"]


async def get_code(
    api: Api, token: str, client: Client, challenge: str | None, **kw: str
) -> dict[str, str]:
    """Authorise (consenting if asked); return the redirect's query parameters."""
    resp = await authorize(api, token, client, challenge, **kw)
    if resp.status_code == 200:
        location = await approve(api, token, resp)
    else:
        assert resp.status_code == 302, resp.text
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?"), location
    return query_of(location)


async def exchange(
    api: Api, client: Client, secret: str | None, code: str, verifier: str | None, **extra: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **extra}
    if verifier:
        data["code_verifier"] = verifier
    if secret is None:
        data["client_id"] = client.client_id
        return await api.post("/oauth2/token", data=data)
    return await api.post("/oauth2/token", data=data, auth=(client.client_id, secret))
