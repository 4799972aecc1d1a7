"""The store's commits as its history grows: time and pages a commit, the first commits against the last, in
the same run; and the same commits with the index by device that schema 3 had, for comparison.

    python -m bench.storeage [--commits 120] [--devices 1000] [--changes 22] [--no-compare]

The store (``gateway.store.Store``: its worker thread, its WAL, its 1 KiB pages) on a fresh file in this
process, attached to a hub's event bus, takes ``--commits`` batches one after the other, each 5 s of
simulated time after the last and written by ``Store.flush()``, as ``hearth run`` commits every 5 s. A batch
has the shape of the stress stream's commits at 2,000 msg/s in the 1,000-device house (measured there: 1,000
devices, 21,900 changes, 3,250 state values in a 5 s commit): every device changes ``--changes`` times, three
attributes in turn. Reported for the first and the last tenth of the commits: the store worker's CPU time
and wall time a commit, and the pages each commit appended to the WAL by table and index (``WalMeter`` of
bench/writes.py; whole pages are what an SD card writes). The baseline is the first tenth: a commit should
cost the same whatever history is kept. Then (unless ``--no-compare``) the same on a second fresh file with
the index ``history_block_device_t (device_id, t_last)`` put back: schema 3 found a device's history through
it, and its entry a device a commit landed on a page of its own once the index had more pages than the
commit had devices, so that the commit's cost grew with the history kept (schema 4 follows a chain of blocks
from the device's newest instead: gateway/store.py, MIGRATIONS).
Last line: ``storeage: <ms> ms a commit after <N> commits (<ms> with schema 3's index), ratio <R> vs baseline``
(R: the last tenth's worker CPU a commit over the first tenth's).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.writes import WalMeter
from gateway.bus import StateChanged
from gateway.clock import SimulatedClock
from gateway.hub import Hub
from gateway.store import Store

COMMIT_INTERVAL_S = 5.0
_ATTRIBUTES = (("power_meter", "watts"), ("temperature", "celsius"), ("contact", "open"))
_START = 1_800_000_000.0


@dataclass
class Tenth:
    cpu_ms: float
    wall_ms: float
    pages: dict[str, float]

    def line(self, name: str) -> str:
        top = ", ".join(f"{table} {count:.0f}" for table, count in list(self.pages.items())[:4])
        return (f"{name}: {self.cpu_ms:.1f} ms of the worker's CPU a commit, {self.wall_ms:.1f} ms wall, "
                f"{sum(self.pages.values()):.0f} WAL pages a commit ({top})")


def _publish_batch(hub: Hub, devices: list[str], commit: int, changes: int, rng: random.Random) -> None:
    t0 = _START + commit * COMMIT_INTERVAL_S
    for index, device_id in enumerate(devices):
        for k in range(changes):
            capability, attribute = _ATTRIBUTES[k % len(_ATTRIBUTES)]
            value: float | bool = (k % 2 == 0) if attribute == "open" else round(rng.uniform(0, 3000), 1)
            t = t0 + (k + index / len(devices)) * COMMIT_INTERVAL_S / changes
            hub.bus.publish(StateChanged(t, device_id, "main", capability, attribute, None, value))


async def _run(path: Path, commits: int, devices: int, changes: int, *, old_index: bool) -> tuple[Tenth, Tenth]:
    clock = SimulatedClock(_START)
    hub = Hub(clock)
    rng = random.Random(1)
    names = [f"zigbee2mqtt:0x{0x00158D0000000000 + n:016x}" for n in range(devices)]
    tenth = max(1, commits // 10)
    samples: list[tuple[float, float, dict[int, int]]] = []
    async with Store(path, clock, commit_interval_s=COMMIT_INTERVAL_S) as store:
        # The worker's CPU time is read in the worker (it runs nothing else meanwhile): bench only.
        if old_index:
            await store._in_worker(lambda: store._connection().execute(
                "CREATE INDEX history_block_device_t ON history_block (device_id, t_last)"))
        store.attach(hub)
        meter = WalMeter(path)
        meter.update()
        for commit in range(commits):
            _publish_batch(hub, names, commit, changes, rng)
            clock.advance_to(_START + (commit + 1) * COMMIT_INTERVAL_S)
            cpu = await store._in_worker(time.thread_time)
            wall = time.perf_counter()
            await store.flush()
            wall = time.perf_counter() - wall
            cpu = await store._in_worker(time.thread_time) - cpu
            before = dict(meter.pages)
            meter.update()
            if commit < tenth or commit >= commits - tenth:
                samples.append((cpu, wall, {page: n - before.get(page, 0) for page, n in meter.pages.items()
                                            if n > before.get(page, 0)}))
    owner = meter.owners()

    def summary(part: list[tuple[float, float, dict[int, int]]]) -> Tenth:
        pages: dict[str, float] = {}
        for _, _, frames in part:
            for page, count in frames.items():
                name = owner.get(page, "(freed)")
                pages[name] = pages.get(name, 0) + count / len(part)
        return Tenth(sum(c for c, _, _ in part) / len(part) * 1000, sum(w for _, w, _ in part) / len(part) * 1000,
                     dict(sorted(pages.items(), key=lambda kv: -kv[1])))

    return summary(samples[:tenth]), summary(samples[tenth:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=120)
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=22, help="changes a device in each commit")
    parser.add_argument("--no-compare", action="store_true", help="skip the run with schema 3's index by device")
    args = parser.parse_args(argv)
    commits = max(10, min(args.commits, 5000))
    devices = max(1, min(args.devices, 20_000))
    changes = max(1, min(args.changes, 1000))
    with tempfile.TemporaryDirectory(prefix="hearth-storeage-") as tmp:
        first, last = asyncio.run(_run(Path(tmp) / "store.db", commits, devices, changes, old_index=False))
        old = None if args.no_compare else asyncio.run(
            _run(Path(tmp) / "indexed.db", commits, devices, changes, old_index=True))
    print(f"{commits} commits of {devices:,} devices x {changes} changes, 5 s of history each")
    print(first.line("the store, first tenth (baseline)             "))
    print(last.line("the store, last tenth                         "))
    compared = ""
    if old is not None:
        print(old[0].line("with schema 3's index by device, first tenth  "))
        print(old[1].line("with schema 3's index by device, last tenth   "))
        compared = (f" ({old[1].wall_ms:.1f} ms with schema 3's index by device: {old[1].cpu_ms / old[0].cpu_ms:.2f}x "
                    f"its first tenth's CPU)")
    print(f"storeage: {last.wall_ms:.1f} ms a commit after {commits} commits{compared}, "
          f"ratio {last.cpu_ms / first.cpu_ms:.2f} vs baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
