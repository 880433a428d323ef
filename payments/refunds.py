"""Refunds: partial or full, idempotent on the merchant's ``out_refund_no``, under the
channels' rules (at most 50 per order, a minute apart, within 365 days).

The request commits first (the order row locked ``FOR UPDATE`` so concurrent refunds
serialise and their sum never exceeds what was paid; money moves from the merchant's payable
to refunds-in-flight), then the channel is asked; the final result arrives asynchronously
(WeChat's callback, Alipay's synchronous answer, or the poller's query).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import asyncpg

from identity.errors import ValidationError
from payments.domain import (
    MAX_REFUNDS_PER_ORDER,
    PAID_STATES,
    REFUND_INTERVAL,
    REFUND_WINDOW,
    Refund,
)
from payments.errors import (
    ChannelRejected,
    ChannelTradeNotFound,
    ChannelUnavailable,
    OrderNotFound,
    PaymentError,
    RefundConflict,
    RefundExceedsPaid,
    RefundNotAllowed,
)
from payments.ledger import transfer
from payments.ports import ChannelRefund
from payments.service import parse_amount, parse_no, utcnow

if TYPE_CHECKING:
    from payments.service import PaymentService

log = logging.getLogger("superapp.payments.refunds")


async def request_refund(
    svc: PaymentService,
    client_id: str,
    order_id: str,
    body: Mapping[str, Any],
    *,
    interval: dt.timedelta = REFUND_INTERVAL,
) -> tuple[Refund, bool]:
    """Accept a refund (True) or return the one with this out_refund_no (False)."""
    out_refund_no = parse_no("out_refund_no", body.get("out_refund_no"))
    amount = parse_amount(body.get("amount_fen"))
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > 80:
        raise ValidationError("reason", "Must be a string of at most 80 characters.")
    async with svc.pool.acquire() as conn, conn.transaction():
        order = await svc.repo.get_order(conn, order_id, for_update=True)
        if order is None or order.merchant_id != client_id:
            raise OrderNotFound("No such order for this merchant.")
        existing = await svc.repo.get_refund_by_no(conn, client_id, out_refund_no)
        if existing is not None:
            if existing.order_id != order.id or existing.amount_fen != amount:
                raise RefundConflict("This out_refund_no was used for another refund.")
            return existing, False
        if order.status not in PAID_STATES or order.paid_at is None or not order.channel:
            raise RefundNotAllowed(f"The order is {order.status}; only paid orders are refunded.")
        if amount > order.refundable_fen:
            raise RefundExceedsPaid(
                f"At most {order.refundable_fen} fen can still be refunded.",
                refundable_fen=order.refundable_fen,
            )
        now = utcnow()
        if now - order.paid_at > REFUND_WINDOW:
            raise RefundNotAllowed("Orders can be refunded within 365 days of payment only.")
        previous = [r for r in await svc.repo.refunds_of(conn, [order.id]) if r.kind == "merchant"]
        if len(previous) >= MAX_REFUNDS_PER_ORDER:
            raise RefundNotAllowed(f"An order can have at most {MAX_REFUNDS_PER_ORDER} refunds.")
        if previous and now - previous[-1].created_at < interval:
            wait = interval - (now - previous[-1].created_at)
            raise RefundNotAllowed(
                "Refunds of one order must be at least a minute apart.",
                retry_after=max(1, int(wait.total_seconds()) + 1),
            )
        refund = await svc.repo.insert_refund(
            conn,
            order_id=order.id,
            merchant_id=client_id,
            out_refund_no=out_refund_no,
            amount_fen=amount,
            reason=reason,
            kind="merchant",
            channel=order.channel,
            transaction_id=order.transaction_id,
        )
        await svc.ledger.post(
            conn,
            f"refund_request:{refund.id}",
            "refund_request",
            transfer(
                f"merchant_payable:{order.merchant_id}",
                f"refunds_in_flight:{order.channel}",
                amount,
            ),
            order_id=order.id,
            channel=order.channel,
            external_id=refund.id,
        )
        await svc.repo.update_order(conn, order.id, refunding_fen=order.refunding_fen + amount)
    return await submit_refund(svc, refund.id), True


async def submit_refund(svc: PaymentService, refund_id: str) -> Refund:
    """Ask the channel (idempotent there on our refund id); act on a final answer."""
    async with svc.pool.acquire() as conn:
        refund = await svc.repo.get_refund(conn, refund_id)
        order = await svc.repo.get_order(conn, refund.order_id) if refund else None
    assert refund is not None and order is not None
    if refund.status != "processing":
        return refund
    channel = svc.channel(refund.channel)
    try:
        result = await channel.refund(
            order.id, refund.id, refund.amount_fen, order.amount_fen, refund.reason or "refund"
        )
    except ChannelUnavailable:
        log.warning("refund not sent yet: channel unavailable", extra={"refund_id": refund.id})
        return refund  # the poller tries again
    except ChannelRejected as exc:
        return await finish_refund(svc, refund.id, None, failed_reason=exc.detail)
    except PaymentError as exc:
        log.warning("refund not sent: %s", exc.code, extra={"refund_id": refund.id})
        return refund
    return await finish_refund(svc, refund.id, result)


async def finish_refund(
    svc: PaymentService,
    refund_id: str,
    result: ChannelRefund | None,
    *,
    failed_reason: str | None = None,
) -> Refund:
    """Apply a channel's refund state: success or failure moves the money; idempotent."""
    async with svc.pool.acquire() as conn, conn.transaction():
        refund = await svc.repo.get_refund(conn, refund_id)
        assert refund is not None
        order = await svc.repo.get_order(conn, refund.order_id, for_update=True)
        refund = await svc.repo.get_refund(conn, refund_id, for_update=True)
        assert order is not None and refund is not None
        if refund.status != "processing":
            return refund
        if result is not None and result.state == "processing":
            return await svc.repo.update_refund(
                conn, refund.id, channel_refund_id=result.refund_id or refund.channel_refund_id
            )
        if result is not None and result.state == "succeeded":
            return await _succeeded(svc, conn, order.id, refund, result)
        reason = failed_reason or (f"channel state {result.state}" if result else "refused")
        return await _failed(svc, conn, order.id, refund, reason)


async def _succeeded(
    svc: PaymentService,
    conn: asyncpg.Connection,
    order_id: str,
    refund: Refund,
    result: ChannelRefund,
) -> Refund:
    at = result.succeeded_at or utcnow()
    refund = await svc.repo.update_refund(
        conn,
        refund.id,
        status="succeeded",
        succeeded_at=at,
        channel_refund_id=result.refund_id,
        next_check_at=None,
    )
    await svc.ledger.post(
        conn,
        f"refund:{refund.id}",
        "refund",
        transfer(
            f"refunds_in_flight:{refund.channel}",
            f"channel_clearing:{refund.channel}",
            refund.amount_fen,
        ),
        order_id=order_id,
        channel=refund.channel,
        external_id=refund.id,
        occurred_at=at,
    )
    if refund.kind == "merchant":
        order = await svc.repo.get_order(conn, order_id)
        assert order is not None
        refunded = order.refunded_fen + refund.amount_fen
        order = await svc.repo.update_order(
            conn,
            order_id,
            refunded_fen=refunded,
            refunding_fen=order.refunding_fen - refund.amount_fen,
            status="refunded" if refunded == order.amount_fen else "partially_refunded",
        )
        await svc.emit(conn, order, "refund.succeeded", {}, refund)
    return refund


async def _failed(
    svc: PaymentService, conn: asyncpg.Connection, order_id: str, refund: Refund, reason: str
) -> Refund:
    refund = await svc.repo.update_refund(
        conn, refund.id, status="failed", failed_reason=reason[:300], next_check_at=None
    )
    back = (
        f"merchant_payable:{refund.merchant_id}"
        if refund.kind == "merchant"
        else f"stray_payments:{refund.channel}"
    )
    await svc.ledger.post(
        conn,
        f"refund_failed:{refund.id}",
        "refund_failed",
        transfer(f"refunds_in_flight:{refund.channel}", back, refund.amount_fen),
        order_id=order_id,
        channel=refund.channel,
        external_id=refund.id,
    )
    if refund.kind == "merchant":
        order = await svc.repo.get_order(conn, order_id)
        assert order is not None
        order = await svc.repo.update_order(
            conn, order_id, refunding_fen=order.refunding_fen - refund.amount_fen
        )
        await svc.emit(conn, order, "refund.failed", {"reason": reason[:300]}, refund)
    else:
        log.error("automatic refund of a stray payment failed", extra={"refund_id": refund.id})
    return refund


async def apply_refund_notice(
    svc: PaymentService, channel_name: str, notification_id: str, notice: ChannelRefund
) -> str:
    async with svc.pool.acquire() as conn, conn.transaction():
        fresh, _ = await svc.repo.record_notification(
            conn, channel_name, notification_id, "refund", notice.out_trade_no, "received"
        )
        if not fresh:
            return "duplicate"
        refund = await svc.repo.get_refund(conn, notice.out_refund_no)
        if refund is None or refund.order_id != notice.out_trade_no:
            await svc.repo.set_notification_outcome(conn, channel_name, notification_id, "flagged")
            await svc.repo.flag(
                conn, "unknown_refund", channel_name, notice.out_trade_no,
                notice.out_refund_no, None, notice.refund_fen, "ignored: no such refund here",
            )  # fmt: skip
            return "flagged"
        await svc.repo.set_notification_outcome(conn, channel_name, notification_id, "refund")
    if notice.state == "succeeded" and channel_name == "alipay":
        # Alipay's refund_fee is the trade's cumulative refund: keep our own amount.
        notice = ChannelRefund(
            notice.out_trade_no,
            notice.out_refund_no,
            notice.refund_id,
            "succeeded",
            refund.amount_fen,
            notice.succeeded_at,
        )
    await finish_refund(svc, refund.id, notice)
    return "refund"


async def check_refund(svc: PaymentService, refund: Refund) -> None:
    """The closed loop for refunds: query; a refund the channel never saw is sent again."""
    channel = svc.channel(refund.channel)
    try:
        result = await channel.query_refund(refund.order_id, refund.id)
    except ChannelTradeNotFound:
        await submit_refund(svc, refund.id)
        return
    except PaymentError as exc:
        log.info("refund query failed: %s", exc.code, extra={"refund_id": refund.id})
        return
    await finish_refund(svc, refund.id, result)
