"""The closed loop: what runs in the background of every worker.

- deliver due merchant webhooks (``webhooks.py``);
- query the channel for orders being paid with no callback yet, and close them at expiry
  (at the channel first, so no payment can land afterwards; one that still lands is caught as
  a stray payment and refunded automatically, by callback or by reconciliation);
- query refunds still processing, and send again those the channel never received;
- forget idempotency keys after 48 hours (the contract keeps them at least 24).

Rows are leased with ``FOR UPDATE SKIP LOCKED``, so N workers never work on the same row.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import asyncpg

from payments import refunds
from payments.errors import OrderNotClosable, PaymentError
from payments.service import PaymentService, utcnow
from payments.webhooks import WebhookDispatcher

log = logging.getLogger("superapp.payments.loop")

KEY_RETENTION = dt.timedelta(hours=48)
WEBHOOK_BATCH = 50
CHECK_BATCH = 20


class PaymentsWorker:
    def __init__(
        self,
        svc: PaymentService,
        dispatcher: WebhookDispatcher,
        *,
        tick: float = 1.0,
        poll_interval: dt.timedelta = dt.timedelta(seconds=30),
    ) -> None:
        self.svc = svc
        self.dispatcher = dispatcher
        self.tick = tick
        self.poll_interval = poll_interval
        self._last_purge = 0.0

    async def run(self) -> None:
        while True:
            try:
                more = await self.run_once()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("payments loop failed: %s", type(exc).__name__)
                more = False
            except Exception:  # noqa: BLE001 - the loop must outlive any one bad row
                log.warning("payments loop step failed", exc_info=True)
                more = False
            if not more:
                await asyncio.sleep(self.tick)

    async def run_once(self) -> bool:
        """One pass; True if a step filled its batch, so more rows may be due right now.

        Only then does the next pass start at once: a pass that found a few rows (under a
        steady load, one or two webhooks each time) waits a tick like an idle one, so that
        the outbox is drained in batches rather than with five round trips per event.
        """
        more = await self.dispatcher.run_once(WEBHOOK_BATCH) >= WEBHOOK_BATCH
        more |= await self.check_orders(CHECK_BATCH) >= CHECK_BATCH
        more |= await self.check_refunds(CHECK_BATCH) >= CHECK_BATCH
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_purge > 3600:
            self._last_purge = loop_time
            async with self.svc.pool.acquire() as conn:
                await self.svc.repo.purge_keys(conn, KEY_RETENTION)
        return more

    async def check_orders(self, limit: int = CHECK_BATCH) -> int:
        async with self.svc.pool.acquire() as conn:
            orders = await self.svc.repo.claim_orders_to_check(conn, self.poll_interval, limit)
        for order in orders:
            try:
                if order.status == "paying" and order.channel:
                    trade = await self.svc.channel(order.channel).query(order.id)
                    if trade.state == "paid":
                        await self.svc.apply_trade(
                            order.channel, trade, f"query:{trade.transaction_id}"
                        )
                        continue
                if order.expires_at <= utcnow():
                    await self.svc.close_order(order, reason="expired")
            except OrderNotClosable:
                continue  # paid in the meantime
            except PaymentError as exc:
                log.info("order check failed: %s", exc.code, extra={"order_id": order.id})
        return len(orders)

    async def check_refunds(self, limit: int = CHECK_BATCH) -> int:
        async with self.svc.pool.acquire() as conn:
            due = await self.svc.repo.claim_refunds_to_check(conn, self.poll_interval, limit)
        for refund in due:
            await refunds.check_refund(self.svc, refund)
        return len(due)
