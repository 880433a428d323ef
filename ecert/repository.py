"""All SQL of the e-certificate context. Claims and the stored credential are
encrypted at rest with the vault; callers get domain dataclasses back."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from ecert.domain import Certificate, CertType, Matter, ScannedCertificate, Use, parse_type
from identity.crypto import Vault

Conn = asyncpg.Connection | asyncpg.Pool
_BY_ID = "SELECT * FROM ecert_certificates WHERE id = $1"
_BY_ID_FOR_UPDATE = _BY_ID + " FOR UPDATE"


@dataclass(frozen=True)
class IssuerKeyRow:
    kid: str
    unit_id: str
    private_enc: bytes
    created_at: datetime
    retired_at: datetime | None


@dataclass(frozen=True)
class NewUse:
    use_id: str
    certificate: Certificate | ScannedCertificate  # its id and holder_id are read
    kind: str
    unit_id: str | None
    client_id: str | None
    matter_code: str | None
    result: str
    fields: list[str]


@dataclass(frozen=True)
class NewCertificate:
    id: str
    type_code: str
    issuer_unit_id: str
    holder_id: str
    doc_number: str
    request_mac: bytes
    claims: dict[str, str]
    credential: str
    issuer_kid: str
    valid_from: datetime
    valid_until: datetime | None
    status_list_id: int
    status_idx: int
    issued_by: str | None


#: A counter scan to look up: (account id, unit id, status list id, index in it).
Scan = tuple[str, str, int | None, int | None]

_COUNTER_LOOKUP = """SELECT q.i, EXISTS (SELECT 1 FROM role_grants g WHERE g.account_id = q.sub
       AND ((g.role = 'counter-staff' AND g.unit_id = q.unit)
            OR (g.role = 'platform-admin' AND g.unit_id = ''))) AS allowed,
     c.id, c.type_code, c.holder_id, c.status, c.valid_from, c.valid_until
   FROM unnest($1::text[], $2::text[], $3::int[], $4::int[])
        WITH ORDINALITY AS q(sub, unit, list_id, idx, i)
   LEFT JOIN ecert_certificates c ON c.status_list_id = q.list_id AND c.status_idx = q.idx
   ORDER BY q.i"""


_INSERT_USES = """INSERT INTO ecert_uses (id, certificate_id, holder_id, kind, unit_id,
     client_id, matter_code, result, fields)
   SELECT u.id, u.certificate_id, u.holder_id, u.kind, u.unit_id, u.client_id,
     u.matter_code, u.result, ARRAY(SELECT jsonb_array_elements_text(u.fields::jsonb))
   FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
     $7::text[], $8::text[], $9::text[])
     AS u(id, certificate_id, holder_id, kind, unit_id, client_id, matter_code, result, fields)"""

# The lookup with the insert as a CTE: the insert's parameters move to $5..$13.
_COUNTER_ROUND = (
    "WITH ins AS ("
    + re.sub(r"\$(\d+)", lambda m: f"${int(m[1]) + 4}", _INSERT_USES)
    + ") "
    + _COUNTER_LOOKUP
)


def _use_args(uses: list[NewUse]) -> tuple[list[Any], ...]:
    return (
        [u.use_id for u in uses],
        [u.certificate.id for u in uses],
        [u.certificate.holder_id for u in uses],
        [u.kind for u in uses],
        [u.unit_id for u in uses],
        [u.client_id for u in uses],
        [u.matter_code for u in uses],
        [u.result for u in uses],
        [json.dumps(u.fields) for u in uses],
    )


class EcertRepository:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    # types and matters ------------------------------------------------------------------

    async def upsert_type(self, conn: Conn, t: CertType) -> None:
        schema = {**t.schema_json(), "issuer_units": list(t.issuer_units)}
        await conn.execute(
            """INSERT INTO ecert_types (code, name_zh, name_en, issuer_units, schema)
               VALUES ($1, $2, $3, $4, $5::jsonb)
               ON CONFLICT (code) DO UPDATE SET name_zh = EXCLUDED.name_zh,
                 name_en = EXCLUDED.name_en, issuer_units = EXCLUDED.issuer_units,
                 schema = EXCLUDED.schema, updated_at = now()""",
            t.code,
            t.name_zh,
            t.name_en,
            list(t.issuer_units),
            json.dumps(schema, ensure_ascii=False),
        )

    @staticmethod
    def _type(r: asyncpg.Record) -> CertType:
        schema = json.loads(r["schema"])
        schema["issuer_units"] = list(r["issuer_units"])
        return parse_type(r["code"], r["name_zh"], r["name_en"], schema)

    async def types(self, conn: Conn) -> list[CertType]:
        rows = await conn.fetch("SELECT * FROM ecert_types ORDER BY code")
        return [self._type(r) for r in rows]

    async def type(self, conn: Conn, code: str) -> CertType | None:
        row = await conn.fetchrow("SELECT * FROM ecert_types WHERE code = $1", code)
        return self._type(row) if row else None

    async def upsert_matter(self, conn: Conn, m: Matter) -> None:
        await conn.execute(
            """INSERT INTO ecert_matters (code, name_zh, name_en, fields) VALUES ($1, $2, $3, $4)
               ON CONFLICT (code) DO UPDATE SET name_zh = EXCLUDED.name_zh,
                 name_en = EXCLUDED.name_en, fields = EXCLUDED.fields""",
            m.code,
            m.name_zh,
            m.name_en,
            list(m.fields),
        )

    async def matter(self, conn: Conn, code: str) -> Matter | None:
        r = await conn.fetchrow("SELECT * FROM ecert_matters WHERE code = $1", code)
        return Matter(r["code"], r["name_zh"], r["name_en"], tuple(r["fields"])) if r else None

    async def matters(self, conn: Conn) -> list[Matter]:
        rows = await conn.fetch("SELECT * FROM ecert_matters ORDER BY code")
        return [Matter(r["code"], r["name_zh"], r["name_en"], tuple(r["fields"])) for r in rows]

    # units and accounts (read-only views of identity's tables) ---------------------------

    async def unit_code(self, conn: Conn, unit_id: str) -> str | None:
        code: str | None = await conn.fetchval("SELECT code FROM units WHERE id = $1", unit_id)
        return code

    async def account_exists(self, conn: Conn, account_id: str) -> bool:
        return bool(await conn.fetchval("SELECT 1 FROM accounts WHERE id = $1", account_id))

    async def account_by_id_number(self, conn: Conn, id_number: str) -> str | None:
        index = self.vault.blind_index(id_number, context="id_number")
        account: str | None = await conn.fetchval(
            "SELECT id FROM accounts WHERE id_number_index = $1", index
        )
        return account

    # issuer keys --------------------------------------------------------------------------

    @staticmethod
    def _key(r: asyncpg.Record) -> IssuerKeyRow:
        return IssuerKeyRow(
            r["kid"], r["unit_id"], r["private_enc"], r["created_at"], r["retired_at"]
        )

    async def active_key(self, conn: Conn, unit_id: str) -> IssuerKeyRow | None:
        r = await conn.fetchrow(
            """SELECT * FROM ecert_issuer_keys WHERE unit_id = $1 AND retired_at IS NULL
               ORDER BY created_at DESC LIMIT 1""",
            unit_id,
        )
        return self._key(r) if r else None

    async def key(self, conn: Conn, kid: str) -> IssuerKeyRow | None:
        r = await conn.fetchrow("SELECT * FROM ecert_issuer_keys WHERE kid = $1", kid)
        return self._key(r) if r else None

    async def keys(self, conn: Conn) -> list[IssuerKeyRow]:
        rows = await conn.fetch("SELECT * FROM ecert_issuer_keys ORDER BY unit_id, created_at DESC")
        return [self._key(r) for r in rows]

    async def insert_key(self, conn: Conn, kid: str, unit_id: str, private_enc: bytes) -> None:
        await conn.execute(
            "INSERT INTO ecert_issuer_keys (kid, unit_id, private_enc) VALUES ($1, $2, $3)",
            kid,
            unit_id,
            private_enc,
        )

    async def retire_keys(self, conn: Conn, unit_id: str) -> None:
        await conn.execute(
            """UPDATE ecert_issuer_keys SET retired_at = clock_timestamp()
               WHERE unit_id = $1 AND retired_at IS NULL""",
            unit_id,
        )

    async def lock_unit_keys(self, conn: asyncpg.Connection, unit_id: str) -> None:
        """Serialise key creation per unit (two first issuances must not make two keys)."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('ecert-key:' || $1))", unit_id)

    # status lists -------------------------------------------------------------------------

    async def allocate_index(self, conn: asyncpg.Connection, size: int) -> tuple[int, int]:
        """The next free (list, index). Waits for a concurrent issuance (no SKIP LOCKED: that
        would open a new, nearly empty list for every concurrent issuance); callers take
        the index last in their transaction so the row lock is short."""
        row = await conn.fetchrow(
            """UPDATE ecert_status_lists SET next_idx = next_idx + 1
               WHERE id = (SELECT id FROM ecert_status_lists WHERE next_idx < size
                           ORDER BY id LIMIT 1 FOR UPDATE)
               RETURNING id, next_idx - 1 AS idx"""
        )
        if row is None:
            row = await conn.fetchrow(
                """INSERT INTO ecert_status_lists (size, next_idx) VALUES ($1, 1)
                   RETURNING id, 0 AS idx""",
                size,
            )
        return int(row["id"]), int(row["idx"])

    async def status_list(
        self, conn: Conn, list_id: int
    ) -> tuple[int, list[tuple[int, str]]] | None:
        """The list's size and the (idx, status) of every entry that is not valid now."""
        size = await conn.fetchval("SELECT size FROM ecert_status_lists WHERE id = $1", list_id)
        if size is None:
            return None
        rows = await conn.fetch(
            """SELECT status_idx, CASE WHEN status = 'valid' THEN 'expired' ELSE status END AS s
               FROM ecert_certificates WHERE status_list_id = $1
                 AND (status <> 'valid' OR valid_until <= now())""",
            list_id,
        )
        return int(size), [(int(r["status_idx"]), r["s"]) for r in rows]

    # certificates -------------------------------------------------------------------------

    def _certificate(self, r: asyncpg.Record) -> Certificate:
        return Certificate(
            id=r["id"],
            type_code=r["type_code"],
            issuer_unit_id=r["issuer_unit_id"],
            holder_id=r["holder_id"],
            doc_number=r["doc_number"],
            claims=json.loads(self.vault.decrypt(r["claims_enc"], context="ecert-claims")),
            credential=self.vault.decrypt(r["credential_enc"], context="ecert-credential"),
            issuer_kid=r["issuer_kid"],
            status=r["status"],
            status_reason=r["status_reason"],
            valid_from=r["valid_from"],
            valid_until=r["valid_until"],
            status_list_id=r["status_list_id"],
            status_idx=r["status_idx"],
            issued_at=r["issued_at"],
            updated_at=r["updated_at"],
        )

    async def insert_certificate(self, conn: Conn, c: NewCertificate) -> bool:
        """Insert; False if the issuer already used this document number."""
        status = await conn.execute(
            """INSERT INTO ecert_certificates (id, type_code, issuer_unit_id, holder_id,
                 doc_number, request_mac, claims_enc, credential_enc, issuer_kid, valid_from,
                 valid_until, status_list_id, status_idx, issued_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
               ON CONFLICT (issuer_unit_id, doc_number) DO NOTHING""",
            c.id,
            c.type_code,
            c.issuer_unit_id,
            c.holder_id,
            c.doc_number,
            c.request_mac,
            self.vault.encrypt(json.dumps(c.claims, ensure_ascii=False), context="ecert-claims"),
            self.vault.encrypt(c.credential, context="ecert-credential"),
            c.issuer_kid,
            c.valid_from,
            c.valid_until,
            c.status_list_id,
            c.status_idx,
            c.issued_by,
        )
        return bool(status.endswith(" 1"))

    async def by_document(
        self, conn: Conn, unit_id: str, doc_number: str
    ) -> tuple[Certificate, bytes] | None:
        r = await conn.fetchrow(
            "SELECT * FROM ecert_certificates WHERE issuer_unit_id = $1 AND doc_number = $2",
            unit_id,
            doc_number,
        )
        return (self._certificate(r), bytes(r["request_mac"])) if r else None

    async def certificate(
        self, conn: Conn, cert_id: str, *, lock: bool = False
    ) -> Certificate | None:
        r = await conn.fetchrow(_BY_ID_FOR_UPDATE if lock else _BY_ID, cert_id)
        return self._certificate(r) if r else None

    async def counter_round(
        self, conn: Conn, scans: list[Scan], uses: list[NewUse]
    ) -> list[tuple[bool, ScannedCertificate | None]]:
        """For each scan (account, unit, status list, index): may the account verify for
        the unit, and the certificate at that status reference; and insert the use-log
        rows ``uses``. One statement (the insert a data-modifying CTE, run to completion
        whether or not the select reads it), so one round trip and one commit; if any
        row fails, nothing of it is committed.

        The role rule is ``Organisations.require(("counter-staff",), unit)`` (a platform
        admin passes), read from identity's ``role_grants`` in the same statement, so a
        revoked grant takes effect on the next scan."""
        if not scans:
            await conn.execute(_INSERT_USES, *_use_args(uses))
            return []
        scan_args = (
            [s[0] for s in scans],
            [s[1] for s in scans],
            [s[2] for s in scans],
            [s[3] for s in scans],
        )
        if uses:
            rows = await conn.fetch(_COUNTER_ROUND, *scan_args, *_use_args(uses))
        else:
            rows = await conn.fetch(_COUNTER_LOOKUP, *scan_args)
        # Only the columns a scan needs: the claims and the credential are neither
        # fetched nor decrypted (the answer shows the code's own masked claims).
        return [
            (r[1], ScannedCertificate(r[2], r[3], r[4], r[5], r[6], r[7]) if r[2] else None)
            for r in rows
        ]

    async def holder_certificates(self, conn: Conn, holder_id: str) -> list[Certificate]:
        rows = await conn.fetch(
            "SELECT * FROM ecert_certificates WHERE holder_id = $1 ORDER BY issued_at DESC, id",
            holder_id,
        )
        return [self._certificate(r) for r in rows]

    async def set_status(self, conn: Conn, cert_id: str, status: str, reason: str | None) -> None:
        await conn.execute(
            """UPDATE ecert_certificates SET status = $2, status_reason = $3, updated_at = now()
               WHERE id = $1""",
            cert_id,
            status,
            reason,
        )

    # use log ------------------------------------------------------------------------------

    async def insert_use(
        self,
        conn: Conn,
        *,
        use_id: str,
        certificate: Certificate,
        kind: str,
        unit_id: str | None,
        client_id: str | None,
        matter_code: str | None,
        result: str,
        fields: list[str],
    ) -> None:
        await conn.execute(
            """INSERT INTO ecert_uses (id, certificate_id, holder_id, kind, unit_id, client_id,
                 matter_code, result, fields) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
            use_id,
            certificate.id,
            certificate.holder_id,
            kind,
            unit_id,
            client_id,
            matter_code,
            result,
            fields,
        )

    async def uses(self, conn: Conn, cert_id: str, limit: int, offset: int) -> list[Use]:
        rows = await conn.fetch(
            """SELECT u.*, n.name_zh, n.name_en, o.name AS client_name
               FROM ecert_uses u LEFT JOIN units n ON n.id = u.unit_id
               LEFT JOIN oauth_clients o ON o.client_id = u.client_id
               WHERE u.certificate_id = $1 ORDER BY u.created_at DESC, u.id LIMIT $2 OFFSET $3""",
            cert_id,
            limit,
            offset,
        )
        return [
            Use(
                id=r["id"],
                certificate_id=r["certificate_id"],
                kind=r["kind"],
                unit_id=r["unit_id"],
                unit_name_zh=r["name_zh"],
                unit_name_en=r["name_en"],
                client_id=r["client_id"],
                client_name=r["client_name"],
                matter_code=r["matter_code"],
                result=r["result"],
                fields=tuple(r["fields"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]


def jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
