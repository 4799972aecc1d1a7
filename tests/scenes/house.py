"""A small house for scene tests, recorded as a Zigbee2MQTT capture: real device definitions from
tests/fixtures/z2m (cloned under new names and addresses), and a day of state messages written as a
script ("07:10 bedroom/motion occupancy=true")."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "z2m"
DAY = datetime(2026, 3, 10, tzinfo=UTC)  # a Tuesday

# friendly name: (template friendly name in the fixture, area, tags)
HOUSE: dict[str, tuple[str, str, list[str]]] = {
    "hall/motion": ("Bathroom Motion Sensor", "hall", []),
    "kitchen/motion": ("Bathroom Motion Sensor", "kitchen", []),
    "living/motion": ("Bathroom Motion Sensor", "living", []),
    "bedroom/motion": ("Bathroom Motion Sensor", "bedroom", []),
    "bathroom/motion": ("Bathroom Motion Sensor", "bathroom", []),
    "hall/light": ("Bedroom Desk Light", "hall", []),
    "living/light": ("Bedroom Desk Light", "living", []),
    "kitchen/light": ("Bedroom Desk Light", "kitchen", []),
    "living/tv": ("Plug", "living", []),
    "kitchen/fridge": ("Plug", "kitchen", ["always_on"]),
    "hall/front door": ("Door Sensor", "hall", ["entrance"]),
    "living/window": ("Door Sensor", "living", []),
    "living/climate": ("Living Room temperature, humidity and pressure sensor", "living", []),
    "bedroom/climate": ("Living Room temperature, humidity and pressure sensor", "bedroom", []),
    "living/radiator": ("bedroom/radiator", "living", []),
    "bedroom/panic": ("Office Desk Switch", "bedroom", ["panic"]),
}

INITIAL: dict[str, dict[str, Any]] = {
    "motion": {"occupancy": False, "battery": 100, "illuminance_lux": 100},
    "light": {"state": "OFF", "brightness": 200, "color_temp": 300},
    "tv": {"state": "ON", "power": 80.0, "energy": 100.0},
    "fridge": {"state": "ON", "power": 60.0, "energy": 50.0},
    "front door": {"contact": True, "battery": 100},  # Z2M: contact true = closed
    "window": {"contact": True, "battery": 100},
    "climate": {"temperature": 21.0, "humidity": 45.0, "pressure": 1010.0, "battery": 100},
    "radiator": {"local_temperature": 20.5, "occupied_heating_setpoint": 21.0, "system_mode": "heat",
                 "running_state": "heat"},
    "panic": {"battery": 100},
}


def ieee_of(index: int) -> str:
    return f"0x00124b00{index:08x}"


def device_id(name: str) -> str:
    return f"zigbee2mqtt:{ieee_of(list(HOUSE).index(name) + 1)}"


def bridge_devices() -> list[dict[str, Any]]:
    templates = {d["friendly_name"]: d for d in json.loads((FIXTURES / "bridge_devices.json").read_text())}
    devices = []
    for index, (name, (template, _area, _tags)) in enumerate(HOUSE.items(), start=1):
        entry = copy.deepcopy(templates[template])
        entry["friendly_name"] = name
        entry["ieee_address"] = ieee_of(index)
        devices.append(entry)
    return devices


def config_text(extra: str = "", profiles: str | None = None) -> str:
    areas = "\n".join(f'"{name}" = "{area}"' for name, (_, area, _) in HOUSE.items())
    tags = "\n".join(f'"{name}" = {json.dumps(tags)}' for name, (_, _, tags) in HOUSE.items() if tags)
    if profiles is None:
        profiles = (
            '[[profiles]]\nuse = "elderly-monitoring"\n[profiles.params]\ncontacts = ["daughter", "neighbour"]\n\n'
            '[[profiles]]\nuse = "energy-saving"\n'
        )
    return (
        '[location]\ntimezone = "UTC"\nlatitude = 52.52\nlongitude = 13.40\n\n'
        '[notify.daughter]\nkind = "log"\n\n[notify.neighbour]\nkind = "log"\n\n'
        f"[areas]\n{areas}\n\n[tags]\n{tags}\n\n{profiles}\n{extra}"
    )


@dataclass
class Day:
    """A script of Zigbee2MQTT messages, written to a capture file."""

    day: datetime = DAY
    lines: list[tuple[datetime, str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        start = self.day
        self.lines.append((start, "zigbee2mqtt/bridge/state", {"state": "online"}))
        self.lines.append((start, "zigbee2mqtt/bridge/devices", bridge_devices()))
        for name in HOUSE:
            kind = name.split("/", 1)[1]
            self.lines.append((start + timedelta(seconds=1), f"zigbee2mqtt/{name}", INITIAL[kind]))

    def at(self, clock: str, name: str, payload: dict[str, Any], day_offset: int = 0) -> Day:
        parts = [int(p) for p in clock.split(":")]
        when = self.day + timedelta(days=day_offset, hours=parts[0], minutes=parts[1],
                                    seconds=parts[2] if len(parts) > 2 else 0)
        self.lines.append((when, f"zigbee2mqtt/{name}", payload))
        return self

    def motion(self, clock: str, room: str, day_offset: int = 0) -> Day:
        """Someone walks through: occupancy true, then false 90 s later (as a PIR reports it)."""
        self.at(clock, f"{room}/motion", {"occupancy": True}, day_offset)
        hh, mm = (int(p) for p in clock.split(":")[:2])
        end = (datetime(2000, 1, 1, hh, mm) + timedelta(seconds=90)).strftime("%H:%M:%S")
        return self.at(end, f"{room}/motion", {"occupancy": False}, day_offset)

    def end(self, clock: str, day_offset: int = 0) -> Day:
        """Close the capture at this time (a harmless message, so the replay runs until then)."""
        return self.at(clock, "bridge/state", {"state": "online"}, day_offset)

    def write(self, path: Path) -> Path:
        with path.open("w") as file:
            for when, topic, payload in sorted(self.lines, key=lambda line: line[0]):
                file.write(json.dumps({"t": when.isoformat().replace("+00:00", "Z"), "source": "mqtt",
                                       "topic": topic, "payload": payload}) + "\n")
        return path


def normal_day() -> Day:
    """Up at 07:10, moves about every hour or two, in bed by 22:30. Nothing to worry about."""
    day = Day()
    for clock, room in [("07:10", "bedroom"), ("07:15", "bathroom"), ("07:40", "kitchen"), ("08:30", "living"),
                        ("10:00", "kitchen"), ("11:30", "living"), ("12:30", "kitchen"), ("14:00", "living"),
                        ("15:30", "bathroom"), ("16:00", "living"), ("18:00", "kitchen"), ("19:00", "living"),
                        ("20:30", "living"), ("21:30", "bathroom"), ("22:00", "bedroom"), ("22:30", "bedroom")]:
        day.motion(clock, room)
    return day.end("23:59")
