"""The collector's pacer: collections between messages, on CPython's thresholds, and garbage still goes."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway.gcpace import SAFETY_FACTOR, CollectorPacer


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    gc.collect()
    try:
        yield gc.get_threshold()
    finally:
        gc.set_threshold(*before)


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


async def test_cyclic_garbage_is_collected_by_the_loop_not_inside_an_allocation(thresholds: tuple[int, ...]) -> None:
    pacer = CollectorPacer(tick_s=0.01)
    seen: list[str] = []

    def where(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append("pacer" if _in_tick[0] else "allocation")

    _in_tick = [False]
    tick = pacer._tick

    def traced_tick() -> None:
        _in_tick[0] = True
        try:
            tick()
        finally:
            _in_tick[0] = False

    pacer._tick = traced_tick  # type: ignore[method-assign]
    pacer.start(asyncio.get_running_loop())
    gc.callbacks.append(where)
    try:
        assert gc.get_threshold() == (700 * SAFETY_FACTOR, 10, 10)
        # Far more than one threshold's worth of cycles, made in one go (no tick in between).
        refs = [_cycle() for _ in range(5_000)]
        assert all(ref() is not None for ref in refs), "collected inside the allocations"
        for _ in range(100):
            await asyncio.sleep(0.01)
            if all(ref() is None for ref in refs):
                break
        assert all(ref() is None for ref in refs), "the pacer left cyclic garbage behind"
        assert seen and set(seen) == {"pacer"}
        assert pacer.collections[0] >= 1
    finally:
        gc.callbacks.remove(where)
        pacer.stop()
    assert gc.get_threshold() == thresholds


def test_the_older_generations_come_after_so_many_younger_collections(thresholds: tuple[int, ...]) -> None:
    pacer = CollectorPacer()
    gc.set_threshold(700 * SAFETY_FACTOR, 10, 10)  # as start() leaves it (without a loop to tick)
    assert pacer.collect_due() is None  # nothing new since the fixture's collection
    kept: list[list[int]] = []
    generations = []
    for _ in range(130):
        kept.extend([] for _ in range(800))  # alive: counted, and not freed before the check
        generations.append(pacer.collect_due())
    assert generations.count(None) == 0
    # The tenth collection of generation 0 since the last of generation 1 is one of generation 1; the tenth
    # of those a full one, as CPython's own schedule with these thresholds.
    assert generations[:10] == [0] * 10
    assert generations[10] == 1
    assert 2 in generations
    assert pacer.collections[2] == generations.count(2) >= 1


def test_a_collector_switched_off_stays_off(thresholds: tuple[int, ...]) -> None:
    gc.set_threshold(0)
    try:
        pacer = CollectorPacer()
        loop = asyncio.new_event_loop()
        pacer.start(loop)
        loop.close()
        assert pacer._handle is None
        assert gc.get_threshold()[0] == 0
        pacer.stop()
        assert gc.get_threshold()[0] == 0
    finally:
        gc.set_threshold(*thresholds)


async def test_two_pacers_in_one_process_put_the_thresholds_back_once_both_stop(
        thresholds: tuple[int, ...]) -> None:
    loop = asyncio.get_running_loop()
    first, second = CollectorPacer(), CollectorPacer()
    first.start(loop)
    second.start(loop)
    assert second.thresholds == thresholds  # not the raised ones
    first.stop()
    assert gc.get_threshold()[0] == 700 * SAFETY_FACTOR  # the second still paces
    second.stop()
    assert gc.get_threshold() == thresholds
