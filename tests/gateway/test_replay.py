"""``hearth replay``: a recorded Zigbee2MQTT house, through the real adapters and hub, with no network."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "z2m"
CAPTURE = FIXTURES / "capture.jsonl"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["replay", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def by_id(result: dict) -> dict[str, dict]:
    return {d["id"]: d for d in result["devices"]}


def test_replay_json_follows_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_json(capsys, str(CAPTURE))
    assert set(result) == {"devices", "actions", "alerts", "errors", "notifications", "notes", "traces"}
    ids = [d["id"] for d in result["devices"]]
    assert ids == sorted(ids)
    for device in result["devices"]:
        assert set(device) == {"id", "name", "source", "manufacturer", "model", "area", "available", "components"}
        assert device["id"].startswith("zigbee2mqtt:0x")
    assert result["errors"] == []


def test_replay_shows_canonical_units(capsys: pytest.CaptureFixture[str]) -> None:
    devices = by_id(run_json(capsys, str(CAPTURE)))
    light = devices["zigbee2mqtt:0x00158d0002b7d6be"]["components"]["main"]
    assert light["on_off"] == {"on": False}
    assert light["level"]["percent"] == pytest.approx(41 / 254 * 100, abs=0.1)
    assert light["color_temperature"]["kelvin"] == pytest.approx(1e6 / 260, abs=1)
    door = devices["zigbee2mqtt:0x00158d000122fcd1"]
    assert door["components"]["main"]["contact"] == {"open": True}  # Z2M contact: false = open
    assert door["components"]["main"]["battery"]["volts"] == pytest.approx(3.095)
    climate = devices["zigbee2mqtt:0x00158d00040726f1"]["components"]["main"]
    assert climate["temperature"]["celsius"] == 20.74
    assert climate["pressure"]["hpa"] == pytest.approx(957.4)
    trv = devices["zigbee2mqtt:0x0016e9fffe0a1b2c"]
    assert trv["name"] == "bedroom/radiator"  # a friendly name with '/'
    assert trv["components"]["main"]["thermostat"]["target_celsius"] == 20
    two_gang = devices["zigbee2mqtt:0x5c0272fffec89ec2"]["components"]
    assert two_gang["l1"]["on_off"] == {"on": True} and two_gang["l2"]["on_off"] == {"on": False}
    assert devices["zigbee2mqtt:0x00158d0002a71b33"]["available"] is False  # the cube went offline


def test_areas_come_from_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "house.toml"
    config.write_text('[areas]\n"Door Sensor" = "hall"\n"zigbee2mqtt:0x0016e9fffe0a1b2c" = "bedroom"\n')
    devices = by_id(run_json(capsys, str(CAPTURE), "--config", str(config)))
    assert devices["zigbee2mqtt:0x00158d000122fcd1"]["area"] == "hall"
    assert devices["zigbee2mqtt:0x0016e9fffe0a1b2c"]["area"] == "bedroom"


def test_bad_lines_and_payloads_become_errors_not_crashes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "bad.jsonl"
    lines = CAPTURE.read_text().splitlines()[:6]
    lines += [
        "this is not json",
        json.dumps({"t": "yesterday", "source": "mqtt", "topic": "x", "payload": "y"}),
        json.dumps({"t": 1705302000, "source": "mqtt", "topic": "zigbee2mqtt/Door Sensor", "payload": "{not json"}),
        json.dumps({"t": 1705302001, "source": "mqtt", "topic": "zigbee2mqtt/Door Sensor",
                    "payload": {"contact": "maybe", "battery": 250}}),
        json.dumps({"t": 1705302002, "source": "zwave", "node": 4}),
        json.dumps({"t": 1705302003, "source": "mqtt", "topic": "zigbee2mqtt/Door Sensor",
                    "payload": {"contact": False}}),
    ]
    capture.write_text("\n".join(lines) + "\n")
    result = run_json(capsys, str(capture))
    messages = [e["message"] for e in result["errors"]]
    assert any("bad.jsonl:7" in m for m in messages)
    assert any("bad.jsonl:8" in m for m in messages)
    assert sum("Door Sensor" in m for m in messages) >= 2
    # what an adapter rejects says which line it came from, like a line that is not JSON
    assert any(m.startswith("bad.jsonl:9: ") and "Door Sensor" in m for m in messages), messages
    assert any(m.startswith("bad.jsonl:10: ") and "contact" in m for m in messages), messages
    assert any("'zwave'" in m for m in messages)
    # the good message after the bad ones still counts
    assert by_id(result)["zigbee2mqtt:0x00158d000122fcd1"]["components"]["main"]["contact"] == {"open": True}


def test_human_readable_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(CAPTURE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("16 devices")
    assert "zigbee2mqtt:0x00158d0001db18f9  Plug  (Xiaomi ZNCZ02LM)" in out
    assert "power_meter" in out and "watts=4.6 W" in out


def test_a_value_reported_as_unknown_reads_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A Sonoff TH10 whose AM2301 could not be read (arendst/Tasmota#4637): no error, and not "null °C".
    lines = [{"t": 0, "topic": "tele/sonoff_th10/SENSOR", "payload": {"AM2301": {"Temperature": 21.5}}},
             {"t": 60, "topic": "tele/sonoff_th10/SENSOR", "payload": {"AM2301": {"Temperature": None}}}]
    capture = tmp_path / "th10.jsonl"
    capture.write_text("".join(json.dumps({"source": "mqtt", **line}) + "\n" for line in lines))
    assert main(["replay", str(capture)]) == 0
    out = capsys.readouterr().out
    assert "temperature        celsius=unknown\n" in out and "error" not in out.lower()


def test_what_was_understood_but_not_used_is_listed_as_notes(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # A discovery config for a platform with no capability (a Valetudo vacuum, home-assistant/core#121560)
    # is not an error, but an appliance maker must see why their device is not there.
    config = {"name": "Olaf", "uniq_id": "olaf_vacuum", "cmd_t": "valetudo/olaf/cmd", "schema": "state",
              "dev": {"ids": ["olaf"], "name": "Olaf", "mf": "Dreame"}}
    capture = tmp_path / "vacuum.jsonl"
    capture.write_text(json.dumps({"t": 0, "source": "mqtt", "topic": "homeassistant/vacuum/olaf/olaf_vacuum/config",
                                   "payload": config, "retain": True}) + "\n")
    result = run_json(capsys, str(capture))
    assert result["errors"] == [] and result["devices"] == []
    [note] = result["notes"]
    assert note["source"] == "homeassistant" and note["message"].startswith("vacuum.jsonl:1: ")
    assert "platform 'vacuum' has no place in the capability model" in note["message"]
    assert main(["replay", str(capture)]) == 0
    assert "1 notes (understood, not used)" in capsys.readouterr().out


def test_retained_messages_reach_a_later_subscription(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A capture holds retained messages in the broker's order: an ESPHome node's status and state can come
    # before the discovery config that names their topics. The broker hands them to the later subscription;
    # so does replay.
    config = {"name": "Motion", "dev_cla": "motion", "stat_t": "garden-esp/binary_sensor/motion/state",
              "avty_t": "garden-esp/status", "uniq_id": "garden-esp-motion",
              "dev": {"ids": ["3c71bf001144"], "name": "garden-esp", "mf": "espressif", "mdl": "esp32dev"}}
    lines = [{"t": 0, "topic": "garden-esp/status", "payload": "online", "retain": True},
             {"t": 0, "topic": "garden-esp/binary_sensor/motion/state", "payload": "ON", "retain": True},
             {"t": 1, "topic": "homeassistant/binary_sensor/garden-esp/motion/config", "payload": config,
              "retain": True}]
    capture = tmp_path / "esphome.jsonl"
    capture.write_text("".join(json.dumps({"source": "mqtt", **line}) + "\n" for line in lines))
    result = run_json(capsys, str(capture))
    [device] = [d for d in result["devices"] if d["name"] == "garden-esp"]
    assert device["available"] is True
    assert device["components"]["main"]["occupancy"] == {"occupied": True}


def test_replay_runs_as_a_command_with_no_network(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "hearth"
    out = subprocess.run([str(script), "replay", str(CAPTURE), "--json"], capture_output=True, text=True,
                         timeout=60, check=True)
    assert len(json.loads(out.stdout)["devices"]) == 16


def test_a_capture_as_hearth_capture_writes_it_plays_as_any_other(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # Lines as `hearth capture` writes them are read without parsing their payload twice; the same lines
    # written otherwise (spaces, keys in another order) must give the same house, and a payload that
    # mentions "retain" itself, or is broken, is still the adapter's to judge, with its line number.
    import orjson

    from gateway.capture import capture_line

    devices = [{"ieee_address": "0x00158d0001a2b3c4", "friendly_name": "hall/door", "type": "EndDevice",
                "power_source": "Battery", "definition": {"model": "MCCGQ11LM", "vendor": "Aqara", "exposes": [
                    {"type": "binary", "name": "contact", "property": "contact", "access": 1,
                     "value_on": False, "value_off": True},
                    {"type": "text", "name": "note", "property": "note", "access": 1}]}}]
    messages = [(0.0, "zigbee2mqtt/bridge/devices", orjson.dumps(devices), True),
                (1.0, "zigbee2mqtt/hall/door", b'{"contact":false,"note":",\\"retain\\":true}"}', False),
                (2.0, "zigbee2mqtt/hall/door", b'{"contact":', False)]
    canonical = tmp_path / "canonical.jsonl"
    canonical.write_bytes(b"".join(capture_line(1.7e9 + t, topic, payload, retain)
                                   for t, topic, payload, retain in messages))
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"retain": retain, "payload": json.loads(line)["payload"], "topic": topic,
                                         "source": "mqtt", "t": 1.7e9 + t}, indent=None) + "\n"
                             for (t, topic, _, retain), line in zip(messages, canonical.read_text().splitlines(),
                                                                    strict=True)))
    results = []
    for path in (canonical, other):
        assert main(["replay", str(path), "--json"]) == 0
        results.append(json.loads(capsys.readouterr().out))
    first, second = results
    assert first["devices"] == second["devices"]
    assert first["devices"][0]["components"]["main"]["contact"] == {"open": True}
    assert [e["message"].split(":", 2)[1] for e in first["errors"]] == ["3"]
    assert [e["message"].split(": ", 1)[1] for e in first["errors"]] == \
        [e["message"].split(": ", 1)[1] for e in second["errors"]]


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_a_captures_iso_time_reads_as_datetime_reads_it(moment: datetime) -> None:
    from gateway.replay import _parse_iso, parse_time

    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"  # as hearth capture writes
    assert parse_time(text) == _parse_iso(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)), min_size=1,
                max_size=20))
def test_a_capture_lines_time_is_read_as_datetime_reads_it(tmp_path_factory: pytest.TempPathFactory,
                                                           moments: list[datetime]) -> None:
    """read_capture reads hearth capture's times from the line pattern itself (minute, seconds, milliseconds):
    the same float as datetime's for every line."""
    from gateway.replay import _parse_iso, read_capture

    texts = [m.strftime("%Y-%m-%dT%H:%M:%S.") + f"{m.microsecond // 1000:03d}Z" for m in moments]
    path = tmp_path_factory.mktemp("times") / "capture.jsonl"
    path.write_text("".join(f'{{"t":"{text}","source":"mqtt","topic":"a/b","payload":{{"x":1}},"retain":false}}\n'
                            for text in texts))
    errors: list[dict[str, object]] = []
    assert [record.t for record in read_capture(path, errors)] == [_parse_iso(text) for text in texts]
    assert errors == []


_LEVELS = st.sampled_from(["a", "b", "", "$x", "a.b", "x\ny", "+", "#"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(_LEVELS, min_size=1, max_size=4), st.lists(_LEVELS.filter(lambda x: x not in "+#"), min_size=1,
                                                             max_size=5))
def test_replays_topic_filters_match_as_mqtt_says(filter_levels: list[str], topic_levels: list[str]) -> None:
    """Replay reads each subscription's filter once (a function of the topic): it matches exactly what
    topic_matches (MQTT's rules: `+` one level, `#` the parent and all below, no $-topic under a wildcard) does."""
    from gateway.replay import _matcher
    from gateway.sdk import topic_matches, validate_topic_filter

    topic_filter, topic = "/".join(filter_levels), "/".join(topic_levels)
    try:
        validate_topic_filter(topic_filter)
    except ValueError:
        return
    assert bool(_matcher(topic_filter)(topic)) == topic_matches(topic_filter, topic)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_LEVELS, min_size=1, max_size=3), min_size=1, max_size=8),
       st.lists(st.lists(_LEVELS.filter(lambda x: x not in "+#"), min_size=1, max_size=4), min_size=1, max_size=8))
def test_replay_delivers_a_topic_to_every_subscription_it_matches_in_order(
        filters: list[list[str]], topics: list[list[str]]) -> None:
    """Replay matches a new topic only against the filters that can match it (same first level, or a wildcard
    first): each message still reaches exactly the subscriptions MQTT's rules say, in the order they were made."""
    from gateway.clock import SimulatedClock
    from gateway.replay import ReplayMqtt
    from gateway.sdk import topic_matches, validate_topic_filter

    valid = []
    for levels in filters:
        try:
            validate_topic_filter("/".join(levels))
        except ValueError:
            continue
        valid.append("/".join(levels))
    mqtt = ReplayMqtt(SimulatedClock(0.0))
    heard: list[tuple[int, str]] = []
    for index, topic_filter in enumerate(valid):
        mqtt.subscribe(topic_filter, lambda topic, payload, retain, index=index: heard.append((index, topic)))
    for levels in topics * 2:  # the second time from what was matched the first
        topic = "/".join(levels)
        heard.clear()
        mqtt.deliver(topic, b"{}", False)
        assert heard == [(i, topic) for i, topic_filter in enumerate(valid) if topic_matches(topic_filter, topic)]


def test_a_replay_gives_the_cyclic_collector_back_as_it_was(tmp_path: Path) -> None:
    """Replay collects cycles rarely while a capture plays; afterwards the thresholds are the caller's again,
    nothing it made stays frozen, and what became garbage in cycles meanwhile is collected by a full collection.
    In a process of its own (as `hearth replay`): a gateway left running by another test may freeze objects."""
    path = tmp_path / "capture.jsonl"
    path.write_text('{"t":"2024-01-01T00:00:00.000Z","source":"mqtt","topic":"zigbee2mqtt/x","payload":{},'
                    '"retain":false}\n')
    code = f"""
import asyncio, gc, json, weakref
from pathlib import Path
from gateway.replay import replay
class Node: pass
gc.set_threshold(700, 10, 10)
result = asyncio.run(replay(Path({str(path)!r}), profiles=[]))
a, b = Node(), Node(); a.other, b.other = b, a; ref = weakref.ref(a); del a, b
print(json.dumps({{"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count(), "errors": len(result.errors),
                  "cycle_alive_before": ref() is not None, "collected": (gc.collect(), ref() is None)[1]}}))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert json.loads(run.stdout) == {"threshold": [700, 10, 10], "frozen": 0, "errors": 0,
                                      "cycle_alive_before": True, "collected": True}


def test_a_replay_without_profiles_starts_no_scene_engine_and_says_the_same() -> None:
    """`hearth replay capture.jsonl` (what the gateway makes of the devices' traffic) runs no scene engine
    (not even imported): its devices, notes and errors are those of a replay that has one."""
    code = """
import asyncio, json, sys
from pathlib import Path
from gateway.replay import replay
paths = [Path("tests/fixtures/z2m/capture.jsonl"), Path("tests/fixtures/scenes/outings.jsonl")]
plain = [asyncio.run(replay(p, profiles=[])) for p in paths]
print(json.dumps({"engine_imported": "gateway.scenes.engine" in sys.modules}))
engined = [asyncio.run(replay(p, profiles=[], inspect=lambda state: type(state.engine).__name__)) for p in paths]
print(json.dumps({"engine": [e.inspected for e in engined],
                  "same": [(a.devices, a.notes, a.errors, a.scenes, a.actions) ==
                           (b.devices, b.notes, b.errors, b.scenes, b.actions) for a, b in zip(plain, engined)],
                  "devices": [len(a.devices) for a in plain]}))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2], check=True)
    first, second = (json.loads(line) for line in run.stdout.splitlines())
    assert first == {"engine_imported": False}
    assert second["engine"] == ["SceneEngine", "SceneEngine"]
    assert second["same"] == [True, True] and all(second["devices"])


def test_replays_device_report_is_the_devices_public_shape() -> None:
    """Replay's devices are Device.as_dict's identity, area, availability and components (built directly)."""
    import asyncio

    from gateway.replay import replay

    capture = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "z2m" / "capture.jsonl"
    result = asyncio.run(replay(capture, profiles=[], keep_devices=True))
    keys = ("id", "name", "source", "manufacturer", "model", "area", "available", "components")
    assert result.devices == [{k: d.as_dict(with_support=False)[k] for k in keys}
                              for d in sorted(result.hub_devices, key=lambda d: d.id)]
    assert any(d["components"] for d in result.devices)


def test_a_result_s_repr_is_a_summary_not_every_device() -> None:
    # asyncio.run formats its finished task, result included, when it puts the Ctrl-C handler back (Python
    # 3.11): a device database's whole result as text was 40 ms of `hearth replay`.
    import asyncio

    from gateway.replay import replay

    result = asyncio.run(replay(CAPTURE, profiles=[]))
    assert len(result.devices) > 3
    text = repr(result)
    assert text.startswith(f"<ReplayResult: {len(result.devices)} devices, ") and len(text) < 200
