"""SMS settings: the outbox by default, an HTTP gateway with URL and key."""

from __future__ import annotations

import pytest

from server.settings import Settings, SettingsError


def test_outbox_is_the_default() -> None:
    s = Settings.from_env({})
    assert s.sms_url == "" and s.sms_api_key == ""


def test_gateway_needs_url_and_key() -> None:
    s = Settings.from_env(
        {"SUPERAPP_SMS_URL": "https://sms.example.cn/v1", "SUPERAPP_SMS_API_KEY": "k3y"}
    )
    assert s.sms_url == "https://sms.example.cn/v1" and s.sms_api_key == "k3y"
    assert "k3y" not in repr(s)
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"SUPERAPP_SMS_URL": "https://sms.example.cn/v1"})
    assert err.value.name == "SUPERAPP_SMS_API_KEY"
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"SUPERAPP_SMS_URL": "ftp://sms", "SUPERAPP_SMS_API_KEY": "k"})
    assert err.value.name == "SUPERAPP_SMS_URL"
