"""Running one async job with the composition root, for CLI commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from server.bootstrap import Services, build, prepare_database, resolve
from server.settings import Settings

T = TypeVar("T")


def with_services(settings: Settings, job: Callable[[Services], Awaitable[T]]) -> T:
    resolved, embedded = resolve(settings)

    async def main() -> T:
        await prepare_database(resolved)
        svc = await build(resolved, pool_size=4)
        try:
            return await job(svc)
        finally:
            await svc.close()

    try:
        return asyncio.run(main())
    finally:
        embedded.stop()
