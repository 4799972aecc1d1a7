"""The plugin SDK: everything an adapter may use, in one import.

An adapter is a class registered under the entry-point group ``hearth.adapters``::

    [project.entry-points."hearth.adapters"]
    acme = "acme_hearth:AcmeAdapter"

Its constructor takes no arguments and only stores state; the gateway then calls ``await start(ctx)``
with an :class:`AdapterContext` (its only way into the gateway), routes commands for the devices it
created to ``await execute(command)``, and calls ``await stop()`` on shutdown or before a restart.
If ``start`` raises, or a task made with ``ctx.create_task`` fails, the adapter is stopped, reported
in ``/healthz`` and started again with exponential back-off; the other adapters keep running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

from gateway.clock import Clock, TimerHandle, iso_utc
from gateway.errors import AdapterNotReadyError, CodecError, ConfigError, ConfigProblem, HearthError
from gateway.logsafe import LogLimiter
from gateway.mdns import MdnsService, ServiceRecord
from gateway.model import CapabilitySpec, capabilities, capability, register_capability
from gateway.model._spec import ArgSpec, AttributeSpec, CommandSpec
from gateway.model.types import (
    CapabilitySupport,
    Command,
    CommandResult,
    Device,
    DeviceEventUpdate,
    DeviceInfo,
    Update,
)
from gateway.suggest import did_you_mean
from gateway.tomlloc import TomlLocator, loads_toml
from gateway.units import UNIT_FACTORS, fahrenheit_to_celsius

__all__ = [
    "SDK_VERSION",
    "UNIT_FACTORS",
    "Adapter",
    "AdapterContext",
    "AdapterNotReadyError",
    "ArgSpec",
    "AttributeSpec",
    "CapabilitySpec",
    "CapabilitySupport",
    "CaptureReplayer",
    "Clock",
    "CodecError",
    "Command",
    "CommandResult",
    "CommandSpec",
    "ConfigError",
    "ConfigProblem",
    "Device",
    "DeviceEventUpdate",
    "DeviceInfo",
    "HearthError",
    "KeyValueStore",
    "LogLimiter",
    "MdnsService",
    "MessageCallback",
    "MqttClient",
    "ServiceRecord",
    "TimerHandle",
    "TomlLocator",
    "Unsubscribe",
    "Update",
    "apply_decoded",
    "capabilities",
    "capability",
    "did_you_mean",
    "fahrenheit_to_celsius",
    "iso_utc",
    "loads_toml",
    "plain_topic",
    "publish_command",
    "register_capability",
    "topic_matches",
    "validate_topic_filter",
]

#: The version of this SDK. A minor version only adds (a plugin made for 1.0 runs on 1.3); a new major
#: version may change or remove something. A plugin says what it needs with a version specifier in its
#: adapter class, ``requires_sdk = ">=1.1,<2"``; a gateway whose SDK it does not admit leaves it out and
#: says why (the log, ``hearth config check``, ``hearth plugin check``), instead of failing on a missing name.
#: 1.0: the first. 1.1: ``CommandResult.expected`` from the adapter is kept; plugin capabilities work in replay.
#: 1.2: ``LogLimiter``, ``loads_toml``, ``did_you_mean``, ``UNIT_FACTORS`` and ``fahrenheit_to_celsius``,
#: ``MdnsService`` and ``ServiceRecord``, ``TimerHandle``, ``CaptureReplayer``.
SDK_VERSION = "1.2"

#: What a subscription returns: call it to end the subscription (once; a second call does nothing).
Unsubscribe = Callable[[], None]
#: ``callback(topic, payload, retained)``, called on the event loop for each message; must not block.
MessageCallback = Callable[[str, bytes, bool], None]


@runtime_checkable
class MqttClient(Protocol):
    """The gateway's one shared MQTT session, as adapters see it."""

    @property
    def connected(self) -> bool:
        """Whether the session is connected to the broker now."""

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0) -> Unsubscribe:
        """Deliver messages matching ``topic_filter`` to ``callback``; survives reconnects."""

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        """Queue a message; never blocks. Dropped (and counted) while disconnected at QoS 0."""


class KeyValueStore(Protocol):
    """Small persistent storage scoped to one adapter (JSON-serialisable values)."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` (as it comes back from JSON: a tuple as a list), or ``default``."""

    def set(self, key: str, value: Any) -> None:
        """Store ``value``; written with the store's next batched commit (a few seconds), kept across restarts.
        A value that is not JSON-serialisable raises at once."""

    def delete(self, key: str) -> None:
        """Forget ``key`` (nothing happens if it is not there)."""

    def items(self) -> Iterable[tuple[str, Any]]:
        """Every (key, value) pair of this adapter's storage."""


class AdapterContext(Protocol):
    """What the gateway gives an adapter in ``start(ctx)``: its only way into the gateway.

    Every method is called on the event loop and returns at once.
    """

    #: The adapter's name: its entry point's name in ``hearth.adapters`` (and its config table's).
    name: str
    #: Its ``[adapters.<name>]`` table of the config file (empty when there is none); checked by the
    #: adapter's ``config_model`` first when it has one.
    config: dict[str, Any]
    #: Its logger (``hearth.adapter.<name>``).
    log: logging.Logger
    #: The gateway's clock: real time in ``hearth run``, simulated in replay and tests.
    clock: Clock
    #: The gateway's one MQTT session, or None when the gateway runs without MQTT (an adapter with
    #: ``needs_mqtt = True`` is not started then, but a type checker cannot know it: check for None).
    mqtt: MqttClient | None
    #: Small persistent storage of its own.
    storage: KeyValueStore
    #: The gateway's one mDNS service (browse / register), or None when mDNS is off. In replay, a
    #: recorded one that delivers the capture's mdns lines and whose ``live`` is False.
    mdns: Any

    def upsert_device(self, info: DeviceInfo) -> Device:
        """Add a device, or update what it is (same ``id``: its state, area and the owner's edits stay)."""

    def remove_device(self, device_id: str) -> None:
        """Remove one of this adapter's devices (one the device's bridge says is gone for good)."""

    def push(self, updates: Iterable[Update]) -> None:
        """New values of devices' attributes. Each is checked against the capability model: an update for
        an unknown device or attribute, or a value of the wrong type or out of range, is dropped and
        reported as bad input, the others are applied."""

    def push_event(self, event: DeviceEventUpdate) -> None:
        """Something happened on a device (a button press)."""

    def set_available(self, device_id: str, available: bool | None) -> None:
        """Whether a device is reachable: True, False, or None for "not known"."""

    def report_bad_input(self, message: str) -> None:
        """A device sent something we cannot use: counted, rate-limited log, shown in replay errors."""

    def device(self, device_id: str) -> Device | None:
        """The hub's view of a device (read it, don't change it)."""

    def devices(self) -> list[Device]:
        """The devices this adapter owns (including ones restored from the store)."""

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str) -> Any:
        """Run a background task owned by this adapter; if it fails, the adapter is restarted."""


# Where apply_decoded logs a codec's notes (one child logger per adapter), so that replay can list them.
NOTES_LOGGER = "hearth.notes"


def apply_decoded(ctx: AdapterContext, decoded: Any) -> None:
    """Hand what a codec made of a message to the gateway, in the order that keeps it consistent:
    new devices, removed ones, values, events, availability, then problems (and debug notes).

    ``decoded`` is any object with some of the lists ``upserts``, ``removals``, ``updates``, ``events``,
    ``availability`` (``(device_id, available)`` pairs), ``problems`` and ``notes``: every codec's result
    type has these, and adding a field to one codec does not need a change here.
    """
    kind = type(decoded)
    full = _FULL_RESULTS.get(kind)
    if full is None:
        if len(_FULL_RESULTS) >= 64:
            _FULL_RESULTS.clear()
        full = _FULL_RESULTS[kind] = all(hasattr(decoded, name) for name in _RESULT_LISTS)
    if full:
        # All seven there (a codec's own result type): read as attributes, not seven getattr calls, and all
        # of them before any is used.
        try:
            rest = (decoded.upserts, decoded.removals, decoded.events, decoded.availability, decoded.problems,
                    decoded.notes)
            updates = decoded.updates
        except AttributeError:  # not this one after all: the general way from now on for its type
            _FULL_RESULTS[kind] = False
        else:
            if not any(rest):
                if updates:
                    ctx.push(updates)
                return
    _apply_parts(ctx, decoded)


# Per result type: whether it has all seven lists (then read the quick way). A codec's own types: a handful.
_FULL_RESULTS: dict[type, bool] = {}
_RESULT_LISTS = ("upserts", "removals", "updates", "events", "availability", "problems", "notes")


def _apply_parts(ctx: AdapterContext, decoded: Any) -> None:
    # Each list tested before it is walked: most messages carry updates and nothing else.
    if upserts := getattr(decoded, "upserts", None):
        for info in upserts:
            ctx.upsert_device(info)
    if removals := getattr(decoded, "removals", None):
        for device_id in removals:
            ctx.remove_device(device_id)
    if updates := getattr(decoded, "updates", None):
        ctx.push(updates)
    if events := getattr(decoded, "events", None):
        for event in events:
            ctx.push_event(event)
    if availability := getattr(decoded, "availability", None):
        for device_id, available in availability:
            ctx.set_available(device_id, available)
    if problems := getattr(decoded, "problems", None):
        for problem in problems:
            ctx.report_bad_input(problem)
    if notes := getattr(decoded, "notes", None):
        # What a codec understood and deliberately left unused (a platform with no capability, a device read
        # natively): debug in the gateway's log, listed by `hearth replay` (NOTES_LOGGER). The gateway's own
        # context takes them directly (``note``: a device database's 3,000 notes as log records were 2 % of
        # its replay); any other context, through the log.
        note = getattr(ctx, "note", None)
        if note is not None:
            for text in notes:
                note(text)
        else:
            log = logging.getLogger(f"{NOTES_LOGGER}.{ctx.name}")
            for text in notes:
                log.debug("%s", text)


def validate_topic_filter(topic_filter: str) -> None:
    """Raise ValueError unless ``topic_filter`` is a valid MQTT topic filter."""
    if not topic_filter:
        raise ValueError("empty MQTT topic filter")
    if "\0" in topic_filter:
        raise ValueError(f"MQTT topic filter {topic_filter!r} contains a NUL character")
    if len(topic_filter.encode("utf-8")) > 65535:
        raise ValueError("MQTT topic filter longer than 65535 bytes")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise ValueError(f"MQTT topic filter {topic_filter!r}: '#' must be the whole last level")
        if "+" in level and level != "+":
            raise ValueError(f"MQTT topic filter {topic_filter!r}: '+' must be a whole level")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` under MQTT rules.

    ``+`` matches exactly one level (possibly empty), ``#`` the parent level and everything below it;
    topics starting with ``$`` (broker internals such as ``$SYS``) are not matched by a filter that
    starts with a wildcard.
    """
    if topic_filter == topic:
        return True
    if topic[:1] == "$" and topic_filter[:1] in ("+", "#"):
        return False
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def plain_topic(value: str) -> str:
    """Check a base topic or prefix from an adapter's config (for a pydantic field validator): not empty,
    no MQTT wildcards or NUL, no trailing '/'. Returns it; raises ValueError saying what is wrong."""
    if not value.strip():
        raise ValueError("must not be empty")
    if "+" in value or "#" in value or "\x00" in value:
        raise ValueError("must be a plain topic without MQTT wildcards ('+', '#') or NUL")
    if value.endswith("/"):
        raise ValueError(f"must not end with '/' (write {value.rstrip('/')!r}, not {value!r})")
    return value


def publish_command(
    ctx: AdapterContext | None,
    adapter: str,
    encode: Callable[[Command], tuple[str, bytes | str]],
    command: Command,
) -> CommandResult:
    """The usual ``execute`` of an MQTT adapter: encode, publish, and say "sent" (the hub then confirms
    from the state the device reports), or why not."""
    if ctx is None or ctx.mqtt is None:
        return CommandResult("failed", f"the {adapter} adapter is not running")
    try:
        topic, payload = encode(command)
    except CodecError as err:
        return CommandResult("rejected", str(err))
    ctx.mqtt.publish(topic, payload)
    return CommandResult("sent", f"published to {topic}")


@runtime_checkable
class Adapter(Protocol):
    """What the gateway expects of an adapter class (registered under the ``hearth.adapters`` entry point).

    Optional class attributes: ``requires_sdk``, a version specifier for :data:`SDK_VERSION`
    (``">=1.1,<2"``): a gateway it does not admit leaves the plugin out and says why; ``config_model``,
    a pydantic model of the adapter's ``[adapters.<name>]`` table, checked before ``start``. An optional
    ``stats()`` method returns a small JSON-able dict shown under the adapter in ``/healthz``. An optional
    classmethod ``check_config(section) -> list[ConfigProblem]`` (the validated table) says what starting
    would find wrong beyond the table itself (the files it names): ``hearth config check`` and a
    ``hearth run`` that refuses its config show those problems with the others, in the file's order.
    A message callback that raises is counted against the adapter in ``/healthz`` (``message_failures``,
    ``last_error``) and the message dropped; report bad input with ``ctx.report_bad_input`` instead.
    """

    #: Needs the shared MQTT session (the gateway will not start it without one).
    needs_mqtt: ClassVar[bool]

    async def start(self, ctx: AdapterContext) -> None:
        """Start: keep ``ctx``, subscribe, start background tasks with ``ctx.create_task``. Raise
        :class:`AdapterNotReadyError` when what it needs is not there yet: it is retried with back-off."""

    async def stop(self) -> None:
        """Stop: undo what ``start`` did (unsubscribe, close connections). Tasks made with
        ``ctx.create_task`` are cancelled by the gateway."""

    async def execute(self, command: Command) -> CommandResult:
        """Carry out a command for one of this adapter's devices (already validated against the model and
        the device) and say what became of it: usually ``CommandResult("sent")``."""


@runtime_checkable
class CaptureReplayer(Protocol):
    """An adapter that plays the capture lines of its own ``source`` in ``hearth replay``.

    The gateway plays ``mqtt`` and ``mdns`` lines itself, through the shared sessions it injects; a line of any
    other source (``ble``, or a plugin's own radio) goes to the running adapter whose class declares that source,
    which turns it into what its radio would have heard. Replay knows nothing of the source's format.
    """

    #: The capture ``source`` this adapter reads (``"ble"``).
    capture_source: ClassVar[str]

    def replay_capture_line(self, line: Mapping[str, Any], t: float) -> None:
        """Take one capture line (the JSON object, ``t`` already read as epoch seconds) as if heard now.

        Raise ValueError, saying which field is wrong, for a line that cannot be read (replay lists it with
        its line number); what the device itself sent wrong is reported as usual (``ctx.report_bad_input``).
        """
