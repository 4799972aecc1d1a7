"""The energy-saving profile over a replayed day: lights off in empty rooms (after a manual override
runs out), standby plugs off at night except those tagged always_on, heating set back while a window
is open and restored when it closes, and the daily energy summary."""

from __future__ import annotations

from pathlib import Path

from gateway.config import parse_config
from gateway.replay import ReplayResult, replay
from tests.scenes.house import Day, device_id
from tests.scenes.house import config_text as house_config

ENERGY_ONLY = '[[profiles]]\nuse = "energy-saving"\n[profiles.params]\nsummary_to = ["daughter"]\n'


async def run(tmp_path: Path, day: Day) -> ReplayResult:
    config = parse_config(house_config(profiles=ENERGY_ONLY), "house.toml")
    return await replay(day.write(tmp_path / "day.jsonl"), config)


def commands(result: ReplayResult) -> list[tuple[str, str, str, str, dict]]:
    names = {device_id(n): n for n in ("living/light", "hall/light", "kitchen/light", "living/tv",
                                        "kitchen/fridge", "living/radiator")}
    return [(a["t"][11:19], names.get(a["device"], a["device"]), a["capability"], a["command"], a["args"])
            for a in result.actions]


async def test_lights_go_off_in_an_empty_room_but_respect_a_manual_switch(tmp_path: Path) -> None:
    day = Day()
    day.motion("18:00", "kitchen")
    day.at("18:00:20", "kitchen/light", {"state": "ON"})  # switched on by hand at the wall
    day.motion("19:00", "living")
    day.at("19:00:30", "living/light", {"state": "ON"})
    day.motion("19:05", "living")  # still there; then leaves
    result = await run(tmp_path, day.end("20:00"))
    # The kitchen was empty from 18:01:30; the manual switch holds the light on until 18:30:20, and then
    # it goes off because the room is still empty. Likewise in the living room (last motion 19:05).
    assert commands(result) == [
        ("18:30:21", "kitchen/light", "on_off", "off", {}),
        ("19:30:31", "living/light", "on_off", "off", {}),
    ]
    traces = result.actions  # every command carries the scene that sent it
    assert {a["scene"] for a in traces} == {"energy-saving.lights-off-empty-room"}


async def test_a_room_in_use_keeps_its_light(tmp_path: Path) -> None:
    day = Day()
    day.motion("19:00", "living")
    for minute in range(5, 60, 5):  # someone moving about all evening
        day.motion(f"19:{minute:02d}", "living")
    result = await run(tmp_path, day.end("20:00"))
    assert commands(result) == []


async def test_standby_plugs_go_off_at_night_but_not_always_on_ones(tmp_path: Path) -> None:
    day = Day()
    day.at("21:00", "living/tv", {"state": "ON", "power": 1.2})  # TV in standby
    day.at("21:00", "kitchen/fridge", {"state": "ON", "power": 0.5})  # fridge between cycles: tagged always_on
    day.at("23:50", "living/tv", {"state": "ON", "power": 1.1})
    result = await run(tmp_path, day.end("23:59"))
    assert commands(result) == [("23:00:00", "living/tv", "on_off", "off", {})]


async def test_a_plug_that_goes_to_standby_during_the_night(tmp_path: Path) -> None:
    day = Day()
    day.at("23:30", "living/tv", {"state": "ON", "power": 2.0})
    result = await run(tmp_path, day.end("01:00", day_offset=1))
    assert commands(result) == [("00:00:00", "living/tv", "on_off", "off", {})]


async def test_open_window_sets_the_heating_back_and_closing_it_restores(tmp_path: Path) -> None:
    day = Day()
    day.at("10:00", "living/window", {"contact": False})  # open
    day.at("10:20", "living/window", {"contact": True})  # closed
    day.at("11:00", "living/window", {"contact": False})
    day.at("11:02", "living/window", {"contact": True})  # only two minutes: no setback
    result = await run(tmp_path, day.end("12:00"))
    assert commands(result) == [
        ("10:03:00", "living/radiator", "thermostat", "set_target", {"celsius": 12}),
        ("10:20:00", "living/radiator", "thermostat", "set_target", {"celsius": 21.0}),
    ]


async def test_daily_energy_summary(tmp_path: Path) -> None:
    day = Day()
    day.at("12:00", "living/tv", {"energy": 100.5, "power": 80.0})
    day.at("22:00", "kitchen/fridge", {"energy": 50.8, "power": 60.0})
    result = await run(tmp_path, day.end("23:59"))
    (summary,) = [n for n in result.notifications if n["scene"] == "energy-saving.energy-summary"]
    assert summary["to"] == "daughter"
    assert summary["t"].startswith("2026-03-10T23:55")
    assert summary["message"].splitlines() == [
        "Energy today: 1.30 kWh, about 0.39 EUR", "- kitchen/fridge: 0.80 kWh", "- living/tv: 0.50 kWh"]
