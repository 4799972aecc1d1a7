"""The Tasmota MQTT convention as a pure codec: topics and payloads in, typed updates out; commands in,
``cmnd/<topic>/<Command>`` messages out.

No I/O, no clock, no globals that change: :class:`TasmotaCodec` holds only what the devices said (native
discovery, telemetry), so replay, the unit tests and the fuzzers drive it exactly as the adapter does.

**Topics.** Tasmota's FullTopic (default ``%prefix%/%topic%/``; the swapped ``%topic%/%prefix%/`` and longer
forms work too) with the prefixes ``cmnd``/``stat``/``tele``: ``tele/<t>/STATE`` (``POWER``, ``POWER1..n``,
``Dimmer``, ``CT``, ``HSBColor``, ``Wifi``), ``tele/<t>/SENSOR`` (``ENERGY`` and sensor blocks such as
``AM2301``, ``BME280``, ``DS18B20-1``, ``SI7021`` with ``TempUnit``/``PressureUnit``), ``tele/<t>/LWT``
(``Online``/``Offline``), ``stat/<t>/RESULT``, ``stat/<t>/POWER<n>``, ``stat/<t>/STATUS8|10`` (``StatusSNS``)
and ``STATUS11`` (``StatusSTS``). Native discovery ``tasmota/discovery/<MAC>/config`` and ``…/sensors`` says
which relays, lights and shutters a device has, its own FullTopic and prefixes, and its names; a device that
never announced itself (discovery off) is still picked up from its telemetry.

**Devices and components.** Device id ``tasmota:<topic>`` (lowercase). Relay *n* (``POWER<n>``, and ``POWER``
for the first) is component ``main`` for *n* = 1 and ``l<n>`` otherwise, named after the relay number so that
``POWER3`` is always ``l3``. A light's ``Dimmer``/``CT``/``HSBColor`` belong to the component of its relay.
Shutter *k* is ``main`` when the device has no relay of its own, else ``shutter<k>``. Energy channels
(``"Power": [a, b]``) follow the relay rule (``main``, ``l2``, …). Sensor blocks: the first block of a kind
goes to ``main``; a block whose attributes ``main`` already has (a second DS18B20) gets a component named after
it, lowercased (``ds18b20-2``); the ESP32 chip's own temperature is always ``esp32``.

**Commands.** ``on``/``off``/``toggle`` -> ``cmnd/<t>/POWER<n>`` with the device's own words (``ON``, ``OFF``,
``TOGGLE`` unless discovery says otherwise); ``level.set`` -> ``cmnd/<t>/Dimmer <0-100>``;
``color_temperature.set`` -> ``cmnd/<t>/CT <153-500 mireds>``; covers -> ``ShutterOpen<k>``,
``ShutterClose<k>``, ``ShutterStop<k>``, ``ShutterPosition<k> <percent>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.mqtt.tasmota_topics import DEFAULT_FULL_TOPIC, subscription_filters
from adapters.mqtt.tasmota_topics import fill_full_topic as _fill
from gateway.sdk import CapabilitySupport, CodecError, Command, DeviceInfo, Update, capability, topic_matches

__all__ = [
    "DEFAULT_FULL_TOPIC",
    "ENERGY_FIELDS",
    "MAX_PAYLOAD_BYTES",
    "SENSOR_FIELDS",
    "SOURCE",
    "Decoded",
    "TasmotaCodec",
    "TasmotaDevice",
    "relay_component",
]

SOURCE = "tasmota"
DEFAULT_PREFIXES = ("cmnd", "stat", "tele")
# A Tasmota telemetry message is at most a few KiB (MQTT_MAX_PACKET_SIZE is 1200 by default).
MAX_PAYLOAD_BYTES = 64 * 1024
# Devices seen only through telemetry are bounded: a flood of junk topics must not grow memory.
MAX_DEVICES = 5000

RL_RELAY, RL_LIGHT, RL_SHUTTER = 1, 2, 3
FAN_COMPONENT = "fan"
# lt_st: 1 dimmer, 2 cold/warm, 3 RGB, 4 RGBW, 5 RGBCW
_LIGHT_CT = frozenset({2, 5})
_LIGHT_COLOR = frozenset({3, 4, 5})
# Tasmota's CT range in mireds (153..500, the same as Home Assistant's default).
CT_MIN_MIREDS, CT_MAX_MIREDS = 153, 500
_MIRED_PER_KELVIN = 1_000_000

_POWER_KEY = re.compile(r"^POWER(\d{0,2})$")
_SHUTTER_KEY = re.compile(r"^Shutter(\d)$")


def relay_component(number: int) -> str:
    """Relay 1 is ``main``, relay n is ``l<n>`` (DESIGN.md contract 2)."""
    return "main" if number <= 1 else f"l{number}"


def _bad(why: str) -> CodecError:
    return CodecError(why)


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        if isinstance(raw, str):
            try:
                raw = float(raw)
            except ValueError:
                raise _bad(f"expected a number, got {_short(raw)}") from None
        else:
            raise _bad(f"expected a number, got {_short(raw)}")
    if not math.isfinite(raw):
        raise _bad(f"expected a finite number, got {raw}")
    return raw


def _f_to_c(value: float) -> float:
    return round((value - 32) * 5 / 9, 2)


# Unit words Tasmota uses (TempUnit, PressureUnit) -> to canonical.
_TEMP_UNITS = {"C": lambda v: v, "F": _f_to_c, "K": lambda v: round(v - 273.15, 2)}
# 1 mmHg = 1.333224 hPa, 1 inHg = 33.8639 hPa
_PRESSURE_UNITS = {"hPa": lambda v: v, "mmHg": lambda v: round(v * 1.333224, 1),
                   "inHg": lambda v: round(v * 33.8639, 1)}


@dataclass(frozen=True, slots=True)
class Field:
    capability: str
    attribute: str
    unit_kind: str = ""  # "temp" / "pressure": converted with the payload's TempUnit / PressureUnit
    rank: int = 0  # when two fields of one block give the same attribute, the lower rank wins


#: key inside a sensor block -> attribute. Supporting a new sensor value is adding a row.
SENSOR_FIELDS: dict[str, Field] = {
    "Temperature": Field("temperature", "celsius", "temp"),
    "Humidity": Field("humidity", "percent"),
    "Pressure": Field("pressure", "hpa", "pressure"),
    "Illuminance": Field("illuminance", "lux"),
    "CarbonDioxide": Field("air_quality", "co2_ppm"),
    "eCO2": Field("air_quality", "co2_ppm", rank=1),
    "TVOC": Field("air_quality", "voc_ppb"),
    "PM2.5": Field("air_quality", "pm25_ugm3"),
    "PM10": Field("air_quality", "pm10_ugm3"),
}

#: key inside the ENERGY block -> attribute (Tasmota: Total kWh, Power W, Voltage V, Current A, Frequency Hz).
ENERGY_FIELDS: dict[str, Field] = {
    "Total": Field("energy_meter", "kwh"),
    "ExportActive": Field("energy_meter", "exported_kwh"),
    "Power": Field("power_meter", "watts"),
    "Voltage": Field("power_meter", "volts"),
    "Current": Field("power_meter", "amps"),
    "Factor": Field("power_meter", "power_factor"),
    "Frequency": Field("power_meter", "hertz"),
}

# Blocks that are never "the room's" sensor: the ESP32's die temperature.
_OWN_COMPONENT_BLOCKS = {"ESP32": "esp32", "ESP8266": "esp8266"}
# An NTC on the ADC (block ANALOG) of a device that meters what its relays switch is the board's own
# thermistor (Shelly 1PM, 2.5, Plug S, Dimmer 2 templates): 60-70 °C is normal there, so it gets a component of
# its own ("analog") instead of being the room's temperature. Without a meter (NSPanel) it is the room's.
_BOARD_SENSOR_BLOCK = "ANALOG"
# Tasmota numbers a block's fields when it has several of a kind (two ADC inputs: Temperature1, Temperature2).
_NUMBERED = re.compile(r"([A-Za-z]+)[0-9]{1,2}")


def sensor_field(name: str) -> Field | None:
    """The field of a key inside a sensor block: `Temperature`, or a numbered one, `Temperature1`."""
    found = SENSOR_FIELDS.get(name)
    if found is None and (numbered := _NUMBERED.fullmatch(name)) is not None:
        found = SENSOR_FIELDS.get(numbered.group(1))
    return found


def _spec_check(cap: str, attr: str, value: Any) -> None:
    spec = capability(cap)
    problem = spec.attributes[attr].check(value) if spec is not None and attr in spec.attributes else "unknown"
    if problem is not None:
        raise _bad(f"{cap}.{attr}: {problem}")


# ---------------------------------------------------------------------------------------------- devices


@dataclass(slots=True)
class TasmotaDevice:
    """One Tasmota device: what discovery and telemetry told us."""

    topic: str  # as published (case matters on MQTT)
    id: str
    cmnd_base: str  # "cmnd/<t>/" (ends with /)
    name: str
    mac: str | None = None
    model: str | None = None
    sw_version: str | None = None
    discovered: bool = False
    relays: dict[int, int] = field(default_factory=dict)  # relay number -> RL_RELAY/RL_LIGHT
    light_relay: int | None = None
    light_subtype: int = 0
    shutters: set[int] = field(default_factory=set)
    # Relays that drive a shutter's motor (discovery's `rl` type 3; without discovery Tasmota's default,
    # ShutterRelay<n> = 2n-1: relays 2n-1 and 2n): not switches of their own, the cover says what they do.
    shutter_relays: set[int] = field(default_factory=set)
    told_zigbee: bool = False  # the user was told, once, that its ZbReceived messages are not read
    fan: bool = False  # a Sonoff iFan's fan (FanSpeed 0-3), component "fan"
    words: tuple[str, str, str] = ("OFF", "ON", "TOGGLE")
    online_word: str = "Online"
    offline_word: str = "Offline"
    # (block name, field key, channel index or None) -> component
    sensor_layout: dict[str, str] = field(default_factory=dict)
    energy_channels: int = 0
    energy_fields: set[str] = field(default_factory=set)
    seen_state: set[str] = field(default_factory=set)  # Dimmer/CT/HSBColor/Wifi keys seen without discovery
    bases: dict[str, str] = field(default_factory=dict)  # "stat"/"tele" -> topic base (ends with /)
    info: DeviceInfo | None = None

    def shutter_component(self, number: int) -> str:
        return "main" if number == 1 and not self.relays else f"shutter{number}"

    def light_component(self) -> str | None:
        return relay_component(self.light_relay) if self.light_relay is not None else None


def _support(caps: dict[str, dict[str, CapabilitySupport]], component: str, cap: str,
             attrs: Iterable[str] = (), cmds: Iterable[str] = (),
             limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
    comp = caps.setdefault(component, {})
    old = comp.get(cap)
    if old is None:
        comp[cap] = CapabilitySupport(frozenset(attrs), frozenset(cmds), dict(limits or {}))
    else:
        comp[cap] = CapabilitySupport(old.attributes | frozenset(attrs), old.commands | frozenset(cmds),
                                      {**old.limits, **(limits or {})})


def _device_info(device: TasmotaDevice) -> DeviceInfo:
    caps: dict[str, dict[str, CapabilitySupport]] = {}
    for number in sorted(device.relays):
        _support(caps, relay_component(number), "on_off", ["on"], ["on", "off", "toggle"])
    light = device.light_component()
    if light is not None:
        subtype = device.light_subtype
        if subtype >= 1 or "Dimmer" in device.seen_state:
            _support(caps, light, "level", ["percent"], ["set"])
        if subtype in _LIGHT_CT or "CT" in device.seen_state:
            kelvin = (round(_MIRED_PER_KELVIN / CT_MAX_MIREDS), round(_MIRED_PER_KELVIN / CT_MIN_MIREDS))
            _support(caps, light, "color_temperature", ["kelvin"], ["set"], {"kelvin": kelvin})
        if subtype in _LIGHT_COLOR or "HSBColor" in device.seen_state:
            _support(caps, light, "color", ["hue", "saturation"])
    for number in sorted(device.shutters):
        _support(caps, device.shutter_component(number), "cover", ["position_percent", "motion"],
                 ["open", "close", "stop", "set_position"])
    for key, component in device.sensor_layout.items():
        f = _field_of(key)
        if f is not None:
            _support(caps, component, f.capability, [f.attribute])
    if "Wifi" in device.seen_state:
        _support(caps, "main", "connectivity", ["rssi_dbm"])
    if device.fan:
        _support(caps, FAN_COMPONENT, "fan", ["on", "speed_percent"], ["set_speed"])
    return DeviceInfo(
        id=device.id, name=device.name, source=SOURCE, components=caps or {"main": {}},
        manufacturer="Tasmota", model=device.model, sw_version=device.sw_version, mac=device.mac,
        aliases=(device.topic,),
    )


# ---------------------------------------------------------------------------------------------- decoding


@dataclass(slots=True)
class Decoded:
    """What one MQTT message means. The adapter applies it to its context in this order."""

    upserts: list[DeviceInfo] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    availability: list[tuple[str, bool | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    topics_changed: bool = False


def parse_json(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _bad(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES // 1024} KiB limit")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise _bad(f"payload is not JSON ({err.msg}): {_short(payload[:60])}") from None


def _full_topic_regex(full_topic: str, prefixes: Iterable[str]) -> re.Pattern[str]:
    pattern = re.escape(full_topic if full_topic.endswith("/") else full_topic + "/")
    pattern = pattern.replace(re.escape("%prefix%"), "(?P<prefix>" + "|".join(map(re.escape, prefixes)) + ")")
    pattern = pattern.replace(re.escape("%topic%"), r"(?P<topic>[^/+#]+)")
    pattern = pattern.replace(re.escape("%hostname%"), r"[^/+#]+").replace(re.escape("%id%"), r"[^/+#]+")
    return re.compile(pattern + r"(?P<command>[^/]+)$")


class TasmotaCodec:
    """Everything the Tasmota devices on one broker said, decoded. Pure: holds only that."""

    def __init__(self, full_topic: str = DEFAULT_FULL_TOPIC, discovery_prefix: str = "tasmota/discovery") -> None:
        self.full_topic = full_topic
        self.discovery_prefix = discovery_prefix
        self._discovery_slash = discovery_prefix + "/"
        self._regex = _full_topic_regex(full_topic, ("stat", "tele"))
        self.static_filters = subscription_filters(full_topic)
        self.by_id: dict[str, TasmotaDevice] = {}
        self.by_topic: dict[str, TasmotaDevice] = {}
        self.by_mac: dict[str, TasmotaDevice] = {}
        # "<stat or tele base without the trailing />" -> (device, "stat"/"tele"), for discovered devices
        self._bases: dict[str, tuple[TasmotaDevice, str]] = {}
        self._extra_filters: set[str] = set()
        self._pending_sensors: dict[str, dict[str, Any]] = {}  # MAC -> /sensors "sn" before its /config
        self._lwt: dict[str, bool] = {}  # topic -> last LWT, for devices not created yet

    def filters(self) -> set[str]:
        return set(self.static_filters) | self._extra_filters | {self._discovery_slash + "#"}

    def device(self, device_id: str) -> TasmotaDevice | None:
        return self.by_id.get(device_id)

    # -- decoding

    def decode(self, topic: str, payload: bytes) -> Decoded:
        out = Decoded()
        base, _, command = topic.rpartition("/")
        entry = self._bases.get(base)
        if entry is not None:  # the hot path: a discovered device
            device, kind = entry
            self._decode_message(device, device.topic, kind, command, payload, out)
            return out
        if topic.startswith(self._discovery_slash):
            self._decode_discovery(topic[len(self._discovery_slash):], payload, out)
            return out
        match = self._regex.match(topic)
        if match is None:
            return out  # not a Tasmota topic (another convention sharing a filter)
        name = match.group("topic")
        self._decode_message(self.by_topic.get(name), name, match.group("prefix"), match.group("command"),
                             payload, out)
        return out

    def _decode_message(self, device: TasmotaDevice | None, name: str, kind: str, command: str, payload: bytes,
                        out: Decoded) -> None:
        if kind == "tele" and command == "LWT":
            self._decode_lwt(device, name, payload, out)
            return
        handler = None
        if kind == "tele":
            handler = {"STATE": "state", "SENSOR": "sensor"}.get(command)
        elif command == "RESULT":
            handler = "state"
        elif command in ("STATUS8", "STATUS10"):
            handler = "status_sns"
        elif command == "STATUS11":
            handler = "status_sts"
        elif _POWER_KEY.match(command):
            handler = "power"
        if handler is None:
            return  # INFO1, UPTIME, STATUS, LOGGING, …: nothing for the capability model
        if not payload:
            return  # a retained message being cleared
        if handler == "power":
            data: Any = {command: payload.decode("utf-8", "replace").strip()}
        else:
            try:
                data = parse_json(payload)
            except CodecError as err:
                out.problems.append(f"{SOURCE} {name!r} {command}: {err}")
                return
            if not isinstance(data, dict):
                out.problems.append(f"{SOURCE} {name!r} {command}: expected a JSON object, got {_short(data)}")
                return
            if handler == "status_sns":
                data, handler = data.get("StatusSNS"), "sensor"
            elif handler == "status_sts":
                data, handler = data.get("StatusSTS"), "state"
            if not isinstance(data, dict):
                return
        if device is None:
            device = self._device_from_telemetry(name, out)
            if device is None:
                return
        if handler == "sensor":
            self._decode_sensor(device, data, out)
        else:
            self._decode_state(device, data, out)

    def _decode_lwt(self, device: TasmotaDevice | None, name: str, payload: bytes, out: Decoded) -> None:
        word = payload.decode("utf-8", "replace").strip()
        online_word = device.online_word if device else "Online"
        offline_word = device.offline_word if device else "Offline"
        if word == online_word:
            online = True
        elif word == offline_word:
            online = False
        elif not word:
            return
        else:
            out.problems.append(f"{SOURCE} {name!r} LWT: expected {online_word!r} or {offline_word!r}, "
                                f"got {_short(word)}")
            return
        if device is None:
            if name in self._lwt or len(self._lwt) < MAX_DEVICES:
                self._lwt[name] = online
            return
        out.availability.append((device.id, online))

    def _device_from_telemetry(self, name: str, out: Decoded) -> TasmotaDevice | None:
        if len(self.by_id) >= MAX_DEVICES:
            out.problems.append(f"{SOURCE}: more than {MAX_DEVICES} devices; {name!r} ignored")
            return None
        device = TasmotaDevice(topic=name, id=f"{SOURCE}:{name.lower()}",
                               cmnd_base=_fill(self.full_topic, "cmnd", name), name=name)
        self._register(device)
        self._publish(device, out)
        online = self._lwt.pop(name, None)
        if online is not None:
            out.availability.append((device.id, online))
        return device

    def _register(self, device: TasmotaDevice) -> None:
        old = self.by_id.get(device.id)
        if old is not None:
            self._bases = {b: e for b, e in self._bases.items() if e[0] is not old}
        self.by_id[device.id] = device
        self.by_topic[device.topic] = device
        if device.mac:
            self.by_mac[device.mac.replace(":", "").upper()] = device

    def _publish(self, device: TasmotaDevice, out: Decoded) -> None:
        info = _device_info(device)
        if info != device.info:
            device.info = info
            out.upserts.append(info)

    # -- state (STATE, RESULT, POWERn, StatusSTS)

    def _decode_state(self, device: TasmotaDevice, data: dict[str, Any], out: Decoded) -> None:
        dev_id = device.id
        grew = False
        light: str | None = None
        if device.light_relay is None and any(k in data for k in ("Dimmer", "CT", "HSBColor")):
            # Tasmota puts a light after the relays: it is the last POWER<n> of the device.
            numbers = [int(m.group(1) or 1) for m in map(_POWER_KEY.match, data) if m is not None]
            device.light_relay = max([n for n in numbers if 1 <= n <= 32] or [1])
            device.relays[device.light_relay] = RL_LIGHT
            grew = True
        for key, raw in data.items():
            try:
                power = _POWER_KEY.match(key)
                if power is not None:
                    number = int(power.group(1) or 1)
                    if not 1 <= number <= 32 or number in device.shutter_relays:
                        continue
                    if number not in device.relays:
                        device.relays[number] = RL_RELAY
                        grew = True
                    out.updates.append(Update(dev_id, relay_component(number), "on_off", "on",
                                              self._power_word(device, raw)))
                elif key in ("Dimmer", "CT", "HSBColor"):
                    if device.light_relay is None:
                        device.light_relay = 1
                        device.relays.setdefault(1, RL_LIGHT)
                        grew = True
                    if key not in device.seen_state and not device.discovered:
                        device.seen_state.add(key)
                        grew = True
                    light = device.light_component() or "main"
                    out.updates += self._light_value(dev_id, light, key, raw)
                elif key == "FanSpeed":
                    # Sonoff iFan02/03/04 (Tasmota's iFan module): 0 off, 1-3 low/medium/high.
                    speed = _number(raw)
                    if speed not in (0, 1, 2, 3):
                        raise _bad(f"expected 0, 1, 2 or 3, got {_short(raw)}")
                    if not device.fan:
                        device.fan = True
                        grew = True
                    out.updates += [Update(dev_id, FAN_COMPONENT, "fan", "on", speed > 0),
                                    Update(dev_id, FAN_COMPONENT, "fan", "speed_percent", round(speed * 100 / 3))]
                elif key == "Wifi" and isinstance(raw, dict) and "Signal" in raw:
                    if "Wifi" not in device.seen_state:
                        device.seen_state.add("Wifi")
                        grew = True
                    dbm = _number(raw["Signal"])
                    _spec_check("connectivity", "rssi_dbm", dbm)
                    out.updates.append(Update(dev_id, "main", "connectivity", "rssi_dbm", dbm))
                else:
                    shutter = _SHUTTER_KEY.match(key)
                    if shutter is not None and isinstance(raw, dict):
                        number = int(shutter.group(1))
                        if number not in device.shutters:
                            device.shutters.add(number)
                            if not device.discovered:
                                motor = {2 * number - 1, 2 * number}
                                device.shutter_relays |= motor
                                for relay in motor:  # seen in a POWER before the shutter was known
                                    if device.relays.get(relay) == RL_RELAY:
                                        del device.relays[relay]
                            grew = True
                        out.updates += self._shutter_value(device, number, raw)
            except CodecError as err:
                out.problems.append(f"{SOURCE} {device.topic!r}: {key}: {err}")
        if grew:
            self._publish(device, out)  # the adapter applies upserts before updates

    @staticmethod
    def _power_word(device: TasmotaDevice, raw: Any) -> bool:
        if raw == device.words[1] or raw in ("ON", "1", 1):
            return True
        if raw == device.words[0] or raw in ("OFF", "0", 0):
            return False
        raise _bad(f"expected {device.words[1]!r} or {device.words[0]!r}, got {_short(raw)}")

    @staticmethod
    def _light_value(dev_id: str, component: str, key: str, raw: Any) -> list[Update]:
        if key == "Dimmer":
            percent = _number(raw)
            _spec_check("level", "percent", percent)
            return [Update(dev_id, component, "level", "percent", percent)]
        if key == "CT":
            mired = _number(raw)
            if not 50 <= mired <= 1000:
                raise _bad(f"CT {mired:g} mireds is not a colour temperature")
            return [Update(dev_id, component, "color_temperature", "kelvin", round(_MIRED_PER_KELVIN / mired))]
        parts = str(raw).split(",")
        if len(parts) != 3:
            raise _bad(f"HSBColor must be 'hue,saturation,brightness', got {_short(raw)}")
        hue, sat = _number(parts[0]), _number(parts[1])
        _spec_check("color", "hue", hue)
        _spec_check("color", "saturation", sat)
        return [Update(dev_id, component, "color", "hue", hue), Update(dev_id, component, "color", "saturation", sat)]

    @staticmethod
    def _shutter_value(device: TasmotaDevice, number: int, raw: dict[str, Any]) -> list[Update]:
        component = device.shutter_component(number)
        out: list[Update] = []
        if "Position" in raw:
            position = _number(raw["Position"])
            _spec_check("cover", "position_percent", position)
            out.append(Update(device.id, component, "cover", "position_percent", position))
        if "Direction" in raw:
            direction = _number(raw["Direction"])
            motion = "opening" if direction > 0 else "closing" if direction < 0 else "stopped"
            out.append(Update(device.id, component, "cover", "motion", motion))
        return out

    # -- sensors (SENSOR, StatusSNS, discovery "sn")

    def _layout_sensors(self, device: TasmotaDevice, data: dict[str, Any]) -> bool:
        """Give every (block, field) of ``data`` its component; True when the layout grew."""
        grew = False
        taken = {(f.capability, f.attribute) for key, comp in device.sensor_layout.items() if comp == "main"
                 for f in [_field_of(key)] if f is not None}
        for block, values in data.items():
            if not isinstance(values, dict):
                continue
            if block == "ENERGY":
                for name, value in values.items():
                    if name in ENERGY_FIELDS:
                        channels = len(value) if isinstance(value, list) else 1
                        for index in range(min(channels, 32)):
                            key = f"ENERGY\x00{name}\x00{index}"
                            if key not in device.sensor_layout:
                                device.sensor_layout[key] = relay_component(index + 1)
                                grew = True
                continue
            fields = [(n, f) for n in values if (f := sensor_field(n)) is not None]
            if not fields:
                continue
            if all(f"{block}\x00{n}" in device.sensor_layout for n, _ in fields):
                continue
            own = re.sub(r"[^a-z0-9_-]+", "_", block.lower())[:48]
            component = _OWN_COMPONENT_BLOCKS.get(block)
            if component is None and block == _BOARD_SENSOR_BLOCK and (
                    "ENERGY" in data or any(key.startswith("ENERGY\x00") for key in device.sensor_layout)):
                component = own
            attrs = {(f.capability, f.attribute) for _, f in fields}
            if component is None:
                component = "main" if not attrs & taken else own
            if component == "main":
                taken |= attrs
            given: set[tuple[str, str]] = set()
            for n, f in fields:
                key = f"{block}\x00{n}"
                # Two of a kind in one block (Temperature1, Temperature2): the second gets a component of its own.
                if (f.capability, f.attribute) in given and not (f.rank or n == "CarbonDioxide"):
                    where = f"{own}_{n.lower()}"[:48]
                else:
                    where = component
                    given.add((f.capability, f.attribute))
                if key not in device.sensor_layout:
                    device.sensor_layout[key] = where
                    grew = True
        return grew

    def _decode_sensor(self, device: TasmotaDevice, data: dict[str, Any], out: Decoded) -> None:
        if "ZbReceived" in data and not device.told_zigbee:
            # A Tasmota Zigbee bridge (Sonoff ZBBridge): its Zigbee devices' reports are not something a
            # user should find silently missing. Said once per bridge.
            device.told_zigbee = True
            out.problems.append(f"{SOURCE} {device.topic!r}: this is a Tasmota Zigbee bridge; the Zigbee devices "
                                f"it reports (ZbReceived) are not read by Hearth: pair them with Zigbee2MQTT")
        if self._layout_sensors(device, data):
            self._publish(device, out)
        shutters = {k: v for k, v in data.items() if _SHUTTER_KEY.match(k)}
        if shutters:
            self._decode_state(device, shutters, out)
        temp_unit = _TEMP_UNITS.get(str(data.get("TempUnit", "C")))
        pressure_unit = _PRESSURE_UNITS.get(str(data.get("PressureUnit", "hPa")))
        dev_id = device.id
        for block, values in data.items():
            if not isinstance(values, dict):
                continue
            if block == "ENERGY":
                for name, raw in values.items():
                    f = ENERGY_FIELDS.get(name)
                    if f is None:
                        continue
                    channels = raw if isinstance(raw, list) else [raw]
                    for index, value in enumerate(channels[:32]):
                        try:
                            number = _number(value)
                            _spec_check(f.capability, f.attribute, number)
                        except CodecError as err:
                            out.problems.append(f"{SOURCE} {device.topic!r}: ENERGY.{name}: {err}")
                            continue
                        component = device.sensor_layout.get(f"ENERGY\x00{name}\x00{index}", relay_component(index + 1))
                        out.updates.append(Update(dev_id, component, f.capability, f.attribute, number))
                continue
            has_co2 = "CarbonDioxide" in values
            for name, raw in values.items():
                f = sensor_field(name)
                if f is None or (name == "eCO2" and has_co2):
                    continue
                component = device.sensor_layout.get(f"{block}\x00{name}")
                if component is None:
                    continue
                if raw is None:  # null: the sensor could not be read this time; its value is unknown now
                    out.updates.append(Update(dev_id, component, f.capability, f.attribute, None))
                    continue
                try:
                    number = _number(raw)
                    if f.unit_kind == "temp":
                        if temp_unit is None:
                            raise _bad(f"TempUnit {data.get('TempUnit')!r} is not C, F or K")
                        number = temp_unit(number)
                    elif f.unit_kind == "pressure":
                        if pressure_unit is None:
                            raise _bad(f"PressureUnit {data.get('PressureUnit')!r} is not hPa, mmHg or inHg")
                        number = pressure_unit(number)
                    _spec_check(f.capability, f.attribute, number)
                except CodecError as err:
                    out.problems.append(f"{SOURCE} {device.topic!r}: {block}.{name}: {err}")
                    continue
                out.updates.append(Update(dev_id, component, f.capability, f.attribute, number))

    # -- native discovery

    def _decode_discovery(self, rest: str, payload: bytes, out: Decoded) -> None:
        mac, _, kind = rest.partition("/")
        if kind not in ("config", "sensors") or not re.fullmatch(r"[0-9A-Fa-f]{12}", mac):
            return
        mac = mac.upper()
        if kind == "sensors":
            self._discovery_sensors(mac, payload, out)
            return
        if not payload:
            device = self.by_mac.pop(mac, None)
            if device is not None:
                self._forget(device, out)
            return
        try:
            config = parse_json(payload)
        except CodecError as err:
            out.problems.append(f"{SOURCE} discovery {mac}: {err}")
            return
        try:
            device = self._compile_discovery(mac, config)
        except CodecError as err:
            out.problems.append(f"{SOURCE} discovery {mac}: {err}")
            return
        old = self.by_mac.get(mac)
        if old is not None and old.topic != device.topic:
            self._forget(old, out)
        previous = self.by_id.get(device.id)
        if previous is not None:
            # keep what telemetry already taught us about its sensors
            device.sensor_layout = previous.sensor_layout
            device.info = previous.info
        self._register(device)
        for kind_name, base in device.bases.items():
            self._bases[base.rstrip("/")] = (device, kind_name)
            if not any(topic_matches(f, base + "X") for f in self.static_filters):
                self._extra_filters.add(base + "+")
                out.topics_changed = True
        sensors = self._pending_sensors.pop(mac, None)
        if sensors is not None:
            self._layout_sensors(device, sensors)
        self._publish(device, out)
        online = self._lwt.pop(device.topic, None)
        if online is not None:
            out.availability.append((device.id, online))
        if sensors is not None:
            self._decode_sensor(device, sensors, out)

    def _compile_discovery(self, mac: str, config: Any) -> TasmotaDevice:
        if not isinstance(config, dict):
            raise _bad(f"expected a JSON object, got {_short(config)}")
        topic = config.get("t")
        if not isinstance(topic, str) or not topic or "/" in topic or "+" in topic or "#" in topic:
            raise _bad(f"discovery config without a usable topic 't': {_short(topic)}")
        payload_mac = str(config.get("mac", mac)).replace(":", "").upper()
        if payload_mac != mac:
            raise _bad(f"MAC {payload_mac} in the payload differs from {mac} in the topic")
        full_topic = config.get("ft") if isinstance(config.get("ft"), str) else self.full_topic
        if "%topic%" not in full_topic and "%hostname%" not in full_topic and "%id%" not in full_topic:
            raise _bad(f"FullTopic {full_topic!r} does not name the device")
        prefixes = config.get("tp")
        if not (isinstance(prefixes, list) and len(prefixes) == 3 and all(isinstance(p, str) and p for p in prefixes)):
            prefixes = list(DEFAULT_PREFIXES)
        hostname = str(config.get("hn", ""))
        names = config.get("fn") if isinstance(config.get("fn"), list) else []
        device_name = config.get("dn") if isinstance(config.get("dn"), str) and config.get("dn") else None
        # "Tasmota" is the factory default DeviceName: the first relay's FriendlyName says more then.
        first_name = names[0] if names and isinstance(names[0], str) and names[0] else None
        if device_name == "Tasmota" and first_name:
            device_name = first_name
        device = TasmotaDevice(
            topic=topic, id=f"{SOURCE}:{topic.lower()}",
            cmnd_base=_fill(full_topic, prefixes[0], topic, hostname, mac),
            name=device_name or first_name or topic,
            mac=":".join(mac[i:i + 2] for i in range(0, 12, 2)).lower(),
            model=config.get("md") if isinstance(config.get("md"), str) else None,
            sw_version=config.get("sw") if isinstance(config.get("sw"), str) else None,
            discovered=True,
        )
        device.bases = {"stat": _fill(full_topic, prefixes[1], topic, hostname, mac),
                        "tele": _fill(full_topic, prefixes[2], topic, hostname, mac)}
        words = config.get("state")
        if isinstance(words, list) and len(words) >= 3 and all(isinstance(w, str) for w in words[:3]):
            device.words = (words[0], words[1], words[2])
        for key, attr in (("onln", "online_word"), ("ofln", "offline_word")):
            if isinstance(config.get(key), str) and config[key]:
                setattr(device, attr, config[key])
        relays = config.get("rl") if isinstance(config.get("rl"), list) else []
        shutter_index = 0
        for index, kind in enumerate(relays[:32]):
            if kind in (RL_RELAY, RL_LIGHT):
                device.relays[index + 1] = kind
                if kind == RL_LIGHT and device.light_relay is None:
                    device.light_relay = index + 1
            elif kind == RL_SHUTTER:
                device.shutter_relays.add(index + 1)
                if index % 2 == 0 or relays[index - 1] != RL_SHUTTER:
                    # two consecutive relays drive one shutter
                    shutter_index += 1
                    device.shutters.add(shutter_index)
        subtype = config.get("lt_st")
        device.light_subtype = subtype if isinstance(subtype, int) and not isinstance(subtype, bool) else 0
        if device.light_subtype and device.light_relay is None:
            # a light on its own PWM channels, without a relay (lt_st says what it can do)
            device.light_relay = 1
            device.relays.setdefault(1, RL_LIGHT)
        return device

    def _discovery_sensors(self, mac: str, payload: bytes, out: Decoded) -> None:
        if not payload:
            self._pending_sensors.pop(mac, None)
            return
        try:
            data = parse_json(payload)
        except CodecError as err:
            out.problems.append(f"{SOURCE} discovery {mac}/sensors: {err}")
            return
        sensors = data.get("sn") if isinstance(data, dict) else None
        if not isinstance(sensors, dict):
            out.problems.append(f"{SOURCE} discovery {mac}/sensors: expected {{\"sn\": {{…}}}}, got {_short(data)}")
            return
        device = self.by_mac.get(mac)
        if device is None:
            if mac in self._pending_sensors or len(self._pending_sensors) < MAX_DEVICES:
                self._pending_sensors[mac] = sensors
            return
        if self._layout_sensors(device, sensors):
            self._publish(device, out)
        self._decode_sensor(device, sensors, out)

    def _forget(self, device: TasmotaDevice, out: Decoded) -> None:
        self.by_id.pop(device.id, None)
        self.by_topic.pop(device.topic, None)
        if device.mac:
            self.by_mac.pop(device.mac.replace(":", "").upper(), None)
        self._bases = {b: e for b, e in self._bases.items() if e[0] is not device}
        out.removals.append(device.id)

    # -- encoding

    def encode(self, command: Command) -> tuple[str, bytes]:
        """(topic, payload) that carries out ``command``. Raises CodecError if the device cannot."""
        device = self.by_id.get(command.device_id)
        if device is None:
            raise _bad(f"{command.device_id} is not (or no longer) a known Tasmota device")
        if not isinstance(command.args, dict):
            raise _bad("command arguments must be an object")
        cap, cmd, component = command.capability, command.command, command.component
        base = device.cmnd_base
        if cap == "on_off":
            number = _relay_of(device, component)
            word = {"on": device.words[1], "off": device.words[0], "toggle": device.words[2]}.get(cmd)
            if word is None:
                raise _bad(f"on_off has no command {cmd!r}")
            return f"{base}POWER{number}", word.encode()
        if cap in ("level", "color_temperature") and cmd == "set":
            if device.light_component() != component:
                raise _bad(f"{device.id} has no light on component {component!r}")
            if cap == "level":
                percent = _number(command.args.get("percent"))
                if not 0 <= percent <= 100:
                    raise _bad(f"percent {percent:g} is outside 0..100")
                return f"{base}Dimmer", str(round(percent)).encode()
            kelvin = _number(command.args.get("kelvin"))
            if not 1000 <= kelvin <= 20000:
                raise _bad(f"kelvin {kelvin:g} is outside 1000..20000")
            # Tasmota takes 153..500 mireds and clamps; clamping here keeps the expected state honest.
            mired = min(max(round(_MIRED_PER_KELVIN / kelvin), CT_MIN_MIREDS), CT_MAX_MIREDS)
            return f"{base}CT", str(mired).encode()
        if cap == "fan" and cmd == "set_speed" and device.fan and component == FAN_COMPONENT:
            percent = _number(command.args.get("percent"))
            if not 0 <= percent <= 100:
                raise _bad(f"percent {percent:g} is outside 0..100")
            return f"{base}FanSpeed", str(round(percent * 3 / 100)).encode()
        if cap == "cover":
            number = next((n for n in sorted(device.shutters) if device.shutter_component(n) == component), None)
            if number is None:
                raise _bad(f"{device.id} has no shutter on component {component!r}")
            if cmd == "set_position":
                percent = _number(command.args.get("percent"))
                if not 0 <= percent <= 100:
                    raise _bad(f"percent {percent:g} is outside 0..100")
                return f"{base}ShutterPosition{number}", str(round(percent)).encode()
            word = {"open": "ShutterOpen", "close": "ShutterClose", "stop": "ShutterStop"}.get(cmd)
            if word is None:
                raise _bad(f"Tasmota shutters cannot {cmd}")
            return f"{base}{word}{number}", b""
        raise _bad(f"Tasmota cannot send {cap}.{cmd}")


def _relay_of(device: TasmotaDevice, component: str) -> int:
    for number in device.relays:
        if relay_component(number) == component:
            return number
    raise _bad(f"{device.id} has no relay on component {component!r}")


def _field_of(key: str) -> Field | None:
    block, _, rest = key.partition("\x00")
    name = rest.split("\x00", 1)[0]
    return ENERGY_FIELDS.get(name) if block == "ENERGY" else sensor_field(name)
