"""Ended sessions, known to every worker without a Redis call per request.

Access tokens are verified locally; without this, a token of a session ended by
logout, a per-device revocation or refresh-token reuse would stay valid until
its ``exp`` (at most the access-token lifetime). Each worker keeps the ids of
sessions ended within that lifetime in memory (a dict lookup per request); an
ending is written to a Redis sorted set (session id -> until) and announced on a
pub/sub channel, which every worker's listener adds to its set. A listener that
(re)connects first reloads the sorted set, so messages missed while it was away
are not lost. If Redis is unreachable the ending still happens in PostgreSQL
(refresh fails at once) and other workers learn of it when Redis is back, or the
token expires: verification never waits for Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("identity.revocation")

CHANNEL = "identity:sessions:ended"
KEY = "identity:sessions:ended"


class RevokedSessions:
    def __init__(self, redis: aioredis.Redis, *, ttl: int) -> None:
        self.redis = redis
        self.ttl = ttl + 10  # the access-token lifetime plus verification leeway
        self._until: dict[str, float] = {}
        self.ready = asyncio.Event()  # set once the listener has loaded the set

    def __contains__(self, sid: object) -> bool:
        until = self._until.get(sid) if isinstance(sid, str) else None
        return until is not None and until > time.time()

    def _add(self, sid: str, until: float) -> None:
        if until > time.time():
            self._until[sid] = max(until, self._until.get(sid, 0.0))

    def _prune(self) -> None:
        now = time.time()
        for sid in [s for s, until in self._until.items() if until <= now]:
            del self._until[sid]

    async def revoke(self, sid: str) -> None:
        """Announce that a session has ended (after its revocation is committed)."""
        now = time.time()
        until = now + self.ttl
        self._add(sid, until)  # this worker at once
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(KEY, {sid: until})
        pipe.zremrangebyscore(KEY, "-inf", now)
        pipe.expire(KEY, self.ttl)
        pipe.publish(CHANNEL, f"{sid} {until}")
        try:
            await pipe.execute()
        except (RedisError, OSError):
            log.warning("could not announce an ended session; other workers see it at exp")

    async def _load(self) -> None:
        rows = await self.redis.zrangebyscore(KEY, time.time(), "+inf", withscores=True)
        for row in rows:
            sid, until = row[0], row[1]
            self._add(sid.decode() if isinstance(sid, bytes) else str(sid), float(until))

    async def listen(self) -> None:
        """Run for the life of the worker: follow the channel, reconnecting as needed."""
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                await self._load()  # after subscribing: nothing falls between the two
                self.ready.set()
                last_prune = time.monotonic()
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        data = msg["data"]
                        text = data.decode() if isinstance(data, bytes) else str(data)
                        sid, _, until = text.partition(" ")
                        try:
                            self._add(sid, float(until))
                        except ValueError:
                            continue
                    if time.monotonic() - last_prune > 60:
                        self._prune()
                        last_prune = time.monotonic()
            except (RedisError, OSError):
                log.warning("ended-session listener lost Redis; retrying")
                await asyncio.sleep(1.0)
            finally:
                try:
                    await pubsub.aclose()
                except (RedisError, OSError):
                    pass
