"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``): the gateway tells the service manager it is
ready, that it is alive, and that it is stopping.

The protocol is one datagram per message on the AF_UNIX socket named by ``$NOTIFY_SOCKET`` (a path, or an
abstract name written with a leading ``@``), text ``KEY=value`` lines: ``READY=1``, ``WATCHDOG=1``,
``STOPPING=1``, ``STATUS=...``. A few lines of code, so no dependency (sd_notify(3) describes it; python-systemd
needs libsystemd headers to build, which a Pi without them cannot).

The watchdog pings come from a task **on the event loop**, never from a thread: every adapter, the API and the
scenes share that loop, so when something holds it, the pings stop, systemd sees ``WatchdogSec`` pass without
one and restarts the service (``Restart=on-failure``). The loop watchdog (gateway/loopwatch.py) says *what* held
the loop; this says *that* it is no longer served, to the one process that can restart it.

Outside systemd (no ``$NOTIFY_SOCKET``) everything here does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["SystemdNotifier", "notify_socket_address", "watchdog_interval_s"]

log = logging.getLogger("hearth.sdnotify")

# systemd's own advice (sd_watchdog_enabled(3)): ping at half the watchdog period, so that one late ping
# (a busy machine) does not cost a restart.
PING_FRACTION = 0.5
# A ping interval below this is taken as a misconfiguration, not obeyed: pinging every few milliseconds would
# cost the loop more than any block it is meant to find.
MIN_PING_INTERVAL_S = 0.05


def notify_socket_address(environ: Mapping[str, str] | None = None) -> str | None:
    """The address ``$NOTIFY_SOCKET`` names, as ``socket.sendto`` takes it (an abstract name starts with NUL);
    None when it is unset or not an AF_UNIX address (systemd also allows ``vsock:``, which a gateway never
    gets)."""
    value = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval_s(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between pings, from ``$WATCHDOG_USEC`` (set by systemd when the unit has ``WatchdogSec=``);
    None when there is no watchdog for this process (unset, bad, or ``$WATCHDOG_PID`` is another process: a
    child that inherited the environment must not ping for its parent)."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner and owner.strip() != str(os.getpid() if pid is None else pid):
        return None
    return max(usec / 1_000_000 * PING_FRACTION, MIN_PING_INTERVAL_S)


class SystemdNotifier:
    """``async with SystemdNotifier(status=...)``: READY=1 on enter, WATCHDOG=1 pings from the loop while it
    runs (when systemd asked for them), STOPPING=1 on exit. Enter it once the gateway is ready."""

    def __init__(self, status: str | None = None, environ: Mapping[str, str] | None = None) -> None:
        self.address = notify_socket_address(environ)
        self.ping_interval_s = watchdog_interval_s(environ) if self.address is not None else None
        self.status = status
        self.sent = 0  # datagrams sent (for tests and /healthz-style curiosity)
        self._sock: socket.socket | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._failed_logged = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send one message of ``KEY=value`` lines; False when it could not be sent (logged once)."""
        if self.address is None:
            return False
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # Never wait on systemd from the loop: a full queue drops a ping (the next one follows), it does
            # not stall the house.
            self._sock.setblocking(False)
        try:
            self._sock.sendto("\n".join(lines).encode("utf-8", "replace"), self.address)
        except OSError as err:
            if not self._failed_logged:
                log.warning("cannot notify systemd on %r: %s", os.environ.get("NOTIFY_SOCKET"), err)
                self._failed_logged = True
            return False
        self.sent += 1
        return True

    async def __aenter__(self) -> SystemdNotifier:
        if self.address is None:
            return self
        self.notify("READY=1", *([f"STATUS={self.status}"] if self.status else []))
        if self.ping_interval_s is not None:
            self._pinger = asyncio.get_running_loop().create_task(self._ping(self.ping_interval_s),
                                                                   name="sdnotify:watchdog")
            log.info("systemd watchdog: a ping every %.1f s while the event loop is served", self.ping_interval_s)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
            self._pinger = None
        if self.address is not None:
            self.notify("STOPPING=1", "STATUS=stopping")
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _ping(self, interval_s: float) -> None:
        while True:
            self.notify("WATCHDOG=1")
            # Wall time, not the injected clock: systemd's watchdog runs on real time.
            await asyncio.sleep(interval_s)
