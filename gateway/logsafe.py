"""Log lines that a device on the network cannot forge or use against a terminal.

Names, topics and payload excerpts from the network reach log messages (an mDNS instance name, a topic, a
BLE name). Written raw, an ESC or BEL sequence in one would drive the operator's terminal (clear it, retitle
it, hide lines), and a line break would start a line that looks like the gateway's own. The formatter here
escapes every control character of a record's message and arguments (``\\x1b`` as text) and indents the
continuation lines of a multi-line message, so every record starts with its timestamp and nothing else does.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

# C0 controls but tab and newline, DEL, C1 controls, and the Unicode line/paragraph separators and bidi
# overrides (which can make a terminal show text in another order than it is written).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def escape_controls(text: str) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class SafeFormatter(logging.Formatter):
    """A formatter whose message part is escaped (see the module) and whose continuation lines are indented;
    a traceback, which is ours, is kept as it is."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = escape_controls(record.message)
        if "\n" in message:
            message = message.replace("\r", "").replace("\n", "\n    ")
        record.message = message
        return super().formatMessage(record)


class LogLimiter:
    """At most ``burst`` records per ``window_s`` seconds through ``log``; the ones left out are counted
    and said in the first record of the next window (a neighbour announcing thousands of names must not
    flood the log or the SD card)."""

    def __init__(self, log: logging.Logger, *, burst: int = 10, window_s: float = 60.0,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._burst = burst
        self._window_s = window_s
        self._monotonic = monotonic
        self._window_start = -window_s
        self._count = 0
        self.suppressed = 0

    def log(self, level: int, message: str, *args: object) -> None:
        """Log ``message % args`` at ``level`` (``logging.INFO``...), unless this window's burst is spent."""
        now = self._monotonic()
        if now - self._window_start >= self._window_s:
            if self.suppressed:
                self._log.log(level, "(%d similar lines left out in the last %.0f s)", self.suppressed,
                              self._window_s)
            self._window_start = now
            self._count = 0
            self.suppressed = 0
        if self._count >= self._burst:
            self.suppressed += 1
            return
        self._count += 1
        self._log.log(level, message, *args)
