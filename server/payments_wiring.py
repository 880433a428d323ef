"""Wiring of the payments context: channel adapters from settings and credentials on disk.

The adapters talk to ``SUPERAPP_WECHATPAY_URL`` / ``SUPERAPP_ALIPAY_URL``, by default the
embedded simulators (``server/sims/launcher.py``). Keys live where ``superapp sim NAME`` keeps
its own (``DATA_DIR/sims/<name>``): ``ensure_channel_credentials`` generates both sides once,
so the server (merchant side) and the simulator (channel side) share one set.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import cast

import asyncpg
import httpx

from identity.crypto import Vault
from identity.tokens import TokenService
from payments.channels.alipay import AlipayChannel
from payments.channels.credentials import (
    ensure_channel_credentials,
    load_alipay_app,
    load_wechatpay_merchant,
)
from payments.channels.wechatpay import WechatPayChannel
from payments.ledger import Ledger
from payments.loop import PaymentsWorker
from payments.ports import PaymentChannel
from payments.reconciliation import Reconciler
from payments.repository import PaymentsRepository
from payments.service import PaymentService
from payments.webhooks import WebhookDispatcher
from server.channel_http import LeanHttp
from server.settings import Settings
from server.sims.launcher import SIMULATORS


def credentials_dir(settings: Settings, channel: str) -> Path:
    return (settings.data_dir / "sims" / channel).resolve()


def ensure_credentials(settings: Settings) -> None:
    for name in ("wechatpay", "alipay"):
        ensure_channel_credentials(credentials_dir(settings, name))


def build_channels(
    settings: Settings,
    http: httpx.AsyncClient,
    *,
    wechatpay_url: str | None = None,
    alipay_url: str | None = None,
) -> dict[str, PaymentChannel]:
    ensure_credentials(settings)
    notify = settings.issuer + "/api/v1/payments/notify/"
    wx_url = wechatpay_url or settings.wechatpay_url or _sim("wechatpay")
    ali_url = alipay_url or settings.alipay_url or _sim("alipay") + "/gateway.do"
    wechat = WechatPayChannel(
        http,
        load_wechatpay_merchant(credentials_dir(settings, "wechatpay")),
        notify_url=notify + "wechatpay",
        base_url=wx_url,
    )
    alipay = AlipayChannel(
        http,
        load_alipay_app(credentials_dir(settings, "alipay")),
        notify_url=notify + "alipay",
        gateway_url=ali_url
        if ali_url.endswith("/gateway.do")
        else ali_url.rstrip("/") + "/gateway.do",
    )
    return {"wechatpay": wechat, "alipay": alipay}


def _sim(name: str) -> str:
    return f"http://127.0.0.1:{SIMULATORS[name].port}"


def build_payments(
    settings: Settings,
    pool: asyncpg.Pool,
    http: httpx.AsyncClient,
    vault: Vault,
    tokens: TokenService,
) -> tuple[PaymentService, PaymentsWorker, Reconciler]:
    poll = dt.timedelta(seconds=settings.payments_poll_interval)
    repo = PaymentsRepository(vault)
    # The channel calls and the webhooks go through the lean keep-alive client (httpx's
    # interface, a fraction of its CPU per call); ``http`` stays for everything else.
    lean = cast(httpx.AsyncClient, LeanHttp(timeout=10.0))
    svc = PaymentService(
        pool,
        repo,
        Ledger(),
        build_channels(settings, lean),
        tokens,
        poll_interval=poll,
        http=lean,
    )
    dispatcher = WebhookDispatcher(
        pool,
        repo,
        lean,
        lambda: tokens.ring.active,
        time_scale=settings.payments_time_scale,
    )
    worker = PaymentsWorker(svc, dispatcher, tick=settings.payments_tick, poll_interval=poll)
    return svc, worker, Reconciler(svc)
