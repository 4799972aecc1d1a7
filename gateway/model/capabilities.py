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

THERMOSTAT_MODES = ("off", "heat", "cool", "auto", "eco", "dry", "fan_only")
BUTTON_KINDS = ("single", "double", "triple", "long", "hold", "release")

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
    ),
    CapabilitySpec(
        "color_temperature",
        {
            "kelvin": A("number", "K", 1000, 20000, settable=True),
            "min_kelvin": A("number", "K", 1000, 20000),
            "max_kelvin": A("number", "K", 1000, 20000),
        },
        {"set": C({"kelvin": Arg("number", "K", 1000, 20000)}, expect={"kelvin": "$kelvin"})},
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
    ),
    CapabilitySpec(
        "energy_meter",
        {"kwh": A("number", "kWh", 0, description="monotonic total"), "exported_kwh": A("number", "kWh", 0)},
    ),
    CapabilitySpec("temperature", {"celsius": A("number", "°C", -273.15)}),
    CapabilitySpec("humidity", {"percent": A("number", **_PCT)}),
    CapabilitySpec("illuminance", {"lux": A("number", "lx", 0)}),
    CapabilitySpec("pressure", {"hpa": A("number", "hPa", 0)}),
    CapabilitySpec(
        "air_quality",
        {
            "co2_ppm": A("number", "ppm", 0),
            "pm25_ugm3": A("number", "µg/m³", 0),
            "pm10_ugm3": A("number", "µg/m³", 0),
            "voc_ppb": A("number", "ppb", 0),
            "voc_index": A("number", None, 0, 500),
        },
    ),
    CapabilitySpec("occupancy", {"occupied": A("bool")}, description="PIR motion or mmWave presence."),
    CapabilitySpec("contact", {"open": A("bool", description="true = open")}),
    CapabilitySpec("water_leak", {"leak": A("bool")}),
    CapabilitySpec("smoke_co_alarm", {"smoke": A("bool"), "co": A("bool")}, {"self_test": C()}),
    CapabilitySpec("vibration", {"detected": A("bool")}),
    CapabilitySpec("tamper", {"tampered": A("bool")}),
    CapabilitySpec("battery", {"percent": A("number", **_PCT), "low": A("bool"), "volts": A("number", "V", 0)}),
    CapabilitySpec(
        "button",
        {"last_event": A("enum", values=BUTTON_KINDS), "button": A("integer", None, 0)},
        # `kind` when the press maps onto the common kinds; `action` carries the device's own name
        # for anything else (a cube's "rotate_left"), so no press is ever lost.
        events={"pressed": {"button": Arg("integer", None, 0, required=False),
                            "kind": Arg("enum", values=BUTTON_KINDS, required=False),
                            "action": Arg("string", required=False)}},
    ),
    CapabilitySpec(
        "thermostat",
        {
            "current_celsius": A("number", "°C"),
            "target_celsius": A("number", "°C", -50, 100, settable=True),
            "mode": A("enum", values=THERMOSTAT_MODES, settable=True),
            "running": A("enum", values=("idle", "heating", "cooling")),
        },
        {
            "set_target": C({"celsius": Arg("number", "°C", -50, 100)}, expect={"target_celsius": "$celsius"}),
            "set_mode": C({"mode": Arg("enum", values=THERMOSTAT_MODES)}, expect={"mode": "$mode"}),
        },
    ),
    CapabilitySpec(
        "valve",
        {"position_percent": A("number", settable=True, **_PCT), "open": A("bool", settable=True)},
        {
            "open": C(expect={"open": True}),
            "close": C(expect={"open": False}),
            "set_position": C({"percent": Arg("number", **_PCT)}, expect={"position_percent": "$percent"}),
        },
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
    ),
    CapabilitySpec(
        "lock",
        {"state": A("enum", values=("locked", "unlocked", "jammed", "unknown")), "door_open": A("bool")},
        {"lock": C(expect={"state": "locked"}), "unlock": C(expect={"state": "unlocked"})},
        events={"operated": {"source": Arg("string", required=False), "user": Arg("string", required=False)}},
    ),
    CapabilitySpec(
        "fan",
        {"on": A("bool", settable=True), "speed_percent": A("number", settable=True, **_PCT),
         "preset": A("string", settable=True)},
        {
            "set_speed": C({"percent": Arg("number", **_PCT)}, expect={"speed_percent": "$percent"}),
            "set_preset": C({"preset": Arg("string")}, expect={"preset": "$preset"}),
        },
    ),
    CapabilitySpec("identify", {}, {"identify": C({"seconds": Arg("integer", "s", 0, 3600, required=False)})}),
    CapabilitySpec(
        "connectivity",
        {
            "online": A("bool"),
            "last_seen": A("timestamp", description="ISO-8601"),
            "rssi_dbm": A("number", "dBm", -150, 20),
            "lqi": A("number", None, 0, 255),
        },
    ),
    CapabilitySpec(
        "presence",
        {"present": A("bool"), "area": A("string"), "rssi_dbm": A("number", "dBm", -150, 20),
         "distance_m": A("number", "m", 0)},
        description="A person's tag or phone.",
    ),
    CapabilitySpec(
        "appliance",
        {"state": A("enum", values=("idle", "running", "paused", "done", "error")), "remaining_s": A("number", "s", 0)},
        {"start": C(), "pause": C(), "stop": C()},
        events={"finished": {}},
    ),
)
