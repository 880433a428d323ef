"""Sign-in limits on real Redis: code lifetime, per-phone and per-IP code limits,
the per-IP token limit counted with the code check."""

from __future__ import annotations

import secrets

import pytest

from identity.errors import InvalidOtp, RateLimited
from identity.service import OTP_PER_PHONE_PER_HOUR, OTP_TTL, SignInService
from server.bootstrap import Services
from tests.support import random_phone

pytestmark = pytest.mark.asyncio


def _ip() -> str:
    return "10." + ".".join(str(secrets.randbelow(256)) for _ in range(3))


def _signin(svc: Services, **limits: int) -> SignInService:
    s = svc.signin
    return SignInService(s.pool, s.redis, s.repo, s.vault, s.tokens, s.sms, **limits)


async def test_a_code_lives_five_minutes_then_is_refused(services: Services) -> None:
    signin, phone = services.signin, random_phone()
    await signin.request_otp(phone, _ip())
    key = f"otp:{signin._key(phone)}"
    assert OTP_TTL - 5 <= await services.redis.ttl(key) <= OTP_TTL == 300
    [(_, body)] = await signin.sms_outbox(phone, 1)
    code = body.split("验证码 ")[1][:6]
    await services.redis.delete(key)  # what Redis does when the TTL runs out
    with pytest.raises(InvalidOtp):
        await signin.sign_in_with_otp(phone, code, device="t", ip=_ip())


async def test_codes_per_phone_per_hour_are_limited(services: Services) -> None:
    signin, phone, ip = services.signin, random_phone(), _ip()
    for _ in range(OTP_PER_PHONE_PER_HOUR):
        await signin.request_otp(phone, ip)
        await services.redis.delete(f"otp:cd:{signin._key(phone)}")  # skip the cool-down
    with pytest.raises(RateLimited) as err:
        await signin.request_otp(phone, ip)
    assert 0 < err.value.extra["retry_after"] <= 3600


async def test_codes_per_ip_per_hour_are_limited(services: Services) -> None:
    signin, ip = _signin(services, otp_per_ip_per_hour=3), _ip()
    for _ in range(3):
        await signin.request_otp(random_phone(), ip)
    with pytest.raises(RateLimited):
        await signin.request_otp(random_phone(), ip)
    await signin.request_otp(random_phone(), _ip())  # another address is not held back


async def test_token_requests_per_ip_are_limited_with_the_code_check(services: Services) -> None:
    signin, ip, phone = _signin(services, token_per_ip_per_minute=2), _ip(), random_phone()
    await signin.request_otp(phone, _ip())
    outcomes = []
    for _ in range(5):  # within 5 even if a minute boundary falls between two tries
        try:
            await signin.sign_in_with_otp(phone, "000000", device="t", ip=ip)
        except RateLimited:
            outcomes.append("limited")
            break
        except InvalidOtp:
            outcomes.append("wrong")
    assert outcomes[-1] == "limited" and len(outcomes) >= 3
