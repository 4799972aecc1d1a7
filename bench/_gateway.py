"""The gateway under benchmark: its config for the simulated house, the bridge's announcement, and the
gateway itself, in this process (``InProcessGateway``) or as a process of its own (``GatewayProcess``).

``python -m bench._gateway CONFIG`` is ``hearth run --config CONFIG`` with two additions for the latency
benchmark: it records the garbage collector's pauses (``gc.callbacks``) and prints them when it stops,
and ``--no-gc-freeze`` undoes the gateway's ``gc.freeze()`` after start-up (to measure what it buys).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import io
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._broker import HOST
from gateway.sim import House
from gateway.sim.house import BASE_TOPIC

BENCH_DIR = Path(__file__).resolve().parent
_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0
_ANNOUNCE_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a TOML basic string (ASCII, escapes alike)


def config_text(*, broker_port: int, data_dir: Path, house: House, api_port: int = 0,
                profiles: tuple[str, ...] = ("energy-saving", "elderly-monitoring"),
                extra_tags: dict[str, list[str]] | None = None, extra_areas: dict[str, str] | None = None,
                manual_override_min: float | None = None,
                profile_dirs: tuple[Path, ...] = (), api: bool = True, commit_interval_s: float | None = None,
                event_loop: str = "auto") -> str:
    """A config.toml for ``house`` on the bench broker: both shipped profiles, areas and tags of the house."""
    lines = [
        "[gateway]", 'log_level = "warning"', f"data_dir = {_toml_str(str(data_dir))}",
        f"event_loop = {_toml_str(event_loop)}", "",
        "[mqtt]", f'host = "{HOST}"', f"port = {broker_port}", "",
        "[api]", f"enabled = {'true' if api else 'false'}", f'host = "{HOST}"', f"port = {api_port}", "",
        "[store]", *([f"commit_interval_s = {commit_interval_s}"] if commit_interval_s else []), "",
        # No Bluetooth radio on a bench machine: the adapter would only retry (and log) all along.
        "[adapters.ble]", "enabled = false", "",
        # No multicast from benchmarks (this machine's rule): mDNS off.
        "[mdns]", "enabled = false", "",
        "[scenes]",
    ]
    if manual_override_min is not None:
        lines.append(f"manual_override_min = {manual_override_min}")
    if profile_dirs:
        lines.append("profile_dirs = [" + ", ".join(_toml_str(str(p)) for p in profile_dirs) + "]")
    lines.append("")
    for name in profiles:
        lines += ["[[profiles]]", f"use = {_toml_str(name)}"]
        if name == "elderly-monitoring":
            lines.append('params = { contacts = ["log"] }')
        lines.append("")
    lines.append("[areas]")
    areas = {**house.areas(), **(extra_areas or {})}
    lines += [f"{_toml_str(device_id)} = {_toml_str(area)}" for device_id, area in areas.items()]
    tags = house.tags()
    for device_id, extra in (extra_tags or {}).items():
        tags[device_id] = [*tags.get(device_id, []), *extra]
    lines += ["", "[tags]"]
    lines += [f"{_toml_str(device_id)} = [{', '.join(_toml_str(t) for t in t_list)}]"
              for device_id, t_list in tags.items()]
    return "\n".join(lines) + "\n"


def write_config(path: Path, **kwargs: Any) -> Path:
    path.write_text(config_text(**kwargs), encoding="utf-8")
    return path


def announce(broker_port: int, house: House, *, states: bool = True) -> None:
    """Play the bridge: bridge/state and bridge/devices (retained), then one state per device (retained,
    as Zigbee2MQTT does), so that a gateway starting now or later knows all of them."""
    from gateway.sim.stream import state_payload

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bridge-{os.getpid()}")
    client.connect(HOST, broker_port, keepalive=60)
    client.loop_start()
    try:
        infos = [client.publish(f"{BASE_TOPIC}/bridge/state", b'{"state":"online"}', qos=1, retain=True),
                 client.publish(f"{BASE_TOPIC}/bridge/devices", orjson.dumps(house.bridge_devices()), qos=1,
                                retain=True)]
        if states:
            import random

            rng = random.Random(0)
            for device in house.zigbee:
                payload = state_payload(device, 0, rng)
                if device.kind == "light":
                    payload["state"] = "OFF"  # every light starts off (the latency probe relies on it)
                infos.append(client.publish(device.topic, orjson.dumps(payload), qos=1, retain=True))
        for info in infos:
            info.wait_for_publish(_ANNOUNCE_TIMEOUT_S)
    finally:
        client.loop_stop()
        client.disconnect()


class InProcessGateway:
    """``async with InProcessGateway(config) as gw:`` runs ``Gateway(config).run()`` as a task of this loop."""

    def __init__(self, config_path: Path) -> None:
        from gateway.config import load_config

        self.config = load_config(config_path)
        self.gateway: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Any:
        from gateway.app import Gateway

        self.gateway = Gateway(self.config, out=io.StringIO())
        self._task = asyncio.get_running_loop().create_task(
            self.gateway.run(install_signal_handlers=False), name="bench:gateway")
        ready = asyncio.ensure_future(self.gateway.ready.wait())
        done, _ = await asyncio.wait({ready, self._task}, timeout=_READY_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            await self.__aexit__(None, None, None)
            raise RuntimeError("the gateway did not become ready")
        return self.gateway

    async def __aexit__(self, *exc: object) -> None:
        if self.gateway is not None:
            self.gateway.request_stop()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, _STOP_TIMEOUT_S)
            self._task = None


async def wait_for_devices(gateway: Any, count: int, timeout_s: float = _ANNOUNCE_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while len(gateway.hub.devices) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway knows {len(gateway.hub.devices)} devices, not {count}")
        await asyncio.sleep(0.05)


@functools.cache
def _compile_project() -> None:
    """Once per benchmark process (every gateway it starts reads the same bytecode)."""
    import compileall
    import importlib.util

    for package in ("gateway", "adapters"):
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(location, quiet=1)


def bytecode_env() -> dict[str, str]:
    """The environment for a measured process, with the project's modules byte-compiled first.

    A ``pip install`` writes every module's bytecode (.pyc); a process started with
    PYTHONDONTWRITEBYTECODE from a source checkout compiles each module at every start instead, which
    costs ~0.3 s and ~4 MB of RSS that no installed gateway pays. So the benchmarks compile the project's
    packages once (``compileall`` skips what is up to date) and let the child read and write bytecode.
    """
    _compile_project()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


class GatewayProcess:
    """A gateway in a process of its own: ``hearth run`` (default) or ``python -m bench._gateway``."""

    def __init__(self, config_path: Path, data_dir: Path, *, wrapper: bool = False,
                 wrapper_args: tuple[str, ...] = ()) -> None:
        self.config_path = config_path
        self.data_dir = data_dir
        if wrapper:
            self.argv = [sys.executable, "-m", "bench._gateway", str(config_path), *wrapper_args]
        else:
            self.argv = [str(Path(sys.executable).parent / "hearth"), "run", "--config", str(config_path)]
        self.proc: subprocess.Popen[str] | None = None
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.token: str | None = None
        self.api_url: str | None = None
        self.started_at = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        env = dict(bytecode_env(), HEARTH_DATA_DIR=str(self.data_dir), PYTHONUNBUFFERED="1")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, stdin=subprocess.DEVNULL)
        threading.Thread(target=self._read, args=(self.proc,), name="bench-gateway-output", daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line)

    def wait_for_line(self, pattern: str, timeout_s: float = _READY_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.01)
            except queue.Empty:
                if self.proc is not None and self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            token = re.search(r"API token .*: (hth_\S+)", line)
            if token:
                self.token = token.group(1)
            url = re.search(r"ready: API at (http://\S+),", line)
            if url:
                self.api_url = url.group(1)
            if re.search(pattern, line):
                return line
        raise RuntimeError(f"no line matching {pattern!r} from the gateway; its output:\n{''.join(self.output)}")

    def wait_ready(self, timeout_s: float = _READY_TIMEOUT_S) -> None:
        self.wait_for_line(r"ready: API at", timeout_s)

    def get(self, path: str, timeout_s: float = 10.0) -> tuple[int, Any]:
        assert self.api_url is not None
        request = urllib.request.Request(self.api_url + path)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return response.status, orjson.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, None

    def device_count(self) -> int:
        status, body = self.get("/api/devices")
        if status != 200:
            return -1
        return len(body["devices"] if isinstance(body, dict) else body)

    def wait_devices(self, count: int, timeout_s: float = _ANNOUNCE_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while self.device_count() < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not learn {count} devices in {timeout_s:g} s")
            time.sleep(0.1)

    def stop(self) -> str:
        """SIGTERM, wait; returns everything it printed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=_STOP_TIMEOUT_S)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                self.output.append(self.lines.get(timeout=0.05))
            except queue.Empty:
                if self.proc is None or self.proc.poll() is not None:
                    break
        return "".join(self.output)

    def __enter__(self) -> GatewayProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------- the wrapper


class GcPauses:
    """Every collection's duration, from gc.callbacks: (generation, seconds)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []
        self.spans: list[tuple[float, float]] = []  # (wall time it began, seconds): which probes it delayed
        self._started = 0.0
        self._started_wall = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            self._started_wall = time.time()
        else:
            took = time.perf_counter() - self._started
            self.pauses.append((info["generation"], took))
            self.spans.append((self._started_wall, took))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for gen in (0, 1, 2):
            times = [t for g, t in self.pauses if g == gen]
            out[f"gen{gen}"] = {"count": len(times), "max_ms": round(max(times, default=0) * 1000, 3),
                                "total_ms": round(sum(times) * 1000, 3)}
        return out


class Spans:
    """Spans of what may delay a probe or a message, for the tail's attribution: the store's commits (its
    worker thread competes with the loop for a core and the GIL), each as (start on ``clock``, seconds).
    bench/latency.py records them in the gateway's process on the wall clock (to match the prober's), with
    the collector's pauses (GcPauses); bench/commitlag.py on perf_counter, in its own process."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.commits: list[tuple[float, float]] = []

    def install(self) -> Callable[[], None]:
        """Wrap ``Store._write_batch`` (bench only); returns what puts it back."""
        from gateway.store import Store

        spans, write_batch = self, Store._write_batch

        def timed_write_batch(store: Any, batch: Any) -> Any:
            began, started = spans.clock(), time.perf_counter()
            try:
                return write_batch(store, batch)
            finally:
                spans.commits.append((began, time.perf_counter() - started))

        def uninstall() -> None:
            Store._write_batch = write_batch  # type: ignore[method-assign]

        Store._write_batch = timed_write_batch  # type: ignore[method-assign,assignment]
        return uninstall


class ProbePath:
    """The gateway's own share of a probe: from the socket read that brought a probe sensor's message to
    the ``/set`` command written for it, timed inside the process (the rest is the broker, the machine
    and the probe). Wraps three methods of this process's MqttSession class: bench only."""

    def __init__(self, probe_topics: set[str], answer_topic: str) -> None:
        self.probe_topics = probe_topics
        self.answer_topic = answer_topic
        self.read_at = 0.0
        self.pending: tuple[float, float] | None = None
        # (wall time, read -> written, dispatch -> written), seconds
        self.samples: list[tuple[float, float, float]] = []
        # HEARTH_BENCH_PROFILE_PROBES=<file>: cProfile of the probe messages' handling only, written there
        # at exit (what the own path is made of; the timing with it on is not the figure).
        self.profile_to = os.environ.get("HEARTH_BENCH_PROFILE_PROBES") or None
        self.profiler: Any = None
        if self.profile_to:
            import cProfile

            self.profiler = cProfile.Profile()

    def install(self) -> None:
        from gateway.mqtt import MqttSession

        path, clock = self, time.perf_counter
        on_readable, dispatch, publish_now = (MqttSession._on_readable, MqttSession._dispatch,
                                              MqttSession._publish_now)

        def timed_readable(session: Any) -> None:
            path.read_at = clock()
            on_readable(session)

        profiler = path.profiler

        def timed_dispatch(session: Any, topic: str, payload: bytes, retain: bool) -> None:
            if topic in path.probe_topics:
                path.pending = (path.read_at, clock())
                if profiler is not None:
                    profiler.enable()
                    try:
                        dispatch(session, topic, payload, retain)
                    finally:
                        profiler.disable()
                    return
            dispatch(session, topic, payload, retain)

        def timed_publish(session: Any, topic: str, payload: bytes | str, qos: int, retain: bool) -> None:
            publish_now(session, topic, payload, qos, retain)
            if path.pending is not None and topic == path.answer_topic:
                now = clock()
                path.samples.append((time.time(), now - path.pending[0], now - path.pending[1]))
                path.pending = None

        MqttSession._on_readable = timed_readable  # type: ignore[method-assign]
        MqttSession._dispatch = timed_dispatch  # type: ignore[method-assign]
        MqttSession._publish_now = timed_publish  # type: ignore[method-assign]

    def summary(self) -> list[list[float]]:
        return [[round(t, 4), round(a * 1000, 4), round(b * 1000, 4)] for t, a, b in self.samples]


def _wrapper_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hearth run, with GC pauses recorded (bench only)")
    parser.add_argument("config")
    parser.add_argument("--no-gc-freeze", action="store_true")
    parser.add_argument("--switch-interval-ms", type=float, help="sys.setswitchinterval (experiments)")
    parser.add_argument("--gc-auto", action="store_true",
                        help="CPython's own collection schedule, not the gateway's pacer (to compare)")
    parser.add_argument("--probe-topic", action="append", default=[],
                        help="time the gateway's own path from this topic's messages to --probe-answer")
    parser.add_argument("--probe-answer", default="", help="the command topic that answers a probe")
    args = parser.parse_args(argv)
    if args.switch_interval_ms:
        sys.setswitchinterval(args.switch_interval_ms / 1000)
    if args.gc_auto:
        from gateway.gcpace import CollectorPacer

        CollectorPacer.start = lambda self, loop: None  # type: ignore[method-assign]

    from gateway.app import GC_SETTLE_S, Gateway, run_on_event_loop, shorten_time_slice, tune_malloc
    from gateway.cli import _setup_logging
    from gateway.config import load_config

    config = load_config(args.config)
    _setup_logging(config.gateway.log_level)
    if not os.environ.get("HEARTH_BENCH_NO_MALLOC_TUNING"):
        tune_malloc()  # as `hearth run` does
    shorten_time_slice(config.gateway.loop_slice_us)  # as `hearth run` does
    pauses = GcPauses()
    spans = Spans()
    spans.install()
    probe_path = ProbePath(set(args.probe_topic), args.probe_answer)
    if args.probe_topic:
        probe_path.install()

    async def run() -> None:
        gateway = Gateway(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.request_stop)
        task = loop.create_task(gateway.run(install_signal_handlers=False), name="gateway")
        await gateway.ready.wait()
        if args.no_gc_freeze:
            gc.unfreeze()
        print(f"gc: frozen {gc.get_freeze_count()} objects at ready", flush=True)
        if not args.no_gc_freeze:
            await asyncio.wait({task}, timeout=GC_SETTLE_S + 0.5)
        print(f"gc: frozen {gc.get_freeze_count()} objects after start-up", flush=True)
        gc.callbacks.append(pauses)
        await task

    run_on_event_loop(run(), config.gateway.event_loop)  # as `hearth run`
    gc.callbacks.remove(pauses)
    print("gc-pauses: " + json.dumps(pauses.summary()), flush=True)
    if args.probe_topic:
        print("probe-path: " + json.dumps(probe_path.summary()), flush=True)
        print("spans: " + json.dumps({"gc": [[round(t, 4), round(d * 1000, 3)] for t, d in pauses.spans],
                                      "commit": [[round(t, 4), round(d * 1000, 3)] for t, d in spans.commits]}),
              flush=True)
        if probe_path.profiler is not None:
            probe_path.profiler.dump_stats(probe_path.profile_to)
    return 0


def parse_gc_pauses(output: str) -> dict[str, Any] | None:
    match = re.search(r"^gc-pauses: (\{.*\})$", output, re.MULTILINE)
    return json.loads(match.group(1)) if match else None


def parse_spans(output: str) -> dict[str, list[list[float]]]:
    """{"gc": [[wall time, ms], ...], "commit": [...]} (see Spans); empty without them."""
    match = re.search(r"^spans: (\{.*\})$", output, re.MULTILINE)
    return json.loads(match.group(1)) if match else {}


def parse_probe_path(output: str) -> list[list[float]] | None:
    """[wall time, read -> written ms, dispatch -> written ms] per answered probe (see ProbePath)."""
    match = re.search(r"^probe-path: (\[.*\])$", output, re.MULTILINE)
    return json.loads(match.group(1)) if match else None


if __name__ == "__main__":
    raise SystemExit(_wrapper_main())
