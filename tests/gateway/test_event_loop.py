"""``hearth run`` runs on uvloop where it is installed ([gateway] event_loop = "auto"), on asyncio's loop when
told so, and says clearly when it was told to use uvloop and cannot."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.app import event_loop_factory, loop_name, run_on_event_loop
from gateway.config import parse_config
from gateway.errors import ConfigError, HearthError

HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def test_asyncio_is_asyncio_s_own_loop() -> None:
    assert event_loop_factory("asyncio") is None
    assert run_on_event_loop(_running_loop_name(), "asyncio") == "asyncio"


@pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop has no wheel for this platform")
@pytest.mark.parametrize("choice", ["auto", "uvloop"])
def test_auto_and_uvloop_run_on_uvloop_where_installed(choice: str) -> None:
    assert run_on_event_loop(_running_loop_name(), choice) == "uvloop"


def test_without_uvloop_auto_falls_back_and_uvloop_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as where it is not installed: import fails
    assert event_loop_factory("auto") is None
    with pytest.raises(HearthError, match=r'event_loop = "uvloop", but uvloop is not installed.*pip install uvloop'):
        event_loop_factory("uvloop")


def test_the_config_names_the_choices() -> None:
    assert parse_config("", "house.toml").gateway.event_loop == "auto"
    assert parse_config('[gateway]\nevent_loop = "asyncio"\n', "house.toml").gateway.event_loop == "asyncio"
    with pytest.raises(ConfigError) as info:
        parse_config('[gateway]\nevent_loop = "libuv"\n', "house.toml")
    text = str(info.value)
    assert "house.toml:2: gateway.event_loop" in text and "'auto', 'uvloop' or 'asyncio'" in text


def test_hearth_run_told_to_use_a_missing_uvloop_stops_with_the_reason(tmp_path: Path) -> None:
    # A fresh interpreter in which uvloop cannot be imported, and a config that insists on it.
    config = tmp_path / "house.toml"
    config.write_text(f'[gateway]\nevent_loop = "uvloop"\ndata_dir = "{tmp_path}"\n[mqtt]\nenabled = false\n'
                      '[api]\nenabled = false\n[mdns]\nenabled = false\n', encoding="utf-8")
    code = ("import sys; sys.modules['uvloop'] = None\n"
            "from gateway.cli import main\n"
            f"raise SystemExit(main(['run', '--config', {str(config)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "uvloop is not installed" in result.stderr, result.stderr


async def _running_loop_name() -> str:
    return loop_name(asyncio.get_running_loop())
