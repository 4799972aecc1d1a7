"""The gateway's side of an out-of-process adapter: :class:`ProcessAdapter` stands in for the plugin's class.

``start(ctx)`` spawns ``python -m gateway.isolation.worker`` (its memory limit applied in the worker before the
plugin is loaded), connected by a socketpair, sends it what it needs (its config section, storage, devices) and
waits until the plugin's own ``start`` has returned there. From then on it answers the worker's messages with
the real context (the hub, the store, the one MQTT session), forwards MQTT messages to the worker's
subscriptions and commands to its ``execute``. When the worker dies (a crash, its memory limit, a kill), a task
made with ``ctx.create_task`` fails with :class:`~gateway.isolation.WorkerDiedError` saying how, so that the
supervisor stops this adapter, shows why in ``/healthz`` and starts it again with its usual back-off.

Nothing the worker sends is trusted: a malformed message is counted, reported as the adapter's bad input and
skipped; :data:`MAX_PROTOCOL_ERRORS` of them end the worker.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import sys
from typing import Any, ClassVar

from gateway.errors import AdapterNotReadyError, HearthError
from gateway.isolation import IsolationError, PluginError, WorkerDiedError
from gateway.isolation import _wire as wire
from gateway.logsafe import LogLimiter
from gateway.model import capabilities, register_capability
from gateway.model.types import Command, CommandResult
from gateway.sdk import AdapterContext, Unsubscribe, validate_topic_filter

log = logging.getLogger("hearth.isolation")

# How long the worker has to import the plugin and run its start(): generous, since a Pi imports slowly and a
# plugin's start may wait on a device; a start that takes longer fails (and is retried with back-off).
START_TIMEOUT_S = 60.0
# stop(): the worker is asked to stop (its plugin's stop() has 3 s there), then terminated, then killed; all of it
# stays well within the supervisor's 10 s for an adapter's stop().
STOP_GRACE_S = 4.0
TERMINATE_GRACE_S = 2.0
KILL_WAIT_S = 1.0
# A command the worker has not answered in this long fails (the hub's own deadline is usually shorter).
COMMAND_TIMEOUT_S = 30.0
# How often the proxy looks at the MQTT session's connection (to tell the worker) and asks the plugin's stats().
TICK_S = 1.0
STATS_EVERY_S = 5.0
# A worker that sends this many malformed messages is broken beyond reporting each: it is ended (and restarted).
MAX_PROTOCOL_ERRORS = 100
# Lines of the worker's stdout/stderr kept to say why it died (the last line of a traceback, say); and the most
# characters of one line logged.
OUTPUT_TAIL_LINES = 20
MAX_OUTPUT_LINE = 2000
# readline() does not give the loop up while whole lines are buffered (up to 2 MiB): a worker that floods would
# hold the gateway's loop for as long as handling them takes. Every this many lines, the others get a turn.
YIELD_EVERY_LINES = 64
# Bounds of the read loops: far more lines than a worker's life holds (each loop also ends at EOF).
MAX_LINES = 1 << 62

_SIGNAL_NAMES = {int(s): s.name for s in signal.Signals}
# Loggers a worker may log under as they are; anything else is put under the adapter's own logger.
_LEVELS = (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL)


def make_process_adapter(name: str, plugin: type[Any], section: dict[str, Any], memory_limit_mb: int) -> type[Any]:
    """A :class:`ProcessAdapter` class for ``plugin`` (the supervisor makes instances with no arguments)."""
    attrs = {
        "plugin": plugin,
        "plugin_name": name,
        "section": dict(section),
        "memory_limit_mb": memory_limit_mb,
        "needs_mqtt": bool(getattr(plugin, "needs_mqtt", False)),
        "target": _target_of(name, plugin),
    }
    return type(f"Process{getattr(plugin, '__name__', 'Adapter')}", (ProcessAdapter,), attrs)


def _target_of(name: str, plugin: type[Any]) -> str:
    """What the worker loads: the entry point's name when ``plugin`` is what it names, else ``module:Class``."""
    value = f"{plugin.__module__}:{plugin.__qualname__}"
    from importlib.metadata import entry_points

    from gateway.supervisor import ENTRY_POINT_GROUP

    for ep in entry_points(group=ENTRY_POINT_GROUP, name=name):
        if ep.value.replace(" ", "") == value:
            return name
    return value


class ProcessAdapter:
    """An adapter whose plugin runs in a worker process (see the module's docstring)."""

    plugin: ClassVar[type[Any]]
    plugin_name: ClassVar[str]
    section: ClassVar[dict[str, Any]]
    memory_limit_mb: ClassVar[int]
    needs_mqtt: ClassVar[bool] = False
    target: ClassVar[str]

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._own_tasks: set[asyncio.Task[Any]] = set()
        self._reader_task: asyncio.Task[Any] | None = None
        self._started: asyncio.Future[None] | None = None
        # Set once: the worker died, or the plugin's task failed; the watch task raises it.
        self._failed: asyncio.Future[BaseException] | None = None
        self._stopping = False
        self._requests: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_request = 0
        self._subscriptions: dict[int, Unsubscribe] = {}
        self._output_tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        self._plugin_stats: dict[str, Any] | None = None
        self._mqtt_connected: bool | None = None
        self.messages_in = 0
        self.messages_out = 0
        self.dropped = 0
        self.protocol_errors = 0
        self.last_protocol_error: str | None = None
        self._limiter = LogLimiter(log, burst=10, window_s=60.0)
        self.too_large = 0
        self._output_limiter: LogLimiter | None = None

    # ------------------------------------------------------------------------------------------ lifecycle

    async def start(self, ctx: AdapterContext) -> None:
        self._ctx = ctx
        loop = asyncio.get_running_loop()
        self._started = loop.create_future()
        self._failed = loop.create_future()
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # The worker sees the gateway's import path (a plugin loaded as module:Class, a test's fixtures).
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            # One malloc arena (as the gateway's own tune_malloc): otherwise each thread of the plugin reserves
            # 64 MB of address space, which counts against its limit though it is never used.
            env.setdefault("MALLOC_ARENA_MAX", "1")
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.isolation.worker", "--fd", str(child_end.fileno()),
                "--memory-limit-mb", str(self.memory_limit_mb),
                pass_fds=(child_end.fileno(),), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
                # Its own session: a Ctrl-C at the gateway's terminal reaches the gateway, which stops it in order.
                start_new_session=True,
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        reader, self._writer = await asyncio.open_unix_connection(sock=parent_end, limit=wire.MAX_LINE_BYTES)
        self._reader_task = self._task(self._read(reader), "read")
        self._task(self._read_output(), "output")
        self._task(self._wait_exit(), "exit")
        mqtt = ctx.mqtt
        self._mqtt_connected = mqtt.connected if mqtt is not None else None
        self._send({
            "op": "init",
            "name": ctx.name,
            "target": self.target,
            "section": self.section,
            "log_level": ctx.log.getEffectiveLevel(),
            "storage": [[k, v] for k, v in ctx.storage.items()],
            "devices": [wire.device_to_wire(d) for d in ctx.devices()],
            "capabilities": [wire.capability_to_wire(s) for n, s in capabilities().items() if "." in n],
            "mqtt": {"connected": self._mqtt_connected} if mqtt is not None else None,
        })
        waiting: list[asyncio.Future[Any]] = [self._started, self._failed]
        done, _ = await asyncio.wait(waiting, timeout=START_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        if self._started in done:
            self._started.result()  # raises what the plugin's start raised
        elif self._failed in done:
            raise self._failed.result()
        else:
            raise IsolationError(f"the worker did not start within {START_TIMEOUT_S:.0f} s")
        ctx.create_task(self._watch(), "worker")
        log.info("adapter %s runs in worker process %d (memory limit %d MB)", ctx.name, self._process.pid,
                 self.memory_limit_mb)

    async def stop(self) -> None:
        self._stopping = True
        process = self._process
        try:
            if process is not None and process.returncode is None:
                self._send({"op": "stop"})
                if not await self._exited(STOP_GRACE_S):
                    log.warning("adapter %s: its worker %d did not stop within %.0f s; terminating it",
                                self.plugin_name, process.pid, STOP_GRACE_S)
                    process.terminate()
                    if not await self._exited(TERMINATE_GRACE_S):
                        process.kill()
                        await self._exited(KILL_WAIT_S)
        finally:
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()  # our own child, by its handle (cancelled while stopping: still ended)
            for unsubscribe in self._subscriptions.values():
                unsubscribe()
            self._subscriptions.clear()
            self._answer_pending("the adapter was stopped")
            tasks = list(self._own_tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=KILL_WAIT_S)
            if self._writer is not None:
                self._writer.close()

    async def _exited(self, timeout_s: float) -> bool:
        assert self._process is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._process.wait()), timeout_s)
        except TimeoutError:
            return False
        return True

    async def execute(self, command: Command) -> CommandResult:
        failed = self._failed
        if failed is None or failed.done() or self._stopping:
            return CommandResult("failed", f"the {self.plugin_name} adapter's worker is not running")
        self._next_request += 1
        request = self._next_request
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[request] = future
        try:
            if not self._send({"op": "execute", "id": request, "command": wire.command_to_wire(command)}):
                return CommandResult("failed", f"the {self.plugin_name} adapter's worker is not keeping up")
            try:
                # A worker that dies meanwhile answers "failed" with why (see _wait_exit).
                reply = await asyncio.wait_for(future, COMMAND_TIMEOUT_S)
            except TimeoutError:
                return CommandResult("failed", f"the {self.plugin_name} adapter's worker did not answer within "
                                               f"{COMMAND_TIMEOUT_S:.0f} s")
        finally:
            self._requests.pop(request, None)
        if "error" in reply:
            # As in process: what the plugin's execute raised is raised here, for the hub to deal with.
            raise PluginError(str(reply["error"])[: wire.MAX_TEXT], str(reply.get("error_type") or ""))
        return wire.result_from_wire(reply.get("result"))

    def stats(self) -> dict[str, Any]:
        """The plugin's own stats() (as last fetched from the worker, at most STATS_EVERY_S old), and
        ``process``: the worker's pid, memory and the traffic with it."""
        out = dict(self._plugin_stats or {})
        process = self._process
        own: dict[str, Any] = {
            "isolation": "process",
            "pid": process.pid if process is not None else None,
            "memory_limit_mb": self.memory_limit_mb,
            "rss_mb": _rss_mb(process.pid) if process is not None and process.returncode is None else None,
            "messages_in": self.messages_in,
            "messages_out": self.messages_out,
            "dropped": self.dropped,
            "protocol_errors": self.protocol_errors,
        }
        if self.too_large:
            own["too_large"] = self.too_large
        if self.last_protocol_error:
            own["last_protocol_error"] = self.last_protocol_error
        out["process"] = own
        if self.dropped:
            dropped = dict(out.get("dropped") or {}) if isinstance(out.get("dropped"), dict) else {}
            by_reason = dict(dropped.get("by_reason") or {})
            for reason, count in (("worker_backlog", self.dropped - self.too_large),
                                  ("too_large_for_worker", self.too_large)):
                if count:
                    by_reason[reason] = int(by_reason.get(reason, 0) or 0) + count
            out["dropped"] = {**dropped, "by_reason": by_reason}
        return out

    # ------------------------------------------------------------------------------------------ tasks

    def _task(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.plugin_name}:worker-{name}")
        self._own_tasks.add(task)
        task.add_done_callback(self._own_tasks.discard)
        return task

    async def _watch(self) -> None:
        """The task the supervisor watches (made with ctx.create_task): it fails with why the worker ended; and
        meanwhile tells the worker about the MQTT connection and fetches the plugin's stats()."""
        assert self._failed is not None and self._ctx is not None
        since_stats = STATS_EVERY_S
        for _ in range(MAX_LINES):
            try:
                error = await asyncio.wait_for(asyncio.shield(self._failed), TICK_S)
            except TimeoutError:
                mqtt = self._ctx.mqtt
                if mqtt is not None and mqtt.connected != self._mqtt_connected:
                    self._mqtt_connected = mqtt.connected
                    self._send({"op": "mqtt_state", "connected": self._mqtt_connected})
                since_stats += TICK_S
                if since_stats >= STATS_EVERY_S and hasattr(self.plugin, "stats"):
                    since_stats = 0.0
                    self._task(self._fetch_stats(), "stats")
                continue
            raise error

    async def _fetch_stats(self) -> None:
        self._next_request += 1
        request = self._next_request
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._requests[request] = future
        try:
            if self._send({"op": "stats", "id": request}):
                reply = await asyncio.wait_for(future, STATS_EVERY_S)
                stats = reply.get("stats")
                self._plugin_stats = stats if isinstance(stats, dict) else (
                    {"stats_error": str(reply["stats_error"])[:500]} if "stats_error" in reply else None)
        except TimeoutError:
            pass  # a worker busy (or blocked) in the plugin: the last stats stay
        finally:
            self._requests.pop(request, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        for _ in range(MAX_LINES):
            try:
                line = await reader.readline()
            except ValueError:  # longer than MAX_LINE_BYTES: the buffer was dropped, the rest reads as garbage
                self._protocol_error(f"a message longer than {wire.MAX_LINE_BYTES} bytes")
                continue
            except (ConnectionError, OSError):
                return
            if not line:
                return
            self.messages_in += 1
            if self.messages_in % YIELD_EVERY_LINES == 0:
                await asyncio.sleep(0)
            try:
                self._dispatch(wire.decode(line))
            except wire.WireError as err:
                self._protocol_error(str(err))
            except HearthError as err:  # the hub refused what a message asked (a conflicting capability)
                self._protocol_error(f"{type(err).__name__}: {err}")
            except Exception as err:  # never let a worker's message take the gateway's loop down
                log.debug("adapter %s: a message from its worker failed", self.plugin_name, exc_info=True)
                self._protocol_error(f"{type(err).__name__}: {err}")

    async def _read_output(self) -> None:
        """The worker's stdout and stderr (a plugin's print, a traceback, faulthandler): logged, and the last
        lines kept to say why it died."""
        process = self._process
        assert process is not None and process.stdout is not None and self._ctx is not None
        for _ in range(MAX_LINES):
            try:
                line = await process.stdout.readline()
            except ValueError:  # a line over the stream's 64 KiB limit: its start was dropped
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()[:MAX_OUTPUT_LINE]
            if text:
                self._output_tail.append(text)
                if self._output_limiter is None:
                    # A plugin that prints in a loop must not fill the gateway's log (or its SD card).
                    self._output_limiter = LogLimiter(self._ctx.log, burst=50, window_s=60.0)
                self._output_limiter.log(logging.WARNING, "worker output: %s", text)

    async def _wait_exit(self) -> None:
        process = self._process
        assert process is not None and self._failed is not None
        code = await process.wait()
        if self._reader_task is not None:
            # The last lines it sent (a start_failed, a task_failed) come first; the socket's EOF ends the reader
            # (unless a child of the plugin holds the socket open: then not longer than this).
            await asyncio.wait([self._reader_task], timeout=1.0)
        reason = self._reason(code)
        error = WorkerDiedError(reason, exit_code=code, memory_limit_reached=code == wire.EXIT_MEMORY)
        self._fail_start(error)
        if not self._stopping:
            log.error("adapter %s: %s", self.plugin_name, reason)
        if not self._failed.done():
            self._failed.set_result(error)
        self._answer_pending(f"its worker died: {reason}")

    def _answer_pending(self, why: str) -> None:
        """Commands (and stats requests) still waiting for the worker: answered "failed", saying why."""
        for future in self._requests.values():
            if not future.done():
                future.set_result({"result": {"status": "failed", "message": f"the {self.plugin_name} adapter: {why}"}})

    def _reason(self, code: int) -> str:
        if code == wire.EXIT_MEMORY:
            return f"memory limit {self.memory_limit_mb} MB reached (its worker process ended)"
        tail = next((line for line in reversed(self._output_tail) if not line.startswith(" ")), None)
        said = f"; its last output: {tail[:300]}" if tail else ""
        if code < 0:
            name = _SIGNAL_NAMES.get(-code, str(-code))
            who = " (by the gateway)" if self._stopping else (
                " (by someone else, or the kernel's out-of-memory killer)" if -code == signal.SIGKILL else "")
            return f"the worker process was killed by {name}{who}{said}"
        if self._stopping:
            return f"the worker process exited with code {code}"
        return f"the worker process exited with code {code}{said}"

    # ------------------------------------------------------------------------------------------ messages

    def _send(self, message: dict[str, Any]) -> bool:
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        if writer.transport.get_write_buffer_size() > wire.MAX_PENDING_BYTES:
            # The worker is not reading (blocked in the plugin's code): drop rather than hold without bound.
            self.dropped += 1
            return False
        line = wire.encode(message)
        if len(line) > wire.MAX_LINE_BYTES:
            # An MQTT payload over the line limit: the worker would refuse the line; dropped and counted here.
            self.too_large += 1
            self.dropped += 1
            return False
        writer.write(line)
        self.messages_out += 1
        return True

    def _protocol_error(self, problem: str) -> None:
        self.protocol_errors += 1
        self.last_protocol_error = problem[:300]
        self._limiter.log(logging.WARNING, "adapter %s: a malformed message from its worker: %s",
                          self.plugin_name, problem[:300])
        if self._ctx is not None:
            self._ctx.report_bad_input(f"{self.plugin_name} worker: malformed message: {problem[:300]}")
        if self.protocol_errors == MAX_PROTOCOL_ERRORS and self._process is not None:
            log.error("adapter %s: %d malformed messages from its worker: ending it", self.plugin_name,
                      MAX_PROTOCOL_ERRORS)
            if self._failed is not None and not self._failed.done():
                self._failed.set_result(IsolationError(f"its worker sent {MAX_PROTOCOL_ERRORS} malformed messages "
                                                       f"(the last: {self.last_protocol_error})"))

    def _dispatch(self, message: dict[str, Any]) -> None:
        ctx = self._ctx
        assert ctx is not None
        op = message["op"]
        if op == "push":
            ctx.push(wire.updates_from_wire(message.get("updates")))
        elif op == "upsert":
            device = ctx.upsert_device(wire.info_from_wire(message.get("info")))
            # What the gateway made of it (the owner's name and area, [areas], tags), for the worker's copy.
            self._send({"op": "device", "device": wire.device_to_wire(device)})
        elif op == "publish":
            if ctx.mqtt is None:
                raise wire.WireError("publish without an MQTT session")
            qos = message.get("qos", 0)
            if qos not in (0, 1, 2):
                raise wire.WireError("'qos' must be 0, 1 or 2")
            ctx.mqtt.publish(wire.text(message, "topic"), wire.payload_of(message), qos, bool(message.get("retain")))
        elif op == "subscribe":
            self._subscribe(wire.integer(message, "sub"), wire.text(message, "filter"), message.get("qos", 0))
        elif op == "unsubscribe":
            unsubscribe = self._subscriptions.pop(wire.integer(message, "sub"), None)
            if unsubscribe is not None:
                unsubscribe()
        elif op == "available":
            available = message.get("available")
            if available is not None and not isinstance(available, bool):
                raise wire.WireError("'available' must be true, false or null")
            ctx.set_available(wire.text(message, "id"), available)
        elif op == "event":
            ctx.push_event(wire.event_from_wire(message.get("event")))
        elif op == "remove":
            ctx.remove_device(wire.text(message, "id"))
        elif op == "bad_input":
            ctx.report_bad_input(wire.text(message, "message")[: wire.MAX_TEXT])
        elif op == "kv_set":
            ctx.storage.set(wire.text(message, "key"), message.get("value"))
        elif op == "kv_delete":
            ctx.storage.delete(wire.text(message, "key"))
        elif op == "log":
            self._log(message)
        elif op == "capabilities":
            specs = message.get("specs")
            if not isinstance(specs, list):
                raise wire.WireError("'specs' must be a list")
            for spec in specs:
                register_capability(wire.capability_from_wire(spec))
        elif op in ("result", "stats_result"):
            future = self._requests.get(wire.integer(message, "id"))
            if future is not None and not future.done():
                future.set_result(message)
        elif op == "callback_failed":
            self._callback_failed(message)
        elif op == "task_failed":
            error = PluginError(str(message.get("error", ""))[: wire.MAX_TEXT], str(message.get("error_type", "")))
            if self._failed is not None and not self._failed.done():
                self._failed.set_result(error)
        elif op == "started":
            if self._started is not None and not self._started.done():
                self._started.set_result(None)
        elif op == "start_failed":
            self._start_failed(message)
        elif op == "stopped":
            pass
        else:
            raise wire.WireError(f"unknown op {op[:40]!r}")

    def _subscribe(self, sub: int, topic_filter: str, qos: Any) -> None:
        ctx = self._ctx
        assert ctx is not None
        if ctx.mqtt is None:
            raise wire.WireError("subscribe without an MQTT session")
        if sub in self._subscriptions:
            raise wire.WireError(f"subscription {sub} exists already")
        try:
            validate_topic_filter(topic_filter)
        except ValueError as err:
            raise wire.WireError(str(err)) from err
        if qos not in (0, 1, 2):
            raise wire.WireError("'qos' must be 0, 1 or 2")

        def forward(topic: str, payload: bytes, retained: bool) -> None:
            self._send({"op": "message", "sub": sub, "topic": topic, "retain": retained,
                        **wire.payload_fields(payload)})

        self._subscriptions[sub] = ctx.mqtt.subscribe(topic_filter, forward, qos)

    def _log(self, message: dict[str, Any]) -> None:
        said = message.get("level")
        level = min(_LEVELS, key=lambda known: abs(known - said)) if isinstance(said, int) else logging.INFO
        name = str(message.get("logger") or "")
        own = f"hearth.adapter.{self.plugin_name}"
        if name != own and not name.startswith(own + "."):
            name = f"{own}.{name}" if name and name != "root" else own
        logging.getLogger(name[:200]).log(level, "%s", wire.text(message, "message")[: wire.MAX_TEXT * 4])

    def _callback_failed(self, message: dict[str, Any]) -> None:
        ctx = self._ctx
        assert ctx is not None
        topic = wire.text(message, "topic")
        error = PluginError(str(message.get("error", ""))[: wire.MAX_TEXT], str(message.get("error_type", "")))
        # Counted against the adapter in /healthz as in process (the session's hook is the supervisor's).
        report = getattr(ctx.mqtt, "on_callback_error", None) if ctx.mqtt is not None else None
        if callable(report):
            report(self.plugin_name, topic, error)
        else:
            ctx.report_bad_input(f"{self.plugin_name}: message on {topic[:200]!r} failed: {error}")

    def _start_failed(self, message: dict[str, Any]) -> None:
        if self._started is None or self._started.done():
            return
        kind = message.get("kind")
        text = str(message.get("error", ""))[: wire.MAX_TEXT]
        error: BaseException
        if kind == "not_ready":
            error = AdapterNotReadyError(text)
        else:
            error = PluginError(text, str(message.get("error_type", "")))
        self._fail_start(error)

    def _fail_start(self, error: BaseException) -> None:
        if self._started is not None and not self._started.done():
            self._started.set_exception(error)
            self._started.exception()  # marked as seen: start() may have been cancelled meanwhile


def _rss_mb(pid: int) -> float | None:
    """The worker's resident memory, from /proc (Linux); None elsewhere or when it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576, 1)
