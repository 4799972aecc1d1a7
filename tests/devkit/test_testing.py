"""The pytest plugin gateway.testing: typed replay results, the assert helpers' messages, the fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gateway.devkit.harness import Harness
from gateway.devkit.mosquitto import Mosquitto
from gateway.testing import (
    HarnessFactory,
    ReplayReport,
    assert_device,
    assert_no_problems,
    assert_published,
    assert_value,
    replay,
)
from tests.devkit.test_harness import LampAdapter

REPO = Path(__file__).resolve().parents[2]
TASMOTA = REPO / "tests" / "fixtures" / "tasmota" / "capture.jsonl"


async def test_replay_gives_typed_results() -> None:
    report = await replay(TASMOTA)
    assert isinstance(report, ReplayReport)
    plug = report.device("tasmota:tasmota_a1b2c3")
    assert plug.value("energy_meter", "kwh") == 261.251
    assert report.value("tasmota:cv-ruimte", "on_off", "on", component="l2") is True
    assert_device(report, "tasmota:tasmota_0848a2", model="Sonoff Basic", available=False)
    assert_value(report, "tasmota:th_garage", "temperature", "celsius", 22.0)
    assert any(note.source == "tasmota" for note in report.notes)
    assert report.errors_from("tasmota") == []
    assert report.result is not None and report.result.devices
    kwh = [v for v in report.values if v.device_id == "tasmota:tasmota_a1b2c3" and v.attribute == "kwh"]
    assert [(v.component, v.capability, v.value) for v in kwh] == [("main", "energy_meter", 261.251)]
    with pytest.raises(KeyError, match="no device 'tasmota:nope'"):
        report.device("tasmota:nope")


async def test_replay_takes_a_config_as_a_mapping_or_a_file(tmp_path: Path) -> None:
    capture = tmp_path / "c.jsonl"
    capture.write_text('{"t": 0, "topic": "x/y", "payload": "1"}\n{"t": 1, "nonsense": \n', encoding="utf-8")
    report = await replay(capture, {"adapters": {"tasmota": {"enabled": False}}})
    assert [e.source for e in report.errors] == ["capture"] and report.problems == []
    config = tmp_path / "config.toml"
    config.write_text("[adapters.tasmota]\nenabled = false\n", encoding="utf-8")
    assert (await replay(capture, config)).devices == {}


async def test_the_asserts_say_what_there_was_instead(hearth_harness: HarnessFactory) -> None:
    harness = await hearth_harness(LampAdapter, name="lamp")
    await harness.deliver("lamp/a1/state", {"on": True, "dial": 2})
    await harness.deliver("lamp/a1/state", b"{broken")
    with pytest.raises(AssertionError) as missing:
        assert_device(harness, "lamp:b2")
    assert "no device 'lamp:b2'; the devices there are:\n    lamp:a1" in str(missing.value)
    assert "problems reported:\n    lamp/a1/state: not JSON" in str(missing.value)
    with pytest.raises(AssertionError, match=r"name: expected 'Hall', got 'Lamp a1'"):
        assert_device(harness, "lamp:a1", name="Hall")
    with pytest.raises(AssertionError) as wrong:
        assert_value(harness, "lamp:a1", "kit.dial", "position", 3)
    assert "lamp:a1 main.kit.dial.position: expected 3, got 2" in str(wrong.value)
    assert "main.on_off: on=True" in str(wrong.value)
    with pytest.raises(AssertionError, match="was never reported"):
        assert_value(harness, "lamp:a1", "level", "percent")
    assert assert_value(harness, "lamp:a1", "kit.dial", "position", 2.4, tolerance=0.5) == 2
    with pytest.raises(AssertionError, match="expected 1, got True"):
        assert_value(harness, "lamp:a1", "on_off", "on", 1)  # a bool is not a number
    with pytest.raises(AssertionError, match="problems were reported:\n    lamp/a1/state: not JSON"):
        assert_no_problems(harness)
    with pytest.raises(AssertionError, match=r"nothing was published on 'lamp/\+/set'; the adapter published:"):
        assert_published(harness, "lamp/+/set")
    harness.respond("lamp/+/set", lambda topic, payload: [(topic.replace("/set", "/state"), payload)])
    await harness.command("lamp:a1", "on_off", "off")
    assert assert_published(harness, "lamp/+/set", {"on": False}).topic == "lamp/a1/set"
    assert_published(harness, "lamp/a1/set", '{"on": false}')
    with pytest.raises(AssertionError, match=r"no message on 'lamp/a1/set' had the payload \{'on': True\}"):
        assert_published(harness, "lamp/a1/set", {"on": True})


async def test_the_harness_fixture_stops_what_it_made(hearth_harness: HarnessFactory) -> None:
    first = await hearth_harness(LampAdapter, name="lamp")
    second = await hearth_harness(LampAdapter, name="lamp2")
    assert isinstance(first, Harness) and first.running and second.running


@pytest.mark.mqtt
def test_the_mosquitto_fixture(hearth_mosquitto: Mosquitto) -> None:
    assert hearth_mosquitto.running and hearth_mosquitto.host == "127.0.0.1"
    assert hearth_mosquitto.port > 0


def test_the_mosquitto_fixture_skips_with_the_reason_when_there_is_none(tmp_path: Path) -> None:
    (tmp_path / "test_broker.py").write_text(textwrap.dedent("""
        def test_it(hearth_mosquitto):
            pass
    """))
    env = {k: v for k, v in os.environ.items() if k != "HEARTH_REQUIRE_MOSQUITTO"}
    env["PATH"] = str(tmp_path)  # no mosquitto there...
    run = [sys.executable, "-c", "import shutil, sys, pytest; shutil.which = lambda *a, **k: None; "
           "sys.exit(pytest.main(['-q', '-rs', '-p', 'no:cacheprovider', 'test_broker.py']))"]
    done = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "1 skipped" in done.stdout and "mosquitto is not installed" in done.stdout, done.stdout + done.stderr
    env["HEARTH_REQUIRE_MOSQUITTO"] = "1"
    done = subprocess.run(run, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "1 error" in done.stdout and "mosquitto is not installed" in done.stdout, done.stdout + done.stderr


def test_the_plugin_module_imports_nothing_heavy() -> None:
    code = ("import sys, gateway.testing; heavy = [m for m in ('gateway.hub', 'gateway.replay', 'gateway.mqtt', "
            "'pydantic', 'paho') if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.stdout.strip() == "[]", done.stderr


def test_tests_broker_is_the_kit_s_mosquitto() -> None:
    import tests.broker

    assert tests.broker.Mosquitto is Mosquitto


def test_the_kit_type_checks_strictly() -> None:
    """The kit is public API that makers' code is type-checked against (mypy --strict on their packages)."""
    modules = ["gateway/testing.py", "gateway/devkit/harness.py", "gateway/devkit/scaffold.py",
               "gateway/devkit/mosquitto.py"]
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
                           *modules], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
