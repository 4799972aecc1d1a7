"""The capability model as data: validation errors a user would see, expectations, the schema."""

from __future__ import annotations

import pytest

from gateway.errors import CommandErrorReason, CommandValidationError, HearthError
from gateway.model import (
    CapabilitySpec,
    capabilities,
    capability,
    expected_state,
    json_schema,
    matches_expected,
    register_capability,
    validate_command,
)
from gateway.model._spec import ArgSpec, AttributeSpec, CommandSpec
from gateway.model.types import CapabilitySupport, Command, Device


def lamp() -> Device:
    return Device(
        id="test:lamp", name="Lamp", source="test", adapter="test",
        support={
            "main": {
                "on_off": CapabilitySupport(frozenset({"on"}), frozenset({"on", "off", "toggle"})),
                "level": CapabilitySupport(frozenset({"percent"}), frozenset({"set"})),
                "color_temperature": CapabilitySupport(
                    frozenset({"kelvin"}), frozenset({"set"}), limits={"kelvin": (2200, 4000)}
                ),
            },
            "l2": {"on_off": CapabilitySupport(frozenset({"on"}), frozenset())},
        },
        state={"main": {"on_off": {"on": False}}},
    )


def cmd(capability: str, command: str, args: dict | None = None, component: str = "main") -> Command:
    return Command("test:lamp", component, capability, command, args or {})


def test_every_capability_in_capabilities_md_is_defined() -> None:
    names = {
        "on_off", "level", "color_temperature", "color", "power_meter", "energy_meter", "temperature",
        "humidity", "illuminance", "pressure", "air_quality", "occupancy", "contact", "water_leak",
        "smoke_co_alarm", "vibration", "tamper", "battery", "button", "thermostat", "valve", "cover", "lock",
        "fan", "identify", "connectivity", "presence", "appliance",
    }
    assert names <= set(capabilities())
    assert capability("contact").attributes["open"].type == "bool"  # type: ignore[union-attr]
    assert capability("energy_meter").attributes["kwh"].unit == "kWh"  # type: ignore[union-attr]
    assert capability("cover").attributes["position_percent"].maximum == 100  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("command", "field", "reason"),
    [
        (cmd("dimmer", "set", {"percent": 5}), "capability", CommandErrorReason.UNKNOWN_CAPABILITY),
        (cmd("on_off", "on", component="l9"), "component", CommandErrorReason.UNKNOWN_COMPONENT),
        (cmd("temperature", "set"), "capability", CommandErrorReason.UNSUPPORTED_CAPABILITY),
        (cmd("on_off", "blink"), "command", CommandErrorReason.UNKNOWN_COMMAND),
        (cmd("on_off", "on", component="l2"), "command", CommandErrorReason.UNSUPPORTED_COMMAND),
        (cmd("level", "set"), "args.percent", CommandErrorReason.MISSING_ARGUMENT),
        (cmd("level", "set", {"percent": 120}), "args.percent", CommandErrorReason.OUT_OF_RANGE),
        (cmd("level", "set", {"percent": "50"}), "args.percent", CommandErrorReason.WRONG_TYPE),
        (cmd("level", "set", {"percent": True}), "args.percent", CommandErrorReason.WRONG_TYPE),
        (cmd("level", "set", {"percent": float("nan")}), "args.percent", CommandErrorReason.OUT_OF_RANGE),
        (cmd("level", "set", {"percent": 5, "speed": 1}), "args.speed", CommandErrorReason.UNKNOWN_ARGUMENT),
        (cmd("color_temperature", "set", {"kelvin": 6500}), "args.kelvin", CommandErrorReason.OUT_OF_RANGE),
    ],
)
def test_validation_names_the_bad_field(command: Command, field: str, reason: CommandErrorReason) -> None:
    with pytest.raises(CommandValidationError) as info:
        validate_command(lamp(), command)
    assert info.value.field == field
    assert info.value.reason == reason
    assert info.value.message


def test_device_limit_message_says_it_is_this_devices_limit() -> None:
    with pytest.raises(CommandValidationError, match="this device's maximum 4000"):
        validate_command(lamp(), cmd("color_temperature", "set", {"kelvin": 6500}))


def test_valid_commands_pass_and_integers_are_normalised() -> None:
    ok = validate_command(lamp(), cmd("level", "set", {"percent": 40, "transition_s": 2}))
    assert ok.args == {"percent": 40, "transition_s": 2}


def test_expected_state_follows_the_model() -> None:
    device = lamp()
    assert expected_state(cmd("on_off", "on"), device) == {"on": True}
    assert expected_state(cmd("on_off", "toggle"), device) == {"on": True}
    assert expected_state(cmd("level", "set", {"percent": 30}), device) == {"percent": 30}
    # l2 reports nothing it could confirm with
    device.support["l2"]["on_off"] = CapabilitySupport(frozenset(), frozenset({"on"}))
    assert expected_state(cmd("on_off", "on", component="l2"), device) == {}


def test_matches_expected_tolerates_device_rounding_but_not_booleans() -> None:
    assert matches_expected(50.0, 50.39)  # 50 % -> 127/254 -> 50.0 %
    assert matches_expected(2700, 2702.7)  # kelvin -> 370 mireds -> kelvin
    assert not matches_expected(50.0, 60.0)
    assert not matches_expected(True, 1)
    assert matches_expected("heat", "heat")


def test_plugin_capabilities_need_a_dotted_name() -> None:
    spec = CapabilitySpec(
        "acme.coffee_maker",
        {"cups": AttributeSpec("integer", None, 0, 12)},
        {"brew": CommandSpec({"cups": ArgSpec("integer", None, 1, 12)})},
    )
    register_capability(spec)
    assert capability("acme.coffee_maker") is spec
    with pytest.raises(HearthError, match="dotted"):
        register_capability(CapabilitySpec("coffee", {}))
    with pytest.raises(HearthError, match="already registered"):
        register_capability(CapabilitySpec("acme.coffee_maker", {}))


def test_json_schema_describes_attributes_and_commands() -> None:
    schema = json_schema()
    level = schema["$defs"]["level"]
    percent = level["properties"]["percent"]["anyOf"][0]
    assert percent == {"type": "number", "minimum": 0, "maximum": 100, "unit": "%", "readOnly": False}
    assert level["x-commands"]["set"]["required"] == ["percent"]
    assert schema["$defs"]["temperature"]["properties"]["celsius"]["anyOf"][0]["readOnly"] is True
    assert schema["properties"]["contact"] == {"$ref": "#/$defs/contact"}
