"""The Shelly Gen2+ device model, independent of the transport: status and notification JSON in, typed updates
out; commands in, JSON-RPC method and params out.

Pure (no I/O, no clock, no globals that change): :class:`ShellyDevice` holds only what one device told it
(``Shelly.GetDeviceInfo``, the last full status with every ``NotifyStatus`` overlaid, or the whole status of each
component it published on its own, ``<prefix>/status/<component>``). The MQTT transport
(:mod:`adapters.shelly.mqtt_codec`, :mod:`adapters.shelly.mqtt_adapter`) and the HTTP/WebSocket transport of the
mDNS adapter feed it the same frames, so a device is the same device, with the same components, either way.

Device id: ``shelly:<id>``, ``id`` being ``Shelly.GetDeviceInfo``'s ``id`` (the ``src`` of every frame the
device sends), lowercased: ``shelly:shellyplus1pm-441793d69718``. Never the MQTT topic prefix (a user setting).

Component naming (DESIGN.md contract 2), one rule for every transport:

* ``main`` holds the lowest-id instance of the device's first-class kind, the first present of
  ``cover, light, switch, em, em1, pm1, input`` (with its ``emdata``/``em1data`` twin), plus the lowest-id
  ``temperature``, ``humidity``, ``illuminance``, ``smoke`` and ``flood`` sensors and the device-wide ``wifi``
  (signal) and ``devicepower`` (battery);
* every other instance is ``<kind>_<id>``: the Pro 4PM is ``main``, ``switch_1``, ``switch_2``, ``switch_3``
  and ``input_0`` … ``input_3``; a Plus 2PM in cover mode is ``main`` (``cover:0``), ``input_0``, ``input_1``;
* a 3-phase ``em`` meter's phases are ``l1``, ``l2``, ``l3`` (``em_<id>_l1`` … for ``em:1`` and up).

Units: ``aenergy.total`` and ``emdata``/``em1data`` totals are Wh (``by_minute`` is mWh and not used) and
become kWh. A switch's ``temperature.tC`` is the relay's own internal temperature, not the room's: it is not
reported (a scene must never heat a room because a relay is warm). For the same reason the ``temperature:0`` of an
energy meter (a Pro 3EM reports ~50 °C there: its own electronics) is not reported either.

Sleeping devices (Plus H&T, H&T Gen3, Plus Smoke, Flood Gen4) never answer a request. With "generic status update
over MQTT" (``mqtt.status_ntf``) they publish each component's whole status on ``<prefix>/status/<component>`` when
they wake: :meth:`ShellyDevice.apply_component_status` builds the device from those alone, named by the same rule
over the components seen so far plus those its model always has (:data:`MODELS`, by the id's model part), so that a
device seen both ways is one device with the same components. A later full status renames nothing that the model
table already placed; at worst (a model not in the table whose status topics come in an unlucky order) a
component is renamed once and every value is reported again under its final name.

Device support is data: :data:`FIELDS` maps each component kind's status keys to capability attributes, and
:data:`MODELS` maps a device id's model part to what GetDeviceInfo would have said.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.sdk import (
    CapabilitySupport,
    CodecError,
    Command,
    DeviceEventUpdate,
    DeviceInfo,
    Update,
    capability,
)

__all__ = [
    "BUTTON_EVENTS",
    "FIELDS",
    "MAX_PAYLOAD_BYTES",
    "MODELS",
    "SOURCE",
    "Decoded",
    "RpcReply",
    "ShellyDevice",
    "ShellyModel",
    "component_names",
    "decode_rpc_reply",
    "device_id_for",
    "looks_like_shelly_id",
    "model_for",
    "parse_json",
    "reads_status_key",
    "rpc_request",
]

SOURCE = "shelly"
# A full status of a Pro 4PM is ~3 KiB; a GetConfig of a device with scripts maybe 30 KiB.
MAX_PAYLOAD_BYTES = 128 * 1024
_SHELLY_ID = re.compile(r"^shelly[a-z0-9]+-[0-9a-f]{12}$")

#: First present kind (lowest id) is the device's first-class channel, named "main".
PRIMARY_KINDS = ("cover", "light", "switch", "em", "em1", "pm1", "input")
#: Data twins: their status goes to the component of their measuring kind.
TWIN_OF = {"emdata": "em", "em1data": "em1"}
#: Lowest-id instance of these goes to "main" too (sensors and device-wide parts).
MAIN_SENSOR_KINDS = ("temperature", "humidity", "illuminance", "smoke", "flood", "devicepower")
#: Kinds of an energy meter: its own low-id ``temperature`` is its electronics', not a room's.
METER_KINDS = ("em", "em1")
#: Ids from 100 up are peripherals (the Plus Add-on's sensors): never the device's own.
PERIPHERAL_ID_MIN = 100

#: NotifyEvent names of inputs -> (kind of the button model or None, native action)
BUTTON_EVENTS: dict[str, str | None] = {
    "single_push": "single",
    "double_push": "double",
    "triple_push": "triple",
    "long_push": "long",
    # Not one of the common kinds: kept as the native action (capabilities.md `pressed.action`).
    "btn_down": None,
    "btn_up": "release",
    "long_single_push": None,
    "single_long_push": None,
}


def _bad(why: str) -> CodecError:
    return CodecError(why)


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_json(payload: bytes | str) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _bad(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES // 1024} KiB limit")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise _bad(f"payload is not JSON ({err.msg}): {_short(payload[:60])}") from err


def device_id_for(shelly_id: str) -> str:
    return f"{SOURCE}:{shelly_id.strip().lower()}"


def looks_like_shelly_id(text: str) -> bool:
    """``shellyplus1pm-441793d69718``: the default MQTT topic prefix and the device's own id."""
    return bool(_SHELLY_ID.match(text.lower()))


# ---------------------------------------------------------------------------------------------- values
# Converters: raw JSON value -> canonical value, or raise CodecError. Units are in the names.


def _number(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise _bad(f"expected a number, got {_short(raw)}")
    if not math.isfinite(raw):
        raise _bad(f"expected a finite number, got {raw}")
    return raw


def _bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise _bad(f"expected true/false, got {_short(raw)}")
    return raw


def _wh_to_kwh(raw: Any) -> float:
    # Shelly counts energy in Wh (aenergy.total, emdata total_act); ours is kWh. Rounded to the Wh.
    return round(_number(raw) / 1000, 6)


def _percent(raw: Any) -> float:
    return _number(raw)


_COVER_MOTION = {"opening": "opening", "closing": "closing", "stopped": "stopped", "open": "stopped",
                 "closed": "stopped"}


def _cover_motion(raw: Any) -> str | None:
    if not isinstance(raw, str):
        raise _bad(f"expected a cover state string, got {_short(raw)}")
    # "calibrating" (and anything newer): no motion we can name; not an error.
    return _COVER_MOTION.get(raw)


Convert = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Field:
    """One status key of one component kind: where it goes. ``path`` is a key or a nested key tuple;
    ``part``: the phase component of a 3-phase meter ("" = the component itself)."""

    path: tuple[str, ...]
    capability: str
    attribute: str
    convert: Convert = _number
    part: str = ""


def _f(path: str, capability: str, attribute: str, convert: Convert = _number, part: str = "") -> Field:
    return Field(tuple(path.split(".")), capability, attribute, convert, part)


_METER = (
    _f("apower", "power_meter", "watts"),
    _f("voltage", "power_meter", "volts"),
    _f("current", "power_meter", "amps"),
    _f("pf", "power_meter", "power_factor"),
    _f("freq", "power_meter", "hertz"),
    _f("aenergy.total", "energy_meter", "kwh", _wh_to_kwh),
    _f("ret_aenergy.total", "energy_meter", "exported_kwh", _wh_to_kwh),
)


def _phase_fields() -> tuple[Field, ...]:
    out: list[Field] = [
        _f("total_act_power", "power_meter", "watts"),
        _f("total_current", "power_meter", "amps"),
    ]
    for letter, part in (("a", "l1"), ("b", "l2"), ("c", "l3")):
        out += [
            _f(f"{letter}_act_power", "power_meter", "watts", part=part),
            _f(f"{letter}_voltage", "power_meter", "volts", part=part),
            _f(f"{letter}_current", "power_meter", "amps", part=part),
            _f(f"{letter}_pf", "power_meter", "power_factor", part=part),
            _f(f"{letter}_freq", "power_meter", "hertz", part=part),
        ]
    return tuple(out)


def _phase_energy_fields() -> tuple[Field, ...]:
    out: list[Field] = [
        _f("total_act", "energy_meter", "kwh", _wh_to_kwh),
        _f("total_act_ret", "energy_meter", "exported_kwh", _wh_to_kwh),
    ]
    for letter, part in (("a", "l1"), ("b", "l2"), ("c", "l3")):
        out += [
            _f(f"{letter}_total_act_energy", "energy_meter", "kwh", _wh_to_kwh, part),
            _f(f"{letter}_total_act_ret_energy", "energy_meter", "exported_kwh", _wh_to_kwh, part),
        ]
    return tuple(out)


#: component kind -> the status keys we read. Supporting a new key is adding a row.
FIELDS: dict[str, tuple[Field, ...]] = {
    "switch": (_f("output", "on_off", "on", _bool), *_METER),
    "light": (_f("output", "on_off", "on", _bool), _f("brightness", "level", "percent", _percent), *_METER),
    "cover": (_f("current_pos", "cover", "position_percent", _percent), _f("state", "cover", "motion", _cover_motion),
              *_METER),
    "pm1": _METER,
    "em": _phase_fields(),
    "emdata": _phase_energy_fields(),
    "em1": (
        _f("act_power", "power_meter", "watts"),
        _f("voltage", "power_meter", "volts"),
        _f("current", "power_meter", "amps"),
        _f("pf", "power_meter", "power_factor"),
        _f("freq", "power_meter", "hertz"),
    ),
    "em1data": (
        _f("total_act_energy", "energy_meter", "kwh", _wh_to_kwh),
        _f("total_act_ret_energy", "energy_meter", "exported_kwh", _wh_to_kwh),
    ),
    "temperature": (_f("tC", "temperature", "celsius"),),
    "humidity": (_f("rh", "humidity", "percent", _percent),),
    "devicepower": (_f("battery.percent", "battery", "percent", _percent), _f("battery.V", "battery", "volts")),
    "illuminance": (_f("lux", "illuminance", "lux"),),
    # Plus Smoke `smoke:N` and Flood Gen4 `flood:N`: `alarm` true while it detects; `mute` (a silenced siren) is
    # a setting of the device, not a reading.
    "smoke": (_f("alarm", "smoke_co_alarm", "smoke", _bool),),
    "flood": (_f("alarm", "water_leak", "leak", _bool),),
    "wifi": (_f("rssi", "connectivity", "rssi_dbm"),),
    # An input set to "button" reports presses as NotifyEvent and a null `state`; one set to "switch" (a wall
    # switch wired to an i4) reports its position in `state`: a read-only on/off.
    "input": (_f("state", "on_off", "on", _bool),),
}



@dataclass(frozen=True, slots=True)
class ShellyModel:
    """What a device id's model part (``shellyplusht`` of ``shellyplusht-08b61fcd36a8``) says before the device
    says anything itself: what ``Shelly.GetDeviceInfo`` would answer, whether it sleeps, and the status keys every
    unit of the model has (whatever its profile), so that components are named right from the first status topic."""

    app: str  # Shelly.GetDeviceInfo `app`: our `model`. Not the SKU: one id's model part has several hardware
    # revisions (a Pro 4PM is SPSW-004PE16EU or SPSW-104PE16EU), so hw_version stays the device's own word.
    keys: tuple[str, ...] = ()
    sleeps: bool = False  # a battery device: awake a few seconds per wake-up, never answers a request


def _model(app: str, keys: str = "", *, sleeps: bool = False) -> ShellyModel:
    return ShellyModel(app, tuple(keys.split()), sleeps)


#: Device id model part -> model. From genuine GetDeviceInfo + GetStatus dumps (Luligu/matterbridge-shelly
#: ``src/mock/*.json`` @bba3c45): ``app``, and the status keys of our kinds present in every dump of
#: that model (a Plus 2PM's ``switch:0``/``cover:0`` depend on its profile, so only its inputs are listed);
#: ``sleeps`` where the dump's ``sys`` has a ``wakeup_period``. Supporting a model is adding a row.
MODELS: dict[str, ShellyModel] = {
    "shelly0110dimg3": _model("Dimmer0110VPMG3", "input:0 input:1 light:0"),
    "shelly1g3": _model("S1G3", "input:0 switch:0"),
    "shelly1g4": _model("S1G4", "input:0 switch:0"),
    "shelly1mini": _model("Plus1Mini", "input:0 switch:0"),
    "shelly1minig3": _model("Mini1G3", "input:0 switch:0"),
    "shelly1minig4": _model("Mini1G4", "input:0 switch:0"),
    "shelly1pmg3": _model("S1PMG3", "input:0 switch:0"),
    "shelly1pmg4": _model("S1PMG4", "input:0 switch:0"),
    "shelly1pmmini": _model("Plus1PMMini", "input:0 switch:0"),
    "shelly1pmminig3": _model("Mini1PMG3", "input:0 switch:0"),
    "shelly1pmminig4": _model("Mini1PMG4", "input:0 switch:0"),
    "shelly2lg3": _model("S2LG3", "input:0 input:1 switch:0 switch:1"),
    "shelly2pmg3": _model("S2PMG3", "input:0 input:1"),
    "shelly2pmg4": _model("S2PMG4", "input:0 input:1"),
    "shelly3em63g3": _model("S3EMG3", "em:0 emdata:0 temperature:0"),
    "shellyazplug": _model("PlugAZ", "switch:0"),
    "shellybludongle": _model("BluDongle"),
    "shellyblugw": _model("BluGw"),
    "shellyblugwg3": _model("BluGwG3"),
    "shellyddimmerg3": _model("DDimmerG3", "input:0 input:1 light:0"),
    "shellyemg3": _model("EMG3", "em1:0 em1:1 em1data:0 em1data:1 switch:0"),
    "shellyemminig4": _model("MiniEMG4", "em1:0 em1data:0"),
    "shellyfloodg4": _model("FloodSensorG4", "devicepower:0 flood:0", sleeps=True),
    "shellyhtg3": _model("HTG3", "devicepower:0 humidity:0 temperature:0", sleeps=True),
    "shellyi4g3": _model("I4G3", "input:0 input:1 input:2 input:3"),
    "shellyoutdoorsg3": _model("OutdoorPlugSG3", "switch:0"),
    "shellyplugsg3": _model("PlugSG3", "switch:0"),
    "shellyplus010v": _model("Plus10V", "input:0 input:1 light:0"),
    "shellyplus1": _model("Plus1", "input:0 switch:0"),
    "shellyplus1pm": _model("Plus1PM", "input:0 switch:0"),
    "shellyplus2pm": _model("Plus2PM", "input:0 input:1"),
    "shellyplusht": _model("PlusHT", "devicepower:0 humidity:0 temperature:0", sleeps=True),
    "shellyplusi4": _model("PlusI4", "input:0 input:1 input:2 input:3"),
    "shellyplusplugit": _model("PlusPlugIT", "switch:0"),
    "shellyplusplugs": _model("PlusPlugS", "switch:0"),
    "shellypluspluguk": _model("PlusPlugUK", "switch:0"),
    "shellyplusrgbwpm": _model("PlusRGBWPM", "input:0 input:1 input:2 input:3"),
    "shellyplussmoke": _model("PlusSmoke", "devicepower:0 smoke:0", sleeps=True),
    "shellyplusuni": _model("PlusUni", "input:0 input:1 input:2 switch:0 switch:1"),
    "shellypluswdus": _model("PlusWallDimmer", "light:0"),
    "shellypmminig3": _model("MiniPMG3", "pm1:0"),
    "shellypro0110pm": _model("ProDimmer0110VPM", "input:0 input:1 light:0"),
    "shellypro1pm": _model("Pro1PM", "input:0 input:1 switch:0"),
    "shellypro2cb": _model("ProCB"),
    "shellypro2pm": _model("Pro2PM", "input:0 input:1"),
    "shellypro3": _model("Pro3", "input:0 input:1 input:2 switch:0 switch:1 switch:2"),
    "shellypro3cb": _model("ProCB"),
    # triphase profile: em:0 + emdata:0; monophase: em1:0..2 + em1data:0..2. Both: its own temperature:0.
    "shellypro3em": _model("Pro3EM", "temperature:0"),
    "shellypro4pm": _model("Pro4PM", "input:0 input:1 input:2 input:3 switch:0 switch:1 switch:2 switch:3"),
    "shellyprodm1pm": _model("ProDimmerx", "input:0 input:1 light:0"),
    "shellyprodm2pm": _model("ProDimmerx", "input:0 input:1 input:2 input:3 light:0 light:1"),
    "shellyproem50": _model("ProEM", "em1:0 em1:1 em1data:0 em1data:1 switch:0"),
    "shellyprorgbwwpm": _model("ProRGBWWPM", "input:0 input:1 input:2 input:3 input:4"),
    "shellypstripg4": _model("PowerStrip", "switch:0 switch:1 switch:2 switch:3"),
    "shellyshutter": _model("S2PMG3Shutter", "cover:0 input:0 input:1"),
    "shellywalldisplay": _model("WallDisplay", "devicepower:0 humidity:0 illuminance:0 input:0 switch:0 temperature:0"),
}


def model_for(shelly_id: str) -> ShellyModel | None:
    """The model a device id names (``shellyhtg3-3030f9ec8468`` -> H&T Gen3), if it is one we know."""
    head, sep, _ = shelly_id.strip().lower().rpartition("-")
    return MODELS.get(head) if sep else None


#: What each kind can be told to do: (capability -> commands), given its status.
def _commands_of(kind: str, status: dict[str, Any]) -> dict[str, frozenset[str]]:
    if kind == "switch":
        return {"on_off": frozenset({"on", "off", "toggle"})}
    if kind == "light":
        return {"on_off": frozenset({"on", "off", "toggle"}), "level": frozenset({"set"})}
    if kind == "cover":
        # GoToPosition needs a calibrated cover (pos_control); open/close/stop always work.
        commands = {"open", "close", "stop"}
        if status.get("pos_control") is True:
            commands.add("set_position")
        return {"cover": frozenset(commands)}
    return {}


def _split_key(key: str) -> tuple[str, int] | None:
    kind, sep, num = key.partition(":")
    if not sep:
        return (kind, 0) if kind in ("wifi",) else None
    if not num.isdigit() or kind not in FIELDS:
        return None
    return kind, int(num)


def reads_status_key(key: str) -> bool:
    """Whether ``<prefix>/status/<key>`` is one we read (a component of ours, or ``sys``); ``cloud``, ``ble``,
    ``ws``, ``ht_ui``, ``script:1``… are not even parsed."""
    return key == "sys" or _split_key(key) is not None


def component_names(keys: Iterable[str]) -> dict[str, str]:
    """Status key (``switch:1``) -> component name (``switch_1``), by the rule in the module docstring."""
    parsed: dict[str, tuple[str, int]] = {}
    for key in keys:
        split = _split_key(key)
        if split is not None:
            parsed[key] = split
    by_kind: dict[str, list[int]] = {}
    for kind, num in parsed.values():
        by_kind.setdefault(TWIN_OF.get(kind, kind), []).append(num)
    primary = next((k for k in PRIMARY_KINDS if k in by_kind), None)
    main_of: dict[str, int] = {}
    if primary is not None:
        main_of[primary] = min(by_kind[primary])
    for kind in MAIN_SENSOR_KINDS:
        if kind in by_kind:
            main_of[kind] = min(by_kind[kind])
    names: dict[str, str] = {}
    for key, (kind, num) in parsed.items():
        base = TWIN_OF.get(kind, kind)
        if kind == "wifi" or main_of.get(base) == num:
            names[key] = "main"
        else:
            names[key] = f"{base}_{num}"
    return names


def _part_component(component: str, part: str) -> str:
    if not part:
        return component
    return part if component == "main" else f"{component}_{part}"


def _dig(status: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    value: Any = status
    for step in path:
        if not isinstance(value, dict) or step not in value:
            return False, None
        value = value[step]
    return True, value


# ---------------------------------------------------------------------------------------------- RPC


def rpc_request(request_id: int, src: str, method: str, params: dict[str, Any] | None = None) -> bytes:
    """A JSON-RPC request frame, as every Shelly channel (MQTT ``<prefix>/rpc``, WebSocket, HTTP POST /rpc) takes it."""
    frame: dict[str, Any] = {"id": request_id, "src": src, "method": method}
    if params is not None:
        frame["params"] = params
    return orjson.dumps(frame)


@dataclass(frozen=True, slots=True)
class RpcReply:
    id: int | str
    src: str | None
    result: Any = None
    error: str | None = None  # "<message> (code <n>)" for an error frame

    @property
    def ok(self) -> bool:
        return self.error is None


def decode_rpc_reply(frame: Any) -> RpcReply:
    """A response frame (``{"id", "src", "dst", "result"}`` or ``{"id", …, "error": {"code", "message"}}``)."""
    if not isinstance(frame, dict):
        raise _bad(f"RPC reply is not an object: {_short(frame)}")
    rid = frame.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (int, str)):
        raise _bad(f"RPC reply without a usable id: {_short(frame)}")
    src = frame.get("src") if isinstance(frame.get("src"), str) else None
    if "error" in frame:
        error = frame["error"]
        if isinstance(error, dict):
            message = str(error.get("message") or "error")
            code = error.get("code")
            text = f"{message} (code {code})" if code is not None else message
        else:
            text = _short(error)
        return RpcReply(rid, src, None, text)
    if "result" not in frame:
        raise _bad(f"RPC reply with neither result nor error: {_short(frame)}")
    return RpcReply(rid, src, frame["result"])


# ---------------------------------------------------------------------------------------------- device


@dataclass(slots=True)
class Decoded:
    """What one frame means. The adapter applies it to its context in this order."""

    upserts: list[DeviceInfo] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    events: list[DeviceEventUpdate] = field(default_factory=list)
    availability: list[tuple[str, bool | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Understood and deliberately not used (gateway.sdk.apply_decoded: debug log, replay's notes).
    notes: list[str] = field(default_factory=list)

    def extend(self, other: Decoded) -> None:
        self.upserts += other.upserts
        self.removals += other.removals
        self.updates += other.updates
        self.events += other.events
        self.availability += other.availability
        self.problems += other.problems
        self.notes += other.notes


class ShellyDevice:
    """One Shelly Gen2+ device as its frames describe it. Nothing is reported until the device is described: by a
    full status (``Shelly.GetStatus`` or ``NotifyFullStatus``), whose keys name the components, or by the first of
    its own status topics (:meth:`apply_component_status`), named from the keys seen so far and those its model
    always has. A ``NotifyStatus`` alone describes nothing (``switch:2`` alone would look like the only switch)."""

    def __init__(self, shelly_id: str) -> None:
        self.shelly_id = shelly_id.strip().lower()
        self.id = device_id_for(self.shelly_id)
        self.model = model_for(self.shelly_id)
        self.device_info: dict[str, Any] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.full = False  # a full status was seen
        self.names: dict[str, str] = {}  # status key -> component
        self.keys_by_component: dict[str, dict[str, str]] = {}  # component -> kind -> status key
        self.info: DeviceInfo | None = None
        self._internal: frozenset[str] = frozenset()  # status keys that are the device's own, not readings

    @property
    def sleeps(self) -> bool:
        """A battery device that is awake only a few seconds per wake-up: asking it anything is pointless."""
        sys_status = self.status.get("sys")
        return bool((self.model is not None and self.model.sleeps) or (
            isinstance(sys_status, dict) and sys_status.get("wakeup_period") is not None))

    # -- input

    def apply_device_info(self, info: Any) -> Decoded:
        out = Decoded()
        if not isinstance(info, dict):
            out.problems.append(f"{SOURCE} {self.shelly_id}: Shelly.GetDeviceInfo is not an object: {_short(info)}")
            return out
        self.device_info = info
        if self.info is not None:
            self._describe(out, force=False)
        return out

    def apply_full_status(self, status: Any) -> Decoded:
        out = Decoded()
        if not isinstance(status, dict):
            out.problems.append(f"{SOURCE} {self.shelly_id}: full status is not an object: {_short(status)}")
            return out
        self.status = {k: dict(v) for k, v in status.items() if isinstance(v, dict)}
        self.full = True
        self._describe(out, force=False)
        self._report(self.status, out)
        return out

    def apply_component_status(self, key: str, status: Any) -> Decoded:
        """``<prefix>/status/<key>``: the whole status of one component (``mqtt.status_ntf``), replacing what we had
        of it. The first one describes the device (a sleeping device never answers a GetStatus); ``sys`` adds the
        MAC (and on a Wall Display the model); keys of no kind of ours (``cloud``, ``ble``, ``ws``…) are not read."""
        out = Decoded()
        if key == "sys":
            if not isinstance(status, dict):
                out.problems.append(f"{SOURCE} {self.shelly_id}: status/sys is not an object: {_short(status)}")
                return out
            self.status["sys"] = dict(status)
            if self.info is not None:
                self._describe(out, force=False)  # the MAC, a model: an upsert only if they changed
            return out
        if _split_key(key) is None:
            return out
        if not isinstance(status, dict):
            out.problems.append(f"{SOURCE} {self.shelly_id}: status/{key} is not an object: {_short(status)}")
            return out
        new_key = key not in self.status
        self.status[key] = dict(status)
        if self.info is None or new_key:
            first = self.info is None
            renamed = self._describe(out, force=False)
            if first or renamed:
                self._report(self.status, out)  # what was kept, under the components' (new) names
                return out
        self._report({key: self.status[key]}, out)
        return out

    def apply_partial_status(self, params: Any) -> Decoded:
        """``NotifyStatus`` params: overlaid on what we know, reported once the device is described."""
        out = Decoded()
        if not isinstance(params, dict):
            out.problems.append(f"{SOURCE} {self.shelly_id}: NotifyStatus params are not an object: {_short(params)}")
            return out
        changed: dict[str, dict[str, Any]] = {}
        new_key = False
        for key, part in params.items():
            if not isinstance(part, dict):
                continue  # ts
            if key == "sys":
                _overlay(self.status.setdefault("sys", {}), part)  # a wake-up's `wakeup_period`
                continue
            if _split_key(key) is None:
                continue  # cloud, mqtt, ble …
            current = self.status.get(key)
            if current is None:
                current = self.status[key] = {}
                new_key = True
            _overlay(current, part)
            changed[key] = part
        if self.info is None:
            return out  # kept, reported once a full status or a status topic describes the device
        if new_key and self._describe(out, force=False):
            changed = self.status  # renamed: every value again, under its new component
        self._report(changed, out)
        return out

    def apply_events(self, params: Any) -> Decoded:
        """``NotifyEvent`` params: input presses become button events; other events are not ours."""
        out = Decoded()
        events = params.get("events") if isinstance(params, dict) else None
        if not isinstance(events, list):
            out.problems.append(f"{SOURCE} {self.shelly_id}: NotifyEvent without an events list: {_short(params)}")
            return out
        for event in events:
            if not isinstance(event, dict):
                continue
            key = event.get("component")
            name = event.get("event")
            if (not isinstance(key, str) or not key.startswith("input:") or not isinstance(name, str)
                    or name not in BUTTON_EVENTS):
                continue  # emdata "data", config_changed, scripts, BTHome devices: not presses
            component = self.names.get(key)
            if component is None:
                continue  # not described yet (no full status): a press is not worth a guess
            split = _split_key(key)
            button = split[1] if split else 0
            kind = BUTTON_EVENTS[name]
            data: dict[str, Any] = {"button": button, "action": name}
            if kind is not None:
                data["kind"] = kind
                out.updates.append(Update(self.id, component, "button", "last_event", kind))
                out.updates.append(Update(self.id, component, "button", "button", button))
            out.events.append(DeviceEventUpdate(self.id, component, "button", "pressed", data))
        return out

    def apply_notification(self, frame: Any) -> Decoded:
        """A notification frame from any channel: NotifyStatus, NotifyFullStatus or NotifyEvent."""
        if not isinstance(frame, dict):
            out = Decoded()
            out.problems.append(f"{SOURCE} {self.shelly_id}: notification is not an object: {_short(frame)}")
            return out
        method = frame.get("method")
        params = frame.get("params")
        if method == "NotifyStatus":
            return self.apply_partial_status(params)
        if method == "NotifyFullStatus":
            return self.apply_full_status(params)
        if method == "NotifyEvent":
            return self.apply_events(params)
        out = Decoded()
        out.problems.append(f"{SOURCE} {self.shelly_id}: unknown notification method {_short(method)}")
        return out

    # -- output

    def _describe(self, out: Decoded, *, force: bool) -> bool:
        """Name the components and say what each can do; upsert if that changed. True if a component that had a
        name before got another one (its values must be reported again)."""
        keys: Iterable[str] = self.status
        if not self.full and self.model is not None:
            # From status topics, keys come one by one: those the model always has are named as if already seen.
            keys = [*self.model.keys, *self.status]
        names = component_names(keys)
        kinds = {split[0] for split in map(_split_key, names) if split is not None}
        internal: set[str] = set()
        components: dict[str, dict[str, CapabilitySupport]] = {}
        keys_by_component: dict[str, dict[str, str]] = {}
        for key, component in names.items():
            split = _split_key(key)
            if split is None:
                continue
            kind = split[0]
            if kind == "temperature" and split[1] < PERIPHERAL_ID_MIN and any(k in kinds for k in METER_KINDS):
                internal.add(key)
                continue
            keys_by_component.setdefault(component, {})[kind] = key
            if key not in self.status:
                continue  # named from the model, not heard from yet: no capability without a value
            status = self.status[key]
            switch_input = kind == "input" and isinstance(status.get("state"), bool)
            for fld in FIELDS.get(kind, ()):
                found, raw = _dig(status, fld.path)
                if not found or (kind == "input" and raw is None):
                    continue
                _add_support(components, _part_component(component, fld.part), fld.capability, {fld.attribute}, ())
            for cap, commands in _commands_of(kind, status).items():
                _add_support(components, component, cap, (), commands)
            if kind == "input" and not switch_input:
                _add_support(components, component, "button", {"last_event", "button"}, ())
        renamed = any(names.get(key) not in (None, name) for key, name in self.names.items())
        self.names = {key: name for key, name in names.items() if key not in internal}
        self.keys_by_component = keys_by_component
        self._internal = frozenset(internal)
        info = self._info(components or {"main": {}})
        if force or self.info is None or _info_key(info) != _info_key(self.info):
            self.info = info
            out.upserts.append(info)
        return renamed

    def _info(self, components: dict[str, dict[str, CapabilitySupport]]) -> DeviceInfo:
        di = self.device_info
        # A Wall Display's sys status carries its app, model and version; other devices' sys only the MAC.
        sys_status = self.status.get("sys", {})

        def text(key: str, *sources: dict[str, Any]) -> str | None:
            for source in sources or (di,):
                value = source.get(key)
                if isinstance(value, str) and value.strip():
                    return value.strip()
            return None

        mac = text("mac")
        if mac and re.fullmatch(r"[0-9A-Fa-f]{12}", mac):
            mac = ":".join(mac[i:i + 2] for i in range(0, 12, 2)).lower()
        elif mac is None:
            sys_mac = text("mac", sys_status)
            # Only a MAC that is one: published captures mask it ("foobarbarfoo").
            if sys_mac and re.fullmatch(r"[0-9A-Fa-f]{12}", sys_mac):
                mac = ":".join(sys_mac[i:i + 2] for i in range(0, 12, 2)).lower()
        model = self.model
        return DeviceInfo(
            id=self.id,
            name=text("name") or self.shelly_id,
            source=SOURCE,
            components=components,
            manufacturer="Shelly",
            model=text("app", di, sys_status) or text("model") or (model.app if model else None),
            sw_version=text("ver", di, sys_status),
            hw_version=text("model", di, sys_status),  # the SKU (SNSW-001P16EU)
            mac=mac,
            aliases=(self.shelly_id,),
        )

    def _report(self, statuses: dict[str, dict[str, Any]], out: Decoded) -> None:
        for key, status in statuses.items():
            component = self.names.get(key)
            split = _split_key(key)
            if component is None or split is None or key in self._internal:
                continue
            # On external power (USB, the H&T's mains add-on) a devicepower's battery reading is not a battery's:
            # the H&T then reports 0 % at 0.43 V. Unknown, rather than an empty battery raising alerts.
            no_battery = split[0] == "devicepower" and _dig(self.status.get(key, status), ("external", "present")) == (
                True, True)
            for fld in FIELDS.get(split[0], ()):
                found, raw = _dig(status, fld.path)
                if not found or (raw is None and split[0] == "input"):  # a button input's state: none
                    continue
                if no_battery and fld.capability == "battery":
                    raw = None
                target = _part_component(component, fld.part)
                try:
                    value = None if raw is None else fld.convert(raw)
                except CodecError as err:
                    out.problems.append(f"{SOURCE} {self.shelly_id}: {key}.{'.'.join(fld.path)}: {err}")
                    continue
                if value is None and raw is not None:
                    continue  # a state with no name in our model (cover "calibrating")
                spec = capability(fld.capability)
                problem = spec.attributes[fld.attribute].check(value) if spec else "unknown capability"
                if problem:
                    out.problems.append(f"{SOURCE} {self.shelly_id}: {key}.{'.'.join(fld.path)}: {problem}")
                    continue
                out.updates.append(Update(self.id, target, fld.capability, fld.attribute, value))

    # -- commands

    def encode(self, command: Command) -> tuple[str, dict[str, Any]]:
        """(RPC method, params) that carry out ``command``. Raises CodecError if this device cannot."""
        kinds = self.keys_by_component.get(command.component, {})
        cap, cmd = command.capability, command.command
        if cap in ("on_off", "level"):
            kind = "light" if "light" in kinds else "switch" if "switch" in kinds and cap == "on_off" else None
        elif cap == "cover":
            kind = "cover" if "cover" in kinds else None
        else:
            kind = None
        if kind is None:
            raise _bad(f"{self.id} component {command.component!r} has no Shelly component for {cap}.{cmd}")
        key = kinds[kind]
        ns = {"switch": "Switch", "light": "Light", "cover": "Cover"}[kind]
        cid = int(key.split(":")[1])
        args = command.args if isinstance(command.args, dict) else {}
        if cap == "on_off":
            if cmd == "toggle":
                return f"{ns}.Toggle", {"id": cid}
            if cmd in ("on", "off"):
                return f"{ns}.Set", {"id": cid, "on": cmd == "on"}
        elif cap == "level" and cmd == "set":
            percent = _arg_percent(args, "percent")
            params: dict[str, Any] = {"id": cid, "on": percent > 0, "brightness": _int_if_whole(percent)}
            if percent == 0:
                params = {"id": cid, "on": False}
            transition = args.get("transition_s")
            if transition is not None:
                params["transition_duration"] = _number(transition)
            return "Light.Set", params
        elif cap == "cover":
            if cmd == "open":
                return "Cover.Open", {"id": cid}
            if cmd == "close":
                return "Cover.Close", {"id": cid}
            if cmd == "stop":
                return "Cover.Stop", {"id": cid}
            if cmd == "set_position":
                return "Cover.GoToPosition", {"id": cid, "pos": round(_arg_percent(args, "percent"))}
        raise _bad(f"shelly cannot send {cap}.{cmd}")


def _arg_percent(args: dict[str, Any], name: str) -> float:
    value = _number(args.get(name))
    if not 0 <= value <= 100:
        raise _bad(f"{name} {value} is outside 0..100")
    return value


def _int_if_whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _overlay(target: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _overlay(target[key], value)
        else:
            target[key] = value


def _add_support(components: dict[str, dict[str, CapabilitySupport]], component: str, cap: str,
                 attributes: Iterable[str], commands: Iterable[str]) -> None:
    caps = components.setdefault(component, {})
    old = caps.get(cap) or CapabilitySupport(frozenset())
    caps[cap] = CapabilitySupport(old.attributes | frozenset(attributes), old.commands | frozenset(commands))


def _info_key(info: DeviceInfo) -> tuple[Any, ...]:
    comps = tuple(sorted((c, tuple(sorted((k, tuple(sorted(s.attributes)), tuple(sorted(s.commands)))
                                          for k, s in caps.items()))) for c, caps in info.components.items()))
    return (info.name, info.model, info.sw_version, info.hw_version, info.mac, comps)
