"""Half-open and idle connections (issue 20 finding 2): they used to be kept for an hour, and 1,100 of them made
the API unreachable under the default file limit. Now idle ones close after the idle timeout, and past a cap of
unauthenticated connections the oldest idle one makes room; an authenticated client is served throughout."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.api.app import ApiServer, create_app
from gateway.api.auth import TokenStore
from gateway.clock import SystemClock
from gateway.hub import Hub

FLOOD = 300
CAP = 32


def _open(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


async def test_a_flood_of_idle_and_half_open_connections_does_not_lock_out_the_owner(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path / "tokens.json")
    token, _ = tokens.create("owner")
    app = create_app(Hub(SystemClock()), tokens, health=lambda: {"status": "ok"})
    async with ApiServer(app, "127.0.0.1", 0, idle_timeout_s=2.0, max_unproven_connections=CAP) as server, \
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
        assert server.port is not None
        port = server.port
        # Nothing at all, half a request line, headers without their end: what a slowloris client sends.
        shapes = [b"", b"GET /api/devi", b"GET /api/devices HTTP/1.1\r\nHost: x\r\nX-Slow: 1"]
        flood = await asyncio.to_thread(lambda: [_open(port, shapes[i % 3]) for i in range(FLOOD)])
        try:
            async with session.get(server.url + "/api/devices") as response:
                assert response.status == 200  # served while 300 sockets wait
            await asyncio.sleep(0.2)
            held = sum(not _closed_by_server(s) for s in flood)
            assert held <= CAP, f"{held} of {FLOOD} unauthenticated connections still held (cap {CAP})"
            assert server.guard is not None and server.guard.closed >= FLOOD - CAP
            started = time.monotonic()
            while time.monotonic() - started < 10 and any(not _closed_by_server(s) for s in flood):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            assert all(_closed_by_server(s) for s in flood), "idle connections outlived the idle timeout"
            recovered_s = time.monotonic() - started
            assert recovered_s < 10
            async with session.get(server.url + "/api/devices") as response:
                assert response.status == 200  # the owner's keep-alive connection was never cut for room
        finally:
            for sock in flood:
                with contextlib.suppress(OSError):
                    sock.close()


async def test_a_request_aiohttp_cannot_parse_is_a_400_without_a_traceback_in_the_log(
        tmp_path: Path, caplog: Any) -> None:
    tokens = TokenStore(tmp_path / "tokens.json")
    app = create_app(Hub(SystemClock()), tokens, health=lambda: {"status": "ok"})
    async with ApiServer(app, "127.0.0.1", 0) as server:
        assert server.port is not None
        port = server.port

        def send() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Evil: a\x00b\r\n\r\n")
                return sock.recv(100)

        for _ in range(20):
            answer = await asyncio.to_thread(send)
            assert answer.split(b" ")[1] == b"400"
    assert not [r for r in caplog.records if r.exc_info], "a traceback per bad request (an unauthenticated log flood)"
