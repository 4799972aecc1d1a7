"""The adapter on a real hub, through the test kit's harness: in memory, and live through a real Mosquitto."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import pytest
from gateway.devkit.harness import Reply
from gateway.devkit.mosquitto import Mosquitto
from gateway.testing import HarnessFactory, assert_device, assert_no_problems, assert_published, assert_value
from pydantic import ValidationError

from hearth_acme import AcmeAdapter

INFO = {"model": "AP-300", "name": "Bedroom purifier", "fw": "2.1.0", "fan_speeds": 3}


class Purifier:
    """A simulated AP-300: carries out what it is sent on .../set and reports its new state, as the real one."""

    def __init__(self, serial: str, base_topic: str = "acme") -> None:
        self.state_topic = f"{base_topic}/{serial}/state"
        self.state: dict[str, Any] = {"power": "on", "speed": 1, "pm25": 14.5, "filter_life": 82}

    def __call__(self, topic: str, payload: bytes) -> Iterable[Reply]:
        change = json.loads(payload)
        if change.pop("filter_reset", False):
            self.state["filter_life"] = 100
        self.state.update(change)
        return [(self.state_topic, dict(self.state))]


async def test_the_purifier_its_own_capability_and_its_fan(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(AcmeAdapter)
    assert sorted(harness.subscriptions) == ["acme/+/availability", "acme/+/info", "acme/+/state"]
    await harness.deliver("acme/AP3K-0042/info", INFO, retain=True)
    await harness.deliver("acme/AP3K-0042/state", {"power": "on", "speed": 1, "pm25": 14.5, "filter_life": 82})
    assert_device(harness, "acme:ap3k-0042", name="Bedroom purifier", model="AP-300", manufacturer="Acme")
    assert_value(harness, "acme:ap3k-0042", "acme.filter", "life_percent", 82)  # the plugin's own capability
    assert_value(harness, "acme:ap3k-0042", "fan", "speed_percent", 33)
    assert_value(harness, "acme:ap3k-0042", "air_quality", "pm25_ugm3", 14.5)
    assert_no_problems(harness)


async def test_set_speed_50_on_three_speeds_is_confirmed_at_67(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(AcmeAdapter)
    await harness.deliver("acme/AP3K-0042/info", INFO, retain=True)
    harness.respond("acme/AP3K-0042/set", Purifier("AP3K-0042"))
    result = await harness.command("acme:ap3k-0042", "fan", "set_speed", percent=50)
    assert (result.status, result.expected) == ("confirmed", {"speed_percent": 67}), result.message
    assert_published(harness, "acme/AP3K-0042/set", {"power": "on", "speed": 2})
    assert harness.value("acme:ap3k-0042", "fan", "speed_percent") == 67
    reset = await harness.command("acme:ap3k-0042", "acme.filter", "reset")
    assert reset.status == "confirmed", reset.message
    assert_value(harness, "acme:ap3k-0042", "acme.filter", "life_percent", 100)


async def test_a_purifier_that_does_not_answer_times_out_in_simulated_time(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(AcmeAdapter)
    await harness.deliver("acme/AP3K-0042/info", INFO, retain=True)
    started = harness.clock.time()
    result = await harness.command("acme:ap3k-0042", "fan", "set_speed", percent=100)
    assert result.status == "timeout"
    assert 5.0 <= harness.clock.time() - started < 6.0


async def test_commands_that_do_not_fit_are_rejected(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(AcmeAdapter)
    await harness.deliver("acme/AP3K-0042/info", INFO, retain=True)
    result = await harness.command("acme:ap3k-0042", "fan", "set_speed", percent=150)
    assert (result.status, result.details["field"]) == ("rejected", "args.percent")


async def test_bad_input_is_reported_not_raised(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(AcmeAdapter)
    await harness.deliver("acme/AP3K-0042/info", INFO, retain=True)
    await harness.deliver("acme/AP3K-0042/state", b"\xff not json")
    assert len(harness.problems) == 1 and "not JSON" in harness.problems[0]


async def test_the_config_is_checked(hearth_harness: HarnessFactory) -> None:
    with pytest.raises(ValidationError, match="wildcards"):
        await hearth_harness(AcmeAdapter, config={"base_topic": "acme/#"})
    harness = await hearth_harness(AcmeAdapter, config={"base_topic": "home/acme"})
    assert "home/acme/+/state" in harness.subscriptions


@pytest.mark.mqtt
async def test_live_through_a_real_broker(hearth_harness: HarnessFactory, hearth_mosquitto: Mosquitto) -> None:
    harness = await hearth_harness(AcmeAdapter, broker=hearth_mosquitto)
    await harness.deliver("acme/AP3K-0042/info", INFO, retain=True)
    harness.respond("acme/AP3K-0042/set", Purifier("AP3K-0042"))
    result = await harness.command("acme:ap3k-0042", "fan", "set_speed", percent=50)
    assert result.status == "confirmed", result.message
    assert_value(harness, "acme:ap3k-0042", "fan", "speed_percent", 67)
    assert_value(harness, "acme:ap3k-0042", "acme.filter", "life_percent", 82)
