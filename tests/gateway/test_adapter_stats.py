"""The optional adapter hook ``stats()``: shown in /healthz, its drop counters exported by /metrics, and nothing it
does (raise, return nonsense, be async, be slow) breaks either."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest

import gateway.supervisor as supervisor_module
from gateway.app import Gateway, adapter_metrics
from gateway.clock import SimulatedClock, SystemClock
from gateway.config import parse_config
from gateway.hub import Hub
from gateway.model.types import Command, CommandResult
from gateway.sdk import AdapterContext
from gateway.supervisor import Supervisor

BLE_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ble"


class Quiet:
    """An adapter without stats(): its /healthz entry stays what it was."""

    needs_mqtt: ClassVar[bool] = False

    async def start(self, ctx: AdapterContext) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("rejected")


class Counting(Quiet):
    calls = 0

    def stats(self) -> dict[str, Any]:
        type(self).calls += 1
        return {"queue": 3, "dropped": {"by_reason": {"not_json": 2, 'we"ird': 1}, "by_device": {"x:1": {"a": 1}}}}


class Raising(Quiet):
    def stats(self) -> dict[str, Any]:
        raise RuntimeError("boom")


class Async(Quiet):
    async def stats(self) -> dict[str, Any]:  # the hook is synchronous: this one cannot be used
        return {"dropped": {"by_reason": {"x": 1}}}


class NotJson(Quiet):
    def stats(self) -> dict[str, Any]:
        return {"devices": {"a", "b"}, "dropped": {"by_reason": {"x": 1}}}


class NotADict(Quiet):
    def stats(self) -> list[int]:
        return [1, 2]


class NotANumber(Quiet):
    def stats(self) -> dict[str, Any]:
        return {"ratio": float("nan")}


async def _running(supervisor: Supervisor, names: list[str]) -> None:
    for _ in range(200):  # bounded: 2 s
        if all(supervisor.health[n].state == "running" for n in names):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(supervisor.health_report())


async def test_stats_of_running_adapters_are_in_the_health_report_and_failures_are_said() -> None:
    adapters: dict[str, type[Any]] = {"quiet": Quiet, "counting": Counting, "raising": Raising, "async": Async,
                                      "not_json": NotJson, "not_a_dict": NotADict, "nan": NotANumber}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Supervisor(Hub(SystemClock()), adapters, {}, mqtt=None) as supervisor:
            await _running(supervisor, list(adapters))
            report = supervisor.health_report()
        gc.collect()
    assert report["quiet"] == {"state": "running", "restarts": 0, "failures": 0, "message_failures": 0,
                               "loop_blocks": 0,
                               "last_error": None}
    assert report["counting"]["stats"]["dropped"]["by_reason"] == {"not_json": 2, 'we"ird': 1}
    assert report["counting"]["stats"]["queue"] == 3
    assert report["raising"]["stats_error"] == "stats failed: RuntimeError: boom"
    assert report["async"]["stats_error"] == "stats failed: TypeError: stats() must be a plain method, not async"
    assert report["not_json"]["stats_error"].startswith("stats failed: TypeError: Object of type set")
    assert report["not_a_dict"]["stats_error"] == "stats failed: TypeError: stats() returned list, not a dict"
    assert report["nan"]["stats_error"].startswith("stats failed: ValueError")
    for name in ("raising", "async", "not_json", "not_a_dict", "nan"):
        assert report[name]["state"] == "running" and "stats" not in report[name]  # a failed stats() is only said
    json.dumps(report, allow_nan=False)  # what /healthz does with it
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_adapter_metrics_export_drops_by_reason_only() -> None:
    text = adapter_metrics({
        "counting": {"stats": Counting().stats()},
        "raising": {"stats_error": "stats failed: RuntimeError: boom"},
        "other": {"stats": {"dropped": {"by_reason": {"odd": True, "fine": 4}}, "queue": 1}},
        "shapeless": {"stats": {"dropped": [1, 2]}},
    })
    assert text.splitlines() == [
        "# HELP hearth_adapter_dropped_total Input an adapter received and did not apply, by reason.",
        "# TYPE hearth_adapter_dropped_total counter",
        'hearth_adapter_dropped_total{adapter="counting",reason="not_json"} 2',
        'hearth_adapter_dropped_total{adapter="counting",reason="we\\"ird"} 1',
        'hearth_adapter_dropped_total{adapter="other",reason="fine"} 4',
    ]
    assert adapter_metrics({"raising": {"stats_error": "stats failed: x"}}) == ""


async def test_a_slow_stats_is_called_again_only_after_a_while(monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(supervisor_module, "STATS_SLOW_S", -1.0)  # every call counts as slow
    Counting.calls = 0
    clock = SimulatedClock(1_700_000_000.0)
    async with Supervisor(Hub(clock), {"counting": Counting}, {}, mqtt=None) as supervisor:
        await _running(supervisor, ["counting"])
        with caplog.at_level(logging.WARNING, logger="hearth.supervisor"):
            first = supervisor.health_report()["counting"]
        assert "stats_age_s" not in first and Counting.calls == 1
        assert any("stats() took" in r.getMessage() for r in caplog.records)
        clock.advance_to(1_700_000_000.0 + 30)
        cached = supervisor.health_report()["counting"]
        assert Counting.calls == 1 and cached["stats"] == first["stats"] and cached["stats_age_s"] == 30.0
        clock.advance_to(1_700_000_000.0 + supervisor_module.STATS_SLOW_BACKOFF_S + 1)
        again = supervisor.health_report()["counting"]
        assert Counting.calls == 2 and "stats_age_s" not in again


async def test_healthz_and_metrics_show_the_ble_adapters_drops(tmp_path: Path) -> None:
    """A gateway as ``hearth run`` makes it (no MQTT, no mDNS, API on loopback), its BLE adapter fed without a
    radio (scanner = false): a frame it cannot read and one it has no key for show in /healthz and /metrics."""
    from adapters.ble.decoders import MIBEACON_UUID, Advertisement

    config = parse_config(
        f'[gateway]\ndata_dir = "{tmp_path}"\n\n[mqtt]\nenabled = false\n\n[mdns]\nenabled = false\n\n'
        '[api]\nport = 0\n\n[adapters.mdns]\nenabled = false\n\n[adapters.ble]\nscanner = false\n'
    )
    gateway = Gateway(config, out=io.StringIO())
    run = asyncio.create_task(gateway.run(install_signal_handlers=False))
    try:
        await asyncio.wait_for(gateway.ready.wait(), timeout=20)
        assert gateway.supervisor is not None and gateway.api is not None
        await _running(gateway.supervisor, ["ble"])
        ble = gateway.supervisor.instance("ble")
        now = time.time()
        # xiaomi-ble test_Xiaomi_LYWSD03MMC (plain, applied), the same frame cut short (a problem), and
        # test_Xiaomi_RTCGQ02LM_timeout_motion (encrypted, and no key for it: a note)
        vectors = {row["test"]: row for row in map(json.loads, (BLE_FIXTURES / "xiaomi_ble_vectors.jsonl")
                                                    .read_text().splitlines()[1:])}
        plain = vectors["test_Xiaomi_LYWSD03MMC"]
        frame = bytes.fromhex(plain["data"])
        ble.feed(Advertisement.create(plain["address"], -60, None, {MIBEACON_UUID: frame}, {}, now))
        ble.feed(Advertisement.create(plain["address"], -60, None, {MIBEACON_UUID: frame[:4]}, {}, now + 1))
        motion = vectors["test_Xiaomi_RTCGQ02LM_timeout_motion"]
        ble.feed(Advertisement.create(motion["address"], -60, None, {MIBEACON_UUID: bytes.fromhex(motion["data"])},
                                      {}, now + 2))
        async with aiohttp.ClientSession() as http:  # both routes need no token
            async with http.get(f"{gateway.api.url}/healthz") as response:
                assert response.status == 200
                health = await response.json()
            async with http.get(f"{gateway.api.url}/metrics") as response:
                assert response.status == 200
                metrics = await response.text()
        stats = health["adapters"]["ble"]["stats"]
        assert stats["dropped"]["by_reason"] == {"no_key": 1, "too_short": 1}
        assert stats["dropped"]["devices"] == 2 and "by_device" not in stats["dropped"]  # no addresses unasked
        assert stats["scanner"] == "off"
        assert health["adapters"]["zigbee2mqtt"] == {"state": "disabled", "restarts": 0, "failures": 0,
                                                     "message_failures": 0, "loop_blocks": 0,
                                                     "last_error": "needs MQTT, and [mqtt] is disabled"}
        assert 'hearth_adapter_dropped_total{adapter="ble",reason="no_key"} 1' in metrics.splitlines()
        assert 'hearth_adapter_dropped_total{adapter="ble",reason="too_short"} 1' in metrics.splitlines()
        assert 'hearth_bad_input_by_source_total{source="ble"} 1' in metrics.splitlines()  # the hub's, still there
        assert "hearth_devices 1" in metrics.splitlines()
    finally:
        gateway.request_stop()
        await asyncio.wait_for(run, timeout=20)
