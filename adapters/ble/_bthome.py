"""BTHome v2 (service data UUID 0xFCD2) as a table: object id -> length, scale and where it goes in our model.

Format: https://bthome.io/format/ (home-assistant/bthome.io ``src/format.html``); behaviour at the edges
(truncation, duplicate packet ids, counters) follows the maintained parser ``Bluetooth-Devices/bthome-ble``
so that a device reads the same here as in Home Assistant. Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.ble._drops import DropReason, Said

# kinds of object
NUM = "num"  # a number scaled by ``factor`` into capability.attribute
BOOL = "bool"  # 0/1 into a boolean attribute
LOCK = "lock"  # BTHome lock: 1 = unlocked
PACKET = "packet"  # packet id (deduplication)
BUTTON = "button"  # button event
DIMMER = "dimmer"  # dimmer event (direction, steps)
VOLTS = "volts"  # battery volts for a sensor, mains volts for a meter (decided per packet)
DEVTYPE = "devtype"  # device type id
FW = "fw"  # firmware version
SKIP = "skip"  # known length, no place in our model (mass, rotation, ...): skipped (a note), parsing goes on
OPENING = "opening"  # 0x11, the generic "opening": the decoder decides whether it means anything (pvvx)
VARLEN = "varlen"  # text/raw: a length byte follows the id
COMMAND = "command"  # length byte: low 5 bits = args length, plus one opcode byte


@dataclass(frozen=True, slots=True)
class BthomeObject:
    length: int
    kind: str
    signed: bool = False
    factor: float = 1
    capability: str = ""
    attribute: str = ""
    name: str = ""  # what a skipped object is, for the note


def _n(length: int, signed: bool, factor: float, capability: str, attribute: str) -> BthomeObject:
    return BthomeObject(length, NUM, signed, factor, capability, attribute)


def _b(capability: str, attribute: str) -> BthomeObject:
    return BthomeObject(1, BOOL, capability=capability, attribute=attribute)


def _skip(length: int, name: str) -> BthomeObject:
    return BthomeObject(length, SKIP, name=name)


# Every object id of the v2 format, so that parsing can step over those we do not map. Units already
# match ours except where noted (mbar == hPa).
OBJECTS: dict[int, BthomeObject] = {
    0x00: BthomeObject(1, PACKET),
    0x01: _n(1, False, 1, "battery", "percent"),
    0x02: _n(2, True, 0.01, "temperature", "celsius"),
    0x03: _n(2, False, 0.01, "humidity", "percent"),
    0x04: _n(3, False, 0.01, "pressure", "hpa"),  # mbar = hPa
    0x05: _n(3, False, 0.01, "illuminance", "lux"),
    0x06: _skip(2, "mass kg"), 0x07: _skip(2, "mass lb"),
    0x08: _skip(2, "dew point"),
    0x09: _skip(1, "count"),
    0x0A: _n(3, False, 0.001, "energy_meter", "kwh"),
    0x0B: _n(3, False, 0.01, "power_meter", "watts"),
    0x0C: BthomeObject(2, VOLTS, False, 0.001),
    0x0D: _n(2, False, 1, "air_quality", "pm25_ugm3"),
    0x0E: _n(2, False, 1, "air_quality", "pm10_ugm3"),
    0x0F: _skip(1, "generic boolean"),
    0x10: _skip(1, "power on/off (no read-only on/off in our model)"),
    0x11: BthomeObject(1, OPENING, capability="contact", attribute="open"),  # opening: 1 = open, like ours
    0x12: _n(2, False, 1, "air_quality", "co2_ppm"),
    0x13: _n(2, False, 1, "air_quality", "voc_ugm3"),  # TVOC µg/m³: kept a mass concentration, never ppb
    0x14: _n(2, False, 0.01, "soil_moisture", "percent"),  # moisture (b-parasite: of the soil)
    0x15: _b("battery", "low"),
    0x16: _skip(1, "battery charging"),
    0x17: _b("smoke_co_alarm", "co"),
    0x18: _skip(1, "cold"), 0x19: _skip(1, "connectivity"),
    0x1A: _b("contact", "open"),  # door: 1 = open
    0x1B: _b("contact", "open"),  # garage door: 1 = open
    0x1C: _b("gas", "detected"),  # gas: 1 = detected
    0x1D: _skip(1, "heat"), 0x1E: _skip(1, "light"),
    0x1F: BthomeObject(1, LOCK),
    0x20: _b("water_leak", "leak"),  # moisture: 1 = wet
    0x21: _b("occupancy", "occupied"),  # motion
    0x22: _skip(1, "moving"),
    0x23: _b("occupancy", "occupied"),
    0x24: _skip(1, "plug"),
    0x25: _b("occupancy", "occupied"),  # presence
    0x26: _skip(1, "problem"), 0x27: _skip(1, "running"), 0x28: _skip(1, "safety"),
    0x29: _b("smoke_co_alarm", "smoke"),
    0x2A: _skip(1, "sound"),
    0x2B: _b("tamper", "tampered"),
    0x2C: _b("vibration", "detected"),
    0x2D: _b("contact", "open"),  # window: 1 = open
    0x2E: _n(1, False, 1, "humidity", "percent"),
    0x2F: _n(1, False, 1, "soil_moisture", "percent"),  # moisture, whole percent
    0x3A: BthomeObject(1, BUTTON),
    0x3B: BthomeObject(1, COMMAND),
    0x3C: BthomeObject(2, DIMMER),
    0x3D: _skip(2, "count"), 0x3E: _skip(4, "count"),
    0x3F: _skip(2, "rotation"),
    0x40: _skip(2, "distance mm"), 0x41: _skip(2, "distance m"),
    0x42: _skip(3, "duration"),
    0x43: _n(2, False, 0.001, "power_meter", "amps"),
    0x44: _skip(2, "speed"),
    0x45: _n(2, True, 0.1, "temperature", "celsius"),
    0x46: _skip(1, "UV index"),
    0x47: _skip(2, "volume"), 0x48: _skip(2, "volume"), 0x49: _skip(2, "volume flow rate"),
    0x4A: BthomeObject(2, VOLTS, False, 0.1),
    0x4B: _skip(3, "gas m³ (a meter's volume; our gas capability is a detector)"),
    0x4C: _skip(4, "gas m³ (a meter's volume; our gas capability is a detector)"),
    0x4D: _n(4, False, 0.001, "energy_meter", "kwh"),
    0x4E: _skip(4, "volume"), 0x4F: _skip(4, "water"),
    0x50: _skip(4, "timestamp"),
    0x51: _skip(2, "acceleration"), 0x52: _skip(2, "gyroscope"),
    0x53: BthomeObject(1, VARLEN, name="text"), 0x54: BthomeObject(1, VARLEN, name="raw"),
    0x55: _skip(4, "volume storage"),
    0x56: _skip(2, "conductivity"),
    0x57: _n(1, True, 1, "temperature", "celsius"),
    0x58: _n(1, True, 0.35, "temperature", "celsius"),
    0x59: _skip(1, "count"), 0x5A: _skip(2, "count"), 0x5B: _skip(4, "count"),
    0x5C: _n(4, True, 0.01, "power_meter", "watts"),
    0x5D: _n(2, True, 0.001, "power_meter", "amps"),
    0x5E: _skip(2, "direction"), 0x5F: _skip(2, "precipitation"),
    0x60: _skip(1, "channel"),
    0x61: _skip(2, "rotational speed"), 0x62: _skip(4, "speed"), 0x63: _skip(4, "acceleration"),
    0x64: _skip(1, "light level (0 dark, 1 twilight, 2 bright: neither lux nor percent)"),
    0x65: _skip(1, "settings revision"),
    0xF0: BthomeObject(2, DEVTYPE),
    0xF1: BthomeObject(4, FW),
    0xF2: BthomeObject(3, FW),
}

# 0x3A button event values -> (our kind, the BTHome name kept as `action` when we have no kind for it)
BUTTON_EVENTS: dict[int, tuple[str | None, str]] = {
    0x01: ("single", "press"),
    0x02: ("double", "double_press"),
    0x03: ("triple", "triple_press"),
    0x04: ("long", "long_press"),
    0x05: (None, "long_double_press"),
    0x06: (None, "long_triple_press"),
    0x80: ("hold", "hold_press"),
    0x81: ("release", "hold_release"),
    # What Shelly's BLU buttons send for a hold (BLU Button1, RC Button 4, Wall Switch 4, BLU H&T's button),
    # as Shelly's own BLE scripts and bthome-ble read it.
    0xFE: ("hold", "hold_press"),
}
DIMMER_EVENTS = {0x01: "rotate_left", 0x02: "rotate_right"}

# Names by which popular BTHome devices introduce themselves (local name prefix) -> (manufacturer, model).
NAME_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("SBHT", "Shelly", "BLU H&T"),
    ("SBBT", "Shelly", "BLU Button"),
    ("SBDW", "Shelly", "BLU Door/Window"),
    ("SBMO", "Shelly", "BLU Motion"),
    ("SBRC", "Shelly", "BLU RC Button 4"),
    ("ATC_", "pvvx/ATC", "Thermometer (custom firmware)"),
    ("prst", "b-parasite", "Plant sensor"),  # as bthome-ble names it
)


@dataclass(slots=True)
class BthomePacket:
    """What one BTHome payload says, before it is turned into updates."""

    readings: list[tuple[str, str, Any]] = field(default_factory=list)  # capability, attribute, value
    events: list[dict[str, Any]] = field(default_factory=list)  # button event data
    packet_id: int | None = None
    device_type_id: int | None = None
    firmware: str | None = None
    # 0x11 "opening" values, in order: kept apart, the decoder decides whether they mean anything
    openings: list[bool] = field(default_factory=list)
    # Whether the payload is an event rather than a measurement: besides the packet id, counts and
    # openings, nothing (pvvx's reed-switch event beacon: 0x11 + 0x3E count, sent only when a switch is set up)
    measurement: bool = False
    problems: list[Said] = field(default_factory=list)
    notes: list[Said] = field(default_factory=list)


def _decimals(factor: float) -> int:
    text = f"{factor:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


# Objects that an event packet may carry besides its openings (see BthomePacket.measurement).
_EVENT_COMPANIONS = {0x00, 0x09, 0x3D, 0x3E, 0x11, 0xF0, 0xF1, 0xF2}


def parse_objects(payload: bytes) -> BthomePacket:
    """Walk the objects of a (decrypted) payload. Stops at the first unknown id, as the format says."""
    out = BthomePacket()
    volts: list[float] = []
    has_meter = False
    buttons = 0
    skipped: list[str] = []
    pos = 0
    end = len(payload)
    while pos < end:
        object_id = payload[pos]
        spec = OBJECTS.get(object_id)
        if spec is None:
            out.problems.append((DropReason.UNKNOWN_OBJECT, f"unknown BTHome object id 0x{object_id:02x} at byte "
                                                            f"{pos}; the rest is ignored", ""))
            break
        start = pos + 1
        if spec.kind in (VARLEN, COMMAND):
            if start >= end:
                out.problems.append((DropReason.TOO_SHORT, f"BTHome object 0x{object_id:02x} is truncated", ""))
                break
            length = payload[start] if spec.kind == VARLEN else 1 + (payload[start] & 0x1F)
            start += 1
        else:
            length = spec.length
        stop = start + length
        if stop > end:
            out.problems.append((DropReason.TOO_SHORT, f"BTHome object 0x{object_id:02x} is truncated "
                                                       f"({end - start} of {length} bytes)", ""))
            break
        raw = payload[start:stop]
        pos = stop
        kind = spec.kind
        if object_id not in _EVENT_COMPANIONS and kind not in (BUTTON, DIMMER, COMMAND):
            out.measurement = True
        if kind in (SKIP, VARLEN, COMMAND):
            skipped.append(f"0x{object_id:02x} {spec.name or 'command'}")
            continue
        value = int.from_bytes(raw, "little", signed=spec.signed)
        if kind == NUM:
            scaled: float | int = value if spec.factor == 1 else round(value * spec.factor, _decimals(spec.factor))
            out.readings.append((spec.capability, spec.attribute, scaled))
            has_meter = has_meter or spec.capability in ("power_meter", "energy_meter")
        elif kind == BOOL:
            out.readings.append((spec.capability, spec.attribute, value != 0))
        elif kind == OPENING:
            out.openings.append(value != 0)
        elif kind == LOCK:
            out.readings.append(("lock", "state", "unlocked" if value else "locked"))
        elif kind == VOLTS:
            volts.append(round(value * spec.factor, _decimals(spec.factor)))
        elif kind == PACKET:
            out.packet_id = value
        elif kind == BUTTON:
            buttons += 1
            event = BUTTON_EVENTS.get(raw[0])
            if event is None and raw[0] != 0x00:  # 0x00: this button did nothing
                out.problems.append((DropReason.UNKNOWN_OBJECT,
                                     f"unknown BTHome button event 0x{raw[0]:02x} on button {buttons}", ""))
            if event is not None:
                our_kind, action = event
                data: dict[str, Any] = {"button": buttons, "action": action}
                if our_kind is not None:
                    data["kind"] = our_kind
                out.events.append(data)
        elif kind == DIMMER:
            action = DIMMER_EVENTS.get(raw[0])
            if action is not None:
                out.events.append({"button": 0, "action": action, "steps": raw[1]})
            elif raw[0] != 0x00:
                out.problems.append((DropReason.UNKNOWN_OBJECT, f"unknown BTHome dimmer event 0x{raw[0]:02x}", ""))
        elif kind == DEVTYPE:
            out.device_type_id = value
        elif kind == FW:
            out.firmware = ".".join(str(b) for b in reversed(raw))
    # A voltage on a battery sensor is its battery; on a plug or meter (power, energy in the same
    # packet) it is the mains voltage.
    for volt in volts:
        out.readings.append(("power_meter", "volts", volt) if has_meter else ("battery", "volts", volt))
    if skipped:
        out.notes.append((DropReason.NOT_USED, "BTHome objects not used (no capability for them): "
                                               + ", ".join(skipped), " ".join(s.split()[0] for s in skipped)))
    return out


def name_model(name: str | None) -> tuple[str | None, str]:
    if name:
        for prefix, manufacturer, model in NAME_PREFIXES:
            if name.startswith(prefix):
                return manufacturer, model
    return None, "BTHome sensor"
