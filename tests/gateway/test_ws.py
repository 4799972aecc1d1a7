"""The WebSocket API (/api/ws) against a real aiohttp server on loopback, driven by aiohttp's WS client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.app import ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.scenes import add_scene_routes
from gateway.api.ws import CLOSE_AUTH, CLOSE_RATE_LIMITED, CLOSE_REVOKED, CLOSE_SLOW, WsSettings, open_connections
from gateway.bus import AlertChanged, ModeChanged, OccupancyChanged, SceneRan
from gateway.hub import Hub
from gateway.model.types import Update
from gateway.scenes.engine import SceneEngine
from tests.gateway.test_api import LAMP, MUTE, OFFLINE, _make_hub

SETTINGS = WsSettings(auth_timeout_s=0.5, queue_max=50, recheck_token_s=0.2, heartbeat_s=5.0)


@dataclass
class Server:
    hub: Hub
    tokens: TokenStore
    token: str
    server: ApiServer
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.server.url + "/api/ws"

    async def connect(self, *, auth: bool = True) -> aiohttp.ClientWebSocketResponse:
        ws = await self.session.ws_connect(self.url, autoping=True)
        if auth:
            await ws.send_json({"type": "auth", "token": self.token})
            answer = await ws.receive_json(timeout=5)
            assert answer == {"type": "auth_ok", "name": "tests", "role": "owner"}
        return ws


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Server]:
    hub = _make_hub()
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("tests")
    app = create_app(hub, tokens, health=lambda: {"status": "ok"}, command_timeout_s=2.0, ws_settings=SETTINGS)
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        yield Server(hub, tokens, token, server, session)


def bus_subscribers(hub: Hub) -> int:
    return sum(len(callbacks) for callbacks in hub.bus._subscribers.values())


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout_s: float = 5.0) -> tuple[int | None, str]:
    """Read until the server closes; the close code and reason."""
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                return ws.close_code, str(msg.extra or "")


async def next_of(ws: aiohttp.ClientWebSocketResponse, **match: Any) -> dict[str, Any]:
    """The next message whose fields include ``match`` (others are skipped)."""
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive_json()
            if all(message.get(k) == v for k, v in match.items()):
                return message


# -------------------------------------------------------------------- authentication


async def test_first_message_must_authenticate(api: Server) -> None:
    ws = await api.connect(auth=False)
    await ws.send_json({"type": "subscribe", "id": 1, "events": ["state"]})
    code, reason = await closed_with(ws)
    assert code == CLOSE_AUTH and "auth" in reason


async def test_bad_token_is_refused_with_4401(api: Server) -> None:
    for first in ({"type": "auth", "token": api.token + "x"}, {"type": "auth"}, {"type": "auth", "token": 5},
                  "not json"):
        ws = await api.connect(auth=False)
        await (ws.send_str(first) if isinstance(first, str) else ws.send_json(first))
        code, _ = await closed_with(ws)
        assert code == CLOSE_AUTH, first
    assert api.hub.counters["ws_auth_failed"] == 1  # only the one that carried a token counts as a guess


async def test_silence_after_connecting_closes_with_4401(api: Server) -> None:
    ws = await api.connect(auth=False)
    code, reason = await closed_with(ws, timeout_s=3)
    assert code == CLOSE_AUTH and "timeout" in reason


async def test_wrong_tokens_are_rate_limited_with_login(api: Server) -> None:
    for _ in range(5):
        ws = await api.connect(auth=False)
        await ws.send_json({"type": "auth", "token": "hth_000000000000_" + "a" * 43})
        assert (await closed_with(ws))[0] == CLOSE_AUTH
    # Now a wrong token is refused as rate-limited from this address, here and on /api/login ...
    ws = await api.connect(auth=False)
    await ws.send_json({"type": "auth", "token": "hth_000000000000_" + "b" * 43})
    assert (await closed_with(ws))[0] == CLOSE_RATE_LIMITED
    async with api.session.post(api.server.url + "/api/login", json={"token": "hth_000000000000_" + "c" * 43}
                                ) as response:
        assert response.status == 429 and int(response.headers["Retry-After"]) > 0
    # ... but the right one still works: someone else's failures never lock out a valid token.
    ws = await api.connect(auth=False)
    await ws.send_json({"type": "auth", "token": api.token})
    assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
    await ws.close()
    async with api.session.post(api.server.url + "/api/login", json={"token": api.token}) as response:
        assert response.status == 200


async def test_revoked_token_closes_an_open_connection(api: Server, tmp_path: Path) -> None:
    ws = await api.connect()
    TokenStore(tmp_path / "tokens.json").revoke("tests")
    code, reason = await closed_with(ws)
    assert code == CLOSE_REVOKED and "revoked" in reason


def test_a_revoked_token_loses_its_websockets_within_a_second_by_default() -> None:
    # The README promises it (it used to take up to 30 s); the test above runs with a shorter recheck.
    assert WsSettings().recheck_token_s <= 1.0


# -------------------------------------------------------------------- subscriptions and events


async def test_snapshot_then_state_events(api: Server) -> None:
    ws = await api.connect()
    await ws.send_json({"type": "subscribe", "id": 1, "events": ["state", "availability"], "snapshot": True})
    result = await next_of(ws, type="result", id=1)
    assert result["ok"] is True and result["subscription"] == 1
    assert [d["id"] for d in result["devices"]] == sorted(api.hub.devices)
    api.hub.apply([Update(LAMP, "main", "level", "percent", 42.0)])
    api.hub.set_available(OFFLINE, True)
    event = await next_of(ws, type="event", event="state")
    assert event == {"type": "event", "subscription": 1, "event": "state", "device": LAMP, "component": "main",
                     "capability": "level", "attribute": "percent", "value": 42.0, "old": 10.0, "t": event["t"]}
    assert isinstance(event["t"], float)
    event = await next_of(ws, type="event", event="availability")
    assert (event["device"], event["available"]) == (OFFLINE, True)


async def test_filters_by_device_area_and_capability(api: Server) -> None:
    ws = await api.connect()
    await ws.send_json({"type": "subscribe", "id": "hall", "events": ["state"], "filter": {"area": "HALL"},
                        "snapshot": True})
    result = await next_of(ws, type="result", id="hall")
    assert {d["id"] for d in result["devices"]} == {MUTE, OFFLINE}
    await ws.send_json({"type": "subscribe", "id": "lvl", "events": ["state"],
                        "filter": {"device": [LAMP, MUTE], "capability": "level"}})
    await next_of(ws, type="result", id="lvl")
    api.hub.apply([Update(LAMP, "main", "on_off", "on", True)])  # neither: kitchen, and on_off
    api.hub.apply([Update(LAMP, "main", "level", "percent", 60.0)])  # "lvl" only
    api.hub.apply([Update(MUTE, "main", "on_off", "on", True)])  # "hall" only
    seen = [(m["subscription"], m["device"], m["capability"]) for m in [await ws.receive_json(timeout=5)
                                                                         for _ in range(2)]]
    assert seen == [("lvl", LAMP, "level"), ("hall", MUTE, "on_off")]


async def test_device_alert_scene_and_mode_events(api: Server) -> None:
    ws = await api.connect()
    await ws.send_json({"type": "subscribe", "id": 1, "events": ["devices", "alerts", "scenes", "mode"]})
    await next_of(ws, type="result", id=1)
    hub = api.hub
    hub.set_device_meta(LAMP, name="Kitchen lamp")
    event = await next_of(ws, event="devices")
    assert event["change"] == "updated" and event["data"]["name"] == "Kitchen lamp"
    hub.bus.publish(AlertChanged(1.0, {"id": "panic-1", "state": "open"}, "raised"))
    assert (await next_of(ws, event="alerts"))["alert"] == {"id": "panic-1", "state": "open"}
    hub.bus.publish(SceneRan(2.0, "p.s", {"id": "t1", "result": "done"}))
    event = await next_of(ws, event="scenes")
    assert event["scene"] == "p.s" and event["trace"]["result"] == "done" and event["state"] is None
    hub.bus.publish(ModeChanged(3.0, "home", "away", "api"))
    event = await next_of(ws, event="mode")
    assert (event["mode"], event["old"], event["source"]) == ("away", "home", "api")
    hub.remove_device(MUTE)
    event = await next_of(ws, event="devices")
    assert (event["change"], event["device"], event["data"]) == ("removed", MUTE, None)


async def test_occupancy_events_are_forwarded(api: Server) -> None:
    ws = await api.connect()
    await ws.send_json({"type": "subscribe", "id": 1, "events": ["mode", "occupancy"], "snapshot": True})
    result = await next_of(ws, type="result", id=1)
    assert "house" not in result  # no scene engine here, so no house state to show
    await ws.send_json({"type": "subscribe", "id": 2, "events": ["mode"]})
    await next_of(ws, type="result", id=2)
    reason = "Front door closed at 10:01 and no movement inside for 10 min"
    api.hub.bus.publish(OccupancyChanged(1_773_137_460.0, "home", "away", reason))
    event = await next_of(ws, type="event", event="occupancy")
    assert event == {"type": "event", "subscription": 1, "event": "occupancy", "occupancy": "away", "old": "home",
                     "since": "2026-03-10T10:11:00.000Z", "reason": reason, "t": 1_773_137_460.0}
    # Only the subscription that asked for occupancy gets it: the next message is the pong.
    await ws.send_json({"type": "ping", "id": 3})
    assert await ws.receive_json(timeout=5) == {"type": "pong", "id": 3}


class _NoNotifier:
    def send(self, target: str, notification: Any) -> None:
        pass


async def test_occupancy_in_the_snapshot_and_live_from_the_engine(tmp_path: Path) -> None:
    hub = _make_hub()
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("tests")
    app = create_app(hub, tokens, health=lambda: {"status": "ok"}, ws_settings=SETTINGS)
    engine = SceneEngine(hub, [], notifier=_NoNotifier())
    add_scene_routes(app, engine)
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        api = Server(hub, tokens, token, server, session)
        ws = await api.connect()
        await ws.send_json({"type": "subscribe", "id": 1, "events": ["state"], "snapshot": True})
        assert "house" not in await next_of(ws, type="result", id=1)  # it did not ask for the house
        await ws.send_json({"type": "subscribe", "id": 2, "events": ["mode", "occupancy"], "snapshot": True})
        result = await next_of(ws, type="result", id=2)
        assert result["house"] == engine.house()
        assert (result["house"]["mode"], result["house"]["occupancy"]) == ("home", "unknown")
        # Setting the mode by hand says who is home too: both arrive, the mode first.
        async with session.put(server.url + "/api/mode", json={"mode": "away"},
                               headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200
        mode = await next_of(ws, type="event", subscription=2)
        assert (mode["event"], mode["mode"], mode["old"]) == ("mode", "away", "home")
        event = await next_of(ws, type="event", subscription=2)
        assert (event["event"], event["occupancy"], event["old"]) == ("occupancy", "away", "unknown")
        assert event["reason"] == "house mode set to away (api)"
        assert event["since"] == engine.house()["since"]
        # A fresh snapshot shows the same, with the change in its history.
        await ws.send_json({"type": "subscribe", "id": 3, "events": ["occupancy"], "snapshot": True})
        house = (await next_of(ws, type="result", id=3))["house"]
        assert (house["occupancy"], house["reason"], house["since"]) == ("away", event["reason"], event["since"])
        assert house["history"][0] == {"t": event["since"], "state": "away", "reason": event["reason"]}


async def test_unsubscribe_and_disconnect_remove_bus_subscriptions(api: Server) -> None:
    before = bus_subscribers(api.hub)
    ws = await api.connect()
    await ws.send_json({"type": "subscribe", "id": 1, "events": list(("state", "availability", "devices",
                                                                       "alerts", "scenes", "mode", "occupancy"))})
    await next_of(ws, type="result", id=1)
    assert bus_subscribers(api.hub) == before + 9  # one per event type
    await ws.send_json({"type": "unsubscribe", "id": 2, "subscription": 1})
    assert (await next_of(ws, type="result", id=2))["ok"] is True
    assert bus_subscribers(api.hub) == before
    await ws.send_json({"type": "subscribe", "id": 3, "events": ["state"]})
    await next_of(ws, type="result", id=3)
    assert bus_subscribers(api.hub) == before + 1
    await ws.close()
    for _ in range(100):
        if bus_subscribers(api.hub) == before and open_connections(api.server.app) == 0:
            break
        await asyncio.sleep(0.02)
    assert bus_subscribers(api.hub) == before
    assert open_connections(api.server.app) == 0


async def test_protocol_errors_are_answered_not_fatal(api: Server) -> None:
    ws = await api.connect()
    await ws.send_json({"type": "subscribe", "id": 1, "events": ["weather"]})
    answer = await next_of(ws, id=1)
    assert answer["ok"] is False and answer["field"] == "events"
    await ws.send_json({"type": "subscribe", "id": 2, "filter": {"room": "x"}})
    assert (await next_of(ws, id=2))["field"] == "filter.room"
    await ws.send_json({"type": "dance", "id": 3})
    assert (await next_of(ws, id=3))["field"] == "type"
    await ws.send_str("{nope")
    assert (await next_of(ws, type="error"))["error"] == "not valid JSON"
    await ws.send_json({"type": "unsubscribe", "id": 4, "subscription": 99})
    assert (await next_of(ws, id=4))["field"] == "subscription"
    await ws.send_json({"type": "ping", "id": 5})
    assert await next_of(ws, id=5) == {"type": "pong", "id": 5}


# -------------------------------------------------------------------- commands


async def test_commands_answer_like_the_http_route(api: Server) -> None:
    ws = await api.connect()
    await ws.send_json({"type": "command", "id": 1, "device": LAMP, "capability": "level", "command": "set",
                        "args": {"percent": 70}})
    result = await next_of(ws, type="result", id=1)
    assert result["ok"] is True and result["http_status"] == 200 and result["status"] == "confirmed"
    assert result["command"]["args"] == {"percent": 70}
    assert api.hub.devices[LAMP].value("main", "level", "percent") == 70

    # The same body over HTTP gets the same status and fields.
    await ws.send_json({"type": "command", "id": 2, "device": LAMP, "capability": "level", "command": "set",
                        "args": {"percent": 180}})
    result = await next_of(ws, type="result", id=2)
    async with api.session.post(f"{api.server.url}/api/devices/{LAMP}/commands",
                                headers={"Authorization": f"Bearer {api.token}"},
                                json={"capability": "level", "command": "set", "args": {"percent": 180}}) as r:
        http = await r.json()
        assert r.status == result["http_status"] == 400
    assert result["ok"] is False and result["field"] == http["field"] == "args.percent"
    assert result["reason"] == http["reason"]

    await ws.send_json({"type": "command", "id": 3, "device": "fake:nope", "capability": "on_off", "command": "on"})
    result = await next_of(ws, type="result", id=3)
    assert (result["http_status"], result["field"]) == (404, "device_id")
    await ws.send_json({"type": "command", "id": 4, "device": OFFLINE, "capability": "on_off", "command": "on"})
    result = await next_of(ws, type="result", id=4)
    assert (result["http_status"], result["status"]) == (409, "unavailable")
    await ws.send_json({"type": "command", "id": 5, "device": LAMP, "capability": "on_off", "command": "on",
                        "colour": "red"})
    result = await next_of(ws, type="result", id=5)
    assert (result["http_status"], result["field"], result["reason"]) == (400, "colour", "extra_forbidden")


# -------------------------------------------------------------------- slow clients


async def test_a_burst_beyond_the_queue_drops_the_client(api: Server) -> None:
    before = bus_subscribers(api.hub)
    ws = await api.connect()
    await ws.send_json({"type": "subscribe", "id": 1, "events": ["state"]})
    await next_of(ws, type="result", id=1)
    # One loop step publishes more events than the queue holds: no await lets the writer drain it.
    api.hub.apply([Update(LAMP, "main", "level", "percent", float(i % 100)) for i in range(1, 500)])
    received = 0
    async with asyncio.timeout(5):
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                received += 1
                continue
            break
    assert ws.close_code == CLOSE_SLOW
    assert received <= SETTINGS.queue_max
    assert api.hub.counters["ws_dropped_slow"] == 1
    for _ in range(100):
        if bus_subscribers(api.hub) == before:
            break
        await asyncio.sleep(0.02)
    assert bus_subscribers(api.hub) == before


async def test_a_client_that_stops_reading_is_dropped_not_buffered(api: Server) -> None:
    ws = await api.connect()
    await ws.send_json({"type": "subscribe", "id": 1, "events": ["state"]})
    await next_of(ws, type="result", id=1)
    # The client now reads nothing; the house keeps changing, a message per loop step, each ~2 KB
    # (a long device name would do the same). Socket buffers fill, then the queue, then it is dropped.
    big = "x" * 2000
    for i in range(20000):
        api.hub.bus.publish(_state(LAMP, big + str(i)))
        if api.hub.counters["ws_dropped_slow"]:
            break
        await asyncio.sleep(0)
    print(f"dropped after {i + 1} events of ~2 KB")
    assert api.hub.counters["ws_dropped_slow"] == 1
    for _ in range(100):
        if open_connections(api.server.app) == 0:
            break
        await asyncio.sleep(0.02)
    assert open_connections(api.server.app) == 0
    ws_closed = ws.closed or (await closed_with(ws, timeout_s=10))[0] in (CLOSE_SLOW, 1006, None)
    assert ws_closed


def _state(device_id: str, value: str) -> Any:
    from gateway.bus import StateChanged

    return StateChanged(0.0, device_id, "main", "level", "percent", None, value)


async def test_shutdown_closes_open_clients(tmp_path: Path) -> None:
    hub = _make_hub()
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("tests")
    app = create_app(hub, tokens, health=lambda: {"status": "ok"}, ws_settings=SETTINGS)
    async with aiohttp.ClientSession() as session:
        server = ApiServer(app, "127.0.0.1", 0)
        await server.__aenter__()
        ws = await session.ws_connect(server.url + "/api/ws")
        await ws.send_str(json.dumps({"type": "auth", "token": token}))
        await ws.receive_json(timeout=5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        closing = asyncio.create_task(server.__aexit__(None, None, None))
        code, _ = await closed_with(ws)
        await closing
        assert code == aiohttp.WSCloseCode.GOING_AWAY
        assert loop.time() - started < 3  # not the full shutdown timeout
