"""Scenes in a real ``hearth run``: a pending "for" timer and an alert's escalation survive a restart of
the gateway process, notifications arrive over MQTT, and an acknowledgement through the API stops them."""

from __future__ import annotations

import json
import queue
import re
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.broker import Mosquitto, free_port
from tests.gateway_process import Api, FakeZigbee2Mqtt, GatewayProcess, wait_until
from tests.scenes.house import bridge_devices, device_id
from tests.scenes.house import config_text as house_config

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

PROFILE = """[[profiles]]
use = "elderly-monitoring"
[profiles.params]
contacts = ["daughter", "neighbour"]
panic_escalate_after = "6s"
temperature_for = "8s"
reminders = 0
"""


class Inbox:
    """Notifications as a carer's phone would get them: an MQTT subscriber on the notify topics."""

    def __init__(self, port: int) -> None:
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("carers/#", qos=1)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def next(self, timeout_s: float) -> tuple[str, dict[str, Any]]:
        return self.messages.get(timeout=timeout_s)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def write_config(tmp_path: Path, broker_port: int, api_port: int, commit_interval_s: float) -> Path:
    notify = ('[notify.daughter]\nkind = "mqtt"\ntopic = "carers/daughter"\n\n'
              '[notify.neighbour]\nkind = "mqtt"\ntopic = "carers/neighbour"\n')
    logs = '[notify.daughter]\nkind = "log"\n\n[notify.neighbour]\nkind = "log"\n'
    text = house_config(profiles=PROFILE).replace(logs, notify)
    config = tmp_path / "house.toml"
    config.write_text(
        f"[mqtt]\nport = {broker_port}\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\n\n"
        f'[store]\npath = "{tmp_path / "hearth.db"}"\ncommit_interval_s = {commit_interval_s}\n\n'
        f"[api]\nport = {api_port}\n\n{text}"
    )
    return config


def test_timers_and_escalations_survive_a_restart(tmp_path: Path, mosquitto: Mosquitto) -> None:
    api_port = free_port()
    config = write_config(tmp_path, mosquitto.port, api_port, 0.5)
    inbox = Inbox(mosquitto.port)
    gateway = GatewayProcess(config, tmp_path / "data")
    gateway.start()
    assert gateway.token
    api = Api(api_port, gateway.token)
    z2m = FakeZigbee2Mqtt(mosquitto.port)
    restarted: GatewayProcess | None = None
    try:
        z2m.announce(bridge_devices())
        z2m.publish("bedroom/climate", {"temperature": 21.0})
        wait_until(lambda: api.device(device_id("bedroom/panic")), what="the house's devices")
        status, scenes = api.call("GET", "/api/scenes")
        assert status == 200 and "elderly-monitoring.panic" in [s["id"] for s in scenes["scenes"]]

        # A panic press: the daughter is told at once; the neighbour would be 6 s later...
        z2m.publish("bedroom/panic", {"action": "single"})
        topic, first = inbox.next(timeout_s=10)
        pressed = time.monotonic()
        assert topic == "carers/daughter" and first["severity"] == "critical"
        assert "bedroom/panic was pressed" in first["message"]
        # ... and the bedroom gets cold: the alert is due 8 s after this, if it stays cold.
        z2m.publish("bedroom/climate", {"temperature": 14.0})
        cold_since = time.monotonic()
        time.sleep(1.5)  # the store commits every 0.5 s

        # The gateway restarts in the middle of both.
        assert gateway.stop() == 0
        restarted = GatewayProcess(config, tmp_path / "data")
        restarted.start()

        topic, second = inbox.next(timeout_s=15)
        assert topic == "carers/neighbour" and second["alert_id"] == first["alert_id"]
        # the start-up log says what was restored and when each is due
        log = restarted.log_text()
        assert re.search(r"restored hold: elderly-monitoring\.too-cold on \S+ \(main\), due ", log), log
        assert re.search(rf"restored escalation: alert {first['alert_id']} .*next step due ", log), log
        assert time.monotonic() - pressed >= 5.5  # escalated on schedule, not at once after the restart
        assert second["message"].startswith("[not acknowledged by daughter]")

        status, alerts = api.call("GET", "/api/alerts?state=open")
        panic = next(a for a in alerts["alerts"] if a["key"] == "panic")
        status, acked = api.call("POST", f"/api/alerts/{panic['id']}/ack")
        assert status == 200 and acked["acknowledged_by"]

        # The cold-room timer resumed and fired ~8 s after the temperature dropped.
        topic, cold = wait_for_alert(inbox, "cold")
        assert time.monotonic() - cold_since >= 7.5
        assert cold["message"].startswith("bedroom: 14.0 °C")

        # No more panic reminders after the acknowledgement (the next would have been due 6 s later).
        time.sleep(7)
        late = [m for m in drain(inbox) if m[1].get("alert_id") == panic["id"]]
        assert late == []
        status, alerts = api.call("GET", "/api/alerts")
        panic_now = next(a for a in alerts["alerts"] if a["id"] == panic["id"])
        assert panic_now["acknowledged_at"] and [n["status"] for n in panic_now["notifications"]] == [
            "delivered", "delivered"]
    finally:
        z2m.close()
        inbox.close()
        for process in (gateway, restarted):
            if process is not None and process.proc and process.proc.poll() is None:
                process.stop()
            if process is not None:
                print(process.log_text())


def wait_for_alert(inbox: Inbox, key: str) -> tuple[str, dict[str, Any]]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        topic, message = inbox.next(timeout_s=max(0.1, deadline - time.monotonic()))
        if message.get("alert_id", "").startswith(f"{key}-"):
            return topic, message
    raise AssertionError(f"no {key} alert")


def drain(inbox: Inbox) -> list[tuple[str, dict[str, Any]]]:
    out = []
    while True:
        try:
            out.append(inbox.messages.get_nowait())
        except queue.Empty:
            return out


def test_alert_transitions_survive_kill_9_at_once(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A batch is committed every minute here: only what the engine commits at once survives the kill."""
    api_port = free_port()
    config = write_config(tmp_path, mosquitto.port, api_port, 60)
    inbox = Inbox(mosquitto.port)
    processes: list[GatewayProcess] = []

    def start() -> Api:
        process = GatewayProcess(config, tmp_path / "data")
        processes.append(process)
        process.start()
        return Api(api_port, processes[0].token or "")

    z2m = FakeZigbee2Mqtt(mosquitto.port)
    try:
        api = start()
        z2m.announce(bridge_devices())
        wait_until(lambda: api.device(device_id("bedroom/panic")), what="the house's devices")

        # Raised and paged: a kill -9 right after the page must not raise it again under a new id.
        z2m.publish("bedroom/panic", {"action": "single"})
        _, first = inbox.next(timeout_s=10)
        processes[-1].kill9()
        api = start()
        status, alerts = api.call("GET", "/api/alerts")
        assert [(a["id"], a["state"]) for a in alerts["alerts"]] == [(first["alert_id"], "open")]

        # Acknowledged, confirmed by the API, then killed: still acknowledged, and nobody paged again.
        status, acked = api.call("POST", f"/api/alerts/{first['alert_id']}/ack")
        assert status == 200 and acked["state"] == "acknowledged"
        processes[-1].kill9()
        api = start()
        status, alerts = api.call("GET", "/api/alerts")
        assert [(a["id"], a["state"]) for a in alerts["alerts"]] == [(first["alert_id"], "acknowledged")]
        time.sleep(7)  # the next reminder would have been due 6 s after the first page
        assert [m for m in drain(inbox) if m[1].get("alert_id") == first["alert_id"]] == []

        # Into the bathroom, and the gateway dies a second later: the long-stay alert must still know.
        z2m.publish("bathroom/motion", {"occupancy": True})
        wait_until(lambda: api.call("GET", "/api/house")[1]["last_area"] == "bathroom", what="bathroom entry")
        time.sleep(1.0)
        processes[-1].kill9()
        api = start()
        assert api.call("GET", "/api/house")[1]["last_area"] == "bathroom"
    finally:
        z2m.close()
        inbox.close()
        for process in processes:
            if process.proc and process.proc.poll() is None:
                process.stop()
            print(process.log_text())
