"""The package a user installs carries everything it needs: every subpackage, the profiles, the entry points."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_python_package_in_the_tree_is_listed_for_installation() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("gateway", "adapters")
        for init in (ROOT / top).rglob("__init__.py")
    } | {"gateway.profiles"}
    assert on_disk == listed


def test_the_installed_package_carries_the_profiles(tmp_path: Path) -> None:
    # Run away from the source tree, so that what is imported is what pip installed.
    code = "import importlib.resources as r; print(r.files('gateway.profiles').joinpath('README.md').is_file())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "True"


def test_import_gateway_stays_light_and_has_no_cycles() -> None:
    # A fresh interpreter: importing the SDK must not drag in MQTT, HTTP, BLE or mDNS libraries.
    code = (
        "import sys, gateway.sdk, gateway.hub, gateway.model;"
        "heavy = [m for m in ('paho', 'aiohttp', 'bleak', 'zeroconf') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_hearth_version_runs_from_the_installed_console_script() -> None:
    script = Path(sys.executable).parent / "hearth"
    out = subprocess.run([str(script), "version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("hearth ")
