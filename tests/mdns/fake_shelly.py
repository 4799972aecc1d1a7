"""A fake Shelly Gen2+ web server: ``GET /shelly``, ``POST /rpc`` (JSON-RPC frames) and the ``/rpc`` WebSocket,
in the shapes of shelly-api-docs gen2 ("RPC Protocol", "RPC Channels", "Notifications", "Authentication"),
serving the genuine status/device-info payloads of tests/fixtures/shelly (Plus 1PM, Pro 4PM).

Digest auth (``password=``) is checked here independently of the adapter's code: ``HA1 = SHA-256(admin:realm:pw)``;
over HTTP the RFC 7616 header with ``HA2 = SHA-256(POST:/rpc)``, over the WebSocket the frame's ``auth`` object with
``HA2 = SHA-256(dummy_method:dummy_uri)``. ``Shelly.GetDeviceInfo`` and ``/shelly`` stay open, as on the device.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shelly"
UNAUTHENTICATED = ("Shelly.GetDeviceInfo",)


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FakeShelly:
    """``async with FakeShelly("pro4pm", host="127.0.0.1") as fake: fake.port``"""

    def __init__(self, fixture: str = "plus1pm", *, host: str = "127.0.0.1", port: int = 0,
                 password: str | None = None, websocket: bool = True, state: FakeShelly | None = None) -> None:
        if state is not None:  # the same device, (re)started elsewhere (a new DHCP lease)
            self.device_info, self.status = state.device_info, state.status
        else:
            data = load_fixture(fixture)
            self.device_info, self.status = data["device_info"], data["status"]
        self.id: str = self.device_info["id"]
        self.host = host
        self.port = port
        self.password = password
        self.websocket = websocket
        self.device_info["auth_en"] = password is not None
        self.device_info["auth_domain"] = self.id if password is not None else None
        self.calls: Counter[tuple[str, str]] = Counter()  # (channel "http"/"ws", method)
        self.requests: list[dict[str, Any]] = []
        self.http_auth_failures = 0
        self.ws_auth_failures = 0
        self.notifications_sent = 0
        #: method -> raw body to answer instead (malformed-answer tests)
        self.garbage: dict[str, bytes] = {}
        self._nonces: set[str] = set()
        self._subscribers: dict[web.WebSocketResponse, str] = {}
        self._sockets: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle

    async def __aenter__(self) -> FakeShelly:
        app = web.Application()
        app.router.add_get("/shelly", self._shelly)
        app.router.add_post("/rpc", self._http_rpc)
        app.router.add_get("/rpc", self._ws_rpc)
        # A short shutdown: a device that is switched off does not wait for its clients to hang up.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def count(self, method: str) -> int:
        return sum(n for (_, m), n in self.calls.items() if m == method)

    def output(self, switch: int) -> bool:
        return bool(self.status[f"switch:{switch}"]["output"])

    # -- HTTP

    async def _shelly(self, request: web.Request) -> web.Response:
        return web.json_response(self.device_info)

    def _challenge_header(self) -> str:
        nonce = secrets.token_hex(8)
        self._nonces.add(nonce)
        return f'Digest qop="auth", realm="{self.id}", nonce="{nonce}", algorithm=SHA-256'

    def _http_authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        params = {m.group(1): m.group(2) if m.group(2) is not None else m.group(3)
                  for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', header[7:])}
        if params.get("nonce") not in self._nonces or params.get("username") != "admin":
            return False
        ha1 = _h(f"admin:{self.id}:{self.password}")
        ha2 = _h(f"POST:{params.get('uri')}")
        expected = _h(f"{ha1}:{params['nonce']}:{params.get('nc')}:{params.get('cnonce')}:auth:{ha2}")
        return params.get("response") == expected and params.get("algorithm") == "SHA-256"

    async def _http_rpc(self, request: web.Request) -> web.Response:
        frame = await request.json()
        self.requests.append(frame)
        method = frame.get("method")
        if self.password is not None and method not in UNAUTHENTICATED and not self._http_authorized(request):
            self.http_auth_failures += 1
            return web.json_response(
                {"id": frame.get("id"), "src": self.id, "error": {"code": 401, "message": "unauthorized"}},
                status=401, headers={"WWW-Authenticate": self._challenge_header()})
        self.calls["http", method] += 1
        if method in self.garbage:
            return web.Response(body=self.garbage[method], content_type="application/json")
        body = self._dispatch(method, frame.get("params") or {})
        return web.json_response({"id": frame.get("id"), "src": self.id, "dst": frame.get("src"), **body})

    # -- WebSocket

    def _ws_authorized(self, frame: dict[str, Any]) -> bool:
        auth = frame.get("auth")
        if not isinstance(auth, dict) or str(auth.get("nonce")) not in self._nonces:
            return False
        ha1 = _h(f"admin:{self.id}:{self.password}")
        ha2 = _h("dummy_method:dummy_uri")
        expected = _h(f"{ha1}:{auth['nonce']}:1:{auth.get('cnonce')}:auth:{ha2}")
        return auth.get("response") == expected and auth.get("realm") == self.id

    async def _ws_rpc(self, request: web.Request) -> web.StreamResponse:
        if not self.websocket:
            return web.Response(status=404, text="no websocket here")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await self._serve_ws(ws)
        finally:
            self._sockets.discard(ws)
            self._subscribers.pop(ws, None)
        return ws

    async def _serve_ws(self, ws: web.WebSocketResponse) -> None:
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            self.requests.append(frame)
            method, src = frame.get("method"), frame.get("src")
            reply: dict[str, Any] = {"id": frame.get("id"), "src": self.id, "dst": src}
            if self.password is not None and method not in UNAUTHENTICATED and not self._ws_authorized(frame):
                self.ws_auth_failures += 1
                nonce = str(int(time.time()))
                self._nonces.add(nonce)
                challenge = {"auth_type": "digest", "nonce": int(nonce), "nc": 1, "realm": self.id,
                             "algorithm": "SHA-256"}
                await ws.send_json({**reply, "error": {"code": 401, "message": json.dumps(challenge)}})
                continue
            self.calls["ws", method] += 1
            if isinstance(src, str):
                self._subscribers[ws] = src  # notifications go to whoever sent a request with a src
            await ws.send_json({**reply, **self._dispatch(method, frame.get("params") or {})})

    async def notify(self, params: dict[str, Any], method: str = "NotifyStatus") -> None:
        for ws, src in list(self._subscribers.items()):
            frame = {"src": self.id, "dst": src, "method": method, "params": {"ts": time.time(), **params}}
            try:
                await ws.send_json(frame)
                self.notifications_sent += 1
            except ConnectionError:
                self._subscribers.pop(ws, None)

    async def send_raw(self, text: str) -> None:
        for ws in list(self._subscribers):
            await ws.send_str(text)

    # -- the device

    def _dispatch(self, method: Any, params: dict[str, Any]) -> dict[str, Any]:
        if method == "Shelly.GetDeviceInfo":
            return {"result": self.device_info}
        if method == "Shelly.GetStatus":
            return {"result": copy.deepcopy(self.status)}
        if method in ("Switch.Set", "Switch.Toggle"):
            key = f"switch:{params.get('id', 0)}"
            if key not in self.status:
                return {"error": {"code": -105, "message": f"Argument 'id', value {params.get('id')} not found!"}}
            was_on = bool(self.status[key]["output"])
            on = (not was_on) if method == "Switch.Toggle" else bool(params.get("on"))
            self._later(self._set_output(key, on))
            return {"result": {"was_on": was_on}}
        return {"error": {"code": 404, "message": f"No handler for {method}"}}

    def _later(self, coro: Any) -> None:
        # The device answers the call first and notifies the new state right after, as the firmware does.
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set_output(self, key: str, on: bool) -> None:
        self.status[key]["output"] = on
        self.status[key]["source"] = "HTTP_in"
        await self.notify({key: {"id": self.status[key]["id"], "output": on, "source": "HTTP_in"}})
