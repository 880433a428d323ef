"""``superapp serve``: run the gateway (N workers on one port)."""

from __future__ import annotations

import argparse
from typing import Any

from server.settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the gateway", description=__doc__)
    p.add_argument(
        "--workers", type=int, help="worker processes (default SUPERAPP_WORKERS or CPUs)"
    )
    p.add_argument("--port", type=int, help="port (default SUPERAPP_PORT or 8080)")
    p.add_argument("--host", help="address to bind (default SUPERAPP_HOST or 127.0.0.1)")
    p.add_argument("--demo", action="store_true", help="seed the demo data first (idempotent)")
    p.add_argument(
        "--no-simulators",
        action="store_true",
        help="do not start the third-party simulators (registry, payment channels, echo app)",
    )
    p.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from server.process import serve
    from server.sims.launcher import start_simulators

    changes: dict[str, Any] = {}
    if args.workers:
        if not 1 <= args.workers <= 256:
            print("superapp: --workers must be between 1 and 256")
            return 2
        changes["workers"] = args.workers
    if args.port:
        changes["port"] = args.port
    if args.host:
        changes["host"] = args.host
    if args.no_simulators:
        changes["simulators"] = False
    settings = settings.with_(**changes)
    if args.demo:
        from server.cli.demo import seed_demo_sync

        seed_demo_sync(settings, quiet=True)
    return serve(settings, start_simulators if settings.simulators else None)
