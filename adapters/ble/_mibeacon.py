"""Xiaomi MiBeacon (service data UUID 0xFE95) as tables: product ids and object types.

Frame layout and object meanings follow ``Bluetooth-Devices/xiaomi-ble`` (``parser.py``, ``devices.py``)
and Xiaomi's object definitions; only objects with a place in our capability model are mapped. Pure.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# product id -> (model, name). A frame from a product id not listed still decodes (objects are
# self-describing); the device is then called "Xiaomi 0x<id>".
PRODUCTS: dict[int, tuple[str, str]] = {
    0x0098: ("HHCCJCY01", "Plant Sensor"),
    0x0153: ("YLYK01YL", "Remote Control"),
    0x01AA: ("LYWSDCGQ", "Temperature/Humidity Sensor"),
    0x0347: ("CGG1", "Temperature/Humidity Sensor"),
    0x0387: ("MHO-C401", "Temperature/Humidity Sensor"),
    0x03B6: ("YLKG07YL/YLKG08YL", "Dimmer Switch"),
    0x045B: ("LYWSD02", "Temperature/Humidity Sensor"),
    0x055B: ("LYWSD03MMC", "Temperature/Humidity Sensor"),
    0x0576: ("CGD1", "3-in-1 Alarm Clock"),
    0x066F: ("CGDK2", "Temperature/Humidity Sensor"),
    0x07F6: ("MJYD02YL", "Nightlight"),
    0x0863: ("SJWS01LM", "Flood Detector"),
    0x098B: ("MCCGQ02HL", "Door/Window Sensor"),
    0x0997: ("JTYJGD03MI", "Smoke Detector"),
    0x0A83: ("CGPR1", "Motion/Light Sensor"),
    0x0A8D: ("RTCGQ02LM", "Motion Sensor"),
    0x0B48: ("CGG1-ENCRYPTED", "Temperature/Humidity Sensor"),
    0x0C3C: ("CGC1", "Alarm Clock"),
    0x1203: ("XMWSDJ04MMC", "Thermometer"),
    0x16E4: ("LYWSD02MMC", "Temperature/Humidity Sensor"),
    0x2542: ("LYWSD02MMC", "Temperature/Humidity Sensor"),
    0x3F0F: ("RS1BB(MI)", "Flood and Rain Sensor"),
    0x4683: ("XMOSB01XS", "Occupancy Sensor"),
}

# Models whose 0x1007 object is "light on/off" (100 = light), not lux.
_LIGHT_NOT_LUX = {"MJYD02YL", "MCCGQ02HL"}
_WHOLE_PERCENT = {"LYWSD03MMC", "MHO-C401"}
# 0x1001 press types -> our kinds (xiaomi-ble obj1001)
_PRESS_KINDS = {0: "single", 1: "double", 2: "long", 5: "single", 6: "long"}
# Anything up to this many seconds without motion counts as motion (what the Mi Home app shows).
_MOTION_WITHIN_S = 30


@dataclass(slots=True)
class MiFrame:
    readings: list[tuple[str, str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


Reader = Callable[[bytes, str, MiFrame], None]


def _temp(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("temperature", "celsius", struct.unpack("<h", raw)[0] / 10))


def _hum(raw: bytes, model: str, out: MiFrame) -> None:
    value = struct.unpack("<H", raw)[0] / 10
    # These two report humidity in jagged 0.1 steps; whole percent is what xiaomi-ble (and ESPHome) show.
    out.readings.append(("humidity", "percent", float(int(value)) if model in _WHOLE_PERCENT else value))


def _temp_hum(raw: bytes, model: str, out: MiFrame) -> None:
    temp, hum = struct.unpack("<hH", raw)
    out.readings += [("temperature", "celsius", temp / 10), ("humidity", "percent", hum / 10)]


def _battery(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("battery", "percent", raw[0]))


def _illuminance(raw: bytes, model: str, out: MiFrame) -> None:
    if model not in _LIGHT_NOT_LUX:
        out.readings.append(("illuminance", "lux", int.from_bytes(raw, "little")))


def _leak(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("water_leak", "leak", raw[0] > 0))


def _smoke(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("smoke_co_alarm", "smoke", raw[0] > 0))


def _no_motion_s(raw: bytes, model: str, out: MiFrame) -> None:
    seconds = int.from_bytes(raw, "little")
    out.readings.append(("occupancy", "occupied", seconds <= _MOTION_WITHIN_S))


def _door(raw: bytes, model: str, out: MiFrame) -> None:
    # 0 open, 1 closed, 2 left open (timeout); 3 is a device reset, not a state
    if raw[0] in (0, 1, 2):
        out.readings.append(("contact", "open", raw[0] != 1))


def _motion_light(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("occupancy", "occupied", True))
    if model == "CGPR1":
        out.readings.append(("illuminance", "lux", int.from_bytes(raw, "little")))


def _motion_lux_float(raw: bytes, model: str, out: MiFrame) -> None:
    lux = struct.unpack("<f", raw)[0]
    out.readings.append(("occupancy", "occupied", True))
    if lux == lux and lux >= 0:  # not NaN
        out.readings.append(("illuminance", "lux", round(lux, 1)))


def _temp_float(raw: bytes, model: str, out: MiFrame) -> None:
    value = struct.unpack("<f", raw)[0]
    if value == value:
        out.readings.append(("temperature", "celsius", round(value, 2)))


def _hum_u8(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("humidity", "percent", raw[0]))


def _hum_float(raw: bytes, model: str, out: MiFrame) -> None:
    value = struct.unpack("<f", raw)[0]
    if value == value:
        out.readings.append(("humidity", "percent", round(value, 1)))


def _battery_low(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("battery", "low", raw[0] != 0))


def _button(raw: bytes, model: str, out: MiFrame) -> None:
    button_type, _value, press_type = raw[0], raw[1], raw[2]
    data: dict[str, Any] = {"button": button_type + 1, "action": f"press_type_{press_type}"}
    kind = _PRESS_KINDS.get(press_type)
    if kind is not None:
        data["kind"] = kind
        data["action"] = kind
    out.events.append(data)


# object type -> (exact length, reader)
OBJECTS: dict[int, tuple[int, Reader]] = {
    0x000F: (3, _motion_light),
    0x1001: (3, _button),
    0x1004: (2, _temp),
    0x1006: (2, _hum),
    0x1007: (3, _illuminance),
    0x100A: (1, _battery),
    0x100D: (4, _temp_hum),
    0x1014: (1, _leak),
    0x1015: (1, _smoke),
    0x1017: (4, _no_motion_s),
    0x1019: (1, _door),
    0x4803: (1, _battery),
    0x4818: (2, _no_motion_s),
    0x4A08: (4, _motion_lux_float),
    0x4C01: (4, _temp_float),
    0x4C02: (1, _hum_u8),
    0x4C03: (1, _battery),
    0x4C08: (4, _hum_float),
    0x4E01: (1, _battery_low),
}


def parse_objects(payload: bytes, model: str) -> MiFrame:
    out = MiFrame()
    pos = 0
    end = len(payload)
    while pos + 3 <= end:
        object_type = payload[pos] | (payload[pos + 1] << 8)
        length = payload[pos + 2]
        start = pos + 3
        stop = start + length
        if stop > end:
            out.problems.append(f"MiBeacon object 0x{object_type:04x} is truncated")
            break
        pos = stop
        entry = OBJECTS.get(object_type)
        if entry is None:
            continue
        expected, reader = entry
        if length != expected:
            out.problems.append(f"MiBeacon object 0x{object_type:04x} has {length} bytes, expected {expected}")
            continue
        reader(payload[start:stop], model, out)
    return out
