"""The capability model: the registry of capabilities, command validation and the JSON-schema export."""

from __future__ import annotations

import math
import re
from typing import Any

from gateway.errors import CommandErrorReason, CommandValidationError, HearthError
from gateway.model._spec import ArgSpec, AttributeSpec, CapabilitySpec, CommandSpec
from gateway.model.capabilities import CORE_CAPABILITIES
from gateway.model.types import (
    CapabilitySupport,
    Command,
    CommandResult,
    Device,
    DeviceEventUpdate,
    DeviceInfo,
    Update,
)

__all__ = [
    "ArgSpec",
    "AttributeSpec",
    "CapabilitySpec",
    "CapabilitySupport",
    "Command",
    "CommandResult",
    "CommandSpec",
    "Device",
    "DeviceEventUpdate",
    "DeviceInfo",
    "Update",
    "capabilities",
    "capability",
    "expected_state",
    "json_schema",
    "register_capability",
    "registry_generation",
    "validate_command",
]

MODEL_VERSION = 1
_REGISTRY: dict[str, CapabilitySpec] = {spec.name: spec for spec in CORE_CAPABILITIES}
_PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
# Bumped by every registration that changes the model: a hub rebuilds its lookup tables when it differs.
_GENERATION = 0


def registry_generation() -> int:
    """A number that changes whenever a capability is registered (the hub's cue to refresh its tables)."""
    return _GENERATION


def capabilities() -> dict[str, CapabilitySpec]:
    """Every capability known now, core and registered plugin ones: name -> spec (a copy)."""
    return dict(_REGISTRY)


def capability(name: str) -> CapabilitySpec | None:
    """The spec of capability ``name``, or None when no such capability is known (yet)."""
    return _REGISTRY.get(name)


def register_capability(spec: CapabilitySpec) -> None:
    """Add a plugin capability. Its name must be dotted (``acme.coffee_maker``): undotted names are core.

    Registering the same spec again does nothing; a different spec under a registered name raises
    :class:`HearthError`. Register in the adapter's ``start`` (or at import), before upserting a device
    that uses it: the API, scenes and ``hearth replay`` then take it like a core capability.
    """
    if not _PLUGIN_NAME.match(spec.name):
        raise HearthError(
            f"plugin capability {spec.name!r}: plugin capabilities need a dotted lowercase name "
            "such as 'acme.coffee_maker'; undotted names are reserved for the core model"
        )
    existing = _REGISTRY.get(spec.name)
    if existing is not None and existing != spec:
        raise HearthError(f"capability {spec.name!r} is already registered with a different definition")
    if existing is None:
        global _GENERATION
        _REGISTRY[spec.name] = spec
        _GENERATION += 1


def _check_arg(path: str, spec: ArgSpec, value: Any, limits: tuple[float | None, float | None] | None) -> Any:
    if isinstance(value, bool) and spec.type in ("number", "integer"):
        raise CommandValidationError(CommandErrorReason.WRONG_TYPE, path, f"expected a {spec.type}, got a boolean")
    if spec.type == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if spec.type == "number" and isinstance(value, (int, float)) and not math.isfinite(value):
        raise CommandValidationError(CommandErrorReason.OUT_OF_RANGE, path, "must be a finite number")
    problem = spec.as_attribute().check(value)
    if value is None:
        problem = f"expected {spec.type}, got null"
    if problem:
        reason = CommandErrorReason.WRONG_TYPE if "expected" in problem else CommandErrorReason.OUT_OF_RANGE
        raise CommandValidationError(reason, path, problem)
    if limits is not None:
        low, high = limits
        if low is not None and value < low:
            raise CommandValidationError(
                CommandErrorReason.OUT_OF_RANGE, path, f"{value} is below this device's minimum {low:g}"
            )
        if high is not None and value > high:
            raise CommandValidationError(
                CommandErrorReason.OUT_OF_RANGE, path, f"{value} is above this device's maximum {high:g}"
            )
    return value


def validate_command(device: Device, command: Command) -> Command:
    """Check ``command`` against the model and against what ``device`` supports.

    Returns the command with normalized arguments; raises :class:`CommandValidationError` naming the
    bad field (``component``, ``capability``, ``command``, ``args.<name>``) otherwise.
    """
    spec = _REGISTRY.get(command.capability)
    if spec is None:
        raise CommandValidationError(
            CommandErrorReason.UNKNOWN_CAPABILITY, "capability", f"unknown capability {command.capability!r}"
        )
    components = device.support
    if command.component not in components:
        raise CommandValidationError(
            CommandErrorReason.UNKNOWN_COMPONENT,
            "component",
            f"device {device.id} has no component {command.component!r} (it has: {', '.join(sorted(components))})",
        )
    support = components[command.component].get(command.capability)
    if support is None:
        raise CommandValidationError(
            CommandErrorReason.UNSUPPORTED_CAPABILITY,
            "capability",
            f"component {command.component!r} of {device.id} has no {command.capability!r} capability "
            f"(it has: {', '.join(sorted(components[command.component])) or 'none'})",
        )
    cmd_spec = spec.commands.get(command.command)
    if cmd_spec is None:
        known = ", ".join(sorted(spec.commands)) or "none"
        raise CommandValidationError(
            CommandErrorReason.UNKNOWN_COMMAND,
            "command",
            f"{command.capability} has no command {command.command!r} (commands: {known})",
        )
    if command.command not in support.commands:
        raise CommandValidationError(
            CommandErrorReason.UNSUPPORTED_COMMAND,
            "command",
            f"{device.id} does not accept {command.capability}.{command.command} "
            f"(it accepts: {', '.join(sorted(support.commands)) or 'no commands'})",
        )
    if not isinstance(command.args, dict):
        raise CommandValidationError(CommandErrorReason.WRONG_TYPE, "args", "expected an object")
    for name in command.args:
        if name not in cmd_spec.args:
            allowed = ", ".join(sorted(cmd_spec.args)) or "none"
            raise CommandValidationError(
                CommandErrorReason.UNKNOWN_ARGUMENT,
                f"args.{name}",
                f"{command.capability}.{command.command} takes no argument {name!r} (arguments: {allowed})",
            )
    args: dict[str, Any] = {}
    for name, arg_spec in cmd_spec.args.items():
        if name not in command.args:
            if arg_spec.required:
                raise CommandValidationError(
                    CommandErrorReason.MISSING_ARGUMENT, f"args.{name}", f"required ({arg_spec.type})"
                )
            continue
        # A device's limits are per attribute; an argument named like an attribute shares them.
        limits = support.limits.get(name)
        args[name] = _check_arg(f"args.{name}", arg_spec, command.args[name], limits)
    return Command(command.device_id, command.component, command.capability, command.command, args, command.source)


def expected_state(command: Command, device: Device) -> dict[str, Any]:
    """The attribute values the device should report once it has carried out ``command``.

    Only attributes the device actually reports are expected (a device that never reports its level
    cannot confirm a level).
    """
    spec = _REGISTRY.get(command.capability)
    if spec is None:
        return {}
    cmd_spec = spec.commands.get(command.command)
    if cmd_spec is None:
        return {}
    support = device.support.get(command.component, {}).get(command.capability)
    reported = support.attributes if support else frozenset()
    expected: dict[str, Any] = {}
    for attribute, rule in cmd_spec.expect.items():
        if attribute not in reported:
            continue
        if isinstance(rule, str) and rule.startswith("$not:"):
            current = device.value(command.component, command.capability, rule[5:])
            if not isinstance(current, bool):
                continue
            expected[attribute] = not current
        elif isinstance(rule, str) and rule.startswith("$"):
            if rule[1:] in command.args:
                expected[attribute] = command.args[rule[1:]]
        else:
            expected[attribute] = rule
        if attribute in expected and attribute in cmd_spec.steps:
            steps = device.value(command.component, command.capability, cmd_spec.steps[attribute])
            expected[attribute] = stepped(expected[attribute], steps)
    return expected


def stepped(percent: Any, steps: Any) -> Any:
    """The percentage a device with ``steps`` speeds (or levels) reaches when asked for ``percent``: the
    nearest step at or above it (a 3-speed fan asked for 50 % runs at speed 2 of 3, 67 %); 0 stays 0."""
    if (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1 or isinstance(percent, bool)
            or not isinstance(percent, (int, float)) or percent <= 0):
        return percent
    step = min(steps, max(1, math.ceil(percent * steps / 100 - 1e-9)))
    return round(step * 100 / steps)


def matches_expected(expected: Any, actual: Any) -> bool:
    """Whether a reported value confirms an expected one. Numbers may differ by device rounding
    (percent -> 0-254 -> percent, kelvin -> mireds -> kelvin): 1 % of the range or 2 % relative."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return abs(expected - actual) <= max(1.0, abs(expected) * 0.02)
    return bool(expected == actual)


def _json_type(spec: AttributeSpec) -> dict[str, Any]:
    base: dict[str, Any]
    if spec.type == "bool":
        base = {"type": "boolean"}
    elif spec.type in ("number", "integer"):
        base = {"type": spec.type}
        if spec.minimum is not None:
            base["minimum"] = spec.minimum
        if spec.maximum is not None:
            base["maximum"] = spec.maximum
    elif spec.type == "enum":
        base = {"type": "string", "enum": list(spec.values)}
    elif spec.type == "timestamp":
        base = {"type": "string", "format": "date-time"}
    else:
        base = {"type": "string"}
    if spec.unit:
        base["unit"] = spec.unit
    if spec.description:
        base["description"] = spec.description
    return base


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the model: one definition per capability, with its attributes
    (``readOnly`` unless a command sets them) and its commands' argument schemas."""
    defs: dict[str, Any] = {}
    for name, spec in sorted(_REGISTRY.items()):
        attributes = {}
        for attr, attr_spec in spec.attributes.items():
            schema = _json_type(attr_spec)
            schema["readOnly"] = not attr_spec.settable
            attributes[attr] = {"anyOf": [schema, {"type": "null"}]}
        commands = {}
        for cmd, cmd_spec in spec.commands.items():
            commands[cmd] = {
                "type": "object",
                "properties": {arg: _json_type(a.as_attribute()) for arg, a in cmd_spec.args.items()},
                "required": [arg for arg, a in cmd_spec.args.items() if a.required],
                "additionalProperties": False,
            }
        events = {
            ev: {
                "type": "object",
                "properties": {arg: _json_type(a.as_attribute()) for arg, a in args.items()},
            }
            for ev, args in spec.events.items()
        }
        defs[name] = {
            "type": "object",
            "description": spec.description,
            "properties": attributes,
            "additionalProperties": False,
            "x-commands": commands,
            "x-events": events,
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://hearth.invalid/schema/capabilities/v{MODEL_VERSION}.json",
        "title": f"Hearth capability model v{MODEL_VERSION}",
        "description": "State of one component: capability -> attribute -> value in the canonical unit.",
        "type": "object",
        "properties": {name: {"$ref": f"#/$defs/{name}"} for name in sorted(_REGISTRY)},
        "additionalProperties": False,
        "$defs": defs,
    }
