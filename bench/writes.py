"""Bytes written to disk per day by the store, for the demo's house and the 1,000-device house.

    python -m bench.writes [--days 35] [--rate 10] [--live-seconds 60] [--live-warmup 60] [--skip-live]

An SD card wears with what is written to it, and SQLite writes whole pages: a commit appends to the WAL every
page it touched (4 KiB each), and a checkpoint copies them into the database. Three parts:

1. **Simulated days in this process** (the figures per day): the real store (``gateway.store.Store``, its
   WAL, its batching, its daily retention pass) fed by the real hub and the real Zigbee2MQTT codec with what
   the simulated house publishes, on a simulated clock that commits every ``commit_interval_s`` simulated
   seconds, as ``hearth run`` does in real time. Bytes written are this process's ``wchar`` in
   /proc/self/io: what SQLite handed to the kernel (nothing else in the process writes), independent of how
   fast the simulation runs. The demo's house (``gateway.sim.demo_house``: its resident's days, its
   Zigbee2MQTT devices; its BLE thermometers, 28 % of its messages, are left out: they come in through
   another adapter) for ``--days`` days: bytes per day, and the database and WAL sizes at days 1, 7, 14, 30
   and the last (history retention and WAL checkpoints keep them bounded). Then one day each with
   ``[store] commit_interval_s`` 30 and 60 (what the setting trades). The 1,000-device house
   (``gateway.sim.scaled_house``, the benchmarks' house, its ``house`` stream at ``--rate`` messages a
   second) for one simulated hour, times 24.
2. **The 1,000-device house in real time** (``--live-seconds``, after ``--live-warmup`` seconds of the same
   traffic: start-up's one-time writes are not a day's): ``hearth run`` as a process of its own, both
   profiles, the same stream at the same rate from a process of its own, on a private Mosquitto; the
   gateway's /proc/<pid>/io ``write_bytes`` (what reached the block layer: the kernel merges rewrites of a
   page that is still dirty, as it does on a Pi) and ``wchar`` over the run, extrapolated to a day, and its
   WAL's frames read from outside as it appends them (pages a commit, by table).
3. The baseline, same run: the bytes of the MQTT payloads the house sent; the ratio says how many bytes
   reach the disk per byte of device traffic.

Last line: ``writes: <MB/day> MB per day (demo's house), ratio <R> vs the house's traffic``.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from adapters.zigbee2mqtt.codec import Zigbee2MqttCodec
from gateway.clock import SimulatedClock
from gateway.config import Config
from gateway.hub import Hub
from gateway.model.types import Command, CommandResult, Update
from gateway.scenes.engine import SceneEngine
from gateway.scenes.notify import RecordingNotifier
from gateway.scenes.setup import engine_settings, load_profiles
from gateway.sim import House, HouseModel, demo_house, house_stream, scaled_house
from gateway.sim.house import BASE_TOPIC
from gateway.store import Retention, Store

DAY_S = 86400.0
START = 1_773_122_400.0  # 2026-03-10 06:00 UTC, a Tuesday morning
DEVICES = 1000
MB = 1_000_000
# Bounds: whatever the arguments, a run ends (a simulated day of the demo's house is seconds here).
MAX_DAYS = 60
MAX_LIVE_S = 300.0
SIZE_DAYS = (1, 7, 14, 30)


def proc_io(pid: int | str = "self") -> dict[str, int]:
    with open(f"/proc/{pid}/io", encoding="ascii") as file:
        return {key: int(value) for key, value in (line.split(":") for line in file)}


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


@dataclass
class DayFigure:
    day: int
    wchar: int  # bytes this process wrote that day
    messages: int
    payload_bytes: int
    commits: int
    db_bytes: int
    wal_bytes: int
    history_changes: int


@dataclass
class Simulation:
    """The store fed by the hub and the Zigbee2MQTT codec, committing every ``commit_interval_s`` simulated
    seconds and running its retention pass daily, as ``Store.run`` does."""

    path: Path
    commit_interval_s: float = 5.0
    retention: Retention = field(default_factory=Retention)
    scenes: bool = True  # the scene engine with both shipped profiles, as a gateway runs it
    period_s: float = DAY_S  # figures are taken at the end of each period (a day; an hour for the large house)
    page_size: int | None = None  # the database made with this page size (None: the store's default)
    history_interval_s: float | None = None  # [store] history_interval_s (None: the history with every commit)
    days: list[DayFigure] = field(default_factory=list)
    breakdown: dict[str, float] = field(default_factory=dict)  # WAL pages a commit, by table (see WalMeter)
    wal_appended: int = 0  # bytes of WAL frames appended (the rest of what was written: checkpoints, headers)

    async def run(self, house: House, messages: Iterator[tuple[float, str, bytes]], days: int) -> list[DayFigure]:
        clock = SimulatedClock(START)
        hub = Hub(clock, areas=house.areas(), tags=house.tags())
        codec = Zigbee2MqttCodec(BASE_TOPIC)
        config = house_config(house)
        wal = Path(f"{self.path}-wal")
        sizes = {} if self.page_size is None else {"page_size": self.page_size}
        async with Store(self.path, clock, commit_interval_s=self.commit_interval_s, retention=self.retention,
                         history_interval_s=self.history_interval_s, **sizes) as store:
            hub.restore(await store.load_devices())
            store.attach(hub)
            self._apply(hub, codec.decode(f"{BASE_TOPIC}/bridge/devices", orjson.dumps(house.bridge_devices())))
            await store.flush()
            meter = WalMeter(self.path)
            engine = None
            if self.scenes:
                # Both shipped profiles, as in `hearth demo` and the benchmarks' gateway: the engine keeps its state
                # (alerts, occupancy, the day's activity, timers) in the store, written at the commits after it
                # changed; its commands are obeyed at once (the codec's devices cannot answer).
                engine = SceneEngine(hub, load_profiles(config), notifier=RecordingNotifier(),
                                     storage=store.kv("scenes"), trace_storage=store.kv("scene_traces"),
                                     settings=engine_settings(config), commit=store.flush_urgent)
                async def send(command: Command) -> CommandResult:
                    return CommandResult("sent", "published")

                def obeyed(command: Command, expected: dict[str, Any]) -> None:
                    hub.apply([Update(command.device_id, command.component, command.capability, attribute, value)
                               for attribute, value in expected.items()])

                hub.set_command_handler("zigbee2mqtt", send)
                hub.after_command = obeyed
                await engine.start()

            async def advance(target: float) -> None:
                while True:  # bounded: each timer that runs is due before target, and the clock only goes forward
                    due = clock.next_due()
                    if due is None or due > target:
                        break
                    clock.advance_to(due)
                    await settle()
                clock.advance_to(target)
                await settle()

            async def settle() -> None:
                for _ in range(3 if engine is None or not engine.has_runs else 20):
                    await asyncio.sleep(0)
            next_commit = START + self.commit_interval_s
            next_history = START + (self.history_interval_s or 0.0)
            day_end = START + self.period_s
            day = 1
            io_at = proc_io()["wchar"]
            count = payload = commits_at = 0
            for t, topic, body in messages:
                while t >= day_end:  # the day's last commit, its retention pass, its figures
                    await advance(day_end)
                    await store.flush()
                    await store.purge()
                    meter.update()
                    stats = store.stats()
                    now_io = proc_io()["wchar"]
                    changes = await self._history_changes(store)
                    self.days.append(DayFigure(day, now_io - io_at, count, payload, stats["commits"] - commits_at,
                                               file_size(self.path), file_size(wal), changes))
                    io_at, count, payload, commits_at = now_io, 0, 0, stats["commits"]
                    day += 1
                    day_end += self.period_s
                    next_commit = max(next_commit, clock.time() + self.commit_interval_s)
                    if day > days:
                        meter.update()
                        self.breakdown = meter.by_table()
                        self.wal_appended = sum(meter.pages.values()) * (24 + meter.page_size)
                        if engine is not None:
                            await engine.stop()
                        return self.days
                if t >= next_commit:
                    # What came in since the last commit is written now; the commits between this one and the
                    # next message would find nothing to write (Store.run skips an empty batch too).
                    await advance(next_commit)
                    with_history = clock.time() >= next_history
                    await store.flush(with_history=with_history)
                    if with_history and self.history_interval_s:
                        next_history = clock.time() + self.history_interval_s
                    meter.update()
                    next_commit += self.commit_interval_s * (math.floor((t - next_commit) / self.commit_interval_s)
                                                             + 1)
                await advance(t)
                self._apply(hub, codec.decode(topic, body))
                await settle()
                count += 1
                payload += len(body)
        return self.days

    @staticmethod
    def _apply(hub: Hub, decoded: Any) -> None:
        for info in decoded.upserts:
            hub.upsert_device(info, "zigbee2mqtt")
        for device_id, online in decoded.availability:
            hub.set_available(device_id, online)
        if decoded.updates:
            hub.apply(decoded.updates)
        for event in decoded.events:
            hub.emit_event(event)

    @staticmethod
    async def _history_changes(store: Store) -> int:
        def count() -> int:
            row = store._connection().execute("SELECT coalesce(sum(changes), 0) FROM history_block").fetchone()
            return int(row[0])

        return await store._in_worker(count)


def house_config(house: House) -> Config:
    """The house's areas and tags, both shipped profiles (contacts: the log), as bench._gateway writes them."""
    return Config.model_validate({
        "profiles": [{"use": "elderly-monitoring", "params": {"contacts": ["log"]}}, {"use": "energy-saving"}],
        "notify": {"log": {"kind": "log"}}, "location": {"timezone": "UTC"},
        "areas": house.areas(), "tags": house.tags(),
    })


class WalMeter:
    """Counts the pages appended to the WAL, by page number, reading the frames each commit added.

    SQLite's WAL format: a 32-byte header (page size at 8, the salts at 16), then frames: a 24-byte header
    (the page number, a non-zero database size on a commit's last frame, the header's salts) and the page.
    After a checkpoint the WAL starts over from its first frame with new salts; a frame with other salts is
    an old one. Every frame is a whole page, whatever changed in it: that is what the card writes."""

    def __init__(self, db_path: Path) -> None:
        self.path = Path(f"{db_path}-wal")
        self.db_path = db_path
        self.salts = b""
        self.offset = 32
        self.pages: dict[int, int] = {}
        self.commits = 0
        self.page_size = 4096

    def update(self) -> None:
        try:
            file = self.path.open("rb")
        except FileNotFoundError:
            return
        with file:
            header = file.read(32)
            if len(header) < 32:
                return
            page_size = self.page_size = int.from_bytes(header[8:12], "big")
            if header[16:24] != self.salts:  # a new cycle (or the first): from its first frame
                self.salts, self.offset = header[16:24], 32
            file.seek(self.offset)
            for _ in range(1_000_000):  # bounded: a WAL of a million frames is far beyond any here
                frame = file.read(24)
                if len(frame) < 24 or frame[8:16] != self.salts or len(file.read(page_size)) < page_size:
                    break
                page = int.from_bytes(frame[0:4], "big")
                self.pages[page] = self.pages.get(page, 0) + 1
                self.commits += int.from_bytes(frame[4:8], "big") != 0
                self.offset += 24 + page_size

    def owners(self) -> dict[int, str]:
        """The table or index each page of the database belongs to now (``dbstat``)."""
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True)
        try:
            return dict(conn.execute("SELECT pageno, name FROM dbstat").fetchall())
        finally:
            conn.close()

    def by_table(self) -> dict[str, float]:
        """Pages a commit, by the table or index each page belongs to now."""
        owner = self.owners()
        totals: dict[str, float] = {}
        for page, count in self.pages.items():
            name = owner.get(page, "(freed)")
            totals[name] = totals.get(name, 0) + count
        return {name: count / max(self.commits, 1) for name, count in sorted(totals.items(), key=lambda kv: -kv[1])}


def demo_messages(days: int) -> Iterator[tuple[float, str, bytes]]:
    """What the demo's house publishes on Zigbee2MQTT's topics, in time order, for ``days`` days and a bit."""
    model = HouseModel(demo_house(), start=START, tz=ZoneInfo("UTC"), seed=1, bad_morning_day=1)
    prefix = BASE_TOPIC + "/"
    for message in model.start():
        if message.topic.startswith(prefix):
            yield message.t, message.topic, message.payload
    t = START
    while t < START + (days + 1) * DAY_S:
        t += 3600.0
        for message in model.advance_to(t):
            if message.topic.startswith(prefix):
                yield message.t, message.topic, message.payload


def large_messages(rate: float, seconds: float) -> Iterator[tuple[float, str, bytes]]:
    """The 1,000-device house's ``house`` stream at ``rate`` messages a second, evenly spaced."""
    house = scaled_house(DEVICES)
    for i, (topic, payload) in enumerate(house_stream(house, int(rate * seconds) + 1)):
        yield START + i / rate, topic, payload


def simulate(house: House, messages: Iterator[tuple[float, str, bytes]], days: int,
             **kwargs: Any) -> tuple[list[DayFigure], Simulation]:
    with tempfile.TemporaryDirectory(prefix="hearth-writes-") as tmp:
        simulation = Simulation(Path(tmp) / "hearth.db", **kwargs)
        return asyncio.run(simulation.run(house, messages, days)), simulation


def breakdown_text(simulation: Simulation, figures: list[DayFigure]) -> str:
    total = sum(simulation.breakdown.values())
    written = sum(f.wchar for f in figures)
    shown = ", ".join(f"{name} {count:.1f}" for name, count in simulation.breakdown.items() if count >= 0.05)
    return (f"{total:.1f} pages a commit ({shown}); WAL appends {simulation.wal_appended / max(written, 1):.0%} "
            "of the bytes written, checkpoints (pages copied into the database) the rest")


def publish_paced(port: int, rate: float, seconds: float) -> None:
    """The 1,000-device house's stream at ``rate`` messages a second for ``seconds``, QoS 0, evenly spaced."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from bench._broker import HOST

    messages = list(house_stream(scaled_house(DEVICES), int(rate * seconds), seed=1))
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-writes-{os.getpid()}")
    client.connect(HOST, port, keepalive=60)
    client.loop_start()
    try:
        started = time.monotonic()
        for i, (topic, payload) in enumerate(messages):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            client.publish(topic, payload, qos=0)
    finally:
        client.loop_stop()
        client.disconnect()


def live_large(rate: float, seconds: float, warmup_s: float) -> dict[str, Any]:
    """``hearth run`` with the 1,000-device house in real time: its /proc/<pid>/io over ``seconds`` of traffic."""
    from bench._broker import BenchBroker
    from bench._gateway import GatewayProcess, announce, free_port, write_config

    house = scaled_house(DEVICES)
    with BenchBroker() as broker, tempfile.TemporaryDirectory(prefix="hearth-writes-live-") as tmp:
        data_dir = Path(tmp)
        config = write_config(data_dir / "config.toml", broker_port=broker.port, data_dir=data_dir, house=house,
                              api_port=free_port(), commit_interval_s=5.0)
        announce(broker.port, house)
        db, wal = data_dir / "hearth.db", data_dir / "hearth.db-wal"
        with GatewayProcess(config, data_dir) as gateway:
            gateway.wait_ready()
            gateway.wait_devices(DEVICES)
            # Start-up is not a day: the 1,000 devices' descriptions and first states, the bridge's definitions
            # (a megabyte of JSON in the adapter's storage), the attributes each device reports for the first time
            # (its description grows), and the first checkpoint that copies all of it into the database. The
            # traffic runs ``warmup_s`` before the measurement starts.
            # Not bench._traffic: it cycles a pool of its first 30 s of messages, which repeat the same values at
            # this rate (nothing to write after the first cycle). Every message here is the stream's next.
            publisher = threading.Thread(target=publish_paced, args=(broker.port, rate, warmup_s + seconds),
                                         name="bench-writes-traffic", daemon=True)
            publisher.start()
            meter = WalMeter(db)
            try:
                time.sleep(warmup_s)
                meter.update()
                meter.pages.clear()
                meter.commits = 0
                _status, health = gateway.get("/healthz")
                commits_before = float(health.get("store", {}).get("commits", 0))
                before, started = proc_io(gateway.pid), time.monotonic()
                sizes_before = file_size(db) + file_size(wal)
                # The WAL read from outside as the gateway appends to it (each cycle of it is ~4 MB: read twice a
                # second, no frame is missed before a checkpoint starts it over).
                deadline = time.monotonic() + seconds + 60
                while publisher.is_alive() and time.monotonic() < deadline:
                    meter.update()
                    time.sleep(0.5)
            finally:
                publisher.join(timeout=seconds + warmup_s + 60)
            for _ in range(11):  # the last messages' commit
                meter.update()
                time.sleep(0.5)
            after, elapsed = proc_io(gateway.pid), time.monotonic() - started
            _status, health = gateway.get("/healthz")
            return {"seconds": elapsed, "write_bytes": after["write_bytes"] - before["write_bytes"],
                    "cancelled": after["cancelled_write_bytes"] - before["cancelled_write_bytes"],
                    "wchar": after["wchar"] - before["wchar"], "db": file_size(db), "wal": file_size(wal),
                    "growth": file_size(db) + file_size(wal) - sizes_before,
                    "commits": float(health.get("store", {}).get("commits", 0)) - commits_before,
                    "breakdown": meter.by_table(), "wal_appended": sum(meter.pages.values()) * (24 + meter.page_size)}


def mb(value: float) -> str:
    return f"{value / MB:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=35, help="simulated days of the demo's house (default 35)")
    parser.add_argument("--rate", type=float, default=10.0,
                        help="messages a second of the 1,000-device house (default 10: a report per device per 100 s)")
    parser.add_argument("--live-seconds", type=float, default=60.0, help="real seconds of the live run (default 60)")
    parser.add_argument("--live-warmup", type=float, default=60.0,
                        help="real seconds of traffic before the live measurement starts (default 60: start-up's "
                             "one-time writes are not a day's)")
    parser.add_argument("--skip-live", action="store_true", help="only the simulated days")
    args = parser.parse_args(argv)
    days = max(1, min(args.days, MAX_DAYS))
    started = time.monotonic()

    house = demo_house()
    figures, month = simulate(house, demo_messages(days), days)
    first = figures[0]
    steady = figures[1:] or figures
    per_day = sum(f.wchar for f in steady) / len(steady)
    traffic = sum(f.payload_bytes for f in steady) / len(steady)
    commits = sum(f.commits for f in steady) / len(steady)
    print(f"demo's house ({len(house.zigbee)} Zigbee2MQTT devices, {first.messages} messages on day 1), "
          f"commit_interval_s = 5, default retention, {days} simulated days:")
    print(f"  written: day 1 {mb(first.wchar)}; days 2-{days}: {mb(per_day)} a day on average "
          f"({commits:,.0f} commits a day, {per_day / max(commits, 1) / 1024:.1f} KiB a commit)")
    for f in figures:
        if f.day in SIZE_DAYS or f.day == len(figures):
            print(f"  day {f.day:>2}: database {mb(f.db_bytes)}, WAL {mb(f.wal_bytes)}, "
                  f"{f.history_changes:,} changes of history kept")
    print(f"  WAL at most {mb(max(f.wal_bytes for f in figures))}; database at most "
          f"{mb(max(f.db_bytes for f in figures))}")
    print(f"  WAL frames (whole pages) over the {days} days: {breakdown_text(month, figures)}")
    short = Retention(history_days=14, presence_days=14, energy_days=14)
    kept, _ = simulate(house, demo_messages(days), days, retention=short)
    print("  the same with every kind of history kept 14 days (retention_days, presence_retention_days and "
          "energy_retention_days = 14):")
    print("  " + "; ".join(f"day {f.day}: database {mb(f.db_bytes)}, WAL {mb(f.wal_bytes)}"
                           for f in kept if f.day in SIZE_DAYS or f.day == len(kept)))

    for interval in (30.0, 60.0):
        (one,), _ = simulate(house, demo_messages(1), 1, commit_interval_s=interval)
        print(f"  commit_interval_s = {interval:g}: day 1 {mb(one.wchar)} ({one.commits:,} commits), "
              f"{first.wchar / max(one.wchar, 1):.1f}x less than at 5 s")

    (big_pages,), big = simulate(house, demo_messages(1), 1, page_size=4096)
    print(f"  a database made with SQLite's default 4 KiB pages (the store makes 1 KiB ones): day 1 "
          f"{mb(big_pages.wchar)}, {big_pages.wchar / max(first.wchar, 1):.1f}x more "
          f"({breakdown_text(big, [big_pages])})")
    for history_s in (60.0, 300.0):
        (deferred,), later = simulate(house, demo_messages(1), 1, history_interval_s=history_s)
        print(f"  history_interval_s = {history_s:g} (the state still every 5 s): day 1 {mb(deferred.wchar)}, "
              f"{first.wchar / max(deferred.wchar, 1):.1f}x less ({breakdown_text(later, [deferred])})")

    # Two simulated hours: the first has the 1,000 devices' descriptions and first states (start-up, written
    # once), the second is the figure.
    (warm, hour), large = simulate(scaled_house(DEVICES), large_messages(args.rate, 2 * 3600.0 + 1), 2,
                                          period_s=3600.0)
    print(f"1,000-device house, {args.rate:g} msg/s of its house stream, commit_interval_s = 5:")
    print(f"  simulated hour: {mb(hour.wchar)} written -> {mb(hour.wchar * 24)} a day; {hour.commits:,} commits, "
          f"{hour.wchar / max(hour.commits, 1) / 1024:.1f} KiB a commit; traffic {mb(hour.payload_bytes * 24)} "
          f"a day; after 2 h: database {mb(hour.db_bytes)}, WAL {mb(hour.wal_bytes)}")
    print(f"  WAL frames (both hours): {breakdown_text(large, [warm, hour])}")

    if not args.skip_live:
        seconds = max(10.0, min(args.live_seconds, MAX_LIVE_S))
        live = live_large(args.rate, seconds, max(0.0, min(args.live_warmup, MAX_LIVE_S)))
        scale = DAY_S / live["seconds"]
        shown = ", ".join(f"{name} {count:.1f}" for name, count in live["breakdown"].items() if count >= 0.05)
        print(f"  live (hearth run, real time, {live['seconds']:.0f} s after {args.live_warmup:g} s of warm-up, "
              f"{live['commits']:.0f} commits): "
              f"write_bytes {mb(live['write_bytes'])} (cancelled {mb(live['cancelled'])}), wchar "
              f"{mb(live['wchar'])} -> {mb(live['write_bytes'] * scale)} a day by write_bytes, "
              f"{mb(live['wchar'] * scale)} by wchar; database {mb(live['db'])}, WAL {mb(live['wal'])}")
        print(f"  live WAL frames: {sum(live['breakdown'].values()):.1f} pages a commit ({shown}); WAL appends "
              f"{live['wal_appended'] / max(live['wchar'], 1):.0%} of wchar")
    print(f"baseline (same run): the demo's house sends {mb(traffic)} of MQTT payload a day on these topics")
    print(f"({time.monotonic() - started:.0f} s)")
    print(f"writes: {per_day / MB:.1f} MB per day (demo's house), ratio {per_day / max(traffic, 1):.1f} "
          "vs the house's traffic")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
