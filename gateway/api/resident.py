"""The resident's own page and its routes: "I'm fine", "Call for help", today's reminders, who was told what.

- ``GET /resident``: the page (``gateway/web/resident.html``; its script and style are ``/ui/resident.*``),
  public like the rest of the static UI (it holds no data), with the same Content-Security-Policy.
- ``GET /api/resident``: what the page shows, in plain words: the last check-in, an open call for help,
  today's reminders (the times the resident's scenes expect something), and today's notifications
  about her (who was told what).
- ``POST /api/resident/check-in``: "I'm fine" (:meth:`SceneEngine.check_in`).
- ``POST /api/resident/help``: "Call for help" (:meth:`SceneEngine.call_for_help`).

Both POSTs take no body (or ``{}``) and are idempotent against a double tap: the engine answers a second
tap within a few seconds with the first one's result (``"repeated": true``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.api.keys import ENGINE_KEY
from gateway.api.login import request_language
from gateway.api.responses import _error, _json
from gateway.api.scenes import _Body, _body, _who
from gateway.clock import iso_utc
from gateway.i18n import DEFAULT_LANGUAGE, translate
from gateway.scenes.engine import (
    CHECK_IN_RESOLUTION,
    HELP_ALERT_KEY,
    HelpNotConfiguredError,
    SceneEngine,
    resolution_text,
)

__all__ = ["RESIDENT_API_ROUTES", "add_resident_routes"]

# (method, path) of every route here: the role table (resident, caregiver, owner) is keyed by these.
RESIDENT_API_ROUTES = frozenset({("GET", "/api/resident"), ("POST", "/api/resident/check-in"),
                                 ("POST", "/api/resident/help")})

# The resident's day in her words (catalogue keys, gateway.i18n). The profiles have no "reminder" of their
# own: what she can be reminded of is what a scene expects of her at a set time (by its alert key) or does
# for her.
_EXPECTED_BY_ALERT = {
    "morning": ("by", "resident.reminder.morning"),
    "not-back": ("by", "resident.reminder.not-back"),
}
_DONE_BY_REPORT = {
    "wellbeing": ("at", "resident.reminder.wellbeing"),
}
# How a notification about her reads ("Daughter was told: Call for help"): resident.told.<kind>.
_TOLD_KINDS = frozenset({"alert", "reminder", "unanswered", "resolved", "checked-in"})
_STATUS_SAID = frozenset({"failed", "unknown_target", "cancelled", "pending"})


class _NoBody(_Body):
    """The POSTs carry nothing; an empty object is accepted, anything in it is refused."""


def _engine(request: web.Request) -> SceneEngine | web.Response:
    engine = request.app.get(ENGINE_KEY)
    if engine is None:
        return _error(503, "the scene engine is not running (no profiles are enabled)")
    return engine


def _local(engine: SceneEngine, iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(engine.settings.timezone)


def _contact(name: str) -> str:
    return name[:1].upper() + name[1:].replace("_", " ").replace("-", " ")


def reminders_today(engine: SceneEngine, language: str = DEFAULT_LANGUAGE) -> list[dict[str, Any]]:
    """Today's reminders for the resident, in time order: {"t", "time", "when", "text", "past"}; ``when``
    is the time as the page shows it ("by 09:30" for what she is expected to have done by then)."""
    reminders = []
    for item in engine.schedule_today():
        wordings = [_EXPECTED_BY_ALERT[a] for a in item["alerts"] if a in _EXPECTED_BY_ALERT]
        wordings += [_DONE_BY_REPORT[r] for r in item["reports"] if r in _DONE_BY_REPORT]
        for by_or_at, key in wordings[:1]:
            when = translate(language, "resident.by_time", time=item["time"]) if by_or_at == "by" else item["time"]
            reminders.append({"t": item["t"], "time": item["time"], "when": when, "text": translate(language, key),
                              "past": item["past"]})
    return reminders


def told_today(engine: SceneEngine, language: str = DEFAULT_LANGUAGE) -> list[dict[str, Any]]:
    """Today's notifications about alerts (local day), newest first, each a sentence."""
    today = datetime.fromtimestamp(engine.clock.time(), engine.settings.timezone).date()
    told = []
    for alert in engine.list_alerts():
        for note in alert["notifications"]:
            when = _local(engine, note["t"])
            if when.date() != today:
                continue
            kind = note.get("kind", "alert")
            wording = "checked-in" if kind == "resolved" and alert.get("resolution") == CHECK_IN_RESOLUTION else kind
            text = translate(language, f"resident.told.{wording if wording in _TOLD_KINDS else 'alert'}",
                             who=_contact(note["target"]), title=alert["title"],
                             resolution=resolution_text(language, alert.get("resolution") or "resolved"))
            status_key = note.get("status", "pending")
            status = translate(language, f"resident.status.{status_key}") if status_key in _STATUS_SAID else None
            told.append({"t": note["t"], "time": when.strftime("%H:%M"), "text": text, "alert": alert["id"],
                         "kind": kind, "status": note.get("status", "pending"),
                         "note": status, "severity": alert["severity"]})
    return sorted(told, key=lambda n: n["t"], reverse=True)


def _open_help(engine: SceneEngine) -> dict[str, Any] | None:
    for alert in engine.list_alerts(state="active"):
        if alert["key"] == HELP_ALERT_KEY:
            return {"id": alert["id"], "state": alert["state"], "raised_at": alert["raised_at"],
                    "acknowledged_by": alert["acknowledged_by"], "title": alert["title"]}
    return None


async def get_resident(request: web.Request) -> web.Response:
    """What the resident's page shows: the time, the last check-in, whether help can be called, today's reminders and
    who was told."""
    engine = _engine(request)
    if isinstance(engine, web.Response):
        return engine
    now = engine.clock.time()
    local = datetime.fromtimestamp(now, engine.settings.timezone)
    language = await request_language(request)
    return _json({
        "language": language,
        "now": iso_utc(now),
        "time": local.strftime("%H:%M"),
        "date": local.date().isoformat(),
        "last_check_in": engine.last_check_in(),
        "help": {"configured": engine.help_configured(), "open": _open_help(engine)},
        "reminders": reminders_today(engine, language),
        "told": told_today(engine, language),
    })


async def post_check_in(request: web.Request) -> web.Response:
    """"I'm fine": answers an open morning or inactivity alert and tells the family (201; 200 when repeated)."""
    engine = _engine(request)
    if isinstance(engine, web.Response):
        return engine
    body = await _body(request, _NoBody, optional=True)
    if isinstance(body, web.Response):
        return body
    check_in = engine.check_in(_who(request))
    # Answered once it is on disk: a check-in confirmed and then lost would page the family again.
    await engine.durable()
    return _json({"check_in": check_in}, status=200 if check_in["repeated"] else 201)


async def post_help(request: web.Request) -> web.Response:
    """"Call for help": raises the panic alert (201; 200 when already raised; 409 when no profile has one)."""
    engine = _engine(request)
    if isinstance(engine, web.Response):
        return engine
    body = await _body(request, _NoBody, optional=True)
    if isinstance(body, web.Response):
        return body
    try:
        called = engine.call_for_help(_who(request))
    except HelpNotConfiguredError as err:
        return _error(409, str(err), reason="no_panic_alert")
    await engine.durable()
    return _json(called, status=200 if called["repeated"] else 201)


async def resident_page(request: web.Request) -> web.StreamResponse:
    """The resident's page: large buttons, today's expected times, who was told what."""
    from gateway.api.ui import CSP, WEB_DIR, _file

    response = _file(WEB_DIR / "resident.html", request)
    # The app's hook sets these for "/" and "/ui/..." only; this page gets the same.
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    return response


def add_resident_routes(app: web.Application) -> None:
    """The resident page and its API. The engine is found under ``ENGINE_KEY`` at request time, so this may
    be called before or after :func:`gateway.api.scenes.add_scene_routes`."""
    app.router.add_get("/resident", resident_page)
    app.router.add_get("/api/resident", get_resident)
    app.router.add_post("/api/resident/check-in", post_check_in)
    app.router.add_post("/api/resident/help", post_help)
