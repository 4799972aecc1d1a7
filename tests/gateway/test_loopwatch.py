"""The loop watchdog (gateway.loopwatch): a call that holds the event loop is seen while it lasts, named by
its stack and attributed to the owner of its code; a loop that only waits is never reported.

Durations here are generous (a block of 0.6 s against a 0.1 s threshold) and nothing asserts an upper bound
on timing: the machine is shared, and only "was it seen, and where" is checked."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from gateway.loopwatch import LoopBlock, LoopWatch, adapter_owners, stack_of

THRESHOLD_S = 0.1
BLOCK_S = 0.6


def hold_the_loop_in_a_plugin_function() -> None:
    time.sleep(BLOCK_S)


async def test_a_blocking_call_is_seen_with_its_stack_and_owner() -> None:
    seen: list[LoopBlock] = []
    threads: list[str] = []

    def on_block(block: LoopBlock) -> None:
        seen.append(block)
        threads.append(threading.current_thread().name)

    async with LoopWatch(THRESHOLD_S, on_block=on_block, owners={__name__: "acme"}) as watch:
        watch.label = "the test's call"
        hold_the_loop_in_a_plugin_function()
        watch.label = None
        await asyncio.sleep(0.05)  # the heartbeat runs again: the block is complete
    assert len(seen) == 1, watch.blocks
    reported = seen[0]
    assert threads == ["hearth-loopwatch"]  # on the watcher's thread, while the loop was held
    assert not reported.ended
    assert reported.owner == "acme"
    assert reported.culprit is not None and reported.culprit.function == "hold_the_loop_in_a_plugin_function"
    assert reported.innermost is not None  # time.sleep is C: the innermost Python frame is the caller's
    assert reported.label == "the test's call"
    [block] = watch.blocks
    assert block.ended and block.blocked_for_s >= THRESHOLD_S
    text = block.describe()
    assert text.startswith("acme: held the event loop for")
    assert "hold_the_loop_in_a_plugin_function" in text and "time.sleep(BLOCK_S)" in text
    assert "test_loopwatch.py" in block.format_stack()
    assert watch.as_dicts()[0]["owner"] == "acme"


def hold_the_gil_in_one_c_call() -> None:
    # One C call that never gives the GIL up (the watcher cannot run meanwhile), sized from a measurement of CPU
    # time to use about 1 s of it, ten times the threshold, on whatever machine this runs, however loaded.
    began = time.thread_time()
    sum(range(10**6))
    per_million = max(time.thread_time() - began, 1e-4)
    sum(range(int(10**6 * 1.0 / per_million)))


async def test_a_c_call_holding_the_gil_is_seen_too() -> None:
    async with LoopWatch(THRESHOLD_S, owners={__name__: "acme"}) as watch:
        watch.label = "the C call"
        hold_the_gil_in_one_c_call()
        watch.label = None
        await asyncio.sleep(0.05)
    # The watcher cannot run during the call: either it got in right after, with the stack just past the call, or
    # the heartbeat found the block once over, without a stack, during the label set then.
    [block] = watch.blocks
    assert block.label == "the C call"
    if block.live:  # the stack as the watcher found it, right after the call
        assert block.culprit is not None
        assert block.culprit.function in ("hold_the_gil_in_one_c_call", "test_a_c_call_holding_the_gil_is_seen_too")
    else:
        assert block.stack == () and block.owner is None and block.ended
        assert "without a stack: one long call that kept the GIL" in block.describe()


async def test_a_block_seen_once_over_is_reported_on_the_loop_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[LoopBlock, str]] = []
    async with LoopWatch(THRESHOLD_S, on_block=lambda b: seen.append((b, threading.current_thread().name))) as watch:
        # As if the watcher could not run (a GIL-holding call): only the heartbeat can tell.
        monkeypatch.setattr(watch, "_look", lambda now: None)
        watch.label = "busy"
        began = time.thread_time()
        while time.thread_time() - began < BLOCK_S:  # busy, so that the loop's thread uses the CPU
            pass
        watch.label = None
        await asyncio.sleep(0.05)
    assert seen, watch.blocks
    block, thread = seen[0]
    assert thread == threading.current_thread().name and not block.live and block.label == "busy"


async def test_a_loop_that_awaits_is_never_reported() -> None:
    async with LoopWatch(THRESHOLD_S) as watch:
        for _ in range(10):
            await asyncio.sleep(0.05)
        await asyncio.to_thread(time.sleep, BLOCK_S)  # another thread may take its time
    assert watch.blocks == []


async def test_code_without_an_owner_is_reported_without_one() -> None:
    async with LoopWatch(THRESHOLD_S, owners={"somebody_else": "other"}) as watch:
        hold_the_loop_in_a_plugin_function()
        await asyncio.sleep(0.05)
    assert len(watch.blocks) == 1
    assert watch.blocks[0].owner is None and watch.blocks[0].culprit is None
    assert watch.blocks_by("other") == []


async def test_owners_match_whole_module_prefixes() -> None:
    # "tests.gateway" owns this module; "tests.gate" (not a whole part) would not.
    async with LoopWatch(THRESHOLD_S, owners={"tests.gateway": "ours", "tests.gate": "wrong"}) as watch:
        hold_the_loop_in_a_plugin_function()
        await asyncio.sleep(0.05)
    assert [b.owner for b in watch.blocks] == ["ours"]


async def test_each_block_is_reported_once_and_blocks_are_bounded() -> None:
    calls: list[LoopBlock] = []
    async with LoopWatch(THRESHOLD_S, on_block=calls.append, max_blocks=1) as watch:
        for _ in range(2):
            hold_the_loop_in_a_plugin_function()
            await asyncio.sleep(0.05)
    assert len(calls) == 2  # each block once, however long it lasted
    assert len(watch.blocks) == 1 and watch.dropped == 1


async def test_a_failing_listener_does_not_stop_the_watch() -> None:
    def broken(block: LoopBlock) -> None:
        raise RuntimeError("listener bug")

    async with LoopWatch(THRESHOLD_S, on_block=broken) as watch:
        hold_the_loop_in_a_plugin_function()
        await asyncio.sleep(0.05)
        hold_the_loop_in_a_plugin_function()
        await asyncio.sleep(0.05)
    assert len(watch.blocks) == 2


async def test_stop_is_idempotent_and_a_watch_runs_once_at_a_time() -> None:
    watch = LoopWatch(THRESHOLD_S)
    watch.start()
    assert watch.running
    with pytest.raises(RuntimeError):
        watch.start()
    watch.stop()
    watch.stop()
    assert not watch.running
    assert not any(t.name == "hearth-loopwatch" for t in threading.enumerate())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        LoopWatch(0)
    with pytest.raises(ValueError):
        LoopWatch(0.1, poll_s=-1)


def test_stack_of_reads_a_frame_outwards() -> None:
    import sys

    stack = stack_of(sys._getframe())
    assert stack[-1].function == "test_stack_of_reads_a_frame_outwards"
    assert stack[-1].module == __name__
    assert "stack_of(sys._getframe())" in stack[-1].line


def test_adapter_owners_give_a_plugin_its_package_and_a_built_in_its_module() -> None:
    from adapters.shelly.mdns_adapter import MdnsAdapter
    from adapters.shelly.mqtt_adapter import ShellyMqttAdapter
    from adapters.tasmota.adapter import TasmotaAdapter

    class AcmeAdapter:
        pass

    AcmeAdapter.__module__ = "acme_hearth.adapter"
    owners = adapter_owners({"tasmota": TasmotaAdapter, "shelly": ShellyMqttAdapter, "acme": AcmeAdapter})
    assert owners == {"adapters.tasmota": "tasmota", "adapters.shelly": "shelly", "acme_hearth": "acme"}
    # Two adapters in one package (Shelly over MQTT and over HTTP): each owns its own module.
    owners = adapter_owners({"shelly": ShellyMqttAdapter, "mdns": MdnsAdapter})
    assert owners == {"adapters.shelly.mqtt_adapter": "shelly", "adapters.shelly.mdns_adapter": "mdns"}


def test_a_built_in_in_a_package_of_its_own_owns_that_package() -> None:
    # A convention's codec is in its package beside its adapter: a block in the codec is the adapter's.
    classes: dict[str, Any] = {}
    for name in ("tasmota", "zigbee2mqtt"):
        cls = type(f"{name}Adapter", (), {})
        cls.__module__ = f"adapters.{name}.adapter"
        classes[name] = cls
    owners = adapter_owners(classes)
    assert owners == {"adapters.tasmota": "tasmota", "adapters.zigbee2mqtt": "zigbee2mqtt"}
