"""The profile language: TOML, pure data, never code.

A profile declares typed **parameters** and **scenes**. A scene has triggers, conditions and actions
whose targets are **selectors** (area, capability, tag, device id), so one profile fits many houses.
Parameters are used as ``"${name}"``: a string that is exactly a reference takes the parameter's typed
value; a reference inside a longer string is replaced by its text.

Loading is strict: unknown keys, wrong types, unknown capabilities or commands and impossible selectors
are errors naming the file, the line and the key.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigError, ConfigProblem
from gateway.model import capabilities, capability
from gateway.suggest import did_you_mean, model_keys, walk_loc
from gateway.tomlloc import loads_toml

PROFILE_SCHEMA_VERSION = 1
MODES = ("home", "away", "night", "vacation")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TRIGGER_REF = "@trigger"  # in a selector: the device (or its area) that triggered the scene

_DURATION = re.compile(r"^\s*(-)?\s*((?:\d+(?:\.\d+)?\s*[dhms]\s*)+)$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([dhms])")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_REF = re.compile(r"\$\{([a-z][a-z0-9_]*)\}")
_SLUG = r"^[a-z][a-z0-9_-]*$"


def parse_duration(value: Any) -> float:
    """``"90s"``, ``"10m"``, ``"1h30m"``, ``"-15m"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '10m', '1h30m' or '45s' (got {value!r})")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):  # TOML has inf and nan; a timer due at nan would fire at once
            raise ValueError(f"expected a duration such as '10m', '1h30m' or '45s' (got {value!r})")
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(match.group(2)))
            return -seconds if match.group(1) else seconds
    raise ValueError(f"expected a duration such as '10m', '1h30m' or '45s' (got {value!r})")


def parse_time_of_day(value: Any) -> int:
    """``"07:30"`` -> minutes after midnight."""
    if isinstance(value, str):
        match = _TIME.match(value.strip())
        if match:
            return int(match.group(1)) * 60 + int(match.group(2))
    raise ValueError(f"expected a time of day 'HH:MM' such as '07:30' (got {value!r})")


def format_time_of_day(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _nonnegative(seconds: float) -> float:
    if seconds < 0:
        raise ValueError(f"expected a duration of zero or more (got {seconds:g} s)")
    return seconds


# The JSON Schema (``hearth schema profile``) says what a file may hold, not what pydantic makes of it:
# a duration is written "10m", a time of day "07:30", a list of one may be a single string.
_DURATION_SCHEMA = {"anyOf": [{"type": "string", "pattern": r"^\s*-?\s*(\d+(\.\d+)?\s*[dhms]\s*)+$"},
                              {"type": "number"}]}
Duration = Annotated[float, BeforeValidator(lambda v: _nonnegative(parse_duration(v))),
                     WithJsonSchema(_DURATION_SCHEMA)]
SignedDuration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
TimeOfDay = Annotated[int, BeforeValidator(parse_time_of_day),
                      WithJsonSchema({"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$"})]
StrList = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v),
                    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})]


class _Strict(BaseModel):
    # A string right below a field is its description: the reference (docs/profile-language.md) and the
    # JSON Schema of ``hearth schema profile`` are generated from them (gateway.scenes.reference).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _example(*examples: dict[str, Any]) -> ConfigDict:
    """A model's examples (as TOML would give them), for the reference and the JSON Schema; a test loads
    each one, so they cannot rot."""
    return ConfigDict(json_schema_extra={"examples": list(examples)})


def unknown_capability(name: str) -> str:
    """The reason for an unknown capability name, with the closest known names."""
    hint = did_you_mean(name, capabilities())
    return f"unknown capability {name!r}" + (hint or f" (known: {', '.join(sorted(capabilities()))})")


def _split_attribute(value: str) -> tuple[str, str]:
    # Plugin capabilities are dotted themselves (``acme.coffee_maker.state``): the attribute is the last part.
    cap, _, attr = value.rpartition(".") if "." in value else (value, "", "")
    return cap, attr


def _check_attribute(value: str) -> str:
    cap, attr = _split_attribute(value)
    spec = capability(cap)
    if spec is None:
        hint = did_you_mean(cap, capabilities())
        raise ValueError(f"unknown capability {cap!r} in {value!r}"
                         + (hint or f" (known: {', '.join(sorted(capabilities()))})"))
    if attr not in spec.attributes:
        hint = did_you_mean(attr, spec.attributes)
        hint = hint or (f" (it has: {', '.join(spec.attributes) or 'none'}); "
                        "write it as 'capability.attribute', e.g. 'occupancy.occupied'")
        raise ValueError(f"{cap} has no attribute {attr!r}{hint}")
    return value


AttributeRef = Annotated[str, BeforeValidator(lambda v: _check_attribute(v) if isinstance(v, str) else v),
                         WithJsonSchema({"type": "string", "pattern": r"^[a-z][a-z0-9_.]*\.[a-z][a-z0-9_]*$"})]


def _show(value: Any) -> str:
    """A value as TOML writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def _a_number(value: Any, key: str) -> Any:
    """``above``/``below`` take numbers only: not ``true`` (pydantic would read it as 1) nor ``"5"``."""
    if isinstance(value, (bool, str)):
        raise ValueError(f"'{key}' compares numbers: expected a number (got {_show(value)})")
    return value


def check_comparison(attribute: str | None, key: str, value: Any, equality: str = "equals") -> Any:
    """``value`` if comparing ``attribute`` with it under ``key`` can ever hold, else ValueError saying why.

    ``key`` is ``above`` or ``below`` (numbers), or an equality key (``equals``, ``to``, ``from``,
    ``activity``). ``equality`` is how the table writes an equality, for the advice."""
    if attribute is None or value is None:
        return value  # a wrong attribute was reported on its own key
    cap, attr = _split_attribute(attribute)
    spec = capability(cap)
    attr_spec = spec.attributes.get(attr) if spec is not None else None
    if attr_spec is None:
        return value
    kind = attr_spec.type
    unit = f" {attr_spec.unit}" if attr_spec.unit else ""
    ordered = key in ("above", "below")
    if kind == "bool":
        if ordered:
            raise ValueError(f"{attribute} is true or false, not a number: '{key}' never holds "
                             f"(write {equality} = true or {equality} = false)")
        if not isinstance(value, bool):
            raise ValueError(f"{attribute} is true or false: expected true or false (got {_show(value)})")
    elif kind == "enum":
        words = ", ".join(attr_spec.values)
        if ordered:
            raise ValueError(f"{attribute} is one of {words}, not a number: '{key}' never holds "
                             f"(write {equality} = \"{attr_spec.values[0]}\")")
        if not isinstance(value, str) or value not in attr_spec.values:
            hint = did_you_mean(value, attr_spec.values) if isinstance(value, str) else ""
            raise ValueError(f"{attribute} is one of {words}: got {_show(value)}{hint}")
    elif kind in ("string", "timestamp"):
        if ordered:
            raise ValueError(f"{attribute} is text, not a number: '{key}' never holds")
        if not isinstance(value, str):
            raise ValueError(f"{attribute} is text: expected a string (got {_show(value)})")
    else:  # number, integer
        low, high = attr_spec.minimum, attr_spec.maximum
        if not _is_number(value):
            raise ValueError(f"{attribute} is a number{unit}: expected a number (got {_show(value)})")
        if key == "above" and high is not None and value >= high:
            raise ValueError(f"{attribute} is at most {high:g}{unit}: it is never above {_show(value)}")
        if key == "below" and low is not None and value <= low:
            raise ValueError(f"{attribute} is at least {low:g}{unit}: it is never below {_show(value)}")
        if not ordered and ((low is not None and value < low) or (high is not None and value > high)):
            span = f"{low:g}" if low is not None else "…"
            span += f" to {high:g}" if high is not None else " or more"
            raise ValueError(f"{attribute} is {span}{unit}: it is never {_show(value)}")
        if not ordered and kind == "integer" and not float(value).is_integer():
            raise ValueError(f"{attribute} is a whole number: it is never {_show(value)}")
    return value


class TimeWindow(_Strict):
    """From ``after`` to ``before``, local time; wraps midnight when ``after`` > ``before``."""

    model_config = _example({"after": "23:00", "before": "06:00"})

    after: TimeOfDay
    """Start, local time 'HH:MM'."""
    before: TimeOfDay
    """End, local time 'HH:MM' (not included); earlier than ``after``: the window wraps midnight."""

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.after == self.before:
            raise ValueError("'after' and 'before' are the same time: the window would be empty")
        return self

    def contains(self, minute_of_day: float) -> bool:
        if self.after < self.before:
            return self.after <= minute_of_day < self.before
        return minute_of_day >= self.after or minute_of_day < self.before


class StateTest(_Strict):
    """A comparison of one attribute: ``equals``, ``not_equals``, ``above``, ``below``, held ``for``."""

    model_config = _example({"attribute": "power_meter.watts", "below": 5, "for": "30m"})

    attribute: AttributeRef
    """The attribute tested, as 'capability.attribute' (capabilities.md), e.g. 'power_meter.watts'."""
    equals: bool | float | str | None = None
    """Passes when the value is this; true/false, a number or a word, as the attribute's type."""
    not_equals: bool | float | str | None = None
    """Passes when the value is anything but this (and known)."""
    above: float | None = None
    """Passes when the value is a number above this (numeric attributes only)."""
    below: float | None = None
    """Passes when the value is a number below this (numeric attributes only)."""
    for_: Duration = Field(0.0, alias="for")
    """The test must have passed this long without a break ('30m'); 0: at once."""

    @field_validator("above", "below", mode="before")
    @classmethod
    def _numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return _a_number(value, str(info.field_name))

    # The comparison must fit the attribute's type in the capability model (a test that can never
    # hold is a scene that silently never runs); values from ``${param}`` are checked here too.
    @field_validator("equals", "not_equals", "above", "below")
    @classmethod
    def _fits_the_attribute(cls, value: Any, info: ValidationInfo) -> Any:
        return check_comparison(info.data.get("attribute"), str(info.field_name), value)

    def test(self, value: Any) -> bool:
        if value is None:
            return False
        if self.equals is not None and not _same(value, self.equals):
            return False
        if self.not_equals is not None and _same(value, self.not_equals):
            return False
        if self.above is not None and not (_is_number(value) and value > self.above):
            return False
        return not (self.below is not None and not (_is_number(value) and value < self.below))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


class Selector(_Strict):
    """Which devices: all given criteria must hold. ``@trigger`` in ``device``/``area`` means the
    triggering device or its area."""

    model_config = _example({"area": "living_room", "capability": "on_off", "exclude_tag": "always_on"})

    device: StrList | None = None
    """Device ids; '@trigger': the device that triggered the scene."""
    area: StrList | None = None
    """Areas (from the config's [areas]); '@trigger': the area of the device that triggered the scene."""
    capability: StrList | None = None
    """Devices that have one of these capabilities."""
    tag: StrList | None = None
    """Devices with one of these tags (from the config's [tags])."""
    exclude_device: StrList | None = None
    """Leave out these device ids."""
    exclude_area: StrList | None = None
    """Leave out devices in these areas."""
    exclude_tag: StrList | None = None
    """Leave out devices with one of these tags ('always_on')."""
    where: StateTest | None = None
    """Only the devices whose attribute passes this test, e.g. a plug below 5 W for 30 minutes."""

    @field_validator("capability")
    @classmethod
    def _known_capabilities(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if capability(name) is None:
                raise ValueError(unknown_capability(name))
        return value

    @model_validator(mode="after")
    def _possible(self) -> Selector:
        if not any((self.device, self.area, self.capability, self.tag)):
            raise ValueError("a selector must name at least one of device, area, capability or tag")
        for name, include, exclude in (
            ("device", self.device, self.exclude_device),
            ("area", self.area, self.exclude_area),
            ("tag", self.tag, self.exclude_tag),
        ):
            if include and exclude and set(include) <= set(exclude):
                raise ValueError(f"impossible selector: every {name} it includes is also excluded")
        return self

    @property
    def uses_trigger(self) -> bool:
        return TRIGGER_REF in (self.device or ()) or TRIGGER_REF in (self.area or ())


# ------------------------------------------------------------------ triggers


class StateTrigger(_Strict):
    """A selected device's attribute changed so that it passes ``to`` / ``above`` / ``below`` (it did not
    before), coming from ``from``, and kept passing ``for`` this long. A device's first report after
    start is no change."""

    model_config = _example({
        "kind": "state",
        "selector": {"tag": "entrance", "capability": "contact"},
        "attribute": "contact.open",
        "to": True,
    })

    kind: Literal["state"]
    selector: Selector
    """The devices watched."""
    attribute: AttributeRef
    """The attribute watched, as 'capability.attribute'."""
    to: bool | float | str | None = None
    """Fires when the attribute becomes this value (of the attribute's type)."""
    from_: bool | float | str | None = Field(None, alias="from")
    """Fires only when the value before was this."""
    above: float | None = None
    """Fires when the value goes above this number."""
    below: float | None = None
    """Fires when the value goes below this number."""
    for_: Duration = Field(0.0, alias="for")
    """The new value must keep passing this long before the trigger fires ('10m')."""

    @field_validator("above", "below", mode="before")
    @classmethod
    def _numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return _a_number(value, str(info.field_name))

    @field_validator("to", "from_", "above", "below")
    @classmethod
    def _fits_the_attribute(cls, value: Any, info: ValidationInfo) -> Any:
        key = "from" if info.field_name == "from_" else str(info.field_name)
        return check_comparison(info.data.get("attribute"), key, value, equality="to")


class AbsenceTrigger(_Strict):
    """No activity (``attribute`` becoming ``activity``; any change if ``activity`` is omitted) on any
    selected device for ``for``, counted only inside ``window``."""

    model_config = _example({
        "kind": "absence",
        "selector": {"capability": "occupancy"},
        "for": "3h",
        "window": {"after": "07:00", "before": "22:00"},
    })

    kind: Literal["absence"]
    selector: Selector
    """The devices whose activity counts."""
    attribute: AttributeRef = "occupancy.occupied"
    """The attribute that shows activity, as 'capability.attribute'."""
    activity: bool | float | str | None = True
    """The value of ``attribute`` that is activity."""
    # Without ``for``, the absence is the whole window: it fires at the window's end when there was
    # no activity in it ("nobody up by 09:30").
    for_: Duration | None = Field(None, alias="for")
    """How long without activity (above zero)."""
    window: TimeWindow | None = None
    """Count only inside this time window ('after' to 'before'); without ``for``: the whole window."""

    @field_validator("activity")
    @classmethod
    def _fits_the_attribute(cls, value: Any, info: ValidationInfo) -> Any:
        return check_comparison(info.data.get("attribute"), "activity", value, equality="activity")

    @model_validator(mode="after")
    def _has_duration(self) -> AbsenceTrigger:
        if self.for_ is None and self.window is None:
            raise ValueError("an absence needs 'for' (a duration), a 'window', or both")
        if self.for_ is not None and self.for_ <= 0:
            raise ValueError("an absence needs a duration above zero")
        return self


class TimeTrigger(_Strict):
    """At a time of day, local time, on every day or on some weekdays."""

    model_config = _example({"kind": "time", "at": "07:30", "weekdays": ["mon", "tue", "wed", "thu", "fri"]})

    kind: Literal["time"]
    at: TimeOfDay
    """The time of day, 'HH:MM'."""
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None
    """Only on these days (mon, tue, wed, thu, fri, sat, sun); default: every day."""


class SunTrigger(_Strict):
    """At sunrise or sunset, computed on the gateway from the config's [location]."""

    model_config = _example({"kind": "sun", "event": "sunset", "offset": "-15m"})

    kind: Literal["sun"]
    event: Literal["sunrise", "sunset"]
    """sunrise or sunset."""
    offset: SignedDuration = 0.0
    """Before ('-30m') or after ('15m') the event."""


class ButtonTrigger(_Strict):
    """A selected button was pressed."""

    model_config = _example({
        "kind": "button",
        "selector": {"tag": "panic", "capability": "button"},
        "press": ["single", "long"],
    })

    kind: Literal["button"]
    selector: Selector
    """The buttons watched."""
    press: list[Literal["single", "double", "triple", "long", "hold", "release"]] | None = None
    """Only these kinds of press; default: any."""


class ModeTrigger(_Strict):
    """The house mode changed (``home``, ``away``, ``night``, ``vacation``)."""

    model_config = _example({"kind": "mode", "to": "night"})

    kind: Literal["mode"]
    to: Literal["home", "away", "night", "vacation"] | None = None
    """Fires when the mode becomes this; default: any change."""
    from_: Literal["home", "away", "night", "vacation"] | None = Field(None, alias="from")
    """Fires only when the mode was this before."""


class OccupancyTrigger(_Strict):
    """The house's occupancy (``home``, ``away``, ``unknown``: see the engine's occupancy tracking)
    became ``to`` (from ``from``), and has stayed so ``for`` this long."""

    model_config = _example({"kind": "occupancy", "to": "away", "for": "10m"})

    kind: Literal["occupancy"]
    to: Literal["home", "away", "unknown"] | None = None
    """Fires when the occupancy becomes this; default: any change."""
    from_: Literal["home", "away", "unknown"] | None = Field(None, alias="from")
    """Fires only when the occupancy was this before."""
    for_: Duration = Field(0.0, alias="for")
    """The new occupancy must last this long before the trigger fires."""


class StartTrigger(_Strict):
    """When the gateway has started (and restored its state)."""

    model_config = _example({"kind": "start"})

    kind: Literal["start"]


Trigger = Annotated[
    StateTrigger | AbsenceTrigger | TimeTrigger | SunTrigger | ButtonTrigger | ModeTrigger | OccupancyTrigger
    | StartTrigger,
    Field(discriminator="kind"),
]

# ------------------------------------------------------------------ conditions


class TimeCondition(_Strict):
    """Now is between ``after`` and ``before``, local time (wraps midnight when ``after`` is later)."""

    model_config = _example({"kind": "time", "after": "22:00", "before": "06:30"})

    kind: Literal["time"]
    after: TimeOfDay
    """From this time of day, 'HH:MM'."""
    before: TimeOfDay
    """Until this time of day, 'HH:MM' (not included)."""

    @property
    def window(self) -> TimeWindow:
        return TimeWindow.model_construct(after=self.after, before=self.before)


class WeekdayCondition(_Strict):
    """Today is one of ``days``."""

    model_config = _example({"kind": "weekday", "days": ["sat", "sun"]})

    kind: Literal["weekday"]
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    """mon, tue, wed, thu, fri, sat, sun."""


class StateCondition(StateTest):
    """The selected devices' ``attribute`` passes the test (``equals``, ``not_equals``, ``above``, ``below``,
    held ``for``): ``match = "any"``: some selected device passes; ``"all"``: every one does (and there is
    one); ``"none"``: none does."""

    model_config = _example({
        "kind": "state",
        "selector": {"area": "living_room", "capability": "occupancy"},
        "attribute": "occupancy.occupied",
        "equals": False,
        "for": "15m",
        "match": "all",
    })

    kind: Literal["state"]
    selector: Selector
    """The devices tested."""
    match: Literal["any", "all", "none"] = "any"
    """any: some selected device passes; all: every one does (and there is one); none: none does."""


class ModeCondition(_Strict):
    """The house mode is one of ``is``."""

    model_config = _example({"kind": "mode", "is": ["home", "night"]})

    kind: Literal["mode"]
    is_: list[Literal["home", "away", "night", "vacation"]] = Field(alias="is", min_length=1)
    """home, away, night, vacation."""


class OccupancyCondition(_Strict):
    """The house's occupancy is one of ``is`` (``home``, ``away``, ``unknown``)."""

    model_config = _example({"kind": "occupancy", "is": ["home"]})

    kind: Literal["occupancy"]
    is_: list[Literal["home", "away", "unknown"]] = Field(alias="is", min_length=1)
    """home, away, unknown."""


class EventSpec(_Strict):
    """Something that happens: ``attribute`` of a selected device becomes ``to`` (changes at all, without
    ``to``). A first report after start is not an event."""

    model_config = _example({"selector": {"tag": "entrance", "capability": "contact"}, "attribute": "contact.open",
                             "to": False})

    selector: Selector
    """Which devices (no ``@trigger`` here: an event is remembered whatever triggered the scene)."""
    attribute: AttributeRef
    """``capability.attribute``."""
    to: bool | float | str | None = None
    """The value it becomes; any change when left out."""


class HappenedCondition(EventSpec):
    """An event happened: within the last ``within``, or after the last ``after`` event (and, with both,
    within ``within`` of it). "No movement since the door closed" is this inside ``not``; "the door opened
    within 2 minutes after movement in the hall" is ``after`` with ``within``."""

    model_config = _example(
        {"kind": "happened", "selector": {"capability": "occupancy"}, "attribute": "occupancy.occupied",
         "to": True, "after": {"selector": {"tag": "entrance", "capability": "contact"},
                               "attribute": "contact.open", "to": False}},
        {"kind": "happened", "selector": {"tag": "entrance", "capability": "contact"}, "attribute": "contact.open",
         "to": True, "within": "10m"},
    )

    kind: Literal["happened"]
    within: Duration | None = None
    """How recent: within this long before now, or (with ``after``) after the ``after`` event."""
    after: EventSpec | None = None
    """It must have happened after the last time this did (which must have happened)."""

    @model_validator(mode="after")
    def _bounded(self) -> HappenedCondition:
        if self.within is None and self.after is None:
            raise ValueError("'happened' needs 'within' (how recent), 'after' (an earlier event), or both")
        return self


class LastActivityCondition(_Strict):
    """The most recent activity (occupancy) in the house was in one of ``area``."""

    model_config = _example({"kind": "last_activity", "area": "bathroom"})

    kind: Literal["last_activity"]
    area: StrList = Field(min_length=1)
    """The areas."""


class AnyCondition(_Strict):
    """At least one of ``conditions`` holds (a scene's own conditions must all hold: this is their 'or')."""

    model_config = _example({
        "kind": "any",
        "conditions": [{"kind": "mode", "is": ["away"]}, {"kind": "time", "after": "23:00", "before": "06:00"}],
    })

    kind: Literal["any"]
    conditions: list[Condition] = Field(min_length=1)
    """The conditions, of any kind."""


class NotCondition(_Strict):
    """``condition`` does not hold."""

    model_config = _example({"kind": "not", "condition": {"kind": "mode", "is": ["vacation"]}})

    kind: Literal["not"]
    condition: Condition
    """The condition, of any kind."""


Condition = Annotated[
    TimeCondition | WeekdayCondition | StateCondition | ModeCondition | OccupancyCondition | LastActivityCondition
    | HappenedCondition | AnyCondition | NotCondition,
    Field(discriminator="kind"),
]
AnyCondition.model_rebuild()
NotCondition.model_rebuild()

# ------------------------------------------------------------------ actions


class CommandAction(_Strict):
    """Send a command to every target device that takes it (capabilities.md lists the commands)."""

    model_config = _example({
        "kind": "command",
        "target": {"area": "@trigger", "capability": "level"},
        "capability": "level",
        "command": "set",
        "args": {"percent": 30},
    })

    kind: Literal["command"]
    target: Selector
    """The devices commanded."""
    capability: str
    """The command's capability."""
    command: str
    """The command, one of the capability's."""
    # Checked even when left out: a command may need arguments.
    args: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    """The command's arguments, checked against the capability model."""
    override_manual: bool = False
    """Command a device even under a manual override (an "everybody left" scene switches off the light
    somebody touched ten minutes ago)."""

    # One validator per field (they run in field order and see the fields before them), so an error
    # names the key that is wrong: ``capability``, ``command`` or ``args``.
    @field_validator("capability")
    @classmethod
    def _known_capability(cls, value: str) -> str:
        if capability(value) is None:
            raise ValueError(unknown_capability(value))
        return value

    @field_validator("command")
    @classmethod
    def _known_command(cls, value: str, info: ValidationInfo) -> str:
        spec = capability(info.data.get("capability", ""))
        if spec is not None and value not in spec.commands:
            hint = did_you_mean(value, spec.commands)
            raise ValueError(f"{spec.name} has no command {value!r}"
                             + (hint or f" (commands: {', '.join(spec.commands) or 'none'})"))
        return value

    @field_validator("args")
    @classmethod
    def _fitting_args(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        spec = capability(info.data.get("capability", ""))
        cmd = spec.commands.get(info.data.get("command", "")) if spec is not None else None
        if spec is None or cmd is None:
            return value  # already reported on its own key
        where = f"{spec.name}.{info.data['command']}"
        for name, arg_value in value.items():
            arg = cmd.args.get(name)
            if arg is None:
                hint = did_you_mean(name, cmd.args)
                raise ValueError(f"{where} takes no argument {name!r}"
                                 + (hint or f" (arguments: {', '.join(cmd.args) or 'none'})"))
            problem = arg.as_attribute().check(arg_value)
            if problem:
                raise ValueError(f"argument {name!r}: {problem}")
        for name, arg in cmd.args.items():
            if arg.required and name not in value:
                raise ValueError(f"{where} needs the argument {name!r}")
        return value


class SetModeAction(_Strict):
    """Set the house mode."""

    model_config = _example({"kind": "set_mode", "mode": "night"})

    kind: Literal["set_mode"]
    mode: Literal["home", "away", "night", "vacation"]
    """home, away, night or vacation."""


class NotifyAction(_Strict):
    """Send a notification. In ``title`` and ``message``, ``{device}``, ``{area}``, ``{value}``,
    ``{scene}``, ``{time}``, ``{date}``, ``{duration}``, ``{since}`` (when the house's occupancy began)
    and ``{done}`` (what the run's commands so far actually did) are replaced."""

    model_config = _example({
        "kind": "notify",
        "to": "log",
        "title": "Washer",
        "message": "{device} has finished ({time}).",
    })

    kind: Literal["notify"]
    to: StrList = Field(min_length=1)
    """Names of the config's [notify.<name>] targets ('log' is always there)."""
    title: str = ""
    """A short title."""
    message: str
    """The text."""
    severity: Literal["info", "warning", "critical"] = "info"
    """info, warning or critical."""


class AlertAction(_Strict):
    """Raise an alert (once while it is open) and tell the contacts, in escalation order.

    The policy: ``notify[0]`` is told at once; every ``escalate_after`` without an acknowledgement the
    same contact is reminded, ``reminders`` times, and then the next contact is told (and reminded as
    many times), to the end of the list; then, with ``final_notice``, every contact gets a last
    "unanswered" notice and the escalation stops (the alert stays open, and shown, until someone
    acknowledges or it resolves). ``max_notifications`` caps the count before that final notice.
    Without ``escalate_after`` only ``notify[0]`` is told. A contact whose every channel failed (after the
    notifier's retries) is passed over at once: the next contact is told without waiting for
    ``escalate_after``, her remaining reminders are skipped, and the alert's history says why.

    ``resolve = "auto"``: the alert resolves itself when what raised it is over: activity again after an
    absence, the value back out of range after a held state trigger, or ``resolve_when`` holding; the
    contacts who were told are told it resolved. ``"manual"``: only a person or a ``clear_alert`` does."""

    model_config = _example({
        "kind": "alert",
        "alert": "night-door",
        "severity": "warning",
        "title": "Door opened at night",
        "message": "{device} opened at {time}.",
        "notify": ["daughter", "neighbour"],
        "escalate_after": "10m",
    })

    kind: Literal["alert"]
    alert: str = Field(pattern=_SLUG)
    """The alert's key: one open alert per key (lowercase, digits, '-', '_')."""
    severity: Literal["info", "warning", "critical"] = "warning"
    """info, warning or critical."""
    title: str = ""
    """A short title."""
    message: str
    """The text; placeholders as in ``notify``."""
    notify: StrList = Field(default_factory=list)
    """The contacts, in escalation order: names of the config's [notify.<name>] targets."""
    escalate_after: Duration | None = None
    """How long to wait for an acknowledgement before the next notification."""
    reminders: int = Field(0, ge=0, le=20)
    """How many times each contact is reminded, every ``escalate_after``, before the next one is told."""
    final_notice: bool = True
    """At the end of the list, every contact gets a last "unanswered" notice and the escalation stops."""
    max_notifications: int | None = Field(None, ge=1, le=100)
    """The most notifications before the final notice; default: no cap."""
    resolve: Literal["auto", "manual"] = "auto"
    """auto: the alert resolves itself when what raised it is over; manual: only a person or clear_alert."""
    resolve_when: Condition | None = None
    """auto: the alert also resolves when this condition holds."""


class ClearAlertAction(_Strict):
    """Close the open alerts with this key raised by scenes of the same profile."""

    model_config = _example({"kind": "clear_alert", "alert": "night-door"})

    kind: Literal["clear_alert"]
    alert: str = Field(pattern=_SLUG)
    """The alert's key."""


class DelayAction(_Strict):
    """Wait before the next action."""

    model_config = _example({"kind": "delay", "for": "5m"})

    kind: Literal["delay"]
    for_: Duration = Field(alias="for")
    """How long."""


class WaitForAction(StateTest):
    """Wait until a selected device passes the test, at most ``timeout``."""

    model_config = _example({
        "kind": "wait_for",
        "selector": {"tag": "entrance", "capability": "contact"},
        "attribute": "contact.open",
        "equals": False,
        "timeout": "10m",
        "on_timeout": "continue",
    })

    kind: Literal["wait_for"]
    selector: Selector
    """The devices waited on."""
    timeout: Duration
    """The longest wait."""
    on_timeout: Literal["stop", "continue"] = "stop"
    """stop: the scene ends there; continue: the next actions run anyway."""


class SaveStateAction(_Strict):
    """Remember ``attribute`` of the target devices under ``key`` (for ``restore_state``). A device
    already saved under the key keeps its first value (a second open window must not save the
    setback as the value to restore)."""

    model_config = _example({
        "kind": "save_state",
        "target": {"area": "@trigger", "capability": "thermostat"},
        "attribute": "thermostat.target_celsius",
        "key": "window-setback",
    })

    kind: Literal["save_state"]
    target: Selector
    """The devices whose value is saved."""
    attribute: AttributeRef
    """The attribute saved, as 'capability.attribute'."""
    key: str = Field(pattern=_SLUG)
    """The name it is saved under."""


class RestoreStateAction(_Strict):
    """Set the devices saved under ``key`` (by ``save_state``) back to their saved values."""

    model_config = _example({"kind": "restore_state", "key": "window-setback", "target": {"area": "@trigger"}})

    kind: Literal["restore_state"]
    key: str = Field(pattern=_SLUG)
    """The name they were saved under."""
    target: Selector | None = None
    """Only these of the saved devices; default: all of them."""


class ReportAction(_Strict):
    """A daily summary: ``energy`` (kWh per device and total, cost at ``price_per_kwh``) or
    ``wellbeing`` (first activity, room transitions, night-time door events)."""

    model_config = _example({
        "kind": "report",
        "report": "energy",
        "to": "log",
        "price_per_kwh": 0.32,
        "currency": "EUR",
    })

    kind: Literal["report"]
    report: Literal["energy", "wellbeing"]
    """energy or wellbeing."""
    to: StrList = Field(min_length=1)
    """Names of the config's [notify.<name>] targets."""
    price_per_kwh: float | None = Field(None, ge=0)
    """energy: the price of a kWh, for the cost."""
    currency: str = "EUR"
    """energy: the currency of the price."""
    night: TimeWindow | None = None
    """wellbeing: the night (activity in it is counted on its own)."""
    doors: Selector | None = None
    """wellbeing: the doors whose openings at night are listed."""


Action = Annotated[
    CommandAction | SetModeAction | NotifyAction | AlertAction | ClearAlertAction | DelayAction | WaitForAction
    | SaveStateAction | RestoreStateAction | ReportAction,
    Field(discriminator="kind"),
]

# ------------------------------------------------------------------ scenes and profiles


class Scene(_Strict):
    """One automation: when any trigger fires and every condition holds, the actions run in order."""

    id: str = Field(pattern=_SLUG, max_length=64)
    """Unique in the profile (lowercase, digits, '-', '_'); the config's [profiles.scenes.<id>] names it."""
    name: str = Field(min_length=1)
    """What people see."""
    description: str = ""
    """A longer explanation."""
    enabled: bool = True
    """false: the scene does not run until enabled (in the UI, the API or the config)."""
    priority: int = Field(0, ge=-100, le=100)
    """-100 to 100: a scene does not command a device a higher-priority scene commanded recently."""
    cooldown: Duration = 0.0
    """No new run this long after a run that acted (one PIR blip must not page twice)."""
    triggers: list[Trigger] = Field(min_length=1)
    """Any one of them starts the scene."""
    conditions: list[Condition] = Field(default_factory=list)
    """All must hold when a trigger fires."""
    actions: list[Action] = Field(min_length=1)
    """Run in order."""


ParamType = Literal[
    "area", "areas", "duration", "time", "number", "integer", "bool", "string", "selector", "notify_targets", "tag",
]


class Parameter(_Strict):
    """A typed setting of the profile, used as ``${name}`` in its scenes and set in the config's
    ``[profiles.params]`` (or per scene, ``[profiles.scenes.<id>] params``)."""

    model_config = _example({
        "type": "duration",
        "default": "10m",
        "description": "How long a room stays lit without movement",
    })

    type: ParamType
    """What the value is; it is checked when the profile loads."""
    description: str = ""
    """What it does, for ``hearth profile show``."""
    default: Any = None
    """The value when the config sets none; without one the parameter is required."""
    unit: str | None = None
    """The unit of a number, for people."""
    minimum: float | None = None
    """number, integer: the smallest value."""
    maximum: float | None = None
    """number, integer: the largest value."""


class _ProfileHeader(_Strict):
    """A profile file: a name, a version, typed parameters and scenes."""

    name: str = Field(pattern=_SLUG)
    """The profile's name (lowercase, digits, '-', '_'): what a config's ``use`` names."""
    version: int
    """The profile schema version: 1."""
    description: str = ""
    """What the profile does."""
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    """The parameters, by name (lowercase, digits, '_')."""
    scenes: list[dict[str, Any]] = Field(min_length=1)
    """The scenes ([[scenes]])."""

    @field_validator("version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value != PROFILE_SCHEMA_VERSION:
            raise ValueError(f"this gateway reads profile schema version {PROFILE_SCHEMA_VERSION}")
        return value

    @field_validator("parameters")
    @classmethod
    def _names(cls, value: dict[str, Parameter]) -> dict[str, Parameter]:
        for name in value:
            if not re.match(r"^[a-z][a-z0-9_]*$", name):
                raise ValueError(f"parameter name {name!r}: use lowercase letters, digits and '_'")
        return value


class _Scenes(_Strict):
    scenes: list[Scene]


@dataclass
class Profile:
    """A loaded profile with its parameters bound."""

    name: str
    version: int
    description: str
    source: str
    parameters: dict[str, Parameter]
    values: dict[str, Any]
    scenes: list[Scene]
    notify_targets: set[str] = field(default_factory=set)
    # scene id -> what the config changed of it ([profiles.scenes.<id>])
    overrides: dict[str, SceneOverride] = field(default_factory=dict)


def _convert_param(name: str, spec: Parameter, value: Any) -> Any:
    """A parameter value in its type (raises ValueError with what was expected)."""
    kind = spec.type
    if kind == "duration":
        try:
            return parse_duration(value)
        except ValueError:
            raise ValueError("a duration such as '10m', '1h30m' or '45s'") from None
    if kind == "time":
        try:
            parse_time_of_day(value)
        except ValueError:
            raise ValueError("a time of day 'HH:MM' such as '07:30'") from None
        return value
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "integer"
                                                                              and not float(value).is_integer()):
            raise ValueError(f"a{'n' if kind == 'integer' else ''} {kind}")
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"at least {spec.minimum:g}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"at most {spec.maximum:g}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("true or false")
        return value
    if kind in ("area", "string", "tag"):
        if not isinstance(value, str) or not value:
            raise ValueError(f"a non-empty string ({kind})")
        return value
    if kind in ("areas", "notify_targets"):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ValueError("a list of names")
        return value
    if kind == "selector":
        if not isinstance(value, dict):
            raise ValueError("a selector table such as { capability = \"occupancy\", area = \"bathroom\" }")
        try:
            Selector.model_validate(value)
        except ValidationError as err:
            # Not pydantic's multi-line dump: the same one-line reasons as a selector in a scene.
            reasons = []
            for e in err.errors():
                loc, holder = walk_loc(Selector, e["loc"])
                reasons.append(".".join(map(str, loc)) + ": " + _describe(e, holder) if loc else _describe(e))
            raise ValueError(f"a valid selector ({'; '.join(reasons)})") from None
        return value
    raise ValueError(f"unknown parameter type {kind}")  # pragma: no cover - Literal guards it


def _substitute(node: Any, values: Mapping[str, Any], path: tuple[str | int, ...],
                problems: list[tuple[tuple[str | int, ...], str]], declared: frozenset[str] = frozenset()) -> Any:
    """Replace ``${name}`` references. A name in ``declared`` without a value had its own problem
    reported already (missing or wrong value): its uses are not reported again as unknown."""
    if isinstance(node, str):
        whole = _REF.fullmatch(node)
        if whole:
            name = whole.group(1)
            if name not in values:
                if name not in declared:
                    problems.append((path, f"unknown parameter ${{{name}}}" + did_you_mean(name, declared)))
                return node
            return values[name]

        def text(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                if name not in declared:
                    problems.append((path, f"unknown parameter ${{{name}}}" + did_you_mean(name, declared)))
                return match.group(0)
            value = values[name]
            return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

        return _REF.sub(text, node)
    if isinstance(node, list):
        return [_substitute(v, values, (*path, i), problems, declared) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _substitute(v, values, (*path, k), problems, declared) for k, v in node.items()}
    return node


def _describe(error: Any, holder: type[BaseModel] | None = None) -> str:
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    if kind == "extra_forbidden":
        key = error["loc"][-1] if error.get("loc") else ""
        if holder is None:
            return f"unknown key {key!r}" if key else "unknown key"
        keys = model_keys(holder)
        return f"unknown key {key!r}" + (did_you_mean(str(key), keys) or f" (this table takes {', '.join(keys)})")
    if kind == "missing":
        return "required"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        tag = ctx.get("tag")
        hint = did_you_mean(str(tag), re.findall(r"'([^']*)'", str(ctx.get("expected_tags", ""))))
        return f"unknown kind {tag!r}" + (hint or f" (expected one of {ctx.get('expected_tags')})")
    if kind == "union_tag_not_found":
        return "needs a 'kind'"
    if kind == "literal_error" and isinstance(error.get("input"), str):
        expected = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
        return message + did_you_mean(error["input"], expected)
    # Our validators word their own messages ("expected a duration ...", "unknown capability ...").
    return message.removeprefix("Value error, ")


def _validation_problems(err: ValidationError, problem: Callable[[tuple[str | int, ...], str], ConfigProblem],
                         root: Any) -> list[ConfigProblem]:
    """pydantic's errors as problems, in the order of the file. The location is followed through
    ``root`` (the model or type that was validated): written as the file writes it (no union tags, aliases
    such as ``for``), and an unknown key gets the keys of its own table as suggestions. One value that
    fits no member of a union (``to = [1]``) is one problem."""
    found: dict[tuple[str | int, ...], list[str]] = {}
    for error in err.errors():
        loc, holder = walk_loc(root, error["loc"])
        if error.get("type") == "union_tag_invalid":
            loc = (*loc, "kind")  # the wrong part is the kind: name its key (and line)
        found.setdefault(loc, []).append(_describe(error, holder))
    out = []
    for loc, messages in found.items():
        if len(messages) > 1 and all(m.startswith("Input should be ") for m in messages):
            rest = [m.removeprefix("Input should be ") for m in messages]
            messages = ["Input should be " + ", ".join(rest[:-1]) + " or " + rest[-1]]
        out.extend(problem(loc, message) for message in messages)
    return sorted(out, key=lambda p: p.line if p.line is not None else 0)


def _node_at(node: Any, loc: tuple[str | int, ...]) -> Any:
    for part in loc:
        found = ((isinstance(node, dict) and part in node)
                 or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)))
        if not found:
            return None
        node = node[part]
    return node


def _raw_id(scene: Any) -> str | None:
    """The id of a scene table as written, if it is a string (before validation it may be anything)."""
    scene_id = scene.get("id") if isinstance(scene, dict) else None
    return scene_id if isinstance(scene_id, str) else None


def _used_parameters(node: Any) -> set[str]:
    """The names of the parameters a part of a profile refers to (``${name}``)."""
    if isinstance(node, str):
        return set(_REF.findall(node))
    if isinstance(node, list):
        return {name for item in node for name in _used_parameters(item)}
    if isinstance(node, dict):
        return {name for item in node.values() for name in _used_parameters(item)}
    return set()


@dataclass(frozen=True)
class SceneOverride:
    """What a config changed of one shipped scene (``[profiles.scenes.<id>]``), for ``profile show``."""

    enabled: bool | None = None
    values: dict[str, Any] = field(default_factory=dict)  # parameter -> its value for this scene only
    conditions: int = 0  # extra conditions appended to the scene's own


def load_profile_text(text: str, source: str, params: Mapping[str, Any] | None = None,
                      params_source: str | None = None,
                      scene_settings: Mapping[str, Mapping[str, Any]] | None = None) -> Profile:
    """Parse, bind ``params`` and validate a profile. Raises ConfigError listing every problem.

    ``scene_settings`` customises single scenes, by scene id, as a config's ``[profiles.scenes.<id>]``
    does: ``enabled``, ``params`` (parameter values for that scene only) and ``conditions`` (appended
    to the scene's). Problems in them are said at ``params_source``, like those of ``params``."""
    from gateway.tomlloc import TomlLocator

    try:
        raw = loads_toml(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"line (\d+)", str(err))
        raise ConfigError([ConfigProblem(source, int(match.group(1)) if match else None, "",
                                         f"not valid TOML: {err}")]) from err
    locator = TomlLocator(text)
    config_file = params_source or source

    def problem(loc: tuple[str | int, ...], message: str) -> ConfigProblem:
        return ConfigProblem(source, locator.line_of(loc), ".".join(map(str, loc)), message)

    try:
        header = _ProfileHeader.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_validation_problems(err, problem, _ProfileHeader)) from err

    problems: list[ConfigProblem] = []
    values: dict[str, Any] = {}
    given = dict(params or {})
    for name, spec in header.parameters.items():
        if name in given:
            value, where = given.pop(name), "params"
        elif spec.default is not None:
            value, where = spec.default, "default"
        else:
            problems.append(ConfigProblem(config_file, None, f"params.{name}",
                                          f"required parameter ({spec.type}) has no value: set it in the "
                                          f"[profiles.params] of your config"))
            continue
        try:
            values[name] = _convert_param(name, spec, value)
        except ValueError as err:
            if where == "params":
                problems.append(ConfigProblem(config_file, None, f"params.{name}",
                                              f"expected {err} (got {value!r})"))
            else:
                problems.append(problem(("parameters", name, "default"), f"expected {err} (got {value!r})"))
    for name in given:
        known = ", ".join(sorted(header.parameters)) or "none"
        problems.append(ConfigProblem(config_file, None, f"params.{name}",
                                      f"profile {header.name!r} has no parameter {name!r}"
                                      + (did_you_mean(name, header.parameters) or f" (parameters: {known})")))
    raw_scenes = raw.get("scenes", [])
    overrides, scene_values, extra_raw = _scene_settings(header, raw_scenes, values, scene_settings or {},
                                                         config_file, problems)
    # Durations are bound as seconds and times as text; both validate again in the scene models.
    subst: list[tuple[tuple[str | int, ...], str]] = []
    declared = frozenset(header.parameters)
    bound = [_substitute(scene, scene_values.get(_raw_id(scene), values), ("scenes", index), subst, declared)
             for index, scene in enumerate(raw_scenes)]  # a list of tables: _ProfileHeader checked it
    problems += [problem(loc, message) for loc, message in subst]
    extra: dict[str, list[Any]] = {}
    for scene_id, conditions in extra_raw.items():
        where = ("scenes", scene_id, "conditions")
        subst = []
        conditions = _substitute(conditions, scene_values.get(scene_id, values), where, subst, declared)
        problems += [ConfigProblem(config_file, None, ".".join(map(str, loc)), message) for loc, message in subst]
        if subst:
            continue  # a condition with an unknown parameter cannot be checked further
        try:
            extra[scene_id] = _CONDITIONS.validate_python(conditions)
        except ValidationError as err:
            problems += _validation_problems(
                err, lambda loc, message, w=where: ConfigProblem(config_file, None, ".".join(map(str, (*w, *loc))),
                                                                 message), _CONDITIONS_TYPE)
    if problems:
        raise ConfigError(problems)

    def scene_problem(loc: tuple[str | int, ...], message: str) -> ConfigProblem:
        # A value that came from a parameter: say which, and where it was set.
        node = _node_at({"scenes": raw_scenes}, loc)
        names = _used_parameters(node) if isinstance(node, str) else set()
        if names and not message.startswith(("unknown key", "required")):
            scene_id = _raw_id(_node_at(raw_scenes, loc[1:2]))
            notes = []
            for name in sorted(names):
                if name in overrides.get(scene_id, SceneOverride()).values:
                    origin = f"set for this scene in {config_file}"
                elif params and name in params:
                    origin = f"set in {config_file}"
                else:
                    origin = "its default"
                notes.append(f"${{{name}}} = {_show(scene_values.get(scene_id, values).get(name))}, {origin}")
            message += f" (from {'; '.join(notes)})"
        return problem(loc, message)

    try:
        scenes = _Scenes.model_validate({"scenes": bound}).scenes
    except ValidationError as err:
        raise ConfigError(_validation_problems(err, scene_problem, _Scenes)) from err
    first_index: dict[str, int] = {}
    duplicates: list[ConfigProblem] = []
    for index, scene in enumerate(scenes):
        if scene.id in first_index:
            first = locator.line_of(("scenes", first_index[scene.id], "id"))
            duplicates.append(problem(("scenes", index, "id"), f"scene id {scene.id!r} is used twice "
                                      f"(first{f' on line {first}' if first else ''}): scene ids must be unique"))
        else:
            first_index[scene.id] = index
    if duplicates:
        raise ConfigError(duplicates)
    for index, scene in enumerate(scenes):
        override = overrides.get(scene.id)
        if override is None:
            continue
        update: dict[str, Any] = {}
        if override.enabled is not None:
            update["enabled"] = override.enabled
        if scene.id in extra:
            update["conditions"] = [*scene.conditions, *extra[scene.id]]
        if update:
            scenes[index] = scene.model_copy(update=update)
    targets: set[str] = set()
    for scene in scenes:
        for action in scene.actions:
            if isinstance(action, (NotifyAction, ReportAction)):
                targets.update(action.to)
            elif isinstance(action, AlertAction):
                targets.update(action.notify)
    return Profile(header.name, header.version, header.description, source, header.parameters, values, scenes,
                   targets, overrides)


_CONDITIONS_TYPE = list[Condition]  # type: ignore[valid-type]
_CONDITIONS: TypeAdapter[list[Any]] = TypeAdapter(_CONDITIONS_TYPE)
SCENE_SETTING_KEYS = ("enabled", "params", "conditions")


def _scene_settings(header: _ProfileHeader, raw_scenes: Any, values: dict[str, Any],
                    settings: Mapping[str, Mapping[str, Any]], config_file: str, problems: list[ConfigProblem],
                    ) -> tuple[dict[str, SceneOverride], dict[str, dict[str, Any]], dict[str, list[Any]]]:
    """Check a config's per-scene settings against the profile: the overrides by scene id, each
    customised scene's parameter values, and its extra conditions (raw, not yet substituted)."""
    raw_by_id = {_raw_id(s): s for s in raw_scenes if _raw_id(s) is not None}
    overrides: dict[str, SceneOverride] = {}
    scene_values: dict[str, dict[str, Any]] = {}
    extra: dict[str, list[Any]] = {}
    for scene_id, setting in settings.items():
        key = f"scenes.{scene_id}"
        if scene_id not in raw_by_id:
            known = ", ".join(raw_by_id) or "none"
            problems.append(ConfigProblem(config_file, None, key, f"profile {header.name!r} has no scene "
                                          f"{scene_id!r}" + (did_you_mean(scene_id, raw_by_id)
                                                             or f" (scenes: {known})")))
            continue
        if not isinstance(setting, Mapping):
            problems.append(ConfigProblem(config_file, None, key, "expected a table of enabled, params, conditions"))
            continue
        for name in setting:
            if name not in SCENE_SETTING_KEYS:
                problems.append(ConfigProblem(config_file, None, f"{key}.{name}", f"unknown key {name!r}"
                                              + (did_you_mean(name, SCENE_SETTING_KEYS)
                                                 or f" (this table takes {', '.join(SCENE_SETTING_KEYS)})")))
        enabled = setting.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            problems.append(ConfigProblem(config_file, None, f"{key}.enabled", f"expected true or false "
                                                                               f"(got {enabled!r})"))
            enabled = None
        own: dict[str, Any] = {}
        used = _used_parameters(raw_by_id[scene_id])
        given = setting.get("params") or {}
        if not isinstance(given, Mapping):
            problems.append(ConfigProblem(config_file, None, f"{key}.params", "expected a table of parameter values"))
            given = {}
        for name, value in given.items():
            spec = header.parameters.get(name)
            if spec is None:
                known = ", ".join(sorted(header.parameters)) or "none"
                problems.append(ConfigProblem(config_file, None, f"{key}.params.{name}",
                                              f"profile {header.name!r} has no parameter {name!r}"
                                              + (did_you_mean(name, header.parameters) or f" (parameters: {known})")))
                continue
            if name not in used:
                # Setting a parameter the scene never reads changes nothing: surely not what was meant.
                problems.append(ConfigProblem(config_file, None, f"{key}.params.{name}",
                                              f"scene {scene_id!r} does not use parameter {name!r}"
                                              + (did_you_mean(name, used)
                                                 or f" (it uses: {', '.join(sorted(used)) or 'none'})")))
                continue
            try:
                own[name] = _convert_param(name, spec, value)
            except ValueError as err:
                problems.append(ConfigProblem(config_file, None, f"{key}.params.{name}",
                                              f"expected {err} (got {value!r})"))
        conditions = setting.get("conditions") or []
        if not isinstance(conditions, list):
            problems.append(ConfigProblem(config_file, None, f"{key}.conditions", "expected a list of conditions"))
            conditions = []
        if conditions:
            extra[scene_id] = conditions
        if own:
            scene_values[scene_id] = {**values, **own}
        overrides[scene_id] = SceneOverride(enabled, own, len(conditions))
    return overrides, scene_values, extra


def load_profile(path: Path, params: Mapping[str, Any] | None = None, params_source: str | None = None,
                 scene_settings: Mapping[str, Mapping[str, Any]] | None = None) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {err.strerror}")]) from err
    except UnicodeDecodeError as err:
        raise ConfigError([ConfigProblem(str(path), None, "", "not UTF-8 text")]) from err
    return load_profile_text(text, str(path), params, params_source, scene_settings)


def shipped_profiles() -> dict[str, Path]:
    """Profiles that come with the gateway, by name."""
    import importlib.resources

    found: dict[str, Path] = {}
    try:
        root: Any = importlib.resources.files("gateway.profiles")
    except ModuleNotFoundError:
        # Run from a source checkout that was never installed: profiles/ sits beside gateway/.
        root = Path(__file__).resolve().parents[2] / "profiles"
        if not root.is_dir():
            return found
    for entry in root.iterdir():
        if entry.name.endswith(".toml"):
            found[entry.name[:-5]] = Path(str(entry))
    return found


def find_profile(name_or_file: str, extra_dirs: list[Path] | None = None) -> Path:
    """A profile by file path, by name in ``extra_dirs``, or by name among the shipped ones.

    A path (it ends in ``.toml`` or names a folder) that is not a file is returned as it is, and
    reading it says why it cannot be read."""
    candidate = Path(name_or_file)
    if candidate.is_file() or candidate.suffix == ".toml" or len(candidate.parts) > 1:
        return candidate
    found: dict[str, Path] = {}
    for directory in extra_dirs or ():
        path = Path(directory) / f"{name_or_file}.toml"
        if path.is_file():
            return path
        found.update({p.stem: p for p in sorted(Path(directory).glob("*.toml"))})
    shipped = shipped_profiles()
    if name_or_file in shipped:
        return shipped[name_or_file]
    known = ", ".join(sorted(shipped)) or "none"
    hint = did_you_mean(name_or_file, {**found, **shipped})
    raise ConfigError([ConfigProblem(name_or_file, None, "", f"no profile named {name_or_file!r}"
                                                             + (hint or f" (shipped profiles: {known})"))])
