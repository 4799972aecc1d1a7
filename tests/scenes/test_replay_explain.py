"""``hearth replay --profile``, the dry run that explains itself: traces of every scene run (text and
``--json``), ``--explain SCENE [--at TIME]``, ``--strict``, and the warnings about the house
(issue 16, "The dry run explains itself")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.cli import main
from tests.scenes.house import config_text, device_id, normal_day

PROFILES = '[[profiles]]\nuse = "elderly-monitoring"\n[profiles.params]\ncontacts = ["daughter", "neighbour"]\n'


@pytest.fixture
def house(tmp_path: Path) -> tuple[Path, Path]:
    """A normal day, plus: the front door opened at 12:00 (day: the night-door scene's time condition
    fails), at 02:10 the next night (it runs and acts), and the living room cooling to 15 °C at 20:00."""
    day = normal_day()
    day.at("12:00", "hall/front door", {"contact": False})  # Zigbee2MQTT: contact false = open
    day.at("12:01", "hall/front door", {"contact": True})
    day.motion("12:02", "hall")
    day.at("20:00", "living/climate", {"temperature": 15.0})
    day.at("02:10", "hall/front door", {"contact": False}, day_offset=1)
    day.end("03:00", day_offset=1)
    capture = day.write(tmp_path / "day.jsonl")
    config = tmp_path / "house.toml"
    config.write_text(config_text(profiles=PROFILES))
    return capture, config


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------------ traces


def test_json_has_a_trace_of_every_run_with_device_names(capsys: pytest.CaptureFixture[str],
                                                         house: tuple[Path, Path]) -> None:
    capture, config = house
    code, out, _ = run(capsys, str(capture), "--config", str(config), "--json")
    assert code == 0
    result = json.loads(out)
    door = device_id("hall/front door")
    runs = [t for t in result["traces"] if t["scene"] == "elderly-monitoring.night-door"]
    assert [(t["t"], t["result"]) for t in runs] == [("2026-03-10T12:00:00.000Z", "conditions not met"),
                                                    ("2026-03-11T02:10:00.000Z", "done")]
    day_run, night_run = runs
    # The one that did not run its actions: which condition was false, with what it saw.
    assert day_run["trigger"]["device_id"] == door
    assert day_run["conditions"][0] == {"kind": "time", "result": False, "now": "12:00"}
    assert day_run["actions"] == []
    assert day_run["names"][door] == "hall/front door"
    # The one that acted: the light it set and the alert it raised.
    assert [c["result"] for c in night_run["conditions"]] == [True] * len(night_run["conditions"])
    command = night_run["actions"][0]
    assert command["targets"] == [{"device": device_id("hall/light"), "component": "main", "status": "confirmed"}]
    assert night_run["names"][device_id("hall/light")] == "hall/light"
    # Skipped and not-met runs are traced too, not only the ones that acted.
    assert {t["result"] for t in result["traces"]} >= {"done", "conditions not met"}


def test_text_shows_the_runs_that_acted_and_counts_the_others(capsys: pytest.CaptureFixture[str],
                                                              house: tuple[Path, Path]) -> None:
    capture, config = house
    code, out, _ = run(capsys, str(capture), "--config", str(config))
    assert code == 0
    block = out[out.index(" scene runs: "):]
    lines = block.splitlines()
    start = lines.index("  [2026-03-11T02:10:00.000Z] elderly-monitoring.night-door: acted")
    run_lines = lines[start:start + 6]
    trigger = "    trigger: state contact.open = true (was false) on hall/front door (zigbee2mqtt:"
    assert run_lines[1].startswith(trigger)
    assert run_lines[1].endswith(" in hall")
    assert "    condition 1 time (after 23:00, before 06:00): passed — now=02:10" in run_lines
    assert "    action 1 command level.set(percent=20)" in run_lines
    assert "      hall/light: confirmed" in run_lines
    # The day's opening is not shown in full by default, but counted with its reason.
    assert "[2026-03-10T12:00:00.000Z] elderly-monitoring.night-door" not in block
    assert "    elderly-monitoring.night-door: 1x conditions not met: condition 1 (time) failed" in lines


def test_traces_option_shows_every_run(capsys: pytest.CaptureFixture[str], house: tuple[Path, Path]) -> None:
    capture, config = house
    code, out, _ = run(capsys, str(capture), "--config", str(config), "--traces")
    assert code == 0
    lines = out.splitlines()
    start = lines.index("  [2026-03-10T12:00:00.000Z] elderly-monitoring.night-door: conditions not met")
    assert lines[start + 2] == "    condition 1 time (after 23:00, before 06:00): FAILED — now=12:00"
    assert lines[start + 3] == "    actions: none run (2 in the scene)"
    assert "not shown (--traces" not in out


# ------------------------------------------------------------------ --explain


def test_explain_a_scene_that_ran(capsys: pytest.CaptureFixture[str], house: tuple[Path, Path]) -> None:
    capture, config = house
    code, out, _ = run(capsys, str(capture), "--config", str(config), "--explain", "night-door")
    assert code == 0
    assert out.startswith("elderly-monitoring.night-door — Entrance door opened at night\n")
    assert "Why: it ran 2 times in the capture and acted 1 (last at 2026-03-11 02:10)." in out
    # Each run, the day's one with its false condition and what it saw.
    assert "    condition 1 time (after 23:00, before 06:00): FAILED — now=12:00" in out
    assert "  1. state: contact.open = true, door/window contact tagged 'entrance'" in out
    assert "     matches 1 device: hall/front door" in out


def test_explain_says_each_run_in_the_language_asked_for(capsys: pytest.CaptureFixture[str],
                                                         house: tuple[Path, Path]) -> None:
    capture, config = house
    code, english, _ = run(capsys, str(capture), "--config", str(config), "--explain", "night-door")
    assert code == 0
    code, chinese, _ = run(capsys, str(capture), "--config", str(config), "--explain", "night-door",
                           "--language", "zh-Hans")
    assert code == 0
    assert "Why: it ran 2 times in the capture and acted 1" in chinese  # the installer's lines stay
    code, out, _ = run(capsys, str(capture), "--config", str(config), "--explain", "night-door",
                       "--language", "zh-Hans", "--json")
    data = json.loads(out)
    assert data["language"] == "zh-Hans"
    said = [line for r in data["runs"] for line in r["sentences"]]
    assert "所以什么也没做。" in said  # the day's run: "so nothing was done."
    assert all(f"      {line}" in chinese and line not in english for line in said)


def test_explain_a_scene_that_never_ran(capsys: pytest.CaptureFixture[str], house: tuple[Path, Path]) -> None:
    capture, config = house
    code, out, _ = run(capsys, str(capture), "--config", str(config), "--explain", "elderly-monitoring.too-hot")
    assert code == 0
    assert "Why: it never ran in the capture: no trigger fired (see each trigger below)." in out
    assert "  1. state: temperature.celsius > 30, temperature sensor not tagged outdoor, for 30 min" in out
    assert "     matches 2 devices: living/climate, bedroom/climate" in out
    assert "       bedroom/climate: temperature.celsius = 21 — not at the level" in out
    assert "     no matched device is at the level now" in out
    assert "     no matched device changed to the level and stayed there for 30 min in the replay" in out


def test_explain_at_a_time_shows_a_hold_under_way_and_a_time_not_reached(
        capsys: pytest.CaptureFixture[str], house: tuple[Path, Path]) -> None:
    capture, config = house
    code, out, _ = run(capsys, str(capture), "--config", str(config), "--explain", "too-cold", "--at", "20:10")
    assert code == 0
    assert "replayed up to 2026-03-10 20:10" in out
    assert "Why: it never ran by 2026-03-10 20:10: no trigger fired" in out
    assert ("       living/climate: temperature.celsius = 15 — at the level, held since 2026-03-10 20:00 "
            "(10 min of 30 min): fires at 2026-03-10 20:30") in out
    # The same scene at the end of the capture: the hold was kept, and it ran.
    code, out, _ = run(capsys, str(capture), "--config", str(config), "--explain", "too-cold")
    assert "Why: it ran 1 time in the capture and acted 1 (last at 2026-03-10 20:30)." in out

    code, out, _ = run(capsys, str(capture), "--config", str(config), "--explain", "wellbeing-summary",
                       "--at", "2026-03-10T20:00")
    assert "     21:00 not reached between 2026-03-10 00:00 and 2026-03-10 20:00 (next 2026-03-10 21:00)" in out


def test_explain_a_typo_says_what_was_meant(capsys: pytest.CaptureFixture[str], house: tuple[Path, Path]) -> None:
    capture, config = house
    code, out, err = run(capsys, str(capture), "--config", str(config), "--explain", "nigth-door")
    assert code == 2
    assert out == ""
    assert "no scene 'nigth-door' (did you mean 'elderly-monitoring.night-door'?)" in err
    code, _, err = run(capsys, str(capture), "--config", str(config), "--explain", "x", "--at", "25:99")
    assert code == 2
    assert "--at '25:99': expected a time of day 'HH:MM'" in err


def test_a_short_scene_id_must_be_unambiguous() -> None:
    from gateway.scenes.explain import UnknownSceneError, resolve_scene_id

    ids = ["a.lights", "b.lights", "a.door"]
    assert resolve_scene_id("door", ids) == "a.door"
    assert resolve_scene_id("b.lights", ids) == "b.lights"
    with pytest.raises(UnknownSceneError) as raised:
        resolve_scene_id("lights", ids)
    assert raised.value.ambiguous and raised.value.suggestions == ["a.lights", "b.lights"]


# ------------------------------------------------------------------ --strict and warnings


def test_strict_exits_non_zero_when_anything_was_rejected(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    capture = normal_day().write(tmp_path / "day.jsonl")
    assert run(capsys, str(capture), "--strict")[0] == 0  # nothing rejected
    with capture.open("a") as file:
        file.write("this is not JSON\n")
    assert run(capsys, str(capture))[0] == 0
    code, _, err = run(capsys, str(capture), "--strict")
    assert code == 1
    assert "1 thing rejected (--strict)" in err


def test_a_profile_without_config_warns_that_the_house_has_no_areas(capsys: pytest.CaptureFixture[str],
                                                                    tmp_path: Path) -> None:
    capture = normal_day().write(tmp_path / "day.jsonl")
    code, _, err = run(capsys, str(capture), "--profile", "energy-saving")
    assert code == 0
    assert "warning: no --config: the house has no areas or tags" in err
    code, _, err = run(capsys, str(capture))
    assert "warning" not in err  # no profile, nothing selects by area


def test_an_area_parameter_the_house_lacks_is_said_by_replay_and_config_check(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    capture = normal_day().write(tmp_path / "day.jsonl")
    config = tmp_path / "house.toml"
    # This house calls its hall "hallway"; elderly-monitoring's hallway_area is "hall" by default.
    config.write_text(config_text(profiles=PROFILES).replace('= "hall"', '= "hallway"'))
    expected = ("warning: profile elderly-monitoring: parameter hallway_area = 'hall' names an area the house "
                "does not have (")
    code, _, err = run(capsys, str(capture), "--config", str(config))
    assert code == 0
    assert expected in err
    assert "bathroom, bedroom, hallway, kitchen, living) (did you mean 'hallway'?); scene night-door finds " \
           "nothing there" in err
    assert main(["config", "check", str(config)]) == 0
    err = capsys.readouterr().err
    assert expected + f"[areas] of {config}: bathroom, bedroom, hallway, kitchen, living)" in err

    config.write_text(config_text(profiles=PROFILES))  # the hall is "hall": nothing to say
    assert main(["config", "check", str(config)]) == 0
    assert "warning" not in capsys.readouterr().err
