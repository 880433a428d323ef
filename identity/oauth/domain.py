"""Value objects of the provider: a validated authorisation request, the signed-in
citizen behind it, a grant (one authorisation) and the tokens issued for it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from identity.clients import Client


@dataclass(frozen=True)
class Login:
    """A citizen signed in for the authorisation endpoint (bearer token or cookie)."""

    account_id: str
    sid: str
    acr: int  # the account's assurance level now (1-3)
    auth_time: int  # when the session's authentication happened, Unix seconds


@dataclass(frozen=True)
class AuthorizationRequest:
    client: Client
    redirect_uri: str
    scopes: tuple[str, ...]  # what will be granted (restricted scopes already removed)
    state: str | None
    nonce: str | None
    code_challenge: str | None
    prompt: frozenset[str]
    min_acr: int

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client.client_id,
            "redirect_uri": self.redirect_uri,
            "scopes": list(self.scopes),
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "prompt": sorted(self.prompt),
            "min_acr": self.min_acr,
        }


@dataclass(frozen=True)
class Grant:
    id: str
    client_id: str
    account_id: str
    kind: str  # "web" (redirect + PKCE) or "miniapp" (in-app quick login)
    scopes: tuple[str, ...]
    acr: int
    auth_time: datetime
    created_at: datetime
    exchanged_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    expires_in: int
    refresh_token: str
    scopes: tuple[str, ...]
    sub: str
    id_token: str | None = None

    def response(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": " ".join(self.scopes),
            "sub": self.sub,
        }
        if self.id_token:
            body["id_token"] = self.id_token
        return body


@dataclass(frozen=True)
class ConsentPrompt:
    """The consent screen to show: a pending request waiting for the citizen's decision."""

    request_id: str
    csrf: str
    client_name: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class AccountClaims:
    phone: str
    name: str | None
    id_number: str | None
    assurance_level: int
