"""The elderly-monitoring profile over replayed days: a normal day raises nothing; each bad event raises
exactly the expected alert at the expected (simulated) time, and escalates through the contacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config import parse_config
from gateway.replay import ReplayResult, replay
from tests.scenes.house import Day, device_id, normal_day
from tests.scenes.house import config_text as house_config

ELDERLY_ONLY = '[[profiles]]\nuse = "elderly-monitoring"\n[profiles.params]\ncontacts = ["daughter", "neighbour"]\n'


async def run(tmp_path: Path, day: Day, profiles: str = ELDERLY_ONLY) -> ReplayResult:
    config = parse_config(house_config(profiles=profiles), "house.toml")
    return await replay(day.write(tmp_path / "day.jsonl"), config)


def alerts(result: ReplayResult) -> list[tuple[str, str, str]]:
    return [(a["t"][11:16], a["scene"].split(".", 1)[1], a["severity"]) for a in result.alerts]


def notified(result: ReplayResult, scene: str) -> list[tuple[str, str]]:
    return [(n["t"][11:16], n["to"]) for n in result.notifications if n["scene"] == f"elderly-monitoring.{scene}"]


async def test_a_normal_day_raises_no_alert(tmp_path: Path) -> None:
    result = await run(tmp_path, normal_day())
    assert result.errors == []
    assert result.alerts == []
    # ... but the daily wellbeing summary goes out at 21:00
    (summary,) = [n for n in result.notifications if n["scene"] == "elderly-monitoring.wellbeing-summary"]
    assert summary["t"].startswith("2026-03-10T21:00")
    assert "First activity: 07:10" in summary["message"]
    assert "Door openings at night: 0" in summary["message"]


async def test_inactive_morning_alerts_at_the_check_time_and_escalates(tmp_path: Path) -> None:
    day = Day()
    day.motion("22:00", "bedroom", day_offset=-1)
    day.motion("10:45", "kitchen")  # up very late
    result = await run(tmp_path, day.end("11:00"))
    assert alerts(result) == [("09:30", "morning-check", "critical"), ("10:00", "inactivity", "critical")]
    # nobody acknowledges: the daughter, reminded once after 10 minutes, then the neighbour, reminded
    # once, then a last "unanswered" notice to both; movement at 10:45 resolves it and both are told
    assert notified(result, "morning-check") == [
        ("09:30", "daughter"), ("09:40", "daughter"), ("09:50", "neighbour"), ("10:00", "neighbour"),
        ("10:10", "daughter"), ("10:10", "neighbour"), ("10:45", "daughter"), ("10:45", "neighbour")]
    messages = [n["message"] for n in result.notifications if n["scene"] == "elderly-monitoring.morning-check"]
    assert messages[1].startswith("[not acknowledged, reminder 1] ")
    assert messages[2].startswith("[not acknowledged by daughter] ")
    assert messages[4].startswith("Nobody has acknowledged this alert since 09:30 (4 notifications)")
    assert messages[6].startswith("activity again: kitchen/motion (kitchen) at 10:45")
    assert "since 06:00" in result.alerts[0]["message"]


async def test_long_bathroom_stay(tmp_path: Path) -> None:
    day = Day()
    day.motion("07:10", "bedroom").motion("08:00", "bathroom")  # ... and then nothing
    day.motion("09:30", "kitchen")
    result = await run(tmp_path, day.end("09:40"))
    assert alerts(result) == [("08:45", "bathroom-long-stay", "critical")]  # 45 min after the last movement
    assert "Still in the bathroom" in result.alerts[0]["message"]


async def test_a_short_bathroom_visit_then_elsewhere_is_fine(tmp_path: Path) -> None:
    day = Day()
    day.motion("07:10", "bedroom").motion("08:00", "bathroom").motion("08:10", "kitchen")
    result = await run(tmp_path, day.end("09:40"))
    assert alerts(result) == []


async def test_front_door_at_night_alerts_and_lights_the_hall(tmp_path: Path) -> None:
    day = normal_day()
    day.at("02:10", "hall/front door", {"contact": False}, day_offset=1)
    day.at("02:11", "hall/front door", {"contact": True}, day_offset=1)
    day.at("02:12", "hall/front door", {"contact": False}, day_offset=1)  # within the cooldown: no 2nd alert
    result = await run(tmp_path, day.end("02:30", day_offset=1))
    assert alerts(result) == [("02:10", "night-door", "warning")]
    hall_light = device_id("hall/light")
    assert [(a["device"], a["capability"], a["command"], a["args"]) for a in result.actions] == [
        (hall_light, "level", "set", {"percent": 20})]
    assert "hall/front door opened at 02:10" in result.alerts[0]["message"]


async def test_the_door_in_the_daytime_is_nothing(tmp_path: Path) -> None:
    day = normal_day()
    day.at("11:00", "hall/front door", {"contact": False})
    assert alerts(await run(tmp_path, day)) == []


async def test_a_cold_room_for_half_an_hour(tmp_path: Path) -> None:
    day = normal_day()
    day.at("13:00", "bedroom/climate", {"temperature": 15.2})
    day.at("13:10", "bedroom/climate", {"temperature": 14.8})  # still cold: the clock keeps running
    day.at("15:00", "bedroom/climate", {"temperature": 19.0})
    day.at("16:00", "living/climate", {"temperature": 15.5})
    day.at("16:20", "living/climate", {"temperature": 17.0})  # back up before 30 min: nothing
    result = await run(tmp_path, day)
    assert alerts(result) == [("13:30", "too-cold", "warning")]
    assert result.alerts[0]["message"].startswith("bedroom: 14.8 °C")


async def test_panic_button(tmp_path: Path) -> None:
    day = normal_day()
    day.at("15:02", "bedroom/panic", {"action": "single"})
    result = await run(tmp_path, day.end("15:20"))
    assert alerts(result) == [("15:02", "panic", "critical")]
    # a panic escalates every 3 minutes (each contact reminded once), and never resolves by itself
    assert notified(result, "panic") == [("15:02", "daughter"), ("15:05", "daughter"), ("15:08", "neighbour"),
                                         ("15:11", "neighbour"), ("15:14", "daughter"), ("15:14", "neighbour")]


async def test_one_pir_blip_pages_nobody(tmp_path: Path) -> None:
    day = normal_day()
    day.motion("03:00", "hall", day_offset=1)  # a blip at night in the hall: no door, no alert
    result = await run(tmp_path, day.end("06:00", day_offset=1))
    assert alerts(result) == []


def _scene_ids(result: ReplayResult) -> Any:
    return result.scenes
