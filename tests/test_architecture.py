"""The house is built the way it asks makers to build (issue 19), checked on the source, not by importing it.

* Each package under ``adapters/`` is what a third-party plugin would be: from the core it imports only
  ``gateway.sdk``, and from ``adapters`` only itself (never another adapter package).
* Nothing under ``gateway/`` imports ``adapters``: the core finds adapters by entry point (the supervisor's
  discovery), and what it needs from one is a hook of the SDK that the adapter implements.
* The modules of ``gateway.api`` import each other without a cycle: shared app keys and helpers live in modules
  of their own, and only the package's entry imports the module that builds the app.

Every import counts, wherever it is: top level, inside a function (lazy) or under ``TYPE_CHECKING``. A lazy
import hides a cycle from the import machinery, not from the reader.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = ROOT / "adapters"
GATEWAY = ROOT / "gateway"
_DYNAMIC_IMPORTS = frozenset({"import_module", "__import__"})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, name: str | None = None) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for every module ``path`` imports; ``from a import b`` yields ``a.b`` as well as ``a``
    (``b`` may be a module), relative imports resolved; ``importlib.import_module("x")`` with a literal too."""
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if called in _DYNAMIC_IMPORTS:
                yield node.lineno, node.args[0].value


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def adapter_packages() -> list[Path]:
    return sorted(p.parent for p in ADAPTERS.glob("*/__init__.py"))


def test_every_adapter_is_a_package_of_its_own() -> None:
    packages = adapter_packages()
    assert packages, "no adapter packages found"
    loose = sorted(p.name for p in ADAPTERS.glob("*.py") if p.name != "__init__.py")
    assert not loose, f"adapter modules outside a package: {loose}"
    without_readme = [p.name for p in packages if not (p / "README.md").is_file()]
    assert not without_readme, f"adapter packages without a README.md (what it reads, its fixtures and tests): "\
                               f"{without_readme}"


@pytest.mark.parametrize("package", adapter_packages(), ids=lambda p: p.name)
def test_adapter_imports_only_the_sdk_and_itself(package: Path) -> None:
    own = f"adapters.{package.name}"
    wrong = []
    for path in sorted(package.rglob("*.py")):
        for line, module in imported_modules(path):
            if _within(module, "gateway") and module != "gateway" and not _within(module, "gateway.sdk"):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} (the core is reached through gateway.sdk)")
            elif _within(module, "adapters") and module != "adapters" and not _within(module, own):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} (another adapter package)")
    assert not wrong, "\n".join(wrong)


def test_the_core_does_not_import_adapters() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line}: {module}"
             for path in sorted(GATEWAY.rglob("*.py"))
             for line, module in imported_modules(path) if _within(module, "adapters")]
    assert not wrong, "the core finds adapters by entry point, not by import:\n" + "\n".join(wrong)


def _api_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in (GATEWAY / "api").rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for _line, module in imported_modules(path):
            if module in modules and module != name:
                graph[name].add(module)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_api_modules_import_each_other_without_a_cycle() -> None:
    cycle = _cycle(_api_graph())
    assert cycle is None, "import cycle in gateway.api: " + " -> ".join(cycle or [])


def test_only_the_entry_imports_the_module_that_builds_the_app() -> None:
    importers = sorted(name for name, imports in _api_graph().items() if "gateway.api.app" in imports)
    assert importers in ([], ["gateway.api"]), f"modules of gateway.api that import gateway.api.app: {importers}"


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    # Lazy, relative, TYPE_CHECKING and importlib imports are all seen; a cycle is found with its path.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "import importlib\n"
        "if TYPE_CHECKING:\n    from gateway.hub import Hub\n"
        "from . import sibling\n"
        "def later():\n    from adapters.ble.decoders import Advertisement\n"
        "    importlib.import_module('adapters.homie.codec')\n",
        encoding="utf-8")
    imports = {module for _, module in imported_modules(probe, "adapters.acme.probe")}
    assert {"gateway.hub", "adapters.acme.sibling", "adapters.ble.decoders", "adapters.homie.codec"} <= imports
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
