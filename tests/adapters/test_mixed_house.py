"""One house, every MQTT convention at once: Zigbee2MQTT, Home Assistant discovery, Tasmota, Shelly,
Homie and BLE-to-MQTT gateways on one broker. Each recording replayed alone and all of them replayed
together must give exactly the same devices and values: no topic clashes, no device twice."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.replay import parse_time, replay

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURES = {
    "zigbee2mqtt": FIXTURES / "z2m" / "capture.jsonl",
    "homeassistant": FIXTURES / "homeassistant" / "capture.jsonl",
    "tasmota": FIXTURES / "tasmota" / "capture.jsonl",
    "shelly": FIXTURES / "shelly" / "capture.jsonl",
    "homie": FIXTURES / "homie" / "capture.jsonl",
}


def ble_gateway_capture(tmp_path: Path) -> Path:
    """tests/fixtures/ble/gateways.jsonl holds gateway messages (topic, payload): give them times."""
    lines = []
    for i, line in enumerate((FIXTURES / "ble" / "gateways.jsonl").read_text().splitlines()):
        message = json.loads(line)
        lines.append(json.dumps({"t": 1705302600 + i, "source": "mqtt", "topic": message["topic"],
                                 "payload": message["payload"]}))
    path = tmp_path / "ble.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def without_online(components: dict) -> dict:
    return {c: {cap: {a: v for a, v in attrs.items() if (cap, a) != ("connectivity", "online")}
                for cap, attrs in caps.items()} for c, caps in components.items()}


def _without_line(message: str) -> str:
    return re.sub(r"^[\w.-]+\.jsonl:\d+: ", "", message)


def by_id(result: object) -> dict[str, dict]:
    return {d["id"]: d for d in result.devices}  # type: ignore[attr-defined]


async def test_all_conventions_together_give_the_union_of_each_alone(tmp_path: Path) -> None:
    alone: dict[str, dict] = {}
    errors_alone: list[str] = []
    lines: list[tuple[float, int, str]] = []
    for name, capture in {**CAPTURES, "ble": ble_gateway_capture(tmp_path)}.items():
        result = await replay(capture)
        devices = by_id(result)
        assert devices, f"{name}: the recording gives no device"
        assert not set(devices) & set(alone), f"{name} clashes with another convention: {set(devices) & set(alone)}"
        alone.update(devices)
        errors_alone += [e["message"] for e in result.errors]
        for number, line in enumerate(capture.read_text().splitlines()):
            if line.strip():
                lines.append((parse_time(json.loads(line)["t"]), number, line))
    # All recordings on one broker, interleaved in time as if they were one house.
    mixed = tmp_path / "house.jsonl"
    mixed.write_text("\n".join(line for _, _, line in sorted(lines)) + "\n")
    together = await replay(mixed)
    devices = by_id(together)
    assert sorted(devices) == sorted(alone)
    for device_id, device in alone.items():
        # A BLE sensor silent for longer than its interval goes offline: the mixed recording runs
        # longer than the BLE one alone, so that one attribute may differ; nothing else may.
        assert without_online(devices[device_id]["components"]) == without_online(device["components"]), device_id
    # The same errors, each at its line of its own recording or of the mixed one.
    assert sorted(_without_line(e["message"]) for e in together.errors) == sorted(map(_without_line, errors_alone))
    sources = {d["source"] for d in devices.values()}
    assert {"zigbee2mqtt", "tasmota", "shelly", "homie", "ble"} <= sources


async def test_a_zigbee_device_announced_by_zigbee2mqtt_and_by_ha_discovery_appears_once(tmp_path: Path) -> None:
    z2m = CAPTURES["zigbee2mqtt"].read_text().splitlines()
    config = json.loads((FIXTURES / "homeassistant" / "z2m_temperature_config.json").read_text())
    discovery = json.dumps({"t": "2024-01-15T07:20:00Z", "source": "mqtt", "retain": True,
                            "topic": "homeassistant/sensor/0x00158d00040726f1/temperature/config",
                            "payload": config})
    capture = tmp_path / "both.jsonl"
    capture.write_text("\n".join([*z2m, discovery]) + "\n")
    result = await replay(capture)
    ids = [d["id"] for d in result.devices]
    assert "zigbee2mqtt:0x00158d00040726f1" in ids
    assert not [i for i in ids if i.startswith("ha:")], ids
