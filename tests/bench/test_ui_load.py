"""bench.ui_load end to end, one visit of the house page each way: the machinery works and the lines have
their documented shape. No timed assertion (noise at this size and on a shared machine).

Needs the browser the UI tests use (Debian's Chromium, the playwright package): skipped without it unless
``HEARTH_REQUIRE_BROWSER=1``, as tests/ui does.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("HEARTH_CHROMIUM", "/usr/bin/chromium")

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def _require_browser() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright package is not installed"
    else:
        reason = None if os.access(CHROMIUM, os.X_OK) else f"no Chromium at {CHROMIUM}"
    if reason is None:
        return
    if os.environ.get("HEARTH_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (HEARTH_REQUIRE_BROWSER=1) but {reason}", pytrace=False)
    pytest.skip(reason)


def test_ui_load() -> None:
    _require_browser()
    result = subprocess.run([sys.executable, "-m", "bench.ui_load", "--repeats", "1", "--pages", "house"],
                            cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for throttle in ("4x", "1x"):
        assert re.search(rf"^house, CPU {throttle}: time to interactive median [\d,]+ ms, max [\d,]+ ms", out,
                         re.MULTILINE), out
        assert re.search(rf"^house, CPU {throttle}: transfer median [\d,.]+ KB, max [\d,.]+ KB = HTTP ", out,
                         re.MULTILINE), out
        # every device of the simulated house has its tile by then
        assert f"house, CPU {throttle}: shown at interactive, per visit: tiles 1000" in out, out
    assert re.search(r"^house: static files /ui/app\.js [\d,.]+ KB", out, re.MULTILINE), out
    last = out.strip().splitlines()[-1]
    assert re.fullmatch(r"ui_load: [\d.]+ KB house page, \d+ ms to interactive at 4x CPU \(median of 1\)", last), last
