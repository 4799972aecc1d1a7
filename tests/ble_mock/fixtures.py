"""A private system bus with a mock BlueZ on it, for bleak's real BlueZ backend.

``MockBluez`` starts a ``dbus-daemon`` with its own config (a unix socket in the test's tmp dir) and
``python -m dbusmock --template tests/ble_mock/bluez_template.py`` on it; the test points
``DBUS_SYSTEM_BUS_ADDRESS`` at that socket, so bleak in the test process talks to the mock exactly as it
talks to BlueZ. ``stop()`` and ``start()`` again on the same socket simulate BlueZ (or the bus) going
away and coming back. The test process talks to the mock with dbus-fast (bleak's own D-Bus library), so
nothing blocks the event loop; only the mock process needs dbus-python.

Tooling: ``dbus-daemon`` (Debian: ``dbus``), and python-dbusmock + dbus-python in the venv (dbus-python
builds against ``libdbus-1-dev libglib2.0-dev pkg-config``; ``scripts/_common.sh ensure_ble_test_deps``).
Without it the tests skip with the reason, or fail when ``HEARTH_REQUIRE_BLUEZ_MOCK=1`` (CI).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).with_name("bluez_template.py")
BLUEZ_MOCK_IFACE = "org.bluez.Mock"
REQUIRE_ENV = "HEARTH_REQUIRE_BLUEZ_MOCK"
# How long the daemon and the mock may take to come up on a loaded CI runner.
START_TIMEOUT_S = 15.0
# One call to the mock: it answers in milliseconds; a bus that is going away must not hang a test.
CALL_TIMEOUT_S = 2.0

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"""


def tooling_problem() -> str | None:
    """Why the mock-BlueZ tests cannot run here, or None."""
    if shutil.which("dbus-daemon") is None:
        return "dbus-daemon is not installed (Debian/Ubuntu: apt-get install dbus)"
    probe = subprocess.run([sys.executable, "-c", "import dbus, dbusmock"], capture_output=True, text=True,
                           check=False)
    if probe.returncode != 0:
        return ("python-dbusmock/dbus-python are not importable "
                "(pip install python-dbusmock dbus-python; dbus-python needs libdbus-1-dev libglib2.0-dev "
                f"pkg-config): {probe.stderr.strip().splitlines()[-1:]}")
    try:
        import dbus_fast  # noqa: F401
    except ImportError:
        return "dbus-fast (bleak's D-Bus library) is not importable"
    return None


def require_tooling() -> None:
    problem = tooling_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"mock BlueZ needed ({REQUIRE_ENV}=1) but: {problem}", pytrace=False)
    pytest.skip(f"mock BlueZ not available: {problem}")


async def _close(bus: object) -> None:
    bus.disconnect()  # type: ignore[attr-defined]
    with contextlib.suppress(Exception):
        await asyncio.wait_for(bus.wait_for_disconnect(), CALL_TIMEOUT_S)  # type: ignore[attr-defined]


class MockBluez:
    """dbus-daemon + python-dbusmock BlueZ, started and stopped by PID."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.socket = workdir / "system_bus_socket"
        self.address = f"unix:path={self.socket}"
        self.config = workdir / "bus.conf"
        self.config.write_text(_BUS_CONFIG.format(socket=self.socket), encoding="utf-8")
        self._daemon: subprocess.Popen[bytes] | None = None
        self._mock: subprocess.Popen[bytes] | None = None
        self._log = (workdir / "dbusmock.log").open("ab")

    async def start(self, adapter: str | None = "hci0") -> None:
        self.socket.unlink(missing_ok=True)
        self._daemon = self._spawn(["dbus-daemon", f"--config-file={self.config}", "--nofork", "--nopidfile"])
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.socket.exists():
            if self._daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dbus-daemon did not start (see {self._log.name})")
            await asyncio.sleep(0.02)
        env = {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.address}
        self._mock = self._spawn([sys.executable, "-m", "dbusmock", "--template", str(TEMPLATE)], env)
        while not await self._has_bluez():
            if self._mock.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the BlueZ mock did not come up (see {self._log.name})")
            await asyncio.sleep(0.05)
        if adapter is not None:
            await self.call("AddAdapter", "ss", [adapter, "hearth-test"])

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        # Popen only forks and execs (no waiting), so it is fine on the event loop; we keep plain Popen
        # (not asyncio's) so that stop() can run from sync code and signal by PID.
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=env)

    async def _has_bluez(self) -> bool:
        from dbus_fast import Message, MessageType
        from dbus_fast.aio import MessageBus

        try:
            bus = await asyncio.wait_for(MessageBus(bus_address=self.address).connect(), CALL_TIMEOUT_S)
        except (OSError, TimeoutError, EOFError):
            return False
        try:
            reply = await asyncio.wait_for(bus.call(Message(
                destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                member="NameHasOwner", signature="s", body=["org.bluez"])), CALL_TIMEOUT_S)
            return reply is not None and reply.message_type == MessageType.METHOD_RETURN and bool(reply.body[0])
        except (OSError, TimeoutError, EOFError):
            return False
        finally:
            await _close(bus)

    async def call(self, member: str, signature: str, body: list[object]) -> list[object]:
        from dbus_fast import Message, MessageType
        from dbus_fast.aio import MessageBus

        bus = await asyncio.wait_for(MessageBus(bus_address=self.address).connect(), CALL_TIMEOUT_S)
        try:
            reply = await asyncio.wait_for(bus.call(Message(destination="org.bluez", path="/",
                                                            interface=BLUEZ_MOCK_IFACE, member=member,
                                                            signature=signature, body=body)), CALL_TIMEOUT_S)
        finally:
            await _close(bus)
        assert reply is not None
        if reply.message_type != MessageType.METHOD_RETURN:
            raise RuntimeError(f"mock BlueZ {member} failed: {reply.error_name}: {reply.body}")
        return list(reply.body)

    async def advertise(self, address: str, *, rssi: int = -60, name: str = "",
                        service_data: dict[str, bytes] | None = None,
                        manufacturer_data: dict[int, bytes] | None = None, adapter: str = "hci0") -> None:
        await self.call("Advertise", "ssnsa{say}a{qay}",
                        [adapter, address, rssi, name, dict(service_data or {}), dict(manufacturer_data or {})])

    def stop(self) -> None:
        """Take BlueZ and the bus away (mock first, then the daemon; SIGTERM, then SIGKILL)."""
        for process in (self._mock, self._daemon):
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._mock = self._daemon = None

    def close(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            self._log.close()
