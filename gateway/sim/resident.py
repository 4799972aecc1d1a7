"""The resident of the demo house: a daily routine, as data, turned into a day's plan of steps.

A plan is pure: the same day, seed and flags give the same steps. Each day draws its own random
numbers (``Random(f"{seed}:{day}")``), so a day's plan does not depend on what happened before it.
Times are local (the house's time zone); steps carry epoch seconds.

The resident goes out: shopping most days (1-2 h, late morning or afternoon) and, one day a week,
a long visit (4-5 h after lunch, back in the evening). An outing is decided before the routine is
laid out, and the routine shifts around it: what was under way when she leaves is cut short, what
comes next waits for her return, and what can no longer start in time (``Activity.latest``) is
dropped. :func:`outings_of` reads the outings back from a plan; a caller (a test, a fixture) can
script a day's outings instead of drawing them (``plan_day(..., outings=[Outing.starting(...)])``).

One day is scripted to go wrong (``bad_morning``): nobody moves from going to bed the evening before
until late in the morning, so the elderly-monitoring profile's morning check and inactivity alerts fire.
That day has no morning outing either (an outing in the afternoon is fine: it is after the check).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

__all__ = ["OUT", "ROUTINE", "Activity", "Outing", "Step", "outings_of", "plan_day", "visit_weekday"]

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
    # Dropped when it cannot start by this local time ("HH:MM"): an outing ran late. Loose enough that
    # a day at home never reaches it.
    latest: str | None = None


ROUTINE: tuple[Activity, ...] = (
    Activity("wake", "bedroom", (5, 12), at="07:00", jitter_min=20, extras=("air_bedroom",), note="wakes up"),
    Activity("wash", "bathroom", (15, 25), note="washes and dresses"),
    Activity("breakfast", "kitchen", (25, 40), extras=("kettle",), note="has breakfast", latest="10:30"),
    Activity("morning", "living_room", (50, 90), extras=("air",), note="reads the paper, airs the living room",
             latest="11:30"),
    Activity("lunch", "kitchen", (40, 60), at="12:15", jitter_min=15, note="cooks lunch", latest="14:30"),
    Activity("nap", "living_room", (80, 120), note="naps in the armchair", latest="16:00"),
    Activity("toilet", "bathroom", (5, 10), note="bathroom"),
    Activity("tea", "kitchen", (15, 25), extras=("kettle",), note="makes tea", latest="17:30"),
    Activity("afternoon", "living_room", (60, 110), note="phones the family", latest="18:00"),
    Activity("dinner", "kitchen", (40, 60), at="18:15", jitter_min=15, extras=("laundry",), note="cooks dinner",
             latest="21:30"),
    Activity("evening", "living_room", (120, 160), extras=("tv",), note="watches TV", latest="22:30"),
    Activity("bedtime", "bathroom", (10, 20), note="gets ready for bed"),
    Activity("bed", "bedroom", (10, 20), extras=("sleep",), note="goes to bed"),
)
# On the bad morning these do not happen: the resident gets up at BAD_WAKE and goes on with lunch.
_SKIPPED_ON_BAD_MORNING = frozenset({"breakfast", "morning"})
BAD_WAKE = "11:40"

# Outings. Shopping: most days, in one of two slots (local time she leaves, give or take minutes).
SHOPPING_ODDS = 0.8
SHOPPING_SLOTS = {"morning": ("10:30", 30.0), "afternoon": ("15:30", 45.0)}
SHOPPING_MINUTES = (60.0, 120.0)
# The long visit: one weekday a week (which one depends on the seed), after lunch, back in the evening.
VISIT_AT, VISIT_JITTER_MIN = "13:45", 30.0
VISIT_MINUTES = (240.0, 300.0)
# Between two outings of one day she is home at least this long (and the plan needs the room to lay
# out her return).
_MIN_HOME_BETWEEN_S = 120.0
# After the door closes behind her on return, she walks on into a room (the hall's PIR sees her first).
_BACK_IN_ROOM_S = 45.0

# While someone is in a room, a PIR sensor sees movement every few minutes. Never more than 7 minutes
# apart: the energy-saving profile switches a room's lights off after 10 minutes without movement.
PULSE_GAP_MIN = (2.0, 7.0)


@dataclass(frozen=True, slots=True)
class Outing:
    """The resident is out of the house from ``leaves`` to ``returns`` (epoch seconds).

    ``key``: ``shopping``, ``visit`` or a scripted outing's name; ``back_room``: where she goes once
    back in (the kitchen to put the shopping away)."""

    key: str
    leaves: float
    returns: float
    note: str = "goes out"
    back_room: str = "kitchen"

    @property
    def minutes(self) -> float:
        return (self.returns - self.leaves) / 60

    @classmethod
    def starting(cls, day: date, clock: str, minutes: float, tz: tzinfo, *, key: str = "out",
                 note: str = "goes out", back_room: str = "kitchen") -> Outing:
        """An outing that leaves at ``clock`` (local "HH:MM") on ``day`` and lasts ``minutes``."""
        leaves = _at(day, clock, tz)
        return cls(key, leaves, leaves + minutes * 60, note, back_room)


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the resident does. ``action``: enter (a room; ``room`` None = asleep in it),
    pulse (movement in ``room`` without moving there), leave_house (``room`` = OUT), come_home
    (``room`` = the hall she comes in through), kettle, tv_on, tv_off, window_open, window_close
    (``room`` = where), laundry, sleep. ``activity``: the key of the activity or outing it belongs to."""

    t: float
    action: str
    room: str | None = None
    note: str = ""
    activity: str = ""


def _at(day: date, clock: str, tz: tzinfo) -> float:
    hours, minutes = (int(p) for p in clock.split(":"))
    return datetime.combine(day, time(hours, minutes), tz).timestamp()


def visit_weekday(seed: int) -> int:
    """The weekday (Monday 0) of the resident's weekly long visit."""
    return random.Random(f"{seed}:visit").randrange(7)


def _draw_outings(day: date, day_index: int, tz: tzinfo, seed: int, bad_morning: bool) -> list[Outing]:
    # Its own random numbers: scripting a day's outings leaves the rest of the day's draws alone.
    rng = random.Random(f"{seed}:{day_index}:out")
    if day.weekday() == visit_weekday(seed):
        leaves = _at(day, VISIT_AT, tz) + rng.uniform(-VISIT_JITTER_MIN, VISIT_JITTER_MIN) * 60
        return [Outing("visit", leaves, leaves + rng.uniform(*VISIT_MINUTES) * 60, "goes to visit the family",
                       "living_room")]
    if rng.random() >= SHOPPING_ODDS:
        return []
    slot = "afternoon" if bad_morning or rng.random() < 0.5 else "morning"
    clock, jitter = SHOPPING_SLOTS[slot]
    leaves = _at(day, clock, tz) + rng.uniform(-jitter, jitter) * 60
    return [Outing("shopping", leaves, leaves + rng.uniform(*SHOPPING_MINUTES) * 60, "goes out shopping")]


def _checked(outings: Sequence[Outing]) -> list[Outing]:
    ordered = sorted(outings, key=lambda o: o.leaves)
    for outing in ordered:
        if outing.returns <= outing.leaves:
            raise ValueError(f"outing {outing.key!r} returns before it leaves")
    for first, second in itertools.pairwise(ordered):
        if second.leaves < first.returns + _MIN_HOME_BETWEEN_S:
            raise ValueError(f"outings {first.key!r} and {second.key!r} overlap")
    return ordered


def plan_day(day: date, day_index: int, tz: tzinfo, *, seed: int = 0, bad_morning: bool = False,
             outings: Sequence[Outing] | None = None) -> list[Step]:
    """The steps of one local day, in time order (the night toilet visit, then the routine with the
    day's outings). ``outings``: script them (an empty list: a day at home) instead of drawing them."""
    rng = random.Random(f"{seed}:{day_index}")
    steps: list[Step] = []
    if not bad_morning and rng.random() < 0.35:
        night = _at(day, "02:00", tz) + rng.uniform(0, 120) * 60
        steps.append(Step(night, "enter", "bathroom", "gets up in the night", "night"))
        back = night + rng.uniform(4, 8) * 60
        steps.append(Step(back, "enter", "bedroom", activity="night"))
        steps.append(Step(back + 60, "sleep", "bedroom", activity="night"))

    pending = _checked(_draw_outings(day, day_index, tz, seed, bad_morning) if outings is None else outings)
    stays: list[tuple[Activity, float, float]] = []  # activity, start, minimum end (an outing: its return)
    previous_end: float | None = None

    def go_out(outing: Outing) -> float:
        stays.append((Activity(outing.key, OUT, (0, 0), note=outing.note), outing.leaves, outing.returns))
        back = Activity("back", outing.back_room, (5, 15),
                        note="puts the shopping away" if outing.key == "shopping" else "")
        start = outing.returns + _BACK_IN_ROOM_S
        end = start + rng.uniform(*back.minutes) * 60
        stays.append((back, start, end))
        return end

    for activity in ROUTINE:
        if bad_morning and activity.key in _SKIPPED_ON_BAD_MORNING:
            continue
        if rng.random() >= activity.probability:
            continue
        at = BAD_WAKE if bad_morning and activity.key == "wake" else activity.at
        wanted = None if at is None else _at(day, at, tz) + rng.uniform(-activity.jitter_min,
                                                                         activity.jitter_min) * 60
        start = previous_end if wanted is None else wanted if previous_end is None else max(previous_end, wanted)
        assert start is not None  # the first activity of the routine has a time
        # She leaves during the stay before this one: the outing comes first, this waits for her return.
        while pending and pending[0].leaves <= start:
            previous_end = go_out(pending.pop(0))
            start = previous_end if wanted is None else max(previous_end, wanted)
        if activity.latest is not None and start > _at(day, activity.latest, tz):
            continue
        end = start + rng.uniform(*activity.minutes) * 60
        stays.append((activity, start, end))
        previous_end = end
    bed = [a for a in ROUTINE if a.key in ("bedtime", "bed")]
    for outing in pending:  # she leaves after going to bed (a scripted night out): back, then to bed again
        previous_end = go_out(outing)
        for activity in bed:
            stays.append((activity, previous_end, previous_end + rng.uniform(*activity.minutes) * 60))
            previous_end = stays[-1][2]

    for index, (activity, start, end) in enumerate(stays):
        leaves_at = stays[index + 1][1] if index + 1 < len(stays) else end
        note = activity.note
        key = activity.key
        if bad_morning and key == "wake":
            note = "gets up very late (the scripted bad morning)"
        if activity.room == OUT:
            steps.append(Step(start, "leave_house", OUT, note, key))
            steps.append(Step(end, "come_home", "hall", "comes home", key))
            continue
        previous_room = stays[index - 1][0].room if index else None
        if previous_room not in (None, OUT, activity.room) and rng.random() < 0.5:
            steps.append(Step(start - 10, "pulse", "hall", activity=key))  # walks through the hall
        steps.append(Step(start, "enter", activity.room, note, key))
        next_is_out = index + 1 < len(stays) and stays[index + 1][0].room == OUT
        stay_until = end if "sleep" in activity.extras and not next_is_out else leaves_at
        pulse = start + rng.uniform(*PULSE_GAP_MIN) * 60
        while pulse < stay_until - 30:
            steps.append(Step(pulse, "pulse", activity.room, activity=key))
            pulse += rng.uniform(*PULSE_GAP_MIN) * 60
        for extra in activity.extras:
            extra_steps = _extra(extra, activity, start, stay_until, rng)
            if next_is_out:  # a stay cut short by an outing: nothing of it happens once she has left
                extra_steps = [s for s in extra_steps if s.t < stay_until - 30]
            steps.extend(extra_steps)
    steps.sort(key=lambda step: step.t)
    return steps


def outings_of(steps: Sequence[Step]) -> list[Outing]:
    """The outings of a plan: each ``leave_house`` with the ``come_home`` that follows it."""
    found: list[Outing] = []
    leaving: Step | None = None
    for step in steps:
        if step.action == "leave_house":
            leaving = step
        elif step.action == "come_home" and leaving is not None:
            found.append(Outing(leaving.activity, leaving.t, step.t, leaving.note))
            leaving = None
    return found


def _extra(extra: str, activity: Activity, start: float, until: float, rng: random.Random) -> list[Step]:
    key = activity.key
    if extra == "kettle":
        return [Step(start + rng.uniform(1, 5) * 60, "kettle", activity.room, activity=key)]
    if extra in ("air", "air_bedroom"):
        if extra == "air_bedroom" and rng.random() >= 0.3:
            return []
        opened = start + rng.uniform(2, 8) * 60
        closed = min(opened + rng.uniform(8, 15) * 60, until - 60)
        if closed <= opened:
            return []
        return [Step(opened, "window_open", activity.room, activity=key),
                Step(closed, "window_close", activity.room, activity=key)]
    if extra == "tv":
        return [Step(start + 60, "tv_on", activity.room, activity=key),
                Step(until - 60, "tv_off", activity.room, activity=key)]
    if extra == "laundry":
        if rng.random() >= 0.4:
            return []
        return [Step(start + rng.uniform(5, 30) * 60, "laundry", activity.room,
                     "loads the washing machine for the night tariff", key)]
    if extra == "sleep":
        return [Step(until, "sleep", activity.room, activity=key)]
    raise ValueError(f"unknown extra {extra!r}")


def day_dates(start: float, tz: tzinfo) -> tuple[date, float]:
    """The local date of ``start`` and the epoch of the next local midnight."""
    local = datetime.fromtimestamp(start, tz)
    tomorrow = local.date() + timedelta(days=1)
    return local.date(), datetime.combine(tomorrow, time(0), tz).timestamp()
