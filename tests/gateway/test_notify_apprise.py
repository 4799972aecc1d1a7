"""The Apprise notifier kind, for real on loopback: e-mail through Apprise's ``mailto://`` to a local SMTP
server (aiosmtpd), ntfy and JSON posts (``ntfy://``, ``json://``) to a local aiohttp receiver; retries and
fallbacks against a receiver answering 500 and a closed port; quiet hours; and the acknowledge link
(``gateway.api.ack``) against a real aiohttp server with a running scene engine.

The receivers run on the test's own event loop: had Apprise's blocking calls run on the loop, they could
never be answered, and every test here would time out. Back-off and quiet hours run on a SimulatedClock.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import TypeAdapter, ValidationError

from gateway.api.ack import add_ack_routes
from gateway.clock import SimulatedClock
from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.hub import Hub
from gateway.scenes.engine import SceneEngine
from gateway.scenes.notify import (
    AckTokens,
    AppriseTarget,
    DeliveryResult,
    Notification,
    Notifier,
    NotifySettings,
    NotifyTargets,
    RecordingNotifier,
    notify_settings,
    quiet_until,
)
from gateway.scenes.profile import load_profile_text
from gateway.scenes.setup import notify_targets
from gateway.store import Store

pytest.importorskip("apprise")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

BERLIN = ZoneInfo("Europe/Berlin")
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z: 23:13 in Berlin, inside "22:00-07:00"
MORNING = 1_700_028_000.0  # 2023-11-15T06:00:00Z: 07:00 in Berlin, when those quiet hours end
SMTP_PASSWORD = "smtp-pw-s3cret"
TOPIC = "grandma-s3cret-topic"
HOOK_PATH = "hook-s3cret-path"
SECRETS = (SMTP_PASSWORD, TOPIC, HOOK_PATH)
LINK = re.compile(r"(https?://[^\s]+/api/ack/([A-Za-z0-9_-]{43}))")

targets_adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(NotifyTargets)


def notification(id: str = "a-1#0", **overrides: Any) -> Notification:
    values: dict[str, Any] = {
        "id": id, "t": T0, "title": "Front door", "message": "opened at night", "severity": "warning",
        "scene": "night-door", "alert_id": "a-1", "data": {"kind": "alert"},
    }  # fmt: skip
    values.update(overrides)
    return Notification(**values)


def apprise_target(urls: list[str], **overrides: Any) -> AppriseTarget:
    return AppriseTarget.model_validate({"kind": "apprise", "urls": urls, **overrides})


async def until(
    predicate: Callable[[], bool], clock: SimulatedClock | None = None, timeout_s: float = 15.0, what: str = "it"
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


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------ receivers


@dataclass
class HttpReceiver:
    """ntfy and JSON posts on 127.0.0.1; ``statuses[path]`` answers a path with a fixed status."""

    clock: SimulatedClock
    port: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.posts.append({"path": request.path, "headers": dict(request.headers),
                           "json": orjson.loads(body or b"null"), "t": self.clock.time()})  # fmt: skip
        if request.path in self.hang:
            await asyncio.wait_for(self.release.wait(), 10)
        return web.json_response({"ok": True}, status=self.statuses.get(request.path, 200))

    def to(self, path: str) -> list[dict[str, Any]]:
        return [p for p in self.posts if p["path"] == path]


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
async def http(clock: SimulatedClock) -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver(clock)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    receiver.port = runner.addresses[0][1]
    try:
        yield receiver
    finally:
        receiver.release.set()
        await runner.cleanup()


@dataclass
class SmtpReceiver:
    port: int = 0
    messages: list[Any] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "message": message})
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        login = (data.login.decode(), data.password.decode())
        self.logins.append(login)
        return aiosmtpd_smtp.AuthResult(success=login == ("hearth", SMTP_PASSWORD))

    def text(self, index: int = 0) -> str:
        part = self.messages[index]["message"].get_body(("plain",))
        return str(part.get_content())


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpReceiver]:
    """A real SMTP server (aiosmtpd) on the test's loop; AUTH without TLS, since this is loopback."""
    receiver = SmtpReceiver()
    server = await asyncio.get_running_loop().create_server(
        lambda: aiosmtpd_smtp.SMTP(receiver, hostname="smtp.test", auth_require_tls=False,
                                   authenticator=receiver.authenticate),
        "127.0.0.1", 0,
    )  # fmt: skip
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


def mailto(port: int) -> str:
    return (f"mailto://hearth:{SMTP_PASSWORD}@127.0.0.1:{port}?mode=insecure&from=hearth@home.test"
            f"&to=daughter@home.test")  # fmt: skip


@pytest.fixture
def apprise_debug(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log line, Apprise's debug lines (payloads, URLs) included: none may show a secret."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_secret(caplog: pytest.LogCaptureFixture, *extra: str) -> None:
    # aiosmtpd's "mail.log" is the test's SMTP server printing what it received, not the gateway.
    text = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")
    for secret in (*SECRETS, *extra):
        assert secret not in text, f"{secret!r} was logged"


# ------------------------------------------------------------------ configuration


def test_config_an_apprise_target_and_the_notify_settings() -> None:
    section = {
        "public_url": "https://hearth.example.org/",
        "ack_link_ttl_h": 12,
        "daughter": {"kind": "apprise", "urls": ["ntfy://ntfy.example.org/" + TOPIC],
                     "fallback_urls": [f"tgram://123456789:AAE{SMTP_PASSWORD}/987654"], "quiet_hours": "22:00-07:00"},
    }  # fmt: skip
    targets = targets_adapter.validate_python(section)
    assert list(targets) == ["daughter"]  # the plain keys are settings, not targets
    target = targets["daughter"]
    assert isinstance(target, AppriseTarget) and target.quiet_minutes == (22 * 60, 7 * 60)
    assert [label for _tier, label, _url in target.channels()] == ["ntfy#1", "tgram#fallback1"]
    assert not any(secret in repr(target) for secret in (TOPIC, SMTP_PASSWORD))
    settings = notify_settings(section)
    assert settings == NotifySettings(public_url="https://hearth.example.org", ack_link_ttl_h=12)


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ({"urls": []}, "at least 1"),
        ({"urls": [f"ntfyy://host/{TOPIC}"]}, "not one Apprise understands"),
        ({"urls": [TOPIC]}, "not an Apprise URL"),
        ({"urls": [f"ntfy://host/{TOPIC}"], "quiet_hours": "22-7"}, "HH:MM-HH:MM"),
        ({"urls": [f"ntfy://host/{TOPIC}"], "quiet_hours": "07:00-07:00"}, "differ"),
        ({"urls": [f"ntfy://host/{TOPIC}"], "sms": True}, "Extra inputs"),
    ],
)
def test_config_errors_say_what_and_show_no_url(target: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        targets_adapter.validate_python({"daughter": {"kind": "apprise", **target}})
    assert says in str(caught.value)
    assert TOPIC not in str(caught.value)


def test_config_file_with_settings_and_targets_in_one_notify_table() -> None:
    text = f"""\
[notify]
public_url = "https://hearth.example.org"

[notify.daughter]
kind = "apprise"
urls = ["ntfy://ntfy.example.org/{TOPIC}"]
quiet_hours = "22:00-07:00"
"""
    config = parse_config(text, "house.toml")
    targets = notify_targets(config, text)
    assert set(targets) == {"log", "daughter"} and isinstance(targets["daughter"], AppriseTarget)
    assert notify_settings(config.notify, config.source).public_url == "https://hearth.example.org"

    bad = text.replace("ntfy://", "ntfyy://")
    with pytest.raises(ConfigError) as caught:
        notify_targets(parse_config(bad, "house.toml"), bad)
    message = str(caught.value)
    assert "house.toml" in message and "notify.daughter.apprise.urls" in message and TOPIC not in message


def test_config_a_bad_public_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        notify_settings({"public_url": "ftp://hearth"}, "config.toml")
    assert "notify.public_url" in str(caught.value)


def test_quiet_hours_end_in_the_house_time_zone() -> None:
    quiet = (22 * 60, 7 * 60)
    assert quiet_until(T0, quiet, BERLIN) == MORNING  # 23:13 -> 07:00 next morning
    assert quiet_until(MORNING - 3600, quiet, BERLIN) == MORNING  # 06:00 -> 07:00 the same morning
    assert quiet_until(MORNING, quiet, BERLIN) is None  # 07:00: over
    assert quiet_until(T0, quiet, ZoneInfo("UTC")) == MORNING + 3600  # 22:13 UTC -> 07:00 UTC
    assert quiet_until(T0, (13 * 60, 14 * 60), BERLIN) is None


# ------------------------------------------------------------------ delivery


async def test_email_ntfy_and_json_delivered_at_once_with_an_acknowledge_link(
    http: HttpReceiver, smtp: SmtpReceiver, clock: SimulatedClock, apprise_debug: pytest.LogCaptureFixture
) -> None:
    results: list[DeliveryResult] = []
    tokens = AckTokens(clock, ttl_s=24 * 3600)
    target = apprise_target([mailto(smtp.port), f"ntfy://127.0.0.1:{http.port}/{TOPIC}",
                             f"json://127.0.0.1:{http.port}/{HOOK_PATH}"])  # fmt: skip
    async with Notifier({"daughter": target}, clock, mqtt=None, on_result=results.append, ack_tokens=tokens,
                        settings=NotifySettings(public_url="https://hearth.example.org")) as notifier:  # fmt: skip
        notifier.send("daughter", notification())
        await until(lambda: bool(results), clock, what="the delivery")
    (result,) = results
    assert result.status == "delivered" and result.attempts == 3 and result.error is None
    assert [(d["channel"], d["tier"], d["status"], d["attempts"]) for d in result.deliveries] == [
        ("mailto#1", 0, "delivered", 1),
        ("ntfy#2", 0, "delivered", 1),
        ("json#3", 0, "delivered", 1),
    ]

    # E-mail: through AUTH with the URL's password, subject = title, the body ends with the link.
    assert smtp.logins == [("hearth", SMTP_PASSWORD)]
    (mail,) = smtp.messages
    assert mail["to"] == ["daughter@home.test"] and mail["message"]["Subject"] == "Front door"
    text = smtp.text().replace("\r\n", "\n")
    assert text.startswith("opened at night\n\nAcknowledge: https://hearth.example.org/api/ack/"), text
    (link, token), *_ = LINK.findall(text)
    assert link.startswith("https://hearth.example.org/api/ack/")

    # ntfy: posted to the server root with the topic in the JSON (Apprise's ntfy:// is plain HTTP).
    (ntfy,) = http.to("/")
    assert ntfy["json"]["topic"] == TOPIC and ntfy["json"]["title"] == "Front door"
    assert link in ntfy["json"]["message"]
    # json://: Apprise's own JSON, its type from the severity.
    (posted,) = http.to("/" + HOOK_PATH)
    assert posted["json"]["type"] == "warning" and posted["json"]["message"].startswith("opened at night")
    assert link in posted["json"]["message"]  # one link for the contact, whichever channel she reads

    state, ack = tokens.check(token)
    assert state == "valid" and ack is not None and (ack.alert_id, ack.target) == ("a-1", "daughter")
    assert_no_secret(apprise_debug, token)
    # The worker threads end with the notifier (STYLE 3: no leaked thread).
    await until(lambda: not any(t.name.startswith("hearth-apprise") for t in threading.enumerate()), what="threads")


async def test_the_link_is_committed_before_the_message_leaves(http: HttpReceiver, clock: SimulatedClock) -> None:
    events: list[str] = []
    storage: dict[str, Any] = {}

    class Storage:
        def get(self, key: str, default: Any = None) -> Any:
            return storage.get(key, default)

        def set(self, key: str, value: Any) -> None:
            storage[key] = value

    async def commit() -> None:
        events.append(f"commit with {len(storage.get('tokens', {}))} token(s), {len(http.posts)} post(s)")

    results: list[DeliveryResult] = []
    target = apprise_target([f"json://127.0.0.1:{http.port}/hook"])
    async with Notifier({"a": target}, clock, mqtt=None, on_result=results.append, commit=commit,
                        ack_tokens=AckTokens(clock, Storage()),
                        settings=NotifySettings(public_url="https://h.example.org")) as notifier:  # fmt: skip
        notifier.send("a", notification())
        await until(lambda: bool(results), clock)
    assert events == ["commit with 1 token(s), 0 post(s)"] and len(http.posts) == 1


async def test_no_link_without_public_url_nor_for_a_resolved_notice(http: HttpReceiver, clock: SimulatedClock) -> None:
    results: list[DeliveryResult] = []
    tokens = AckTokens(clock)
    target = apprise_target([f"json://127.0.0.1:{http.port}/hook"])
    async with Notifier({"a": target}, clock, mqtt=None, on_result=results.append, ack_tokens=tokens,
                        settings=NotifySettings(public_url="https://h.example.org")) as notifier:  # fmt: skip
        notifier.send("a", notification("a-1#resolved:a", severity="info", data={"kind": "resolved"}))
        notifier.send("a", notification("report-1", alert_id=None, data={}))
        await until(lambda: len(results) == 2, clock)
    async with Notifier({"a": target}, clock, mqtt=None, on_result=results.append, ack_tokens=tokens) as notifier:
        notifier.send("a", notification())
        await until(lambda: len(results) == 3, clock)
    assert [r.status for r in results] == ["delivered"] * 3
    assert not any("/api/ack/" in p["json"]["message"] for p in http.posts) and len(tokens) == 0


async def test_a_failing_channel_is_retried_then_the_fallbacks_in_order(
    http: HttpReceiver, clock: SimulatedClock, apprise_debug: pytest.LogCaptureFixture
) -> None:
    http.statuses["/broken"] = 500
    results: list[DeliveryResult] = []
    progress: list[DeliveryResult] = []
    dead = closed_port()
    target = apprise_target(
        [f"json://127.0.0.1:{http.port}/broken"],
        fallback_urls=[f"ntfy://127.0.0.1:{dead}/{TOPIC}", f"json://127.0.0.1:{http.port}/{HOOK_PATH}",
                       f"json://127.0.0.1:{http.port}/never"],
    )  # fmt: skip
    async with Notifier({"daughter": target}, clock, mqtt=None, on_result=results.append,
                        on_progress=progress.append, attempts=3, backoff_s=(2, 10)) as notifier:  # fmt: skip
        notifier.send("daughter", notification())
        await until(lambda: bool(results), clock, what="the delivery")
    (result,) = results
    assert result.status == "delivered" and result.attempts == 3 + 3 + 1
    by_channel = {d["channel"]: d for d in result.deliveries}
    assert list(by_channel) == ["json#1", "ntfy#fallback1", "json#fallback2"]  # the last fallback was not needed
    assert by_channel["json#1"]["status"] == "failed" and by_channel["json#1"]["attempts"] == 3
    assert "500" in by_channel["json#1"]["error"]
    assert by_channel["ntfy#fallback1"]["status"] == "failed" and by_channel["ntfy#fallback1"]["attempts"] == 3
    assert "connection" in by_channel["ntfy#fallback1"]["error"].lower()
    assert by_channel["json#fallback2"] == {**by_channel["json#fallback2"], "status": "delivered", "attempts": 1}
    # Three posts to the broken one, each after its back-off on the clock (2 s, then 10 s); one to the fallback.
    assert [p["t"] - T0 for p in http.to("/broken")] == [0, 2, 12]
    assert len(http.to("/" + HOOK_PATH)) == 1 and http.to("/never") == []
    # The UI saw the failure while the retries ran, not only at the end.
    first_failure = next(p for p in progress if p.deliveries and p.deliveries[0].get("error"))
    assert first_failure.status == "pending" and first_failure.deliveries[0]["status"] == "pending"
    warnings = [r.getMessage() for r in apprise_debug.records if r.name == "gateway.scenes.notify"]
    assert any("via json#1 failed (attempt 1 of 3)" in w for w in warnings)
    assert_no_secret(apprise_debug)
    assert all(TOPIC not in d.get("error", "") for d in result.deliveries if d.get("error"))


async def test_every_channel_failing_is_one_failed_result_naming_each(
    http: HttpReceiver, clock: SimulatedClock, apprise_debug: pytest.LogCaptureFixture
) -> None:
    http.statuses["/" + HOOK_PATH] = 503
    results: list[DeliveryResult] = []
    target = apprise_target([f"json://127.0.0.1:{http.port}/{HOOK_PATH}", f"ntfy://127.0.0.1:{closed_port()}/{TOPIC}"])
    async with Notifier({"daughter": target}, clock, mqtt=None, on_result=results.append, attempts=2) as notifier:
        notifier.send("daughter", notification())
        await until(lambda: bool(results), clock, what="the delivery")
    (result,) = results
    assert result.status == "failed" and result.attempts == 4
    assert result.error is not None and result.error.startswith("every channel failed (json#1: ")
    assert "ntfy#2: " in result.error and "503" in result.error
    assert notifier.stats()["failed"] == 1 and notifier.stats()["retries"] == 2
    assert_no_secret(apprise_debug)
    assert not any(secret in result.error for secret in SECRETS)


async def test_a_hanging_service_is_given_up_on_without_blocking_the_loop(
    http: HttpReceiver, clock: SimulatedClock
) -> None:
    http.hang.add("/slow")
    results: list[DeliveryResult] = []
    target = apprise_target([f"json://127.0.0.1:{http.port}/slow"], fallback_urls=[f"json://127.0.0.1:{http.port}/ok"],
                            timeout_s=1)  # fmt: skip
    lags: list[float] = []

    async def heartbeat() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.02)
            lags.append(time.monotonic() - before - 0.02)

    beat = asyncio.get_running_loop().create_task(heartbeat(), name="test:heartbeat")
    try:
        async with Notifier({"a": target}, clock, mqtt=None, on_result=results.append, attempts=1) as notifier:
            notifier.send("a", notification())
            await until(lambda: bool(results), clock, timeout_s=20, what="the delivery")
    finally:
        beat.cancel()
        http.release.set()
    (result,) = results
    assert result.status == "delivered"
    slow = result.deliveries[0]
    # Apprise's own deadline (the attempt's timeout_s) ends the call; ours (a few seconds later) is the backstop.
    assert slow["status"] == "failed" and ("did not finish within" in slow["error"] or "no answer" in slow["error"])
    assert len(http.to("/ok")) == 1
    assert max(lags) < 0.5, f"the event loop stalled for {max(lags):.2f} s"


# ------------------------------------------------------------------ quiet hours


async def test_quiet_hours_hold_a_warning_until_they_end_but_not_a_critical(
    http: HttpReceiver, clock: SimulatedClock
) -> None:
    results: list[DeliveryResult] = []
    progress: list[DeliveryResult] = []
    target = apprise_target([f"json://127.0.0.1:{http.port}/hook"], quiet_hours="22:00-07:00")
    async with Notifier({"daughter": target}, clock, mqtt=None, on_result=results.append, on_progress=progress.append,
                        timezone=BERLIN) as notifier:  # fmt: skip
        notifier.send("daughter", notification("a-1#0", severity="warning"))
        notifier.send("daughter", notification("b-1#0", severity="critical", alert_id="b-1", title="Fall detected"))
        # No clock advance: the critical one goes out at once, at 23:13.
        await until(lambda: len(results) == 1, what="the critical notification")
        assert results[0].notification_id == "b-1#0" and results[0].status == "delivered"
        assert [p["json"]["title"] for p in http.posts] == ["Fall detected"] and http.posts[0]["t"] == T0
        (held,) = [p for p in progress if p.status == "held"]
        assert held.notification_id == "a-1#0"
        assert held.deliveries == ({"channel": "quiet hours", "status": "held", "t": "2023-11-14T22:13:20.000Z",
                                    "until": "2023-11-15T06:00:00.000Z"},)  # fmt: skip
        # The warning waits for 07:00 Berlin time, then goes out saying it was held.
        await until(lambda: len(results) == 2, clock, what="the held warning")
    assert results[1].notification_id == "a-1#0" and results[1].status == "delivered"
    assert http.posts[1]["t"] == MORNING
    assert http.posts[1]["json"]["message"] == "(held for quiet hours since 23:13) opened at night"
    assert results[1].deliveries[0]["status"] == "released"


async def test_a_held_notification_of_an_alert_acknowledged_meanwhile_is_skipped(
    http: HttpReceiver, clock: SimulatedClock
) -> None:
    results: list[DeliveryResult] = []
    states = {"a-1": "open"}
    target = apprise_target([f"json://127.0.0.1:{http.port}/hook"], quiet_hours="22:00-07:00")
    async with Notifier({"daughter": target}, clock, mqtt=None, on_result=results.append, timezone=BERLIN,
                        alert_state=states.get) as notifier:  # fmt: skip
        notifier.send("daughter", notification())
        # Resolved before she was told anything: its "resolved" notice is not news to her either.
        notifier.send("daughter", notification("a-1#resolved:daughter", severity="info", data={"kind": "resolved"}))
        await asyncio.sleep(0.05)
        states["a-1"] = "acknowledged"
        await until(lambda: len(results) == 2, clock, what="both outcomes")
    assert [r.status for r in results] == ["skipped", "skipped"]
    assert results[0].error == "the alert was acknowledged while this notification was held for quiet hours"
    assert http.posts == [] and notifier.stats()["skipped"] == 2


async def test_the_all_clear_of_a_critical_alert_that_woke_her_is_not_held(
    http: HttpReceiver, clock: SimulatedClock
) -> None:
    results: list[DeliveryResult] = []
    target = apprise_target([f"json://127.0.0.1:{http.port}/hook"], quiet_hours="22:00-07:00")
    async with Notifier({"daughter": target}, clock, mqtt=None, on_result=results.append, timezone=BERLIN,
                        alert_state=lambda _alert_id: "resolved") as notifier:  # fmt: skip
        notifier.send("daughter", notification("a-1#0", severity="critical", title="No movement"))
        await until(lambda: len(results) == 1, what="the critical alert")
        clock.advance_to(T0 + 600)
        notifier.send("daughter", notification("a-1#resolved:daughter", severity="info", title="Resolved: No movement",
                                               data={"kind": "resolved"}))  # fmt: skip
        await until(lambda: len(results) == 2, what="the all clear, without the clock reaching the morning")
    assert [r.status for r in results] == ["delivered", "delivered"]
    assert [p["t"] for p in http.posts] == [T0, T0 + 600]
    assert http.posts[1]["json"]["title"] == "Resolved: No movement"


async def test_reminders_held_overnight_go_out_as_one_message(http: HttpReceiver, clock: SimulatedClock) -> None:
    results: list[DeliveryResult] = []
    target = apprise_target([f"json://127.0.0.1:{http.port}/hook"], quiet_hours="22:00-07:00")
    async with Notifier({"daughter": target}, clock, mqtt=None, on_result=results.append, timezone=BERLIN,
                        alert_state=lambda _alert_id: "open") as notifier:  # fmt: skip
        notifier.send("daughter", notification("a-1#0"))
        clock.advance_to(T0 + 1800)
        notifier.send("daughter", notification("a-1#1", message="[not acknowledged, reminder 1] opened at night",
                                               data={"kind": "reminder"}))  # fmt: skip
        await until(lambda: len(results) == 2, clock, what="both outcomes")
    assert [(r.notification_id, r.status) for r in sorted(results, key=lambda r: r.notification_id)] == [
        ("a-1#0", "skipped"), ("a-1#1", "delivered")]  # fmt: skip
    (post,) = http.posts
    assert (
        post["json"]["message"] == "(held for quiet hours since 23:43) [not acknowledged, reminder 1] opened at night"
    )
    assert post["t"] == MORNING


async def test_a_notification_held_for_quiet_hours_outlives_a_restart(
    http: HttpReceiver, clock: SimulatedClock, tmp_path: Path
) -> None:
    # 23:13: two warnings held for the daughter's quiet hours, kept in the store (SQLite, as `hearth run`).
    states = {"a-1": "open", "b-1": "open"}
    target = apprise_target([f"json://127.0.0.1:{http.port}/hook"], quiet_hours="22:00-07:00")
    path = tmp_path / "hearth.db"
    before: list[DeliveryResult] = []
    progress: list[DeliveryResult] = []
    async with (
        Store(path, clock) as store,
        Notifier({"daughter": target}, clock, mqtt=None, on_result=before.append, on_progress=progress.append,
                 timezone=BERLIN, alert_state=states.get, storage=store.kv("held_notifications"),
                 commit=store.flush) as notifier,
    ):  # fmt: skip
        notifier.send("daughter", notification("a-1#0"))
        notifier.send("daughter", notification("b-1#0", alert_id="b-1", title="Back door"))
        await until(lambda: sum(p.status == "held" for p in progress) == 2, what="both held")
    # The gateway stopped in the night: the held ones are not lost, only not sent yet.
    assert [r.status for r in before] == ["cancelled", "cancelled"] and http.posts == []

    # It is down until 07:30: the quiet hours ended meanwhile, and the back door's alert was resolved.
    clock.advance_to(MORNING + 1800)
    states["b-1"] = "resolved"
    after: list[DeliveryResult] = []
    async with Store(path, clock) as store:
        async with Notifier({"daughter": target}, clock, mqtt=None, on_result=after.append, timezone=BERLIN,
                            alert_state=states.get, storage=store.kv("held_notifications"),
                            commit=store.flush):  # fmt: skip
            await until(lambda: len(after) == 2, clock, what="both outcomes after the restart")
        assert store.kv("held_notifications").get("held") == {}  # done with: not sent again at the next start
    outcome = {r.notification_id: r for r in after}
    assert outcome["a-1#0"].status == "delivered"
    assert outcome["a-1#0"].deliveries[0] == {"channel": "quiet hours", "status": "released",
                                              "t": "2023-11-14T22:13:20.000Z", "until": "2023-11-15T06:00:00.000Z"}
    assert outcome["b-1#0"].status == "skipped"
    assert outcome["b-1#0"].error == "the alert was resolved while this notification was held for quiet hours"
    (post,) = http.posts
    assert post["json"]["title"] == "Front door" and post["t"] == MORNING + 1800  # at once: they were over
    assert post["json"]["message"] == "(held for quiet hours since 23:13) opened at night"


async def test_held_through_a_restart_in_the_night_they_still_wait_and_go_out_as_one(
    http: HttpReceiver, clock: SimulatedClock, tmp_path: Path
) -> None:
    target = apprise_target([f"json://127.0.0.1:{http.port}/hook"], quiet_hours="22:00-07:00")
    path = tmp_path / "hearth.db"
    progress: list[DeliveryResult] = []
    async with (
        Store(path, clock) as store,
        Notifier({"daughter": target}, clock, mqtt=None, on_progress=progress.append, timezone=BERLIN,
                 alert_state=lambda _alert_id: "open", storage=store.kv("held_notifications"),
                 commit=store.flush) as notifier,
    ):  # fmt: skip
        notifier.send("daughter", notification("a-1#0"))
        clock.advance_to(T0 + 1800)  # 23:43: a reminder of the same alert, held too
        notifier.send("daughter", notification("a-1#1", message="[not acknowledged, reminder 1] opened at night",
                                               data={"kind": "reminder"}))  # fmt: skip
        await until(lambda: sum(p.status == "held" for p in progress) == 2, what="both held")

    clock.advance_to(T0 + 4 * 3600)  # back at 03:13, in the quiet hours
    results: list[DeliveryResult] = []
    async with (
        Store(path, clock) as store,
        Notifier({"daughter": target}, clock, mqtt=None, on_result=results.append, timezone=BERLIN,
                 alert_state=lambda _alert_id: "open", storage=store.kv("held_notifications"), commit=store.flush),
    ):  # fmt: skip
        await until(lambda: clock.next_due() == MORNING, what="held again until 07:00")
        assert http.posts == [] and results == []
        await until(lambda: len(results) == 2, clock, what="both outcomes")
    assert sorted((r.notification_id, r.status) for r in results) == [("a-1#0", "skipped"), ("a-1#1", "delivered")]
    (post,) = http.posts
    assert post["t"] == MORNING
    assert (
        post["json"]["message"] == "(held for quiet hours since 23:43) [not acknowledged, reminder 1] opened at night"
    )


async def test_an_all_clear_held_through_a_restart_still_reaches_her_who_was_told(
    http: HttpReceiver, clock: SimulatedClock, tmp_path: Path
) -> None:
    target = apprise_target([f"json://127.0.0.1:{http.port}/hook"], quiet_hours="23:30-07:00")
    path = tmp_path / "hearth.db"
    progress: list[DeliveryResult] = []
    before: list[DeliveryResult] = []
    async with (
        Store(path, clock) as store,
        Notifier({"daughter": target}, clock, mqtt=None, on_result=before.append, on_progress=progress.append,
                 timezone=BERLIN, alert_state=lambda _alert_id: "resolved", storage=store.kv("held_notifications"),
                 commit=store.flush) as notifier,
    ):  # fmt: skip
        notifier.send("daughter", notification("a-1#0"))  # 23:13, before her quiet hours: she is told
        await until(lambda: [r.status for r in before] == ["delivered"], what="the alert")
        clock.advance_to(T0 + 1800)  # 23:43: resolved; its notice waits for the morning
        notifier.send("daughter", notification("a-1#resolved:daughter", severity="info", title="Resolved: Front door",
                                               message="the door was closed (23:43).", data={"kind": "resolved"}))
        await until(lambda: [p.status for p in progress] == ["held"], what="the all clear held")

    clock.advance_to(MORNING + 60)
    results: list[DeliveryResult] = []
    async with (
        Store(path, clock) as store,
        Notifier({"daughter": target}, clock, mqtt=None, on_result=results.append, timezone=BERLIN,
                 alert_state=lambda _alert_id: "resolved", storage=store.kv("held_notifications"),
                 commit=store.flush),
    ):  # fmt: skip
        await until(lambda: bool(results), clock, what="the all clear")
    # She was told of the alert before the restart: its all clear is news to her, not skipped.
    assert [(r.notification_id, r.status) for r in results] == [("a-1#resolved:daughter", "delivered")]
    assert http.posts[1]["json"]["title"] == "Resolved: Front door"


# ------------------------------------------------------------------ the acknowledge link, end to end

PROFILE = """\
name = "home"
version = 1

[[scenes]]
id = "help"
name = "Help"
triggers = [{ kind = "start" }]
enabled = false
actions = [{ kind = "alert", alert = "help", severity = "critical", message = "help needed", notify = ["daughter"] }]

[[scenes]]
id = "door"
name = "Door"
triggers = [{ kind = "start" }]
enabled = false
actions = [{ kind = "alert", alert = "door", severity = "warning", message = "front door open", notify = ["daughter"] }]
"""


@dataclass
class House:
    clock: SimulatedClock
    engine: SceneEngine
    tokens: AckTokens
    http: HttpReceiver
    api_url: str
    session: aiohttp.ClientSession

    async def raise_alert(self, scene: str) -> tuple[str, str]:
        """Run ``scene``; returns (alert id, the acknowledge link in the message the daughter got)."""
        before = len(self.http.posts)
        self.engine.run_now(f"home.{scene}")
        await until(lambda: len(self.http.posts) > before, what=f"the {scene} notification")
        alert_id = next(a["id"] for a in self.engine.alerts.values() if a["key"] == scene)
        (link, _token), *_ = LINK.findall(self.http.posts[-1]["json"]["message"])
        return alert_id, link

    async def open(self, method: str, link: str) -> tuple[int, str, dict[str, str]]:
        async with self.session.request(method, link, allow_redirects=False) as response:
            return response.status, await response.text(), dict(response.headers)


@pytest.fixture
async def house(request: pytest.FixtureRequest, http: HttpReceiver, clock: SimulatedClock) -> AsyncIterator[House]:
    # The daughter's language (``indirect`` parametrisation); English by default.
    language = getattr(request, "param", None)
    hub = Hub(clock)
    tokens = AckTokens(clock, ttl_s=3600)

    def on_result(result: DeliveryResult) -> None:
        engine.notification_result(result)

    # The routes first (a started server's router is frozen), the notifier once the server's port, which its
    # links point at, is known.
    engine = SceneEngine(hub, [load_profile_text(PROFILE, "home.toml")], notifier=RecordingNotifier())
    app = web.Application()
    add_ack_routes(app, engine, tokens)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        api_url = str(server.make_url("")).rstrip("/")
        target = apprise_target([f"json://127.0.0.1:{http.port}/daughter"], language=language)
        notifier = Notifier({"daughter": target}, clock, mqtt=None, on_result=on_result, ack_tokens=tokens,
                            settings=NotifySettings(public_url=api_url),
                            alert_state=lambda alert_id: engine.alerts.get(alert_id, {}).get("state"))  # fmt: skip
        engine.notifier = notifier
        async with notifier, engine, aiohttp.ClientSession() as session:
            yield House(clock, engine, tokens, http, api_url, session)
    finally:
        await server.close()


async def test_the_link_acknowledges_its_alert_once_and_nothing_else(house: House) -> None:
    help_id, help_link = await house.raise_alert("help")
    door_id, door_link = await house.raise_alert("door")
    assert help_link.startswith(house.api_url + "/api/ack/") and help_link != door_link

    # GET shows what it is about and changes nothing (link previews fetch it).
    status, page, headers = await house.open("GET", help_link)
    assert status == 200 and "help needed" in page and 'method="post"' in page
    assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"
    assert house.engine.alerts[help_id]["state"] == "open"

    status, page, _ = await house.open("POST", help_link)
    assert status == 200 and "acknowledged" in page
    help_alert = house.engine.alerts[help_id]
    assert help_alert["state"] == "acknowledged" and help_alert["acknowledged_by"] == "link:daughter"
    assert house.engine.alerts[door_id]["state"] == "open"  # that alert and nothing else

    # The token is dead: a second post (or a look) is refused and changes nothing.
    for method in ("POST", "GET"):
        status, page, _ = await house.open(method, help_link)
        assert status == 410 and "used" in page
    assert house.engine.alerts[door_id]["state"] == "open"

    # The alert's history shows each channel of each notification, for the UI.
    (alert,) = [a for a in house.engine.list_alerts() if a["id"] == help_id]
    (notified,) = alert["notifications"]
    await until(lambda: house.engine.alerts[help_id]["notifications"][0]["status"] == "delivered")
    (alert,) = [a for a in house.engine.list_alerts() if a["id"] == help_id]
    (notified,) = alert["notifications"]
    assert notified["status"] == "delivered"
    assert [(d["channel"], d["status"]) for d in notified["deliveries"]] == [("json#1", "delivered")]


async def test_an_expired_or_unknown_link_is_refused(house: House) -> None:
    door_id, door_link = await house.raise_alert("door")
    house.clock.advance_to(house.clock.time() + 3600)  # the link's lifetime (ttl_s=3600)
    for method in ("GET", "POST"):
        status, page, _ = await house.open(method, door_link)
        assert status == 410 and "expired" in page
    assert house.engine.alerts[door_id]["state"] == "open"

    for bad in ("A" * 43, "short", door_link.rsplit("/", 1)[1][:-1] + "x"):
        status, page, _ = await house.open("POST", f"{house.api_url}/api/ack/{bad}")
        assert status == 404 and "not recognised" in page
    assert house.engine.alerts[door_id]["state"] == "open"


async def test_a_link_to_an_alert_acknowledged_elsewhere_says_so(house: House) -> None:
    door_id, door_link = await house.raise_alert("door")
    house.engine.acknowledge(door_id, "token:carer")
    status, page, _ = await house.open("GET", door_link)
    assert status == 200 and "Already taken care of" in page and "carer" in page and 'method="post"' not in page
    status, page, _ = await house.open("POST", door_link)
    assert status == 200 and "Already taken care of" in page
    assert house.engine.alerts[door_id]["acknowledged_by"] == "token:carer"


def test_tokens_are_stored_hashed_and_survive_a_restart(clock: SimulatedClock) -> None:
    storage: dict[str, Any] = {}

    class Storage:
        def get(self, key: str, default: Any = None) -> Any:
            return storage.get(key, default)

        def set(self, key: str, value: Any) -> None:
            storage[key] = orjson.loads(orjson.dumps(value))  # JSON data, as the store keeps it

    token = AckTokens(clock, Storage()).issue("a-1", "daughter")
    assert token not in orjson.dumps(storage).decode()
    again = AckTokens(clock, Storage())
    assert again.check(token)[0] == "valid"
    assert again.redeem(token)[0] == "valid" and again.redeem(token)[0] == "used"
    assert AckTokens(clock, Storage()).check(token)[0] == "used"


@pytest.mark.parametrize("house", ["zh-Hans"], indirect=True)
async def test_a_chinese_reading_contact_gets_the_link_and_its_page_in_chinese(house: House) -> None:
    # (Chinese text with Chinese punctuation, on purpose: RUF001.)
    _, help_link = await house.raise_alert("help")
    message = house.http.posts[-1]["json"]["message"]
    assert "确认：" + help_link in message  # noqa: RUF001
    status, page, _ = await house.open("GET", help_link)
    assert status == 200 and '<html lang="zh-Hans">' in page
    # the profile's own words stay as written ("help needed")
    assert "确认此警报？" in page and "我已看到：确认" in page and "help needed" in page  # noqa: RUF001
    status, page, _ = await house.open("POST", help_link)
    assert status == 200 and "谢谢：已确认" in page  # noqa: RUF001
    status, page, _ = await house.open("GET", help_link)
    assert status == 410 and "此链接已被使用" in page


def test_a_contacts_language_is_a_catalogue_or_a_config_error() -> None:
    assert apprise_target(["json://127.0.0.1:1/x"], language="zh-CN").language == "zh-Hans"
    assert apprise_target(["json://127.0.0.1:1/x"]).language is None
    with pytest.raises(ValidationError, match="no catalogue for the language 'tlh'"):
        apprise_target(["json://127.0.0.1:1/x"], language="tlh")
