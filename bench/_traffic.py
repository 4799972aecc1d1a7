"""The benchmarks' device traffic, published from a process of its own (so that it does not share the
measured process's interpreter): the simulated house's Zigbee2MQTT state messages at QoS 0.

    python -m bench._traffic --port P --messages N            # a burst, as fast as paho goes
    python -m bench._traffic --port P --rate 2000 --seconds 20  # paced, evenly spaced

``--stream changing`` (the default) is the stress stream, every value changing at every message;
``--stream house`` what a house sends, most values repeating (``gateway.sim.stream`` says which move).
``--group N`` sends a paced stream N messages at a time (same rate, 1/N as many wake-ups of a reader).
``--exclude NAME`` (repeatable) leaves devices out (the latency probe's own sensor and light). It prints
one line to stderr when done: how many it sent and how long it took.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench._broker import HOST, no_nagle
from gateway.sim import House, house_stream, message_stream, scaled_house

DEVICES = 1000
# The publisher itself, whatever happens (a paced run is bounded by --seconds; a burst by its size).
_FLUSH_TIMEOUT_S = 120.0
_MAX_MESSAGES = 5_000_000
_MAX_SECONDS = 3600.0
_POOL_S = 30.0
STREAMS = {"changing": message_stream, "house": house_stream}


def traffic_house(devices: int, exclude: list[str]) -> House:
    house = scaled_house(devices)
    if not exclude:
        return house
    kept = tuple(d for d in house.devices if d.name not in set(exclude))
    return House(house.rooms, kept, resident=False)


def _connect(port: int, client_id: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.on_socket_open = no_nagle
    client.connect(HOST, port, keepalive=60)
    return client


def _finish(client: paho.Client) -> None:
    deadline = time.monotonic() + _FLUSH_TIMEOUT_S
    while client.want_write() and time.monotonic() < deadline:
        client.loop(0.05)
    client.disconnect()
    client.loop(0.1)


def publish_burst(port: int, messages: int, house: House, stream_name: str = "changing") -> None:
    # Serialised before the clock starts: the burst measures the broker path, not orjson.
    stream = list(STREAMS[stream_name](house, messages))
    client = _connect(port, "bench-traffic-burst")
    started = time.perf_counter()
    publish = client.publish
    for index, (topic, payload) in enumerate(stream):
        publish(topic, payload)
        if index % 1000 == 0:
            client.loop(0)  # CONNACK and pings; no select wait
    _finish(client)
    print(f"traffic: {messages:,} msgs in {time.perf_counter() - started:.2f} s", file=sys.stderr)


def publish_paced(port: int, rate: float, seconds: float, house: House, stream_name: str = "changing",
                  group: int = 1) -> None:
    """``rate`` messages a second, evenly spaced (each at its own due time, not in bursts), for ``seconds``;
    with ``group`` > 1, that many back to back at each due time (a due time every group / rate s)."""
    total = int(rate * seconds)
    # A pool of up to _POOL_S seconds of messages, cycled: a long run must not serialise hours of traffic first.
    stream = list(STREAMS[stream_name](house, min(total, int(rate * _POOL_S)), seed=1))
    client = _connect(port, "bench-traffic-paced")
    client.loop_start()  # paho's thread handles pings and writes the socket when the kernel pushes back
    started = time.perf_counter()
    interval = 1.0 / rate
    late = 0
    try:
        pool = len(stream)
        for index in range(total):
            topic, payload = stream[index % pool]
            if index % group == 0:
                due = started + index * interval
                now = time.perf_counter()
                if due > now:
                    time.sleep(due - now)
                elif now - due > 0.05:
                    late += 1
            client.publish(topic, payload)
    finally:
        client.loop_stop()
        _finish(client)
    elapsed = time.perf_counter() - started
    print(f"traffic: {total:,} msgs in {elapsed:.2f} s ({total / elapsed:,.0f} msg/s, {late} over 50 ms late)",
          file=sys.stderr)


def command(port: int, *, messages: int | None = None, rate: float | None = None, seconds: float | None = None,
            exclude: list[str] | None = None, devices: int = DEVICES, stream: str = "changing",
            group: int = 1) -> list[str]:
    argv = [sys.executable, "-m", "bench._traffic", "--port", str(port), "--devices", str(devices), "--stream", stream,
            "--group", str(group)]
    if messages is not None:
        argv += ["--messages", str(messages)]
    if rate is not None:
        argv += ["--rate", str(rate), "--seconds", str(seconds)]
    for name in exclude or ():
        argv += ["--exclude", name]
    return argv


def run_burst(port: int, messages: int, devices: int = DEVICES) -> None:
    """Publish ``messages`` and return once the publisher has written them all and disconnected."""
    subprocess.run(command(port, messages=messages, devices=devices), check=True, timeout=_FLUSH_TIMEOUT_S + 60)


def start_paced(port: int, rate: float, seconds: float, exclude: list[str] | None = None,
                devices: int = DEVICES, stream: str = "changing", group: int = 1) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command(port, rate=rate, seconds=seconds, exclude=exclude, devices=devices,
                                    stream=stream, group=group), stdin=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--devices", type=int, default=DEVICES)
    parser.add_argument("--messages", type=int)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--exclude", action="append", default=[])
    parser.add_argument("--stream", choices=sorted(STREAMS), default="changing")
    parser.add_argument("--group", type=int, default=1)
    args = parser.parse_args(argv)
    house = traffic_house(args.devices, args.exclude)
    if args.rate:
        publish_paced(args.port, max(1.0, args.rate), min(max(0.1, args.seconds), _MAX_SECONDS), house, args.stream,
                      max(1, min(args.group, 1000)))
    else:
        publish_burst(args.port, max(1, min(args.messages or 1000, _MAX_MESSAGES)), house, args.stream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
