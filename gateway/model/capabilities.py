"""The capability model (capabilities.md) as data: every capability, attribute and command, defined once.

Everything else (command validation, the JSON schema, the API, codecs) reads this table. A plugin adds
its own capability under a dotted name with :func:`register_capability`.
"""

from __future__ import annotations

from gateway.model._spec import ArgSpec, AttributeSpec, CapabilitySpec, CommandSpec

A = AttributeSpec
Arg = ArgSpec
C = CommandSpec

_PCT = {"unit": "%", "minimum": 0, "maximum": 100}

# Home Assistant's HVAC modes, plus eco. Devices' other words map onto these (Zigbee2MQTT's
# emergency_heating is heat, precooling is cool, sleep is eco).
THERMOSTAT_MODES = ("off", "heat", "cool", "heat_cool", "auto", "eco", "dry", "fan_only")
# What the unit is doing now: Home Assistant's HVAC actions.
THERMOSTAT_RUNNING = ("idle", "heating", "cooling", "drying", "fan", "preheating", "defrosting", "off")
BUTTON_KINDS = ("single", "double", "triple", "quadruple", "quintuple", "long", "hold", "release")

CORE_CAPABILITIES: tuple[CapabilitySpec, ...] = (
    CapabilitySpec(
        "on_off",
        {"on": A("bool", settable=True)},
        {
            "on": C(expect={"on": True}),
            "off": C(expect={"on": False}),
            "toggle": C(expect={"on": "$not:on"}),
        },
        description="Switches, plugs, lights: on or off.",
        ha="switch / light (state)", matter="On/Off cluster (On/Off Light, On/Off Plug-in Unit)",
    ),
    CapabilitySpec(
        "level",
        {"percent": A("number", settable=True, **_PCT)},
        {
            "set": C(
                {"percent": Arg("number", **_PCT), "transition_s": Arg("number", "s", 0, 3600, required=False)},
                expect={"percent": "$percent"},
            )
        },
        description="Brightness or level, 0-100 %.",
        ha="light brightness", matter="Level Control cluster (Dimmable Light)",
    ),
    CapabilitySpec(
        "color_temperature",
        {
            "kelvin": A("number", "K", 1000, 20000, settable=True),
            "min_kelvin": A("number", "K", 1000, 20000),
            "max_kelvin": A("number", "K", 1000, 20000),
        },
        {"set": C({"kelvin": Arg("number", "K", 1000, 20000)}, expect={"kelvin": "$kelvin"})},
        ha="light color_temp_kelvin", matter="Color Control cluster, colour temperature (Color Temperature Light)",
    ),
    CapabilitySpec(
        "color",
        {
            "hue": A("number", "°", 0, 360, settable=True),
            "saturation": A("number", settable=True, **_PCT),
            "x": A("number", None, 0, 1, settable=True),
            "y": A("number", None, 0, 1, settable=True),
        },
        {
            "set": C(
                {"hue": Arg("number", "°", 0, 360), "saturation": Arg("number", **_PCT)},
                expect={"hue": "$hue", "saturation": "$saturation"},
            ),
            "set_xy": C({"x": Arg("number", None, 0, 1), "y": Arg("number", None, 0, 1)},
                        expect={"x": "$x", "y": "$y"}),
        },
        ha="light hs_color / xy_color (rgb converted)", matter="Color Control cluster, hue/saturation and xy "
        "(Extended Color Light)",
    ),
    CapabilitySpec(
        "power_meter",
        {
            "watts": A("number", "W"),
            "volts": A("number", "V", 0),
            "amps": A("number", "A"),
            "power_factor": A("number", None, -1, 1),
            "hertz": A("number", "Hz", 0),
        },
        description="Electrical readings now. A meter with several phases or channels has one component each: "
        "phases `l1`, `l2`, `l3` (a meter's phase A, B, C), channels by their number or name.",
        ha="sensor power / voltage / current / power_factor / frequency",
        matter="Electrical Power Measurement cluster",
    ),
    CapabilitySpec(
        "energy_meter",
        {"kwh": A("number", "kWh", 0, description="monotonic total"), "exported_kwh": A("number", "kWh", 0)},
        description="Energy totals; per phase or channel as components, like power_meter.",
        ha="sensor energy (total_increasing)", matter="Electrical Energy Measurement cluster",
    ),
    CapabilitySpec("temperature", {"celsius": A("number", "°C", -273.15)},
                   description="The temperature where the device is (a room, water, soil). A device's own chip "
                   "temperature is not this.",
                   ha="sensor temperature", matter="Temperature Measurement cluster (Temperature Sensor)"),
    CapabilitySpec("humidity", {"percent": A("number", **_PCT)}, description="Relative humidity of the air.",
                   ha="sensor humidity", matter="Relative Humidity Measurement cluster (Humidity Sensor)"),
    CapabilitySpec(
        "illuminance",
        {"lux": A("number", "lx", 0),
         "percent": A("number", description="a relative light level, for devices that do not measure lux", **_PCT)},
        ha="sensor illuminance", matter="Illuminance Measurement cluster (Light Sensor)",
    ),
    CapabilitySpec("pressure", {"hpa": A("number", "hPa", 0)}, description="Atmospheric pressure.",
                   ha="sensor atmospheric_pressure", matter="Pressure Measurement cluster (Pressure Sensor)"),
    CapabilitySpec(
        "air_quality",
        {
            "co2_ppm": A("number", "ppm", 0),
            "pm25_ugm3": A("number", "µg/m³", 0),
            "pm10_ugm3": A("number", "µg/m³", 0),
            "pm1_ugm3": A("number", "µg/m³", 0),
            "voc_ppb": A("number", "ppb", 0),
            "voc_ugm3": A("number", "µg/m³", 0, description="VOC as a mass concentration (not convertible "
                          "to ppb without the gas mix)"),
            "voc_index": A("number", None, 0, 500),
            "hcho_ugm3": A("number", "µg/m³", 0, description="formaldehyde"),
        },
        description="Indoor air. Concentrations keep the unit they were measured in: a mass concentration "
        "(µg/m³) is never relabelled as a volume ratio (ppb).",
        ha="sensor carbon_dioxide / pm1 / pm25 / pm10 / volatile_organic_compounds(_parts)",
        matter="Air Quality and Concentration Measurement clusters (Air Quality Sensor)",
    ),
    CapabilitySpec("occupancy", {"occupied": A("bool")}, description="PIR motion or mmWave presence.",
                   ha="binary_sensor occupancy / motion", matter="Occupancy Sensing cluster (Occupancy Sensor)"),
    CapabilitySpec("contact", {"open": A("bool", description="true = open")},
                   description="A door, window or garage-door contact.",
                   ha="binary_sensor door / window / garage_door / opening",
                   matter="Boolean State cluster (Contact Sensor)"),
    CapabilitySpec("water_leak", {"leak": A("bool")}, ha="binary_sensor moisture",
                   matter="Boolean State cluster (Water Leak Detector)"),
    CapabilitySpec("smoke_co_alarm", {"smoke": A("bool"), "co": A("bool"),
                                      "co_ppm": A("number", "ppm", 0, description="carbon monoxide measured")},
                   {"self_test": C()}, ha="binary_sensor smoke / carbon_monoxide, sensor carbon_monoxide",
                   matter="Smoke CO Alarm cluster (Smoke CO Alarm)"),
    CapabilitySpec(
        "gas",
        {"detected": A("bool", description="combustible gas (natural gas, LPG) detected"),
         "lel_percent": A("number", description="concentration, % of the lower explosive limit", **_PCT),
         "ppm": A("number", "ppm", 0, description="concentration, when the sensor reports ppm")},
        {"self_test": C()},
        description="A combustible-gas detector.",
        ha="binary_sensor gas", matter="none (Matter has no combustible-gas device type)",
    ),
    CapabilitySpec("vibration", {"detected": A("bool")}, ha="binary_sensor vibration",
                   matter="none (a Boolean State sensor at best)"),
    CapabilitySpec("tamper", {"tampered": A("bool")}, ha="binary_sensor tamper",
                   matter="none (Boolean State at best)"),
    CapabilitySpec("battery", {"percent": A("number", **_PCT), "low": A("bool"), "volts": A("number", "V", 0)},
                   ha="sensor battery / binary_sensor battery",
                   matter="Power Source cluster (BatPercentRemaining, BatChargeLevel, BatVoltage)"),
    CapabilitySpec(
        "siren",
        {"on": A("bool", settable=True),
         "tone": A("string", settable=True, description="the device's own name of the sound (burglar, fire, …)"),
         "volume_percent": A("number", settable=True, **_PCT),
         "duration_s": A("number", "s", 0, settable=True)},
        {
            "on": C({"tone": Arg("string", required=False), "volume_percent": Arg("number", required=False, **_PCT),
                     "duration_s": Arg("number", "s", 0, 86400, required=False)}, expect={"on": True}),
            "off": C(expect={"on": False}),
        },
        description="A siren or alarm sounder.",
        ha="siren (tones, volume_level, duration)", matter="none (Matter has no siren device type)",
    ),
    CapabilitySpec("soil_moisture", {"percent": A("number", **_PCT)}, description="Moisture of the soil around a "
                   "plant.", ha="sensor moisture", matter="Soil Measurement cluster (Soil Sensor)"),
    CapabilitySpec(
        "water_level",
        {"percent": A("number", description="how full the tank is", **_PCT),
         "depth_m": A("number", "m", 0, description="depth of the liquid"),
         "state": A("enum", values=("low", "normal", "high"))},
        description="A tank's level.", ha="sensor (distance / percent)", matter="none",
    ),
    CapabilitySpec(
        "filter",
        {"life_percent": A("number", description="life left", **_PCT),
         "replace": A("bool", description="the device says to replace the filter"),
         "used_h": A("number", "h", 0, description="hours the filter has been in use")},
        description="An air or water filter's wear.",
        ha="sensor (filter life) + binary_sensor problem",
        matter="HEPA / Activated Carbon Filter Monitoring clusters (Condition, ChangeIndication)",
    ),
    CapabilitySpec(
        "button",
        {"last_event": A("enum", values=BUTTON_KINDS), "button": A("integer", None, 0)},
        # `kind` when the press maps onto the common kinds; `action` carries the device's own name
        # for anything else (a cube's "rotate_left"), so no press is ever lost.
        events={"pressed": {"button": Arg("integer", None, 0, required=False),
                            "kind": Arg("enum", values=BUTTON_KINDS, required=False),
                            "action": Arg("string", required=False)}},
        description="Buttons of a remote or a wall switch. `button` is the button's number on the device (1 is "
        "the first; 0 means all or both); `action` carries the device's own word.",
        ha="event (button) / device trigger", matter="Switch cluster (Generic Switch)",
    ),
    CapabilitySpec(
        "thermostat",
        {
            "current_celsius": A("number", "°C"),
            "target_celsius": A("number", "°C", -50, 100, settable=True),
            "mode": A("enum", values=THERMOSTAT_MODES, settable=True),
            "running": A("enum", values=THERMOSTAT_RUNNING),
            "window_open": A("bool", description="the device has detected an open window and stopped heating"),
        },
        {
            "set_target": C({"celsius": Arg("number", "°C", -50, 100)}, expect={"target_celsius": "$celsius"}),
            "set_mode": C({"mode": Arg("enum", values=THERMOSTAT_MODES)}, expect={"mode": "$mode"}),
        },
        description="Heating or cooling to a target. A radiator valve's opening is its `valve` capability.",
        ha="climate", matter="Thermostat cluster (Thermostat)",
    ),
    CapabilitySpec(
        "valve",
        {"position_percent": A("number", settable=True, **_PCT), "open": A("bool", settable=True)},
        {
            "open": C(expect={"open": True}),
            "close": C(expect={"open": False}),
            "set_position": C({"percent": Arg("number", **_PCT)}, expect={"position_percent": "$percent"}),
        },
        description="A water or gas valve, or a radiator valve's opening (reported only, on a thermostat).",
        ha="valve", matter="Valve Configuration and Control cluster (Water Valve)",
    ),
    CapabilitySpec(
        "cover",
        {
            "position_percent": A("number", settable=True, description="0 = closed, 100 = open", **_PCT),
            "tilt_percent": A("number", settable=True, **_PCT),
            "motion": A("enum", values=("opening", "closing", "stopped")),
        },
        {
            # A cover takes tens of seconds to travel: these are confirmed by the device's answer, not
            # by waiting for the final position.
            "open": C(),
            "close": C(),
            "stop": C(),
            "set_position": C({"percent": Arg("number", **_PCT)}),
            "set_tilt": C({"percent": Arg("number", **_PCT)}),
        },
        description="Blinds, shutters, curtains, garage doors.",
        ha="cover", matter="Window Covering cluster (Window Covering)",
    ),
    CapabilitySpec(
        "lock",
        {"state": A("enum", values=("locked", "unlocked", "jammed", "unknown")), "door_open": A("bool")},
        {"lock": C(expect={"state": "locked"}), "unlock": C(expect={"state": "unlocked"})},
        events={"operated": {"source": Arg("string", required=False), "user": Arg("string", required=False)}},
        ha="lock", matter="Door Lock cluster (Door Lock)",
    ),
    CapabilitySpec(
        "fan",
        {"on": A("bool", settable=True), "speed_percent": A("number", settable=True, **_PCT),
         "speed_steps": A("integer", None, 1, 100, description="how many speeds the fan has: a fan with 3 "
                          "reports 33, 67 or 100 %"),
         "preset": A("string", settable=True)},
        {
            "set_speed": C({"percent": Arg("number", **_PCT)}, expect={"speed_percent": "$percent"},
                           steps={"speed_percent": "speed_steps"},
                           description="the nearest speed at or above the percentage; 0 is off"),
            "set_preset": C({"preset": Arg("string")}, expect={"preset": "$preset"}),
        },
        ha="fan (percentage, percentage_step = 100 / speed_steps)", matter="Fan Control cluster (Fan)",
    ),
    CapabilitySpec("identify", {}, {"identify": C({"seconds": Arg("integer", "s", 0, 3600, required=False)})},
                   ha="button identify", matter="Identify cluster"),
    CapabilitySpec(
        "connectivity",
        {
            "online": A("bool"),
            "last_seen": A("timestamp", description="ISO-8601"),
            "rssi_dbm": A("number", "dBm", -150, 20),
            "lqi": A("number", None, 0, 255),
        },
        ha="sensor signal_strength / binary_sensor connectivity",
        matter="Bridged Device Basic Information cluster (Reachable)",
    ),
    CapabilitySpec(
        "presence",
        {"present": A("bool"), "area": A("string"), "rssi_dbm": A("number", "dBm", -150, 20),
         "distance_m": A("number", "m", 0)},
        description="A person's tag or phone.",
        ha="device_tracker", matter="none",
    ),
    CapabilitySpec(
        "appliance",
        {"state": A("enum", values=("idle", "running", "paused", "done", "error")), "remaining_s": A("number", "s", 0)},
        {"start": C(), "pause": C(), "stop": C()},
        events={"finished": {}},
        ha="sensor enum", matter="Operational State cluster",
    ),
)
