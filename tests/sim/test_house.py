"""The simulated house builds a bridge/devices that the real Zigbee2MQTT codec accepts, with the right
capabilities for every device; the scaled house and the benchmark stream are well formed."""

from __future__ import annotations

import json
from collections import Counter

import orjson
import pytest

from adapters.zigbee2mqtt.codec import Zigbee2MqttCodec
from gateway.sim import demo_house, house_stream, message_stream, scaled_house
from gateway.sim._definitions import DEFINITIONS
from gateway.sim.house import BASE_TOPIC

# role -> capabilities the gateway must see on the device's main component
EXPECTED = {
    "light": {"on_off", "level", "color_temperature"},
    "motion": {"occupancy", "battery", "illuminance"},
    "door": {"contact", "battery"},
    "window": {"contact", "battery"},
    "thermostat": {"thermostat"},
    "tv": {"on_off", "power_meter", "energy_meter"},
    "fridge": {"on_off", "power_meter", "energy_meter"},
    "kettle": {"on_off", "power_meter", "energy_meter"},
    "washer": {"on_off", "power_meter", "energy_meter"},
    "appliance": {"on_off", "power_meter", "energy_meter"},
    "panic": {"button", "battery"},
    "button": {"button", "battery"},
}


def _decode_devices(house):  # type: ignore[no-untyped-def]
    codec = Zigbee2MqttCodec(BASE_TOPIC)
    decoded = codec.decode(f"{BASE_TOPIC}/bridge/devices", orjson.dumps(house.bridge_devices()))
    assert decoded.problems == []
    return codec, {info.id: info for info in decoded.upserts}


def test_every_demo_device_appears_with_its_capabilities() -> None:
    house = demo_house()
    _codec, infos = _decode_devices(house)
    zigbee = house.zigbee
    assert len(zigbee) == 19 and len(house.devices) == 22
    for device in zigbee:
        info = infos[device.device_id]
        assert info.name == device.name
        capabilities = set(info.components["main"])
        assert EXPECTED[device.role] <= capabilities, (device.name, capabilities)
    rooms = {d.room for d in house.devices}
    assert {"hall", "living_room", "kitchen", "bedroom", "bathroom"} <= rooms
    # every room the resident lives in has a motion sensor; the TRV shares its room with a window contact
    for room in ("hall", "living_room", "kitchen", "bedroom", "bathroom"):
        assert house.find("motion", room), room
    trv_room = house.find("thermostat")[0].room
    assert house.find("window", trv_room)


def test_areas_and_tags_name_the_devices_by_id() -> None:
    house = demo_house()
    areas, tags = house.areas(), house.tags()
    assert len(areas) == len(house.devices)
    assert tags[house.device("Front door").device_id] == ["entrance"]
    assert tags[house.device("Fridge").device_id] == ["always_on"]
    assert tags[house.device("Panic button").device_id] == ["panic"]
    assert "deferrable" in tags[house.device("Washing machine").device_id]
    outdoor = [d for d in house.devices if "outdoor" in d.tags]
    assert len(outdoor) == 1 and outdoor[0].is_ble
    assert all(device_id.startswith(("zigbee2mqtt:0x", "ble:")) for device_id in areas)


def test_definitions_are_real_fixture_entries() -> None:
    fixture = json.loads((__import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "z2m"
                          / "bridge_devices.json").read_text())
    by_model = {e["definition"]["model"]: e for e in fixture if e.get("definition")}
    for kind, entry in DEFINITIONS.items():
        assert entry["definition"] == by_model[entry["definition"]["model"]]["definition"], kind


def test_scaled_house_has_unique_addresses_and_names_and_decodes() -> None:
    house = scaled_house(1000)
    assert len(house.devices) == 1000
    assert len({d.address for d in house.devices}) == 1000
    assert len({d.name for d in house.devices}) == 1000
    assert len(house.rooms) == 100 and len({d.room for d in house.devices}) == 100
    kinds = Counter(d.kind for d in house.devices)
    assert set(kinds) == set(DEFINITIONS) and kinds["light"] == 300
    _codec, infos = _decode_devices(house)
    assert len(infos) == 1000


def test_the_benchmark_stream_is_fixed_and_every_message_is_a_valid_state() -> None:
    house = scaled_house(50)
    codec, _ = _decode_devices(house)
    first = list(message_stream(house, 500, seed=3))
    assert first == list(message_stream(house, 500, seed=3))  # a fixed stream
    assert len(first) == 500 and len({topic for topic, _ in first}) == 50
    for topic, payload in first:
        decoded = codec.decode(topic, payload)
        assert decoded.problems == [], (topic, payload, decoded.problems)
        assert decoded.updates or decoded.events, topic


def _changes_per_message(codec: Zigbee2MqttCodec, stream: list[tuple[str, bytes]]) -> tuple[float, Counter[str]]:
    """Decoded values that differ from the device's previous message: on average, and per attribute."""
    last: dict[tuple[str, str, str, str], object] = {}
    changed: Counter[str] = Counter()
    for topic, payload in stream:
        for u in codec.decode(topic, payload).updates:
            key = (u.device_id, u.component, u.capability, u.attribute)
            if key in last and last[key] != u.value:
                changed[f"{u.capability}.{u.attribute}"] += 1
            last[key] = u.value
    return sum(changed.values()) / len(stream), changed


def test_the_house_stream_repeats_most_values_as_a_house_does() -> None:
    house = scaled_house(100)
    codec, _ = _decode_devices(house)
    stream = list(house_stream(house, 20_000, seed=1))
    assert stream == list(house_stream(house, 20_000, seed=1))  # a fixed stream
    assert {topic for topic, _ in stream} == {d.topic for d in house.zigbee}
    for topic, payload in stream[:2000]:
        decoded = codec.decode(topic, payload)
        assert decoded.problems == [], (topic, payload, decoded.problems)
        assert decoded.updates, topic  # a full report: battery, link quality, … even when nothing moved
    per_message, changed = _changes_per_message(codec, stream)
    stress, _ = _changes_per_message(codec, list(message_stream(house, 20_000, seed=1)))
    assert per_message < 2 < 3 < stress
    # what moves at every report does; what a person does, seldom but it happens
    contact_reports = 20_000 * 15 // 100
    assert 0 < changed["contact.open"] < contact_reports / 50
    assert changed["power_meter.watts"] > 20_000 * 30 // 100 * 0.9  # every plug's report, 30 % of devices
    assert 0 < changed["occupancy.occupied"] < 20_000 * 15 // 100 / 10
    assert 0 < changed["on_off.on"] < 20_000 * 30 // 100 / 50


def test_scaled_house_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        scaled_house(0)
