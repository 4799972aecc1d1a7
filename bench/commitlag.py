"""The event loop's lateness while the store commits, against the rest of the same run.

    python -m bench.commitlag [--seconds 30] [--rate 2000] [--store-nice N]

The gateway in this process (``hearth run``'s code, on its event loop) with the 1,000-device house and both
shipped profiles; ``--rate`` msg/s of the stress stream are handed to its MQTT session's dispatch on the
loop, each at its due time, and how late the loop gets to each one is recorded. The store commits every
5 s in its worker thread; a commit's span is taken from that thread (``Store._write_batch``). Reported:
the lateness inside commits and outside them (p50, p90, p99, max), and which share of the loop's late
moments fell in commits. What a scene's command waits for when a commit competes with the loop for a core
or for the GIL is the lateness inside them; the baseline is the same loop outside them. ``--store-nice``
sets the store thread's nice steps (``gateway.store.STORE_THREAD_NICE``; 0: the loop's own priority), to
compare; ``HEARTH_BENCH_NO_MALLOC_TUNING=1`` leaves glibc's malloc as it is (bench/_gateway.py).
Last line: ``commitlag: <p99 inside> ms p99 during commits, ratio <R> vs baseline`` (the baseline: the same
loop's p99 outside commits).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench._broker import BenchBroker
from bench._gateway import InProcessGateway, Spans, announce, free_port, wait_for_devices, write_config
from gateway.app import run_on_event_loop
from gateway.sim import message_stream, scaled_house

DEVICES = 1000
_MAX_SECONDS = 600.0
_POOL = 40_000  # messages, cycled


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def _line(name: str, lateness_ms: list[float]) -> str:
    return (f"{name:>16}: p50 {_pct(lateness_ms, 50):.3f} ms, p90 {_pct(lateness_ms, 90):.3f} ms, "
            f"p99 {_pct(lateness_ms, 99):.3f} ms, max {max(lateness_ms, default=float('nan')):.3f} ms "
            f"({len(lateness_ms)} messages)")


async def _measure(workdir: Path, port: int, rate: float, seconds: float) -> tuple[list[tuple[float, float]],
                                                                                   list[tuple[float, float]]]:
    """(when each message was handed over, seconds late) and the commits as (start, seconds), perf_counter."""
    house = scaled_house(DEVICES)
    stream = list(message_stream(house, _POOL, seed=1))
    spans = Spans(clock=time.perf_counter)
    uninstall = spans.install()
    try:
        config = write_config(workdir / "config.toml", broker_port=port, data_dir=workdir, house=house,
                              api_port=free_port(), profiles=("energy-saving", "elderly-monitoring"))
        announce(port, house)
        async with InProcessGateway(config) as gateway:
            await wait_for_devices(gateway, DEVICES)
            await asyncio.sleep(1.0)
            spans.commits.clear()
            dispatch = gateway.mqtt._dispatch
            lateness: list[tuple[float, float]] = []
            interval = 1.0 / rate
            started = due = time.perf_counter()
            index = 0
            while due - started < seconds:
                now = time.perf_counter()
                lateness.append((now, max(0.0, now - due)))
                topic, payload = stream[index % _POOL]
                dispatch(topic, payload, False)
                index += 1
                due += interval
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            return lateness, list(spans.commits)
    finally:
        uninstall()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--store-nice", type=int, help="the store thread's nice steps (0: none; to compare)")
    args = parser.parse_args(argv)
    if args.store_nice is not None:
        import gateway.store

        gateway.store.STORE_THREAD_NICE = args.store_nice
    if not os.environ.get("HEARTH_BENCH_NO_MALLOC_TUNING"):
        from gateway.app import tune_malloc

        tune_malloc()  # as `hearth run` does (one malloc arena for all threads), before any thread starts
    from gateway.app import shorten_time_slice
    from gateway.config import GatewaySection

    shorten_time_slice(GatewaySection().loop_slice_us)  # as `hearth run` does (its default)
    seconds = min(max(1.0, args.seconds), _MAX_SECONDS)
    rate = min(max(10.0, args.rate), 20_000.0)
    with BenchBroker() as broker, tempfile.TemporaryDirectory(prefix="hearth-commitlag-") as tmp:
        lateness, commits = run_on_event_loop(_measure(Path(tmp), broker.port, rate, seconds), "auto")
    inside: list[float] = []
    outside: list[float] = []
    for when, late in lateness:
        began = when - late  # when it was due: was a commit running between then and now?
        (inside if any(start <= when and start + took >= began for start, took in commits) else outside).append(
            late * 1000)
    late_threshold = _pct(outside, 99)
    late_inside = sum(1 for v in inside if v > late_threshold)
    late_all = late_inside + sum(1 for v in outside if v > late_threshold)
    print(f"{len(commits)} commits in {seconds:g} s at {rate:,.0f} msg/s, "
          f"{sum(took for _, took in commits) / max(1, len(commits)) * 1000:.1f} ms each")
    print(_line("during commits", inside))
    print(_line("outside them", outside))
    print(f"later than the outside's p99: {late_inside} of {late_all} during commits "
          f"({len(inside) / max(1, len(lateness)):.1%} of the messages were)")
    ratio = _pct(inside, 99) / _pct(outside, 99) if inside and outside else float("nan")
    print(f"commitlag: {_pct(inside, 99):.2f} ms p99 during commits, ratio {ratio:.2f} vs baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
