"""The Shelly Gen2+ model and its MQTT routing, on recorded payloads (sources: tests/fixtures/shelly/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.shelly.codec import (
    ShellyDevice,
    component_names,
    decode_rpc_reply,
    rpc_request,
)
from adapters.shelly.mqtt_codec import ShellyMqttCodec
from gateway.sdk import CodecError, Command, Update, capability

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shelly"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def described(name: str) -> tuple[ShellyDevice, list[Update], Any]:
    data = load(name)
    device = ShellyDevice(data["device_info"]["id"])
    device.apply_device_info(data["device_info"])
    out = device.apply_full_status(data["status"])
    assert out.problems == []
    return device, out.updates, out.upserts[-1]


def values(updates: list[Update]) -> dict[tuple[str, str, str], Any]:
    return {(u.component, u.capability, u.attribute): u.value for u in updates}


def test_every_value_fits_the_model() -> None:
    for name in ("plus1pm.json", "pro4pm.json", "plus2pm_cover.json", "plusht.json", "plusi4.json"):
        _, updates, _ = described(name)
        for u in updates:
            spec = capability(u.capability)
            assert spec is not None and spec.attributes[u.attribute].check(u.value) is None, u


def test_plus_1pm() -> None:
    device, updates, info = described("plus1pm.json")
    assert device.id == "shelly:shellyplus1pm-441793d69718"
    assert (info.name, info.manufacturer, info.model, info.sw_version, info.hw_version, info.mac) == (
        "My shelly plus 1PM", "Shelly", "Plus1PM", "1.3.2", "SNSW-001P16EU", "44:17:93:d6:97:18")
    v = values(updates)
    assert v[("main", "on_off", "on")] is True
    assert v[("main", "power_meter", "volts")] == 236
    assert v[("main", "energy_meter", "kwh")] == 0
    assert v[("main", "connectivity", "rssi_dbm")] == -54
    # the relay's own temperature (60.4 °C) is not the room's
    assert not any(u.capability == "temperature" for u in updates)
    assert set(info.components) == {"main", "input_0"}
    assert info.components["main"]["on_off"].commands == {"on", "off", "toggle"}


def test_pro_4pm_channels_are_components() -> None:
    _, updates, info = described("pro4pm.json")
    assert set(info.components) == {"main", "switch_1", "switch_2", "switch_3",
                                    "input_0", "input_1", "input_2", "input_3"}
    assert values(updates)[("switch_3", "power_meter", "volts")] == 233.2


def test_plus_2pm_cover_mode() -> None:
    device, updates, info = described("plus2pm_cover.json")
    assert set(info.components) == {"main", "input_0", "input_1"}
    cover = info.components["main"]["cover"]
    assert cover.commands == {"open", "close", "stop"}  # not calibrated (pos_control false): no set_position
    assert values(updates)[("main", "cover", "motion")] == "stopped"
    # once calibrated, the position is reported (100 = open, as Shelly) and set_position offered
    out = device.apply_partial_status({"cover:0": {"pos_control": True, "current_pos": 40, "state": "closing"}})
    assert values(out.updates)[("main", "cover", "position_percent")] == 40
    assert values(out.updates)[("main", "cover", "motion")] == "closing"
    assert device.info is not None and "set_position" not in device.info.components["main"]["cover"].commands
    device.apply_full_status({**load("plus2pm_cover.json")["status"],
                              "cover:0": {"id": 0, "state": "open", "current_pos": 100, "pos_control": True}})
    assert "set_position" in device.info.components["main"]["cover"].commands


def test_pro_3em_phases_and_wh_to_kwh() -> None:
    codec = ShellyMqttCodec()
    frame = json.loads((FIXTURES / "capture.jsonl").read_text().splitlines()[6])["payload"]
    assert frame["method"] == "NotifyFullStatus"
    out = codec.decode("garage-meter/events/rpc", orjson.dumps(frame))
    assert out.problems == [] and out.upserts[0].id == "shelly:shellypro3em-1234567890ab"
    v = values(out.updates)
    assert v[("main", "power_meter", "watts")] == -18.017
    assert v[("main", "energy_meter", "kwh")] == pytest.approx(26.28957)  # total_act is Wh
    assert v[("main", "energy_meter", "exported_kwh")] == pytest.approx(131.88186)
    assert v[("l3", "power_meter", "volts")] == 228.3
    assert v[("l3", "power_meter", "power_factor")] == 0.55
    assert v[("l1", "energy_meter", "kwh")] == pytest.approx(0.00006)


def test_plus_ht() -> None:
    _, updates, info = described("plusht.json")
    assert set(info.components) == {"main"}
    v = values(updates)
    assert v[("main", "temperature", "celsius")] == 27.8
    assert v[("main", "humidity", "percent")] == 42.0
    assert v[("main", "battery", "percent")] == 100
    assert v[("main", "battery", "volts")] == 6.18


def test_plus_ht_on_usb_power_has_no_battery_reading() -> None:
    # A Plus H&T on its USB add-on reports battery 0 % at 0.43 V (NotifyFullStatus from
    # iobroker-community-adapters/ioBroker.shelly#896): unknown, not an empty battery.
    device = ShellyDevice("shellyplusht-08b61fcb75b8")
    out = device.apply_full_status({
        "devicepower:0": {"id": 0, "battery": {"V": 0.43, "percent": 0}, "external": {"present": True}},
        "humidity:0": {"id": 0, "rh": 43.8}, "temperature:0": {"id": 0, "tC": 21.6, "tF": 70.9}})
    v = values(out.updates)
    assert v[("main", "battery", "percent")] is None and v[("main", "battery", "volts")] is None
    assert v[("main", "temperature", "celsius")] == 21.6 and out.problems == []
    # Unplugged, on batteries again: a NotifyStatus with the battery alone is a battery reading.
    device.apply_partial_status({"devicepower:0": {"external": {"present": False}}})
    v = values(device.apply_partial_status({"devicepower:0": {"battery": {"V": 6.1, "percent": 98}}}).updates)
    assert v[("main", "battery", "percent")] == 98


def test_inputs_wired_to_wall_switches_are_read_only_on_off() -> None:
    # A Plus i4 whose inputs are set to "switch" reports each input's position in `state` (a real i4 dump in
    # Luligu/matterbridge-shelly); set to "button", `state` is null and presses come as events.
    device = ShellyDevice("shellyplusi4-cc7b5c8aea2c")
    out = device.apply_full_status({f"input:{n}": {"id": n, "state": False} for n in range(4)})
    info = out.upserts[-1]
    assert set(info.components) == {"main", "input_1", "input_2", "input_3"}
    for caps in info.components.values():
        assert set(caps) == {"on_off"} and caps["on_off"].attributes == {"on"} and not caps["on_off"].commands
    assert values(device.apply_partial_status({"input:3": {"id": 3, "state": True}}).updates) == {
        ("input_3", "on_off", "on"): True}
    buttons = ShellyDevice("shellyplusi4-000000000001")
    caps = buttons.apply_full_status({"input:0": {"id": 0, "state": None}}).upserts[-1].components["main"]
    assert set(caps) == {"button"}


def test_input_events_become_button_presses() -> None:
    device, _, info = described("plusi4.json")
    assert set(info.components) == {"main", "input_1", "input_2", "input_3"}
    out = device.apply_events({"ts": 1.0, "events": [
        {"component": "input:0", "id": 0, "event": "single_push", "ts": 1.0},
        {"component": "input:1", "id": 1, "event": "double_push", "ts": 1.0},
        {"component": "input:3", "id": 3, "event": "btn_down", "ts": 1.0},
        {"component": "input:3", "id": 3, "event": "btn_up", "ts": 1.0},
        {"component": "emdata:0", "id": 0, "event": "data", "ts": 1.0},
    ]})
    assert [(e.component, e.data.get("kind"), e.data["action"]) for e in out.events] == [
        ("main", "single", "single_push"), ("input_1", "double", "double_push"),
        ("input_3", None, "btn_down"), ("input_3", "release", "btn_up")]
    assert values(out.updates)[("input_1", "button", "button")] == 1


def test_component_naming_rule() -> None:
    assert component_names(["switch:0", "switch:1", "input:0", "wifi", "sys"]) == {
        "switch:0": "main", "switch:1": "switch_1", "input:0": "input_0", "wifi": "main"}
    assert component_names(["em1:0", "em1:1", "em1data:0", "em1data:1", "switch:0"]) == {
        "switch:0": "main", "em1:0": "em1_0", "em1:1": "em1_1", "em1data:0": "em1_0", "em1data:1": "em1_1"}
    assert component_names(["input:2", "input:3"]) == {"input:2": "main", "input:3": "input_3"}


def test_notify_status_waits_for_a_full_status() -> None:
    device = ShellyDevice("shellypro4pm-a8032ab12345")
    # switch:2 alone would look like the only switch: nothing is said until the full status names components
    assert device.apply_partial_status({"switch:2": {"output": True}}).upserts == []
    out = device.apply_full_status(load("pro4pm.json")["status"])
    assert values(out.updates)[("switch_2", "on_off", "on")] is False  # the full status is newer


COMMANDS = [
    ("pro4pm.json", Command("x", "switch_2", "on_off", "on"), ("Switch.Set", {"id": 2, "on": True})),
    ("pro4pm.json", Command("x", "main", "on_off", "off"), ("Switch.Set", {"id": 0, "on": False})),
    ("pro4pm.json", Command("x", "switch_1", "on_off", "toggle"), ("Switch.Toggle", {"id": 1})),
    ("plus2pm_cover.json", Command("x", "main", "cover", "open"), ("Cover.Open", {"id": 0})),
    ("plus2pm_cover.json", Command("x", "main", "cover", "close"), ("Cover.Close", {"id": 0})),
    ("plus2pm_cover.json", Command("x", "main", "cover", "stop"), ("Cover.Stop", {"id": 0})),
    ("plus2pm_cover.json", Command("x", "main", "cover", "set_position", {"percent": 30}),
     ("Cover.GoToPosition", {"id": 0, "pos": 30})),
]


@pytest.mark.parametrize(("fixture", "command", "expected"), COMMANDS)
def test_commands_are_rpc_calls(fixture: str, command: Command, expected: tuple[str, dict[str, Any]]) -> None:
    device, _, _ = described(fixture)
    assert device.encode(command) == expected


def test_light_set_with_brightness() -> None:
    device = ShellyDevice("shellyplusdimmer-aabbccddeeff")
    out = device.apply_full_status({"light:0": {"id": 0, "output": True, "brightness": 47}})
    assert values(out.updates)[("main", "level", "percent")] == 47
    assert device.encode(Command("x", "main", "level", "set", {"percent": 60, "transition_s": 2})) == (
        "Light.Set", {"id": 0, "on": True, "brightness": 60, "transition_duration": 2})
    assert device.encode(Command("x", "main", "on_off", "on")) == ("Light.Set", {"id": 0, "on": True})
    with pytest.raises(CodecError):
        device.encode(Command("x", "main", "cover", "open"))


def test_rpc_frames_and_replies() -> None:
    assert orjson.loads(rpc_request(7, "hearth-ab12cd", "Switch.Set", {"id": 0, "on": True})) == {
        "id": 7, "src": "hearth-ab12cd", "method": "Switch.Set", "params": {"id": 0, "on": True}}
    ok = decode_rpc_reply({"id": 7, "src": "shellyplus1pm-441793d69718", "dst": "hearth-ab12cd",
                           "result": {"was_on": False}})
    assert ok.ok and ok.result == {"was_on": False}
    # a genuine error frame (recorded in a comment of the myhome Go project, see the fixtures README)
    err = decode_rpc_reply({"dst": "NCELRND1279_shellyplus1-08b61fd9333c", "id": 0,
                            "error": {"code": -109, "message": "shutting down in 952 ms"}})
    assert not err.ok and err.error == "shutting down in 952 ms (code -109)"
    for bad in ([], {"id": True, "result": 1}, {"id": 1}):
        with pytest.raises(CodecError):
            decode_rpc_reply(bad)


def test_mqtt_routing_learns_the_id_from_src_and_keeps_early_status() -> None:
    codec = ShellyMqttCodec()
    # a status topic under a custom prefix before any frame: kept, not guessed
    early = codec.decode("garage-meter/status/emdata:0", b'{"id":0,"total_act":1000.0}')
    assert early.updates == [] and early.problems == [] and early.discover == []
    online = codec.decode("garage-meter/online", b"true")
    assert online.discover == ["garage-meter"]
    frame = {"src": "shellypro3em-1234567890ab", "method": "NotifyFullStatus",
             "params": {"em:0": {"id": 0, "total_act_power": 5.0}, "emdata:0": {"id": 0, "total_act": 1.0}}}
    out = codec.decode("garage-meter/events/rpc", orjson.dumps(frame))
    codec.after_upserts(out)
    assert ("shelly:shellypro3em-1234567890ab", True) in out.availability
    assert values(out.updates)[("main", "energy_meter", "kwh")] == 0.001
    # someone else's "<x>/online" is not ours
    assert codec.decode("ebusd/online", b"online").discover == []


def test_bad_payloads_are_problems_not_exceptions() -> None:
    codec = ShellyMqttCodec()
    assert codec.decode("shellyplus1pm-441793d69718/events/rpc", b"{nope").problems
    assert codec.decode("shellyplus1pm-441793d69718/events/rpc", b'{"method":"NotifyStatus"}').problems
    device, _, _ = described("plus1pm.json")
    out = device.apply_partial_status({"switch:0": {"output": "yes", "apower": float("inf"), "voltage": -3}})
    assert len(out.problems) == 3 and out.updates == []


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                      st.text(max_size=8))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["output", "apower", "aenergy", "total", "current_pos", "state", "pos_control", "tC", "rh", "battery",
         "percent", "V", "external", "present", "total_act", "a_act_power", "act_power", "brightness", "rssi",
         "lux", "alarm", "wakeup_period", "mac", "app", "events", "component", "event", "id"]),
        inner, max_size=5)), max_leaves=12)
status_key = st.sampled_from(["switch:0", "switch:1", "cover:0", "light:0", "em:0", "emdata:0", "em1:0", "em1data:0",
                              "pm1:0", "pm1:1", "input:0", "temperature:0", "temperature:100", "humidity:0",
                              "devicepower:0", "illuminance:0", "smoke:0", "flood:0", "wifi", "sys", "cloud", "x:y",
                              "switch:", "switch:-1"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(status_key, json_value, max_size=5), st.dictionaries(status_key, json_value, max_size=5),
       json_value)
def test_fuzzed_frames_never_raise(full: dict[str, Any], partial: dict[str, Any], events: Any) -> None:
    codec = ShellyMqttCodec()
    for method, params in (("NotifyFullStatus", full), ("NotifyStatus", partial), ("NotifyEvent", events)):
        out = codec.decode("shellyx-aabbccddeeff/events/rpc",
                           orjson.dumps({"src": "shellyx-aabbccddeeff", "method": method, "params": params},
                                        option=orjson.OPT_NON_STR_KEYS))
        for u in out.updates:
            spec = capability(u.capability)
            assert spec is not None and spec.attributes[u.attribute].check(u.value) is None
    codec.decode("shellyx-aabbccddeeff/status/switch:0", orjson.dumps(partial, option=orjson.OPT_NON_STR_KEYS))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), st.binary(max_size=60))
def test_fuzzed_topics_never_raise(topic: str, payload: bytes) -> None:
    ShellyMqttCodec().decode(topic, payload)


# A sleeping model (never asked), a mains model, a model nobody knows: the status-topic path of each.
status_prefix = st.sampled_from(["shellyplusht-08b61fcd36a8", "shellypro3em-a0dd6ca0c27c", "shellyx-aabbccddeeff",
                                 "garden/ht"])
status_message = st.one_of(
    st.tuples(st.just("status"), status_key, json_value),
    st.tuples(st.just("status"), status_key, st.binary(max_size=30)),
    st.tuples(st.just("online"), st.just(""), st.sampled_from([b"true", b"false", b"", b"online", b"\xff"])),
    st.tuples(st.just("notify"), st.just(""), st.dictionaries(status_key, json_value, max_size=4)),
)


@settings(max_examples=300, deadline=None)
@given(status_prefix, st.lists(status_message, max_size=12))
def test_fuzzed_status_topics_never_raise(prefix: str, messages: list[tuple[str, str, Any]]) -> None:
    """Status topics (mqtt.status_ntf) in any order, with any payload, mixed with online and NotifyStatus: every
    bad one is a problem, never an exception; every value reported fits the model; a device is described by a
    status topic of ours or not at all."""
    codec = ShellyMqttCodec()
    shelly_id = prefix if "/" not in prefix else "shellyx-0123456789ab"
    for kind, key, body in messages:
        if kind == "status":
            payload = body if isinstance(body, bytes) else orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
            out = codec.decode(f"{prefix}/status/{key}", payload)
        elif kind == "online":
            out = codec.decode(f"{prefix}/online", body)
        else:
            frame = {"src": shelly_id, "method": "NotifyStatus", "params": body}
            out = codec.decode(f"{prefix}/events/rpc", orjson.dumps(frame, option=orjson.OPT_NON_STR_KEYS))
        codec.after_upserts(out)
        for u in out.updates:
            spec = capability(u.capability)
            assert spec is not None and spec.attributes[u.attribute].check(u.value) is None, u
            assert u.device_id == f"shelly:{shelly_id}"
        for info in out.upserts:
            assert info.id == f"shelly:{shelly_id}"
    for device in codec.devices.values():
        assert device.info is None or device.info.components
