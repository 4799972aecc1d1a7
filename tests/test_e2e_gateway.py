"""``hearth run`` as a user runs it: a real process, a real Mosquitto, a real SQLite file, the HTTP API.

Zigbee2MQTT is played by this test over MQTT with recorded payloads (tests/fixtures/z2m).
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker import Mosquitto, free_port
from tests.gateway_process import Api, FakeZigbee2Mqtt, GatewayProcess, wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]

FIXTURES = Path(__file__).parent / "fixtures" / "z2m"
PLUG = "zigbee2mqtt:0x00158d0001db18f9"  # Xiaomi ZNCZ02LM, friendly name "Plug"
LIGHT = "zigbee2mqtt:0x00158d0002b7d6be"  # Aqara bulb, "Bedroom Desk Light"
COMMIT_INTERVAL_S = 0.5


@pytest.fixture
def house(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[tuple[GatewayProcess, Api, FakeZigbee2Mqtt, Mosquitto]]:
    api_port = free_port()
    config = tmp_path / "house.toml"
    config.write_text(
        f'[mqtt]\nport = {mosquitto.port}\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\n\n'
        f'[store]\npath = "{tmp_path / "hearth.db"}"\ncommit_interval_s = {COMMIT_INTERVAL_S}\n\n'
        f'[api]\nport = {api_port}\ncommand_timeout_s = 3\n\n'
        '[areas]\n"Plug" = "kitchen"\n'
    )
    gateway = GatewayProcess(config, tmp_path / "data")
    gateway.start()
    assert gateway.token, "the first start prints the API token"
    z2m = FakeZigbee2Mqtt(mosquitto.port)
    try:
        yield gateway, Api(api_port, gateway.token), z2m, mosquitto
    finally:
        z2m.close()
        if gateway.proc and gateway.proc.poll() is None:
            gateway.stop()


def test_devices_appear_commands_confirm_and_the_broker_can_restart(house: Any) -> None:
    _gateway, api, z2m, mosquitto = house
    z2m.announce()
    z2m.publish("Plug", {"energy": 12.31, "linkquality": 120, "power": 4.6, "state": "ON"})
    plug = wait_until(lambda: (d := api.device(PLUG)) and d["components"]["main"].get("power_meter") and d,
                      what="the plug's state in the API")
    assert plug["name"] == "Plug"
    assert plug["area"] == "kitchen"
    assert plug["components"]["main"]["on_off"] == {"on": True}
    assert plug["components"]["main"]["power_meter"]["watts"] == 4.6
    assert plug["components"]["main"]["energy_meter"]["kwh"] == 12.31
    status, listing = api.call("GET", "/api/devices")
    assert status == 200 and len(listing["devices"]) >= 15

    # A command goes out as the right /set payload and is confirmed by the device's report.
    status, result = api.call("POST", f"/api/devices/{LIGHT}/commands",
                              {"capability": "level", "command": "set", "args": {"percent": 50}})
    assert (status, result["status"]) == (200, "confirmed"), result
    name, payload = z2m.sets.get(timeout=5)
    assert name == "Bedroom Desk Light" and payload == {"brightness": 127}

    # A device that does not answer: the API says it was sent but not confirmed.
    z2m.answer = False
    status, result = api.call("POST", f"/api/devices/{PLUG}/commands", {"capability": "on_off", "command": "off"})
    assert (status, result["status"]) == (202, "timeout")
    assert z2m.sets.get(timeout=5) == ("Plug", {"state": "OFF"})
    z2m.answer = True

    # Bad requests name the field.
    status, result = api.call("POST", f"/api/devices/{LIGHT}/commands",
                              {"capability": "level", "command": "set", "args": {"percent": 180}})
    assert status == 400 and result["field"] == "args.percent"

    # Restart the broker under the running gateway: it reconnects, re-subscribes, and works again.
    mosquitto.restart()
    # Retained: the gateway may subscribe again after the fake bridge has published (seen once in a full
    # run: a plain message was gone before the gateway's reconnect backoff ended).
    z2m.publish("Plug", {"power": 1234.5, "state": "ON"}, retain=True)
    wait_until(lambda: api.device(PLUG)["components"]["main"]["power_meter"]["watts"] == 1234.5,
               timeout_s=15, what="a state update after the broker restart")
    status, result = api.call("POST", f"/api/devices/{PLUG}/commands", {"capability": "on_off", "command": "off"})
    assert (status, result["status"]) == (200, "confirmed"), result
    status, health = 0, None
    with urllib.request.urlopen(api.base + "/healthz", timeout=5) as response:
        status, health = response.status, json.loads(response.read())
    assert status == 200 and health["mqtt"]["connected"] is True
    assert health["adapters"]["zigbee2mqtt"]["state"] == "running"
    # All of the above ran on the loop `hearth run` picks by default: uvloop wherever it is installed.
    assert health["event_loop"] == ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")


def test_every_thread_of_the_gateway_has_the_short_time_slice(house: Any) -> None:
    # [gateway] loop_slice_us (0.1 ms): asked for on the loop's thread before any other starts, so all have it.
    from tests.gateway.test_time_slice import kernel_keeps_slices

    if not kernel_keeps_slices():
        pytest.skip("a kernel that keeps a time slice per task (Linux 6.12+)")
    gateway = house[0]
    assert gateway.proc is not None
    slices = {}
    for task in Path(f"/proc/{gateway.proc.pid}/task").iterdir():
        text = (task / "sched").read_text()
        slices[task.name] = int(text.split("se.slice", 1)[1].split(":", 1)[1].split()[0])
    assert slices[str(gateway.proc.pid)] == 100_000  # the event loop's
    assert len(slices) > 1 and set(slices.values()) == {100_000}, slices


def test_kill_9_in_a_write_burst_loses_at_most_the_last_commit_interval(house: Any, tmp_path: Path) -> None:
    gateway, api, z2m, _ = house
    z2m.announce()
    # A burst of state changes, then time for one commit, then more changes and a kill -9 at once.
    for watts in range(1, 301):
        z2m.publish("Plug", {"power": float(watts), "state": "ON"})
    wait_until(lambda: (d := api.device(PLUG)) and d["components"]["main"].get("power_meter", {}).get("watts") == 300,
               what="the burst to arrive")
    time.sleep(COMMIT_INTERVAL_S * 4)  # at least one commit has happened since
    for watts in range(301, 2001):
        z2m.client.publish("zigbee2mqtt/Plug", json.dumps({"power": float(watts)}), qos=0)
    gateway.kill9()

    db = tmp_path / "hearth.db"
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        history = connection.execute("SELECT coalesce(sum(changes), 0) FROM history_block WHERE device_id = ?",
                                     (PLUG,)).fetchone()[0]
    assert history >= 300  # every change of the committed burst is in the history

    restarted = GatewayProcess(gateway.config, gateway.data_dir)
    restarted.start()
    try:
        # The token from the first start still works (only its hash was stored), and the state is back
        # without any new message from the device.
        plug = api.device(PLUG)
        assert plug is not None
        assert plug["components"]["main"]["power_meter"]["watts"] >= 300
        assert plug["components"]["main"]["on_off"] == {"on": True}
        assert plug["area"] == "kitchen"
        _status, listing = api.call("GET", "/api/devices")
        assert len(listing["devices"]) >= 15
    finally:
        assert restarted.stop() == 0
    restarted.wait_for_line("Hearth stopped", timeout_s=5)


def test_a_command_while_the_broker_is_down_is_refused_and_never_carried_out_later(house: Any) -> None:
    # It used to answer 202 "sent, but the device did not confirm" while the command was dropped (QoS 0)
    # or held and carried out whenever the broker came back.
    _gateway, api, z2m, mosquitto = house
    z2m.announce()
    z2m.publish("Plug", {"power": 4.6, "state": "ON"})
    wait_until(lambda: (d := api.device(PLUG)) and d["components"]["main"].get("on_off"), what="the plug")
    mosquitto.stop()
    wait_until(lambda: api.call("GET", "/healthz")[1]["mqtt"]["connected"] is False, what="the gateway to notice")
    status, result = api.call("POST", f"/api/devices/{PLUG}/commands", {"capability": "on_off", "command": "off"})
    assert (status, result["status"]) == (503, "unavailable"), result
    assert "not connected to the MQTT broker" in result["message"]
    mosquitto.start()
    wait_until(lambda: api.call("GET", "/healthz")[1]["mqtt"]["connected"] is True, timeout_s=15,
               what="the gateway to reconnect")
    wait_until(z2m.client.is_connected, what="the fake bridge to reconnect")
    time.sleep(1.0)  # a held command would go out right after the reconnect
    assert z2m.sets.empty(), "a refused command was carried out after the broker came back"
    # The way is open again (so the check above could have seen a late command).
    status, result = api.call("POST", f"/api/devices/{PLUG}/commands", {"capability": "on_off", "command": "off"})
    assert (status, result["status"]) == (200, "confirmed"), result
    assert z2m.sets.get(timeout=5) == ("Plug", {"state": "OFF"})
