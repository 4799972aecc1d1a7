"""The scene, alert and house-mode routes against a real aiohttp server on loopback, with a running scene
engine on the system clock, driven by a real aiohttp client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.app import ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.scenes import add_scene_routes
from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, Command, CommandResult, DeviceInfo, Update
from gateway.scenes.engine import SceneEngine
from gateway.scenes.notify import RecordingNotifier
from gateway.scenes.profile import load_profile_text

LAMP = "fake:lamp"

PROFILE = """\
name = "home"
version = 1

[[scenes]]
id = "lamp-on"
name = "Lamp on"
description = "Switches the lamp on"
priority = 20
triggers = [{ kind = "time", at = "03:33" }]
conditions = [{ kind = "mode", is = ["home"] }]
actions = [
  { kind = "command", target = { device = "fake:lamp" }, capability = "on_off", command = "on" },
  { kind = "notify", to = "log", message = "lamp on" },
]

[[scenes]]
id = "help"
name = "Help"
triggers = [{ kind = "button", selector = { capability = "button" } }]
actions = [
  { kind = "alert", alert = "help", severity = "critical", message = "help needed", notify = ["daughter", "son"], \
escalate_after = "0.2s" },
]

[[scenes]]
id = "slow"
name = "Slow"
triggers = [{ kind = "start" }]
enabled = false
actions = [{ kind = "delay", for = "1h" }]
"""


@dataclass
class Api:
    hub: Hub
    engine: SceneEngine
    notifier: RecordingNotifier
    token: str
    url: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        data = None if body is None else body if isinstance(body, (str, bytes)) else json.dumps(body)
        async with self.session.request(method, self.url + path, data=data, headers=headers) as response:
            text = await response.text()
            return response.status, json.loads(text) if response.content_type == "application/json" else text


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    hub = Hub(SystemClock())
    hub.upsert_device(DeviceInfo(LAMP, "Lamp", "fake", {"main": {
        "on_off": CapabilitySupport(frozenset({"on"}), frozenset({"on", "off", "toggle"}))}}), "fake")
    hub.set_available(LAMP, True)
    hub.apply([Update(LAMP, "main", "on_off", "on", False)])

    async def obey(command: Command) -> CommandResult:
        hub.apply([Update(LAMP, "main", "on_off", "on", command.command == "on")])
        return CommandResult("sent", "published")

    hub.set_command_handler("fake", obey)
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("carer")
    notifier = RecordingNotifier()
    engine = SceneEngine(hub, [load_profile_text(PROFILE, "home.toml")], notifier=notifier)
    app = create_app(hub, tokens, health=lambda: {"status": "ok"})
    add_scene_routes(app, engine)
    async with engine, ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        yield Api(hub, engine, notifier, token, server.url, session)


async def eventually(check: Callable[[], Any], timeout_s: float = 3.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_list_scenes(api: Api) -> None:
    status, body = await api.call("GET", "/api/scenes")
    assert status == 200 and body["mode"] == "home"
    scenes = {s["id"]: s for s in body["scenes"]}
    assert list(scenes) == ["home.help", "home.lamp-on", "home.slow"]
    assert scenes["home.lamp-on"] == {
        "id": "home.lamp-on", "profile": "home", "scene": "lamp-on", "name": "Lamp on",
        "description": "Switches the lamp on", "enabled": True, "priority": 20, "running": False,
        "triggers": ["time"], "last_run": None}
    assert scenes["home.slow"]["enabled"] is False
    status, one = await api.call("GET", "/api/scenes/home.lamp-on")
    assert status == 200 and one["definition"]["actions"][0]["command"] == "on"


async def test_enable_and_disable(api: Api) -> None:
    status, body = await api.call("PATCH", "/api/scenes/home.lamp-on", {"enabled": False})
    assert status == 200 and body["enabled"] is False
    _, listed = await api.call("GET", "/api/scenes")
    assert next(s for s in listed["scenes"] if s["id"] == "home.lamp-on")["enabled"] is False
    assert api.engine.scenes["home.lamp-on"].enabled is False
    status, body = await api.call("PATCH", "/api/scenes/home.lamp-on", {"enabled": True})
    assert status == 200 and body["enabled"] is True


@pytest.mark.parametrize(("body", "field"), [
    ({"enabled": "yes"}, "enabled"), ({}, "enabled"), ({"enabled": True, "colour": 1}, "colour"), ("{", "body"),
    ([True], "body"),
])
async def test_enable_with_a_bad_body_names_the_field(api: Api, body: Any, field: str) -> None:
    status, answer = await api.call("PATCH", "/api/scenes/home.lamp-on", body)
    assert status == 400 and answer["field"] == field, answer
    assert api.engine.scenes["home.lamp-on"].enabled is True


async def test_run_returns_202_and_the_trace_appears(api: Api) -> None:
    status, body = await api.call("POST", "/api/scenes/home.lamp-on/run")
    assert status == 202 and body["scene"] == "home.lamp-on"

    async def trace() -> dict[str, Any] | None:
        _, traces = await api.call("GET", "/api/scenes/home.lamp-on/traces")
        return next((t for t in traces["traces"] if t["id"] == body["trace"] and t["result"] == "done"), None)

    done = None
    for _ in range(300):
        done = await trace()
        if done:
            break
        await asyncio.sleep(0.01)
    assert done is not None
    assert done["trigger"]["kind"] == "manual"
    assert done["conditions"] == [{"kind": "mode", "result": True, "mode": "home"}]
    assert [a["kind"] for a in done["actions"]] == ["command", "notify"]
    assert done["actions"][0]["targets"] == [{"device": LAMP, "component": "main", "status": "confirmed"}]
    assert api.hub.devices[LAMP].value("main", "on_off", "on") is True
    _, listed = await api.call("GET", "/api/scenes")
    assert next(s for s in listed["scenes"] if s["id"] == "home.lamp-on")["last_run"]["result"] == "done"


async def test_run_with_conditions_skipped(api: Api) -> None:
    api.engine.set_mode("away")
    status, body = await api.call("POST", "/api/scenes/home.lamp-on/run")
    assert status == 202
    _, traces = await api.call("GET", "/api/scenes/home.lamp-on/traces")
    assert traces["traces"][0]["result"] == "conditions not met"
    status, body = await api.call("POST", "/api/scenes/home.lamp-on/run", {"skip_conditions": True})
    assert status == 202
    await eventually(lambda: api.hub.devices[LAMP].value("main", "on_off", "on") is True)
    status, body = await api.call("POST", "/api/scenes/home.lamp-on/run", {"skip_conditions": "yes"})
    assert status == 400 and body["field"] == "skip_conditions"


async def test_a_running_scene_is_not_started_twice(api: Api) -> None:
    assert (await api.call("POST", "/api/scenes/home.slow/run"))[0] == 202
    status, body = await api.call("POST", "/api/scenes/home.slow/run")
    assert status == 409 and body["field"] == "id"


async def test_alerts_ack_stops_the_escalation_and_records_who(api: Api) -> None:
    status, _ = await api.call("POST", "/api/scenes/home.help/run")
    assert status == 202
    _, body = await api.call("GET", "/api/alerts")
    (alert,) = body["alerts"]
    assert alert["key"] == "help" and alert["state"] == "open" and alert["severity"] == "critical"
    assert alert["message"] == "help needed" and alert["acknowledged_by"] is None
    await eventually(lambda: len(api.notifier.sent) >= 2)  # escalated to the second contact
    assert [target for target, _ in api.notifier.sent[:2]] == ["daughter", "son"]

    status, acked = await api.call("POST", f"/api/alerts/{alert['id']}/ack")
    assert status == 200
    assert acked["acknowledged_by"] == "token:carer" and acked["acknowledged_at"] and \
        acked["next_escalation_at"] is None
    count = len(api.notifier.sent)
    await asyncio.sleep(0.6)  # three escalation periods
    assert len(api.notifier.sent) == count
    # an acknowledged alert is no longer listed as open (it was, before the lifecycle)
    _, body = await api.call("GET", "/api/alerts?state=open")
    assert body["alerts"] == []
    _, body = await api.call("GET", "/api/alerts?state=acknowledged")
    assert body["alerts"][0]["acknowledged_by"] == "token:carer" and body["alerts"][0]["state"] == "acknowledged"
    # acknowledging again changes nothing
    status, again = await api.call("POST", f"/api/alerts/{alert['id']}/ack")
    assert status == 200 and again["acknowledged_at"] == acked["acknowledged_at"]
    status, body = await api.call("GET", "/api/alerts?state=closed")
    assert status == 400 and body["field"] == "query.state"
    # resolved by hand: the contacts who were told are told it is over
    told = len(api.notifier.sent)
    status, resolved = await api.call("POST", f"/api/alerts/{alert['id']}/resolve", {"note": "she is fine"})
    assert status == 200 and resolved["state"] == "resolved" and resolved["resolved_by"] == "token:carer"
    assert resolved["resolution"] == "she is fine"
    await eventually(lambda: len(api.notifier.sent) >= told + 2)
    assert [n.title for _, n in api.notifier.sent[told:]] == ["Resolved: Help", "Resolved: Help"]
    _, body = await api.call("GET", "/api/alerts?state=active")
    assert body["alerts"] == []
    _, body = await api.call("GET", "/api/alerts?state=resolved")
    assert [a["id"] for a in body["alerts"]] == [alert["id"]]


async def test_mode(api: Api) -> None:
    assert await api.call("GET", "/api/mode") == (200, {"mode": "home"})
    assert await api.call("PUT", "/api/mode", {"mode": "away"}) == (200, {"mode": "away"})
    assert api.engine.mode == "away"
    assert await api.call("GET", "/api/mode") == (200, {"mode": "away"})
    for body, field in (({"mode": "party"}, "mode"), ({}, "mode"), ({"mode": 1}, "mode"),
                        ({"mode": "home", "x": 1}, "x"), ("not json", "body")):
        status, answer = await api.call("PUT", "/api/mode", body)
        assert status == 400 and answer["field"] == field, (body, answer)
        assert field in answer["error"]
    assert api.engine.mode == "away"


ROUTES = [("GET", "/api/scenes"), ("GET", "/api/scenes/home.help"), ("PATCH", "/api/scenes/home.help"),
          ("POST", "/api/scenes/home.help/run"), ("GET", "/api/scenes/home.help/traces"), ("GET", "/api/alerts"),
          ("POST", "/api/alerts/x/ack"), ("GET", "/api/mode"), ("PUT", "/api/mode")]


async def test_every_route_needs_a_token(api: Api) -> None:
    for method, path in ROUTES:
        status, _ = await api.call(method, path, {"mode": "away", "enabled": False} if method != "GET" else None,
                                   auth=False)
        assert status == 401, (method, path)
    assert api.engine.mode == "home" and api.notifier.sent == []
    assert all(rt.enabled == rt.scene.enabled and not rt.traces for rt in api.engine.scenes.values())


async def test_unknown_scene_or_alert_is_404(api: Api) -> None:
    for method, path in ROUTES[1:5]:
        status, body = await api.call(method, path.replace("home.help", "home.nope"),
                                      {"enabled": False} if method == "PATCH" else None)
        assert status == 404 and body["field"] == "id" and "home.nope" in body["error"], (method, path)
    status, body = await api.call("POST", "/api/alerts/nope/ack")
    assert status == 404 and body["field"] == "id"


@pytest.mark.parametrize("body", [b"\xff\xfe", b"[" * 30_000 + b"]" * 30_000, b"null", b"1e999999"])
async def test_hostile_bodies_are_400_not_500(api: Api, body: bytes) -> None:
    for method, path in (("PUT", "/api/mode"), ("PATCH", "/api/scenes/home.help"),
                         ("POST", "/api/scenes/home.help/run")):
        status, answer = await api.call(method, path, body)
        assert status == 400 and answer["field"] == "body", (method, path, answer)
    assert api.engine.mode == "home" and api.engine.list_alerts() == []
