"""BTHome v2 advertisements of the simulated thermometers, as a BLE-to-MQTT gateway publishes them.

Frames follow https://bthome.io/format/: service data UUID 0xFCD2; first byte the device information
(bits 5-7 version = 2, bit 0 encryption, bit 2 trigger-based), then objects in ascending id order:
0x00 packet id (uint8), 0x01 battery % (uint8), 0x02 temperature (sint16, 0.01 °C), 0x03 humidity
(uint16, 0.01 %), 0x0C voltage (uint16, 0.001 V), all little-endian. This is what the pvvx firmware of
the Xiaomi LYWSD03MMC ("ATC_xxxxxx") sends in BTHome mode.

The MQTT message is Theengs Gateway's (and OpenMQTTGateway's) JSON for a raw advertisement:
``{"id": MAC, "name", "rssi", "servicedatauuid": "0xfcd2", "servicedata": "<hex>"}`` on
``home/<gateway>/BTtoMQTT/<MAC without colons>``.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["BTHOME_UUID16", "bthome_v2_frame", "theengs_message"]

BTHOME_UUID16 = "0xfcd2"
_DEVICE_INFO_V2 = 2 << 5  # version 2, unencrypted, sent at regular intervals


def bthome_v2_frame(*, packet_id: int, celsius: float, humidity_percent: float, battery_percent: int,
                     battery_volts: float | None = None) -> bytes:
    """The service data of one unencrypted BTHome v2 thermometer advertisement."""
    if not -327.68 <= celsius <= 327.67:
        raise ValueError(f"temperature {celsius} does not fit a BTHome sint16 x 0.01")
    frame = bytearray([_DEVICE_INFO_V2])
    frame += struct.pack("<BB", 0x00, packet_id & 0xFF)
    frame += struct.pack("<BB", 0x01, max(0, min(100, int(battery_percent))))
    frame += struct.pack("<Bh", 0x02, round(celsius * 100))
    frame += struct.pack("<BH", 0x03, round(max(0.0, min(100.0, humidity_percent)) * 100))
    if battery_volts is not None:
        frame += struct.pack("<BH", 0x0C, round(battery_volts * 1000))
    return bytes(frame)


def theengs_message(mac: str, name: str, rssi: int, service_data: bytes) -> dict[str, Any]:
    """The JSON a Theengs/OpenMQTTGateway publishes for a raw advertisement."""
    return {"id": mac.upper(), "name": name, "rssi": rssi, "servicedatauuid": BTHOME_UUID16,
            "servicedata": service_data.hex()}
