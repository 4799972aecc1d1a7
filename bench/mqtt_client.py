"""Ingest rate of gateway.mqtt.MqttSession against a bare paho-mqtt + orjson subscriber, in one run.

    python -m bench.mqtt_client [--messages 200000] [--topics 1000] [--rounds 3]

Each measurement: a subscriber connects to a private Mosquitto and subscribes to ``bench/#``; it
then stops reading while a publisher process sends N small JSON messages at QoS 0 over T topics,
so the broker holds them; then the subscriber reads them all and we time that drain. Timing the
drain alone measures the subscriber, not the publisher or the CPU they would share. Both
subscribers do the same work per message: orjson.loads and a count. The last line is
``mqtt_client: <rate> msg/s, ratio <R> vs baseline``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._broker import HOST, BenchBroker
from gateway.clock import SystemClock
from gateway.config import MqttSection
from gateway.mqtt import MqttSession

# Mosquitto drops QoS 0 messages for a client that does not read once its queue is full (1000 by
# default, counted with the in-flight window); the benchmark makes it hold the whole burst.
_BROKER_CONFIG = ["max_queued_messages 0", "max_inflight_messages 0", "max_queued_bytes 0"]
_PUBLISH_TIMEOUT_S = 120.0  # the publisher process, whatever happens
_DRAIN_TIMEOUT_S = 120.0  # one drain, whatever happens
_IDLE_TIMEOUT_S = 3.0  # no message for this long: the rest is lost, stop waiting


@dataclass
class Result:
    name: str
    received: int
    elapsed_s: float
    expected: int

    @property
    def rate(self) -> float:
        return self.received / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def line(self) -> str:
        return (f"{self.name:>22}: {self.rate:>10,.0f} msg/s  ({self.received:,} msgs in {self.elapsed_s:.2f} s, "
                f"lost {self.lost:,})")


def payload_for(index: int) -> bytes:
    # The shape of a zigbee2mqtt sensor state message.
    return orjson.dumps({"temperature": 20 + index % 50 / 10, "humidity": 40 + index % 30,
                         "battery": 97, "linkquality": 120 + index % 60, "seq": index})


def publish(port: int, messages: int, topics: int) -> None:
    """The publisher process: QoS 0 as fast as paho goes, then a clean DISCONNECT after the last byte."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.connect(HOST, port, keepalive=60)
    topic_names = [f"bench/device{n:04d}/state" for n in range(topics)]
    started = time.perf_counter()
    for index in range(messages):
        client.publish(topic_names[index % topics], payload_for(index))
        if index % 1000 == 0:
            client.loop(0)  # read CONNACK and pings; no select wait
    deadline = time.monotonic() + _PUBLISH_TIMEOUT_S
    while client.want_write() and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    client.loop(0.1)
    elapsed = time.perf_counter() - started
    print(f"publisher: {messages:,} msgs in {elapsed:.2f} s", file=sys.stderr)


def run_publisher(port: int, messages: int, topics: int) -> None:
    subprocess.run(
        [sys.executable, "-m", "bench.mqtt_client", "--publish", str(port), "--messages", str(messages),
         "--topics", str(topics)],
        check=True, timeout=_PUBLISH_TIMEOUT_S,
    )


def measure_paho(port: int, messages: int, topics: int) -> Result:
    """Baseline: paho's own loop (loop_forever) and an on_message doing orjson.loads and counting."""
    received = 0
    last_at = 0.0
    subscribed = threading.Event()
    loads = orjson.loads
    perf_counter = time.perf_counter

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal received, last_at
        loads(message.payload)
        received += 1
        last_at = perf_counter()
        if received == messages:
            client.disconnect()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-paho")
    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect(HOST, port, keepalive=60)
    client.subscribe("bench/#")
    deadline = time.monotonic() + 10
    while not subscribed.is_set() and time.monotonic() < deadline:
        client.loop(0.05)
    run_publisher(port, messages, topics)  # paho does not read meanwhile: the broker holds the burst

    started = perf_counter()
    stop = threading.Event()

    def watchdog() -> None:  # ends a drain that lost messages or hangs
        drain_deadline = time.monotonic() + _DRAIN_TIMEOUT_S
        while not stop.wait(0.2):
            idle = perf_counter() - max(last_at, started)
            if idle > _IDLE_TIMEOUT_S or time.monotonic() > drain_deadline:
                client.disconnect()
                return

    guard = threading.Thread(target=watchdog, name="bench-watchdog", daemon=True)
    guard.start()
    client.loop_forever()
    stop.set()
    guard.join()
    return Result("paho + orjson (baseline)", received, (last_at or started) - started, messages)


async def _measure_session(port: int, messages: int, topics: int) -> Result:
    received = 0
    last_at = 0.0
    done = asyncio.Event()
    loads = orjson.loads
    perf_counter = time.perf_counter

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        nonlocal received, last_at
        loads(payload)
        received += 1
        last_at = perf_counter()
        if received == messages:
            done.set()

    settings = MqttSection(host=HOST, port=port, keepalive_s=60, status_topic="bench-status/session")
    async with MqttSession(settings, SystemClock(), client_id="bench-session") as session:
        if not await session.wait_connected(10):
            raise RuntimeError("MqttSession did not connect")
        probe = asyncio.Event()
        session.subscribe("bench/#", on_message)
        session.subscribe("bench-probe", lambda *args: probe.set())
        session.publish("bench-probe", b"")  # comes back once both SUBSCRIBEs are done
        async with asyncio.timeout(10):
            await probe.wait()
        # Blocking the loop on purpose: the session does not read while the broker takes the burst.
        run_publisher(port, messages, topics)
        started = perf_counter()
        drain_deadline = started + _DRAIN_TIMEOUT_S
        while not done.is_set():
            try:
                async with asyncio.timeout(0.2):
                    await done.wait()
            except TimeoutError:
                now = perf_counter()
                if now - max(last_at, started) > _IDLE_TIMEOUT_S or now > drain_deadline:
                    break
    return Result("MqttSession + orjson", received, (last_at or started) - started, messages)


def measure_session(port: int, messages: int, topics: int) -> Result:
    return asyncio.run(_measure_session(port, messages, topics))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3, help="alternate the two this many times, keep the best")
    parser.add_argument("--publish", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish:
        publish(args.publish, args.messages, args.topics)
        return 0
    messages = max(1, min(args.messages, 5_000_000))
    baseline: Result | None = None
    session: Result | None = None
    with BenchBroker(_BROKER_CONFIG) as broker:
        for _ in range(max(1, args.rounds)):
            result = measure_paho(broker.port, messages, args.topics)
            print(result.line(), flush=True)
            baseline = result if baseline is None or result.rate > baseline.rate else baseline
            result = measure_session(broker.port, messages, args.topics)
            print(result.line(), flush=True)
            session = result if session is None or result.rate > session.rate else session
    assert baseline is not None and session is not None
    ratio = session.rate / baseline.rate if baseline.rate else 0.0
    if baseline.lost or session.lost:
        print(f"WARNING: messages lost (baseline {baseline.lost:,}, session {session.lost:,})", flush=True)
    print(f"mqtt_client: {session.rate:,.0f} msg/s, ratio {ratio:.2f} vs baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
