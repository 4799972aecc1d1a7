"""The profile language as an installer meets it: a broken profile is refused with ``file:line:key``
errors that say what was expected, ``hearth profile check|list|show`` and ``hearth config check`` print
them, ``--house`` says what the house lacks, and no profile text, however broken, crashes the loader
or the CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cli import main
from gateway.errors import ConfigError
from gateway.scenes.check import check_profile_command
from gateway.scenes.profile import load_profile_text
from tests.scenes import house

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
HEARTH = Path(sys.executable).parent / "hearth"

# Two styles of writing a scene: arrays of tables (every key on its own line) and inline tables.
PROFILE = """\
name = "test-profile"
version = 1
description = "A small profile for the tests"

[parameters.wait]
type = "duration"
default = "10m"

[parameters.contacts]
type = "notify_targets"

[[scenes]]
id = "lights-off"
name = "Lights off"

[[scenes.triggers]]
kind = "state"
selector = { capability = "occupancy" }
attribute = "occupancy.occupied"
to = false
for = "${wait}"

[[scenes.actions]]
kind = "command"
target = { area = "@trigger", capability = "on_off" }
capability = "on_off"
command = "off"

[[scenes]]
id = "panic"
name = "Panic"
triggers = [
  { kind = "button", selector = { tag = "panic" } },
]
actions = [
  { kind = "alert", alert = "panic", message = "{device} pressed", notify = "${contacts}" },
]
"""
PARAMS = {"contacts": ["daughter"]}


def line_of(text: str, needle: str, after: str | None = None) -> int:
    """The 1-based line of the first line containing ``needle`` (after the line containing ``after``)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines) if i >= start and needle in line) + 1


def problems(text: str, params: dict[str, Any] | None = None, source: str = "p.toml",
             params_source: str | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_profile_text(text, source, PARAMS if params is None else params, params_source)
    return [str(p) for p in info.value.problems]


def test_the_test_profile_loads() -> None:
    profile = load_profile_text(PROFILE, "p.toml", PARAMS)
    assert [s.id for s in profile.scenes] == ["lights-off", "panic"]
    assert profile.values == {"wait": 600.0, "contacts": ["daughter"]}
    assert profile.notify_targets == {"daughter"}
    trigger = profile.scenes[0].triggers[0]
    assert trigger.for_ == 600.0  # type: ignore[union-attr]


# (what is broken, replace this, with this, key, line of the text containing it, message)
BROKEN = [
    ("unknown key in a scene", 'name = "Lights off"', 'name = "Lights off"\ncolour = "red"',
     "scenes.0.colour", 'colour = "red"', "unknown key"),
    ("unknown key in a trigger", 'to = false', 'to = false\nwhen = "now"',
     "scenes.0.triggers.0.when", 'when = "now"', "unknown key"),
    ("a duration that is not one", 'for = "${wait}"', 'for = "10 minutes"',
     "scenes.0.triggers.0.for", 'for = "10 minutes"', "expected a duration such as '10m'"),
    ("a negative duration", 'for = "${wait}"', 'for = "-5m"',
     "scenes.0.triggers.0.for", 'for = "-5m"', "expected a duration of zero or more"),
    ("a number where text is wanted", 'name = "Lights off"', "name = 7",
     "scenes.0.name", "name = 7", "valid string"),
    ("unknown capability in a selector", 'selector = { capability = "occupancy" }',
     'selector = { capability = "occupancyy" }',
     "scenes.0.triggers.0.selector.capability", "occupancyy", "unknown capability 'occupancyy'"),
    ("unknown attribute", 'attribute = "occupancy.occupied"', 'attribute = "occupancy.present"',
     "scenes.0.triggers.0.attribute", "occupancy.present", "occupancy has no attribute 'present'"),
    ("unknown capability in an attribute", 'attribute = "occupancy.occupied"', 'attribute = "motion.detected"',
     "scenes.0.triggers.0.attribute", "motion.detected", "unknown capability 'motion'"),
    ("unknown command", 'command = "off"', 'command = "blink"',
     "scenes.0.actions.0.command", 'command = "blink"', "on_off has no command 'blink' (commands: on, off, toggle)"),
    ("unknown argument", 'command = "off"', 'command = "off"\nargs = { percent = 5 }',
     "scenes.0.actions.0.args", "args = ", "on_off.off takes no argument 'percent' (arguments: none)"),
    ("a bad argument value", 'capability = "on_off"\ncommand = "off"', 'capability = "level"\ncommand = "set"\n'
     'args = { percent = 150 }', "scenes.0.actions.0.args", "args = ", "argument 'percent': 150 is above the maximum"),
    ("a missing argument", 'capability = "on_off"\ncommand = "off"', 'capability = "level"\ncommand = "set"',
     "scenes.0.actions.0.args", "[[scenes.actions]]", "level.set needs the argument 'percent'"),
    ("unknown capability in a command", 'capability = "on_off"\ncommand', 'capability = "teleport"\ncommand',
     "scenes.0.actions.0.capability", "teleport", "unknown capability 'teleport'"),
    ("include == exclude", 'target = { area = "@trigger", capability = "on_off" }',
     'target = { area = "hall", exclude_area = "hall" }',
     "scenes.0.actions.0.target", "exclude_area", "impossible selector: every area it includes is also excluded"),
    ("an empty selector", 'target = { area = "@trigger", capability = "on_off" }', "target = { }",
     "scenes.0.actions.0.target", "target = { }", "a selector must name at least one of device, area, capability"),
    ("unknown trigger kind", 'kind = "state"', 'kind = "telepathy"',
     "scenes.0.triggers.0.kind", 'kind = "telepathy"', "unknown kind 'telepathy' (expected one of 'state', 'absence'"),
    ("a trigger without a kind", 'kind = "state"\n', "",
     "scenes.0.triggers.0", "[[scenes.triggers]]", "needs a 'kind'"),
    ("unknown parameter reference", 'for = "${wait}"', 'for = "${nope}"',
     "scenes.0.triggers.0.for", "${nope}", "unknown parameter ${nope}"),
    ("unknown key in an inline action", 'alert = "panic", ', 'alert = "panic", kind2 = 1, ',
     "scenes.1.actions.0.kind2", "kind2 = 1", "unknown key"),
    ("wrong schema version", "version = 1", "version = 2",
     "version", "version = 2", "this gateway reads profile schema version 1"),
    ("a parameter of an unknown type", 'type = "duration"', 'type = "minutes"',
     "parameters.wait.type", 'type = "minutes"', "Input should be 'area'"),
    ("a default of the wrong type", 'default = "10m"', 'default = "soon"',
     "parameters.wait.default", 'default = "soon"', "expected a duration such as '10m', '1h30m' or '45s' (got 'soon')"),
]


@pytest.mark.parametrize(("old", "new", "key", "needle", "message"), [b[1:] for b in BROKEN],
                         ids=[b[0] for b in BROKEN])
def test_a_broken_profile_names_file_line_and_key(old: str, new: str, key: str, needle: str, message: str) -> None:
    assert old in PROFILE
    text = PROFILE.replace(old, new, 1)
    found = problems(text)
    assert len(found) == 1, found
    where = f"p.toml:{line_of(text, needle)}: {key}: "
    assert found[0].startswith(where), (found[0], where)
    assert message in found[0]
    # The message reads as a sentence: "expected" only ever introduces what was expected.
    assert "expected unknown" not in found[0] and "expected impossible" not in found[0]


def test_inline_tables_in_an_array_point_at_their_own_line() -> None:
    # One inline table per line inside a multi-line array (the style of the shipped profiles): the
    # error names the element's line, not the line of `triggers = [`.
    text = PROFILE.replace('selector = { tag = "panic" }', 'selector = { tag = "panic", colour = 1 }')
    assert problems(text) == [f"p.toml:{line_of(text, 'colour = 1')}: scenes.1.triggers.0.selector.colour: "
                              "unknown key 'colour' (this table takes device, area, capability, tag, exclude_device, "
                              "exclude_area, exclude_tag, where)"]


DISCO = 'mode = "disco"'


def test_nested_condition_and_set_mode_keys_are_named_without_the_kind() -> None:
    text = PROFILE.replace(
        'actions = [\n  { kind = "alert"',
        'conditions = [{ kind = "not", condition = { kind = "mode", is = ["party"] } }]\n'
        'actions = [\n  { kind = "set_mode", mode = "disco" },\n  { kind = "alert"')
    found = problems(text)
    assert found == [
        f"p.toml:{line_of(text, 'conditions = [')}: scenes.1.conditions.0.condition.is.0: "
        "Input should be 'home', 'away', 'night' or 'vacation'",
        f"p.toml:{line_of(text, DISCO)}: scenes.1.actions.0.mode: "
        "Input should be 'home', 'away', 'night' or 'vacation'",
    ]


def test_every_problem_is_reported_at_once() -> None:
    text = PROFILE.replace('for = "${wait}"', 'for = "soon"').replace('command = "off"', 'command = "blink"')
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == ["scenes.0.triggers.0.for", "scenes.0.actions.0.command"]


def test_duplicate_scene_ids_point_at_the_second() -> None:
    text = PROFILE.replace('id = "panic"', 'id = "lights-off"')
    second = line_of(text, 'id = "lights-off"', after='[[scenes.actions]]')
    assert problems(text) == [f"p.toml:{second}: scenes.1.id: scene id 'lights-off' is used twice "
                              f"(first on line {line_of(text, 'id = ')}): scene ids must be unique"]


def test_not_toml_at_all() -> None:
    (found,) = problems(PROFILE + "\n[[[broken\n")
    assert found.startswith(f"p.toml:{len(PROFILE.splitlines()) + 2}: not valid TOML")


def test_a_required_parameter_without_a_value() -> None:
    found = problems(PROFILE, params={}, params_source="house.toml:12 [[profiles]] test-profile")
    # said once, where the user must set it; its uses are not reported as "unknown" on top
    assert found == ["house.toml:12 [[profiles]] test-profile: params.contacts: required parameter (notify_targets) "
                     "has no value: set it in the [profiles.params] of your config"]


@pytest.mark.parametrize(("params", "message"), [
    ({"wait": "soon"}, "params.wait: expected a duration such as '10m', '1h30m' or '45s' (got 'soon')"),
    ({"wait": True}, "params.wait: expected a duration such as '10m', '1h30m' or '45s' (got True)"),
    ({"contacts": 3}, "params.contacts: expected a list of names (got 3)"),
    ({"colour": "red"}, "params.colour: profile 'test-profile' has no parameter 'colour' (parameters: contacts, wait)"),
])
def test_a_bad_parameter_value_from_the_config(params: dict[str, Any], message: str) -> None:
    found = problems(PROFILE, params={**PARAMS, **params}, params_source="house.toml:3 [[profiles]] test-profile")
    assert found == [f"house.toml:3 [[profiles]] test-profile: {message}"]


def test_a_selector_parameter_is_checked_and_reported_on_one_line() -> None:
    path = PROFILES / "elderly-monitoring.toml"
    found = problems(path.read_text(), params={"contacts": ["a"], "entrance_doors": {"capability": "door"}},
                     source=str(path), params_source="cfg")
    assert len(found) == 1 and "\n" not in found[0]
    assert found[0].startswith("cfg: params.entrance_doors: expected a valid selector (capability: unknown "
                               "capability 'door'")


def test_parameter_values_are_typed_where_they_are_used() -> None:
    path = PROFILES / "elderly-monitoring.toml"
    profile = load_profile_text(path.read_text(), str(path), {"contacts": ["a", "b"], "inactivity": "2h30m",
                                                               "hallway_level": 35})
    scenes = {s.id: s for s in profile.scenes}
    assert scenes["inactivity"].triggers[0].for_ == 9000.0  # type: ignore[union-attr]
    assert scenes["inactivity"].actions[0].notify == ["a", "b"]  # type: ignore[union-attr]
    assert scenes["night-door"].actions[0].args == {"percent": 35}  # type: ignore[union-attr]
    # inside a longer string, a reference is replaced by its text
    assert "since 06:00" in scenes["morning-check"].actions[0].message  # type: ignore[union-attr]
    # a value that passes the parameter's own type but not the place it is used in
    (found,) = problems(path.read_text(), params={"contacts": ["a"], "hallway_level": 150}, params_source="cfg")
    assert found == "cfg: params.hallway_level: expected at most 100 (got 150)"


# ------------------------------------------------------------------ the CLI


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_profile_check_prints_the_errors_and_returns_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = PROFILE.replace('name = "Lights off"', 'name = "Lights off"\ncolour = "red"').replace(
        'for = "${wait}"', 'for = "10 minutes"')
    path = write(tmp_path, "broken.toml", text)
    assert main(["profile", "check", str(path)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"error: {path}:{line_of(text, 'colour')}: scenes.0.colour: unknown key 'colour' (this table takes id, "
        "name, description, enabled, priority, cooldown, triggers, conditions, actions)",
        f"error: {path}:{line_of(text, 'for = ')}: scenes.0.triggers.0.for: expected a duration such as '10m', "
        "'1h30m' or '45s' (got '10 minutes')",
        f"{path}: 2 errors",
    ]


def test_profile_check_of_a_good_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # required parameters get sample values: a profile is checked before it is configured
    assert main(["profile", "check", str(write(tmp_path, "good.toml", PROFILE))]) == 0
    assert "ok — profile 'test-profile', 2 scenes" in capsys.readouterr().out
    for shipped in ("elderly-monitoring", "energy-saving"):
        assert main(["profile", "check", str(PROFILES / f"{shipped}.toml")]) == 0


def test_profile_check_as_the_installed_command(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.toml", PROFILE.replace('kind = "state"', 'kind = "telepathy"'))
    done = subprocess.run([str(HEARTH), "profile", "check", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert f"error: {path}:{line_of(path.read_text(), 'telepathy')}: scenes.0.triggers.0.kind: unknown kind " \
           "'telepathy'" in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("content", [b"parameters = 3\n", b'name = "x"\n\xff\xfe\n', b"[parameters.x]\ntype = [1]\n",
                                     b"[parameters]\nx = 3\n", b""])
def test_profile_check_of_garbage_is_an_error_not_a_traceback(tmp_path: Path, content: bytes,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "garbage.toml"
    path.write_bytes(content)
    assert main(["profile", "check", str(path)]) == 2
    out = capsys.readouterr().out
    assert out.startswith(f"error: {path}") and out.rstrip().endswith("error" if out.count("error:") == 1 else "errors")


def test_profile_check_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "check", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read" in capsys.readouterr().out


@pytest.fixture
def house_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Writes a capture and a config of the test house, optionally without some of its devices."""

    def make(name: str, without: tuple[str, ...] = ()) -> tuple[Path, Path]:
        monkeypatch.setattr(house, "HOUSE", {k: v for k, v in house.HOUSE.items() if k not in without})
        config = write(tmp_path, f"{name}.toml", house.config_text())
        capture = house.normal_day().write(tmp_path / f"{name}.jsonl")
        monkeypatch.undo()
        return capture, config

    return make


def test_profile_check_house_reports_what_the_house_lacks(house_files: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capture, config = house_files("small", without=("bathroom/motion", "bedroom/panic"))
    profile = PROFILES / "elderly-monitoring.toml"
    code = main(["profile", "check", str(profile), "--house", str(capture), "--config", str(config)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[1:] == [
        "house: elderly-monitoring.bathroom-long-stay (trigger 2): no occupancy sensor in area 'bathroom'",
        "house: elderly-monitoring.panic (trigger 1): no button tagged 'panic'",
        f"{capture}: 2 things this house lacks",
    ]


def test_profile_check_house_with_everything(house_files: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capture, config = house_files("full")
    profile = PROFILES / "elderly-monitoring.toml"
    assert main(["profile", "check", str(profile), "--house", str(capture), "--config", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"{capture}: the house has everything the profile needs"


def test_profile_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["elderly-monitoring", "energy-saving"]
    assert "9 scenes" in listed[0] and "BROKEN" not in "".join(listed)
    assert main(["profile", "show", "elderly-monitoring"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("elderly-monitoring (schema 1)")
    assert "contacts               notify_targets" in shown and "(REQUIRED)" in shown
    assert "inactivity             duration        = 180 min  (default)" in shown
    assert "elderly-monitoring.panic" in shown
    assert main(["profile", "show", "no-such-profile"]) == 2
    assert "no profile named 'no-such-profile'" in capsys.readouterr().err


CONFIG_HEAD = '[notify.daughter]\nkind = "log"\n\n'


@pytest.mark.parametrize(("params", "message"), [
    ('contacts = ["daughter", "nobody"]',
     "params: notify target 'nobody' is not defined: add a [notify.nobody] section"),
    ('contacts = ["daughter"]\ninactivity = "soon"',
     "params.inactivity: expected a duration such as '10m', '1h30m' or '45s' (got 'soon')"),
    ("",
     "params.contacts: required parameter (notify_targets) has no value: set it in the [profiles.params] of your "
     "config"),
])
def test_config_check_refuses_a_profile_it_cannot_run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       params: str, message: str) -> None:
    path = write(tmp_path, "config.toml",
                 f'{CONFIG_HEAD}[[profiles]]\nuse = "elderly-monitoring"\n[profiles.params]\n{params}\n')
    assert main(["config", "check", str(path)]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert err.startswith(f"error: {path}:4 [[profiles]] elderly-monitoring: {message}")


def test_config_check_of_a_good_profile_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "config.toml",
                 f'{CONFIG_HEAD}[[profiles]]\nuse = "elderly-monitoring"\n[profiles.params]\ncontacts = ["daughter"]\n')
    assert main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok (1 profiles, 9 scenes)\n"


# ------------------------------------------------------------------ fuzzing

SHIPPED = [tomllib.loads((PROFILES / f"{n}.toml").read_text()) for n in ("elderly-monitoring", "energy-saving")]
ODD_VALUES = st.sampled_from([
    None, 0, -1, 1.5, float("nan"), float("inf"), "", "x", "10m", "-10m", "25:00", "${nope}", "${contacts}",
    "@trigger", "state", "on_off", "occupancy.occupied", True, [], [1, "a"], {}, {"kind": "state"},
    {"capability": "nope"}, {"area": "a", "exclude_area": "a"},
])


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value if v is not None) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items() if v is not None) + "}"


@st.composite
def mutated_profiles(draw: st.DrawFn) -> str:
    """A shipped profile with a few keys deleted, duplicated or given a value of another type."""
    raw = copy.deepcopy(draw(st.sampled_from(SHIPPED)))
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(raw)))
        parent = raw
        for part in path[:-1]:
            parent = parent[part]
        key = path[-1]
        operation = draw(st.sampled_from(["delete", "duplicate", "retype"]))
        if operation == "delete":
            del parent[key]
        elif operation == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif operation == "duplicate":
            parent[f"{key}2"] = copy.deepcopy(parent[key])
        else:
            parent[key] = copy.deepcopy(draw(ODD_VALUES))
        if not _paths(raw):
            break
    return "\n".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in raw.items() if v is not None)


TOMLISH = st.lists(st.one_of(
    st.sampled_from(["[[scenes]]", "[parameters.x]", 'kind = "state"', "version = 1", 'name = "n"', 'id = "a"',
                     "triggers = [", "]", "{", "}", '"""', "for = ", '"${x}"', "type = \"duration\"",
                     'actions = [{ kind = "notify", to = "log", message = "m" }]', "scenes = []", "= 1"]),
    st.text(max_size=30),
), max_size=20).map("\n".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(mutated_profiles(), TOMLISH),
       params=st.sampled_from([None, {}, {"contacts": ["log"]}, {"contacts": 3}, {"inactivity": "soon"},
                               {"entrance_doors": {"tag": 1}}, {"nope": 1}]))
def test_fuzzed_profiles_only_ever_raise_config_error(text: str, params: dict[str, Any] | None) -> None:
    try:
        load_profile_text(text, "fuzz.toml", params)
    except ConfigError as err:
        assert err.problems
        for problem in err.problems:
            assert str(problem).startswith("fuzz.toml") or problem.file == "fuzz.toml"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(text=st.one_of(mutated_profiles(), TOMLISH))
def test_fuzzed_profiles_never_crash_profile_check(tmp_path: Path, text: str) -> None:
    import io

    path = tmp_path / "fuzz.toml"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))  # lone surrogates: not UTF-8 at all
    out = io.StringIO()
    assert check_profile_command(path, None, None, out) in (0, 2)
    assert out.getvalue().startswith((f"error: {path}", f"{path}: ok"))


def test_mutated_profiles_through_the_installed_command(tmp_path: Path) -> None:
    # A few through the real console script: exit code 0 or 2, never a traceback.
    broken = [
        PROFILE.replace("[[scenes.actions]]", "[[scenes.actions]]\n[[scenes.actions]]"),
        PROFILE.replace("version = 1", 'version = "1"').replace("triggers = [", "triggers = 3\nx = ["),
        "parameters = 3\n",
    ]
    for index, text in enumerate(broken):
        path = write(tmp_path, f"m{index}.toml", text)
        done = subprocess.run([str(HEARTH), "profile", "check", str(path)], capture_output=True, text=True,
                              timeout=30)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "Traceback" not in done.stderr and done.stdout.startswith(f"error: {path}")
