"""The resident goes out: shopping most days, a long visit one day a week. Outings are in the plan
(``leave_house``/``come_home`` steps, :func:`outings_of`) and in the traffic (hall motion, the front door
opens and closes, then nothing moves inside until the door opens again and the hall sees her); the
scene fixtures made from the simulator contain the outings their README lists."""

from __future__ import annotations

import importlib.util
import itertools
import os
import subprocess
import sys
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import orjson
import pytest

from gateway.sim import HouseModel, Message, demo_house
from gateway.sim.resident import OUT, Outing, outings_of, plan_day, visit_weekday

TZ = ZoneInfo("Europe/Berlin")
MONDAY = date(2026, 3, 9)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scenes"
DOOR = "zigbee2mqtt/Front door"


def _local(t: float) -> datetime:
    return datetime.fromtimestamp(t, TZ)


def _hours(t: float) -> float:
    local = _local(t)
    return local.hour + local.minute / 60


def test_shopping_most_days_and_a_long_visit_once_a_week() -> None:
    for seed in (1, 2, 3):
        visits, shopping_days, slots = 0, 0, set()
        for day_index in range(28):
            day = MONDAY + timedelta(days=day_index)
            outings = outings_of(plan_day(day, day_index, TZ, seed=seed))
            assert len(outings) <= 1, outings
            for outing in outings:
                if outing.key == "visit":
                    visits += 1
                    assert day.weekday() == visit_weekday(seed)
                    assert 240 <= outing.minutes <= 300
                    assert 13 <= _hours(outing.leaves) <= 14.5 and 17 <= _hours(outing.returns) <= 19.5
                else:
                    assert outing.key == "shopping"
                    shopping_days += 1
                    assert 60 <= outing.minutes <= 120
                    leaves = _hours(outing.leaves)
                    assert 9.9 <= leaves <= 11.1 or 14.7 <= leaves <= 16.3, _local(outing.leaves)
                    slots.add("morning" if leaves < 12 else "afternoon")
        assert visits == 4  # one a week
        assert shopping_days >= 14  # most of the other 24 days
        assert slots == {"morning", "afternoon"}  # varies with the seed's days
    assert outings_of(plan_day(MONDAY, 0, TZ, seed=1)) == outings_of(plan_day(MONDAY, 0, TZ, seed=1))


def test_nothing_happens_at_home_while_she_is_out() -> None:
    for day_index in range(14):
        steps = plan_day(MONDAY + timedelta(days=day_index), day_index, TZ, seed=5)
        for outing in outings_of(steps):
            inside = [s for s in steps if outing.leaves < s.t < outing.returns]
            assert inside == [], inside
            leave = next(s for s in steps if s.t == outing.leaves)
            assert leave.action == "leave_house" and leave.room == OUT and leave.activity == outing.key
            after = [s for s in steps if s.t > outing.returns and s.action == "enter"]
            assert after and after[0].t - outing.returns < 120  # back in a room right away


def test_the_bad_morning_has_no_outing_before_the_morning_check() -> None:
    for seed in range(20):
        steps = plan_day(MONDAY, 0, TZ, seed=seed, bad_morning=True)
        assert _hours(steps[0].t) >= 11, (seed, steps[0])
        assert all(_hours(o.leaves) > 9.5 for o in outings_of(steps))


def test_a_scripted_outing_is_kept_to_the_minute_and_the_day_shifts_around_it() -> None:
    shopping = Outing.starting(MONDAY, "11:45", 100, TZ, key="shopping", note="goes out shopping")
    steps = plan_day(MONDAY, 0, TZ, seed=1, outings=[shopping])
    assert outings_of(steps) == [Outing("shopping", shopping.leaves, shopping.returns, "goes out shopping")]
    lunch = next(s for s in steps if s.activity == "lunch" and s.action == "enter")
    assert lunch.t > shopping.returns  # lunch waits for her
    assert outings_of(plan_day(MONDAY, 0, TZ, seed=1, outings=[])) == []  # a day at home

    late = Outing.starting(MONDAY, "18:00", 330, TZ, key="visit")  # back at 23:30
    steps = plan_day(MONDAY, 0, TZ, seed=1, outings=[late])
    after = [s.activity for s in steps if s.t > late.returns and s.action == "enter"]
    assert after == ["back", "bedtime", "bed"]  # no dinner, no TV at midnight
    assert steps[-1].action == "sleep"
    with pytest.raises(ValueError, match="overlap"):
        plan_day(MONDAY, 0, TZ, outings=[shopping, Outing.starting(MONDAY, "12:00", 30, TZ)])


def _traffic_outings(messages: Iterable[tuple[float, str, dict[str, object]]]) -> list[tuple[float, float]]:
    """(door closed behind her, door opened again) for each stretch with no movement inside in between.
    The simulated front door only opens when she leaves or comes home."""
    found: list[tuple[float, float]] = []
    closed_at: float | None = None
    moved = False
    for t, topic, payload in messages:
        if topic == DOOR and "contact" in payload:
            if payload["contact"] is True:  # Zigbee2MQTT: contact true = closed
                closed_at, moved = t, False
            elif closed_at is not None:
                if not moved:
                    found.append((closed_at, t))
                closed_at = None
        elif topic.endswith("motion") and payload.get("occupancy") is True:
            moved = True
    return found


def _decoded(messages: list[Message]) -> list[tuple[float, str, dict[str, object]]]:
    return [(m.t, m.topic, orjson.loads(m.payload)) for m in messages if not m.topic.endswith("/availability")]


def test_the_traffic_shows_leaving_a_quiet_house_and_coming_home() -> None:
    start = datetime(2026, 3, 9, 5, 0, tzinfo=TZ).timestamp()
    model = HouseModel(demo_house(), start=start, tz=TZ, seed=1, bad_morning_day=None)
    messages = model.start()
    for hour in range(1, 7 * 24 + 1):
        messages += model.advance_to(start + hour * 3600)
    planned = [o for o in model.outings if o.returns < start + 7 * 24 * 3600]
    assert len(planned) >= 5 and sum(o.key == "visit" for o in planned) == 1
    seen = _traffic_outings(_decoded(messages))
    assert len(seen) == len(planned)
    for outing, (closed, opened) in zip(planned, seen, strict=True):
        assert 0 < closed - outing.leaves <= 60 and opened == pytest.approx(outing.returns)
        around = [m for m in _decoded(messages) if outing.leaves - 1 <= m[0] <= outing.returns + 60]
        hall = [t for t, topic, p in around if topic == "zigbee2mqtt/Hall motion" and p.get("occupancy") is True]
        assert hall[0] < closed and any(t > opened for t in hall)  # seen in the hall leaving, and coming in
        # every light is off from the moment she leaves until she is back
        lights_on = [(t, topic) for t, topic, p in around
                     if topic.endswith("light") and p.get("state") == "ON" and t < opened]
        assert lights_on == []
        for light in model.house.find("light"):
            before = [p for t, topic, p in _decoded(messages) if topic == light.topic and t <= outing.leaves]
            assert not before or before[-1]["state"] == "OFF", light.name


def _fixture_traffic(name: str) -> list[tuple[float, str, dict[str, object]]]:
    rows = []
    for line in (FIXTURES / name).read_bytes().splitlines():
        record = orjson.loads(line)
        t = datetime.fromisoformat(record["t"]).timestamp()
        if isinstance(record["payload"], dict):
            rows.append((t, record["topic"], record["payload"]))
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(rows))
    return rows


@pytest.mark.parametrize(("name", "outings"), [
    ("outings.jsonl", [("2026-03-10 10:30", "2026-03-10 12:00"), ("2026-03-11 13:30", "2026-03-11 17:00")]),
    ("outing-into-night.jsonl", [("2026-03-12 18:30", "2026-03-12 23:30")]),
])
def test_the_scene_fixtures_hold_the_outings_their_readme_lists(name: str, outings: list[tuple[str, str]]) -> None:
    seen = _traffic_outings(_fixture_traffic(name))
    expected = [tuple(datetime.fromisoformat(t).replace(tzinfo=TZ).timestamp() for t in pair) for pair in outings]
    assert len(seen) == len(expected)
    for (closed, opened), (leaves, returns) in zip(seen, expected, strict=True):
        assert 0 < closed - leaves <= 60 and opened == pytest.approx(returns, abs=1)
    assert (FIXTURES / name).stat().st_size < 1_000_000


def _make_fixtures() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def test_the_scene_fixtures_are_what_their_script_makes(tmp_path: Path) -> None:
    """The files are the script's output: after a change to the simulator, run the script (README)."""
    assert _make_fixtures().main(["--out", str(tmp_path)]) == 0
    for name in ("house.toml", "outings.jsonl", "outing-into-night.jsonl"):
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), (
            f"{name} is out of date: run .venv/bin/python tests/fixtures/scenes/make_fixtures.py")


_DIGEST = """
import hashlib, sys
from datetime import datetime
from zoneinfo import ZoneInfo
from gateway.sim import HouseModel, demo_house
from gateway.sim.capture import capture_line
tz = ZoneInfo("Europe/Berlin")
start = datetime(2026, 3, 14, 9, 0, tzinfo=tz).timestamp()
model = HouseModel(demo_house(), start=start, tz=tz, seed=1, bad_morning_day=None)
lines = [capture_line(m) for m in model.start() + model.advance_to(start + 8 * 3600)]
print(hashlib.sha256(b"".join(lines)).hexdigest())
"""


def test_the_same_seed_gives_the_same_traffic_in_every_interpreter() -> None:
    """Not only in one process: nothing may depend on the order of a set of strings (hash seeds)."""
    digests = set()
    for hash_seed in ("1", "2", "3"):
        done = subprocess.run([sys.executable, "-c", _DIGEST], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PYTHONHASHSEED": hash_seed}, check=True)
        digests.add(done.stdout.strip())
    assert len(digests) == 1
