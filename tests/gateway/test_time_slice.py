"""``hearth run`` asks Linux for a short time slice on its event loop's thread (``[gateway] loop_slice_us``,
0.1 ms by default), so that a message arriving while another task has the core is handled as soon as the
kernel can switch. Linux 6.12 or later keeps a slice per task; elsewhere nothing is changed, and nothing fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest

from gateway.app import shorten_time_slice
from gateway.config import parse_config
from gateway.errors import ConfigError


def kernel_keeps_slices() -> bool:
    """Whether this kernel takes a slice per task: tried on a throwaway thread, not the test's own."""
    found: list[int | None] = []
    thread = threading.Thread(target=lambda: found.append(shorten_time_slice(100)))
    thread.start()
    thread.join()
    return found == [100_000]


needs_slices = pytest.mark.skipif(sys.platform != "linux" or not kernel_keeps_slices(),
                                  reason="a kernel that keeps a time slice per task (Linux 6.12+)")


@needs_slices
def test_the_loop_thread_and_the_threads_it_starts_get_the_slice_and_keep_their_nice() -> None:
    # A fresh interpreter at nice 3 (as a service with Nice=3 would be): the slice changes, the nice does not,
    # and a thread started afterwards (the store's) has the same slice.
    code = textwrap.dedent("""
        import os, threading
        os.nice(3)
        from gateway.app import shorten_time_slice
        got = shorten_time_slice(100)
        seen = []
        def read():
            text = open(f"/proc/self/task/{threading.get_native_id()}/sched").read()
            seen.append(text.split("se.slice", 1)[1].split(":", 1)[1].split()[0])
        thread = threading.Thread(target=read)
        thread.start()
        thread.join()
        print(got, os.getpriority(os.PRIO_PROCESS, 0), seen[0])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["100000", "3", "100000"]


def test_no_slice_asked_is_nothing_changed() -> None:
    assert shorten_time_slice(0) is None


def test_the_setting_is_checked() -> None:
    assert parse_config("").gateway.loop_slice_us == 100
    assert parse_config("[gateway]\nloop_slice_us = 0\n").gateway.loop_slice_us == 0
    with pytest.raises(ConfigError, match="at least 100"):
        parse_config("[gateway]\nloop_slice_us = 50\n")
    with pytest.raises(ConfigError, match="loop_slice_us"):
        parse_config("[gateway]\nloop_slice_us = 200000\n")
