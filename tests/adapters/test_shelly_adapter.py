"""The Shelly MQTT adapter against a real Mosquitto, with a fake Shelly (paho) answering JSON-RPC like the
real firmware (frames from tests/fixtures/shelly), and the replay of a recorded house."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from adapters.shelly.mqtt_adapter import ShellyMqttAdapter
from gateway.clock import SystemClock
from gateway.config import MqttSection
from gateway.hub import Hub
from gateway.mqtt import MqttSession
from gateway.replay import replay
from gateway.sdk import Command
from gateway.supervisor import Supervisor
from tests.broker import Mosquitto

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shelly"
pytestmark = [pytest.mark.mqtt]


class FakeShelly:
    """A Pro 4PM on MQTT: answers Shelly.GetDeviceInfo/GetStatus and Switch.Set on <prefix>/rpc, refuses
    Switch.Toggle as a real device refuses a bad call, and notifies the new state on events/rpc."""

    def __init__(self, port: int, prefix: str) -> None:
        data = json.loads((FIXTURES / "pro4pm.json").read_text())
        self.info, self.status = data["device_info"], data["status"]
        self.id = self.info["id"]
        self.prefix = prefix
        self.requests: list[dict[str, Any]] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"fake-shelly-{uuid.uuid4().hex[:6]}")
        self.client.will_set(f"{prefix}/online", "false", retain=True)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{prefix}/rpc", qos=1)
        self.client.loop_start()

    def announce(self) -> None:
        self.client.publish(f"{self.prefix}/online", "true", qos=1, retain=True)

    def _reply(self, request: dict[str, Any], body: dict[str, Any]) -> None:
        frame = {"id": request["id"], "src": self.id, "dst": request["src"], **body}
        self.client.publish(f"{request['src']}/rpc", orjson.dumps(frame), qos=1)

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        request = orjson.loads(message.payload)
        self.requests.append(request)
        method, params = request["method"], request.get("params") or {}
        if method == "Shelly.GetDeviceInfo":
            self._reply(request, {"result": self.info})
        elif method == "Shelly.GetStatus":
            self._reply(request, {"result": self.status})
        elif method == "Switch.Set":
            key = f"switch:{params['id']}"
            was_on = self.status[key]["output"]
            self.status[key]["output"] = params["on"]
            self._reply(request, {"result": {"was_on": was_on}})
            notify = {"src": self.id, "dst": f"{self.prefix}/events", "method": "NotifyStatus",
                      "params": {"ts": 1.0, key: {"id": params["id"], "output": params["on"], "source": "MQTT"}}}
            self.client.publish(f"{self.prefix}/events/rpc", orjson.dumps(notify), qos=1)
        else:
            self._reply(request, {"error": {"code": -103, "message": f"Invalid argument 'id': {method} refused"}})

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def test_discovery_commands_and_reply_correlation(mosquitto_session: Mosquitto) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}/pro4pm"  # a two-level prefix: configured, not discovered
    device = FakeShelly(mosquitto_session.port, prefix)
    session = MqttSession(MqttSection.model_validate({"port": mosquitto_session.port, "status_topic": ""}),
                          SystemClock(), client_id=f"hearth-{uuid.uuid4().hex[:6]}")
    hub = Hub(SystemClock())
    config = {"shelly": {"src": f"hearth-{uuid.uuid4().hex[:6]}", "topic_prefixes": [prefix]}}
    try:
        async with session, Supervisor(hub, {"shelly": ShellyMqttAdapter}, config, mqtt=session) as supervisor:
            assert await session.wait_connected(5)
            dev_id = "shelly:shellypro4pm-a8032ab12345"
            for _ in range(200):
                if supervisor.instance("shelly") is not None:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # subscriptions reach the broker
            device.announce()
            for _ in range(300):
                if dev_id in hub.devices and hub.devices[dev_id].model:
                    break
                await asyncio.sleep(0.01)
            pro = hub.devices[dev_id]
            assert (pro.model, pro.available) == ("Pro4PM", True)
            assert pro.value("switch_2", "on_off", "on") is False

            result = await hub.execute(Command(dev_id, "switch_2", "on_off", "on"), timeout_s=3)
            assert result.status == "confirmed", result
            assert pro.value("switch_2", "on_off", "on") is True
            set_frame = next(r for r in device.requests if r["method"] == "Switch.Set")
            assert set_frame == {"id": set_frame["id"], "src": config["shelly"]["src"], "method": "Switch.Set",
                                 "params": {"id": 2, "on": True}}

            refused = await hub.execute(Command(dev_id, "main", "on_off", "toggle"), timeout_s=3)
            assert refused.status == "failed"
            assert "Invalid argument 'id'" in refused.message and "-103" in refused.message
    finally:
        device.close()


async def test_replay_of_a_recorded_house() -> None:
    result = await replay(FIXTURES / "capture.jsonl")
    assert result.errors == []
    devices = {d["id"]: d for d in result.devices}
    assert sorted(devices) == [
        "shelly:shellyplus1pm-441793d69718", "shelly:shellyplus2pm-c4d8d5512345", "shelly:shellyplusht-441793ccac64",
        "shelly:shellyplusi4-c4d8d5598765", "shelly:shellypro3em-1234567890ab", "shelly:shellypro4pm-a8032ab12345"]
    plug = devices["shelly:shellyplus1pm-441793d69718"]["components"]["main"]
    assert plug["on_off"] == {"on": True}  # status/switch:0 last
    assert plug["power_meter"]["watts"] == 11.5
    assert plug["energy_meter"]["kwh"] == pytest.approx(152.669987)  # 152669.987 Wh
    meter = devices["shelly:shellypro3em-1234567890ab"]["components"]
    assert meter["main"]["energy_meter"]["kwh"] == pytest.approx(26.28963)  # NotifyStatus overlaid
    assert meter["l3"]["power_meter"]["volts"] == 228.3
    assert devices["shelly:shellyplus2pm-c4d8d5512345"]["components"]["main"]["cover"] == {"motion": "stopped"}
    # a Plus H&T going back to sleep ("online": false) is not unreachable
    assert devices["shelly:shellyplusht-441793ccac64"]["available"] is True
    assert devices["shelly:shellyplusht-441793ccac64"]["components"]["main"]["temperature"] == {"celsius": 27.8}
    i4 = devices["shelly:shellyplusi4-c4d8d5598765"]["components"]
    assert i4["main"]["button"] == {"last_event": "single", "button": 0}
    assert i4["input_1"]["button"]["last_event"] == "long"
    assert devices["shelly:shellypro4pm-a8032ab12345"]["components"]["switch_2"]["on_off"] == {"on": True}
    # every new prefix was asked for its device info and full status, from our own src
    asks = [orjson.loads(p["payload"]) for p in result.published if p["topic"] == "garage-meter/rpc"]
    assert [a["method"] for a in asks] == ["Shelly.GetDeviceInfo", "Shelly.GetStatus"]
