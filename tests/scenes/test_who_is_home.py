"""Issue 16: who is home. A resident out shopping is not a resident who has fallen: the house's occupancy
(home / away) is worked out from the entrance door and movement inside; elderly-monitoring raises no
inactivity alert during an outing, "not back home" when it lasts too long or runs into the night, and
an alert about a situation resolves itself when the situation ends."""

from __future__ import annotations

from pathlib import Path

from tests.scenes.house import Day
from tests.scenes.test_elderly_monitoring import alerts, notified, run


def morning(day: Day, until: str = "09:30") -> Day:
    for clock, room in [("07:10", "bedroom"), ("07:15", "bathroom"), ("07:40", "kitchen"), ("08:30", "living")]:
        if clock < until:
            day.motion(clock, room)
    return day


def go_out(day: Day, clock: str, day_offset: int = 0) -> Day:
    """Through the hall, the entrance door opens and closes behind her (Z2M: contact false = open)."""
    hh, mm = clock.split(":")
    day.motion(clock, "hall", day_offset)
    day.at(f"{hh}:{mm}:30", "hall/front door", {"contact": False}, day_offset)
    return day.at(f"{hh}:{mm}:50", "hall/front door", {"contact": True}, day_offset)


def come_back(day: Day, clock: str, day_offset: int = 0) -> Day:
    hh, mm = clock.split(":")
    day.at(f"{hh}:{mm}:00", "hall/front door", {"contact": False}, day_offset)
    day.at(f"{hh}:{mm}:20", "hall/front door", {"contact": True}, day_offset)
    return day.motion(f"{hh}:{int(mm) + 1:02d}", "hall", day_offset)


async def test_an_outing_raises_no_inactivity_alert(tmp_path: Path) -> None:
    day = morning(Day())
    go_out(day, "10:00")  # shopping for three and a half hours: more than the 3 h of inactivity
    come_back(day, "13:30")
    day.motion("14:00", "kitchen").motion("16:00", "living").motion("18:00", "kitchen").motion("20:30", "bedroom")
    result = await run(tmp_path, day.end("21:30"))
    assert alerts(result) == []
    (summary,) = [n for n in result.notifications if n["scene"] == "elderly-monitoring.wellbeing-summary"]
    assert "Outings: 1" in summary["message"]


async def test_an_outing_that_lasts_too_long_raises_not_back_home_which_resolves_on_return(tmp_path: Path) -> None:
    day = morning(Day())
    go_out(day, "09:00")  # away from 09:10:50 (10 min after the door closed, nothing inside)
    come_back(day, "14:00")
    result = await run(tmp_path, day.end("15:00"))
    assert alerts(result) == [("13:10", "not-back-home", "critical")]  # 4 h out
    assert result.alerts[0]["message"] == "Out since 09:10 and not back (at 13:10)."
    # the daughter, reminded once, then the neighbour; she is back at 14:00 and both are told
    assert notified(result, "not-back-home") == [
        ("13:10", "daughter"), ("13:20", "daughter"), ("13:30", "neighbour"), ("13:40", "neighbour"),
        ("13:50", "daughter"), ("13:50", "neighbour"), ("14:01", "daughter"), ("14:01", "neighbour")]
    last = [n for n in result.notifications if n["scene"] == "elderly-monitoring.not-back-home"][-1]
    assert last["title"] == "Resolved: Not back home" and last["message"].startswith("house home: movement")


async def test_an_outing_that_runs_into_the_night(tmp_path: Path) -> None:
    day = morning(Day())
    for clock in ("10:30", "12:30", "14:30", "16:30", "18:30"):
        day.motion(clock, "kitchen")
    go_out(day, "19:00")  # a visit; not back by 22:00
    come_back(day, "23:30")
    result = await run(tmp_path, day.end("23:59"))
    assert alerts(result) == [("22:00", "not-back-home", "critical")]
    assert notified(result, "not-back-home")[-2:] == [("23:31", "daughter"), ("23:31", "neighbour")]


async def test_an_inactivity_alert_resolves_itself_when_activity_resumes(tmp_path: Path) -> None:
    day = morning(Day())  # last movement 08:30, at home (no door)
    day.motion("11:45", "kitchen")  # she was asleep in her armchair
    result = await run(tmp_path, day.end("12:30"))
    assert alerts(result) == [("11:30", "inactivity", "critical")]
    assert notified(result, "inactivity") == [("11:30", "daughter"), ("11:40", "daughter"),
                                              ("11:45", "daughter")]  # the last: it resolved
    resolved = [n for n in result.notifications if n["scene"] == "elderly-monitoring.inactivity"][-1]
    assert resolved["title"] == "Resolved: No movement"
    assert resolved["message"] == "activity again: kitchen/motion (kitchen) at 11:45 (11:45)."


async def test_the_summary_first_activity_is_the_mornings_not_the_nights(tmp_path: Path) -> None:
    day = Day()
    day.motion("03:30", "bathroom")  # a trip to the bathroom at night is not getting up
    morning(day)
    day.motion("12:00", "kitchen").motion("15:00", "kitchen").motion("18:00", "kitchen")
    result = await run(tmp_path, day.end("21:30"))
    (summary,) = [n for n in result.notifications if n["scene"] == "elderly-monitoring.wellbeing-summary"]
    assert "First activity: 07:10" in summary["message"]
    assert "Movement at night: 1 (03:30)" in summary["message"]


ENERGY = '[[profiles]]\nuse = "energy-saving"\n'


async def test_everybody_left_switches_off_a_light_touched_by_hand_and_says_what_it_did(tmp_path: Path) -> None:
    from tests.scenes.test_energy_saving import commands

    day = morning(Day())
    day.at("09:55", "living/light", {"state": "ON"})  # switched on by hand: a manual override till 10:25
    day.at("09:56", "kitchen/light", {"state": "ON"})
    go_out(day, "10:00")
    result = await run(tmp_path, day.end("10:30"), profiles=ENERGY)
    # away at 10:10:50: both lights off though the override runs till 10:25
    assert [c for c in commands(result) if c[0] >= "10:10"] == [
        ("10:10:50", "living/light", "on_off", "off", {}), ("10:10:50", "kitchen/light", "on_off", "off", {})]
    (note,) = [n for n in result.notifications if n["scene"] == "energy-saving.everybody-left"]
    assert note["message"] == "Lights: living/light: off; kitchen/light: off."


async def test_a_plug_switched_by_hand_is_not_held_by_the_manual_override(tmp_path: Path) -> None:
    from tests.scenes.test_energy_saving import commands

    day = Day()
    day.at("21:00", "living/tv", {"state": "ON", "power": 1.2})
    day.at("22:50", "living/tv", {"state": "OFF", "power": 0.0})  # off and on again at the plug
    day.at("22:51", "living/tv", {"state": "ON", "power": 1.3})
    result = await run(tmp_path, day.end("23:10"), profiles=ENERGY)
    # the override covers lights ([scenes] manual_override_covers): the standby sweep still takes it
    assert commands(result) == [("23:00:00", "living/tv", "on_off", "off", {})]

