"""The mapping table and the pairing codes, without a network: Hearth's Python and the sidecar's JavaScript plan the
same endpoints and compute the same codes (matter.js's own codecs are the reference for the codes)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway.matter.mapping import DEVICE_TYPES, NOT_MAPPED, docs_table, mapping_json, plan_device
from gateway.matter.pairing import (
    INVALID_PASSCODES,
    PairingError,
    load_or_create,
    manual_code,
    qr_payload,
    reset_fabrics,
)
from gateway.model.capabilities import CORE_CAPABILITIES
from tests.matter.conftest import SIDECAR, need_node


def _support(*attributes: str) -> dict[str, Any]:
    return {"attributes": list(attributes), "commands": []}


# Devices as GET /api/devices/{id} shows them: every branch of the planner (a tag, channels, a capability taken by
# the first device type, attributes and capabilities that do not map, connectivity, nothing at all).
DEVICES: list[dict[str, Any]] = [
    {"id": "t:bulb", "tags": [], "capabilities": {"main": {
        "on_off": _support("on"), "level": _support("percent"),
        "color_temperature": _support("kelvin", "min_kelvin", "max_kelvin"),
        "connectivity": _support("online", "lqi")}}},
    {"id": "t:rgb", "tags": [], "capabilities": {"main": {
        "on_off": _support("on"), "level": _support("percent"), "color": _support("hue", "saturation")}}},
    {"id": "t:lamp-plug", "tags": ["light"], "capabilities": {"main": {"on_off": _support("on")}}},
    {"id": "t:relay", "tags": [], "capabilities": {"l1": {"on_off": _support("on")}, "l2": {"on_off": _support("on")},
                                                   "main": {"power_meter": _support("watts")}}},
    {"id": "t:trv", "tags": [], "capabilities": {"main": {
        "thermostat": _support("current_celsius", "target_celsius", "mode", "running", "window_open"),
        "battery": _support("percent"), "temperature": _support("celsius")}}},
    {"id": "t:multi", "tags": [], "capabilities": {"main": {
        "temperature": _support("celsius"), "humidity": _support("percent"), "pressure": _support("hpa"),
        "illuminance": _support("lux", "percent"), "occupancy": _support("occupied"),
        "contact": _support("open"), "water_leak": _support("leak")}}},
    {"id": "t:siren", "tags": [], "capabilities": {"main": {"siren": _support("on"), "vibration": _support("detected"),
                                                            "plugin.thing": _support("x")}}},
    {"id": "t:empty", "tags": [], "capabilities": {}},
]


def test_the_python_plan_of_each_device() -> None:
    plans = {d["id"]: plan_device(d) for d in DEVICES}
    assert plans["t:bulb"].endpoints == (("main", "color_temperature_light"),)
    assert plans["t:rgb"].endpoints == (("main", "extended_color_light"),)
    assert plans["t:rgb"].unmapped == ()
    assert plans["t:lamp-plug"].endpoints == (("main", "on_off_light"),)
    assert plans["t:relay"].endpoints == (("l1", "on_off_plug_in_unit"), ("l2", "on_off_plug_in_unit"))
    assert plans["t:trv"].endpoints == (("main", "thermostat"), ("main", "temperature_sensor"))
    assert {(u["capability"], u.get("attribute")) for u in plans["t:trv"].unmapped} == {
        ("thermostat", "window_open"), ("battery", None)}
    assert len(plans["t:multi"].endpoints) == 7
    assert [u for u in plans["t:multi"].unmapped] == [
        {"component": "main", "capability": "illuminance", "attribute": "percent",
         "reason": "Light Sensor has no attribute for it"}]
    assert plans["t:bulb"].unmapped == ({"component": "main", "capability": "connectivity", "attribute": "lqi",
                                         "reason": "Bridged Device Basic Information has no attribute for it"},)
    assert plans["t:siren"].endpoints == ()
    assert {u["reason"] for u in plans["t:siren"].unmapped} >= {"no Matter device type takes it",
                                                                NOT_MAPPED["siren"]}
    assert plans["t:empty"] == plan_device({"id": "t:empty"})


def test_every_capability_of_the_model_is_mapped_or_says_why_not() -> None:
    mapped = {cap for rule in DEVICE_TYPES for cap in rule.capabilities()}
    for spec in CORE_CAPABILITIES:
        assert spec.name in mapped or spec.name in NOT_MAPPED or spec.name == "connectivity", spec.name
    # A capability left over on a component says why (a plug's meter without the plug, a colour without dimming).
    assert set(NOT_MAPPED) <= {spec.name for spec in CORE_CAPABILITIES}
    # Every binding names an attribute of the model.
    for rule in DEVICE_TYPES:
        for cluster in rule.clusters:
            for binding in cluster.bindings:
                spec = next(s for s in CORE_CAPABILITIES if s.name == binding.capability)
                assert binding.hearth_attribute in spec.attributes, binding.source
                if binding.command:
                    values = binding.command.get("values", {}).values()
                    names = ([binding.command["command"]] if "command" in binding.command
                             else [v if isinstance(v, str) else v["command"] for v in values] if values
                             else [binding.command["true"], binding.command["false"]])
                    assert set(names) <= set(spec.commands), binding.source


def test_the_docs_table_names_every_device_type_and_every_reason() -> None:
    table = docs_table()
    for rule in DEVICE_TYPES:
        assert f"| {rule.name} | `0x{rule.device_type_id:04X}`" in table
    for cap in NOT_MAPPED:
        assert f"| `{cap}` |" in table


def _node(script: str, payload: Any) -> Any:
    out = subprocess.run(["node", "--input-type=module", "-e", script], input=json.dumps(payload), cwd=SIDECAR,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_sidecar_plans_exactly_what_python_plans() -> None:
    need_node()
    script = """
        import { planDevice } from "./mapping.mjs";
        let text = ""; for await (const chunk of process.stdin) text += chunk;
        const { mapping, devices } = JSON.parse(text);
        const plans = devices.map(d => { const p = planDevice(mapping, d);
            return { device: d.id, endpoints: p.planned.map(e => ({ component: e.component, device_type: e.rule.key })),
                     unmapped: p.unmapped }; });
        console.log(JSON.stringify(plans));
    """
    plans = _node(script, {"mapping": mapping_json(), "devices": DEVICES})
    assert plans == [plan_device(d).as_dict() for d in DEVICES]


def test_the_sidecar_converts_both_ways() -> None:
    need_node()
    script = """
        import { toMatter, fromMatter } from "./mapping.mjs";
        const out = {
            centi: toMatter(21.456, { kind: "scale", factor: 100 }),
            clamped: toMatter(3, { kind: "scale", factor: 100, min: 500, max: 3500 }),
            back: fromMatter(2250, { kind: "scale", factor: 100 }),
            level: [toMatter(0, { kind: "level" }), toMatter(50, { kind: "level" }), toMatter(100, { kind: "level" })],
            percent: fromMatter(127, { kind: "level" }),
            mireds: [toMatter(4000, { kind: "mireds" }), fromMatter(250, { kind: "mireds" })],
            lux: [toMatter(0, { kind: "lux" }), toMatter(1, { kind: "lux" }), toMatter(1000, { kind: "lux" })],
            not: toMatter(true, { kind: "not" }),
            mode: [toMatter("eco", { kind: "map", to: { eco: 4 }, back: { "4": "heat" } }),
                   toMatter("dry", { kind: "map", to: { eco: 4 } }) ?? null,
                   fromMatter(4, { kind: "map", to: {}, back: { "4": "heat" } })],
        };
        console.log(JSON.stringify(out));
    """
    assert _node(script, None) == {
        "centi": 2146, "clamped": 500, "back": 22.5, "level": [1, 127, 254], "percent": 50, "mireds": [250, 4000],
        "lux": [0, 1, 30001], "not": False, "mode": [4, None, "heat"]}


# -------------------------------------------------------------------- pairing


def test_the_codes_are_those_of_matter_js() -> None:
    need_node()
    cases = [(20202021, 3840, 0xFFF1, 0x8000), (1, 0, 0xFFF1, 0x8000), (99999998, 4095, 0x1234, 0xABCD),
             (34567890, 2049, 0xFFF2, 1), (12121213, 513, 65521, 32768)]
    script = """
        import { ManualPairingCodeCodec, QrPairingCodeCodec } from "@matter/main/types";
        let text = ""; for await (const chunk of process.stdin) text += chunk;
        console.log(JSON.stringify(JSON.parse(text).map(([passcode, discriminator, vendorId, productId]) => [
            ManualPairingCodeCodec.encode({ passcode, discriminator }),
            QrPairingCodeCodec.encode([{ version: 0, vendorId, productId, flowType: 0, discoveryCapabilities: 4,
                                         discriminator, passcode }]),
        ])));
    """
    assert _node(script, cases) == [[manual_code(p, d), qr_payload(p, d, v, i)] for p, d, v, i in cases]


def test_the_pairing_data_is_made_once_private_and_never_a_well_known_passcode(tmp_path: Path) -> None:
    first = load_or_create(tmp_path)
    assert load_or_create(tmp_path) == first
    path = tmp_path / "matter" / "pairing.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.passcode not in INVALID_PASSCODES and 0 < first.passcode < 10**8
    assert 0 <= first.discriminator <= 4095
    path.write_text(json.dumps({"passcode": 20202021, "discriminator": 3840, "serial": "x"}))
    with pytest.raises(PairingError, match="out of range"):
        load_or_create(tmp_path)


def test_reset_forgets_the_fabrics_and_keeps_the_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import main

    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    data = load_or_create(tmp_path)
    (tmp_path / "matter" / "fabrics" / "hearth-bridge").mkdir(parents=True)
    assert main(["matter", "reset", "--yes"]) == 0
    assert not (tmp_path / "matter" / "fabrics").exists()
    assert load_or_create(tmp_path) == data
    assert not reset_fabrics(tmp_path)
    # While a sidecar of this data directory runs, reset refuses.
    (tmp_path / "matter" / "sidecar.pid").write_text(f"{os.getpid()}\n")
    assert main(["matter", "reset", "--yes"]) == 1


def test_pair_prints_the_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.cli import main

    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    assert main(["matter", "pair", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    data = load_or_create(tmp_path)
    assert info["manual_code"] == manual_code(data.passcode, data.discriminator)
    assert info["qr_payload"] == qr_payload(data.passcode, data.discriminator, 0xFFF1, 0x8000)
    assert main(["matter", "pair"]) == 0
    assert info["manual_code_formatted"] in capsys.readouterr().out
