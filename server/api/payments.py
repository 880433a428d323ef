"""Payments routes: merchants' orders and refunds (client-credentials tokens), the citizen's
payments, the channels' callbacks, merchant events and finance staff's reconciliation."""

from __future__ import annotations

import datetime as dt
from typing import Any

from identity.errors import ValidationError
from identity.tokens import Principal
from payments import refunds
from server.http import BaseHandler, RequestHelpers, route
from server.lean import LeanHandler
from server.openapi import ANY_OBJ, INT, STR, arr, obj, op

ORDER = obj(
    ["id", "status", "amount_fen", "out_trade_no"],
    id=STR,
    merchant_id=STR,
    out_trade_no=STR,
    status=STR,
    amount_fen=INT,
    currency=STR,
    subject=STR,
    channel=STR,
    transaction_id=STR,
    refunded_fen=INT,
    expires_at=STR,
    paid_at=STR,
)
REFUND = obj(
    ["id", "status", "amount_fen", "out_refund_no"],
    id=STR,
    order_id=STR,
    out_refund_no=STR,
    amount_fen=INT,
    status=STR,
    reason=STR,
)
EVENT = obj(["id", "type", "status"], id=STR, type=STR, status=STR, attempts=INT)
TAG = "payments"


def _before(handler: RequestHelpers) -> dt.datetime | None:
    raw = handler.get_query_argument("before", None)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError("before", "Must be an ISO 8601 time.") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _merchant(handler: RequestHelpers) -> Principal:
    who = handler.require_client()
    if not who.client_id or not who.unit_id:
        raise ValidationError("token", "The client token names no client or unit.")
    return who


class OrdersHandler(LeanHandler):  # on every payment: served without a RequestHandler
    openapi = {
        "post": op(
            "Create an order (merchant; send an Idempotency-Key header)",
            tag=TAG,
            request=obj(
                ["out_trade_no", "amount_fen", "subject"],
                out_trade_no=STR,
                amount_fen=INT,
                subject=STR,
                notify_url=STR,
                expires_in=INT,
                payer=STR,
            ),
            response=ORDER,
            status=201,
            auth="client",
            errors=(401, 409, 422),
        ),
        "get": op(
            "List the merchant's orders, or find one by out_trade_no",
            tag=TAG,
            response=obj(["orders"], orders=arr(ORDER)),
            auth="client",
            errors=(401, 404, 422),
            query=("out_trade_no", "status", "before", "limit"),
        ),
    }

    async def post(self) -> None:
        who = _merchant(self)
        key = self.request.headers.get("Idempotency-Key")
        status, body = await self.svc.payments.create_order(
            who.client_id or "", who.unit_id or "", key, self.json_body()
        )
        self.send_json(body, status)

    async def get(self) -> None:
        who = _merchant(self)
        no = self.get_query_argument("out_trade_no", None)
        if no:
            order = await self.svc.payments.order_by_out_trade_no(who.client_id or "", no)
            return self.send_json({"orders": [order.public()]})
        orders = await self.svc.payments.list_orders(
            who.client_id or "",
            self.get_query_argument("status", None),
            _before(self),
            self.query_int("limit", 50, 1, 200),
        )
        self.send_json({"orders": [o.public() for o in orders]})


class OrderHandler(BaseHandler):
    openapi = {
        "get": op(
            "An order (its merchant, or the citizen paying it), with its refunds",
            tag=TAG,
            response=ORDER,
            auth="user",
            errors=(401, 404),
        )
    }

    async def get(self, order_id: str) -> None:
        p = self.principal
        if p is not None and p.kind == "client":
            order = await self.svc.payments.order_for_merchant(p.client_id or "", order_id)
            view = order.public()
            view["refunds"] = [r.public() for r in await self.svc.payments.refunds(order.id)]
            return self.send_json(view)
        who = self.require_user()
        order = await self.svc.payments.order_for_payer(who.sub, order_id)
        refund_list = [r for r in await self.svc.payments.refunds(order.id) if r.kind == "merchant"]
        self.send_json(self.svc.payments.citizen_view(order, refund_list))


class PayHandler(LeanHandler):  # on every payment: served without a RequestHandler
    openapi = {
        "post": op(
            "Pay an order with a channel; returns the channel SDK's parameters (citizen)",
            tag=TAG,
            request=obj(["channel"], channel={"enum": ["wechatpay", "alipay"]}),
            response=obj(
                ["order_id", "channel", "reference", "client_params"],
                order_id=STR,
                channel=STR,
                reference=STR,
                client_params=ANY_OBJ,
            ),
            auth="user",
            errors=(401, 403, 404, 409, 422, 502, 503),
        )
    }

    async def post(self, order_id: str) -> None:
        who = self.require_user()
        body = self.json_body()
        self.send_json(await self.svc.payments.pay(who.sub, order_id, body.get("channel")))


class CloseHandler(BaseHandler):
    openapi = {
        "post": op(
            "Close an unpaid order (merchant)",
            tag=TAG,
            response=ORDER,
            auth="client",
            errors=(401, 404, 409, 502, 503),
        )
    }

    async def post(self, order_id: str) -> None:
        who = _merchant(self)
        order = await self.svc.payments.close(who.client_id or "", order_id)
        self.send_json(order.public())


class RefundsHandler(BaseHandler):
    openapi = {
        "post": op(
            "Refund part or all of a paid order (merchant; idempotent on out_refund_no)",
            tag=TAG,
            request=obj(
                ["out_refund_no", "amount_fen"], out_refund_no=STR, amount_fen=INT, reason=STR
            ),
            response=REFUND,
            status=201,
            auth="client",
            errors=(401, 404, 409, 422),
        ),
        "get": op(
            "The refunds of an order (merchant)",
            tag=TAG,
            response=obj(["refunds"], refunds=arr(REFUND)),
            auth="client",
            errors=(401, 404),
        ),
    }

    async def post(self, order_id: str) -> None:
        who = _merchant(self)
        refund, created = await refunds.request_refund(
            self.svc.payments, who.client_id or "", order_id, self.json_body()
        )
        self.send_json(refund.public(), 201 if created else 200)

    async def get(self, order_id: str) -> None:
        who = _merchant(self)
        order = await self.svc.payments.order_for_merchant(who.client_id or "", order_id)
        found = await self.svc.payments.refunds(order.id)
        self.send_json({"refunds": [r.public() for r in found]})


class NotifyHandler(LeanHandler):  # on every payment: served without a RequestHandler
    """A channel's callback: verified by the adapter; answered with the channel's own ack."""

    openapi = {
        "post": op(
            "Payment channel callback (WeChat Pay v3 JSON or Alipay form)",
            tag=TAG,
            request=ANY_OBJ,
            errors=(401,),
        )
    }

    async def post(self, channel: str) -> None:
        headers = {k: v for k, v in self.request.headers.get_all()}
        reply = await self.svc.payments.handle_notification(channel, headers, self.body())
        self.set_status(reply.status)
        if reply.status == 204 or not reply.body:
            self.finish()
            return
        self.set_header("Content-Type", reply.content_type)
        self.finish(reply.body)


class MyOrdersHandler(BaseHandler):
    openapi = {
        "get": op(
            "My payments, with refunds and signed receipts (citizen)",
            tag=TAG,
            response=obj(["orders"], orders=arr(ORDER)),
            auth="user",
            errors=(401,),
            query=("before", "limit"),
        )
    }

    async def get(self) -> None:
        who = self.require_user()
        orders = await self.svc.payments.my_orders(
            who.sub, self.query_int("limit", 50, 1, 200), _before(self)
        )
        self.send_json({"orders": orders})


class MerchantHandler(BaseHandler):
    openapi = {
        "get": op(
            "This client's merchant record, with its webhook signing secret",
            tag=TAG,
            response=ANY_OBJ,
            auth="client",
            errors=(401,),
        ),
        "put": op(
            "Set settlement details and the default webhook URL; rotate the webhook secret",
            tag=TAG,
            request=obj(
                [],
                name=STR,
                webhook_url=STR,
                settlement_account_name=STR,
                settlement_bank=STR,
                settlement_account_no=STR,
                rotate_webhook_secret={"type": "boolean"},
            ),
            response=ANY_OBJ,
            auth="client",
            errors=(401, 422),
        ),
    }

    async def get(self) -> None:
        who = _merchant(self)
        merchant = await self.svc.payments.merchant(who.client_id or "", who.unit_id or "")
        self.send_json(merchant.public(with_secret=True))

    async def put(self) -> None:
        who = _merchant(self)
        merchant = await self.svc.payments.update_merchant(
            who.client_id or "", who.unit_id or "", self.json_body()
        )
        self.send_json(merchant.public(with_secret=True))


class EventsHandler(BaseHandler):
    openapi = {
        "get": op(
            "This merchant's notification events (status=dead for the dead-letter queue)",
            tag=TAG,
            response=obj(["events"], events=arr(EVENT)),
            auth="client",
            errors=(401, 422),
            query=("status", "limit"),
        )
    }

    async def get(self) -> None:
        who = _merchant(self)
        status = self.get_query_argument("status", None)
        if status not in (None, "pending", "delivered", "dead"):
            raise ValidationError("status", "Must be pending, delivered or dead.")
        events = await self.svc.payments.events(
            who.client_id or "", status, self.query_int("limit", 50, 1, 200)
        )
        self.send_json({"events": [e.public() for e in events]})


class RedeliverHandler(BaseHandler):
    openapi = {
        "post": op(
            "Deliver an event again (e.g. from the dead-letter queue)",
            tag=TAG,
            response=EVENT,
            status=202,
            auth="client",
            errors=(401, 404),
        )
    }

    async def post(self, event_id: str) -> None:
        who = _merchant(self)
        event = await self.svc.payments.redeliver(who.client_id or "", event_id)
        self.send_json(event.public(), 202)


async def _require_finance(handler: BaseHandler) -> Principal:
    who = handler.require_user()
    units = [r.split(":", 1)[1] for r in who.roles if r.startswith("finance:")]
    await handler.svc.orgs.require(who, ("finance",), units[0] if units else None)
    return who


class ReconciliationsHandler(BaseHandler):
    openapi = {
        "post": op(
            "Reconcile one day: download each channel's bill and match it with the ledger",
            tag=TAG,
            request=obj(["date"], date=STR),
            response=ANY_OBJ,
            auth="user",
            errors=(401, 403, 422, 502, 503),
        ),
        "get": op(
            "Past reconciliations with their differences (finance staff)",
            tag=TAG,
            response=obj(["reconciliations"], reconciliations=arr(ANY_OBJ)),
            auth="user",
            errors=(401, 403, 422),
            query=("date",),
        ),
    }

    async def post(self) -> None:
        who = await _require_finance(self)
        day = _date(self.json_body().get("date"))
        self.send_json(await self.svc.reconciler.run(day, created_by=who.sub))

    async def get(self) -> None:
        await _require_finance(self)
        raw = self.get_query_argument("date", None)
        runs = await self.svc.reconciler.history(_date(raw) if raw else None)
        self.send_json({"reconciliations": runs})


class TrialBalanceHandler(BaseHandler):
    openapi = {
        "get": op(
            "The ledger's trial balance: every account, debits equal credits (finance staff)",
            tag=TAG,
            response=ANY_OBJ,
            auth="user",
            errors=(401, 403),
        )
    }

    async def get(self) -> None:
        await _require_finance(self)
        tb = await self.svc.payments.trial_balance()
        self.send_json(tb)


class AccountHandler(BaseHandler):
    openapi = {
        "get": op(
            "A ledger account's balance and its entries, newest first (finance staff)",
            tag=TAG,
            response=ANY_OBJ,
            auth="user",
            errors=(401, 403, 404),
            query=("limit",),
        )
    }

    async def get(self, code: str) -> None:
        await _require_finance(self)
        limit = self.query_int("limit", 100, 1, 1000)
        self.send_json(await self.svc.payments.account_history(code, limit))


def _date(value: Any) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError("date", "Must be a date YYYY-MM-DD.") from None


ROUTES = [
    route("/api/v1/payments/orders", OrdersHandler),
    route("/api/v1/payments/orders/{order_id}", OrderHandler),
    route("/api/v1/payments/orders/{order_id}/pay", PayHandler),
    route("/api/v1/payments/orders/{order_id}/close", CloseHandler),
    route("/api/v1/payments/orders/{order_id}/refunds", RefundsHandler),
    route("/api/v1/payments/notify/{channel}", NotifyHandler),
    route("/api/v1/payments/me/orders", MyOrdersHandler),
    route("/api/v1/payments/merchant", MerchantHandler),
    route("/api/v1/payments/events", EventsHandler),
    route("/api/v1/payments/events/{event_id}/redeliver", RedeliverHandler),
    route("/api/v1/payments/reconciliations", ReconciliationsHandler),
    route("/api/v1/payments/ledger/trial-balance", TrialBalanceHandler),
    route("/api/v1/payments/ledger/accounts/{code}", AccountHandler),
]
