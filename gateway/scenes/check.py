"""``hearth profile check``: is the profile valid, and (with ``--house``) does this house have what it needs?"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, TextIO

from gateway.errors import ConfigError
from gateway.model.types import CapabilitySupport, Device
from gateway.scenes.engine import SceneEngine
from gateway.scenes.profile import (
    TRIGGER_REF,
    AbsenceTrigger,
    ButtonTrigger,
    CommandAction,
    Profile,
    SaveStateAction,
    Selector,
    StateCondition,
    StateTrigger,
    WaitForAction,
    find_profile,
    load_profile,
)

NOUNS = {
    "occupancy": "occupancy sensor", "contact": "door/window contact", "temperature": "temperature sensor",
    "level": "dimmable light", "on_off": "switchable device", "power_meter": "metering plug",
    "thermostat": "thermostat", "button": "button", "appliance": "appliance", "water_leak": "leak sensor",
    "energy_meter": "energy meter", "humidity": "humidity sensor",
}


def describe(selector: Selector) -> str:
    caps = selector.capability or []
    noun = " or ".join(NOUNS.get(c, f"{c} device") for c in caps) or "device"
    parts = [noun]
    areas = [a for a in selector.area or [] if a != TRIGGER_REF]
    if areas:
        parts.append(f"in area {' or '.join(repr(a) for a in areas)}")
    if selector.tag:
        parts.append(f"tagged {' or '.join(repr(t) for t in selector.tag)}")
    devices = [d for d in selector.device or [] if d != TRIGGER_REF]
    if devices:
        parts.append(f"with id {' or '.join(devices)}")
    return " ".join(parts)


def _static(selector: Selector) -> Selector | None:
    """The selector without its ``@trigger`` parts and ``where`` filter (what must exist at all)."""
    data = selector.model_dump(exclude_none=True, by_alias=True)
    data.pop("where", None)
    for key in ("device", "area"):
        if key in data:
            rest = [v for v in data[key] if v != TRIGGER_REF]
            if rest:
                data[key] = rest
            else:
                data.pop(key)
    if not any(k in data for k in ("device", "area", "capability", "tag")):
        return None
    return Selector.model_validate(data)


def house_gaps(profile: Profile, devices: list[Device]) -> list[str]:
    """What the profile needs that these devices do not offer, one sentence each."""
    from gateway.clock import SimulatedClock
    from gateway.hub import Hub

    hub = Hub(SimulatedClock())
    hub.devices = {d.id: d for d in devices}
    engine = SceneEngine(hub, [], notifier=_Null())
    gaps: list[str] = []
    for scene in profile.scenes:
        needs: list[tuple[str, Selector, str | None, str | None]] = []
        for i, trigger in enumerate(scene.triggers, start=1):
            if isinstance(trigger, (StateTrigger, AbsenceTrigger, ButtonTrigger)):
                needs.append((f"trigger {i}", trigger.selector, None, None))
        for i, condition in enumerate(scene.conditions, start=1):
            if isinstance(condition, StateCondition):
                needs.append((f"condition {i}", condition.selector, None, None))
        for i, action in enumerate(scene.actions, start=1):
            if isinstance(action, CommandAction):
                needs.append((f"action {i}", action.target, action.capability, action.command))
            elif isinstance(action, SaveStateAction):
                needs.append((f"action {i}", action.target, None, None))
            elif isinstance(action, WaitForAction):
                needs.append((f"action {i}", action.selector, None, None))
        for where, selector, capability, command in needs:
            static = _static(selector)
            if static is None:
                continue
            matched = [d for d in devices if engine._matches(static, d, None)]
            if capability is not None:
                matched = [d for d in matched if any(
                    isinstance(caps.get(capability), CapabilitySupport) and command in caps[capability].commands
                    for caps in d.support.values())]
            if not matched:
                what = describe(static)
                if capability is not None:
                    what += f" that takes {capability}.{command}"
                gaps.append(f"{profile.name}.{scene.id} ({where}): no {what}")
    return gaps


class _Null:
    def send(self, target: str, notification: Any) -> None:
        pass


# Sample values for required parameters, so a profile can be checked before it is configured.
PLACEHOLDERS: dict[str, object] = {
    "notify_targets": ["log"], "area": "living_room", "areas": ["living_room"], "string": "x", "tag": "x",
    "duration": "10m", "time": "12:00", "number": 1, "integer": 1, "bool": False, "selector": {"capability": "on_off"},
}


def placeholder_params(path: Path) -> dict[str, object]:
    """Values for the required parameters of the profile at ``path``. Never raises: a file too broken to
    read its parameters gets none, and loading it then reports what is wrong, file:line:key."""
    import tomllib

    from gateway.tomlloc import loads_toml

    try:
        parameters = loads_toml(path.read_text(encoding="utf-8")).get("parameters", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    if not isinstance(parameters, dict):
        return {}
    out: dict[str, object] = {}
    for name, spec in parameters.items():
        if isinstance(spec, dict) and "default" not in spec:
            kind = spec.get("type")
            out[name] = PLACEHOLDERS.get(kind, "x") if isinstance(kind, str) else "x"
    return out


def check_profile_command(name_or_file: str | Path, house: str | None, config_path: str | None, out: TextIO) -> int:
    """``hearth profile check NAME|FILE``: a shipped profile's name (or one in the config's
    ``profile_dirs``) or a file. With ``--config``, its ``[[profiles]]`` entry for the profile gives the
    parameters and per-scene settings; without, required parameters get sample values."""
    from gateway.config import load_config
    from gateway.scenes.setup import profile_use

    config = load_config(config_path) if config_path else None
    name = str(name_or_file)
    try:
        file = find_profile(name, list(config.scenes.profile_dirs) if config else [])
        use = profile_use(config, name, file)
        if use is not None and config is not None:
            profile = load_profile(file, use.params, params_source=f"{config.source} [[profiles]] {use.use}",
                                   scene_settings=use.scene_settings())
        else:
            profile = load_profile(file, placeholder_params(file))
    except ConfigError as err:
        for problem in err.problems:
            print(f"error: {problem}", file=out)
        print(f"{name}: {len(err.problems)} error{'s' if len(err.problems) != 1 else ''}", file=out)
        return 2
    customised = f", {len(profile.overrides)} customised by {config_path}" if profile.overrides else ""
    print(f"{file}: ok — profile {profile.name!r}, {len(profile.scenes)} scenes{customised}", file=out)
    if house is None:
        return 0
    house_path = Path(house)
    if house_path.suffix == ".toml":
        house_config = load_config(house_path)
        config = config or house_config
        capture = None
    else:
        capture = house_path
    if capture is None:
        areas = set(config.areas.values()) if config else set()
        tags = {t for ts in config.tags.values() for t in ts} if config else set()
        gaps = _config_gaps(profile, areas, tags)
    else:
        from gateway.replay import replay_devices

        devices = asyncio.run(replay_devices(capture, config))
        gaps = house_gaps(profile, devices)
    for gap in gaps:
        print(f"house: {gap}", file=out)
    if gaps:
        print(f"{house}: {len(gaps)} thing{'s' if len(gaps) != 1 else ''} this house lacks", file=out)
        return 1
    print(f"{house}: the house has everything the profile needs", file=out)
    return 0


def _config_gaps(profile: Profile, areas: set[str], tags: set[str]) -> list[str]:
    """With only a config (no devices): areas and tags the profile names that the config never assigns."""
    gaps = []
    seen: set[str] = set()
    for scene in profile.scenes:
        for selector in _selectors(scene):
            for area in selector.area or []:
                if area != TRIGGER_REF and area not in areas and f"area:{area}" not in seen:
                    seen.add(f"area:{area}")
                    gaps.append(f"{profile.name}.{scene.id}: no device is put in area {area!r} ([areas])")
            for tag in selector.tag or []:
                if tag not in tags and f"tag:{tag}" not in seen:
                    seen.add(f"tag:{tag}")
                    gaps.append(f"{profile.name}.{scene.id}: no device is tagged {tag!r} ([tags])")
    return gaps


def _selectors(scene: Any) -> list[Selector]:
    found: list[Selector] = []
    for item in [*scene.triggers, *scene.conditions, *scene.actions]:
        for name in ("selector", "target"):
            value = getattr(item, name, None)
            if isinstance(value, Selector):
                found.append(value)
    return found
