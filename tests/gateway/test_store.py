from __future__ import annotations

import asyncio
import json
import math
import os
import sqlite3
import stat
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import store as store_module
from gateway.clock import SimulatedClock
from gateway.errors import StoreError
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, Device, DeviceInfo, Update
from gateway.store import DESCRIBED_FIELDS, Store

START = 1_700_000_000.0
DAY_S = 86400.0


def support(attributes: set[str], commands: set[str] = frozenset(), **limits: tuple[float | None, float | None]) \
        -> CapabilitySupport:
    return CapabilitySupport(frozenset(attributes), frozenset(commands), dict(limits))


BULB = DeviceInfo(
    id="zigbee2mqtt:0x00158d0001a2b3c4", name="Desk lamp", source="zigbee2mqtt", manufacturer="IKEA",
    model="LED1545G12", sw_version="2.3.093", serial="0x00158d0001a2b3c4", suggested_area="office",
    aliases=("desk_lamp", "lamp 2"),
    components={"main": {
        "on_off": support({"on"}, {"on", "off", "toggle"}),
        "level": support({"percent"}, {"set"}),
        "color_temperature": support({"kelvin", "min_kelvin", "max_kelvin"}, {"set"}, kelvin=(2200, 6500.5)),
    }},
)
SENSOR = DeviceInfo(
    id="ble:a4:c1:38:00:11:22", name="Bathroom", source="ble", mac="a4:c1:38:00:11:22", via="ble:hci0",
    components={"main": {
        "temperature": support({"celsius"}),
        "humidity": support({"percent"}),
        "battery": support({"percent", "low"}, percent=(None, 100)),
    }},
)
PLUG = DeviceInfo(
    id="shelly:shellyplus2pm-aabbcc", name="Kitchen relay", source="shelly", hw_version="rev2",
    components={
        "main": {"on_off": support({"on"}, {"on", "off", "toggle"})},
        "l2": {"on_off": support({"on"}, {"on", "off", "toggle"}), "power_meter": support({"watts", "volts"})},
    },
)
MISC = DeviceInfo(
    id="homie:hall", name="Hall", source="homie",
    components={"main": {
        "thermostat": support({"mode", "target_celsius"}, {"set_mode", "set_target"}, target_celsius=(5, 30)),
        "fan": support({"preset"}, {"set_preset"}),
        "button": support({"button", "last_event"}),
        "connectivity": support({"last_seen"}),
    }},
)


def make_hub(clock: SimulatedClock) -> Hub:
    hub = Hub(clock, areas={"bathroom": "upstairs bathroom"})
    hub.upsert_device(BULB, "zigbee2mqtt")
    hub.upsert_device(SENSOR, "ble")
    hub.upsert_device(PLUG, "shelly")
    hub.upsert_device(MISC, "homie")
    hub.apply([
        Update(BULB.id, "main", "on_off", "on", True),
        Update(BULB.id, "main", "level", "percent", 40),  # an int must come back an int
        Update(BULB.id, "main", "color_temperature", "kelvin", 2700.0),  # and a float a float
        Update(SENSOR.id, "main", "temperature", "celsius", -3.25),
        Update(SENSOR.id, "main", "humidity", "percent", None),
        Update(SENSOR.id, "main", "battery", "low", False),
        Update(PLUG.id, "l2", "power_meter", "watts", math.inf),
        Update(PLUG.id, "l2", "on_off", "on", False),
        Update(MISC.id, "main", "thermostat", "mode", "heat"),
        Update(MISC.id, "main", "fan", "preset", "nüit ☾ \"quoted\""),
        Update(MISC.id, "main", "button", "button", 2),
        Update(MISC.id, "main", "connectivity", "last_seen", "2024-01-02T03:04:05Z"),
        # not in the device's support: the hub grows the support on its own
        Update(SENSOR.id, "main", "pressure", "hpa", 1013.2),
    ])
    hub.set_available(BULB.id, True)
    hub.set_available(PLUG.id, False)
    hub.devices[MISC.id].tags = ("heating", "ground floor")
    return hub


def db_rows(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """What another process would see in the file: committed data only.

    ``history`` is there as a row per change, unpacked from the stored blocks (in the order written,
    so ``ORDER BY rowid`` is the order of the changes), each value as its JSON text."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("CREATE TEMP TABLE history (t REAL, device_id TEXT, component TEXT, capability TEXT, "
                     "attribute TEXT, value TEXT)")
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'history_block'").fetchone():
            for device_id, text in conn.execute("SELECT device_id, rows FROM history_block ORDER BY rowid").fetchall():
                changes = json.loads(text)
                for i in range(0, len(changes), 5):
                    t, component, capability, attribute, value = changes[i:i + 5]
                    conn.execute("INSERT INTO temp.history VALUES (?, ?, ?, ?, ?, ?)",
                                 (t, device_id, component, capability, attribute, json.dumps(value)))
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.002)


async def reload(path: Path, clock: SimulatedClock) -> list[Device]:
    async with Store(path, clock) as store:
        return await store.load_devices()


def sorted_devices(hub: Hub) -> list[Device]:
    return sorted(hub.devices.values(), key=lambda d: d.id)


def test_description_covers_every_device_field() -> None:
    # A field added to Device must be persisted on purpose (or listed as deliberately derived).
    assert {f.name for f in fields(Device)} == DESCRIBED_FIELDS


async def test_round_trip_restores_devices_exactly(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    assert hub.devices[SENSOR.id].support["main"]["pressure"].attributes == {"hpa"}
    async with Store(path, clock) as store:
        store.attach(hub)
        await store.flush()
        clock.advance_to(START + 60)
        hub.apply([Update(BULB.id, "main", "level", "percent", 55.5), Update(MISC.id, "main", "button", "button", 0)])
        hub.set_device_meta(BULB.id, name="Desk lamp (left)", area="study")
        hub.set_available(SENSOR.id, True)
        await store.flush()

    restored = await reload(path, clock)
    assert restored == sorted_devices(hub)
    lamp = next(d for d in restored if d.id == BULB.id)
    assert lamp.support["main"]["color_temperature"].limits == {"kelvin": (2200, 6500.5)}
    assert type(lamp.value("main", "color_temperature", "kelvin")) is float
    assert lamp.last_update == START + 60
    assert [d.available for d in restored] == [True, None, False, True]  # sorted: ble, homie, shelly, zigbee


async def test_restored_hub_reattached_writes_nothing_new(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
        await store.flush()
    before = db_rows(path, "SELECT * FROM state ORDER BY 1, 2, 3, 4")
    clock.advance_to(START + 3600)
    async with Store(path, clock) as store:
        second = Hub(clock)
        second.restore(await store.load_devices())
        store.attach(second)
        await store.flush()
        assert sorted_devices(second) == sorted_devices(hub)
    # unchanged values keep the time they were set; no history rows for a restart
    assert db_rows(path, "SELECT * FROM state ORDER BY 1, 2, 3, 4") == before
    assert db_rows(path, "SELECT count(*) FROM history") == [(0,)]


async def test_nan_survives(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    hub = make_hub(clock)
    async with Store(tmp_path / "hearth.db", clock) as store:
        store.attach(hub)
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", math.nan)])
        await store.flush()
    restored = {d.id: d for d in await reload(tmp_path / "hearth.db", clock)}
    assert math.isnan(restored[SENSOR.id].value("main", "temperature", "celsius"))


async def test_commits_once_per_interval_and_not_before(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock, commit_interval_s=5.0) as store:
        store.attach(hub)
        task = asyncio.create_task(store.run(), name="store-commits")
        await asyncio.sleep(0)
        for i in range(100):
            hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 20 + i / 10)])
        clock.advance_to(START + 4.99)
        await asyncio.sleep(0.05)
        assert store.stats()["commits"] == 0
        assert db_rows(path, "SELECT count(*) FROM devices") == [(0,)]
        assert db_rows(path, "SELECT count(*) FROM history") == [(0,)]
        assert store.stats()["pending"] > 100

        clock.advance_to(START + 5.0)
        await wait_until(lambda: store.stats()["commits"] == 1)
        stats = store.stats()
        assert stats["pending"] == 0
        assert stats["commit_failures"] == 0
        assert stats["db_bytes"] > 0
        assert stats["last_commit_duration_s"] >= 0
        assert stats["commit_seconds_total"] == stats["last_commit_duration_s"]
        assert db_rows(path, "SELECT count(*) FROM history") == [(100,)]
        assert db_rows(path, "SELECT count(*) FROM devices") == [(4,)]

        # an idle interval commits nothing
        clock.advance_to(START + 10.0)
        await asyncio.sleep(0.05)
        assert store.stats()["commits"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_state_is_coalesced_history_is_not(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
        for i in range(100):
            clock.advance_to(START + i)
            hub.apply([Update(BULB.id, "main", "level", "percent", i)])
        # not committed yet, but history already shows it
        pending = await store.history(BULB.id)
        assert [row["value"] for row in pending] == list(range(100))
        await store.flush()
        assert db_rows(path, "SELECT value, t FROM state WHERE device_id = ? AND attribute = 'percent'",
                       (BULB.id,)) == [("99", START + 99)]
        rows = await store.history(BULB.id)
        assert [row["value"] for row in rows] == list(range(100))
        assert rows[0] == {"t": START, "device_id": BULB.id, "component": "main", "capability": "level",
                           "attribute": "percent", "value": 0}
        assert [row["value"] for row in await store.history(BULB.id, limit=3)] == [97, 98, 99]
        window = await store.history(BULB.id, since=START + 10, until=START + 20)
        assert [row["t"] for row in window] == [START + t for t in range(10, 20)]
        assert await store.history("nobody:here") == []
        assert store.stats()["commits"] == 1


async def test_a_commit_of_many_devices_writes_each_value_once_and_all_their_history(tmp_path: Path) -> None:
    # Rows go to SQLite several to a statement (the worker lets go of the GIL per statement): a commit of more
    # than fill one, and a last one partly full, lose nothing, and a value that did not change is not rewritten.
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = Hub(clock)
    sensors = [DeviceInfo(id=f"ble:a4:c1:38:00:{n // 256:02x}:{n % 256:02x}", name=f"Sensor {n}", source="ble",
                          components={"main": {"temperature": support({"celsius"}), "humidity": support({"percent"})}})
               for n in range(150)]
    for info in sensors:
        hub.upsert_device(info, "ble")
    async with Store(path, clock) as store:
        store.attach(hub)
        for step in range(3):
            clock.advance_to(START + step)
            hub.apply([Update(info.id, "main", "temperature", "celsius", 20.0 + step + n / 1000)
                       for n, info in enumerate(sensors)])
            hub.apply([Update(info.id, "main", "humidity", "percent", 50) for info in sensors])
        await store.flush()
        stored = dict(db_rows(path, "SELECT device_id, value FROM state WHERE attribute = 'celsius'"))
        assert stored == {info.id: repr(22.0 + n / 1000) for n, info in enumerate(sensors)}
        assert db_rows(path, "SELECT count(*) FROM state WHERE attribute = 'percent' AND value = '50'") == [(150,)]
        assert db_rows(path, "SELECT count(*) FROM history WHERE attribute = 'celsius'") == [(450,)]
        assert db_rows(path, "SELECT count(*) FROM history WHERE attribute = 'percent'") == [(150,)]
        unchanged = db_rows(path, "SELECT device_id, t FROM state WHERE attribute = 'percent' ORDER BY device_id")
        clock.advance_to(START + 10)
        hub.apply([Update(info.id, "main", "humidity", "percent", 50) for info in sensors])  # no change
        await store.flush()
        assert db_rows(path, "SELECT device_id, t FROM state WHERE attribute = 'percent' ORDER BY device_id") \
            == unchanged


async def test_history_merges_stored_and_pending_rows(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    hub = make_hub(clock)
    async with Store(tmp_path / "hearth.db", clock) as store:
        store.attach(hub)
        clock.advance_to(START + 1)
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 1.0)])
        await store.flush()
        clock.advance_to(START + 2)
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 2.0)])
        rows = await store.history()
        assert [(row["t"], row["value"]) for row in rows] == [(START + 1, 1.0), (START + 2, 2.0)]
        assert [row["value"] for row in await store.history(limit=1)] == [2.0]


async def test_the_history_can_be_written_less_often_than_the_state(tmp_path: Path) -> None:
    """``history_interval_s`` (SD-card wear, docs/storage.md): the commits between two writes of the history
    write the state; the history waits, readable as pending rows, and goes with the next due commit or a flush."""
    clock = SimulatedClock(START)
    hub = make_hub(clock)
    path = tmp_path / "hearth.db"

    def stored(table: str) -> int:
        conn = sqlite3.connect(path)
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        finally:
            conn.close()

    async with Store(path, clock, commit_interval_s=5.0, history_interval_s=60.0) as store:
        store.attach(hub)
        loop = asyncio.create_task(store.run())
        await asyncio.sleep(0)
        for i in range(6):  # half a minute of readings, a commit every 5 s
            clock.advance_to(START + 5 * i + 1)
            hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 20.0 + i)])
            clock.advance_to(START + 5 * (i + 1))
            await asyncio.sleep(0.05)
        assert stored("state") > 0 and stored("history_block") == 0  # the state on disk, the history waiting
        assert [row["value"] for row in await store.history()] == [20.0 + i for i in range(6)]  # yet readable
        for i in range(7):  # past the minute: the history goes with the next commit
            clock.advance_to(START + 35 + 5 * i)
            await asyncio.sleep(0.05)
        assert stored("history_block") >= 1
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 30.0)])
        await store.flush()  # a flush writes everything (an export, a backup, the way down)
        loop.cancel()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT sum(changes) FROM history_block").fetchone()[0] == 7
        assert conn.execute("PRAGMA page_size").fetchone()[0] == store_module.DEFAULT_PAGE_SIZE == 1024
    finally:
        conn.close()


async def test_a_database_keeps_the_page_size_it_was_made_with(tmp_path: Path) -> None:
    path = tmp_path / "hearth.db"
    async with Store(path, SimulatedClock(START), page_size=4096):
        pass
    async with Store(path, SimulatedClock(START)):  # the default is 1 KiB now: an old database stays as it is
        pass
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA page_size").fetchone()[0] == 4096
    finally:
        conn.close()


async def test_retention_purges_old_history(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock, retention_days=30) as store:
        store.attach(hub)
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 1.0)])
        await store.flush()
        clock.advance_to(START + 29 * DAY_S)
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 2.0)])
        await store.flush()
        assert await store.purge_history() == 0
        clock.advance_to(START + 30 * DAY_S + 1)
        assert await store.purge_history() == 1
        assert [row["value"] for row in await store.history()] == [2.0]
        assert store.stats()["history_purged"] == 1
        # the last state is not history: it stays
    restored = {d.id: d for d in await reload(path, clock)}
    assert restored[SENSOR.id].value("main", "temperature", "celsius") == 2.0


async def test_run_purges_daily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "PURGE_CHUNK_BLOCKS", 2)  # and in several chunks
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock, commit_interval_s=60, retention_days=1) as store:
        store.attach(hub)
        for i in range(3):
            hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", float(i))])
        hub.apply([Update(BULB.id, "main", "on_off", "on", False)])
        hub.apply([Update(PLUG.id, "l2", "on_off", "on", True)])
        task = asyncio.create_task(store.run(), name="store-commits")
        await asyncio.sleep(0)
        clock.advance_to(START + 60)
        await wait_until(lambda: store.stats()["commits"] == 1)
        assert db_rows(path, "SELECT count(*) FROM history") == [(5,)]
        # a day later (one commit interval at a time, as the loop sleeps), the next purge removes them
        for step in range(1, 24 * 60 + 2):
            clock.advance_to(START + 60 + step * 60)
            await asyncio.sleep(0)
        await wait_until(lambda: store.stats()["history_purged"] == 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert db_rows(path, "SELECT count(*) FROM history") == [(0,)]


async def test_kv_persists(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    values = {"s": "text ☃", "i": 7, "f": 0.5, "b": True, "n": None, "l": [1, "two", None], "d": {"a": {"b": []}}}
    async with Store(path, clock) as store:
        kv = store.kv("zigbee2mqtt")
        for key, value in values.items():
            kv.set(key, value)
        kv.set("gone", 1)
        kv.delete("gone")
        kv.delete("never there")
        store.kv("other").set("s", "other scope")
        with pytest.raises(TypeError):
            kv.set("bad", object())  # refused at once; does not poison the batch
        mutable = [1]
        kv.set("copied", mutable)
        mutable.append(2)
        assert kv.get("copied") == [1]
        assert kv.get("missing", "default") == "default"
        assert dict(kv.items()) == values | {"copied": [1]}
    async with Store(path, clock) as store:
        kv = store.kv("zigbee2mqtt")
        assert dict(kv.items()) == values | {"copied": [1]}
        assert kv.get("n", "default") is None  # a stored null is not "missing"
        assert store.kv("other").get("s") == "other scope"
        assert list(store.kv("new").items()) == []


async def test_removed_device_loses_state_keeps_history(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
        hub.apply([Update(PLUG.id, "main", "on_off", "on", True)])
        await store.flush()
        hub.apply([Update(PLUG.id, "main", "on_off", "on", False)])
        hub.remove_device(PLUG.id)
        await store.flush()
        assert db_rows(path, "SELECT count(*) FROM state WHERE device_id = ?", (PLUG.id,)) == [(0,)]
        # removed and added back within one interval: only what came after the removal is kept
        hub.apply([Update(SENSOR.id, "main", "battery", "low", True)])
        hub.remove_device(SENSOR.id)
        hub.upsert_device(SENSOR, "ble")
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 18.0)])
        await store.flush()
    restored = {d.id: d for d in await reload(path, clock)}
    assert PLUG.id not in restored
    assert restored[SENSOR.id] == hub.devices[SENSOR.id]
    assert restored[SENSOR.id].state == {"main": {"temperature": {"celsius": 18.0}}}
    assert db_rows(path, "SELECT value FROM history WHERE device_id = ? ORDER BY rowid", (PLUG.id,)) == [
        ("true",), ("false",)
    ]


async def test_dropped_capability_drops_its_state(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
        await store.flush()
        fewer = DeviceInfo(id=PLUG.id, name=PLUG.name, source=PLUG.source, hw_version="rev2",
                           components={"main": {"on_off": support({"on"}, {"on", "off", "toggle"})}})
        hub.upsert_device(fewer, "shelly")
        await store.flush()
    restored = {d.id: d for d in await reload(path, clock)}
    assert restored[PLUG.id] == hub.devices[PLUG.id]
    assert "l2" not in restored[PLUG.id].state


async def test_new_file_is_private_and_parent_created(tmp_path: Path) -> None:
    path = tmp_path / "data" / "deeper" / "hearth.db"
    async with Store(path, SimulatedClock(START)):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert db_rows(path, "SELECT max(version) FROM schema_version") == [(store_module.SCHEMA_VERSION,)]
    assert db_rows(path, "PRAGMA journal_mode") == [("wal",)]
    assert not [t for t in threading.enumerate() if t.name.startswith("hearth-store")]


@pytest.mark.parametrize("garbage", [
    b"this is not a database, it is a shopping list\n" * 100,
    bytes(range(256)) * 64,
])
async def test_corrupt_file_is_refused_and_left_alone(tmp_path: Path, garbage: bytes) -> None:
    path = tmp_path / "hearth.db"
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match="not a usable database") as caught:
        async with Store(path, SimulatedClock(START)):
            pytest.fail("opened a corrupt file")
    assert str(path) in str(caught.value)
    assert path.read_bytes() == garbage
    assert sorted(os.listdir(tmp_path)) == ["hearth.db"]
    assert not [t for t in threading.enumerate() if t.name.startswith("hearth-store")]


async def test_damaged_pages_are_refused(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
        for i in range(2000):
            hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", float(i))])
        await store.flush()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page: 6 * page] = b"\xff" * (3 * page)
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as caught:
        async with Store(path, clock):
            pytest.fail("opened a damaged file")
    assert str(path) in str(caught.value)
    assert path.read_bytes() == bytes(data)


async def test_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a Hearth store"):
        async with Store(path, SimulatedClock(START)):
            pass
    assert path.read_bytes() == before


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "hearth.db"
    async with Store(path, SimulatedClock(START)):
        pass
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    conn.commit()
    conn.close()
    before = folder_bytes(tmp_path)
    with pytest.raises(StoreError, match=r"schema version 99, newer than this gateway knows .* Upgrade Hearth"):
        async with Store(path, SimulatedClock(START)):
            pass
    # never damaged: not a byte of the file changed, nothing (-wal, -shm) was left beside it
    assert folder_bytes(tmp_path) == before


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


async def test_failed_commit_keeps_its_batch(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
        await store.flush()

        def fill_disk() -> None:
            # The worker's connection may not grow the file any more: SQLite says "database or disk is full".
            conn = store._conn
            assert conn is not None
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")

        def free_disk() -> None:
            assert store._conn is not None
            store._conn.execute("PRAGMA max_page_count = 1073741823")

        await store._in_worker(fill_disk)
        for i in range(3000):
            hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", float(i))])
        store.kv("ble").set("cursor", 1)
        with pytest.raises(StoreError, match="commit failed"):
            await store.flush()
        assert store.stats()["commit_failures"] == 1
        assert store.stats()["commits"] == 1
        assert db_rows(path, "SELECT count(*) FROM history") == [(0,)]
        # newer changes arrive meanwhile: the newest value of a key wins
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", -1.0)])
        store.kv("ble").set("cursor", 2)

        await store._in_worker(free_disk)
        await store.flush()
        assert store.stats()["commits"] == 2
        assert store.stats()["pending"] == 0
        assert db_rows(path, "SELECT count(*) FROM history") == [(3001,)]
        assert [row["value"] for row in await store.history(SENSOR.id, limit=2)] == [2999.0, -1.0]
    restored = {d.id: d for d in await reload(path, clock)}
    assert restored[SENSOR.id].value("main", "temperature", "celsius") == -1.0
    async with Store(path, clock) as store:
        assert store.kv("ble").get("cursor") == 2


async def test_run_survives_a_failing_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    real_write = Store._write_batch
    failures = [OSError(28, "No space left on device")]

    def flaky_write(self: Store, batch: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_write(self, batch)

    monkeypatch.setattr(Store, "_write_batch", flaky_write)
    async with Store(path, clock, commit_interval_s=5) as store:
        store.attach(hub)
        task = asyncio.create_task(store.run(), name="store-commits")
        await asyncio.sleep(0)
        hub.apply([Update(BULB.id, "main", "on_off", "on", False)])
        clock.advance_to(START + 5)
        await wait_until(lambda: store.stats()["commit_failures"] == 1)
        assert not task.done()
        hub.apply([Update(BULB.id, "main", "on_off", "on", True)])
        clock.advance_to(START + 10)
        await wait_until(lambda: store.stats()["commits"] == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert db_rows(path, "SELECT value FROM history ORDER BY rowid") == [("false",), ("true",)]
    assert sorted_devices(hub) == await reload(path, clock)


async def test_exit_flushes_pending_work(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
    assert await reload(path, clock) == sorted_devices(hub)
    # detached on exit: later changes are not ours any more
    hub.apply([Update(BULB.id, "main", "on_off", "on", False)])
    assert store.stats()["pending"] == 0
    with pytest.raises(StoreError, match="not open"):
        await store.flush()


async def test_shutdown_during_a_failing_commit_loses_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    real_write = Store._write_batch
    entered = threading.Event()
    release = threading.Event()

    def slow_failing_write(self: Store, batch: Any) -> Any:
        if not entered.is_set():
            entered.set()
            release.wait(5)
            raise sqlite3.OperationalError("disk I/O error")
        return real_write(self, batch)

    monkeypatch.setattr(Store, "_write_batch", slow_failing_write)
    async with Store(path, clock, commit_interval_s=5) as store:
        store.attach(hub)
        task = asyncio.create_task(store.run(), name="store-commits")
        await asyncio.sleep(0)
        hub.apply([Update(BULB.id, "main", "level", "percent", 1)])
        clock.advance_to(START + 5)
        await wait_until(entered.is_set)
        # the loop keeps taking changes while the worker is busy
        hub.apply([Update(BULB.id, "main", "level", "percent", 2)])
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
    assert store.stats()["commit_failures"] == 1
    assert db_rows(path, "SELECT value FROM history ORDER BY rowid") == [("1",), ("2",)]
    assert await reload(path, clock) == sorted_devices(hub)


async def test_kv_keeps_a_long_value_compressed_in_memory(tmp_path: Path) -> None:
    # Zigbee2MQTT's definitions of a big house: a megabyte of JSON, read back once at start.
    import tracemalloc

    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    value = [{"ieee": f"0x{n:016x}", "unit": "°C", "exposes": [{"name": "temperature", "min": -40}] * 5}
             for n in range(5000)]
    async with Store(path, clock) as store:
        kv = store.kv("zigbee2mqtt")
        text_bytes = len(store_module._dumps(value).encode())
        assert text_bytes > 1_000_000
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kv.set("definitions", value)
            await store.flush()
            # What the store's writer thread had in flight (the JSON text it wrote) is let go a moment after
            # the commit, later on a busy machine: what is kept is what stays once it has.
            kept = tracemalloc.get_traced_memory()[0] - before
            for _ in range(40):
                if kept < text_bytes / 10:
                    break
                await asyncio.sleep(0.05)
                kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert kept < text_bytes / 10, (kept, text_bytes)
        assert kv.get("definitions") == value
        assert dict(kv.items())["definitions"] == value
    async with Store(path, clock) as store:
        assert store.kv("zigbee2mqtt").get("definitions") == value


async def test_kv_deferred_value_reads_its_producer_after_a_commit(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    state = {"timers": [1]}
    async with Store(path, clock) as store:
        kv = store.kv("scenes")
        kv.set_deferred("state", lambda: state)
        assert kv.get("state") == {"timers": [1]}
        await store.flush()
        assert db_rows(path, "SELECT value FROM kv WHERE key = 'state'") == [('{"timers":[1]}',)]
        state["timers"].append(2)  # not yet committed: a read sees what the next commit will write
        assert kv.get("state") == {"timers": [1, 2]}
        assert dict(kv.items()) == {"state": {"timers": [1, 2]}}
        kv.delete("state")
        assert kv.get("state", "gone") == "gone"
        kv.set_deferred("state", lambda: state)
        await store.flush()
    async with Store(path, clock) as store:
        assert store.kv("scenes").get("state") == {"timers": [1, 2]}


async def test_kv_needs_an_open_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not open"):
        Store(tmp_path / "hearth.db", SimulatedClock(START)).kv("x")


async def test_radio_diagnostics_keep_their_state_but_not_a_history(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock, commit_interval_s=5.0) as store:
        store.attach(hub)
        for i in range(20):
            hub.apply([Update(MISC.id, "main", "connectivity", "last_seen", f"2024-01-02T03:04:{i:02d}Z"),
                       Update(SENSOR.id, "main", "temperature", "celsius", 20 + i / 10)])
        await store.flush()
    history = dict(db_rows(path, "SELECT capability, count(*) FROM history GROUP BY capability"))
    assert "connectivity" not in history
    assert history["temperature"] >= 20
    assert db_rows(path, "SELECT value FROM state WHERE capability = 'connectivity'") == [('"2024-01-02T03:04:19Z"',)]


def disk_full(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every commit fails with "No space left on device" while the returned switch's item is True."""
    real_write = Store._write_batch
    failing = [True]

    def flaky_write(self: Store, batch: Any) -> Any:
        if failing[0]:
            raise OSError(28, "No space left on device")
        return real_write(self, batch)

    monkeypatch.setattr(Store, "_write_batch", flaky_write)
    return failing


async def test_while_commits_fail_the_oldest_history_beyond_the_bound_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gateway.store as store_module

    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    failing = disk_full(monkeypatch)
    monkeypatch.setattr(store_module, "MAX_PENDING_HISTORY_ROWS", 50)
    async with Store(path, clock) as store:
        store.attach(hub)
        for round_ in range(2):
            for i in range(40):
                hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", float(round_ * 100 + i))])
            with pytest.raises(StoreError):
                await store.flush()
        assert store.stats()["history_dropped"] == 30
        failing[0] = False
        await store.flush()
    values = [row[0] for row in db_rows(path, "SELECT value FROM history ORDER BY rowid")]
    assert values == [str(float(v)) for v in [*range(30, 40), *range(100, 140)]]


def make_version_1_store(path: Path, history: list[tuple[float, str, str, str, str, str]]) -> None:
    """A store as the first schema wrote it: a row per change in `history`."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
        for statement in store_module.MIGRATIONS[0]:
            assert isinstance(statement, str)
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1, ?)", (START,))
        conn.executemany("INSERT INTO history (t, device_id, component, capability, attribute, value) "
                         "VALUES (?, ?, ?, ?, ?, ?)", history)
    finally:
        conn.close()


async def test_history_of_the_first_schema_moves_into_blocks(tmp_path: Path) -> None:
    path = tmp_path / "hearth.db"
    old = [(START + i * 600.0, SENSOR.id, "main", "temperature", "celsius", f"{20 + i / 4}") for i in range(12)]
    old += [(START + 5.0, PLUG.id, "l2", "power_meter", "watts", "NaN"),
            (START + 6.0, MISC.id, "main", "fan", "preset", '"nüit ☾ \\"quoted\\""'),
            (START + 7.0, BULB.id, "main", "on_off", "on", "true"),
            (START + 7.0, BULB.id, "main", "level", "percent", "40")]
    make_version_1_store(path, old)
    clock = SimulatedClock(START + 7200)
    async with Store(path, clock) as store:
        rows = await store.history(limit=100)
        assert [row["t"] for row in rows] == sorted(row[0] for row in old)
        sensor = await store.history(SENSOR.id)
        assert [row["value"] for row in sensor] == [20 + i / 4 for i in range(12)]
        assert math.isnan((await store.history(PLUG.id))[0]["value"])
        assert [row["value"] for row in await store.history(MISC.id)] == ['nüit ☾ "quoted"']
        assert [(row["attribute"], row["value"]) for row in await store.history(BULB.id)] == [
            ("on", True), ("percent", 40)]
    # a clock hour of a device per block (12 readings 10 minutes apart: 2-3 blocks), and the old table is gone
    blocks = db_rows(path, "SELECT changes, t_first, t_last FROM history_block WHERE device_id = ?", (SENSOR.id,))
    assert sum(changes for changes, _, _ in blocks) == 12
    assert {int(t_first // 3600) for _, t_first, _ in blocks} == {int(t // 3600) for t, *_ in old[:12]}
    assert all(t_first // 3600 == t_last // 3600 for _, t_first, t_last in blocks)
    assert db_rows(path, "SELECT count(*) FROM sqlite_master WHERE name = 'history' AND type = 'table'") == [(0,)]
    assert db_rows(path, "SELECT max(version) FROM schema_version") == [(store_module.SCHEMA_VERSION,)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.lists(st.tuples(st.sampled_from([SENSOR.id, PLUG.id]), st.integers(0, 40), st.booleans()),
                     min_size=1, max_size=60),
    since=st.none() | st.integers(0, 40), span=st.none() | st.integers(0, 40), limit=st.integers(1, 30),
    device=st.none() | st.sampled_from([SENSOR.id, PLUG.id]),
    capability=st.none() | st.sampled_from(["temperature", "power_meter"]),
    step=st.sampled_from([60.0, 900.0]),
)
async def test_history_reads_what_a_list_of_every_change_would_say(
    tmp_path_factory: pytest.TempPathFactory, changes: list[tuple[str, int, bool]], since: int | None,
    span: int | None, limit: int, device: str | None, capability: str | None, step: float,
) -> None:
    # Changes committed in several batches (some still pending), read back with every filter: the same
    # rows, in the same order, as filtering the plain list of changes gives. Over 40 minutes or 10 hours (a
    # device's read before ``until`` starts at a block an hour or more later, when the time index finds one).
    path = tmp_path_factory.mktemp("history") / "hearth.db"
    clock = SimulatedClock(START)
    hub = make_hub(clock)
    expected: list[tuple[float, str, Any]] = []
    async with Store(path, clock) as store:
        store.attach(hub)
        for i, (device_id, second, commit) in enumerate(changes):
            # every change at its own instant: of one instant, rows come grouped by device
            clock.advance_to(max(clock.time() + 0.5, START + second * step))
            update = (Update(SENSOR.id, "main", "temperature", "celsius", float(i)) if device_id == SENSOR.id
                      else Update(PLUG.id, "l2", "power_meter", "watts", float(i)))
            hub.apply([update])
            expected.append((clock.time(), device_id, float(i)))
            if commit:
                await store.flush()
        low = None if since is None else START + since * step
        high = None if span is None else START + ((since or 0) + span) * step
        wanted = [(t, dev, value) for t, dev, value in expected
                  if (low is None or t >= low) and (high is None or t < high) and (device is None or dev == device)
                  and (capability is None or (capability == "temperature") == (dev == SENSOR.id))]
        rows = await store.history(device, low, high, limit, capability=capability)
        assert [(row["t"], row["device_id"], row["value"]) for row in rows] == wanted[-limit:]


async def test_a_failed_commit_leaves_every_device_s_history_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A commit that fails after its history blocks were linked to their devices' chains (here: at the heads'
    # update) links nothing: the blocks written by the retry hang on to the last ones that were committed.
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
        for minute in range(6):
            clock.advance_to(START + minute * 60)
            hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", float(minute))])
            if minute == 3:
                monkeypatch.setattr(store_module, "_UPSERT_HEADS", "INSERT INTO no_such_table VALUES {values}")
                with pytest.raises(StoreError):
                    await store.flush()
                monkeypatch.undo()
            else:
                await store.flush()
        readings = [row["value"] for row in await store.history(SENSOR.id, capability="temperature")]
        assert readings == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    async with Store(path, clock) as store:  # and so it is after a restart
        readings = [row["value"] for row in await store.history(SENSOR.id, capability="temperature")]
        assert readings == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


async def test_a_device_s_history_pages_back_through_a_long_chain(tmp_path: Path) -> None:
    # Ten hours of a reading every 10 minutes, a commit each, another device's in between: every page before
    # some ``until`` (found by starting at a block an hour or more after it, or at the newest) is the right one.
    clock = SimulatedClock(START)
    hub = make_hub(clock)
    async with Store(tmp_path / "hearth.db", clock) as store:
        store.attach(hub)
        for step in range(60):
            clock.advance_to(START + step * 600)
            hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", float(step))])
            if step % 7 == 0:  # sometimes the other device too
                hub.apply([Update(PLUG.id, "l2", "power_meter", "watts", float(step))])
            await store.flush()
        for until_step in range(0, 64, 3):
            until = START + until_step * 600
            for since in (None, until - 5000):
                rows = await store.history(SENSOR.id, since, until, 4, capability="temperature")
                wanted = [float(s) for s in range(60) if START + s * 600 < until
                          and (since is None or START + s * 600 >= since)][-4:]
                assert [row["value"] for row in rows] == wanted, (until_step, since)


async def test_a_commit_writes_no_index_by_device(tmp_path: Path) -> None:
    # A device's history is found along its chain of blocks (``prev``) from its newest (history_head): a
    # commit appends its blocks and rewrites a row a device in place, instead of an entry in an index by device
    # on a page of its own for every device, which made a commit dearer as the history grew (bench/storeage.py).
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
        for minute in range(3):
            clock.advance_to(START + minute * 60)
            hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", float(minute)),
                       Update(PLUG.id, "l2", "power_meter", "watts", float(minute))])
            await store.flush()
    indexes = db_rows(path, "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'history_block'")
    assert [(name, sql.split(" ON ")[1]) for name, sql in indexes if sql] == [
        ("history_block_t", "history_block (t_last)")]
    chain = db_rows(path, "SELECT id, prev FROM history_block WHERE device_id = ? ORDER BY id", (SENSOR.id,))
    assert [prev for _, prev in chain] == [None, *[block for block, _ in chain[:-1]]]
    assert db_rows(path, "SELECT block FROM history_head WHERE device_id = ?", (SENSOR.id,)) == [(chain[-1][0],)]


async def test_a_batch_kept_through_failing_commits_is_stored_an_hour_per_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    failing = disk_full(monkeypatch)
    async with Store(path, clock) as store:
        store.attach(hub)
        for minute in range(0, 180, 10):  # three hours of readings, commits failing all along
            clock.advance_to(START + minute * 60)
            hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", float(minute))])
            with pytest.raises(StoreError):
                await store.flush()
        failing[0] = False
        await store.flush()
        assert [row["value"] for row in await store.history(SENSOR.id)] == [float(m) for m in range(0, 180, 10)]
        # a read of one hour in the middle finds its rows through the narrow index range
        window = await store.history(SENSOR.id, since=START + 3600, until=START + 7200)
        assert [row["value"] for row in window] == [float(m) for m in range(60, 120, 10)]
    spans = db_rows(path, "SELECT t_last - t_first FROM history_block WHERE device_id = ?", (SENSOR.id,))
    assert len(spans) >= 3
    assert all(span < store_module.HISTORY_BLOCK_SPAN_S for (span,) in spans)


async def test_the_newest_changes_are_found_across_overlapping_blocks(tmp_path: Path) -> None:
    # One device's block spans the other's: the newest changes come from both.
    clock = SimulatedClock(START)
    hub = make_hub(clock)
    async with Store(tmp_path / "hearth.db", clock) as store:
        store.attach(hub)
        for second, update in [(0, Update(SENSOR.id, "main", "temperature", "celsius", 0.0)),
                               (50, Update(PLUG.id, "l2", "power_meter", "watts", 50.0)),
                               (60, Update(PLUG.id, "l2", "power_meter", "watts", 60.0)),
                               (100, Update(SENSOR.id, "main", "temperature", "celsius", 100.0))]:
            clock.advance_to(START + second)
            hub.apply([update])
        await store.flush()
        assert [row["value"] for row in await store.history(limit=2)] == [60.0, 100.0]
        assert [row["value"] for row in await store.history(limit=3)] == [50.0, 60.0, 100.0]
        assert [row["value"] for row in await store.history(until=START + 100, limit=2)] == [50.0, 60.0]


async def test_a_damaged_history_block_is_skipped_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = make_hub(clock)
    async with Store(path, clock) as store:
        store.attach(hub)
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 1.0)])
        await store.flush()
        clock.advance_to(START + 10)
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 2.0)])
        await store.flush()
    # someone edits the file with the sqlite3 shell
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE history_block SET rows = '[1, \"main\"' WHERE t_first = ?", (START,))
    conn.close()
    async with Store(path, clock) as store:
        assert [row["value"] for row in await store.history(SENSOR.id)] == [2.0]
        assert store.stats()["history_unreadable_blocks"] == 1
    assert "not readable" in caplog.text


def test_the_oldest_pending_changes_go_first_whichever_device_they_are_of() -> None:
    def changes(*times: float) -> list[Any]:
        return [item for t in times for item in (t, "main", "temperature", "celsius", t)]

    history = {"a": changes(1, 4, 5), "b": changes(2, 3, 6), "c": changes(0.5)}
    store_module._drop_oldest(history, 3)  # 0.5, 1 and 2
    assert history == {"a": changes(4, 5), "b": changes(3, 6)}
    store_module._drop_oldest(history, 2)  # 3 and 4
    assert history == {"a": changes(5), "b": changes(6)}


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
async def test_the_store_thread_gives_way_to_the_event_loop(tmp_path: Path) -> None:
    """Commits run below the loop's priority (the loop's lateness during commits: store.py)."""
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    async with Store(tmp_path / "hearth.db", SimulatedClock(START)) as store:
        worker_nice = await store._in_worker(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    assert worker_nice == min(19, loop_nice + store_module.STORE_THREAD_NICE)
    assert worker_nice > loop_nice or loop_nice == 19  # (a test run at the lowest priority has none lower)
    # The loop's own thread (and with it the process's other threads) is left as it was.
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_nice
