"""Demo data, seeded idempotently: units, staff and citizen accounts with
their roles. ``superapp demo --json`` prints what was seeded in one stable
shape: ``{"accounts": {...}, "clients": {...}, "apps": {...}, ...}``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.bootstrap import Services
from server.demo.ecert import seed_ecert
from server.demo.identity import seed_identity
from server.demo.miniapps import seed_miniapps
from server.demo.oauth import seed_oauth_clients
from server.demo.payments import seed_payments
from server.demo.shenzhen_units import UNITS

Progress = Callable[[str, int, int], None]

# (name, phone, role, unit code or None)
ACCOUNTS: list[tuple[str, str, str | None, str | None]] = [
    ("platform_admin", "+8613800000001", "platform-admin", None),
    ("citizen", "+8613800000002", None, None),
    ("reviewer", "+8613800000003", "reviewer", None),
    ("unit_admin", "+8613800000004", "unit-admin", "sz-gsdata"),
    ("developer", "+8613800000005", "developer", "sz-gsdata"),
    ("counter_staff", "+8613800000006", "counter-staff", "sz-psb"),
    ("issuer", "+8613800000007", "issuer", "sz-psb"),
    ("finance", "+8613800000008", "finance", "sz-gsdata"),
]


async def seed(svc: Services, progress: Progress | None = None) -> dict[str, Any]:
    units: dict[str, str] = {}
    for i, u in enumerate(UNITS, 1):
        unit, _ = await svc.orgs.upsert_unit(
            code=u.code,
            name_zh=u.name_zh,
            name_en=u.name_en,
            kind=u.kind,
            district_code=u.district_code,
        )
        units[unit.code] = unit.id
        if progress:
            progress("units", i, len(UNITS))
    accounts: dict[str, dict[str, Any]] = {}
    for name, phone, role, unit_code in ACCOUNTS:
        unit_id = units[unit_code] if unit_code else None
        if role:
            account, _ = await svc.orgs.grant(phone, role, unit_id, granted_by=None)
        else:
            async with svc.pool.acquire() as conn:
                account, _ = await svc.identity_repo.get_or_create_account(conn, phone)
        entry: dict[str, Any] = {"phone": phone, "sub": account.id}
        if role:
            entry["role"] = role
        if unit_id:
            entry["unit_id"] = unit_id
        accounts[name] = entry
    registry = await seed_identity(svc, accounts)
    ecert = await seed_ecert(svc, accounts["citizen"]["sub"])
    accounts["citizen"]["certificates"] = {"resident_id": ecert.pop("resident_id")}
    payments = await seed_payments(svc, units)
    miniapps = await seed_miniapps(svc, units, progress)
    await svc.routes.load_all()
    return {
        "accounts": accounts,
        "clients": {**await seed_oauth_clients(svc, units), "merchant": payments["client"]},
        "simulators": payments["simulators"],
        "apps": {"echo": miniapps["echo"]},
        "miniapps": {"count": miniapps["count"]},
        "units": {"count": len(units), "by_code": units},
        "registry": registry,
        "ecert": ecert,
    }
