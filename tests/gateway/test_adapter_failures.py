"""A plugin whose callback raises on every message (issue 20 finding 3): counted against that adapter in
/healthz with its last error, the message dropped, the other adapters untouched; live and in replay."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar

from gateway.clock import SimulatedClock
from gateway.hub import Hub
from gateway.replay import ReplayMqtt
from gateway.sdk import AdapterContext, Command, CommandResult, DeviceInfo, Update
from gateway.supervisor import Supervisor
from tests.broker import Mosquitto
from tests.gateway.test_mqtt import eventually, make_session


class Faulty:
    needs_mqtt: ClassVar[bool] = True

    async def start(self, ctx: AdapterContext) -> None:
        assert ctx.mqtt is not None
        ctx.mqtt.subscribe("faulty/#", self.on_message)

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        raise KeyError("temperature")  # a maker's codec that meets a payload it did not expect

    async def stop(self) -> None:
        pass

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("failed", "no commands")


class Healthy:
    needs_mqtt: ClassVar[bool] = True

    async def start(self, ctx: AdapterContext) -> None:
        assert ctx.mqtt is not None
        self.ctx = ctx
        ctx.upsert_device(DeviceInfo("healthy:t1", "Thermometer", "healthy", {}))
        ctx.mqtt.subscribe("healthy/t1", self.on_message)

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        self.ctx.push([Update("healthy:t1", "main", "temperature", "celsius", float(payload))])

    async def stop(self) -> None:
        pass

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("failed", "no commands")


async def _started(supervisor: Supervisor) -> None:
    for _ in range(50):
        await asyncio.sleep(0)
        if all(h.state == "running" for h in supervisor.health.values()):
            return
    raise AssertionError(f"adapters did not start: {supervisor.health}")


async def test_in_replay_a_failing_callback_is_counted_against_its_adapter() -> None:
    clock = SimulatedClock(0)
    hub = Hub(clock)
    mqtt = ReplayMqtt(clock)
    adapters: dict[str, type[Any]] = {"faulty": Faulty, "healthy": Healthy}
    async with Supervisor(hub, adapters, {}, mqtt=mqtt) as supervisor:
        await _started(supervisor)
        for index in range(300):
            mqtt.deliver(f"faulty/dev{index % 3}", b'{"temp": 1}', False)
        mqtt.deliver("healthy/t1", b"21.5", False)
        report = supervisor.health_report()
    assert report["faulty"]["message_failures"] == 300
    assert report["faulty"]["state"] == "running"  # a bad message is dropped, not a reason to restart
    assert "KeyError: 'temperature'" in report["faulty"]["last_error"]
    assert report["healthy"]["message_failures"] == 0
    assert hub.devices["healthy:t1"].value("main", "temperature", "celsius") == 21.5
    assert hub.counters["bad_input"] == 300


async def test_live_a_failing_callback_is_counted_against_its_adapter(mosquitto: Mosquitto) -> None:
    hub = Hub(SimulatedClock(0))
    async with make_session(mosquitto.port) as session:
        assert await session.wait_connected(5)
        async with Supervisor(hub, {"faulty": Faulty}, {}, mqtt=session) as supervisor:
            await _started(supervisor)
            marker = uuid.uuid4().hex[:6]
            for index in range(20):
                session.publish(f"faulty/{marker}/{index}", b"{}")
            await eventually(lambda: supervisor.health["faulty"].message_failures == 20, what="20 failures")
            assert supervisor.health_report()["faulty"]["last_error"].startswith(f"message on 'faulty/{marker}/")
