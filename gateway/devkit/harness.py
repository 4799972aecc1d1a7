"""The test harness of the maker's kit: one adapter, started as the gateway starts it, driven from a test.

:class:`Harness` runs an adapter class with a real :class:`~gateway.supervisor.AdapterContextImpl` on a real
:class:`~gateway.hub.Hub` (the same validation, confirmation and bad-input paths as ``hearth run``), on a
:class:`~gateway.clock.SimulatedClock` that moves only when told to. Its MQTT is in memory by default (replay's
:class:`~gateway.replay.ReplayMqtt`: what the test delivers goes to the adapter's subscriptions, what the adapter
publishes is recorded), or a real session to a broker when one is given (``broker=``: a
:class:`~gateway.devkit.mosquitto.Mosquitto` or ``(host, port)``)::

    async with Harness(AcmeAdapter, config={"base_topic": "acme"}) as harness:
        await harness.deliver("acme/purifier-1/state", {"fan": 2, "filter": 80})
        assert harness.value("acme:purifier-1", "fan", "speed_percent") == 67
        harness.respond("acme/+/set", lambda topic, payload: [(topic.replace("/set", "/state"), payload)])
        result = await harness.command("acme:purifier-1", "fan", "set_speed", percent=50)
        assert result.status == "confirmed"

Usable without pytest; the pytest plugin :mod:`gateway.testing` wraps it as the ``hearth_harness`` fixture, and
``hearth plugin check`` (:mod:`gateway.devkit.conformance`) builds on it. Everything here is public API of the
kit: the names in ``__all__``, and the attributes and methods documented on :class:`Harness`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.bus import InputRejected
from gateway.clock import SimulatedClock
from gateway.devkit.mosquitto import Mosquitto
from gateway.errors import CommandValidationError, HearthError
from gateway.hub import Hub
from gateway.model.types import Command, CommandResult, Device
from gateway.replay import ReplayMqtt
from gateway.sdk import NOTES_LOGGER, MessageCallback, MqttClient, Unsubscribe, topic_matches
from gateway.supervisor import AdapterContextImpl, _ScopedKV, sdk_incompatibility, validate_adapter_config

__all__ = [
    "DEFAULT_START_TIME",
    "Harness",
    "HarnessError",
    "Payload",
    "Problem",
    "Published",
    "Reply",
    "Responder",
    "payload_bytes",
]

# Where simulated time starts unless told otherwise (2026-01-01T00:00:00Z): a fixed time, so that what a test
# sees (timestamps in published messages, "last seen") is the same on every run.
DEFAULT_START_TIME = 1_767_225_600.0
# How long an adapter's start (and its stop) may take, in real seconds, before the harness gives up: a start
# that waits on the simulated clock (which stands still) would otherwise hang the test forever.
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# A command is given the hub's usual 5 s (simulated) to be confirmed by the device's report, as in `hearth run`.
COMMAND_TIMEOUT_S = 5.0
# While a command waits, simulated time moves in steps this long (with a real broker, each step is also
# waited for in real time, so that the device's reply can travel through the broker).
COMMAND_STEP_S = 0.1
# How long a message delivered through a real broker may take to come back (real seconds): loopback takes
# milliseconds, a loaded CI runner a lot more.
LIVE_DELIVERY_TIMEOUT_S = 10.0
# Loop turns a settle gives the adapter (its callbacks, its tasks) once nothing else is ready.
SETTLE_TURNS = 20
# Replies simulated devices may send in one harness: past this, a responder is answering itself in a loop.
MAX_REPLIES = 10_000

#: A payload as a test writes it: bytes as they are, a str as UTF-8, anything else as compact JSON.
Payload = bytes | str | Mapping[str, Any] | list[Any] | int | float | bool | None
#: One message a simulated device sends back: ``(topic, payload)`` or ``(topic, payload, retain)``.
Reply = tuple[str, Payload] | tuple[str, Payload, bool]
#: A simulated device: called with each message the adapter publishes on a matching topic, returns its replies.
Responder = Callable[[str, bytes], Iterable[Reply] | None]


class HarnessError(HearthError):
    """The harness could not do what it was asked (the adapter would not start, a message never came back)."""


def payload_bytes(payload: Payload) -> bytes:
    """A payload as the bytes on the wire: bytes as they are, a str as UTF-8, anything else as compact JSON."""
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True, slots=True)
class Published:
    """One message the adapter published: ``t`` is the simulated time (epoch seconds)."""

    t: float
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", "replace")

    def json(self) -> Any:
        """The payload parsed as JSON (raises ``ValueError`` when it is not)."""
        return json.loads(self.payload)


@dataclass(frozen=True, slots=True)
class Problem:
    """Something the adapter reported with ``ctx.report_bad_input`` (or the hub rejected from it)."""

    t: float
    source: str
    message: str


class _NoteHandler(logging.Handler):
    """Collects the codec notes that :func:`gateway.sdk.apply_decoded` logs for one adapter."""

    def __init__(self, notes: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self._notes = notes

    def emit(self, record: logging.LogRecord) -> None:
        self._notes.append(record.getMessage())


class _RecordingMqtt:
    """The adapter's view of MQTT: every call passes to the real one (in memory or a session), and what the
    adapter publishes is recorded and shown to the simulated devices."""

    def __init__(self, harness: Harness, inner: MqttClient) -> None:
        self._harness = harness
        self._inner = inner
        self.filters: list[str] = []  # the adapter's subscriptions now, in order (a filter twice: twice)

    @property
    def connected(self) -> bool:
        return self._inner.connected

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0) -> Unsubscribe:
        undo = self._inner.subscribe(topic_filter, callback, qos)
        self.filters.append(topic_filter)
        done = False

        def unsubscribe() -> None:
            nonlocal done
            if not done:
                done = True
                self.filters.remove(topic_filter)
                undo()

        return unsubscribe

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        data = payload_bytes(payload)
        self._harness._adapter_published(Published(self._harness.clock.time(), topic, data, qos, retain))
        self._inner.publish(topic, data, qos, retain)


class Harness:
    """One adapter, started as the gateway starts it, on a real hub and a simulated clock.

    ``Harness(adapter_class, config=None, *, name=None, broker=None, start_time=DEFAULT_START_TIME)``;
    ``await harness.start()`` (or ``async with``) starts it; ``await harness.stop()`` stops it.

    - ``config``: the adapter's ``[adapters.NAME]`` section, validated by its ``config_model`` as the gateway
      does (a bad one raises pydantic's ``ValidationError`` from ``start``).
    - ``name``: the adapter's name (its entry-point name; ``ctx.name``). Default: the class's ``name``
      attribute if it has one, else its top-level package's name without a ``hearth_`` prefix.
    - ``broker``: ``None`` for in-memory MQTT; a :class:`~gateway.devkit.mosquitto.Mosquitto` or a
      ``(host, port)`` pair for a real session (the gateway's own :class:`~gateway.mqtt.MqttSession`); then
      :meth:`deliver` publishes through the broker and waits for the message to come back, simulated devices
      (:meth:`respond`) answer through the broker, and waiting for a command also takes real time.

    Attributes: ``hub``, ``clock``, ``ctx``, ``adapter`` (the instance), ``name``, ``published``
    (:class:`Published`, in order), ``problems`` (texts given to ``report_bad_input``), ``rejections``
    (:class:`Problem`, with time and source), ``notes`` (codec notes), ``subscriptions`` (the adapter's MQTT
    topic filters now), ``failures`` (exceptions of the adapter's tasks), and after :meth:`stop`:
    ``leaked_tasks`` (names of tasks still running after the adapter stopped; the harness cancels them) and
    ``stop_error`` (what ``adapter.stop()`` raised, or None).
    """

    def __init__(
        self,
        adapter_class: type[Any],
        config: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        broker: Mosquitto | tuple[str, int] | None = None,
        start_time: float | None = None,
    ) -> None:
        self.adapter_class = adapter_class
        self.name = name or _default_name(adapter_class)
        self.config_section: dict[str, Any] = dict(config or {})
        if isinstance(broker, Mosquitto):
            broker = (broker.host, broker.port)
        self.broker: tuple[str, int] | None = broker
        if start_time is None:
            # Live: simulated time starts at the real time, so that what a device stamps lines up with it.
            start_time = time.time() if broker is not None else DEFAULT_START_TIME
        self.clock = SimulatedClock(start_time)
        self.hub = Hub(self.clock)
        self.adapter: Any = None
        self.ctx: AdapterContextImpl | None = None
        self.published: list[Published] = []
        self.rejections: list[Problem] = []
        self.notes: list[str] = []
        self.failures: list[BaseException] = []
        self.leaked_tasks: list[str] = []
        self.stop_error: BaseException | None = None
        self._unraised: list[BaseException] = []
        self._memory: ReplayMqtt | None = None
        self._session: Any = None  # gateway.mqtt.MqttSession when live
        self._mqtt: _RecordingMqtt | None = None
        self._responders: list[tuple[str, Responder]] = []
        self._live_undo: list[Unsubscribe] = []
        self._arrivals: Counter[tuple[str, bytes]] = Counter()
        self._awaiting_reply: Counter[tuple[str, bytes]] = Counter()
        self._replies = 0
        self._unsubscribe_bus: Unsubscribe | None = None
        self._note_handler: _NoteHandler | None = None
        self._note_logger = logging.getLogger(f"{NOTES_LOGGER}.{self.name}")
        self._note_saved: tuple[int, bool] = (logging.NOTSET, True)
        self._tasks_before: set[asyncio.Task[Any]] = set()
        self._state = "new"

    # ------------------------------------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Harness:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> Harness:
        """Validate the config, make the context, and ``await adapter.start(ctx)``; then let it settle."""
        if self._state != "new":
            raise HarnessError("a harness starts once; make a new one")
        self._state = "starting"
        problem = sdk_incompatibility(self.adapter_class)
        if problem is not None:
            raise HarnessError(f"adapter {self.name}: {problem}")
        config = validate_adapter_config(self.name, self.adapter_class, self.config_section)
        self._tasks_before = set(asyncio.all_tasks())
        self._unsubscribe_bus = self.hub.bus.subscribe(InputRejected, self._rejected)
        self._note_handler = _NoteHandler(self.notes)
        self._note_saved = (self._note_logger.level, self._note_logger.propagate)
        self._note_logger.setLevel(logging.DEBUG)
        self._note_logger.propagate = False
        self._note_logger.addHandler(self._note_handler)
        try:
            inner: MqttClient
            if self.broker is None:
                self._memory = ReplayMqtt(self.clock)
                inner = self._memory
            else:
                inner = await self._open_session(*self.broker)
            self._mqtt = _RecordingMqtt(self, inner)
            self.ctx = AdapterContextImpl(self.name, self.hub, config, self._mqtt, _ScopedKV(), self._task_failed)
            self.adapter = self.adapter_class()
            try:
                await asyncio.wait_for(self.adapter.start(self.ctx), START_TIMEOUT_S)
            except TimeoutError:
                raise HarnessError(
                    f"adapter {self.name}: start() did not return within {START_TIMEOUT_S:g} s (real time); "
                    "a start must not wait for the clock (time stands still in the harness until advance())"
                ) from None
        except BaseException:
            await self._teardown(stop_adapter=self.adapter is not None and self.ctx is not None)
            raise
        self.hub.set_command_handler(self.name, self.adapter.execute)
        self._state = "running"
        try:
            await self.settle()
        except HarnessError:  # a task of the adapter failed as it started: the gateway would restart it
            await self._teardown(stop_adapter=True)
            raise
        return self

    async def stop(self) -> None:
        """Stop the adapter as the gateway does (its tasks cancelled, then ``stop()``), close MQTT, and cancel
        whatever task it left running (named in ``leaked_tasks``). Idempotent; never raises for the adapter:
        what its ``stop()`` raised is in ``stop_error``."""
        if self._state in ("new", "stopped"):
            self._state = "stopped"
            return
        await self._teardown(stop_adapter=True)

    async def _teardown(self, *, stop_adapter: bool) -> None:
        self._state = "stopped"
        self.hub.set_command_handler(self.name, None)
        if self.ctx is not None:
            await self.ctx.cancel_tasks()
        if stop_adapter and self.adapter is not None:
            try:
                await asyncio.wait_for(self.adapter.stop(), STOP_TIMEOUT_S)
            except Exception as err:
                self.stop_error = err
        for undo in self._live_undo:
            undo()
        self._live_undo.clear()
        if self._session is not None:
            session, self._session = self._session, None
            await session.__aexit__(None, None, None)
        # The hub's own follow-ups of commands that timed out (a late confirmation) are the hub's, not leaks.
        cancel_pending = getattr(self.hub, "cancel_pending", None)
        if cancel_pending is not None:
            cancel_pending()
        hub_tasks = [t for t in getattr(self.hub, "_late_tasks", ()) if not t.done()]
        if hub_tasks:
            await asyncio.wait(hub_tasks, timeout=STOP_TIMEOUT_S)
        current = asyncio.current_task()
        leaked = [t for t in asyncio.all_tasks() if t not in self._tasks_before and t is not current and not t.done()]
        self.leaked_tasks = sorted(t.get_name() for t in leaked)
        for task in leaked:
            task.cancel()
        if leaked:
            await asyncio.wait(leaked, timeout=STOP_TIMEOUT_S)
        if self._unsubscribe_bus is not None:
            self._unsubscribe_bus()
            self._unsubscribe_bus = None
        if self._note_handler is not None:
            self._note_logger.removeHandler(self._note_handler)
            self._note_logger.setLevel(self._note_saved[0])
            self._note_logger.propagate = self._note_saved[1]
            self._note_handler = None

    async def _open_session(self, host: str, port: int) -> MqttClient:
        from gateway.clock import SystemClock
        from gateway.config import MqttSection
        from gateway.mqtt import MqttSession

        tag = uuid.uuid4().hex[:8]
        # Short reconnect back-off: a test's broker is on loopback; the session's own clock is the real one
        # (keepalive and reconnects are wall-clock matters, whatever the hub's clock says).
        settings = MqttSection.model_validate({
            "host": host, "port": port, "reconnect_min_s": 0.05, "reconnect_max_s": 0.5, "keepalive_s": 10,
            "status_topic": f"hearth-harness/{tag}/status"})
        session: Any = MqttSession(settings, SystemClock(), client_id=f"hearth-harness-{tag}")
        await session.__aenter__()
        self._session = session
        if not await session.wait_connected(LIVE_DELIVERY_TIMEOUT_S):
            raise HarnessError(f"could not connect to the MQTT broker at {host}:{port}")
        # Every message the broker hands the session is counted, so that deliver() knows when one came back.
        self._live_undo.append(session.subscribe("#", self._arrived))
        mqtt: MqttClient = session
        return mqtt

    # ------------------------------------------------------------------------------------------- state

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def live(self) -> bool:
        """Whether MQTT goes through a real broker."""
        return self.broker is not None

    @property
    def problems(self) -> list[str]:
        """The texts of what the adapter reported with ``ctx.report_bad_input`` (and the hub rejected from it,
        such as a value of an unknown attribute), in order."""
        return [problem.message for problem in self.rejections]

    @property
    def subscriptions(self) -> list[str]:
        """The MQTT topic filters the adapter is subscribed to now."""
        return list(self._mqtt.filters) if self._mqtt is not None else []

    @property
    def devices(self) -> dict[str, Device]:
        """The hub's devices (all the adapter's), by id."""
        return dict(sorted(self.hub.devices.items()))

    def device(self, device_id: str) -> Device:
        """The hub's view of one device; ``KeyError`` naming the devices there are when it is not known."""
        device = self.hub.devices.get(device_id)
        if device is None:
            known = ", ".join(sorted(self.hub.devices)) or "none"
            raise KeyError(f"no device {device_id!r} (devices: {known})")
        return device

    def value(self, device_id: str, capability: str, attribute: str, component: str = "main") -> Any:
        """The current value of one attribute (None when not reported); ``KeyError`` for an unknown device."""
        return self.device(device_id).value(component, capability, attribute)

    # ------------------------------------------------------------------------------------------- driving

    async def deliver(self, topic: str, payload: Payload, retain: bool = False) -> int:
        """Hand the adapter a message on ``topic``, as the broker would, and let it settle. Returns how many of
        the adapter's subscriptions matched (0: the adapter did not listen there).

        Live, the message is published to the broker and this waits (real time) until it has come back."""
        self._check_running()
        data = payload_bytes(payload)
        matched = sum(1 for topic_filter in self.subscriptions if topic_matches(topic_filter, topic))
        if self._memory is not None:
            self._memory.deliver(topic, data, retain)
        else:
            await self._publish_live(topic, data, retain)
        await self.settle()
        return matched

    def respond(self, topic_filter: str, responder: Responder) -> Unsubscribe:
        """Play a device: ``responder(topic, payload)`` is called with each message the adapter publishes on a
        topic matching ``topic_filter``, and returns the messages the device sends back (``(topic, payload)``
        or ``(topic, payload, retain)``; a payload as for :meth:`deliver`), or None. Returns the way to stop.

        In memory, the replies reach the adapter right after its publish (as from a broker, never inside the
        adapter's own call); live, they go through the broker."""
        entry = (topic_filter, responder)
        self._responders.append(entry)
        undo_live: Unsubscribe | None = None
        if self._session is not None:
            def on_message(topic: str, payload: bytes, retain: bool) -> None:
                key = (topic, payload)
                if self._awaiting_reply[key] > 0:  # only what the adapter published, as in memory
                    self._awaiting_reply[key] -= 1
                    self._answer(responder, topic, payload)

            undo_live = self._session.subscribe(topic_filter, on_message)

        def unsubscribe() -> None:
            if entry in self._responders:
                self._responders.remove(entry)
            if undo_live is not None:
                undo_live()

        return unsubscribe

    async def settle(self) -> None:
        """Let the adapter do what it can without time passing (its callbacks, its tasks, replies of simulated
        devices). Raises the first failure of an adapter task not raised yet (see ``failures``)."""
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)
        idle = 0
        for _ in range(SETTLE_TURNS * 10):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                idle += 1
                if idle >= 3:
                    break
            else:
                idle = 0
        if self._unraised:
            error = self._unraised.pop(0)
            raise HarnessError(f"a task of adapter {self.name} failed: {type(error).__name__}: {error}") from error

    async def advance(self, seconds: float) -> None:
        """Move simulated time ``seconds`` forward, running each timer when it is due (and settling after it)."""
        if seconds < 0:
            raise ValueError("time does not go backwards")
        target = self.clock.time() + seconds
        for _ in range(1_000_000):  # bounded: a timer that re-arms itself at 0 s would otherwise spin forever
            due = self.clock.next_due()
            if due is None or due > target:
                break
            self.clock.advance_to(due)
            await self.settle()
        else:
            raise HarnessError(f"more than a million timers fell due within {seconds:g} s: a timer loop?")
        self.clock.advance_to(target)
        await self.settle()

    async def command(self, device_id: str, capability: str, command: str, component: str = "main",
                      **args: Any) -> CommandResult:
        """Send a command through the hub, as the HTTP API does: validated against the model and the device
        (a command that does not fit comes back ``rejected``, with ``details`` ``{"field", "reason"}``), routed
        to the adapter's ``execute``, then confirmed when the device reports the expected state, or ``timeout``
        after the hub's 5 s of simulated time (which the harness moves on while it waits)."""
        self._check_running()
        request = Command(device_id, component, capability, command, dict(args), source="test")
        task = asyncio.get_running_loop().create_task(self._execute(request), name=f"harness:{self.name}:command")
        steps = int((COMMAND_TIMEOUT_S + 1.0) / COMMAND_STEP_S) + 1
        try:
            for _ in range(steps):
                await self.settle()
                if task.done():
                    break
                if self.live:
                    await asyncio.sleep(COMMAND_STEP_S)  # real time for the broker's round trip
                    await self.settle()
                    if task.done():
                        break
                await self.advance(COMMAND_STEP_S)
            if not task.done():
                raise HarnessError(f"{request}: the hub gave no result within {COMMAND_TIMEOUT_S + 1:g} s simulated")
            return task.result()
        finally:
            if not task.done():
                task.cancel()

    async def _execute(self, command: Command) -> CommandResult:
        try:
            return await self.hub.execute(command, timeout_s=COMMAND_TIMEOUT_S)
        except CommandValidationError as err:
            return CommandResult("rejected", err.message, details={"field": err.field, "reason": str(err.reason)})

    # ------------------------------------------------------------------------------------------- internals

    def _check_running(self) -> None:
        if self._state != "running":
            raise HarnessError(f"the harness of adapter {self.name} is {self._state}, not running")

    def _rejected(self, event: InputRejected) -> None:
        self.rejections.append(Problem(event.t, event.source, event.message))

    def _task_failed(self, error: BaseException) -> None:
        self.failures.append(error)
        self._unraised.append(error)

    def _adapter_published(self, message: Published) -> None:
        self.published.append(message)
        if self._memory is not None:
            # After the adapter's own step, as from a broker: never re-entering the code that published.
            if any(topic_matches(f, message.topic) for f, _ in self._responders):
                asyncio.get_running_loop().call_soon(self._reply_to, message.topic, message.payload)
        elif any(topic_matches(f, message.topic) for f, _ in self._responders):
            self._awaiting_reply[(message.topic, message.payload)] += 1

    def _reply_to(self, topic: str, payload: bytes) -> None:
        if self._state != "running":
            return
        for topic_filter, responder in list(self._responders):
            if topic_matches(topic_filter, topic):
                self._answer(responder, topic, payload)

    def _answer(self, responder: Responder, topic: str, payload: bytes) -> None:
        replies = responder(topic, payload) or ()
        for reply in replies:
            self._replies += 1
            if self._replies > MAX_REPLIES:
                raise HarnessError(f"simulated devices sent more than {MAX_REPLIES} replies: a responder loop?")
            parts: tuple[Any, ...] = tuple(reply)
            reply_topic, reply_payload = str(parts[0]), payload_bytes(parts[1])
            retain = bool(parts[2]) if len(parts) > 2 else False
            if self._memory is not None:
                self._memory.deliver(reply_topic, reply_payload, retain)
            elif self._session is not None:
                self._session.publish(reply_topic, reply_payload, 0, retain)

    def _arrived(self, topic: str, payload: bytes, retain: bool) -> None:
        self._arrivals[(topic, payload)] += 1

    async def _publish_live(self, topic: str, payload: bytes, retain: bool) -> None:
        key = (topic, payload)
        before = self._arrivals[key]
        self._session.publish(topic, payload, 0, retain)
        deadline = time.monotonic() + LIVE_DELIVERY_TIMEOUT_S
        while self._arrivals[key] <= before:
            if time.monotonic() > deadline:
                raise HarnessError(f"{topic}: the message did not come back from the broker within "
                                   f"{LIVE_DELIVERY_TIMEOUT_S:g} s")
            await asyncio.sleep(0.005)


def _default_name(adapter_class: type[Any]) -> str:
    name = getattr(adapter_class, "name", None)
    if isinstance(name, str) and name:
        return name
    package = adapter_class.__module__.split(".")[0]
    return package.removeprefix("hearth_") or package
