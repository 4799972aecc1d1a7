"""The baselines the benchmarks measure the gateway against, in the same run on the same broker.

- :class:`BareSubscriber`: paho-mqtt's own loop and an ``on_message`` that only parses (orjson) and counts:
  the practical limit of a Python MQTT client on this core (ingest, CPU at a paced rate).
- ``python -m bench._baseline responder PORT IN OUT``: a bare responder for the latency benchmark. It also
  takes (parses and counts) the background traffic, like the gateway, so that both do the same transport
  work; on a message on IN it publishes one on OUT.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._broker import HOST, no_nagle

_SUBSCRIBE_TIMEOUT_S = 10.0
_DRAIN_TIMEOUT_S = 180.0
_IDLE_TIMEOUT_S = 3.0  # no message for this long during a drain: the rest is lost


class BareSubscriber:
    """``sub = BareSubscriber(port, "zigbee2mqtt/#")``; retained messages are taken before ``count`` starts."""

    def __init__(self, port: int, topic_filter: str, client_id: str = "bench-baseline") -> None:
        self.count = 0
        self.last_at = 0.0
        self.expected = 0
        loads = orjson.loads
        perf_counter = time.perf_counter

        def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
            loads(message.payload)
            self.count += 1
            self.last_at = perf_counter()
            if self.count == self.expected:
                client.disconnect()

        marker = threading.Event()

        def on_marker(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
            marker.set()

        client = self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        client.on_message = on_message
        client.message_callback_add(f"bench-marker/{client_id}", on_marker)
        client.connect(HOST, port, keepalive=60)
        client.subscribe([(topic_filter, 0), (f"bench-marker/{client_id}", 0)])
        # The marker comes back after the retained messages of the filter: then counting starts from zero.
        client.publish(f"bench-marker/{client_id}", b"")
        deadline = time.monotonic() + _SUBSCRIBE_TIMEOUT_S
        while not marker.is_set() and time.monotonic() < deadline:
            client.loop(0.05)
        if not marker.is_set():
            raise RuntimeError("the baseline subscriber did not get its subscription confirmed")
        self.count = 0

    def drain(self, expected: int) -> tuple[float, float]:
        """Read until ``expected`` messages arrived (or none came for a while). Returns (wall s, CPU s)."""
        self.expected = expected
        started = time.perf_counter()
        cpu_started = time.process_time()
        stop = threading.Event()
        client = self.client

        def watchdog() -> None:  # ends a drain that lost messages or hangs
            deadline = time.monotonic() + _DRAIN_TIMEOUT_S
            while not stop.wait(0.2):
                if time.perf_counter() - max(self.last_at, started) > _IDLE_TIMEOUT_S or time.monotonic() > deadline:
                    client.disconnect()
                    return

        guard = threading.Thread(target=watchdog, name="bench-watchdog", daemon=True)
        guard.start()
        if self.count < expected:
            client.loop_forever()
        cpu = time.process_time() - cpu_started
        stop.set()
        guard.join()
        return (self.last_at or started) - started, cpu

    def run_for(self, seconds: float) -> float:
        """Read for ``seconds`` of wall time; returns the CPU seconds this process used meanwhile."""
        cpu_started = time.process_time()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            self.client.loop(0.1)
        return time.process_time() - cpu_started

    def close(self) -> None:
        self.client.disconnect()


def run_responder(port: int, topic_in: str, topic_out: str, background: str) -> int:
    """Subscribe ``topic_in`` (and parse the ``background`` filter's traffic); answer each on ``topic_out``."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-responder")
    loads = orjson.loads
    seen = 0

    def on_message(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        nonlocal seen
        loads(message.payload)
        seen += 1

    def on_probe(client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        loads(message.payload)
        client.publish(topic_out, message.payload)

    client.on_message = on_message
    client.on_socket_open = no_nagle
    client.message_callback_add(topic_in, on_probe)
    client.on_connect = lambda c, u, f, rc, p: c.subscribe([(topic_in, 0), (background, 0)])
    client.connect(HOST, port, keepalive=60)
    print("responder: ready", flush=True)
    # Ends when the benchmark kills it (SIGTERM) or the broker goes.
    client.loop_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    responder = sub.add_parser("responder")
    responder.add_argument("port", type=int)
    responder.add_argument("topic_in")
    responder.add_argument("topic_out")
    responder.add_argument("--background", default="zigbee2mqtt/#")
    args = parser.parse_args(argv)
    return run_responder(args.port, args.topic_in, args.topic_out, args.background)


if __name__ == "__main__":
    sys.exit(main())
