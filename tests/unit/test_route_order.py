"""Routes tried first (the gateway's) must not shadow any other route."""

from __future__ import annotations

import re

from server.app import ROUTES


def test_routes_tried_first_match_no_other_route() -> None:
    first = [r for r in ROUTES if getattr(r.handler, "route_first", False)]
    assert first, "the gateway route is tried first"
    for hot in first:
        pattern = re.compile(hot.pattern)
        for other in ROUTES:
            if other is hot:
                continue
            sample = re.sub(r"\{[^}]+\}", "x", other.template)
            assert not pattern.match(sample), (hot.template, other.template)
