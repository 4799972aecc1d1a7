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
``POWER3`` is always ``l3``. A light's ``Dimmer``/``CT``/``HSBColor`` belong to the component of its relay. A light
split in two (``SetOption37 128``; discovery ``lk`` 0 with two lights in ``rl``) is two components: the colour
light (``POWER<n>``, ``Dimmer1``, ``HSBColor``) and the white light (``POWER<n+1>``, ``Dimmer2``, ``CT`` when it
has two whites); with ``SetOption68`` each PWM channel is a dimmable light of its own (``POWER<n>``,
``Channel<n>``). ``Color``, ``White`` and ``Channel`` (the array) repeat what those say and are not read.
Shutter *k* is ``main`` when the device has no relay of its own, else ``shutter<k>``. Energy channels
(``"Power": [a, b]``) follow the relay rule (``main``, ``l2``, …). Sensor blocks: the first block of a kind
goes to ``main``; a block whose attributes ``main`` already has (a second DS18B20) gets a component named after
it, lowercased (``ds18b20-2``); the ESP32 chip's own temperature is always ``esp32``.

**Zigbee bridge** (Zigbee2Tasmota, a Sonoff ZBBridge): each device of ``{"ZbReceived": {"0x8F20": {…}}}`` (in
``tele/<t>/SENSOR``, ``tele/<t>/<short>/SENSOR`` with ``SetOption89``, keyed by its name with ``SetOption83``,
without the ``ZbReceived`` envelope with ``SetOption100``) is a Hearth device of its own, ``tasmota:<bridge
topic>:<short address>`` (short addresses are unique per bridge only; Zigbee2Tasmota itself keys everything by
them), ``via`` the bridge, named by its ``Name``, its IEEE address (from ``ZbState`` 30 or ``IEEEAddr``) kept as
its serial. Its readings go through the same tables as a Tasmota sensor's (:data:`SENSOR_FIELDS`) and
:data:`ZIGBEE_FIELDS` (Tasmota's Zigbee attribute names); attributes that a remote *sends* (a message with a
``"0006!02"``-style command) are not its state and are not read. It is available while its bridge is.

**Commands.** ``on``/``off``/``toggle`` -> ``cmnd/<t>/POWER<n>`` with the device's own words (``ON``, ``OFF``,
``TOGGLE`` unless discovery says otherwise); ``level.set`` -> ``cmnd/<t>/Dimmer <0-100>`` (``Dimmer1``/``Dimmer2``
for the parts of a split light, ``Channel<n>`` for a SetOption68 channel, ``Dimmer3`` on a Tuya MCU light);
``color_temperature.set`` -> ``cmnd/<t>/CT <153-500 mireds>``; ``color.set`` -> ``cmnd/<t>/Backlog
NoDelay;HsbColor1 <hue>;NoDelay;HsbColor2 <sat>`` (as Home Assistant's Tasmota integration sends it: brightness
and white stay as they are); covers -> ``ShutterOpen<k>``, ``ShutterClose<k>``, ``ShutterStop<k>``,
``ShutterPosition<k> <percent>``. A Zigbee device's ``on``/``off``/``toggle`` and ``level.set`` go to its bridge
as ``cmnd/<bridge>/ZbSend {"Device": "<short>", "Send": {"Power": 1}}`` (``"Dimmer": 0-254``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.tasmota.topics import DEFAULT_FULL_TOPIC, subscription_filters
from adapters.tasmota.topics import fill_full_topic as _fill
from gateway.sdk import CapabilitySupport, CodecError, Command, DeviceInfo, Update, capability, topic_matches

__all__ = [
    "DEFAULT_FULL_TOPIC",
    "ENERGY_FIELDS",
    "MAX_PAYLOAD_BYTES",
    "SENSOR_FIELDS",
    "SOURCE",
    "ZIGBEE_FIELDS",
    "Decoded",
    "TasmotaCodec",
    "TasmotaDevice",
    "TasmotaLight",
    "ZigbeeDevice",
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
# Tasmota's CT range in mireds (153..500, the same as Home Assistant's default); SetOption82 reduces it to
# 200..380 for Alexa (hatasmota's REDUCED_MIN/MAX_MIREDS).
CT_MIN_MIREDS, CT_MAX_MIREDS = 153, 500
CT_REDUCED_MIREDS = (200, 380)
_MIRED_PER_KELVIN = 1_000_000
# Zigbee2Tasmota devices per bridge: an ESP32 bridge handles a few hundred; far beyond is junk.
MAX_ZIGBEE_DEVICES = 1000

_POWER_KEY = re.compile(r"^POWER(\d{0,2})$")
_SHUTTER_KEY = re.compile(r"^Shutter(\d)$")
_CHANNEL_KEY = re.compile(r"^Channel(\d{1,2})$")
# Keys of a light's state and the parts of a light they belong to, in order of preference (TasmotaDevice.light_for).
_LIGHT_KEY_KINDS: dict[str, tuple[str, ...]] = {"Dimmer": ("linked",), "Dimmer1": ("rgb",), "Dimmer2": ("white",),
                                                "CT": ("linked", "white"), "HSBColor": ("linked", "rgb")}
_LIGHT_KEYS = frozenset(_LIGHT_KEY_KINDS)
_ZB_ADDRESS = re.compile(r"^0x[0-9A-Fa-f]{4}$")
# A received Zigbee command ("0006!02": cluster 0x0006, command 0x02): the message is what a remote *sent*.
_ZB_COMMAND = re.compile(r"^[0-9A-Fa-f]{4}![0-9A-Fa-f]{2}$")


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

@dataclass(frozen=True, slots=True)
class ZbField:
    capability: str
    attribute: str
    # "number" as it is; "bool" 0/1 or true/false; "per254" a ZCL level 0-254 as %; "hue254" 0-254 as degrees;
    # "xy" a ZCL colour coordinate 0-65535 as 0-1; "mired" a colour temperature in mireds as kelvin.
    kind: str = "number"
    # State of what the device switches (on/off, dimmer, colour): when a remote sends these as commands they are
    # not its state (see _ZB_COMMAND).
    actuator: bool = False


#: Tasmota's Zigbee attribute names (Zigbee2Tasmota, ``xdrv_23_zigbee_5_1_attributes.ino`` ``Z_PostProcess``, and
#: the Zigbee docs' table), besides the sensor names of :data:`SENSOR_FIELDS` (``Temperature``, ``Humidity``,
#: ``Pressure``, ``Illuminance`` … already in canonical units there). Supporting another is adding a row.
ZIGBEE_FIELDS: dict[str, ZbField] = {
    "Occupancy": ZbField("occupancy", "occupied", "bool"),
    "Contact": ZbField("contact", "open", "bool"),  # IAS zone alarm 1 of a contact sensor: 1 = opened
    "Water": ZbField("water_leak", "leak", "bool"),
    "Fire": ZbField("smoke_co_alarm", "smoke", "bool"),
    "CO": ZbField("smoke_co_alarm", "co", "bool"),
    "BatteryPercentage": ZbField("battery", "percent"),
    "Battery": ZbField("battery", "percent"),  # Aqara's own report (the Zigbee docs' lumi.weather example)
    "BatteryVoltage": ZbField("battery", "volts"),
    "Voltage": ZbField("battery", "volts"),  # Aqara's battery voltage (the docs: "Voltage: Battery voltage")
    "LinkQuality": ZbField("connectivity", "lqi"),
    "Power": ZbField("on_off", "on", "bool", actuator=True),
    "Dimmer": ZbField("level", "percent", "per254", actuator=True),
    "Hue": ZbField("color", "hue", "hue254", actuator=True),
    "Sat": ZbField("color", "saturation", "per254", actuator=True),
    "X": ZbField("color", "x", "xy", actuator=True),
    "Y": ZbField("color", "y", "xy", actuator=True),
    "CT": ZbField("color_temperature", "kelvin", "mired", actuator=True),
}
# What a Zigbee device's report carries besides readings: not read, and not worth a note.
_ZB_META = frozenset({"Device", "Name", "Endpoint", "ModelId", "Manufacturer", "IEEEAddr", "PressureUnit",
                      "TempUnit", "Group", "ZCLVersion", "AppVersion", "SWBuildID", "PowerSource"})
# Zigbee2Tasmota's raw forms: an undecoded attribute ("0402_0000", "0406/0000"), a received command ("0006!02",
# "0500<00", "0500?00"): the decoded names beside them are what counts.
_ZB_RAW = re.compile(r"^[0-9A-Fa-f]{4}[^0-9A-Za-z]")

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
class TasmotaLight:
    """One light of a Tasmota device, switched by relay ``relay`` (``POWER<relay>``). ``kind``: ``linked`` (the
    one light of the device, every key), ``rgb``/``white`` (the colour and the white part of a light split with
    SetOption37 128), ``channel`` (one PWM channel with SetOption68)."""

    relay: int
    kind: str = "linked"
    level: bool = False
    ct: bool = False
    color: bool = False
    tuya: bool = False  # a Tuya MCU light: its brightness is set with Dimmer3 (hatasmota)

    @property
    def level_key(self) -> str:
        """The state key of its brightness, and the command that sets it."""
        return {"linked": "Dimmer", "rgb": "Dimmer1", "white": "Dimmer2"}.get(self.kind, f"Channel{self.relay}")

    @property
    def level_command(self) -> str:
        return "Dimmer3" if self.tuya and self.kind == "linked" else self.level_key


@dataclass(slots=True)
class ZigbeeDevice:
    """One device behind a Tasmota Zigbee bridge, as its reports told us."""

    address: str  # short address as Tasmota writes it ("0x8F20")
    id: str
    name: str | None = None
    model: str | None = None
    manufacturer: str | None = None
    ieee: str | None = None
    # (component, capability) -> attributes it reported; (capability, command) it can be sent
    support: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    commands: set[tuple[str, str]] = field(default_factory=set)
    # The lowest endpoint its on/off, dimmer or colour came from: that endpoint is the device's "main" (a second
    # gang on a higher endpoint is not read into it; see _decode_zigbee_device).
    main_endpoint: int | None = None
    told: set[str] = field(default_factory=set)  # notes already given (once each)
    info: DeviceInfo | None = None


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
    lights: dict[int, TasmotaLight] = field(default_factory=dict)  # relay number -> its light
    ct_mireds: tuple[int, int] = (CT_MIN_MIREDS, CT_MAX_MIREDS)
    shutters: set[int] = field(default_factory=set)
    # Relays that drive a shutter's motor (discovery's `rl` type 3; without discovery Tasmota's default,
    # ShutterRelay<n> = 2n-1: relays 2n-1 and 2n): not switches of their own, the cover says what they do.
    shutter_relays: set[int] = field(default_factory=set)
    zigbee: dict[str, ZigbeeDevice] = field(default_factory=dict)  # a Zigbee bridge's devices, by short address
    zigbee_ieee: dict[str, str] = field(default_factory=dict)  # short address -> IEEE address (ZbState 30)
    online: bool | None = None  # its last LWT: the availability of its Zigbee devices too
    fan: bool = False  # a Sonoff iFan's fan (FanSpeed 0-3), component "fan"
    words: tuple[str, str, str] = ("OFF", "ON", "TOGGLE")
    online_word: str = "Online"
    offline_word: str = "Offline"
    # (block name, field key, channel index or None) -> component
    sensor_layout: dict[str, str] = field(default_factory=dict)
    energy_channels: int = 0
    energy_fields: set[str] = field(default_factory=set)
    seen_state: set[str] = field(default_factory=set)  # Wifi seen
    # Keys its state messages had so far (bounded): lights are learnt again only when a message brings a new one.
    state_keys: set[str] = field(default_factory=set)
    light_keys: dict[str, TasmotaLight | None] = field(default_factory=dict)  # light_for's answers, by key
    bases: dict[str, str] = field(default_factory=dict)  # "stat"/"tele" -> topic base (ends with /)
    info: DeviceInfo | None = None

    def shutter_component(self, number: int) -> str:
        return "main" if number == 1 and not self.relays else f"shutter{number}"

    def light_for(self, key: str) -> TasmotaLight | None:
        """The light a state key belongs to: ``Dimmer`` the linked light, ``Dimmer1``/``Dimmer2`` the parts of a
        split one, ``CT`` and ``HSBColor`` the linked light or else the white / colour part, ``Channel<n>`` the
        SetOption68 channel n."""
        try:
            return self.light_keys[key]
        except KeyError:
            pass
        found = self._light_for(key)
        if len(self.light_keys) < 64:
            self.light_keys[key] = found
        return found

    def _light_for(self, key: str) -> TasmotaLight | None:
        kinds = _LIGHT_KEY_KINDS.get(key)
        if kinds is None:
            channel = _CHANNEL_KEY.match(key)
            light = self.lights.get(int(channel.group(1))) if channel else None
            return light if light is not None and light.kind == "channel" else None
        for kind in kinds:
            for light in self.lights.values():
                if light.kind == kind:
                    return light
        return None

    def light_on(self, component: str) -> TasmotaLight | None:
        return next((light for light in self.lights.values() if relay_component(light.relay) == component), None)


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
    low, high = device.ct_mireds
    kelvin = (round(_MIRED_PER_KELVIN / high), round(_MIRED_PER_KELVIN / low))
    for light in device.lights.values():
        component = relay_component(light.relay)
        if light.level:
            _support(caps, component, "level", ["percent"], ["set"])
        if light.ct:
            _support(caps, component, "color_temperature", ["kelvin"], ["set"], {"kelvin": kelvin})
        if light.color:
            _support(caps, component, "color", ["hue", "saturation"], ["set"])
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


def _zigbee_info(bridge: TasmotaDevice, zb: ZigbeeDevice) -> DeviceInfo:
    caps: dict[str, dict[str, CapabilitySupport]] = {}
    for (component, cap), attrs in sorted(zb.support.items()):
        cmds = sorted(cmd for c, cmd in zb.commands if c == cap) if component == "main" else []
        _support(caps, component, cap, attrs, cmds)
    return DeviceInfo(
        id=zb.id, name=zb.name or zb.address, source=SOURCE, components=caps or {"main": {}},
        manufacturer=zb.manufacturer, model=zb.model, serial=zb.ieee, via=bridge.id, aliases=(zb.address,),
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
    notes: list[str] = field(default_factory=list)  # understood and deliberately not used (replay lists them)
    topics_changed: bool = False


def _zigbee_reports(data: dict[str, Any]) -> dict[str, Any]:
    """The per-device reports of a Zigbee bridge's message: ``ZbReceived``, or (SetOption100) the same without
    the envelope, keyed by short address."""
    received = data.get("ZbReceived")
    if isinstance(received, dict):
        return received
    return {k: v for k, v in data.items() if isinstance(v, dict) and _ZB_ADDRESS.match(k)}


def _zigbee_value(zf: ZbField | None, sf: Field | None, raw: Any, temp_unit: Any, pressure_unit: Any) -> Any:
    """A Zigbee2Tasmota attribute as the capability model wants it (raises CodecError)."""
    if zf is None:
        assert sf is not None
        number = _number(raw)
        if sf.unit_kind == "temp":
            if temp_unit is None:
                raise _bad("TempUnit is not C, F or K")
            number = temp_unit(number)
        elif sf.unit_kind == "pressure":
            if pressure_unit is None:
                raise _bad("PressureUnit is not hPa, mmHg or inHg")
            number = pressure_unit(number)
        return number
    if zf.kind == "bool":
        if isinstance(raw, bool):
            return raw
        if raw in (0, 1) and isinstance(raw, int):
            return raw == 1
        raise _bad(f"expected 0 or 1, got {_short(raw)}")
    number = _number(raw)
    if zf.kind == "per254":  # ZCL level and saturation: 0-254
        return round(number * 100 / 254, 1)
    if zf.kind == "hue254":
        return round(number * 360 / 254, 1)
    if zf.kind == "xy":  # ZCL CurrentX/CurrentY = x * 65536
        return round(number / 65536, 4)
    if zf.kind == "mired":
        if number <= 0:
            raise _bad(f"CT {number:g} mireds is not a colour temperature")
        return round(_MIRED_PER_KELVIN / number)
    return number


def parse_json(payload: bytes) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _bad(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES // 1024} KiB limit")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise _bad(f"payload is not JSON ({err.msg}): {_short(payload[:60])}") from None


def _full_topic_regex(full_topic: str, prefixes: Iterable[str], sub: bool = False) -> re.Pattern[str]:
    """``sub``: the per-device topics of a Zigbee bridge, ``<base><short address>/SENSOR`` (SetOption89)."""
    pattern = re.escape(full_topic if full_topic.endswith("/") else full_topic + "/")
    pattern = pattern.replace(re.escape("%prefix%"), "(?P<prefix>" + "|".join(map(re.escape, prefixes)) + ")")
    pattern = pattern.replace(re.escape("%topic%"), r"(?P<topic>[^/+#]+)")
    pattern = pattern.replace(re.escape("%hostname%"), r"[^/+#]+").replace(re.escape("%id%"), r"[^/+#]+")
    return re.compile(pattern + (r"[^/+#]+/SENSOR$" if sub else r"(?P<command>[^/]+)$"))


class TasmotaCodec:
    """Everything the Tasmota devices on one broker said, decoded. Pure: holds only that."""

    def __init__(self, full_topic: str = DEFAULT_FULL_TOPIC, discovery_prefix: str = "tasmota/discovery") -> None:
        self.full_topic = full_topic
        self.discovery_prefix = discovery_prefix
        self._discovery_slash = discovery_prefix + "/"
        self._regex = _full_topic_regex(full_topic, ("stat", "tele"))
        self._zigbee_regex = _full_topic_regex(full_topic, ("tele",), sub=True)
        self.static_filters = subscription_filters(full_topic)
        self.by_id: dict[str, TasmotaDevice] = {}
        self.by_topic: dict[str, TasmotaDevice] = {}
        self.by_mac: dict[str, TasmotaDevice] = {}
        self.zigbee_by_id: dict[str, tuple[TasmotaDevice, ZigbeeDevice]] = {}
        # "<stat or tele base without the trailing />" -> (device, "stat"/"tele"), for discovered devices
        self._bases: dict[str, tuple[TasmotaDevice, str]] = {}
        self._extra_filters: set[str] = set()
        self._pending_sensors: dict[str, dict[str, Any]] = {}  # MAC -> /sensors "sn" before its /config
        self._lwt: dict[str, bool] = {}  # topic -> last LWT, for devices not created yet

    def filters(self) -> set[str]:
        return set(self.static_filters) | self._extra_filters | {self._discovery_slash + "#"}

    def device(self, device_id: str) -> TasmotaDevice | None:
        return self.by_id.get(device_id)

    def zigbee_device(self, device_id: str) -> ZigbeeDevice | None:
        entry = self.zigbee_by_id.get(device_id)
        return entry[1] if entry is not None else None

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
        if command == "SENSOR":  # <tele base>/<short>/SENSOR of a discovered Zigbee bridge (SetOption89)
            entry = self._bases.get(base.rpartition("/")[0])
            if entry is not None and entry[1] == "tele":
                self._decode_message(entry[0], entry[0].topic, "tele", "ZIGBEE", payload, out)
                return out
        match = self._regex.match(topic)
        if match is None:
            zigbee = self._zigbee_regex.match(topic) if command == "SENSOR" else None
            if zigbee is not None:
                name = zigbee.group("topic")
                self._decode_message(self.by_topic.get(name), name, "tele", "ZIGBEE", payload, out)
            return out  # else not a Tasmota topic (another convention sharing a filter)
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
            # RESULT under tele: Zigbee2Tasmota's older versions published ZbReceived there (the Zigbee docs'
            # ZbName example); ZIGBEE: the per-device SENSOR topic of SetOption89.
            handler = {"STATE": "state", "SENSOR": "sensor", "RESULT": "zigbee", "ZIGBEE": "zigbee"}.get(command)
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
            elif handler == "zigbee":
                if not _zigbee_reports(data) and "ZbState" not in data:
                    return  # a tele/RESULT that is not the Zigbee bridge's (IrReceived, RfReceived…)
                handler = "sensor"
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
        device.online = online
        out.availability.append((device.id, online))
        # A bridge that is offline reaches none of its Zigbee devices.
        out.availability += [(zb.id, online) for zb in device.zigbee.values()]

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
            device.online = online
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
        # A discovered device's lights are what discovery said; one that never announced itself is learnt here,
        # from a message with a key not seen before (the hot path of a known device skips it).
        grew = False
        if not device.discovered:
            new_keys = data.keys() - device.state_keys
            if new_keys:
                grew = self._learn_lights(device, data)
                if len(device.state_keys) < 256:
                    device.state_keys |= new_keys
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
                elif key in _LIGHT_KEYS:
                    light = device.light_for(key)
                    if light is not None:
                        out.updates += self._light_value(dev_id, relay_component(light.relay), key, raw)
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
                elif key[:7] == "Channel" and device.lights:  # Channel<n> of a SetOption68 channel light
                    light = device.light_for(key)
                    if light is not None:
                        out.updates += self._light_value(dev_id, relay_component(light.relay), key, raw)
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
    def _learn_lights(device: TasmotaDevice, data: dict[str, Any]) -> bool:
        """Lights of a device without discovery, from the keys of its state; True when they changed."""
        grew = False
        powers = sorted({n for m in map(_POWER_KEY.match, data) if m is not None
                         for n in [int(m.group(1) or 1)] if 1 <= n <= 32})

        def light(relay: int, kind: str) -> None:
            nonlocal grew
            found = device.lights.get(relay)
            if found is None or found.kind != kind:
                device.lights[relay] = TasmotaLight(relay, kind)
                device.light_keys.clear()
                device.relays[relay] = RL_LIGHT  # its POWER may have been seen before as a plain relay's
                grew = True

        if ("Dimmer1" in data or "Dimmer2" in data) and not any(
                lt.kind in ("rgb", "white") for lt in device.lights.values()):
            # SetOption37 128: the colour and the white light are the last two POWERs (Tasmota numbers lights
            # after the relays), in that order (xdrv_04_light.ino ResponseLightState).
            rgb_relay = powers[-2] if len(powers) >= 2 else 1
            for relay in [r for r, lt in device.lights.items() if lt.kind == "linked"]:
                del device.lights[relay]
                device.light_keys.clear()
            light(rgb_relay, "rgb")
            light(rgb_relay + 1, "white")
        elif any(k in data for k in ("Dimmer", "CT", "HSBColor")) and not device.lights:
            # Tasmota puts a light after the relays: it is the last POWER<n> of the device.
            light(powers[-1] if powers else 1, "linked")
        for key in data:
            channel = _CHANNEL_KEY.match(key)
            if channel is not None and 1 <= int(channel.group(1)) <= 32:
                light(int(channel.group(1)), "channel")  # SetOption68: each PWM channel is a light
        for key in data:
            target = device.light_for(key) if key in _LIGHT_KEYS or key.startswith("Channel") else None
            if target is None:
                continue
            flag = {"CT": "ct", "HSBColor": "color"}.get(key, "level")
            if not getattr(target, flag):
                setattr(target, flag, True)
                grew = True
        return grew

    @staticmethod
    def _power_word(device: TasmotaDevice, raw: Any) -> bool:
        if raw == device.words[1] or raw in ("ON", "1", 1):
            return True
        if raw == device.words[0] or raw in ("OFF", "0", 0):
            return False
        raise _bad(f"expected {device.words[1]!r} or {device.words[0]!r}, got {_short(raw)}")

    @staticmethod
    def _light_value(dev_id: str, component: str, key: str, raw: Any) -> list[Update]:
        if key not in ("CT", "HSBColor"):  # Dimmer, Dimmer1, Dimmer2, Channel<n>: 0-100
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
        # Zigbee2Tasmota's messages carry no "Time" (a sensor's telemetry always does): only those are looked
        # through for reports without the ZbReceived envelope.
        reports = _zigbee_reports(data) if "ZbReceived" in data or "Time" not in data else {}
        if reports or "ZbState" in data:
            self._decode_zigbee(device, reports, data.get("ZbState"), out)
            if reports:
                return  # a Zigbee report carries nothing of the bridge's own
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

    # -- Zigbee bridge (ZbReceived)

    def _decode_zigbee(self, bridge: TasmotaDevice, reports: dict[str, Any], state: Any, out: Decoded) -> None:
        if isinstance(state, dict) and state.get("Status") == 30:
            # A device joined or rejoined: ZbState pairs its short address with its IEEE address.
            short, ieee = state.get("ShortAddr"), state.get("IEEEAddr")
            if isinstance(short, str) and _ZB_ADDRESS.match(short) and isinstance(ieee, str) and \
                    re.fullmatch(r"0x[0-9A-Fa-f]{16}", ieee):
                if short.upper() in bridge.zigbee_ieee or len(bridge.zigbee_ieee) < MAX_ZIGBEE_DEVICES:
                    bridge.zigbee_ieee[short.upper()] = ieee.lower()
                zb = bridge.zigbee.get(short.upper())
                if zb is not None and zb.ieee != ieee.lower():
                    zb.ieee = ieee.lower()
                    self._publish_zigbee(bridge, zb, out)
        for key, report in reports.items():
            if not isinstance(report, dict):
                out.problems.append(f"{SOURCE} {bridge.topic!r}: ZbReceived {_short(key)}: expected an object, "
                                    f"got {_short(report)}")
                continue
            address = report.get("Device", key)
            if not isinstance(address, str) or not _ZB_ADDRESS.match(address):
                # SetOption83 without the address (SetOption119): only a name, and ids never come from names.
                out.problems.append(f"{SOURCE} {bridge.topic!r}: ZbReceived {_short(key)} has no short address "
                                    "(\"Device\"); not read")
                continue
            zb = bridge.zigbee.get(address.upper())
            if zb is None:
                if len(bridge.zigbee) >= MAX_ZIGBEE_DEVICES:
                    out.problems.append(f"{SOURCE} {bridge.topic!r}: more than {MAX_ZIGBEE_DEVICES} Zigbee devices; "
                                        f"{address} ignored")
                    continue
                zb = ZigbeeDevice(address=address, id=f"{bridge.id}:{address.lower()}",
                                  ieee=bridge.zigbee_ieee.get(address.upper()))
                bridge.zigbee[address.upper()] = zb
                self.zigbee_by_id[zb.id] = (bridge, zb)
            self._decode_zigbee_device(bridge, zb, key, report, out)

    def _decode_zigbee_device(self, bridge: TasmotaDevice, zb: ZigbeeDevice, key: str, report: dict[str, Any],
                              out: Decoded) -> None:
        grew = zb.info is None
        for field_name, attr in (("Name", "name"), ("ModelId", "model"), ("Manufacturer", "manufacturer")):
            value = report.get(field_name)
            if field_name == "Name" and value is None and not _ZB_ADDRESS.match(key):
                value = key  # SetOption83: the friendly name is the key
            if isinstance(value, str) and value.strip() and getattr(zb, attr) != value.strip()[:64]:
                setattr(zb, attr, value.strip()[:64])
                grew = True
        ieee = report.get("IEEEAddr")
        if isinstance(ieee, str) and re.fullmatch(r"0x[0-9A-Fa-f]{16}", ieee) and zb.ieee != ieee.lower():
            zb.ieee = ieee.lower()
            grew = True
        sent = any(_ZB_COMMAND.match(k) for k in report)  # a remote's command, not a state report
        endpoint = report.get("Endpoint")
        endpoint = endpoint if isinstance(endpoint, int) and not isinstance(endpoint, bool) else None
        temp_unit = _TEMP_UNITS.get(str(report.get("TempUnit", "C")))
        pressure_unit = _PRESSURE_UNITS.get(str(report.get("PressureUnit", "hPa")))
        updates: list[Update] = []
        unread: list[str] = []
        for name, raw in report.items():
            if name in _ZB_META:
                continue
            zf = ZIGBEE_FIELDS.get(name)
            sf = sensor_field(name) if zf is None else None
            if zf is None and sf is None:
                if not _ZB_RAW.match(name):
                    unread.append(name)
                continue
            if zf is not None and zf.actuator:
                if sent:
                    continue
                if endpoint is not None:
                    if zb.main_endpoint is None or endpoint < zb.main_endpoint:
                        zb.main_endpoint = endpoint
                    elif endpoint != zb.main_endpoint:
                        self._tell_zigbee(zb, f"ep{endpoint}", f"{SOURCE} {zb.id}: {name} from endpoint {endpoint} "
                                          f"is not read (only endpoint {zb.main_endpoint}'s)", out)
                        continue
            cap, attribute = (zf.capability, zf.attribute) if zf is not None else (sf.capability, sf.attribute)
            if raw is None:
                continue
            try:
                value = _zigbee_value(zf, sf, raw, temp_unit, pressure_unit)
                _spec_check(cap, attribute, value)
            except CodecError as err:
                out.problems.append(f"{SOURCE} {zb.id}: {name}: {err}")
                continue
            known = zb.support.setdefault(("main", cap), set())
            if attribute not in known:
                known.add(attribute)
                grew = True
            if zf is not None and zf.actuator and cap in ("on_off", "level"):
                for command in (("on", "off", "toggle") if cap == "on_off" else ("set",)):
                    if (cap, command) not in zb.commands:
                        zb.commands.add((cap, command))
                        grew = True
            updates.append(Update(zb.id, "main", cap, attribute, value))
        if sent:
            self._tell_zigbee(zb, "sent", f"{SOURCE} {zb.id}: commands it sends (a remote's) are not read", out)
        if unread:
            self._tell_zigbee(zb, "unread", f"{SOURCE} {zb.id}: {', '.join(sorted(unread)[:12])} not read "
                              "(no capability for them)", out)
        if grew:
            self._publish_zigbee(bridge, zb, out)
        out.updates += updates

    def _publish_zigbee(self, bridge: TasmotaDevice, zb: ZigbeeDevice, out: Decoded) -> None:
        first = zb.info is None
        info = _zigbee_info(bridge, zb)
        if info != zb.info:
            zb.info = info
            out.upserts.append(info)
        if first and bridge.online is not None:
            out.availability.append((zb.id, bridge.online))

    @staticmethod
    def _tell_zigbee(zb: ZigbeeDevice, what: str, note: str, out: Decoded) -> None:
        if what not in zb.told and len(zb.told) < 64:
            zb.told.add(what)
            out.notes.append(note)

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
            # keep what telemetry already taught us about its sensors, Zigbee devices and availability
            device.sensor_layout = previous.sensor_layout
            device.info = previous.info
            device.zigbee, device.zigbee_ieee, device.online = previous.zigbee, previous.zigbee_ieee, previous.online
        self._register(device)
        for zb in device.zigbee.values():
            self.zigbee_by_id[zb.id] = (device, zb)
        for kind_name, base in device.bases.items():
            self._bases[base.rstrip("/")] = (device, kind_name)
            if not any(topic_matches(f, base + "X") for f in self.static_filters):
                self._extra_filters.add(base + "+")
                out.topics_changed = True
            if kind_name == "tele" and not any(topic_matches(f, base + "X/SENSOR") for f in self.static_filters):
                self._extra_filters.add(base + "+/SENSOR")  # a Zigbee bridge's per-device topics (SetOption89)
                out.topics_changed = True
        sensors = self._pending_sensors.pop(mac, None)
        if sensors is not None:
            self._layout_sensors(device, sensors)
        self._publish(device, out)
        online = self._lwt.pop(device.topic, None)
        if online is not None:
            device.online = online
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
        light_relays: list[int] = []
        for index, kind in enumerate(relays[:32]):
            if kind in (RL_RELAY, RL_LIGHT):
                device.relays[index + 1] = kind
                if kind == RL_LIGHT:
                    light_relays.append(index + 1)
            elif kind == RL_SHUTTER:
                device.shutter_relays.add(index + 1)
                if index % 2 == 0 or relays[index - 1] != RL_SHUTTER:
                    # two consecutive relays drive one shutter
                    shutter_index += 1
                    device.shutters.add(shutter_index)
        _discovered_lights(device, config, light_relays)
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
        for zb in device.zigbee.values():
            self.zigbee_by_id.pop(zb.id, None)
            out.removals.append(zb.id)
        self.by_id.pop(device.id, None)
        self.by_topic.pop(device.topic, None)
        if device.mac:
            self.by_mac.pop(device.mac.replace(":", "").upper(), None)
        self._bases = {b: e for b, e in self._bases.items() if e[0] is not device}
        out.removals.append(device.id)

    # -- encoding

    def encode(self, command: Command) -> tuple[str, bytes]:
        """(topic, payload) that carries out ``command``. Raises CodecError if the device cannot."""
        if not isinstance(command.args, dict):
            raise _bad("command arguments must be an object")
        zigbee = self.zigbee_by_id.get(command.device_id)
        if zigbee is not None:
            return _encode_zigbee(*zigbee, command)
        device = self.by_id.get(command.device_id)
        if device is None:
            raise _bad(f"{command.device_id} is not (or no longer) a known Tasmota device")
        cap, cmd, component = command.capability, command.command, command.component
        base = device.cmnd_base
        if cap == "on_off":
            number = _relay_of(device, component)
            word = {"on": device.words[1], "off": device.words[0], "toggle": device.words[2]}.get(cmd)
            if word is None:
                raise _bad(f"on_off has no command {cmd!r}")
            return f"{base}POWER{number}", word.encode()
        if cap in ("level", "color_temperature", "color") and cmd == "set":
            light = device.light_on(component)
            if light is None or not (light.level if cap == "level" else light.ct if cap == "color_temperature"
                                     else light.color):
                raise _bad(f"{device.id} has no {cap} light on component {component!r}")
            if cap == "level":
                percent = _number(command.args.get("percent"))
                if not 0 <= percent <= 100:
                    raise _bad(f"percent {percent:g} is outside 0..100")
                return f"{base}{light.level_command}", str(round(percent)).encode()
            if cap == "color":
                hue, saturation = _number(command.args.get("hue")), _number(command.args.get("saturation"))
                if not 0 <= hue <= 360 or not 0 <= saturation <= 100:
                    raise _bad(f"hue {hue:g} / saturation {saturation:g} is outside 0..360 / 0..100")
                # HsbColor1/HsbColor2 change hue and saturation only: brightness (HsbColor3, the Dimmer) and
                # the white channels stay as they are. One Backlog, as Home Assistant's Tasmota integration sends.
                return f"{base}Backlog", (f"NoDelay;HsbColor1 {round(hue) % 360};"
                                          f"NoDelay;HsbColor2 {round(saturation)}").encode()
            kelvin = _number(command.args.get("kelvin"))
            if not 1000 <= kelvin <= 20000:
                raise _bad(f"kelvin {kelvin:g} is outside 1000..20000")
            # Tasmota takes 153..500 mireds (200..380 with SetOption82) and clamps; clamping here keeps the
            # expected state honest.
            low, high = device.ct_mireds
            mired = min(max(round(_MIRED_PER_KELVIN / kelvin), low), high)
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


def _discovered_lights(device: TasmotaDevice, config: dict[str, Any], light_relays: list[int]) -> None:
    """The lights of a discovery config, as hatasmota reads them: ``lt_st`` the light's channels, ``so`` 68
    a dimmer per PWM channel, ``lk`` 0 with an RGBW/RGBCW light (SetOption37 128) its colour and white parts on
    the first two light relays, ``so`` 82 the reduced CT range, ``ty`` a Tuya MCU light (Dimmer3)."""
    subtype = config.get("lt_st")
    subtype = subtype if isinstance(subtype, int) and not isinstance(subtype, bool) else 0
    options = config.get("so") if isinstance(config.get("so"), dict) else {}

    def option(number: int) -> bool:
        value = options.get(str(number))
        return value is True or (isinstance(value, int) and value == 1)

    if option(82):
        device.ct_mireds = CT_REDUCED_MIREDS
    if subtype and not light_relays:
        # a light on its own PWM channels, without a relay (lt_st says what it can do)
        light_relays = [1]
        device.relays.setdefault(1, RL_LIGHT)
    if not subtype or not light_relays:
        return
    if option(68):
        for relay in light_relays:
            device.lights[relay] = TasmotaLight(relay, "channel", level=True)
    elif config.get("lk") == 0 and subtype >= 4 and len(light_relays) >= 2:
        rgb, white = light_relays[0], light_relays[1]
        device.lights[rgb] = TasmotaLight(rgb, "rgb", level=True, color=True)
        device.lights[white] = TasmotaLight(white, "white", level=True, ct=subtype == 5)
    else:
        relay = light_relays[0]
        device.lights[relay] = TasmotaLight(relay, "linked", level=True, ct=subtype in _LIGHT_CT,
                                            color=subtype in _LIGHT_COLOR, tuya=config.get("ty") == 1)


def _encode_zigbee(bridge: TasmotaDevice, zb: ZigbeeDevice, command: Command) -> tuple[str, bytes]:
    """A Zigbee device's command, sent through its bridge with ZbSend (the Zigbee docs: Power 1/0/2, Dimmer
    0-254). Only what it reported as its own state (not a remote's commands) can be sent."""
    cap, cmd = command.capability, command.command
    if command.component != "main" or (cap, cmd) not in zb.commands:
        raise _bad(f"{zb.id} has no {cap}.{cmd} on component {command.component!r}")
    if cap == "on_off":
        send: dict[str, Any] = {"Power": {"on": 1, "off": 0, "toggle": 2}[cmd]}
    else:
        percent = _number(command.args.get("percent"))
        if not 0 <= percent <= 100:
            raise _bad(f"percent {percent:g} is outside 0..100")
        send = {"Dimmer": round(percent * 254 / 100)}
    body = orjson.dumps({"Device": zb.address, "Send": send})
    return f"{bridge.cmnd_base}ZbSend", body


def _relay_of(device: TasmotaDevice, component: str) -> int:
    for number in device.relays:
        if relay_component(number) == component:
            return number
    raise _bad(f"{device.id} has no relay on component {component!r}")


def _field_of(key: str) -> Field | None:
    block, _, rest = key.partition("\x00")
    name = rest.split("\x00", 1)[0]
    return ENERGY_FIELDS.get(name) if block == "ENERGY" else sensor_field(name)
