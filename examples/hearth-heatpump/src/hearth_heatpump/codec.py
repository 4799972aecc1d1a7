"""Nordvik heat-pump controllers' MQTT JSON, decoded and encoded. Pure: bytes in, typed updates out; no I/O, no
clock.

What a Nordvik controller (HP-6, HP-9) says, under a base topic (``heatpump`` unless configured); temperatures
are integers in tenths of a degree Celsius (``"room_dC": 208`` is 20.8 °C)::

    heatpump/<serial>/device  retained  {"model": "HP-9", "name": "Heat pump", "fw": "5.2.1",
                                         "setpoint_step_dC": 5, "setpoint_min_dC": 50, "setpoint_max_dC": 300}
    heatpump/<serial>/status            {"mode": "heating", "activity": "heat", "room_dC": 208, "setpoint_dC": 210,
                                         "flow_dC": 352, "outdoor_dC": 35}
    heatpump/<serial>/cmd     (to it)   {"setpoint_dC": 215} | {"mode": "standby"}

``mode`` is heating, cooling, auto or standby (Hearth's heat, cool, auto, off); ``activity`` what the compressor
does now: heat, cool, defrost or idle. The controller takes setpoints in steps (half a degree on an HP-9): asked
for 21.3 °C it sets and reports 21.5 °C, so the adapter tells the hub to expect 21.5 (``CommandResult.expected``)
and the command is confirmed by the report, not timed out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from gateway.sdk import CapabilitySupport, CodecError, Command, DeviceInfo, Update

SOURCE = "heatpump"

MODES_FROM_DEVICE = {"heating": "heat", "cooling": "cool", "auto": "auto", "standby": "off"}
MODES_TO_DEVICE = {hearth: device for device, hearth in MODES_FROM_DEVICE.items()}
# What the controller's sensors and setpoints span (flow water up to 90 °C; -50 °C outdoors): beyond it, a
# reading is wrong.
MIN_CELSIUS = -50
MAX_CELSIUS = 100
ACTIVITIES = {"heat": "heating", "cool": "cooling", "defrost": "defrosting", "idle": "idle"}


@dataclass(frozen=True, slots=True)
class Setpoints:
    """What setpoints a controller takes, in tenths of °C."""

    step_dc: int = 5
    min_dc: int = 50
    max_dc: int = 300

    def nearest(self, celsius: float) -> float:
        """The setpoint the controller will set for ``celsius``: the nearest step, within its range."""
        tenths = min(self.max_dc, max(self.min_dc, round(celsius * 10)))
        stepped = math.floor(tenths / self.step_dc + 0.5) * self.step_dc
        return min(self.max_dc, max(self.min_dc, stepped)) / 10


@dataclass
class Decoded:
    """What one message meant (the lists :func:`gateway.sdk.apply_decoded` takes)."""

    upserts: list[DeviceInfo] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    availability: list[tuple[str, bool | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def device_id(serial: str) -> str:
    """Ids come from hardware: the controller's serial number."""
    return f"{SOURCE}:{serial.lower()}"


def _tenths(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value / 10


class HeatPumpCodec:
    """Decodes what controllers under ``base_topic`` publish; encodes commands to them. Remembers each one's
    setpoint steps and serial: no I/O, no clock."""

    def __init__(self, base_topic: str = "heatpump") -> None:
        self.base_topic = base_topic
        self.setpoints: dict[str, Setpoints] = {}
        self.serials: dict[str, str] = {}

    @property
    def subscriptions(self) -> list[str]:
        return [f"{self.base_topic}/+/device", f"{self.base_topic}/+/status"]

    def decode(self, topic: str, payload: bytes) -> Decoded:
        out = Decoded()
        prefix = self.base_topic + "/"
        parts = topic[len(prefix):].split("/") if topic.startswith(prefix) else []
        if len(parts) != 2 or not parts[0] or parts[1] not in ("device", "status"):
            out.notes.append(f"{topic}: not a heat-pump topic this adapter reads")
            return out
        serial, kind = parts
        try:
            data = json.loads(payload)
        except ValueError as err:
            out.problems.append(f"{topic}: not JSON ({err})")
            return out
        if not isinstance(data, dict):
            out.problems.append(f"{topic}: expected a JSON object, got {type(data).__name__}")
            return out
        if kind == "device":
            self._decode_device(serial, data, out)
        else:
            self._decode_status(serial, data, out)
        return out

    def _decode_device(self, serial: str, data: dict[str, Any], out: Decoded) -> None:
        ident = device_id(serial)
        values = [data.get("setpoint_step_dC", 5), data.get("setpoint_min_dC", 50), data.get("setpoint_max_dC", 300)]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values) or not (
                values[0] > 0 and values[1] < values[2]):
            out.problems.append(f"{ident}: setpoint_step_dC, setpoint_min_dC, setpoint_max_dC must be whole tenths "
                                f"of °C, a step above 0 and a minimum below the maximum; got {values}")
            setpoints = Setpoints()
        else:
            setpoints = Setpoints(*values)
        self.setpoints[ident] = setpoints
        self.serials[ident] = serial
        limits = (setpoints.min_dc / 10, setpoints.max_dc / 10)
        components = {
            "main": {"thermostat": CapabilitySupport(
                frozenset({"current_celsius", "target_celsius", "mode", "running"}),
                frozenset({"set_target", "set_mode"}),
                # The command's argument and the attribute it sets share the controller's range.
                {"celsius": limits, "target_celsius": limits})},
            "outdoor": {"temperature": CapabilitySupport(frozenset({"celsius"}))},
            "flow": {"temperature": CapabilitySupport(frozenset({"celsius"}))},
        }
        name, model, firmware = data.get("name"), data.get("model"), data.get("fw")
        out.upserts.append(DeviceInfo(
            ident, name if isinstance(name, str) and name else f"Heat pump {serial}", SOURCE, components,
            manufacturer="Nordvik", model=model if isinstance(model, str) else None,
            sw_version=firmware if isinstance(firmware, str) else None, serial=serial))

    def _decode_status(self, serial: str, data: dict[str, Any], out: Decoded) -> None:
        ident = device_id(serial)
        if ident not in self.setpoints:
            out.notes.append(f"{ident}: status before the controller's device message; left until it has said "
                             "what it is")
            return
        for key, component, capability, attribute in (
                ("room_dC", "main", "thermostat", "current_celsius"),
                ("setpoint_dC", "main", "thermostat", "target_celsius"),
                ("outdoor_dC", "outdoor", "temperature", "celsius"),
                ("flow_dC", "flow", "temperature", "celsius")):
            if key not in data:
                continue
            celsius = _tenths(data[key])
            if celsius is None or not MIN_CELSIUS <= celsius <= MAX_CELSIUS:
                out.problems.append(f"{ident}: {key} must be whole tenths of °C from {MIN_CELSIUS * 10:g} to "
                                    f"{MAX_CELSIUS * 10:g}, got {data[key]!r}")
            else:
                out.updates.append(Update(ident, component, capability, attribute, celsius))
        mode = data.get("mode")
        if mode is not None:
            if mode not in MODES_FROM_DEVICE:
                out.problems.append(f"{ident}: mode must be one of {', '.join(MODES_FROM_DEVICE)}, got {mode!r}")
            else:
                out.updates.append(Update(ident, "main", "thermostat", "mode", MODES_FROM_DEVICE[mode]))
        activity = data.get("activity")
        if activity is not None:
            if activity not in ACTIVITIES:
                out.problems.append(f"{ident}: activity must be one of {', '.join(ACTIVITIES)}, got {activity!r}")
            else:
                running = "off" if mode == "standby" else ACTIVITIES[activity]
                out.updates.append(Update(ident, "main", "thermostat", "running", running))

    def encode(self, command: Command) -> tuple[str, bytes, dict[str, Any]]:
        """The topic and payload that carry ``command`` out, and what the controller will report once it has
        (its setpoint stepped: 21.3 °C asked, 21.5 °C set). :class:`CodecError` for what it cannot do."""
        serial = self.serials.get(command.device_id) or command.device_id.removeprefix(f"{SOURCE}:")
        topic = f"{self.base_topic}/{serial}/cmd"
        if command.capability != "thermostat":
            raise CodecError(f"heat pumps have no {command.capability}")
        body: dict[str, Any]
        if command.command == "set_target":
            celsius = self.setpoints.get(command.device_id, Setpoints()).nearest(float(command.args["celsius"]))
            body, expected = {"setpoint_dC": round(celsius * 10)}, {"target_celsius": celsius}
        elif command.command == "set_mode":
            mode = MODES_TO_DEVICE.get(str(command.args["mode"]))
            if mode is None:
                raise CodecError(f"heat pumps run in {', '.join(MODES_TO_DEVICE)}; not in {command.args['mode']}")
            body, expected = {"mode": mode}, {"mode": command.args["mode"]}
        else:
            raise CodecError(f"heat pumps cannot thermostat.{command.command}")
        return topic, json.dumps(body, separators=(",", ":")).encode(), expected
