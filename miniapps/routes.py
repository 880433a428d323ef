"""The gateway's route table: every released app's versions, held in memory by
each worker and kept fresh through Redis pub/sub.

A change (release, rollback, suspension) reloads the app on the worker that
made it, then publishes the app id on ``CHANNEL``; every worker's listener
reloads that one app from PostgreSQL, well within a second. A full reload runs
every ``FULL_RELOAD`` seconds as a fallback for a missed message (Redis
pub/sub is at-most-once) and whenever the subscription reconnects. Upstream
hosts are resolved and SSRF-checked at load (``phase="connect"``); the gateway
connects to the checked address, so a DNS change cannot redirect it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from identity.errors import DomainError
from miniapps.domain import LEVELS, Manifest, to_limit
from miniapps.gray import Cohort, GrayRelease
from miniapps.ratelimit import Limit
from miniapps.repository import MiniAppRepository
from miniapps.ssrf import Upstream, UpstreamPolicy, check_upstream

log = logging.getLogger("superapp.miniapps.routes")

CHANNEL = "miniapps:routes"
FULL_RELOAD = 30.0


@dataclass(frozen=True)
class VersionRoute:
    version: str
    upstream_url: str
    upstream: Upstream | None  # None: the address was refused at load (see ``refused``)
    refused: str | None
    min_acr: int
    scopes: frozenset[str]
    timeout: float
    app_limit: Limit
    citizen_limit: Limit


@dataclass(frozen=True)
class AppRoute:
    app_id: str
    unit_id: str
    client_id: str | None
    status: str
    release: GrayRelease
    previous: str | None
    versions: dict[str, VersionRoute] = field(default_factory=dict)

    @property
    def needs_profile(self) -> bool:
        """Whether gray selection needs the citizen's district or birth date."""
        c = self.release.cohort
        return c is not None and bool(c.districts or c.age_bands)


class RouteTable:
    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis,
        repo: MiniAppRepository,
        policy: UpstreamPolicy,
        *,
        full_reload: float = FULL_RELOAD,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.repo = repo
        self.policy = policy
        self.full_reload = full_reload
        self.routes: dict[str, AppRoute] = {}
        self.loaded_at = 0.0
        self.reloads = 0  # single-app reloads, for tests and metrics
        self._tasks: list[asyncio.Task[Any]] = []
        self._load_lock = asyncio.Lock()
        self._subscribed = asyncio.Event()
        self._versions: dict[tuple[str, str], tuple[str, Manifest, VersionRoute]] = {}

    def get(self, app_id: str) -> AppRoute | None:
        return self.routes.get(app_id)

    async def ensure_loaded(self) -> None:
        if not self.loaded_at:
            async with self._load_lock:
                if not self.loaded_at:
                    await self.load_all()

    async def load_all(self) -> int:
        async with self.pool.acquire() as conn:
            rows = await self.repo.route_rows(conn)
        self.routes = await self._build(rows)
        self.loaded_at = time.monotonic()
        return len(self.routes)

    async def reload(self, app_id: str) -> None:
        async with self.pool.acquire() as conn:
            rows = await self.repo.route_rows(conn, app_id)
        built = await self._build(rows)
        if app_id in built:
            self.routes[app_id] = built[app_id]
        else:
            self.routes.pop(app_id, None)
        self.reloads += 1

    async def changed(self, app_id: str) -> None:
        """Called after a committed change: apply here, then tell every other worker."""
        await self.reload(app_id)
        try:
            await self.redis.publish(CHANNEL, app_id)
        except (RedisError, OSError):
            # The periodic full reload picks the change up on the other workers.
            log.warning("route change not published", extra={"app_id": app_id})

    async def _version(
        self,
        app_id: str,
        version: str,
        text: str,
        resolved: dict[str, tuple[Upstream | None, str | None]],
    ) -> VersionRoute:
        """Versions are immutable: parse each manifest once per worker; resolve each
        upstream once per load (DNS may change, the manifest may not)."""
        key = (app_id, version)
        hit = self._versions.get(key)
        manifest = hit[1] if hit is not None and hit[0] == text else None
        if manifest is None:
            manifest = Manifest.parse(json.loads(text))
        url = manifest.upstream
        if url not in resolved:
            try:
                resolved[url] = (await check_upstream(url, self.policy, "connect"), None)
            except DomainError as exc:
                resolved[url] = (None, exc.detail)
        upstream, refused = resolved[url]
        if hit is not None and manifest is hit[1] and hit[2].upstream == upstream:
            return hit[2]
        route = VersionRoute(
            version=version,
            upstream_url=url,
            upstream=upstream,
            refused=refused,
            min_acr=LEVELS[manifest.min_assurance],
            scopes=frozenset(manifest.scopes),
            timeout=manifest.timeout_ms / 1000,
            app_limit=to_limit(manifest.app_limit),
            citizen_limit=to_limit(manifest.citizen_limit),
        )
        self._versions[key] = (text, manifest, route)
        return route

    async def _build(self, rows: list[asyncpg.Record]) -> dict[str, AppRoute]:
        resolved: dict[str, tuple[Upstream | None, str | None]] = {}
        apps: dict[str, dict[str, Any]] = {}
        for i, r in enumerate(rows):
            if i % 500 == 499:
                await asyncio.sleep(0)  # a full reload of 10,000 apps must not stall requests
            entry = apps.setdefault(r["app_id"], {"row": r, "versions": {}})
            entry["versions"][r["version"]] = await self._version(
                r["app_id"], r["version"], r["manifest"], resolved
            )
        out: dict[str, AppRoute] = {}
        for app_id, entry in apps.items():
            r = entry["row"]
            cohort = Cohort.from_json(json.loads(r["cohort"])) if r["cohort"] else None
            route = AppRoute(
                app_id=app_id,
                unit_id=r["unit_id"],
                client_id=r["client_id"],
                status=r["status"],
                release=GrayRelease(r["current_version"], r["percent"], cohort),
                previous=r["previous_version"],
                versions=entry["versions"],
            )
            old = self.routes.get(app_id)
            # An unchanged app keeps its object: a reload leaves the long-lived heap alone.
            out[app_id] = old if old == route else route
        return out

    # background -----------------------------------------------------------------------

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen()),
                asyncio.create_task(self._periodic()),
            ]

    async def ready(self) -> None:
        """Wait until the table is loaded and subscribed to changes (tests, start-up)."""
        await self.ensure_loaded()
        async with asyncio.timeout(10):
            await self._subscribed.wait()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _periodic(self) -> None:
        while True:
            try:
                await self.load_all()
            except (OSError, asyncpg.PostgresError):
                log.warning("route table reload failed; keeping the routes in memory")
            await asyncio.sleep(self.full_reload)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                if self._subscribed.is_set():
                    await self.load_all()  # messages may have been missed while away
                self._subscribed.set()
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg and msg.get("type") == "message":
                        data = msg["data"]
                        await self.reload(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError, asyncpg.PostgresError):
                log.warning("route change subscription lost; reconnecting")
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
