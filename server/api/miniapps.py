"""Mini-app platform routes: registry and lifecycle (units, reviewers), the
citizen's catalog, ratings and follow-ups, and a unit's usage dashboard."""

from __future__ import annotations

from typing import Any

from identity.pairwise import pairwise_sub
from miniapps.catalog import MAX_PAGE, Viewer
from miniapps.domain import CATEGORIES, KINDS
from server.http import BaseHandler, route
from server.openapi import ANY_OBJ, BOOL, INT, STR, arr, obj, op, qint

TAG = "miniapps"
APP = obj(
    ["app_id", "unit_id", "status", "name_zh", "release"],
    app_id=STR,
    unit_id=STR,
    client_id=STR,
    status={"enum": ["draft", "released", "suspended", "offline"]},
    name_zh=STR,
    name_en=STR,
    category=STR,
    kind=STR,
    districts=arr(STR),
    release=ANY_OBJ,
    use_count=INT,
    rating_count=INT,
)
VERSION = obj(
    ["app_id", "version", "status", "manifest"],
    app_id=STR,
    version=STR,
    status={"enum": ["draft", "in_review", "approved", "rejected", "released"]},
    manifest=ANY_OBJ,
    review_reason=STR,
)
CATALOG_ITEM = obj(
    ["app_id", "name_zh", "category", "kind", "unit_id"],
    app_id=STR,
    name_zh=STR,
    name_en=STR,
    category=STR,
    kind=STR,
    unit_id=STR,
    unit_name=STR,
    districts=arr(STR),
    use_count=INT,
    rating_count=INT,
)
FOLLOWUP = obj(
    ["followup_id", "status", "contact_due", "fix_due"],
    followup_id=STR,
    rating_id=STR,
    app_id=STR,
    status=STR,
    contact_due=STR,
    fix_due=STR,
    overdue=BOOL,
)


def _staff_op(
    summary: str, request: dict[str, Any] | None, response: dict[str, Any], status: int = 200
) -> dict[str, Any]:
    return op(summary, tag=TAG, request=request, response=response, status=status, auth="user",
              errors=(401, 403, 404, 409, 422))  # fmt: skip


class AppsHandler(BaseHandler):
    openapi = {
        "post": _staff_op(
            "Register a mini-app (unit-admin): its first version is a draft",
            obj(["unit_id", "manifest"], unit_id=STR, version=STR, manifest=ANY_OBJ),
            obj(["app", "version"], app=APP, version=VERSION),
            201,
        )
    }

    async def post(self) -> None:
        who = self.require_user()
        body = self.json_body()
        app, ver = await self.svc.miniapps.register(
            who, body.get("unit_id"), body.get("manifest"), body.get("version") or "1.0.0"
        )
        self.send_json({"app": app.to_json(), "version": ver.to_json()}, 201)


class AppHandler(BaseHandler):
    openapi = {
        "get": _staff_op(
            "An app with its versions and release history (unit staff, reviewers)",
            None,
            obj(["app", "versions"], app=APP, versions=arr(VERSION), releases=arr(ANY_OBJ)),
        )
    }

    async def get(self, app_id: str) -> None:
        who = self.require_user()
        app, versions = await self.svc.miniapps.app_for_staff(who, app_id)
        releases = await self.svc.miniapps.releases(who, app_id)
        self.send_json(
            {
                "app": app.to_json(),
                "versions": [v.to_json() for v in versions],
                "releases": releases,
            }
        )


class VersionsHandler(BaseHandler):
    openapi = {
        "post": _staff_op(
            "Add a version with its own manifest and upstream (draft)",
            obj(["version", "manifest"], version=STR, manifest=ANY_OBJ),
            VERSION,
            201,
        )
    }

    async def post(self, app_id: str) -> None:
        who = self.require_user()
        body = self.json_body()
        ver = await self.svc.miniapps.add_version(
            who, app_id, body.get("version"), body.get("manifest")
        )
        self.send_json(ver.to_json(), 201)


class SubmitHandler(BaseHandler):
    openapi = {
        "post": _staff_op("Submit a version for review (upstream SSRF-checked)", None, VERSION)
    }

    async def post(self, app_id: str, version: str) -> None:
        who = self.require_user()
        ver = await self.svc.miniapps.submit(who, app_id, version)
        self.send_json(ver.to_json())


class ReviewHandler(BaseHandler):
    openapi = {
        "post": _staff_op(
            "Approve or reject a version in review (reviewer); a rejection needs a reason",
            obj(["decision"], decision={"enum": ["approve", "reject"]}, reason=STR),
            VERSION,
        )
    }

    async def post(self, app_id: str, version: str) -> None:
        who = self.require_user()
        body = self.json_body()
        ver = await self.svc.miniapps.review(
            who, app_id, version, body.get("decision"), body.get("reason")
        )
        self.send_json(ver.to_json())


class ReleaseHandler(BaseHandler):
    openapi = {
        "post": _staff_op(
            "Release an approved version to a percentage of a cohort (gray) or to everyone",
            obj([], percent={"type": "number"}, cohort=ANY_OBJ),
            APP,
        )
    }

    async def post(self, app_id: str, version: str) -> None:
        who = self.require_user()
        body = self.json_body(required=False)
        app = await self.svc.miniapps.release(
            who, app_id, version, body.get("percent"), body.get("cohort")
        )
        self.send_json(app.to_json())


class RollbackHandler(BaseHandler):
    openapi = {
        "post": _staff_op(
            "Serve one of the last 5 released versions to everyone",
            obj(["version"], version=STR),
            APP,
        )
    }

    async def post(self, app_id: str) -> None:
        who = self.require_user()
        app = await self.svc.miniapps.rollback(who, app_id, self.json_body().get("version"))
        self.send_json(app.to_json())


class StatusHandler(BaseHandler):
    openapi = {
        "post": _staff_op(
            "Suspend (unit-admin, reviewer), resume or take offline (unit-admin) an app",
            obj([], reason=STR),
            APP,
        )
    }

    action = "suspend"

    async def post(self, app_id: str) -> None:
        who = self.require_user()
        body = self.json_body(required=False)
        app = await self.svc.miniapps.set_status(who, app_id, self.action, body.get("reason"))
        self.send_json(app.to_json())


class ResumeHandler(StatusHandler):
    action = "resume"


class OfflineHandler(StatusHandler):
    action = "offline"


class CredentialsHandler(BaseHandler):
    openapi = {
        "post": _staff_op(
            "New credentials: a client secret (shown once), or a registered public key "
            "(`public_jwk`, for private_key_jwt); the old ones work for the overlap",
            obj([], overlap_seconds=INT, public_jwk=ANY_OBJ),
            obj(
                ["client_id", "auth_method", "overlap_seconds"],
                client_id=STR,
                auth_method=STR,
                overlap_seconds=INT,
                client_secret=STR,
                public_jwk=ANY_OBJ,
            ),
            201,
        )
    }

    async def post(self, app_id: str) -> None:
        who = self.require_user()
        body = self.json_body(required=False)
        out = await self.svc.miniapps.credentials(
            who, app_id, body.get("overlap_seconds"), body.get("public_jwk")
        )
        self.send_json(out, 201)


class UsageHandler(BaseHandler):
    openapi = {
        "get": op(
            "Usage of an app per hour: requests, errors, latency (unit staff)",
            tag=TAG,
            response=ANY_OBJ,
            auth="user",
            errors=(401, 403, 404),
            query=(qint("hours", 1, 24 * 90),),
        )
    }

    async def get(self, app_id: str) -> None:
        who = self.require_user()
        hours = self.query_int("hours", 24, 1, 24 * 90)
        self.send_json(await self.svc.ratings.dashboard(who, app_id, hours))


class _CatalogBase(BaseHandler):
    """Catalog routes: sign-in optional; a citizen's gray releases shape what they see."""

    def viewer(self) -> Viewer | None:
        """The signed-in citizen, whose gray releases shape what they see."""
        who = self.principal
        if who is None or who.kind != "user":
            return None
        vault = self.svc.vault
        return Viewer(who.sub, who.acr, lambda unit: pairwise_sub(vault, who.sub, sector=unit))

    def cache_policy(self) -> str:
        """Anonymous answers are shared by every cache for 30 s; a citizen's only by theirs."""
        self.set_header("Vary", "Authorization")
        return "private, max-age=30" if self.principal else "public, max-age=30"


class CatalogHandler(_CatalogBase):
    openapi = {
        "get": op(
            "Search and browse released mini-apps (Chinese, pinyin, initials such as gjj)",
            tag=TAG,
            response=obj(
                ["items", "page", "has_more"], items=arr(CATALOG_ITEM), page=INT, has_more=BOOL
            ),
            auth="optional",
            errors=(401, 422),
            query=(
                ("q", {"type": "string", "maxLength": 100}),
                ("category", {"enum": sorted(CATEGORIES)}),
                "unit",
                ("district", {"type": "string", "pattern": "^([0-9]{6})?$"}),
                ("kind", {"enum": sorted(KINDS)}),
                qint("page", 1, MAX_PAGE),
            ),
        )
    }

    async def get(self) -> None:
        arg = self.get_query_argument
        result = await self.svc.catalog.search(
            q=arg("q", None),
            category=arg("category", None),
            unit=arg("unit", None),
            district=arg("district", None),
            kind=arg("kind", None),
            page=self.query_int("page", 1, 1, 1000),
            viewer=self.viewer(),
        )
        self.send_json(result, cache=self.cache_policy())


class CatalogEntryHandler(_CatalogBase):
    openapi = {
        "get": op(
            "One released mini-app (an app in a first gray release only for citizens inside it)",
            tag=TAG,
            response=CATALOG_ITEM,
            auth="optional",
            errors=(401, 404),
        )
    }

    async def get(self, app_id: str) -> None:
        entry = await self.svc.catalog.entry(app_id, self.viewer())
        self.send_json(entry, cache=self.cache_policy())


class RatingsHandler(BaseHandler):
    openapi = {
        "post": op(
            "Rate a use of the app 1-5 (one per session); 1-2 opens a follow-up for the unit",
            tag=TAG,
            request=obj(["score"], score=INT, comment=STR),
            response=obj(
                ["rating_id", "score"], rating_id=STR, score=INT, rerated=BOOL, followup=ANY_OBJ
            ),
            status=201,
            auth="user",
            errors=(401, 404, 409),
        )
    }

    async def post(self, app_id: str) -> None:
        who = self.require_user()
        body = self.json_body()
        result = await self.svc.ratings.rate(who, app_id, body.get("score"), body.get("comment"))
        self.send_json(result, 201)


class FollowUpsHandler(BaseHandler):
    openapi = {
        "get": op(
            "A unit's follow-ups of bad ratings, with deadlines (unit staff)",
            tag=TAG,
            response=obj(["items"], items=arr(FOLLOWUP)),
            auth="user",
            errors=(401, 403, 422),
            query=("status",),
        )
    }

    async def get(self, unit_id: str) -> None:
        who = self.require_user()
        items = await self.svc.ratings.followups(
            who, unit_id, self.get_query_argument("status", None) or None
        )
        self.send_json({"items": items})


class FollowUpHandler(BaseHandler):
    openapi = {
        "post": _staff_op("Record contacting the citizen or the fix", obj([], note=STR), FOLLOWUP)
    }

    action = "contact"

    async def post(self, followup_id: str) -> None:
        who = self.require_user()
        body = self.json_body(required=False)
        self.send_json(
            await self.svc.ratings.advance(who, followup_id, self.action, body.get("note"))
        )


class FixHandler(FollowUpHandler):
    action = "fix"


class UnitRatingsHandler(BaseHandler):
    openapi = {
        "get": op(
            "Published bad-rating rates and overdue follow-ups per unit",
            tag=TAG,
            response=obj(["items"], items=arr(ANY_OBJ)),
        )
    }

    async def get(self) -> None:
        self.send_json({"items": await self.svc.ratings.unit_stats()})


ROUTES = [
    route("/api/v1/miniapps", AppsHandler),
    route("/api/v1/miniapps/{app_id}", AppHandler),
    route("/api/v1/miniapps/{app_id}/versions", VersionsHandler),
    route("/api/v1/miniapps/{app_id}/versions/{version}/submit", SubmitHandler),
    route("/api/v1/miniapps/{app_id}/versions/{version}/review", ReviewHandler),
    route("/api/v1/miniapps/{app_id}/versions/{version}/release", ReleaseHandler),
    route("/api/v1/miniapps/{app_id}/rollback", RollbackHandler),
    route("/api/v1/miniapps/{app_id}/suspend", StatusHandler),
    route("/api/v1/miniapps/{app_id}/resume", ResumeHandler),
    route("/api/v1/miniapps/{app_id}/offline", OfflineHandler),
    route("/api/v1/miniapps/{app_id}/credentials", CredentialsHandler),
    route("/api/v1/miniapps/{app_id}/usage", UsageHandler),
    route("/api/v1/miniapps/{app_id}/ratings", RatingsHandler),
    route("/api/v1/catalog", CatalogHandler),
    route("/api/v1/catalog/{app_id}", CatalogEntryHandler),
    route("/api/v1/units/{unit_id}/followups", FollowUpsHandler),
    route("/api/v1/followups/{followup_id}/contact", FollowUpHandler),
    route("/api/v1/followups/{followup_id}/fix", FixHandler),
    route("/api/v1/ratings/units", UnitRatingsHandler),
]
