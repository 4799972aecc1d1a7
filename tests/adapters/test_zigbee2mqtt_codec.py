"""The Zigbee2MQTT codec on recorded payloads (tests/fixtures/z2m, sources in its README)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.zigbee2mqtt import codec as z2m_codec
from adapters.zigbee2mqtt.codec import (
    MAX_PAYLOAD_BYTES,
    Decoded,
    Zigbee2MqttCodec,
    action_to_press,
    compile_device,
)
from gateway.model import capability
from gateway.sdk import CodecError, Command

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "z2m"
BRIDGE_DEVICES: list[dict[str, Any]] = json.loads((FIXTURES / "bridge_devices.json").read_text())

LIGHT = "zigbee2mqtt:0x00158d0002b7d6be"
PLUG = "zigbee2mqtt:0xa4c13801e33848a2"
MOTION = "zigbee2mqtt:0x00158d000411086c"
DOOR = "zigbee2mqtt:0x00158d000122fcd1"
LEAK = "zigbee2mqtt:0x00158d000405cfee"
WEATHER = "zigbee2mqtt:0x00158d00040726f1"
BUTTON = "zigbee2mqtt:0x00158d00033e8db4"
WALL = "zigbee2mqtt:0x00158d0004094a88"
CUBE = "zigbee2mqtt:0x00158d0002a71b33"
TRV = "zigbee2mqtt:0x0016e9fffe0a1b2c"
COVER = "zigbee2mqtt:0xb43522fffec17755"
GANG2 = "zigbee2mqtt:0x5c0272fffec89ec2"
CO = "zigbee2mqtt:0x00158d000205d552"


def _bytes(payload: Any) -> bytes:
    return payload.encode() if isinstance(payload, str) else orjson.dumps(payload)


def capture() -> list[dict[str, Any]]:
    return [json.loads(line) for line in (FIXTURES / "capture.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture
def codec() -> Zigbee2MqttCodec:
    c = Zigbee2MqttCodec()
    c.decode("zigbee2mqtt/bridge/groups", _bytes([{"id": 1, "friendly_name": "office/desk_light"}]))
    decoded = c.decode("zigbee2mqtt/bridge/devices", _bytes(BRIDGE_DEVICES))
    assert decoded.problems == []
    return c


def state(codec: Zigbee2MqttCodec, name: str, payload: Any) -> Decoded:
    return codec.decode(f"zigbee2mqtt/{name}", _bytes(payload))


def values(decoded: Decoded) -> dict[tuple[str, str, str, str], Any]:
    return {(u.device_id, u.component, u.capability, u.attribute): u.value for u in decoded.updates}


def send(codec: Zigbee2MqttCodec, device: str, capability_name: str, command: str, component: str = "main",
         **args: Any) -> tuple[str, dict[str, Any]]:
    topic, payload = codec.encode(Command(device, component, capability_name, command, args))
    return topic, orjson.loads(payload)


def model_problem(cap: str, attr: str, value: Any) -> str | None:
    spec = capability(cap)
    assert spec is not None and attr in spec.attributes, f"{cap}.{attr} is not in the model"
    return spec.attributes[attr].check(value)


# ------------------------------------------------------------------------------------------ devices


def test_bridge_devices_become_devices_with_hardware_ids_and_metadata(codec: Zigbee2MqttCodec) -> None:
    light = codec.device(LIGHT)
    assert light is not None
    info = light.info
    assert (info.name, info.source, info.manufacturer, info.model) == (
        "Bedroom Desk Light", "zigbee2mqtt", "Xiaomi", "ZNLDP12LM")
    assert info.sw_version == "1.31"  # the firmware's NUL padding is gone
    assert info.aliases == ("Bedroom Desk Light",)
    assert codec.device(CO).info.sw_version is None  # all-NUL build id means unknown
    # the coordinator is not a device of the house
    assert all(d.info.model is None or d.ieee != "0x00124b0014d9b30e" for d in codec.by_id.values())
    assert "zigbee2mqtt:0x00124b0014d9b30e" not in codec.by_id
    assert all(dev_id == dev_id.lower() for dev_id in codec.by_id)
    # an unsupported device (generated definition, no exposes) is still listed, minimally
    unsupported = codec.device("zigbee2mqtt:0xbc33acfffe17628a")
    assert unsupported is not None and unsupported.info.components == {"main": {}}


def test_light_exposes_give_capabilities_commands_and_kelvin_range(codec: Zigbee2MqttCodec) -> None:
    caps = codec.device(LIGHT).info.components["main"]
    assert caps["on_off"].commands == {"on", "off", "toggle"}
    assert caps["level"].commands == {"set"}
    ct = caps["color_temperature"]
    # 153..370 mireds is 6536..2703 K
    assert ct.limits == {"kelvin": (2703, 6536)}
    assert {"kelvin", "min_kelvin", "max_kelvin"} <= ct.attributes
    # effect (write only, not modelled) and power_outage_memory are not capabilities
    assert set(caps) == {"on_off", "level", "color_temperature", "connectivity"}


def test_bridge_devices_announces_the_bulbs_kelvin_range_as_state() -> None:
    decoded = Zigbee2MqttCodec().decode("zigbee2mqtt/bridge/devices", _bytes(BRIDGE_DEVICES))
    got = values(decoded)
    assert got[(LIGHT, "main", "color_temperature", "min_kelvin")] == 2703
    assert got[(LIGHT, "main", "color_temperature", "max_kelvin")] == 6536
    assert len(decoded.upserts) == 16


def test_light_state_is_converted_to_percent_and_kelvin(codec: Zigbee2MqttCodec) -> None:
    got = values(state(codec, "Bedroom Desk Light", {"brightness": 254, "color_temp": 370, "state": "ON",
                                                    "color_mode": "color_temp", "linkquality": 220}))
    assert got[(LIGHT, "main", "level", "percent")] == 100.0
    assert got[(LIGHT, "main", "color_temperature", "kelvin")] == pytest.approx(2703, abs=1)
    assert got[(LIGHT, "main", "on_off", "on")] is True
    assert got[(LIGHT, "main", "connectivity", "lqi")] == 220
    # the recorded payload from barbaris (brightness 41, 260 mireds)
    got = values(state(codec, "Bedroom Desk Light", {"brightness": 41, "color_temp": 260, "state": "OFF"}))
    assert got[(LIGHT, "main", "level", "percent")] == pytest.approx(16.1)
    assert got[(LIGHT, "main", "color_temperature", "kelvin")] == 3846
    assert got[(LIGHT, "main", "on_off", "on")] is False


def test_contact_true_means_closed(codec: Zigbee2MqttCodec) -> None:
    # MCCGQ01LM publishes an inverted expose (value_on: false); the payload's `contact: true` is still closed.
    closed = values(state(codec, "Door Sensor", {"contact": True, "battery": 100, "voltage": 3095}))
    assert closed[(DOOR, "main", "contact", "open")] is False
    opened = values(state(codec, "Door Sensor", {"contact": False}))
    assert opened[(DOOR, "main", "contact", "open")] is True


def test_battery_voltage_in_millivolts_becomes_battery_volts(codec: Zigbee2MqttCodec) -> None:
    got = values(state(codec, "Door Sensor", {"voltage": 3095, "battery": 100}))
    assert got[(DOOR, "main", "battery", "volts")] == pytest.approx(3.095)
    assert got[(DOOR, "main", "battery", "percent")] == 100


def test_metering_plug_recorded_payload(codec: Zigbee2MqttCodec) -> None:
    payload = {"child_lock": "UNLOCK", "current": 0.1, "energy": 8.42, "indicator_mode": None,
               "last_seen": "2022-11-15T19:06:38+00:00", "linkquality": 48, "power": 3, "power_outage_memory": "on",
               "state": "ON", "update": {"state": None}, "update_available": None, "voltage": 241}
    decoded = state(codec, "plug_zigbee23", payload)
    assert decoded.problems == []
    got = values(decoded)
    assert got[(PLUG, "main", "power_meter", "volts")] == 241  # mains volts, not a battery
    assert got[(PLUG, "main", "power_meter", "watts")] == 3
    assert got[(PLUG, "main", "power_meter", "amps")] == 0.1
    assert got[(PLUG, "main", "energy_meter", "kwh")] == 8.42
    assert got[(PLUG, "main", "on_off", "on")] is True
    assert got[(PLUG, "main", "connectivity", "last_seen")] == "2022-11-15T19:06:38.000Z"
    assert (PLUG, "main", "battery", "volts") not in got


def test_motion_and_weather_sensors(codec: Zigbee2MqttCodec) -> None:
    got = values(state(codec, "Bathroom Motion Sensor", {"battery": 100, "voltage": 3005, "illuminance": 323,
                                                        "illuminance_lux": 323, "linkquality": 39, "occupancy": True}))
    assert got[(MOTION, "main", "occupancy", "occupied")] is True
    assert got[(MOTION, "main", "illuminance", "lux")] == 323
    assert got[(MOTION, "main", "battery", "percent")] == 100
    got = values(state(codec, "Living Room temperature, humidity and pressure sensor",
                       {"battery": 100, "humidity": 44.43, "linkquality": 152, "power_outage_count": 1616,
                        "pressure": 957.4, "temperature": 20.74, "voltage": 3025}))
    assert got[(WEATHER, "main", "temperature", "celsius")] == 20.74
    assert got[(WEATHER, "main", "humidity", "percent")] == 44.43
    assert got[(WEATHER, "main", "pressure", "hpa")] == 957.4
    assert got[(WEATHER, "main", "battery", "volts")] == pytest.approx(3.025)
    got = values(state(codec, "Bathroom leak sensor", {"water_leak": True, "battery_low": True}))
    assert got[(LEAK, "main", "water_leak", "leak")] is True
    assert got[(LEAK, "main", "battery", "low")] is True
    got = values(state(codec, "0x00158d000205d552", {"battery": 90, "battery_low": False, "carbon_monoxide": True,
                                                    "linkquality": 18, "tamper": False, "voltage": 2900}))
    assert got[(CO, "main", "smoke_co_alarm", "co")] is True
    assert got[(CO, "main", "tamper", "tampered")] is False


def test_endpoints_are_components(codec: Zigbee2MqttCodec) -> None:
    caps = codec.device(GANG2).info.components
    assert caps["l1"]["on_off"].commands == {"on", "off", "toggle"}
    assert "on_off" in caps["l2"] and "on_off" not in caps.get("main", {})
    got = values(state(codec, "0x5c0272fffec89ec2", {"linkquality": 76, "state_l1": "ON", "state_l2": "OFF"}))
    assert got[(GANG2, "l1", "on_off", "on")] is True
    assert got[(GANG2, "l2", "on_off", "on")] is False
    assert send(codec, GANG2, "on_off", "on", component="l1") == ("zigbee2mqtt/0x5c0272fffec89ec2/set",
                                                                  {"state_l1": "ON"})
    assert send(codec, GANG2, "on_off", "toggle", component="l2")[1] == {"state_l2": "TOGGLE"}
    with pytest.raises(CodecError, match="no settable on_off"):
        send(codec, GANG2, "on_off", "on", component="main")


def test_thermostat_trv(codec: Zigbee2MqttCodec) -> None:
    thermostat = codec.device(TRV).info.components["main"]["thermostat"]
    assert thermostat.commands == {"set_target", "set_mode"}
    assert thermostat.limits == {"celsius": (7, 30)}
    got = values(state(codec, "bedroom/radiator", {"local_temperature": 19.81, "linkquality": 39,
                                                  "occupied_heating_setpoint": 16.5, "pi_heating_demand": 0,
                                                  "battery": 75, "running_state": "heat", "system_mode": "auto"}))
    assert got[(TRV, "main", "thermostat", "current_celsius")] == 19.81
    assert got[(TRV, "main", "thermostat", "target_celsius")] == 16.5
    assert got[(TRV, "main", "thermostat", "running")] == "heating"
    assert got[(TRV, "main", "thermostat", "mode")] == "auto"
    assert got[(TRV, "main", "valve", "position_percent")] == 0
    assert send(codec, TRV, "thermostat", "set_target", celsius=21.5) == (
        "zigbee2mqtt/bedroom/radiator/set", {"occupied_heating_setpoint": 21.5})
    assert send(codec, TRV, "thermostat", "set_mode", mode="off")[1] == {"system_mode": "off"}
    with pytest.raises(CodecError, match="does not support mode 'cool'"):
        send(codec, TRV, "thermostat", "set_mode", mode="cool")
    with pytest.raises(CodecError, match="outside"):
        send(codec, TRV, "thermostat", "set_target", celsius=35)


def _device(exposes: list[dict[str, Any]], name: str = "dev", power_source: str = "Mains (single phase)") -> Any:
    entry = {"ieee_address": "0x0000000000000001", "friendly_name": name, "type": "Router",
             "power_source": power_source, "definition": {"vendor": "V", "model": "M", "exposes": exposes}}
    codec = Zigbee2MqttCodec()
    codec.decode("zigbee2mqtt/bridge/devices", _bytes([entry]))
    return codec, "zigbee2mqtt:0x0000000000000001"


def test_current_heating_setpoint_and_cooling_precedence() -> None:
    codec, dev = _device([{"type": "climate", "features": [
        {"type": "numeric", "name": "occupied_cooling_setpoint", "property": "occupied_cooling_setpoint", "access": 7},
        {"type": "numeric", "name": "current_heating_setpoint", "property": "current_heating_setpoint", "access": 3,
         "value_min": 5, "value_max": 35},
        {"type": "enum", "name": "running_state", "property": "running_state", "access": 1,
         "values": ["idle", "heat", "cool"]}]}])
    got = values(state(codec, "dev", {"current_heating_setpoint": 30, "occupied_cooling_setpoint": 26,
                                      "running_state": "cool"}))
    assert got[(dev, "main", "thermostat", "target_celsius")] == 30
    assert got[(dev, "main", "thermostat", "running")] == "cooling"
    assert send(codec, dev, "thermostat", "set_target", celsius=22)[1] == {"current_heating_setpoint": 22}


def test_a_setting_shaped_as_a_switch_is_not_the_device_on_off() -> None:
    # Immax 07703L TRV: "Away mode" is exposed as a switch whose state property is away_mode (exposes as in
    # itavero/homebridge-z2m test/exposes/immax/07703l.json). It must not make the TRV an on/off device that
    # "turn off everything" would switch.
    codec, dev = _device([
        {"label": "Away mode", "type": "switch", "features": [
            {"name": "state", "access": 3, "type": "binary", "property": "away_mode", "value_on": "ON",
             "value_off": "OFF"}]},
        {"type": "climate", "features": [
            {"name": "current_heating_setpoint", "access": 3, "type": "numeric", "property": "current_heating_setpoint",
             "unit": "°C", "value_max": 35, "value_min": 5},
            {"name": "local_temperature", "access": 1, "type": "numeric", "property": "local_temperature",
             "unit": "°C"}]},
        {"name": "temperature", "access": 1, "type": "numeric", "property": "temperature", "unit": "°C"}],
        power_source="Battery")
    main = codec.device(dev).info.components["main"]
    assert "on_off" not in main and "thermostat" in main
    assert "temperature" in main  # not an actuator: a plain temperature is the room's
    got = values(state(codec, "dev", {"away_mode": "ON", "local_temperature": 19.5, "current_heating_setpoint": 21}))
    assert (dev, "main", "on_off", "on") not in got and got[(dev, "main", "thermostat", "current_celsius")] == 19.5


def test_cover(codec: Zigbee2MqttCodec) -> None:
    cover = codec.device(COVER).info.components["main"]["cover"]
    assert cover.commands == {"open", "close", "stop", "set_position"}
    got = values(state(codec, "rrrStubeRollladenL", {"calibration": "ON", "last_seen": "2026-04-19T21:54:48.219Z",
                                                    "linkquality": 255, "moving": "UP", "position": 40,
                                                    "state": "OPEN"}))
    assert got[(COVER, "main", "cover", "position_percent")] == 40  # 100 = open on both sides
    assert got[(COVER, "main", "cover", "motion")] == "opening"
    assert got[(COVER, "main", "connectivity", "last_seen")] == "2026-04-19T21:54:48.219Z"
    assert send(codec, COVER, "cover", "open")[1] == {"state": "OPEN"}
    assert send(codec, COVER, "cover", "close")[1] == {"state": "CLOSE"}
    assert send(codec, COVER, "cover", "stop")[1] == {"state": "STOP"}
    assert send(codec, COVER, "cover", "set_position", percent=75)[1] == {"position": 75}


def test_lock_and_fan() -> None:
    codec, dev = _device([
        {"type": "lock", "features": [
            {"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "LOCK",
             "value_off": "UNLOCK"},
            {"type": "enum", "name": "lock_state", "property": "lock_state", "access": 1,
             "values": ["not_fully_locked", "locked", "unlocked"]}]},
        {"type": "fan", "features": [
            {"type": "binary", "name": "state", "property": "fan_state", "access": 7, "value_on": "ON",
             "value_off": "OFF"},
            {"type": "enum", "name": "mode", "property": "fan_mode", "access": 7,
             "values": ["off", "low", "medium", "high", "auto"]}]}])
    got = values(state(codec, "dev", {"state": "LOCK", "fan_state": "ON", "fan_mode": "medium"}))
    assert got[(dev, "main", "lock", "state")] == "locked"
    assert got[(dev, "main", "fan", "on")] is True
    assert got[(dev, "main", "fan", "preset")] == "medium"
    assert send(codec, dev, "lock", "unlock")[1] == {"state": "UNLOCK"}
    assert send(codec, dev, "lock", "lock")[1] == {"state": "LOCK"}
    assert send(codec, dev, "fan", "set_preset", preset="auto")[1] == {"fan_mode": "auto"}
    assert send(codec, dev, "fan", "set_speed", percent=100)[1] == {"fan_mode": "high"}
    assert send(codec, dev, "fan", "set_speed", percent=20)[1] == {"fan_mode": "low"}
    assert send(codec, dev, "fan", "set_speed", percent=0)[1] == {"fan_mode": "off"}
    # What the lock did wins over `state` (on some converters the last command sent): a lock that did not
    # close is jammed, not locked (Danalock V3 state as in Koenkk/zigbee2mqtt#3582).
    got = values(state(codec, "dev", {"state": "LOCK", "lock_state": "not_fully_locked", "battery": 80}))
    assert got[(dev, "main", "lock", "state")] == "jammed"
    assert values(state(codec, "dev", {"lock_state": "unlocked"}))[(dev, "main", "lock", "state")] == "unlocked"
    assert codec.device(dev).info.components["main"]["lock"].commands == {"lock", "unlock"}


def test_color_xy_and_hs() -> None:
    codec, dev = _device([{"type": "light", "features": [
        {"type": "binary", "name": "state", "property": "state", "access": 7, "value_on": "ON", "value_off": "OFF"},
        {"type": "composite", "name": "color_xy", "property": "color", "access": 7, "features": [
            {"type": "numeric", "name": "x", "property": "x", "access": 7},
            {"type": "numeric", "name": "y", "property": "y", "access": 7}]},
        {"type": "composite", "name": "color_hs", "property": "color", "access": 7, "features": [
            {"type": "numeric", "name": "hue", "property": "hue", "access": 7},
            {"type": "numeric", "name": "saturation", "property": "saturation", "access": 7}]}]}])
    color = codec.device(dev).info.components["main"]["color"]
    assert color.attributes == {"x", "y", "hue", "saturation"} and color.commands == {"set", "set_xy"}
    got = values(state(codec, "dev", {"color": {"hue": 0, "saturation": 100, "x": 0.7006, "y": 0.2993}}))
    assert got[(dev, "main", "color", "x")] == 0.7006
    assert got[(dev, "main", "color", "hue")] == 0
    assert got[(dev, "main", "color", "saturation")] == 100
    assert send(codec, dev, "color", "set_xy", x=0.3, y=0.4)[1] == {"color": {"x": 0.3, "y": 0.4}}
    assert send(codec, dev, "color", "set", hue=120, saturation=50)[1] == {"color": {"hue": 120, "saturation": 50}}


def test_level_and_color_temperature_encoding(codec: Zigbee2MqttCodec) -> None:
    assert send(codec, LIGHT, "level", "set", percent=100) == ("zigbee2mqtt/Bedroom Desk Light/set",
                                                              {"brightness": 254})
    assert send(codec, LIGHT, "level", "set", percent=50, transition_s=2)[1] == {"brightness": 127, "transition": 2}
    assert send(codec, LIGHT, "color_temperature", "set", kelvin=2700)[1] == {"color_temp": 370}
    # beyond the bulb's coolest 153 mireds: clamped to what it can do
    assert send(codec, LIGHT, "color_temperature", "set", kelvin=10000)[1] == {"color_temp": 153}
    assert send(codec, LIGHT, "on_off", "off")[1] == {"state": "OFF"}
    with pytest.raises(CodecError, match="no settable color"):
        send(codec, LIGHT, "color", "set_xy", x=0.1, y=0.1)


def test_access_bits_decide_attributes_and_commands() -> None:
    codec, dev = _device([{"type": "light", "features": [
        {"type": "binary", "name": "state", "property": "state", "access": 1, "value_on": "ON", "value_off": "OFF"},
        {"type": "numeric", "name": "brightness", "property": "brightness", "access": 2, "value_max": 254}]}])
    caps = codec.device(dev).info.components["main"]
    assert caps["on_off"].attributes == {"on"} and caps["on_off"].commands == frozenset()  # readable only
    assert caps["level"].attributes == frozenset() and caps["level"].commands == {"set"}  # settable only
    assert values(state(codec, "dev", {"brightness": 100})) == {}  # not published, so not decoded


def test_unknown_and_odd_exposes_are_ignored() -> None:
    odd = ["state", 42, None, {"type": "list", "name": "schedule", "property": "schedule", "access": 7},
           {"type": "text", "name": "x"}, {"type": "hologram", "features": "nope"}, {"features": [{"name": 3}]},
           {"type": "numeric", "name": "temperature", "access": "bogus"},
           {"type": "binary", "name": "occupancy", "property": "occupancy", "access": 1, "endpoint": True}]
    codec, dev = _device(odd)
    caps = codec.device(dev).info.components
    assert caps["main"]["temperature"].attributes == {"celsius"}
    assert caps["main"]["occupancy"].attributes == {"occupied"}


def test_old_style_exposes_with_string_features_do_not_crash(codec: Zigbee2MqttCodec) -> None:
    bulb = codec.device("zigbee2mqtt:0x14b457fffe2bd760")
    assert bulb is not None and bulb.friendly_name == "office/desk_light/bulb"
    decoded = state(codec, "office/desk_light/bulb", {"brightness": 254, "linkquality": 86, "state": "ON"})
    assert decoded.problems == []
    assert values(decoded) == {("zigbee2mqtt:0x14b457fffe2bd760", "main", "connectivity", "lqi"): 86}


# ------------------------------------------------------------------------------------------ buttons


@pytest.mark.parametrize(("action", "expected"), [
    ("single", ("single", 1)), ("double", ("double", 1)), ("triple", ("triple", 1)), ("hold", ("hold", 1)),
    ("release", ("release", 1)), ("long", ("long", 1)), ("1_single", ("single", 1)), ("2_double", ("double", 2)),
    ("button_3_hold", ("hold", 3)), ("single_left", ("single", 1)), ("hold_right", ("hold", 2)),
    ("double_both", ("double", 0)), ("on", ("single", 1)), ("off", ("single", 2)),
    ("brightness_move_up", ("hold", 1)), ("brightness_move_down", ("hold", 2)), ("brightness_stop", ("release", 1)),
    ("on_press_release", ("release", 1)), ("off_hold", ("hold", 2)),
    ("rotate_left", (None, 1)), ("quadruple", ("quadruple", 1)), ("shake", (None, 1)),
    # A number in the action is the button's, whatever the words say.
    ("on_2", ("single", 2)), ("off_3", ("single", 3)), ("brightness_move_up_2", ("hold", 2)),
    ("brightness_step_down_4", ("single", 4)), ("quadruple_l3", ("quadruple", 3)), ("recall_2", ("single", 2)),
    ("scene_5", ("single", 5)), ("store_1", ("long", 1)), ("brightness_step_up", ("single", 1)),
    # Not presses: a lock, a keypad, a dial turned.
    ("lock", (None, 1)), ("arm_all_zones", (None, 1)), ("dial_rotate_left_step", (None, 1)),
])
def test_action_to_press(action: str, expected: tuple[str | None, int]) -> None:
    assert action_to_press(action) == expected


HUE_DIMMER = ["on_press", "on_press_release", "on_hold", "on_hold_release", "up_press", "up_press_release",
              "up_hold", "up_hold_release", "down_press", "down_press_release", "down_hold", "down_hold_release",
              "off_press", "off_press_release", "off_hold", "off_hold_release"]
IKEA_FIVE = ["toggle", "brightness_up_click", "brightness_down_click", "brightness_up_hold", "brightness_up_release",
             "brightness_down_hold", "brightness_down_release", "toggle_hold", "arrow_left_click",
             "arrow_right_click", "arrow_left_hold", "arrow_left_release", "arrow_right_hold", "arrow_right_release"]
STYRBAR = ["on", "off", "brightness_move_up", "brightness_move_down", "brightness_stop", "arrow_left_click",
           "arrow_right_click", "arrow_left_hold", "arrow_left_release", "arrow_right_hold", "arrow_right_release"]
TWO_BUTTON = ["on", "off", "brightness_move_up", "brightness_move_down", "brightness_stop"]


@pytest.mark.parametrize(("actions", "expected"), [
    # Hue dimmer switch: four buttons, on / brighter / dimmer / off from the top.
    (HUE_DIMMER, {"on_press": 1, "up_hold": 2, "down_press_release": 3, "off_hold_release": 4}),
    # IKEA's round remote: the middle toggle, brighter, dimmer, and the two arrows.
    (IKEA_FIVE, {"toggle": 1, "brightness_up_click": 2, "brightness_down_hold": 3, "arrow_left_click": 4,
                 "arrow_right_release": 5}),
    # STYRBAR: on (hold: brighter) on top, off below, arrows left and right.
    (STYRBAR, {"on": 1, "brightness_move_up": 1, "off": 2, "brightness_move_down": 2, "arrow_left_hold": 3,
               "arrow_right_click": 4}),
    # A two-button dimmer: holding "on" brightens, so it is still button 1.
    (TWO_BUTTON, {"on": 1, "brightness_move_up": 1, "off": 2, "brightness_move_down": 2}),
])
def test_buttons_keep_their_place_on_remotes_whose_words_name_them(actions: list[str], expected: dict[str, int]
                                                                   ) -> None:
    words = z2m_codec.button_words(actions)
    assert {action: action_to_press(action, words)[1] for action in expected} == expected


def test_button_action_is_an_event_and_last_event(codec: Zigbee2MqttCodec) -> None:
    decoded = state(codec, "Wall Switch 1", {"action": "hold_right", "battery": 91, "linkquality": 63})
    [event] = decoded.events
    assert (event.device_id, event.capability, event.event) == (WALL, "button", "pressed")
    assert event.data == {"kind": "hold", "button": 2, "action": "hold_right"}
    got = values(decoded)
    assert got[(WALL, "main", "button", "last_event")] == "hold"
    assert got[(WALL, "main", "button", "button")] == 2
    # Z2M clears the action right after: no second press
    assert state(codec, "Office Desk Switch", {"action": "", "battery": 100}).events == []
    # a cube rotation is not a press: an event with the native action, no kind, no last_event
    decoded = state(codec, "Cube", {"action": "rotate_left", "action_angle": -23.5})
    assert [e.data for e in decoded.events] == [{"button": 1, "action": "rotate_left"}]
    assert (CUBE, "main", "button", "last_event") not in values(decoded)


# ------------------------------------------------------------------------------------------ topics


def test_friendly_names_with_slashes_and_suffixes(codec: Zigbee2MqttCodec) -> None:
    assert values(state(codec, "bedroom/radiator", {"battery": 70}))[(TRV, "main", "battery", "percent")] == 70
    avail = codec.decode("zigbee2mqtt/bedroom/radiator/availability", b'{"state":"offline"}')
    assert avail.availability == [(TRV, False)] and avail.problems == []
    legacy = codec.decode("zigbee2mqtt/bedroom/radiator/availability", b"online")
    assert legacy.availability == [(TRV, True)]
    for quiet in ("bedroom/radiator/set", "bedroom/radiator/get", "bedroom/radiator/set/system_mode",
                  "0x5c0272fffec89ec2/l1/set", "office/desk_light", "office/desk_light/set"):
        decoded = codec.decode(f"zigbee2mqtt/{quiet}", b'{"state":"ON"}')
        assert decoded == Decoded(), quiet
    # a group and a device inside it share a prefix: the longest known name wins
    bulb = codec.decode("zigbee2mqtt/office/desk_light/bulb/availability", b'{"state":"online"}')
    assert bulb.availability == [("zigbee2mqtt:0x14b457fffe2bd760", True)]


def test_attribute_output_topics(codec: Zigbee2MqttCodec) -> None:
    got = values(codec.decode("zigbee2mqtt/plug_zigbee23/power", b"0"))
    assert got == {(PLUG, "main", "power_meter", "watts"): 0}
    got = values(codec.decode("zigbee2mqtt/plug_zigbee23/state", b"OFF"))
    assert got == {(PLUG, "main", "on_off", "on"): False}


def test_one_press_is_one_event_when_attribute_topics_repeat_the_json(codec: Zigbee2MqttCodec) -> None:
    # `output: attribute_and_json` (and the <name>/action Zigbee2MQTT publishes for Home Assistant's device
    # triggers) send a press twice: in the JSON state and on <name>/action (the sequence logged in
    # Koenkk/zigbee2mqtt#10089). One press, one event.
    first = state(codec, "Wall Switch 1", {"action": "single_left", "battery": 91, "linkquality": 63})
    again = codec.decode("zigbee2mqtt/Wall Switch 1/action", b"single_left")
    assert len(first.events) == 1 and again.events == [] and again.problems == []


def test_bridge_topics_are_ignored_quietly(codec: Zigbee2MqttCodec) -> None:
    for sub in ("info", "logging", "event", "response/permit_join", "definitions", "extensions", "health",
                "request/permit_join"):
        assert codec.decode(f"zigbee2mqtt/bridge/{sub}", b'{"anything": [1, 2]}') == Decoded()
    assert codec.decode("zigbee2mqtt/bridge/logging", b"not json at all") == Decoded()


def test_bridge_state_offline_marks_devices_unavailable_and_online_restores(codec: Zigbee2MqttCodec) -> None:
    codec.decode("zigbee2mqtt/Door Sensor/availability", b"online")
    off = dict(codec.decode("zigbee2mqtt/bridge/state", b'{"state":"offline"}').availability)
    assert off[DOOR] is False and off[TRV] is False and len(off) == len(codec.by_id)
    on = dict(codec.decode("zigbee2mqtt/bridge/state", b"online").availability)  # legacy payload
    assert on[DOOR] is True  # what the device last said
    assert on[TRV] is None  # never said: unknown, not guessed
    bad = codec.decode("zigbee2mqtt/bridge/state", b"maybe")
    assert bad.availability == [] and "neither online nor offline" in bad.problems[0]


def test_messages_before_bridge_devices_are_buffered_then_applied() -> None:
    codec = Zigbee2MqttCodec()
    early = codec.decode("zigbee2mqtt/bedroom/radiator", b'{"local_temperature": 19.5}')
    assert early == Decoded()
    decoded = codec.decode("zigbee2mqtt/bridge/devices", _bytes(BRIDGE_DEVICES))
    assert values(decoded)[(TRV, "main", "thermostat", "current_celsius")] == 19.5
    late = codec.decode("zigbee2mqtt/Nobody Here", b'{"a": 1}')
    assert late.problems == ["zigbee2mqtt: message for unknown device topic 'zigbee2mqtt/Nobody Here'"]


def test_bridge_devices_republished_removes_left_devices_and_keeps_ids_on_rename(codec: Zigbee2MqttCodec) -> None:
    renamed = [dict(e) for e in BRIDGE_DEVICES if e["friendly_name"] != "Cube"]
    for entry in renamed:
        if entry["friendly_name"] == "Door Sensor":
            entry["friendly_name"] = "hall/front door"
    decoded = codec.decode("zigbee2mqtt/bridge/devices", _bytes(renamed))
    assert decoded.removals == [CUBE]
    [upsert] = decoded.upserts
    assert (upsert.id, upsert.name, upsert.aliases) == (DOOR, "hall/front door", ("hall/front door",))
    assert decoded.definitions_changed
    assert values(state(codec, "hall/front door", {"contact": True}))[(DOOR, "main", "contact", "open")] is False
    assert state(codec, "Door Sensor", {"contact": True}).problems  # the old name is gone


def test_restored_definitions_take_commands_and_stale_devices_are_pruned() -> None:
    first = Zigbee2MqttCodec()
    first.decode("zigbee2mqtt/bridge/devices", _bytes(BRIDGE_DEVICES))
    stored = orjson.loads(orjson.dumps(first.definitions()))  # what storage keeps (JSON)
    codec = Zigbee2MqttCodec()
    restored = codec.restore(stored, known_ids=[LIGHT, "zigbee2mqtt:0xdeadbeefdeadbeef"])
    assert {info.id for info in restored.upserts} >= {LIGHT, TRV}
    assert send(codec, TRV, "thermostat", "set_target", celsius=20)[1] == {"occupied_heating_setpoint": 20}
    decoded = codec.decode("zigbee2mqtt/bridge/devices", _bytes(BRIDGE_DEVICES))
    assert decoded.removals == ["zigbee2mqtt:0xdeadbeefdeadbeef"]
    assert decoded.upserts == []  # nothing changed since the restore


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("payload", "problem"), [
    (b"{not json", "not JSON"),
    (b"[1, 2, 3]", "expected a JSON object"),
    (b'"ON"', "expected a JSON object"),
    (b'{"x": "' + b"a" * MAX_PAYLOAD_BYTES + b'"}', "KiB limit"),
])
def test_bad_payloads_are_reported(codec: Zigbee2MqttCodec, payload: bytes, problem: str) -> None:
    decoded = codec.decode("zigbee2mqtt/Door Sensor", payload)
    assert decoded.updates == [] and len(decoded.problems) == 1 and problem in decoded.problems[0]
    assert "'Door Sensor'" in decoded.problems[0]


def test_wrong_typed_and_out_of_range_values_are_dropped_the_rest_kept(codec: Zigbee2MqttCodec) -> None:
    decoded = state(codec, "Bathroom Motion Sensor", {"battery": 255, "occupancy": "yes", "voltage": "3000 mV",
                                                     "illuminance": -5, "linkquality": 39})
    assert values(decoded) == {(MOTION, "main", "connectivity", "lqi"): 39}
    assert len(decoded.problems) == 4
    assert any("battery: 255 is outside 0..100" in p for p in decoded.problems)
    assert any("voltage: expected a number, got text '3000 mV'" in p for p in decoded.problems), decoded.problems
    # A number sent as text, as older converters did (Koenkk/zigbee2mqtt#663: "battery": "80.00"), is a number.
    got = values(state(codec, "Bathroom Motion Sensor", {"battery": "80.00", "voltage": "2900"}))
    assert got[(MOTION, "main", "battery", "percent")] == 80 and got[(MOTION, "main", "battery", "volts")] == 2.9
    decoded = state(codec, "Bedroom Desk Light", {"color_temp": 0, "brightness": True, "state": "MAYBE"})
    assert decoded.updates == [] and len(decoded.problems) == 3


def test_null_means_reported_but_unknown(codec: Zigbee2MqttCodec) -> None:
    got = values(state(codec, "plug_zigbee23", {"power": None, "state": "ON"}))
    assert got[(PLUG, "main", "power_meter", "watts")] is None


def test_bad_bridge_devices_entries_do_not_lose_the_good_ones() -> None:
    codec = Zigbee2MqttCodec()
    decoded = codec.decode("zigbee2mqtt/bridge/devices", _bytes([{"friendly_name": "no ieee"}, 7, *BRIDGE_DEVICES]))
    assert len(decoded.problems) == 2 and len(decoded.upserts) == 16
    assert codec.decode("zigbee2mqtt/bridge/devices", b'{"not": "a list"}').problems


@pytest.mark.parametrize(("raw", "expected"), [
    ("2023-10-04T21:12:18+02:00", "2023-10-04T19:12:18.000Z"),
    ("2026-04-19T21:54:48.219Z", "2026-04-19T21:54:48.219Z"),
    ("2024-01-15T07:00:00", "2024-01-15T07:00:00.000Z"),
    (1656440479942, "2022-06-28T18:21:19.942Z"),
])
def test_last_seen_iso_and_epoch_ms(codec: Zigbee2MqttCodec, raw: Any, expected: str) -> None:
    got = values(state(codec, "Door Sensor", {"last_seen": raw}))
    assert got[(DOOR, "main", "connectivity", "last_seen")] == expected


# ------------------------------------------------------------------------------------------ whole capture


def test_every_value_of_the_capture_fits_the_model() -> None:
    codec = Zigbee2MqttCodec()
    seen: set[tuple[str, str]] = set()
    for message in capture():
        decoded = codec.decode(message["topic"], _bytes(message["payload"]))
        assert decoded.problems == [], message["topic"]
        for update in decoded.updates:
            assert model_problem(update.capability, update.attribute, update.value) is None, update
            seen.add((update.capability, update.attribute))
        for info in decoded.upserts:
            for caps in info.components.values():
                for cap, support in caps.items():
                    for attr in support.attributes:
                        assert model_problem(cap, attr, None) is None
                    assert support.commands <= set(capability(cap).commands)
    assert {("contact", "open"), ("thermostat", "running"), ("cover", "motion"), ("button", "last_event"),
            ("power_meter", "volts"), ("battery", "volts"), ("connectivity", "last_seen")} <= seen


# ------------------------------------------------------------------------------------------ fuzz

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_topics = st.sampled_from([
    "zigbee2mqtt/Door Sensor", "zigbee2mqtt/bedroom/radiator", "zigbee2mqtt/bedroom/radiator/availability",
    "zigbee2mqtt/bridge/devices", "zigbee2mqtt/bridge/state", "zigbee2mqtt/bridge/groups",
    "zigbee2mqtt/plug_zigbee23/power", "zigbee2mqtt/Wall Switch 1", "zigbee2mqtt/Cube", "elsewhere/x",
    "zigbee2mqtt/Bedroom Desk Light", "zigbee2mqtt/0x5c0272fffec89ec2", "zigbee2mqtt/unknown/thing",
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(topic=_topics, payload=st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode())))
def test_fuzz_decode_never_raises(codec: Zigbee2MqttCodec, topic: str, payload: bytes) -> None:
    decoded = codec.decode(topic, payload)
    for update in decoded.updates:
        assert model_problem(update.capability, update.attribute, update.value) is None


_FUZZ_KEYS = sorted({key for entry in BRIDGE_DEVICES if (dev := compile_device(entry)) for key in dev.bindings}
                    | {"color"})


@settings(max_examples=300, deadline=None)
@given(values_=st.dictionaries(st.sampled_from(_FUZZ_KEYS), _json, max_size=6))
def test_fuzz_decode_functions_give_model_values_or_codec_errors(values_: dict[str, Any]) -> None:
    for entry in BRIDGE_DEVICES:
        device = compile_device(entry)
        if device is None:
            continue
        for b in device.bindings.values():
            raw = values_.get(b.property)
            if b.decode is None or raw is None:
                continue
            try:
                value = b.decode(raw, b)
            except CodecError:
                continue
            if b.attribute is not None:
                assert model_problem(b.capability, b.attribute, value) is None, (b.property, raw, value)
        out = Decoded()
        z2m_codec.decode_state(device, values_, out)  # never raises; bad values become problems
        assert all(not isinstance(u.value, float) or math.isfinite(u.value) for u in out.updates)


def test_fuzz_bridge_devices_shapes() -> None:
    # every entry with one key removed or replaced by junk: compiled or reported, never raised
    codec = Zigbee2MqttCodec()
    for entry in BRIDGE_DEVICES:
        for key in entry:
            for junk in (None, 1, "x", [], {}):
                broken = {**entry, key: junk}
                codec.decode("zigbee2mqtt/bridge/devices", _bytes([broken]))


def test_a_plugs_own_temperature_is_not_a_room_temperature() -> None:
    # Zigbee2MQTT 1.x exposed the ZNCZ02LM plug's chip temperature as plain `temperature`
    # (shape from Koenkk/zigbee2mqtt test/bridge.test.js, "Should publish devices on startup").
    from adapters.zigbee2mqtt.codec import compile_device

    plug = {
        "friendly_name": "power_plug", "ieee_address": "0x0017880104e45524", "type": "Router",
        "power_source": "Mains (single phase)", "supported": True,
        "definition": {"model": "ZNCZ02LM", "vendor": "Xiaomi", "exposes": [
            {"type": "switch", "features": [{"access": 7, "name": "state", "property": "state", "type": "binary",
                                             "value_on": "ON", "value_off": "OFF", "value_toggle": "TOGGLE"}]},
            {"access": 5, "name": "power", "property": "power", "type": "numeric", "unit": "W"},
            {"access": 1, "name": "temperature", "property": "temperature", "type": "numeric", "unit": "°C"},
        ]},
    }
    device = compile_device(plug)
    assert device is not None
    caps = device.info.components["main"]
    assert "temperature" not in caps and "on_off" in caps and "power_meter" in caps
    sensor = {**plug, "friendly_name": "sensor", "definition": {"model": "WSDCGQ11LM", "vendor": "Xiaomi", "exposes": [
        {"access": 1, "name": "temperature", "property": "temperature", "type": "numeric", "unit": "°C"}]}}
    assert "temperature" in compile_device(sensor).info.components["main"]
    # A wall multisensor with three relay outputs measures the room: its temperature is kept (WB-MSW v4,
    # exposes as zigbee-herdsman-converters' wirenboard.ts, state from Nerivec/zigbee2mqtt-windfront's mocks).
    relay = {"type": "switch", "endpoint": "l1", "features": [
        {"access": 7, "endpoint": "l1", "name": "state", "property": "state_l1", "type": "binary",
         "value_on": "ON", "value_off": "OFF"}]}
    multisensor = {**plug, "friendly_name": "multi-sensor", "definition": {
        "model": "WB-MSW-ZIGBEE v.4", "vendor": "Sprut.device", "exposes": [
            {"access": 5, "name": "temperature", "property": "temperature", "type": "numeric", "unit": "°C"},
            {"access": 5, "name": "humidity", "property": "humidity", "type": "numeric", "unit": "%"},
            {"access": 5, "name": "co2", "property": "co2", "type": "numeric", "unit": "ppm"}, relay]}}
    device = compile_device(multisensor)
    assert device is not None and "temperature" in device.info.components["main"]
    out = Decoded()
    z2m_codec.decode_state(device, {"temperature": 25.51, "humidity": 45.01, "co2": 1406, "state_l1": "OFF"}, out)
    assert ("main", "temperature", "celsius", 25.51) in [(u.component, u.capability, u.attribute, u.value)
                                                         for u in out.updates]


def test_devices_of_one_model_share_their_compiled_definition_and_stay_apart() -> None:
    # A house has many devices of a few models: they share bindings and support (memory), yet each keeps
    # its own id, name, initial state and command topic, and a model's new definition leaves the others.
    light = next(e for e in BRIDGE_DEVICES if "zigbee2mqtt:" + e["ieee_address"].lower() == LIGHT)
    twin = {**light, "ieee_address": "0x00158d0000aaaaaa", "friendly_name": "hall/twin"}
    codec = Zigbee2MqttCodec()
    decoded = codec.decode("zigbee2mqtt/bridge/devices", _bytes([light, twin]))
    assert decoded.problems == []
    first, second = codec.by_id[LIGHT], codec.by_id["zigbee2mqtt:0x00158d0000aaaaaa"]
    assert first.bindings is second.bindings and first.entry["definition"] is second.entry["definition"]
    assert {u.device_id for u in second.initial} == {second.id}
    assert [u.value for u in first.initial] == [u.value for u in second.initial]
    for device in (first, second):
        topic, payload = codec.encode(Command(device.id, "main", "on_off", "on"))
        assert topic == f"zigbee2mqtt/{device.friendly_name}/set" and orjson.loads(payload) == {"state": "ON"}

    changed = {**twin, "definition": {**twin["definition"], "exposes": []}}
    codec.decode("zigbee2mqtt/bridge/devices", _bytes([light, changed]))
    assert "on_off" in codec.by_id[LIGHT].info.components["main"]
    assert codec.by_id[second.id].info.components == {"main": {}}
