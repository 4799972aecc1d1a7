"""A plugin's worker process: ``python -m gateway.isolation.worker --fd N --memory-limit-mb M``.

Started by :class:`gateway.isolation.proxy.ProcessAdapter`, never by hand. It limits its own address space before
the plugin is loaded (``RLIMIT_AS``, soft = hard, so the plugin cannot raise it), then reads the ``init`` message
on the socket it inherited (fd N), loads the plugin (an entry point's name in ``hearth.adapters``, or
``module:Class``), and runs it with an :class:`gateway.sdk.AdapterContext` whose every method goes over that
socket. The plugin's code is unchanged: it imports the same SDK.

Exit codes the gateway reads (:data:`EXIT_MEMORY`: the limit was reached); any other is a crash.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Coroutine, Iterable
from typing import Any, NoReturn

from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.isolation import _wire as wire
from gateway.model import capabilities, register_capability, registry_generation
from gateway.model.types import Command, CommandResult, Device, DeviceEventUpdate, DeviceInfo, Update
from gateway.sdk import MessageCallback, Unsubscribe, validate_topic_filter

#: The worker reached its memory limit (a MemoryError anywhere in it): the gateway says "memory limit N MB
#: reached" and restarts it with back-off.
EXIT_MEMORY = wire.EXIT_MEMORY
#: The gateway's socket closed (the gateway went away): nothing left to do.
EXIT_ORPHANED = 0
#: The init message was missing or wrong, or the plugin could not be loaded (said in the ``start_failed`` reply).
EXIT_BAD_START = 3

# Held from the start and let go on a MemoryError, so that there is room to say so before exiting.
_reserve: bytearray | None = None


def _out_of_memory(where: str) -> NoReturn:
    """The limit was reached: say so on stderr (which the gateway logs) and exit at once with EXIT_MEMORY.
    Nothing else is attempted: with the address space full, anything may fail."""
    global _reserve
    _reserve = None
    with contextlib.suppress(OSError):
        os.write(2, f"hearth worker: memory limit reached ({where})\n".encode())
    os._exit(EXIT_MEMORY)


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGKILL to this process when the gateway's process ends, even when the plugin
    blocks the worker's loop (and so never reads the socket's end)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux, or no libc to call: the socket's EOF still ends it
        pass


def _limit_memory(limit_mb: int) -> None:
    """Limit this process's address space (what it has mapped already, the interpreter and the gateway's
    modules, counts too); soft = hard, so the plugin cannot raise it again."""
    limit = limit_mb * 1024 * 1024
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.isolation.worker")
    parser.add_argument("--fd", type=int, required=True, help="the inherited socket's file descriptor")
    parser.add_argument("--memory-limit-mb", type=int, required=True)
    args = parser.parse_args(argv)
    _limit_memory(args.memory_limit_mb)
    _die_with_parent()
    global _reserve
    _reserve = bytearray(256 * 1024)
    try:
        return asyncio.run(_Worker(args.fd, args.memory_limit_mb).run())
    except MemoryError:
        _out_of_memory("main")


log = logging.getLogger("hearth.isolation.worker")

# How long the plugin's stop() may take before the worker exits all the same (the gateway gives the whole stop
# STOP_GRACE_S in gateway.isolation.proxy, and kills the worker after it).
PLUGIN_STOP_TIMEOUT_S = 3.0


class _Link:
    """The worker's end of the socket: ``send`` queues a line and never blocks (a gateway that does not read,
    which should not happen, costs dropped messages past MAX_PENDING_BYTES, not memory)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self.dropped = 0
        self._generation = registry_generation()

    def send(self, message: dict[str, Any]) -> None:
        if self._generation != registry_generation():
            # The plugin registered a capability (at import or in start): the gateway's hub must know it before
            # it takes the values that use it, so it goes first.
            self._generation = registry_generation()
            specs = [wire.capability_to_wire(s) for n, s in capabilities().items() if "." in n]
            self._write(wire.encode({"op": "capabilities", "specs": specs}))
        self._write(wire.encode(message))

    def _write(self, line: bytes) -> None:
        if len(line) > wire.MAX_LINE_BYTES:
            # The gateway would refuse it as malformed: the plugin hears it here, where it can say what it was.
            raise ValueError(f"a message of {len(line)} bytes is more than process mode carries "
                             f"({wire.MAX_LINE_BYTES} bytes)")
        if self._writer.is_closing():
            return
        if self._writer.transport.get_write_buffer_size() > wire.MAX_PENDING_BYTES:
            self.dropped += 1
            return
        self._writer.write(line)


class _RemoteStorage:
    """The adapter's storage: a copy the gateway sent at start answers reads at once; writes go to the gateway's
    store (which only this adapter writes, so the copy stays true)."""

    def __init__(self, link: _Link, items: Iterable[tuple[str, Any]]) -> None:
        self._link = link
        self._data = dict(items)

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        # As the SDK promises: a value JSON cannot hold raises here, at once (orjson raises a TypeError).
        line = {"op": "kv_set", "key": str(key), "value": value}
        wire.encode(line)
        # Kept as it comes back from JSON (a tuple as a list), as the gateway's store gives it back.
        self._data[key] = wire.decode(wire.encode({"op": "", "v": value}))["v"]
        self._link.send(line)

    def delete(self, key: str) -> None:
        self._data.pop(key, None)
        self._link.send({"op": "kv_delete", "key": str(key)})

    def items(self) -> Iterable[tuple[str, Any]]:
        return list(self._data.items())


class _RemoteMqtt:
    """The gateway's MQTT session seen from the worker: a subscription is made by the gateway on its one
    session, which forwards the matching messages here; a publish is the gateway's."""

    def __init__(self, worker: _Worker, connected: bool) -> None:
        self._worker = worker
        self._connected = connected
        self._next_id = 0
        self.callbacks: dict[int, tuple[str, MessageCallback]] = {}

    @property
    def connected(self) -> bool:
        return self._connected

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0) -> Unsubscribe:
        validate_topic_filter(topic_filter)  # the same ValueError, raised here, as the session's own
        if qos not in (0, 1, 2):
            raise ValueError(f"MQTT QoS must be 0, 1 or 2, not {qos!r}")
        self._next_id += 1
        sub = self._next_id
        self.callbacks[sub] = (topic_filter, callback)
        self._worker.link.send({"op": "subscribe", "sub": sub, "filter": topic_filter, "qos": qos})

        def unsubscribe() -> None:
            if self.callbacks.pop(sub, None) is not None:
                self._worker.link.send({"op": "unsubscribe", "sub": sub})

        return unsubscribe

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self._worker.link.send({"op": "publish", "topic": topic, "qos": qos, "retain": retain,
                                **wire.payload_fields(payload)})


class _LogForwarder(logging.Handler):
    """The worker's log records, to the gateway's log (under the adapter's logger)."""

    def __init__(self, link: _Link) -> None:
        super().__init__(logging.DEBUG)
        self._link = link

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self._link.send({"op": "log", "level": record.levelno, "logger": record.name,
                             "message": message[: wire.MAX_TEXT * 4]})
        except MemoryError:
            _out_of_memory("log")
        except Exception:
            self.handleError(record)


class _RemoteContext:
    """The plugin's :class:`gateway.sdk.AdapterContext` in the worker. Reads (``device``, ``devices``,
    ``storage.get``) are answered from copies kept here; everything else is a message to the gateway. Device
    state is mirrored by a hub of the worker's own, which checks values exactly as the gateway's does."""

    def __init__(self, worker: _Worker, name: str, config: dict[str, Any], storage: _RemoteStorage,
                 mqtt: _RemoteMqtt | None) -> None:
        self.name = name
        self.config = config
        self.log = logging.getLogger(f"hearth.adapter.{name}")
        self.clock = SystemClock()  # the worker's own real clock (process mode runs in `hearth run` only)
        self.mqtt = mqtt
        self.storage = storage
        self.mdns: Any = None  # not carried over the socket (yet): a plugin in process mode has no mDNS
        self._worker = worker
        self._link = worker.link
        self.hub = Hub(self.clock)
        self.tasks: set[asyncio.Task[Any]] = set()

    def upsert_device(self, info: DeviceInfo) -> Device:
        device = self.hub.upsert_device(info, self.name)
        self._link.send({"op": "upsert", "info": wire.info_to_wire(info)})
        return device

    def remove_device(self, device_id: str) -> None:
        self.hub.devices.pop(device_id, None)
        self._link.send({"op": "remove", "id": device_id})

    def push(self, updates: Iterable[Update]) -> None:
        batch = list(updates)
        if batch:
            self.hub.apply(batch)
            self._link.send({"op": "push", "updates": wire.updates_to_wire(batch)})

    def push_event(self, event: DeviceEventUpdate) -> None:
        self._link.send({"op": "event", "event": wire.event_to_wire(event)})

    def set_available(self, device_id: str, available: bool | None) -> None:
        self.hub.set_available(device_id, available)
        self._link.send({"op": "available", "id": device_id, "available": available})

    def report_bad_input(self, message: str) -> None:
        self._link.send({"op": "bad_input", "message": str(message)})

    def device(self, device_id: str) -> Device | None:
        return self.hub.devices.get(device_id)

    def devices(self) -> list[Device]:
        return list(self.hub.devices.values())

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled():
            return
        err = task.exception()
        if isinstance(err, MemoryError):
            _out_of_memory(f"task {task.get_name()}")
        if err is not None:
            # The gateway restarts the adapter, as it does for a failed task in process.
            self._link.send({"op": "task_failed", "task": task.get_name(), **_error_fields(err)})


def _error_fields(err: BaseException) -> dict[str, str]:
    return {"error_type": type(err).__name__, "error": str(err)[: wire.MAX_TEXT]}


class _Worker:
    def __init__(self, fd: int, memory_limit_mb: int) -> None:
        self.fd = fd
        self.memory_limit_mb = memory_limit_mb
        self.link: _Link
        self.ctx: _RemoteContext | None = None
        self.adapter: Any = None
        self.mqtt: _RemoteMqtt | None = None
        self._stopping = asyncio.Event()
        self._jobs: set[asyncio.Task[Any]] = set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_exception)
        sock = socket.socket(fileno=self.fd)
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=wire.MAX_LINE_BYTES)
        self.link = _Link(writer)
        root = logging.getLogger()
        root.handlers[:] = [_LogForwarder(self.link)]
        try:
            first = wire.decode(await reader.readline())
            if first.get("op") != "init":
                raise wire.WireError("the first message must be init")
            level = first.get("log_level")
            root.setLevel(level if isinstance(level, int) else logging.INFO)
            # The mirror hub's own bad-input lines would repeat the gateway's (which counts and shows them).
            logging.getLogger("hearth.hub").setLevel(logging.ERROR)
            if not await self._start(first):
                await self._drain(writer)
                return EXIT_BAD_START
            for _ in range(1 << 62):  # until stop or EOF
                try:
                    line = await reader.readline()
                except ValueError:  # over the line limit (the gateway does not send those): skipped
                    continue
                if not line:
                    return EXIT_ORPHANED
                self._handle(wire.decode(line))
                if self._stopping.is_set():
                    break
            await self._stop()
            self.link.send({"op": "stopped"})
            await self._drain(writer)
            return 0
        except MemoryError:
            _out_of_memory("worker")
        finally:
            writer.close()

    @staticmethod
    async def _drain(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.drain(), 2.0)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), MemoryError):
            _out_of_memory("event loop")
        loop.default_exception_handler(context)

    async def _start(self, init: dict[str, Any]) -> bool:
        name = wire.text(init, "name")
        try:
            cls = _load(wire.text(init, "target"), name)
            for spec in init.get("capabilities") or []:
                register_capability(wire.capability_from_wire(spec))
            from gateway.supervisor import validate_adapter_config

            config = validate_adapter_config(name, cls, wire.mapping(init, "section"))
            storage = _RemoteStorage(self.link, (tuple(kv) for kv in init.get("storage") or []))
            mqtt_state = init.get("mqtt")
            self.mqtt = _RemoteMqtt(self, bool(mqtt_state.get("connected"))) if isinstance(mqtt_state, dict) else None
            self.ctx = _RemoteContext(self, name, config, storage, self.mqtt)
            self.ctx.hub.restore(wire.device_from_wire(d) for d in init.get("devices") or [])
            self.adapter = cls()
            await self.adapter.start(self.ctx)
        except MemoryError:
            _out_of_memory("start")
        except Exception as err:
            from gateway.errors import AdapterNotReadyError, ConfigError

            kind = "not_ready" if isinstance(err, AdapterNotReadyError) else (
                "config" if isinstance(err, ConfigError) else "error")
            log.debug("start failed", exc_info=True)
            self.link.send({"op": "start_failed", "kind": kind, **_error_fields(err)})
            return False
        self.link.send({"op": "started", "pid": os.getpid()})
        return True

    def _handle(self, message: dict[str, Any]) -> None:
        op = message["op"]
        ctx = self.ctx
        assert ctx is not None
        if op == "message":
            entry = self.mqtt.callbacks.get(wire.integer(message, "sub")) if self.mqtt else None
            if entry is None:
                return  # unsubscribed while the message was on its way
            topic = wire.text(message, "topic")
            try:
                entry[1](topic, wire.payload_of(message), bool(message.get("retain")))
            except MemoryError:
                _out_of_memory(f"a message callback on {topic}")
            except Exception as err:
                # As in process: the message is dropped, the failure counted against the adapter in /healthz.
                self.link.send({"op": "callback_failed", "topic": topic, **_error_fields(err)})
        elif op == "execute":
            self._job(self._execute(wire.integer(message, "id"), wire.command_from_wire(message.get("command"))),
                      "execute")
        elif op == "mqtt_state" and self.mqtt is not None:
            self.mqtt._connected = bool(message.get("connected"))
        elif op == "device":
            device = wire.device_from_wire(message.get("device"))
            mine = ctx.hub.devices.get(device.id)
            if mine is not None:  # what the gateway made of it: the owner's name and area, [areas], tags
                mine.name, mine.area, mine.tags = device.name, device.area, device.tags
        elif op == "device_removed":
            ctx.hub.devices.pop(wire.text(message, "id"), None)
        elif op == "stats":
            self.link.send({"op": "stats_result", "id": wire.integer(message, "id"), **self._stats()})
        elif op == "stop":
            self._stopping.set()

    def _stats(self) -> dict[str, Any]:
        method = getattr(self.adapter, "stats", None)
        if not callable(method):
            return {"stats": None}
        try:
            result = method()
            wire.encode({"op": "", "stats": result})
            return {"stats": result}
        except MemoryError:
            _out_of_memory("stats")
        except Exception as err:
            return {"stats_error": f"stats failed: {type(err).__name__}: {err}"[:500]}

    def _job(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)

    async def _execute(self, request: int, command: Command) -> None:
        try:
            result = await self.adapter.execute(command)
            if not isinstance(result, CommandResult):
                raise TypeError(f"execute returned {type(result).__name__}, not a CommandResult")
            self.link.send({"op": "result", "id": request, "result": wire.result_to_wire(result)})
        except MemoryError:
            _out_of_memory("execute")
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.link.send({"op": "result", "id": request, **_error_fields(err)})

    async def _stop(self) -> None:
        ctx = self.ctx
        if ctx is not None:
            tasks = list(ctx.tasks) + list(self._jobs)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=PLUGIN_STOP_TIMEOUT_S)
        if self.adapter is not None:
            try:
                await asyncio.wait_for(self.adapter.stop(), PLUGIN_STOP_TIMEOUT_S)
            except MemoryError:
                _out_of_memory("stop")
            except Exception:
                log.exception("the adapter failed to stop cleanly")


def _load(target: str, name: str) -> type[Any]:
    """The plugin's class: ``module:Class``, or the name of an entry point in ``hearth.adapters``."""
    if ":" in target:
        import importlib

        module_name, _, qualname = target.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj  # type: ignore[no-any-return]
    from importlib.metadata import entry_points

    from gateway.supervisor import ENTRY_POINT_GROUP

    for ep in entry_points(group=ENTRY_POINT_GROUP, name=target):
        return ep.load()  # type: ignore[no-any-return]
    raise LookupError(f"no entry point {target!r} in {ENTRY_POINT_GROUP} (adapter {name!r})")


if __name__ == "__main__":
    sys.exit(main())
