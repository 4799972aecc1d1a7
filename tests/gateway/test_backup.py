"""Backups and restores (gateway.backup, ``hearth backup`` / ``hearth restore``, ``[backup]`` schedules).

The unit tests back up a store that is open and committing in this process; the end-to-end test backs up a
real ``hearth run`` (real Mosquitto, the HTTP API) while it runs, restores it into a new data directory and
checks through the API of a gateway started there that the house came back.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import backup as backup_module
from gateway.backup import (
    BackupSchedule,
    BackupSources,
    RefusalReason,
    RestoreRefusedError,
    RestoreTarget,
    prune_backups,
    restore_backup,
    write_backup,
)
from gateway.cli import main
from gateway.clock import SimulatedClock
from gateway.config import BackupSection, parse_config
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, DeviceInfo, Update
from gateway.store import SCHEMA_VERSION, Store, take_store_lock
from tests.broker import Mosquitto, free_port
from tests.gateway_process import Api, FakeZigbee2Mqtt, GatewayProcess, wait_until

START = 1_773_100_800.0  # 2026-03-10 00:00 UTC
SENSOR = DeviceInfo("ble:a4:c1:38:00:11:22", "Bathroom", "ble",
                    {"main": {"temperature": CapabilitySupport(frozenset({"celsius"}))}}, suggested_area="bathroom")


def make_data_dir(root: Path) -> Path:
    """A data directory as a gateway leaves it: tokens, accounts, TLS files, and the clutter never backed up."""
    data = root / "data"
    (data / "tls").mkdir(parents=True, mode=0o700)
    for name, text in (("tokens.json", '{"version": 1, "tokens": []}\n'), ("users.json", '{"users": []}\n'),
                       ("sessions.json", "{}\n"), ("tls/cert.pem", "CERT\n"), ("tls/key.pem", "KEY\n"),
                       ("tokens.json.lock", ""), (".tokens.json.123.abcd.tmp", "half"), ("matter/sidecar.pid", "4242"),
                       ("backups/hearth-backup-20260101-000000.tar.gz", "old")):
        path = data / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(text)
        path.chmod(0o644)  # whatever the source's mode, the archive and the restore say 0600
    return data


def sources_of(data: Path, **kwargs: Any) -> BackupSources:
    return BackupSources(db_path=data / "hearth.db", data_dir=data, token_file=data / "tokens.json",
                         exclude=(data / "backups",), **kwargs)


async def fill_store(path: Path, clock: SimulatedClock, readings: int = 20) -> tuple[Store, Hub]:
    hub = Hub(clock)
    store = Store(path, clock, commit_interval_s=1.0)
    await store.__aenter__()
    hub.restore(await store.load_devices())
    store.attach(hub)
    hub.upsert_device(SENSOR, "ble")
    for i in range(readings):
        clock.advance_to(clock.time() + 60)
        hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 20.0 + i / 10)])
    store.kv("scenes").set("state", {"alerts": [{"id": "help-1", "state": "open"}]})
    await store.flush()
    return store, hub


def section(**settings: Any) -> BackupSection:
    return BackupSection.model_validate(settings)


def members(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def rewrite_archive(archive: Path, out: Path, change: Any) -> None:
    """Copy ``archive`` to ``out`` member by member; ``change(info, data)`` returns what to write instead (a list
    of (TarInfo, bytes)), letting a test damage or add members while keeping the rest."""
    with tarfile.open(archive, "r:gz") as tar, tarfile.open(out, "w:gz") as new:
        for info in tar.getmembers():
            reader = tar.extractfile(info)
            data = reader.read() if reader else b""
            for new_info, new_data in change(info, data):
                new_info.size = len(new_data)
                new.addfile(new_info, io.BytesIO(new_data))


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
async def backed_up(tmp_path: Path) -> Any:
    """A store open and committing, its data directory, and a backup of it made meanwhile."""
    data = make_data_dir(tmp_path)
    clock = SimulatedClock(START)
    store, hub = await fill_store(data / "hearth.db", clock)
    archive = tmp_path / "house.tar.gz"
    try:
        result = await asyncio.to_thread(write_backup, archive, sources_of(data), now=START)
        yield data, archive, result, store, hub, clock
    finally:
        store.detach()
        await store.__aexit__(None, None, None)


async def test_a_backup_of_a_running_store_holds_the_house_and_a_manifest(backed_up: Any, tmp_path: Path) -> None:
    _data, archive, result, *_ = backed_up
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    found = members(archive)
    assert next(iter(found)) == "manifest.json"
    assert set(found) == {"manifest.json", "hearth.db", "data/tokens.json", "data/users.json", "data/sessions.json",
                          "data/tls/cert.pem", "data/tls/key.pem"}
    assert all(stat.S_IMODE(m.mode) == 0o600 for m in found.values())
    with tarfile.open(archive, "r:gz") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        contents = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert manifest["format"] == "hearth-backup" and manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["created_at"] == "2026-03-10T00:00:00Z" and manifest["hearth_version"]
    for entry in manifest["files"]:
        assert hashlib.sha256(contents[entry["name"]]).hexdigest() == entry["sha256"]
        assert len(contents[entry["name"]]) == entry["size"] and entry["mode"] == "0600"
    assert result.files == len(manifest["files"]) == 6
    # The copy is one consistent file (no -wal needed) with everything committed before the backup began.
    copy = tmp_path / "copy.db"
    copy.write_bytes(contents["hearth.db"])
    conn = sqlite3.connect(copy)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT sum(changes) FROM history_block").fetchone() == (20,)
    finally:
        conn.close()


async def test_a_backup_while_the_store_commits_is_a_consistent_snapshot(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    clock = SimulatedClock(START)
    store, hub = await fill_store(data / "hearth.db", clock)
    try:
        stop = threading.Event()
        archives: list[Path] = []

        def back_up_repeatedly() -> None:
            for n in range(5):
                if stop.is_set():
                    break
                archives.append(write_backup(tmp_path / f"b{n}.tar.gz", sources_of(data), now=START).path)

        worker = asyncio.create_task(asyncio.to_thread(back_up_repeatedly))
        for i in range(200):  # commits go on meanwhile, each a transaction of 10 changes
            if worker.done():
                break
            for _ in range(10):
                clock.advance_to(clock.time() + 1)
                hub.apply([Update(SENSOR.id, "main", "temperature", "celsius", 30.0 + i + _ / 100)])
            await store.flush()
        stop.set()
        await worker
    finally:
        store.detach()
        await store.__aexit__(None, None, None)
    assert archives
    for archive in archives:
        target = tmp_path / f"restored-{archive.stem}"
        restore_backup(archive, RestoreTarget(target, target / "hearth.db", target), now=START)
        conn = sqlite3.connect(target / "hearth.db")
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            changes = conn.execute("SELECT sum(changes) FROM history_block").fetchone()[0]
        finally:
            conn.close()
        assert (changes - 20) % 10 == 0  # whole commits only


async def test_restore_into_an_empty_data_dir_brings_the_house_back(backed_up: Any, tmp_path: Path) -> None:
    data, archive, *_ = backed_up
    target = tmp_path / "new" / "data"
    result = restore_backup(archive, RestoreTarget(target, target / "hearth.db", target), now=START)
    assert tree(target).keys() == {"hearth.db", "tokens.json", "users.json", "sessions.json", "tls/cert.pem",
                                   "tls/key.pem"}
    for name in ("tokens.json", "users.json", "tls/key.pem"):
        assert (target / name).read_bytes() == (data / name).read_bytes()
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in target.rglob("*") if p.is_file())
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in [target, *target.rglob("*")] if p.is_dir())
    assert result.moved_aside == [] and not list(target.parent.glob(".*restore*"))
    clock = SimulatedClock(START + 86400)
    async with Store(target / "hearth.db", clock) as store:
        (device,) = await store.load_devices()
        assert (device.id, device.area) == (SENSOR.id, "bathroom")
        assert len(await store.history(SENSOR.id)) == 20
        assert store.kv("scenes").get("state") == {"alerts": [{"id": "help-1", "state": "open"}]}


def assert_refused(archive: Path, target: Path, reason: RefusalReason, *, force: bool = False) -> None:
    before = tree(target.parent) if target.parent.exists() else {}
    with pytest.raises(RestoreRefusedError) as refused:
        restore_backup(archive, RestoreTarget(target, target / "hearth.db", target), force=force, now=START)
    assert refused.value.reason is reason, refused.value
    after = tree(target.parent) if target.parent.exists() else {}
    assert after == before, "a refused restore changed nothing"
    assert not target.exists() or target.is_dir()


async def test_restore_refuses_a_damaged_archive(backed_up: Any, tmp_path: Path) -> None:
    _data, archive, *_ = backed_up
    target = tmp_path / "new" / "data"
    target.parent.mkdir()

    flipped = tmp_path / "flipped.tar.gz"
    rewrite_archive(archive, flipped, lambda info, data: [(info, data.replace(b"KEY", b"KEX"))])
    assert_refused(flipped, target, RefusalReason.CHECKSUM)

    extra = tmp_path / "extra.tar.gz"
    rewrite_archive(archive, extra, lambda info, data: [(info, data)] + (
        [(tarfile.TarInfo("data/authorized_keys"), b"ssh-ed25519 AAAA")] if info.name == "hearth.db" else []))
    assert_refused(extra, target, RefusalReason.CHECKSUM)

    missing = tmp_path / "missing.tar.gz"
    rewrite_archive(archive, missing, lambda info, data: [] if info.name == "data/users.json" else [(info, data)])
    assert_refused(missing, target, RefusalReason.TRUNCATED)

    raw = archive.read_bytes()
    for cut in (len(raw) - 40, len(raw) // 2, 30):
        truncated = tmp_path / f"truncated-{cut}.tar.gz"
        truncated.write_bytes(raw[:cut])
        assert_refused(truncated, target, RefusalReason.TRUNCATED)

    not_ours = tmp_path / "not-ours.tar.gz"
    with tarfile.open(not_ours, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("README"), io.BytesIO(b""))
    assert_refused(not_ours, target, RefusalReason.NOT_A_BACKUP)


def traversal_archive(archive: Path, out: Path, name: str, kind: bytes = tarfile.REGTYPE) -> None:
    """``archive`` with a member ``name`` added (and listed in its manifest with a right checksum)."""
    payload = b"owned\n"

    def change(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if info.name == "manifest.json":
            manifest = json.loads(data)
            manifest["files"].append({"name": name, "role": "data", "size": len(payload),
                                      "sha256": hashlib.sha256(payload).hexdigest(), "mode": "0600"})
            return [(info, json.dumps(manifest).encode())]
        if info.name == "hearth.db":
            evil = tarfile.TarInfo(name)
            evil.type = kind
            if kind == tarfile.SYMTYPE:
                evil.linkname = "/etc/passwd"
            return [(info, data), (evil, b"" if kind == tarfile.SYMTYPE else payload)]
        return [(info, data)]

    rewrite_archive(archive, out, change)


@pytest.mark.parametrize("name", ["../../escaped", "/tmp/hearth-escaped", "data/../../escaped", "data/./x/../../.."])
async def test_restore_refuses_paths_that_escape_the_target(backed_up: Any, tmp_path: Path, name: str) -> None:
    _data, archive, *_ = backed_up
    target = tmp_path / "new" / "data"
    target.parent.mkdir()
    evil = tmp_path / "evil.tar.gz"
    traversal_archive(archive, evil, name)
    assert_refused(evil, target, RefusalReason.UNSAFE_PATH)
    assert not any(p.exists() for p in (tmp_path / "escaped", Path("/tmp/hearth-escaped")))


async def test_restore_refuses_links_in_the_archive(backed_up: Any, tmp_path: Path) -> None:
    _data, archive, *_ = backed_up
    target = tmp_path / "new" / "data"
    target.parent.mkdir()
    evil = tmp_path / "link.tar.gz"
    traversal_archive(archive, evil, "data/passwd", tarfile.SYMTYPE)
    assert_refused(evil, target, RefusalReason.UNSAFE_PATH)


async def test_restore_refuses_a_database_newer_than_this_hearth(backed_up: Any, tmp_path: Path) -> None:
    _data, archive, *_ = backed_up
    newer = tmp_path / "newer.tar.gz"
    staging = tmp_path / "newer.db"

    def change(info: tarfile.TarInfo, data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
        if info.name == "manifest.json":
            staging.write_bytes(files["hearth.db"])
            conn = sqlite3.connect(staging)
            conn.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
            conn.commit()
            conn.close()
            manifest = json.loads(data)
            for entry in manifest["files"]:
                if entry["name"] == "hearth.db":
                    entry["size"] = staging.stat().st_size
                    entry["sha256"] = hashlib.sha256(staging.read_bytes()).hexdigest()
            return [(info, json.dumps(manifest).encode())]
        if info.name == "hearth.db":
            return [(info, staging.read_bytes())]
        return [(info, data)]

    with tarfile.open(archive, "r:gz") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    rewrite_archive(archive, newer, change)
    target = tmp_path / "new" / "data"
    target.parent.mkdir()
    assert_refused(newer, target, RefusalReason.NEWER_SCHEMA)


async def test_restore_over_a_data_dir_needs_force_and_moves_the_old_one_aside(backed_up: Any,
                                                                                tmp_path: Path) -> None:
    _data, archive, *_ = backed_up
    target = tmp_path / "other" / "data"
    target.mkdir(parents=True)
    (target / "hearth.db").write_bytes(b"the house before")
    (target / "notes.txt").write_text("mine")
    assert_refused(archive, target, RefusalReason.NOT_EMPTY)
    result = restore_backup(archive, RestoreTarget(target, target / "hearth.db", target), force=True, now=START)
    ((old, aside),) = result.moved_aside
    assert old == target and aside.name == "data.before-restore-20260310-000000"
    assert (aside / "notes.txt").read_text() == "mine" and (aside / "hearth.db").read_bytes() == b"the house before"
    assert "notes.txt" not in tree(target) and "tokens.json" in tree(target)


async def test_restore_refuses_while_a_gateway_has_the_database(backed_up: Any, tmp_path: Path) -> None:
    data, archive, *_ = backed_up
    # The store of the fixture is open on data/hearth.db (a shared lock, as a running gateway holds).
    assert_refused(archive, data, RefusalReason.IN_USE, force=True)
    target = tmp_path / "idle" / "data"
    target.mkdir(parents=True)
    fd = take_store_lock(target / "hearth.db", exclusive=False)  # another gateway, starting on the target
    try:
        assert_refused(archive, target, RefusalReason.IN_USE)
    finally:
        assert fd is not None
        os.close(fd)


async def test_the_cli_backs_up_and_restores_config_and_definitions(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    data = make_data_dir(tmp_path / "old")
    definitions = tmp_path / "old" / "definitions"
    definitions.mkdir()
    (definitions / "acme.toml").write_text('name = "acme"\n')
    config = tmp_path / "old" / "house.toml"
    config.write_text(f'[gateway]\ndata_dir = "{data}"\n\n[areas]\n"Bathroom" = "bathroom"\n\n'
                      f'[adapters.definitions]\nfolders = ["{definitions}"]\n')
    clock = SimulatedClock(START)
    store, _hub = await fill_store(data / "hearth.db", clock)
    try:
        out = tmp_path / "backups"
        out.mkdir()
        assert await asyncio.to_thread(main, ["backup", str(out), "--config", str(config)]) == 0
    finally:
        store.detach()
        await store.__aexit__(None, None, None)
    (archive,) = out.glob("hearth-backup-*.tar.gz")
    assert "Wrote" in capsys.readouterr().out
    assert {"config/house.toml", "definitions/0/acme.toml"} <= set(members(archive))

    # Restored elsewhere: the data directory the restored config names is moved by --data-dir, and its
    # definitions go to the folder it names (here: still the old one, which holds the same file).
    new_config = tmp_path / "new" / "house.toml"
    new_data = tmp_path / "new" / "data"
    assert await asyncio.to_thread(main, ["restore", str(archive), "--config", str(new_config),
                                          "--data-dir", str(new_data)]) == 0
    printed = capsys.readouterr().out
    assert "Start the gateway with: hearth run --config" in printed
    assert new_config.read_text() == config.read_text() and stat.S_IMODE(new_config.stat().st_mode) == 0o600
    assert (new_data / "hearth.db").is_file() and (new_data / "tokens.json").is_file()
    # Once more, into the now full data directory: refused, exit 1, nothing changed.
    assert await asyncio.to_thread(main, ["restore", str(archive), "--config", str(new_config),
                                          "--data-dir", str(new_data)]) == 1
    assert "not empty" in capsys.readouterr().err


async def test_scheduled_backups_run_daily_in_a_thread_and_keep_the_newest(tmp_path: Path) -> None:
    data = make_data_dir(tmp_path)
    clock = SimulatedClock(START + 3600)  # 01:00 UTC
    store, _hub = await fill_store(data / "hearth.db", clock)
    directory = tmp_path / "usb"
    threads: list[str] = []
    real_write = backup_module.write_backup

    def recording_write(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real_write(*args, **kwargs)

    schedule = BackupSchedule(sources_of(data), section(enabled=True, at="03:30", keep=3), directory, clock)
    task = asyncio.create_task(schedule.run())
    try:
        backup_module.write_backup = recording_write  # type: ignore[assignment]

        async def until(t: float, made: int) -> None:
            for _ in range(5):
                await asyncio.sleep(0)  # the schedule's task has run up to its sleep
            clock.advance_to(t)
            for _ in range(500):  # the backup runs in a worker thread: wait for it, boundedly
                if schedule.made >= made:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError(f"{made} backups expected, {schedule.made} made ({schedule.last_error})")

        await until(START + 3 * 3600, 0)
        assert schedule.made == 0
        await until(START + 3.5 * 3600, 1)
        assert [p.name for p in directory.iterdir()] == ["hearth-backup-20260310-033000.tar.gz"]
        for day in range(1, 6):
            await until(START + day * 86400 + 3.5 * 3600, 1 + day)
        kept = sorted(p.name for p in directory.iterdir())
        assert kept == [f"hearth-backup-202603{d}-033000.tar.gz" for d in (13, 14, 15)]
        assert all(stat.S_IMODE((directory / name).stat().st_mode) == 0o600 for name in kept)
        assert threads and threading.main_thread().name not in threads
    finally:
        backup_module.write_backup = real_write  # type: ignore[assignment]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        store.detach()
        await store.__aexit__(None, None, None)


def test_schedule_times_and_retention_leave_other_files_alone(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    daily = BackupSchedule(sources_of(tmp_path), section(at="03:30"), tmp_path, SimulatedClock(), berlin)
    # 2026-03-28 12:00 UTC; Berlin moves to summer time in the night to the 29th: 03:30 CEST = 01:30 UTC
    assert daily.next_due(1774699200.0, 0) == 1774747800.0
    hourly = BackupSchedule(sources_of(tmp_path), section(interval_h=6), tmp_path, SimulatedClock())
    assert hourly.next_due(START + 7 * 3600, START) == START + 12 * 3600
    for name in ("hearth-backup-20260101-000000.tar.gz", "hearth-backup-20260102-000000.tar.gz",
                 "hearth-backup-20260103-000000-1.tar.gz", "my-own-backup.tar.gz", "hearth-backup-notes.txt"):
        (tmp_path / name).write_text("x")
    doomed = prune_backups(tmp_path, keep=1)
    assert [p.name for p in doomed] == ["hearth-backup-20260101-000000.tar.gz", "hearth-backup-20260102-000000.tar.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hearth-backup-20260103-000000-1.tar.gz", "hearth-backup-notes.txt", "my-own-backup.tar.gz"]


def test_the_gateway_schedule_follows_the_config(tmp_path: Path) -> None:
    from gateway.backup import schedule_for

    config = parse_config(f'[gateway]\ndata_dir = "{tmp_path}"\n\n[location]\ntimezone = "Europe/Berlin"\n\n'
                          '[backup]\nenabled = true\nat = "02:15"\nkeep = 3\n', str(tmp_path / "house.toml"))
    schedule = schedule_for(config, SimulatedClock(START))
    assert schedule.directory == tmp_path / "backups" and schedule.sources.exclude == (tmp_path / "backups",)
    assert schedule.sources.db_path == tmp_path / "hearth.db"
    assert schedule.next_due(START, START) == START + 3600 + 15 * 60  # 02:15 in Berlin is 01:15 UTC in March
    assert schedule.stats() == {"made": 0, "failed": 0, "directory": str(tmp_path / "backups"), "last": None,
                                "last_error": None}


async def test_a_gateway_with_backup_enabled_makes_them_on_its_clock(tmp_path: Path) -> None:
    """The wiring in Gateway.run: [backup] enabled starts the schedule on the gateway's clock (here simulated)."""
    from gateway.app import Gateway

    config = parse_config(f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n\n[mqtt]\nenabled = false\n\n'
                          '[api]\nenabled = false\n\n[mdns]\nenabled = false\n\n'
                          f'[backup]\nenabled = true\ninterval_h = 1\ndirectory = "{tmp_path / "usb"}"\n',
                          str(tmp_path / "house.toml"))
    clock = SimulatedClock(START)
    gateway = Gateway(config, clock=clock, out=io.StringIO())
    run = asyncio.create_task(gateway.run(install_signal_handlers=False))
    try:
        await asyncio.wait_for(gateway.ready.wait(), 30)
        assert gateway.health()["backups"]["made"] == 0
        for _ in range(5):
            await asyncio.sleep(0)
        clock.advance_to(START + 3600)
        for _ in range(500):  # the backup runs in a worker thread: wait for it, boundedly
            if gateway.backups.made:
                break
            await asyncio.sleep(0.01)
        assert gateway.health()["backups"]["made"] == 1
        assert [p.name for p in (tmp_path / "usb").iterdir()] == ["hearth-backup-20260310-010000.tar.gz"]
    finally:
        gateway.request_stop()
        await asyncio.wait_for(run, 30)


def test_backup_config_is_checked() -> None:
    assert parse_config("[backup]\nenabled = true\nat = \"23:59\"\nkeep = 2\n").backup.keep == 2
    with pytest.raises(Exception, match=r"backup\.at"):
        parse_config("[backup]\nat = \"24:00\"\n")


# ------------------------------------------------------------------ end to end: a real gateway


PROFILE = """[[profiles]]
use = "elderly-monitoring"
[profiles.params]
contacts = ["daughter", "neighbour"]
panic_escalate_after = "1h"
temperature_for = "2h"
reminders = 0
"""


def hearth(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "hearth"
    env = dict(os.environ, HEARTH_DATA_DIR=str(data_dir))
    return subprocess.run([str(exe), *args], capture_output=True, text=True, env=env, timeout=60, check=False)


@pytest.fixture
def processes() -> Iterator[list[GatewayProcess]]:
    started: list[GatewayProcess] = []
    yield started
    for process in started:
        if process.proc and process.proc.poll() is None:
            process.stop()


@pytest.mark.mqtt
@pytest.mark.slow
def test_a_running_house_backed_up_and_restored_on_a_fresh_install(tmp_path: Path, mosquitto: Mosquitto,
                                                                    processes: list[GatewayProcess]) -> None:
    from tests.scenes.house import bridge_devices, device_id
    from tests.scenes.house import config_text as house_config

    api_port = free_port()
    old = tmp_path / "old"
    old.mkdir()
    config = old / "house.toml"
    config.write_text(f"[mqtt]\nport = {mosquitto.port}\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\n\n"
                      f"[store]\ncommit_interval_s = 0.5\n\n[api]\nport = {api_port}\n\n"
                      + house_config(profiles=PROFILE))
    gateway = GatewayProcess(config, old / "data")
    processes.append(gateway)
    gateway.start()
    assert gateway.token
    api = Api(api_port, gateway.token)
    z2m = FakeZigbee2Mqtt(mosquitto.port)
    try:
        z2m.announce(bridge_devices())
        z2m.publish("bedroom/climate", {"temperature": 21.0})
        z2m.publish("living/tv", {"state": "ON", "power": 80.0})
        tv = device_id("living/tv")
        wait_until(lambda: api.device(tv), what="the house's devices")
        status, _ = api.call("PATCH", f"/api/devices/{tv}", {"name": "Big telly", "area": "den"})
        assert status == 200
        z2m.publish("bedroom/panic", {"action": "single"})  # an alert, open
        z2m.publish("bedroom/climate", {"temperature": 14.0})  # a "for 2 h" hold, running
        wait_until(lambda: api.call("GET", "/api/alerts?state=open")[1]["alerts"], what="the panic alert")
        created = hearth("token", "create", "backup-test", "--config", str(config), data_dir=old / "data")
        assert created.returncode == 0, created.stderr
        script_token = next(word for word in created.stdout.split() if word.startswith("hth_"))
        status, listing = api.call("GET", "/api/devices")
        devices_before = sorted(d["id"] for d in listing["devices"])
        time.sleep(1.5)  # committed (every 0.5 s)

        # Backed up while it runs, and while the house keeps sending.
        for watts in range(5):
            z2m.publish("living/tv", {"power": 100.0 + watts})
        done = hearth("backup", str(tmp_path / "house.tar.gz"), "--config", str(config), data_dir=old / "data")
        assert done.returncode == 0, done.stderr
        assert "Wrote" in done.stdout
        assert gateway.stop() == 0
    finally:
        z2m.close()

    # A fresh install: nothing but the archive. The restore writes the config and the data directory.
    new = tmp_path / "new"
    new_config = new / "etc" / "house.toml"
    restored = hearth("restore", str(tmp_path / "house.tar.gz"), "--config", str(new_config),
                      "--data-dir", str(new / "data"), data_dir=new / "data")
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert new_config.read_text() == config.read_text()
    again = GatewayProcess(new_config, new / "data")
    processes.append(again)
    again.start()
    assert again.token is None  # the tokens came back: no new initial token was made
    log = again.log_text()
    assert "restored hold: elderly-monitoring.too-cold" in log, log
    for token in (gateway.token, script_token):  # the old tokens work on the restored house
        api = Api(api_port, token)
        status, listing = api.call("GET", "/api/devices")
        assert status == 200
        assert sorted(d["id"] for d in listing["devices"]) == devices_before
    tv_now = api.device(tv)
    assert tv_now is not None and (tv_now["name"], tv_now["area"]) == ("Big telly", "den")
    status, alerts = api.call("GET", "/api/alerts?state=open")
    assert [a["key"] for a in alerts["alerts"]] == ["panic"]
    assert again.stop() == 0
    shutil.rmtree(new / "data")


@pytest.mark.slow
def test_the_demo_house_backed_up_while_it_runs_and_restored(tmp_path: Path) -> None:
    """``hearth demo`` (its embedded broker, its simulated house, accelerated) backed up while it runs, restored
    into another data directory: every device of the demo's house, its scene state and its login are there."""
    from gateway.api.auth import TokenStore
    from gateway.sim import demo_house

    data = tmp_path / "demo"
    exe = Path(sys.executable).parent / "hearth"
    demo = subprocess.Popen([str(exe), "demo", "--speed", "600", "--port", str(free_port()), "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert demo.stdout is not None
        for _ in range(200):  # its banner: bounded in lines, and by the timeout of the test run
            line = demo.stdout.readline()
            if not line or "web UI:" in line:
                break
        assert "web UI:" in line, line
        time.sleep(4.0)  # 40 simulated minutes: the house's messages, commits every 5 real seconds
        config = tmp_path / "demo.toml"
        config.write_text(f'[gateway]\ndata_dir = "{data}"\n\n[store]\npath = "{data / "demo.db"}"\n')
        done = hearth("backup", str(tmp_path / "demo.tar.gz"), "--config", str(config), data_dir=data)
        assert done.returncode == 0, done.stderr
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    restored = tmp_path / "restored"
    again = hearth("restore", str(tmp_path / "demo.tar.gz"), "--config", str(tmp_path / "new.toml"),
                   "--data-dir", str(restored), data_dir=restored)
    assert again.returncode == 0, again.stderr + again.stdout
    assert (restored / "demo.db").is_file()  # the config's store path moved with the data directory
    assert "[store] path is in the old data directory" in again.stdout
    token = (restored / "demo-token").read_text().strip()
    assert TokenStore(restored / "tokens.json").verify(token) is not None

    async def check() -> None:
        async with Store(restored / "demo.db", SimulatedClock(time.time())) as store:
            devices = await store.load_devices()
            assert len(devices) == len(demo_house().devices)
            assert store.kv("scenes").get("state") is not None

    asyncio.run(check())

