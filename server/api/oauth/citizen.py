"""The citizen's side of the provider: in-app quick login codes and consents."""

from __future__ import annotations

from identity.consents import Consent
from server.http import BaseHandler, route
from server.openapi import INT, STR, arr, obj, op

CONSENT = obj(
    ["client_id", "client_name", "scopes", "granted_at"],
    client_id=STR,
    client_name=STR,
    scopes=arr(STR),
    granted_at=STR,
    expires_at={"type": ["string", "null"]},
)


def _consent(c: Consent) -> dict[str, object]:
    return {
        "client_id": c.client_id,
        "client_name": c.client_name,
        "scopes": list(c.scopes),
        "granted_at": c.granted_at.isoformat(),
        "expires_at": c.expires_at.isoformat() if c.expires_at else None,
    }


class MiniappCodeHandler(BaseHandler):
    openapi = {
        "post": op(
            "In-app quick login: a one-time code (5 minutes) the mini-app's server exchanges "
            "at /oauth2/token (grant_type=authorization_code) for the pairwise sub and tokens",
            tag="oauth2",
            request=obj(["app_id"], app_id=STR),
            response=obj(["code", "expires_in"], code=STR, expires_in=INT),
            auth="user",
            errors=(401, 404, 422, 503),
        )
    }

    async def post(self) -> None:
        who = self.require_user()
        body = self.json_body()
        code = await self.svc.oidc.authorize.miniapp_code(who.sub, who.sid, body.get("app_id"))
        self.send_json({"code": code, "expires_in": self.svc.oidc.store.code_ttl})


class ConsentsHandler(BaseHandler):
    openapi = {
        "get": op(
            "The apps the citizen has let see their data, with scopes",
            tag="identity",
            response=obj(["consents"], consents=arr(CONSENT)),
            auth="user",
            errors=(401,),
        )
    }

    async def get(self) -> None:
        who = self.require_user()
        consents = await self.svc.oidc.list_consents(who.sub)
        self.send_json({"consents": [_consent(c) for c in consents]})


class ConsentHandler(BaseHandler):
    openapi = {
        "delete": op(
            "Withdraw consent for an app; its refresh tokens for the citizen stop working",
            tag="identity",
            status=204,
            auth="user",
            errors=(401, 404),
        )
    }

    async def delete(self, client_id: str) -> None:
        who = self.require_user()
        await self.svc.oidc.revoke_consent(who.sub, client_id, self.client_ip)
        self.set_status(204)
        self.finish()


ROUTES = [
    route("/api/v1/identity/miniapp-code", MiniappCodeHandler),
    route("/api/v1/identity/me/consents", ConsentsHandler),
    route("/api/v1/identity/me/consents/{client_id}", ConsentHandler),
]
