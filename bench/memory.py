"""Memory of ``hearth run`` with the simulated house of 1,000 devices known and both profiles active.

    python -m bench.memory [--load-seconds 20] [--rate 2000] [--stream changing|house] [--event-loop asyncio]

A private Mosquitto, the house announced (bridge/devices and one retained state per device), then
``hearth run`` as a process of its own. Once it knows the 1,000 devices, ``--rate`` msg/s of device traffic
for ``--load-seconds`` (the stress stream, every value changing at every message, or with ``--stream
house`` what a house sends: see bench/ingest.py); RSS and PSS are sampled every 0.5 s over the second half
of it (/proc/<pid>/status VmRSS, /proc/<pid>/smaps_rollup Pss): steady = their median, peak = VmHWM at
the end.

Baseline (same run): a fresh interpreter that only imports what the gateway imports (the CLI, the runtime
modules ``Gateway.run`` imports, the entry points of the adapters the config enables); its RSS over the
gateway's steady RSS is the import-time share. A second fresh interpreter imports only the libraries under
it (no module of Hearth's): the floor, so the line after it splits the steady RSS into the libraries,
Hearth's modules and the running gateway. The same process reports which optional dependencies that
import pulled in (they must load lazily: bleak only when Bluetooth is used, zeroconf for mDNS, amqtt for the
embedded broker), and the gateway's /proc/<pid>/maps shows which of their compiled modules the running gateway loaded.
Last line: ``memory: <steady RSS> MB steady RSS, ratio <R> vs baseline`` (R = steady RSS / import-only RSS).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import _traffic
from bench._broker import BenchBroker
from bench._gateway import GatewayProcess, announce, bytecode_env, free_port, write_config
from gateway.sim import scaled_house

DEVICES = 1000
OPTIONAL = ("bleak", "dbus_fast", "zeroconf", "amqtt", "aiohttp.client", "gateway.mdns", "gateway.broker",
            "gateway.sim")
# Compiled modules of optional dependencies, as they appear in /proc/<pid>/maps when loaded.
OPTIONAL_SO = ("zeroconf", "dbus_fast", "bleak")

_IMPORT_PROBE = """
import json, sys
import gateway.cli, gateway.app
# what Gateway.run imports when it starts
import gateway.api.app, gateway.api.auth, gateway.api.scenes, gateway.scenes.engine, gateway.scenes.notify
import gateway.scenes.setup, gateway.store, gateway.mqtt
from gateway.supervisor import discover_adapters
discover_adapters(lambda name: name != "ble")  # the adapters the bench config enables (no Bluetooth here)
from gateway.app import event_loop_factory
event_loop_factory(EVENT_LOOP)  # uvloop, where `hearth run` takes it
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({"rss_kb": rss, "loaded": [m for m in OPTIONAL if m in sys.modules],
                  "modules": len(sys.modules)}))
"""

# The libraries the gateway is built on, imported with none of Hearth's code: the floor under the import
# share (what the running gateway loads of each: the standard library's asyncio, ssl, sqlite3 and tomllib,
# uvloop with its loop made, orjson, paho-mqtt's client, aiohttp's server and pydantic with one model built,
# as Hearth's first config model makes pydantic build its machinery).
_STACK_PROBE = """
import json
import asyncio, sqlite3, ssl, tomllib, importlib.metadata
import orjson, paho.mqtt.client
from aiohttp import web
from pydantic import BaseModel
class Probe(BaseModel):
    name: str = "probe"
Probe.model_validate({"name": "x"})
if EVENT_LOOP != "asyncio":
    try:
        import uvloop
    except ImportError:
        pass
    else:
        uvloop.new_event_loop().close()
rss = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
print(json.dumps({"rss_kb": rss}))
"""


def proc_memory(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB, /proc/pid/status) and Pss (kB, /proc/pid/smaps_rollup)."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    out["Pss"] = int(line.split()[1])
    except OSError:
        out["Pss"] = -1
    return out


def loaded_shared_objects(pid: int) -> list[str]:
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
        paths = {line.split()[-1] for line in maps if ".so" in line}
    return sorted({name for name in OPTIONAL_SO for path in paths if f"/{name}/" in path})


def import_probe(event_loop: str = "auto", *, stack_only: bool = False) -> dict[str, object]:
    """RSS of a fresh interpreter that imports what the gateway imports (or only the libraries under it)."""
    code = f"OPTIONAL = {OPTIONAL!r}\nEVENT_LOOP = {event_loop!r}\n" + (_STACK_PROBE if stack_only else _IMPORT_PROBE)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         env=bytecode_env())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--stream", choices=sorted(_traffic.STREAMS), default="changing",
                        help="the device traffic: every value changing at every message, or what a house sends")
    parser.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                        help="[gateway] event_loop of the measured gateway")
    args = parser.parse_args(argv)
    load_s = max(2.0, min(args.load_seconds, 600.0))
    house = scaled_house(DEVICES)
    samples: list[dict[str, int]] = []
    with BenchBroker() as broker, tempfile.TemporaryDirectory(prefix="hearth-memory-") as tmp:
        data_dir = Path(tmp)
        config = write_config(data_dir / "config.toml", broker_port=broker.port, data_dir=data_dir, house=house,
                              api_port=free_port(), event_loop=args.event_loop)
        announce(broker.port, house)
        with GatewayProcess(config, data_dir) as gateway:
            gateway.wait_ready()
            at_ready = proc_memory(gateway.pid)
            gateway.wait_devices(DEVICES)
            publisher = _traffic.start_paced(broker.port, args.rate, load_s, stream=args.stream)
            try:
                started = time.monotonic()
                while publisher.poll() is None and time.monotonic() - started < load_s + 60:
                    if time.monotonic() - started >= load_s / 2:
                        samples.append(proc_memory(gateway.pid))
                    time.sleep(0.5)
            finally:
                if publisher.poll() is None:
                    publisher.terminate()
                publisher.wait(timeout=30)
            final = proc_memory(gateway.pid)
            so_loaded = loaded_shared_objects(gateway.pid)
            devices = gateway.device_count()
    probe = import_probe(args.event_loop)
    stack = import_probe(args.event_loop, stack_only=True)
    steady_rss = statistics.median(s["VmRSS"] for s in samples) / 1024
    steady_pss = statistics.median(s["Pss"] for s in samples) / 1024
    import_rss = int(probe["rss_kb"]) / 1024  # type: ignore[call-overload]
    print(f"hearth run (event_loop = {args.event_loop}), {devices} devices, both profiles, {args.rate:,.0f} msg/s "
          f"of the {args.stream} stream: at ready "
          f"{at_ready['VmRSS'] / 1024:.1f} MB RSS; steady {steady_rss:.1f} MB RSS, {steady_pss:.1f} MB PSS "
          f"(median of {len(samples)} samples); peak {final['VmHWM'] / 1024:.1f} MB (VmHWM)")
    print(f"import only (what the gateway imports, {probe['modules']} modules): {import_rss:.1f} MB RSS = "
          f"{import_rss / steady_rss * 100:.0f} % of the steady RSS")
    stack_rss = int(stack["rss_kb"]) / 1024  # type: ignore[call-overload]
    print(f"of which the libraries alone (asyncio, ssl, sqlite3, uvloop, orjson, paho-mqtt, aiohttp's server, "
          f"pydantic; none of Hearth's modules): {stack_rss:.1f} MB; Hearth's modules "
          f"{import_rss - stack_rss:+.1f} MB; "
          f"the running gateway (1,000 devices, traffic, threads) {steady_rss - import_rss:+.1f} MB")
    print(f"optional dependencies loaded by the imports: {', '.join(probe['loaded']) or 'none'}; "  # type: ignore[arg-type]
          f"compiled optional modules in the running gateway: {', '.join(so_loaded) or 'none'}")
    print("target: <= 60 MB steady RSS")
    print(f"memory: {steady_rss:.1f} MB steady RSS, ratio {steady_rss / import_rss:.2f} vs baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
