"""The capabilities issue 17 added reach scenes' selectors and `hearth replay`: a profile written from the
reference (docs/capabilities.md) that reads gas.detected, switches a siren, and reads a meter's phase, on
real Zigbee2MQTT definitions (tests/fixtures/z2m/zhc_exposes.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main

MODELS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "z2m" / "zhc_exposes.json").read_text())["models"]

PROFILE = '''
name = "gas-watch"
version = 1
description = "Sound the siren and tell the family when the kitchen smells gas; note a phase overload."

[[scenes]]
id = "gas"
name = "Gas in the kitchen"
triggers = [{ kind = "state", selector = { capability = "gas" }, attribute = "gas.detected", to = true }]

[[scenes.actions]]
kind = "command"
target = { capability = "siren" }
capability = "siren"
command = "on"
args = { tone = "fire" }

[[scenes.actions]]
kind = "alert"
alert = "gas"
severity = "critical"
title = "Gas"
message = "{device} smells gas."
notify = ["log"]

[[scenes]]
id = "overload"
name = "A phase over 3 kW"

[[scenes.triggers]]
kind = "state"
selector = { capability = "power_meter" }
attribute = "power_meter.watts"
above = 3000
for = "1m"

[[scenes.actions]]
kind = "notify"
to = ["log"]
title = "Overload"
message = "{device}: {value} W."
'''


def line(t: str, topic: str, payload: Any, retain: bool = False) -> str:
    return json.dumps({"t": f"2026-03-10T{t}.000Z", "source": "mqtt", "topic": topic, "payload": payload,
                       "retain": retain})


def test_a_profile_on_gas_a_siren_and_a_phase(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    devices = [{"ieee_address": f"0x00000000000000{i:02x}", "friendly_name": name, "type": "Router",
                "power_source": "Mains (single phase)",
                "definition": {"model": model, "vendor": MODELS[model]["vendor"], "exposes": MODELS[model]["exposes"]}}
               for i, (name, model) in enumerate([("kitchen/gas", "DCR-RQJ"), ("hall/siren", "LDSENK06"),
                                                   ("cellar/meter", "ATMS10013Z3")])]
    capture = tmp_path / "day.jsonl"
    capture.write_text("\n".join([
        line("07:00:00", "zigbee2mqtt/bridge/devices", devices, retain=True),
        line("07:00:01", "zigbee2mqtt/kitchen/gas", {"gas": False, "gas_value": 0}),
        line("07:00:02", "zigbee2mqtt/cellar/meter", {"power_a": 800, "power_b": 900, "power_c": 700}),
        line("09:00:00", "zigbee2mqtt/cellar/meter", {"power_a": 800, "power_b": 3400, "power_c": 700}),
        line("09:05:00", "zigbee2mqtt/cellar/meter", {"power_a": 800, "power_b": 3400, "power_c": 700}),
        line("12:00:00", "zigbee2mqtt/kitchen/gas", {"gas": True, "gas_value": 14}),
    ]) + "\n")
    profile = tmp_path / "gas-watch.toml"
    profile.write_text(PROFILE)
    assert main(["profile", "check", str(profile)]) == 0
    capsys.readouterr()
    assert main(["replay", str(capture), "--profile", str(profile), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["errors"] == []
    assert [(a["t"][11:19], a["device"], a["capability"], a["command"], a["args"]) for a in result["actions"]] == [
        ("12:00:00", "zigbee2mqtt:0x0000000000000001", "siren", "on", {"tone": "fire"})]
    assert [(a["scene"], a["severity"], a["message"]) for a in result["alerts"]] == [
        ("gas-watch.gas", "critical", "kitchen/gas smells gas.")]
    # phase B over 3 kW for a minute (its own component, l2), once
    overloads = [(n["t"][11:19], n["message"]) for n in result["notifications"] if n["title"] == "Overload"]
    assert overloads == [("09:01:00", "cellar/meter: 3400 W.")]
    meter = next(d for d in result["devices"] if d["name"] == "cellar/meter")
    assert meter["components"]["l2"]["power_meter"]["watts"] == 3400
