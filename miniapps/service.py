"""Registry and lifecycle use cases: register, version, submit, review, release
(percentage and cohort gray), rollback, suspend, credentials.

Every call checks the caller's role server-side (``Organisations.require``):
a unit's ``unit-admin``/``developer`` act on their unit's apps only, platform
``reviewer``s review. After a change that affects routing the service calls
``on_change(app_id)``, which reloads this worker's route table and publishes
the change to every other worker (Redis pub/sub).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg

from identity.clients import ClientRegistry
from identity.errors import ValidationError
from identity.ids import new_id
from identity.organisations import Organisations
from identity.tokens import Principal
from miniapps.domain import CATEGORIES, ROLLBACK_DEPTH, App, Manifest, Version, parse_version
from miniapps.errors import (
    InvalidTransition,
    MiniAppNotFound,
    RollbackNotAllowed,
    VersionExists,
    VersionNotFound,
)
from miniapps.gray import Cohort
from miniapps.repository import MiniAppRepository
from miniapps.search import SearchDoc, pinyin_full, pinyin_initials, search_lexemes
from miniapps.ssrf import UpstreamPolicy, check_upstream

log = logging.getLogger("superapp.miniapps")

UNIT_STAFF = ("unit-admin", "developer")
OnChange = Callable[[str], Awaitable[None]]


def search_document(m: Manifest, unit_name: str) -> dict[str, Any]:
    """The catalog columns of an app, from the manifest in force."""
    category_zh = CATEGORIES[m.category]
    doc = SearchDoc(m.name_zh, m.name_en, m.description, category_zh, unit_name)
    return {
        "name_zh": m.name_zh,
        "name_en": m.name_en,
        "description": m.description,
        "icon": m.icon,
        "category": m.category,
        "category_zh": category_zh,
        "kind": m.kind,
        "districts": list(m.districts),
        "unit_name": unit_name,
        "name_pinyin": pinyin_full(m.name_zh),
        "name_initials": pinyin_initials(m.name_zh),
        "search_vector": search_lexemes(doc),
    }


async def _noop(_: str) -> None:
    return None


class MiniAppService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        repo: MiniAppRepository,
        orgs: Organisations,
        clients: ClientRegistry,
        policy: UpstreamPolicy,
        on_change: OnChange = _noop,
    ) -> None:
        self.pool = pool
        self.repo = repo
        self.orgs = orgs
        self.clients = clients
        self.policy = policy
        self.on_change = on_change

    # reading ----------------------------------------------------------------------------

    async def app(self, app_id: str) -> App:
        async with self.pool.acquire() as conn:
            app = await self.repo.app(conn, app_id) if isinstance(app_id, str) else None
        if app is None:
            raise MiniAppNotFound()
        return app

    async def app_for_staff(self, who: Principal, app_id: str) -> tuple[App, list[Version]]:
        app = await self.app(app_id)
        await self.orgs.require(who, (*UNIT_STAFF, "reviewer"), app.unit_id)
        async with self.pool.acquire() as conn:
            return app, await self.repo.versions(conn, app_id)

    async def releases(self, who: Principal, app_id: str) -> list[dict[str, Any]]:
        app = await self.app(app_id)
        await self.orgs.require(who, (*UNIT_STAFF, "reviewer"), app.unit_id)
        async with self.pool.acquire() as conn:
            return await self.repo.releases(conn, app_id, 50)

    # registering --------------------------------------------------------------------------

    async def register(
        self, who: Principal, unit_id: object, raw_manifest: object, raw_version: object = "1.0.0"
    ) -> tuple[App, Version]:
        """A new app in ``draft`` with its first version and its OAuth client."""
        if not isinstance(unit_id, str) or not unit_id:
            raise ValidationError("unit_id", "The owning unit is required.")
        unit = await self.orgs.unit(unit_id)
        await self.orgs.require(who, ("unit-admin",), unit.id)
        manifest = Manifest.parse(raw_manifest)
        version = parse_version(raw_version or "1.0.0")
        app_id = new_id("app")
        async with self.pool.acquire() as conn, conn.transaction():
            await self.repo.create_app(
                conn, app_id, unit.id, search_document(manifest, unit.name_zh)
            )
            client, _secret = await self.clients.create(
                unit_id=unit.id, name=manifest.name_zh, app_id=app_id, conn=conn
            )
            # The secret is discarded: POST .../credentials issues the one the unit sees.
            await self.repo.set_client(conn, app_id, client.client_id)
            await self.repo.add_version(conn, app_id, version, manifest, who.sub)
            app = await self.repo.app(conn, app_id)
            ver = await self.repo.version(conn, app_id, version)
        assert app and ver
        return app, ver

    async def add_version(
        self, who: Principal, app_id: str, raw_version: object, raw_manifest: object
    ) -> Version:
        app = await self.app(app_id)
        await self.orgs.require(who, UNIT_STAFF, app.unit_id)
        version = parse_version(raw_version)
        manifest = Manifest.parse(raw_manifest)
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self.repo.add_version(conn, app_id, version, manifest, who.sub):
                raise VersionExists(f"Version {version} exists; versions are immutable.")
            ver = await self.repo.version(conn, app_id, version)
        assert ver
        return ver

    async def _staff_version(
        self, who: Principal, app_id: str, version: str, roles: tuple[str, ...]
    ) -> tuple[App, Version]:
        app = await self.app(app_id)
        await self.orgs.require(who, roles, app.unit_id)
        async with self.pool.acquire() as conn:
            ver = await self.repo.version(conn, app_id, version)
        if ver is None:
            raise VersionNotFound()
        return app, ver

    async def _transition(
        self, app_id: str, version: str, allowed: tuple[str, ...], to: str, **kw: Any
    ) -> Version:
        async with self.pool.acquire() as conn, conn.transaction():
            ver = await self.repo.version(conn, app_id, version, lock=True)
            if ver is None:
                raise VersionNotFound()
            if ver.status not in allowed:
                raise InvalidTransition(
                    f"Version {version} is {ver.status}; this step needs {' or '.join(allowed)}."
                )
            await self.repo.set_version_status(conn, app_id, version, to, **kw)
            updated = await self.repo.version(conn, app_id, version)
        assert updated
        return updated

    async def submit(self, who: Principal, app_id: str, version: str) -> Version:
        _, ver = await self._staff_version(who, app_id, version, UNIT_STAFF)
        await check_upstream(ver.manifest.upstream, self.policy, "review")
        return await self._transition(app_id, version, ("draft", "rejected"), "in_review")

    async def review(
        self, who: Principal, app_id: str, version: str, decision: object, reason: object
    ) -> Version:
        _, ver = await self._staff_version(who, app_id, version, ("reviewer",))
        if decision not in ("approve", "reject"):
            raise ValidationError("decision", "Must be approve or reject.")
        text = reason.strip() if isinstance(reason, str) else ""
        if decision == "reject" and not text:
            raise ValidationError("reason", "A rejection needs a reason the unit can act on.")
        if len(text) > 2000:
            raise ValidationError("reason", "At most 2000 characters.")
        if decision == "approve":
            # Hosts are fixed at review: check again, DNS may have changed since submission.
            await check_upstream(ver.manifest.upstream, self.policy, "review")
        to = "approved" if decision == "approve" else "rejected"
        return await self._transition(
            app_id, version, ("in_review",), to, reason=text or None, reviewer=who.sub
        )

    # releasing -----------------------------------------------------------------------------

    async def release(
        self, who: Principal, app_id: str, version: str, percent: object, cohort: object
    ) -> App:
        """Release ``version`` to ``percent`` of the citizens in ``cohort`` (gray), or to all.

        Raising the percentage of the version in gray widens it; a new version in
        gray replaces the old gray one; citizens outside get the last full release.
        """
        app, _ = await self._staff_version(who, app_id, version, UNIT_STAFF)
        pct = 100.0 if percent is None else percent
        if not isinstance(pct, int | float) or isinstance(pct, bool) or not 0 < pct <= 100:
            raise ValidationError("percent", "Must be a number above 0 and at most 100.")
        cohort_json: dict[str, Any] | None = None
        if cohort is not None:
            if not isinstance(cohort, dict):
                raise ValidationError("cohort", "Must be an object.")
            parsed = Cohort.from_json(cohort)
            if parsed.districts or parsed.assurance_levels or parsed.age_bands:
                cohort_json = parsed.to_json()
        full = pct >= 100 and cohort_json is None
        async with self.pool.acquire() as conn, conn.transaction():
            app_row = await self.repo.app(conn, app_id, lock=True)
            ver = await self.repo.version(conn, app_id, version, lock=True)
            assert app_row and ver
            if app_row.status in ("suspended", "offline"):
                raise InvalidTransition(f"The app is {app_row.status}; resume it first.")
            if ver.status not in ("approved", "released"):
                raise InvalidTransition(f"Version {version} is {ver.status}; approve it first.")
            previous = app_row.previous_version
            current = app_row.current_version
            current_is_full = current is not None and app_row.percent >= 100 and not app_row.cohort
            if current != version and current_is_full:
                previous = current  # the full release becomes the fallback for the gray
            if full:
                previous = None
            await self.repo.set_release(
                conn,
                app_id,
                status="released",
                current=version,
                percent=float(pct),
                cohort=cohort_json,
                previous=previous if previous != version else None,
            )
            await self.repo.set_version_status(conn, app_id, version, "released")
            await self.repo.record_release(
                conn, app_id, version, float(pct), cohort_json, "release", who.sub
            )
            await self._apply_manifest(conn, app_row, ver)
            updated = await self.repo.app(conn, app_id)
        assert updated
        await self.on_change(app_id)
        return updated

    async def _apply_manifest(self, conn: Any, app: App, ver: Version) -> None:
        """The catalog entry and the OAuth client follow the released, reviewed manifest."""
        await self.repo.update_search_doc(
            conn, app.app_id, search_document(ver.manifest, app.unit_name)
        )
        if app.client_id:
            await conn.execute(
                """UPDATE oauth_clients SET redirect_uris = $2, allowed_scopes = $3
                   WHERE client_id = $1""",
                app.client_id,
                list(ver.manifest.redirect_uris),
                list(ver.manifest.scopes),
            )

    async def rollback(self, who: Principal, app_id: str, version: object) -> App:
        """Serve ``version`` (one of the last 5 released) to everyone at once."""
        app = await self.app(app_id)
        await self.orgs.require(who, UNIT_STAFF, app.unit_id)
        if not isinstance(version, str) or not version:
            raise ValidationError("version", "Name the version to roll back to.")
        async with self.pool.acquire() as conn, conn.transaction():
            app_row = await self.repo.app(conn, app_id, lock=True)
            assert app_row
            if app_row.status != "released":
                raise InvalidTransition(
                    f"The app is {app_row.status}; only a released app rolls back."
                )
            recent = await self.repo.recent_released(conn, app_id, ROLLBACK_DEPTH)
            if version not in recent:
                raise RollbackNotAllowed(
                    f"Version {version} is not among the last {ROLLBACK_DEPTH} released: {recent}.",
                    allowed=recent,
                )
            ver = await self.repo.version(conn, app_id, version)
            assert ver
            await self.repo.set_release(
                conn, app_id, status="released", current=version, percent=100.0, cohort=None,
                previous=None,
            )  # fmt: skip
            await self.repo.record_release(conn, app_id, version, 100.0, None, "rollback", who.sub)
            await self._apply_manifest(conn, app_row, ver)
            updated = await self.repo.app(conn, app_id)
        assert updated
        await self.on_change(app_id)
        return updated

    async def set_status(self, who: Principal, app_id: str, action: str, reason: object) -> App:
        """``suspend`` (unit admin or reviewer), ``resume``, ``offline`` (unit admin)."""
        app = await self.app(app_id)
        roles = ("unit-admin", "reviewer") if action != "offline" else ("unit-admin",)
        await self.orgs.require(who, roles, app.unit_id)
        allowed = {
            "suspend": ("released",),
            "resume": ("suspended",),
            "offline": ("released", "suspended", "draft"),
        }
        to = {"suspend": "suspended", "resume": "released", "offline": "offline"}[action]
        async with self.pool.acquire() as conn, conn.transaction():
            row = await self.repo.app(conn, app_id, lock=True)
            assert row
            if row.status not in allowed[action]:
                raise InvalidTransition(f"The app is {row.status}; cannot {action} it.")
            await self.repo.set_release(
                conn, app_id, status=to, current=row.current_version, percent=row.percent,
                cohort=row.cohort, previous=row.previous_version,
            )  # fmt: skip
            await self.repo.record_release(
                conn, app_id, row.current_version or "-", row.percent, row.cohort, action, who.sub
            )
            updated = await self.repo.app(conn, app_id)
        assert updated
        log.info("mini-app status changed", extra={"app_id": app_id, "status": to})
        await self.on_change(app_id)
        return updated

    async def credentials(
        self, who: Principal, app_id: str, overlap_seconds: object, public_jwk: object = None
    ) -> dict[str, Any]:
        """New credentials for the app's OAuth client: a client secret (shown once), or,
        with ``public_jwk``, a registered public key for ``private_key_jwt`` (the unit keeps
        the private key). The previous secret or key works for the overlap window."""
        app = await self.app(app_id)
        await self.orgs.require(who, ("unit-admin",), app.unit_id)
        overlap = 86_400 if overlap_seconds is None else overlap_seconds
        if (
            not isinstance(overlap, int)
            or isinstance(overlap, bool)
            or not 0 <= overlap <= 7 * 86_400
        ):
            raise ValidationError("overlap_seconds", "Must be from 0 to 604800.")
        assert app.client_id
        window = timedelta(seconds=overlap)
        out: dict[str, Any] = {"client_id": app.client_id, "overlap_seconds": overlap}
        if public_jwk is not None:
            jwk = await self.clients.rotate_key(app.client_id, public_jwk, window)
            out.update(auth_method="private_key_jwt", public_jwk=jwk)
        else:
            secret = await self.clients.rotate_secret(app.client_id, window)
            out.update(auth_method="client_secret_basic", client_secret=secret)
        log.info(
            "mini-app credentials rotated",
            extra={
                "app_id": app_id,
                **{k: v for k, v in out.items() if k in ("auth_method", "overlap_seconds")},
            },
        )
        return out
