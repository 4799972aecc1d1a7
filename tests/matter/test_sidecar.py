"""The sidecar's supervisor, with a stand-in for Node (a shell script speaking the sidecar's stdout protocol): no
Node, no Matter, no network. It starts the sidecar with a token of its own, reads its reports, restarts it with
back-off when it ends, says why it cannot run, and revokes the token when it stops."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from gateway.api.auth import TokenStore
from gateway.clock import SimulatedClock
from gateway.hub import Hub
from gateway.matter.settings import MatterSection
from gateway.matter.sidecar import TOKEN_NAME, MatterBridge

# Prints what the real sidecar prints (ready, then a status), records its argv and environment, then ends after
# a moment with exit 3: a crash the supervisor must restart.
FAKE_NODE = """#!/bin/sh
if [ "$1" = "--version" ]; then echo v20.20.2; exit 0; fi
echo "$@" > "$RECORD.argv"
env > "$RECORD.env"
echo '{"type": "ready", "port": 5540, "endpoints": 2, "startup_ms": 12}'
echo '{"type": "status", "connected": true, "commissioned": false, "fabrics": [],'\
'"endpoints": [{"device": "a"}, {"device": "b"}], "rss_bytes": 1000}'
echo "a line of matter.js's log" >&2
sleep 0.3
exit 3
"""


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():  # noqa: ASYNC110 - polls the supervisor's state, which has no event to wait on
            await asyncio.sleep(0.02)


@pytest.fixture
def sidecar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[MatterSection, Path]:
    folder = tmp_path / "sidecar"
    (folder / "node_modules" / "@matter" / "main").mkdir(parents=True)
    (folder / "bridge.mjs").write_text("// stand-in\n")
    node = tmp_path / "node"
    node.write_text(FAKE_NODE)
    node.chmod(0o755)
    monkeypatch.setenv("RECORD", str(tmp_path / "record"))
    # The first restart comes after 0.5-1 s (RESTART_MIN_S with jitter): fast enough for a test.
    return MatterSection(enabled=True, node=str(node), sidecar_dir=folder), tmp_path


async def test_it_starts_reads_reports_restarts_and_revokes_its_token(sidecar: tuple[MatterSection, Path]) -> None:
    settings, tmp_path = sidecar
    tokens = TokenStore(tmp_path / "tokens.json")
    data = tmp_path / "data"
    async with MatterBridge(settings, data_dir=data, hub=Hub(SimulatedClock()), tokens=tokens,
                            api_url="http://127.0.0.1:1", name="Test house") as bridge:
        await _until(lambda: bridge.ready is not None and bridge.status)
        health = bridge.health()
        assert health["state"] == "running" and health["endpoints"] == 2 and health["rss_bytes"] == 1000
        assert [t.name for t in tokens.list()] == [TOKEN_NAME]
        assert tokens.list()[0].role == "installer" and tokens.list()[0].expires is not None
        await _until(lambda: bridge.restarts >= 1)
        assert bridge.last_exit == 3 and "matter.js's log" in " ".join(bridge.stderr_tail)
        await _until(lambda: bridge.state == "running")
        details = bridge.details()
        assert details["pairing"]["manual_code"].isdigit()
    assert bridge.state == "stopped"
    assert tokens.list() == []  # revoked on the way out

    _check_what_the_sidecar_got(tmp_path, tokens, data)


def _check_what_the_sidecar_got(tmp_path: Path, tokens: TokenStore, data: Path) -> None:
    env = dict(line.split("=", 1) for line in (tmp_path / "record.env").read_text().splitlines() if "=" in line)
    token = env["HEARTH_MATTER_TOKEN"]
    assert tokens.verify(token) is None  # it was a real token, and it no longer works
    assert "--max-semi-space-size=1" in (tmp_path / "record.argv").read_text()
    config_path = Path(env["HEARTH_MATTER_CONFIG"])
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    text = config_path.read_text()
    config = json.loads(text)
    assert config["hearth_url"] == "http://127.0.0.1:1" and token not in text
    assert config["mapping"]["device_types"][0]["key"] == "extended_color_light"
    assert not (data / "matter" / "sidecar.pid").exists()


async def test_without_node_it_says_why_and_does_not_spin(tmp_path: Path) -> None:
    settings = MatterSection(enabled=True, node=str(tmp_path / "no-such-node"))
    tokens = TokenStore(tmp_path / "tokens.json")
    async with MatterBridge(settings, data_dir=tmp_path / "data", hub=Hub(SimulatedClock()), tokens=tokens,
                            api_url="http://127.0.0.1:1") as bridge:
        await _until(lambda: bridge.problem is not None)
        assert "no such executable" in bridge.problem
        await asyncio.sleep(0.2)
        assert bridge.restarts <= 1 and bridge.health()["state"] == "restarting"
        assert tokens.list() == []


async def test_without_the_packages_it_says_how_to_install_them(sidecar: tuple[MatterSection, Path]) -> None:
    settings, tmp_path = sidecar
    settings = settings.model_copy(update={"sidecar_dir": tmp_path / "empty"})
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "bridge.mjs").write_text("")
    async with MatterBridge(settings, data_dir=tmp_path / "data", hub=Hub(SimulatedClock()),
                            tokens=TokenStore(tmp_path / "tokens.json"), api_url="http://127.0.0.1:1") as bridge:
        await _until(lambda: bridge.problem is not None)
        assert "npm ci --ignore-scripts --prefix" in bridge.problem
