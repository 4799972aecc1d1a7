"""The simulated house as data: rooms, devices (what they are, where, with which tags) and the
``bridge/devices`` payload a Zigbee2MQTT bridge would publish for them.

:func:`demo_house` is the small house of ``hearth demo`` (five rooms, one resident);
:func:`scaled_house` clones the same Zigbee2MQTT definitions into ``devices=N`` devices for benchmarks.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from gateway.sim._definitions import DEFINITIONS

__all__ = ["BASE_TOPIC", "BLE_GATEWAY", "BLE_KIND", "House", "SimDevice", "demo_house", "scaled_house"]

BASE_TOPIC = "zigbee2mqtt"
# The receiver the BLE thermometers are heard through: Theengs Gateway's default topic level.
BLE_GATEWAY = "TheengsGateway"
BLE_KIND = "bthome_thermometer"

# Roles: what a device does in the simulation (its kind says which Zigbee2MQTT definition it uses).
#   light, motion, door, window, tv, fridge, kettle, washer, appliance (scaled house), thermostat,
#   thermometer (BLE), panic


@dataclass(frozen=True, slots=True)
class SimDevice:
    name: str  # Zigbee2MQTT friendly name, or the BLE advertised name
    kind: str  # a key of DEFINITIONS, or BLE_KIND
    role: str
    room: str
    address: str  # IEEE address (0x + 16 hex digits) or MAC (AA:BB:CC:DD:EE:FF)
    tags: tuple[str, ...] = ()

    @property
    def is_ble(self) -> bool:
        return self.kind == BLE_KIND

    @property
    def device_id(self) -> str:
        """The Hearth device id (DESIGN.md contract 2)."""
        return f"ble:{self.address.lower()}" if self.is_ble else f"zigbee2mqtt:{self.address.lower()}"

    @property
    def topic(self) -> str:
        if self.is_ble:
            return f"home/{BLE_GATEWAY}/BTtoMQTT/{self.address.replace(':', '').upper()}"
        return f"{BASE_TOPIC}/{self.name}"


@dataclass(frozen=True)
class House:
    rooms: tuple[str, ...]
    devices: tuple[SimDevice, ...]
    # Whether a resident lives here (the demo house); the scaled benchmark house has none.
    resident: bool = True
    _by_name: dict[str, SimDevice] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = [d.name for d in self.devices]
        if len(set(names)) != len(names):
            raise ValueError("device names must be unique")
        self._by_name.update({d.name: d for d in self.devices})

    def device(self, name: str) -> SimDevice:
        return self._by_name[name]

    def find(self, role: str, room: str | None = None) -> list[SimDevice]:
        return [d for d in self.devices if d.role == role and (room is None or d.room == room)]

    @property
    def zigbee(self) -> list[SimDevice]:
        return [d for d in self.devices if not d.is_ble]

    def areas(self) -> dict[str, str]:
        """``[areas]`` for the gateway's config: device id -> room."""
        return {d.device_id: d.room for d in self.devices}

    def tags(self) -> dict[str, list[str]]:
        """``[tags]`` for the gateway's config: device id -> tags (only devices that have some)."""
        return {d.device_id: list(d.tags) for d in self.devices if d.tags}

    def bridge_devices(self) -> list[dict[str, Any]]:
        """The ``zigbee2mqtt/bridge/devices`` payload: the coordinator, then every Zigbee device."""
        entries: list[dict[str, Any]] = [{
            "friendly_name": "Coordinator", "ieee_address": "0x00124b0000c0ffee", "type": "Coordinator",
            "network_address": 0, "interview_completed": True, "interviewing": False, "disabled": False,
            "supported": True, "definition": None,
        }]
        for index, device in enumerate(self.zigbee, start=1):
            entry = copy.deepcopy(DEFINITIONS[device.kind])
            entry["friendly_name"] = device.name
            entry["ieee_address"] = device.address
            entry["network_address"] = index
            entries.append(entry)
        return entries


def _ieee(index: int) -> str:
    # A Texas Instruments (0x00124b) prefix, like many Zigbee modules; unique per index.
    return f"0x00124b00{index:08x}"


def _mac(index: int) -> str:
    # A4:C1:38 is the Telink OUI of the Xiaomi/ATC thermometers that run BTHome firmware (pvvx).
    return f"A4:C1:38:{(index >> 16) & 0xFF:02X}:{(index >> 8) & 0xFF:02X}:{index & 0xFF:02X}"


# name, kind, role, room, tags
_DEMO: tuple[tuple[str, str, str, str, tuple[str, ...]], ...] = (
    ("Hall motion", "motion", "motion", "hall", ()),
    ("Hall light", "light", "light", "hall", ("light",)),
    ("Front door", "contact", "door", "hall", ("entrance",)),
    ("Living room motion", "motion", "motion", "living_room", ()),
    ("Living room light", "light", "light", "living_room", ("light",)),
    ("Living room window", "contact", "window", "living_room", ()),
    ("Living room radiator", "thermostat", "thermostat", "living_room", ()),
    ("TV", "plug", "tv", "living_room", ()),
    ("Kitchen motion", "motion", "motion", "kitchen", ()),
    ("Kitchen light", "light", "light", "kitchen", ("light",)),
    ("Fridge", "plug", "fridge", "kitchen", ("always_on",)),
    ("Kettle", "plug", "kettle", "kitchen", ()),
    ("Washing machine", "metering_plug", "washer", "kitchen", ("deferrable",)),
    ("Bedroom motion", "motion", "motion", "bedroom", ()),
    ("Bedroom light", "light", "light", "bedroom", ("light",)),
    ("Bedroom window", "contact", "window", "bedroom", ()),
    ("Panic button", "button", "panic", "bedroom", ("panic",)),
    ("Bathroom motion", "motion", "motion", "bathroom", ()),
    ("Bathroom light", "light", "light", "bathroom", ("light",)),
)
# BLE thermometers: name (set from the MAC below), room, tags
_DEMO_BLE: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bedroom", ()),
    ("bathroom", ()),
    ("outside", ("outdoor",)),
)

DEMO_ROOMS = ("hall", "living_room", "kitchen", "bedroom", "bathroom", "outside")


def demo_house() -> House:
    """The house of ``hearth demo``: five rooms and a garden thermometer, 22 devices."""
    devices = [SimDevice(name, kind, role, room, _ieee(i), tags)
               for i, (name, kind, role, room, tags) in enumerate(_DEMO, start=1)]
    for i, (room, tags) in enumerate(_DEMO_BLE, start=1):
        mac = _mac(0x100 + i)
        # pvvx firmware advertises as ATC_<last 3 MAC bytes>
        devices.append(SimDevice("ATC_" + mac.replace(":", "")[-6:], BLE_KIND, "thermometer", room, mac, tags))
    return House(DEMO_ROOMS, tuple(devices), resident=True)


# The kinds cloned by scaled_house, with the share of each (plugs and lights dominate real Zigbee meshes).
_SCALED_MIX: tuple[tuple[str, str, int], ...] = (
    ("light", "light", 30),
    ("plug", "appliance", 20),
    ("metering_plug", "appliance", 10),
    ("motion", "motion", 15),
    ("contact", "window", 15),
    ("thermostat", "thermostat", 5),
    ("button", "button", 5),
)


def scaled_house(devices: int, *, rooms: int | None = None) -> House:
    """``devices`` Zigbee2MQTT devices cloned from the demo's definitions, with unique IEEE addresses and
    friendly names, spread round-robin over ``rooms`` rooms (default: one per ten devices). No resident."""
    if devices < 1:
        raise ValueError("devices must be >= 1")
    room_count = rooms or max(1, devices // 10)
    room_names = tuple(f"room_{r:03d}" for r in range(room_count))
    cycle = [(kind, role) for kind, role, share in _SCALED_MIX for _ in range(share)]
    made = []
    for i in range(devices):
        kind, role = cycle[(i * 37) % len(cycle)]  # 37 is prime to 100: kinds interleave evenly
        room = room_names[i % room_count]
        made.append(SimDevice(f"{room}/{kind}_{i:05d}", kind, role, room, _ieee(0x10000 + i)))
    return House(room_names, tuple(made), resident=False)
