"""A fresh virtual environment that sees this Hearth, for installing plugin packages as a maker would.

Offline and fast: the venv is made without pip (this interpreter's pip installs into it with ``--python``), and
a ``.pth`` file makes this interpreter's site-packages (Hearth, pytest, mypy, setuptools) visible in it, after
the venv's own. Plugin packages are then installed with ``pip install --no-deps --no-build-isolation`` from a
copy of their folder (the build writes ``*.egg-info`` and ``build/`` next to the sources: not into the repo).
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import gateway

# A pip install of a small package, or a plugin's test run: seconds; minutes on a loaded CI runner.
COMMAND_TIMEOUT_S = 600.0


class FreshVenv:
    def __init__(self, root: Path) -> None:
        self.root = root
        venv.EnvBuilder(with_pip=False, clear=True, symlinks=os.name != "nt").create(root)
        self.python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        purelib = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                 check=True, capture_output=True, text=True, timeout=60).stdout.strip()
        self.site_packages = Path(purelib)
        ours = [sysconfig.get_path("purelib"), *site.getsitepackages()]
        lines = [f"import site; site.addsitedir({path!r})" for path in dict.fromkeys(ours)]
        # Where `gateway` is imported from here (the repository, in a checkout): after site-packages, so that
        # the installed distribution's metadata (entry points) wins, and so that mypy finds the sources of an
        # editable install too.
        lines.append(str(Path(gateway.__file__).resolve().parent.parent))
        (self.site_packages / "zz_hearth_parent_env.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV"))}
        env.update({"VIRTUAL_ENV": str(self.root), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
                    "PATH": f"{self.python.parent}{os.pathsep}{env.get('PATH', '')}",
                    "PYTHONDONTWRITEBYTECODE": "1", "MYPY_CACHE_DIR": str(self.root / "mypy-cache")})
        env.update(extra or {})
        return env

    def install(self, *package_dirs: Path, work: Path) -> list[Path]:
        """Copy each package folder under ``work`` and pip-install the copies (offline, no dependencies)."""
        copies = []
        for package in package_dirs:
            copy = work / package.name
            shutil.copytree(package, copy, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__", ".*cache"))
            copies.append(copy)
        self.run([sys.executable, "-m", "pip", "--python", str(self.python), "install", "--no-index", "--no-deps",
                  "--no-build-isolation", "-q", *map(str, copies)], cwd=work)
        return copies

    def run(self, args: list[str], cwd: Path, check: bool = True,
            extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(args, cwd=cwd, env=self.env(extra_env), capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} (in {cwd}) exited {done.returncode}:\n"
                                 f"{done.stdout[-6000:]}\n{done.stderr[-6000:]}")
        return done

    def python_run(self, args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([str(self.python), *args], cwd=cwd, check=check)
