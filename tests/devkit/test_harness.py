"""The test kit's harness (gateway.devkit.harness) and its pytest fixtures, with small adapters of their own: one
adapter on a real hub, a simulated clock, in-memory or real MQTT."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.devkit.harness import Harness, HarnessError, Reply, payload_bytes
from gateway.devkit.mosquitto import Mosquitto
from gateway.sdk import (
    AdapterContext,
    ArgSpec,
    AttributeSpec,
    CapabilitySpec,
    CapabilitySupport,
    Command,
    CommandResult,
    CommandSpec,
    DeviceInfo,
    Unsubscribe,
    Update,
    apply_decoded,
    register_capability,
)
from gateway.testing import HarnessFactory

REPO = Path(__file__).resolve().parents[2]

# A plugin capability, as a maker's would be (dotted name, registered in start).
DIAL = CapabilitySpec("kit.dial", {"position": AttributeSpec("integer", None, 0, 10, settable=True)},
                      {"turn": CommandSpec({"to": ArgSpec("integer", None, 0, 10)}, expect={"position": "$to"})})


class LampConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    prefix: str = "lamp"
    heartbeat_s: float = 60.0


class _Decoded:
    def __init__(self) -> None:
        self.upserts: list[DeviceInfo] = []
        self.updates: list[Update] = []
        self.problems: list[str] = []
        self.notes: list[str] = []


class LampAdapter:
    """lamp/<id>/state {"on": bool, "dial": int} -> devices; commands on lamp/<id>/set; a heartbeat task."""

    needs_mqtt: ClassVar[bool] = True
    requires_sdk: ClassVar[str] = ">=1.1,<2"
    config_model: ClassVar[type[BaseModel]] = LampConfig

    def __init__(self) -> None:
        self.ctx: AdapterContext | None = None
        self.unsubscribe: Unsubscribe | None = None
        self.seen: set[str] = set()
        self.stopped = False

    async def start(self, ctx: AdapterContext) -> None:
        assert ctx.mqtt is not None
        register_capability(DIAL)
        self.ctx = ctx
        self.config = LampConfig.model_validate(ctx.config)
        self.unsubscribe = ctx.mqtt.subscribe(f"{self.config.prefix}/+/state", self.on_message)
        ctx.create_task(self.heartbeat(), "heartbeat")

    async def heartbeat(self) -> None:
        assert self.ctx is not None and self.ctx.mqtt is not None
        for beat in range(1, 1000):
            await self.ctx.clock.sleep(self.config.heartbeat_s)
            self.ctx.mqtt.publish(f"{self.config.prefix}/heartbeat", str(beat))

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        assert self.ctx is not None
        out = _Decoded()
        native = topic.split("/")[1]
        device_id = f"lamp:{native}"
        try:
            data = json.loads(payload)
        except ValueError:
            out.problems.append(f"{topic}: not JSON")
            apply_decoded(self.ctx, out)
            return
        if device_id not in self.seen:
            self.seen.add(device_id)
            out.upserts.append(DeviceInfo(device_id, f"Lamp {native}", "lamp", {"main": {
                "on_off": CapabilitySupport(frozenset({"on"}), frozenset({"on", "off"})),
                "kit.dial": CapabilitySupport(frozenset({"position"}), frozenset({"turn"}))}}))
        if "on" in data:
            out.updates.append(Update(device_id, "main", "on_off", "on", data["on"]))
        if "dial" in data:
            out.updates.append(Update(device_id, "main", "kit.dial", "position", data["dial"]))
        if "colour" in data:
            out.notes.append(f"{device_id}: colour is not read")
        apply_decoded(self.ctx, out)

    async def stop(self) -> None:
        if self.unsubscribe is not None:
            self.unsubscribe()
        self.stopped = True

    async def execute(self, command: Command) -> CommandResult:
        assert self.ctx is not None and self.ctx.mqtt is not None
        native = command.device_id.split(":", 1)[1]
        body: dict[str, Any] = {"on": command.command == "on"} if command.capability == "on_off" else {
            "dial": command.args["to"]}
        self.ctx.mqtt.publish(f"{self.config.prefix}/{native}/set", json.dumps(body))
        return CommandResult("sent")


def obedient(topic: str, payload: bytes) -> Iterable[Reply]:
    return [(topic.removesuffix("/set") + "/state", json.loads(payload))]


async def test_messages_in_values_out(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(LampAdapter)
    assert harness.name == "tests"  # without `name=`: the adapter class's top-level package (hearth_ prefix off)
    assert harness.subscriptions == ["lamp/+/state"]
    assert await harness.deliver("lamp/a1/state", {"on": True, "dial": 3, "colour": "red"}) == 1
    assert await harness.deliver("elsewhere/x", b"ignored") == 0
    assert harness.value("lamp:a1", "on_off", "on") is True
    assert harness.value("lamp:a1", "kit.dial", "position") == 3  # a plugin capability's value is accepted
    assert harness.device("lamp:a1").name == "Lamp a1"
    assert list(harness.devices) == ["lamp:a1"]
    assert harness.notes == ["lamp:a1: colour is not read"]
    assert harness.problems == []
    with pytest.raises(KeyError, match="devices: lamp:a1"):
        harness.device("lamp:zz")


async def test_bad_input_and_out_of_model_values_are_problems(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(LampAdapter, name="lamp")
    await harness.deliver("lamp/a1/state", b"{nope")
    await harness.deliver("lamp/a1/state", {"dial": 42})
    assert harness.problems[0] == "lamp/a1/state: not JSON"
    assert "42" in harness.problems[1]  # the hub's range check of the plugin capability
    assert harness.rejections[0].source == "lamp"


async def test_commands_are_validated_routed_and_confirmed(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(LampAdapter, name="lamp")
    await harness.deliver("lamp/a1/state", {"on": False, "dial": 0})
    unsubscribe = harness.respond("lamp/+/set", obedient)
    result = await harness.command("lamp:a1", "on_off", "on")
    assert (result.status, result.expected) == ("confirmed", {"on": True})
    turned = await harness.command("lamp:a1", "kit.dial", "turn", to=7)  # a plugin capability's command
    assert turned.status == "confirmed" and harness.value("lamp:a1", "kit.dial", "position") == 7
    assert [(m.topic, m.json()) for m in harness.published] == [("lamp/a1/set", {"on": True}),
                                                                  ("lamp/a1/set", {"dial": 7})]
    assert harness.clock.time() == harness.published[0].t  # no simulated time passed: confirmed at once
    unsubscribe()
    started = harness.clock.time()
    assert (await harness.command("lamp:a1", "on_off", "off")).status == "timeout"
    assert 5.0 <= harness.clock.time() - started <= 5.2
    rejected = await harness.command("lamp:a1", "kit.dial", "turn", to=11)
    assert (rejected.status, rejected.details) == ("rejected", {"field": "args.to", "reason": "out_of_range"})
    unknown = await harness.command("lamp:nope", "on_off", "on")
    assert unknown.status == "rejected" and unknown.details["field"] == "device_id"


async def test_simulated_time_runs_the_adapter_s_timers(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(LampAdapter, config={"heartbeat_s": 30})
    start = harness.clock.time()
    await harness.advance(29)
    assert harness.published == []
    await harness.advance(61)
    assert [m.text for m in harness.published] == ["1", "2", "3"]
    assert [m.t - start for m in harness.published] == [30, 60, 90]


async def test_config_is_validated_by_the_adapter_s_model(hearth_harness: HarnessFactory) -> None:
    with pytest.raises(ValidationError):
        await hearth_harness(LampAdapter, config={"prefx": "typo"})


async def test_a_plugin_made_for_another_sdk_is_refused() -> None:
    class Future(LampAdapter):
        requires_sdk = ">=2,<3"

    with pytest.raises(HarnessError, match="needs the Hearth plugin SDK >=2,<3"):
        await Harness(Future).start()


async def test_stop_is_clean_and_undoes_the_adapter() -> None:
    async with Harness(LampAdapter, name="lamp") as harness:
        adapter = harness.adapter
        assert harness.running
    assert adapter.stopped and not harness.running
    assert harness.leaked_tasks == [] and harness.stop_error is None
    assert harness.subscriptions == []
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("lamp:")]
    await harness.stop()  # twice is fine
    with pytest.raises(HarnessError, match="stopped"):
        await harness.deliver("lamp/a1/state", b"{}")


async def test_a_task_the_adapter_left_running_is_named_and_cancelled() -> None:
    class Leaky(LampAdapter):
        async def start(self, ctx: AdapterContext) -> None:
            await super().start(ctx)
            self.stray = asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="stray-poller")

    harness = await Harness(Leaky, name="leaky").start()
    await harness.stop()
    assert harness.leaked_tasks == ["stray-poller"]
    assert harness.adapter.stray.cancelled()


async def test_a_failing_task_of_the_adapter_is_raised_at_the_next_step() -> None:
    class Crashy(LampAdapter):
        async def heartbeat(self) -> None:
            assert self.ctx is not None
            await self.ctx.clock.sleep(1)
            raise RuntimeError("lost the thread")

    async with Harness(Crashy, name="crashy") as harness:
        with pytest.raises(HarnessError, match="lost the thread"):
            await harness.advance(1)
        assert len(harness.failures) == 1
        await harness.advance(1)  # raised once

    class CrashyAtStart(LampAdapter):
        async def heartbeat(self) -> None:
            raise RuntimeError("lost at once")

    harness = Harness(CrashyAtStart, name="crashy")
    with pytest.raises(HarnessError, match="lost at once"):
        await harness.start()
    assert not harness.running and harness.adapter.stopped


async def test_a_start_that_waits_for_the_clock_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import gateway.devkit.harness as harness_module

    monkeypatch.setattr(harness_module, "START_TIMEOUT_S", 0.2)

    class Sleepy(LampAdapter):
        async def start(self, ctx: AdapterContext) -> None:
            await ctx.clock.sleep(10)

    with pytest.raises(HarnessError, match="time stands still"):
        await Harness(Sleepy).start()


def test_payloads_as_a_test_writes_them() -> None:
    assert payload_bytes(b"\x00") == b"\x00"
    assert payload_bytes("é") == "é".encode()
    assert payload_bytes({"a": [1, True, None]}) == b'{"a":[1,true,null]}'
    assert payload_bytes(21.5) == b"21.5"


async def test_retained_messages_reach_later_subscriptions(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(LampAdapter, name="lamp")
    assert await harness.deliver("lamp2/b1/state", {"on": True}, retain=True) == 0
    await harness.stop()
    second = await hearth_harness(LampAdapter, name="lamp", config={"prefix": "lamp2"})
    assert second.devices == {}  # a harness has its own broker: nothing retained from another


@pytest.mark.mqtt
async def test_live_through_a_real_mosquitto(hearth_harness: HarnessFactory, hearth_mosquitto: Mosquitto) -> None:
    harness = await hearth_harness(LampAdapter, name="lamp", broker=hearth_mosquitto)
    assert harness.live
    assert await harness.deliver("lamp/a1/state", {"on": False, "dial": 1}) == 1
    assert harness.value("lamp:a1", "kit.dial", "position") == 1
    harness.respond("lamp/+/set", obedient)
    result = await harness.command("lamp:a1", "kit.dial", "turn", to=9)
    assert result.status == "confirmed", result.message
    assert harness.value("lamp:a1", "kit.dial", "position") == 9
    assert [m.topic for m in harness.published] == ["lamp/a1/set"]
    # Stopping the broker under it: the harness still stops cleanly.
    hearth_mosquitto.stop()
    await harness.stop()
    assert harness.leaked_tasks == []


def test_the_fixture_fails_a_test_whose_adapter_leaks(tmp_path: Path) -> None:
    (tmp_path / "test_leak.py").write_text(textwrap.dedent("""
        import asyncio
        from tests.devkit.test_harness import LampAdapter

        class Leaky(LampAdapter):
            async def start(self, ctx):
                await super().start(ctx)
                self.stray = asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="stray-poller")

        async def test_it(hearth_harness):
            await hearth_harness(Leaky, name="leaky")
    """))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto",
                           "test_leak.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "1 passed" in done.stdout and "1 error" in done.stdout, done.stdout + done.stderr
    assert "adapter leaky left tasks running after stop(): stray-poller" in done.stdout
