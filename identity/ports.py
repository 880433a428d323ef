"""Ports to the outside world of identity, each with a real adapter.

SMS: ``OutboxSms`` (development default: messages are stored and
``superapp sms outbox`` prints them) and ``HttpSms`` for a real SMS provider.
"""

from __future__ import annotations

from typing import Protocol

import asyncpg
import httpx

from identity.errors import DependencyUnavailable
from identity.repository import IdentityRepository


class SmsSender(Protocol):
    async def send(self, phone: str, body: str) -> None: ...


class OutboxSms:
    """Keeps messages in PostgreSQL (encrypted) instead of sending them."""

    def __init__(self, pool: asyncpg.Pool, repo: IdentityRepository) -> None:
        self.pool = pool
        self.repo = repo

    async def send(self, phone: str, body: str) -> None:
        async with self.pool.acquire() as conn:
            await self.repo.store_sms(conn, phone, body)


class HttpSms:
    """A JSON-over-HTTPS SMS provider: ``POST {base}/messages`` with a bearer key."""

    def __init__(self, base_url: str, api_key: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.client = client

    async def send(self, phone: str, body: str) -> None:
        try:
            resp = await self.client.post(
                f"{self.base_url}/messages",
                json={"to": phone, "text": body},
                headers={"Authorization": f"Bearer {self.api_key}"},
                timeout=5.0,
            )
        except httpx.HTTPError:
            raise DependencyUnavailable(
                "The SMS gateway could not be reached; try again shortly.", retry_after=5
            ) from None
        if resp.status_code >= 300:
            # The gateway's answer (maybe echoing the key or number) is not passed on.
            raise DependencyUnavailable(
                "The SMS gateway did not accept the message; try again shortly.", retry_after=5
            )
