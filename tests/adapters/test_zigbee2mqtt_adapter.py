"""The Zigbee2MQTT adapter shell, with an in-memory MQTT client and a context backed by the real hub."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from adapters.zigbee2mqtt.adapter import STORAGE_KEY, Zigbee2MqttAdapter, Zigbee2MqttConfig
from gateway.bus import DeviceEvent
from gateway.clock import SimulatedClock
from gateway.hub import Hub
from gateway.sdk import (
    Adapter,
    AdapterContext,
    Command,
    Device,
    DeviceEventUpdate,
    DeviceInfo,
    MessageCallback,
    MqttClient,
    Unsubscribe,
    Update,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "z2m"
BRIDGE_DEVICES = (FIXTURES / "bridge_devices.json").read_bytes()
TRV = "zigbee2mqtt:0x0016e9fffe0a1b2c"
DOOR = "zigbee2mqtt:0x00158d000122fcd1"
LIGHT = "zigbee2mqtt:0x00158d0002b7d6be"


class FakeMqtt:
    """Just enough of the gateway's MQTT session: '#'-suffixed filters, published messages recorded."""

    def __init__(self) -> None:
        self.subscriptions: list[tuple[str, MessageCallback]] = []
        self.published: list[tuple[str, bytes]] = []

    @property
    def connected(self) -> bool:
        return True

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0) -> Unsubscribe:
        entry = (topic_filter, callback)
        self.subscriptions.append(entry)
        return lambda: self.subscriptions.remove(entry)

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self.published.append((topic, payload.encode() if isinstance(payload, str) else payload))

    def deliver(self, topic: str, payload: bytes | str | Any, retain: bool = False) -> None:
        body = payload if isinstance(payload, bytes) else (
            payload.encode() if isinstance(payload, str) else orjson.dumps(payload))
        for topic_filter, callback in list(self.subscriptions):
            if topic_filter.endswith("/#") and topic.startswith(topic_filter[:-1]):
                callback(topic, body, retain)


class MemoryStorage:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.data[key])) if key in self.data else default

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))  # must be JSON, like the real store

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterable[tuple[str, Any]]:
        return list(self.data.items())


class HubContext:
    """An AdapterContext over a real Hub, recording what the adapter reported as bad input."""

    def __init__(self, hub: Hub, mqtt: FakeMqtt, storage: MemoryStorage | None = None,
                 config: dict[str, Any] | None = None) -> None:
        self.name = "zigbee2mqtt"
        self.config = config if config is not None else {"enabled": True, "base_topic": "zigbee2mqtt"}
        self.log = logging.getLogger("test.zigbee2mqtt")
        self.clock = hub.clock
        self.mqtt: MqttClient | None = mqtt
        self.storage = storage or MemoryStorage()
        self.hub = hub
        self.bad_input: list[str] = []

    def upsert_device(self, info: DeviceInfo) -> Device:
        return self.hub.upsert_device(info, self.name)

    def remove_device(self, device_id: str) -> None:
        self.hub.remove_device(device_id)

    def push(self, updates: Iterable[Update]) -> None:
        self.hub.apply(updates)

    def push_event(self, event: DeviceEventUpdate) -> None:
        self.hub.emit_event(event)

    def set_available(self, device_id: str, available: bool | None) -> None:
        self.hub.set_available(device_id, available)

    def report_bad_input(self, message: str) -> None:
        self.bad_input.append(message)
        self.hub.reject_input(self.name, message)

    def device(self, device_id: str) -> Device | None:
        return self.hub.devices.get(device_id)

    def devices(self) -> list[Device]:
        return [d for d in self.hub.devices.values() if d.adapter == self.name]

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str) -> Any:
        return asyncio.get_running_loop().create_task(coro, name=name)


@pytest.fixture
def hub() -> Hub:
    return Hub(SimulatedClock(1_705_302_000.0))


async def started(hub: Hub, mqtt: FakeMqtt, storage: MemoryStorage | None = None) -> tuple[Zigbee2MqttAdapter,
                                                                                          HubContext]:
    ctx = HubContext(hub, mqtt, storage)
    adapter = Zigbee2MqttAdapter()
    typed: AdapterContext = ctx  # the fake must satisfy the SDK protocol (checked by type checkers)
    await adapter.start(typed)
    hub.set_command_handler(ctx.name, adapter.execute)
    return adapter, ctx


async def test_devices_appear_state_flows_and_commands_are_published(hub: Hub) -> None:
    mqtt = FakeMqtt()
    adapter, ctx = await started(hub, mqtt)
    assert [f for f, _ in mqtt.subscriptions] == ["zigbee2mqtt/#"]

    mqtt.deliver("zigbee2mqtt/bridge/state", b'{"state":"online"}', retain=True)
    mqtt.deliver("zigbee2mqtt/bridge/devices", BRIDGE_DEVICES, retain=True)
    assert len(ctx.devices()) == 16
    trv = hub.devices[TRV]
    assert (trv.name, trv.manufacturer, trv.model) == ("bedroom/radiator", "Viessmann", "ZK03840")
    assert hub.devices[LIGHT].value("main", "color_temperature", "min_kelvin") == 2703

    mqtt.deliver("zigbee2mqtt/bedroom/radiator", {"local_temperature": 19.81, "occupied_heating_setpoint": 16.5,
                                                  "battery": 75, "linkquality": 39})
    assert trv.value("main", "thermostat", "current_celsius") == 19.81
    assert trv.value("main", "thermostat", "target_celsius") == 16.5
    mqtt.deliver("zigbee2mqtt/bedroom/radiator/availability", b'{"state":"online"}')
    assert trv.available is True

    # garbage is reported, and the next good message still works
    mqtt.deliver("zigbee2mqtt/bedroom/radiator", b"\xff\xfe not json")
    assert len(ctx.bad_input) == 1 and "'bedroom/radiator'" in ctx.bad_input[0]
    mqtt.deliver("zigbee2mqtt/bedroom/radiator", {"local_temperature": 20.25})
    assert trv.value("main", "thermostat", "current_celsius") == 20.25

    # a command goes to <name>/set; the hub confirms it from the reported state
    task = asyncio.create_task(hub.execute(Command(TRV, "main", "thermostat", "set_target", {"celsius": 21})))
    await asyncio.sleep(0)
    assert mqtt.published == [("zigbee2mqtt/bedroom/radiator/set", b'{"occupied_heating_setpoint":21}')]
    mqtt.deliver("zigbee2mqtt/bedroom/radiator/set", b'{"occupied_heating_setpoint":21}')  # our own echo
    mqtt.deliver("zigbee2mqtt/bedroom/radiator", {"occupied_heating_setpoint": 21})
    result = await asyncio.wait_for(task, 1)
    assert result.status == "confirmed"
    assert len(ctx.bad_input) == 1
    assert hub.counters["bad_input"] == 1

    await adapter.stop()
    assert mqtt.subscriptions == []
    await adapter.stop()  # twice is fine


async def test_the_whole_capture_is_accepted_by_the_hub(hub: Hub) -> None:
    mqtt = FakeMqtt()
    _, ctx = await started(hub, mqtt)
    events: list[DeviceEvent] = []
    hub.bus.subscribe(DeviceEvent, events.append)
    for line in (FIXTURES / "capture.jsonl").read_text().splitlines():
        message = json.loads(line)
        mqtt.deliver(message["topic"], message["payload"], message["retain"])
    assert ctx.bad_input == [] and hub.counters["bad_input"] == 0
    door = hub.devices[DOOR]
    assert door.value("main", "contact", "open") is True  # the last report was contact: false
    assert door.value("main", "battery", "volts") == pytest.approx(3.095)
    assert door.available is True  # legacy "online", kept across the bridge's offline/online
    assert hub.devices["zigbee2mqtt:0x00158d0002a71b33"].available is False  # the cube went offline
    assert [(e.device_id[-6:], e.data.get("kind")) for e in events] == [
        ("3e8db4", "single"), ("094a88", "hold"), ("a71b33", None)]
    assert hub.devices["zigbee2mqtt:0x5c0272fffec89ec2"].value("l1", "on_off", "on") is True


async def test_restored_devices_take_commands_before_bridge_devices(hub: Hub) -> None:
    storage = MemoryStorage()
    mqtt = FakeMqtt()
    adapter, _ = await started(hub, mqtt, storage)
    mqtt.deliver("zigbee2mqtt/bridge/devices", BRIDGE_DEVICES)
    assert STORAGE_KEY in storage.data
    await adapter.stop()

    # a restart: same hub state and storage, Zigbee2MQTT has not republished bridge/devices yet
    mqtt2 = FakeMqtt()
    adapter2, ctx2 = await started(hub, mqtt2, storage)
    result = await adapter2.execute(Command(LIGHT, "main", "level", "set", {"percent": 50}))
    assert result.status == "sent"
    assert mqtt2.published == [("zigbee2mqtt/Bedroom Desk Light/set", b'{"brightness":127}')]
    assert ctx2.bad_input == []


async def test_departed_devices_are_removed_and_renames_keep_the_id(hub: Hub) -> None:
    mqtt = FakeMqtt()
    _, ctx = await started(hub, mqtt)
    mqtt.deliver("zigbee2mqtt/bridge/devices", BRIDGE_DEVICES)
    entries = [e for e in json.loads(BRIDGE_DEVICES) if e["friendly_name"] != "Cube"]
    for entry in entries:
        if entry["friendly_name"] == "Door Sensor":
            entry["friendly_name"] = "hall/door"
    mqtt.deliver("zigbee2mqtt/bridge/devices", entries)
    assert "zigbee2mqtt:0x00158d0002a71b33" not in hub.devices
    assert hub.devices[DOOR].name == "hall/door"
    mqtt.deliver("zigbee2mqtt/hall/door", {"contact": False})
    assert hub.devices[DOOR].value("main", "contact", "open") is True
    assert ctx.bad_input == []


async def test_commands_the_device_cannot_take_are_rejected_not_sent(hub: Hub) -> None:
    mqtt = FakeMqtt()
    adapter, _ = await started(hub, mqtt)
    mqtt.deliver("zigbee2mqtt/bridge/devices", BRIDGE_DEVICES)
    result = await adapter.execute(Command(TRV, "main", "thermostat", "set_mode", {"mode": "cool"}))
    assert result.status == "rejected" and "cool" in result.message
    result = await adapter.execute(Command("zigbee2mqtt:0x0123456789abcdef", "main", "on_off", "on"))
    assert result.status == "rejected"
    assert mqtt.published == []


async def test_a_failing_context_never_escapes_the_callback(hub: Hub) -> None:
    mqtt = FakeMqtt()
    _, ctx = await started(hub, mqtt)
    mqtt.deliver("zigbee2mqtt/bridge/devices", BRIDGE_DEVICES)

    def broken(updates: Iterable[Update]) -> None:
        raise RuntimeError("store is on fire")

    ctx.push = broken  # type: ignore[method-assign]
    mqtt.deliver("zigbee2mqtt/Door Sensor", {"contact": True})  # must not raise
    assert any("store is on fire" in message for message in ctx.bad_input)


async def test_missing_mqtt_is_not_ready(hub: Hub) -> None:
    ctx = HubContext(hub, FakeMqtt())
    ctx.mqtt = None
    with pytest.raises(Exception, match="MQTT"):
        await Zigbee2MqttAdapter().start(ctx)


@pytest.mark.parametrize("base_topic", ["zigbee2mqtt/#", "z2m/+/x", "zigbee2mqtt/", "", "  "])
def test_config_rejects_unusable_base_topics(base_topic: str) -> None:
    with pytest.raises(ValidationError, match="base_topic"):
        Zigbee2MqttConfig.model_validate({"base_topic": base_topic})


def test_config_defaults_and_unknown_keys() -> None:
    assert Zigbee2MqttConfig.model_validate({}).model_dump() == {"enabled": True, "base_topic": "zigbee2mqtt"}
    assert Zigbee2MqttConfig.model_validate({"base_topic": "home/z2m"}).base_topic == "home/z2m"
    with pytest.raises(ValidationError, match="basetopic"):
        Zigbee2MqttConfig.model_validate({"basetopic": "x"})
    assert Zigbee2MqttAdapter.needs_mqtt is True
    assert isinstance(Zigbee2MqttAdapter(), Adapter)
    assert Zigbee2MqttAdapter.config_model is Zigbee2MqttConfig


async def test_custom_base_topic(hub: Hub) -> None:
    mqtt = FakeMqtt()
    ctx = HubContext(hub, mqtt, config={"enabled": True, "base_topic": "home/z2m"})
    adapter = Zigbee2MqttAdapter()
    await adapter.start(ctx)
    assert [f for f, _ in mqtt.subscriptions] == ["home/z2m/#"]
    mqtt.deliver("home/z2m/bridge/devices", BRIDGE_DEVICES)
    mqtt.deliver("home/z2m/Door Sensor", {"contact": True})
    assert hub.devices[DOOR].value("main", "contact", "open") is False
    await adapter.execute(Command(DOOR, "main", "contact", "open"))  # nothing to send: rejected, not raised
    assert mqtt.published == []
