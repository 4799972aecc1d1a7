"""The cyclic garbage collector, run from the event loop between messages (``hearth run`` only).

CPython starts a collection inside whichever allocation crosses its threshold (700 new container objects
by default). In the gateway that allocation is most often on the busiest path there is: a scene run that
builds its trace, its command and its task in answer to a motion report. A collection of the young
generation here takes 0.3-2 ms (the store's pending rows are young until their commit), and it then
delays that very command: ``bench/latency.py`` found a collection inside 12 of the 31 probes that
missed the latency target under load (its ``--dump`` keeps each probe and each pause).

:class:`CollectorPacer` takes the collector's schedule over: the same thresholds, the same generations,
but checked every :data:`TICK_S` by a timer of the loop, so a collection runs between two messages and
delays only a message that arrives during it. The automatic collector stays on as a safety net, its
first threshold raised :data:`SAFETY_FACTOR` times: a burst that allocates faster than the ticks
(a long synchronous step) is still collected where it happens.
"""

from __future__ import annotations

import asyncio
import gc

TICK_S = 0.1
SAFETY_FACTOR = 100
# The thresholds before the first pacer raised them, while any runs (two gateways in one process, as in
# tests: the last to stop puts them back).
_original: tuple[int, int, int] | None = None
_running = 0


class CollectorPacer:
    """Collects generation 0 once it holds its threshold's worth of new objects, generation 1 every
    threshold1-th of those and the whole heap every threshold2-th of those, as CPython does (without its
    rule that defers a full collection while few objects were added to the oldest generation: after the
    gateway's ``gc.freeze()`` a full collection walks only what was made since, about a millisecond)."""

    def __init__(self, tick_s: float = TICK_S) -> None:
        self.tick_s = tick_s
        self.thresholds = gc.get_threshold()
        self.collections = [0, 0, 0]
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        global _original, _running
        if self._handle is not None:
            return
        self.thresholds = _original if _original is not None else gc.get_threshold()
        first, *rest = self.thresholds
        if first <= 0:
            return  # the collector is off (gc.set_threshold(0)): nothing to pace
        if _original is None:
            _original = self.thresholds
            gc.set_threshold(first * SAFETY_FACTOR, *rest)
        _running += 1
        self._loop = loop
        self._handle = loop.call_later(self.tick_s, self._tick)

    def stop(self) -> None:
        global _original, _running
        if self._handle is None:
            return
        self._handle.cancel()
        self._handle = None
        _running -= 1
        if _running == 0 and _original is not None:
            gc.set_threshold(*_original)
            _original = None

    def _tick(self) -> None:
        try:
            self.collect_due()
        finally:
            if self._handle is not None:
                self._handle = self._loop.call_later(self.tick_s, self._tick)

    def collect_due(self) -> int | None:
        """Collect the oldest generation that is due, if any; returns it."""
        count0, count1, count2 = gc.get_count()
        threshold0, threshold1, threshold2 = self.thresholds
        if count0 < threshold0:
            return None
        generation = 0
        # gc.collect(g) adds one to generation g + 1's count: as the automatic collector, the older
        # generations are collected after so many collections of the younger.
        if count1 >= threshold1:
            generation = 2 if count2 >= threshold2 else 1
        gc.collect(generation)
        self.collections[generation] += 1
        return generation
