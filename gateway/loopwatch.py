"""A watchdog for the event loop: notices when something holds the loop too long, and says what.

Every adapter, the hub and the API share one asyncio loop, so one call that blocks it (a ``time.sleep``,
a synchronous HTTP request, a parse of a huge payload) stalls the whole house. :class:`LoopWatch` finds such
calls while they happen, as blockbuster does for Home Assistant, but without patching anything: a heartbeat
scheduled on the loop stamps the time, and a watcher thread that sees the stamp grow old reads the loop
thread's stack with :func:`sys._current_frames` while the loop is still held. The stack names the culprit;
``owners`` (module prefix -> owner, e.g. an adapter's package -> its name) says whose code it is.

Used by ``hearth plugin check`` (gateway.devkit.conformance); made to be used by the supervisor too (a blocked
loop detected within a second, with the adapter and its stack).

Threads: the watcher is one daemon thread; ``on_block`` is called **on that thread**, while the loop is
still blocked (hand anything that touches the loop to ``loop.call_soon_threadsafe``), except for a block only
seen once over (see :class:`LoopWatch`), reported on the loop's thread.
"""

from __future__ import annotations

import asyncio
import linecache
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any

__all__ = ["DEFAULT_THRESHOLD_S", "LoopBlock", "LoopWatch", "StackFrame", "adapter_owners", "stack_of"]

# A quarter of a second: far longer than any callback of a healthy gateway (they take microseconds to a few
# milliseconds), short enough that a blocked loop is noticed well within the second a user would notice it.
DEFAULT_THRESHOLD_S = 0.25
# A late heartbeat the watcher did not see (it could not run) is a block when the loop's thread used at least this
# fraction of the threshold in CPU time meanwhile: it held the GIL in a long call. A thread the scheduler did not
# run (a loaded machine) used next to none. CPU time, not a share of the wall time: on a loaded machine a busy
# thread's share is small, and its CPU time still adds up.
LOOP_BUSY_CPU_FRACTION = 0.5
# The deepest stack kept: enough to reach from the loop's own frames down into any adapter's code.
MAX_STACK_FRAMES = 200


@dataclass(frozen=True, slots=True)
class StackFrame:
    """One frame of the loop thread's stack, as seen when it was blocked."""

    module: str  # the frame's module (its globals' __name__), "" when unknown
    function: str
    filename: str
    lineno: int
    line: str  # the source line, stripped ("" when the source is not available)

    def __str__(self) -> str:
        where = f"{self.filename}:{self.lineno} in {self.function}"
        return f"{where}: {self.line}" if self.line else where


@dataclass(frozen=True, slots=True)
class LoopBlock:
    """The loop was held for at least ``blocked_for_s`` (more, if it was still held when seen).

    ``stack`` is the loop thread's stack while it was held, outermost frame first; ``owner`` the owner
    (per ``LoopWatch(owners=...)``) of the innermost frame that has one, and ``culprit`` that frame.
    ``ended`` is False while the loop is still held (the report made at once), True in :attr:`LoopWatch.blocks`
    once the loop ran again, with the whole duration.
    """

    started_at: float  # time.monotonic() of the last heartbeat before the block
    blocked_for_s: float
    stack: tuple[StackFrame, ...]
    owner: str | None = None
    culprit: StackFrame | None = None
    ended: bool = False
    label: str | None = None  # what the watch's user said was running (LoopWatch.label), if anything
    #: False for a block seen only once it was over (the loop's thread kept the GIL in one long C call, so the
    #: watcher could not run): it has no stack, no owner; ``label`` says what was running, if anything.
    live: bool = True

    @property
    def innermost(self) -> StackFrame | None:
        return self.stack[-1] if self.stack else None

    def describe(self) -> str:
        """One line: how long, whose code, where, and the call it was in (the innermost frame)."""
        held = f"held the event loop for {'at least ' if not self.ended else ''}{self.blocked_for_s:.2f} s"
        who = f"{self.owner}: " if self.owner else ""
        parts = [f"{who}{held}"]
        if self.label:
            parts.append(f"during {self.label}")
        if not self.live:
            parts.append("(seen once over, without a stack: one long call that kept the GIL, a C function such as a "
                         "regular expression or a parser)")
        if self.culprit is not None:
            parts.append(f"at {self.culprit}")
        inner = self.innermost
        if inner is not None and inner is not self.culprit:
            parts.append(f"(in {inner.function} of {inner.module or inner.filename})")
        return " ".join(parts)

    def format_stack(self, limit: int = 12) -> str:
        """The innermost ``limit`` frames, one a line, innermost last (as a traceback reads)."""
        return "\n".join(f"  {frame}" for frame in self.stack[-limit:])


def stack_of(frame: FrameType | None, limit: int = MAX_STACK_FRAMES) -> tuple[StackFrame, ...]:
    """The stack from ``frame`` outwards, as :class:`StackFrame`s, outermost first."""
    frames: list[StackFrame] = []
    while frame is not None and len(frames) < limit:
        code = frame.f_code
        module = frame.f_globals.get("__name__", "")
        lineno = frame.f_lineno or code.co_firstlineno
        line = linecache.getline(code.co_filename, lineno).strip()
        frames.append(StackFrame(module if isinstance(module, str) else "", code.co_name, code.co_filename,
                                 lineno, line))
        frame = frame.f_back
    frames.reverse()
    return tuple(frames)


def adapter_owners(classes: Mapping[str, Any]) -> dict[str, str]:
    """``owners`` for a LoopWatch over adapters (name -> class, as the supervisor has them): each adapter owns the
    top-level package of its class (a plugin's whole package, its codec included), unless other adapters share
    that package (the built-in ones under ``adapters``): then the package its class's module is in (the
    convention's own, ``adapters.zigbee2mqtt``), or, shared too, its class's own module."""
    tops: dict[str, list[str]] = {}
    parents: dict[str, list[str]] = {}
    for name, cls in classes.items():
        module = str(getattr(cls, "__module__", ""))
        tops.setdefault(module.split(".")[0], []).append(name)
        parents.setdefault(module.rpartition(".")[0], []).append(name)
    owners: dict[str, str] = {}
    for name, cls in sorted(classes.items()):
        module = str(getattr(cls, "__module__", ""))
        top = module.split(".")[0]
        parent = module.rpartition(".")[0]
        if len(tops[top]) == 1:
            owners[top] = name
        elif parent and parent != top and len(parents[parent]) == 1:
            owners[parent] = name
        else:
            owners[module] = name
    return owners


def _idle(stack: tuple[StackFrame, ...]) -> bool:
    """Whether the loop's thread is in the loop's own wait for events (nothing of anybody's on it)."""
    if not stack:
        return True  # the thread is gone, or not running Python
    inner = stack[-1]
    # asyncio's own loop: _run_once waiting in its selector.
    if inner.module == "selectors" and len(stack) >= 2 and stack[-2].function == "_run_once" \
            and stack[-2].module == "asyncio.base_events":
        return True
    # A loop written in C (uvloop) waits below the frame that started it: nothing above that frame.
    return "run_until_complete(" in inner.line or "run_forever(" in inner.line


def _owner_of(module: str, owners: Mapping[str, str]) -> str | None:
    """The owner of ``module``: the longest prefix of it (whole dotted parts) in ``owners``."""
    name = module
    while name:
        owner = owners.get(name)
        if owner is not None:
            return owner
        name = name.rpartition(".")[0]
    return None


@dataclass
class _Stall:
    started_at: float
    block: LoopBlock
    index: int  # where in LoopWatch.blocks


@dataclass
class LoopWatch:
    """Watch the running loop for calls that hold it longer than ``threshold_s``.

    ``async with LoopWatch(...) as watch:`` (or :meth:`start` / :meth:`stop` from the loop's thread). Each block
    is reported once, while it lasts, to ``on_block`` (on the watcher thread) and kept in :attr:`blocks`, where it
    is completed with its whole duration once the loop runs again. ``owners`` maps module names (or package
    prefixes) to owners, so a block in ``acme_hearth.codec`` is attributed to ``"acme"``. ``poll_s`` (default: a
    fifth of the threshold) is both the heartbeat's period and the watcher's; a block is seen once the heartbeat
    is ``threshold_s`` late, that is within ``threshold_s + 2 * poll_s`` of its start (at the default, 20 wake-ups a
    second on each side: nothing, even on a Pi). At most ``max_blocks`` are kept (the first ones; :attr:`dropped`
    counts the others).

    A late heartbeat while the loop waits in its selector is not a block (the loop's thread was not scheduled: a
    loaded machine, a suspended VM) and is not reported. One long C call that keeps the GIL (a pathological
    regex, a huge parse) keeps the watcher from running at all: the heartbeat then finds it once it is over, by the
    CPU time the loop's thread used meanwhile (``live`` False: no stack; ``on_block`` is then called on the loop's
    thread), unless the watcher got in first, with the stack just past the call.
    """

    threshold_s: float = DEFAULT_THRESHOLD_S
    on_block: Callable[[LoopBlock], None] | None = None
    owners: Mapping[str, str] = field(default_factory=dict)
    poll_s: float | None = None
    max_blocks: int = 1000
    blocks: list[LoopBlock] = field(default_factory=list, init=False)
    dropped: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if not self.threshold_s > 0:
            raise ValueError(f"threshold_s must be > 0, not {self.threshold_s!r}")
        self._poll = self.poll_s if self.poll_s is not None else self.threshold_s / 5
        if not self._poll > 0:
            raise ValueError(f"poll_s must be > 0, not {self.poll_s!r}")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._beat = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stall: _Stall | None = None
        self._beat_cpu = 0.0
        self._label: str | None = None
        # The last label set, and when: a block seen only once it is over is said to be during it, if it was set
        # since the heartbeat before the block (the user has usually cleared the label by then).
        self._recent_label: tuple[str, float] | None = None

    @property
    def label(self) -> str | None:
        """A free-form label of what is running now, set by the watch's user (``watch.label = "start()"``, then
        None), and given to the blocks seen meanwhile: a cheap way to say which call of a test or check was on
        the loop, beside what the stack says."""
        return self._label

    @label.setter
    def label(self, text: str | None) -> None:
        self._label = text
        if text is not None:
            self._recent_label = (text, time.monotonic())

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> LoopWatch:
        self.start(asyncio.get_running_loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start watching ``loop`` (default: the running one). Call it from the loop's own thread."""
        if self._thread is not None:
            raise RuntimeError("this LoopWatch is already running")
        self._loop = loop or asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping.clear()
        self._beat = time.monotonic()
        self._beat_cpu = time.thread_time()
        self._handle = self._loop.call_later(self._poll, self._heartbeat)
        self._thread = threading.Thread(target=self._watch, name="hearth-loopwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; a block still going on is recorded with its duration so far. Idempotent."""
        if self._thread is None:
            return
        self._stopping.set()
        # The watcher sleeps at most one poll between looks at the flag.
        self._thread.join(timeout=max(1.0, 10 * self._poll))
        self._thread = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        with self._lock:
            self._finish_stall(time.monotonic())

    # ------------------------------------------------------------------ loop side

    def _heartbeat(self) -> None:
        now = time.monotonic()
        cpu = time.thread_time()  # this is the loop's thread
        seen: LoopBlock | None = None
        with self._lock:
            gap = now - self._beat
            if (self._stall is None and gap - self._poll >= self.threshold_s
                    and cpu - self._beat_cpu >= LOOP_BUSY_CPU_FRACTION * self.threshold_s):
                # Held, and the watcher never saw it: it could not run, because the loop's thread kept the GIL
                # (one long C call). Known only now, without a stack; said to be during the label of the time.
                recent = self._recent_label
                label = self._label or (recent[0] if recent is not None and recent[1] >= self._beat else None)
                seen = LoopBlock(self._beat, gap - self._poll, (), label=label, ended=True, live=False)
                self._keep(seen)
            self._beat = now
            self._beat_cpu = cpu
            self._finish_stall(now)
        if seen is not None:
            self._notify(seen)
        if self._loop is not None and not self._stopping.is_set():
            self._handle = self._loop.call_later(self._poll, self._heartbeat)

    def _keep(self, block: LoopBlock) -> int:
        """Add ``block`` to :attr:`blocks` (its index), or count it as dropped (-1). Under the lock."""
        if len(self.blocks) < self.max_blocks:
            self.blocks.append(block)
            return len(self.blocks) - 1
        self.dropped += 1
        return -1

    def _notify(self, block: LoopBlock) -> None:
        if self.on_block is None:
            return
        try:
            self.on_block(block)
        except Exception:  # a watchdog must outlive its listener's mistakes
            import logging

            logging.getLogger("hearth.loopwatch").exception("loop watch: on_block failed")

    def _finish_stall(self, now: float) -> None:
        stall = self._stall
        if stall is None:
            return
        self._stall = None
        if stall.index >= 0:
            self.blocks[stall.index] = replace(stall.block, blocked_for_s=now - stall.started_at, ended=True)

    # ------------------------------------------------------------------ watcher thread

    def _watch(self) -> None:
        while not self._stopping.wait(self._poll):
            self._look(time.monotonic())

    def _look(self, now: float) -> None:
        """One look of the watcher at the heartbeat: a block is reported, with the stack, when it is late."""
        with self._lock:
            # The heartbeat is due every poll: it is late by what the loop was held beyond that.
            late = now - self._beat - self._poll
            if late < self.threshold_s or self._stall is not None:
                return
            started = self._beat
            block = self._capture(now - started)
            if _idle(block.stack):
                # The loop is waiting for something to do: it was not held, its thread was not scheduled (a loaded
                # machine, a suspended VM). Not a block; the heartbeat runs as soon as the thread does.
                return
            self._stall = _Stall(started, block, self._keep(block))
        self._notify(block)

    def _capture(self, held_s: float) -> LoopBlock:
        frame = sys._current_frames().get(self._loop_thread) if self._loop_thread is not None else None
        stack = stack_of(frame)
        del frame  # a frame kept here would keep its locals alive
        owner: str | None = None
        culprit: StackFrame | None = None
        if self.owners:
            for entry in reversed(stack):
                owner = _owner_of(entry.module, self.owners)
                if owner is not None:
                    culprit = entry
                    break
        return LoopBlock(self._beat, held_s, stack, owner, culprit, label=self.label)

    # ------------------------------------------------------------------ reading

    def blocks_by(self, owner: str) -> list[LoopBlock]:
        return [block for block in self.blocks if block.owner == owner]

    def as_dicts(self) -> list[dict[str, Any]]:
        """The blocks seen, JSON-able (for a health report or ``--json``)."""
        return [{"blocked_for_s": round(b.blocked_for_s, 3), "owner": b.owner, "label": b.label, "live": b.live,
                 "culprit": str(b.culprit) if b.culprit else None, "ended": b.ended,
                 "stack": [str(f) for f in b.stack[-12:]]} for b in self.blocks]
