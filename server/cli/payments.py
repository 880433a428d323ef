"""``superapp payments``: the ledger's trial balance and the daily reconciliation."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from server.bootstrap import Services
from server.cli.common import with_services
from server.settings import Settings

BEIJING = dt.timezone(dt.timedelta(hours=8))


def register(sub: Any) -> None:
    p = sub.add_parser("payments", help="payments ledger and reconciliation", description=__doc__)
    cmds = p.add_subparsers(dest="payments_command", metavar="ACTION", required=True)
    tb = cmds.add_parser("trial-balance", help="prove the books balance (exit 1 if not)")
    tb.set_defaults(func=trial_balance)
    rec = cmds.add_parser("reconcile", help="match each channel's bill with the ledger")
    rec.add_argument(
        "--date", help="the bill day YYYY-MM-DD (Beijing time; default yesterday)", default=None
    )
    rec.set_defaults(func=reconcile)


def trial_balance(settings: Settings, args: argparse.Namespace) -> int:
    async def job(svc: Services) -> dict[str, Any]:
        return await svc.payments.trial_balance()

    result = with_services(settings, job)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0 if result["balanced"] else 1


def reconcile(settings: Settings, args: argparse.Namespace) -> int:
    try:
        day = (
            dt.date.fromisoformat(args.date)
            if args.date
            else dt.datetime.now(BEIJING).date() - dt.timedelta(days=1)
        )
    except ValueError:
        print("superapp: --date must be YYYY-MM-DD")
        return 2

    async def job(svc: Services) -> dict[str, Any]:
        return await svc.reconciler.run(day, created_by="cli")

    result = with_services(settings, job)
    print(json.dumps(result, ensure_ascii=False, indent=2, default=str))
    return 0 if result["unexplained"] == 0 else 1
