"""Daily reconciliation: each channel's bill against the ledger, every difference stored.

The bill day is the channel's (Beijing) calendar day. Ledger side: payments, stray payments
and settled refunds posted for that channel with ``occurred_at`` in that day. Matching is by
channel transaction id (payments) and by our refund id (refunds). Differences and the action
taken:

- ``bill_only`` payment for an order still open: the callback was lost; credited now.
- ``bill_only`` payment for a closed or otherwise paid order: a stray payment; refunded.
- ``bill_only`` refund we still had as processing: confirmed now.
- ``amount_mismatch`` and anything else: unexplained, flagged for finance staff.

Channel fees from the bill are posted to ``channel_fees:<channel>`` (idempotently).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from identity.ids import new_id
from payments import refunds
from payments.ledger import transfer
from payments.ports import BillRow, ChannelRefund, ChannelTradeState
from payments.service import PaymentService

BEIJING = dt.timezone(dt.timedelta(hours=8))


@dataclass
class Difference:
    kind: str  # ledger_only, bill_only, amount_mismatch
    item: str  # payment, refund
    reference: str
    order_id: str | None
    ledger_fen: int | None
    bill_fen: int | None
    explained: bool
    action: str

    def public(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class ChannelReport:
    id: str
    channel: str
    bill_date: str
    matched: int = 0
    bill_total_fen: int = 0
    ledger_total_fen: int = 0
    fees_fen: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def unexplained(self) -> int:
        return sum(1 for d in self.differences if not d.explained)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "date": self.bill_date,
            "matched": self.matched,
            "bill_total_fen": self.bill_total_fen,
            "ledger_total_fen": self.ledger_total_fen,
            "fees_fen": self.fees_fen,
            "differences": [d.public() for d in self.differences],
            "unexplained": self.unexplained,
        }


class Reconciler:
    def __init__(self, svc: PaymentService) -> None:
        self.svc = svc

    async def run(self, day: dt.date, created_by: str | None = None) -> dict[str, Any]:
        reports = [
            await self.reconcile_channel(name, day, created_by)
            for name in sorted(self.svc.channels)
        ]
        return {
            "date": day.isoformat(),
            "channels": [r.public() for r in reports],
            "unexplained": sum(r.unexplained for r in reports),
        }

    async def _ledger_side(
        self, channel: str, day: dt.date
    ) -> dict[tuple[str, str], tuple[int, str | None]]:
        start = dt.datetime.combine(day, dt.time(), BEIJING)
        async with self.svc.pool.acquire() as conn:
            rows = await self.svc.repo.ledger_items(
                conn, channel, start, start + dt.timedelta(days=1)
            )
        out: dict[tuple[str, str], tuple[int, str | None]] = {}
        for kind, external_id, amount, order_id in rows:
            item = "refund" if kind == "refund" else "payment"
            out[(item, external_id)] = (amount, order_id)
        return out

    async def reconcile_channel(
        self, channel: str, day: dt.date, created_by: str | None
    ) -> ChannelReport:
        bill = await self.svc.channel(channel).download_bill(day)
        report = ChannelReport(new_id("rec"), channel, day.isoformat())
        ledger = await self._ledger_side(channel, day)
        seen: set[tuple[str, str]] = set()
        for row in bill:
            key = (
                row.kind,
                row.transaction_id if row.kind == "payment" else row.out_refund_no or "",
            )
            seen.add(key)
            report.bill_total_fen += row.amount_fen if row.kind == "payment" else -row.amount_fen
            if row.kind == "payment" and row.fee_fen:
                report.fees_fen += row.fee_fen
                await self._post_fee(channel, row)
            if key in ledger:
                amount, order_id = ledger[key]
                if amount == row.amount_fen:
                    report.matched += 1
                else:
                    report.differences.append(
                        Difference(
                            "amount_mismatch",
                            row.kind,
                            key[1],
                            order_id,
                            amount,
                            row.amount_fen,
                            False,
                            "flagged for finance staff",
                        )  # fmt: skip
                    )
                continue
            report.differences.append(await self._bill_only(channel, row))
        for entry, (amount, order_id) in ledger.items():
            report.ledger_total_fen += amount if entry[0] == "payment" else -amount
            if entry not in seen:
                report.differences.append(
                    Difference(
                        "ledger_only",
                        key[0],
                        key[1],
                        order_id,
                        amount,
                        None,
                        False,
                        "flagged for finance staff: not on the channel's bill",
                    )  # fmt: skip
                )
        await self._store(report, created_by)
        return report

    async def _bill_only(self, channel: str, row: BillRow) -> Difference:
        if row.kind == "payment":
            trade = ChannelTradeState(
                row.out_trade_no,
                "paid",
                "BILL",
                row.transaction_id,
                row.amount_fen,
                row.occurred_at,
            )
            outcome = await self.svc.apply_trade(channel, trade, f"bill:{row.transaction_id}")
            actions = {
                "credited": (True, "credited from the bill (the callback never arrived)"),
                "stray": (True, "payment after close: refunded automatically"),
                "duplicate": (True, "already booked on another day"),
            }
            explained, action = actions.get(outcome, (False, f"flagged ({outcome})"))
            return Difference(
                "bill_only", "payment", row.transaction_id, row.out_trade_no, None,
                row.amount_fen, explained, action,
            )  # fmt: skip
        refund_id = row.out_refund_no or ""
        async with self.svc.pool.acquire() as conn:
            refund = await self.svc.repo.get_refund(conn, refund_id)
        if refund is not None and refund.status == "processing":
            await refunds.finish_refund(
                self.svc,
                refund.id,
                ChannelRefund(
                    row.out_trade_no,
                    refund_id,
                    row.refund_id,
                    "succeeded",
                    row.amount_fen,
                    row.occurred_at,
                ),  # fmt: skip
            )
            return Difference(
                "bill_only", "refund", refund_id, refund.order_id, None, row.amount_fen, True,
                "refund confirmed from the bill",
            )  # fmt: skip
        if refund is not None and refund.status == "succeeded":
            return Difference(
                "bill_only", "refund", refund_id, refund.order_id, None, row.amount_fen, True,
                "already booked on another day",
            )  # fmt: skip
        return Difference(
            "bill_only", "refund", refund_id, row.out_trade_no, None, row.amount_fen, False,
            "flagged for finance staff: unknown refund",
        )  # fmt: skip

    async def _post_fee(self, channel: str, row: BillRow) -> None:
        async with self.svc.pool.acquire() as conn, conn.transaction():
            await self.svc.ledger.post(
                conn,
                f"fee:{channel}:{row.transaction_id}",
                "fee",
                transfer(f"channel_fees:{channel}", f"channel_clearing:{channel}", row.fee_fen),
                order_id=row.out_trade_no,
                channel=channel,
                external_id=row.transaction_id,
                occurred_at=row.occurred_at,
            )

    async def _store(self, report: ChannelReport, created_by: str | None) -> None:
        async with self.svc.pool.acquire() as conn, conn.transaction():
            await self.svc.repo.save_reconciliation(
                conn,
                {
                    "id": report.id,
                    "bill_date": dt.date.fromisoformat(report.bill_date),
                    "channel": report.channel,
                    "matched": report.matched,
                    "differences": len(report.differences),
                    "unexplained": report.unexplained,
                    "bill_total_fen": report.bill_total_fen,
                    "ledger_total_fen": report.ledger_total_fen,
                    "created_by": created_by,
                },
                [d.public() for d in report.differences],
            )

    async def history(self, day: dt.date | None, limit: int = 20) -> list[dict[str, Any]]:
        async with self.svc.pool.acquire() as conn:
            return await self.svc.repo.reconciliations(conn, day, limit)
