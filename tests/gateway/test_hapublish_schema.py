"""Home Assistant's documented MQTT discovery schema, per platform, as JSON Schema (for test_hapublish).

Written from Home Assistant's MQTT documentation; each platform names its page. Only documented keys are allowed
(``additionalProperties: false``): a key Home Assistant does not know is a mistake on our side (HA rejects the
whole config for an unknown key since 2023.8, ``extra keys not allowed``). Device classes, state classes, units
and colour modes are the documented values.

* Shared (device block, origin, availability, entity options): https://www.home-assistant.io/integrations/mqtt/
  ("MQTT Discovery", "Using abbreviations", "Discovery payload", device and origin options).
* Sensor device classes and their units: https://www.home-assistant.io/integrations/sensor/#device-class
* Binary sensor device classes: https://www.home-assistant.io/integrations/binary_sensor/#device-class
"""

from __future__ import annotations

from typing import Any

TOPIC = {"type": "string", "minLength": 1, "not": {"pattern": "[+#]"}}
TEMPLATE = {"type": "string", "pattern": r"\{\{.*\}\}"}
NULLABLE_STRING = {"type": ["string", "null"]}

# https://www.home-assistant.io/integrations/mqtt/ : the device block ("device" options) and origin.
DEVICE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "configuration_url": {"type": "string"},
        "connections": {"type": "array", "items": {"type": "array", "minItems": 2, "maxItems": 2,
                                                   "items": {"type": "string"}}},
        "hw_version": {"type": "string"}, "identifiers": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "manufacturer": {"type": "string"}, "model": {"type": "string"}, "model_id": {"type": "string"},
        "name": {"type": "string"}, "serial_number": {"type": "string"}, "suggested_area": {"type": "string"},
        "sw_version": {"type": "string"}, "via_device": {"type": "string"},
    },
    "anyOf": [{"required": ["identifiers"]}, {"required": ["connections"]}],
}
ORIGIN = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {"name": {"type": "string"}, "sw_version": {"type": "string"}, "support_url": {"type": "string"}},
}
AVAILABILITY = {
    "type": "array", "minItems": 1,
    "items": {"type": "object", "additionalProperties": False, "required": ["topic"],
              "properties": {"topic": TOPIC, "payload_available": {"type": "string"},
                             "payload_not_available": {"type": "string"}, "value_template": TEMPLATE}},
}

# Options every MQTT entity platform documents (availability, device, entity options, json attributes).
ENTITY_COMMON: dict[str, Any] = {
    "availability": AVAILABILITY, "availability_mode": {"enum": ["all", "any", "latest"]},
    "availability_template": TEMPLATE, "availability_topic": TOPIC, "device": DEVICE,
    "default_entity_id": {"type": "string"}, "enabled_by_default": {"type": "boolean"},
    "encoding": {"type": "string"}, "entity_category": {"enum": ["config", "diagnostic"]},
    "entity_picture": {"type": "string"}, "icon": {"type": "string"}, "json_attributes_template": TEMPLATE,
    "json_attributes_topic": TOPIC, "name": NULLABLE_STRING, "object_id": {"type": "string"}, "origin": ORIGIN,
    "payload_available": {"type": "string"}, "payload_not_available": {"type": "string"},
    "qos": {"enum": [0, 1, 2]}, "unique_id": {"type": "string", "minLength": 1},
}

# https://www.home-assistant.io/integrations/sensor/#device-class : classes and their documented units.
SENSOR_UNITS: dict[str, list[str | None]] = {
    "apparent_power": ["VA"], "aqi": [None], "atmospheric_pressure": ["cbar", "bar", "hPa", "mmHg", "inHg", "kPa",
                                                                      "mbar", "Pa", "psi"],
    "battery": ["%"], "carbon_dioxide": ["ppm"], "carbon_monoxide": ["ppm", "mg/m³", "µg/m³"],
    "current": ["A", "mA"], "data_rate": None, "data_size": None, "date": [None], "distance": None,
    "duration": None, "energy": ["J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal",
                                 "Mcal", "Gcal"],
    "energy_storage": None, "enum": [None], "frequency": ["Hz", "kHz", "MHz", "GHz"], "gas": None,
    "humidity": ["%"], "illuminance": ["lx"], "irradiance": None, "moisture": ["%"], "monetary": None,
    "nitrogen_dioxide": ["µg/m³"], "nitrogen_monoxide": ["µg/m³"], "nitrous_oxide": ["µg/m³"], "ozone": ["µg/m³"],
    "ph": [None], "pm1": ["µg/m³"], "pm25": ["µg/m³"], "pm10": ["µg/m³"], "power": ["mW", "W", "kW", "MW", "GW",
                                                                                  "TW"],
    "power_factor": ["%", None], "precipitation": None, "precipitation_intensity": None, "pressure": None,
    "reactive_power": ["var", "kvar"], "signal_strength": ["dB", "dBm"], "sound_pressure": ["dB", "dBA"],
    "speed": None, "sulphur_dioxide": ["µg/m³"], "temperature": ["°C", "°F", "K"], "timestamp": [None],
    "volatile_organic_compounds": ["µg/m³", "mg/m³"], "volatile_organic_compounds_parts": ["ppm", "ppb"],
    "voltage": ["V", "mV", "µV", "kV", "MV"], "volume": None, "volume_flow_rate": None, "volume_storage": None,
    "water": None, "weight": None, "wind_direction": None, "wind_speed": None,
}
# The sensor docs' state-class table: energy totals are never "measurement".
SENSOR_STATE_CLASSES = {"energy": ["total", "total_increasing"]}

# https://www.home-assistant.io/integrations/binary_sensor/#device-class
BINARY_SENSOR_CLASSES = [
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat",
    "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem",
    "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window",
]


def _platform(properties: dict[str, Any], required: list[str], *extra: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False,
                              "properties": {**ENTITY_COMMON, **properties}, "required": required}
    if extra:
        schema["allOf"] = list(extra)
    return schema


SCHEMAS: dict[str, tuple[str, dict[str, Any]]] = {
    "sensor": ("https://www.home-assistant.io/integrations/sensor.mqtt/", _platform({
        "device_class": {"enum": sorted(SENSOR_UNITS)}, "expire_after": {"type": "integer", "minimum": 0},
        "force_update": {"type": "boolean"}, "last_reset_value_template": TEMPLATE,
        "options": {"type": "array"}, "suggested_display_precision": {"type": "integer", "minimum": 0},
        "state_class": {"enum": ["measurement", "measurement_angle", "total", "total_increasing"]},
        "state_topic": TOPIC, "unit_of_measurement": {"type": ["string", "null"]}, "value_template": TEMPLATE,
    }, ["state_topic"])),
    "binary_sensor": ("https://www.home-assistant.io/integrations/binary_sensor.mqtt/", _platform({
        "device_class": {"enum": BINARY_SENSOR_CLASSES}, "expire_after": {"type": "integer", "minimum": 0},
        "force_update": {"type": "boolean"}, "off_delay": {"type": "integer", "minimum": 0},
        "payload_off": {"type": "string"}, "payload_on": {"type": "string"}, "state_topic": TOPIC,
        "value_template": TEMPLATE,
    }, ["state_topic"])),
    "switch": ("https://www.home-assistant.io/integrations/switch.mqtt/", _platform({
        "command_template": TEMPLATE, "command_topic": TOPIC, "device_class": {"enum": ["outlet", "switch"]},
        "optimistic": {"type": "boolean"}, "payload_off": {"type": "string"}, "payload_on": {"type": "string"},
        "retain": {"type": "boolean"}, "state_off": {"type": "string"}, "state_on": {"type": "string"},
        "state_topic": TOPIC, "value_template": TEMPLATE,
    }, ["command_topic"])),
    # The JSON schema section of the light page.
    "light": ("https://www.home-assistant.io/integrations/light.mqtt/#json-schema", _platform({
        "schema": {"const": "json"}, "brightness": {"type": "boolean"},
        "brightness_scale": {"type": "integer", "minimum": 1}, "color_temp_kelvin": {"type": "boolean"},
        "command_topic": TOPIC, "effect": {"type": "boolean"}, "effect_list": {"type": "array"},
        "flash_time_long": {"type": "integer"}, "flash_time_short": {"type": "integer"},
        "max_kelvin": {"type": "integer", "minimum": 1}, "min_kelvin": {"type": "integer", "minimum": 1},
        "max_mireds": {"type": "integer"}, "min_mireds": {"type": "integer"}, "optimistic": {"type": "boolean"},
        "retain": {"type": "boolean"}, "state_topic": TOPIC,
        "supported_color_modes": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {
            "enum": ["onoff", "brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"]}},
        "transition": {"type": "boolean"}, "white_scale": {"type": "integer"},
    }, ["command_topic", "schema"], {
        # "onoff" and "brightness" must each be the only mode when present.
        "properties": {"supported_color_modes": {"anyOf": [
            {"maxItems": 1},
            {"not": {"contains": {"enum": ["onoff", "brightness"]}}}]}},
    })),
    "cover": ("https://www.home-assistant.io/integrations/cover.mqtt/", _platform({
        "command_topic": TOPIC, "device_class": {"enum": [
            "awning", "blind", "curtain", "damper", "door", "garage", "gate", "shade", "shutter", "window"]},
        "optimistic": {"type": "boolean"}, "payload_close": NULLABLE_STRING, "payload_open": NULLABLE_STRING,
        "payload_stop": NULLABLE_STRING, "payload_stop_tilt": {"type": "string"},
        "position_closed": {"type": "integer"}, "position_open": {"type": "integer"},
        "position_template": TEMPLATE, "position_topic": TOPIC, "retain": {"type": "boolean"},
        "set_position_template": TEMPLATE, "set_position_topic": TOPIC, "state_closed": {"type": "string"},
        "state_closing": {"type": "string"}, "state_open": {"type": "string"}, "state_opening": {"type": "string"},
        "state_stopped": {"type": "string"}, "state_topic": TOPIC, "tilt_closed_value": {"type": "integer"},
        "tilt_command_template": TEMPLATE, "tilt_command_topic": TOPIC, "tilt_max": {"type": "integer"},
        "tilt_min": {"type": "integer"}, "tilt_opened_value": {"type": "integer"},
        "tilt_optimistic": {"type": "boolean"}, "tilt_status_template": TEMPLATE, "tilt_status_topic": TOPIC,
        "value_template": TEMPLATE,
    }, [])),
    "climate": ("https://www.home-assistant.io/integrations/climate.mqtt/", _platform({
        "action_template": TEMPLATE, "action_topic": TOPIC, "current_humidity_template": TEMPLATE,
        "current_humidity_topic": TOPIC, "current_temperature_template": TEMPLATE,
        "current_temperature_topic": TOPIC, "fan_mode_command_template": TEMPLATE,
        "fan_mode_command_topic": TOPIC, "fan_mode_state_template": TEMPLATE, "fan_mode_state_topic": TOPIC,
        "fan_modes": {"type": "array"}, "initial": {"type": "number"}, "max_humidity": {"type": "number"},
        "max_temp": {"type": "number"}, "min_humidity": {"type": "number"}, "min_temp": {"type": "number"},
        "mode_command_template": TEMPLATE, "mode_command_topic": TOPIC, "mode_state_template": TEMPLATE,
        "mode_state_topic": TOPIC, "modes": {"type": "array", "uniqueItems": True, "items": {
            "enum": ["auto", "off", "cool", "heat", "dry", "fan_only", "heat_cool"]}},
        "optimistic": {"type": "boolean"}, "payload_off": {"type": "string"}, "payload_on": {"type": "string"},
        "power_command_template": TEMPLATE, "power_command_topic": TOPIC, "precision": {"enum": [0.1, 0.5, 1.0]},
        "preset_mode_command_template": TEMPLATE, "preset_mode_command_topic": TOPIC,
        "preset_mode_state_topic": TOPIC, "preset_mode_value_template": TEMPLATE, "preset_modes": {"type": "array"},
        "retain": {"type": "boolean"}, "swing_mode_command_template": TEMPLATE, "swing_mode_command_topic": TOPIC,
        "swing_mode_state_template": TEMPLATE, "swing_mode_state_topic": TOPIC, "swing_modes": {"type": "array"},
        "target_humidity_command_template": TEMPLATE, "target_humidity_command_topic": TOPIC,
        "target_humidity_state_template": TEMPLATE, "target_humidity_state_topic": TOPIC,
        "temperature_command_template": TEMPLATE, "temperature_command_topic": TOPIC,
        "temperature_high_command_template": TEMPLATE, "temperature_high_command_topic": TOPIC,
        "temperature_high_state_template": TEMPLATE, "temperature_high_state_topic": TOPIC,
        "temperature_low_command_template": TEMPLATE, "temperature_low_command_topic": TOPIC,
        "temperature_low_state_template": TEMPLATE, "temperature_low_state_topic": TOPIC,
        "temperature_state_template": TEMPLATE, "temperature_state_topic": TOPIC,
        "temperature_unit": {"enum": ["C", "F"]}, "temp_step": {"type": "number", "exclusiveMinimum": 0},
        "value_template": TEMPLATE,
    }, [])),
    "lock": ("https://www.home-assistant.io/integrations/lock.mqtt/", _platform({
        "code_format": {"type": "string"}, "command_template": TEMPLATE, "command_topic": TOPIC,
        "optimistic": {"type": "boolean"}, "payload_lock": {"type": "string"}, "payload_open": {"type": "string"},
        "payload_reset": {"type": "string"}, "payload_unlock": {"type": "string"}, "retain": {"type": "boolean"},
        "state_jammed": {"type": "string"}, "state_locked": {"type": "string"}, "state_locking": {"type": "string"},
        "state_open": {"type": "string"}, "state_opening": {"type": "string"}, "state_topic": TOPIC,
        "state_unlocked": {"type": "string"}, "state_unlocking": {"type": "string"}, "value_template": TEMPLATE,
    }, ["command_topic"])),
    "fan": ("https://www.home-assistant.io/integrations/fan.mqtt/", _platform({
        "command_template": TEMPLATE, "command_topic": TOPIC, "direction_command_template": TEMPLATE,
        "direction_command_topic": TOPIC, "direction_state_topic": TOPIC, "direction_value_template": TEMPLATE,
        "optimistic": {"type": "boolean"}, "oscillation_command_template": TEMPLATE,
        "oscillation_command_topic": TOPIC, "oscillation_state_topic": TOPIC, "oscillation_value_template": TEMPLATE,
        "payload_off": {"type": "string"}, "payload_on": {"type": "string"},
        "payload_oscillation_off": {"type": "string"}, "payload_oscillation_on": {"type": "string"},
        "payload_reset_percentage": {"type": "string"}, "payload_reset_preset_mode": {"type": "string"},
        "percentage_command_template": TEMPLATE, "percentage_command_topic": TOPIC,
        "percentage_state_topic": TOPIC, "percentage_value_template": TEMPLATE,
        "preset_mode_command_template": TEMPLATE, "preset_mode_command_topic": TOPIC,
        "preset_mode_state_topic": TOPIC, "preset_mode_value_template": TEMPLATE, "preset_modes": {"type": "array"},
        "retain": {"type": "boolean"}, "speed_range_max": {"type": "integer"}, "speed_range_min": {"type": "integer"},
        "state_topic": TOPIC, "state_value_template": TEMPLATE,
    }, ["command_topic"])),
    "valve": ("https://www.home-assistant.io/integrations/valve.mqtt/", _platform({
        "command_template": TEMPLATE, "command_topic": TOPIC, "device_class": {"enum": ["water", "gas"]},
        "optimistic": {"type": "boolean"}, "payload_close": NULLABLE_STRING, "payload_open": NULLABLE_STRING,
        "payload_stop": NULLABLE_STRING, "position_closed": {"type": "integer"}, "position_open": {"type": "integer"},
        "reports_position": {"type": "boolean"}, "retain": {"type": "boolean"}, "state_closed": {"type": "string"},
        "state_closing": {"type": "string"}, "state_open": {"type": "string"}, "state_opening": {"type": "string"},
        "state_topic": TOPIC, "value_template": TEMPLATE,
    }, [])),
    "button": ("https://www.home-assistant.io/integrations/button.mqtt/", _platform({
        "command_template": TEMPLATE, "command_topic": TOPIC, "device_class": {"enum": ["identify", "restart",
                                                                                        "update"]},
        "payload_press": {"type": "string"}, "retain": {"type": "boolean"},
    }, ["command_topic"])),
    # A device trigger is not an entity: no name, unique_id or availability of its own.
    "device_automation": ("https://www.home-assistant.io/integrations/device_trigger.mqtt/", {
        "type": "object", "additionalProperties": False,
        "required": ["automation_type", "topic", "type", "subtype", "device"],
        "properties": {"automation_type": {"const": "trigger"}, "payload": {"type": "string"},
                       "qos": {"enum": [0, 1, 2]}, "topic": TOPIC, "type": {"type": "string", "minLength": 1},
                       "subtype": {"type": "string", "minLength": 1}, "device": DEVICE, "origin": ORIGIN,
                       "value_template": TEMPLATE},
    }),
}


def semantic_problems(platform: str, config: dict[str, Any]) -> list[str]:
    """What JSON Schema does not say well: a sensor's unit and state class must fit its device class."""
    problems: list[str] = []
    if platform == "sensor":
        device_class = config.get("device_class")
        units = SENSOR_UNITS.get(device_class) if isinstance(device_class, str) else None
        if units is not None and config.get("unit_of_measurement") not in units:
            problems.append(f"unit {config.get('unit_of_measurement')!r} is not one of {device_class}'s {units}")
        allowed = SENSOR_STATE_CLASSES.get(device_class or "")
        if allowed is not None and config.get("state_class") not in allowed:
            problems.append(f"state_class {config.get('state_class')!r} of {device_class} is not one of {allowed}")
        if "state_class" in config and config.get("unit_of_measurement") is None and device_class != "power_factor":
            problems.append("a sensor with a state_class needs a unit (except a unitless class)")
    if platform == "light":
        modes = config.get("supported_color_modes", [])
        if "color_temp" in modes and config.get("color_temp_kelvin") is not True and "min_mireds" not in config:
            problems.append("colour temperature without color_temp_kelvin")
        if config.get("brightness_scale") is not None and not config.get("brightness") and "brightness" not in modes \
                and not set(modes) - {"onoff"}:
            problems.append("brightness_scale without brightness")
    return problems
