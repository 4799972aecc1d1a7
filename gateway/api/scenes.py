"""Scene, alert, house-mode and occupancy routes: ``/api/scenes``, ``/api/alerts``, ``/api/mode``,
``/api/house``."""

from __future__ import annotations

import json
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.api.data import audit
from gateway.api.keys import ENGINE_KEY, TOKEN_INFO_KEY
from gateway.api.responses import _error, _json
from gateway.scenes.engine import SceneEngine


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SceneUpdate(_Body):
    enabled: bool


class RunBody(_Body):
    skip_conditions: bool = False


class ResolveBody(_Body):
    note: str = ""


class ModeBody(_Body):
    mode: Literal["home", "away", "night", "vacation"]


async def _body(request: web.Request, model: type[_Body], *, optional: bool = False) -> Any:
    raw = await request.read()
    if not raw.strip() and optional:
        return model()
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8, bad JSON, or nested too deep to parse
        return _error(400, "the body is not valid JSON", field="body")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        message = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        return _error(400, f"{field}: {message}", field=field, reason=first["type"])


def _engine(request: web.Request) -> SceneEngine:
    return request.app[ENGINE_KEY]


def _scene(request: web.Request) -> Any:
    scene_id = request.match_info["id"]
    rt = _engine(request).scenes.get(scene_id)
    if rt is None:
        return _error(404, f"no scene {scene_id!r}", field="id")
    return rt


async def list_scenes(request: web.Request) -> web.Response:
    """Every scene of the running profiles: enabled or not, last run; and the house mode."""
    engine = _engine(request)
    return _json({"scenes": [rt.as_dict() for _, rt in sorted(engine.scenes.items())], "mode": engine.mode})


async def get_scene(request: web.Request) -> web.Response:
    """One scene, with its definition."""
    rt = _scene(request)
    if isinstance(rt, web.Response):
        return rt
    return _json({**rt.as_dict(), "definition": rt.scene.model_dump(mode="json", by_alias=True)})


async def patch_scene(request: web.Request) -> web.Response:
    """Switch a scene on or off: ``{"enabled": false}``."""
    rt = _scene(request)
    if isinstance(rt, web.Response):
        return rt
    body = await _body(request, SceneUpdate)
    if isinstance(body, web.Response):
        return body
    _engine(request).set_enabled(rt.id, body.enabled)
    await audit(request, "scene.enable" if body.enabled else "scene.disable", rt.id)
    return _json(rt.as_dict())


async def run_scene(request: web.Request) -> web.Response:
    """Run a scene now (``{"skip_conditions": true}`` to skip its conditions); 202 with the trace's id, 409 while it
    runs."""
    rt = _scene(request)
    if isinstance(rt, web.Response):
        return rt
    body = await _body(request, RunBody, optional=True)
    if isinstance(body, web.Response):
        return body
    trace_id = _engine(request).run_now(rt.id, skip_conditions=body.skip_conditions)
    if not trace_id:
        return _error(409, f"scene {rt.id} is already running", field="id")
    await audit(request, "scene.run", rt.id, {"trace": trace_id, "skip_conditions": body.skip_conditions})
    return _json({"scene": rt.id, "trace": trace_id}, status=202)


async def scene_traces(request: web.Request) -> web.Response:
    """A scene's last traces, newest first: trigger, every condition with the values it saw, every action's result."""
    rt = _scene(request)
    if isinstance(rt, web.Response):
        return rt
    return _json({"scene": rt.id, "traces": list(reversed(rt.traces))})


ALERT_STATES = ("open", "acknowledged", "resolved", "active", "all")


async def list_alerts(request: web.Request) -> web.Response:
    """``?state=``: open (nobody has acknowledged it), acknowledged, resolved, active (open or
    acknowledged), all (the default)."""
    state = request.query.get("state")
    if state is not None and state not in ALERT_STATES:
        return _error(400, f"state: expected one of {', '.join(ALERT_STATES)}", field="query.state")
    return _json({"alerts": _engine(request).list_alerts(state=None if state == "all" else state)})


def _who(request: web.Request) -> str:
    token = request.get(TOKEN_INFO_KEY)
    return f"token:{token.name}" if token is not None else "api"


async def ack_alert(request: web.Request) -> web.Response:
    """Acknowledge an alert: its escalation stops. Answered once it is stored."""
    engine = _engine(request)
    alert_id = request.match_info["id"]
    if alert_id not in engine.alerts:
        return _error(404, f"no alert {alert_id!r}", field="id")
    alert = engine.acknowledge(alert_id, _who(request))
    # Answered once it is on disk: an acknowledgement confirmed and then lost in a power cut would page
    # the neighbour again.
    await engine.durable()
    await audit(request, "alert.acknowledge", alert_id, {"state": alert.get("state")})
    return _json(alert)


async def resolve_alert(request: web.Request) -> web.Response:
    """Resolve an alert by hand, ``{"note"?}``. Answered once it is stored."""
    engine = _engine(request)
    alert_id = request.match_info["id"]
    if alert_id not in engine.alerts:
        return _error(404, f"no alert {alert_id!r}", field="id")
    body = await _body(request, ResolveBody, optional=True)
    if isinstance(body, web.Response):
        return body
    alert = engine.resolve(alert_id, _who(request), body.note or "resolved by hand")
    await engine.durable()
    await audit(request, "alert.resolve", alert_id, {"note": body.note} if body.note else None)
    return _json(alert)


async def get_house(request: web.Request) -> web.Response:
    """The house mode and whether anybody is home, with what showed it."""
    return _json(_engine(request).house())


async def get_mode(request: web.Request) -> web.Response:
    """The house mode: ``home``, ``away``, ``night`` or ``vacation``."""
    return _json({"mode": _engine(request).mode})


async def put_mode(request: web.Request) -> web.Response:
    """Set the house mode, ``{"mode": "away"}``."""
    body = await _body(request, ModeBody)
    if isinstance(body, web.Response):
        return body
    engine = _engine(request)
    before = engine.mode
    engine.set_mode(body.mode, source="api")
    await audit(request, "mode.set", engine.mode, {"from": before})
    return _json({"mode": engine.mode})


def add_scene_routes(app: web.Application, engine: SceneEngine) -> None:
    app[ENGINE_KEY] = engine
    app.router.add_get("/api/scenes", list_scenes)
    app.router.add_get("/api/scenes/{id}", get_scene)
    app.router.add_patch("/api/scenes/{id}", patch_scene)
    app.router.add_post("/api/scenes/{id}/run", run_scene)
    app.router.add_get("/api/scenes/{id}/traces", scene_traces)
    app.router.add_get("/api/alerts", list_alerts)
    app.router.add_post("/api/alerts/{id}/ack", ack_alert)
    app.router.add_post("/api/alerts/{id}/resolve", resolve_alert)
    app.router.add_get("/api/house", get_house)
    app.router.add_get("/api/mode", get_mode)
    app.router.add_put("/api/mode", put_mode)
