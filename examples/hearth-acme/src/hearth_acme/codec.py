"""Acme air purifiers' MQTT JSON, decoded and encoded. Pure: bytes in, typed updates out; no I/O, no clock.

What an Acme purifier (AP-100, AP-300) says, under a base topic (``acme`` unless configured)::

    acme/<serial>/info          retained  {"model": "AP-300", "name": "Bedroom", "fw": "2.1.0", "fan_speeds": 3}
    acme/<serial>/state                   {"power": "on", "speed": 2, "pm25": 7.5, "filter_life": 82}
    acme/<serial>/availability  retained  online | offline
    acme/<serial>/set           (to it)   {"power": "on", "speed": 2} | {"power": "off"} | {"filter_reset": true}

The fan runs at ``speed`` 1 to ``fan_speeds`` (0 with power off); Hearth's ``fan`` capability speaks percent, so
speed 2 of 3 is 67 %, and ``set_speed 50`` asks for speed 2 (the nearest speed at or above it). The core model
knows this from ``fan.speed_steps`` (its CommandSpec ``steps``): the hub expects 67 %, and the command is confirmed
when the purifier reports it. The filter's life left is the plugin's own capability, ``acme.filter``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from gateway.sdk import (
    AttributeSpec,
    CapabilitySpec,
    CapabilitySupport,
    CodecError,
    Command,
    CommandSpec,
    DeviceInfo,
    Update,
)

SOURCE = "acme"

#: The plugin's own capability (registered by the adapter at start): the filter's life left, and its reset.
FILTER_CAPABILITY = CapabilitySpec(
    "acme.filter",
    {"life_percent": AttributeSpec("number", "%", 0, 100, description="life left of the HEPA filter")},
    {"reset": CommandSpec(expect={"life_percent": 100}, description="after a new filter is fitted")},
    description="An Acme purifier's HEPA filter.",
)

# What every purifier supports; the fan's number of speeds comes from its info message.
_COMPONENTS = {
    "main": {
        "fan": CapabilitySupport(frozenset({"on", "speed_percent", "speed_steps"}), frozenset({"set_speed"})),
        "air_quality": CapabilitySupport(frozenset({"pm25_ugm3"})),
        "acme.filter": CapabilitySupport(frozenset({"life_percent"}), frozenset({"reset"})),
    }
}
# A purifier whose info is not known yet is taken to have this many speeds (the AP-100's and AP-300's).
DEFAULT_FAN_SPEEDS = 3


@dataclass
class Decoded:
    """What one message meant (the lists :func:`gateway.sdk.apply_decoded` takes)."""

    upserts: list[DeviceInfo] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    availability: list[tuple[str, bool | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def device_id(serial: str) -> str:
    """Ids come from hardware: the purifier's serial number."""
    return f"{SOURCE}:{serial.lower()}"


def speed_percent(speed: int, fan_speeds: int) -> int:
    """Speed ``speed`` of ``fan_speeds`` as a percentage (2 of 3: 67)."""
    return round(speed * 100 / fan_speeds)


def speed_for(percent: float, fan_speeds: int) -> int:
    """The speed that runs at least ``percent`` (50 % of 3 speeds: speed 2); 0 is off."""
    if percent <= 0:
        return 0
    return min(fan_speeds, max(1, math.ceil(percent * fan_speeds / 100 - 1e-9)))


class AcmeCodec:
    """Decodes what purifiers under ``base_topic`` publish; encodes commands to them. Remembers each
    purifier's number of fan speeds (from its info message): no I/O, no clock."""

    def __init__(self, base_topic: str = "acme") -> None:
        self.base_topic = base_topic
        self.fan_speeds: dict[str, int] = {}
        # Device id -> serial as the purifier writes it in its topics (ids are lowercase, topics are not).
        self.serials: dict[str, str] = {}

    @property
    def subscriptions(self) -> list[str]:
        """The topic filters the adapter listens on."""
        return [f"{self.base_topic}/+/info", f"{self.base_topic}/+/state", f"{self.base_topic}/+/availability"]

    def decode(self, topic: str, payload: bytes) -> Decoded:
        out = Decoded()
        prefix = self.base_topic + "/"
        parts = topic[len(prefix):].split("/") if topic.startswith(prefix) else []
        if len(parts) != 2 or not parts[0]:
            out.notes.append(f"{topic}: not an Acme purifier topic")
            return out
        serial, kind = parts
        if kind == "availability":
            text = payload.decode("utf-8", "replace").strip().lower()
            if text not in ("online", "offline"):
                out.problems.append(f"{topic}: expected online or offline, got {payload[:40]!r}")
            else:
                out.availability.append((device_id(serial), text == "online"))
            return out
        try:
            data = json.loads(payload)
        except ValueError as err:
            out.problems.append(f"{topic}: not JSON ({err})")
            return out
        if not isinstance(data, dict):
            out.problems.append(f"{topic}: expected a JSON object, got {type(data).__name__}")
            return out
        if kind == "info":
            self._decode_info(serial, data, out)
        elif kind == "state":
            self._decode_state(serial, data, out)
        else:
            out.notes.append(f"{topic}: {kind} messages are not read")
        return out

    def _decode_info(self, serial: str, data: dict[str, Any], out: Decoded) -> None:
        ident = device_id(serial)
        speeds = data.get("fan_speeds", DEFAULT_FAN_SPEEDS)
        if isinstance(speeds, bool) or not isinstance(speeds, int) or not 1 <= speeds <= 10:
            out.problems.append(f"{ident}: fan_speeds must be a whole number 1-10, got {speeds!r}")
            speeds = DEFAULT_FAN_SPEEDS
        self.fan_speeds[ident] = speeds
        self.serials[ident] = serial
        name = data.get("name")
        model = data.get("model")
        firmware = data.get("fw")
        out.upserts.append(DeviceInfo(
            ident, name if isinstance(name, str) and name else f"Acme purifier {serial}", SOURCE, _COMPONENTS,
            manufacturer="Acme", model=model if isinstance(model, str) else None,
            sw_version=firmware if isinstance(firmware, str) else None, serial=serial))
        out.updates.append(Update(ident, "main", "fan", "speed_steps", speeds))

    def _decode_state(self, serial: str, data: dict[str, Any], out: Decoded) -> None:
        ident = device_id(serial)
        if ident not in self.fan_speeds:
            # The info message is retained and comes first; a state without it cannot be placed yet.
            out.notes.append(f"{ident}: state before the purifier's info message; left until it has said what it is")
            return
        speeds = self.fan_speeds[ident]
        power = data.get("power")
        if power in ("on", "off"):
            out.updates.append(Update(ident, "main", "fan", "on", power == "on"))
        elif power is not None:
            out.problems.append(f"{ident}: power must be on or off, got {power!r}")
        speed = data.get("speed")
        if speed is not None:
            if isinstance(speed, bool) or not isinstance(speed, int) or not 0 <= speed <= speeds:
                out.problems.append(f"{ident}: speed must be a whole number 0-{speeds}, got {speed!r}")
            else:
                # Off is 0 %, whatever speed the purifier would resume at.
                running = speed if power != "off" else 0
                out.updates.append(Update(ident, "main", "fan", "speed_percent", speed_percent(running, speeds)))
        pm25 = data.get("pm25")
        if pm25 is not None:
            if isinstance(pm25, bool) or not isinstance(pm25, int | float) or pm25 < 0:
                out.problems.append(f"{ident}: pm25 must be a number of µg/m³, got {pm25!r}")
            else:
                out.updates.append(Update(ident, "main", "air_quality", "pm25_ugm3", pm25))
        life = data.get("filter_life")
        if life is not None:
            if isinstance(life, bool) or not isinstance(life, int | float) or not 0 <= life <= 100:
                out.problems.append(f"{ident}: filter_life must be a percentage, got {life!r}")
            else:
                out.updates.append(Update(ident, "main", "acme.filter", "life_percent", life))

    def encode(self, command: Command) -> tuple[str, bytes]:
        """The topic and payload that carry ``command`` out; :class:`CodecError` for one Acme cannot do."""
        serial = self.serials.get(command.device_id) or command.device_id.removeprefix(f"{SOURCE}:")
        topic = f"{self.base_topic}/{serial}/set"
        body: dict[str, Any]
        if command.capability == "fan" and command.command == "set_speed":
            speed = speed_for(float(command.args["percent"]), self.fan_speeds.get(command.device_id,
                                                                                  DEFAULT_FAN_SPEEDS))
            body = {"power": "off"} if speed == 0 else {"power": "on", "speed": speed}
        elif command.capability == "acme.filter" and command.command == "reset":
            body = {"filter_reset": True}
        else:
            raise CodecError(f"Acme purifiers cannot {command.capability}.{command.command}")
        return topic, json.dumps(body, separators=(",", ":")).encode()

