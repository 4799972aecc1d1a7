"""The resident's routine moves through the rooms; the scripted bad morning has no movement until late,
and makes the elderly-monitoring profile raise its morning and inactivity alerts (checked through
``hearth replay`` on the simulator's own capture)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson

from gateway.config import parse_config
from gateway.replay import replay
from gateway.sim import HouseModel, demo_house, write_capture
from gateway.sim.resident import plan_day

TZ = ZoneInfo("Europe/Berlin")
DAY = date(2026, 3, 10)


def _local(t: float) -> datetime:
    return datetime.fromtimestamp(t, TZ)


def test_a_normal_day_moves_through_every_room_from_morning_to_night() -> None:
    for day_index in range(5):
        steps = plan_day(DAY, day_index, TZ, seed=4)
        moves = [s for s in steps if s.action in ("enter", "pulse")]
        assert {s.room for s in moves} >= {"bedroom", "bathroom", "kitchen", "living_room"}
        day_moves = [s for s in moves if _local(s.t).hour >= 6]
        assert 6 <= _local(day_moves[0].t).hour + _local(day_moves[0].t).minute / 60 <= 7.5  # up around seven
        assert _local(day_moves[-1].t).hour >= 21  # in bed after nine
        # While at home during the day, never 10 minutes without movement (the lights-off threshold) ...
        leaves = [s.t for s in steps if s.action == "leave_house"]
        returns = [s.t for s in steps if s.action == "come_home"]
        outings = list(zip(leaves, returns, strict=True))
        for before, after in itertools.pairwise(day_moves):
            gap = after.t - before.t
            if not any(before.t <= out <= before.t + 600 and after.t <= back + 600 for out, back in outings):
                assert gap <= 10 * 60 or before.room == "bedroom", (day_index, _local(before.t), gap)
    assert plan_day(DAY, 2, TZ, seed=4) == plan_day(DAY, 2, TZ, seed=4)  # seeded
    assert plan_day(DAY, 2, TZ, seed=4) != plan_day(DAY, 2, TZ, seed=5)


def test_the_bad_morning_has_no_movement_until_late() -> None:
    steps = plan_day(DAY, 1, TZ, seed=4, bad_morning=True)
    moves = [s for s in steps if s.action in ("enter", "pulse", "leave_house", "come_home")]
    first = _local(moves[0].t)
    assert first.hour >= 11, first
    assert "bad morning" in moves[0].note


def test_the_model_sees_the_routine_and_the_bad_morning_on_its_sensors() -> None:
    start = datetime(2026, 3, 10, 5, 0, tzinfo=TZ).timestamp()
    model = HouseModel(demo_house(), start=start, tz=TZ, seed=2, bad_morning_day=1)
    messages = model.start()
    for hour in range(1, 49):
        messages += model.advance_to(start + hour * 3600)
    day1 = [(t, room) for t, room in model.motion_log if _local(t).date() == DAY]
    assert {room for _, room in day1} >= {"bedroom", "bathroom", "kitchen", "living_room", "hall"}
    bad_day = [(t, room) for t, room in model.motion_log if _local(t).date() == date(2026, 3, 11)]
    assert bad_day and _local(bad_day[0][0]).hour >= 11
    # the motion sensor says so too: an occupancy=true message on day 1, none on day 2 before 11:00
    occupied = [_local(m.t) for m in messages if m.topic.endswith("motion") and orjson.loads(m.payload)["occupancy"]]
    assert any(t.date() == DAY and 6 <= t.hour < 9 for t in occupied)
    assert not any(t.date() == date(2026, 3, 11) and t.hour < 11 for t in occupied)


async def test_replaying_the_bad_morning_raises_the_morning_and_inactivity_alerts(tmp_path: Path) -> None:
    house = demo_house()
    start = datetime(2026, 3, 10, 5, 0, tzinfo=UTC).timestamp()
    model = HouseModel(house, start=start, tz=UTC, seed=1, bad_morning_day=0)
    capture = tmp_path / "sim.jsonl"
    assert write_capture(model, capture, duration_s=7 * 3600) > 100
    areas = "\n".join(f'"{k}" = "{v}"' for k, v in house.areas().items())
    tags = "\n".join(f'"{k}" = {orjson.dumps(v).decode()}' for k, v in house.tags().items())
    config = parse_config(
        '[location]\ntimezone = "UTC"\n\n[notify.family]\nkind = "log"\n\n'
        '[[profiles]]\nuse = "elderly-monitoring"\n[profiles.params]\ncontacts = ["family"]\n\n'
        '[[profiles]]\nuse = "energy-saving"\n\n'
        f"[areas]\n{areas}\n\n[tags]\n{tags}\n")
    result = (await replay(capture, config, None)).as_dict()
    assert len(result["devices"]) == 22
    assert result["errors"] == []
    scenes = [a["scene"] for a in result["alerts"]]
    assert scenes == ["elderly-monitoring.morning-check", "elderly-monitoring.inactivity"], result["alerts"]
    assert result["alerts"][0]["t"] == "2026-03-10T09:30:00.000Z"
