"""``hearth doctor``: every check against the real thing where there is one here (a Mosquitto on loopback, a
store made by the gateway's own Store, this machine's clock and disk), against a fake /sys where there is no
hardware (Bluetooth), and never a traceback for a bad config."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from gateway import __version__
from gateway.cli import main
from gateway.clock import SystemClock
from gateway.doctor import (
    Check,
    DoctorContext,
    check_ble,
    check_mdns,
    clock_synchronised,
    discover,
    exit_code,
    gateway_pid,
    mqtt_probe,
    run_checks,
    unit_settings,
)
from gateway.service import ServiceOptions, unit_text
from gateway.store import SCHEMA_VERSION, Store
from tests.broker import Mosquitto, free_port


def _doctor_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["doctor", "--json", *args])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, json.loads(captured.out)


def _by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["id"]: check for check in report["checks"]}


def _config(tmp_path: Path, body: str = "") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n\n{body}')
    return path


def _context(config: Path) -> DoctorContext:
    context = discover(str(config))
    assert run_checks(context, only=set())[0].status == "ok"  # loads the config
    return context


def test_exit_codes_follow_the_worst_status() -> None:
    def checks(*statuses: str) -> list[Check]:
        return [Check(str(i), "t", s, "f") for i, s in enumerate(statuses)]  # type: ignore[arg-type]

    assert exit_code(checks("ok", "ok")) == 0
    assert exit_code(checks("ok", "warn")) == 1
    assert exit_code(checks("warn", "fail", "ok")) == 2


@pytest.mark.parametrize("text, expected", [
    ("[mqtt]\nport = 99999\n", "port"),
    ("[mqtt\nport = 1\n", "not valid TOML"),
    ("[mqqt]\nport = 1\n", "unknown key"),
])
def test_a_bad_config_is_a_finding_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   text: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    code, report = _doctor_json(capsys, "--config", str(path))
    assert code == 2 and report["status"] == "fail"
    config = _by_id(report)["config"]
    assert config["status"] == "fail" and expected in config["finding"] and "config check" in config["hint"]
    # What needs no config still ran; what needs it did not pretend.
    assert set(_by_id(report)) == {"config", "clock", "versions"}


def test_a_missing_config_file_is_a_finding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = _doctor_json(capsys, "--config", str(tmp_path / "nope.toml"))
    assert code == 2 and "cannot read" in _by_id(report)["config"]["finding"]
    assert main(["doctor", "--config", str(tmp_path / "nope.toml")]) == 2  # the text form too
    assert "[FAIL] Config" in capsys.readouterr().out


@pytest.mark.mqtt
def test_broker_reachable_and_its_nodelay(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          mosquitto: Mosquitto) -> None:
    config = _config(tmp_path, f"[mqtt]\nhost = \"127.0.0.1\"\nport = {mosquitto.port}\n")
    code, report = _doctor_json(capsys, "--config", str(config), "--only", "broker", "--only", "nodelay",
                                "--mosquitto-conf", str(mosquitto.config_path))
    checks = _by_id(report)
    assert checks["broker"]["status"] == "ok" and "accepted an MQTT login" in checks["broker"]["finding"]
    assert checks["nodelay"]["status"] == "ok" and checks["nodelay"]["details"]["nodelay"] is True
    assert code == 0

    # Debian's default mosquitto.conf: no set_tcp_nodelay line (and an include_dir, followed).
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "local.conf").write_text("listener 1883\n")
    default = tmp_path / "mosquitto.conf"
    default.write_text(f"# Place your local configuration in {conf_d}/\npersistence true\ninclude_dir {conf_d}\n")
    code, report = _doctor_json(capsys, "--config", str(config), "--only", "nodelay", "--mosquitto-conf", str(default))
    nodelay = _by_id(report)["nodelay"]
    assert code == 1 and nodelay["status"] == "warn" and "20 ms" in nodelay["finding"]
    assert "set_tcp_nodelay true" in nodelay["hint"]
    (conf_d / "local.conf").write_text("listener 1883\nset_tcp_nodelay true\n")
    _, report = _doctor_json(capsys, "--config", str(config), "--only", "nodelay", "--mosquitto-conf", str(default))
    assert _by_id(report)["nodelay"]["status"] == "ok"


def test_no_broker_listening_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, f"[mqtt]\nport = {free_port()}\n")
    code, report = _doctor_json(capsys, "--config", str(config), "--only", "broker")
    broker = _by_id(report)["broker"]
    assert code == 2 and broker["status"] == "fail" and "cannot connect" in broker["finding"]
    assert "embedded" in broker["hint"]


@pytest.mark.mqtt
def test_a_refused_login_is_said(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "closed", extra_config=["allow_anonymous false"]) as broker:
        ok, what = mqtt_probe("127.0.0.1", broker.port, username="hearth", password="wrong")
    assert not ok and "refused the login" in what


def test_embedded_broker_is_nodelay_and_its_absence_a_warning(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, f'[mqtt]\nmode = "embedded"\nport = {free_port()}\n')
    code, report = _doctor_json(capsys, "--config", str(config), "--only", "broker", "--only", "nodelay")
    checks = _by_id(report)
    assert checks["nodelay"]["status"] == "ok" and "TCP_NODELAY" in checks["nodelay"]["finding"]
    assert checks["broker"]["status"] == "warn" and "is the gateway running" in checks["broker"]["hint"]
    assert code == 1


def _store(path: Path) -> None:
    async def make() -> None:
        async with Store(path, SystemClock()) as store:
            store.kv("test").set("k", "v")
            await store.flush()

    asyncio.run(make())


def _fingerprint(folder: Path) -> dict[str, tuple[str, float]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime) for p in folder.iterdir()}


def test_database_is_checked_read_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    code, report = _doctor_json(capsys, "--config", str(config), "--only", "database")
    assert code == 0 and "no database yet" in _by_id(report)["database"]["finding"]
    assert not (tmp_path / "data").exists()  # the doctor made nothing

    db = tmp_path / "data" / "hearth.db"
    _store(db)
    before = _fingerprint(db.parent)
    _code, report = _doctor_json(capsys, "--config", str(config), "--only", "database")
    database = _by_id(report)["database"]
    assert database["status"] == "ok" and database["details"]["quick_check"] == ["ok"]
    assert database["details"]["schema_version"] == SCHEMA_VERSION == database["details"]["code_schema_version"]
    assert _fingerprint(db.parent) == before  # not a byte, not a timestamp changed, no file added

    async def while_a_gateway_has_it_open() -> None:
        async with Store(db, SystemClock()) as store:
            store.kv("test").set("k2", "v2")
            await store.flush()
            live = {name: value[0] for name, value in _fingerprint(db.parent).items() if not name.endswith("-shm")}
            _code, report = await asyncio.to_thread(_doctor_json, capsys, "--config", str(config), "--only",
                                                   "database")
            assert _by_id(report)["database"]["status"] == "ok", report
            assert "live WAL" in _by_id(report)["database"]["details"]["read"]
            assert gateway_pid(db) == os.getpid()  # the store's lock names the process that holds it
            after = {name: value[0] for name, value in _fingerprint(db.parent).items() if not name.endswith("-shm")}
            assert after == live  # the database and its WAL as the gateway left them (-shm: readers' marks)

    asyncio.run(while_a_gateway_has_it_open())
    db.chmod(stat.S_IRUSR)  # read-only file: still checked (as root the mode does not bind; then it proves nothing)
    _, report = _doctor_json(capsys, "--config", str(config), "--only", "database")
    assert _by_id(report)["database"]["status"] == "ok"
    db.chmod(0o600)


def test_a_newer_schema_and_a_foreign_file_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    db = tmp_path / "data" / "hearth.db"
    _store(db)
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    conn.close()
    code, report = _doctor_json(capsys, "--config", str(config), "--only", "database")
    database = _by_id(report)["database"]
    assert code == 2 and database["status"] == "fail" and "newer than this Hearth" in database["finding"]

    for name in os.listdir(db.parent):
        (db.parent / name).unlink()
    db.write_bytes(b"this is not a database" * 100)
    code, report = _doctor_json(capsys, "--config", str(config), "--only", "database")
    assert code == 2 and _by_id(report)["database"]["status"] == "fail"


def _sys_tree(root: Path, bluetooth: dict[str, dict[str, str]] | None, net: dict[str, str]) -> Path:
    if bluetooth is not None:
        for adapter, rfkill in bluetooth.items():
            folder = root / "sys/class/bluetooth" / adapter / "rfkill0"
            folder.mkdir(parents=True)
            for kind, value in rfkill.items():
                (folder / kind).write_text(value + "\n")
    for name, flags in net.items():
        (root / "sys/class/net" / name).mkdir(parents=True)
        (root / "sys/class/net" / name / "flags").write_text(flags + "\n")
    return root


def test_ble_without_an_adapter_is_a_warning(tmp_path: Path) -> None:
    context = _context(_config(tmp_path))
    check = check_ble(context, sys_root=_sys_tree(tmp_path / "none", None, {}))
    assert check.status == "warn" and "no Bluetooth adapter hci0" in check.finding
    blocked = check_ble(context, sys_root=_sys_tree(tmp_path / "blocked", {"hci0": {"soft": "1", "hard": "0"}}, {}))
    assert blocked.status == "warn" and "rfkill" in blocked.finding and "rfkill unblock" in blocked.hint
    off = check_ble(_context(_config(tmp_path / "off", "[adapters.ble]\nscanner = false\n")),
                    sys_root=tmp_path / "none")
    assert off.status == "ok"


async def test_ble_adapter_present_and_bluez_answering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The D-Bus half against the mock BlueZ of the BLE tests (a private system bus): the adapter in /sys (fake:
    no radio here) and BlueZ answering this user's read-only call."""
    from tests.ble_mock.fixtures import MockBluez, require_tooling

    require_tooling()
    context = _context(_config(tmp_path))
    sys_root = _sys_tree(tmp_path / "sys", {"hci0": {"soft": "0", "hard": "0"}}, {})
    bluez = MockBluez(tmp_path / "bluez")
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bluez.address)
    try:
        await bluez.start()
        check = await asyncio.to_thread(check_ble, context, sys_root)
        assert check.status == "ok" and "BlueZ answers (adapters: hci0)" in check.finding, check
        bluez.stop()  # BlueZ and its bus gone: a warning that says so
        check = await asyncio.to_thread(check_ble, context, sys_root)
        assert check.status == "warn" and "hci0 is present, but" in check.finding, check
    finally:
        bluez.close()


def test_ble_on_this_machine_never_crashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _code, report = _doctor_json(capsys, "--config", str(_config(tmp_path)), "--only", "ble")
    assert _by_id(report)["ble"]["status"] in ("ok", "warn")


def test_mdns_is_judged_from_interface_flags(tmp_path: Path) -> None:
    context = _context(_config(tmp_path))
    only_loopback = check_mdns(context, sys_root=_sys_tree(tmp_path / "lo", None, {"lo": "0x9"}))
    assert only_loopback.status == "warn" and "loopback" in only_loopback.finding
    lan = check_mdns(context, sys_root=_sys_tree(tmp_path / "lan", None, {"lo": "0x9", "eth0": "0x1003",
                                                                          "wlan0": "0x1002"}))  # wlan0: down
    assert lan.status == "ok" and lan.details["interfaces"] == ["eth0"] and "nothing was sent" in lan.finding
    named = check_mdns(_context(_config(tmp_path / "named", '[mdns]\ninterfaces = ["wlan0"]\n')),
                       sys_root=tmp_path / "lan")
    assert named.status == "warn" and "wlan0" in named.finding
    off = check_mdns(_context(_config(tmp_path / "off", "[mdns]\nenabled = false\n")), sys_root=tmp_path / "lo")
    assert off.status == "ok"


def test_clock_sources(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "systemd/timesync").mkdir(parents=True)
    (run / "systemd/timesync/synchronized").touch()
    assert clock_synchronised(run_root=run)[0] is True
    fake = tmp_path / "timedatectl"
    fake.write_text("#!/bin/sh\necho no\n")
    fake.chmod(0o755)
    synced, how = clock_synchronised(run_root=tmp_path / "empty", timedatectl=str(fake))
    assert synced is False and "NTPSynchronized=no" in how
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\necho 'System has not been booted with systemd' >&2; exit 1\n")
    broken.chmod(0o755)
    synced, how = clock_synchronised(run_root=tmp_path / "empty", timedatectl=str(broken))
    assert synced in (True, False) and "adjtimex" in how  # falls back to the kernel's own state


def test_disk_exposure_and_versions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path, '[api]\nhost = "0.0.0.0"\n\n[mdns]\nenabled = false\n')
    _store(tmp_path / "data" / "hearth.db")
    code, report = _doctor_json(capsys, "--config", str(config), "--only", "disk", "--only", "exposure",
                                "--only", "versions")
    checks = _by_id(report)
    disk = checks["disk"]["details"]
    assert disk["free_bytes"] > 0 and disk["database_bytes"] > 0 and "wal_bytes" in disk
    exposure = checks["exposure"]
    assert exposure["status"] == "ok" and "HTTPS on 0.0.0.0:8470 (beyond loopback)" in exposure["finding"]
    assert exposure["details"]["listeners"][0]["tls"] is True
    versions = checks["versions"]
    assert versions["details"]["hearth"] == __version__
    assert {"zigbee2mqtt", "ble", "mdns"} <= {p["name"] for p in versions["details"]["plugins"]}

    insecure = _config(tmp_path / "insecure", '[api]\nhost = "0.0.0.0"\ntls = "off"\ninsecure_http = true\n')
    code, report = _doctor_json(capsys, "--config", str(insecure), "--only", "exposure")
    assert code == 1 and "insecure_http" in _by_id(report)["exposure"]["hint"]


def test_the_service_unit_names_config_and_data(tmp_path: Path) -> None:
    unit = tmp_path / "hearth.service"
    unit.write_text(unit_text(ServiceOptions(config=Path("/etc/hearth/config.toml"))))
    assert unit_settings(unit) == (Path("/etc/hearth/config.toml"), Path("/var/lib/hearth"))
    context = discover(None, unit=unit, environ={})
    assert context.config_path == Path("/etc/hearth/config.toml") and context.data_dir_override == Path(
        "/var/lib/hearth")
    assert discover(None, unit=unit, environ={"HEARTH_DATA_DIR": "/x"}).config_path is None  # the env wins


def test_text_output_has_a_line_per_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["doctor", "--config", str(_config(tmp_path, "[mqtt]\nenabled = false\n")), "--only", "broker",
                 "--only", "clock"])
    out = capsys.readouterr().out
    assert "[ok]   MQTT broker" in out and "Clock" in out and f"exit {code}" in out
