"""The HTTP API as a fuzz target: a whole gateway (``Gateway.run``, as ``hearth run`` runs it) on a thread
of its own, a real Mosquitto, the small test house of tests/scenes/house.py with both shipped profiles,
and an owner's token. Every route of the app's router is called with its own method, its path variables
filled with real ids or junk, random query strings and random bodies (JSON shaped like a real request
with a value replaced, any JSON, bytes). A defect is a 5xx, or a connection the server drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import io
import json
import re
import threading
import time
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import Any

import paho.mqtt.client as paho
from hypothesis import strategies as st

from gateway.devkit.mosquitto import Mosquitto
from tests.campaigns.fuzz import Defect, Target, json_value

_READY_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0
_REQUEST_TIMEOUT_S = 15.0

# Request bodies shaped like the real ones (a value of each replaced by the fuzzer).
_BODIES: list[Any] = [
    {"capability": "on_off", "command": "on", "args": {}},
    {"capability": "level", "command": "set", "args": {"percent": 50}},
    {"name": "owner", "password": "correct horse battery"},
    {"name": "fuzz-token", "role": "resident", "expires_days": 30},
    {"name": "alice", "password": "long enough password", "role": "caregiver"},
    {"password": "new password here", "current": "old password"},
    {"enabled": False}, {"params": {"minutes": 10}}, {"mode": "away"}, {"mode": "home"},
    {"area": "kitchen", "name": "Lamp", "tags": ["x"]}, {"name": "Kitchen", "floor": 1},
    {"lang": "zh-Hans"}, {"note": "on my way"}, {},
]
_QUERY_KEYS = ["since", "until", "limit", "device", "device_id", "capability", "attribute", "area", "source",
               "lang", "n", "before", "after", "scene", "offset", "period", "days", "token", "bucket", "kind"]
_QUERY_VALUES = ["", "0", "-1", "1e999", "nan", "inf", "10", "99999999999999999999", "2026-03-29T02:30:00Z",
                 "2026-13-45", "zigbee2mqtt:0x00124b0000000001", "on_off", "kitchen", "\x00", "../..", "%"]
_VAR = re.compile(r"\{(\w+)(?::[^}]*)?\}")


class ApiUnderTest:
    """``with ApiUnderTest(workdir) as api: api.target()``; everything it starts is stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.broker = Mosquitto(self.workdir / "mosquitto")
        self.gateway: Any = None
        self.port = 0
        self.token = ""
        self.routes: list[tuple[str, str]] = []  # (method, canonical path)
        self.ids: dict[str, list[str]] = {}
        self.requests = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._conn: http.client.HTTPConnection | None = None

    # -------------------------------------------------------------- lifecycle

    def __enter__(self) -> ApiUnderTest:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        from gateway.api.auth import TokenStore
        from gateway.config import parse_config
        from tests.scenes.house import HOUSE, bridge_devices, config_text

        self.broker.start()
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="campaign-api-bridge")
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            infos = [client.publish("zigbee2mqtt/bridge/state", '{"state":"online"}', qos=1, retain=True),
                     client.publish("zigbee2mqtt/bridge/devices", json.dumps(bridge_devices()), qos=1, retain=True)]
            for name in HOUSE:
                infos.append(client.publish(f"zigbee2mqtt/{name}", '{"battery": 90}', qos=1, retain=True))
            for info in infos:
                info.wait_for_publish(10)
        finally:
            client.loop_stop()
            client.disconnect()
        data_dir = self.workdir / "data"
        text = config_text(extra=(
            f'[gateway]\ndata_dir = "{data_dir}"\nlog_level = "error"\n\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.broker.port}\n\n'
            # Commands to the house's devices are never confirmed (nothing plays them): a short timeout
            # keeps a fuzzed command from holding the client for the default 5 s.
            '[api]\nhost = "127.0.0.1"\nport = 0\ncommand_timeout_s = 0.2\n\n'
            '[store]\ncommit_interval_s = 1.0\n\n[adapters.ble]\nenabled = false\n\n[mdns]\nenabled = false\n'))
        config = parse_config(text, str(self.workdir / "house.toml"))
        tokens = TokenStore(config.token_file)
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.token, _info = tokens.create("campaign-fuzz", "owner")
        self._thread = threading.Thread(target=self._run, args=(config,), name="campaign-gateway", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while self.gateway is None or not self.gateway.ready.is_set():
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the gateway stopped before it was ready: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway was not ready in time")
            time.sleep(0.05)
        self.port = int(self.gateway.api.port)
        for route in self.gateway.api.app.router.routes():
            info = route.resource.get_info() if route.resource is not None else {}
            path = info.get("path") or info.get("formatter")
            if path and route.method != "*":
                self.routes.append((route.method, path))
        self.routes.sort()
        engine = self.gateway.engine
        self.ids = {
            "id": [*self.gateway.hub.devices, *engine.scenes, *engine.alerts],
            "name": ["owner", "alice", "campaign-fuzz"],
            "area": sorted({d.area for d in self.gateway.hub.devices.values() if d.area}),
            "token": ["x" * 43],
            "path": ["app.js", "index.html", "../../etc/passwd", "%2e%2e/x", "i18n/en.json"],
        }

    def _run(self, config: Any) -> None:
        from gateway.app import Gateway

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self.gateway = Gateway(config, out=io.StringIO())
            await self.gateway.run(install_signal_handlers=False)

        try:
            asyncio.run(main())
        except BaseException as err:  # shown by __enter__
            self._error = err

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._loop is not None and self.gateway is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop may be closed already
                self._loop.call_soon_threadsafe(self.gateway.request_stop)
            self._thread.join(_STOP_TIMEOUT_S)
        self.broker.stop()

    def health(self) -> dict[str, Any]:
        """/healthz after the run, and whether the gateway's thread is still running."""
        status = self.request("GET", "/healthz", None, {})
        return {"alive": self._thread is not None and self._thread.is_alive() and self._error is None,
                "healthz": status, "requests": self.requests}

    # -------------------------------------------------------------- requests

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int:
        for attempt in (1, 2):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=_REQUEST_TIMEOUT_S)
            try:
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                response.read()
                self.requests += 1
                if response.getheader("Connection", "").lower() == "close":
                    self._conn.close()
                    self._conn = None
                return response.status
            except (http.client.HTTPException, OSError) as err:
                self._conn.close()
                self._conn = None
                if attempt == 2:
                    raise Defect(f"{method} {path}: the connection failed twice ({err!r})") from err
        raise AssertionError("unreachable")

    def target(self) -> Target:
        segment = (st.sampled_from(sorted({v for values in self.ids.values() for v in values}))
                   | st.text(max_size=30) | st.sampled_from(["", "..", "%00", "%ff", "a" * 3000, "main", "-1"]))
        query = st.dictionaries(st.sampled_from(_QUERY_KEYS) | st.text(max_size=8),
                                st.sampled_from(_QUERY_VALUES) | st.text(max_size=12), max_size=4)
        body = (st.none() | st.sampled_from(_BODIES).flatmap(_mutated_body) | json_value.map(
            lambda v: json.dumps(v).encode()) | st.binary(max_size=200))
        content_type = st.sampled_from(["application/json", "application/json", "text/plain",
                                        "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""])
        strategy = st.tuples(st.sampled_from(self.routes), st.lists(segment, min_size=3, max_size=3), query, body,
                             content_type, st.sampled_from(["owner", "owner", "owner", "none", "bad"]),
                             st.booleans())

        def check(value: tuple[Any, ...]) -> None:
            (method, template), segments, params, data, ctype, auth, other_method = value
            values = iter(segments)
            path = _VAR.sub(lambda m: urllib.parse.quote(next(values), safe=""), template)
            if params:
                path += "?" + urllib.parse.urlencode(params)
            if other_method:
                method = {"GET": "POST", "POST": "GET", "PATCH": "DELETE", "PUT": "PATCH", "DELETE": "PUT"}.get(
                    method, "GET")
            headers = {"Content-Type": ctype} if ctype and data is not None else {}
            if auth == "owner":
                headers["Authorization"] = f"Bearer {self.token}"
            elif auth == "bad":
                headers["Authorization"] = "Bearer hth_" + "0" * 40
            # Same origin, as the web UI sends it (cookie-less: the CSRF check does not apply to a bearer).
            headers["Origin"] = f"http://127.0.0.1:{self.port}"
            status = self.request(method, path, data, headers)
            if status >= 500:
                raise Defect(f"{method} {path} -> {status} (body {data!r:.300}, content type {ctype!r})")

        return Target("api", strategy, check)


@st.composite
def _mutated_body(draw: st.DrawFn, body: dict[str, Any]) -> bytes:
    if body and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(body)))
        body = {**body, key: draw(json_value)}
    if draw(st.booleans()):
        body = {**body, draw(st.text(max_size=8)): draw(json_value)}
    return json.dumps(body).encode()
