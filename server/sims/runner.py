"""What the channel simulators share: the test-only JSON handler, options, and the process loop.

``main(serve)`` gives each simulator a ``python -m server.sims.<name> --port N --data-dir D``
entry point with the fault options (``--time-scale``, ``--duplicate``, ``--reorder``,
``--timeout``, ``--seed``) until the CLI exposes ``superapp sim <name>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from server import loops
from server.sims import lean_http
from server.sims.delivery import CallbackDelivery, Faults

DEFAULT_DIR = "var/sims"


class SimHandler(lean_http.Handler):
    """JSON in, JSON out: the ``/sim/*`` control endpoints (not part of any channel's API)."""

    def initialize(self, state: Any) -> None:
        self.state = state

    def json_body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise lean_http.HTTPError(400, "body must be a JSON object")
        return data

    def reply(self, status: int, payload: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(payload, ensure_ascii=False))


def credentials_dir(data_dir: str | None) -> Path:
    return Path(data_dir or DEFAULT_DIR)


def faults(options: dict[str, Any]) -> Faults:
    seed = options.get("seed")
    return Faults(
        duplicate_probability=float(options.get("duplicate_probability", 0.0)),
        reorder_probability=float(options.get("reorder_probability", 0.0)),
        timeout_probability=float(options.get("timeout_probability", 0.0)),
        seed=None if seed is None else int(seed),
    )


async def run(app: lean_http.Application, host: str, port: int, delivery: CallbackDelivery) -> None:
    server = await app.listen(port, address=host)
    try:
        await asyncio.Event().wait()
    finally:
        server.close()
        await delivery.close()


ServeFn = Callable[..., Coroutine[Any, Any, None]]


def main(serve: ServeFn) -> None:
    parser = argparse.ArgumentParser(description="Run a payment channel simulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--duplicate", type=float, default=0.0, help="duplicate probability")
    parser.add_argument("--reorder", type=float, default=0.0, help="out-of-order probability")
    parser.add_argument("--timeout", type=float, default=0.0, help="lost-answer probability")
    parser.add_argument("--seed", type=int, default=None)
    a = parser.parse_args()
    options = {
        "time_scale": a.time_scale,
        "duplicate_probability": a.duplicate,
        "reorder_probability": a.reorder,
        "timeout_probability": a.timeout,
        "seed": a.seed,
    }
    loops.run(serve(a.host, a.port, a.data_dir, **options))
