from __future__ import annotations

import asyncio

from gateway.clock import SimulatedClock, iso_utc


def test_timers_fire_in_order_as_time_advances() -> None:
    clock = SimulatedClock(1000.0)
    fired: list[str] = []
    clock.call_later(10, lambda: fired.append("b"))
    clock.call_later(5, lambda: fired.append("a"))
    cancelled = clock.call_later(7, lambda: fired.append("x"))
    cancelled.cancel()
    assert clock.advance_to(1004) == 0
    assert clock.advance_to(1010) == 2
    assert fired == ["a", "b"]
    assert clock.time() == 1010


def test_time_never_goes_backwards() -> None:
    clock = SimulatedClock(50.0)
    clock.advance_to(40.0)
    assert clock.time() == 50.0


async def test_sleep_wakes_when_simulated_time_passes() -> None:
    clock = SimulatedClock(0.0)
    task = asyncio.create_task(clock.sleep(60))
    await asyncio.sleep(0)
    clock.advance_to(59)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance_to(60)
    await asyncio.sleep(0)
    assert task.done()


def test_iso_utc() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
