"""The Tasmota codec on real Tasmota payloads (sources: tests/fixtures/tasmota/README.md)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.mqtt.tasmota_codec import Decoded, TasmotaCodec, relay_component, subscription_filters
from gateway.sdk import CodecError, Command, capability

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tasmota" / "capture.jsonl"
LINES = [json.loads(line) for line in CAPTURE.read_text().splitlines() if line.strip()]


def payload_of(topic: str, index: int = 0) -> Any:
    return [line["payload"] for line in LINES if line["topic"] == topic][index]


def feed(codec: TasmotaCodec, topic: str, payload: Any) -> Decoded:
    if isinstance(payload, (dict, list)):
        payload = orjson.dumps(payload)
    elif isinstance(payload, str):
        payload = payload.encode()
    return codec.decode(topic, payload)


def values(decoded: Decoded) -> dict[tuple[str, str, str], Any]:
    return {(u.component, u.capability, u.attribute): u.value for u in decoded.updates}


def supports(codec: TasmotaCodec, device_id: str) -> dict[str, dict[str, tuple[list[str], list[str]]]]:
    device = codec.device(device_id)
    assert device is not None and device.info is not None
    return {comp: {cap: (sorted(s.attributes), sorted(s.commands)) for cap, s in caps.items()}
            for comp, caps in device.info.components.items()}


def cmd(codec: TasmotaCodec, device: str, cap: str, command: str, component: str = "main",
        **args: Any) -> tuple[str, bytes]:
    return codec.encode(Command(device, component, cap, command, args))


def test_component_rule() -> None:
    assert [relay_component(n) for n in (1, 2, 3, 8)] == ["main", "l2", "l3", "l8"]
    assert subscription_filters("%prefix%/%topic%/") == ["stat/+/+", "tele/+/+"]
    assert subscription_filters("%topic%/%prefix%/") == ["+/stat/+", "+/tele/+"]
    assert subscription_filters("home/%prefix%/%topic%/") == ["home/stat/+/+", "home/tele/+/+"]


def test_discovered_four_relay_device_with_two_ds18b20() -> None:
    codec = TasmotaCodec()
    out = feed(codec, "tasmota/discovery/DC4F220756C6/config", payload_of("tasmota/discovery/DC4F220756C6/config"))
    info = out.upserts[0]
    assert (info.id, info.name, info.model, info.sw_version, info.mac) == (
        "tasmota:cv-ruimte", "CV-Ruimte", "Technische Ruimte", "13.4.0", "dc:4f:22:07:56:c6")
    assert sorted(info.components) == ["l2", "l3", "l4", "main"]
    out = feed(codec, "tasmota/discovery/DC4F220756C6/sensors", payload_of("tasmota/discovery/DC4F220756C6/sensors"))
    assert values(out) == {("main", "temperature", "celsius"): 18.4, ("ds18b20-2", "temperature", "celsius"): 17.7}
    assert supports(codec, "tasmota:cv-ruimte")["l2"] == {"on_off": (["on"], ["off", "on", "toggle"])}
    assert values(feed(codec, "stat/cv-ruimte/RESULT", {"POWER2": "ON"})) == {("l2", "on_off", "on"): True}
    assert values(feed(codec, "stat/cv-ruimte/POWER3", "OFF")) == {("l3", "on_off", "on"): False}
    assert feed(codec, "tele/cv-ruimte/LWT", "Offline").availability == [("tasmota:cv-ruimte", False)]
    # commands: the exact topics and the device's own words
    assert cmd(codec, "tasmota:cv-ruimte", "on_off", "on") == ("cmnd/cv-ruimte/POWER1", b"ON")
    assert cmd(codec, "tasmota:cv-ruimte", "on_off", "toggle", "l4") == ("cmnd/cv-ruimte/POWER4", b"TOGGLE")
    assert cmd(codec, "tasmota:cv-ruimte", "on_off", "off", "l2") == ("cmnd/cv-ruimte/POWER2", b"OFF")
    with pytest.raises(CodecError):
        cmd(codec, "tasmota:cv-ruimte", "on_off", "on", "l5")
    with pytest.raises(CodecError):
        cmd(codec, "tasmota:cv-ruimte", "level", "set", percent=50)
    # the retained config cleared: the device goes
    assert feed(codec, "tasmota/discovery/DC4F220756C6/config", "").removals == ["tasmota:cv-ruimte"]


def test_swapped_full_topic_from_discovery() -> None:
    codec = TasmotaCodec()  # configured for the default; the device says %topic%/%prefix%/
    out = feed(codec, "tasmota/discovery/DC4F220848A2/config", payload_of("tasmota/discovery/DC4F220848A2/config"))
    assert out.topics_changed and {"tasmota_0848A2/stat/+", "tasmota_0848A2/tele/+"} <= codec.filters()
    assert (out.upserts[0].id, out.upserts[0].name, out.upserts[0].model) == (
        "tasmota:tasmota_0848a2", "Tasmota", "Sonoff Basic")
    got = values(feed(codec, "tasmota_0848A2/tele/STATE", payload_of("tasmota_0848A2/tele/STATE")))
    assert got == {("main", "on_off", "on"): True, ("main", "connectivity", "rssi_dbm"): -54}
    assert feed(codec, "tasmota_0848A2/tele/LWT", "Offline").availability == [("tasmota:tasmota_0848a2", False)]
    assert cmd(codec, "tasmota:tasmota_0848a2", "on_off", "on") == ("tasmota_0848A2/cmnd/POWER1", b"ON")


def test_configured_swapped_full_topic_without_discovery() -> None:
    codec = TasmotaCodec("%topic%/%prefix%/")
    out = feed(codec, "tasmota01/stat/RESULT", {"POWER": "ON"})  # arendst/Tasmota#7097
    assert values(out) == {("main", "on_off", "on"): True}
    assert cmd(codec, "tasmota:tasmota01", "on_off", "off") == ("tasmota01/cmnd/POWER1", b"OFF")
    assert feed(codec, "tele/tasmota01/STATE", {"POWER": "ON"}).updates == []  # not this FullTopic


def test_energy_plug_sensors_and_telemetry() -> None:
    codec = TasmotaCodec()
    feed(codec, "tasmota/discovery/CC50E3A1B2C3/config", payload_of("tasmota/discovery/CC50E3A1B2C3/config"))
    got = values(feed(codec, "tasmota/discovery/CC50E3A1B2C3/sensors",
                      payload_of("tasmota/discovery/CC50E3A1B2C3/sensors")))
    assert got == {("main", "energy_meter", "kwh"): 261.244, ("main", "power_meter", "watts"): 76.2,
                   ("main", "power_meter", "power_factor"): 0.58, ("main", "power_meter", "volts"): 231.1,
                   ("main", "power_meter", "amps"): 0.568}
    assert supports(codec, "tasmota:tasmota_a1b2c3")["main"]["power_meter"] == (
        ["amps", "power_factor", "volts", "watts"], [])


def test_undiscovered_devices_from_telemetry() -> None:
    codec = TasmotaCodec()
    assert feed(codec, "tele/tasmota_7BC431/LWT", "Online").availability == []  # remembered until it is known
    out = feed(codec, "stat/tasmota_7BC431/RESULT", {"POWER": "OFF"})
    assert out.upserts[0].id == "tasmota:tasmota_7bc431" and out.availability == [("tasmota:tasmota_7bc431", True)]
    assert values(out) == {("main", "on_off", "on"): False}
    assert feed(codec, "tele/tasmota_7BC431/INFO1", payload_of("tele/tasmota_7BC431/INFO1")).updates == []
    # five relays and a light after them (arendst/Tasmota#2348)
    out = feed(codec, "tele/NodeMCU1/STATE", payload_of("tele/NodeMCU1/STATE"))
    got = values(out)
    assert got[("l5", "on_off", "on")] is True and got[("l5", "level", "percent")] == 11
    assert (got[("l5", "color", "hue")], got[("l5", "color", "saturation")]) == (332, 61)
    nodemcu = "tasmota:nodemcu1"
    assert cmd(codec, nodemcu, "level", "set", "l5", percent=40) == ("cmnd/NodeMCU1/Dimmer", b"40")
    assert cmd(codec, nodemcu, "on_off", "on", "l3") == ("cmnd/NodeMCU1/POWER3", b"ON")


def test_light_with_ct_from_discovery() -> None:
    codec = TasmotaCodec()
    config = payload_of("tasmota/discovery/DC4F220848A2/config")
    config = {**config, "mac": "DC4F22AABBCC", "t": "bulb", "rl": [2, 0, 0, 0, 0, 0, 0, 0], "lt_st": 2}
    feed(codec, "tasmota/discovery/DC4F22AABBCC/config", {**config, "ft": "%prefix%/%topic%/"})
    main = supports(codec, "tasmota:bulb")["main"]
    assert main["level"] == (["percent"], ["set"]) and main["color_temperature"] == (["kelvin"], ["set"])
    got = values(feed(codec, "stat/bulb/RESULT", {"POWER": "ON", "Dimmer": 80, "CT": 370}))
    assert got == {("main", "on_off", "on"): True, ("main", "level", "percent"): 80,
                   ("main", "color_temperature", "kelvin"): 2703}
    assert cmd(codec, "tasmota:bulb", "color_temperature", "set", kelvin=2700) == ("cmnd/bulb/CT", b"370")
    assert cmd(codec, "tasmota:bulb", "color_temperature", "set", kelvin=9000) == ("cmnd/bulb/CT", b"153")  # clamped
    assert cmd(codec, "tasmota:bulb", "level", "set", percent=33.4) == ("cmnd/bulb/Dimmer", b"33")


@pytest.mark.parametrize(("topic", "expected"), [
    ("tele/sonoff-test/SENSOR", {("main", "temperature", "celsius"): 7.5, ("main", "humidity", "percent"): 81.5,
                                 ("bme280", "temperature", "celsius"): 8.2, ("bme280", "humidity", "percent"): 76.7,
                                 ("bme280", "pressure", "hpa"): 993.2}),
    ("tele/tasmota_794BE8/SENSOR", {("main", "temperature", "celsius"): 21.125,
                                    ("ds18b20-2", "temperature", "celsius"): 20.438,
                                    ("bmp280", "temperature", "celsius"): 28.52,
                                    ("bmp280", "pressure", "hpa"): 1004.3,  # 753.3 mmHg
                                    ("main", "cover", "position_percent"): 50, ("main", "cover", "motion"): "stopped"}),
    ("tele/th_garage/SENSOR", {("main", "temperature", "celsius"): 22.0, ("main", "humidity", "percent"): 45.2}),
])
def test_sensor_blocks_units_and_components(topic: str, expected: dict[tuple[str, str, str], Any]) -> None:
    codec = TasmotaCodec()
    out = feed(codec, topic, payload_of(topic))
    assert values(out) == expected and not out.problems
    for update in out.updates:
        spec = capability(update.capability)
        assert spec is not None and spec.attributes[update.attribute].check(update.value) is None


def test_board_thermistor_numbered_sensors_and_unreadable_sensors() -> None:
    codec = TasmotaCodec()
    # A Shelly 2.5 on Tasmota: the ADC's NTC is the relay board's own temperature, beside its meter
    # (arendst/Tasmota#17741): not the room's temperature.
    out = feed(codec, "tele/tasmota_228C3D/SENSOR", {
        "Time": "2023-02-15T00:17:44", "Switch1": "ON", "Switch2": "ON", "ANALOG": {"Temperature": 37.7},
        "ENERGY": {"Total": [0.205, 0.242], "Power": [0.0, 0.0], "Voltage": 0, "Current": [0.0, 0.0]},
        "TempUnit": "C"})
    got = values(out)
    assert got[("analog", "temperature", "celsius")] == 37.7 and ("main", "temperature", "celsius") not in got
    assert not out.problems
    # An NSPanel: no meter, its ADC's NTC (numbered: Temperature1) is the room's temperature, the ESP32's own
    # beside it (tasmota/discovery sensors message as quoted in SmartHomeNG's NSPanel plugin, Tasmota 12.2.0).
    out = feed(codec, "tele/NSPanel1/SENSOR", {"Time": "2022-11-28T16:22:32", "ANALOG": {"Temperature1": 22.9},
                                               "ESP32": {"Temperature": 29.4}, "TempUnit": "C"})
    assert values(out) == {("main", "temperature", "celsius"): 22.9, ("esp32", "temperature", "celsius"): 29.4}
    # Two of a kind in one block: the second is a component of its own, never the same attribute twice.
    out = feed(codec, "tele/two_ntc/SENSOR", {"ANALOG": {"Temperature1": 20.5, "Temperature2": 55.0}})
    assert values(out) == {("main", "temperature", "celsius"): 20.5,
                           ("analog_temperature2", "temperature", "celsius"): 55.0}
    # A sensor Tasmota could not read reports null (arendst/Tasmota#4637): unknown now, not an error.
    feed(codec, "tele/sonoff_th10/SENSOR", {"AM2301": {"Temperature": 21.5, "Humidity": 40}, "TempUnit": "C"})
    out = feed(codec, "tele/sonoff_th10/SENSOR", {"Time": "2018-12-19T09:22:43",
                                                  "AM2301": {"Temperature": None, "Humidity": None}, "TempUnit": "C"})
    assert values(out) == {("main", "temperature", "celsius"): None, ("main", "humidity", "percent"): None}
    assert not out.problems


@pytest.mark.parametrize("power_first", [False, True])
def test_shutter_motor_relays_are_not_switches(power_first: bool) -> None:
    # Two shutters on four relays, no discovery (arendst/Tasmota#9906): POWER1 is shutter 1's motor, not a
    # switch, whichever of the relay's message and the shutter's telemetry comes first; the cover stays main.
    codec = TasmotaCodec()
    sensor = {"Time": "2020-11-18T12:21:43", "Switch1": "ON", "Shutter1": {"Position": 72, "Direction": 0,
                                                                           "Target": 72},
              "Shutter2": {"Position": 72, "Direction": 0, "Target": 72}}
    steps = [("stat/tasmota_blind_new/RESULT", {"POWER1": "ON"}), ("tele/tasmota_blind_new/SENSOR", sensor)]
    for topic, payload in steps if power_first else reversed(steps):
        feed(codec, topic, payload)
    got = values(feed(codec, "stat/tasmota_blind_new/RESULT",
                      {"Shutter1": {"Position": 72, "Direction": 1, "Target": 100}}))
    assert got == {("main", "cover", "position_percent"): 72, ("main", "cover", "motion"): "opening"}
    assert values(feed(codec, "stat/tasmota_blind_new/POWER1", "OFF")) == {}
    caps = supports(codec, "tasmota:tasmota_blind_new")
    assert set(caps) == {"main", "shutter2"} and "on_off" not in caps["main"]


def test_ifan_fan_speed() -> None:
    # A Sonoff iFan03 on Tasmota (tasmota.github.io docs/devices/Sonoff-iFan03): the light on POWER1, the fan's
    # FanSpeed 0-3 in STATE and RESULT, set with FanSpeed <n>.
    codec = TasmotaCodec()
    out = feed(codec, "tele/ifan03/STATE", {"Time": "2024-12-01T10:00:00", "POWER1": "ON", "FanSpeed": 2,
                                            "Wifi": {"AP": 1, "RSSI": 80, "Signal": -60}})
    got = values(out)
    assert got[("fan", "fan", "on")] is True and got[("fan", "fan", "speed_percent")] == 67
    assert supports(codec, "tasmota:ifan03")["fan"] == {"fan": (["on", "speed_percent"], ["set_speed"])}
    assert values(feed(codec, "stat/ifan03/RESULT", {"FanSpeed": 0})) == {
        ("fan", "fan", "on"): False, ("fan", "fan", "speed_percent"): 0}
    assert cmd(codec, "tasmota:ifan03", "fan", "set_speed", "fan", percent=100) == ("cmnd/ifan03/FanSpeed", b"3")
    assert cmd(codec, "tasmota:ifan03", "fan", "set_speed", "fan", percent=40) == ("cmnd/ifan03/FanSpeed", b"1")
    assert any("expected 0, 1, 2 or 3" in p for p in feed(codec, "stat/ifan03/RESULT", {"FanSpeed": 7}).problems)


def test_a_zigbee_bridge_says_once_that_its_zigbee_devices_are_not_read() -> None:
    # Tasmota on a Sonoff ZBBridge reports its Zigbee devices as ZbReceived (Tasmota's Zigbee docs): not read,
    # but not silently either: one problem per bridge, not one per message.
    codec = TasmotaCodec()
    report = {"ZbReceived": {"0x057B": {"Device": "0x057B", "Name": "motion_sensor", "Occupancy": 1, "Endpoint": 1,
                                        "LinkQuality": 105}}}
    first = feed(codec, "tele/SonoffZB/SENSOR", report)
    assert [p for p in first.problems if "Zigbee bridge" in p and "Zigbee2MQTT" in p]
    assert feed(codec, "tele/SonoffZB/SENSOR", report).problems == []


def test_shutter_and_three_phase_status10() -> None:
    codec = TasmotaCodec()
    feed(codec, "tele/tasmota_794BE8/SENSOR", payload_of("tele/tasmota_794BE8/SENSOR"))
    dev = "tasmota:tasmota_794be8"
    assert cmd(codec, dev, "cover", "set_position", percent=75) == ("cmnd/tasmota_794BE8/ShutterPosition1", b"75")
    assert cmd(codec, dev, "cover", "open") == ("cmnd/tasmota_794BE8/ShutterOpen1", b"")
    assert cmd(codec, dev, "cover", "stop") == ("cmnd/tasmota_794BE8/ShutterStop1", b"")
    got = values(feed(codec, "stat/tableroprincipal/STATUS10", payload_of("stat/tableroprincipal/STATUS10")))
    assert {k for k in got if k[1] == "power_meter" and k[2] == "watts"} == {
        ("main", "power_meter", "watts"), ("l2", "power_meter", "watts"), ("l3", "power_meter", "watts")}


def test_bad_input_is_reported_not_raised() -> None:
    codec = TasmotaCodec()
    out = feed(codec, "tele/x/SENSOR", "{not json")
    assert out.problems and out.updates == []
    out = feed(codec, "stat/x/RESULT", {"POWER": "MAYBE", "Dimmer": 250})
    assert len(out.problems) == 2
    out = feed(codec, "tele/x/SENSOR", {"AM2301": {"Temperature": 20}, "TempUnit": "R"})
    assert "TempUnit" in out.problems[0]
    assert feed(codec, "tele/x/LWT", "Sleeping").problems
    assert feed(codec, "tasmota/discovery/001122334455/config", {"t": "a/b"}).problems
    assert feed(codec, "tasmota/discovery/001122334455/config", {"t": "ok", "mac": "FFEEDDCCBBAA"}).problems
    assert feed(codec, "zigbee2mqtt/bridge/state", "online").upserts == []


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats() | st.text(max_size=10),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(
                         st.sampled_from(["POWER", "POWER2", "Dimmer", "CT", "HSBColor", "ENERGY", "Total", "Power",
                                          "AM2301", "Temperature", "TempUnit", "Shutter1", "Position", "Direction",
                                          "Wifi", "Signal", "StatusSNS", "sn", "t", "rl", "ft", "mac", "x"]),
                         c, max_size=5), max_leaves=15)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.tuples(
    st.sampled_from(["tele/d/STATE", "tele/d/SENSOR", "tele/d/LWT", "stat/d/RESULT", "stat/d/POWER2",
                     "stat/d/STATUS10", "stat/d/STATUS11", "tasmota/discovery/001122334455/config",
                     "tasmota/discovery/001122334455/sensors", "d/tele/STATE"]) | st.text(max_size=30),
    _json.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)) | st.binary(max_size=60)), max_size=6))
def test_fuzzed_messages_never_raise(messages: list[tuple[str, bytes]]) -> None:
    codec = TasmotaCodec()
    for topic, payload in messages:
        codec.decode(topic, payload)
    for device in list(codec.by_id.values()):
        for cap, command, args in (("on_off", "toggle", {}), ("level", "set", {"percent": 10}),
                                   ("cover", "open", {}), ("color_temperature", "set", {"kelvin": "x"})):
            with contextlib.suppress(CodecError):
                codec.encode(Command(device.id, "main", cap, command, args))
