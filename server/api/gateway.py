"""``ANY /m/{app_id}/{path}``: the reverse proxy from the citizen's app to a mini-app.

After ``GatewayCore.admit`` (route, token, gray version, assurance, consent,
rate limits, breaker) the request goes to the upstream's SSRF-checked address
over a pooled keep-alive client (aiohttp: httpx's pool measured 3x slower at
32 concurrent requests), with client-sent ``X-Superapp-*``
and ``Authorization`` headers removed and a fresh identity assertion
(``X-Superapp-Identity``, a JWT the upstream verifies with our JWKS) added.
The response streams back with a size cap; redirects are passed on, never
followed. Upstream failures become 502/503/504 problems and count against
the upstream's circuit breaker.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from yarl import URL

from identity.tokens import Principal
from miniapps.errors import UpstreamResponseTooLarge, UpstreamTimeout, UpstreamUnreachable
from miniapps.gateway import Admission
from server.http import BaseHandler, route
from server.openapi import op

IDENTITY_HEADER = "X-Superapp-Identity"
ASSERTION_TYP = "superapp-identity+jwt"
ASSERTION_TTL = 60
MAX_REQUEST_BODY = 8 * 1024 * 1024
MAX_RESPONSE_BODY = 32 * 1024 * 1024
# RFC 9110 section 7.6.1 hop-by-hop fields, plus what the gateway sets itself.
_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Content-Length", "Authorization",
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Real-Ip", "Forwarded",
    )
)  # fmt: skip
# aiohttp adds these unless told not to; the client's own values pass through.
_NO_AUTO_HEADERS = frozenset(("User-Agent", "Accept", "Accept-Encoding", "Content-Type"))
_RESPONSE_DROP = frozenset(("connection", "keep-alive", "transfer-encoding", "trailer", "upgrade",
                            "proxy-authenticate", "server", "date"))  # fmt: skip


def _proxy_op(method: str) -> dict[str, Any]:
    return op(
        f"Proxy a {method} to the mini-app's upstream with an identity assertion",
        tag="gateway",
        auth="user",
        errors=(401, 403, 404, 429, 502, 503, 504),
        content_type="*/*",
    )


class GatewayHandler(BaseHandler):
    max_body = MAX_REQUEST_BODY
    openapi = {m: _proxy_op(m.upper()) for m in ("get", "post", "put", "patch", "delete")}

    async def get(self, app_id: str, path: str) -> None:
        who = self._citizen()
        adm = await self.svc.gateway.admit(app_id, who, self.request_id)
        status: int | None = None
        started = time.perf_counter()
        try:
            status = await self._forward(adm, path)
        finally:
            adm.breaker.record(status)
            self.svc.usage.record(app_id, status or 502, time.perf_counter() - started)
            self.svc.usage.use(app_id, who.sub, who.sid)

    post = put = patch = delete = options = head = get

    def _citizen(self) -> Principal:
        scheme, _, token = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self.require_user()  # the usual 401 problem
        self._principal = self.svc.gateway.principal(token.strip(), self.svc.tokens.verify_access)
        return self.require_user()

    def _upstream_headers(self, adm: Admission) -> dict[str, str]:
        up = adm.version.upstream
        assert up is not None
        out: dict[str, str] = {}
        for name, value in self.request.headers.get_all():
            low = name.lower()
            if low in _HOP or low.startswith("x-superapp-"):
                continue  # never let the client speak for the platform
            out[name] = f"{out[name]}, {value}" if name in out else value
        default_port = 443 if up.scheme == "https" else 80
        out["Host"] = up.host if up.port == default_port else f"{up.host}:{up.port}"
        out["X-Forwarded-For"] = self.client_ip
        out["X-Forwarded-Proto"] = self.request.protocol
        out["X-Request-Id"] = self.request_id
        out[IDENTITY_HEADER] = self.svc.tokens.sign(
            adm.claims, typ=ASSERTION_TYP, ttl=ASSERTION_TTL
        )
        return out

    async def _forward(self, adm: Admission, path: str) -> int:
        """Send upstream and stream the answer back; return the upstream status."""
        up = adm.version.upstream
        assert up is not None
        ip = up.addresses[0]
        host = f"[{ip}]" if ip.version == 6 else str(ip)
        base = up.path.rstrip("/")
        query = f"?{self.request.query}" if self.request.query else ""
        # The URL names the checked address, so no second DNS lookup can redirect us.
        url = URL(f"{up.scheme}://{host}:{up.port}{base}/{path}{query}", encoded=True)
        timeout = adm.version.timeout
        try:
            response = await self.svc.upstream_http.request(
                self.request.method or "GET",
                url,
                headers=self._upstream_headers(adm),
                data=self.body() or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=min(3.0, timeout), sock_read=timeout
                ),
                server_hostname=up.host if up.scheme == "https" else None,
                skip_auto_headers=_NO_AUTO_HEADERS,
            )
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamUnreachable("The mini-app service did not accept a connection.") from None
        except TimeoutError:
            raise UpstreamTimeout(f"No answer within {timeout:g} s.") from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamUnreachable("The mini-app service could not be reached.") from None
        try:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_RESPONSE_BODY:
                raise UpstreamResponseTooLarge(f"At most {MAX_RESPONSE_BODY} bytes.")
            self.set_status(response.status, response.reason or None)
            self.clear_header("Content-Type")
            for name, value in response.headers.items():
                if name.lower() not in _RESPONSE_DROP:
                    self.add_header(name, value)
            await self._stream(response)
        finally:
            response.release()
        return response.status

    async def _stream(self, response: aiohttp.ClientResponse) -> None:
        sent = 0
        try:
            async for chunk in response.content.iter_any():
                sent += len(chunk)
                if sent > MAX_RESPONSE_BODY:
                    # Headers are gone: cutting the connection is the only honest signal left.
                    self.request.connection.close()  # type: ignore[union-attr]
                    return
                self.write(chunk)
                if sent > 65536:
                    await self.flush()
        except (aiohttp.ClientError, TimeoutError, OSError):
            if not self._headers_written:
                self.clear()
                raise UpstreamTimeout("The mini-app service stopped answering.") from None
            self.request.connection.close()  # type: ignore[union-attr]
            return
        self.finish()


ROUTES = [route("/m/{app_id}/{path:path}", GatewayHandler)]
