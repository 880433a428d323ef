"""Shared parts of the OAuth endpoints: form parsing (RFC 6749 form encoding,
no repeated parameters) and client authentication (HTTP Basic,
``client_secret`` in the body, a ``private_key_jwt`` assertion, or ``client_id``
alone for a public client)."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote

from identity.client_assertions import ASSERTION_TYPE
from identity.clients import Client
from identity.errors import DomainError, NotFound
from identity.oauth.errors import OAuthError, invalid_client
from server.http import BaseHandler

__all__ = ["OAuthError", "OAuthHandler"]


class OAuthHandler(BaseHandler):
    def form(self) -> dict[str, str]:
        ctype = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "Send application/x-www-form-urlencoded.")
        args, _ = self.form_body()
        out = {}
        for key, values in args.items():
            if len(values) != 1:
                raise OAuthError("invalid_request", f"Parameter {key[:40]} repeated.")
            out[key] = values[0].decode("utf-8", "replace")
        return out

    def _fail_client(self) -> OAuthError:
        self.set_header("WWW-Authenticate", 'Basic realm="superapp"')
        return invalid_client()

    async def authenticate_client(self, form: dict[str, str]) -> Client:
        """A confidential client by its secret (Basic or ``client_secret`` in the body)
        or by a signed assertion (``private_key_jwt``)."""
        if "client_assertion" in form or "client_assertion_type" in form:
            return await self._by_assertion(form)
        header = self.request.headers.get("Authorization", "")
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if header.lower().startswith("basic "):
            try:
                raw = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise self._fail_client() from None
            cid, _, sec = raw.partition(":")
            if client_id is not None and client_id != unquote(cid):
                raise self._fail_client()
            client_id, secret = unquote(cid), unquote(sec)
        try:
            return await self.svc.clients.authenticate(client_id, secret)
        except DomainError:
            raise self._fail_client() from None

    async def _by_assertion(self, form: dict[str, str]) -> Client:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise self._fail_client()
        if self.request.headers.get("Authorization") or "client_secret" in form:
            raise self._fail_client()  # one authentication method per request
        issuer = self.svc.settings.issuer
        try:
            client = await self.svc.clients.authenticate_assertion(
                form.get("client_assertion"),
                [f"{issuer}/oauth2/token", issuer],
                self.svc.redis,
            )
        except DomainError:
            raise self._fail_client() from None
        if form.get("client_id") not in (None, client.client_id):
            raise self._fail_client()
        return client

    async def client_for(self, form: dict[str, str]) -> Client:
        """Confidential clients must authenticate; a public client names itself."""
        basic = self.request.headers.get("Authorization", "").lower().startswith("basic ")
        if basic or "client_secret" in form or "client_assertion" in form:
            return await self.authenticate_client(form)
        client_id = form.get("client_id")
        if not client_id:
            raise self._fail_client()
        try:
            client = await self.svc.clients.get(client_id)
        except NotFound:
            raise self._fail_client() from None
        if client.client_type != "public" or client.disabled_at is not None:
            raise self._fail_client()
        return client
