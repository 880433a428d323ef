"""Operators' commands: role grants, key rotation and the SMS outbox."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from identity.errors import DomainError
from identity.phone import normalise_phone
from server.bootstrap import Services
from server.cli.common import with_services
from server.settings import Settings


def register(sub: Any) -> None:
    admin = sub.add_parser("admin", help="grant roles", description="Grant roles to accounts.")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, metavar="ACTION")
    g = admin_sub.add_parser(
        "grant",
        help="grant a role to the account with a phone number",
        description="Grant a role; the account is created if the phone has not signed in yet.",
    )
    g.add_argument("--phone", required=True)
    g.add_argument(
        "--role",
        required=True,
        help="platform-admin, reviewer, unit-admin, developer, counter-staff, issuer or finance",
    )
    g.add_argument("--unit", help="unit id or code (unit roles only)")
    g.set_defaults(func=grant)

    keys = sub.add_parser(
        "keys",
        help="manage the platform signing keys",
        description="Manage the platform signing keys (the key ring).",
    )
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    r = keys_sub.add_parser(
        "rotate",
        help="add a new signing key; old public keys stay published",
        description="Add a signing key. It is published at once and signs after a short "
        "delay so every worker knows it first; retired keys stay in the JWKS for a day.",
    )
    r.add_argument("--alg", choices=("ES256", "EdDSA"), default="ES256")
    r.add_argument("--now", action="store_true", help="sign with the new key at once")
    r.set_defaults(func=rotate)

    sms = sub.add_parser(
        "sms",
        help="the development SMS outbox",
        description="Read the SMS outbox (the development SMS adapter).",
    )
    sms_sub = sms.add_subparsers(dest="sms_command", required=True, metavar="ACTION")
    o = sms_sub.add_parser(
        "outbox",
        help="print the messages sent to a phone as JSON lines",
        description="Print messages sent to a phone, newest last.",
    )
    o.add_argument("--phone", required=True)
    o.add_argument("--limit", type=int, default=20)
    o.set_defaults(func=outbox)


def _fail(exc: DomainError) -> int:
    print(f"superapp: {exc.code}: {exc.detail}", file=sys.stderr)
    return 1


def grant(settings: Settings, args: argparse.Namespace) -> int:
    async def job(svc: Services) -> dict[str, Any]:
        unit_id = None
        if args.unit:
            unit_id = args.unit
            if not unit_id.startswith("unt_"):
                unit_id = await svc.pool.fetchval("SELECT id FROM units WHERE code = $1", args.unit)
                if unit_id is None:
                    from identity.errors import NotFound

                    raise NotFound(f"No unit with code {args.unit!r}.")
        account, g = await svc.orgs.grant(args.phone, args.role, unit_id, granted_by=None)
        return {"sub": account.id, "role": g.role, "unit_id": g.unit_id}

    try:
        print(json.dumps(with_services(settings, job)))
    except DomainError as exc:
        return _fail(exc)
    return 0


def rotate(settings: Settings, args: argparse.Namespace) -> int:
    async def job(svc: Services) -> str:
        return await svc.keys.rotate(args.alg, immediate=args.now)

    print(json.dumps({"kid": with_services(settings, job), "alg": args.alg}))
    return 0


def outbox(settings: Settings, args: argparse.Namespace) -> int:
    async def job(svc: Services) -> list[Any]:
        return await svc.signin.sms_outbox(args.phone, args.limit)

    try:
        phone = normalise_phone(args.phone)  # the E.164 form the messages went to
        for sent_at, body in with_services(settings, job):
            print(
                json.dumps(
                    {"sent_at": sent_at.isoformat(), "phone": phone, "text": body},
                    ensure_ascii=False,
                )
            )
    except DomainError as exc:
        return _fail(exc)
    return 0
