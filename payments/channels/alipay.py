"""``PaymentChannel`` adapter for the Alipay OpenAPI gateway (APP payment, RSA2).

Requests are form posts to ``/gateway.do`` with the common parameters (``app_id``,
``method``, ``charset=utf-8``, ``sign_type=RSA2``, ``timestamp``, ``version=1.0``) and a JSON
``biz_content``, signed with the app key; answers are verified with the Alipay public key.
``alipay.trade.app.pay`` makes no call: it is the signed order string the app SDK opens.
Amounts cross the wire as yuan strings, converted exactly to and from fen.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from payments.channels import alipay_bill, rsa
from payments.channels import alipay_signing as signing
from payments.channels.credentials import AlipayAppCredentials
from payments.channels.money import fen_to_yuan, yuan_to_fen
from payments.errors import (
    BillIntegrityFailed,
    CallbackBadSignature,
    CallbackMalformed,
    CallbackStale,
    ChannelBadSignature,
    ChannelRejected,
    ChannelTradeNotFound,
    ChannelUnavailable,
    InvalidAmount,
)
from payments.ports import (
    BillRow,
    ChannelName,
    ChannelNotification,
    ChannelOrder,
    ChannelPayment,
    ChannelRefund,
    ChannelTradeState,
    NotificationReply,
    TradeState,
)

if TYPE_CHECKING:
    from payments.ports import PaymentChannel

PRODUCTION_URL = "https://openapi.alipay.com/gateway.do"
BILL_HOSTS = frozenset({"dwbillcenter.alipay.com"})
BEIJING = dt.timezone(dt.timedelta(hours=8))
MAX_NOTIFICATION_AGE = dt.timedelta(minutes=5)
TRADE_STATES: dict[str, TradeState] = {
    "WAIT_BUYER_PAY": "pending",
    "TRADE_SUCCESS": "paid",
    "TRADE_FINISHED": "paid",
    "TRADE_CLOSED": "closed",
}
_TIME = "%Y-%m-%d %H:%M:%S"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _beijing(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.strptime(value, _TIME).replace(tzinfo=BEIJING).astimezone(dt.UTC)


class AlipayChannel:
    name: ChannelName = "alipay"

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: AlipayAppCredentials,
        *,
        notify_url: str,
        gateway_url: str = PRODUCTION_URL,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._http = http
        self._creds = credentials
        self._notify_url = notify_url
        self._gateway = gateway_url
        self._clock = clock

    def _common(self, method: str, biz: Mapping[str, Any]) -> dict[str, str]:
        return {
            "app_id": self._creds.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": self._clock().astimezone(BEIJING).strftime(_TIME),
            "version": "1.0",
            "notify_url": self._notify_url,
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }

    async def _call(self, method: str, biz: Mapping[str, Any]) -> dict[str, Any]:
        """Call the gateway; return the verified ``*_response`` of a ``10000`` answer."""
        params = self._common(method, biz)
        params["sign"] = signing.sign_params(params, self._creds.private_key)
        try:
            resp = await self._http.post(self._gateway, data=params)
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"Alipay unreachable: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise ChannelUnavailable(f"Alipay answered HTTP {resp.status_code}")
        try:
            raw, content, sign = signing.split_response(resp.content, method)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ChannelBadSignature("Alipay answered something that is not a response") from exc
        verified = sign is not None and rsa.verify(
            self._creds.alipay_public_key, raw.encode("utf-8"), sign
        )
        code = str(content.get("code", ""))
        if code == "10000" and not verified:
            raise ChannelBadSignature("Alipay response signature does not verify")
        if code != "10000":
            # Error answers may come unsigned; acting on them only ever means "not done".
            sub_code = str(content.get("sub_code", ""))
            detail = str(content.get("sub_msg") or content.get("msg") or "Alipay error")
            if sub_code == "ACQ.TRADE_NOT_EXIST":
                raise ChannelTradeNotFound(detail, channel_code=sub_code)
            if sub_code in ("ACQ.SYSTEM_ERROR", "aop.ACQ.SYSTEM_ERROR") or code == "20000":
                raise ChannelUnavailable(detail, channel_code=sub_code or code)
            raise ChannelRejected(detail, channel_code=sub_code or code)
        return content

    async def create(self, order: ChannelOrder) -> ChannelPayment:
        biz: dict[str, Any] = {
            "out_trade_no": order.out_trade_no,
            "total_amount": fen_to_yuan(order.total_fen),
            "subject": order.description,
            "product_code": "QUICK_MSECURITY_PAY",
        }
        if order.expires_at is not None:
            biz["time_expire"] = order.expires_at.astimezone(BEIJING).strftime(_TIME)
        params = self._common("alipay.trade.app.pay", biz)
        text = signing.order_string(params, self._creds.private_key)
        return ChannelPayment(
            "alipay", order.out_trade_no, order.out_trade_no, {"order_string": text}
        )

    async def query(self, out_trade_no: str) -> ChannelTradeState:
        try:
            data = await self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        except ChannelTradeNotFound:
            # Alipay learns of an app trade only when the payer opens it: not yet is pending.
            return ChannelTradeState(out_trade_no, "pending", "TRADE_NOT_EXIST", None, None)
        raw = str(data.get("trade_status", ""))
        try:
            amount = yuan_to_fen(str(data["total_amount"]))
        except (KeyError, InvalidAmount) as exc:
            raise ChannelRejected("Alipay trade has no valid total_amount") from exc
        paid = raw in ("TRADE_SUCCESS", "TRADE_FINISHED")
        return ChannelTradeState(
            out_trade_no=str(data.get("out_trade_no", out_trade_no)),
            state=TRADE_STATES.get(raw, "pending"),
            channel_state=raw,
            transaction_id=str(data.get("trade_no") or "") or None,
            amount_fen=amount,
            paid_at=_beijing(data.get("send_pay_date")) if paid else None,
        )

    async def close(self, out_trade_no: str) -> None:
        try:
            await self._call("alipay.trade.close", {"out_trade_no": out_trade_no})
        except ChannelTradeNotFound:
            return  # never opened by the payer: nothing to close

    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> ChannelRefund:
        biz = {
            "out_trade_no": out_trade_no,
            "refund_amount": fen_to_yuan(refund_fen),
            "out_request_no": out_refund_no,
            "refund_reason": reason,
        }
        data = await self._call("alipay.trade.refund", biz)
        # Success is synchronous; ``refund_fee`` is the trade's cumulative refund, not ours.
        if data.get("fund_change") not in ("Y", "N"):
            raise ChannelRejected("Alipay refund answer has no fund_change")
        return ChannelRefund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            refund_id=str(data.get("trade_no") or "") or None,
            state="succeeded",
            refund_fen=refund_fen,
            succeeded_at=_beijing(data.get("gmt_refund_pay")),
        )

    async def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefund:
        biz = {"out_trade_no": out_trade_no, "out_request_no": out_refund_no}
        data = await self._call("alipay.trade.fastpay.refund.query", biz)
        # Pitfall: an unknown refund is a "10000 Success" with no refund fields at all.
        if not data.get("refund_amount"):
            raise ChannelTradeNotFound("Alipay knows no such refund", channel_code="NO_REFUND")
        status = str(data.get("refund_status") or "REFUND_SUCCESS")
        return ChannelRefund(
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no,
            refund_id=str(data.get("trade_no") or "") or None,
            state="succeeded" if status == "REFUND_SUCCESS" else "processing",
            refund_fen=yuan_to_fen(str(data["refund_amount"])),
            succeeded_at=_beijing(data.get("gmt_refund_pay")),
        )

    def parse_notification(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> ChannelNotification:
        try:
            params = dict(
                parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
            )
        except (ValueError, UnicodeDecodeError) as exc:
            raise CallbackMalformed("notification is not a form") from exc
        if not signing.verify_params(
            params, self._creds.alipay_public_key, signing.NOTIFICATION_EXCLUDED
        ):
            raise CallbackBadSignature("notification signature does not verify")
        if params.get("app_id") != self._creds.app_id:
            raise CallbackBadSignature("notification is for another app")
        try:
            sent = _beijing(params.get("notify_time"))
            if sent is None:
                raise ValueError("notify_time missing")
            if abs(now - sent) > MAX_NOTIFICATION_AGE:
                raise CallbackStale("notify_time outside the 5-minute window")
            return self._notification(params)
        except (ValueError, KeyError, InvalidAmount) as exc:
            raise CallbackMalformed("notification fields are invalid") from exc

    @staticmethod
    def _notification(p: Mapping[str, str]) -> ChannelNotification:
        if p.get("out_biz_no") and p.get("refund_fee"):
            # Refund notice: ``refund_fee`` is cumulative for the trade (Alipay's semantics).
            refund = ChannelRefund(
                out_trade_no=p["out_trade_no"],
                out_refund_no=p["out_biz_no"],
                refund_id=p.get("trade_no") or None,
                state="succeeded",
                refund_fen=yuan_to_fen(p["refund_fee"]),
                succeeded_at=_beijing(p.get("gmt_refund")),
            )
            return ChannelNotification("alipay", p["notify_id"], "refund", refund=refund)
        raw = p["trade_status"]
        trade = ChannelTradeState(
            out_trade_no=p["out_trade_no"],
            state=TRADE_STATES.get(raw, "pending"),
            channel_state=raw,
            transaction_id=p.get("trade_no") or None,
            amount_fen=yuan_to_fen(p["total_amount"]),
            paid_at=_beijing(p.get("gmt_payment")),
        )
        return ChannelNotification("alipay", p["notify_id"], "payment", trade=trade)

    def notification_ack(self) -> NotificationReply:
        return NotificationReply(200, "text/plain; charset=utf-8", b"success")

    def notification_nack(self, message: str = "") -> NotificationReply:
        # Anything but the literal "success" makes Alipay deliver again.
        return NotificationReply(500, "text/plain; charset=utf-8", b"fail")

    async def download_bill(self, bill_date: dt.date) -> list[BillRow]:
        biz = {"bill_type": "trade", "bill_date": bill_date.isoformat()}
        try:
            data = await self._call("alipay.data.dataservice.bill.downloadurl.query", biz)
        except ChannelRejected as exc:
            if exc.extra.get("channel_code") == "isp.bill_not_exist":
                return []
            raise
        link = urlsplit(str(data.get("bill_download_url", "")))
        allowed = BILL_HOSTS | {urlsplit(self._gateway).netloc}
        if link.scheme not in ("http", "https") or link.netloc not in allowed:
            raise BillIntegrityFailed("bill download URL is not on an Alipay host")
        try:
            resp = await self._http.get(link.geturl())
        except httpx.HTTPError as exc:
            raise ChannelUnavailable("Alipay bill download failed") from exc
        if resp.status_code != 200:
            raise ChannelUnavailable(f"Alipay bill download answered {resp.status_code}")
        return alipay_bill.parse_trade_bill(resp.content)


if TYPE_CHECKING:

    def _conforms(channel: AlipayChannel) -> PaymentChannel:
        return channel  # mypy checks the adapter against the port
