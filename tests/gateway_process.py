"""Helpers for end-to-end tests: ``hearth run`` as a subprocess, the HTTP API, a fake Zigbee2MQTT bridge."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

FIXTURES = Path(__file__).parent / "fixtures" / "z2m"


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
        # Tests never multicast: mDNS stays off unless a test's config says otherwise (the mDNS tests run
        # their own services inside a private network namespace).
        text = self.config.read_text()
        if "[mdns]" not in text:
            self.config.write_text(text + "\n[mdns]\nenabled = false\n")
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

    def log_text(self) -> str:
        """Everything the process printed so far (shown when a test fails)."""
        while not self.lines.empty():
            self.output.append(self.lines.get_nowait())
        return "".join(self.output)

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

    def announce(self, devices: list[dict[str, Any]] | None = None) -> None:
        self.publish("bridge/state", {"state": "online"}, retain=True)
        if devices is None:
            devices = json.loads((FIXTURES / "bridge_devices.json").read_text())
        self.publish("bridge/devices", devices, retain=True)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
