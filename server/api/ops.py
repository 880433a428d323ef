"""Operations endpoints: liveness, readiness, metrics, the OpenAPI document,
the API reference page and the published signing keys."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from server.http import BaseHandler, route
from server.openapi import ANY_OBJ, STR, obj, op

STATIC = Path(__file__).resolve().parent.parent / "static"


class HealthHandler(BaseHandler):
    openapi = {"get": op("Process is alive", tag="ops", response=obj(["status"], status=STR))}

    def get(self) -> None:
        self.send_json({"status": "ok"})


class ReadyHandler(BaseHandler):
    openapi = {
        "get": op(
            "PostgreSQL and Redis are reachable",
            tag="ops",
            response=obj(["status", "checks"], status=STR, checks=ANY_OBJ),
            errors=(503,),
        )
    }

    async def get(self) -> None:
        checks = {}
        checks["postgres"] = await _probe(self.svc.pool.fetchval("SELECT 1"))
        checks["redis"] = await _probe(self.svc.redis.ping())
        failed = [name for name, ok in checks.items() if ok != "ok"]
        if failed:
            from identity.errors import DependencyUnavailable

            raise DependencyUnavailable(
                f"Not ready: {', '.join(failed)} unreachable.", failed=failed, checks=checks
            )
        self.send_json({"status": "ready", "checks": checks})


async def _probe(awaitable: object) -> str:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(awaitable, 2.0)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return "unreachable"
    return "ok" if time.perf_counter() - started < 2.0 else "slow"


class MetricsHandler(BaseHandler):
    openapi = {"get": op("Prometheus metrics", tag="ops", response=STR, content_type="text/plain")}

    def get(self) -> None:
        body, ctype = self.svc.metrics.render()
        self.set_header("Content-Type", ctype)
        self.finish(body)


class OpenApiHandler(BaseHandler):
    openapi = {"get": op("This OpenAPI 3.1 document", tag="ops", response=ANY_OBJ)}

    def get(self) -> None:
        self.set_header("Access-Control-Allow-Origin", "*")
        self.send_json(self.application.settings["openapi"])


class DocsHandler(BaseHandler):
    openapi = {
        "get": op("Readable API reference", tag="ops", response=STR, content_type="text/html")
    }

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish((STATIC / "docs.html").read_bytes())


class JwksHandler(BaseHandler):
    openapi = {
        "get": op("Published platform signing keys (JWKS)", tag="identity", response=ANY_OBJ)
    }

    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.set_header("Content-Type", "application/jwk-set+json")
        self.set_header("Access-Control-Allow-Origin", "*")
        self.finish(self.svc.tokens.ring.jwks(datetime.now(UTC)))


ROUTES = [
    route("/healthz", HealthHandler),
    route("/readyz", ReadyHandler),
    route("/metrics", MetricsHandler),
    route("/openapi.json", OpenApiHandler),
    route("/docs", DocsHandler),
    route("/.well-known/jwks.json", JwksHandler),
]
