"""Hearth's capability model -> Matter device types and clusters, as data (STYLE 6).

One table, :data:`DEVICE_TYPES`, says which Matter device type a device's component becomes and which Matter
attribute each Hearth attribute feeds (and which Hearth command a controller's change of it sends). It is
serialised by :func:`mapping_json` for the Node sidecar (``matter/bridge.mjs``), which builds its endpoints from
it, and rendered by :func:`docs_table` into docs/matter.md. :func:`plan_device` applies it to one device, the
same way the sidecar does, and says what is left over: capabilities and attributes that do not map are listed,
never dropped silently (docs, ``GET /api/matter``, ``/healthz``).

Conversions are named (``kind``) and implemented in both directions by the sidecar:

- ``same``: the value as it is; ``not``: a boolean inverted;
- ``scale``: ``round(value * factor)``, clamped to ``min``/``max`` (Matter's hundredths of a degree or percent);
- ``level``: 0-100 % <-> Matter's level 1-254; ``mireds``: kelvin <-> mireds (1,000,000 / K);
- ``lux``: lux -> ``10000 * log10(lux) + 1`` (Matter's illuminance measured value);
- ``map``: a table of Hearth value -> Matter value (``to``) and back (``back``); a value not in ``to`` is not
  shown (and counted by the sidecar as unrepresentable);
- ``linear``: ``round(value * factor + offset)`` and back (a cover's 0 % closed -> Matter's 10000 = closed);
- ``energy``: kWh -> Matter's EnergyMeasurementStruct (``{"energy": mWh}``);
- ``bands``: a number -> the Matter value of the first band whose upper bound it does not pass (``bands``:
  ``[[bound, value], ...]``), else ``above`` (a CO2 reading -> Matter's air quality class).
"""

# The docs table is typographic on purpose (a multiplication sign for a factor, an en dash for "none"):
# ruff: noqa: RUF001

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BRIDGE_LEVEL",
    "DEVICE_TYPES",
    "NOT_MAPPED",
    "Binding",
    "ClusterRule",
    "DeviceTypeRule",
    "Plan",
    "docs_table",
    "mapping_json",
    "plan_device",
]

MAPPING_VERSION = 1


@dataclass(frozen=True, slots=True)
class Binding:
    """One Hearth attribute shown as one Matter attribute; with ``command``, a controller's change of the
    Matter attribute is sent to the device as that Hearth command."""

    #: ``capability.attribute`` in Hearth's model.
    source: str
    #: The Matter attribute (matter.js's name, in the cluster's behavior).
    attribute: str
    #: How the value converts (see the module's docstring).
    convert: dict[str, Any] = field(default_factory=lambda: {"kind": "same"})
    #: ``{"command": name, "arg": argument}`` (the Matter value, converted back, is the argument; ``"with"``:
    #: more arguments from other Matter attributes of the cluster, ``{argument: attribute}``), for a
    #: boolean ``{"true": command, "false": command}``, or ``{"values": {matter value: command}}`` (a lock's
    #: state; a command is a name, or ``{"command": name, "args": {...}}``). None: read-only.
    command: dict[str, Any] | None = None

    @property
    def capability(self) -> str:
        return self.source.split(".", 1)[0]

    @property
    def hearth_attribute(self) -> str:
        return self.source.split(".", 1)[1]


@dataclass(frozen=True, slots=True)
class ClusterRule:
    """One cluster of a device type: its matter.js behavior, the features it is built with, the state it
    starts with (before the device reports anything) and its bindings."""

    #: The behavior's id in matter.js (``endpoint.state.<behavior>``), e.g. ``"onOff"``.
    behavior: str
    #: The cluster's name as the Matter specification writes it.
    cluster: str
    #: The matter.js server class, when the device type's default one is not enough (features).
    server: str | None = None
    #: The server's features (matter.js names), with ``server``.
    features: tuple[str, ...] = ()
    #: Initial state (Matter units).
    defaults: dict[str, Any] = field(default_factory=dict)
    bindings: tuple[Binding, ...] = ()
    #: Built only when the component reports one of the bound attributes (an air sensor's PM2.5 cluster only on a
    #: sensor that measures PM2.5), or has one of the capabilities in ``when``.
    optional: bool = False
    #: With ``optional``: capabilities whose presence builds the cluster (instead of its bound attributes).
    when: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeviceTypeRule:
    """One Matter device type and what of a component makes it."""

    #: Hearth's key for it (in plans, status and docs).
    key: str
    #: The device type's name in the Matter Device Library.
    name: str
    #: Its device type id.
    device_type_id: int
    #: The matter.js device class (``@matter/main/devices``).
    js_device: str
    #: Capabilities the component must all have.
    requires: tuple[str, ...]
    #: Capabilities it also takes when the component has them (their clusters are added only then).
    optional: tuple[str, ...] = ()
    #: Only for components of devices with this tag (lights among switches: the tag "light").
    tag: str | None = None
    clusters: tuple[ClusterRule, ...] = ()
    #: Hearth device events (``capability.event``) the sidecar turns into the Matter events of a cluster (behavior):
    #: a button's ``pressed`` into the Switch cluster's press sequence.
    events: dict[str, str] = field(default_factory=dict)
    #: Attributes whose meaning travels in those events rather than in a Matter attribute (not "unmapped").
    carries: tuple[str, ...] = ()

    def capabilities(self) -> tuple[str, ...]:
        return self.requires + self.optional


def _b(source: str, attribute: str, kind: str = "same", command: dict[str, Any] | None = None,
       **convert: Any) -> Binding:
    return Binding(source, attribute, {"kind": kind, **convert}, command)


# Matter stores temperatures as int16 hundredths of a degree Celsius, humidity as uint16 hundredths of a percent.
_CENTI: dict[str, Any] = {"factor": 100}
# A thermostat's setpoints: Matter's default absolute limits are 7-30 °C; Hearth's valves go to 5 °C (frost
# protection) and 35 °C, so the bridge announces those and clamps anything beyond them.
_SETPOINT_MIN, _SETPOINT_MAX = 500, 3500
# Matter SystemMode: Off 0, Auto 1, Cool 3, Heat 4. A heating-only thermostat (what Hearth's radiator valves are)
# shows Hearth's auto (a schedule) and eco (a lower target) as Heat: it is heating, to the target shown.
_SYSTEM_MODE: dict[str, Any] = {"to": {"off": 0, "heat": 4, "auto": 4, "eco": 4}, "back": {"0": "off", "4": "heat"}}
# Matter ThermostatRunningState is a bitmap.
_RUNNING: dict[str, Any] = {"to": {"idle": {}, "off": {}, "heating": {"heat": True}, "preheating": {"heat": True},
                   "cooling": {"cool": True}, "fan": {"fan": True}}}
# ColorTemperature's physical range when the device says none: 2000-6500 K (500-153 mireds).
_MIREDS_MIN, _MIREDS_MAX = 153, 500

_ON_OFF = ClusterRule("onOff", "On/Off", bindings=(
    _b("on_off.on", "onOff", command={"true": "on", "false": "off"}),))
_LEVEL = ClusterRule("levelControl", "Level Control", defaults={"currentLevel": 254, "minLevel": 1, "maxLevel": 254},
                     bindings=(_b("level.percent", "currentLevel", "level",
                                  command={"command": "set", "arg": "percent"}),))
_COLOR_TEMPERATURE = ClusterRule(
    "colorControl", "Color Control", server="ColorControlServer", features=("ColorTemperature",),
    defaults={"colorMode": 2, "enhancedColorMode": 2, "colorTemperatureMireds": 370,
              "colorTempPhysicalMinMireds": _MIREDS_MIN, "colorTempPhysicalMaxMireds": _MIREDS_MAX,
              "coupleColorTempToLevelMinMireds": _MIREDS_MIN, "startUpColorTemperatureMireds": None},
    bindings=(
        _b("color_temperature.kelvin", "colorTemperatureMireds", "mireds",
           command={"command": "set", "arg": "kelvin"}, min=_MIREDS_MIN, max=_MIREDS_MAX),
        # The warmest colour is the most mireds: min_kelvin sets the maximum.
        _b("color_temperature.min_kelvin", "colorTempPhysicalMaxMireds", "mireds"),
        _b("color_temperature.max_kelvin", "colorTempPhysicalMinMireds", "mireds"),
    ))
# Matter's hue and saturation are 0-254 (a full circle, full saturation); x and y are 0-65279 for 0-1 (1/65536ths).
_HUE: dict[str, Any] = {"factor": 254 / 360, "min": 0, "max": 254}
_SATURATION: dict[str, Any] = {"factor": 2.54, "min": 0, "max": 254}
_XY: dict[str, Any] = {"factor": 65536, "min": 0, "max": 65279}
_EXTENDED_COLOR = ClusterRule(
    "colorControl", "Color Control", server="ColorControlServer", features=("HueSaturation", "Xy", "ColorTemperature"),
    defaults={"colorMode": 0, "enhancedColorMode": 0, "currentHue": 0, "currentSaturation": 0, "currentX": 24939,
              "currentY": 24701, "colorTemperatureMireds": 370, "colorTempPhysicalMinMireds": _MIREDS_MIN,
              "colorTempPhysicalMaxMireds": _MIREDS_MAX, "coupleColorTempToLevelMinMireds": _MIREDS_MIN,
              "startUpColorTemperatureMireds": None},
    bindings=(
        # A controller's Move To Hue And Saturation changes both: one color.set with both, once they settled.
        _b("color.hue", "currentHue", "scale", command={"command": "set", "arg": "hue",
                                                        "with": {"saturation": "currentSaturation"}}, **_HUE),
        _b("color.saturation", "currentSaturation", "scale", command={"command": "set", "arg": "saturation",
                                                                      "with": {"hue": "currentHue"}}, **_SATURATION),
        _b("color.x", "currentX", "scale", command={"command": "set_xy", "arg": "x", "with": {"y": "currentY"}},
           **_XY),
        _b("color.y", "currentY", "scale", command={"command": "set_xy", "arg": "y", "with": {"x": "currentX"}},
           **_XY),
        *_COLOR_TEMPERATURE.bindings,
    ))
_BRIDGED = "Bridged Device Basic Information"
# A plug's meter (Matter 1.3's electrical measurement): power in mW, voltage in mV, current in mA, energy in mWh.
# MeasurementTypeEnum: Voltage 1, ActiveCurrent 2, ActivePower 5; ElectricalEnergy 14. The accuracy is what
# Matter requires each measured quantity to declare: Hearth does not know the meter's, so "±5 %" (a typical
# plug's) is announced over the whole range.
_M = 10**12  # ±1 GW (in mW), ±1 TWh (in mWh): "any value", within JavaScript's exact integers


def _accuracy(kind: int) -> dict[str, Any]:
    return {"measurementType": kind, "measured": True, "minMeasuredValue": -_M, "maxMeasuredValue": _M,
            "accuracyRanges": [{"rangeMin": -_M, "rangeMax": _M, "percentMax": 500}]}


_POWER_TOPOLOGY = ClusterRule("powerTopology", "Power Topology", server="PowerTopologyServer",
                              features=("NodeTopology",), optional=True, when=("power_meter", "energy_meter"))
_POWER = ClusterRule(
    "electricalPowerMeasurement", "Electrical Power Measurement", server="ElectricalPowerMeasurementServer",
    features=("AlternatingCurrent",), optional=True,
    defaults={"powerMode": 2, "numberOfMeasurementTypes": 3, "accuracy": [_accuracy(5), _accuracy(1), _accuracy(2)],
              "activePower": None, "voltage": None, "activeCurrent": None},
    bindings=(_b("power_meter.watts", "activePower", "scale", factor=1000),
              _b("power_meter.volts", "voltage", "scale", factor=1000),
              _b("power_meter.amps", "activeCurrent", "scale", factor=1000)))
_ENERGY = ClusterRule(
    "electricalEnergyMeasurement", "Electrical Energy Measurement", server="ElectricalEnergyMeasurementServer",
    features=("CumulativeEnergy", "ImportedEnergy"), optional=True,
    defaults={"accuracy": _accuracy(14), "cumulativeEnergyImported": None},
    bindings=(_b("energy_meter.kwh", "cumulativeEnergyImported", "energy"),))
# Matter's AlarmStateEnum: Normal 0, Critical 2 (a detector says "alarm" or not: never the Warning level).
_ALARM: dict[str, Any] = {"to": {"true": 2, "false": 0}}
# Matter's LockStateEnum: NotFullyLocked 0, Locked 1, Unlocked 2 (a jammed lock is not fully locked).
_LOCK_STATE: dict[str, Any] = {"to": {"locked": 1, "unlocked": 2, "jammed": 0},
                               "back": {"1": "locked", "2": "unlocked"}}
# Matter's AirQualityEnum from CO2 (ppm): Good 1 up to 800, Fair 2 to 1000, Moderate 3 to 1500, Poor 4 to 2000,
# VeryPoor 5 to 5000, ExtremelyPoor 6 above (the bands of common indoor CO2 guidance, e.g. DIN EN 16798-1's).
_CO2_BANDS: dict[str, Any] = {"bands": [[800, 1], [1000, 2], [1500, 3], [2000, 4], [5000, 5]], "above": 6}
# MeasurementUnitEnum: ppm 0, µg/m³ 4; MeasurementMediumEnum: air 0.
_PPM: dict[str, Any] = {"measurementUnit": 0, "measurementMedium": 0}
_UGM3: dict[str, Any] = {"measurementUnit": 4, "measurementMedium": 0}


# Matter's window covering position is in hundredths of a percent *closed*: Hearth's 100 % open is 0.
_CLOSED_100THS: dict[str, Any] = {"factor": -100, "offset": 10000}
# OperationalStatusBitmap: global and lift movement, Stopped 0, Opening 1, Closing 2.
_COVER_MOTION: dict[str, Any] = {"to": {"stopped": {"global": 0, "lift": 0}, "opening": {"global": 1, "lift": 1},
                        "closing": {"global": 2, "lift": 2}}}


# FanModeEnum: Off 0, Low 1, Medium 2, High 3, On 4 (sequence 0: Off/Low/Med/High). A speed shows as the mode of
# its third of the range (a 3-speed fan's 33, 67 and 100 % are Low, Medium, High); a mode a controller picks is sent
# as that speed (On: full).
_FAN_MODE_BANDS: dict[str, Any] = {"bands": [[0, 0], [34, 1], [67, 2]], "above": 3}
_FAN_MODE_COMMANDS: dict[str, Any] = {str(mode): {"command": "set_speed", "args": {"percent": percent}}
                      for mode, percent in ((0, 0), (1, 33), (2, 67), (3, 100), (4, 100))}


# The Switch server's long press delay (its default is 2 s). A "long" press arrives in Hearth when it is over: the
# sidecar holds the switch 100 ms more than this, then releases it.
_LONG_PRESS_MS = 300


def _concentration(behavior: str, cluster: str, source: str, unit: dict[str, int]) -> ClusterRule:
    return ClusterRule(behavior, cluster, server=f"{behavior[0].upper()}{behavior[1:]}Server",
                       features=("NumericMeasurement",), optional=True,
                       defaults={"measuredValue": None, "minMeasuredValue": None, "maxMeasuredValue": None, **unit},
                       bindings=(_b(source, "measuredValue"),))


def _sensor(key: str, name: str, type_id: int, js: str, capability: str, behavior: str, cluster: str,
            binding: Binding, defaults: dict[str, Any] | None = None, server: str | None = None,
            features: tuple[str, ...] = ()) -> DeviceTypeRule:
    return DeviceTypeRule(key, name, type_id, js, (capability,), clusters=(
        ClusterRule(behavior, cluster, server=server, features=features, defaults=defaults or {},
                    bindings=(binding,)),))


#: The table, most specific first: a component's capabilities go to the first device type that requires them
#: (each capability to one device type); what is left over is listed as not mapped.
DEVICE_TYPES: tuple[DeviceTypeRule, ...] = (
    DeviceTypeRule("extended_color_light", "Extended Color Light", 0x010D, "ExtendedColorLightDevice",
                   ("on_off", "level", "color"), optional=("color_temperature",),
                   clusters=(_ON_OFF, _LEVEL, _EXTENDED_COLOR)),
    DeviceTypeRule("color_temperature_light", "Color Temperature Light", 0x010C, "ColorTemperatureLightDevice",
                   ("on_off", "level", "color_temperature"), clusters=(_ON_OFF, _LEVEL, _COLOR_TEMPERATURE)),
    DeviceTypeRule("dimmable_light", "Dimmable Light", 0x0101, "DimmableLightDevice", ("on_off", "level"),
                   clusters=(_ON_OFF, _LEVEL)),
    DeviceTypeRule("on_off_light", "On/Off Light", 0x0100, "OnOffLightDevice", ("on_off",), tag="light",
                   clusters=(_ON_OFF,)),
    DeviceTypeRule("on_off_plug_in_unit", "On/Off Plug-in Unit", 0x010A, "OnOffPlugInUnitDevice", ("on_off",),
                   optional=("power_meter", "energy_meter"),
                   clusters=(_ON_OFF, _POWER_TOPOLOGY, _POWER, _ENERGY)),
    DeviceTypeRule(
        "thermostat", "Thermostat", 0x0301, "ThermostatDevice", ("thermostat",), clusters=(
            ClusterRule("thermostat", "Thermostat", server="ThermostatServer", features=("Heating",),
                        defaults={"localTemperature": None, "occupiedHeatingSetpoint": 2000,
                                  "absMinHeatSetpointLimit": _SETPOINT_MIN, "absMaxHeatSetpointLimit": _SETPOINT_MAX,
                                  "minHeatSetpointLimit": _SETPOINT_MIN, "maxHeatSetpointLimit": _SETPOINT_MAX,
                                  "controlSequenceOfOperation": 2, "systemMode": 4},
                        bindings=(
                            _b("thermostat.current_celsius", "localTemperature", "scale", **_CENTI),
                            _b("thermostat.target_celsius", "occupiedHeatingSetpoint", "scale",
                               command={"command": "set_target", "arg": "celsius"}, min=_SETPOINT_MIN,
                               max=_SETPOINT_MAX, **_CENTI),
                            _b("thermostat.mode", "systemMode", "map", command={"command": "set_mode", "arg": "mode"},
                               **_SYSTEM_MODE),
                            _b("thermostat.running", "thermostatRunningState", "map", **_RUNNING),
                        )),)),
    _sensor("contact_sensor", "Contact Sensor", 0x0015, "ContactSensorDevice", "contact", "booleanState",
            "Boolean State", _b("contact.open", "stateValue", "not"), {"stateValue": True}),
    _sensor("water_leak_detector", "Water Leak Detector", 0x0043, "WaterLeakDetectorDevice", "water_leak",
            "booleanState", "Boolean State", _b("water_leak.leak", "stateValue"), {"stateValue": False}),
    _sensor("occupancy_sensor", "Occupancy Sensor", 0x0107, "OccupancySensorDevice", "occupancy",
            "occupancySensing", "Occupancy Sensing",
            _b("occupancy.occupied", "occupancy", "map",
               to={"true": {"occupied": True}, "false": {"occupied": False}}),
            {"occupancy": {"occupied": False}, "occupancySensorType": 0, "occupancySensorTypeBitmap": {"pir": True}},
            server="OccupancySensingServer", features=("PassiveInfrared", "OccupancyEvent")),
    _sensor("temperature_sensor", "Temperature Sensor", 0x0302, "TemperatureSensorDevice", "temperature",
            "temperatureMeasurement", "Temperature Measurement",
            _b("temperature.celsius", "measuredValue", "scale", **_CENTI),
            {"measuredValue": None, "minMeasuredValue": None, "maxMeasuredValue": None}),
    _sensor("humidity_sensor", "Humidity Sensor", 0x0307, "HumiditySensorDevice", "humidity",
            "relativeHumidityMeasurement", "Relative Humidity Measurement",
            _b("humidity.percent", "measuredValue", "scale", min=0, max=10000, **_CENTI),
            {"measuredValue": None, "minMeasuredValue": None, "maxMeasuredValue": None}),
    # Matter's pressure is in tenths of a kilopascal: exactly hectopascals.
    _sensor("pressure_sensor", "Pressure Sensor", 0x0305, "PressureSensorDevice", "pressure",
            "pressureMeasurement", "Pressure Measurement", _b("pressure.hpa", "measuredValue", "scale", factor=1),
            {"measuredValue": None, "minMeasuredValue": None, "maxMeasuredValue": None}),
    _sensor("light_sensor", "Light Sensor", 0x0106, "LightSensorDevice", "illuminance",
            "illuminanceMeasurement", "Illuminance Measurement", _b("illuminance.lux", "measuredValue", "lux"),
            {"measuredValue": None, "minMeasuredValue": None, "maxMeasuredValue": None}),
    # The cover moves by itself: the sidecar's Window Covering server moves nothing, it sends the target to Hearth
    # (and Stop Motion as cover.stop) and shows the position the cover reports.
    DeviceTypeRule("window_covering", "Window Covering", 0x0202, "WindowCoveringDevice", ("cover",), clusters=(
        ClusterRule("windowCovering", "Window Covering", server="WindowCoveringServer",
                    features=("Lift", "PositionAwareLift"),
                    defaults={"type": 0, "endProductType": 0, "currentPositionLiftPercent100ths": None,
                              "targetPositionLiftPercent100ths": None},
                    bindings=(
                        _b("cover.position_percent", "currentPositionLiftPercent100ths", "linear", **_CLOSED_100THS),
                        _b("cover.position_percent", "targetPositionLiftPercent100ths", "linear",
                           command={"command": "set_position", "arg": "percent"}, **_CLOSED_100THS),
                        _b("cover.motion", "operationalStatus", "map", **_COVER_MOTION),
                    )),)),
    DeviceTypeRule("fan", "Fan", 0x002B, "FanDevice", ("fan",), clusters=(
        ClusterRule("fanControl", "Fan Control", defaults={"fanMode": 0, "fanModeSequence": 0, "percentSetting": None,
                                                           "percentCurrent": 0},
                    bindings=(
                        _b("fan.speed_percent", "percentCurrent"),
                        _b("fan.speed_percent", "percentSetting", command={"command": "set_speed", "arg": "percent"}),
                        _b("fan.speed_percent", "fanMode", "bands", command={"values": _FAN_MODE_COMMANDS},
                           **_FAN_MODE_BANDS),
                    )),)),
    # A press is an event, not a state: Hearth's button.pressed (single ... quintuple, long, hold, release) plays the
    # Switch cluster's momentary press sequence (Initial Press, Short Release, Multi Press Complete; Long Press,
    # Long Release). One switch per component: the buttons of a multi-button remote are not told apart yet.
    DeviceTypeRule("generic_switch", "Generic Switch", 0x000F, "GenericSwitchDevice", ("button",), clusters=(
        ClusterRule("switch", "Switch", server="SwitchServer",
                    features=("MomentarySwitch", "MomentarySwitchRelease", "MomentarySwitchLongPress",
                              "MomentarySwitchMultiPress"),
                    defaults={"numberOfPositions": 2, "currentPosition": 0, "multiPressMax": 5,
                              "longPressDelay": _LONG_PRESS_MS}),),
        events={"button.pressed": "switch"}, carries=("button.last_event",)),
    DeviceTypeRule("smoke_co_alarm", "Smoke CO Alarm", 0x0076, "SmokeCoAlarmDevice", ("smoke_co_alarm",), clusters=(
        ClusterRule("smokeCoAlarm", "Smoke CO Alarm", server="SmokeCoAlarmServer", features=("SmokeAlarm", "CoAlarm"),
                    bindings=(_b("smoke_co_alarm.smoke", "smokeState", "map", **_ALARM),
                              _b("smoke_co_alarm.co", "coState", "map", **_ALARM))),)),
    DeviceTypeRule("door_lock", "Door Lock", 0x000A, "DoorLockDevice", ("lock",), clusters=(
        ClusterRule("doorLock", "Door Lock",
                    defaults={"lockState": None, "lockType": 0, "actuatorEnabled": True, "operatingMode": 0,
                              "wrongCodeEntryLimit": 5, "userCodeTemporaryDisableTime": 60},
                    bindings=(_b("lock.state", "lockState", "map", command={"values": {"1": "lock", "2": "unlock"}},
                                 **_LOCK_STATE),)),)),
    DeviceTypeRule("air_quality_sensor", "Air Quality Sensor", 0x002C, "AirQualitySensorDevice", ("air_quality",),
                   clusters=(
        # The classes beyond Good and Poor are features of the cluster.
        ClusterRule("airQuality", "Air Quality", server="AirQualityServer",
                    features=("Fair", "Moderate", "VeryPoor", "ExtremelyPoor"), defaults={"airQuality": 0},
                    bindings=(_b("air_quality.co2_ppm", "airQuality", "bands", **_CO2_BANDS),)),
        _concentration("carbonDioxideConcentrationMeasurement", "Carbon Dioxide Concentration Measurement",
                       "air_quality.co2_ppm", _PPM),
        _concentration("pm25ConcentrationMeasurement", "PM2.5 Concentration Measurement", "air_quality.pm25_ugm3",
                       _UGM3),
        _concentration("pm10ConcentrationMeasurement", "PM10 Concentration Measurement", "air_quality.pm10_ugm3",
                       _UGM3),
        _concentration("pm1ConcentrationMeasurement", "PM1 Concentration Measurement", "air_quality.pm1_ugm3",
                       _UGM3),
        _concentration("formaldehydeConcentrationMeasurement", "Formaldehyde Concentration Measurement",
                       "air_quality.hcho_ugm3", _UGM3),
    )),
)

#: Attributes the bridge shows on every bridged endpoint rather than on a device type's cluster.
BRIDGE_LEVEL: dict[str, str] = {
    "connectivity.online": f"{_BRIDGED}: Reachable (with the device's availability)",
}

#: Capabilities of the model with no device type in this bridge yet, and why (docs and plans say so).
NOT_MAPPED: dict[str, str] = {
    "color": "only on a dimmable light (Extended Color Light)",
    "power_meter": "only on a plug (On/Off Plug-in Unit): a meter on its own is not built yet",
    "energy_meter": "only on a plug (On/Off Plug-in Unit): a meter on its own is not built yet",
    "battery": "Power Source is not built yet",
    "valve": "Water Valve is not built yet",
    "soil_moisture": "Soil Sensor is not built yet",
    "filter": "filter monitoring is not built yet",
    "appliance": "Operational State is not built yet",
    "identify": "Identify is not forwarded to the device yet",
    "gas": "Matter has no combustible-gas device type",
    "vibration": "Matter has no vibration sensor device type",
    "tamper": "Matter has no tamper sensor device type",
    "siren": "Matter has no siren device type",
    "water_level": "Matter has no tank level device type",
    "presence": "Matter has no person-tracker device type",
}


# -------------------------------------------------------------------- applying it to a device


@dataclass(frozen=True, slots=True)
class Plan:
    """What one device becomes in the bridge: ``endpoints`` (component, device type key) and what does not map
    (``{"component", "capability", "attribute"?, "reason"}``)."""

    device: str
    endpoints: tuple[tuple[str, str], ...]
    unmapped: tuple[dict[str, str], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device,
                "endpoints": [{"component": c, "device_type": t} for c, t in self.endpoints],
                "unmapped": list(self.unmapped)}


def _bound_attributes(rule: DeviceTypeRule) -> set[str]:
    return {b.source for cluster in rule.clusters for b in cluster.bindings} | set(rule.carries)


def plan_device(device: dict[str, Any]) -> Plan:
    """Apply :data:`DEVICE_TYPES` to a device as ``GET /api/devices/{id}`` shows it (its ``capabilities``:
    component -> capability -> ``{"attributes": [...], ...}``, and ``tags``). The sidecar does the same."""
    tags = set(device.get("tags") or ())
    endpoints: list[tuple[str, str]] = []
    unmapped: list[dict[str, str]] = []
    for component, caps in sorted((device.get("capabilities") or {}).items()):
        taken: set[str] = set()
        for rule in DEVICE_TYPES:
            if rule.tag is not None and rule.tag not in tags:
                continue
            if not all(cap in caps and cap not in taken for cap in rule.requires):
                continue
            used = [cap for cap in rule.capabilities() if cap in caps and cap not in taken]
            taken.update(used)
            endpoints.append((component, rule.key))
            bound = _bound_attributes(rule)
            for cap in used:
                for attribute in sorted(caps[cap].get("attributes") or ()):
                    if f"{cap}.{attribute}" not in bound:
                        unmapped.append({"component": component, "capability": cap, "attribute": attribute,
                                         "reason": f"{rule.name} has no attribute for it"})
        for cap in sorted(set(caps) - taken):
            if cap == "connectivity":
                for attribute in sorted(caps[cap].get("attributes") or ()):
                    if f"{cap}.{attribute}" not in BRIDGE_LEVEL:
                        unmapped.append({"component": component, "capability": cap, "attribute": attribute,
                                         "reason": "Bridged Device Basic Information has no attribute for it"})
                continue
            unmapped.append({"component": component, "capability": cap,
                             "reason": NOT_MAPPED.get(cap, "no Matter device type takes it")})
    return Plan(str(device.get("id")), tuple(endpoints), tuple(unmapped))


# -------------------------------------------------------------------- for the sidecar and the docs


def mapping_json() -> dict[str, Any]:
    """The table as the sidecar reads it."""
    return {
        "version": MAPPING_VERSION,
        "device_types": [
            {"key": r.key, "name": r.name, "device_type_id": r.device_type_id, "js_device": r.js_device,
             "requires": list(r.requires), "optional": list(r.optional), "tag": r.tag,
             "events": r.events, "carries": list(r.carries),
             "clusters": [
                 {"behavior": c.behavior, "cluster": c.cluster, "server": c.server, "features": list(c.features),
                  "defaults": c.defaults, "optional": c.optional, "when": list(c.when),
                  "bindings": [{"source": b.source, "attribute": b.attribute, "convert": b.convert,
                                "command": b.command} for b in c.bindings]}
                 for c in r.clusters]}
            for r in DEVICE_TYPES
        ],
        "bridge_level": sorted(BRIDGE_LEVEL),
        "not_mapped": NOT_MAPPED,
    }


def mapping_text() -> str:
    return json.dumps(mapping_json(), indent=1, sort_keys=True) + "\n"


def _convert_text(convert: dict[str, Any]) -> str:
    kind = convert["kind"]
    if kind == "scale":
        return "×1" if convert["factor"] == 1 else f"×{convert['factor']}"
    if kind == "map":
        return "mapped: " + ", ".join(f"{k} → {json.dumps(v)}" for k, v in convert["to"].items())
    if kind == "bands":
        return "classes: " + ", ".join(f"≤ {bound} → {value}" for bound, value in convert["bands"]) + \
            f", above → {convert['above']}"
    if kind == "energy":
        return "kWh → {energy: mWh}"
    if kind == "linear":
        return f"×{convert['factor']} + {convert['offset']}"
    return {"same": "as is", "not": "inverted", "level": "0-100 % → 1-254", "mireds": "K → mireds",
            "lux": "10000·log10(lx)+1"}.get(kind, kind)


def _command_text(binding: Binding) -> str:
    command = binding.command or {}
    if "true" in command:
        return f"`{binding.attribute}` → `{binding.capability}.{command['true']}`/`{command['false']}`"
    if "values" in command:
        def one(name: Any) -> str:
            if isinstance(name, str):
                return f"`{binding.capability}.{name}`"
            args = ", ".join(f"{k}={v}" for k, v in name.get("args", {}).items())
            return f"`{binding.capability}.{name['command']}({args})`"

        return f"`{binding.attribute}` " + ", ".join(f"{value} → {one(name)}"
                                                  for value, name in command["values"].items())
    return f"`{binding.attribute}` → `{binding.capability}.{command['command']}`"


def docs_table() -> str:
    """The Markdown tables of docs/matter.md (generated: ``python -m gateway.docgen``)."""
    out = ["| Matter device type | id | from Hearth capabilities | cluster | Hearth attribute → Matter attribute "
           "(conversion) | controller command → Hearth |", "|---|---|---|---|---|---|"]
    for rule in DEVICE_TYPES:
        caps = " + ".join(f"`{c}`" for c in rule.requires)
        if rule.optional:
            caps += " (+ " + ", ".join(f"`{c}`" for c in rule.optional) + ")"
        if rule.tag:
            caps += f", tag `{rule.tag}`"
        for index, cluster in enumerate(rule.clusters):
            rows = "<br>".join(f"`{b.source}` → `{b.attribute}` ({_convert_text(b.convert)})"
                               for b in cluster.bindings)
            commands = "<br>".join(_command_text(b) for b in cluster.bindings if b.command)
            if not cluster.bindings and rule.events:
                rows = "<br>".join(f"event `{source}` → {behavior} events" for source, behavior in rule.events.items())
            head = f"{rule.name} | `0x{rule.device_type_id:04X}` | {caps}" if index == 0 else " | | "
            out.append(f"| {head} | {cluster.cluster} | {rows} | {commands or '–'} |")
    out += ["", "On every bridged endpoint:", ""]
    out += [f"- `{source}` → {target}" for source, target in BRIDGE_LEVEL.items()]
    out += ["", "Not mapped (listed per device in `GET /api/matter`; devices not shown at all also in the web UI):", "",
            "| capability | why |", "|---|---|"]
    out += [f"| `{cap}` | {why} |" for cap, why in sorted(NOT_MAPPED.items())]
    return "\n".join(out) + "\n"


GENERATED_BEGIN = ("<!-- Generated from gateway/matter/mapping.py by `python -m gateway.docgen`: do not edit "
                   "between this line and the end marker. -->")
GENERATED_END = "<!-- End of the generated mapping. -->"


def render_docs_page(current: str | None) -> str:
    """docs/matter.md with its generated section replaced by :func:`docs_table` (the rest is written by hand)."""
    section = f"{GENERATED_BEGIN}\n\n{docs_table()}\n{GENERATED_END}"
    if current is None or GENERATED_BEGIN not in current or GENERATED_END not in current:
        return f"# The Matter bridge\n\n## Device types\n\n{section}\n"
    head, rest = current.split(GENERATED_BEGIN, 1)
    _, tail = rest.split(GENERATED_END, 1)
    return f"{head}{section}{tail}"
