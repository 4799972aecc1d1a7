"""Durations are durations: "no activity for 2 h", "away for 4 h" and the entrance door's away check are
measured on the monotonic clock, so a wall clock stepped forwards (a Raspberry Pi booting on the time it shut
down, then NTP) raises no inactivity alert at once, and one stepped back does not make it hours late."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from tests.campaigns.clock import SteppedClock
from tests.scenes import test_engine
from tests.scenes.test_engine import DOOR, HALL_MOTION, NOTE, House, profile, scene

INACTIVE = scene("inactive", '{ kind = "absence", selector = { capability = "occupancy" }, for = "2h" }',
                 NOTE("quiet for {duration}"))
LONG_AWAY = scene("long-away", '{ kind = "occupancy", to = "away", for = "4h" }', NOTE("out 4 h"))


async def _house(text: str) -> Any:
    with mock.patch.object(test_engine, "SimulatedClock", SteppedClock):
        house = House(text)
    await house.start()
    return house


async def _run(house: Any, seconds: float) -> None:
    """Let ``seconds`` of real (monotonic) time pass, timers firing on the way."""
    clock = house.clock
    target = clock.monotonic() + seconds
    for _ in range(10_000):
        due = clock.next_due()
        if due is None or due > target:
            break
        clock.advance_to(due)
        await house.settle()
    clock.advance_to(target)
    await house.settle()


@pytest.mark.parametrize("step_h", [3.0, -3.0])
async def test_no_activity_for_2h_is_2h_whatever_the_wall_clock_does(step_h: float) -> None:
    house = await _house(profile(INACTIVE))
    await house.set(HALL_MOTION, "occupancy", "occupied", True)
    await _run(house, 600)
    house.clock.step(step_h * 3600)  # NTP sets the clock 3 h ahead (or back) ten minutes after the movement
    await house.settle()
    await _run(house, 6600 - 60)
    assert house.sent() == []  # 1 h 59 min of real quiet: not yet (a forward step fired it at once)
    await _run(house, 120)
    assert [m for _, _, m in house.sent()] == ["quiet for 2 h"]  # then once, not 3 h late after a step back


@pytest.mark.parametrize("step_h", [2.0, -2.0])
async def test_away_for_4h_and_the_away_check_are_durations(step_h: float) -> None:
    house = await _house(profile(LONG_AWAY))
    house.hub.devices[DOOR].tags = ["entrance"]
    await house.set(HALL_MOTION, "occupancy", "occupied", True)
    await house.set(DOOR, "contact", "open", True)
    await house.set(DOOR, "contact", "open", False)  # she leaves
    house.clock.step(step_h * 3600)
    await house.settle()
    away_after_s = house.engine.settings.away_after_s
    await _run(house, away_after_s - 30)
    assert house.engine.house()["occupancy"] == "home"  # the away check waits its real ten minutes
    await _run(house, 60)
    assert house.engine.house()["occupancy"] == "away"
    await _run(house, 4 * 3600 - 60)
    assert house.sent() == []
    await _run(house, 60)
    assert [m for _, _, m in house.sent()] == ["out 4 h"]


CLOSED_A_WHILE = scene(
    "if-closed", '{ kind = "button", selector = { tag = "panic" } }', NOTE("closed a while"),
    conditions='{ kind = "state", selector = { capability = "contact" }, attribute = "contact.open", '
               'equals = false, for = "20m" }')


@pytest.mark.parametrize("step_h", [3.0, -3.0])
async def test_a_condition_held_for_20_min_is_20_real_minutes(step_h: float) -> None:
    house = await _house(profile(CLOSED_A_WHILE))
    await house.set(DOOR, "contact", "open", True)
    await house.set(DOOR, "contact", "open", False)
    await _run(house, 300)
    house.clock.step(step_h * 3600)
    await house.settle()
    await house.press()
    assert house.sent() == []  # closed for 5 real minutes (a step ahead made it 3 h 5 min)
    await _run(house, 16 * 60)
    await house.press()
    assert [m for _, _, m in house.sent()] == ["closed a while"]  # 21 min (a step back made it -2 h 39 min)
