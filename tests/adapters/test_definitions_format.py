"""Declarative device definitions: the strict loader (every kind of mistake is a ConfigError naming the file,
the line and the key), the JSON path evaluator, payload templates, units, and fuzzed definition texts."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.definitions.format import (
    PathError,
    compile_path,
    compile_template,
    load_definition_text,
    load_definitions,
    lookup_path,
    shipped_definitions_dir,
)
from gateway.errors import ConfigError

VALID = """\
name = "acme-washer"
version = 2
manufacturer = "Acme"
model = "W-100"

[match]
topic = "washer/{device}"
discover = "state"

[availability]
topic = "status"
values = { "online" = true, "offline" = false }

[[state]]
topic = "state"
path = "status.temp"
attribute = "temperature.celsius"
unit = "°F"
digits = 1

[[state]]
topic = "state"
path = "data[0].power"
attribute = "on_off.on"
values = { "ON" = true, "OFF" = false }

[[command]]
command = "on_off.on"
topic = "set"
payload = '{"power": "on"}'

[[command]]
command = "thermostat.set_target"
topic = "set"
payload = '{"setpoint": {celsius}, "who": "{device}"}'
args.celsius = { min = 30, max = 90 }
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_definition_text(text, "acme.toml")
    assert all(p.file == "acme.toml" for p in info.value.problems)
    return [(p.line, p.key, p.message) for p in info.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), start=1) if needle in line)


def one(text: str) -> tuple[int | None, str, str]:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_the_valid_definition_loads() -> None:
    d = load_definition_text(VALID, "acme.toml")
    assert (d.name, d.version, d.base_topic, d.device_level, d.discover) == (
        "acme-washer",
        "2",
        "washer/{device}",
        1,
        "state",
    )
    assert d.support["main"]["thermostat"] == (frozenset(), frozenset({"set_target"}), {"celsius": (30, 90)})
    assert d.support["main"]["on_off"] == (frozenset({"on"}), frozenset({"on"}), {})
    rule = d.state[0]
    assert rule.path == ("status", "temp") and rule.converts and rule.digits == 1


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        # unknown keys, at the top, in a section, in an array table, in an inline table
        (("version = 2", "version = 2\ncolour = 'red'"), "colour", "unknown key"),
        (('discover = "state"', 'discover = "state"\ndiscovery = true'), "match.discovery", "unknown key"),
        (("digits = 1", "digits = 1\nscael = 2"), "state[0].scael", "unknown key"),
        (
            ("args.celsius = { min = 30, max = 90 }", "args.celsius = { minimum = 30 }"),
            "command[1].args.celsius.minimum",
            "unknown key",
        ),
        # wrong types
        (("digits = 1", 'digits = "1"'), "state[0].digits", "integer"),
        (("version = 2", "version = 2.5"), "version", ""),
        (
            ('values = { "ON" = true, "OFF" = false }', 'values = { "ON" = [1], "OFF" = false }'),
            "state[1].values.ON",
            "string, number or boolean",
        ),
        # missing keys
        (('manufacturer = "Acme"\n', ""), "manufacturer", "required"),
        # capabilities, attributes, commands
        (
            ('attribute = "temperature.celsius"', 'attribute = "temprature.celsius"'),
            "state[0].attribute",
            "unknown capability 'temprature'",
        ),
        (
            ('attribute = "temperature.celsius"', 'attribute = "temperature.kelvin"'),
            "state[0].attribute",
            "temperature has no attribute 'kelvin'",
        ),
        (('attribute = "temperature.celsius"', 'attribute = "celsius"'), "state[0].attribute", "capability.attribute"),
        (('command = "on_off.on"', 'command = "on_off.blink"'), "command[0].command", "on_off has no command 'blink'"),
        # JSON paths
        (('path = "status.temp"', 'path = "status..temp"'), "state[0].path", "bad JSON path"),
        (('path = "status.temp"', 'path = "data[x]"'), "state[0].path", "bad JSON path"),
        # units
        (('unit = "°F"', 'unit = "kWh"'), "state[0].unit", "cannot be converted"),
        (
            ('values = { "ON" = true, "OFF" = false }', 'values = { "ON" = true, "OFF" = false }\nunit = "W"'),
            "state[1].unit",
            "cannot be converted",
        ),
        # value maps that do not fit the attribute
        (
            ('values = { "ON" = true, "OFF" = false }', 'values = { "ON" = "yes", "OFF" = false }'),
            "state[1].values.ON",
            "expected bool",
        ),
        # placeholders a command cannot fill
        (
            ("""payload = '{"power": "on"}'""", """payload = '{"power": {celsius}}'"""),
            "command[0].payload",
            "{celsius} is not available to on_off.on",
        ),
        (
            ('topic = "set"\npayload = \'{"setpoint"', 'topic = "set/{mode}"\npayload = \'{"setpoint"'),
            "command[1].topic",
            "{mode} is not available",
        ),
        # JSON payloads that are not JSON
        (("""payload = '{"power": "on"}'""", """payload = '{"power": on}'"""), "command[0].payload", "not valid JSON"),
        # topics
        (('topic = "washer/{device}"', 'topic = "washer/+"'), "match.topic", "wildcards"),
        (('topic = "washer/{device}"', 'topic = "washer/id-{device}"'), "match.topic", "whole level"),
        (('topic = "washer/{device}"', 'topic = "washer/{device}/{model}"'), "match.topic", "only the {device}"),
        (
            ('topic = "state"\npath = "status.temp"', 'topic = "/state"\npath = "status.temp"'),
            "state[0].topic",
            "must not start or end",
        ),
        (
            ('topic = "state"\npath = "status.temp"', 'topic = "{device}/state"\npath = "status.temp"'),
            "state[0].topic",
            "take no placeholders",
        ),
        # arguments
        (
            ("args.celsius = { min = 30, max = 90 }", "args.percent = { min = 30 }"),
            "command[1].args.percent",
            "takes no argument 'percent'",
        ),
        (
            ("args.celsius = { min = 30, max = 90 }", "args.celsius = { min = 90, max = 30 }"),
            "command[1].args.celsius.min",
            "above max",
        ),
        (
            ("args.celsius = { min = 30, max = 90 }", "args.celsius = { min = 30, unit = 'W' }"),
            "command[1].args.celsius.unit",
            "cannot be converted",
        ),
        # names and components
        (('name = "acme-washer"', 'name = "Acme Washer"'), "name", "lowercase slug"),
        (
            ('path = "data[0].power"', 'path = "data[0].power"\ncomponent = "Drum 1"'),
            "state[1].component",
            "lowercase name",
        ),
    ],
)
def test_each_mistake_names_file_line_and_key(change: tuple[str, str], key: str, words: str) -> None:
    old, new = change
    assert old in VALID
    text = VALID.replace(old, new, 1)
    found_line, found_key, message = one(text)
    assert (found_key, words.lower() in message.lower()) == (key, True), message
    # The line is the one the mistake is written on (for a missing key: none).
    changed = [line for line in new.splitlines() if line not in old.splitlines()]
    expected = text.splitlines().index(changed[0]) + 1 if changed else None
    assert found_line == expected, (found_line, message)


def test_toml_syntax_error_has_its_line() -> None:
    assert one(VALID.replace('model = "W-100"', 'model = "W-100'))[0] == 4


def test_optional_argument_needs_a_default_to_be_a_placeholder() -> None:
    text = VALID + '\n[[command]]\ncommand = "level.set"\ntopic = "set"\npayload = "{percent} {transition_s}"\n'
    line, key, message = one(text)
    assert (line, key) == (line_of(text, "{transition_s}"), "command[2].payload")
    assert "optional" in message and "default" in message
    fixed = text + "args.transition_s = { default = 0 }\n"
    assert load_definition_text(fixed, "x").commands[("main", "level", "set")].args["transition_s"].default == 0


def test_enum_argument_map_keys_must_be_values_of_the_enum() -> None:
    text = VALID + (
        '\n[[command]]\ncommand = "thermostat.set_mode"\ntopic = "mode"\npayload = "{mode}"\n'
        "args.mode = { map = { heat = 1, warm = 2 } }\n"
    )
    line, key, message = one(text)
    assert (line, key) == (line_of(text, "warm = 2"), "command[2].args.mode.map.warm") and "never comes" in message


def test_same_command_twice_and_nothing_at_all() -> None:
    text = VALID + '\n[[command]]\ncommand = "on_off.on"\ntopic = "other"\n'
    assert one(text)[:2] == (line_of(text, 'topic = "other"') - 1, "command[2].command")
    bare = 'name = "x"\nversion = 1\nmanufacturer = "A"\nmodel = "B"\n[match]\ntopic = "x/{device}"\n'
    assert one(bare)[1] == "state"


def test_every_problem_of_a_file_at_once() -> None:
    text = VALID.replace('attribute = "temperature.celsius"', 'attribute = "temperature.kelvin"').replace(
        'path = "data[0].power"', 'path = "data[0"'
    )
    assert [(line, key) for line, key, _ in problems(text)] == [
        (line_of(text, "temperature.kelvin"), "state[0].attribute"),
        (line_of(text, 'path = "data[0"'), "state[1].path"),
    ]


def test_folders_user_override_and_name_clash(tmp_path: Path) -> None:
    one_dir, two_dir = tmp_path / "a", tmp_path / "b"
    one_dir.mkdir()
    two_dir.mkdir()
    (one_dir / "x.toml").write_text(VALID, encoding="utf-8")
    shipped = {d.name for d in load_definitions([])}
    assert {"opendtu", "heishamon", "hcpy"} <= shipped
    assert {d.name for d in load_definitions([one_dir])} == shipped | {"acme-washer"}
    # A user file named like a shipped definition replaces it.
    (two_dir / "mine.toml").write_text(VALID.replace('name = "acme-washer"', 'name = "opendtu"'), encoding="utf-8")
    loaded = {d.name: d for d in load_definitions([two_dir])}
    assert loaded["opendtu"].file.endswith("mine.toml")
    # Two user definitions with one name clash, with both files named.
    (two_dir / "again.toml").write_text(VALID, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_definitions([one_dir, two_dir])
    assert "already defined in" in str(info.value) and "x.toml" in str(info.value)
    with pytest.raises(ConfigError, match="no such folder"):
        load_definitions([tmp_path / "missing"])
    (one_dir / "bad.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_definitions([one_dir], shipped=False)


def test_shipped_definitions_name_their_source() -> None:
    for path in shipped_definitions_dir().glob("*.toml"):
        text = path.read_text(encoding="utf-8")
        definition = load_definition_text(text, str(path))
        assert definition.source_url.startswith("https://github.com/"), path
        assert "Source:" in text.split("\n\n")[0] or "Source:" in text[:800], path


# ---------------------------------------------------------------------------------------------- JSON paths


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("", ()),
        ("$", ()),
        ("a", ("a",)),
        ("status.temp", ("status", "temp")),
        ("data[0].value", ("data", 0, "value")),
        ("$.a.b", ("a", "b")),
        ("a[-1]", ("a", -1)),
        ('["a b"].c', ("a b", "c")),
        ("a['x.y']", ("a", "x.y")),
        ("ENERGY.Power", ("ENERGY", "Power")),
        ("a.0", ("a", "0")),
        ("x[1][2]", ("x", 1, 2)),
    ],
)
def test_paths(path: str, steps: tuple) -> None:
    assert compile_path(path) == steps


@pytest.mark.parametrize(
    "path", ["a.", ".a", "a..b", "a[", "a[x]", "a]b", "a b", "a[0", '["a]', "a" * 300, ".".join(["a"] * 40)]
)
def test_bad_paths(path: str) -> None:
    with pytest.raises(PathError):
        compile_path(path)


def test_lookup() -> None:
    doc = {"data": [{"value": 3}], "s": {"t": None}, "n": 5, "520": "x"}
    assert lookup_path(doc, ("data", 0, "value")) == 3
    assert lookup_path(doc, ("data", -1, "value")) == 3
    assert lookup_path(doc, ("s", "t")) is None
    assert lookup_path(doc, ("520",)) == "x"
    missing = lookup_path(doc, ("data", 5))
    assert missing is lookup_path(doc, ("nope",))  # the MISSING marker, not None
    with pytest.raises(PathError):
        lookup_path(doc, ("n", "x"))
    with pytest.raises(PathError):
        lookup_path(doc, ("data", "key"))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_path_text_compiles_or_is_a_path_error(text: str) -> None:
    try:
        steps = compile_path(text)
    except PathError:
        return
    assert all(isinstance(s, (str, int)) for s in steps)


# ---------------------------------------------------------------------------------------------- templates


def test_json_template_escapes_what_sits_in_a_string() -> None:
    template = compile_template('{"preset": "{preset}", "raw": {preset}, "n": {n}, "ok": {ok}}', json=True)
    hostile = 'eco", "admin": true, "x": "\\'
    rendered = template.render({"preset": hostile, "n": 48.0, "ok": True})
    assert orjson.loads(rendered) == {"preset": hostile, "raw": hostile, "n": 48, "ok": True}
    assert compile_template("{celsius}", json=False).render({"celsius": 48.0}) == "48"
    assert compile_template("{celsius}", json=False).render({"celsius": 21.5}) == "21.5"
    # Braces that are not placeholders are literal: JSON is written as it is sent.
    assert compile_template('{"a": {"b": 1}}', json=True).render({}) == '{"a": {"b": 1}}'


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
    )
)
def test_json_template_always_renders_json(value: object) -> None:
    template = compile_template('{"in": "{v}", "out": {v}, "list": [{v}, "{v}"]}', json=True)
    parsed = orjson.loads(template.render({"v": value}))
    assert parsed["out"] == value or (isinstance(value, float) and parsed["out"] == pytest.approx(value))


# ---------------------------------------------------------------------------------------------- fuzz


_LINES = VALID.splitlines()
_noise = st.text(alphabet=st.sampled_from(list("abcz019 =\"'{}[].,#+/$\\\n°-")), max_size=30)


@st.composite
def mutated_definitions(draw: st.DrawFn) -> str:
    lines = list(_LINES)
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "replace_value", "insert", "truncate"]))
        if action == "drop":
            lines.pop(index)
        elif action == "replace_value" and "=" in lines[index]:
            key = lines[index].split("=", 1)[0]
            lines[index] = (
                key
                + "= "
                + draw(
                    st.sampled_from(
                        [
                            '""',
                            "1",
                            "-1.5",
                            "true",
                            "[]",
                            "{}",
                            '"x.y"',
                            '"{device}"',
                            '"{z}"',
                            '"a[0]"',
                            "nan",
                            "inf",
                            '"temperature.celsius"',
                            '"on_off.on"',
                            '"°F"',
                            "{ a = 1 }",
                            '"+/#"',
                            '"\\u0000"',
                        ]
                    )
                )
            )
        elif action == "insert":
            lines.insert(index, draw(_noise))
        else:
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
        if not lines:
            break
    return "\n".join(lines)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(mutated_definitions(), st.text(max_size=200)))
def test_fuzzed_definitions_load_or_raise_config_error_only(text: str) -> None:
    try:
        definition = load_definition_text(text, "fuzz.toml")
    except ConfigError as err:
        assert err.problems and all(p.file == "fuzz.toml" for p in err.problems)
        assert all(p.line is None or 1 <= p.line <= text.count("\n") + 1 for p in err.problems)
        return
    assert definition.name


def test_the_example_of_the_format_guide_loads() -> None:
    guide = (shipped_definitions_dir() / "README.md").read_text(encoding="utf-8")
    example = guide.split("## The format", 1)[1].split("```toml", 1)[1].split("```", 1)[0]
    definition = load_definition_text(example, "README.md")
    assert definition.commands[("main", "thermostat", "set_mode")].args["mode"].values == {
        "heat": "HEAT",
        "eco": "ECO",
        "off": "STANDBY",
    }
