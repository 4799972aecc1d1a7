"""The Tasmota adapter: ``hearth replay`` of recorded Tasmota traffic, subscriptions, config, and the command path
against a real Mosquitto. Payload sources: tests/fixtures/tasmota/README.md."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest

from adapters.tasmota.adapter import TasmotaAdapter, TasmotaConfig
from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.replay import replay
from gateway.sdk import Command
from gateway.supervisor import Supervisor
from tests.adapters.test_zigbee2mqtt_adapter import FakeMqtt, HubContext
from tests.broker import Mosquitto
from tests.gateway.test_mqtt import eventually, make_session, open_observer

CAPTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tasmota" / "capture.jsonl"


async def test_replay_of_tasmota_traffic() -> None:
    result = await replay(CAPTURE)
    # (other installed adapters may add their own errors: only ours and the capture's count here)
    assert [e for e in result.errors if e["source"] in ("tasmota", "capture")] == []
    devices = {d["id"]: d for d in result.devices}
    assert sorted(devices) == ["tasmota:bulb02", "tasmota:cv-ruimte", "tasmota:nodemcu1", "tasmota:sonoff-test",
                               "tasmota:tableroprincipal", "tasmota:tasmota_0848a2", "tasmota:tasmota_49a3bc",
                               "tasmota:tasmota_794be8", "tasmota:tasmota_7bc431", "tasmota:tasmota_a1b2c3",
                               "tasmota:tasmota_e30562", "tasmota:tasmota_e30562:0x6172", "tasmota:th_garage",
                               "tasmota:zbbridge", "tasmota:zbbridge:0x4773", "tasmota:zbbridge:0x5adf",
                               "tasmota:zbbridge:0x8f20", "tasmota:zbbridge:0xf72f"]
    basic = devices["tasmota:tasmota_0848a2"]  # swapped FullTopic, then its LWT says Offline
    assert (basic["model"], basic["manufacturer"], basic["available"]) == ("Sonoff Basic", "Tasmota", False)
    assert basic["components"] == {"main": {"on_off": {"on": True}, "connectivity": {"rssi_dbm": -54}}}
    relays = devices["tasmota:cv-ruimte"]["components"]
    assert relays["l2"] == {"on_off": {"on": True}} and relays["l3"] == {"on_off": {"on": False}}
    assert relays["main"]["temperature"] == {"celsius": 18.6} and relays["ds18b20-2"] == {
        "temperature": {"celsius": 17.9}}
    plug = devices["tasmota:tasmota_a1b2c3"]["components"]["main"]
    assert plug["energy_meter"] == {"kwh": 261.251}
    assert plug["power_meter"] == {"watts": 80.1, "power_factor": 0.61, "volts": 230.4, "amps": 0.573}
    assert devices["tasmota:tasmota_7bc431"]["available"] is True
    assert devices["tasmota:nodemcu1"]["components"]["l5"]["level"] == {"percent": 11}
    assert devices["tasmota:th_garage"]["components"]["main"]["temperature"] == {"celsius": 22.0}  # 71.6 °F
    assert devices["tasmota:tasmota_794be8"]["components"]["bmp280"]["pressure"] == {"hpa": 1004.3}  # mmHg
    # a light split in its colour and white parts (SetOption37 128), each a component with its own power and level
    split = devices["tasmota:tasmota_49a3bc"]
    assert (split["name"], split["available"]) == ("Colour", True)
    assert split["components"] == {
        "main": {"on_off": {"on": True}, "level": {"percent": 50}, "color": {"hue": 210, "saturation": 99}},
        "l2": {"on_off": {"on": True}, "level": {"percent": 100}, "color_temperature": {"kelvin": 6536}}}
    assert devices["tasmota:bulb02"]["components"]["main"]["level"] == {"percent": 62}
    # a Zigbee bridge's devices are devices of their own, available while their bridge is
    kitchen = devices["tasmota:zbbridge:0x8f20"]
    assert (kitchen["name"], kitchen["available"]) == ("Kitchen", True)
    assert kitchen["components"]["main"]["temperature"] == {"celsius": 21.01}
    assert kitchen["components"]["main"]["battery"] == {"percent": 98, "volts": 2.995}
    assert devices["tasmota:zbbridge:0x4773"]["components"]["main"]["on_off"] == {"on": True}
    assert devices["tasmota:zbbridge:0x5adf"]["components"]["main"]["level"] == {"percent": 40.2}
    assert "on_off" not in devices["tasmota:zbbridge:0xf72f"]["components"]["main"]  # a remote's command
    motion = devices["tasmota:tasmota_e30562:0x6172"]
    assert (motion["name"], motion["components"]["main"]["occupancy"]) == ("Bewegungssensor", {"occupied": True})
    # what was understood and not used is said, once each
    assert [n["message"].split(": ", 1)[1] for n in result.notes if n["source"] == "tasmota"] == [
        "tasmota tasmota:zbbridge:0xf72f: commands it sends (a remote's) are not read",
        "tasmota tasmota:tasmota_e30562:0x6172: ZoneStatusChange, ZoneStatusChangeZone not read (no capability for "
        "them)"]


async def test_subscriptions_and_commands_with_a_fake_broker() -> None:
    hub = Hub(SystemClock())
    mqtt = FakeMqtt()
    ctx = HubContext(hub, mqtt, config={"full_topic": "%prefix%/%topic%/"})
    ctx.name = "tasmota"
    adapter = TasmotaAdapter()
    await adapter.start(ctx)
    hub.set_command_handler("tasmota", adapter.execute)
    assert adapter.subscriptions == ["stat/+/+", "tasmota/discovery/#", "tele/+/+", "tele/+/+/SENSOR"]
    line = json.loads(CAPTURE.read_text().splitlines()[0])  # the Sonoff Basic with %topic%/%prefix%/
    mqtt.deliver(line["topic"], json.dumps(line["payload"]), retain=True)
    assert "tasmota_0848A2/tele/+" in adapter.subscriptions and "tasmota:tasmota_0848a2" in hub.devices
    result = await hub.execute(Command("tasmota:tasmota_0848a2", "main", "on_off", "toggle"), timeout_s=0.05)
    # nothing reported yet, so a toggle cannot be confirmed: it is only sent
    assert result.status == "sent" and mqtt.published == [("tasmota_0848A2/cmnd/POWER1", b"TOGGLE")]
    result = await hub.execute(Command("tasmota:tasmota_0848a2", "main", "on_off", "on"), timeout_s=0.05)
    assert mqtt.published[-1] == ("tasmota_0848A2/cmnd/POWER1", b"ON")
    await adapter.stop()
    assert mqtt.subscriptions == []


def test_config_model() -> None:
    assert TasmotaConfig().full_topic == "%prefix%/%topic%/"
    assert TasmotaConfig(full_topic="%topic%/%prefix%/").full_topic == "%topic%/%prefix%/"
    for bad in ({"full_topic": "%topic%/"}, {"full_topic": "+/%prefix%/%topic%/"}, {"discovery_prefix": "x/"},
                {"topic": "x"}):
        with pytest.raises(ValueError):
            TasmotaConfig.model_validate(bad)


@pytest.mark.mqtt
async def test_power_and_dimmer_commands_reach_the_broker(mosquitto_session: Mosquitto) -> None:
    topic = f"light_{uuid.uuid4().hex[:8]}"
    observer = await open_observer(mosquitto_session, f"cmnd/{topic}/#")
    try:
        async with make_session(mosquitto_session.port) as session:
            assert await session.wait_connected(5)
            hub = Hub(SystemClock())
            async with Supervisor(hub, {"tasmota": TasmotaAdapter}, {}, mqtt=session):
                device_id = f"tasmota:{topic}"
                await asyncio.sleep(0.1)  # the adapter subscribes as it starts
                observer.client.publish(f"stat/{topic}/RESULT", '{"POWER":"OFF","Dimmer":20}')
                await eventually(lambda: device_id in hub.devices, what="the device from its telemetry")

                async def device_answers(command: str, answer: str) -> None:
                    # A real Tasmota answers on stat/<topic>/RESULT.
                    await eventually(lambda: any(t.endswith(command) for t, _, _ in observer.snapshot()))
                    observer.client.publish(f"stat/{topic}/RESULT", answer)

                answer = asyncio.create_task(device_answers("POWER1", '{"POWER":"ON"}'))
                result = await hub.execute(Command(device_id, "main", "on_off", "on"), timeout_s=5)
                await answer
                assert result.status == "confirmed", result
                answer = asyncio.create_task(device_answers("Dimmer", '{"POWER":"ON","Dimmer":65}'))
                result = await hub.execute(Command(device_id, "main", "level", "set", {"percent": 65}), timeout_s=5)
                await answer
                assert result.status == "confirmed", result
                sent = [(t, p) for t, p, _ in observer.snapshot()]
                assert sent == [(f"cmnd/{topic}/POWER1", b"ON"), (f"cmnd/{topic}/Dimmer", b"65")]
    finally:
        observer.close()


@pytest.mark.mqtt
async def test_colour_split_light_and_zigbee_commands_reach_the_broker(mosquitto_session: Mosquitto) -> None:
    topic = f"rgbw_{uuid.uuid4().hex[:8]}"
    observer = await open_observer(mosquitto_session, f"cmnd/{topic}/#")
    try:
        async with make_session(mosquitto_session.port) as session:
            assert await session.wait_connected(5)
            hub = Hub(SystemClock())
            async with Supervisor(hub, {"tasmota": TasmotaAdapter}, {}, mqtt=session):
                device_id = f"tasmota:{topic}"
                await asyncio.sleep(0.1)  # the adapter subscribes as it starts
                observer.client.publish(f"stat/{topic}/RESULT", json.dumps({
                    "POWER1": "ON", "Dimmer1": 50, "POWER2": "OFF", "Dimmer2": 0, "HSBColor": "210,99,50",
                    "CT": 153}))
                observer.client.publish(f"tele/{topic}/SENSOR", json.dumps(
                    {"ZbReceived": {"0x4773": {"Power": False, "LinkQuality": 52}}}))
                plug = f"{device_id}:0x4773"
                await eventually(lambda: plug in hub.devices, what="the split light and the Zigbee plug")
                assert hub.devices[plug].via == device_id

                async def device_answers(command: str, topic_: str, answer: dict[str, object]) -> None:
                    # A real Tasmota answers on stat/<topic>/RESULT (a Zigbee device through tele/<topic>/SENSOR).
                    await eventually(lambda: any(t.endswith(command) for t, _, _ in observer.snapshot()))
                    observer.client.publish(topic_, json.dumps(answer))

                for command, answer_topic, answer, sent in (
                        (Command(device_id, "main", "color", "set", {"hue": 120, "saturation": 50}),
                         f"stat/{topic}/RESULT", {"POWER1": "ON", "Dimmer1": 50, "HSBColor": "120,50,50"}, "Backlog"),
                        (Command(device_id, "l2", "level", "set", {"percent": 30}),
                         f"stat/{topic}/RESULT", {"POWER2": "ON", "Dimmer2": 30}, "Dimmer2"),
                        (Command(plug, "main", "on_off", "on"), f"tele/{topic}/SENSOR",
                         {"ZbReceived": {"0x4773": {"Power": True, "Endpoint": 1, "LinkQuality": 50}}}, "ZbSend")):
                    answering = asyncio.create_task(device_answers(sent, answer_topic, answer))
                    result = await hub.execute(command, timeout_s=5)
                    await answering
                    assert result.status == "confirmed", (command, result)
                sent = [(t, p) for t, p, _ in observer.snapshot()]
                assert sent == [(f"cmnd/{topic}/Backlog", b"NoDelay;HsbColor1 120;NoDelay;HsbColor2 50"),
                                (f"cmnd/{topic}/Dimmer2", b"30"),
                                (f"cmnd/{topic}/ZbSend", b'{"Device":"0x4773","Send":{"Power":1}}')]
    finally:
        observer.close()
