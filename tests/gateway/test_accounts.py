"""Accounts, passwords, browser sessions and CSRF (gateway.api.accounts, gateway.api.login), and the
``hearth user`` / ``hearth token`` commands."""

from __future__ import annotations

import io
import json
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway.api.accounts import (
    ARGON2_MEMORY_KIB,
    ARGON2_TIME_COST,
    AccountError,
    Principal,
    SessionStore,
    UserStore,
)
from gateway.api.app import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, TOKENS_KEY, USERS_KEY, ApiServer
from gateway.api.auth import TokenStore
from gateway.api.ws import CLOSE_AUTH
from tests.gateway.test_api import _make_hub
from tests.gateway.test_routes_auth import full_app

PASSWORD = "correct horse battery"


# -------------------------------------------------------------------- the stores


def test_passwords_are_argon2id_hashes_in_a_private_file(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.json")
    users.add("anna", "owner", PASSWORD)
    raw = (tmp_path / "users.json").read_text()
    assert PASSWORD not in raw
    stored = json.loads(raw)["users"]["anna"]["hash"]
    assert stored.startswith(f"$argon2id$v=19$m={ARGON2_MEMORY_KIB},t={ARGON2_TIME_COST},p=1$")
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600
    assert users.verify_password("anna", PASSWORD) is not None
    assert users.verify_password("anna", PASSWORD + "!") is None
    assert users.verify_password("bert", PASSWORD) is None
    # Another process (the CLI) sees the same file.
    assert UserStore(tmp_path / "users.json").get("anna").role == "owner"  # type: ignore[union-attr]


def test_bad_accounts_are_refused(tmp_path: Path) -> None:
    users = UserStore(tmp_path / "users.json")
    for name, role, password, expires in (("anna", "owner", "short", None), ("anna", "boss", PASSWORD, None),
                                          ("anna", "owner", "anna", None), ("../x", "owner", PASSWORD, None),
                                          ("ivan", "installer", PASSWORD, None),
                                          ("ivan", "installer", PASSWORD, time.time() - 1)):
        with pytest.raises(AccountError):
            users.add(name, role, password, expires=expires)
    users.add("anna", "owner", PASSWORD)
    with pytest.raises(AccountError, match="exists"):
        users.add("ANNA", "caregiver", PASSWORD)
    with pytest.raises(AccountError, match="only owner"):
        users.update("anna", role="caregiver")


def test_an_installer_expires(tmp_path: Path) -> None:
    now = [1000.0]
    users = UserStore(tmp_path / "users.json", now=lambda: now[0])
    users.add("ivan", "installer", PASSWORD, expires=2000.0)
    assert users.verify_password("ivan", PASSWORD) is not None
    now[0] = 2000.0
    assert users.verify_password("ivan", PASSWORD) is None


def test_sessions_end_with_password_change_removal_and_token_revocation(tmp_path: Path) -> None:
    now = [1000.0]
    users = UserStore(tmp_path / "users.json", now=lambda: now[0])
    tokens = TokenStore(tmp_path / "tokens.json", now=lambda: now[0])
    sessions = SessionStore(tmp_path / "sessions.json", users, tokens, now=lambda: now[0])
    users.add("anna", "owner", PASSWORD)
    users.add("carl", "caregiver", PASSWORD)
    a1, csrf, _ = sessions.create(Principal("user", "anna", "anna", "owner"))
    a2, _, _ = sessions.create(Principal("user", "anna", "anna", "owner"), remember=True)
    c1, _, _ = sessions.create(Principal("user", "carl", "carl", "caregiver"))
    _, info = tokens.create("tablet", "caregiver")
    t1, _, _ = sessions.create(Principal("token", info.id, info.name, info.role))
    raw = (tmp_path / "sessions.json").read_text()
    assert a1 not in raw and csrf not in raw  # only hashes
    session, principal = sessions.verify(a1)  # type: ignore[misc]
    assert principal.role == "owner" and principal.session == session.key
    assert SessionStore.csrf_matches(session, csrf) and not SessionStore.csrf_matches(session, csrf + "x")
    users.set_password("anna", PASSWORD + "2")
    assert sessions.verify(a1) is None and sessions.verify(a2) is None
    assert sessions.verify(c1) is not None
    users.remove("carl")
    assert sessions.verify(c1) is None
    assert sessions.verify(t1) is not None
    tokens.revoke(info.id)
    assert sessions.verify(t1) is None
    # Expiry: 12 hours, or 30 days when remembered.
    fresh, _, _ = sessions.create(Principal("user", "anna", "anna", "owner"))
    now[0] += 12 * 3600
    assert sessions.verify(fresh) is None
    assert sessions.verify("") is None and sessions.verify("x" * 500) is None


# -------------------------------------------------------------------- over HTTP


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[web.Application, str, aiohttp.ClientSession]]:
    hub = _make_hub()
    tokens = TokenStore(tmp_path / "tokens.json")
    app = full_app(hub, tokens)
    app[USERS_KEY].add("anna", "owner", PASSWORD)
    app[USERS_KEY].add("carl", "caregiver", PASSWORD)
    # unsafe: the jar keeps cookies of an IP address (127.0.0.1), as a browser does.
    async with ApiServer(app, "127.0.0.1", 0) as server, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield app, server.url, session


async def _login(session: aiohttp.ClientSession, url: str, username: str = "anna",
                 password: str = PASSWORD, **headers: str) -> aiohttp.ClientResponse:
    async with session.post(url + "/api/login", json={"username": username, "password": password},
                            headers=headers) as response:
        await response.read()
        return response


def _csrf(session: aiohttp.ClientSession) -> str:
    return next(c.value for c in session.cookie_jar if c.key == CSRF_COOKIE)


async def test_password_login_sets_a_strict_httponly_session_cookie(served: Any) -> None:
    _, url, session = served
    response = await _login(session, url)
    assert response.status == 200
    cookies = {c.key: c for c in response.cookies.values()}
    assert cookies[SESSION_COOKIE]["httponly"] and cookies[SESSION_COOKIE]["samesite"] == "Strict"
    assert cookies[SESSION_COOKIE]["path"] == "/" and not cookies[SESSION_COOKIE]["secure"]  # plain http here
    assert not cookies[CSRF_COOKIE]["httponly"] and cookies[CSRF_COOKIE]["samesite"] == "Strict"
    async with session.get(url + "/api/me") as me:
        assert (await me.json())["role"] == "owner"
    async with session.get(url + "/api/devices") as devices:
        assert devices.status == 200


async def test_wrong_password_and_unknown_user_look_the_same(served: Any) -> None:
    _, url, session = served
    wrong = await _login(session, url, password="nope nope nope")
    nobody = await _login(session, url, username="zed")
    assert wrong.status == nobody.status == 401
    assert SESSION_COOKIE not in wrong.cookies


async def test_state_changes_by_cookie_need_the_csrf_header_and_our_origin(served: Any) -> None:
    _, url, session = served
    await _login(session, url)
    body = {"mode": "away"}
    async with session.put(url + "/api/mode", json=body) as response:
        assert response.status == 403 and (await response.json())["reason"] == "csrf"
    async with session.put(url + "/api/mode", json=body, headers={CSRF_HEADER: "forged"}) as response:
        assert response.status == 403
    csrf = _csrf(session)
    async with session.put(url + "/api/mode", json=body,
                           headers={CSRF_HEADER: csrf, "Origin": "http://evil.example"}) as response:
        assert response.status == 403 and (await response.json())["reason"] == "cross_origin"
    async with session.put(url + "/api/mode", json=body,
                           headers={CSRF_HEADER: csrf, "Referer": "http://evil.example/x"}) as response:
        assert response.status == 403
    async with session.put(url + "/api/mode", json=body,
                           headers={CSRF_HEADER: csrf, "Origin": url}) as response:
        assert response.status == 200, await response.text()
    # A bearer token needs none of it.
    token, _ = served[0][TOKENS_KEY].create("script")
    async with aiohttp.ClientSession() as bare, bare.put(url + "/api/mode", json={"mode": "home"},
                                                          headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200


async def test_login_refuses_other_origins_and_non_json(served: Any) -> None:
    _, url, session = served
    response = await _login(session, url, Origin="http://evil.example")
    assert response.status == 403
    async with session.post(url + "/api/login", data={"username": "anna", "password": PASSWORD}) as response:
        assert response.status == 415
    assert not any(c.key == SESSION_COOKIE for c in session.cookie_jar)


async def test_logout_and_password_change_end_sessions(served: Any) -> None:
    _, url, session = served
    await _login(session, url)
    async with session.post(url + "/api/logout", headers={CSRF_HEADER: _csrf(session)}) as response:
        assert response.status == 200
    async with session.get(url + "/api/me") as response:
        assert response.status == 401
    # Two browsers of Anna's; a password change in one ends both.
    await _login(session, url)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        await _login(other, url)
        async with session.post(url + "/api/me/password", json={"current": PASSWORD, "new": PASSWORD + "!"},
                                headers={CSRF_HEADER: _csrf(session)}) as response:
            assert response.status == 200 and (await response.json())["sessions_ended"] == 2
        async with other.get(url + "/api/me") as response:
            assert response.status == 401
    assert (await _login(session, url, password=PASSWORD + "!")).status == 200


async def test_a_caregiver_by_cookie_is_held_to_the_role(served: Any) -> None:
    _, url, session = served
    await _login(session, url, "carl")
    async with session.get(url + "/api/alerts") as response:
        assert response.status == 200
    async with session.put(url + "/api/mode", json={"mode": "away"}, headers={CSRF_HEADER: _csrf(session)}) as r:
        assert r.status == 403 and (await r.json())["reason"] == "forbidden_role"


async def test_the_websocket_takes_the_session_cookie_from_our_own_pages_only(served: Any) -> None:
    _, url, session = served
    await _login(session, url)
    ws = await session.ws_connect(url + "/api/ws", headers={"Origin": url})
    assert (await ws.receive_json(timeout=5)) == {"type": "auth_ok", "name": "anna", "role": "owner"}
    await ws.close()
    # From another site's page the cookie is no use: a token is expected, and none comes.
    ws = await session.ws_connect(url + "/api/ws", headers={"Origin": "http://evil.example"})
    await ws.send_json({"type": "subscribe", "id": 1})
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == CLOSE_AUTH
    await ws.close()


async def test_the_owner_account_is_made_from_loopback_only_and_once(tmp_path: Path) -> None:
    app = full_app(_make_hub(), TokenStore(tmp_path / "tokens.json"))
    async with ApiServer(app, "127.0.0.1", 0) as server, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        url = server.url
        async with session.get(url + "/api/setup") as response:
            assert await response.json() == {"owner_exists": False, "can_create_owner": True}
        # Through a proxy, or by a name that is not loopback (DNS rebinding): refused.
        for headers in ({"X-Forwarded-For": "192.0.2.7"}, {"Host": "evil.example"}):
            async with session.get(url + "/api/setup", headers=headers) as response:
                assert (await response.json())["can_create_owner"] is False
            async with session.post(url + "/api/setup/owner", json={"username": "anna", "password": PASSWORD},
                                    headers=headers) as response:
                assert response.status == 403
        async with session.post(url + "/api/setup/owner", json={"username": "anna", "password": "short"}) as r:
            assert r.status == 400
        async with session.post(url + "/api/setup/owner", json={"username": "anna", "password": PASSWORD}) as r:
            assert r.status == 200 and (await r.json())["role"] == "owner"
        async with session.get(url + "/api/me") as response:
            assert (await response.json())["name"] == "anna"
        async with session.post(url + "/api/setup/owner", json={"username": "eve", "password": PASSWORD}) as r:
            assert r.status == 409
        async with session.get(url + "/api/setup") as response:
            assert await response.json() == {"owner_exists": True, "can_create_owner": False}


async def test_tokens_and_users_api(served: Any) -> None:
    _, url, session = served
    await _login(session, url)
    headers = {CSRF_HEADER: _csrf(session)}
    async with session.post(url + "/api/tokens", json={"name": "fridge door", "role": "caregiver"},
                            headers=headers) as response:
        assert response.status == 201
        made = await response.json()
    async with session.post(url + "/api/tokens", json={"name": "ivan", "role": "installer"}, headers=headers) as r:
        assert r.status == 400  # an installer's token needs an expiry
    async with session.get(url + "/api/tokens") as response:
        listed = (await response.json())["tokens"]
        assert [t["role"] for t in listed] == ["caregiver"] and "token" not in listed[0]
    async with aiohttp.ClientSession() as bare:
        bearer = {"Authorization": f"Bearer {made['token']}"}
        async with bare.get(url + "/api/alerts", headers=bearer) as response:
            assert response.status == 200
        async with session.delete(url + f"/api/tokens/{made['id']}", headers=headers) as response:
            assert response.status == 204
        async with bare.get(url + "/api/alerts", headers=bearer) as response:
            assert response.status == 401
    async with session.post(url + "/api/users", json={"username": "ivan", "password": PASSWORD, "role": "installer",
                                                      "expires_in_days": 3}, headers=headers) as response:
        assert response.status == 201 and (await response.json())["expires"] > time.time()
    async with session.patch(url + "/api/users/ivan", json={"role": "caregiver"}, headers=headers) as response:
        assert response.status == 200 and (await response.json())["expires"] > time.time()  # kept
    async with session.patch(url + "/api/users/ivan", json={"expires_in_days": None}, headers=headers) as response:
        assert response.status == 200 and (await response.json())["expires"] is None
    async with session.patch(url + "/api/users/ivan", json={"role": "installer"}, headers=headers) as response:
        assert response.status == 400  # an installer needs an expiry
    async with session.delete(url + "/api/users/ivan", headers=headers) as response:
        assert response.status == 204
    async with session.get(url + "/api/users") as response:
        assert [u["name"] for u in (await response.json())["users"]] == ["anna", "carl"]


async def test_a_valid_password_waits_out_the_rate_limit_but_a_token_does_not(served: Any) -> None:
    app, url, session = served
    for _ in range(5):
        assert (await _login(session, url, password="wrong wrong")).status == 401
    assert (await _login(session, url)).status == 429
    token, _ = app[TOKENS_KEY].create("kiosk")
    async with session.post(url + "/api/login", json={"token": token}) as response:
        assert response.status == 200


# -------------------------------------------------------------------- the CLI


def test_hearth_user_and_token_use_the_data_directory_and_say_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["user", "add", "anna", "--role", "owner", "--password-stdin"]) == 0
    out = capsys.readouterr()
    assert f"{tmp_path / 'data' / 'users.json'}" in out.err and "$HEARTH_DATA_DIR" in out.err
    assert UserStore(tmp_path / "data" / "users.json").verify_password("anna", PASSWORD) is not None
    assert main(["token", "create", "door", "--role", "installer"]) == 1  # no expiry
    assert main(["token", "create", "door", "--role", "installer", "--expires", "2d"]) == 0
    out = capsys.readouterr()
    assert f"{tmp_path / 'data' / 'tokens.json'}" in out.err and "role installer" in out.out
    config = tmp_path / "hearth.toml"
    config.write_text(f'[gateway]\ndata_dir = "{tmp_path / "other"}"\n')
    assert main(["user", "list", "--config", str(config)]) == 0
    out = capsys.readouterr()
    assert f"{tmp_path / 'other' / 'users.json'}" in out.err and "[gateway] data_dir" in out.err
    assert "No accounts yet" in out.out


def test_tokens_from_before_roles_are_owners_and_a_bad_role_fails_closed(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("old")
    data = json.loads((tmp_path / "tokens.json").read_text())
    for item in data["tokens"]:
        del item["role"], item["expires"]
    (tmp_path / "tokens.json").write_text(json.dumps(data))
    assert TokenStore(tmp_path / "tokens.json").verify(token).role == "owner"  # type: ignore[union-attr]
    data["tokens"][0]["role"] = "superuser"
    (tmp_path / "tokens.json").write_text(json.dumps(data))
    assert TokenStore(tmp_path / "tokens.json").verify(token) is None


def test_the_demo_owner_has_a_random_password_kept_between_runs(tmp_path: Path) -> None:
    from gateway.sim.demo import demo_owner

    name, password = demo_owner(tmp_path / "users.json", tmp_path / "demo-password")
    assert name == "owner" and len(password) >= 12
    assert stat.S_IMODE((tmp_path / "demo-password").stat().st_mode) == 0o600
    assert demo_owner(tmp_path / "users.json", tmp_path / "demo-password") == (name, password)
    # The kept file lost or wrong: a new random password, the same account.
    (tmp_path / "demo-password").write_text("something else\n")
    _, again = demo_owner(tmp_path / "users.json", tmp_path / "demo-password")
    assert again != password and UserStore(tmp_path / "users.json").verify_password("owner", again) is not None
