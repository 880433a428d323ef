"""The gateway forwards the raw rest of the path and refuses dot segments."""

from __future__ import annotations

import pytest

from miniapps.errors import InvalidGatewayPath
from server.api.gateway import upstream_path


def test_upstream_path_takes_the_raw_rest_of_the_path() -> None:
    assert upstream_path("/m/app_1/a/b%20c") == "a/b%20c"
    assert upstream_path("/m/app_1/") == ""
    assert upstream_path("/m/app_1/caf\u00e9 x") == "caf%C3%A9%20x"
    for raw in ("/m/app_1/..", "/m/app_1/a/../../b", "/m/app_1/./a", "/m/app_1/a/%2e%2E"):
        with pytest.raises(InvalidGatewayPath):
            upstream_path(raw)
