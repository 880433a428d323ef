"""Shared bench helpers: start processes, wait for ports, drive load with wrk.

Every benchmark reports ratios against a reference measured in the same run
on the same machine, never absolute pass/fail timings.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


@contextlib.contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def gateway(
    workers: int = 1, extra_env: dict[str, str] | None = None, data_dir: str | None = None
) -> Iterator[str]:
    """``superapp serve`` on an embedded data directory (fresh unless ``data_dir`` is
    given: benches that read the server's database or master key pass their own)."""
    port = free_port()
    data = data_dir or tempfile.mkdtemp(prefix="superapp-bench-")
    env = {
        "SUPERAPP_DATA_DIR": data,
        "SUPERAPP_PORT": str(port),
        "SUPERAPP_LOG_LEVEL": "WARNING",
        "SUPERAPP_OTP_PER_IP_PER_HOUR": "10000000",
        "SUPERAPP_TOKEN_PER_IP_PER_MINUTE": "10000000",
        **(extra_env or {}),
    }
    cmd = [
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--workers",
        str(workers),
        "--no-simulators",
    ]
    with process(cmd, env) as proc:
        wait_port(port, 120)
        time.sleep(0.5)
        assert proc.poll() is None
        yield f"http://127.0.0.1:{port}"
    shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def bare_tornado() -> Iterator[str]:
    port = free_port()
    with process([sys.executable, str(ROOT / "bench" / "bare_tornado.py"), str(port)]):
        wait_port(port)
        yield f"http://127.0.0.1:{port}"


def wrk(
    url: str,
    *,
    seconds: int = 5,
    connections: int = 32,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    script: str | None = None,
) -> dict[str, float]:
    """Requests per second and latency percentiles from wrk (Debian's package)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    if script:
        args += ["-s", script]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        if m:
            value = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            lat[f"p{pct}_ms"] = value
    return {"rps": rps, "non_2xx": float(non2xx.group(1)) if non2xx else 0.0, **lat}


def best_of(n: int, fn, *args, **kwargs) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The best of n runs: the machine is shared, so the best run is the least disturbed."""
    runs = [fn(*args, **kwargs) for _ in range(n)]
    return max(runs, key=lambda r: r["rps"])
