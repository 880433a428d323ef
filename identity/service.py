"""Sign-in use cases: SMS one-time codes, tokens, refresh rotation, sessions.

OTP state lives in Redis (codes stored only as keyed hashes, 5 minutes, 5
attempts, 60 s resend cool-down, per-phone and per-IP limits); accounts,
sessions and refresh tokens in PostgreSQL. Refresh tokens are rotated on every
use and a reused one revokes its whole session (RFC 9700 section 4.14.2).
Redis being down fails closed with ``dependency-unavailable``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from identity.crypto import Vault, token_hash
from identity.domain import Account, SecurityEvent, Session, TokenPair
from identity.errors import (
    DependencyUnavailable,
    InvalidOtp,
    InvalidRefreshToken,
    NotFound,
    OtpCooldown,
    RateLimited,
    RefreshTokenReused,
    SessionRevoked,
    TooManyAttempts,
)
from identity.ids import new_id
from identity.phone import normalise_phone
from identity.ports import SmsSender
from identity.repository import IdentityRepository
from identity.revocation import RevokedSessions
from identity.tokens import TokenService

T = TypeVar("T")

OTP_TTL = 300
OTP_MAX_ATTEMPTS = 5
OTP_COOLDOWN = 60
OTP_PER_PHONE_PER_HOUR = 10
OTP_PER_IP_PER_HOUR = 100
TOKEN_PER_IP_PER_MINUTE = 600

# One round trip per step of a sign-in (both are on the hot path).
#
# Request a code: start the resend cool-down, count the code against the
# per-phone and per-IP hourly limits, and store its hash only if all three allow.
# KEYS: code, cool-down, per-phone counter, per-IP counter;
# ARGV: hash, code TTL, cool-down, per-phone limit, per-IP limit.
_REQUEST_OTP = """
if not redis.call('SET', KEYS[2], 1, 'NX', 'EX', ARGV[3]) then
  return {0, redis.call('TTL', KEYS[2])}
end
local phone = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], 3600)
local ip = redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], 3600)
if phone > tonumber(ARGV[4]) or ip > tonumber(ARGV[5]) then return {2, 0} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'h', ARGV[1], 'n', 0)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, 0}
"""

# Check a code: count the attempt (only if a code exists: HINCRBY alone would
# recreate an expired key without a TTL) and, on a match, delete the code and the
# cool-down in the same step, so that of two concurrent correct submissions only
# one succeeds. Returns {attempts, matched}; attempts 0 means no code.
# The comparison is of two keyed digests (HMAC under the master key), so its
# timing tells an attacker nothing they could use to pick the next guess.
# The token requests of the client IP are counted in the same step.
# KEYS: code, cool-down, per-IP token counter;
# ARGV: digest of the submitted code, attempt limit, per-IP token limit.
_CHECK_OTP = """
local tok = redis.call('INCR', KEYS[3])
if tok == 1 then redis.call('EXPIRE', KEYS[3], 60) end
if tok > tonumber(ARGV[3]) then return {-1, 0} end
local h = redis.call('HGET', KEYS[1], 'h')
if not h then return {0, 0} end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if n > tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return {n, 0}
end
if h == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return {n, 1}
end
return {n, 0}
"""


async def _redis(op: Awaitable[T]) -> T:
    try:
        return await op
    except (RedisError, OSError):
        raise DependencyUnavailable(
            "The sign-in service is temporarily unavailable; try again shortly.", retry_after=5
        ) from None


class SignInService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        repo: IdentityRepository,
        vault: Vault,
        tokens: TokenService,
        sms: SmsSender,
        *,
        refresh_ttl: int = 30 * 24 * 3600,
        revoked: RevokedSessions | None = None,
        otp_per_ip_per_hour: int = OTP_PER_IP_PER_HOUR,
        token_per_ip_per_minute: int = TOKEN_PER_IP_PER_MINUTE,
    ) -> None:
        self.otp_per_ip_per_hour = otp_per_ip_per_hour
        self.token_per_ip_per_minute = token_per_ip_per_minute
        self.pool = pool
        self.redis = redis
        self.repo = repo
        self.vault = vault
        self.tokens = tokens
        self.sms = sms
        self.refresh_ttl = refresh_ttl
        self.revoked = revoked
        self._request_otp = redis.register_script(_REQUEST_OTP)
        self._check_otp = redis.register_script(_CHECK_OTP)

    def _key(self, phone: str) -> str:
        return self.vault.blind_index(phone, context="phone").hex()[:32]

    # one-time codes -----------------------------------------------------------------

    async def request_otp(self, raw_phone: object, ip: str) -> int:
        """Send a code by SMS; return its lifetime in seconds."""
        phone = normalise_phone(raw_phone)
        key = self._key(phone)
        hour = int(time.time() // 3600)
        code = f"{secrets.randbelow(10**6):06d}"
        digest = self.vault.secret_hash(f"{phone}:{code}", context="otp").hex()
        status, ttl = await _redis(
            self._request_otp(
                keys=[f"otp:{key}", f"otp:cd:{key}", f"otp:ph:{key}:{hour}", f"otp:ip:{ip}:{hour}"],
                args=[
                    digest,
                    OTP_TTL,
                    OTP_COOLDOWN,
                    OTP_PER_PHONE_PER_HOUR,
                    self.otp_per_ip_per_hour,
                ],
            )
        )
        if int(status) == 0:
            raise OtpCooldown(
                "A code was sent less than a minute ago.", retry_after=max(int(ttl), 1)
            )
        if int(status) == 2:
            retry = 3600 - int(time.time()) % 3600
            raise RateLimited("Too many codes requested; try again later.", retry_after=retry)
        try:
            await self.sms.send(phone, f"【i深圳】验证码 {code}，5分钟内有效。Your code is {code}.")
        except DependencyUnavailable:
            # The code never reached the phone: no cool-down for a message not sent.
            await _redis(self.redis.delete(f"otp:{key}", f"otp:cd:{key}"))
            raise
        return OTP_TTL

    async def sign_in_with_otp(
        self, raw_phone: object, code: object, *, device: str, ip: str
    ) -> TokenPair:
        phone = normalise_phone(raw_phone)
        if not isinstance(code, str) or not (code.isascii() and code.isdigit()) or len(code) != 6:
            raise InvalidOtp("The code must be 6 digits.")
        key = self._key(phone)
        digest = self.vault.secret_hash(f"{phone}:{code}", context="otp").hex()
        minute = int(time.time() // 60)
        attempts, matched = await _redis(
            self._check_otp(
                keys=[f"otp:{key}", f"otp:cd:{key}", f"tok:ip:{ip}:{minute}"],
                args=[digest, OTP_MAX_ATTEMPTS, self.token_per_ip_per_minute],
            )
        )
        attempts = int(attempts)
        if attempts < 0:
            raise RateLimited("Too many token requests.", retry_after=60 - int(time.time()) % 60)
        if attempts == 0:
            await self._failed(phone, "no-code", ip)
            raise InvalidOtp("The code is wrong, expired or already used; request a new one.")
        if attempts > OTP_MAX_ATTEMPTS:
            raise TooManyAttempts(
                "Too many wrong codes; request a new code.", retry_after=OTP_COOLDOWN
            )
        if not matched:
            await self._failed(phone, "wrong-code", ip)
            raise InvalidOtp(
                "The code is wrong.", attempts_left=max(OTP_MAX_ATTEMPTS - attempts, 0)
            )
        refresh = "rt_" + secrets.token_urlsafe(32)
        sid = new_id("ses")
        async with self.pool.acquire() as conn:
            account, _, roles = await self.repo.sign_in(
                conn,
                phone,
                session_id=sid,
                device=device,
                ip=ip,
                expires_at=_now() + timedelta(seconds=self.refresh_ttl),
                refresh_hash=token_hash(refresh),
            )
        access = self.tokens.issue_access(
            sub=account.id,
            sid=sid,
            acr=account.assurance_level,
            roles=roles,
            phone_masked=account.masked_phone,
        )
        return TokenPair(access, refresh, self.tokens.access_ttl, sid, account.id)

    # tokens and sessions --------------------------------------------------------------

    async def _issue(self, conn: asyncpg.Connection, account: Account, sid: str) -> TokenPair:
        refresh = "rt_" + secrets.token_urlsafe(32)
        await self.repo.add_refresh_token(conn, token_hash(refresh), sid)
        roles = [g.claim for g in await self.repo.roles_of(conn, account.id)]
        access = self.tokens.issue_access(
            sub=account.id,
            sid=sid,
            acr=account.assurance_level,
            roles=roles,
            phone_masked=account.masked_phone,
        )
        return TokenPair(access, refresh, self.tokens.access_ttl, sid, account.id)

    async def refresh(self, refresh_token: object, *, ip: str) -> TokenPair:
        if not isinstance(refresh_token, str) or not refresh_token.startswith("rt_"):
            raise InvalidRefreshToken("The refresh token is not valid.")
        await self.limit_token_requests(ip)
        digest = token_hash(refresh_token)
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                sid = await self.repo.consume_refresh_token(conn, digest)
                if sid is not None:
                    session = await self.repo.session(conn, sid)
                    if session is None or session.revoked_at or session.expires_at < _now():
                        raise SessionRevoked("This session has ended; sign in again.")
                    account = await self.repo.account(conn, session.account_id)
                    assert account is not None
                    await self.repo.touch_session(conn, sid)
                    return await self._issue(conn, account, sid)
            # Not an unused token: a reuse of a rotated one revokes the session.
            async with conn.transaction():
                reused_sid = await self.repo.refresh_token_session(conn, digest)
                if reused_sid is None:
                    raise InvalidRefreshToken("The refresh token is not valid.")
                session = await self.repo.session(conn, reused_sid)
                await self.repo.revoke_session(conn, reused_sid, "refresh-token-reused")
                if session is not None:
                    await self.repo.record_event(
                        conn,
                        session.account_id,
                        "refresh-token-reused",
                        {"session": reused_sid},
                        ip,
                    )
        await self._ended(reused_sid)
        raise RefreshTokenReused(
            "This refresh token was already used, so the session was ended for safety."
        )

    async def limit_token_requests(self, ip: str) -> None:
        minute = int(time.time() // 60)
        pipe = self.redis.pipeline(transaction=False)
        pipe.incr(f"tok:ip:{ip}:{minute}")
        pipe.expire(f"tok:ip:{ip}:{minute}", 60)
        count, _ = await _redis(pipe.execute())
        if int(count) > self.token_per_ip_per_minute:
            raise RateLimited("Too many token requests.", retry_after=60 - int(time.time()) % 60)

    async def logout(self, account_id: str, sid: str | None, ip: str) -> None:
        if sid is None:
            return
        async with self.pool.acquire() as conn, conn.transaction():
            session = await self.repo.session(conn, sid)
            if session is None or session.account_id != account_id:
                return
            await self.repo.revoke_session(conn, sid, "logout")
            await self.repo.record_event(conn, account_id, "logout", {"session": sid}, ip)
        await self._ended(sid)

    async def sessions(self, account_id: str) -> list[Session]:
        async with self.pool.acquire() as conn:
            return await self.repo.sessions_of(conn, account_id)

    async def revoke_session(self, account_id: str, sid: str, ip: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            session = await self.repo.session(conn, sid)
            # Another account's session is reported as absent, not as forbidden.
            if session is None or session.account_id != account_id or session.revoked_at:
                raise NotFound("No such active session.")
            await self.repo.revoke_session(conn, sid, "revoked-by-user")
            await self.repo.record_event(conn, account_id, "session-revoked", {"session": sid}, ip)
        await self._ended(sid)

    async def _ended(self, sid: str) -> None:
        # After the commit: the session's access tokens stop working on every worker.
        if self.revoked is not None:
            await self.revoked.revoke(sid)

    async def account(self, account_id: str) -> Account:
        async with self.pool.acquire() as conn:
            account = await self.repo.account(conn, account_id)
        if account is None:
            raise NotFound("No such account.")
        return account

    async def security_events(
        self, account_id: str, before: int | None, limit: int
    ) -> list[SecurityEvent]:
        async with self.pool.acquire() as conn:
            return await self.repo.events_of(conn, account_id, before, limit)

    async def sms_outbox(self, raw_phone: str, limit: int = 20) -> list[tuple[datetime, str]]:
        phone = normalise_phone(raw_phone)
        async with self.pool.acquire() as conn:
            return await self.repo.sms_for(conn, phone, limit)

    async def _failed(self, phone: str, reason: str, ip: str) -> None:
        async with self.pool.acquire() as conn:
            await self.repo.record_phone_event(
                conn, phone, "sign-in-failed", {"reason": reason}, ip
            )


def _now() -> datetime:
    return datetime.now(UTC)
