"""The one event bus. The hub publishes; the store, the scene engine, the API and exporters subscribe.

Delivery is synchronous and in order, on the event loop: a subscriber must be quick (append to a
batch, put on a queue). A subscriber that raises is counted and logged; the others still get the event
and the publisher never sees the error, so one broken consumer cannot stop ingest.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from gateway.model.types import Command, CommandResult

log = logging.getLogger("hearth.bus")


@dataclass(frozen=True, slots=True)
class Event:
    t: float


@dataclass(frozen=True, slots=True)
class DeviceAdded(Event):
    device_id: str


@dataclass(frozen=True, slots=True)
class DeviceUpdated(Event):
    """The device's description (name, area, capabilities, …) changed; not its state."""

    device_id: str


@dataclass(frozen=True, slots=True)
class DeviceRemoved(Event):
    device_id: str


@dataclass(frozen=True, slots=True)
class StateChanged(Event):
    device_id: str
    component: str
    capability: str
    attribute: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class AvailabilityChanged(Event):
    device_id: str
    available: bool | None


@dataclass(frozen=True, slots=True)
class DeviceEvent(Event):
    """A momentary event of a device (a button press)."""

    device_id: str
    component: str
    capability: str
    event: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CommandResultEvent(Event):
    command: Command
    result: CommandResult


@dataclass(frozen=True, slots=True)
class InputRejected(Event):
    """Bad input from outside (a device payload, an advertisement) was dropped."""

    source: str
    message: str


@dataclass(frozen=True, slots=True)
class ModeChanged(Event):
    """The house mode changed (home / away / night / vacation)."""

    old: str
    new: str
    source: str


@dataclass(frozen=True, slots=True)
class AlertChanged(Event):
    """An alert was raised, escalated, acknowledged or cleared. ``alert`` is its public JSON form."""

    alert: dict[str, Any]
    change: str  # raised | escalated | acknowledged | cleared


@dataclass(frozen=True, slots=True)
class SceneRan(Event):
    """A scene finished a run; ``trace`` is the run's trace."""

    scene: str
    trace: dict[str, Any]


E = TypeVar("E", bound=Event)
Unsubscribe = Callable[[], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: defaultdict[type[Event], list[Callable[[Any], None]]] = defaultdict(list)
        self._all: list[Callable[[Event], None]] = []
        self.subscriber_errors = 0

    def subscribe(self, event_type: type[E], callback: Callable[[E], None]) -> Unsubscribe:
        """Call ``callback`` for every event of exactly ``event_type``. Returns the way to stop."""
        subscribers = self._subscribers[event_type]
        subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in subscribers:
                subscribers.remove(callback)

        return unsubscribe

    def subscribe_all(self, callback: Callable[[Event], None]) -> Unsubscribe:
        self._all.append(callback)

        def unsubscribe() -> None:
            if callback in self._all:
                self._all.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        subscribers = self._subscribers.get(type(event))
        if subscribers:
            for callback in tuple(subscribers):
                self._deliver(callback, event)
        for callback in tuple(self._all):
            self._deliver(callback, event)

    def _deliver(self, callback: Callable[[Any], None], event: Event) -> None:
        try:
            callback(event)
        except Exception:
            self.subscriber_errors += 1
            log.exception("event subscriber %r failed on %s", callback, type(event).__name__)
