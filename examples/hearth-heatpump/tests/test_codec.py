"""The codec alone: bytes in, typed values out (no gateway, no event loop)."""

from __future__ import annotations

import json

import pytest
from gateway.sdk import CodecError, Command

from hearth_heatpump.codec import HeatPumpCodec, Setpoints

DEVICE = json.dumps({"model": "HP-9", "name": "Heat pump", "fw": "5.2.1", "setpoint_step_dC": 5,
                     "setpoint_min_dC": 50, "setpoint_max_dC": 300}).encode()
STATUS = json.dumps({"mode": "heating", "activity": "heat", "room_dC": 208, "setpoint_dC": 210, "flow_dC": 352,
                     "outdoor_dC": -45}).encode()


def codec_with_device() -> HeatPumpCodec:
    codec = HeatPumpCodec()
    assert codec.decode("heatpump/HP9-00213/device", DEVICE).problems == []
    return codec


def test_the_device_message_describes_the_controller_and_its_range() -> None:
    (info,) = HeatPumpCodec().decode("heatpump/HP9-00213/device", DEVICE).upserts
    assert (info.id, info.model, info.manufacturer, info.serial) == ("heatpump:hp9-00213", "HP-9", "Nordvik",
                                                                      "HP9-00213")
    assert info.components["main"]["thermostat"].limits["celsius"] == (5.0, 30.0)
    assert set(info.components) == {"main", "outdoor", "flow"}


def test_status_in_tenths_of_a_degree_becomes_celsius() -> None:
    decoded = codec_with_device().decode("heatpump/HP9-00213/status", STATUS)
    assert decoded.problems == []
    assert {(u.component, u.capability, u.attribute): u.value for u in decoded.updates} == {
        ("main", "thermostat", "current_celsius"): 20.8, ("main", "thermostat", "target_celsius"): 21.0,
        ("outdoor", "temperature", "celsius"): -4.5, ("flow", "temperature", "celsius"): 35.2,
        ("main", "thermostat", "mode"): "heat", ("main", "thermostat", "running"): "heating"}


@pytest.mark.parametrize(("payload", "problem"), [
    (b"{", "not JSON"),
    (b'"heating"', "expected a JSON object"),
    (b'{"room_dC": 20.8}', "room_dC must be whole tenths"),
    (b'{"setpoint_dC": 10000}', "from -500 to 1000"),
    (b'{"mode": "turbo"}', "mode must be one of"),
    (b'{"activity": "sleeping"}', "activity must be one of"),
])
def test_bad_payloads_are_problems_naming_what_is_wrong(payload: bytes, problem: str) -> None:
    decoded = codec_with_device().decode("heatpump/HP9-00213/status", payload)
    assert decoded.updates == []
    assert len(decoded.problems) == 1 and problem in decoded.problems[0]


@pytest.mark.parametrize(("asked", "set_to"), [(21.3, 21.5), (21.2, 21.0), (21.0, 21.0), (2.0, 5.0), (45.0, 30.0)])
def test_setpoints_go_to_the_nearest_step_within_the_range(asked: float, set_to: float) -> None:
    assert Setpoints(5, 50, 300).nearest(asked) == set_to


def test_commands_are_encoded_with_what_the_controller_will_report() -> None:
    codec = codec_with_device()
    assert codec.encode(Command("heatpump:hp9-00213", "main", "thermostat", "set_target", {"celsius": 21.3})) == (
        "heatpump/HP9-00213/cmd", b'{"setpoint_dC":215}', {"target_celsius": 21.5})
    assert codec.encode(Command("heatpump:hp9-00213", "main", "thermostat", "set_mode", {"mode": "off"}))[1:] == (
        b'{"mode":"standby"}', {"mode": "off"})
    with pytest.raises(CodecError, match="not in eco"):
        codec.encode(Command("heatpump:hp9-00213", "main", "thermostat", "set_mode", {"mode": "eco"}))
