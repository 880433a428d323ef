"""Fixtures of the payments API tests (see ``tests/payments_support.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from server.bootstrap import Services
from tests.payments_support import Receiver, Sims, start_payments, stop_payments


@pytest_asyncio.fixture(scope="session")
async def sims(services: Services, base_url: str) -> AsyncIterator[Sims]:
    started = await start_payments(services)
    yield started
    await stop_payments()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    await r.stop()
