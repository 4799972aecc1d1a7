"""The BLE adapter (fed, no radio), the BLE-to-MQTT gateway adapter, and room presence across receivers.

Gateway payloads (tests/fixtures/ble/README.md names each source): OpenMQTTGateway issue #358 (a real
HHCCJCY01 MiBeacon frame through ``home/OpenMQTTGateway/BTtoMQTT/C47C8D661011``), OpenMQTTGateway issue
#1393 (Theengs-decoded fields of a pvvx-flashed LYWSD03MMC, and its raw 0x181a frame we do not decode).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.ble.adapter import BleAdapter, BleConfig
from adapters.ble.decoders import BTHOME_UUID, Advertisement
from adapters.ble.mqtt_gateway import BleMqttGatewayAdapter, parse_gateway_message
from adapters.ble.presence import PresenceTracker, Tag, parse_ibeacon
from gateway.bus import DeviceEvent
from gateway.clock import SimulatedClock
from gateway.hub import Hub
from tests.ble_mock.context import FakeMqtt, HubContext

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ble"
T0 = 1_705_302_000.0
SENSOR = "A4:C1:38:8D:18:B2"
TAG = "C0:FF:EE:00:00:01"


def bthome(t: float, data: bytes = b"\x40\x02\xca\x09\x03\xbf\x13", address: str = SENSOR, rssi: int = -60,
           name: str | None = "ATC_8D18B2") -> Advertisement:
    return Advertisement.create(address, rssi, name, {BTHOME_UUID: data}, {}, t)


def ibeacon_data(uuid: str, major: int, minor: int) -> dict[int, bytes]:
    import uuid as uuid_module

    body = b"\x02\x15" + uuid_module.UUID(uuid).bytes + major.to_bytes(2, "big") + minor.to_bytes(2, "big") + b"\xc5"
    return {0x004C: body}


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
def hub(clock: SimulatedClock) -> Hub:
    return Hub(clock)


async def start_ble(hub: Hub, **config: Any) -> tuple[BleAdapter, HubContext]:
    ctx = HubContext(hub, "ble", {"scanner": False, **config})
    adapter = BleAdapter()
    await adapter.start(ctx)
    return adapter, ctx


async def start_gateway(hub: Hub, mqtt: FakeMqtt, **config: Any) -> tuple[BleMqttGatewayAdapter, HubContext]:
    ctx = HubContext(hub, "ble_mqtt", config, mqtt)
    adapter = BleMqttGatewayAdapter()
    await adapter.start(ctx)
    return adapter, ctx


async def test_fed_bthome_sensor_becomes_a_device_with_connectivity(hub: Hub, clock: SimulatedClock) -> None:
    adapter, ctx = await start_ble(hub)
    adapter.feed(bthome(T0, rssi=-67))
    device = hub.devices["ble:a4:c1:38:8d:18:b2"]
    assert device.source == "ble" and device.name == "ATC_8D18B2"
    assert device.value("main", "temperature", "celsius") == 25.06
    assert device.value("main", "humidity", "percent") == 50.55
    assert device.value("main", "connectivity", "rssi_dbm") == -67
    assert device.value("main", "connectivity", "last_seen") == "2024-01-15T07:00:00.000Z"
    assert device.available is True
    # unknown advertisers (a phone's random frames) never become devices
    adapter.feed(Advertisement.create("11:22:33:44:55:66", -80, "Phone", {}, {0x0006: b"\x01\x09"}, T0))
    adapter.feed(Advertisement.create("11:22:33:44:55:67", -80, None, {"0000feaa-0000-1000-8000-00805f9b34fb":
                                                                      b"\x10\x00"}, {}, T0))
    assert sorted(hub.devices) == ["ble:a4:c1:38:8d:18:b2"]
    # corrupted frames are reported, never raised, and the next good one is taken
    adapter.feed(bthome(T0 + 1, b"\x40\x02\xca"))
    assert any("truncated" in problem for problem in ctx.bad_input)
    adapter.feed(bthome(T0 + 2, b"\x40\x02\x2c\x01"))
    assert device.value("main", "temperature", "celsius") == 3.0
    await adapter.stop()


async def test_availability_from_silence_on_the_gateway_clock(hub: Hub, clock: SimulatedClock) -> None:
    adapter, _ = await start_ble(hub, expected_interval_s=120, device_intervals={"A4:C1:38:8D:18:B3": 1000})
    adapter.feed(bthome(T0))
    adapter.feed(bthome(T0, address="A4:C1:38:8D:18:B3"))
    adapter.feed(bthome(T0, b"\x44\x3a\x01", address="3C:2E:F5:AA:BB:CC", name="SBBT-002C"))  # trigger-based
    clock.advance_to(T0 + 100)
    assert hub.devices["ble:a4:c1:38:8d:18:b2"].available is True
    clock.advance_to(T0 + 200)
    sensor = hub.devices["ble:a4:c1:38:8d:18:b2"]
    assert sensor.available is False and sensor.value("main", "connectivity", "online") is False
    assert hub.devices["ble:a4:c1:38:8d:18:b3"].available is True  # its own, longer interval
    assert hub.devices["ble:3c:2e:f5:aa:bb:cc"].available is True  # buttons only talk when pressed
    adapter.feed(bthome(T0 + 201, b"\x40\x02\x2c\x01"))
    assert sensor.available is True and sensor.value("main", "connectivity", "online") is True
    clock.advance_to(T0 + 1300)
    assert hub.devices["ble:a4:c1:38:8d:18:b3"].available is False
    await adapter.stop()


def test_config_is_strict() -> None:
    with pytest.raises(ValueError):
        BleConfig.model_validate({"scaning_mode": "passive"})
    with pytest.raises(ValueError):
        BleConfig.model_validate({"keys": {"A4:C1:38:8D:18:B2": "1234"}})
    with pytest.raises(ValueError):
        BleConfig.model_validate({"tags": [{"name": "x", "mac": TAG, "uuid": "e2c56db5-dffb-48d2-b060-d0f5a71096e0"}]})
    config = BleConfig.model_validate({"keys": {"a4c1388d18b2": "231D39C1D7CC1AB1AEE224CD096DB932"}})
    assert config.keys == {"a4:c1:38:8d:18:b2": "231d39c1d7cc1ab1aee224cd096db932"}


# --------------------------------------------------------------------------------------- presence


def test_presence_moves_once_with_hysteresis_and_goes_away() -> None:
    tag = Tag("Grandma", mac="c0:ff:ee:00:00:01")
    tracker = PresenceTracker([tag], away_after_s=300, hysteresis_db=6)
    t = T0
    areas: list[Any] = []

    def hear(receiver: str, area: str, rssi: int) -> None:
        for update in tracker.observe(tag, receiver, area, rssi, t):
            if update.attribute == "area":
                areas.append(update.value)

    for _ in range(5):  # in the kitchen
        t += 2
        hear("local", "kitchen", -55)
        hear("hall-gw", "hall", -75)
    # standing in the doorway: both receivers alike, the noise must not flap the area
    for i in range(20):
        t += 2
        hear("local", "kitchen", -66 + (3 if i % 2 else -3))
        hear("hall-gw", "hall", -65 + (-3 if i % 2 else 3))
    # walked into the hall
    for _ in range(10):
        t += 2
        hear("local", "kitchen", -85)
        hear("hall-gw", "hall", -52)
    assert areas == ["kitchen", "hall"]
    assert tracker.expire(t + 299) == []
    gone = tracker.expire(t + 300)
    assert [(u.attribute, u.value) for u in gone] == [("present", False), ("area", None)]


def test_ibeacon_tags_match_uuid_major_minor() -> None:
    uuid = "e2c56db5-dffb-48d2-b060-d0f5a71096e0"
    assert parse_ibeacon(ibeacon_data(uuid, 104, 7)) == (uuid, 104, 7)
    phone = Tag("Phone", ibeacon=(uuid, 104, None))
    tracker = PresenceTracker([phone], away_after_s=60)
    assert tracker.match("66:55:44:33:22:11", ibeacon_data(uuid, 104, 9)) is phone
    assert tracker.match("66:55:44:33:22:11", ibeacon_data(uuid, 105, 9)) is None
    assert phone.device_id == "ble:ibeacon:e2c56db5dffb48d2b060d0f5a71096e0:104"


async def test_tag_between_local_scanner_and_a_gateway(hub: Hub, clock: SimulatedClock) -> None:
    mqtt = FakeMqtt()
    ble, _ = await start_ble(hub, area="kitchen", away_after_s=120, tags=[{"name": "Grandma", "mac": TAG}])
    gateway, gctx = await start_gateway(hub, mqtt, receivers={"hall-gw": "hall"})
    device = hub.devices["ble:c0:ff:ee:00:00:01"]
    assert device.available is True and device.value("main", "presence", "present") is None
    t = T0
    for _ in range(4):
        t += 5
        clock.advance_to(t)
        ble.feed(Advertisement.create(TAG, -50, None, {}, {}, t))
        mqtt.deliver("home/hall-gw/BTtoMQTT/C0FFEE000001", {"id": TAG, "rssi": -80})
    assert device.value("main", "presence", "present") is True
    assert device.value("main", "presence", "area") == "kitchen"
    for _ in range(8):
        t += 5
        clock.advance_to(t)
        ble.feed(Advertisement.create(TAG, -88, None, {}, {}, t))
        mqtt.deliver("home/hall-gw/BTtoMQTT/C0FFEE000001", {"id": TAG, "rssi": -58})
    assert device.value("main", "presence", "area") == "hall"
    assert gateway.devices is not None and gateway.devices.rssi_by_receiver == {}  # a tag is not a sensor
    clock.advance_to(t + 121)
    assert device.value("main", "presence", "present") is False
    assert device.value("main", "presence", "area") is None
    assert gctx.bad_input == []
    await gateway.stop()
    await ble.stop()


# -------------------------------------------------------------------------------- MQTT gateways


async def test_gateway_payloads_go_through_the_same_decoders(hub: Hub) -> None:
    mqtt = FakeMqtt()
    _, ctx = await start_gateway(hub, mqtt, receivers={"OpenMQTTGateway": "garden"})
    for line in (FIXTURES / "gateways.jsonl").read_text().splitlines():
        message = json.loads(line)
        mqtt.deliver(message["topic"], message["payload"])
    plant = hub.devices["ble:c4:7c:8d:66:10:11"]
    assert (plant.manufacturer, plant.model, plant.name) == ("Xiaomi", "HHCCJCY01", "Flower care")
    assert plant.value("main", "illuminance", "lux") == 253
    assert plant.value("main", "connectivity", "rssi_dbm") == -82
    # the gateway's own {"lux":"253"} message for the same device adds nothing contradictory
    # pvvx's custom format read raw (line 4: 19.23 °C, 48.36 %, 2.959 V), then the Theengs-decoded fields of a
    # later message (line 5) of the same thermometer
    thermo = hub.devices["ble:a4:c1:38:52:8f:62"]
    assert (thermo.manufacturer, thermo.model, thermo.name) == ("pvvx/ATC", "Thermometer (custom firmware)",
                                                                "MHO_SAL")
    assert thermo.value("main", "temperature", "celsius") == 19.58
    assert thermo.value("main", "humidity", "percent") == 47.84
    assert thermo.value("main", "battery", "percent") == 100
    assert thermo.value("main", "battery", "volts") == 2.961
    assert "contact" not in thermo.support["main"]  # its reed-switch bit is set, and no switch was ever seen
    bthome_dev = hub.devices["ble:a4:c1:38:8d:18:b2"]  # BTHome through Theengs' raw servicedata
    assert bthome_dev.value("main", "temperature", "celsius") == 25.06
    assert "ble:69:d9:a1:be:3f:43" not in hub.devices  # undecodable advertiser: not a device
    assert ctx.bad_input == []
    mqtt.deliver("home/OpenMQTTGateway/BTtoMQTT/C47C8D661011", b"{not json")
    mqtt.deliver("home/OpenMQTTGateway/BTtoMQTT/C47C8D661011", {"id": "C4:7C:8D:66:10:11", "servicedata": "zz",
                                                                "servicedatauuid": "fe95"})
    assert len(ctx.bad_input) == 2


async def test_theengs_decoded_door_motion_and_button_fields(hub: Hub) -> None:
    # Theengs Gateway publishes decoded fields without the raw service data by default (shapes of
    # theengs/decoder tests/BLE/test_ble.cpp, Shelly BLU Door/Window and Button1): the door's `open` and the
    # button's `press` are what the user cares about.
    mqtt = FakeMqtt()
    events: list[Any] = []
    hub.bus.subscribe(DeviceEvent, events.append)
    _, ctx = await start_gateway(hub, mqtt)
    door = {"name": "SBDW-002C", "id": "3C:2E:F5:AA:BB:C1", "rssi": -70, "brand": "Shelly",
            "model": "ShellyBLU Door/Window", "model_id": "SBDW-002C", "type": "CTMO", "acts": True, "cont": True,
            "packet": 93, "batt": 100, "lux": 87, "open": True, "rot": 40.6}
    mqtt.deliver("home/TheengsGateway/BTtoMQTT/3C2EF5AABBC1", door)
    assert hub.devices["ble:3c:2e:f5:aa:bb:c1"].value("main", "contact", "open") is True
    mqtt.deliver("home/TheengsGateway/BTtoMQTT/3C2EF5AABBC1", {**door, "packet": 94, "open": False})
    assert hub.devices["ble:3c:2e:f5:aa:bb:c1"].value("main", "contact", "open") is False
    button = {"name": "SBBT-002C", "id": "BC:02:6E:AA:BB:C2", "rssi": -70, "brand": "Shelly",
              "model": "ShellyBLU Button1", "model_id": "SBBT-002C", "type": "BTN", "packet": 29, "batt": 100}
    mqtt.deliver("home/TheengsGateway/BTtoMQTT/BC026EAABBC2", {**button, "press": 1})
    mqtt.deliver("home/TheengsGateway/BTtoMQTT/BC026EAABBC2", {**button, "packet": 30, "press": 254})
    presses = [(e.device_id, e.data.get("kind")) for e in events if e.event == "pressed"]
    assert presses == [("ble:bc:02:6e:aa:bb:c2", "single"), ("ble:bc:02:6e:aa:bb:c2", "hold")]
    assert hub.devices["ble:bc:02:6e:aa:bb:c2"].value("main", "button", "last_event") == "hold"
    assert ctx.bad_input == []
    mqtt.deliver("home/TheengsGateway/BTtoMQTT/BC026EAABBC2", {**button, "packet": 31, "press": 77, "open": "yes"})
    assert len(ctx.bad_input) == 2


def test_gateway_message_parsing() -> None:
    gw, adv, _ = parse_gateway_message(
        "home/TheengsGateway/BTtoMQTT/A4C1388D18B2",
        b'{"id":"A4:C1:38:8D:18:B2","rssi":-70,"servicedatauuid":"0xfcd2","servicedata":"4002ca09",'
        b'"manufacturerdata":"4c000215"}', T0)
    assert gw == "TheengsGateway" and adv is not None
    assert adv.service_data == {BTHOME_UUID: bytes.fromhex("4002ca09")}
    assert adv.manufacturer_data == {0x004C: b"\x02\x15"}
    with pytest.raises(ValueError):
        parse_gateway_message("home/x/BTtoMQTT/zz", b'{"rssi": -1}', T0)


async def test_one_device_and_one_press_whichever_receivers_heard_it(hub: Hub, clock: SimulatedClock) -> None:
    mqtt = FakeMqtt()
    ble, bctx = await start_ble(hub)
    _, gctx = await start_gateway(hub, mqtt, receivers={"hall-gw": "hall"})
    presses: list[DeviceEvent] = []
    hub.bus.subscribe(DeviceEvent, presses.append)
    frame = b"\x44\x00\x2a\x01\x5a\x3a\x02"  # packet 42, battery 90 %, double press
    ble.feed(bthome(T0, frame, address="3C:2E:F5:AA:BB:CC", name="SBBT-002C"))
    for gw in ("hall-gw", "attic-gw"):
        mqtt.deliver(f"home/{gw}/BTtoMQTT/3C2EF5AABBCC",
                     {"id": "3C:2E:F5:AA:BB:CC", "rssi": -71, "name": "SBBT-002C", "servicedatauuid": "0xfcd2",
                      "servicedata": frame.hex()})
    assert [d for d in hub.devices if d.startswith("ble:3c")] == ["ble:3c:2e:f5:aa:bb:cc"]
    assert [(e.data.get("kind"), e.data.get("button")) for e in presses] == [("double", 1)]
    button = hub.devices["ble:3c:2e:f5:aa:bb:cc"]
    assert (button.manufacturer, button.model) == ("Shelly", "BLU Button")
    assert button.value("main", "battery", "percent") == 90
    devices = ble.devices
    assert devices is not None
    assert set(devices.rssi_by_receiver) == {"local"}
    assert gctx.bad_input == bctx.bad_input == []


async def test_on_a_simulated_clock_the_adapter_never_touches_a_radio(hub: Hub) -> None:
    # `hearth replay` runs adapters on a SimulatedClock with the user's config (scanner defaults to true).
    ctx = HubContext(hub, "ble", {})
    adapter = BleAdapter()
    await adapter.start(ctx)
    assert ctx.tasks == [] and adapter.scanner_state == "off"
    adapter.feed(bthome(T0))
    assert hub.devices["ble:a4:c1:38:8d:18:b2"].value("main", "temperature", "celsius") == 25.06
    await adapter.stop()


async def test_gateway_capture_through_hearth_replay(tmp_path: Path) -> None:
    from gateway.replay import replay

    capture = tmp_path / "capture.jsonl"
    lines = [json.loads(line) for line in (FIXTURES / "gateways.jsonl").read_text().splitlines()]
    capture.write_text("\n".join(json.dumps({"t": T0 + i, "source": "mqtt", **line}) for i, line in enumerate(lines)))
    result = (await replay(capture)).as_dict()
    by_id = {d["id"]: d for d in result["devices"]}
    assert by_id["ble:c4:7c:8d:66:10:11"]["components"]["main"]["illuminance"] == {"lux": 253}
    assert by_id["ble:a4:c1:38:52:8f:62"]["components"]["main"]["temperature"] == {"celsius": 19.58}
    assert by_id["ble:a4:c1:38:8d:18:b2"]["source"] == "ble"
    assert [e for e in result["errors"] if e["source"] in ("ble", "ble_mqtt")] == []
