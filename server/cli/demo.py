"""``superapp demo``: seed the demo data (idempotent); ``--json`` prints it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from server.bootstrap import Services
from server.cli.common import with_services
from server.settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="seed demo data (idempotent)", description=__doc__)
    p.add_argument("--json", action="store_true", help="print what was seeded as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def _progress(label: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r{label:<10} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
    sys.stderr.flush()


def seed_demo_sync(settings: Settings, *, quiet: bool = False) -> dict[str, Any]:
    from server.demo.seed import seed

    async def job(svc: Services) -> dict[str, Any]:
        return await seed(svc, None if quiet else _progress)

    return with_services(settings, job)


def run(settings: Settings, args: argparse.Namespace) -> int:
    result = seed_demo_sync(settings, quiet=args.quiet)
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        for name, acc in result["accounts"].items():
            print(f"{name:<16} {acc['phone']}  {acc.get('role', 'citizen')}")
        print(
            "Sign in: POST /api/v1/identity/otp, then read the code with "
            "`superapp sms outbox --phone PHONE`."
        )
    return 0
