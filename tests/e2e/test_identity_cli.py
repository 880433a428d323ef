"""``superapp sms outbox`` prints the E.164 form of the phone it was given."""

from __future__ import annotations

import json

import pytest

from server.settings import Settings
from tests.e2e.test_cli import _cli
from tests.support import Api, random_phone


@pytest.mark.asyncio
async def test_sms_outbox_prints_the_normalised_phone(api: Api, settings: Settings) -> None:
    phone = random_phone()
    await api.post("/api/v1/identity/otp", json={"phone": phone})
    local = f"{phone[3:6]} {phone[6:10]} {phone[10:]}"  # as a citizen types it
    out = _cli(settings, "sms", "outbox", "--phone", local)
    assert out.returncode == 0, out.stderr
    [line] = [json.loads(x) for x in out.stdout.splitlines()]
    assert line["phone"] == phone
    bad = _cli(settings, "sms", "outbox", "--phone", "12345")
    assert bad.returncode == 1 and "validation-failed" in bad.stderr and not bad.stdout
