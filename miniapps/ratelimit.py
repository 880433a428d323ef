"""GCRA rate limiting in Redis, exact across gateway processes.

The Generic Cell Rate Algorithm (ITU-T I.371, the "virtual scheduling" form)
keeps one number per bucket: the theoretical arrival time (TAT). A request is
allowed when ``TAT + T - now <= burst * T`` where ``T = period / count`` is the
emission interval. Guarantees, for any interval of length ``W``:

* at most ``burst + floor(W / T)`` requests pass (so never more than ``burst``
  at once: no fixed-window "double burst" at window edges);
* with ``burst=1`` at most ``count`` requests pass in any half-open window of
  length ``period`` (a strict sliding window, smoothed).

One Lua script checks every key of a request (e.g. per-app and per-citizen) in
ONE round trip and updates them only when all allow, so a refused request
spends no budget. Time is Redis server time (``TIME``), so worker clocks do not
matter. Needs Redis >= 5 (scripts replicate effects, so ``TIME`` is allowed
before writes). For Redis Cluster, keys checked together must share a hash
tag: :func:`app_keys` puts the app id in braces.

Checks that arrive in the same event-loop tick (the concurrent requests of a
busy worker) are sent to Redis together as one pipeline of ``EVALSHA`` calls:
one write and one round trip for the batch instead of one per request. One
batch is in flight at a time, on a connection the limiter keeps, so checks
that arrive meanwhile form the next batch. Each
call is still its own atomic script run with its own keys and its own reply,
so every request gets exactly the decision it would get alone, and requests
of other workers interleave between the calls just as before. A reply that is
an error (``NOSCRIPT`` after a script flush is retried once with ``EVAL``)
fails only its own request.

If Redis cannot be asked the limiter raises :class:`RateLimiterUnavailable`
(503): the gateway fails closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from miniapps.errors import RateLimiterUnavailable, TooManyRequests

log = logging.getLogger("superapp.miniapps.ratelimit")

# KEYS: bucket keys. ARGV: cost, then per key: emission interval (us), burst.
# Returns {allowed 0/1, remaining (min over keys), retry_after_us, now_us}.
_GCRA_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local allowed = 1
local remaining = -1
local retry = 0
local new_tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local tolerance = interval * tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval * cost
  local allow_at = new_tat - tolerance
  if allow_at > now then
    allowed = 0
    if allow_at - now > retry then retry = allow_at - now end
  else
    local left = math.floor((now - allow_at) / interval)
    if remaining < 0 or left < remaining then remaining = left end
  end
  new_tats[i] = new_tat
end
if allowed == 1 then
  for i, key in ipairs(KEYS) do
    -- The bucket is full again once TAT is in the past: then it may vanish.
    local ttl = math.ceil((new_tats[i] - now) / 1000) + 1
    redis.call('SET', key, string.format('%.0f', new_tats[i]), 'PX', ttl)
  end
else
  remaining = 0
end
return {allowed, remaining, string.format('%.0f', retry), string.format('%.0f', now)}
"""
_GCRA_SHA = hashlib.sha1(_GCRA_LUA.encode()).hexdigest()  # noqa: S324 (Redis names scripts so)


@dataclass(frozen=True, slots=True)
class Limit:
    """``count`` requests per ``period`` seconds, bursts of up to ``burst`` (default ``count``)."""

    count: int
    period: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.count < 1 or self.period <= 0:
            raise ValueError("a limit needs count >= 1 and period > 0")
        if self.burst is not None and self.burst < 1:
            raise ValueError("burst must be >= 1")

    @property
    def interval_us(self) -> float:
        return self.period * 1_000_000 / self.count

    @property
    def capacity(self) -> int:
        return self.count if self.burst is None else self.burst


@dataclass(frozen=True, slots=True)
class Decision:
    """Outcome of one check: ``retry_after`` in seconds (0.0 when allowed)."""

    allowed: bool
    remaining: int
    retry_after: float
    server_time_us: int  # Redis TIME at decision, for headers and tests

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds for a ``Retry-After`` header (RFC 9110), never 0 when refused."""
        return 0 if self.allowed else max(1, math.ceil(self.retry_after))


def app_keys(app_id: str, citizen: str) -> tuple[str, str]:
    """Per-app and per-(app, citizen) bucket keys sharing the ``{app_id}`` cluster hash tag."""
    return f"{{{app_id}}}:app", f"{{{app_id}}}:sub:{citizen}"


def _unavailable(message: str, cause: BaseException | None) -> RateLimiterUnavailable:
    error = RateLimiterUnavailable(message)
    error.__cause__ = cause
    return error


# One queued check: the EVALSHA arguments after the sha, and the caller's future.
_Pending = tuple[tuple[Any, ...], "asyncio.Future[Any]"]


class RateLimiter:
    """Checks GCRA buckets in Redis; one instance per process, shared by all requests."""

    def __init__(self, redis: Redis, *, prefix: str = "rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._queue: list[_Pending] = []
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the queue belongs to
        self._args: dict[Limit, tuple[str, int]] = {}  # per limit: its script arguments
        self._drain: asyncio.Task[None] | None = None  # sends the queue, one batch at a time
        self._scheduled = False  # a _flush is due in this tick
        self._conn: Any = None  # a connection of the client's pool, held for pipelining
        self._last_used = 0.0  # loop time of the last batch on it
        self.batches = 0  # pipelines sent, for tests and metrics

    async def check(self, key: str, limit: Limit, cost: int = 1) -> Decision:
        """Spend ``cost`` from one bucket if it allows."""
        return await self.check_all([(key, limit)], cost)

    async def check_all(self, buckets: Sequence[tuple[str, Limit]], cost: int = 1) -> Decision:
        """Spend ``cost`` from every bucket, or from none if any refuses (one round trip)."""
        if not buckets:
            raise ValueError("at least one bucket")
        if cost < 1 or any(cost > limit.capacity for _, limit in buckets):
            raise ValueError("cost must be between 1 and every bucket's burst")
        keys = [self._prefix + key for key, _ in buckets]
        if len(set(keys)) != len(keys):
            # The script reads every key before writing any: a repeated key would be spent once.
            raise ValueError("each bucket may appear once")
        args: list[str | int] = [len(keys), *keys, cost]
        for _, limit in buckets:
            pre = self._args.get(limit)
            if pre is None:
                pre = self._args[limit] = (repr(limit.interval_us), limit.capacity)
            args += pre
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._loop is not loop:  # a queue left by a loop that stopped is dropped
            # (a connection of a loop that stopped cannot be closed from this one)
            self._queue, self._loop, self._drain, self._conn = [], loop, None, None
            self._scheduled = False
        if not self._scheduled and (self._drain is None or self._drain.done()):
            # Runs after every callback already due in this tick: they join the batch.
            self._scheduled = True
            loop.call_soon(self._flush)
        self._queue.append((tuple(args), future))
        allowed, remaining, retry_us, now_us = await future
        return Decision(
            allowed=bool(int(allowed)),
            remaining=int(remaining),
            retry_after=int(retry_us) / 1_000_000,
            server_time_us=int(now_us),
        )

    def _flush(self) -> None:
        self._scheduled = False
        if self._drain is None or self._drain.done():
            self._drain = asyncio.get_running_loop().create_task(self._drain_queue())

    async def _drain_queue(self) -> None:
        """Send what is queued, one batch in flight at a time: checks that arrive while a
        batch is out join the next one (still one round trip each)."""
        while self._queue:
            batch, self._queue = self._queue, []
            await self._send(batch)

    async def _send(self, batch: list[_Pending]) -> None:
        self.batches += 1
        try:
            replies = await self._pipeline("EVALSHA", _GCRA_SHA, batch)
            missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
            if missing:  # the script cache was flushed: EVAL loads it again
                again = await self._pipeline("EVAL", _GCRA_LUA, [batch[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
            for (_, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue  # the request went away meanwhile
                if isinstance(reply, Exception):
                    future.set_exception(_unavailable("rate limit check failed", reply))
                else:
                    future.set_result(reply)
        except (RedisError, OSError) as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(_unavailable("rate limit store unreachable", exc))
        except Exception as exc:  # a bug, or an argument Redis cannot take: this batch only
            log.exception("rate limit batch failed")
            for _, future in batch:
                if not future.done():
                    future.set_exception(_unavailable("rate limit check failed", exc))
        finally:  # cancelled on shutdown, or a bug: no caller may wait forever
            for _, future in batch:
                if not future.done():
                    future.set_exception(_unavailable("rate limit check not answered", None))

    async def _pipeline(self, command: str, script: str, batch: list[_Pending]) -> list[Any]:
        """Write every call at once on the limiter's own connection, then read the replies
        in order; an error reply is returned in its place."""
        if not hasattr(self._redis, "connection_pool"):
            # Redis Cluster: redis-py's pipeline sends each call to its key's node.
            pipe = self._redis.pipeline(transaction=False)
            for args, _ in batch:
                pipe.execute_command(command, script, *args)
            return list(await pipe.execute(raise_on_error=False))
        conn = self._conn
        if conn is None:
            # Taken from the client's pool and kept: closing the client closes it too.
            conn = self._conn = await self._redis.connection_pool.get_connection()
        name, body = command.encode(), script.encode()
        head = b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(name), name, len(body), body)
        packed = []
        for args, _ in batch:
            packed.append(b"*%d\r\n" % (len(args) + 2))
            packed.append(head)
            for arg in args:
                data = arg.encode() if isinstance(arg, str) else b"%d" % arg
                packed.append(b"$%d\r\n%b\r\n" % (len(data), data))
        now = asyncio.get_running_loop().time()
        idle, self._last_used = now - self._last_used > 1.0, now
        data = b"".join(packed)
        for attempt in (1, 2):
            replies: list[Any] = []
            try:
                await conn.send_packed_command(data, check_health=False)
                for _ in batch:
                    try:
                        replies.append(await conn.read_response())
                    except ResponseError as exc:  # NOSCRIPT, or this call's script failed
                        replies.append(exc)
                break
            except (RedisConnectionError, ConnectionError) as exc:
                await conn.disconnect()
                # A connection the server closed while it sat idle (its `timeout`, a restart,
                # a failover) fails before anything ran on it: once more on a fresh one. (Had
                # the calls run after all, they were counted twice: stricter, never looser.)
                if attempt == 2 or replies or not idle:
                    raise exc from None
            except BaseException:
                await conn.disconnect()  # replies may be left unread: start afresh next time
                raise
        return replies

    async def enforce(self, buckets: Sequence[tuple[str, Limit]], cost: int = 1) -> Decision:
        """Like :meth:`check_all` but raise :class:`TooManyRequests` when refused."""
        decision = await self.check_all(buckets, cost)
        if not decision.allowed:
            raise TooManyRequests(retry_after=decision.retry_after_seconds)
        return decision
