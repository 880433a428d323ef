"""Micro-batching: the calls that arrive while a batch is running go out together.

The counter's hot path makes a few small round trips per scan (one SQL read, one
Redis ``SET NX``, one SQL insert). Under load, many scans wait on the same kind
of round trip at once; running them as one statement or one script call costs one
round trip instead of many. This is group commit, as databases do for WAL
flushes: a lone call goes out on the next event-loop pass (no timer, no added
wait), and calls that arrive while a batch is in flight form the next batch.

Each caller gets its own result or its own exception: ``run`` returns one entry
per item, an exception instance for an item that failed. An exception raised by
``run`` itself fails every item of that batch (a lost connection, say).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(
        self,
        run: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 128,
    ) -> None:
        self._run = run
        self._max = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None  # held: the loop keeps only weak refs

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, fut))
        if not self._running:
            self._running = True
            # call_soon, not now: the other requests of this loop pass join the batch.
            loop.call_soon(self._start, loop)
        return await fut

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self._max]
                del self._pending[: self._max]
                await self._one(batch)
        finally:
            self._running = False
            # Left over only when the drain itself was cancelled (loop shutdown).
            left, self._pending = self._pending, []
            for _, fut in left:
                if not fut.done():
                    fut.cancel()

    async def _one(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError("a batch returned the wrong number of results")
        except BaseException as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if fut.done():  # the caller went away
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)


__all__ = ["MicroBatcher"]
