"""A throwaway Mosquitto for benchmarks (bench must not import tests/): free loopback port, temp dir."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

HOST = "127.0.0.1"
_START_TIMEOUT_S = 10.0  # a loaded machine may take a while to start mosquitto
_STOP_TIMEOUT_S = 5.0  # after SIGTERM, before SIGKILL


class BenchBroker:
    """``with BenchBroker() as broker:`` runs /usr/sbin/mosquitto on ``broker.port`` until the block ends."""

    def __init__(self, extra_config: list[str] | None = None, *, nodelay: bool = True) -> None:
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
        if binary is None:
            raise SystemExit("mosquitto is not installed (Debian: apt-get install mosquitto)")
        self.binary = binary
        self.host = HOST
        self.port = 0
        self.extra_config = extra_config or []
        # Debian's mosquitto.conf leaves it false: Nagle's algorithm then holds small packets back
        # (~20 ms a round trip with delayed ACKs). bench.latency measures that case once too.
        self.nodelay = nodelay
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BenchBroker:
        self._tmp = tempfile.TemporaryDirectory(prefix="hearth-bench-")
        workdir = Path(self._tmp.name)
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            self.port = probe.getsockname()[1]
        config = workdir / "mosquitto.conf"
        config.write_text(
            "\n".join([
                f"listener {self.port} {HOST}",
                "allow_anonymous true",
                f"set_tcp_nodelay {'true' if self.nodelay else 'false'}",
                "persistence false",
                f"log_dest file {workdir / 'mosquitto.log'}",
                # As root mosquitto would switch to the user "mosquitto": stay who we are.
                f"user {pwd.getpwuid(os.geteuid()).pw_name}",
                *self.extra_config,
            ]) + "\n",
            encoding="utf-8",
        )
        self._process = subprocess.Popen([self.binary, "-c", str(config)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.2):
                break
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"mosquitto did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=_STOP_TIMEOUT_S)
        self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def no_nagle(client: object, userdata: object, sock: socket.socket) -> None:
    """A paho ``on_socket_open``: TCP_NODELAY, which paho does not set. Without it a client that publishes
    twice in a row holds the second message until the broker ACKs the first (~40 ms of delayed ACK)."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

