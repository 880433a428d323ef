"""Short-lived provider state in Redis: authorisation codes, pending consent
requests, browser login sessions and revoked access tokens.

Codes are stored under the SHA-256 of the code (a Redis dump leaks no usable
code). Consuming one is a Lua script, so of two concurrent exchanges exactly
one gets the code; the other finds the "used" marker, which names the grant
so the caller can revoke every token issued from it (RFC 6749 section 4.1.2).
Redis being down fails closed with ``dependency-unavailable``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from identity.errors import DependencyUnavailable

T = TypeVar("T")

CODE_TTL = 300
USED_MARKER_TTL = 24 * 3600  # how long a replayed code is still recognised as such
PENDING_TTL = 600
LOGIN_TTL = 1800

_CONSUME = """
local data = redis.call('HGET', KEYS[1], 'data')
if not data then
  local gid = redis.call('GET', KEYS[2])
  if gid then return {'used', gid} end
  return {'missing', ''}
end
if redis.call('HGET', KEYS[1], 'client') ~= ARGV[1] then return {'wrong_client', ''} end
local gid = redis.call('HGET', KEYS[1], 'grant')
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], gid, 'EX', tonumber(ARGV[2]))
return {'ok', data}
"""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def _redis(op: Awaitable[T]) -> T:
    try:
        return await op
    except (RedisError, OSError):
        raise DependencyUnavailable(
            "The sign-in service is temporarily unavailable; try again shortly.", retry_after=5
        ) from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Consumed:
    status: str  # "ok" | "used" | "missing" | "wrong_client"
    payload: dict[str, Any] | None = None
    grant_id: str | None = None


class ProviderStore:
    def __init__(self, redis: aioredis.Redis, *, code_ttl: int = CODE_TTL) -> None:
        self.redis = redis
        self.code_ttl = code_ttl
        self._consume = redis.register_script(_CONSUME)

    # authorisation codes ------------------------------------------------------------

    async def issue_code(self, client_id: str, grant_id: str, payload: dict[str, Any]) -> str:
        code = "ac_" + secrets.token_urlsafe(32)
        key = f"oauth:code:{_digest(code)}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            key, mapping={"client": client_id, "grant": grant_id, "data": json.dumps(payload)}
        )
        pipe.expire(key, self.code_ttl)
        await _redis(pipe.execute())
        return code

    async def consume_code(self, code: str, client_id: str) -> Consumed:
        if not code.startswith("ac_") or len(code) > 100:
            return Consumed("missing")
        h = _digest(code)
        status, value = await _redis(
            self._consume(
                keys=[f"oauth:code:{h}", f"oauth:code-used:{h}"],
                args=[client_id, USED_MARKER_TTL],
            )
        )
        status, value = _text(status), _text(value)
        if status == "ok":
            return Consumed("ok", payload=json.loads(value))
        if status == "used":
            return Consumed("used", grant_id=value)
        return Consumed(status)

    # pending consent requests ---------------------------------------------------------

    async def put_pending(self, payload: dict[str, Any]) -> tuple[str, str]:
        request_id = "ar_" + secrets.token_urlsafe(18)
        csrf = secrets.token_urlsafe(24)
        body = json.dumps({**payload, "csrf": csrf})
        await _redis(self.redis.set(f"oauth:pending:{_digest(request_id)}", body, ex=PENDING_TTL))
        return request_id, csrf

    async def take_pending(self, request_id: str) -> dict[str, Any] | None:
        """Single use: a decision consumes the pending request."""
        if not request_id.startswith("ar_") or len(request_id) > 64:
            return None
        raw = await _redis(self.redis.getdel(f"oauth:pending:{_digest(request_id)}"))
        return json.loads(raw) if raw else None

    # browser login sessions -------------------------------------------------------------

    async def create_login(self, account_id: str, sid: str) -> str:
        login_id = "ls_" + secrets.token_urlsafe(32)
        body = json.dumps({"account_id": account_id, "sid": sid})
        await _redis(self.redis.set(f"oauth:login:{_digest(login_id)}", body, ex=LOGIN_TTL))
        return login_id

    async def get_login(self, login_id: str) -> dict[str, str] | None:
        if not login_id.startswith("ls_") or len(login_id) > 64:
            return None
        raw = await _redis(self.redis.get(f"oauth:login:{_digest(login_id)}"))
        return json.loads(raw) if raw else None

    # revoked access tokens (RFC 7009) -------------------------------------------------

    async def deny_access_token(self, jti: str, exp: int) -> None:
        ttl = max(exp - int(time.time()) + 60, 1)
        await _redis(self.redis.set(f"oauth:at-revoked:{jti}", 1, ex=ttl))

    async def access_token_denied(self, jti: str) -> bool:
        return bool(await _redis(self.redis.exists(f"oauth:at-revoked:{jti}")))
