"""Units (the organisations every context refers to) and role grants.

Platform roles (``platform-admin``, ``reviewer``) have no unit; unit roles
(``unit-admin``, ``developer``, ``counter-staff``, ``issuer``, ``finance``)
are held per unit. Every check reads the grants from PostgreSQL so that a
withdrawn grant takes effect at once; a member of one unit never acts for another.
"""

from __future__ import annotations

import asyncpg

from identity.domain import PLATFORM_ROLES, ROLES, UNIT_KINDS, Account, RoleGrant, Unit
from identity.errors import Forbidden, NotFound, ValidationError
from identity.phone import normalise_phone
from identity.repository import IdentityRepository
from identity.tokens import Principal


class Organisations:
    def __init__(self, pool: asyncpg.Pool, repo: IdentityRepository) -> None:
        self.pool = pool
        self.repo = repo

    async def require(
        self, who: Principal, roles: tuple[str, ...], unit_id: str | None = None
    ) -> None:
        """Allow if ``who`` holds one of ``roles`` for ``unit_id`` (or is platform admin)."""
        if who.kind != "user":
            raise Forbidden("This action needs a signed-in staff member.")
        async with self.pool.acquire() as conn:
            if await self.repo.has_role(conn, who.sub, ("platform-admin",), None):
                return
            platform = tuple(r for r in roles if r in PLATFORM_ROLES)
            unit_roles = tuple(r for r in roles if r not in PLATFORM_ROLES)
            if platform and await self.repo.has_role(conn, who.sub, platform, None):
                return
            if (
                unit_roles
                and unit_id
                and await self.repo.has_role(conn, who.sub, unit_roles, unit_id)
            ):
                return
        raise Forbidden(f"This action needs the role {' or '.join(roles)}.")

    async def has_role(self, account_id: str, role: str, unit_id: str | None) -> bool:
        async with self.pool.acquire() as conn:
            return await self.repo.has_role(conn, account_id, (role,), unit_id)

    async def create_unit(
        self,
        who: Principal,
        *,
        code: object,
        name_zh: object,
        name_en: object,
        kind: object,
        district_code: object,
    ) -> tuple[Unit, bool]:
        await self.require(who, ("platform-admin",))
        return await self.upsert_unit(
            code=code, name_zh=name_zh, name_en=name_en, kind=kind, district_code=district_code
        )

    async def upsert_unit(
        self, *, code: object, name_zh: object, name_en: object, kind: object, district_code: object
    ) -> tuple[Unit, bool]:
        """Create a unit, or return the one with this code (idempotent; demo and CLI)."""
        code_s = _text("code", code, 64)
        if not code_s.replace("-", "").replace("_", "").isalnum() or not code_s.isascii():
            raise ValidationError("code", "Use letters, digits, '-' and '_' only.")
        if kind not in UNIT_KINDS:
            raise ValidationError("kind", f"Must be one of {', '.join(UNIT_KINDS)}.")
        district = _text("district_code", district_code, 6)
        if not (district.isascii() and district.isdigit() and len(district) == 6):
            raise ValidationError("district_code", "Must be a 6-digit administrative code.")
        async with self.pool.acquire() as conn:
            return await self.repo.create_unit(
                conn,
                code_s,
                _text("name_zh", name_zh, 100),
                _text("name_en", name_en, 200),
                str(kind),
                district,
            )

    async def units(self, kind: str | None, limit: int, offset: int) -> list[Unit]:
        async with self.pool.acquire() as conn:
            return await self.repo.units(conn, kind, limit, offset)

    async def unit(self, unit_id: str) -> Unit:
        async with self.pool.acquire() as conn:
            unit = await self.repo.unit(conn, unit_id)
        if unit is None:
            raise NotFound("No such unit.")
        return unit

    async def add_member(
        self, who: Principal, unit_id: str, raw_phone: object, role: object
    ) -> tuple[Account, RoleGrant]:
        if role not in ROLES:
            raise ValidationError("role", f"Must be one of {', '.join(ROLES)}.")
        role_s = str(role)
        if role_s in PLATFORM_ROLES:
            raise ValidationError("role", "Platform roles are not granted through a unit.")
        await self.unit(unit_id)
        await self.require(who, ("unit-admin",), unit_id)
        return await self.grant(raw_phone, role_s, unit_id, granted_by=who.sub)

    async def grant(
        self, raw_phone: object, role: str, unit_id: str | None, *, granted_by: str | None
    ) -> tuple[Account, RoleGrant]:
        """Grant a role to the account with this phone, creating the account if needed
        (staff may be added before they first sign in)."""
        if role not in ROLES:
            raise ValidationError("role", f"Must be one of {', '.join(ROLES)}.")
        if (role in PLATFORM_ROLES) != (unit_id is None):
            raise ValidationError("unit", "Unit roles need a unit; platform roles take none.")
        phone = normalise_phone(raw_phone)
        async with self.pool.acquire() as conn, conn.transaction():
            if unit_id is not None and await self.repo.unit(conn, unit_id) is None:
                raise NotFound("No such unit.")
            account, _ = await self.repo.get_or_create_account(conn, phone)
            if await self.repo.grant_role(conn, account.id, role, unit_id, granted_by):
                await self.repo.record_event(
                    conn, account.id, "role-granted", {"role": role, "unit": unit_id}
                )
        return account, RoleGrant(account.id, role, unit_id)

    async def roles_of(self, account_id: str) -> list[RoleGrant]:
        async with self.pool.acquire() as conn:
            return await self.repo.roles_of(conn, account_id)


def _text(field: str, value: object, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "This field is required.")
    if len(value) > max_len:
        raise ValidationError(field, f"At most {max_len} characters.")
    return value.strip()
