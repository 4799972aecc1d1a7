"""What the profile language checks, suggests and documents (issue 16): comparisons that cannot fit
the attribute's type are refused with ``file:line:key``; profiles are found by name everywhere; a
mistyped key, parameter, capability, attribute, kind or scene gets a "did you mean"; a config changes
one scene of a shipped profile without copying it; ``hearth schema profile`` and the generated
reference (docs/profile-language.md) follow the models."""

from __future__ import annotations

import json
import tomllib
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import TypeAdapter

from gateway.cli import main
from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.model import json_schema
from gateway.scenes import profile as language
from gateway.scenes import reference
from gateway.scenes.profile import NotCondition, load_profile_text
from gateway.scenes.setup import load_profiles

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "profiles"
DOCS = ROOT / "docs"
ELDERLY = PROFILES / "elderly-monitoring.toml"

HEAD = """\
name = "checks"
version = 1

[parameters.wait]
type = "duration"
default = "10m"

[[scenes]]
id = "s"
name = "S"
"""
ACTIONS = '\nactions = [{ kind = "notify", to = "log", message = "m" }]\n'


def scene(triggers: str, conditions: str = "", actions: str = ACTIONS, head: str = HEAD) -> str:
    text = head + f"triggers = [\n  {triggers},\n]\n"
    if conditions:
        text += f"conditions = [\n  {conditions},\n]\n"
    return text + actions


DOOR = 'kind = "state", selector = { capability = "contact" }, attribute = "contact.open"'
MOTION = 'kind = "state", selector = { capability = "occupancy" }, attribute = "occupancy.occupied"'
THERMOSTAT = 'kind = "state", selector = { capability = "thermostat" }, attribute = "thermostat.mode"'
START = '{ kind = "start" }'


def problems(text: str, params: dict[str, Any] | None = None, source: str = "p.toml", params_source: str | None = None,
             scene_settings: dict[str, Any] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_profile_text(text, source, params, params_source, scene_settings)
    return [str(p) for p in info.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


# ------------------------------------------------------------------ comparisons fit the attribute's type

# (what, text, key, needle on the line, message)
MISFITS = [
    ("a word for a true/false trigger", scene(f'{{ {MOTION}, to = "yes" }}'), "scenes.0.triggers.0.to",
     '"yes"', "occupancy.occupied is true or false: expected true or false (got 'yes')"),
    ("a number for a true/false trigger", scene(f"{{ {MOTION}, to = 1 }}"), "scenes.0.triggers.0.to",
     "to = 1", "occupancy.occupied is true or false: expected true or false (got 1)"),
    ("below on a true/false attribute", scene(f"{{ {MOTION}, below = 1 }}"), "scenes.0.triggers.0.below",
     "below = 1", "occupancy.occupied is true or false, not a number: 'below' never holds (write to = true or "
                  "to = false)"),
    ("from that cannot be", scene(f'{{ {DOOR}, from = "closed", to = true }}'), "scenes.0.triggers.0.from",
     '"closed"', "contact.open is true or false: expected true or false (got 'closed')"),
    ("a word the enum does not have", scene(f'{{ {THERMOSTAT}, to = "heet" }}'), "scenes.0.triggers.0.to",
     '"heet"', "thermostat.mode is one of off, heat, cool, heat_cool, auto, eco, dry, fan_only: got 'heet' "
               "(did you mean 'heat'?)"),
    ("above on a word", scene(f"{{ {THERMOSTAT}, above = 3 }}"), "scenes.0.triggers.0.above", "above = 3",
     "thermostat.mode is one of off, heat, cool, heat_cool, auto, eco, dry, fan_only, not a number: 'above' never "
     'holds (write to = "off")'),
    ("above that is not a number", scene(f'{{ {DOOR}, above = "x" }}'), "scenes.0.triggers.0.above", '"x"',
     "'above' compares numbers: expected a number (got 'x')"),
    ("above = true (read as 1 by pydantic)",
     scene('{ kind = "state", selector = { capability = "humidity" }, attribute = "humidity.percent", above = true }'),
     "scenes.0.triggers.0.above", "above = true", "'above' compares numbers: expected a number (got true)"),
    ("above the range of the attribute",
     scene('{ kind = "state", selector = { capability = "humidity" }, attribute = "humidity.percent", above = 100 }'),
     "scenes.0.triggers.0.above", "above = 100", "humidity.percent is at most 100 %: it is never above 100"),
    ("a word for a number", scene(START, '{ kind = "state", selector = { capability = "power_meter" }, '
                                         'attribute = "power_meter.watts", equals = "low" }'),
     "scenes.0.conditions.0.equals", '"low"', "power_meter.watts is a number W: expected a number (got 'low')"),
    ("not_equals on a true/false attribute", scene(START, '{ kind = "state", selector = { capability = "on_off" }, '
                                                          'attribute = "on_off.on", not_equals = "off" }'),
     "scenes.0.conditions.0.not_equals", '"off"', "on_off.on is true or false: expected true or false (got 'off')"),
    ("a selector's where", scene(START), "scenes.0.actions.0.target.where.below", "below = 0",
     "power_meter.watts"),  # replaced below: the action carries the where
    ("an absence's activity", scene('{ kind = "absence", selector = { capability = "contact" }, '
                                    'attribute = "contact.open", activity = "opened", for = "1h" }'),
     "scenes.0.triggers.0.activity", '"opened"', "contact.open is true or false: expected true or false "
                                                 "(got 'opened')"),
    ("a wait_for", scene(START, actions='\nactions = [{ kind = "wait_for", selector = { capability = "lock" }, '
                                        'attribute = "lock.state", equals = "closed", timeout = "5m" }]\n'),
     "scenes.0.actions.0.equals", '"closed"', "lock.state is one of locked, unlocked, jammed, unknown: got "
                                              "'closed' (did you mean 'locked'?)"),
]
MISFITS[11] = (
    "a selector's where", scene(START, actions='\nactions = [{ kind = "command", target = { capability = "on_off", '
                                               'where = { attribute = "occupancy.occupied", below = 0 } }, '
                                               'capability = "on_off", command = "off" }]\n'),
    "scenes.0.actions.0.target.where.below", "below = 0",
    "occupancy.occupied is true or false, not a number: 'below' never holds (write equals = true or equals = false)")


@pytest.mark.parametrize(("text", "key", "needle", "message"), [m[1:] for m in MISFITS], ids=[m[0] for m in MISFITS])
def test_a_comparison_that_does_not_fit_the_attribute_is_refused(text: str, key: str, needle: str,
                                                                  message: str) -> None:
    assert problems(text) == [f"p.toml:{line_of(text, needle)}: {key}: {message}"]


def test_comparisons_that_fit_load() -> None:
    text = scene(f'{{ {THERMOSTAT}, to = "heat", from = "off" }},\n  {{ {DOOR}, to = true, for = "${{wait}}" }},\n'
                 '  { kind = "state", selector = { capability = "temperature" }, attribute = "temperature.celsius", '
                 'below = 16, above = -10 }',
                 '{ kind = "state", selector = { capability = "button" }, attribute = "button.button", equals = 2 }')
    assert len(load_profile_text(text, "p.toml").scenes[0].triggers) == 3


def test_a_value_from_a_parameter_is_checked_after_substitution_and_the_parameter_is_named() -> None:
    head = HEAD + ""
    text = scene(f'{{ {MOTION}, to = "${{occupied}}" }}', head=head.replace(
        "[[scenes]]", '[parameters.occupied]\ntype = "string"\ndefault = "yes"\n\n[[scenes]]'))
    where = f"p.toml:{line_of(text, '${occupied}')}: scenes.0.triggers.0.to: "
    assert problems(text) == [where + "occupancy.occupied is true or false: expected true or false (got 'yes') "
                                      "(from ${occupied} = 'yes', its default)"]
    assert problems(text, {"occupied": "no"}, params_source="house.toml") == [
        where + "occupancy.occupied is true or false: expected true or false (got 'no') "
                "(from ${occupied} = 'no', set in house.toml)"]


def test_a_shipped_parameter_set_to_a_value_out_of_the_attributes_range() -> None:
    # temperature_max is a plain number parameter: it is the place it is used in that refuses -300 °C
    found = problems(ELDERLY.read_text(), {"contacts": ["a"], "temperature_min": -300}, str(ELDERLY), "cfg")
    assert len(found) == 1
    assert "scenes." in found[0] and ".below: temperature.celsius is at least -273.15 °C: it is never below -300 " \
                                     "(from ${temperature_min} = -300, set in cfg)" in found[0]


# ------------------------------------------------------------------ names everywhere


def test_profile_check_takes_a_shipped_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "check", "elderly-monitoring"]) == 0
    assert "ok — profile 'elderly-monitoring'" in capsys.readouterr().out
    assert main(["profile", "check", "elderly-monitorin"]) == 2
    assert "no profile named 'elderly-monitorin' (did you mean 'elderly-monitoring'?)" in capsys.readouterr().out


def test_a_name_in_the_configs_profile_dirs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "checks.toml").write_text(scene(START))
    config = tmp_path / "house.toml"
    config.write_text(f'[scenes]\nprofile_dirs = ["{mine}"]\n\n[[profiles]]\nuse = "checks"\n'
                      '[profiles.scenes.s]\nenabled = false\n')
    monkeypatch.chdir(tmp_path)  # not found by being in the working directory
    assert main(["profile", "check", "checks", "--config", str(config)]) == 0
    assert "ok — profile 'checks', 1 scenes, 1 customised by" in capsys.readouterr().out
    assert main(["profile", "show", "checks", "--config", str(config)]) == 0
    assert "config: disabled" in capsys.readouterr().out
    assert main(["profile", "check", "checks"]) == 2  # without the config, not a name it knows


# ------------------------------------------------------------------ did you mean


@pytest.mark.parametrize(("old", "new", "message"), [
    ('for = "1h"', 'fro = "1h"', "scenes.0.triggers.0.fro: unknown key 'fro' (did you mean 'for'?)"),
    ('kind = "absence"', 'kind = "absense"', "scenes.0.triggers.0.kind: unknown kind 'absense' (did you mean "
                                             "'absence'?)"),
    ('for = "1h"', 'for = "${wiat}"', "scenes.0.triggers.0.for: unknown parameter ${wiat} (did you mean 'wait'?)"),
    ('capability = "occupancy"', 'capability = "ocupancy"', "scenes.0.triggers.0.selector.capability: unknown "
                                                            "capability 'ocupancy' (did you mean 'occupancy'?)"),
    ('attribute = "occupancy.occupied"', 'attribute = "occupancy.ocupied"',
     "scenes.0.triggers.0.attribute: occupancy has no attribute 'ocupied' (did you mean 'occupied'?)"),
    ('to = "log"', 'too = "log"', "scenes.0.actions.0.too: unknown key 'too' (did you mean 'to'?)"),
    ('kind = "notify"', 'kind = "notfy"', "scenes.0.actions.0.kind: unknown kind 'notfy' (did you mean 'notify'?)"),
])
def test_did_you_mean(old: str, new: str, message: str) -> None:
    text = scene('{ kind = "absence", selector = { capability = "occupancy" }, attribute = "occupancy.occupied", '
                 'for = "1h" }')
    assert old in text
    text = text.replace(old, new, 1)
    found = problems(text)  # a mistyped required key is also missing: said too ("to: required")
    assert any(p.startswith(f"p.toml:{line_of(text, new)}: {message}") for p in found), found


def test_did_you_mean_in_a_nested_condition_and_a_mode() -> None:
    text = scene(START, '{ kind = "not", condition = { kind = "mode", is = ["awya"] } }')
    (found,) = problems(text)
    assert found.endswith("scenes.0.conditions.0.condition.is.0: Input should be 'home', 'away', 'night' or "
                          "'vacation' (did you mean 'away'?)")


def test_an_unknown_key_with_nothing_close_lists_the_keys_of_its_table() -> None:
    text = scene(START).replace('name = "S"', 'name = "S"\ncolour = "red"')
    assert problems(text) == [f"p.toml:{line_of(text, 'colour')}: scenes.0.colour: unknown key 'colour' (this table "
                              "takes id, name, description, enabled, priority, cooldown, triggers, conditions, "
                              "actions)"]


def test_did_you_mean_for_a_parameter_set_in_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "house.toml"
    path.write_text('[[profiles]]\nuse = "elderly-monitoring"\n[profiles.params]\ncontacts = ["log"]\n'
                    'inactivty = "2h"\n')
    assert main(["config", "check", str(path)]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert err.endswith("params.inactivty: profile 'elderly-monitoring' has no parameter 'inactivty' (did you mean "
                        "'inactivity'?)")


def test_did_you_mean_for_a_config_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config('[[profiles]]\nuse = "x"\n[profiles.scenes.s]\nenabeld = false\n', "house.toml")
    assert [str(p) for p in info.value.problems] == [
        "house.toml:4: profiles.0.scenes.s.enabeld: unknown key (did you mean 'enabled'?)"]


# ------------------------------------------------------------------ one scene changed from the config

ELDERLY_PARAMS = {"contacts": ["daughter"]}


def load_elderly(settings: dict[str, Any]) -> language.Profile:
    return load_profile_text(ELDERLY.read_text(), str(ELDERLY), ELDERLY_PARAMS, "house.toml:3 [[profiles]]", settings)


def test_a_config_changes_one_shipped_scene() -> None:
    plain = {s.id: s for s in load_elderly({}).scenes}
    profile = load_elderly({
        "inactivity": {"params": {"inactivity": "4h"}},
        "night-door": {"params": {"hallway_level": 50},
                       "conditions": [{"kind": "not", "condition": {"kind": "mode", "is": ["vacation"]}}]},
        "too-hot": {"enabled": False},
    })
    scenes = {s.id: s for s in profile.scenes}
    assert scenes["inactivity"].triggers[0].for_ == 4 * 3600  # type: ignore[union-attr]
    assert plain["inactivity"].triggers[0].for_ == 3 * 3600  # type: ignore[union-attr]
    # the profile's own value stays for every other scene
    assert profile.values["inactivity"] == 3 * 3600
    night = scenes["night-door"]
    assert night.actions[0].args == {"percent": 50}  # type: ignore[union-attr]
    assert night.conditions[:-1] == plain["night-door"].conditions
    assert isinstance(night.conditions[-1], NotCondition)
    assert scenes["too-hot"].enabled is False and plain["too-hot"].enabled is True
    untouched = [sid for sid in scenes if sid not in ("inactivity", "night-door", "too-hot")]
    assert all(scenes[sid] == plain[sid] for sid in untouched)
    assert profile.overrides["night-door"].values == {"hallway_level": 50}
    assert profile.overrides["night-door"].conditions == 1
    assert profile.overrides["too-hot"].enabled is False


def test_extra_conditions_take_the_scenes_parameter_values() -> None:
    profile = load_elderly({"night-door": {"params": {"night_start": "22:00"}, "conditions": [
        {"kind": "time", "after": "${night_start}", "before": "${night_end}"}]}})
    night = next(s for s in profile.scenes if s.id == "night-door")
    assert night.conditions[0].after == night.conditions[-1].after == 22 * 60  # type: ignore[union-attr]


@pytest.mark.parametrize(("settings", "message"), [
    ({"inactivty": {"enabled": False}},
     "scenes.inactivty: profile 'elderly-monitoring' has no scene 'inactivty' (did you mean 'inactivity'?)"),
    ({"inactivity": {"params": {"inactivty": "4h"}}},
     "scenes.inactivity.params.inactivty: profile 'elderly-monitoring' has no parameter 'inactivty' (did you mean "
     "'inactivity'?)"),
    ({"inactivity": {"params": {"hallway_level": 50}}},
     "scenes.inactivity.params.hallway_level: scene 'inactivity' does not use parameter 'hallway_level'"),
    ({"inactivity": {"params": {"inactivity": "soon"}}},
     "scenes.inactivity.params.inactivity: expected a duration such as '10m', '1h30m' or '45s' (got 'soon')"),
    ({"night-door": {"conditions": [{"kind": "mod", "is": ["home"]}]}},
     "scenes.night-door.conditions.0.kind: unknown kind 'mod' (did you mean 'mode'?)"),
    ({"night-door": {"conditions": [{"kind": "mode", "is": ["home"], "iss": 1}]}},
     "scenes.night-door.conditions.0.iss: unknown key 'iss' (did you mean 'is'?)"),
    ({"night-door": {"conditions": [{"kind": "state", "selector": {"capability": "contact"},
                                     "attribute": "contact.open", "equals": "${contatcs}"}]}},
     "scenes.night-door.conditions.0.equals: unknown parameter ${contatcs} (did you mean 'contacts'?)"),
    ({"night-door": {"enabeld": False}}, "scenes.night-door.enabeld: unknown key 'enabeld' (did you mean 'enabled'?)"),
])
def test_a_wrong_scene_setting_is_said_where_it_was_set(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_elderly(settings)
    found = [str(p) for p in info.value.problems]
    assert len(found) == 1 and found[0].startswith(f"house.toml:3 [[profiles]]: {message[:60]}"), found
    assert message.rstrip(")") in found[0]


def test_a_scene_setting_checked_against_the_attribute_type() -> None:
    with pytest.raises(ConfigError) as info:
        load_elderly({"night-door": {"conditions": [{"kind": "state", "selector": {"capability": "contact"},
                                                     "attribute": "contact.open", "equals": "yes"}]}})
    assert [str(p) for p in info.value.problems] == [
        "house.toml:3 [[profiles]]: scenes.night-door.conditions.0.equals: contact.open is true or false: expected "
        "true or false (got 'yes')"]


def test_the_config_loads_the_changed_scene_for_run_and_replay(tmp_path: Path) -> None:
    text = reference.EXAMPLE_CONFIG
    (profile,) = load_profiles(parse_config(text, "house.toml"), text)
    scenes = {s.id: s for s in profile.scenes}
    assert scenes["inactivity"].triggers[0].for_ == 4 * 3600  # type: ignore[union-attr]
    assert scenes["too-hot"].enabled is False
    bad = text.replace("[profiles.scenes.too-hot]", "[profiles.scenes.too-hott]")
    with pytest.raises(ConfigError) as info:
        load_profiles(parse_config(bad, "house.toml"), bad)
    (problem,) = info.value.problems
    assert str(problem).startswith(f"house.toml:{line_of(bad, '[[profiles]]')} [[profiles]] elderly-monitoring: "
                                   "scenes.too-hott: profile 'elderly-monitoring' has no scene 'too-hott' (did you "
                                   "mean 'too-hot' or 'too-cold'?)")


# ------------------------------------------------------------------ the examples

EXAMPLES = DOCS / "examples"


def test_the_example_profile_and_config_are_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    config = EXAMPLES / "scene-overrides.config.toml"
    assert main(["profile", "check", str(EXAMPLES / "hall-light.toml")]) == 0
    # occupancy trigger and condition, "happened" (no movement since the door closed), override_manual
    assert main(["profile", "check", str(EXAMPLES / "coming-and-going.toml")]) == 0
    assert main(["config", "check", str(config)]) == 0
    assert main(["profile", "check", "elderly-monitoring", "--config", str(config)]) == 0
    assert "3 customised by" in capsys.readouterr().out
    assert main(["profile", "show", "elderly-monitoring", "--config", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "config: inactivity = 240 min for this scene (profile: 180 min)" in shown
    assert "config: hallway_level = 50 % for this scene (profile: 20 %)" in shown
    assert "config: + 1 condition: not" in shown
    assert "elderly-monitoring.too-hot" in shown and "config: disabled" in shown


# ------------------------------------------------------------------ hearth schema


def schema_output(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    capsys.readouterr()
    assert main(["schema", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_schema_without_an_argument_is_still_the_capability_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert schema_output(capsys) == schema_output(capsys, "capabilities") == json.loads(json.dumps(json_schema()))


def test_schema_profile_is_written_as_toml_keys_with_kinds_as_tagged_unions(capsys: pytest.CaptureFixture[str]) -> None:
    schema = schema_output(capsys, "profile")
    defs = schema["$defs"]
    assert {"for", "from", "to", "above"} <= set(defs["StateTrigger"]["properties"])
    assert "for_" not in json.dumps(schema) and "is_" not in defs["ModeCondition"]["properties"]
    assert "is" in defs["ModeCondition"]["properties"]
    assert schema["properties"]["version"]["const"] == 1
    for heading, _, union in reference.SECTIONS:
        kinds = {reference.kind_of(m) for m in reference._members(union)}
        field = {"Triggers": "triggers", "Conditions": "conditions", "Actions": "actions"}[heading]
        items = defs["Scene"]["properties"][field]["items"]
        assert set(items["discriminator"]["mapping"]) == kinds
    attribute = defs["StateTrigger"]["properties"]["attribute"]["anyOf"][0]
    assert "occupancy.occupied" in attribute["enum"]


def test_the_profile_schema_accepts_the_shipped_profiles_and_refuses_a_typo(capsys: pytest.CaptureFixture[str]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = schema_output(capsys, "profile")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in [*PROFILES.glob("*.toml"), EXAMPLES / "hall-light.toml"]:
        assert list(validator.iter_errors(tomllib.loads(path.read_text()))) == [], path
    broken = tomllib.loads(ELDERLY.read_text())
    broken["scenes"][0]["triggers"][0]["fro"] = "1h"
    assert list(validator.iter_errors(broken))


# ------------------------------------------------------------------ the generated reference


def test_the_generated_docs_are_current() -> None:
    # In a fresh interpreter: other tests register plugin capabilities in this one, and those are not
    # part of the shipped reference.
    import subprocess
    import sys

    code = ("from pathlib import Path; from gateway.scenes import reference; "
            f"docs = Path({str(DOCS)!r}); "
            "print('\\n'.join(str(p) for p, t in reference.generated(docs).items() "
            "if not p.is_file() or p.read_text(encoding='utf-8') != t))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    stale = [line for line in out.stdout.splitlines() if line]
    assert not stale, f"out of date: {', '.join(stale)}; regenerate with `{reference.REGENERATE}`"


def test_every_kind_is_documented_with_an_example_that_loads() -> None:
    missing = []
    for heading, kind, model in reference.kinds():
        where = f"{heading.lower()[:-1]} {kind!r} ({model.__name__})"
        if not model.__doc__:
            missing.append(f"{where}: no class docstring")
        missing += [f"{where}: field {name!r} has no docstring" for name, info in model.model_fields.items()
                    if name != "kind" and not info.description]
        examples = reference.examples(model)
        if not examples:
            missing.append(f"{where}: no _example(...)")
    assert not missing, "\n".join(missing)
    for heading, _, union in reference.SECTIONS:
        adapter: TypeAdapter[Any] = TypeAdapter(union)
        for model in reference._members(union):
            for example in reference.examples(model):
                assert isinstance(adapter.validate_python(example), model), (heading, example)
    for model in (language.Selector, language.StateTest, language.TimeWindow, language.Parameter):
        for example in reference.examples(model):
            model.model_validate(example)
    text = reference.render_profile_reference()
    for _, kind, _ in reference.kinds():
        assert f"`{kind}`" in text


def test_the_example_profile_in_the_reference_loads() -> None:
    assert [s.id for s in load_profile_text(reference.EXAMPLE_PROFILE, "example.toml").scenes] == ["door-light"]


def test_a_kind_added_to_a_union_is_in_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    class KnockTrigger(language._Strict):
        """Someone knocked."""

        kind: Literal["knock"]
        times: int = 3
        """How many knocks."""

    members = (*reference._members(language.Trigger), KnockTrigger)
    grown = typing.Annotated[typing.Union[members], language.Field(discriminator="kind")]  # noqa: UP007
    monkeypatch.setattr(reference, "SECTIONS", (("Triggers", "trigger", grown), *reference.SECTIONS[1:]))
    text = reference.render_profile_reference()
    assert "### trigger `knock`" in text and "| `times` | integer | `3` | How many knocks. |" in text
