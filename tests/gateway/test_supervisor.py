"""Adapters are isolated: one that crashes is reported and restarted with back-off; others keep running."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

import gateway.supervisor as supervisor_module
from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, Command, CommandResult, DeviceInfo, Update
from gateway.sdk import AdapterContext, AdapterNotReadyError
from gateway.supervisor import Supervisor, adapter_config_problems, discover_adapters


class SteadyAdapter:
    needs_mqtt: ClassVar[bool] = False

    async def start(self, ctx: AdapterContext) -> None:
        self.ctx = ctx
        ctx.upsert_device(DeviceInfo("steady:1", "Steady", "steady", {
            "main": {"on_off": CapabilitySupport(frozenset({"on"}), frozenset({"on", "off", "toggle"}))}}))
        ctx.create_task(self._tick(), "tick")

    async def _tick(self) -> None:
        value = False
        while True:
            value = not value
            self.ctx.push([Update("steady:1", "main", "on_off", "on", value)])
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        pass

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("sent")


class CrashingAdapter:
    """Starts fine, then its background task dies; the second start fails outright."""

    needs_mqtt: ClassVar[bool] = False
    starts = 0
    stops = 0

    async def start(self, ctx: AdapterContext) -> None:
        type(self).starts += 1
        if type(self).starts == 2:
            raise AdapterNotReadyError("dongle not plugged in")
        ctx.create_task(self._die(), "die")

    async def _die(self) -> None:
        await asyncio.sleep(0.01)
        raise RuntimeError("deliberate crash")

    async def stop(self) -> None:
        type(self).stops += 1

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("failed")


async def test_a_crashing_adapter_is_restarted_with_backoff_and_the_others_keep_running(monkeypatch: Any) -> None:
    monkeypatch.setattr(supervisor_module, "BACKOFF_MIN_S", 0.02)
    hub = Hub(SystemClock())
    changes: list[int] = []
    hub.bus.subscribe_all(lambda e: changes.append(1))
    async with Supervisor(hub, {"steady": SteadyAdapter, "crashy": CrashingAdapter}, {}, mqtt=None,
                          rng=random.Random(1)) as supervisor:
        for _ in range(300):
            await asyncio.sleep(0.01)
            if CrashingAdapter.starts >= 4:
                break
        report = supervisor.health_report()
        assert CrashingAdapter.starts >= 4
        assert CrashingAdapter.stops >= 3  # stopped before every restart
        assert report["crashy"]["restarts"] >= 3
        assert report["crashy"]["last_error"] is not None
        assert report["steady"] == {"state": "running", "restarts": 0, "failures": 0, "message_failures": 0,
                               "loop_blocks": 0,
                               "last_error": None}
        before = hub.counters["updates"]
        await asyncio.sleep(0.1)
        assert hub.counters["updates"] > before  # the steady adapter still delivers


async def test_commands_route_to_the_owning_adapter_only_while_it_runs() -> None:
    hub = Hub(SystemClock())
    async with Supervisor(hub, {"steady": SteadyAdapter}, {}, mqtt=None):
        for _ in range(100):
            await asyncio.sleep(0.01)
            if "steady:1" in hub.devices:
                break
        result = await hub.execute(Command("steady:1", "main", "on_off", "on"), timeout_s=1)
        assert result.status == "confirmed"  # the ticking adapter reports on=True soon enough
    result = await hub.execute(Command("steady:1", "main", "on_off", "on"), timeout_s=0.1)
    assert result.status == "failed"


async def test_adapters_needing_mqtt_are_disabled_without_it() -> None:
    class NeedsMqtt(SteadyAdapter):
        needs_mqtt: ClassVar[bool] = True

    hub = Hub(SystemClock())
    async with Supervisor(hub, {"m": NeedsMqtt}, {}, mqtt=None) as supervisor:
        await asyncio.sleep(0.01)
        assert supervisor.health_report()["m"]["state"] == "disabled"


def test_builtin_adapters_come_through_the_entry_point_group() -> None:
    adapters = discover_adapters()
    assert "zigbee2mqtt" in adapters


def test_disabled_adapters_are_not_imported() -> None:
    # A fresh interpreter: with both Bluetooth adapters off, `hearth run` never loads the BLE adapter's module.
    code = ("import sys\nfrom gateway.supervisor import discover_adapters\n"
            "found = discover_adapters(lambda name: name not in ('ble', 'ble_mqtt'))\n"
            "print('zigbee2mqtt' in found, 'ble' in found, 'adapters.ble.adapter' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False"]


def test_adapter_config_errors_name_the_line_and_key() -> None:
    class Settings(BaseModel):
        model_config = ConfigDict(extra="forbid")
        interval_s: float = 1.0

    class Configured(SteadyAdapter):
        config_model = Settings

    text = '[mqtt]\nport = 1883\n\n[adapters.acme]\ninterval_s = "soon"\n\n[adapters.nosuch]\nx = 1\n'
    sections = {"acme": {"interval_s": "soon"}, "nosuch": {"x": 1}}
    problems = adapter_config_problems("house.toml", text, sections, {"acme": Configured})
    rendered = [str(p) for p in problems]
    assert rendered[0].startswith("house.toml:5: adapters.acme.interval_s:")
    assert rendered[1].startswith("house.toml:7: adapters.nosuch: no adapter named 'nosuch'")
