"""The Home Assistant discovery codec and its template evaluator, on real discovery payloads.

Sources of every payload: tests/fixtures/homeassistant/README.md.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.mqtt.ha_codec import (
    ABBREVIATIONS,
    DEVICE_ABBREVIATIONS,
    ORIGIN_ABBREVIATIONS,
    Decoded,
    HomeAssistantCodec,
    apply_base_topic,
    expand_abbreviations,
    native_device_id,
    native_source,
    parse_discovery_topic,
    press_kind,
)
from adapters.mqtt.ha_template import UNDEFINED, TemplateUndefined, TemplateUnsupported, compile_template
from gateway.sdk import CodecError, Command, capability

# -- real payloads (see the fixtures README)
ESPHOME_BH1750 = {"dev_cla": "illuminance", "unit_of_meas": "lx", "stat_cla": "measurement",
                  "name": "BH1750 Illuminance",
                  "stat_t": "bh1750test/sensor/bh1750_illuminance/state", "avty_t": "bh1750test/status",
                  "uniq_id": "ESPsensorbh1750_illuminance",
                  "dev": {"ids": "c8c9a3f951e0", "name": "Test light sensor",
                          "sw": "esphome v2023.10.5 Nov  3 2023, 15:43:59", "mdl": "esp32dev", "mf": "espressif"}}
TASMOTA_LED1 = {"name": "Led1", "command_topic": "cmnd/led1/POWER", "state_topic": "stat/led1/RESULT",
                "value_template": "{{value_json.POWER}}", "payload_off": "OFF", "payload_on": "ON",
                "availability_topic": "tele/led1/LWT", "payload_available": "Online",
                "payload_not_available": "Offline",
                "brightness_command_topic": "cmnd/led1/Dimmer", "brightness_state_topic": "stat/led1/RESULT",
                "brightness_scale": 100, "on_command_type": "brightness",
                "brightness_value_template": "{{value_json.Dimmer}}", "color_temp_command_topic": "cmnd/led1/CT",
                "color_temp_state_topic": "stat/led1/RESULT", "color_temp_value_template": "{{value_json.CT}}"}
TASMOTA_RELAYS = [{"name": f"RELAY02-0{n}", "stat_t": "XefilHome/GARDEN02/STATE", "avty_t": "XefilHome/GARDEN02/LWT",
                   "pl_avail": "Online", "pl_not_avail": "Offline", "cmd_t": f"XefilHome/GARDEN02/cmnd/POWER{n}",
                   "val_tpl": f"{{{{value_json.POWER{n}}}}}", "pl_off": "OFF", "pl_on": "ON",
                   "uniq_id": f"D04DF5_RL_{n}", "dev": {"ids": ["D04DF5"]}} for n in (1, 2, 3)]
Z2M_CO = ('{"availability":[{"topic":"zigbee2mqtt/bridge/state"}],'
          '"device":{"identifiers":["zigbee2mqtt_0x00158d000205d552"],'
          '"manufacturer":"Feibit","model":"Smart carbon monoxide sensor (SCA01ZB)","name":"0x00158d000205d552",'
          '"sw_version":"Zigbee2MQTT 1.17.1"},"device_class":"safety","name":"0x00158d000205d552 carbon monoxide",'
          '"payload_off":false,"payload_on":true,"state_topic":"zigbee2mqtt/0x00158d000205d552",'
          '"unique_id":"0x00158d000205d552_carbon_monoxide_zigbee2mqtt",'
          '"value_template":"{{ value_json.carbon_monoxide }}"}')
TASMOTA_ENERGY = {"name": "Tasmota ENERGY Today", "stat_t": "~SENSOR", "avty_t": "~LWT", "pl_avail": "Online",
                  "pl_not_avail": "Offline", "uniq_id": "522851_ENERGY_Today",
                  "device": {"identifiers": ["522851"], "connections": [["mac", "84:0D:8E:52:28:51"]]},
                  "~": "tasmota01/tele/", "unit_of_meas": "kWh", "val_tpl": "{{value_json['ENERGY'].Today}}",
                  "dev_cla": "power"}
SHELLY_SWITCH = {"avty": [{"pl_avail": "true", "pl_not_avail": "false", "t": "~online"}], "cmd_t": "~rpc",
                 "dev": {"cns": [["mac", "aa:bb:cc:dd:ee:ff"]], "ids": ["aa:bb:cc:dd:ee:ff"], "mdl": "Shelly 1 Gen4",
                         "mf": "Shelly"}, "name": "Mirror light",
                 "o": {"name": "Shellies Discovery Gen2", "sw": "0.0.0"}, "stat_t": "~status/switch:0",
                 "uniq_id": "shelly1g4-aabbccddeeff-0", "~": "shelly1g4-aabbccddeeff/"}
DEVICE_CONFIG = {"dev": {"ids": "ea334450945afc", "name": "Kitchen", "mf": "Bla electronics", "mdl": "xya", "sw": "1.0",
                         "sn": "ea334450945afc", "hw": "1.0rev2"},
                 "o": {"name": "bla2mqtt", "sw": "2.1", "url": "https://bla2mqtt.example.com/support"},
                 "cmps": {"some_unique_component_id1": {"p": "sensor", "device_class": "temperature",
                                                        "unit_of_measurement": "°C",
                                                        "value_template": "{{ value_json.temperature}}",
                                                        "unique_id": "temp01ae_t"},
                          "some_unique_id2": {"p": "sensor", "device_class": "humidity", "unit_of_measurement": "%",
                                              "value_template": "{{ value_json.humidity}}", "unique_id": "temp01ae_h"}},
                 "state_topic": "sensorBedroom/state", "qos": 2}


def feed(codec: HomeAssistantCodec, topic: str, payload: Any, known: Any = None) -> Decoded:
    if isinstance(payload, (dict, list)):
        payload = orjson.dumps(payload)
    elif isinstance(payload, str):
        payload = payload.encode()
    return codec.decode(topic, payload, known)


def values(decoded: Decoded) -> dict[tuple[str, str, str], Any]:
    return {(u.component, u.capability, u.attribute): u.value for u in decoded.updates}


def supports(decoded: Decoded) -> dict[str, dict[str, tuple[list[str], list[str]]]]:
    info = decoded.upserts[-1]
    return {comp: {cap: (sorted(s.attributes), sorted(s.commands)) for cap, s in caps.items()}
            for comp, caps in info.components.items()}


def cmd(codec: HomeAssistantCodec, device: str, cap: str, command: str, component: str = "main",
        **args: Any) -> tuple[str, bytes, bool]:
    return codec.encode(Command(device, component, cap, command, args))


# ---------------------------------------------------------------------------------------------- templates


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ value_json.temperature }}", 23.2),
    ("{{value_json['ENERGY'].Today}}", 1.163),
    ('{{ value_json["ENERGY"]["Today"] }}', 1.163),
    ("{{ value_json.ENERGY.Today | round(1) }}", 1.2),
    ("{{ value_json.list.1 }}", 20),
    ("{{ value_json.list[0] | float }}", 10.0),
    ("{{ value_json.text | float | round(2) }}", 21.46),
    ("{{ value_json.text | int }}", 21),
    ("{{ value_json.temperature | is_defined }}", 23.2),
    ("{{ value }}", '{"temperature": 23.2}'),
    ("{{ value_json.missing | default('x') }}", "x"),
    ("{{ value_json.list.0 }}_{{ value_json.state | lower }}", "10_on"),
    # Z-Wave JS UI's thermostat lookups (domoticz/domoticz#5192): keys as in Jinja, "0" is not 0
    ('{{ {0: "off", 1: "heat", 11: "cool"}[value_json.list.0] | default(\'off\') }}', "off"),
    ('{{ {10: "off", 1: "heat"}[value_json.list.0] | default(\'off\') }}', "off"),
    ('{{ {"ON": "heating", "OFF": "idle"}[value_json.state] }}', "heating"),
    ('{{ {"10": "x"}[value_json.list[0]] | default("none") }}', "none"),
])
def test_template_shapes(source: str, expected: Any) -> None:
    data = {"temperature": 23.2, "ENERGY": {"Today": 1.163}, "list": [10, 20], "text": "21.456", "state": "ON"}
    assert compile_template(source).render('{"temperature": 23.2}', data) == expected


def test_template_undefined_and_is_defined() -> None:
    assert compile_template("{{ value_json.nope }}").render("", {}) is UNDEFINED
    assert compile_template("{{ value_json.a.b.c }}").render("", {"a": 1}) is UNDEFINED
    with pytest.raises(TemplateUndefined):
        compile_template("{{ value_json.nope | is_defined }}").render("", {})


@pytest.mark.parametrize("source", [
    "{% if value_json.x %}ON{% endif %}",  # Shelly's statements
    "{{ value_json.x * 10 }}",
    "{{ value_json.x | tojson }}",
    "{{ foo.bar }}",
    "{{ value.__class__ }}",
    "{{ value_json.get('x') }}",
    "{{ (as_timestamp(now())-value_json.sys.uptime)|timestamp_local }}",
    "{{ value_json.x",
    "{{ value_json.x | round(1, 'floor') }}",
    "{{ {value_json.x: 1}[value] }}",  # a table is literals only
    "{{ {1: 2}[3] }}",
    "{{ {1: 2} }}",
    "{{ {1: 2}[value_json.x }}",
])
def test_template_refuses_everything_else(source: str) -> None:
    with pytest.raises(TemplateUnsupported):
        compile_template(source)


# ---------------------------------------------------------------------------------------------- config handling


def test_abbreviation_tables_are_complete_and_expanded_everywhere() -> None:
    # a few that HA lists, in every table
    assert ABBREVIATIONS["stat_t"] == "state_topic" and ABBREVIATIONS["avty_mode"] == "availability_mode"
    assert ABBREVIATIONS["cmps"] == "components" and ABBREVIATIONS["p"] == "platform"
    assert ABBREVIATIONS["def_ent_id"] == "default_entity_id" and ABBREVIATIONS["evt_typ"] == "event_types"
    assert len(ABBREVIATIONS) > 250
    assert DEVICE_ABBREVIATIONS["sa"] == "suggested_area" and DEVICE_ABBREVIATIONS["cns"] == "connections"
    assert ORIGIN_ABBREVIATIONS["url"] == "support_url"
    config = expand_abbreviations({**DEVICE_CONFIG, "avty": [{"t": "x/status", "pl_avail": "up"}]})
    assert config["device"]["manufacturer"] == "Bla electronics" and config["device"]["serial_number"]
    assert config["origin"]["support_url"].startswith("https://")
    assert config["components"]["some_unique_id2"]["platform"] == "sensor"
    assert config["availability"] == [{"topic": "x/status", "payload_available": "up"}]


def test_base_topic_at_start_or_end() -> None:
    config = apply_base_topic(expand_abbreviations(
        {"~": "home/dev", "stat_t": "~/state", "cmd_t": "set/~", "avty": [{"t": "~/avail"}], "name": "~x"}))
    assert config["state_topic"] == "home/dev/state" and config["command_topic"] == "set/home/dev"
    assert config["availability"][0]["topic"] == "home/dev/avail"
    assert config["name"] == "~x"  # only *topic keys


def test_discovery_topics() -> None:
    assert parse_discovery_topic("homeassistant", "homeassistant/sensor/bh1750test/bh1750_illuminance/config") == (
        "sensor", "bh1750test", "bh1750_illuminance")
    assert parse_discovery_topic("homeassistant", "homeassistant/switch/irrigation/config") == (
        "switch", None, "irrigation")
    assert parse_discovery_topic("homeassistant", "homeassistant/sensor/a b/config") is None
    assert parse_discovery_topic("homeassistant", "other/sensor/x/config") is None


# ---------------------------------------------------------------------------------------------- devices


def test_esphome_sensor_device_and_availability() -> None:
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/sensor/bh1750test/bh1750_illuminance/config", ESPHOME_BH1750)
    info = out.upserts[0]
    assert (info.id, info.name, info.manufacturer, info.model, info.sw_version) == (
        "ha:c8c9a3f951e0", "Test light sensor", "espressif", "esp32dev", "esphome v2023.10.5 Nov  3 2023, 15:43:59")
    assert supports(out) == {"main": {"illuminance": (["lux"], [])}}
    assert codec.topics() == {"bh1750test/sensor/bh1750_illuminance/state", "bh1750test/status"}
    assert values(feed(codec, "bh1750test/sensor/bh1750_illuminance/state", "152.5")) == {
        ("main", "illuminance", "lux"): 152.5}
    assert feed(codec, "bh1750test/status", "online").availability == [("ha:c8c9a3f951e0", True)]
    assert feed(codec, "bh1750test/status", "offline").availability == [("ha:c8c9a3f951e0", False)]
    bad = feed(codec, "bh1750test/sensor/bh1750_illuminance/state", "lots")
    assert bad.updates == [] and "expected a number" in bad.problems[0]
    assert values(feed(codec, "bh1750test/sensor/bh1750_illuminance/state", "unknown")) == {
        ("main", "illuminance", "lux"): None}


def test_tasmota_legacy_light_when_not_skipped() -> None:
    codec = HomeAssistantCodec(skip_native=())
    out = feed(codec, "homeassistant/light/led1/config", TASMOTA_LED1)
    dev = "ha:light_led1"
    assert supports(out)["main"] == {"on_off": (["on"], ["off", "on"]), "level": (["percent"], ["set"]),
                                     "color_temperature": (["kelvin", "max_kelvin", "min_kelvin"], ["set"])}
    got = values(feed(codec, "stat/led1/RESULT", '{"POWER":"ON","Dimmer":47,"CT":370}'))
    assert got == {("main", "on_off", "on"): True, ("main", "level", "percent"): 47.0,
                   ("main", "color_temperature", "kelvin"): 2703}
    # a RESULT without Dimmer or CT is normal on a shared topic: nothing for those, and no complaint
    only_power = feed(codec, "stat/led1/RESULT", '{"POWER":"OFF"}')
    assert values(only_power) == {("main", "on_off", "on"): False} and not only_power.problems
    assert cmd(codec, dev, "on_off", "on") == ("cmnd/led1/POWER", b"ON", False)
    assert cmd(codec, dev, "level", "set", percent=50) == ("cmnd/led1/Dimmer", b"50", False)  # brightness_scale 100
    assert cmd(codec, dev, "color_temperature", "set", kelvin=2700) == ("cmnd/led1/CT", b"370", False)  # mireds


def test_two_switches_get_named_components() -> None:
    codec = HomeAssistantCodec(skip_native=())
    for n, config in zip((3, 1, 2), (TASMOTA_RELAYS[2], TASMOTA_RELAYS[0], TASMOTA_RELAYS[1]), strict=True):
        out = feed(codec, f"homeassistant/switch/D04DF5_RL_{n}/config", config)
    assert sorted(supports(out)) == ["rl_1", "rl_2", "rl_3"]
    got = values(feed(codec, "XefilHome/GARDEN02/STATE", '{"POWER1":"ON","POWER2":"OFF","POWER3":"ON"}'))
    assert got == {("rl_1", "on_off", "on"): True, ("rl_2", "on_off", "on"): False, ("rl_3", "on_off", "on"): True}
    assert cmd(codec, "ha:d04df5", "on_off", "off", "rl_2") == ("XefilHome/GARDEN02/cmnd/POWER2", b"OFF", False)
    with pytest.raises(CodecError):
        cmd(codec, "ha:d04df5", "on_off", "off", "main")
    # one relay left: it is the only switch, so it is main again
    feed(codec, "homeassistant/switch/D04DF5_RL_1/config", "")
    out = feed(codec, "homeassistant/switch/D04DF5_RL_2/config", "")
    assert sorted(supports(out)) == ["main"]
    assert feed(codec, "homeassistant/switch/D04DF5_RL_3/config", "").removals == ["ha:d04df5"]
    assert codec.topics() == set()


def test_device_based_discovery_shared_state_topic_and_removal() -> None:
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/device/0AFFD2/config", DEVICE_CONFIG)
    info = out.upserts[-1]
    assert (info.id, info.manufacturer, info.serial, info.hw_version) == (
        "ha:ea334450945afc", "Bla electronics", "ea334450945afc", "1.0rev2")
    assert supports(out) == {"main": {"temperature": (["celsius"], []), "humidity": (["percent"], [])}}
    assert values(feed(codec, "sensorBedroom/state", '{"temperature": 21.5, "humidity": 52}')) == {
        ("main", "temperature", "celsius"): 21.5, ("main", "humidity", "percent"): 52.0}
    # a component dropped from the device config goes; an empty config removes the device
    less = json.loads(json.dumps(DEVICE_CONFIG))
    less["cmps"]["some_unique_id2"] = {"p": "sensor"}
    assert supports(feed(codec, "homeassistant/device/0AFFD2/config", less)) == {
        "main": {"temperature": (["celsius"], [])}}
    assert feed(codec, "homeassistant/device/0AFFD2/config", "").removals == ["ha:ea334450945afc"]


@pytest.mark.parametrize(("device_class", "unit", "raw", "capability", "attribute", "expected"), [
    ("temperature", "°F", "68.9", "temperature", "celsius", 20.5),
    ("temperature", "K", "293.15", "temperature", "celsius", 20.0),
    ("energy", "Wh", "123456", "energy_meter", "kwh", 123.456),
    ("energy", "MWh", "1.5", "energy_meter", "kwh", 1500),
    ("power", "kW", "1.25", "power_meter", "watts", 1250),
    ("voltage", "mV", "3012", "power_meter", "volts", 3.012),
    ("current", "mA", "250", "power_meter", "amps", 0.25),
    ("pressure", "kPa", "101.3", "pressure", "hpa", 1013),
    ("atmospheric_pressure", "mbar", "1013.2", "pressure", "hpa", 1013.2),
    ("pressure", "inHg", "29.92", "pressure", "hpa", 1013.2),
    ("power_factor", "%", "95", "power_meter", "power_factor", 0.95),
    ("carbon_dioxide", "ppm", "612", "air_quality", "co2_ppm", 612),
    ("pm25", "µg/m³", "7", "air_quality", "pm25_ugm3", 7),
    ("signal_strength", "dBm", "-67", "connectivity", "rssi_dbm", -67),
    ("battery", "%", "87", "battery", "percent", 87),
])
def test_sensor_units_become_canonical(device_class: str, unit: str, raw: str, capability: str, attribute: str,
                                       expected: float) -> None:
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/sensor/node/x/config", {"dev_cla": device_class, "unit_of_meas": unit,
                                                       "stat_t": "n/x", "uniq_id": "x1"})
    got = values(feed(codec, "n/x", raw))[("main", capability, attribute)]
    assert got == pytest.approx(expected, abs=0.05)


def test_battery_voltage_and_exported_energy_by_name_and_unknown_units() -> None:
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/sensor/n/batt/config", {"name": "Battery voltage", "dev_cla": "voltage",
                                                             "unit_of_meas": "V", "stat_t": "n/b", "uniq_id": "b"})
    assert supports(out) == {"main": {"battery": (["volts"], [])}}
    out = feed(codec, "homeassistant/sensor/n/exp/config", {"name": "Energy exported", "dev_cla": "energy",
                                                            "unit_of_meas": "kWh", "stat_t": "n/e", "uniq_id": "e"})
    assert supports(out) == {"main": {"energy_meter": (["exported_kwh"], [])}}
    out = feed(codec, "homeassistant/sensor/n/w/config", {"name": "Water", "unit_of_meas": "m³", "stat_t": "n/w"})
    assert out.upserts == [] and "no place" in out.problems[0]
    out = feed(codec, "homeassistant/sensor/n/t/config", {"dev_cla": "temperature", "unit_of_meas": "°Rø",
                                                          "stat_t": "n/t"})
    assert out.upserts == [] and "not supported" in out.problems[0]


@pytest.mark.parametrize(("device_class", "capability", "attribute"), [
    ("door", "contact", "open"), ("window", "contact", "open"), ("garage_door", "contact", "open"),
    ("opening", "contact", "open"), ("motion", "occupancy", "occupied"), ("occupancy", "occupancy", "occupied"),
    ("presence", "occupancy", "occupied"), ("moisture", "water_leak", "leak"), ("smoke", "smoke_co_alarm", "smoke"),
    ("carbon_monoxide", "smoke_co_alarm", "co"), ("vibration", "vibration", "detected"),
    ("tamper", "tamper", "tampered"), ("battery", "battery", "low"),
])
def test_binary_sensor_classes(device_class: str, capability: str, attribute: str) -> None:
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/binary_sensor/n/b/config", {"dev_cla": device_class, "stat_t": "n/b",
                                                           "pl_on": "open", "pl_off": "closed"})
    assert values(feed(codec, "n/b", "open")) == {("main", capability, attribute): True}  # on = open/detected
    assert values(feed(codec, "n/b", "closed")) == {("main", capability, attribute): False}
    assert feed(codec, "n/b", "ajar").problems


def test_platform_commands_exact_topics_and_payloads() -> None:
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/switch/irrigation/config",
         {"~": "homeassistant/switch/irrigation", "name": "garden", "cmd_t": "~/set", "stat_t": "~/state"})
    assert cmd(codec, "ha:switch_irrigation", "on_off", "on") == ("homeassistant/switch/irrigation/set", b"ON", False)
    assert cmd(codec, "ha:switch_irrigation", "on_off", "off") == ("homeassistant/switch/irrigation/set", b"OFF", False)
    feed(codec, "homeassistant/light/kitchen/config",
         {"~": "homeassistant/light/kitchen", "name": "Kitchen", "unique_id": "kitchen_light", "cmd_t": "~/set",
          "stat_t": "~/state", "schema": "json", "brightness": True, "sup_clrm": ["color_temp", "hs"]})
    light = "ha:kitchen_light"
    assert cmd(codec, light, "on_off", "on") == ("homeassistant/light/kitchen/set", b'{"state":"ON"}', False)
    assert cmd(codec, light, "level", "set", percent=50, transition_s=2) == (
        "homeassistant/light/kitchen/set", b'{"state":"ON","brightness":128,"transition":2.0}', False)
    assert cmd(codec, light, "level", "set", percent=0)[1] == b'{"state":"OFF"}'
    assert cmd(codec, light, "color_temperature", "set", kelvin=4000)[1] == b'{"state":"ON","color_temp":250}'
    assert cmd(codec, light, "color", "set", hue=120, saturation=50)[1] == (
        b'{"state":"ON","color":{"h":120.0,"s":50.0}}')
    with pytest.raises(CodecError):
        cmd(codec, light, "level", "set", percent=140)
    got = values(feed(codec, "homeassistant/light/kitchen/state",
                      {"state": "ON", "brightness": 255, "color_mode": "color_temp", "color_temp": 370}))
    assert got == {("main", "on_off", "on"): True, ("main", "level", "percent"): 100.0,
                   ("main", "color_temperature", "kelvin"): 2703}


@pytest.mark.parametrize(("name", "kind"), [
    ("button_short_press", "single"), ("button_short_release", "single"),  # rtl_433's RF remotes send the latter
    ("button_long_press", "long"), ("button_long_release", "long"), ("button_double_press", "double"),
    ("single_push", "single"), ("btn_up", "release"), ("release", "release"), ("turn_on", None),
])
def test_trigger_types_to_press_kinds(name: str, kind: str | None) -> None:
    assert press_kind(name) == kind


def test_a_cover_without_position_knows_open_and_closed() -> None:
    # An ESPHome garage door (mqtt_cover.cpp: state_topic with open/closed/opening/closing, no position).
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/cover/garage-esp/garage_door/config", {
        "name": "Garage Door", "dev_cla": "garage", "stat_t": "garage-esp/cover/garage_door/state",
        "cmd_t": "garage-esp/cover/garage_door/command", "uniq_id": "garage-esp-door",
        "dev": {"ids": ["c8c9a3001133"], "name": "garage-esp"}})
    got = values(feed(codec, "garage-esp/cover/garage_door/state", "open"))
    assert got == {("main", "cover", "motion"): "stopped", ("main", "cover", "position_percent"): 100}
    assert values(feed(codec, "garage-esp/cover/garage_door/state", "closing")) == {
        ("main", "cover", "motion"): "closing"}
    assert values(feed(codec, "garage-esp/cover/garage_door/state", "closed"))[
        ("main", "cover", "position_percent")] == 0


def test_a_state_topic_with_wildcards_is_a_filter() -> None:
    # OpenMQTTGateway names `+/+/BTtoMQTT/<id>` so that a device is heard through any of its gateways
    # (its own example in theengs/gateway#17); Home Assistant subscribes to it as a filter.
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/sensor/48AABBCCDD0A-batt/config", {
        "stat_t": "+/+/BTtoMQTT/48AABBCCDD0A", "name": "JQJCY01YM-batt", "uniq_id": "48AABBCCDD0A-batt",
        "dev_cla": "battery", "val_tpl": "{{ value_json.batt | is_defined }}", "unit_of_meas": "%",
        "device": {"identifiers": ["48AABBCCDD0A"], "manufacturer": "Xiaomi", "model": "JQJCY01YM",
                   "name": "Formaldehyde detector", "via_device": "OMG_GAT"}})
    assert out.problems == [] and "+/+/BTtoMQTT/48AABBCCDD0A" in codec.topics()
    got = values(feed(codec, "home/OMG_ESP32_BLE/BTtoMQTT/48AABBCCDD0A", {"id": "48:AA:BB:CC:DD:0A", "batt": 87}))
    assert got == {("main", "battery", "percent"): 87}
    assert feed(codec, "home/OMG_ESP32_BLE/BTtoMQTT/48AABBCCDD0B", {"batt": 10}).updates == []
    # a filter that is not one (a wildcard inside a level) is still refused, with the reason
    bad = feed(codec, "homeassistant/sensor/x/config", {"stat_t": "a/b+/c", "dev_cla": "battery",
                                                        "unit_of_meas": "%", "uniq_id": "x"})
    expected = "state_topic: MQTT topic filter 'a/b+/c': '+' must be a whole level"
    assert any(expected in p for p in bad.problems), bad.problems


def test_valve() -> None:
    # ESPHome's MQTT valve (mqtt_valve.cpp: open/closed/opening/closing words, OPEN/CLOSE commands), and one
    # that reports its position (HA's reports_position, a 0-100 number).
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/valve/garden-esp/irrigation_valve/config", {
        "name": "Irrigation Valve", "dev_cla": "water", "uniq_id": "ESPvalveirrigation_valve",
        "stat_t": "garden-esp/valve/irrigation_valve/state", "cmd_t": "garden-esp/valve/irrigation_valve/command",
        "dev": {"ids": "3c71bf001144", "name": "garden-esp", "mf": "espressif"}})
    assert supports(out)["main"]["valve"] == (["open", "position_percent"], ["close", "open"])
    assert values(feed(codec, "garden-esp/valve/irrigation_valve/state", "open")) == {
        ("main", "valve", "open"): True, ("main", "valve", "position_percent"): 100}
    assert values(feed(codec, "garden-esp/valve/irrigation_valve/state", "closing")) == {}
    device = out.upserts[-1].id
    assert cmd(codec, device, "valve", "close") == ("garden-esp/valve/irrigation_valve/command", b"CLOSE", False)
    feed(codec, "homeassistant/valve/heating/mixer/config", {
        "name": "Mixer", "uniq_id": "mixer-1", "stat_t": "heating/mixer/state", "cmd_t": "heating/mixer/set",
        "pos": True, "dev": {"ids": "mixer-1", "name": "Mixer"}})
    assert values(feed(codec, "heating/mixer/state", "35")) == {
        ("main", "valve", "position_percent"): 35, ("main", "valve", "open"): True}
    assert cmd(codec, "ha:mixer-1", "valve", "set_position", percent=60) == ("heating/mixer/set", b"60", False)
    assert cmd(codec, "ha:mixer-1", "valve", "close") == ("heating/mixer/set", b"0", False)


def test_a_thermostat_keeps_what_it_can_when_a_template_is_beyond_the_subset() -> None:
    # Energenie's MQTT climate (mqtt-energenie-ener314rt#56): the mode is an {% if %}; temperatures are plain.
    # The thermostat stays, its mode is left out and said so.
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/climate/ener314rt/11111-Climate_Control/config", {
        "device": {"name": "Thermostat 11111", "identifiers": ["ener314rt-11111"], "manufacturer": "Energenie"},
        "unique_id": "ener314rt-11111-climate", "modes": ["off", "heat"],
        "mode_state_topic": "energenie/2/11111/switch/state",
        "mode_state_template": "{% if value == '0' %} off {% else %} heat {% endif %}",
        "current_temperature_topic": "energenie/2/11111/temperature/state",
        "temperature_state_topic": "energenie/2/11111/target/state",
        "temperature_command_topic": "energenie/2/11111/target/command", "temperature_unit": "C"})
    main = supports(out)["main"]
    assert main["thermostat"] == (["current_celsius", "target_celsius"], ["set_target"])
    assert [p for p in out.problems if "left out mode_state" in p and "statements" in p], out.problems
    got = values(feed(codec, "energenie/2/11111/temperature/state", "20.6"))
    assert got == {("main", "thermostat", "current_celsius"): 20.6}


def test_cover_climate_lock_fan_button_event_trigger() -> None:
    codec = HomeAssistantCodec()
    dev = {"ids": ["diy-1"], "name": "DIY"}
    feed(codec, "homeassistant/cover/d/blind/config", {"cmd_t": "d/blind/set", "stat_t": "d/blind/state",
                                                       "pos_t": "d/blind/pos", "set_pos_t": "d/blind/pos/set",
                                                       "pos_open": 255, "pos_clsd": 0, "pl_stop": None, "dev": dev})
    feed(codec, "homeassistant/climate/d/heat/config", {
        "curr_temp_t": "d/heat", "curr_temp_tpl": "{{ value_json.current }}", "temp_stat_t": "d/heat",
        "temp_stat_tpl": "{{ value_json.target }}", "temp_cmd_t": "d/heat/target/set", "mode_stat_t": "d/heat",
        "mode_stat_tpl": "{{ value_json.mode }}", "mode_cmd_t": "d/heat/mode/set",
        "modes": ["off", "heat", "heat_cool"],
        "act_t": "d/heat/action", "temp_unit": "F", "dev": dev})
    feed(codec, "homeassistant/lock/d/lock/config", {"cmd_t": "d/lock/set", "stat_t": "d/lock", "dev": dev})
    feed(codec, "homeassistant/fan/d/fan/config", {"cmd_t": "d/fan/set", "stat_t": "d/fan",
                                                   "pct_cmd_t": "d/fan/pct/set",
                                                   "pct_stat_t": "d/fan/pct", "spd_rng_min": 1, "spd_rng_max": 3,
                                                   "pr_mode_cmd_t": "d/fan/preset/set", "pr_modes": ["eco", "boost"],
                                                   "dev": dev})
    feed(codec, "homeassistant/button/d/identify/config", {"cmd_t": "d/identify", "dev_cla": "identify", "dev": dev})
    feed(codec, "homeassistant/event/d/bell/config", {"evt_typ": ["press", "double_press", "hold"], "stat_t": "d/bell",
                                                      "dev": dev})
    feed(codec, "homeassistant/device_automation/d/b1_long/config", {
        "atype": "trigger", "t": "d/remote", "pl": "1_long", "type": "button_long_press", "stype": "button_1",
        "dev": dev})
    info = codec.devices["ha:diy-1"].info
    assert info is not None
    main = supports(Decoded(upserts=[info]))["main"]
    assert main["cover"] == (["motion", "position_percent"], ["close", "open", "set_position"])  # no stop payload
    assert main["thermostat"] == (["current_celsius", "mode", "running", "target_celsius"], ["set_mode", "set_target"])
    assert main["lock"] == (["state"], ["lock", "unlock"])
    assert main["fan"] == (["on", "speed_percent"], ["set_preset", "set_speed"])
    assert main["identify"] == ([], ["identify"])
    d = "ha:diy-1"
    assert cmd(codec, d, "cover", "open") == ("d/blind/set", b"OPEN", False)
    assert cmd(codec, d, "cover", "set_position", percent=50) == ("d/blind/pos/set", b"128", False)
    assert cmd(codec, d, "thermostat", "set_target", celsius=21) == ("d/heat/target/set", b"69.8", False)
    assert cmd(codec, d, "thermostat", "set_mode", mode="auto") == ("d/heat/mode/set", b"heat_cool", False)
    with pytest.raises(CodecError):
        cmd(codec, d, "thermostat", "set_mode", mode="cool")
    assert cmd(codec, d, "lock", "unlock") == ("d/lock/set", b"UNLOCK", False)
    assert cmd(codec, d, "fan", "set_speed", percent=50) == ("d/fan/pct/set", b"2", False)
    assert cmd(codec, d, "fan", "set_preset", preset="eco") == ("d/fan/preset/set", b"eco", False)
    assert cmd(codec, d, "identify", "identify") == ("d/identify", b"PRESS", False)
    assert values(feed(codec, "d/blind/pos", "255")) == {("main", "cover", "position_percent"): 100.0}
    assert values(feed(codec, "d/blind/state", "closing")) == {("main", "cover", "motion"): "closing"}
    got = values(feed(codec, "d/heat", '{"current": 68, "target": 70.7, "mode": "heat_cool"}'))
    assert got == {("main", "thermostat", "current_celsius"): 20.0, ("main", "thermostat", "target_celsius"): 21.5,
                   ("main", "thermostat", "mode"): "auto"}
    assert values(feed(codec, "d/heat/action", "heating")) == {("main", "thermostat", "running"): "heating"}
    assert values(feed(codec, "d/lock", "JAMMED")) == {("main", "lock", "state"): "jammed"}
    assert values(feed(codec, "d/fan/pct", "3")) == {("main", "fan", "speed_percent"): 100.0}
    bell = feed(codec, "d/bell", '{"event_type": "double_press"}')
    assert [(e.capability, e.event, e.data) for e in bell.events] == [
        ("button", "pressed", {"action": "double_press", "kind": "double"})]
    assert values(bell) == {("main", "button", "last_event"): "double"}
    remote = feed(codec, "d/remote", "1_long")
    assert remote.events[0].data == {"action": "button_long_press", "button": 1, "kind": "long"}
    assert feed(codec, "d/remote", "2_short").events == []  # another trigger's payload
    for update in feed(codec, "d/heat", '{"current": 68, "target": 70, "mode": "off"}').updates:
        spec = capability(update.capability)
        assert spec is not None and spec.attributes[update.attribute].check(update.value) is None


def test_availability_modes() -> None:
    codec = HomeAssistantCodec()
    base = {"stat_t": "x/s", "dev_cla": "temperature", "dev": {"ids": ["av1"]},
            "avty": [{"t": "x/a"}, {"t": "x/b", "pl_avail": "up", "pl_not_avail": "down",
                                    "val_tpl": "{{ value_json.state }}"}]}
    feed(codec, "homeassistant/sensor/x/t/config", {**base, "avty_mode": "all"})
    assert feed(codec, "x/a", "online").availability == []  # all: x/b still unknown
    assert feed(codec, "x/b", '{"state": "up"}').availability == [("ha:av1", True)]
    assert feed(codec, "x/b", '{"state": "down"}').availability == [("ha:av1", False)]
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/sensor/x/t/config", {**base, "avty_mode": "any"})
    assert feed(codec, "x/a", "offline").availability == []
    assert feed(codec, "x/b", '{"state": "up"}').availability == [("ha:av1", True)]
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/sensor/x/t/config", base)  # latest
    assert feed(codec, "x/a", "offline").availability == [("ha:av1", False)]
    assert feed(codec, "x/b", '{"state": "up"}').availability == [("ha:av1", True)]
    assert feed(codec, "x/a", "maybe").availability == []  # HA ignores other payloads


def test_device_block_details() -> None:
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/sensor/n/t/config", {
        "dev_cla": "temperature", "stat_t": "n/t", "uniq_id": "t1",
        "dev": {"ids": ["HUB-1", "other"], "cns": [["mac", "AA:BB:CC:00:11:22"]], "sa": "Living Room",
                "via_device": "Bridge-9", "mdl_id": "TH-1"}})
    info = out.upserts[0]
    assert (info.id, info.mac, info.suggested_area, info.via, info.model) == (
        "ha:hub-1", "aa:bb:cc:00:11:22", "Living Room", "ha:bridge-9", "TH-1")
    out = feed(codec, "homeassistant/sensor/n/c/config", {"dev_cla": "humidity", "stat_t": "n/c",
                                                          "dev": {"cns": [["mac", "11:22:33:44:55:66"]]}})
    assert out.upserts[0].id == "ha:11:22:33:44:55:66"


# ---------------------------------------------------------------------------------------------- native devices


def test_native_device_ids() -> None:
    z2m = expand_abbreviations(json.loads(Z2M_CO))
    assert (native_source(z2m), native_device_id(z2m)) == ("zigbee2mqtt", "zigbee2mqtt:0x00158d000205d552")
    tasmota = expand_abbreviations(TASMOTA_ENERGY)  # swapped FullTopic, "~" not yet substituted
    assert (native_source(tasmota), native_device_id(tasmota)) == ("tasmota", "tasmota:tasmota01")
    legacy = expand_abbreviations(TASMOTA_LED1)
    assert native_device_id(legacy) == "tasmota:led1"
    shelly = expand_abbreviations(SHELLY_SWITCH)
    assert (native_source(shelly), native_device_id(shelly)) == ("shelly", "shelly:shelly1g4-aabbccddeeff")
    esphome = expand_abbreviations(ESPHOME_BH1750)
    assert (native_source(esphome), native_device_id(esphome)) == (None, None)


def test_native_devices_are_skipped_by_source_or_when_known() -> None:
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/binary_sensor/0x00158d000205d552/carbon_monoxide/config", Z2M_CO)
    assert out.upserts == [] and "zigbee2mqtt" in out.notes[0] and codec.topics() == set()
    assert feed(codec, "homeassistant/sensor/522851_ENERGY_Today/config", TASMOTA_ENERGY).upserts == []
    assert feed(codec, "homeassistant/switch/shelly/switch_0/config", SHELLY_SWITCH).upserts == []
    # with the native adapter not listed, the device comes through HA unless the gateway already has it
    codec = HomeAssistantCodec(skip_native=())
    known = {"zigbee2mqtt:0x00158d000205d552"}
    out = feed(codec, "homeassistant/binary_sensor/0x00158d000205d552/carbon_monoxide/config", Z2M_CO,
               known.__contains__)
    assert out.upserts == [] and "already known natively as zigbee2mqtt:0x00158d000205d552" in out.notes[0]
    out = feed(codec, "homeassistant/light/led1/config", TASMOTA_LED1, known.__contains__)
    assert [i.id for i in out.upserts] == ["ha:light_led1"]


# ---------------------------------------------------------------------------------------------- fuzz

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                     lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children,
                                                                                         max_size=4), max_leaves=12)
_keys = st.sampled_from(sorted({*ABBREVIATIONS, *ABBREVIATIONS.values(), "~", "dev", "device", "cmps", "o"}))
_config = st.dictionaries(_keys, _json | st.sampled_from(["~/s", "a/b", "{{ value_json.x }}", "{{ value }}", "ON"]),
                          max_size=12)
_platform = st.sampled_from(["sensor", "binary_sensor", "switch", "light", "cover", "climate", "lock", "fan",
                             "button", "event", "device_automation", "device", "camera", "+"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(platform=_platform, config=_config, states=st.lists(st.tuples(st.sampled_from(["a/b", "s", "x/s", "~/s"]),
                                                                      st.binary(max_size=40)), max_size=4))
def test_fuzzed_configs_and_states_never_raise(platform: str, config: dict[str, Any],
                                               states: list[tuple[str, bytes]]) -> None:
    codec = HomeAssistantCodec(skip_native=())
    try:
        payload = orjson.dumps(config, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return
    codec.decode(f"homeassistant/{platform}/node/obj/config", payload)
    for topic in [*codec.topics(), *(t for t, _ in states)]:
        for _, body in states:
            codec.decode(topic, body)
    for device in list(codec.devices.values()):
        for entity in device.entities.values():
            for cap, command in entity.commands:
                with contextlib.suppress(CodecError):
                    codec.encode(Command(device.id, entity.component, cap, command, {"percent": 50}))


@settings(max_examples=200, deadline=None)
@given(topic=st.text(max_size=40), payload=st.binary(max_size=200))
def test_fuzzed_topics_never_raise(topic: str, payload: bytes) -> None:
    codec = HomeAssistantCodec()
    codec.decode("homeassistant/sensor/bh1750test/x/config", orjson.dumps(ESPHOME_BH1750))
    codec.decode(topic, payload)
    codec.decode("bh1750test/sensor/bh1750_illuminance/state", payload)
    codec.decode("homeassistant/" + topic + "/config", payload)


@settings(max_examples=200, deadline=None)
@given(source=st.text(max_size=60), data=_json)
def test_fuzzed_templates_compile_or_refuse(source: str, data: Any) -> None:
    try:
        template = compile_template("{{ " + source + " }}")
    except TemplateUnsupported:
        return
    try:
        template.render("raw", data)
    except Exception as err:  # only our own, documented errors may come out of rendering
        assert type(err).__name__ in ("TemplateError", "TemplateUndefined"), err
