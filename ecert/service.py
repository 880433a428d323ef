"""Use cases of issuance and the wallet: issue (idempotent on the issuer's
document number), revoke / suspend / resume, list and open one's own
certificates and their use log; types and matters for the demo and admins."""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from ecert.domain import Certificate, CertType, Matter, Use, parse_time, parse_type
from ecert.errors import (
    CertificateNotFound,
    HolderNotFound,
    IdempotencyConflict,
    StatusChangeNotAllowed,
    TypeNotIssuable,
    UnknownCertificateType,
)
from ecert.issuers import IssuerKeys
from ecert.presentation.keys import sign_credential
from ecert.repository import EcertRepository, NewCertificate
from identity.crypto import Vault
from identity.errors import Forbidden, ValidationError
from identity.ids import new_id
from identity.organisations import Organisations
from identity.tokens import Principal

TYPE_CACHE_SECONDS = 30.0  # type definitions change rarely; QR and verify read them often
STATUS_LIST_SIZE = 65536  # indexes below 2**16 keep the QR's status claim at 3 bytes
ISSUE_SCOPE = "ecert:issue"  # a unit server's client token needs it to issue


@dataclass(frozen=True)
class IssueResult:
    certificate: Certificate
    created: bool


class Certificates:
    def __init__(
        self,
        pool: asyncpg.Pool,
        repo: EcertRepository,
        vault: Vault,
        issuers: IssuerKeys,
        orgs: Organisations,
    ) -> None:
        self.pool = pool
        self.repo = repo
        self.vault = vault
        self.issuers = issuers
        self.orgs = orgs
        self._types: dict[str, tuple[float, CertType]] = {}

    # types and matters ------------------------------------------------------------------

    async def upsert_type(
        self, code: object, name_zh: object, name_en: object, schema: object
    ) -> CertType:
        t = parse_type(code, name_zh, name_en, schema)
        async with self.pool.acquire() as conn:
            await self.repo.upsert_type(conn, t)
        self._types.pop(t.code, None)
        return t

    async def types(self) -> list[CertType]:
        async with self.pool.acquire() as conn:
            return await self.repo.types(conn)

    def type_cached(self, code: str) -> bool:
        """Whether ``type(code)`` would answer from the cache, with no round trip."""
        cached = self._types.get(code)
        return cached is not None and time.monotonic() - cached[0] < TYPE_CACHE_SECONDS

    async def type(self, code: str, conn: asyncpg.Connection | None = None) -> CertType:
        """A type by code, cached for a few seconds (presentation and verification hot path).

        Pass ``conn`` when already holding a pooled connection (never acquire a second)."""
        cached = self._types.get(code)
        now = time.monotonic()
        if cached is not None and now - cached[0] < TYPE_CACHE_SECONDS:
            return cached[1]
        if conn is not None:
            t = await self.repo.type(conn, code)
        else:
            async with self.pool.acquire() as own:
                t = await self.repo.type(own, code)
        if t is None:
            raise UnknownCertificateType(f"No certificate type {code!r}.")
        self._types[code] = (now, t)
        return t

    async def upsert_matter(
        self, code: str, name_zh: str, name_en: str, fields: tuple[str, ...]
    ) -> Matter:
        m = Matter(code, name_zh, name_en, fields)
        async with self.pool.acquire() as conn:
            await self.repo.upsert_matter(conn, m)
        return m

    async def matters(self) -> list[Matter]:
        async with self.pool.acquire() as conn:
            return await self.repo.matters(conn)

    # who may act for a unit ----------------------------------------------------------------

    async def issuing_unit(self, who: Principal, unit_id: object) -> str:
        """The unit ``who`` issues for: a client's own unit, or a unit where staff is issuer."""
        if who.kind == "client":
            if who.unit_id is None or ISSUE_SCOPE not in who.scope:
                raise Forbidden(f"The client token needs the scope {ISSUE_SCOPE}.")
            if unit_id not in (None, "", who.unit_id):
                raise Forbidden("A client issues for its own unit only.")
            return who.unit_id
        if not unit_id:
            units = [r.split(":", 1)[1] for r in who.roles if r.startswith("issuer:")]
            if len(units) != 1:
                raise ValidationError("unit_id", "Say which unit issues the certificate.")
            unit_id = units[0]
        if not isinstance(unit_id, str):
            raise ValidationError("unit_id", "Must be a unit id.")
        await self.orgs.require(who, ("issuer",), unit_id)
        return unit_id

    # issuance ---------------------------------------------------------------------------

    async def issue(self, who: Principal, body: Mapping[str, Any]) -> IssueResult:
        unit_id = await self.issuing_unit(who, body.get("unit_id"))
        return await self.issue_for_unit(unit_id, body, issued_by=who.sub)

    async def issue_for_unit(
        self, unit_id: str, body: Mapping[str, Any], *, issued_by: str | None
    ) -> IssueResult:
        """Issue without an authorisation check (the caller did it: API or operator CLI)."""
        type_code, doc_number = body.get("type"), body.get("doc_number")
        if not isinstance(type_code, str) or not type_code:
            raise ValidationError("type", "The certificate type code is required.")
        if not isinstance(doc_number, str) or not 1 <= len(doc_number.strip()) <= 64:
            raise ValidationError("doc_number", "The issuer's document number (1-64 characters).")
        doc_number = doc_number.strip()
        now = datetime.now(UTC)
        valid_from = parse_time("valid_from", body.get("valid_from"), now)
        valid_until = parse_time("valid_until", body.get("valid_until"))
        assert valid_from is not None
        async with self.pool.acquire() as conn:
            t = await self.repo.type(conn, type_code)
            if t is None:
                raise UnknownCertificateType(f"No certificate type {type_code!r}.")
            unit_code = await self.repo.unit_code(conn, unit_id)
            if unit_code is None or unit_code not in t.issuer_units:
                raise TypeNotIssuable(f"This unit may not issue {t.code}.")
            claims = t.validate_claims(body.get("claims"))
            holder = await self._holder(conn, body)
        valid_until = self._validity(t, valid_from, valid_until)
        # The MAC covers the request as sent, so a retry with the same body matches.
        request = {
            "type": t.code,
            "holder": holder,
            "claims": claims,
            "valid_from": body.get("valid_from"),
            "valid_until": body.get("valid_until"),
        }
        mac = self.vault.blind_index(
            json.dumps(request, sort_keys=True, ensure_ascii=False), context="ecert-request"
        )
        async with self.pool.acquire() as conn, conn.transaction():
            existing = await self.repo.by_document(conn, unit_id, doc_number)
            if existing is not None:
                return self._same(existing, mac)
            key, kid = await self.issuers.signing_key(conn, unit_id)
            cert_id = new_id("crt")
            credential = sign_credential(
                key,
                kid,
                {
                    "jti": cert_id,
                    "iss": unit_id,
                    "type": t.code,
                    "doc_number": doc_number,
                    "claims": claims,
                    "iat": int(now.timestamp()),
                    "nbf": int(valid_from.timestamp()),
                    **({"exp": int(valid_until.timestamp())} if valid_until else {}),
                },
            )
            list_id, idx = await self.repo.allocate_index(conn, STATUS_LIST_SIZE)
            new = NewCertificate(
                id=cert_id,
                type_code=t.code,
                issuer_unit_id=unit_id,
                holder_id=holder,
                doc_number=doc_number,
                request_mac=mac,
                claims=claims,
                credential=credential,
                issuer_kid=kid,
                valid_from=valid_from,
                valid_until=valid_until,
                status_list_id=list_id,
                status_idx=idx,
                issued_by=issued_by,
            )
            inserted = await self.repo.insert_certificate(conn, new)
            if inserted:
                cert = await self.repo.certificate(conn, cert_id)
                assert cert is not None
                return IssueResult(cert, True)
        # A concurrent request with this document number won; the index we took stays unused.
        async with self.pool.acquire() as conn:
            existing = await self.repo.by_document(conn, unit_id, doc_number)
        assert existing is not None
        return self._same(existing, mac)

    @staticmethod
    def _same(existing: tuple[Certificate, bytes], mac: bytes) -> IssueResult:
        cert, stored = existing
        if not hmac.compare_digest(stored, mac):
            raise IdempotencyConflict(
                "This document number was already issued with different content."
            )
        return IssueResult(cert, False)

    async def _holder(self, conn: asyncpg.Connection, body: Mapping[str, Any]) -> str:
        sub, id_number = body.get("holder_sub"), body.get("holder_id_number")
        if (sub is None) == (id_number is None):
            raise ValidationError("holder_sub", "Give exactly one of holder_sub, holder_id_number.")
        if sub is not None:
            if not isinstance(sub, str) or not await self.repo.account_exists(conn, sub):
                raise HolderNotFound("No account has this subject.")
            return sub
        if not isinstance(id_number, str) or not 15 <= len(id_number.strip()) <= 18:
            raise ValidationError("holder_id_number", "Must be a resident ID number.")
        account = await self.repo.account_by_id_number(conn, id_number.strip().upper())
        if account is None:
            raise HolderNotFound("No real-name verified account has this ID number.")
        return account

    @staticmethod
    def _validity(t: CertType, start: datetime, until: datetime | None) -> datetime | None:
        if until is not None and until <= start:
            raise ValidationError("valid_until", "Must be after valid_from.")
        if until is None and t.requires_until:
            raise ValidationError("valid_until", f"A {t.code} certificate needs an end date.")
        if t.max_days is not None:
            longest = start + timedelta(days=t.max_days)
            if until is None:
                return longest
            if until > longest:
                raise ValidationError("valid_until", f"At most {t.max_days} days after valid_from.")
        return until

    # status changes ---------------------------------------------------------------------

    async def change_status(
        self, who: Principal, cert_id: str, action: str, reason: object
    ) -> Certificate:
        if action != "resume" and (not isinstance(reason, str) or not reason.strip()):
            raise ValidationError("reason", "Say why.")
        async with self.pool.acquire() as conn:
            cert = await self.repo.certificate(conn, cert_id)
        if cert is None:
            raise CertificateNotFound()
        await self.issuing_unit(who, cert.issuer_unit_id)
        target = {"revoke": "revoked", "suspend": "suspended", "resume": "valid"}[action]
        async with self.pool.acquire() as conn, conn.transaction():
            locked = await self.repo.certificate(conn, cert_id, lock=True)
            assert locked is not None
            allowed = {
                "revoked": ("valid", "suspended"),
                "suspended": ("valid",),
                "valid": ("suspended",),
            }[target]
            if locked.status == target and action != "resume":
                return locked  # repeating a revoke or suspend is harmless
            if locked.status not in allowed:
                raise StatusChangeNotAllowed(f"A {locked.status} certificate cannot {action}.")
            await self.repo.set_status(
                conn, cert_id, target, reason.strip() if isinstance(reason, str) else None
            )
            updated = await self.repo.certificate(conn, cert_id)
        assert updated is not None
        return updated

    # wallet -----------------------------------------------------------------------------

    async def wallet(self, holder_id: str) -> list[tuple[Certificate, CertType]]:
        async with self.pool.acquire() as conn:
            certs = await self.repo.holder_certificates(conn, holder_id)
            types = {t.code: t for t in await self.repo.types(conn)}
        return [(c, types[c.type_code]) for c in certs]

    async def own(self, holder_id: str, cert_id: str) -> Certificate:
        """The holder's certificate; someone else's is indistinguishable from none."""
        async with self.pool.acquire() as conn:
            cert = await self.repo.certificate(conn, cert_id)
        if cert is None or cert.holder_id != holder_id:
            raise CertificateNotFound()
        return cert

    async def uses(self, holder_id: str, cert_id: str, limit: int, offset: int) -> list[Use]:
        await self.own(holder_id, cert_id)
        async with self.pool.acquire() as conn:
            return await self.repo.uses(conn, cert_id, limit, offset)
