"""Declarative device definitions at run time, as a pure codec: MQTT messages in, typed updates out; commands
in, ``(topic, payload)`` out.

No I/O, no clock: :class:`DefinitionCodec` holds the loaded definitions (:mod:`adapters.definitions.format`),
the devices it has seen (native id as written in their topics, which the lowercase device id cannot give back)
and what their info topics said. ``hearth replay``, the unit tests and the fuzzers drive it exactly as the
adapter does.

Routing is a dictionary lookup: every topic a definition reads is indexed by the position of its ``{device}``
level and the topic's other levels, so a message costs one lookup per distinct device position (usually one),
not one test per definition.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from adapters.definitions.format import (
    _MISSING,
    DEVICE,
    SOURCE,
    CommandRule,
    Definition,
    InfoRule,
    PathError,
    StateRule,
    device_id_for,
    lookup_path,
    text_of,
)
from gateway.sdk import CapabilitySupport, CodecError, Command, DeviceInfo, Update

__all__ = ["MAX_PAYLOAD_BYTES", "SOURCE", "Decoded", "DefinitionCodec", "Instance", "KnownDevice"]

# A vendor's state document is a few KiB (hcpy's full appliance state is ~3 KiB); anything far beyond is not a
# device talking, and parsing it would only cost memory.
MAX_PAYLOAD_BYTES = 256 * 1024
# Messages of devices not announced yet are kept (the last one per topic) until their announcing topic
# arrives: retained availability and state are often delivered first. Bounded so a flood of junk topics under
# a wildcard cannot grow memory.
MAX_PENDING_TOPICS = 2000


@dataclass(frozen=True, slots=True)
class Instance:
    """A device listed in the adapter's config: its definition, its native id and an optional name."""

    definition: str
    native: str
    name: str | None = None


@dataclass(slots=True)
class KnownDevice:
    definition: Definition
    native: str
    info: dict[str, str] = field(default_factory=dict)
    configured_name: str | None = None

    @property
    def id(self) -> str:
        return device_id_for(self.definition.name, self.native)


@dataclass(slots=True)
class Decoded:
    """What one message (or a restore) means for the hub."""

    upserts: list[DeviceInfo] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    availability: list[tuple[str, bool | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    natives_changed: bool = False


@dataclass(frozen=True, slots=True)
class _Route:
    """What one relative topic of one definition carries."""

    definition: Definition
    topic: str
    state: tuple[StateRule, ...]
    info: tuple[InfoRule, ...]
    availability: bool
    announces: bool
    needs_json: bool  # everything read from this topic is at a JSON path


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


class DefinitionCodec:
    def __init__(self, definitions: Iterable[Definition], instances: Iterable[Instance] = ()) -> None:
        self.definitions: dict[str, Definition] = {d.name: d for d in definitions}
        self.devices: dict[str, KnownDevice] = {}
        # definition -> native ids listed in the config: such a definition takes no other devices.
        self._pinned: dict[str, dict[str, Instance]] = {}
        for instance in instances:
            if instance.definition not in self.definitions:
                known = ", ".join(sorted(self.definitions)) or "none"
                raise ValueError(f"no device definition named {instance.definition!r} (loaded: {known})")
            self._pinned.setdefault(instance.definition, {})[instance.native] = instance
        self._index: dict[tuple[int, tuple[str, ...]], list[_Route]] = {}
        self._positions: list[int] = []
        self._pending: dict[tuple[str, str], dict[str, bytes]] = {}
        self._pending_count = 0
        for definition in self.definitions.values():
            self._add_routes(definition)
        self._by_filter = self._filters()
        for name, natives in self._pinned.items():
            for native, instance in natives.items():
                definition = self.definitions[name]
                self.devices[device_id_for(name, native)] = KnownDevice(
                    definition, native, configured_name=instance.name
                )

    def _add_routes(self, definition: Definition) -> None:
        for topic in sorted(definition.topics()):
            full = definition.base_topic + (f"/{topic}" if topic else "")
            levels = full.split("/")
            position = definition.device_level
            key = (position, tuple(levels[:position] + levels[position + 1 :]))
            state = tuple(r for r in definition.state if r.topic == topic)
            info = tuple(r for r in definition.info if r.topic == topic)
            availability = definition.availability is not None and definition.availability.topic == topic
            paths = [r.path for r in (*state, *info)]
            if availability and definition.availability is not None:
                paths.append(definition.availability.path)
            route = _Route(
                definition,
                topic,
                state,
                info,
                availability,
                definition.discover is True or definition.discover == topic,
                bool(paths) and all(paths),
            )
            self._index.setdefault(key, []).append(route)
            if position not in self._positions:
                self._positions.append(position)

    # ------------------------------------------------------------------ what to listen to

    def subscriptions(self) -> list[str]:
        """MQTT topic filters: ``+`` for the device level of discovering definitions, the configured native ids
        of pinned ones. A definition that neither discovers nor has configured devices listens to nothing."""
        return sorted(self._filters())

    def _filters(self) -> dict[str, set[str]]:
        """filter -> the definitions that asked for it."""
        filters: dict[str, set[str]] = {}
        for definition in self.definitions.values():
            pinned = self._pinned.get(definition.name)
            if pinned:
                natives: Iterable[str] = pinned
            elif definition.discover is not False:
                natives = ("+",)
            else:
                continue
            for native in natives:
                for topic in definition.topics():
                    filters.setdefault(definition.full_topic(topic, native), set()).add(definition.name)
        return filters

    # ------------------------------------------------------------------ devices

    def device_info(self, device: KnownDevice) -> DeviceInfo:
        definition = device.definition
        components = {
            component: {
                cap: CapabilitySupport(attrs, cmds, dict(limits)) for cap, (attrs, cmds, limits) in caps.items()
            }
            for component, caps in definition.support.items()
        }
        name = (
            device.configured_name
            or device.info.get("name")
            or definition.name_template.render({DEVICE: device.native})
        )
        return DeviceInfo(
            id=device.id,
            name=name,
            source=SOURCE,
            components=components,
            manufacturer=definition.manufacturer,
            model=device.info.get("model") or definition.model,
            sw_version=device.info.get("sw_version"),
            hw_version=device.info.get("hw_version"),
            serial=device.info.get("serial"),
            mac=device.info.get("mac"),
            aliases=(device.native,) if device.native.lower() != name.lower() else (),
        )

    def pinned_devices(self) -> Decoded:
        """The devices listed in the config, announced before any message (so they take commands at once)."""
        out = Decoded()
        for name, natives in self._pinned.items():
            for native in natives:
                out.upserts.append(self.device_info(self.devices[device_id_for(name, native)]))
        return out

    def remembered(self) -> dict[str, list[str]]:
        """device id -> [definition, native id]: kept by the adapter so that restored devices take commands
        before their first message (the native id's case cannot be rebuilt from the lowercase id)."""
        return {device_id: [d.definition.name, d.native] for device_id, d in sorted(self.devices.items())}

    def restore(self, remembered: Any, known_ids: Iterable[str]) -> Decoded:
        """Take back devices of the store whose definition is still loaded, with that definition's support."""
        out = Decoded()
        if not isinstance(remembered, dict):
            return out
        for device_id in known_ids:
            entry = remembered.get(device_id)
            if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry)):
                continue
            definition = self.definitions.get(entry[0])
            if definition is None or device_id in self.devices or device_id_for(entry[0], entry[1]) != device_id:
                continue
            pinned = self._pinned.get(definition.name)
            if pinned and entry[1] not in pinned:
                continue
            device = self.devices[device_id] = KnownDevice(definition, entry[1])
            out.upserts.append(self.device_info(device))
        return out

    # ------------------------------------------------------------------ decoding

    def decode(self, topic: str, payload: bytes, via: str | None = None) -> Decoded:
        """Decode one message. ``via``: the subscription it came through. When filters of several definitions
        overlap, the broker delivers a message once per matching filter; each delivery then decodes only for
        the definitions of its own filter, so no value is applied twice."""
        out = Decoded()
        only = self._by_filter.get(via) if via is not None else None
        levels = topic.split("/")
        for position in self._positions:
            if position >= len(levels):
                continue
            routes = self._index.get((position, tuple(levels[:position] + levels[position + 1 :])))
            if not routes:
                continue
            native = levels[position]
            for route in routes:
                if only is None or route.definition.name in only:
                    self._decode_route(route, native, topic, payload, out)
        return out

    def _decode_route(self, route: _Route, native: str, topic: str, payload: bytes, out: Decoded) -> None:
        definition = route.definition
        pinned = self._pinned.get(definition.name)
        if pinned is not None and native not in pinned:
            return  # another device of this kind, not one the user listed
        if not native:
            return
        device_id = device_id_for(definition.name, native)
        device = self.devices.get(device_id)
        if device is None:
            if not route.announces:
                self._keep_pending(definition.name, native, topic, payload)
                return
            device = self.devices[device_id] = KnownDevice(definition, native)
            out.upserts.append(self.device_info(device))
            out.natives_changed = True
            self._apply(route, device, topic, payload, out)
            # What arrived before the announcement, in arrival order (dicts keep it).
            for early_topic, early_payload in self._pending.pop((definition.name, native), {}).items():
                self._pending_count -= 1
                for position in self._positions:
                    levels = early_topic.split("/")
                    if position >= len(levels) or levels[position] != native:
                        continue
                    for early in self._index.get((position, tuple(levels[:position] + levels[position + 1 :])), ()):
                        if early.definition is definition:
                            self._apply(early, device, early_topic, early_payload, out)
            return
        self._apply(route, device, topic, payload, out)

    def _keep_pending(self, definition: str, native: str, topic: str, payload: bytes) -> None:
        bucket = self._pending.setdefault((definition, native), {})
        if topic in bucket:
            del bucket[topic]  # keep arrival order: the newest goes last
        elif self._pending_count >= MAX_PENDING_TOPICS:
            if not bucket:
                del self._pending[(definition, native)]
            return
        else:
            self._pending_count += 1
        bucket[topic] = payload

    def _apply(self, route: _Route, device: KnownDevice, topic: str, payload: bytes, out: Decoded) -> None:
        where = f"{route.definition.name}: {topic}"
        if len(payload) > MAX_PAYLOAD_BYTES:
            out.problems.append(f"{where}: payload of {len(payload)} bytes is too large")
            return
        if not payload.strip():
            return  # an empty (retained-clearing) message reports nothing
        try:
            text = payload.decode("utf-8").strip()
        except UnicodeDecodeError:
            out.problems.append(f"{where}: payload is not UTF-8 text")
            return
        try:
            document: Any = orjson.loads(payload)
            is_json = True
        except orjson.JSONDecodeError:
            document, is_json = text, False
        if not is_json and route.needs_json:
            # One problem for the message, not one per value it should have carried.
            out.problems.append(f"{where}: expected a JSON payload, got {_short(text)}")
            return
        shape_problems: list[str] = []
        if route.availability:
            self._decode_availability(route.definition, device, document, is_json, text, where, out)
        info_changed = False
        for info_rule in route.info:
            raw = self._extract(info_rule.path, document, is_json, where, shape_problems)
            if raw is _MISSING or raw is None:
                continue
            value = text_of(raw).strip()[:200]
            if value and device.info.get(info_rule.field) != value:
                device.info[info_rule.field] = value
                info_changed = True
        if info_changed:
            out.upserts.append(self.device_info(device))
        device_id = device.id
        for rule in route.state:
            raw = self._extract(rule.path, document, is_json, where, shape_problems)
            if raw is _MISSING:
                continue
            try:
                value = decode_value(rule, raw, text if not rule.path else None)
            except CodecError as err:
                out.problems.append(f"{where}: {rule.key} ({rule.capability}.{rule.attribute}): {err}")
                continue
            out.updates.append(Update(device_id, rule.component, rule.capability, rule.attribute, value))
        if shape_problems:
            more = f" (and {len(shape_problems) - 1} more)" if len(shape_problems) > 1 else ""
            out.problems.append(shape_problems[0] + more)

    @staticmethod
    def _extract(path: tuple[str | int, ...], document: Any, is_json: bool, where: str, problems: list[str]) -> Any:
        if not path:
            return document
        if not is_json:
            problems.append(
                f"{where}: expected a JSON payload for path {'.'.join(map(str, path))}, got {_short(document)}"
            )
            return _MISSING
        try:
            return lookup_path(document, path)
        except PathError as err:
            problems.append(f"{where}: {err}")
            return _MISSING

    def _decode_availability(
        self,
        definition: Definition,
        device: KnownDevice,
        document: Any,
        is_json: bool,
        text: str,
        where: str,
        out: Decoded,
    ) -> None:
        rule = definition.availability
        assert rule is not None
        raw = self._extract(rule.path, document, is_json, where, out.problems)
        if raw is _MISSING:
            return
        keys = (text, text_of(raw)) if not rule.path else (text_of(raw),)
        for key in keys:
            if key in rule.values:
                out.availability.append((device.id, rule.values[key]))
                return
        expected = ", ".join(repr(k) for k in rule.values)
        out.problems.append(f"{where}: availability: expected one of {expected}, got {_short(raw)}")

    # ------------------------------------------------------------------ encoding

    def encode(self, command: Command) -> tuple[str, bytes, int, bool]:
        """The topic, payload, QoS and retain flag that carry ``command`` out. Raises CodecError."""
        device = self.devices.get(command.device_id)
        if device is None:
            raise CodecError(f"{command.device_id} is not a device of a loaded definition (not seen since start)")
        key = (command.component, command.capability, command.command)
        rule = device.definition.commands.get(key)
        if rule is None:
            raise CodecError(
                f"definition {device.definition.name!r} has no {command.capability}."
                f"{command.command} for component {command.component!r}"
            )
        values = {DEVICE: device.native}
        for name, arg in rule.args.items():
            if name in command.args:
                values[name] = encode_arg(rule, name, command.args[name])
            elif arg.default is not _MISSING:
                values[name] = encode_arg(rule, name, arg.default)
        for name in rule.topic.names - {DEVICE}:
            if "/" in text_of(values.get(name, "")):
                raise CodecError(f"{name} = {values[name]!r} would add topic levels")
        try:
            topic = rule.topic.render(values)
            payload = rule.payload.render(values)
        except (KeyError, ValueError) as err:
            raise CodecError(f"cannot fill in {command.capability}.{command.command}: {err}") from err
        full = device.definition.full_topic(topic, device.native)
        # An argument lands in the topic only when the definition puts it there; it must not widen it.
        if any(c in full for c in "+#\x00") or len(full.encode()) > 65535:
            raise CodecError(f"{command.capability}.{command.command} would publish to an invalid topic {full!r}")
        return full, payload.encode("utf-8"), rule.qos, rule.retain


def _finite(raw: Any) -> float:
    if isinstance(raw, bool):
        raise CodecError("expected a number, got a boolean")
    if isinstance(raw, str):
        try:
            number = float(raw.strip())
        except ValueError:
            raise CodecError(f"expected a number, got {_short(raw)}") from None
    elif isinstance(raw, (int, float)):
        number = raw
    else:
        raise CodecError(f"expected a number, got {type(raw).__name__} {_short(raw)}")
    if not math.isfinite(number):
        raise CodecError(f"expected a finite number, got {raw!r}")
    return number


def decode_value(rule: StateRule, raw: Any, payload_text: str | None = None) -> Any:
    """One payload value -> the canonical attribute value (or None for "reported, but unknown").

    ``payload_text`` is the whole payload's text when the value is the whole payload: a ``values`` key is
    matched against it first, so ``"01"`` stays ``"01"`` even though JSON would read a number."""
    if raw is None:
        return None
    text = text_of(raw)
    if text in rule.unknown or (payload_text is not None and payload_text in rule.unknown):
        return None
    spec = rule.spec
    if rule.values is not None:
        for key in (payload_text, text):
            if key is not None and key in rule.values:
                value = rule.values[key]
                break
        else:
            if rule.default is _MISSING:
                expected = ", ".join(repr(k) for k in list(rule.values)[:12])
                raise CodecError(f"expected one of {expected}, got {_short(raw)}")
            value = rule.default
        return _canonical_scalar(rule, value)
    if spec.type in ("number", "integer"):
        number = _finite(raw)
        if rule.converts:
            number = number * rule.factor + rule.offset
            number = round(number, rule.digits if rule.digits is not None else 6)
        elif rule.digits is not None:
            number = round(number, rule.digits)
        return _canonical_scalar(rule, number)
    if spec.type == "bool":
        if not isinstance(raw, bool):
            raise CodecError(f"expected true or false, got {_short(raw)} (map it with `values`)")
        return raw
    if not isinstance(raw, str):
        raw = text
    return _canonical_scalar(rule, raw.strip()[:500])


def _canonical_scalar(rule: StateRule, value: Any) -> Any:
    spec = rule.spec
    if spec.type == "integer" and isinstance(value, float):
        if not value.is_integer():
            raise CodecError(f"expected a whole number, got {value}")
        value = int(value)
    why = spec.check(value)
    if why:
        raise CodecError(why)
    return value


def encode_arg(rule: CommandRule, name: str, value: Any) -> Any:
    """A canonical argument (already validated by the hub) -> what the device takes."""
    arg = rule.args[name]
    if arg.values is not None:
        key = text_of(value)
        if key not in arg.values:
            expected = ", ".join(sorted(arg.values))
            raise CodecError(f"this device takes {name} = {expected}, not {key!r}")
        return arg.values[key]
    if arg.spec.type in ("number", "integer") and isinstance(value, (int, float)) and not isinstance(value, bool):
        if (arg.factor, arg.unit_offset, arg.scale, arg.offset) != (1.0, 0.0, 1.0, 0.0):
            value = ((value - arg.unit_offset) / arg.factor) * arg.scale + arg.offset
            value = round(value, arg.digits if arg.digits is not None else 6)
        elif arg.digits is not None:
            value = round(value, arg.digits)
        if arg.digits == 0:
            value = int(value)
    return value
