"""Start-up time of ``hearth run`` with 1,000 devices in its store, against a minimal aiohttp server.

    python -m bench.startup [--rounds 3]

A private Mosquitto and the simulated house; a first ``hearth run`` learns the 1,000 devices and writes
them to its store (then stops: the measured runs start with them on disk). The broker's retained messages
are then cleared, so that what the measured runs know at "ready" comes from the store, not from the bridge.

Measured: from the process start to "ready": the API answers and ``GET /api/devices`` returns all 1,000
stored devices (polled every 10 ms from the moment the process prints its ready line). Baseline, in the
same run: a Python process that imports aiohttp, listens and answers one GET (python start + aiohttp import
+ listen), timed the same way. Median of ``--rounds``. Last line:
``startup: <s> s, ratio <R> vs baseline``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._broker import HOST, BenchBroker
from bench._gateway import GatewayProcess, announce, free_port, write_config
from gateway.sim import scaled_house
from gateway.sim.house import BASE_TOPIC

DEVICES = 1000
_TIMEOUT_S = 60.0
_POLL_S = 0.01

_MINIMAL_SERVER = """
import sys
from aiohttp import web
async def hello(request):
    return web.json_response({"devices": []})
app = web.Application()
app.router.add_get("/api/devices", hello)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def _answers(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.read()
    except OSError:
        return None


def time_baseline() -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _MINIMAL_SERVER, str(port)], stdin=subprocess.DEVNULL)
    try:
        deadline = started + _TIMEOUT_S
        while _answers(f"http://{HOST}:{port}/api/devices") is None:
            if time.perf_counter() > deadline or proc.poll() is not None:
                raise RuntimeError("the minimal aiohttp server did not answer")
            time.sleep(_POLL_S)
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def time_gateway(config: Path, data_dir: Path, token: str | None) -> float:
    gateway = GatewayProcess(config, data_dir)
    gateway.token = token  # shown only by the first run
    gateway.start()
    try:
        gateway.wait_ready(_TIMEOUT_S)
        deadline = time.perf_counter() + _TIMEOUT_S
        while True:
            try:
                if gateway.device_count() >= DEVICES:
                    return time.perf_counter() - gateway.started_at
            except OSError:
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError("the gateway did not list the stored devices")
            time.sleep(_POLL_S)
    finally:
        gateway.stop()


def clear_retained(port: int) -> None:
    """Empty retained payloads delete the broker's retained bridge/devices and states."""
    house = scaled_house(DEVICES)
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-clear")
    client.connect(HOST, port, keepalive=60)
    client.loop_start()
    try:
        topics = [f"{BASE_TOPIC}/bridge/devices", f"{BASE_TOPIC}/bridge/state", *(d.topic for d in house.zigbee)]
        for info in [client.publish(topic, b"", qos=1, retain=True) for topic in topics]:
            info.wait_for_publish(30)
    finally:
        client.loop_stop()
        client.disconnect()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rounds = max(1, min(args.rounds, 20))
    house = scaled_house(DEVICES)
    gateway_s: list[float] = []
    baseline_s: list[float] = []
    with BenchBroker() as broker, tempfile.TemporaryDirectory(prefix="hearth-startup-") as tmp:
        data_dir = Path(tmp)
        config = write_config(data_dir / "config.toml", broker_port=broker.port, data_dir=data_dir, house=house,
                              api_port=free_port())
        announce(broker.port, house)
        first = GatewayProcess(config, data_dir)
        first.start()
        try:  # the first run learns the devices; stopping it writes them to the store
            first.wait_ready(_TIMEOUT_S)
            first.wait_devices(DEVICES)
        finally:
            first.stop()
        clear_retained(broker.port)
        for _ in range(rounds):
            baseline_s.append(time_baseline())
            gateway_s.append(time_gateway(config, data_dir, first.token))
            print(f"  baseline {baseline_s[-1]:.3f} s, gateway {gateway_s[-1]:.3f} s", flush=True)
    gateway_median, baseline_median = statistics.median(gateway_s), statistics.median(baseline_s)
    print(f"median of {rounds}: minimal aiohttp server {baseline_median:.3f} s; hearth run to ready with "
          f"{DEVICES} stored devices listed {gateway_median:.3f} s (target: <= 1.5 s)")
    print(f"startup: {gateway_median:.2f} s, ratio {gateway_median / baseline_median:.2f} vs baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
