"""Port to the national population registry, and its HTTP adapter.

Real-name verification (assurance L2) asks the registry whether a name and a
resident ID number belong together; face verification (L3) fetches the ID
photo on file as the reference image.

The national registry's interface is not public, so this is our own simple
JSON-over-HTTPS wire format; ``server/sims/registry.py`` speaks it.

Authentication: every request carries ``X-Api-Key: <key>``; the registry
compares it in constant time and answers 401 when it is wrong. Personal data
travels only in POST bodies, never in URLs (which end up in access logs).

``POST /v1/persons/verify``
    request ``{"name": "张三丰", "id_number": "440305199001011234"}``
    200 ``{"result": "match" | "name_mismatch" | "not_found"}``

``POST /v1/persons/photo``
    request ``{"id_number": "440305199001011234"}``
    200 ``{"media_type": "image/jpeg", "photo": "<base64 of the JPEG>"}``
    404 ``{"error": "not-found"}`` when there is no such person or no photo

Errors: 400 ``{"error": "bad-request", "detail": "..."}`` for a malformed
body, 401 ``{"error": "unauthorized"}``, 5xx when the registry is unwell.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from enum import StrEnum
from typing import Any, Protocol

import httpx

from identity.verification.errors import (
    RegistryBadResponse,
    RegistryCredentialsRejected,
    RegistryUnavailable,
)

__all__ = ["API_KEY_HEADER", "HttpPopulationRegistry", "PopulationRegistry", "RegistryResult"]

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-Api-Key"
# An ID photo is 358x441 pixels, tens of kilobytes; anything near this cap is not a photo.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class RegistryResult(StrEnum):
    MATCH = "match"
    NAME_MISMATCH = "name_mismatch"
    NOT_FOUND = "not_found"


class PopulationRegistry(Protocol):
    """What identity verification needs from the population registry."""

    async def check(self, name: str, id_number: str) -> RegistryResult:
        """Whether ``name`` is the registered name of ``id_number``."""
        ...

    async def reference_photo(self, id_number: str) -> bytes | None:
        """The ID photo on file (JPEG bytes), or ``None`` when there is none."""
        ...


class HttpPopulationRegistry:
    """:class:`PopulationRegistry` over the wire format above.

    ``client`` is the application's pooled ``httpx.AsyncClient``; this class
    never closes it. Transport failures and timeouts raise
    :class:`RegistryUnavailable` (a ``DependencyUnavailable``, 503).
    """

    def __init__(
        self,
        base_url: str,
        client: httpx.AsyncClient,
        api_key: str,
        *,
        timeout: float = 5.0,
    ) -> None:
        if not api_key:
            raise ValueError("api_key must not be empty")
        self._base_url = base_url.rstrip("/")
        self._client = client
        self._api_key = api_key
        # connect/read/write/pool each bounded: a hung registry must not hold a request.
        self._timeout = httpx.Timeout(timeout)

    async def check(self, name: str, id_number: str) -> RegistryResult:
        status, body = await self._post(
            "/v1/persons/verify", {"name": name, "id_number": id_number}
        )
        if status != 200:
            raise RegistryBadResponse(f"The registry answered HTTP {status} to a check.")
        try:
            return RegistryResult(body["result"])
        except (KeyError, TypeError, ValueError):
            raise RegistryBadResponse("The registry's check answer has no valid result.") from None

    async def reference_photo(self, id_number: str) -> bytes | None:
        status, body = await self._post("/v1/persons/photo", {"id_number": id_number})
        if status == 404:
            # Only the registry's own 404 means "no photo"; a bare 404 (wrong base URL,
            # a proxy) must not pass for "this citizen has no photo on file".
            if isinstance(body, dict) and body.get("error") == "not-found":
                return None
            raise RegistryBadResponse("The registry's photo endpoint was not found.")
        if status != 200:
            raise RegistryBadResponse(f"The registry answered HTTP {status} to a photo request.")
        try:
            photo = base64.b64decode(body["photo"], validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise RegistryBadResponse("The registry's photo answer is not base64.") from None
        return photo or None

    async def _post(self, path: str, payload: dict[str, str]) -> tuple[int, Any]:
        """POST JSON; return (status, decoded JSON) for 200 and 404, raise otherwise."""
        url = self._base_url + path
        headers = {API_KEY_HEADER: self._api_key, "Accept": "application/json"}
        try:
            async with self._client.stream(
                "POST", url, json=payload, headers=headers, timeout=self._timeout
            ) as response:
                raw = await _read_capped(response)
        except httpx.TimeoutException:
            log.warning("population registry timed out: POST %s", path)
            raise RegistryUnavailable("The population registry did not answer in time.") from None
        except httpx.TransportError as exc:
            log.warning("population registry unreachable: POST %s: %s", path, type(exc).__name__)
            raise RegistryUnavailable("The population registry cannot be reached.") from None
        status = response.status_code
        if status in (401, 403):
            log.error("population registry refused our API key (HTTP %d)", status)
            raise RegistryCredentialsRejected()
        if status == 429 or status >= 500:
            log.warning("population registry unwell: POST %s -> HTTP %d", path, status)
            retry = response.headers.get("Retry-After", "")
            extra = {"retry_after": int(retry)} if retry.isascii() and retry.isdigit() else {}
            raise RegistryUnavailable(f"The population registry answered HTTP {status}.", **extra)
        if status not in (200, 404):
            log.warning("population registry: POST %s -> unexpected HTTP %d", path, status)
            raise RegistryBadResponse(f"The registry answered HTTP {status}.")
        try:
            return status, json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise RegistryBadResponse("The registry's answer is not JSON.") from None


async def _read_capped(response: httpx.Response) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise RegistryBadResponse("The registry's answer is too large.")
        chunks.append(chunk)
    return b"".join(chunks)
