"""``hearth run`` tunes glibc's malloc (one arena, fixed mmap threshold, periodic trim): applied where the C
library is glibc, a no-op elsewhere, and never fatal."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tune_malloc_applies_on_glibc() -> None:
    # A fresh interpreter: the settings are process-wide, and must come before any thread starts.
    code = "from gateway.app import tune_malloc; print(tune_malloc())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"

