"""Zigbee2MQTT devices as their firmware means them: real definitions from zigbee-herdsman-converters
(tests/fixtures/z2m/zhc_exposes.json, the exposes Zigbee2MQTT publishes in bridge/devices), each a case that
was wrong before: mapped by name alone, units relabelled, buttons on the wrong number, enums refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.zigbee2mqtt.codec import Decoded, Zigbee2MqttCodec
from gateway.model import Device, expected_state
from gateway.sdk import Command

MODELS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "z2m" / "zhc_exposes.json").read_text())["models"]


def house(*models: str, battery: tuple[str, ...] = ()) -> tuple[Zigbee2MqttCodec, Decoded]:
    """A bridge with one device per model, named after its model."""
    entries = [{"ieee_address": f"0x00000000000000{i:02x}", "friendly_name": model, "type": "EndDevice",
                "power_source": "Battery" if model in battery else "Mains (single phase)",
                "definition": {"model": model, "vendor": MODELS[model]["vendor"], "exposes": MODELS[model]["exposes"]}}
               for i, model in enumerate(models)]
    codec = Zigbee2MqttCodec()
    return codec, codec.decode("zigbee2mqtt/bridge/devices", orjson.dumps(entries))


def support(decoded: Decoded, model: str) -> dict[str, dict[str, set[str]]]:
    info = next(d for d in decoded.upserts if d.name == model)
    return {comp: {cap: set(s.attributes) for cap, s in caps.items() if cap != "connectivity"}
            for comp, caps in info.components.items()}


def send(codec: Zigbee2MqttCodec, model: str, payload: dict[str, Any]) -> Decoded:
    return codec.decode(f"zigbee2mqtt/{model}", orjson.dumps(payload))


def values(decoded: Decoded) -> dict[tuple[str, str, str], Any]:
    return {(u.component, u.capability, u.attribute): u.value for u in decoded.updates
            if u.capability != "connectivity"}


# ------------------------------------------------------------------------------- by type, not by name


def test_a_multisensors_moving_is_a_vibration_not_a_phantom_cover() -> None:
    codec, decoded = house("IM6001-MPP01", battery=("IM6001-MPP01",))
    caps = support(decoded, "IM6001-MPP01")["main"]
    assert "cover" not in caps
    got = send(codec, "IM6001-MPP01", {"moving": True, "contact": False})
    assert got.problems == []
    assert values(got) == {("main", "vibration", "detected"): True, ("main", "contact", "open"): True}


def test_a_contact_that_says_on_and_off_is_read() -> None:
    codec, _ = house("POK003")
    # PushOk: "Indicates if the contact is closed (= true) or open (= false)", sent as ON/OFF.
    assert values(send(codec, "POK003", {"contact": "ON"})) == {("main", "contact", "open"): False}
    assert values(send(codec, "POK003", {"contact": "OFF"})) == {("main", "contact", "open"): True}


def test_a_setting_named_like_a_reading_is_not_read_and_said_once() -> None:
    # Nova Digital TO-WK-1W/B: `vibration` is an enum setting (off/low/medium/high) beside its meter.
    # Ensystec leak sensor: `power` is an enum (the power source), not watts.
    codec, decoded = house("TO-WK-1W/B", "Ensystec-Leak-Protect-Zigbee")
    assert "vibration" not in support(decoded, "TO-WK-1W/B")["main"]
    assert "power_meter" not in support(decoded, "Ensystec-Leak-Protect-Zigbee").get("main", {})
    got = send(codec, "TO-WK-1W/B", {"vibration": "medium", "power": 12.5})
    assert got.problems == []
    assert values(got) == {("main", "power_meter", "watts"): 12.5}
    got = send(codec, "Ensystec-Leak-Protect-Zigbee", {"power": "battery"})
    assert got.problems == [] and values(got) == {}
    notes = " | ".join(decoded.notes)
    assert "TO-WK-1W/B: not used:" in notes and "vibration (an enum is not vibration)" in notes
    assert "power (an enum is not power_meter)" in notes
    # Once per model: a second bridge/devices with the same models says nothing again.
    again = codec.decode("zigbee2mqtt/bridge/devices", orjson.dumps([
        {"ieee_address": "0x0000000000000077", "friendly_name": "second", "definition": {
            "model": "TO-WK-1W/B", "vendor": "Nova Digital", "exposes": MODELS["TO-WK-1W/B"]["exposes"]}}]))
    assert again.notes == []


def test_a_pressure_pad_says_someone_is_on_it() -> None:
    codec, decoded = house("C3007", battery=("C3007",))
    assert "pressure" not in support(decoded, "C3007")["main"]
    got = send(codec, "C3007", {"pressure": True})
    assert got.problems == [] and values(got)[("main", "occupancy", "occupied")] is True


# ------------------------------------------------------------------------------- units


def test_milliamps_are_converted_to_amps() -> None:
    codec, _ = house("ZBS16")  # AVATTO ZBS16: `current` in mA
    assert values(send(codec, "ZBS16", {"current": 350}))[("main", "power_meter", "amps")] == pytest.approx(0.35)


def test_voc_in_ppm_is_converted_and_in_ugm3_kept_apart() -> None:
    codec, decoded = house("SLACKY_DIY_CO2_SENSOR_R02", "AQSZB-110")
    assert values(send(codec, "SLACKY_DIY_CO2_SENSOR_R02", {"voc": 0.25}))[
        ("main", "air_quality", "voc_ppb")] == pytest.approx(250)
    develco = values(send(codec, "AQSZB-110", {"voc": 180}))  # Develco AQSZB-110: µg/m³
    assert develco == {("main", "air_quality", "voc_ugm3"): 180}
    assert "voc_ppb" not in support(decoded, "AQSZB-110")["main"]["air_quality"]


def test_illuminance_in_percent_is_not_lux() -> None:
    codec, _ = house("TS0601_cover_6")
    got = values(send(codec, "TS0601_cover_6", {"illuminance": 40}))
    assert got == {("main", "illuminance", "percent"): 40}


def test_a_unit_nobody_handles_is_not_relabelled() -> None:
    codec, _ = house("ZBS16")
    entry = {"ieee_address": "0x00000000000000ff", "friendly_name": "odd", "definition": {
        "model": "odd-meter", "vendor": "x", "exposes": [
            {"type": "numeric", "name": "power", "property": "power", "access": 1, "unit": "hp"},
            {"type": "numeric", "name": "temperature", "property": "temperature", "access": 1, "unit": "°F"}]}}
    out = codec.decode("zigbee2mqtt/bridge/devices", orjson.dumps([entry]))
    assert any("power (unit hp is not one power_meter takes)" in note for note in out.notes)
    got = values(send(codec, "odd", {"power": 3, "temperature": 212}))
    assert got == {("main", "temperature", "celsius"): pytest.approx(100)}


# ------------------------------------------------------------------------------- buttons


def test_every_button_of_an_eight_button_pad_keeps_its_number() -> None:
    codec, _ = house("FreePad-08K-SlD", battery=("FreePad-08K-SlD",))
    for button in range(1, 7):
        for action in (f"on_{button}", f"off_{button}", f"brightness_move_up_{button}"):
            events = send(codec, "FreePad-08K-SlD", {"action": action}).events
            assert [e.data.get("button") for e in events] == [button], action
            assert events[0].data.get("kind") is not None


def test_brightness_steps_are_presses() -> None:
    codec, _ = house("067767", battery=("067767",))  # Legrand: brightness_step_up/down
    events = send(codec, "067767", {"action": "brightness_step_down"}).events
    assert [(e.data["kind"], e.data["button"]) for e in events] == [("single", 2)]


def test_the_hue_dimmer_has_four_buttons() -> None:
    codec, _ = house("324131092621", battery=("324131092621",))
    got = [send(codec, "324131092621", {"action": a}).events[0].data["button"]
           for a in ("on_press", "up_press", "down_hold", "off_press_release")]
    assert got == [1, 2, 3, 4]


def test_a_locks_actions_are_how_it_was_operated_not_presses() -> None:
    codec, decoded = house("V3-BTZB/V3-BTZBE", battery=("V3-BTZB/V3-BTZBE",))
    assert "button" not in support(decoded, "V3-BTZB/V3-BTZBE")["main"]
    events = send(codec, "V3-BTZB/V3-BTZBE", {"action": "manual_unlock"}).events
    assert [(e.capability, e.event, e.data) for e in events] == [
        ("lock", "operated", {"source": "manual", "action": "manual_unlock"})]


# ------------------------------------------------------------------------------- enums


@pytest.mark.parametrize(("word", "mode"), [("emergency_heating", "heat"), ("heat", "heat"), ("off", "off")])
def test_every_system_mode_the_database_lists_is_read(word: str, mode: str) -> None:
    codec, _ = house("3156105", battery=("3156105",))
    got = send(codec, "3156105", {"system_mode": word, "running_state": "fan_only"})
    assert got.problems == []
    assert values(got)[("main", "thermostat", "mode")] == mode
    assert values(got)[("main", "thermostat", "running")] == "fan"


def test_a_blind_motor_moving_forward_and_reverse() -> None:
    codec, _ = house("MINI-ZBRBS")
    assert values(send(codec, "MINI-ZBRBS", {"moving": "forward"}))[("main", "cover", "motion")] == "opening"
    assert values(send(codec, "MINI-ZBRBS", {"moving": "stop"}))[("main", "cover", "motion")] == "stopped"


# ------------------------------------------------------------------------------- whose temperature


@pytest.mark.parametrize(("model", "battery", "kept"), [
    ("HLU2909K", False, False),  # a smart plug: its temperature is the relay's own
    ("1-ZB-WSD", False, True),  # a thermostat relay: the room's temperature it regulates
    ("W564100", False, True),  # a motion sensor with a relay
    ("Fire Fence", True, True),  # a stove guard (on battery)
])
def test_a_temperature_is_the_rooms_unless_it_is_a_relays_own_chip(model: str, battery: bool, kept: bool) -> None:
    codec, decoded = house(model, battery=(model,) if battery else ())
    assert ("temperature" in support(decoded, model).get("main", {})) is kept
    got = values(send(codec, model, {"temperature": 23.5}))
    assert (("main", "temperature", "celsius") in got) is kept


# ------------------------------------------------------------------------------- new capabilities


def test_a_gas_detector() -> None:
    codec, _ = house("DCR-RQJ")
    got = values(send(codec, "DCR-RQJ", {"gas": True, "gas_value": 12, "carbon_monoxide": False, "co": 3}))
    assert got == {("main", "gas", "detected"): True, ("main", "gas", "lel_percent"): 12,
                   ("main", "smoke_co_alarm", "co"): False, ("main", "smoke_co_alarm", "co_ppm"): 3}


def test_a_siren_switches_and_a_warning_device_sounds() -> None:
    codec, _ = house("NAS-AB03B3", "LDSENK06")
    assert values(send(codec, "NAS-AB03B3", {"alarm": True}))[("main", "siren", "on")] is True
    topic, payload = codec.encode(Command(codec.by_name["NAS-AB03B3"].id, "main", "siren", "off"))
    assert (topic, orjson.loads(payload)) == ("zigbee2mqtt/NAS-AB03B3/set", {"alarm": False})
    _, payload = codec.encode(Command(codec.by_name["LDSENK06"].id, "main", "siren", "on",
                                      {"tone": "fire", "duration_s": 30}))
    assert orjson.loads(payload) == {"warning": {"mode": "fire", "level": "high", "strobe": True, "duration": 30}}


def test_soil_water_level_and_filter() -> None:
    codec, _ = house("3RSM0147Z", "ME201WZ", "E2007", battery=("3RSM0147Z",))
    assert values(send(codec, "3RSM0147Z", {"soil_moisture": 41}))[("main", "soil_moisture", "percent")] == 41
    assert values(send(codec, "ME201WZ", {"liquid_level_percent": 80, "liquid_depth": 1.2, "liquid_state": "high"})
                  ) == {("main", "water_level", "percent"): 80, ("main", "water_level", "depth_m"): 1.2,
                        ("main", "water_level", "state"): "high"}
    got = values(send(codec, "E2007", {"replace_filter": True, "filter_age": 120}))
    assert got == {("main", "filter", "replace"): True, ("main", "filter", "used_h"): pytest.approx(2)}


def test_a_three_speed_fan_confirms_fifty_percent_at_sixty_seven() -> None:
    codec, decoded = house("E2007")  # IKEA STARKVIND: fan_mode off/auto/1…9, fan_speed 0-9
    info = next(d for d in decoded.upserts if d.name == "E2007")
    device = Device(info.id, info.name, "zigbee2mqtt", "zigbee2mqtt", support=info.components)
    for update in decoded.updates:
        if update.device_id == info.id:
            device.state.setdefault(update.component, {}).setdefault(update.capability, {})[update.attribute] = \
                update.value
    assert device.value("main", "fan", "speed_steps") == 9
    command = Command(info.id, "main", "fan", "set_speed", {"percent": 50})
    _, payload = codec.encode(command)
    assert orjson.loads(payload) == {"fan_mode": "5"}
    assert expected_state(command, device) == {"speed_percent": 56}  # speed 5 of 9
    reported = values(send(codec, "E2007", {"fan_mode": "5", "fan_speed": 5}))
    assert reported[("main", "fan", "speed_percent")] == 56


def test_a_three_phase_meter_has_a_component_per_phase() -> None:
    codec, decoded = house("ATMS10013Z3")
    caps = support(decoded, "ATMS10013Z3")
    assert {"l1", "l2", "l3"} <= set(caps)  # phases A, B, C
    assert caps["l2"]["power_meter"] == {"watts", "volts", "amps"}
    got = values(send(codec, "ATMS10013Z3", {"power_a": 100, "power_b": 200, "voltage_c": 231, "power": 300}))
    assert got == {("l1", "power_meter", "watts"): 100, ("l2", "power_meter", "watts"): 200,
                   ("l3", "power_meter", "volts"): 231, ("main", "power_meter", "watts"): 300}


def test_a_garage_door_and_a_radiator_valves_window_and_position() -> None:
    codec, decoded = house("TS0601_garage_door_opener", "ZTRV-S01", battery=("ZTRV-S01",))
    assert values(send(codec, "TS0601_garage_door_opener", {"garage_door_contact": False})) == {
        ("main", "contact", "open"): True}
    got = values(send(codec, "ZTRV-S01", {"window": True, "position": 35}))
    assert got == {("main", "thermostat", "window_open"): True, ("main", "valve", "position_percent"): 35}
    assert "window_open" in support(decoded, "ZTRV-S01")["main"]["thermostat"]


def test_a_fall_radar_is_occupancy_and_an_alarm_word_is_a_siren_tone() -> None:
    codec, _ = house("FDS315", "MG-BJQ002")
    assert values(send(codec, "FDS315", {"status": "on_the_bed"}))[("main", "occupancy", "occupied")] is True
    assert values(send(codec, "FDS315", {"status": "unoccupied"}))[("main", "occupancy", "occupied")] is False
    assert values(send(codec, "MG-BJQ002", {"alarm": "sound_light"})) == {
        ("main", "siren", "on"): True, ("main", "siren", "tone"): "sound_light"}
    assert values(send(codec, "MG-BJQ002", {"alarm": "off"})) == {("main", "siren", "on"): False}

