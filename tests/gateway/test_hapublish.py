"""gateway.hapublish against a real Mosquitto: Hearth's devices published for Home Assistant.

Every retained config is checked against Home Assistant's documented schema for its platform
(test_hapublish_schema), and everything retained on the broker is fed to Hearth's own Home Assistant discovery
consumer (adapters.homeassistant.codec): the same devices, capabilities and current values must come out.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import jsonschema
import orjson
import pytest

from adapters.homeassistant.codec import HomeAssistantCodec
from gateway.bus import StateChanged
from gateway.clock import SystemClock
from gateway.config import Config, parse_config
from gateway.hapublish import (
    HaDiscoveryPublisher,
    PublishSettings,
    device_entities,
    device_slug,
    enter_ha_discovery,
)
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, Command, CommandResult, DeviceEventUpdate, DeviceInfo, Update
from tests.broker import Mosquitto
from tests.gateway.test_hapublish_schema import SCHEMAS, semantic_problems
from tests.gateway.test_mqtt import Observer, eventually, make_session

pytestmark = pytest.mark.mqtt

ADAPTER = "testkit"
STATUS = "hearth/status"


def S(attrs: tuple[str, ...] = (), cmds: tuple[str, ...] = (), **limits: tuple[float | None, float | None]
      ) -> CapabilitySupport:
    return CapabilitySupport(frozenset(attrs), frozenset(cmds), dict(limits))


# Representative devices: (info, adapter, values). The Zigbee2MQTT one is read by Home Assistant natively.
DEVICES: list[tuple[DeviceInfo, str, list[tuple[str, str, Any]]]] = [
    (DeviceInfo("shelly:shellyplugs-aabbccddeeff", "Kettle plug", "shelly", {"main": {
        "on_off": S(("on",), ("on", "off", "toggle")), "power_meter": S(("watts", "volts")),
        "energy_meter": S(("kwh",))}}, manufacturer="Shelly", model="Plug S", mac="AA:BB:CC:DD:EE:FF"),
     "mdns", [("on_off", "on", True), ("power_meter", "watts", 1830.5), ("power_meter", "volts", 231.2),
              ("energy_meter", "kwh", 412.25)]),
    (DeviceInfo("def:lamp-7", "Sofa lamp", "def", {"main": {
        "on_off": S(("on",), ("on", "off")), "level": S(("percent",), ("set",)),
        "color_temperature": S(("kelvin",), ("set",), kelvin=(2200, 6500)),
        "color": S(("hue", "saturation"), ("set",))}}, manufacturer="Acme", model="RGBW bulb"),
     "definitions", [("on_off", "on", True), ("level", "percent", 40), ("color_temperature", "kelvin", 2700),
                     ("color", "hue", 30), ("color", "saturation", 80)]),
    (DeviceInfo("def:trv-1", "Bedroom radiator", "def", {"main": {
        "thermostat": S(("current_celsius", "target_celsius", "mode", "running"), ("set_target", "set_mode"),
                        celsius=(5, 30)),
        "battery": S(("percent",))}}, manufacturer="Acme", model="TRV"),
     "definitions", [("thermostat", "current_celsius", 19.5), ("thermostat", "target_celsius", 21.0),
                     ("thermostat", "mode", "heat"), ("thermostat", "running", "heating"), ("battery", "percent", 87)]),
    (DeviceInfo("ble:a4c1380a0b0c", "Front door", "ble", {"main": {
        "contact": S(("open",)), "battery": S(("percent",))}}, manufacturer="Xiaomi", model="MCCGQ02HL"),
     "ble", [("contact", "open", False), ("battery", "percent", 64)]),
    (DeviceInfo("def:blind-2", "Living room blind", "def", {"main": {
        "cover": S(("position_percent", "motion"), ("open", "close", "stop", "set_position"))}}),
     "definitions", [("cover", "position_percent", 55), ("cover", "motion", "stopped")]),
    (DeviceInfo("ble:remote-1", "Hall remote", "ble", {"main": {"button": S(("last_event", "button"))}}),
     "ble", [("button", "last_event", "single"), ("button", "button", 1)]),
    (DeviceInfo("ble:a4c138010203", "Bathroom thermometer", "ble", {"main": {
        "temperature": S(("celsius",)), "humidity": S(("percent",)), "battery": S(("percent",)),
        "connectivity": S(("rssi_dbm",))}}, manufacturer="Xiaomi", model="LYWSD03MMC"),
     "ble", [("temperature", "celsius", 22.4), ("humidity", "percent", 58.0), ("battery", "percent", 91),
             ("connectivity", "rssi_dbm", -71)]),
    (DeviceInfo("zigbee2mqtt:0x00158d0001a2b3c4", "Zigbee plug", "zigbee2mqtt", {"main": {
        "on_off": S(("on",), ("on", "off"))}}),
     "zigbee2mqtt", [("on_off", "on", False)]),
]
NATIVE = "zigbee2mqtt:0x00158d0001a2b3c4"


class Recorder:
    """The adapter every test device belongs to: records commands and confirms them."""

    def __init__(self) -> None:
        self.commands: list[Command] = []

    async def __call__(self, command: Command) -> CommandResult:
        self.commands.append(command)
        return CommandResult("confirmed", "recorded")


def make_hub() -> tuple[Hub, Recorder]:
    hub = Hub(SystemClock())
    recorder = Recorder()
    for info, adapter, values in DEVICES:
        hub.upsert_device(info, adapter)
        hub.apply([Update(info.id, "main", cap, attr, value) for cap, attr, value in values])
        hub.set_available(info.id, True)
        hub.set_command_handler(adapter, recorder)
    return hub, recorder


def settings(**overrides: Any) -> PublishSettings:
    return PublishSettings(**{"status_topic": STATUS, "gateway_name": "test", **overrides})


class DictStorage:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


def retained(broker: Mosquitto, topic_filter: str = "#") -> dict[str, bytes]:
    """What a client subscribing now gets: every retained message (a fresh observer, so only retained ones)."""
    observer = Observer(broker, topic_filter)
    try:
        # The broker sends the retained set right after SUBACK: unchanged for 0.3 s, it is all there.
        last, stable = -1, 0
        for _ in range(100):
            count = len(observer.snapshot())
            stable = stable + 1 if count == last else 0
            if stable >= 6:
                break
            last = count
            time.sleep(0.05)
        return {topic: payload for topic, payload, _ in observer.snapshot() if payload}
    finally:
        observer.client.loop_stop()
        observer.client.disconnect()


async def settled(broker: Mosquitto) -> dict[str, bytes]:
    await asyncio.sleep(0.2)
    return await asyncio.to_thread(retained, broker)


def configs_of(messages: dict[str, bytes], prefix: str = "homeassistant") -> dict[str, dict[str, Any]]:
    return {t: orjson.loads(p) for t, p in messages.items() if t.startswith(prefix + "/") and t.endswith("/config")}


def validate(topic: str, config: dict[str, Any]) -> None:
    platform = topic.split("/")[1]
    assert platform in SCHEMAS, f"{topic}: platform {platform} has no schema here"
    page, schema = SCHEMAS[platform]
    try:
        jsonschema.validate(config, schema)
    except jsonschema.ValidationError as err:
        raise AssertionError(f"{topic} does not fit {page}: {err.message} at {list(err.absolute_path)}") from None
    problems = semantic_problems(platform, config)
    assert not problems, f"{topic} ({page}): {problems}"


def consume(messages: dict[str, bytes]) -> tuple[HomeAssistantCodec, dict[str, Any]]:
    """Feed every retained message to Hearth's own HA-discovery consumer: configs first (as they are retained
    before any state), then the rest. Returns the codec and {device id: {"info", "state", "available"}}."""
    codec = HomeAssistantCodec("homeassistant", skip_native=())
    seen: dict[str, Any] = {}
    problems: list[str] = []
    order = sorted(messages, key=lambda t: (not t.endswith("/config"), t))
    for topic in order:
        decoded = codec.decode(topic, messages[topic])
        problems += decoded.problems
        for info in decoded.upserts:
            seen.setdefault(info.id, {"state": {}, "available": None})["info"] = info
        for device_id in decoded.removals:
            seen.pop(device_id, None)
        for update in decoded.updates:
            seen[update.device_id]["state"][(update.component, update.capability, update.attribute)] = update.value
        for device_id, available in decoded.availability:
            seen[device_id]["available"] = available
    assert not problems, problems
    return codec, seen


@pytest.fixture
async def published(mosquitto: Mosquitto) -> Any:
    hub, recorder = make_hub()
    session = make_session(mosquitto.port, status_topic=STATUS)
    storage = DictStorage()
    async with session:
        assert await session.wait_connected(5)
        async with HaDiscoveryPublisher(hub, session, settings(), storage=storage) as publisher:
            yield hub, recorder, session, publisher, storage


async def test_every_config_fits_home_assistants_schema_for_its_platform(published: Any,
                                                                         mosquitto: Mosquitto) -> None:
    configs = configs_of(await settled(mosquitto))
    platforms = {topic.split("/")[1] for topic in configs}
    assert {"switch", "light", "sensor", "binary_sensor", "climate", "cover", "device_automation"} <= platforms
    for topic, config in configs.items():
        validate(topic, config)
        assert topic.split("/")[2].startswith("hearth_")
        if config["device"]["identifiers"] == ["hearth:gateway:test"]:
            assert config["state_topic"] == STATUS  # the gateway itself: shown offline, never unavailable
            continue
        identifier = config["device"]["identifiers"][0]
        assert identifier.startswith("hearth:")
        assert config["device"]["via_device"] == "hearth:gateway:test"
        if topic.split("/")[1] != "device_automation":
            assert topic.split("/")[2] == config["unique_id"]
            slug = device_slug(identifier.removeprefix("hearth:"))
            assert config["availability"] == [{"topic": STATUS}, {"topic": f"hearth/{slug}/availability"}]
            assert config["availability_mode"] == "all"
        assert config["origin"]["name"] == "Hearth"
    # The native Zigbee2MQTT device is left to Home Assistant's own reading of it.
    assert not [t for t in configs if device_slug(NATIVE) in t]


async def test_round_trip_through_hearths_own_consumer_gives_the_same_devices(published: Any,
                                                                              mosquitto: Mosquitto) -> None:
    hub = published[0]
    _codec, seen = consume(await settled(mosquitto))
    # The gateway's own entry (its connectivity) is how Home Assistant shows the gateway; a consumer (Hearth's,
    # here) takes it for what it is, not for a device.
    expected = {f"ha:hearth:{info.id}" for info, _, _ in DEVICES if info.id != NATIVE}
    assert set(seen) == expected
    for info, _adapter, _values in DEVICES:
        if info.id == NATIVE:
            continue
        device = hub.devices[info.id]
        got = seen[f"ha:hearth:{info.id}"]
        assert got["info"].name == device.name
        assert got["info"].manufacturer == device.manufacturer
        assert got["info"].model == device.model
        assert got["info"].via == "ha:hearth:gateway:test"
        # Device triggers have no availability of their own: a remote that only has presses has none.
        assert got["available"] is (None if info.id == "ble:remote-1" else True), info.id
        # The same capabilities on the same components, with the same attributes.
        assert set(got["info"].components) == set(device.support)
        for component, caps in device.support.items():
            assert set(got["info"].components[component]) == set(caps), info.id
            for cap, support in caps.items():
                back = got["info"].components[component][cap]
                # The announced colour temperature range comes back as the range's attributes too.
                extra = {"min_kelvin", "max_kelvin"} if cap == "color_temperature" else set()
                assert back.attributes - extra == support.attributes, (info.id, cap)
                # Home Assistant's switch and light have no toggle (its own toggle service sends ON or OFF).
                assert back.commands == support.commands - {"toggle"}, (info.id, cap)
                assert back.limits == support.limits, (info.id, cap)
        # The same current values. A light reports the colour of the mode it is in (Home Assistant's JSON light
        # has one colour mode at a time); at start, with both known, that is its colour temperature.
        want = {(comp, cap, attr): value for comp, caps in device.state.items() for cap, attrs in caps.items()
                for attr, value in attrs.items()}
        if info.id == "def:lamp-7":
            want.pop(("main", "color", "hue"))
            want.pop(("main", "color", "saturation"))
            want[("main", "color_temperature", "min_kelvin")] = 2200
            want[("main", "color_temperature", "max_kelvin")] = 6500
        if info.id == "ble:remote-1":
            want = {}  # a press is an event (a device trigger), not a state
        assert got["state"] == want, info.id
    assert any("a Hearth gateway's own entry" in why for why in _codec.skipped.values())


async def test_changes_are_published_once_per_device_per_loop_turn(published: Any, mosquitto: Mosquitto) -> None:
    hub, _recorder, _session, publisher, _ = published
    before = publisher.counters["states_published"]
    plug = "shelly:shellyplugs-aabbccddeeff"
    hub.apply([Update(plug, "main", "power_meter", "watts", 10.0)])
    hub.apply([Update(plug, "main", "power_meter", "watts", 11.0)])
    hub.apply([Update(plug, "main", "power_meter", "volts", 229.0)])
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert publisher.counters["states_published"] == before + 1
    messages = await settled(mosquitto)
    assert orjson.loads(messages[f"hearth/{device_slug(plug)}/main/power_meter"]) == {"watts": 11.0, "volts": 229.0}
    hub.set_available(plug, False)
    await asyncio.sleep(0.2)
    assert (await settled(mosquitto))[f"hearth/{device_slug(plug)}/availability"] == b"offline"


async def test_a_light_follows_the_colour_mode_changed_last(published: Any, mosquitto: Mosquitto) -> None:
    hub = published[0]
    hub.apply([Update("def:lamp-7", "main", "color", "hue", 120)])
    _codec, seen = consume(await settled(mosquitto))
    state = seen["ha:hearth:def:lamp-7"]["state"]
    assert (state[("main", "color", "hue")], state[("main", "color", "saturation")]) == (120, 80)
    assert ("main", "color_temperature", "kelvin") not in state
    hub.apply([Update("def:lamp-7", "main", "color_temperature", "kelvin", 3000)])
    _codec, seen = consume(await settled(mosquitto))
    state = seen["ha:hearth:def:lamp-7"]["state"]
    assert state[("main", "color_temperature", "kelvin")] == 3000
    assert ("main", "color", "hue") not in state


async def test_home_assistant_online_reannounces_every_config(published: Any, mosquitto: Mosquitto) -> None:
    _hub, _recorder, session, publisher, _ = published
    count = len(configs_of(await settled(mosquitto)))
    observer = await asyncio.to_thread(Observer, mosquitto, "homeassistant/+/+/config")
    try:
        await asyncio.sleep(0.3)
        retained_ones = len(observer.snapshot())
        assert retained_ones == count
        session.publish("homeassistant/status", b"online")
        await asyncio.sleep(0.1)  # heard in a read of its own
        session.publish("homeassistant/status", b"online")  # births close together are one re-announcement
        await eventually(lambda: len(observer.snapshot()) >= 2 * count, what="configs announced again")
        await asyncio.sleep(0.2)
        assert len(observer.snapshot()) == 2 * count
        assert publisher.counters["reannounced"] == 1
        session.publish("homeassistant/status", b"offline")
        await asyncio.sleep(0.2)
        assert publisher.counters["reannounced"] == 1
    finally:
        observer.client.loop_stop()
        observer.client.disconnect()


async def test_a_removed_device_is_cleared(published: Any, mosquitto: Mosquitto) -> None:
    hub, _recorder, _session, publisher, storage = published
    slug = device_slug("ble:a4c1380a0b0c")
    before = configs_of(await settled(mosquitto))
    assert [t for t in before if slug in t]
    assert [t for t in storage.data["published"] if slug in t]
    hub.remove_device("ble:a4c1380a0b0c")
    after_messages = await settled(mosquitto)
    assert not [t for t in after_messages if slug in t], "configs, states and availability all cleared"
    assert not [t for t in storage.data["published"] if slug in t]
    _codec, seen = consume(after_messages)
    assert "ha:hearth:ble:a4c1380a0b0c" not in seen and "ha:hearth:def:trv-1" in seen
    assert publisher.stats()["devices"] == len(DEVICES) - 2


async def test_a_new_press_is_announced_as_a_trigger_then_published(published: Any, mosquitto: Mosquitto) -> None:
    hub, _recorder, session, _publisher, _ = published
    slug = device_slug("ble:remote-1")
    codec, _seen = consume(await settled(mosquitto))
    pressed: list[tuple[str, bytes, bool]] = []
    session.subscribe(f"hearth/{slug}/main/button/action", lambda t, p, r: pressed.append((t, p, r)))
    await asyncio.sleep(0.2)
    hub.emit_event(DeviceEventUpdate("ble:remote-1", "main", "button", "pressed", {"button": 2, "kind": "double"}))
    await eventually(lambda: bool(pressed), what="the press")
    assert pressed[0][1] == b"button_2_double" and pressed[0][2] is False
    configs = configs_of(await settled(mosquitto))
    triggers = {t: c for t, c in configs.items() if t.startswith("homeassistant/device_automation/")}
    assert {(c["type"], c["subtype"]) for c in triggers.values()} >= {
        ("button_short_press", "button_1"), ("button_double_press", "button_2")}
    # Hearth's consumer reads the announced trigger back as the same press.
    for topic, config in triggers.items():
        codec.decode(topic, orjson.dumps(config))
    decoded = codec.decode(f"hearth/{slug}/main/button/action", b"button_2_double")
    assert [(e.capability, e.event, e.data.get("button"), e.data.get("kind")) for e in decoded.events] == [
        ("button", "pressed", 2, "double")]


async def test_commands_from_home_assistant_reach_the_hub(published: Any, mosquitto: Mosquitto) -> None:
    _hub, recorder, session, publisher, _ = published
    codec, _seen = consume(await settled(mosquitto))

    # What Hearth's own consumer would send to these entities (it speaks Home Assistant's payloads).
    sent = [
        Command("ha:hearth:shelly:shellyplugs-aabbccddeeff", "main", "on_off", "off"),
        Command("ha:hearth:def:lamp-7", "main", "level", "set", {"percent": 25}),
        Command("ha:hearth:def:lamp-7", "main", "color_temperature", "set", {"kelvin": 4000}),
        Command("ha:hearth:def:trv-1", "main", "thermostat", "set_target", {"celsius": 22.5}),
        Command("ha:hearth:def:trv-1", "main", "thermostat", "set_mode", {"mode": "off"}),
        Command("ha:hearth:def:blind-2", "main", "cover", "set_position", {"percent": 30}),
        Command("ha:hearth:def:blind-2", "main", "cover", "stop"),
    ]
    for command in sent:
        topic, payload, retain = codec.encode(command)
        assert not retain
        session.publish(topic, payload, qos=1)
    await eventually(lambda: len(recorder.commands) >= len(sent), what="the commands")
    got = [(c.device_id, c.capability, c.command, c.args) for c in recorder.commands]
    assert got == [(c.device_id.removeprefix("ha:hearth:"), c.capability, c.command, c.args) for c in sent]
    assert all(c.source == "homeassistant" for c in recorder.commands)
    assert publisher.counters["commands_confirmed"] == len(sent)


async def test_a_malformed_command_is_rejected_and_counted(published: Any, mosquitto: Mosquitto) -> None:
    _hub, recorder, session, publisher, _ = published
    plug = f"hearth/{device_slug('shelly:shellyplugs-aabbccddeeff')}/main"
    lamp = f"hearth/{device_slug('def:lamp-7')}/main"
    trv = f"hearth/{device_slug('def:trv-1')}/main"
    bad = [
        (f"{plug}/on_off/set", b"MAYBE"),
        (f"{lamp}/light/set", b"{not json"),
        (f"{lamp}/light/set", b'{"state": "ON", "brightness": 400}'),
        (f"{lamp}/light/set", b'[1, 2]'),
        (f"{trv}/thermostat_target/set", b"warm"),
        (f"{trv}/thermostat_target/set", b"nan"),
        (f"{trv}/thermostat_target/set", b"99"),  # the model takes it, this device's limit (5-30 C) does not
        (f"{trv}/thermostat_mode/set", b"party"),
        (f"{plug}/on_off/set", b"\xff\xfe"),
    ]
    for topic, payload in bad:
        session.publish(topic, payload, qos=1)
    session.publish(f"{plug}/on_off/set", b"ON", qos=1)  # and the session still works
    await eventually(lambda: len(recorder.commands) == 1, what="the good command")
    await eventually(lambda: publisher.counters["commands_rejected"] == len(bad), what="rejections")
    assert recorder.commands[0].command == "on"


async def test_a_retained_command_is_never_carried_out(mosquitto: Mosquitto) -> None:
    hub, recorder = make_hub()
    topic = f"hearth/{device_slug('shelly:shellyplugs-aabbccddeeff')}/main/on_off/set"
    async with make_session(mosquitto.port, status_topic=STATUS) as session:
        assert await session.wait_connected(5)
        # Somebody published a command with retain: it would switch the plug at every start of the gateway.
        session.publish(topic, b"OFF", qos=1, retain=True)
        await asyncio.sleep(0.1)
        async with HaDiscoveryPublisher(hub, session, settings()) as publisher:
            await eventually(lambda: publisher.counters["commands_rejected"] == 1, what="the retained command")
            assert recorder.commands == []
        session.publish(topic, b"", qos=1, retain=True)


async def test_native_devices_are_published_with_devices_all(mosquitto: Mosquitto) -> None:
    hub, _ = make_hub()
    async with make_session(mosquitto.port, status_topic=STATUS) as session:
        assert await session.wait_connected(5)
        async with HaDiscoveryPublisher(hub, session, settings(devices="all")):
            configs = configs_of(await settled(mosquitto))
    assert [t for t in configs if device_slug(NATIVE) in t]


async def test_disabled_subscribes_nothing_and_clears_what_was_announced(mosquitto: Mosquitto) -> None:
    hub, _ = make_hub()
    storage = DictStorage()
    async with make_session(mosquitto.port, status_topic=STATUS) as session:
        assert await session.wait_connected(5)
        async with HaDiscoveryPublisher(hub, session, settings(), storage=storage):
            assert configs_of(await settled(mosquitto))
        subscriptions = session.stats()["subscriptions"]
        async with contextlib.AsyncExitStack() as stack:
            config: Config = parse_config(f'[mqtt]\nstatus_topic = "{STATUS}"\n[gateway]\nname = "test"\n')
            assert await enter_ha_discovery(stack, config, hub, session, storage) is None
        # Nothing on the hot path: no StateChanged subscriber, no new MQTT subscription.
        assert not hub.bus._subscribers.get(StateChanged)
        assert session.stats()["subscriptions"] == subscriptions
        assert "published" not in storage.data
        assert not configs_of(await settled(mosquitto))


async def test_configs_of_devices_gone_while_the_gateway_was_down_are_cleared(mosquitto: Mosquitto) -> None:
    storage = DictStorage()
    stale = "homeassistant/sensor/hearth_ble_gone_main_temperature_celsius/config"
    storage.set("published", [stale])
    hub, _ = make_hub()
    async with make_session(mosquitto.port, status_topic=STATUS) as session:
        assert await session.wait_connected(5)
        session.publish(stale, b'{"stale": true}', qos=1, retain=True)
        await asyncio.sleep(0.1)
        async with HaDiscoveryPublisher(hub, session, settings(), storage=storage):
            assert stale not in await settled(mosquitto)
            assert stale not in storage.data["published"]


def test_device_entities_are_pure_and_fit_the_schema() -> None:
    hub, _ = make_hub()
    # Beyond the representative devices: the other platforms, and a two-channel meter (components l1, l2).
    more = [
        DeviceInfo("def:fan-1", "Ceiling fan", "def", {"main": {
            "fan": S(("on", "speed_percent", "speed_steps"), ("set_speed",)), "identify": S((), ("identify",))}}),
        DeviceInfo("def:lock-1", "Front lock", "def", {"main": {
            "lock": S(("state", "door_open"), ("lock", "unlock")), "battery": S(("percent", "low"))}}),
        DeviceInfo("def:valve-1", "Garden valve", "def", {"main": {"valve": S(("open",), ("open", "close"))}}),
        DeviceInfo("def:valve-2", "Irrigation", "def", {"main": {
            "valve": S(("position_percent", "open"), ("open", "close", "set_position"))}}),
        DeviceInfo("def:air-1", "Air monitor", "def", {"main": {
            "air_quality": S(("co2_ppm", "pm25_ugm3", "pm10_ugm3", "pm1_ugm3", "voc_ppb", "voc_ugm3")),
            "smoke_co_alarm": S(("smoke", "co", "co_ppm")), "pressure": S(("hpa",)),
            "illuminance": S(("lux",)), "occupancy": S(("occupied",)), "water_leak": S(("leak",)),
            "tamper": S(("tampered",)), "vibration": S(("detected",)), "gas": S(("detected",))}}),
        DeviceInfo("shelly:shellypro2pm-1", "Pro 2PM", "shelly", {
            "l1": {"on_off": S(("on",), ("on", "off")), "power_meter": S(("watts", "amps", "power_factor",
                                                                          "hertz"))},
            "l2": {"on_off": S(("on",), ("on", "off")), "energy_meter": S(("kwh", "exported_kwh"))}}),
        DeviceInfo("def:dimmer-1", "Dimmer", "def", {"main": {"on_off": S(("on",), ("on", "off")),
                                                             "level": S(("percent",), ("set",))}}),
        DeviceInfo("def:trv-2", "Reporting TRV", "def", {"main": {
            "thermostat": S(("current_celsius", "window_open")), "valve": S(("position_percent",))}}),
    ]
    for info in more:
        hub.upsert_device(info, "definitions")
    platforms: set[str] = set()
    for device in hub.devices.values():
        entities = device_entities(device, settings(), triggers=[("main", (3, "hold")), ("main", (None, "flip90"))])
        assert len({e.topic for e in entities}) == len(entities)
        for entity in entities:
            validate(entity.topic, entity.config)
            platforms.add(entity.topic.split("/")[1])
    assert platforms == set(SCHEMAS)


def test_the_schemas_catch_what_home_assistant_would_refuse() -> None:
    hub, _ = make_hub()
    plug = hub.devices["shelly:shellyplugs-aabbccddeeff"]
    sensor = next(e for e in device_entities(plug, settings()) if "energy_meter_kwh" in e.topic)
    with pytest.raises(AssertionError, match="state_class"):
        validate(sensor.topic, {**sensor.config, "state_class": "measurement"})
    with pytest.raises(AssertionError, match="unit"):
        validate(sensor.topic, {**sensor.config, "unit_of_measurement": "W"})
    with pytest.raises(AssertionError, match="not fit"):
        validate(sensor.topic, {**sensor.config, "colour": "red"})
    with pytest.raises(AssertionError, match="not fit"):
        validate(sensor.topic, {k: v for k, v in sensor.config.items() if k != "state_topic"})


def test_command_topics_are_unique_per_device() -> None:
    hub, _ = make_hub()
    seen: dict[str, str] = {}
    for device in hub.devices.values():
        for entity in device_entities(device, settings(devices="all")):
            for topic in entity.routes:
                assert seen.setdefault(topic, device.id) == device.id


async def test_the_gateway_publishes_when_enabled_and_stops_cleanly(mosquitto: Mosquitto, tmp_path: Any) -> None:
    """``hearth run`` as it is wired (gateway.app): a device an adapter adds is announced; /healthz shows it."""
    import io

    from gateway.app import Gateway

    # Hearth's own Home Assistant discovery consumer runs too (it is on by default): it must not read the
    # gateway's own announcements back as devices of their own (ha:hearth:...).
    config = parse_config(
        f'[gateway]\ndata_dir = "{tmp_path}"\nname = "test"\n\n[mqtt]\nport = {mosquitto.port}\n'
        f'status_topic = "{STATUS}"\n\n[mdns]\nenabled = false\n\n[api]\nenabled = false\n\n'
        '[ha_discovery]\nenabled = true\n\n'
        '[adapters.mdns]\nenabled = false\n\n[adapters.ble]\nscanner = false\n')
    gateway = Gateway(config, out=io.StringIO())
    run = asyncio.create_task(gateway.run(install_signal_handlers=False))
    try:
        await asyncio.wait_for(gateway.ready.wait(), timeout=20)
        assert gateway.mqtt is not None and await gateway.mqtt.wait_connected(5)
        info, adapter, values = DEVICES[6]  # the BLE thermometer
        gateway.hub.upsert_device(info, adapter)
        gateway.hub.apply([Update(info.id, "main", cap, attr, value) for cap, attr, value in values])
        configs = configs_of(await settled(mosquitto))
        assert f"homeassistant/sensor/hearth_{device_slug(info.id)}_main_temperature_celsius/config" in configs
        health = gateway.health()["ha_discovery"]
        assert health["devices"] == 1 and health["configs"] == 4
        await asyncio.sleep(0.5)  # the consumer has had the retained configs
        assert sorted(gateway.hub.devices) == [info.id], "a published device came back as a second one"
    finally:
        gateway.request_stop()
        await asyncio.wait_for(run, timeout=20)
    assert gateway.ha_discovery is not None and not gateway.ha_discovery._unsubscribes


async def test_after_a_broker_restart_home_assistants_birth_brings_everything_back(published: Any,
                                                                                   mosquitto: Mosquitto) -> None:
    _hub, _recorder, session, publisher, _ = published
    before = await settled(mosquitto)
    await asyncio.to_thread(mosquitto.restart)  # no persistence: every retained message is gone
    await eventually(lambda: session.connected, timeout_s=10, what="the session back")
    await asyncio.sleep(0.3)
    assert not configs_of(await settled(mosquitto))
    session.publish("homeassistant/status", b"online")  # Home Assistant reconnects and says so
    await eventually(lambda: publisher.counters["reannounced"] == 1, what="the re-announcement")
    after = await settled(mosquitto)
    assert after == before


async def test_the_first_announcement_waits_for_the_connection(mosquitto: Mosquitto) -> None:
    """At start the session is often still connecting: the configs are not left in its bounded queue."""
    hub, _ = make_hub()
    await asyncio.to_thread(mosquitto.stop)
    async with make_session(mosquitto.port, status_topic=STATUS) as session, \
            HaDiscoveryPublisher(hub, session, settings()) as publisher:
        await asyncio.sleep(0.2)
        hub.apply([Update("ble:a4c138010203", "main", "temperature", "celsius", 23.0)])
        await asyncio.sleep(0.1)
        assert publisher.counters["configs_published"] == 0 and session.stats()["held_publishes"] == 0
        await asyncio.to_thread(mosquitto.start)
        await eventually(lambda: publisher.counters["configs_published"] > 0, timeout_s=10,
                         what="the first announcement")
        _codec, seen = consume(await settled(mosquitto))
    thermometer = seen["ha:hearth:ble:a4c138010203"]["state"]
    assert thermometer[("main", "temperature", "celsius")] == 23.0


def test_home_assistants_light_command_becomes_hearths_commands_in_order() -> None:
    from gateway.hapublish import CommandPayloadError, Route, parse_command

    hub, _ = make_hub()
    lamp = hub.devices["def:lamp-7"]
    route = Route("def:lamp-7", "main", "light")

    def parsed(body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
        return [(c.capability, c.command, c.args) for c in parse_command(route, orjson.dumps(body), lamp)]

    assert parsed({"state": "OFF", "transition": 2}) == [("on_off", "off", {})]
    assert parsed({"state": "ON"}) == [("on_off", "on", {})]
    # The lamp is on: a colour and a brightness are just those (colour first, as turn_on means it).
    assert parsed({"state": "ON", "brightness": 60, "color": {"h": 200, "s": 50}, "transition": 1.5}) == [
        ("color", "set", {"hue": 200, "saturation": 50}), ("level", "set", {"percent": 60, "transition_s": 1.5})]
    hub.apply([Update("def:lamp-7", "main", "on_off", "on", False)])
    assert parsed({"state": "ON", "color_temp": 3000}) == [
        ("on_off", "on", {}), ("color_temperature", "set", {"kelvin": 3000})]
    for bad in ({"state": "maybe"}, {"state": "ON", "color": {"r": 1, "g": 2, "b": 3}},
                {"state": "ON", "brightness": True}, {"state": "ON", "transition": "slow"}):
        with pytest.raises(CommandPayloadError):
            parsed(bad)
    with pytest.raises(CommandPayloadError, match="too large"):
        parse_command(route, b" " * 5000, lamp)


def test_other_platforms_commands() -> None:
    from gateway.hapublish import CommandPayloadError, Route, parse_command

    def one(kind: str, payload: bytes) -> tuple[str, str, dict[str, Any]]:
        [command] = parse_command(Route("d:1", "main", kind), payload, None)
        return command.capability, command.command, command.args

    assert one("cover", b"OPEN") == ("cover", "open", {})
    assert one("cover_tilt", b"12.5") == ("cover", "set_tilt", {"percent": 12.5})
    assert one("thermostat_mode", b"heat_cool") == ("thermostat", "set_mode", {"mode": "heat_cool"})
    assert one("lock", b"UNLOCK") == ("lock", "unlock", {})
    assert one("fan", b"True") == ("fan", "set_speed", {"percent": 100})
    assert one("fan", b"False") == ("fan", "set_speed", {"percent": 0})
    assert one("fan_speed", b"33") == ("fan", "set_speed", {"percent": 33})
    assert one("identify", b"PRESS") == ("identify", "identify", {})
    assert one("valve", b"CLOSE") == ("valve", "close", {})
    assert one("valve", b"40") == ("valve", "set_position", {"percent": 40})
    for kind, payload in (("cover", b"open"), ("cover_position", b"101"), ("lock", b"OPEN"), ("fan", b"ON"),
                          ("identify", b"press"), ("thermostat_mode", b"eco"), ("thermostat_target", b"inf")):
        with pytest.raises(CommandPayloadError):
            one(kind, payload)
