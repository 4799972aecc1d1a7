"""The Home Assistant discovery adapter: ``hearth replay`` of a recorded house, the no-double-devices rule next to
Zigbee2MQTT, subscriptions that follow the configs, and the command path against a real Mosquitto.

Payload sources: tests/fixtures/homeassistant/README.md.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from adapters.homeassistant.adapter import HomeAssistantDiscoveryAdapter, HomeAssistantDiscoveryConfig
from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.replay import replay
from gateway.sdk import Command
from gateway.supervisor import Supervisor
from tests.adapters.test_zigbee2mqtt_adapter import FakeMqtt, HubContext
from tests.broker import Mosquitto
from tests.gateway.test_mqtt import eventually, make_session, open_observer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURE = FIXTURES / "homeassistant" / "capture.jsonl"
Z2M_CAPTURE = FIXTURES / "z2m" / "capture.jsonl"


def by_id(devices: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["id"]: d for d in devices}


async def test_replay_of_a_discovery_house() -> None:
    result = await replay(CAPTURE)
    devices = by_id(result.devices)
    assert sorted(devices) == ["ha:5ccf7fe027f0", "ha:6055f97b55e0", "ha:a4cf12f0e1d2", "ha:ble2mqtt_ac233fa1b2c3",
                               "ha:c8c9a3f951e0", "ha:diy-hall-01", "ha:ea334450945afc", "ha:kitchen_light",
                               "ha:light_office_rgb1", "ha:light_rgbw1", "ha:sensor_sensorbedroomh",
                               "ha:sensor_sensorbedroomt", "ha:switch_irrigation"]
    esphome = devices["ha:c8c9a3f951e0"]
    assert (esphome["name"], esphome["manufacturer"], esphome["model"], esphome["available"]) == (
        "Test light sensor", "espressif", "esp32dev", True)
    assert esphome["components"] == {"main": {"illuminance": {"lux": 152.5}}}
    # ESPHome's JSON light with the retired `rgb` flag: its colour {r: 255, g: 180, b: 100} as hue and saturation
    assert devices["ha:5ccf7fe027f0"]["components"]["main"] == {"on_off": {"on": True}, "level": {"percent": 50.2},
                                                                "color": {"hue": 31.0, "saturation": 60.8}}
    assert devices["ha:6055f97b55e0"]["components"]["main"] == {"power_meter": {"volts": 1.234}}
    assert devices["ha:ea334450945afc"]["components"] == {"main": {"temperature": {"celsius": 21.5},
                                                                   "humidity": {"percent": 52.0}}}
    assert devices["ha:switch_irrigation"]["components"] == {"main": {"on_off": {"on": False}}}
    hall = devices["ha:diy-hall-01"]
    assert (hall["area"], hall["available"]) == ("Hall", True)  # suggested_area; availability mode "all"
    assert hall["components"]["indoor_temp"] == {"temperature": {"celsius": 20.5}}  # 68.9 °F, two temperatures
    assert hall["components"]["outdoor_temp"] == {"temperature": {"celsius": 4.5}}
    main = hall["components"]["main"]
    assert main["energy_meter"] == {"kwh": 123.456} and main["power_meter"] == {"watts": 1250.0}
    assert main["contact"] == {"open": True}
    assert main["cover"] == {"motion": "opening", "position_percent": 50.2}
    assert main["thermostat"] == {"current_celsius": 19.5, "target_celsius": 21.0, "mode": "heat"}
    assert main["lock"] == {"state": "locked"} and main["fan"] == {"on": True, "speed_percent": 66.7}
    assert main["button"] == {"last_event": "long", "button": 1}
    # colour lights: the docs' default-schema RGB light, the docs' JSON RGBW light in ESPHome's state shape, an
    # ESPHome cold/warm white light whose "cwww" colour mode Home Assistant does not know (no error for it)
    assert devices["ha:light_office_rgb1"]["components"]["main"] == {
        "on_off": {"on": True}, "level": {"percent": 74.9}, "color": {"hue": 330.1, "saturation": 100.0}}
    assert devices["ha:light_rgbw1"]["components"]["main"] == {
        "on_off": {"on": True}, "level": {"percent": 50.2}, "color": {"hue": 30.1, "saturation": 100.0}}
    assert devices["ha:a4cf12f0e1d2"]["components"]["main"]["level"] == {"percent": 100.0}
    # ble2mqtt: each entity's attributes are the whole message; what fits the device is read, the rest noted
    assert devices["ha:ble2mqtt_ac233fa1b2c3"]["components"] == {
        "main": {"battery": {"percent": 87.0}, "temperature": {"celsius": 21.4}}}
    assert [n["message"].split(": ", 1)[1] for n in result.notes if "json_attributes" in n["message"]] == [
        "ha sensor/ac233fa1b2c3/battery: json_attributes linkquality not used (no capability of the device they fit)",
        "ha sensor/ac233fa1b2c3/temperature: json_attributes linkquality not used (no capability of the device they "
        "fit)"]
    # the garden sensor was removed by its empty config; native devices never appeared; m³ was reported
    assert "ha:binary_sensor_garden" not in devices
    assert not any(d.startswith(("ha:a2e12f", "ha:522851", "ha:aa:bb", "ha:zigbee2mqtt")) for d in devices)
    # (other installed adapters may add their own errors: only ours and the capture's count here)
    assert [e["message"] for e in result.errors if e["source"] in ("homeassistant", "capture")] == [
        "capture.jsonl:22: ha sensor/watermeter/value: left out: sensor with device_class None and unit 'm³' has "
        "no place in the capability model"]


async def test_a_zigbee2mqtt_device_announced_through_ha_discovery_appears_once(tmp_path: Path) -> None:
    """Zigbee2MQTT's own HA discovery of a device the zigbee2mqtt adapter already has: one device, the native one."""
    lines = [{"t": "2024-01-15T08:00:00Z", "source": "mqtt", "retain": True, "topic": topic,
              "payload": json.loads((FIXTURES / "homeassistant" / name).read_text())}
             for topic, name in (
                 ("homeassistant/binary_sensor/0x00158d000205d552/carbon_monoxide/config",
                  "z2m_carbon_monoxide_config.json"),
                 ("homeassistant/sensor/0x00158d00040726f1/temperature/config", "z2m_temperature_config.json"))]
    capture = tmp_path / "house.jsonl"
    capture.write_text(Z2M_CAPTURE.read_text() + "".join(json.dumps(line) + "\n" for line in lines))
    for skip in (None, []):  # skipped by source, and (with skip_native empty) because the device is known
        from gateway.config import Config

        adapters = {"homeassistant": {"skip_native": skip}} if skip is not None else {}
        result = await replay(capture, Config(mqtt={"enabled": True}, adapters=adapters))
        ids = [d["id"] for d in result.devices]
        assert "zigbee2mqtt:0x00158d000205d552" in ids
        assert not [i for i in ids if i.startswith("ha:")], ids
        assert ids.count("zigbee2mqtt:0x00158d000205d552") == 1
        assert len(ids) == 16


async def test_subscriptions_follow_the_configs() -> None:
    hub = Hub(SystemClock())
    mqtt = FakeMqtt()
    ctx = HubContext(hub, mqtt, config={})
    ctx.name = "homeassistant"
    adapter = HomeAssistantDiscoveryAdapter()
    await adapter.start(ctx)
    assert adapter.subscriptions == ["homeassistant/#"]
    config = (FIXTURES / "homeassistant" / "capture.jsonl").read_text().splitlines()[1]
    mqtt.deliver("homeassistant/sensor/bh1750test/bh1750_illuminance/config", json.loads(config)["payload"])
    assert adapter.subscriptions == ["bh1750test/sensor/bh1750_illuminance/state", "bh1750test/status",
                                     "homeassistant/#"]
    mqtt.deliver("homeassistant/sensor/bh1750test/bh1750_illuminance/config", b"")
    assert adapter.subscriptions == ["homeassistant/#"] and "ha:c8c9a3f951e0" not in hub.devices
    await adapter.stop()
    assert mqtt.subscriptions == []


def test_config_model() -> None:
    assert HomeAssistantDiscoveryConfig().skip_native == ["zigbee2mqtt", "tasmota", "shelly"]
    for bad in ({"discovery_prefix": "ha/#"}, {"skip_native": ["zwave"]}, {"prefix": "x"}):
        with pytest.raises(ValueError):
            HomeAssistantDiscoveryConfig.model_validate(bad)


@pytest.mark.mqtt
async def test_commands_reach_the_broker_with_the_exact_topic_and_payload(mosquitto_session: Mosquitto) -> None:
    prefix = f"ha-{uuid.uuid4().hex[:8]}"
    observer = await open_observer(mosquitto_session, f"{prefix}/#")
    try:
        async with make_session(mosquitto_session.port) as session:
            assert await session.wait_connected(5)
            hub = Hub(SystemClock())
            async with Supervisor(hub, {"homeassistant": HomeAssistantDiscoveryAdapter},
                                  {"homeassistant": {"discovery_prefix": prefix}}, mqtt=session):
                config = {"~": f"{prefix}/light/kitchen", "name": "Kitchen", "unique_id": f"{prefix}_kitchen",
                          "cmd_t": "~/set", "stat_t": "~/state", "schema": "json", "brightness": True}
                observer.client.publish(f"{prefix}/light/kitchen/config", json.dumps(config), retain=True)
                device_id = f"ha:{prefix}_kitchen"
                await eventually(lambda: device_id in hub.devices, what="the discovered light")
                await asyncio.sleep(0.1)  # the adapter subscribes the state topic as the config arrives

                async def device_answers() -> None:
                    # A real light reports its new state after a command.
                    await eventually(lambda: any(t.endswith("/set") for t, _, _ in observer.snapshot()))
                    observer.client.publish(f"{prefix}/light/kitchen/state", '{"state":"ON","brightness":128}')

                answer = asyncio.create_task(device_answers())
                result = await hub.execute(Command(device_id, "main", "level", "set", {"percent": 50}), timeout_s=5)
                await answer
                sent = [(t, p) for t, p, _ in observer.snapshot() if t.endswith("/set")]
                assert sent == [(f"{prefix}/light/kitchen/set", b'{"state":"ON","brightness":128}')]
                assert result.status == "confirmed", result
                assert hub.devices[device_id].value("main", "level", "percent") == 50.2
                observer.client.publish(f"{prefix}/light/kitchen/config", "", retain=True)
                await eventually(lambda: device_id not in hub.devices, what="the removal")
    finally:
        observer.close()


async def test_off_delay_and_expire_after_run_on_the_adapters_clock(tmp_path: Path) -> None:
    # An ESPHome PIR that only sends ON (off_delay 30 s) and a PM2.5 sensor whose value is stale after 300 s
    # (expire_after; ESPHome's exp_aft): without these a room reads occupied for ever and an old reading
    # stays current. Each new message arms its timer again. Replayed on the simulated clock.
    dev = {"ids": ["3c71bf0011aa"], "name": "hall-esp", "mf": "espressif"}
    lines = [
        (0, "homeassistant/binary_sensor/hall-esp/pir/config",
         {"name": "PIR", "dev_cla": "motion", "stat_t": "hall-esp/binary_sensor/pir/state", "off_dly": 30,
          "uniq_id": "hall-esp-pir", "dev": dev}),
        (0, "homeassistant/sensor/hall-esp/pm25/config",
         {"name": "PM2.5", "dev_cla": "pm25", "unit_of_meas": "µg/m³", "stat_t": "hall-esp/sensor/pm25/state",
          "exp_aft": 300, "uniq_id": "hall-esp-pm25", "dev": dev}),
        (10, "hall-esp/binary_sensor/pir/state", "ON"),
        (20, "hall-esp/sensor/pm25/state", "12.4"),
        (35, "hall-esp/binary_sensor/pir/state", "ON"),  # motion again: OFF moves to 65 s
    ]

    async def state_at(t: float) -> dict[str, Any]:
        capture = tmp_path / f"at{t:g}.jsonl"
        records = [*lines, (t, "elsewhere/clock", "tick")]
        capture.write_text("".join(json.dumps({"t": at, "source": "mqtt", "topic": topic, "payload": payload,
                                               "retain": False}) + "\n" for at, topic, payload in records))
        result = await replay(capture)
        [device] = [d for d in result.devices if d["name"] == "hall-esp"]
        return device["components"]["main"]

    at50 = await state_at(50)
    assert at50["occupancy"] == {"occupied": True} and at50["air_quality"] == {"pm25_ugm3": 12.4}
    at100 = await state_at(100)
    assert at100["occupancy"] == {"occupied": False} and at100["air_quality"] == {"pm25_ugm3": 12.4}
    assert (await state_at(400))["air_quality"] == {"pm25_ugm3": None}


@pytest.mark.mqtt
async def test_colour_commands_reach_the_broker_and_are_confirmed(mosquitto_session: Mosquitto) -> None:
    prefix = f"ha-{uuid.uuid4().hex[:8]}"
    observer = await open_observer(mosquitto_session, f"{prefix}/#")
    try:
        async with make_session(mosquitto_session.port) as session:
            assert await session.wait_connected(5)
            hub = Hub(SystemClock())
            async with Supervisor(hub, {"homeassistant": HomeAssistantDiscoveryAdapter},
                                  {"homeassistant": {"discovery_prefix": prefix}}, mqtt=session):
                # the docs' JSON RGBW light and default-schema RGB light (with a brightness topic)
                rgbw = {"schema": "json", "name": "rgbw", "unique_id": f"{prefix}_rgbw", "brightness": True,
                        "state_topic": f"{prefix}/rgbw", "command_topic": f"{prefix}/rgbw/set",
                        "supported_color_modes": ["rgbw"]}
                rgb = {"name": "rgb", "unique_id": f"{prefix}_rgb", "state_topic": f"{prefix}/rgb/light/status",
                       "command_topic": f"{prefix}/rgb/light/switch",
                       "brightness_command_topic": f"{prefix}/rgb/brightness/set",
                       "rgb_state_topic": f"{prefix}/rgb/rgb/status", "rgb_command_topic": f"{prefix}/rgb/rgb/set"}
                observer.client.publish(f"{prefix}/light/rgbw/config", json.dumps(rgbw), retain=True)
                observer.client.publish(f"{prefix}/light/rgb/config", json.dumps(rgb), retain=True)
                await eventually(lambda: f"ha:{prefix}_rgbw" in hub.devices and f"ha:{prefix}_rgb" in hub.devices,
                                 what="the discovered lights")
                await asyncio.sleep(0.1)  # the adapter subscribes the state topics as the configs arrive
                observer.client.publish(f"{prefix}/rgbw", json.dumps(
                    {"color_mode": "rgbw", "state": "ON", "brightness": 255,
                     "color": {"r": 255, "g": 0, "b": 0, "w": 64}}))
                await eventually(lambda: hub.devices[f"ha:{prefix}_rgbw"].value("main", "color", "saturation") == 100,
                                 what="the light's state, its white channel with it")

                async def device_answers(command_topic: str, state_topic: str, state: str) -> None:
                    await eventually(lambda: any(t == command_topic for t, _, _ in observer.snapshot()))
                    observer.client.publish(state_topic, state)

                for command, command_topic, state_topic, state in (
                        (Command(f"ha:{prefix}_rgbw", "main", "color", "set", {"hue": 120, "saturation": 100}),
                         f"{prefix}/rgbw/set", f"{prefix}/rgbw",
                         '{"color_mode":"rgbw","state":"ON","color":{"r":0,"g":255,"b":0,"w":64}}'),
                        (Command(f"ha:{prefix}_rgb", "main", "color", "set", {"hue": 240, "saturation": 50}),
                         f"{prefix}/rgb/rgb/set", f"{prefix}/rgb/rgb/status", "128,128,255")):
                    answering = asyncio.create_task(device_answers(command_topic, state_topic, state))
                    result = await hub.execute(command, timeout_s=5)
                    await answering
                    assert result.status == "confirmed", (command, result)
                sent = [(t, p) for t, p, _ in observer.snapshot() if t.endswith("/set")]
                assert sent == [(f"{prefix}/rgbw/set", b'{"state":"ON","color":{"r":0,"g":255,"b":0,"w":64}}'),
                                (f"{prefix}/rgb/rgb/set", b"128,128,255")]
                for config in ("rgbw", "rgb"):
                    observer.client.publish(f"{prefix}/light/{config}/config", "", retain=True)
    finally:
        observer.close()
