"""server/loops.py: the event loop the workers and simulators run on."""

from __future__ import annotations

import asyncio
import sys

import pytest

from server import loops
from server.settings import Settings, SettingsError
from tests.conftest import TEST_EVENT_LOOP


async def _name() -> str:
    await asyncio.sleep(0)
    return loops.loop_name()


def test_run_on_each_loop() -> None:
    assert loops.run(_name(), "uvloop") == "uvloop"
    assert loops.run(_name(), "asyncio") == "asyncio"
    assert loops.run(_name(), "auto") == "uvloop"  # installed with the project


def test_run_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERAPP_EVENT_LOOP", "asyncio")
    assert loops.run(_name()) == "asyncio"
    monkeypatch.setenv("SUPERAPP_EVENT_LOOP", "")
    assert loops.run(_name()) == "uvloop"
    monkeypatch.setenv("SUPERAPP_EVENT_LOOP", "trio")
    coro = _name()
    with pytest.raises(ValueError, match="must be one of auto, uvloop, asyncio"):
        loops.run(coro)
    coro.close()


def test_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert loops.loop_factory("auto") is None
    assert loops.run(_name(), "auto") == "asyncio"
    with pytest.raises(ValueError, match="uvloop is not installed"):
        loops.loop_factory("uvloop")
    with pytest.raises(SettingsError, match="SUPERAPP_EVENT_LOOP: uvloop is not installed"):
        Settings.from_env({"SUPERAPP_EVENT_LOOP": "uvloop"})


def test_setting() -> None:
    assert Settings.from_env({}).event_loop == "auto"
    assert Settings.from_env({"SUPERAPP_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    with pytest.raises(SettingsError, match="SUPERAPP_EVENT_LOOP: must be one of"):
        Settings.from_env({"SUPERAPP_EVENT_LOOP": "UVLOOP"})


@pytest.mark.asyncio
async def test_in_process_tests_run_on_the_chosen_loop() -> None:
    # .ci/run's second pass sets SUPERAPP_TEST_EVENT_LOOP=uvloop: the whole in-process suite
    # then runs on the loop production uses.
    assert loops.loop_name() == TEST_EVENT_LOOP
