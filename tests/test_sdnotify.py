"""systemd's notify protocol (gateway/sdnotify.py) against a real datagram socket standing in for systemd:
READY=1 once the gateway is up, WATCHDOG=1 only while its event loop is served, STOPPING=1 on the way down."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.app import Gateway
from gateway.config import parse_config
from gateway.sdnotify import SystemdNotifier, notify_socket_address, watchdog_interval_s
from tests.gateway_process import GatewayProcess, wait_until

# Pings every 0.1 s (half of it): many pings in a short test, and a 1 s block is ten missed ones.
WATCHDOG_USEC = 200_000


@dataclass
class FakeSystemd:
    """The receiving end of $NOTIFY_SOCKET: every datagram with the monotonic time it arrived."""

    sock: socket.socket
    env_value: str  # what $NOTIFY_SOCKET says
    messages: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.sock.settimeout(0.05)
        threading.Thread(target=self._read, name="fake-systemd", daemon=True).start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def close(self) -> None:
        self._stop.set()
        time.sleep(0.1)  # the reader's recv times out within 0.05 s
        self.sock.close()

    def times_of(self, line: str) -> list[float]:
        return [t for t, text in list(self.messages) if line in text.splitlines()]


@pytest.fixture
def fake_systemd() -> Iterator[FakeSystemd]:
    # A short path of its own: AF_UNIX paths are limited to 108 bytes, and pytest's tmp_path can be longer.
    folder = tempfile.mkdtemp(prefix="hearth-sd-")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    receiver = FakeSystemd(sock, path)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_addresses_and_intervals_from_the_environment() -> None:
    assert notify_socket_address({}) is None
    assert notify_socket_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_socket_address({"NOTIFY_SOCKET": "@hearth/notify"}) == "\0hearth/notify"
    assert notify_socket_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "2"}, pid=2) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "10"}) == 0.05  # a floor, not a busy loop


async def test_abstract_socket_gets_ready_and_stopping() -> None:
    name = f"hearth-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    receiver = FakeSystemd(sock, "@" + name)
    receiver.start()
    try:
        async with SystemdNotifier(status="testing", environ={"NOTIFY_SOCKET": "@" + name}) as notifier:
            assert notifier.enabled and notifier.ping_interval_s is None  # no WATCHDOG_USEC: no pings
        await asyncio.to_thread(wait_until, lambda: len(receiver.messages) >= 2, 5.0, "two datagrams")
        assert [text for _, text in receiver.messages] == ["READY=1\nSTATUS=testing", "STOPPING=1\nSTATUS=stopping"]
    finally:
        receiver.close()


async def test_outside_systemd_nothing_is_sent() -> None:
    async with SystemdNotifier(environ={}) as notifier:
        assert not notifier.enabled and not notifier.notify("READY=1")
    assert notifier.sent == 0


async def test_gateway_pings_while_its_loop_is_served_and_not_while_it_is_blocked(
    tmp_path: Path, fake_systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real gateway, as ``hearth run`` builds it (no MQTT, no mDNS, API on loopback), in this process:
    READY=1 after start, pings every 0.1 s, none while the loop is held for a second, pings again after."""
    monkeypatch.setenv("NOTIFY_SOCKET", fake_systemd.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    config = parse_config(f'[gateway]\ndata_dir = "{tmp_path}"\n\n[mqtt]\nenabled = false\n\n'
                          '[mdns]\nenabled = false\n\n[api]\nport = 0\n\n[adapters.mdns]\nenabled = false\n\n'
                          '[adapters.ble]\nenabled = false\n')
    gateway = Gateway(config, out=io.StringIO())
    started = time.monotonic()
    run = asyncio.create_task(gateway.run(install_signal_handlers=False))
    try:
        await asyncio.wait_for(gateway.ready.wait(), timeout=30)
        await asyncio.to_thread(wait_until, lambda: len(fake_systemd.times_of("WATCHDOG=1")) >= 3, 10.0,
                                "three watchdog pings")
        ready = fake_systemd.times_of("READY=1")
        assert len(ready) == 1 and ready[0] > started
        assert ready[0] <= fake_systemd.times_of("WATCHDOG=1")[0]  # ready first, then the pings
        assert any(text.startswith("READY=1\nSTATUS=Hearth ") for _, text in fake_systemd.messages)

        block_start = time.monotonic()
        time.sleep(1.0)  # noqa: ASYNC251 - the point of the test: hold the gateway's event loop
        block_end = time.monotonic()
        await asyncio.to_thread(wait_until, lambda: len([t for t in fake_systemd.times_of("WATCHDOG=1")
                                                         if t >= block_end]) >= 3, 10.0, "pings after the block")

        pings = fake_systemd.times_of("WATCHDOG=1")
        # A ping sent just before the block may be read a moment into it: 50 ms of slack at the start.
        during = [t for t in pings if block_start + 0.05 < t < block_end]
        assert during == [], f"pings while the loop was held: {[round(t - block_start, 3) for t in during]}"
    finally:
        gateway.request_stop()
        await asyncio.wait_for(run, timeout=30)
    stopped_at = time.monotonic()
    await asyncio.to_thread(wait_until, lambda: fake_systemd.times_of("STOPPING=1"), 5.0, "STOPPING=1")
    await asyncio.sleep(0.3)
    assert [t for t in fake_systemd.times_of("WATCHDOG=1") if t > stopped_at] == []  # no pings once stopped


@pytest.mark.slow
def test_hearth_run_says_ready_and_stopping(tmp_path: Path, fake_systemd: FakeSystemd,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``hearth run`` in a subprocess, as systemd starts it: READY=1 once it printed its ready line, STOPPING=1
    after SIGTERM (and the watchdog pings from the real process in between)."""
    monkeypatch.setenv("NOTIFY_SOCKET", fake_systemd.env_value)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.delenv("WATCHDOG_PID", raising=False)  # systemd sets it to the main PID; unset is accepted
    config = tmp_path / "config.toml"
    config.write_text('[mqtt]\nenabled = false\n\n[api]\nport = 0\n\n[adapters.ble]\nenabled = false\n')
    process = GatewayProcess(config, tmp_path / "data")
    process.start()
    try:
        wait_until(lambda: fake_systemd.times_of("READY=1"), 10.0, "READY=1")
        wait_until(lambda: len(fake_systemd.times_of("WATCHDOG=1")) >= 2, 10.0, "watchdog pings")
    finally:
        assert process.stop() == 0, process.log_text()
    wait_until(lambda: fake_systemd.times_of("STOPPING=1"), 5.0, "STOPPING=1")
    assert fake_systemd.times_of("READY=1")[0] < fake_systemd.times_of("STOPPING=1")[0]
