"""``superapp migrate``: apply pending database migrations (a no-op when current)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from server.settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("migrate", help="apply database migrations", description=__doc__)
    p.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from server.bootstrap import prepare_database, resolve

    resolved, embedded = resolve(settings)
    try:
        applied = asyncio.run(prepare_database(resolved))
    finally:
        embedded.stop()
    print(json.dumps({"applied": applied}))
    return 0
