"""The store under a steady load: state changes written per second with batching, and SQLite commits per
minute at that rate (the SD-card figure), against a writer that commits every change on its own.

    python -m bench.store [--seconds 30] [--rate 2000]

The whole gateway (as in bench/ingest.py) takes ``--rate`` msg/s of the simulated house's traffic for
``--seconds``; every message changes about three values, each a change in the history and a state row.
Reported: state changes/s the store wrote (changes committed), commits per minute, the store's default
interval, and the worker's time per commit. Baseline (same run, same disk): a bare sqlite3 writer that
commits each change in a transaction of its own, as a history row and a state row (the first schema's
tables: what a store without batching does), for 3 s: how many changes/s it sustains.
A burst of ``--messages`` (as bench/ingest.py) gives the sustained maximum: changes written per second from
the start of the drain to the end of its last commit. Last line:
``store: <changes/s> changes/s written, ratio <R> vs baseline`` (R = that maximum over the
one-commit-per-change writer's; commits per minute at ``--rate`` are on the lines before).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from bench import ingest
from bench._broker import BenchBroker
from bench._gateway import announce
from gateway.sim import scaled_house
from gateway.store import MIGRATIONS

_NAIVE_SECONDS = 3.0


def naive_writer(path: Path, seconds: float = _NAIVE_SECONDS) -> float:
    """Changes/s of a writer that commits every state change (WAL, synchronous=NORMAL, like the store)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            t = time.time()
            device = f"zigbee2mqtt:0x00124b00{count % 1000:08x}"
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO history VALUES (?, ?, 'main', 'connectivity', 'lqi', ?)", (t, device, str(count)))
            conn.execute("INSERT INTO state VALUES (?, 'main', 'connectivity', 'lqi', ?, ?) ON CONFLICT DO UPDATE "
                         "SET value = excluded.value, t = excluded.t", (device, str(count), t))
            conn.execute("COMMIT")
            count += 1
        return count / (time.perf_counter() - started)
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--messages", type=int, default=100_000, help="the burst, for the sustained maximum")
    args = parser.parse_args(argv)
    seconds = max(2.0, min(args.seconds, 600.0))
    with BenchBroker(ingest.BROKER_CONFIG) as broker, tempfile.TemporaryDirectory(prefix="hearth-store-") as tmp:
        workdir = Path(tmp)
        announce(broker.port, scaled_house(ingest.DEVICES))
        naive = naive_writer(workdir / "naive.db")
        burst = ingest.measure_gateway(workdir, broker.port, max(1, min(args.messages, 2_000_000)))
        # The stress stream (every value changing at every message): the heaviest writing per message.
        _cpu, delta = ingest.paced_gateway(workdir, broker.port, args.rate, seconds, ingest.STRESS_STREAM)
    # As fast as the house can send: every change of the drain written, up to the last commit.
    sustained = burst.counts["changes"] / (burst.counts["flushed_ms"] / 1000)
    wall = delta["wall_ms"] / 1000
    written = delta["rows"]
    changes_per_s = delta["changes"] / wall
    commits_per_min = delta["commits"] / wall * 60
    print(f"one commit per change (bare sqlite3, same disk): {naive:,.0f} changes/s at most")
    print(f"gateway at {args.rate:,.0f} msg/s of the {ingest.STRESS_STREAM} stream: {changes_per_s:,.0f} state "
          f"changes/s, {written:,} rows written in "
          f"{delta['commits']} commits = {commits_per_min:.1f} commits/min (the SD-card figure; one per "
          f"commit_interval_s = 5 s by default), {delta['commit_ms'] / max(1, delta['commits']):.0f} ms per commit "
          f"(wall time in the store's worker)")
    print(f"burst of {burst.received:,} messages: {burst.counts['changes']:,} changes written in "
          f"{burst.counts['flushed_ms'] / 1000:.2f} s (drain and final commit) = {sustained:,.0f} changes/s sustained, "
          f"{burst.counts['rows']:,} rows in {burst.counts['commits']} commits")
    print(f"store: {sustained:,.0f} changes/s written, ratio {sustained / naive:.2f} vs baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
