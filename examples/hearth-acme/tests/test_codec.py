"""The codec alone: bytes in, typed values out (no gateway, no event loop)."""

from __future__ import annotations

import json

import pytest
from gateway.sdk import CodecError, Command, Update

from hearth_acme.codec import AcmeCodec, speed_for, speed_percent

INFO = json.dumps({"model": "AP-300", "name": "Bedroom purifier", "fw": "2.1.0", "fan_speeds": 3}).encode()


def test_info_makes_the_device_and_says_how_many_speeds_it_has() -> None:
    codec = AcmeCodec()
    decoded = codec.decode("acme/AP3K-0042/info", INFO)
    (info,) = decoded.upserts
    assert (info.id, info.name, info.model, info.manufacturer, info.sw_version) == (
        "acme:ap3k-0042", "Bedroom purifier", "AP-300", "Acme", "2.1.0")
    assert set(info.components["main"]) == {"fan", "air_quality", "acme.filter"}
    assert decoded.updates == [Update("acme:ap3k-0042", "main", "fan", "speed_steps", 3)]
    assert decoded.problems == []


def test_state_is_read_in_the_model_s_units() -> None:
    codec = AcmeCodec()
    codec.decode("acme/AP3K-0042/info", INFO)
    decoded = codec.decode("acme/AP3K-0042/state", b'{"power":"on","speed":2,"pm25":9.5,"filter_life":82}')
    assert decoded.problems == []
    assert {(u.capability, u.attribute): u.value for u in decoded.updates} == {
        ("fan", "on"): True, ("fan", "speed_percent"): 67, ("air_quality", "pm25_ugm3"): 9.5,
        ("acme.filter", "life_percent"): 82}


def test_a_purifier_switched_off_runs_at_0_percent() -> None:
    codec = AcmeCodec()
    codec.decode("acme/AP3K-0042/info", INFO)
    decoded = codec.decode("acme/AP3K-0042/state", b'{"power":"off","speed":3}')
    assert [(u.attribute, u.value) for u in decoded.updates] == [("on", False), ("speed_percent", 0)]


def test_state_before_info_is_a_note_not_a_problem() -> None:
    decoded = AcmeCodec().decode("acme/AP3K-0042/state", b'{"power":"on"}')
    assert decoded.updates == [] and decoded.problems == []
    assert "before the purifier's info" in decoded.notes[0]


@pytest.mark.parametrize(("payload", "problem"), [
    (b"not json", "not JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"speed": 7}', "speed must be a whole number 0-3"),
    (b'{"filter_life": 140}', "filter_life must be a percentage"),
    (b'{"power": "maybe"}', "power must be on or off"),
    (b'{"pm25": "lots"}', "pm25 must be a number"),
])
def test_bad_payloads_are_problems_naming_what_is_wrong(payload: bytes, problem: str) -> None:
    codec = AcmeCodec()
    codec.decode("acme/AP3K-0042/info", INFO)
    decoded = codec.decode("acme/AP3K-0042/state", payload)
    assert decoded.updates == []
    assert len(decoded.problems) == 1 and problem in decoded.problems[0]


def test_availability() -> None:
    codec = AcmeCodec()
    assert codec.decode("acme/AP3K-0042/availability", b"offline").availability == [("acme:ap3k-0042", False)]
    assert codec.decode("acme/AP3K-0042/availability", b"gone").problems


@pytest.mark.parametrize(("percent", "speed"), [(0, 0), (1, 1), (33, 1), (34, 2), (50, 2), (66, 2), (68, 3), (100, 3)])
def test_percent_to_speed_is_the_nearest_speed_at_or_above(percent: float, speed: int) -> None:
    assert speed_for(percent, 3) == speed
    assert speed_percent(speed, 3) == [0, 33, 67, 100][speed]


def test_commands_are_encoded() -> None:
    codec = AcmeCodec("home/acme")
    codec.decode("home/acme/AP3K-0042/info", INFO)
    assert codec.encode(Command("acme:ap3k-0042", "main", "fan", "set_speed", {"percent": 50})) == (
        "home/acme/AP3K-0042/set", b'{"power":"on","speed":2}')
    assert codec.encode(Command("acme:ap3k-0042", "main", "fan", "set_speed", {"percent": 0}))[1] == b'{"power":"off"}'
    assert codec.encode(Command("acme:ap3k-0042", "main", "acme.filter", "reset"))[1] == b'{"filter_reset":true}'
    with pytest.raises(CodecError, match=r"cannot fan\.set_preset"):
        codec.encode(Command("acme:ap3k-0042", "main", "fan", "set_preset", {"preset": "night"}))
