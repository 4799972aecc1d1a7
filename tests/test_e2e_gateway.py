"""``hearth run`` as a user runs it: a real process, a real Mosquitto, a real SQLite file, the HTTP API.

Zigbee2MQTT is played by this test over MQTT with recorded payloads (tests/fixtures/z2m).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.broker import Mosquitto, free_port

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

FIXTURES = Path(__file__).parent / "fixtures" / "z2m"
PLUG = "zigbee2mqtt:0x00158d0001db18f9"  # Xiaomi ZNCZ02LM, friendly name "Plug"
LIGHT = "zigbee2mqtt:0x00158d0002b7d6be"  # Aqara bulb, "Bedroom Desk Light"
COMMIT_INTERVAL_S = 0.5


class GatewayProcess:
    """``hearth run --config FILE`` in a subprocess, its stdout read on a thread."""

    def __init__(self, config: Path, data_dir: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.token: str | None = None
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        hearth = Path(sys.executable).parent / "hearth"
        env = dict(os.environ, HEARTH_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [str(hearth), "run", "--config", str(self.config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        self.wait_for_line(r"ready: API at", timeout_s=30)

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line)

    def wait_for_line(self, pattern: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc is not None and self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            token = re.search(r"API token .*: (hth_\S+)", line)
            if token:
                self.token = token.group(1)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; output so far:\n{''.join(self.output)}")

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


class Api:
    def __init__(self, port: int, token: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def device(self, device_id: str) -> dict[str, Any] | None:
        status, body = self.call("GET", f"/api/devices/{device_id}")
        return body if status == 200 else None


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, urllib.error.URLError):
            last = None
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class FakeZigbee2Mqtt:
    """Plays the Zigbee2MQTT bridge: publishes bridge/devices and states, answers /set like a device."""

    def __init__(self, port: int) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"fake-z2m-{os.getpid()}")
        self.sets: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.answer = True
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("zigbee2mqtt/+/set")
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        name = message.topic[len("zigbee2mqtt/"):-len("/set")]
        payload = json.loads(message.payload)
        self.sets.put((name, payload))
        if self.answer:
            # A real device reports its new state after a /set; brightness and state as asked.
            # (No waiting here: this runs on paho's network thread.)
            client.publish(f"zigbee2mqtt/{name}", json.dumps(payload), qos=1)

    def publish(self, name: str, payload: Any, retain: bool = False) -> None:
        wait_until(self.client.is_connected, what="the fake bridge to be connected")
        data = payload if isinstance(payload, str) else json.dumps(payload)
        self.client.publish(f"zigbee2mqtt/{name}", data, qos=1, retain=retain).wait_for_publish(5)

    def announce(self) -> None:
        self.publish("bridge/state", {"state": "online"}, retain=True)
        self.publish("bridge/devices", json.loads((FIXTURES / "bridge_devices.json").read_text()), retain=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def house(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[GatewayProcess, Api, FakeZigbee2Mqtt, Mosquitto]]:
    api_port = free_port()
    config = tmp_path / "house.toml"
    config.write_text(
        f'[mqtt]\nport = {mosquitto.port}\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\n\n'
        f'[store]\npath = "{tmp_path / "hearth.db"}"\ncommit_interval_s = {COMMIT_INTERVAL_S}\n\n'
        f'[api]\nport = {api_port}\ncommand_timeout_s = 3\n\n'
        '[areas]\n"Plug" = "kitchen"\n'
    )
    gateway = GatewayProcess(config, tmp_path / "data")
    gateway.start()
    assert gateway.token, "the first start prints the API token"
    z2m = FakeZigbee2Mqtt(mosquitto.port)
    try:
        yield gateway, Api(api_port, gateway.token), z2m, mosquitto
    finally:
        z2m.close()
        if gateway.proc and gateway.proc.poll() is None:
            gateway.stop()


def test_devices_appear_commands_confirm_and_the_broker_can_restart(house: Any) -> None:
    _gateway, api, z2m, mosquitto = house
    z2m.announce()
    z2m.publish("Plug", {"energy": 12.31, "linkquality": 120, "power": 4.6, "state": "ON"})
    plug = wait_until(lambda: (d := api.device(PLUG)) and d["components"]["main"].get("power_meter") and d,
                      what="the plug's state in the API")
    assert plug["name"] == "Plug"
    assert plug["area"] == "kitchen"
    assert plug["components"]["main"]["on_off"] == {"on": True}
    assert plug["components"]["main"]["power_meter"]["watts"] == 4.6
    assert plug["components"]["main"]["energy_meter"]["kwh"] == 12.31
    status, listing = api.call("GET", "/api/devices")
    assert status == 200 and len(listing["devices"]) >= 15

    # A command goes out as the right /set payload and is confirmed by the device's report.
    status, result = api.call("POST", f"/api/devices/{LIGHT}/commands",
                              {"capability": "level", "command": "set", "args": {"percent": 50}})
    assert (status, result["status"]) == (200, "confirmed"), result
    name, payload = z2m.sets.get(timeout=5)
    assert name == "Bedroom Desk Light" and payload == {"brightness": 127}

    # A device that does not answer: the API says it was sent but not confirmed.
    z2m.answer = False
    status, result = api.call("POST", f"/api/devices/{PLUG}/commands", {"capability": "on_off", "command": "off"})
    assert (status, result["status"]) == (202, "timeout")
    assert z2m.sets.get(timeout=5) == ("Plug", {"state": "OFF"})
    z2m.answer = True

    # Bad requests name the field.
    status, result = api.call("POST", f"/api/devices/{LIGHT}/commands",
                              {"capability": "level", "command": "set", "args": {"percent": 180}})
    assert status == 400 and result["field"] == "args.percent"

    # Restart the broker under the running gateway: it reconnects, re-subscribes, and works again.
    mosquitto.restart()
    z2m.publish("Plug", {"power": 1234.5, "state": "ON"})
    wait_until(lambda: api.device(PLUG)["components"]["main"]["power_meter"]["watts"] == 1234.5,
               timeout_s=15, what="a state update after the broker restart")
    status, result = api.call("POST", f"/api/devices/{PLUG}/commands", {"capability": "on_off", "command": "off"})
    assert (status, result["status"]) == (200, "confirmed"), result
    status, health = 0, None
    with urllib.request.urlopen(api.base + "/healthz", timeout=5) as response:
        status, health = response.status, json.loads(response.read())
    assert status == 200 and health["mqtt"]["connected"] is True
    assert health["adapters"]["zigbee2mqtt"]["state"] == "running"


def test_kill_9_in_a_write_burst_loses_at_most_the_last_commit_interval(house: Any, tmp_path: Path) -> None:
    gateway, api, z2m, _ = house
    z2m.announce()
    # A burst of state changes, then time for one commit, then more changes and a kill -9 at once.
    for watts in range(1, 301):
        z2m.publish("Plug", {"power": float(watts), "state": "ON"})
    wait_until(lambda: (d := api.device(PLUG)) and d["components"]["main"].get("power_meter", {}).get("watts") == 300,
               what="the burst to arrive")
    time.sleep(COMMIT_INTERVAL_S * 4)  # at least one commit has happened since
    for watts in range(301, 2001):
        z2m.client.publish("zigbee2mqtt/Plug", json.dumps({"power": float(watts)}), qos=0)
    gateway.kill9()

    db = tmp_path / "hearth.db"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        history = connection.execute("SELECT count(*) FROM history WHERE device_id = ?", (PLUG,)).fetchone()[0]
    assert history >= 300  # every change of the committed burst is in the history

    restarted = GatewayProcess(gateway.config, gateway.data_dir)
    restarted.start()
    try:
        # The token from the first start still works (only its hash was stored), and the state is back
        # without any new message from the device.
        plug = api.device(PLUG)
        assert plug is not None
        assert plug["components"]["main"]["power_meter"]["watts"] >= 300
        assert plug["components"]["main"]["on_off"] == {"on": True}
        assert plug["area"] == "kitchen"
        _status, listing = api.call("GET", "/api/devices")
        assert len(listing["devices"]) >= 15
    finally:
        assert restarted.stop() == 0
    restarted.wait_for_line("Hearth stopped", timeout_s=5)
