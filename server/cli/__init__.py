"""The ``superapp`` command: serve, migrate, demo and the operators' tools.

Each subcommand module has ``register(subparsers)``; settings are read from
the environment here, once, and a bad value exits with status 2 and one line.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from server.cli import admin, clients, demo, ecert, migrate, payments, serve, sim
from server.logs import setup_logging
from server.settings import Settings, SettingsError

COMMANDS = (serve, migrate, demo, admin, sim, clients, ecert, payments)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="superapp",
        description="City super-app gateway: one identity, one way to pay, one certificate "
        "wallet, thousands of mini-apps. Settings come from SUPERAPP_* environment variables.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"superapp: invalid setting {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level if not getattr(args, "quiet", False) else "WARNING")
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
