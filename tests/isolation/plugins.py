"""Plugins that misbehave on purpose, for the out-of-process tests: each one's mistake is what a worker process
must contain (loaded by the worker as ``tests.isolation.plugins:Class``)."""

from __future__ import annotations

import asyncio
import os
import select
import sys
import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from gateway.sdk import (
    AdapterContext,
    AttributeSpec,
    CapabilitySpec,
    CapabilitySupport,
    Command,
    CommandResult,
    DeviceEventUpdate,
    DeviceInfo,
    Unsubscribe,
    Update,
    register_capability,
)

# How long the blocking plugin holds its loop: long against the gateway's loop watchdog (1 s) and the test's bound.
BLOCK_S = 2.0
# The leaking plugin's step: big enough to reach a 96 MB limit in a fraction of a second, small enough that the
# last step before the limit never lands far past it.
LEAK_STEP_BYTES = 4 << 20
# Bound of the leak's loop (the limit stops it long before: 96 MB / 4 MB).
LEAK_MAX_STEPS = 10_000

_SWITCH = {"on_off": CapabilitySupport(frozenset({"on"}), frozenset({"on", "off"}))}


class BlockingAdapter:
    """Its message callback calls ``time.sleep``: it holds its own event loop for BLOCK_S."""

    needs_mqtt: ClassVar[bool] = True

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._unsubscribe: Unsubscribe | None = None
        self._block_s = BLOCK_S

    async def start(self, ctx: AdapterContext) -> None:
        assert ctx.mqtt is not None
        self._ctx = ctx
        ctx.upsert_device(DeviceInfo("blocking:1", "Blocking", "blocking", {"main": dict(_SWITCH)}))
        base = ctx.config.get("base_topic", "blocking")
        self._block_s = float(ctx.config.get("block_s", BLOCK_S))
        self._unsubscribe = ctx.mqtt.subscribe(f"{base}/block", self._on_block)

    def _on_block(self, topic: str, payload: bytes, retain: bool) -> None:
        time.sleep(self._block_s)  # the mistake: a blocking call on the event loop
        assert self._ctx is not None
        self._ctx.push([Update("blocking:1", "main", "on_off", "on", True)])

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("sent")


class LeakingAdapter:
    """A task of its own keeps what it allocates, without bound (until the worker's memory limit)."""

    needs_mqtt: ClassVar[bool] = False

    def __init__(self) -> None:
        self.kept: list[bytearray] = []

    async def start(self, ctx: AdapterContext) -> None:
        ctx.upsert_device(DeviceInfo("leaking:1", "Leaking", "leaking", {"main": dict(_SWITCH)}))
        ctx.create_task(self._leak(), "leak")

    async def _leak(self) -> None:
        for _ in range(LEAK_MAX_STEPS):
            chunk = bytearray(LEAK_STEP_BYTES)
            chunk[::4096] = b"x" * len(chunk[::4096])  # touched: resident, not only reserved
            self.kept.append(chunk)
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self.kept.clear()

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("sent")


class CrashingAdapter:
    """Starts, says something on stderr, and its process dies (as a C extension's crash would end it)."""

    needs_mqtt: ClassVar[bool] = False

    async def start(self, ctx: AdapterContext) -> None:
        ctx.create_task(self._crash(), "crash")

    async def _crash(self) -> None:
        await asyncio.sleep(0.1)
        print("relay board: lost the serial port", file=sys.stderr, flush=True)
        os._exit(17)

    async def stop(self) -> None:
        pass

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("sent")


class HostileAdapter:
    """Writes garbage straight onto its worker's socket (the fd named on the worker's command line), between
    well-formed calls of the SDK: what the gateway must survive and report."""

    needs_mqtt: ClassVar[bool] = False
    GARBAGE: ClassVar[list[bytes]] = [
        b"not json at all\n",
        b'["a list, not an object"]\n',
        b'{"op": "push", "updates": [[1, 2]]}\n',
        b'{"op": "upsert", "info": {"id": 5}}\n',
        b'{"op": "no such op"}\n',
        b'{"op": "log", "level": "loud", "message": 7}\n',
        b'{"op": "subscribe", "sub": 1, "filter": "a/#/b"}\n',
        b"{" + b"x" * (2 << 20) + b"}\n",  # longer than a line may be
    ]

    async def start(self, ctx: AdapterContext) -> None:
        fd = int(sys.argv[sys.argv.index("--fd") + 1])
        for line in self.GARBAGE:
            _write_all(fd, line)
        ctx.upsert_device(DeviceInfo("hostile:1", "Hostile", "hostile", {"main": dict(_SWITCH)}))
        ctx.push([Update("hostile:1", "main", "on_off", "on", True)])

    async def stop(self) -> None:
        pass

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("confirmed", "done", details={"pid": os.getpid()})


def _write_all(fd: int, data: bytes) -> None:
    """All of ``data`` onto the (non-blocking) socket, waiting while it is full; bounded in time."""
    view = memoryview(data)
    deadline = time.monotonic() + 10.0
    while view and time.monotonic() < deadline:
        select.select([], [fd], [], 0.5)
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            continue


PROBE = CapabilitySpec(
    "probe.gauge",
    attributes={"level": AttributeSpec("integer", minimum=0, maximum=10, description="A level")},
    description="A plugin's own capability, registered in start (as hearth-acme does)",
)


class ProbeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_topic: str = "probe"
    greeting: str = "hello"


class ProbeAdapter:
    """Uses every part of its context once, and says what it saw (in its storage and its log)."""

    needs_mqtt: ClassVar[bool] = True
    config_model = ProbeConfig

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._unsubscribes: list[Unsubscribe] = []

    async def start(self, ctx: AdapterContext) -> None:
        assert ctx.mqtt is not None
        self._ctx = ctx
        register_capability(PROBE)
        runs = int(ctx.storage.get("runs", 0)) + 1
        ctx.storage.set("runs", runs)
        ctx.storage.delete("forget me")
        device = ctx.upsert_device(DeviceInfo("probe:1", "Probe", "probe", {"main": {
            "probe.gauge": CapabilitySupport(frozenset({"level"}))}}, suggested_area="attic"))
        ctx.push([Update("probe:1", "main", "probe.gauge", "level", 7)])
        seen = ctx.device("probe:1")
        ctx.log.warning("%s from pid %d: run %d, config %s, device %s in %s at level %s, clock %.0f, %d device(s)",
                        ctx.config["greeting"], os.getpid(), runs, sorted(ctx.config), device.id, device.area,
                        seen.value("main", "probe.gauge", "level") if seen else None, ctx.clock.time(),
                        len(ctx.devices()))
        base = ctx.config["base_topic"]
        self._unsubscribes = [ctx.mqtt.subscribe(f"{base}/raise", self._raise),
                              ctx.mqtt.subscribe(f"{base}/echo", self._echo)]
        ctx.set_available("probe:1", True)
        ctx.push_event(DeviceEventUpdate("probe:1", "main", "button", "pressed", {"button": 1}))

    def _raise(self, topic: str, payload: bytes, retain: bool) -> None:
        raise ValueError(f"cannot read {payload[:20]!r}")

    def _echo(self, topic: str, payload: bytes, retain: bool) -> None:
        assert self._ctx is not None and self._ctx.mqtt is not None
        self._ctx.mqtt.publish(topic + "/back", payload[::-1])

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribes:
            unsubscribe()

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("sent")


class FailingTaskAdapter:
    """A task of its own raises: as in process, the adapter is stopped (its stop() runs) and started again."""

    needs_mqtt: ClassVar[bool] = False

    async def start(self, ctx: AdapterContext) -> None:
        self._ctx = ctx
        ctx.create_task(self._poll(), "poll")

    async def _poll(self) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("the cloud said 503")

    async def stop(self) -> None:
        self._ctx.storage.set("stopped", int(self._ctx.storage.get("stopped", 0)) + 1)

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("sent")
