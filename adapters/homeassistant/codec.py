"""Home Assistant MQTT discovery, consumed: retained ``<prefix>/…/config`` messages in, Hearth devices out.

A pure codec (no I/O, no clock, no globals that change): :class:`HomeAssistantCodec` holds only what the
discovery configs said, so replay, the unit tests and the fuzzers drive it exactly as the adapter does.

**Topics.** ``<prefix>/<component>/[<node_id>/]<object_id>/config`` (one entity) and, since HA 2024.11,
``<prefix>/device/[<node_id>/]<object_id>/config`` (one device with ``cmps``, each with ``p`` = platform; the
shared options ``availability*``, ``payload_(not_)available``, ``state_topic``, ``command_topic`` and ``~`` are
inherited by every component that does not set them). An empty (retained) payload removes the entity, or every
entity of a device config; a device with no entities left is removed. Abbreviations (:data:`ABBREVIATIONS`,
:data:`DEVICE_ABBREVIATIONS`, :data:`ORIGIN_ABBREVIATIONS`, taken from Home Assistant's
``homeassistant/components/mqtt/abbreviations.py``) are expanded and ``~`` is substituted at the start or end of
every ``…topic`` value (and of availability topics) before anything else looks at a config.

**Devices.** Device id ``ha:<first identifier>`` (lowercased), or ``ha:<first connection value>`` for a device
block with connections only, or ``ha:<unique_id>`` for an entity with no device block. Every entity of one
device becomes capabilities of the device's components:

* an entity whose capability attributes (or commands) no other entity of the device provides goes to ``main``;
* entities that would give the same attribute (two switches, two temperature sensors) each get a component
  named from the entity's object id (the ``object_id`` of the discovery topic, or the ``cmps`` key of a device
  config), with a leading device identifier stripped and slugified: ``A2E12F_RL_2`` on device ``A2E12F`` ->
  ``rl_2``; a clash of names gets ``_2``, ``_3``… This is decided over the whole device, so it does not depend
  on the order the configs arrive in.
* device triggers (``device_automation``, ``atype: trigger``) only send ``button.pressed`` events on ``main``.

**No double devices.** A device that a native Hearth adapter represents better is skipped (and said so at debug
level): Zigbee2MQTT's own discovery (identifiers ``zigbee2mqtt_0x…``, origin ``Zigbee2MQTT``), Tasmota's
legacy discovery (manufacturer or origin ``Tasmota``, software ``…(tasmota)``, or a ``tele/<t>/LWT``
availability topic with ``Online``/``Offline``) and Shelly (manufacturer ``Shelly``, origin ``Shellies
Discovery``, a ``shelly…-<mac>`` base topic). :func:`native_device_id` maps them to the native ids
(``zigbee2mqtt:0x…``, ``tasmota:<topic>``, ``shelly:<id>``). A config is skipped when that native device already
exists in the gateway, or when its source is listed in ``skip_native`` (default: all three; remove a source
from it when you do not run that native adapter and want the device through HA discovery instead).

**Templates** go through :mod:`adapters.homeassistant.template`, never a general template engine. An entity whose
state template is unsupported is left out (reported once as bad input); the rest of the device still works. A
light or thermostat keeps the parts whose templates are understood (the part left out is reported).

**Lights**: on/off, brightness, colour temperature and the colour modes ``hs``, ``xy``, ``rgb``, ``rgbw``,
``rgbww`` of both the default and the JSON schema, onto ``color`` (hue/saturation, x/y); see the colour section.

**json_attributes_topic**: readings among an entity's attributes (:data:`ATTRIBUTE_KEYS`) are used where the device
already has that capability; the rest is a note, once per entity, never an error.
"""

from __future__ import annotations

import colorsys
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from adapters.homeassistant.template import (
    UNDEFINED,
    CompiledTemplate,
    TemplateError,
    TemplateUndefined,
    compile_template,
    to_text,
)
from gateway.sdk import (
    UNIT_FACTORS,
    AttributeSpec,
    CapabilitySupport,
    CodecError,
    Command,
    DeviceEventUpdate,
    DeviceInfo,
    Update,
    capability,
    fahrenheit_to_celsius,
    topic_matches,
    validate_topic_filter,
)

__all__ = [
    "ABBREVIATIONS",
    "ATTRIBUTE_KEYS",
    "DEFAULT_SKIP_NATIVE",
    "DEVICE_ABBREVIATIONS",
    "MAX_PAYLOAD_BYTES",
    "ORIGIN_ABBREVIATIONS",
    "SENSOR_CLASSES",
    "SOURCE",
    "UNIT_FACTORS",
    "Decoded",
    "HomeAssistantCodec",
    "apply_base_topic",
    "expand_abbreviations",
    "hs_to_rgb",
    "native_device_id",
    "native_source",
    "parse_discovery_topic",
    "rgb_to_hs",
]

SOURCE = "ha"
# A device config with a few dozen components is a few KiB; far beyond is not a discovery config.
MAX_PAYLOAD_BYTES = 256 * 1024
DEFAULT_SKIP_NATIVE = ("zigbee2mqtt", "tasmota", "shelly")

# ---------------------------------------------------------------------------------------------- abbreviations

#: Home Assistant's ``ABBREVIATIONS`` (root and component keys), current and retired names together.
ABBREVIATIONS: dict[str, str] = {
    "act_t": "action_topic", "act_tpl": "action_template", "atype": "automation_type",
    "aux_cmd_t": "aux_command_topic", "aux_stat_tpl": "aux_state_template", "aux_stat_t": "aux_state_topic",
    "av_tones": "available_tones", "avty": "availability", "avty_mode": "availability_mode",
    "avty_t": "availability_topic", "avty_tpl": "availability_template",
    "away_mode_cmd_t": "away_mode_command_topic", "away_mode_stat_tpl": "away_mode_state_template",
    "away_mode_stat_t": "away_mode_state_topic", "b_tpl": "blue_template",
    "bat_lev_t": "battery_level_topic", "bat_lev_tpl": "battery_level_template",
    "bri_cmd_tpl": "brightness_command_template", "bri_cmd_t": "brightness_command_topic",
    "bri_scl": "brightness_scale", "bri_stat_t": "brightness_state_topic", "bri_tpl": "brightness_template",
    "bri_val_tpl": "brightness_value_template", "chrg_t": "charging_topic", "chrg_tpl": "charging_template",
    "clr_temp_cmd_tpl": "color_temp_command_template", "clr_temp_cmd_t": "color_temp_command_topic",
    "clr_temp_k": "color_temp_kelvin", "clr_temp_stat_t": "color_temp_state_topic",
    "clr_temp_tpl": "color_temp_template", "clr_temp_val_tpl": "color_temp_value_template",
    "clrm": "color_mode", "clrm_stat_t": "color_mode_state_topic", "clrm_val_tpl": "color_mode_value_template",
    "cln_t": "cleaning_topic", "cln_tpl": "cleaning_template",
    "cmd_off_tpl": "command_off_template", "cmd_on_tpl": "command_on_template", "cmd_t": "command_topic",
    "cmd_tpl": "command_template", "cmps": "components", "cod_arm_req": "code_arm_required",
    "cod_dis_req": "code_disarm_required", "cod_trig_req": "code_trigger_required",
    "cont_type": "content_type", "curr_temp_t": "current_temperature_topic",
    "curr_temp_tpl": "current_temperature_template", "def_ent_id": "default_entity_id", "dev": "device",
    "dev_cla": "device_class", "dir_cmd_t": "direction_command_topic", "dir_cmd_tpl": "direction_command_template",
    "dir_stat_t": "direction_state_topic", "dir_val_tpl": "direction_value_template",
    "dock_t": "docked_topic", "dock_tpl": "docked_template", "dsp_prc": "display_precision", "e": "encoding",
    "en": "enabled_by_default", "ent_cat": "entity_category", "ent_pic": "entity_picture",
    "err_t": "error_topic", "err_tpl": "error_template", "evt_typ": "event_types",
    "fanspd_t": "fan_speed_topic", "fanspd_tpl": "fan_speed_template", "fanspd_lst": "fan_speed_list",
    "flsh": "flash", "flsh_tlng": "flash_time_long", "flsh_tsht": "flash_time_short",
    "fx_cmd_tpl": "effect_command_template", "fx_cmd_t": "effect_command_topic", "fx_list": "effect_list",
    "fx_stat_t": "effect_state_topic", "fx_tpl": "effect_template", "fx_val_tpl": "effect_value_template",
    "exp_aft": "expire_after", "fan_mode_cmd_tpl": "fan_mode_command_template",
    "fan_mode_cmd_t": "fan_mode_command_topic", "fan_mode_stat_tpl": "fan_mode_state_template",
    "fan_mode_stat_t": "fan_mode_state_topic", "frc_upd": "force_update", "g_tpl": "green_template",
    "hold_cmd_tpl": "hold_command_template", "hold_cmd_t": "hold_command_topic",
    "hold_stat_tpl": "hold_state_template", "hold_stat_t": "hold_state_topic",
    "hs_cmd_t": "hs_command_topic", "hs_cmd_tpl": "hs_command_template", "hs_stat_t": "hs_state_topic",
    "hs_val_tpl": "hs_value_template", "ic": "icon", "img_e": "image_encoding", "img_t": "image_topic",
    "init": "initial", "hum_cmd_t": "target_humidity_command_topic",
    "hum_cmd_tpl": "target_humidity_command_template", "hum_stat_t": "target_humidity_state_topic",
    "hum_state_tpl": "target_humidity_state_template", "json_attr": "json_attributes",
    "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template",
    "l_ver_t": "latest_version_topic", "l_ver_tpl": "latest_version_template",
    "lrst_t": "last_reset_topic", "lrst_val_tpl": "last_reset_value_template", "max": "max", "min": "min",
    "max_hum": "max_humidity", "min_hum": "min_humidity", "max_k": "max_kelvin", "min_k": "min_kelvin",
    "max_mirs": "max_mireds", "min_mirs": "min_mireds", "max_temp": "max_temp", "min_temp": "min_temp",
    "migr_discvry": "migrate_discovery", "mode": "mode",
    "mode_cmd_tpl": "mode_command_template", "mode_cmd_t": "mode_command_topic",
    "mode_stat_t": "mode_state_topic", "mode_stat_tpl": "mode_state_template", "modes": "modes",
    "name": "name", "o": "origin", "obj_id": "object_id", "off_dly": "off_delay",
    "on_cmd_type": "on_command_type", "ops": "options", "opt": "optimistic",
    "osc_cmd_t": "oscillation_command_topic", "osc_cmd_tpl": "oscillation_command_template",
    "osc_stat_t": "oscillation_state_topic", "osc_val_tpl": "oscillation_value_template", "p": "platform",
    "pct_cmd_t": "percentage_command_topic", "pct_cmd_tpl": "percentage_command_template",
    "pct_stat_t": "percentage_state_topic", "pct_val_tpl": "percentage_value_template", "pl": "payload",
    "pl_arm_away": "payload_arm_away", "pl_arm_home": "payload_arm_home", "pl_arm_nite": "payload_arm_night",
    "pl_arm_vacation": "payload_arm_vacation", "pl_arm_custom_b": "payload_arm_custom_bypass",
    "pl_avail": "payload_available", "pl_cln_sp": "payload_clean_spot", "pl_cls": "payload_close",
    "pl_dir_fwd": "payload_direction_forward", "pl_dir_rev": "payload_direction_reverse",
    "pl_disarm": "payload_disarm", "pl_hi_spd": "payload_high_speed", "pl_home": "payload_home",
    "pl_inst": "payload_install", "pl_lock": "payload_lock", "pl_loc": "payload_locate",
    "pl_lo_spd": "payload_low_speed", "pl_med_spd": "payload_medium_speed",
    "pl_not_avail": "payload_not_available", "pl_not_home": "payload_not_home", "pl_off": "payload_off",
    "pl_off_spd": "payload_off_speed", "pl_on": "payload_on", "pl_open": "payload_open",
    "pl_osc_off": "payload_oscillation_off", "pl_osc_on": "payload_oscillation_on", "pl_paus": "payload_pause",
    "pl_prs": "payload_press", "pl_rst": "payload_reset", "pl_rst_hum": "payload_reset_humidity",
    "pl_rst_mode": "payload_reset_mode", "pl_rst_pct": "payload_reset_percentage",
    "pl_rst_pr_mode": "payload_reset_preset_mode", "pl_stop": "payload_stop", "pl_stop_tilt": "payload_stop_tilt",
    "pl_strt": "payload_start", "pl_stpa": "payload_start_pause", "pl_ret": "payload_return_to_base",
    "pl_toff": "payload_turn_off", "pl_ton": "payload_turn_on", "pl_trig": "payload_trigger",
    "pl_unlk": "payload_unlock", "pos": "reports_position", "pos_clsd": "position_closed",
    "pos_open": "position_open", "pow_cmd_t": "power_command_topic", "pow_stat_t": "power_state_topic",
    "pow_stat_tpl": "power_state_template", "pr_mode_cmd_t": "preset_mode_command_topic",
    "pr_mode_cmd_tpl": "preset_mode_command_template", "pr_mode_stat_t": "preset_mode_state_topic",
    "pr_mode_val_tpl": "preset_mode_value_template", "pr_modes": "preset_modes", "ptrn": "pattern",
    "r_tpl": "red_template", "rel_s": "release_summary", "rel_u": "release_url", "ret": "retain",
    "rgb_cmd_tpl": "rgb_command_template", "rgb_cmd_t": "rgb_command_topic", "rgb_stat_t": "rgb_state_topic",
    "rgb_val_tpl": "rgb_value_template", "rgbw_cmd_tpl": "rgbw_command_template",
    "rgbw_cmd_t": "rgbw_command_topic", "rgbw_stat_t": "rgbw_state_topic", "rgbw_val_tpl": "rgbw_value_template",
    "rgbww_cmd_tpl": "rgbww_command_template", "rgbww_cmd_t": "rgbww_command_topic",
    "rgbww_stat_t": "rgbww_state_topic", "rgbww_val_tpl": "rgbww_value_template",
    "send_cmd_t": "send_command_topic", "send_if_off": "send_if_off", "set_fan_spd_t": "set_fan_speed_topic",
    "set_pos_tpl": "set_position_template", "set_pos_t": "set_position_topic", "pos_t": "position_topic",
    "pos_tpl": "position_template", "spd_cmd_t": "speed_command_topic", "spd_stat_t": "speed_state_topic",
    "spd_rng_min": "speed_range_min", "spd_rng_max": "speed_range_max", "spd_val_tpl": "speed_value_template",
    "spds": "speeds", "src_type": "source_type", "stat_cla": "state_class", "stat_clsd": "state_closed",
    "stat_closing": "state_closing", "stat_jam": "state_jammed", "stat_off": "state_off",
    "stat_on": "state_on", "stat_open": "state_open", "stat_opening": "state_opening",
    "stat_stopped": "state_stopped", "stat_locked": "state_locked", "stat_locking": "state_locking",
    "stat_unlocked": "state_unlocked", "stat_unlocking": "state_unlocking", "stat_t": "state_topic",
    "stat_tpl": "state_template", "stat_val_tpl": "state_value_template", "step": "step", "stype": "subtype",
    "sug_dsp_prc": "suggested_display_precision", "sup_clrm": "supported_color_modes",
    "sup_dur": "support_duration", "sup_duration": "support_duration", "sup_vol": "support_volume_set",
    "sup_feat": "supported_features", "sup_off": "supported_turn_off",
    "swing_mode_cmd_tpl": "swing_mode_command_template", "swing_mode_cmd_t": "swing_mode_command_topic",
    "swing_mode_stat_tpl": "swing_mode_state_template", "swing_mode_stat_t": "swing_mode_state_topic",
    "temp_cmd_tpl": "temperature_command_template", "temp_cmd_t": "temperature_command_topic",
    "temp_hi_cmd_tpl": "temperature_high_command_template", "temp_hi_cmd_t": "temperature_high_command_topic",
    "temp_hi_stat_tpl": "temperature_high_state_template", "temp_hi_stat_t": "temperature_high_state_topic",
    "temp_lo_cmd_tpl": "temperature_low_command_template", "temp_lo_cmd_t": "temperature_low_command_topic",
    "temp_lo_stat_tpl": "temperature_low_state_template", "temp_lo_stat_t": "temperature_low_state_topic",
    "temp_stat_tpl": "temperature_state_template", "temp_stat_t": "temperature_state_topic",
    "temp_unit": "temperature_unit", "tilt_clsd_val": "tilt_closed_value", "tilt_cmd_t": "tilt_command_topic",
    "tilt_cmd_tpl": "tilt_command_template", "tilt_inv_stat": "tilt_invert_state", "tilt_max": "tilt_max",
    "tilt_min": "tilt_min", "tilt_opnd_val": "tilt_opened_value", "tilt_opt": "tilt_optimistic",
    "tilt_status_t": "tilt_status_topic", "tilt_status_tpl": "tilt_status_template", "tit": "title",
    "trns": "transition", "t": "topic", "uniq_id": "unique_id", "unit_of_meas": "unit_of_measurement",
    "url_t": "url_topic", "url_tpl": "url_template", "val_tpl": "value_template",
    "whit_cmd_t": "white_command_topic", "whit_scl": "white_scale",
    "whit_val_cmd_t": "white_value_command_topic", "whit_val_scl": "white_value_scale",
    "whit_val_stat_t": "white_value_state_topic", "whit_val_tpl": "white_value_template",
    "xy_cmd_t": "xy_command_topic", "xy_cmd_tpl": "xy_command_template", "xy_stat_t": "xy_state_topic",
    "xy_val_tpl": "xy_value_template",
}

#: Home Assistant's ``DEVICE_ABBREVIATIONS`` (the ``device`` block); ``via_dev`` is accepted as well.
DEVICE_ABBREVIATIONS: dict[str, str] = {
    "cns": "connections", "cu": "configuration_url", "ids": "identifiers", "name": "name",
    "mf": "manufacturer", "mdl": "model", "mdl_id": "model_id", "hw": "hw_version", "sw": "sw_version",
    "sa": "suggested_area", "sn": "serial_number", "via_dev": "via_device",
}

#: Home Assistant's ``ORIGIN_ABBREVIATIONS`` (the ``origin`` block).
ORIGIN_ABBREVIATIONS: dict[str, str] = {"name": "name", "sw": "sw_version", "url": "support_url"}

# Options of a device config that every component inherits unless it sets them itself (HA's SHARED_OPTIONS,
# plus ``~``, so a component's "~/state" works as a device author would expect).
SHARED_OPTIONS = ("availability", "availability_mode", "availability_template", "availability_topic",
                  "command_topic", "payload_available", "payload_not_available", "state_topic", "~",
                  "qos", "encoding")

# HA accepts <component>/[<node_id>/]<object_id>/config with these characters only.
_DISCOVERY_TOPIC = re.compile(r"(?P<component>\w+)/(?:(?P<node>[a-zA-Z0-9_-]+)/)?(?P<object>[a-zA-Z0-9_-]+)/config")

PLATFORMS = frozenset({"sensor", "binary_sensor", "switch", "light", "cover", "valve", "climate", "lock", "fan",
                       "button", "event", "device_automation"})


def _expand(block: Any, table: dict[str, str]) -> dict[str, Any]:
    if not isinstance(block, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in block.items():
        full = table.get(key, key)
        # The full key wins over its abbreviation when a config has both.
        if full in out and full != key:
            continue
        out[full] = value
    return out


def expand_abbreviations(config: dict[str, Any], *, component_only: bool = False) -> dict[str, Any]:
    """A copy of ``config`` with every abbreviated key in full (root, availability list, device, origin,
    components of a device config)."""
    out = _expand(config, ABBREVIATIONS)
    availability = out.get("availability")
    if isinstance(availability, list):
        out["availability"] = [_expand(a, ABBREVIATIONS) if isinstance(a, dict) else a for a in availability]
    elif isinstance(availability, dict):
        out["availability"] = [_expand(availability, ABBREVIATIONS)]
    if component_only:
        return out
    if "device" in out:
        out["device"] = _expand(out["device"], DEVICE_ABBREVIATIONS)
    if "origin" in out:
        out["origin"] = _expand(out["origin"], ORIGIN_ABBREVIATIONS)
    components = out.get("components")
    if isinstance(components, dict):
        out["components"] = {k: expand_abbreviations(v, component_only=True) if isinstance(v, dict) else v
                             for k, v in components.items()}
    return out


def apply_base_topic(config: dict[str, Any]) -> dict[str, Any]:
    """Substitute ``~`` at the start or end of every ``…topic`` value and of availability topics."""
    base = config.get("~")
    if not isinstance(base, str):
        return config

    def sub(topic: Any) -> Any:
        if not isinstance(topic, str) or not topic:
            return topic
        if topic[0] == "~":
            topic = base + topic[1:]
        if topic and topic[-1] == "~":
            topic = topic[:-1] + base
        return topic

    out = {k: sub(v) if k.endswith("topic") else v for k, v in config.items() if k != "~"}
    availability = out.get("availability")
    if isinstance(availability, list):
        out["availability"] = [{**a, "topic": sub(a.get("topic"))} if isinstance(a, dict) else a
                               for a in availability]
    return out


def parse_discovery_topic(prefix: str, topic: str) -> tuple[str, str | None, str] | None:
    """(component, node_id, object_id) of a discovery topic under ``prefix``, or None."""
    if not topic.startswith(prefix + "/"):
        return None
    match = _DISCOVERY_TOPIC.fullmatch(topic[len(prefix) + 1:])
    if match is None:
        return None
    return match.group("component"), match.group("node"), match.group("object")


# ---------------------------------------------------------------------------------------------- native devices

_Z2M_ID = re.compile(r"^zigbee2mqtt_(0x[0-9a-f]{16})$", re.IGNORECASE)
_TASMOTA_LWT = re.compile(r"^(?:tele/(?P<a>[^/+#]+)|(?P<b>[^/+#]+)/tele)/LWT$")
_SHELLY_ID = re.compile(r"(shelly[a-z0-9]+-[0-9a-f]{6,12})", re.IGNORECASE)


def _identifiers(device: dict[str, Any]) -> list[str]:
    ids = device.get("identifiers")
    if isinstance(ids, (str, int)) and not isinstance(ids, bool):
        ids = [ids]
    if not isinstance(ids, list):
        return []
    return [str(i).strip() for i in ids if isinstance(i, (str, int)) and not isinstance(i, bool) and str(i).strip()]


def _connections(device: dict[str, Any]) -> list[tuple[str, str]]:
    cns = device.get("connections")
    if not isinstance(cns, list):
        return []
    return [(str(c[0]).lower(), str(c[1]).strip()) for c in cns
            if isinstance(c, (list, tuple)) and len(c) == 2 and isinstance(c[1], (str, int)) and str(c[1]).strip()]


def _availability_topics(config: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(config.get("availability_topic"), str):
        out.append((config["availability_topic"], config.get("payload_available", "online")))
    availability = config.get("availability")
    for entry in availability if isinstance(availability, list) else []:  # a device's config may say anything
        if isinstance(entry, dict) and isinstance(entry.get("topic"), str):
            out.append((entry["topic"], entry.get("payload_available", "online")))
    return out


def _tasmota_topic(config: dict[str, Any]) -> str | None:
    for topic, available in _availability_topics(config):
        match = _TASMOTA_LWT.match(topic)
        if match is not None and available == "Online":
            return match.group("a") or match.group("b")
    return None


def native_source(config: dict[str, Any]) -> str | None:
    """Which native adapter a discovery config (abbreviations expanded) comes from, or None."""
    device = config.get("device") if isinstance(config.get("device"), dict) else {}
    origin = config.get("origin") if isinstance(config.get("origin"), dict) else {}
    ids = _identifiers(device)
    if any(i.startswith("hearth:") for i in ids):
        return "hearth"  # a Hearth gateway's own announcement ([ha_discovery]): this one's, or another's
    origin_name = str(origin.get("name", "")).lower()
    manufacturer = str(device.get("manufacturer", "")).lower()
    sw_version = str(device.get("sw_version", "")).lower()
    if (any(i.lower().startswith("zigbee2mqtt_") for i in ids) or origin_name == "zigbee2mqtt"
            or sw_version.startswith("zigbee2mqtt")):
        return "zigbee2mqtt"
    if (origin_name == "tasmota" or manufacturer == "tasmota" or "(tasmota)" in sw_version
            or _tasmota_topic(apply_base_topic(config)) is not None):
        return "tasmota"
    base = config.get("~")
    unique_id = config.get("unique_id")
    if (manufacturer in ("shelly", "allterco robotics") or origin_name.startswith("shellies discovery")
            or (isinstance(base, str) and _SHELLY_ID.match(base))
            or (isinstance(unique_id, str) and _SHELLY_ID.match(unique_id))):
        return "shelly"
    return None


def native_device_id(config: dict[str, Any]) -> str | None:
    """The id a native Hearth adapter gives the device of this discovery config (abbreviations expanded, ``~``
    not yet substituted or already substituted), or None when it cannot be told.

    ``zigbee2mqtt_0x00158d0001a2b3c4`` -> ``zigbee2mqtt:0x00158d0001a2b3c4``; a Tasmota config with
    ``tele/<t>/LWT`` (or ``<t>/tele/LWT``) availability -> ``tasmota:<t>``; a Shelly config whose base topic or
    unique id starts with ``shelly<model>-<mac>`` -> ``shelly:<that id>``."""
    source = native_source(config)
    device = config.get("device") if isinstance(config.get("device"), dict) else {}
    if source == "hearth":
        for ident in _identifiers(device):
            if ident.startswith("hearth:"):
                return ident.removeprefix("hearth:")
        return None
    if source == "zigbee2mqtt":
        for ident in _identifiers(device):
            match = _Z2M_ID.match(ident)
            if match:
                return f"zigbee2mqtt:{match.group(1).lower()}"
        return None
    if source == "tasmota":
        topic = _tasmota_topic(apply_base_topic(config))
        return f"tasmota:{topic.lower()}" if topic else None
    if source == "shelly":
        for candidate in (config.get("~"), config.get("unique_id")):
            if isinstance(candidate, str):
                match = _SHELLY_ID.match(candidate)
                if match:
                    return f"shelly:{match.group(1).lower()}"
        return None
    return None


# ---------------------------------------------------------------------------------------------- units
# UNIT_FACTORS is the SDK's (gateway.units): device definitions and plugins use it too.


@dataclass(frozen=True, slots=True)
class SensorRule:
    capability: str
    attribute: str
    unit_family: str


#: sensor device_class -> where its value goes. ``voltage`` of a battery, and ``energy`` that is exported, are
#: decided per entity by its name (see :func:`_sensor_rule`).
SENSOR_CLASSES: dict[str, SensorRule] = {
    "temperature": SensorRule("temperature", "celsius", "temperature"),
    "humidity": SensorRule("humidity", "percent", "percent"),
    "illuminance": SensorRule("illuminance", "lux", "illuminance"),
    "pressure": SensorRule("pressure", "hpa", "pressure"),
    "atmospheric_pressure": SensorRule("pressure", "hpa", "pressure"),
    "power": SensorRule("power_meter", "watts", "power"),
    "voltage": SensorRule("power_meter", "volts", "voltage"),
    "current": SensorRule("power_meter", "amps", "current"),
    "power_factor": SensorRule("power_meter", "power_factor", "power_factor"),
    "frequency": SensorRule("power_meter", "hertz", "frequency"),
    "energy": SensorRule("energy_meter", "kwh", "energy"),
    "battery": SensorRule("battery", "percent", "percent"),
    "carbon_dioxide": SensorRule("air_quality", "co2_ppm", "ppm"),
    "pm25": SensorRule("air_quality", "pm25_ugm3", "ugm3"),
    "pm10": SensorRule("air_quality", "pm10_ugm3", "ugm3"),
    "volatile_organic_compounds_parts": SensorRule("air_quality", "voc_ppb", "ppb"),
    "signal_strength": SensorRule("connectivity", "rssi_dbm", "dbm"),
}

# A sensor without device_class is still clear from an unambiguous unit.
_CLASS_BY_UNIT = {"°C": "temperature", "°F": "temperature", "W": "power", "kW": "power", "kWh": "energy",
                  "Wh": "energy", "V": "voltage", "A": "current", "lx": "illuminance", "hPa": "pressure",
                  "ppm": "carbon_dioxide", "dBm": "signal_strength", "Hz": "frequency"}

#: binary_sensor device_class -> (capability, attribute); "on" means the attribute is true (a door: open).
BINARY_CLASSES: dict[str, tuple[str, str]] = {
    "door": ("contact", "open"), "window": ("contact", "open"), "opening": ("contact", "open"),
    "garage_door": ("contact", "open"),
    "motion": ("occupancy", "occupied"), "occupancy": ("occupancy", "occupied"),
    "presence": ("occupancy", "occupied"),
    "moisture": ("water_leak", "leak"), "smoke": ("smoke_co_alarm", "smoke"),
    "carbon_monoxide": ("smoke_co_alarm", "co"), "vibration": ("vibration", "detected"),
    "tamper": ("tamper", "tampered"), "battery": ("battery", "low"), "connectivity": ("connectivity", "online"),
}

#: ``json_attributes_topic`` keys that are readings, as real publishers name them there -> (capability, attribute,
#: conversion). Zigbee2MQTT points every entity's attributes at the device's whole state (``temperature``,
#: ``humidity``, ``battery``, ``linkquality``…); OpenMQTTGateway and Theengs at the BLE message (``tempc``,
#: ``tempf``, ``hum``, ``batt``, ``rssi``); ble2mqtt and RuuviTag publishers likewise. A reading is used only where
#: the device already has that capability (an attribute never creates one); every other key is a replay note.
ATTRIBUTE_KEYS: dict[str, tuple[str, str, Callable[[float], float] | None]] = {
    "temperature": ("temperature", "celsius", None), "tempc": ("temperature", "celsius", None),
    "tempf": ("temperature", "celsius", lambda v: round(fahrenheit_to_celsius(v), 2)),
    "humidity": ("humidity", "percent", None), "hum": ("humidity", "percent", None),
    "pressure": ("pressure", "hpa", None), "pres": ("pressure", "hpa", None),
    "illuminance": ("illuminance", "lux", None), "illuminance_lux": ("illuminance", "lux", None),
    "lux": ("illuminance", "lux", None),
    "battery": ("battery", "percent", None), "batt": ("battery", "percent", None),
    "battery_low": ("battery", "low", None),
    "co2": ("air_quality", "co2_ppm", None),
    "occupancy": ("occupancy", "occupied", None),
    "water_leak": ("water_leak", "leak", None),
    "tamper": ("tamper", "tampered", None),
    "linkquality": ("connectivity", "lqi", None),
    "rssi": ("connectivity", "rssi_dbm", None),
    "last_seen": ("connectivity", "last_seen", None),
}

THERMOSTAT_MODES = ("off", "heat", "cool", "auto", "eco", "dry", "fan_only")
_HA_MODE_TO_OURS = {"heat_cool": "auto"}
_HA_ACTION = {"heating": "heating", "preheating": "heating", "cooling": "cooling", "idle": "idle",
              "off": "idle", "drying": "idle", "fan": "idle", "defrosting": "idle"}
_UNKNOWN_WORDS = frozenset({"", "unknown", "unavailable", "none", "null", "nan"})
_MIRED_PER_KELVIN = 1_000_000  # kelvin = 1e6 / mireds, both ways

# Button press kinds from event types / trigger types (words in the name).
_PRESS_KIND = {"single": "single", "short": "single", "press": "single", "click": "single", "push": "single",
               "double": "double", "triple": "triple", "long": "long", "hold": "hold", "release": "release",
               "up": "release"}


def press_kind(name: str) -> str | None:
    """``single_push`` -> single, ``button_double_press`` -> double, ``long_push`` -> long, ``btn_up`` -> release.
    ``button_short_release`` (HA's trigger type for the end of a short press; an RF remote's only event) is a
    single press, as ``button_long_release`` is a long one."""
    tokens = re.split(r"[_\-\s]+", name.lower())
    for preferred in ("double", "triple", "long", "hold", "short", "release"):
        if preferred in tokens:
            return _PRESS_KIND[preferred]
    for token in tokens:
        if token in _PRESS_KIND:
            return _PRESS_KIND[token]
    return None


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad(why: str) -> CodecError:
    return CodecError(why)


def _attr_spec(cap: str, attr: str) -> AttributeSpec:
    spec = capability(cap)
    if spec is None or attr not in spec.attributes:  # pragma: no cover - the tables above use core names only
        raise _bad(f"{cap}.{attr} is not in the capability model")
    return spec.attributes[attr]


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise _bad(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _bad(f"expected a number, got {_short(value)}") from None
    else:
        raise _bad(f"expected a number, got {_short(value)}")
    if not math.isfinite(number):
        raise _bad(f"expected a finite number, got {value!r}")
    return number


def _is_unknown(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in _UNKNOWN_WORDS)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = to_text(value).strip()
    return text or None


def _converter(family: str, unit: str | None) -> Callable[[float], float] | None:
    factors = UNIT_FACTORS[family]
    if unit is None or unit == "":
        return lambda v: v  # no unit given: taken as the canonical one
    factor = factors.get(unit.strip())
    if factor is None:
        return None
    if callable(factor):
        fn = factor
        return lambda v: round(fn(v), 4)
    if factor == 1:
        return lambda v: v
    return lambda v: round(v * factor, 6)


# ---------------------------------------------------------------------------------------------- entities

UpdateTriple = tuple[str, str, Any]  # (capability, attribute, value)
StateDecode = Callable[[Any], list[UpdateTriple]]


@dataclass(frozen=True, slots=True)
class StateBinding:
    """One state topic of one entity: how its payload becomes attribute values (or button events)."""

    topic: str
    template: CompiledTemplate | None
    decode: StateDecode
    json_payload: bool = False  # the payload itself is the JSON object to decode (JSON-schema light)
    events: bool = False  # decode returns (capability, event, data) triples: events, not attributes
    # device_automation: the rendered value must equal this (None: any message)
    match_payload: str | None = None
    # Seconds after which a value not renewed is unknown (sensor/binary_sensor `expire_after`), and after which
    # a binary sensor that only sends ON reads OFF again (`off_delay`, a PIR's): timers the adapter runs.
    expire_after: float | None = None
    off_delay: float | None = None
    # json_attributes_topic: the payload (or what json_attributes_template makes of it) is a JSON object of
    # attributes, used where they fit a capability the device has (HomeAssistantCodec._decode_attributes).
    attributes: bool = False


@dataclass(frozen=True, slots=True)
class CommandBinding:
    topic: str
    encode: Callable[[dict[str, Any]], str]
    retain: bool = False


@dataclass(frozen=True, slots=True)
class AvailabilityTopic:
    topic: str
    payload_available: str
    payload_not_available: str
    template: CompiledTemplate | None


@dataclass(slots=True)
class Entity:
    """One discovered entity, compiled: what it supports, where its state comes from, how to command it."""

    key: str
    platform: str
    object_id: str
    unique_id: str | None
    name: str | None
    device_id: str
    device: dict[str, Any]
    support: dict[str, CapabilitySupport]
    bindings: list[StateBinding] = field(default_factory=list)
    commands: dict[tuple[str, str], CommandBinding] = field(default_factory=dict)
    availability: tuple[AvailabilityTopic, ...] = ()
    availability_mode: str = "latest"
    initial: list[UpdateTriple] = field(default_factory=list)
    events_only: bool = False  # device triggers: no attributes, never take part in the component layout
    component: str = "main"
    attributes_noted: bool = False  # unused json_attributes are said once per entity, not per message


def _template(config: dict[str, Any], key: str, names: Iterable[str] = ()) -> CompiledTemplate | None:
    source = config.get(key)
    if source is None or source == "":
        return None
    return compile_template(source, names)  # raises TemplateUnsupported


def _command_template(config: dict[str, Any], key: str, names: Iterable[str] = ()) -> CompiledTemplate | None:
    return _template(config, key, names)


def _payload_word(config: dict[str, Any], key: str, default: str | None) -> str | None:
    value = config.get(key, default)
    if value is None:
        return None
    return to_text(value)


def _topic(config: dict[str, Any], key: str) -> str | None:
    value = config.get(key)
    if not isinstance(value, str) or not value or "\x00" in value:
        return None
    return value


def _state_topic(config: dict[str, Any], key: str = "state_topic") -> str | None:
    """A state topic; it may be a filter with wildcards, as Home Assistant subscribes to it (OpenMQTTGateway
    names `+/+/BTtoMQTT/<id>`, so a device is heard through any of its gateways)."""
    topic = _topic(config, key)
    if topic is not None:
        try:
            validate_topic_filter(topic)
        except ValueError as err:
            raise _bad(f"{key}: {err}") from None
    return topic


def _render_command(template: CompiledTemplate | None, value: Any, variables: dict[str, Any] | None = None) -> str:
    if template is None:
        return to_text(value)
    try:
        return to_text(template.render(value, variables=variables))
    except TemplateError as err:
        raise _bad(f"command template {template.source!r}: {err}") from err


def _numeric_decoder(cap: str, attr: str, convert: Callable[[float], float]) -> StateDecode:
    spec = _attr_spec(cap, attr)

    def decode(value: Any) -> list[UpdateTriple]:
        if _is_unknown(value):
            return [(cap, attr, None)]
        number = convert(_number(value))
        problem = spec.check(number)
        if problem is not None:
            raise _bad(f"{cap}.{attr}: {problem}")
        return [(cap, attr, number)]
    return decode


def _bool_decoder(cap: str, attr: str, on: str | None, off: str | None) -> StateDecode:
    def decode(value: Any) -> list[UpdateTriple]:
        text = to_text(value)
        if on is not None and text == on:
            return [(cap, attr, True)]
        if off is not None and text == off:
            return [(cap, attr, False)]
        if _is_unknown(value):
            return [(cap, attr, None)]
        raise _bad(f"{cap}.{attr}: expected {on!r} or {off!r}, got {_short(text)}")
    return decode


def _support(attrs: Iterable[str] = (), cmds: Iterable[str] = (),
             limits: dict[str, tuple[float | None, float | None]] | None = None) -> CapabilitySupport:
    return CapabilitySupport(frozenset(attrs), frozenset(cmds), dict(limits or {}))


def _merge_support(into: dict[str, CapabilitySupport], cap: str, attrs: Iterable[str] = (),
                   cmds: Iterable[str] = (),
                   limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
    old = into.get(cap)
    if old is None:
        into[cap] = _support(attrs, cmds, limits)
    else:
        into[cap] = CapabilitySupport(old.attributes | frozenset(attrs), old.commands | frozenset(cmds),
                                      {**old.limits, **(limits or {})})


@dataclass(slots=True)
class _Build:
    """What a platform compiler fills in for one entity."""

    config: dict[str, Any]
    label: str  # entity name / object id, lowercased: used for the battery-voltage / exported-energy hints
    support: dict[str, CapabilitySupport] = field(default_factory=dict)
    bindings: list[StateBinding] = field(default_factory=list)
    commands: dict[tuple[str, str], CommandBinding] = field(default_factory=dict)
    initial: list[UpdateTriple] = field(default_factory=list)
    events_only: bool = False
    left_out: list[str] = field(default_factory=list)  # optional parts that could not be used, and why
    notes: list[str] = field(default_factory=list)  # optional parts deliberately not used (debug level)
    # What the entity's own state said last that a command needs and the command's arguments do not carry: a
    # light's brightness (0-255) and its normalised RGB(W)(W) colour, so a colour is sent at the brightness the
    # light has and a white channel is kept (Home Assistant's schema_basic does the same). Filled by decoders.
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def retain(self) -> bool:
        return self.config.get("retain") is True

    def state(self, topic_key: str, template_key: str | None, decode: StateDecode, *, optional: bool = False,
              **kw: Any) -> bool:
        """Bind a state topic; True if bound. ``optional``: a part the entity is useful without (a
        thermostat's mode): if its topic or template cannot be used it is left out, and said so, not the
        whole entity."""
        try:
            topic = _state_topic(self.config, topic_key)
            if topic is None:
                return False
            template = _template(self.config, template_key) if template_key else None
        except (CodecError, TemplateError) as err:
            if not optional:
                raise
            self.left_out.append(f"{topic_key.removesuffix('_topic')}: {err}")
            return False
        self.bindings.append(StateBinding(topic, template, decode, **kw))
        return True

    def optional_template(self, key: str, names: Iterable[str] = ()) -> tuple[bool, CompiledTemplate | None]:
        """(usable, template) of an optional command template (``names``: the variables HA passes it besides
        ``value``): unusable ones are left out, and said so."""
        try:
            return True, _template(self.config, key, names)
        except (CodecError, TemplateError) as err:
            self.left_out.append(f"{key}: {err}")
            return False, None

    def command(self, cap: str, cmd: str, topic_key: str, encode: Callable[[dict[str, Any]], str]) -> bool:
        topic = _topic(self.config, topic_key)
        if topic is None or "+" in topic or "#" in topic:
            return False
        self.commands[(cap, cmd)] = CommandBinding(topic, encode, self.retain)
        return True


def _sensor_rule(cfg: dict[str, Any], label: str) -> tuple[SensorRule, str | None] | None:
    unit = cfg.get("unit_of_measurement")
    unit = unit.strip() if isinstance(unit, str) and unit.strip() else None
    device_class = cfg.get("device_class")
    if not isinstance(device_class, str) or device_class not in SENSOR_CLASSES:
        device_class = _CLASS_BY_UNIT.get(unit or "") if device_class is None else None
    if device_class is None:
        return None
    rule = SENSOR_CLASSES[device_class]
    if device_class == "voltage" and "batt" in label:
        rule = SensorRule("battery", "volts", "voltage")
    elif device_class == "energy" and any(w in label for w in ("export", "return", "produced", "feed")):
        rule = SensorRule("energy_meter", "exported_kwh", "energy")
    return rule, unit


def _compile_sensor(b: _Build) -> None:
    found = _sensor_rule(b.config, b.label)
    if found is None:
        raise _bad(f"sensor with device_class {b.config.get('device_class')!r} and unit "
                   f"{b.config.get('unit_of_measurement')!r} has no place in the capability model")
    rule, unit = found
    convert = _converter(rule.unit_family, unit)
    if convert is None:
        raise _bad(f"unit {unit!r} of a {rule.unit_family} sensor is not supported")
    if _topic(b.config, "state_topic") is None:
        raise _bad("sensor without state_topic")
    b.state("state_topic", "value_template", _numeric_decoder(rule.capability, rule.attribute, convert))
    _merge_support(b.support, rule.capability, [rule.attribute])


def _compile_binary_sensor(b: _Build) -> None:
    device_class = b.config.get("device_class")
    target = BINARY_CLASSES.get(device_class) if isinstance(device_class, str) else None
    if target is None:
        raise _bad(f"binary_sensor device_class {device_class!r} has no place in the capability model")
    if _topic(b.config, "state_topic") is None:
        raise _bad("binary_sensor without state_topic")
    cap, attr = target
    on = _payload_word(b.config, "payload_on", "ON")
    off = _payload_word(b.config, "payload_off", "OFF")
    b.state("state_topic", "value_template", _bool_decoder(cap, attr, on, off))
    _merge_support(b.support, cap, [attr])


def _on_off(b: _Build, cap: str = "on_off", attr: str = "on", value_template: str = "value_template",
            optional: bool = False) -> None:
    cfg = b.config
    payload_on = _payload_word(cfg, "payload_on", "ON")
    payload_off = _payload_word(cfg, "payload_off", "OFF")
    state_on = _payload_word(cfg, "state_on", payload_on)
    state_off = _payload_word(cfg, "state_off", payload_off)
    attrs: list[str] = []
    if _topic(cfg, "state_topic") is not None:
        template_key = value_template if value_template in cfg else "value_template"
        if b.state("state_topic", template_key, _bool_decoder(cap, attr, state_on, state_off), optional=optional):
            attrs.append(attr)
    cmds: list[str] = []
    template = _command_template(cfg, "command_template")
    for cmd, word in (("on", payload_on), ("off", payload_off)):
        if word is not None and b.command(cap, cmd, "command_topic",
                                          lambda args, w=word: _render_command(template, w)):
            cmds.append(cmd)
    if attrs or cmds:
        _merge_support(b.support, cap, attrs, cmds)


def _compile_switch(b: _Build) -> None:
    _on_off(b)
    if "on_off" not in b.support:
        raise _bad("switch with neither state_topic nor command_topic")


def _percent_arg(args: dict[str, Any], name: str = "percent") -> float:
    value = _number(args.get(name))
    if not 0 <= value <= 100:
        raise _bad(f"{name} {value:g} is outside 0..100")
    return value


def _kelvin_range(cfg: dict[str, Any], kelvin_mode: bool) -> tuple[int, int] | None:
    try:
        if kelvin_mode or "min_kelvin" in cfg or "max_kelvin" in cfg:
            low, high = _number(cfg.get("min_kelvin", 2000)), _number(cfg.get("max_kelvin", 6535))
        else:
            # HA's defaults: 153..500 mireds. Warmest (max mireds) is the lowest kelvin.
            low = _MIRED_PER_KELVIN / _number(cfg.get("max_mireds", 500))
            high = _MIRED_PER_KELVIN / _number(cfg.get("min_mireds", 153))
    except (CodecError, ZeroDivisionError):
        return None
    low_k, high_k = round(low), round(high)
    return (low_k, high_k) if 1000 <= low_k <= high_k <= 20000 else None


def _color_temp_decoder(kelvin_mode: bool) -> StateDecode:
    spec = _attr_spec("color_temperature", "kelvin")

    def decode(value: Any) -> list[UpdateTriple]:
        if _is_unknown(value):
            return [("color_temperature", "kelvin", None)]
        number = _number(value)
        if not kelvin_mode:
            if number <= 0:
                raise _bad(f"color_temp {number:g} mireds is not a colour temperature")
            number = _MIRED_PER_KELVIN / number
        kelvin = round(number)
        problem = spec.check(kelvin)
        if problem is not None:
            raise _bad(f"color_temperature.kelvin: {problem}")
        return [("color_temperature", "kelvin", kelvin)]
    return decode


def _kelvin_to_device(kelvin_mode: bool, args: dict[str, Any], limits: tuple[int, int] | None) -> int:
    kelvin = _number(args.get("kelvin"))
    if limits is not None:
        kelvin = min(max(kelvin, limits[0]), limits[1])
    if not 1000 <= kelvin <= 20000:
        raise _bad(f"kelvin {kelvin:g} is outside 1000..20000")
    return round(kelvin) if kelvin_mode else round(_MIRED_PER_KELVIN / kelvin)


def _compile_light(b: _Build) -> None:
    schema = b.config.get("schema", "default")
    if schema == "json":
        _compile_json_light(b)
    elif schema == "template":
        _compile_template_light(b)
    else:
        _compile_default_light(b)
    if "on_off" not in b.support:
        raise _bad("light with neither state_topic nor command_topic")


# ---------------------------------------------------------------------------------------------- light colours
# Home Assistant's colour modes (the light.mqtt docs): hs and xy are sent and reported as they are; rgb, rgbw and
# rgbww are channel values 0-255. Hearth's `color` capability holds hue/saturation (and x/y), so an RGB(W)(W)
# light's colour is its RGB part as hue and saturation, and `color.set` is sent as that hue and saturation at full
# value (the standard HSV->RGB conversion); an RGBW(W) light's white channel(s) are kept as they were reported,
# since `color` says nothing about white.

RGBX_MODES = ("rgb", "rgbw", "rgbww")
# Names of the channels in a default-schema command template (HA passes these variables) ...
_TEMPLATE_CHANNELS = {"rgb": ("red", "green", "blue"), "rgbw": ("red", "green", "blue", "white"),
                      "rgbww": ("red", "green", "blue", "cold_white", "warm_white")}
# ... and the keys of the JSON schema's "color" object (c is cold white, w warm white of an rgbww light).
_JSON_CHANNELS = {"rgb": ("r", "g", "b"), "rgbw": ("r", "g", "b", "w"), "rgbww": ("r", "g", "b", "c", "w")}


def hs_to_rgb(hue: float, saturation: float) -> tuple[int, int, int]:
    """Hue (0-360 °) and saturation (0-100 %) at full value as 8-bit RGB: the standard HSV->RGB conversion,
    rounded as Home Assistant's ``color_hsv_to_RGB`` rounds."""
    red, green, blue = colorsys.hsv_to_rgb((hue % 360) / 360, saturation / 100, 1.0)
    return round(red * 255), round(green * 255), round(blue * 255)


def rgb_to_hs(red: float, green: float, blue: float) -> tuple[float, float] | None:
    """(hue 0-360, saturation 0-100) of an RGB colour, to 0.1; None for black, which has no hue."""
    if max(red, green, blue) <= 0:
        return None
    hue, saturation, _value = colorsys.rgb_to_hsv(red / 255, green / 255, blue / 255)
    return round(hue * 360, 1) % 360, round(saturation * 100, 1)


def _hs_args(args: dict[str, Any]) -> tuple[float, float]:
    hue, saturation = _number(args.get("hue")), _number(args.get("saturation"))
    if not 0 <= hue <= 360 or not 0 <= saturation <= 100:
        raise _bad(f"hue {hue:g} / saturation {saturation:g} is outside 0..360 / 0..100")
    return hue, saturation


def _xy_args(args: dict[str, Any]) -> tuple[float, float]:
    x, y = _number(args.get("x")), _number(args.get("y"))
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise _bad(f"xy colour {x:g},{y:g} is outside 0..1")
    return x, y


def _channels(value: Any, mode: str) -> tuple[float, ...] | None:
    """An ``r,g,b[,w[,w]]`` payload (or a list a template made of it) as numbers 0-255; None when unknown."""
    if _is_unknown(value):
        return None
    count = len(_TEMPLATE_CHANNELS[mode])
    parts = value if isinstance(value, list) else to_text(value).split(",")
    if len(parts) != count:
        raise _bad(f"{mode} colour must be {count} values 0-255 separated by commas, got {_short(value)}")
    numbers = tuple(_number(part) for part in parts)
    if any(not 0 <= n <= 255 for n in numbers):
        raise _bad(f"{mode} colour {_short(value)} is outside 0..255")
    return numbers


def _colour_updates(channels: tuple[float, ...]) -> list[UpdateTriple]:
    hs = rgb_to_hs(*channels[:3])
    return [] if hs is None else [("color", "hue", hs[0]), ("color", "saturation", hs[1])]


def _xy_updates(x: float, y: float) -> list[UpdateTriple]:
    if not (0 <= x <= 1 and 0 <= y <= 1):
        raise _bad(f"xy colour {x:g},{y:g} is outside 0..1")
    return [("color", "x", round(x, 4)), ("color", "y", round(y, 4))]


def _decode_xy_text(value: Any) -> list[UpdateTriple]:
    if _is_unknown(value):
        return [("color", "x", None), ("color", "y", None)]
    parts = value if isinstance(value, list) else to_text(value).split(",")
    if len(parts) != 2:
        raise _bad(f"xy colour must be 'x,y', got {_short(value)}")
    return _xy_updates(_number(parts[0]), _number(parts[1]))


def _scaled(channels: Iterable[float], brightness: float) -> tuple[int, ...]:
    # Home Assistant's scale_rgbx: int(channel * brightness / 255), truncated, not rounded.
    return tuple(int(channel * brightness / 255) for channel in channels)


def _rgbx_payload(template: CompiledTemplate | None, mode: str, values: tuple[int, ...]) -> str:
    text = ",".join(str(v) for v in values)
    return _render_command(template, text, dict(zip(_TEMPLATE_CHANNELS[mode], values, strict=True)))


def _kept_white(memory: dict[str, Any], mode: str) -> tuple[float, ...]:
    """The white channel(s) of an RGBW(W) light as last reported (0 when it never said)."""
    last = memory.get(mode)
    extra = len(_TEMPLATE_CHANNELS[mode]) - 3
    return tuple(last[3:]) if last is not None and len(last) == extra + 3 else (0,) * extra


class _PartlyDecoded(CodecError):
    """A message of which some values were understood and one part was not: the values are applied and the
    part is reported (a JSON light whose state is fine but whose colour_mode is not one it announced)."""

    def __init__(self, triples: list[UpdateTriple], why: str) -> None:
        super().__init__(why)
        self.triples = triples


def _compile_default_light(b: _Build) -> None:
    cfg = b.config
    memory = b.memory
    value_template = "state_value_template" if "state_value_template" in cfg else "value_template"
    # A light whose on/off template is beyond Hearth's subset (Shellies Discovery's `{{value.lower()}}`) keeps
    # its commands, brightness and colour; the on/off state is left out and said so.
    _on_off(b, value_template=value_template, optional=True)
    scale = _number(cfg.get("brightness_scale", 255))
    if scale <= 0:
        raise _bad(f"brightness_scale {scale:g} must be positive")
    level_spec = _attr_spec("level", "percent")

    def decode_level(value: Any) -> list[UpdateTriple]:
        if _is_unknown(value):
            return [("level", "percent", None)]
        raw = _number(value)
        percent = round(raw * 100 / scale, 1)
        problem = level_spec.check(percent)
        if problem is not None:
            raise _bad(f"brightness {raw:g} of scale {scale:g}: {problem}")
        memory["brightness"] = round(percent * 255 / 100)
        return [("level", "percent", percent)]

    level_attrs: list[str] = []
    if _topic(cfg, "brightness_state_topic"):
        b.state("brightness_state_topic", "brightness_value_template", decode_level)
        level_attrs.append("percent")
    bri_template = _command_template(cfg, "brightness_command_template")
    has_bri_cmd = b.command("level", "set", "brightness_command_topic", lambda args: _render_command(
        bri_template, round(_percent_arg(args) * scale / 100)))
    level_cmds = ["set"] if has_bri_cmd else []

    kelvin_mode = cfg.get("color_temp_kelvin") is True
    limits = _kelvin_range(cfg, kelvin_mode)
    attrs: list[str] = []
    if _topic(cfg, "color_temp_state_topic"):
        b.state("color_temp_state_topic", "color_temp_value_template", _color_temp_decoder(kelvin_mode))
        attrs.append("kelvin")
    ct_template = _command_template(cfg, "color_temp_command_template")
    cmds = ["set"] if b.command("color_temperature", "set", "color_temp_command_topic", lambda args: _render_command(
        ct_template, _kelvin_to_device(kelvin_mode, args, limits))) else []
    if attrs or cmds:
        _add_kelvin_support(b, attrs, cmds, limits)

    # Colour: each mode is optional. A template beyond Hearth's subset (Tasmota's legacy
    # `value_json.Color.split(',')`) leaves that mode out, said so; the light keeps the rest.
    color_attrs: list[str] = []
    color_cmds: list[str] = []
    if _topic(cfg, "hs_state_topic") and b.state("hs_state_topic", "hs_value_template", _decode_hs_text,
                                                 optional=True):
        color_attrs += ["hue", "saturation"]
    if _topic(cfg, "xy_state_topic") and b.state("xy_state_topic", "xy_value_template", _decode_xy_text,
                                                 optional=True):
        color_attrs += ["x", "y"]
    # Without a brightness state topic, an RGB(W)(W) light's brightness is its brightest channel (HA's
    # schema_basic does the same: brightness = max of the channels, colour normalised to full value).
    derive_level = not _topic(cfg, "brightness_state_topic")
    for mode in RGBX_MODES:
        if _topic(cfg, f"{mode}_state_topic") and b.state(
                f"{mode}_state_topic", f"{mode}_value_template", _rgbx_decoder(mode, memory, derive_level),
                optional=True):
            color_attrs += ["hue", "saturation"]
            if derive_level and "percent" not in level_attrs:
                level_attrs.append("percent")

    if _topic(cfg, "hs_command_topic"):
        hs_usable, hs_template = b.optional_template("hs_command_template", ("hue", "sat"))
        if hs_usable and b.command("color", "set", "hs_command_topic",
                                   lambda args: _hs_command(hs_template, args)):
            color_cmds.append("set")
    if _topic(cfg, "xy_command_topic"):
        xy_usable, xy_template = b.optional_template("xy_command_template", ("x", "y"))
        if xy_usable and b.command("color", "set_xy", "xy_command_topic",
                                   lambda args: _xy_command(xy_template, args)):
            color_cmds.append("set_xy")
    for mode in RGBX_MODES:
        if _topic(cfg, f"{mode}_command_topic") is None:
            continue
        usable, template = b.optional_template(f"{mode}_command_template", _TEMPLATE_CHANNELS[mode])
        if not usable:
            continue
        # hs first, then rgb, rgbw, rgbww: the order in which Home Assistant picks the mode for a colour.
        if "set" not in color_cmds and b.command("color", "set", f"{mode}_command_topic",
                                                  _rgbx_color_command(mode, template, memory, has_bri_cmd)):
            color_cmds.append("set")
        # No brightness topic: the brightness is sent as the colour scaled (HA: "legacy mode").
        if not level_cmds and b.command("level", "set", f"{mode}_command_topic",
                                        _rgbx_level_command(mode, template, memory)):
            level_cmds.append("set")
    if level_attrs or level_cmds:
        _merge_support(b.support, "level", level_attrs, level_cmds)
    if color_attrs or color_cmds:
        _merge_support(b.support, "color", dict.fromkeys(color_attrs), color_cmds)


def _hs_command(template: CompiledTemplate | None, args: dict[str, Any]) -> str:
    hue, saturation = _hs_args(args)
    return _render_command(template, f"{hue:g},{saturation:g}", {"hue": hue, "sat": saturation})


def _xy_command(template: CompiledTemplate | None, args: dict[str, Any]) -> str:
    x, y = _xy_args(args)
    return _render_command(template, f"{x:g},{y:g}", {"x": x, "y": y})


def _rgbx_decoder(mode: str, memory: dict[str, Any], derive_level: bool) -> StateDecode:
    def decode(value: Any) -> list[UpdateTriple]:
        channels = _channels(value, mode)
        if channels is None:
            return [("color", "hue", None), ("color", "saturation", None)]
        if not derive_level:
            memory[mode] = channels
            return _colour_updates(channels)
        brightness = max(channels)
        if brightness == 0:
            return []  # black: neither a colour nor a brightness to tell (HA ignores it too)
        memory["brightness"] = brightness
        memory[mode] = tuple(min(round(c * 255 / brightness), 255) for c in channels)
        return [("level", "percent", round(brightness * 100 / 255, 1)), *_colour_updates(channels)]
    return decode


def _rgbx_color_command(mode: str, template: CompiledTemplate | None, memory: dict[str, Any],
                        has_bri_cmd: bool) -> Callable[[dict[str, Any]], str]:
    def encode(args: dict[str, Any]) -> str:
        hue, saturation = _hs_args(args)
        full = (*hs_to_rgb(hue, saturation), *_kept_white(memory, mode))
        # With a brightness topic the colour goes at full value and brightness apart; without one the colour
        # carries the brightness the light has (HA's scale_rgbx).
        brightness = 255 if has_bri_cmd else (memory.get("brightness") or 255)
        return _rgbx_payload(template, mode, _scaled(full, brightness))
    return encode


def _rgbx_level_command(mode: str, template: CompiledTemplate | None,
                        memory: dict[str, Any]) -> Callable[[dict[str, Any]], str]:
    def encode(args: dict[str, Any]) -> str:
        brightness = round(_percent_arg(args) * 255 / 100)
        colour = memory.get(mode) or (255,) * len(_TEMPLATE_CHANNELS[mode])
        return _rgbx_payload(template, mode, _scaled(colour, brightness))
    return encode


def _add_kelvin_support(b: _Build, attrs: list[str], cmds: list[str], limits: tuple[int, int] | None) -> None:
    if limits is not None:
        b.initial += [("color_temperature", "min_kelvin", limits[0]), ("color_temperature", "max_kelvin", limits[1])]
        attrs = [*attrs, "min_kelvin", "max_kelvin"]
    _merge_support(b.support, "color_temperature", attrs, cmds, {"kelvin": limits} if limits else None)


def _decode_hs_text(value: Any) -> list[UpdateTriple]:
    if _is_unknown(value):
        return [("color", "hue", None), ("color", "saturation", None)]
    parts = value if isinstance(value, list) else to_text(value).split(",")
    if len(parts) != 2:
        raise _bad(f"hs colour must be 'hue,saturation', got {_short(value)}")
    return _hs_updates(_number(parts[0]), _number(parts[1]))


def _hs_updates(hue: float, saturation: float) -> list[UpdateTriple]:
    if not 0 <= hue <= 360 or not 0 <= saturation <= 100:
        raise _bad(f"hue {hue:g} / saturation {saturation:g} out of range")
    return [("color", "hue", hue), ("color", "saturation", saturation)]


_COLOR_MODES_WITH_BRIGHTNESS = frozenset({"brightness", "color_temp", "hs", "xy", "rgb", "rgbw", "rgbww", "white"})
_KNOWN_COLOR_MODES = _COLOR_MODES_WITH_BRIGHTNESS | {"onoff"}


def _compile_json_light(b: _Build) -> None:
    """HA's JSON schema. ``supported_color_modes`` (or the retired flags ``color_temp``/``hs``/``xy``/``rgb``
    that older ESPHome and other firmwares still publish) say what the light has; a state's ``color_mode``
    says which part of ``color`` counts, as in Home Assistant; a state without one is read by the keys its
    colour has (the retired handling)."""
    cfg = b.config
    memory = b.memory
    modes = cfg.get("supported_color_modes")
    modes = {m for m in modes if isinstance(m, str)} if isinstance(modes, list) else set()
    legacy_rgb = cfg.get("rgb") is True
    has_brightness = cfg.get("brightness") is True or bool(modes & _COLOR_MODES_WITH_BRIGHTNESS) or legacy_rgb
    has_ct = cfg.get("color_temp") is True or "color_temp" in modes
    has_hs = cfg.get("hs") is True or "hs" in modes
    has_xy = cfg.get("xy") is True or "xy" in modes
    rgbx_modes = [m for m in RGBX_MODES if m in modes or (m == "rgb" and legacy_rgb)]
    scale = _number(cfg.get("brightness_scale", 255))
    if scale <= 0:
        raise _bad(f"brightness_scale {scale:g} must be positive")
    kelvin_mode = cfg.get("color_temp_kelvin") is True
    limits = _kelvin_range(cfg, kelvin_mode) if has_ct else None
    ct_decode = _color_temp_decoder(kelvin_mode)

    def json_channels(color: dict[str, Any], mode: str) -> tuple[float, ...]:
        keys = _JSON_CHANNELS[mode]
        missing = [k for k in keys if k not in color]
        if missing:
            raise _bad(f"{mode} colour without {', '.join(missing)}: {_short(color)}")
        values = tuple(_number(color[k]) for k in keys)
        if any(not 0 <= v <= 255 for v in values):
            raise _bad(f"{mode} colour {_short(color)} is outside 0..255")
        memory[mode] = values
        return values

    def decode_colour(state: dict[str, Any]) -> list[UpdateTriple]:
        mode = state.get("color_mode")
        color = state.get("color")
        if mode is None or mode not in _KNOWN_COLOR_MODES:
            # No colour mode (the retired handling), or one Home Assistant does not know (ESPHome's "cwww" and
            # "rgbct", esphome/issues#2388): read by the keys the colour has, not an error on every message.
            if not isinstance(color, dict):
                return []
            out: list[UpdateTriple] = []
            if has_hs and "h" in color and "s" in color:
                out += _hs_updates(_number(color["h"]), _number(color["s"]))
            elif rgbx_modes and all(k in color for k in "rgb"):
                wide = next((m for m in reversed(rgbx_modes) if all(k in color for k in _JSON_CHANNELS[m])), "rgb")
                out += _colour_updates(json_channels(color, wide))
            if has_xy and "x" in color and "y" in color:
                out += _xy_updates(_number(color["x"]), _number(color["y"]))
            return out
        if modes and mode not in modes:
            raise _bad(f"color_mode {_short(mode)} is not one this light announced "
                       f"({', '.join(sorted(modes)) or 'none'})")
        if mode not in ("hs", "xy", *RGBX_MODES):
            return []
        if not isinstance(color, dict):
            raise _bad(f"color_mode {mode} without a color object")
        if mode == "hs":
            if "h" not in color or "s" not in color:
                raise _bad(f"hs colour without h and s: {_short(color)}")
            return _hs_updates(_number(color["h"]), _number(color["s"]))
        if mode == "xy":
            if "x" not in color or "y" not in color:
                raise _bad(f"xy colour without x and y: {_short(color)}")
            return _xy_updates(_number(color["x"]), _number(color["y"]))
        return _colour_updates(json_channels(color, mode))

    def decode(state: Any) -> list[UpdateTriple]:
        if not isinstance(state, dict):
            raise _bad(f"JSON light state must be an object, got {_short(state)}")
        out: list[UpdateTriple] = []
        word = state.get("state")
        if word is not None:
            if word not in ("ON", "OFF"):
                raise _bad(f"JSON light state {_short(word)} is not ON/OFF")
            out.append(("on_off", "on", word == "ON"))
        if has_brightness and "brightness" in state:
            raw = state["brightness"]
            if raw is None:
                out.append(("level", "percent", None))
            else:
                percent = round(_number(raw) * 100 / scale, 1)
                if not 0 <= percent <= 100:
                    raise _PartlyDecoded(out, f"brightness {raw!r} is outside 0..{scale:g}")
                out.append(("level", "percent", percent))
        if has_ct and "color_temp" in state and state.get("color_mode", "color_temp") == "color_temp":
            try:
                out += ct_decode(state["color_temp"])
            except CodecError as err:
                raise _PartlyDecoded(out, str(err)) from None
        try:
            out += decode_colour(state)
        except CodecError as err:
            raise _PartlyDecoded(out, str(err)) from None
        return out

    state_attrs = _topic(cfg, "state_topic") is not None
    if state_attrs:
        b.state("state_topic", None, decode, json_payload=True)

    def send(body: dict[str, Any]) -> str:
        return orjson.dumps(body).decode()

    def level(args: dict[str, Any]) -> str:
        percent = _percent_arg(args)
        body: dict[str, Any] = {"state": "OFF"} if percent == 0 else {"state": "ON",
                                                                      "brightness": round(percent * scale / 100)}
        if args.get("transition_s") is not None:
            body["transition"] = _number(args["transition_s"])
        return send(body)

    on_cmds = [c for c, word in (("on", "ON"), ("off", "OFF"))
               if b.command("on_off", c, "command_topic", lambda args, w=word: send({"state": w}))]
    _merge_support(b.support, "on_off", ["on"] if state_attrs else [], on_cmds)
    if has_brightness:
        cmds = ["set"] if b.command("level", "set", "command_topic", level) else []
        _merge_support(b.support, "level", ["percent"] if state_attrs else [], cmds)
    if has_ct:
        key = "color_temp"
        cmds = ["set"] if b.command("color_temperature", "set", "command_topic", lambda args: send(
            {"state": "ON", key: _kelvin_to_device(kelvin_mode, args, limits)})) else []
        _add_kelvin_support(b, ["kelvin"] if state_attrs else [], cmds, limits)
    set_mode = "hs" if has_hs else (rgbx_modes[0] if rgbx_modes else None)

    def set_colour(args: dict[str, Any]) -> str:
        hue, saturation = _hs_args(args)
        if set_mode == "hs":
            return send({"state": "ON", "color": {"h": hue, "s": saturation}})
        mode = set_mode or "rgb"
        # At full value, as HA sends an rgb(w)(w) colour (its _scale_rgbxx), the white channel(s) as they were.
        values = (*hs_to_rgb(hue, saturation), *(round(w) for w in _kept_white(memory, mode)))
        return send({"state": "ON", "color": dict(zip(_JSON_CHANNELS[mode], values, strict=True))})

    if set_mode is not None or has_xy:
        attrs: list[str] = []
        cmds = []
        if set_mode is not None:
            attrs += ["hue", "saturation"]
            if b.command("color", "set", "command_topic", set_colour):
                cmds.append("set")
        if has_xy:
            attrs += ["x", "y"]
            if b.command("color", "set_xy", "command_topic", lambda args: send(
                    {"state": "ON", "color": dict(zip(("x", "y"), _xy_args(args), strict=True))})):
                cmds.append("set_xy")
        _merge_support(b.support, "color", attrs if state_attrs else [], cmds)


def _compile_template_light(b: _Build) -> None:
    cfg = b.config
    state_template = _template(cfg, "state_template")
    if _topic(cfg, "state_topic") is not None and state_template is not None:
        b.bindings.append(StateBinding(cfg["state_topic"], state_template, _bool_decoder("on_off", "on", "on", "off")))
        _merge_support(b.support, "on_off", ["on"])
    cmds = []
    for cmd, key in (("on", "command_on_template"), ("off", "command_off_template")):
        template = _template(cfg, key)
        if template is not None and b.command("on_off", cmd, "command_topic",
                                              lambda args, t=template: _render_command(t, None)):
            cmds.append(cmd)
    if cmds:
        _merge_support(b.support, "on_off", [], cmds)


def _scaled_percent_decoder(cap: str, attr: str, low: float, high: float) -> StateDecode:
    spec = _attr_spec(cap, attr)

    def decode(value: Any) -> list[UpdateTriple]:
        if _is_unknown(value):
            return [(cap, attr, None)]
        raw = _number(value)
        percent = round((raw - low) * 100 / (high - low), 1)
        problem = spec.check(percent)
        if problem is not None:
            raise _bad(f"{cap}.{attr}: {raw:g} on a {low:g}..{high:g} scale: {problem}")
        return [(cap, attr, percent)]
    return decode


def _compile_cover(b: _Build) -> None:
    cfg = b.config
    words = {
        _payload_word(cfg, "state_opening", "opening"): "opening",
        _payload_word(cfg, "state_closing", "closing"): "closing",
        _payload_word(cfg, "state_stopped", "stopped"): "stopped",
        _payload_word(cfg, "state_open", "open"): "stopped",
        _payload_word(cfg, "state_closed", "closed"): "stopped",
    }

    # Without a position topic the open/closed words are all Hearth learns of where the cover is (a garage
    # door): they give the position, 100 (open) or 0 (closed), as capabilities.md defines it.
    positions = {} if _topic(cfg, "position_topic") else {
        _payload_word(cfg, "state_open", "open"): 100, _payload_word(cfg, "state_closed", "closed"): 0}

    def decode_state(value: Any) -> list[UpdateTriple]:
        text = to_text(value)
        motion = words.get(text)
        if motion is None:
            if _is_unknown(value):
                return [("cover", "motion", None)]
            raise _bad(f"cover state {_short(text)} is not one of {', '.join(w for w in words if w)}")
        position = positions.get(text)
        if position is not None:
            return [("cover", "motion", motion), ("cover", "position_percent", position)]
        return [("cover", "motion", motion)]

    attrs: list[str] = []
    if _topic(cfg, "state_topic"):
        b.state("state_topic", "value_template", decode_state)
        attrs.append("motion")
        if positions:
            attrs.append("position_percent")
    pos_open, pos_closed = _number(cfg.get("position_open", 100)), _number(cfg.get("position_closed", 0))
    if pos_open == pos_closed:
        raise _bad("position_open equals position_closed")
    if _topic(cfg, "position_topic"):
        b.state("position_topic", "position_template",
                _scaled_percent_decoder("cover", "position_percent", pos_closed, pos_open))
        attrs.append("position_percent")
    tilt_min, tilt_max = _number(cfg.get("tilt_min", 0)), _number(cfg.get("tilt_max", 100))
    if _topic(cfg, "tilt_status_topic") and tilt_min != tilt_max:
        b.state("tilt_status_topic", "tilt_status_template",
                _scaled_percent_decoder("cover", "tilt_percent", tilt_min, tilt_max))
        attrs.append("tilt_percent")
    cmds: list[str] = []
    cmd_template = _command_template(cfg, "command_template")
    for cmd, key, default in (("open", "payload_open", "OPEN"), ("close", "payload_close", "CLOSE"),
                              ("stop", "payload_stop", "STOP")):
        word = _payload_word(cfg, key, default)
        if word is not None and b.command("cover", cmd, "command_topic",
                                          lambda args, w=word: _render_command(cmd_template, w)):
            cmds.append(cmd)
    pos_template = _command_template(cfg, "set_position_template")
    if b.command("cover", "set_position", "set_position_topic", lambda args: _render_command(
            pos_template, round(pos_closed + _percent_arg(args) * (pos_open - pos_closed) / 100))):
        cmds.append("set_position")
    tilt_template = _command_template(cfg, "tilt_command_template")
    if b.command("cover", "set_tilt", "tilt_command_topic", lambda args: _render_command(
            tilt_template, round(tilt_min + _percent_arg(args) * (tilt_max - tilt_min) / 100))):
        cmds.append("set_tilt")
    if not attrs and not cmds:
        raise _bad("cover with no state, position or command topic")
    _merge_support(b.support, "cover", attrs, cmds)


def _compile_valve(b: _Build) -> None:
    """HA's MQTT valve (an irrigation or heating valve): open/closed words, or with ``reports_position`` a
    position on position_closed..position_open; commands on command_topic (the position as a number)."""
    cfg = b.config
    reports_position = cfg.get("reports_position") is True
    pos_open, pos_closed = _number(cfg.get("position_open", 100)), _number(cfg.get("position_closed", 0))
    if pos_open == pos_closed:
        raise _bad("position_open equals position_closed")
    words = {_payload_word(cfg, "state_open", "open"): True, _payload_word(cfg, "state_closed", "closed"): False}
    moving = {_payload_word(cfg, "state_opening", "opening"), _payload_word(cfg, "state_closing", "closing")}
    scaled = _scaled_percent_decoder("valve", "position_percent", pos_closed, pos_open)

    def decode(value: Any) -> list[UpdateTriple]:
        if isinstance(value, dict):  # {"state": "opening", "position": 10}: HA's JSON state
            out: list[UpdateTriple] = []
            if "position" in value and reports_position:
                out += decode(value["position"])
            if "state" in value and not out:
                out += decode(value["state"])
            return out
        text = to_text(value).strip()
        if text in words:
            return [("valve", "open", words[text]), ("valve", "position_percent", 100 if words[text] else 0)]
        if text in moving:
            return []  # on the way: the final state follows
        if _is_unknown(value):
            return [("valve", "open", None)]
        if reports_position:
            [(_, _, percent)] = scaled(value)
            return [("valve", "position_percent", percent), ("valve", "open", percent is not None and percent > 0)]
        raise _bad(f"valve state {_short(text)} is not one of {', '.join(w for w in (*words, *moving) if w)}")

    attrs: list[str] = []
    if _topic(cfg, "state_topic"):
        b.state("state_topic", "value_template", decode)
        attrs += ["open", "position_percent"]
    cmds: list[str] = []
    template = _command_template(cfg, "command_template")
    for cmd, key, default in (("open", "payload_open", "OPEN"), ("close", "payload_close", "CLOSE")):
        word = _payload_word(cfg, key, None if reports_position else default)
        if reports_position and word is None:
            word = to_text(round(pos_open if cmd == "open" else pos_closed))
        if b.command("valve", cmd, "command_topic", lambda args, w=word: _render_command(template, w)):
            cmds.append(cmd)
    if reports_position and b.command("valve", "set_position", "command_topic", lambda args: _render_command(
            template, round(pos_closed + _percent_arg(args) * (pos_open - pos_closed) / 100))):
        cmds.append("set_position")
    if not attrs and not cmds:
        raise _bad("valve with no state or command topic")
    _merge_support(b.support, "valve", attrs, cmds)


def _compile_climate(b: _Build) -> None:
    cfg = b.config
    fahrenheit = str(cfg.get("temperature_unit", "C")).upper().lstrip("°") == "F"
    to_c = (lambda v: round(fahrenheit_to_celsius(v), 2)) if fahrenheit else (lambda v: v)
    attrs: list[str] = []
    cmds: list[str] = []
    # Each part of a thermostat is optional: one whose template is beyond Hearth's subset (Z-Wave JS UI's
    # mode lookups, an {% if %}) is left out and reported, the others still work.
    if _topic(cfg, "current_temperature_topic") and b.state(
            "current_temperature_topic", "current_temperature_template",
            _numeric_decoder("thermostat", "current_celsius", to_c), optional=True):
        attrs.append("current_celsius")
    if _topic(cfg, "temperature_state_topic") and b.state(
            "temperature_state_topic", "temperature_state_template",
            _numeric_decoder("thermostat", "target_celsius", to_c), optional=True):
        attrs.append("target_celsius")
    temp_usable, temp_template = b.optional_template("temperature_command_template")

    def set_target(args: dict[str, Any]) -> str:
        celsius = _number(args.get("celsius"))
        value = celsius * 9 / 5 + 32 if fahrenheit else celsius
        return _render_command(temp_template, round(value, 1))

    if temp_usable and b.command("thermostat", "set_target", "temperature_command_topic", set_target):
        cmds.append("set_target")
    modes = cfg.get("modes", ["auto", "off", "cool", "heat", "dry", "fan_only"])
    modes = [m for m in modes if isinstance(m, str)] if isinstance(modes, list) else []

    def decode_mode(value: Any) -> list[UpdateTriple]:
        text = to_text(value).strip()
        mode = _HA_MODE_TO_OURS.get(text, text)
        if mode not in THERMOSTAT_MODES:
            if _is_unknown(value):
                return [("thermostat", "mode", None)]
            raise _bad(f"climate mode {_short(text)} is not one of {', '.join(THERMOSTAT_MODES)}")
        return [("thermostat", "mode", mode)]

    if _topic(cfg, "mode_state_topic") and b.state("mode_state_topic", "mode_state_template", decode_mode,
                                                   optional=True):
        attrs.append("mode")
    mode_usable, mode_template = b.optional_template("mode_command_template")

    def set_mode(args: dict[str, Any]) -> str:
        mode = args.get("mode")
        candidates = [mode] + [ha for ha, ours in _HA_MODE_TO_OURS.items() if ours == mode]
        for candidate in candidates:
            if candidate in modes:
                return _render_command(mode_template, candidate)
        raise _bad(f"mode {mode!r} is not one this climate device supports ({', '.join(modes)})")

    if modes and mode_usable and b.command("thermostat", "set_mode", "mode_command_topic", set_mode):
        cmds.append("set_mode")

    def decode_action(value: Any) -> list[UpdateTriple]:
        text = to_text(value).strip()
        running = _HA_ACTION.get(text)
        if running is None:
            if _is_unknown(value):
                return [("thermostat", "running", None)]
            raise _bad(f"climate action {_short(text)} is not known")
        return [("thermostat", "running", running)]

    if _topic(cfg, "action_topic") and b.state("action_topic", "action_template", decode_action, optional=True):
        attrs.append("running")
    limits: dict[str, tuple[float | None, float | None]] = {}
    if "min_temp" in cfg or "max_temp" in cfg:
        try:
            low = to_c(_number(cfg.get("min_temp", 7 if not fahrenheit else 44.6)))
            high = to_c(_number(cfg.get("max_temp", 35 if not fahrenheit else 95)))
            limits["celsius"] = (low, high)
        except CodecError:
            pass
    if not attrs and not cmds:
        raise _bad("climate with no topic Hearth can use" + (f" ({'; '.join(b.left_out)})" if b.left_out else ""))
    _merge_support(b.support, "thermostat", attrs, cmds, limits)


def _compile_lock(b: _Build) -> None:
    cfg = b.config
    words = {
        _payload_word(cfg, "state_locked", "LOCKED"): "locked",
        _payload_word(cfg, "state_unlocked", "UNLOCKED"): "unlocked",
        _payload_word(cfg, "state_jammed", "JAMMED"): "jammed",
    }
    transient = {_payload_word(cfg, "state_locking", "LOCKING"), _payload_word(cfg, "state_unlocking", "UNLOCKING"),
                 _payload_word(cfg, "state_opening", "OPENING"), _payload_word(cfg, "state_open", "OPEN")}

    def decode(value: Any) -> list[UpdateTriple]:
        text = to_text(value)
        state = words.get(text)
        if state is not None:
            return [("lock", "state", state)]
        if text in transient:
            return []  # on the way: the final state follows
        if _is_unknown(value):
            return [("lock", "state", "unknown")]
        raise _bad(f"lock state {_short(text)} is not one of {', '.join(w for w in words if w)}")

    attrs = []
    if _topic(cfg, "state_topic"):
        b.state("state_topic", "value_template", decode)
        attrs.append("state")
    template = _command_template(cfg, "command_template")
    cmds = []
    for cmd, key, default in (("lock", "payload_lock", "LOCK"), ("unlock", "payload_unlock", "UNLOCK")):
        word = _payload_word(cfg, key, default)
        if b.command("lock", cmd, "command_topic", lambda args, w=word: _render_command(template, w)):
            cmds.append(cmd)
    if not attrs and not cmds:
        raise _bad("lock with neither state_topic nor command_topic")
    _merge_support(b.support, "lock", attrs, cmds)


def _compile_fan(b: _Build) -> None:
    cfg = b.config
    attrs: list[str] = []
    cmds: list[str] = []
    payload_on = _payload_word(cfg, "payload_on", "ON")
    payload_off = _payload_word(cfg, "payload_off", "OFF")
    if _topic(cfg, "state_topic"):
        key = "state_value_template" if "state_value_template" in cfg else "value_template"
        b.state("state_topic", key, _bool_decoder("fan", "on", payload_on, payload_off))
        attrs.append("on")
    low, high = _number(cfg.get("speed_range_min", 1)), _number(cfg.get("speed_range_max", 100))
    if high < low or low < 0:
        raise _bad(f"speed range {low:g}..{high:g} is not usable")
    steps = high - low + 1
    spec = _attr_spec("fan", "speed_percent")

    def decode_pct(value: Any) -> list[UpdateTriple]:
        if _is_unknown(value):
            return [("fan", "speed_percent", None)]
        raw = _number(value)
        percent = 0.0 if raw == 0 else round((raw - low + 1) * 100 / steps, 1)
        problem = spec.check(percent)
        if problem is not None:
            raise _bad(f"fan percentage {raw:g} on {low:g}..{high:g}: {problem}")
        return [("fan", "speed_percent", percent)]

    if _topic(cfg, "percentage_state_topic"):
        b.state("percentage_state_topic", "percentage_value_template", decode_pct)
        attrs.append("speed_percent")
    pct_template = _command_template(cfg, "percentage_command_template")
    has_pct_cmd = _topic(cfg, "percentage_command_topic") is not None
    off_topic = _topic(cfg, "command_topic")

    def set_speed(args: dict[str, Any]) -> str:
        percent = _percent_arg(args)
        return _render_command(pct_template, 0 if percent == 0 else int(math.ceil(percent * steps / 100) + low - 1))

    def on_or_off(args: dict[str, Any]) -> str:
        # No speeds: set_speed(0) is off and anything else on, on the plain command topic.
        return to_text(payload_off if _percent_arg(args) == 0 else payload_on)

    if (has_pct_cmd and b.command("fan", "set_speed", "percentage_command_topic", set_speed)) or (
            off_topic is not None and b.command("fan", "set_speed", "command_topic", on_or_off)):
        cmds.append("set_speed")
    presets = cfg.get("preset_modes")
    presets = [p for p in presets if isinstance(p, str)] if isinstance(presets, list) else []
    if _topic(cfg, "preset_mode_state_topic"):
        def decode_preset(value: Any) -> list[UpdateTriple]:
            text = to_text(value)
            return [("fan", "preset", None if _is_unknown(value) else text)]
        b.state("preset_mode_state_topic", "preset_mode_value_template", decode_preset)
        attrs.append("preset")
    preset_template = _command_template(cfg, "preset_mode_command_template")

    def set_preset(args: dict[str, Any]) -> str:
        preset = args.get("preset")
        if presets and preset not in presets:
            raise _bad(f"preset {preset!r} is not one of {', '.join(presets)}")
        return _render_command(preset_template, preset)

    if b.command("fan", "set_preset", "preset_mode_command_topic", set_preset):
        cmds.append("set_preset")
    if not attrs and not cmds:
        raise _bad("fan with no topic Hearth can use")
    _merge_support(b.support, "fan", attrs, cmds)


def _compile_button(b: _Build) -> None:
    cfg = b.config
    if cfg.get("device_class") != "identify":
        raise _bad(f"button {cfg.get('device_class') or '(no device_class)'!r}: only identify buttons have a "
                   "place in the capability model")
    template = _command_template(cfg, "command_template")
    word = _payload_word(cfg, "payload_press", "PRESS")
    if not b.command("identify", "identify", "command_topic", lambda args: _render_command(template, word)):
        raise _bad("identify button without command_topic")
    _merge_support(b.support, "identify", [], ["identify"])


def _press_event(name: str, button: int | None) -> list[UpdateTriple]:
    kind = press_kind(name)
    data: dict[str, Any] = {"action": name}
    if button is not None:
        data["button"] = button
    if kind is not None:
        data["kind"] = kind
    return [("button", "pressed", data)]


def _button_number(text: Any) -> int | None:
    match = re.search(r"(\d+)", str(text or ""))
    return int(match.group(1)) if match else None


def _compile_event(b: _Build) -> None:
    cfg = b.config
    types = cfg.get("event_types")
    types = [t for t in types if isinstance(t, str)] if isinstance(types, list) else []
    button = _button_number(b.label)

    def decode(value: Any) -> list[UpdateTriple]:
        data = value
        if isinstance(value, str):
            if not value.strip():
                return []  # a template that renders nothing: not this entity's event
            try:
                data = orjson.loads(value)
            except orjson.JSONDecodeError:
                raise _bad(f"event payload is not JSON: {_short(value)}") from None
        if not isinstance(data, dict) or not isinstance(data.get("event_type"), str):
            raise _bad(f"event payload has no event_type: {_short(data)}")
        event_type = data["event_type"]
        if types and event_type not in types:
            raise _bad(f"event_type {event_type!r} is not one of {', '.join(types)}")
        return _press_event(event_type, button)

    if _topic(cfg, "state_topic") is None:
        raise _bad("event without state_topic")
    template = _template(cfg, "value_template")
    b.bindings.append(StateBinding(cfg["state_topic"], template, decode, json_payload=template is None, events=True))
    _merge_support(b.support, "button", ["last_event", "button"])


def _compile_trigger(b: _Build) -> None:
    cfg = b.config
    if cfg.get("automation_type", "trigger") != "trigger":
        raise _bad(f"device_automation {cfg.get('automation_type')!r} is not a trigger")
    kind_name = str(cfg.get("type", "button_short_press"))
    subtype = cfg.get("subtype")
    button = _button_number(subtype)
    payload = cfg.get("payload")
    if _topic(cfg, "topic") is None:
        raise _bad("device trigger without topic")
    template = _template(cfg, "value_template")
    b.bindings.append(StateBinding(cfg["topic"], template, lambda _v: _press_event(kind_name, button), events=True,
                                   match_payload=None if payload is None else to_text(payload)))
    _merge_support(b.support, "button", ["last_event", "button"])
    b.events_only = True


COMPILERS: dict[str, Callable[[_Build], None]] = {
    "sensor": _compile_sensor,
    "binary_sensor": _compile_binary_sensor,
    "switch": _compile_switch,
    "light": _compile_light,
    "cover": _compile_cover,
    "valve": _compile_valve,
    "climate": _compile_climate,
    "lock": _compile_lock,
    "fan": _compile_fan,
    "button": _compile_button,
    "event": _compile_event,
    "device_automation": _compile_trigger,
}


def _availability(cfg: dict[str, Any]) -> tuple[tuple[AvailabilityTopic, ...], str, list[str]]:
    topics: list[AvailabilityTopic] = []
    notes: list[str] = []
    entries: list[dict[str, Any]] = []
    if isinstance(cfg.get("availability_topic"), str):
        entries.append({"topic": cfg["availability_topic"], "payload_available": cfg.get("payload_available"),
                        "payload_not_available": cfg.get("payload_not_available"),
                        "value_template": cfg.get("availability_template")})
    availability = cfg.get("availability")
    if availability is not None and not isinstance(availability, list):
        notes.append(f"'availability' must be a list of topics, not {type(availability).__name__}: left out")
        availability = []
    for entry in availability or []:
        if isinstance(entry, dict) and isinstance(entry.get("topic"), str):
            entries.append(entry)
    for entry in entries:
        topic = entry["topic"]
        if not topic or "+" in topic or "#" in topic:
            notes.append(f"availability topic {topic!r} is not usable")
            continue
        try:
            template = _template(entry, "value_template")
        except TemplateError as err:
            notes.append(f"availability on {topic!r} left out: {err}")
            continue
        topics.append(AvailabilityTopic(topic, to_text(entry.get("payload_available") or "online"),
                                        to_text(entry.get("payload_not_available") or "offline"), template))
    mode = cfg.get("availability_mode", "latest")
    return tuple(topics), mode if mode in ("all", "any", "latest") else "latest", notes


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9_-]+", "_", text.lower()).strip("_-")
    return slug[:48] or "entity"


def device_id_for(config: dict[str, Any], fallback: str) -> str:
    """``ha:<first identifier>``, ``ha:<first connection>``, or ``ha:<unique_id or fallback>``; lowercase."""
    device = config.get("device") if isinstance(config.get("device"), dict) else {}
    ids = _identifiers(device)
    if ids:
        return f"{SOURCE}:{ids[0].lower()}"
    cns = _connections(device)
    if cns:
        return f"{SOURCE}:{cns[0][1].lower()}"
    unique_id = config.get("unique_id")
    if isinstance(unique_id, (str, int)) and not isinstance(unique_id, bool) and str(unique_id).strip():
        return f"{SOURCE}:{str(unique_id).strip().lower()}"
    return f"{SOURCE}:{fallback.lower()}"


def _seconds(config: dict[str, Any], key: str) -> float | None:
    """A positive number of seconds from the config (0 or absent: none, as in Home Assistant)."""
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 30 * 86400:
        return None
    return float(value)


def _bind_json_attributes(b: _Build) -> None:
    """``json_attributes_topic`` (and its template) as an attributes binding. A topic or template Hearth cannot
    use is a note, never an error: the attributes are extras, the entity works without them."""
    if b.config.get("json_attributes_topic") in (None, ""):
        return
    try:
        topic = _state_topic(b.config, "json_attributes_topic")
        template = _template(b.config, "json_attributes_template")
    except (CodecError, TemplateError) as err:
        b.notes.append(f"json_attributes not used: {err}")
        return
    if topic is None:
        b.notes.append(f"json_attributes_topic {_short(b.config.get('json_attributes_topic'))} is not a topic")
        return
    b.bindings.append(StateBinding(topic, template, lambda _value: [], json_payload=template is None,
                                   attributes=True))


def compile_entity(platform: str, config: dict[str, Any], key: str, object_id: str
                   ) -> tuple[Entity, list[str], list[str]]:
    """One expanded, ``~``-substituted config into an :class:`Entity`. Raises CodecError (or TemplateError) when
    it has no use in the capability model; returns the optional parts that were left out (reported to the user)
    and notes (debug)."""
    compiler = COMPILERS.get(platform)
    if compiler is None:
        raise _bad(f"platform {platform!r} is not supported")
    name = _text(config.get("name"))
    unique_id = _text(config.get("unique_id"))
    label = " ".join(x for x in (name, object_id, unique_id) if x).lower()
    build = _Build(config, label)
    compiler(build)
    timing = {"expire_after": _seconds(config, "expire_after") if platform in ("sensor", "binary_sensor") else None,
              "off_delay": _seconds(config, "off_delay") if platform == "binary_sensor" else None}
    if any(timing.values()):
        build.bindings = [replace(binding, **timing) for binding in build.bindings]
    _bind_json_attributes(build)
    availability, mode, notes = _availability(config)
    notes = [*build.notes, *notes]
    device = config.get("device") if isinstance(config.get("device"), dict) else {}
    entity = Entity(
        key=key, platform=platform, object_id=object_id, unique_id=unique_id, name=name,
        device_id=device_id_for(config, key.replace("/", "_")), device=device, support=build.support,
        bindings=build.bindings, commands=build.commands, availability=availability, availability_mode=mode,
        initial=build.initial, events_only=build.events_only,
    )
    return entity, build.left_out, notes


# ---------------------------------------------------------------------------------------------- devices


@dataclass(slots=True)
class HaDevice:
    id: str
    entities: dict[str, Entity] = field(default_factory=dict)
    block: dict[str, Any] = field(default_factory=dict)  # merged device blocks of its entities
    avail_state: dict[AvailabilityTopic, bool] = field(default_factory=dict)
    latest: bool | None = None
    available: bool | None = None
    info: DeviceInfo | None = None

    def availability(self) -> tuple[tuple[AvailabilityTopic, ...], str]:
        topics: dict[AvailabilityTopic, None] = {}
        mode = "latest"
        for entity in self.entities.values():
            if entity.availability:
                if not topics:
                    mode = entity.availability_mode
                topics.update(dict.fromkeys(entity.availability))
        return tuple(topics), mode


def _component_names(device: HaDevice) -> None:
    """Assign each entity its component (the rule is in the module docstring)."""
    providers: dict[tuple[str, str], int] = {}
    for entity in device.entities.values():
        if entity.events_only:
            continue
        for key in _provided(entity):
            providers[key] = providers.get(key, 0) + 1
    ids = [i.lower() for i in _identifiers(device.block)]
    used: set[str] = {"main"}
    for key in sorted(device.entities):
        entity = device.entities[key]
        if entity.events_only or all(providers.get(k, 0) <= 1 for k in _provided(entity)):
            entity.component = "main"
            continue
        base = entity.object_id
        for ident in ids:
            if base.lower().startswith(ident) and len(base) > len(ident):
                base = base[len(ident):]
                break
        name = _slug(base)
        candidate, n = name, 2
        while candidate in used:
            candidate, n = f"{name}_{n}", n + 1
        used.add(candidate)
        entity.component = candidate


def _provided(entity: Entity) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for cap, support in entity.support.items():
        out |= {(cap, a) for a in support.attributes}
        out |= {(cap, "!" + c) for c in support.commands}
    return out


def _device_info(device: HaDevice) -> DeviceInfo:
    block = device.block
    components: dict[str, dict[str, CapabilitySupport]] = {}
    for entity in device.entities.values():
        caps = components.setdefault(entity.component, {})
        for cap, support in entity.support.items():
            _merge_support(caps, cap, support.attributes, support.commands, support.limits)
    first = next(iter(device.entities.values()), None)
    name = _text(block.get("name")) or (first.name if first else None) or device.id
    mac = next((value.lower() for kind, value in _connections(block) if kind == "mac"), None)
    via = block.get("via_device")
    model = _text(block.get("model")) or _text(block.get("model_id"))
    return DeviceInfo(
        id=device.id, name=name, source=SOURCE, components=components or {"main": {}},
        manufacturer=_text(block.get("manufacturer")), model=model, sw_version=_text(block.get("sw_version")),
        hw_version=_text(block.get("hw_version")), serial=_text(block.get("serial_number")), mac=mac,
        via=f"{SOURCE}:{str(via).strip().lower()}" if isinstance(via, (str, int)) and str(via).strip() else None,
        suggested_area=_text(block.get("suggested_area")),
    )


# ---------------------------------------------------------------------------------------------- decoding


@dataclass(slots=True)
class Decoded:
    """What one MQTT message means. The adapter applies it to its context in this order."""

    upserts: list[DeviceInfo] = field(default_factory=list)
    removals: list[str] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    events: list[DeviceEventUpdate] = field(default_factory=list)
    availability: list[tuple[str, bool | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # debug level: skipped native devices, left-out parts
    topics_changed: bool = False
    # (key, seconds, updates): apply the updates that many seconds from now unless the same key is armed again
    # first (expire_after, off_delay). The adapter owns the timers; the codec stays pure.
    timers: list[tuple[str, float, list[Update]]] = field(default_factory=list)


def _attribute_component(entity: Entity, present: dict[str, dict[str, CapabilitySupport]], cap: str) -> str | None:
    """Where an attribute reading goes: the entity's own component when it has the capability, else the one
    component of the device that has it; None when none or several do (two thermometers: which one?)."""
    if cap in present.get(entity.component, {}):
        return entity.component
    holders = [component for component, caps in present.items() if cap in caps]
    return holders[0] if len(holders) == 1 else None


def _attribute_value(cap: str, attr: str, convert: Callable[[float], float] | None, raw: Any) -> Any:
    """The reading as the capability model wants it, or None when it does not fit (wrong type, out of range)."""
    spec = _attr_spec(cap, attr)
    if spec.type == "bool":
        value: Any = raw if isinstance(raw, bool) else None
    elif spec.type in ("number", "integer"):
        try:
            value = _number(raw)
        except CodecError:
            return None
        value = convert(value) if convert is not None else value
    else:
        value = raw if isinstance(raw, str) else None
    return value if value is not None and spec.check(value) is None else None


def parse_json(payload: bytes | str) -> Any:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _bad(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD_BYTES // 1024} KiB limit")
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as err:
        raise _bad(f"payload is not JSON ({err.msg}): {_short(payload[:60])}") from None


def _decode_text(payload: bytes) -> str:
    return payload.decode("utf-8", "replace")


class HomeAssistantCodec:
    """Everything Home Assistant discovery configs on one broker said, decoded. Pure: holds only that."""

    def __init__(self, discovery_prefix: str = "homeassistant",
                 skip_native: Iterable[str] = DEFAULT_SKIP_NATIVE) -> None:
        self.prefix = discovery_prefix
        self._prefix_slash = discovery_prefix + "/"
        self.skip_native = frozenset(skip_native)
        self.devices: dict[str, HaDevice] = {}
        self.entities: dict[str, Entity] = {}
        self.skipped: dict[str, str] = {}  # discovery key -> why (native device, unusable config)
        self._device_configs: dict[str, set[str]] = {}  # device-config key -> its entity keys
        self._state_routes: dict[str, list[tuple[Entity, StateBinding]]] = {}
        self._wildcard_routes: set[str] = set()  # the keys of _state_routes that are filters with wildcards
        self._avail_routes: dict[str, list[tuple[str, AvailabilityTopic]]] = {}

    # -- what to subscribe to

    def topics(self) -> set[str]:
        """State and availability topics the configs name (those under ``<prefix>/#`` arrive anyway)."""
        wanted = set(self._state_routes) | set(self._avail_routes)
        return {t for t in wanted if not topic_matches(self._prefix_slash + "#", t)}

    def device(self, device_id: str) -> HaDevice | None:
        return self.devices.get(device_id)

    # -- decoding (the hot path is the first branch: a state topic)

    def decode(self, topic: str, payload: bytes, known: Callable[[str], bool] | None = None) -> Decoded:
        """``known(device_id)``: whether the gateway already has that (native) device."""
        out = Decoded()
        routes = self._state_routes.get(topic)
        if routes is None and self._wildcard_routes:
            routes = [route for pattern in self._wildcard_routes if topic_matches(pattern, topic)
                      for route in self._state_routes[pattern]] or None
        avail = self._avail_routes.get(topic)
        if routes is not None or avail is not None:
            if routes:
                self._decode_state(routes, payload, out)
            if avail:
                self._decode_availability(avail, payload, out)
            return out
        if topic.startswith(self._prefix_slash):
            self._decode_discovery(topic, payload, out, known or (lambda _id: False))
        return out

    def _decode_state(self, routes: list[tuple[Entity, StateBinding]], payload: bytes, out: Decoded) -> None:
        if len(payload) > MAX_PAYLOAD_BYTES:
            out.problems.append(f"{SOURCE}: state payload of {len(payload)} bytes is too large")
            return
        text: str | None = None
        parsed: Any = UNDEFINED
        parsed_done = False
        for entity, binding in routes:
            if text is None:
                text = _decode_text(payload)
            if (binding.json_payload or (binding.template is not None and binding.template.needs_json)) \
                    and not parsed_done:
                parsed_done = True
                try:
                    parsed = orjson.loads(payload) if payload else UNDEFINED
                except orjson.JSONDecodeError:
                    parsed = UNDEFINED
            try:
                if binding.template is not None:
                    value = binding.template.render(text, parsed)
                    if value is UNDEFINED:
                        continue  # a key this message does not carry (shared JSON state topics)
                elif binding.json_payload:
                    if parsed is UNDEFINED:
                        raise _bad(f"expected JSON, got {_short(text[:60])}")
                    value = parsed
                else:
                    value = text
                if binding.match_payload is not None and to_text(value) != binding.match_payload:
                    continue
                if binding.attributes:
                    self._decode_attributes(entity, value, out)
                    continue
                triples = binding.decode(value)
            except TemplateUndefined:
                continue
            except _PartlyDecoded as err:
                out.problems.append(f"{entity.device_id} ({entity.key}): {err}")
                triples = err.triples
            except (CodecError, TemplateError) as err:
                if binding.attributes:
                    self._note_attributes(entity, f"not used: {err}", out)
                    continue
                out.problems.append(f"{entity.device_id} ({entity.key}): {err}")
                continue
            component = entity.component
            dev_id = entity.device_id
            if binding.events:
                for cap, event, data in triples:
                    out.events.append(DeviceEventUpdate(dev_id, component, cap, event, data))
                    if "kind" in data:
                        out.updates.append(Update(dev_id, component, cap, "last_event", data["kind"]))
                        if "button" in data:
                            out.updates.append(Update(dev_id, component, cap, "button", data["button"]))
            else:
                for cap, attr, value in triples:
                    out.updates.append(Update(dev_id, component, cap, attr, value))
                if binding.expire_after is not None and triples:
                    out.timers.append((f"{entity.key}\x00{binding.topic}\x00expire", binding.expire_after,
                                       [Update(dev_id, component, cap, attr, None) for cap, attr, _ in triples]))
                if binding.off_delay is not None and any(value is True for _, _, value in triples):
                    out.timers.append((f"{entity.key}\x00{binding.topic}\x00off", binding.off_delay,
                                       [Update(dev_id, component, cap, attr, False) for cap, attr, value in triples
                                        if value is True]))

    def _decode_attributes(self, entity: Entity, value: Any, out: Decoded) -> None:
        """One json_attributes message: each key of :data:`ATTRIBUTE_KEYS` goes where the device already has
        that capability (the entity's own component first); the rest is said once per entity."""
        if isinstance(value, str):
            if not value.strip():
                return
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                self._note_attributes(entity, f"not used: not JSON: {_short(value[:60])}", out)
                return
        if not isinstance(value, dict):
            self._note_attributes(entity, f"not used: not a JSON object: {_short(value)}", out)
            return
        device = self.devices.get(entity.device_id)
        present = device.info.components if device is not None and device.info is not None else {}
        own = {(cap, attr) for cap, support in entity.support.items() for attr in support.attributes}
        unused: list[str] = []
        for key, raw in value.items():
            rule = ATTRIBUTE_KEYS.get(key) if isinstance(key, str) else None
            if rule is None:
                unused.append(str(key))
                continue
            cap, attr, convert = rule
            if (cap, attr) in own or raw is None:
                continue  # the entity's own state says it (Zigbee2MQTT repeats it); null is no reading
            component = _attribute_component(entity, present, cap)
            reading = _attribute_value(cap, attr, convert, raw) if component is not None else None
            if component is None or reading is None:
                unused.append(key)
                continue
            out.updates.append(Update(entity.device_id, component, cap, attr, reading))
        if unused:
            shown = ", ".join(sorted(unused)[:12]) + (", …" if len(unused) > 12 else "")
            self._note_attributes(entity, f"{shown} not used (no capability of the device they fit)", out)

    @staticmethod
    def _note_attributes(entity: Entity, text: str, out: Decoded) -> None:
        if not entity.attributes_noted:
            entity.attributes_noted = True
            out.notes.append(f"{SOURCE} {entity.key}: json_attributes {text}")

    def _decode_availability(self, routes: list[tuple[str, AvailabilityTopic]], payload: bytes,
                             out: Decoded) -> None:
        text = _decode_text(payload[:1024])
        parsed: Any = UNDEFINED
        for dev_id, spec in routes:
            device = self.devices.get(dev_id)
            if device is None:
                continue
            value: Any = text
            if spec.template is not None:
                if spec.template.needs_json and parsed is UNDEFINED:
                    try:
                        parsed = orjson.loads(payload)
                    except orjson.JSONDecodeError:
                        parsed = None
                try:
                    value = spec.template.render(text, parsed if parsed is not None else UNDEFINED)
                except TemplateError as err:
                    out.problems.append(f"{dev_id}: availability template: {err}")
                    continue
            word = to_text(value).strip()
            if word == spec.payload_available:
                online = True
            elif word == spec.payload_not_available:
                online = False
            else:
                continue  # HA ignores other payloads on an availability topic
            device.avail_state[spec] = online
            device.latest = online
            self._refresh_availability(device, out)

    def _refresh_availability(self, device: HaDevice, out: Decoded) -> None:
        topics, mode = device.availability()
        if not topics:
            return
        states = [device.avail_state.get(t) for t in topics]
        if mode == "all":
            available = False if False in states else (True if all(s is True for s in states) else None)
        elif mode == "any":
            available = True if True in states else (False if all(s is False for s in states) else None)
        else:
            available = device.latest
        if available is not None and available != device.available:
            device.available = available
            out.availability.append((device.id, available))

    # -- discovery

    def _decode_discovery(self, topic: str, payload: bytes, out: Decoded, known: Callable[[str], bool]) -> None:
        parsed_topic = parse_discovery_topic(self.prefix, topic)
        if parsed_topic is None:
            if topic.endswith("/config"):
                out.problems.append(f"{SOURCE}: {topic!r} is not a valid discovery topic")
            return  # <prefix>/status (HA's birth), state topics of unknown entities: not configs
        component, node, obj = parsed_topic
        key = f"{component}/{node}/{obj}" if node else f"{component}/{obj}"
        if component == "device":
            self._device_config(key, node, obj, payload, out, known)
            return
        if not payload:
            self.skipped.pop(key, None)
            self._remove_entities([key], out)
            return
        config = self._parse_config(key, payload, out)
        if config is None:
            return
        if component not in PLATFORMS:
            self._skip(key, f"platform {component!r} has no place in the capability model", out)
            return
        if self._skip_native(key, config, out, known):
            return
        self._add(component, key, obj, apply_base_topic(config), out)

    def _parse_config(self, key: str, payload: bytes, out: Decoded) -> dict[str, Any] | None:
        try:
            data = parse_json(payload)
        except CodecError as err:
            out.problems.append(f"{SOURCE} {key}: {err}")
            return None
        if not isinstance(data, dict):
            out.problems.append(f"{SOURCE} {key}: a discovery config must be a JSON object, got {_short(data)}")
            return None
        return expand_abbreviations(data)

    def _skip(self, key: str, why: str, out: Decoded) -> None:
        self.skipped[key] = why
        out.notes.append(f"{SOURCE}: {key} skipped: {why}")
        if key in self.entities:
            self._remove_entities([key], out)

    def _skip_native(self, key: str, config: dict[str, Any], out: Decoded, known: Callable[[str], bool]) -> bool:
        source = native_source(config)
        if source is None:
            return False
        native_id = native_device_id(config)
        if native_id is not None and known(native_id):
            self._skip(key, f"the device is already known natively as {native_id}", out)
            return True
        if source == "hearth" and (native_id is None or native_id.startswith("gateway:")):
            self._skip(key, "a Hearth gateway's own entry, not a device", out)
            return True
        if source in self.skip_native:
            self._skip(key, f"announced by {source}, which Hearth reads natively"
                            f"{f' (as {native_id})' if native_id else ''}", out)
            return True
        return False

    def _device_config(self, key: str, node: str | None, obj: str, payload: bytes, out: Decoded,
                       known: Callable[[str], bool]) -> None:
        old_keys = self._device_configs.pop(key, set())
        if not payload:
            self.skipped.pop(key, None)
            self._remove_entities(sorted(old_keys), out)
            return
        config = self._parse_config(key, payload, out)
        if config is None:
            self._device_configs[key] = old_keys
            return
        components = config.get("components")
        if not isinstance(config.get("device"), dict) or not isinstance(components, dict):
            out.problems.append(f"{SOURCE} {key}: a device config needs a device block and components (cmps)")
            self._device_configs[key] = old_keys
            return
        if self._skip_native(key, config, out, known):
            self._remove_entities(sorted(old_keys), out)
            return
        new_keys: set[str] = set()
        for comp_id, comp in components.items():
            comp_key = f"{key}/{comp_id}"
            if not isinstance(comp, dict) or not isinstance(comp.get("platform"), str):
                out.problems.append(f"{SOURCE} {comp_key}: each component needs an object with p (platform)")
                continue
            platform = comp["platform"]
            body = {k: v for k, v in comp.items() if k != "platform"}
            if not body:
                continue  # {"p": "sensor"} alone removes that component
            for option in SHARED_OPTIONS:
                if option in config and option not in body:
                    body[option] = config[option]
            body["device"] = config["device"]
            if "origin" in config:
                body["origin"] = config["origin"]
            new_keys.add(comp_key)
            if platform not in PLATFORMS:
                self._skip(comp_key, f"platform {platform!r} has no place in the capability model", out)
                continue
            self._add(platform, comp_key, str(comp_id), apply_base_topic(body), out)
        self._device_configs[key] = new_keys
        self._remove_entities(sorted(old_keys - new_keys), out)

    def _add(self, platform: str, key: str, object_id: str, config: dict[str, Any], out: Decoded) -> None:
        try:
            entity, left_out, notes = compile_entity(platform, config, key, object_id)
        except (CodecError, TemplateError) as err:
            self.skipped[key] = str(err)
            out.problems.append(f"{SOURCE} {key}: left out: {err}")
            if key in self.entities:
                self._remove_entities([key], out)
            return
        out.problems += [f"{SOURCE} {key}: left out {part}" for part in left_out]
        out.notes += [f"{SOURCE} {key}: {note}" for note in notes]
        self.skipped.pop(key, None)
        old = self.entities.get(key)
        if old is not None:
            self._unroute(old)
            old_device = self.devices.get(old.device_id)
            if old_device is not None and old.device_id != entity.device_id:
                old_device.entities.pop(key, None)
                self._device_changed(old_device, out)
        device = self.devices.get(entity.device_id)
        if device is None:
            device = self.devices[entity.device_id] = HaDevice(entity.device_id)
        device.entities[key] = entity
        device.block.update({k: v for k, v in entity.device.items() if v not in (None, "", [])})
        self.entities[key] = entity
        self._route(entity)
        self._device_changed(device, out)
        out.updates += [Update(entity.device_id, entity.component, c, a, v) for c, a, v in entity.initial]
        out.topics_changed = True

    def _remove_entities(self, keys: Iterable[str], out: Decoded) -> None:
        for key in keys:
            entity = self.entities.pop(key, None)
            if entity is None:
                continue
            self._unroute(entity)
            device = self.devices.get(entity.device_id)
            if device is not None:
                device.entities.pop(key, None)
                self._device_changed(device, out)
            out.topics_changed = True

    def _device_changed(self, device: HaDevice, out: Decoded) -> None:
        if not device.entities:
            self.devices.pop(device.id, None)
            self._reroute_availability()
            out.removals.append(device.id)
            return
        _component_names(device)
        self._reroute_availability()
        info = _device_info(device)
        if info != device.info:
            device.info = info
            out.upserts.append(info)
        self._refresh_availability(device, out)

    def _route(self, entity: Entity) -> None:
        for binding in entity.bindings:
            self._state_routes.setdefault(binding.topic, []).append((entity, binding))
            if "+" in binding.topic or "#" in binding.topic:
                self._wildcard_routes.add(binding.topic)

    def _unroute(self, entity: Entity) -> None:
        for binding in entity.bindings:
            routes = self._state_routes.get(binding.topic)
            if routes is None:
                continue
            routes[:] = [(e, b) for e, b in routes if e is not entity]
            if not routes:
                del self._state_routes[binding.topic]
                self._wildcard_routes.discard(binding.topic)

    def _reroute_availability(self) -> None:
        routes: dict[str, list[tuple[str, AvailabilityTopic]]] = {}
        for device in self.devices.values():
            topics, _mode = device.availability()
            for spec in topics:
                routes.setdefault(spec.topic, []).append((device.id, spec))
        self._avail_routes = routes

    # -- encoding

    def encode(self, command: Command) -> tuple[str, bytes, bool]:
        """(topic, payload, retain) that carries out ``command``. Raises CodecError if it cannot be sent."""
        device = self.devices.get(command.device_id)
        if device is None:
            raise _bad(f"{command.device_id} is not (or no longer) announced through Home Assistant discovery")
        if not isinstance(command.args, dict):
            raise _bad("command arguments must be an object")
        for entity in device.entities.values():
            if entity.component != command.component:
                continue
            binding = entity.commands.get((command.capability, command.command))
            if binding is not None:
                return binding.topic, binding.encode(command.args).encode("utf-8"), binding.retain
        raise _bad(f"{command.device_id} has no {command.capability}.{command.command} on component "
                   f"{command.component!r} (its discovery config gives no command topic for it)")
