"""The resident's routes (``/api/resident``) against a real aiohttp server on loopback, with the shipped
elderly-monitoring profile on a simulated clock: "I'm fine" answers the morning alert and the contacts who
were told hear that all is well; "Call for help" raises the panic button's critical alert to the profile's
contacts; a double tap does either only once; the page shows today's reminders and who was told what."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.app import ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.resident import add_resident_routes
from gateway.api.scenes import add_scene_routes
from gateway.scenes.engine import CHECK_IN_RESOLUTION, RESIDENT_REPEAT_S, ResidentCheckedIn, SceneEngine
from gateway.scenes.notify import RecordingNotifier
from gateway.scenes.profile import find_profile
from tests.scenes.test_engine import BUTTON, KITCHEN_MOTION, DictStorage, House, at

PARAMS = {"contacts": ["daughter", "neighbour"], "reminders": 0}


@dataclass
class Resident:
    house: House
    engine: SceneEngine
    token: str
    url: str
    session: aiohttp.ClientSession

    async def call(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"} if auth else {}
        data = None if body is None else body if isinstance(body, (str, bytes)) else json.dumps(body)
        async with self.session.request(method, self.url + path, data=data, headers=headers) as response:
            text = await response.text()
            return response.status, json.loads(text) if response.content_type == "application/json" else text

    def told(self) -> list[tuple[str, str, str]]:
        """(target, kind, title) of every notification sent."""
        return [(target, n.data["kind"], n.title) for target, n in self.house.notifier.sent]


async def _serve(tmp_path: Path, house: House, *, with_engine: bool = True) -> AsyncIterator[Resident]:
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("bedside-tablet")
    app = create_app(house.hub, tokens, health=lambda: {"status": "ok"})
    if with_engine:
        add_scene_routes(app, house.engine)
    add_resident_routes(app)
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        yield Resident(house, house.engine, token, server.url, session)


async def up_at(resident: Resident, clock: str) -> None:
    """She gets up (movement in the kitchen): no morning alert, no inactivity for three hours."""
    await resident.house.until(clock)
    await resident.house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await resident.house.set(KITCHEN_MOTION, "occupancy", "occupied", False)


@pytest.fixture
async def resident(tmp_path: Path) -> AsyncIterator[Resident]:
    house = House(find_profile("elderly-monitoring").read_text(), PARAMS, start=at("05:00"))
    await house.start()
    try:
        async for served in _serve(tmp_path, house):
            yield served
    finally:
        await house.engine.stop()


async def test_im_fine_resolves_the_morning_alert_and_tells_who_was_told(resident: Resident) -> None:
    checked: list[ResidentCheckedIn] = []
    resident.house.hub.bus.subscribe(ResidentCheckedIn, checked.append)
    await resident.house.until("09:35")  # nobody up: the morning check at 09:30 tells the daughter
    (morning,) = resident.engine.list_alerts(state="open")
    assert morning["key"] == "morning" and morning["severity"] == "critical"
    assert resident.told() == [("daughter", "alert", "Morning check")]
    await resident.house.until("09:41")  # unanswered for 10 minutes: the neighbour
    assert [t for t, kind, _ in resident.told()] == ["daughter", "neighbour"]

    status, body = await resident.call("POST", "/api/resident/check-in")
    assert status == 201, body
    check_in = body["check_in"]
    assert check_in["resolved"] == [morning["id"]] and check_in["repeated"] is False
    assert check_in["told"] == ["daughter", "neighbour"] and check_in["by"] == "token:bedside-tablet"
    alert = resident.engine.alerts[morning["id"]]
    assert alert["state"] == "resolved" and alert["resolution"] == CHECK_IN_RESOLUTION
    # Both contacts who had been told hear that it is over, once each, through the engine's resolve.
    resolved = [(t, n.message) for t, n in resident.house.notifier.sent if n.data["kind"] == "resolved"]
    assert [t for t, _ in resolved] == ["daughter", "neighbour"]
    assert all(m.startswith("resident checked in (09:4") for _, m in resolved)
    assert [(e.by, e.resolved) for e in checked] == [("token:bedside-tablet", (morning["id"],))]

    # A double tap: the same check-in, nobody told again.
    sent = len(resident.house.notifier.sent)
    status, again = await resident.call("POST", "/api/resident/check-in", {})
    assert status == 200 and again["check_in"]["repeated"] is True
    assert again["check_in"]["t"] == check_in["t"]
    assert len(resident.house.notifier.sent) == sent and len(checked) == 1

    # The caregivers see it; the resident page shows who was told what, in words.
    status, page = await resident.call("GET", "/api/resident")
    assert status == 200
    assert page["last_check_in"]["t"] == check_in["t"]
    texts = [n["text"] for n in page["told"]]  # newest first
    assert sorted(texts[:2]) == ["Daughter was told you are fine", "Neighbour was told you are fine"]
    assert texts[2:] == ["Neighbour was told: Morning check", "Daughter was told: Morning check"]


async def test_im_fine_with_nothing_open_is_recorded_and_tells_nobody(resident: Resident) -> None:
    await up_at(resident, "07:00")
    await resident.house.until("09:00")
    assert resident.engine.list_alerts() == []
    status, body = await resident.call("POST", "/api/resident/check-in")
    assert status == 201 and body["check_in"]["resolved"] == [] and body["check_in"]["told"] == []
    assert resident.house.notifier.sent == []
    _, page = await resident.call("GET", "/api/resident")
    assert page["last_check_in"]["t"].startswith("2026-03-10T09:00")
    # The caregivers see it with the house's state.
    _, house = await resident.call("GET", "/api/house")
    assert house["last_check_in"]["t"] == page["last_check_in"]["t"]
    # Past the double-tap window, a new check-in is a new record.
    resident.house.clock.advance_to(resident.house.clock.time() + RESIDENT_REPEAT_S + 1)
    status, later = await resident.call("POST", "/api/resident/check-in")
    assert status == 201 and later["check_in"]["t"] > body["check_in"]["t"]


async def test_call_for_help_raises_the_panic_alert_to_the_contacts_once(resident: Resident) -> None:
    await up_at(resident, "07:00")
    await resident.house.until("09:00")
    status, body = await resident.call("POST", "/api/resident/help")
    assert status == 201, body
    alert = body["alert"]
    assert alert["key"] == "panic" and alert["scene"] == "elderly-monitoring.panic"
    assert alert["severity"] == "critical" and alert["title"] == "Call for help" and alert["state"] == "open"
    assert alert["message"] == "The resident asked for help at 09:00."
    assert alert["policy"]["contacts"] == ["daughter", "neighbour"]
    assert alert["policy"]["escalate_after_s"] == 180  # the profile's panic_escalate_after, not the 10 min
    assert resident.told() == [("daughter", "alert", "Call for help")]

    # A double tap, and a tap while it is still open: the same alert, nobody paged twice.
    status, again = await resident.call("POST", "/api/resident/help")
    assert status == 200 and again["repeated"] is True and again["alert"]["id"] == alert["id"]
    resident.house.clock.advance_to(resident.house.clock.time() + RESIDENT_REPEAT_S + 1)
    status, still = await resident.call("POST", "/api/resident/help")
    assert status == 200 and still["alert"]["id"] == alert["id"]
    assert len(resident.engine.list_alerts()) == 1 and len(resident.told()) == 1

    # It escalates as the panic button's alert does: three minutes later the neighbour is told.
    await resident.house.until("09:03")
    assert [t for t, kind, _ in resident.told()] == ["daughter", "neighbour"]
    _, page = await resident.call("GET", "/api/resident")
    assert page["help"] == {"configured": True, "open": {
        "id": alert["id"], "state": "open", "raised_at": alert["raised_at"], "acknowledged_by": None,
        "title": "Call for help"}}

    # Once a caregiver has acknowledged it, a new call is a new alert (a panic has no "all clear").
    status, _ = await resident.call("POST", f"/api/alerts/{alert['id']}/ack")
    assert status == 200
    status, second = await resident.call("POST", "/api/resident/help")
    assert status == 201 and second["alert"]["id"] != alert["id"]


async def test_the_panic_button_and_the_page_are_one_alert(resident: Resident) -> None:
    await up_at(resident, "07:00")
    await resident.house.until("09:00")
    await resident.house.press(BUTTON)
    (pressed,) = resident.engine.list_alerts(state="open")
    status, body = await resident.call("POST", "/api/resident/help")
    assert status == 200 and body["repeated"] is True and body["alert"]["id"] == pressed["id"]


async def test_reminders_are_what_the_day_expects(resident: Resident) -> None:
    await resident.house.until("09:00")
    _, page = await resident.call("GET", "/api/resident")
    assert [(r["when"], r["text"], r["past"]) for r in page["reminders"]] == [
        ("by 09:30", "Be up and about", False),
        ("21:00", "Your family gets the day's summary", False),
        ("by 22:00", "Be back home", False),
    ]
    await resident.house.until("10:00")
    _, later = await resident.call("GET", "/api/resident")
    assert [r["past"] for r in later["reminders"]] == [True, False, False]
    assert page["told"] == [] and page["last_check_in"] is None
    assert page["help"] == {"configured": True, "open": None}


@pytest.mark.parametrize(("body", "field"), [('{"x": 1}', "x"), ("{", "body"), ("[1]", "body")])
async def test_a_bad_body_is_refused_with_the_field(resident: Resident, body: str, field: str) -> None:
    for path in ("/api/resident/check-in", "/api/resident/help"):
        status, answer = await resident.call("POST", path, body)
        assert status == 400 and answer["field"] == field
    assert resident.engine.list_alerts() == [] and resident.engine.last_check_in() is None


async def test_the_routes_need_a_token(resident: Resident) -> None:
    for method, path in (("GET", "/api/resident"), ("POST", "/api/resident/check-in"),
                         ("POST", "/api/resident/help")):
        status, _ = await resident.call(method, path, auth=False)
        assert status == 401
    assert resident.engine.list_alerts() == []


async def test_the_page_is_served_without_a_token_under_the_ui_policy(resident: Resident) -> None:
    async with resident.session.get(resident.url + "/resident") as response:
        assert response.status == 200 and response.content_type == "text/html"
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert '<script src="/ui/resident.js"' in await response.text()
    for name in ("resident.js", "resident.css"):
        async with resident.session.get(f"{resident.url}/ui/{name}") as response:
            assert response.status == 200


async def test_without_a_panic_scene_help_says_so(tmp_path: Path) -> None:
    text = find_profile("elderly-monitoring").read_text().replace('alert = "panic"', 'alert = "pressed"')
    house = House(text, PARAMS, start=at("05:00"))
    await house.start()
    try:
        async for served in _serve(tmp_path, house):
            status, body = await served.call("POST", "/api/resident/help")
            assert status == 409 and body["reason"] == "no_panic_alert"
            _, page = await served.call("GET", "/api/resident")
            assert page["help"]["configured"] is False
    finally:
        await house.engine.stop()


async def test_without_the_scene_engine_the_routes_answer_503(tmp_path: Path) -> None:
    house = House(find_profile("elderly-monitoring").read_text(), PARAMS, start=at("05:00"))
    async for served in _serve(tmp_path, house, with_engine=False):
        for method, path in (("GET", "/api/resident"), ("POST", "/api/resident/check-in")):
            status, body = await served.call(method, path)
            assert status == 503 and "scene engine" in body["error"]


async def test_check_ins_and_calls_survive_a_restart() -> None:
    storage = DictStorage()
    house = House(find_profile("elderly-monitoring").read_text(), PARAMS, start=at("05:00"), storage=storage)
    await house.start()
    await house.until("07:00")
    first = house.engine.check_in("resident")
    called = house.engine.call_for_help("resident")
    await house.engine.stop()
    house.engine = house.new_engine()
    await house.start()
    try:
        assert house.engine.last_check_in() == {key: first[key] for key in ("t", "by", "resolved", "told")}
        # Still within the double-tap window after the restart: the same call, not a second page.
        again = house.engine.call_for_help("resident")
        assert again["repeated"] is True and again["alert"]["id"] == called["alert"]["id"]
    finally:
        await house.engine.stop()


async def test_a_second_tap_answers_an_alert_raised_in_between(resident: Resident) -> None:
    await resident.house.until("09:29:55")
    status, first = await resident.call("POST", "/api/resident/check-in")
    assert status == 201 and first["check_in"]["resolved"] == []
    await resident.house.until("09:30:01")  # the morning check goes off between the taps
    (morning,) = resident.engine.list_alerts(state="open")
    status, second = await resident.call("POST", "/api/resident/check-in")
    assert status == 201 and second["check_in"]["resolved"] == [morning["id"]]
    assert second["check_in"]["told"] == ["daughter"]


async def test_the_page_and_the_neighbours_notices_in_chinese(resident: Resident) -> None:
    # The neighbour reads Chinese ([notify.neighbour] language = "zh-Hans"); the tablet prefers Chinese.
    resident.house.notifier = resident.engine.notifier = RecordingNotifier({"neighbour": "zh-Hans"})
    await resident.house.until("09:41")  # the morning check: the daughter, then the neighbour
    status, _ = await resident.call("POST", "/api/resident/check-in")
    assert status == 201
    resolved = {t: n for t, n in resident.house.notifier.sent if n.data["kind"] == "resolved"}
    assert resolved["daughter"].message.startswith("resident checked in (09:4")
    assert resolved["neighbour"].title == "已解决：Morning check"  # noqa: RUF001 (Chinese punctuation)
    assert resolved["neighbour"].message.startswith("老人已报平安（09:4")  # noqa: RUF001

    headers = {"Authorization": f"Bearer {resident.token}", "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
    async with resident.session.get(resident.url + "/api/resident", headers=headers) as response:
        page = await response.json()
    assert page["language"] == "zh-Hans"
    texts = [n["text"] for n in page["told"]]
    assert "已告诉 Neighbour 您很好" in texts and "已通知 Daughter：Morning check" in texts  # noqa: RUF001
    morning = next(r for r in page["reminders"] if r["time"] == "09:30")
    assert (morning["when"], morning["text"]) == ("09:30 前", "起床活动")
