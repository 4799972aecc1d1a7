"""BLE objects that used to be notes and now have a capability: each one, from a public vector, into the hub.

Vectors (tests/fixtures/ble/README.md names each source and commit):
- MiBeacon 0x1008 soil moisture, 0x1010 formaldehyde, 0x1013 consumable: ``xiaomi_ble_vectors.jsonl``
  (``Bluetooth-Devices/xiaomi-ble`` ``tests/test_parser.py`` at 509f516e), with the value that test expects;
- BTHome 0x13 TVOC and 0x14 moisture: ``bthome_ble_vectors.jsonl`` (``Bluetooth-Devices/bthome-ble``
  ``tests/test_parser_v2.py`` at d55bd3a), likewise;
- BTHome 0x2F moisture and 0x1C gas: bthome-ble has no test for them; the examples of the format's object table
  (``home-assistant/bthome.io`` ``src/format.html`` at 0cf388b: ``2F23`` is 35 %, ``1C01`` is "detected").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.ble.adapter import BleAdapter
from adapters.ble.decoders import (
    BTHOME_UUID,
    MIBEACON_UUID,
    Advertisement,
    DecoderState,
    KeyRing,
    decode_advertisement,
    normalize_mac,
)
from adapters.ble.mqtt_gateway import BleMqttGatewayAdapter
from gateway.clock import SimulatedClock
from gateway.hub import Hub
from gateway.sdk import capability
from tests.ble_mock.context import FakeMqtt, HubContext

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ble"
T0 = 1_705_302_000.0


def _vectors(name: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for line in (FIXTURES / name).read_text().splitlines()[1:]:
        row = json.loads(line)
        out.setdefault(row["test"], []).append(row)
    return out


XIAOMI = _vectors("xiaomi_ble_vectors.jsonl")
BTHOME = _vectors("bthome_ble_vectors.jsonl")


def xiaomi(test: str, n: int = 0) -> Advertisement:
    row = XIAOMI[test][n]
    return Advertisement.create(row["address"], -60, row["name"], {MIBEACON_UUID: bytes.fromhex(row["data"])}, {}, T0)


def bthome(test: str) -> Advertisement:
    row = BTHOME[test][0]
    return Advertisement.create(row["address"], -60, row["name"], {BTHOME_UUID: bytes.fromhex(row["data"])}, {}, T0)


def bthome_format_example(objects: str) -> Advertisement:
    """An example of the format's object table, as a plain BTHome v2 packet (device info 0x40)."""
    return Advertisement.create("A4:C1:38:8D:18:B2", -60, None, {BTHOME_UUID: bytes.fromhex("40" + objects)}, {}, T0)


# (what, advertisement, capability, attribute, the value (the reference parser's, in our unit), our unit, and how
# many objects of the advertisement are still not used)
CASES: list[tuple[str, Advertisement, str, str, Any, str, int]] = [
    # xiaomi-ble test_Xiaomi_HHCCJCY01_all_values #3: obj1008 moisture 64 %
    ("mibeacon 0x1008 HHCCJCY01", xiaomi("test_Xiaomi_HHCCJCY01_all_values", 2), "soil_moisture", "percent", 64, "%",
     0),
    # xiaomi-ble test_Xiaomi_HHCCPOT002: obj1008 moisture 64 % (and obj1009 conductivity, still a note)
    ("mibeacon 0x1008 HHCCPOT002", xiaomi("test_Xiaomi_HHCCPOT002"), "soil_moisture", "percent", 64, "%", 1),
    # xiaomi-ble test_Xiaomi_JQJCY01YM1: obj1010 formaldehyde 1.25 mg/m³ = 1250 µg/m³
    ("mibeacon 0x1010 JQJCY01YM", xiaomi("test_Xiaomi_JQJCY01YM1"), "air_quality", "hcho_ugm3", 1250, "µg/m³", 0),
    # xiaomi-ble test_Xiaomi_WX08ZM: obj1013 consumable (the repellent's tablet) 90 %
    ("mibeacon 0x1013 WX08ZM", xiaomi("test_Xiaomi_WX08ZM"), "filter", "life_percent", 90, "%", 0),
    # bthome-ble test_bthome_moisture (a b-parasite): 0x14 moisture 30.74 %
    ("bthome 0x14", bthome("test_bthome_moisture"), "soil_moisture", "percent", 30.74, "%", 0),
    # bthome.io: 0x2F moisture, uint8, example 2F23 = 35 %
    ("bthome 0x2f", bthome_format_example("2f23"), "soil_moisture", "percent", 35, "%", 0),
    # bthome-ble test_bthome_voc: 0x13 TVOC 307 µg/m³ (a mass concentration: not voc_ppb)
    ("bthome 0x13", bthome("test_bthome_voc"), "air_quality", "voc_ugm3", 307, "µg/m³", 0),
    # bthome.io: 0x1C gas, example 1C01 = detected
    ("bthome 0x1c", bthome_format_example("1c01"), "gas", "detected", True, "", 0),
]


@pytest.fixture
def hub() -> Hub:
    return Hub(SimulatedClock(T0))


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
async def test_the_reading_reaches_the_hub_with_its_value_and_unit(
        case: tuple[str, Advertisement, str, str, Any, str, int], hub: Hub) -> None:
    _, advertisement, cap, attr, expected, unit, not_used = case
    ctx = HubContext(hub, "ble", {"scanner": False})
    adapter = BleAdapter()
    await adapter.start(ctx)
    adapter.feed(advertisement)
    device = hub.devices[f"ble:{normalize_mac(advertisement.address)}"]
    value = device.value("main", cap, attr)
    assert value == expected and type(value) is type(expected)
    assert attr in device.support["main"][cap].attributes
    assert (capability(cap).attributes[attr].unit or "") == unit
    assert ctx.bad_input == []
    assert adapter.stats()["dropped"]["by_reason"] == ({"not_used": not_used} if not_used else {})
    await adapter.stop()


async def test_the_names_the_reference_parsers_give(hub: Hub) -> None:
    ctx = HubContext(hub, "ble", {"scanner": False})
    adapter = BleAdapter()
    await adapter.start(ctx)
    for advertisement in (bthome("test_bthome_moisture"), xiaomi("test_Xiaomi_JQJCY01YM1"),
                          xiaomi("test_Xiaomi_WX08ZM")):
        adapter.feed(advertisement)
    models = {(d.manufacturer, d.model) for d in hub.devices.values()}
    assert models == {("b-parasite", "Plant sensor"), ("Xiaomi", "JQJCY01YM"), ("Xiaomi", "WX08ZM")}
    await adapter.stop()


async def test_a_gas_sensor_clears_and_a_bthome_gas_meter_stays_a_note(hub: Hub) -> None:
    ctx = HubContext(hub, "ble", {"scanner": False})
    adapter = BleAdapter()
    await adapter.start(ctx)
    adapter.feed(bthome_format_example("1c01"))
    device = hub.devices["ble:a4:c1:38:8d:18:b2"]
    assert device.value("main", "gas", "detected") is True
    adapter.feed(Advertisement.create("A4:C1:38:8D:18:B2", -60, None, {BTHOME_UUID: bytes.fromhex("401c00")}, {},
                                      T0 + 10))
    assert device.value("main", "gas", "detected") is False
    assert ctx.bad_input == [] and adapter.stats()["dropped"]["by_reason"] == {}
    await adapter.stop()
    # bthome-ble test_bthome_gas: 0x4B is a gas meter's volume (m³), not a detector's reading
    meter = decode_advertisement(bthome("test_bthome_gas"), KeyRing(), DecoderState())
    assert meter.updates == [] and [d.reason.value for d in meter.drops] == ["not_used"]
    assert "0x4b gas m³" in meter.notes[0]


async def test_through_a_ble_to_mqtt_gateway_too(hub: Hub) -> None:
    # The same formaldehyde frame as OpenMQTTGateway publishes a raw advertisement (servicedata + its UUID)
    row = XIAOMI["test_Xiaomi_JQJCY01YM1"][0]
    mqtt = FakeMqtt()
    ctx = HubContext(hub, "ble_mqtt", {}, mqtt)
    adapter = BleMqttGatewayAdapter()
    await adapter.start(ctx)
    mqtt.deliver("home/OpenMQTTGateway/BTtoMQTT/C47C8D0002DF",
                 {"id": row["address"], "rssi": -71, "servicedatauuid": "0xfe95", "servicedata": row["data"]})
    device = hub.devices[f"ble:{normalize_mac(row['address'])}"]
    assert device.value("main", "air_quality", "hcho_ugm3") == 1250
    assert ctx.bad_input == [] and adapter.stats()["dropped"]["by_reason"] == {}
    await adapter.stop()
