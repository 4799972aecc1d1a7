"""``hearth demo`` as a user runs it: a real process with its embedded broker, the simulated house and its
resident at 600x speed. Within a bounded real time the API lists the simulated devices with live state,
a command echoes back from the simulated bridge, and the scripted bad morning raises an alert."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker import free_port
from tests.gateway_process import Api, wait_until

pytestmark = [pytest.mark.slow]

# 600x: a simulated hour every 6 s. The simulation starts at 05:30 local and the bad morning is today,
# so the morning check fires at 09:30, ~24 s after start; the inactivity alert at 10:00, ~27 s.
SPEED = 600


class Demo:
    def __init__(self, data_dir: Path, port: int) -> None:
        hearth = Path(sys.executable).parent / "hearth"
        self.proc = subprocess.Popen(
            [str(hearth), "demo", "--speed", str(SPEED), "--port", str(port), "--data-dir", str(data_dir),
             "--start", "05:30", "--bad-morning-day", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1", TZ="UTC"),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.text()}")

    def text(self) -> str:
        while not self.lines.empty():
            self.output.append(self.lines.get_nowait())
        return "".join(self.output)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Demo, Api]]:
    port = free_port()
    process = Demo(tmp_path / "demo-data", port)
    try:
        url = process.wait_for(r"web UI: +(http://127\.0\.0\.1:(\d+)/)", timeout_s=30)
        assert int(url.group(2)) == port
        token = process.wait_for(r"login token: (hth_\S+)", timeout_s=5).group(1)
        yield process, Api(port, token)
    finally:
        code = process.stop()
        print(process.text())
    assert code == 0, process.text()


def test_demo_shows_the_live_house_and_the_bad_morning_alert(demo: Any, tmp_path: Path) -> None:
    _process, api = demo
    started = time.monotonic()

    def live_devices() -> list[dict[str, Any]] | None:
        status, body = api.call("GET", "/api/devices")
        devices = body["devices"] if status == 200 else []
        mains = [d["components"]["main"] for d in devices]
        live = (len(devices) >= 22
                and any("power_meter" in m for m in mains)
                and any("temperature" in m for m in mains if "thermostat" not in m)
                and any("occupancy" in m for m in mains))
        return devices if live else None

    devices = wait_until(live_devices, timeout_s=15, what="the simulated devices with live state")
    by_name = {d["name"]: d for d in devices}
    assert by_name["Front door"]["area"] == "hall"
    assert by_name["ATC_000103"]["area"] == "outside"  # a BLE thermometer via the BLE-to-MQTT path
    assert by_name["Fridge"]["components"]["main"]["on_off"] == {"on": True}

    # A command goes to the simulated bridge, which answers with the new state.
    light = by_name["Kitchen light"]
    status, result = api.call("POST", f"/api/devices/{light['id']}/commands",
                              {"capability": "level", "command": "set", "args": {"percent": 40}})
    assert status in (200, 202), result
    wait_until(lambda: api.device(light["id"])["components"]["main"]["level"]["percent"] == pytest.approx(40, abs=1),
               timeout_s=5, what="the light's state echo")

    def bad_morning_alert() -> list[dict[str, Any]] | None:
        status, body = api.call("GET", "/api/alerts")
        found = body.get("alerts", []) if status == 200 else []
        alerts = [a for a in found if a.get("key") in ("morning", "inactivity")]
        return alerts or None

    alerts = wait_until(bad_morning_alert, timeout_s=45, what="the bad morning's alert")
    assert alerts[0]["severity"] == "critical" and alerts[0]["state"] == "open"
    assert time.monotonic() - started < 60
    # The token is kept for the next run (the demo prints the same one again).
    assert (tmp_path / "demo-data" / "demo-token").read_text().strip() == api.token
