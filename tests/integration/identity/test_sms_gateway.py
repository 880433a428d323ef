"""The HTTP SMS adapter against the SMS-gateway simulator, a real process.

With ``SUPERAPP_SMS_URL`` set the sign-in codes leave through the gateway
(bearer key, JSON); a gateway that refuses or cannot be reached is a 503 that
does not hold the citizen to the resend cool-down.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio

from identity.errors import DependencyUnavailable
from identity.ports import HttpSms
from server.bootstrap import Services, build
from server.settings import Settings
from tests.support import Api, free_port, random_phone

pytestmark = pytest.mark.asyncio

KEY = "sms-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "server.sims.sms", "--port", str(port), "--api-key", KEY]
    )
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert proc.poll() is None and time.monotonic() < deadline, "the simulator did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


@pytest_asyncio.fixture(scope="module")
async def sms_services(
    settings: Settings, services: Services, gateway: str
) -> AsyncIterator[Services]:
    svc = await build(settings.with_(sms_url=gateway, sms_api_key=KEY), pool_size=2)
    yield svc
    await svc.close()


async def _sent(gateway: str, phone: str, key: str = KEY) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(
            f"{gateway}/messages", params={"to": phone}, headers={"Authorization": f"Bearer {key}"}
        )


async def test_codes_go_through_the_gateway_when_configured(
    sms_services: Services, gateway: str
) -> None:
    assert isinstance(sms_services.signin.sms, HttpSms)
    phone = random_phone()
    await sms_services.signin.request_otp(phone[3:], "127.0.0.1")  # local form, normalised
    messages = (await _sent(gateway, phone)).json()["messages"]
    assert len(messages) == 1 and messages[0]["to"] == phone
    code = messages[0]["text"].split("验证码 ")[1][:6]
    pair = await sms_services.signin.sign_in_with_otp(phone, code, device="t", ip="127.0.0.1")
    assert pair.account_id.startswith("usr_")
    # Nothing went to the outbox.
    assert await sms_services.signin.sms_outbox(phone) == []


async def test_the_simulator_checks_its_key(gateway: str) -> None:
    assert (await _sent(gateway, "+8613900000000", key="wrong")).status_code == 401
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{gateway}/messages", json={"to": "+8613900000000", "text": "x"})
        assert resp.status_code == 401
        resp = await client.post(
            f"{gateway}/messages",
            json={"to": "13900000000", "text": "x"},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert resp.status_code == 400


async def test_a_refused_message_is_503_without_cooldown(api: Api, gateway: str) -> None:
    phone = random_phone()
    signin = api.services.signin
    outbox = signin.sms
    signin.sms = HttpSms(gateway, "wrong-key", httpx.AsyncClient())
    try:
        for _ in range(2):  # the second try is not held to the resend cool-down
            resp = await api.post("/api/v1/identity/otp", json={"phone": phone})
            assert resp.status_code == 503
            assert resp.json()["code"] == "dependency-unavailable"
            assert int(resp.headers["Retry-After"]) > 0
            assert KEY not in resp.text and "wrong-key" not in resp.text
    finally:
        await signin.sms.client.aclose()  # type: ignore[attr-defined]
        signin.sms = outbox
    assert (await _sent(gateway, phone)).json()["messages"] == []
    # Back on the outbox, the citizen can ask again at once.
    assert (await api.post("/api/v1/identity/otp", json={"phone": phone})).status_code == 202


async def test_an_unreachable_gateway_is_dependency_unavailable() -> None:
    async with httpx.AsyncClient() as client:
        sms = HttpSms(f"http://127.0.0.1:{free_port()}", KEY, client)
        with pytest.raises(DependencyUnavailable):
            await sms.send("+8613900000000", "hello")
