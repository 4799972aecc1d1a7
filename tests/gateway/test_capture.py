"""``hearth capture`` records live broker traffic in the capture format; ``hearth replay`` reads it back."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as paho

from gateway.capture import capture_line
from tests.broker import Mosquitto

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "z2m"


def test_capture_line_keeps_json_text_and_binary() -> None:
    line = json.loads(capture_line(0.0, "a/b", b'{"x": 1}', True))
    assert line == {"t": "1970-01-01T00:00:00.000Z", "source": "mqtt", "topic": "a/b", "payload": {"x": 1},
                    "retain": True}
    assert json.loads(capture_line(0.0, "a", b"online", False))["payload"] == "online"
    assert json.loads(capture_line(0.0, "a", b"{broken", False))["payload"] == "{broken"
    assert json.loads(capture_line(0.0, "a", b"\xff\x00", False))["payload_base64"] == "/wA="


def test_capture_then_replay(tmp_path: Path, mosquitto_session: Mosquitto) -> None:
    out = tmp_path / "house.jsonl"
    hearth = Path(sys.executable).parent / "hearth"
    devices = json.loads((FIXTURES / "bridge_devices.json").read_text())
    messages = [
        ("zigbee2mqtt/bridge/devices", json.dumps(devices)),
        ("zigbee2mqtt/Plug", json.dumps({"power": 7.5, "state": "ON"})),
        ("zigbee2mqtt/Door Sensor", json.dumps({"contact": False, "battery": 80})),
        ("unrelated/topic", "hello"),
    ]
    proc = subprocess.Popen(
        [str(hearth), "capture", "--out", str(out), "--port", str(mosquitto_session.port),
         "--topic", "zigbee2mqtt/#", "--count", "3", "--duration", "30"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        assert "capturing" in proc.stderr.readline()  # subscribed: now publish
        time.sleep(0.2)
        client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", mosquitto_session.port)
        client.loop_start()
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        assert proc.wait(timeout=30) == 0
        assert "3 messages written" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["topic"] for line in lines] == [m[0] for m in messages[:3]]
    assert lines[1]["payload"] == {"power": 7.5, "state": "ON"}

    replayed = subprocess.run([str(hearth), "replay", str(out), "--json"], capture_output=True, text=True,
                              check=True, timeout=60)
    by_id = {d["id"]: d for d in json.loads(replayed.stdout)["devices"]}
    assert by_id["zigbee2mqtt:0x00158d0001db18f9"]["components"]["main"]["power_meter"] == {"watts": 7.5}
    assert by_id["zigbee2mqtt:0x00158d000122fcd1"]["components"]["main"]["contact"] == {"open": True}
