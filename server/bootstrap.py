"""The composition root: resolve settings against the embedded servers, open
the pools, build every service with its dependencies, and close them again.

``prepare`` runs once in the parent process before workers start (embedded
servers, master key, migrations, first signing key); ``build`` runs in each
worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import redis.asyncio as aioredis

from ecert.issuers import IssuerKeys
from ecert.presenting import Presentations
from ecert.repository import EcertRepository
from ecert.service import Certificates
from ecert.sharing import Sharing
from identity.clients import ClientRegistry
from identity.consents import Consents
from identity.crypto import Vault
from identity.oauth.provider import OidcProvider
from identity.organisations import Organisations
from identity.ports import HttpSms, OutboxSms, SmsSender
from identity.repository import IdentityRepository
from identity.revocation import RevokedSessions
from identity.service import SignInService
from identity.signing import RELOAD_INTERVAL, KeyRingStore
from identity.tokens import TokenService
from identity.verification.executor import RespawningProcessPool
from identity.verification.face import FaceVerifier, HttpFaceVerifier, LocalFaceVerifier
from identity.verification.registry import HttpPopulationRegistry
from identity.verification.repository import VerificationRepository
from identity.verification.service import RealNameService
from miniapps.catalog import Catalog
from miniapps.gateway import AssertionSigner, GatewayCore
from miniapps.ratelimit import RateLimiter
from miniapps.ratings import Ratings
from miniapps.repository import MiniAppRepository
from miniapps.routes import RouteTable
from miniapps.service import MiniAppService
from miniapps.ssrf import UpstreamPolicy
from miniapps.usage import UsageRecorder
from payments.loop import PaymentsWorker
from payments.reconciliation import Reconciler
from payments.service import PaymentService
from server.embedded import Embedded, master_key_file, start_embedded
from server.metrics import Metrics
from server.migrate import apply_migrations
from server.payments_wiring import build_payments, ensure_credentials
from server.settings import Settings
from server.upstream_http import UpstreamClient

log = logging.getLogger("superapp.bootstrap")


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def resolve(settings: Settings) -> tuple[Settings, Embedded]:
    """Start the embedded servers that are needed and fill in their URLs."""
    emb, db_url, redis_url = start_embedded(
        settings.data_dir, postgres=settings.embedded_database, redis=settings.embedded_redis
    )
    resolved = settings.with_(
        database_url=settings.database_url or db_url,
        redis_url=settings.redis_url or redis_url,
        master_key=settings.master_key or master_key_file(settings.data_dir),
    )
    log.info("database in use", extra={"url": redact_url(resolved.database_url or "")})
    log.info("redis in use", extra={"url": redact_url(resolved.redis_url or "")})
    return resolved, emb


async def prepare_database(settings: Settings) -> list[str]:
    """Apply migrations and make sure a signing key exists (idempotent)."""
    assert settings.database_url and settings.master_key
    conn = await asyncpg.connect(settings.database_url)
    try:
        applied = await apply_migrations(conn)
    finally:
        await conn.close()
    ensure_credentials(settings)  # once, before workers and channel simulators start
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        await KeyRingStore(pool, IdentityRepository(Vault(settings.master_key))).ensure()
    finally:
        await pool.close()
    return applied


@dataclass
class Services:
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    http: httpx.AsyncClient
    vault: Vault
    metrics: Metrics
    keys: KeyRingStore
    tokens: TokenService
    identity_repo: IdentityRepository
    signin: SignInService
    orgs: Organisations
    clients: ClientRegistry
    consents: Consents
    realname: RealNameService
    oidc: OidcProvider
    issuer_keys: IssuerKeys
    certificates: Certificates
    presentations: Presentations
    sharing: Sharing
    payments: PaymentService
    payments_worker: PaymentsWorker
    reconciler: Reconciler
    miniapps: MiniAppService
    routes: RouteTable
    gateway: GatewayCore
    usage: UsageRecorder
    catalog: Catalog
    ratings: Ratings
    upstream_http: UpstreamClient
    face_executor: RespawningProcessPool | None = None
    signin_pool: asyncpg.Pool | None = None  # identity's sign-in path (see build)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def reload_keys(self) -> None:
        self.tokens.ring = await self.keys.load()

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            try:
                await self.reload_keys()
            except (OSError, asyncpg.PostgresError):
                log.warning("key ring reload failed; keeping the keys in memory")

    def start_background(self) -> None:
        self.tasks.append(asyncio.create_task(self._reload_loop()))
        self.tasks.append(asyncio.create_task(self.payments_worker.run()))
        self.routes.start()
        self.usage.start()
        if self.signin.revoked is not None:
            self.tasks.append(asyncio.create_task(self.signin.revoked.listen()))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.face_executor is not None:
            # A comparison in flight finishes in well under a second.
            await asyncio.to_thread(self.face_executor.shutdown, True, cancel_futures=True)
        await self.routes.stop()
        await self.usage.stop()
        await self.upstream_http.close()
        await self.payments.aclose()
        await self.http.aclose()
        await self.redis.aclose()
        await self.pool.close()
        if self.signin_pool is not None:
            await self.signin_pool.close()


async def _rollback_only(conn: asyncpg.Connection) -> None:
    """Pool reset: end a leaked transaction, nothing more.

    asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) is a
    round trip on every release; pooled connections here never take session
    state (advisory locks are transaction-scoped, settings are SET LOCAL,
    nothing LISTENs on a pooled connection), so it would only cost time."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def build(settings: Settings, *, pool_size: int = 10) -> Services:
    assert settings.database_url and settings.redis_url and settings.master_key
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=pool_size,
        command_timeout=30,
        reset=_rollback_only,
    )
    # Sign-in's own small pool: that code keeps no session state (no SET, LISTEN,
    # session advisory locks or cursors), so a returned connection skips asyncpg's
    # reset query, a round trip per use on the hottest write path (asyncpg still
    # rolls back a transaction left open).
    signin_pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=max(2, pool_size // 2),
        command_timeout=30,
        reset=_keep_session,
    )
    redis = aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0, max_connections=200
    )
    http = httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=3.0), follow_redirects=False)
    vault = Vault(settings.master_key)
    repo = IdentityRepository(vault)
    keys = KeyRingStore(pool, repo)
    tokens = TokenService(
        await keys.load(), issuer=settings.issuer, access_ttl=settings.access_token_ttl
    )
    revoked = RevokedSessions(redis, ttl=settings.access_token_ttl)
    tokens.revoked = revoked
    signin = SignInService(
        signin_pool,
        redis,
        repo,
        vault,
        tokens,
        sms_sender(settings, signin_pool, repo, http),
        refresh_ttl=settings.refresh_token_ttl,
        revoked=revoked,
        otp_per_ip_per_hour=settings.otp_per_ip_per_hour,
        token_per_ip_per_minute=settings.token_per_ip_per_minute,
    )
    face_executor, faces = face_verifier(settings, http)
    realname = RealNameService(
        pool,
        redis,
        VerificationRepository(vault),
        repo,
        HttpPopulationRegistry(
            settings.registry_url,
            http,
            settings.registry_api_key,
            timeout=settings.registry_timeout,
        ),
        faces,
        real_name_attempts_per_day=settings.real_name_attempts_per_day,
        face_attempts_per_day=settings.face_attempts_per_day,
    )
    clients = ClientRegistry(pool, tokens)
    consents = Consents(pool)
    orgs = Organisations(pool, repo)
    ecert_repo = EcertRepository(vault)
    issuer_keys = IssuerKeys(pool, ecert_repo, vault)
    certificates = Certificates(pool, ecert_repo, vault, issuer_keys, orgs)
    presentations = Presentations(
        pool,
        redis,
        ecert_repo,
        issuer_keys,
        certificates,
        tokens,
        orgs,
        base_url=settings.issuer,
        qr_ttl=settings.qr_ttl,
    )
    payments, payments_worker, reconciler = build_payments(settings, pool, http, vault, tokens)
    mrepo = MiniAppRepository()
    allow = settings.upstream_allow_cidrs
    if settings.environment == "development" and settings.simulators:
        # The demo's echo upstream runs on loopback; production never allows it implicitly.
        allow = (*allow, "127.0.0.1/32")
    policy = UpstreamPolicy.from_strings(allow)
    routes = RouteTable(pool, redis, mrepo, policy)
    usage = UsageRecorder(pool, mrepo)
    return Services(
        settings=settings,
        pool=pool,
        signin_pool=signin_pool,
        redis=redis,
        http=http,
        vault=vault,
        metrics=Metrics(),
        keys=keys,
        tokens=tokens,
        identity_repo=repo,
        signin=signin,
        orgs=orgs,
        clients=clients,
        consents=consents,
        realname=realname,
        face_executor=face_executor,
        oidc=OidcProvider(
            pool,
            redis,
            vault,
            tokens,
            clients,
            consents,
            repo,
            refresh_ttl=settings.refresh_token_ttl,
        ),
        issuer_keys=issuer_keys,
        certificates=certificates,
        presentations=presentations,
        sharing=Sharing(pool, ecert_repo, certificates, presentations, consents),
        payments=payments,
        payments_worker=payments_worker,
        reconciler=reconciler,
        miniapps=MiniAppService(pool, mrepo, orgs, clients, policy, on_change=routes.changed),
        routes=routes,
        gateway=GatewayCore(
            routes,
            RateLimiter(redis),
            vault,
            consents,
            pool,
            mrepo,
            assertions=AssertionSigner(tokens),
        ),
        usage=usage,
        catalog=Catalog(pool, mrepo),
        ratings=Ratings(pool, mrepo, orgs, usage),
        # The gateway's pooled keep-alive client (no proxy, no cookies, no redirects;
        # it connects to the SSRF-checked address).
        upstream_http=UpstreamClient(limit_per_key=256, keepalive_timeout=30),
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    return None


def sms_sender(
    settings: Settings, pool: asyncpg.Pool, repo: IdentityRepository, http: httpx.AsyncClient
) -> SmsSender:
    """The SMS port: an HTTP gateway when ``SUPERAPP_SMS_URL`` is set, else the outbox."""
    if settings.sms_url:
        return HttpSms(settings.sms_url, settings.sms_api_key, http)
    if settings.environment == "production":
        log.warning("SUPERAPP_SMS_URL is not set: sign-in codes go to the outbox, not to phones")
    return OutboxSms(pool, repo)


def face_verifier(
    settings: Settings, http: httpx.AsyncClient
) -> tuple[RespawningProcessPool | None, FaceVerifier]:
    """The face matcher: dlib in one spawned process per worker, or an HTTP provider.

    The process starts, and loads the models, on the first comparison, not here.
    """
    if settings.face_provider == "http":
        return None, HttpFaceVerifier(settings.face_base_url, http, settings.face_key)
    executor = RespawningProcessPool(max_workers=1)
    return executor, LocalFaceVerifier(executor=executor)
