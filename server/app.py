"""``make_app``: the Tornado application from the route lists of every context."""

from __future__ import annotations

import re
from typing import Any

import tornado.web

from server.api import ecert, gateway, identity, miniapps, oauth, ops, payments, verification
from server.bootstrap import Services
from server.http import NotFoundHandler, Route, log_access
from server.lean import LeanHandler, LeanTarget
from server.openapi import build_spec

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
    log_access(
        handler.request.method or "-",
        getattr(handler, "template", "unmatched"),
        handler.get_status(),
        handler.request.request_time(),
        getattr(handler, "request_id", ""),
    )


class _Application(tornado.web.Application):
    """Tornado's router tries every rule in order (about 40 regexes before the counter's
    verify route); literal paths are looked up in a dict first. A literal route is in
    the dict only if no earlier rule matches its path, so the handler is always the one
    the ordered scan would pick; anything else goes to the scan.

    A route whose handler class names a ``delegate`` (the gateway's ``/m/`` prefix,
    tried first) is served by that ``HTTPMessageDelegate`` directly, with no
    ``RequestHandler`` (see ``server/api/gateway.py``); so is a ``LeanHandler`` route,
    whose rule's target is a ``LeanTarget`` (see ``server/lean.py``)."""

    def __init__(
        self,
        specs: list[tornado.web.URLSpec],
        literal: list[str | None],
        svc: Services,
        **settings: Any,
    ) -> None:
        """``literal[i]``: the path that ``specs[i]`` matches if it is a plain path."""
        super().__init__(specs, **settings)
        self._svc = svc
        self._delegates: list[tuple[re.Pattern[str], Any]] = []
        for spec in specs:
            if getattr(spec.handler_class, "delegate", None) is None:
                break  # only routes tried first: no earlier rule can shadow them
            self._delegates.append((spec.regex, spec.handler_class.delegate))
        self._exact: dict[str, tornado.web.URLSpec] = {}
        for i, (spec, path) in enumerate(zip(specs, literal, strict=True)):
            if path is None or path in self._exact or not spec.regex.match(path):
                continue
            if not any(earlier.regex.match(path) for earlier in specs[:i]):
                self._exact[path] = spec

    def add_handlers(self, host_pattern: str, host_handlers: Any) -> None:
        self._exact = {}  # host-specific rules go first: leave routing to the scan
        self._delegates = []
        super().add_handlers(host_pattern, host_handlers)

    def find_handler(self, request: Any, **kwargs: Any) -> Any:
        for regex, delegate in self._delegates:
            match = regex.match(request.path)
            if match:
                return delegate(self._svc, request, **match.groupdict())
        spec = self._exact.get(request.path)
        if spec is not None:
            if isinstance(spec.target, LeanTarget):
                return spec.target.find_handler(request)
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
        tornado.web.url(r.pattern, LeanTarget(r.handler, svc, r.template))
        if issubclass(r.handler, LeanHandler)
        else tornado.web.url(r.pattern, r.handler, {"svc": svc, "template": r.template, **r.kwargs})
        for r in ordered
    ]
    return _Application(
        specs,
        [None if "{" in r.template else r.template for r in ordered],
        svc,
        default_handler_class=NotFoundHandler,
        default_handler_args={"svc": svc},
        log_function=_log_request,
        openapi=build_spec(routes, server_url=svc.settings.issuer),
        xheaders=False,
        compress_response=False,
        **settings,
    )
