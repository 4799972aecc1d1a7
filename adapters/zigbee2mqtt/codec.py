"""The Zigbee2MQTT convention as a pure codec: MQTT topics and payloads in, typed updates out; commands in,
``<name>/set`` payloads out.

No I/O, no clock, no globals that change: :class:`Zigbee2MqttCodec` holds only what the bridge told it
(``bridge/devices``, ``bridge/groups``, availability), so replay, the unit tests and the fuzzers drive it
exactly as the adapter does.

Device support is data: ``bridge/devices`` exposes are compiled, once per device, into :class:`Binding`
rows looked up by the payload key (``state_l1``), using the tables :data:`SPECIFIC_RULES` (feature of a
light/switch/fan/cover/lock/climate expose) and :data:`GENERIC_RULES` (any expose, by name). Supporting a new
Z2M property is adding a row there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.sdk import (
    CapabilitySupport,
    CodecError,
    Command,
    DeviceEventUpdate,
    DeviceInfo,
    Update,
    iso_utc,
)

__all__ = [
    "GENERIC_RULES",
    "MAX_PAYLOAD_BYTES",
    "SOURCE",
    "SPECIFIC_RULES",
    "Binding",
    "Decoded",
    "Rule",
    "Z2MDevice",
    "Zigbee2MqttCodec",
    "action_to_press",
    "compile_device",
    "decode_availability",
    "decode_state",
    "device_id_for",
    "encode_command",
    "parse_json",
]

SOURCE = "zigbee2mqtt"
# A device's state is a few hundred bytes; anything far beyond is not Zigbee2MQTT talking.
MAX_PAYLOAD_BYTES = 256 * 1024
# bridge/devices carries every device's definition, endpoints, bindings and reporting: 5-20 KiB per
# device, so a few MiB for a large network. The cap only guards memory against a runaway publisher.
MAX_BRIDGE_PAYLOAD_BYTES = 64 * 1024 * 1024
# Messages for names not yet known are kept (last one per topic) until the first bridge/devices arrives:
# retained state topics are often delivered before the retained bridge/devices. Bounded so a flood of
# junk topics cannot grow memory.
MAX_PENDING_TOPICS = 2000

ACCESS_READABLE = 1  # bit 0: published in the device's state
ACCESS_SETTABLE = 2  # bit 1: accepted on <name>/set

# Zigbee2MQTT's system_mode words (the ZCL SystemMode enumeration, and what converters add) -> the model's.
_SYSTEM_MODE = {"off": "off", "heat": "heat", "cool": "cool", "auto": "auto", "eco": "eco", "dry": "dry",
                "fan_only": "fan_only", "heat_cool": "heat_cool", "emergency_heating": "heat", "precooling": "cool",
                "sleep": "eco"}
THERMOSTAT_MODES = frozenset(_SYSTEM_MODE)
# running_state (ZCL RunningState bits, as Zigbee2MQTT names them) -> the model's running.
_RUNNING = {"idle": "idle", "heat": "heating", "cool": "cooling", "fan_only": "fan", "heat_fan": "heating",
            "cool_fan": "cooling", "dry": "drying", "preheating": "preheating", "defrost": "defrosting",
            "defrosting": "defrosting", "off": "off", "fan": "fan"}
_MOVING = {"UP": "opening", "DOWN": "closing", "STOP": "stopped", "OPENING": "opening", "CLOSING": "closing",
           "STOPPED": "stopped", "FORWARD": "opening", "REVERSE": "closing"}
_LOCK_STATE = {"locked": "locked", "unlocked": "unlocked", "not_fully_locked": "jammed"}
# Fan modes that are speeds, slowest first: set_speed(percent) picks among those the fan exposes.
_FAN_SPEEDS = ("low", "low-med", "medium", "med-high", "high")


def fan_speeds(values: Iterable[str]) -> list[str]:
    """A fan mode's speeds, slowest first: the words above, or numbers (IKEA STARKVIND's ``1``…``9``)."""
    values = [v for v in values if isinstance(v, str)]
    words = [w for w in _FAN_SPEEDS if w in values]
    numbers = sorted((v for v in values if v.isdigit() and int(v) > 0), key=int)
    return numbers or words
_MIRED_PER_KELVIN = 1_000_000  # kelvin = 1e6 / mireds, both ways


# ---------------------------------------------------------------------------------------------- values


def _bad(why: str) -> CodecError:
    return CodecError(why)


def _finite(raw: Any) -> float:
    if type(raw) is int:  # most readings, and always finite (a bool's type is bool: not taken here)
        return raw
    # bool is an int in Python; a Z2M number is never true/false.
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raw = _numeric_text(raw)
    if not math.isfinite(raw):
        raise _bad(f"expected a finite number, got {raw}")
    return raw


def _numeric_text(raw: Any) -> float:
    """A number sent as text, as older converters did (`"battery": "80.00"`, Koenkk/zigbee2mqtt#663)."""
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            pass
    raise _bad(f"expected a number, got {'text' if isinstance(raw, str) else type(raw).__name__} {_short(raw)}")


def _in_range(value: float, low: float | None, high: float | None) -> float:
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"{'-inf' if low is None else f'{low:g}'}..{'inf' if high is None else f'{high:g}'}"
        raise _bad(f"{value} is outside {span}")
    return value


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


# Decoders: (raw payload value, binding) -> canonical value, or raise CodecError. Units are in the names.


def decode_number(raw: Any, b: Binding) -> float:
    return _finite(raw)


def decode_non_negative(raw: Any, b: Binding) -> float:
    return _in_range(_finite(raw), 0, None)


def decode_percent(raw: Any, b: Binding) -> float:
    return _in_range(_finite(raw), 0, 100)


def decode_celsius(raw: Any, b: Binding) -> float:
    return _in_range(_finite(raw), -273.15, None)


def decode_setpoint_celsius(raw: Any, b: Binding) -> float:
    # The model bounds every thermostat target to -50..100 °C.
    return _in_range(_finite(raw), -50, 100)


def decode_lqi(raw: Any, b: Binding) -> float:
    if type(raw) is int and 0 <= raw <= 255:  # in every message Zigbee2MQTT sends
        return raw
    return _in_range(_finite(raw), 0, 255)


def decode_brightness_percent(raw: Any, b: Binding) -> float:
    # Z2M brightness is 0..value_max (254 for every ZCL light); ours is 0-100 %, one decimal is plenty.
    top = b.value_max or 254
    return round(_in_range(_finite(raw), 0, top) * 100 / top, 1)


def decode_mired_to_kelvin(raw: Any, b: Binding) -> int:
    mired = _finite(raw)
    # 50..1000 mireds is 20000..1000 K, the model's range; outside is a bulb reporting garbage (0, 65535).
    _in_range(mired, 50, 1000)
    return round(_MIRED_PER_KELVIN / mired)


def decode_millivolts_to_volts(raw: Any, b: Binding) -> float:
    return round(_in_range(_finite(raw), 0, None) / 1000, 3)


def decode_volts(raw: Any, b: Binding) -> float:
    return _in_range(_finite(raw), 0, None)


def decode_energy_kwh(raw: Any, b: Binding) -> float:
    return _in_range(_finite(raw), 0, None)


def decode_pressure_hpa(raw: Any, b: Binding) -> float:
    return _in_range(_finite(raw), 0, None)


def decode_power_factor(raw: Any, b: Binding) -> float:
    # Some meters report it in percent (unit "%": the binding's scale is 1/100), others as -1..1.
    return _in_range(_finite(raw), -1, 1)


def decode_voc_index(raw: Any, b: Binding) -> float:
    return _in_range(_finite(raw), 0, 500)


def decode_bool(raw: Any, b: Binding) -> bool:
    if isinstance(raw, bool):
        return raw
    if raw == b.value_on:
        return True
    if raw == b.value_off:
        return False
    raise _bad(f"expected true/false or {b.value_on!r}/{b.value_off!r}, got {_short(raw)}")


def decode_on_off(raw: Any, b: Binding) -> bool:
    if raw == b.value_on:
        return True
    if raw == b.value_off:
        return False
    if isinstance(raw, str) and raw.upper() in ("ON", "OFF"):
        return raw.upper() == "ON"
    raise _bad(f"expected {b.value_on!r} or {b.value_off!r}, got {_short(raw)}")


def decode_contact_open(raw: Any, b: Binding) -> bool:
    # Z2M `contact: true` means the magnet is near: CLOSED. Ours is `open`, true = open. Decided on the raw
    # boolean, never on value_on/value_off, which some definitions (MCCGQ01LM) publish inverted.
    if isinstance(raw, bool):
        return not raw
    # A few converters (PushOk POK003) send words: value_on is "contact", that is closed.
    if isinstance(raw, str) and raw == b.value_on:
        return False
    if isinstance(raw, str) and raw == b.value_off:
        return True
    raise _bad(f"expected true/false, got {_short(raw)}")


def decode_lock_state(raw: Any, b: Binding) -> str:
    if raw == b.value_on:
        return "locked"
    if raw == b.value_off:
        return "unlocked"
    raise _bad(f"expected {b.value_on!r} or {b.value_off!r}, got {_short(raw)}")


def decode_lock_detail(raw: Any, b: Binding) -> str:
    state = _LOCK_STATE.get(raw) if isinstance(raw, str) else None
    if state is None:
        raise _bad(f"unknown lock_state {_short(raw)}")
    return state


def decode_system_mode(raw: Any, b: Binding) -> str:
    mode = _SYSTEM_MODE.get(raw.lower()) if isinstance(raw, str) else None
    if mode is None:
        raise _bad(f"system_mode {_short(raw)} is not one of {', '.join(sorted(THERMOSTAT_MODES))}")
    return mode


def decode_running_state(raw: Any, b: Binding) -> str:
    running = _RUNNING.get(raw.lower()) if isinstance(raw, str) else None
    if running is None:
        raise _bad(f"running_state {_short(raw)} is not one of {', '.join(sorted(_RUNNING))}")
    return running


_PRESENT_WORDS = frozenset({"none", "no", "absence", "absent", "off", "clear", "unoccupied", "nobody"})


def decode_presence_word(raw: Any, b: Binding) -> bool:
    """An mmWave sensor's presence_state (`none`, `presence`, `motion`, `peaceful`, `small_movement`, …)."""
    if isinstance(raw, bool):
        return raw
    if not isinstance(raw, str) or (b.values and raw not in b.values):
        raise _bad(f"presence_state {_short(raw)} is not one of {', '.join(b.values) or 'its values'}")
    return raw.lower() not in _PRESENT_WORDS


def decode_open_word(raw: Any, b: Binding) -> bool:
    """A window state as a word (`open` / `close`) or a boolean (true = open)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("open", "opened"):
        return True
    if isinstance(raw, str) and raw.lower() in ("close", "closed"):
        return False
    if raw == b.value_on:
        return True
    if raw == b.value_off:
        return False
    raise _bad(f"expected open/close, got {_short(raw)}")


def decode_level_word(raw: Any, b: Binding) -> str:
    if not isinstance(raw, str) or raw.lower() not in ("low", "normal", "high"):
        raise _bad(f"expected low/normal/high, got {_short(raw)}")
    return raw.lower()


def decode_vibration_moving(raw: Any, b: Binding) -> bool:
    # A multi-sensor's accelerometer: `moving: true` is the device being moved, not a cover.
    return decode_bool(raw, b)


def decode_moving(raw: Any, b: Binding) -> str:
    motion = _MOVING.get(raw.upper()) if isinstance(raw, str) else None
    if motion is None:
        raise _bad(f"moving {_short(raw)} is not UP/DOWN/STOP")
    return motion


def decode_text(raw: Any, b: Binding) -> str:
    if not isinstance(raw, str):
        raise _bad(f"expected a string, got {_short(raw)}")
    return raw


def decode_last_seen(raw: Any, b: Binding) -> str:
    """Z2M `last_seen` is ISO-8601 (``ISO_8601``, ``ISO_8601_local``) or epoch milliseconds (``epoch``)."""
    if isinstance(raw, str):
        try:
            when = datetime.fromisoformat(raw)
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)  # no offset: Z2M's ISO_8601 is UTC
            return iso_utc(when.timestamp())
        except (ValueError, OverflowError, OSError) as err:
            raise _bad(f"last_seen {_short(raw)} is not an ISO-8601 time") from err
    value = _finite(raw)
    # Epoch milliseconds; a value that small is seconds (another bridge's habit).
    seconds = value / 1000 if value > 1e11 else value
    try:
        return iso_utc(seconds)
    except (OverflowError, OSError, ValueError) as err:
        raise _bad(f"last_seen {value} is not a time") from err


def _decode_color(raw: Any, b: Binding) -> list[tuple[str, float]]:
    if not isinstance(raw, dict):
        raise _bad(f"expected a colour object, got {_short(raw)}")
    out: list[tuple[str, float]] = []
    if "xy" in b.roles:
        for axis in ("x", "y"):
            if axis in raw:
                out.append((axis, round(_in_range(_finite(raw[axis]), 0, 1), 4)))
    if "hs" in b.roles:
        if "hue" in raw:
            out.append(("hue", _in_range(_finite(raw["hue"]), 0, 360)))
        if "saturation" in raw:
            out.append(("saturation", _in_range(_finite(raw["saturation"]), 0, 100)))
    return out


# ---------------------------------------------------------------------------------------------- button

# Words that say a press when no word above says what kind (`on`, `recall_2`, `button_1`).
_PLAIN_PRESS = frozenset({"on", "off", "toggle", "open", "close", "arrow", "recall", "scene", "button", "up",
                          "down", "left", "right"})
_PRESS_KIND_BY_TOKEN = {
    "single": "single", "click": "single", "press": "single", "pressed": "single", "short": "single",
    "step": "single",
    "double": "double", "triple": "triple", "quadruple": "quadruple", "quintuple": "quintuple",
    "long": "long", "store": "long", "hold": "hold", "held": "hold", "move": "hold",
    "release": "release", "released": "release", "stop": "release",
}
# Words that make an action something other than a press (a cube turned, a dial rotated, a keypad armed).
_NOT_A_PRESS = frozenset({"rotate", "rotation", "slide", "shake", "flip", "tap", "fall", "throw", "wakeup",
                          "lock", "unlock", "arm", "disarm", "emergency", "panic", "unknown", "identify", "add",
                          "remove", "loop", "exit", "entry", "sleep", "wake"})
# Which button a word names: two-button remotes use on/off, up/down, left/right. "both" is button 0.
_BUTTON_BY_TOKEN = {"on": 1, "up": 1, "left": 1, "off": 2, "down": 2, "right": 2, "both": 0}
# Remotes whose words name more than two buttons (see button_words).
_FOUR_WORDS = {"on": 1, "up": 2, "down": 3, "off": 4}  # Hue dimmer: on, brighter, dimmer, off, top to bottom
_FIVE_WORDS = {"toggle": 1, "up": 2, "down": 3, "left": 4, "right": 5}  # IKEA's round five-button remote


def _tokens(action: str) -> list[str]:
    return action.lower().replace("-", "_").replace(" ", "_").split("_")


def _number(token: str) -> int | None:
    """A button number in a token: `2`, `l2` (Zigbee2MQTT's endpoint names), `button2`."""
    for head in ("", "l", "button", "b"):
        if token.startswith(head) and token[len(head):].isdigit() and len(token) > len(head):
            return int(token[len(head):])
    return None


def button_words(actions: Iterable[str]) -> dict[str, int]:
    """Which button each word names on one device, from every action value it can send. Two-button remotes
    say on/off (or up/down, left/right); a remote that says on, up, down and off at the start of its actions
    has four (Hue dimmer switch); one with up/down and left/right arrows has more (IKEA's five-button remote
    with a toggle in the middle, STYRBAR with on/off and arrows)."""
    leads: set[str] = set()
    words: set[str] = set()
    for action in actions:
        if not isinstance(action, str):
            continue
        tokens = _tokens(action)
        leads.add(tokens[0])
        words.update(tokens)
    if {"on", "up", "down", "off"} <= leads:
        return dict(_FOUR_WORDS)
    if {"left", "right"} <= words and ({"up", "down"} <= words or {"on", "off"} <= words):
        if "toggle" in leads and {"up", "down"} <= words:
            return dict(_FIVE_WORDS)
        return {**_BUTTON_BY_TOKEN, "left": 3, "right": 4}
    return dict(_BUTTON_BY_TOKEN)


def action_to_press(action: str, words: dict[str, int] | None = None) -> tuple[str | None, int]:
    """Best-effort (kind, button) of a Z2M action string: ``1_single`` -> ("single", 1), ``on_2`` ->
    ("single", 2), ``hold_right`` -> ("hold", 2), ``brightness_move_up`` -> ("hold", 1), ``on`` ->
    ("single", 1). A number in the action is the button's (``brightness_step_up_3``); otherwise the words say
    it (``words``: see :func:`button_words`). kind None: not a press (``rotate_left``, ``shake``, ``lock``)."""
    tokens = _tokens(action)
    kind: str | None = None
    if not any(token in _NOT_A_PRESS for token in tokens):
        for token in reversed(tokens):  # the modifier is last: on_hold_release -> release
            kind = _PRESS_KIND_BY_TOKEN.get(token)
            if kind is not None:
                break
        if kind is None and any(token in _PLAIN_PRESS for token in tokens):
            kind = "single"
    table = _BUTTON_BY_TOKEN if words is None else words
    button: int | None = None
    for token in tokens:
        button = _number(token)
        if button is not None:
            break
    if button is None:
        button = next((table[token] for token in tokens if token in table), 1)
    return kind, button


# ---------------------------------------------------------------------------------------------- tables

DecodeFn = Callable[[Any, "Binding"], Any]
# (unit as Zigbee2MQTT declares it, normalised; factor to the canonical unit; the attribute, None: the rule's;
# offset after the factor). A unit not listed is not the rule's: the property is not used, and said so.
UnitRow = tuple[str | None, float, str | None, float]
# A condition on the feature and the device as a whole: the feature, the device's specific expose types
# (light, switch, cover, climate, …) and its generic property names.
When = Callable[[dict[str, Any], frozenset[str], frozenset[str]], bool]

NUMERIC = frozenset({"numeric"})
BINARY = frozenset({"binary"})
ENUM = frozenset({"enum"})


@dataclass(frozen=True, slots=True)
class Rule:
    """What a Z2M expose means in our model. ``attribute`` None: the property is only a command target
    (cover ``state``) or decodes to several attributes (colour). ``commands``: the commands of the capability
    it enables when its access has the settable bit. ``rank``: when two properties give the same attribute,
    the lower rank wins (``illuminance_lux`` over ``illuminance``). ``fallback``: the losing one still gives
    the attribute in a message without the winner (a lock's ``state`` when ``lock_state`` is not reported).
    ``kinds``: the expose types it reads (a binary ``vibration`` is a reading, an enum one a setting); empty:
    any. ``units``: the units it takes and how they convert (None: no unit is looked at). ``when``: a
    condition on the whole device (an enum ``moving`` is a cover's only on a device with a cover).
    ``multi``: ``decode`` returns (attribute, value) pairs (colour, a fan's mode)."""

    capability: str
    attribute: str | None
    decode: DecodeFn | None = None
    commands: frozenset[str] = frozenset()
    role: str = ""
    rank: int = 0
    fallback: bool = False
    kinds: frozenset[str] = frozenset()
    units: tuple[UnitRow, ...] | None = None
    when: When | None = None
    multi: bool = False


def _r(capability: str, attribute: str | None, decode: DecodeFn | None = None, commands: Iterable[str] = (),
       role: str = "", rank: int = 0, fallback: bool = False, kinds: frozenset[str] = frozenset(),
       units: Iterable[tuple[Any, ...]] | None = None, when: When | None = None, multi: bool = False) -> Rule:
    rows = None if units is None else tuple(_unit_row(*row) for row in units)
    return Rule(capability, attribute, decode, frozenset(commands), role or (attribute or ""), rank, fallback,
                kinds, rows, when, multi)


def _unit_row(unit: str | None, factor: float = 1.0, attribute: str | None = None, offset: float = 0.0) -> UnitRow:
    return unit, factor, attribute, offset


# How converters spell units: the same unit written several ways is one unit here.
_UNIT_SPELLINGS = {
    "μg/m³": "µg/m³", "ug/m3": "µg/m³", "µg/m3": "µg/m³", "ug/m³": "µg/m³", "mg/m3": "mg/m³", "m3": "m³",
    "℃": "°C", "C": "°C", "c": "°C", "°c": "°C", "℉": "°F", "°f": "°F", "F": "°F",
    "LEL": "%LEL", "LEL %": "%LEL", "% LEL": "%LEL", "%lel": "%LEL",
    "minutes": "min", "min.": "min", "mins": "min", "seconds": "s", "sec": "s", "Seconds": "s",
    "hours": "h", "Hours": "h", "VAR": "var", "VAr": "var", "kw": "kW", "w": "W", "kwh": "kWh", "wh": "Wh",
    "lux": "lx", "Lux": "lx", "kpa": "kPa", "hpa": "hPa",
}


def normalize_unit(unit: Any) -> str | None:
    """A Zigbee2MQTT expose's unit in one spelling (``μg/m³`` and ``µg/m³`` are one), None when it has none."""
    if not isinstance(unit, str):
        return None
    text = unit.strip()
    if not text:
        return None
    return _UNIT_SPELLINGS.get(text, text)


_ON_OFF = _r("on_off", "on", decode_on_off, ("on", "off", "toggle"))
_SETPOINT = _r("thermostat", "target_celsius", decode_setpoint_celsius, ("set_target",), role="setpoint",
               units=(("°C",), (None,)))
_CELSIUS = (("°C",), (None,), ("°F", 5 / 9, None, -160 / 9))
_WATTS = (("W",), ("kW", 1000.0), ("mW", 0.001))
_AMPS = (("A",), ("mA", 0.001))
_KWH = (("kWh",), ("Wh", 0.001), ("MWh", 1000.0))
_UGM3 = (("µg/m³",),)


def _fan_mode(raw: Any, b: Binding) -> list[tuple[str, Any]]:
    """A fan's mode: always its preset; a speed (``low``…``high``, ``1``…``9``) is also a speed_percent."""
    text = decode_text(raw, b)
    speeds = fan_speeds(b.values)
    out: list[tuple[str, Any]] = [("preset", text)]
    if text in speeds:
        out.append(("speed_percent", round((speeds.index(text) + 1) * 100 / len(speeds))))
    elif text == "off" and speeds:
        out.append(("speed_percent", 0))
    return out


_ALARM_OFF = frozenset({"off", "stop", "none", "normal", "idle", "no_alarm"})


def decode_alarm_flag(raw: Any, b: Binding) -> bool:
    return decode_text(raw, b).lower() not in _ALARM_OFF


def _alarm_word(raw: Any, b: Binding) -> list[tuple[str, Any]]:
    text = decode_text(raw, b)
    if text.lower() in _ALARM_OFF:
        return [("on", False)]
    return [("on", True), ("tone", text)]


def decode_fan_speed(raw: Any, b: Binding) -> float:
    """A fan's speed as a number 0..value_max (IKEA STARKVIND: 0-9), or already a percentage (unit %)."""
    value = _finite(raw)
    top = b.value_max if b.unit != "%" and b.value_max and b.value_max > 0 else 100
    return round(_in_range(value, 0, top) * 100 / top)


def decode_percent_of_max(raw: Any, b: Binding) -> float:
    """A position 0..value_max (a valve reporting 0-255) as 0-100 %."""
    top = b.value_max if b.unit != "%" and b.value_max and b.value_max > 0 else 100
    return round(_in_range(_finite(raw), 0, top) * 100 / top, 1)


def _has(*parents: str) -> When:
    return lambda feature, types, names: any(p in types for p in parents)


def _lacks(*parents: str) -> When:
    return lambda feature, types, names: not any(p in types for p in parents)


def _is_thermostat(types: frozenset[str], names: frozenset[str]) -> bool:
    # A climate expose, a thermostat's parts, or a thermostat relay's target (Scimagic 1-ZB-WSD:
    # `temperature_target`).
    return "climate" in types or bool(names & _THERMOSTAT_NAMES) or any(
        "setpoint" in name or "temperature_target" in name for name in names)


def _thermostat(feature: dict[str, Any], types: frozenset[str], names: frozenset[str]) -> bool:
    return _is_thermostat(types, names)


def _values_include(*words: str) -> When:
    def fits(feature: dict[str, Any], types: frozenset[str], names: frozenset[str]) -> bool:
        values = feature.get("values")
        return isinstance(values, list) and any(w in values for w in words)
    return fits


def _described(word: str) -> When:
    def fits(feature: dict[str, Any], types: frozenset[str], names: frozenset[str]) -> bool:
        return word in str(feature.get("description") or "").lower()
    return fits


def _switches(feature: dict[str, Any], types: frozenset[str], names: frozenset[str]) -> bool:
    # A top-level `state` that is an output (ON/OFF), not a word of a cover or a sensor's mode.
    return feature.get("value_on", "ON") in ("ON", "on", True) and bool(feature.get("access", 0) & ACCESS_SETTABLE)


def _valve_position(feature: dict[str, Any], types: frozenset[str], names: frozenset[str]) -> bool:
    # `position` is a cover's (a cover expose has it as a feature) or a valve's: a TRV's or a water valve's.
    return "cover" not in types and (_is_thermostat(types, names) or bool(names & {"valve", "valve_state", "flow"}))


_THERMOSTAT_NAMES = frozenset({"local_temperature", "current_heating_setpoint", "occupied_heating_setpoint",
                               "system_mode", "running_state", "pi_heating_demand", "window_open",
                               "window_detection"})

#: (specific expose type, feature name) -> rule
SPECIFIC_RULES: dict[tuple[str, str], Rule] = {
    ("light", "state"): _ON_OFF,
    ("switch", "state"): _ON_OFF,
    ("light", "brightness"): _r("level", "percent", decode_brightness_percent, ("set",)),
    ("light", "color_temp"): _r("color_temperature", "kelvin", decode_mired_to_kelvin, ("set",)),
    ("light", "color_xy"): _r("color", None, _decode_color, ("set_xy",), role="xy", multi=True),
    ("light", "color_hs"): _r("color", None, _decode_color, ("set",), role="hs", multi=True),
    ("fan", "state"): _r("fan", "on", decode_on_off),
    ("fan", "mode"): _r("fan", None, _fan_mode, ("set_preset", "set_speed"), role="preset", multi=True),
    ("cover", "state"): _r("cover", None, None, ("open", "close", "stop"), role="state"),
    ("cover", "position"): _r("cover", "position_percent", decode_percent, ("set_position",)),
    ("cover", "tilt"): _r("cover", "tilt_percent", decode_percent, ("set_tilt",)),
    ("cover", "moving"): _r("cover", "motion", decode_moving, kinds=ENUM),
    # `lock_state` is what the lock reports it did (locked, unlocked, not fully locked: jammed); `state` is
    # LOCK/UNLOCK, on some converters the last command sent (Koenkk/zigbee2mqtt#3582). The lock's state is
    # lock_state's when the message has it, `state` carries the commands.
    ("lock", "state"): _r("lock", "state", decode_lock_state, ("lock", "unlock"), rank=1, fallback=True),
    ("lock", "lock_state"): _r("lock", "state", decode_lock_detail),
    ("climate", "local_temperature"): _r("thermostat", "current_celsius", decode_celsius, units=_CELSIUS),
    ("climate", "occupied_heating_setpoint"): _SETPOINT,
    ("climate", "current_heating_setpoint"): _SETPOINT,
    # A cooling-only unit: its cooling setpoint is the target; a heat pump with both keeps the heating one.
    ("climate", "occupied_cooling_setpoint"): Rule(
        "thermostat", "target_celsius", decode_setpoint_celsius, frozenset({"set_target"}), "setpoint", 1,
        units=_SETPOINT.units),
    ("climate", "system_mode"): _r("thermostat", "mode", decode_system_mode, ("set_mode",), kinds=ENUM),
    ("climate", "running_state"): _r("thermostat", "running", decode_running_state, kinds=ENUM),
    ("climate", "pi_heating_demand"): _r("valve", "position_percent", decode_percent, units=(("%",), (None,))),
}

#: generic expose name -> rule, or rules tried in order (the first whose kinds, units and condition fit).
#: Also used for features of specific exposes not in SPECIFIC_RULES.
GENERIC_RULES: dict[str, Rule | tuple[Rule, ...]] = {
    "occupancy": _r("occupancy", "occupied", decode_bool, kinds=BINARY),
    "presence": _r("occupancy", "occupied", decode_bool, rank=1, kinds=BINARY),
    "presence_state": _r("occupancy", "occupied", decode_presence_word, rank=2, kinds=ENUM),
    "contact": _r("contact", "open", decode_contact_open, kinds=BINARY),
    # Tuya's garage door opener: true = the door's contact is closed, as a plain contact.
    "garage_door_contact": _r("contact", "open", decode_contact_open, kinds=BINARY, rank=1),
    "window_open": _r("thermostat", "window_open", decode_bool, kinds=BINARY),
    "open_window": _r("thermostat", "window_open", decode_bool, kinds=BINARY, rank=1),
    "window": _r("thermostat", "window_open", decode_open_word, kinds=BINARY | ENUM, rank=2, when=_thermostat),
    "water_leak": _r("water_leak", "leak", decode_bool, kinds=BINARY),
    "smoke": _r("smoke_co_alarm", "smoke", decode_bool, kinds=BINARY),
    "carbon_monoxide": _r("smoke_co_alarm", "co", decode_bool, kinds=BINARY),
    "co": _r("smoke_co_alarm", "co_ppm", decode_non_negative, kinds=NUMERIC, units=(("ppm",),)),
    "gas": _r("gas", "detected", decode_bool, kinds=BINARY),
    "gas_value": _r("gas", "lel_percent", decode_non_negative, kinds=NUMERIC,
                    units=(("%LEL",), ("ppm", 1.0, "ppm"))),
    "selftest": _r("smoke_co_alarm", None, None, ("self_test",), role="selftest"),
    "vibration": _r("vibration", "detected", decode_bool, kinds=BINARY),
    "tamper": _r("tamper", "tampered", decode_bool, kinds=BINARY),
    "battery": _r("battery", "percent", decode_percent, kinds=NUMERIC, units=(("%",), (None,))),
    "battery_low": _r("battery", "low", decode_bool, kinds=BINARY),
    # "voltage" is resolved per device by _voltage_rule (battery mV or mains V).
    "power": _r("power_meter", "watts", decode_number, kinds=NUMERIC, units=_WATTS),
    "current": _r("power_meter", "amps", decode_number, kinds=NUMERIC, units=_AMPS),
    "power_factor": _r("power_meter", "power_factor", decode_power_factor, kinds=NUMERIC,
                       units=((None,), ("%", 0.01))),
    "ac_frequency": _r("power_meter", "hertz", decode_non_negative, kinds=NUMERIC, units=(("Hz",), (None,))),
    "energy": _r("energy_meter", "kwh", decode_energy_kwh, kinds=NUMERIC, units=_KWH),
    "produced_energy": _r("energy_meter", "exported_kwh", decode_energy_kwh, kinds=NUMERIC, units=_KWH),
    "energy_produced": _r("energy_meter", "exported_kwh", decode_energy_kwh, kinds=NUMERIC, units=_KWH),
    # The metering cluster's totals, by their ZCL names (imported and exported).
    "current_summ_delivered": _r("energy_meter", "kwh", decode_energy_kwh, kinds=NUMERIC, units=_KWH, rank=1),
    "current_summ_received": _r("energy_meter", "exported_kwh", decode_energy_kwh, kinds=NUMERIC, units=_KWH,
                                rank=1),
    "temperature": _r("temperature", "celsius", decode_celsius, kinds=NUMERIC, units=_CELSIUS),
    "humidity": _r("humidity", "percent", decode_percent, kinds=NUMERIC, units=(("%",), (None,))),
    "pressure": (
        _r("pressure", "hpa", decode_pressure_hpa, kinds=NUMERIC,
           units=(("hPa",), ("kPa", 10.0), ("Pa", 0.01), ("mbar",))),
        # A pressure pad (under a mattress or a seat cushion) says someone is on it.
        _r("occupancy", "occupied", decode_bool, kinds=BINARY, rank=3),
    ),
    "illuminance_lux": _r("illuminance", "lux", decode_non_negative, kinds=NUMERIC, units=(("lx",),)),
    "illuminance": _r("illuminance", "lux", decode_non_negative, rank=1, kinds=NUMERIC,
                      units=(("lx",), ("%", 1.0, "percent"))),
    "co2": _r("air_quality", "co2_ppm", decode_non_negative, kinds=NUMERIC, units=(("ppm",),)),
    "pm1": _r("air_quality", "pm1_ugm3", decode_non_negative, kinds=NUMERIC, units=_UGM3),
    "pm25": _r("air_quality", "pm25_ugm3", decode_non_negative, kinds=NUMERIC, units=_UGM3),
    "pm10": _r("air_quality", "pm10_ugm3", decode_non_negative, kinds=NUMERIC, units=_UGM3),
    "voc": _r("air_quality", "voc_ppb", decode_non_negative, kinds=NUMERIC,
              units=(("ppb",), ("ppm", 1000.0), ("µg/m³", 1.0, "voc_ugm3"), ("mg/m³", 1000.0, "voc_ugm3"))),
    "voc_index": _r("air_quality", "voc_index", decode_voc_index, kinds=NUMERIC,
                    units=((None,), ("VOC Index points",))),
    "formaldehyd": _r("air_quality", "hcho_ugm3", decode_non_negative, kinds=NUMERIC,
                      units=(("µg/m³",), ("mg/m³", 1000.0))),
    "soil_moisture": _r("soil_moisture", "percent", decode_percent, kinds=NUMERIC, units=(("%",),)),
    "liquid_level_percent": _r("water_level", "percent", decode_percent, kinds=NUMERIC, units=(("%",),)),
    "liquid_depth": _r("water_level", "depth_m", decode_non_negative, kinds=NUMERIC,
                       units=(("m",), ("cm", 0.01), ("mm", 0.001))),
    "liquid_state": _r("water_level", "state", decode_level_word, kinds=ENUM),
    "replace_filter": _r("filter", "replace", decode_bool, kinds=BINARY),
    "filter_age": _r("filter", "used_h", decode_non_negative, kinds=NUMERIC,
                     units=(("min", 1 / 60), ("h",), ("s", 1 / 3600))),
    "filter_life": _r("filter", "life_percent", decode_percent, kinds=NUMERIC, units=(("%",),)),
    "alarm": (
        _r("siren", "on", decode_bool, ("on", "off"), kinds=BINARY, role="on"),
        # A siren whose alarm is a word: off (or stop) is off, any other is on with that tone.
        _r("siren", None, _alarm_word, ("on", "off"), kinds=ENUM, role="on", multi=True,
           when=_values_include("off", "stop")),
    ),
    # IAS warning devices: write-only, a mode (the tone), a level, a strobe and a duration.
    "warning": _r("siren", None, None, ("on", "off"), kinds=frozenset({"composite"}), role="warning"),
    # A device's output as a plain top-level `state` (not inside a switch expose): a relay, a thermostat's power.
    "state": _r("on_off", "on", decode_on_off, ("on", "off", "toggle"), kinds=BINARY, rank=1, when=_switches),
    # A siren's alarm as a word (Lincukoo A08-Z10T: alarm_sound, alarm_light, alarm_sound_light, normal).
    "alarm_state": _r("siren", None, _alarm_word, ("on", "off"), kinds=ENUM, role="on", multi=True,
                      when=_values_include("alarm_sound")),
    # A vibration sensor's alarm (Tuya TS0601_vibration_alarm_sensor: normal / alarm).
    "alarm_status": _r("vibration", "detected", decode_alarm_flag, kinds=ENUM, when=_described("vibration")),
    # A binary input module's inputs (Gewiss GWA1502: "State of input I1"): read, never switched.
    "input": _r("on_off", "on", decode_on_off, kinds=BINARY, rank=2),
    # A radar's status (OWON FDS315: unoccupied, occupied, sitting, on_the_bed, low_posture, falling).
    "status": _r("occupancy", "occupied", decode_presence_word, kinds=ENUM, rank=2,
                 when=_values_include("unoccupied")),
    "fan_speed": _r("fan", "speed_percent", decode_fan_speed, ("set_speed",), kinds=NUMERIC, role="speed",
                    units=((None,), ("%",))),
    "valve_position": _r("valve", "position_percent", decode_percent_of_max, ("set_position",), kinds=NUMERIC,
                         units=(("%",), (None,))),
    "position": _r("valve", "position_percent", decode_percent_of_max, ("set_position",), kinds=NUMERIC,
                   units=(("%",), (None,)), when=_valve_position, rank=1),
    # A thermostat's parts, for converters that expose them outside a climate expose.
    "local_temperature": _r("thermostat", "current_celsius", decode_celsius, kinds=NUMERIC, units=_CELSIUS),
    "current_heating_setpoint": _SETPOINT,
    "occupied_heating_setpoint": _SETPOINT,
    # An air conditioner's (ONOKOM AUX): only where the device is a thermostat.
    "current_temperature": _r("thermostat", "current_celsius", decode_celsius, kinds=NUMERIC, units=_CELSIUS,
                              rank=1, when=_thermostat),
    "target_temperature": Rule("thermostat", "target_celsius", decode_setpoint_celsius, frozenset({"set_target"}),
                               "setpoint", 1, kinds=NUMERIC, units=_SETPOINT.units, when=_thermostat),
    # A three-phase meter's total, when it has no plain `power`.
    "total_power": _r("power_meter", "watts", decode_number, kinds=NUMERIC, units=_WATTS, rank=1),
    "system_mode": _r("thermostat", "mode", decode_system_mode, ("set_mode",), kinds=ENUM),
    "running_state": _r("thermostat", "running", decode_running_state, kinds=ENUM),
    "pi_heating_demand": _r("valve", "position_percent", decode_percent, kinds=NUMERIC, units=(("%",), (None,))),
    "linkquality": _r("connectivity", "lqi", decode_lqi),
    "last_seen": _r("connectivity", "last_seen", decode_last_seen),
    "action": _r("button", "last_event", None, role="action"),
    "moving": (
        _r("cover", "motion", decode_moving, kinds=ENUM, when=_has("cover")),
        # A multi-sensor's accelerometer (SmartThings multipurpose): the device is being moved.
        _r("vibration", "detected", decode_vibration_moving, kinds=BINARY, when=_lacks("cover")),
    ),
    "identify": _r("identify", None, None, ("identify",), role="identify"),
}

# Meters with several phases or channels: `power_a`, `current_phase_b`, `energy_l2` are the `power`,
# `current`, `energy` of component `l1`, `l2`, `l2`: phases A, B, C are l1, l2, l3, as the capability model
# (and the Shelly adapter) names them. Phase A is often the plain name, on `main`.
_PHASED = frozenset({"power", "current", "voltage", "energy", "produced_energy", "energy_produced", "power_factor",
                     "ac_frequency", "state"})
_PHASE_COMPONENT = {"a": "l1", "b": "l2", "c": "l3"}
_PHASE_SUFFIX = re.compile(r"^(?P<base>[a-z_]+?)_(?:phase_)?(?P<part>[abc]|l[1-9])$")

# Z2M 2.x no longer lists these in exposes but still publishes them for every device.
_IMPLICIT = ("linkquality", "last_seen")
_IMPLICIT_BINDINGS: dict[str, Binding] = {}  # filled below, once Binding exists: shared by every device


def _voltage_rule(battery_powered: bool, unit: str | None) -> Rule:
    # A battery device's `voltage` is its cell (mV in Z2M); a mains plug's is the grid (V).
    millivolts = unit == "mV" or (unit is None and battery_powered)
    decode = decode_millivolts_to_volts if millivolts else decode_volts
    return _r("battery" if battery_powered else "power_meter", "volts", decode, kinds=NUMERIC)


def _rules(name: str) -> tuple[Rule, ...]:
    rules = GENERIC_RULES.get(name)
    if rules is None:
        return ()
    return rules if isinstance(rules, tuple) else (rules,)


# ---------------------------------------------------------------------------------------------- devices


@dataclass(slots=True, eq=False)
class Binding:
    """One payload key of one device, compiled from its expose: where its value goes and how.

    Read-only once compiled (devices of a model share theirs), but not a frozen dataclass: a frozen one's
    23 fields cost twice as much to set, and a device database compiles 10,000 of them (2.7 vs 1.4 us each
    here). Compared and hashed by identity: nothing keys on a binding's contents."""

    property: str
    component: str
    capability: str
    attribute: str | None
    decode: DecodeFn | None
    role: str
    readable: bool
    settable: bool
    rank: int = 0
    commands: frozenset[str] = frozenset()
    unit: str | None = None
    value_min: float | None = None
    value_max: float | None = None
    value_on: Any = "ON"
    value_off: Any = "OFF"
    value_toggle: Any = None
    values: tuple[str, ...] = ()
    roles: frozenset[str] = frozenset()  # colour: which of "xy"/"hs" the device exposes
    fallback: bool = False  # see Rule
    unless: str | None = None  # a fallback's winner: it stands aside when the message has that property
    multi: bool = False  # decode gives (attribute, value) pairs
    scale: float = 1.0  # the expose's unit to the canonical one: value * scale + offset
    offset: float = 0.0
    words: dict[str, int] | None = None  # an action's button words (see button_words)


@dataclass(slots=True)
class Z2MDevice:
    """A device as compiled from its bridge/devices entry."""

    id: str
    ieee: str
    friendly_name: str
    info: DeviceInfo
    battery_powered: bool
    bindings: dict[str, Binding]  # payload key -> binding (readable ones, plus implicit)
    setters: dict[tuple[str, str, str], Binding]  # (component, capability, role) -> settable binding
    initial: list[Update] = field(default_factory=list)  # facts from the definition (kelvin range)
    entry: dict[str, Any] = field(default_factory=dict)  # trimmed bridge/devices entry, for storage
    fallbacks: dict[str, Binding] = field(default_factory=dict)  # payload key -> fallback binding (see Rule)
    # It sends JSON state objects: its <name>/<attribute> topics (`output: attribute_and_json`, and the
    # <name>/action that Zigbee2MQTT publishes for Home Assistant's device triggers) repeat them.
    json_state: bool = False
    notes: list[str] = field(default_factory=list)  # what its definition has that is not used (see _Compiled)


def device_id_for(ieee: str) -> str:
    return f"{SOURCE}:{ieee.lower()}"


Leaf = tuple[dict[str, Any], str | None, Any]


def _leaves(exposes: Any, parent: str | None = None, endpoint: Any = None,
            out: list[Leaf] | None = None) -> list[Leaf]:
    """Every feature of an exposes list as (feature, specific parent type, endpoint). Unknown shapes (strings
    of Z2M 1.1x, lists, texts) are skipped, not an error: exposes grow with every Z2M release. (A list
    filled in place, not nested generators: a device database has 30,000 of them.)"""
    if out is None:
        out = []
    if not isinstance(exposes, list):
        return out
    for expose in exposes:
        if not isinstance(expose, dict):
            continue
        kind = expose.get("type")
        ep = expose.get("endpoint", endpoint)
        features = expose.get("features")
        if kind == "composite":
            # A composite is one payload key (`color`); its own access and name say what it is.
            out.append((expose, parent, ep))
        elif isinstance(features, list):
            _leaves(features, kind if isinstance(kind, str) else parent, ep, out)
        else:
            out.append((expose, parent, ep))
    return out


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return value


def _component(endpoint: Any) -> str:
    if endpoint is None:  # most features: the device's own
        return "main"
    if isinstance(endpoint, (str, int)) and not isinstance(endpoint, bool) and str(endpoint).strip():
        return str(endpoint).strip().lower()
    return "main"


def _text(value: Any) -> str | None:
    """A metadata string from Z2M, without the NUL padding some firmwares put in software_build_id."""
    if not isinstance(value, str):
        return None
    text = value.replace("\x00", "").strip()
    return text or None


def _trim_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """What we keep of a bridge/devices entry in storage: enough to compile it again, not its endpoints."""
    keep = {k: entry[k] for k in ("ieee_address", "friendly_name", "type", "power_source", "software_build_id",
                                  "disabled", "supported") if k in entry}
    definition = entry.get("definition")
    if isinstance(definition, dict):
        keep["definition"] = {k: definition[k] for k in ("vendor", "model", "description", "exposes")
                              if k in definition}
    else:
        keep["definition"] = None
    return keep


@dataclass(slots=True)
class _Compiled:
    """What a device definition's exposes (and its power source) compile to: the same for every device of the
    model, and of every model exposing the same, so those devices share it (a house has many of a few models)."""

    bindings: dict[str, Binding]
    setters: dict[tuple[str, str, str], Binding]
    components: dict[str, dict[str, CapabilitySupport]]
    initial: list[tuple[str, str, str, Any]]  # (component, capability, attribute, value)
    definition: dict[str, Any] | None  # the trimmed definition kept in the device's entry
    fallbacks: dict[str, Binding]
    notes: list[str] = field(default_factory=list)  # what the definition has that is not used, and why


# Compiled definitions kept per codec (keyed by the exposes' JSON): past this many, start again.
MAX_COMPILED_DEFINITIONS = 10_000  # the devices hold what they share anyway: this bounds the rest
# Models whose unused properties were said once: past this many, no more is said (a bound, not a case).
MAX_NOTED_MODELS = 20_000


def compile_device(entry: Any, cache: dict[tuple[int, int], _Compiled] | None = None) -> Z2MDevice | None:
    """Turn one bridge/devices entry into a device. None for the coordinator and disabled devices.
    Raises CodecError for an entry without a usable ieee_address/friendly_name. With ``cache``, devices
    with the same definition share what it compiles to (bindings, support; all treated as read-only)."""
    if not isinstance(entry, dict):
        raise _bad(f"bridge/devices entry is not an object: {_short(entry)}")
    ieee = entry.get("ieee_address")
    name = entry.get("friendly_name")
    if not isinstance(ieee, str) or not ieee.strip() or not isinstance(name, str) or not name:
        raise _bad(f"bridge/devices entry without ieee_address/friendly_name: {_short(entry)}")
    if entry.get("type") == "Coordinator" or entry.get("disabled") is True:
        return None
    battery = entry.get("power_source") == "Battery"
    definition = entry.get("definition") if isinstance(entry.get("definition"), dict) else {}
    compiled: _Compiled | None = None
    cache_key = (0, 0)
    if cache is not None:
        # By what the compiled bindings depend on: the exposes and the power source. Models of different makers
        # that expose the same (a white-label plug under five names: half of Zigbee2MQTT's database) share it.
        # Their JSON as Zigbee2MQTT writes it (a converter writes its exposes in one order: the same exposes
        # written in another order would only be compiled once more), kept as its length and hash, not its
        # text (a database's distinct exposes are 15 MB of JSON). The hash is Python's SipHash, keyed at random
        # in each process: no sender can make two definitions collide; by chance, 1 in 10^11 for 10,000 of them.
        text = orjson.dumps([definition.get("exposes"), battery])
        cache_key = (len(text), hash(text))
        del text
        compiled = cache.get(cache_key)
    if compiled is None:
        compiled = _compile_definition(definition, battery)
        if cache is not None:
            if len(cache) >= MAX_COMPILED_DEFINITIONS:
                cache.clear()
            cache[cache_key] = compiled
    dev_id = device_id_for(ieee)
    info = DeviceInfo(
        id=dev_id,
        name=name,
        source=SOURCE,
        components=compiled.components or {"main": {}},
        manufacturer=_text(definition.get("vendor")),
        model=_text(definition.get("model")),
        sw_version=_text(entry.get("software_build_id")),
        aliases=(name,),
    )
    initial = [Update(dev_id, component, capability, attribute, value)
               for component, capability, attribute, value in compiled.initial]
    kept = _trim_entry(entry)
    if compiled.definition is not None:
        # One copy for all devices of the model, and one of the exposes for every device exposing the same
        # (equal: they compiled to the same key): a whole database's entries were 40 MB kept for storage.
        if kept["definition"] == compiled.definition:
            kept["definition"] = compiled.definition
        elif "exposes" in kept["definition"] and "exposes" in compiled.definition:
            kept["definition"]["exposes"] = compiled.definition["exposes"]
    return Z2MDevice(dev_id, ieee.lower(), name, info, battery, compiled.bindings, compiled.setters, initial, kept,
                     compiled.fallbacks, notes=compiled.notes)


def _switches_the_device(feature: dict[str, Any]) -> bool:
    """A switch's or light's `state` feature that is the device's output: property `state` or `state_<endpoint>`.
    Some converters shape a setting as a switch too (Immax 07703L: "Away mode", property `away_mode`)."""
    prop = feature.get("property", feature.get("name"))
    return feature.get("name") != "state" or (isinstance(prop, str) and (prop == "state" or prop.startswith("state_")))


# Readings that say the device measures the room (or water, or soil), so its plain `temperature` is that too.
_ROOM_SENSORS = frozenset({"humidity", "co2", "voc", "pressure", "pm25", "pm10", "formaldehyd", "eco2",
                           "occupancy", "presence", "illuminance", "illuminance_lux", "contact", "water_leak",
                           "smoke", "soil_moisture"})
_CHIP_WORDS = ("device", "internal", "chip", "mcu")


def _chip_temperature(leaves: list[Leaf], battery: bool) -> bool:
    """Whether a plain `temperature` is the device's own chip: older Zigbee2MQTT versions expose a plug's or a
    relay's (or a DIN breaker's) internal temperature so (newer ones call it `device_temperature`). A warm relay
    must never read as a hot room. Decided by what the device is: something that switches or lights, on
    mains, that measures nothing of the room and is no thermostat. A stove guard (on battery), a motion
    sensor with a relay, a thermostat relay keep their temperature."""
    names = frozenset(f.get("name") for f, parent, _ in leaves if not parent)
    types = frozenset(parent for _, parent, _ in leaves if parent)
    actuator = any(parent in ("switch", "light") and _switches_the_device(feature) for feature, parent, _ in leaves)
    said = next((str(f.get("description") or "").lower() for f, parent, _ in leaves
                 if f.get("name") == "temperature" and not parent), "")
    if any(word in said for word in _CHIP_WORDS):
        return True
    return (actuator and not battery and "battery" not in names and not names & _ROOM_SENSORS
            and not _is_thermostat(types, names))


def _kind(feature: dict[str, Any]) -> str:
    kind = feature.get("type")
    return kind if isinstance(kind, str) else "?"


def _match(rules: tuple[Rule, ...], feature: dict[str, Any], types: frozenset[str], names: frozenset[str]
           ) -> tuple[Rule | None, UnitRow | None, str]:
    """The first rule that fits the feature (kind, unit, condition), with its unit row; or why none did."""
    why = ""
    unit = normalize_unit(feature.get("unit"))
    for rule in rules:
        if rule.kinds and _kind(feature) not in rule.kinds:
            kind = _kind(feature)
            why = why or f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} is not {rule.capability}"
            continue
        if rule.when is not None and not rule.when(feature, types, names):
            why = why or f"not {rule.capability} on this device"
            continue
        if rule.units is None:
            return rule, None, ""
        row = next((r for r in rule.units if r[0] == unit), None)
        if row is None:
            why = why or f"unit {unit or 'none'} is not one {rule.capability} takes"
            continue
        return rule, row, ""
    return None, None, why


def _compile_definition(definition: dict[str, Any], battery: bool) -> _Compiled:
    candidates: list[Binding] = []
    leaves = _leaves(definition.get("exposes"))
    types = frozenset(parent for _, parent, _ in leaves if parent)
    names = frozenset(f.get("name") for f, parent, _ in leaves if not parent and isinstance(f.get("name"), str))
    chip: bool | None = None  # whether a plain `temperature` is the chip's: asked only of one that has it
    actions = [v for f, _, _ in leaves if f.get("name") == "action" and isinstance(f.get("values"), list)
               for v in f["values"]]
    words = button_words(actions) if actions else None
    unused: list[str] = []  # readable properties nothing reads, for the note
    for feature, parent, endpoint in leaves:
        fname = feature.get("name")
        prop = feature.get("property", fname)
        if not isinstance(fname, str) or not isinstance(prop, str) or not prop:
            continue
        access = feature.get("access", ACCESS_READABLE)
        access = access if isinstance(access, int) and not isinstance(access, bool) else ACCESS_READABLE
        component = _component(endpoint)
        if fname == "temperature" and not parent and (
                chip if chip is not None else (chip := _chip_temperature(leaves, battery))):
            unused.append(f"{prop} (the device's own temperature)")
            continue
        if parent == "switch" and fname == "state" and not _switches_the_device(feature):
            continue  # a setting shaped as a switch (a TRV's "Away mode": property away_mode), not an output
        specific = SPECIFIC_RULES.get((parent, fname)) if parent else None
        # By its name; a converter that names a feature by its meter's own label (LiXee ZLinky: "EAST") still
        # has the ZCL property (`current_summ_delivered`).
        rules: tuple[Rule, ...] = (specific,) if specific else (_rules(fname) or _rules(prop))
        if not rules and (phased := _PHASE_SUFFIX.match(fname)) and phased["base"] in _PHASED:
            part = _PHASE_COMPONENT.get(phased["part"], phased["part"])
            fname, component = phased["base"], part if component == "main" else component
            rules = _rules(fname)
        if fname == "voltage":
            unit = normalize_unit(feature.get("unit"))
            rules = (_voltage_rule(battery and component == "main", unit),)
        rule, row, why = _match(rules, feature, types, names) if rules else (None, None, "")
        if rule is None:
            if access & ACCESS_READABLE and fname not in _IMPLICIT:
                unused.append(f"{prop} ({why})" if why else prop)
            continue
        candidates.append(_binding(rule, feature, prop, component, access, row, words))

    bindings: dict[str, Binding] = {}
    fallbacks: dict[str, Binding] = {}
    command_only: list[Binding] = []  # losers that still take the capability's commands
    chosen: dict[tuple[str, str, str], Binding] = {}  # (component, capability, attribute or role)
    for b in sorted(candidates, key=lambda c: c.rank):
        # colour xy and hs are one payload key (`color`): one binding, both roles
        key = (b.component, b.capability, b.property if b.roles else (b.attribute or b.role))
        if key in chosen and chosen[key].property != b.property:
            # a better-ranked property already gives this attribute
            if b.settable and b.commands:
                command_only.append(b)
            if b.readable and b.decode is not None and b.fallback:
                fallbacks[b.property] = Binding(**{**_as_kwargs(b), "unless": chosen[key].property})
            continue
        if key in chosen:  # same payload key exposed twice (colour xy + hs): merge what they allow
            prev = chosen[key]
            b = Binding(**{**_as_kwargs(prev), "roles": prev.roles | b.roles, "commands": prev.commands | b.commands,
                           "settable": prev.settable or b.settable, "readable": prev.readable or b.readable})
        chosen[key] = b

    # component -> capability -> (attributes, commands, limits), made into CapabilitySupport at the end
    parts: dict[str, dict[str, tuple[set[str], set[str], dict[str, tuple[float | None, float | None]]]]] = {}
    setters: dict[tuple[str, str, str], Binding] = {}
    initial: list[tuple[str, str, str, Any]] = []
    winners = len(chosen)
    for index, b in enumerate((*chosen.values(), *command_only)):
        if index < winners and b.readable and (b.decode is not None or b.role == "action"):
            bindings[b.property] = b
        if b.settable and b.commands:
            for role in b.roles or {b.role}:
                if index < winners:
                    setters[(b.component, b.capability, role)] = b
                else:  # a loser takes the commands only where no winner does (a lock's `state`)
                    setters.setdefault((b.component, b.capability, role), b)
        caps = parts.setdefault(b.component, {})
        attrs, cmds, limits = caps.get(b.capability) or caps.setdefault(b.capability, (set(), set(), {}))
        if b.readable:
            attrs |= _attributes_of(b)
        if b.settable:
            cmds |= b.commands
        new_limits = _limits_of(b, initial)
        if new_limits:
            limits.update(new_limits)
            if "kelvin" in new_limits:
                attrs |= {"min_kelvin", "max_kelvin"}
        if b.capability == "fan" and (b.role == "speed" or (b.role == "preset" and fan_speeds(b.values))):
            attrs.add("speed_steps")
    # capabilities that ended up with nothing to report or do (a write-only property we don't use) are left out
    components: dict[str, dict[str, CapabilitySupport]] = {}
    for comp, caps in parts.items():
        kept = {cap: CapabilitySupport(frozenset(attrs), frozenset(cmds), limits)
                for cap, (attrs, cmds, limits) in caps.items() if attrs or cmds}
        if kept:
            components[comp] = kept
    for implicit, binding in _IMPLICIT_BINDINGS.items():
        bindings.setdefault(implicit, binding)
    trimmed = _trim_entry({"definition": definition})["definition"] if definition else None
    notes = [f"not used: {', '.join(unused)}"] if unused else []
    return _Compiled(bindings, setters, components, initial, trimmed, fallbacks, notes)


def _as_kwargs(b: Binding) -> dict[str, Any]:
    return {slot: getattr(b, slot) for slot in Binding.__slots__}


def _binding(rule: Rule, feature: dict[str, Any], prop: str, component: str, access: int,
             row: UnitRow | None = None, words: dict[str, int] | None = None) -> Binding:
    values = feature.get("values")
    unit = feature.get("unit")
    _, scale, attribute, offset = row if row is not None else (None, 1.0, None, 0.0)
    decode = rule.decode
    if decode is not None and (scale != 1.0 or offset != 0.0):
        decode = _scaled(decode)
    return Binding(
        property=prop,
        component=component,
        capability=rule.capability,
        attribute=attribute or rule.attribute,
        decode=decode,
        role=rule.role,
        readable=bool(access & ACCESS_READABLE),
        settable=bool(access & ACCESS_SETTABLE),
        rank=rule.rank,
        commands=rule.commands,
        unit=unit if isinstance(unit, str) else None,
        value_min=_number_or_none(feature.get("value_min")),
        value_max=_number_or_none(feature.get("value_max")),
        value_on=feature.get("value_on", "ON"),
        value_off=feature.get("value_off", "OFF"),
        value_toggle=feature.get("value_toggle"),
        values=tuple(v for v in values if isinstance(v, str)) if isinstance(values, list) else (),
        roles=frozenset({rule.role}) if rule.capability == "color" else frozenset(),
        fallback=rule.fallback,
        multi=rule.multi,
        scale=scale,
        offset=offset,
        words=words if rule.role == "action" else None,
    )


def _scaled(decode: DecodeFn) -> DecodeFn:
    """``decode`` of the value converted to the canonical unit first (mA -> A, Wh -> kWh, °F -> °C)."""
    def scaled(raw: Any, b: Binding) -> Any:
        return decode(round(_finite(raw) * b.scale + b.offset, 9), b)
    return scaled


_IMPLICIT_BINDINGS.update(
    {name: _binding(_rules(name)[0], {}, name, "main", ACCESS_READABLE) for name in _IMPLICIT})


def _attributes_of(b: Binding) -> set[str]:
    if b.capability == "color":
        return ({"x", "y"} if "xy" in b.roles else set()) | ({"hue", "saturation"} if "hs" in b.roles else set())
    if b.role == "action":
        # A device whose actions are none of them presses (a lock's, a keypad's) has no button state: its
        # actions are still events, with the device's own word.
        if b.values and not any(action_to_press(v, b.words)[0] for v in b.values):
            return set()
        return {"last_event", "button"}
    if b.capability == "fan" and b.role == "preset":
        return {"preset", "speed_percent"} if fan_speeds(b.values) else {"preset"}
    if b.capability == "siren" and b.multi:
        return {"on", "tone"}
    return {b.attribute} if b.attribute else set()


def _limits_of(b: Binding, initial: list[tuple[str, str, str, Any]]) -> dict[str, tuple[float | None, float | None]]:
    if b.capability == "color_temperature" and b.value_min and b.value_max and b.value_min > 0:
        # The bulb's range in mireds, inverted: the warmest (max mired) is the lowest kelvin.
        low, high = round(_MIRED_PER_KELVIN / b.value_max), round(_MIRED_PER_KELVIN / b.value_min)
        if 1000 <= low <= high <= 20000:
            initial.append((b.component, "color_temperature", "min_kelvin", low))
            initial.append((b.component, "color_temperature", "max_kelvin", high))
            return {"kelvin": (low, high)}
    if b.role == "setpoint" and (b.value_min is not None or b.value_max is not None):
        return {"celsius": (b.value_min, b.value_max)}
    if b.capability == "fan" and b.role == "preset" and (speeds := fan_speeds(b.values)):
        initial.append((b.component, "fan", "speed_steps", len(speeds)))
    elif b.capability == "fan" and b.role == "speed" and b.unit != "%" and b.value_max and b.value_max >= 1:
        initial.append((b.component, "fan", "speed_steps", int(b.value_max)))
    return {}


# ---------------------------------------------------------------------------------------------- decoding


@dataclass(slots=True, init=False)
class Decoded:
    """What one MQTT message means. The adapter applies it to its context in this order."""

    upserts: list[DeviceInfo]
    removals: list[str]
    updates: list[Update]
    events: list[DeviceEventUpdate]
    availability: list[tuple[str, bool | None]]
    problems: list[str]
    notes: list[str]  # understood and deliberately not used (replay lists them)
    definitions_changed: bool

    def __init__(self) -> None:
        # One per message: written out, half the cost of the generated one's seven default factories.
        self.upserts, self.removals, self.updates, self.events = [], [], [], []
        self.availability, self.problems, self.notes = [], [], []
        self.definitions_changed = False

    def extend(self, other: Decoded) -> None:
        self.upserts += other.upserts
        self.removals += other.removals
        self.updates += other.updates
        self.events += other.events
        self.availability += other.availability
        self.problems += other.problems
        self.notes += other.notes
        self.definitions_changed = self.definitions_changed or other.definitions_changed


def parse_json(payload: bytes | str, limit: int = MAX_PAYLOAD_BYTES) -> Any:
    if len(payload) > limit:
        raise _bad(f"payload of {len(payload)} bytes is over the {limit // 1024} KiB limit")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise _bad(f"payload is not JSON ({err.msg}): {_short(payload[:60])}") from err


def _online_word(payload: bytes) -> bool | None:
    text = payload.strip().lower()
    if text in (b"online", b'"online"'):
        return True
    if text in (b"offline", b'"offline"'):
        return False
    return None


def decode_availability(payload: bytes) -> bool:
    """``{"state":"online"}`` (Z2M 2.x) or the legacy plain ``online``/``offline``."""
    word = _online_word(payload)
    if word is not None:
        return word
    try:
        data = parse_json(payload)
    except CodecError:
        data = None
    state = data.get("state") if isinstance(data, dict) else None
    if state == "online":
        return True
    if state == "offline":
        return False
    raise _bad(f"availability payload is neither online nor offline: {_short(payload[:80])}")


def decode_state(device: Z2MDevice, data: dict[str, Any], out: Decoded) -> None:
    """The hot path: one device state object into updates (and button events) appended to ``out``."""
    bindings = device.bindings
    fallbacks = device.fallbacks
    dev_id = device.id
    updates = out.updates
    for key, raw in data.items():
        b = bindings.get(key)
        # None: a property we don't model (update, power_outage_count, …), unless it is a fallback (see Rule)
        if b is None and (not fallbacks or (b := fallbacks.get(key)) is None or b.unless in data):
            continue
        try:
            if raw is None:
                # Reported, but unknown (Z2M's `"power": null` before the first reading).
                if b.attribute is not None and b.role != "action":
                    updates.append(Update(dev_id, b.component, b.capability, b.attribute, None))
            elif b.role == "action":
                _decode_action(device, b, raw, out)
            elif b.multi:
                for attribute, value in b.decode(raw, b):  # type: ignore[misc]
                    updates.append(Update(dev_id, b.component, b.capability, attribute, value))
            else:
                updates.append(Update(dev_id, b.component, b.capability, b.attribute, b.decode(raw, b)))  # type: ignore[arg-type,misc]
        except CodecError as err:
            out.problems.append(f"{SOURCE} {device.friendly_name!r}: {key}: {err}")


_LOCK_ACTION = re.compile(r"(^|_)(un)?lock(_|$)")


def _decode_action(device: Z2MDevice, b: Binding, raw: Any, out: Decoded) -> None:
    if raw == "":
        return  # Z2M clears `action` right after publishing it
    if not isinstance(raw, str):
        raise _bad(f"expected an action string, got {_short(raw)}")
    kind, button = action_to_press(raw, b.words)
    if kind is None and _LOCK_ACTION.search(raw) and "lock" in device.info.components.get(b.component, {}):
        # A lock says how it was operated (manual_lock, key_unlock, lock_failure_invalid_pin_or_id, …).
        source = raw.split("_", 1)[0] if raw.split("_", 1)[0] not in ("lock", "unlock") else "unknown"
        out.events.append(DeviceEventUpdate(device.id, b.component, "lock", "operated",
                                            {"source": source, "action": raw}))
        return
    data: dict[str, Any] = {"button": button, "action": raw}
    if kind is not None:
        data["kind"] = kind
        out.updates.append(Update(device.id, b.component, "button", "last_event", kind))
        out.updates.append(Update(device.id, b.component, "button", "button", button))
    # Not a press (a cube's rotate_left): still an event, with the native action and no kind.
    out.events.append(DeviceEventUpdate(device.id, b.component, "button", "pressed", data))


# ---------------------------------------------------------------------------------------------- encoding


def _setter(device: Z2MDevice, command: Command, role: str) -> Binding:
    b = device.setters.get((command.component, command.capability, role))
    if b is None:
        raise _bad(f"{device.friendly_name!r} has no settable {command.capability} "
                   f"({role}) on component {command.component!r}")
    return b


def _arg_number(command: Command, name: str) -> float:
    try:
        return _finite(command.args.get(name))
    except CodecError as err:
        raise _bad(f"{command.capability}.{command.command}: argument {name}: {err}") from err


def _enc_on_off(value_attr: str, default: str) -> Callable[[Z2MDevice, Command], dict[str, Any]]:
    def encode(device: Z2MDevice, command: Command) -> dict[str, Any]:
        b = _setter(device, command, "on")
        value = getattr(b, value_attr)
        return {b.property: default if value is None else value}
    return encode


def _enc_level(device: Z2MDevice, command: Command) -> dict[str, Any]:
    b = _setter(device, command, "percent")
    top = b.value_max or 254
    percent = _in_range(_arg_number(command, "percent"), 0, 100)
    out: dict[str, Any] = {b.property: round(percent * top / 100)}
    if command.args.get("transition_s") is not None:
        out["transition"] = _in_range(_arg_number(command, "transition_s"), 0, 3600)
    return out


def _enc_color_temp(device: Z2MDevice, command: Command) -> dict[str, Any]:
    b = _setter(device, command, "kelvin")
    kelvin = _in_range(_arg_number(command, "kelvin"), 1000, 20000)
    mired = round(_MIRED_PER_KELVIN / kelvin)
    # Clamp to the bulb's own range: Z2M would clamp anyway, this keeps the expected state honest.
    if b.value_min is not None:
        mired = max(mired, round(b.value_min))
    if b.value_max is not None:
        mired = min(mired, round(b.value_max))
    return {b.property: mired}


def _enc_color_hs(device: Z2MDevice, command: Command) -> dict[str, Any]:
    b = _setter(device, command, "hs")
    return {b.property: {"hue": _in_range(_arg_number(command, "hue"), 0, 360),
                         "saturation": _in_range(_arg_number(command, "saturation"), 0, 100)}}


def _enc_color_xy(device: Z2MDevice, command: Command) -> dict[str, Any]:
    b = _setter(device, command, "xy")
    return {b.property: {"x": _in_range(_arg_number(command, "x"), 0, 1),
                         "y": _in_range(_arg_number(command, "y"), 0, 1)}}


def _enc_setpoint(device: Z2MDevice, command: Command) -> dict[str, Any]:
    b = _setter(device, command, "setpoint")
    celsius = _in_range(_arg_number(command, "celsius"), b.value_min, b.value_max)
    return {b.property: celsius}


def _enc_choice(role: str, arg: str) -> Callable[[Z2MDevice, Command], dict[str, Any]]:
    def encode(device: Z2MDevice, command: Command) -> dict[str, Any]:
        b = _setter(device, command, role)
        value = command.args.get(arg)
        if not isinstance(value, str) or (b.values and value not in b.values):
            allowed = ", ".join(b.values) or "?"
            raise _bad(f"{device.friendly_name!r} does not support {arg} {_short(value)} (it supports: {allowed})")
        return {b.property: value}
    return encode


def _enc_cover_state(word: str) -> Callable[[Z2MDevice, Command], dict[str, Any]]:
    def encode(device: Z2MDevice, command: Command) -> dict[str, Any]:
        b = _setter(device, command, "state")
        value = next((v for v in b.values if v.upper() == word), word)
        return {b.property: value}
    return encode


def _enc_percent(role: str) -> Callable[[Z2MDevice, Command], dict[str, Any]]:
    def encode(device: Z2MDevice, command: Command) -> dict[str, Any]:
        b = _setter(device, command, role)
        percent = _in_range(_arg_number(command, "percent"), 0, 100)
        return {b.property: int(percent) if float(percent).is_integer() else percent}
    return encode


def _enc_lock(value_attr: str) -> Callable[[Z2MDevice, Command], dict[str, Any]]:
    def encode(device: Z2MDevice, command: Command) -> dict[str, Any]:
        b = _setter(device, command, "state")
        return {b.property: getattr(b, value_attr)}
    return encode


def _enc_fan_speed(device: Z2MDevice, command: Command) -> dict[str, Any]:
    percent = _in_range(_arg_number(command, "percent"), 0, 100)
    numeric = device.setters.get((command.component, "fan", "speed"))
    if numeric is not None:  # a fan_speed number (0..value_max, or a percentage)
        top = numeric.value_max if numeric.unit != "%" and numeric.value_max else 100
        return {numeric.property: math.ceil(percent * top / 100 - 1e-9)}
    b = _setter(device, command, "preset")
    speeds = fan_speeds(b.values) or list(_FAN_SPEEDS[::2])
    if percent == 0:
        if b.values and "off" not in b.values:
            raise _bad(f"{device.friendly_name!r} has no 'off' fan mode")
        return {b.property: "off"}
    return {b.property: speeds[min(len(speeds) - 1, math.ceil(percent / 100 * len(speeds) - 1e-9) - 1)]}


def _enc_siren(on: bool) -> Callable[[Z2MDevice, Command], dict[str, Any]]:
    def encode(device: Z2MDevice, command: Command) -> dict[str, Any]:
        b = device.setters.get((command.component, "siren", "on"))
        tone = command.args.get("tone")
        if b is None:
            w = _setter(device, command, "warning")
            return {w.property: _warning(w, on, command)}
        if b.values:  # an alarm word: the tone asked for, else the first that sounds
            if not on:
                return {b.property: next((v for v in b.values if v.lower() in _ALARM_OFF), "off")}
            sounds = [v for v in b.values if v.lower() not in _ALARM_OFF]
            if tone is not None and tone not in sounds:
                raise _bad(f"{device.friendly_name!r} has no tone {_short(tone)} (it has: {', '.join(sounds)})")
            return {b.property: tone or (sounds[0] if sounds else "on")}
        value = b.value_on if on else b.value_off
        return {b.property: value if value is not None else on}
    return encode


_WARNING_LEVELS = ("low", "medium", "high", "very_high")


def _warning(w: Binding, on: bool, command: Command) -> dict[str, Any]:
    """An IAS warning device's command: mode (the tone), level (from volume_percent), strobe, duration."""
    if not on:
        return {"mode": "stop"}
    tone = command.args.get("tone") or "emergency"
    volume = command.args.get("volume_percent")
    level = _WARNING_LEVELS[min(3, int(volume // 25))] if isinstance(volume, (int, float)) else "high"
    duration = command.args.get("duration_s")
    return {"mode": tone, "level": level, "strobe": True,
            "duration": int(duration) if isinstance(duration, (int, float)) else 60}


def _enc_trigger(role: str, default: str) -> Callable[[Z2MDevice, Command], dict[str, Any]]:
    def encode(device: Z2MDevice, command: Command) -> dict[str, Any]:
        b = _setter(device, command, role)
        return {b.property: b.values[0] if b.values else default}
    return encode


#: (capability, command) -> encoder producing the JSON object for <friendly_name>/set
ENCODERS: dict[tuple[str, str], Callable[[Z2MDevice, Command], dict[str, Any]]] = {
    ("on_off", "on"): _enc_on_off("value_on", "ON"),
    ("on_off", "off"): _enc_on_off("value_off", "OFF"),
    ("on_off", "toggle"): _enc_on_off("value_toggle", "TOGGLE"),
    ("level", "set"): _enc_level,
    ("color_temperature", "set"): _enc_color_temp,
    ("color", "set"): _enc_color_hs,
    ("color", "set_xy"): _enc_color_xy,
    ("thermostat", "set_target"): _enc_setpoint,
    ("thermostat", "set_mode"): _enc_choice("mode", "mode"),
    ("cover", "open"): _enc_cover_state("OPEN"),
    ("cover", "close"): _enc_cover_state("CLOSE"),
    ("cover", "stop"): _enc_cover_state("STOP"),
    ("cover", "set_position"): _enc_percent("position_percent"),
    ("cover", "set_tilt"): _enc_percent("tilt_percent"),
    ("lock", "lock"): _enc_lock("value_on"),
    ("lock", "unlock"): _enc_lock("value_off"),
    ("fan", "set_preset"): _enc_choice("preset", "preset"),
    ("fan", "set_speed"): _enc_fan_speed,
    ("identify", "identify"): _enc_trigger("identify", "identify"),
    ("smoke_co_alarm", "self_test"): _enc_trigger("selftest", ""),
    ("siren", "on"): _enc_siren(True),
    ("siren", "off"): _enc_siren(False),
    ("valve", "set_position"): _enc_percent("position_percent"),
}


def encode_command(device: Z2MDevice, command: Command) -> dict[str, Any]:
    """The JSON object to publish on ``<base>/<friendly_name>/set``. Raises CodecError if the device cannot."""
    encoder = ENCODERS.get((command.capability, command.command))
    if encoder is None:
        raise _bad(f"zigbee2mqtt cannot send {command.capability}.{command.command}")
    if not isinstance(command.args, dict):
        raise _bad("command arguments must be an object")
    return encoder(device, command)


# ---------------------------------------------------------------------------------------------- codec

_BRIDGE_IGNORED = frozenset({"info", "logging", "event", "definitions", "extensions", "health", "config",
                             "converters", "options"})


class Zigbee2MqttCodec:
    """Everything one Zigbee2MQTT bridge says, decoded. Pure: holds only what the bridge told it."""

    def __init__(self, base_topic: str = "zigbee2mqtt") -> None:
        self.base_topic = base_topic
        self._prefix = base_topic + "/"
        self.by_name: dict[str, Z2MDevice] = {}
        self._by_topic: dict[str, Z2MDevice] = {}  # <base>/<friendly_name> -> its device (the hot path)
        self.by_id: dict[str, Z2MDevice] = {}
        self.group_names: set[str] = set()
        self.devices_seen = False  # a live bridge/devices arrived (not just restored definitions)
        self.bridge_online: bool | None = None
        self._availability: dict[str, bool] = {}  # device id -> last availability the bridge reported
        self._known_ids: set[str] = set()  # devices the hub has for us (restored), to prune on bridge/devices
        self._pending: dict[str, bytes] = {}
        self._compiled: dict[tuple[int, int], _Compiled] = {}  # see compile_device
        self._noted: set[str] = set()  # models whose unused properties were said (once per model)

    # -- setup

    def restore(self, entries: Any, known_ids: Iterable[str] = ()) -> Decoded:
        """Definitions remembered from a previous run, so restored devices take commands at once."""
        self._known_ids = set(known_ids)
        out = Decoded()
        if isinstance(entries, list):
            self._apply_devices(entries, out, prune=False)
        return out

    def definitions(self) -> list[dict[str, Any]]:
        return [device.entry for device in self.by_id.values()]

    def device(self, device_id: str) -> Z2MDevice | None:
        return self.by_id.get(device_id)

    # -- decoding

    def decode(self, topic: str, payload: bytes) -> Decoded:
        out = Decoded()
        device = self._by_topic.get(topic)
        if device is not None:  # the hot path: <base>/<friendly_name>
            self._decode_device_state(device, payload, out)
            return out
        if not topic.startswith(self._prefix):
            out.problems.append(f"{SOURCE}: topic {topic!r} is not under {self._prefix!r}")
            return out
        rest = topic[len(self._prefix):]
        if rest.startswith("bridge/"):
            self._decode_bridge(rest[7:], payload, out)
            return out
        self._decode_other(topic, rest, payload, out)
        return out

    def _decode_device_state(self, device: Z2MDevice, payload: bytes, out: Decoded) -> None:
        if not payload:
            return  # a retained message being cleared
        try:
            data = parse_json(payload)
        except CodecError as err:
            out.problems.append(f"{SOURCE} {device.friendly_name!r}: {err}")
            return
        if not isinstance(data, dict):
            out.problems.append(f"{SOURCE} {device.friendly_name!r}: expected a JSON object, got {_short(data)}")
            return
        device.json_state = True
        decode_state(device, data, out)

    def _decode_bridge(self, sub: str, payload: bytes, out: Decoded) -> None:
        if sub == "state":
            try:
                online = decode_availability(payload)
            except CodecError as err:
                out.problems.append(f"{SOURCE} bridge/state: {err}")
                return
            self._set_bridge_online(online, out)
        elif sub == "devices":
            try:
                entries = parse_json(payload, MAX_BRIDGE_PAYLOAD_BYTES)
            except CodecError as err:
                out.problems.append(f"{SOURCE} bridge/devices: {err}")
                return
            if not isinstance(entries, list):
                out.problems.append(f"{SOURCE} bridge/devices: expected a JSON array, got {_short(entries)}")
                return
            self._apply_devices(entries, out, prune=True)
        elif sub == "groups":
            self._apply_groups(payload, out)
        # bridge/info, logging, event, response/*, request/*, definitions, extensions, …: not ours to decode.

    def _decode_other(self, topic: str, rest: str, payload: bytes, out: Decoded) -> None:
        if rest in self.group_names:
            return
        name, suffix = self._split_known(rest)
        if name is None:
            if rest.endswith(("/set", "/get")) or "/set/" in rest or "/get/" in rest:
                return  # commands (ours or someone else's) to a device we don't know (yet)
            if not self.devices_seen:
                self._buffer(topic, payload)
                return
            out.problems.append(f"{SOURCE}: message for unknown device topic {topic!r}")
            return
        device = self.by_name.get(name)
        head = suffix.split("/", 1)[0]
        if suffix == "availability":
            if device is not None:
                self._decode_availability(device, payload, out)
        elif head in ("set", "get") or suffix.endswith(("/set", "/get")) or "/set/" in suffix:
            return  # <name>/set, <name>/get, <name>/l1/set, <name>/set/<attr>: commands, ours echoed
        elif device is not None and suffix in device.bindings and payload and not device.json_state:
            # `output: attribute`: <name>/<property> with the raw value. Once the device's JSON state has
            # been seen, these repeat it: a button press would be two presses.
            try:
                raw: Any = parse_json(payload)
            except CodecError:
                raw = payload.decode("utf-8", "replace")
            decode_state(device, {suffix: raw}, out)

    def _split_known(self, rest: str) -> tuple[str | None, str]:
        """The longest known friendly name (device or group) that ``rest`` starts with, and what follows.
        Names contain '/' (``livingroom/lights/bulb1``), so only the known names can tell where one ends."""
        cut = len(rest)
        while True:
            cut = rest.rfind("/", 0, cut)
            if cut <= 0:
                return None, ""
            head = rest[:cut]
            if head in self.by_name or head in self.group_names:
                return head, rest[cut + 1:]

    def _decode_availability(self, device: Z2MDevice, payload: bytes, out: Decoded) -> None:
        if not payload:
            return
        try:
            online = decode_availability(payload)
        except CodecError as err:
            out.problems.append(f"{SOURCE} {device.friendly_name!r}/availability: {err}")
            return
        self._availability[device.id] = online
        out.availability.append((device.id, online))

    def _set_bridge_online(self, online: bool, out: Decoded) -> None:
        self.bridge_online = online
        for dev_id in self.by_id:
            # An offline bridge means no device is reachable; back online, each is what it last said (or unknown).
            out.availability.append((dev_id, False if not online else self._availability.get(dev_id)))

    def _apply_groups(self, payload: bytes, out: Decoded) -> None:
        try:
            groups = parse_json(payload, MAX_BRIDGE_PAYLOAD_BYTES)
        except CodecError as err:
            out.problems.append(f"{SOURCE} bridge/groups: {err}")
            return
        if isinstance(groups, list):
            self.group_names = {g["friendly_name"] for g in groups
                                if isinstance(g, dict) and isinstance(g.get("friendly_name"), str)}

    def _apply_devices(self, entries: list[Any], out: Decoded, *, prune: bool) -> None:
        devices: dict[str, Z2MDevice] = {}
        for entry in entries:
            try:
                device = compile_device(entry, self._compiled)
            except CodecError as err:
                out.problems.append(f"{SOURCE} bridge/devices: {err}")
                continue
            except Exception as err:  # a definition shape we never saw must not lose the other devices
                out.problems.append(f"{SOURCE} bridge/devices: cannot use {_short(entry)}: {err!r}")
                continue
            if device is not None:
                devices[device.id] = device
        if prune:
            gone = (set(self.by_id) | self._known_ids) - set(devices)
            out.removals.extend(sorted(gone))
            for dev_id in gone:
                self._availability.pop(dev_id, None)
            self._known_ids = set()
        changed = [d for d in devices.values() if self._changed(d)]
        self.by_id = devices if prune else {**self.by_id, **devices}
        self.by_name = {d.friendly_name: d for d in self.by_id.values()}
        self._by_topic = {self._prefix + name: d for name, d in self.by_name.items()}
        for device in changed:
            out.upserts.append(device.info)
            out.updates.extend(device.initial)
            model = device.info.model or device.friendly_name
            if device.notes and model not in self._noted and len(self._noted) < MAX_NOTED_MODELS:
                self._noted.add(model)
                out.notes.extend(f"{SOURCE} {model}: {note}" for note in device.notes)
        out.definitions_changed = prune and (bool(changed) or bool(out.removals))
        if prune and not self.devices_seen:
            self.devices_seen = True
            pending, self._pending = self._pending, {}
            for topic, payload in pending.items():
                out.extend(self.decode(topic, payload))

    def _changed(self, device: Z2MDevice) -> bool:
        old = self.by_id.get(device.id)
        return old is None or old.entry != device.entry or device.id in self._known_ids

    def _buffer(self, topic: str, payload: bytes) -> None:
        if topic in self._pending or len(self._pending) < MAX_PENDING_TOPICS:
            self._pending.pop(topic, None)
            self._pending[topic] = payload

    # -- encoding

    def encode(self, command: Command) -> tuple[str, bytes]:
        """(topic, payload) that carries out ``command``. Raises CodecError if it cannot be sent."""
        device = self.by_id.get(command.device_id)
        if device is None:
            raise _bad(f"{command.device_id} is not (or no longer) in this bridge's bridge/devices")
        body = encode_command(device, command)
        return f"{self._prefix}{device.friendly_name}/set", orjson.dumps(body)
