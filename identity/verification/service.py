"""Real-name (L2) and face (L3) verification use cases.

L2: the name and the 18-digit resident ID number are checked locally first
(GB 11643 check digit, a real birth date, a plausible name), then by the
population registry; on a match the identity is bound to the account,
encrypted at rest with an HMAC blind index whose UNIQUE constraint lets one
ID number belong to one account only.

L3: the citizen's live photo is compared with the ID photo the registry holds
for the bound ID number (a :class:`FaceVerifier`: dlib locally or a provider).

Both count attempts per account per UTC day in Redis, so that an account
cannot be used to enumerate ID numbers against the (billed) registry; Redis
being down fails closed with 503. Security events never hold the name, the ID
number or a photo. After a level change the client refreshes its access token:
refresh reads the level from the database, so the new token carries the new
``acr``.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Awaitable
from concurrent.futures import BrokenExecutor
from typing import Any, TypeVar

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from identity.errors import (
    DependencyUnavailable,
    DomainError,
    InsufficientAssurance,
    NotFound,
    ValidationError,
)
from identity.repository import IdentityRepository
from identity.tokens import Principal
from identity.verification.domain import RealNameStatus
from identity.verification.errors import (
    FaceMismatch,
    FaceServiceUnavailable,
    IdNumberBound,
    RealNameAlreadyVerified,
    RealNameMismatch,
    RealNameNotFound,
    ReferencePhotoMissing,
    TooManyVerificationAttempts,
)
from identity.verification.face import FaceMatch, FaceVerifier
from identity.verification.images import MAX_IMAGE_BYTES, check_image_size
from identity.verification.names import normalise_name
from identity.verification.registry import PopulationRegistry, RegistryResult
from identity.verification.repository import IdNumberTaken, VerificationRepository
from identity.verification.resident_id import parse_resident_id

__all__ = ["RealNameService"]

log = logging.getLogger(__name__)

T = TypeVar("T")

REAL_NAME_ATTEMPTS_PER_DAY = 5
FACE_ATTEMPTS_PER_DAY = 10
_DAY = 86400


async def _redis(op: Awaitable[T]) -> T:
    try:
        return await op
    except (RedisError, OSError):
        raise DependencyUnavailable(
            "Verification is temporarily unavailable; try again shortly.", retry_after=5
        ) from None


class RealNameService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        repo: VerificationRepository,
        events: IdentityRepository,
        registry: PopulationRegistry,
        faces: FaceVerifier,
        *,
        real_name_attempts_per_day: int = REAL_NAME_ATTEMPTS_PER_DAY,
        face_attempts_per_day: int = FACE_ATTEMPTS_PER_DAY,
        max_image_bytes: int = MAX_IMAGE_BYTES,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.repo = repo
        self.events = events
        self.registry = registry
        self.faces = faces
        self.real_name_attempts_per_day = real_name_attempts_per_day
        self.face_attempts_per_day = face_attempts_per_day
        self.max_image_bytes = max_image_bytes

    # L2: real name ---------------------------------------------------------------------

    async def verify_real_name(
        self, principal: Principal, name: object, id_number: object, ip: str
    ) -> RealNameStatus:
        account_id = principal.sub
        try:
            clean_name = normalise_name(name)
            rid = parse_resident_id(id_number)
        except ValidationError as exc:
            await self._event(
                account_id,
                "real-name-failed",
                {"reason": "invalid-" + exc.field.replace("_", "-")},
                ip,
            )
            raise
        current = await self.status(account_id)
        if current.verified:
            # A binding is permanent; repeating it is harmless and costs no registry call.
            if current.id_number_index != self.repo.id_number_index(rid.number):
                await self._event(account_id, "real-name-failed", {"reason": "rebind"}, ip)
                raise RealNameAlreadyVerified(
                    "Your account is already verified with another ID number."
                )
            if current.name != clean_name:
                await self._event(account_id, "real-name-failed", {"reason": "name-mismatch"}, ip)
                raise RealNameMismatch("The name does not match your verified ID number.")
            return current
        await self._count_attempt("rn", account_id, self.real_name_attempts_per_day)
        try:
            result = await self.registry.check(clean_name, rid.number)
        except DomainError as exc:
            await self._event(account_id, "real-name-failed", {"reason": exc.code}, ip)
            raise
        if result is RegistryResult.NAME_MISMATCH:
            await self._event(account_id, "real-name-failed", {"reason": "name-mismatch"}, ip)
            raise RealNameMismatch("The name does not match the ID number in the registry.")
        if result is RegistryResult.NOT_FOUND:
            await self._event(account_id, "real-name-failed", {"reason": "not-found"}, ip)
            raise RealNameNotFound("The population registry has no such ID number.")
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                status = await self.repo.bind(
                    conn,
                    account_id,
                    name=clean_name,
                    id_number=rid.number,
                    birth_date=rid.birth_date,
                    region_code=rid.region_code,
                )
                if status is not None:
                    await self.events.record_event(
                        conn, account_id, "real-name-verified", {"level": "L2"}, ip
                    )
        except IdNumberTaken:
            await self._event(account_id, "real-name-failed", {"reason": "id-number-bound"}, ip)
            raise IdNumberBound(
                "This ID number is already verified on another account. If it is yours, "
                "sign in with that account's phone number."
            ) from None
        if status is None:  # bound to another number by a concurrent request
            await self._event(account_id, "real-name-failed", {"reason": "rebind"}, ip)
            raise RealNameAlreadyVerified(
                "Your account is already verified with another ID number."
            )
        log.info("real name verified", extra={"account": account_id})
        return status

    async def bind_verified_identity(
        self, account_id: str, name: str, id_number: str, *, source: str
    ) -> RealNameStatus:
        """Bind an identity verified outside this flow, without asking the registry.

        For trusted callers only (demo seeding, an operator after an in-person
        check at a service hall); never reachable from a citizen's request.
        Idempotent for the same identity; raises like ``verify_real_name``.
        """
        clean_name = normalise_name(name)
        rid = parse_resident_id(id_number)
        current = await self.status(account_id)
        if current.verified and current.id_number_index == self.repo.id_number_index(rid.number):
            return current
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                status = await self.repo.bind(
                    conn,
                    account_id,
                    name=clean_name,
                    id_number=rid.number,
                    birth_date=rid.birth_date,
                    region_code=rid.region_code,
                )
                if status is not None:
                    await self.events.record_event(
                        conn, account_id, "real-name-verified", {"level": "L2", "source": source}
                    )
        except IdNumberTaken:
            raise IdNumberBound("This ID number is bound to another account.") from None
        if status is None:
            raise RealNameAlreadyVerified("The account is bound to another ID number.")
        return status

    # L3: face ------------------------------------------------------------------------------

    async def verify_face(
        self, principal: Principal, image: bytes, ip: str
    ) -> tuple[RealNameStatus, FaceMatch]:
        principal.require_level(2)
        account_id = principal.sub
        check_image_size(image, image="probe", max_bytes=self.max_image_bytes)
        current = await self.status(account_id)
        if not current.verified or current.id_number is None:
            raise InsufficientAssurance(
                "Verify your real name (L2) before face verification.",
                required_level="L2",
                current_level=f"L{current.assurance_level}",
            )
        await self._count_attempt("face", account_id, self.face_attempts_per_day)
        try:
            reference = await self.registry.reference_photo(current.id_number)
            if reference is None:
                raise ReferencePhotoMissing(
                    "The population registry holds no ID photo for you, so face verification "
                    "is not possible; visit a service hall instead."
                )
            try:
                match = await self.faces.compare(image, reference)
            except BrokenExecutor:
                log.warning("face worker process died during a comparison")
                raise FaceServiceUnavailable(
                    "The face matcher restarted; try again.", retry_after=2
                ) from None
        except DomainError as exc:
            detail: dict[str, Any] = {"reason": exc.code}
            if exc.extra.get("image") in ("probe", "reference"):
                detail["image"] = exc.extra["image"]
            await self._event(account_id, "face-failed", detail, ip)
            raise
        scores = {"score": match.score, "threshold": match.threshold}
        if not match.matched:
            await self._event(account_id, "face-failed", {"reason": "face-mismatch", **scores}, ip)
            raise FaceMismatch(
                "The face in your photo does not match your ID photo. Face the camera in good "
                "light, without glasses or a mask, and try again.",
                **scores,
            )
        async with self.pool.acquire() as conn, conn.transaction():
            status = await self.repo.set_face_verified(conn, account_id)
            if status is None:
                raise NotFound("No such verified account.")
            await self.events.record_event(
                conn, account_id, "face-verified", {"level": "L3", **scores}, ip
            )
        log.info("face verified", extra={"account": account_id})
        return status, match

    # queries other contexts call ----------------------------------------------------

    async def status(self, account_id: str) -> RealNameStatus:
        async with self.pool.acquire() as conn:
            status = await self.repo.status(conn, account_id)
        if status is None:
            raise NotFound("No such account.")
        return status

    async def account_by_id_number(self, id_number: str) -> str | None:
        """The account bound to ``id_number`` (any spelling: full-width, lower-case x)."""
        if not isinstance(id_number, str):
            return None
        number = unicodedata.normalize("NFKC", id_number).strip().upper()
        async with self.pool.acquire() as conn:
            return await self.repo.account_by_index(conn, self.repo.id_number_index(number))

    async def real_name_of(self, account_id: str) -> tuple[str, str] | None:
        """``(name, id_number)`` decrypted, or None before real-name verification.

        For the e-certificate issuer and the OIDC ``real_name`` scope: the caller
        must have checked the citizen's consent; nothing here logs the values.
        """
        async with self.pool.acquire() as conn:
            status = await self.repo.status(conn, account_id)
        if status is None or status.name is None or status.id_number is None:
            return None
        return status.name, status.id_number

    # helpers -------------------------------------------------------------------------------

    async def _count_attempt(self, what: str, account_id: str, limit: int) -> None:
        day = int(time.time() // _DAY)
        key = f"verify:{what}:{account_id}:{day}"
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, _DAY)
        count, _ = await _redis(pipe.execute())
        if int(count) > limit:
            raise TooManyVerificationAttempts(
                f"At most {limit} attempts a day; try again tomorrow.",
                retry_after=_DAY - int(time.time()) % _DAY,
                limit=limit,
            )

    async def _event(self, account_id: str, kind: str, detail: dict[str, Any], ip: str) -> None:
        async with self.pool.acquire() as conn:
            await self.events.record_event(conn, account_id, kind, detail, ip)
