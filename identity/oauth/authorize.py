"""The authorisation endpoint's logic (RFC 6749 4.1, RFC 7636, OIDC Core 3.1.2).

Order matters: the client and its exact redirect URI are checked first and a
failure there is never redirected (RFC 6749 4.1.2.1, RFC 9700 4.1); every later
error goes back to the client with ``state``. Consent already given for every
requested scope skips the screen; otherwise a pending request waits in Redis
for the citizen's CSRF-protected decision. The in-app quick login (``wx.login``
style) issues a code of its own kind without a redirect or PKCE.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from identity.clients import Client, ClientRegistry
from identity.consents import Consents
from identity.crypto import constant_time_equal
from identity.errors import NotFound, SessionRevoked, ValidationError
from identity.ids import new_id
from identity.oauth import pkce, scopes
from identity.oauth.domain import AuthorizationRequest, ConsentPrompt, Login
from identity.oauth.errors import OAuthError, RedirectError
from identity.oauth.repository import OAuthRepository
from identity.oauth.store import ProviderStore
from identity.tokens import LEVELS

PROMPTS = frozenset({"none", "login", "consent", "select_account"})
CONSENT_LIFETIME = timedelta(days=365)


def redirect_url(uri: str, **params: str | None) -> str:
    """``uri`` with ``params`` added to its query (keeping any query it already has)."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query += [(k, v) for k, v in params.items() if v is not None]
    return urlunsplit(parts._replace(query=urlencode(query)))


class Authorizer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        repo: OAuthRepository,
        store: ProviderStore,
        clients: ClientRegistry,
        consents: Consents,
        *,
        issuer: str,
    ) -> None:
        self.pool = pool
        self.repo = repo
        self.store = store
        self.clients = clients
        self.consents = consents
        self.issuer = issuer

    # the request ----------------------------------------------------------------------

    async def check_request(self, params: dict[str, str]) -> AuthorizationRequest:
        client = await self._client(params.get("client_id"))
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri or redirect_uri not in client.redirect_uris:
            # Exact string match only; never redirect to an unregistered address.
            raise OAuthError(
                "invalid_request", "The redirect_uri is missing or not registered for this client."
            )
        state = params.get("state")
        if state is not None and len(state) > 1024:
            state = None

        def fail(error: str, detail: str) -> RedirectError:
            return RedirectError(error, detail, redirect_uri=redirect_uri, state=state)

        if state is None and params.get("state") is not None:
            raise fail("invalid_request", "state is too long.")
        if "request" in params:
            raise fail("request_not_supported", "Request objects are not supported.")
        if "request_uri" in params:
            raise fail("request_uri_not_supported", "request_uri is not supported.")
        if params.get("response_type") != "code":
            raise fail("unsupported_response_type", "Only response_type=code is supported.")
        if params.get("response_mode", "query") != "query":
            raise fail("invalid_request", "Only response_mode=query is supported.")
        try:
            requested = scopes.parse(params.get("scope") or "openid")
        except OAuthError as exc:
            raise fail("invalid_scope", exc.detail) from None
        granted = scopes.grantable(requested, client.allowed_scopes)
        if not granted:
            raise fail("invalid_scope", "None of the requested scopes may be granted to this app.")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is not None:
            if method != "S256":
                raise fail("invalid_request", "code_challenge_method must be S256.")
            if not pkce.valid_challenge(challenge):
                raise fail("invalid_request", "code_challenge is not a base64url SHA-256 value.")
        elif method is not None:
            raise fail("invalid_request", "code_challenge is missing.")
        elif client.client_type == "public":
            raise fail("invalid_request", "PKCE (code_challenge with S256) is required.")
        nonce = params.get("nonce")
        if nonce is not None and not 0 < len(nonce) <= 512:
            raise fail("invalid_request", "nonce must be 1 to 512 characters.")
        prompt = frozenset((params.get("prompt") or "").split())
        if not prompt <= PROMPTS or ("none" in prompt and len(prompt) > 1):
            raise fail("invalid_request", "prompt is not valid.")
        levels = [LEVELS[v] for v in (params.get("acr_values") or "").split() if v in LEVELS]
        return AuthorizationRequest(
            client=client,
            redirect_uri=redirect_uri,
            scopes=tuple(granted),
            state=state,
            nonce=nonce,
            code_challenge=challenge,
            prompt=prompt,
            # acr_values lists acceptable levels; the weakest one listed is the minimum.
            min_acr=min(levels) if levels else 0,
        )

    async def _client(self, client_id: str | None) -> Client:
        if not client_id:
            raise OAuthError("invalid_request", "client_id is missing.")
        try:
            client = await self.clients.get(client_id)
        except NotFound:
            raise OAuthError("invalid_request", "Unknown client_id.") from None
        if client.disabled_at is not None:
            raise OAuthError("invalid_request", "This app is disabled.")
        return client

    def error_redirect(self, exc: RedirectError) -> str:
        return redirect_url(
            exc.redirect_uri,
            error=exc.code,
            error_description=exc.detail,
            state=exc.state,
            iss=self.issuer,
        )

    # who is signed in ---------------------------------------------------------------------

    async def login(self, account_id: str, sid: str | None) -> Login | None:
        """The citizen of an active session, with its auth time and current assurance."""
        if not sid:
            return None
        async with self.pool.acquire() as conn:
            started = await self.repo.session_auth(conn, sid, account_id)
            level = await self.repo.assurance_level(conn, account_id)
        if started is None or level is None:
            return None
        return Login(account_id, sid, level, int(started.timestamp()))

    async def login_from_cookie(self, login_id: str | None) -> Login | None:
        if not login_id:
            return None
        found = await self.store.get_login(login_id)
        if found is None:
            return None
        return await self.login(found["account_id"], found["sid"])

    # the decision -------------------------------------------------------------------------

    async def decide(self, req: AuthorizationRequest, login: Login) -> str | ConsentPrompt:
        """A redirect URL (code or error), or the consent screen to show."""
        if login.acr < req.min_acr:
            raise RedirectError(
                "interaction_required",
                f"This app needs assurance level L{req.min_acr}; the account is at "
                f"L{login.acr}. Verify your identity in the app, then try again.",
                redirect_uri=req.redirect_uri,
                state=req.state,
            )
        consent = await self.consents.get(login.account_id, req.client.client_id)
        covered = consent is not None and set(req.scopes) <= set(consent.scopes)
        if covered and "consent" not in req.prompt:
            return await self._code_redirect(req, login)
        if "none" in req.prompt:
            raise RedirectError(
                "consent_required",
                "The citizen has not agreed to these scopes yet.",
                redirect_uri=req.redirect_uri,
                state=req.state,
            )
        request_id, csrf = await self.store.put_pending(
            {**req.to_json(), "account_id": login.account_id}
        )
        return ConsentPrompt(request_id, csrf, req.client.name, req.scopes)

    async def decide_consent(
        self, request_id: str, csrf: str, login: Login, *, allow: bool, ip: str
    ) -> str:
        pending = await self.store.take_pending(request_id)
        if pending is None:
            raise OAuthError("invalid_request", "This consent request has expired; start again.")
        if not constant_time_equal(csrf.encode(), pending["csrf"].encode()) or (
            pending["account_id"] != login.account_id
        ):
            raise OAuthError(
                "invalid_request", "The consent form is not valid.", status_kind="forbidden"
            )
        req = self._rebuild(await self._client(pending["client_id"]), pending)
        if req.redirect_uri not in req.client.redirect_uris:
            raise OAuthError("invalid_request", "The redirect_uri is no longer registered.")
        if not allow:
            return redirect_url(
                req.redirect_uri,
                error="access_denied",
                error_description="The citizen declined.",
                state=req.state,
                iss=self.issuer,
            )
        await self.consents.grant(
            login.account_id,
            req.client.client_id,
            list(req.scopes),
            expires_at=datetime.now(UTC) + CONSENT_LIFETIME,
            ip=ip,
        )
        return await self._code_redirect(req, login)

    @staticmethod
    def _rebuild(client: Client, p: dict[str, Any]) -> AuthorizationRequest:
        return AuthorizationRequest(
            client=client,
            redirect_uri=p["redirect_uri"],
            scopes=tuple(p["scopes"]),
            state=p["state"],
            nonce=p["nonce"],
            code_challenge=p["code_challenge"],
            prompt=frozenset(p["prompt"]),
            min_acr=p["min_acr"],
        )

    async def _code_redirect(self, req: AuthorizationRequest, login: Login) -> str:
        grant_id = await self._grant(req.client, login, "web", list(req.scopes))
        code = await self.store.issue_code(
            req.client.client_id,
            grant_id,
            {
                "kind": "web",
                "grant_id": grant_id,
                "redirect_uri": req.redirect_uri,
                "code_challenge": req.code_challenge,
                "nonce": req.nonce,
            },
        )
        return redirect_url(req.redirect_uri, code=code, state=req.state, iss=self.issuer)

    async def _grant(self, client: Client, login: Login, kind: str, granted: list[str]) -> str:
        grant_id = new_id("grt")
        async with self.pool.acquire() as conn:
            await self.repo.create_grant(
                conn,
                grant_id=grant_id,
                client_id=client.client_id,
                account_id=login.account_id,
                kind=kind,
                scopes=granted,
                acr=login.acr,
                auth_time=datetime.fromtimestamp(login.auth_time, UTC),
            )
        return grant_id

    # in-app quick login ---------------------------------------------------------------------

    async def miniapp_code(self, account_id: str, sid: str | None, app_id: object) -> str:
        """A one-time code the mini-app's server exchanges for the pairwise ``sub``.

        Like ``wx.login``: no consent screen; the grant holds ``openid`` plus what
        the citizen already agreed this app may see."""
        if not isinstance(app_id, str) or not 0 < len(app_id) <= 100:
            raise ValidationError("app_id", "app_id is required.")
        async with self.pool.acquire() as conn:
            client = await self.repo.client_for_app(conn, app_id)
        if client is None or client.disabled_at is not None:
            raise NotFound("No such mini-app.")
        if client.client_type != "confidential":
            raise ValidationError("app_id", "This app has no server to exchange a login code.")
        login = await self.login(account_id, sid)
        if login is None:
            raise SessionRevoked("This session has ended; sign in again.")
        consent = await self.consents.get(account_id, client.client_id)
        agreed = [s for s in (consent.scopes if consent else ()) if s != "openid"]
        granted = ["openid", *scopes.grantable(agreed, client.allowed_scopes)]
        grant_id = await self._grant(client, login, "miniapp", granted)
        return await self.store.issue_code(
            client.client_id, grant_id, {"kind": "miniapp", "grant_id": grant_id}
        )
