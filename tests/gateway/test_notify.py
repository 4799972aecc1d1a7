"""gateway.scenes.notify: delivery with retries to a real aiohttp webhook receiver on loopback, to MQTT
(a fake session and a real Mosquitto), and the config models. Back-off runs on a SimulatedClock."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from gateway.clock import SimulatedClock, SystemClock
from gateway.config import MqttSection
from gateway.mqtt import MqttSession
from gateway.scenes.notify import (
    AckTokens,
    DeliveryResult,
    LogTarget,
    MqttTarget,
    Notification,
    Notifier,
    NotifySettings,
    NotifyTargets,
    RecordingNotifier,
    WebhookTarget,
)
from tests.broker import Mosquitto

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
SECRET_HEADER = "Bearer s3cret-header-value"
SECRET_PASSWORD = "pw-s3cret"
SECRET_QUERY = "q-s3cret"
SECRETS = (SECRET_HEADER, "s3cret-header-value", SECRET_PASSWORD, SECRET_QUERY)

PUBLIC_URL = "https://hearth.example.org"
ACK_URL = re.compile(r"^https://hearth\.example\.org/api/ack/([A-Za-z0-9_-]{43})$")

targets_adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(NotifyTargets)


def notification(id: str = "n1", **overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "id": id, "t": T0, "title": "Front door", "message": "opened at night", "severity": "warning",
        "scene": "night-door", "alert_id": "a-7", "data": {"device": "zigbee2mqtt:0x01", "open": True},
    }  # fmt: skip
    values.update(overrides)
    return Notification(**values)


async def until(
    predicate: Callable[[], bool], clock: SimulatedClock | None = None, timeout_s: float = 5.0, what: str = "it"
) -> None:
    """Wait (real time, for loopback I/O) until ``predicate``; fire the simulated clock's timers as they fall due."""
    try:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                if clock is not None and (due := clock.next_due()) is not None:
                    clock.advance_to(due)
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}") from None


class Receiver:
    """A webhook receiver on 127.0.0.1: answers with ``statuses`` in turn (the last one repeats)."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.statuses: list[int] = [200]
        self.hang = False
        self.requests: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.port = 0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({
            "method": request.method, "path": request.path, "query": request.query_string,
            "headers": dict(request.headers), "body": await request.read(), "t": self.clock.time(),
            "peer": request.transport.get_extra_info("peername") if request.transport else None,
        })  # fmt: skip
        if self.hang:
            await asyncio.wait_for(self.release.wait(), 5)
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        headers = {"Location": "/elsewhere"} if 300 <= status < 400 else None
        return web.Response(status=status, text="nope" if status >= 300 else "ok", headers=headers)


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
async def receiver(clock: SimulatedClock) -> AsyncIterator[Receiver]:
    receiver = Receiver(clock)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    # No access log: it would print the query string (a secret in one test) into caplog.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        receiver.release.set()
        await runner.cleanup()


def webhook(url: str, **overrides: Any) -> WebhookTarget:
    return WebhookTarget.model_validate({"kind": "webhook", "url": url, **overrides})


# ------------------------------------------------------------------ webhooks


async def test_webhook_delivered_with_json_body_and_headers(receiver: Receiver, clock: SimulatedClock) -> None:
    results: list[DeliveryResult] = []
    target = webhook(receiver.url(), headers={"Authorization": SECRET_HEADER, "X-Home": "hearth"})
    async with Notifier({"phone": target}, clock, mqtt=None, on_result=results.append) as notifier:
        notifier.send("phone", notification())
        assert notifier.stats()["pending"] == 1
        await until(lambda: bool(results), clock, what="a result")
        assert notifier.stats() == {
            "delivered": 1, "failed": 0, "unknown_target": 0, "cancelled": 0, "skipped": 0, "retries": 0, "pending": 0,
        }  # fmt: skip
    assert results == [DeliveryResult("phone", "n1", "delivered", 1, None, T0)]
    [request] = receiver.requests
    assert request["method"] == "POST"
    assert request["headers"]["Authorization"] == SECRET_HEADER
    assert request["headers"]["X-Home"] == "hearth"
    assert request["headers"]["Content-Type"] == "application/json"
    assert orjson.loads(request["body"]) == {
        "id": "n1", "t": "2023-11-14T22:13:20.000Z", "title": "Front door", "message": "opened at night",
        "severity": "warning", "scene": "night-door", "alert_id": "a-7",
        "data": {"device": "zigbee2mqtt:0x01", "open": True}, "ack_url": None,  # no [notify] public_url
    }  # fmt: skip


async def test_webhook_put_method(receiver: Receiver, clock: SimulatedClock) -> None:
    results: list[DeliveryResult] = []
    async with Notifier({"w": webhook(receiver.url(), method="PUT")}, clock, mqtt=None, on_result=results.append) as n:
        n.send("w", notification())
        await until(lambda: bool(results), clock)
    assert [r["method"] for r in receiver.requests] == ["PUT"]
    assert results[0].status == "delivered"


async def test_webhook_500_is_retried_after_backoff_on_the_injected_clock(
    receiver: Receiver, clock: SimulatedClock
) -> None:
    receiver.statuses = [500, 503, 200]
    results: list[DeliveryResult] = []
    async with Notifier(
        {"w": webhook(receiver.url())}, clock, mqtt=None, on_result=results.append, backoff_s=(2, 10, 30)
    ) as notifier:
        notifier.send("w", notification())
        await until(lambda: bool(results), clock)
        assert notifier.stats()["retries"] == 2
    # Attempts at T0, then after 2 s and 10 s of *simulated* time.
    assert [r["t"] for r in receiver.requests] == [T0, T0 + 2, T0 + 12]
    assert results == [DeliveryResult("w", "n1", "delivered", 3, None, T0 + 12)]


@pytest.mark.parametrize("status", [500, 503, 408, 429])
async def test_retryable_statuses_are_retried_until_attempts_run_out(
    receiver: Receiver, clock: SimulatedClock, status: int
) -> None:
    receiver.statuses = [status]
    results: list[DeliveryResult] = []
    async with Notifier(
        {"w": webhook(receiver.url())}, clock, mqtt=None, on_result=results.append, attempts=2, backoff_s=(1,)
    ) as notifier:
        notifier.send("w", notification())
        await until(lambda: bool(results), clock)
        assert notifier.stats()["failed"] == 1
    assert len(receiver.requests) == 2
    [result] = results
    assert (result.status, result.attempts) == ("failed", 2)
    assert result.error is not None and str(status) in result.error


@pytest.mark.parametrize("status", [400, 401, 404, 422, 302])
async def test_client_errors_and_redirects_fail_at_once(receiver: Receiver, clock: SimulatedClock, status: int) -> None:
    receiver.statuses = [status, 200]
    results: list[DeliveryResult] = []
    async with Notifier({"w": webhook(receiver.url())}, clock, mqtt=None, on_result=results.append) as notifier:
        notifier.send("w", notification())
        await until(lambda: bool(results), clock)
        await asyncio.sleep(0.05)  # a wrong retry would have been scheduled by now
        assert notifier.stats()["retries"] == 0
    assert len(receiver.requests) == 1  # also: a redirect is not followed
    [result] = results
    assert (result.status, result.attempts) == ("failed", 1)
    assert result.error is not None and str(status) in result.error


async def test_connection_refused_retries_then_fails_and_is_reported(
    clock: SimulatedClock, free_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    results: list[DeliveryResult] = []
    target = webhook(f"http://127.0.0.1:{free_port}/hook")
    async with Notifier(
        {"down": target}, clock, mqtt=None, on_result=results.append, attempts=3, backoff_s=(2, 10)
    ) as notifier:
        notifier.send("down", notification())
        await until(lambda: bool(results), clock)
        assert notifier.stats() == {
            "delivered": 0, "failed": 1, "unknown_target": 0, "cancelled": 0, "skipped": 0, "retries": 2, "pending": 0,
        }  # fmt: skip
    [result] = results
    assert (result.status, result.attempts, result.t) == ("failed", 3, T0 + 12)
    assert result.error is not None and "Connect" in result.error
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "gateway.scenes.notify"]
    assert len(warnings) == 3  # once per attempt
    assert all("'down'" in r.getMessage() for r in warnings)


async def test_timeout_is_retried_and_reported(receiver: Receiver, clock: SimulatedClock) -> None:
    receiver.hang = True
    results: list[DeliveryResult] = []
    async with Notifier(
        {"slow": webhook(receiver.url(), timeout_s=0.2)},
        clock, mqtt=None, on_result=results.append, attempts=2, backoff_s=(1,),
    ) as notifier:  # fmt: skip
        notifier.send("slow", notification())
        await until(lambda: bool(results), clock)
    assert len(receiver.requests) == 2
    [result] = results
    assert (result.status, result.attempts) == ("failed", 2)
    assert result.error == "no response within 0.2 s"


async def test_secrets_never_reach_logs_results_or_repr(
    receiver: Receiver, clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.statuses = [500]
    url = f"http://user:{SECRET_PASSWORD}@127.0.0.1:{receiver.port}/hook?token={SECRET_QUERY}"
    refused = f"http://user:{SECRET_PASSWORD}@127.0.0.1:1/hook?token={SECRET_QUERY}"
    targets = {
        "alarm": webhook(url, headers={"X-Api-Key": SECRET_HEADER}),
        "refused": webhook(refused, headers={"X-Api-Key": SECRET_HEADER}),
    }
    results: list[DeliveryResult] = []
    async with Notifier(targets, clock, mqtt=None, on_result=results.append, attempts=2, backoff_s=(1,)) as notifier:
        notifier.send("alarm", notification("n1"))
        notifier.send("refused", notification("n2"))
        await until(lambda: len(results) == 2, clock)
    # The secrets did go where they belong...
    assert receiver.requests[0]["headers"]["X-Api-Key"] == SECRET_HEADER
    assert receiver.requests[0]["headers"]["Authorization"].startswith("Basic ")  # from user:password@
    assert receiver.requests[0]["query"] == f"token={SECRET_QUERY}"
    # ...and nowhere else.
    assert "alarm" in caplog.text and "HTTP 500" in caplog.text
    shown = caplog.text + repr(results) + repr(targets) + str(targets["alarm"])
    for secret in SECRETS:
        assert secret not in shown
    assert repr(targets["alarm"]).count(f"http://127.0.0.1:{receiver.port}") == 1


async def test_one_http_session_for_all_webhooks(receiver: Receiver, clock: SimulatedClock) -> None:
    results: list[DeliveryResult] = []
    targets = {"a": webhook(receiver.url("/a")), "b": webhook(receiver.url("/b"))}
    async with Notifier(targets, clock, mqtt=None, on_result=results.append) as notifier:
        notifier.send("a", notification("n1"))
        await until(lambda: len(results) == 1, clock)
        notifier.send("b", notification("n2"))
        await until(lambda: len(results) == 2, clock)
    assert [r["path"] for r in receiver.requests] == ["/a", "/b"]
    # Kept alive in one connection pool: the second request came over the same connection.
    assert receiver.requests[0]["peer"] == receiver.requests[1]["peer"]


def test_aiohttp_is_imported_only_when_a_webhook_is_used() -> None:
    code = "import sys, gateway.scenes.notify; assert 'aiohttp' not in sys.modules, 'aiohttp imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# ------------------------------------------------------------------ MQTT


class FakeMqtt:
    """A stand-in MqttClient for unit tests (the real session is tested against Mosquitto below)."""

    def __init__(self, connected: bool = True) -> None:
        self.connected = connected
        self.published: list[tuple[str, bytes | str, int, bool]] = []

    def subscribe(self, topic_filter: str, callback: Any, qos: int = 0) -> Callable[[], None]:
        raise NotImplementedError

    def publish(self, topic: str, payload: bytes | str, qos: int = 0, retain: bool = False) -> None:
        self.published.append((topic, payload, qos, retain))


async def test_mqtt_target_publishes_json_with_qos_and_retain(clock: SimulatedClock) -> None:
    mqtt = FakeMqtt()
    results: list[DeliveryResult] = []
    target = MqttTarget(kind="mqtt", topic="hearth/notify/phone", qos=2, retain=True)
    async with Notifier({"m": target}, clock, mqtt=mqtt, on_result=results.append) as notifier:
        notifier.send("m", notification())
        await until(lambda: bool(results), clock)
    [(topic, payload, qos, retain)] = mqtt.published
    assert (topic, qos, retain) == ("hearth/notify/phone", 2, True)
    assert isinstance(payload, bytes)
    assert orjson.loads(payload)["id"] == "n1" and orjson.loads(payload)["t"] == "2023-11-14T22:13:20.000Z"
    assert results == [DeliveryResult("m", "n1", "delivered", 1, None, T0)]


async def test_mqtt_disconnected_is_retried_until_connected(clock: SimulatedClock) -> None:
    mqtt = FakeMqtt(connected=False)
    results: list[DeliveryResult] = []
    target = MqttTarget(kind="mqtt", topic="n/phone")
    async with Notifier({"m": target}, clock, mqtt=mqtt, on_result=results.append, backoff_s=(5,)) as notifier:
        notifier.send("m", notification())
        await until(lambda: clock.next_due() is not None, what="a back-off")  # attempt 1 failed
        assert mqtt.published == []
        mqtt.connected = True
        await until(lambda: bool(results), clock)
    assert len(mqtt.published) == 1
    assert results == [DeliveryResult("m", "n1", "delivered", 2, None, T0 + 5)]


class ConnectingMqtt(FakeMqtt):
    """A session still connecting (a gateway just started: an escalation found overdue comes first)."""

    def __init__(self) -> None:
        super().__init__(connected=False)
        self.up = asyncio.Event()
        self.waited: list[float] = []

    async def wait_connected(self, timeout_s: float) -> bool:
        self.waited.append(timeout_s)
        await self.up.wait()
        self.connected = True
        return True


async def test_an_mqtt_delivery_waits_for_the_connection_instead_of_failing_its_first_try(
        clock: SimulatedClock) -> None:
    mqtt = ConnectingMqtt()
    results: list[DeliveryResult] = []
    async with Notifier({"m": MqttTarget(kind="mqtt", topic="n/phone")}, clock, mqtt=mqtt,
                        on_result=results.append) as notifier:
        notifier.send("m", notification())
        await until(lambda: bool(mqtt.waited), what="the delivery waiting for the session")
        assert mqtt.published == [] and results == []
        mqtt.up.set()
        await until(lambda: bool(results), clock)
    assert mqtt.waited == [30.0]
    assert results == [DeliveryResult("m", "n1", "delivered", 1, None, T0)]  # its first attempt, no retry


async def test_mqtt_without_session_fails_after_attempts(clock: SimulatedClock) -> None:
    results: list[DeliveryResult] = []
    target = MqttTarget(kind="mqtt", topic="n/phone")
    async with Notifier({"m": target}, clock, mqtt=None, on_result=results.append, attempts=3, backoff_s=(1,)) as n:
        n.send("m", notification())
        await until(lambda: bool(results), clock)
    assert results == [DeliveryResult("m", "n1", "failed", 3, "no MQTT session (MQTT is disabled)", T0 + 2)]


@pytest.mark.mqtt
async def test_mqtt_target_through_a_real_broker(mosquitto_session: Mosquitto) -> None:
    topic = f"hearth-test/{uuid.uuid4().hex[:8]}/notify"

    def session(name: str) -> MqttSession:
        settings = MqttSection.model_validate(
            {"host": "127.0.0.1", "port": mosquitto_session.port, "status_topic": f"{topic}/{name}-status"}
        )
        return MqttSession(settings, SystemClock(), client_id=f"test-{name}-{uuid.uuid4().hex[:8]}")

    results: list[DeliveryResult] = []
    received: list[tuple[str, bytes, bool]] = []
    target = MqttTarget(kind="mqtt", topic=topic, qos=1, retain=True)
    tokens = AckTokens(SystemClock())
    async with session("gateway") as gateway_mqtt, session("observer") as observer:
        assert await gateway_mqtt.wait_connected(5) and await observer.wait_connected(5)
        async with Notifier({"m": target}, SystemClock(), mqtt=gateway_mqtt, on_result=results.append,
                            ack_tokens=tokens, settings=NotifySettings(public_url=PUBLIC_URL)) as notifier:
            notifier.send("m", notification())
            await until(lambda: bool(results), what="the result")
        assert results[0].status == "delivered"
        # Retained: the observer gets it however late it subscribes.
        observer.subscribe(topic, lambda t, payload, retained: received.append((t, payload, retained)), qos=1)
        await until(lambda: bool(received), what="the message at the observer")
        gateway_mqtt.publish(topic, b"", qos=1, retain=True)  # leave no retained message behind
    # (the observer may also see that empty message, sent at once: the first one is the notification)
    got_topic, payload, retained = received[0]
    assert got_topic == topic and retained
    assert orjson.loads(payload)["message"] == "opened at night"
    # The alert's acknowledge link, as an Apprise message has it: a one-time token for this topic's reader.
    (token,) = ACK_URL.findall(orjson.loads(payload)["ack_url"])
    state, link = tokens.check(token)
    assert state == "valid" and link is not None and (link.alert_id, link.target) == ("a-7", "m")


# ------------------------------------------------------------------ acknowledge links


async def test_webhook_and_mqtt_bodies_carry_an_acknowledge_link_of_their_own(
    receiver: Receiver, clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.statuses = [500, 200]  # the retry carries the same link: one token per message, not per attempt
    mqtt = FakeMqtt()
    tokens = AckTokens(clock)
    commits: list[str] = []

    async def commit() -> None:
        commits.append(f"{len(tokens)} token(s), {len(receiver.requests)} request(s), {len(mqtt.published)} published")

    results: list[DeliveryResult] = []
    targets = {"phone": webhook(receiver.url()), "m": MqttTarget(kind="mqtt", topic="n/phone"),
               "log": LogTarget(kind="log")}  # fmt: skip
    async with Notifier(targets, clock, mqtt=mqtt, on_result=results.append, ack_tokens=tokens, commit=commit,
                        settings=NotifySettings(public_url=PUBLIC_URL), alert_state=lambda _alert_id: "open",
                        backoff_s=(2,)) as notifier:  # fmt: skip
        for sent, target in enumerate(targets, 1):
            notifier.send(target, notification())
            await until(lambda: len(results) == sent, clock, what=f"{target}'s result")  # noqa: B023
    assert [r.status for r in results] == ["delivered"] * 3
    first, retried = (orjson.loads(r["body"]) for r in receiver.requests)
    assert first["ack_url"] == retried["ack_url"]
    (webhook_token,) = ACK_URL.findall(first["ack_url"])
    ((_topic, payload, _qos, _retain),) = mqtt.published
    (mqtt_token,) = ACK_URL.findall(orjson.loads(payload)["ack_url"])
    # One link per target, each acknowledging the alert as that contact; none for the log.
    assert webhook_token != mqtt_token and len(tokens) == 2
    for token, target in ((webhook_token, "phone"), (mqtt_token, "m")):
        state, link = tokens.check(token)
        assert state == "valid" and link is not None and (link.alert_id, link.target) == ("a-7", target)
    # Stored before the message leaves: a link must not answer "not recognised" after a power cut.
    assert commits == ["1 token(s), 0 request(s), 0 published", "2 token(s), 2 request(s), 0 published"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/api/ack/" not in logged and webhook_token not in logged and mqtt_token not in logged


async def test_no_acknowledge_link_without_public_url_or_for_what_is_not_an_open_alert(
    receiver: Receiver, clock: SimulatedClock
) -> None:
    tokens = AckTokens(clock)
    states = {"a-7": "open", "a-8": "acknowledged"}
    results: list[DeliveryResult] = []
    async with Notifier({"phone": webhook(receiver.url())}, clock, mqtt=None, on_result=results.append,
                        ack_tokens=tokens, settings=NotifySettings(public_url=PUBLIC_URL),
                        alert_state=states.get) as notifier:  # fmt: skip
        notifier.send("phone", notification("resolved", data={"kind": "resolved"}))  # its "resolved" notice
        notifier.send("phone", notification("report", alert_id=None, data={}))  # a scene's notify action
        notifier.send("phone", notification("late", alert_id="a-8"))  # acknowledged before it went out
        await until(lambda: len(results) == 3, clock)
    async with Notifier({"phone": webhook(receiver.url())}, clock, mqtt=None, on_result=results.append,
                        ack_tokens=tokens, alert_state=states.get) as notifier:  # no [notify] public_url
        notifier.send("phone", notification())
        await until(lambda: len(results) == 4, clock)
    assert [orjson.loads(r["body"])["ack_url"] for r in receiver.requests] == [None] * 4 and len(tokens) == 0


# ------------------------------------------------------------------ outcomes without delivery


async def test_unknown_target_is_reported_at_once(clock: SimulatedClock) -> None:
    results: list[DeliveryResult] = []
    async with Notifier({"log": LogTarget(kind="log")}, clock, mqtt=None, on_result=results.append) as notifier:
        notifier.send("nobody", notification())
        # Synchronously, before any await.
        assert results == [DeliveryResult("nobody", "n1", "unknown_target", 0, "no notify target named 'nobody'", T0)]
        assert notifier.stats()["unknown_target"] == 1 and notifier.stats()["pending"] == 0


async def test_pending_deliveries_are_cancelled_and_reported_on_exit(receiver: Receiver, clock: SimulatedClock) -> None:
    receiver.statuses = [500]
    results: list[DeliveryResult] = []
    notifier = Notifier({"w": webhook(receiver.url())}, clock, mqtt=None, on_result=results.append)
    async with notifier:
        notifier.send("w", notification("in-backoff"))
        await until(lambda: clock.next_due() is not None, what="the first failure")
        notifier.send("w", notification("never-started"))  # cancelled before its task ever ran
        assert notifier.stats()["pending"] == 2
    assert sorted((r.notification_id, r.status, r.attempts) for r in results) == [
        ("in-backoff", "cancelled", 1),
        ("never-started", "cancelled", 0),
    ]
    assert notifier.stats()["pending"] == 0 and notifier.stats()["cancelled"] == 2
    # After exit nothing is accepted, and that is reported too.
    notifier.send("w", notification("late"))
    assert results[-1] == DeliveryResult("w", "late", "cancelled", 0, "notifier closed", T0)


async def test_send_before_start_is_reported_not_raised(clock: SimulatedClock) -> None:
    results: list[DeliveryResult] = []
    notifier = Notifier({"log": LogTarget(kind="log")}, clock, mqtt=None, on_result=results.append)
    notifier.send("log", notification())
    assert results == [DeliveryResult("log", "n1", "cancelled", 0, "notifier not started", T0)]


async def test_unserialisable_data_fails_without_attempt(clock: SimulatedClock) -> None:
    results: list[DeliveryResult] = []
    async with Notifier({"log": LogTarget(kind="log")}, clock, mqtt=None, on_result=results.append) as notifier:
        notifier.send("log", notification(data={"x": object()}))
        await until(lambda: bool(results), clock)
    [result] = results
    assert (result.status, result.attempts) == ("failed", 0)
    assert result.error is not None and "JSON" in result.error


async def test_a_failing_on_result_callback_is_contained(
    clock: SimulatedClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(result: DeliveryResult) -> None:
        raise RuntimeError("callback bug")

    async with Notifier({"log": LogTarget(kind="log")}, clock, mqtt=None, on_result=broken) as notifier:
        notifier.send("nobody", notification())  # must not raise
        notifier.send("log", notification("n2"))
        await until(lambda: notifier.stats()["delivered"] == 1, clock)
    assert "on_result callback failed" in caplog.text


async def test_log_target_writes_at_the_severity_level(clock: SimulatedClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="gateway.scenes.notify")
    results: list[DeliveryResult] = []
    async with Notifier({"log": LogTarget(kind="log")}, clock, mqtt=None, on_result=results.append) as notifier:
        notifier.send("log", notification("n1", severity="critical", title="Panic button"))
        notifier.send("log", notification("n2", severity="info", title="Good morning"))
        await until(lambda: len(results) == 2, clock)
    assert {r.status for r in results} == {"delivered"}
    levels = {r.getMessage().split("] ")[1].split(":")[0]: r.levelno for r in caplog.records if "[" in r.getMessage()}
    assert levels == {"Panic button": logging.CRITICAL, "Good morning": logging.INFO}


def test_recording_notifier_records_synchronously() -> None:
    recorder = RecordingNotifier()
    first, second = notification("n1"), notification("n2")
    recorder.send("phone", first)
    recorder.send("nobody-checks-names-in-replay", second)
    assert recorder.sent == [("phone", first), ("nobody-checks-names-in-replay", second)]


# ------------------------------------------------------------------ config models


def test_targets_parse_as_a_discriminated_union() -> None:
    targets = targets_adapter.validate_python({
        "phone": {"kind": "webhook", "url": "https://example.com/hook", "headers": {"Authorization": "x"}},
        "panel": {"kind": "mqtt", "topic": "hearth/notify"},
        "log": {"kind": "log"},
    })  # fmt: skip
    assert isinstance(targets["phone"], WebhookTarget) and targets["phone"].method == "POST"
    assert targets["phone"].timeout_s == 10
    assert targets["panel"] == MqttTarget(kind="mqtt", topic="hearth/notify", qos=1, retain=False)
    assert isinstance(targets["log"], LogTarget)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"kind": "mqtt", "topic": "hearth/+/notify"}, "wildcards"),
        ({"kind": "mqtt", "topic": "hearth/#"}, "wildcards"),
        ({"kind": "mqtt", "topic": ""}, "empty"),
        ({"kind": "mqtt", "topic": "a", "qos": 3}, "less than or equal to 2"),
        ({"kind": "mqtt", "topic": "a", "retained": True}, "Extra inputs"),
        ({"kind": "webhook", "url": "ftp://example.com/x"}, "http:// or https://"),
        ({"kind": "webhook", "url": "https:///path-only"}, "no host"),
        ({"kind": "webhook", "url": "https://example.com:99999/"}, "not a valid URL"),
        ({"kind": "webhook", "url": "https://example.com/", "method": "GET"}, "'POST' or 'PUT'"),
        ({"kind": "webhook", "url": "https://example.com/", "timeout_s": 0}, "greater than 0"),
        ({"kind": "webhook", "url": "https://example.com/", "headers": {"Bad Name": "v"}}, "header name"),
        (
            {"kind": "webhook", "url": "https://u:p@example.com/", "headers": {"authorization": "Bearer x"}},
            "either in the URL",
        ),
        ({"kind": "email", "to": "x@example.com"}, "does not match any of the expected tags"),
        ({"topic": "a"}, "Unable to extract tag"),
    ],
)
def test_invalid_targets_are_rejected(target: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        targets_adapter.validate_python({"t": target})


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"headers": {"Authorization": "Bearer s3cret\r\nX-Evil: 1"}}, "line break"),
        ({"headers": {"Authorization": "Bearer s3cret"}, "url": "https://u:s3cret@example.com/"}, "not both"),
        ({"headers": {"X-Key": ["s3cret"]}}, "valid string"),
        ({"hedaers": {"X-Key": "s3cret"}}, "Extra inputs"),
        ({"url": "ftp://example.com/s3cret?k=s3cret"}, "http:// or https://"),
    ],
)
def test_webhook_config_errors_never_echo_secrets(target: dict[str, Any], expected: str) -> None:
    values = {"kind": "webhook", "url": "https://example.com/", **target}
    with pytest.raises(ValidationError) as info:
        targets_adapter.validate_python({"phone": values})
    assert expected in str(info.value)
    # The config loader prints each error's input: it must carry no secret either.
    assert "s3cret" not in str(info.value) + repr(info.value.errors())
    assert info.value.errors()[0]["loc"][:2] == ("phone", "webhook")


def test_targets_are_frozen() -> None:
    target = MqttTarget(kind="mqtt", topic="a")
    with pytest.raises(ValidationError, match="frozen"):
        target.topic = "b"  # type: ignore[misc]
