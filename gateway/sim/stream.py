"""A fixed stream of device state messages for throughput benchmarks (issue 8).

``message_stream(house, n)`` yields ``n`` (topic, payload) pairs over the house's Zigbee2MQTT device
topics, round-robin, each a realistic state payload of that device's kind whose values change from one
message to the next (so every message is a state change the hub, the store and the scenes must handle).
Deterministic for a seed; payloads are pre-serialised bytes, so producing them costs the publisher
nothing measurable.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import orjson

from gateway.sim.house import House, SimDevice

__all__ = ["message_stream", "state_payload"]


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
