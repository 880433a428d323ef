"""Domain types of the payments context: merchants, orders, refunds and merchant events.

Money is an integer number of fen, currency CNY; times are timezone-aware UTC. Order states:
``created`` -> ``paying`` -> ``paid`` -> ``partially_refunded`` / ``refunded``, or ``closed``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

ORDER_STATES = ("created", "paying", "paid", "partially_refunded", "refunded", "closed")
OPEN_STATES = ("created", "paying")
PAID_STATES = ("paid", "partially_refunded", "refunded")
CHANNELS = ("wechatpay", "alipay")
MIN_AMOUNT_FEN = 1
MAX_AMOUNT_FEN = 1_000_000_000
DEFAULT_EXPIRES_IN = 30 * 60
# Channel refund rules (WeChat Pay): at most 50 per order, a minute apart, within a year.
MAX_REFUNDS_PER_ORDER = 50
REFUND_INTERVAL = dt.timedelta(minutes=1)
REFUND_WINDOW = dt.timedelta(days=365)


def iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True)
class Merchant:
    client_id: str
    unit_id: str
    name: str
    webhook_url: str | None
    webhook_secret: str
    settlement_account_name: str | None
    settlement_bank: str | None
    settlement_account_no: str | None
    created_at: dt.datetime

    def public(self, *, with_secret: bool = False) -> dict[str, Any]:
        no = self.settlement_account_no
        out: dict[str, Any] = {
            "merchant_id": self.client_id,
            "unit_id": self.unit_id,
            "name": self.name,
            "webhook_url": self.webhook_url,
            "settlement": {
                "account_name": self.settlement_account_name,
                "bank": self.settlement_bank,
                # Masked: the full number is only ever used for settlement files.
                "account_no": ("****" + no[-4:]) if no else None,
            },
            "created_at": iso(self.created_at),
        }
        if with_secret:
            out["webhook_secret"] = self.webhook_secret
        return out


@dataclass(frozen=True)
class Order:
    id: str
    merchant_id: str
    out_trade_no: str
    amount_fen: int
    currency: str
    subject: str
    notify_url: str | None
    payer_sub: str | None
    status: str
    channel: str | None
    channel_reference: str | None
    transaction_id: str | None
    refunded_fen: int
    refunding_fen: int
    expires_at: dt.datetime
    paid_at: dt.datetime | None
    closed_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def refundable_fen(self) -> int:
        if self.status not in PAID_STATES:
            return 0
        return self.amount_fen - self.refunded_fen - self.refunding_fen

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "merchant_id": self.merchant_id,
            "out_trade_no": self.out_trade_no,
            "status": self.status,
            "amount_fen": self.amount_fen,
            "currency": self.currency,
            "subject": self.subject,
            "notify_url": self.notify_url,
            "payer": self.payer_sub,
            "channel": self.channel,
            "transaction_id": self.transaction_id,
            "refunded_fen": self.refunded_fen,
            "refunding_fen": self.refunding_fen,
            "expires_at": iso(self.expires_at),
            "paid_at": iso(self.paid_at),
            "closed_at": iso(self.closed_at),
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class Refund:
    id: str
    order_id: str
    merchant_id: str
    out_refund_no: str
    amount_fen: int
    reason: str
    kind: str
    channel: str
    transaction_id: str | None
    status: str
    channel_refund_id: str | None
    created_at: dt.datetime
    succeeded_at: dt.datetime | None
    failed_reason: str | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "out_refund_no": self.out_refund_no,
            "amount_fen": self.amount_fen,
            "reason": self.reason,
            "status": self.status,
            "channel": self.channel,
            "created_at": iso(self.created_at),
            "succeeded_at": iso(self.succeeded_at),
            "failed_reason": self.failed_reason,
        }


@dataclass(frozen=True)
class Event:
    id: str
    merchant_id: str
    type: str
    order_id: str | None
    url: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "order_id": self.order_id,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at),
            "last_status": self.last_status,
            "last_error": self.last_error,
            "created_at": iso(self.created_at),
            "delivered_at": iso(self.delivered_at),
        }
