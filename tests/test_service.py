"""``hearth service``: the systemd unit it writes passes ``systemd-analyze verify`` and has the hardening the
issue asks for; install/uninstall below a temporary root (never this machine's systemd)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.service import ServiceOptions, install_steps, problems, unit_text

SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or ("/usr/bin/systemd-analyze"
                                                       if os.path.exists("/usr/bin/systemd-analyze") else None)


def _unit_lines(text: str) -> dict[str, list[str]]:
    """key -> values, over the whole file (comments skipped)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def _printed_unit(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["service", "install", "--print", *args]) == 0
    return capsys.readouterr().out


def test_the_unit_has_what_the_issue_asks_for(capsys: pytest.CaptureFixture[str]) -> None:
    keys = _unit_lines(_printed_unit(capsys, "--group", "bluetooth"))
    assert keys["Type"] == ["notify"] and keys["WatchdogSec"] == ["30s"] and keys["Restart"] == ["on-failure"]
    assert keys["User"] == ["hearth"] and keys["StateDirectory"] == ["hearth"]
    assert keys["ProtectSystem"] == ["strict"] and keys["ProtectHome"] == ["yes"] and keys["PrivateTmp"] == ["yes"]
    assert keys["NoNewPrivileges"] == ["yes"]
    assert keys["AmbientCapabilities"] == ["CAP_NET_RAW CAP_NET_ADMIN"]
    assert keys["CapabilityBoundingSet"] == ["CAP_NET_RAW CAP_NET_ADMIN"]
    assert keys["StandardOutput"] == ["journal"] and keys["StandardError"] == ["journal"]
    assert keys["SupplementaryGroups"] == ["bluetooth"]
    assert keys["Environment"] == ["HEARTH_DATA_DIR=/var/lib/hearth PYTHONUNBUFFERED=1"]
    assert keys["ExecStart"] == [f"{sys.executable} -m gateway.cli run --config /etc/hearth/config.toml"]
    assert keys["WantedBy"] == ["multi-user.target"]


def test_options_change_the_unit(capsys: pytest.CaptureFixture[str]) -> None:
    keys = _unit_lines(_printed_unit(capsys, "--user", "house", "--no-config", "--watchdog-s", "60", "--group", "",
                                     "--name", "hearth-test"))
    assert keys["User"] == ["house"] and keys["Group"] == ["house"] and keys["WatchdogSec"] == ["60s"]
    assert keys["ExecStart"] == [f"{sys.executable} -m gateway.cli run"]
    assert keys["SyslogIdentifier"] == ["hearth-test"]


@pytest.mark.parametrize("extra", [[], ["--no-config", "--watchdog-s", "5", "--group", "audio"]])
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                extra: list[str]) -> None:
    if SYSTEMD_ANALYZE is None:
        if os.environ.get("HEARTH_REQUIRE_SYSTEMD") == "1":
            pytest.fail("systemd-analyze is missing (apt-get install systemd), and HEARTH_REQUIRE_SYSTEMD=1")
        pytest.skip("systemd-analyze is not installed (the systemd package)")
    unit = tmp_path / "hearth.service"
    unit.write_text(_printed_unit(capsys, *extra))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60)
    # verify exits 0 on an unknown key or a bad value (it says so and ignores the line): its words about our
    # file count as failures too. Words about other units of this machine do not.
    ours = [line for line in (done.stdout + done.stderr).splitlines() if "hearth.service" in line]
    assert done.returncode == 0 and ours == [], done.stdout + done.stderr


def test_verify_would_catch_a_broken_unit(tmp_path: Path) -> None:
    """The check above is not vacuous: a misspelt key is reported."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "hearth.service"
    unit.write_text(unit_text(ServiceOptions()).replace("WatchdogSec=", "WatchdogSek="))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert "WatchdogSek" in done.stdout + done.stderr


def test_a_python_in_a_home_directory_is_refused() -> None:
    found = problems(ServiceOptions(python=Path("/home/pi/.local/pipx/venvs/hearth-gateway/bin/python")))
    assert len(found) == 1 and "ProtectHome=yes" in found[0] and "/opt/hearth" in found[0]
    assert problems(ServiceOptions(python=Path("/opt/hearth/bin/python"))) == []


def test_install_and_uninstall_below_a_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root"
    steps = install_steps(ServiceOptions(root=root))
    assert [step.what for step in steps][:2] == ["write", "write"]  # no useradd, no daemon-reload below a root
    assert main(["service", "install", "--dry-run", "--root", str(root)]) == 0
    assert not root.exists()  # a dry run touches nothing
    assert "would run: systemctl --root=" in capsys.readouterr().out

    if shutil.which("systemctl") is None:
        pytest.skip("systemctl is not installed: the rest enables the unit with systemctl --root")
    assert main(["service", "install", "--root", str(root)]) == 0
    unit = root / "etc/systemd/system/hearth.service"
    assert unit.read_text() == unit_text(ServiceOptions(root=root, groups=_groups_of(unit)))
    assert (root / "etc/systemd/system/multi-user.target.wants/hearth.service").is_symlink()
    config = root / "etc/hearth/config.toml"
    assert config.stat().st_mode & 0o777 == 0o640
    config.write_text("[mqtt]\nport = 1884\n")
    assert main(["service", "install", "--root", str(root)]) == 0  # again: the owner's config is kept
    assert config.read_text() == "[mqtt]\nport = 1884\n"

    assert main(["service", "uninstall", "--root", str(root)]) == 0
    assert not unit.exists()
    assert not (root / "etc/systemd/system/multi-user.target.wants/hearth.service").exists()
    assert config.exists()  # the house's settings stay
    capsys.readouterr()
    assert main(["service", "uninstall", "--root", str(root)]) == 0
    assert "not installed" in capsys.readouterr().err


def _groups_of(unit: Path) -> tuple[str, ...]:
    values = _unit_lines(unit.read_text()).get("SupplementaryGroups", [""])
    return tuple(values[0].split())


def test_install_for_real_needs_root(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["service", "install"]) == 1
    assert "run it as root" in capsys.readouterr().err
