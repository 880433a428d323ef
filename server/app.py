"""``make_app``: the Tornado application from the route lists of every context."""

from __future__ import annotations

import logging
from typing import Any

import tornado.web

from server.api import ecert, gateway, identity, miniapps, oauth, ops, payments, verification
from server.bootstrap import Services
from server.http import NotFoundHandler, Route
from server.openapi import build_spec

access_log = logging.getLogger("superapp.access")

ROUTES: list[Route] = [
    *ops.ROUTES,
    *identity.ROUTES,
    *oauth.ROUTES,
    *verification.ROUTES,
    *ecert.ROUTES,
    *payments.ROUTES,
    *miniapps.ROUTES,
    *gateway.ROUTES,
]


def _log_request(handler: tornado.web.RequestHandler) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    status = handler.get_status()
    access_log.info(
        "request",
        extra={
            "method": handler.request.method,
            "route": getattr(handler, "template", "unmatched"),
            "status": status,
            "duration_ms": round(handler.request.request_time() * 1000, 2),
            "request_id": getattr(handler, "request_id", ""),
        },
    )


class _Application(tornado.web.Application):
    """Tornado's router tries every rule in order (about 40 regexes before the counter's
    verify route); literal paths are looked up in a dict first. A literal route is in
    the dict only if no earlier rule matches its path, so the handler is always the one
    the ordered scan would pick; anything else goes to the scan."""

    def __init__(
        self, specs: list[tornado.web.URLSpec], literal: list[str | None], **settings: Any
    ) -> None:
        """``literal[i]``: the path that ``specs[i]`` matches if it is a plain path."""
        super().__init__(specs, **settings)
        self._exact: dict[str, tornado.web.URLSpec] = {}
        for i, (spec, path) in enumerate(zip(specs, literal, strict=True)):
            if path is None or path in self._exact or not spec.regex.match(path):
                continue
            if not any(earlier.regex.match(path) for earlier in specs[:i]):
                self._exact[path] = spec

    def add_handlers(self, host_pattern: str, host_handlers: Any) -> None:
        self._exact = {}  # host-specific rules go first: leave routing to the scan
        super().add_handlers(host_pattern, host_handlers)

    def find_handler(self, request: Any, **kwargs: Any) -> Any:
        spec = self._exact.get(request.path)
        if spec is not None:
            return self.get_handler_delegate(request, spec.handler_class, spec.kwargs)
        return super().find_handler(request, **kwargs)


def make_app(
    svc: Services, routes: list[Route] | None = None, **settings: Any
) -> tornado.web.Application:
    routes = routes if routes is not None else ROUTES
    # Routes whose handler sets ``route_first`` (the gateway: its ``/m/`` prefix is its
    # own) are tried before the others, so a proxied request is not matched against
    # every API pattern first. The OpenAPI document keeps the declared order.
    first = [r for r in routes if getattr(r.handler, "route_first", False)]
    ordered = first + [r for r in routes if r not in first]
    specs = [
        tornado.web.url(r.pattern, r.handler, {"svc": svc, "template": r.template, **r.kwargs})
        for r in ordered
    ]
    return _Application(
        specs,
        [None if "{" in r.template else r.template for r in ordered],
        default_handler_class=NotFoundHandler,
        default_handler_args={"svc": svc},
        log_function=_log_request,
        openapi=build_spec(routes, server_url=svc.settings.issuer),
        xheaders=False,
        compress_response=False,
        **settings,
    )
