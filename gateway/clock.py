"""The one clock. Every timer, timestamp and "for 10 minutes" in the gateway goes through a Clock.

Production uses :class:`SystemClock`; replay and tests use :class:`SimulatedClock`, whose time only
moves when told to, so a recorded day replays in milliseconds and tests never wait for real time.
``hearth demo`` uses :class:`ScaledClock`: real time, sped up, so a simulated day passes in minutes.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class TimerHandle(Protocol):
    """What :meth:`Clock.call_later` returns."""

    def cancel(self) -> None:
        """Drop the timer: its callback will not run (harmless once it has run, or when called twice)."""


class Clock(Protocol):
    """The gateway's clock (``ctx.clock``): use it, not ``time`` or ``asyncio.sleep``, for every timestamp
    and timer, so that replay and tests can run a day in simulated time."""

    def time(self) -> float:
        """Wall-clock time, epoch seconds (UTC)."""

    def monotonic(self) -> float:
        """Seconds for measuring durations; never goes backwards."""

    def now(self) -> datetime:
        """Wall-clock time as an aware UTC datetime."""

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        """Call ``callback`` (on the event loop) after ``delay_s`` seconds; the handle's ``cancel()`` stops it."""

    async def sleep(self, delay_s: float) -> None:
        """Wait ``delay_s`` seconds of this clock's time."""


def iso_utc(epoch_s: float) -> str:
    """ISO-8601 UTC with millisecond precision and a ``Z``: the form of every ``t`` we print.

    Scene traces stamp several per firing, so the formatted second is kept (datetime formatting is
    most of the cost) and only the milliseconds are added; identical to formatting in full."""
    # As datetime does it: the fraction rounded to microseconds, then cut to milliseconds.
    second = math.floor(epoch_s)
    micros = round((epoch_s - second) * 1_000_000)
    if micros >= 1_000_000:
        second += 1
        micros -= 1_000_000
    ms = micros // 1000
    global _iso_second, _iso_prefix
    if second != _iso_second:
        _iso_prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        _iso_second = second
    return f"{_iso_prefix}{ms:03d}Z"


_iso_second: int | None = None
_iso_prefix = ""


class SystemClock:
    """The real clock. Timers run on the asyncio loop."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay_s), callback)

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(max(0.0, delay_s))


class _SimTimer:
    __slots__ = ("callback", "cancelled", "due")

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class SimulatedClock:
    """A clock that stands still until :meth:`advance_to` moves it, firing due timers in order."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, _SimTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _SimTimer(self._now + max(0.0, delay_s), callback)
        heapq.heappush(self._timers, (timer.due, next(self._seq), timer))
        return timer

    async def sleep(self, delay_s: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        handle = self.call_later(delay_s, wake)
        try:
            await future
        finally:
            handle.cancel()

    def next_due(self) -> float | None:
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def advance_to(self, target: float) -> int:
        """Move time forward to ``target``, running every timer due on the way. Returns how many ran.

        Time never goes backwards: a target in the past leaves the clock where it is (captures may be
        slightly out of order; the replay keeps the latest time seen).
        """
        timers = self._timers
        if not timers or timers[0][0] > target:  # nothing due on the way (a replay's common case)
            if target > self._now:
                self._now = target
            return 0
        fired = 0
        while True:
            due = self.next_due()
            if due is None or due > target:
                break
            _, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, timer.due)
            timer.callback()
            fired += 1
        self._now = max(self._now, target)
        return fired


class ScaledClock:
    """Real time sped up ``speed`` times (``hearth demo``, benchmarks of timed behaviour).

    ``time()`` is ``start`` (default: now) plus the real time elapsed since construction times
    ``speed``; ``monotonic()`` likewise from the real monotonic clock. Timers and sleeps run on the
    asyncio loop with their delays divided by ``speed``, so a scene's "for 10 minutes" passes in
    10 real seconds at speed 60. Elapsed time is measured on the real *monotonic* clock: a wall-clock
    step (NTP) on the machine must not make simulated time jump.
    """

    def __init__(self, speed: float, start: float | None = None) -> None:
        if not (isinstance(speed, (int, float)) and math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a finite number > 0, not {speed!r}")
        self.speed = float(speed)
        self._real_start = time.monotonic()
        self._start = time.time() if start is None else float(start)

    def _elapsed(self) -> float:
        return (time.monotonic() - self._real_start) * self.speed

    def time(self) -> float:
        return self._start + self._elapsed()

    def monotonic(self) -> float:
        return self._real_start + self._elapsed()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(max(0.0, delay_s) / self.speed, callback)

    async def sleep(self, delay_s: float) -> None:
        await asyncio.sleep(max(0.0, delay_s) / self.speed)
