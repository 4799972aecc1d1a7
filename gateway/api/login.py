"""Logging in and the accounts API: ``POST /api/login`` and ``/api/logout``, ``/api/me``, the first-start
owner set-up, and the owner's ``/api/tokens`` and ``/api/users``; the rate limit on guessing.

``POST /api/login`` takes ``{"username", "password", "remember"?}`` (people) or ``{"token"}`` (machines,
the demo's login link). Either way a good one opens a browser session: an HttpOnly ``hearth_session``
cookie and a readable ``hearth_csrf`` cookie (see :mod:`gateway.api.app`). Only JSON bodies from this
gateway's own pages (or from no browser at all: no Origin) are taken.

Failed attempts (here and on the WebSocket) are limited per client address. While an address is
limited, a password is not even checked (else the limit would not slow a guesser), but a token is: a
token is 256 random bits, nobody guesses one, so a machine or person holding a valid one is never
locked out by someone else's failures. Bearer tokens and session cookies on the other routes are never
rate-limited.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import math
import time
from collections import OrderedDict, deque
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.api.accounts import (
    OWNER,
    REMEMBERED_SESSION_S,
    ROLES,
    AccountError,
    Principal,
    principal_for_token,
    principal_for_user,
)
from gateway.api.auth import TokenError
from gateway.api.contacts import contact_names, known_contact, refresh_contact
from gateway.api.cookies import clear_session_cookies, same_origin, set_session_cookies
from gateway.api.data import audit, failed_login
from gateway.api.keys import HUB_KEY, SESSIONS_KEY, TOKEN_INFO_KEY, TOKENS_KEY, USERS_KEY
from gateway.api.responses import _error, _json, _pydantic_error
from gateway.i18n import available_languages, best_match, normalise, translate

__all__ = ["LOGIN_LIMITER_KEY", "LoginRateLimiter", "add_login_routes", "client_address", "is_local_request",
           "request_language"]

log = logging.getLogger("hearth.api.login")

# 5 wrong tokens a minute is more than a person mistyping ever needs.
MAX_FAILURES = 5
WINDOW_S = 60.0
# Addresses remembered at once; the oldest are forgotten first. Bounds memory against a client that
# walks through many source addresses (each of which is then limited only by this).
MAX_ADDRESSES = 10_000


class LoginRateLimiter:
    """At most ``max_failures`` failed logins per ``window_s`` per client address (sliding window)."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 max_addresses: int = MAX_ADDRESSES) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.refused = 0

    def retry_after_s(self, address: str, now: float) -> float:
        """0 if ``address`` may try now, else the seconds until it may."""
        failures = self._failures.get(address)
        if failures is None:
            return 0.0
        while failures and now - failures[0] >= self.window_s:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return 0.0
        if len(failures) < self.max_failures:
            return 0.0
        return max(0.0, failures[0] + self.window_s - now)

    def failed(self, address: str, now: float) -> None:
        failures = self._failures.pop(address, None) or deque(maxlen=self.max_failures)
        failures.append(now)
        self._failures[address] = failures  # most recently failed last
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)


LOGIN_LIMITER_KEY = web.AppKey("hearth.login_limiter", LoginRateLimiter)


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    token: str | None = Field(None, min_length=1, max_length=256)
    username: str | None = Field(None, min_length=1, max_length=64)
    password: str | None = Field(None, min_length=1, max_length=1024)
    remember: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> LoginBody:
        if (self.token is None) == (self.username is None):
            raise ValueError("give either token, or username and password")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together (or give a token alone)")
        return self


class OwnerBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class PasswordBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    current: str = Field(min_length=1, max_length=1024)
    new: str = Field(min_length=1, max_length=1024)


_ROLE_PATTERN = "^(" + "|".join(ROLES) + ")$"


class MePatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    # A catalogue's tag (GET /api/me lists them); null: follow the browser's Accept-Language again.
    language: str | None = Field(None, min_length=1, max_length=35)


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str = Field(min_length=1, max_length=64)
    role: str = Field(OWNER, pattern=_ROLE_PATTERN)
    expires_in_days: float | None = Field(None, gt=0, le=3650, allow_inf_nan=False)


class UserBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: str = Field(pattern=_ROLE_PATTERN)
    expires_in_days: float | None = Field(None, gt=0, le=3650, allow_inf_nan=False)


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    role: str | None = Field(None, pattern=_ROLE_PATTERN)
    # null: never expires; absent: unchanged
    expires_in_days: float | None = Field(None, gt=0, le=3650, allow_inf_nan=False)
    password: str | None = Field(None, min_length=1, max_length=1024)
    # The language of their pages (the resident's page has no settings: the family sets it here); null:
    # their browser's. Changing only this keeps their sessions.
    language: str | None = Field(None, min_length=1, max_length=35)
    # The notification contact (a [notify.<name>] of the config) this person is: they set its quiet hours
    # and channels themselves (GET/PUT /api/me/notifications); null: none. Keeps their sessions.
    contact: str | None = Field(None, min_length=1, max_length=64)


def client_address(request: web.Request) -> str:
    # The peer address. Behind a reverse proxy every client has the proxy's address and they share
    # one limit (README); X-Forwarded-For is not trusted, since any client can send it.
    return request.remote or "unknown"


_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")


def is_local_request(request: web.Request) -> bool:
    """Whether the request comes from this machine, as a person at it would make it.

    The peer is a loopback address, no proxy says it forwarded the request (a reverse proxy on the same
    machine makes every client look local), and the Host header names loopback too (a page of another
    site that rebinds its DNS name to 127.0.0.1 sends its own name as Host).
    """
    from gateway.config import is_loopback_host

    if any(h in request.headers for h in _PROXY_HEADERS):
        return False
    try:
        if not ipaddress.ip_address((request.remote or "").split("%")[0]).is_loopback:
            return False
    except ValueError:
        return False
    host = request.headers.get("Host", "")
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback_host(name)


def too_many_attempts(retry_after_s: float) -> web.Response:
    seconds = max(1, math.ceil(retry_after_s))
    return _json({"error": f"too many failed logins from this address; try again in {seconds} s",
                  "retry_after_s": seconds}, status=429, headers={"Retry-After": str(seconds)})


async def _json_body(request: web.Request, model: type[BaseModel], *, browser_post: bool = False
                     ) -> BaseModel | web.Response:
    """The body as ``model``, or the 4xx response saying what is wrong with it."""
    if browser_post:
        # A form of another site can post to us without any script (no CORS preflight), but only as a
        # form: refusing all but JSON, and any other Origin, keeps logins and set-up to our own page.
        if request.content_type != "application/json":
            return _error(415, "send the body as JSON (Content-Type: application/json)", field="body",
                          reason="content_type")
        if not same_origin(request):
            return _error(403, "refused a request from another site", reason="cross_origin")
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return _error(400, "the body is not valid JSON", field="body", reason="invalid_json")
    if not isinstance(data, dict):
        return _error(400, "the body must be a JSON object", field="body", reason="wrong_type")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        return _pydantic_error(err, model)


async def _open_session(request: web.Request, principal: Principal, remember: bool,
                        extra: dict[str, Any]) -> web.Response:
    session_id, csrf, session = await asyncio.to_thread(request.app[SESSIONS_KEY].create, principal,
                                                        remember=remember)
    response = _json({"ok": True, "name": principal.name, "role": principal.role, "kind": principal.kind,
                      "expires": principal.expires, "session_expires": session.expires, "csrf": csrf, **extra})
    set_session_cookies(request, response, session_id, csrf, REMEMBERED_SESSION_S if remember else None)
    return response


async def login(request: web.Request) -> web.Response:
    """Log in with ``{"username", "password", "remember"?}`` or ``{"token"}``: sets the session and CSRF cookies;
    rate-limited per address (429)."""
    app = request.app
    limiter = app[LOGIN_LIMITER_KEY]
    clock = app[HUB_KEY].clock
    address = client_address(request)
    body = await _json_body(request, LoginBody, browser_post=True)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, LoginBody)
    wait_s = limiter.retry_after_s(address, clock.monotonic())
    if wait_s > 0 and body.token is None:
        # A password is not even looked at while limited: a good guess must not be told apart.
        limiter.refused += 1
        app[HUB_KEY].counters["login_rate_limited"] += 1
        return too_many_attempts(wait_s)
    principal: Principal | None = None
    extra: dict[str, Any] = {}
    if body.token is not None:
        info = await asyncio.to_thread(app[TOKENS_KEY].verify, body.token)
        if info is not None:
            principal = principal_for_token(info)
            extra["token_id"] = info.id
    else:
        assert body.username is not None and body.password is not None
        user = await asyncio.to_thread(app[USERS_KEY].verify_password, body.username, body.password)
        if user is not None:
            principal = principal_for_user(user)
    if principal is None:
        limiter.failed(address, clock.monotonic())
        app[HUB_KEY].counters["login_failed"] += 1
        log.info("failed login from %s", address)
        await failed_login(request, "token" if body.token is not None else "password", address)
        if wait_s > 0:
            limiter.refused += 1
            app[HUB_KEY].counters["login_rate_limited"] += 1
            return too_many_attempts(wait_s)
        what = "invalid, expired or revoked token" if body.token is not None else "wrong user name or password"
        return _json({"ok": False, "error": what}, status=401,
                     headers={"WWW-Authenticate": 'Bearer realm="hearth", error="invalid_token"'})
    app[HUB_KEY].counters["logins"] += 1
    return await _open_session(request, principal, body.remember, extra)


async def logout(request: web.Request) -> web.Response:
    """End this browser session and clear its cookies."""
    principal: Principal = request[TOKEN_INFO_KEY]
    if principal.session is not None:
        await asyncio.to_thread(request.app[SESSIONS_KEY].end, principal.session)
    response = _json({"ok": True})
    clear_session_cookies(response)
    return response


async def chosen_language(request: web.Request, principal: Principal | None) -> str | None:
    """The language the person calling chose (``PATCH /api/me``), or None (an API token, or no choice)."""
    if principal is None or principal.kind != "user":
        return None
    user = await asyncio.to_thread(request.app[USERS_KEY].get, principal.id)
    chosen = user.language if user is not None else None
    return chosen if chosen in available_languages() else None


async def request_language(request: web.Request) -> str:
    """The language to answer ``request`` in: the person's choice, else the best match of the browser's
    ``Accept-Language``, else English."""
    chosen = await chosen_language(request, request.get(TOKEN_INFO_KEY))
    return chosen or best_match(request.headers.get("Accept-Language"))


async def _me_answer(request: web.Request, principal: Principal) -> dict[str, Any]:
    """Who is calling, and the language their pages speak (see :func:`request_language`)."""
    chosen = await chosen_language(request, principal)
    return {**principal.as_dict(), "language": chosen or best_match(request.headers.get("Accept-Language")),
            "language_chosen": chosen is not None,
            "languages": [{"tag": tag, "name": translate(tag, "language.name")} for tag in available_languages()]}


async def me(request: web.Request) -> web.Response:
    """Who is calling: name, role, expiry, language."""
    return _json(await _me_answer(request, request[TOKEN_INFO_KEY]))


async def patch_me(request: web.Request) -> web.Response:
    """The person's own settings: ``{"language": "zh-Hans"}`` (or null for the browser's)."""
    principal: Principal = request[TOKEN_INFO_KEY]
    if principal.kind != "user":
        return _error(400, "an API token has no settings of its own; log in as a person", reason="not_a_user")
    body = await _json_body(request, MePatch)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, MePatch)
    if "language" in body.model_fields_set:
        language = normalise(body.language) if body.language is not None else None
        if body.language is not None and language is None:
            return _error(400, f"no catalogue for the language {body.language!r} "
                          f"(languages: {', '.join(available_languages())})", field="language", reason="invalid")
        try:
            user = await asyncio.to_thread(request.app[USERS_KEY].set_language, principal.id, language)
        except AccountError as err:
            return _error(400, str(err), field="language", reason="invalid")
        refresh_contact(request.app, user)  # notifications to the contact they are: in their language too
    return _json(await _me_answer(request, principal))


async def change_password(request: web.Request) -> web.Response:
    """Change one's own password, ``{"current", "new"}``; ends every session of that person."""
    principal: Principal = request[TOKEN_INFO_KEY]
    if principal.kind != "user":
        return _error(400, "only a person logged in with a password has one to change", reason="not_a_user")
    body = await _json_body(request, PasswordBody)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, PasswordBody)
    users = request.app[USERS_KEY]
    if await asyncio.to_thread(users.verify_password, principal.id, body.current) is None:
        return _error(403, "the current password is wrong", field="current", reason="wrong_password")
    try:
        await asyncio.to_thread(users.set_password, principal.id, body.new)
    except AccountError as err:
        return _error(400, str(err), field="new", reason="invalid")
    ended = await asyncio.to_thread(request.app[SESSIONS_KEY].end_all, "user", principal.id)
    response = _json({"ok": True, "sessions_ended": ended})
    clear_session_cookies(response)
    return response


async def setup_status(request: web.Request) -> web.Response:
    """Whether an owner account exists, and whether this caller (loopback only) may create it."""
    has_owner = await asyncio.to_thread(request.app[USERS_KEY].has_owner)
    return _json({"owner_exists": has_owner, "can_create_owner": not has_owner and is_local_request(request)})


async def create_owner(request: web.Request) -> web.Response:
    """First start: the owner account, made from the web UI. Only while there is none, only from this
    machine (``is_local_request``): anyone else on the network could otherwise claim the house."""
    if not is_local_request(request):
        return _error(403, "the owner account can be created from the gateway's own machine only "
                           "(open http://127.0.0.1:<port>/ there, or run: hearth user add NAME --role owner)",
                      reason="not_local")
    body = await _json_body(request, OwnerBody, browser_post=True)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, OwnerBody)
    try:
        user = await asyncio.to_thread(request.app[USERS_KEY].add, body.username, OWNER, body.password,
                                       only_if_no_owner=True)
    except AccountError as err:
        status = 409 if "exists" in str(err) else 400
        return _error(status, str(err), reason="exists" if status == 409 else "invalid")
    log.info("owner account %s created from the web UI", user.name)
    await audit(request, "user.create", user.name, {"role": OWNER, "through": "first-start set-up"},
                actor=("setup", user.name))
    return await _open_session(request, principal_for_user(user), False, {})


async def list_tokens(request: web.Request) -> web.Response:
    """The API tokens: id, name, role, expiry, last use (never the token itself)."""
    tokens = await asyncio.to_thread(request.app[TOKENS_KEY].list)
    return _json({"tokens": [t.as_dict() for t in tokens]})


async def create_token(request: web.Request) -> web.Response:
    """Create an API token, ``{"name", "role"?, "expires_in_days"?}``: the answer holds the token, shown this once."""
    body = await _json_body(request, TokenBody)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, TokenBody)
    expires = None if body.expires_in_days is None else time.time() + body.expires_in_days * 86400.0
    try:
        token, info = await asyncio.to_thread(request.app[TOKENS_KEY].create, body.name, body.role, expires)
    except TokenError as err:
        return _error(400, str(err), field="name" if "name" in str(err) else "expires_in_days", reason="invalid")
    await audit(request, "token.create", info.name, {"id": info.id, "role": info.role, "expires": info.expires})
    return _json({"token": token, **info.as_dict()}, status=201)


async def revoke_token(request: web.Request) -> web.Response:
    """Revoke a token: it stops working at once, and sessions opened with it end."""
    token_id = request.match_info["id"]
    tokens = request.app[TOKENS_KEY]
    if await asyncio.to_thread(tokens.known, token_id) is None:
        return _error(404, f"no token {token_id!r}", field="id")
    known = await asyncio.to_thread(tokens.known, token_id)
    await asyncio.to_thread(tokens.revoke, token_id)
    await asyncio.to_thread(request.app[SESSIONS_KEY].end_all, "token", token_id)
    await audit(request, "token.revoke", known.name if known is not None else token_id,
                {"id": token_id, "role": known.role if known is not None else None})
    return web.Response(status=204)


async def list_users(request: web.Request) -> web.Response:
    """The people who may log in, with their roles and expiry."""
    users = await asyncio.to_thread(request.app[USERS_KEY].list)
    # The notification contacts a person can be linked to ([notify.<name>] of the config).
    return _json({"users": [u.as_dict() for u in users], "contacts": contact_names(request.app)})


async def add_user(request: web.Request) -> web.Response:
    """Add a person, ``{"username", "password", "role", "expires_in_days"?}`` (an installer needs an expiry)."""
    body = await _json_body(request, UserBody)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, UserBody)
    expires = None if body.expires_in_days is None else time.time() + body.expires_in_days * 86400.0
    try:
        user = await asyncio.to_thread(request.app[USERS_KEY].add, body.username, body.role, body.password,
                                       expires=expires)
    except AccountError as err:
        return _error(409 if "exists" in str(err) else 400, str(err), reason="invalid")
    await audit(request, "user.create", user.name, {"role": user.role, "expires": user.expires})
    return _json(user.as_dict(), status=201)


async def patch_user(request: web.Request) -> web.Response:
    """Change a person's role, expiry, password or language; a change of role or password ends their sessions."""
    name = request.match_info["name"]
    body = await _json_body(request, UserPatch)
    if isinstance(body, web.Response):
        return body
    assert isinstance(body, UserPatch)
    users = request.app[USERS_KEY]
    language = normalise(body.language) if body.language is not None else None
    if body.language is not None and language is None:
        return _error(400, f"no catalogue for the language {body.language!r} "
                      f"(languages: {', '.join(available_languages())})", field="language", reason="invalid")
    try:
        before = await asyncio.to_thread(users.get, name)
        if before is None:
            return _error(404, f"no user {name!r}", field="name")
        if "contact" in body.model_fields_set:
            if body.contact is not None and not known_contact(request.app, body.contact):
                return _error(400, f"no notification contact {body.contact!r} in the config ([notify.<name>])",
                              field="contact", reason="invalid")
            await asyncio.to_thread(users.set_contact, name, body.contact)
        if "language" in body.model_fields_set:
            await asyncio.to_thread(users.set_language, name, language)
        if body.model_fields_set & {"language", "contact"}:
            user = await asyncio.to_thread(users.get, name)
            assert user is not None
            refresh_contact(request.app, user, before.contact)
            if "contact" in body.model_fields_set:
                await audit(request, "user.contact", name, {"contact": body.contact})
            if body.model_fields_set <= {"language", "contact"}:
                return _json(user.as_dict())
        if body.password is not None:
            await asyncio.to_thread(users.set_password, name, body.password)
        if body.role is not None or "expires_in_days" in body.model_fields_set:
            # Absent: the expiry stays; null: it is lifted.
            expires: float | str | None = "keep"
            if "expires_in_days" in body.model_fields_set:
                expires = None if body.expires_in_days is None else time.time() + body.expires_in_days * 86400.0
            await asyncio.to_thread(users.update, name, role=body.role, expires=expires)
    except AccountError as err:
        return _error(400, str(err), reason="invalid")
    await asyncio.to_thread(request.app[SESSIONS_KEY].end_all, "user", name)
    user = await asyncio.to_thread(users.get, name)
    assert user is not None
    await audit(request, "user.change", name, {"role": user.role, "expires": user.expires,
                                               "password_changed": body.password is not None})
    return _json(user.as_dict())


async def remove_user(request: web.Request) -> web.Response:
    """Remove a person; their sessions end."""
    name = request.match_info["name"]
    try:
        removed = await asyncio.to_thread(request.app[USERS_KEY].remove, name)
    except AccountError as err:
        return _error(400, str(err), reason="invalid")
    if not removed:
        return _error(404, f"no user {name!r}", field="name")
    await asyncio.to_thread(request.app[SESSIONS_KEY].end_all, "user", name)
    await audit(request, "user.remove", name)
    return web.Response(status=204)


def add_login_routes(app: web.Application) -> None:
    app[LOGIN_LIMITER_KEY] = LoginRateLimiter()
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_patch("/api/me", patch_me)
    app.router.add_post("/api/me/password", change_password)
    app.router.add_get("/api/setup", setup_status)
    app.router.add_post("/api/setup/owner", create_owner)
    app.router.add_get("/api/tokens", list_tokens)
    app.router.add_post("/api/tokens", create_token)
    app.router.add_delete("/api/tokens/{id}", revoke_token)
    app.router.add_get("/api/users", list_users)
    app.router.add_post("/api/users", add_user)
    app.router.add_patch("/api/users/{name}", patch_user)
    app.router.add_delete("/api/users/{name}", remove_user)
