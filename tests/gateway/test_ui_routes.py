"""Login, the static UI, history, energy and device edits, on a real aiohttp server with a real SQLite store."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from gateway.api.app import ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.scenes import add_scene_routes
from gateway.api.ui import WEB_DIR, energy_per_day
from gateway.clock import SimulatedClock
from gateway.config import Config
from gateway.devicemeta import DeviceMeta
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, DeviceInfo, Update
from gateway.scenes.engine import EngineSettings, SceneEngine
from gateway.scenes.setup import load_profiles
from gateway.store import Store

# 2026-03-10 12:00 UTC, a Tuesday
START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC).timestamp()
HOUR_S = 3600.0
DAY_S = 86400.0


def _support(attrs: set[str], commands: set[str] = frozenset()) -> CapabilitySupport:
    return CapabilitySupport(frozenset(attrs), frozenset(commands))


PLUG = DeviceInfo(
    id="zigbee2mqtt:0x00158d0001db18f9", name="0x00158d0001db18f9", source="zigbee2mqtt", aliases=("Plug",),
    components={"main": {"on_off": _support({"on"}, {"on", "off", "toggle"}),
                         "power_meter": _support({"watts", "volts"}),
                         "energy_meter": _support({"kwh"})}},
)
FRIDGE = DeviceInfo(
    id="shelly:fridge", name="Fridge plug", source="shelly", suggested_area="garage",
    components={"main": {"power_meter": _support({"watts"}), "energy_meter": _support({"kwh"})}},
)
SENSOR = DeviceInfo(id="ble:a4:c1:38:00:11:22", name="Bathroom", source="ble",
                    components={"main": {"temperature": _support({"celsius"})}})
AREAS = {"Plug": "kitchen"}


@dataclass
class Api:
    hub: Hub
    clock: SimulatedClock
    store: Store
    meta: DeviceMeta
    token: str
    server: ApiServer
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else (body if isinstance(body, (str, bytes)) else json.dumps(body))
        async with self.session.request(method, self.server.url + path, data=data, headers=headers) as response:
            raw = await response.read()
            if response.content_type == "application/json":
                return response.status, json.loads(raw), response
            return response.status, raw, response


def _hub(clock: SimulatedClock) -> Hub:
    return Hub(clock, areas=AREAS, tags={"Plug": ["deferrable"]})


async def _serve(tmp_path: Path, clock: SimulatedClock, hub: Hub, store: Store, meta: DeviceMeta,
                 engine: SceneEngine | None = None) -> tuple[ApiServer, str]:
    tokens = TokenStore(tmp_path / "tokens.json", now=clock.time)
    token = tokens.ensure_initial() or ""
    app = create_app(hub, tokens, health=lambda: {"status": "ok"}, store=store, device_meta=meta)
    if engine is not None:
        add_scene_routes(app, engine)
    return ApiServer(app, "127.0.0.1", 0), token


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    clock = SimulatedClock(START)
    hub = _hub(clock)
    async with Store(tmp_path / "hearth.db", clock) as store:
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        hub.restore(await store.load_devices())
        store.attach(hub)
        for info in (PLUG, FRIDGE, SENSOR):
            hub.upsert_device(info, info.source)
        server, token = await _serve(tmp_path, clock, hub, store, meta)
        async with server, aiohttp.ClientSession() as session:
            yield Api(hub, clock, store, meta, token, server, session)


# -------------------------------------------------------------------- login


JSON = {"Content-Type": "application/json"}


async def test_login_says_whether_the_token_is_good(api: Api) -> None:
    status, body, _ = await api.call("POST", "/api/login", {"token": api.token}, auth=False, headers=JSON)
    assert (status, body["ok"], body["name"], body["role"]) == (200, True, "initial", "owner")
    status, body, response = await api.call("POST", "/api/login", {"token": api.token + "x"}, auth=False,
                                            headers=JSON)
    assert status == 401 and body["ok"] is False and api.token not in json.dumps(body)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for bad, field in (("nope", "body"), ({"token": 5}, "token"), ({"token": "a", "password": "b"}, "body"),
                       ({"token": "a", "extra": 1}, "extra"), ([], "body")):
        status, body, _ = await api.call("POST", "/api/login", bad, auth=False, headers=JSON)
        assert status == 400 and body["field"] == field, bad
    # Not JSON (a cross-site form could post that without a preflight): refused unread.
    status, body, _ = await api.call("POST", "/api/login", {"token": api.token}, auth=False)
    assert status == 415
    assert api.hub.counters["login_failed"] == 1 and api.hub.counters["logins"] == 1


async def test_login_is_rate_limited_per_address(api: Api) -> None:
    for _ in range(5):
        status, _, _ = await api.call("POST", "/api/login", {"token": "hth_000000000000_" + "b" * 43}, auth=False,
                                      headers=JSON)
        assert status == 401
    # The sixth wrong try is refused as rate-limited ...
    status, body, response = await api.call("POST", "/api/login", {"token": "hth_000000000000_" + "c" * 43},
                                            auth=False, headers=JSON)
    assert status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60 and body["retry_after_s"] >= 1
    # ... and so is a password, unread; but a valid token still logs in (nobody guesses 256 bits).
    status, _, _ = await api.call("POST", "/api/login", {"username": "anna", "password": "x" * 10}, auth=False,
                                  headers=JSON)
    assert status == 429
    status, body, _ = await api.call("POST", "/api/login", {"token": api.token}, auth=False, headers=JSON)
    assert status == 200 and body["ok"] is True
    # Bearer-authenticated API calls are not what is limited.
    status, _, _ = await api.call("GET", "/api/devices")
    assert status == 200
    # A minute after the first failure the address may try passwords again.
    api.clock.advance_to(START + 61)
    status, body, _ = await api.call("POST", "/api/login", {"username": "anna", "password": "x" * 10}, auth=False,
                                     headers=JSON)
    assert status == 401
    assert api.hub.counters["login_rate_limited"] == 2


# -------------------------------------------------------------------- static files


async def test_index_and_ui_files_have_types_cache_and_csp(api: Api) -> None:
    status, body, response = await api.call("GET", "/", auth=False)
    assert status == 200 and response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<script" in body and b"/ui/app.js" in body
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    for name, kind in (("app.js", "text/javascript; charset=utf-8"), ("style.css", "text/css; charset=utf-8")):
        status, body, response = await api.call("GET", f"/ui/{name}", auth=False)
        assert status == 200 and response.headers["Content-Type"] == kind
        assert body == (WEB_DIR / name).read_bytes()
        assert response.headers["Content-Security-Policy"] == csp
        last_modified = response.headers["Last-Modified"]
        status, _, _ = await api.call("GET", f"/ui/{name}", auth=False, headers={"If-Modified-Since": last_modified})
        assert status == 304


async def test_no_inline_script_and_no_other_origin_in_the_ui() -> None:
    html = (WEB_DIR / "index.html").read_text()
    scripts = re.findall(r"<script[^>]*>", html)
    assert '<script src="/ui/app.js" defer>' in scripts
    assert all(re.fullmatch(r'<script src="/ui/[\w.-]+\.js" defer>', tag) for tag in scripts), scripts
    assert not re.search(r"<[^>]*\son\w+\s*=", html), "an inline event handler"
    assert " style=" not in html
    for path in WEB_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text()
            if path.parent.name == "uplot":
                # Vendored as published: its banner comment names its home; nothing is fetched from there.
                text = re.sub(r"^/\*! https://github\.com/leeoniya/uPlot \(v[\d.]+\) \*/", "", text)
            assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")
            assert "https://" not in text, path
    app_js = (WEB_DIR / "app.js").read_text()
    assert "innerHTML" not in app_js and "outerHTML" not in app_js and "insertAdjacentHTML" not in app_js
    assert "eval(" not in app_js and "new Function" not in app_js


async def test_ui_paths_outside_the_web_folder_are_not_served(api: Api) -> None:
    # A NUL byte or a name longer than a file name can be used to give a 500 with a traceback per request (an
    # unauthenticated log flood): a 404 like any other.
    for path in ("/ui/../api/app.py", "/ui/%2e%2e/api/app.py", "/ui/..%2fapi%2fapp.py", "/ui/", "/ui/nope.js",
                 "/ui/index.py", "/ui/%2e%2e/%2e%2e/pyproject.toml", "/ui/app%00.js", "/ui/" + "a" * 5000 + ".js"):
        status, body, _ = await api.call("GET", path, auth=False)
        # 404, or 401 where the client itself resolved the ".." (to a path under /api): never the file.
        assert status in (401, 404), path
        assert b"import" not in json.dumps(body).encode(), path


# -------------------------------------------------------------------- history


async def test_history_filters_by_capability_and_attribute(api: Api) -> None:
    hub, clock = api.hub, api.clock
    for i in range(30):
        clock.advance_to(START + 60 * (i + 1))
        # One message sets several attributes at one instant, as a plug's report does.
        hub.apply([Update(PLUG.id, "main", "power_meter", "watts", 100.0 + i),
                   Update(PLUG.id, "main", "power_meter", "volts", 230.0 + i / 10),
                   Update(PLUG.id, "main", "on_off", "on", i % 2 == 0)])
        if i == 15:
            await api.store.flush()  # half from the file, half still pending
    status, body, _ = await api.call(
        "GET", f"/api/history?device={PLUG.id}&capability=power_meter&attribute=watts&since={START}")
    assert status == 200 and body["truncated"] is False
    assert [r["value"] for r in body["rows"]] == [100.0 + i for i in range(30)]
    assert {r["attribute"] for r in body["rows"]} == {"watts"}
    # limit keeps the newest; ISO times work as well as epoch seconds.
    since = datetime.fromtimestamp(START, UTC).isoformat()  # "+00:00" unencoded: the "+" arrives as " "
    status, body, _ = await api.call(
        "GET", f"/api/history?device={PLUG.id}&capability=power_meter&attribute=watts&since={since}&limit=3")
    assert [r["value"] for r in body["rows"]] == [127.0, 128.0, 129.0]
    until = START + 60 * 10 + 1
    status, body, _ = await api.call("GET", f"/api/history?device={PLUG.id}&capability=on_off&until={until}"
                                            f"&since={START}")
    assert [r["value"] for r in body["rows"]] == [True, False] + [True, False] * 4
    # A chart's starting value in the same answer: the last change before `since`.
    since = START + 60 * 20 + 30
    status, body, _ = await api.call(
        "GET", f"/api/history?device={PLUG.id}&capability=power_meter&attribute=watts&since={since}&initial=1")
    assert status == 200 and body["initial"]["value"] == 119.0 and body["initial"]["t"] == START + 60 * 20
    assert [r["value"] for r in body["rows"]] == [120.0 + i for i in range(10)]
    status, body, _ = await api.call("GET", f"/api/history?device={PLUG.id}&since={since}&initial=1")
    assert status == 400 and body["field"] == "query.initial"  # which attribute's value?
    for query, field in (("limit=0", "query.limit"), ("since=yesterday", "query.since"), ("room=1", "query.room"),
                         ("until=nan", "query.until")):
        status, body, _ = await api.call("GET", f"/api/history?{query}")
        assert status == 400 and body["field"] == field, query


async def test_history_pages_through_rows_of_one_instant(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.api import ui

    monkeypatch.setattr(ui, "HISTORY_PAGE_ROWS", 7)  # pages cut through the rows of one instant
    for i in range(20):
        api.clock.advance_to(START + i + 1)
        api.hub.apply([Update(PLUG.id, "main", "power_meter", "volts", 200.0 + i),
                       Update(PLUG.id, "main", "power_meter", "watts", float(i)),
                       Update(PLUG.id, "main", "on_off", "on", i % 2 == 0)])
    _status, body, _ = await api.call("GET", f"/api/history?device={PLUG.id}&attribute=watts&since={START}")
    assert [r["value"] for r in body["rows"]] == [float(i) for i in range(20)]
    _status, body, _ = await api.call("GET", f"/api/history?device={PLUG.id}&since={START}")
    assert len(body["rows"]) == 60


# -------------------------------------------------------------------- energy


def test_energy_per_day_counts_increases_and_handles_a_reset() -> None:
    tz = ZoneInfo("Europe/Berlin")
    days = [date(2026, 3, 9), date(2026, 3, 10)]

    def t(day: int, hour: int, minute: int = 0) -> float:
        return datetime(2026, 3, day, hour, minute, tzinfo=tz).timestamp()

    readings = [(t(9, 0, 30), 10.0), (t(9, 12), 11.5), (t(9, 23, 59), 12.0),
                (t(10, 0, 30), 12.25), (t(10, 8), 12.2),  # a dip in the reading: noise
                (t(10, 9), 12.5),
                (t(10, 10), 0.5),  # the meter was reset: 0.5 kWh since
                (t(10, 20), 2.0)]
    assert energy_per_day(readings, 9.5, days, tz) == [2.5, 2.5]
    assert energy_per_day(readings, None, days, tz) == [2.0, 2.5]  # no baseline: the first reading is one
    # 00:30 local on the 10th is still the 9th in UTC: the day is the local one.
    assert energy_per_day([(t(10, 0, 30), 13.0)], 12.0, days, tz) == [0.0, 1.0]


async def test_energy_per_device_per_day_with_cost(tmp_path: Path) -> None:
    clock = SimulatedClock(datetime(2026, 3, 8, 0, 30, tzinfo=UTC).timestamp())
    hub = _hub(clock)
    text = '[[profiles]]\nuse = "energy-saving"\n[profiles.params]\nprice_per_kwh = 0.25\ncurrency = "CHF"\n'
    config = Config.model_validate({"profiles": [{"use": "energy-saving",
                                                  "params": {"price_per_kwh": 0.25, "currency": "CHF"}}]})
    engine = SceneEngine(hub, load_profiles(config, text), notifier=_NoNotifier(),
                         settings=EngineSettings(timezone=ZoneInfo("UTC")))
    async with Store(tmp_path / "hearth.db", clock) as store:
        store.attach(hub)
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        for info in (PLUG, FRIDGE, SENSOR):
            hub.upsert_device(info, info.source)
        # The plug: 1 kWh a day; the fridge: 2 kWh a day, its meter reset on the 9th at noon.
        kwh_plug, kwh_fridge = 100.0, 40.0
        for hour in range(0, 72):
            clock.advance_to(datetime(2026, 3, 8, 0, 30, tzinfo=UTC).timestamp() + hour * HOUR_S)
            kwh_plug += 1 / 24
            kwh_fridge = 0.0 if hour == 36 else kwh_fridge + 2 / 24
            hub.apply([Update(PLUG.id, "main", "energy_meter", "kwh", round(kwh_plug, 4)),
                       Update(FRIDGE.id, "main", "energy_meter", "kwh", round(kwh_fridge, 4)),
                       Update(PLUG.id, "main", "power_meter", "watts", 42.0)])
            if hour % 20 == 0:
                await store.flush()
        server, token = await _serve(tmp_path, clock, hub, store, meta, engine)
        async with server, aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.get(server.url + "/api/energy?days=3", headers=headers) as response:
                assert response.status == 200
                body = await response.json()
            async with session.get(server.url + "/api/energy?days=2&price=0.5&currency=EUR",
                                   headers=headers) as response:
                priced = await response.json()
            async with session.get(server.url + "/api/energy?days=99", headers=headers) as response:
                assert response.status == 400 and (await response.json())["field"] == "query.days"
    assert body["days"] == ["2026-03-08", "2026-03-09", "2026-03-10"]
    assert (body["price_per_kwh"], body["currency"], body["timezone"]) == (0.25, "CHF", "UTC")
    devices = {d["id"]: d for d in body["devices"]}
    assert set(devices) == {PLUG.id, FRIDGE.id}  # the sensor has no energy meter
    plug = devices[PLUG.id]
    # The first reading (00:30 on the 8th) only sets the reference: 23 steps that day.
    assert plug["kwh"] == pytest.approx([23 / 24, 1.0, 1.0], abs=0.002)
    fridge = devices[FRIDGE.id]
    # On the 9th: 12 steps before the reset, none at it (counted from 0), 11 after it.
    assert fridge["kwh"] == pytest.approx([23 * 2 / 24, 23 * 2 / 24, 2.0], abs=0.002)
    assert plug["cost"] == pytest.approx(plug["total_kwh"] * 0.25, abs=0.01)
    assert body["total_kwh"] == pytest.approx(sum(body["total_kwh_per_day"]), abs=0.002)
    assert priced["price_per_kwh"] == 0.5 and priced["currency"] == "EUR" and len(priced["days"]) == 2


class _NoNotifier:
    def send(self, target: str, notification: Any) -> None:
        pass


# -------------------------------------------------------------------- device edits


async def test_patch_device_name_area_tags_and_clear(api: Api) -> None:
    plug = api.hub.devices[PLUG.id]
    assert (plug.name, plug.area, plug.tags) == (PLUG.name, "kitchen", ("deferrable",))
    xss = "<img src=x onerror=alert(1)>"
    status, body, _ = await api.call("PATCH", f"/api/devices/{PLUG.id}", {"name": xss, "area": "Study",
                                                                         "tags": ["a", "b", "a"]})
    assert status == 200
    assert body["device"]["name"] == xss  # stored as given; the UI escapes it when it shows it
    assert (body["device"]["area"], body["device"]["tags"]) == ("Study", ["a", "b"])
    assert body["overrides"] == {"name": xss, "area": "Study", "tags": ["a", "b"]}
    assert body["base"] == {"name": PLUG.name, "area": "kitchen", "tags": ["deferrable"]}
    # The edit wins over the adapter when it announces the device again, and over [areas].
    api.hub.upsert_device(PLUG, "zigbee2mqtt")
    assert (plug.name, plug.area) == (xss, "Study")
    status, body, _ = await api.call("GET", "/api/devices?area=study")
    assert [d["id"] for d in body["devices"]] == [PLUG.id]
    # null gives back the adapter's name and the config's area, one field at a time.
    status, body, _ = await api.call("PATCH", f"/api/devices/{PLUG.id}", {"name": None})
    assert (body["device"]["name"], body["device"]["area"]) == (PLUG.name, "Study")
    status, body, _ = await api.call("PATCH", f"/api/devices/{PLUG.id}", {"area": None, "tags": None})
    assert (body["device"]["area"], body["device"]["tags"]) == ("kitchen", ["deferrable"])
    assert body["overrides"] == {"name": None, "area": None, "tags": None}


async def test_patch_device_rejects_bad_input(api: Api) -> None:
    cases = [
        ({"name": ""}, "name"), ({"name": "x" * 65}, "name"), ({"name": 5}, "name"), ({"name": "a\nb"}, "name"),
        ({"name": "   "}, "name"), ({"area": "\u0000"}, "area"), ({"tags": "kitchen"}, "tags"),
        ({"tags": ["x" * 33]}, "tags.0"), ({"tags": [str(i) for i in range(17)]}, "tags"),
        ({"colour": "red"}, "colour"), ({}, "body"), ([], "body"), ("{", "body"),
    ]
    for body, field in cases:
        status, answer, _ = await api.call("PATCH", f"/api/devices/{PLUG.id}", body)
        assert status == 400 and answer["field"] == field, (body, answer)
    status, answer, _ = await api.call("PATCH", "/api/devices/fake:none", {"name": "x"})
    assert status == 404
    assert api.hub.devices[PLUG.id].name == PLUG.name


async def test_device_edits_survive_a_restart(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    path = tmp_path / "hearth.db"
    hub = _hub(clock)
    async with Store(path, clock) as store:
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        store.attach(hub)
        hub.upsert_device(PLUG, "zigbee2mqtt")
        hub.upsert_device(FRIDGE, "shelly")
        meta.update(PLUG.id, {"name": "Coffee machine", "area": "kitchen counter"})
        meta.update(FRIDGE.id, {"tags": ["always_on"]})

    # A new process: the hub restores devices from the store before any adapter is up.
    hub = _hub(clock)
    async with Store(path, clock) as store:
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        hub.restore(await store.load_devices())
        store.attach(hub)
        plug, fridge = hub.devices[PLUG.id], hub.devices[FRIDGE.id]
        assert (plug.name, plug.area) == ("Coffee machine", "kitchen counter")
        assert (fridge.name, fridge.area, fridge.tags) == ("Fridge plug", "garage", ("always_on",))
        # Cleared before the adapter announced it again: back to what the adapter said last time.
        meta.update(PLUG.id, {"name": None})
        assert plug.name == PLUG.name and plug.area == "kitchen counter"
        # The adapter announces the devices: edits still win.
        hub.upsert_device(PLUG, "zigbee2mqtt")
        hub.upsert_device(FRIDGE, "shelly")
        assert (plug.name, plug.area) == (PLUG.name, "kitchen counter")
        assert fridge.tags == ("always_on",)

    # Wired after the restore (as a late hook-up would be): the edits are applied all the same.
    hub = _hub(clock)
    async with Store(path, clock) as store:
        hub.restore(await store.load_devices())
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        assert hub.devices[PLUG.id].area == "kitchen counter"
        meta.update(PLUG.id, {"area": None})
        assert hub.devices[PLUG.id].area == "kitchen"  # [areas] in config, by the device's alias


async def test_without_a_store_the_routes_say_so(tmp_path: Path) -> None:
    hub = _hub(SimulatedClock(START))
    hub.upsert_device(PLUG, "zigbee2mqtt")
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("t")
    app = create_app(hub, tokens, health=lambda: {"status": "ok"})
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {token}"}
        for method, path in (("GET", "/api/history"), ("GET", "/api/energy"),
                             ("PATCH", f"/api/devices/{PLUG.id}"), ("GET", f"/api/devices/{PLUG.id}/meta")):
            async with session.request(method, server.url + path, headers=headers, json={"name": "x"}) as response:
                assert response.status == 503, path


def test_a_three_phase_meter_is_counted_once() -> None:
    # A Shelly Pro 3EM reports its total on main and each phase on l1..l3: the total, not twice it. Phases
    # alone add up; so do a switch's channels, and a main that is phase A beside l2 and l3.
    from gateway.api.ui import energy_components

    def meter(*components: str) -> dict[str, dict[str, CapabilitySupport]]:
        return {comp: {"energy_meter": _support({"kwh"})} for comp in components}

    assert energy_components(meter("main", "l1", "l2", "l3")) == ["main"]
    assert energy_components(meter("l1", "l2", "l3")) == ["l1", "l2", "l3"]
    assert energy_components(meter("main", "l2", "l3")) == ["main", "l2", "l3"]
    assert energy_components(meter("main", "switch_1", "switch_2")) == ["main", "switch_1", "switch_2"]
    assert energy_components({"main": {"power_meter": _support({"watts"})}}) == []


# -------------------------------------------------------------------- a UI that reads like a home (issue 18)


async def test_area_names_default_editable_and_kept(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    hub = Hub(clock, areas={"Plug": "living_room"})
    async with Store(tmp_path / "hearth.db", clock) as store:
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        for info in (PLUG, FRIDGE):
            hub.upsert_device(info, info.source)
        server, token = await _serve(tmp_path, clock, hub, store, meta)
        async with server, aiohttp.ClientSession() as session:
            api = Api(hub, clock, store, meta, token, server, session)
            status, body, _ = await api.call("GET", "/api/areas")
            assert status == 200 and body["editable"] is True
            assert body["areas"] == [
                {"id": "garage", "name": "Garage", "default_name": "Garage", "edited": False, "devices": 1},
                {"id": "living_room", "name": "Living room", "default_name": "Living room", "edited": False,
                 "devices": 1}]
            status, body, _ = await api.call("PUT", "/api/areas/living_room", {"name": "Lounge"}, headers=JSON)
            assert status == 200
            assert [a["name"] for a in body["areas"]] == ["Garage", "Lounge"]
            # The area itself is what profiles select by: unchanged.
            assert hub.devices[PLUG.id].area == "living_room"
            for bad, field in (({"name": ""}, "name"), ({"name": "a\nb"}, "name"), ({"name": 5}, "name"),
                               ({"name": "x", "nom": "y"}, "nom"), ({}, "name")):
                status, body, _ = await api.call("PUT", "/api/areas/living_room", bad, headers=JSON)
                assert status == 400 and body["field"] == field, (bad, body)
            await store.flush()
    # Kept across a restart, and reset with null.
    async with Store(tmp_path / "hearth.db", clock) as store:
        meta = DeviceMeta(hub, store.kv("device_meta"))
        server, _ = await _serve(tmp_path, clock, hub, store, meta)  # the same token file: the token still works
        async with server, aiohttp.ClientSession() as session:
            api = Api(hub, clock, store, meta, token, server, session)
            _, body, _ = await api.call("GET", "/api/areas")
            assert [(a["id"], a["name"], a["edited"]) for a in body["areas"]] == [
                ("garage", "Garage", False), ("living_room", "Lounge", True)]
            _, body, _ = await api.call("PUT", "/api/areas/living_room", {"name": None}, headers=JSON)
            assert body["areas"][1]["name"] == "Living room"


async def test_history_and_energy_say_the_gateways_time(api: Api) -> None:
    api.clock.advance_to(START + 3600)
    for path in ("/api/history", "/api/energy"):
        status, body, _ = await api.call("GET", path)
        assert status == 200 and body["now"] == START + 3600, path


def _elderly_engine(hub: Hub) -> SceneEngine:
    config = Config.model_validate({"notify": {"daughter": {"kind": "log"}},
                                    "profiles": [{"use": "elderly-monitoring", "params": {"contacts": ["daughter"]}}]})
    return SceneEngine(hub, load_profiles(config), notifier=_NoNotifier(),
                       settings=EngineSettings(timezone=ZoneInfo("Europe/Zurich")))


def test_a_run_told_in_sentences_with_names_and_limits() -> None:
    from gateway.scenes.explain import trace_sentences

    hub = _hub(SimulatedClock(START))
    engine = _elderly_engine(hub)
    scene = engine.scenes["elderly-monitoring.bathroom-long-stay"].scene
    names = {"zigbee2mqtt:0x01": "Bathroom motion"}
    tz = ZoneInfo("Europe/Zurich")
    quiet = {"id": "r1", "scene": "elderly-monitoring.bathroom-long-stay", "t": "2026-03-10T10:47:00.000Z",
             "trigger": {"kind": "absence", "t": "2026-03-10T10:47:00.000Z", "attribute": "occupancy.occupied",
                         "quiet_s": 2820, "last_activity": "2026-03-10T10:00:00.000Z"},
             "conditions": [{"kind": "last_activity", "result": True, "last_area": "bathroom"},
                            {"kind": "occupancy", "result": True, "occupancy": "home", "wanted": ["home", "unknown"]}],
             "actions": [{"kind": "alert", "t": "2026-03-10T10:47:00.000Z", "acted": True, "alert": "bathroom"}],
             "result": "done"}
    assert trace_sentences(quiet, names, scene, tz=tz) == [
        "No motion anywhere in the house for 47 min (limit 45 min); last activity at 11:00",
        "The last movement was in Bathroom (wanted Bathroom): met",
        "The house was home (wanted home or unknown): met",
        "Raised the alert bathroom",
    ]
    held = {**quiet, "trigger": {"kind": "state", "t": "2026-03-10T10:47:00.000Z", "device_id": "zigbee2mqtt:0x01",
                                 "component": "main", "area": "bathroom", "value": True, "old": False,
                                 "attribute": "occupancy.occupied", "held_s": 2700},
            "conditions": [{"kind": "last_activity", "result": False, "last_area": "kitchen"}],
            "actions": [], "result": "conditions not met"}
    assert trace_sentences(held, names, scene, area_names={"bathroom": "Shower room"}, tz=tz) == [
        "Bathroom motion had shown motion for 45 min (wanted motion for 45 min)",
        "The last movement was in Kitchen (wanted Shower room): not met",
        "So it did nothing.",
    ]


async def test_scene_runs_in_sentences(tmp_path: Path) -> None:
    clock = SimulatedClock(START)
    hub = _hub(clock)
    engine = _elderly_engine(hub)
    async with Store(tmp_path / "hearth.db", clock) as store, engine:
        meta = DeviceMeta(hub, store.kv("device_meta"))
        meta.attach()
        server, token = await _serve(tmp_path, clock, hub, store, meta, engine)
        async with server, aiohttp.ClientSession() as session:
            api = Api(hub, clock, store, meta, token, server, session)
            status, body, _ = await api.call("GET", "/api/scenes/elderly-monitoring.panic/runs")
            assert status == 200 and body == {"scene": "elderly-monitoring.panic", "now": START, "runs": []}
            assert engine.run_now("elderly-monitoring.panic", skip_conditions=True)
            for _ in range(50):
                _, body, _ = await api.call("GET", "/api/scenes/elderly-monitoring.panic/runs")
                if body["runs"] and body["runs"][0]["result"] != "running":
                    break
                await asyncio.sleep(0.01)
            run = body["runs"][0]
            assert run["sentences"][0] == "Run by hand" and run["outcome"] == "acted"
            assert "Raised the alert panic" in run["sentences"]
            status, body, _ = await api.call("GET", "/api/scenes/nope/runs")
            assert status == 404 and body["field"] == "id"


async def test_discovered_says_when_mdns_is_off(tmp_path: Path) -> None:
    from gateway.api.discovered import add_discovered_routes

    hub = _hub(SimulatedClock(START))
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("t")
    running: list[Any] = [None]
    app = create_app(hub, tokens, health=lambda: {"status": "ok"})
    add_discovered_routes(app, lambda: running[0])
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(server.url + "/api/discovered", headers=headers) as response:
            assert await response.json() == {"discovered": [], "mdns": "off"}
        running[0] = [{"id": "shelly:x", "support": "supported"}]
        async with session.get(server.url + "/api/discovered", headers=headers) as response:
            assert (await response.json())["mdns"] == "on"


async def test_a_discovered_device_is_as_available_as_its_connection_says(tmp_path: Path) -> None:
    # zeroconf keeps a frozen Shelly's record for up to an hour: the entry said "available" all that time
    # while the device itself was offline. One availability: the device's own.
    from gateway.api.discovered import add_discovered_routes

    hub = _hub(SimulatedClock(START))
    hub.upsert_device(DeviceInfo(id="shelly:plug1", name="Plug", source="shelly",
                                 components={"main": {"on_off": _support({"on"}, {"on", "off"})}}), "shelly")
    hub.set_available("shelly:plug1", False)
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("t")
    app = create_app(hub, tokens, health=lambda: {"status": "ok"})
    entries = [{"id": "a", "device_id": "shelly:plug1", "support": "supported", "available": True},
               {"id": "b", "device_id": None, "support": "seen only", "available": True}]
    add_discovered_routes(app, lambda: entries)
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {token}"}
        async with session.get(server.url + "/api/discovered", headers=headers) as response:
            found = {e["id"]: e for e in (await response.json())["discovered"]}
        assert (found["a"]["available"], found["a"]["announced"]) == (False, True)
        assert found["b"]["available"] is True
        async with session.get(server.url + "/api/discovered?available=true", headers=headers) as response:
            assert [e["id"] for e in (await response.json())["discovered"]] == ["b"]


async def test_a_large_json_answer_goes_gzipped_to_a_client_that_takes_it(tmp_path: Path) -> None:
    # A Pi on Wi-Fi: the API's devices of a big house compressed; as they are to a client that takes no gzip.
    import gzip

    clock = SimulatedClock(START)
    hub = _hub(clock)
    for n in range(200):
        hub.upsert_device(DeviceInfo(id=f"test:{n}", name=f"Plug {n}", source="test",
                                     components={"main": {"on_off": _support({"on"}, {"on", "off"})}}), "test")
    async with Store(tmp_path / "big.db", clock) as store:
        meta = DeviceMeta(hub, store.kv("device_meta"))
        server, token = await _serve(tmp_path, clock, hub, store, meta, None)
        async with server, aiohttp.ClientSession(auto_decompress=False) as session:
            headers = {"Authorization": f"Bearer {token}", "Accept-Encoding": "gzip"}
            async with session.get(server.url + "/api/devices", headers=headers) as response:
                assert response.status == 200 and response.headers["Content-Encoding"] == "gzip"
                assert len(json.loads(gzip.decompress(await response.read()))["devices"]) == 200
            headers["Accept-Encoding"] = "identity"
            async with session.get(server.url + "/api/devices", headers=headers) as response:
                assert "Content-Encoding" not in response.headers
                assert len(json.loads(await response.read())["devices"]) == 200


async def test_the_ui_files_go_gzipped_to_a_browser_that_takes_it(tmp_path: Path) -> None:
    # The house page's scripts, styles and language catalogue compressed once (never twice: the catalogue is
    # JSON, like the API's answers), and sent as they are to a client that takes no gzip.
    import gzip

    from gateway.api.ui import WEB_DIR

    clock = SimulatedClock(START)
    hub = _hub(clock)
    async with Store(tmp_path / "hearth.db", clock) as store:
        meta = DeviceMeta(hub, store.kv("device_meta"))
        server, _ = await _serve(tmp_path, clock, hub, store, meta, None)
        async with server, aiohttp.ClientSession(auto_decompress=False) as session:
            for name in ("app.js", "style.css", "i18n/en.json"):
                async with session.get(f"{server.url}/ui/{name}", headers={"Accept-Encoding": "gzip"}) as response:
                    assert response.status == 200 and response.headers["Content-Encoding"] == "gzip"
                    body = await response.read()
                assert gzip.decompress(body) == (WEB_DIR / name).read_bytes(), name
                assert len(body) < (WEB_DIR / name).stat().st_size / 2
            async with session.get(server.url + "/ui/app.js", headers={"Accept-Encoding": "identity"}) as response:
                assert "Content-Encoding" not in response.headers
                assert await response.read() == (WEB_DIR / "app.js").read_bytes()
            async with session.get(server.url + "/", headers={"Accept-Encoding": "gzip, br"}) as response:
                assert response.headers["Content-Encoding"] == "gzip"
                assert "Content-Security-Policy" in response.headers
