"""The Homie convention (v4 and v5) as a pure codec: topics and payloads in, typed updates out; commands in,
``…/<property>/set`` messages out.

* v4: ``<base>/<device>/$homie``, ``$state``, ``$name``, ``$nodes``, ``<node>/$properties``,
  ``<node>/<prop>/$datatype|$unit|$settable|$format|$name|$retained``, values on ``<node>/<prop>``.
* v5: ``<base>/5/<device>/$state``, ``$description`` (one JSON document), values on ``<node>/<prop>``;
  an empty ``$state`` removes the device.

Device id ``homie:<device id>``. Components: a device with one node has it as ``main``; with several, each
node is the component of its own id (the node ids are the device's native channel names).

Availability from ``$state``: ``ready``/``alert`` online, ``init`` unknown, ``disconnected``/``sleeping``/``lost``
offline (a sleeping device takes no command).

Mapping is data (:data:`UNIT_RULES`, :data:`BOOLEAN_RULES`): a property maps to a capability only when its
datatype, unit and name make the meaning clear (°C/°F temperature, % humidity, W/V/A power, kWh/Wh energy, a
settable boolean ``on``/``power``/``state`` switch, a settable % ``brightness`` level …). The others are listed
in :attr:`HomieDevice.unmapped` and reported at debug level: the core model has no free-form attribute yet.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.sdk import CapabilitySupport, CodecError, Command, DeviceInfo, Update, capability

__all__ = ["BOOLEAN_RULES", "SOURCE", "UNIT_RULES", "Binding", "Decoded", "HomieCodec", "HomieDevice", "PropertyDef"]

SOURCE = "homie"
MAX_PAYLOAD_BYTES = 64 * 1024
# Values of properties not described yet are kept (last per topic) until the description arrives.
MAX_PENDING_PER_DEVICE = 500

_AVAILABLE = {"ready": True, "alert": True, "init": None, "disconnected": False, "sleeping": False, "lost": False}


def _bad(why: str) -> CodecError:
    return CodecError(why)


@dataclass(slots=True)
class PropertyDef:
    node: str
    id: str
    datatype: str = "string"
    unit: str = ""
    settable: bool = False
    retained: bool = True
    format: str = ""
    name: str = ""


Scale = Callable[[float], float]


@dataclass(frozen=True, slots=True)
class Binding:
    """Where one property's value goes, and how to write it back."""

    prop: PropertyDef
    component: str
    capability: str
    attribute: str
    scale: Scale  # native -> canonical
    commands: frozenset[str] = frozenset()


def _ident(v: float) -> float:
    return v


def _f_to_c(v: float) -> float:
    return round((v - 32) * 5 / 9, 2)


#: (unit, datatype class) -> (capability, attribute, scale); "num" = integer or float
UNIT_RULES: dict[str, tuple[str, str, Scale]] = {
    "°C": ("temperature", "celsius", _ident),
    "°F": ("temperature", "celsius", _f_to_c),
    "W": ("power_meter", "watts", _ident),
    "kW": ("power_meter", "watts", lambda v: v * 1000),
    "V": ("power_meter", "volts", _ident),
    "A": ("power_meter", "amps", _ident),
    "kWh": ("energy_meter", "kwh", _ident),
    "Wh": ("energy_meter", "kwh", lambda v: v / 1000),
    "lx": ("illuminance", "lux", _ident),
    "hPa": ("pressure", "hpa", _ident),
    "Pa": ("pressure", "hpa", lambda v: v / 100),
    "dBm": ("connectivity", "rssi_dbm", _ident),
}
#: "%" properties, by a word in the property id
PERCENT_RULES: dict[str, tuple[str, str]] = {
    "humidity": ("humidity", "percent"),
    "battery": ("battery", "percent"),
    "brightness": ("level", "percent"),
    "level": ("level", "percent"),
    "dim": ("level", "percent"),
    "intensity": ("level", "percent"),
}
#: boolean properties by id: (capability, attribute, needs settable)
BOOLEAN_RULES: dict[str, tuple[str, str, bool]] = {
    "on": ("on_off", "on", True),
    "power": ("on_off", "on", True),
    "state": ("on_off", "on", True),
    "switch": ("on_off", "on", True),
    "relay": ("on_off", "on", True),
    "motion": ("occupancy", "occupied", False),
    "occupancy": ("occupancy", "occupied", False),
    "presence": ("occupancy", "occupied", False),
    "leak": ("water_leak", "leak", False),
    "smoke": ("smoke_co_alarm", "smoke", False),
}
_COMMANDS = {("on_off", "on"): frozenset({"on", "off", "toggle"}), ("level", "percent"): frozenset({"set"})}


def _range(fmt: str) -> tuple[float, float] | None:
    low, sep, high = fmt.partition(":")
    if not sep:
        return None
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        return None
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) and hi > lo else None


def map_property(prop: PropertyDef, component: str) -> Binding | None:
    """The binding of one property, or None when its meaning is not clear enough to map."""
    dt, unit, pid = prop.datatype, prop.unit.strip(), prop.id.lower()
    if dt == "boolean":
        rule = BOOLEAN_RULES.get(pid)
        if rule is None or (rule[2] and not prop.settable):
            return None
        cap, attr, _ = rule
        return Binding(prop, component, cap, attr, _ident, _COMMANDS.get((cap, attr), frozenset()) if prop.settable
                       else frozenset())
    if dt not in ("integer", "float"):
        return None
    if unit == "%":
        for word, (cap, attr) in PERCENT_RULES.items():
            if word in pid:
                scale: Scale = _ident
                rng = _range(prop.format)
                if rng is not None and rng != (0.0, 100.0):
                    lo, hi = rng
                    # A 0:255 brightness: scaled to our 0-100 %.
                    scale = lambda v, lo=lo, hi=hi: round((v - lo) * 100 / (hi - lo), 1)  # noqa: E731
                commands = _COMMANDS.get((cap, attr), frozenset()) if prop.settable else frozenset()
                return Binding(prop, component, cap, attr, scale, commands)
        return None
    rule2 = UNIT_RULES.get(unit)
    if rule2 is None:
        if unit == "ppm" and "co2" in pid:
            return Binding(prop, component, "air_quality", "co2_ppm", _ident)
        return None
    cap, attr, scale = rule2
    return Binding(prop, component, cap, attr, scale)


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_value(prop: PropertyDef, text: str) -> Any:
    """A property payload by its datatype: integer, float, boolean; other datatypes stay strings."""
    dt = prop.datatype
    if dt == "boolean":
        if text == "true":
            return True
        if text == "false":
            return False
        raise _bad(f"expected true/false, got {_short(text)}")
    if dt in ("integer", "float"):
        try:
            value = int(text) if dt == "integer" else float(text)
        except ValueError as err:
            raise _bad(f"expected {dt}, got {_short(text)}") from err
        if isinstance(value, float) and not math.isfinite(value):
            raise _bad(f"expected a finite number, got {text}")
        return value
    return text


@dataclass(slots=True)
class Decoded:
    upserts: list[DeviceInfo] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    availability: list[tuple[str, bool | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # debug-level: what we saw and did not map


class HomieDevice:
    """One Homie device as its topics describe it."""

    def __init__(self, native_id: str, version: int) -> None:
        self.native_id = native_id
        self.id = f"{SOURCE}:{native_id.lower()}"
        self.version = version
        self.attrs: dict[str, str] = {}  # v4 device attributes ($homie, $name, $nodes, …)
        self.node_attrs: dict[str, dict[str, str]] = {}
        self.prop_attrs: dict[tuple[str, str], dict[str, str]] = {}
        self.description: dict[str, Any] | None = None  # v5
        self.state: str | None = None
        self.bindings: dict[tuple[str, str], Binding] = {}
        self.props: dict[tuple[str, str], PropertyDef] = {}
        self.unmapped: list[str] = []
        self.values: dict[tuple[str, str], Any] = {}  # last parsed native value (for toggle)
        # The last text of each described property, decoded again when its description changes: Mosquitto
        # delivers a retained value before the attributes below it (`…/power` before `…/power/$datatype`),
        # so after a restart a value arrives while its property is still typed as the default string.
        self.raw: dict[tuple[str, str], str] = {}
        self.pending: dict[tuple[str, str], str] = {}
        self.info: DeviceInfo | None = None
        self.name = native_id

    # -- structure

    def _properties(self) -> list[PropertyDef]:
        if self.version == 5:
            out: list[PropertyDef] = []
            nodes = (self.description or {}).get("nodes")
            if not isinstance(nodes, dict):
                return out
            for nid, node in nodes.items():
                props = node.get("properties") if isinstance(node, dict) else None
                if not isinstance(props, dict):
                    continue
                for pid, p in props.items():
                    if not isinstance(p, dict):
                        continue
                    out.append(PropertyDef(
                        nid, pid, str(p.get("datatype", "string")), str(p.get("unit", "") or ""),
                        p.get("settable") is True, p.get("retained", True) is not False, str(p.get("format", "") or ""),
                        str(p.get("name", "") or "")))
            return out
        out = []
        for nid in _csv(self.attrs.get("$nodes", "")):
            nid = nid.removesuffix("[]")
            for pid in _csv(self.node_attrs.get(nid, {}).get("$properties", "")):
                a = self.prop_attrs.get((nid, pid), {})
                out.append(PropertyDef(nid, pid, a.get("$datatype", "string") or "string", a.get("$unit", ""),
                                       a.get("$settable") == "true", a.get("$retained") != "false",
                                       a.get("$format", ""), a.get("$name", "")))
        return out

    def ready_to_describe(self) -> bool:
        if self.version == 5:
            return self.description is not None
        return "$nodes" in self.attrs and self.state is not None

    def compile(self, out: Decoded) -> None:
        props = self._properties()
        prop_by_key = {(p.node, p.id): p for p in props}
        nodes = list(dict.fromkeys(p.node for p in props))
        single = len(nodes) <= 1
        bindings: dict[tuple[str, str], Binding] = {}
        taken: set[tuple[str, str, str]] = set()
        components: dict[str, dict[str, CapabilitySupport]] = {}
        unmapped: list[str] = []
        for prop in props:
            component = "main" if single else prop.node
            binding = map_property(prop, component)
            key = (component, binding.capability, binding.attribute) if binding else None
            if binding is None or key in taken:
                unmapped.append(f"{prop.node}/{prop.id} ({prop.datatype}{' ' + prop.unit if prop.unit else ''})")
                continue
            taken.add(key)  # type: ignore[arg-type]
            bindings[(prop.node, prop.id)] = binding
            caps = components.setdefault(component, {})
            old = caps.get(binding.capability) or CapabilitySupport(frozenset())
            caps[binding.capability] = CapabilitySupport(old.attributes | {binding.attribute},
                                                         old.commands | binding.commands)
        self.raw = {key: text for key, text in self.raw.items() if key in prop_by_key}
        redo = [key for key in self.raw
                if self.props.get(key) != prop_by_key[key] or self.bindings.get(key) != bindings.get(key)]
        self.bindings = bindings
        self.props = prop_by_key
        self.unmapped = unmapped
        name = self.attrs.get("$name") or (self.description or {}).get("name") or self.native_id
        self.name = name if isinstance(name, str) and name.strip() else self.native_id
        info = DeviceInfo(id=self.id, name=self.name, source=SOURCE, components=components or {"main": {}},
                          sw_version=self.attrs.get("$fw/version") or None, mac=self.attrs.get("$mac") or None,
                          model=self.attrs.get("$fw/name") or _text((self.description or {}).get("type")),
                          aliases=(self.native_id,))
        if self.info is None or _info_key(info) != _info_key(self.info):
            self.info = info
            out.upserts.append(info)
            if unmapped:
                out.notes.append(f"{SOURCE} {self.native_id}: not mapped to a capability: {', '.join(unmapped)}")
        pending, self.pending = self.pending, {}
        for nid, pid in redo:
            if (nid, pid) not in pending:
                self.decode_value(nid, pid, self.raw[(nid, pid)], out)
        for (nid, pid), text in pending.items():
            self.decode_value(nid, pid, text, out)

    # -- values

    def decode_value(self, nid: str, pid: str, text: str, out: Decoded) -> None:
        prop = self.props.get((nid, pid))
        if prop is None or self.info is None:
            if len(self.pending) < MAX_PENDING_PER_DEVICE or (nid, pid) in self.pending:
                self.pending[(nid, pid)] = text
            return
        self.raw[(nid, pid)] = text
        try:
            value = parse_value(prop, text)
        except CodecError as err:
            out.problems.append(f"{SOURCE} {self.native_id}/{nid}/{pid}: {err}")
            return
        self.values[(nid, pid)] = value
        binding = self.bindings.get((nid, pid))
        if binding is None:
            return
        canonical = binding.scale(value) if not isinstance(value, bool) else value
        spec = capability(binding.capability)
        problem = spec.attributes[binding.attribute].check(canonical) if spec else "unknown capability"
        if problem:
            out.problems.append(f"{SOURCE} {self.native_id}/{nid}/{pid}: {problem}")
            return
        out.updates.append(Update(self.id, binding.component, binding.capability, binding.attribute, canonical))

    # -- commands

    def encode(self, command: Command, base: str) -> tuple[str, bytes]:
        for binding in self.bindings.values():
            if (binding.component == command.component and binding.capability == command.capability
                    and command.command in binding.commands):
                return self._set_topic(binding, base), self._payload(binding, command)
        raise _bad(f"{self.id} has no settable property for {command.capability}.{command.command} "
                   f"on {command.component!r}")

    def _set_topic(self, b: Binding, base: str) -> str:
        version = "5/" if self.version == 5 else ""
        return f"{base}/{version}{self.native_id}/{b.prop.node}/{b.prop.id}/set"

    def _payload(self, b: Binding, command: Command) -> bytes:
        if b.capability == "on_off":
            if command.command == "toggle":
                current = self.values.get((b.prop.node, b.prop.id))
                if not isinstance(current, bool):
                    raise _bad(f"{self.id}: cannot toggle, the current state is not known")
                return b"false" if current else b"true"
            return b"true" if command.command == "on" else b"false"
        percent = command.args.get("percent") if isinstance(command.args, dict) else None
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100:
            raise _bad(f"percent must be a number 0..100, got {_short(percent)}")
        rng = _range(b.prop.format) or (0.0, 100.0)
        native = rng[0] + percent * (rng[1] - rng[0]) / 100
        if b.prop.datatype == "integer":
            return str(round(native)).encode()
        return repr(float(round(native, 3))).encode()


def _csv(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _info_key(info: DeviceInfo) -> tuple[Any, ...]:
    comps = tuple(sorted((c, tuple(sorted((k, tuple(sorted(s.attributes)), tuple(sorted(s.commands)))
                                          for k, s in caps.items()))) for c, caps in info.components.items()))
    return (info.name, info.model, info.sw_version, info.mac, comps)


class HomieCodec:
    """Every Homie device under one base topic. Pure: holds only what the devices said."""

    def __init__(self, base_topic: str = "homie") -> None:
        self.base_topic = base_topic
        self._prefix = base_topic + "/"
        self.devices: dict[tuple[int, str], HomieDevice] = {}  # (version, native id)
        self.by_id: dict[str, HomieDevice] = {}

    def decode(self, topic: str, payload: bytes) -> Decoded:
        out = Decoded()
        if not topic.startswith(self._prefix):
            return out
        levels = topic[len(self._prefix):].split("/")
        version = 4
        if levels[0] == "5" and len(levels) >= 2:
            version, levels = 5, levels[1:]
        if not levels or levels[0].startswith("$") or len(levels) < 2:
            return out  # $broadcast, or not a device topic
        if levels[-1] == "set" or (version == 5 and levels[-1] == "$target"):
            return out  # commands (ours echoed) and v5 targets
        if len(payload) > MAX_PAYLOAD_BYTES:
            out.problems.append(f"{SOURCE} {topic}: payload of {len(payload)} bytes is too large")
            return out
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            out.problems.append(f"{SOURCE} {topic}: payload is not UTF-8: {payload[:40]!r}")
            return out
        native = levels[0]
        key = (version, native)
        device = self.devices.get(key)
        rest = levels[1:]
        if device is None:
            if not payload:
                return out
            device = self.devices[key] = HomieDevice(native, version)
            if device.id in self.by_id and self.by_id[device.id] is not device:
                # the same id in v4 and v5 (a device being upgraded): the newest wins
                self.by_id[device.id].info = None
            self.by_id[device.id] = device
        if len(rest) == 1 and rest[0].startswith("$"):
            self._device_attribute(device, rest[0], text, out)
        elif len(rest) == 2 and rest[1].startswith("$") and version == 4:
            device.node_attrs.setdefault(rest[0], {})[rest[1]] = text
            self._maybe_compile(device, out)
        elif len(rest) == 3 and rest[2].startswith("$") and version == 4:
            device.prop_attrs.setdefault((rest[0], rest[1]), {})[rest[2]] = text
            self._maybe_compile(device, out)
        elif len(rest) == 2 and not rest[1].startswith("$") and payload:
            device.decode_value(rest[0], rest[1], text, out)
        return out

    def _device_attribute(self, device: HomieDevice, attr: str, text: str, out: Decoded) -> None:
        if attr == "$state":
            if not text:
                if device.version == 5:
                    self._remove(device, out)
                return
            if text not in _AVAILABLE:
                out.problems.append(f"{SOURCE} {device.native_id}: unknown $state {_short(text)}")
                return
            device.state = text
            self._maybe_compile(device, out)
            if device.info is not None:
                out.availability.append((device.id, _AVAILABLE[text]))
            return
        if attr == "$homie" and not text and device.version == 4:
            self._remove(device, out)
            return
        if attr == "$description" and device.version == 5:
            try:
                description = orjson.loads(text)
            except orjson.JSONDecodeError as err:
                out.problems.append(f"{SOURCE} {device.native_id}: $description is not JSON ({err.msg})")
                return
            if not isinstance(description, dict):
                out.problems.append(f"{SOURCE} {device.native_id}: $description is not an object")
                return
            device.description = description
            self._maybe_compile(device, out)
            return
        device.attrs[attr] = text
        if attr in ("$nodes", "$name"):
            self._maybe_compile(device, out)

    def _maybe_compile(self, device: HomieDevice, out: Decoded) -> None:
        if not device.ready_to_describe():
            return
        first = device.info is None
        device.compile(out)
        if first and device.info is not None and device.state is not None:
            out.availability.append((device.id, _AVAILABLE.get(device.state)))

    def _remove(self, device: HomieDevice, out: Decoded) -> None:
        self.devices.pop((device.version, device.native_id), None)
        if self.by_id.get(device.id) is device:
            del self.by_id[device.id]
        if device.info is not None:
            out.removals.append(device.id)

    def encode(self, command: Command) -> tuple[str, bytes]:
        device = self.by_id.get(command.device_id)
        if device is None or device.info is None:
            raise _bad(f"{command.device_id} is not (or no longer) a described Homie device")
        return device.encode(command, self.base_topic)
