"""The hub: the one owner of current state.

It holds the device registry, every device's state and availability, publishes what changes on the
event bus, and routes commands to the adapter that owns the device. Adapters reach it only through
their context (:mod:`gateway.sdk`); consumers read it and subscribe to the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from typing import Any

from gateway.bus import (
    AvailabilityChanged,
    CommandResultEvent,
    DeviceAdded,
    DeviceEvent,
    DeviceRemoved,
    DeviceUpdated,
    EventBus,
    InputRejected,
    StateChanged,
)
from gateway.clock import Clock
from gateway.errors import CommandErrorReason, CommandValidationError
from gateway.model import capabilities, expected_state, matches_expected, registry_generation, validate_command
from gateway.model._spec import _PY_TYPES, AttributeSpec
from gateway.model.types import (
    CapabilitySupport,
    Command,
    CommandResult,
    Device,
    DeviceEventUpdate,
    DeviceInfo,
    Update,
)

log = logging.getLogger("hearth.hub")

CommandHandler = Callable[[Command], Awaitable[CommandResult]]

# A device that floods us with garbage must not flood the log too: one line per source per window,
# with the number of lines left out.
BAD_INPUT_LOG_WINDOW_S = 10.0
# After a command timed out, how long the hub keeps listening for what the device did after all.
LATE_OUTCOME_S = 60.0


class _ConfirmWaiter:
    __slots__ = ("command", "expected", "future", "seen")

    def __init__(self, command: Command, expected: dict[str, Any], future: asyncio.Future[None]) -> None:
        self.command = command
        self.expected = expected
        self.future = future
        self.seen: set[str] = set()


class Hub:
    def __init__(
        self,
        clock: Clock,
        bus: EventBus | None = None,
        areas: dict[str, str] | None = None,
        tags: dict[str, list[str]] | None = None,
    ) -> None:
        self.clock = clock
        self.bus = bus or EventBus()
        self.devices: dict[str, Device] = {}
        self.counters: Counter[str] = Counter()
        self.bad_input_by_source: Counter[str] = Counter()
        self._areas = {k.lower(): v for k, v in (areas or {}).items()}
        self._tags = {k.lower(): tuple(v) for k, v in (tags or {}).items()}
        self._handlers: dict[str, CommandHandler] = {}
        self._attr_specs: dict[tuple[str, str], AttributeSpec] = {}
        self._waiters: dict[str, list[_ConfirmWaiter]] = {}
        self._late_tasks: set[asyncio.Task[None]] = set()
        self._log_window: dict[str, tuple[float, int]] = {}
        # Called with each command an adapter accepted, before the hub waits for the device; replay
        # uses it to play devices that obey (a recording cannot answer).
        self.after_command: Callable[[Command, dict[str, Any]], None] | None = None
        # The owner's edits from the UI (gateway.devicemeta): called with a device once its name, area
        # and tags from the adapter and `[areas]`/`[tags]` are set, and may replace them, so the owner's
        # edits win. The flag says the device comes from the store (restore), not fresh from its adapter.
        self.meta_hook: Callable[[Device, bool], None] | None = None
        self.refresh_model()

    def refresh_model(self) -> None:
        """Rebuild the (capability, attribute) lookup used on the hot path (after a plugin capability)."""
        self._model_generation = registry_generation()
        self._attr_specs = {
            (cap, attr): spec for cap, cap_spec in capabilities().items() for attr, spec in cap_spec.attributes.items()
        }
        # Per attribute: (spec, the value types that need only the range checked, minimum, maximum).
        # An enum (and anything else) goes through spec.check.
        self._checks: dict[tuple[str, str], tuple[AttributeSpec, tuple[type, ...], float | None, float | None]] = {
            key: (spec, _FAST_TYPES.get(spec.type, ()), spec.minimum, spec.maximum)
            for key, spec in self._attr_specs.items()
        }

    # ---------------------------------------------------------------- registry

    def area_for(self, info_id: str, names: Iterable[str], suggested: str | None) -> str | None:
        """``[areas]`` in config wins (by device id, then by any of its names); else the device's own."""
        for key in (info_id, *names):
            area = self._areas.get(key.lower())
            if area is not None:
                return area
        return suggested

    def tags_for(self, info_id: str, names: Iterable[str]) -> tuple[str, ...]:
        """``[tags]`` in config, by device id and by any of its names (all that match, in order)."""
        found: list[str] = []
        for key in (info_id, *names):
            for tag in self._tags.get(key.lower(), ()):
                if tag not in found:
                    found.append(tag)
        return tuple(found)

    def upsert_device(self, info: DeviceInfo, adapter: str) -> Device:
        now = self.clock.time()
        area = self.area_for(info.id, (info.name, *info.aliases), info.suggested_area)
        existing = self.devices.get(info.id)
        if existing is None:
            device = Device(
                id=info.id, name=info.name, source=info.source, adapter=adapter,
                manufacturer=info.manufacturer, model=info.model, sw_version=info.sw_version,
                hw_version=info.hw_version, serial=info.serial, mac=info.mac, via=info.via, area=area,
                aliases=info.aliases, support={c: dict(caps) for c, caps in info.components.items()},
                tags=self.tags_for(info.id, (info.name, *info.aliases)),
            )
            if self.meta_hook is not None:
                self.meta_hook(device, False)
            self.devices[info.id] = device
            self.counters["devices_added"] += 1
            self.bus.publish(DeviceAdded(now, info.id))
            return device
        before = existing.as_dict()
        existing.name = info.name
        existing.source = info.source
        existing.adapter = adapter
        existing.manufacturer = info.manufacturer
        existing.model = info.model
        existing.sw_version = info.sw_version
        existing.hw_version = info.hw_version
        existing.serial = info.serial
        existing.mac = info.mac
        existing.via = info.via
        existing.area = area
        existing.tags = self.tags_for(info.id, (info.name, *info.aliases))
        existing.aliases = info.aliases
        if self.meta_hook is not None:
            self.meta_hook(existing, False)
        existing.support = {c: dict(caps) for c, caps in info.components.items()}
        # State of capabilities the device no longer has is dropped with them.
        existing.state = {
            comp: {cap: attrs for cap, attrs in caps.items() if cap in existing.support.get(comp, {})}
            for comp, caps in existing.state.items()
            if comp in existing.support
        }
        if existing.as_dict() != before:
            self.bus.publish(DeviceUpdated(now, info.id))
        return existing

    def remove_device(self, device_id: str) -> bool:
        if self.devices.pop(device_id, None) is None:
            return False
        self.counters["devices_removed"] += 1
        self.bus.publish(DeviceRemoved(self.clock.time(), device_id))
        return True

    def restore(self, devices: Iterable[Device]) -> int:
        """Put devices known from the store back, with their last state, before adapters start."""
        count = 0
        for device in devices:
            device.area = self.area_for(device.id, (device.name, *device.aliases), device.area)
            device.tags = self.tags_for(device.id, (device.name, *device.aliases)) or device.tags
            if self.meta_hook is not None:
                self.meta_hook(device, True)
            self.devices[device.id] = device
            count += 1
        return count

    def set_device_meta(self, device_id: str, *, name: str | None = None, area: str | None = None) -> None:
        device = self.devices[device_id]
        device.name = name if name is not None else device.name
        device.area = area if area is not None else device.area
        self.bus.publish(DeviceUpdated(self.clock.time(), device_id))

    # ---------------------------------------------------------------- state (hot path)

    def apply(self, updates: Iterable[Update]) -> int:
        """Take reported values. Returns how many changed. Values must already be canonical."""
        now = self.clock.time()
        changed = 0
        accepted = 0
        devices = self.devices
        checks = self._checks
        publish = self.bus.publish
        announce = self.bus.wants(StateChanged)  # none (a replay without scenes): no event made per change
        waiters = self._waiters
        device: Device | None = None
        device_id: str | None = None
        for update in updates:
            if update.device_id != device_id:  # a message's updates are mostly of one device
                device_id = update.device_id
                device = devices.get(device_id)
            if device is None:
                self.reject_input(device_id.split(":", 1)[0], f"update for unknown device {device_id}")
                continue
            capability = update.capability
            attribute = update.attribute
            check = checks.get((capability, attribute))
            if check is None and self._model_generation != registry_generation():
                # A plugin registered a capability since the tables were built (at import, in start).
                self.refresh_model()
                checks = self._checks
                check = checks.get((capability, attribute))
            if check is None:
                self.reject_input(device.source, f"{device_id}: unknown attribute {capability}.{attribute}")
                continue
            value = update.value
            if value is not None:
                # The common case without a call: a type that needs no more than its range checked.
                spec, types, low, high = check
                if type(value) not in types or (low is not None and value < low) or (
                        high is not None and value > high):
                    problem = spec.check(value)
                    if problem is not None:
                        self.reject_input(device.source, f"{device_id}: {capability}.{attribute}: {problem}")
                        continue
            accepted += 1
            device.last_update = now
            component = update.component
            comp_state = device.state.get(component)
            if comp_state is None:
                comp_state = device.state[component] = {}
            cap_state = comp_state.get(capability)
            if cap_state is None:
                cap_state = comp_state[capability] = {}
            old = cap_state.get(attribute, _ABSENT)
            if old is _ABSENT:
                self._ensure_support(device, component, capability, attribute)
            elif old == value and type(old) is type(value):
                if waiters:
                    self._check_waiters(device, update)
                continue
            cap_state[attribute] = value
            changed += 1
            if announce:
                publish(StateChanged(now, device_id, component, capability, attribute,
                                     None if old is _ABSENT else old, value))
            if waiters:
                self._check_waiters(device, update)
        counters = self.counters
        counters["updates"] += accepted
        counters["state_changes"] += changed
        return changed

    def _ensure_support(self, device: Device, component: str, capability: str, attribute: str) -> None:
        """A device reported an attribute its description did not list: it has it, so record that."""
        caps = device.support.setdefault(component, {})
        support = caps.get(capability)
        if support is None:
            caps[capability] = CapabilitySupport(frozenset({attribute}))
        elif attribute not in support.attributes:
            caps[capability] = replace(support, attributes=support.attributes | {attribute})
        else:
            return
        self.bus.publish(DeviceUpdated(self.clock.time(), device.id))

    def emit_event(self, event: DeviceEventUpdate) -> None:
        device = self.devices.get(event.device_id)
        if device is None:
            self.reject_input(event.device_id.split(":", 1)[0], f"event for unknown device {event.device_id}")
            return
        self.counters["device_events"] += 1
        self.bus.publish(DeviceEvent(self.clock.time(), event.device_id, event.component, event.capability,
                                     event.event, dict(event.data)))

    def set_available(self, device_id: str, available: bool | None) -> None:
        device = self.devices.get(device_id)
        if device is None or device.available is available:
            return
        device.available = available
        self.bus.publish(AvailabilityChanged(self.clock.time(), device_id, available))

    def reject_input(self, source: str, message: str) -> None:
        """Count and report bad input; log it at a limited rate. Never raises."""
        now = self.clock.monotonic()
        self.counters["bad_input"] += 1
        self.bad_input_by_source[source] += 1
        self.bus.publish(InputRejected(self.clock.time(), source, message))
        window_start, suppressed = self._log_window.get(source, (-1e18, 0))
        if now - window_start >= BAD_INPUT_LOG_WINDOW_S:
            extra = f" ({suppressed} more from {source} not logged)" if suppressed else ""
            log.warning("bad input from %s: %s%s", source, message[:500], extra)
            self._log_window[source] = (now, 0)
        else:
            self._log_window[source] = (window_start, suppressed + 1)

    # ---------------------------------------------------------------- commands

    def set_command_handler(self, adapter: str, handler: CommandHandler | None) -> None:
        if handler is None:
            self._handlers.pop(adapter, None)
        else:
            self._handlers[adapter] = handler

    async def execute(self, command: Command, timeout_s: float = 5.0) -> CommandResult:
        """Validate, route to the owning adapter, and wait up to ``timeout_s`` for the device to confirm.

        ``timeout_s`` bounds the whole command, whatever the transport: an adapter still waiting for its
        device (an HTTP request that hangs) when it runs out is cancelled and the answer is ``timeout`` ("it
        may still carry it out"), not a ``failed`` seconds later for a command that then takes effect. What
        the device does after that is not lost: its report of the expected state within
        :data:`LATE_OUTCOME_S` is published as a second CommandResultEvent with ``details["late"]``.

        Raises :class:`CommandValidationError` for a command that does not fit; every other outcome
        is a :class:`CommandResult` (and a CommandResultEvent on the bus).
        """
        device = self.devices.get(command.device_id)
        if device is None:
            raise CommandValidationError(
                CommandErrorReason.UNKNOWN_DEVICE, "device_id", f"no device {command.device_id!r}"
            )
        command = validate_command(device, command)
        self.counters["commands"] += 1
        if device.available is False:
            result = CommandResult("unavailable", f"{device.id} is offline")
            return self._finish(command, result)
        handler = self._handlers.get(device.adapter)
        if handler is None:
            return self._finish(command, CommandResult("failed", f"adapter {device.adapter!r} is not running"))
        expected = expected_state(command, device)
        loop = asyncio.get_running_loop()
        waiter: _ConfirmWaiter | None = None
        if expected:
            waiter = _ConfirmWaiter(command, expected, loop.create_future())
            self._waiters.setdefault(device.id, []).append(waiter)
        clock = self.clock
        started = clock.monotonic()
        # The adapter is called right here (a scene's command goes out on the turn of the loop that took the
        # motion report: bench/latency.py), under the one deadline, kept on the injected clock (simulated
        # seconds in a replay) the way asyncio.timeout keeps it on the loop's: at the deadline the waiting
        # call is cancelled, and the device may still carry the command out.
        current = asyncio.current_task()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            if current is not None:
                current.cancel()

        deadline = clock.call_later(timeout_s, expire)
        try:
            try:
                result = await handler(command)
            except asyncio.CancelledError:
                if not expired or current is None:
                    raise
                current.uncancel()
                result = CommandResult("timeout", f"the device did not answer within {timeout_s:g} s; it may "
                                                  "still carry the command out")
                if waiter is not None:
                    self._follow_late(command, device.id, waiter)
                    waiter = None  # the follow-up owns it now
                return self._finish(command, result)
            except Exception as err:
                log.exception("adapter %s failed to execute %s", device.adapter, command)
                result = CommandResult("failed", f"adapter error: {err}")
            finally:
                deadline.cancel()
            if result.status == "sent" and result.expected:
                # The adapter knows better what the device will report back (a fan with 3 speeds asked
                # for 50 % reports 67 %): its expectation replaces the model's, never the other way.
                expected = dict(result.expected)
                if waiter is None:
                    waiter = _ConfirmWaiter(command, expected, loop.create_future())
                    self._waiters.setdefault(device.id, []).append(waiter)
                else:
                    waiter.expected = expected
                    waiter.seen = set()
            if result.status == "sent" and self.after_command is not None:
                self.after_command(command, expected)
            if result.status == "sent" and waiter is not None:
                result.expected = expected
                future = waiter.future
                remaining = timeout_s - (clock.monotonic() - started)
                timer = clock.call_later(remaining, lambda: future.done() or future.set_exception(TimeoutError()))
                try:
                    await future
                    result.status = "confirmed"
                    result.message = "the device reported the new state"
                except TimeoutError:
                    result.status = "timeout"
                    result.message = f"sent, but the device did not confirm within {timeout_s:g} s"
                    waiter.future = loop.create_future()
                    self._follow_late(command, device.id, waiter)
                    waiter = None
                finally:
                    timer.cancel()
        finally:
            deadline.cancel()
            if waiter is not None:
                self._drop_waiter(device.id, waiter)
        return self._finish(command, result)

    def _drop_waiter(self, device_id: str, waiter: _ConfirmWaiter) -> None:
        waiters = self._waiters.get(device_id, [])
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            self._waiters.pop(device_id, None)

    def _follow_late(self, command: Command, device_id: str, waiter: _ConfirmWaiter) -> None:
        """After a ``timeout`` answer: whether the device carries the command out after all, for
        LATE_OUTCOME_S (a late confirmation is published, so that what recorded the timeout can correct it)."""

        async def follow() -> None:
            future = waiter.future
            timer = self.clock.call_later(LATE_OUTCOME_S,
                                          lambda: future.done() or future.set_exception(TimeoutError()))
            try:
                await future
            except TimeoutError:
                return
            finally:
                timer.cancel()
                self._drop_waiter(device_id, waiter)
            self._late(command, CommandResult("confirmed", "the device reported the new state after the command "
                                                           "had timed out", dict(waiter.expected), {"late": True}))

        late = asyncio.get_running_loop().create_task(follow(), name=f"hub:late:{device_id}")
        self._late_tasks.add(late)
        late.add_done_callback(self._late_tasks.discard)

    def _late(self, command: Command, result: CommandResult) -> None:
        self.counters[f"commands_late_{result.status}"] += 1
        self.bus.publish(CommandResultEvent(self.clock.time(), command, result))

    def cancel_pending(self) -> None:
        """Stop following commands that timed out (at shutdown)."""
        for task in list(self._late_tasks):
            task.cancel()

    def _finish(self, command: Command, result: CommandResult) -> CommandResult:
        self.counters[f"commands_{result.status}"] += 1
        self.bus.publish(CommandResultEvent(self.clock.time(), command, result))
        return result

    def _check_waiters(self, device: Device, update: Update) -> None:
        waiters = self._waiters.get(device.id)
        if not waiters:
            return
        for waiter in waiters:
            if waiter.future.done() or waiter.command.component != update.component:
                continue
            if waiter.command.capability != update.capability or update.attribute not in waiter.expected:
                continue
            if matches_expected(waiter.expected[update.attribute], update.value):
                waiter.seen.add(update.attribute)
            if waiter.seen >= waiter.expected.keys():
                waiter.future.set_result(None)


# Value types whose check is only the range: the model's own types (bool is not an int here: the hub
# compares type() exactly), except enums, whose values spec.check must see.
_FAST_TYPES: dict[str, tuple[type, ...]] = {name: types for name, types in _PY_TYPES.items() if name != "enum"}


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Any = _Absent()
