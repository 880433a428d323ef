"""Settings of real-name and face verification: simulator defaults, fail-fast checks."""

from __future__ import annotations

import base64

import pytest

from server.settings import DEFAULT_REGISTRY_URL, DEMO_REGISTRY_API_KEY, Settings, SettingsError
from server.sims.launcher import SIMULATORS, sim_url

KEY = base64.b64encode(b"k" * 32).decode()


def test_embedded_defaults_point_at_the_registry_simulator() -> None:
    s = Settings.from_env({})
    assert s.registry_url == DEFAULT_REGISTRY_URL == sim_url("registry")
    assert SIMULATORS["registry"].module == "server.sims.registry"
    assert s.registry_api_key == DEMO_REGISTRY_API_KEY
    assert s.face_provider == "local"  # the face extra is installed in the test environment
    # The simulator also serves the face provider's API, so "http" needs nothing else.
    assert s.face_base_url == s.registry_url and s.face_key == s.registry_api_key
    assert (s.real_name_attempts_per_day, s.face_attempts_per_day) == (5, 10)


def test_face_provider_settings() -> None:
    s = Settings.from_env(
        {
            "SUPERAPP_FACE_PROVIDER": "HTTP",
            "SUPERAPP_FACE_URL": "https://faces.example",
            "SUPERAPP_FACE_API_KEY": "f-key",
        }
    )
    assert (s.face_provider, s.face_base_url, s.face_key) == (
        "http",
        "https://faces.example",
        "f-key",
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SUPERAPP_REGISTRY_URL", "registry.example"),
        ("SUPERAPP_FACE_URL", "ftp://faces.example"),
        ("SUPERAPP_FACE_PROVIDER", "magic"),
        ("SUPERAPP_REGISTRY_TIMEOUT", "0"),
        ("SUPERAPP_REAL_NAME_ATTEMPTS_PER_DAY", "0"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    assert info.value.name == name


def test_production_never_talks_to_the_simulator() -> None:
    base = {"SUPERAPP_ENV": "production", "SUPERAPP_MASTER_KEY": KEY}
    with pytest.raises(SettingsError) as info:
        Settings.from_env(base)
    assert info.value.name == "SUPERAPP_REGISTRY_URL"
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**base, "SUPERAPP_REGISTRY_URL": "https://registry.example"})
    assert info.value.name == "SUPERAPP_REGISTRY_API_KEY"
    s = Settings.from_env(
        {
            **base,
            "SUPERAPP_REGISTRY_URL": "https://registry.example",
            "SUPERAPP_REGISTRY_API_KEY": "real-key",
        }
    )
    assert s.registry_url == "https://registry.example" and not s.simulators
