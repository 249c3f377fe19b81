"""The loop under the reactor: uvloop's when installed, the standard library's otherwise or when
declined (smsgw/reactor.py)."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from smsgw import reactor as smsgw_reactor

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None


def chosen(monkeypatch: pytest.MonkeyPatch, env: str | None) -> tuple[str | None, str]:
    if env is None:
        monkeypatch.delenv("SMSGW_EVENT_LOOP", raising=False)
    else:
        monkeypatch.setenv("SMSGW_EVENT_LOOP", env)
    loop = smsgw_reactor.new_event_loop()
    try:
        return smsgw_reactor.event_loop, type(loop).__module__
    finally:
        loop.close()


@pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed on this platform")
def test_uvloop_is_used_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    name, module = chosen(monkeypatch, None)
    assert name == "uvloop" and module.startswith("uvloop")


@pytest.mark.parametrize("env", ["asyncio", " ASYNCIO "])
def test_the_standard_loop_when_declined(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    name, module = chosen(monkeypatch, env)
    assert name == "asyncio" and module.startswith("asyncio")


def test_the_standard_loop_when_uvloop_cannot_be_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    name, module = chosen(monkeypatch, None)
    assert name == "asyncio" and module.startswith("asyncio")
