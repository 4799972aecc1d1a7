"""A real Mosquitto for tests: started on a free loopback port, stopped, killed or restarted on the same port.

Part of the maker's kit: the pytest plugin :mod:`gateway.testing` offers it as the ``hearth_mosquitto``
fixture, and the gateway's own tests use it (``tests/broker.py``, ``tests/conftest.py``). Nothing here mocks
MQTT: fault tests stop and restart the real broker under a running session. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HOST = "127.0.0.1"
# How long a starting broker may take to accept connections (a loaded CI runner can be slow).
_START_TIMEOUT_S = 10.0
# How long SIGTERM gets before SIGKILL: mosquitto exits in milliseconds unless something is wrong.
_STOP_TIMEOUT_S = 5.0


__all__ = ["HOST", "Mosquitto", "MosquittoNotFoundError", "find_mosquitto", "free_port", "port_accepts"]


class MosquittoNotFoundError(RuntimeError):
    """The mosquitto binary is not installed."""


def find_mosquitto() -> str:
    """Path of the mosquitto binary (Debian installs it in /usr/sbin, often not on a user's PATH)."""
    path = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        raise MosquittoNotFoundError(
            "mosquitto is not installed: the MQTT tests need a real broker "
            "(Debian/Ubuntu: apt-get install mosquitto; macOS: brew install mosquitto)"
        )
    return path


def free_port() -> int:
    """A TCP port free on loopback right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = HOST) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


class Mosquitto:
    """One Mosquitto process with its config and log in ``workdir``."""

    def __init__(self, workdir: Path, port: int | None = None, extra_config: list[str] | None = None) -> None:
        """``extra_config``: more mosquitto.conf lines, after the listener (so they may configure it:
        ``certfile``, ``keyfile``; or override: ``allow_anonymous false``)."""
        self.workdir = Path(workdir)
        self.extra_config = list(extra_config or [])
        self.host = HOST
        self.port = port if port is not None else free_port()
        self.binary = find_mosquitto()
        self.config_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            # Like production brokers should: small messages go out at once (see gateway/mqtt.py).
            "set_tcp_nodelay true",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Run as root (CI containers), mosquitto would switch to the user "mosquitto", which may
            # not exist or may not write our log file: stay who we are (ignored when not root).
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            *self.extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        self._write_config()
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not port_accepts(self.port):
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                self._process = None
                raise RuntimeError(f"mosquitto exited at start on port {self.port}: {stderr}\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"mosquitto did not accept on port {self.port} within {_START_TIMEOUT_S} s")
            time.sleep(0.02)

    def stop(self, timeout_s: float = _STOP_TIMEOUT_S) -> None:
        """SIGTERM (mosquitto closes every client connection), then SIGKILL if it does not exit."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout_s)
        self._close(process)

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT_S)
        self._close(process)

    def restart(self) -> None:
        """Stop and start again on the same port (no persistence: subscriptions and retained go)."""
        self.stop()
        self.start()

    def _close(self, process: subprocess.Popen[bytes]) -> None:
        if process.stderr is not None:
            process.stderr.close()
        self._process = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Mosquitto({self.host}:{self.port}, pid={self.pid})"
