"""The echo mini-app simulator, run as a real process and spoken to over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[3]
PLATFORM_KEY = ec.generate_private_key(ec.SECP256R1())
ROGUE_KEY = ec.generate_private_key(ec.SECP256R1())


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    jwk = json.loads(ECAlgorithm.to_jwk(PLATFORM_KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "ES256", "use": "sig"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


def start_sim(**options: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    code = (
        "import asyncio, sys; from server.sims.miniapp import serve; "
        f"asyncio.run(serve('127.0.0.1', {port}, None, **{options!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ})
    wait_for_port(port)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def sim(jwks_url: str) -> Iterator[str]:
    proc, base = start_sim(jwks_url=jwks_url, audience="app_demo")
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def assertion(key: ec.EllipticCurvePrivateKey, kid: str = "k1", **claims: object) -> str:
    now = int(time.time())
    payload = {"iss": "https://superapp.test", "sub": "pw_abc", "aud": "app_demo"}
    payload |= {"iat": now, "exp": now + 60} | claims
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": kid})


@pytest.mark.timeout(30)
def test_echoes_method_path_query_headers_and_body(sim: str) -> None:
    r = httpx.post(
        f"{sim}/api/orders/42?x=1&x=2&y=z",
        content=b'{"a": 1}',
        headers={"X-Request-Id": "req_1", "Content-Type": "application/json"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["method"] == "POST" and body["path"] == "/api/orders/42"
    assert body["query"] == {"x": ["1", "2"], "y": ["z"]}
    assert body["headers"]["X-Request-Id"] == "req_1"
    assert body["body_bytes"] == 8
    assert body["identity"] is None
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        assert httpx.request(method, f"{sim}/anything").json()["method"] == method


@pytest.mark.timeout(30)
def test_status_path_answers_with_that_status(sim: str) -> None:
    assert httpx.get(f"{sim}/status/503").status_code == 503
    assert httpx.get(f"{sim}/status/418").status_code == 418
    assert httpx.get(f"{sim}/status/999").status_code == 400
    assert httpx.get(f"{sim}/status/100").status_code == 400


@pytest.mark.timeout(30)
def test_slow_path_waits(sim: str) -> None:
    started = time.monotonic()
    r = httpx.get(f"{sim}/slow", params={"ms": 400})
    assert time.monotonic() - started >= 0.4
    assert r.json()["slept_ms"] == 400
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{sim}/slow", params={"ms": 2000}, timeout=0.3)


@pytest.mark.timeout(30)
def test_identity_assertion_signed_by_the_platform_is_verified(sim: str) -> None:
    token = assertion(PLATFORM_KEY, scope="openid phone")
    identity = httpx.get(f"{sim}/me", headers={"X-Superapp-Identity": token}).json()["identity"]
    assert identity["verified"] is True
    assert identity["claims"]["sub"] == "pw_abc"
    assert identity["header"] == {"alg": "ES256", "kid": "k1", "typ": "JWT"}


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("token_factory", "reason"),
    [
        (lambda: assertion(ROGUE_KEY), "InvalidSignatureError"),
        (lambda: assertion(PLATFORM_KEY, aud="app_other"), "InvalidAudienceError"),
        (lambda: assertion(PLATFORM_KEY, exp=int(time.time()) - 60), "ExpiredSignatureError"),
        (lambda: assertion(PLATFORM_KEY, kid="k9"), "LookupError"),
        (
            lambda: jwt.encode({"sub": "x", "aud": "app_demo"}, "s" * 32, algorithm="HS256"),
            "LookupError",
        ),
    ],
)
def test_bad_assertions_are_shown_but_not_verified(sim: str, token_factory, reason: str) -> None:
    identity = httpx.get(f"{sim}/", headers={"X-Superapp-Identity": token_factory()}).json()[
        "identity"
    ]
    assert identity["verified"] is False
    assert "claims" in identity  # still decoded for display
    assert identity["error"].startswith(reason)


@pytest.mark.timeout(30)
def test_without_reachable_jwks_assertions_are_decoded_but_unverified() -> None:
    proc, base = start_sim(jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json")
    try:
        token = assertion(PLATFORM_KEY)
        identity = httpx.get(base, headers={"X-Superapp-Identity": token}).json()["identity"]
        assert identity["verified"] is False and identity["claims"]["sub"] == "pw_abc"
        garbage = httpx.get(base, headers={"X-Superapp-Identity": "not.a.jwt"}).json()
        assert garbage["identity"]["error"].startswith("undecodable")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
