"""Upgrades of the store from every earlier schema version, on databases the earlier versions wrote.

tests/fixtures/store/schema-N.db were made by the last commit at schema version N running
tests/fixtures/store/make_fixture.py (its docstring says how, and what is in them): the same small house,
its day of history, the owner's edits, the scene engine's alerts and a pending timer. Each is opened here by
today's store (which migrates it in place, on a copy), and everything in it must have arrived. (A database
newer than the code: tests/gateway/test_store.py, test_newer_schema_is_refused.)
"""

from __future__ import annotations

import asyncio
import math
import shutil
import sqlite3
from pathlib import Path

import pytest

from gateway import store as store_module
from gateway.clock import SimulatedClock
from gateway.devicemeta import DeviceMeta
from gateway.hub import Hub
from gateway.scenes.engine import SceneEngine
from gateway.scenes.notify import RecordingNotifier
from gateway.scenes.profile import load_profile_text
from gateway.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "store"
EARLIER_VERSIONS = list(range(1, store_module.SCHEMA_VERSION))
# What make_fixture.py wrote (its constants; the fixture script itself imports the old gateway, not this one).
DAY_START = 1773100800.0  # 2026-03-10 00:00 UTC
SENSOR = "ble:a4:c1:38:00:11:22"
PLUG = "shelly:shellyplus2pm-aabbcc"
LIGHT = "zigbee2mqtt:0x00158d0001a2b3c4"
DOOR = "zigbee2mqtt:0x00158d0002c3d4e5"
BUTTON = "zigbee2mqtt:0x00158d0003d4e5f6"
RADIATOR = "homie:radiator"
PROFILE = (FIXTURES / "make_fixture.py").read_text().split("PROFILE = '''", 1)[1].split("'''", 1)[0]


def at(hh: int, mm: int = 0) -> float:
    return DAY_START + hh * 3600 + mm * 60


def fixture_copy(version: int, tmp_path: Path) -> Path:
    path = tmp_path / "hearth.db"
    shutil.copyfile(FIXTURES / f"schema-{version}.db", path)
    return path


def wal_bytes(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size


def test_there_is_a_fixture_for_every_earlier_schema_version() -> None:
    # A new migration needs a fixture of the version it upgrades from: make it with make_fixture.py.
    assert EARLIER_VERSIONS, "SCHEMA_VERSION is 1: nothing to upgrade from"
    for version in EARLIER_VERSIONS:
        path = FIXTURES / f"schema-{version}.db"
        assert path.is_file(), f"no {path.name}: see make_fixture.py"
        assert path.stat().st_size < 200_000
        conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)  # no -wal/-shm beside the fixture
        try:
            assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (version,)
        finally:
            conn.close()


@pytest.mark.parametrize("version", EARLIER_VERSIONS)
async def test_a_database_of_an_earlier_version_arrives_whole(version: int, tmp_path: Path) -> None:
    path = fixture_copy(version, tmp_path)
    clock = SimulatedClock(at(19, 0))
    async with Store(path, clock) as store:
        # what the upgrade rewrote went through the WAL; it does not stay that size
        assert wal_bytes(path) == 0
        devices = {device.id: device for device in await store.load_devices()}
        assert set(devices) == {SENSOR, PLUG, LIGHT, DOOR, BUTTON, RADIATOR}
        light = devices[LIGHT]
        assert light.name == 'Reading lamp "Anna\'s" ☾'  # the owner's rename, in the stored description
        assert (light.manufacturer, light.model, light.area) == ("IKEA", "LED1545G12", "office")
        assert light.value("main", "on_off", "on") is True
        level = light.value("main", "level", "percent")
        assert level == 80 and type(level) is int  # an int stays an int
        assert light.support["main"]["color_temperature"].limits == {"kelvin": (2200, 6500)}
        assert devices[PLUG].area == "utility room"
        assert devices[PLUG].available is False and devices[SENSOR].available is True
        assert devices[PLUG].value("l2", "power_meter", "watts") == 540.5  # the 18:00 reading
        assert devices[RADIATOR].value("main", "thermostat", "target_celsius") == 8.5
        assert devices[SENSOR].value("main", "battery", "percent") == 87
        assert devices[SENSOR].mac == "a4:c1:38:00:11:22"

        temperatures = await store.history(SENSOR, capability="temperature", limit=1000)
        readings = [(DAY_START + step * 1200.0, round(19.5 + 2 * math.sin(step / 9), 2)) for step in range(57)]
        changes = [reading for i, reading in enumerate(readings) if i == 0 or reading[1] != readings[i - 1][1]]
        assert [(row["t"], row["value"]) for row in temperatures] == changes  # the hub records changes only
        watts = [row["value"] for row in await store.history(PLUG, capability="power_meter", limit=1000)]
        assert watts[:3] == [0.5, 30.5, 60.5] and len(watts) == 20
        assert sum(1 for value in watts if math.isnan(value)) == 1
        door = await store.history(DOOR, capability="contact")
        assert [(row["t"], row["value"]) for row in door] == [(DAY_START, False), (at(8, 3), True), (at(8, 4), False)]

        scenes = store.kv("scenes").get("state")
        alerts = scenes["alerts"]
        assert [alert["raised_at"] for alert in alerts] == [at(8, 0), at(17, 0)]
        assert alerts[1]["acknowledged_by"] == "token:carer"
        assert scenes["pending"]["fixture.cold#0#homie:radiator#main"]["due"] == at(20, 0)
        assert store.kv("device_meta").get(PLUG) is not None
        assert store.kv("zigbee2mqtt").get("bridge_info")["coordinator"] == {"type": "zStack3x0"}
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == list(range(1, store_module.SCHEMA_VERSION + 1))
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'history'").fetchone() == (0,)
        # version 4: no index by device; each device's blocks in a chain from its head, all of them
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'history_block_device_t'").fetchone() \
            == (0,)
        heads = dict(conn.execute("SELECT device_id, block FROM history_head").fetchall())
        for device_id, block in heads.items():
            chained = 0
            while block is not None:
                found = conn.execute("SELECT device_id, prev FROM history_block WHERE id = ?", (block,)).fetchone()
                assert found[0] == device_id
                block = found[1]
                chained += 1
            assert chained == conn.execute("SELECT count(*) FROM history_block WHERE device_id = ?",
                                           (device_id,)).fetchone()[0]
        assert set(heads) == {row[0] for row in conn.execute("SELECT DISTINCT device_id FROM history_block")}
    finally:
        conn.close()


@pytest.mark.parametrize("version", EARLIER_VERSIONS)
async def test_the_upgraded_house_runs_its_alerts_and_timers(version: int, tmp_path: Path) -> None:
    """Today's gateway pieces on the upgraded database: the owner's edits apply, the open alert is still
    open (and acknowledged), the resolved one is history, and the "for 2 h" timer fires when it was due."""
    path = fixture_copy(version, tmp_path)
    clock = SimulatedClock(at(19, 0))
    hub = Hub(clock, tags={BUTTON: ["panic"]})
    notifier = RecordingNotifier()
    async with Store(path, clock) as store:
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        hub.restore(await store.load_devices())
        store.attach(hub)
        assert hub.devices[LIGHT].name == 'Reading lamp "Anna\'s" ☾'
        assert hub.devices[PLUG].area == "utility room"
        engine = SceneEngine(hub, [load_profile_text(PROFILE, "fixture.toml")], notifier=notifier,
                             storage=store.kv("scenes"))
        await engine.start()
        try:
            alerts = engine.list_alerts()
            assert len(alerts) == 2
            active = engine.list_alerts(state="active")  # open or acknowledged (schema 1's engine: "open")
            assert [(a["raised_at"], a["acknowledged_by"]) for a in active] == [
                ("2026-03-10T17:00:00.000Z", "token:carer")]
            assert [a["state"] for a in alerts] == ["acknowledged", "resolved"]
            for step in range(12):  # to 20:00 in 10-minute steps: the timer due at 20:00 fires
                clock.advance_to(at(19, 10 * (step + 1)) if step < 5 else at(20, 0) + step)
                for _ in range(20):
                    await asyncio.sleep(0)
            assert [n.message for _, n in notifier.sent if n.message.startswith("cold")] == ["cold at 20:00"]
        finally:
            await engine.stop()
        meta.detach()
        store.detach()
