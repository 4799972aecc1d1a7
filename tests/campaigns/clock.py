"""Clock campaigns under the scene engine: wall-clock steps (NTP, a fixed RTC) and the DST changes of a
house in Europe/Berlin. The engine runs on the small fake house of tests/scenes/test_engine.py.

- :class:`SteppedClock` is what the engine sees in production (``SystemClock`` on asyncio's loop):
  timers run on monotonic time, while ``time()`` (the wall clock) can step forwards or backwards.
- :func:`clock_jumps`: days with a time trigger at 07:00 and 22:00 and a "for 30 min" hold, the wall
  clock stepped by up to 2 hours around them (fixed steps over and back across the scenes' hours, then
  random ones in the long run). A daily scene must run once for each day, never twice for one nor none,
  never before its hour, and late by at most the forward steps since its run before; the hold exactly once
  per episode.
- :func:`dst_changes`: the last Sundays of March and October 2026 in Europe/Berlin, scenes at 02:30 (an
  hour that does not exist, then one that happens twice) and 07:00, and a "for 30 min" hold started before
  the change and carried across an engine restart: every scene fires exactly once per local day, the hold
  fires once, at its due instant.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

from gateway.clock import SimulatedClock

BERLIN = ZoneInfo("Europe/Berlin")
Out = Callable[[str], None]


class SteppedClock(SimulatedClock):
    """A simulated clock whose wall time can step (``step``) while its timers keep to monotonic time."""

    def __init__(self, start: float = 0.0) -> None:
        super().__init__(start)
        self.offset_s = 0.0

    def time(self) -> float:
        return self._now + self.offset_s

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def step(self, seconds: float) -> None:
        """The wall clock is set ``seconds`` ahead (or back): no timer moves."""
        self.offset_s += seconds


def _profile() -> str:
    from tests.scenes.test_engine import NOTE, profile, scene

    return profile(
        scene("night", '{ kind = "time", at = "02:30" }', NOTE("night {date}")),
        scene("morning", '{ kind = "time", at = "07:00" }', NOTE("morning {date}")),
        scene("evening", '{ kind = "time", at = "22:00" }', NOTE("evening {date}")),
        scene("cold", '{ kind = "state", selector = { capability = "thermostat" }, attribute = '
                      '"thermostat.target_celsius", below = 10, for = "30m" }', NOTE("cold")),
    )


def _house(start_wall: float) -> Any:
    from tests.scenes import test_engine
    from tests.scenes.test_engine import House

    # The fake house of the engine's tests, on a clock that can step (House makes its own SimulatedClock).
    with mock.patch.object(test_engine, "SimulatedClock", SteppedClock):
        return House(_profile(), start=start_wall, timezone=BERLIN)


async def _run_until(house: Any, monotonic_target: float) -> None:
    """Let monotonic time run to ``monotonic_target``, letting runs progress at every timer on the way."""
    clock = house.clock
    for _ in range(100_000):  # bounded: a day has far fewer timers
        due = clock.next_due()
        if due is None or due > monotonic_target:
            break
        clock.advance_to(due)
        await house.settle()
    clock.advance_to(monotonic_target)
    await house.settle()


def _firings(house: Any, scene_id: str) -> list[datetime]:
    """Local (Berlin) wall times of a scene's notifications (kept by the house's notifier across restarts)."""
    return [datetime.fromtimestamp(n.t, BERLIN) for _, n in house.notifier.sent
            if n.message.split(" ", 1)[0] == scene_id]


def _per_day(times: list[datetime]) -> dict[str, int]:
    days: dict[str, int] = {}
    for t in times:
        days[t.date().isoformat()] = days.get(t.date().isoformat(), 0) + 1
    return days


def _local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN).timestamp()


async def _set_cold(house: Any, value: float) -> None:
    from tests.scenes.test_engine import RADIATOR

    await house.set(RADIATOR, "thermostat", "target_celsius", value)


# Wall-clock steps of the random part are at most this big (forwards or back): then every firing of a daily
# scene is at most this late, and two firings are at least 24 h - this apart in real time.
MAX_STEP_S = 2 * 3600.0
_HOURS = {"morning": 7 * 60, "evening": 22 * 60}  # the scenes' local minute of the day


class _Stamped(list):  # type: ignore[type-arg]
    """The notifier's list of what was sent, with the monotonic time of each (the wall time may step)."""

    def __init__(self, clock: SteppedClock) -> None:
        super().__init__()
        self.clock = clock
        self.monotonic: list[float] = []

    def append(self, item: Any) -> None:
        self.monotonic.append(self.clock.monotonic())
        super().append(item)


async def _clock_jumps(steps: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    start = _local(2026, 3, 9, 12, 0)  # a Monday noon; no DST change in these days
    days = 3 + max(0, steps - 4) // 2
    house = _house(start)
    stamped = _Stamped(house.clock)
    house.notifier.sent = stamped
    await house.start()
    clock: SteppedClock = house.clock
    # (monotonic seconds from start, wall step): the fixed ones first, around the scenes' hours.
    fixed = [(_local(2026, 3, 10, 6, 30) - start, MAX_STEP_S),     # 07:00 is jumped over
             (_local(2026, 3, 10, 23, 0) - start - MAX_STEP_S, -MAX_STEP_S),  # 22:00 happens again
             (_local(2026, 3, 11, 6, 30) - start, -MAX_STEP_S),   # 07:00 is 2 h further away
             (_local(2026, 3, 11, 21, 30) - start, MAX_STEP_S)]   # 22:00 is jumped over
    plan = fixed[:steps]
    for _ in range(max(0, steps - len(fixed))):
        plan.append((rng.uniform(_local(2026, 3, 12) - start, days * 86400 - 7200),
                     rng.choice([-1, 1]) * rng.uniform(60, MAX_STEP_S)))
    plan.sort()
    monotonic_start = clock.monotonic()
    done: list[tuple[float, float]] = []  # (monotonic, step) of every step made
    for at_s, step_s in plan:
        await _run_until(house, monotonic_start + at_s)
        clock.step(step_s)
        done.append((clock.monotonic(), step_s))
        await house.settle()
    # A 30 min hold, cold for 2 h 10 min of real time, with the wall clock set back 2 h 10 min into it.
    await _run_until(house, clock.monotonic() + 3600)
    await _set_cold(house, 8.0)
    await _run_until(house, clock.monotonic() + 600)
    clock.step(-2 * 3600.0)
    done.append((clock.monotonic(), -2 * 3600.0))
    await _run_until(house, clock.monotonic() + 7200)
    await _set_cold(house, 21.0)
    await _run_until(house, monotonic_start + days * 86400 + 86400)
    await house.engine.stop()
    figures: dict[str, Any] = {"steps": len(plan) + 1, "days": days + 1, "cold_episodes": 1,
                               "first_local_day": datetime.fromtimestamp(start, BERLIN).date().isoformat()}
    for scene, minute in _HOURS.items():
        runs = [(datetime.fromtimestamp(n.t, BERLIN), mono) for (_, n), mono in zip(stamped, stamped.monotonic,
                                                                                     strict=True)
                if n.message.split(" ", 1)[0] == scene]
        figures[scene] = [t.isoformat() for t, _ in runs]
        figures[f"{scene}_runs"] = len(runs)
        # How late after its hour each run was (local wall time): at most the forward steps since the run
        # before. The day it ran for (its local time less that) is the day after the one before: not the
        # same day (twice), not two days later (a day lost).
        late = [((t.hour * 60 + t.minute - minute) % 1440) for t, _ in runs]
        gaps = [(b - a) / 3600 for (_, a), (_, b) in itertools.pairwise(runs)]
        figures[f"{scene}_late_min_max"] = max(late, default=0)
        figures[f"{scene}_gap_h_min"] = round(min(gaps, default=24.0), 2)
        figures[f"{scene}_gap_h_max"] = round(max(gaps, default=24.0), 2)
        violations = []
        previous = monotonic_start
        day_before = datetime.fromtimestamp(start, BERLIN).date()
        for index, ((t, mono), late_min) in enumerate(zip(runs, late, strict=True)):
            between = [step for at, step in done if previous < at <= mono]
            forward_h = sum(x for x in between if x > 0) / 3600
            backward_h = -sum(x for x in between if x < 0) / 3600
            if late_min > forward_h * 60 + 1:
                violations.append(f"ran at {t.isoformat()}, {late_min} min after its hour (steps since the "
                                  f"run before: +{forward_h:.2f} h)")
            day = (t - timedelta(minutes=late_min)).date()
            if index and (day - day_before).days != 1:
                violations.append(f"ran at {t.isoformat()} for {day}, the run before was for {day_before} "
                                  f"(steps between: +{forward_h:.2f} h, -{backward_h:.2f} h)")
            previous, day_before = mono, day
        figures[f"{scene}_violations"] = violations
    figures["cold_runs"] = sum(1 for _, n in stamped if n.message == "cold")
    return figures


def clock_jumps(steps: int = 4, seed: int = 0, out: Out = print) -> dict[str, Any]:
    """Three days or more (a day per two random steps) with the wall clock stepped ``steps`` times."""
    figures = asyncio.run(_clock_jumps(steps, seed))
    out(f"clock-jumps: {figures['steps']} wall-clock steps (at most {MAX_STEP_S / 3600:g} h) over "
        f"{figures['days']} days: 07:00 scene ran {figures['morning_runs']} times (real time between runs "
        f"{figures['morning_gap_h_min']}-{figures['morning_gap_h_max']} h, at most "
        f"{figures['morning_late_min_max']} min after 07:00 local), 22:00 scene {figures['evening_runs']} times "
        f"({figures['evening_gap_h_min']}-{figures['evening_gap_h_max']} h, at most "
        f"{figures['evening_late_min_max']} min late); the 30 min hold fired {figures['cold_runs']} times for "
        f"{figures['cold_episodes']} episode")
    out(f"  07:00 scene at {figures['morning'][:8]}{' ...' if len(figures['morning']) > 8 else ''}")
    return figures


async def _dst_change(year: int, month: int, day: int) -> dict[str, Any]:
    """Two days around the DST change of ``day`` (a Sunday) in Berlin, with a hold across it and a restart."""
    start = _local(year, month, day - 1, 12, 0)
    house = _house(start)
    await house.start()
    clock = house.clock
    change = datetime(year, month, day, 1, 0, tzinfo=UTC).timestamp()  # 01:00 UTC both times in the EU
    # The hold: cold from 20 min before the change; due 30 min later (10 min after it, real time).
    await _run_until(house, change - 20 * 60)
    await _set_cold(house, 8.0)
    hold_due = clock.time() + 1800
    await _run_until(house, change - 10 * 60)
    # The gateway stops over the change and starts again 5 min after it: the timer is resumed.
    await house.engine.stop()
    clock.advance_to(change + 5 * 60)
    house.engine = house.new_engine()
    await house.start()
    await _run_until(house, change + 3600)
    await _set_cold(house, 21.0)
    await _run_until(house, _local(year, month, day + 2, 0, 0) - 1)
    await house.engine.stop()
    cold = _firings(house, "cold")
    return {
        "night": [t.isoformat() for t in _firings(house, "night")],
        "morning": [t.isoformat() for t in _firings(house, "morning")],
        "evening": [t.isoformat() for t in _firings(house, "evening")],
        "night_per_day": _per_day(_firings(house, "night")),
        "morning_per_day": _per_day(_firings(house, "morning")),
        "cold": [t.isoformat() for t in cold],
        "cold_late_s": [round(t.timestamp() - hold_due, 1) for t in cold],
        "days": [(datetime(year, month, day) + timedelta(days=d)).date().isoformat() for d in (0, 1)],
    }


def dst_changes(out: Out = print) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, (year, month, day) in (("spring", (2026, 3, 29)), ("autumn", (2026, 10, 25))):
        result = asyncio.run(_dst_change(year, month, day))
        figures[name] = result
        out(f"dst {name} ({year}-{month:02d}-{day:02d}, Europe/Berlin): 02:30 scene per day "
            f"{result['night_per_day']}, 07:00 scene per day {result['morning_per_day']}, hold fired at "
            f"{result['cold']} ({result['cold_late_s']} s after its due instant)")
        out(f"  02:30 scene at {result['night']}")
    return figures
