"""Pipeline stages with group commit: the items that arrive while a batch is running
go out together as the next batch.

The counter's hot path makes a few small round trips per scan (one SQL statement,
one Redis script call, one SQL insert). Under load, many scans wait on the same kind
of round trip at once; running them as one statement or one script call costs one
round trip instead of many. This is group commit, as databases do for WAL flushes:
a lone item goes out on the next event-loop pass (no timer, no added wait), and
items that arrive while a batch is in flight form the next batch.

A stage's ``run`` gives each item its outcome itself (and may hand items on to
another stage), so an item costs no future of its own per stage. Should ``run``
raise, or the stage be cancelled, ``fail`` is called for each item it held.
``idle``, if given, is awaited whenever the stage runs out of items (to hand back
a connection held while busy); items that arrive meanwhile are still run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class Stage(Generic[T]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[None]],
        fail: Callable[[T, BaseException], None],
        *,
        idle: Callable[[], Awaitable[None]] | None = None,
        max_batch: int = 128,
    ) -> None:
        self._run = run
        self._idle = idle
        self._fail = fail
        self._max = max_batch
        self._pending: list[T] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None  # held: the loop keeps only weak refs

    def add(self, items: Iterable[T]) -> None:
        self._pending.extend(items)
        if self._pending and not self._running:
            self._running = True
            # call_soon, not now: the other items of this loop pass join the batch.
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        batch: list[T] = []
        try:
            while self._pending:
                while self._pending:
                    batch = self._pending[: self._max]
                    del self._pending[: self._max]
                    try:
                        await self._run(batch)
                    except Exception as exc:
                        for item in batch:
                            self._fail(item, exc)
                    batch = []
                if self._idle is not None:
                    await self._idle()
        finally:
            self._running = False
            # Left over only when the drain itself was cancelled (loop shutdown).
            left, self._pending = [*batch, *self._pending], []
            for item in left:
                self._fail(item, asyncio.CancelledError())


__all__ = ["Stage"]
