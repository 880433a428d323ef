"""The token, revocation and UserInfo endpoints (RFC 6749 section 3.2 and 5,
RFC 7009, OpenID Connect Core 5.3). Errors carry the RFC's ``error`` and
``error_description`` alongside the problem fields."""

from __future__ import annotations

from typing import Any

from identity.errors import DomainError
from server.api.oauth.base import OAuthError, OAuthHandler
from server.http import route
from server.openapi import INT, STR, obj, op

_CLIENT_FIELDS = {"client_id": STR, "client_secret": STR}


class TokenEndpoint(OAuthHandler):
    openapi = {
        "post": op(
            "OAuth 2 token endpoint (client_credentials, authorization_code, refresh_token)",
            tag="oauth2",
            request=obj(
                ["grant_type"],
                grant_type={"enum": ["authorization_code", "refresh_token", "client_credentials"]},
                scope=STR,
                code=STR,
                redirect_uri=STR,
                code_verifier=STR,
                refresh_token=STR,
                **_CLIENT_FIELDS,
            ),
            request_type="application/x-www-form-urlencoded",
            response=obj(
                ["access_token", "token_type", "expires_in"],
                access_token=STR,
                token_type=STR,
                expires_in=INT,
                scope=STR,
                refresh_token=STR,
                id_token=STR,
                sub=STR,
            ),
            auth="client",
            errors=(401, 429, 503),
        )
    }

    async def post(self) -> None:
        form = self.form()
        grant = form.get("grant_type")
        await self.svc.signin.limit_token_requests(self.client_ip)
        grants = self.svc.oidc.grants
        if grant == "authorization_code":
            client = await self.client_for(form)
            tokens = await grants.authorization_code(client, form, self.client_ip)
            self.token_response(tokens.response())
        elif grant == "refresh_token":
            client = await self.client_for(form)
            tokens = await grants.refresh_token(client, form, self.client_ip)
            self.token_response(tokens.response())
        elif grant == "client_credentials":
            await self.client_credentials(form)
        else:
            raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant!r:.40}.")

    async def client_credentials(self, form: dict[str, str]) -> None:
        client = await self.authenticate_client(form)
        scope = form["scope"].split() if form.get("scope") else None
        try:
            token = self.svc.clients.issue_client_token(client, scope)
        except DomainError as exc:
            raise OAuthError("invalid_scope", exc.detail) from None
        self.token_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.svc.tokens.access_ttl,
                "scope": " ".join(scope or client.allowed_scopes),
            }
        )

    def token_response(self, body: dict[str, Any]) -> None:
        self.set_header("Pragma", "no-cache")
        self.send_json(body)


class RevokeEndpoint(OAuthHandler):
    openapi = {
        "post": op(
            "RFC 7009 token revocation (refresh or access token); 200 for unknown tokens",
            tag="oauth2",
            request=obj(["token"], token=STR, token_type_hint=STR, **_CLIENT_FIELDS),
            request_type="application/x-www-form-urlencoded",
            auth="client",
            errors=(401,),
        )
    }

    async def post(self) -> None:
        form = self.form()
        client = await self.client_for(form)
        if "token" not in form:
            raise OAuthError("invalid_request", "token is missing.")
        await self.svc.oidc.grants.revoke(client, form["token"], self.client_ip)
        self.set_header("Cache-Control", "no-store")
        self.set_status(200)
        self.finish()


class UserInfoEndpoint(OAuthHandler):
    _op = op(
        "OpenID Connect UserInfo: claims by consented scope (Bearer access token of an app)",
        tag="oauth2",
        response=obj(
            ["sub"],
            sub=STR,
            acr=STR,
            name=STR,
            phone_number=STR,
            phone_number_verified={"type": "boolean"},
            real_name=STR,
            id_number=STR,
        ),
        auth="user",
        errors=(401, 403),
    )
    openapi = {"get": _op, "post": _op}

    async def get(self) -> None:
        await self.answer()

    async def post(self) -> None:
        await self.answer()

    async def answer(self) -> None:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise OAuthError(
                    "invalid_token",
                    "Send the access token as a Bearer token.",
                    status_kind="unauthorized",
                )
            claims = await self.svc.oidc.userinfo.claims(token.strip())
        except OAuthError as exc:
            # RFC 6750 section 3: the challenge names the error.
            self.set_header("WWW-Authenticate", f'Bearer error="{exc.code}"')
            raise
        self.send_json(claims)


ROUTES = [
    route("/oauth2/token", TokenEndpoint),
    route("/oauth2/revoke", RevokeEndpoint),
    route("/oauth2/userinfo", UserInfoEndpoint),
]
