"""Test helpers: an HTTP client that checks every response, and sign-in."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import tornado.httpserver
import tornado.netutil

from server.app import make_app
from server.bootstrap import Services, build
from server.settings import Settings


def random_phone() -> str:
    """A valid, unique mainland mobile number (+86 139...)."""
    return "+86139" + "".join(str(secrets.randbelow(10)) for _ in range(8))


def free_port() -> int:
    """A local port nothing listens on now (for a server to start, or a dependency down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


dead_port = free_port  # where a test means "nothing answers here"


def serve_env(data_dir: Path, port: int) -> dict[str, str]:
    """The environment for a ``superapp`` process of its own (no SUPERAPP_* leaking in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")}
    env.update(SUPERAPP_DATA_DIR=str(data_dir), SUPERAPP_PORT=str(port), SUPERAPP_LOG_LEVEL="INFO")
    return env


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m server.cli ARGS`` with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_for(
    settings: Settings, *args: str, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m server.cli ARGS`` against the test's own database, Redis and keys
    (``extra``: more SUPERAPP_* settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERAPP_")}
    env.update(
        SUPERAPP_DATABASE_URL=settings.database_url or "",
        SUPERAPP_REDIS_URL=settings.redis_url or "",
        SUPERAPP_MASTER_KEY=settings.master_key or "",
        SUPERAPP_DATA_DIR=str(settings.data_dir),
        SUPERAPP_PUBLIC_URL=settings.issuer,
        SUPERAPP_LOG_LEVEL="WARNING",
        **(extra or {}),
    )
    return run_cli(env, *args)


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], log: Path | None = None, timeout: float = 60
) -> float:
    """Wait for ``/readyz`` of a started server; seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"server exited early with {proc.returncode}: {tail}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("server not ready in time")


def access_token(url: str, env: dict[str, str], phone: str) -> str:
    """Sign in by OTP, reading the code from the development SMS outbox through the CLI."""
    assert httpx.post(url + "/api/v1/identity/otp", json={"phone": phone}).status_code == 202
    out = run_cli(env, "sms", "outbox", "--phone", phone)
    assert out.returncode == 0, out.stderr
    code = re.search(r"\b(\d{6})\b", json.loads(out.stdout.strip().splitlines()[-1])["text"])
    assert code
    resp = httpx.post(
        url + "/api/v1/identity/token",
        json={"grant_type": "otp", "phone": phone, "code": code.group(1)},
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


@contextlib.asynccontextmanager
async def serve(settings: Settings, **build_kw: Any) -> AsyncIterator[Api]:
    """Another instance of the app (own pools and caches, like a second worker) over HTTP."""
    svc = await build(settings, **build_kw)
    [sock] = tornado.netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    server = tornado.httpserver.HTTPServer(make_app(svc))
    server.add_sockets([sock])
    client = Api(f"http://127.0.0.1:{sock.getsockname()[1]}", svc)
    try:
        yield client
    finally:
        await client.aclose()
        server.stop()
        await server.close_all_connections()
        await svc.close()


def check_response(resp: httpx.Response) -> None:
    """What every response of the API must have (JupyterHub's api_request idea)."""
    assert resp.headers.get("X-Request-Id"), f"no X-Request-Id on {resp.request.url}"
    if resp.status_code >= 400:
        ctype = resp.headers.get("Content-Type", "")
        assert ctype.startswith("application/problem+json"), (resp.status_code, ctype, resp.text)
        body = resp.json()
        for key in ("type", "title", "status", "detail", "code", "request_id"):
            assert key in body, (key, body)
        assert body["status"] == resp.status_code
        assert body["request_id"] == resp.headers["X-Request-Id"]
        assert "Traceback" not in resp.text
    assert resp.status_code != 500, resp.text


class Api:
    def __init__(self, base_url: str, services: Services) -> None:
        self.base_url = base_url
        self.services = services
        self.client = httpx.AsyncClient(base_url=base_url, timeout=30)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def request(
        self, method: str, path: str, *, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        resp = await self.client.request(method, path, headers=headers, **kwargs)
        check_response(resp)
        return resp

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", path, **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", path, **kw)

    async def last_code(self, phone: str) -> str:
        messages = await self.services.signin.sms_outbox(phone, 1)
        assert messages, f"no SMS sent to {phone}"
        match = re.search(r"\b(\d{6})\b", messages[-1][1])
        assert match
        return match.group(1)

    async def sign_in(self, phone: str) -> dict[str, Any]:
        """Phone sign-in through the HTTP API; returns the token response."""
        resp = await self.post("/api/v1/identity/otp", json={"phone": phone})
        assert resp.status_code == 202, resp.text
        code = await self.last_code(phone)
        resp = await self.post(
            "/api/v1/identity/token", json={"grant_type": "otp", "phone": phone, "code": code}
        )
        assert resp.status_code == 200, resp.text
        tokens: dict[str, Any] = resp.json()
        return tokens

    async def staff(self, role: str, unit_id: str | None) -> tuple[str, str]:
        """A new account holding ``role``; returns (sub, access token)."""
        phone = random_phone()
        account, _ = await self.services.orgs.grant(phone, role, unit_id, granted_by=None)
        tokens = await self.sign_in(phone)
        return account.id, tokens["access_token"]

    async def unit(self, kind: str = "municipal") -> str:
        code = "t-" + secrets.token_hex(5)
        unit, _ = await self.services.orgs.upsert_unit(
            code=code,
            name_zh="测试局" + code,
            name_en="Test bureau " + code,
            kind=kind,
            district_code="440300",
        )
        return unit.id
