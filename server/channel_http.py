"""The HTTP client of the payment channel adapters and the merchant webhooks.

Every payment makes such calls (the WeChat Pay prepay request, the merchant's webhook), and
httpx spends more CPU per call than the handler answering it. This wraps the lean
keep-alive client (``server/sims/rawhttp.py``) in the few httpx methods those callers use
(``request``, ``get``, ``post`` with ``content`` or form ``data``) and raises httpx's own
error type, so the adapters, the dispatcher and their unit tests (which pass an
``httpx.AsyncClient`` with a mock transport) stay as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

from server.sims.rawhttp import HttpError, RawHttpClient


@dataclass(frozen=True)
class LeanResponse:
    status_code: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased


class LeanHttp:
    def __init__(self, timeout: float = 10.0) -> None:
        self._client = RawHttpClient(timeout=timeout)

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | str | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpx's signature
    ) -> LeanResponse:
        sent = dict(headers or {})
        if data is not None:
            body = urlencode(data).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif isinstance(content, str):
            body = content.encode()
        else:
            body = content or b""
        try:
            status, fields, answer = await self._client.request(
                method.upper(), url, body, sent, time_limit=timeout
            )
        except HttpError as exc:
            # httpx's error type: callers map it to "channel unavailable" / "retry later".
            raise httpx.TransportError(str(exc)) from exc
        return LeanResponse(status, answer, fields)

    async def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpx's signature
    ) -> LeanResponse:
        return await self.request("GET", url, headers=headers, timeout=timeout)

    async def post(
        self,
        url: str,
        *,
        content: bytes | str | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpx's signature
    ) -> LeanResponse:
        return await self.request(
            "POST", url, content=content, data=data, headers=headers, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._client.aclose()
