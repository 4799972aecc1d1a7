"""Where a key sits in a TOML file: tomllib keeps no positions, so errors would say *what* is wrong but
not *where*. This reads the text once and maps every key path (with array-of-tables indices) to the
line that writes it, so config and profile errors can name ``file:line:key``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from typing import Any

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*((?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=")
_PART = re.compile(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)")

Path = tuple[str | int, ...]


def _parts(dotted: str) -> list[str]:
    return [m.group(1) if m.group(1) is not None else m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PART.finditer(dotted)]


def _top_level_keys(inline: str) -> list[str]:
    """Keys of the outermost inline table on a line: ``{ kind = "x", selector = { a = 1 } }`` ->
    ``["kind", "selector"]``."""
    keys: list[str] = []
    depth = 0
    quote: str | None = None
    token = ""
    for char in inline:
        if quote:
            if char == quote:
                quote = None
            continue
        if char in "\"'":
            quote = char
        elif char in "{[":
            depth += 1
            token = ""
        elif char in "}]":
            depth -= 1
        elif char == "," and depth == 1:
            token = ""
        elif char == "=" and depth == 1:
            name = token.strip()
            if re.fullmatch(r"[A-Za-z0-9_-]+", name):
                keys.append(name)
            token = ""
        elif depth == 1:
            token += char
    return keys


class TomlLocator:
    """The line of each key of a TOML text, so that an error can say ``file:line: key`` (for an adapter
    that checks files of its own)."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        arrays: dict[Path, int] = {}  # array-of-tables path -> index of its last element
        current: Path = ()
        in_multiline = False
        array: Path | None = None  # inside a multi-line array of inline tables written at this path
        array_index = 0
        for number, line in enumerate(text.splitlines(), start=1):
            # Skip the insides of multi-line strings: their lines are not keys.
            if in_multiline:
                if line.count('"""') % 2 == 1 or line.count("'''") % 2 == 1:
                    in_multiline = False
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                names = _parts(header.group(2))
                resolved: list[str | int] = []
                for i, name in enumerate(names):
                    resolved.append(name)
                    is_last = i == len(names) - 1
                    if not is_last and tuple(resolved) in arrays:
                        resolved.append(arrays[tuple(resolved)])
                path = tuple(resolved)
                if header.group(1) == "[[":
                    index = arrays.get(path, -1) + 1
                    arrays[path] = index
                    self.lines.setdefault(path, number)
                    path = (*path, index)
                self.lines.setdefault(path, number)
                current = path
                continue
            if array is not None:
                stripped = line.strip()
                if stripped.startswith("]"):
                    array = None
                    continue
                if stripped.startswith("{"):
                    # One inline table per line, the way profiles write triggers and actions.
                    element = (*array, array_index)
                    array_index += 1
                    self.lines.setdefault(element, number)
                    for name in _top_level_keys(stripped):
                        self.lines.setdefault((*element, name), number)
                continue
            key = _KEY.match(line)
            if key:
                path = (*current, *_parts(key.group(1)))
                self.lines.setdefault(path, number)
                rest = line[key.end():]
                if rest.count('"""') % 2 == 1 or rest.count("'''") % 2 == 1:
                    in_multiline = True
                elif rest.strip().startswith("[") and rest.count("[") > rest.count("]"):
                    array, array_index = path, 0

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc`` or of its nearest written ancestor (a value inside an inline table)."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


# Arrays and inline tables nested deeper than this are refused before parsing: nothing Hearth reads needs
# more than a handful of levels, and tomllib recurses per level (5,000 '[' exhausted Python's stack).
MAX_TOML_NESTING = 64


def loads_toml(text: str) -> dict[str, Any]:
    """:func:`tomllib.loads`, except that nesting deeper than :data:`MAX_TOML_NESTING` is a
    ``tomllib.TOMLDecodeError`` naming its line, never a RecursionError."""
    depth = 0
    quote: str | None = None
    line = 1
    for char in text:  # a rough scan (no multi-line strings): enough to find runaway nesting
        if char == "\n":
            line += 1
            quote = None if quote in ('"', "'") else quote
        elif quote is not None:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            quote = "\n"  # a comment, to the end of the line
        elif char in "[{":
            depth += 1
            if depth > MAX_TOML_NESTING:
                raise tomllib.TOMLDecodeError(
                    f"arrays or tables nested more than {MAX_TOML_NESTING} levels deep (at line {line})")
        elif char in "]}":
            depth = max(0, depth - 1)
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("arrays or tables nested too deeply to read") from None
