"""ScaledClock: real time sped up. Bounds are loose (a loaded CI runner is slow), but each check fails
if the speed were not applied (times would be off by the speed factor, 100-600x)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.clock import ScaledClock


def test_time_runs_speed_times_faster_from_start() -> None:
    clock = ScaledClock(100.0, start=1_000_000.0)
    real_start = time.monotonic()
    assert 1_000_000.0 <= clock.time() < 1_000_000.0 + 100 * 0.5
    time.sleep(0.05)
    elapsed_real = time.monotonic() - real_start
    simulated = clock.time() - 1_000_000.0
    assert 100 * 0.05 <= simulated <= 100 * (elapsed_real + 0.01)
    assert clock.now().timestamp() == pytest.approx(clock.time(), abs=1.0)


def test_monotonic_is_scaled_and_never_goes_backwards() -> None:
    clock = ScaledClock(50.0)
    first = clock.monotonic()
    time.sleep(0.02)
    second = clock.monotonic()
    assert second - first >= 50 * 0.02
    assert all(clock.monotonic() >= second for _ in range(100))


def test_start_defaults_to_now() -> None:
    clock = ScaledClock(10.0)
    assert abs(clock.time() - time.time()) < 5


async def test_call_later_and_sleep_divide_by_speed() -> None:
    clock = ScaledClock(600.0, start=0.0)
    fired = asyncio.Event()
    real_start = time.monotonic()
    clock.call_later(60.0, fired.set)  # a simulated minute: 0.1 s real
    await asyncio.wait_for(fired.wait(), timeout=5)
    assert time.monotonic() - real_start < 5  # would be 60 s unscaled
    assert clock.time() >= 60.0  # fired no earlier than its simulated due time (within clock resolution)

    real_start = time.monotonic()
    before = clock.time()
    await clock.sleep(30.0)  # 0.05 s real
    assert time.monotonic() - real_start < 3
    assert clock.time() - before >= 30.0 - 1e-3


async def test_timer_can_be_cancelled_and_negative_delays_fire_at_once() -> None:
    clock = ScaledClock(1000.0)
    fired: list[str] = []
    handle = clock.call_later(10.0, lambda: fired.append("cancelled"))
    handle.cancel()
    clock.call_later(-5.0, lambda: fired.append("now"))
    await asyncio.sleep(0.05)
    assert fired == ["now"]


@pytest.mark.parametrize("speed", [0, -1, float("inf"), float("nan")])
def test_speed_must_be_positive_and_finite(speed: float) -> None:
    with pytest.raises(ValueError, match="speed"):
        ScaledClock(speed)
