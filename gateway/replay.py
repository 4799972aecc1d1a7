"""``hearth replay``: run a capture through the same adapters, codecs and hub as ``hearth run``, on a
simulated clock, with no network, and report what the gateway made of it (DESIGN.md contracts 4, 5)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gc
import itertools
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import orjson

from gateway.bus import InputRejected, SceneRan
from gateway.clock import SimulatedClock, iso_utc
from gateway.config import Config
from gateway.hub import Hub
from gateway.model.types import Command, Device, Update
from gateway.mqtt import topic_matches
from gateway.sdk import NOTES_LOGGER, CaptureReplayer, MessageCallback, Unsubscribe
from gateway.supervisor import Supervisor, discover_adapters

log = logging.getLogger("hearth.replay")
# Topics whose matching subscriptions replay remembers (see ReplayMqtt); past this, it starts again.
MAX_MATCH_CACHE = 100_000
# Allocations between young-generation collections while a capture plays (Python's default: 700).
REPLAY_GC_THRESHOLD = 1_000_000


@functools.lru_cache(maxsize=1024)
def _matcher(topic_filter: str) -> Callable[[str], bool]:
    """``topic_matches(topic_filter, topic)`` as a function of the topic, the filter read once: a device
    database's capture has thousands of topics, each matched against every adapter's filters."""
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter.__eq__
    # `+` is one level, possibly empty; `#` (last) the parent level and all below; a filter that starts with a
    # wildcard does not match a $-topic (broker internals).
    names = topic_filter.split("/")
    below = names[-1] == "#"
    levels = ["[^/]*" if level == "+" else re.escape(level) for level in (names[:-1] if below else names)]
    pattern = "/".join(levels)
    if below:
        pattern += "(?:/.*)?" if levels else ".*"
    if topic_filter[:1] in ("+", "#"):
        pattern = "(?!\\$)" + pattern
    return re.compile(pattern, re.DOTALL).fullmatch  # type: ignore[return-value]


class _NoScenes:
    """The scene engine of a replay without profiles: nothing runs, nothing to wait for."""

    has_runs = False
    busy = False
    scenes: dict[str, Any] = {}

    async def __aenter__(self) -> _NoScenes:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class ReplayMqtt:
    """An in-memory stand-in for the MQTT session: captured messages in, published messages recorded."""

    def __init__(self, clock: SimulatedClock) -> None:
        self._clock = clock
        self._subscriptions: list[tuple[str, MessageCallback]] = []
        self.published: list[dict[str, Any]] = []
        # Retained messages by topic, handed to every later subscription that matches, as a broker does: a
        # capture has them in the broker's order, often before the discovery message that names the topic.
        self._retained: dict[str, bytes] = {}
        # Which subscriptions a topic matches, per topic, until the subscriptions change: a capture repeats a
        # few thousand topics tens of thousands of times, and matching every filter each time was most of
        # replay's time on a large capture.
        self._matching: dict[str, tuple[tuple[str, MessageCallback], ...]] = {}
        # Per first level of a topic, the subscriptions that can match a topic starting so (theirs, and those
        # whose filter starts with a wildcard): a new topic is matched against those only (a device
        # database's 4,500 topics against the 43 filters of the built-in adapters, most of them another's).
        self._by_first: dict[str, list[tuple[str, MessageCallback]]] = {}
        # As MqttSession's: which adapter registered a callback, and who hears of its failures.
        self.callback_owners: dict[Any, str] = {}
        self.on_callback_error: Callable[[str, str, BaseException], None] | None = None

    @property
    def connected(self) -> bool:
        return True

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0) -> Unsubscribe:
        entry = (topic_filter, callback)
        self._subscriptions.append(entry)
        self._matching.clear()
        self._by_first.clear()
        retained = [(topic, payload) for topic, payload in self._retained.items() if topic_matches(topic_filter, topic)]
        if retained:
            # After the subscriber's own step, as from a broker: never re-entering the code that subscribed.
            asyncio.get_running_loop().call_soon(self._send_retained, entry, retained)

        def unsubscribe() -> None:
            if entry in self._subscriptions:
                self._subscriptions.remove(entry)
                self._matching.clear()
                self._by_first.clear()

        return unsubscribe

    def _match(self, topic: str) -> tuple[tuple[str, MessageCallback], ...]:
        """The subscriptions ``topic`` matches, in the order they were made."""
        first = topic.split("/", 1)[0]
        candidates = self._by_first.get(first)
        if candidates is None:
            if len(self._by_first) >= MAX_MATCH_CACHE:
                self._by_first.clear()
            candidates = self._by_first[first] = [
                entry for entry in self._subscriptions if entry[0].split("/", 1)[0] in (first, "+", "#")]
        return tuple(entry for entry in candidates if _matcher(entry[0])(topic))

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        self.published.append({"t": iso_utc(self._clock.time()), "topic": topic, "payload": text, "retain": retain})

    def _send_retained(self, entry: tuple[str, MessageCallback], retained: list[tuple[str, bytes]]) -> None:
        for topic, payload in retained:
            if entry in self._subscriptions:
                entry[1](topic, payload, True)

    def deliver(self, topic: str, payload: bytes, retain: bool) -> int:
        if retain:
            if payload:
                self._retained[topic] = payload
            else:
                self._retained.pop(topic, None)  # an empty retained message clears the topic
        matching = self._matching.get(topic)
        if matching is None:
            matching = self._match(topic)
            if len(self._matching) >= MAX_MATCH_CACHE:
                self._matching.clear()
            self._matching[topic] = matching
        for _, callback in matching:
            try:
                callback(topic, payload, retain)
            except Exception as err:  # as the live session does: counted against its adapter, never fatal
                owner = self.callback_owners.get(callback)
                if owner is not None and self.on_callback_error is not None:
                    self.on_callback_error(owner, topic, err)
                else:
                    raise
        return len(matching)


class _NoteCollector(logging.Handler):
    """``async with``: the codecs' notes (gateway.sdk.NOTES_LOGGER, debug level) become replay's notes."""

    def __init__(self, notes: list[dict[str, Any]], clock: SimulatedClock, capture: str,
                 playing: list[int | None]) -> None:
        super().__init__(logging.DEBUG)
        self._notes, self._clock, self._capture, self._playing = notes, clock, capture, playing
        self._logger = logging.getLogger(NOTES_LOGGER)
        self._saved: tuple[int, bool] = (logging.NOTSET, True)

    def emit(self, record: logging.LogRecord) -> None:
        self.note(record.name.rsplit(".", 1)[-1], record.getMessage())

    def note(self, source: str, text: str) -> None:
        """One note of adapter ``source`` (the supervisor's ``on_note``: no log record made for it)."""
        line = self._playing[0]
        where = f"{self._capture}:{line}: " if line is not None else ""
        self._notes.append({"t": iso_utc(self._clock.time()), "source": source, "message": where + text})

    async def __aenter__(self) -> _NoteCollector:
        self._saved = (self._logger.level, self._logger.propagate)
        self._logger.setLevel(logging.DEBUG)
        self._logger.propagate = False  # replay lists them; they are not the terminal's business
        self._logger.addHandler(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._saved[0])
        self._logger.propagate = self._saved[1]


@dataclass(slots=True)
class CaptureRecord:
    """One capture line. An MQTT line is kept as what the broker would deliver (``mqtt``: topic, payload,
    retain, or the reason it cannot be played): a capture of a whole device database is 70,000 lines, and
    their parsed JSON held at once was most of replay's memory."""

    line: int
    t: float
    source: str
    data: dict[str, Any]
    mqtt: tuple[str, bytes, bool] | str | None = None


_NO_DATA: dict[str, Any] = {}  # an MQTT record's data: what it plays is in ``mqtt``


def _mqtt_record(data: dict[str, Any]) -> tuple[str, bytes, bool] | str:
    topic = data.get("topic")
    if not isinstance(topic, str) or not topic:
        return "mqtt line without a topic"
    try:
        payload = _mqtt_payload(data)
    except (ValueError, TypeError) as err:
        return f"bad payload: {err}"
    # A copy of exactly its size: orjson's buffer, shrunk in place, would keep a few KiB of heap per line.
    return topic, bytes(memoryview(payload)), bool(data.get("retain", False))


@dataclass(repr=False)
class ReplayResult:
    """What a replay found. Its repr is a summary: asyncio.run (Python 3.11) formats the finished task, result
    and all, when it puts the Ctrl-C handler back, and a device database's full repr took 40 ms of it."""

    devices: list[dict[str, Any]]
    actions: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    # What adapters understood and deliberately did not use, and why (an unsupported platform, a device
    # read natively): not errors, but what an appliance maker looks for when a device does not show up.
    notes: list[dict[str, Any]] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    hub_devices: list[Any] = field(default_factory=list)
    # Every scene run, as the engine traced it (SceneRan), in the order they finished: the engine's own
    # dicts, not copies (a busy capture has thousands; they are only read, and only when shown).
    traces: list[dict[str, Any]] = field(default_factory=list)
    # What the installer should know about the dry run itself (a house without areas, a parameter that
    # names an area the house does not have): for stderr, not part of the report.
    warnings: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # device id -> name, for the traces
    scene_models: dict[str, Any] = field(default_factory=dict)  # scene id -> Scene, for the traces
    # What ``inspect`` returned (see replay), e.g. an explanation of one scene.
    inspected: Any = None
    # Adapters that could not start (or failed while playing): the replay says little about their devices.
    failed_adapters: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        counts = ", ".join(f"{len(getattr(self, name))} {name}" for name in (
            "devices", "actions", "alerts", "errors", "notifications", "notes", "traces", "warnings"))
        return f"<ReplayResult: {counts}>"

    def as_dict(self) -> dict[str, Any]:
        return {"devices": self.devices, "actions": self.actions, "alerts": self.alerts, "errors": self.errors,
                "notifications": self.notifications, "notes": self.notes,
                "traces": [_named_trace(trace, self.names) for trace in self.traces]}


def _named_trace(trace: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """A trace for ``--json``: as the engine made it, plus ``names``, the name of every device it mentions."""
    mentioned: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, str):
            if node in names:
                mentioned[node] = names[node]
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(key)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(trace)
    return {**trace, "names": mentioned}


@dataclass
class ReplayState:
    """What ``replay(inspect=...)`` is shown where the replay stops, before the engine stops."""

    engine: Any  # SceneEngine
    hub: Hub
    traces: list[dict[str, Any]]
    start: float  # the capture's first time
    end: float  # its last
    now: float  # where the replay stopped


# The epoch milliseconds of "YYYY-MM-DDTHH:MM" (UTC), for parse_time's fast path; bounded.
_MINUTES: dict[str, int] = {}
_MINUTES_MAX = 4096


def parse_time(value: Any) -> float:
    """``t`` of a capture line: epoch seconds (number) or ISO-8601 (naive means UTC)."""
    if type(value) is str and len(value) == 24 and value[23] == "Z" and value[19] == "." and value[16] == ":" \
            and value[17:19].isdigit() and value[17] < "6" and value[20:23].isdigit():
        # "2024-01-01T00:00:00.100Z", as `hearth capture` writes every line: the minute parsed once, its seconds
        # added in whole milliseconds (the same float as the general path's; reading a large capture's times was
        # mostly datetime.fromisoformat).
        minute = value[:16]
        base = _MINUTES.get(minute)
        if base is None:
            base = _minute_ms(minute)
        return (base + int(value[17:19]) * 1000 + int(value[20:23])) / 1000
    if isinstance(value, bool):
        raise ValueError("t must be a number or an ISO-8601 string")
    if isinstance(value, (int, float)):
        # Epoch milliseconds are a common slip: anything past year 5000 in seconds is taken as ms.
        return float(value) / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        return _parse_iso(value)
    raise ValueError("t must be a number or an ISO-8601 string")


def _minute_ms(minute: str) -> int:
    """The epoch milliseconds of a minute "YYYY-MM-DDTHH:MM" (UTC), remembered in _MINUTES."""
    base = round(_parse_iso(minute + ":00Z") * 1000)
    if len(_MINUTES) >= _MINUTES_MAX:
        _MINUTES.clear()
    _MINUTES[minute] = base
    return base


def _parse_iso(value: str) -> float:
    """An ISO-8601 time (naive means UTC) as epoch seconds; ValueError if it is none."""
    try:
        parsed = datetime.fromisoformat(value)  # takes "…Z" itself (Python 3.11)
    except ValueError:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@contextlib.asynccontextmanager
async def _rare_cycle_collection() -> AsyncIterator[None]:
    """While a capture plays, collect cycles less often: a replay makes hundreds of thousands of short-lived
    acyclic objects (updates, events), and the default thresholds rescanned the long-lived records and
    devices for them (about a fifth of a large replay's time). Cycles are still collected, later."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], REPLAY_GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        if gc.get_freeze_count() == 0:
            # What the replay made and still holds (devices, definitions, the hub) goes to the oldest
            # generation as it is, as if it had survived there: with the thresholds back, the next allocation
            # scanned all of it young, then again a generation up (a sixth of a device database's replay).
            # Cycles among it are the next full collection's, as any long-lived object's. (Not where
            # something else froze objects for good: unfreezing would give those back too.)
            gc.freeze()
            gc.unfreeze()
        gc.set_threshold(*before)


_LEADING_TIME = re.compile(rb'^\{\s*"t"\s*:\s*(?:"([^"\\]*)"|(-?[0-9][0-9.eE+-]*))\s*,')


def capture_span(path: Path) -> tuple[float, float] | None:
    """The first and last times of a capture's lines (None: no line has one). Lines that cannot be read
    are skipped here: reading the capture (:func:`read_capture`) reports them."""
    first: float | None = None
    last: float | None = None
    with path.open("rb") as file:
        for raw in file:
            # A capture line starts with its time ({"t":"…", as `hearth capture` writes it): read just that.
            match = _LEADING_TIME.match(raw)
            try:
                if match is not None:
                    t = parse_time(match[1].decode() if match[1] is not None else float(match[2]))
                else:
                    raw = raw.strip()
                    if not raw or raw.startswith(b"#"):
                        continue
                    data = orjson.loads(raw)
                    if not isinstance(data, dict):
                        continue
                    t = parse_time(data.get("t"))
            except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
                continue
            first = t if first is None or t < first else first
            last = t if last is None or t > last else last
    return None if first is None or last is None else (first, last)


# An MQTT line as `hearth capture` writes it, with a JSON object or array as payload: its payload's text is
# taken as it is, not parsed and written again (most of reading a large capture). The last `,"retain":`
# ends the payload (the match is greedy), so a payload that says "retain" itself is still whole.
_CANONICAL_MQTT = re.compile(
    rb'^\{"t":"(?:(\d{4}-\d\d-\d\dT\d\d:\d\d):([0-5]\d)\.(\d{3})Z|([^"\\]*))","source":"mqtt",'
    rb'"topic":"([^"\\]+)","payload":([\[{].*),"retain":(true|false)\}\s*$')


def read_capture(path: Path, errors: list[dict[str, Any]]) -> Iterator[CaptureRecord]:
    """Capture lines in file order; a bad line becomes an error entry, never an exception."""
    match = _CANONICAL_MQTT.match
    minutes = _MINUTES
    with path.open("rb", buffering=1 << 16) as file:
        for number, raw in enumerate(file, start=1):
            # Matched before it is stripped (the pattern takes the line's end): a bridge/devices line is 11 MB,
            # and its copies, held while it plays, were most of a device database's peak memory.
            canonical = match(raw)
            if canonical is not None:
                minute, seconds, millis, other, topic, payload, retain = canonical.groups()
                try:
                    if minute is not None:  # hearth capture's time: its minute, seconds, milliseconds
                        base = minutes.get(minute := minute.decode())
                        t = ((_minute_ms(minute) if base is None else base) + int(seconds) * 1000 + int(millis)) / 1000
                    else:
                        t = parse_time(other.decode())
                    record = CaptureRecord(number, t, "mqtt", _NO_DATA, (topic.decode(), payload, retain == b"true"))
                except (ValueError, UnicodeDecodeError, OverflowError):
                    pass  # the general path below says what is wrong
                else:
                    del canonical, raw, payload  # only the record's payload is kept while the line plays
                    yield record
                    continue
            raw = raw.strip()
            if not raw or raw.startswith(b"#"):
                continue
            try:
                data = orjson.loads(raw)
                if not isinstance(data, dict):
                    raise ValueError("a capture line must be a JSON object")
                source = data.get("source", "mqtt")
                if not isinstance(source, str):
                    raise ValueError("source must be a string")
                t = parse_time(data.get("t"))
            except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError) as err:
                errors.append({"t": None, "source": "capture", "message": f"{path.name}:{number}: {err}"})
                continue
            if source == "mqtt":
                record = CaptureRecord(number, t, source, _NO_DATA, _mqtt_record(data))
                # Not kept while the line plays: a line's parsed JSON and the adapter's parse of its payload
                # would be in memory at once (twice a bridge/devices' worth).
                del data, raw
                yield record
            else:
                yield CaptureRecord(number, t, source, data)


def _mqtt_payload(data: dict[str, Any]) -> bytes:
    if "payload_base64" in data:
        return base64.b64decode(data["payload_base64"])
    payload = data.get("payload", "")
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return orjson.dumps(payload)


def _device_json(device: Device) -> dict[str, Any]:
    """A device as replay reports it: Device.as_dict's identity, area, availability and components."""
    return {"id": device.id, "name": device.name, "source": device.source, "manufacturer": device.manufacturer,
            "model": device.model, "area": device.area, "available": device.available,
            "components": device.component_values()}


def _profiles_for(config: Config, names: list[str] | None) -> list[Any]:
    """The profiles to dry-run: those named (parameters from a matching ``[[profiles]]`` entry of the
    config, if any), else every profile the config enables."""
    if names == [] or (names is None and not any(use.enabled for use in config.profiles)):
        return []  # nothing to load (the profile language is not even imported)
    from gateway.config import ProfileUse
    from gateway.scenes.setup import load_profiles

    if names is None:
        return load_profiles(config)
    uses = []
    for name in names:
        match = next((u for u in config.profiles if u.use == name or Path(u.use).stem == Path(name).stem), None)
        # The config's entry for it whole (parameters, per-scene settings), named as asked.
        uses.append(match.model_copy(update={"use": name, "enabled": True}) if match else ProfileUse(use=name))
    return load_profiles(config.model_copy(update={"profiles": uses}))


def profiles_for(config: Config | None, names: list[str] | None) -> list[Any]:
    """The profiles ``replay(path, config, names)`` dry-runs (to know their scenes before it runs)."""
    return _profiles_for(config or Config(), names)


def no_house_warning(config: Config | None, profiles: list[Any]) -> str | None:
    """Said when profiles are dry-run in a house the config does not describe."""
    if not profiles or (config is not None and (config.areas or config.tags)):
        return None
    where = "no --config: the house has no areas or tags" if config is None else \
        f"{config.source} has no [areas] or [tags]"
    return (f"{where}, so a selector by area matches only devices that report an area of their own, and one by "
            "tag matches nothing (give --config with the house's [areas] and [tags])")


async def replay(path: Path, config: Config | None = None, profiles: list[str] | None = None,
                 *, keep_devices: bool = False, loaded: list[Any] | None = None,
                 until: Callable[[float, float], float] | None = None,
                 inspect: Callable[[ReplayState], Any] | None = None) -> ReplayResult:
    """Run ``path`` through the adapters, the hub and (with profiles) the scene engine, in simulated time.

    ``loaded``: the profiles already loaded (by :func:`profiles_for`), instead of loading ``profiles``.
    ``until(first, last)``, of the capture's first and last times, says when to stop (the capture's
    later lines are not played; past its end, the engine's timers run on until then). ``inspect`` is
    called there, before the engine stops, with the engine and the hub; its answer is ``inspected``."""
    given = config
    config = config or Config()
    if loaded is None:
        loaded = _profiles_for(config, profiles)
    no_house = no_house_warning(given, loaded)
    warnings = [no_house] if no_house else []
    errors: list[dict[str, Any]] = []
    # A large capture is never held whole (a device database's 70,000 lines held at once were 50 MB): it is
    # read line by line as it plays. Only where the replay stops at a time of its own (``until``) or is
    # inspected there is it read once before, for its first and last times; otherwise time starts at its
    # first line's (a second pass over a device database's capture was a tenth of its replay).
    records = read_capture(path, errors)
    first: CaptureRecord | None = None
    if until is not None or inspect is not None:
        span = capture_span(path)
        start, last = span if span is not None else (0.0, 0.0)
    else:
        first = next(records, None)
        start = last = first.t if first is not None else 0.0
    stop_at = until(start, last) if until is not None else None
    clock = SimulatedClock(start)
    hub = Hub(clock, areas=config.areas, tags=config.tags)
    # The capture line being played, so that what an adapter rejects says where it is (None while time
    # passes between lines: a timer's complaint belongs to no line).
    playing: list[int | None] = [None]

    def rejected(event: InputRejected) -> None:
        where = f"{path.name}:{playing[0]}: " if playing[0] is not None else ""
        errors.append({"t": iso_utc(event.t), "source": event.source, "message": where + event.message})

    hub.bus.subscribe(InputRejected, rejected)
    notes: list[dict[str, Any]] = []
    noted = _NoteCollector(notes, clock, path.name, playing)
    mqtt = ReplayMqtt(clock)
    classes = discover_adapters(config.adapter_enabled)
    unhandled: set[str] = set()
    actions: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    sent: list[tuple[str, Any]] = []
    engine: Any
    if loaded or inspect is not None:
        from gateway.scenes.engine import SceneEngine
        from gateway.scenes.notify import RecordingNotifier
        from gateway.scenes.setup import engine_settings

        notifier = RecordingNotifier()
        sent = notifier.sent
        engine = SceneEngine(hub, loaded, notifier=notifier, settings=engine_settings(config),
                             on_action=actions.append,
                             on_alert=lambda a: alerts.append({k: a[k] for k in ("t", "scene", "severity", "message")}))
    else:
        # No scene to run and nobody to show the engine's state to: what the gateway makes of the devices'
        # traffic is all a replay says then (`hearth replay capture.jsonl`), and no engine is started.
        engine = _NoScenes()
    traces: list[dict[str, Any]] = []
    # The trace itself, not a copy: it is finished when published, and replay only reads it (cheap on
    # a busy capture; rendering happens only for what is shown).
    hub.bus.subscribe(SceneRan, lambda event: traces.append(event.trace))
    inspected: Any = None

    async def settle() -> None:
        # Let scene runs and adapters do what they can without time passing.
        # A run blocked on a command that completes at once (replay's obedient devices) needs a few
        # turns of the loop; a run waiting for simulated time cannot progress, so stop there. Once the
        # loop has nothing ready to run (no callback, no task woken), more turns cannot change anything:
        # replay has no I/O, only simulated time (on a 70,000-line capture, most turns were idle).
        ready = getattr(asyncio.get_running_loop(), "_ready", None)
        for _ in range(20 if engine.has_runs else 3):
            if ready is not None and not ready:
                break
            await asyncio.sleep(0)
        for _ in range(500):
            if not engine.busy:
                break
            await asyncio.sleep(0)

    async def advance(target: float) -> None:
        while True:
            due = clock.next_due()
            if due is None or due > target:
                break
            clock.advance_to(due)
            await settle()
        clock.advance_to(target)

    def assume_obeyed(command: Command, expected: dict[str, Any]) -> None:
        # A recording cannot answer a command: replay plays devices that carry it out at once.
        hub.apply([Update(command.device_id, command.component, command.capability, attribute, value)
                   for attribute, value in expected.items()])

    hub.after_command = assume_obeyed

    from gateway.mdns import RecordedMdns, service_record_from_capture

    recorded_mdns = RecordedMdns()
    # A line of another source goes to the adapter that says it reads that source (CaptureReplayer); the
    # instance is looked up per line, since a restarted adapter is a new one.
    players = {cls.capture_source: name for name, cls in classes.items() if hasattr(cls, "capture_source")}

    def capture_player(source: str) -> CaptureReplayer | None:
        name = players.get(source)
        instance = supervisor.instance(name) if name is not None else None
        return instance if isinstance(instance, CaptureReplayer) else None

    async with noted, _rare_cycle_collection(), \
            Supervisor(hub, classes, config.adapters, mqtt=mqtt, mdns=recorded_mdns, http=None,
                       on_note=noted.note) as supervisor:
        # Let every adapter start (subscribe) before the first captured message.
        for _ in range(50):
            await asyncio.sleep(0)
            if all(h.state not in ("starting", "stopped") for h in supervisor.health.values()):
                break
        async with engine:
            await settle()
            ready = getattr(asyncio.get_running_loop(), "_ready", True)
            next_due = clock.next_due
            for record in records if first is None else itertools.chain((first,), records):
                playing[0] = None
                if stop_at is not None and record.t > stop_at:
                    break
                due = next_due()
                if due is not None and due <= record.t:
                    await advance(record.t)
                else:
                    clock.advance_to(record.t)
                playing[0] = record.line
                if record.source == "mqtt":
                    if not isinstance(record.mqtt, tuple):
                        errors.append({"t": iso_utc(record.t), "source": "capture",
                                       "message": f"{path.name}:{record.line}: {record.mqtt}"})
                        continue
                    mqtt.deliver(*record.mqtt)
                elif (player := capture_player(record.source)) is not None:
                    try:
                        player.replay_capture_line(record.data, record.t)
                    except ValueError as err:
                        errors.append({"t": iso_utc(record.t), "source": "capture",
                                       "message": f"{path.name}:{record.line}: {err}"})
                elif record.source == "mdns" and supervisor.instance("mdns") is not None:
                    try:
                        service = service_record_from_capture(record.data)
                    except ValueError as err:
                        errors.append({"t": iso_utc(record.t), "source": "capture",
                                       "message": f"{path.name}:{record.line}: {err}"})
                    else:
                        recorded_mdns.deliver(service)
                elif record.source not in unhandled:
                    unhandled.add(record.source)
                    errors.append({"t": iso_utc(record.t), "source": "capture",
                                   "message": f"no adapter in this gateway handles source {record.source!r} "
                                              f"(first at line {record.line}); those lines were skipped"})
                if ready or engine.busy:
                    await settle()
            playing[0] = None
            if stop_at is not None and stop_at > clock.time():
                await advance(stop_at)
                await settle()
            if inspect is not None:
                inspected = inspect(ReplayState(engine, hub, traces, start, last, clock.time()))
        failed_adapters: list[str] = []
        for name, health in supervisor.health.items():
            if health.last_error:
                failed_adapters.append(name)
                errors.append({"t": None, "source": name, "message": f"adapter {name}: {health.last_error}"})
    devices = [_device_json(hub.devices[i]) for i in sorted(hub.devices)]
    notifications = [{"t": iso_utc(n.t), "to": target, "title": n.title, "message": n.message,
                      "severity": n.severity, "scene": n.scene, "alert": n.alert_id}
                     for target, n in sent]
    if loaded:
        from gateway.scenes.explain import area_parameter_warnings

        # The house's areas: the config's and those of the devices seen (an adapter's own, the UI's).
        house = {*config.areas.values(), *(d.area for d in hub.devices.values())}
        warnings += area_parameter_warnings(loaded, house, "areas of the config and of the devices seen")
    return ReplayResult(devices=devices, actions=actions, alerts=alerts, errors=errors, published=mqtt.published,
                        notifications=notifications, notes=notes, scenes=sorted(engine.scenes),
                        hub_devices=list(hub.devices.values()) if keep_devices else [], traces=traces,
                        warnings=warnings, names={d.id: d.name for d in hub.devices.values()},
                        scene_models={sid: rt.scene for sid, rt in engine.scenes.items()}, inspected=inspected,
                        failed_adapters=failed_adapters)


async def replay_devices(path: Path, config: Config | None = None) -> list[Any]:
    """The devices a capture describes (for ``hearth profile check --house``)."""
    result = await replay(path, config, profiles=[], keep_devices=True)
    return result.hub_devices


def replay_command(path: Path, config: Config | None, profiles: list[str] | None, *, as_json: bool = False,
                   every_run: bool = False, explain: str | None = None, at: str | None = None,
                   strict: bool = False, language: str | None = None, out: TextIO, err: TextIO) -> int:
    """``hearth replay``: the report (text or ``--json``), or with ``explain`` why that scene did or did
    not run (at ``at``); warnings on ``err``. 0, or 1 with ``strict`` when anything was rejected, 2 for
    a bad ``--explain``/``--at``."""
    from gateway.scenes.explain import AtTime, UnknownSceneError, explain_scene, resolve_scene_id
    from gateway.scenes.setup import engine_settings

    try:
        at_time = AtTime.parse(at) if at else None
    except ValueError as error:
        print(f"hearth replay: {error}", file=err)
        return 2
    loaded = profiles_for(config, profiles)
    scene_id: str | None = None
    if explain is not None:
        ids = [f"{profile.name}.{scene.id}" for profile in loaded for scene in profile.scenes]
        if not ids:
            print("hearth replay: --explain needs scenes: give --profile, or a --config with [[profiles]]", file=err)
            return 2
        try:
            scene_id = resolve_scene_id(explain, ids)
        except UnknownSceneError as error:
            print(f"hearth replay: {error}", file=err)
            return 2
    timezone = engine_settings(config or Config()).timezone

    def until(first: float, last: float) -> float:
        assert at_time is not None
        return at_time.resolve(first, timezone)

    def inspect(state: ReplayState) -> Any:
        assert scene_id is not None
        return explain_scene(state.engine, scene_id, state.traces, start=state.start, end=state.end,
                             now=state.now, asked=at_time is not None, language=language)

    result = asyncio.run(replay(path, config, profiles, loaded=loaded, until=until if at_time else None,
                                inspect=inspect if scene_id else None))
    for warning in result.warnings:
        print(f"warning: {warning}", file=err)
    if result.inspected is not None:
        if as_json:
            out.write(orjson.dumps(result.inspected.data, option=orjson.OPT_INDENT_2).decode() + "\n")
        else:
            print(result.inspected.text(), file=out)
    elif as_json:
        out.write(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_table(result, every_run=every_run), file=out)
    if result.failed_adapters:
        # Whatever else it says, a replay without one of its adapters is not what the gateway would do.
        names = ", ".join(result.failed_adapters)
        print(f"hearth replay: adapter{'s' if len(result.failed_adapters) > 1 else ''} {names} failed "
              "(see errors above)", file=err)
        return 1
    if strict and result.errors:
        print(f"hearth replay: {len(result.errors)} thing{'s' if len(result.errors) != 1 else ''} rejected "
              f"(--strict)", file=err)
        return 1
    return 0


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "null"
    return str(value)


def format_table(result: ReplayResult, *, every_run: bool = False) -> str:
    """The human-readable report: one block per device, one line per capability; then the scenes'
    actions, alerts, notifications and runs (those that acted, or with ``every_run`` all of them)."""
    from gateway.model import capability as capability_spec
    from gateway.scenes.explain import traces_block

    lines: list[str] = []
    lines.append(f"{len(result.devices)} devices")
    for device in result.devices:
        available = {True: "online", False: "OFFLINE", None: "availability unknown"}[device["available"]]
        what = " ".join(x for x in (device.get("manufacturer"), device.get("model")) if x)
        lines.append("")
        lines.append(f"{device['id']}  {device['name']!s}" + (f"  ({what})" if what else ""))
        lines.append(f"  area: {device['area'] or '-'}   {available}")
        for component, caps in sorted(device["components"].items()):
            for cap, attrs in sorted(caps.items()):
                spec = capability_spec(cap)
                parts = []
                for attr, value in attrs.items():
                    if value is None:  # reported, but not known (a sensor that could not be read)
                        parts.append(f"{attr}=unknown")
                        continue
                    unit = spec.attributes[attr].unit if spec and attr in spec.attributes else None
                    parts.append(f"{attr}={_format_value(value)}{' ' + unit if unit and unit != '%' else unit or ''}")
                prefix = f"  {component}." if component != "main" else "  "
                lines.append(f"{prefix}{cap:<18} {', '.join(parts) if parts else '(no value reported yet)'}")
    if result.scenes:
        lines.append("")
        lines.append(f"{len(result.scenes)} scenes: {len(result.actions)} actions, {len(result.alerts)} alerts")
        for action in result.actions:
            args = ", ".join(f"{k}={_format_value(v)}" for k, v in action["args"].items())
            lines.append(f"  [{action['t']}] {action['scene']}: {action['device']} {action['component']} "
                         f"{action['capability']}.{action['command']}({args})")
        for alert in result.alerts:
            lines.append(f"  [{alert['t']}] ALERT {alert['severity']} {alert['scene']}: {alert['message']}")
        for note in result.notifications:
            message = note["message"].replace("\n", "\n      ")
            lines.append(f"  [{note['t']}] notify {note['to']}: {message}")
        lines += traces_block(result.traces, result.names, result.scene_models, every_run=every_run)
    lines += _listed(result.notes, "notes (understood, not used)")
    lines += _listed(result.errors, "errors")
    return "\n".join(lines)


def _listed(entries: list[dict[str, Any]], title: str, shown: int = 50) -> list[str]:
    """A titled block of {t, source, message} entries, the first ``shown`` of them; none: no block."""
    if not entries:
        return []
    lines = ["", f"{len(entries)} {title}"]
    lines += [f"  [{entry['t'] or '-'}] {entry['source']}: {entry['message']}" for entry in entries[:shown]]
    if len(entries) > shown:
        lines.append(f"  … {len(entries) - shown} more (use --json to see all)")
    return lines


__all__ = ["Command", "ReplayMqtt", "ReplayResult", "ReplayState", "format_table", "no_house_warning", "parse_time",
           "profiles_for", "read_capture", "replay", "replay_command"]
