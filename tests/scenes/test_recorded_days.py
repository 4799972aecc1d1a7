"""Issue 16's acceptance on recorded multi-day captures (tests/fixtures/scenes, made with the simulator:
see its README): both shipped profiles over days with outings, a wobbling standby plug and a return
late at night, replayed as an installer would (`hearth replay --config house.toml`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.replay import ReplayResult, replay

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scenes"
TV = "zigbee2mqtt:0x00124b0000000008"


async def run(name: str) -> ReplayResult:
    return await replay(FIXTURES / name, load_config(FIXTURES / "house.toml"))


def by_scene(result: ReplayResult, scene: str) -> list[dict[str, Any]]:
    return [n for n in result.notifications if n["scene"] == f"elderly-monitoring.{scene}"]


async def test_two_days_with_outings_raise_no_alert_and_the_standby_tv_goes_off_at_night_start() -> None:
    result = await run("outings.jsonl")
    assert result.errors == []
    # a 90-minute shopping trip and a 3.5-hour visit: nobody is paged about inactivity
    assert result.alerts == []
    # the TV in standby (0.6-1.2 W, a different figure at every report) is switched off at 23:00 local
    sweep = [a for a in result.actions if a["scene"] == "energy-saving.standby-sweep" and a["device"] == TV]
    assert [a["t"] for a in sweep][:1] == ["2026-03-10T22:00:00.000Z"]
    summaries = by_scene(result, "wellbeing-summary")
    assert [("Outings: 1" in s["message"]) for s in summaries] == [True, True]
    # traces: a run that acted, and runs whose conditions were not met, with what they saw
    traces = result.as_dict()["traces"]
    acted = next(t for t in traces if t["scene"] == "energy-saving.standby-sweep")
    assert acted["actions"][0]["targets"][0] == {"device": TV, "component": "main", "status": "confirmed"}
    assert acted["names"][TV] == "TV"
    assert any(t["result"] == "conditions not met" and t["conditions"] for t in traces)


async def test_an_outing_into_the_night_raises_not_back_home_which_resolves_on_return() -> None:
    result = await run("outing-into-night.jsonl")
    assert [(a["t"], a["scene"]) for a in result.alerts] == [
        ("2026-03-12T21:00:00.000Z", "elderly-monitoring.not-back-home")]  # 22:00 local: back_by
    told = by_scene(result, "not-back-home")
    assert told[0]["message"] == "Out since 18:40 and not back (at 22:00)."  # left 18:30, away 10 min later
    assert told[-1]["title"] == "Resolved: Not back home"
    assert told[-1]["t"] >= "2026-03-12T22:30"  # she is back at 23:30 local
    # no "door opened at night" alert for her own return, no inactivity alert during the visit
    assert {a["scene"] for a in result.alerts} == {"elderly-monitoring.not-back-home"}
