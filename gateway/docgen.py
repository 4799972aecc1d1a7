"""The reference pages generated from the code, so that they cannot drift from it.

``python -m gateway.docgen`` writes every generated page of ``docs/``:

- ``sdk.md``: every public name of :mod:`gateway.sdk` (its ``__all__``), with signatures, fields and
  methods, from the docstrings and annotations;
- ``config.md``: every key of the config file, from the pydantic models of :mod:`gateway.config`;
- ``http-api.md``: every route of the HTTP API with the roles that may call it (the policy table of
  :mod:`gateway.api.accounts`) and its handler's docstring, and the WebSocket protocol;
- ``capabilities.md``, ``profile-language.md``, ``profile.schema.json`` and the examples they use, as
  :mod:`gateway.scenes.reference` makes them.

``--check`` only says whether the committed pages are current (``tests/test_docs.py`` does the same).
``scripts/docs`` regenerates them and builds the site with ``mkdocs build --strict``.

Descriptions come from docstrings, from ``Field(description=...)``, and for dataclass fields, protocol
attributes, module constants and config keys from the ``#:`` comment above them (Sphinx's convention);
:func:`undocumented` lists the public names that have none.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import html
import importlib
import inspect
import re
import sys
import tempfile
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

__all__ = ["REGENERATE", "attribute_docs", "generated", "http_routes", "main", "markdown_of", "render_config",
           "render_http_api", "render_sdk", "undocumented"]

REGENERATE = "python -m gateway.docgen"
NONE = "\u2013"  # an en dash: "no default"


# ------------------------------------------------------------------ docstrings and comments


def markdown_of(doc: str | None, link: Callable[[str], str | None] = lambda name: None) -> str:
    """A docstring (reStructuredText habits: ``code``, :class:`X`, ``::`` blocks) as Markdown.

    ``link(name)`` gives the anchor of a name cross-referenced with a role, or None for plain code."""
    if not doc:
        return ""
    lines = inspect.cleandoc(doc).splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.rstrip().endswith("::"):
            # A literal block: the indented lines after the "::" line, as a fenced block.
            out.append(_inline(line.rstrip()[:-1], link))
            index += 1
            block: list[str] = []
            while index < len(lines) and (not lines[index].strip() or lines[index].startswith(" ")):
                block.append(lines[index])
                index += 1
            while block and not block[-1].strip():
                block.pop()
            body = inspect.cleandoc("\n".join(block)) if block else ""
            out += ["", "```", *body.splitlines(), "```", ""]
            continue
        out.append(_inline(line, link))
        index += 1
    return "\n".join(out).strip()


def _inline(text: str, link: Callable[[str], str | None]) -> str:
    def role(match: re.Match[str]) -> str:
        name = match.group(2).lstrip("~")
        # A name, or the class of a dotted one (:attr:`DeviceInfo.id`).
        anchor = link(name.rsplit(".", 1)[-1]) or link(name.split(".", 1)[0])
        return f"[`{name}`](#{anchor})" if anchor else f"`{name}`"

    text = re.sub(r":(class|func|data|meth|mod|attr|exc):`([^`]+)`", role, text)
    return re.sub(r"``([^`]+)``", r"`\1`", text)


def _one_line(doc: str | None) -> str:
    """The first paragraph of a docstring, on one line (for a table cell)."""
    if not doc:
        return ""
    first = inspect.cleandoc(doc).split("\n\n", 1)[0]
    return _cell(_inline(first, lambda name: None))


def _source_tree(obj: Any) -> tuple[list[str], ast.AST] | None:
    try:
        source = inspect.getsource(obj)
    except (OSError, TypeError):
        return None
    source = inspect.cleandoc("\n" + source) if source.startswith((" ", "\t")) else source
    return source.splitlines(), ast.parse(source)


def _comments_above(lines: list[str], lineno: int) -> str:
    """The ``#:`` comment lines right above line ``lineno`` (1-based), joined."""
    found: list[str] = []
    index = lineno - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        found.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(found)


def _assigned_name(node: ast.stmt) -> str | None:
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return node.target.id
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id
    return None


def _body_docs(lines: list[str], body: list[ast.stmt]) -> dict[str, str]:
    """name -> description of the assignments in ``body``: the ``#:`` comment above, or a string under it."""
    docs: dict[str, str] = {}
    for position, node in enumerate(body):
        name = _assigned_name(node)
        if name is None:
            continue
        text = _comments_above(lines, node.lineno)
        following = body[position + 1] if position + 1 < len(body) else None
        if (not text and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)):
            text = " ".join(inspect.cleandoc(following.value.value).split())
        if text:
            docs[name] = text
    return docs


def attribute_docs(cls: type) -> dict[str, str]:
    """The description of each annotated attribute of ``cls`` and of its bases from this project."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("gateway."):
            continue
        parsed = _source_tree(klass)
        if parsed is None:
            continue
        lines, tree = parsed
        node = tree.body[0] if isinstance(tree, ast.Module) and tree.body else None
        if isinstance(node, ast.ClassDef):
            docs.update(_body_docs(lines, node.body))
    return docs


def _module_docs(module: types.ModuleType) -> dict[str, str]:
    parsed = _source_tree(module)
    if parsed is None:
        return {}
    lines, tree = parsed
    assert isinstance(tree, ast.Module)
    return _body_docs(lines, tree.body)


# ------------------------------------------------------------------ types and signatures


def _annotation(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def signature_of(obj: Any, name: str | None = None) -> str:
    """``name(arg: type = default, ...) -> type`` with the annotations as written in the source."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{name or obj.__name__}(...)"
    params = []
    previous_kind = None
    for param in signature.parameters.values():
        if param.kind is param.KEYWORD_ONLY and previous_kind not in (param.KEYWORD_ONLY, param.VAR_POSITIONAL):
            params.append("*")
        previous_kind = param.kind
        text = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "") + param.name
        if param.annotation is not param.empty:
            text += f": {_annotation(param.annotation)}"
        if param.default is not param.empty:
            default = param.default
            shown = "..." if dataclasses.is_dataclass(default) or callable(default) else repr(default)
            if "<factory>" in repr(default):
                shown = "..."
            text += f" = {shown}"
        params.append(text)
    returns = signature.return_annotation
    tail = "" if returns is inspect.Signature.empty or returns in (None, "None") else f" -> {_annotation(returns)}"
    return f"{name or obj.__name__}({', '.join(params)}){tail}"


def _literal_values(cls: type, attribute: str) -> tuple[Any, ...] | None:
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # a forward reference the module cannot resolve: show the text only
        return None
    hint = hints.get(attribute)
    return typing.get_args(hint) if typing.get_origin(hint) is Literal else None


# ------------------------------------------------------------------ docs/sdk.md


def _sdk_names() -> dict[str, Any]:
    sdk = importlib.import_module("gateway.sdk")
    return {name: getattr(sdk, name) for name in sdk.__all__}


def _anchor(name: str) -> str:
    return name.lower()


def _kind(name: str, value: Any) -> str:
    if isinstance(value, type):
        if issubclass(value, BaseException):
            return "Errors"
        if getattr(value, "_is_protocol", False):
            return "Protocols: what the gateway gives an adapter, and what it expects of one"
        if dataclasses.is_dataclass(value):
            return "Data: devices, values, commands and the capability model"
        return "Other classes"
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        return "Functions"
    if typing.get_origin(value) is not None or value in (typing.Any,):
        return "Type aliases"
    return "Constants"


_FUNCTION_REPR = re.compile(r"<function ([\w.]+) at 0x[0-9a-fA-F]+>")
_KIND_ORDER = (
    "Constants",
    "Protocols: what the gateway gives an adapter, and what it expects of one",
    "Data: devices, values, commands and the capability model",
    "Errors",
    "Other classes",
    "Functions",
    "Type aliases",
)


def _constant_doc(name: str) -> str:
    """The ``#:`` comment of a module-level name of the SDK, in gateway.sdk or the module it comes from."""
    sdk = importlib.import_module("gateway.sdk")
    docs = _module_docs(sdk)
    if name in docs:
        return docs[name]
    parsed = _source_tree(sdk)
    if parsed is not None:
        for node in ast.walk(parsed[1]):
            if isinstance(node, ast.ImportFrom) and node.module and any(a.name == name for a in node.names):
                return _module_docs(importlib.import_module(node.module)).get(name, "")
    return ""


def _members(cls: type) -> Iterator[tuple[str, Any]]:
    """The public methods and properties ``cls`` defines (or inherits from this project's classes)."""
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not klass.__module__.startswith("gateway."):
            continue
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            if inspect.isfunction(value) or isinstance(value, (property, classmethod, staticmethod)):
                seen.add(name)
                yield name, value


def _fields(cls: type) -> list[tuple[str, str, str]]:
    """(name, type, default) of a dataclass's fields or a protocol's annotated attributes."""
    if dataclasses.is_dataclass(cls):
        out = []
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = f"`{f.default!r}`"
            elif f.default_factory is not dataclasses.MISSING:
                default = f"`{f.default_factory()!r}`"
            else:
                default = "**required**"
            out.append((f.name, _annotation(f.type), default))
        return out
    annotations: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("gateway."):
            annotations.update(vars(klass).get("__annotations__", {}))
    return [(name, _annotation(tp), "") for name, tp in annotations.items() if not name.startswith("_")]


def _class_doc(cls: type) -> str | None:
    """The class's own docstring; not one it inherits, nor the signature a dataclass makes up."""
    doc = vars(cls).get("__doc__")
    if not doc or (dataclasses.is_dataclass(cls) and doc.startswith(f"{cls.__name__}(")):
        return None
    return str(doc)


def _cell(text: str) -> str:
    """Text for a table cell: one line, its pipes escaped. A code span with a pipe becomes HTML: in a code
    span, Python-Markdown (the site) would show the backslash of ``\\|``."""

    def code(match: re.Match[str]) -> str:
        inner = match.group(1)
        return f"<code>{html.escape(inner).replace('|', '&#124;')}</code>" if "|" in inner else match.group(0)

    return re.sub(r"(?<!\\)\|", r"\\|", re.sub(r"`([^`]+)`", code, " ".join(text.split())))


def _render_class(name: str, cls: type, link: Callable[[str], str | None]) -> list[str]:
    out = [f"### `{name}`", ""]
    is_protocol = bool(getattr(cls, "_is_protocol", False))
    if issubclass(cls, BaseException) and "__init__" not in vars(cls):
        out += ["```python", f"class {name}({cls.__bases__[0].__name__})", "```", ""]
    elif not is_protocol:
        out += ["```python", signature_of(cls, name), "```", ""]
    doc = markdown_of(_class_doc(cls), link)
    if doc:
        out += [doc, ""]
    docs = attribute_docs(cls)
    fields = _fields(cls)
    if fields:
        with_default = not is_protocol
        out += ["| field | type |" + (" default |" if with_default else "") + " description |",
                "|---|---|" + ("---|" if with_default else "") + "---|"]
        for field_name, tp, default in fields:
            description = docs.get(field_name, "")
            values = _literal_values(cls, field_name)
            if values:
                description += " One of " + ", ".join(f"`{v}`" for v in values) + "."
            out.append(f"| `{field_name}` | {_cell(f'`{tp}`')} |" + (f" {default} |" if with_default else "")
                       + f" {_cell(_inline(description, link))} |")
        out.append("")
    for member, value in _members(cls):
        target = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
        if isinstance(value, property):
            returns = _annotation(inspect.signature(target).return_annotation)
            heading = f"`{name}.{member}` (property): `{returns}`"
        else:
            params = signature_of(target, member).replace("(self, ", "(").replace("(self)", "()")
            heading = f"`{name}.{params}`"
        out += [f"- {heading}"]
        doc = markdown_of(target.__doc__, link)
        if doc:
            out += ["", *("    " + line if line else "" for line in doc.splitlines())]
        out.append("")
    return out


def render_sdk() -> str:
    """``docs/sdk.md``: the plugin SDK, every name of ``gateway.sdk.__all__``."""
    sdk = importlib.import_module("gateway.sdk")
    names = _sdk_names()

    def link(name: str) -> str | None:
        return _anchor(name) if name in names else None

    groups: dict[str, list[str]] = {}
    for name, value in names.items():
        groups.setdefault(_kind(name, value), []).append(name)
    out = [
        "# Plugin SDK reference (`gateway.sdk`)",
        "",
        f"<!-- Generated from gateway/sdk.py by `{REGENERATE}`: do not edit. -->",
        "",
        "Everything an adapter plugin may use, in one import: `from gateway.sdk import ...`. A name that is",
        "not here is not part of the SDK, and may change in any release. How to write a plugin, with a",
        "complete example: [plugins.md](plugins.md).",
        "",
        markdown_of(sdk.__doc__, link),
        "",
        "**Contents:** " + ", ".join(f"[`{n}`](#{_anchor(n)})" for n in sorted(names, key=str.lower)),
        "",
    ]
    for kind in sorted(groups, key=lambda k: _KIND_ORDER.index(k) if k in _KIND_ORDER else len(_KIND_ORDER)):
        out += [f"## {kind}", ""]
        for name in sorted(groups[kind], key=str.lower):
            value = names[name]
            if isinstance(value, type):
                out += _render_class(name, value, link)
            elif kind == "Functions":
                out += [f"### `{name}`", "", "```python", signature_of(value, name), "```", "",
                        markdown_of(value.__doc__, link), ""]
            else:
                # A function inside a constant (UNIT_FACTORS' offsets) by its name: its repr has an address.
                shown = _annotation(value) if kind == "Type aliases" else _FUNCTION_REPR.sub(r"\1", repr(value))
                out += [f"### `{name}`", "", "```python", f"{name} = {shown}", "```", "",
                        _inline(_constant_doc(name), link), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def undocumented() -> list[str]:
    """The public names of the SDK (and their fields and methods) that have no description."""
    missing: list[str] = []
    for name, value in _sdk_names().items():
        if isinstance(value, type):
            if not _class_doc(value):
                missing.append(f"{name}: no class docstring")
            docs = attribute_docs(value)
            missing += [f"{name}.{field}: no #: comment" for field, _, _ in _fields(value) if field not in docs]
            for member, member_value in _members(value):
                target = member_value.fget if isinstance(member_value, property) else getattr(
                    member_value, "__func__", member_value)
                if not target.__doc__:
                    missing.append(f"{name}.{member}: no docstring")
        elif inspect.isfunction(value):
            if not value.__doc__:
                missing.append(f"{name}: no docstring")
        elif not _constant_doc(name):
            missing.append(f"{name}: no #: comment")
    return missing


# ------------------------------------------------------------------ docs/config.md


def _constraints(metadata: list[Any]) -> str:
    words = []
    for item in metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                words.append(f"{sign} {value:g}")
        for attr, text in (("min_length", "length ≥ {}"), ("max_length", "length ≤ {}")):
            value = getattr(item, attr, None)
            if value is not None:
                words.append(text.format(value))
    return ", ".join(words)


# Sections a type links to: model name -> the anchor of its heading.
_CONFIG_ANCHORS = {"SceneSettings": "profilesscenesid"}


def _config_type(tp: Any, metadata: list[Any] | None = None) -> str:
    from gateway.scenes.reference import type_words

    args = typing.get_args(tp)
    if typing.get_origin(tp) is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(
            args[1], BaseModel):
        text = f"table of [{args[1].__name__}](#{_CONFIG_ANCHORS.get(args[1].__name__, '')})"
    elif typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [m for m in typing.get_args(tp) if m is not type(None)]
        words = [_config_type(m) for m in members]
        text = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
    elif tp is Path:
        text = "path"
    elif typing.get_origin(tp) is list and typing.get_args(tp) and typing.get_args(tp)[0] is Path:
        text = "list of paths"
    else:
        text = type_words(tp)
    limits = _constraints(metadata or [])
    return f"{text} ({limits})" if limits else text


def _config_default(info: FieldInfo) -> str:
    from gateway.scenes.reference import toml_value

    if info.is_required():
        return "**required**"
    value = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, BaseModel):
        return NONE
    return f"`{toml_value(value)}`"


def _config_rows(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    docs = attribute_docs(model)
    rows = ["| key | type | default | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip or info.exclude:
            continue
        description = info.description or docs.get(name, "")
        rows.append(f"| `{info.alias or name}` | {_config_type(info.annotation, list(info.metadata))} | "
                    f"{_config_default(info)} | {_cell(_inline(description, lambda n: None))} |")
    return rows


def _config_models() -> list[tuple[str, type[BaseModel]]]:
    """(TOML header, model) of every table of the config file whose keys a model defines."""
    from gateway.config import Config

    out = []
    for name, info in Config.model_fields.items():
        tp = info.annotation
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out.append((f"[{name}]", tp))
        elif typing.get_origin(tp) is list:
            (inner,) = typing.get_args(tp)
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                out.append((f"[[{name}]]", inner))
                for sub_name, sub in inner.model_fields.items():
                    args = typing.get_args(sub.annotation)
                    if typing.get_origin(sub.annotation) is dict and isinstance(args[1], type) and issubclass(
                            args[1], BaseModel):
                        out.append((f"[{name}.{sub_name}.<id>]", args[1]))
    return out


def undocumented_config() -> list[str]:
    """Config keys (of the models of gateway.config and the sections it holds) with no description."""
    from gateway.config import Config

    sections = _config_models()
    missing = [f"{header}: no class docstring" for header, model in sections if not _class_doc(model)]
    tables = {model for _, model in sections}
    for header, model in [("(top level)", Config), *sections]:
        docs = attribute_docs(model)
        missing += [f"{header} {name}" for name, info in model.model_fields.items()
                    if not info.exclude and info.annotation not in tables and not (info.description or docs.get(name))
                    and not (model is Config and typing.get_origin(info.annotation) is list)]
    return missing


def render_config() -> str:
    """``docs/config.md``: every key of the config file, its type, default and meaning."""
    from gateway.config import Config
    from gateway.scenes import notify

    top_docs = attribute_docs(Config)
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated from gateway/config.py by `{REGENERATE}`: do not edit. -->",
        "",
        "`hearth run` works without a config file: every key has a default. A file (TOML) is passed with",
        "`--config house.toml`; `config.example.toml` at the top of the repository has every setting with",
        "its default and why. `hearth config check house.toml` checks a file (every table, the adapters'",
        "sections and the profiles it uses) and names the file, line and key of every error. An unknown key",
        "is an error, with a \"did you mean\" for a misspelt one.",
        "",
        "A key whose default is *unset* has none: the gateway then does what its description says.",
        "Durations carry their unit in their name (`commit_interval_s`, `away_after_min`).",
        "",
    ]
    for header, model in _config_models():
        out += [f"## `{header}`", ""]
        doc = markdown_of(_class_doc(model))
        if doc:
            out += [doc, ""]
        if header == "[[profiles]]":
            out += ["The profiles themselves are written in the [profile language](profile-language.md).", ""]
        out += [*_config_rows(model), ""]
    out += [
        "## `[notify]`",
        "",
        _cell(_inline(top_docs.get("notify", ""), lambda n: None)) + ".",
        "",
        "Its plain keys:",
        "",
        *_config_rows(notify.NotifySettings),
        "",
        "Each `[notify.<name>]` table is a target, by its `kind`; profiles name targets in their",
        "`contacts` parameter. Every kind also takes the keys of the first table.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
        *_config_rows(notify._TargetModel)[2:],
        "",
    ]
    for target in typing.get_args(notify._AnyTarget):
        kind = typing.get_args(target.model_fields["kind"].annotation)[0]
        out += [f"### `kind = \"{kind}\"`", "", markdown_of(target.__doc__), ""]
        own = (*notify._TargetModel.model_fields, "kind")
        rows = _config_rows(target, skip=own)
        if len(rows) > 2:
            out += [*rows, ""]
    for name, title, text in (
        ("areas", "[areas]", "Keys are device ids (`zigbee2mqtt:0x00158d0001a2b3c4`) or names (a Zigbee2MQTT "
                             "friendly name works); values are area names. An area set in the web UI wins."),
        ("tags", "[tags]", "Keys as in `[areas]`; values are lists of tags, which profiles select devices by. "
                           "Tags set in the web UI replace these for that device."),
    ):
        out += [f"## `{title}`", "", _cell(_inline(top_docs.get(name, ""), lambda n: None)) + ".", "", text, ""]
    out += [
        "## `[adapters.<name>]`",
        "",
        _cell(_inline(top_docs.get("adapters", ""), lambda n: None)) + ".",
        "",
        "Each adapter, built in or a plugin, reads its own table, named after its entry point in the",
        "`hearth.adapters` group (`[adapters.zigbee2mqtt]`, `[adapters.ble]`, `[adapters.acme]`). Every",
        "adapter takes `enabled` (default `true`; `false` leaves it out). The rest of the table is the",
        "adapter's own: an adapter that declares a `config_model` (a pydantic model, see",
        "[plugins.md](plugins.md)) has it checked at start and by `hearth config check`, with the same",
        "file, line and key in its errors; the adapter receives the table as `ctx.config`.",
        "Every adapter also takes two keys of the supervisor's, taken out before its own model sees the table:",
        "`isolation` (`\"inline\"`, the default, or `\"process\"`: the adapter runs in a worker process of its own,",
        "so that a call that blocks, memory that leaks or a crash in it cannot take the house down) and",
        "`memory_limit_mb` (the worker's memory limit, default 256, at least 64; reaching it restarts the worker):",
        "see [plugins.md](plugins.md#out-of-process-isolation-process).",
        "`config.example.toml` lists the keys of the built-in adapters.",
        "",
    ]
    return "\n".join(out).rstrip("\n") + "\n"


# ------------------------------------------------------------------ docs/http-api.md


def _full_app() -> Any:
    """The app with every route the gateway serves, as gateway/app.py builds it, on throwaway state."""
    from gateway.api.ack import add_ack_routes
    from gateway.api.app import create_app
    from gateway.api.auth import TokenStore
    from gateway.api.discovered import add_discovered_routes
    from gateway.api.resident import add_resident_routes
    from gateway.api.scenes import add_scene_routes
    from gateway.clock import SimulatedClock
    from gateway.hub import Hub

    with tempfile.TemporaryDirectory() as folder:
        # Nothing is read or written while routes are added: the stores open their files on first use.
        app = create_app(Hub(SimulatedClock()), TokenStore(Path(folder) / "tokens.json"), health=dict)
    add_scene_routes(app, typing.cast(Any, None))
    add_ack_routes(app, typing.cast(Any, None), typing.cast(Any, None))
    add_resident_routes(app)
    add_discovered_routes(app, lambda: None)
    from gateway.api.matter import add_matter_routes

    add_matter_routes(app, lambda: None)
    return app


def http_routes() -> list[tuple[str, str, Any]]:
    """(method, canonical path, handler) of every route, in the order they are added; HEAD left out."""
    out = []
    for route in _full_app().router.routes():
        info = route.get_info()
        path = info.get("path") or info.get("formatter")
        if path is None or route.method in ("*", "HEAD"):
            continue
        out.append((route.method, re.sub(r"\{(\w+)(:[^}]*)?\}", r"{\1}", path), route.handler))
    return out


_ROUTE_GROUPS: tuple[tuple[str, str], ...] = (
    ("gateway.api.app", "Devices, commands and the gateway"),
    ("gateway.api.ui", "The web UI, history, energy and areas"),
    ("gateway.api.scenes", "Scenes, alerts and the house"),
    ("gateway.api.login", "Logging in, people and tokens"),
    ("gateway.api.resident", "The resident's view"),
    ("gateway.api.ack", "Acknowledge links"),
    ("gateway.api.discovered", "Discovery"),
    ("gateway.api.matter", "The Matter bridge"),
    ("gateway.api.ws", "The WebSocket"),
    ("gateway.api.things", "Thing Descriptions (W3C WoT)"),
    ("gateway.api.openapi", "The OpenAPI document"),
    ("gateway.api.data", "Your data: export, delete, audit"),
)


def _who(method: str, path: str) -> str:
    from gateway.api.accounts import PUBLIC, ROLES, allowed_roles

    if not (path == "/api" or path.startswith("/api/")):
        return "anyone (no credential)"
    roles = allowed_roles(method, path)
    if roles == PUBLIC:
        return "public"
    return ", ".join(role for role in ROLES if role in roles)


def undocumented_routes() -> list[str]:
    return [f"{method} {path}" for method, path, handler in http_routes() if not handler.__doc__]


def render_http_api() -> str:
    """``docs/http-api.md``: every route, who may call it, and what it does; the WebSocket's protocol."""
    from gateway.api import app as api_app
    from gateway.api import commands, ws
    from gateway.api.accounts import ROLES, WS_COMMAND_ROLES, WS_ROLES

    routes = http_routes()
    out = [
        "# HTTP API reference",
        "",
        f"<!-- Generated from the routes of gateway/api/ by `{REGENERATE}`: do not edit. -->",
        "",
        "The gateway serves its API on `[api] host` and `port` (`http://127.0.0.1:8470` by default; see",
        "[config.md](config.md#api)).",
        "",
        # The module docstring without its title line.
        markdown_of(api_app.__doc__).split("\n\n", 1)[1],
        "",
        "**Roles.** " + ", ".join(f"`{r}`" for r in ROLES) + ": the owner may do everything; *who* below is",
        "the policy table `gateway.api.accounts.ROUTE_ROLES`, which the tests check against every route for",
        "every role. A caller with a role not listed gets `403 {\"error\": \"forbidden_role\"}`; one without a",
        "valid credential gets `401`. A *public* route is let through without one and checks what it needs",
        "itself (the login's body, the WebSocket's first message, a link's token). `GET` routes also answer",
        "`HEAD`.",
        "",
        "**Commands.** `POST /api/devices/{id}/commands` answers with the command's result; its `status`",
        "gives the HTTP status:",
        "",
        "| status | HTTP |",
        "|---|---|",
        *(f"| `{status}` | {code} |" for status, code in commands._STATUS_HTTP.items()),
        "",
        "and `503` when the device's transport is down (try again later), `504` when its adapter did not",
        "answer at all.",
        "",
    ]
    grouped: dict[str, list[tuple[str, str, Any]]] = {}
    for route in routes:
        grouped.setdefault(route[2].__module__, []).append(route)
    titles = dict(_ROUTE_GROUPS)
    for module in sorted(grouped, key=lambda m: [g for g, _ in _ROUTE_GROUPS].index(m) if m in titles else 99):
        out += [f"## {titles.get(module, module)}", "", "| route | who | what |", "|---|---|---|"]
        for method, path, handler in grouped[module]:
            out.append(f"| `{method} {path}` | {_who(method, path)} | {_one_line(handler.__doc__)} |")
        out.append("")
    out += [
        "## The WebSocket protocol",
        "",
        "Once connected, the live connection is for " + ", ".join(r for r in ROLES if r in WS_ROLES)
        + "; commands over it for " + ", ".join(r for r in ROLES if r in WS_COMMAND_ROLES) + ".",
        "",
        markdown_of(ws.__doc__).split("\n", 1)[1].strip(),
        "",
    ]
    return "\n".join(out).rstrip("\n") + "\n"


# ------------------------------------------------------------------ the command


def generated(docs: Path) -> dict[Path, str]:
    """Each generated file and what it should hold: these pages, and those of gateway.scenes.reference."""
    from gateway.scenes import reference

    return {
        **reference.generated(docs),
        docs / "sdk.md": render_sdk(),
        docs / "config.md": render_config(),
        docs / "http-api.md": render_http_api(),
        docs / "matter.md": render_matter(docs / "matter.md"),
    }


def render_matter(page: Path) -> str:
    """``docs/matter.md``: its generated section (the mapping table of gateway/matter/mapping.py) in the page."""
    from gateway.matter.mapping import render_docs_page

    return render_docs_page(page.read_text(encoding="utf-8") if page.is_file() else None)


def _default_docs() -> Path:
    root = Path(__file__).resolve().parents[1]
    return root / "docs" if (root / "pyproject.toml").is_file() else Path("docs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.docgen", description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=None, help="the docs folder (default: the repository's)")
    parser.add_argument("--check", action="store_true", help="only say whether the pages are current")
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
