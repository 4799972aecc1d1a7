"""Fixed streams of device state messages for throughput benchmarks (issue 8).

Both yield ``n`` (topic, payload) pairs over the house's Zigbee2MQTT device topics, round-robin, each a
full state payload of that device's kind, as Zigbee2MQTT publishes it. Deterministic for a seed; payloads
are pre-serialised bytes, so producing them costs the publisher nothing measurable.

- ``message_stream``: the stress stream. Every value changes from one message of a device to the next
  (lights switch, windows open and close, motion comes and goes at every report), so every message is
  several state changes the hub, the store and the scenes must handle.
- ``house_stream``: what a house sends. A report repeats the device's previous state except what moves
  between two reports in a real house: plugs' power, voltage and link quality at every report, energy
  as it adds up; temperatures, illuminance and heating demand now and then; a light switched, a window
  opened, motion, a button pressed rarely (``CHANGE_ODDS``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from gateway.sim.house import House, SimDevice

__all__ = ["CHANGE_ODDS", "house_stream", "message_stream", "state_payload"]


def state_payload(device: SimDevice, i: int, rng: random.Random) -> dict[str, Any]:
    """The ``i``-th state of ``device`` in a stream (values vary with ``i``)."""
    kind = device.kind
    if kind == "light":
        on = i % 3 != 0
        return {"state": "ON" if on else "OFF", "brightness": 1 + (i * 7) % 254, "color_temp": 153 + (i * 11) % 217,
                "linkquality": rng.randint(60, 200)}
    if kind == "plug":
        return {"state": "ON", "power": round(rng.uniform(0.5, 120.0), 1), "energy": round(10 + i * 0.001, 3),
                "linkquality": rng.randint(60, 200)}
    if kind == "metering_plug":
        watts = round(rng.uniform(0.5, 2000.0), 1)
        return {"state": "ON", "power": watts, "current": round(watts / 230, 2), "voltage": rng.randint(228, 234),
                "energy": round(10 + i * 0.001, 3), "linkquality": rng.randint(60, 200)}
    if kind == "motion":
        lux = rng.randint(0, 500)
        return {"occupancy": i % 2 == 0, "illuminance": lux, "illuminance_lux": lux, "battery": 90,
                "voltage": 3005, "linkquality": rng.randint(60, 200)}
    if kind == "contact":
        return {"contact": i % 2 == 0, "battery": 90, "voltage": 3005, "linkquality": rng.randint(60, 200)}
    if kind == "thermostat":
        return {"local_temperature": round(rng.uniform(17, 23), 1), "occupied_heating_setpoint": 21.0,
                "system_mode": "heat", "running_state": "heat" if i % 2 else "idle",
                "pi_heating_demand": rng.randint(0, 100), "battery": 80}
    if kind == "button":
        return {"action": ("single", "double", "hold", "release")[i % 4], "battery": 90, "linkquality": 100}
    raise ValueError(f"no stream payload for kind {kind!r}")


def message_stream(house: House, n: int, *, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """``n`` (topic, payload) state messages, round-robin over the house's Zigbee devices."""
    devices = house.zigbee
    if not devices:
        raise ValueError("the house has no Zigbee2MQTT devices")
    rng = random.Random(seed)
    count = len(devices)
    for i in range(n):
        device = devices[i % count]
        yield device.topic, orjson.dumps(state_payload(device, i // count, rng))


# House stream: the odds that one report of a device carries the change (the rest repeat the last value).
# A device here reports twice a second (2,000 msg/s over 1,000 devices), so 0.005 is a window opened or
# closed about every 100 s, per window.
CHANGE_ODDS: dict[str, float] = {
    "light": 0.005,  # switched or dimmed
    "motion": 0.02,  # occupancy comes or goes
    "illuminance": 0.2,
    "contact": 0.005,
    "temperature": 0.1,
    "heating_demand": 0.2,
    "voltage": 0.3,  # mains voltage of a metering plug
    "press": 0.01,  # a button pressed
}


def _first_state(device: SimDevice, rng: random.Random) -> dict[str, Any]:
    state = state_payload(device, 1, rng)
    if device.kind == "button":
        state.pop("action")  # a button's periodic report carries no press
    elif device.kind == "contact":
        state["contact"] = True  # windows closed
    return state


def _next_state(kind: str, state: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The device's next report: ``state`` with what moves between two reports moved (a new dict)."""
    odds = CHANGE_ODDS
    state = dict(state)
    state["linkquality"] = max(0, min(255, state.get("linkquality", 120) + rng.randint(-6, 6)))
    if kind == "light":
        if rng.random() < odds["light"]:
            if state["state"] == "OFF" or rng.random() < 0.5:
                state.update(state="ON", brightness=rng.randint(1, 254))
            else:
                state["state"] = "OFF"
    elif kind in ("plug", "metering_plug"):
        watts = max(0.5, round(state["power"] * rng.uniform(0.97, 1.03), 1))
        state["power"] = watts
        state["energy"] = round(state["energy"] + watts / 3_600_000 * 0.5, 3)
        if kind == "metering_plug":
            state["current"] = round(watts / 230, 2)
            if rng.random() < odds["voltage"]:
                state["voltage"] = rng.randint(228, 234)
    elif kind == "motion":
        if rng.random() < odds["motion"]:
            state["occupancy"] = not state["occupancy"]
        if rng.random() < odds["illuminance"]:
            lux = max(0, state["illuminance"] + rng.randint(-5, 5))
            state.update(illuminance=lux, illuminance_lux=lux)
    elif kind == "contact":
        if rng.random() < odds["contact"]:
            state["contact"] = not state["contact"]
    elif kind == "thermostat":
        if rng.random() < odds["temperature"]:
            state["local_temperature"] = round(min(26.0, max(15.0, state["local_temperature"] + rng.choice(
                (-0.1, 0.1)))), 1)
        if rng.random() < odds["heating_demand"]:
            demand = rng.randint(0, 100)
            state.update(pi_heating_demand=demand, running_state="heat" if demand else "idle")
    elif kind == "button":
        state.pop("action", None)
        if rng.random() < odds["press"]:
            state["action"] = rng.choice(("single", "double", "hold"))
    return state


def house_stream(house: House, n: int, *, seed: int = 0) -> Iterator[tuple[str, bytes]]:
    """``n`` (topic, payload) reports, round-robin over the house's Zigbee devices, as a house sends them:
    each repeats the device's last state but for what moves between two reports (see the module's doc)."""
    devices = house.zigbee
    if not devices:
        raise ValueError("the house has no Zigbee2MQTT devices")
    rng = random.Random(seed)
    states = [_first_state(device, rng) for device in devices]
    count = len(devices)
    for i in range(n):
        index = i % count
        device = devices[index]
        states[index] = _next_state(device.kind, states[index], rng)
        yield device.topic, orjson.dumps(states[index])
