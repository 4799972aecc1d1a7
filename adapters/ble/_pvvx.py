"""The custom advertising formats of pvvx's and atc1441's thermometer firmware (service data UUID 0x181A).

Layouts from ``pvvx/ATC_MiThermometer`` (``README.md`` "Custom format", ``src/custom_beacon.h`` at 7363cc80):

- pvvx custom, 15 bytes, little-endian: MAC (6, reversed), temperature s16 x0.01 °C, humidity u16 x0.01 %,
  battery u16 mV, battery u8 %, measurement counter u8, flags u8 (bit0 reed switch input, bit1 trigger output,
  bit2 output driven by the trigger, bit3 temperature trigger event, bit4 humidity trigger event);
- atc1441, 13 bytes, big-endian: MAC (6), temperature s16 x0.1 °C, humidity u8 %, battery u8 %, battery
  u16 mV, counter u8;
- the encrypted variants (11 and 8 bytes) we do not decode: pvvx itself recommends BTHome (firmware 6.0 drops
  the custom formats).

The reed switch bit is sent whatever is (or is not) soldered to the pin, so it is returned apart, and the
decoder exposes it only once it means something (``decoders._opening_meaningful``). Pure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from adapters.ble._drops import DropReason, Said

__all__ = ["CustomFrame", "parse_custom"]

PVVX_LENGTH = 15
ATC1441_LENGTH = 13
ENCRYPTED_LENGTHS = {11: "pvvx", 8: "atc1441"}


@dataclass(slots=True)
class CustomFrame:
    format: str  # "pvvx" | "atc1441"
    readings: list[tuple[str, str, Any]] = field(default_factory=list)
    reed_switch: bool | None = None  # pvvx flags bit0, None in the atc1441 format
    notes: list[Said] = field(default_factory=list)


def parse_custom(data: bytes, mac: bytes) -> CustomFrame | tuple[DropReason, str]:
    """A pvvx or atc1441 frame of the device with this MAC (6 bytes, as written), or why it is not one we read."""
    if len(data) == PVVX_LENGTH and data[:6][::-1] == mac:
        temp, hum, millivolts, percent, _counter, flags = struct.unpack("<hHHBBB", data[6:])
        out = CustomFrame("pvvx", [("temperature", "celsius", temp / 100), ("humidity", "percent", hum / 100),
                                   ("battery", "volts", millivolts / 1000), ("battery", "percent", percent)])
        out.reed_switch = bool(flags & 0x01)
        trigger = [name for bit, name in ((0x02, "trigger output on"), (0x04, "output driven by the trigger"),
                                          (0x08, "temperature trigger"), (0x10, "humidity trigger"))
                   if flags & bit]
        if trigger:
            out.notes.append((DropReason.NOT_USED, f"pvvx trigger flags not used: {', '.join(trigger)}", "trigger"))
        return out
    if len(data) == ATC1441_LENGTH and data[:6] == mac:
        temp, hum, percent, millivolts, _counter = struct.unpack(">hBBHB", data[6:])
        return CustomFrame("atc1441", [("temperature", "celsius", temp / 10), ("humidity", "percent", hum),
                                       ("battery", "percent", percent), ("battery", "volts", millivolts / 1000)])
    if len(data) in ENCRYPTED_LENGTHS:
        return (DropReason.UNSUPPORTED, f"encrypted {ENCRYPTED_LENGTHS[len(data)]} custom format (0x181A, "
                                        f"{len(data)} bytes) is not supported: set the thermometer to BTHome")
    return (DropReason.UNSUPPORTED, f"0x181A service data of {len(data)} bytes is not a pvvx/atc1441 format "
                                    "of this device")
