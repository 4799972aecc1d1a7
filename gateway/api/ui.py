"""The web UI's files and the routes behind its pages that are not device commands or scenes.

- ``GET /`` and ``GET /ui/{file}``: the static UI (``gateway/web/``), public (it holds no data), with a
  strict Content-Security-Policy (no inline script, nothing from other origins).
- ``GET /api/history``: state changes from the store, filtered by device, capability and attribute.
- ``GET /api/energy?days=7``: kWh per device per local day from ``energy_meter.kwh``, with a cost estimate.
- ``PATCH /api/devices/{id}`` and ``GET /api/devices/{id}/meta``: the owner's name, area and tags of a
  device (:mod:`gateway.devicemeta`).
- ``GET /api/areas`` and ``PUT /api/areas/{area}``: each area's display name ("Living room" for
  ``living_room``), editable; stored beside the device edits (the store's ``area_names`` scope). The area
  itself (what profiles select by) does not change.
- ``GET /api/scenes/{id}/runs``: a scene's recent runs told in sentences
  (:func:`gateway.scenes.explain.trace_sentences`).

Answers about time (history, energy, runs) carry ``now``: the gateway's clock in epoch seconds, which in
``hearth demo`` is the simulated day's, not the browser's.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from gateway.api.keys import DEVICE_META_KEY, ENGINE_KEY, HUB_KEY, STORE_KEY
from gateway.api.responses import MAX_BODY_BYTES, _error, _json, _no_device, _pydantic_error

__all__ = ["CSP", "WEB_DIR", "add_ui_routes", "energy_per_day"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# Everything from this origin only; no inline script or style (the UI sets styles through the CSSOM,
# which CSP allows), no plugins, no framing. 'self' covers the same-origin ws:// of /api/ws.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".woff2": "font/woff2",
}
# Revalidate every time (cheap: Last-Modified/304): after an upgrade the browser must not mix old
# and new files.
_UI_CACHE = "no-cache"

# History: rows are read from the store newest first, a page at a time, and filtered here.
HISTORY_PAGE_ROWS = 5000
# A query reads at most this many rows (a week of a plug reporting every 10 s is ~60,000 per attribute);
# beyond it the answer says `truncated`.
HISTORY_MAX_SCANNED_ROWS = 400_000
HISTORY_DEFAULT_LIMIT = 1000
HISTORY_MAX_LIMIT = 20_000
HISTORY_DEFAULT_SPAN_S = 86400.0
_HISTORY_PARAMS = ("device", "component", "capability", "attribute", "since", "until", "limit", "initial")
# ``?initial=1``: the value a chart of [since, until) starts with is the last change before ``since``, looked
# for this far back (a meter that reported nothing for a week has no value to start with).
HISTORY_INITIAL_LOOKBACK_S = 7 * 86400.0

ENERGY_MAX_DAYS = 31
# A monotonic total that drops below this fraction of its last value was reset (device replaced,
# firmware update, counter overflow); a smaller dip is noise in the reading and ignored.
ENERGY_RESET_FRACTION = 0.9
# Where no reading falls before the window, the first reading inside it is the starting point; this
# far back we look for an earlier one.
ENERGY_BASELINE_LOOKBACK_S = 7 * 86400.0

NAME_MAX_CHARS = 64
TAG_MAX_CHARS = 32
TAGS_MAX = 16
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


_M = TypeVar("_M", bound=BaseModel)

# -------------------------------------------------------------------- static files


async def index(request: web.Request) -> web.StreamResponse:
    """The web UI's page."""
    return _file(WEB_DIR / "index.html", request)


async def ui_file(request: web.Request) -> web.StreamResponse:
    """The web UI's scripts, styles and images (gzipped for a browser that takes it)."""
    name = request.match_info["path"]
    try:
        path = (WEB_DIR / name).resolve()
        # Only regular files inside the web folder, of a known type: no traversal, no directory listing.
        found = path.is_relative_to(WEB_DIR) and path.suffix in _CONTENT_TYPES and path.is_file()
    except (ValueError, OSError):  # a NUL byte, a name too long: a 404 like any other, not a 500 and a traceback
        found = False
    if not found:
        raise web.HTTPNotFound()
    return _file(path, request)


# Text files are sent gzipped to a browser that takes it (the house page's 160 KB are 45 KB on a Pi's Wi-Fi),
# compressed once per file version and kept: the web folder is a few files. Revalidated like the plain
# files (Last-Modified, 304).
_COMPRESSIBLE = frozenset({".html", ".js", ".css", ".json", ".svg", ".txt"})
_GZIPPED: dict[Path, tuple[int, int, bytes]] = {}  # path -> (mtime_ns, size, gzip bytes)


def _file(path: Path, request: web.Request | None = None) -> web.StreamResponse:
    headers = {"Content-Type": _CONTENT_TYPES[path.suffix], "Cache-Control": _UI_CACHE}
    if request is None or path.suffix not in _COMPRESSIBLE or "gzip" not in request.headers.get(
            "Accept-Encoding", ""):
        return web.FileResponse(path, headers=headers)
    stat = path.stat()
    modified = datetime.fromtimestamp(int(stat.st_mtime), UTC)
    since = request.if_modified_since
    if since is not None and since >= modified:
        return web.Response(status=304, headers={"Cache-Control": _UI_CACHE, "Vary": "Accept-Encoding"})
    cached = _GZIPPED.get(path)
    if cached is None or cached[:2] != (stat.st_mtime_ns, stat.st_size):
        import gzip

        cached = (stat.st_mtime_ns, stat.st_size, gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))
        _GZIPPED[path] = cached
    response = web.Response(body=cached[2], headers={**headers, "Content-Encoding": "gzip",
                                                     "Vary": "Accept-Encoding"})
    response.last_modified = modified
    return response


async def _body(request: web.Request, model: type[_M]) -> _M | web.Response:
    """The request's JSON object as ``model``, or the 400 that says what is wrong with it."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_BODY_BYTES, request.content_length)
    try:
        data = json.loads(await request.read())
    except (ValueError, RecursionError):
        return _error(400, "the body is not valid JSON", field="body", reason="invalid_json")
    if not isinstance(data, dict):
        return _error(400, "the body must be a JSON object", field="body", reason="wrong_type")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        return _pydantic_error(err, model)


# -------------------------------------------------------------------- history


class _QueryError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _time_param(request: web.Request, name: str) -> float | None:
    """Epoch seconds, or ISO-8601 (a time without a zone is UTC)."""
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        # "+01:00" arrives as " 01:00" when a client did not encode the "+" (curl, a typed URL).
        text = re.sub(r" (\d\d:?\d\d)$", r"+\1", text)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise _QueryError(f"query.{name}", "expected epoch seconds or an ISO-8601 time") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(value):
        raise _QueryError(f"query.{name}", "expected a finite number")
    return value


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise _QueryError(f"query.{name}", "expected an integer") from None
    if not low <= value <= high:
        raise _QueryError(f"query.{name}", f"expected {low} to {high}")
    return value


def _store_filters(store: Any) -> bool:
    """Whether this store filters history by capability itself (else rows are filtered here)."""
    try:
        return "capability" in inspect.signature(store.history).parameters
    except (TypeError, ValueError):
        return False


async def read_history(store: Any, device_id: str | None, *, component: str | None = None,
                       capability: str | None = None, attribute: str | None = None,
                       since: float | None = None, until: float | None = None,
                       limit: int = HISTORY_DEFAULT_LIMIT) -> tuple[list[dict[str, Any]], bool]:
    """Matching state changes with ``since <= t < until``, oldest first; of more, the newest ``limit``.

    Returns ``(rows, truncated)``; ``truncated`` when the scan stopped at HISTORY_MAX_SCANNED_ROWS
    before reaching ``since``.
    """
    def wanted(row: dict[str, Any]) -> bool:
        return ((component is None or row["component"] == component)
                and (capability is None or row["capability"] == capability)
                and (attribute is None or row["attribute"] == attribute))

    extra: dict[str, Any] = {}
    if _store_filters(store):
        extra = {"capability": capability, "attribute": attribute}
    found: list[dict[str, Any]] = []  # newest first
    cursor = until
    scanned = 0
    while len(found) < limit:
        if scanned >= HISTORY_MAX_SCANNED_ROWS:
            return list(reversed(found)), True
        page = await store.history(device_id, since, cursor, HISTORY_PAGE_ROWS, **extra)
        scanned += len(page)
        if len(page) < HISTORY_PAGE_ROWS:
            take, cursor = page, None
        else:
            # The page may have cut through the rows of its oldest instant (one message sets several
            # attributes at one time): leave those to the next page, which asks for t <= that instant.
            oldest = page[0]["t"]
            cut = next((i for i, row in enumerate(page) if row["t"] > oldest), len(page))
            if cut == len(page):  # a whole page at one instant: take it and move on
                take, cursor = page, oldest
            else:
                take, cursor = page[cut:], math.nextafter(oldest, math.inf)
        for row in reversed(take):
            if wanted(row):
                found.append(row)
                if len(found) >= limit:
                    break
        if cursor is None:
            break
    return list(reversed(found)), False


async def history(request: web.Request) -> web.Response:
    """State changes from the store: ``?device=``, ``?component=``, ``?capability=``, ``?attribute=``, ``?since=``,
    ``?until=`` (ISO-8601 or epoch seconds; default the last 24 hours), ``?limit=``. ``?initial=1`` (with a
    device and an attribute) adds ``"initial"``: the last change before ``since`` (within a week), the value a
    chart of the span starts with, so that one request draws it."""
    store = request.app.get(STORE_KEY)
    if store is None:
        return _error(503, "history is not available: the gateway runs without a store")
    unknown = sorted(set(request.query) - set(_HISTORY_PARAMS))
    if unknown:
        return _error(400, f"unknown parameter {unknown[0]!r} (parameters: {', '.join(_HISTORY_PARAMS)})",
                      field=f"query.{unknown[0]}")
    hub = request.app[HUB_KEY]
    try:
        since = _time_param(request, "since")
        until = _time_param(request, "until")
        limit = _int_param(request, "limit", HISTORY_DEFAULT_LIMIT, 1, HISTORY_MAX_LIMIT)
    except _QueryError as err:
        return _error(400, f"{err.field}: {err.message}", field=err.field)
    if since is None:
        since = (until if until is not None else hub.clock.time()) - HISTORY_DEFAULT_SPAN_S
    device_id = request.query.get("device") or None
    filters: dict[str, Any] = {"component": request.query.get("component") or None,
                               "capability": request.query.get("capability") or None,
                               "attribute": request.query.get("attribute") or None}
    initial_flag = request.query.get("initial", "")
    if initial_flag not in ("", "0", "1", "true", "false"):
        return _error(400, "query.initial: expected 1 or 0", field="query.initial")
    want_initial = initial_flag in ("1", "true")
    if want_initial and (device_id is None or filters["attribute"] is None):
        return _error(400, "query.initial: needs a device and an attribute (the value one chart starts with)",
                      field="query.initial")
    rows, truncated = await read_history(store, device_id, since=since, until=until, limit=limit, **filters)
    answer = {"since": since, "until": until, "now": hub.clock.time(), "rows": rows, "truncated": truncated}
    if want_initial:
        before, _ = await read_history(store, device_id, since=since - HISTORY_INITIAL_LOOKBACK_S, until=since,
                                       limit=1, **filters)
        answer["initial"] = before[-1] if before else None
    return _json(answer)


# -------------------------------------------------------------------- energy


PHASES = ("l1", "l2", "l3")


def energy_components(support: dict[str, dict[str, Any]]) -> list[str]:
    """The components whose ``energy_meter.kwh`` make a device's energy, counted once. A three-phase meter
    that also reports its total on ``main`` (a Shelly Pro 3EM, a Zigbee2MQTT ``energy`` beside ``energy_a``
    …) is its ``main``; otherwise the parts add up: the phases alone, a multi-channel switch's channels, or a
    ``main`` that is phase A itself (``energy`` with only ``energy_b``/``energy_c``)."""
    metered = [comp for comp, caps in support.items()
               if "energy_meter" in caps and "kwh" in getattr(caps["energy_meter"], "attributes", ())]
    if "main" in metered and "l1" in metered and any(phase in metered for phase in PHASES):
        return ["main"]
    return metered


def energy_per_day(readings: list[tuple[float, float]], baseline: float | None, days: list[date],
                   tz: tzinfo) -> list[float]:
    """kWh used on each of ``days`` (local dates in ``tz``) from readings of a monotonic kWh total.

    Each increase between consecutive readings counts on the local day of the later one. A drop below
    ENERGY_RESET_FRACTION of the last value is a meter reset: the new reading is what was used since.
    A smaller drop is noise and ignored (the last value stays the reference). ``baseline`` is the last
    reading before the first day, if known; without it the first reading only sets the reference.
    """
    index = {day: i for i, day in enumerate(days)}
    used = [0.0] * len(days)
    previous = baseline
    for t, value in readings:
        if previous is None:
            previous = value
            continue
        if value >= previous:
            delta = value - previous
            previous = value
        elif value < previous * ENERGY_RESET_FRACTION:
            delta = value
            previous = value
        else:
            continue
        slot = index.get(datetime.fromtimestamp(t, tz).date())
        if slot is not None:
            used[slot] += delta
    return [round(kwh, 4) for kwh in used]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _engine(request: web.Request) -> Any:
    return request.app.get(ENGINE_KEY)


def _configured_price(engine: Any) -> tuple[float | None, str | None]:
    """The price of the energy-saving profile's daily report (``price_per_kwh``/``currency`` params)."""
    if engine is None:
        return None, None
    from gateway.scenes.profile import ReportAction

    for _, runtime in sorted(engine.scenes.items()):
        for action in runtime.scene.actions:
            if isinstance(action, ReportAction) and action.report == "energy" and action.price_per_kwh is not None:
                return float(action.price_per_kwh), action.currency
    return None, None


def _local_tz(engine: Any) -> tzinfo:
    if engine is not None:
        return engine.settings.timezone
    return datetime.now().astimezone().tzinfo or UTC


async def energy(request: web.Request) -> web.Response:
    """kWh per metering device and day, with totals and cost: ``?days=`` (7), ``?price=`` per kWh (default the
    energy-saving profile's), ``?currency=``."""
    store = request.app.get(STORE_KEY)
    if store is None:
        return _error(503, "energy history is not available: the gateway runs without a store")
    unknown = sorted(set(request.query) - {"days", "price", "currency"})
    if unknown:
        return _error(400, f"unknown parameter {unknown[0]!r} (parameters: days, price, currency)",
                      field=f"query.{unknown[0]}")
    try:
        days_n = _int_param(request, "days", 7, 1, ENERGY_MAX_DAYS)
    except _QueryError as err:
        return _error(400, f"{err.field}: {err.message}", field=err.field)
    engine = _engine(request)
    price, currency = _configured_price(engine)
    if request.query.get("price"):
        try:
            price = float(request.query["price"])
        except ValueError:
            price = -1.0
        if not (math.isfinite(price) and 0 <= price <= 1000):
            return _error(400, "query.price: expected a price per kWh from 0 to 1000", field="query.price")
    currency = request.query.get("currency") or currency or "EUR"
    if len(currency) > 8:
        return _error(400, "query.currency: at most 8 characters", field="query.currency")
    hub = request.app[HUB_KEY]
    tz = _local_tz(engine)
    today = datetime.fromtimestamp(hub.clock.time(), tz).date()
    days = [today - timedelta(days=days_n - 1 - i) for i in range(days_n)]
    window_start = datetime.combine(days[0], time(0), tz).timestamp()
    devices_out = []
    truncated = False
    for device_id, device in sorted(hub.devices.items()):
        components = energy_components(device.support)
        if not components:
            continue
        per_day = [0.0] * days_n
        for component in components:
            readings_rows, cut = await read_history(
                store, device_id, component=component, capability="energy_meter", attribute="kwh",
                since=window_start, limit=HISTORY_MAX_LIMIT * 10)
            before, _ = await read_history(
                store, device_id, component=component, capability="energy_meter", attribute="kwh",
                since=window_start - ENERGY_BASELINE_LOOKBACK_S, until=window_start, limit=1)
            truncated = truncated or cut
            readings = [(row["t"], float(row["value"])) for row in readings_rows if _number(row["value"])]
            baseline = float(before[-1]["value"]) if before and _number(before[-1]["value"]) else None
            for i, kwh in enumerate(energy_per_day(readings, baseline, days, tz)):
                per_day[i] += kwh
        total = round(sum(per_day), 3)
        devices_out.append({
            "id": device_id, "name": device.name, "area": device.area,
            "kwh": [round(v, 3) for v in per_day], "total_kwh": total,
            "cost": None if price is None else round(total * price, 2),
        })
    totals = [round(sum(d["kwh"][i] for d in devices_out), 3) for i in range(days_n)]
    total = round(sum(totals), 3)
    return _json({
        "days": [d.isoformat() for d in days],
        "timezone": str(tz),
        "price_per_kwh": price,
        "currency": currency,
        "devices": devices_out,
        "total_kwh_per_day": totals,
        "cost_per_day": None if price is None else [round(v * price, 2) for v in totals],
        "total_kwh": total,
        "total_cost": None if price is None else round(total * price, 2),
        "truncated": truncated,
        "now": hub.clock.time(),
    })


# -------------------------------------------------------------------- device metadata


def _plain_text(value: str) -> str:
    # Stored as given (escaped where shown), but control characters and blank names are refused:
    # they only ever come from a mistake or an attack, and break logs and layouts.
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


Name = Annotated[str, Field(min_length=1, max_length=NAME_MAX_CHARS), AfterValidator(_plain_text)]
Tag = Annotated[str, Field(min_length=1, max_length=TAG_MAX_CHARS), AfterValidator(_plain_text)]


class DeviceMetaBody(BaseModel):
    """``PATCH /api/devices/{id}``: each field given is set; ``null`` clears the owner's edit."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Name | None = None
    area: Name | None = None
    tags: list[Tag] | None = Field(None, max_length=TAGS_MAX)


def _meta_answer(request: web.Request, device_id: str) -> dict[str, Any]:
    meta = request.app[DEVICE_META_KEY]
    return {"device": request.app[HUB_KEY].devices[device_id].as_dict(), "overrides": meta.overrides(device_id),
            "base": meta.base(device_id)}


async def get_device_meta(request: web.Request) -> web.Response:
    """A device with the owner's edits (``overrides``) and what the device and the config say (``base``)."""
    device_id = request.match_info["id"]
    if device_id not in request.app[HUB_KEY].devices:
        return _no_device(device_id)
    if request.app.get(DEVICE_META_KEY) is None:
        return _error(503, "device names and areas cannot be edited: the gateway runs without a store")
    return _json(_meta_answer(request, device_id))


async def patch_device(request: web.Request) -> web.Response:
    """The owner's edits of a device, ``{"name", "area", "tags"}``: each field given is set, ``null`` clears it; kept
    across restarts."""
    device_id = request.match_info["id"]
    if device_id not in request.app[HUB_KEY].devices:
        return _no_device(device_id)
    meta = request.app.get(DEVICE_META_KEY)
    if meta is None:
        return _error(503, "device names and areas cannot be edited: the gateway runs without a store")
    body = await _body(request, DeviceMetaBody)
    if isinstance(body, web.Response):
        return body
    if not body.model_fields_set:
        return _error(400, "nothing to change: give name, area or tags", field="body")
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    if changes.get("tags") is not None:
        changes["tags"] = list(dict.fromkeys(changes["tags"]))  # duplicates dropped, order kept
    before = meta.overrides(device_id)
    meta.update(device_id, changes)
    from gateway.api.data import audit

    await audit(request, "device.change", device_id, {"changes": changes, "before": before})
    return _json(_meta_answer(request, device_id))


# -------------------------------------------------------------------- area names

AREA_NAMES_SCOPE = "area_names"


class AreaNameBody(BaseModel):
    """``PUT /api/areas/{area}``: the name shown for the area; ``null`` gives back the default."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: Name | None


def _area_storage(request: web.Request) -> Any:
    store = request.app.get(STORE_KEY)
    return None if store is None else store.kv(AREA_NAMES_SCOPE)


def area_names(request: web.Request) -> dict[str, str]:
    """The owner's names of areas: area -> display name (only those set)."""
    storage = _area_storage(request)
    if storage is None:
        return {}
    return {str(area): name for area, name in storage.items() if isinstance(name, str) and name}


def _area_answer(request: web.Request) -> dict[str, Any]:
    from gateway.scenes.explain import area_title

    names = area_names(request)
    counts: dict[str, int] = {}
    for device in request.app[HUB_KEY].devices.values():
        if device.area:
            counts[device.area] = counts.get(device.area, 0) + 1
    return {"areas": [{"id": area, "name": area_title(area, names), "default_name": area_title(area),
                       "edited": area in names, "devices": counts.get(area, 0)}
                      for area in sorted(counts.keys() | names.keys())],
            "editable": request.app.get(STORE_KEY) is not None}


async def list_areas(request: web.Request) -> web.Response:
    """The areas with their names and how many devices each has."""
    return _json(_area_answer(request))


async def put_area(request: web.Request) -> web.Response:
    """Name an area, ``{"name": "Living room"}``; ``null`` goes back to the name made from its id."""
    area = request.match_info["area"]
    storage = _area_storage(request)
    if storage is None:
        return _error(503, "area names cannot be edited: the gateway runs without a store")
    if len(area) > NAME_MAX_CHARS or _CONTROL.search(area):
        return _error(400, "not an area", field="area")
    body = await _body(request, AreaNameBody)
    if isinstance(body, web.Response):
        return body
    before = storage.get(area)
    if body.name is None:
        storage.delete(area)
    else:
        storage.set(area, body.name.strip())
    from gateway.api.data import audit

    await audit(request, "area.rename", area, {"name": None if body.name is None else body.name.strip(),
                                               "before": before})
    return _json(_area_answer(request))


# -------------------------------------------------------------------- scene runs in sentences


SCENE_RUNS_SHOWN = 10


async def scene_runs(request: web.Request) -> web.Response:
    """A scene's last runs (newest first), each with ``sentences``: what set it off, the conditions, what
    was done. The same words as ``hearth replay --explain``."""
    from gateway.api.login import request_language
    from gateway.scenes.explain import outcome, trace_sentences

    engine = _engine(request)
    scene_id = request.match_info["id"]
    runtime = None if engine is None else engine.scenes.get(scene_id)
    if runtime is None:
        return _error(404, f"no scene {scene_id!r}", field="id")
    hub = request.app[HUB_KEY]
    names = {d.id: d.name for d in hub.devices.values()}
    areas = area_names(request)
    tz = _local_tz(engine)
    language = await request_language(request)  # told in the reader's language
    runs = []
    for trace in list(reversed(runtime.traces))[:SCENE_RUNS_SHOWN]:
        runs.append({"id": trace.get("id"), "t": trace.get("t"), "result": trace.get("result"),
                     "outcome": outcome(trace),
                     "sentences": trace_sentences(trace, names, runtime.scene, area_names=areas, tz=tz,
                                                  language=language)})
    return _json({"scene": scene_id, "now": hub.clock.time(), "runs": runs})


def add_ui_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/ui/{path:.+}", ui_file)
    app.router.add_get("/api/history", history)
    app.router.add_get("/api/energy", energy)
    app.router.add_patch("/api/devices/{id}", patch_device)
    app.router.add_get("/api/devices/{id}/meta", get_device_meta)
    app.router.add_get("/api/areas", list_areas)
    app.router.add_put("/api/areas/{area}", put_area)
    app.router.add_get("/api/scenes/{id}/runs", scene_runs)
