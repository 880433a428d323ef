"""The exact-path dict in front of Tornado's ordered rule scan picks the same handler
as the scan would, and leaves a shadowed plain path to the scan."""

from __future__ import annotations

from typing import Any
from unittest import mock

import tornado.web
from tornado.httputil import HTTPServerRequest, RequestStartLine

from server.app import ROUTES, make_app
from server.http import BaseHandler, route


class A(BaseHandler):
    pass


class B(BaseHandler):
    pass


def _app(routes: Any = None) -> Any:
    svc = mock.MagicMock()
    svc.settings.issuer = "http://test"
    return make_app(svc, routes)


def _req(path: str) -> HTTPServerRequest:
    return HTTPServerRequest(start_line=RequestStartLine("GET", path, "HTTP/1.0"))


def _scan(app: Any, path: str) -> Any:
    """What Tornado's ordered scan picks (the behaviour the dict must reproduce)."""
    request = _req(path)
    return tornado.web.Application.find_handler(app, request).handler_class


def test_every_plain_route_resolves_as_the_ordered_scan_does() -> None:
    app = _app()
    plain = [r.template for r in ROUTES if "{" not in r.template]
    assert plain and set(app._exact) <= set(plain)
    assert "/api/v1/ecert/verify" in app._exact
    for path in plain:
        fast = app.find_handler(_req(path)).handler_class
        assert fast is _scan(app, path), path
    # And the dict is not thinned by accident (route_first reorders the rules): every
    # plain route that the scan reaches is in it.
    handler = {r.template: r.handler for r in ROUTES}
    reached = {p for p in plain if _scan(app, p) is handler[p]}
    assert set(app._exact) == reached


def test_a_plain_path_shadowed_by_an_earlier_pattern_is_left_to_the_scan() -> None:
    app = _app([route("/x/{name}", A), route("/x/plain", B), route("/y", B)])
    assert "/x/plain" not in app._exact and "/y" in app._exact
    assert app.find_handler(_req("/x/plain")).handler_class is A
    assert app.find_handler(_req("/y?q=1")).handler_class is B
