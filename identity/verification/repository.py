"""SQL of real-name verification: the identity columns of ``accounts``.

The name and the ID number are stored encrypted (vault contexts ``name`` and
``id_number``); ``id_number_index`` is their HMAC blind index and carries the
UNIQUE constraint that binds one ID number to one account. Every method takes
the connection of the caller's transaction.
"""

from __future__ import annotations

from datetime import date
from typing import TypeAlias

import asyncpg

from identity.crypto import Vault
from identity.verification.domain import RealNameStatus

Conn: TypeAlias = asyncpg.Connection

ID_NUMBER_CONSTRAINT = "accounts_id_number_index_key"
_COLUMNS = """id, assurance_level, name_enc, id_number_enc, id_number_index, birth_date,
              region_code, real_name_at, face_at"""


class IdNumberTaken(Exception):
    """The UNIQUE index refused the binding: another account holds this ID number."""


class VerificationRepository:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def id_number_index(self, id_number: str) -> bytes:
        return self.vault.blind_index(id_number, context="id_number")

    def _status(self, r: asyncpg.Record) -> RealNameStatus:
        name = r["name_enc"]
        number = r["id_number_enc"]
        return RealNameStatus(
            account_id=r["id"],
            assurance_level=r["assurance_level"],
            name=self.vault.decrypt(name, context="name") if name else None,
            id_number=self.vault.decrypt(number, context="id_number") if number else None,
            id_number_index=r["id_number_index"],
            birth_date=r["birth_date"],
            region_code=r["region_code"],
            real_name_at=r["real_name_at"],
            face_at=r["face_at"],
        )

    async def status(self, conn: Conn, account_id: str) -> RealNameStatus | None:
        r = await conn.fetchrow(f"SELECT {_COLUMNS} FROM accounts WHERE id = $1", account_id)  # noqa: S608 - constant column list
        return self._status(r) if r else None

    async def account_by_index(self, conn: Conn, index: bytes) -> str | None:
        return await conn.fetchval("SELECT id FROM accounts WHERE id_number_index = $1", index)

    async def bind(
        self,
        conn: Conn,
        account_id: str,
        *,
        name: str,
        id_number: str,
        birth_date: date,
        region_code: str,
    ) -> RealNameStatus | None:
        """Bind the identity and raise the level to at least L2.

        Returns None when the account is already bound to another ID number
        (the WHERE clause makes that check and the write one statement); raises
        :class:`IdNumberTaken` when another account holds the number: the
        UNIQUE index is the serialisation point, so of two concurrent bindings
        of one number exactly one commits.
        """
        try:
            r = await conn.fetchrow(
                f"""UPDATE accounts SET
                       name_enc = $2, id_number_enc = $3, id_number_index = $4,
                       birth_date = $5, region_code = $6,
                       assurance_level = GREATEST(assurance_level, 2),
                       real_name_at = COALESCE(real_name_at, now())
                   WHERE id = $1 AND (id_number_index IS NULL OR id_number_index = $4)
                   RETURNING {_COLUMNS}""",  # noqa: S608 - constant column list
                account_id,
                self.vault.encrypt(name, context="name"),
                self.vault.encrypt(id_number, context="id_number"),
                self.id_number_index(id_number),
                birth_date,
                region_code,
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == ID_NUMBER_CONSTRAINT:
                raise IdNumberTaken() from None
            raise
        return self._status(r) if r else None

    async def set_face_verified(self, conn: Conn, account_id: str) -> RealNameStatus | None:
        """Raise the level to L3; None when the account has no bound identity."""
        r = await conn.fetchrow(
            f"""UPDATE accounts SET assurance_level = 3, face_at = now()
               WHERE id = $1 AND id_number_index IS NOT NULL
               RETURNING {_COLUMNS}""",  # noqa: S608 - constant column list
            account_id,
        )
        return self._status(r) if r else None
