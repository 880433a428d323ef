"""E-certificate routes: types, issuance and status changes (issuers), the
citizen's wallet and QR code, verification at the counter, published status
lists and issuer keys, and certificate-free reads by mini-app servers."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ecert.domain import PROFILES, Certificate, CertType
from ecert.presentation.qr import render_png, render_svg
from identity.errors import NotFound
from server.http import BaseHandler, route
from server.lean import LeanHandler
from server.openapi import ANY_OBJ, BOOL, NULLABLE_STR, STR, arr, obj, op

TAG = "ecert"
CERT = obj(
    ["id", "type", "status", "issuer_unit_id", "valid_from"],
    id=STR,
    type=STR,
    type_name_zh=STR,
    type_name_en=STR,
    issuer_unit_id=STR,
    doc_number=STR,
    status=STR,
    status_reason=NULLABLE_STR,
    valid_from=STR,
    valid_until=STR,
    issued_at=STR,
)
CERT_DETAIL = {
    **CERT,
    "properties": {**CERT["properties"], "claims": ANY_OBJ, "profiles": arr(STR)},
}
STATUS_BODY = obj(["reason"], reason=STR)
STATIC = Path(__file__).resolve().parent.parent / "static" / "ecert"
ASSETS = frozenset({"common.js", "vendor/jsQR.js"})
_IMAGE = re.compile(r"^([A-Za-z0-9_-]{20,40})\.(png|svg)$")


def cert_json(c: Certificate, t: CertType | None = None, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "type": c.type_code,
        "issuer_unit_id": c.issuer_unit_id,
        "doc_number": c.doc_number,
        "status": c.effective_status(),
        "status_reason": c.status_reason,
        "valid_from": c.valid_from.isoformat(),
        "valid_until": c.valid_until.isoformat() if c.valid_until else None,
        "issued_at": c.issued_at.isoformat(),
    }
    if t is not None:
        out["type_name_zh"], out["type_name_en"] = t.name_zh, t.name_en
    if detail:
        out["claims"] = c.claims
        out["profiles"] = list(PROFILES)
    return out


class TypesHandler(BaseHandler):
    openapi = {
        "get": op(
            "Certificate types: names, issuing units, claim schema, validity rules",
            tag=TAG,
            response=obj(["types"], types=arr(ANY_OBJ)),
        )
    }

    async def get(self) -> None:
        types = await self.svc.certificates.types()
        self.send_json({"types": [t.to_json() for t in types]})


class MattersHandler(BaseHandler):
    openapi = {
        "get": op(
            "Matter codes for verification and the fields each may see",
            tag=TAG,
            response=obj(["matters"], matters=arr(ANY_OBJ)),
        )
    }

    async def get(self) -> None:
        matters = await self.svc.certificates.matters()
        self.send_json(
            {
                "matters": [
                    {"code": m.code, "name_zh": m.name_zh, "name_en": m.name_en, "fields": m.fields}
                    for m in matters
                ]
            }
        )


class IssueHandler(BaseHandler):
    openapi = {
        "post": op(
            "Issue a certificate (issuer staff or the unit's server); idempotent on doc_number",
            tag=TAG,
            request=obj(
                ["type", "doc_number", "claims"],
                type=STR,
                doc_number=STR,
                holder_sub=STR,
                holder_id_number=STR,
                claims=ANY_OBJ,
                valid_from=STR,
                valid_until=STR,
                unit_id=STR,
            ),
            response=CERT,
            status=201,
            auth="user",
            errors=(401, 403, 409, 422),
        )
    }

    async def post(self) -> None:
        body = self.json_body()
        who = self.principal
        if who is None:
            who = self.require_user()
        result = await self.svc.certificates.issue(who, body)
        self.send_json(cert_json(result.certificate), status=201 if result.created else 200)


class _StatusHandler(BaseHandler):
    action = ""

    async def post(self, cert_id: str) -> None:
        body = self.json_body(required=self.action != "resume")
        who = self.principal or self.require_user()
        cert = await self.svc.certificates.change_status(
            who, cert_id, self.action, body.get("reason")
        )
        self.send_json(cert_json(cert))


def _status_op(summary: str) -> dict[str, Any]:
    return {
        "post": op(
            summary,
            tag=TAG,
            request=STATUS_BODY,
            response=CERT,
            auth="user",
            errors=(401, 403, 404, 409, 422),
        )
    }


class RevokeHandler(_StatusHandler):
    action = "revoke"
    openapi = _status_op("Revoke a certificate for good, with a reason")


class SuspendHandler(_StatusHandler):
    action = "suspend"
    openapi = _status_op("Suspend a certificate, with a reason (resume lifts it)")


class ResumeHandler(_StatusHandler):
    action = "resume"
    openapi = _status_op("Lift a suspension")


class WalletHandler(BaseHandler):
    openapi = {
        "get": op(
            "My certificates with their status",
            tag=TAG,
            response=obj(["certificates"], certificates=arr(CERT)),
            auth="user",
            errors=(401,),
        )
    }

    async def get(self) -> None:
        who = self.require_user()
        certs = await self.svc.certificates.wallet(who.sub)
        self.send_json({"certificates": [cert_json(c, t) for c, t in certs]})


class WalletItemHandler(BaseHandler):
    openapi = {
        "get": op(
            "Open one of my certificates (claims in full)",
            tag=TAG,
            response=CERT_DETAIL,
            auth="user",
            errors=(401, 404),
        )
    }

    async def get(self, cert_id: str) -> None:
        who = self.require_user()
        cert = await self.svc.certificates.own(who.sub, cert_id)
        t = await self.svc.certificates.type(cert.type_code)
        self.send_json(cert_json(cert, t, detail=True))


class UsesHandler(BaseHandler):
    openapi = {
        "get": op(
            "Every use of my certificate: verifications and service reads",
            tag=TAG,
            response=obj(["uses"], uses=arr(ANY_OBJ)),
            auth="user",
            errors=(401, 404),
            query=("limit", "offset"),
        )
    }

    async def get(self, cert_id: str) -> None:
        who = self.require_user()
        limit = self.query_int("limit", 50, 1, 200)
        offset = self.query_int("offset", 0, 0, 1_000_000)
        uses = await self.svc.certificates.uses(who.sub, cert_id, limit, offset)
        self.send_json({"uses": [u.to_json() for u in uses]})


class QrHandler(BaseHandler):
    openapi = {
        "post": op(
            "A one-time QR code (60 s) presenting my certificate",
            tag=TAG,
            request=obj(profile={"enum": list(PROFILES)}),
            response=obj(
                ["qr_text", "expires_at", "png_url", "svg_url"],
                qr_text=STR,
                expires_at=STR,
                png_url=STR,
                svg_url=STR,
            ),
            auth="user",
            errors=(401, 403, 404, 409, 410, 422, 503),
        )
    }

    async def post(self, cert_id: str) -> None:
        who = self.require_user()
        body = self.json_body(required=False)
        qr = await self.svc.presentations.issue_qr(who.sub, cert_id, body.get("profile"))
        base = f"{self.svc.settings.issuer}/api/v1/ecert/qr-images/{qr.image_token}"
        self.send_json(
            {
                "qr_text": qr.qr_text,
                "expires_at": qr.expires_at.isoformat(),
                "png_url": base + ".png",
                "svg_url": base + ".svg",
            }
        )


class QrImageHandler(BaseHandler):
    openapi = {
        "get": op(
            "The image of a QR code just issued (capability URL, lives as long as the code)",
            tag=TAG,
            content_type="image/png",
            errors=(404, 503),
        )
    }

    async def get(self, name: str) -> None:
        match = _IMAGE.match(name)
        if match is None:
            raise NotFound("No such QR image.")
        text = await self.svc.presentations.image_text(match.group(1))
        self.set_header("Cache-Control", "no-store")
        if match.group(2) == "png":
            self.set_header("Content-Type", "image/png")
            self.finish(render_png(text).png)
        else:
            self.set_header("Content-Type", "image/svg+xml")
            self.finish(render_svg(text).svg)


class VerifyHandler(LeanHandler):
    """The counter's scan: the busiest route, served without a RequestHandler."""

    openapi = {
        "post": op(
            "Verify a scanned QR code at the counter (counter-staff); each code works once",
            tag=TAG,
            request=obj(["qr_text", "matter_code"], qr_text=STR, matter_code=STR, unit_id=STR),
            response=obj(
                ["valid", "verification_id", "type", "status", "claims"],
                valid=BOOL,
                verification_id=STR,
                type=STR,
                type_name_zh=STR,
                type_name_en=STR,
                status=STR,
                claims=ANY_OBJ,
                withheld=arr(STR),
                matter_code=STR,
            ),
            auth="user",
            errors=(401, 403, 410, 422, 503),
        )
    }

    async def post(self) -> None:
        who = self.require_user()
        body = self.json_body()
        v = await self.svc.presentations.verify(
            who, body.get("qr_text"), body.get("matter_code"), body.get("unit_id")
        )
        self.send_json(
            {
                "valid": True,
                "verification_id": v.id,
                "type": v.cert_type.code,
                "type_name_zh": v.cert_type.name_zh,
                "type_name_en": v.cert_type.name_en,
                "status": v.certificate.effective_status(),
                "claims": v.claims,
                "withheld": v.withheld,
                "matter_code": v.matter.code,
            }
        )


class StatusListHandler(BaseHandler):
    openapi = {
        "get": op(
            "A signed Token Status List (statuslist+jwt, bits 2)",
            tag=TAG,
            content_type="application/statuslist+jwt",
            errors=(404,),
        )
    }

    async def get(self, list_id: str) -> None:
        if not (list_id.isascii() and list_id.isdigit()) or len(list_id) > 9:
            raise NotFound("No such status list.")
        token = await self.svc.presentations.status_list_token(int(list_id))
        self.set_header("Content-Type", "application/statuslist+jwt")
        self.set_header("Cache-Control", "max-age=60")
        self.finish(token)


class IssuerJwksHandler(BaseHandler):
    openapi = {
        "get": op(
            "Every issuing unit's public keys (JWKS), for credentials signed by issuers",
            tag=TAG,
            response=obj(["keys"], keys=arr(ANY_OBJ)),
        )
    }

    async def get(self) -> None:
        jwks = await self.svc.issuer_keys.jwks()
        self.set_header("Content-Type", "application/jwk-set+json")
        self.set_header("Cache-Control", "max-age=300")
        self.finish(jwks)


class _PageHandler(BaseHandler):
    page = ""

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Frame-Options", "DENY")
        self.finish((STATIC / self.page).read_bytes())


class VerifierPageHandler(_PageHandler):
    page = "verifier.html"
    openapi = {
        "get": op("Counter verifier page (staff)", tag=TAG, response=STR, content_type="text/html")
    }


class WalletPageHandler(_PageHandler):
    page = "wallet.html"
    openapi = {
        "get": op(
            "Wallet page with the live QR code", tag=TAG, response=STR, content_type="text/html"
        )
    }


class AssetHandler(BaseHandler):
    openapi = {
        "get": op(
            "Scripts of the e-certificate pages (vendored, no CDN)",
            tag=TAG,
            content_type="text/javascript",
            errors=(404,),
        )
    }

    def get(self, name: str) -> None:
        if name not in ASSETS:
            raise NotFound("No such asset.")
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=3600")
        self.finish((STATIC / name).read_bytes())


class SharedHandler(BaseHandler):
    openapi = {
        "get": op(
            "A mini-app server reads a consenting citizen's certificate (scope ecert:<type>)",
            tag=TAG,
            response=obj(
                ["certificate_id", "type", "status", "claims", "credential"],
                certificate_id=STR,
                type=STR,
                status=STR,
                claims=ANY_OBJ,
                credential=STR,
                issuer_jwks_uri=STR,
                read_id=STR,
            ),
            auth="client",
            errors=(401, 403, 404, 410, 422),
            query=("sub", "matter_code"),
        )
    }

    async def get(self, type_code: str) -> None:
        who = self.require_client()
        shared = await self.svc.sharing.read(
            who,
            type_code,
            self.get_query_argument("sub", None),
            self.get_query_argument("matter_code", None),
        )
        c = shared.certificate
        self.send_json(
            {
                "certificate_id": c.id,
                "type": c.type_code,
                "status": c.effective_status(datetime.now(UTC)),
                "claims": c.claims,
                "credential": c.credential,
                "issuer_jwks_uri": f"{self.svc.settings.issuer}/api/v1/ecert/issuers/jwks.json",
                "read_id": shared.read_id,
                "valid_from": c.valid_from.isoformat(),
                "valid_until": c.valid_until.isoformat() if c.valid_until else None,
            }
        )


ROUTES = [
    route("/api/v1/ecert/types", TypesHandler),
    route("/api/v1/ecert/matters", MattersHandler),
    route("/api/v1/ecert/certificates", IssueHandler),
    route("/api/v1/ecert/certificates/{cert_id}/revoke", RevokeHandler),
    route("/api/v1/ecert/certificates/{cert_id}/suspend", SuspendHandler),
    route("/api/v1/ecert/certificates/{cert_id}/resume", ResumeHandler),
    route("/api/v1/ecert/wallet", WalletHandler),
    route("/api/v1/ecert/wallet/{cert_id}", WalletItemHandler),
    route("/api/v1/ecert/wallet/{cert_id}/uses", UsesHandler),
    route("/api/v1/ecert/wallet/{cert_id}/qr", QrHandler),
    route("/api/v1/ecert/qr-images/{name}", QrImageHandler),
    route("/api/v1/ecert/verify", VerifyHandler),
    route("/api/v1/ecert/status-lists/{list_id}", StatusListHandler),
    # The short form the QR codes carry (every byte of the URI is in the code).
    route("/sl/{list_id}", StatusListHandler),
    route("/api/v1/ecert/issuers/jwks.json", IssuerJwksHandler),
    route("/api/v1/ecert/shared/{type_code}", SharedHandler),
    route("/ecert/verifier", VerifierPageHandler),
    route("/ecert/wallet", WalletPageHandler),
    route("/ecert/assets/{name:path}", AssetHandler),
]
