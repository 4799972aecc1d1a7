"""Runs adapters and keeps them apart: one that fails is stopped, reported, and started again with
exponential back-off while the others keep running.

Adapters are found through the entry-point group ``hearth.adapters``; the built-in ones are registered
there exactly like a third-party plugin.

An adapter may also have a ``stats()`` method (optional, see :meth:`Supervisor.adapter_stats`): what it
returns is shown in ``/healthz`` under its name, and its drop counters are exported by ``/metrics``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from gateway.clock import Clock, SystemClock
from gateway.errors import AdapterNotReadyError, ConfigError, ConfigProblem, HearthError
from gateway.hub import Hub
from gateway.isolation import process_adapter_class, split_isolation
from gateway.logsafe import LogLimiter
from gateway.model.types import Command, CommandResult, Device, DeviceEventUpdate, DeviceInfo, Update
from gateway.sdk import NOTES_LOGGER, Adapter, KeyValueStore, MessageCallback, MqttClient, Unsubscribe

log = logging.getLogger("hearth.supervisor")

ENTRY_POINT_GROUP = "hearth.adapters"
# Back-off after a failure: 1 s doubling to 5 min, so a broken plugin costs little but recovers
# soon after whatever it needs (a USB stick, a broker) comes back.
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 300.0
# An adapter that ran this long before failing is considered to have recovered: back-off restarts.
STABLE_AFTER_S = 60.0
# A start taking longer than this is logged: it delays nothing else, but the owner should know.
SLOW_START_WARN_S = 10.0
# An adapter's stats() runs on the event loop, inside a /healthz or /metrics request: one that takes longer
# than this is slow; its result is used, and then shown again (with its age) instead of calling it for
# STATS_SLOW_BACKOFF_S, so that a slow stats() costs one slow request a minute, not every request.
STATS_SLOW_S = 0.25
STATS_SLOW_BACKOFF_S = 60.0

# "not_ready": the adapter said what it needs is not there (no Bluetooth adapter, say) and is retried
# quietly; "backoff": it failed and waits to be restarted.
AdapterState = Literal["starting", "running", "backoff", "not_ready", "stopped", "disabled"]


class AdapterLoadError(HearthError):
    pass


def discover_adapters(enabled: Callable[[str], bool] | None = None) -> dict[str, type[Any]]:
    """Adapter classes registered under ``hearth.adapters``, by entry-point name.

    With ``enabled``, only the adapters it accepts are imported: a disabled adapter's module (and what it
    imports: BLE decoders for ``ble``, say) is never loaded. A plugin that fails to import is logged and left
    out, never allowed to stop the gateway.
    """
    found: dict[str, type[Any]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if enabled is not None and not enabled(ep.name):
            continue
        try:
            cls = ep.load()
        except Exception:
            log.exception("adapter plugin %r (%s) failed to load; it is left out", ep.name, ep.value)
            LOAD_PROBLEMS[ep.name] = f"failed to import {ep.value}"
            continue
        problem = sdk_incompatibility(cls)
        if problem is not None:
            log.error("adapter plugin %r (%s) is left out: %s", ep.name, ep.value, problem)
            LOAD_PROBLEMS[ep.name] = problem
            continue
        LOAD_PROBLEMS.pop(ep.name, None)
        found[ep.name] = cls
    return found


# Plugins found but left out, by entry-point name: why (shown by `hearth config check` and /healthz).
LOAD_PROBLEMS: dict[str, str] = {}


def sdk_incompatibility(cls: Any) -> str | None:
    """Why ``cls`` cannot run on this gateway's SDK (its ``requires_sdk`` specifier does not admit
    :data:`gateway.sdk.SDK_VERSION`), or None when it can (or says nothing)."""
    wanted = getattr(cls, "requires_sdk", None)
    if wanted is None:
        return None
    # Only for a plugin that says what it needs (packaging's import is a hundredth of a replay's start).
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    from gateway.sdk import SDK_VERSION

    if not isinstance(wanted, str):
        return f"requires_sdk must be a version specifier string such as '>=1.0,<2', not {wanted!r}"
    try:
        spec = SpecifierSet(wanted)
    except InvalidSpecifier:
        return f"requires_sdk {wanted!r} is not a version specifier (write it as '>=1.0,<2')"
    if SDK_VERSION not in spec:
        return (f"it needs the Hearth plugin SDK {wanted}, and this gateway has SDK {SDK_VERSION}: "
                "install a version of the plugin made for this SDK (or a gateway that has the SDK it needs)")
    return None


def validate_adapter_config(name: str, cls: type[Any], section: dict[str, Any]) -> dict[str, Any]:
    """Check an adapter's config section against its ``config_model`` (if it declares one). The keys that are
    the supervisor's (``isolation``, ``memory_limit_mb``: :mod:`gateway.isolation`) are checked and taken out
    first, so any adapter accepts them and none sees them."""
    _isolation, section = split_isolation(section)
    model: type[BaseModel] | None = getattr(cls, "config_model", None)
    if model is None:
        return dict(section)
    return model.model_validate(section).model_dump()


def adapter_config_problems(
    source: str, text: str, sections: dict[str, dict[str, Any]], classes: dict[str, type[Any]]
) -> list[ConfigProblem]:
    """Problems in ``[adapters.*]`` sections, located in the file like any other config error."""
    from gateway.config import _describe, _line_of

    problems: list[ConfigProblem] = []
    for name, section in sections.items():
        cls = classes.get(name)
        if cls is None:
            known = ", ".join(sorted(classes)) or "none installed"
            problems.append(
                ConfigProblem(source, _line_of(text, ("adapters", name)), f"adapters.{name}",
                              f"no adapter named {name!r} is installed (installed: {known})")
            )
            continue
        try:
            validated = validate_adapter_config(name, cls, section)
        except ValidationError as err:
            from gateway.suggest import walk_loc

            model = getattr(cls, "config_model", None)
            for e in err.errors():
                loc = ("adapters", name, *e["loc"])
                holder = walk_loc(model, e["loc"])[1] if model is not None else None
                problems.append(ConfigProblem(source, _line_of(text, loc), ".".join(map(str, loc)),
                                              _describe(e, holder, settings_of=name)))
            continue
        # Deeper checks an adapter offers (the files it reads: device definitions), as its start would do.
        check = getattr(cls, "check_config", None)
        if check is None:
            continue
        try:
            found = list(check(validated))
        except Exception as err:  # a plugin's own check must not break `hearth config check`
            found = [ConfigProblem(source, _line_of(text, ("adapters", name)), f"adapters.{name}",
                                   f"the {name} adapter's check_config failed: {type(err).__name__}: {err}")]
        for problem in found:
            if problem.file == "config":  # a key of this section: locate it in the file
                loc = tuple(int(p) if p.isdigit() else p for p in problem.key.split("."))
                problem = ConfigProblem(source, _line_of(text, loc), problem.key, problem.message)
            problems.append(problem)
    return problems


class _ScopedKV:
    """Fallback key-value storage kept in memory (replay, tests)."""

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def items(self) -> Iterable[tuple[str, Any]]:
        return list(self._data.items())


_NO_HTTP: Any = object()


class _AdapterMqtt:
    """One adapter's view of the shared MQTT session: the same session, with its callbacks marked as the
    adapter's (see MqttSession.callback_owners). Nothing is wrapped: a message costs no extra call."""

    __slots__ = ("_name", "_session")

    def __init__(self, session: MqttClient, name: str) -> None:
        self._session = session
        self._name = name

    @property
    def connected(self) -> bool:
        return self._session.connected

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0) -> Unsubscribe:
        owners = getattr(self._session, "callback_owners", None)
        if owners is not None:
            owners[callback] = self._name
        unsubscribe = self._session.subscribe(topic_filter, callback, qos)
        if owners is None:
            return unsubscribe

        def forget() -> None:
            unsubscribe()
            owners.pop(callback, None)

        return forget

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self._session.publish(topic, payload, qos, retain)

    def __getattr__(self, name: str) -> Any:  # anything else a test or a built-in adapter reads
        return getattr(self._session, name)


class AdapterContextImpl:
    """The one object an adapter gets: its way into the hub, its config, logger, clock and storage."""

    def __init__(
        self,
        name: str,
        hub: Hub,
        config: dict[str, Any],
        mqtt: MqttClient | None,
        storage: KeyValueStore,
        on_task_failed: Callable[[BaseException], None],
        *,
        mdns: Any = None,
        http: Any = _NO_HTTP,
        on_note: Callable[[str, str], None] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.log = logging.getLogger(f"hearth.adapter.{name}")
        self._notes_log = logging.getLogger(f"{NOTES_LOGGER}.{name}")
        self._on_note = on_note
        self.clock = hub.clock
        # The shared session, seen through a view that marks the callbacks as this adapter's (a callback that
        # raises is then counted against it in /healthz).
        self.mqtt: MqttClient | None = _AdapterMqtt(mqtt, name) if mqtt is not None else None
        self.storage = storage
        # The shared mDNS service (None: no discovery) and HTTP client session (None: no HTTP at all,
        # as in replay; absent: the adapter opens its own).
        self.mdns = mdns
        if http is not _NO_HTTP:
            self.http = http
        self._hub = hub
        self._on_task_failed = on_task_failed
        self._tasks: set[asyncio.Task[Any]] = set()

    def upsert_device(self, info: DeviceInfo) -> Device:
        return self._hub.upsert_device(info, self.name)

    def remove_device(self, device_id: str) -> None:
        device = self._hub.devices.get(device_id)
        if device is not None and device.adapter == self.name:
            self._hub.remove_device(device_id)

    def push(self, updates: Iterable[Update]) -> None:
        self._hub.apply(updates)

    def note(self, text: str) -> None:
        """What the adapter understood and deliberately left unused (see :func:`gateway.sdk.apply_decoded`):
        to ``on_note`` (replay's list) or, without one, debug in the gateway's log under NOTES_LOGGER."""
        if self._on_note is not None:
            self._on_note(self.name, text)
        else:
            self._notes_log.debug("%s", text)

    def push_event(self, event: DeviceEventUpdate) -> None:
        self._hub.emit_event(event)

    def set_available(self, device_id: str, available: bool | None) -> None:
        self._hub.set_available(device_id, available)

    def report_bad_input(self, message: str) -> None:
        self._hub.reject_input(self.name, message)

    def device(self, device_id: str) -> Device | None:
        return self._hub.devices.get(device_id)

    def devices(self) -> list[Device]:
        return [d for d in self._hub.devices.values() if d.adapter == self.name]

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if err is not None:
            self._on_task_failed(err)

    async def cancel_tasks(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()


@dataclass
class AdapterHealth:
    name: str
    state: AdapterState = "stopped"
    restarts: int = 0
    failures: int = 0
    last_error: str | None = None
    retry_in_s: float | None = None
    started_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Messages whose callback raised (each is dropped; the adapter keeps running).
    message_failures: int = 0
    #: Times its code held the event loop past the watchdog's threshold, and the last of them, described.
    loop_blocks: int = 0
    last_loop_block: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "restarts": self.restarts,
            "failures": self.failures,
            "message_failures": self.message_failures,
            "loop_blocks": self.loop_blocks,
            **({"last_loop_block": self.last_loop_block} if self.last_loop_block else {}),
            "last_error": self.last_error,
            **({"retry_in_s": round(self.retry_in_s, 1)} if self.retry_in_s is not None else {}),
        }


class Supervisor:
    def __init__(
        self,
        hub: Hub,
        adapters: dict[str, type[Any]],
        configs: dict[str, dict[str, Any]],
        *,
        mqtt: MqttClient | None,
        storage_for: Callable[[str], KeyValueStore] | None = None,
        rng: random.Random | None = None,
        mdns: Any = None,
        http: Any = _NO_HTTP,
        on_note: Callable[[str, str], None] | None = None,
    ) -> None:
        self.hub = hub
        self._on_note = on_note  # (adapter, text) of each codec note (replay lists them); None: the log
        self.clock: Clock = hub.clock
        self._classes = adapters
        self._configs = configs
        self._mqtt = mqtt
        self._storage_for = storage_for or (lambda _name: _ScopedKV())
        self._rng = rng or random.Random()
        self._mdns = mdns
        self._http = http
        self.health: dict[str, AdapterHealth] = {name: AdapterHealth(name) for name in adapters}
        if mqtt is not None and hasattr(mqtt, "on_callback_error"):
            mqtt.on_callback_error = self._callback_failed
        self._tasks: list[asyncio.Task[None]] = []
        self._task_of: dict[str, asyncio.Task[None]] = {}
        self._block_lines = LogLimiter(log, burst=5, window_s=900.0)
        self._instances: dict[str, Any] = {}
        # name -> (the instance, its last stats() result, clock.monotonic() when taken, when to call it again)
        # for adapters whose stats() was slow
        self._slow_stats: dict[str, tuple[Any, dict[str, Any], float, float]] = {}

    async def __aenter__(self) -> Supervisor:
        loop = asyncio.get_running_loop()
        for name in sorted(self._classes):
            task = loop.create_task(self._keep_running(name), name=f"supervise:{name}")
            self._tasks.append(task)
            self._task_of[name] = task
        return self

    def loop_blocked(self, block: Any, strikes: int = 0) -> None:
        """The loop watchdog saw the event loop held (a :class:`gateway.loopwatch.LoopBlock`): logged with the
        stack, counted against the adapter whose code it was, and with ``strikes`` (> 0) that adapter is
        disabled once it has held the loop that many times. Call it on the loop's thread."""
        # A few a quarter of an hour with their stacks (a flood of messages can hold the loop again and again;
        # the count in /healthz says how often), the rest counted in the next line.
        self._block_lines.log(logging.WARNING, "%s\n%s", block.describe(), block.format_stack())
        health = self.health.get(block.owner) if block.owner else None
        if health is None:
            return
        health.loop_blocks += 1
        health.last_loop_block = block.describe()[:500]
        if strikes and health.loop_blocks >= strikes and health.state != "disabled":
            self.disable(block.owner, f"disabled: its code held the event loop {health.loop_blocks} times "
                                      f"(the last: {health.last_loop_block}); it is tried again at the next start")

    def disable(self, name: str, reason: str) -> None:
        """Stop adapter ``name`` and keep it stopped (shown as disabled with ``reason``) until the next start."""
        health = self.health[name]
        log.error("adapter %s %s", name, reason)

        def mark(_: object = None) -> None:
            health.state = "disabled"
            health.last_error = reason
            health.retry_in_s = None

        mark()
        task = self._task_of.get(name)
        if task is not None and not task.done():
            task.cancel()
            task.add_done_callback(mark)  # after its own "stopped"

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _callback_failed(self, adapter: str, topic: str, error: BaseException) -> None:
        health = self.health.get(adapter)
        if health is None:
            return
        health.message_failures += 1
        health.last_error = f"message on {topic[:200]!r} failed: {type(error).__name__}: {str(error)[:300]}"
        # Also bad input as the hub counts it (replay lists it among its errors); the session logs it.
        self.hub.reject_input(adapter, f"{adapter}: {health.last_error}")

    def health_report(self) -> dict[str, Any]:
        """Each adapter's state, restarts and last error; for a running adapter with a ``stats()`` method, also
        what it returned (``"stats"``), or why not (``"stats_error"``). See :meth:`adapter_stats`."""
        report = {name: h.as_dict() for name, h in sorted(self.health.items())}
        for name, stats in self.adapter_stats().items():
            report[name].update(stats)
        return report

    def adapter_stats(self) -> dict[str, dict[str, Any]]:
        """The optional adapter hook ``stats()``, for every running adapter that has it.

        ``stats()`` is a plain (not ``async``) method that takes no argument and returns a dict that JSON can
        encode: counters and states an owner or a monitoring system may want (it is shown in ``/healthz``,
        which needs no token, so it must hold no secret). It is called on the event loop at each ``/healthz``
        and ``/metrics`` request, so it must be cheap: build the dict from counters kept as things happen.
        One key has a meaning of its own: ``"dropped": {"by_reason": {reason: count}}``, input the adapter
        received and did not apply, by reason, which ``/metrics`` exports as
        ``hearth_adapter_dropped_total{adapter, reason}`` (other keys are shown in ``/healthz`` only).

        Returns, per adapter name, ``{"stats": <its result>}``, or ``{"stats_error": "stats failed: ..."}``
        when it raised or returned something else than a JSON-encodable dict. A stats() slower than
        ``STATS_SLOW_S`` is not called again for ``STATS_SLOW_BACKOFF_S``; meanwhile its last result is shown
        with ``"stats_age_s"``. Nothing an adapter's stats() does breaks ``/healthz``.
        """
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(self._instances):
            adapter = self._instances[name]
            method = getattr(adapter, "stats", None)
            if callable(method):
                out[name] = self._stats_of(name, adapter, method)
        return out

    def _stats_of(self, name: str, adapter: Any, method: Callable[[], Any]) -> dict[str, Any]:
        now = self.clock.monotonic()
        slow = self._slow_stats.get(name)
        if slow is not None:
            instance, result, taken, call_after = slow
            if instance is adapter and now < call_after:
                return {"stats": result, "stats_age_s": round(now - taken, 1)}
            del self._slow_stats[name]
        started = time.perf_counter()  # the call's own duration: the gateway's clock may be simulated
        try:
            result = method()
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()  # never awaited: no "coroutine was never awaited" warning
                raise TypeError("stats() must be a plain method, not async")
            if not isinstance(result, dict):
                raise TypeError(f"stats() returned {type(result).__name__}, not a dict")
            json.dumps(result, allow_nan=False)  # /healthz encodes it the same way: fail here, not there
        except Exception as err:
            log.debug("adapter %s: stats() failed", name, exc_info=True)
            return {"stats_error": f"stats failed: {type(err).__name__}: {err}"[:500]}
        elapsed = time.perf_counter() - started
        if elapsed > STATS_SLOW_S:
            log.warning("adapter %s: stats() took %.2f s (more than %.2f s); it is called again in %.0f s, its "
                        "last result is shown meanwhile", name, elapsed, STATS_SLOW_S, STATS_SLOW_BACKOFF_S)
            self._slow_stats[name] = (adapter, result, now, now + STATS_SLOW_BACKOFF_S)
        return {"stats": result}

    def instance(self, name: str) -> Any:
        return self._instances.get(name)

    async def _keep_running(self, name: str) -> None:
        health = self.health[name]
        cls = self._classes[name]
        backoff = BACKOFF_MIN_S
        if getattr(cls, "needs_mqtt", False) and self._mqtt is None:
            health.state = "disabled"
            health.last_error = "needs MQTT, and [mqtt] is disabled"
            return
        try:
            config = validate_adapter_config(name, cls, self._configs.get(name, {}))
            # isolation = "process": a proxy that runs the plugin in a worker process takes its place.
            cls = process_adapter_class(name, cls, self._configs.get(name, {}),
                                        real_time=isinstance(self.clock, SystemClock))
        except ValidationError as err:
            health.state = "disabled"
            health.last_error = f"invalid [adapters.{name}] config: {err.errors()[0]['msg']}"
            log.error("adapter %s not started: %s", name, health.last_error)
            return
        storage = self._storage_for(name)
        while True:
            failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

            def on_task_failed(err: BaseException, failed: asyncio.Future[BaseException] = failed) -> None:
                if not failed.done():
                    failed.set_result(err)

            ctx = AdapterContextImpl(name, self.hub, config, self._mqtt, storage, on_task_failed,
                                     mdns=self._mdns, http=self._http, on_note=self._on_note)
            adapter: Adapter = cls()
            health.state = "starting"
            health.retry_in_s = None
            started = self.clock.monotonic()
            error: BaseException | None = None
            try:
                await adapter.start(ctx)  # type: ignore[arg-type]
                if self.clock.monotonic() - started > SLOW_START_WARN_S:
                    log.warning("adapter %s took %.1f s to start", name, self.clock.monotonic() - started)
                self._instances[name] = adapter
                self.hub.set_command_handler(name, self._command_handler(name, adapter))
                health.state = "running"
                health.started_at = self.clock.monotonic()
                log.info("adapter %s running", name)
                error = await failed
            except asyncio.CancelledError:
                await self._stop(name, adapter, ctx)
                health.state = "stopped"
                raise
            except AdapterNotReadyError as err:
                error = err
            except Exception as err:
                error = err
            await self._stop(name, adapter, ctx)
            health.failures += 1
            health.last_error = f"{type(error).__name__}: {error}"
            ran_for = self.clock.monotonic() - (health.started_at or started)
            if health.state == "running" and ran_for >= STABLE_AFTER_S:
                backoff = BACKOFF_MIN_S
            if isinstance(error, AdapterNotReadyError):
                log.warning("adapter %s not ready: %s; retrying in %.0f s", name, error, backoff)
            elif isinstance(error, ConfigError):
                # A mistake in a file the adapter reads (a definition): file:line: key: message says it all.
                health.last_error = str(error)
                log.error("adapter %s cannot start, a file it reads has mistakes (fix it; retrying in %.0f s):\n%s",
                          name, backoff, error)
            else:
                log.error("adapter %s failed: %s; restarting in %.0f s", name, health.last_error, backoff,
                          exc_info=error)
            # Full jitter keeps several failing adapters (or gateways) from retrying in step.
            delay = backoff * (0.5 + self._rng.random() / 2)
            health.state = "not_ready" if isinstance(error, AdapterNotReadyError) else "backoff"
            health.retry_in_s = delay
            await self.clock.sleep(delay)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            health.restarts += 1

    async def _stop(self, name: str, adapter: Any, ctx: AdapterContextImpl) -> None:
        self.hub.set_command_handler(name, None)
        self._instances.pop(name, None)
        self._slow_stats.pop(name, None)
        await ctx.cancel_tasks()
        try:
            await asyncio.wait_for(adapter.stop(), 10.0)
        except Exception:
            log.exception("adapter %s failed to stop cleanly", name)

    def _command_handler(self, name: str, adapter: Any) -> Callable[[Command], Coroutine[Any, Any, CommandResult]]:
        mqtt = self._mqtt if getattr(adapter, "needs_mqtt", False) else None

        async def handle(command: Command) -> CommandResult:
            if mqtt is not None and not mqtt.connected:
                # Said now, not "sent" and then dropped (QoS 0) or carried out whenever the broker is back
                # (QoS 1, held): a command is for now, and the caller can try again.
                return CommandResult("unavailable", "not sent: the gateway is not connected to the MQTT broker "
                                     "(it reconnects by itself; try again then)", details={"transport": "down"})
            return await adapter.execute(command)

        return handle
