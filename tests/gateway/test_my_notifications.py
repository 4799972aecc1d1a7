"""A caregiver's own notification settings (issue 18), over HTTP on loopback with a real Notifier and Apprise
posting to a local receiver: the owner links the caregiver's account to the contact they are; the caregiver
sets their quiet hours and their own channel, sends themselves a test, and the next alert reaches the channel
they chose, held through their quiet hours unless critical; nothing of it touches the config, it outlives a
restart, and what they cannot change (someone else's contact, a URL Apprise does not take) is refused."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.accounts import UserStore
from gateway.api.app import ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.cookies import CSRF_COOKIE, CSRF_HEADER
from gateway.api.me import apply_saved
from gateway.api.scenes import add_scene_routes
from gateway.clock import SimulatedClock
from gateway.scenes.notify import AppriseTarget, LogTarget, Notification, Notifier
from gateway.store import Store
from tests.gateway.test_notify_apprise import HttpReceiver, http  # noqa: F401  (the receiver fixture)
from tests.scenes.test_engine import NOTE, PRESS, House, profile, scene

PASSWORD = "a long enough passphrase 7"
T0 = 1_773_100_800.0  # 2026-03-10 00:00 UTC: the house's clock (UTC); 23:00 is inside 22:00-07:00


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(T0 + 23 * 3600)


@dataclass
class Served:
    url: str
    session: aiohttp.ClientSession
    notifier: Notifier
    users: UserStore
    receiver: HttpReceiver
    store: Store

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        csrf = next((c.value for c in self.session.cookie_jar if c.key == CSRF_COOKIE), "")
        async with self.session.request(method, self.url + path, json=body, headers={CSRF_HEADER: csrf}) as r:
            return r.status, await r.json() if r.content_type == "application/json" else await r.text()

    async def login(self, name: str) -> None:
        status, body = await self.call("POST", "/api/login", {"username": name, "password": PASSWORD})
        assert status == 200, body

    async def received(self, path: str, count: int) -> list[dict[str, Any]]:
        for _ in range(200):  # Apprise posts from a worker thread: up to 10 s
            if len(self.receiver.to(path)) >= count:
                break
            await asyncio.sleep(0.05)
        return self.receiver.to(path)


def _targets(port: int) -> dict[str, Any]:
    return {"daughter": AppriseTarget(kind="apprise", urls=[f"json://127.0.0.1:{port}/config-daughter"]),
            "neighbour": AppriseTarget(kind="apprise", urls=[f"json://127.0.0.1:{port}/config-neighbour"]),
            "log": LogTarget(kind="log")}


@pytest.fixture
async def served(tmp_path: Path, clock: SimulatedClock, http: HttpReceiver) -> AsyncIterator[Served]:  # noqa: F811
    house = House(profile(scene("help", PRESS, NOTE("help"))), start=clock.time())
    clock = house.clock
    users = UserStore(tmp_path / "users.json")
    users.add("owner", "owner", PASSWORD)
    users.add("anna", "caregiver", PASSWORD)
    users.add("ivan", "installer", PASSWORD, expires=clock.time() + 86400 * 365 * 10)
    tokens = TokenStore(tmp_path / "tokens.json")
    async with Store(tmp_path / "hearth.db", clock) as store, \
            Notifier(_targets(http.port), clock, mqtt=None) as notifier:
        house.notifier = notifier
        house.engine = house.new_engine()
        apply_saved(users, notifier)
        app = create_app(house.hub, tokens, users=users, store=store, health=lambda: {"status": "ok"})
        add_scene_routes(app, house.engine)
        async with ApiServer(app, "127.0.0.1", 0) as server, \
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            yield Served(server.url, session, notifier, users, http, store)


def _alert(n: int, severity: str = "warning") -> Notification:
    return Notification(f"n{n}", T0, "Too cold", "Living room at 14 °C", severity, alert_id=f"a{n}")  # type: ignore[arg-type]


async def test_a_caregiver_sets_their_own_quiet_hours_and_channel(served: Served) -> None:
    await served.login("anna")
    status, body = await served.call("GET", "/api/me/notifications")
    assert status == 200 and body["contact"] is None and "owner" in body["hint"]  # not linked yet
    assert (await served.call("PUT", "/api/me/notifications", {"quiet_hours": "22:00-07:00"}))[0] == 409

    # The owner links her account to the contact she is.
    await served.login("owner")
    status, body = await served.call("PATCH", "/api/users/anna", {"contact": "nobody"})
    assert status == 400 and "no notification contact 'nobody'" in body["error"]
    status, body = await served.call("PATCH", "/api/users/anna", {"contact": "daughter"})
    assert status == 200 and body["contact"] == "daughter"

    await served.login("anna")  # her session outlived the link (only a role or password change ends it)
    status, body = await served.call("GET", "/api/me/notifications")
    assert status == 200, body
    assert body["contact"] == "daughter" and body["quiet_hours"] is None and body["channels"] == ["json#1"]
    assert "config-daughter" not in str(body)  # never a URL: they carry credentials

    # A URL Apprise does not take is refused, and nothing changes.
    status, body = await served.call("PUT", "/api/me/notifications", {"urls": ["jsonn://127.0.0.1/x"]})
    assert status == 400 and "Apprise" in body["error"]
    status, body = await served.call("PUT", "/api/me/notifications",
                                     {"quiet_hours": "22:00-07:00",
                                      "urls": [f"json://127.0.0.1:{served.receiver.port}/anna-phone"]})
    assert status == 200, body
    assert body["quiet_hours"] == "22:00-07:00" and body["own"] == ["quiet_hours", "urls"]

    # Her test reaches her phone at once (it is 23:00, her quiet hours: a test she asked for goes through).
    status, body = await served.call("POST", "/api/me/notifications/test")
    assert status == 202
    (test,) = await served.received("/anna-phone", 1)
    assert "anna" in test["json"]["message"]

    # An alert that is not critical waits for the end of her quiet hours; a critical one does not; the
    # neighbour's channel is the config's, untouched.
    served.notifier.send("daughter", _alert(1))
    served.notifier.send("daughter", _alert(2, "critical"))
    served.notifier.send("neighbour", _alert(3))
    await served.received("/anna-phone", 2)
    await served.received("/config-neighbour", 1)
    await asyncio.sleep(0.3)
    assert len(served.receiver.to("/anna-phone")) == 2  # the test and the critical one
    assert served.receiver.to("/config-daughter") == []
    assert len(served.receiver.to("/config-neighbour")) == 1

    # The audit log says what she changed, never the URL.
    await served.store.flush()
    conn = sqlite3.connect(served.store.path)
    try:
        rows = conn.execute("SELECT action, target, actor, detail FROM audit WHERE action = 'notify.settings'")
        (row,) = rows.fetchall()
    finally:
        conn.close()
    assert row[:3] == ("notify.settings", "daughter", "anna") and "anna-phone" not in row[3]


async def test_her_settings_outlive_a_restart_and_an_empty_put_gives_back_the_configs(
        served: Served, clock: SimulatedClock) -> None:
    served.users.set_contact("anna", "daughter")
    served.users.set_notify("anna", {"quiet_hours": "21:00-06:00"})
    async with Notifier(_targets(served.receiver.port), clock, mqtt=None) as after_restart:
        assert apply_saved(served.users, after_restart) == 1
        assert after_restart.describe("daughter")["quiet_hours"] == "21:00-06:00"
        assert after_restart.describe("neighbour")["quiet_hours"] is None
    apply_saved(served.users, served.notifier)
    await served.login("anna")
    status, body = await served.call("PUT", "/api/me/notifications", {})
    assert status == 200 and body["quiet_hours"] is None and body["own"] == []
    assert served.users.get("anna").notify is None  # type: ignore[union-attr]


async def test_only_people_linked_to_a_contact_and_never_a_token_or_an_installer(served: Served) -> None:
    served.users.set_contact("anna", "daughter")
    with pytest.raises(Exception, match="anna's already"):
        served.users.set_contact("owner", "daughter")  # one person per contact
    await served.login("ivan")
    assert (await served.call("GET", "/api/me/notifications"))[0] == 403
    async with served.session.get(served.url + "/api/me/notifications",
                                  headers={"Authorization": "Bearer " + "hth_000000000000_" + "a" * 43}) as r:
        assert r.status == 401


def test_the_owner_links_a_person_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    config = tmp_path / "config.toml"
    config.write_text(f'[gateway]\ndata_dir = "{tmp_path}"\n\n[notify.daughter]\nkind = "log"\n')
    UserStore(tmp_path / "users.json").add("anna", "caregiver", PASSWORD)
    assert main(["user", "set", "anna", "--contact", "dauhgter", "--config", str(config)]) == 1
    assert "no notification contact 'dauhgter' in the config (contacts: daughter)" in capsys.readouterr().err
    assert main(["user", "set", "anna", "--contact", "daughter", "--config", str(config)]) == 0
    assert UserStore(tmp_path / "users.json").get("anna").contact == "daughter"  # type: ignore[union-attr]
    assert main(["user", "set", "anna", "--contact", "none", "--config", str(config)]) == 0
    assert UserStore(tmp_path / "users.json").get("anna").contact is None  # type: ignore[union-attr]
