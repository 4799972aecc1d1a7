"""What one wake-up of a reader costs in CPU, on asyncio's loop and on uvloop, against a plain blocking read.

    python -m bench.wakeup [--rate 2000] [--seconds 10] [--rounds 3]

At a steady rate of evenly spaced messages each one wakes its reader on its own (bench.ingest shows that at
2,000 msg/s the wake-ups are most of the gateway's CPU). Three minimal MQTT readers subscribe to the house
stream of the simulated 1,000 devices on a private Mosquitto and only ``recv`` what arrives (no parsing):

- **baseline**: a blocking ``recv`` loop, the floor any reader pays on this machine (the system calls, the
  kernel's wake-up of the process, the interpreter's few lines);
- **asyncio**: the socket registered with ``loop.add_reader`` on asyncio's own loop (as ``MqttSession``);
- **uvloop**: the same on uvloop's loop, which ``hearth run`` uses where it is installed.

Each reader runs ``--rounds`` times, alternately; the medians of CPU time per read are reported. Last line:
``wakeup: <us> us per wake-up on <loop>, ratio <R> vs baseline`` for the loop ``hearth run`` picks by default.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import struct
import time
from collections.abc import Callable

from bench import _traffic
from bench._broker import HOST, BenchBroker
from gateway.app import event_loop_factory

_WARMUP_S = 1.5
_RECV_BYTES = 32768  # as gateway.mqtt


def _subscribe(port: int, client_id: str) -> socket.socket:
    """An MQTT 3.1.1 connection subscribed to zigbee2mqtt/# at QoS 0: CONNECT, SUBACK read, nothing else."""
    sock = socket.create_connection((HOST, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cid = client_id.encode()
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid  # clean session, keepalive 60
    sock.sendall(bytes([0x10, len(connect)]) + connect)
    if sock.recv(4)[:1] != b"\x20":
        raise RuntimeError("no CONNACK from the broker")
    topic = b"zigbee2mqtt/#"
    subscribe = struct.pack("!HH", 1, len(topic)) + topic + b"\x00"
    sock.sendall(bytes([0x82, len(subscribe)]) + subscribe)
    if sock.recv(5)[:1] != b"\x90":
        raise RuntimeError("no SUBACK from the broker")
    return sock


def _blocking(sock: socket.socket, seconds: float) -> int:
    reads = 0
    sock.settimeout(0.2)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        try:
            sock.recv(_RECV_BYTES)
        except TimeoutError:
            continue
        reads += 1
    return reads


def _on_loop(factory: Callable[[], asyncio.AbstractEventLoop] | None) -> Callable[[socket.socket, float], int]:
    def read(sock: socket.socket, seconds: float) -> int:
        reads = 0
        sock.setblocking(False)

        def on_readable() -> None:
            nonlocal reads
            try:
                sock.recv(_RECV_BYTES)
            except BlockingIOError:
                return
            reads += 1

        async def run() -> None:
            loop = asyncio.get_running_loop()
            loop.add_reader(sock, on_readable)
            try:
                await asyncio.sleep(seconds)
            finally:
                loop.remove_reader(sock)

        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(run())
        return reads

    return read


def measure(port: int, name: str, read: Callable[[socket.socket, float], int], rate: float,
            seconds: float) -> float:
    """CPU us per read of ``read`` over ``seconds`` of the paced house stream."""
    sock = _subscribe(port, f"bench-wakeup-{name}")
    publisher = _traffic.start_paced(port, rate, seconds + _WARMUP_S + 1, stream="house")
    try:
        time.sleep(_WARMUP_S)  # the kernel buffers meanwhile: the first read below takes them in one go
        cpu_started, started = time.process_time(), time.perf_counter()
        reads = read(sock, seconds)
        cpu, wall = time.process_time() - cpu_started, time.perf_counter() - started
    finally:
        publisher.wait(timeout=seconds + 120)
        sock.close()
    per_read = cpu / max(1, reads) * 1e6
    print(f"  {name:8s}: {reads / wall:,.0f} reads/s, {cpu / wall * 100:.1f} % CPU, {per_read:.1f} us per read",
          flush=True)
    return per_read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    rate = max(1.0, min(args.rate, 20_000.0))
    seconds = max(0.5, min(args.seconds, 300.0))
    uvloop = event_loop_factory("auto")  # None where uvloop is not installed
    readers: dict[str, Callable[[socket.socket, float], int]] = {"baseline": _blocking,
                                                                 "asyncio": _on_loop(None)}
    if uvloop is not None:
        readers["uvloop"] = _on_loop(uvloop)
    results: dict[str, list[float]] = {name: [] for name in readers}
    with BenchBroker() as broker:
        for _ in range(max(1, min(args.rounds, 20))):
            for name, read in readers.items():
                results[name].append(measure(broker.port, name, read, rate, seconds))
    medians = {name: statistics.median(values) for name, values in results.items()}
    print(f"median of {len(results['baseline'])} at {rate:,.0f} msg/s: " + ", ".join(
        f"{name} {us:.1f} us per wake-up" for name, us in medians.items()))
    default = "uvloop" if uvloop is not None else "asyncio"
    print(f"the loop's own share of a wake-up: asyncio {medians['asyncio'] - medians['baseline']:.1f} us"
          + (f", uvloop {medians['uvloop'] - medians['baseline']:.1f} us" if uvloop is not None else
             " (uvloop is not installed here)"))
    print(f"wakeup: {medians[default]:.1f} us per wake-up on {default}, "
          f"ratio {medians[default] / medians['baseline']:.2f} vs baseline")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
