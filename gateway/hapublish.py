"""Home Assistant MQTT discovery, published: Hearth's devices as Home Assistant entities (``[ha_discovery]``).

The reverse of :mod:`adapters.homeassistant` (which *reads* discovery): for each device Home Assistant cannot
see on its own (local BLE, Shelly over HTTP, plugins, device definitions; every device with ``devices =
"all"``), this module publishes

* a retained discovery config per entity at ``<prefix>/<platform>/hearth_<object>/config``: ``unique_id``, a
  ``device`` block (identifiers ``hearth:<device id>``, ``via_device`` the gateway), ``availability`` (the
  gateway's status topic *and* the device's own, mode ``all``) and ``origin``;
* the device's state, retained JSON per capability on ``<base_topic>/<device>/<component>/<capability>`` (a
  light's on/off, level, colour temperature and colour together on ``…/<component>/light`` in Home Assistant's
  JSON light schema), at most once per device per turn of the loop however many values changed;
* its availability on ``<base_topic>/<device>/availability`` (``online`` unless the hub says it is offline:
  a device whose reachability is not known yet still has its last values);
* button presses on ``<base_topic>/<device>/<component>/button/action`` (not retained), announced as
  ``device_automation`` triggers the first time each kind of press is seen (as Zigbee2MQTT does: which
  presses a remote makes is known only from the presses).

It subscribes to ``<base_topic>/+/+/+/set``: what Home Assistant sends there becomes ``hub.execute`` commands
(a payload that does not parse or a command the model rejects is counted, never raised). ``<prefix>/status`` =
``online`` (Home Assistant started) re-announces every config, half a second later (births heard meanwhile are
one re-announcement). A device removed, or no longer published, gets empty retained configs; so does everything
published before when the section is disabled (the topics are kept in the store under ``ha_discovery``).

**No double devices**: a device Home Assistant already reads natively (it came through Home Assistant discovery,
Zigbee2MQTT, Tasmota or ESPHome, which all announce their devices to Home Assistant themselves) is not published
unless ``devices = "all"``: :data:`NATIVE_SOURCES`.

The pure parts (:func:`device_entities`, :func:`state_payloads`, :func:`parse_command`) hold no I/O;
:class:`HaDiscoveryPublisher` joins them to the hub's bus and the gateway's MQTT session. This is core, not an
adapter: it imports nothing from ``adapters``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway import __version__
from gateway.bus import (
    AvailabilityChanged,
    DeviceAdded,
    DeviceEvent,
    DeviceRemoved,
    DeviceUpdated,
    StateChanged,
    Unsubscribe,
)
from gateway.errors import CommandValidationError, HearthError
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, Command, Device
from gateway.sdk import MqttClient

__all__ = [
    "NATIVE_SOURCES",
    "CommandPayloadError",
    "Entity",
    "HaDiscoveryPublisher",
    "PublishSettings",
    "device_entities",
    "is_native",
    "parse_command",
    "state_payloads",
]

log = logging.getLogger("hearth.hapublish")

#: Sources and adapters whose devices Home Assistant reads natively (they announce them to it themselves, or
#: Home Assistant has its own integration reading the same MQTT): not published unless ``devices = "all"``.
NATIVE_SOURCES = frozenset({"ha", "homeassistant", "zigbee2mqtt", "tasmota", "esphome"})

# Commands from Home Assistant run as tasks (each waits for the device's confirmation); a flood of command
# messages must not make unbounded tasks: past this many in flight, a command is refused (and counted).
MAX_COMMANDS_IN_FLIGHT = 64
# Per command, as the API's default ([api] command_timeout_s): long enough for a Zigbee round trip.
COMMAND_TIMEOUT_S = 5.0
# A command payload is a word, a number or a small JSON object; beyond this it is not one of Home Assistant's.
MAX_COMMAND_BYTES = 4096
# One warning per this many seconds for rejected commands (a misconfigured automation can send many).
REJECT_LOG_INTERVAL_S = 10.0
# Home Assistant's births on ``<prefix>/status`` heard within this long are one re-announcement: a retained birth
# and a live one, or a birth published twice, arrive in separate reads of the socket as often as in one.
REANNOUNCE_AFTER_S = 0.5

ORIGIN = {"name": "Hearth", "sw_version": __version__, "support_url": "https://github.com/hearth-gateway/hearth"}

# The kinds of a press -> Home Assistant's trigger type (the ones its frontend names; hold and release have none
# of their own and keep Hearth's word).
TRIGGER_TYPES = {
    "single": "button_short_press", "double": "button_double_press", "triple": "button_triple_press",
    "quadruple": "button_quadruple_press", "quintuple": "button_quintuple_press", "long": "button_long_press",
    "hold": "button_hold", "release": "button_release",
}

# Home Assistant's climate HVAC modes (climate.mqtt docs); Hearth's `eco` is not one (it is a preset there).
HA_HVAC_MODES = ("off", "heat", "cool", "heat_cool", "auto", "dry", "fan_only")


@dataclass(frozen=True, slots=True)
class SensorKind:
    """How a numeric attribute appears as a Home Assistant sensor (sensor.mqtt and the sensor device classes)."""

    name: str
    device_class: str | None
    unit: str | None
    state_class: str | None = "measurement"
    diagnostic: bool = False


#: (capability, attribute) -> sensor. Units are Hearth's canonical ones, which are the ones Home Assistant
#: lists for each device class (so no conversion happens on the way).
SENSORS: dict[tuple[str, str], SensorKind] = {
    ("power_meter", "watts"): SensorKind("Power", "power", "W"),
    ("power_meter", "volts"): SensorKind("Voltage", "voltage", "V"),
    ("power_meter", "amps"): SensorKind("Current", "current", "A"),
    ("power_meter", "power_factor"): SensorKind("Power factor", "power_factor", None),
    ("power_meter", "hertz"): SensorKind("Frequency", "frequency", "Hz"),
    ("energy_meter", "kwh"): SensorKind("Energy", "energy", "kWh", "total_increasing"),
    ("energy_meter", "exported_kwh"): SensorKind("Energy exported", "energy", "kWh", "total_increasing"),
    ("temperature", "celsius"): SensorKind("Temperature", "temperature", "°C"),
    ("humidity", "percent"): SensorKind("Humidity", "humidity", "%"),
    ("illuminance", "lux"): SensorKind("Illuminance", "illuminance", "lx"),
    ("pressure", "hpa"): SensorKind("Pressure", "atmospheric_pressure", "hPa"),
    ("air_quality", "co2_ppm"): SensorKind("CO2", "carbon_dioxide", "ppm"),
    ("air_quality", "pm25_ugm3"): SensorKind("PM2.5", "pm25", "µg/m³"),
    ("air_quality", "pm10_ugm3"): SensorKind("PM10", "pm10", "µg/m³"),
    ("air_quality", "pm1_ugm3"): SensorKind("PM1", "pm1", "µg/m³"),
    ("air_quality", "voc_ppb"): SensorKind("VOC", "volatile_organic_compounds_parts", "ppb"),
    ("air_quality", "voc_ugm3"): SensorKind("VOC", "volatile_organic_compounds", "µg/m³"),
    ("smoke_co_alarm", "co_ppm"): SensorKind("Carbon monoxide", "carbon_monoxide", "ppm"),
    ("soil_moisture", "percent"): SensorKind("Soil moisture", "moisture", "%"),
    ("battery", "percent"): SensorKind("Battery", "battery", "%", diagnostic=True),
    ("battery", "volts"): SensorKind("Battery voltage", "voltage", "V", diagnostic=True),
    ("connectivity", "rssi_dbm"): SensorKind("Signal strength", "signal_strength", "dBm", diagnostic=True),
}

#: (capability, attribute) -> (entity name, binary_sensor device class, diagnostic).
BINARY_SENSORS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("contact", "open"): ("Contact", "opening", False),
    ("occupancy", "occupied"): ("Occupancy", "occupancy", False),
    ("water_leak", "leak"): ("Leak", "moisture", False),
    ("smoke_co_alarm", "smoke"): ("Smoke", "smoke", False),
    ("smoke_co_alarm", "co"): ("Carbon monoxide", "carbon_monoxide", False),
    ("gas", "detected"): ("Gas", "gas", False),
    ("vibration", "detected"): ("Vibration", "vibration", False),
    ("tamper", "tampered"): ("Tamper", "tamper", True),
    ("battery", "low"): ("Battery low", "battery", True),
    ("thermostat", "window_open"): ("Window open", "window", False),
}

LIGHT_CAPABILITIES = ("on_off", "level", "color_temperature", "color")


class CommandPayloadError(HearthError):
    """What Home Assistant (or anyone) sent on a command topic is not a command: ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """``[ha_discovery]`` plus what the gateway knows of itself, as the pure functions take them."""

    prefix: str = "homeassistant"
    base_topic: str = "hearth"
    #: The gateway's own status topic (birth ``online``, will ``offline``); empty: none.
    status_topic: str = "hearth/status"
    gateway_name: str = "hearth"
    devices: str = "not_native"

    @property
    def gateway_identifier(self) -> str:
        return f"hearth:gateway:{self.gateway_name}"


@dataclass(frozen=True, slots=True)
class Route:
    """Where a command topic leads: the device, its component, and which kind of payload it takes."""

    device_id: str
    component: str
    kind: str  # on_off | light | cover | cover_position | cover_tilt | thermostat_target | thermostat_mode |
    #            lock | fan | fan_speed | identify | valve | valve_position


@dataclass(slots=True)
class Entity:
    """One discovery config: its topic and body, and the command topics it names."""

    topic: str
    config: dict[str, Any]
    routes: dict[str, Route] = field(default_factory=dict)


def is_native(device: Device) -> bool:
    """Whether Home Assistant reads this device natively already (by its source or its adapter)."""
    return device.source in NATIVE_SOURCES or device.adapter in NATIVE_SOURCES


def wanted(device: Device, settings: PublishSettings) -> bool:
    return settings.devices == "all" or not is_native(device)


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def device_slug(device_id: str) -> str:
    """A topic level and object id part from a device id: ``ble:a4:c1:38:01:02:03`` -> ``ble_a4_c1_38_01_02_03``.
    (Ids are ``<source>:<hardware id>``; a clash between two slugs is resolved by the publisher.)"""
    return _UNSAFE.sub("_", device_id).strip("_") or "device"


def _pretty(component: str) -> str:
    return component.replace("_", " ").upper() if len(component) <= 3 else component.replace("_", " ").capitalize()


class _Builder:
    """The entities of one device (see :func:`device_entities`)."""

    def __init__(self, device: Device, slug: str, settings: PublishSettings) -> None:
        self.device = device
        self.slug = slug
        self.settings = settings
        self.base = f"{settings.base_topic}/{slug}"
        self.entities: list[Entity] = []
        availability = [{"topic": f"{self.base}/availability"}]
        if settings.status_topic:
            availability.insert(0, {"topic": settings.status_topic})
        block: dict[str, Any] = {"identifiers": [f"hearth:{device.id}"], "name": device.name,
                                 "via_device": settings.gateway_identifier}
        for key, value in (("manufacturer", device.manufacturer), ("model", device.model),
                           ("sw_version", device.sw_version), ("hw_version", device.hw_version),
                           ("serial_number", device.serial), ("suggested_area", device.area)):
            if value:
                block[key] = value
        if device.mac:
            block["connections"] = [["mac", device.mac.lower()]]
        self.common: dict[str, Any] = {"device": block, "origin": ORIGIN, "availability": availability,
                                       "availability_mode": "all"}

    def state_topic(self, component: str, capability: str) -> str:
        return f"{self.base}/{component}/{capability}"

    def command_topic(self, component: str, kind: str) -> str:
        return f"{self.base}/{component}/{kind}/set"

    def add(self, platform: str, component: str, object_part: str, name: str | None, body: dict[str, Any],
            routes: Iterable[tuple[str, str]] = ()) -> None:
        object_id = f"hearth_{self.slug}_{component}_{object_part}"
        if name is not None and component != "main":
            name = f"{_pretty(component)} {name[0].lower()}{name[1:]}"
        elif name is None and component != "main":
            name = _pretty(component)
        config = {"name": name, "unique_id": object_id, **body, **self.common}
        entity = Entity(f"{self.settings.prefix}/{platform}/{object_id}/config", config)
        for topic_key, kind in routes:
            topic = self.command_topic(component, kind)
            config[topic_key] = topic
            entity.routes[topic] = Route(self.device.id, component, kind)
        self.entities.append(entity)

    # -- platforms

    def light(self, component: str, caps: dict[str, CapabilitySupport]) -> None:
        body: dict[str, Any] = {"schema": "json", "state_topic": self.state_topic(component, "light")}
        modes: list[str] = []
        ct = caps.get("color_temperature")
        if ct is not None:
            modes.append("color_temp")
            body["color_temp_kelvin"] = True
            low, high = self._kelvin_range(component, ct)
            body["min_kelvin"], body["max_kelvin"] = low, high
        color = caps.get("color")
        if color is not None:
            if {"hue", "saturation"} & color.attributes or "set" in color.commands:
                modes.append("hs")
            if {"x", "y"} & color.attributes or "set_xy" in color.commands:
                modes.append("xy")
        if "level" in caps or modes:
            body["brightness"] = "level" in caps
            # Hearth's level is a percentage: HA scales brightness itself, so Hearth sends and reads 0-100.
            body["brightness_scale"] = 100
        body["supported_color_modes"] = modes or (["brightness"] if "level" in caps else ["onoff"])
        self.add("light", component, "light", None, body, [("command_topic", "light")])

    def _kelvin_range(self, component: str, support: CapabilitySupport) -> tuple[int, int]:
        low, high = support.limits.get("kelvin", (None, None))
        state = self.device.state.get(component, {}).get("color_temperature", {})
        low = low if low is not None else state.get("min_kelvin")
        high = high if high is not None else state.get("max_kelvin")
        # Home Assistant's own defaults (light.mqtt: 2000-6535 K) when the device says nothing.
        return (round(low) if isinstance(low, (int, float)) else 2000,
                round(high) if isinstance(high, (int, float)) else 6535)

    def switch(self, component: str) -> None:
        self.add("switch", component, "on_off", None, {
            "state_topic": self.state_topic(component, "on_off"), "value_template": "{{ value_json.on }}",
            "state_on": "True", "state_off": "False", "payload_on": "ON", "payload_off": "OFF",
        }, [("command_topic", "on_off")])

    def sensor(self, component: str, cap: str, attr: str, kind: SensorKind) -> None:
        body: dict[str, Any] = {"state_topic": self.state_topic(component, cap),
                                "value_template": f"{{{{ value_json.{attr} }}}}"}
        if kind.device_class is not None:
            body["device_class"] = kind.device_class
        if kind.unit is not None:
            body["unit_of_measurement"] = kind.unit
        if kind.state_class is not None:
            body["state_class"] = kind.state_class
        if kind.diagnostic:
            body["entity_category"] = "diagnostic"
        self.add("sensor", component, f"{cap}_{attr}", kind.name, body)

    def binary_sensor(self, component: str, cap: str, attr: str, name: str, device_class: str,
                      diagnostic: bool) -> None:
        body: dict[str, Any] = {"state_topic": self.state_topic(component, cap),
                                "value_template": f"{{{{ value_json.{attr} }}}}",
                                "payload_on": "True", "payload_off": "False", "device_class": device_class}
        if diagnostic:
            body["entity_category"] = "diagnostic"
        self.add("binary_sensor", component, f"{cap}_{attr}", name, body)

    def cover(self, component: str, support: CapabilitySupport) -> None:
        topic = self.state_topic(component, "cover")
        body: dict[str, Any] = {}
        if "motion" in support.attributes:
            body["state_topic"] = topic
            body["value_template"] = "{{ value_json.motion }}"
        if "position_percent" in support.attributes:
            body["position_topic"] = topic
            body["position_template"] = "{{ value_json.position_percent }}"
        if "tilt_percent" in support.attributes:
            body["tilt_status_topic"] = topic
            body["tilt_status_template"] = "{{ value_json.tilt_percent }}"
        routes: list[tuple[str, str]] = []
        if support.commands & {"open", "close", "stop"}:
            routes.append(("command_topic", "cover"))
            for cmd, key in (("open", "payload_open"), ("close", "payload_close"), ("stop", "payload_stop")):
                if cmd not in support.commands:
                    body[key] = None  # Home Assistant's way of saying the cover has no such command
        if "set_position" in support.commands:
            routes.append(("set_position_topic", "cover_position"))
        if "set_tilt" in support.commands:
            routes.append(("tilt_command_topic", "cover_tilt"))
        self.add("cover", component, "cover", None, body, routes)

    def climate(self, component: str, support: CapabilitySupport) -> None:
        topic = self.state_topic(component, "thermostat")
        body: dict[str, Any] = {"temperature_unit": "C", "precision": 0.1, "temp_step": 0.5}
        for attr, topic_key, template_key in (
                ("current_celsius", "current_temperature_topic", "current_temperature_template"),
                ("target_celsius", "temperature_state_topic", "temperature_state_template"),
                ("mode", "mode_state_topic", "mode_state_template"),
                ("running", "action_topic", "action_template")):
            if attr in support.attributes:
                body[topic_key] = topic
                body[template_key] = f"{{{{ value_json.{attr} }}}}"
        low, high = support.limits.get("target_celsius", support.limits.get("celsius", (None, None)))
        if low is not None:
            body["min_temp"] = low
        if high is not None:
            body["max_temp"] = high
        routes: list[tuple[str, str]] = []
        if "set_target" in support.commands:
            routes.append(("temperature_command_topic", "thermostat_target"))
        if "set_mode" in support.commands:
            routes.append(("mode_command_topic", "thermostat_mode"))
            body["modes"] = list(HA_HVAC_MODES)
        else:
            mode = self.device.value(component, "thermostat", "mode")
            body["modes"] = [mode] if mode in HA_HVAC_MODES else ["heat"]
        self.add("climate", component, "thermostat", None, body, routes)

    def lock(self, component: str, support: CapabilitySupport) -> None:
        body: dict[str, Any] = {"state_locked": "locked", "state_unlocked": "unlocked", "state_jammed": "jammed",
                                "payload_lock": "LOCK", "payload_unlock": "UNLOCK"}
        if "state" in support.attributes:
            body["state_topic"] = self.state_topic(component, "lock")
            body["value_template"] = "{{ value_json.state }}"
        routes = [("command_topic", "lock")] if support.commands & {"lock", "unlock"} else []
        if not routes:
            body["optimistic"] = False
        self.add("lock", component, "lock", None, body, routes)

    def fan(self, component: str, support: CapabilitySupport) -> None:
        topic = self.state_topic(component, "fan")
        # fan.mqtt has one pair of words for state and command: Jinja's rendering of the JSON boolean.
        body: dict[str, Any] = {"payload_on": "True", "payload_off": "False"}
        if "on" in support.attributes:
            body["state_topic"] = topic
            body["state_value_template"] = "{{ value_json.on }}"
        if "speed_percent" in support.attributes:
            body["percentage_state_topic"] = topic
            body["percentage_value_template"] = "{{ value_json.speed_percent }}"
        routes = [("command_topic", "fan")]
        if "set_speed" in support.commands:
            routes.append(("percentage_command_topic", "fan_speed"))
        self.add("fan", component, "fan", None, body, routes)

    def valve(self, component: str, support: CapabilitySupport) -> None:
        body: dict[str, Any] = {}
        positioned = "position_percent" in support.attributes or "set_position" in support.commands
        if positioned:
            body["reports_position"] = True
            if "position_percent" in support.attributes:
                body["state_topic"] = self.state_topic(component, "valve")
                body["value_template"] = "{{ value_json.position_percent }}"
        elif "open" in support.attributes:
            body["state_topic"] = self.state_topic(component, "valve")
            body["value_template"] = "{{ value_json.open }}"
            body["state_open"], body["state_closed"] = "True", "False"
        routes = [("command_topic", "valve")] if support.commands & {"open", "close", "set_position"} else []
        self.add("valve", component, "valve", None, body, routes)

    def identify(self, component: str) -> None:
        self.add("button", component, "identify", "Identify",
                 {"device_class": "identify", "entity_category": "config", "payload_press": "PRESS"},
                 [("command_topic", "identify")])

    def trigger(self, component: str, trigger: tuple[int | None, str]) -> None:
        """A device trigger for one press: (button number, kind or the device's own word)."""
        button, word = trigger
        trigger_type = TRIGGER_TYPES.get(word, _UNSAFE.sub("_", word).strip("_") or "action")
        subtype = f"button_{button}" if button else "button"
        if component != "main":
            subtype = f"{component}_{subtype}"
        object_part = f"button_{button or 0}_{_UNSAFE.sub('_', word).strip('_')}"
        object_id = f"hearth_{self.slug}_{component}_{object_part}"
        config = {"automation_type": "trigger", "topic": f"{self.base}/{component}/button/action",
                  "type": trigger_type, "subtype": subtype, "payload": action_payload(button, word),
                  "device": self.common["device"], "origin": ORIGIN}
        self.entities.append(Entity(f"{self.settings.prefix}/device_automation/{object_id}/config", config))


def action_payload(button: int | None, word: str) -> str:
    """What a press is published as on the action topic, and what its trigger matches."""
    return f"button_{button or 0}_{word}"


def press_of(data: dict[str, Any]) -> tuple[int | None, str] | None:
    """A ``button.pressed`` event's (button, kind or the device's word), or None when it says neither."""
    button = data.get("button")
    button = button if isinstance(button, int) and not isinstance(button, bool) else None
    word = data.get("kind") or data.get("action")
    if not isinstance(word, str) or not word.strip():
        return None
    return button, word.strip()[:64]


def pressed_before(device: Device) -> set[tuple[str, tuple[int | None, str]]]:
    """The presses a device's state shows (its ``button.last_event``): announced as triggers from the start."""
    out: set[tuple[str, tuple[int | None, str]]] = set()
    for component, caps in device.state.items():
        button = caps.get("button")
        if button:
            press = press_of({"kind": button.get("last_event"), "button": button.get("button")})
            if press is not None:
                out.add((component, press))
    return out


def device_entities(device: Device, settings: PublishSettings, slug: str | None = None,
                    triggers: Iterable[tuple[str, tuple[int | None, str]]] = ()) -> list[Entity]:
    """Every discovery config of one device (pure). ``triggers``: (component, press) seen so far."""
    builder = _Builder(device, slug or device_slug(device.id), settings)
    for component, caps in device.support.items():
        on_off = caps.get("on_off")
        if on_off is not None and (caps.keys() & {"level", "color_temperature", "color"}):
            builder.light(component, {c: s for c, s in caps.items() if c in LIGHT_CAPABILITIES})
        elif on_off is not None:
            builder.switch(component)
        for cap, support in caps.items():
            if cap == "cover":
                builder.cover(component, support)
            elif cap == "thermostat":
                builder.climate(component, support)
            elif cap == "lock":
                builder.lock(component, support)
            elif cap == "fan":
                builder.fan(component, support)
            elif cap == "valve" and "thermostat" not in caps:  # a radiator valve's opening: the climate's
                builder.valve(component, support)
            elif cap == "identify" and "identify" in support.commands:
                builder.identify(component)
            for attr in sorted(support.attributes):
                kind = SENSORS.get((cap, attr))
                if kind is not None:
                    builder.sensor(component, cap, attr, kind)
                binary = BINARY_SENSORS.get((cap, attr))
                if binary is not None:
                    builder.binary_sensor(component, cap, attr, *binary)
    for component, press in triggers:
        builder.trigger(component, press)
    return builder.entities


def gateway_entity(settings: PublishSettings) -> Entity | None:
    """The gateway itself, as the device every other one is ``via``: a connectivity sensor on its status topic."""
    if not settings.status_topic:
        return None
    object_id = f"hearth_gateway_{_UNSAFE.sub('_', settings.gateway_name).strip('_') or 'hearth'}"
    config = {
        "name": "Status", "unique_id": object_id, "state_topic": settings.status_topic,
        "payload_on": "online", "payload_off": "offline", "device_class": "connectivity",
        "entity_category": "diagnostic",
        "device": {"identifiers": [settings.gateway_identifier], "name": f"Hearth ({settings.gateway_name})",
                   "manufacturer": "Hearth", "model": "Hearth gateway", "sw_version": __version__},
        "origin": ORIGIN,
    }
    return Entity(f"{settings.prefix}/binary_sensor/{object_id}/config", config)


# ---------------------------------------------------------------------------------------------- state


def _light_state(comp_state: dict[str, dict[str, Any]], color_mode: str | None) -> dict[str, Any]:
    """Home Assistant's JSON light state (light.mqtt, JSON schema) from Hearth's light capabilities."""
    on = comp_state.get("on_off", {}).get("on")
    out: dict[str, Any] = {"state": None if on is None else ("ON" if on else "OFF")}
    level = comp_state.get("level", {}).get("percent")
    if level is not None:
        out["brightness"] = level
    kelvin = comp_state.get("color_temperature", {}).get("kelvin")
    color = comp_state.get("color", {})
    if kelvin is not None:
        out["color_temp"] = kelvin
    colour: dict[str, Any] = {}
    if color.get("hue") is not None and color.get("saturation") is not None:
        colour["h"], colour["s"] = color["hue"], color["saturation"]
    if color.get("x") is not None and color.get("y") is not None:
        colour["x"], colour["y"] = color["x"], color["y"]
    if colour:
        out["color"] = colour
    if color_mode is not None:
        out["color_mode"] = color_mode
    return out


def light_color_mode(support: dict[str, CapabilitySupport], comp_state: dict[str, dict[str, Any]],
                     last_changed: str | None) -> str | None:
    """Which of the light's colour modes its state is in: the one changed last, else the one that has a value."""
    modes: list[str] = []
    if "color_temperature" in support:
        modes.append("color_temp")
    color = support.get("color")
    if color is not None:
        if {"hue", "saturation"} & color.attributes or "set" in color.commands:
            modes.append("hs")
        if {"x", "y"} & color.attributes or "set_xy" in color.commands:
            modes.append("xy")
    if not modes:
        return "brightness" if "level" in support else "onoff"
    if last_changed == "color_temperature" and "color_temp" in modes:
        return "color_temp"
    colour = comp_state.get("color", {})
    has_hs = colour.get("hue") is not None and colour.get("saturation") is not None
    has_xy = colour.get("x") is not None and colour.get("y") is not None
    if last_changed == "color" or comp_state.get("color_temperature", {}).get("kelvin") is None:
        if "hs" in modes and has_hs:
            return "hs"
        if "xy" in modes and has_xy:
            return "xy"
    if "color_temp" in modes and comp_state.get("color_temperature", {}).get("kelvin") is not None:
        return "color_temp"
    return "hs" if "hs" in modes and has_hs else ("xy" if "xy" in modes and has_xy else None)


def is_light(caps: dict[str, Any]) -> bool:
    return "on_off" in caps and bool(caps.keys() & {"level", "color_temperature", "color"})


def state_payloads(device: Device, settings: PublishSettings, slug: str | None = None,
                   only: Iterable[tuple[str, str]] | None = None,
                   color_modes: dict[str, str | None] | None = None) -> dict[str, bytes]:
    """Topic -> retained JSON payload of the device's state (pure). ``only``: just these (component, capability);
    ``color_modes``: component -> the light's colour mode (else derived from the state)."""
    base = f"{settings.base_topic}/{slug or device_slug(device.id)}"
    out: dict[str, bytes] = {}
    wanted_caps = None if only is None else set(only)
    for component, caps in device.support.items():
        comp_state = device.state.get(component, {})
        light = is_light(caps)
        for cap in caps:
            if wanted_caps is not None and (component, cap) not in wanted_caps:
                continue
            if light and cap in LIGHT_CAPABILITIES:
                topic = f"{base}/{component}/light"
                if topic not in out:
                    mode = (color_modes or {}).get(component) or light_color_mode(
                        {c: s for c, s in caps.items() if c in LIGHT_CAPABILITIES}, comp_state, None)
                    out[topic] = orjson.dumps(_light_state(comp_state, mode))
                continue
            out[f"{base}/{component}/{cap}"] = orjson.dumps(comp_state.get(cap, {}))
    return out


# ---------------------------------------------------------------------------------------------- commands


def _number(payload: str, what: str, low: float, high: float) -> float:
    try:
        value = float(payload)
    except ValueError:
        raise CommandPayloadError(f"{what}: expected a number, got {payload[:40]!r}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise CommandPayloadError(f"{what}: {payload[:40]!r} is outside {low:g}..{high:g}")
    return int(value) if value.is_integer() else value


def _word(payload: str, words: dict[str, tuple[str, dict[str, Any]]], what: str) -> tuple[str, dict[str, Any]]:
    found = words.get(payload.strip())
    if found is None:
        raise CommandPayloadError(f"{what}: expected one of {', '.join(words)}, got {payload[:40]!r}")
    return found


def parse_command(route: Route, payload: bytes, device: Device | None) -> list[Command]:
    """What Home Assistant sent on a command topic, as Hearth commands in the order to run them (pure).
    Raises :class:`CommandPayloadError` for a payload that is not one of Home Assistant's for that topic."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandPayloadError(f"payload of {len(payload)} bytes is too large")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandPayloadError("payload is not UTF-8 text") from None
    device_id, component, kind = route.device_id, route.component, route.kind

    def cmd(cap: str, name: str, args: dict[str, Any] | None = None) -> Command:
        return Command(device_id, component, cap, name, args or {}, source="homeassistant")

    if kind == "on_off":
        name, args = _word(text, {"ON": ("on", {}), "OFF": ("off", {})}, "switch")
        return [cmd("on_off", name, args)]
    if kind == "light":
        return _light_commands(text, cmd, device, component)
    if kind == "cover":
        name, args = _word(text, {"OPEN": ("open", {}), "CLOSE": ("close", {}), "STOP": ("stop", {})}, "cover")
        return [cmd("cover", name, args)]
    if kind == "cover_position":
        return [cmd("cover", "set_position", {"percent": _number(text, "position", 0, 100)})]
    if kind == "cover_tilt":
        return [cmd("cover", "set_tilt", {"percent": _number(text, "tilt", 0, 100)})]
    if kind == "thermostat_target":
        return [cmd("thermostat", "set_target", {"celsius": _number(text, "temperature", -50, 100)})]
    if kind == "thermostat_mode":
        mode = text.strip()
        if mode not in HA_HVAC_MODES:
            raise CommandPayloadError(f"climate mode {mode[:40]!r} is not one of {', '.join(HA_HVAC_MODES)}")
        return [cmd("thermostat", "set_mode", {"mode": mode})]
    if kind == "lock":
        name, args = _word(text, {"LOCK": ("lock", {}), "UNLOCK": ("unlock", {})}, "lock")
        return [cmd("lock", name, args)]
    if kind == "fan":
        word = text.strip()
        if word == "False":
            return [cmd("fan", "set_speed", {"percent": 0})]
        if word != "True":
            raise CommandPayloadError(f"fan: expected True or False, got {word[:40]!r}")
        last = device.value(component, "fan", "speed_percent") if device is not None else None
        return [cmd("fan", "set_speed", {"percent": last if isinstance(last, (int, float)) and last > 0 else 100})]
    if kind == "fan_speed":
        return [cmd("fan", "set_speed", {"percent": _number(text, "percentage", 0, 100)})]
    if kind == "identify":
        if text.strip() != "PRESS":
            raise CommandPayloadError(f"identify: expected PRESS, got {text[:40]!r}")
        return [cmd("identify", "identify")]
    if kind == "valve":
        word = text.strip()
        if word in ("OPEN", "CLOSE"):
            return [cmd("valve", word.lower())]
        return [cmd("valve", "set_position", {"percent": _number(word, "valve position", 0, 100)})]
    raise CommandPayloadError(f"no commands on {kind!r}")  # pragma: no cover - routes are made above


def _light_commands(text: str, cmd: Callable[..., Command], device: Device | None, component: str) -> list[Command]:
    """The JSON light's command (light.mqtt, JSON schema): ``{"state": "ON", "brightness": 40, "color_temp":
    3000, "color": {"h": 30, "s": 80}, "transition": 2}`` -> on (when the light is not on already), then the
    colour or colour temperature, then the level, as Home Assistant's turn_on means them."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise CommandPayloadError(f"light: not JSON: {text[:40]!r}") from None
    if not isinstance(body, dict):
        raise CommandPayloadError("light: the command must be a JSON object")
    state = body.get("state")
    if state not in ("ON", "OFF"):
        raise CommandPayloadError(f"light: state must be ON or OFF, got {str(state)[:40]!r}")
    transition = body.get("transition")
    if transition is not None and (isinstance(transition, bool) or not isinstance(transition, (int, float))):
        raise CommandPayloadError("light: transition must be a number of seconds")
    if state == "OFF":
        return [cmd("on_off", "off")]
    commands: list[Command] = []
    color = body.get("color")
    if color is not None:
        if not isinstance(color, dict):
            raise CommandPayloadError("light: color must be an object")
        if "h" in color and "s" in color:
            commands.append(cmd("color", "set", {"hue": _json_number(color["h"], "hue", 0, 360),
                                                 "saturation": _json_number(color["s"], "saturation", 0, 100)}))
        elif "x" in color and "y" in color:
            commands.append(cmd("color", "set_xy", {"x": _json_number(color["x"], "x", 0, 1),
                                                    "y": _json_number(color["y"], "y", 0, 1)}))
        else:
            raise CommandPayloadError("light: only hs and xy colours are announced")
    if "color_temp" in body:
        commands.append(cmd("color_temperature", "set",
                            {"kelvin": _json_number(body["color_temp"], "color_temp", 1000, 20000)}))
    if "brightness" in body:
        args: dict[str, Any] = {"percent": _json_number(body["brightness"], "brightness", 0, 100)}
        if transition is not None:
            args["transition_s"] = min(max(float(transition), 0.0), 3600.0)
        commands.append(cmd("level", "set", args))
    on = device.value(component, "on_off", "on") if device is not None else None
    if not commands or on is not True:
        commands.insert(0, cmd("on_off", "on"))
    return commands


def _json_number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandPayloadError(f"light: {what} must be a number")
    if not low <= value <= high:
        raise CommandPayloadError(f"light: {what} {value:g} is outside {low:g}..{high:g}")
    return value


# ---------------------------------------------------------------------------------------------- the publisher

_STORE_KEY = "published"


class HaDiscoveryPublisher:
    """Publishes the hub's devices for Home Assistant on the gateway's MQTT session (see the module docstring).

    ``async with HaDiscoveryPublisher(hub, mqtt, settings, storage=kv):`` announces, subscribes and follows the
    bus; on exit it unsubscribes everything and waits for the commands it started. ``storage`` (a store key-value
    scope) remembers which configs were published, so that what disappeared while the gateway was down, or
    everything after ``enabled = false`` (:meth:`clear_previous`), is removed from Home Assistant.
    """

    def __init__(self, hub: Hub, mqtt: MqttClient, settings: PublishSettings, *, storage: Any = None,
                 command_timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self._hub = hub
        self._mqtt = mqtt
        self.settings = settings
        self._storage = storage
        self._command_timeout_s = command_timeout_s
        self.counters: Counter[str] = Counter()
        self._unsubscribes: list[Unsubscribe] = []
        self._slugs: dict[str, str] = {}  # device id -> its topic level
        self._slug_owner: dict[str, str] = {}  # topic level -> device id
        self._configs: dict[str, dict[str, bytes]] = {}  # device id -> discovery topic -> payload
        self._routes: dict[str, Route] = {}  # command topic -> where it leads
        self._device_routes: dict[str, list[str]] = {}
        self._triggers: dict[str, set[tuple[str, tuple[int | None, str]]]] = {}
        self._states: dict[str, bytes] = {}  # state topic -> last payload published
        self._device_states: dict[str, set[str]] = {}
        self._gateway_config: tuple[str, bytes] | None = None
        self._dirty: dict[str, dict[tuple[str, str], None]] = {}  # device -> (component, capability) changed
        self._flush_handle: asyncio.Handle | None = None
        self._light_modes: dict[tuple[str, str], str | None] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_reject_log = -math.inf
        self._reannounce_handle: asyncio.Handle | None = None
        self._announced = False
        self._announce_task: asyncio.Task[None] | None = None

    # -- lifecycle

    async def __aenter__(self) -> HaDiscoveryPublisher:
        bus = self._hub.bus
        self._unsubscribes += [
            bus.subscribe(StateChanged, self._on_state_changed),
            bus.subscribe(AvailabilityChanged, self._on_availability),
            bus.subscribe(DeviceAdded, self._on_device_changed),
            bus.subscribe(DeviceUpdated, self._on_device_changed),
            bus.subscribe(DeviceRemoved, self._on_device_removed),
            bus.subscribe(DeviceEvent, self._on_device_event),
            self._mqtt.subscribe(f"{self.settings.prefix}/status", self._on_ha_status),
            self._mqtt.subscribe(f"{self.settings.base_topic}/+/+/+/set", self._on_command),
        ]
        if self._mqtt.connected:
            self._announce_all()
        else:
            # At the gateway's start the session is usually still connecting. What is published meanwhile waits
            # in a bounded queue (1,000 messages: gateway.mqtt), which a house of a few hundred devices' configs
            # would overflow; so the first announcement waits for the connection. Until then every handler
            # below is idle: the announcement takes the hub as it is then.
            self._announce_task = asyncio.get_running_loop().create_task(
                self._announce_when_connected(), name="hapublish:first-announcement")
        return self

    async def _announce_when_connected(self) -> None:
        wait_connected = getattr(self._mqtt, "wait_connected", None)
        while not self._mqtt.connected:
            if wait_connected is not None:
                await wait_connected(60.0)
            else:  # a client without wait_connected (the SDK's protocol has none): look twice a second
                await asyncio.sleep(0.5)
        self._announce_all()

    def _announce_all(self) -> None:
        previous = set(self._storage.get(_STORE_KEY, []) if self._storage is not None else [])
        self._announce_gateway()
        for device in list(self._hub.devices.values()):
            self._sync_device(device)
        # What was announced before and is not now (devices removed while the gateway was down, a device now
        # read natively): cleared.
        for topic in sorted(previous - self._all_config_topics()):
            self._mqtt.publish(topic, b"", qos=1, retain=True)
            self.counters["configs_cleared"] += 1
        self._announced = True
        self._remember()
        log.info("Home Assistant discovery: %d devices announced under %s/ (states under %s/)",
                 len(self._configs), self.settings.prefix, self.settings.base_topic)

    async def __aexit__(self, *exc_info: object) -> None:
        unsubscribes, self._unsubscribes = self._unsubscribes, []
        for unsubscribe in unsubscribes:
            unsubscribe()
        for handle in (self._flush_handle, self._reannounce_handle):
            if handle is not None:
                handle.cancel()
        self._flush_handle = self._reannounce_handle = None
        tasks = list(self._tasks)
        if self._announce_task is not None and not self._announce_task.done():
            tasks.append(self._announce_task)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def clear_previous(mqtt: MqttClient, storage: Any) -> int:
        """``[ha_discovery]`` disabled: empty every config announced before (kept in ``storage``), once.
        QoS 1, so that it goes out at the session's first connection. Returns how many."""
        topics = storage.get(_STORE_KEY, []) if storage is not None else []
        for topic in topics:
            mqtt.publish(topic, b"", qos=1, retain=True)
        if topics:
            storage.delete(_STORE_KEY)
            log.info("Home Assistant discovery is off: %d configs announced before are cleared", len(topics))
        return len(topics)

    def stats(self) -> dict[str, Any]:
        """For /healthz."""
        return {"devices": len(self._configs), "configs": sum(len(c) for c in self._configs.values()),
                "commands_in_flight": len(self._tasks), **self.counters}

    # -- announcing

    def _announce_gateway(self) -> None:
        entity = gateway_entity(self.settings)
        if entity is not None:
            payload = orjson.dumps(entity.config)
            self._gateway_config = (entity.topic, payload)
            self._mqtt.publish(entity.topic, payload, qos=1, retain=True)

    def _slug_for(self, device_id: str) -> str:
        slug = self._slugs.get(device_id)
        if slug is None:
            base = slug = device_slug(device_id)
            n = 2
            while self._slug_owner.get(slug, device_id) != device_id:  # two ids, one slug: the later gets _2
                slug, n = f"{base}_{n}", n + 1
            self._slugs[device_id] = slug
            self._slug_owner[slug] = device_id
        return slug

    def _sync_device(self, device: Device) -> None:
        """Announce (or re-announce what changed of) one device, clear what it no longer has, publish its state."""
        if not wanted(device, self.settings):
            if device.id in self._configs:
                self._forget_device(device.id)
            return
        slug = self._slug_for(device.id)
        if device.id not in self._triggers:
            self._triggers[device.id] = pressed_before(device)
        entities = device_entities(device, self.settings, slug, self._triggers.get(device.id, ()))
        old = self._configs.get(device.id, {})
        new: dict[str, bytes] = {}
        for route_topic in self._device_routes.pop(device.id, []):
            self._routes.pop(route_topic, None)
        routes: list[str] = []
        for entity in entities:
            payload = orjson.dumps(entity.config)
            new[entity.topic] = payload
            if old.get(entity.topic) != payload:
                self._mqtt.publish(entity.topic, payload, qos=1, retain=True)
                self.counters["configs_published"] += 1
            for topic, route in entity.routes.items():
                self._routes[topic] = route
                routes.append(topic)
        for topic in old.keys() - new.keys():
            self._mqtt.publish(topic, b"", qos=1, retain=True)
            self.counters["configs_cleared"] += 1
        self._configs[device.id] = new
        self._device_routes[device.id] = routes
        self._publish_availability(device)
        self._publish_states(device, None)
        if old.keys() != new.keys():
            self._remember()

    def _forget_device(self, device_id: str) -> None:
        for topic in self._configs.pop(device_id, {}):
            self._mqtt.publish(topic, b"", qos=1, retain=True)
            self.counters["configs_cleared"] += 1
        for topic in self._device_routes.pop(device_id, []):
            self._routes.pop(topic, None)
        # Retained state and availability would otherwise stay on the broker for a device that is gone.
        for topic in self._device_states.pop(device_id, set()):
            self._states.pop(topic, None)
            self._mqtt.publish(topic, b"", qos=1, retain=True)
        slug = self._slugs.pop(device_id, None)
        if slug is not None:
            self._mqtt.publish(f"{self.settings.base_topic}/{slug}/availability", b"", qos=1, retain=True)
            self._slug_owner.pop(slug, None)
        self._dirty.pop(device_id, None)
        self._triggers.pop(device_id, None)
        for key in [k for k in self._light_modes if k[0] == device_id]:
            del self._light_modes[key]
        self._remember()

    def _all_config_topics(self) -> set[str]:
        topics = {t for configs in self._configs.values() for t in configs}
        if self._gateway_config is not None:
            topics.add(self._gateway_config[0])
        return topics

    def _remember(self) -> None:
        if self._storage is None or not self._announced:
            return
        # Deferred where the store can (gateway.store): serialised once per commit, not once per device added
        # (at start that would be quadratic in the number of devices).
        set_deferred = getattr(self._storage, "set_deferred", None)
        if set_deferred is not None:
            set_deferred(_STORE_KEY, lambda: sorted(self._all_config_topics()))
        else:
            self._storage.set(_STORE_KEY, sorted(self._all_config_topics()))

    def reannounce(self) -> None:
        """Publish every config again (Home Assistant restarted and said so on ``<prefix>/status``)."""
        self._reannounce_handle = None
        if self._gateway_config is not None:
            self._mqtt.publish(self._gateway_config[0], self._gateway_config[1], qos=1, retain=True)
        for configs in self._configs.values():
            for topic, payload in configs.items():
                self._mqtt.publish(topic, payload, qos=1, retain=True)
        # States and availability too: a broker restarted without persistence (which is what often makes Home
        # Assistant reconnect and say "online") has lost the retained ones, and nothing else would renew them
        # before the next change.
        self._states.clear()
        for device_id in list(self._configs):
            device = self._hub.devices.get(device_id)
            if device is not None:
                self._publish_availability(device)
                self._publish_states(device, None)
        self.counters["reannounced"] += 1
        log.info("Home Assistant came online: %d configs announced again", sum(len(c) for c in self._configs.values()))

    # -- state

    def _publish_states(self, device: Device, only: Iterable[tuple[str, str]] | None) -> None:
        slug = self._slugs[device.id]
        modes: dict[str, str | None] = {}
        changed = None if only is None else list(only)
        for component, caps in device.support.items():
            if not is_light(caps):
                continue
            last = None
            if changed is not None:
                touched = [cap for comp, cap in changed if comp == component and cap in ("color", "color_temperature")]
                last = touched[-1] if touched else None
            key = (device.id, component)
            if last is not None or key not in self._light_modes:
                light_caps = {c: s for c, s in caps.items() if c in LIGHT_CAPABILITIES}
                self._light_modes[key] = light_color_mode(light_caps, device.state.get(component, {}), last)
            modes[component] = self._light_modes[key]
        topics = self._device_states.setdefault(device.id, set())
        for topic, payload in state_payloads(device, self.settings, slug, changed, modes).items():
            if self._states.get(topic) != payload:
                self._states[topic] = payload
                topics.add(topic)
                self._mqtt.publish(topic, payload, retain=True)
                self.counters["states_published"] += 1

    def _publish_availability(self, device: Device) -> None:
        word = b"offline" if device.available is False else b"online"
        self._mqtt.publish(f"{self.settings.base_topic}/{self._slugs[device.id]}/availability", word, qos=1,
                           retain=True)

    # -- the bus (synchronous, on the loop: each handler only notes what changed or publishes a little)

    def _on_state_changed(self, event: StateChanged) -> None:
        # The hot path: one dict lookup for a device that is not published; a set insert otherwise. The
        # publishing itself happens once per device per turn of the loop (_flush), however many values changed.
        if event.device_id not in self._configs:
            return
        dirty = self._dirty.get(event.device_id)
        if dirty is None:
            dirty = self._dirty[event.device_id] = {}
        dirty[(event.component, event.capability)] = None
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        dirty, self._dirty = self._dirty, {}
        for device_id, keys in dirty.items():
            device = self._hub.devices.get(device_id)
            if device is not None and device_id in self._slugs:
                self._publish_states(device, keys)

    def _on_availability(self, event: AvailabilityChanged) -> None:
        device = self._hub.devices.get(event.device_id)
        if device is not None and event.device_id in self._configs:
            self._publish_availability(device)

    def _on_device_changed(self, event: DeviceAdded | DeviceUpdated) -> None:
        device = self._hub.devices.get(event.device_id)
        if device is not None and self._announced:
            self._sync_device(device)

    def _on_device_removed(self, event: DeviceRemoved) -> None:
        if event.device_id in self._configs:
            self._forget_device(event.device_id)

    def _on_device_event(self, event: DeviceEvent) -> None:
        if event.capability != "button" or event.device_id not in self._configs:
            return
        press = press_of(event.data)
        if press is None:
            return
        triggers = self._triggers.setdefault(event.device_id, set())
        if (event.component, press) not in triggers:
            # Announced before the press goes out, so that Home Assistant has the trigger when it comes.
            triggers.add((event.component, press))
            device = self._hub.devices.get(event.device_id)
            if device is not None:
                self._sync_device(device)
        slug = self._slugs[event.device_id]
        self._mqtt.publish(f"{self.settings.base_topic}/{slug}/{event.component}/button/action",
                           action_payload(*press))
        self.counters["presses_published"] += 1

    # -- MQTT

    def _on_ha_status(self, topic: str, payload: bytes, retained: bool) -> None:
        if payload.strip() != b"online" or not self._announced:
            return
        # Home Assistant has subscribed to the discovery topics by the time it says it is online: half a second
        # later is soon enough, and the births heard meanwhile (a retained one and a live one) are one
        # re-announcement.
        if self._reannounce_handle is None:
            self._reannounce_handle = asyncio.get_running_loop().call_later(REANNOUNCE_AFTER_S, self.reannounce)

    def _on_command(self, topic: str, payload: bytes, retained: bool) -> None:
        route = self._routes.get(topic)
        if route is None:
            return  # not one of the command topics announced (another gateway's, a device gone)
        if retained:
            # A retained command is an old one (somebody published with retain): carrying it out at every
            # start would switch things by itself.
            self._reject(topic, "retained command ignored")
            return
        device = self._hub.devices.get(route.device_id)
        try:
            commands = parse_command(route, payload, device)
        except CommandPayloadError as err:
            self._reject(topic, err.reason)
            return
        if len(self._tasks) >= MAX_COMMANDS_IN_FLIGHT:
            self._reject(topic, f"more than {MAX_COMMANDS_IN_FLIGHT} commands in flight")
            return
        self.counters["commands_received"] += 1
        task = asyncio.get_running_loop().create_task(self._execute(topic, commands),
                                                      name=f"hapublish:command:{route.device_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, topic: str, commands: list[Command]) -> None:
        for command in commands:
            try:
                result = await self._hub.execute(command, timeout_s=self._command_timeout_s)
            except CommandValidationError as err:
                self._reject(topic, f"{command.capability}.{command.command}: {err}")
                return
            self.counters[f"commands_{result.status}"] += 1
            if result.status not in ("confirmed", "sent", "timeout"):
                return  # the rest of a light's command makes no sense on a device that refused the first part

    def _reject(self, topic: str, reason: str) -> None:
        self.counters["commands_rejected"] += 1
        now = self._hub.clock.monotonic()
        if now - self._last_reject_log >= REJECT_LOG_INTERVAL_S:
            self._last_reject_log = now
            log.warning("Home Assistant command on %s rejected: %s (%d rejected so far)", topic, reason,
                        self.counters["commands_rejected"])


def settings_from(config: Any) -> PublishSettings:
    """``PublishSettings`` from the gateway's :class:`gateway.config.Config`."""
    section = config.ha_discovery
    return PublishSettings(prefix=section.prefix, base_topic=section.base_topic,
                           status_topic=config.mqtt.status_topic, gateway_name=config.gateway.name,
                           devices=section.devices)



async def enter_ha_discovery(stack: contextlib.AsyncExitStack, config: Any, hub: Hub, mqtt: MqttClient,
                             storage: Any) -> HaDiscoveryPublisher | None:
    """The gateway's wiring (gateway.app): the publisher entered on ``stack`` when ``[ha_discovery]`` is enabled;
    otherwise nothing is subscribed (the hot path does not see it) and what was announced before is cleared."""
    if not config.ha_discovery.enabled:
        HaDiscoveryPublisher.clear_previous(mqtt, storage)
        return None
    return await stack.enter_async_context(HaDiscoveryPublisher(hub, mqtt, settings_from(config), storage=storage,
                                                                command_timeout_s=config.api.command_timeout_s))
