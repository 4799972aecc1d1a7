"""The Shelly Gen2+ device model, independent of the transport: status and notification JSON in, typed updates
out; commands in, JSON-RPC method and params out.

Pure (no I/O, no clock, no globals that change): :class:`ShellyDevice` holds only what one device told it
(``Shelly.GetDeviceInfo``, the last full status with every ``NotifyStatus`` overlaid). The MQTT transport
(:mod:`adapters.shelly.mqtt_codec`, :mod:`adapters.mqtt.shelly`) and the HTTP/WebSocket transport of the
mDNS adapter feed it the same frames, so a device is the same device, with the same components, either way.

Device id: ``shelly:<id>``, ``id`` being ``Shelly.GetDeviceInfo``'s ``id`` (the ``src`` of every frame the
device sends), lowercased: ``shelly:shellyplus1pm-441793d69718``. Never the MQTT topic prefix (a user setting).

Component naming (DESIGN.md contract 2), one rule for every transport:

* ``main`` holds the lowest-id instance of the device's first-class kind, the first present of
  ``cover, light, switch, em, em1, pm1, input`` (with its ``emdata``/``em1data`` twin), plus the lowest-id
  ``temperature`` and ``humidity`` sensors and the device-wide ``wifi`` (signal) and ``devicepower`` (battery);
* every other instance is ``<kind>_<id>``: the Pro 4PM is ``main``, ``switch_1``, ``switch_2``, ``switch_3``
  and ``input_0`` … ``input_3``; a Plus 2PM in cover mode is ``main`` (``cover:0``), ``input_0``, ``input_1``;
* a 3-phase ``em`` meter's phases are ``l1``, ``l2``, ``l3`` (``em_<id>_l1`` … for ``em:1`` and up).

Units: ``aenergy.total`` and ``emdata``/``em1data`` totals are Wh (``by_minute`` is mWh and not used) and
become kWh. A switch's ``temperature.tC`` is the relay's own internal temperature, not the room's: it is not
reported (a scene must never heat a room because a relay is warm).

Device support is data: :data:`FIELDS` maps each component kind's status keys to capability attributes.
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
    "SOURCE",
    "Decoded",
    "RpcReply",
    "ShellyDevice",
    "component_names",
    "decode_rpc_reply",
    "device_id_for",
    "looks_like_shelly_id",
    "parse_json",
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
MAIN_SENSOR_KINDS = ("temperature", "humidity", "devicepower")

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
    "wifi": (_f("rssi", "connectivity", "rssi_dbm"),),
    # An input set to "button" reports presses as NotifyEvent and a null `state`; one set to "switch" (a wall
    # switch wired to an i4) reports its position in `state`: a read-only on/off.
    "input": (_f("state", "on_off", "on", _bool),),
}

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

    def extend(self, other: Decoded) -> None:
        self.upserts += other.upserts
        self.removals += other.removals
        self.updates += other.updates
        self.events += other.events
        self.availability += other.availability
        self.problems += other.problems


class ShellyDevice:
    """One Shelly Gen2+ device as its frames describe it. Nothing is reported until a full status is known
    (``Shelly.GetStatus`` or ``NotifyFullStatus``): components are named from the whole set of them."""

    def __init__(self, shelly_id: str) -> None:
        self.shelly_id = shelly_id.strip().lower()
        self.id = device_id_for(self.shelly_id)
        self.device_info: dict[str, Any] = {}
        self.status: dict[str, dict[str, Any]] = {}
        self.full = False  # a full status was seen
        self.names: dict[str, str] = {}  # status key -> component
        self.keys_by_component: dict[str, dict[str, str]] = {}  # component -> kind -> status key
        self.info: DeviceInfo | None = None

    # -- input

    def apply_device_info(self, info: Any) -> Decoded:
        out = Decoded()
        if not isinstance(info, dict):
            out.problems.append(f"{SOURCE} {self.shelly_id}: Shelly.GetDeviceInfo is not an object: {_short(info)}")
            return out
        self.device_info = info
        if self.full:
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

    def apply_partial_status(self, params: Any) -> Decoded:
        """``NotifyStatus`` params (or one ``<prefix>/status/<key>`` as ``{key: status}``): overlaid on what we know."""
        out = Decoded()
        if not isinstance(params, dict):
            out.problems.append(f"{SOURCE} {self.shelly_id}: NotifyStatus params are not an object: {_short(params)}")
            return out
        changed: dict[str, dict[str, Any]] = {}
        new_key = False
        for key, part in params.items():
            if not isinstance(part, dict) or _split_key(key) is None:
                continue  # ts, sys, cloud, mqtt, ble …
            current = self.status.get(key)
            if current is None:
                current = self.status[key] = {}
                new_key = True
            _overlay(current, part)
            changed[key] = part
        if not self.full:
            return out  # kept, reported once the full status names the components
        if new_key:
            self._describe(out, force=False)
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
            if not isinstance(key, str) or not key.startswith("input:") or name not in BUTTON_EVENTS:
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

    def _describe(self, out: Decoded, *, force: bool) -> None:
        names = component_names(self.status)
        components: dict[str, dict[str, CapabilitySupport]] = {}
        keys_by_component: dict[str, dict[str, str]] = {}
        for key, component in names.items():
            split = _split_key(key)
            if split is None:
                continue
            kind = split[0]
            keys_by_component.setdefault(component, {})[kind] = key
            status = self.status.get(key, {})
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
        self.names = names
        self.keys_by_component = keys_by_component
        info = self._info(components or {"main": {}})
        if force or self.info is None or _info_key(info) != _info_key(self.info):
            self.info = info
            out.upserts.append(info)

    def _info(self, components: dict[str, dict[str, CapabilitySupport]]) -> DeviceInfo:
        di = self.device_info

        def text(key: str) -> str | None:
            value = di.get(key)
            return value.strip() if isinstance(value, str) and value.strip() else None

        mac = text("mac")
        if mac and re.fullmatch(r"[0-9A-Fa-f]{12}", mac):
            mac = ":".join(mac[i:i + 2] for i in range(0, 12, 2)).lower()
        return DeviceInfo(
            id=self.id,
            name=text("name") or self.shelly_id,
            source=SOURCE,
            components=components,
            manufacturer="Shelly",
            model=text("app") or text("model"),
            sw_version=text("ver"),
            hw_version=text("model"),  # the SKU (SNSW-001P16EU)
            mac=mac,
            aliases=(self.shelly_id,),
        )

    def _report(self, statuses: dict[str, dict[str, Any]], out: Decoded) -> None:
        for key, status in statuses.items():
            component = self.names.get(key)
            split = _split_key(key)
            if component is None or split is None:
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
