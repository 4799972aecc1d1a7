"""A small, safe evaluator for the Home Assistant ``value_template`` shapes devices actually send.

Home Assistant renders discovery templates with Jinja2. Running a general template engine on what any device
on the broker publishes is not safe (and not light), so this module understands exactly these shapes and
nothing else:

* ``{{ value }}`` and ``{{ value_json }}`` followed by accessors ``.key``, ``.0``, ``['key']``, ``["key"]``,
  ``[0]``, chained (``{{ value_json.ENERGY.Power }}``, ``{{ value_json['ENERGY'].Today }}``);
* in command templates, the variables Home Assistant passes besides ``value`` (``red``, ``green``, ``blue``,
  ``white`` of an RGBW light, ``hue``/``sat``, ``x``/``y``): the caller names them when it compiles
  (``compile_template(source, names=…)``) and gives their values when it renders;
* filters ``| float``, ``| float(default)``, ``| int``, ``| int(default)``, ``| round``, ``| round(n)``,
  ``| is_defined``, ``| lower``, ``| upper``, ``| trim``, ``| string``, ``| default(x)``, ``| join``,
  ``| join(sep)`` (HA's docs: ``{{ value_json.rgb | join(',') }}``), ``| tojson`` (an attributes template's
  ``{{ value_json | tojson }}``), ``| multiply(n)`` (Home Assistant's own filter), chained;
* number and string literals (``{{ 'ON' }}``), and text around ``{{ … }}`` blocks
  (``{{ value_json.id }}_{{ value_json.event }}``);
* a lookup in a literal table, as Z-Wave JS UI writes its thermostat modes:
  ``{{ {0: "off", 1: "heat"}[value_json.value] | default('off') }}`` (keys and values literals; a key not in
  the table is undefined, as in Jinja, where ``"0"`` and ``0`` are different keys).

Anything else (``{% if %}``, arithmetic, other filters, method calls) makes :func:`compile_template` raise
:class:`TemplateUnsupported`: the template is reported as unsupported and never executed.

Rendering follows Jinja's habits where it matters: a missing key is *undefined* (an undefined whole-template
result is :data:`UNDEFINED`, so the caller can skip it, as Home Assistant does for a JSON key missing from a
shared state topic), ``is_defined`` turns undefined into :class:`TemplateUndefined`, and a template that is a
single expression returns the value itself (a number stays a number) instead of its text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "UNDEFINED",
    "CompiledTemplate",
    "TemplateError",
    "TemplateUndefined",
    "TemplateUnsupported",
    "compile_template",
    "to_text",
]

# Templates longer than this are not "the common simple shapes": refuse rather than tokenize megabytes.
MAX_TEMPLATE_CHARS = 2000


class TemplateError(ValueError):
    """A template could not be compiled or rendered."""


class TemplateUnsupported(TemplateError):
    """The template is not one of the shapes this evaluator understands (it is never executed)."""


class TemplateUndefined(TemplateError):
    """``is_defined`` met an undefined value (Home Assistant logs and skips the message)."""


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()


def to_text(value: Any) -> str:
    """A value as Jinja prints it: ``True``/``False``, ``None``, ints without ``.0``; undefined is empty."""
    if value is UNDEFINED:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


# ---------------------------------------------------------------------------------------------- filters


def _to_float(value: Any, default: Any = UNDEFINED) -> Any:
    if value is UNDEFINED:
        return default if default is not UNDEFINED else UNDEFINED
    try:
        result = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        if default is not UNDEFINED:
            return default
        raise TemplateError(f"cannot convert {value!r} to a float") from None
    return result


def _to_int(value: Any, default: Any = UNDEFINED) -> Any:
    if value is UNDEFINED:
        return default if default is not UNDEFINED else UNDEFINED
    try:
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)
            except ValueError:
                value = float(text)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        if default is not UNDEFINED:
            return default
        raise TemplateError(f"cannot convert {value!r} to an int") from None


def _round(value: Any, digits: Any = 0) -> Any:
    if value is UNDEFINED:
        return UNDEFINED
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        value = _to_float(value)
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 15:
        raise TemplateError(f"round({digits!r}): the precision must be an integer 0-15")
    if not math.isfinite(value):
        return value
    return float(round(value, digits))


def _is_defined(value: Any) -> Any:
    if value is UNDEFINED:
        raise TemplateUndefined("is_defined: the value is undefined")
    return value


def _text_filter(fn: Callable[[str], str]) -> Callable[..., Any]:
    def apply(value: Any) -> Any:
        return UNDEFINED if value is UNDEFINED else fn(to_text(value))
    return apply


def _default(value: Any, fallback: Any = "") -> Any:
    return fallback if value is UNDEFINED else value


def _join(value: Any, separator: Any = "") -> Any:
    if value is UNDEFINED:
        return UNDEFINED
    if not isinstance(value, list):
        raise TemplateError(f"join: expected a list, got {type(value).__name__}")
    return to_text(separator).join(to_text(item) for item in value)


def _tojson(value: Any) -> Any:
    if value is UNDEFINED:
        return UNDEFINED
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError) as err:  # pragma: no cover - parsed JSON always serialises
        raise TemplateError(f"tojson: {err}") from None


def _multiply(value: Any, factor: Any = 1) -> Any:
    if value is UNDEFINED:
        return UNDEFINED
    if isinstance(factor, bool) or not isinstance(factor, (int, float)):
        raise TemplateError(f"multiply({factor!r}): the factor must be a number")
    number = _to_float(value)
    return number * factor


# name -> (function, maximum number of arguments)
FILTERS: dict[str, tuple[Callable[..., Any], int]] = {
    "float": (_to_float, 1),
    "int": (_to_int, 1),
    "round": (_round, 1),
    "is_defined": (_is_defined, 0),
    "lower": (_text_filter(str.lower), 0),
    "upper": (_text_filter(str.upper), 0),
    "trim": (_text_filter(str.strip), 0),
    "string": (_text_filter(lambda s: s), 0),
    "default": (_default, 1),
    "join": (_join, 1),
    "tojson": (_tojson, 0),
    "multiply": (_multiply, 1),
}

# ---------------------------------------------------------------------------------------------- parsing

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>-?\d+(?:\.\d+)?)
      | (?P<string>'[^'\\]*'|"[^"\\]*")
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>[.\[\]|(),{}:])
    )""",
    re.VERBOSE,
)
_BLOCK = re.compile(r"\{\{-?(.*?)-?\}\}", re.DOTALL)

Accessor = str | int


@dataclass(frozen=True, slots=True)
class _Expr:
    root: str  # "value", "value_json", "literal" or a command variable's name
    literal: Any
    path: tuple[Accessor, ...]
    filters: tuple[tuple[Callable[..., Any], tuple[Any, ...]], ...]
    table: dict[Any, Any] | None = None  # {…}[root.path]: the value is looked up in this literal table


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise TemplateUnsupported(f"unexpected {text[pos:pos + 12]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _literal(kind: str, raw: str) -> Any:
    if kind == "number":
        return float(raw) if "." in raw else int(raw)
    if kind == "string":
        return raw[1:-1]
    if raw in ("true", "True"):
        return True
    if raw in ("false", "False"):
        return False
    if raw in ("none", "None"):
        return None
    raise TemplateUnsupported(f"unknown name {raw!r} (only value, value_json and the command's variables are "
                              "available)")


def _parse_expr(text: str, names: frozenset[str] = frozenset()) -> _Expr:
    tokens = _tokens(text)
    if not tokens:
        raise TemplateUnsupported("empty expression")
    i = 0

    def peek() -> tuple[str, str]:
        return tokens[i] if i < len(tokens) else ("end", "")

    kind, raw = tokens[0]
    i = 1
    root, literal = "literal", None
    table: dict[Any, Any] | None = None
    if kind == "op" and raw == "{":
        table = {}
        while peek()[1] != "}":
            key_kind, key = peek()
            _, colon = tokens[i + 1] if i + 1 < len(tokens) else ("end", "")
            value_kind, value = tokens[i + 2] if i + 2 < len(tokens) else ("end", "")
            if key_kind not in ("number", "string") or colon != ":" or value_kind not in ("number", "string", "name"):
                raise TemplateUnsupported("a table must be {literal: literal, …}")
            table[_literal(key_kind, key)] = _literal(value_kind, value)
            i += 3
            if peek()[1] == ",":
                i += 1
            elif peek()[1] != "}":
                raise TemplateUnsupported("a table must be {literal: literal, …}")
        i += 1
        if peek()[1] != "[" or i + 1 >= len(tokens) or tokens[i + 1] not in (("name", "value"), ("name", "value_json")):
            raise TemplateUnsupported("a table must be looked up with [value…] or [value_json…]")
        root = tokens[i + 1][1]
        i += 2
    elif kind == "name" and (raw in ("value", "value_json") or raw in names):
        root = raw
    else:
        literal = _literal(kind, raw)
    path: list[Accessor] = []
    while root != "literal" and peek()[1] in (".", "["):
        _, op = peek()
        i += 1
        kind, raw = peek()
        if op == ".":
            if kind == "name" and raw.startswith("__"):
                raise TemplateUnsupported(f"attribute {raw!r} is not supported")
            if kind == "name":
                path.append(raw)
            elif kind == "number" and raw.isdigit():
                path.append(int(raw))
            else:
                raise TemplateUnsupported(f"bad accessor .{raw}")
            i += 1
        else:
            if kind == "string":
                path.append(raw[1:-1])
            elif kind == "number" and raw.lstrip("-").isdigit():
                path.append(int(raw))
            else:
                raise TemplateUnsupported(f"bad index [{raw}")
            i += 1
            if peek()[1] != "]":
                raise TemplateUnsupported("missing ]")
            i += 1
    if table is not None:
        if peek()[1] != "]":
            raise TemplateUnsupported("missing ] after the table's key")
        i += 1
    filters: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
    while peek()[1] == "|":
        i += 1
        kind, name = peek()
        if kind != "name" or name not in FILTERS:
            raise TemplateUnsupported(f"filter {name!r} is not supported")
        fn, max_args = FILTERS[name]
        i += 1
        args: list[Any] = []
        if peek()[1] == "(":
            i += 1
            while peek()[1] != ")":
                kind, raw = peek()
                if kind not in ("number", "string", "name"):
                    raise TemplateUnsupported(f"bad argument {raw!r} to {name}")
                args.append(_literal(kind, raw))
                i += 1
                if peek()[1] == ",":
                    i += 1
                elif peek()[1] != ")":
                    raise TemplateUnsupported(f"bad arguments to {name}")
            i += 1
        if len(args) > max_args:
            raise TemplateUnsupported(f"{name} takes at most {max_args} argument(s)")
        filters.append((fn, tuple(args)))
    if i != len(tokens):
        raise TemplateUnsupported(f"unexpected {tokens[i][1]!r} (only accessors and filters are supported)")
    return _Expr(root, literal, tuple(path), tuple(filters), table)


def _lookup(value: Any, path: tuple[Accessor, ...]) -> Any:
    for key in path:
        if isinstance(value, dict):
            value = value.get(key, UNDEFINED) if isinstance(key, str) else value.get(str(key), UNDEFINED)
        elif isinstance(value, list) and isinstance(key, int):
            value = value[key] if -len(value) <= key < len(value) else UNDEFINED
        else:
            return UNDEFINED
        if value is UNDEFINED:
            return UNDEFINED
    return value


class CompiledTemplate:
    """A template compiled once (per discovery config) and rendered per message."""

    __slots__ = ("_parts", "needs_json", "single", "source", "variables")

    def __init__(self, source: str, parts: tuple[str | _Expr, ...]) -> None:
        self.source = source
        self._parts = parts
        self.single = len(parts) == 1 and isinstance(parts[0], _Expr)
        self.needs_json = any(isinstance(p, _Expr) and p.root == "value_json" for p in parts)
        # The command variables (red, green, …) this template uses.
        self.variables = frozenset(p.root for p in parts if isinstance(p, _Expr)
                                   and p.root not in ("value", "value_json", "literal"))

    def render(self, value: Any, value_json: Any = UNDEFINED, variables: dict[str, Any] | None = None) -> Any:
        """Render with ``value`` (the payload text), ``value_json`` (the parsed payload, or UNDEFINED) and the
        command ``variables`` the template was compiled to know (a missing one is undefined).

        Returns the value of a single-expression template, else the rendered text; UNDEFINED when a
        single expression is undefined. Raises TemplateError for a failing filter."""
        if self.single:
            return self._eval(self._parts[0], value, value_json, variables)  # type: ignore[arg-type]
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
            else:
                result = self._eval(part, value, value_json, variables)
                out.append(to_text(result))
        return "".join(out)

    @staticmethod
    def _eval(expr: _Expr, value: Any, value_json: Any, variables: dict[str, Any] | None = None) -> Any:
        if expr.root == "value_json":
            result = _lookup(value_json, expr.path) if value_json is not UNDEFINED else UNDEFINED
        elif expr.root == "value":
            result = _lookup(value, expr.path) if expr.path else value
        elif expr.root == "literal":
            result = expr.literal
        else:
            result = (variables or {}).get(expr.root, UNDEFINED)
            if expr.path:
                result = _lookup(result, expr.path) if result is not UNDEFINED else UNDEFINED
        if expr.table is not None:
            try:
                result = expr.table.get(result, UNDEFINED) if result is not UNDEFINED else UNDEFINED
            except TypeError:  # an object or a list as the key: not in any table
                result = UNDEFINED
        for fn, args in expr.filters:
            result = fn(result, *args)
        return result

    def __repr__(self) -> str:
        return f"CompiledTemplate({self.source!r})"


def compile_template(source: Any, names: Iterable[str] = ()) -> CompiledTemplate:
    """Compile ``source`` or raise :class:`TemplateUnsupported` (never executes anything). ``names``: the
    variables a command template may use besides ``value`` (``red``, ``green``, ``blue`` …)."""
    known = frozenset(names)
    if not isinstance(source, str):
        raise TemplateUnsupported(f"a template must be a string, got {type(source).__name__}")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateUnsupported(f"template of {len(source)} characters is too long")
    if "{%" in source or "{#" in source:
        raise TemplateUnsupported("statements ({% … %}) and comments are not supported")
    parts: list[str | _Expr] = []
    pos = 0
    for match in _BLOCK.finditer(source):
        if match.start() > pos:
            parts.append(source[pos:match.start()])
        parts.append(_parse_expr(match.group(1), known))
        pos = match.end()
    tail = source[pos:]
    if "{{" in tail or "}}" in tail:
        raise TemplateUnsupported("unbalanced {{ }}")
    if tail:
        parts.append(tail)
    # Surrounding whitespace of a single expression is what Jinja would print too, but no device means it.
    if len(parts) > 1 and sum(isinstance(p, _Expr) for p in parts) == 1 and all(
            isinstance(p, _Expr) or not p.strip() for p in parts):
        parts = [p for p in parts if isinstance(p, _Expr)]
    return CompiledTemplate(source, tuple(parts))
