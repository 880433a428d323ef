"""A unit that issues, a citizen, a counter clerk and a certificate type for each test."""

from __future__ import annotations

import pytest_asyncio

from tests.api.ecert.helpers import World, make_world
from tests.support import Api


@pytest_asyncio.fixture
async def world(api: Api) -> World:
    return await make_world(api)
