"""``hearth replay --profile``: the installer's dry run from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.scenes.house import config_text, normal_day


def test_dry_run_of_a_recorded_day_from_the_command_line(tmp_path: Path) -> None:
    day = normal_day()
    day.at("02:10", "hall/front door", {"contact": False}, day_offset=1)
    day.end("03:00", day_offset=1)
    capture = day.write(tmp_path / "day.jsonl")
    config = tmp_path / "house.toml"
    config.write_text(config_text(profiles='[[profiles]]\nuse = "elderly-monitoring"\n'
                                           '[profiles.params]\ncontacts = ["daughter", "neighbour"]\n'))
    hearth = Path(sys.executable).parent / "hearth"
    started = time.monotonic()
    out = subprocess.run([str(hearth), "replay", str(capture), "--config", str(config), "--profile",
                          "elderly-monitoring", "--json"], capture_output=True, text=True, timeout=120, check=True)
    elapsed = time.monotonic() - started
    result = json.loads(out.stdout)
    assert [(a["t"], a["scene"]) for a in result["alerts"]] == [
        ("2026-03-11T02:10:00.000Z", "elderly-monitoring.night-door")]
    assert [a["command"] for a in result["actions"]] == ["set"]
    assert result["errors"] == []
    assert elapsed < 60  # a day of traffic replays in seconds (generous bound for a loaded CI machine)

    table = subprocess.run([str(hearth), "replay", str(capture), "--config", str(config)],
                           capture_output=True, text=True, timeout=120, check=True).stdout
    assert "ALERT warning elderly-monitoring.night-door: hall/front door opened at 02:10." in table
    assert "9 scenes: 1 actions, 1 alerts" in table


def test_a_profile_with_errors_stops_the_replay_with_file_line_key(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('name = "broken"\nversion = 1\n\n[[scenes]]\nid = "x"\nname = "X"\n'
                      'triggers = [{ kind = "time", at = "25:00" }]\n'
                      'actions = [{ kind = "notify", to = "log", message = "hi" }]\n')
    capture = normal_day().write(tmp_path / "day.jsonl")
    hearth = Path(sys.executable).parent / "hearth"
    out = subprocess.run([str(hearth), "replay", str(capture), "--profile", str(broken)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2
    assert f"{broken}:7: scenes.0.triggers.0.at:" in out.stderr
