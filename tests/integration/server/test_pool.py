"""The pool's cheap reset still ends a transaction a caller leaked."""

from __future__ import annotations

import pytest

from server.bootstrap import Services

pytestmark = pytest.mark.asyncio


@pytest.mark.expect_error_logs  # asyncpg logs the leaked transaction it resets
async def test_released_connection_in_a_transaction_is_rolled_back(services: Services) -> None:
    pool = services.pool
    async with pool.acquire() as conn:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TEMP TABLE leaked (x int)")
        assert conn.is_in_transaction()
    for _ in range(pool.get_size()):  # whichever connection comes back
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('pg_temp.leaked')") is None
