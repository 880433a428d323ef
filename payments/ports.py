"""The port between the payment service and the outside payment channels.

One ``PaymentChannel`` per channel (WeChat Pay API v3, Alipay OpenAPI, ...). Adapters translate
the channel's wire format into these small, channel-neutral dataclasses. Money is an integer
number of fen everywhere; times are timezone-aware UTC.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

ChannelName = Literal["wechatpay", "alipay"]

# Normalised trade states: what the service needs to decide, whatever the channel calls it.
#   pending  - created, the payer has not paid (WeChat NOTPAY, Alipay WAIT_BUYER_PAY, or an
#              Alipay trade the payer has not opened yet)
#   paying   - the payer is entering a password (WeChat USERPAYING)
#   paid     - money received (WeChat SUCCESS, Alipay TRADE_SUCCESS / TRADE_FINISHED)
#   refunded - paid, then (partly) refunded (WeChat REFUND)
#   closed   - closed before payment (WeChat CLOSED, Alipay TRADE_CLOSED)
#   failed   - the payment failed (WeChat PAYERROR)
TradeState = Literal["pending", "paying", "paid", "refunded", "closed", "failed"]

# Normalised refund states (WeChat PROCESSING/SUCCESS/CLOSED/ABNORMAL, Alipay REFUND_SUCCESS).
RefundState = Literal["processing", "succeeded", "closed", "abnormal"]


@dataclass(frozen=True, slots=True)
class ChannelOrder:
    """What a channel needs to open a trade."""

    out_trade_no: str  # our order id, unique per merchant
    description: str  # shown to the payer in the channel app
    total_fen: int
    expires_at: dt.datetime | None = None
    # WeChat JSAPI (inside WeChat) needs the payer's openid; without it the APP flow is used.
    payer_openid: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelPayment:
    """What the mobile app needs to invoke the channel's payment sheet."""

    channel: ChannelName
    out_trade_no: str
    # The channel's handle on the pending trade: WeChat prepay_id, Alipay out_trade_no.
    reference: str
    # Signed parameters handed to the channel SDK unchanged (WeChat app/JSAPI pay params,
    # Alipay ``{"order_string": ...}``).
    client_params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ChannelTradeState:
    out_trade_no: str
    state: TradeState
    channel_state: str  # the channel's own word, for logs and support
    transaction_id: str | None  # WeChat transaction_id, Alipay trade_no
    amount_fen: int | None
    paid_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ChannelRefund:
    out_trade_no: str
    out_refund_no: str
    refund_id: str | None  # the channel's refund id (Alipay has none: uses trade_no)
    state: RefundState
    refund_fen: int
    succeeded_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class ChannelNotification:
    """A verified (and for WeChat decrypted) asynchronous notification."""

    channel: ChannelName
    notification_id: str  # stable across redeliveries: dedupe on it
    kind: Literal["payment", "refund"]
    trade: ChannelTradeState | None = None
    refund: ChannelRefund | None = None


@dataclass(frozen=True, slots=True)
class NotificationReply:
    """The exact HTTP answer the channel expects to stop (ack) or continue (nack) retrying."""

    status: int
    content_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class BillRow:
    """One line of a channel's daily trade bill, for reconciliation."""

    kind: Literal["payment", "refund"]
    out_trade_no: str
    transaction_id: str
    amount_fen: int  # payment: amount received; refund: amount refunded
    occurred_at: dt.datetime
    out_refund_no: str | None = None
    refund_id: str | None = None
    fee_fen: int = 0
    extra: Mapping[str, str] = field(default_factory=dict)


class PaymentChannel(Protocol):
    """A payment channel as the payment service sees it."""

    name: ChannelName

    async def create(self, order: ChannelOrder) -> ChannelPayment: ...

    async def query(self, out_trade_no: str) -> ChannelTradeState: ...

    async def close(self, out_trade_no: str) -> None: ...

    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> ChannelRefund: ...

    async def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefund: ...

    def parse_notification(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> ChannelNotification: ...

    def notification_ack(self) -> NotificationReply: ...

    def notification_nack(self, message: str = "") -> NotificationReply: ...

    async def download_bill(self, bill_date: dt.date) -> list[BillRow]: ...
