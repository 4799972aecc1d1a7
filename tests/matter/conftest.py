"""Matter tests. The bridge announces itself over mDNS: the tests that start it run only inside a private network
namespace with nothing but loopback (``scripts/test`` makes one), and skip anywhere else, with the reason.

With ``HEARTH_REQUIRE_MATTER=1`` (CI), missing Node.js or sidecar packages fail the tests instead of skipping
them: a machine that should run the bridge and cannot is a failure, not a reason to test less.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mdns.conftest import in_private_namespace, interface_names

SIDECAR = Path(__file__).resolve().parents[2] / "matter"
# Node's version that matter.js 0.17 needs (its engines field).
NODE_MIN = (20, 19)


def node_problem() -> str | None:
    """Why the sidecar cannot run here, or None."""
    node = shutil.which("node")
    if node is None:
        return "no node executable (scripts/test installs Node.js: ensure_matter_deps)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    except ValueError:
        return f"cannot read node --version: {version!r}"
    if (major, minor) < NODE_MIN:
        return f"node {version} is older than {NODE_MIN[0]}.{NODE_MIN[1]} (matter.js 0.17)"
    for package in ("@matter/main", "@project-chip/matter.js"):
        if not (SIDECAR / "node_modules" / package).is_dir():
            return f"{package} is not installed: npm ci --ignore-scripts --prefix matter"
    return None


def need_node() -> None:
    """Skip (or, with HEARTH_REQUIRE_MATTER=1, fail) when Node.js or the sidecar's packages are missing."""
    problem = node_problem()
    if problem is None:
        return
    if os.environ.get("HEARTH_REQUIRE_MATTER") == "1":
        pytest.fail(f"HEARTH_REQUIRE_MATTER=1 but {problem}")
    pytest.skip(problem)


def need_private_namespace() -> None:
    if not in_private_namespace():
        pytest.skip("starts the Matter bridge, which sends mDNS multicast: runs only in a private network namespace "
                    f"with loopback only (interfaces here: {', '.join(interface_names()) or 'none'}); use scripts/test")
