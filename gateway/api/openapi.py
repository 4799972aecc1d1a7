"""The OpenAPI 3.1 document of the HTTP API, ``GET /api/openapi.json``, generated from the app itself.

Every route of the app's router is an operation: its summary and description are the handler's docstring,
who may call it is :func:`gateway.api.accounts.allowed_roles` (``x-roles``, and in the description), its
security the bearer token or the session cookie (none for the public routes). What the router cannot say,
the request body's pydantic model, the query parameters and the shapes of the answers, is the table
:data:`OPERATIONS` below: one entry per route, and a test fails for a route without one. Request bodies are
the models' own ``model_json_schema()``; every error shares one shape (``{"error", "field"?, "reason"?}``).
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from gateway.api.accounts import PUBLIC, ROLES, allowed_roles
from gateway.api.commands import CommandBody
from gateway.api.cookies import SESSION_COOKIE
from gateway.api.data import DeleteBody
from gateway.api.login import LoginBody, MePatch, OwnerBody, PasswordBody, TokenBody, UserBody, UserPatch
from gateway.api.me import MyNotificationsBody
from gateway.api.responses import _json
from gateway.api.scenes import ModeBody, ResolveBody, RunBody, SceneUpdate
from gateway.api.ui import AreaNameBody, DeviceMetaBody

__all__ = ["OPENAPI_VERSION", "OPERATIONS", "Operation", "add_openapi_routes", "canonical_routes", "openapi_document"]

OPENAPI_VERSION = "3.1.0"

# -------------------------------------------------------------------- shapes

_STR: dict[str, Any] = {"type": "string"}
_NULLABLE_STR: dict[str, Any] = {"type": ["string", "null"]}
_OBJECT: dict[str, Any] = {"type": "object"}
_NUMBER: dict[str, Any] = {"type": "number"}

#: Every error: a message, and for bad input the field and a machine-readable reason (``errors``: each bad
#: field of a body).
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": _STR,
        "field": _STR,
        "reason": _STR,
        "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
                                              "properties": {"field": _STR, "message": _STR, "reason": _STR}}},
        "retry_after_s": {"type": "integer"},
    },
}


def _object(required: list[str], properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """An object with these keys at least (answers may grow keys: clients ignore the ones they do not know)."""
    return {"type": "object", "required": required, "properties": properties or {k: {} for k in required}}


DEVICE: dict[str, Any] = _object(
    ["id", "name", "source", "available", "components"],
    {
        "id": _STR, "name": _STR, "source": _STR, "manufacturer": _NULLABLE_STR, "model": _NULLABLE_STR,
        "sw_version": _NULLABLE_STR, "area": _NULLABLE_STR, "tags": {"type": "array", "items": _STR},
        "via": _NULLABLE_STR, "available": {"type": ["boolean", "null"]},
        "components": {"type": "object", "description": "component -> capability -> attribute -> value",
                       "additionalProperties": {"type": "object", "additionalProperties": _OBJECT}},
        "capabilities": {"type": "object", "description": "component -> capability -> what the device supports"},
    },
)
COMMAND_RESULT: dict[str, Any] = _object(
    ["status", "message"],
    {"status": {"type": "string", "enum": ["confirmed", "sent", "timeout", "failed", "rejected", "unavailable"]},
     "message": _STR, "expected": _OBJECT, "command": _OBJECT, "details": _OBJECT},
)
SESSION: dict[str, Any] = _object(["ok", "name", "role", "csrf"], {"ok": {"const": True}, "name": _STR, "role": _STR,
                                                                   "kind": _STR, "csrf": _STR})
OK: dict[str, Any] = _object(["ok"], {"ok": {"type": "boolean"}})
TOKEN: dict[str, Any] = _object(["id", "name", "role"], {"id": _STR, "name": _STR, "role": {"enum": list(ROLES)}})
USER: dict[str, Any] = _object(["name", "role"], {"name": _STR, "role": {"enum": list(ROLES)},
                                                 "expires": {"type": ["number", "null"]}})
ALERT: dict[str, Any] = _object(["id", "state"])
SCENE: dict[str, Any] = _object(["id"], {"id": _STR})
MODE: dict[str, Any] = _object(["mode"], {"mode": _STR})
THING_DESCRIPTION: dict[str, Any] = _object(
    ["@context", "title", "security", "securityDefinitions"],
    {"@context": {}, "title": _STR, "id": _STR, "properties": _OBJECT, "actions": _OBJECT, "events": _OBJECT,
     "security": {}, "securityDefinitions": _OBJECT},
)
_HTML = "text/html"
_TEXT = "text/plain"
_ZIP = "application/zip"

# -------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Operation:
    """What the router does not know of one route: its body, query parameters and answers."""

    #: The body's pydantic model (its JSON Schema is the request body's), or None: no body.
    body: type[BaseModel] | None = None
    #: An empty body is taken too (the model's defaults).
    body_optional: bool = False
    #: Query parameters, all optional strings: name -> what it is.
    query: dict[str, str] = field(default_factory=dict)
    #: Status -> the JSON Schema of a successful answer (``None``: no body).
    responses: dict[int, dict[str, Any] | None] = field(default_factory=lambda: {200: _OBJECT})
    #: The media type of the successful answers.
    media_type: str = "application/json"
    #: The JSON Schema of the 4xx/5xx answers, when they are not all :data:`ERROR`.
    errors: dict[str, Any] | None = None


_DEVICE_QUERY = {"area": "only devices in this area", "capability": "only devices with this capability",
                 "source": "only devices of this source"}
_HISTORY_QUERY = {"device": "a device id", "component": "a component", "capability": "a capability",
                  "attribute": "an attribute", "since": "epoch seconds or ISO-8601",
                  "until": "epoch seconds or ISO-8601", "limit": "at most this many rows",
                  "initial": "1: also the last change before since (needs device and attribute)"}

#: Every route: (method, canonical path) -> its :class:`Operation`. Kept beside the routes' modules rather
#: than in each (one place to review); tests/gateway/test_openapi.py fails for a route missing here.
OPERATIONS: dict[tuple[str, str], Operation] = {
    # outside /api: monitoring and the web UI's files
    ("GET", "/healthz"): Operation(responses={200: _object(["status"]), 503: _object(["status"])}),
    ("GET", "/metrics"): Operation(responses={200: None}, media_type=_TEXT),
    ("GET", "/"): Operation(responses={200: None}, media_type=_HTML),
    ("GET", "/ui/{path}"): Operation(responses={200: None, 304: None}, media_type="*/*"),
    ("GET", "/resident"): Operation(responses={200: None}, media_type=_HTML),
    # devices and commands
    ("GET", "/api/devices"): Operation(query=_DEVICE_QUERY, responses={200: _object(
        ["devices"], {"devices": {"type": "array", "items": DEVICE}})}),
    ("GET", "/api/devices/{id}"): Operation(responses={200: DEVICE}),
    ("POST", "/api/devices/{id}/commands"): Operation(
        body=CommandBody, responses={200: COMMAND_RESULT, 202: COMMAND_RESULT},
        errors={"anyOf": [ERROR, COMMAND_RESULT]}),
    ("GET", "/api/capabilities"): Operation(responses={200: _object(["$defs"])}),
    ("GET", "/api/things/{id}"): Operation(responses={200: THING_DESCRIPTION}, media_type="application/td+json"),
    ("GET", "/api/openapi.json"): Operation(responses={200: _object(["openapi", "paths"])}),
    # the web UI's data
    ("GET", "/api/history"): Operation(query=_HISTORY_QUERY, responses={200: _object(
        ["rows", "truncated"], {"rows": {"type": "array"}, "truncated": {"type": "boolean"}})}),
    ("GET", "/api/energy"): Operation(query={"days": "how many days", "price": "price per kWh",
                                             "currency": "the price's currency"}),
    ("PATCH", "/api/devices/{id}"): Operation(body=DeviceMetaBody, responses={200: _object(
        ["device", "overrides", "base"], {"device": DEVICE, "overrides": _OBJECT, "base": _OBJECT})}),
    ("GET", "/api/devices/{id}/meta"): Operation(responses={200: _object(
        ["device", "overrides", "base"], {"device": DEVICE, "overrides": _OBJECT, "base": _OBJECT})}),
    ("GET", "/api/areas"): Operation(),
    ("PUT", "/api/areas/{area}"): Operation(body=AreaNameBody),
    ("GET", "/api/scenes/{id}/runs"): Operation(responses={200: _object(["scene", "runs"])}),
    # scenes, alerts and the house
    ("GET", "/api/scenes"): Operation(responses={200: _object(
        ["scenes", "mode"], {"scenes": {"type": "array", "items": SCENE}, "mode": _STR})}),
    ("GET", "/api/scenes/{id}"): Operation(responses={200: SCENE}),
    ("PATCH", "/api/scenes/{id}"): Operation(body=SceneUpdate, responses={200: SCENE}),
    ("POST", "/api/scenes/{id}/run"): Operation(body=RunBody, body_optional=True,
                                                responses={202: _object(["scene", "trace"])}),
    ("GET", "/api/scenes/{id}/traces"): Operation(responses={200: _object(["scene", "traces"])}),
    ("GET", "/api/alerts"): Operation(query={"state": "active (the default), acknowledged, resolved or all"},
                                      responses={200: _object(["alerts"], {"alerts": {"type": "array",
                                                                                      "items": ALERT}})}),
    ("POST", "/api/alerts/{id}/ack"): Operation(responses={200: ALERT}),
    ("POST", "/api/alerts/{id}/resolve"): Operation(body=ResolveBody, body_optional=True, responses={200: ALERT}),
    ("GET", "/api/house"): Operation(),
    ("GET", "/api/mode"): Operation(responses={200: MODE}),
    ("PUT", "/api/mode"): Operation(body=ModeBody, responses={200: MODE}),
    # logging in, people and tokens
    ("POST", "/api/login"): Operation(body=LoginBody, responses={200: SESSION}),
    ("POST", "/api/logout"): Operation(responses={200: OK}),
    ("GET", "/api/me"): Operation(responses={200: _object(["name", "role"])}),
    ("PATCH", "/api/me"): Operation(body=MePatch, responses={200: _object(["name", "role"])}),
    ("POST", "/api/me/password"): Operation(body=PasswordBody, responses={200: OK}),
    ("GET", "/api/me/notifications"): Operation(responses={200: _object(["contact"])}),
    ("PUT", "/api/me/notifications"): Operation(body=MyNotificationsBody, responses={200: _object(["contact"])}),
    ("POST", "/api/me/notifications/test"): Operation(responses={202: _object(["id", "contact"])}),
    ("GET", "/api/setup"): Operation(responses={200: _object(
        ["owner_exists", "can_create_owner"], {"owner_exists": {"type": "boolean"},
                                               "can_create_owner": {"type": "boolean"}})}),
    ("POST", "/api/setup/owner"): Operation(body=OwnerBody, responses={200: SESSION, 201: SESSION}),
    ("GET", "/api/tokens"): Operation(responses={200: _object(["tokens"], {"tokens": {"type": "array",
                                                                                      "items": TOKEN}})}),
    ("POST", "/api/tokens"): Operation(body=TokenBody, responses={201: _object(["token", "id", "name", "role"])}),
    ("DELETE", "/api/tokens/{id}"): Operation(responses={204: None}),
    ("GET", "/api/users"): Operation(responses={200: _object(["users"], {"users": {"type": "array",
                                                                                   "items": USER}})}),
    ("POST", "/api/users"): Operation(body=UserBody, responses={201: USER}),
    ("PATCH", "/api/users/{name}"): Operation(body=UserPatch, responses={200: USER}),
    ("DELETE", "/api/users/{name}"): Operation(responses={204: None}),
    # personal data
    ("GET", "/api/data/export"): Operation(responses={200: None}, media_type=_ZIP),
    ("POST", "/api/data/delete"): Operation(body=DeleteBody, responses={200: _object(["deleted", "scope"])}),
    ("GET", "/api/audit"): Operation(query={"limit": "at most this many (100)", "since": "epoch seconds",
                                            "action": "only this action"},
                                     responses={200: _object(["entries"], {"entries": {"type": "array"}})}),
    # discovery
    ("GET", "/api/discovered"): Operation(query={"support": "supported or seen only", "family": "a device family",
                                                 "available": "true or false"},
                                          responses={200: _object(["discovered", "mdns"])}),
    # the Matter bridge
    ("GET", "/api/matter"): Operation(responses={200: _object(["enabled"], {
        "enabled": {"type": "boolean"}, "state": _STR, "pairing": _object(["manual_code", "qr_payload"]),
        "unmapped": {"type": "array"}})}),
    # the resident's view
    ("GET", "/api/resident"): Operation(responses={200: _object(["now", "help"])}),
    ("POST", "/api/resident/check-in"): Operation(responses={200: _object(["check_in"]),
                                                             201: _object(["check_in"])}),
    ("POST", "/api/resident/help"): Operation(responses={200: _OBJECT, 201: _OBJECT}),
    # acknowledge links (HTML pages: they are opened from a phone's notification)
    ("GET", "/api/ack/{token}"): Operation(responses={200: None}, media_type=_HTML, errors={}),
    ("POST", "/api/ack/{token}"): Operation(responses={200: None}, media_type=_HTML, errors={}),
    # the WebSocket (the protocol is in docs/http-api.md); a plain GET is refused
    ("GET", "/api/ws"): Operation(responses={101: None}),
}

# -------------------------------------------------------------------- the document


def canonical_routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(method, canonical path, handler) of every route of ``app`` (``{path:.+}`` as ``{path}``); HEAD, which
    aiohttp adds for every GET, left out."""
    out = []
    for route in app.router.routes():
        info = route.get_info()
        path = info.get("path") or info.get("formatter")
        if path is None or route.method in ("*", "HEAD"):
            continue
        out.append((route.method, re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path), route.handler))
    return out


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _docstring(handler: Any) -> tuple[str, str]:
    # reStructuredText's ``code`` is Markdown's `code` (OpenAPI descriptions are CommonMark).
    doc = inspect.cleandoc(handler.__doc__ or "").replace("``", "`")
    first = doc.split("\n\n", 1)[0]
    summary = " ".join(first.split())
    return summary, doc


def _schema_name(model: type[BaseModel], taken: dict[str, Any]) -> str:
    name = model.__name__
    if name in taken and taken[name] is not model:
        name = f"{model.__module__.rsplit('.', 1)[-1]}.{model.__name__}"
    taken[name] = model
    return name


def _operation(method: str, path: str, handler: Any, op: Operation, schemas: dict[str, Any],
               models: dict[str, Any]) -> dict[str, Any]:
    summary, doc = _docstring(handler)
    roles = allowed_roles(method, path) if _is_api(path) else PUBLIC
    if roles == PUBLIC:
        who = ("Public: " + ("checks its own credential." if _is_api(path) else "needs no credential."))
        x_roles: list[str] | str = PUBLIC
        security: list[dict[str, list[str]]] = []
    else:
        x_roles = [role for role in ROLES if role in roles]
        who = "Who: " + ", ".join(x_roles) + "."
        security = [{"bearer": []}, {"session": []}]
    out: dict[str, Any] = {
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{method.lower()} {path}").strip("_"),
        "summary": summary,
        "description": f"{doc}\n\n{who}" if doc else who,
        "tags": [handler.__module__.rsplit(".", 1)[-1]],
        "x-roles": x_roles,
        "security": security,
    }
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    parameters += [{"name": name, "in": "query", "required": False, "description": what, "schema": {"type": "string"}}
                   for name, what in op.query.items()]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        name = _schema_name(op.body, models)
        schema = op.body.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        out["requestBody"] = {"required": not op.body_optional,
                              "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
    responses: dict[str, Any] = {}
    for status, body in op.responses.items():
        answer: dict[str, Any] = {"description": "the answer" if status < 300 else "see the description"}
        if body is not None:
            answer["content"] = {op.media_type: {"schema": body}}
        elif status not in (101, 204, 304):
            answer["content"] = {op.media_type: {}}
        responses[str(status)] = answer
    errors = {"$ref": "#/components/schemas/Error"} if op.errors is None else op.errors
    error_content = {"application/json": {"schema": errors}} if errors else {op.media_type: {}}
    if security:
        responses["401"] = {"description": "no valid credential", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}
        responses["403"] = {"description": "the role may not call this route", "content": error_content}
    responses["4XX"] = {"description": "bad input, no such thing, or refused", "content": error_content}
    responses["5XX"] = {"description": "a part of the gateway is unavailable", "content": error_content}
    out["responses"] = responses
    return out


def openapi_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``app`` (a route missing from :data:`OPERATIONS` gets a
    generic entry: the test that every route has one is what keeps the table honest)."""
    from gateway import __version__

    schemas: dict[str, Any] = {"Error": ERROR}
    models: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in canonical_routes(app):
        op = OPERATIONS.get((method, path), Operation())
        paths.setdefault(path, {})[method.lower()] = _operation(method, path, handler, op, schemas, models)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Hearth HTTP API",
            "version": __version__,
            "description": "The local API of a Hearth gateway. Every /api route needs a credential: the "
            "header `Authorization: Bearer <token>`, or the session cookie of POST /api/login (then "
            "state-changing requests also send the X-CSRF-Token header). `x-roles` says which roles may call "
            "an operation; another role gets 403.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API token (`hearth token create`, or `POST /api/tokens`)."},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                            "description": "The browser session of `POST /api/login` (with the X-CSRF-Token "
                            "header on POST, PUT, PATCH and DELETE)."},
            },
        },
    }


_DOCUMENT_KEY = web.AppKey("hearth.openapi_document", dict)


async def get_openapi(request: web.Request) -> web.Response:
    """This API as an OpenAPI 3.1 document: every route, its body's JSON Schema, its answers, and the roles that
    may call it (``x-roles``)."""
    cache = request.app[_DOCUMENT_KEY]
    if "document" not in cache:  # the router is frozen once the app serves: built once
        cache["document"] = openapi_document(request.app)
    return _json(cache["document"])


def add_openapi_routes(app: web.Application) -> None:
    """``GET /api/openapi.json``: the OpenAPI document of every route of ``app``."""
    app[_DOCUMENT_KEY] = {}
    app.router.add_get("/api/openapi.json", get_openapi)
