"""Homie v4 and v5: the codec on recorded payloads (sources: tests/fixtures/homie/README.md), exact /set
messages against a real Mosquitto, the replay of a recorded house, and fuzzed topics."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from adapters.homie.adapter import HomieAdapter
from adapters.homie.codec import HomieCodec, PropertyDef, map_property
from gateway.clock import SystemClock
from gateway.config import MqttSection
from gateway.hub import Hub
from gateway.mqtt import MqttSession
from gateway.replay import replay
from gateway.sdk import CodecError, Command, capability
from gateway.supervisor import Supervisor
from tests.broker import Mosquitto

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "homie" / "capture.jsonl"


def messages(prefix: str = "") -> list[tuple[str, bytes]]:
    out = []
    for line in CAPTURE.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["topic"].startswith(prefix):
            out.append((record["topic"], record["payload"].encode()))
    return out


def feed(codec: HomieCodec, items: list[tuple[str, bytes]]) -> dict:
    result: dict = {"upserts": [], "updates": {}, "availability": [], "problems": [], "removals": [], "notes": []}
    for topic, payload in items:
        out = codec.decode(topic, payload)
        result["upserts"] += out.upserts
        result["removals"] += out.removals
        result["availability"] += out.availability
        result["problems"] += out.problems
        result["notes"] += out.notes
        for u in out.updates:
            spec = capability(u.capability)
            assert spec is not None and spec.attributes[u.attribute].check(u.value) is None, u
            result["updates"][(u.device_id, u.component, u.capability, u.attribute)] = u.value
    return result


def test_v4_device_with_one_node() -> None:
    codec = HomieCodec()
    r = feed(codec, messages("homie/eeyeore-1/"))
    assert r["problems"] == []
    info = r["upserts"][-1]
    assert (info.id, info.name) == ("homie:eeyeore-1", "Eeyeore")
    assert info.components["main"]["level"].commands == {"set"}
    assert r["updates"][("homie:eeyeore-1", "main", "level", "percent")] == 100
    assert ("homie:eeyeore-1", True) in r["availability"]
    # color (rgb), quantity (#), trigger (enum) have no clear capability: listed, not invented
    assert "light/color (color)" in r["notes"][-1] and "light/trigger (enum)" in r["notes"][-1]


def test_v4_nodes_are_components_and_state_is_availability() -> None:
    codec = HomieCodec()
    r = feed(codec, messages("homie/super-car/"))
    info = r["upserts"][-1]
    assert set(info.components) == {"engine", "lights"}
    assert r["updates"][("homie:super-car", "engine", "temperature", "celsius")] == 88.25
    assert r["availability"][0] == ("homie:super-car", None)  # init
    assert r["availability"][-1] == ("homie:super-car", False)  # lost (LWT)


def test_v5_description_and_removal() -> None:
    codec = HomieCodec()
    r = feed(codec, messages("homie/5/"))
    ids = {i.id for i in r["upserts"]}
    assert ids == {"homie:my-homie-device", "homie:old-sensor"}
    assert r["updates"][("homie:my-homie-device", "sensors", "temperature", "celsius")] == 21.4
    assert r["updates"][("homie:my-homie-device", "actor", "on_off", "on")] is True
    assert r["removals"] == ["homie:old-sensor"]


def test_units_and_datatypes_map_only_when_clear() -> None:
    def m(datatype: str, unit: str = "", pid: str = "x", settable: bool = False, fmt: str = "") -> tuple | None:
        b = map_property(PropertyDef("n", pid, datatype, unit, settable, True, fmt), "main")
        return (b.capability, b.attribute, b.scale(212.0) if datatype != "boolean" else None) if b else None

    assert m("float", "°F", "t") == ("temperature", "celsius", 100.0)
    assert m("float", "Wh", "e") == ("energy_meter", "kwh", 0.212)
    assert m("integer", "%", "brightness", True, "0:255")[:2] == ("level", "percent")
    assert m("integer", "%", "brightness", True, "0:255")[2] == pytest.approx(83.1)
    assert m("float", "%", "relative-humidity") == ("humidity", "percent", 212.0)
    assert m("boolean", pid="power", settable=True)[:2] == ("on_off", "on")
    assert m("boolean", pid="power", settable=False) is None  # a read-only "power" flag is not a switch
    assert m("float", "#", "count") is None and m("string", "°C") is None and m("integer", "%", "volume") is None


def test_commands_are_set_messages() -> None:
    codec = HomieCodec()
    feed(codec, messages("homie/"))
    assert codec.encode(Command("homie:kitchen-light", "main", "on_off", "off")) == (
        "homie/kitchen-light/light/power/set", b"false")
    assert codec.encode(Command("homie:kitchen-light", "main", "on_off", "toggle")) == (
        "homie/kitchen-light/light/power/set", b"false")  # it last said true
    assert codec.encode(Command("homie:eeyeore-1", "main", "level", "set", {"percent": 42.4})) == (
        "homie/eeyeore-1/light/brightness/set", b"42")
    assert codec.encode(Command("homie:my-homie-device", "actor", "on_off", "on")) == (
        "homie/5/my-homie-device/actor/switch/set", b"true")
    with pytest.raises(CodecError):
        codec.encode(Command("homie:super-car", "engine", "on_off", "on"))


def test_bad_values_are_problems() -> None:
    codec = HomieCodec()
    feed(codec, messages("homie/kitchen-light/"))
    out = codec.decode("homie/kitchen-light/light/power", b"maybe")
    assert out.problems and out.updates == []
    assert codec.decode("homie/5/x/$description", b"{not json").problems
    assert codec.decode("homie/x/$state", b"sleepy").problems


async def test_replay_of_a_recorded_house() -> None:
    result = await replay(CAPTURE)
    assert result.errors == []
    devices = {d["id"]: d for d in result.devices}
    assert sorted(devices) == ["homie:eeyeore-1", "homie:kitchen-light", "homie:my-homie-device", "homie:super-car"]
    assert devices["homie:kitchen-light"]["components"]["main"]["on_off"] == {"on": True}
    assert devices["homie:super-car"]["available"] is False
    assert devices["homie:my-homie-device"]["components"]["sensors"]["temperature"] == {"celsius": 21.4}


async def test_commands_reach_the_device_through_mosquitto(mosquitto_session: Mosquitto) -> None:
    base = f"homie{uuid.uuid4().hex[:6]}"
    device = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-homie-{uuid.uuid4().hex[:6]}")
    received: list[tuple[str, bytes, bool]] = []

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        received.append((message.topic, message.payload, message.retain))
        client.publish(message.topic.removesuffix("/set"), message.payload, qos=1, retain=True)  # pessimistic echo

    device.on_message = on_message
    device.connect("127.0.0.1", mosquitto_session.port)
    device.subscribe(f"{base}/kitchen-light/light/power/set", qos=1)
    device.loop_start()
    for topic, payload in messages("homie/kitchen-light/"):
        if not topic.endswith("/set"):
            device.publish(base + topic.removeprefix("homie"), payload, qos=1, retain=True)
    session = MqttSession(MqttSection.model_validate({"port": mosquitto_session.port, "status_topic": ""}),
                          SystemClock(), client_id=f"hearth-{uuid.uuid4().hex[:6]}")
    hub = Hub(SystemClock())
    try:
        async with session, Supervisor(hub, {"homie": HomieAdapter}, {"homie": {"base_topic": base}}, mqtt=session):
            for _ in range(300):
                if hub.devices.get("homie:kitchen-light") and hub.devices["homie:kitchen-light"].value(
                        "main", "on_off", "on") is not None:
                    break
                await asyncio.sleep(0.01)
            assert hub.devices["homie:kitchen-light"].value("main", "on_off", "on") is True
            result = await hub.execute(Command("homie:kitchen-light", "main", "on_off", "off"), timeout_s=3)
            assert result.status == "confirmed"
            assert received == [(f"{base}/kitchen-light/light/power/set", b"false", False)]
    finally:
        device.loop_stop()
        device.disconnect()


async def test_retained_values_are_read_after_a_restart(mosquitto_session: Mosquitto) -> None:
    # A v4 device as the convention has it publish ($state init first, then the attributes, each value
    # after its attributes, $state ready last), all retained; the gateway subscribes afterwards, as after a
    # restart. Mosquitto then delivers each value before the attributes below it (`.../power` before
    # `.../power/$datatype`): the value must still come out as what the attributes say it is.
    base = f"homie{uuid.uuid4().hex[:6]}"
    tree = [("$state", "init"), ("$homie", "4.0.0"), ("$name", "Hall relay"), ("$nodes", "relay,climate"),
            ("relay/$name", "Relay"), ("relay/$properties", "power"), ("relay/power/$name", "Power"),
            ("relay/power/$settable", "true"), ("relay/power/$datatype", "boolean"), ("relay/power", "true"),
            ("climate/$name", "Climate"), ("climate/$properties", "temperature"),
            ("climate/temperature/$datatype", "float"), ("climate/temperature/$unit", "°C"),
            ("climate/temperature", "21.5"), ("$state", "ready")]
    device = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-homie-{uuid.uuid4().hex[:6]}")
    device.connect("127.0.0.1", mosquitto_session.port)
    device.loop_start()
    try:
        for topic, payload in tree:
            device.publish(f"{base}/hall-relay/{topic}", payload, qos=1, retain=True).wait_for_publish(5)
    finally:
        device.loop_stop()
        device.disconnect()
    session = MqttSession(MqttSection.model_validate({"port": mosquitto_session.port, "status_topic": ""}),
                          SystemClock(), client_id=f"hearth-{uuid.uuid4().hex[:6]}")
    hub = Hub(SystemClock())
    async with session, Supervisor(hub, {"homie": HomieAdapter}, {"homie": {"base_topic": base}}, mqtt=session):
        for _ in range(300):
            found = hub.devices.get("homie:hall-relay")
            if found is not None and found.value("climate", "temperature", "celsius") is not None:
                break
            await asyncio.sleep(0.01)
        found = hub.devices["homie:hall-relay"]
        assert found.value("relay", "on_off", "on") is True
        assert found.value("climate", "temperature", "celsius") == 21.5
        assert hub.counters["bad_input"] == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(
    st.lists(st.sampled_from(["5", "dev", "node", "prop", "$state", "$nodes", "$properties", "$datatype", "$unit",
                              "$settable", "$format", "$description", "$homie", "set", "$target"]),
             min_size=1, max_size=4),
    st.one_of(st.sampled_from([b"ready", b"lost", b"", b"node", b"prop", b"float", b"boolean", b"integer", b"%",
                               b"\xc2\xb0C", b"true", b"0:255", b"12.5", b"nan", b"inf", b"-1e999",
                               b'{"nodes":{"node":{"properties":{"prop":{"datatype":"float","unit":"W"}}}}}']),
              st.binary(max_size=20))), max_size=25))
def test_fuzzed_messages_never_raise(items: list[tuple[list[str], bytes]]) -> None:
    codec = HomieCodec()
    feed(codec, [("homie/" + "/".join(levels), payload) for levels, payload in items])
