"""Payment use cases: merchants, orders (idempotent create), paying through a channel,
channel notifications, closing. Refunds live in ``refunds.py``, the closed loop in ``loop.py``.

Every state change, its ledger postings and its merchant event (outbox) commit in one
transaction; channel calls happen outside transactions. The order row is the lock that
serialises everything that can happen to one order (callbacks, polls, refunds, closes).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from identity.errors import Forbidden, NotFound, ValidationError
from identity.ids import new_id
from identity.tokens import TokenService
from payments.domain import (
    CHANNELS,
    DEFAULT_EXPIRES_IN,
    MAX_AMOUNT_FEN,
    MIN_AMOUNT_FEN,
    OPEN_STATES,
    PAID_STATES,
    Event,
    Merchant,
    Order,
    Refund,
    iso,
)
from payments.errors import (
    ChannelNotConfigured,
    ChannelRejected,
    ChannelTradeNotFound,
    DuplicateOutTradeNo,
    EventNotFound,
    IdempotencyConflict,
    IdempotencyInFlight,
    InvalidAmount,
    OrderNotClosable,
    OrderNotFound,
    OrderNotPayable,
)
from payments.ledger import Journal, Ledger, transfer
from payments.ports import ChannelOrder, ChannelTradeState, NotificationReply, PaymentChannel
from payments.repository import PaymentsRepository

log = logging.getLogger("superapp.payments")

_NO = re.compile(r"^[A-Za-z0-9_\-|*@.]{1,64}$")
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _text(field: str, value: object, max_len: int, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise ValidationError(field, "This field is required.")
        return None
    if not isinstance(value, str) or len(value) > max_len or not value.strip():
        raise ValidationError(field, f"Must be a string of at most {max_len} characters.")
    return value.strip()


def _url(field: str, value: object) -> str | None:
    text = _text(field, value, 512, required=False)
    if text is None:
        return None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(field, "Must be an http(s) URL.")
    return text


def parse_amount(value: object, field: str = "amount_fen") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAmount("The amount must be a whole number of fen.", field=field)
    if not MIN_AMOUNT_FEN <= value <= MAX_AMOUNT_FEN:
        raise InvalidAmount(
            f"The amount must be from {MIN_AMOUNT_FEN} to {MAX_AMOUNT_FEN} fen.", field=field
        )
    return value


def parse_no(field: str, value: object) -> str:
    if not isinstance(value, str) or not _NO.match(value):
        raise ValidationError(field, "Use 1 to 64 letters, digits or _-|*@.")
    return value


def request_hash(body: Mapping[str, Any]) -> bytes:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).digest()


class PaymentService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        repo: PaymentsRepository,
        ledger: Ledger,
        channels: dict[str, PaymentChannel],
        tokens: TokenService,
        *,
        poll_interval: dt.timedelta = dt.timedelta(seconds=30),
        http: Any = None,
    ) -> None:
        self.http = http  # the channels' and webhooks' HTTP client, closed with the service
        self.pool = pool
        self.repo = repo
        self.ledger = ledger
        self.channels = channels
        self.tokens = tokens
        self.poll_interval = poll_interval
        self._merchants: set[str] = set()  # client ids known to have a merchant record

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    def channel(self, name: object) -> PaymentChannel:
        if not isinstance(name, str) or name not in CHANNELS:
            raise ValidationError("channel", f"Must be one of {', '.join(CHANNELS)}.")
        found = self.channels.get(name)
        if found is None:
            raise ChannelNotConfigured(f"The {name} channel is not configured.")
        return found

    # merchants ---------------------------------------------------------------------------

    async def merchant(self, client_id: str, unit_id: str, name: str | None = None) -> Merchant:
        """The merchant record of a client, created on first use with a webhook secret."""
        async with self.pool.acquire() as conn:
            found = await self.repo.get_merchant(conn, client_id)
            if found is not None:
                return found
            secret = "whsec_" + secrets.token_urlsafe(32)
            return await self.repo.ensure_merchant(
                conn, client_id, unit_id, name or client_id, secret
            )

    async def update_merchant(
        self, client_id: str, unit_id: str, body: Mapping[str, Any]
    ) -> Merchant:
        await self.merchant(client_id, unit_id)
        fields: dict[str, str | None] = {}
        for key, limit in (
            ("name", 128),
            ("settlement_account_name", 128),
            ("settlement_bank", 128),
        ):
            if key in body:
                fields[key] = _text(key, body[key], limit)
        if "settlement_account_no" in body:
            no = _text("settlement_account_no", body["settlement_account_no"], 34)
            if no is not None and not no.replace(" ", "").isalnum():
                raise ValidationError("settlement_account_no", "Use letters and digits only.")
            fields["settlement_account_no"] = no
        if "webhook_url" in body:
            fields["webhook_url"] = _url("webhook_url", body["webhook_url"])
        if body.get("rotate_webhook_secret") is True:
            fields["webhook_secret"] = "whsec_" + secrets.token_urlsafe(32)
        async with self.pool.acquire() as conn:
            return await self.repo.update_merchant(conn, client_id, fields)

    # orders ------------------------------------------------------------------------------

    async def _ensure_merchant(self, client_id: str, unit_id: str) -> None:
        if client_id not in self._merchants:
            await self.merchant(client_id, unit_id)
            self._merchants.add(client_id)

    async def create_order(
        self, client_id: str, unit_id: str, idempotency_key: str | None, body: Mapping[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """Create an order; with an Idempotency-Key a replay returns the first response."""
        if idempotency_key is not None and not _KEY.match(idempotency_key):
            raise ValidationError("Idempotency-Key", "Must be 1 to 255 printable characters.")
        out_trade_no = parse_no("out_trade_no", body.get("out_trade_no"))
        amount = parse_amount(body.get("amount_fen"))
        subject = _text("subject", body.get("subject"), 127)
        notify_url = _url("notify_url", body.get("notify_url"))
        currency = body.get("currency", "CNY")
        if currency != "CNY":
            raise ValidationError("currency", "Only CNY is supported.")
        expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int):
            raise ValidationError("expires_in", "Must be a whole number of seconds.")
        if not 60 <= expires_in <= 7 * 86400:
            raise ValidationError("expires_in", "Must be from 60 seconds to 7 days.")
        payer = _text("payer", body.get("payer"), 64, required=False)
        await self._ensure_merchant(client_id, unit_id)
        now = utcnow()
        order = Order(
            id=new_id("ord"),
            merchant_id=client_id,
            out_trade_no=out_trade_no,
            amount_fen=amount,
            currency="CNY",
            subject=subject or "",
            notify_url=notify_url,
            payer_sub=payer,
            status="created",
            channel=None,
            channel_reference=None,
            transaction_id=None,
            refunded_fen=0,
            refunding_fen=0,
            expires_at=now + dt.timedelta(seconds=expires_in),
            paid_at=None,
            closed_at=None,
            created_at=now,
            updated_at=now,
        )
        response = order.public()
        if idempotency_key is None:
            async with self.pool.acquire() as conn:
                if not await self.repo.insert_order(conn, order):
                    raise DuplicateOutTradeNo(f"An order with out_trade_no {out_trade_no} exists.")
            return 201, response
        # Stripe-style: the key row and the order in one statement (one transaction), under
        # the key's advisory lock, tried without waiting: a duplicate while the first is in
        # flight is a 409; after it committed, its response is replayed. Nothing is half done.
        digest = request_hash(body)
        async with self.pool.acquire() as conn:
            try:
                fresh = await self.repo.insert_order_with_key(
                    conn, order, idempotency_key, digest, 201, response
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "pay_orders_merchant_id_out_trade_no_key":
                    raise
                raise DuplicateOutTradeNo(
                    f"An order with out_trade_no {out_trade_no} exists."
                ) from None
            if fresh is None:
                raise IdempotencyInFlight("A request with this key is still in progress.")
            if fresh:
                return 201, response
            seen = await self.repo.get_key(conn, client_id, idempotency_key)
        if seen is None:
            # Seen at insert time, gone now: only a purge (keys are kept 48 h) could do that.
            raise IdempotencyInFlight("A request with this key is still in progress.")
        if not secrets.compare_digest(bytes(seen["request_hash"]), digest):
            raise IdempotencyConflict("This Idempotency-Key was used with a different body.")
        stored = seen["response"]
        return seen["status"], (json.loads(stored) if isinstance(stored, str) else stored)

    async def order_for_merchant(self, client_id: str, order_id: str) -> Order:
        async with self.pool.acquire() as conn:
            order = await self.repo.get_order(conn, order_id)
        if order is None or order.merchant_id != client_id:
            raise OrderNotFound("No such order for this merchant.")
        return order

    async def order_by_out_trade_no(self, client_id: str, out_trade_no: str) -> Order:
        async with self.pool.acquire() as conn:
            order = await self.repo.get_order_by_out_trade_no(conn, client_id, out_trade_no)
        if order is None:
            raise OrderNotFound("No such order for this merchant.")
        return order

    async def list_orders(
        self, client_id: str, status: str | None, before: dt.datetime | None, limit: int
    ) -> list[Order]:
        if status is not None and status not in (*OPEN_STATES, *PAID_STATES, "closed"):
            raise ValidationError("status", "Unknown order status.")
        async with self.pool.acquire() as conn:
            return await self.repo.list_orders(
                conn, merchant_id=client_id, status=status, before=before, limit=limit
            )

    async def order_for_payer(self, sub: str, order_id: str) -> Order:
        async with self.pool.acquire() as conn:
            order = await self.repo.get_order(conn, order_id)
        if order is None or (order.payer_sub not in (None, sub)):
            raise OrderNotFound("No such order.")
        return order

    async def refunds(self, order_id: str) -> list[Refund]:
        async with self.pool.acquire() as conn:
            return await self.repo.refunds_of(conn, [order_id])

    # paying ------------------------------------------------------------------------------

    async def pay(self, sub: str, order_id: str, channel_name: object) -> dict[str, Any]:
        """Open the order at the chosen channel; return the parameters for the channel SDK."""
        channel = self.channel(channel_name)
        order = await self.order_for_payer(sub, order_id)
        self._check_payable(order)
        if order.channel and order.channel != channel.name:
            # Switching channels: close the other trade first so that it cannot be paid too.
            await self._close_at_channel(order, order.channel)
        payment = await channel.create(
            ChannelOrder(order.id, order.subject, order.amount_fen, order.expires_at)
        )
        # Two-phase: a pending hold while the payer is in the channel's app. The guarded
        # UPDATE (still payable, this payer) and the hold: one statement, one transaction.
        hold = Journal(
            f"hold:{order.id}",
            "hold",
            transfer("pending_clearing", f"pending_payable:{order.merchant_id}", order.amount_fen),
            order_id=order.id,
        )
        now = utcnow()
        async with self.pool.acquire() as conn:
            # With the hold's accounts, those the callback's one-statement credit needs.
            await self.ledger.ensure_account_codes(
                conn,
                [
                    *(p.account for p in hold.postings),
                    f"merchant_payable:{order.merchant_id}",
                    f"channel_clearing:{channel.name}",
                ],
            )
            updated = await self.repo.start_paying(
                conn,
                order_id,
                payer_sub=sub,
                channel=channel.name,
                channel_reference=payment.reference,
                now=now,
                next_check_at=now + self.poll_interval,
                hold=hold,
            )
            if updated is None:
                # Changed meanwhile: say why, from the locked row.
                async with conn.transaction():
                    order = await self._locked(conn, order_id)
                    self._check_payable(order)
                    if order.payer_sub not in (None, sub):
                        raise Forbidden("This order belongs to another payer.")
                    raise OrderNotPayable(f"The order is {order.status}.")
            order = updated
        return {
            "order_id": order.id,
            "channel": channel.name,
            "reference": payment.reference,
            "client_params": dict(payment.client_params),
            "expires_at": iso(order.expires_at),
        }

    def _check_payable(self, order: Order) -> None:
        if order.status not in OPEN_STATES:
            raise OrderNotPayable(f"The order is {order.status}.")
        if order.expires_at <= utcnow():
            raise OrderNotPayable("The order has expired.")

    async def _locked(self, conn: asyncpg.Connection, order_id: str) -> Order:
        order = await self.repo.get_order(conn, order_id, for_update=True)
        if order is None:
            raise OrderNotFound("No such order.")
        return order

    # closing -----------------------------------------------------------------------------

    async def close(self, client_id: str, order_id: str) -> Order:
        order = await self.order_for_merchant(client_id, order_id)
        return await self.close_order(order, reason="merchant")

    async def close_order(self, order: Order, reason: str) -> Order:
        """Close at the channel first (so no payment can land), then here."""
        if order.status == "closed":
            return order
        if order.status not in OPEN_STATES:
            raise OrderNotClosable(f"The order is {order.status}.")
        if order.channel:
            await self._close_at_channel(order, order.channel)
        async with self.pool.acquire() as conn, conn.transaction():
            order = await self._locked(conn, order.id)
            if order.status != "closed" and order.status not in OPEN_STATES:
                raise OrderNotClosable(f"The order is {order.status}.")
            if order.status in OPEN_STATES:
                was = order.status
                order = await self.repo.update_order(
                    conn, order.id, status="closed", closed_at=utcnow(), next_check_at=None
                )
                await self._void_hold(conn, order, was)
                await self.emit(conn, order, "order.closed", {"reason": reason})
        return order

    async def _close_at_channel(self, order: Order, channel_name: str) -> None:
        channel = self.channel(channel_name)
        try:
            await channel.close(order.id)
        except ChannelTradeNotFound:
            return
        except ChannelRejected:
            # Typically "already paid": learn the truth from the channel and act on it.
            trade = await channel.query(order.id)
            if trade.state == "paid":
                await self.apply_trade(channel_name, trade, f"query:{trade.transaction_id}")
                raise OrderNotClosable("The order was paid in the meantime.") from None
            raise

    async def _void_hold(self, conn: asyncpg.Connection, order: Order, was: str) -> None:
        void = self._void_journal(order, was)
        if void is not None:
            await self.ledger.post_all(conn, [void])

    @staticmethod
    def _void_journal(order: Order, was: str) -> Journal | None:
        # A hold exists exactly when the order went to ``paying`` (posted in the same tx).
        if was != "paying":
            return None
        return Journal(
            f"void:{order.id}",
            "void",
            transfer(f"pending_payable:{order.merchant_id}", "pending_clearing", order.amount_fen),
            order_id=order.id,
        )

    # notifications from the channels -------------------------------------------------------

    async def handle_notification(
        self, channel_name: str, headers: Mapping[str, str], body: bytes
    ) -> NotificationReply:
        """Verify (raises ``callback-*``), persist, act once, and give the channel's ack."""
        channel = self.channel(channel_name)
        note = channel.parse_notification(headers, body, utcnow())
        if note.kind == "payment" and note.trade is not None:
            # Answer fast: a stray payment's refund is sent by the background loop.
            await self.apply_trade(channel_name, note.trade, note.notification_id, submit=False)
        elif note.kind == "refund" and note.refund is not None:
            from payments.refunds import apply_refund_notice

            await apply_refund_notice(self, channel_name, note.notification_id, note.refund)
        return channel.notification_ack()

    async def apply_trade(
        self, channel_name: str, trade: ChannelTradeState, source_id: str, *, submit: bool = True
    ) -> str:
        """Act on what a channel says about a trade (callback, query or bill); idempotent."""
        stray: Refund | None = None
        paid = trade.state == "paid" and bool(trade.transaction_id)
        if paid and await self._credit_fast(channel_name, trade, source_id):
            return "credited"
        async with self.pool.acquire() as conn, conn.transaction():
            # Record the notification (once) and lock its order: one round trip.
            fresh, order = await self.repo.record_notification(
                conn,
                channel_name,
                source_id,
                "payment",
                trade.out_trade_no,
                "received",
                lock_order=paid,
            )
            if not fresh:
                return "duplicate"
            if paid:
                outcome, stray, noted = await self._apply_paid(
                    conn, channel_name, trade, source_id, order
                )
            else:
                outcome, noted = "ignored", False
            if not noted:
                await self.repo.set_notification_outcome(conn, channel_name, source_id, outcome)
        if stray is not None and submit:
            from payments.refunds import submit_refund

            await submit_refund(self, stray.id)
        return outcome

    async def _apply_paid(
        self,
        conn: asyncpg.Connection,
        channel_name: str,
        trade: ChannelTradeState,
        source_id: str,
        order: Order | None,
    ) -> tuple[str, Refund | None, bool]:
        """(outcome, stray refund, whether the notification's outcome was recorded here) for
        a paid trade; ``order`` is locked by the caller."""
        assert trade.transaction_id
        if order is None:
            await self.repo.flag(
                conn, "unknown_order", channel_name, None, trade.transaction_id, None,
                trade.amount_fen, "not credited: no such order here (merchant mismatch)",
            )  # fmt: skip
            return "flagged", None, False
        if trade.amount_fen != order.amount_fen:
            await self.repo.flag(
                conn, "amount_mismatch", channel_name, order.id, trade.transaction_id,
                order.amount_fen, trade.amount_fen, "not credited: amount differs from the order",
            )  # fmt: skip
            log.warning(
                "payment amount mismatch",
                extra={"order_id": order.id, "channel": channel_name},
            )
            return "flagged", None, False
        if order.status in OPEN_STATES:
            paid, journals, event_id, payload = self._credit_parts(order, channel_name, trade)
            await self.ledger.ensure_accounts(conn, journals)
            # The state change, the hold's void, the payment, the outbox row (if there is a
            # webhook URL) and the notification's outcome: one statement.
            await self.repo.mark_paid(
                conn,
                paid,
                journals,
                event_id,
                payload,
                note=(channel_name, source_id, "credited"),
            )
            return "credited", None, True
        if order.transaction_id == trade.transaction_id and order.channel == channel_name:
            return "duplicate", None, False
        stray = await self._stray(conn, order, channel_name, trade)
        return "stray", stray, False

    def _credit_parts(
        self, order: Order, channel_name: str, trade: ChannelTradeState
    ) -> tuple[Order, list[Journal], str, dict[str, Any]]:
        """For an open order the channel says is paid: the paid order, its journals (the
        hold's void if it was ``paying``, the payment), the event id and its payload."""
        assert trade.transaction_id
        paid_at = trade.paid_at or utcnow()
        payment = Journal(
            f"payment:{channel_name}:{trade.transaction_id}",
            "payment",
            transfer(
                f"channel_clearing:{channel_name}",
                f"merchant_payable:{order.merchant_id}",
                order.amount_fen,
            ),
            order_id=order.id,
            channel=channel_name,
            external_id=trade.transaction_id,
            occurred_at=paid_at,
        )
        void = self._void_journal(order, order.status)
        paid = replace(
            order,
            status="paid",
            channel=channel_name,
            transaction_id=trade.transaction_id,
            paid_at=paid_at,
        )
        event_id = new_id("evt")
        payload = {
            "id": event_id,
            "type": "payment.succeeded",
            "created_at": iso(utcnow()),
            "data": {"order": paid.public()},
        }
        return paid, ([payment] if void is None else [void, payment]), event_id, payload

    async def _credit_fast(
        self, channel_name: str, trade: ChannelTradeState, source_id: str
    ) -> bool:
        """The common case in one round trip: an open order of this amount, a notification
        not seen before, credited in one statement that reads and writes the order. False
        (nothing written) sends the caller to the locked path, which handles everything."""
        assert trade.transaction_id
        if trade.amount_fen is None:
            return False
        async with self.pool.acquire() as conn:
            await self.ledger.ensure_account_codes(
                conn, [f"channel_clearing:{channel_name}", "pending_clearing"]
            )
            try:
                return await self.repo.credit_open_order(
                    conn,
                    order_id=trade.out_trade_no,
                    channel=channel_name,
                    transaction_id=trade.transaction_id,
                    amount_fen=trade.amount_fen,
                    paid_at=trade.paid_at or utcnow(),
                    notification_id=source_id,
                    event_id=new_id("evt"),
                    event_created_at=iso(utcnow()) or "",
                )
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != "pay_notifications_pkey":
                    raise
                return False

    async def _stray(
        self, conn: asyncpg.Connection, order: Order, channel_name: str, trade: ChannelTradeState
    ) -> Refund | None:
        """Money for a closed or already paid order: book it apart and give it back."""
        assert trade.transaction_id and trade.amount_fen
        posted = await self.ledger.post(
            conn,
            f"stray:{channel_name}:{trade.transaction_id}",
            "stray",
            transfer(
                f"channel_clearing:{channel_name}",
                f"stray_payments:{channel_name}",
                trade.amount_fen,
            ),
            order_id=order.id,
            channel=channel_name,
            external_id=trade.transaction_id,
            occurred_at=trade.paid_at,
        )
        if not posted:
            return None
        refund = await self.repo.insert_refund(
            conn,
            order_id=order.id,
            merchant_id=order.merchant_id,
            out_refund_no="stray-" + trade.transaction_id[-40:],
            amount_fen=trade.amount_fen,
            reason="payment for a closed or already paid order",
            kind="stray",
            channel=channel_name,
            transaction_id=trade.transaction_id,
        )
        await self.ledger.post(
            conn,
            f"refund_request:{refund.id}",
            "refund_request",
            transfer(
                f"stray_payments:{channel_name}",
                f"refunds_in_flight:{channel_name}",
                refund.amount_fen,
            ),
            order_id=order.id,
            channel=channel_name,
            external_id=refund.id,
        )
        await self.repo.flag(
            conn, "stray_payment", channel_name, order.id, trade.transaction_id,
            None, trade.amount_fen, f"refunded automatically ({refund.id})",
        )  # fmt: skip
        log.warning(
            "stray payment refunded",
            extra={"order_id": order.id, "channel": channel_name, "refund_id": refund.id},
        )
        return refund

    # merchant events (outbox) ---------------------------------------------------------------

    async def emit(
        self,
        conn: asyncpg.Connection,
        order: Order,
        type_: str,
        data: dict[str, Any],
        refund: Refund | None = None,
        *,
        note: tuple[str, str, str] | None = None,
    ) -> bool:
        """Write the merchant event to the outbox (if the merchant has a webhook URL).

        ``note`` (channel, notification id, outcome) records a channel notification's outcome
        in the same statement; returns whether it was recorded.
        """
        url = order.notify_url
        if not url:
            merchant = await self.repo.get_merchant(conn, order.merchant_id)
            url = merchant.webhook_url if merchant else None
        if not url:
            return False
        event_id = new_id("evt")
        payload: dict[str, Any] = {
            "id": event_id,
            "type": type_,
            "created_at": iso(utcnow()),
            "data": {"order": order.public(), **data},
        }
        if refund is not None:
            payload["data"]["refund"] = refund.public()
        await self.repo.insert_event(
            conn, order.merchant_id, type_, order.id, url, payload, event_id, note=note
        )
        return note is not None

    async def events(self, client_id: str, status: str | None, limit: int) -> list[Event]:
        async with self.pool.acquire() as conn:
            return await self.repo.list_events(conn, client_id, status, limit)

    async def redeliver(self, client_id: str, event_id: str) -> Event:
        async with self.pool.acquire() as conn:
            event = await self.repo.get_event(conn, event_id)
            if event is None or event.merchant_id != client_id:
                raise EventNotFound("No such event for this merchant.")
            return await self.repo.redeliver_event(conn, event_id)

    async def trial_balance(self) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            tb = await self.ledger.trial_balance(conn)
        return {
            "balanced": tb.balanced,
            "total_debits_fen": tb.total_debits_fen,
            "total_credits_fen": tb.total_credits_fen,
            "unbalanced_transactions": tb.unbalanced_transactions,
            "accounts": [
                {
                    "code": a.code,
                    "kind": a.kind,
                    "currency": a.currency,
                    "debits_fen": a.debits_fen,
                    "credits_fen": a.credits_fen,
                    "balance_fen": a.balance_fen,
                }
                for a in tb.accounts
            ],
        }

    async def account_history(self, code: str, limit: int) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            entries = await self.ledger.history(conn, code, limit)
        if not entries:
            raise NotFound("No such ledger account, or no entries yet.")
        return {
            "account": code,
            "balance_fen": entries[0]["balance_fen"],
            "entries": [
                {**e, "created_at": iso(e["created_at"])}  # type: ignore[arg-type]
                for e in entries
            ],
        }

    # the citizen's view ----------------------------------------------------------------------

    async def my_orders(
        self, sub: str, limit: int, before: dt.datetime | None
    ) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            orders = await self.repo.list_orders(conn, payer_sub=sub, before=before, limit=limit)
            refunds = await self.repo.refunds_of(conn, [o.id for o in orders])
        by_order: dict[str, list[Refund]] = {}
        for r in refunds:
            if r.kind == "merchant":
                by_order.setdefault(r.order_id, []).append(r)
        return [self.citizen_view(o, by_order.get(o.id, [])) for o in orders]

    def citizen_view(self, order: Order, refunds: list[Refund]) -> dict[str, Any]:
        view = order.public()
        view.pop("notify_url", None)
        view["refunds"] = [r.public() for r in refunds]
        view["receipt"] = self.receipt(order) if order.status in PAID_STATES else None
        return view

    def receipt(self, order: Order) -> dict[str, Any]:
        """A receipt the citizen can show anyone: the facts, signed by the platform key."""
        facts = {
            "order_id": order.id,
            "merchant_id": order.merchant_id,
            "subject": order.subject,
            "amount_fen": order.amount_fen,
            "currency": order.currency,
            "channel": order.channel,
            "transaction_id": order.transaction_id,
            "paid_at": iso(order.paid_at),
        }
        token = self.tokens.sign(
            {"sub": order.payer_sub or "", "receipt": facts},
            typ="payment-receipt+jwt",
            ttl=10 * 365 * 86400,
        )
        return {**facts, "token": token}
