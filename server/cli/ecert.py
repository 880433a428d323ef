"""``superapp ecert``: bulk import, offline verification, issuer key rotation."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cbor2
import httpx

from ecert.bulk import ImportReport, import_rows, read_rows
from ecert.presentation.cwt import CLAIM_STATUS, parse_unverified
from ecert.presentation.offline import verify_offline
from identity.errors import DomainError
from server.bootstrap import Services
from server.cli.common import with_services
from server.settings import Settings


def register(sub: Any) -> None:
    p = sub.add_parser("ecert", help="e-certificates: import, verify offline, rotate keys")
    ecert_sub = p.add_subparsers(dest="ecert_command", required=True, metavar="ACTION")

    imp = ecert_sub.add_parser(
        "import",
        help="issue certificates from a CSV file",
        description="Issue one certificate per CSV row for a unit. Columns: doc_number, type, "
        "holder_sub or holder_id_number, valid_from, valid_until; other columns are claims. "
        "Idempotent on doc_number; bad rows are reported and skipped.",
    )
    imp.add_argument("file", type=Path)
    imp.add_argument("--unit", required=True, help="issuing unit id or code")
    imp.add_argument("--report", type=Path, help="also write the row errors to this CSV file")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    imp.set_defaults(func=run_import)

    off = ecert_sub.add_parser(
        "verify-offline",
        help="verify a QR text with published keys and status lists only",
        description="Check a QR presentation without the online service: signature against the "
        "published JWKS, time window, and the signed status list. Material comes from --base-url "
        "(fetched, and kept with --save) or from a --material file saved earlier. Replay is NOT "
        "checked offline. Exit status 0 when valid, 1 when not.",
    )
    off.add_argument("text", help="the scanned text (SZ1:...)")
    off.add_argument("--base-url", help="fetch /.well-known/jwks.json and the status list here")
    off.add_argument("--material", type=Path, help="a JSON file saved with --save")
    off.add_argument("--save", type=Path, help="write the fetched material to this file")
    off.set_defaults(func=run_verify_offline)

    rot = ecert_sub.add_parser(
        "rotate-key",
        help="give an issuing unit a new signing key",
        description="Retire the unit's signing key and create a new one; old keys stay published.",
    )
    rot.add_argument("--unit", required=True, help="unit id or code")
    rot.set_defaults(func=run_rotate)


def _bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // max(total, 1)
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\rimport [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{end}")
    sys.stderr.flush()


async def _unit_id(svc: Services, unit: str) -> str:
    row = await svc.pool.fetchval("SELECT id FROM units WHERE id = $1 OR code = $1", unit)
    if row is None:
        raise SystemExit(f"superapp: no unit {unit!r}")
    return str(row)


def print_report(report: ImportReport, out: Any = sys.stdout) -> None:
    for e in report.errors:
        print(f"row {e.row} ({e.doc_number or '-'}): {e.code}: {e.detail}", file=out)
    print(
        f"{report.total} rows: {report.issued} issued, {report.unchanged} already issued, "
        f"{len(report.errors)} failed",
        file=out,
    )


def run_import(settings: Settings, args: argparse.Namespace) -> int:
    with args.file.open(encoding="utf-8-sig", newline="") as f:
        try:
            rows = read_rows(f)
        except ValueError as exc:
            print(f"superapp: {exc}", file=sys.stderr)
            return 2

    async def job(svc: Services) -> ImportReport:
        unit_id = await _unit_id(svc, args.unit)
        return await import_rows(
            svc.certificates, unit_id, rows, progress=None if args.quiet else _bar
        )

    report = with_services(settings, job)
    print_report(report)
    if args.report:
        with args.report.open("w", encoding="utf-8", newline="") as f:
            f.write("row,doc_number,code,detail\n")
            for e in report.errors:
                f.write(
                    ",".join(json.dumps(str(v), ensure_ascii=False) for v in e.__dict__.values())
                )
                f.write("\n")
    return 1 if report.errors else 0


def fetch_material(base_url: str, text: str) -> dict[str, Any]:
    """The platform JWKS and the status list this presentation points at, over HTTP."""
    base = base_url.rstrip("/")
    with httpx.Client(timeout=10) as http:
        jwks = http.get(base + "/.well-known/jwks.json").raise_for_status().json()
        lists: dict[str, str] = {}
        uri = status_uri(text)
        # Only follow a status URI on the server we were told to trust for material.
        if uri is not None and uri.startswith(base + "/"):
            lists[uri] = http.get(uri).raise_for_status().text
    return {"jwks": jwks, "status_lists": lists, "fetched_at": datetime.now(UTC).isoformat()}


def status_uri(text: str) -> str | None:
    try:
        claims = cbor2.loads(parse_unverified(text).payload)
        uri = claims[CLAIM_STATUS]["status_list"]["uri"]
    except (DomainError, ValueError, KeyError, TypeError, cbor2.CBORDecodeError):
        return None
    return uri if isinstance(uri, str) else None


def verify_text(text: str, material: dict[str, Any]) -> dict[str, Any]:
    try:
        result = verify_offline(
            text, material.get("jwks", {}), material.get("status_lists", {}), datetime.now(UTC)
        )
    except DomainError as exc:
        return {"valid": False, "code": exc.code, "detail": exc.detail}
    p = result.presentation
    return {
        "valid": True,
        "type": p.cert_type,
        "claims": {"name": p.masked_name, "id": p.masked_id, **p.extra},
        "expires_at": p.expires_at.isoformat(),
        "status_checked": result.status_checked,
        "status_list_stale": result.status_list_stale,
        "replay_checked": False,
    }


def run_verify_offline(settings: Settings, args: argparse.Namespace) -> int:
    text = args.text.strip()
    if args.material:
        material = json.loads(args.material.read_text("utf-8"))
    elif args.base_url:
        try:
            material = fetch_material(args.base_url, text)
        except httpx.HTTPError as exc:
            print(f"superapp: could not fetch the published material: {exc}", file=sys.stderr)
            return 2
        if args.save:
            args.save.write_text(json.dumps(material, ensure_ascii=False), "utf-8")
    else:
        print("superapp: give --base-url or --material", file=sys.stderr)
        return 2
    outcome = verify_text(text, material)
    print(json.dumps(outcome, ensure_ascii=False, indent=2))
    return 0 if outcome["valid"] else 1


def run_rotate(settings: Settings, args: argparse.Namespace) -> int:
    async def job(svc: Services) -> str:
        return await svc.issuer_keys.rotate(await _unit_id(svc, args.unit))

    print(with_services(settings, job))
    return 0
