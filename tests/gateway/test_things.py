"""W3C WoT Thing Descriptions (``GET /api/things/{id}``): valid against the official TD 1.1 JSON Schema
(tests/fixtures/wot/, with its source), and faithful to the capability model: properties with types, units and
ranges (a device's own limits within the model's), actions whose input is the command route's body, events,
forms for this API, the bearer scheme."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest

from gateway.api.app import ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.things import thing_description
from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, Command, CommandResult, DeviceInfo, Update

TD_SCHEMA = json.loads((Path(__file__).parents[1] / "fixtures" / "wot" / "td-json-schema-validation.json")
                       .read_text(encoding="utf-8"))


def _support(attrs: set[str], commands: set[str] = frozenset(),
             limits: dict[str, tuple[float | None, float | None]] | None = None) -> CapabilitySupport:
    return CapabilitySupport(frozenset(attrs), frozenset(commands), dict(limits or {}))


PLUG = DeviceInfo(
    "zigbee2mqtt:0x00158d0001db18f9", "Washing machine plug", "zigbee2mqtt",
    {"main": {"on_off": _support({"on"}, {"on", "off", "toggle"}),
              "power_meter": _support({"watts", "volts", "amps"}),
              "energy_meter": _support({"kwh"})}},
    manufacturer="Xiaomi", model="ZNCZ04LM", sw_version="0.0.0_0020",
)
LIGHT = DeviceInfo(
    "zigbee2mqtt:0x0017880104a1b2c3", "Living room bulb", "zigbee2mqtt",
    {"main": {"on_off": _support({"on"}, {"on", "off", "toggle"}),
              "level": _support({"percent"}, {"set"}),
              "color_temperature": _support({"kelvin", "min_kelvin", "max_kelvin"}, {"set"},
                                            {"kelvin": (2200, 6500)}),
              "color": _support({"hue", "saturation", "x", "y"}, {"set", "set_xy"})}},
    manufacturer="Signify", model="LCA001",
)
THERMOSTAT = DeviceInfo(
    "zigbee2mqtt:0x842e14fffe5a6b7c", "Bedroom radiator", "zigbee2mqtt",
    {"main": {"thermostat": _support({"current_celsius", "target_celsius", "mode", "running"},
                                     {"set_target", "set_mode"}, {"target_celsius": (5, 30)}),
              "valve": _support({"position_percent"}),
              "battery": _support({"percent", "low"})}},
)
COVER = DeviceInfo(
    "shelly:shellyplus2pm-a8032ab12345", "Kitchen blind", "shelly",
    {"main": {"cover": _support({"position_percent", "motion"}, {"open", "close", "stop", "set_position"})}},
)
BUTTON = DeviceInfo(
    "ble:a4:c1:38:0a:0b:0c", "Hall button", "ble",
    {"main": {"button": _support({"last_event", "button"}), "battery": _support({"percent"})}},
)
METER = DeviceInfo(
    "shelly:shellypro3em-c8f09e123456", "House meter", "shelly",
    {name: {"power_meter": _support({"watts", "volts", "amps", "power_factor"}),
            "energy_meter": _support({"kwh", "exported_kwh"})} for name in ("main", "l1", "l2", "l3")},
)
#: A plug with a power meter, a dimmable colour light, a thermostat, a cover, a button, a three-phase meter.
DEVICES = (PLUG, LIGHT, THERMOSTAT, COVER, BUTTON, METER)
BASE = "http://127.0.0.1:8470/"


def _hub() -> Hub:
    hub = Hub(SystemClock())
    for info in DEVICES:
        hub.upsert_device(info, "fake")
        hub.set_available(info.id, True)
    hub.apply([Update(PLUG.id, "main", "on_off", "on", True), Update(PLUG.id, "main", "power_meter", "watts", 1830.5)])

    async def handler(command: Command) -> CommandResult:
        return CommandResult("confirmed", "done")

    hub.set_command_handler("fake", handler)
    return hub


@pytest.mark.parametrize("info", DEVICES, ids=[d.name for d in DEVICES])
def test_the_thing_description_is_valid_td_1_1(info: DeviceInfo) -> None:
    td = thing_description(_hub().devices[info.id], BASE)
    jsonschema.Draft7Validator.check_schema(TD_SCHEMA)
    errors = sorted(jsonschema.Draft7Validator(TD_SCHEMA).iter_errors(td), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:10])
    assert td["@context"][0] == "https://www.w3.org/2022/wot/td/v1.1"
    assert td["security"] == "bearer_sc" and td["securityDefinitions"]["bearer_sc"]["scheme"] == "bearer"
    # One property per reported attribute, one action per accepted command, of every component.
    assert len(td["properties"]) == sum(len(s.attributes) for caps in info.components.values() for s in caps.values())
    assert len(td["actions"]) == sum(len(s.commands) for caps in info.components.values() for s in caps.values())


def test_the_schema_catches_a_broken_description() -> None:
    # The vendored schema is not vacuous: a TD without security, or with a form without href, fails it.
    td = thing_description(_hub().devices[PLUG.id], BASE)
    validator = jsonschema.Draft7Validator(TD_SCHEMA)
    assert not list(validator.iter_errors(td))
    assert list(validator.iter_errors({k: v for k, v in td.items() if k != "security"}))
    broken: dict[str, Any] = json.loads(json.dumps(td))
    del broken["properties"]["main/on_off/on"]["forms"][0]["href"]
    assert list(validator.iter_errors(broken))


def test_properties_carry_types_units_and_the_device_s_own_ranges() -> None:
    hub = _hub()
    light = thing_description(hub.devices[LIGHT.id], BASE)
    kelvin = light["properties"]["main/color_temperature/kelvin"]
    assert (kelvin["type"], kelvin["unit"], kelvin["minimum"], kelvin["maximum"]) == ("number", "K", 2200, 6500)
    assert kelvin["readOnly"] is True and kelvin["hearth:setBy"] == ["main/color_temperature/set"]
    assert light["properties"]["main/on_off/on"]["type"] == "boolean"
    level = light["actions"]["main/level/set"]
    assert level["input"]["properties"]["args"]["properties"]["percent"] == {
        "type": "number", "minimum": 0, "maximum": 100, "unit": "%"}
    assert level["input"]["properties"]["args"]["required"] == ["percent"]
    assert level["forms"][0] == {"href": "api/devices/zigbee2mqtt%3A0x0017880104a1b2c3/commands", "op": "invokeaction",
                                 "htv:methodName": "POST", "contentType": "application/json"}
    thermostat = thing_description(hub.devices[THERMOSTAT.id], BASE)
    target = thermostat["actions"]["main/thermostat/set_target"]["input"]["properties"]["args"]
    assert (target["properties"]["celsius"]["minimum"], target["properties"]["celsius"]["maximum"]) == (-50, 100)
    mode = thermostat["properties"]["main/thermostat/mode"]
    assert mode["type"] == "string" and "heat" in mode["enum"]
    meter = thing_description(hub.devices[METER.id], BASE)
    assert {"main/power_meter/watts", "l1/power_meter/watts", "l3/energy_meter/exported_kwh"} <= set(
        meter["properties"])
    volts = meter["properties"]["l2/power_meter/volts"]
    assert volts["forms"][0]["hearth:valuePointer"] == "/components/l2/power_meter/volts"
    button = thing_description(hub.devices[BUTTON.id], BASE)
    pressed = button["events"]["main/button/pressed"]
    assert pressed["data"]["properties"]["kind"]["enum"][0] == "single"
    assert pressed["forms"][0]["href"] == "ws://127.0.0.1:8470/api/ws"
    assert button["actions"] == {}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str], Hub]]:
    hub = _hub()
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("tests")
    app = create_app(hub, tokens, health=lambda: {"status": "ok"})
    async with ApiServer(app, "127.0.0.1", 0) as server:
        yield server.url, {"Authorization": f"Bearer {token}"}, hub


async def test_the_forms_work_against_the_api(served: tuple[str, dict[str, str], Hub]) -> None:
    """Follow the TD: read a property where its form and pointer say, invoke an action with its input."""
    url, auth, _ = served
    async with aiohttp.ClientSession(headers=auth) as session:
        async with session.get(f"{url}/api/things/{PLUG.id}") as response:
            assert response.status == 200 and response.content_type == "application/td+json"
            td = await response.json(content_type=None)
        assert not list(jsonschema.Draft7Validator(TD_SCHEMA).iter_errors(td))
        assert td["base"] == url + "/"
        prop = td["properties"]["main/power_meter/watts"]
        form = prop["forms"][0]
        async with session.get(td["base"] + form["href"]) as response:
            device = await response.json()
        value: Any = device
        for part in form["hearth:valuePointer"].strip("/").split("/"):
            value = value[part]
        assert value == 1830.5
        action = td["actions"]["main/on_off/off"]
        body = {name: schema["const"] for name, schema in action["input"]["properties"].items() if "const" in schema}
        body["args"] = {}
        jsonschema.validate(body, action["input"])
        async with session.post(td["base"] + action["forms"][0]["href"], json=body) as response:
            result = await response.json()
            assert response.status == 200 and result["status"] == "confirmed"
        async with session.get(f"{url}/api/things/nope:nothing") as response:
            assert response.status == 404 and (await response.json())["reason"] == "unknown_device"
