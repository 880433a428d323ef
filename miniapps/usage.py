"""Gateway usage per app: requests, errors, latency, and the uses ratings need.

Each worker counts in memory and flushes once a second in one transaction
(batched upserts), so the request path never waits for the database. A "use"
is one citizen session that reached the app: ``(app, account, session)``. A
use never seen before is written within ``USE_DELAY`` (the new uses of that
moment together), so a citizen who rates the app at once, whichever worker
takes the rating, finds it.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

import asyncpg

from miniapps.repository import MiniAppRepository

log = logging.getLogger("superapp.miniapps.usage")

BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500)  # and one above
FLUSH_INTERVAL = 1.0
USE_DELAY = 0.02


class UsageRecorder:
    def __init__(self, pool: asyncpg.Pool, repo: MiniAppRepository) -> None:
        self.pool = pool
        self.repo = repo
        self._counts: dict[str, list[Any]] = {}
        self._uses: set[tuple[str, str, str]] = set()
        self._seen: set[tuple[str, str, str]] = set()  # flushed uses, to skip repeats
        self._task: asyncio.Task[None] | None = None
        self._soon: asyncio.TimerHandle | None = None  # the early flush of new uses
        self._flushes: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()

    def record(self, app_id: str, status: int, seconds: float) -> None:
        c = self._counts.get(app_id)
        if c is None:
            c = self._counts[app_id] = [0, 0, 0.0, [0] * (len(BUCKETS_MS) + 1)]
        ms = seconds * 1000
        c[0] += 1
        c[1] += status >= 500
        c[2] += ms
        c[3][bisect.bisect_left(BUCKETS_MS, ms)] += 1

    def use(self, app_id: str, account_id: str, session_id: str | None) -> None:
        key = (app_id, account_id, session_id or "-")
        if key not in self._seen and key not in self._uses:
            self._uses.add(key)
            if self._soon is None and self._task is not None:
                self._soon = asyncio.get_running_loop().call_later(USE_DELAY, self._flush_soon)

    def _flush_soon(self) -> None:
        self._soon = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def flush(self) -> None:
        async with self._lock:
            counts, self._counts = self._counts, {}
            uses, self._uses = self._uses, set()
            if not counts and not uses:
                return
            hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            rows = [(a, hour, c[0], c[1], c[2], c[3]) for a, c in counts.items()]
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    if uses:
                        await self.repo.add_uses(conn, sorted(uses))
                    if rows:
                        await self.repo.add_usage(conn, rows)
            except (OSError, asyncpg.PostgresError):
                log.warning("usage flush failed; counts of this second are lost")
                return
            if len(self._seen) > 100_000:
                self._seen.clear()
            self._seen |= uses

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def stop(self) -> None:
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        for task in list(self._flushes):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
