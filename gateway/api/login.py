"""Logging in from a browser: ``POST /api/login`` and the rate limit on guessing tokens.

The web UI keeps the token the owner typed and sends it as a bearer header (HTTP) or as the first
WebSocket message; ``/api/login`` only tells it whether the token is good, so the UI can say so before
showing the house. Failed attempts (here and on the WebSocket) are limited per client address: a token
is 256 random bits, so the limit is not what keeps it safe; it keeps a guessing client from costing
the gateway (and its log) anything.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import OrderedDict, deque

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.api.app import HUB_KEY, TOKENS_KEY, _error, _json, _pydantic_error

__all__ = ["LOGIN_LIMITER_KEY", "LoginRateLimiter", "add_login_routes"]

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

    token: str = Field(min_length=1, max_length=256)


def client_address(request: web.Request) -> str:
    # The peer address. Behind a reverse proxy every client has the proxy's address and they share
    # one limit (README); X-Forwarded-For is not trusted, since any client can send it.
    return request.remote or "unknown"


def too_many_attempts(retry_after_s: float) -> web.Response:
    seconds = max(1, math.ceil(retry_after_s))
    return _json({"error": f"too many failed logins from this address; try again in {seconds} s",
                  "retry_after_s": seconds}, status=429, headers={"Retry-After": str(seconds)})


async def login(request: web.Request) -> web.Response:
    app = request.app
    limiter = app[LOGIN_LIMITER_KEY]
    clock = app[HUB_KEY].clock
    address = client_address(request)
    wait_s = limiter.retry_after_s(address, clock.monotonic())
    if wait_s > 0:
        # Refused without looking at the token: a good guess must not be told apart while limited.
        limiter.refused += 1
        app[HUB_KEY].counters["login_rate_limited"] += 1
        return too_many_attempts(wait_s)
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return _error(400, "the body is not valid JSON", field="body", reason="invalid_json")
    try:
        body = LoginBody.model_validate(data)
    except ValidationError as err:
        return _pydantic_error(err, LoginBody)
    info = await asyncio.to_thread(app[TOKENS_KEY].verify, body.token)
    if info is None:
        limiter.failed(address, clock.monotonic())
        app[HUB_KEY].counters["login_failed"] += 1
        log.info("failed login from %s", address)
        return _json({"ok": False, "error": "invalid or revoked token"}, status=401,
                     headers={"WWW-Authenticate": 'Bearer realm="hearth", error="invalid_token"'})
    app[HUB_KEY].counters["logins"] += 1
    return _json({"ok": True, "name": info.name, "token_id": info.id})


def add_login_routes(app: web.Application) -> None:
    app[LOGIN_LIMITER_KEY] = LoginRateLimiter()
    app.router.add_post("/api/login", login)
