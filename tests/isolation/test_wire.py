"""The wire between the gateway and a worker: the SDK's values survive the trip field by field, and whatever a
worker sends instead, a decoder says what is wrong with a WireError (never another exception)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.isolation import _wire as wire
from gateway.model import capability
from gateway.model.types import (
    CapabilitySupport,
    Command,
    CommandResult,
    Device,
    DeviceEventUpdate,
    DeviceInfo,
    Update,
)

INFO = DeviceInfo("acme:42", "Kettle", "acme", {"main": {
    "on_off": CapabilitySupport(frozenset({"on"}), frozenset({"on", "off"})),
    "level": CapabilitySupport(frozenset({"percent"}), frozenset({"set"}), {"percent": (10.0, None)})}},
    manufacturer="Acme", model="K1", suggested_area="kitchen", aliases=("kettle",))


def trip(value: Any) -> Any:
    """Through the encoder and back, as a line on the socket."""
    return wire.decode(wire.encode({"op": "x", "v": value}))["v"]


def test_values_survive_the_trip() -> None:
    assert wire.info_from_wire(trip(wire.info_to_wire(INFO))) == INFO
    device = Device("acme:42", "Kettle", "acme", "acme", area="Kitchen", tags=("always_on",), available=True,
                    support=INFO.components, state={"main": {"on_off": {"on": True}}}, last_update=1.5)
    assert wire.device_from_wire(trip(wire.device_to_wire(device))) == device
    updates = [Update("acme:42", "main", "on_off", "on", True), Update("acme:42", "main", "level", "percent", 40)]
    assert wire.updates_from_wire(trip(wire.updates_to_wire(updates))) == updates
    event = DeviceEventUpdate("acme:42", "main", "button", "pressed", {"button": 1})
    assert wire.event_from_wire(trip(wire.event_to_wire(event))) == event
    command = Command("acme:42", "main", "level", "set", {"percent": 40}, source="scene:night")
    assert wire.command_from_wire(trip(wire.command_to_wire(command))) == command
    result = CommandResult("sent", "published", expected={"percent": 40}, details={"topic": "a/b"})
    assert wire.result_from_wire(trip(wire.result_to_wire(result))) == result
    for name in ("thermostat", "button", "level"):
        spec = capability(name)
        assert spec is not None
        assert wire.capability_from_wire(trip(wire.capability_to_wire(spec))) == spec


def test_payloads_are_text_when_they_can_be() -> None:
    assert wire.payload_fields(b'{"on": true}') == {"text": '{"on": true}'}
    assert wire.payload_of(trip(wire.payload_fields(b'{"on": true}'))) == b'{"on": true}'
    assert "b64" in wire.payload_fields(b"\xff\x00")
    assert wire.payload_of(trip(wire.payload_fields(b"\xff\x00"))) == b"\xff\x00"


@pytest.mark.parametrize("line", [b"", b"nope", b"[1]", b'{"op": 1}', b"\xff\xfe", b'{"op": "x"'])
def test_a_line_that_is_no_message_is_a_wire_error(line: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(line)


DECODERS: list[Callable[[Any], Any]] = [
    wire.info_from_wire, wire.device_from_wire, wire.updates_from_wire, wire.event_from_wire,
    wire.command_from_wire, wire.result_from_wire, wire.capability_from_wire, wire.support_from_wire,
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(value=JSON, index=st.integers(0, len(DECODERS) - 1))
def test_whatever_a_worker_sends_a_decoder_raises_only_wire_errors(value: Any, index: int) -> None:
    with contextlib.suppress(wire.WireError):
        DECODERS[index](value)


@settings(max_examples=100, deadline=None)
@given(info=st.fixed_dictionaries({
    "id": st.text(max_size=8), "name": st.text(max_size=8), "source": st.text(max_size=8),
    "components": st.dictionaries(st.text(max_size=4), st.dictionaries(st.text(max_size=4), JSON, max_size=2),
                                  max_size=2),
}, optional={"aliases": JSON, "model": JSON, "via": JSON}))
def test_a_nearly_right_device_info_raises_only_wire_errors(info: dict[str, Any]) -> None:
    with contextlib.suppress(wire.WireError):
        wire.info_from_wire(info)


CAPABILITY_PARTS = st.fixed_dictionaries({
    "name": st.sampled_from(["probe.thing", "x"]) | st.text(max_size=4),
    "attributes": st.dictionaries(st.text(max_size=4), st.fixed_dictionaries(
        {"type": st.sampled_from(["bool", "number", "enum", "nope"]) | JSON},
        optional={"minimum": JSON, "values": JSON, "settable": JSON, "unit": JSON}), max_size=2),
}, optional={"commands": st.dictionaries(st.text(max_size=4), st.fixed_dictionaries(
    {}, optional={"args": JSON, "expect": JSON, "steps": JSON}), max_size=2), "events": JSON, "ha": JSON})


@settings(max_examples=100, deadline=None)
@given(spec=CAPABILITY_PARTS)
def test_a_nearly_right_capability_raises_only_wire_errors(spec: dict[str, Any]) -> None:
    with contextlib.suppress(wire.WireError):
        made = wire.capability_from_wire(spec)
        # What got through is of the types the model says: it describes itself without error.
        for attribute in made.attributes.values():
            attribute.check(None)
            assert isinstance(attribute.values, tuple) and all(isinstance(v, str) for v in attribute.values)
