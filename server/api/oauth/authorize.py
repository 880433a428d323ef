"""The authorisation endpoint (RFC 6749 4.1, OIDC Core 3.1.2) and the browser
sign-in page that feeds it.

Who is signed in: the app's webview sends the citizen's access token as
``Authorization: Bearer``; a browser signs in with phone and SMS code on
``/oauth2/login``, which sets a Secure, HttpOnly, SameSite=Lax cookie holding
an opaque login-session id (Redis, 30 minutes). A webview that showed the
consent screen also gets that cookie, because a form POST carries no bearer.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlencode

from identity.crypto import constant_time_equal
from identity.errors import DomainError, Forbidden, SessionRevoked, Unauthorized, ValidationError
from identity.oauth.domain import ConsentPrompt, Login
from identity.oauth.errors import RedirectError
from identity.oauth.store import LOGIN_TTL
from server.api.oauth import pages
from server.api.oauth.base import OAuthError, OAuthHandler
from server.errors import STATUS_BY_KIND
from server.http import route
from server.openapi import STR, obj, op

LOGIN_COOKIE = "sa_login"
CSRF_COOKIE = "sa_login_csrf"
_COOKIE = {"path": "/oauth2", "secure": True, "httponly": True, "samesite": "Lax"}
_RETURN_TO = re.compile(r"^/oauth2/authorize\?[\x21-\x7e]{1,4000}$")
_QUERY = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce")


class PageHandler(OAuthHandler):
    def page(self, html: str, status: int = 200) -> None:
        self.set_status(status)
        for name, value in pages.SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)

    def _send_problem(self, body: dict[str, Any]) -> None:
        # A browser gets a readable error page; API clients keep problem+json.
        if "text/html" not in self.request.headers.get("Accept", "") or not self.request_id:
            super()._send_problem(body)
            return
        self.clear_header("Location")
        self.page(
            pages.error_page(body["title"], body["detail"], body["request_id"]), body["status"]
        )

    async def current_login(self) -> Login | None:
        oidc = self.svc.oidc.authorize
        who = self.principal  # a bad bearer token is a 401, not a sign-in page
        if who is not None:
            if who.kind != "user":
                raise Unauthorized("The authorisation endpoint needs a citizen's access token.")
            login = await oidc.login(who.sub, who.sid)
            if login is None:
                raise SessionRevoked("This session has ended; sign in again.")
            return login
        return await oidc.login_from_cookie(self.get_cookie(LOGIN_COOKIE))

    def login_form(
        self,
        *,
        phone: str = "",
        code_sent: bool = False,
        error: str = "",
        return_to: str,
        status: int = 200,
    ) -> None:
        csrf = self.get_cookie(CSRF_COOKIE) or secrets.token_urlsafe(24)
        self.set_cookie(CSRF_COOKIE, csrf, max_age=LOGIN_TTL, **_COOKIE)  # type: ignore[arg-type]
        html = pages.login_page(
            csrf=csrf,
            return_to=return_to,
            phone=phone,
            code_sent=code_sent,
            error=error,
        )
        self.page(html, status)


class AuthorizeEndpoint(PageHandler):
    openapi = {
        "get": op(
            "OAuth 2 / OIDC authorisation (code + PKCE S256): redirects, or a sign-in or "
            "consent page",
            tag="oauth2",
            response=STR,
            content_type="text/html",
            query=(*_QUERY, "code_challenge", "code_challenge_method", "prompt", "acr_values"),
            errors=(400, 401),
        ),
        "post": op(
            "The citizen's consent decision (request_id, csrf, decision from the consent "
            "page), or an authorisation request sent as a form (OIDC Core 3.1.2.1)",
            tag="oauth2",
            request=obj(
                None,
                request_id=STR,
                csrf=STR,
                decision={"enum": ["allow", "deny"]},
                **{q: STR for q in (*_QUERY, "code_challenge", "code_challenge_method")},
            ),
            request_type="application/x-www-form-urlencoded",
            status=303,
            errors=(401, 403),
        ),
    }

    async def get(self) -> None:
        await self.authorize(self.single_query(), status=302)

    async def post(self) -> None:
        form = self.form()
        if "request_id" not in form and "response_type" in form:
            # OIDC Core 3.1.2.1: the authorisation request may also be POSTed.
            await self.authorize(form, status=303)
            return
        login = await self.current_login()
        if login is None:
            raise Unauthorized("Sign in first.")
        url = await self.svc.oidc.authorize.decide_consent(
            form.get("request_id", ""),
            form.get("csrf", ""),
            login,
            allow=form.get("decision") == "allow",
            ip=self.client_ip,
        )
        self.redirect(url, status=303)

    async def authorize(self, params: dict[str, str], *, status: int) -> None:
        oidc = self.svc.oidc.authorize
        try:
            req = await oidc.check_request(params)
            login = await self.current_login()
            if login is None:
                if "none" in req.prompt:
                    raise RedirectError(
                        "login_required",
                        "The citizen is not signed in.",
                        redirect_uri=req.redirect_uri,
                        state=req.state,
                    )
                self.login_form(return_to="/oauth2/authorize?" + urlencode(params))
                return
            outcome = await oidc.decide(req, login)
        except RedirectError as exc:
            self.redirect(oidc.error_redirect(exc), status=status)
            return
        if isinstance(outcome, str):
            self.redirect(outcome, status=status)
            return
        await self.remember_webview_login(login)
        self.show_consent(outcome)

    def single_query(self) -> dict[str, str]:
        out = {}
        for key, values in self.request.query_arguments.items():
            if len(values) != 1:
                raise OAuthError("invalid_request", f"Parameter {key[:40]} repeated.")
            out[key] = values[0].decode("utf-8", "replace")
        return out

    async def remember_webview_login(self, login: Login) -> None:
        if self.principal is not None:
            login_id = await self.svc.oidc.store.create_login(login.account_id, login.sid)
            self.set_cookie(LOGIN_COOKIE, login_id, max_age=LOGIN_TTL, **_COOKIE)  # type: ignore[arg-type]

    def show_consent(self, prompt: ConsentPrompt) -> None:
        self.page(
            pages.consent_page(
                client_name=prompt.client_name,
                scopes=prompt.scopes,
                request_id=prompt.request_id,
                csrf=prompt.csrf,
            )
        )


class LoginEndpoint(PageHandler):
    openapi = {
        "post": op(
            "Browser sign-in for the authorisation flow: step=send texts a code, step=verify "
            "signs in, sets the login cookie and returns to the authorisation request",
            tag="oauth2",
            request=obj(
                ["step", "phone", "csrf", "return_to"],
                step={"enum": ["send", "verify"]},
                phone=STR,
                code=STR,
                csrf=STR,
                return_to=STR,
            ),
            request_type="application/x-www-form-urlencoded",
            response=STR,
            content_type="text/html",
            status=303,
            errors=(403, 422, 429),
        )
    }

    async def post(self) -> None:
        form = self.form()
        expected = self.get_cookie(CSRF_COOKIE) or ""
        if not expected or not constant_time_equal(
            form.get("csrf", "").encode(), expected.encode()
        ):
            raise Forbidden("The sign-in form has expired; reload the page.")
        return_to = form.get("return_to", "")
        if not _RETURN_TO.match(return_to):
            raise ValidationError("return_to", "Must be an authorisation request on this server.")
        phone, step = form.get("phone", ""), form.get("step")
        try:
            if step == "send":
                await self.svc.signin.request_otp(phone, self.client_ip)
                self.login_form(phone=phone, code_sent=True, return_to=return_to)
                return
            if step != "verify":
                raise ValidationError("step", "step must be send or verify.")
            await self.sign_in(phone, form.get("code", ""), return_to)
        except DomainError as exc:
            status = STATUS_BY_KIND.get(exc.kind, 400)
            self.login_form(
                phone=phone,
                code_sent=step == "verify",
                error=exc.detail,
                return_to=return_to,
                status=status,
            )

    async def sign_in(self, phone: str, code: str, return_to: str) -> None:
        # sign_in_with_otp counts the per-IP token limit with the code check.
        device = "Web sign-in: " + self.request.headers.get("User-Agent", "")[:150]
        pair = await self.svc.signin.sign_in_with_otp(phone, code, device=device, ip=self.client_ip)
        login_id = await self.svc.oidc.store.create_login(pair.account_id, pair.session_id)
        self.set_cookie(LOGIN_COOKIE, login_id, max_age=LOGIN_TTL, **_COOKIE)  # type: ignore[arg-type]
        self.redirect(return_to, status=303)


ROUTES = [
    route("/oauth2/authorize", AuthorizeEndpoint),
    route("/oauth2/login", LoginEndpoint),
]
