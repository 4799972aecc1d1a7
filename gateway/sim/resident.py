"""The resident of the demo house: a daily routine, as data, turned into a day's plan of steps.

A plan is pure: the same day, seed and flags give the same steps. Each day draws its own random
numbers (``Random(f"{seed}:{day}")``), so a day's plan does not depend on what happened before it.
Times are local (the house's time zone); steps carry epoch seconds.

One day is scripted to go wrong (``bad_morning``): nobody moves from going to bed the evening before
until late in the morning, so the elderly-monitoring profile's morning check and inactivity alerts fire.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

__all__ = ["OUT", "ROUTINE", "Activity", "Step", "plan_day"]

OUT = "out"  # not in the house


@dataclass(frozen=True, slots=True)
class Activity:
    key: str
    room: str
    minutes: tuple[float, float]  # how long it takes at least (the stay lasts until the next activity)
    at: str | None = None  # not before this local time ("HH:MM") ...
    jitter_min: float = 0  # ... give or take this many minutes
    probability: float = 1.0  # some days it does not happen
    extras: tuple[str, ...] = ()  # kettle, air, tv, laundry, sleep
    note: str = ""


ROUTINE: tuple[Activity, ...] = (
    Activity("wake", "bedroom", (5, 12), at="07:00", jitter_min=20, extras=("air_bedroom",), note="wakes up"),
    Activity("wash", "bathroom", (15, 25), note="washes and dresses"),
    Activity("breakfast", "kitchen", (25, 40), extras=("kettle",), note="has breakfast"),
    Activity("morning", "living_room", (50, 90), extras=("air",), note="reads the paper, airs the living room"),
    Activity("errands", OUT, (60, 110), at="10:15", jitter_min=30, probability=0.7, note="goes out shopping"),
    Activity("lunch", "kitchen", (40, 60), at="12:15", jitter_min=15, note="cooks lunch"),
    Activity("nap", "living_room", (80, 120), note="naps in the armchair"),
    Activity("toilet", "bathroom", (5, 10), note="bathroom"),
    Activity("tea", "kitchen", (15, 25), extras=("kettle",), note="makes tea"),
    Activity("afternoon", "living_room", (60, 110), note="phones the family"),
    Activity("dinner", "kitchen", (40, 60), at="18:15", jitter_min=15, extras=("laundry",), note="cooks dinner"),
    Activity("evening", "living_room", (120, 160), extras=("tv",), note="watches TV"),
    Activity("bedtime", "bathroom", (10, 20), note="gets ready for bed"),
    Activity("bed", "bedroom", (10, 20), extras=("sleep",), note="goes to bed"),
)
# On the bad morning these do not happen: the resident gets up at BAD_WAKE and goes on with lunch.
_SKIPPED_ON_BAD_MORNING = frozenset({"breakfast", "morning", "errands"})
BAD_WAKE = "11:40"

# While someone is in a room, a PIR sensor sees movement every few minutes. Never more than 7 minutes
# apart: the energy-saving profile switches a room's lights off after 10 minutes without movement.
PULSE_GAP_MIN = (2.0, 7.0)


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the resident does. ``action``: enter (a room; ``room`` None = asleep in it),
    pulse (movement in ``room`` without moving there), leave_house, come_home, kettle, tv_on, tv_off,
    window_open, window_close (``room`` = where), laundry, sleep."""

    t: float
    action: str
    room: str | None = None
    note: str = ""


def _at(day: date, clock: str, tz: tzinfo) -> float:
    hours, minutes = (int(p) for p in clock.split(":"))
    return datetime.combine(day, time(hours, minutes), tz).timestamp()


def plan_day(day: date, day_index: int, tz: tzinfo, *, seed: int = 0, bad_morning: bool = False) -> list[Step]:
    """The steps of one local day, in time order (the night toilet visit, then the routine)."""
    rng = random.Random(f"{seed}:{day_index}")
    steps: list[Step] = []
    if not bad_morning and rng.random() < 0.35:
        night = _at(day, "02:00", tz) + rng.uniform(0, 120) * 60
        steps.append(Step(night, "enter", "bathroom", "gets up in the night"))
        back = night + rng.uniform(4, 8) * 60
        steps.append(Step(back, "enter", "bedroom"))
        steps.append(Step(back + 60, "sleep", "bedroom"))

    stays: list[tuple[Activity, float, float]] = []  # activity, start, minimum end
    previous_end: float | None = None
    for activity in ROUTINE:
        if bad_morning and activity.key in _SKIPPED_ON_BAD_MORNING:
            continue
        if rng.random() >= activity.probability:
            continue
        start = previous_end
        at = BAD_WAKE if bad_morning and activity.key == "wake" else activity.at
        if at is not None:
            wanted = _at(day, at, tz) + rng.uniform(-activity.jitter_min, activity.jitter_min) * 60
            start = wanted if start is None else max(start, wanted)
        assert start is not None  # the first activity of the routine has a time
        end = start + rng.uniform(*activity.minutes) * 60
        stays.append((activity, start, end))
        previous_end = end

    for index, (activity, start, end) in enumerate(stays):
        leaves_at = stays[index + 1][1] if index + 1 < len(stays) else end
        note = activity.note
        if bad_morning and activity.key == "wake":
            note = "gets up very late (the scripted bad morning)"
        if activity.room == OUT:
            steps.append(Step(start, "leave_house", None, note))
            steps.append(Step(leaves_at - 60, "come_home", None, "comes home"))
            continue
        previous_room = stays[index - 1][0].room if index else None
        if previous_room not in (None, OUT, activity.room) and rng.random() < 0.5:
            steps.append(Step(start - 10, "pulse", "hall"))  # walks through the hall
        steps.append(Step(start, "enter", activity.room, note))
        stay_until = end if "sleep" in activity.extras else leaves_at
        pulse = start + rng.uniform(*PULSE_GAP_MIN) * 60
        while pulse < stay_until - 30:
            steps.append(Step(pulse, "pulse", activity.room))
            pulse += rng.uniform(*PULSE_GAP_MIN) * 60
        for extra in activity.extras:
            steps.extend(_extra(extra, activity, start, stay_until, rng))
    steps.sort(key=lambda step: step.t)
    return steps


def _extra(extra: str, activity: Activity, start: float, until: float, rng: random.Random) -> list[Step]:
    if extra == "kettle":
        return [Step(start + rng.uniform(1, 5) * 60, "kettle", activity.room)]
    if extra in ("air", "air_bedroom"):
        if extra == "air_bedroom" and rng.random() >= 0.3:
            return []
        opened = start + rng.uniform(2, 8) * 60
        closed = min(opened + rng.uniform(8, 15) * 60, until - 60)
        if closed <= opened:
            return []
        return [Step(opened, "window_open", activity.room), Step(closed, "window_close", activity.room)]
    if extra == "tv":
        return [Step(start + 60, "tv_on", activity.room), Step(until - 60, "tv_off", activity.room)]
    if extra == "laundry":
        if rng.random() >= 0.4:
            return []
        return [Step(start + rng.uniform(5, 30) * 60, "laundry", activity.room,
                     "loads the washing machine for the night tariff")]
    if extra == "sleep":
        return [Step(until, "sleep", activity.room)]
    raise ValueError(f"unknown extra {extra!r}")


def day_dates(start: float, tz: tzinfo) -> tuple[date, float]:
    """The local date of ``start`` and the epoch of the next local midnight."""
    local = datetime.fromtimestamp(start, tz)
    tomorrow = local.date() + timedelta(days=1)
    return local.date(), datetime.combine(tomorrow, time(0), tz).timestamp()
