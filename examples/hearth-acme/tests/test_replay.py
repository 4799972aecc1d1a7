"""`hearth replay` of the package's own capture (the one `hearth plugin check` replays too)."""

from __future__ import annotations

from pathlib import Path

from gateway.testing import assert_device, assert_value, replay

CAPTURES = Path(__file__).resolve().parents[1] / "src" / "hearth_acme" / "captures"


async def test_the_capture_replays_without_a_problem() -> None:
    report = await replay(CAPTURES / "acme-purifiers.jsonl")
    assert report.errors_from("acme") == [] and report.errors_from("capture") == []
    assert [d for d in report.devices if d.startswith("acme:")] == ["acme:ap3k-0042", "acme:ap5k-0107"]
    bedroom = assert_device(report, "acme:ap3k-0042", name="Bedroom purifier", available=True)
    assert bedroom.components["main"]["acme.filter"] == {"life_percent": 82}  # the plugin's own capability
    assert_value(report, "acme:ap3k-0042", "fan", "speed_percent", 67)
    assert_value(report, "acme:ap5k-0107", "fan", "speed_percent", 80)  # speed 4 of 5
    assert_device(report, "acme:ap5k-0107", available=False)
