"""W3C Web of Things Thing Descriptions (TD 1.1) of the devices: ``GET /api/things/{id}``.

A device's TD is built from the capability model and what the device supports of it, component by
component: each reported attribute becomes a *property* (its type, canonical unit and range, narrowed by
the device's own limits), each command it takes an *action* (the input is the body of
``POST /api/devices/{id}/commands``), each event of its capabilities an *event*. Every form points at
Hearth's own HTTP API, which needs a bearer token (the ``bearer`` security scheme).

Affordance names are ``<component>/<capability>/<attribute, command or event>`` (``main/level/percent``): a
plugin's capability name has dots of its own, so a dot could not separate the parts. Terms TD 1.1 has no
word for carry the ``hearth:`` prefix, declared in the ``@context``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from gateway.api.keys import HUB_KEY
from gateway.api.responses import _json, _no_device
from gateway.model import capability as capability_spec
from gateway.model._spec import ArgSpec, AttributeSpec
from gateway.model.types import Device

__all__ = ["TD_CONTEXT", "add_thing_routes", "thing_description"]

#: The TD 1.1 context, then Hearth's own prefix for the terms TD has no word for.
TD_CONTEXT: list[Any] = ["https://www.w3.org/2022/wot/td/v1.1", {"hearth": "https://hearth.invalid/ns/td#"}]
_SECURITY_NAME = "bearer_sc"
_JSON = "application/json"
_STATUSES = ["confirmed", "sent", "timeout", "failed", "rejected", "unavailable"]


def _data_schema(spec: AttributeSpec, limits: tuple[float | None, float | None] | None = None) -> dict[str, Any]:
    """A TD data schema of one attribute or argument: type, unit, range (the device's limits within the
    model's), the values of an enum."""
    schema: dict[str, Any]
    if spec.type == "bool":
        schema = {"type": "boolean"}
    elif spec.type in ("number", "integer"):
        schema = {"type": spec.type}
        low, high = spec.minimum, spec.maximum
        if limits is not None:
            low = limits[0] if limits[0] is not None and (low is None or limits[0] > low) else low
            high = limits[1] if limits[1] is not None and (high is None or limits[1] < high) else high
        if low is not None:
            schema["minimum"] = low
        if high is not None:
            schema["maximum"] = high
    elif spec.type == "enum":
        schema = {"type": "string", "enum": list(spec.values)}
    elif spec.type == "timestamp":
        schema = {"type": "string", "format": "date-time"}
    else:
        schema = {"type": "string"}
    if spec.unit:
        schema["unit"] = spec.unit
    if spec.description:
        schema["description"] = spec.description
    return schema


def _object_schema(args: dict[str, ArgSpec], limits: dict[str, tuple[float | None, float | None]]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: _data_schema(arg.as_attribute(), limits.get(name)) for name, arg in args.items()},
    }
    required = [name for name, arg in args.items() if arg.required]
    if required:
        schema["required"] = required
    return schema


def thing_description(device: Device, base_url: str) -> dict[str, Any]:
    """The TD 1.1 of ``device``, its forms relative to ``base_url`` (``http://host:port/``, where the API is).

    Capabilities the model does not know (a plugin's, before it registers) are left out.
    """
    device_path = f"api/devices/{quote(device.id, safe='')}"
    ws_url = "ws" + base_url.removeprefix("http") + "api/ws"
    properties: dict[str, Any] = {}
    actions: dict[str, Any] = {}
    events: dict[str, Any] = {}
    for component, capabilities in sorted(device.support.items()):
        for cap_name, support in sorted(capabilities.items()):
            spec = capability_spec(cap_name)
            if spec is None:
                continue
            where = "" if component == "main" else f" ({component})"
            set_by: dict[str, list[str]] = {}
            for command in sorted(support.commands):
                cmd_spec = spec.commands.get(command)
                if cmd_spec is None:
                    continue
                name = f"{component}/{cap_name}/{command}"
                for attribute in cmd_spec.expect:
                    set_by.setdefault(attribute, []).append(name)
                args = _object_schema(cmd_spec.args, support.limits)
                args.setdefault("required", [])
                action: dict[str, Any] = {
                    "title": f"{cap_name} {command}{where}",
                    "input": {
                        "type": "object",
                        "properties": {
                            "component": {"type": "string", "const": component},
                            "capability": {"type": "string", "const": cap_name},
                            "command": {"type": "string", "const": command},
                            "args": args,
                            "timeout_s": {"type": "number", "minimum": 0, "maximum": 60, "unit": "s",
                                          "description": "how long to wait for the device to confirm"},
                        },
                        "required": ["component", "capability", "command", "args"],
                    },
                    "output": {
                        "type": "object",
                        "properties": {"status": {"type": "string", "enum": _STATUSES}, "message": {"type": "string"}},
                        "required": ["status", "message"],
                    },
                    "synchronous": True,
                    "forms": [{"href": f"{device_path}/commands", "op": "invokeaction", "htv:methodName": "POST",
                               "contentType": _JSON}],
                }
                if cmd_spec.description:
                    action["description"] = cmd_spec.description
                actions[name] = action
            for attribute in sorted(support.attributes):
                attr_spec = spec.attributes.get(attribute)
                if attr_spec is None:
                    continue
                name = f"{component}/{cap_name}/{attribute}"
                prop = _data_schema(attr_spec, support.limits.get(attribute))
                # Set through an action, never written directly: there is no writeproperty form.
                prop.update({
                    "title": f"{cap_name} {attribute}{where}",
                    "readOnly": True,
                    "observable": False,
                    "forms": [{"href": device_path, "op": "readproperty", "htv:methodName": "GET",
                               "contentType": _JSON,
                               # The device's answer holds every value; this one is at this JSON Pointer.
                               "hearth:valuePointer": f"/components/{_pointer(component)}/{_pointer(cap_name)}/"
                                                      f"{_pointer(attribute)}"}],
                })
                if set_by.get(attribute):
                    prop["hearth:setBy"] = set_by[attribute]
                properties[name] = prop
            for event, fields in sorted(spec.events.items()):
                name = f"{component}/{cap_name}/{event}"
                events[name] = {
                    "title": f"{cap_name} {event}{where}",
                    "description": "Shown live as the state change it brings (the WebSocket's state events "
                    "of this capability).",
                    "data": _object_schema(fields, {}),
                    "forms": [{"href": ws_url, "op": "subscribeevent", "contentType": _JSON,
                               "hearth:subscribe": {"type": "subscribe", "events": ["state"],
                                                    "filter": {"device": device.id, "capability": cap_name}}}],
                }
    description = " ".join(part for part in (device.manufacturer, device.model) if part)
    td: dict[str, Any] = {
        "@context": TD_CONTEXT,
        "@type": "Thing",
        "id": f"urn:hearth:device:{quote(device.id, safe=':')}",
        "title": device.name or device.id,
        "description": f"{description} ({device.source})" if description else f"A {device.source} device",
        "base": base_url,
        "securityDefinitions": {
            _SECURITY_NAME: {"scheme": "bearer", "in": "header", "name": "Authorization",
                             "description": "An API token (hearth token create), or the session of POST /api/login"},
        },
        "security": _SECURITY_NAME,
        "properties": properties,
        "actions": actions,
        "events": events,
        "forms": [{"href": device_path, "op": "readallproperties", "htv:methodName": "GET", "contentType": _JSON}],
    }
    if device.sw_version:
        td["version"] = {"instance": device.sw_version}
    if device.area:
        td["hearth:area"] = device.area
    return td


def _pointer(token: str) -> str:
    """One reference token of a JSON Pointer (RFC 6901: ``~`` and ``/`` escaped)."""
    return token.replace("~", "~0").replace("/", "~1")


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}/"


async def get_thing(request: web.Request) -> web.Response:
    """A device as a W3C WoT Thing Description 1.1: its attributes as properties, its commands as actions, its
    capabilities' events, with forms for this API and the bearer security scheme."""
    device_id = request.match_info["id"]
    device = request.app[HUB_KEY].devices.get(device_id)
    if device is None:
        return _no_device(device_id)
    response = _json(thing_description(device, _base_url(request)))
    response.content_type = "application/td+json"
    return response


def add_thing_routes(app: web.Application) -> None:
    """``GET /api/things/{id}``: a device's Thing Description."""
    app.router.add_get("/api/things/{id}", get_thing)
