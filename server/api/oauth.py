"""OAuth 2 token endpoint (RFC 6749): form-encoded, client authentication by
HTTP Basic or ``client_id``/``client_secret`` in the body, errors in the RFC's
JSON shape (``error``, ``error_description``) alongside our problem fields."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from identity.clients import Client
from identity.errors import DomainError
from server.http import BaseHandler, route
from server.openapi import INT, STR, obj, op


class OAuthError(DomainError):
    """An RFC 6749 section 5.2 error; ``code`` is the RFC's error code."""

    kind = "invalid"

    def __init__(self, error: str, detail: str, *, status_kind: str = "invalid") -> None:
        super().__init__(detail)
        self.code = error  # type: ignore[misc]
        self.kind = status_kind  # type: ignore[misc]
        self.title = error  # type: ignore[misc]
        self.extra = {"error": error, "error_description": detail}


class OAuthHandler(BaseHandler):
    def form(self) -> dict[str, str]:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "Send application/x-www-form-urlencoded.")
        args, _ = self.form_body()
        out = {}
        for key, values in args.items():
            if len(values) != 1:
                raise OAuthError("invalid_request", f"Parameter {key} repeated.")
            out[key] = values[0].decode("utf-8", "replace")
        return out

    async def authenticate_client(self, form: dict[str, str]) -> Client:
        header = self.request.headers.get("Authorization", "")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise OAuthError(
                    "invalid_client", "Malformed Basic credentials.", status_kind="unauthorized"
                ) from None
            from urllib.parse import unquote

            cid, _, sec = raw.partition(":")
            client_id, secret = unquote(cid), unquote(sec)
        try:
            return await self.svc.clients.authenticate(client_id, secret)
        except DomainError:
            self.set_header("WWW-Authenticate", 'Basic realm="superapp"')
            raise OAuthError(
                "invalid_client", "Client authentication failed.", status_kind="unauthorized"
            ) from None


class TokenEndpoint(OAuthHandler):
    openapi = {
        "post": op(
            "OAuth 2 token endpoint (client_credentials, authorization_code, refresh_token)",
            tag="oauth2",
            request=obj(
                ["grant_type"],
                grant_type=STR,
                scope=STR,
                code=STR,
                redirect_uri=STR,
                code_verifier=STR,
                refresh_token=STR,
                client_id=STR,
                client_secret=STR,
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
            ),
            auth="client",
            errors=(401,),
        )
    }

    async def post(self) -> None:
        form = self.form()
        grant = form.get("grant_type")
        if grant == "client_credentials":
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
            return
        raise OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant!r}.")

    def token_response(self, body: dict[str, Any]) -> None:
        self.set_header("Pragma", "no-cache")
        self.send_json(body)


ROUTES = [
    route("/oauth2/token", TokenEndpoint),
]
