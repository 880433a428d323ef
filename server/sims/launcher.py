"""The third-party simulators ``superapp serve`` starts in the embedded default
(each a real process speaking that party's wire format), and ``superapp sim``."""

from __future__ import annotations

import importlib
import logging
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from server.settings import Settings

log = logging.getLogger("superapp.sims")


@dataclass(frozen=True)
class Simulator:
    name: str
    module: str
    port: int  # default port in the embedded setup
    description: str


SIMULATORS: dict[str, Simulator] = {
    "registry": Simulator(
        "registry",
        "server.sims.registry",
        8701,  # SUPERAPP_REGISTRY_URL's default points here
        "national population registry and face comparison provider (real-name L2, face L3)",
    ),
    "wechatpay": Simulator(
        "wechatpay", "server.sims.wechatpay", 8702, "WeChat Pay API v3 (payment channel)"
    ),
    "alipay": Simulator("alipay", "server.sims.alipay", 8703, "Alipay OpenAPI (payment channel)"),
    "miniapp": Simulator(
        "miniapp", "server.sims.miniapp", 9180, "echo mini-app upstream for the gateway demo"
    ),
}


def available() -> dict[str, Simulator]:
    """Simulators whose module is present."""
    found = {}
    for name, sim in SIMULATORS.items():
        try:
            importlib.import_module(sim.module)
        except ImportError:
            continue
        found[name] = sim
    return found


def sim_url(name: str) -> str:
    return f"http://127.0.0.1:{SIMULATORS[name].port}"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def start_simulators(settings: Settings) -> list[subprocess.Popen[bytes]]:
    procs = []
    for name, sim in available().items():
        if _listening(sim.port):
            log.info("simulator already running", extra={"sim": name, "port": sim.port})
            continue
        procs.append(
            subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", "server.cli", "sim", name, "--port", str(sim.port)],
                start_new_session=True,
            )
        )
    deadline = time.monotonic() + 20
    for name, sim in available().items():
        while not _listening(sim.port) and time.monotonic() < deadline:
            time.sleep(0.05)
        log.info("simulator started", extra={"sim": name, "url": sim_url(name)})
    return procs
