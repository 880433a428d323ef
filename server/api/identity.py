"""Identity routes: phone sign-in, tokens, the citizen's own account, sessions
and security log, units and their members."""

from __future__ import annotations

from typing import Any

from identity.domain import Session, Unit
from identity.errors import UnsupportedGrant
from server.http import BaseHandler, route
from server.openapi import ANY_OBJ, INT, NULLABLE_INT, STR, arr, obj, op, qint

TOKEN_RESPONSE = obj(
    ["access_token", "token_type", "expires_in", "refresh_token"],
    access_token=STR,
    token_type=STR,
    expires_in=INT,
    refresh_token=STR,
)
SESSION = obj(
    ["id", "device", "created_at", "last_used_at", "current"],
    id=STR,
    device=STR,
    ip=STR,
    created_at=STR,
    last_used_at=STR,
    expires_at=STR,
    current={"type": "boolean"},
)
UNIT = obj(
    ["id", "code", "name_zh", "name_en", "kind", "district_code"],
    id=STR,
    code=STR,
    name_zh=STR,
    name_en=STR,
    kind=STR,
    district_code=STR,
)


class OtpHandler(BaseHandler):
    openapi = {
        "post": op(
            "Send a 6-digit sign-in code by SMS",
            tag="identity",
            request=obj(["phone"], phone=STR),
            response=obj(["expires_in"], expires_in=INT),
            status=202,
            errors=(422, 429, 503),
        )
    }

    async def post(self) -> None:
        body = self.json_body()
        expires_in = await self.svc.signin.request_otp(body.get("phone"), self.client_ip)
        self.send_json({"expires_in": expires_in}, status=202)


class TokenHandler(BaseHandler):
    openapi = {
        "post": op(
            "Sign in with a code (grant_type=otp) or refresh (grant_type=refresh_token)",
            tag="identity",
            request=obj(
                ["grant_type"],
                grant_type={"enum": ["otp", "refresh_token"]},
                phone=STR,
                code=STR,
                refresh_token=STR,
                device=STR,
            ),
            response=TOKEN_RESPONSE,
            errors=(401, 422, 429, 503),
        )
    }

    async def post(self) -> None:
        body = self.json_body()
        grant = body.get("grant_type")
        if grant == "otp":  # the per-IP token limit is counted with the code check
            device = str(body.get("device") or self.request.headers.get("User-Agent", ""))
            pair = await self.svc.signin.sign_in_with_otp(
                body.get("phone"), body.get("code"), device=device, ip=self.client_ip
            )
        elif grant == "refresh_token":
            pair = await self.svc.signin.refresh(body.get("refresh_token"), ip=self.client_ip)
        else:
            raise UnsupportedGrant("grant_type must be 'otp' or 'refresh_token'.")
        self.send_json(
            {
                "access_token": pair.access_token,
                "token_type": "Bearer",
                "expires_in": pair.expires_in,
                "refresh_token": pair.refresh_token,
            }
        )


class LogoutHandler(BaseHandler):
    openapi = {
        "post": op("End this session", tag="identity", status=204, auth="user", errors=(401,))
    }

    async def post(self) -> None:
        who = self.require_user()
        await self.svc.signin.logout(who.sub, who.sid, self.client_ip)
        self.set_status(204)
        self.finish()


class MeHandler(BaseHandler):
    openapi = {
        "get": op(
            "Who am I (from the token's claims)",
            tag="identity",
            response=obj(
                ["sub", "phone", "assurance_level", "roles"],
                sub=STR,
                phone=STR,
                assurance_level=STR,
                roles=arr(STR),
            ),
            auth="user",
            errors=(401,),
        )
    }

    def get(self) -> None:
        who = self.require_user()
        self.send_json(
            {
                "sub": who.sub,
                "phone": who.claims.get("phone_masked"),
                "assurance_level": f"L{who.acr}",
                "roles": list(who.roles),
            }
        )


def session_json(s: Session, current: str | None) -> dict[str, Any]:
    return {
        "id": s.id,
        "device": s.device,
        "ip": s.ip,
        "created_at": s.created_at.isoformat(),
        "last_used_at": s.last_used_at.isoformat(),
        "expires_at": s.expires_at.isoformat(),
        "current": s.id == current,
    }


class SessionsHandler(BaseHandler):
    openapi = {
        "get": op(
            "My active sessions (devices)",
            tag="identity",
            response=obj(["sessions"], sessions=arr(SESSION)),
            auth="user",
            errors=(401,),
        )
    }

    async def get(self) -> None:
        who = self.require_user()
        sessions = await self.svc.signin.sessions(who.sub)
        self.send_json({"sessions": [session_json(s, who.sid) for s in sessions]})


class SessionHandler(BaseHandler):
    openapi = {
        "delete": op(
            "Sign a device out", tag="identity", status=204, auth="user", errors=(401, 404)
        )
    }

    async def delete(self, session_id: str) -> None:
        who = self.require_user()
        await self.svc.signin.revoke_session(who.sub, session_id, self.client_ip)
        self.set_status(204)
        self.finish()


class SecurityEventsHandler(BaseHandler):
    openapi = {
        "get": op(
            "My security log (sign-ins, failures, consent changes, verifications)",
            tag="identity",
            response=obj(["events"], events=arr(ANY_OBJ), next_before=NULLABLE_INT),
            auth="user",
            errors=(401,),
            query=(qint("before", 0, 2**62), qint("limit", 1, 200)),
        )
    }

    async def get(self) -> None:
        who = self.require_user()
        limit = self.query_int("limit", 50, 1, 200)
        before = self.query_int("before", 0, 0, 2**62) or None
        events = await self.svc.signin.security_events(who.sub, before, limit)
        self.send_json(
            {
                "events": [
                    {
                        "id": e.id,
                        "kind": e.kind,
                        "detail": e.detail,
                        "ip": e.ip,
                        "created_at": e.created_at.isoformat(),
                    }
                    for e in events
                ],
                "next_before": events[-1].id if len(events) == limit else None,
            }
        )


def unit_json(u: Unit) -> dict[str, Any]:
    return {
        "id": u.id,
        "code": u.code,
        "name_zh": u.name_zh,
        "name_en": u.name_en,
        "kind": u.kind,
        "district_code": u.district_code,
    }


class UnitsHandler(BaseHandler):
    openapi = {
        "get": op(
            "List units",
            tag="units",
            response=obj(["units"], units=arr(UNIT)),
            query=("kind", qint("limit", 1, 500), qint("offset", 0, 10**6)),
        ),
        "post": op(
            "Create a unit (platform admin)",
            tag="units",
            request=obj(
                ["code", "name_zh", "name_en", "kind", "district_code"],
                code=STR,
                name_zh=STR,
                name_en=STR,
                kind={"enum": ["direct", "municipal", "district", "soe"]},
                district_code=STR,
            ),
            response=UNIT,
            status=201,
            auth="user",
            errors=(401, 403, 422),
        ),
    }

    async def get(self) -> None:
        kind = self.get_query_argument("kind", None) or None
        units = await self.svc.orgs.units(
            kind, self.query_int("limit", 100, 1, 500), self.query_int("offset", 0, 0, 10**6)
        )
        self.send_json({"units": [unit_json(u) for u in units]})

    async def post(self) -> None:
        who = self.require_user()
        b = self.json_body()
        unit, created = await self.svc.orgs.create_unit(
            who,
            code=b.get("code"),
            name_zh=b.get("name_zh"),
            name_en=b.get("name_en"),
            kind=b.get("kind"),
            district_code=b.get("district_code"),
        )
        self.send_json(unit_json(unit), status=201 if created else 200)


class UnitHandler(BaseHandler):
    openapi = {"get": op("One unit", tag="units", response=UNIT, errors=(404,))}

    async def get(self, unit_id: str) -> None:
        self.send_json(unit_json(await self.svc.orgs.unit(unit_id)))


class MembersHandler(BaseHandler):
    openapi = {
        "post": op(
            "Grant a unit role to a phone number (unit admin)",
            tag="units",
            request=obj(
                ["phone", "role"],
                phone=STR,
                role={"enum": ["unit-admin", "developer", "counter-staff", "issuer", "finance"]},
            ),
            response=obj(["sub", "role", "unit_id"], sub=STR, role=STR, unit_id=STR),
            status=201,
            auth="user",
            errors=(401, 403, 404, 422),
        )
    }

    async def post(self, unit_id: str) -> None:
        who = self.require_user()
        b = self.json_body()
        account, grant = await self.svc.orgs.add_member(who, unit_id, b.get("phone"), b.get("role"))
        self.send_json({"sub": account.id, "role": grant.role, "unit_id": unit_id}, status=201)


ROUTES = [
    route("/api/v1/identity/otp", OtpHandler),
    route("/api/v1/identity/token", TokenHandler),
    route("/api/v1/identity/logout", LogoutHandler),
    route("/api/v1/identity/me", MeHandler),
    route("/api/v1/identity/me/sessions", SessionsHandler),
    route("/api/v1/identity/me/sessions/{session_id}", SessionHandler),
    route("/api/v1/identity/me/security-events", SecurityEventsHandler),
    route("/api/v1/units", UnitsHandler),
    route("/api/v1/units/{unit_id}", UnitHandler),
    route("/api/v1/units/{unit_id}/members", MembersHandler),
]
