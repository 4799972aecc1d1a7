"""Every /api route refuses a caller without a valid token: the routes are enumerated from the router,
so a route added later is checked without anyone remembering to add it here."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import gateway.api
from gateway.api.accounts import PUBLIC, allowed_roles
from gateway.api.app import _AUTH_FAILURES_KEY, PUBLIC_API_ROUTES, ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.api.discovered import add_discovered_routes
from gateway.api.scenes import add_scene_routes
from gateway.api.ws import CLOSE_AUTH, WsSettings
from gateway.clock import SystemClock
from gateway.devicemeta import DeviceMeta
from gateway.hub import Hub
from gateway.scenes.engine import SceneEngine
from tests.gateway.test_api import LAMP, _make_hub

# Routes outside /api that are public on purpose: health and metrics for monitoring, the UI's files.
PUBLIC_OTHER = {("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/"), ("GET", "/ui/{path}"),
                ("GET", "/resident")}
# The functions that add routes to the app, each called by full_app() below.
KNOWN_ROUTE_ADDERS = {"add_scene_routes", "add_login_routes", "add_ws_routes", "add_ui_routes",
                      "add_discovered_routes", "add_resident_routes", "add_ack_routes",
                      "add_data_routes", "add_thing_routes", "add_openapi_routes", "add_matter_routes",
                      "add_my_notification_routes"}
# (create_app calls add_data_routes, add_login_routes, add_my_notification_routes, add_thing_routes and
# add_openapi_routes itself)
BAD_TOKENS = [None, "Basic dXNlcjpwYXNz", "Bearer", "Bearer hth_000000000000_" + "a" * 43]


class _NoNotifier:
    def send(self, target: str, notification: Any) -> None:
        pass


class _MemoryKv(dict[str, Any]):
    def set(self, key: str, value: Any) -> None:
        self[key] = value

    def delete(self, key: str) -> None:
        self.pop(key, None)


def full_app(hub: Hub, tokens: TokenStore) -> web.Application:
    """The app with every route the gateway serves (as gateway/app.py builds it)."""
    app = create_app(hub, tokens, health=lambda: {"status": "ok"}, store=object(),  # type: ignore[arg-type]
                     device_meta=DeviceMeta(hub, _MemoryKv()), ws_settings=WsSettings(auth_timeout_s=0.5))
    engine = SceneEngine(hub, [], notifier=_NoNotifier())
    add_scene_routes(app, engine)
    add_discovered_routes(app, lambda: None)
    from gateway.api.resident import add_resident_routes

    add_resident_routes(app)
    from gateway.api.ack import add_ack_routes
    from gateway.scenes.notify import AckTokens

    add_ack_routes(app, engine, AckTokens(hub.clock, _MemoryKv()))  # type: ignore[arg-type]
    from gateway.api.matter import add_matter_routes

    add_matter_routes(app, lambda: None)
    # These tests send hundreds of wrong tokens on purpose, each expecting its 401: no tarpit here
    # (test_wrong_tokens_are_rate_limited_per_address covers it).
    app[_AUTH_FAILURES_KEY].limiter.max_failures = 1_000_000
    return app


def test_every_route_adding_function_is_in_full_app() -> None:
    found = set()
    for module_info in pkgutil.iter_modules(gateway.api.__path__):
        module = importlib.import_module(f"gateway.api.{module_info.name}")
        for name, value in vars(module).items():
            if (re.fullmatch(r"add_\w*routes", name) and inspect.isfunction(value)
                    and value.__module__ == module.__name__):
                found.add(name)
    assert found <= KNOWN_ROUTE_ADDERS, (
        f"new route functions {sorted(found - KNOWN_ROUTE_ADDERS)}: call them in full_app() so their routes "
        "are checked for auth")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[web.Application, str, aiohttp.ClientSession]]:
    hub = _make_hub()
    tokens = TokenStore(tmp_path / "tokens.json")
    tokens.create("tests")
    app = full_app(hub, tokens)
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        yield app, server.url, session


def _routes(app: web.Application) -> list[tuple[str, str]]:
    out = []
    for route in app.router.routes():
        info = route.get_info()
        path = info.get("path") or info.get("formatter")
        if path is None or route.method == "*":
            continue
        out.append((route.method, re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path)))
    return sorted(set(out))


def _concrete(path: str) -> str:
    return re.sub(r"\{\w+\}", lambda m: LAMP if m.group(0) == "{id}" else "x", path)


async def test_every_api_route_refuses_requests_without_a_valid_token(served: Any) -> None:
    app, url, session = served
    routes = _routes(app)
    api_routes = [(m, p) for m, p in routes if p == "/api" or p.startswith("/api/")]
    assert len(api_routes) >= 15, api_routes  # the enumeration found the routes
    assert {(m, p) for m, p in routes if (m, p) not in api_routes} <= PUBLIC_OTHER | {
        ("HEAD", p) for _, p in PUBLIC_OTHER}, "a new public route outside /api: add it to PUBLIC_OTHER on purpose"
    checked = 0
    for method, path in api_routes:
        if allowed_roles(method, path) == PUBLIC:  # PUBLIC_API_ROUTES, and the /api/ack/ links
            continue
        for header in BAD_TOKENS:
            headers = {"Authorization": header} if header else {}
            async with session.request(method, url + _concrete(path), headers=headers,
                                       json={"name": "x", "enabled": False, "mode": "away"}) as response:
                assert response.status == 401, (method, path, header, response.status)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
            checked += 1
    assert checked >= 4 * 12


async def test_the_routes_that_check_tokens_themselves_refuse_bad_ones(served: Any) -> None:
    app, url, session = served
    routes = set(_routes(app))
    assert routes >= PUBLIC_API_ROUTES, "PUBLIC_API_ROUTES names a route that does not exist"
    assert {("POST", "/api/login"), ("GET", "/api/ws"), ("GET", "/api/setup"),
            ("POST", "/api/setup/owner")} == PUBLIC_API_ROUTES, "review the new exemption"
    async with session.post(url + "/api/login", json={"token": "hth_000000000000_" + "a" * 43}) as response:
        assert response.status == 401
    async with session.post(url + "/api/login") as response:
        assert response.status == 415  # not JSON
    async with session.post(url + "/api/login", json={"username": "nobody", "password": "x" * 10}) as response:
        assert response.status == 401
    # The WebSocket: nothing, a wrong token, or a command instead of auth all end in 4401.
    for first in (None, {"type": "auth", "token": "wrong"},
                  {"type": "command", "id": 1, "device": LAMP, "capability": "on_off", "command": "on"}):
        ws = await session.ws_connect(url + "/api/ws")
        if first is not None:
            await ws.send_json(first)
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == CLOSE_AUTH, first
        await ws.close()
    assert app[gateway.api.app.HUB_KEY].counters["commands"] == 0
    # Plain GET without the upgrade is not a way in either.
    async with session.get(url + "/api/ws") as response:
        assert response.status >= 400


async def test_unknown_api_paths_need_a_token_too(served: Any) -> None:
    _, url, session = served
    for path in ("/api/nope", "/api", "/api/devices/x/y/z"):
        async with session.get(url + path) as response:
            assert response.status == 401, path


async def test_wrong_tokens_are_rate_limited_per_address_and_a_valid_one_still_gets_in(tmp_path: Path) -> None:
    # 1,900 guesses a second used to be answered, each a log line's worth of work: now past 20 a minute every
    # wrong token waits a second for a 429, while the owner's own token is served at once.
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("owner")
    app = create_app(Hub(SystemClock()), tokens, health=lambda: {"status": "ok"})
    async with ApiServer(app, "127.0.0.1", 0) as server, aiohttp.ClientSession() as session:
        wrong = {"Authorization": "Bearer hth_000000000000_" + "b" * 43}
        statuses = []
        for _ in range(20):
            async with session.get(server.url + "/api/devices", headers=wrong) as response:
                statuses.append(response.status)
        assert statuses == [401] * 20
        started = time.monotonic()
        async with session.get(server.url + "/api/devices", headers=wrong) as response:
            assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
        assert time.monotonic() - started >= 0.9  # the tarpit
        async with session.get(server.url + "/api/devices", headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == 200
