"""Personal data through the API (issue 20; ETSI EN 303 645 5.11 and 6), and the audit log.

- ``GET /api/data/export``: everything Hearth keeps about the house and its people, as the zip of
  ``hearth data export`` (see :mod:`gateway.personal`). The owner's only.
- ``POST /api/data/delete``: delete the history while the gateway runs (``{"scope": "history",
  "confirm": "delete personal data"}``). A factory reset (``"all"``) is refused here: the running hub would
  write its devices straight back; it is ``hearth data delete --all`` with the gateway stopped.
- ``GET /api/audit``: the audit log, newest first.

The audit log: :func:`audit` is called by the handlers of what a person does that matters to the others in
the house (acknowledging or resolving an alert, renaming a device or an area, switching or running a scene,
the house mode, creating or revoking tokens and users, an export, a delete); failed logins are counted per
address and hour (:class:`FailedLogins`), not written one by one.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.api.keys import ENGINE_KEY, HUB_KEY, STORE_KEY, TOKEN_INFO_KEY, TOKENS_KEY
from gateway.api.responses import MAX_BODY_BYTES, _error, _json, _pydantic_error
from gateway.errors import StoreError

__all__ = ["CONFIG_KEY", "DELETE_CONFIRMATION", "FailedLogins", "add_data_routes", "audit", "failed_login"]

log = logging.getLogger("hearth.api.data")

# The config, for what an export shows of it (the notification contacts, the gateway's name); optional.
CONFIG_KEY = web.AppKey("hearth.config", object)
DELETE_CONFIRMATION = "delete personal data"
AUDIT_DEFAULT_LIMIT = 100
AUDIT_MAX_LIMIT = 5000
# An export is streamed in pieces of this size (a year of history is tens of MB).
EXPORT_CHUNK_BYTES = 256 * 1024
# Failed logins: one audit entry per address per window, its count brought up to date at most every
# FAILED_LOGIN_WRITE_S (a flood of wrong tokens must not become a flood of writes to an SD card).
FAILED_LOGIN_WINDOW_S = 3600.0
FAILED_LOGIN_WRITE_S = 10.0
FAILED_LOGIN_ADDRESSES = 1000


def _store(request: web.Request) -> Any:
    from gateway.store import Store

    store = request.app.get(STORE_KEY)
    return store if isinstance(store, Store) else None


def _now(request: web.Request) -> float:
    hub = request.app.get(HUB_KEY)
    return hub.clock.time() if hub is not None else time.time()


async def audit(request: web.Request, action: str, target: str | None = None,
                detail: dict[str, Any] | None = None, *, actor: tuple[str, str] | None = None) -> None:
    """Record ``action`` on ``target`` by whoever made ``request`` (or ``actor``, (kind, name), for a route
    that checks its own credential: an acknowledge link's contact), from its address. Never fails the
    request: the action has happened; a log line says the audit entry could not be written."""
    from gateway.store import AuditEntry

    store = _store(request)
    if store is None:  # an app without the store (a test's, or one built for the ack links alone)
        return
    principal = request.get(TOKEN_INFO_KEY)
    kind, name, role = (principal.kind, principal.name, principal.role) if principal is not None else (None, None, None)
    if actor is not None:
        kind, name, role = actor[0], actor[1], None
    entry = AuditEntry(_now(request), action, kind, name, role, target, detail, request.remote)
    try:
        await store.audit(entry)
    except StoreError as err:
        log.error("audit entry %s of %s by %s not written: %s", action, target, entry.actor, err)


@dataclass(slots=True)
class _Window:
    entry_id: int
    since: float
    last: float
    count: int = 1
    written_at: float = 0.0
    written_count: int = 1

    def detail(self) -> dict[str, Any]:
        return {"count": self.count, "since": self.since, "last": self.last}


class FailedLogins:
    """Failed logins counted per client address: one audit entry per address and FAILED_LOGIN_WINDOW_S."""

    def __init__(self) -> None:
        self._open: OrderedDict[str, _Window] = OrderedDict()
        self._lock = asyncio.Lock()

    async def failed(self, request: web.Request, kind: str, address: str) -> None:
        from gateway.store import AuditEntry

        store = _store(request)
        if store is None:
            return
        now = _now(request)
        async with self._lock:  # one entry per window, however many arrive at once
            window = self._open.get(address)
            try:
                if window is None or now - window.since >= FAILED_LOGIN_WINDOW_S:
                    if window is not None and window.count != window.written_count:
                        await store.update_audit_detail(window.entry_id, window.detail())
                    entry_id = await store.audit(AuditEntry(now, "login.failed", None, None, None, kind,
                                                            {"count": 1, "since": now, "last": now}, address))
                    self._open[address] = _Window(entry_id, now, now, written_at=now)
                    self._open.move_to_end(address)
                    while len(self._open) > FAILED_LOGIN_ADDRESSES:
                        self._open.popitem(last=False)
                    return
                window.count += 1
                window.last = now
                if now - window.written_at >= FAILED_LOGIN_WRITE_S:
                    window.written_at, window.written_count = now, window.count
                    await store.update_audit_detail(window.entry_id, window.detail())
            except StoreError as err:
                log.error("failed login from %s not written to the audit log: %s", address, err)

    async def write_counts(self, store: Any) -> None:
        """Bring every open window's count up to date in the audit log."""
        async with self._lock:
            for window in self._open.values():
                if window.count != window.written_count:
                    window.written_count = window.count
                    try:
                        await store.update_audit_detail(window.entry_id, window.detail())
                    except StoreError as err:
                        log.error("failed-login count not written to the audit log: %s", err)
                        return


_FAILED_LOGINS_KEY = web.AppKey("hearth.failed_logins", FailedLogins)


async def failed_login(request: web.Request, kind: str, address: str) -> None:
    """Count a failed login (``kind``: "password" or "token") from ``address`` in the audit log."""
    tally = request.app.get(_FAILED_LOGINS_KEY)
    if tally is not None:
        await tally.failed(request, kind, address)


# -------------------------------------------------------------------- routes


def _export_kwargs(request: web.Request, store: Any) -> dict[str, Any]:
    from gateway.config import Config

    config = request.app.get(CONFIG_KEY)
    principal = request.get(TOKEN_INFO_KEY)
    return {"db_path": store.path, "token_file": request.app[TOKENS_KEY].path,
            "config": config if isinstance(config, Config) else None, "now": time.time(),
            "exported_by": None if principal is None else f"{principal.kind} {principal.name} ({principal.role})"}


async def export_data(request: web.Request) -> web.StreamResponse:
    """Everything Hearth keeps about the house and its people, as a zip of JSON files with a manifest (devices,
    history, alerts and who acknowledged them, users and tokens without hashes, notification contacts, the audit
    log): what ``hearth data export`` writes."""
    from gateway.personal import export_archive

    store = _store(request)
    if store is None:
        return _error(503, "no data to export: the gateway runs without a store")
    try:
        await store.flush()  # what is still in memory goes into the file first
    except StoreError as err:
        return _error(503, f"cannot export now: {err}", reason="store")
    kwargs = _export_kwargs(request, store)
    # Built in a temporary file (a big house's history does not fit a Pi's memory twice), in a thread.
    with tempfile.TemporaryFile() as spool:
        counts = await asyncio.to_thread(export_archive, spool, **kwargs)
        size = spool.tell()
        spool.seek(0)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(kwargs["now"]))
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip", "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="hearth-data-{stamp}.zip"'})
        await response.prepare(request)
        while True:
            chunk = await asyncio.to_thread(spool.read, EXPORT_CHUNK_BYTES)
            if not chunk:
                break
            await response.write(chunk)
    await audit(request, "data.export", "api", {"records": counts, "bytes": size})
    await response.write_eof()
    return response


class DeleteBody(BaseModel):
    """``POST /api/data/delete``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    scope: Literal["history", "all"] = "history"
    confirm: str


async def delete_data(request: web.Request) -> web.Response:
    """Delete the history (``{"scope": "history", "confirm": "delete personal data"}``): state history, resolved
    alerts, scene traces, the resident's check-ins and audit entries older than now, in one transaction, then
    VACUUM; answers what went (counts). Open alerts stay. ``"all"`` (a factory reset) is refused while the
    gateway runs: stop it and run ``hearth data delete --all``."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_BODY_BYTES, request.content_length)
    try:
        body = DeleteBody.model_validate_json(await request.read() or b"{}")
    except ValidationError as err:
        return _pydantic_error(err, DeleteBody)
    if body.confirm != DELETE_CONFIRMATION:
        return _error(400, f"confirm: type {DELETE_CONFIRMATION!r} to delete", field="confirm", reason="confirm")
    if body.scope == "all":
        return _error(409, "a factory reset cannot run under the running gateway (it would write its devices "
                      "straight back): stop it, then run  hearth data delete --all", field="scope",
                      reason="gateway_running")
    store = _store(request)
    if store is None:
        return _error(503, "no data to delete: the gateway runs without a store")
    from gateway.personal import erase_engine_history

    engine = request.app.get(ENGINE_KEY)
    engine_counts: dict[str, int] = {}

    def prepare() -> None:
        if engine is not None:
            engine_counts.update(erase_engine_history(engine, store))

    try:
        counts = await store.erase(prepare=prepare)
    except StoreError as err:
        return _error(500, str(err), reason="store")
    counts.update(engine_counts)
    await audit(request, "data.delete", "history", {k: v for k, v in counts.items() if v})
    return _json({"deleted": counts, "scope": body.scope})


async def audit_log(request: web.Request) -> web.Response:
    """The audit log, newest first: ``{"entries": [{"t", "action", "actor_kind", "actor", "role", "target",
    "detail", "address"}]}``; ``?limit=`` (100), ``?since=`` (epoch seconds), ``?action=``."""
    store = _store(request)
    if store is None:
        return _error(503, "no audit log: the gateway runs without a store")
    unknown = sorted(set(request.query) - {"limit", "since", "action"})
    if unknown:
        return _error(400, f"unknown parameter {unknown[0]!r} (parameters: limit, since, action)",
                      field=f"query.{unknown[0]}")
    try:
        limit = int(request.query.get("limit", AUDIT_DEFAULT_LIMIT))
        if not 1 <= limit <= AUDIT_MAX_LIMIT:
            raise ValueError
    except ValueError:
        return _error(400, f"limit: expected a whole number 1-{AUDIT_MAX_LIMIT}", field="query.limit")
    since = None
    if "since" in request.query:
        try:
            since = float(request.query["since"])
        except ValueError:
            return _error(400, "since: expected epoch seconds", field="query.since")
    tally = request.app.get(_FAILED_LOGINS_KEY)
    if tally is not None:
        await tally.write_counts(store)  # the owner reads the counts as they are now
    entries = await store.read_audit(limit, since=since, action=request.query.get("action"))
    return _json({"entries": entries})


def add_data_routes(app: web.Application) -> None:
    app[_FAILED_LOGINS_KEY] = FailedLogins()
    app.router.add_get("/api/data/export", export_data)
    app.router.add_post("/api/data/delete", delete_data)
    app.router.add_get("/api/audit", audit_log)

