"""Personal data (issue 20; ETSI EN 303 645 5.11 and 6): retention per kind, the export, the delete, the audit log.

Through the real API (a real aiohttp server on loopback, a real SQLite file) and the real ``hearth data`` CLI."""

from __future__ import annotations

import io
import json
import sqlite3
import time
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.ack import add_ack_routes
from gateway.api.app import ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.scenes import add_scene_routes
from gateway.cli import main
from gateway.clock import SimulatedClock, SystemClock
from gateway.config import parse_config
from gateway.devicemeta import DeviceMeta
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, DeviceInfo, Update
from gateway.personal import delete_offline, engine_retention_hook, prune_alert_list
from gateway.scenes.engine import SceneEngine
from gateway.scenes.notify import AckTokens
from gateway.store import AuditEntry, Retention, Store, StoreInUseError

START = 1_700_000_000.0
DAY_S = 86400.0
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another long passphrase 42"
DEVICE_NAME = "Grandma Bedroom Motion"
HISTORY_MARKER = "hist-marker-7f3a9c"


def _support(*attributes: str) -> CapabilitySupport:
    return CapabilitySupport(frozenset(attributes))


MULTI = DeviceInfo(id="zigbee2mqtt:0x00158d00000a11ce", name="Bedroom sensor", source="zigbee2mqtt",
                   suggested_area="bedroom",
                   components={"main": {"occupancy": _support("occupied"), "contact": _support("open"),
                                        "temperature": _support("celsius"), "energy_meter": _support("kwh"),
                                        "presence": _support("area")}})


def _hub(clock: Any) -> Hub:
    hub = Hub(clock)
    hub.upsert_device(MULTI, "zigbee2mqtt")
    hub.set_available(MULTI.id, True)
    return hub


def _changes(hub: Hub, value: int) -> None:
    hub.apply([Update(MULTI.id, "main", "occupancy", "occupied", value % 2 == 0),
               Update(MULTI.id, "main", "contact", "open", value % 2 == 1),
               Update(MULTI.id, "main", "temperature", "celsius", 20.0 + value),
               Update(MULTI.id, "main", "energy_meter", "kwh", 100.0 + value)])


# -------------------------------------------------------------------- retention per kind


async def test_retention_per_kind_with_a_simulated_clock(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    hub = _hub(clock)
    retention = Retention(history_days=30, presence_days=14, energy_days=400, audit_days=365)
    async with Store(tmp_path / "hearth.db", clock, retention=retention) as store:
        store.attach(hub)
        _changes(hub, 1)
        await store.flush()
        await store.audit(AuditEntry(clock.time(), "device.change", "user", "ann", "owner", MULTI.id))

        def kinds(rows: list[dict[str, Any]]) -> list[str]:
            return sorted({row["capability"] for row in rows})

        everything = ["contact", "energy_meter", "occupancy", "temperature"]
        clock.advance_to(START + 13 * DAY_S)
        assert (await store.purge())["history"] == 0
        assert kinds(await store.history()) == everything
        clock.advance_to(START + 14 * DAY_S + 1)  # presence, occupancy, contact, motion: two weeks
        assert (await store.purge())["history"] == 2
        assert kinds(await store.history()) == ["energy_meter", "temperature"]
        assert (await store.purge())["history"] == 0  # each block is visited once per kind
        clock.advance_to(START + 30 * DAY_S + 1)  # the rest of the history: 30 days
        assert (await store.purge())["history"] == 1
        assert kinds(await store.history()) == ["energy_meter"]
        assert len(await store.read_audit()) == 1
        clock.advance_to(START + 365 * DAY_S + 1)  # the audit log: a year
        counts = await store.purge()
        assert counts["audit"] == 1 and counts["history"] == 0
        assert kinds(await store.history()) == ["energy_meter"]
        clock.advance_to(START + 400 * DAY_S + 1)  # energy: 400 days
        assert (await store.purge())["history"] == 1
        assert await store.history() == []
        # new history after all that is kept as before
        _changes(hub, 2)
        await store.flush()
        assert (await store.purge())["history"] == 0
        assert kinds(await store.history()) == everything


async def test_a_kind_s_retention_keeps_the_rest_of_a_device_s_history_readable(tmp_path: Path) -> None:
    # Commits of only presence between commits of temperature: presence's shorter retention empties those
    # blocks, one of them the device's newest. The older temperatures must still be found by device, before and
    # after a new block is linked on, and nothing may say when the presence changes were.
    clock = SimulatedClock(START)
    hub = _hub(clock)
    retention = Retention(history_days=30, presence_days=14, energy_days=30, audit_days=365)
    path = tmp_path / "hearth.db"
    async with Store(path, clock, retention=retention) as store:
        store.attach(hub)
        presence_times = []
        for step in range(6):
            clock.advance_to(START + step * 600)
            if step % 2 == 0:
                hub.apply([Update(MULTI.id, "main", "temperature", "celsius", 20.0 + step)])
            else:
                hub.apply([Update(MULTI.id, "main", "occupancy", "occupied", step % 4 == 1)])
                presence_times.append(clock.time())
            await store.flush()

        async def temperatures() -> list[float]:
            return [row["value"] for row in await store.history(MULTI.id, limit=100)
                    if row["capability"] == "temperature"]

        clock.advance_to(START + 14 * DAY_S + 3600)
        assert (await store.purge())["history"] == 3
        assert await temperatures() == [20.0, 22.0, 24.0]
        hub.apply([Update(MULTI.id, "main", "temperature", "celsius", 30.0)])
        await store.flush()
        assert await temperatures() == [20.0, 22.0, 24.0, 30.0]
    async with Store(path, clock, retention=retention) as store:
        assert [row["value"] for row in await store.history(MULTI.id, limit=100)] == [20.0, 22.0, 24.0, 30.0]
    conn = sqlite3.connect(path)
    try:
        times = {t for row in conn.execute("SELECT t_first, t_last FROM history_block") for t in row}
        assert not times & set(presence_times)
    finally:
        conn.close()


def test_the_config_keys_reach_the_store() -> None:
    config = parse_config("[store]\npresence_retention_days = 7\naudit_retention_days = 30\n")
    retention = config.store.retention()
    assert retention.presence_days == 7 and retention.audit_days == 30 and retention.history_days == 30
    assert retention.history_days_of("presence") == 7 and retention.history_days_of("energy") == 400


def _alert(alert_id: str, raised: float, state: str = "resolved") -> dict[str, Any]:
    return {"id": alert_id, "key": "inactivity", "scene": "elderly.inactivity", "severity": "critical",
            "title": "No movement", "message": "No movement since 07:00", "state": state, "raised_at": raised,
            "acknowledged_at": None, "acknowledged_by": None,
            "resolved_at": raised + 60 if state == "resolved" else None,
            "resolved_by": "token:t-caregiver" if state == "resolved" else None, "resolution": None,
            "unanswered_at": None, "device_id": MULTI.id, "area": "bedroom", "notify": ["neighbour"],
            "escalate_after_s": None, "reminders": 0, "final_notice": True, "max_notifications": None, "step": 1,
            "resolve_key": None, "resolve_when": False, "next_escalation_at": None,
            "notifications": [{"t": raised, "target": "neighbour", "id": f"{alert_id}#0", "kind": "alert",
                               "status": "delivered"}]}


def test_alert_and_delivery_retention() -> None:
    retention = Retention(alert_days=180, notification_days=90)
    now = START + 200 * DAY_S
    alerts = [_alert("old", START), _alert("middle", START + 100 * DAY_S), _alert("new", now - DAY_S),
              _alert("open", START, state="open")]
    kept, gone_alerts, gone_notes = prune_alert_list(alerts, now, retention)
    assert [a["id"] for a in kept] == ["middle", "new", "open"]
    assert gone_alerts == 1 and gone_notes == 1
    assert kept[0]["notifications"] == [] and kept[1]["notifications"] and kept[2]["notifications"]


async def test_the_engine_hook_prunes_alerts_and_traces(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    hub = _hub(clock)
    async with Store(tmp_path / "hearth.db", clock) as store:
        engine = SceneEngine(hub, [], notifier=_Quiet(), storage=store.kv("scenes"),
                             trace_storage=store.kv("scene_traces"))
        engine.alerts = {"old": _alert("old", START)}
        store.kv("scene_traces").set("gone.scene", [{"id": "a", "t": "2023-11-14T22:13:20.000Z"},
                                                   {"id": "b", "t": "2099-01-01T00:00:00.000Z"}])
        hook = engine_retention_hook(store, engine, Retention(alert_days=180, trace_days=14))
        store.add_retention_hook(hook)
        clock.advance_to(START + 181 * DAY_S)
        counts = await store.purge()
        assert counts["alerts"] == 1 and counts["traces"] == 1
        assert engine.alerts == {}
        assert [t["id"] for t in store.kv("scene_traces").get("gone.scene")] == ["b"]


class _Quiet:
    def send(self, target: str, notification: Any) -> None:
        pass


# -------------------------------------------------------------------- the API: audit, export, delete


@dataclass
class Served:
    url: str
    http: aiohttp.ClientSession
    store: Store
    engine: SceneEngine
    tokens: dict[str, str]
    token_file: Path
    db: Path
    links: AckTokens


CONFIG_TEXT = """
[notify.neighbour]
kind = "webhook"
url = "https://hooks.example.net/secret-path-123?key=abc"
headers = { Authorization = "Bearer webhook-secret-999" }
[notify.phone]
kind = "apprise"
urls = ["tgram://123456:TELEGRAM-BOT-SECRET/987"]
"""


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    hub = _hub(SystemClock())
    db = tmp_path / "hearth.db"
    token_file = tmp_path / "tokens.json"
    tokens = TokenStore(token_file)
    creds = {role: tokens.create(f"t-{role}", role, time.time() + 3600 if role == "installer" else None)[0]
             for role in ("owner", "caregiver", "installer", "resident")}
    config = parse_config(f'[gateway]\ndata_dir = "{tmp_path}"\n' + CONFIG_TEXT)
    async with Store(db, hub.clock) as store:
        store.attach(hub)
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        engine = SceneEngine(hub, [], notifier=_Quiet(), storage=store.kv("scenes"),
                             trace_storage=store.kv("scene_traces"), commit=store.flush)
        app = create_app(hub, tokens, health=lambda: {"status": "ok"}, store=store, device_meta=meta, config=config)
        add_scene_routes(app, engine)
        links = AckTokens(hub.clock, store.kv("ack_links"))
        add_ack_routes(app, engine, links)
        async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as http:
            yield Served(server.url, http, store, engine, creds, token_file, db, links)
        meta.detach()
        store.detach()


async def _call(s: Served, method: str, path: str, role: str | None = "owner", **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {s.tokens[role]}"} if role else {}
    async with s.http.request(method, s.url + path, headers=headers, **kwargs) as response:
        body = await response.read()
        if response.content_type == "application/json":
            return response.status, json.loads(body)
        return response.status, body


async def test_every_audited_action_says_who_did_it(served: Served) -> None:
    s = served
    s.engine.alerts["a1"] = _alert("a1", time.time(), state="open")
    assert (await _call(s, "POST", "/api/alerts/a1/ack", "caregiver"))[0] == 200
    assert (await _call(s, "PATCH", f"/api/devices/{MULTI.id}", "installer",
                        json={"name": DEVICE_NAME, "area": "bedroom"}))[0] == 200
    assert (await _call(s, "PUT", "/api/areas/bedroom", "owner", json={"name": "Grandma's room"}))[0] == 200
    status, made = await _call(s, "POST", "/api/tokens", json={"name": "script", "role": "caregiver"})
    assert status == 201
    assert (await _call(s, "DELETE", f"/api/tokens/{made['id']}"))[0] == 204
    assert (await _call(s, "POST", "/api/users", json={"username": "ann", "password": PASSWORD,
                                                        "role": "caregiver"}))[0] == 201
    assert (await _call(s, "PATCH", "/api/users/ann", json={"password": NEW_PASSWORD}))[0] == 200
    for _ in range(3):
        assert (await _call(s, "POST", "/api/login", None, json={"username": "ann", "password": "wrong guess!"}))[0] \
            == 401
    assert (await _call(s, "PUT", "/api/mode", json={"mode": "away"}))[0] == 200
    s.engine.alerts["a2"] = _alert("a2", time.time(), state="open")  # acknowledged by the neighbour's link
    assert (await _call(s, "POST", f"/api/ack/{s.links.issue('a2', 'neighbour')}", None))[0] == 200
    assert (await _call(s, "POST", "/api/alerts/a1/resolve", "caregiver", json={"note": "she was in the garden"}))[0] \
        == 200

    assert (await _call(s, "GET", "/api/audit", "caregiver"))[0] == 403
    status, body = await _call(s, "GET", "/api/audit?limit=100")
    assert status == 200
    entries = {e["action"]: e for e in body["entries"]}  # newest first: the first of each action wins
    ack = entries["alert.acknowledge"]
    assert (ack["actor_kind"], ack["actor"], ack["role"], ack["target"]) == ("token", "t-caregiver", "caregiver", "a1")
    assert ack["address"] == "127.0.0.1" and ack["t"] > 0
    assert entries["alert.resolve"]["detail"] == {"note": "she was in the garden"}
    (by_link,) = [e for e in body["entries"] if e["action"] == "alert.acknowledge" and e["target"] == "a2"]
    assert (by_link["actor_kind"], by_link["actor"], by_link["role"]) == ("link", "neighbour", None)
    change = entries["device.change"]
    assert (change["actor"], change["role"], change["target"]) == ("t-installer", "installer", MULTI.id)
    assert change["detail"]["changes"] == {"name": DEVICE_NAME, "area": "bedroom"}
    assert entries["area.rename"]["detail"]["name"] == "Grandma's room"
    assert entries["token.create"]["target"] == "script" and entries["token.create"]["actor"] == "t-owner"
    assert entries["token.revoke"]["target"] == "script"
    assert entries["user.create"]["target"] == "ann" and entries["user.create"]["detail"]["role"] == "caregiver"
    assert entries["user.change"]["detail"]["password_changed"] is True
    assert entries["mode.set"]["target"] == "away"
    failed = [e for e in body["entries"] if e["action"] == "login.failed"]
    assert len(failed) == 1 and failed[0]["detail"]["count"] == 3 and failed[0]["address"] == "127.0.0.1"
    assert failed[0]["actor"] is None  # nobody: the name tried is not kept
    # filters
    status, only = await _call(s, "GET", "/api/audit?action=token.create")
    assert [e["action"] for e in only["entries"]] == ["token.create"]
    assert (await _call(s, "GET", "/api/audit?limit=0"))[0] == 400


def _secrets(s: Served) -> list[bytes]:
    """Every secret and every hash the gateway keeps: none may be in an export."""
    found = [token.encode() for token in s.tokens.values()]
    found += [PASSWORD.encode(), NEW_PASSWORD.encode(), b"TELEGRAM-BOT-SECRET", b"webhook-secret-999",
              b"secret-path-123"]
    for name in ("tokens.json", "users.json", "sessions.json"):
        path = s.token_file.with_name(name)
        if not path.exists():
            continue
        text = path.read_text()
        found += [m.encode() for m in _hex_and_hashes(text)]
    assert len(found) > 8
    return found


def _hex_and_hashes(text: str) -> list[str]:
    import re

    # argon2 hashes, and SHA-256 digests and salts (hex)
    return re.findall(r"\$argon2id\$[^\"]+", text) + re.findall(r"\b[0-9a-f]{32,}\b", text)


def _archive_bytes(blob: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


async def test_the_export_holds_what_it_must_and_never_a_secret(served: Served) -> None:
    s = served
    s.engine.alerts["a1"] = _alert("a1", time.time(), state="open")
    assert (await _call(s, "POST", "/api/alerts/a1/ack", "caregiver"))[0] == 200
    assert (await _call(s, "PATCH", f"/api/devices/{MULTI.id}", json={"name": DEVICE_NAME}))[0] == 200
    assert (await _call(s, "POST", "/api/users", json={"username": "ann", "password": PASSWORD,
                                                        "role": "caregiver"}))[0] == 201
    # a browser session too (its id and CSRF token are secrets, their hashes are kept)
    async with s.http.post(s.url + "/api/login", json={"username": "ann", "password": PASSWORD}) as response:
        assert response.status == 200
        session_id = response.cookies["hearth_session"].value
    hub = s.store._hub
    assert hub is not None
    for i in range(5):
        _changes(hub, i)
    assert (await _call(s, "GET", "/api/data/export", "caregiver"))[0] == 403
    status, blob = await _call(s, "GET", "/api/data/export")
    assert status == 200 and isinstance(blob, bytes)
    files = _archive_bytes(blob)
    manifest = json.loads(files["manifest.json"])
    assert manifest["format"] == "hearth-personal-data" and set(manifest["files"]) == set(files) - {"manifest.json"}
    devices = json.loads(files["devices.json"])
    assert [(d["id"], d["name"], d["area"]) for d in devices["devices"]] == [(MULTI.id, DEVICE_NAME, "bedroom")]
    assert devices["owner_edits"][MULTI.id]["name"] == DEVICE_NAME
    history = json.loads(files["history.json"])
    assert len(history) >= 20 and {"t", "device_id", "capability", "attribute", "value"} <= set(history[0])
    alerts = json.loads(files["alerts.json"])["alerts"]
    assert alerts[0]["acknowledged_by"] == "token:t-caregiver"
    users = json.loads(files["users.json"])
    assert users == [{"name": "ann", "role": "caregiver", "created": users[0]["created"], "expires": None,
                      "language": None}]
    assert sorted(t["name"] for t in json.loads(files["tokens.json"])) == [
        "t-caregiver", "t-installer", "t-owner", "t-resident"]
    assert json.loads(files["sessions.json"])[0]["subject"] == "ann"
    contacts = json.loads(files["notify_contacts.json"])
    assert contacts["neighbour"]["kind"] == "webhook" and contacts["phone"]["urls"] == ["tgram://(redacted)"]
    assert any(e["action"] == "alert.acknowledge" for e in json.loads(files["audit.json"]))
    everything = blob + b"".join(files.values())
    for secret in [*_secrets(s), session_id.encode()]:
        assert secret not in everything, secret
    # the export itself is audited
    status, body = await _call(s, "GET", "/api/audit?action=data.export")
    assert body["entries"][0]["actor"] == "t-owner" and body["entries"][0]["detail"]["records"]["history.json"] >= 20


def _file_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())


async def test_delete_through_the_api_removes_the_history_and_its_bytes(served: Served) -> None:
    s = served
    hub = s.store._hub
    assert hub is not None
    hub.apply([Update(MULTI.id, "main", "presence", "area", HISTORY_MARKER)])  # then history only:
    hub.apply([Update(MULTI.id, "main", "presence", "area", "hall")])  # the device's state is now this
    _changes(hub, 1)
    s.engine.alerts["old"] = _alert("old", time.time() - 3600)
    s.engine.alerts["open"] = _alert("open", time.time(), state="open")
    await s.store.flush()
    assert HISTORY_MARKER.encode() in _file_bytes(s.db)
    assert (await _call(s, "POST", "/api/data/delete", json={"confirm": "yes"}))[0] == 400
    assert (await _call(s, "POST", "/api/data/delete", json={"scope": "all", "confirm": "delete personal data"}))[0] \
        == 409
    assert (await _call(s, "POST", "/api/data/delete", "caregiver", json={"confirm": "delete personal data"}))[0] \
        == 403
    status, body = await _call(s, "POST", "/api/data/delete", json={"scope": "history",
                                                                    "confirm": "delete personal data"})
    assert status == 200, body
    assert body["deleted"]["history_changes"] >= 5 and body["deleted"]["alerts"] == 1
    assert body["deleted"]["alerts_kept_open"] == 1
    assert await s.store.history() == []
    assert set(s.engine.alerts) == {"open"}  # an escalation in progress is not history
    await s.store.flush()
    assert HISTORY_MARKER.encode() not in _file_bytes(s.db)
    # the device stays, and the delete is the first line of the new audit log
    assert MULTI.id in hub.devices
    status, audit = await _call(s, "GET", "/api/audit")
    assert [e["action"] for e in audit["entries"]] == ["data.delete"]
    assert audit["entries"][0]["actor"] == "t-owner"


# -------------------------------------------------------------------- the CLI


async def test_the_cli_refuses_to_delete_under_a_running_gateway(tmp_path: Path) -> None:
    config = parse_config(f'[gateway]\ndata_dir = "{tmp_path}"\n')
    async with Store(config.store_path, SystemClock()):
        with pytest.raises(StoreInUseError):
            await delete_offline(config, everything=True)
        # ... while an export works beside it
    assert config.store_path.exists()


def test_cli_export_then_factory_reset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[gateway]\ndata_dir = "{tmp_path}"\n' + CONFIG_TEXT)
    config = parse_config(config_file.read_text())
    tokens = TokenStore(config.token_file)
    token = tokens.create("kitchen-tablet", "owner")[0]

    async def fill() -> None:
        clock = SystemClock()
        hub = _hub(clock)
        async with Store(config.store_path, clock) as store:
            store.attach(hub)
            meta = DeviceMeta(hub, store.kv("device_meta"))
            meta.attach()
            meta.update(MULTI.id, {"name": DEVICE_NAME})
            _changes(hub, 3)
            await store.flush()
            # the CLI's export works while the store is open (a running gateway)
            # (the CLI in a thread: it runs its own event loop, as it does in its own process)
            assert await asyncio.to_thread(
                main, ["data", "export", "--config", str(config_file), "--out", str(tmp_path / "live.zip")]) == 0
            assert await asyncio.to_thread(main, ["data", "delete", "--all", "--yes", "--config", str(config_file)]) \
                == 1
            meta.detach()
            store.detach()

    asyncio.run(fill())
    assert "the gateway is running" in capsys.readouterr().err
    live = _archive_bytes((tmp_path / "live.zip").read_bytes())
    assert json.loads(live["devices.json"])["devices"][0]["name"] == DEVICE_NAME
    assert token.encode() not in b"".join(live.values())
    assert (tmp_path / "live.zip").stat().st_mode & 0o777 == 0o600
    assert DEVICE_NAME.encode() in _file_bytes(config.store_path)

    assert main(["data", "delete", "--all", "--yes", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert "1 devices" in out and "1 tokens" in out
    assert DEVICE_NAME.encode() not in _file_bytes(config.store_path)
    assert not config.token_file.exists()
    conn = sqlite3.connect(config.store_path)
    try:
        assert conn.execute("SELECT count(*) FROM devices").fetchone() == (0,)
        assert conn.execute("SELECT action, target FROM audit").fetchall() == [("data.delete", "everything")]
    finally:
        conn.close()
    assert config_file.exists()
    assert main(["data", "audit", "--config", str(config_file)]) == 0
    assert "data.delete" in capsys.readouterr().out


def test_accounts_and_tokens_changed_from_the_command_line_are_audited(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    config_file = tmp_path / "config.toml"
    config_file.write_text(f'[gateway]\ndata_dir = "{tmp_path}"\n' + CONFIG_TEXT)
    config = parse_config(config_file.read_text())

    async def make_database() -> None:
        async with Store(config.store_path, SystemClock()):
            pass

    asyncio.run(make_database())
    cfg = ["--config", str(config_file)]
    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery staple 42\n"))
    assert main(["user", "add", "nurse", "--role", "caregiver", "--password-stdin", *cfg]) == 0
    assert main(["user", "set", "nurse", "--role", "installer", "--expires", "7d", *cfg]) == 0
    assert main(["token", "create", "tablet", "--role", "resident", *cfg]) == 0
    token = next(line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("hth_"))
    assert main(["token", "revoke", "tablet", *cfg]) == 0
    assert main(["user", "remove", "nurse", *cfg]) == 0
    conn = sqlite3.connect(config.store_path)
    try:
        rows = conn.execute("SELECT action, target, actor_kind, address, detail FROM audit ORDER BY id").fetchall()
    finally:
        conn.close()
    assert [(a, t, k, addr) for a, t, k, addr, _ in rows] == [
        ("user.create", "nurse", "cli", "local"), ("user.change", "nurse", "cli", "local"),
        ("token.create", "tablet", "cli", "local"), ("token.revoke", "tablet", "cli", "local"),
        ("user.remove", "nurse", "cli", "local")]
    assert json.loads(rows[1][4])["role"] == "installer"
    assert token not in str(rows) and "horse" not in str(rows)  # neither the token nor the password
