"""The values that flow through the gateway: devices, updates, commands and their results.

Plain slotted dataclasses: they are made once per device message, so they stay cheap (no pydantic here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: What became of a command (see :class:`CommandResult`, which says what each status means).
CommandStatus = Literal["confirmed", "sent", "timeout", "failed", "rejected", "unavailable"]


@dataclass(slots=True)
class Update:
    """One attribute of one device has this value now (in the canonical unit).

    Treated as immutable, but not a frozen dataclass: one is built per reported value, and a frozen
    dataclass costs about four times as much to build (0.66 vs 0.15 us measured here)."""

    #: The device's id, ``<source>:<hardware id>`` (``zigbee2mqtt:0x00158d0001a2b3c4``).
    device_id: str
    #: The component: ``"main"`` for the whole device, or one output or phase (``"l1"``).
    component: str
    #: The capability, as the capability model names it (``"on_off"``, or a plugin's ``"acme.kettle"``).
    capability: str
    #: The attribute of that capability (``"on"``).
    attribute: str
    #: The value in the attribute's canonical unit, or None when the device reports it as unknown.
    value: Any


@dataclass(frozen=True, slots=True)
class DeviceEventUpdate:
    """Something happened on a device (a button press): delivered as an event, not a state."""

    #: The device's id.
    device_id: str
    #: The component the event happened on (``"main"``, or a button's own component).
    component: str
    #: The capability that defines the event (``"button"``).
    capability: str
    #: The event's name, one of the capability's events (``"pressed"``).
    event: str
    #: The event's data, as the capability defines it (``{"button": 1, "kind": "double"}``).
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CapabilitySupport:
    """What one device supports of a capability: which attributes it reports, which commands it takes.

    ``limits`` narrows an attribute's or argument's range for this device (a bulb's kelvin range).
    """

    #: The attributes of the capability that this device reports.
    attributes: frozenset[str]
    #: The commands of the capability that this device takes (validated before they reach the adapter).
    commands: frozenset[str] = frozenset()
    #: Attribute name -> (minimum, maximum) for this device, within the model's range; None: the model's
    #: bound. A command argument named like the attribute is held to it too (rejected outside it).
    limits: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape served by the API (sorted lists; ``limits`` only when there are some)."""
        return {
            "attributes": sorted(self.attributes),
            "commands": sorted(self.commands),
            **({"limits": {k: list(v) for k, v in self.limits.items()}} if self.limits else {}),
        }


@dataclass(slots=True)
class DeviceInfo:
    """What an adapter says a device is. The hub owns the resulting :class:`Device`.

    Passed to ``ctx.upsert_device`` whenever the adapter learns (or relearns) what a device is; the same
    ``id`` again updates the device, keeping its state, area and the owner's edits.
    """

    #: ``<source>:<hardware id>``: from hardware (IEEE address, MAC, serial), never from a name, so that
    #: renaming a device keeps its history, area and scenes.
    id: str
    #: The name the device reports (a Zigbee2MQTT friendly name); a name set in the web UI wins over it.
    name: str
    #: The protocol or convention it comes through: the part of ``id`` before the first ``:``.
    source: str
    #: Component (``"main"``, ``"l1"``, ...) -> capability name -> what the device supports of it.
    components: dict[str, dict[str, CapabilitySupport]]
    #: The maker, as the device reports it.
    manufacturer: str | None = None
    #: The model, as the device reports it.
    model: str | None = None
    #: The firmware version.
    sw_version: str | None = None
    #: The hardware revision.
    hw_version: str | None = None
    #: The serial number, when the device has one.
    serial: str | None = None
    #: The MAC address (Wi-Fi, Ethernet or Bluetooth), when known.
    mac: str | None = None
    #: The id of the device this one is reached through (a bridge, a hub, a BLE-to-MQTT gateway).
    via: str | None = None
    #: An area the device itself names (an area set in the device's own app); ``[areas]`` and the web UI win.
    suggested_area: str | None = None
    #: Other names the device is known by (a Zigbee2MQTT friendly name): ``[areas]`` in config may use them.
    aliases: tuple[str, ...] = ()


@dataclass(slots=True)
class Device:
    """A device as the hub holds it: identity, where it is, whether it is reachable, and its state.

    An adapter gets one back from ``ctx.upsert_device`` and ``ctx.device``: read it, never change it (the
    hub changes it when updates arrive).
    """

    #: The device's id (:attr:`DeviceInfo.id`).
    id: str
    #: Its name: the owner's, set in the web UI, else the one the device reports.
    name: str
    #: The protocol or convention it comes through (:attr:`DeviceInfo.source`).
    source: str
    #: The name of the adapter that owns it (its entry point's name).
    adapter: str
    #: As in :class:`DeviceInfo`.
    manufacturer: str | None = None
    #: As in :class:`DeviceInfo`.
    model: str | None = None
    #: As in :class:`DeviceInfo`.
    sw_version: str | None = None
    #: As in :class:`DeviceInfo`.
    hw_version: str | None = None
    #: As in :class:`DeviceInfo`.
    serial: str | None = None
    #: As in :class:`DeviceInfo`.
    mac: str | None = None
    #: As in :class:`DeviceInfo`.
    via: str | None = None
    #: Its area: the web UI's, else ``[areas]`` in the config, else the one the device suggests; None: none.
    area: str | None = None
    #: Its tags (``[tags]`` in the config, or the web UI's), which profiles select devices by.
    tags: tuple[str, ...] = ()
    #: As in :class:`DeviceInfo`.
    aliases: tuple[str, ...] = ()
    #: Reachable now (True), not (False), or not known yet (None).
    available: bool | None = None
    #: Component -> capability -> what the device supports of it (:attr:`DeviceInfo.components`).
    support: dict[str, dict[str, CapabilitySupport]] = field(default_factory=dict)
    #: Component -> capability -> attribute -> the last value reported, in the canonical unit.
    state: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: When the last value arrived (epoch seconds, the gateway's clock); None: never.
    last_update: float | None = None

    def value(self, component: str, capability: str, attribute: str, default: Any = None) -> Any:
        """The last value of one attribute, or ``default`` when the device has not reported it."""
        return self.state.get(component, {}).get(capability, {}).get(attribute, default)

    def component_values(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Component -> capability -> attribute -> last value, for every capability it supports (a copy)."""
        state = self.state
        return {comp: {cap: dict(state.get(comp, {}).get(cap, {})) for cap in caps}
                for comp, caps in self.support.items()}

    def as_dict(self, *, with_support: bool = True) -> dict[str, Any]:
        """The public JSON shape, as ``GET /api/devices/{id}`` serves it (what each capability supports under
        ``capabilities``, unless ``with_support`` is false)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "source": self.source,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "sw_version": self.sw_version,
            "area": self.area,
            "tags": list(self.tags),
            "via": self.via,
            "available": self.available,
            "components": self.component_values(),
        }
        if with_support:
            out["capabilities"] = {
                comp: {cap: sup.as_dict() for cap, sup in caps.items()} for comp, caps in self.support.items()
            }
        return out


@dataclass(frozen=True, slots=True)
class Command:
    """Do ``command`` of ``capability`` on one component of one device, with typed ``args``.

    An adapter's ``execute`` receives it already validated against the capability model and against what
    the device supports: the command exists, every argument is of its type, in its (and the device's)
    range, in the canonical unit. Converting to the device's own units is the adapter's job.
    """

    #: The target device's id.
    device_id: str
    #: The target component (``"main"``, ``"l1"``, ...).
    component: str
    #: The capability whose command this is (``"level"``).
    capability: str
    #: The command's name within the capability (``"set"``).
    command: str
    #: Argument name -> value, in canonical units (``{"percent": 40, "transition_s": 2}``); optional
    #: arguments the caller left out are absent.
    args: dict[str, Any] = field(default_factory=dict)
    #: Who sent it: ``"api"`` (HTTP or the WebSocket), ``"scene:<scene id>"``...; the scene engine
    #: tells a manual command from its own by it (a manual one holds off automatic control for a while).
    source: str = "api"


@dataclass(slots=True)
class CommandResult:
    """What became of a command.

    ``sent``: handed to the device, not (yet) confirmed. ``confirmed``: the device reported the
    expected state. ``timeout``: sent, but the device did not confirm in time. ``failed``: the adapter
    or device refused it. ``rejected``: it did not fit the model. ``unavailable``: the device is offline.

    An adapter's ``execute`` returns ``sent`` (the usual case: the hub then waits for the device to report
    the expected values and turns it into ``confirmed`` or ``timeout``), ``confirmed`` (the device's own
    reply already says it is done), ``failed`` or ``rejected`` with a ``message`` saying why. The hub
    sets ``unavailable`` and ``timeout`` itself.
    """

    #: What became of the command.
    status: CommandStatus
    #: Why, for people: shown by the API and in scene traces (``"published to zigbee2mqtt/lamp/set"``).
    message: str = ""
    #: attribute -> value the device should report once done. An adapter returning "sent" may fill it
    #: when it knows better than the model (a stepped speed, a rounded level): the hub then waits for
    #: these values. Left empty, the hub fills it from the capability model.
    expected: dict[str, Any] = field(default_factory=dict)
    #: Anything else worth showing with the result (JSON-able): a device's own reply, say.
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of the API's answer (``expected`` and ``details`` only when not empty)."""
        out: dict[str, Any] = {"status": self.status, "message": self.message}
        if self.expected:
            out["expected"] = self.expected
        if self.details:
            out["details"] = self.details
        return out
