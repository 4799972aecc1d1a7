"""The profile language's reference and JSON Schema, generated from the models so they cannot drift.

``python -m gateway.scenes.reference`` writes ``docs/profile-language.md`` (every trigger, condition,
action and selector field: type, default, description, example), ``docs/profile.schema.json`` (what
``hearth schema profile`` prints, for editors) and ``docs/capabilities.md`` (the capability model).
``--check`` says whether the committed files are current instead of writing them.

The kinds are the members of the ``Trigger``, ``Condition`` and ``Action`` unions of
:mod:`gateway.scenes.profile`: a class added to a union is in the reference the next time it is
generated. Descriptions are the models' docstrings (a class's, and the string under each field);
examples are the models' ``_example(...)``.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gateway.model import capabilities
from gateway.scenes import profile as language

__all__ = [
    "SECTIONS",
    "kinds",
    "main",
    "profile_json_schema",
    "render_capabilities",
    "render_profile_reference",
]

REGENERATE = "python -m gateway.scenes.reference"
NONE = "\u2013"  # an en dash: "no default", "no unit"
SCHEMA_ID = f"https://hearth.invalid/schema/profile/v{language.PROFILE_SCHEMA_VERSION}.json"


class ProfileFile(language._ProfileHeader):
    """A Hearth scene profile (TOML): a name, a version, typed parameters and scenes."""

    scenes: list[language.Scene] = Field(min_length=1)  # type: ignore[assignment]
    """The scenes ([[scenes]]): triggers, conditions and actions."""


def _members(union: Any) -> list[type[BaseModel]]:
    """The model classes of a discriminated union such as ``Trigger`` (``Annotated[A | B, Field(...)]``)."""
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    return [m for m in typing.get_args(union) if isinstance(m, type) and issubclass(m, BaseModel)]


# (heading, anchor prefix, the union): the lists of kinds, in the order of the reference.
SECTIONS: tuple[tuple[str, str, Any], ...] = (
    ("Triggers", "trigger", language.Trigger),
    ("Conditions", "condition", language.Condition),
    ("Actions", "action", language.Action),
)


def kind_of(model: type[BaseModel]) -> str:
    annotation = model.model_fields["kind"].annotation
    return str(typing.get_args(annotation)[0])


def kinds() -> Iterator[tuple[str, str, type[BaseModel]]]:
    """Every (section, kind, model) of the language."""
    for heading, _, union in SECTIONS:
        for model in _members(union):
            yield heading, kind_of(model), model


def examples(model: type[BaseModel]) -> list[Any]:
    extra = model.model_config.get("json_schema_extra")
    return list(extra.get("examples", [])) if isinstance(extra, dict) else []


# ------------------------------------------------------------------ TOML and type words


def toml_value(value: Any) -> str:
    """A value as an inline TOML value (``{ kind = "state", to = true }``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {value!r}")


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


_ALIASES: tuple[tuple[Any, str], ...] = (
    (language.Duration, "duration"),
    (language.SignedDuration, "duration, may be negative"),
    (language.TimeOfDay, "time of day"),
    (language.StrList, "string or list of strings"),
    (language.AttributeRef, "attribute"),
)
_MODEL_LINKS: dict[str, str] = {
    "Selector": "[selector](#selector)",
    "StateTest": "[state test](#state-test)",
    "TimeWindow": "[time window](#time-window)",
    "Parameter": "[parameter](#parameter)",
    "Scene": "[scene](#scene)",
}


def _alias_name(tp: Any, metadata: list[Any]) -> str | None:
    for alias, name in _ALIASES:
        if tp == alias:
            return name
        base, *meta = typing.get_args(alias)
        if metadata and tp == base and all(m in metadata for m in meta):
            return name
    return None


def type_words(tp: Any, metadata: list[Any] | None = None) -> str:
    """A field's type in words, for the reference: ``duration``, ``one of "any", "all"``, ``[selector](#selector)``."""
    named = _alias_name(tp, metadata or [])
    if named:
        return named
    if typing.get_origin(tp) is typing.Annotated:
        return type_words(typing.get_args(tp)[0], list(typing.get_args(tp)[1:]))
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        for heading, _, union in SECTIONS:
            if set(members) == set(_members(union)):
                return f"[{heading.lower()[:-1]}](#{heading.lower()})"
        words = [type_words(m) for m in members]
        return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    if typing.get_origin(tp) is Literal:
        values = typing.get_args(tp)
        return toml_value(values[0]) if len(values) == 1 else "one of " + ", ".join(toml_value(v) for v in values)
    if typing.get_origin(tp) is list:
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        return f"list of {type_words(inner)}"
    if typing.get_origin(tp) is dict:
        args = typing.get_args(tp)
        return f"table of {type_words(args[1])}" if len(args) == 2 and args[1] is not Any else "table"
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _MODEL_LINKS.get(tp.__name__, tp.__name__)
    return {bool: "true or false", float: "number", int: "integer", str: "string"}.get(tp, "any")


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    value = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined:
        return NONE
    return f"`{toml_value(value)}`"


# Fields whose type says less than what they take (the config holds raw tables, checked by the loader).
_TYPE_WORDS = {("SceneSettings", "conditions"): "list of [condition](#conditions)"}


def _field_rows(model: type[BaseModel], skip: tuple[str, ...] = ("kind",)) -> list[str]:
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        key = info.alias or name
        description = (info.description or "").replace("\n", " ").replace("|", "\\|")
        words = _TYPE_WORDS.get((model.__name__, name)) or type_words(info.annotation, list(info.metadata))
        rows.append(f"| `{key}` | {words} | {_default(info)} | {description} |")
    return rows


def _doc(model: type[BaseModel]) -> str:
    import inspect

    return inspect.cleandoc(model.__doc__ or "")


# ------------------------------------------------------------------ the reference

EXAMPLE_PROFILE_NAME = "hall-light"
EXAMPLE_PROFILE = '''\
name = "hall-light"
version = 1
description = "The hall light comes on, dimmed, when the entrance door opens after dark."

[parameters.level]
type = "number"
default = 30
minimum = 1
maximum = 100
unit = "%"
description = "How bright"

[[scenes]]
id = "door-light"
name = "Hall light when the door opens"
cooldown = "5m"
triggers = [
  { kind = "state", selector = { tag = "entrance", capability = "contact" }, attribute = "contact.open", to = true },
]
conditions = [
  { kind = "time", after = "18:00", before = "07:00" },
  { kind = "state", selector = { area = "hall", capability = "on_off" }, attribute = "on_off.on", equals = false },
]

[[scenes.actions]]
kind = "command"
target = { area = "hall", capability = "level" }
capability = "level"
command = "set"
args = { percent = "${level}" }

[[scenes.actions]]
kind = "delay"
for = "10m"

[[scenes.actions]]
kind = "command"
target = { area = "hall", capability = "on_off" }
capability = "on_off"
command = "off"
'''

EXAMPLE_CONFIG = '''\
# A flat with elderly monitoring: three of the shipped profile's scenes changed for this house,
# without copying the profile. `hearth profile show elderly-monitoring --config THIS_FILE` shows them.
[notify.daughter]
kind = "webhook"
url = "https://ntfy.example.org/grandma"

[notify.neighbour]
kind = "mqtt"
topic = "notify/neighbour"

[[profiles]]
use = "elderly-monitoring"
[profiles.params]
contacts = ["daughter", "neighbour"]

# She naps after lunch: a longer quiet time before the inactivity alert.
[profiles.scenes.inactivity]
params = { inactivity = "4h" }

# A brighter hall light at night, and no night-door alert while a house-sitter is there (mode vacation).
[profiles.scenes.night-door]
params = { hallway_level = 50 }
conditions = [{ kind = "not", condition = { kind = "mode", is = ["vacation"] } }]

# The flat has air conditioning: no "too hot" alerts.
[profiles.scenes.too-hot]
enabled = false
'''


def render_profile_reference() -> str:
    from gateway.config import SceneSettings

    out: list[str] = [
        "# The profile language",
        "",
        f"<!-- Generated from the models in gateway/scenes/profile.py by `{REGENERATE}`: do not edit. -->",
        "",
        "A **profile** is a TOML file, pure data: typed **parameters** and **scenes**. A scene runs its",
        "**actions** in order when any of its **triggers** fires and all of its **conditions** hold. Devices",
        "are chosen by **selectors** (area, capability, tag, device id), so one profile fits many houses.",
        "`hearth profile check NAME|FILE` checks a profile (file, line and key for every problem);",
        "`hearth profile show NAME` lists its parameters and scenes.",
        "",
        f"```toml\n# docs/examples/{EXAMPLE_PROFILE_NAME}.toml",
        EXAMPLE_PROFILE.rstrip(),
        "```",
        "",
        "## Values",
        "",
        "- **duration**: `\"90s\"`, `\"10m\"`, `\"1h30m\"`, `\"2d\"` or a number of seconds.",
        "- **time of day**: `\"HH:MM\"`, local time (`[location] timezone` in the config).",
        "- **attribute**: `\"capability.attribute\"` of the capability model ([capabilities.md](capabilities.md)),",
        "  e.g. `\"occupancy.occupied\"`. A comparison must fit the attribute's type: `to = true` on a",
        "  true/false attribute, a number within its range for a number, one of its words for a word.",
        "- **string or list of strings**: `\"hall\"` is the same as `[\"hall\"]`.",
        "- **`${name}`**: a parameter. A value that is exactly `\"${name}\"` takes the parameter's typed value",
        "  (a number, a list, a selector table); inside a longer string it is replaced by its text.",
        "",
        "An editor can check a profile as it is typed: `hearth schema profile > profile.schema.json`, then",
        "`#:schema ./profile.schema.json` on the first line of the profile (Taplo, *Even Better TOML* in VS Code),",
        "or [`profile.schema.json`](profile.schema.json) beside this page.",
        "",
        "## Profile file",
        "",
        _doc(ProfileFile),
        "",
        *_field_rows(ProfileFile, skip=()),
        "",
        "### Parameter",
        "",
        _doc(language.Parameter),
        "",
        *_field_rows(language.Parameter, skip=()),
        "",
        "Parameter types: " + ", ".join(f"`{t}`" for t in typing.get_args(language.ParamType)) + ".",
        "",
        *_example_block(language.Parameter, "[parameters.wait]"),
        "## Scene",
        "",
        _doc(language.Scene),
        "",
        *_field_rows(language.Scene, skip=()),
        "",
    ]
    for heading, prefix, union in SECTIONS:
        out += [f"## {heading}", ""]
        members = _members(union)
        out += ["Kinds: " + ", ".join(f"[`{kind_of(m)}`](#{prefix}-{kind_of(m).replace('_', '-')})"
                                      for m in members) + ".", ""]
        for model in members:
            kind = kind_of(model)
            out += [f'<a id="{prefix}-{kind.replace("_", "-")}"></a>', "",
                    f"### {prefix} `{kind}`", "", _doc(model) or "(not described yet)", ""]
            if len(model.model_fields) > 1:
                out += [*_field_rows(model), ""]
            key = {"trigger": "triggers", "condition": "conditions", "action": "actions"}[prefix]
            out += _example_block(model, f"{key} = [")
    for model, title in ((language.Selector, "Selector"), (language.StateTest, "State test"),
                         (language.TimeWindow, "Time window")):
        out += [f"## {title}", "", _doc(model), "", *_field_rows(model, skip=()), ""]
        out += _example_block(model, {"Selector": "selector =", "StateTest": "where =",
                                      "TimeWindow": "window ="}[model.__name__])
    out += [
        "## Changing one scene from the config",
        "",
        "A house can change a scene of a profile without copying the profile (like the inputs of a Home",
        "Assistant blueprint): a `[profiles.scenes.<scene id>]` table in the config's `[[profiles]]` entry.",
        "Scene ids and parameter names are checked when the config loads (`hearth config check`);",
        "`hearth profile show NAME --config FILE` shows what the config changed.",
        "",
        _doc(SceneSettings),
        "",
        *_field_rows(SceneSettings, skip=()),
        "",
        "```toml\n# docs/examples/scene-overrides.config.toml",
        EXAMPLE_CONFIG.rstrip(),
        "```",
        "",
    ]
    return "\n".join(out)


def _example_block(model: type[BaseModel], lead: str) -> list[str]:
    found = examples(model)
    if not found:
        return []
    lines = ["```toml"]
    for example in found:
        if lead.endswith("= ["):
            lines += [lead, f"  {toml_value(example)},", "]"]
        elif lead.endswith("="):
            lines.append(f"{lead} {toml_value(example)}")
        else:
            lines.append(lead)
            lines += [f"{_toml_key(k)} = {toml_value(v)}" for k, v in example.items()]
    return [*lines, "```", ""]


# ------------------------------------------------------------------ JSON Schema

_PARAMETER_REFERENCE = {"type": "string", "pattern": r"^\$\{[a-z][a-z0-9_]*\}$",
                        "description": "A parameter of the profile: ${name}"}
_KEPT_ON_WRAPPER = ("description", "default", "title", "examples")
_NO_PARAMETER = {("Scene", "id"), ("Scene", "triggers"), ("Scene", "conditions"), ("Scene", "actions")}


def profile_json_schema() -> dict[str, Any]:
    """JSON Schema of a profile file, for editors (Taplo / Even Better TOML, VS Code): the keys as they
    are written (``for``, ``from``, ``is``), triggers, conditions and actions as unions tagged by
    ``kind``, and ``${name}`` accepted wherever a scene takes a value."""
    schema = ProfileFile.model_json_schema(by_alias=True)
    _drop_nulls(schema)
    attributes = sorted(f"{name}.{attr}" for name, spec in capabilities().items() for attr in spec.attributes)
    names = sorted(capabilities())
    defs: dict[str, Any] = schema.setdefault("$defs", {})
    for def_name, definition in defs.items():
        for key, prop in list(definition.get("properties", {}).items()):
            if key == "attribute":
                _set_enum(prop, attributes)
            elif key == "capability":
                _set_enum(prop, names)
            # A parameter may stand for any value of a scene, not for its kind or its lists of steps.
            if key != "kind" and def_name != "Parameter" and (def_name, key) not in _NO_PARAMETER:
                definition["properties"][key] = _or_parameter(prop)
    defs["ParameterReference"] = _PARAMETER_REFERENCE
    schema["properties"]["version"]["const"] = language.PROFILE_SCHEMA_VERSION
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **{k: v for k, v in schema.items() if k != "title"},
        "title": f"Hearth scene profile (schema version {language.PROFILE_SCHEMA_VERSION})",
    }


def _drop_nulls(node: Any) -> None:
    """TOML has no null: ``X | None`` is just an optional X."""
    if isinstance(node, list):
        for item in node:
            _drop_nulls(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("default", 0) is None:
        del node["default"]
    choices = node.get("anyOf")
    if isinstance(choices, list) and {"type": "null"} in choices:
        rest = [c for c in choices if c != {"type": "null"}]
        del node["anyOf"]
        if len(rest) == 1:
            node.update({k: v for k, v in rest[0].items() if k not in node})
        else:
            node["anyOf"] = rest
    for value in node.values():
        _drop_nulls(value)


def _set_enum(node: Any, values: list[str]) -> None:
    """Put ``values`` on every plain string in ``node`` (a string, or a string or list of strings)."""
    if isinstance(node, dict):
        if node.get("type") == "string":
            node.pop("pattern", None)
            node["enum"] = values
        for value in node.values():
            _set_enum(value, values)
    elif isinstance(node, list):
        for item in node:
            _set_enum(item, values)


def _or_parameter(prop: dict[str, Any]) -> dict[str, Any]:
    wrapper = {k: prop[k] for k in _KEPT_ON_WRAPPER if k in prop}
    inner = {k: v for k, v in prop.items() if k not in _KEPT_ON_WRAPPER}
    return {**wrapper, "anyOf": [inner, {"$ref": "#/$defs/ParameterReference"}]}


# ------------------------------------------------------------------ capabilities


def render_capabilities() -> str:
    """The capability model as a reference page (the registry: core and registered plugin capabilities)."""
    out = [
        "# Capabilities",
        "",
        f"<!-- Generated from gateway/model/capabilities.py by `{REGENERATE}`: do not edit. -->",
        "",
        "Every device is shown as components holding capabilities; each capability has attributes (in the",
        "canonical unit: adapters convert), commands and events. A profile names an attribute as",
        "`capability.attribute` (`occupancy.occupied`) and a command by its capability and name.",
        "`hearth schema` prints the same model as JSON Schema.",
        "",
        "**Components.** A device with several outputs or meters has one component per output: a relay's",
        "channels (`l1`, `l2`, or the number its firmware gives), a three-phase meter's phases (`l1`, `l2`,",
        "`l3`, for phase A, B, C), a device's second light. What is the whole device is `main`.",
        "",
        "**Units.** Every attribute is in its canonical unit. Adapters convert what converts exactly",
        "(mA to A, Wh to kWh, kPa to hPa, °F to °C, ppm to ppb, mg/m³ to µg/m³); a reading that does not",
        "convert (VOC in µg/m³ against ppb, light in % against lux) has its own attribute. A reading in a unit",
        "nobody handled is not used, and `hearth replay` says so: it is never relabelled.",
        "",
        "**Stepped values.** A command whose device moves in steps is confirmed at the step it reaches:",
        "`fan.set_speed` with `percent = 50` on a fan whose `fan.speed_steps` is 3 expects 67 %.",
        "",
    ]
    for name, spec in sorted(capabilities().items()):
        out += [f"## `{name}`", ""]
        if spec.description:
            out += [spec.description, ""]
        if spec.ha or spec.matter:
            out += [f"Home Assistant: {spec.ha or NONE}. Matter: {spec.matter or NONE}.", ""]
        if spec.attributes:
            out += ["| attribute | type | unit | range or values | set by a command | description |",
                    "|---|---|---|---|---|---|"]
            for attr, a in spec.attributes.items():
                out.append(f"| `{name}.{attr}` | {a.type} | {a.unit or NONE} | {_range(a)} | "
                           f"{'yes' if a.settable else 'no'} | {a.description or ''} |")
            out.append("")
        if spec.commands:
            out += ["| command | arguments | description |", "|---|---|---|"]
            for cmd, c in spec.commands.items():
                args = ", ".join(f"`{arg}` ({a.type}{f' {a.unit}' if a.unit else ''}"
                                 f"{f', {_range(a)}' if _range(a) != NONE else ''}"
                                 f"{'' if a.required else ', optional'})" for arg, a in c.args.items())
                out.append(f"| `{cmd}` | {args or NONE} | {c.description} |")
            out.append("")
        if spec.events:
            out += ["| event | data |", "|---|---|"]
            for event, data in spec.events.items():
                fields = ", ".join(f"`{k}` ({a.type}{f': {_range(a)}' if _range(a) != NONE else ''})"
                                   for k, a in data.items())
                out.append(f"| `{event}` | {fields or NONE} |")
            out.append("")
    return "\n".join(out)


def _range(spec: Any) -> str:
    if spec.values:
        return ", ".join(spec.values)
    low, high = spec.minimum, spec.maximum
    if low is None and high is None:
        return NONE
    if high is None:
        return f"≥ {low:g}"
    if low is None:
        return f"≤ {high:g}"
    return f"{low:g} to {high:g}"


# ------------------------------------------------------------------ the command


def generated(docs: Path) -> dict[Path, str]:
    """Each generated file and what it should hold."""
    return {
        docs / "profile-language.md": render_profile_reference(),
        docs / "profile.schema.json": json.dumps(profile_json_schema(), indent=2, ensure_ascii=False) + "\n",
        docs / "capabilities.md": render_capabilities(),
        # Checked by the tests (`hearth profile check`, `hearth config check`), like the reference's examples.
        docs / "examples" / f"{EXAMPLE_PROFILE_NAME}.toml": EXAMPLE_PROFILE,
        docs / "examples" / "scene-overrides.config.toml": EXAMPLE_CONFIG,
    }


def _default_docs() -> Path:
    root = Path(__file__).resolve().parents[2]
    return root / "docs" if (root / "pyproject.toml").is_file() else Path("docs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}", description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=None, help="the docs folder (default: the repository's)")
    parser.add_argument("--check", action="store_true", help="only say whether the files are current")
    args = parser.parse_args(argv)
    docs = args.docs or _default_docs()
    stale = []
    for path, text in generated(docs).items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if args.check and stale:
        print("out of date: " + ", ".join(map(str, stale)) + f" (run `{REGENERATE}`)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
