"""Network-supplied text in log lines (issue 20 finding 5): escaped, and unable to start a line of its own."""

from __future__ import annotations

import io
import logging

from gateway.logsafe import LogLimiter, SafeFormatter, escape_controls


def _logged(*args: object) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("hearth.test.logsafe")
    log.propagate = False
    log.addHandler(handler)
    try:
        log.warning(*args)  # type: ignore[arg-type]
    finally:
        log.removeHandler(handler)
    return out.getvalue()


def test_terminal_controls_from_a_device_name_are_written_as_escapes() -> None:
    # An mDNS instance name that would clear the operator's terminal and ring its bell.
    text = _logged("new service %s", "Kitchen\x1b[2J\x1b]0;pwned\x07\x00\u202e")
    assert "\x1b" not in text and "\x07" not in text and "\x00" not in text and "\u202e" not in text
    assert text == "WARNING hearth.test.logsafe: new service Kitchen\\x1b[2J\\x1b]0;pwned\\x07\\x00\\u202e\n"


def test_a_line_break_cannot_forge_a_record_of_its_own() -> None:
    text = _logged("topic %s", "a\nERROR hearth.api: owner password reset\r\n")
    lines = text.splitlines()
    assert lines[0] == "WARNING hearth.test.logsafe: topic a"
    assert all(line.startswith("    ") for line in lines[1:])


def test_plain_text_and_unicode_names_are_kept() -> None:
    assert escape_controls("Wohnzimmer Lampe — 客厅\ttab") == "Wohnzimmer Lampe — 客厅\ttab"


def test_a_flood_of_lines_is_limited_and_counted() -> None:
    now = [0.0]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    log = logging.getLogger("hearth.test.limiter")
    log.propagate = False
    log.addHandler(handler)
    try:
        limiter = LogLimiter(log, burst=3, window_s=60.0, monotonic=lambda: now[0])
        for index in range(1000):
            limiter.log(logging.WARNING, "new name %d", index)
        now[0] = 61.0
        limiter.log(logging.WARNING, "new name %d", 1000)
    finally:
        log.removeHandler(handler)
    assert out.getvalue().splitlines() == ["new name 0", "new name 1", "new name 2",
                                           "(997 similar lines left out in the last 60 s)", "new name 1000"]
