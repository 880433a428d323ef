"""``superapp clients``: register OAuth 2 / OpenID Connect clients (mini-apps,
units' servers). The secret is printed once and stored only hashed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from identity.errors import DomainError, NotFound
from identity.oauth.redirects import validate_redirect_uris
from server.bootstrap import Services
from server.cli.common import with_services
from server.settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser(
        "clients",
        help="register OAuth clients (mini-apps, unit servers)",
        description="Register OAuth 2 / OpenID Connect clients.",
    )
    actions = p.add_subparsers(dest="clients_command", required=True, metavar="ACTION")
    c = actions.add_parser(
        "create",
        help="register a client; prints its id and secret (shown once) as JSON",
        description="Register a client of a unit. Prints JSON with client_id and "
        "client_secret; the secret is shown only this once.",
    )
    c.add_argument("--unit", required=True, help="unit id or code")
    c.add_argument("--name", required=True, help="the name citizens see on the consent page")
    c.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="an exact redirect URI (repeatable): https, http on loopback, or app scheme",
    )
    c.add_argument(
        "--scope",
        action="append",
        default=[],
        help="an extra allowed scope (repeatable): real_name, or client_credentials scopes",
    )
    c.add_argument("--public", action="store_true", help="a public client (no secret; PKCE)")
    c.add_argument("--app-id", help="the mini-app this client belongs to")
    c.add_argument(
        "--public-jwk",
        help="authenticate with private_key_jwt: a file holding the client's public JWK "
        "(EC P-256 or Ed25519); no secret is issued",
    )
    c.set_defaults(func=create)


def create(settings: Settings, args: argparse.Namespace) -> int:
    try:
        redirect_uris = validate_redirect_uris(tuple(args.redirect_uri))
    except DomainError as exc:
        print(f"superapp: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1

    jwk = None
    if args.public_jwk:
        try:
            with open(args.public_jwk, encoding="utf-8") as f:
                jwk = f.read()
        except OSError as exc:
            print(f"superapp: cannot read {args.public_jwk}: {exc.strerror}", file=sys.stderr)
            return 1

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.pool.acquire() as conn:
            unit_id = await svc.oidc.repo.unit_id(conn, args.unit)
        if unit_id is None:
            raise NotFound(f"No unit {args.unit!r} (give its id or code).")
        client, secret = await svc.clients.create(
            unit_id=unit_id,
            name=args.name,
            client_type="public" if args.public else "confidential",
            redirect_uris=redirect_uris,
            allowed_scopes=tuple(args.scope),
            app_id=args.app_id,
            public_jwk=jwk,
        )
        return {
            "client_id": client.client_id,
            "client_secret": secret,
            "client_type": client.client_type,
            "name": client.name,
            "unit_id": client.unit_id,
            "app_id": client.app_id,
            "redirect_uris": list(client.redirect_uris),
            "allowed_scopes": list(client.allowed_scopes),
            "issuer": settings.issuer,
        }

    try:
        result = with_services(settings, job)
    except DomainError as exc:
        print(f"superapp: {exc.code}: {exc.detail}", file=sys.stderr)
        return 1
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0
