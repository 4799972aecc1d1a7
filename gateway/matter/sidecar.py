"""The supervisor of the Matter sidecar (``matter/bridge.mjs``): starts it once the API listens, restarts it
with back-off when it ends, says how it is in ``/healthz`` and ``GET /api/matter``, and stops it on shutdown.

The sidecar is a client of Hearth's own API with a token of its own: an ``installer`` token (the least role
that may both read the live state over the WebSocket and send commands), named ``matter-bridge``, made anew at
every start of the sidecar and revoked when it stops; only the sidecar's environment carries it. Its stdout is
a channel of JSON lines (``ready``, ``status``, ``command``, ``fatal``); its stderr goes to Hearth's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import shutil
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from gateway.errors import HearthError
from gateway.matter.mapping import mapping_json, plan_device
from gateway.matter.pairing import fabric_dir, load_or_create, matter_dir, pairing_info
from gateway.matter.settings import MatterSection

__all__ = ["TOKEN_NAME", "MatterBridge", "MatterUnavailableError", "default_sidecar_dir", "find_node"]

log = logging.getLogger("hearth.matter")

TOKEN_NAME = "matter-bridge"
TOKEN_ROLE = "installer"
# An installer's token must expire; the sidecar's is made anew at every start, and the sidecar is restarted
# (with a new one) a day before this, so a bridge running for months never finds it expired.
TOKEN_LIFETIME_S = 30 * 86400.0
TOKEN_RENEW_BEFORE_S = 86400.0
# Restarts: doubling from 1 s to 5 min; a run that lasted this long resets it (it was not a crash loop).
RESTART_MIN_S = 1.0
RESTART_MAX_S = 300.0
HEALTHY_RUN_S = 60.0
# After this many runs in a row that ended before HEALTHY_RUN_S, it is given up (shown as "failed") until the
# gateway restarts: a sidecar that cannot start (wrong Node, missing packages) does not restart for ever.
MAX_QUICK_FAILURES = 20
# SIGTERM, then this long for matter.js to close its sessions and storage, then SIGKILL.
STOP_TIMEOUT_S = 5.0
# Node < 22 has WebSocket only behind a flag.
_NODE_WS_FLAG_BELOW = 22
STDERR_LINES_KEPT = 20
# The longest line read from the sidecar: a status line lists every endpoint (~130 bytes each), 4 MiB is ~30,000.
STDOUT_LINE_MAX_BYTES = 4 * 1024 * 1024
# A Pi has little memory: V8's young generation capped at 1 MB and its heuristics set for size. Measured with
# matter.js 0.17.9 loaded (Node 20, x86-64): RSS 166 -> 127 MB; a bridge's few events a second do not notice the
# extra scavenges (docs/matter.md has the figures with devices).
NODE_MEMORY_FLAGS = ("--max-semi-space-size=1", "--optimize-for-size")


class MatterUnavailableError(HearthError):
    """The bridge cannot run here: no Node.js, or the sidecar's packages are not installed."""


def default_sidecar_dir() -> Path:
    """``$HEARTH_MATTER_DIR`` (``scripts/run`` and ``scripts/test`` set it to the checkout's ``matter``: a regular
    install of the package does not carry the sidecar), else the ``matter`` folder beside the package's source."""
    given = os.environ.get("HEARTH_MATTER_DIR")
    if given:
        return Path(given)
    return Path(__file__).resolve().parents[2] / "matter"


def find_node(settings: MatterSection) -> str:
    node = shutil.which(settings.node)
    if node is None:
        raise MatterUnavailableError(f"[matter] node = {settings.node!r}: no such executable (install Node.js "
                                     "20.19 or later, e.g. apt install nodejs npm)")
    return node


def sidecar_problem(folder: Path) -> str | None:
    """Why the sidecar in ``folder`` cannot start, or None."""
    if not (folder / "bridge.mjs").is_file():
        return f"no bridge.mjs in {folder} ([matter] sidecar_dir)"
    if not (folder / "node_modules" / "@matter" / "main").is_dir():
        return f"the sidecar's packages are not installed: npm ci --ignore-scripts --prefix {folder}"
    return None


class MatterBridge:
    """The sidecar's supervisor: ``async with MatterBridge(...)`` runs it until the block ends."""

    def __init__(self, settings: MatterSection, *, data_dir: Path, hub: Any, tokens: Any, api_url: str,
                 name: str = "Hearth", ca_file: Path | None = None) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.hub = hub
        self.tokens = tokens
        self.api_url = api_url
        self.name = name
        self.ca_file = ca_file
        self.sidecar_dir = settings.sidecar_dir or default_sidecar_dir()
        self.state = "starting"  # starting, running, restarting, failed, stopped
        self.problem: str | None = None
        self.pid: int | None = None
        self.restarts = 0
        self.ready: dict[str, Any] | None = None
        self.status: dict[str, Any] = {}
        self.started_at: float | None = None
        self.last_exit: int | None = None
        self.stderr_tail: list[str] = []
        self.ready_event = asyncio.Event()
        self._pairing = load_or_create(data_dir)
        self._process: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._spawned = time.monotonic()
        # Says "the sidecar runs" to `hearth matter reset`, which must not pull the fabrics from under it.
        self._pid_file = matter_dir(data_dir) / "sidecar.pid"

    # ---------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> MatterBridge:
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="matter:sidecar")
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._stopping = True
        await self._stop_process()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._revoke_token)
        self.state = "stopped"

    # ---------------------------------------------------------------- what it shows

    def pairing(self) -> dict[str, Any]:
        return pairing_info(self._pairing, self.settings.vendor_id, self.settings.product_id)

    def unmapped(self) -> list[dict[str, Any]]:
        """Devices, or parts of them, the bridge does not show (from the table, whether the sidecar runs or not)."""
        out = []
        for device_id, device in sorted(self.hub.devices.items()):
            plan = plan_device(device.as_dict())
            if plan.unmapped or not plan.endpoints:
                out.append({"device": device_id, "name": device.name, "bridged": bool(plan.endpoints),
                            "unmapped": list(plan.unmapped)})
        return out

    def health(self) -> dict[str, Any]:
        """For ``/healthz``: short."""
        return {
            "enabled": True, "state": self.state, "pid": self.pid, "restarts": self.restarts,
            **({"problem": self.problem} if self.problem else {}),
            "connected": self.status.get("connected"), "commissioned": self.status.get("commissioned"),
            "fabrics": len(self.status.get("fabrics") or ()), "endpoints": len(self.status.get("endpoints") or ()),
            "failed_endpoints": len(self.status.get("failed") or ()),
            "rss_bytes": self.status.get("rss_bytes"),
            "startup_ms": None if self.ready is None else self.ready.get("startup_ms"),
            "spawn_to_ready_ms": None if self.ready is None else self.ready.get("spawn_to_ready_ms"),
        }

    def details(self) -> dict[str, Any]:
        """For ``GET /api/matter``: everything, with the pairing codes."""
        return {
            **self.health(),
            "port": self.settings.port,
            "pairing": self.pairing(),
            "fabric_list": self.status.get("fabrics") or [],
            "endpoint_list": self.status.get("endpoints") or [],
            # Endpoints matter.js refused (with why): shown, not dropped silently.
            "failed": self.status.get("failed") or [],
            "unmapped": self.unmapped(),
            "commands_sent": self.status.get("commands_sent", 0),
            "commands_failed": self.status.get("commands_failed", 0),
            "last_exit": self.last_exit,
            # The sidecar's last lines of log (matter.js's warnings and errors): what to read when it is not running.
            "log_tail": list(self.stderr_tail),
        }

    # ---------------------------------------------------------------- the loop

    async def _supervise(self) -> None:
        delay = RESTART_MIN_S
        quick_failures = 0
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._run_once()
            except MatterUnavailableError as err:
                self.problem = str(err)
                log.error("Matter bridge: %s", err)
            except (OSError, HearthError) as err:
                self.problem = f"cannot start the sidecar: {err}"
                log.error("Matter bridge: %s", self.problem)
            except Exception as err:  # a bug of ours must not end the supervision: counted as a failed run
                self.problem = f"supervising the sidecar failed: {err!r}"
                log.exception("Matter bridge: supervising the sidecar failed")
                await self._stop_process()
            if self._stopping:
                return
            ran_s = time.monotonic() - started
            if ran_s >= HEALTHY_RUN_S:
                delay, quick_failures = RESTART_MIN_S, 0
            else:
                quick_failures += 1
            if quick_failures >= MAX_QUICK_FAILURES:
                self.state = "failed"
                log.error("Matter bridge: given up after %d failed starts in a row; restart Hearth to try again",
                          quick_failures)
                return
            self.state = "restarting"
            self.restarts += 1
            # Jitter: not in step with anything else restarting after the same cause.
            wait_s = delay * (0.5 + random.random() / 2)
            log.warning("Matter bridge ended (exit %s); restarting in %.1f s", self.last_exit, wait_s)
            await asyncio.sleep(wait_s)
            delay = min(delay * 2, RESTART_MAX_S)

    def _node_command(self, node: str) -> list[str]:
        return [node, *self._node_flags(node), str(self.sidecar_dir / "bridge.mjs")]

    @staticmethod
    def _node_flags(node: str) -> list[str]:
        import subprocess

        try:
            version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout
            major = int(version.strip().lstrip("v").split(".")[0])
        except (OSError, ValueError, subprocess.SubprocessError) as err:
            raise MatterUnavailableError(f"cannot run {node} --version: {err}") from err
        return [*NODE_MEMORY_FLAGS, *(["--experimental-websocket"] if major < _NODE_WS_FLAG_BELOW else [])]

    def _write_config(self) -> Path:
        from gateway.api.private_files import write_private_file

        folder = matter_dir(self.data_dir)
        path = folder / "bridge-config.json"
        config = {
            "hearth_url": self.api_url,
            "port": self.settings.port,
            "passcode": self._pairing.passcode,
            "discriminator": self._pairing.discriminator,
            "serial": self._pairing.serial,
            "vendor_id": self.settings.vendor_id,
            "product_id": self.settings.product_id,
            "name": self.name,
            "storage_dir": str(fabric_dir(self.data_dir)),
            "mdns_interface": self.settings.mdns_interface,
            "log_level": self.settings.log_level,
            "mapping": mapping_json(),
        }
        write_private_file(path, json.dumps(config, indent=1) + "\n", HearthError)
        return path

    def _new_token(self) -> tuple[str, float]:
        self._revoke_token()
        expires = time.time() + TOKEN_LIFETIME_S
        token, _info = self.tokens.create(TOKEN_NAME, role=TOKEN_ROLE, expires=expires)
        return token, expires

    def _revoke_token(self) -> None:
        with contextlib.suppress(HearthError):
            while self.tokens.revoke(TOKEN_NAME):
                pass

    async def _run_once(self) -> None:
        node = find_node(self.settings)
        problem = sidecar_problem(self.sidecar_dir)
        if problem:
            raise MatterUnavailableError(problem)
        command = await asyncio.to_thread(self._node_command, node)
        config_path = await asyncio.to_thread(self._write_config)
        await asyncio.to_thread(fabric_dir(self.data_dir).mkdir, parents=True, exist_ok=True, mode=0o700)
        token, expires = await asyncio.to_thread(self._new_token)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        env.update({"HEARTH_MATTER_CONFIG": str(config_path), "HEARTH_MATTER_TOKEN": token})
        if self.ca_file is not None:
            env["NODE_EXTRA_CA_CERTS"] = str(self.ca_file)
        self.ready = None
        self.status = {}
        self.stderr_tail = []
        self._process = await asyncio.create_subprocess_exec(
            # stdin: a pipe never written to; the sidecar ends when it closes (Hearth gone, even by SIGKILL).
            *command, cwd=str(self.sidecar_dir), env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=STDOUT_LINE_MAX_BYTES)
        del token
        self.pid = self._process.pid
        self._spawned = time.monotonic()
        await asyncio.to_thread(self._pid_file.write_text, f"{self.pid}\n", encoding="utf-8")
        self.state = "starting"
        self.problem = None
        self.started_at = time.time()
        log.info("Matter bridge sidecar started (pid %d, port %d)", self.pid, self.settings.port)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read_stdout(), name="matter:stdout")
                group.create_task(self._read_stderr(), name="matter:stderr")
                group.create_task(self._renew_before(expires), name="matter:token-renewal")
                self.last_exit = await self._process.wait()
                raise _Ended
        except* _Ended:
            pass
        finally:
            self.pid = None
            self.ready_event.clear()
            with contextlib.suppress(OSError):
                self._pid_file.unlink()
            await asyncio.to_thread(self._revoke_token)
        if self.last_exit not in (0, None) and not self._stopping:
            tail = " | ".join(self.stderr_tail[-5:])
            self.problem = self.problem or f"the sidecar exited with {self.last_exit}: {tail[-500:]}"

    async def _renew_before(self, expires: float) -> None:
        # Wall clock on purpose: the token's expiry is wall-clock time.
        await asyncio.sleep(max(0.0, expires - TOKEN_RENEW_BEFORE_S - time.time()))
        log.info("Matter bridge: its token expires in a day; restarting it with a new one")
        await self._stop_process()

    async def _read_stdout(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        async for raw in self._process.stdout:
            try:
                message = json.loads(raw)
            except ValueError:
                log.debug("matter: %s", raw.decode("utf-8", "replace").rstrip()[:500])
                continue
            if isinstance(message, dict):
                self._on_message(message)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ready":
            # startup_ms is the sidecar's own (from its first line to announcing); this adds Node's start.
            self.ready = {**message, "spawn_to_ready_ms": round((time.monotonic() - self._spawned) * 1000)}
            self.state = "running"
            self.ready_event.set()
            log.info("Matter bridge ready on UDP port %s: %s endpoints, started in %s ms", message.get("port"),
                     message.get("endpoints"), message.get("startup_ms"))
        elif kind == "status":
            self.status = message
        elif kind == "command":
            log.info("Matter controller: %s.%s %s on %s -> HTTP %s", message.get("capability"),
                     message.get("command"), message.get("args"), message.get("device"), message.get("http_status"))
        elif kind == "fatal":
            self.problem = str(message.get("message"))
            log.error("Matter bridge: %s", self.problem)

    async def _read_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        async for raw in self._process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self.stderr_tail = [*self.stderr_tail[-(STDERR_LINES_KEPT - 1):], line[:500]]
            log.debug("matter: %s", line[:1000])

    async def _stop_process(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await process.wait()
        except TimeoutError:
            log.warning("Matter bridge did not stop within %g s: killed", STOP_TIMEOUT_S)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


class _Ended(Exception):
    """The sidecar process ended: ends the task group of its readers."""
