"""The HTTP API against a real aiohttp server on loopback, driven by a real aiohttp client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from gateway.api import commands as api_commands
from gateway.api.app import MAX_BODY_BYTES, ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.model import json_schema
from gateway.model.types import CapabilitySupport, Command, CommandResult, DeviceInfo, Update

LAMP = "fake:lamp"  # confirms every command
MUTE = "fake:mute"  # takes commands, never reports back
OFFLINE = "fake:offline"
HANG = "fake:hang"  # its adapter never answers


def _light(device_id: str, name: str, area: str) -> DeviceInfo:
    return DeviceInfo(
        id=device_id,
        name=name,
        source="fake",
        components={
            "main": {
                "on_off": CapabilitySupport(frozenset({"on"}), frozenset({"on", "off", "toggle"})),
                "level": CapabilitySupport(frozenset({"percent"}), frozenset({"set"})),
            }
        },
        suggested_area=area,
    )


def _make_hub() -> Hub:
    hub = Hub(SystemClock())
    hub.upsert_device(_light(LAMP, "Lamp", "Kitchen"), "fake")
    hub.upsert_device(_light(MUTE, "Mute lamp", "Hall"), "fake")
    hub.upsert_device(_light(OFFLINE, "Offline lamp", "Hall"), "fake")
    hub.upsert_device(
        DeviceInfo(
            HANG, "Plug", "other",
            {"main": {"on_off": CapabilitySupport(frozenset({"on"}), frozenset({"on", "off", "toggle"}))}},
        ),
        "fake",
    )
    for device_id in (LAMP, MUTE, HANG):
        hub.set_available(device_id, True)
        hub.apply([Update(device_id, "main", "on_off", "on", False)])
    hub.apply([Update(LAMP, "main", "level", "percent", 10.0)])
    hub.set_available(OFFLINE, False)

    async def handler(command: Command) -> CommandResult:
        if command.device_id == HANG:
            await asyncio.Event().wait()
        if command.device_id == LAMP:
            device = hub.devices[LAMP]
            if command.capability == "level":
                update = Update(LAMP, "main", "level", "percent", command.args["percent"])
            else:
                current = bool(device.value("main", "on_off", "on"))
                new = {"on": True, "off": False, "toggle": not current}[command.command]
                update = Update(LAMP, "main", "on_off", "on", new)
            # The device reports back a moment later, as a real one would.
            asyncio.get_running_loop().call_soon(hub.apply, [update])
        return CommandResult("sent", "published")

    hub.set_command_handler("fake", handler)
    return hub


@dataclass
class Api:
    hub: Hub
    tokens: TokenStore
    token: str
    server: ApiServer
    session: aiohttp.ClientSession
    health: dict[str, Any]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        kwargs.setdefault("headers", self.auth)
        async with self.session.get(self.server.url + path, **kwargs) as response:
            return response.status, await _body(response), response

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
        kwargs.setdefault("headers", self.auth)
        if body is not None:
            kwargs["data"] = body if isinstance(body, (bytes, str)) else json.dumps(body)
        async with self.session.post(self.server.url + path, **kwargs) as response:
            return response.status, await _body(response), response

    async def command(self, device_id: str, body: Any) -> tuple[int, Any]:
        status, data, _ = await self.post(f"/api/devices/{device_id}/commands", body)
        return status, data


async def _body(response: aiohttp.ClientResponse) -> Any:
    text = await response.text()
    if response.content_type == "application/json":
        return json.loads(text)
    return text


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    hub = _make_hub()
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("tests")
    health: dict[str, Any] = {"status": "ok", "adapters": {"fake": "running"}}
    app = create_app(hub, tokens, health=lambda: dict(health), command_timeout_s=2.0)
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        yield Api(hub, tokens, token, server, session, health)


# -------------------------------------------------------------------- auth


async def test_api_needs_a_valid_token(api: Api) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer"},
                    {"Authorization": "Bearer hth_000000000000_" + "a" * 43},
                    {"Authorization": f"Bearer {api.token}x"}):
        for path in ("/api/devices", f"/api/devices/{LAMP}", "/api/capabilities", "/api/nope"):
            status, body, response = await api.get(path, headers=headers)
            assert status == 401, (headers, path)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert set(body) == {"error"}
        status, body, _ = await api.post(f"/api/devices/{LAMP}/commands", {"capability": "on_off", "command": "on"},
                                         headers=headers)
        assert status == 401
    assert api.hub.counters["commands"] == 0
    status, _, _ = await api.get("/api/devices", headers={"Authorization": f"bearer {api.token}"})
    assert status == 200


async def test_revoked_token_stops_working_in_a_running_app(api: Api, tmp_path: Path) -> None:
    status, _, _ = await api.get("/api/devices")
    assert status == 200
    assert TokenStore(tmp_path / "tokens.json").revoke("tests")  # as `hearth token revoke` would
    status, body, _ = await api.get("/api/devices")
    assert status == 401 and "revoked" in body["error"]


async def test_token_file_is_private_and_holds_no_plaintext(api: Api, tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    assert path.stat().st_mode & 0o777 == 0o600
    text = path.read_text()
    assert api.token not in text and api.token.rsplit("_", 1)[-1] not in text


# -------------------------------------------------------------------- health and metrics


async def test_healthz_needs_no_auth_and_reports_status(api: Api) -> None:
    status, body, response = await api.get("/healthz", headers={})
    assert status == 200 and body["status"] == "ok"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    api.health["status"] = "degraded"
    status, body, _ = await api.get("/healthz", headers={})
    assert status == 503 and body["status"] == "degraded"


async def test_metrics_text_format(api: Api) -> None:
    await api.command(LAMP, {"capability": "on_off", "command": "on"})
    status, text, response = await api.get("/metrics", headers={})
    assert status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = text.splitlines()
    assert "# TYPE hearth_devices gauge" in lines
    assert "hearth_devices 4" in lines
    assert "hearth_devices_available 3" in lines
    assert "# TYPE hearth_commands_total counter" in lines
    assert "hearth_commands_total 1" in lines
    assert "hearth_commands_confirmed_total 1" in lines
    for line in lines:
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert name.startswith("hearth_") and float(value) >= 0


async def test_custom_metrics_callable(tmp_path: Path) -> None:
    app = create_app(_make_hub(), TokenStore(tmp_path / "t.json"), health=lambda: {"status": "ok"},
                     metrics=lambda: "hearth_custom 1\n")
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        response = await session.get(server.url + "/metrics")
        assert await response.text() == "hearth_custom 1\n"
    assert server.port is None


# -------------------------------------------------------------------- devices


async def test_list_and_get_devices(api: Api) -> None:
    status, body, response = await api.get("/api/devices")
    assert status == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    ids = [d["id"] for d in body["devices"]]
    assert ids == sorted(ids) == sorted([LAMP, MUTE, OFFLINE, HANG])
    assert body["devices"][ids.index(LAMP)] == api.hub.devices[LAMP].as_dict()

    status, body, _ = await api.get("/api/devices", params={"area": "kitchen"})
    assert [d["id"] for d in body["devices"]] == [LAMP]
    status, body, _ = await api.get("/api/devices", params={"capability": "level", "area": "Hall"})
    assert [d["id"] for d in body["devices"]] == [MUTE, OFFLINE]
    status, body, _ = await api.get("/api/devices", params={"source": "other"})
    assert [d["id"] for d in body["devices"]] == [HANG]
    status, body, _ = await api.get("/api/devices", params={"colour": "red"})
    assert status == 400 and body["field"] == "query.colour"

    status, body, _ = await api.get(f"/api/devices/{LAMP}")
    assert status == 200 and body["components"]["main"]["level"] == {"percent": 10.0}
    status, body, _ = await api.get("/api/devices/fake:nope")
    assert status == 404 and "fake:nope" in body["error"] and body["field"] == "device_id"


async def test_capabilities_schema(api: Api) -> None:
    status, body, _ = await api.get("/api/capabilities")
    assert status == 200 and body == json_schema()


async def test_unknown_routes_and_methods_are_json(api: Api) -> None:
    status, body, _ = await api.get("/api/nope")
    assert status == 404 and "error" in body
    status, body, response = await api.post("/api/devices")
    assert status == 405 and "error" in body and "GET" in response.headers["Allow"]


# -------------------------------------------------------------------- commands


async def test_command_confirmed(api: Api) -> None:
    status, body = await api.command(LAMP, {"capability": "level", "command": "set", "args": {"percent": 55}})
    assert status == 200, body
    assert body["status"] == "confirmed"
    assert body["expected"] == {"percent": 55}
    assert body["command"] == {"device_id": LAMP, "component": "main", "capability": "level", "command": "set",
                               "args": {"percent": 55}, "source": "api"}
    assert api.hub.devices[LAMP].value("main", "level", "percent") == 55
    status, body = await api.command(LAMP, {"component": "main", "capability": "on_off", "command": "toggle"})
    assert status == 200 and body["expected"] == {"on": True}


async def test_command_timeout_is_202(api: Api) -> None:
    status, body = await api.command(MUTE, {"capability": "on_off", "command": "on", "timeout_s": 0.05})
    assert status == 202 and body["status"] == "timeout"
    assert body["expected"] == {"on": True}


async def test_command_to_offline_device_is_409(api: Api) -> None:
    status, body = await api.command(OFFLINE, {"capability": "on_off", "command": "on"})
    assert status == 409 and body["status"] == "unavailable"


async def test_command_to_unknown_device_is_404(api: Api) -> None:
    status, body = await api.command("fake:nope", {"capability": "on_off", "command": "on"})
    assert status == 404 and "fake:nope" in body["error"]
    assert body["reason"] == "unknown_device"


async def test_hung_adapter_does_not_hang_the_request(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    # The hub's one deadline answers for an adapter stuck on its device: "timeout", the command may still
    # take effect (not "failed"); the API's own grace period is only a safety net behind it.
    monkeypatch.setattr(api_commands, "ADAPTER_GRACE_S", 5.0)
    status, body = await api.command(HANG, {"capability": "on_off", "command": "on", "timeout_s": 0.05})
    assert status == 202 and body["status"] == "timeout"
    assert "may still carry the command out" in body["message"]


async def test_failed_adapter_is_502(api: Api) -> None:
    async def broken(command: Command) -> CommandResult:
        raise RuntimeError("boom")

    api.hub.set_command_handler("fake", broken)
    status, body = await api.command(LAMP, {"capability": "on_off", "command": "on"})
    assert status == 502 and body["status"] == "failed"


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"capability": "warp_drive", "command": "on"}, "capability", "unknown_capability"),
        ({"capability": "color", "command": "set", "args": {"hue": 1, "saturation": 1}}, "capability",
         "unsupported_capability"),
        ({"capability": "on_off", "command": "explode"}, "command", "unknown_command"),
        ({"component": "l9", "capability": "on_off", "command": "on"}, "component", "unknown_component"),
        ({"capability": "level", "command": "set"}, "args.percent", "missing_argument"),
        ({"capability": "level", "command": "set", "args": {"percent": 101}}, "args.percent", "out_of_range"),
        ({"capability": "level", "command": "set", "args": {"percent": -1}}, "args.percent", "out_of_range"),
        ({"capability": "level", "command": "set", "args": {"percent": "50"}}, "args.percent", "wrong_type"),
        ({"capability": "level", "command": "set", "args": {"percent": True}}, "args.percent", "wrong_type"),
        ({"capability": "level", "command": "set", "args": {"percent": 5, "speed": 1}}, "args.speed",
         "unknown_argument"),
        ({"capability": 5, "command": "on"}, "capability", "string_type"),
        ({"command": "on"}, "capability", "missing"),
        ({"capability": "on_off", "command": "on", "args": []}, "args", "dict_type"),
        ({"capability": "on_off", "command": "on", "timeout_s": 0}, "timeout_s", "greater_than"),
        ({"capability": "on_off", "command": "on", "timeout_s": 61}, "timeout_s", "less_than_equal"),
        ({"capability": "on_off", "command": "on", "timeout_s": "1"}, "timeout_s", "float_type"),
        ({"capability": "on_off", "command": "on", "colour": "red"}, "colour", "extra_forbidden"),
        ([1, 2], "body", "wrong_type"),
        (b"{not json", "body", "invalid_json"),
        (b"\xff\xfe", "body", "invalid_json"),
        (b"", "body", "invalid_json"),
        (b"[" * 50_000, "body", "invalid_json"),
        (b'{"capability": "level", "command": "set", "args": {"percent": NaN}}', "args.percent", "out_of_range"),
    ],
)
async def test_bad_commands_name_the_field(api: Api, body: Any, field: str, reason: str) -> None:
    status, data = await api.command(LAMP, body)
    assert status == 400, data
    assert data["field"] == field
    assert data["reason"] == reason
    assert isinstance(data["error"], str) and data["error"]
    assert api.hub.counters["commands"] == 0


async def test_body_too_large_is_413(api: Api) -> None:
    big = json.dumps({"capability": "on_off", "command": "on", "args": {"x": "y" * MAX_BODY_BYTES}})
    status, data = await api.command(LAMP, big)
    assert status == 413 and "too large" in data["error"]


async def test_chunked_body_too_large_is_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b" " * (MAX_BODY_BYTES // 2)

    status, data, _ = await api.post(f"/api/devices/{LAMP}/commands", data=chunks())
    assert status == 413 and "too large" in data["error"]
    assert api.hub.counters["commands"] == 0


async def test_unexpected_error_is_a_bare_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def explode() -> dict[str, Any]:
        raise RuntimeError("secret detail")

    app = create_app(_make_hub(), TokenStore(tmp_path / "t.json"), health=explode)
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        response = await session.get(server.url + "/healthz")
        assert response.status == 500
        assert await response.json() == {"error": "internal error"}
    assert "secret detail" in caplog.text  # logged for the owner, never sent to the client


# -------------------------------------------------------------------- fuzz

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
_field_values = {
    "component": st.sampled_from(["main", "l1", ""]) | _json_values,
    "capability": st.sampled_from(["on_off", "level", "color", "nope"]) | _json_values,
    "command": st.sampled_from(["on", "off", "toggle", "set", "nope"]) | _json_values,
    "args": st.dictionaries(st.sampled_from(["percent", "transition_s", "x"]), _json_values, max_size=3)
    | _json_values,
    "timeout_s": st.sampled_from([0.01, 1, 60, 61, -1, 0]) | _json_values,
}
_command_like = st.fixed_dictionaries({}, optional=_field_values) | st.dictionaries(
    st.sampled_from([*_field_values, "extra"]), _json_values, max_size=6
)
# Close to valid, so that some bodies get through validation to the hub and the adapter.
_near_valid = st.fixed_dictionaries(
    {
        "capability": st.just("level"),
        "command": st.just("set"),
        "args": st.fixed_dictionaries(
            {"percent": st.floats(-5, 105) | st.integers(-5, 105)},
            optional={"transition_s": st.floats(-1, 5) | st.none()},
        ),
    },
    optional={"component": st.just("main"), "timeout_s": st.floats(0, 1)},
) | st.fixed_dictionaries(
    {"capability": st.just("on_off"), "command": st.sampled_from(["on", "off", "toggle"])},
    optional={"args": st.just({}), "timeout_s": st.sampled_from([0.5, 1, 1e-9])},
)
_bodies = (
    _near_valid.map(lambda d: json.dumps(d).encode())
    | _command_like.map(lambda d: json.dumps(d).encode())
    | _json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies, device_id=st.sampled_from([LAMP, OFFLINE, "fake:nope", "%20", "a" * 300]))
async def test_random_bodies_never_give_a_500(api: Api, body: bytes, device_id: str) -> None:
    status, data = await api.command(device_id, body)
    event(f"HTTP {status}")
    assert status in (200, 202, 400, 404, 409), (status, data)
    assert isinstance(data, dict)
    if status >= 400 and status != 409:
        assert isinstance(data["error"], str)
