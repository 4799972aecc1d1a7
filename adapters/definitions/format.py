"""Declarative device definitions: the TOML format, its strict loader, and the small safe pieces it is built of
(a JSON path evaluator, payload templates, unit conversion).

A definition maps one vendor's own MQTT topics and JSON payloads to the capability model, without code. It is
pure data: nothing in it is ever executed. Loading is strict, like profiles: unknown keys, wrong types,
unknown capabilities/attributes/commands, bad JSON paths, units that do not fit the attribute and placeholders
a command cannot fill are :class:`~gateway.errors.ConfigError` problems naming the file, the line and the key.

The format (full guide with examples: ``adapters/definitions/definitions/README.md``)::

    format = 1                        # optional; the only format so far
    name = "opendtu"                  # lowercase slug; device ids are def:<name>:<device>
    version = 3                       # of this definition (yours to bump)
    manufacturer = "Hoymiles"
    model = "HM-series micro-inverter (OpenDTU)"
    source = "https://github.com/tbnobody/OpenDTU/blob/master/docs/MQTT_Topics.md"

    [match]
    topic = "solar/{device}"          # the device's base topic; {device} is one whole level: its native id
    discover = "status/reachable"     # a message on this topic announces a device (true: any topic below;
                                      # false: only devices listed in the adapter config)
    name = "Inverter {device}"        # default "<model> <device>"

    [availability]                    # optional
    topic = "status/reachable"        # relative to [match] topic ("" = the base topic itself)
    values = { "1" = true, "0" = false }

    [[info]]                          # optional device metadata: name, sw_version, hw_version, serial, model, mac
    topic = "name"
    field = "name"

    [[state]]                         # one reported value
    topic = "0/power"
    path = ""                         # JSON path into the payload: "status.temp", "data[0].value", '["a b"]'
    component = "main"                # default main
    attribute = "power_meter.watts"   # capability.attribute
    unit = "W"                        # the payload's unit: converted to the attribute's canonical unit
    scale = 1.0                       # value * scale + offset, before the unit conversion
    offset = 0.0
    digits = 1                        # round the result (default: 6 decimals when anything was converted)
    values = { "ON" = true, "OFF" = false }   # payload value (its text) -> attribute value
    default = false                   # for a payload value not in `values` (else it is reported as bad input)
    unknown = ["-1"]                  # payload values that mean "reported, but unknown" (null)

    [[command]]
    command = "on_off.on"             # capability.command
    component = "main"
    topic = "cmd/power"               # relative to [match] topic; may use {device} and the command's arguments
    payload = "1"                     # template: {device} and the command's arguments, e.g. '{"setpoint": {celsius}}'
    format = "auto"                   # json | text | auto (json when the payload starts with a literal { or [)
    args.celsius = { min = 40, max = 75, digits = 0 }   # per argument: map, scale, offset, unit, digits,
                                                        # min/max (this device's range), default (optional args)

Placeholders are ``{name}`` with a plain identifier inside; every other brace is literal, so JSON payloads are
written as they are sent. In a JSON payload a placeholder inside a string is filled with the JSON-escaped text
of the value, and outside a string with the value as JSON (``"heat"``, ``21.5``, ``true``), so no argument can
break out of its place.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from gateway.sdk import (
    UNIT_FACTORS,
    ArgSpec,
    AttributeSpec,
    ConfigError,
    ConfigProblem,
    TomlLocator,
    capabilities,
    capability,
    loads_toml,
)

__all__ = [
    "FORMAT_VERSION",
    "SOURCE",
    "ArgRule",
    "CommandRule",
    "Definition",
    "InfoRule",
    "JsonPath",
    "PathError",
    "StateRule",
    "Template",
    "canonical_converter",
    "compile_path",
    "compile_template",
    "device_id_for",
    "format_number",
    "load_definition",
    "load_definition_text",
    "load_definitions",
    "lookup_path",
    "shipped_definitions_dir",
    "text_of",
]

FORMAT_VERSION = 1
#: The ``<source>`` of every device id made from a definition: ``def:<definition name>:<native id>``.
SOURCE = "def"
# A definition is a page of TOML; anything far larger is not one (and would only cost memory).
MAX_DEFINITION_BYTES = 512 * 1024
MAX_PATH_CHARS = 200
MAX_PATH_SEGMENTS = 32
MAX_TEMPLATE_CHARS = 4096
DEVICE = "device"  # the one placeholder every template may use: the device's native id

_SLUG = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_COMPONENT = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_INFO_FIELDS = ("name", "sw_version", "hw_version", "serial", "model", "mac")


def device_id_for(definition: str, native: str) -> str:
    """``def:<definition>:<native id>``, lowercase (DESIGN.md contract 2)."""
    return f"{SOURCE}:{definition}:{native}".lower()


# ---------------------------------------------------------------------------------------------- JSON paths

JsonPath = tuple[str | int, ...]


class PathError(ValueError):
    """A JSON path that does not parse."""


_PATH_NAME = re.compile(r"[^.\[\]\"'\s]+")
_PATH_INDEX = re.compile(r"\[\s*(-?\d+)\s*\]")
_PATH_QUOTED = re.compile(r"\[\s*(?:\"((?:[^\"\\]|\\.)*)\"|'([^']*)')\s*\]")


def compile_path(text: str) -> JsonPath:
    """``status.temp`` -> ``("status", "temp")``; ``data[0].value`` -> ``("data", 0, "value")``;
    ``["a b"].c`` for keys with dots or spaces. ``""`` (or ``$``) is the whole payload.

    Only keys and indices: no filters, wildcards or expressions, so evaluating a path can do nothing but read.
    """
    if not isinstance(text, str):
        raise PathError("a JSON path is a string")
    if len(text) > MAX_PATH_CHARS:
        raise PathError(f"a JSON path of {len(text)} characters is too long (at most {MAX_PATH_CHARS})")
    source = text.strip()
    # "$.a.b" is how JSONPath writes it; the root is implied here, so take it either way.
    if source == "$":
        return ()
    if source.startswith("$.") or source.startswith("$["):
        source = source[1:].lstrip(".") if source.startswith("$.") else source[1:]
    out: list[str | int] = []
    pos = 0
    expect_name = True  # at the start, or right after a '.'
    while pos < len(source):
        char = source[pos]
        if char == "[":
            match = _PATH_INDEX.match(source, pos) or _PATH_QUOTED.match(source, pos)
            if match is None:
                raise PathError(f'bad index at {source[pos : pos + 12]!r}: write [0], [-1] or ["key"]')
            if match.re is _PATH_INDEX:
                out.append(int(match.group(1)))
            else:
                key = match.group(1) if match.group(1) is not None else match.group(2)
                out.append(key.replace('\\"', '"').replace("\\\\", "\\"))
            pos = match.end()
            expect_name = False
        elif char == "." and not expect_name:
            pos += 1
            expect_name = True
            if pos == len(source):
                raise PathError("a path must not end with '.'")
        elif expect_name:
            match = _PATH_NAME.match(source, pos)
            if match is None:
                raise PathError(f'expected a key at {source[pos : pos + 12]!r} (quote unusual keys: ["a b"])')
            out.append(match.group(0))
            pos = match.end()
            expect_name = False
        else:
            raise PathError(f"expected '.' or '[' at {source[pos : pos + 12]!r}")
        if len(out) > MAX_PATH_SEGMENTS:
            raise PathError(f"a path of more than {MAX_PATH_SEGMENTS} steps is too deep")
    if expect_name and out:
        raise PathError("a path must not end with '.'")
    return tuple(out)


_MISSING: Any = object()


def lookup_path(value: Any, path: JsonPath) -> Any:
    """The value at ``path``, or :data:`_MISSING` when a key or index is not there (a shared state topic that
    does not carry this value this time). Raises :class:`PathError` when the payload's shape does not fit
    (indexing a number, a key into a list)."""
    for step in path:
        if isinstance(value, dict):
            value = value.get(str(step), _MISSING)
        elif isinstance(value, list):
            index = step if isinstance(step, int) else int(step) if step.lstrip("-").isdigit() else None
            if index is None:
                raise PathError(f"expected an object for key {step!r}, got a list")
            value = value[index] if -len(value) <= index < len(value) else _MISSING
        else:
            kind = "null" if value is None else type(value).__name__
            raise PathError(f"expected an object or a list for {step!r}, got {kind}")
        if value is _MISSING:
            return _MISSING
    return value


def text_of(value: Any) -> str:
    """A payload value as a ``values`` map key: strings as they are, JSON literals as JSON writes them."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, int):
        return str(value)
    return orjson.dumps(value).decode()


def format_number(value: float | int) -> str:
    """``48.0`` -> ``48``, ``21.5`` -> ``21.5``: how a number goes into a text payload or topic."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------- units

#: How a payload unit becomes the canonical unit: ``canonical = value * factor + offset``. Multiplicative
#: families come from the HA-discovery codec's table (one table of units in the gateway); temperatures need an
#: offset, so they are spelled out here.
_FAMILY_OF_CANONICAL = {
    "%": "percent",
    "lx": "illuminance",
    "hPa": "pressure",
    "W": "power",
    "kWh": "energy",
    "V": "voltage",
    "A": "current",
    "Hz": "frequency",
    "ppm": "ppm",
    "ppb": "ppb",
    "µg/m³": "ugm3",
    "dBm": "dbm",
}
_AFFINE: dict[str | None, dict[str, tuple[float, float]]] = {
    "°C": {
        "°C": (1.0, 0.0),
        "C": (1.0, 0.0),
        "℃": (1.0, 0.0),
        "°F": (5 / 9, -32 * 5 / 9),
        "F": (5 / 9, -32 * 5 / 9),
        "℉": (5 / 9, -32 * 5 / 9),
        "K": (1.0, -273.15),
    },
    # Durations (an appliance's remaining time): minutes and hours are what vendors publish.
    "s": {"s": (1.0, 0.0), "ms": (0.001, 0.0), "min": (60.0, 0.0), "h": (3600.0, 0.0), "d": (86400.0, 0.0)},
    "m": {"m": (1.0, 0.0), "cm": (0.01, 0.0), "mm": (0.001, 0.0), "km": (1000.0, 0.0)},
    "K": {"K": (1.0, 0.0)},
    "°": {"°": (1.0, 0.0), "deg": (1.0, 0.0)},
}
for _canonical, _family in _FAMILY_OF_CANONICAL.items():
    _AFFINE[_canonical] = {
        unit: (float(factor), 0.0) for unit, factor in UNIT_FACTORS[_family].items() if not callable(factor)
    }
# A power factor has no unit; some meters publish it in percent.
_UNITLESS_BY_ATTRIBUTE = {("power_meter", "power_factor"): {"%": (0.01, 0.0)}}


def canonical_converter(
    capability_name: str, attribute: str, spec: AttributeSpec | ArgSpec, unit: str
) -> tuple[float, float] | None:
    """``(factor, offset)`` taking ``unit`` to the attribute's canonical unit, or None when it does not fit."""
    if spec.unit is None:
        table = _UNITLESS_BY_ATTRIBUTE.get((capability_name, attribute), {})
    else:
        table = _AFFINE.get(spec.unit, {spec.unit: (1.0, 0.0)})
    return table.get(unit.strip())


def units_for(capability_name: str, attribute: str, spec: AttributeSpec | ArgSpec) -> list[str]:
    if spec.unit is None:
        return sorted(_UNITLESS_BY_ATTRIBUTE.get((capability_name, attribute), {}))
    return sorted(_AFFINE.get(spec.unit, {spec.unit: (1.0, 0.0)}))


# ---------------------------------------------------------------------------------------------- templates


@dataclass(frozen=True, slots=True)
class Template:
    """A topic or payload with ``{name}`` placeholders, compiled once. ``parts`` alternate literal text and
    ``(name, inside_json_string)``."""

    source: str
    parts: tuple[str | tuple[str, bool], ...]
    json: bool

    @property
    def names(self) -> frozenset[str]:
        return frozenset(p[0] for p in self.parts if isinstance(p, tuple))

    def render(self, values: Mapping[str, Any]) -> str:
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            name, in_string = part
            value = values[name]
            if not self.json:
                out.append(format_number(value) if _is_number(value) else text_of(value))
            elif in_string:
                text = format_number(value) if _is_number(value) else text_of(value)
                out.append(orjson.dumps(text).decode()[1:-1])
            elif _is_number(value):
                if not math.isfinite(value):
                    raise ValueError(f"{name}: {value} has no JSON form")
                out.append(format_number(value))
            else:
                out.append(orjson.dumps(value).decode())
        return "".join(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compile_template(source: str, *, json: bool) -> Template:
    """Split ``source`` at its placeholders; in JSON mode, note which ones sit inside a JSON string."""
    if len(source) > MAX_TEMPLATE_CHARS:
        raise ValueError(f"a template of {len(source)} characters is too long (at most {MAX_TEMPLATE_CHARS})")
    parts: list[str | tuple[str, bool]] = []
    in_string = False
    escaped = False
    pos = 0
    for match in _PLACEHOLDER.finditer(source):
        literal = source[pos : match.start()]
        if json:
            for char in literal:
                if escaped:
                    escaped = False
                elif char == "\\" and in_string:
                    escaped = True
                elif char == '"':
                    in_string = not in_string
        if literal:
            parts.append(literal)
        parts.append((match.group(1), in_string))
        pos = match.end()
    if pos < len(source):
        parts.append(source[pos:])
    return Template(source, tuple(parts), json)


# ---------------------------------------------------------------------------------------------- compiled form


@dataclass(frozen=True, slots=True)
class StateRule:
    """One reported value: where it is (topic, path) and how it becomes a canonical attribute value."""

    topic: str  # relative to the base topic ("" = the base topic)
    path: JsonPath
    component: str
    capability: str
    attribute: str
    spec: AttributeSpec
    values: Mapping[str, Any] | None
    default: Any  # _MISSING when not given
    unknown: frozenset[str]
    factor: float
    offset: float
    digits: int | None
    converts: bool  # anything but the identity: round the result
    key: str  # "state.3", for messages


@dataclass(frozen=True, slots=True)
class InfoRule:
    topic: str
    path: JsonPath
    field: str


@dataclass(frozen=True, slots=True)
class ArgRule:
    """How one canonical argument becomes what the device expects."""

    name: str
    spec: ArgSpec
    values: Mapping[str, Any] | None
    factor: float  # device value = (canonical - unit_offset) / unit_factor * scale + offset
    unit_offset: float
    scale: float
    offset: float
    digits: int | None
    default: Any  # _MISSING when not given
    minimum: float | None = None  # this device's range (narrows the model's)
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class CommandRule:
    component: str
    capability: str
    command: str
    topic: Template
    payload: Template
    args: Mapping[str, ArgRule]
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class AvailabilityRule:
    topic: str
    path: JsonPath
    values: Mapping[str, bool]


@dataclass(frozen=True, slots=True)
class Definition:
    """A loaded, checked definition: everything the codec needs, nothing to interpret at run time."""

    name: str
    version: str
    manufacturer: str
    model: str
    description: str
    source_url: str
    file: str
    base_topic: str  # with "{device}" as one level
    device_level: int  # index of the {device} level in a full topic
    discover: bool | str  # True: any topic; a relative topic; False: configured devices only
    name_template: Template
    availability: AvailabilityRule | None
    info: tuple[InfoRule, ...]
    state: tuple[StateRule, ...]
    commands: Mapping[tuple[str, str, str], CommandRule]  # (component, capability, command)
    support: Mapping[str, Mapping[str, tuple[frozenset[str], frozenset[str], Mapping[str, tuple[Any, Any]]]]] = field(
        default_factory=dict
    )

    def full_topic(self, relative: str, native: str) -> str:
        base = self.base_topic.replace("{device}", native)
        return f"{base}/{relative}" if relative else base

    def topics(self) -> set[str]:
        """Every relative topic the definition reads."""
        out = {rule.topic for rule in self.state} | {rule.topic for rule in self.info}
        if self.availability is not None:
            out.add(self.availability.topic)
        if isinstance(self.discover, str):
            out.add(self.discover)
        return out


# ---------------------------------------------------------------------------------------------- the TOML shape


def _scalar(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("a finite number, a string or a boolean")
    if not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"a string, number or boolean (got {type(value).__name__})")
    return value


Scalar = Annotated[Any, BeforeValidator(_scalar)]


def _version(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and not value.strip()):
        raise ValueError(f'a version number such as 3 or a string such as "1.2" (got {value!r})')
    return str(value)


Version = Annotated[str, BeforeValidator(_version)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class _Match(_Strict):
    topic: str
    discover: bool | str = True
    name: str | None = None


class _Availability(_Strict):
    topic: str
    path: str = ""
    values: dict[str, bool] = Field(default_factory=lambda: {"true": True, "false": False})


class _Info(_Strict):
    topic: str
    path: str = ""
    field: Literal["name", "sw_version", "hw_version", "serial", "model", "mac"]


class _State(_Strict):
    topic: str
    path: str = ""
    component: str = "main"
    attribute: str
    values: dict[str, Scalar] | None = None
    default: Scalar | None = None
    unknown: list[str] = Field(default_factory=list)
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    digits: int | None = Field(None, ge=0, le=10)


class _Arg(_Strict):
    map: dict[str, Scalar] | None = None
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    digits: int | None = Field(None, ge=0, le=10)
    min: float | None = None
    max: float | None = None
    default: Scalar | None = None


class _Command(_Strict):
    command: str
    component: str = "main"
    topic: str
    payload: str = ""
    format: Literal["auto", "json", "text"] = "auto"
    args: dict[str, _Arg] = Field(default_factory=dict)
    qos: Literal[0, 1, 2] = 0
    retain: bool = False


class _File(_Strict):
    format: Literal[1] = 1
    name: str
    version: Version
    manufacturer: str
    model: str
    description: str = ""
    source: str = ""
    match: _Match
    availability: _Availability | None = None
    info: list[_Info] = Field(default_factory=list)
    state: list[_State] = Field(default_factory=list)
    command: list[_Command] = Field(default_factory=list)


_TYPE_TAG = re.compile(
    r"^(bool|int|float|str|none|function-[a-z-]+|literal\[.*\]|list\[.*\]|dict\[.*\]|"
    r"union\[.*\]|json-or-python\[.*\]|[a-z]+-union\[.*\]|_[A-Z][A-Za-z]*)$"
)


def _clean_loc(loc: Iterable[Any]) -> tuple[str | int, ...]:
    out = list(loc)
    # pydantic names union branches and validators in the location; the file has no such keys.
    return tuple(p for i, p in enumerate(out) if not (isinstance(p, str) and i > 0 and _TYPE_TAG.match(p)))


def _describe(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown key (see docs/device-definitions.md for the keys a definition may have)"
    if kind == "missing":
        return "required key is missing"
    if message.startswith("Value error, "):
        message = "expected " + message[len("Value error, ") :]
    if "input" in error and kind != "missing" and not isinstance(error["input"], (dict, list)):
        message += f" (got {error['input']!r})"
    return message


# ---------------------------------------------------------------------------------------------- checking

Problem = Callable[[tuple[str | int, ...], str], None]


def _check_topic(value: str, loc: tuple[str | int, ...], problem: Problem, *, relative: bool) -> bool:
    if "\x00" in value:
        problem(loc, "a topic must not contain NUL")
        return False
    if "+" in value or "#" in value:
        problem(loc, "a topic must not contain MQTT wildcards ('+', '#'): write the device's level as {device}")
        return False
    if relative and value and (value.startswith("/") or value.endswith("/")):
        problem(loc, f"a topic relative to [match] topic must not start or end with '/' (got {value!r})")
        return False
    if relative and "//" in value:
        problem(loc, f"empty topic level in {value!r}")
        return False
    return True


def _check_relative(value: str, loc: tuple[str | int, ...], problem: Problem) -> bool:
    if not _check_topic(value, loc, problem, relative=True):
        return False
    found = _PLACEHOLDER.search(value)
    if found:
        problem(
            loc,
            f"state, info and availability topics are relative to [match] topic and take no "
            f"placeholders (got {{{found.group(1)}}})",
        )
        return False
    return True


def _path(value: str, loc: tuple[str | int, ...], problem: Problem) -> JsonPath | None:
    try:
        return compile_path(value)
    except PathError as err:
        problem(loc, f"bad JSON path {value!r}: {err}")
        return None


def loc_text(loc: tuple[str | int, ...]) -> str:
    """A key's place as the messages write it everywhere: ``state[2].attribute`` (entries counted from 0,
    as in the codec's own messages)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _attribute_ref(value: str, loc: tuple[str | int, ...], problem: Problem, what: str) -> tuple[str, str, Any] | None:
    # The member is after the LAST dot: a plugin capability's name is dotted itself (acme.filter.life_percent).
    cap_name, dot, member = value.rpartition(".")

    spec = capability(cap_name) if dot else None
    if not dot or not member or not cap_name:
        problem(
            loc,
            f"write it as 'capability.{what}', e.g. "
            f"{'on_off.on' if what == 'command' else 'temperature.celsius'} (got {value!r})",
        )
        return None
    if spec is None:
        from gateway.sdk import did_you_mean

        hint = did_you_mean(cap_name, list(capabilities()))
        plugin = " (a plugin's capability needs its plugin installed)" if "." in cap_name else ""
        known = "" if hint else f" (known: {', '.join(sorted(capabilities()))})"
        problem(loc, f"unknown capability {cap_name!r}{hint}{plugin}{known}")
        return None
    table = spec.attributes if what == "attribute" else spec.commands
    if member not in table:
        problem(loc, f"{cap_name} has no {what} {member!r} ({what}s: {', '.join(table) or 'none'})")
        return None
    return cap_name, member, table[member]


def _fits(spec: AttributeSpec | ArgSpec, value: Any) -> str | None:
    attr = spec if isinstance(spec, AttributeSpec) else spec.as_attribute()
    if attr.type in ("number", "integer") and isinstance(value, bool):
        return f"expected a {attr.type}, got a boolean"
    if attr.type == "number" and isinstance(value, int):
        value = float(value)
    if attr.type == "integer" and isinstance(value, float) and value.is_integer():
        value = int(value)
    return attr.check(value)


def _check_state(index: int, entry: _State, problem: Problem) -> StateRule | None:
    loc = ("state", index)
    ok = _check_relative(entry.topic, (*loc, "topic"), problem)
    path = _path(entry.path, (*loc, "path"), problem)
    if not _COMPONENT.match(entry.component):
        problem((*loc, "component"), f"a component is a lowercase name such as main, l1, dhw (got {entry.component!r})")
        ok = False
    ref = _attribute_ref(entry.attribute, (*loc, "attribute"), problem, "attribute")
    if ref is None or path is None or not ok:
        return None
    cap_name, attr, spec = ref
    numeric = spec.type in ("number", "integer")
    factor, offset = 1.0, 0.0
    if entry.unit is not None:
        converter = canonical_converter(cap_name, attr, spec, entry.unit)
        if converter is None:
            known = ", ".join(units_for(cap_name, attr, spec)) or "none (it has no unit)"
            problem(
                (*loc, "unit"),
                f"{entry.attribute} is in {spec.unit or 'no unit'}; a payload unit "
                f"{entry.unit!r} cannot be converted to it (units: {known})",
            )
            return None
        factor, offset = converter
    if not numeric:
        for key in ("scale", "offset", "unit", "digits"):
            if key in entry.model_fields_set:
                problem((*loc, key), f"{entry.attribute} is a {spec.type}: {key} is only for numbers")
                return None
    good = True
    for raw, value in (entry.values or {}).items():
        why = _fits(spec, value)
        if why:
            problem((*loc, "values", raw), f"{entry.attribute}: {why}")
            good = False
    if entry.default is not None:
        why = _fits(spec, entry.default)
        if why:
            problem((*loc, "default"), f"{entry.attribute}: {why}")
            good = False
        if entry.values is None:
            problem((*loc, "default"), "a default is for payload values missing from `values`; add `values`")
            good = False
    if not good:
        return None
    return StateRule(
        topic=entry.topic,
        path=path,
        component=entry.component,
        capability=cap_name,
        attribute=attr,
        spec=spec,
        values=dict(entry.values) if entry.values is not None else None,
        default=entry.default if entry.default is not None else _MISSING,
        unknown=frozenset(entry.unknown),
        factor=entry.scale * factor,
        offset=entry.offset * factor + offset,
        digits=entry.digits,
        converts=(entry.scale, entry.offset, factor, offset) != (1.0, 0.0, 1.0, 0.0),
        key=f"state[{index}]",
    )


def _payload_is_json(source: str, declared: str) -> bool:
    if declared != "auto":
        return declared == "json"
    stripped = source.lstrip()
    # A JSON payload starts with a literal brace or bracket; "{celsius}" alone is a placeholder, not JSON.
    return bool(stripped) and stripped[0] in "{[" and not _PLACEHOLDER.match(stripped)


_SAMPLE = {"bool": True, "number": 21.5, "integer": 3, "string": "x", "enum": "x", "timestamp": "2024-01-01T00:00:00Z"}


def _check_command(index: int, entry: _Command, problem: Problem) -> CommandRule | None:
    loc = ("command", index)
    ref = _attribute_ref(entry.command, (*loc, "command"), problem, "command")
    ok = _check_topic(entry.topic, (*loc, "topic"), problem, relative=True)
    if not _COMPONENT.match(entry.component):
        problem((*loc, "component"), f"a component is a lowercase name such as main, l1, dhw (got {entry.component!r})")
        ok = False
    if ref is None or not ok:
        return None
    cap_name, cmd_name, cmd_spec = ref
    args: dict[str, ArgRule] = {}
    for name, options in entry.args.items():
        arg_loc = (*loc, "args", name)
        spec = cmd_spec.args.get(name)
        if spec is None:
            problem(
                arg_loc, f"{entry.command} takes no argument {name!r} (arguments: {', '.join(cmd_spec.args) or 'none'})"
            )
            ok = False
            continue
        numeric = spec.type in ("number", "integer")
        unit_factor, unit_offset = 1.0, 0.0
        if options.unit is not None:
            converter = canonical_converter(cap_name, name, spec, options.unit) if numeric else None
            if converter is None:
                problem(
                    (*arg_loc, "unit"),
                    f"{name} is in {spec.unit or 'no unit'}: the device unit "
                    f"{options.unit!r} cannot be converted from it "
                    f"(units: {', '.join(units_for(cap_name, name, spec)) or 'none'})",
                )
                ok = False
                continue
            unit_factor, unit_offset = converter
        if not numeric:
            for key in ("scale", "offset", "unit", "digits", "min", "max"):
                if key in options.model_fields_set:
                    problem((*arg_loc, key), f"{name} is a {spec.type}: {key} is only for numbers")
                    ok = False
        for key in options.map or {}:
            if spec.type == "enum" and key not in spec.values:
                problem((*arg_loc, "map", key), f"{name} is one of {', '.join(spec.values)}: {key!r} never comes")
                ok = False
            elif spec.type == "bool" and key not in ("true", "false"):
                problem((*arg_loc, "map", key), f"{name} is a boolean: map keys are 'true' and 'false'")
                ok = False
        if options.default is not None:
            why = _fits(spec, options.default)
            if why:
                problem((*arg_loc, "default"), f"{name}: {why}")
                ok = False
        for key in ("min", "max"):
            bound = getattr(options, key)
            why = _fits(spec, bound) if bound is not None else None
            if why:
                problem((*arg_loc, key), f"{name}: {why}")
                ok = False
        if options.min is not None and options.max is not None and options.min > options.max:
            problem((*arg_loc, "min"), f"min {options.min:g} is above max {options.max:g}")
            ok = False
        args[name] = ArgRule(
            name,
            spec,
            dict(options.map) if options.map is not None else None,
            unit_factor,
            unit_offset,
            options.scale,
            options.offset,
            options.digits,
            options.default if options.default is not None else _MISSING,
            options.min,
            options.max,
        )
    for name, spec in cmd_spec.args.items():
        if name not in args:
            args[name] = ArgRule(name, spec, None, 1.0, 0.0, 1.0, 0.0, None, _MISSING)
    if not ok:
        return None
    is_json = _payload_is_json(entry.payload, entry.format)
    try:
        topic = compile_template(entry.topic, json=False)
        payload = compile_template(entry.payload, json=is_json)
    except ValueError as err:
        problem((*loc, "payload"), str(err))
        return None
    available = {DEVICE, *(n for n, a in args.items() if a.spec.required or a.default is not _MISSING)}
    for key, template in (("topic", topic), ("payload", payload)):
        for name in sorted(template.names - available):
            if name in cmd_spec.args:
                problem(
                    (*loc, key),
                    f"{{{name}}}: {name} is optional in {entry.command}; give it a default "
                    f"(args.{name}.default) to use it here",
                )
            else:
                usable = ", ".join("{" + n + "}" for n in sorted(available))
                problem((*loc, key), f"{{{name}}} is not available to {entry.command} (placeholders: {usable})")
            ok = False
    if not ok:
        return None
    if is_json:
        sample = {DEVICE: "dev-1"}
        for name, rule in args.items():
            if rule.values:
                sample[name] = next(iter(rule.values.values()))
            else:
                sample[name] = _SAMPLE[rule.spec.type]
        try:
            orjson.loads(payload.render(sample))
        except (orjson.JSONDecodeError, ValueError) as err:
            hint = "" if entry.format == "json" else '; set format = "text" if it is not meant to be JSON'
            problem((*loc, "payload"), f"not valid JSON once filled in ({err}){hint}")
            return None
    return CommandRule(entry.component, cap_name, cmd_name, topic, payload, args, entry.qos, entry.retain)


def load_definition_text(text: str, source: str) -> Definition:
    """Parse and check one definition. Raises :class:`ConfigError` listing every problem found."""
    if len(text.encode("utf-8", "replace")) > MAX_DEFINITION_BYTES:
        raise ConfigError(
            [
                ConfigProblem(
                    source, None, "", f"larger than {MAX_DEFINITION_BYTES // 1024} KiB: not a device definition"
                )
            ]
        )
    try:
        raw = loads_toml(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"line (\d+)", str(err))
        raise ConfigError(
            [ConfigProblem(source, int(match.group(1)) if match else None, "", f"not valid TOML: {err}")]
        ) from err
    locator = TomlLocator(text)
    problems: list[ConfigProblem] = []

    def problem(loc: tuple[str | int, ...], message: str) -> None:
        problems.append(ConfigProblem(source, locator.line_of(loc), loc_text(loc), message))

    try:
        parsed = _File.model_validate(raw)
    except ValidationError as err:
        seen: set[tuple[str | int, ...]] = set()
        for error in err.errors():
            loc = _clean_loc(error["loc"])
            if loc not in seen:  # one problem per key (a union reports once per branch)
                seen.add(loc)
                problem(loc, _describe(error))
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0)) from err

    if not _SLUG.match(parsed.name):
        problem(("name",), f"a definition name is a lowercase slug such as 'opendtu' (got {parsed.name!r})")
    for key in ("manufacturer", "model"):
        if not getattr(parsed, key).strip():
            problem((key,), "must not be empty")
    base = parsed.match.topic
    device_level = -1
    if _check_topic(base, ("match", "topic"), problem, relative=False):
        levels = base.split("/")
        marked = [i for i, level in enumerate(levels) if "{device}" in level]
        stray = [m.group(1) for m in _PLACEHOLDER.finditer(base) if m.group(1) != DEVICE]
        if stray:
            problem(("match", "topic"), f"the base topic takes only the {{device}} placeholder (got {{{stray[0]}}})")
        elif len(marked) != 1 or levels[marked[0]] != "{device}":
            problem(
                ("match", "topic"),
                "the base topic needs {device} exactly once, as a whole level "
                f"(e.g. 'washer/{{device}}'), got {base!r}",
            )
        elif any(not level for level in levels):
            problem(("match", "topic"), f"empty topic level in {base!r}")
        else:
            device_level = marked[0]
    discover = parsed.match.discover
    if isinstance(discover, str) and _check_relative(discover, ("match", "discover"), problem) and not discover:
        discover = True  # "" is the base topic itself
    name_source = parsed.match.name if parsed.match.name is not None else f"{parsed.model} {{device}}"
    name_template = compile_template(name_source, json=False)
    for name in sorted(name_template.names - {DEVICE}):
        problem(("match", "name"), f"{{{name}}}: a device name takes only the {{device}} placeholder")

    availability = None
    if parsed.availability is not None:
        path = _path(parsed.availability.path, ("availability", "path"), problem)
        if _check_relative(parsed.availability.topic, ("availability", "topic"), problem) and path is not None:
            availability = AvailabilityRule(parsed.availability.topic, path, dict(parsed.availability.values))
    info = []
    for index, entry in enumerate(parsed.info):
        path = _path(entry.path, ("info", index, "path"), problem)
        if _check_relative(entry.topic, ("info", index, "topic"), problem) and path is not None:
            info.append(InfoRule(entry.topic, path, entry.field))
    state = [rule for i, e in enumerate(parsed.state) if (rule := _check_state(i, e, problem)) is not None]
    commands: dict[tuple[str, str, str], CommandRule] = {}
    for index, entry in enumerate(parsed.command):
        rule = _check_command(index, entry, problem)
        if rule is None:
            continue
        key = (rule.component, rule.capability, rule.command)
        if key in commands:
            problem(("command", index, "command"), f"{entry.command} of component {rule.component!r} is defined twice")
            continue
        commands[key] = rule
    seen_targets: dict[tuple[str, str, str, str, tuple[Any, ...]], int] = {}
    for index, rule in enumerate(state):
        target = (rule.topic, rule.component, rule.capability, rule.attribute, rule.path)
        if target in seen_targets:
            problem(
                ("state", index, "attribute"),
                f"the same topic and path already set {rule.attribute} of "
                f"{rule.component!r} (state[{seen_targets[target]}])",
            )
        seen_targets[target] = index
    if not parsed.state and not parsed.command:
        problem(("state",), "a definition needs at least one [[state]] or [[command]] entry")
    if problems:
        raise ConfigError(sorted(problems, key=lambda p: p.line or 0))

    support: dict[str, dict[str, tuple[set[str], set[str], dict[str, tuple[Any, Any]]]]] = {}
    for rule in state:
        attrs, _, _ = support.setdefault(rule.component, {}).setdefault(rule.capability, (set(), set(), {}))
        attrs.add(rule.attribute)
    for (component, cap_name, cmd_name), command_rule in commands.items():
        _, cmds, limits = support.setdefault(component, {}).setdefault(cap_name, (set(), set(), {}))
        cmds.add(cmd_name)
        # The device's own argument ranges narrow the model's; the hub checks commands against them.
        for arg in command_rule.args.values():
            if arg.minimum is not None or arg.maximum is not None:
                limits[arg.name] = (arg.minimum, arg.maximum)
    frozen = {
        comp: {cap: (frozenset(a), frozenset(c), dict(lim)) for cap, (a, c, lim) in caps.items()}
        for comp, caps in support.items()
    }
    return Definition(
        name=parsed.name,
        version=parsed.version,
        manufacturer=parsed.manufacturer.strip(),
        model=parsed.model.strip(),
        description=parsed.description,
        source_url=parsed.source,
        file=source,
        base_topic=base,
        device_level=device_level,
        discover=discover,
        name_template=name_template,
        availability=availability,
        info=tuple(info),
        state=tuple(state),
        commands=commands,
        support=frozen,
    )


def load_definition(path: Path) -> Definition:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {err.strerror}")]) from err
    if len(data) > MAX_DEFINITION_BYTES:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path), None, "", f"larger than {MAX_DEFINITION_BYTES // 1024} KiB: not a device definition"
                )
            ]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError([ConfigProblem(str(path), None, "", "not UTF-8 text")]) from err
    return load_definition_text(text, str(path))


def shipped_definitions_dir() -> Path:
    """``adapters/definitions/definitions/``: data beside this module, installed as package data."""
    return Path(__file__).resolve().parent / "definitions"


def load_definitions(folders: Iterable[Path], *, shipped: bool = True) -> list[Definition]:
    """Every ``*.toml`` of the shipped folder and of ``folders``, in that order. A user definition with the
    name of a shipped one replaces it (that is how a user fixes or extends a shipped definition); two user
    definitions with one name are an error. Raises :class:`ConfigError` with every problem of every file."""
    problems: list[ConfigProblem] = []
    by_name: dict[str, Definition] = {}
    shipped_names: set[str] = set()
    roots = [(shipped_definitions_dir(), True)] if shipped else []
    roots += [(Path(folder).expanduser(), False) for folder in folders]
    for root, is_shipped in roots:
        if not root.is_dir():
            problems.append(ConfigProblem(str(root), None, "", "no such folder of device definitions"))
            continue
        for path in sorted(root.glob("*.toml")):
            try:
                definition = load_definition(path)
            except ConfigError as err:
                problems.extend(err.problems)
                continue
            previous = by_name.get(definition.name)
            if previous is not None and not (definition.name in shipped_names and not is_shipped):
                problems.append(
                    ConfigProblem(
                        str(path), None, "name", f"definition {definition.name!r} is already defined in {previous.file}"
                    )
                )
                continue
            by_name[definition.name] = definition
            if is_shipped:
                shipped_names.add(definition.name)
            else:
                shipped_names.discard(definition.name)  # overridden once; a second user copy is a clash
    if problems:
        raise ConfigError(problems)
    return list(by_name.values())
