"""The gateway's one shared MQTT session: :class:`MqttSession` (a :class:`gateway.sdk.MqttClient`).

Owns the connection to the broker (TCP or TLS, reconnect with jittered back-off), the gateway's
status topic (birth ``online`` / last will ``offline``, both retained), the table of subscriptions
(made again at the broker after every reconnect) and the dispatch of each incoming message to every
callback whose filter matches.

The client layer is paho-mqtt driven from the asyncio loop through its socket callbacks (the
approach of paho's ``examples/loop_asyncio.py`` and of aiomqtt), with one difference on the read side:
the session reads the socket itself, a whole buffer at a time, and dispatches every QoS 0 PUBLISH (all
device traffic) straight from it (:mod:`gateway.mqtt_wire`); paho gets every other packet and keeps
doing the protocol (CONNACK, SUBACK, QoS 1/2 acknowledgements, keepalive, disconnects). Each message is
handed to the callbacks synchronously: no queue and no task per message. ``bench/mqtt_client.py``
measures this against a bare paho subscriber (about ten times its rate); the ingest path has to keep up
with a busy house. The write side likewise: a QoS 0 PUBLISH (a device's command) is written by the
session itself, on a plain TCP connection and while paho has nothing queued; everything else (QoS 1/2,
the protocol's own packets, TLS and WebSocket connections) is paho's to write. Both write into the one
stream in order: what the socket could not take of ours goes out before paho writes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from gateway.clock import Clock
from gateway.config import MqttSection
from gateway.mqtt_wire import MqttProtocolError, publish_packet, split_packets
from gateway.sdk import MessageCallback, Unsubscribe, topic_matches, validate_topic_filter

__all__ = ["MqttSession", "topic_matches", "validate_topic_filter"]

_log = logging.getLogger("hearth.mqtt")

# Bytes read per "socket readable" wake-up (see _on_readable): a few hundred messages of a busy house
# in one system call, and a bound on how long one wake-up keeps the loop (then the selector again).
_RECV_BYTES = 32768
# paho's keepalive bookkeeping (PINGREQ, CONNACK and PINGRESP time-outs) runs in loop_misc; once a
# second is what paho's own loops do.
_MISC_INTERVAL_S = 1.0
# Blocking part of a connection attempt (DNS, TCP connect, TLS handshake), in the connect thread.
# Long enough for a Pi on a slow Wi-Fi, short enough that shutdown never waits long for it.
_CONNECT_TIMEOUT_S = 10.0
# At shutdown, how long we wait for "offline" and DISCONNECT to be written before closing anyway
# (the broker then publishes the same "offline" as our last will).
_SHUTDOWN_FLUSH_S = 2.0
# QoS >= 1 messages published while disconnected wait for the next connection; bounded, so that a
# broker down for a day cannot eat the Pi's memory. The oldest go first (and are counted as dropped).
_MAX_HELD_PUBLISHES = 1000
# paho's own queue of QoS >= 1 messages beyond the in-flight window, bounded for the same reason.
_MAX_QUEUED_MESSAGES = 10_000
# topic -> callbacks cache. A house has a few thousand topics; a client publishing random topics
# must not grow it without bound, so past this size it starts again from empty.
_MATCH_CACHE_MAX = 50_000
# Filters per SUBSCRIBE packet when subscribing again after a reconnect.
_SUBSCRIBE_BATCH = 64
# One log line per this many seconds for failing callbacks (a broken adapter can fail per message).
_CALLBACK_ERROR_LOG_INTERVAL_S = 10.0
# Back-off exponent cap: min_s * 2**32 is far beyond any reconnect_max_s; avoids float overflow.
_MAX_BACKOFF_EXPONENT = 32

_SUCCESS = MQTTErrorCode.MQTT_ERR_SUCCESS
_EOF = ConnectionResetError("the MQTT broker closed the connection")  # a marker, never raised
_NO_CONN = MQTTErrorCode.MQTT_ERR_NO_CONN


def _validate_topic(topic: str) -> None:
    if not topic or "+" in topic or "#" in topic or "\0" in topic:
        raise ValueError(f"invalid MQTT topic to publish to: {topic!r}")


class _Registration:
    """One ``subscribe`` call: its identity is what its unsubscribe handle removes."""

    __slots__ = ("callback",)

    def __init__(self, callback: MessageCallback) -> None:
        self.callback = callback


class _Subscription:
    """Everything subscribed under one topic filter; the broker sees it once, at the highest QoS asked."""

    __slots__ = ("qos", "registrations")

    def __init__(self, qos: int) -> None:
        self.qos = qos
        self.registrations: list[_Registration] = []


class MqttSession:
    """The gateway's one MQTT connection, shared by every adapter (see :class:`gateway.sdk.MqttClient`).

    ``async with MqttSession(settings, clock, client_id="hearth") as mqtt:`` starts connecting in the
    background (a broker that is down is retried with back-off, it is not an error) and, on exit,
    publishes ``offline`` to the status topic, disconnects and stops its tasks. The status topic
    (``settings.status_topic``) gets a retained ``online`` on every connect and is the last will
    (``offline``, retained); an empty status topic means neither (for tools such as ``hearth capture``).
    Every method is to be called on the event loop; callbacks run on it, one message at a time, and
    must not block.
    """

    def __init__(self, settings: MqttSection, clock: Clock, *, client_id: str) -> None:
        self._settings = settings
        self._clock = clock
        self._client_id = settings.client_id or client_id
        self._random = random.Random()
        self._subscriptions: dict[str, _Subscription] = {}
        self._match_cache: dict[str, tuple[MessageCallback, ...]] = {}
        self._held: deque[tuple[str, bytes | str, int, bool]] = deque()
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        # The blocking connect runs in a thread (see _open_connection); kept so shutdown can wait for it.
        self._connect_call: asyncio.Task[MQTTErrorCode] | None = None
        self._sock: Any = None  # the socket registered with the loop, None while there is none
        self._linger_sock: socket.socket | None = None  # see _linger
        self._connected = False
        self._connected_event = asyncio.Event()
        self._ever_connected = False
        self._connack_seen = False  # in the current connection attempt
        self._lost: asyncio.Future[str] | None = None
        self._refusal: str | None = None
        self._closing = False
        self._messages_received = 0
        self._bad_topics = 0
        # The read path (see _on_readable): an incomplete packet kept for the next read, the packet being
        # handed to paho, a read failure paho is being told about, and topic bytes -> text.
        self._rbuf = b""
        self._handoff = b""
        self._in_paho = False  # paho is handling a packet we handed it (and may be in a callback)
        self._writing_now = False  # _publish_now is writing itself: paho's "register the writer" waits
        # The write path of our own (see _publish_now): whether this connection takes it (plain TCP), and
        # what of our last packet the socket has not taken yet (written before anything of paho's).
        self._own_writes = False
        self._wbuf = b""
        self._read_failure: OSError | None = None
        self._topic_cache: dict[bytes, str | None] = {}
        self._messages_published = 0
        self._publish_dropped = 0
        self._reconnects = 0
        self._callback_errors = 0
        self._callback_errors_logged = 0
        # Which adapter registered a callback (set by the supervisor's per-adapter view of this session), and
        # who hears of its failures: a plugin failing every message shows in /healthz under its own name.
        self.callback_owners: dict[Any, str] = {}
        self.on_callback_error: Callable[[str, str, BaseException], None] | None = None
        self._last_callback_error_log = -math.inf

    # ------------------------------------------------------------------ public API

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def client_id(self) -> str:
        return self._client_id

    async def wait_connected(self, timeout_s: float) -> bool:
        """Wait until the session is connected; False if it was not within ``timeout_s``."""
        if self._connected:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._connected_event.wait()
        except TimeoutError:
            return False
        return True

    def subscribe(self, topic_filter: str, callback: MessageCallback, qos: int = 0) -> Unsubscribe:
        """Deliver messages matching ``topic_filter`` to ``callback``; survives reconnects.

        Works while disconnected too (the filter is sent at the next connection). Subscribing again to
        a filter makes the broker send its retained messages again, so callbacks already registered
        may see a retained message twice (with ``retained=True``).
        """
        validate_topic_filter(topic_filter)
        if qos not in (0, 1, 2):
            raise ValueError(f"MQTT QoS must be 0, 1 or 2, not {qos!r}")
        subscription = self._subscriptions.get(topic_filter)
        if subscription is None:
            subscription = self._subscriptions[topic_filter] = _Subscription(qos)
        subscription.qos = max(subscription.qos, qos)
        registration = _Registration(callback)
        subscription.registrations.append(registration)
        self._match_cache.clear()
        if self._connected and self._client is not None:
            # Also for a filter already subscribed: the new callback gets the retained messages.
            self._client.subscribe(topic_filter, subscription.qos)

        def unsubscribe() -> None:
            self._unsubscribe(topic_filter, registration)

        return unsubscribe

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        """Queue a message; never blocks.

        While disconnected, QoS 0 is dropped (and counted); QoS 1 and 2 wait for the next connection
        (at most the last 1000 of them).
        """
        _validate_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"MQTT QoS must be 0, 1 or 2, not {qos!r}")
        if self._connected:
            self._publish_now(topic, payload, qos, retain)
        elif qos == 0:
            self._publish_dropped += 1
        else:
            # Not handed to paho yet: while a connect thread runs, paho's queues are that thread's.
            if len(self._held) >= _MAX_HELD_PUBLISHES:
                self._held.popleft()
                self._publish_dropped += 1
            self._held.append((topic, payload, qos, retain))

    def stats(self) -> dict[str, int | bool]:
        return {
            "connected": self._connected,
            "messages_received": self._messages_received,
            "messages_published": self._messages_published,
            "publish_dropped": self._publish_dropped,
            "reconnects": self._reconnects,
            "callback_errors": self._callback_errors,
            "bad_topics": self._bad_topics,
            "subscriptions": len(self._subscriptions),
            "held_publishes": len(self._held),
        }

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> MqttSession:
        if self._task is not None:
            raise RuntimeError("an MqttSession can be started only once")
        self._loop = asyncio.get_running_loop()
        # Loading CA certificates reads files: not on the loop.
        context = await asyncio.to_thread(self._ssl_context) if self._settings.tls else None
        self._client = self._build_client(context)
        self._task = asyncio.create_task(self._run(), name=f"mqtt-session:{self._client_id}")
        self._task.add_done_callback(self._report_crash)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task = self._task
        if task is None or self._closing:
            return
        self._closing = True
        try:
            if self._connected and self._client is not None:
                if self._settings.status_topic:
                    self._publish_now(self._settings.status_topic, b"offline", 1, True)
                self._client.disconnect()
                if self._lost is not None:
                    # The write callback sends "offline" and DISCONNECT; paho then closes the socket.
                    await asyncio.wait({self._lost}, timeout=_SHUTDOWN_FLUSH_S)
                await self._linger()
        finally:
            task.cancel()
            await asyncio.wait({task})
            connect_call = self._connect_call
            if connect_call is not None:
                # A connect thread cannot be interrupted; it ends within paho's connect_timeout.
                await asyncio.wait({connect_call}, timeout=_CONNECT_TIMEOUT_S + 1.0)
                if connect_call.done() and not connect_call.cancelled():
                    connect_call.exception()  # retrieved: a failed attempt at shutdown is no news
            self._close_socket()
            if self._linger_sock is not None:  # cancelled before _linger ran
                self._linger_sock.close()
                self._linger_sock = None
            self._connected = False
            self._connected_event.clear()
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def _linger(self) -> None:
        """Read what the broker still sends until it closes, then close our duplicate of the socket.

        paho closes its socket right after writing DISCONNECT. If the broker's last packets (the PUBACK
        for "offline", a message for a subscription) are arriving then, the kernel answers them with a
        reset, which can destroy the DISCONNECT before the broker reads it: the broker then logs an
        unclean disconnect and publishes our will. So _on_socket_close keeps the connection open on a
        duplicate descriptor, and here we wait (briefly) for the broker to close its side first.
        """
        linger, self._linger_sock = self._linger_sock, None
        if linger is None:
            return
        assert self._loop is not None
        try:
            linger.setblocking(False)
            async with asyncio.timeout(_SHUTDOWN_FLUSH_S):
                while await self._loop.sock_recv(linger, 65536):
                    pass
        except (OSError, TimeoutError):
            pass  # reset or slow: nothing more to do for a clean goodbye
        finally:
            linger.close()

    def _report_crash(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _log.error("MQTT session stopped on an error", exc_info=task.exception())

    def _ssl_context(self) -> ssl.SSLContext:
        settings = self._settings
        context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
        if settings.tls_insecure:
            # For a broker with a self-signed certificate and no CA file: encrypted, not authenticated.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _build_client(self, context: ssl.SSLContext | None) -> paho.Client:
        settings = self._settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            clean_session=True,
            # 3.1.1: the embedded broker speaks only that, and we need nothing from v5.
            protocol=MQTTProtocolVersion.MQTTv311,
            # Otherwise paho retries some refused CONNACKs by calling the blocking reconnect() itself.
            reconnect_on_failure=False,
        )
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if context is not None:
            client.tls_set_context(context)
            client.tls_insecure_set(settings.tls_insecure)
        if settings.status_topic:  # empty: a client that is not the gateway (hearth capture) says nothing
            client.will_set(settings.status_topic, b"offline", qos=1, retain=True)
        client.max_queued_messages_set(_MAX_QUEUED_MESSAGES)
        # paho reads only the packets _on_readable hands it (see _to_paho); a private hook of paho 2.x,
        # pinned in pyproject.toml and covered by the session's tests against a real Mosquitto.
        client._sock_recv = self._paho_recv  # type: ignore[method-assign]
        client.connect_timeout = _CONNECT_TIMEOUT_S
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        # Only records where to connect; no I/O. Each attempt is a reconnect() in a thread.
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
        return client

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._maintain_connection(), name="mqtt-connection")
            tasks.create_task(self._run_keepalive(), name="mqtt-keepalive")

    async def _run_keepalive(self) -> None:
        while True:
            # Real time, not the injected clock: the broker's keepalive is wall-clock time, and paho
            # measures it with time.monotonic() whatever clock the gateway runs on.
            await asyncio.sleep(_MISC_INTERVAL_S)
            if self._sock is not None and self._client is not None:
                self._client.loop_misc()

    async def _maintain_connection(self) -> None:
        where = f"{self._settings.host}:{self._settings.port}"
        failures = 0  # attempts in a row that did not reach a CONNACK
        while not self._closing:
            self._lost = asyncio.get_running_loop().create_future()
            self._refusal = None
            self._connack_seen = False
            try:
                await self._open_connection()
            except (OSError, ValueError) as err:  # ssl errors are OSErrors; ValueError: bad host name
                reason = str(err) or type(err).__name__
            else:
                reason = await self._lost
            if self._closing:
                return
            if self._connack_seen:
                failures = 0
                _log.warning("lost the MQTT connection to %s: %s; reconnecting", where, reason)
            else:
                failures += 1
                # Once per outage, not once per attempt: a broker down for a night is one line.
                level = logging.WARNING if failures == 1 else logging.DEBUG
                _log.log(level, "cannot connect to the MQTT broker at %s: %s; retrying with back-off "
                         "(attempt %d)", where, reason, failures)
            await self._clock.sleep(self._backoff_s(failures))

    def _backoff_s(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(max, min * 2**failures)], so that many gateways restarted
        by one power cut do not all knock on the broker in step."""
        settings = self._settings
        ceiling = min(settings.reconnect_max_s,
                      settings.reconnect_min_s * 2 ** min(failures, _MAX_BACKOFF_EXPONENT))
        return self._random.uniform(0.0, ceiling)

    async def _open_connection(self) -> None:
        client = self._client
        loop = self._loop
        assert client is not None and loop is not None
        # paho's reconnect() resolves the name, connects TCP and does the TLS handshake, all blocking
        # (up to connect_timeout), then queues CONNECT. So it runs in a thread (connect_async() alone
        # does no I/O at all), and the loop leaves the client alone until the thread returns: the
        # socket callbacks paho makes from that thread only set TCP_NODELAY, and the socket is
        # registered with the loop here, afterwards. Shielded: if we are cancelled meanwhile, the thread
        # still finishes, and __aexit__ waits for it and closes the socket it made.
        self._connect_call = asyncio.create_task(asyncio.to_thread(client.reconnect), name="mqtt-connect")
        rc = await asyncio.shield(self._connect_call)
        self._connect_call = None
        sock = client.socket()
        if sock is None:
            raise ConnectionError(paho.error_string(rc))
        self._sock = sock
        self._rbuf = b""
        self._wbuf = b""
        # TLS and WebSocket connections are paho's to write: their sockets are not plain ones.
        self._own_writes = type(sock) is socket.socket
        loop.add_reader(sock, self._on_readable)
        if client.want_write():
            loop.add_writer(sock, self._on_writable)
        if rc != _SUCCESS:
            self._close_socket()
            raise ConnectionError(paho.error_string(rc))

    def _close_socket(self) -> None:
        """Close whatever socket paho holds, without the MQTT goodbye (the broker sends our will)."""
        self._connected = False
        self._connected_event.clear()
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock)
            self._loop.remove_writer(self._sock)
            self._sock = None
        self._wbuf = b""
        sock = self._client.socket() if self._client is not None else None
        if sock is not None:
            sock.close()
            self._resolve_lost("connection closed by the gateway")

    def _resolve_lost(self, reason: str) -> None:
        lost = self._lost
        if lost is not None and not lost.done():
            lost.set_result(reason)

    # ------------------------------------------------------------------ loop <-> paho

    def _on_readable(self) -> None:
        # Our own read path (gateway.mqtt_wire): one recv for hundreds of packets, QoS 0 PUBLISH
        # dispatched straight from the buffer; paho gets every other packet (through _paho_recv) and
        # keeps doing the protocol. A recv of _RECV_BYTES is a few hundred messages at most: then
        # the other ready callbacks of the loop run, and the selector brings us back.
        sock = self._sock
        client = self._client
        if sock is None or client is None:
            return
        try:
            data = sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            return
        except ssl.SSLWantWriteError:  # TLS renegotiation: the read goes on once we could write
            assert self._loop is not None
            self._loop.add_writer(sock, self._on_writable)
            return
        except OSError as err:
            self._paho_read_failure(err)
            return
        if not data:
            self._paho_read_failure(None)
            return
        client._last_bytes_received = time.monotonic()  # paho's keepalive bookkeeping
        buf = self._rbuf + data if self._rbuf else data
        try:
            used = split_packets(buf, self._dispatch, self._to_paho, self._topic_cache, self._bad_topic)
        except MqttProtocolError as err:
            _log.error("the MQTT broker sent something that is not MQTT (%s); reconnecting", err)
            self._rbuf = b""
            self._close_socket()
            return
        except Exception:
            # A bug of ours must not leave a half-read stream: drop the connection, reconnect.
            _log.exception("MQTT read failed; reconnecting")
            self._rbuf = b""
            self._close_socket()
            return
        self._rbuf = buf[used:] if self._sock is sock else b""
        if len(self._topic_cache) > _MATCH_CACHE_MAX:
            self._topic_cache.clear()
        # TLS: records already decrypted inside the SSL object do not wake the selector.
        pending = getattr(sock, "pending", None)
        if pending is not None and self._sock is sock and pending():
            assert self._loop is not None
            self._loop.call_soon(self._on_readable_again, sock)

    def _on_readable_again(self, sock: Any) -> None:
        if sock is not None and sock is self._sock:
            self._on_readable()

    def _to_paho(self, packet: bytes) -> None:
        """One whole packet that is not a QoS 0 PUBLISH: paho reads it through _paho_recv and handles it."""
        client = self._client
        if client is None or self._sock is None:
            return
        self._handoff = packet
        self._in_paho = True
        try:
            client.loop_read()
        finally:
            self._handoff = b""
            self._in_paho = False

    def _paho_read_failure(self, error: OSError | None) -> None:
        """The socket failed (or the broker closed it: None): paho reads that and does its disconnect."""
        self._read_failure = error if error is not None else _EOF
        self._rbuf = b""
        self._in_paho = True
        try:
            if self._client is not None:
                self._client.loop_read()
        finally:
            self._read_failure = None
            self._in_paho = False

    def _paho_recv(self, bufsize: int) -> bytes:
        # Installed as paho's _sock_recv: paho reads only what _on_readable hands it.
        failure = self._read_failure
        if failure is not None:
            if failure is _EOF:
                return b""
            raise failure
        data = self._handoff
        if not data:
            raise BlockingIOError
        self._handoff = data[bufsize:]
        return data[:bufsize]

    def _bad_topic(self, raw_topic: bytes) -> None:
        self._messages_received += 1
        self._bad_topics += 1

    def _on_writable(self) -> None:
        client = self._client
        assert client is not None
        if self._wbuf and not self._write_own():
            return  # still more of ours than the socket takes: paho's packets wait behind it
        client.loop_write()
        if self._sock is not None and not client.want_write():
            # paho unregisters through its callback too; this only makes sure we never spin.
            assert self._loop is not None
            self._loop.remove_writer(self._sock)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Runs in the connect thread: touches the socket only, not the loop.
        # TCP_NODELAY: our messages are small and latency-bound (a rule's command answering a
        # sensor); Nagle's algorithm would hold each one back until the previous is acknowledged,
        # which with delayed ACKs adds ~20-40 ms to every round trip.
        with contextlib.suppress(OSError, AttributeError):  # not TCP (a unix socket): nothing to tune
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if sock is not self._sock or self._loop is None:
            return
        if self._closing and self._linger_sock is None:
            # paho closes `sock` when we return; see _linger for why the connection outlives it.
            with contextlib.suppress(OSError, ValueError):
                self._linger_sock = socket.socket(fileno=os.dup(sock.fileno()))
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        self._sock = None
        self._wbuf = b""
        # on_disconnect (which knows the reason) usually comes right after; this is the fallback.
        self._loop.call_soon(self._resolve_lost, "connection closed")

    def _on_socket_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # From the connect thread the socket is not ours yet (_sock is None): _open_connection
        # registers the writer itself once the thread is done.
        if sock is self._sock and self._loop is not None and not self._writing_now:
            self._loop.add_writer(sock, self._on_writable)

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        # Not while _publish_now writes (it registered nothing), nor while a packet of ours waits for the socket.
        if sock is self._sock and self._loop is not None and not self._writing_now and not self._wbuf:
            self._loop.remove_writer(sock)

    # ------------------------------------------------------------------ paho protocol callbacks

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            # paho closes the socket next and on_disconnect follows: the loop retries with back-off.
            self._refusal = f"broker refused the connection: {reason_code}"
            return
        if self._ever_connected:
            self._reconnects += 1
            _log.info("reconnected to the MQTT broker at %s:%d", self._settings.host, self._settings.port)
        else:
            _log.info("connected to the MQTT broker at %s:%d as %s",
                      self._settings.host, self._settings.port, self._client_id)
        self._ever_connected = True
        self._connack_seen = True
        self._connected = True
        self._connected_event.set()
        filters = [(topic_filter, sub.qos) for topic_filter, sub in self._subscriptions.items()]
        for start in range(0, len(filters), _SUBSCRIBE_BATCH):
            client.subscribe(filters[start:start + _SUBSCRIBE_BATCH])
        if self._settings.status_topic:
            self._publish_now(self._settings.status_topic, b"online", 1, True)
        while self._held and self._connected:
            self._publish_now(*self._held.popleft())

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        self._connected = False
        self._connected_event.clear()
        reason = str(reason_code)
        if reason == "Unspecified error":  # paho's name for "the socket closed or failed"
            reason = "connection closed by the broker or the network"
        self._resolve_lost(self._refusal or reason)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        # QoS 1/2 messages (paho acknowledges them); QoS 0 ones come through _dispatch directly.
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers reject these; nothing can subscribe to it anyway
            self._bad_topic(message._topic)
            return
        self._dispatch(topic, message.payload, message.retain)

    def _dispatch(self, topic: str, payload: bytes, retain: bool) -> None:
        self._messages_received += 1
        callbacks = self._match_cache.get(topic)
        if callbacks is None:
            callbacks = self._match(topic)
        for callback in callbacks:
            try:
                callback(topic, payload, retain)
            except Exception:
                self._callback_failed(callback, topic)

    # ------------------------------------------------------------------ helpers

    def _match(self, topic: str) -> tuple[MessageCallback, ...]:
        cache = self._match_cache
        if len(cache) >= _MATCH_CACHE_MAX:
            cache.clear()
        callbacks = tuple(
            registration.callback
            for topic_filter, subscription in self._subscriptions.items()
            if topic_matches(topic_filter, topic)
            for registration in subscription.registrations
        )
        cache[topic] = callbacks
        return callbacks

    def _unsubscribe(self, topic_filter: str, registration: _Registration) -> None:
        subscription = self._subscriptions.get(topic_filter)
        if subscription is None or registration not in subscription.registrations:
            return  # already unsubscribed: the handle is idempotent
        subscription.registrations.remove(registration)
        self._match_cache.clear()
        if not subscription.registrations:
            del self._subscriptions[topic_filter]
            if self._connected and self._client is not None:
                self._client.unsubscribe(topic_filter)

    def _publish_now(self, topic: str, payload: bytes | str, qos: int, retain: bool) -> None:
        client = self._client
        assert client is not None
        sock = self._sock
        if qos == 0 and self._own_writes and sock is not None and not self._in_paho and not self._wbuf \
                and not client.want_write():
            # A QoS 0 message (a device's command) with nothing of paho's waiting: written here, as one
            # packet, without paho's publish (a third of a scene's command from trigger to socket, measured
            # with bench/latency.py). What the socket cannot take goes out first when it can (_on_writable).
            packet = publish_packet(topic, payload, retain)
            try:
                sent = sock.send(packet)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = -1  # the connection failed: paho's write below finds out and reconnects
            if sent >= 0:
                if sent < len(packet):
                    self._wbuf = packet[sent:]
                    assert self._loop is not None
                    self._loop.add_writer(sock, self._on_writable)
                self._messages_published += 1
                return
        # Sent now, not on the loop's next turn (the writer callback, which stays for what the socket
        # cannot take at once): a scene's command leaves in the step that ran the scene. paho's own
        # callbacks (CONNACK: the birth message) are left to the writer, as paho does itself; and so is
        # everything while a packet of ours still waits for the socket (the stream's order).
        now = not self._in_paho and sock is not None and not self._wbuf
        # Written at once, the socket is not handed to the loop's writer first and taken back after (two
        # epoll_ctl calls for every command): only what the socket could not take is.
        self._writing_now = now
        try:
            rc = client.publish(topic, payload, qos, retain).rc
            if now and client.want_write():
                client.loop_write()
        finally:
            self._writing_now = False
        if now and self._sock is not None and client.want_write():
            assert self._loop is not None
            self._loop.add_writer(self._sock, self._on_writable)
        # NO_CONN at QoS >= 1 means paho keeps it and sends it after the next CONNACK.
        if rc == _SUCCESS or (qos and rc == _NO_CONN):
            self._messages_published += 1
        else:
            self._publish_dropped += 1

    def _write_own(self) -> bool:
        """Write what the socket did not take of our last packet; whether it is all gone."""
        sock = self._sock
        if sock is None:
            self._wbuf = b""
            return True
        try:
            sent = sock.send(self._wbuf)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as err:
            self._wbuf = b""
            self._paho_read_failure(err)  # paho does the disconnect, as for a failed read
            return True
        self._wbuf = self._wbuf[sent:]
        return not self._wbuf

    def _callback_failed(self, callback: MessageCallback, topic: str) -> None:
        self._callback_errors += 1
        owner = self.callback_owners.get(callback)
        if owner is not None and self.on_callback_error is not None:
            error = sys.exc_info()[1]
            if error is not None:
                self.on_callback_error(owner, topic, error)
        now = self._clock.monotonic()
        if now - self._last_callback_error_log < _CALLBACK_ERROR_LOG_INTERVAL_S:
            return
        not_logged = self._callback_errors - self._callback_errors_logged - 1
        self._last_callback_error_log = now
        self._callback_errors_logged = self._callback_errors
        name = getattr(callback, "__qualname__", repr(callback))
        _log.error("MQTT message callback %s failed on topic %r (%d other failures since the last report)",
                   name, topic, not_logged, exc_info=True)
