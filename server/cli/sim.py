"""``superapp sim NAME``: run one third-party simulator in the foreground."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from server import loops
from server.settings import Settings
from server.sims.launcher import SIMULATORS


def register(sub: Any) -> None:
    p = sub.add_parser("sim", help="run a third-party simulator", description=__doc__)
    p.add_argument("name", choices=sorted(SIMULATORS) or ["none"])
    p.add_argument("--port", type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    sim = SIMULATORS[args.name]
    module = importlib.import_module(sim.module)
    data_dir = str((settings.data_dir / "sims" / args.name).resolve())
    loops.run(module.serve(args.host, args.port or sim.port, data_dir), settings.event_loop)
    return 0
