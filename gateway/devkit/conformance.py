"""``hearth plugin check [NAME]``: the conformance kit. It loads a plugin's adapter and checks what the adapter
contract (docs/plugins.md, DESIGN.md contracts 2 and 3) promises, one row per check, PASS / FAIL / SKIP, each
with a line saying why and, for a failure, every problem named (device, message, call):

``loads``       it imports, its ``requires_sdk`` admits this gateway's SDK, it is a class with async
                ``start``/``stop``/``execute``;
``config``      its ``config_model`` accepts the ``[adapters.NAME]`` section (of ``--config``, or an empty one);
``start``       ``start(ctx)`` returns, without an exception, within :data:`START_LIMIT_S`;
``device ids``  every device it makes is ``<adapter name>:<native id>``, lowercase;
``values``      replaying its captures (``*.jsonl`` in the ``captures`` folder of its top-level package, plus
                ``--capture`` files), every value it pushes is one the hub accepts (model types, canonical units
                and ranges: the hub's rejections are failures, with their text) and plausible for its unit (a
                temperature of 2950 °C is a unit slip the model's range alone would let through);
``callbacks``   no exception escapes a message callback or a task of its own;
``commands``    every command its devices say they take, with sample arguments built from the model, comes back
                as a CommandResult (a refusal with its reason) without raising, within the time limit;
``fuzz``        every subscription gets mutated and garbage payloads (seeded, bounded in number and time) and no
                exception escapes: bad input is reported with ``ctx.report_bad_input``;
``blocking``    nothing of its code held the event loop longer than :data:`BLOCK_THRESHOLD_S` (the call is named,
                from the loop thread's stack: :mod:`gateway.loopwatch`);
``stop``        ``stop()`` returns, without an exception, within :data:`STOP_LIMIT_S`;
``leaks``       after stop, no task it made is still running, no thread it started is alive, no MQTT
                subscription of its is left.

The adapter runs in the maker's test harness (:class:`gateway.devkit.harness.Harness`: a real hub, the real
adapter context, in-memory MQTT and a simulated clock), observed through the hub it is given. Exit code: 0 when
nothing failed, 1 when a check failed, 2 for a usage error (an unknown plugin, a missing file).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.resources
import inspect
import json
import logging
import math
import random
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, TextIO

from gateway.errors import HearthError

__all__ = ["Check", "PluginReport", "Target", "check_plugin", "format_reports", "resolve_targets", "run"]

log = logging.getLogger("hearth.devkit.conformance")

Status = Literal["PASS", "FAIL", "SKIP"]
CHECK_NAMES = ("loads", "config", "start", "device ids", "values", "callbacks", "commands", "fuzz", "blocking",
               "stop", "leaks")

# Held longer than this, the event loop is "blocked" (gateway.loopwatch): a healthy callback takes microseconds
# to a few milliseconds; a quarter second is a stall everything else in the house feels.
BLOCK_THRESHOLD_S = 0.25
# Real seconds a start or a stop may take: the gateway warns about a start slower than 10 s; an adapter that
# needs longer should start its slow part as a task (ctx.create_task) and return.
START_LIMIT_S = 10.0
STOP_LIMIT_S = 10.0
# Fuzzing: payloads per subscription and real seconds per subscription (bounded either way), and the seed, so
# that a failure found in CI is found again on the maker's machine.
FUZZ_PAYLOADS = 200
FUZZ_TIME_S = 5.0
FUZZ_SEED = 19
# All subscriptions together get at most this long: a bridge adapter may subscribe to dozens of filters.
FUZZ_TOTAL_TIME_S = 60.0
# At most this many commands are tried (a bridge with hundreds of devices takes the same few commands each).
MAX_COMMANDS = 200
# Lines of a capture played (a capture of a whole house is for `hearth replay`, not for a conformance run).
MAX_CAPTURE_LINES = 50_000
# Real seconds a thread the adapter started is given to end after its stop().
THREAD_GRACE_S = 2.0
# Problems listed per check in the table (--json lists them all, up to MAX_PROBLEMS).
SHOWN_PROBLEMS = 10
MAX_PROBLEMS = 1000

# Values a device may legitimately report beyond which a number is a unit slip (centi-degrees, pascals for hPa,
# millivolts, milliwatts), though the model's range lets it through: (capability, attribute) -> (low, high, hint).
# (capability, attribute) -> (low, high, the canonical unit, the usual slips).
PLAUSIBLE: dict[tuple[str, str], tuple[float, float, str, str]] = {
    ("temperature", "celsius"): (-90.0, 1000.0, "°C", "hundredths or tenths of a degree? kelvin?"),
    ("thermostat", "current_celsius"): (-90.0, 200.0, "°C", "hundredths or tenths of a degree? kelvin?"),
    ("pressure", "hpa"): (150.0, 1500.0, "hPa", "Pa? kPa?"),
    ("power_meter", "volts"): (0.0, 1000.0, "V", "mV?"),
    ("power_meter", "watts"): (-100_000.0, 100_000.0, "W", "mW?"),
    ("power_meter", "amps"): (-1000.0, 1000.0, "A", "mA?"),
    ("power_meter", "hertz"): (0.0, 500.0, "Hz", "mHz?"),
    ("battery", "volts"): (0.0, 100.0, "V", "mV?"),
    ("illuminance", "lux"): (0.0, 200_000.0, "lx", "millilux?"),
}


class UsageError(HearthError):
    """What ``hearth plugin check`` was asked cannot be done (exit code 2)."""


@dataclass
class Check:
    """One row of the table."""

    name: str
    status: Status
    reason: str
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status, "reason": self.reason, "problems": self.problems}


@dataclass
class PluginReport:
    name: str
    target: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.status != "FAIL" for check in self.checks)

    @property
    def failed(self) -> list[Check]:
        return [check for check in self.checks if check.status == "FAIL"]

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "passed": self.passed,
                "checks": [check.as_dict() for check in self.checks]}


@dataclass
class Target:
    """A plugin to check: its adapter name (None: decided once its class is loaded) and ``module:Class``."""

    name: str | None
    spec: str
    entry_point: Any = None  # importlib.metadata.EntryPoint when installed

    def load(self) -> Any:
        if self.entry_point is not None:
            return self.entry_point.load()
        module_name, _, attr = self.spec.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj


@dataclass
class Options:
    block_threshold_s: float = BLOCK_THRESHOLD_S
    start_limit_s: float = START_LIMIT_S
    stop_limit_s: float = STOP_LIMIT_S
    fuzz_payloads: int = FUZZ_PAYLOADS
    fuzz_time_s: float = FUZZ_TIME_S
    fuzz_seed: int = FUZZ_SEED


# ---------------------------------------------------------------------------------------------------- targets

ENTRY_POINT_GROUP = "hearth.adapters"


def _installed() -> list[Any]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _is_builtin(ep: Any) -> bool:
    return str(ep.value).split(":", 1)[0].startswith("adapters.")


def resolve_targets(name: str | None) -> list[Target]:
    """What to check: ``NAME`` (an installed entry point), ``module:Class`` or ``NAME=module:Class``; default
    every installed plugin that is not built in. Raises :class:`UsageError` saying what is installed."""
    installed = _installed()
    if name is None:
        plugins = [Target(ep.name, ep.value, ep) for ep in installed if not _is_builtin(ep)]
        if not plugins:
            raise UsageError("no adapter plugins are installed besides the built-in ones: install one (pip install "
                             "-e <your plugin>), or name one: hearth plugin check NAME | module:Class")
        return sorted(plugins, key=lambda t: t.name or "")
    explicit, eq, rest = name.partition("=")
    if eq and ":" in rest and explicit.isidentifier():
        return [Target(explicit, rest)]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        if not module_name or not attr:
            raise UsageError(f"{name!r}: write module:Class, such as acme_hearth:AcmeAdapter")
        same = next((ep for ep in installed if ep.value.replace(" ", "") == name), None)
        return [Target(same.name if same is not None else None, name)]
    matches = [ep for ep in installed if ep.name == name]
    if not matches:
        known = ", ".join(sorted({ep.name for ep in installed})) or "none"
        raise UsageError(f"no adapter plugin named {name!r} is installed (entry points of {ENTRY_POINT_GROUP}: "
                         f"{known}); a class not installed yet can be given as module:Class")
    ep = matches[0]
    return [Target(ep.name, ep.value, ep)]


def default_name(cls: Any, spec: str) -> str:
    """The adapter name of a plugin given as ``module:Class`` and not installed: the class's ``name`` attribute,
    else its top-level package's name without a ``hearth_`` prefix (as the test harness names it)."""
    name = getattr(cls, "name", None)
    if isinstance(name, str) and name:
        return name
    package = spec.split(":", 1)[0].split(".")[0]
    return package.removeprefix("hearth_") or package


def plugin_captures(cls: Any) -> list[Path]:
    """The plugin's own captures, by convention: ``*.jsonl`` in a ``captures`` folder of the top-level package
    of its adapter class (read through importlib.resources, so an installed wheel's are found too)."""
    package = str(getattr(cls, "__module__", "")).split(".")[0]
    try:
        module = importlib.import_module(package)
    except Exception:
        return []
    if not hasattr(module, "__path__"):  # a plain module has no package folder of its own
        return []
    try:
        folder = importlib.resources.files(package) / "captures"
        if not folder.is_dir():
            return []
        found = sorted((entry for entry in folder.iterdir() if entry.name.endswith(".jsonl") and entry.is_file()),
                       key=lambda entry: entry.name)
    except (OSError, TypeError, ValueError):
        return []
    return [Path(str(entry)) for entry in found]


# ---------------------------------------------------------------------------------------------------- helpers


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _exception_text(err: BaseException) -> str:
    message = str(err)
    text = f"{type(err).__name__}: {message}" if message else type(err).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def _plugin_frame(err: BaseException, package: str) -> str | None:
    """Where in the plugin's own code ``err`` was raised (the innermost frame of its package), as file:line."""
    where: str | None = None
    tb = err.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and (module == package or module.startswith(package + ".")):
            code = tb.tb_frame.f_code
            where = f"{_short_path(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"
        tb = tb.tb_next
    return where


def _raised(err: BaseException, package: str) -> str:
    where = _plugin_frame(err, package)
    return f"raised {_exception_text(err)}" + (f" at {where}" if where else "")


def id_problem(device_id: Any, source: Any, name: str, *, builtin: bool = False) -> str | None:
    """Why a device id breaks DESIGN.md contract 2 (``<source>:<native id>``, lowercase, source = the adapter's
    name), or None. A built-in adapter may use the short source DESIGN.md gives it (``ha:`` for homeassistant),
    as long as its devices say that source too; a plugin's source is its name, so that two never collide."""
    if not isinstance(device_id, str):
        return f"device id {device_id!r} is not a string"
    prefix, colon, native = device_id.partition(":")
    if not colon:
        return f"device id {device_id!r} has no source: ids are '{name}:<native id>'"
    if prefix != name and not (builtin and prefix == source and prefix):
        return (f"device id {device_id!r}: its source {prefix!r} is not the adapter's name {name!r} "
                f"(ids are '{name}:<native id>', so that two plugins never make the same id)")
    if not native:
        return f"device id {device_id!r} has an empty native id"
    if device_id != device_id.lower():
        return f"device id {device_id!r} is not lowercase (write {device_id.lower()!r})"
    if any(ch.isspace() or ord(ch) < 32 for ch in device_id):
        return f"device id {device_id!r} contains whitespace or control characters"
    if source != prefix:
        return f"device {device_id!r} says its source is {source!r}, and its id says {prefix!r}"
    return None


def implausible(capability: str, attribute: str, value: Any) -> str | None:
    """Why ``value`` looks like a unit slip for this attribute (see :data:`PLAUSIBLE`), or None."""
    bounds = PLAUSIBLE.get((capability, attribute))
    if bounds is None or isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    low, high, unit, slips = bounds
    if low <= value <= high:
        return None
    return f"{capability}.{attribute} = {value:g} is outside the plausible {low:g}..{high:g} {unit} ({slips})"


def sample_args(cmd_spec: Any, limits: dict[str, tuple[float | None, float | None]], now_iso: str) -> dict[str, Any]:
    """Valid arguments for a command, from its ArgSpecs (and the device's limits): the middle of a range, the
    first of an enum; optional arguments are left out."""
    args: dict[str, Any] = {}
    for name, spec in cmd_spec.args.items():
        if not spec.required:
            continue
        low, high = spec.minimum, spec.maximum
        if name in limits:
            limit_low, limit_high = limits[name]
            low = limit_low if limit_low is not None else low
            high = limit_high if limit_high is not None else high
        if spec.type in ("number", "integer"):
            if low is not None and high is not None:
                value: Any = (low + high) / 2
            elif low is not None:
                value = low + 1
            elif high is not None:
                value = high - 1
            else:
                value = 1
            if spec.type == "integer":
                value = math.ceil(value) if low is not None and math.ceil(value) >= low else int(value)
            args[name] = value
        elif spec.type == "bool":
            args[name] = True
        elif spec.type == "enum":
            args[name] = spec.values[0] if spec.values else ""
        elif spec.type == "timestamp":
            args[name] = now_iso
        else:
            args[name] = "conformance"
    return args


# ---------------------------------------------------------------------------------------------------- fuzzing

# Values that have the wrong type (or size) wherever a payload's field is expected.
_WRONG_VALUES: tuple[Any, ...] = (None, True, False, 0, -1, 1.5, 10**30, -(10**30), 1e308, -1e308, "", "x",
                                  "NaN", "1e999", [], {}, [None], {"": None}, "\u0000", "é" * 300)


def _synthetic_topic(topic_filter: str) -> str:
    levels = ["fuzz0" if level == "+" else level for level in topic_filter.split("/")]
    if levels and levels[-1] == "#":
        levels[-1:] = ["fuzz0", "deep"]
    return "/".join(levels)


def fuzz_payloads(samples: list[bytes], rng: random.Random) -> Iterator[tuple[str, bytes]]:
    """``(kind, payload)``: fixed classics of bad input, then mutations of the real payloads ``samples``
    (truncated, fields of the wrong type, bytes flipped), then random bytes, without end (the caller bounds it)."""
    classics: list[tuple[str, bytes]] = [
        ("empty", b""), ("NUL", b"\x00"), ("invalid UTF-8", b"\xff\xfe\xfd"), ("null", b"null"), ("true", b"true"),
        ("zero", b"0"), ("negative", b"-1"), ("huge number", b"1" * 400), ("overflowing float", b"1e999"),
        ("NaN", b"NaN"), ("string", b'"string"'), ("empty array", b"[]"), ("empty object", b"{}"),
        ("array", b"[1,2,3]"), ("truncated object", b'{"a":'), ("lone brace", b"{"),
        ("deep nesting (array)", b"[" * 5000 + b"]" * 5000),
        ("deep nesting (object)", b'{"a":' * 5000 + b"1" + b"}" * 5000),
        ("long string", b'"' + b"x" * 100_000 + b'"'), ("binary", bytes(range(256))),
    ]
    yield from classics
    parsed: list[Any] = []
    for sample in samples:
        for cut in sorted({len(sample) // 2, max(0, len(sample) - 1), rng.randrange(len(sample) + 1)}):
            yield f"truncated at {cut}", sample[:cut]
        try:
            parsed.append(json.loads(sample))
        except (ValueError, RecursionError):
            continue
    for value in parsed:
        if isinstance(value, dict):
            for key in list(value)[:30]:
                for wrong in _WRONG_VALUES:
                    mutated = dict(value)
                    mutated[key] = wrong
                    yield f"{key} = {_short(wrong, 30)}", _json_bytes(mutated)
                without = {k: v for k, v in value.items() if k != key}
                yield f"without {key}", _json_bytes(without)
        elif isinstance(value, list):
            for wrong in _WRONG_VALUES:
                yield f"array of {_short(wrong, 30)}", _json_bytes([wrong] * max(1, len(value)))
        else:
            for wrong in _WRONG_VALUES:
                yield f"{_short(wrong, 30)} instead of {_short(value, 30)}", _json_bytes(wrong)
    for _ in range(1_000_000):
        if samples and rng.random() < 0.5:
            flipped = bytearray(rng.choice(samples))
            for _ in range(rng.randint(1, 4)):
                if flipped:
                    flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            yield "bytes flipped", bytes(flipped)
        else:
            yield "random bytes", rng.randbytes(rng.randint(1, 64))


def _json_bytes(value: Any) -> bytes:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace('"1e999"', "1e999").encode("utf-8")


# ---------------------------------------------------------------------------------------------------- the run


@dataclass
class _Observation:
    """What the adapter did to the hub, by phase (gathered by wrapping the hub the harness gives it)."""

    name: str
    where: str = "start()"
    phase: str = "start"
    builtin: bool = False
    id_problems: dict[str, str] = field(default_factory=dict)  # kind of mistake -> its first occurrence
    id_repeats: dict[str, int] = field(default_factory=dict)  # kind -> how many more devices have it
    bad_ids: set[Any] = field(default_factory=set)
    rejected: list[str] = field(default_factory=list)  # the hub's rejections of what the adapter pushed
    implausible: list[str] = field(default_factory=list)
    reported: int = 0  # ctx.report_bad_input calls
    fuzz_rejected: int = 0
    fuzz_reported: int = 0
    fuzz_rejected_example: str = ""
    values: int = 0
    devices: set[str] = field(default_factory=set)
    in_hub: int = 0


def _observe(hub: Any, seen: _Observation) -> None:
    """Wrap the hub's entry points (on this instance only) so that every device, value and rejection is seen."""
    upsert, apply, emit, reject = hub.upsert_device, hub.apply, hub.emit_event, hub.reject_input

    def upsert_device(info: Any, adapter: str) -> Any:
        if seen.phase != "fuzz":
            device_id = getattr(info, "id", None)
            problem = id_problem(device_id, getattr(info, "source", None), seen.name, builtin=seen.builtin)
            if problem is not None and device_id not in seen.bad_ids:
                seen.bad_ids.add(device_id)
                # One line per kind of mistake: a bridge's hundred devices share the same one.
                prefix = device_id.partition(":")[0] if isinstance(device_id, str) and ":" in device_id else None
                kind = f"source {prefix}" if prefix is not None and prefix != seen.name else str(device_id)
                if kind in seen.id_problems:
                    seen.id_repeats[kind] = seen.id_repeats.get(kind, 0) + 1
                else:
                    seen.id_problems[kind] = f"{seen.where}: {problem}"
            seen.devices.add(info.id)
        return upsert(info, adapter)

    def apply_updates(updates: Iterable[Any]) -> int:
        updates = list(updates)
        if seen.phase != "fuzz":
            seen.values += len(updates)
            for update in updates:
                problem = implausible(update.capability, update.attribute, update.value)
                if problem is not None:
                    seen.implausible.append(f"{seen.where}: {update.device_id}: {problem}")
        seen.in_hub += 1
        try:
            return int(apply(updates))
        finally:
            seen.in_hub -= 1

    def emit_event(event: Any) -> None:
        seen.in_hub += 1
        try:
            emit(event)
        finally:
            seen.in_hub -= 1

    def reject_input(source: str, message: str) -> None:
        if not seen.in_hub:
            # The adapter's own report_bad_input: what it should do with bad input.
            if seen.phase == "fuzz":
                seen.fuzz_reported += 1
            else:
                seen.reported += 1
        elif seen.phase == "fuzz":
            seen.fuzz_rejected += 1
            seen.fuzz_rejected_example = seen.fuzz_rejected_example or f"{seen.where}: {message}"
        else:
            seen.rejected.append(f"{seen.where}: {message}")
        reject(source, message)

    hub.upsert_device, hub.apply, hub.emit_event, hub.reject_input = upsert_device, apply_updates, emit_event, \
        reject_input


def _problems(items: Iterable[str]) -> list[str]:
    out = list(items)
    return out[:MAX_PROBLEMS]


class _Run:
    """One plugin's exercise, in one event loop (see :func:`check_plugin`)."""

    def __init__(self, name: str, cls: Any, section: dict[str, Any], captures: list[Path], options: Options) -> None:
        self.name = name
        self.cls = cls
        self.section = section
        self.captures = captures
        self.options = options
        self.package = str(cls.__module__).split(".")[0]
        self.checks: dict[str, Check] = {}
        # A built-in adapter's module is under adapters/ (as the default target list tells them apart).
        self.seen = _Observation(name, builtin=str(cls.__module__).startswith("adapters."))
        self.topics: dict[str, list[bytes]] = {}  # topic -> payloads seen in the captures (a few)
        self.harness: Any = None
        self.watch: Any = None

    def put(self, name: str, status: Status, reason: str, problems: Iterable[str] = ()) -> None:
        self.checks[name] = Check(name, status, reason, _problems(problems))

    async def exercise(self) -> None:
        from gateway.devkit.harness import Harness
        from gateway.loopwatch import LoopWatch
        from gateway.replay import capture_span

        threads_before = set(threading.enumerate())
        first = next((span for span in (capture_span(p) for p in self.captures) if span is not None), None)
        self.harness = harness = Harness(self.cls, self.section, name=self.name,
                                         start_time=first[0] if first else None)
        _observe(harness.hub, self.seen)
        self.watch = watch = LoopWatch(self.options.block_threshold_s, owners={self.package: self.name})
        async with watch:
            started = await self._start()
            if started:
                self.seen.phase = "replay"
                await self._replay()
                self.seen.phase = "commands"
                await self._commands()
                self.seen.phase = "fuzz"
                await self._fuzz()
                self.seen.phase = "stop"
            task_names = {task.get_name(): _coro_name(task) for task in asyncio.all_tasks()}
            await self._stop(started)
            await self._leaks(threads_before, task_names, started)
        self._judge_values(started)
        self._judge_blocking()

    async def _start(self) -> bool:
        harness, watch = self.harness, self.watch
        watch.label = "start()"
        began = time.monotonic()
        starting = asyncio.get_running_loop().create_task(harness.start(), name=f"conformance:{self.name}:start")
        try:
            await self._until_done(starting, began + self.options.start_limit_s)
        except TimeoutError:
            self.put("start", "FAIL", f"start() did not return within {self.options.start_limit_s:g} s")
            return False
        except Exception as err:
            self.put("start", "FAIL", f"{_error_origin(err, 'start()')} {_raised(_root(err), self.package)}")
            return False
        finally:
            watch.label = None
        took = time.monotonic() - began
        if took > self.options.start_limit_s:
            self.put("start", "FAIL", f"start() took {took:.1f} s (more than {self.options.start_limit_s:g} s): "
                                      "start slow work as a task (ctx.create_task) and return")
        else:
            subscribed = f", subscribed to {_some(harness.subscriptions)}" if harness.subscriptions else ""
            self.put("start", "PASS", f"started in {took:.2f} s{subscribed}")
        return True

    async def _until_done(self, task: asyncio.Task[Any], deadline: float) -> Any:
        """``task``'s result; meanwhile, whenever it waits on the simulated clock, time moves on to the next timer
        (as it would pass in the gateway). TimeoutError (and the task cancelled) past ``deadline`` (real time)."""
        clock = self.harness.clock
        while not task.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                task.cancel()
                await asyncio.wait({task}, timeout=STOP_LIMIT_S)
                raise TimeoutError
            await asyncio.wait({task}, timeout=min(0.02, remaining))
            due = clock.next_due()
            if not task.done() and due is not None:
                clock.advance_to(due)
        return task.result()

    async def _deliver(self, topic: str, payload: bytes, retain: bool, where: str) -> BaseException | None:
        """One message to the adapter; what escaped its callback (or a task it made), if anything."""
        self.seen.where = where
        self.watch.label = f"the callback for {where}"
        try:
            await self.harness.deliver(topic, payload, retain)
        except Exception as err:
            return err
        finally:
            self.watch.label = None
        return None

    async def _replay(self) -> None:
        from gateway.replay import read_capture

        if not self.captures:
            self.put("callbacks", "SKIP", f"no captures: put *.jsonl files in {self.package}/captures/ (or give "
                                          "--capture FILE) to have its message handling checked")
            return
        harness = self.harness
        problems: list[str] = []
        lines = 0
        played = 0
        skipped: dict[str, int] = {}
        reported: set[int] = set()  # task failures already named where they were raised
        for path in self.captures:
            if lines > MAX_CAPTURE_LINES:
                break
            errors: list[dict[str, Any]] = []
            offset: float | None = None
            for record in read_capture(path, errors):
                lines += 1
                if lines > MAX_CAPTURE_LINES:
                    break
                if offset is None:  # a later capture may start before the clock: played from now on
                    offset = max(0.0, harness.clock.time() - record.t)
                wait = record.t + offset - harness.clock.time()
                where = f"{path.name}:{record.line}"
                if wait > 0:
                    self.seen.where = f"{where} (timers before it)"
                    try:
                        await harness.advance(wait)
                    except Exception as err:
                        problems.append(f"{where}: while time passed, {_raised(err, self.package)}")
                if record.source != "mqtt":
                    skipped[record.source] = skipped.get(record.source, 0) + 1
                    continue
                if not isinstance(record.mqtt, tuple):
                    problems.append(f"{where}: the capture line cannot be played: {record.mqtt}")
                    continue
                topic, payload, retain = record.mqtt
                samples = self.topics.setdefault(topic, [])
                if len(samples) < 5 and payload not in samples:
                    samples.append(payload)
                error = await self._deliver(topic, payload, retain, f"{where} ({topic})")
                played += 1
                if error is not None:
                    reported.add(id(_root(error)))
                    problems.append(f"{where} ({topic}): {_error_origin(error)} {_raised(_root(error), self.package)}")
            problems += [f"{error['message']}" for error in errors]
        self.seen.where = "after the captures"
        for failure in harness.failures:
            if id(failure) not in reported:  # one the harness had not raised yet
                problems.append(f"a task of the adapter {_raised(failure, self.package)}")
        names = ", ".join(p.name for p in self.captures)
        note = "".join(f"; {count} {source} line{'s' if count != 1 else ''} not played (MQTT only)"
                       for source, count in sorted(skipped.items()))
        if lines > MAX_CAPTURE_LINES:
            note += f"; only the first {MAX_CAPTURE_LINES} lines played"
        if problems:
            self.put("callbacks", "FAIL", f"{_count(len(problems), 'problem')} while {played} messages of {names} "
                                          f"played{note}", problems)
        else:
            self.put("callbacks", "PASS", f"{played} messages of {names} played, no exception escaped{note}")

    async def _commands(self) -> None:
        from gateway.clock import iso_utc
        from gateway.model import capability as capability_spec
        from gateway.model.types import CommandResult

        harness = self.harness
        package = self.package
        adapter = harness.adapter
        problems: list[str] = []
        raised: dict[int, str] = {}
        calls: list[Any] = []

        async def handler(command: Any) -> Any:
            calls.append(command)
            self.watch.label = f"execute({command.capability}.{command.command} of {command.device_id})"
            try:
                result = await adapter.execute(command)
            except Exception as err:
                raised[id(command)] = _raised(err, package)
                raise
            finally:
                self.watch.label = None
            if not isinstance(result, CommandResult):
                raised[id(command)] = f"returned {_short(result, 40)}, not a CommandResult"
                return CommandResult("failed", "the adapter returned no CommandResult")
            return result

        harness.hub.set_command_handler(self.name, handler)
        tried = 0
        devices = [d for _, d in sorted(harness.hub.devices.items()) if d.adapter == self.name]
        for device in devices:
            for component, caps in sorted(device.support.items()):
                for cap, support in sorted(caps.items()):
                    spec = capability_spec(cap)
                    for command_name in sorted(support.commands):
                        label = f"{device.id} {component} {cap}.{command_name}"
                        cmd_spec = spec.commands.get(command_name) if spec is not None else None
                        if cmd_spec is None:
                            problems.append(f"{label}: the device says it takes this command, and the model has no "
                                            f"such command (see `hearth schema` / docs/capabilities.md)")
                            continue
                        if tried >= MAX_COMMANDS:
                            break
                        tried += 1
                        args = sample_args(cmd_spec, support.limits, iso_utc(harness.clock.time()))
                        shown = f"{label}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
                        self.seen.where = f"command {shown}"
                        before = len(calls)
                        try:
                            result = await asyncio.wait_for(
                                harness.command(device.id, cap, command_name, component, **args),
                                self.options.stop_limit_s)
                        except TimeoutError:
                            problems.append(f"{shown}: execute() did not return within "
                                            f"{self.options.stop_limit_s:g} s")
                            continue
                        except Exception as err:
                            problems.append(f"{shown}: execute() did not return a result ({_exception_text(err)})")
                            continue
                        command = calls[before] if len(calls) > before else None
                        if command is not None and id(command) in raised:
                            problems.append(f"{shown}: execute() {raised[id(command)]}")
                        elif result.status == "rejected" and "field" in result.details:
                            problems.append(f"{shown}: rejected by the model ({result.message}): the device's "
                                            "capabilities and limits do not describe what it takes")
                        elif result.status in ("failed", "rejected", "unavailable") and not result.message.strip():
                            problems.append(f"{shown}: returned {result.status!r} without a message saying why")
        harness.hub.set_command_handler(self.name, adapter.execute)
        if problems:
            self.put("commands", "FAIL", f"{_count(len(problems), 'problem')} with {_count(tried, 'command')} sent: "
                                         "each must come back as a CommandResult, a refusal with its reason", problems)
        elif tried:
            self.put("commands", "PASS",
                     f"{_count(tried, 'command')} to {_count(len(devices), 'device')}, each answered with a result")
        else:
            self.put("commands", "SKIP", "none of its devices takes a command" if devices else
                     "no devices to send commands to (a capture with its devices' messages would make some)")

    async def _fuzz(self) -> None:
        from gateway.sdk import topic_matches

        harness = self.harness
        filters = list(dict.fromkeys(harness.subscriptions))
        if not filters:
            self.put("fuzz", "SKIP", "no MQTT subscriptions to fuzz")
            return
        rng = random.Random(self.options.fuzz_seed)
        failures: dict[tuple[str, str, str], list[Any]] = {}  # (filter, exception, where) -> [count, example]
        cut_short: list[str] = []  # filters whose fuzzing hit the time bound
        not_fuzzed = 0  # filters left when all the fuzzing time was used
        sent = 0
        all_done_by = time.monotonic() + FUZZ_TOTAL_TIME_S
        for topic_filter in filters:
            if time.monotonic() > all_done_by:
                not_fuzzed = len(filters) - filters.index(topic_filter)
                break
            topics = [t for t in self.topics if topic_matches(topic_filter, t)][:3] or []
            synthetic = _synthetic_topic(topic_filter)
            if topic_matches(topic_filter, synthetic) and synthetic not in topics:
                topics.append(synthetic)
            if not topics:
                continue
            samples = [p for t in topics for p in self.topics.get(t, [])][:5]
            deadline = min(time.monotonic() + self.options.fuzz_time_s, all_done_by)
            payloads = fuzz_payloads(samples, rng)
            count = 0
            for kind, payload in payloads:
                if count >= self.options.fuzz_payloads:
                    break
                if time.monotonic() > deadline:
                    cut_short.append(topic_filter)
                    break
                topic = topics[count % len(topics)]
                count += 1
                error = await self._deliver(topic, payload, False, f"fuzz {topic} ({kind})")
                if error is None:
                    continue
                root = _root(error)
                key = (topic_filter, _exception_text(root).split(":")[0], _plugin_frame(root, self.package) or "")
                entry = failures.setdefault(key, [0, topic, kind, payload, root])
                entry[0] += 1
            sent += count
        self.seen.where = "after fuzzing"
        problems = []
        for (topic_filter, _, _), (times, topic, kind, payload, root) in failures.items():
            problems.append(f"{topic_filter}: {_raised(root, self.package)} on {times} payload"
                            f"{'s' if times != 1 else ''}, e.g. {kind} on {topic}: {_short(payload)} "
                            "(report bad input with ctx.report_bad_input, never raise)")
        rejected = f"; stopped after {self.options.fuzz_time_s:g} s on {_some(cut_short)}" if cut_short else ""
        if not_fuzzed:
            rejected += f"; {_count(not_fuzzed, 'subscription')} not fuzzed ({FUZZ_TOTAL_TIME_S:g} s in all were used)"
        rejected += f"; {self.seen.fuzz_reported} reported as bad input" if self.seen.fuzz_reported else ""
        if self.seen.fuzz_rejected:
            # Not a failure (the hub is there to catch them), but worth a look: such a value from a device would be
            # dropped with a warning, where the codec could have said what was wrong with the payload.
            rejected += (f"; the hub rejected {_count(self.seen.fuzz_rejected, 'value')} it pushed from them, e.g. "
                         f"{self.seen.fuzz_rejected_example[:160]}")
        if problems:
            plural = "s" if len(filters) != 1 else ""
            self.put("fuzz", "FAIL", f"exceptions escaped on fuzzed payloads ({sent} sent to {len(filters)} "
                                     f"subscription{plural}){rejected}", problems)
        else:
            self.put("fuzz", "PASS", f"{sent} fuzzed payloads to {_some(filters)} (seed {self.options.fuzz_seed}),"
                                     f" no exception{rejected}")

    async def _stop(self, started: bool) -> None:
        harness, watch = self.harness, self.watch
        if not started:
            self.put("stop", "SKIP", "it did not start")
            return
        watch.label = "stop()"
        self.seen.where = "stop()"
        began = time.monotonic()
        try:
            await asyncio.wait_for(harness.stop(), self.options.stop_limit_s + 1)
        except TimeoutError:
            self.put("stop", "FAIL", f"stop() did not return within {self.options.stop_limit_s:g} s")
            return
        finally:
            watch.label = None
        took = time.monotonic() - began
        if harness.stop_error is not None:
            error = harness.stop_error
            if isinstance(error, TimeoutError):
                self.put("stop", "FAIL", "stop() did not return within the harness's time limit")
            else:
                self.put("stop", "FAIL", f"stop() {_raised(error, self.package)}")
        elif took > self.options.stop_limit_s:
            self.put("stop", "FAIL", f"stop() took {took:.1f} s (more than {self.options.stop_limit_s:g} s)")
        else:
            self.put("stop", "PASS", f"stopped in {took:.2f} s")

    async def _leaks(self, threads_before: set[threading.Thread], task_names: dict[str, str], started: bool) -> None:
        harness = self.harness
        problems: list[str] = []
        for task in harness.leaked_tasks:
            coro = task_names.get(task)
            problems.append(f"task {task!r}" + (f" ({coro})" if coro and coro != task else "")
                            + " still running after stop(): keep the tasks you start and cancel them in stop(), "
                              "or make them with ctx.create_task")
        for topic_filter in harness.subscriptions:
            problems.append(f"MQTT subscription {topic_filter!r} not undone by stop(): call the unsubscribe "
                            "function subscribe() returned")
        problems += await asyncio.to_thread(_leaked_threads, threads_before, self.package)
        if problems:
            self.put("leaks", "FAIL", "it left things running after stop()", problems)
        elif started:
            self.put("leaks", "PASS", "no task, thread or subscription left after stop()")
        else:
            self.put("leaks", "PASS", "no task or thread left after its failed start")

    def _judge_values(self, started: bool) -> None:
        seen = self.seen
        if seen.id_problems:
            problems = [text + (f" (and {_count(seen.id_repeats[kind], 'more device')} like it)"
                                if kind in seen.id_repeats else "") for kind, text in seen.id_problems.items()]
            self.put("device ids", "FAIL", f"{len(seen.bad_ids)} of {len(seen.devices)} device ids break "
                                           f"'<source>:<native id>'", problems)
        elif seen.devices:
            sources = sorted({str(device_id).partition(":")[0] for device_id in seen.devices})
            self.put("device ids", "PASS", f"{_count(len(seen.devices), 'device')}, ids "
                                           f"{', '.join(repr(source + ':<native id>') for source in sources)}")
        else:
            self.put("device ids", "SKIP", "it made no devices" + ("" if self.captures else
                                                                    " (give it captures of its devices' messages)"))
        problems = seen.rejected + seen.implausible
        if problems:
            self.put("values", "FAIL", f"{_count(len(seen.rejected), 'value')} rejected by the hub, "
                                       f"{len(seen.implausible)} implausible for their unit", problems)
        elif seen.values:
            reported = f"; {_count(seen.reported, 'bad input')} reported" if seen.reported else ""
            self.put("values", "PASS", f"{seen.values} values accepted by the hub, in plausible ranges{reported}")
        elif started:
            self.put("values", "SKIP", "it pushed no values" + ("" if self.captures else " (no captures)"))

    def _judge_blocking(self) -> None:
        # Its own: those with its code on the stack, and those seen only once over (no stack: a call that kept the
        # GIL) while one of its calls was running (the label says which).
        mine = [b for b in self.watch.blocks if b.owner == self.name or (not b.live and b.label)]
        others = len(self.watch.blocks) - len(mine)
        ignored = (f" ({others} stall{'s' if others != 1 else ''} outside its code, not counted)"
                   if others else "")
        threshold = self.options.block_threshold_s
        if not mine:
            self.put("blocking", "PASS", f"never held the event loop over {threshold:g} s{ignored}")
            return
        # One problem per place in its code: a callback that sleeps blocks on every message it gets.
        by_place: dict[str, list[Any]] = {}
        for block in mine:
            place = _frame_text(block.culprit) if block.culprit else "a call that kept the GIL (no stack)"
            by_place.setdefault(place, []).append(block)
        problems = []
        for place, blocks in by_place.items():
            longest = max(block.blocked_for_s for block in blocks)
            first = blocks[0]
            inner = first.innermost
            call = (f" (in {inner.function} of {inner.module})" if inner is not None and inner is not first.culprit
                    and inner.module else "")
            times = f"{len(blocks)} times, up to" if len(blocks) > 1 else "for"
            during = f", first during {first.label}" if first.label else ""
            problems.append(f"held the loop {times} {longest:.2f} s at {place}{call}{during}")
        plural = "s" if len(mine) != 1 else ""
        self.put("blocking", "FAIL", f"its code held the event loop {len(mine)} time{plural} (over {threshold:g} s): "
                                     f"move blocking calls to asyncio.to_thread, or use an async library{ignored}",
                 problems)


def _some(items: list[str], shown: int = 3) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _short_path(filename: str) -> str:
    parts = Path(filename).parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else filename


def _frame_text(frame: Any) -> str:
    text = f"{_short_path(frame.filename)}:{frame.lineno} in {frame.function}"
    return f"{text}: {frame.line}" if frame.line else text


def _from_task(err: BaseException) -> bool:
    """Whether ``err`` is the harness saying a task of the adapter failed (its cause is the task's exception)."""
    from gateway.devkit.harness import HarnessError

    return isinstance(err, HarnessError) and err.__cause__ is not None


def _root(err: BaseException) -> BaseException:
    """The adapter's own exception behind a harness error (a task failure is raised at the next settle)."""
    return err.__cause__ if _from_task(err) and err.__cause__ is not None else err


def _error_origin(err: BaseException, call: str = "the callback") -> str:
    return "a task of the adapter" if _from_task(err) else call


def _coro_name(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    return str(getattr(coro, "__qualname__", "") or type(coro).__name__)


def _leaked_threads(before: set[threading.Thread], package: str) -> list[str]:
    """Threads started since ``before`` still alive after :data:`THREAD_GRACE_S`, except the watchdog's and idle
    workers of the loop's executor (asyncio.to_thread's pool; a busy one is named)."""
    from gateway.loopwatch import stack_of

    deadline = time.monotonic() + THREAD_GRACE_S
    problems: list[str] = []
    for thread in threading.enumerate():
        if thread in before or thread.name == "hearth-loopwatch" or thread is threading.current_thread():
            continue
        if _idle_worker(thread):
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if not thread.is_alive():
            continue
        frame = sys._current_frames().get(thread.ident or -1)
        stack = stack_of(frame)
        del frame
        mine = next((f for f in reversed(stack) if f.module == package or f.module.startswith(package + ".")), None)
        where = mine or (stack[-1] if stack else None)
        target = getattr(thread, "_target", None)  # Thread keeps it while it runs
        if getattr(target, "__module__", None) == "concurrent.futures.thread":
            started = " (a worker of the loop's executor: what asyncio.to_thread or run_in_executor gave it)"
        elif target is not None:
            started = f" (running {getattr(target, '__qualname__', target)})"
        else:
            started = ""
        place = f", at {_frame_text(where)}" if where else ""
        problems.append(f"thread {thread.name!r}{started} still alive after stop(){place}"
                        + ": stop() must end the threads it started (and join them)")
    return problems


def _idle_worker(thread: threading.Thread) -> bool:
    """Whether ``thread`` is a worker of a ThreadPoolExecutor waiting for work (asyncio.to_thread's pool)."""
    frame = sys._current_frames().get(thread.ident or -1)
    try:
        while frame is not None:
            if frame.f_code.co_name == "_worker" and frame.f_globals.get("__name__") == "concurrent.futures.thread":
                # Waiting in work_queue.get(): its only inner frames are the queue's.
                inner = sys._current_frames().get(thread.ident or -1)
                while inner is not None and inner is not frame:
                    if inner.f_globals.get("__name__") not in ("queue", "threading"):
                        return False
                    inner = inner.f_back
                return True
            frame = frame.f_back
        return False
    finally:
        del frame


# ---------------------------------------------------------------------------------------------------- a plugin


def check_plugin(target: Target, *, captures: list[Path] | None = None, config: dict[str, dict[str, Any]] | None = None,
                 config_source: str | None = None, options: Options | None = None) -> PluginReport:
    """Every check of one plugin (see the module's docstring). Never raises for the plugin's faults."""
    from pydantic import ValidationError

    from gateway.supervisor import sdk_incompatibility, validate_adapter_config

    options = options or Options()
    report = PluginReport(target.name or target.spec, target.spec)

    def rest(reason: str, after: str) -> None:
        names = CHECK_NAMES[CHECK_NAMES.index(after) + 1:]
        report.checks += [Check(name, "SKIP", reason) for name in names]

    try:
        cls = target.load()
    except Exception as err:
        frames = traceback.extract_tb(err.__traceback__)
        where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
        report.checks.append(Check("loads", "FAIL", f"cannot import {target.spec}: {_exception_text(err)}{where}"))
        rest("it did not load", "loads")
        return report
    name = target.name or default_name(cls, target.spec)
    report.name = name
    problems: list[str] = []
    if not inspect.isclass(cls):
        problems.append(f"{target.spec} is a {type(cls).__name__}, not a class")
    else:
        for method in ("start", "stop", "execute"):
            function = getattr(cls, method, None)
            if function is None:
                problems.append(f"it has no {method}() method")
            elif not inspect.iscoroutinefunction(function):
                problems.append(f"{method}() is not an async method (write async def {method}(...))")
    incompatible = sdk_incompatibility(cls)
    if incompatible is not None:
        problems.append(incompatible)
    if problems:
        report.checks.append(Check("loads", "FAIL", f"{target.spec} is not an adapter this gateway can run", problems))
        rest("it did not load", "loads")
        return report
    from gateway.sdk import SDK_VERSION

    wanted = getattr(cls, "requires_sdk", None)
    sdk = (f"SDK {SDK_VERSION}, admitted by requires_sdk {wanted!r}" if wanted else
           f"SDK {SDK_VERSION}; it does not say which SDK it needs (add requires_sdk = \">={SDK_VERSION},<2\")")
    report.checks.append(Check("loads", "PASS", f"{target.spec}; {sdk}"))

    section = dict((config or {}).get(name, {}))
    which = f"[adapters.{name}] of {config_source}" if config_source and name in (config or {}) else \
        "an empty [adapters.{name}] section".replace("{name}", name)
    try:
        validated = validate_adapter_config(name, cls, section)
    except ValidationError as err:
        errors = [f"adapters.{name}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()]
        hint = "" if config_source else " (give the plugin's settings with --config FILE)"
        report.checks.append(Check("config", "FAIL", f"its config_model refuses {which}{hint}", errors))
        rest("its config was refused", "config")
        return report
    model = getattr(cls, "config_model", None)
    report.checks.append(Check("config", "PASS", f"{model.__name__ if model else 'no config_model'}: accepts {which}"
                               if model else f"no config_model; {which} is passed as it is"))
    del validated

    run = _Run(name, cls, section, [*plugin_captures(cls), *(captures or [])], options)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run.exercise())
    except Exception as err:  # a fault of the kit itself (or something no check caught): said, not hidden
        log.debug("conformance run failed", exc_info=True)
        run.put("start" if "start" not in run.checks else "leaks", "FAIL",
                f"the check could not finish: {_exception_text(err)}")
    finally:
        _close(loop)
    for check_name in CHECK_NAMES[2:]:
        report.checks.append(run.checks.get(check_name) or Check(check_name, "SKIP", "it did not start"))
    return report


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """Close a loop without waiting for its executor: a plugin's thread stuck in asyncio.to_thread (reported by
    the leaks check) must not hang the check, as asyncio.run's shutdown would."""
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=STOP_LIMIT_S))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()  # shuts the default executor down without waiting


# ---------------------------------------------------------------------------------------------------- output


def format_reports(reports: list[PluginReport], *, shown: int = SHOWN_PROBLEMS) -> str:
    """The pass/fail table, one block per plugin, problems indented under their check."""
    lines: list[str] = []
    width = max(len(name) for name in CHECK_NAMES)
    for report in reports:
        if lines:
            lines.append("")
        lines.append(f"{report.name}  ({report.target})")
        for check in report.checks:
            lines.append(f"  {check.status}  {check.name:<{width}}  {check.reason}")
            for problem in check.problems[:shown]:
                lines.append(f"  {'':4}  {'':<{width}}    - {problem}")
            if len(check.problems) > shown:
                lines.append(f"  {'':4}  {'':<{width}}    … {len(check.problems) - shown} more (--json lists all)")
        failed = report.failed
        verdict = "PASS" if not failed else f"FAIL ({len(failed)} of {len(report.checks)} checks failed: " \
                                            f"{', '.join(c.name for c in failed)})"
        lines.append(f"{report.name}: {verdict}")
    return "\n".join(lines)


def _quiet_logs(stack: ExitStack) -> None:
    """The gateway's own logs (the hub's "bad input", an adapter's errors) stay out of the table: every one of
    them that matters is a problem in it. Restored afterwards."""
    logger = logging.getLogger("hearth")
    saved = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    stack.callback(logger.setLevel, saved)


def run(args: argparse.Namespace) -> int:
    """``hearth plugin check [NAME] [--capture FILE]... [--config FILE] [--json]``: 0 when every check passed (or
    was skipped), 1 when one failed, 2 for a usage error."""
    out: TextIO = getattr(args, "out", None) or sys.stdout
    err: TextIO = getattr(args, "err", None) or sys.stderr
    try:
        targets = resolve_targets(getattr(args, "name", None))
        captures = [Path(c) for c in (getattr(args, "capture", None) or [])]
        for capture in captures:
            if not capture.is_file():
                raise UsageError(f"no such capture file: {capture}")
        config_path = getattr(args, "config", None)
        sections: dict[str, dict[str, Any]] = {}
        if config_path:
            from gateway.config import load_config
            from gateway.errors import ConfigError

            try:
                sections = load_config(config_path).adapters
            except ConfigError as error:
                raise UsageError(str(error)) from error
    except UsageError as error:
        print(f"hearth plugin check: {error}", file=err)
        return 2
    options = Options(**{key: value for key, value in vars(args).items() if key in Options.__dataclass_fields__})
    reports: list[PluginReport] = []
    with ExitStack() as stack:
        _quiet_logs(stack)
        for target in targets:
            reports.append(check_plugin(target, captures=captures, config=sections, config_source=config_path,
                                        options=options))
    if getattr(args, "json", False):
        document = {"passed": all(r.passed for r in reports), "plugins": [r.as_dict() for r in reports]}
        out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    else:
        print(format_reports(reports), file=out)
    return 0 if all(report.passed for report in reports) else 1
