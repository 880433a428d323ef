"""Certificate-free handling (免证办): a mini-app's server reads a citizen's
certificate of one type, with the citizen's consent to scope ``ecert:<type>``
for that client, as a credential carrying the issuer's own signature.

The citizen is named by the pairwise subject the mini-app knows
(``identity/pairwise.py``: sector = the client's unit), resolved through the
index of subjects handed out (ID tokens, userinfo, the gateway's assertion):
one indexed lookup, whatever the number of holders; a subject never handed
out to that unit names nobody.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from ecert.domain import Certificate
from ecert.errors import CertificateNotFound, ConsentRequired
from ecert.presenting import Presentations, status_error
from ecert.repository import EcertRepository
from ecert.service import Certificates
from identity.consents import Consents
from identity.errors import ValidationError
from identity.pairwise import resolve_pairwise
from identity.tokens import Principal


@dataclass(frozen=True)
class SharedCertificate:
    certificate: Certificate
    read_id: str


class Sharing:
    def __init__(
        self,
        pool: asyncpg.Pool,
        repo: EcertRepository,
        certificates: Certificates,
        presentations: Presentations,
        consents: Consents,
    ) -> None:
        self.pool = pool
        self.repo = repo
        self.certificates = certificates
        self.presentations = presentations
        self.consents = consents

    async def _holder(self, type_code: str, sector: str, sub: str) -> list[Certificate]:
        async with self.pool.acquire() as conn:
            holder = await resolve_pairwise(conn, sector, sub)
            if holder is None:
                return []
            certs = await self.repo.holder_certificates(conn, holder)
        return [c for c in certs if c.type_code == type_code]

    async def read(
        self, who: Principal, type_code: str, sub: object, matter_code: object = None
    ) -> SharedCertificate:
        if who.kind != "client" or who.client_id is None or who.unit_id is None:
            raise ValidationError("token", "This call needs a mini-app's client token.")
        if not isinstance(sub, str) or not sub.startswith("pw_") or len(sub) > 64:
            raise ValidationError("sub", "The citizen's pairwise subject (pw_...).")
        matter = matter_code if isinstance(matter_code, str) and matter_code else None
        await self.certificates.type(type_code)
        certs = await self._holder(type_code, who.unit_id, sub)
        if not certs:
            raise CertificateNotFound("This citizen holds no certificate of this type.")
        now = datetime.now(UTC)
        cert = next((c for c in certs if c.effective_status(now) == "valid"), certs[0])
        log = self.presentations.record_use  # one use log for counters and services
        if not await self.consents.has(cert.holder_id, who.client_id, f"ecert:{type_code}"):
            await log(
                cert,
                who.unit_id,
                matter,
                ConsentRequired.code,
                [],
                kind="service-read",
                client_id=who.client_id,
            )
            raise ConsentRequired(f"The citizen has not allowed ecert:{type_code} for this app.")
        error = status_error(cert, now)
        if error is not None:
            await log(
                cert,
                who.unit_id,
                matter,
                error.code,
                [],
                kind="service-read",
                client_id=who.client_id,
            )
            raise error
        await self.presentations.check_issuer_signature(cert)
        read_id = await log(
            cert,
            who.unit_id,
            matter,
            "valid",
            sorted(cert.claims),
            kind="service-read",
            client_id=who.client_id,
        )
        return SharedCertificate(cert, read_id)
