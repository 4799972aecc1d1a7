"""The adapter on a real hub, through the test kit's harness: in memory, and live through a real Mosquitto."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest
from gateway.devkit.harness import Reply
from gateway.devkit.mosquitto import Mosquitto
from gateway.testing import HarnessFactory, assert_device, assert_no_problems, assert_published, assert_value

from hearth_heatpump import HeatPumpAdapter

DEVICE = {"model": "HP-9", "name": "Heat pump", "fw": "5.2.1", "setpoint_step_dC": 5, "setpoint_min_dC": 50,
          "setpoint_max_dC": 300}


class Controller:
    """A simulated HP-9: sets what it is sent on .../cmd and reports its status, as the real one."""

    def __init__(self, serial: str) -> None:
        self.status_topic = f"heatpump/{serial}/status"
        self.status: dict[str, Any] = {"mode": "heating", "activity": "idle", "room_dC": 192, "setpoint_dC": 180}

    def __call__(self, topic: str, payload: bytes) -> Iterable[Reply]:
        self.status.update(json.loads(payload))
        return [(self.status_topic, dict(self.status))]


async def started(hearth_harness: HarnessFactory, **options: Any) -> Any:
    harness = await hearth_harness(HeatPumpAdapter, **options)
    await harness.deliver("heatpump/HP9-00213/device", DEVICE, retain=True)
    harness.respond("heatpump/HP9-00213/cmd", Controller("HP9-00213"))
    return harness


async def test_the_controller_and_its_temperatures(hearth_harness: HarnessFactory) -> None:
    harness = await started(hearth_harness)
    await harness.deliver("heatpump/HP9-00213/status", {"mode": "heating", "activity": "heat", "room_dC": 208,
                                                        "setpoint_dC": 210, "outdoor_dC": -45})
    assert_device(harness, "heatpump:hp9-00213", name="Heat pump", model="HP-9")
    assert_value(harness, "heatpump:hp9-00213", "thermostat", "current_celsius", 20.8)
    assert_value(harness, "heatpump:hp9-00213", "thermostat", "running", "heating")
    assert_value(harness, "heatpump:hp9-00213", "temperature", "celsius", -4.5, component="outdoor")
    assert_no_problems(harness)


async def test_a_setpoint_between_steps_is_confirmed_at_the_step(hearth_harness: HarnessFactory) -> None:
    harness = await started(hearth_harness)
    result = await harness.command("heatpump:hp9-00213", "thermostat", "set_target", celsius=21.3)
    assert (result.status, result.expected) == ("confirmed", {"target_celsius": 21.5}), result.message
    assert_published(harness, "heatpump/HP9-00213/cmd", {"setpoint_dC": 215})
    assert_value(harness, "heatpump:hp9-00213", "thermostat", "target_celsius", 21.5)


async def test_modes(hearth_harness: HarnessFactory) -> None:
    harness = await started(hearth_harness)
    assert (await harness.command("heatpump:hp9-00213", "thermostat", "set_mode", mode="off")).status == "confirmed"
    assert_value(harness, "heatpump:hp9-00213", "thermostat", "mode", "off")
    eco = await harness.command("heatpump:hp9-00213", "thermostat", "set_mode", mode="eco")
    assert eco.status == "rejected" and "not in eco" in eco.message


async def test_the_controller_s_range_is_the_command_s(hearth_harness: HarnessFactory) -> None:
    harness = await started(hearth_harness)
    result = await harness.command("heatpump:hp9-00213", "thermostat", "set_target", celsius=35)
    assert (result.status, result.details["field"]) == ("rejected", "args.celsius")


@pytest.mark.mqtt
async def test_live_through_a_real_broker(hearth_harness: HarnessFactory, hearth_mosquitto: Mosquitto) -> None:
    harness = await started(hearth_harness, broker=hearth_mosquitto)
    result = await harness.command("heatpump:hp9-00213", "thermostat", "set_target", celsius=21.3)
    assert result.status == "confirmed", result.message
    assert_value(harness, "heatpump:hp9-00213", "thermostat", "target_celsius", 21.5)
