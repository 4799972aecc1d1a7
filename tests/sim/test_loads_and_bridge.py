"""Plug load curves (standby below the standby threshold, realistic peaks) and the simulated bridge's
answers to ``<name>/set``, which is what makes commands from the UI and scenes echo back."""

from __future__ import annotations

import itertools
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
import pytest

from gateway.sim import HouseModel, demo_house
from gateway.sim.loads import Fridge, Kettle, Tv, WashingMachine

START = datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()


def test_tv_draws_about_a_watt_in_standby_and_tens_when_on() -> None:
    tv = Tv(random.Random(1))
    standby = [tv.watts(START + i) for i in range(200)]
    assert max(standby) < 5 and min(standby) > 0
    tv.on = True
    assert all(60 <= tv.watts(START + i) <= 120 for i in range(200))


def test_fridge_cycles_between_nearly_nothing_and_its_compressor() -> None:
    fridge = Fridge(random.Random(2), START)
    readings = [fridge.watts(START + minute * 60) for minute in range(24 * 60)]
    assert min(readings) < 5 and max(readings) >= 55
    running = [w > 30 for w in readings]
    starts = sum(1 for a, b in itertools.pairwise(running) if b and not a)
    assert 12 <= starts <= 36  # a cycle every 45-75 minutes


def test_kettle_spikes_only_while_it_boils() -> None:
    kettle = Kettle(random.Random(3))
    assert kettle.watts(START) == 0.0
    off_at = kettle.boil(START)
    assert 150 <= off_at - START <= 240
    assert 1800 <= kettle.watts(START + 60) <= 2250
    assert kettle.watts(off_at + 1) == 0.0


def test_washing_machine_runs_one_cycle_when_loaded_and_powered() -> None:
    washer = WashingMachine(random.Random(4))
    assert washer.watts(START) < 5
    washer.relay_changed(True, START)  # not loaded: nothing happens
    assert washer.cycle_started is None
    washer.load()
    washer.relay_changed(True, START)
    readings = [washer.watts(START + minute * 60) for minute in range(180)]
    assert max(readings) > 1800  # heating the water
    assert any(300 <= w <= 550 for w in readings)  # spinning
    assert readings[-1] < 5 and not washer.loaded  # done, back to standby


def test_standby_of_every_demo_plug_is_below_five_watts() -> None:
    model = HouseModel(demo_house(), start=START, tz=ZoneInfo("UTC"), seed=1, bad_morning_day=None)
    model.start()
    for role in ("tv", "washer", "kettle"):
        device = model.house.find(role)[0]
        assert model.loads[device.name].watts(START) < 5, role


def _last_state(messages, topic):  # type: ignore[no-untyped-def]
    states = [orjson.loads(m.payload) for m in messages if m.topic == topic]
    assert states, f"nothing published on {topic}"
    return states[-1]


def test_bridge_answers_set_with_the_new_state() -> None:
    model = HouseModel(demo_house(), start=START, tz=ZoneInfo("UTC"), seed=1, bad_morning_day=None)
    model.start()
    light = model.house.device("Kitchen light")
    state = _last_state(model.handle_set(light.name, {"brightness": 127}, START + 1), light.topic)
    assert state["state"] == "ON" and state["brightness"] == 127
    state = _last_state(model.handle_set(light.name, {"state": "OFF"}, START + 2), light.topic)
    assert state["state"] == "OFF"

    tv = model.house.device("TV")
    state = _last_state(model.handle_set(tv.name, {"state": "OFF"}, START + 3), tv.topic)
    assert state["state"] == "OFF" and state["power"] == 0.0

    trv = model.house.device("Living room radiator")
    state = _last_state(model.handle_set(trv.name, {"occupied_heating_setpoint": 12}, START + 4), trv.topic)
    assert state["occupied_heating_setpoint"] == 12.0 and state["running_state"] == "idle"

    assert model.handle_set("no such device", {"state": "ON"}, START + 5) == []
    assert model.handle_set(light.name, ["not", "an", "object"], START + 6) == []


@pytest.mark.parametrize("hours", [6])
def test_off_peak_start_runs_the_loaded_washing_machine(hours: int) -> None:
    model = HouseModel(demo_house(), start=START, tz=ZoneInfo("UTC"), seed=1, bad_morning_day=None)
    model.start()
    washer = model.house.device("Washing machine")
    load = model.loads[washer.name]
    assert isinstance(load, WashingMachine)
    load.load()
    model.handle_set(washer.name, {"state": "OFF"}, START + 10)
    model.handle_set(washer.name, {"state": "ON"}, START + 20)  # what the deferrable-start scene sends
    messages = model.advance_to(START + hours * 3600)
    powers = [orjson.loads(m.payload)["power"] for m in messages if m.topic == washer.topic]
    assert max(powers) > 1800 and powers[-1] < 5
