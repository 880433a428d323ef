"""Identity's value objects: accounts, sessions, units, role grants, clients."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

UnitKind = Literal["direct", "municipal", "district", "soe"]
UNIT_KINDS: tuple[str, ...] = ("direct", "municipal", "district", "soe")
PLATFORM_ROLES: tuple[str, ...] = ("platform-admin", "reviewer")
UNIT_ROLES: tuple[str, ...] = ("unit-admin", "developer", "counter-staff", "issuer", "finance")
ROLES = PLATFORM_ROLES + UNIT_ROLES


@dataclass(frozen=True)
class Account:
    id: str
    phone: str  # E.164, decrypted
    assurance_level: int
    created_at: datetime
    real_name_at: datetime | None = None
    face_at: datetime | None = None

    @property
    def masked_phone(self) -> str:
        return mask_phone(self.phone)


@dataclass(frozen=True)
class Session:
    id: str
    account_id: str
    device: str
    ip: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    account_id: str


@dataclass(frozen=True)
class Unit:
    id: str
    code: str
    name_zh: str
    name_en: str
    kind: str
    district_code: str
    created_at: datetime


@dataclass(frozen=True)
class RoleGrant:
    account_id: str
    role: str
    unit_id: str | None  # None for platform roles

    @property
    def claim(self) -> str:
        return self.role if self.unit_id is None else f"{self.role}:{self.unit_id}"


@dataclass(frozen=True)
class SecurityEvent:
    id: int
    kind: str
    detail: dict[str, object]
    ip: str
    created_at: datetime


def mask_phone(e164: str) -> str:
    """+8613812345678 -> +86 138****5678 (the form Chinese apps show)."""
    if e164.startswith("+86") and len(e164) == 14:
        return f"+86 {e164[3:6]}****{e164[-4:]}"
    return e164[:-6] + "****" + e164[-2:] if len(e164) > 8 else "****"
