"""Merchant notifications: the outbox worker that delivers signed webhooks at least once.

Each event (written in the same transaction as the state change) is posted as JSON with::

    Superapp-Event-Id: evt_...                      (stable across redeliveries)
    Superapp-Signature: t=<unix>,v1=<hex HMAC-SHA256(webhook secret, "<t>.<body>")>
    Superapp-Platform-Signature: kid=<kid>,sig=<base64url signature over "<t>.<body>">

The second signature uses the platform key ring (ES256 raw r||s or Ed25519), verifiable with
``/.well-known/jwks.json``. Receivers reject timestamps more than 300 s away. A 2xx answer
acknowledges; otherwise the event is retried on WeChat Pay's schedule (scaled by
``time_scale``), then dead-lettered until redelivered. Workers claim due events with
``FOR UPDATE SKIP LOCKED`` and a lease, so any number of workers share the outbox.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from identity.keys import SigningKey, b64url
from payments.domain import Event, Merchant
from payments.repository import PaymentsRepository

log = logging.getLogger("superapp.payments.webhooks")

# WeChat Pay's notification schedule (seconds after each failed attempt).
SCHEDULE = [15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800, 21600, 21600]
TOLERANCE = 300
LEASE = dt.timedelta(seconds=60)


def hmac_signature(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={hmac_signature(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, now: float | None = None, tolerance: int = TOLERANCE
) -> bool:
    """What a merchant runs: parse ``t=..,v1=..``, check the time window and the HMAC."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - ts) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), hmac_signature(secret, ts, body))


def platform_signature(key: SigningKey, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    private = key.private_key
    if isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private.sign(message, ec.ECDSA(hashes.SHA256())))
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        raw = private.sign(message)
    else:  # pragma: no cover - the ring only holds the two kinds
        raise ValueError("unsupported platform key")
    return f"kid={key.kid},sig={b64url(raw)}"


def next_attempt(attempts: int, time_scale: float, now: dt.datetime) -> dt.datetime | None:
    """When to try again after ``attempts`` failed attempts; None: dead-letter."""
    if attempts > len(SCHEDULE):
        return None
    return now + dt.timedelta(seconds=SCHEDULE[attempts - 1] * time_scale)


@dataclass(frozen=True)
class DeliveryOutcome:
    event_id: str
    delivered: bool
    status: int | None  # the merchant's HTTP status, None when no answer came
    error: str
    retry_at: dt.datetime | None  # failed: when to try again; None: dead-letter


class WebhookDispatcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        repo: PaymentsRepository,
        http: httpx.AsyncClient,
        platform_key: Callable[[], SigningKey],
        *,
        time_scale: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self.pool = pool
        self.repo = repo
        self.http = http
        self.platform_key = platform_key
        self.time_scale = time_scale
        self.timeout = timeout

    async def run_once(self, limit: int = 50) -> int:
        """Deliver a batch of due events: one read of their merchants, the posts in
        parallel, then every event's own outcome written in one statement."""
        async with self.pool.acquire() as conn:
            events = await self.repo.claim_events(conn, LEASE, limit)
            if not events:
                return 0
            merchants = await self.repo.get_merchants(conn, {e.merchant_id for e in events})
        outcomes = await asyncio.gather(
            *(self._deliver(e, merchants.get(e.merchant_id)) for e in events)
        )
        done = [o for o in outcomes if o is not None]
        if done:
            async with self.pool.acquire() as conn:
                await self.repo.record_deliveries(conn, done)
        for outcome in done:
            if not outcome.delivered and outcome.retry_at is None:
                log.warning("webhook dead-lettered", extra={"event_id": outcome.event_id})
        return len(events)

    async def _deliver(self, event: Event, merchant: Merchant | None) -> DeliveryOutcome | None:
        if merchant is None:
            return None
        body = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":")).encode()
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "superapp-webhooks/1",
            "Superapp-Event-Id": event.id,
            "Superapp-Event-Type": event.type,
            "Superapp-Signature": signature_header(merchant.webhook_secret, ts, body),
            "Superapp-Platform-Signature": platform_signature(self.platform_key(), ts, body),
        }
        status: int | None = None
        error = ""
        try:
            resp = await self.http.post(
                event.url, content=body, headers=headers, timeout=self.timeout
            )
            status = resp.status_code
            error = "" if 200 <= status < 300 else f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        if not error and status is not None:
            return DeliveryOutcome(event.id, True, status, "", None)
        retry = next_attempt(event.attempts, self.time_scale, dt.datetime.now(dt.UTC))
        return DeliveryOutcome(event.id, False, status, error, retry)
