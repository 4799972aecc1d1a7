"""From config to a running scene engine: which profiles, with which parameters, notifying whom."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import TypeAdapter, ValidationError

from gateway.config import Config, ProfileUse, _describe, _line_of
from gateway.errors import ConfigError, ConfigProblem
from gateway.scenes.engine import EngineSettings
from gateway.scenes.notify import LogTarget, NotifyTargets
from gateway.scenes.profile import Profile, find_profile, load_profile

# Always there, so that a profile's default "log" target works without any [notify] section.
BUILTIN_TARGETS = {"log": LogTarget(kind="log")}


def notify_targets(config: Config, text: str | None = None) -> dict[str, Any]:
    try:
        targets = TypeAdapter(NotifyTargets).validate_python(config.notify)
    except ValidationError as err:
        raise ConfigError([
            ConfigProblem(config.source, _line_of(text, ("notify", *e["loc"])) if text else None,
                          ".".join(map(str, ("notify", *e["loc"]))), _describe(e))
            for e in err.errors()
        ]) from err
    return {**BUILTIN_TARGETS, **targets}


def load_profiles(config: Config, text: str | None = None) -> list[Profile]:
    """Every enabled ``[[profiles]]`` entry, loaded with its parameters; all problems at once."""
    problems: list[ConfigProblem] = []
    profiles: list[Profile] = []
    targets = notify_targets(config, text)
    for index, use in enumerate(config.profiles):
        if not use.enabled:
            continue
        where = f"{config.source}:{_line_of(text, ('profiles', index)) if text else '?'} [[profiles]] {use.use}"
        try:
            path = find_profile(use.use, list(config.scenes.profile_dirs))
            profile = load_profile(path, use.params, params_source=where, scene_settings=use.scene_settings())
        except ConfigError as err:
            problems.extend(err.problems)
            continue
        for target in sorted(profile.notify_targets - set(targets)):
            problems.append(ConfigProblem(where, None, "params",
                                          f"notify target {target!r} is not defined: add a [notify.{target}] "
                                          f"section (kind = \"mqtt\", \"webhook\", \"apprise\" or \"log\")"))
        profiles.append(profile)
    names = [p.name for p in profiles]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(ConfigProblem(config.source, None, "profiles", f"profile {name!r} is enabled twice"))
    if problems:
        raise ConfigError(problems)
    return profiles


def profile_use(config: Config | None, name_or_file: str, path: Path) -> ProfileUse | None:
    """The config's ``[[profiles]]`` entry for a profile named ``name_or_file`` (found at ``path``): the
    same name, or an entry whose ``use`` finds the same file."""
    if config is None:
        return None
    for use in config.profiles:
        if use.use == name_or_file:
            return use
    dirs = list(config.scenes.profile_dirs)
    for use in config.profiles:
        try:
            if find_profile(use.use, dirs).resolve() == path.resolve():
                return use
        except (ConfigError, OSError):
            continue
    return None


def engine_settings(config: Config) -> EngineSettings:
    location = config.location
    timezone = ZoneInfo(location.timezone) if location.timezone else _local_zone()
    return EngineSettings(
        timezone=timezone,
        latitude=location.latitude,
        longitude=location.longitude,
        manual_override_s=config.scenes.manual_override_min * 60,
        priority_hold_s=config.scenes.priority_hold_s,
        override_covers=frozenset(config.scenes.manual_override_covers),
        away_after_s=config.scenes.away_after_min * 60,
        command_timeout_s=config.scenes.command_timeout_s,
    )


def _local_zone() -> Any:
    from datetime import datetime

    return datetime.now().astimezone().tzinfo
