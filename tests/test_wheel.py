"""The distribution a user installs: ``python -m build`` makes the sdist and, from it, the wheel (as CI does);
``twine check`` passes their metadata; the wheel, installed into a fresh venv, runs ``hearth version`` and
``hearth doctor --json``.

Offline on purpose (CI runs the tests in a network namespace with only loopback): the build runs with
``--no-isolation`` on this venv's setuptools, and the fresh venv gets Hearth's dependencies from this venv
through a folder of links to them, every entry of this venv's site-packages *except Hearth's own files* (read
from its installed RECORD, editable or not). The wheel goes in with ``pip install --no-deps``, and ``pip check``
then proves that the wheel's declared dependencies are all satisfied by what the fresh venv sees. What runs is
the wheel's code: the test checks where ``gateway`` is imported from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

from gateway import __version__

ROOT = Path(__file__).resolve().parents[1]
# A build of the sdist and the wheel, a pip install: tens of seconds here, minutes on a loaded CI runner.
COMMAND_TIMEOUT_S = 600.0
# What the sdist needs from the tree (pyproject's packages, package data, README); the rest (the venv, the
# Node modules of other tests, other people's caches) stays out of the copy.
SOURCE_ITEMS = ("pyproject.toml", "README.md", "config.example.toml", "gateway", "adapters", "profiles")

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-5000:]}\n"
                             f"{done.stderr[-5000:]}")
    return done


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "*.pyc")
    for item in SOURCE_ITEMS:
        path = ROOT / item
        if path.is_dir():
            shutil.copytree(path, source / item, ignore=ignore)
        elif path.exists():
            shutil.copy2(path, source / item)
    out = work / "dist"
    # No --sdist/--wheel: build makes the sdist, then the wheel from the unpacked sdist (so a file missing from
    # the sdist fails here, as it would for a user building from it).
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)], cwd=work)
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0], "work": work}


def test_wheel_and_sdist_are_named_and_pass_twine_check(dist: dict[str, Path]) -> None:
    assert dist["wheel"].name == f"hearth_gateway-{__version__}-py3-none-any.whl"
    assert dist["sdist"].name == f"hearth_gateway-{__version__}.tar.gz"
    done = _run([sys.executable, "-m", "twine", "check", "--strict", str(dist["wheel"]), str(dist["sdist"])],
                cwd=dist["work"])
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_the_wheel_carries_the_data_and_entry_points(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        entry_points = wheel.read(f"hearth_gateway-{__version__}.dist-info/entry_points.txt").decode()
    assert "gateway/py.typed" in names and "gateway/doctor.py" in names and "gateway/service.py" in names
    assert any(n.startswith("gateway/profiles/") and n.endswith(".toml") for n in names)
    assert any(n.startswith("gateway/web/") for n in names)
    assert any(n.startswith("adapters/definitions/definitions/") for n in names)
    assert "hearth = gateway.cli:main" in entry_points and "[hearth.adapters]" in entry_points
    with tarfile.open(dist["sdist"]) as sdist:
        assert f"hearth_gateway-{__version__}/pyproject.toml" in sdist.getnames()


def _dependency_links(target: Path) -> Path:
    """A folder of links to this venv's site-packages entries, Hearth's own left out."""
    site = Path(sysconfig.get_path("purelib"))
    ours = {Path(str(f)).parts[0] for f in distribution("hearth-gateway").files or []}
    ours |= {"gateway", "adapters"}  # an editable install's RECORD does not list the source folders
    target.mkdir()
    for entry in site.iterdir():
        # (and its metadata whatever the RECORD found says: from a checkout, importlib may find the source tree's
        # egg-info first, and the installed dist-info left in would make pip skip the wheel as installed)
        if entry.name in ours or entry.name.endswith(".pth") or entry.name == "__pycache__" \
                or entry.name.startswith(("hearth_gateway", "__editable__.hearth_gateway")):
            continue
        (target / entry.name).symlink_to(entry)
    return target


@pytest.fixture(scope="module")
def fresh_venv(dist: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False, clear=True, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                        cwd=root).stdout.strip())
    (purelib / "zz_hearth_test_dependencies.pth").write_text(str(_dependency_links(root / "deps")) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--no-deps", "-q",
          "--disable-pip-version-check", str(dist["wheel"])], cwd=root)
    return env_dir


def _fresh_env(env_dir: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "HEARTH_"))}
    env.update({"VIRTUAL_ENV": str(env_dir), "PATH": f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
                "HOME": str(home), "XDG_DATA_HOME": str(home / "data")})
    return env


def test_the_wheel_runs_from_a_fresh_venv(fresh_venv: Path, tmp_path: Path) -> None:
    env = _fresh_env(fresh_venv, tmp_path)
    python, hearth = fresh_venv / "bin" / "python", fresh_venv / "bin" / "hearth"
    where = _run([str(python), "-c", "import gateway, adapters; print(gateway.__file__); print(adapters.__file__)"],
                 cwd=tmp_path, env=env).stdout.split()
    site = str(fresh_venv)
    assert all(path.startswith(site) for path in where), where  # the wheel's code, not the checkout's
    _run([sys.executable, "-m", "pip", "--python", str(python), "check", "--disable-pip-version-check"],
         cwd=tmp_path, env=env)

    assert _run([str(hearth), "version"], cwd=tmp_path, env=env).stdout.strip() == f"hearth {__version__}"

    config = tmp_path / "config.toml"
    # Nothing on the network: no MQTT, no mDNS. The doctor still runs every check it has.
    config.write_text(f'[gateway]\ndata_dir = "{tmp_path / "house"}"\n\n[mqtt]\nenabled = false\n\n'
                      '[mdns]\nenabled = false\n')
    done = subprocess.run([str(hearth), "doctor", "--json", "--config", str(config)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert done.returncode in (0, 1, 2) and "Traceback" not in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert report["exit_code"] == done.returncode and report["hearth"] == __version__
    checks = {check["id"]: check for check in report["checks"]}
    assert checks["config"]["status"] == "ok", checks["config"]
    assert set(checks) == {"config", "broker", "nodelay", "ble", "mdns", "clock", "disk", "database", "exposure",
                           "versions"}
    assert checks["config"]["status"] == "ok" and checks["broker"]["status"] == "ok"
    assert checks["versions"]["details"]["executable"].startswith(site)
    assert {"zigbee2mqtt", "ble", "definitions"} <= {p["name"] for p in checks["versions"]["details"]["plugins"]}
    assert all(p.get("problem") is None for p in checks["versions"]["details"]["plugins"])


def test_the_wheel_backs_up_the_demos_house_while_it_runs_and_restores_it(fresh_venv: Path, tmp_path: Path) -> None:
    """Issue 22's acceptance, from the wheel: ``hearth demo`` runs, ``hearth backup`` copies it while it runs,
    ``hearth restore`` brings it back into an empty data directory, and its devices and login are there."""
    import sqlite3
    import time

    from gateway.sim import demo_house
    from tests.broker import free_port

    env = _fresh_env(fresh_venv, tmp_path)
    hearth = str(fresh_venv / "bin" / "hearth")
    data = tmp_path / "demo"
    demo = subprocess.Popen([hearth, "demo", "--speed", "600", "--port", str(free_port()), "--data-dir", str(data)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        assert demo.stdout is not None
        line = ""
        for _ in range(200):  # its banner: bounded in lines, and by the test run's timeout
            line = demo.stdout.readline()
            if not line or "web UI:" in line:
                break
        assert "web UI:" in line, line
        time.sleep(4.0)  # 40 simulated minutes of the house, a commit every 5 real seconds
        config = tmp_path / "demo.toml"
        config.write_text(f'[gateway]\ndata_dir = "{data}"\n\n[store]\npath = "{data / "demo.db"}"\n')
        archive = tmp_path / "demo.tar.gz"
        done = _run([hearth, "backup", str(archive), "--config", str(config)], cwd=tmp_path, env=env)
        assert archive.is_file(), done.stdout
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    restored = tmp_path / "restored"
    _run([hearth, "restore", str(archive), "--config", str(tmp_path / "new.toml"), "--data-dir", str(restored)],
         cwd=tmp_path, env=env)
    conn = sqlite3.connect(restored / "demo.db")
    try:
        devices = conn.execute("SELECT count(*) FROM devices").fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    assert devices == len(demo_house().devices)
    assert (restored / "demo-token").read_text().strip().startswith("hth_")
