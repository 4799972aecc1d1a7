"""Where a key sits in a TOML file: tomllib keeps no positions, so errors would say *what* is wrong but
not *where*. This reads the text once and maps every key path (with array-of-tables indices) to the
line that writes it, so config and profile errors can name ``file:line:key``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*((?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+))*)\s*=")
_PART = re.compile(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)")

Path = tuple[str | int, ...]


def _parts(dotted: str) -> list[str]:
    return [m.group(1) if m.group(1) is not None else m.group(2) if m.group(2) is not None else m.group(3)
            for m in _PART.finditer(dotted)]


class TomlLocator:
    def __init__(self, text: str) -> None:
        self.lines: dict[Path, int] = {}
        arrays: dict[Path, int] = {}  # array-of-tables path -> index of its last element
        current: Path = ()
        in_multiline = False
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
            key = _KEY.match(line)
            if key:
                path = (*current, *_parts(key.group(1)))
                self.lines.setdefault(path, number)
                rest = line[key.end():]
                if rest.count('"""') % 2 == 1 or rest.count("'''") % 2 == 1:
                    in_multiline = True

    def line_of(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc`` or of its nearest written ancestor (a value inside an inline table)."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None
