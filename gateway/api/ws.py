"""The WebSocket API, ``GET /api/ws``: live events and commands over one connection.

Protocol (JSON text frames; every client message has a ``type``):

1. A browser logged in with a session cookie (``POST /api/login``) is authenticated by it, when the
   connection's Origin is this gateway (a page of another site gets no use of the cookie): the server
   sends ``{"type": "auth_ok", "name": ..., "role": ...}`` at once. Otherwise the client's **first**
   message authenticates: ``{"type": "auth", "token": "hth_..."}`` (a browser cannot set headers on a
   WebSocket, so the route is exempt from the bearer-header check). The server answers ``auth_ok``, or
   closes with **4401** on a bad token, a missing one or none within ``auth_timeout_s`` (10 s), with
   **4429** while the address is rate-limited (as ``POST /api/login``), and with **4403** when the role
   may not use the live connection (a resident: their view has its own routes). Commands need a role
   that may send them over HTTP too (accounts.WS_COMMAND_ROLES); alert events go only to roles that may
   list alerts.
2. ``{"type": "subscribe", "id": 1, "events": ["state", "availability", "devices", "alerts", "scenes",
   "mode", "occupancy", "device_events"], "filter": {"device": ..., "area": ..., "capability": ...},
   "snapshot": true}``:
   answered by ``{"type": "result", "id": 1, "ok": true, "subscription": 1}`` (plus, with ``snapshot``,
   ``devices``, the matching devices as ``GET /api/devices`` shows them, and, when the subscription wants
   mode or occupancy and scenes run, ``house``, as ``GET /api/house`` shows it: taken in the same step as
   the subscription, so no change falls between the two). Filters (a string or a list each) apply to the
   device events (state, availability, devices); alerts, scenes, mode and occupancy are house-wide.
   ``{"type": "unsubscribe", "id": 2, "subscription": 1}`` ends one.
3. ``{"type": "command", "id": 3, "device": ..., "component": "main", "capability": ..., "command": ...,
   "args": {}, "timeout_s"?: 5}``: answered by ``{"type": "result", "id": 3, "ok": ..., "http_status": ...,
   ...}`` with the same body and status the HTTP command route gives.
4. Events: ``{"type": "event", "subscription": 1, "event": "state", "device", "component", "capability",
   "attribute", "value", "old", "t"}``; ``"availability"`` (device, available); ``"devices"`` (change:
   added/updated/removed, device, data); ``"alerts"`` (change, alert); ``"scenes"`` (scene, trace, state);
   ``"mode"`` (mode, old, source); ``"occupancy"`` (occupancy: home/away/unknown, old, since, reason: what
   showed it); ``"device_event"`` (device, component, capability, name, data: a momentary event such as a button's
   ``pressed``, which changes no state). ``t`` is epoch seconds; ``since`` is ISO-8601, as in ``GET /api/house``.

A client that does not read fast enough is dropped rather than buffered without end: events wait in a
bounded per-connection queue, and when it is full the connection is closed with **4008** (counted as
``ws_dropped_slow``); the client reconnects and takes a fresh snapshot. Bus subscriptions are removed
when the connection ends, however it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from gateway.api.accounts import WS_COMMAND_ROLES, WS_ROLES, Principal, allowed_roles, principal_for_token
from gateway.api.commands import run_command
from gateway.api.cookies import SESSION_COOKIE, same_origin
from gateway.api.keys import ENGINE_KEY, HUB_KEY, SESSIONS_KEY, TOKENS_KEY
from gateway.api.login import LOGIN_LIMITER_KEY, client_address
from gateway.bus import (
    AlertChanged,
    AvailabilityChanged,
    DeviceAdded,
    DeviceEvent,
    DeviceRemoved,
    DeviceUpdated,
    Event,
    ModeChanged,
    OccupancyChanged,
    SceneRan,
    StateChanged,
    Unsubscribe,
)
from gateway.clock import iso_utc
from gateway.hub import Hub

__all__ = [
    "CLOSE_AUTH",
    "CLOSE_RATE_LIMITED",
    "CLOSE_SLOW",
    "EVENT_KINDS",
    "WS_SETTINGS_KEY",
    "WsSettings",
    "add_ws_routes",
    "open_connections",
]

log = logging.getLogger("hearth.api.ws")

CLOSE_AUTH = 4401
CLOSE_RATE_LIMITED = 4429
CLOSE_SLOW = 4008
CLOSE_REVOKED = 4403

EVENT_KINDS: dict[str, tuple[type[Event], ...]] = {
    "state": (StateChanged,),
    "availability": (AvailabilityChanged,),
    "devices": (DeviceAdded, DeviceUpdated, DeviceRemoved),
    "alerts": (AlertChanged,),
    "scenes": (SceneRan,),
    "mode": (ModeChanged,),
    "occupancy": (OccupancyChanged,),
    "device_events": (DeviceEvent,),
}
_DEVICE_KINDS = frozenset({"state", "availability", "devices", "device_events"})
_FILTER_KEYS = ("device", "area", "capability")
_DEVICE_CHANGE = {DeviceAdded: "added", DeviceUpdated: "updated", DeviceRemoved: "removed"}


@dataclass(frozen=True)
class WsSettings:
    # Long enough for a person's phone on a slow link to send one message; short enough that an
    # unauthenticated socket does not sit open.
    auth_timeout_s: float = 10.0
    # Events queued for one client. A house makes a few events a second; 1000 is minutes of backlog
    # for a client that stalls, and ~100-300 KB of memory, before it is dropped.
    queue_max: int = 1000
    # Messages from the client (a command is a few hundred bytes).
    max_message_bytes: int = 64 * 1024
    # Commands of one client in flight at once (each may wait seconds for its device to confirm).
    max_commands_in_flight: int = 16
    subscriptions_max: int = 64
    # A token revoked (`hearth token revoke`, the UI) or a session ended ends open connections within this
    # time: a stat of the token file a second per connection (it is read again only when it changed).
    recheck_token_s: float = 1.0
    # Ping interval: a phone that left the Wi-Fi is noticed and its connection freed.
    heartbeat_s: float = 30.0
    # When dropping a slow client, how long its close frame may take before the socket is cut.
    close_timeout_s: float = 2.0
    command_timeout_s: float = 5.0


WS_SETTINGS_KEY = web.AppKey("hearth.ws_settings", WsSettings)
_CONNECTIONS_KEY = web.AppKey("hearth.ws_connections", weakref.WeakSet)


class _ProtocolError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class _SlowClient(Exception):
    pass


def _as_set(value: Any, field: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise _ProtocolError(f"{field}: expected a string or a non-empty list of strings", field)


@dataclass
class _Subscription:
    id: Any
    kinds: frozenset[str]
    devices: frozenset[str] | None
    areas: frozenset[str] | None  # casefolded
    capabilities: frozenset[str] | None

    @property
    def filtered(self) -> bool:
        return self.devices is not None or self.areas is not None or self.capabilities is not None

    def wants_device(self, hub: Hub, device_id: str, capability: str | None = None) -> bool:
        if self.devices is not None and device_id not in self.devices:
            return False
        if self.areas is None and self.capabilities is None:
            return True
        device = hub.devices.get(device_id)
        if device is None:
            # A removed device: only a device filter can still say whether it was wanted.
            return self.areas is None and self.capabilities is None
        if self.areas is not None and (device.area or "").casefold() not in self.areas:
            return False
        if self.capabilities is not None:
            if capability is not None:
                return capability in self.capabilities
            return any(cap in self.capabilities for caps in device.support.values() for cap in caps)
        return True


class _Connection:
    """One client: its subscriptions, its outgoing queue and its command tasks."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, settings: WsSettings) -> None:
        self.request = request
        self.app = request.app
        self.hub: Hub = request.app[HUB_KEY]
        self.ws = ws
        self.settings = settings
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=settings.queue_max)
        self.subscriptions: dict[Any, _Subscription] = {}
        self.token: str | None = None
        self.token_name: str | None = None
        self.session_id: str | None = None
        self.principal: Principal | None = None
        self.overflowed = asyncio.Event()
        self._unsubscribes: dict[type[Event], Unsubscribe] = {}
        self._commands: set[asyncio.Task[None]] = set()

    # ---------------------------------------------------------------- outgoing

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message. Never blocks: a full queue marks the client as too slow."""
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(json.dumps(message, ensure_ascii=False, allow_nan=False, default=str))
        except asyncio.QueueFull:
            self.overflowed.set()
            self._drop_bus()  # nothing more will be delivered: stop paying for it now

    async def write_loop(self) -> None:
        while True:
            text = await self.queue.get()
            await self.ws.send_str(text)

    # ---------------------------------------------------------------- bus

    def _sync_bus(self) -> None:
        """Subscribe to exactly the event types some subscription wants."""
        wanted = {etype for sub in self.subscriptions.values() for kind in sub.kinds for etype in EVENT_KINDS[kind]}
        for etype in list(self._unsubscribes):
            if etype not in wanted:
                self._unsubscribes.pop(etype)()
        for etype in wanted:
            if etype not in self._unsubscribes:
                self._unsubscribes[etype] = self.hub.bus.subscribe(etype, self._on_event)

    def _drop_bus(self) -> None:
        for unsubscribe in self._unsubscribes.values():
            unsubscribe()
        self._unsubscribes.clear()

    def _on_event(self, event: Event) -> None:
        # On the bus, synchronously, for every event of a subscribed type: build and queue, nothing more.
        for sub in self.subscriptions.values():
            message = self._message_for(sub, event)
            if message is not None:
                self.send(message)

    def _message_for(self, sub: _Subscription, event: Event) -> dict[str, Any] | None:
        hub = self.hub
        if isinstance(event, StateChanged):
            if "state" not in sub.kinds or (sub.filtered and not sub.wants_device(hub, event.device_id,
                                                                                   event.capability)):
                return None
            return {"type": "event", "subscription": sub.id, "event": "state", "device": event.device_id,
                    "component": event.component, "capability": event.capability, "attribute": event.attribute,
                    "value": event.new, "old": event.old, "t": event.t}
        if isinstance(event, DeviceEvent):
            if "device_events" not in sub.kinds or (sub.filtered and not sub.wants_device(hub, event.device_id,
                                                                                         event.capability)):
                return None
            return {"type": "event", "subscription": sub.id, "event": "device_event", "device": event.device_id,
                    "component": event.component, "capability": event.capability, "name": event.event,
                    "data": event.data, "t": event.t}
        if isinstance(event, AvailabilityChanged):
            if "availability" not in sub.kinds or (sub.filtered and not sub.wants_device(hub, event.device_id)):
                return None
            return {"type": "event", "subscription": sub.id, "event": "availability", "device": event.device_id,
                    "available": event.available, "t": event.t}
        if isinstance(event, (DeviceAdded, DeviceUpdated, DeviceRemoved)):
            if "devices" not in sub.kinds or (sub.filtered and not sub.wants_device(hub, event.device_id)):
                return None
            device = hub.devices.get(event.device_id)
            return {"type": "event", "subscription": sub.id, "event": "devices",
                    "change": _DEVICE_CHANGE[type(event)], "device": event.device_id,
                    "data": device.as_dict() if device is not None and not isinstance(event, DeviceRemoved)
                    else None, "t": event.t}
        if isinstance(event, AlertChanged):
            if "alerts" not in sub.kinds:
                return None
            return {"type": "event", "subscription": sub.id, "event": "alerts", "change": event.change,
                    "alert": event.alert, "t": event.t}
        if isinstance(event, SceneRan):
            if "scenes" not in sub.kinds:
                return None
            engine = _engine(self.app)
            runtime = engine.scenes.get(event.scene) if engine is not None else None
            return {"type": "event", "subscription": sub.id, "event": "scenes", "scene": event.scene,
                    "trace": event.trace, "state": runtime.as_dict() if runtime is not None else None,
                    "t": event.t}
        if isinstance(event, ModeChanged):
            if "mode" not in sub.kinds:
                return None
            return {"type": "event", "subscription": sub.id, "event": "mode", "mode": event.new, "old": event.old,
                    "source": event.source, "t": event.t}
        if isinstance(event, OccupancyChanged):
            if "occupancy" not in sub.kinds:
                return None
            return {"type": "event", "subscription": sub.id, "event": "occupancy", "occupancy": event.new,
                    "old": event.old, "since": iso_utc(event.t), "reason": event.reason, "t": event.t}
        return None

    # ---------------------------------------------------------------- incoming

    async def handle(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise _ProtocolError("a message must be a JSON object", "message")
        kind = data.get("type")
        if kind == "subscribe":
            self._subscribe(data)
        elif kind == "unsubscribe":
            self._unsubscribe(data)
        elif kind == "command":
            self._command(data)
        elif kind == "ping":
            self.send({"type": "pong", "id": data.get("id")})
        elif kind == "auth":
            raise _ProtocolError("already authenticated", "type")
        else:
            raise _ProtocolError(f"unknown message type {kind!r} (types: subscribe, unsubscribe, command, ping)",
                                 "type")

    def _subscribe(self, data: dict[str, Any]) -> None:
        sub_id = _message_id(data)
        unknown = set(data) - {"type", "id", "events", "filter", "snapshot"}
        if unknown:
            raise _ProtocolError(f"unknown field {sorted(unknown)[0]!r}", sorted(unknown)[0])
        if sub_id in self.subscriptions:
            raise _ProtocolError(f"subscription {sub_id!r} exists already (ids must be unique)", "id")
        if len(self.subscriptions) >= self.settings.subscriptions_max:
            raise _ProtocolError(f"at most {self.settings.subscriptions_max} subscriptions", "id")
        events = data.get("events", list(EVENT_KINDS))
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise _ProtocolError("events: expected a non-empty list of event names", "events")
        bad = [e for e in events if e not in EVENT_KINDS]
        if bad:
            raise _ProtocolError(f"events: unknown event {bad[0]!r} (events: {', '.join(EVENT_KINDS)})", "events")
        flt = data.get("filter") or {}
        if not isinstance(flt, dict):
            raise _ProtocolError("filter: expected an object", "filter")
        unknown = set(flt) - set(_FILTER_KEYS)
        if unknown:
            name = sorted(unknown)[0]
            raise _ProtocolError(f"filter.{name}: unknown filter (filters: {', '.join(_FILTER_KEYS)})",
                                 f"filter.{name}")
        if "alerts" in events and not self._may("GET", "/api/alerts"):
            # Not an error: a client subscribing to everything simply gets what its role may see.
            events = [e for e in events if e != "alerts"]
            if not events:
                raise _ProtocolError(f"events: alerts are not for the role {self.principal.role!r}",  # type: ignore[union-attr]
                                     "events")
        areas = _as_set(flt.get("area"), "filter.area")
        sub = _Subscription(
            id=sub_id, kinds=frozenset(events), devices=_as_set(flt.get("device"), "filter.device"),
            areas=None if areas is None else frozenset(a.casefold() for a in areas),
            capabilities=_as_set(flt.get("capability"), "filter.capability"),
        )
        snapshot = data.get("snapshot", False)
        if not isinstance(snapshot, bool):
            raise _ProtocolError("snapshot: expected true or false", "snapshot")
        self.subscriptions[sub_id] = sub
        self._sync_bus()
        result: dict[str, Any] = {"type": "result", "id": sub_id, "ok": True, "subscription": sub_id}
        if snapshot:
            hub = self.hub
            result["devices"] = [d.as_dict() for _, d in sorted(hub.devices.items())
                                 if not sub.filtered or sub.wants_device(hub, d.id)]
            engine = _engine(self.app)
            if engine is not None and sub.kinds & {"mode", "occupancy"}:
                result["house"] = engine.house()
        self.send(result)

    def _unsubscribe(self, data: dict[str, Any]) -> None:
        msg_id = _message_id(data)
        sub_id = data.get("subscription")
        if self.subscriptions.pop(sub_id, None) is None:
            raise _ProtocolError(f"no subscription {sub_id!r}", "subscription")
        self._sync_bus()
        self.send({"type": "result", "id": msg_id, "ok": True})

    def _may(self, method: str, path: str) -> bool:
        roles = allowed_roles(method, path)
        return self.principal is not None and (roles == "public" or self.principal.role in roles)

    def _command(self, data: dict[str, Any]) -> None:
        msg_id = _message_id(data)
        if self.principal is None or self.principal.role not in WS_COMMAND_ROLES:
            role = self.principal.role if self.principal else None
            self.send({"type": "result", "id": msg_id, "ok": False, "http_status": 403,
                       "error": f"not allowed for the role {role!r}", "reason": "forbidden_role"})
            return
        device_id = data.get("device")
        if not isinstance(device_id, str) or not device_id:
            raise _ProtocolError("device: required (a device id)", "device")
        if len(self._commands) >= self.settings.max_commands_in_flight:
            raise _ProtocolError(f"too many commands in flight (at most {self.settings.max_commands_in_flight})",
                                 "id")
        body = {k: v for k, v in data.items() if k not in ("type", "id", "device")}
        task = asyncio.get_running_loop().create_task(self._run_command(msg_id, device_id, body),
                                                      name=f"ws:command:{device_id}")
        # Kept referenced until done (a task only the loop knows of can be collected mid-flight).
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _run_command(self, msg_id: Any, device_id: str, body: dict[str, Any]) -> None:
        status, result = await run_command(self.hub, device_id, body, self.settings.command_timeout_s,
                                           source="api")
        self.send({**result, "type": "result", "id": msg_id, "ok": status < 300, "http_status": status})

    # ---------------------------------------------------------------- lifecycle

    async def cancel_commands(self) -> None:
        for task in list(self._commands):
            task.cancel()
        if self._commands:
            await asyncio.gather(*self._commands, return_exceptions=True)

    def close_bus(self) -> None:
        self._drop_bus()
        self.subscriptions.clear()


def _message_id(data: dict[str, Any]) -> Any:
    msg_id = data.get("id")
    if isinstance(msg_id, bool) or not isinstance(msg_id, (int, str)):
        raise _ProtocolError("id: required (a number or string the answer will carry)", "id")
    return msg_id


def _engine(app: web.Application) -> Any:
    return app.get(ENGINE_KEY)


async def _authenticate(conn: _Connection) -> bool:
    """Wait for the first message and check its token. False: the connection was closed."""
    ws, app, settings = conn.ws, conn.app, conn.settings
    limiter = app[LOGIN_LIMITER_KEY]
    clock = conn.hub.clock
    address = client_address(conn.request)
    if conn.principal is not None:  # by the session cookie, before the upgrade
        return await _authorized(conn)
    # While the address is limited a token is still checked: nobody guesses 256 random bits, so someone
    # else's failures must not lock out a client holding a valid token. A wrong one then gets 4429.
    wait_s = limiter.retry_after_s(address, clock.monotonic())
    try:
        msg = await ws.receive(timeout=settings.auth_timeout_s)
    except TimeoutError:
        await ws.close(code=CLOSE_AUTH, message=b"authentication timeout: send {\"type\": \"auth\", ...} first")
        return False
    if msg.type != WSMsgType.TEXT:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return False
        await ws.close(code=CLOSE_AUTH, message=b"authentication required")
        return False
    try:
        data = json.loads(msg.data)
    except ValueError:
        data = None
    token = data.get("token") if isinstance(data, dict) and data.get("type") == "auth" else None
    if not isinstance(token, str) or not token or len(token) > 256:
        await ws.close(code=CLOSE_AUTH, message=b"authentication required: first message {\"type\": \"auth\", "
                                                b"\"token\": ...}")
        return False
    info = await asyncio.to_thread(app[TOKENS_KEY].verify, token)
    if info is None:
        limiter.failed(address, clock.monotonic())
        conn.hub.counters["ws_auth_failed"] += 1
        if wait_s > 0:
            limiter.refused += 1
            conn.hub.counters["login_rate_limited"] += 1
            await ws.close(code=CLOSE_RATE_LIMITED,
                           message=f"too many failed logins; try again in {int(wait_s) + 1} s".encode())
        else:
            await ws.close(code=CLOSE_AUTH, message=b"invalid or revoked token")
        return False
    conn.token, conn.token_name = token, info.name
    conn.principal = principal_for_token(info)
    return await _authorized(conn)


async def _authorized(conn: _Connection) -> bool:
    principal = conn.principal
    assert principal is not None
    if principal.role not in WS_ROLES:
        await conn.ws.close(code=CLOSE_REVOKED, message=f"not allowed for the role {principal.role!r}".encode())
        return False
    conn.send({"type": "auth_ok", "name": principal.name, "role": principal.role})
    return True


async def _session_principal(request: web.Request) -> tuple[str, Principal] | None:
    """The session cookie's principal, if the cookie is valid and the page opening the socket is ours."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id or not same_origin(request) or "Origin" not in request.headers:
        return None
    verified = await asyncio.to_thread(request.app[SESSIONS_KEY].verify, session_id)
    return None if verified is None else (session_id, verified[1])


async def _read_loop(conn: _Connection) -> None:
    ws = conn.ws
    async for msg in ws:
        if msg.type == WSMsgType.TEXT:
            try:
                data = json.loads(msg.data)
            except ValueError:
                conn.send({"type": "error", "error": "not valid JSON", "field": "message"})
                continue
            try:
                await conn.handle(data)
            except _ProtocolError as err:
                answer: dict[str, Any] = {"type": "result" if isinstance(data, dict) and "id" in data else "error",
                                          "ok": False, "error": err.message, "field": err.field}
                if isinstance(data, dict) and "id" in data:
                    answer["id"] = data["id"]
                conn.send(answer)
        elif msg.type == WSMsgType.BINARY:
            conn.send({"type": "error", "error": "binary messages are not understood; send JSON text"})
        elif msg.type == WSMsgType.ERROR:
            log.debug("websocket error: %s", ws.exception())
            return


async def _watch_token(conn: _Connection) -> None:
    tokens = conn.app[TOKENS_KEY]
    sessions = conn.app[SESSIONS_KEY]
    while True:
        await asyncio.sleep(conn.settings.recheck_token_s)
        if conn.token is not None and await asyncio.to_thread(tokens.verify, conn.token) is None:
            await conn.ws.close(code=CLOSE_REVOKED, message=b"token revoked")
            return
        if conn.session_id is not None and await asyncio.to_thread(sessions.verify, conn.session_id) is None:
            await conn.ws.close(code=CLOSE_REVOKED, message=b"session ended")
            return


async def _watch_overflow(conn: _Connection) -> None:
    await conn.overflowed.wait()
    raise _SlowClient


async def websocket(request: web.Request) -> web.StreamResponse:
    """The WebSocket: live events and commands over one connection (see below)."""
    app = request.app
    settings = app.get(WS_SETTINGS_KEY) or WsSettings()
    # Before the upgrade: the cookie is checked once, and only for a page of this gateway (Origin).
    by_cookie = await _session_principal(request)
    ws = web.WebSocketResponse(heartbeat=settings.heartbeat_s, max_msg_size=settings.max_message_bytes)
    await ws.prepare(request)
    conn = _Connection(request, ws, settings)
    if by_cookie is not None:
        conn.session_id, conn.principal = by_cookie
    hub = conn.hub
    connections = app[_CONNECTIONS_KEY]
    connections.add(ws)
    hub.counters["ws_connections"] += 1
    try:
        if not await _authenticate(conn):
            return ws
        try:
            async with asyncio.TaskGroup() as tasks:
                reader = tasks.create_task(_read_loop(conn), name="ws:read")
                writer = tasks.create_task(conn.write_loop(), name="ws:write")
                watch = tasks.create_task(_watch_token(conn), name="ws:token")
                overflow = tasks.create_task(_watch_overflow(conn), name="ws:overflow")
                # The reader ends when the client closes; then everything else stops too.
                await asyncio.wait({reader})
                for task in (writer, watch, overflow):
                    task.cancel()
        except* _SlowClient:
            hub.counters["ws_dropped_slow"] += 1
            log.warning("dropped a WebSocket client (%s) that fell %d events behind",
                        client_address(request), settings.queue_max)
            await _close_slow(conn)
        except* ConnectionError:
            pass  # the client went away in the middle of a send
        except* Exception as group:
            # The socket is upgraded: no error response is possible any more, so log and close.
            log.error("WebSocket connection failed", exc_info=group)
            with contextlib.suppress(Exception):
                await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"internal error")
    finally:
        conn.close_bus()
        await conn.cancel_commands()
        connections.discard(ws)
    return ws


async def _close_slow(conn: _Connection) -> None:
    try:
        async with asyncio.timeout(conn.settings.close_timeout_s):
            await conn.ws.close(code=CLOSE_SLOW, message=b"client too slow: event queue full")
    except (TimeoutError, ConnectionError):
        # Its socket buffer is full too (it stopped reading): cut it.
        transport = conn.request.transport
        if transport is not None:
            transport.abort()


async def _close_all(app: web.Application) -> None:
    """On shutdown: tell open clients we are going away, so the server does not wait for them."""
    for ws in list(app[_CONNECTIONS_KEY]):
        with contextlib.suppress(Exception):
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"gateway shutting down")


def add_ws_routes(app: web.Application, settings: WsSettings | None = None) -> None:
    app[WS_SETTINGS_KEY] = settings or WsSettings()
    app[_CONNECTIONS_KEY] = weakref.WeakSet()
    app.router.add_get("/api/ws", websocket)
    app.on_shutdown.append(_close_all)


def open_connections(app: web.Application) -> int:
    """WebSocket clients connected now (authenticated or not)."""
    return len(app[_CONNECTIONS_KEY])
