"""gateway.mqtt.MqttSession against a real Mosquitto (started by the fixtures), plus the pure matcher."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.clock import SystemClock
from gateway.config import MqttSection
from gateway.mqtt import MqttSession, topic_matches, validate_topic_filter
from tests.broker import Mosquitto

pytestmark = pytest.mark.mqtt

Message = tuple[str, bytes, bool]


def make_session(port: int, **overrides: object) -> MqttSession:
    # Short back-off so that reconnect tests take a fraction of a second.
    values: dict[str, object] = {
        "host": "127.0.0.1", "port": port, "reconnect_min_s": 0.05, "reconnect_max_s": 0.2,
        "keepalive_s": 5, "status_topic": f"hearth-test/{uuid.uuid4().hex[:8]}/status",
    }
    values.update(overrides)
    return MqttSession(MqttSection.model_validate(values), SystemClock(), client_id=f"test-{uuid.uuid4().hex[:8]}")


def collector() -> tuple[list[Message], Callable[[str, bytes, bool], None]]:
    received: list[Message] = []

    def callback(topic: str, payload: bytes, retained: bool) -> None:
        received.append((topic, payload, retained))

    return received, callback


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition") -> None:
    """Poll: the state comes from callbacks and from the observer's thread, which signal nothing."""
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}") from None


class Observer:
    """A plain paho client on its own thread: how the rest of the house sees the session."""

    def __init__(self, broker: Mosquitto, topic_filter: str, qos: int = 1) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"observer-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.subscribe(topic_filter, qos=qos)
        self.client.loop_start()
        if not self._subscribed.wait(5):
            raise TimeoutError("observer not subscribed")

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload, bool(message.retain)))

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def open_observer(broker: Mosquitto, topic_filter: str, qos: int = 1) -> Observer:
    # paho's connect blocks (briefly, on loopback): not on the loop the session runs on.
    return await asyncio.to_thread(Observer, broker, topic_filter, qos)


# ------------------------------------------------------------------ pure: topic filters


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a/", True),  # '+' matches an empty level
        ("+/b", "/b", True),
        ("a/+/c", "a/x/c", True),
        ("a/+/c", "a/x/d", False),
        ("a/#", "a", True),  # '#' includes the parent level
        ("a/#", "a/b/c/d", True),
        ("a/#", "ab", False),
        ("#", "anything/at/all", True),
        ("+", "a", True),
        ("+", "a/b", False),
        ("+/+", "a/b", True),
        ("#", "$SYS/broker/uptime", False),  # $-topics are not matched by a leading wildcard
        ("+/broker/uptime", "$SYS/broker/uptime", False),
        ("$SYS/#", "$SYS/broker/uptime", True),
        ("$SYS/+/uptime", "$SYS/broker/uptime", True),
        ("a/b", "a/b/", False),
        ("zigbee2mqtt/+", "zigbee2mqtt/bridge/state", False),
    ],
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "a/b#", "a+/b", "a/+b", "a\0b"])
def test_invalid_topic_filters_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        validate_topic_filter(bad)


def test_subscribe_and_publish_validate_their_arguments() -> None:
    session = make_session(1883)
    with pytest.raises(ValueError):
        session.subscribe("a/#/b", lambda *args: None)
    with pytest.raises(ValueError):
        session.subscribe("a", lambda *args: None, qos=3)
    with pytest.raises(ValueError):
        session.publish("a/+", b"x")


def test_backoff_grows_with_full_jitter_up_to_the_maximum() -> None:
    session = make_session(1883, reconnect_min_s=0.5, reconnect_max_s=30.0)
    for failures, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (10, 30.0), (10_000, 30.0)]:
        delays = [session._backoff_s(failures) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # jittered over the whole range, not a constant


# ------------------------------------------------------------------ against Mosquitto


async def test_round_trip_with_wildcards(mosquitto_session: Mosquitto) -> None:
    root = f"rt-{uuid.uuid4().hex[:6]}"
    async with make_session(mosquitto_session.port) as session:
        assert await session.wait_connected(5)
        plus, on_plus = collector()
        hash_all, on_hash = collector()
        exact, on_exact = collector()
        unsubscribe_plus = session.subscribe(f"{root}/+/temp", on_plus)
        session.subscribe(f"{root}/#", on_hash)
        session.subscribe(f"{root}/kitchen/temp", on_exact, qos=1)

        # Our own publishes go out after our SUBSCRIBEs on the same connection: no race with the broker.
        session.publish(f"{root}/kitchen/temp", b'{"t": 21.5}')
        session.publish(f"{root}/a/b/temp", "text payload")
        session.publish(root, b"", qos=1)
        await eventually(lambda: len(hash_all) == 3, what="three messages under #")
        assert plus == [(f"{root}/kitchen/temp", b'{"t": 21.5}', False)]
        assert exact == plus
        assert [m[0] for m in hash_all] == [f"{root}/kitchen/temp", f"{root}/a/b/temp", root]
        assert hash_all[1][1] == b"text payload"

        unsubscribe_plus()
        unsubscribe_plus()  # idempotent
        session.publish(f"{root}/hall/temp", b"19")
        await eventually(lambda: len(hash_all) == 4)
        assert len(plus) == 1
        stats = session.stats()
        assert stats["messages_received"] >= 4 and stats["messages_published"] >= 4
        assert stats["callback_errors"] == 0 and stats["publish_dropped"] == 0
    assert not session.connected


async def test_birth_retained_will_on_abrupt_loss_and_offline_on_clean_exit(mosquitto_session: Mosquitto) -> None:
    session = make_session(mosquitto_session.port)
    status = session._settings.status_topic
    async with session:
        assert await session.wait_connected(5)
        observer = await open_observer(mosquitto_session, status)
        # Subscribed after the birth: it arrives as the retained message.
        await eventually(lambda: (status, b"online", True) in observer.snapshot(), what="retained online")

        # The network fails under the session (no DISCONNECT): the broker publishes our will...
        session._client.socket().shutdown(socket.SHUT_RDWR)
        await eventually(lambda: (status, b"offline", False) in observer.snapshot(), what="will")
        # ...and the session comes back and says so.
        await eventually(lambda: observer.snapshot()[-1] == (status, b"online", False), what="online again")
        await eventually(lambda: session.connected)
        assert session.stats()["reconnects"] == 1
    try:
        await eventually(lambda: observer.snapshot()[-1] == (status, b"offline", False), what="clean offline")
    finally:
        await asyncio.to_thread(observer.close)
    late = await open_observer(mosquitto_session, status)
    try:
        await eventually(lambda: late.snapshot() == [(status, b"offline", True)], what="retained offline")
    finally:
        await asyncio.to_thread(late.close)


async def test_broker_restart_reconnects_resubscribes_and_logs_the_loss_once(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hearth.mqtt")
    async with make_session(mosquitto.port) as session:
        assert await session.wait_connected(5)
        received, callback = collector()
        session.subscribe("house/+/state", callback)
        session.publish("house/lamp/state", b"on")
        await eventually(lambda: len(received) == 1)

        # Down long enough for several failed attempts (back-off 0.05..0.2 s).
        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: not session.connected)
        await asyncio.sleep(0.6)
        session.subscribe("house/added/while/down", callback)  # subscribing while disconnected
        session.publish("house/lamp/state", b"lost")  # QoS 0 while disconnected: dropped, counted
        session.publish("house/added/while/down", b"kept", qos=1)  # held until the next connection
        assert session.stats()["publish_dropped"] == 1
        await asyncio.to_thread(mosquitto.start)

        assert await session.wait_connected(5)
        await eventually(lambda: (("house/added/while/down", b"kept", False)) in received, what="held QoS 1")
        session.publish("house/lamp/state", b"off")
        await eventually(lambda: ("house/lamp/state", b"off", False) in received, what="re-subscribed")
        # And from another client too: the subscription is at the broker, not only in our table.
        observer = await open_observer(mosquitto, "unused/#")
        try:
            observer.client.publish("house/door/state", b"open")
            await eventually(lambda: ("house/door/state", b"open", False) in received, what="from outside")
        finally:
            await asyncio.to_thread(observer.close)
        assert session.stats()["reconnects"] == 1
        assert ("house/lamp/state", b"lost", False) not in received

    warnings = [r.getMessage() for r in caplog.records if r.name == "hearth.mqtt" and r.levelno >= logging.WARNING]
    assert len([w for w in warnings if w.startswith("lost the MQTT connection")]) == 1, warnings
    assert len([w for w in warnings if w.startswith("cannot connect")]) == 1, warnings


async def test_starts_with_the_broker_down_and_connects_when_it_comes(free_port: int, tmp_path: Path) -> None:
    async with make_session(free_port) as session:
        assert not session.connected
        assert not await session.wait_connected(0.3)
        broker = Mosquitto(tmp_path / "late", port=free_port)
        await asyncio.to_thread(broker.start)
        try:
            assert await session.wait_connected(5)
        finally:
            await asyncio.to_thread(broker.stop)


async def test_exit_while_the_broker_is_down_is_quick_and_clean(free_port: int) -> None:
    session = make_session(free_port)
    async with asyncio.timeout(3):
        async with session:
            await asyncio.sleep(0.2)
    assert session._task is not None and session._task.done()


async def test_a_raising_callback_does_not_stop_the_others(mosquitto_session: Mosquitto) -> None:
    topic = f"rc-{uuid.uuid4().hex[:6]}/x"

    def broken(topic: str, payload: bytes, retained: bool) -> None:
        raise RuntimeError("adapter bug")

    async with make_session(mosquitto_session.port) as session:
        assert await session.wait_connected(5)
        received, good = collector()
        session.subscribe(topic, broken)
        session.subscribe(topic, good)
        for n in range(3):
            session.publish(topic, str(n))
        await eventually(lambda: len(received) == 3)
        assert session.stats()["callback_errors"] == 3
        assert session.connected


async def test_last_unsubscribe_unsubscribes_at_the_broker(mosquitto_session: Mosquitto) -> None:
    root = f"us-{uuid.uuid4().hex[:6]}"
    async with make_session(mosquitto_session.port) as session:
        assert await session.wait_connected(5)
        first, on_first = collector()
        second, on_second = collector()
        sentinel, on_sentinel = collector()
        unsubscribe_first = session.subscribe(f"{root}/x", on_first)
        unsubscribe_second = session.subscribe(f"{root}/x", on_second)
        session.subscribe(f"{root}/sentinel", on_sentinel)

        unsubscribe_first()
        session.publish(f"{root}/x", b"1")
        await eventually(lambda: len(second) == 1)
        assert first == []

        unsubscribe_second()
        before = session.stats()["messages_received"]
        session.publish(f"{root}/x", b"2")
        session.publish(f"{root}/sentinel", b"s")
        await eventually(lambda: len(sentinel) == 1)
        # The broker no longer sends root/x at all: only the sentinel came in.
        assert session.stats()["messages_received"] == before + 1
        assert session.stats()["subscriptions"] == 1


async def test_tcp_nodelay_is_set(mosquitto_session: Mosquitto) -> None:
    async with make_session(mosquitto_session.port) as session:
        assert await session.wait_connected(5)
        sock = session._client.socket()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_refused_connection_is_retried_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="hearth.mqtt")
    with Mosquitto(tmp_path / "closed", extra_config=["allow_anonymous false"]) as broker:
        async with make_session(broker.port) as session:
            assert not await session.wait_connected(0.8)
    warnings = [r.getMessage() for r in caplog.records if r.name == "hearth.mqtt" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "refused" in warnings[0], warnings
    attempts = [r for r in caplog.records if r.name == "hearth.mqtt" and "cannot connect" in r.getMessage()]
    assert len(attempts) >= 3  # kept trying, quietly after the first


def _self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: cannot make a certificate for the TLS test")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


@pytest.mark.parametrize("verify", ["ca_file", "insecure"])
async def test_tls_round_trip(tmp_path: Path, verify: str) -> None:
    cert, key = _self_signed_certificate(tmp_path)
    tls = {"tls": True, "ca_file": cert} if verify == "ca_file" else {"tls": True, "tls_insecure": True}
    with Mosquitto(tmp_path / "tls", extra_config=[f"certfile {cert}", f"keyfile {key}"]) as broker:
        async with make_session(broker.port, **tls) as session:
            assert await session.wait_connected(5)
            received, callback = collector()
            session.subscribe("tls/#", callback)
            for n in range(200):
                session.publish(f"tls/{n % 7}", b"x" * (n * 50))  # up to ~10 kB: several TLS records
            await eventually(lambda: len(received) == 200)
            assert received[-1] == ("tls/3", b"x" * 9950, False)


async def test_tls_with_an_unknown_certificate_does_not_connect(tmp_path: Path) -> None:
    cert, key = _self_signed_certificate(tmp_path)
    with Mosquitto(tmp_path / "tls", extra_config=[f"certfile {cert}", f"keyfile {key}"]) as broker:
        async with make_session(broker.port, tls=True) as session:  # system CAs do not know it
            assert not await session.wait_connected(0.5)


async def test_an_empty_status_topic_means_no_birth_and_no_will(mosquitto_session: Mosquitto) -> None:
    observer = await open_observer(mosquitto_session, "#")
    try:
        async with make_session(mosquitto_session.port, status_topic="") as session:
            assert await session.wait_connected(5)
            received, callback = collector()
            session.subscribe("quiet-probe", callback)
            session.publish("quiet-probe", b"x")
            await eventually(lambda: len(received) == 1)
            session._client.socket().shutdown(socket.SHUT_RDWR)  # would fire a will, if there were one
            await eventually(lambda: session.stats()["reconnects"] == 1)
        await eventually(lambda: ("quiet-probe", b"x", False) in observer.snapshot())
        await asyncio.sleep(0.2)
        assert [m for m in observer.snapshot() if m[1] in (b"online", b"offline") and not m[2]] == []
    finally:
        await asyncio.to_thread(observer.close)


async def test_exit_with_traffic_in_flight_is_a_clean_disconnect(mosquitto: Mosquitto) -> None:
    session = make_session(mosquitto.port)
    observer = await open_observer(mosquitto, "unused/#")
    stop = threading.Event()

    def stream() -> None:  # messages for the session keep arriving while it leaves
        while not stop.is_set():
            observer.client.publish("busy/stream", b"z" * 200)
            stop.wait(0.0005)

    streamer = threading.Thread(target=stream, name="test-streamer")
    try:
        async with session:
            assert await session.wait_connected(5)
            received, callback = collector()
            session.subscribe("busy/#", callback)
            streamer.start()
            await eventually(lambda: len(received) > 10)
            for n in range(50):  # and PUBACKs for these
                session.publish(f"busy/{n}", b"y" * 100, qos=1)
    finally:
        stop.set()
        if streamer.is_alive():
            await asyncio.to_thread(streamer.join)
        await asyncio.to_thread(observer.close)
    # mosquitto's words for a DISCONNECT it read (an unclean end says "closed its connection" or worse).
    await eventually(lambda: f"Client {session.client_id} disconnected." in mosquitto.log_text(),
                     what=f"a clean disconnect in the broker log:\n{mosquitto.log_text()}")


async def test_a_burst_arrives_whole_and_in_order_with_qos1_and_a_megabyte_among_it(
    mosquitto_session: Mosquitto,
) -> None:
    # The session reads the socket itself (gateway.mqtt_wire) and hands paho only what is not a QoS 0
    # PUBLISH: a burst that fills many reads, QoS 1 messages (acknowledged by paho) and a payload far
    # larger than one read must all come through, whole, the QoS 0 ones in the order they were sent.
    root = f"burst-{uuid.uuid4().hex[:6]}"
    big = b"[" + b"0123456789," * 100_000 + b"0]"  # ~1.1 MB, like a large house's bridge/devices
    sent: list[tuple[str, bytes]] = []
    for n in range(3000):
        sent.append((f"{root}/dev{n % 50}", b'{"n":%d,"pad":"%s"}' % (n, b"x" * (n % 300))))
        if n == 1500:
            sent.append((f"{root}/bridge/devices", big))
    async with make_session(mosquitto_session.port) as session:
        assert await session.wait_connected(5)
        received, callback = collector()
        session.subscribe(f"{root}/#", callback, qos=1)
        await asyncio.sleep(0.2)  # the SUBSCRIBE is answered before the burst starts
        observer = await open_observer(mosquitto_session, "unused/#")
        try:
            def publish_all() -> None:
                for index, (topic, payload) in enumerate(sent):
                    observer.client.publish(topic, payload, qos=1 if index % 97 == 0 else 0)
            await asyncio.to_thread(publish_all)
            await eventually(lambda: len(received) >= len(sent), timeout_s=20, what=f"{len(sent)} messages")
        finally:
            await asyncio.to_thread(observer.close)
        # MQTT orders messages of one QoS; the publishing client holds QoS 1 ones in its in-flight window.
        got = [(t, p) for t, p, _ in received]
        qos1 = {sent[index] for index in range(0, len(sent), 97)}
        assert [m for m in got if m not in qos1] == [m for m in sent if m not in qos1]
        assert sorted(got) == sorted(sent)
        stats = session.stats()
        assert stats["callback_errors"] == 0 and stats["reconnects"] == 0 and stats["bad_topics"] == 0


async def test_a_quiet_connection_stays_up_past_its_keepalive(mosquitto_session: Mosquitto) -> None:
    # paho still runs the keepalive (PINGREQ/PINGRESP go through it): no drop, no reconnect.
    async with make_session(mosquitto_session.port, keepalive_s=5) as session:
        assert await session.wait_connected(5)
        received, callback = collector()
        session.subscribe("quiet/#", callback)
        await asyncio.sleep(8)
        session.publish("quiet/x", b"1")
        await eventually(lambda: len(received) == 1)
        assert session.stats()["reconnects"] == 0 and session.connected


async def test_what_the_socket_cannot_take_at_once_is_written_when_it_can(mosquitto: Mosquitto) -> None:
    # A publish is written in the step that made it, without handing the socket to the loop's writer first;
    # what the socket cannot take (a broker that stopped reading) must still go out, whole and in order, once
    # it reads again.
    import os
    import signal

    root = f"full-{uuid.uuid4().hex[:6]}"
    chunk = b"x" * 100_000
    async with make_session(mosquitto.port, keepalive_s=60) as session:
        assert await session.wait_connected(5)
        observer = await open_observer(mosquitto, f"{root}/#")
        assert mosquitto.pid is not None
        os.kill(mosquitto.pid, signal.SIGSTOP)
        try:
            for n in range(300):  # 30 MB: far more than the socket buffers hold
                session.publish(f"{root}/{n}", b"%d:" % n + chunk)
            await asyncio.sleep(0.3)
            busy = session.stats()
        finally:
            os.kill(mosquitto.pid, signal.SIGCONT)
        try:
            await eventually(lambda: len(observer.snapshot()) >= 300, timeout_s=30, what="300 large messages")
        finally:
            await asyncio.to_thread(observer.close)
        assert [t for t, _, _ in observer.snapshot()] == [f"{root}/{n}" for n in range(300)]
        assert all(p == b"%d:" % n + chunk for n, (_, p, _) in enumerate(observer.snapshot()))
        assert busy["publish_dropped"] == 0


async def test_commands_the_session_writes_itself_keep_their_order_among_paho_s(mosquitto: Mosquitto) -> None:
    # A QoS 0 message (a command) is written by the session, a QoS 1 one by paho: one stream, in the order
    # they were published (an observer at QoS 0 gets them as the broker read them), a retained one kept.
    root = f"order-{uuid.uuid4().hex[:6]}"
    async with make_session(mosquitto.port) as session:
        assert await session.wait_connected(5)
        observer = await open_observer(mosquitto, f"{root}/#", qos=0)
        try:
            for n in range(300):  # a QoS 1 message in every 20: fewer than paho keeps in flight
                session.publish(f"{root}/{n}", b'{"state":"ON","n":%d}' % n, qos=1 if n % 20 == 0 else 0)
            session.publish(f"{root}/kept", "on", retain=True)
            await eventually(lambda: len(observer.snapshot()) >= 301, what="301 messages")
        finally:
            await asyncio.to_thread(observer.close)
        assert [t for t, _, _ in observer.snapshot()] == [f"{root}/{n}" for n in range(300)] + [f"{root}/kept"]
        assert observer.snapshot()[7][1] == b'{"state":"ON","n":7}'
        late = await open_observer(mosquitto, f"{root}/kept")
        try:
            await eventually(lambda: bool(late.snapshot()), what="the retained message")
        finally:
            await asyncio.to_thread(late.close)
        assert late.snapshot() == [(f"{root}/kept", b"on", True)]
        assert session.stats()["messages_published"] >= 301 and session.stats()["publish_dropped"] == 0
