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

from adapters.tasmota.codec import (
    SENSOR_FIELDS,
    ZIGBEE_FIELDS,
    Decoded,
    TasmotaCodec,
    relay_component,
    subscription_filters,
)
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
    # with the per-device topics of a Zigbee bridge (SetOption89)
    assert subscription_filters("%prefix%/%topic%/") == ["stat/+/+", "tele/+/+", "tele/+/+/SENSOR"]
    assert subscription_filters("%topic%/%prefix%/") == ["+/stat/+", "+/tele/+", "+/tele/+/SENSOR"]
    assert subscription_filters("home/%prefix%/%topic%/") == ["home/stat/+/+", "home/tele/+/+",
                                                              "home/tele/+/+/SENSOR"]


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


# -- lights split in parts, colour commands (sources: tests/fixtures/tasmota/README.md)

SPLIT_DISCOVERY = payload_of("tasmota/discovery/00000049A3BC/config")


def test_split_rgb_and_white_light_from_discovery() -> None:
    # SetOption37 128 (discovery lk 0, two lights in rl, lt_st 5 = RGBCW): the colour light on POWER1/Dimmer1, the
    # white light on POWER2/Dimmer2 with CT (hatasmota's light.py reads the same config this way)
    codec = TasmotaCodec()
    feed(codec, "tasmota/discovery/00000049A3BC/config", SPLIT_DISCOVERY)
    dev = "tasmota:tasmota_49a3bc"
    assert supports(codec, dev) == {
        "main": {"on_off": (["on"], ["off", "on", "toggle"]), "level": (["percent"], ["set"]),
                 "color": (["hue", "saturation"], ["set"])},
        "l2": {"on_off": (["on"], ["off", "on", "toggle"]), "level": (["percent"], ["set"]),
               "color_temperature": (["kelvin"], ["set"])}}
    out = feed(codec, "stat/tasmota_49A3BC/RESULT", payload_of("stat/tasmota_49A3BC/RESULT"))
    assert values(out) == {("main", "on_off", "on"): True, ("main", "level", "percent"): 50,
                           ("l2", "on_off", "on"): True, ("l2", "level", "percent"): 100,
                           ("main", "color", "hue"): 210, ("main", "color", "saturation"): 99,
                           ("l2", "color_temperature", "kelvin"): 6536}
    assert not out.problems
    assert cmd(codec, dev, "on_off", "off", "l2") == ("cmnd/tasmota_49A3BC/POWER2", b"OFF")
    assert cmd(codec, dev, "level", "set", "main", percent=30) == ("cmnd/tasmota_49A3BC/Dimmer1", b"30")
    assert cmd(codec, dev, "level", "set", "l2", percent=75) == ("cmnd/tasmota_49A3BC/Dimmer2", b"75")
    assert cmd(codec, dev, "color_temperature", "set", "l2", kelvin=2700) == ("cmnd/tasmota_49A3BC/CT", b"370")
    # as Home Assistant's Tasmota integration sends a colour: hue and saturation only, brightness and white kept
    assert cmd(codec, dev, "color", "set", "main", hue=120, saturation=50) == (
        "cmnd/tasmota_49A3BC/Backlog", b"NoDelay;HsbColor1 120;NoDelay;HsbColor2 50")
    assert cmd(codec, dev, "color", "set", "main", hue=359.6, saturation=99.5) == (
        "cmnd/tasmota_49A3BC/Backlog", b"NoDelay;HsbColor1 0;NoDelay;HsbColor2 100")
    for component, cap, args in (("l2", "color", {"hue": 1, "saturation": 1}),
                                 ("main", "color_temperature", {"kelvin": 3000}),
                                 ("main", "color", {"hue": 400, "saturation": 1})):
        with pytest.raises(CodecError):
            codec.encode(Command(dev, component, cap, "set", args))


@pytest.mark.parametrize("relays", [0, 2])
def test_split_light_from_telemetry_after_relays(relays: int) -> None:
    # No discovery: Dimmer1/Dimmer2 say the light is split; its parts are the last two POWERs (after the relays)
    codec = TasmotaCodec()
    state = {f"POWER{n}": "OFF" for n in range(1, relays + 1)}
    state |= {f"POWER{relays + 1}": "ON", "Dimmer1": 50, f"POWER{relays + 2}": "OFF", "Dimmer2": 100,
              "Color": "014080FF00", "HSBColor": "210,99,50", "White": 100, "CT": 153, "Channel": [1, 25, 50, 100, 0]}
    got = values(feed(codec, "stat/rgbw/RESULT", state))
    rgb, white = relay_component(relays + 1), relay_component(relays + 2)
    assert got[(rgb, "level", "percent")] == 50 and got[(white, "level", "percent")] == 100
    assert got[(rgb, "color", "hue")] == 210 and got[(white, "color_temperature", "kelvin")] == 6536
    assert got[(white, "on_off", "on")] is False
    assert cmd(codec, "tasmota:rgbw", "level", "set", white, percent=20) == ("cmnd/rgbw/Dimmer2", b"20")
    assert cmd(codec, "tasmota:rgbw", "color", "set", rgb, hue=30, saturation=100)[0] == "cmnd/rgbw/Backlog"


def test_linked_rgbcw_bulb_telemetry_and_colour() -> None:
    # domoticz/domoticz#5106: a linked RGBCW bulb in white mode; Color, White and the Channel array are not read
    codec = TasmotaCodec()
    out = feed(codec, "tele/bulb02/STATE", payload_of("tele/bulb02/STATE"))
    assert values(out) == {("main", "on_off", "on"): True, ("main", "level", "percent"): 24,
                           ("main", "color", "hue"): 285, ("main", "color", "saturation"): 100,
                           ("main", "color_temperature", "kelvin"): 3876, ("main", "connectivity", "rssi_dbm"): -60}
    assert supports(codec, "tasmota:bulb02")["main"]["color"] == (["hue", "saturation"], ["set"])
    assert cmd(codec, "tasmota:bulb02", "color", "set", hue=285, saturation=100) == (
        "cmnd/bulb02/Backlog", b"NoDelay;HsbColor1 285;NoDelay;HsbColor2 100")
    assert cmd(codec, "tasmota:bulb02", "level", "set", percent=62) == ("cmnd/bulb02/Dimmer", b"62")


def test_multi_channel_pwm_tuya_and_reduced_ct_from_discovery() -> None:
    codec = TasmotaCodec()
    base = {**SPLIT_DISCOVERY, "lk": 1}
    # SetOption68: each PWM channel a dimmer of its own (HA's tests: rl [1, 1, 2, 2, 2], so 68)
    feed(codec, "tasmota/discovery/000000AABB01/config", {
        **base, "mac": "000000AABB01", "t": "h801", "rl": [1, 1, 2, 2, 2, 0, 0, 0], "so": {**base["so"], "68": 1}})
    caps = supports(codec, "tasmota:h801")
    assert caps["l2"] == {"on_off": (["on"], ["off", "on", "toggle"])}
    assert caps["l3"] == caps["l5"] == {"on_off": (["on"], ["off", "on", "toggle"]), "level": (["percent"], ["set"])}
    # Tasmota's state of such channels (xdrv_04_light.ino: "POWER<n>":…,"Channel<n>":…)
    got = values(feed(codec, "stat/h801/RESULT", {"POWER3": "ON", "Channel3": 100, "POWER4": "OFF", "Channel4": 0,
                                                  "POWER5": "ON", "Channel5": 40, "Color": "FF0066"}))
    assert got[("l5", "level", "percent")] == 40 and got[("l4", "on_off", "on")] is False
    assert cmd(codec, "tasmota:h801", "level", "set", "l5", percent=55) == ("cmnd/h801/Channel5", b"55")
    # a Tuya MCU light is dimmed with Dimmer3 (hatasmota); SetOption82 narrows CT to 200..380 mireds
    feed(codec, "tasmota/discovery/000000AABB02/config", {
        **base, "mac": "000000AABB02", "t": "tuya", "rl": [2, 0, 0, 0, 0, 0, 0, 0], "ty": 1,
        "so": {**base["so"], "82": 1}})
    assert cmd(codec, "tasmota:tuya", "level", "set", percent=75) == ("cmnd/tuya/Dimmer3", b"75")
    assert cmd(codec, "tasmota:tuya", "color_temperature", "set", kelvin=6500) == ("cmnd/tuya/CT", b"200")
    assert supports(codec, "tasmota:tuya")["main"]["color"] == (["hue", "saturation"], ["set"])
    assert codec.device("tasmota:tuya").info.components["main"]["color_temperature"].limits == {  # type: ignore
        "kelvin": (2632, 5000)}
    # SetOption68 learnt from telemetry alone
    got = values(feed(codec, "stat/h802/RESULT", {"POWER1": "ON", "Channel1": 100, "POWER2": "OFF", "Channel2": 0,
                                                  "Color": "FF00"}))
    assert got == {("main", "on_off", "on"): True, ("main", "level", "percent"): 100,
                   ("l2", "on_off", "on"): False, ("l2", "level", "percent"): 0}


# -- Zigbee bridge

def test_zigbee_bridge_devices_are_devices_of_their_own() -> None:
    codec = TasmotaCodec()
    assert feed(codec, "tele/zbbridge/LWT", "Online").availability == []
    feed(codec, "tele/zbbridge/SENSOR", {"ZbState": {"Status": 30, "IEEEAddr": "0x00158D00036B50AE",
                                                     "ShortAddr": "0x8F20", "PowerSource": False}})
    # the Tasmota Zigbee docs' Aqara weather sensor
    out = feed(codec, "tele/zbbridge/SENSOR", payload_of("tele/zbbridge/SENSOR", 1))
    kitchen = "tasmota:zbbridge:0x8f20"
    info = next(i for i in out.upserts if i.id == kitchen)
    assert (info.name, info.via, info.serial, info.source) == ("Kitchen", "tasmota:zbbridge", "0x00158d00036b50ae",
                                                                "tasmota")
    assert values(out) == {("main", "battery", "volts"): 2.995, ("main", "battery", "percent"): 98,
                           ("main", "temperature", "celsius"): 21.01, ("main", "humidity", "percent"): 53.68,
                           ("main", "pressure", "hpa"): 1004.04, ("main", "connectivity", "lqi"): 88}
    assert [u.device_id for u in out.updates] == [kitchen] * 6
    assert out.availability == [(kitchen, True)] and not out.problems
    # SetOption89 (tele/<t>/<short>/SENSOR) and SetOption83 (the name as key, the address in "Device")
    out = feed(codec, "tele/zbbridge/8F20/SENSOR", {"ZbReceived": {"Kitchen": {"Device": "0x8F20", "Temperature": 22.5,
                                                                               "Endpoint": 1, "LinkQuality": 80}}})
    assert values(out) == {("main", "temperature", "celsius"): 22.5, ("main", "connectivity", "lqi"): 80}
    # a plug: its on/off can be switched through the bridge (ZbSend, the Zigbee docs' "Plug" example)
    out = feed(codec, "tele/zbbridge/SENSOR", {"ZbReceived": {"0x4773": {"Power": True, "LinkQuality": 52}}})
    plug = "tasmota:zbbridge:0x4773"
    assert values(out)[("main", "on_off", "on")] is True
    assert supports_of(out, plug)["main"]["on_off"] == (["on"], ["off", "on", "toggle"])
    assert cmd(codec, plug, "on_off", "on") == ("cmnd/zbbridge/ZbSend", b'{"Device":"0x4773","Send":{"Power":1}}')
    assert cmd(codec, plug, "on_off", "toggle") == ("cmnd/zbbridge/ZbSend", b'{"Device":"0x4773","Send":{"Power":2}}')
    with pytest.raises(CodecError):
        cmd(codec, plug, "level", "set", percent=50)
    # a bulb's dimmer (0-254): read as percent and set the same way
    feed(codec, "tele/zbbridge/SENSOR", payload_of("tele/zbbridge/SENSOR", 4))
    light = "tasmota:zbbridge:0x5adf"
    assert values(feed(codec, "tele/zbbridge/SENSOR", payload_of("tele/zbbridge/SENSOR", 5))) == {
        ("main", "level", "percent"): 40.2, ("main", "connectivity", "lqi"): 80}
    assert cmd(codec, light, "level", "set", percent=50) == (
        "cmnd/zbbridge/ZbSend", b'{"Device":"0x5ADF","Send":{"Dimmer":127}}')
    # a remote's Power is a command it sends, not its state: not read, said once
    out = feed(codec, "tele/zbbridge/SENSOR", payload_of("tele/zbbridge/SENSOR", 3))
    assert values(out) == {("main", "connectivity", "lqi"): 75} and out.notes and not out.problems
    assert not feed(codec, "tele/zbbridge/SENSOR", payload_of("tele/zbbridge/SENSOR", 3)).notes
    with pytest.raises(CodecError):
        cmd(codec, "tasmota:zbbridge:0xf72f", "on_off", "on")
    # the bridge going offline takes its Zigbee devices with it
    assert set(feed(codec, "tele/zbbridge/LWT", "Offline").availability) == {
        ("tasmota:zbbridge", False), (kitchen, False), (plug, False), (light, False),
        ("tasmota:zbbridge:0xf72f", False)}
    # the bridge's discovery cleared: its Zigbee devices go too
    feed(codec, "tasmota/discovery/00000049A3BC/config", {**SPLIT_DISCOVERY, "t": "zbbridge"})
    assert cmd(codec, plug, "on_off", "off") == ("cmnd/zbbridge/ZbSend", b'{"Device":"0x4773","Send":{"Power":0}}')
    removed = feed(codec, "tasmota/discovery/00000049A3BC/config", "").removals
    assert set(removed) == {"tasmota:zbbridge", kitchen, plug, light, "tasmota:zbbridge:0xf72f"}


def supports_of(out: Decoded, device_id: str) -> dict[str, dict[str, tuple[list[str], list[str]]]]:
    info = [i for i in out.upserts if i.id == device_id][-1]
    return {comp: {cap: (sorted(s.attributes), sorted(s.commands)) for cap, s in caps.items()}
            for comp, caps in info.components.items()}


def test_zigbee_reports_of_real_bridges() -> None:
    codec = TasmotaCodec()
    # a Sonoff ZBBridge with a SNZB-03 motion sensor (mdaskalov/homebridge-tasmota-zbbridge#4): the raw
    # "0500<00" zone status is the sensor's own report, ZoneStatusChange… have no capability (said once)
    out = feed(codec, "tele/tasmota_E30562/SENSOR", payload_of("tele/tasmota_E30562/SENSOR"))
    assert values(out) == {("main", "occupancy", "occupied"): True, ("main", "connectivity", "lqi"): 50}
    assert [n for n in out.notes if "ZoneStatusChange" in n] and not out.problems
    # arendst/Tasmota#19613: the PIR's report and, later, its "no motion"
    sensor = {"ZbReceived": {"0x49E3": {"Device": "0x49E3", "0500?00": "010000000000", "ZoneStatusChange": 1,
                                        "Occupancy": 1, "Endpoint": 1, "LinkQuality": 48}}}
    assert values(feed(codec, "tele/tasmota_E30562/SENSOR", sensor))[("main", "occupancy", "occupied")] is True
    assert values(feed(codec, "tele/tasmota_E30562/SENSOR", {"ZbReceived": {"0x49E3": {"Device": "0x49E3",
                                                                                       "Occupancy": 0}}})) == {
        ("main", "occupancy", "occupied"): False}
    # Zigbee2Tasmota in 2019 (arendst/Tasmota#6095): no ZbReceived envelope, in tele/RESULT
    out = feed(codec, "tele/zigbee/RESULT", {"0xBC3F": {"Voltage": 3.095, "Battery": 100, "Temperature": 0}})
    assert values(out) == {("main", "battery", "volts"): 3.095, ("main", "battery", "percent"): 100,
                           ("main", "temperature", "celsius"): 0}
    assert [u.id for u in out.upserts] == ["tasmota:zigbee", "tasmota:zigbee:0xbc3f"]
    assert feed(codec, "tele/zigbee/RESULT", {"IrReceived": {"Protocol": "NEC"}}).upserts == []


def test_zigbee_endpoints_and_bad_reports() -> None:
    codec = TasmotaCodec()
    # a two-gang switch: its lowest endpoint is its "main"; the other is not read into it (said once)
    feed(codec, "tele/zb/SENSOR", {"ZbReceived": {"0x1234": {"Device": "0x1234", "Power": 1, "Endpoint": 2}}})
    out = feed(codec, "tele/zb/SENSOR", {"ZbReceived": {"0x1234": {"Device": "0x1234", "Power": 0, "Endpoint": 1}}})
    assert values(out) == {("main", "on_off", "on"): False}
    out = feed(codec, "tele/zb/SENSOR", {"ZbReceived": {"0x1234": {"Device": "0x1234", "Power": 1, "Endpoint": 2}}})
    assert values(out) == {} and out.notes
    # bad values are problems of that value only; a report without an address is not read (ids never from names)
    out = feed(codec, "tele/zb/SENSOR", {"ZbReceived": {
        "0x1234": {"Device": "0x1234", "Temperature": "warm", "Humidity": 40, "Dimmer": 999, "Occupancy": 7},
        "Hall": {"Temperature": 20}, "0x0001": "junk"}})
    assert values(out) == {("main", "humidity", "percent"): 40}
    assert len(out.problems) == 5


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.floats() | st.text(max_size=10),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(
                         st.sampled_from(["POWER", "POWER2", "Dimmer", "CT", "HSBColor", "ENERGY", "Total", "Power",
                                          "AM2301", "Temperature", "TempUnit", "Shutter1", "Position", "Direction",
                                          "Wifi", "Signal", "StatusSNS", "sn", "t", "rl", "ft", "mac", "x",
                                          "Dimmer1", "Dimmer2", "Channel1", "Channel3", "Color", "White", "lk", "so",
                                          "68", "82", "lt_st", "ty", "ZbReceived", "ZbState", "0x8F20", "Device",
                                          "Name", "Endpoint", "Occupancy", "Hue", "X", "LinkQuality", "Status",
                                          "ShortAddr", "IEEEAddr", "0006!02", "PressureUnit"]),
                         c, max_size=5), max_leaves=15)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.tuples(
    st.sampled_from(["tele/d/STATE", "tele/d/SENSOR", "tele/d/LWT", "stat/d/RESULT", "stat/d/POWER2",
                     "stat/d/STATUS10", "stat/d/STATUS11", "tasmota/discovery/001122334455/config",
                     "tasmota/discovery/001122334455/sensors", "d/tele/STATE", "tele/d/RESULT",
                     "tele/d/8F20/SENSOR", "tele/d/8F20/STATE"]) | st.text(max_size=30),
    _json.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)) | st.binary(max_size=60)), max_size=6))
def test_fuzzed_messages_never_raise(messages: list[tuple[str, bytes]]) -> None:
    codec = TasmotaCodec()
    for topic, payload in messages:
        codec.decode(topic, payload)
    for device_id in [*codec.by_id, *codec.zigbee_by_id]:
        for cap, command, args in (("on_off", "toggle", {}), ("level", "set", {"percent": 10}),
                                   ("cover", "open", {}), ("color_temperature", "set", {"kelvin": "x"}),
                                   ("color", "set", {"hue": 120, "saturation": 50}), ("color", "set", {"hue": "x"}),
                                   ("level", "set", {"percent": 1e300})):
            for component in ("main", "l2", "l3"):
                with contextlib.suppress(CodecError):
                    codec.encode(Command(device_id, component, cap, command, args))


# Shaped like the real thing, with every value wrong in its own way: Zigbee reports, split and multi-channel lights.
_value = (st.none() | st.booleans() | st.integers(-300, 70000) | st.floats() | st.text(max_size=6)
          | st.lists(st.integers(), max_size=3))
_zb_report = st.dictionaries(st.sampled_from([*ZIGBEE_FIELDS, *SENSOR_FIELDS, "Device", "Name", "Endpoint", "ModelId",
                                              "Manufacturer", "IEEEAddr", "0006!02", "0402_0000", "PressureUnit",
                                              "TempUnit", "Bogus"]), _value | st.sampled_from(["0x8F20", "hPa", "F"]),
                             max_size=8)
_zb_message = st.fixed_dictionaries(
    {"ZbReceived": st.dictionaries(st.sampled_from(["0x8F20", "0x0001", "Kitchen", "0xZZZZ", ""]),
                                   _zb_report | _value, max_size=3)},
    optional={"ZbState": st.dictionaries(st.sampled_from(["Status", "ShortAddr", "IEEEAddr"]),
                                         st.sampled_from([30, "0x8F20", "0x00158D00036B50AE", None, 3]))})
_light_state = st.dictionaries(st.sampled_from(["POWER", "POWER1", "POWER2", "POWER3", "Dimmer", "Dimmer1", "Dimmer2",
                                                "Channel1", "Channel2", "Channel40", "CT", "HSBColor", "Color",
                                                "White"]),
                               _value | st.sampled_from(["ON", "OFF", "210,99,50", "1,2", "x,y,z"]), max_size=8)
_light_discovery = st.fixed_dictionaries({"t": st.just("zb"), "mac": st.just("001122334455")}, optional={
    "rl": st.lists(st.sampled_from([0, 1, 2, 3, "2"]), max_size=8), "lk": st.sampled_from([0, 1, None, "0"]),
    "lt_st": st.integers(-1, 7) | st.none(), "ty": st.sampled_from([0, 1, True]),
    "so": st.dictionaries(st.sampled_from(["68", "82", "20"]), st.sampled_from([0, 1, True, "1"])) | _value})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(st.one_of(
    st.tuples(st.sampled_from(["tele/zb/SENSOR", "tele/zb/8F20/SENSOR", "tele/zb/RESULT"]), _zb_message),
    st.tuples(st.sampled_from(["stat/zb/RESULT", "tele/zb/STATE"]), _light_state),
    st.tuples(st.just("tasmota/discovery/001122334455/config"), _light_discovery),
    st.tuples(st.just("tele/zb/LWT"), st.sampled_from(["Online", "Offline"]))), max_size=6))
def test_fuzzed_zigbee_and_light_messages_never_raise(messages: list[tuple[str, Any]]) -> None:
    codec = TasmotaCodec()
    for topic, payload in messages:
        body = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        out = codec.decode(topic, body)
        for update in out.updates:  # whatever is reported is a valid value of the model
            spec = capability(update.capability)
            assert spec is not None and spec.attributes[update.attribute].check(update.value) is None, update
    for device_id in [*codec.by_id, *codec.zigbee_by_id]:
        for cap, command, args in (("on_off", "on", {}), ("level", "set", {"percent": 40}),
                                   ("color", "set", {"hue": 10, "saturation": 10}),
                                   ("color_temperature", "set", {"kelvin": 2700})):
            for component in ("main", "l2", "l3"):
                with contextlib.suppress(CodecError):
                    codec.encode(Command(device_id, component, cap, command, args))
