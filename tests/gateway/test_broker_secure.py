"""``hearth mqtt secure`` (issue 20 finding 7): the files it writes make a real Mosquitto refuse anonymous
clients and keep each bridge to its own topics; nobody but Zigbee2MQTT may publish its bridge/devices."""

from __future__ import annotations

import contextlib
import queue
import stat
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from gateway.cli import main
from tests.broker import Mosquitto

pytestmark = pytest.mark.mqtt


def _passwords(out: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "topics:":
            found[parts[0]] = parts[1]
    return found


class _Client:
    def __init__(self, port: int, user: str | None, password: str | None) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
        if user is not None:
            self.client.username_pw_set(user, password)
        self.connack: queue.Queue[int] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(int(rc.value))
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def connected(self) -> bool:
        return self.connack.get(timeout=5) == 0

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def secured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    folder = tmp_path / "broker"
    assert main(["mqtt", "secure", "--out", str(folder), "--client", "zigbee2mqtt", "--client", "tasmota"]) == 0
    passwords = _passwords(capsys.readouterr().out)
    assert set(passwords) == {"hearth", "zigbee2mqtt", "tasmota"}
    assert stat.S_IMODE((folder / "passwd").stat().st_mode) == 0o600
    assert all(p not in (folder / "passwd").read_text() for p in passwords.values())  # hashes only
    broker = Mosquitto(tmp_path / "mosquitto", extra_config=[
        "allow_anonymous false", f"password_file {folder / 'passwd'}", f"acl_file {folder / 'acl'}"])
    broker.start()
    try:
        yield broker, passwords
    finally:
        broker.stop()


def test_anonymous_and_wrong_passwords_are_refused(secured: tuple[Mosquitto, dict[str, str]]) -> None:
    broker, passwords = secured
    for user, password in ((None, None), ("zigbee2mqtt", "guess"), ("hearth", passwords["tasmota"])):
        client = _Client(broker.port, user, password)
        try:
            assert not client.connected(), user
        finally:
            client.close()


def test_each_bridge_keeps_to_its_own_topics(secured: tuple[Mosquitto, dict[str, str]]) -> None:
    broker, passwords = secured
    hearth = _Client(broker.port, "hearth", passwords["hearth"])
    z2m = _Client(broker.port, "zigbee2mqtt", passwords["zigbee2mqtt"])
    tasmota = _Client(broker.port, "tasmota", passwords["tasmota"])
    try:
        assert hearth.connected() and z2m.connected() and tasmota.connected()
        hearth.client.subscribe("#", qos=1)
        z2m.client.subscribe("zigbee2mqtt/+/set", qos=1)
        time.sleep(0.3)
        # A Tasmota (or anything that has its password) cannot empty the Zigbee network's device list.
        tasmota.client.publish("zigbee2mqtt/bridge/devices", b"[]", qos=1).wait_for_publish(5)
        tasmota.client.publish("tele/plug/SENSOR", b'{"ENERGY": {}}', qos=1).wait_for_publish(5)
        z2m.client.publish("zigbee2mqtt/bridge/devices", b'[{"ieee_address": "0x1"}]', qos=1).wait_for_publish(5)
        hearth.client.publish("zigbee2mqtt/Plug/set", b'{"state": "ON"}', qos=1).wait_for_publish(5)
        seen: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + 5
        while len(seen) < 3 and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                seen.append(hearth.messages.get(timeout=0.2))
        time.sleep(0.3)
        while not hearth.messages.empty():
            seen.append(hearth.messages.get())
        assert ("zigbee2mqtt/bridge/devices", b"[]") not in seen
        assert ("zigbee2mqtt/bridge/devices", b'[{"ieee_address": "0x1"}]') in seen
        assert ("tele/plug/SENSOR", b'{"ENERGY": {}}') in seen
        assert z2m.messages.get(timeout=5) == ("zigbee2mqtt/Plug/set", b'{"state": "ON"}')
    finally:
        for client in (hearth, z2m, tasmota):
            client.close()


def test_it_never_overwrites_passwords_unasked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mqtt", "secure", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "passwd").read_text()
    assert main(["mqtt", "secure", "--out", str(tmp_path)]) == 1
    assert "use --force" in capsys.readouterr().err
    assert (tmp_path / "passwd").read_text() == before
    assert main(["mqtt", "secure", "--out", str(tmp_path), "--client", "fridge"]) == 1
    assert "not a known bridge" in capsys.readouterr().err
