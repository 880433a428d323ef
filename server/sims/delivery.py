"""Asynchronous callback delivery with a channel's retry schedule, for the channel simulators.

A channel posts a notification to the merchant's ``notify_url`` and, until the merchant
acknowledges it, posts it again after each interval of its schedule. ``time_scale`` shrinks
the schedule (0.001 turns WeChat's 24 hours into 24 seconds). Faults a real channel shows can
be switched on with probabilities drawn from one seeded RNG: duplicate deliveries (a second
post after an acknowledged one), out-of-order deliveries (a notification held back so that a
later one overtakes it) and timeouts (the answer is ignored as if it never came, so the
merchant sees a redelivery of a notification it already processed).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from server.sims.rawhttp import HttpError, RawHttpClient

log = logging.getLogger(__name__)

# (headers, body) built fresh for every attempt: timestamps and signatures are per post.
BuildRequest = Callable[[], tuple[dict[str, str], bytes]]
IsAck = Callable[[int, bytes], bool]


@dataclass(frozen=True)
class Faults:
    duplicate_probability: float = 0.0
    reorder_probability: float = 0.0
    timeout_probability: float = 0.0
    seed: int | None = None


@dataclass
class Attempt:
    key: str  # what was notified (e.g. "TRANSACTION.SUCCESS ord_1")
    url: str
    number: int
    status: int | None
    acknowledged: bool
    at: str


class CallbackDelivery:
    def __init__(
        self,
        schedule_seconds: Sequence[float],
        is_ack: IsAck,
        *,
        time_scale: float = 1.0,
        faults: Faults | None = None,
        request_timeout: float = 5.0,
    ) -> None:
        self._schedule = list(schedule_seconds)
        self._is_ack = is_ack
        self._scale = time_scale
        self._faults = faults or Faults()
        self._rng = random.Random(self._faults.seed)  # noqa: S311 - fault injection, not crypto
        self._timeout = request_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self.attempts: list[Attempt] = []
        self._http: RawHttpClient | None = None

    def _client(self) -> RawHttpClient:
        if self._http is None:
            self._http = RawHttpClient(timeout=self._timeout)
        return self._http

    def send(self, key: str, url: str, build: BuildRequest) -> None:
        """Start delivering in the background; returns at once."""
        task = asyncio.get_running_loop().create_task(self._run(key, url, build))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, key: str, url: str, build: BuildRequest, number: int) -> bool:
        headers, body = build()
        status: int | None = None
        acked = False
        try:
            status, content = await self._client().post(url, body, headers)
            acked = self._is_ack(status, content)
        except HttpError as exc:
            log.info("callback %s attempt %d to %s failed: %s", key, number, url, exc)
        if acked and self._rng.random() < self._faults.timeout_probability:
            acked = False  # the answer "timed out": the channel will post again
        now = dt.datetime.now(dt.UTC).isoformat()
        self.attempts.append(Attempt(key, url, number, status, acked, now))
        return acked

    async def _run(self, key: str, url: str, build: BuildRequest) -> None:
        if self._rng.random() < self._faults.reorder_probability:
            first = self._schedule[0] if self._schedule else 1.0
            await asyncio.sleep(first * self._scale * (1 + self._rng.random()))
        delays = [0.0, *self._schedule]
        for number, delay in enumerate(delays, start=1):
            if delay:
                await asyncio.sleep(delay * self._scale)
            if await self._post(key, url, build, number):
                if self._rng.random() < self._faults.duplicate_probability:
                    await self._post(key, url, build, number + 1)
                return
        log.info("callback %s to %s given up after %d attempts", key, url, len(delays))

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
