"""`hearth replay` of the package's own capture (the one `hearth plugin check` replays too)."""

from __future__ import annotations

from pathlib import Path

from gateway.testing import assert_device, assert_value, replay

CAPTURES = Path(__file__).resolve().parents[1] / "src" / "hearth_heatpump" / "captures"


async def test_a_winter_morning_replays_without_a_problem() -> None:
    report = await replay(CAPTURES / "nordvik-hp9.jsonl")
    assert report.errors_from("heatpump") == [] and report.errors_from("capture") == []
    assert_device(report, "heatpump:hp9-00213", name="Heat pump", manufacturer="Nordvik")
    assert_value(report, "heatpump:hp9-00213", "thermostat", "target_celsius", 21.0)
    assert_value(report, "heatpump:hp9-00213", "thermostat", "current_celsius", 20.8)
    assert_value(report, "heatpump:hp9-00213", "temperature", "celsius", -4.8, component="outdoor")
