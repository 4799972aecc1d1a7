"""The simulated house: used by ``hearth demo``, the tests and the benchmarks.

- :mod:`gateway.sim.house`: the house as data (:func:`demo_house`, :func:`scaled_house` for ``devices=N``),
  its ``bridge/devices`` payload, its areas and tags;
- :mod:`gateway.sim.resident`: the resident's days as plans of steps, outings included (:class:`Outing`,
  :func:`outings_of`);
- :mod:`gateway.sim.model`: the house in motion (:class:`HouseModel`: resident, loads, climate, and the
  Zigbee2MQTT bridge that answers ``<name>/set``), pure and clock-free;
- :mod:`gateway.sim.live`: the model on a real broker, on the injected clock (:class:`LiveSimulation`);
- :mod:`gateway.sim.capture`: its traffic as a capture file for ``hearth replay``;
- :mod:`gateway.sim.stream`: a fixed message stream for throughput benchmarks.

Needs only the standard library, orjson, paho-mqtt and ``gateway.clock``: importing it does not pull in the
gateway's core (hub, store, API), so benchmarks can drive it from a separate process cheaply.
``gateway.sim.demo`` (``hearth demo``) is the one module that wires it to a running gateway.
"""

from gateway.sim.capture import write_capture
from gateway.sim.house import House, SimDevice, demo_house, scaled_house
from gateway.sim.model import HouseModel, Message
from gateway.sim.resident import Outing, outings_of, plan_day
from gateway.sim.stream import house_stream, message_stream

__all__ = [
    "House",
    "HouseModel",
    "Message",
    "Outing",
    "SimDevice",
    "demo_house",
    "house_stream",
    "message_stream",
    "outings_of",
    "plan_day",
    "scaled_house",
    "write_capture",
]
