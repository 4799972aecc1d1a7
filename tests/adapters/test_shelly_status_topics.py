"""Shelly devices known only by their ``<prefix>/status/<component>`` topics (``mqtt.status_ntf``): sleeping battery
devices that never answer a request, and mains devices that do not answer over MQTT. Codec, replay and a live
adapter against a real Mosquitto (sources of every payload: tests/fixtures/shelly/README.md)."""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from adapters.shelly.codec import MODELS, ShellyDevice, model_for
from adapters.shelly.mqtt_adapter import ShellyMqttAdapter
from adapters.shelly.mqtt_codec import ShellyMqttCodec
from gateway.clock import SystemClock
from gateway.config import MqttSection
from gateway.hub import Hub
from gateway.mqtt import MqttSession
from gateway.replay import replay
from gateway.sdk import Update, capability
from gateway.supervisor import Supervisor
from tests.broker import Mosquitto

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "shelly"
CAPTURE = FIXTURES / "status_topics.jsonl"


def capture_lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CAPTURE.read_text().splitlines() if line.strip()]


def status_of(shelly_id: str) -> dict[str, Any]:
    """The status topics of one device in the capture, as {key: payload} (first wake)."""
    out: dict[str, Any] = {}
    for line in capture_lines():
        head, _, key = line["topic"].partition("/status/")
        if head == shelly_id and key and key not in out:
            out[key] = line["payload"]
    return out


def values(updates: list[Update]) -> dict[tuple[str, str, str], Any]:
    return {(u.component, u.capability, u.attribute): u.value for u in updates}


def publish_status(codec: ShellyMqttCodec, prefix: str, statuses: dict[str, Any]) -> list[Any]:
    outs = []
    for key, payload in statuses.items():
        out = codec.decode(f"{prefix}/status/{key}", orjson.dumps(payload))
        codec.after_upserts(out)
        outs.append(out)
    return outs


def merged(outs: list[Any]) -> tuple[dict[tuple[str, str, str], Any], Any]:
    state: dict[tuple[str, str, str], Any] = {}
    info = None
    for out in outs:
        assert out.problems == []
        state.update(values(out.updates))
        if out.upserts:
            info = out.upserts[-1]
    return state, info


# ---------------------------------------------------------------------------------------------- codec


def test_a_sleeping_plus_ht_is_built_from_three_status_topics() -> None:
    codec = ShellyMqttCodec()
    prefix = "shellyplusht-08b61fcd36a8"
    online = codec.decode(f"{prefix}/online", b"true")
    assert online.discover == []  # its id names a sleeping model: asking it would never be answered
    outs = publish_status(codec, prefix, status_of(prefix))
    state, info = merged(outs)
    assert (info.id, info.model, info.manufacturer, info.hw_version) == (
        "shelly:shellyplusht-08b61fcd36a8", "PlusHT", "Shelly", None)
    assert set(info.components) == {"main"}
    assert set(info.components["main"]) == {"battery", "humidity", "temperature"}
    assert state == {("main", "battery", "percent"): 81, ("main", "battery", "volts"): 5.64,
                     ("main", "humidity", "percent"): 19.1, ("main", "temperature", "celsius"): 25.7}
    # the online seen before it was described is applied with the first description
    assert ("shelly:shellyplusht-08b61fcd36a8", True) in outs[0].availability
    for u in outs[-1].updates:
        spec = capability(u.capability)
        assert spec is not None and spec.attributes[u.attribute].check(u.value) is None


def test_h_and_t_gen3_with_sys_and_the_other_status_topics() -> None:
    codec = ShellyMqttCodec()
    prefix = "shellyhtg3-3030f9ec8468"
    state, info = merged(publish_status(codec, prefix, status_of(prefix)))
    assert info.model == "HTG3"
    assert info.mac is None  # the published sys has its MAC masked ("foobarbarfoo"): not a MAC
    assert state[("main", "temperature", "celsius")] == 20.1
    assert state[("main", "connectivity", "rssi_dbm")] == -47
    device = codec.devices["shelly:shellyhtg3-3030f9ec8468"]
    assert device.sleeps and not device.full
    # a later partial NotifyStatus (a wake-up on a temperature change) updates it
    frame = {"src": prefix, "dst": f"{prefix}/events", "method": "NotifyStatus",
             "params": {"ts": 1750347304.52, "temperature:0": {"id": 0, "tC": 21.6, "tF": 70.9}}}
    out = codec.decode(f"{prefix}/events/rpc", orjson.dumps(frame))
    assert out.upserts == [] and out.problems == []
    assert values(out.updates) == {("main", "temperature", "celsius"): 21.6}


def test_pro_3em_from_em_and_emdata_status_topics() -> None:
    codec = ShellyMqttCodec()
    prefix = "shellypro3em-a0dd6ca0c27c"
    first = codec.decode(f"{prefix}/online", b"true")
    assert first.discover == [prefix]  # a mains device: asked once (it may answer)
    state, info = merged(publish_status(codec, prefix, status_of(prefix)))
    assert info.model == "Pro3EM" and info.mac == "a0:dd:6c:a0:c2:7c"  # the MAC from status/sys
    assert set(info.components) == {"main", "l1", "l2", "l3"}
    assert state[("main", "power_meter", "watts")] == 6.78
    assert state[("main", "energy_meter", "kwh")] == pytest.approx(45.23697)  # emdata total_act is Wh
    assert state[("l3", "power_meter", "volts")] == 232.7
    assert state[("l3", "power_meter", "power_factor")] == 0.42
    assert state[("l3", "energy_meter", "kwh")] == pytest.approx(45.23695)
    # its temperature:0 (49.6 °C) is the meter's own electronics, not a room: not a reading, here or by full status
    assert not any(cap == "temperature" for _, cap, _ in state)
    full = ShellyDevice(prefix).apply_full_status(status_of(prefix))
    assert not any(u.capability == "temperature" for u in full.updates)
    assert set(full.upserts[-1].components) == set(info.components)


def test_pm_mini_gen3_from_pm1_status_topic() -> None:
    codec = ShellyMqttCodec()
    prefix = "shellypmminig3-84fce63957f4"
    state, info = merged(publish_status(codec, prefix, status_of(prefix)))
    assert (info.model, set(info.components)) == ("MiniPMG3", {"main"})
    assert state[("main", "power_meter", "watts")] == 4.4
    assert state[("main", "power_meter", "hertz")] == 50.1
    assert state[("main", "energy_meter", "kwh")] == pytest.approx(73.112963)
    assert state[("main", "energy_meter", "exported_kwh")] == 0
    assert not info.components["main"].get("on_off")  # a meter: nothing to switch


def test_pm1_and_em1_channels_are_components_like_switches() -> None:
    device = ShellyDevice("shellyproem50-a0dd6ca09158")
    out = device.apply_full_status({
        "em1:0": {"id": 0, "voltage": 234.9, "current": 0.04, "act_power": 4.1, "pf": 0.43, "freq": 50},
        "em1:1": {"id": 1, "voltage": 234.9, "current": 0, "act_power": 0, "pf": 0, "freq": 50},
        "em1data:0": {"id": 0, "total_act_energy": 43644.87, "total_act_ret_energy": 0},
        "em1data:1": {"id": 1, "total_act_energy": 1516.76, "total_act_ret_energy": 0},
        "switch:0": {"id": 0, "output": False}})
    v = values(out.updates)
    assert v[("em1_0", "power_meter", "watts")] == 4.1 and v[("em1_1", "energy_meter", "kwh")] == 1.51676
    pm = ShellyDevice("shellyx-aabbccddeeff").apply_full_status(
        {"pm1:0": {"id": 0, "apower": 1.0}, "pm1:1": {"id": 1, "apower": 2.0}})
    assert values(pm.updates) == {("main", "power_meter", "watts"): 1.0, ("pm1_1", "power_meter", "watts"): 2.0}


def test_smoke_flood_and_illuminance() -> None:
    # statuses from the Plus Smoke, Flood Gen4 and Wall Display dumps (matterbridge-shelly)
    smoke = ShellyDevice("shellyplussmoke-e08cfe8bd798")
    first = smoke.apply_component_status("devicepower:0", {"id": 0, "battery": {"V": 3, "percent": 100}})
    assert values(first.updates) == {("main", "battery", "percent"): 100, ("main", "battery", "volts"): 3}
    out = smoke.apply_component_status("smoke:0", {"id": 0, "alarm": False, "mute": False})
    assert values(out.updates) == {("main", "smoke_co_alarm", "smoke"): False}
    assert set(out.upserts[-1].components["main"]) == {"battery", "smoke_co_alarm"}
    assert values(smoke.apply_partial_status({"smoke:0": {"alarm": True}}).updates) == {
        ("main", "smoke_co_alarm", "smoke"): True}
    flood = ShellyDevice("shellyfloodg4-d885ace9173c")
    assert values(flood.apply_component_status("flood:0", {"id": 0, "alarm": True, "mute": False}).updates) == {
        ("main", "water_leak", "leak"): True}
    wall = ShellyDevice("shellywalldisplay-00082261e102")
    out = wall.apply_component_status("illuminance:0", {"id": 0, "lux": 200, "illumination": "bright"})
    assert values(out.updates) == {("main", "illuminance", "lux"): 200}


FULL_FIXTURES = ["plus1pm.json", "pro4pm.json", "plus2pm_cover.json", "plusi4.json", "plusht.json"]


@pytest.mark.parametrize("fixture", FULL_FIXTURES)
@pytest.mark.parametrize("known_model", [True, False])
def test_a_device_seen_both_ways_is_one_device(fixture: str, known_model: bool) -> None:
    """Status topics come one component at a time, in key order (a genuine Plus 1 capture: ble, cloud, input:0,
    mqtt, switch:0, sys, wifi, ws). The device they build has the components, names and values of the same device
    described by its full status; for a model in the table no component is ever renamed on the way."""
    data = json.loads((FIXTURES / fixture).read_text())
    shelly_id = data["device_info"]["id"]
    if not known_model:  # the same device under a model part nobody knows: a rename may happen, once
        shelly_id = "shellynew" + shelly_id.split("-", 1)[0][len("shelly"):] + "-" + shelly_id.split("-", 1)[1]
        assert model_for(shelly_id) is None
    full = ShellyDevice(shelly_id).apply_full_status(data["status"])
    codec = ShellyMqttCodec()
    outs = []
    seen_names: dict[str, str] = {}
    renames = 0
    for key in sorted(data["status"]):
        out = codec.decode(f"{shelly_id}/status/{key}", orjson.dumps(data["status"][key]))
        outs.append(out)
        device = codec.devices.get(f"shelly:{shelly_id}")
        if device is None:
            continue  # ble, cloud: not read, no device yet
        renames += any(device.names.get(k) not in (None, n) for k, n in seen_names.items())
        seen_names = dict(device.names)
    state, info = merged(outs)
    assert info.components == full.upserts[-1].components
    assert state == values(full.updates)
    if known_model:
        assert renames == 0
    else:
        assert renames <= 1


def test_a_later_full_status_keeps_the_device_and_its_names() -> None:
    data = json.loads((FIXTURES / "pro4pm.json").read_text())
    codec = ShellyMqttCodec()
    prefix = data["device_info"]["id"]
    publish_status(codec, prefix, {"switch:2": data["status"]["switch:2"]})
    device = codec.devices[f"shelly:{prefix}"]
    assert device.names["switch:2"] == "switch_2"  # the model says switch:0 exists: this is not "main"
    # the device answers the adapter's GetStatus after all: same device, same names
    out = codec.apply_result(prefix, "Shelly.GetStatus", prefix, data["status"])
    assert device.full and device.names["switch:2"] == "switch_2"
    assert values(out.updates)[("switch_2", "on_off", "on")] is False


def test_a_rename_reports_every_value_again() -> None:
    device = ShellyDevice("shellynewmodel-aabbccddeeff")
    first = device.apply_component_status("input:0", {"id": 0, "state": True})
    assert values(first.updates) == {("main", "on_off", "on"): True}  # a wall switch input, alone: main
    out = device.apply_component_status("switch:0", {"id": 0, "output": False, "apower": 0})
    assert out.upserts and set(out.upserts[-1].components) == {"main", "input_0"}
    assert values(out.updates) == {("input_0", "on_off", "on"): True, ("main", "on_off", "on"): False,
                                   ("main", "power_meter", "watts"): 0}


def test_notify_status_alone_still_describes_nothing() -> None:
    codec = ShellyMqttCodec()
    frame = {"src": "shellyhtg3-3030f9ec8468", "method": "NotifyStatus",
             "params": {"ts": 1.0, "temperature:0": {"id": 0, "tC": 21.6}}}
    out = codec.decode("shellyhtg3-3030f9ec8468/events/rpc", orjson.dumps(frame))
    assert out.upserts == [] and out.updates == []
    # kept: the first status topic describes the device, with that reading
    out = codec.decode("shellyhtg3-3030f9ec8468/status/humidity:0", b'{"id":0,"rh":50}')
    assert values(out.updates) == {("main", "temperature", "celsius"): 21.6, ("main", "humidity", "percent"): 50}


def test_custom_prefix_status_topics_are_kept_and_said_once() -> None:
    # The genuine capture's own prefix: custom, and its sys MAC masked. Nothing says which device it is.
    codec = ShellyMqttCodec()
    notes = []
    for key, payload in status_of("shellyhtg3-3030f9ec8468").items():
        out = codec.decode(f"shellyht-livingroom/status/{key}", orjson.dumps(payload))
        assert out.upserts == [] and out.problems == []
        notes += out.notes
    assert len(notes) == 1 and "shellyht-livingroom" in notes[0]
    # the device answers GetDeviceInfo while awake (asked once on its online): built from what was kept
    out = codec.apply_result("shellyht-livingroom", "Shelly.GetDeviceInfo", "shellyhtg3-3030f9ec8468",
                             {"id": "shellyhtg3-3030f9ec8468", "app": "HTG3", "name": "Living room"})
    assert out.upserts[-1].id == "shelly:shellyhtg3-3030f9ec8468"
    assert values(out.updates)[("main", "temperature", "celsius")] == 20.1


def test_a_wall_display_names_itself_in_its_sys_status() -> None:
    # Wall Display's sys status carries id, app, model and ver (matterbridge-shelly dump)
    codec = ShellyMqttCodec()
    sys_status = {"id": "ShellyWallDisplay-00082261E102", "mac": "00082261E102", "model": "SAWD-0A1XX10EU1",
                  "gen": 2, "ver": "2.6.2", "app": "WallDisplay", "uptime": 139}
    codec.decode("hall/display/status/sys", orjson.dumps(sys_status))
    out = codec.decode("hall/display/status/temperature:0", b'{"id":0,"tC":31.9,"tF":89}')
    info = out.upserts[-1]
    assert (info.id, info.model, info.hw_version, info.sw_version, info.mac) == (
        "shelly:shellywalldisplay-00082261e102", "WallDisplay", "SAWD-0A1XX10EU1", "2.6.2", "00:08:22:61:e1:02")


def test_bad_status_topic_payloads_are_problems_and_lose_nothing() -> None:
    codec = ShellyMqttCodec()
    prefix = "shellyplusht-08b61fcd36a8"
    publish_status(codec, prefix, status_of(prefix))
    for key, payload in [("temperature:0", b"{nope"), ("temperature:0", b"[1, 2]"), ("humidity:0", b'"wet"'),
                         ("sys", b"42"), ("temperature:0", b'{"id":0,"tC":"warm"}'),
                         ("devicepower:0", b'{"battery":{"percent":140,"V":-1}}'),
                         ("temperature:0", b"x" * (200 * 1024))]:
        out = codec.decode(f"{prefix}/status/{key}", payload)
        assert out.problems, (key, payload[:40])
        assert out.updates == []
    device = codec.devices[f"shelly:{prefix}"]
    assert device.info is not None and set(device.info.components["main"]) == {"battery", "humidity", "temperature"}
    # keys that are no reading of ours are not judged: a junk status/cloud is nobody's problem
    assert codec.decode(f"{prefix}/status/cloud", b"junk").problems == []
    assert codec.decode(f"{prefix}/status/ht_ui", b"{}").problems == []


def test_every_sleeping_model_is_never_asked() -> None:
    for head, model in MODELS.items():
        codec = ShellyMqttCodec()
        out = codec.decode(f"{head}-0123456789ab/online", b"true")
        assert out.discover == ([] if model.sleeps else [f"{head}-0123456789ab"]), head
    # a custom prefix is asked once; if its sys then says it sleeps, that is all it is ever asked
    codec = ShellyMqttCodec()
    assert codec.decode("garden/ht/online", b"true").discover == ["garden/ht"]
    assert codec.decode("garden/ht/online", b"false").discover == []


# ---------------------------------------------------------------------------------------------- replay


async def test_replay_shows_devices_known_only_by_status_topics() -> None:
    result = await replay(CAPTURE)
    assert result.errors == [] and result.notes == []
    devices = {d["id"]: d for d in result.devices}
    assert sorted(devices) == ["shelly:shellyhtg3-3030f9ec8468", "shelly:shellyplusht-08b61fcd36a8",
                               "shelly:shellypmminig3-84fce63957f4", "shelly:shellypro3em-a0dd6ca0c27c"]
    ht = devices["shelly:shellyplusht-08b61fcd36a8"]
    assert (ht["model"], ht["manufacturer"]) == ("PlusHT", "Shelly")
    assert ht["components"]["main"] == {"battery": {"percent": 81, "volts": 5.64}, "humidity": {"percent": 19.6},
                                        "temperature": {"celsius": 25.1}}  # its second wake, two hours later
    # <prefix>/online false at the end of the capture: asleep again, which is not unreachable
    assert ht["available"] is True
    g3 = devices["shelly:shellyhtg3-3030f9ec8468"]["components"]["main"]
    assert g3["temperature"] == {"celsius": 21.6}  # the NotifyStatus of its wake on a temperature change
    assert g3["humidity"] == {"percent": 57.0} and g3["battery"] == {"percent": 73, "volts": 5.46}
    meter = devices["shelly:shellypro3em-a0dd6ca0c27c"]
    assert meter["available"] is True and "temperature" not in meter["components"]["main"]
    assert meter["components"]["main"]["energy_meter"]["kwh"] == pytest.approx(45.23763)  # NotifyStatus merged
    assert meter["components"]["l3"]["power_meter"]["watts"] == 6.8
    pm = devices["shelly:shellypmminig3-84fce63957f4"]["components"]["main"]
    assert pm["power_meter"] == {"watts": 11.5, "volts": 234.5, "amps": 0.071, "hertz": 50.1}
    # mains devices were asked once each (replay cannot answer: built from their status topics anyway);
    # the sleeping ones never
    asks: dict[str, list[str]] = {}
    for p in result.published:
        asks.setdefault(p["topic"], []).append(orjson.loads(p["payload"])["method"])
    assert asks == {"shellypro3em-a0dd6ca0c27c/rpc": ["Shelly.GetDeviceInfo", "Shelly.GetStatus"],
                    "shellypmminig3-84fce63957f4/rpc": ["Shelly.GetDeviceInfo", "Shelly.GetStatus"]}


async def test_replay_lists_bad_status_topics_and_keeps_the_device(tmp_path: Path) -> None:
    prefix = "shellyhtg3-3030f9ec8468"
    lines = [{"t": 1718690400, "topic": f"{prefix}/status/temperature:0", "payload": {"id": 0, "tC": 20.1}},
             {"t": 1718690401, "topic": f"{prefix}/status/temperature:0", "payload": "{not json"},
             {"t": 1718690402, "topic": f"{prefix}/status/humidity:0", "payload": [57]},
             {"t": 1718690403, "topic": f"{prefix}/status/devicepower:0", "payload": {"battery": {"percent": "full"}}},
             {"t": 1718690404, "topic": f"{prefix}/status/sys", "payload": "asleep"}]
    capture = tmp_path / "bad.jsonl"
    capture.write_text("".join(json.dumps({"source": "mqtt", **line}) + "\n" for line in lines))
    result = await replay(capture)
    assert [e["message"].split(":", 2)[1] for e in result.errors] == ["2", "3", "4", "5"]  # the capture lines
    assert all(e["source"] == "shelly" for e in result.errors)
    (device,) = result.devices
    assert device["components"]["main"]["temperature"] == {"celsius": 20.1}


# ---------------------------------------------------------------------------------------------- live


class SleepyShelly:
    """A battery Shelly on MQTT with status_ntf and rpc_ntf on: it wakes, says it is online, publishes each
    component's status, and never answers a request (it records them: there must be none)."""

    def __init__(self, port: int, shelly_id: str) -> None:
        self.id = shelly_id
        self.requests: list[dict[str, Any]] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"sleepy-{uuid.uuid4().hex[:6]}")
        self.client.will_set(f"{shelly_id}/online", "false", retain=True)
        self.client.on_message = lambda client, userdata, message: self.requests.append(orjson.loads(message.payload))
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{shelly_id}/rpc", qos=1)
        self.client.loop_start()

    def publish(self, suffix: str, payload: Any, retain: bool = False) -> None:
        body = payload if isinstance(payload, str) else orjson.dumps(payload)
        self.client.publish(f"{self.id}/{suffix}", body, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.publish("online", "", retain=True)  # clear the retained flag for the next test on this broker
        self.client.loop_stop()
        self.client.disconnect()


async def wait_for(check: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds * 100)):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


@pytest.mark.mqtt
async def test_live_sleeping_and_silent_devices_appear_from_their_status_topics(mosquitto_session: Mosquitto) -> None:
    session = MqttSession(MqttSection.model_validate({"port": mosquitto_session.port, "status_topic": ""}),
                          SystemClock(), client_id=f"hearth-{uuid.uuid4().hex[:6]}")
    hub = Hub(SystemClock())
    ht = SleepyShelly(mosquitto_session.port, f"shellyhtg3-{secrets.token_hex(6)}")
    pm = SleepyShelly(mosquitto_session.port, f"shellypmminig3-{secrets.token_hex(6)}")  # RPC over MQTT off
    config = {"shelly": {"src": f"hearth-{uuid.uuid4().hex[:6]}"}}  # default: discover any one-level prefix
    try:
        async with session, Supervisor(hub, {"shelly": ShellyMqttAdapter}, config, mqtt=session) as supervisor:
            assert await session.wait_connected(5)
            await wait_for(lambda: supervisor.instance("shelly") is not None)
            await asyncio.sleep(0.2)  # subscriptions reach the broker
            for device, key in ((ht, "shellyhtg3-3030f9ec8468"), (pm, "shellypmminig3-84fce63957f4")):
                device.publish("online", "true", retain=True)
                for component, payload in status_of(key).items():
                    device.publish(f"status/{component}", payload)
            ht_id, pm_id = f"shelly:{ht.id}", f"shelly:{pm.id}"
            await wait_for(lambda: hub.devices.get(ht_id) is not None and
                           hub.devices[ht_id].value("main", "temperature", "celsius") == 20.1 and
                           hub.devices.get(pm_id) is not None and
                           hub.devices[pm_id].value("main", "power_meter", "watts") == 4.4)
            sensor = hub.devices[ht_id]
            assert (sensor.model, sensor.available) == ("HTG3", True)
            assert sensor.value("main", "humidity", "percent") == 57.0
            assert sensor.value("main", "battery", "percent") == 73
            # a later partial NotifyStatus is merged into the device the status topics built
            ht.publish("events/rpc", {"src": ht.id, "dst": f"{ht.id}/events", "method": "NotifyStatus",
                                      "params": {"ts": 1.0, "temperature:0": {"id": 0, "tC": 21.6, "tF": 70.9}}})
            await wait_for(lambda: sensor.value("main", "temperature", "celsius") == 21.6)
            ht.publish("online", "false", retain=True)  # back to sleep: still there, not unreachable
            pm.publish("online", "false", retain=True)  # a mains meter going offline is
            await wait_for(lambda: hub.devices[pm_id].available is False)
            assert sensor.available is True
            await asyncio.sleep(0.3)  # any request would have arrived by now
            assert ht.requests == []  # a sleeping model is never asked
            assert [r["method"] for r in pm.requests] == ["Shelly.GetDeviceInfo", "Shelly.GetStatus"]  # once
            assert hub.devices[pm_id].value("main", "energy_meter", "kwh") == pytest.approx(73.112963)
    finally:
        ht.close()
        pm.close()
