"""WeChat Pay API v3 payment and refund notifications (支付通知 / 退款结果通知).

A notification is JSON ``{"id", "create_time", "event_type", "resource_type", "resource",
"summary"}`` signed like a response. ``event_type`` is ``TRANSACTION.SUCCESS`` or
``REFUND.SUCCESS`` / ``REFUND.ABNORMAL`` / ``REFUND.CLOSED``; ``resource`` decrypts to the
transaction or refund object as the query APIs return it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from payments.channels import wechatpay_signing as signing
from payments.channels.credentials import WechatPayMerchantCredentials
from payments.errors import CallbackBadSignature, CallbackMalformed
from payments.ports import (
    ChannelNotification,
    ChannelRefund,
    ChannelTradeState,
    NotificationReply,
    RefundState,
    TradeState,
)

TRADE_STATES: dict[str, TradeState] = {
    "NOTPAY": "pending",
    "USERPAYING": "paying",
    "SUCCESS": "paid",
    "REFUND": "refunded",
    "CLOSED": "closed",
    "REVOKED": "closed",
    "PAYERROR": "failed",
}
REFUND_STATES: dict[str, RefundState] = {
    "PROCESSING": "processing",
    "SUCCESS": "succeeded",
    "CLOSED": "closed",
    "ABNORMAL": "abnormal",
}

ACK = NotificationReply(200, "application/json", b'{"code":"SUCCESS","message":"OK"}')


def nack(message: str = "") -> NotificationReply:
    body = json.dumps({"code": "FAIL", "message": message or "FAIL"}).encode()
    return NotificationReply(500, "application/json", body)


def parse_time(value: object) -> dt.datetime | None:
    """RFC 3339 times as WeChat writes them (``2026-11-21T10:00:00+08:00``) -> UTC."""
    if not isinstance(value, str) or not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("time without offset")
    return parsed.astimezone(dt.UTC)


def trade_state(data: Mapping[str, Any]) -> ChannelTradeState:
    """Normalise a v3 transaction object (query response or decrypted notification)."""
    raw = str(data["trade_state"])
    amount = data.get("amount") or {}
    total = amount.get("total")
    return ChannelTradeState(
        out_trade_no=str(data["out_trade_no"]),
        state=TRADE_STATES.get(raw, "pending"),
        channel_state=raw,
        transaction_id=data.get("transaction_id") or None,
        amount_fen=total if isinstance(total, int) and not isinstance(total, bool) else None,
        paid_at=parse_time(data.get("success_time")),
    )


def refund_state(data: Mapping[str, Any]) -> ChannelRefund:
    """Normalise a v3 refund object; notifications name the status ``refund_status``."""
    raw = str(data.get("status") or data.get("refund_status") or "")
    if raw not in REFUND_STATES:
        raise ValueError(f"unknown refund status {raw!r}")
    refund = (data.get("amount") or {}).get("refund")
    if not isinstance(refund, int) or isinstance(refund, bool):
        raise ValueError("refund amount missing")
    return ChannelRefund(
        out_trade_no=str(data["out_trade_no"]),
        out_refund_no=str(data["out_refund_no"]),
        refund_id=data.get("refund_id") or None,
        state=REFUND_STATES[raw],
        refund_fen=refund,
        succeeded_at=parse_time(data.get("success_time")),
    )


def parse_notification(
    creds: WechatPayMerchantCredentials,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime,
) -> ChannelNotification:
    """Verify, decrypt and normalise one notification; raise ``callback-*`` errors."""
    signing.verify_signed(headers, body, creds.platform_public_keys, now)
    try:
        envelope = json.loads(body)
        event_type = str(envelope["event_type"])
        resource = envelope["resource"]
        if not isinstance(resource, dict):
            raise ValueError("resource is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise CallbackMalformed("notification is not a v3 event") from exc
    plaintext = signing.decrypt_resource(creds.apiv3_key, resource)
    try:
        data = json.loads(plaintext)
        if str(data.get("mchid", "")) != creds.mchid:
            # Signed by the platform, but for another merchant: never ours to act on.
            raise CallbackBadSignature("notification is for another merchant")
        if event_type.startswith("TRANSACTION."):
            return ChannelNotification(
                channel="wechatpay",
                notification_id=str(envelope["id"]),
                kind="payment",
                trade=trade_state(data),
            )
        if event_type.startswith("REFUND."):
            return ChannelNotification(
                channel="wechatpay",
                notification_id=str(envelope["id"]),
                kind="refund",
                refund=refund_state(data),
            )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CallbackMalformed("notification resource cannot be parsed") from exc
    raise CallbackMalformed(f"unsupported event type {event_type!r}")
