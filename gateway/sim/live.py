"""The simulated house on a real broker: publishes what :class:`~gateway.sim.model.HouseModel` says as time
passes on the injected clock, and answers ``<name>/set`` like Zigbee2MQTT.

The MQTT client is a plain paho client on **its own network thread** (``loop_start``), not driven from
the event loop like the gateway's session. The simulator stands in for separate devices and bridges:
in ``hearth demo`` it shares the process (and the loop) with the gateway, and a thread keeps its socket
work, its connection handshake and its flow control off the gateway's loop, so that what the gateway
does with a message is not slowed by the simulator's own sending, and a stalled broker cannot stall
the loop through it. The model is only ever touched on the event loop: messages from paho's thread
(``/set`` commands) are handed over with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gateway.clock import Clock
from gateway.sim.house import BASE_TOPIC
from gateway.sim.model import HouseModel, Message

__all__ = ["LiveSimulation", "SimPublisher"]

_log = logging.getLogger("hearth.sim")

# How long connecting to the broker may take before the simulation gives up (loopback: milliseconds).
_CONNECT_TIMEOUT_S = 10.0
# Simulated seconds the runner sleeps at most when nothing is scheduled (the model always has its
# periodic readings, so this is a bound, not a poll).
_MAX_IDLE_S = 60.0


class SimPublisher:
    """A paho client on its own thread: ``publish`` from the loop, ``subscribe`` callbacks run on the loop."""

    def __init__(self, host: str, port: int, *, client_id: str | None = None, username: str | None = None,
                 password: str | None = None) -> None:
        self.host, self.port = host, port
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"hearth-sim-{os.getpid()}",
                                   protocol=MQTTProtocolVersion.MQTTv311)
        if username is not None:
            self._client.username_pw_set(username, password)
        # QoS 1 messages in flight at once: the default 20 throttles a burst (bridge/devices and the
        # first states) to round trips; the broker is on loopback.
        self._client.max_inflight_messages_set(1000)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._connected = threading.Event()
        self._refused: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[str, Callable[[str, bytes], None]] = {}
        self.published = 0

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
        else:
            # After a reconnect too: the broker forgot our subscriptions (clean session).
            for topic in self._handlers:
                client.subscribe(topic, 1)
        self._connected.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # paho's thread: hand over to the loop, which owns the model.
        handler = self._handlers.get(message.topic)
        if handler is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self._loop.call_soon_threadsafe(handler, message.topic, message.payload)

    async def __aenter__(self) -> SimPublisher:
        self._loop = asyncio.get_running_loop()
        # connect() resolves and opens the socket: blocking, so in a thread.
        await asyncio.to_thread(self._client.connect, self.host, self.port, 30)
        self._client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, _CONNECT_TIMEOUT_S):
            await self.__aexit__(None, None, None)
            raise ConnectionError(f"simulator: no CONNACK from {self.host}:{self.port}")
        if self._refused:
            await self.__aexit__(None, None, None)
            raise ConnectionError(f"simulator: the broker refused the connection: {self._refused}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._client.disconnect()
        # loop_stop joins paho's thread: not on the loop.
        await asyncio.to_thread(self._client.loop_stop)

    def subscribe(self, topics: list[str], handler: Callable[[str, bytes], None]) -> None:
        for topic in topics:
            self._handlers[topic] = handler
        for start in range(0, len(topics), 64):
            self._client.subscribe([(t, 1) for t in topics[start:start + 64]])

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 0) -> paho.MQTTMessageInfo:
        self.published += 1
        return self._client.publish(topic, payload, qos=qos, retain=retain)


class LiveSimulation:
    """``async with LiveSimulation(model, clock, publisher):`` runs the house until the block ends."""

    def __init__(self, model: HouseModel, clock: Clock, publisher: SimPublisher) -> None:
        self.model = model
        self.clock = clock
        self.publisher = publisher
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LiveSimulation:
        base = f"{BASE_TOPIC}/"
        names = [d.name for d in self.model.house.zigbee]
        self.publisher.subscribe([f"{base}{name}/set" for name in names] + [f"{base}{name}/get" for name in names],
                                 self._on_request)
        first = self.model.start()
        # The retained announcements at QoS 1: a gateway that connects later still gets them, complete.
        for message in first:
            self.publisher.publish(message.topic, message.payload, retain=message.retain,
                                   qos=1 if message.retain else 0)
        self._task = asyncio.create_task(self._run(), name="sim:house")
        self._task.add_done_callback(_report_crash)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def press_panic(self) -> None:
        self._send(self.model.press_panic(self.clock.time()))

    def _send(self, messages: list[Message]) -> None:
        for message in messages:
            self.publisher.publish(message.topic, message.payload, retain=message.retain)

    def _on_request(self, topic: str, payload: bytes) -> None:
        name, _, verb = topic[len(BASE_TOPIC) + 1:].rpartition("/")
        try:
            if verb == "set":
                data = orjson.loads(payload) if payload else {}
                self._send(self.model.handle_set(name, data, self.clock.time()))
            else:
                self._send(self.model.handle_get(name, self.clock.time()))
        except orjson.JSONDecodeError:
            _log.warning("simulator: %s is not JSON: %r", topic, payload[:100])
        except Exception:  # a bug here must not stop the house
            _log.exception("simulator: failed on %s", topic)

    async def _run(self) -> None:
        model, clock = self.model, self.clock
        while True:
            self._send(model.advance_to(clock.time()))
            due = model.next_due()
            # A /set changes states but never schedules anything sooner, so sleeping until the next
            # event is enough; the cap only bounds a wait if the model ever runs out of events.
            await clock.sleep(min(due - clock.time(), _MAX_IDLE_S) if due is not None else _MAX_IDLE_S)


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("the simulated house stopped on an error", exc_info=task.exception())
