"""The real process model: ``superapp serve`` on the embedded PostgreSQL and
Redis, the CLI sharing them while it runs, graceful SIGTERM, data surviving a
restart."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest

from tests.support import access_token, free_port, random_phone, run_cli, serve_env, wait_ready


def _sign_in(url: str, env: dict[str, str], phone: str) -> str:
    token = access_token(url, env, phone)
    me = httpx.get(url + "/api/v1/identity/me", headers={"Authorization": "Bearer " + token})
    return str(me.json()["sub"])


@pytest.mark.timeout(240)
def test_serve_embedded_two_workers_restart_and_sigterm(tmp_path: Path) -> None:
    # Outside pytest's basetemp, which pytest keeps at mode 0700 (see tests/conftest.py).
    data_dir = Path(tempfile.mkdtemp(prefix="superapp-e2e-")) / "d"
    port = free_port()
    env = serve_env(data_dir, port)
    env["SUPERAPP_BODY_TIMEOUT"] = "1"
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "server.cli", "serve", "--workers", "2", "--no-simulators"]
    log_path = tmp_path / "serve.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_ready(url, proc, log_path)
        # The CLI shares the running embedded servers.
        out = run_cli(env, "migrate")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"applied": []}
        phone = random_phone()
        sub = _sign_in(url, env, phone)
        assert (data_dir / "master.key").stat().st_mode & 0o777 == 0o600
        # A body that trickles in is cut off at SUPERAPP_BODY_TIMEOUT (1 s here).
        with socket.create_connection(("127.0.0.1", port), timeout=15) as slow:
            slow.sendall(
                b"POST /api/v1/identity/otp HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            assert slow.recv(100) == b""  # closed by the server, long before the 15 s
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        log_file.close()
    stderr = log_path.read_text()
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    # Both workers ran on uvloop, the default where it is installed (server/loops.py).
    ready = [json.loads(line) for line in stderr.splitlines() if '"worker ready"' in line]
    assert [r["event_loop"] for r in ready] == ["uvloop", "uvloop"], ready
    assert phone not in stderr  # no personal data in the logs
    # The embedded servers this process started are stopped.
    assert not (data_dir / "postgres" / "postmaster.pid").exists()
    redis_sock = data_dir / "redis" / "redis.sock"
    if redis_sock.exists():
        with socket.socket(socket.AF_UNIX) as s, pytest.raises(OSError):
            s.connect(str(redis_sock))
    # Data survives a restart.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(url, proc)
        assert _sign_in(url, env, phone) == sub
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0


def test_help_lists_the_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    for command in ("serve", "migrate", "demo", "admin", "keys", "sms", "sim"):
        assert command in out.stdout
    for command in ("serve", "migrate", "demo"):
        sub = subprocess.run(
            [sys.executable, "-m", "server.cli", command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sub.returncode == 0 and "usage: superapp " + command in sub.stdout
