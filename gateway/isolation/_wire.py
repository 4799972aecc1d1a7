"""The wire between the gateway and a plugin's worker: one JSON object a line (orjson), ``{"op": ..., ...}``.

The SDK's values are written out field by field here (never pickled: the gateway reads what a worker sends as
untrusted input). The ``decode_*`` functions check every field's type and raise :class:`WireError` saying
what is wrong, so that a malformed message from a worker is reported, never a crash of the gateway.

Cost, measured here (2 cores, hearth_good: an MQTT message in, its ``push`` back to the hub):
one message alone takes ~160 us from the session's callback to the hub (median; p99 ~650 us) against ~13 us in
process, and ~100 us more of the gateway's CPU (two loop wake-ups and their syscalls); in a burst the lines batch
and it is ~2 us more of the gateway's CPU a message (10 against 8) and ~13 us of the worker's. Fine for the tens
of messages a second a house makes; keep a bulk bridge inline.
"""

from __future__ import annotations

import base64
import math
from dataclasses import fields
from typing import Any, cast

import orjson

from gateway.errors import HearthError
from gateway.model._spec import ArgSpec, AttributeSpec, CapabilitySpec, CommandSpec
from gateway.model.types import (
    CapabilitySupport,
    Command,
    CommandResult,
    CommandStatus,
    Device,
    DeviceEventUpdate,
    DeviceInfo,
    Update,
)

# A line longer than this is refused (and reported): a worker cannot make the gateway buffer without bound.
# 1 MiB holds any real device message (MQTT payloads of Zigbee2MQTT's bridge/devices run to a few hundred KB).
MAX_LINE_BYTES = 1 << 20
# Strings from a worker (ids, names, messages) are cut at this many characters where they end up in logs.
MAX_TEXT = 4000
# A writer whose peer does not read (a worker blocked in a plugin's callback) holds at most this much; past it,
# messages are dropped and counted rather than queued without bound.
MAX_PENDING_BYTES = 8 << 20

#: The worker's exit code when it reached its memory limit (a MemoryError anywhere in it).
EXIT_MEMORY = 86

_STATUSES = frozenset({"confirmed", "sent", "timeout", "failed", "rejected", "unavailable"})


class WireError(HearthError):
    """A message that does not follow the protocol (what is wrong is the message)."""


def encode(message: dict[str, Any]) -> bytes:
    """One message as its line (orjson escapes newlines inside strings, so a line is a message)."""
    return orjson.dumps(message, option=orjson.OPT_NON_STR_KEYS) + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """A line as a message: a JSON object with a string ``op``."""
    try:
        message = orjson.loads(line)
    except orjson.JSONDecodeError as err:
        raise WireError(f"not JSON: {err}") from err
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise WireError("not a JSON object with a string 'op'")
    return message


# ------------------------------------------------------------------------------------------------ checks


def text(message: dict[str, Any], key: str, *, optional: bool = False) -> Any:
    value = message.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise WireError(f"{key!r} must be a string")
    return value


def integer(message: dict[str, Any], key: str) -> int:
    value = message.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"{key!r} must be an integer")
    return value


def mapping(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise WireError(f"{key!r} must be an object")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WireError(f"{what} must be a list of strings")
    return value


def _bound(value: Any, what: str) -> float | None:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
        return value
    raise WireError(f"{what} must be a finite number or null")


# --------------------------------------------------------------------------------------------- payloads


def payload_fields(payload: bytes | str) -> dict[str, Any]:
    """An MQTT payload as ``{"text": ...}`` when it is UTF-8 (the usual JSON payload, no copy as base64), else
    ``{"b64": ...}``."""
    if isinstance(payload, str):
        return {"text": payload}
    try:
        return {"text": payload.decode("utf-8")}
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(payload).decode("ascii")}


def payload_of(message: dict[str, Any]) -> bytes:
    if isinstance(message.get("text"), str):
        return str(message["text"]).encode("utf-8")
    if isinstance(message.get("b64"), str):
        try:
            return base64.b64decode(message["b64"], validate=True)
        except ValueError as err:
            raise WireError("'b64' is not base64") from err
    raise WireError("a payload needs 'text' or 'b64'")


# ------------------------------------------------------------------------------------------- SDK values


def support_to_wire(support: dict[str, dict[str, CapabilitySupport]]) -> dict[str, Any]:
    return {
        component: {
            cap: {"attributes": sorted(s.attributes), "commands": sorted(s.commands),
                  "limits": {k: list(v) for k, v in s.limits.items()}}
            for cap, s in caps.items()
        }
        for component, caps in support.items()
    }


def support_from_wire(value: Any) -> dict[str, dict[str, CapabilitySupport]]:
    if not isinstance(value, dict):
        raise WireError("'components' must be an object")
    out: dict[str, dict[str, CapabilitySupport]] = {}
    for component, caps in value.items():
        if not isinstance(caps, dict):
            raise WireError(f"components.{component} must be an object")
        out[component] = {}
        for cap, s in caps.items():
            if not isinstance(cap, str) or not isinstance(s, dict):
                raise WireError(f"components.{component}.{cap} must be an object")
            limits_in = s.get("limits") or {}
            if not isinstance(limits_in, dict):
                raise WireError(f"components.{component}.{cap}.limits must be an object")
            limits: dict[str, tuple[float | None, float | None]] = {}
            for attr, pair in limits_in.items():
                if not isinstance(pair, list) or len(pair) != 2:
                    raise WireError(f"components.{component}.{cap}.limits.{attr} must be [minimum, maximum]")
                limits[attr] = (_bound(pair[0], "a limit"), _bound(pair[1], "a limit"))
            out[component][cap] = CapabilitySupport(
                frozenset(_strings(s.get("attributes", []), "attributes")),
                frozenset(_strings(s.get("commands", []), "commands")),
                limits,
            )
    return out


_INFO_TEXT = ("manufacturer", "model", "sw_version", "hw_version", "serial", "mac", "via", "suggested_area")


def info_to_wire(info: DeviceInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"id": info.id, "name": info.name, "source": info.source,
                           "components": support_to_wire(info.components), "aliases": list(info.aliases)}
    for key in _INFO_TEXT:
        out[key] = getattr(info, key)
    return out


def info_from_wire(value: Any) -> DeviceInfo:
    if not isinstance(value, dict):
        raise WireError("'info' must be an object")
    optional: dict[str, Any] = {key: text(value, key, optional=True) for key in _INFO_TEXT}
    return DeviceInfo(
        text(value, "id"), text(value, "name"), text(value, "source"), support_from_wire(value.get("components")),
        aliases=tuple(_strings(value.get("aliases", []), "aliases")), **optional,
    )


_DEVICE_TEXT = ("manufacturer", "model", "sw_version", "hw_version", "serial", "mac", "via", "area")


def device_to_wire(device: Device) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": device.id, "name": device.name, "source": device.source, "adapter": device.adapter,
        "tags": list(device.tags), "aliases": list(device.aliases), "available": device.available,
        "support": support_to_wire(device.support), "state": device.state, "last_update": device.last_update,
    }
    for key in _DEVICE_TEXT:
        out[key] = getattr(device, key)
    return out


def device_from_wire(value: Any) -> Device:
    """A device as the gateway sent it (the worker's side: the gateway is trusted, but checked all the same)."""
    if not isinstance(value, dict):
        raise WireError("'device' must be an object")
    state = value.get("state") or {}
    if not isinstance(state, dict):
        raise WireError("'state' must be an object")
    available = value.get("available")
    last_update = value.get("last_update")
    optional: dict[str, Any] = {key: text(value, key, optional=True) for key in _DEVICE_TEXT}
    return Device(
        text(value, "id"), text(value, "name"), text(value, "source"), text(value, "adapter"), **optional,
        tags=tuple(_strings(value.get("tags", []), "tags")),
        aliases=tuple(_strings(value.get("aliases", []), "aliases")),
        available=available if isinstance(available, bool) else None,
        support=support_from_wire(value.get("support") or {}),
        state=state,
        last_update=float(last_update) if isinstance(last_update, int | float) else None,
    )


def updates_to_wire(updates: list[Update]) -> list[list[Any]]:
    return [[u.device_id, u.component, u.capability, u.attribute, u.value] for u in updates]


def updates_from_wire(value: Any) -> list[Update]:
    if not isinstance(value, list):
        raise WireError("'updates' must be a list")
    out: list[Update] = []
    for row in value:
        if (not isinstance(row, list) or len(row) != 5
                or not all(isinstance(part, str) for part in row[:4])):
            raise WireError("an update must be [device_id, component, capability, attribute, value]")
        out.append(Update(row[0], row[1], row[2], row[3], row[4]))
    return out


def event_to_wire(event: DeviceEventUpdate) -> dict[str, Any]:
    return {"device_id": event.device_id, "component": event.component, "capability": event.capability,
            "event": event.event, "data": event.data}


def event_from_wire(value: Any) -> DeviceEventUpdate:
    if not isinstance(value, dict):
        raise WireError("'event' must be an object")
    return DeviceEventUpdate(text(value, "device_id"), text(value, "component"), text(value, "capability"),
                             text(value, "event"), mapping(value, "data") if "data" in value else {})


def command_to_wire(command: Command) -> dict[str, Any]:
    return {"device_id": command.device_id, "component": command.component, "capability": command.capability,
            "command": command.command, "args": command.args, "source": command.source}


def command_from_wire(value: Any) -> Command:
    if not isinstance(value, dict):
        raise WireError("'command' must be an object")
    return Command(text(value, "device_id"), text(value, "component"), text(value, "capability"),
                   text(value, "command"), mapping(value, "args"), text(value, "source"))


def result_to_wire(result: CommandResult) -> dict[str, Any]:
    return {"status": result.status, "message": result.message, "expected": result.expected,
            "details": result.details}


def result_from_wire(value: Any) -> CommandResult:
    if not isinstance(value, dict):
        raise WireError("'result' must be an object")
    status = value.get("status")
    if not isinstance(status, str) or status not in _STATUSES:
        raise WireError(f"'status' must be one of {', '.join(sorted(_STATUSES))}")
    expected = value.get("expected") or {}
    details = value.get("details") or {}
    if not isinstance(expected, dict) or not isinstance(details, dict):
        raise WireError("'expected' and 'details' must be objects")
    return CommandResult(cast(CommandStatus, status), str(value.get("message") or "")[:MAX_TEXT], expected, details)


_VALUE_TYPES = frozenset({"bool", "number", "integer", "string", "enum", "timestamp"})


def _spec_fields(value: Any, what: str, *, arg: bool) -> dict[str, Any]:
    """The fields of an AttributeSpec or ArgSpec, each of its type (a worker's spec ends up in the gateway's
    model, which the API, scenes and the docs read: nothing there may be of another type than it says)."""
    if not isinstance(value, dict):
        raise WireError(f"{what} must be an object")
    kind = value.get("type")
    if not isinstance(kind, str) or kind not in _VALUE_TYPES:
        raise WireError(f"{what}: 'type' must be one of {', '.join(sorted(_VALUE_TYPES))}")
    out: dict[str, Any] = {"type": kind, "unit": text(value, "unit", optional=True),
                           "minimum": _bound(value.get("minimum"), f"{what}: minimum"),
                           "maximum": _bound(value.get("maximum"), f"{what}: maximum"),
                           "values": tuple(_strings(value.get("values", []), f"{what}: values"))}
    flags = ("required",) if arg else ("settable",)
    for flag in flags:
        if flag in value:
            if not isinstance(value[flag], bool):
                raise WireError(f"{what}: {flag!r} must be true or false")
            out[flag] = value[flag]
    if not arg:
        out["description"] = str(text(value, "description", optional=True) or "")
    return out


def _args(value: Any, what: str) -> dict[str, ArgSpec]:
    if not isinstance(value, dict):
        raise WireError(f"{what} must be an object")
    return {name: ArgSpec(**_spec_fields(spec, f"{what}.{name}", arg=True)) for name, spec in value.items()}


def capability_to_wire(spec: CapabilitySpec) -> dict[str, Any]:
    def plain(obj: Any) -> Any:
        if isinstance(obj, AttributeSpec | ArgSpec | CommandSpec):
            return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        if isinstance(obj, tuple):
            return list(obj)
        return obj

    return {f.name: plain(getattr(spec, f.name)) for f in fields(spec)}


def capability_from_wire(value: Any) -> CapabilitySpec:
    if not isinstance(value, dict):
        raise WireError("a capability must be an object")
    attributes = {name: AttributeSpec(**_spec_fields(spec, f"attribute {name}", arg=False))
                  for name, spec in mapping(value, "attributes").items()}
    commands: dict[str, CommandSpec] = {}
    for name, cmd in (value.get("commands") or {}).items():
        if not isinstance(cmd, dict):
            raise WireError(f"command {name} must be an object")
        expect = cmd.get("expect") or {}
        steps = cmd.get("steps") or {}
        if not isinstance(expect, dict) or not isinstance(steps, dict) or not all(
                isinstance(v, str) for v in steps.values()):
            raise WireError(f"command {name}: 'expect' must be an object, 'steps' an object of strings")
        commands[name] = CommandSpec(_args(cmd.get("args") or {}, f"command {name}"), expect,
                                     str(text(cmd, "description", optional=True) or ""), steps)
    events_in = value.get("events") or {}
    if not isinstance(events_in, dict):
        raise WireError("'events' must be an object")
    events = {name: _args(data or {}, f"event {name}") for name, data in events_in.items()}
    return CapabilitySpec(text(value, "name"), attributes, commands, events,
                          *(str(text(value, key, optional=True) or "") for key in ("description", "ha", "matter")))
