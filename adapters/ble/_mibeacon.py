"""Xiaomi MiBeacon (service data UUID 0xFE95) as tables: product ids, and every object type of the reference parser.

Frame layout and object meanings follow ``Bluetooth-Devices/xiaomi-ble`` (``src/xiaomi_ble/parser.py`` and
``devices.py`` at 509f516e, which follow Xiaomi's object definitions). Every object id of that parser's table
is here: mapped onto our capabilities, or listed in :data:`NOT_USED` with what it is (a note says so), so
that an id in neither table is one nobody knows (a note with its id). Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.ble._drops import DropReason, Said

# product id -> (model, name, manufacturer): xiaomi-ble's DEVICE_TYPES, complete. A frame from a product id
# not listed still decodes (objects are self-describing); the device is then called "Xiaomi 0x<id>".
PRODUCTS: dict[int, tuple[str, str, str]] = {
    0x0083: ("YM-K1501", "Smart Kettle", "Xiaomi"),
    0x0098: ("HHCCJCY01", "Plant Sensor", "Xiaomi"),
    0x00DB: ("MMC-T201-1", "Baby Thermometer", "Xiaomi"),
    0x0113: ("YM-K1501EU", "Smart Kettle", "Xiaomi"),
    0x0153: ("YLYK01YL", "Remote Control", "Xiaomi"),
    0x015D: ("HHCCPOT002", "Smart Flower Pot", "Xiaomi"),
    0x01AA: ("LYWSDCGQ", "Temperature/Humidity Sensor", "Xiaomi"),
    0x02DF: ("JQJCY01YM", "Formaldehyde Sensor", "Xiaomi"),
    0x0347: ("CGG1", "Temperature/Humidity Sensor", "Xiaomi"),
    0x0380: ("DSL-C08", "Door Lock", "Xiaomi"),
    0x0387: ("MHO-C401", "Temperature/Humidity Sensor", "Xiaomi"),
    0x0391: ("MMC-W505", "Body Thermometer", "Xiaomi"),
    0x03B6: ("YLKG07YL/YLKG08YL", "Dimmer Switch", "Xiaomi"),
    0x03BC: ("GCLS002", "Grow Care Garden", "Xiaomi"),
    0x03BF: ("YLYB01YL-BHFRC", "Bathroom Heater Remote", "Xiaomi"),
    0x03D6: ("CGH1", "Door/Window Sensor", "Xiaomi"),
    0x03DD: ("MUE4094RT", "Nightlight", "Xiaomi"),
    0x040A: ("WX08ZM", "Mosquito Repellent", "Xiaomi"),
    0x045B: ("LYWSD02", "Temperature/Humidity Sensor", "Xiaomi"),
    0x045C: ("V-SK152", "Smart Kettle", "Xiaomi"),
    0x0489: ("M1S-T500", "Smart Toothbrush", "Xiaomi"),
    0x04E1: ("XMMF01JQD", "Magic Cube", "Xiaomi"),
    0x04E6: ("YLYK01YL-VENFAN", "Ventilator Fan Remote Control", "Xiaomi"),
    0x04E9: ("MJZNMSQ01YD", "Door Lock", "Xiaomi"),
    0x055B: ("LYWSD03MMC", "Temperature/Humidity Sensor", "Xiaomi"),
    0x0576: ("CGD1", "3-in-1 Alarm Clock", "Xiaomi"),
    0x0599: ("MJZNMS03LM", "Door Lock", "Xiaomi"),
    0x066F: ("CGDK2", "Temperature/Humidity Sensor", "Xiaomi"),
    0x068E: ("YLYK01YL-FANCL", "Fan Remote Control", "Xiaomi"),
    0x069E: ("ZNMS16LM", "Door Lock", "Xiaomi"),
    0x069F: ("ZNMS17LM", "Door Lock", "Xiaomi"),
    0x06D3: ("MHO-C303", "Alarm Clock", "Xiaomi"),
    0x0784: ("XMZNMS04LM", "Door Lock", "Xiaomi"),
    0x07BF: ("YLAI003", "Wireless Switch", "Xiaomi"),
    0x07F6: ("MJYD02YL", "Nightlight", "Xiaomi"),
    0x0806: ("T700", "Smart Toothbrush", "Xiaomi"),
    0x0863: ("SJWS01LM", "Flood Detector", "Xiaomi"),
    0x098B: ("MCCGQ02HL", "Door/Window Sensor", "Xiaomi"),
    0x098C: ("XMZNMST02YD", "Door Lock", "Xiaomi"),
    0x0997: ("JTYJGD03MI", "Smoke Detector", "Xiaomi"),
    0x0A83: ("CGPR1", "Motion/Light Sensor", "Xiaomi"),
    0x0A8D: ("RTCGQ02LM", "Motion Sensor", "Xiaomi"),
    0x0B48: ("CGG1-ENCRYPTED", "Temperature/Humidity Sensor", "Xiaomi"),
    0x0C3C: ("CGC1", "Alarm Clock", "Xiaomi"),
    0x0DE7: ("SU001-T", "Odor Eliminator", "Xiaomi"),
    0x0DFD: ("K9B-3BTN", "Switch (triple button)", "Xiaomi"),
    0x0E39: ("XMZNMS08LM", "Door Lock", "Xiaomi"),
    0x11C2: ("Lockin-SV40", "Door Lock", "Xiaomi"),
    0x1203: ("XMWSDJ04MMC", "Thermometer", "Xiaomi"),
    0x1568: ("K9B-1BTN", "Switch (single button)", "Xiaomi"),
    0x1569: ("K9B-2BTN", "Switch (double button)", "Xiaomi"),
    0x16E4: ("LYWSD02MMC", "Temperature/Humidity Sensor", "Xiaomi"),
    0x1790: ("T700", "Smart Toothbrush", "Xiaomi"),
    0x1889: ("MS1BB(MI)", "Door/Window Sensor", "Xiaomi"),
    0x1949: ("XMWXKG01YL", "Switch (double button)", "Xiaomi"),
    0x1C10: ("K9BB-1BTN", "Switch (single button)", "Xiaomi"),
    0x2387: ("XMWXKG01LM", "Button", "Xiaomi"),
    0x2542: ("LYWSD02MMC", "Temperature/Humidity Sensor", "Xiaomi"),
    0x2832: ("MJWSD05MMC", "Temperature/Humidity Sensor", "Xiaomi"),
    0x2AEB: ("HS1BB(MI)", "Motion Sensor", "Xiaomi"),
    0x30D9: ("MJTZC01YM", "Body Composition Scale", "Xiaomi"),
    0x3531: ("XMPIRO2SXS", "Motion Sensor", "Xiaomi"),
    0x38BB: ("PTX_YK1_QMIMB", "Wireless Switch", "Xiaomi"),
    0x3A61: ("KS1", "Switch (quadruple button)", "Xiaomi"),
    0x3BD5: ("MJTZC01YM", "Body Composition Scale", "Xiaomi"),
    0x3E17: ("KS1BP", "Switch (quadruple button)", "Xiaomi"),
    0x3F0F: ("RS1BB(MI)", "Flood and Rain Sensor", "Xiaomi"),
    0x3F4C: ("PS1BB", "Seat Pressure Sensor", "Linptech"),
    0x45C9: ("MJTZC02YM", "Smart Scale S200", "Xiaomi"),
    0x4683: ("XMOSB01XS", "Occupancy Sensor", "Xiaomi"),
    0x48CF: ("MJTZC01YM", "Body Composition Scale", "Xiaomi"),
    0x4B05: ("MJTZC03YM", "Body Composition Scale", "Xiaomi"),
    0x4C04: ("MJTZC02YM", "Smart Scale S200", "Xiaomi"),
    0x4C47: ("MJWSD05MMC", "Temperature/Humidity Sensor", "Xiaomi"),
    0x4C60: ("XMPIRO2GSXS", "Motion Sensor", "Xiaomi"),
    0x4DCB: ("MJTZC02YM", "Smart Scale S200", "Xiaomi"),
    0x4F59: ("CGDK3", "Temperature/Humidity Sensor", "Xiaomi"),
    0x50FB: ("ES3", "Human Presence Sensor", "Linptech"),
    0x520B: ("KS2BB", "Temperature/Humidity Sensor with Button", "Linptech"),
    0x55B5: ("MJWSD06MMC", "Temperature/Humidity Sensor", "Xiaomi"),
    0x5968: ("XMWS01XS", "Switch (double button)", "Xiaomi"),
    0x59FA: ("M2457B1", "Smart Band 10", "Xiaomi"),
    0x59FB: ("M2456B1", "Smart Band 10 NFC", "Xiaomi"),
    0x59FC: ("M2456B1", "Smart Band 10 Ceramic Edition", "Xiaomi"),
    0x5BEA: ("MJWSD06MMC", "Temperature/Humidity Sensor", "Xiaomi"),
    0x5DB1: ("MBS17", "Temperature/Humidity Sensor", "Xiaomi"),
    0x6188: ("M2456B1", "Smart Band 10 Glimmer Edition", "Xiaomi"),
    0x6375: ("SJWS02LM", "Water Leak Sensor 2", "Xiaomi"),
    0x6A0F: ("ES5BB", "Human Presence Sensor", "Linptech"),
    0x78D1: ("MC-COMM", "Door/Window Sensor", "Xiaomi"),
    0x78DB: ("ESM787", "Temperature/Humidity Sensor", "Yanmi"),
}

# Devices that only advertise on events (xiaomi-ble SLEEPY_DEVICE_MODELS): a motion sensor is silent while
# nothing moves, so silence must not make it "offline" after the usual interval.
SLEEPY_MODELS = frozenset({
    "CGH1", "ES3", "ES5BB", "HS1BB(MI)", "JTYJGD03MI", "M2456B1", "M2457B1", "MC-COMM", "MCCGQ02HL", "MJTZC01YM",
    "MJTZC03YM", "MMC-W505", "MS1BB(MI)", "PS1BB", "RS1BB(MI)", "RTCGQ02LM", "SJWS02LM", "XMOSB01XS",
    "XMPIRO2GSXS", "XMPIRO2SXS",
})

# Models whose 0x1007 object is "light on/off" (100 = light), not lux.
_LIGHT_NOT_LUX = {"MJYD02YL", "MCCGQ02HL"}
_WHOLE_PERCENT = {"LYWSD03MMC", "MHO-C401"}
# 0x1001 press types -> our kinds (xiaomi-ble obj1001: press, double_press, long_press; 5/6 press/long)
_PRESS_KINDS = {0: "single", 1: "double", 2: "long", 5: "single", 6: "long"}
# The K9B wall switches number their press types differently (xiaomi-ble btn_switch_press_type).
_K9B_PRESS_KINDS = {0: "single", 1: "long", 2: "double"}
# K9B button_type -> the buttons it names (xiaomi-ble: left, middle, right and their combinations)
_K9B_BUTTONS: dict[str, dict[int, tuple[int, ...]]] = {
    "K9B-1BTN": {0: (1,)},
    "K9B-2BTN": {0: (1,), 1: (2,), 2: (1, 2)},
    "K9B-3BTN": {0: (1,), 1: (2,), 2: (3,), 3: (1, 2), 4: (2, 3), 5: (1, 3), 6: (1, 2, 3)},
}
_PRESS_COUNT_KINDS = {1: "single", 2: "double", 3: "triple"}
# Anything up to this many seconds without motion counts as motion (what the Mi Home app shows, and
# xiaomi-ble): 0x1017/0x4818 are sent at 0 (motion) and 60, 120, 300, ... s after the last motion.
_MOTION_WITHIN_S = 30
# 0x000B lock action (low nibble) -> our lock state (xiaomi-ble locks.py BLE_LOCK_ACTION: True = unlocked)
_LOCK_ACTIONS: dict[int, tuple[str, str]] = {
    0b0000: ("unlocked", "lock"), 0b0001: ("locked", "lock"), 0b0010: ("locked", "antilock"),
    0b0011: ("unlocked", "antilock"), 0b0100: ("unlocked", "lock"), 0b0101: ("locked", "lock"),
    0b0110: ("locked", "childlock"), 0b0111: ("unlocked", "childlock"), 0b1000: ("locked", "lock"),
    0b1111: ("unknown", "lock"),  # "abnormal"
}


@dataclass(slots=True)
class MiFrame:
    readings: list[tuple[str, str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    # the frame is malformed here (a truncated object, one of the wrong length)
    problems: list[Said] = field(default_factory=list)
    # understood and not used, or an object id nobody knows
    notes: list[Said] = field(default_factory=list)
    # Some object did not parse as a known object of its length: legacy (v2/v3) encryption has no tag, so
    # this is how a wrong key shows (xiaomi-ble does the same).
    malformed: bool = False

    def not_used(self, object_type: int, what: str) -> None:
        self.notes.append((DropReason.NOT_USED, f"MiBeacon object 0x{object_type:04x} ({what}) not used",
                           f"0x{object_type:04x}"))


Reader = Callable[[bytes, str, MiFrame], None]


def _float(raw: bytes) -> float | None:
    value = struct.unpack("<f", raw)[0]
    return value if math.isfinite(value) else None


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
    value = int.from_bytes(raw, "little")
    if model in _LIGHT_NOT_LUX:
        out.not_used(0x1007, f"light {'on' if value == 100 else 'off'}: no capability for a light/dark flag")
    else:
        out.readings.append(("illuminance", "lux", value))


def _leak(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("water_leak", "leak", raw[0] > 0))


def _smoke(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("smoke_co_alarm", "smoke", raw[0] > 0))


def _no_motion_s(raw: bytes, model: str, out: MiFrame) -> None:
    seconds = int.from_bytes(raw, "little")
    out.readings.append(("occupancy", "occupied", seconds <= _MOTION_WITHIN_S))


def _no_motion_timeout(raw: bytes, model: str, out: MiFrame) -> None:
    # 0x101B "no movement timeout": sent once the sensor's own no-motion timeout has passed (RTCGQ02LM: its
    # value is that timeout in seconds). Whatever the value, it means "no motion" (xiaomi-ble obj101b).
    out.readings.append(("occupancy", "occupied", False))


def _door(raw: bytes, model: str, out: MiFrame) -> None:
    # 0 open, 1 closed, 2 left open (timeout); 3 is a device reset, not a state
    if raw[0] in (0, 1, 2):
        out.readings.append(("contact", "open", raw[0] != 1))
    else:
        out.not_used(0x1019, f"door state {raw[0]} (3 = device reset)")


def _lock_door(raw: bytes, model: str, out: MiFrame) -> None:
    # 0x0007 on locks: 0 opened, 1 closed, 2 left open, 3 knocked (closed), 4 pried (open), 5 stuck (closed)
    if raw[0] <= 5:
        out.readings.append(("contact", "open", raw[0] in (0, 2, 4)))
    else:
        out.not_used(0x0007, f"door event {raw[0]}")


def _motion_light(raw: bytes, model: str, out: MiFrame) -> None:
    value = int.from_bytes(raw, "little")
    out.readings.append(("occupancy", "occupied", True))
    if model == "CGPR1":
        out.readings.append(("illuminance", "lux", value))
    elif model in ("MJYD02YL", "RTCGQ02LM"):
        # MJYD02YL: 1 dark, 100 light; RTCGQ02LM: 0 dark, 256 light (xiaomi-ble obj000f)
        out.not_used(0x000F, f"light {'on' if value >= 100 else 'off'}: no capability for a light/dark flag")


def _motion_lux_float(raw: bytes, model: str, out: MiFrame) -> None:
    lux = _float(raw)
    out.readings.append(("occupancy", "occupied", True))
    if lux is not None and lux >= 0:
        out.readings.append(("illuminance", "lux", round(lux, 1)))


def _lux_float(raw: bytes, model: str, out: MiFrame) -> None:
    lux = _float(raw)
    if lux is not None and lux >= 0:
        out.readings.append(("illuminance", "lux", round(lux, 1)))


def _temp_float(raw: bytes, model: str, out: MiFrame) -> None:
    value = _float(raw)
    if value is not None:
        out.readings.append(("temperature", "celsius", round(value, 2)))


def _temp_float_1(raw: bytes, model: str, out: MiFrame) -> None:
    value = _float(raw)
    if value is not None:
        out.readings.append(("temperature", "celsius", round(value, 1)))


def _body_temp(raw: bytes, model: str, out: MiFrame) -> None:
    temp = struct.unpack("<h", raw)[0]
    if temp:  # 0: no measurement
        out.readings.append(("temperature", "celsius", temp / 100))


def _body_temp_battery(raw: bytes, model: str, out: MiFrame) -> None:
    # MMC-T201-1: two raw readings make the body temperature (xiaomi-ble obj2000's fit to the app's values)
    temp1, temp2, battery = struct.unpack("<hhB", raw)
    body = 3.71934e-11 * math.exp(0.69314 * temp1 / 100) - 1.02801e-8 * math.exp(0.53871 * temp2 / 100) + 36.413
    if math.isfinite(body):
        out.readings.append(("temperature", "celsius", round(body, 2)))
    out.readings.append(("battery", "percent", battery))


def _power_temp(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("temperature", "celsius", raw[1]))  # kettles: whole degrees
    out.not_used(0x1005, f"power {'on' if raw[0] else 'off'}: no read-only on/off in our model")


def _hum_u8(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("humidity", "percent", raw[0]))


def _hum_float(raw: bytes, model: str, out: MiFrame) -> None:
    value = _float(raw)
    if value is not None:
        out.readings.append(("humidity", "percent", round(value, 1)))


def _soil_moisture(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("soil_moisture", "percent", raw[0]))  # whole percent (xiaomi-ble obj1008)


def _formaldehyde(raw: bytes, model: str, out: MiFrame) -> None:
    # u16 in steps of 0.01 mg/m³ (xiaomi-ble obj1010: raw / 100 mg/m³); ours is µg/m³: one step is 10 µg/m³,
    # kept an integer (raw / 100 * 1000 would be a float with a rounding tail).
    out.readings.append(("air_quality", "hcho_ugm3", struct.unpack("<H", raw)[0] * 10))


def _consumable(raw: bytes, model: str, out: MiFrame) -> None:
    # What is left of the device's consumable, % (xiaomi-ble obj1013): a mosquito repellent's tablet (WX08ZM),
    # an odour eliminator's cartridge. Our model's consumable is the filter's life left.
    out.readings.append(("filter", "life_percent", raw[0]))


def _battery_low(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("battery", "low", raw[0] != 0))


def _opening_state(raw: bytes, model: str, out: MiFrame) -> None:
    # 0x4804 state / 0x4A12 event: 1 open, 2 closed; closing also ends a "forcibly removed" (xiaomi-ble)
    if raw[0] == 1:
        out.readings.append(("contact", "open", True))
    elif raw[0] == 2:
        out.readings += [("contact", "open", False), ("tamper", "tampered", False)]


def _door_0_open(raw: bytes, model: str, out: MiFrame) -> None:
    # 0x480C: 0 open, 1 closed
    if raw[0] in (0, 1):
        out.readings.append(("contact", "open", raw[0] == 0))


def _forcibly_removed(raw: bytes, model: str, out: MiFrame) -> None:
    if raw[0] == 1:
        out.readings += [("contact", "open", True), ("tamper", "tampered", True)]


def _door_left_open(raw: bytes, model: str, out: MiFrame) -> None:
    if raw[0] == 1:
        out.readings.append(("contact", "open", True))


def _occupied_nonzero(raw: bytes, model: str, out: MiFrame) -> None:
    out.readings.append(("occupancy", "occupied", raw[0] > 0))


def _occupancy_status(raw: bytes, model: str, out: MiFrame) -> None:
    # XMOSB01XS: 0 clear, 1 detected, 2 clear; others: 0 clear, anything else detected
    out.readings.append(("occupancy", "occupied", raw[0] == 1 if model == "XMOSB01XS" else raw[0] > 0))


def _water_event(raw: bytes, model: str, out: MiFrame) -> None:
    # SJWS02LM: 0/1 bottom submerged / dry again, 2/3 top splash / dry again
    if raw[0] in (0, 1):
        out.readings.append(("water_leak", "leak", raw[0] == 0))
    else:
        out.not_used(0x4A68, f"top splash event {raw[0]}: the top sensor has no channel of its own here")


def _lock(raw: bytes, model: str, out: MiFrame) -> None:
    action = raw[0] & 0x0F
    entry = _LOCK_ACTIONS.get(action)
    if entry is None:
        out.not_used(0x000B, f"lock action {action}")
        return
    state, kind = entry
    if model == "ZNMS17LM" and kind != "lock":
        out.not_used(0x000B, f"{kind} {state}: not the lock's own state")
        return
    out.readings.append(("lock", "state", state))


def _lock_attribute(raw: bytes, model: str, out: MiFrame) -> None:
    if model == "DSL-C08":
        out.readings.append(("lock", "state", "locked" if raw[0] & 0x01 else "unlocked"))
    else:
        out.not_used(0x100E, "lock attribute")


def _press(kind: str, button: int = 1) -> dict[str, Any]:
    return {"button": button, "action": kind, "kind": kind}


def _button(raw: bytes, model: str, out: MiFrame) -> None:
    button_type, value, press_type = raw[0], raw[1], raw[2]
    if model in _K9B_BUTTONS:
        kind = _K9B_PRESS_KINDS.get(press_type)
        buttons = _K9B_BUTTONS[model].get(button_type, ())
        if kind is None or not buttons:
            out.not_used(0x1001, f"switch button {button_type} press type {press_type}")
        out.events += [_press(kind, b) for b in buttons] if kind is not None else []
        return
    if model == "YLKG07YL/YLKG08YL" and press_type in (3, 4):
        if press_type == 3 and button_type == 0:
            event: dict[str, Any] = {"button": 1, "action": "press", "presses": value}
            if value in _PRESS_COUNT_KINDS:
                event["kind"] = _PRESS_COUNT_KINDS[value]
        elif press_type == 3:
            event = {"button": 1, "action": "long_press", "kind": "long", "duration_s": value}
        elif button_type == 0:  # turned
            event = ({"button": 0, "action": "rotate_right", "steps": value} if value <= 127
                     else {"button": 0, "action": "rotate_left", "steps": 256 - value})
        else:  # turned while pressed
            event = ({"button": 0, "action": "rotate_right_pressed", "steps": button_type} if button_type <= 127
                     else {"button": 0, "action": "rotate_left_pressed", "steps": 256 - button_type})
        out.events.append(event)
        return
    if model == "XMMF01JQD":
        if button_type in (0, 1):
            out.events.append({"button": 0, "action": "rotate_right" if button_type == 0 else "rotate_left"})
        return
    data: dict[str, Any] = {"button": button_type + 1, "action": f"press_type_{press_type}"}
    kind = _PRESS_KINDS.get(press_type)
    if kind is not None:
        data["kind"] = kind
        data["action"] = kind
    out.events.append(data)


def _press_object(kind: str) -> Reader:
    """0x4A0C/0x4A0D/0x4A0E, 0x4E0C/0x4E0D/0x4E0E, 0x560C/0x560D/0x560E: one press kind each; which button the
    value says, per model (xiaomi-ble)."""

    def read(raw: bytes, model: str, out: MiFrame) -> None:
        value = raw[0] if raw else None
        if model == "XMWS01XS":  # 0 left, 1 right
            if value in (0, 1):
                out.events.append(_press(kind, value + 1))
        elif model == "XMWXKG01YL":  # 1 left, 2 right, 3 both
            out.events += [_press(kind, b) for b in {1: (1,), 2: (2,), 3: (1, 2)}.get(value or 0, ())]
        elif model == "K9BB-1BTN":  # a code per kind, on 0x4E0C only
            k9bb = {1: "single", 8: "long", 15: "double"}.get(value or 0)
            if k9bb is not None:
                out.events.append(_press(k9bb))
        elif model in ("KS1", "KS1BP"):  # 1..4: the four buttons
            if value in (1, 2, 3, 4):
                out.events.append(_press(kind, value))
        else:
            out.events.append(_press(kind))

    return read


def _single_press_if_one(raw: bytes, model: str, out: MiFrame) -> None:
    if raw[0] == 1:  # 0x4A13 (MS1BB(MI) button)
        out.events.append(_press("single"))


# object type -> (exact length, or None for "any, the reader checks", reader). Every mapped object of
# xiaomi-ble's table.
OBJECTS: dict[int, tuple[int | None, Reader]] = {
    0x0007: (None, _lock_door),  # 1 byte, or 5 on some locks (Lockin SV40, XMZNMS08LM): the first counts
    0x000A: (2, _body_temp),
    0x000B: (9, _lock),
    0x000F: (3, _motion_light),
    0x1001: (3, _button),
    0x1004: (2, _temp),
    0x1005: (2, _power_temp),
    0x1006: (2, _hum),
    0x1007: (3, _illuminance),
    0x1008: (1, _soil_moisture),
    0x100A: (1, _battery),
    0x100D: (4, _temp_hum),
    0x100E: (1, _lock_attribute),
    0x1010: (2, _formaldehyde),
    0x1013: (1, _consumable),
    0x1014: (1, _leak),
    0x1015: (1, _smoke),
    0x1017: (4, _no_motion_s),
    0x1019: (1, _door),
    0x101B: (None, _no_motion_timeout),
    0x2000: (5, _body_temp_battery),
    0x4801: (4, _temp_float_1),
    0x4802: (1, _hum_u8),
    0x4803: (1, _battery),
    0x4804: (1, _opening_state),
    0x4805: (4, _lux_float),
    0x4806: (1, _leak),
    0x4808: (4, _hum_float),
    0x480C: (1, _door_0_open),
    0x4818: (2, _no_motion_s),
    0x483C: (1, _occupied_nonzero),
    0x484E: (1, _occupancy_status),
    0x4A01: (1, _battery_low),
    0x4A08: (4, _motion_lux_float),
    0x4A0C: (None, _press_object("single")),
    0x4A0D: (None, _press_object("double")),
    0x4A0E: (None, _press_object("long")),
    0x4A0F: (1, _forcibly_removed),
    0x4A12: (1, _opening_state),
    0x4A13: (1, _single_press_if_one),
    0x4A1A: (1, _door_left_open),
    0x4A68: (1, _water_event),
    0x4C01: (4, _temp_float),
    0x4C02: (1, _hum_u8),
    0x4C03: (1, _battery),
    0x4C08: (4, _hum_float),
    0x4E01: (1, _battery_low),
    0x4E0C: (None, _press_object("single")),
    0x4E0D: (None, _press_object("double")),
    0x4E0E: (None, _press_object("long")),
    0x5003: (1, _battery),
    0x560C: (None, _press_object("single")),
    0x560D: (None, _press_object("double")),
    0x560E: (None, _press_object("long")),
}

# The rest of xiaomi-ble's table: understood, and no capability of ours takes it (a note says which).
NOT_USED: dict[int, str] = {
    0x0003: "motion event without a clear (MUE4094RT): occupancy would never become false",
    0x0006: "fingerprint",
    0x0008: "armed away",
    0x0010: "toothbrush",
    0x1009: "soil conductivity",
    0x1012: "power on/off: no read-only on/off in our model",
    0x1018: "light on/off: no capability for a light/dark flag",
    0x3003: "toothbrushing",
    0x483D: "pressure present duration",
    0x483E: "pressure absent duration",
    0x4851: "occupied-duration setting",
    0x4852: "unoccupied-duration setting",
    0x487B: "top splash sensor: the second water sensor has no channel of its own here",
    0x4C14: "mode",
    0x4E16: "scale weight",
    0x4E1C: "device reset",
    0x5413: "close-range occupancy",
    0x5414: "mode",
    0x5422: "charging state",
    0x5810: "sleep state",
    0x6461: "wearing state",
    0x6E16: "body composition",
}

# Objects that may come with no value at all (the press objects: xiaomi-ble OBJECTS_DEVICE_TYPE).
_MAY_BE_EMPTY = {0x4A0C, 0x4A0D, 0x4A0E, 0x4E0C, 0x4E0D, 0x4E0E, 0x560C, 0x560D, 0x560E}


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
            out.malformed = True
            out.problems.append((DropReason.TOO_SHORT, f"MiBeacon object 0x{object_type:04x} is truncated "
                                                       f"({end - start} of {length} bytes)", ""))
            break
        pos = stop
        raw = payload[start:stop]
        entry = OBJECTS.get(object_type)
        if entry is None:
            what = NOT_USED.get(object_type)
            if what is not None:
                out.not_used(object_type, what)
            else:
                out.malformed = True
                out.notes.append((DropReason.UNKNOWN_OBJECT, f"unknown MiBeacon object 0x{object_type:04x} "
                                                             f"({length} bytes: {raw.hex()}) ignored",
                                  f"0x{object_type:04x}"))
            continue
        expected, reader = entry
        if length == 0 and object_type not in _MAY_BE_EMPTY:
            out.notes.append((DropReason.NO_DATA, f"MiBeacon object 0x{object_type:04x} is empty",
                              f"0x{object_type:04x}"))
            continue
        if expected is not None and length != expected:
            out.malformed = True
            out.problems.append((DropReason.TOO_SHORT, f"MiBeacon object 0x{object_type:04x} has {length} bytes, "
                                                       f"expected {expected}", ""))
            continue
        reader(raw, model, out)
    if pos < end:
        # 1 or 2 bytes left over, not even an object header: real devices do this (MMC-W505), and xiaomi-ble
        # ignores them; said, not held against the frame.
        out.notes.append((DropReason.TOO_SHORT, f"MiBeacon payload ends with {end - pos} stray byte(s) "
                                                f"{payload[pos:].hex()}: ignored", "stray bytes"))
    return out
