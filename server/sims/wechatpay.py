"""A WeChat Pay API v3 simulator: a real process that speaks the v3 wire format.

It verifies every merchant request's ``WECHATPAY2-SHA256-RSA2048`` signature (401
``SIGN_ERROR`` otherwise), signs every answer and callback with the platform key, encrypts
callback resources with the APIv3 key and delivers them on WeChat's retry schedule
(15s/15s/30s/3m/10m/20m/30m/30m/30m/60m/3h/3h/3h/6h/6h) times ``time_scale`` until the
merchant answers 200/204. Orders live in memory.

Test-only endpoints: ``POST /sim/confirm {"reference": prepay_id, "outcome": "fail"?}`` plays
the payer confirming in WeChat; ``GET /sim/trades`` lists trades, refunds and callback
attempts. Run: ``python -m server.sims.wechatpay --port 8702 --data-dir var/sims``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import secrets
from typing import Any

from payments.channels import credentials as creds_mod
from payments.channels import wechatpay_bill
from payments.channels import wechatpay_signing as signing
from server.sims import lean_http, runner
from server.sims import wechatpay_trades as trades


class V3Handler(lean_http.Handler):
    """Verifies the merchant's signature on every request and signs every answer."""

    def initialize(self, state: trades.State) -> None:
        self.state = state

    def answer(self, status: int, payload: dict[str, Any] | None = None) -> None:
        c = self.state.config.credentials
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        self.set_status(status)
        for name, value in signing.signed_headers(c.private_key, c.serial_no, body).items():
            self.set_header(name, value)
        self.set_header("Request-ID", secrets.token_hex(16))
        if payload is not None:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.write(body)
        self.finish()

    def fail(self, status: int, code: str, message: str) -> None:
        self.answer(status, {"code": code, "message": message})

    def prepare(self) -> None:
        c = self.state.config.credentials
        fields = signing.parse_authorization(self.request.headers.get("Authorization", ""))
        if fields is None or fields["mchid"] != c.mchid:
            return self.fail(401, "SIGN_ERROR", "Authorization header is missing or malformed")
        key = c.merchant_public_keys.get(fields["serial_no"])
        if key is None:
            return self.fail(401, "SIGN_ERROR", "unknown merchant certificate serial")
        ts = fields["timestamp"]
        if not (ts.isascii() and ts.isdigit()) or abs(trades.now().timestamp() - int(ts)) > 300:
            return self.fail(401, "SIGN_ERROR", "timestamp outside the 5-minute window")
        try:
            body = self.request.body.decode("utf-8")
        except UnicodeDecodeError:
            return self.fail(400, "PARAM_ERROR", "body is not UTF-8")
        message = signing.request_message(
            self.request.method or "", self.request.uri or "", ts, fields["nonce_str"], body
        )
        if not signing.rsa.verify(key, message, fields["signature"]):
            return self.fail(401, "SIGN_ERROR", "signature verification failed")

    def json_body(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.request.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            self.fail(400, "PARAM_ERROR", "body is not a JSON object")
            return None
        return data


class CreateHandler(V3Handler):
    def post(self, kind: str) -> None:
        c, data = self.state.config.credentials, self.json_body()
        if data is None:
            return
        amount = data.get("amount") or {}
        total, no = amount.get("total"), data.get("out_trade_no")
        openid = str((data.get("payer") or {}).get("openid", ""))
        if data.get("appid") != c.appid or data.get("mchid") != c.mchid:
            return self.fail(400, "PARAM_ERROR", "appid and mchid do not match")
        if not isinstance(no, str) or not 6 <= len(no) <= 32:
            return self.fail(400, "PARAM_ERROR", "out_trade_no must be 6 to 32 characters")
        if not isinstance(total, int) or total <= 0 or amount.get("currency", "CNY") != "CNY":
            return self.fail(400, "PARAM_ERROR", "amount.total must be a positive integer")
        if not data.get("notify_url") or not data.get("description"):
            return self.fail(400, "PARAM_ERROR", "notify_url and description are required")
        if kind == "jsapi" and not openid:
            return self.fail(400, "PARAM_ERROR", "payer.openid is required for JSAPI")
        existing = self.state.trades.get(no)
        if existing is not None:
            if existing.trade_state in ("SUCCESS", "REFUND"):
                return self.fail(403, "ORDERPAID", "the order is already paid")
            if existing.trade_state == "CLOSED":
                return self.fail(400, "ORDER_CLOSED", "the order is closed")
            if (existing.total, existing.description) != (total, data["description"]):
                return self.fail(400, "INVALID_REQUEST", "out_trade_no reused with other data")
            return self.answer(200, {"prepay_id": existing.prepay_id})
        stamp = dt.datetime.now(trades.BEIJING).strftime("%d%H%M%S")
        prepay_id = "wx" + stamp + secrets.token_hex(12)
        trade = trades.Trade(
            out_trade_no=no,
            description=str(data["description"]),
            total=total,
            notify_url=str(data["notify_url"]),
            trade_type=kind.upper(),
            openid=openid or "o" + secrets.token_hex(13),
            prepay_id=prepay_id,
            time_expire=data.get("time_expire"),
        )
        self.state.trades[no] = trade
        self.state.by_prepay[prepay_id] = no
        self.answer(200, {"prepay_id": prepay_id})


class QueryHandler(V3Handler):
    def get(self, no: str) -> None:
        if self.get_query_argument("mchid", "") != self.state.config.credentials.mchid:
            return self.fail(400, "PARAM_ERROR", "mchid is required")
        trade = self.state.trades.get(no)
        if trade is None:
            return self.fail(404, "ORDER_NOT_EXIST", "订单不存在")
        self.answer(200, self.state.transaction(trade))


class CloseHandler(V3Handler):
    def post(self, no: str) -> None:
        data = self.json_body()
        if data is None:
            return
        trade = self.state.trades.get(no)
        if trade is None:
            return self.fail(404, "ORDER_NOT_EXIST", "订单不存在")
        if trade.trade_state in ("SUCCESS", "REFUND"):
            return self.fail(400, "ORDERPAID", "the order is already paid")
        trade.trade_state = "CLOSED"
        self.answer(204)


class RefundHandler(V3Handler):
    def post(self) -> None:
        data = self.json_body()
        if data is None:
            return
        no, refund_no = data.get("out_trade_no"), data.get("out_refund_no")
        amount = data.get("amount") or {}
        refund, total = amount.get("refund"), amount.get("total")
        if not isinstance(refund_no, str) or not isinstance(refund, int) or refund <= 0:
            return self.fail(400, "PARAM_ERROR", "out_refund_no and amount.refund are required")
        existing = self.state.refunds.get(refund_no)
        if existing is not None:
            if (existing.out_trade_no, existing.refund) != (no, refund):
                return self.fail(400, "INVALID_REQUEST", "out_refund_no reused with other data")
            return self.answer(200, self.state.refund_object(existing))
        trade = self.state.trades.get(str(no))
        if trade is None:
            return self.fail(404, "RESOURCE_NOT_EXISTS", "订单不存在")
        if trade.trade_state not in ("SUCCESS", "REFUND"):
            return self.fail(400, "INVALID_REQUEST", "the order is not paid")
        if total != trade.total:
            return self.fail(400, "INVALID_REQUEST", "amount.total does not match the order")
        if trade.refunded + refund > trade.total:
            return self.fail(400, "INVALID_REQUEST", "refund exceeds the refundable amount")
        r = trades.Refund(
            out_refund_no=refund_no,
            refund_id="50" + secrets.token_hex(14),
            out_trade_no=trade.out_trade_no,
            transaction_id=trade.transaction_id,
            refund=refund,
            total=trade.total,
            notify_url=str(data.get("notify_url") or trade.notify_url),
            create_time=trades.rfc3339(trades.now()),
        )
        trade.refunded += refund
        trade.trade_state = "REFUND"
        self.state.refunds[refund_no] = r
        self.state.start_refund(r)
        self.answer(200, self.state.refund_object(r))


class RefundQueryHandler(V3Handler):
    def get(self, refund_no: str) -> None:
        r = self.state.refunds.get(refund_no)
        if r is None:
            return self.fail(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        self.answer(200, self.state.refund_object(r))


class TradeBillHandler(V3Handler):
    def get(self) -> None:
        try:
            day = dt.date.fromisoformat(self.get_query_argument("bill_date", ""))
        except ValueError:
            return self.fail(400, "PARAM_ERROR", "bill_date must be YYYY-MM-DD")
        if day > dt.datetime.now(trades.BEIJING).date():
            return self.fail(400, "INVALID_REQUEST", "bill_date is in the future")
        rows = trades.bill_rows(self.state, day)
        if not rows:
            return self.fail(400, "NO_STATEMENT_EXIST", "the bill does not exist")
        c = self.state.config.credentials
        descriptions = {t.out_trade_no: t.description for t in self.state.trades.values()}
        data = wechatpay_bill.build_trade_bill(
            rows, appid=c.appid, mchid=c.mchid, descriptions=descriptions
        )
        token = secrets.token_urlsafe(24)
        self.state.bills[token] = data
        url = f"{self.request.protocol}://{self.request.host}/v3/billdownload/file?token={token}"
        sha1 = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        self.answer(200, {"hash_type": "SHA1", "hash_value": sha1, "download_url": url})


class BillFileHandler(V3Handler):
    def get(self) -> None:
        data = self.state.bills.get(self.get_query_argument("token", ""))
        if data is None:
            return self.fail(400, "INVALID_REQUEST", "the download token is invalid")
        self.set_header("Content-Type", "application/octet-stream")
        self.finish(data)


class ConfirmHandler(runner.SimHandler):
    def post(self) -> None:
        state: trades.State = self.state
        body = self.json_body()
        trade = state.trades.get(state.by_prepay.get(str(body.get("reference")), ""))
        if trade is None:
            return self.reply(404, {"error": "unknown prepay_id"})
        if trade.trade_state != "NOTPAY":
            return self.reply(409, {"error": f"trade is {trade.trade_state}"})
        if trade.time_expire and dt.datetime.fromisoformat(trade.time_expire) < trades.now():
            trade.trade_state = "CLOSED"
            return self.reply(409, {"error": "trade expired"})
        if body.get("outcome") == "fail":
            trade.trade_state = "PAYERROR"
        else:
            trade.trade_state, trade.success_time = "SUCCESS", trades.rfc3339(trades.now())
            trade.transaction_id = f"42000{secrets.randbelow(10**23):023d}"
            state.notify(
                trade.notify_url, "TRANSACTION.SUCCESS", "transaction", state.transaction(trade)
            )
        self.reply(200, {"out_trade_no": trade.out_trade_no, "trade_state": trade.trade_state})


class TradesHandler(runner.SimHandler):
    def get(self) -> None:
        state: trades.State = self.state
        self.reply(
            200,
            {
                "trades": [dataclasses.asdict(t) for t in state.trades.values()],
                "refunds": [dataclasses.asdict(r) for r in state.refunds.values()],
                "callbacks": [dataclasses.asdict(a) for a in state.delivery.attempts],
            },
        )


def make_app(config: trades.SimConfig) -> lean_http.Application:
    state = trades.State(config)
    deps = {"state": state}
    no = r"([A-Za-z0-9_\-|*@]+)"
    app = lean_http.Application(
        [
            (r"/v3/pay/transactions/(app|jsapi)", CreateHandler, deps),
            (rf"/v3/pay/transactions/out-trade-no/{no}", QueryHandler, deps),
            (rf"/v3/pay/transactions/out-trade-no/{no}/close", CloseHandler, deps),
            (r"/v3/refund/domestic/refunds", RefundHandler, deps),
            (rf"/v3/refund/domestic/refunds/{no}", RefundQueryHandler, deps),
            (r"/v3/bill/tradebill", TradeBillHandler, deps),
            (r"/v3/billdownload/file", BillFileHandler, deps),
            (r"/sim/confirm", ConfirmHandler, deps),
            (r"/sim/trades", TradesHandler, deps),
        ]
    )
    app.settings["sim_state"] = state
    return app


async def serve(host: str, port: int, data_dir: str | None, **options: Any) -> None:
    """Run forever; keys come from (and are generated into) ``data_dir``."""
    directory = runner.credentials_dir(data_dir)
    creds_mod.ensure_channel_credentials(directory)
    config = trades.SimConfig(
        credentials=creds_mod.load_wechatpay_platform(directory),
        time_scale=float(options.get("time_scale", 1.0)),
        faults=runner.faults(options),
    )
    app = make_app(config)
    await runner.run(app, host, port, app.settings["sim_state"].delivery)


if __name__ == "__main__":
    runner.main(serve)
