"""Helping a person who mistyped: "did you mean" suggestions, and where a pydantic error points.

Config files and profiles are written by hand. An error that says ``unknown key 'fro'`` is right; one
that adds ``(did you mean 'for'?)`` saves the installer a trip to the reference. To suggest the keys
that *this* table takes, :func:`walk_loc` follows a pydantic error location through the model it came
from (tagged unions, lists, dicts, optional fields) to the model that holds the last key.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["close_matches", "did_you_mean", "model_keys", "walk_loc"]


def close_matches(word: str, candidates: Iterable[str], limit: int = 2) -> list[str]:
    """The candidates that look like ``word``, closest first (difflib's ratio of at least 0.6)."""
    return difflib.get_close_matches(word, sorted(set(candidates)), n=limit, cutoff=0.6)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'for'?)``, or ``""`` when nothing is close; to append to a message."""
    found = close_matches(word, candidates)
    if not found:
        return ""
    return " (did you mean " + " or ".join(repr(f) for f in found) + "?)"


def model_keys(model: type[BaseModel]) -> list[str]:
    """The keys a table of ``model`` takes, as they are written (``for``, not ``for_``)."""
    return [info.alias or name for name, info in model.model_fields.items()]


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` -> X; ``X | None`` -> X."""
    while True:
        if typing.get_origin(tp) is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if _is_union(tp):
            members = [m for m in typing.get_args(tp) if m is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _tag_of(model: Any) -> tuple[str, ...]:
    """The values of a model's ``kind`` literal (the tag of a discriminated union)."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ()
    info = model.model_fields.get("kind")
    if info is None or typing.get_origin(info.annotation) is not typing.Literal:
        return ()
    return tuple(str(v) for v in typing.get_args(info.annotation))


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (info.alias, name):
            return info
    return None


def walk_loc(root: Any, loc: Sequence[Any]) -> tuple[tuple[str | int, ...], type[BaseModel] | None]:
    """Follow a pydantic error location through the type ``root`` (a model, or an annotation such as
    ``list[Condition]``).

    Returns the location as the file writes it (no union tags such as ``state``, no validator wrappers
    such as ``function-after[...]``, aliases rather than field names) and the model whose table holds
    the last key (None when the location leaves the models: a dict of parameters, a scalar)."""
    out: list[str | int] = []
    current: Any = root
    holder: type[BaseModel] | None = None
    for part in loc:
        if isinstance(part, str) and part.startswith("function-"):
            continue
        current = _unwrap(current)
        if _is_union(current) and isinstance(part, str):
            members = typing.get_args(current)
            chosen = next((m for m in members if part in _tag_of(m)), None)
            if chosen is None:
                chosen = next((m for m in members if getattr(m, "__name__", None) == part), None)
            if chosen is not None:
                current = chosen
                continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            holder = current
            info = _field(current, str(part))
            if info is None:
                out.append(part)
                current = None
                continue
            out.append(info.alias or str(part) if isinstance(part, str) else part)
            current = info.annotation
            continue
        holder = None
        origin = typing.get_origin(current)
        args = typing.get_args(current)
        out.append(part)
        if origin in (list, tuple, set, frozenset) and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            current = None
    return tuple(out), holder
