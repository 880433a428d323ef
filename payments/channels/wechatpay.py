"""``PaymentChannel`` adapter for WeChat Pay API v3 (direct merchant, APP and JSAPI payment).

Every request is signed ``WECHATPAY2-SHA256-RSA2048`` with the merchant key; every response
is verified against the platform public key before its content is used. Endpoints:
``POST /v3/pay/transactions/{app,jsapi}``, ``GET /v3/pay/transactions/out-trade-no/{no}``,
``POST .../close``, ``POST /v3/refund/domestic/refunds``,
``GET /v3/refund/domestic/refunds/{out_refund_no}``, ``GET /v3/bill/tradebill``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import httpx

from payments.channels import wechatpay_bill, wechatpay_notifications
from payments.channels import wechatpay_signing as signing
from payments.channels.credentials import WechatPayMerchantCredentials
from payments.errors import (
    BillIntegrityFailed,
    CallbackBadSignature,
    CallbackStale,
    ChannelBadSignature,
    ChannelRejected,
    ChannelTradeNotFound,
    ChannelUnavailable,
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
)

if TYPE_CHECKING:
    from payments.ports import PaymentChannel

PRODUCTION_URL = "https://api.mch.weixin.qq.com"
_BEIJING = dt.timezone(dt.timedelta(hours=8))
_NOT_FOUND = {"ORDER_NOT_EXIST", "RESOURCE_NOT_EXISTS"}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class WechatPayChannel:
    name: ChannelName = "wechatpay"

    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: WechatPayMerchantCredentials,
        *,
        notify_url: str,
        refund_notify_url: str | None = None,
        base_url: str = PRODUCTION_URL,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._http = http
        self._creds = credentials
        self._notify_url = notify_url
        self._refund_notify_url = refund_notify_url or notify_url
        self._base = base_url.rstrip("/")
        self._clock = clock

    async def _call(
        self, method: str, url: str, payload: Mapping[str, Any] | None = None
    ) -> tuple[int, bytes]:
        """Send a signed request; return the verified (status, body) of a 2xx answer."""
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")) if payload else ""
        auth = signing.authorization(
            mchid=self._creds.mchid,
            serial_no=self._creds.serial_no,
            key=self._creds.private_key,
            method=method,
            url=url,
            body=body,
            timestamp=str(int(self._clock().timestamp())),
        )
        headers = {"Authorization": auth, "Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            resp = await self._http.request(
                method, self._base + url, content=body.encode(), headers=headers
            )
        except httpx.HTTPError as exc:
            raise ChannelUnavailable(f"WeChat Pay unreachable: {type(exc).__name__}") from exc
        content = resp.content
        if resp.status_code >= 500:
            raise ChannelUnavailable(f"WeChat Pay answered {resp.status_code}")
        try:
            keys = self._creds.platform_public_keys
            signing.verify_signed(resp.headers, content, keys, self._clock())
        except (CallbackBadSignature, CallbackStale) as exc:
            raise ChannelBadSignature(f"WeChat Pay response: {exc.detail}") from exc
        if resp.status_code >= 400:
            try:
                error = json.loads(content)
                code, message = str(error.get("code")), str(error.get("message"))
            except (ValueError, AttributeError):
                code, message = "UNKNOWN", "unparseable error"
            if code in _NOT_FOUND:
                raise ChannelTradeNotFound(message, channel_code=code)
            raise ChannelRejected(message, channel_code=code, status=resp.status_code)
        return resp.status_code, content

    async def _json(
        self, method: str, url: str, payload: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        _, content = await self._call(method, url, payload)
        try:
            data = json.loads(content)
        except ValueError as exc:
            raise ChannelRejected("WeChat Pay answered non-JSON") from exc
        if not isinstance(data, dict):
            raise ChannelRejected("WeChat Pay answered a non-object")
        return data

    async def create(self, order: ChannelOrder) -> ChannelPayment:
        payload: dict[str, Any] = {
            "appid": self._creds.appid,
            "mchid": self._creds.mchid,
            "description": order.description,
            "out_trade_no": order.out_trade_no,
            "notify_url": self._notify_url,
            "amount": {"total": order.total_fen, "currency": "CNY"},
        }
        if order.expires_at is not None:
            expires = order.expires_at.astimezone(_BEIJING).replace(microsecond=0)
            payload["time_expire"] = expires.isoformat("T")  # yyyy-MM-DDTHH:mm:ss+08:00
        kind = "jsapi" if order.payer_openid else "app"
        if order.payer_openid:
            payload["payer"] = {"openid": order.payer_openid}
        data = await self._json("POST", f"/v3/pay/transactions/{kind}", payload)
        prepay_id = str(data.get("prepay_id") or "")
        if not prepay_id:
            raise ChannelRejected("WeChat Pay returned no prepay_id")
        ts, nonce = str(int(self._clock().timestamp())), signing.nonce()
        key, appid = self._creds.private_key, self._creds.appid
        params = (
            signing.jsapi_pay_params(appid, prepay_id, key, ts, nonce)
            if kind == "jsapi"
            else signing.app_pay_params(appid, self._creds.mchid, prepay_id, key, ts, nonce)
        )
        return ChannelPayment("wechatpay", order.out_trade_no, prepay_id, params)

    async def query(self, out_trade_no: str) -> ChannelTradeState:
        url = (
            f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}"
            f"?mchid={self._creds.mchid}"
        )
        return wechatpay_notifications.trade_state(await self._json("GET", url))

    async def close(self, out_trade_no: str) -> None:
        url = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close"
        await self._call("POST", url, {"mchid": self._creds.mchid})

    async def refund(
        self, out_trade_no: str, out_refund_no: str, refund_fen: int, total_fen: int, reason: str
    ) -> ChannelRefund:
        payload = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "reason": reason,
            "notify_url": self._refund_notify_url,
            "amount": {"refund": refund_fen, "total": total_fen, "currency": "CNY"},
        }
        data = await self._json("POST", "/v3/refund/domestic/refunds", payload)
        return self._refund(data)

    async def query_refund(self, out_trade_no: str, out_refund_no: str) -> ChannelRefund:
        url = f"/v3/refund/domestic/refunds/{quote(out_refund_no, safe='')}"
        return self._refund(await self._json("GET", url))

    @staticmethod
    def _refund(data: Mapping[str, Any]) -> ChannelRefund:
        try:
            return wechatpay_notifications.refund_state(data)
        except (ValueError, KeyError) as exc:
            raise ChannelRejected("WeChat Pay refund object is malformed") from exc

    def parse_notification(
        self, headers: Mapping[str, str], body: bytes, now: dt.datetime
    ) -> ChannelNotification:
        return wechatpay_notifications.parse_notification(self._creds, headers, body, now)

    def notification_ack(self) -> NotificationReply:
        return wechatpay_notifications.ACK

    def notification_nack(self, message: str = "") -> NotificationReply:
        return wechatpay_notifications.nack(message)

    async def download_bill(self, bill_date: dt.date) -> list[BillRow]:
        url = f"/v3/bill/tradebill?bill_date={bill_date.isoformat()}&bill_type=ALL"
        try:
            meta = await self._json("GET", url)
        except ChannelRejected as exc:
            if exc.extra.get("channel_code") == "NO_STATEMENT_EXIST":
                return []  # no trade that day: WeChat has no file rather than an empty one
            raise
        if meta.get("hash_type") != "SHA1":
            raise BillIntegrityFailed("unsupported bill hash type")
        link, base = urlsplit(str(meta.get("download_url", ""))), urlsplit(self._base)
        # The download URL must point back at the channel: never fetch (with our signature)
        # from wherever a response says.
        if (link.scheme, link.netloc) != (base.scheme, base.netloc):
            raise BillIntegrityFailed("bill download URL is not on the WeChat Pay host")
        path = link.path + (f"?{link.query}" if link.query else "")
        data = await self._download(path)
        digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if not hmac.compare_digest(digest, str(meta.get("hash_value", "")).lower()):
            raise BillIntegrityFailed("bill SHA1 does not match hash_value")
        return wechatpay_bill.parse_trade_bill(data)

    async def _download(self, path: str) -> bytes:
        # The file itself is not signed by the platform (its SHA1 in the signed metadata
        # stands in), so this request skips response verification.
        auth = signing.authorization(
            mchid=self._creds.mchid,
            serial_no=self._creds.serial_no,
            key=self._creds.private_key,
            method="GET",
            url=path,
            body="",
            timestamp=str(int(self._clock().timestamp())),
        )
        try:
            resp = await self._http.get(self._base + path, headers={"Authorization": auth})
        except httpx.HTTPError as exc:
            raise ChannelUnavailable("WeChat Pay bill download failed") from exc
        if resp.status_code != 200:
            raise ChannelUnavailable(f"WeChat Pay bill download answered {resp.status_code}")
        return resp.content


if TYPE_CHECKING:

    def _conforms(channel: WechatPayChannel) -> PaymentChannel:
        return channel  # mypy checks the adapter against the port
