"""Who may do what: every route of the app (walked from its router) x every role, anonymous and an expired
installer, against ONE table written here. A route added without a line in WHO_MAY fails the test: adding
the line is the decision (and gateway.api.accounts.ROUTE_ROLES must agree, or the requests below fail)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.api.accounts import ROLES, allowed_roles
from gateway.api.app import ApiServer
from gateway.api.auth import TokenStore
from gateway.api.ws import CLOSE_AUTH, CLOSE_REVOKED
from tests.gateway.test_api import LAMP, _make_hub
from tests.gateway.test_routes_auth import _concrete, _routes, full_app

O, C, I, R = "owner", "caregiver", "installer", "resident"  # noqa: E741
PUBLIC = "public"
EVERYONE = {O, C, I, R}
READERS = {O, C, I}

# method, path -> the roles that may call it, or PUBLIC (the route checks its own credential).
WHO_MAY: dict[tuple[str, str], set[str] | str] = {
    ("POST", "/api/login"): PUBLIC,
    ("GET", "/api/ws"): PUBLIC,
    ("GET", "/api/setup"): PUBLIC,
    ("POST", "/api/setup/owner"): PUBLIC,
    ("POST", "/api/logout"): EVERYONE,
    ("GET", "/api/me"): EVERYONE,
    ("POST", "/api/me/password"): EVERYONE,
    ("PATCH", "/api/me"): EVERYONE,
    # their own notification settings, as the contact they are: the people who are told of alerts
    ("GET", "/api/me/notifications"): {O, C},
    ("PUT", "/api/me/notifications"): {O, C},
    ("POST", "/api/me/notifications/test"): {O, C},
    # the house: everyone but the resident (whose view has its own routes) reads it
    ("GET", "/api/devices"): READERS,
    ("GET", "/api/devices/{id}"): READERS,
    ("GET", "/api/devices/{id}/meta"): READERS,
    ("GET", "/api/capabilities"): READERS,
    ("GET", "/api/things/{id}"): READERS,
    ("GET", "/api/openapi.json"): READERS,
    ("GET", "/api/history"): READERS,
    ("GET", "/api/energy"): READERS,
    ("GET", "/api/house"): READERS,
    ("GET", "/api/mode"): READERS,
    ("GET", "/api/scenes"): READERS,
    ("GET", "/api/scenes/{id}"): READERS,
    ("GET", "/api/scenes/{id}/traces"): READERS,
    ("GET", "/api/scenes/{id}/runs"): READERS,
    ("GET", "/api/areas"): READERS,
    # configuration and commands: owner and installer (a caregiver switches nothing: commands reach locks)
    ("PATCH", "/api/devices/{id}"): {O, I},
    ("POST", "/api/devices/{id}/commands"): {O, I},
    ("PUT", "/api/areas/{area}"): {O, I},
    ("PATCH", "/api/scenes/{id}"): {O, I},
    ("POST", "/api/scenes/{id}/run"): {O, I},
    ("GET", "/api/discovered"): {O, I},
    ("GET", "/api/matter"): {O, I},  # the Matter pairing code commands every bridged device: as commands are
    # alerts: owner and caregiver
    ("GET", "/api/alerts"): {O, C},
    ("POST", "/api/alerts/{id}/ack"): {O, C},
    ("POST", "/api/alerts/{id}/resolve"): {O, C},
    # the house mode (vacation silences the morning check): the owner's
    ("PUT", "/api/mode"): {O},
    # who gets in: the owner's
    ("GET", "/api/tokens"): {O},
    ("POST", "/api/tokens"): {O},
    ("DELETE", "/api/tokens/{id}"): {O},
    ("GET", "/api/users"): {O},
    ("POST", "/api/users"): {O},
    ("PATCH", "/api/users/{name}"): {O},
    ("DELETE", "/api/users/{name}"): {O},
    # personal data: everything about everyone in the house, its deletion, and who did what (the owner's)
    ("GET", "/api/data/export"): {O},
    ("POST", "/api/data/delete"): {O},
    ("GET", "/api/audit"): {O},
    # the resident's own view (another module's routes): resident, caregiver, owner
    ("GET", "/api/resident"): {O, C, R},
    ("POST", "/api/resident/check-in"): {O, C, R},
    ("POST", "/api/resident/help"): {O, C, R},
    # acknowledge links from notifications: a one-time token in the URL, checked by the route
    ("GET", "/api/ack/{token}"): PUBLIC,
    ("POST", "/api/ack/{token}"): PUBLIC,
}
EXPIRED = "expired installer"
ANONYMOUS = "anonymous"
BODY = {"name": "x", "enabled": False, "mode": "away"}


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[web.Application, str, aiohttp.ClientSession,
                                                         dict[str, str]]]:
    hub = _make_hub()
    tokens = TokenStore(tmp_path / "tokens.json")
    creds = {}
    for role in ROLES:
        expires = time.time() + 3600 if role == I else None
        creds[role] = tokens.create(f"t-{role}", role, expires)[0]
    # Made by a store whose clock is an hour behind: valid then, expired now.
    past = TokenStore(tmp_path / "tokens.json", now=lambda: time.time() - 3600)
    creds[EXPIRED] = past.create("t-expired", I, time.time() - 60)[0]
    app = full_app(hub, tokens)
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        yield app, server.url, session, creds


def test_the_table_and_the_policy_agree() -> None:
    for (method, path), who in WHO_MAY.items():
        assert allowed_roles(method, path) == (PUBLIC if who == PUBLIC else frozenset(who)), (method, path)
    # A route nobody decided on is the owner's alone.
    assert allowed_roles("GET", "/api/something-new") == frozenset({O})


async def test_every_route_for_every_role(served: Any) -> None:
    app, url, session, creds = served
    routes = [(m, p) for m, p in _routes(app) if (p == "/api" or p.startswith("/api/")) and m != "HEAD"]
    undecided = sorted(set(routes) - set(WHO_MAY))
    assert not undecided, f"routes without a decision in WHO_MAY (and accounts.ROUTE_ROLES): {undecided}"
    checked = 0
    for method, path in routes:
        who = WHO_MAY[(method, path)]
        if who == PUBLIC:
            continue  # tested with their own credential checks
        for caller in (*ROLES, EXPIRED, ANONYMOUS):
            headers = {"Authorization": f"Bearer {creds[caller]}"} if caller in creds else {}
            async with session.request(method, url + _concrete(path), headers=headers, json=BODY) as response:
                status = response.status
            if caller in (ANONYMOUS, EXPIRED):
                assert status == 401, (method, path, caller, status)
            elif caller in who:
                assert status not in (401, 403), (method, path, caller, status)
            else:
                assert status == 403, (method, path, caller, status)
            checked += 1
    assert checked >= 6 * 30


async def test_the_websocket_per_role(served: Any) -> None:
    _, url, session, creds = served
    for caller in (*ROLES, EXPIRED):
        ws = await session.ws_connect(url + "/api/ws")
        await ws.send_json({"type": "auth", "token": creds[caller]})
        msg = await ws.receive(timeout=5)
        if caller in (O, C, I):
            assert msg.json() == {"type": "auth_ok", "name": f"t-{caller}", "role": caller}
            await ws.send_json({"type": "command", "id": 1, "device": LAMP, "capability": "on_off", "command": "on"})
            answer = await ws.receive_json(timeout=5)
            if caller == C:
                assert answer["http_status"] == 403 and answer["ok"] is False
            else:
                assert answer["http_status"] not in (401, 403), (caller, answer)
            # Alert events only for those who may list alerts (GET /api/alerts).
            await ws.send_json({"type": "subscribe", "id": 2, "events": ["alerts"]})
            answer = await ws.receive_json(timeout=5)
            assert answer["ok"] is (caller != I), (caller, answer)
        else:
            expected = CLOSE_REVOKED if caller == R else CLOSE_AUTH
            assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == expected, caller
        await ws.close()
