"""Scenes explained to the installer who dry-runs them: ``hearth replay``'s traces as text, and
``hearth replay --explain SCENE [--at TIME]``, why a scene did or did not run.

A trace is the engine's record of one run (``SceneRan``): the trigger, each condition with the values
it saw, each action and what became of each target. This module only reads: traces as the engine made
them (keys it does not know are shown as they come, so what the engine adds shows up), and, for an
explanation, the engine and the hub as they are at the moment asked about. It also says which profile
parameters name an area the house does not have (for ``replay`` and ``config check``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from gateway.clock import iso_utc
from gateway.errors import HearthError
from gateway.i18n import DEFAULT_LANGUAGE, catalogue, translate
from gateway.suggest import close_matches, did_you_mean

if TYPE_CHECKING:
    from gateway.model.types import Device
    from gateway.scenes.engine import SceneEngine
    from gateway.scenes.profile import Profile, Scene, Selector

__all__ = [
    "AtTime",
    "Explanation",
    "UnknownSceneError",
    "area_parameter_warnings",
    "area_title",
    "explain_scene",
    "outcome",
    "resolve_scene_id",
    "trace_lines",
    "trace_sentences",
    "traces_block",
]

# Trace keys shown in a run's first lines; every other key of a trace, trigger, condition or action
# is shown as ``key=value`` after them.
_TRACE_OWN = frozenset({"id", "scene", "t", "trigger", "conditions", "actions", "result", "finished"})
_TRIGGER_OWN = frozenset({"kind", "t", "device_id", "component", "area", "value", "old", "attribute"})
_ACTION_OWN = frozenset({"kind", "t", "acted", "targets", "capability", "command", "args"})
# Keys whose numbers are seconds (engine traces and profile fields): shown as "10 min", "1 h 30 min".
_SECONDS = re.compile(r"(_s|^for|^timeout|^cooldown|^escalate_after|^offset|^duration)$")
# Profile fields that are minutes after midnight.
_TIMES_OF_DAY = frozenset({"at", "after", "before"})
_COMPARISONS = {"to": "=", "equals": "=", "not_equals": "!=", "above": ">", "below": "<"}
RUNS_SHOWN = 10  # an explanation lists the last this many runs in full


class UnknownSceneError(HearthError):
    """``--explain`` named no scene of the profiles being dry-run (or several)."""

    def __init__(self, query: str, suggestions: list[str], *, ambiguous: bool = False) -> None:
        self.query = query
        self.suggestions = suggestions
        self.ambiguous = ambiguous
        if ambiguous:
            message = f"scene {query!r} is in several profiles: say which ({', '.join(suggestions)})"
        elif suggestions:
            message = f"no scene {query!r} (did you mean {' or '.join(repr(s) for s in suggestions)}?)"
        else:
            message = f"no scene {query!r} in the profiles being replayed"
        super().__init__(message)


def resolve_scene_id(query: str, scene_ids: Iterable[str]) -> str:
    """``profile.scene``, or ``scene`` alone when only one profile has it."""
    ids = sorted(scene_ids)
    if query in ids:
        return query
    if "." not in query:
        found = [sid for sid in ids if sid.partition(".")[2] == query]
        if len(found) == 1:
            return found[0]
        if found:
            raise UnknownSceneError(query, found, ambiguous=True)
        short = {sid.partition(".")[2]: sid for sid in ids}
        suggestions = [short[s] for s in close_matches(query, short)]
    else:
        suggestions = close_matches(query, ids)
    raise UnknownSceneError(query, suggestions)


# ------------------------------------------------------------------ values


def _value(value: Any, names: Mapping[str, str], key: str = "") -> str:
    """One value of a trace as a person reads it: device ids as names, seconds as durations."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (int, float)):
        if key and _SECONDS.search(key):
            return _duration(float(value))
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{names.get(str(k), k)}: {_value(v, names, str(k))}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v, names) for v in value) + "]" if value else "none"
    return str(value)


def _pairs(entry: Mapping[str, Any], names: Mapping[str, str], skip: Iterable[str]) -> str:
    skipped = set(skip)
    return ", ".join(f"{k}={_value(v, names, k)}" for k, v in entry.items() if k not in skipped)


def _duration(seconds: float, language: str | None = None) -> str:
    """"45 s", "10 min", "1 h 30 min": in ``language``'s words (the catalogue's ``duration.*``)."""
    seconds = round(seconds)
    if seconds < 60:
        return _say(language, "duration.seconds", seconds=seconds)
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours and minutes:
        return _say(language, "duration.hours_minutes", hours=hours, minutes=minutes)
    if hours:
        return _say(language, "duration.hours", hours=hours)
    return _say(language, "duration.minutes", minutes=minutes)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _device_text(device_id: str, names: Mapping[str, str]) -> str:
    name = names.get(device_id)
    return f"{name} ({device_id})" if name and name != device_id else device_id


# ------------------------------------------------------------------ profile parts as text


def _field_text(key: str, value: Any) -> str:
    from gateway.scenes.profile import Selector, TimeWindow

    if isinstance(value, Selector):
        return _selector_text(value)
    if isinstance(value, TimeWindow):
        return f"{key} {_hhmm(value.after)}-{_hhmm(value.before)}"
    if key in _TIMES_OF_DAY and isinstance(value, int) and not isinstance(value, bool):
        return f"{key} {_hhmm(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool) and _SECONDS.search(key):
        return f"{key} {_duration(float(value))}"
    if isinstance(value, list):
        return f"{key} {'|'.join(map(str, value))}"
    return f"{key} {_value(value, {})}"


def _selector_text(selector: Selector) -> str:
    from gateway.scenes.check import describe
    from gateway.scenes.profile import TRIGGER_REF

    text = describe(selector)
    if TRIGGER_REF in (selector.device or ()):
        text += " that triggered the run" if not selector.device or len(selector.device) == 1 else " (or @trigger)"
    if TRIGGER_REF in (selector.area or ()):
        text += " in the trigger's area"
    if selector.exclude_area:
        text += f" not in {' or '.join(selector.exclude_area)}"
    if selector.exclude_tag:
        text += f" not tagged {' or '.join(selector.exclude_tag)}"
    if selector.exclude_device:
        text += f" except {', '.join(selector.exclude_device)}"
    if selector.where is not None:
        text += f" where {definition(selector.where)}"
    return text


def _fields(node: BaseModel) -> list[tuple[str, Any]]:
    """The fields of a profile part that differ from their defaults, as the profile writes them."""
    out = []
    for name, info in type(node).model_fields.items():
        value = getattr(node, name)
        if name == "kind" or value is None or value in ({}, []) or (not info.is_required() and value == info.default):
            continue
        out.append((info.alias or name, value))
    return out


def definition(node: BaseModel) -> str:
    """A trigger, condition, action or state test as one line: ``temperature.celsius < 16 for 30 min,
    temperature sensor not tagged outdoor``."""
    fields = dict(_fields(node))
    parts: list[str] = []
    attribute = fields.pop("attribute", None)
    tests = [f"{_COMPARISONS[k]} {_value(fields.pop(k), {})}" for k in list(fields) if k in _COMPARISONS]
    if attribute is not None:
        parts.append(f"{attribute} {' and '.join(tests)}".rstrip() if tests else str(attribute))
    if "from" in fields:
        parts.append(f"from {_value(fields.pop('from'), {})}")
    for key, value in fields.items():
        if key in ("conditions", "condition"):
            continue  # nested conditions get lines of their own
        parts.append(_field_text(key, value))
    return ", ".join(parts)


def _covered(node: BaseModel | None) -> set[str]:
    """Keys a definition already shows (the engine may put them in the trace too: shown once)."""
    if node is None:
        return set()
    return {key for key, _ in _fields(node)}


# ------------------------------------------------------------------ traces


def _acted(trace: Mapping[str, Any]) -> bool:
    return any(entry.get("acted") for entry in trace.get("actions", ()))


def outcome(trace: Mapping[str, Any]) -> str:
    """``acted``, ``changed nothing``, ``conditions not met``, ``skipped``, or the engine's result
    (an error, ``cancelled``, ``running``)."""
    result = str(trace.get("result", ""))
    if result == "done":
        return "acted" if _acted(trace) else "changed nothing"
    if result.startswith("skipped"):
        return "skipped"
    return result


def _failed_condition(trace: Mapping[str, Any]) -> str | None:
    for index, detail in enumerate(trace.get("conditions", ()), start=1):
        if not detail.get("result", True):
            return f"condition {index} ({detail.get('kind')})"
    return None


def trace_lines(trace: Mapping[str, Any], names: Mapping[str, str], scene: Scene | None = None,
                indent: str = "  ") -> list[str]:
    """One run as a block of lines: when, which scene, the outcome; the trigger; each condition with
    its definition, values and result; each action with each target and its status."""
    result = str(trace.get("result", ""))
    # "acted" / "changed nothing" for a run that went through; else the engine's word for it.
    head = outcome(trace) if result == "done" else result
    lines = [f"{indent}[{trace.get('t')}] {trace.get('scene')}: {head}"]
    inner = indent + "  "
    trigger = trace.get("trigger") or {}
    lines.append(f"{inner}trigger: {_trigger_text(trigger, names)}")
    conditions = scene.conditions if scene is not None else []
    for index, detail in enumerate(trace.get("conditions", ()), start=1):
        model = conditions[index - 1] if index - 1 < len(conditions) else None
        lines += _condition_lines(f"condition {index}", detail, model, names, inner)
    if result == "conditions not met" and scene is not None:
        skipped = len(scene.actions)
        lines.append(f"{inner}actions: none run ({skipped} in the scene)")
    actions = scene.actions if scene is not None else []
    for index, entry in enumerate(trace.get("actions", ()), start=1):
        model = actions[index - 1] if index - 1 < len(actions) else None
        lines += _action_lines(index, entry, model, names, inner)
    extra = _pairs(trace, names, _TRACE_OWN)
    if extra:
        lines.append(f"{inner}{extra}")
    return lines


def _trigger_text(trigger: Mapping[str, Any], names: Mapping[str, str]) -> str:
    text = str(trigger.get("kind", "?"))
    attribute = trigger.get("attribute")
    if attribute:
        text += f" {attribute}"
    device = trigger.get("device_id")
    if device or trigger.get("value") is not None:
        text += f" = {_value(trigger.get('value'), names)}"
        if "old" in trigger:
            text += f" (was {_value(trigger['old'], names)})"
    if device:
        text += f" on {_device_text(device, names)}"
        if trigger.get("component") not in (None, "main"):
            text += f" [{trigger['component']}]"
    if trigger.get("area"):
        text += f" in {trigger['area']}"
    extra = _pairs(trigger, names, _TRIGGER_OWN)
    return f"{text}; {extra}" if extra else text


def _condition_lines(label: str, detail: Mapping[str, Any], model: BaseModel | None, names: Mapping[str, str],
                     indent: str) -> list[str]:
    kind = detail.get("kind", "?")
    text = definition(model) if model is not None else ""
    spec = f" ({text})" if text else ""
    verdict = "passed" if detail.get("result") else "FAILED"
    skip = {"kind", "result", "conditions", "condition", *_covered(model)}
    extra = _pairs(detail, names, skip)
    lines = [f"{indent}{label} {kind}{spec}: {verdict}" + (f" — {extra}" if extra else "")]
    nested = detail.get("conditions")
    models = getattr(model, "conditions", None) or []
    if isinstance(nested, list):
        for index, sub in enumerate(nested, start=1):
            sub_model = models[index - 1] if index - 1 < len(models) else None
            lines += _condition_lines(f"{index}.", sub, sub_model, names, indent + "  ")
    if isinstance(detail.get("condition"), Mapping):
        lines += _condition_lines("of", detail["condition"], getattr(model, "condition", None), names, indent + "  ")
    return lines


def _action_lines(index: int, entry: Mapping[str, Any], model: BaseModel | None, names: Mapping[str, str],
                  indent: str) -> list[str]:
    head = f"{indent}action {index} {entry.get('kind', '?')}"
    if "capability" in entry and "command" in entry:
        args = ", ".join(f"{k}={_value(v, names)}" for k, v in (entry.get("args") or {}).items())
        head += f" {entry['capability']}.{entry['command']}({args})"
    extra = _pairs(entry, names, _ACTION_OWN)
    if extra:
        head += f": {extra}"
    targets = entry.get("targets")
    if isinstance(targets, list) and not targets:
        target = getattr(model, "target", None)
        # Which devices it looked for: what the installer compares with the house.
        head += f" (target: {_selector_text(target)})" if target is not None else "" if extra else " (no target)"
    elif not targets and "acted" in entry and not entry["acted"]:
        head += " (changed nothing)"
    lines = [head]
    for target in targets or ():
        status = str(target.get("status", "sent"))
        extra = _pairs(target, names, ("device", "component", "status"))
        component = f" [{target['component']}]" if target.get("component") not in (None, "main") else ""
        lines.append(f"{indent}  {names.get(target.get('device', ''), target.get('device'))}{component}: "
                     f"{status}" + (f" ({extra})" if extra else ""))
    return lines


def _without_until(reason: str) -> str:
    """A reason without its time ("skipped: cooldown until <t>" -> "skipped: cooldown")."""
    return re.sub(r" until \S+$", "", reason)


def traces_block(traces: Sequence[Mapping[str, Any]], names: Mapping[str, str], scenes: Mapping[str, Scene],
                 *, every_run: bool = False) -> list[str]:
    """The traces section of ``hearth replay``'s text: by default the runs that acted (and any that
    failed) in full and the rest counted per scene with the reason; with ``every_run``, every run."""
    if not traces:
        return []
    ordered = sorted(traces, key=lambda t: str(t.get("t", "")))
    counts = Counter(outcome(t) for t in ordered)
    order = ("acted", "changed nothing", "conditions not met", "skipped")
    summary = ", ".join(f"{counts[k]} {k}" for k in (*order, *sorted(set(counts) - set(order))) if counts[k])
    hint = "every run below" if every_run else "runs that acted below; --traces for every run"
    lines = ["", f"{len(ordered)} scene runs: {summary} ({hint})"]
    hidden: dict[str, Counter[str]] = {}
    for trace in ordered:
        kind = outcome(trace)
        if every_run or kind not in ("changed nothing", "conditions not met", "skipped"):
            lines += trace_lines(trace, names, scenes.get(str(trace.get("scene"))))
            continue
        reason = kind
        if kind == "conditions not met":
            reason = f"conditions not met: {_failed_condition(trace) or '?'} failed"
        elif kind == "skipped":
            reason = _without_until(str(trace.get("result")))
        elif kind == "changed nothing":
            statuses = [str(target.get("status", "")) for entry in trace.get("actions", ())
                        for target in entry.get("targets", ()) or () if str(target.get("status", "")).startswith(
                            "skipped")]
            if statuses:
                reason = f"changed nothing: {_without_until(statuses[0])}"
        hidden.setdefault(str(trace.get("scene")), Counter())[reason] += 1
    if hidden:
        lines.append("  not shown (--traces, or --explain SCENE):")
        for scene_id, reasons in sorted(hidden.items()):
            text = "; ".join(f"{n}x {reason}" for reason, n in reasons.most_common())
            lines.append(f"    {scene_id}: {text}")
    return lines


# ------------------------------------------------------------------ traces as sentences

# The words of these sentences are the message catalogue's (gateway/i18n, keys ``trace.*``; durations
# ``duration.*``), the same table the web UI reads: a sentence is said in the language asked for, English by
# default (``hearth replay --explain``). What a person or a device wrote (names, an alert's id, an engine's
# error) is put in as it is.

# An attribute's unit in a sentence, for the attributes scenes compare. Its word is the catalogue's
# ``trace.word.<capability.attribute>``; true and false are ``trace.reading.<capability.attribute>.true``.
_ATTRIBUTE_UNITS: dict[str, str] = {
    "temperature.celsius": "°C", "humidity.percent": "%", "power_meter.watts": "W", "energy_meter.kwh": "kWh",
    "illuminance.lux": "lx", "battery.percent": "%", "level.percent": "%", "air_quality.co2_ppm": "ppm",
}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _say(language: str | None, key: str, **values: object) -> str:
    """``key``'s text in ``language`` (English when None), its placeholders filled."""
    return translate(language or DEFAULT_LANGUAGE, key, **values)


def _say_or(language: str | None, key: str, fallback: str, **values: object) -> str:
    """``key``'s text, or ``fallback`` when the catalogue has no such key (a value the engine adds later)."""
    if key not in catalogue(DEFAULT_LANGUAGE):
        return fallback
    return _say(language, key, **values)


def _joined(items: Iterable[str], language: str | None, key: str = "trace.or") -> str:
    """``a or b`` / ``a或b`` (``trace.or``), ``a, b`` / ``a、b`` (``trace.comma``), … in ``language``."""
    return _say(language, key).join(items)


def area_title(area: str | None, area_names: Mapping[str, str] | None = None) -> str:
    """An area as people write it: the owner's name for it, else ``living_room`` -> ``Living room``."""
    if not area:
        return ""
    if area_names and area_names.get(area):
        return area_names[area]
    text = area.replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:] if text.islower() else text


def _word(attribute: str, language: str | None = None) -> str:
    return _say_or(language, f"trace.word.{attribute}",
                   attribute.partition(".")[2].replace("_", " ") or attribute)


def _reading(attribute: str, value: Any, language: str | None = None) -> str:
    """A value as a sentence says it: "motion", "21.5 °C", "15 min"."""
    if isinstance(value, bool):
        fallback = _say(language, "common.yes" if value else "common.no")
        return _say_or(language, f"trace.reading.{attribute}.{'true' if value else 'false'}", fallback)
    if value is None:
        return _say(language, "trace.not_reported")
    if isinstance(value, (int, float)):
        unit = _ATTRIBUTE_UNITS.get(attribute, "")
        if not unit and attribute.endswith("_s"):
            return _duration(float(value), language)
        number = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{number} {unit}".rstrip()
    # An enum's value in words where the catalogue has them (the UI's "attr.thermostat.mode.heat").
    return _say_or(language, f"attr.{attribute}.{value}", str(value))


def _limit(seconds: float, language: str | None = None) -> str:
    """A limit beside a measured time: "45 min", written short the way a person compares."""
    return _duration(seconds, language)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _subject(selector: Selector | None, attribute: str, names: Mapping[str, str],
             area_names: Mapping[str, str] | None, device_id: str | None = None,
             language: str | None = None) -> tuple[str, bool]:
    """Who a trigger watched, as a person says it: the device, "Bathroom motion", "Motion anywhere in the
    house"; and whether it is the whole house."""
    if device_id:
        return names.get(device_id, device_id), False
    word = _word(attribute, language)
    if selector is not None:
        devices = [d for d in selector.device or () if not d.startswith("@")]
        if len(devices) == 1:
            return names.get(devices[0], devices[0]), False
        areas = [a for a in selector.area or () if not a.startswith("@")]
        if areas:
            where = _joined((area_title(a, area_names) for a in areas), language)
            return _say(language, "trace.subject.area", areas=where, word=word), False
        if selector.tag:
            return _capital(_say(language, "trace.subject.tagged", word=word,
                                 tags=_joined(selector.tag, language))), False
    return _capital(_say(language, "trace.subject.anywhere", word=word)), True


def _clock(text: Any, tz: tzinfo | None) -> str:
    """A trace's ISO-8601 UTC time as the house's HH:MM."""
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    return moment.astimezone(tz or UTC).strftime("%H:%M")


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] if text else text


def _scene_trigger(scene: Scene | None, trigger: Mapping[str, Any]) -> Any:
    """The scene's trigger this run's trigger came from (by kind, then attribute), if it can be told."""
    if scene is None:
        return None
    kind = trigger.get("kind")
    found = [t for t in scene.triggers if getattr(t, "kind", None) == kind]
    attribute = trigger.get("attribute")
    if attribute and len(found) > 1:
        found = [t for t in found if getattr(t, "attribute", None) == attribute] or found
    if len(found) > 1 and trigger.get("held_s") is not None:
        found = [t for t in found if getattr(t, "for_", None) == trigger.get("held_s")] or found
    return found[0] if found else None


def _mode_word(mode: Any, language: str | None) -> str:
    return _say_or(language, f"mode.{mode}", str(mode))


def _occupancy_word(state: Any, language: str | None) -> str:
    return _say_or(language, f"trace.occupancy.{state}", str(state))


def _trigger_sentence(trigger: Mapping[str, Any], scene: Scene | None, names: Mapping[str, str],
                      area_names: Mapping[str, str] | None, tz: tzinfo | None, language: str | None = None) -> str:
    say = lambda key, **values: _say(language, f"trace.trigger.{key}", **values)  # noqa: E731
    kind = str(trigger.get("kind", "?"))
    model = _scene_trigger(scene, trigger)
    attribute = str(trigger.get("attribute") or getattr(model, "attribute", "") or "")
    device = trigger.get("device_id")
    if kind == "absence":
        absent = attribute or "occupancy.occupied"
        who, anywhere = _subject(getattr(model, "selector", None), absent, names, area_names, language=language)
        quiet = trigger.get("quiet_s")
        text = say("nothing_anywhere", word=_word(absent, language)) if anywhere else say("quiet", who=who)
        if isinstance(quiet, (int, float)):
            text += say("for", duration=_duration(float(quiet), language))
        limit = getattr(model, "for_", None)
        window = getattr(model, "window", None)
        if limit:
            text += say("limit", limit=_limit(limit, language))
        elif window is not None:
            text += say("between", after=_hhmm(window.after), before=_hhmm(window.before))
        if trigger.get("last_activity"):
            text += say("last_activity", time=_clock(trigger["last_activity"], tz))
        return text
    if kind == "state":
        who, _ = _subject(getattr(model, "selector", None), attribute, names, area_names, device, language)
        if trigger.get("component") not in (None, "main"):
            who += f" [{trigger['component']}]"
        value = _reading(attribute, trigger.get("value"), language)
        held = trigger.get("held_s")
        wanted = _level_text(model, attribute, language)
        if isinstance(held, (int, float)) and held > 0:
            text = say("held", who=who, value=value, duration=_duration(float(held), language))
            return text + (say("held_wanted", wanted=wanted, limit=_limit(held, language)) if wanted
                           else say("limit", limit=_limit(held, language)))
        text = say("became", who=who, word=_word(attribute, language), value=value)
        if "old" in trigger:
            text += say("was", old=_reading(attribute, trigger["old"], language))
        return text + (say("wanted", wanted=wanted) if wanted else "")
    if kind == "button":
        who = names.get(str(device), str(device)) if device else say("a_button")
        how = trigger.get("value")
        text = say("pressed", who=who)
        if how not in (None, "pressed"):
            text += say("how", how=_say_or(language, f"attr.button.last_event.{how}", str(how)))
        return text
    if kind == "time":
        return say("time", time=trigger.get("at") or _clock(trigger.get("t"), tz))
    if kind == "sun":
        event = str(trigger.get("event", ""))
        return _sentence(say("sun", event=_say_or(language, f"trace.sun.{event}", event or say("sun_event")),
                             at=trigger.get("at", "?")))
    if kind == "mode":
        text = say("mode", mode=_mode_word(trigger.get("value"), language))
        return text + (say("was", old=_mode_word(trigger["old"], language)) if trigger.get("old") else "")
    if kind == "occupancy":
        text = say("occupancy", state=_occupancy_word(trigger.get("value"), language))
        if trigger.get("old"):
            text += say("was", old=_occupancy_word(trigger["old"], language))
        if isinstance(trigger.get("held_s"), (int, float)):
            text += say("stayed", duration=_duration(float(trigger["held_s"]), language))
        return text
    if kind == "manual":
        return say("manual")
    if kind == "start":
        return say("start")
    return say("other", kind=kind)


def _level_text(model: Any, attribute: str, language: str | None = None) -> str:
    """A state trigger's or test's wanted level: "motion", "below 16 °C", "above 25 °C"."""
    if model is None:
        return ""
    parts = []
    to = getattr(model, "to", None)
    if to is None:
        to = getattr(model, "equals", None)
    if to is not None:
        parts.append(_reading(attribute, to, language))
    for field, key in (("not_equals", "trace.level.not"), ("above", "trace.level.above"),
                       ("below", "trace.level.below")):
        if getattr(model, field, None) is not None:
            parts.append(_say(language, key, value=_reading(attribute, getattr(model, field), language)))
    return _joined(parts, language, "trace.and")


def _condition_sentence(detail: Mapping[str, Any], model: Any, names: Mapping[str, str],
                        area_names: Mapping[str, str] | None, tz: tzinfo | None, language: str | None = None) -> str:
    say = lambda key, **values: _say(language, f"trace.condition.{key}", **values)  # noqa: E731
    kind = str(detail.get("kind", "?"))
    ok = bool(detail.get("result"))
    verdict = say("met" if ok else "not_met")

    def judged(text: str) -> str:
        return say("verdict", text=text, verdict=verdict)

    def weekday(day: str) -> str:
        return _say(language, f"trace.weekday.{day}") if day in _WEEKDAYS else day

    if kind == "time":
        window = getattr(model, "window", None)
        wanted = say("wanted_between", after=_hhmm(window.after), before=_hhmm(window.before)) \
            if window is not None else ""
        return judged(say("time", now=detail.get("now"), wanted=wanted))
    if kind == "weekday":
        days = getattr(model, "days", None)
        wanted = say("wanted", wanted=_joined((weekday(d) for d in days), language, "trace.comma")) if days else ""
        return judged(say("weekday", day=weekday(str(detail.get("today"))), wanted=wanted))
    if kind == "mode":
        modes = getattr(model, "is_", None)
        wanted = say("wanted", wanted=_joined((_mode_word(m, language) for m in modes), language)) if modes else ""
        return judged(say("mode", mode=_mode_word(detail.get("mode"), language), wanted=wanted))
    if kind == "occupancy":
        states = detail.get("wanted") or []
        wanted = say("wanted", wanted=_joined((_occupancy_word(s, language) for s in states), language)) \
            if states else ""
        return judged(say("occupancy", state=_occupancy_word(detail.get("occupancy"), language), wanted=wanted))
    if kind == "last_activity":
        last = detail.get("last_area")
        areas = getattr(model, "area", None) or []
        where = area_title(last, area_names) if last else say("nowhere_yet")
        wanted = say("wanted", wanted=_joined((area_title(a, area_names) for a in areas), language)) if areas else ""
        return judged(say("last_activity", where=where, wanted=wanted))
    if kind == "state":
        attribute = str(detail.get("attribute", ""))
        values = detail.get("values") or {}
        seen = _joined((say("seen", name=names.get(str(d), d), value=_reading(attribute, v, language))
                        for d, v in values.items()), language, "trace.comma") or say("no_device_matched")
        wanted = _level_text(model, attribute, language)
        on = say(f"on_{str(detail.get('match', 'any')) if detail.get('match') in ('all', 'none') else 'any'}")
        want = ""
        if wanted:
            want = say("wanted_on_for", wanted=wanted, on=on, duration=_duration(model.for_, language)) \
                if getattr(model, "for_", 0) else say("wanted_on", wanted=wanted, on=on)
        return judged(say("state", word=_sentence(_word(attribute, language)), seen=seen, wanted=want))
    if kind == "happened":
        attribute = str(detail.get("attribute", ""))
        last = detail.get("last")
        word = _word(attribute, language)
        text = say("happened_last", word=word, time=_clock(last, tz)) if last else say("happened_never", word=word)
        if detail.get("after"):
            after = detail.get("after_last")
            after_word = _word(str(detail["after"]), language)
            text += say("after_at", word=after_word, time=_clock(after, tz)) if after \
                else say("after_never", word=after_word)
        if isinstance(detail.get("within_s"), (int, float)):
            text += say("within", duration=_duration(float(detail["within_s"]), language))
        return judged(_sentence(text))
    if kind == "any":
        subs = detail.get("conditions") or []
        models = getattr(model, "conditions", None) or []
        parts = [_condition_sentence(sub, models[i] if i < len(models) else None, names, area_names, tz, language)
                 for i, sub in enumerate(subs)]
        return say("any", verdict=verdict, conditions=_joined(parts, language, "trace.semicolon"))
    if kind == "not":
        inner = detail.get("condition") or {}
        text = _condition_sentence(inner, getattr(model, "condition", None), names, area_names, tz, language)
        return say("not", condition=f"{text[:1].lower()}{text[1:]}", verdict=verdict)
    return say("other", kind=_sentence(kind), verdict=verdict)


def _action_sentences(entry: Mapping[str, Any], names: Mapping[str, str], language: str | None = None) -> list[str]:
    say = lambda key, **values: _say(language, f"trace.action.{key}", **values)  # noqa: E731
    kind = str(entry.get("kind", "?"))
    if kind == "alert":
        note = say("note", note=entry["note"]) if entry.get("note") else ""
        return [say("alert", alert=entry.get("alert", ""), note=note).rstrip()]
    targets = entry.get("targets")
    if isinstance(targets, list) and "command" in entry:
        command = str(entry.get("command"))
        capability = str(entry.get("capability", ""))
        args = ", ".join(f"{k} {_value(v, names, k)}" for k, v in (entry.get("args") or {}).items())
        generic = f"{command} {capability.replace('_', ' ')}".rstrip()
        doing = _say_or(language, f"trace.command.{capability}.{command}", generic)
        if args:
            doing += say("args", args=args)
        if not targets:
            why = entry.get("note") or say("no_device_matched")
            return [say("no_target", doing=_sentence(doing), why=why)]
        out = []
        for target in targets:
            name = names.get(str(target.get("device")), str(target.get("device")))
            status = str(target.get("status", "sent"))
            if status.startswith("skipped: "):
                out.append(say("left_alone", name=name, why=status.removeprefix("skipped: ")))
            elif status in ("ok", "sent", "done", "confirmed"):
                out.append(say("done", name=name, doing=doing))
            else:
                out.append(say("status", name=name, doing=doing,
                               status=_say_or(language, f"trace.status.{status}", status)))
        return out
    extra = _pairs(entry, names, {*_ACTION_OWN, "for_s"})
    what = _say_or(language, f"trace.action.kind.{kind}", _sentence(kind))
    return [say("other", kind=what, extra=extra) if extra else what]


def trace_sentences(trace: Mapping[str, Any], names: Mapping[str, str], scene: Scene | None = None, *,
                    area_names: Mapping[str, str] | None = None, tz: tzinfo | None = None,
                    language: str | None = None) -> list[str]:
    """One run told as a person tells it, one sentence a line: what set it off, with the device names and
    the limits compared ("Bathroom motion had been quiet for 47 min (limit 45 min)"), each condition and
    whether it was met, what was done, and how it ended. In ``language`` (a catalogue's tag; English when
    None). Used by ``hearth replay --explain`` and by the web UI (``GET /api/scenes/{id}/runs``)."""
    say = lambda key, **values: _say(language, f"trace.end.{key}", **values)  # noqa: E731
    lines = [_trigger_sentence(trace.get("trigger") or {}, scene, names, area_names, tz, language)]
    models = scene.conditions if scene is not None else []
    for index, detail in enumerate(trace.get("conditions", ()) or ()):
        lines.append(_condition_sentence(detail, models[index] if index < len(models) else None, names,
                                         area_names, tz, language))
    for entry in trace.get("actions", ()) or ():
        lines += _action_sentences(entry, names, language)
    result = str(trace.get("result", ""))
    kind = outcome(trace)
    if kind == "conditions not met":
        lines.append(say("did_nothing"))
    elif kind == "skipped":
        why = _without_until(result.removeprefix("skipped: ").removeprefix("skipped"))
        lines.append(say("skipped_why", why=_say_or(language, f"trace.skip.{why.replace(' ', '_')}", why))
                     if why else say("skipped"))
    elif kind == "changed nothing":
        lines.append(say("changed_nothing"))
    elif kind not in ("acted", "running"):
        lines.append(say("ended", result=_say_or(language, f"scenes.result.{result.replace(' ', '_')}", result)))
    return lines


# ------------------------------------------------------------------ --at


@dataclass(frozen=True)
class AtTime:
    """``--at``: a local time of day (``HH:MM``: its first time at or after the capture's start) or an
    ISO-8601 date and time (local to the house unless it has an offset)."""

    text: str
    time_of_day: time | None = None
    moment: datetime | None = None

    @classmethod
    def parse(cls, text: str) -> AtTime:
        value = text.strip()
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?", value)
        if match:
            return cls(text, time_of_day=time(int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)))
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"--at {text!r}: expected a time of day 'HH:MM' or a date and time "
                             f"'2026-03-10T07:30' (local time of the house)") from None
        return cls(text, moment=moment)

    def resolve(self, start: float, tz: tzinfo) -> float:
        if self.moment is not None:
            moment = self.moment if self.moment.tzinfo is not None else self.moment.replace(tzinfo=tz)
            return moment.timestamp()
        assert self.time_of_day is not None
        day = datetime.fromtimestamp(start, tz).date()
        candidate = datetime.combine(day, self.time_of_day, tz).timestamp()
        return candidate if candidate >= start else datetime.combine(day + timedelta(days=1), self.time_of_day,
                                                                     tz).timestamp()


# ------------------------------------------------------------------ --explain


def _same(a: Any, b: Any) -> bool:
    """Equality as the engine compares: true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _level_ok(trigger: Any, value: Any) -> bool:
    """Whether ``value`` is where a state trigger wants it (``to``, ``above``, ``below``)."""
    if value is None or (trigger.to is not None and not _same(value, trigger.to)):
        return False
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if trigger.above is not None and not (numeric and value > trigger.above):
        return False
    return not (trigger.below is not None and not (numeric and value < trigger.below))


def _values(device: Device, attribute: str) -> list[tuple[str, Any]]:
    cap, _, attr = attribute.partition(".")
    return [(component, caps[cap][attr]) for component, caps in sorted(device.state.items())
            if cap in caps and attr in caps[cap]]


class _Explainer:
    """What the engine and the hub say about one scene's triggers and conditions at ``now``."""

    def __init__(self, engine: SceneEngine, scene_id: str, start: float, now: float,
                 runs: Sequence[Mapping[str, Any]]) -> None:
        self.engine, self.scene_id, self.start, self.now, self.runs = engine, scene_id, start, now, runs
        self.hub = self.engine.hub
        self.tz: tzinfo = self.engine.settings.timezone
        self.names = {d.id: d.name for d in self.hub.devices.values()}
        self.runtime = self.engine.scenes[self.scene_id]
        self._keep: list[Any] = []

    def local(self, t: float) -> str:
        return datetime.fromtimestamp(t, self.tz).strftime("%Y-%m-%d %H:%M")

    def local_iso(self, text: Any) -> str:
        """A trace's ISO-8601 time in the house's time."""
        try:
            return self.local(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp())
        except ValueError:
            return str(text)

    def ago(self, t: float) -> str:
        return f"{self.local(t)}, {_duration(self.now - t)} before" if self.now - t >= 60 else self.local(t)

    def select(self, selector: Selector) -> list[Device]:
        return self.engine.select(selector, None)

    def matched(self, selector: Selector) -> tuple[list[Device], str]:
        devices = self.select(selector)
        if devices:
            return devices, f"matches {len(devices)} device{'s' if len(devices) != 1 else ''}: " + ", ".join(
                d.name for d in devices)
        text = f"matches no device ({_selector_text(selector)})"
        house = sorted({d.area for d in self.hub.devices.values() if d.area})
        if selector.area and not set(selector.area) & set(house):
            text += f"; the house's areas: {', '.join(house) or 'none'}"
        tags = sorted({t for d in self.hub.devices.values() for t in d.tags})
        if selector.tag and not set(selector.tag) & set(tags):
            text += f"; the house's tags: {', '.join(tags) or 'none'}"
        return devices, text

    # -------------------------------------------------------------- triggers

    def trigger(self, index: int, trigger: Any) -> dict[str, Any]:
        kind = getattr(trigger, "kind", "?")
        out: dict[str, Any] = {"index": index + 1, "kind": kind, "definition": definition(trigger), "lines": []}
        method: Callable[[int, Any, dict[str, Any]], None] | None = getattr(self, f"_trigger_{kind}", None)
        if method is not None:
            method(index, trigger, out)
        return out

    def _trigger_state(self, index: int, trigger: Any, out: dict[str, Any]) -> None:
        devices, text = self.matched(trigger.selector)
        out["lines"].append(text)
        has_level = trigger.to is not None or trigger.above is not None or trigger.below is not None
        pending = getattr(self.engine, "_pending", {})
        rows = []
        for device in devices:
            for component, value in _values(device, trigger.attribute) or [("main", None)]:
                row: dict[str, Any] = {"device": device.id, "name": device.name, "component": component,
                                       "value": value}
                where = device.name + (f" [{component}]" if component != "main" else "")
                line = f"{where}: {trigger.attribute} = {_value(value, self.names)}"
                if value is None:
                    line += " (not reported)"
                elif has_level:
                    row["at_level"] = _level_ok(trigger, value)
                    line += " — at the level" if row["at_level"] else " — not at the level"
                if trigger.for_ > 0 and value is not None and (row.get("at_level") or not has_level):
                    hold = pending.get(f"{self.scene_id}#{index}#{device.id}#{component}")
                    if isinstance(hold, dict) and "due" in hold:
                        since = float(hold["due"]) - trigger.for_
                        row.update(held_since=iso_utc(since), due=iso_utc(hold["due"]))
                        line += (f", held since {self.local(since)} ({_duration(self.now - since)} of "
                                 f"{_duration(trigger.for_)}): fires at {self.local(hold['due'])}")
                    else:
                        line += (", no hold running (it fired for this stretch already, or the value has been "
                                 "there since the device's first report, which is no change)")
                rows.append(row)
                out["lines"].append("  " + line)
        out["devices"] = rows
        if devices and has_level and not any(r.get("at_level") for r in rows):
            out["lines"].append("no matched device is at the level now")
        if devices and not self.runs and self.runtime.enabled and not any("due" in r for r in rows):
            # Every change into the level starts a run (or a hold that, kept, does): none was seen.
            held = f" and stayed there for {_duration(trigger.for_)}" if trigger.for_ > 0 else ""
            out["lines"].append(f"no matched device changed to the level{held} in the replay")

    def _trigger_absence(self, index: int, trigger: Any, out: dict[str, Any]) -> None:
        _devices, text = self.matched(trigger.selector)
        out["lines"].append(text)
        record = getattr(self.engine, "_absence", {}).get(f"{self.scene_id}#{index}")
        if not isinstance(record, dict) or record.get("last_activity") is None:
            out["lines"].append("no activity tracked yet")
            return
        last = float(record["last_activity"])
        started = getattr(self.engine, "_started_at", None)
        out["last_activity"] = iso_utc(last)
        seen = " (the replay's start: no activity seen since)" if started is not None and last <= started else ""
        out["lines"].append(f"last activity {self.ago(last)}{seen}")
        if record.get("fired") is not None:
            out["fired"] = iso_utc(record["fired"])
            out["lines"].append(f"last fired {self.local(record['fired'])}")
        due_of = getattr(self.engine, "next_absence_due", None)
        if due_of is not None:
            due = due_of(trigger, last, record.get("fired"), self.now)
            out["due"] = iso_utc(due) if due is not None else None
            out["lines"].append(f"next due {self.local(due)} unless there is activity before" if due is not None
                                else "not due again until new activity")

    def _occurrences(self, next_after: Callable[[float], float | None]) -> list[float]:
        found: list[float] = []
        t = self.start - 1
        for _ in range(400):  # bounded: a year of days
            due = next_after(t)
            if due is None or due > self.now:
                break
            found.append(due)
            t = due
        return found

    def _clock_lines(self, out: dict[str, Any], next_after: Callable[[float], float | None], what: str) -> None:
        reached = self._occurrences(next_after)
        out["reached"] = [iso_utc(t) for t in reached]
        if reached:
            out["lines"].append(f"{what} reached {len(reached)}x: " + ", ".join(self.local(t) for t in reached))
        else:
            upcoming = next_after(self.now)
            out["lines"].append(f"{what} not reached between {self.local(self.start)} and {self.local(self.now)}"
                                + (f" (next {self.local(upcoming)})" if upcoming is not None else ""))

    def _trigger_time(self, index: int, trigger: Any, out: dict[str, Any]) -> None:
        weekdays = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

        def next_after(t: float) -> float | None:
            day: date = datetime.fromtimestamp(t, self.tz).date()
            for offset in range(9):
                current = day + timedelta(days=offset)
                if trigger.weekdays and weekdays[current.weekday()] not in trigger.weekdays:
                    continue
                due = datetime.combine(current, time(trigger.at // 60, trigger.at % 60), self.tz).timestamp()
                if due > t:
                    return due
            return None

        self._clock_lines(out, next_after, _hhmm(trigger.at))

    def _trigger_sun(self, index: int, trigger: Any, out: dict[str, Any]) -> None:
        from gateway.scenes.sun import next_sun_event

        settings = self.engine.settings
        if settings.latitude is None or settings.longitude is None:
            out["lines"].append("no [location]: no sunrise or sunset")
            return
        latitude, longitude = settings.latitude, settings.longitude

        def next_after(t: float) -> float | None:
            when = next_sun_event(datetime.fromtimestamp(t, UTC), trigger.event, trigger.offset, latitude, longitude)
            return when.timestamp() if when else None

        self._clock_lines(out, next_after, trigger.event)

    def _trigger_button(self, index: int, trigger: Any, out: dict[str, Any]) -> None:
        devices, text = self.matched(trigger.selector)
        out["lines"].append(text + ("; a press of one of them fires it" if devices else ""))

    def _trigger_mode(self, index: int, trigger: Any, out: dict[str, Any]) -> None:
        out["lines"].append(f"the house mode is {self.engine.mode}; fires when it changes"
                            + (f" to {trigger.to}" if trigger.to else "")
                            + (f" from {trigger.from_}" if trigger.from_ else ""))

    def _trigger_occupancy(self, index: int, trigger: Any, out: dict[str, Any]) -> None:
        occupancy = getattr(self.engine, "occupancy", None)
        if not isinstance(occupancy, dict):
            return
        state, since = occupancy.get("state"), occupancy.get("since")
        line = f"the house is {state}"
        if since is not None:
            line += f" since {self.ago(float(since))}"
        if occupancy.get("reason"):
            line += f" ({occupancy['reason']})"
        out["lines"].append(line)

    def _trigger_start(self, index: int, trigger: Any, out: dict[str, Any]) -> None:
        out["lines"].append(f"fires when the engine starts ({self.local(self.start)} in this replay)")

    # -------------------------------------------------------------- conditions

    def conditions(self, last_trigger: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        """Each condition evaluated now; ``@trigger`` stands for the device (area) of ``last_trigger``,
        the last run's trigger, if any."""
        last = last_trigger or {}
        ctx = self._context(last)
        evaluate = getattr(self.engine, "_evaluate", None)
        found = []
        for index, condition in enumerate(self.runtime.scene.conditions, start=1):
            entry: dict[str, Any] = {"index": index, "kind": condition.kind, "definition": definition(condition)}
            selector = getattr(condition, "selector", None)
            if selector is not None and selector.uses_trigger:
                device = last.get("device_id")
                entry["trigger_device"] = device
                entry["note"] = (f"@trigger is the last run's trigger: {_device_text(device, self.names)}" if device
                                 else "@trigger: no run yet, so no triggering device: it selects nothing")
            if evaluate is not None:
                ok, detail = evaluate(condition, ctx)
                entry.update(result=ok, detail=detail)
            if getattr(condition, "for_", 0) and getattr(condition, "selector", None) is not None:
                entry["holds"] = self.holds(condition)
            found.append(entry)
        return found

    def _context(self, last_trigger: Mapping[str, Any] | None) -> Any:
        from gateway.scenes.engine import TriggerContext

        last = last_trigger or {}
        return TriggerContext("explain", self.now, last.get("device_id"), last.get("component"), last.get("area"))

    def actions(self, last_trigger: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        """What each action's target selects now, and for a ``where`` test, which devices pass it and
        how long it has held (a standby sweep that switched nothing off: the plug's hold was too short)."""
        from gateway.scenes.profile import Selector

        ctx = self._context(last_trigger)
        found = []
        for index, action in enumerate(self.runtime.scene.actions, start=1):
            target = getattr(action, "target", None) or getattr(action, "selector", None)
            if not isinstance(target, Selector):
                continue
            entry: dict[str, Any] = {"index": index, "kind": action.kind, "definition": definition(action)}
            selected = self.engine.select(target, ctx)
            entry["devices"] = [d.id for d in selected]
            lines = [f"selects {len(selected)} now: {', '.join(d.name for d in selected) or 'none'}"]
            if target.where is not None:
                # The same selector without its test: which devices the test leaves out, and why. Kept
                # for the engine's life (its caches are keyed by the selector's identity).
                self._keep.append(target.model_copy(update={"where": None}))
                candidates = self.engine.select(self._keep[-1], ctx)
                passing = {d.id for d in selected}
                for device in candidates:
                    values = ", ".join(_value(v, self.names) for _c, v in _values(device, target.where.attribute))
                    line = f"{device.name}: {target.where.attribute} = {values or 'not reported'}"
                    if target.where.for_ > 0:
                        line += f"; {self.hold_text(target.where, device)}"
                    line += " — selected" if device.id in passing else " — left out"
                    lines.append("  " + line)
            entry["lines"] = lines
            found.append(entry)
        return found

    def hold_text(self, test: Any, device: Device) -> str:
        held_since = getattr(self.engine, "held_since", None)
        if held_since is None:
            return "(this engine cannot say how long a test has held)"
        since = held_since(test, device)
        if since is None:
            return "the test does not hold now"
        enough = "enough" if self.now - since >= test.for_ else "not yet enough"
        return f"holds since {self.local(since)} ({_duration(self.now - since)} of {_duration(test.for_)}: {enough})"

    def holds(self, test: Any) -> list[str]:
        return [f"{device.name}: {self.hold_text(test, device)}" for device in self.select(test.selector)]


@dataclass
class Explanation:
    """:func:`explain_scene`'s answer: ``data`` is its JSON form, :meth:`text` what a person reads."""

    data: dict[str, Any]
    scene: Scene
    local: dict[str, str]  # the times of the header, in the house's time zone
    asked: bool  # a time was asked for (--at)
    tz: tzinfo | None = None  # the house's time zone: the runs' sentences say its times
    language: str | None = None  # the runs' sentences in this language (a catalogue's tag; English when None)

    def text(self) -> str:
        data, names = self.data, self.data["names"]
        lines = [f"{data['scene']} — {data['name']}"]
        span = f"capture {self.local['start']} to {self.local['end']} ({data['timezone']})"
        if self.asked:
            after = " (after the capture's end: its timers ran on)" if data["at"] > data["capture"]["end"] else ""
            lines.append(f"{span}; replayed up to {self.local['at']}{after}")
        else:
            lines.append(span)
        lines += ["", f"Why: {data['verdict']}."]
        if data["cooldown"]:
            lines.append(f"It is {data['cooldown']}.")
        runs = data["runs"]
        if runs:
            shown = runs[-RUNS_SHOWN:]
            more = f", the last {len(shown)}" if len(shown) < len(runs) else ""
            lines += ["", f"runs ({len(runs)}{more}):"]
            for trace in shown:
                lines += trace_lines(trace, names, self.scene)
                lines += [f"      {line}" for line in trace.get("sentences") or trace_sentences(
                    trace, names, self.scene, tz=self.tz, language=self.language)]
        lines += ["", f"triggers, at {self.local['at']} (any one starts a run):"]
        for trigger in data["triggers"]:
            lines.append(f"  {trigger['index']}. {trigger['kind']}: {trigger['definition']}")
            lines += [f"     {line}" for line in trigger["lines"]]
        if data["conditions"]:
            lines += ["", f"conditions, at {self.local['at']} (all must pass):"]
            for condition in data["conditions"]:
                model = self.scene.conditions[condition["index"] - 1]
                if "detail" in condition:
                    lines += _condition_lines(f"{condition['index']}.", condition["detail"], model, names, "  ")
                else:
                    lines.append(f"  {condition['index']}. {condition['kind']}: {condition['definition']}")
                if condition.get("note"):
                    lines.append(f"       ({condition['note']})")
                lines += [f"       {line}" for line in condition.get("holds", ())]
        if data["actions"]:
            lines += ["", f"targets of the actions, at {self.local['at']}:"]
            for action in data["actions"]:
                lines.append(f"  {action['index']}. {action['kind']}: {action['definition']}")
                lines += [f"     {line}" for line in action["lines"]]
        return "\n".join(lines)


def explain_scene(engine: SceneEngine, scene_id: str, traces: Sequence[Mapping[str, Any]], *, start: float,
                  end: float, now: float, asked: bool = False, language: str | None = None) -> Explanation:
    """Why ``scene_id`` did or did not run, from its runs in ``traces`` and from the engine and the hub
    as they are at ``now`` (the end of the replay, or the time asked for: ``asked``). Each run's sentences
    (what a caregiver reads in the UI) are in ``language``; the installer's lines stay as the profile says."""
    runs = sorted((t for t in traces if t.get("scene") == scene_id), key=lambda t: str(t.get("t", "")))
    explainer = _Explainer(engine, scene_id, start, now, runs)
    runtime = explainer.runtime
    scene = runtime.scene
    counts = Counter(outcome(t) for t in runs)
    acted = [t for t in runs if outcome(t) == "acted"]
    when = f"by {explainer.local(now)}" if asked else "in the capture"
    times = f"{len(runs)} time{'s' if len(runs) != 1 else ''}"
    if not runtime.enabled:
        verdict = "it is disabled (in the profile or the config): it never runs"
    elif acted:
        verdict = f"it ran {times} {when} and acted {len(acted)} (last at {explainer.local_iso(acted[-1].get('t'))})"
    elif runs:
        verdict = f"it ran {times} {when} but never acted: " + ", ".join(f"{n}x {k}" for k, n in counts.most_common())
        failed = Counter(_failed_condition(t) for t in runs if outcome(t) == "conditions not met")
        if failed:
            verdict += "; failing: " + ", ".join(f"{c} in {n} run{'s' if n != 1 else ''}"
                                                for c, n in failed.most_common())
    else:
        verdict = f"it never ran {when}: no trigger fired (see each trigger below)"
    cooldown = None
    if scene.cooldown and runtime.last_acted is not None and now - runtime.last_acted < scene.cooldown:
        cooldown = f"in its cooldown until {explainer.local(runtime.last_acted + scene.cooldown)}"
    data = {
        "scene": scene_id,
        "name": scene.name,
        "enabled": runtime.enabled,
        "timezone": str(explainer.tz),
        "capture": {"start": iso_utc(start), "end": iso_utc(end)},
        "at": iso_utc(now),
        "verdict": verdict,
        "cooldown": cooldown,
        "counts": dict(counts),
        "runs": runs,
        "triggers": [explainer.trigger(i, trigger) for i, trigger in enumerate(scene.triggers)],
        "conditions": explainer.conditions(runs[-1].get("trigger") if runs else None),
        "actions": explainer.actions(runs[-1].get("trigger") if runs else None),
        "names": explainer.names,
    }
    # Each run said as sentences, as the UI's traces say it (in --json too: a tool shows them as they are).
    data["runs"] = [dict(run, sentences=trace_sentences(run, explainer.names, scene, tz=explainer.tz,
                                                        language=language)) for run in runs]
    data["language"] = language or DEFAULT_LANGUAGE
    local = {"start": explainer.local(start), "end": explainer.local(end), "at": explainer.local(now)}
    return Explanation(data, scene, local, asked, explainer.tz, language)


# ------------------------------------------------------------------ area parameters


def _areas_used(node: Any, area: str) -> bool:
    """Whether a scene names ``area`` anywhere it selects by area (selectors, ``last_activity``)."""
    if isinstance(node, BaseModel):
        value = getattr(node, "area", None)
        if isinstance(value, list) and area in value:
            return True
        return any(_areas_used(getattr(node, name), area) for name in type(node).model_fields)
    if isinstance(node, (list, tuple)):
        return any(_areas_used(item, area) for item in node)
    return False


def area_parameter_warnings(profiles: Iterable[Profile], house_areas: Iterable[str | None],
                            where: str) -> list[str]:
    """A sentence for each ``area``/``areas`` parameter value that is not one of ``house_areas``
    (``where`` says where those come from: "the [areas] of house.toml")."""
    areas = sorted({a for a in house_areas if a})
    known = f"{where}: {', '.join(areas)}" if areas else f"{where}: none"
    warnings = []
    for profile in profiles:
        for name, spec in profile.parameters.items():
            if spec.type not in ("area", "areas"):
                continue
            settings: list[tuple[str | None, Any]] = [(None, profile.values.get(name))]
            overrides = getattr(profile, "overrides", {}) or {}
            settings += [(scene_id, o.values[name]) for scene_id, o in overrides.items()
                         if name in getattr(o, "values", {})]
            for scene_id, value in settings:
                for area in [value] if isinstance(value, str) else value or []:
                    if area in areas:
                        continue
                    scenes = [s.id for s in profile.scenes if _areas_used(s, area)
                              and (scene_id is None or s.id == scene_id)]
                    used = "" if not scenes else f"; scene {scenes[0]} finds nothing there" if len(scenes) == 1 \
                        else f"; scenes {', '.join(scenes)} find nothing there"
                    which = f" (for scene {scene_id})" if scene_id else ""
                    warnings.append(f"profile {profile.name}: parameter {name} = {area!r}{which} names an area "
                                    f"the house does not have ({known}){did_you_mean(area, areas)}{used}")
    return warnings
