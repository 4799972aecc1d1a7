"""Shelly Gen2+ over HTTP RPC and its WebSocket: the second transport of the one Shelly model.

:class:`ShellyHttpDevice` is the I/O shell for one device at ``host:port``; everything the device says goes
through :class:`adapters.shelly.codec.ShellyDevice` (the same model the MQTT transport feeds), so the device is
``shelly:<device id>`` with the same components and capabilities whichever way it arrives.

The life of a connection (shelly-api-docs gen2 "RPC Protocol", "RPC Channels", "Authentication"):

1. ``GET /shelly`` (never needs auth): the device id, ``gen`` (1 is a different API: refused) and ``auth_en``;
2. ``POST /rpc`` ``Shelly.GetDeviceInfo`` and ``Shelly.GetStatus``: the device is described and available;
3. ``ws://host/rpc``: a first request frame with our ``src`` (``Shelly.GetStatus`` again: it closes the gap
   between step 2 and the subscription) makes the device send ``NotifyStatus``/``NotifyFullStatus``/``NotifyEvent``
   to us: live updates, no polling;
4. if the WebSocket cannot be opened or drops, ``Shelly.GetStatus`` is polled every ``poll_interval_s`` and the
   WebSocket tried again after each poll.

Commands are ``POST /rpc`` frames through the one shared ``aiohttp.ClientSession``; the new state comes back as a
notification, which is what confirms the command in the hub. Digest auth (SHA-256) is answered when the device
asks for it, with the password configured for its id; passwords are never logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from adapters.shelly.auth import (
    Challenge,
    DigestCredentials,
    authorization_header,
    parse_rpc_challenge,
    parse_www_authenticate,
    rpc_auth,
)
from adapters.shelly.codec import (
    MAX_PAYLOAD_BYTES,
    Decoded,
    ShellyDevice,
    decode_rpc_reply,
    device_id_for,
    parse_json,
    rpc_request,
)
from adapters.shelly.hosts import POLL_INTERVAL_S, REQUEST_TIMEOUT_S, parse_host
from gateway.sdk import Clock, CodecError, Command, CommandResult, HearthError

__all__ = [
    "POLL_INTERVAL_S",
    "ShellyAuthError",
    "ShellyConnectionError",
    "ShellyHttpDevice",
    "ShellyHttpError",
    "ShellyRpcError",
    "format_host",
    "parse_host",
]

# The WebSocket carries no traffic while nothing changes; a ping every 30 s finds a dead device (power cut,
# Wi-Fi gone) within a minute instead of at the next TCP timeout (minutes).
WS_HEARTBEAT_S = 30.0
# A WebSocket that stayed up this long was healthy: when it drops, the device is checked again after
# RETRY_MIN_S; sockets that keep dropping sooner back off towards the poll interval.
WS_HEALTHY_AFTER_S = 10.0
# Reconnect back-off after a failure: 1 s doubling to 5 min (a device unplugged for the night).
RETRY_MIN_S = 1.0
RETRY_MAX_S = 300.0

DecodedSink = Callable[[Decoded], None]
AvailabilitySink = Callable[[str, bool], None]


class ShellyHttpError(HearthError):
    """Talking to a Shelly over HTTP failed."""


class ShellyConnectionError(ShellyHttpError):
    """The device did not answer (refused, timed out, not HTTP, or not a Gen2+ Shelly)."""


class ShellyAuthError(ShellyHttpError):
    """The device wants a password we do not have, or refused the one we have."""


class ShellyRpcError(ShellyHttpError):
    """The device answered the call with a JSON-RPC error."""


def format_host(host: str, port: int) -> str:
    try:
        is_v6 = ipaddress.ip_address(host.split("%")[0]).version == 6
    except ValueError:
        is_v6 = False
    netloc = f"[{host}]" if is_v6 else host
    return netloc if port == 80 else f"{netloc}:{port}"


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    if response.content_length is not None and response.content_length > MAX_PAYLOAD_BYTES:
        raise ShellyConnectionError(f"answer of {response.content_length} bytes is over the limit")
    body = await response.content.read(MAX_PAYLOAD_BYTES + 1)
    if len(body) > MAX_PAYLOAD_BYTES:
        raise ShellyConnectionError("answer is over the size limit")
    return body


class ShellyHttpDevice:
    """One Shelly Gen2+ reached over HTTP at ``host:port``. Construct, then run :meth:`run` as a task.

    ``on_decoded`` gets every :class:`Decoded` (device description, updates, events, problems) to apply to the
    adapter's context; ``on_available`` the device id and whether it answers.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        host: str,
        port: int = 80,
        *,
        src: str,
        clock: Clock,
        on_decoded: DecodedSink,
        on_available: AvailabilitySink,
        password_for: Callable[[str], str | None] = lambda _id: None,
        log: logging.Logger | None = None,
        shelly_id: str | None = None,
        poll_interval_s: float = POLL_INTERVAL_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._session = session
        self.host = host
        self.port = port
        self._alternatives: tuple[str, ...] = ()
        self.src = src
        self._clock = clock
        self._on_decoded = on_decoded
        self._on_available = on_available
        self._password_for = password_for
        self._log = log or logging.getLogger("hearth.shelly.http")
        self.shelly: ShellyDevice | None = ShellyDevice(shelly_id) if shelly_id else None
        self.poll_interval_s = poll_interval_s
        self._timeout = aiohttp.ClientTimeout(total=request_timeout_s)
        self._next_id = 0
        self._challenge: Challenge | None = None
        self._nc = 0
        self._ws_auth: dict[str, Any] | None = None
        self._described = False  # /shelly and GetDeviceInfo done since the last failure
        #: "connecting", "live" (WebSocket), "polling", "offline", "unsupported"
        self.mode = "connecting"
        self.last_error: str | None = None
        self.counters = {"polls": 0, "notifications": 0, "ws_connects": 0}

    # -- identity

    @property
    def device_id(self) -> str | None:
        return self.shelly.id if self.shelly is not None else None

    @property
    def address(self) -> str:
        return format_host(self.host, self.port)

    def url(self, path: str) -> str:
        return f"http://{format_host(self.host, self.port)}{path}"

    def move_to(self, host: str, port: int, alternatives: tuple[str, ...] = ()) -> bool:
        """A new address (DHCP) or port; True if it changed (the caller restarts :meth:`run`).
        ``alternatives``: other addresses of the device, tried in turn when ``host`` does not answer (a
        responder may still list the address it just left)."""
        self._alternatives = tuple(a for a in alternatives if a != host)
        if (host, port) == (self.host, self.port):
            return False
        self._log.info("shelly %s moved from %s to %s", self.device_id or "?", self.address, format_host(host, port))
        self.host, self.port = host, port
        self._described = False
        return True

    def _try_next_address(self) -> None:
        if self._alternatives:
            self.host, self._alternatives = self._alternatives[0], (*self._alternatives[1:], self.host)

    def _credentials(self) -> DigestCredentials | None:
        if self.shelly is None:
            return None
        password = self._password_for(self.shelly.shelly_id)
        return DigestCredentials(password) if password else None

    # -- HTTP RPC

    async def get_shelly(self) -> dict[str, Any]:
        """``GET /shelly``: identity, generation and whether auth is on (never needs auth)."""
        try:
            async with self._session.get(self.url("/shelly"), timeout=self._timeout) as response:
                body = await _read_limited(response)
                if response.status != 200:
                    raise ShellyConnectionError(f"GET /shelly answered HTTP {response.status}")
        except (aiohttp.ClientError, TimeoutError) as err:
            raise ShellyConnectionError(f"{self.address}: {type(err).__name__}: {err}") from err
        try:
            info = parse_json(body)
        except CodecError as err:
            raise ShellyConnectionError(f"GET /shelly: {err}") from err
        if not isinstance(info, dict):
            raise ShellyConnectionError("GET /shelly did not answer an object")
        return info

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """One JSON-RPC call as ``POST /rpc``; its ``result``. Answers a digest challenge once."""
        self._next_id += 1
        body = rpc_request(self._next_id, self.src, method, params)
        credentials = self._credentials()
        for attempt in range(2):
            headers = {"Content-Type": "application/json"}
            if self._challenge is not None and credentials is not None:
                # Firmware 2.0+ accepts a nonce again with a higher nc: one round trip instead of two.
                self._nc += 1
                headers["Authorization"] = authorization_header(credentials, self._challenge, "POST", "/rpc",
                                                                self._nc)
            try:
                async with self._session.post(self.url("/rpc"), data=body, headers=headers,
                                              timeout=self._timeout) as response:
                    raw = await _read_limited(response)
                    status = response.status
                    challenge_header = response.headers.get("WWW-Authenticate")
            except (aiohttp.ClientError, TimeoutError) as err:
                raise ShellyConnectionError(f"{self.address}: {method}: {type(err).__name__}: {err}") from err
            if status == 401:
                if credentials is None:
                    raise ShellyAuthError(f"{self.device_id or self.address} needs a password for {method} "
                                          "(set shelly_passwords in the adapter config)")
                if attempt == 1 and self._challenge is not None and challenge_header is None:
                    raise ShellyAuthError(f"{self.device_id or self.address} refused the password")
                try:
                    challenge = parse_www_authenticate(challenge_header or "")
                except CodecError as err:
                    raise ShellyAuthError(f"{self.device_id or self.address}: {err}") from err
                if attempt == 1:
                    raise ShellyAuthError(f"{self.device_id or self.address} refused the password")
                self._challenge, self._nc = challenge, 0
                continue
            try:
                reply = decode_rpc_reply(parse_json(raw))
            except CodecError as err:
                if status != 200:
                    raise ShellyConnectionError(f"{method} answered HTTP {status}") from err
                raise ShellyConnectionError(f"{method}: {err}") from err
            if not reply.ok:
                raise ShellyRpcError(f"{method}: {reply.error}")
            return reply.result
        raise ShellyAuthError(f"{self.device_id or self.address} refused the password")  # pragma: no cover

    # -- the connection loop

    async def run(self) -> None:
        """Keep the device connected until cancelled. Never raises anything else: every failure is logged,
        reported as unavailability and retried with back-off."""
        retry_s = RETRY_MIN_S
        short_drops = 0
        while True:
            try:
                await self._sync()
            except ShellyHttpError as err:
                self._failed(err)
                if isinstance(err, ShellyConnectionError):
                    self._try_next_address()
                wait_s = RETRY_MAX_S if self.mode == "unsupported" else retry_s
                retry_s = min(retry_s * 2, RETRY_MAX_S)
                await self._clock.sleep(wait_s)
                continue
            except Exception as err:  # a bug must not end the loop of a device that still works
                self._log.exception("shelly %s: unexpected failure", self.address)
                self._failed(ShellyHttpError(repr(err)))
                await self._clock.sleep(retry_s)
                retry_s = min(retry_s * 2, RETRY_MAX_S)
                continue
            retry_s = RETRY_MIN_S
            started = self._clock.monotonic()
            try:
                await self._listen()
                self._log.info("shelly %s: WebSocket closed by the device", self.device_id)
            except ShellyHttpError as err:
                self._log.info("shelly %s: no WebSocket (%s); polling every %.0f s", self.device_id, err,
                               self.poll_interval_s)
            except (aiohttp.ClientError, TimeoutError) as err:
                self._log.info("shelly %s: WebSocket failed (%s: %s); polling every %.0f s", self.device_id,
                               type(err).__name__, err, self.poll_interval_s)
            was_live = self.mode == "live"
            self.mode = "polling"
            if not was_live:
                await self._clock.sleep(self.poll_interval_s)
                continue
            # A live socket that drops (reboot, power cut, Wi-Fi): check the device at once, so that it is
            # marked unavailable now rather than a poll interval later; one that keeps dropping right after
            # connecting backs off towards the poll interval.
            short_drops = 0 if self._clock.monotonic() - started >= WS_HEALTHY_AFTER_S else short_drops + 1
            await self._clock.sleep(min(RETRY_MIN_S * 2 ** min(short_drops, 10), self.poll_interval_s))

    def _failed(self, err: ShellyHttpError) -> None:
        if self.mode != "unsupported":
            self.mode = "offline"
        self._described = False
        text = str(err)
        if text != self.last_error:
            self._log.warning("shelly %s: %s", self.device_id or self.address, text)
        self.last_error = text
        if self.shelly is not None and self.shelly.info is not None:
            self._on_available(self.shelly.id, False)

    async def _sync(self) -> None:
        """Identity (first time and after a failure) and a full status: the device is described and available."""
        if not self._described or self.shelly is None:
            info = await self.get_shelly()
            gen = info.get("gen")
            shelly_id = info.get("id")
            if isinstance(gen, bool) or not isinstance(gen, int) or gen < 2:
                self.mode = "unsupported"
                raise ShellyConnectionError(f"{self.address} is not a Gen2+ Shelly (GET /shelly gen={gen!r:.20})")
            if not isinstance(shelly_id, str) or not shelly_id.strip():
                raise ShellyConnectionError(f"{self.address}: GET /shelly has no device id")
            if self.shelly is None or device_id_for(shelly_id) != self.shelly.id:
                if self.shelly is not None:
                    self._log.warning("shelly at %s is %s, not %s", self.address, shelly_id, self.shelly.shelly_id)
                self.shelly = ShellyDevice(shelly_id)
                self._challenge, self._ws_auth = None, None
            if info.get("auth_en") is True and self._credentials() is None:
                raise ShellyAuthError(f"{shelly_id} has a password: set shelly_passwords[\"{shelly_id}\"]")
            self._on_decoded(self.shelly.apply_device_info(await self.call("Shelly.GetDeviceInfo")))
            self._described = True
        assert self.shelly is not None
        status = await self.call("Shelly.GetStatus")
        self.counters["polls"] += 1
        decoded = self.shelly.apply_full_status(status)
        self._on_decoded(decoded)
        if self.shelly.info is None:
            raise ShellyConnectionError(f"{self.shelly.shelly_id}: Shelly.GetStatus gave no usable status")
        if self.mode in ("connecting", "offline", "unsupported"):
            self.mode = "polling"
        self.last_error = None
        self._on_available(self.shelly.id, True)

    async def _listen(self) -> None:
        """Live updates over ``ws://host/rpc`` until the socket closes."""
        assert self.shelly is not None
        # The handshake is bounded like a request; the open socket is not (it is quiet while nothing changes).
        ws = await asyncio.wait_for(
            self._session.ws_connect(self.url("/rpc"), heartbeat=WS_HEARTBEAT_S, max_msg_size=MAX_PAYLOAD_BYTES),
            self._timeout.total)
        async with ws:
            self.counters["ws_connects"] += 1
            hello_id = await self._ws_hello(ws)
            authenticated_retry = False
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    if message.type is aiohttp.WSMsgType.ERROR:
                        raise ShellyConnectionError(f"WebSocket error: {ws.exception()!r}")
                    continue  # binary frames are not part of the protocol
                try:
                    frame = parse_json(message.data)
                except CodecError as err:
                    self._problem(f"WebSocket frame: {err}")
                    continue
                if not isinstance(frame, dict):
                    self._problem(f"WebSocket frame is not an object: {str(frame)[:60]!r}")
                    continue
                if isinstance(frame.get("method"), str) and "id" not in frame:
                    self.counters["notifications"] += 1
                    self._on_decoded(self.shelly.apply_notification(frame))
                    continue
                if frame.get("id") != hello_id:
                    continue  # a reply to nothing we asked on this socket
                error = frame.get("error")
                if isinstance(error, dict) and error.get("code") == 401:
                    credentials = self._credentials()
                    if credentials is None or authenticated_retry:
                        raise ShellyAuthError(f"{self.shelly.shelly_id} refused the WebSocket "
                                              f"({'password refused' if credentials else 'needs a password'})")
                    try:
                        self._ws_auth = rpc_auth(credentials, parse_rpc_challenge(error))
                    except CodecError as err:
                        raise ShellyAuthError(f"{self.shelly.shelly_id}: {err}") from err
                    authenticated_retry = True
                    hello_id = await self._ws_hello(ws)
                    continue
                try:
                    reply = decode_rpc_reply(frame)
                except CodecError as err:
                    raise ShellyConnectionError(f"WebSocket hello: {err}") from err
                if not reply.ok:
                    raise ShellyRpcError(f"WebSocket hello: {reply.error}")
                self._on_decoded(self.shelly.apply_full_status(reply.result))
                self.mode = "live"
                self._log.info("shelly %s: live over the WebSocket at %s", self.shelly.shelly_id, self.address)

    async def _ws_hello(self, ws: aiohttp.ClientWebSocketResponse) -> int:
        self._next_id += 1
        frame: dict[str, Any] = {"id": self._next_id, "src": self.src, "method": "Shelly.GetStatus"}
        if self._ws_auth is not None:
            frame["auth"] = self._ws_auth
        await ws.send_str(orjson.dumps(frame).decode())
        return self._next_id

    def _problem(self, text: str) -> None:
        decoded = Decoded()
        decoded.problems.append(f"shelly {self.device_id or self.address}: {text}")
        self._on_decoded(decoded)

    # -- commands

    async def execute(self, command: Command) -> CommandResult:
        shelly = self.shelly
        if shelly is None or shelly.info is None:
            return CommandResult("unavailable", f"{command.device_id} has not been reached over HTTP yet")
        try:
            method, params = shelly.encode(command)
        except CodecError as err:
            return CommandResult("rejected", str(err))
        details = {"method": method, "params": params}
        try:
            result = await self.call(method, params)
        except ShellyRpcError as err:
            return CommandResult("failed", f"{shelly.shelly_id} refused {err}", details=details)
        except ShellyHttpError as err:
            return CommandResult("failed", f"{shelly.shelly_id}: {err}", details=details)
        return CommandResult("sent", f"{shelly.shelly_id} accepted {method}", details={**details, "result": result})

    def __repr__(self) -> str:
        return f"<ShellyHttpDevice {self.device_id or '?'} at {self.address} {self.mode}>"
