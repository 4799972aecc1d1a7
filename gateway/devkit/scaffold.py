"""``hearth plugin new NAME``: a pip-installable adapter plugin package to start from.

The package (``hearth-NAME/``) is written from the template shipped with the gateway (``gateway/devkit/template/``,
package data): ``pyproject.toml`` with the ``hearth.adapters`` entry point, ``src/hearth_NAME/`` with a pure codec
and a thin adapter (``requires_sdk``), a capture in ``src/hearth_NAME/captures/`` (where ``hearth plugin check``
looks for a plugin's own captures), tests that use the test kit (:mod:`gateway.testing`), and a README. What it
writes passes ``ruff`` and ``mypy --strict`` and its tests pass as generated.

Template files end in ``.tmpl`` (so that neither ruff, nor pytest, nor mypy takes them for the gateway's own);
in their names and text, ``{{name}}`` is the plugin's name, ``{{package}}`` its import package, ``{{dist}}`` its
distribution, ``{{Class}}`` the prefix of its class names; a folder named ``__package__`` is the import package.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TextIO

__all__ = ["BUILT_IN_ADAPTERS", "ScaffoldError", "builtin_adapter_names", "check_name", "create", "run"]

# The gateway's own adapters (its hearth.adapters entry points), in case its metadata cannot be read.
BUILT_IN_ADAPTERS = frozenset({"zigbee2mqtt", "homeassistant", "tasmota", "shelly", "homie", "ble_mqtt", "ble",
                               "definitions", "mdns"})
# Names a plugin cannot take: they would shadow the gateway's own packages or config sections.
_RESERVED = frozenset({"hearth", "gateway", "adapters", "test", "tests", "mqtt", "api", "store", "scenes"})
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Long enough for a brand and a product line; short enough that the generated code stays within its line length.
MAX_NAME_LENGTH = 20


class ScaffoldError(Exception):
    """The package cannot be made (a bad name, a folder that is not empty); the message says why."""


def builtin_adapter_names() -> frozenset[str]:
    """The adapters the gateway ships (its own distribution's ``hearth.adapters`` entry points)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        entry_points = distribution("hearth-gateway").entry_points
    except PackageNotFoundError:
        return BUILT_IN_ADAPTERS
    return BUILT_IN_ADAPTERS | {ep.name for ep in entry_points if ep.group == "hearth.adapters"}


def check_name(name: str) -> None:
    """Raise :class:`ScaffoldError` unless ``name`` can name a plugin: a lowercase Python identifier (it is the
    adapter's name, its config section, its devices' id prefix and part of its package's name), not a keyword,
    not a built-in adapter's name."""
    if not _NAME.match(name):
        hint = name.lower().replace("-", "_").replace(" ", "_")
        better = f" (such as {hint!r})" if _NAME.match(hint) else ""
        raise ScaffoldError(f"{name!r} cannot name a plugin: use lowercase letters, digits and '_', starting with a "
                            f"letter{better}; it becomes the adapter's name, its [adapters.NAME] section and the "
                            "prefix of its device ids")
    if len(name) > MAX_NAME_LENGTH:
        raise ScaffoldError(f"{name!r} is longer than {MAX_NAME_LENGTH} characters")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ScaffoldError(f"{name!r} is a Python keyword")
    if name in builtin_adapter_names():
        raise ScaffoldError(f"{name!r} is the name of one of the gateway's own adapters: pick another "
                            f"(built in: {', '.join(sorted(builtin_adapter_names()))})")
    if name in _RESERVED:
        raise ScaffoldError(f"{name!r} is reserved by the gateway: pick another")


def _template() -> Traversable:
    return files("gateway.devkit") / "template"


def _files(folder: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    found = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__":
            continue
        if entry.is_dir():
            found += _files(entry, (*prefix, entry.name))
        elif entry.name.endswith(".tmpl"):
            found.append(((*prefix, entry.name), entry))
    return found


def _substitutions(name: str) -> dict[str, str]:
    return {"{{name}}": name, "{{package}}": f"hearth_{name}", "{{dist}}": f"hearth-{name.replace('_', '-')}",
            "{{Class}}": "".join(part.capitalize() for part in name.split("_") if part)}


def _fill(text: str, substitutions: dict[str, str]) -> str:
    for placeholder, value in substitutions.items():
        text = text.replace(placeholder, value)
    return text


def _target_path(parts: tuple[str, ...], substitutions: dict[str, str]) -> Path:
    names = []
    for part in parts:
        part = substitutions["{{package}}"] if part == "__package__" else _fill(part, substitutions)
        part = part.removesuffix(".tmpl")
        if part == "gitignore":  # a dot-file would be left out of the gateway's own package data
            part = ".gitignore"
        names.append(part)
    return Path(*names)


def create(name: str, directory: Path, *, force: bool = False) -> Path:
    """Write the package for plugin ``name`` into ``directory/hearth-NAME`` and return that folder. An existing,
    non-empty folder is left alone unless ``force`` (then the template's files are written over, others kept)."""
    check_name(name)
    substitutions = _substitutions(name)
    target = directory / substitutions["{{dist}}"]
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ScaffoldError(f"{target} exists and is not empty: nothing was written (--force writes the "
                            "template's files over what is there)")
    templates = _files(_template())
    if not templates:
        raise ScaffoldError("the plugin template is missing from this installation of the gateway")
    for parts, source in templates:
        path = target / _target_path(parts, substitutions)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_fill(source.read_text(encoding="utf-8"), substitutions), encoding="utf-8")
    return target


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``hearth plugin new NAME [--dir DIR] [--force]``: 0 when written, 1 when not (the reason on stderr)."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        target = create(args.name, Path(args.dir), force=bool(getattr(args, "force", False)))
    except (ScaffoldError, OSError) as error:
        print(f"hearth plugin new: {error}", file=err)
        return 1
    package = f"hearth_{args.name}"
    print(f"created {target}/ (the plugin '{args.name}': package {package}, entry point hearth.adapters)\n"
          f"next:\n"
          f"  cd {target}\n"
          f"  python -m venv .venv && . .venv/bin/activate && pip install -e '.[test]'\n"
          f"  pytest                                  # the codec, the adapter on a real hub, the capture replayed\n"
          f"  hearth replay src/{package}/captures/{args.name}.jsonl\n"
          f"  hearth plugin check {args.name}\n"
          f"then make src/{package}/codec.py speak your devices' protocol (see README.md)", file=out)
    return 0
