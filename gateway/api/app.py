"""The HTTP API (DESIGN.md contract 6): routes, authentication and roles, error shapes and the server.

Every ``/api`` route needs a credential: ``Authorization: Bearer <token>`` (machines, scripts), or the
browser session cookie set by ``POST /api/login`` (then every POST/PUT/PATCH/DELETE also needs the
``X-CSRF-Token`` header, equal to the ``hearth_csrf`` cookie, and must not come from another origin).
Which role may call which route is one table, :data:`gateway.api.accounts.ROUTE_ROLES`; a route it does
not name is the owner's only. ``/healthz`` and ``/metrics`` need nothing, nor do the web UI's static
files (``/``, ``/ui/...``: they hold no data). The routes the table calls PUBLIC check their credential
themselves: ``POST /api/login`` (the password or token is the body), the WebSocket ``/api/ws`` (the
session cookie, or a token in its first message), the first-start owner set-up (loopback only) and the
acknowledge links (``/api/ack/...``, a one-time token in the URL).
Every error is JSON (``{"error": ..., "field": ...}`` for bad input) and never carries a traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from aiohttp import web

from gateway.api.accounts import (
    PUBLIC,
    ROUTE_ROLES,
    Principal,
    SessionStore,
    UserStore,
    allowed_roles,
    principal_for_token,
)
from gateway.api.auth import TokenStore
from gateway.api.commands import CommandBody, run_command
from gateway.api.cookies import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, same_origin
from gateway.api.keys import (
    DEVICE_META_KEY,
    HUB_KEY,
    SESSIONS_KEY,
    STORE_KEY,
    TOKEN_INFO_KEY,
    TOKENS_KEY,
    USERS_KEY,
)
from gateway.api.responses import MAX_BODY_BYTES, _error, _json, _no_device
from gateway.hub import Hub
from gateway.model import json_schema
from gateway.model.types import Device

if TYPE_CHECKING:
    from gateway.api.ws import WsSettings
    from gateway.config import Config
    from gateway.devicemeta import DeviceMeta
    from gateway.store import Store

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "DEVICE_META_KEY",
    "HUB_KEY",
    "MAX_BODY_BYTES",
    "PUBLIC_API_ROUTES",
    "SESSIONS_KEY",
    "SESSION_COOKIE",
    "STORE_KEY",
    "TOKENS_KEY",
    "TOKEN_INFO_KEY",
    "USERS_KEY",
    "ApiServer",
    "CommandBody",
    "create_app",
    "hub_metrics",
]

log = logging.getLogger("hearth.api")

# A client retrying a bad token must not flood the log (or wear the SD card): one line per window.
AUTH_FAILURE_LOG_WINDOW_S = 60.0
# JSON answers at least this long are gzipped for a client that takes it (smaller ones gain little).
COMPRESS_MIN_BYTES = 2048
# Draining open requests on shutdown: long enough for a command waiting for its confirmation.
SHUTDOWN_TIMEOUT_S = 5.0

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# /api routes that check their credential themselves (method, path); see accounts.ROUTE_ROLES.
PUBLIC_API_ROUTES = frozenset(route for route, roles in ROUTE_ROLES.items() if roles == PUBLIC)
_DEVICE_FILTERS = ("area", "capability", "source")
_METRIC_NAME_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


# -------------------------------------------------------------------- middlewares


@web.middleware
async def _errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The one place errors become responses: HTTP errors as JSON, anything unexpected as a bare 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        if exc.status == 404:
            message = f"no such route: {request.method} {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} not allowed here"
        elif exc.status == 413:
            message = f"request body too large (limit {MAX_BODY_BYTES} bytes)"
        else:
            message = exc.reason
        return _json({"error": message}, status=exc.status, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(500, "internal error")


@web.middleware
async def _auth_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Credential and role check for everything under /api (unknown /api routes too: they reveal nothing)."""
    if not _is_api(request.path):
        return await handler(request)
    resource = request.match_info.route.resource
    roles = allowed_roles(request.method, resource.canonical) if resource is not None else None
    if roles == PUBLIC:
        return await handler(request)
    found = await authenticate(request)
    if isinstance(found, web.Response):
        return found
    request[TOKEN_INFO_KEY] = found
    guard = request.app.get(CONNECTION_GUARD_KEY)
    if guard is not None and request.protocol is not None:
        guard.proven.add(request.protocol)  # an authenticated connection is never closed to make room
    if roles is not None and found.role not in roles:
        return _json({"error": f"not allowed for the role {found.role!r}", "reason": "forbidden_role",
                      "role": found.role}, status=403)
    return await handler(request)


async def authenticate(request: web.Request) -> Principal | web.Response:
    """Who is calling: by the bearer header, else by the session cookie (with the CSRF and origin checks
    of a state-changing request). A response (401/403) when neither holds."""
    app = request.app
    header = request.headers.get("Authorization")
    if header is None and SESSION_COOKIE in request.cookies:
        verified = await asyncio.to_thread(app[SESSIONS_KEY].verify, request.cookies[SESSION_COOKIE])
        if verified is None:
            return _unauthorized("your session has ended: log in again", "invalid_token")
        session, principal = verified
        if request.method in UNSAFE_METHODS:
            if not same_origin(request):
                return _error(403, "refused a request from another site", reason="cross_origin")
            csrf = request.headers.get(CSRF_HEADER, "")
            if not csrf or csrf != request.cookies.get(CSRF_COOKIE) or not SessionStore.csrf_matches(session, csrf):
                return _error(403, f"missing or wrong {CSRF_HEADER} header (send the {CSRF_COOKIE} cookie's value)",
                              reason="csrf")
        return principal
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return _unauthorized("missing bearer token (send the header  Authorization: Bearer <token>, "
                             "or log in)", None)
    # Checking may re-read the token file (after a CLI revoke): file I/O stays off the event loop.
    info = await asyncio.to_thread(app[TOKENS_KEY].verify, token)
    if info is None:
        failures = app[_AUTH_FAILURES_KEY]
        now = app[HUB_KEY].clock.monotonic()
        failures.record(now, request.remote)
        address = request.remote or "?"
        wait_s = failures.limiter.retry_after_s(address, now)
        failures.limiter.failed(address, now)
        if wait_s > 0:
            # Guessing: each wrong token from this address now waits a second for its answer (a valid one is
            # still served at once: a limit must never lock out who holds a credential).
            await asyncio.sleep(BEARER_TARPIT_S)
            seconds = max(1, int(wait_s + 0.999))
            return _json({"error": "too many wrong tokens from this address: try again later", "reason":
                          "rate_limited", "retry_after_s": seconds}, status=429, headers={"Retry-After": str(seconds)})
        return _unauthorized("invalid, expired or revoked token", "invalid_token")
    return principal_for_token(info)


# Wrong bearer tokens an address may send a minute before each further one waits BEARER_TARPIT_S for a 429 (it was
# 1,900 guesses a second; with the connection cap that is now at most MAX_UNPROVEN_CONNECTIONS a second).
BEARER_MAX_FAILURES = 20
BEARER_TARPIT_S = 1.0


class _AuthFailureLog:
    """Logs rejected tokens at most once per window, with how many were left out."""

    def __init__(self) -> None:
        self._window_start = float("-inf")
        self._suppressed = 0
        from gateway.api.login import LoginRateLimiter

        # Wrong bearer tokens per address, as wrong passwords are counted for /api/login.
        self.limiter = LoginRateLimiter(max_failures=BEARER_MAX_FAILURES, window_s=60.0)

    def record(self, now: float, remote: str | None) -> None:
        if now - self._window_start < AUTH_FAILURE_LOG_WINDOW_S:
            self._suppressed += 1
            return
        extra = f" ({self._suppressed} more not logged)" if self._suppressed else ""
        log.warning("rejected an invalid or revoked API token from %s%s", remote, extra)
        self._window_start, self._suppressed = now, 0


_AUTH_FAILURES_KEY = web.AppKey("hearth.auth_failures", _AuthFailureLog)
# Set by ApiServer: which connections have proven themselves (see _ConnectionGuard).
CONNECTION_GUARD_KEY: web.AppKey[Any] = web.AppKey("hearth.connection_guard")


def _unauthorized(message: str, error_code: str | None) -> web.Response:
    challenge = 'Bearer realm="hearth"' + (f', error="{error_code}"' if error_code else "")
    return _json({"error": message}, status=401, headers={"WWW-Authenticate": challenge})


@web.middleware
async def _compress_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A large JSON answer (the devices of a big house, a day's history) goes gzipped to a client that
    takes it."""
    response = await handler(request)
    if (type(response) is web.Response and response.body is not None and not response.compression
            and "Content-Encoding" not in response.headers  # already encoded (a gzipped UI file)
            and response.content_type == "application/json" and isinstance(response.body, bytes)
            and len(response.body) >= COMPRESS_MIN_BYTES and "gzip" in request.headers.get("Accept-Encoding", "")):
        response.enable_compression(web.ContentCoding.gzip)
    return response


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if _is_api(request.path) or request.path in ("/healthz", "/metrics"):
        # Device state and tokens must not sit in a shared or browser cache.
        response.headers["Cache-Control"] = "no-store"
    if _is_api(request.path):
        response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    elif request.path == "/" or request.path.startswith("/ui/"):
        from gateway.api.ui import CSP

        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")


# -------------------------------------------------------------------- routes


class _Routes:
    def __init__(
        self,
        hub: Hub,
        health: Callable[[], dict[str, Any]],
        metrics: Callable[[], str] | None,
        command_timeout_s: float,
    ) -> None:
        self.hub = hub
        self.health = health
        self.metrics = metrics
        self.command_timeout_s = command_timeout_s

    async def healthz(self, request: web.Request) -> web.Response:
        """The gateway's health: adapters, MQTT, the store; 503 when something is wrong. Needs no credential and
        shows no addresses or names."""
        report = self.health()
        return _json(report, status=200 if report.get("status") == "ok" else 503)

    async def metrics_text(self, request: web.Request) -> web.Response:
        """Prometheus counters and gauges (text format): messages, commands, devices, adapters' drops. Needs no
        credential."""
        text = self.metrics() if self.metrics is not None else hub_metrics(self.hub)
        return web.Response(
            body=text.encode("utf-8"), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}
        )

    async def list_devices(self, request: web.Request) -> web.Response:
        """Every device with its state and what it supports; ``?area=``, ``?capability=``, ``?source=`` filter."""
        unknown = sorted(set(request.query) - set(_DEVICE_FILTERS))
        if unknown:
            return _error(
                400, f"unknown filter {unknown[0]!r} (filters: {', '.join(_DEVICE_FILTERS)})",
                field=f"query.{unknown[0]}",
            )
        area = request.query.get("area")
        capability = request.query.get("capability")
        source = request.query.get("source")
        devices = [
            device.as_dict()
            for _, device in sorted(self.hub.devices.items())
            if _matches(device, area, capability, source)
        ]
        return _json({"devices": devices})

    async def get_device(self, request: web.Request) -> web.Response:
        """One device: identity, area, tags, availability, state, and what it supports of each capability."""
        device_id = request.match_info["id"]
        device = self.hub.devices.get(device_id)
        if device is None:
            return _no_device(device_id)
        return _json(device.as_dict())

    async def post_command(self, request: web.Request) -> web.Response:
        """Send a command (``{"capability": "level", "command": "set", "args": {"percent": 40}}``, ``component``
        defaults to ``main``) and wait for the device to confirm it; the result's status gives the HTTP status."""
        device_id = request.match_info["id"]
        if device_id not in self.hub.devices:
            return _no_device(device_id)
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            # Refuse before reading a byte of it.
            raise web.HTTPRequestEntityTooLarge(MAX_BODY_BYTES, request.content_length)
        # No Content-Type check: a bearer header rules out cross-site form posts, a session needs the
        # CSRF header (which a form cannot send), and `curl -d` sends form encoding by default.
        raw = await request.read()
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # ValueError covers bad UTF-8 and over-long integers
            return _error(400, "the body is not valid JSON", field="body", reason="invalid_json")
        status, body = await run_command(self.hub, device_id, data, self.command_timeout_s, source="api")
        return _json(body, status=status)

    async def capabilities(self, request: web.Request) -> web.Response:
        """The capability model as JSON Schema (what ``hearth schema`` prints), plugin capabilities included."""
        return _json(json_schema())


def _matches(device: Device, area: str | None, capability: str | None, source: str | None) -> bool:
    if area is not None and (device.area or "").casefold() != area.casefold():
        return False
    if source is not None and device.source != source:
        return False
    return capability is None or any(capability in caps for caps in device.support.values())


def _metric_name(name: str) -> str:
    return _METRIC_NAME_BAD.sub("_", name)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def hub_metrics(hub: Hub) -> str:
    """Prometheus text exposition of the hub's counters and device gauges."""
    lines: list[str] = []
    for name, value in sorted(hub.counters.items()):
        metric = f"hearth_{_metric_name(name)}_total"
        lines += [f"# TYPE {metric} counter", f"{metric} {value}"]
    if hub.bad_input_by_source:
        metric = "hearth_bad_input_by_source_total"
        lines.append(f"# TYPE {metric} counter")
        for source, value in sorted(hub.bad_input_by_source.items()):
            lines.append(f'{metric}{{source="{_label_value(source)}"}} {value}')
    devices = list(hub.devices.values())
    lines += [
        "# HELP hearth_devices Devices the gateway knows.",
        "# TYPE hearth_devices gauge",
        f"hearth_devices {len(devices)}",
        "# HELP hearth_devices_available Devices known to be reachable now.",
        "# TYPE hearth_devices_available gauge",
        f"hearth_devices_available {sum(1 for d in devices if d.available is True)}",
    ]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------- app and server


def create_app(
    hub: Hub,
    tokens: TokenStore,
    *,
    health: Callable[[], dict[str, Any]],
    metrics: Callable[[], str] | None = None,
    command_timeout_s: float = 5.0,
    store: Store | None = None,
    device_meta: DeviceMeta | None = None,
    ws_settings: WsSettings | None = None,
    users: UserStore | None = None,
    sessions: SessionStore | None = None,
    config: Config | None = None,
) -> web.Application:
    """The aiohttp application: devices, commands, login, the WebSocket, history, energy and the web UI.

    ``store`` makes history and energy available, ``device_meta`` the owner's device edits. Scene routes
    are added by :func:`gateway.api.scenes.add_scene_routes`; the WebSocket then also carries scene,
    alert and mode events. Other route modules find the hub under ``HUB_KEY``. ``users`` and ``sessions``
    default to ``users.json`` and ``sessions.json`` beside the token file. ``config`` is what the personal-data
    export shows of the configuration (the notification contacts).
    """
    from dataclasses import replace

    from gateway.api.data import CONFIG_KEY, add_data_routes
    from gateway.api.login import add_login_routes
    from gateway.api.me import add_my_notification_routes
    from gateway.api.openapi import add_openapi_routes
    from gateway.api.things import add_thing_routes
    from gateway.api.ui import add_ui_routes
    from gateway.api.ws import WsSettings, add_ws_routes

    app = web.Application(
        middlewares=[_errors_middleware, _auth_middleware, _compress_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[HUB_KEY] = hub
    app[TOKENS_KEY] = tokens
    users = users or UserStore(tokens.path.with_name("users.json"))
    app[USERS_KEY] = users
    app[SESSIONS_KEY] = sessions or SessionStore(tokens.path.with_name("sessions.json"), users, tokens)
    app[_AUTH_FAILURES_KEY] = _AuthFailureLog()
    routes = _Routes(hub, health, metrics, command_timeout_s)
    app.router.add_get("/healthz", routes.healthz)
    app.router.add_get("/metrics", routes.metrics_text)
    app.router.add_get("/api/devices", routes.list_devices)
    app.router.add_get("/api/devices/{id}", routes.get_device)
    app.router.add_post("/api/devices/{id}/commands", routes.post_command)
    app.router.add_get("/api/capabilities", routes.capabilities)
    if store is not None:
        app[STORE_KEY] = store
    if device_meta is not None:
        app[DEVICE_META_KEY] = device_meta
    if config is not None:
        app[CONFIG_KEY] = config
    add_login_routes(app)
    add_my_notification_routes(app)
    add_data_routes(app)
    add_ws_routes(app, ws_settings or replace(WsSettings(), command_timeout_s=command_timeout_s))
    add_ui_routes(app)
    add_thing_routes(app)
    add_openapi_routes(app)  # last: it documents the routes of the app as served
    app.on_response_prepare.append(_security_headers)
    return app


# A connection that sends nothing, or a request line or headers a byte at a time, is closed after this long
# idle (aiohttp's default is an hour: 1,100 such sockets made the API unreachable under the default file limit).
IDLE_TIMEOUT_S = 15.0
# Connections that have not yet made an authenticated request (a browser fetching the login page, a client
# that never sends a thing): past this many, the oldest idle one is closed for each new one. Authenticated
# ones (the owner's UI, a WebSocket) are never closed for this.
MAX_UNPROVEN_CONNECTIONS = 64


class _ConnectionGuard:
    """Keeps unauthenticated connections from taking every socket (see MAX_UNPROVEN_CONNECTIONS): hooked into
    aiohttp's Server (the protocol factory) after the runner made it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.proven: set[Any] = set()  # RequestHandlers that made an authenticated request (while connected)
        self.closed = 0
        self._server: Any = None

    def attach(self, server: Any) -> None:
        self._server = server
        made = server.connection_made

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            self._trim(handler)

        server.connection_made = connection_made
        lost = server.connection_lost

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            self.proven.discard(handler)
            lost(handler, exc)

        server.connection_lost = connection_lost

    def _trim(self, newest: Any) -> None:
        connections = self._server._connections  # handler -> transport, oldest first
        unproven = [h for h in connections if h not in self.proven]
        excess = len(unproven) - self.limit
        for handler in unproven:
            if excess <= 0:
                break
            if handler is newest or getattr(handler, "_request_in_progress", False):
                continue
            handler.force_close()
            transport = connections.get(handler)
            if transport is not None:
                transport.close()
            self.closed += 1
            excess -= 1


class _ClientErrorFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (a NUL byte in a header, a broken request line) at ERROR with a
    whole traceback: any client could write the SD card full that way. Such a request already got its 400;
    the log keeps a count of them instead (``dropped``)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        from aiohttp.http_exceptions import HttpProcessingError

        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            self.dropped += 1
            return False
        return True


CLIENT_ERROR_LOG_FILTER = _ClientErrorFilter()


class ApiServer:
    """Serves an app on ``host:port`` while the context is open. ``port=0`` picks a free port. With
    ``ssl_context``, over HTTPS."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 8470, *,
                 ssl_context: ssl.SSLContext | None = None, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 max_unproven_connections: int = MAX_UNPROVEN_CONNECTIONS) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._ssl = ssl_context
        self._idle_timeout_s = idle_timeout_s
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.guard = _ConnectionGuard(max_unproven_connections)
        app[CONNECTION_GUARD_KEY] = self.guard  # before the app starts (it is frozen then)

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the API server is not running")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._ssl is not None else 'http'}://{host}:{self.port}"

    async def __aenter__(self) -> ApiServer:
        logging.getLogger("aiohttp.server").addFilter(CLIENT_ERROR_LOG_FILTER)  # once: the same filter object
        # access_log=None: one line per request is SD-card wear and noise; errors are logged anyway.
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S,
                               keepalive_timeout=self._idle_timeout_s)
        await runner.setup()
        try:
            assert runner.server is not None
            self.guard.attach(runner.server)
            site = web.TCPSite(runner, self.host, self._requested_port, ssl_context=self._ssl)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("HTTP API listening on %s", self.url)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self.port = None
        return False
