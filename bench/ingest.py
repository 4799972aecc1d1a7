"""Ingest throughput of the whole gateway against a bare paho-mqtt + orjson subscriber, in one run.

    python -m bench.ingest [--messages 200000] [--rounds 3] [--paced-seconds 20] [--rate 2000]

A private Mosquitto and the simulated house of 1,000 Zigbee2MQTT devices (bridge/devices and one
retained state each). Each round measures both subscribers the same way (the method of
bench/mqtt_client.py): the subscriber is connected and subscribed but does not read while a publisher
process sends N state messages at QoS 0 over the 1,000 device topics (the broker holds them); then it
reads them all and we time that drain, and the CPU time this process spent on it.

- **Gateway**: the real ``Gateway`` (config parsed from TOML, every built-in adapter, both shipped profiles,
  the SQLite store with its batching) run in this process; its loop is blocked while the publisher sends.
  Its CPU time includes the store's final flush of what the drain changed. Zero loss is checked: the
  MQTT session received exactly N messages, and no message was reported as bad input.
- **Baseline**: paho's loop_forever with an on_message that only does orjson.loads and counts.

Then both again at a steady, evenly spaced ``--rate`` (2,000 msg/s) for ``--paced-seconds``: CPU % of
one core. The burst above is the stress stream, every value of a device changing at every message; a
house does not send that (a window is not opened twice a second), so the paced rate is measured with
what a house sends (``gateway.sim.house_stream``: full Zigbee2MQTT reports in which plugs' power and link
quality move at every report, temperatures and light levels now and then, a switch, a window or motion
rarely), and the gateway once more with the stress stream. As the floor of the gateway's client layer,
our ``MqttSession`` doing the baseline's work (orjson.loads and a count) at that rate (the gateway and
the session run on the loop ``hearth run`` would: ``--event-loop``, as ``[gateway] event_loop``). And what one
wake-up costs: the gateway with the house stream sent ``WAKEUP_GROUP`` messages at a time (the same
rate, a tenth of the wake-ups). The medians of ``--rounds`` rounds are reported. Last line:
``ingest: <rate> msg/s, ratio <R> vs baseline``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench import _traffic
from bench._baseline import BareSubscriber
from bench._broker import BenchBroker
from bench._gateway import InProcessGateway, announce, wait_for_devices, write_config
from gateway.app import run_on_event_loop
from gateway.clock import SystemClock
from gateway.config import MqttSection
from gateway.mqtt import MqttSession
from gateway.sim import scaled_house

# Mosquitto drops QoS 0 messages for a client that does not read once its queue is full (1000 by
# default): the benchmark makes it hold the whole burst.
BROKER_CONFIG = ["max_queued_messages 0", "max_inflight_messages 0", "max_queued_bytes 0"]
DEVICES = 1000
_RETAINED = DEVICES + 2  # bridge/state, bridge/devices, one state per device
_DRAIN_TIMEOUT_S = 300.0
_IDLE_TIMEOUT_S = 3.0
_POLL_S = 0.002  # how often the drain checks its count (the drain takes seconds: 2 ms is plenty)
_WARMUP_S = 2.0  # of a paced run, not measured (connections, first reports, caches)


@dataclass
class Drain:
    name: str
    expected: int
    received: int
    elapsed_s: float
    cpu_s: float
    details: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # the gateway's counters over the drain

    @property
    def rate(self) -> float:
        return self.received / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.expected - self.received

    @property
    def cpu_us_per_msg(self) -> float:
        return self.cpu_s / self.received * 1e6 if self.received else 0.0

    def line(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in self.details.items())
        return (f"{self.name:>10}: {self.rate:>9,.0f} msg/s, {self.cpu_us_per_msg:5.1f} us CPU/msg "
                f"({self.received:,} msgs in {self.elapsed_s:.2f} s, lost {self.lost:,}{extra})")


def measure_baseline(port: int, messages: int) -> Drain:
    subscriber = BareSubscriber(port, "zigbee2mqtt/#")
    try:
        _traffic.run_burst(port, messages)  # the subscriber does not read meanwhile
        elapsed, cpu = subscriber.drain(messages)
    finally:
        subscriber.close()
    return Drain("baseline", messages, subscriber.count, elapsed, cpu)


def bench_config(workdir: Path, port: int, **kwargs: Any) -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix="gateway-", dir=workdir))
    return write_config(data_dir / "config.toml", broker_port=port, data_dir=data_dir,
                        house=scaled_house(DEVICES), **kwargs)


async def settle(gateway: Any) -> None:
    """Until the retained messages are in and the gateway has had a moment to finish what they started."""
    await wait_for_devices(gateway, DEVICES)
    deadline = time.monotonic() + 30
    # Polling a counter: the session has no event for "n messages received", and a bench should not add one.
    while gateway.mqtt.stats()["messages_received"] < _RETAINED and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    await gateway.store.flush()


def _counts(gateway: Any) -> dict[str, int]:
    mqtt = gateway.mqtt.stats()
    store = gateway.store.stats()
    return {"received": int(mqtt["messages_received"]), "callback_errors": int(mqtt["callback_errors"]),
            "bad_input": gateway.hub.counters["bad_input"], "updates": gateway.hub.counters["updates"],
            "changes": gateway.hub.counters["state_changes"], "commits": store["commits"],
            "rows": store["rows_written"], "commit_ms": int(store["commit_seconds_total"] * 1000),
            "bus_errors": gateway.hub.bus.subscriber_errors}


async def _measure_gateway(config: Path, port: int, messages: int) -> Drain:
    async with InProcessGateway(config) as gateway:
        await settle(gateway)
        before = _counts(gateway)
        # Blocking the loop on purpose: the gateway does not read while the broker takes the burst.
        _traffic.run_burst(port, messages)
        started = time.perf_counter()
        cpu_started = time.process_time()
        last_count, last_at = before["received"], started
        while True:
            now = time.perf_counter()
            count = gateway.mqtt.stats()["messages_received"]
            if count != last_count:
                last_count, last_at = count, now
            if count - before["received"] >= messages:
                break
            if now - last_at > _IDLE_TIMEOUT_S or now - started > _DRAIN_TIMEOUT_S:
                break
            await asyncio.sleep(_POLL_S)
        elapsed = last_at - started
        await gateway.store.flush()  # the rest of the store's work for these messages, counted as CPU
        cpu = time.process_time() - cpu_started
        flushed_s = time.perf_counter() - started
        after = _counts(gateway)
    delta = {k: after[k] - before[k] for k in after}
    problems = {k: delta[k] for k in ("bad_input", "callback_errors", "bus_errors") if delta[k]}
    details: dict[str, Any] = {"state changes": f"{delta['changes']:,}", "commits": delta["commits"]}
    delta["flushed_ms"] = int(flushed_s * 1000)
    if problems:
        details["PROBLEMS"] = problems
    return Drain("gateway", messages, delta["received"], elapsed, cpu, details, delta)


def measure_gateway(workdir: Path, port: int, messages: int, event_loop: str = "auto") -> Drain:
    return run_on_event_loop(_measure_gateway(bench_config(workdir, port, event_loop=event_loop), port, messages),
                       event_loop)


# ------------------------------------------------------------------------------------------ paced


PACED_STREAM = "house"  # what the paced figures are measured with (see the module's doc)
STRESS_STREAM = "changing"
WAKEUP_GROUP = 10


def paced_baseline(port: int, rate: float, seconds: float, group: int = 1) -> float:
    """CPU % of one core of the bare subscriber at ``rate`` msg/s (``group`` messages at a time)."""
    subscriber = BareSubscriber(port, "zigbee2mqtt/#", client_id="bench-baseline-paced")
    publisher = _traffic.start_paced(port, rate, seconds + _WARMUP_S + 1, stream=PACED_STREAM, group=group)
    try:
        subscriber.run_for(_WARMUP_S)
        count_before = subscriber.count
        cpu = subscriber.run_for(seconds)
        received = subscriber.count - count_before
    finally:
        publisher.wait(timeout=seconds + 120)
        subscriber.close()
    grouped = f", {group} messages at a time" if group > 1 else ""
    print(f"  paced baseline{grouped}: {received / seconds:,.0f} msg/s received, {cpu / seconds * 100:.1f} % CPU",
          flush=True)
    return cpu / seconds * 100


async def _paced_session(port: int, rate: float, seconds: float) -> float:
    received = 0
    loads = orjson.loads

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        nonlocal received
        loads(payload)
        received += 1

    settings = MqttSection(host="127.0.0.1", port=port, keepalive_s=60, status_topic="bench-status/paced-session")
    async with MqttSession(settings, SystemClock(), client_id="bench-session-paced") as session:
        if not await session.wait_connected(10):
            raise RuntimeError("MqttSession did not connect")
        session.subscribe("zigbee2mqtt/#", on_message)
        publisher = _traffic.start_paced(port, rate, seconds + _WARMUP_S + 1, stream=PACED_STREAM)
        try:
            await asyncio.sleep(_WARMUP_S)
            count_before = received
            cpu_started, started = time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            cpu, wall = time.process_time() - cpu_started, time.perf_counter() - started
            count = received - count_before
        finally:
            while publisher.poll() is None:  # noqa: ASYNC110 - bounded by the publisher's own --seconds
                await asyncio.sleep(0.1)
    print(f"  paced MqttSession + orjson (the gateway's client layer alone): {count / wall:,.0f} msg/s received, "
          f"{cpu / wall * 100:.1f} % CPU", flush=True)
    return cpu / wall * 100


def paced_session(port: int, rate: float, seconds: float, event_loop: str = "auto") -> float:
    """CPU % of one core of our MQTT session doing the baseline's work at ``rate`` msg/s."""
    return run_on_event_loop(_paced_session(port, rate, seconds), event_loop)


async def _paced_gateway(config: Path, port: int, rate: float, seconds: float,
                         stream: str, group: int) -> tuple[float, dict[str, int]]:
    async with InProcessGateway(config) as gateway:
        await settle(gateway)
        publisher = _traffic.start_paced(port, rate, seconds + _WARMUP_S + 1, stream=stream, group=group)
        try:
            await asyncio.sleep(_WARMUP_S)
            before = _counts(gateway)
            cpu_started, started = time.process_time(), time.perf_counter()
            await asyncio.sleep(seconds)
            cpu, wall = time.process_time() - cpu_started, time.perf_counter() - started
            after = _counts(gateway)
        finally:
            while publisher.poll() is None:  # noqa: ASYNC110 - bounded by the publisher's own --seconds
                await asyncio.sleep(0.1)
    delta = {k: after[k] - before[k] for k in after}
    delta["wall_ms"] = int(wall * 1000)
    grouped = f", {group} messages at a time" if group > 1 else ""
    print(f"  paced gateway, {stream} stream{grouped}: {delta['received'] / wall:,.0f} msg/s received, "
          f"{cpu / wall * 100:.1f} % CPU, {delta['changes'] / wall:,.0f} state changes/s, {delta['commits']} commits "
          f"({delta['commits'] / wall * 60:.1f}/min), {delta['rows']:,} rows written", flush=True)
    return cpu / wall * 100, delta


def paced_gateway(workdir: Path, port: int, rate: float, seconds: float,
                  stream: str = PACED_STREAM, group: int = 1, event_loop: str = "auto") -> tuple[float, dict[str, int]]:
    return run_on_event_loop(_paced_gateway(bench_config(workdir, port, event_loop=event_loop), port, rate, seconds,
                                      stream, group), event_loop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternate baseline and gateway; report medians")
    parser.add_argument("--rate", type=float, default=2000.0, help="the paced rate (msg/s)")
    parser.add_argument("--paced-seconds", type=float, default=20.0, help="0: skip the paced measurement")
    parser.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                        help="the event loop of the gateway and of our MQTT session ([gateway] event_loop)")
    args = parser.parse_args(argv)
    loop = args.event_loop
    from gateway.app import event_loop_factory

    print(f"event loop of the gateway and of our MQTT session: "
          f"{'uvloop' if event_loop_factory(loop) else 'asyncio'} (--event-loop {loop})", flush=True)
    messages = max(1, min(args.messages, 2_000_000))
    rounds = max(1, min(args.rounds, 20))
    house = scaled_house(DEVICES)
    baselines: list[Drain] = []
    gateways: list[Drain] = []
    cpu_base: list[float] = []
    cpu_gw: list[float] = []
    cpu_stress: list[float] = []
    cpu_grouped: list[float] = []
    cpu_base_grouped: list[float] = []
    cpu_session: list[float] = []
    with BenchBroker(BROKER_CONFIG) as broker, tempfile.TemporaryDirectory(prefix="hearth-ingest-") as tmp:
        workdir = Path(tmp)
        announce(broker.port, house)
        for _ in range(rounds):
            baselines.append(measure_baseline(broker.port, messages))
            print(baselines[-1].line(), flush=True)
            gateways.append(measure_gateway(workdir, broker.port, messages, loop))
            print(gateways[-1].line(), flush=True)
        if args.paced_seconds > 0:
            seconds = min(args.paced_seconds, 600.0)
            for _ in range(rounds):
                cpu_base.append(paced_baseline(broker.port, args.rate, seconds))
                cpu_gw.append(paced_gateway(workdir, broker.port, args.rate, seconds, event_loop=loop)[0])
                cpu_stress.append(paced_gateway(workdir, broker.port, args.rate, seconds, STRESS_STREAM,
                                                event_loop=loop)[0])
                cpu_grouped.append(paced_gateway(workdir, broker.port, args.rate, seconds, group=WAKEUP_GROUP,
                                                 event_loop=loop)[0])
                cpu_base_grouped.append(paced_baseline(broker.port, args.rate, seconds, group=WAKEUP_GROUP))
                cpu_session.append(paced_session(broker.port, args.rate, seconds, loop))
    base_rate = statistics.median(d.rate for d in baselines)
    gw_rate = statistics.median(d.rate for d in gateways)
    ratio = gw_rate / base_rate if base_rate else 0.0
    lost = sum(d.lost for d in gateways) + sum(d.lost for d in baselines)
    problems = [d.details["PROBLEMS"] for d in gateways if "PROBLEMS" in d.details]
    print(f"median of {rounds}: baseline {base_rate:,.0f} msg/s "
          f"({statistics.median(d.cpu_us_per_msg for d in baselines):.1f} us CPU/msg), gateway {gw_rate:,.0f} msg/s "
          f"({statistics.median(d.cpu_us_per_msg for d in gateways):.1f} us CPU/msg); "
          f"lost {lost:,} (target: 0); ratio target >= 0.5")
    if cpu_gw:
        # The reference machine: Node-RED 13 %, the bare subscriber 9 % at this rate, so 13 % is
        # 1.44x the baseline; on a slower machine the baseline is higher and the ratio is what compares.
        paced_ratio = statistics.median(g / b for g, b in zip(cpu_gw, cpu_base, strict=True) if b)
        print(f"median of {rounds} at {args.rate:,.0f} msg/s, {PACED_STREAM} stream: gateway "
              f"{statistics.median(cpu_gw):.1f} % of one core, baseline {statistics.median(cpu_base):.1f} %, "
              f"ratio {paced_ratio:.2f} (target: gateway <= 13 %; the reference's 13 % vs 9 % is a ratio of 1.44); "
              f"our MQTT session alone with the baseline's work: {statistics.median(cpu_session):.1f} %; "
              f"the gateway with the {STRESS_STREAM} stream: {statistics.median(cpu_stress):.1f} %")
        # The same messages with a tenth of the wake-ups: what the wake-ups themselves cost.
        per_wakeup = (statistics.median(cpu_gw) - statistics.median(cpu_grouped)) / 100 / (
            args.rate * (1 - 1 / WAKEUP_GROUP)) * 1e6
        print(f"the gateway with the {PACED_STREAM} stream {WAKEUP_GROUP} messages at a time: "
              f"{statistics.median(cpu_grouped):.1f} % (baseline the same way: "
              f"{statistics.median(cpu_base_grouped):.1f} %), so a wake-up costs the gateway ~{per_wakeup:.0f} us "
              "of CPU")
    if lost or problems:
        print(f"WARNING: messages lost ({lost:,}) or rejected ({problems})")
    print(f"ingest: {gw_rate:,.0f} msg/s, ratio {ratio:.2f} vs baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
