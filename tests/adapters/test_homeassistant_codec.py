"""The Home Assistant discovery codec and its template evaluator, on real discovery payloads.

Sources of every payload: tests/fixtures/homeassistant/README.md.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.homeassistant.codec import (
    ABBREVIATIONS,
    DEVICE_ABBREVIATIONS,
    ORIGIN_ABBREVIATIONS,
    Decoded,
    HomeAssistantCodec,
    apply_base_topic,
    expand_abbreviations,
    hs_to_rgb,
    native_device_id,
    native_source,
    parse_discovery_topic,
    press_kind,
    rgb_to_hs,
)
from adapters.homeassistant.template import (
    UNDEFINED,
    TemplateError,
    TemplateUndefined,
    TemplateUnsupported,
    compile_template,
)
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
    "{{ value_json.x | from_json }}",
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


# ---------------------------------------------------------------------------------------------- light colours

# The light.mqtt docs' default-schema example "Brightness and RGB support" (a discovery config here).
OFFICE_RGB = {"name": "Office Light RGB", "state_topic": "office/rgb1/light/status",
              "command_topic": "office/rgb1/light/switch", "brightness_state_topic": "office/rgb1/brightness/status",
              "brightness_command_topic": "office/rgb1/brightness/set", "rgb_state_topic": "office/rgb1/rgb/status",
              "rgb_command_topic": "office/rgb1/rgb/set", "state_value_template": "{{ value_json.state }}",
              "brightness_value_template": "{{ value_json.brightness }}",
              "rgb_value_template": "{{ value_json.rgb | join(',') }}", "qos": 0, "payload_on": "ON",
              "payload_off": "OFF", "optimistic": False}
# Shellies Discovery's RGBW2 colour channel as printed in bieniu/ha-shellies-discovery#355 (the effect part cut).
SHELLY_RGBW2 = {"name": "Shelly RGBW2 A890BA Light 0", "availability_topic": "shellies/shellyrgbw2-A890BA/online",
                "payload_available": "true", "payload_not_available": "false",
                "command_topic": "shellies/shellyrgbw2-A890BA/color/0/command",
                "state_topic": "shellies/shellyrgbw2-A890BA/color/0", "state_value_template": "{{value.lower()}}",
                "payload_on": "on", "payload_off": "off",
                "rgbw_command_topic": "shellies/shellyrgbw2-A890BA/color/0/set",
                "rgbw_command_template": "{'red':{{red}},'green':{{green}},'blue':{{blue}},'white':{{white}}}",
                "rgbw_state_topic": "shellies/shellyrgbw2-A890BA/color/0/status",
                "rgbw_value_template": ("{{value_json.red}},{{value_json.green}},{{value_json.blue}},"
                                        "{{value_json.white}}"),
                "brightness_state_topic": "shellies/shellyrgbw2-A890BA/color/0/status",
                "brightness_value_template": "{{value_json.gain|float|multiply(2.55)|round(0)}}",
                "brightness_command_topic": "shellies/shellyrgbw2-A890BA/color/0/set",
                "brightness_command_template": "{'gain':{{value|float|multiply(0.3922)|round(0)}}}",
                "unique_id": "shellyrgbw2-A890BA-0"}
# Tasmota's legacy discovery of an RGB light (arendst/Tasmota#10277): its RGB state template is beyond the subset.
TASMOTA_RGB = {"name": "Tasmota", "stat_t": "tele/tasmota_9F74BF/STATE", "avty_t": "tele/tasmota_9F74BF/LWT",
               "pl_avail": "Online", "pl_not_avail": "Offline", "cmd_t": "cmnd/tasmota_9F74BF/POWER",
               "val_tpl": "{{value_json.POWER}}", "pl_off": "OFF", "pl_on": "ON", "uniq_id": "9F74BF_LI_1",
               "dev": {"ids": ["9F74BF"]}, "bri_cmd_t": "cmnd/tasmota_9F74BF/Dimmer",
               "bri_stat_t": "tele/tasmota_9F74BF/STATE", "bri_scl": 100, "on_cmd_type": "brightness",
               "bri_val_tpl": "{{value_json.Dimmer}}", "rgb_cmd_t": "cmnd/tasmota_9F74BF/Color2",
               "rgb_stat_t": "tele/tasmota_9F74BF/STATE",
               "rgb_val_tpl": "{{value_json.Color.split(',')[0:3]|join(',')}}",
               "fx_cmd_t": "cmnd/tasmota_9F74BF/Scheme", "fx_stat_t": "tele/tasmota_9F74BF/STATE",
               "fx_val_tpl": "{{value_json.Scheme}}", "fx_list": ["0", "1", "2", "3", "4"]}
# The light.mqtt docs' JSON-schema example "Brightness and RGBW support".
JSON_RGBW = {"schema": "json", "name": "mqtt_json_light_1", "state_topic": "home/rgbw1",
             "command_topic": "home/rgbw1/set", "brightness": True, "supported_color_modes": ["rgbw"]}


def test_template_command_variables_and_filters() -> None:
    names = ("red", "green", "blue", "white")
    template = compile_template(SHELLY_RGBW2["rgbw_command_template"], names)
    assert template.variables == frozenset(names)
    assert template.render("1,2,3,4", variables={"red": 1, "green": 2, "blue": 3, "white": 4}) == (
        "{'red':1,'green':2,'blue':3,'white':4}")
    assert compile_template("{{ red }}", ["red"]).render("") is UNDEFINED  # a variable not given is undefined
    with pytest.raises(TemplateUnsupported):
        compile_template("{{ red }}")  # only a command template names its variables
    data = {"rgb": [255, 0, 127], "gain": 80, "x": 3}
    assert compile_template("{{ value_json.rgb | join(',') }}").render("", data) == "255,0,127"
    assert compile_template("{{ value_json | tojson }}").render("", {"a": 1}) == '{"a":1}'
    assert compile_template("{{ value_json.gain | float | multiply(2.55) | round(0) }}").render("", data) == 204.0
    for bad in ("{{ value_json.x | join }}", "{{ value_json.rgb | multiply('a') }}"):
        with pytest.raises(TemplateError):
            compile_template(bad).render("", data)


def test_colour_conversions() -> None:
    assert [hs_to_rgb(h, s) for h, s in ((0, 100), (120, 50), (240, 100), (360, 0))] == [
        (255, 0, 0), (128, 255, 128), (0, 0, 255), (255, 255, 255)]
    assert rgb_to_hs(255, 0, 127) == (330.1, 100.0) and rgb_to_hs(255, 255, 255) == (0.0, 0.0)
    assert rgb_to_hs(0, 0, 0) is None  # black has no hue
    for hue in range(0, 360, 15):
        for saturation in (25, 50, 100):
            back = rgb_to_hs(*hs_to_rgb(hue, saturation))
            assert back is not None and abs((back[0] - hue + 180) % 360 - 180) <= 1 and abs(back[1] - saturation) <= 1


def test_default_schema_rgb_light_with_brightness_topics() -> None:
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/light/office_rgb1/config", OFFICE_RGB)
    assert not out.problems
    assert supports(out) == {"main": {"on_off": (["on"], ["off", "on"]), "level": (["percent"], ["set"]),
                                      "color": (["hue", "saturation"], ["set"])}}
    assert values(feed(codec, "office/rgb1/rgb/status", {"rgb": [255, 0, 127]})) == {
        ("main", "color", "hue"): 330.1, ("main", "color", "saturation"): 100.0}
    assert values(feed(codec, "office/rgb1/brightness/status", {"brightness": 191})) == {
        ("main", "level", "percent"): 74.9}
    light = "ha:light_office_rgb1"
    # With a brightness topic the colour goes at full value and the brightness apart (HA's schema_basic).
    assert cmd(codec, light, "color", "set", hue=120, saturation=50) == ("office/rgb1/rgb/set", b"128,255,128", False)
    assert cmd(codec, light, "level", "set", percent=50) == ("office/rgb1/brightness/set", b"128", False)
    for bad in ({"rgb": [300, 0, 0]}, {"rgb": [1, 2]}, {"rgb": ["a", 0, 0]}):
        out = feed(codec, "office/rgb1/rgb/status", bad)
        assert out.updates == [] and len(out.problems) == 1
    with pytest.raises(CodecError):
        cmd(codec, light, "color", "set", hue=400, saturation=50)
    with pytest.raises(CodecError):
        cmd(codec, light, "color", "set_xy", x=0.3, y=0.3)  # no xy topic


@pytest.mark.parametrize(("mode", "report", "level", "hs", "colour_set", "level_set"), [
    # No brightness topic: the brightness is the brightest channel and a colour is sent at that brightness, the
    # white channel(s) kept as reported (HA's schema_basic scale_rgbx); a brightness is the colour scaled.
    ("rgb", "128,64,0", 50.2, (30.0, 100.0), b"0,0,128", b"255,128,0"),
    ("rgbw", "128,64,0,32", 50.2, (30.0, 100.0), b"0,0,128,32", b"255,128,0,64"),
    ("rgbww", "0,0,0,200,100", 78.4, None, b"0,0,200,200,100", b"0,0,0,255,128"),
])
def test_default_schema_rgbx_without_brightness_topics(mode: str, report: str, level: float,
                                                       hs: tuple[float, float] | None, colour_set: bytes,
                                                       level_set: bytes) -> None:
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/light/strip/config", {"unique_id": "strip", "cmd_t": "strip/set", "stat_t": "strip",
                                                     f"{mode}_stat_t": f"strip/{mode}",
                                                     f"{mode}_cmd_t": f"strip/{mode}/set"})
    expected = {("main", "level", "percent"): level}
    if hs is not None:
        expected |= {("main", "color", "hue"): hs[0], ("main", "color", "saturation"): hs[1]}
    assert values(feed(codec, f"strip/{mode}", report)) == expected
    assert cmd(codec, "ha:strip", "color", "set", hue=240, saturation=100) == (f"strip/{mode}/set", colour_set, False)
    assert cmd(codec, "ha:strip", "level", "set", percent=100) == (f"strip/{mode}/set", level_set, False)
    black = feed(codec, f"strip/{mode}", ",".join(["0"] * len(report.split(","))))
    assert black.updates == [] and not black.problems  # no colour and no brightness to tell (HA ignores it too)


def test_shellies_discovery_rgbw2_keeps_what_its_templates_allow() -> None:
    codec = HomeAssistantCodec(skip_native=())
    out = feed(codec, "homeassistant/light/shellyrgbw2-A890BA-0/config", SHELLY_RGBW2)
    # `{{value.lower()}}` is a method call: the on/off state is left out and said so; the rest of the light works
    assert len(out.problems) == 1 and "left out state" in out.problems[0]
    assert supports(out)["main"] == {"on_off": ([], ["off", "on"]), "level": (["percent"], ["set"]),
                                     "color": (["hue", "saturation"], ["set"])}
    # the colour channel's status as Shelly's Gen1 API documents it (shelly-api-docs gen1, RGBW2 color/0/status)
    status = {"ison": True, "mode": "color", "red": 255, "green": 120, "blue": 0, "white": 40, "gain": 80,
              "effect": 0, "power": 5.3, "overpower": False}
    got = values(feed(codec, "shellies/shellyrgbw2-A890BA/color/0/status", status))
    assert got == {("main", "level", "percent"): 80.0, ("main", "color", "hue"): 28.2,
                   ("main", "color", "saturation"): 100.0}
    dev = "ha:shellyrgbw2-a890ba-0"
    assert cmd(codec, dev, "color", "set", hue=200, saturation=100) == (
        "shellies/shellyrgbw2-A890BA/color/0/set", b"{'red':0,'green':170,'blue':255,'white':40}", False)
    assert cmd(codec, dev, "level", "set", percent=50) == (
        "shellies/shellyrgbw2-A890BA/color/0/set", b"{'gain':50.0}", False)
    assert cmd(codec, dev, "on_off", "on") == ("shellies/shellyrgbw2-A890BA/color/0/command", b"on", False)


def test_tasmota_legacy_rgb_light_keeps_its_colour_command() -> None:
    codec = HomeAssistantCodec(skip_native=())
    out = feed(codec, "homeassistant/light/9F74BF_LI_1/config", TASMOTA_RGB)
    assert [p for p in out.problems if "left out rgb" in p] and len(out.problems) == 1
    assert supports(out)["main"]["color"] == ([], ["set"])
    got = values(feed(codec, "tele/tasmota_9F74BF/STATE", '{"POWER":"ON","Dimmer":40,"Color":"255,0,0"}'))
    assert got == {("main", "on_off", "on"): True, ("main", "level", "percent"): 40.0}
    assert cmd(codec, "ha:9f74bf", "color", "set", hue=120, saturation=100) == (
        "cmnd/tasmota_9F74BF/Color2", b"0,255,0", False)


def test_hs_and_xy_topics_with_their_template_variables() -> None:
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/light/bulb/config", {
        "uniq_id": "bulb", "cmd_t": "bulb/set", "hs_stat_t": "bulb/hs", "hs_cmd_t": "bulb/hs/set",
        "hs_cmd_tpl": '{"h":{{ hue }},"s":{{ sat }}}', "xy_stat_t": "bulb/xy", "xy_cmd_t": "bulb/xy/set",
        "xy_cmd_tpl": "{{ x }};{{ y }}", "rgb_cmd_t": "bulb/rgb/set"})
    assert values(feed(codec, "bulb/hs", "359.5,100.0")) == {("main", "color", "hue"): 359.5,
                                                            ("main", "color", "saturation"): 100.0}
    assert values(feed(codec, "bulb/xy", "0.675,0.322")) == {("main", "color", "x"): 0.675,
                                                            ("main", "color", "y"): 0.322}
    assert feed(codec, "bulb/xy", "0.675").problems and feed(codec, "bulb/xy", "2,0.3").problems
    # hs first: a light with both an hs and an rgb topic is sent hue and saturation as they are (numbers, as the
    # floats Home Assistant passes its template)
    assert cmd(codec, "ha:bulb", "color", "set", hue=120, saturation=50) == (
        "bulb/hs/set", b'{"h":120.0,"s":50.0}', False)
    assert cmd(codec, "ha:bulb", "color", "set_xy", x=0.3, y=0.4) == ("bulb/xy/set", b"0.3;0.4", False)
    with pytest.raises(CodecError):
        cmd(codec, "ha:bulb", "color", "set_xy", x=1.3, y=0.4)


def test_json_schema_colour_modes() -> None:
    codec = HomeAssistantCodec()
    out = feed(codec, "homeassistant/light/rgbw1/config", {**JSON_RGBW, "unique_id": "rgbw1"})
    assert supports(out)["main"]["color"] == (["hue", "saturation"], ["set"])
    # in the shape ESPHome publishes it (light_json_schema.cpp: colour_mode, brightness 0-255, colour, white_value)
    state = {"color_mode": "rgbw", "state": "ON", "brightness": 128, "color": {"r": 255, "g": 128, "b": 0, "w": 64},
             "white_value": 64}
    assert values(feed(codec, "home/rgbw1", state)) == {
        ("main", "on_off", "on"): True, ("main", "level", "percent"): 50.2, ("main", "color", "hue"): 30.1,
        ("main", "color", "saturation"): 100.0}
    # at full value (the brightness is sent apart), the white channel as it was
    assert cmd(codec, "ha:rgbw1", "color", "set", hue=120, saturation=100) == (
        "home/rgbw1/set", b'{"state":"ON","color":{"r":0,"g":255,"b":0,"w":64}}', False)
    # a colour mode it did not announce: what else the message says is kept, the colour is reported
    out = feed(codec, "home/rgbw1", {"state": "OFF", "color_mode": "hs", "color": {"h": 1, "s": 2}})
    assert values(out) == {("main", "on_off", "on"): False} and "not one this light announced" in out.problems[0]
    out = feed(codec, "home/rgbw1", {"state": "ON", "color_mode": "rgbw", "color": {"r": 1}})
    assert values(out) == {("main", "on_off", "on"): True} and out.problems
    # an rgbww light keeps both whites; an xy light (Zigbee2MQTT's) is sent x and y
    feed(codec, "homeassistant/light/ww/config", {"schema": "json", "uniq_id": "ww", "stat_t": "ww", "cmd_t": "ww/set",
                                                  "sup_clrm": ["rgbww", "color_temp"]})
    feed(codec, "ww", {"state": "ON", "color_mode": "rgbww", "color": {"r": 0, "g": 0, "b": 0, "c": 200, "w": 100}})
    assert cmd(codec, "ha:ww", "color", "set", hue=0, saturation=100)[1] == (
        b'{"state":"ON","color":{"r":255,"g":0,"b":0,"c":200,"w":100}}')
    feed(codec, "homeassistant/light/xy/config", {"schema": "json", "uniq_id": "xy", "stat_t": "xy", "cmd_t": "xy/set",
                                                  "brightness": True, "supported_color_modes": ["xy", "color_temp"]})
    # Zigbee2MQTT's state of such a light (Koenkk/zigbee2mqtt#7057): colour_temp mode, so x/y are not read
    got = values(feed(codec, "xy", {"brightness": 90, "color": {"x": 0.4657, "y": 0.4118}, "color_mode": "color_temp",
                                    "color_temp": 380, "linkquality": None, "state": "ON"}))
    assert got == {("main", "on_off", "on"): True, ("main", "level", "percent"): 35.3,
                   ("main", "color_temperature", "kelvin"): 2632}
    assert values(feed(codec, "xy", {"color_mode": "xy", "color": {"x": 0.4657, "y": 0.4118}})) == {
        ("main", "color", "x"): 0.4657, ("main", "color", "y"): 0.4118}
    assert cmd(codec, "ha:xy", "color", "set_xy", x=0.3, y=0.4)[1] == b'{"state":"ON","color":{"x":0.3,"y":0.4}}'
    with pytest.raises(CodecError):
        cmd(codec, "ha:xy", "color", "set", hue=1, saturation=2)


def test_json_schema_esphome_cwww_and_retired_rgb_flag() -> None:
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/light/my_light/my_light/config", {
        "schema": "json", "color_mode": True, "supported_color_modes": ["color_temp"], "brightness": True,
        "name": "my_light", "state_topic": "my_light/light/my_light/state", "unique_id": "ESPlightmy_light",
        "command_topic": "my_light/light/my_light/command"})
    # ESPHome reports a colour mode Home Assistant does not know (esphome/issues#2388): not an error every time
    out = feed(codec, "my_light/light/my_light/state",
               {"color_mode": "cwww", "state": "OFF", "brightness": 255, "color": {"c": 255, "w": 69}})
    assert values(out) == {("main", "on_off", "on"): False, ("main", "level", "percent"): 100.0}
    assert not out.problems
    # the Tube Light of the fixtures: the retired `rgb: true`, no colour mode in its state
    feed(codec, "homeassistant/light/tube/config", {"schema": "json", "brightness": True, "rgb": True,
                                                    "uniq_id": "tube", "stat_t": "tube", "cmd_t": "tube/set"})
    assert values(feed(codec, "tube", {"state": "ON", "brightness": 128, "color": {"r": 255, "g": 180, "b": 100}})) == {
        ("main", "on_off", "on"): True, ("main", "level", "percent"): 50.2, ("main", "color", "hue"): 31.0,
        ("main", "color", "saturation"): 60.8}
    assert cmd(codec, "ha:tube", "color", "set", hue=240, saturation=100)[1] == (
        b'{"state":"ON","color":{"r":0,"g":0,"b":255}}')


# ble2mqtt's discovery (toremick/ble2mqtt defs.py): every entity's attributes are the device's whole message.
BLE2MQTT_DEVICE = {"identifiers": ["ble2mqtt_ac233fa1b2c3"], "name": "ac233fa1b2c3", "sw_version": "ble2mqtt 1.0",
                   "model": "iBS03T", "manufacturer": "IGNICS"}


def ble2mqtt_config(kind: str, unit: str, device_class: str | None) -> dict[str, Any]:
    config = {"unit_of_measurement": unit, "value_template": f"{{{{ value_json.{kind} }}}}",
              "state_topic": "ble2mqtt/ac233fa1b2c3", "json_attributes_topic": "ble2mqtt/ac233fa1b2c3",
              "name": f"ac233fa1b2c3_{kind}", "unique_id": f"ac233fa1b2c3_{kind}_ble2mqtt", "device": BLE2MQTT_DEVICE,
              "availability_topic": "ble2mqtt/state"}
    return config | ({"device_class": device_class} if device_class else {})


def test_json_attributes_fill_capabilities_the_device_has() -> None:
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/sensor/ac233fa1b2c3/battery/config", ble2mqtt_config("battery", "%", "battery"))
    out = feed(codec, "homeassistant/sensor/ac233fa1b2c3/temperature/config",
               ble2mqtt_config("temperature", "°C", "temperature"))
    assert supports(out) == {"main": {"battery": (["percent"], []), "temperature": (["celsius"], [])}}
    out = feed(codec, "ble2mqtt/ac233fa1b2c3", {"battery": 87, "linkquality": 160, "temperature": 21.4})
    # each reading from its own entity and from the other's attributes; linkquality fits nothing the device has
    assert sorted((u.capability, u.value) for u in out.updates) == [
        ("battery", 87.0), ("battery", 87), ("temperature", 21.4), ("temperature", 21.4)]
    assert not out.problems and len(out.notes) == 2 and all("linkquality not used" in n for n in out.notes)
    again = feed(codec, "ble2mqtt/ac233fa1b2c3", {"battery": 86, "linkquality": 150, "temperature": 21.5})
    assert again.notes == [] and not again.problems  # once per entity
    # bad attribute payloads and values are notes, never errors
    for payload in ("not json", "[1, 2]", '{"temperature": "warm", "battery": 300}'):
        codec2 = HomeAssistantCodec()
        feed(codec2, "homeassistant/sensor/x/t/config", ble2mqtt_config("temperature", "°C", "temperature")
             | {"json_attributes_topic": "ble2mqtt/attrs"})
        feed(codec2, "homeassistant/sensor/x/b/config", ble2mqtt_config("battery", "%", "battery"))
        out = feed(codec2, "ble2mqtt/attrs", payload)
        assert out.updates == [] and not out.problems and len(out.notes) == 1, payload


def test_json_attributes_templates_and_zigbee2mqtts_lights() -> None:
    # Zigbee2MQTT's discovery of a light (home-assistant/core#77667), read through HA discovery on purpose
    codec = HomeAssistantCodec(skip_native=())
    keller = {"availability": [{"topic": "zigbee2mqtt/bridge/state"}, {"topic": "zigbee2mqtt/Keller1/availability"}],
              "availability_mode": "all", "brightness": True, "brightness_scale": 254, "color_mode": True,
              "command_topic": "zigbee2mqtt/Keller1/set",
              "device": {"identifiers": ["zigbee2mqtt_0x00158d0005a237ed"], "manufacturer": "Innr",
                         "model": "Smart bulb tunable white E27 (RB 278 T)", "name": "Keller1", "sw_version": "2.0"},
              "effect": True, "effect_list": ["blink", "breathe", "okay", "channel_change", "finish_effect",
                                              "stop_effect"],
              "json_attributes_topic": "zigbee2mqtt/Keller1", "max_mireds": 555, "min_mireds": 153, "name": "Keller1",
              "schema": "json", "state_topic": "zigbee2mqtt/Keller1", "supported_color_modes": ["color_temp"],
              "unique_id": "0x00158d0005a237ed_light_zigbee2mqtt"}
    assert not feed(codec, "homeassistant/light/0x00158d0005a237ed/light/config", keller).problems
    out = feed(codec, "zigbee2mqtt/Keller1", {"brightness": 90, "color": {"x": 0.4657, "y": 0.4118},
                                              "color_mode": "color_temp", "color_temp": 380, "linkquality": 87,
                                              "state": "ON"})
    assert values(out)[("main", "level", "percent")] == 35.4 and not out.problems
    assert len(out.notes) == 1 and "linkquality" in out.notes[0]
    # a template making the attributes JSON text (RuuviTag publishers) and one beyond the subset
    codec = HomeAssistantCodec()
    feed(codec, "homeassistant/sensor/ruuvi/t/config", {
        "dev_cla": "temperature", "unit_of_meas": "°C", "stat_t": "ruuvi/c3", "val_tpl": "{{ value_json.temperature }}",
        "json_attr_t": "ruuvi/c3", "uniq_id": "ruuvi_t", "dev": {"ids": ["c3abcdef0102"]},
        "json_attr_tpl": '{"mac": "{{value_json.mac}}", "humidity": "{{value_json.humidity}}"}'})
    feed(codec, "homeassistant/sensor/ruuvi/h/config", {
        "dev_cla": "humidity", "unit_of_meas": "%", "stat_t": "ruuvi/h", "uniq_id": "ruuvi_h",
        "dev": {"ids": ["c3abcdef0102"]},
        "json_attr_t": "ruuvi/c3", "json_attr_tpl": "{% for k in value_json %}{{ k }}{% endfor %}"})
    out = feed(codec, "ruuvi/c3", {"temperature": 20.5, "humidity": 44.5, "mac": "c3:ab:cd:ef:01:02"})
    assert sorted(values(out).items()) == [(("main", "humidity", "percent"), 44.5),
                                           (("main", "temperature", "celsius"), 20.5)]
    assert not out.problems


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
@example(platform="sensor", config={"avty": 1}, states=[])  # availability not a list: was a TypeError
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
                for args in ({"percent": 50}, {"hue": 120, "saturation": 50, "x": 0.3, "y": 0.3, "kelvin": 3000}):
                    with contextlib.suppress(CodecError):
                        codec.encode(Command(device.id, entity.component, cap, command, args))


# Lights: every colour key, with values right and wrong, states on every topic they name, commands with any args.
_colour_modes = st.lists(st.sampled_from(["onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww",
                                          "white", "cwww", 7]), max_size=4)
_light_config = st.fixed_dictionaries({"uniq_id": st.just("fz"), "cmd_t": st.just("l/set"), "stat_t": st.just("l")},
                                     optional={
    "schema": st.sampled_from(["json", "default", "template", 3]),
    "sup_clrm": _colour_modes | _json, "rgb": st.booleans() | _json, "hs": st.booleans(), "xy": st.booleans(),
    "brightness": st.booleans(), "bri_scl": st.integers(-1, 4096) | _json, "color_temp": st.booleans(),
    **{f"{mode}_stat_t": st.just("l/c") for mode in ("rgb", "rgbw", "rgbww", "hs", "xy")},
    **{f"{mode}_cmd_t": st.just("l/c/set") | st.just("l/+") for mode in ("rgb", "rgbw", "rgbww", "hs", "xy")},
    **{f"{mode}_val_tpl": st.sampled_from(["{{ value_json.rgb | join(',') }}", "{{ value }}", "{{ value_json }}",
                                           "{{ value.split(',') }}"]) for mode in ("rgb", "rgbw", "rgbww")},
    **{f"{mode}_cmd_tpl": st.sampled_from(["{{ red }},{{ green }},{{ blue }}", "{{ white }}{{ cold_white }}",
                                           "{{ value }}", "{{ hue }}", "{{ red | multiply('x') }}"])
       for mode in ("rgb", "rgbw", "rgbww", "hs", "xy")},
    "bri_stat_t": st.just("l/b"), "bri_cmd_t": st.just("l/b/set"),
    "json_attr_t": st.sampled_from(["l/a", "+/a", "l", "#/x"]),
    "json_attr_tpl": st.sampled_from(["{{ value_json | tojson }}", "{{ value_json.x }}", "{% if %}", "{{ value }}"]),
})
_colour_json = st.fixed_dictionaries({}, optional={
    "state": st.sampled_from(["ON", "OFF", None, 1]), "brightness": st.integers(-5, 300) | _json,
    "color_mode": st.sampled_from(["hs", "xy", "rgb", "rgbw", "rgbww", "color_temp", "cwww", "white", None, 3]),
    "color_temp": st.integers(-1, 1000) | _json,
    "color": st.dictionaries(st.sampled_from(["r", "g", "b", "w", "c", "h", "s", "x", "y"]),
                             st.integers(-10, 400) | st.floats() | _json, max_size=9) | _json,
    "rgb": st.lists(st.integers(-1, 300), max_size=5), "temperature": _json, "battery": _json, "linkquality": _json})
_args = st.dictionaries(st.sampled_from(["hue", "saturation", "x", "y", "percent", "kelvin", "transition_s"]),
                        st.integers(-10, 500) | st.floats() | _json, max_size=7)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=_light_config, states=st.lists(st.tuples(st.sampled_from(["l", "l/c", "l/b", "l/a", "x/a"]),
                                                       _colour_json.map(lambda v: json.dumps(v).encode())
                                                       | st.binary(max_size=30)
                                                       | st.sampled_from([b"255,0,127", b"1,2,3,4", b"9,9,9,9,9",
                                                                          b"0.3,0.4", b"0,0,0"])),
                                             max_size=5),
       args=st.lists(_args, max_size=3))
def test_fuzzed_lights_and_attributes_never_raise(config: dict[str, Any], states: list[tuple[str, bytes]],
                                                  args: list[dict[str, Any]]) -> None:
    codec = HomeAssistantCodec(skip_native=())
    try:
        payload = orjson.dumps(config, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        return
    codec.decode("homeassistant/light/fz/config", payload)
    for topic, body in states:
        out = codec.decode(topic, body)
        for update in out.updates:  # whatever is reported is a valid value of the model
            spec = capability(update.capability)
            assert spec is not None and spec.attributes[update.attribute].check(update.value) is None, update
    for device in list(codec.devices.values()):
        for entity in device.entities.values():
            for cap, command in entity.commands:
                for arg in [*args, {}]:
                    with contextlib.suppress(CodecError):
                        codec.encode(Command(device.id, entity.component, cap, command, arg))


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
