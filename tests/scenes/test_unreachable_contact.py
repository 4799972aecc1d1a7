"""An alert whose contact cannot be reached: the scene engine with the real Notifier, webhooks on loopback.

When every channel of a contact failed (after the notifier's retries), waiting ``escalate_after`` for an
acknowledgement she cannot give only loses time: the next contact is told at once, and the alert's
history says why. The webhook receiver is a real aiohttp server on 127.0.0.1; the "unreachable" one is a
closed port. Back-off and escalation run on a SimulatedClock, moved only to timers due before the
escalation would have fallen due, so a pass cannot come from the escalation timer itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from gateway.clock import SimulatedClock, iso_utc
from gateway.hub import Hub
from gateway.scenes.engine import SceneEngine, public_alert
from gateway.scenes.notify import Notifier, RecordingNotifier, WebhookTarget
from gateway.scenes.profile import load_profile_text
from tests.gateway.test_notify_apprise import HttpReceiver, http  # noqa: F401 (http: the fixture)

T0 = 1_773_136_800.0  # 2026-03-10T10:00:00Z
ESCALATE_AFTER_S = 600.0

PROFILE = """\
name = "home"
version = 1

[[scenes]]
id = "door"
name = "Door"
triggers = [{ kind = "start" }]
enabled = false

[[scenes.actions]]
kind = "alert"
alert = "door"
severity = "warning"
message = "front door open"
notify = ["daughter", "son"]
escalate_after = "10m"
reminders = 1
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0)


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> HttpReceiver:
    """The notification tests' own JSON receiver on 127.0.0.1 (on this module's clock)."""
    found: HttpReceiver = request.getfixturevalue("http")
    return found


async def run_until(predicate: Callable[[], bool], clock: SimulatedClock, *, before: float, what: str) -> None:
    """Real time for the loopback I/O; the simulated clock fires only the timers due before ``before``."""
    try:
        async with asyncio.timeout(15):
            while not predicate():
                due = clock.next_due()
                if due is not None and due < before:
                    clock.advance_to(due)
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def webhook(url: str) -> WebhookTarget:
    return WebhookTarget.model_validate({"kind": "webhook", "url": url})


@contextlib.asynccontextmanager
async def house(targets: dict[str, WebhookTarget], clock: SimulatedClock) -> AsyncIterator[SceneEngine]:
    """The engine and the real Notifier, wired as ``hearth run`` wires them (results back to the alert)."""
    engine = SceneEngine(Hub(clock), [load_profile_text(PROFILE, "home.toml")], notifier=RecordingNotifier())
    # Three attempts 5 s apart: a contact is given up on after 10 s of simulated time.
    notifier = Notifier(targets, clock, mqtt=None, on_result=engine.notification_result,
                        on_progress=engine.notification_result, attempts=3, backoff_s=(5,),
                        alert_state=lambda alert_id: engine.alerts.get(alert_id, {}).get("state"))  # fmt: skip
    engine.notifier = notifier
    async with notifier, engine:
        yield engine


def sent(engine: SceneEngine) -> list[tuple[str, str]]:
    """(target, status) of every notification of every alert."""
    return [(n["target"], n["status"]) for alert in engine.alerts.values() for n in alert["notifications"]]


def told(engine: SceneEngine, target: str, status: str) -> Callable[[], bool]:
    return lambda: (target, status) in sent(engine)


async def test_a_contact_whose_every_channel_failed_is_passed_over_at_once(
    receiver: HttpReceiver, clock: SimulatedClock
) -> None:
    targets = {"daughter": webhook(f"http://127.0.0.1:{closed_port()}/daughter"),
               "son": webhook(f"http://127.0.0.1:{receiver.port}/son")}  # fmt: skip
    async with house(targets, clock) as engine:
        engine.run_now("home.door")
        await run_until(told(engine, "son", "delivered"), clock, before=T0 + ESCALATE_AFTER_S, what="the son told")
        (alert,) = engine.list_alerts()
    # The daughter's phone: three attempts, all refused, the last at 10:00:10. The son is told then, not at
    # 10:10 (escalate_after), and not after her reminder.
    (request,) = receiver.posts
    assert request["path"] == "/son" and request["t"] == T0 + 10
    assert request["json"]["message"] == "[not acknowledged by daughter] front door open"
    daughter, son = alert["notifications"]
    assert (daughter["target"], daughter["status"], son["target"], son["status"]) == (
        "daughter", "failed", "son", "delivered")  # fmt: skip
    assert "ClientConnectorError" in daughter["error"] and "why" not in daughter
    # The alert's history says why the son was told early.
    assert son["why"] == "every channel of daughter failed" and son["t"] == iso_utc(T0 + 10)
    # The escalation goes on from there: the son's reminder, escalate_after later.
    assert alert["state"] == "open" and alert["next_escalation_at"] == iso_utc(T0 + 10 + ESCALATE_AFTER_S)


async def test_a_contact_that_is_no_notify_target_is_passed_over_too(receiver: HttpReceiver,
                                                                    clock: SimulatedClock) -> None:
    # The notifier answers "unknown target" while the engine is still sending that very step.
    async with house({"son": webhook(f"http://127.0.0.1:{receiver.port}/son")}, clock) as engine:
        engine.run_now("home.door")
        await run_until(told(engine, "son", "delivered"), clock, before=T0 + ESCALATE_AFTER_S, what="the son told")
        (alert,) = engine.list_alerts()
    assert [r["t"] for r in receiver.posts] == [T0]
    assert [(n["target"], n["status"], n.get("why")) for n in alert["notifications"]] == [
        ("daughter", "unknown_target", None), ("son", "delivered", "daughter is not a notify target")]  # fmt: skip
    assert alert["next_escalation_at"] == iso_utc(T0 + ESCALATE_AFTER_S)


async def test_the_last_contact_failing_changes_nothing_and_an_acknowledgement_still_stops_it(
    receiver: HttpReceiver, clock: SimulatedClock
) -> None:
    targets = {"daughter": webhook(f"http://127.0.0.1:{receiver.port}/daughter"),
               "son": webhook(f"http://127.0.0.1:{closed_port()}/son")}  # fmt: skip
    async with house(targets, clock) as engine:
        engine.run_now("home.door")
        # 10:00 the daughter, 10:10 her reminder, 10:20 the son, whose phone fails (10:20:10). One step at a
        # time: the clock must not move on while a request is on its way.
        for n, t in enumerate((T0, T0 + ESCALATE_AFTER_S), 1):
            await run_until(lambda n=n: [s for _, s in sent(engine)] == ["delivered"] * n, clock, before=t + 1,
                            what=f"the daughter told {n} time(s)")  # fmt: skip
        await run_until(told(engine, "son", "failed"), clock, before=T0 + 3 * ESCALATE_AFTER_S, what="son failed")
        (alert,) = engine.list_alerts()
        assert [(n["target"], n["status"]) for n in alert["notifications"]] == [
            ("daughter", "delivered"), ("daughter", "delivered"), ("son", "failed")]  # fmt: skip
        # No one after him: his reminder keeps its time.
        assert alert["next_escalation_at"] == iso_utc(T0 + 3 * ESCALATE_AFTER_S)
        assert [r["t"] for r in receiver.posts] == [T0, T0 + ESCALATE_AFTER_S]
        engine.acknowledge(alert["id"], "token:daughter")
        assert public_alert(engine.alerts[alert["id"]])["next_escalation_at"] is None
