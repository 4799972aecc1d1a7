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
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigError, ConfigProblem
from gateway.model import capabilities, capability

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


Duration = Annotated[float, BeforeValidator(lambda v: _nonnegative(parse_duration(v)))]
SignedDuration = Annotated[float, BeforeValidator(parse_duration)]
TimeOfDay = Annotated[int, BeforeValidator(parse_time_of_day)]
StrList = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_attribute(value: str) -> str:
    cap, _, attr = value.partition(".")
    spec = capability(cap)
    if spec is None:
        raise ValueError(f"unknown capability {cap!r} in {value!r} (known: {', '.join(sorted(capabilities()))})")
    if attr not in spec.attributes:
        raise ValueError(
            f"{cap} has no attribute {attr!r} (it has: {', '.join(spec.attributes) or 'none'}); "
            "write it as 'capability.attribute', e.g. 'occupancy.occupied'"
        )
    return value


AttributeRef = Annotated[str, BeforeValidator(lambda v: _check_attribute(v) if isinstance(v, str) else v)]


class TimeWindow(_Strict):
    """From ``after`` to ``before``, local time; wraps midnight when ``after`` > ``before``."""

    after: TimeOfDay
    before: TimeOfDay

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

    attribute: AttributeRef
    equals: bool | float | str | None = None
    not_equals: bool | float | str | None = None
    above: float | None = None
    below: float | None = None
    for_: Duration = Field(0.0, alias="for")

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

    device: StrList | None = None
    area: StrList | None = None
    capability: StrList | None = None
    tag: StrList | None = None
    exclude_device: StrList | None = None
    exclude_area: StrList | None = None
    exclude_tag: StrList | None = None
    where: StateTest | None = None

    @field_validator("capability")
    @classmethod
    def _known_capabilities(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if capability(name) is None:
                raise ValueError(f"unknown capability {name!r} (known: {', '.join(sorted(capabilities()))})")
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
    kind: Literal["state"]
    selector: Selector
    attribute: AttributeRef
    to: bool | float | str | None = None
    from_: bool | float | str | None = Field(None, alias="from")
    above: float | None = None
    below: float | None = None
    for_: Duration = Field(0.0, alias="for")


class AbsenceTrigger(_Strict):
    """No activity (``attribute`` becoming ``activity``; any change if ``activity`` is omitted) on any
    selected device for ``for``, counted only inside ``window``."""

    kind: Literal["absence"]
    selector: Selector
    attribute: AttributeRef = "occupancy.occupied"
    activity: bool | float | str | None = True
    # Without ``for``, the absence is the whole window: it fires at the window's end when there was
    # no activity in it ("nobody up by 09:30").
    for_: Duration | None = Field(None, alias="for")
    window: TimeWindow | None = None

    @model_validator(mode="after")
    def _has_duration(self) -> AbsenceTrigger:
        if self.for_ is None and self.window is None:
            raise ValueError("an absence needs 'for' (a duration), a 'window', or both")
        if self.for_ is not None and self.for_ <= 0:
            raise ValueError("an absence needs a duration above zero")
        return self


class TimeTrigger(_Strict):
    kind: Literal["time"]
    at: TimeOfDay
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None


class SunTrigger(_Strict):
    kind: Literal["sun"]
    event: Literal["sunrise", "sunset"]
    offset: SignedDuration = 0.0


class ButtonTrigger(_Strict):
    kind: Literal["button"]
    selector: Selector
    press: list[Literal["single", "double", "triple", "long", "hold", "release"]] | None = None


class ModeTrigger(_Strict):
    kind: Literal["mode"]
    to: Literal["home", "away", "night", "vacation"] | None = None
    from_: Literal["home", "away", "night", "vacation"] | None = Field(None, alias="from")


class OccupancyTrigger(_Strict):
    """The house's occupancy (``home``, ``away``, ``unknown``: see the engine's occupancy tracking)
    became ``to`` (from ``from``), and has stayed so ``for`` this long."""

    kind: Literal["occupancy"]
    to: Literal["home", "away", "unknown"] | None = None
    from_: Literal["home", "away", "unknown"] | None = Field(None, alias="from")
    for_: Duration = Field(0.0, alias="for")


class StartTrigger(_Strict):
    kind: Literal["start"]


Trigger = Annotated[
    StateTrigger | AbsenceTrigger | TimeTrigger | SunTrigger | ButtonTrigger | ModeTrigger | OccupancyTrigger
    | StartTrigger,
    Field(discriminator="kind"),
]

# ------------------------------------------------------------------ conditions


class TimeCondition(_Strict):
    kind: Literal["time"]
    after: TimeOfDay
    before: TimeOfDay

    @property
    def window(self) -> TimeWindow:
        return TimeWindow.model_construct(after=self.after, before=self.before)


class WeekdayCondition(_Strict):
    kind: Literal["weekday"]
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)


class StateCondition(StateTest):
    """``match = "any"``: some selected device passes; ``"all"``: every one does (and there is one)."""

    kind: Literal["state"]
    selector: Selector
    match: Literal["any", "all", "none"] = "any"


class ModeCondition(_Strict):
    kind: Literal["mode"]
    is_: list[Literal["home", "away", "night", "vacation"]] = Field(alias="is", min_length=1)


class OccupancyCondition(_Strict):
    """The house's occupancy is one of ``is`` (``home``, ``away``, ``unknown``)."""

    kind: Literal["occupancy"]
    is_: list[Literal["home", "away", "unknown"]] = Field(alias="is", min_length=1)


class LastActivityCondition(_Strict):
    """The most recent activity (occupancy) in the house was in one of ``area``."""

    kind: Literal["last_activity"]
    area: StrList = Field(min_length=1)


class AnyCondition(_Strict):
    kind: Literal["any"]
    conditions: list[Condition] = Field(min_length=1)


class NotCondition(_Strict):
    kind: Literal["not"]
    condition: Condition


Condition = Annotated[
    TimeCondition | WeekdayCondition | StateCondition | ModeCondition | OccupancyCondition | LastActivityCondition
    | AnyCondition | NotCondition,
    Field(discriminator="kind"),
]
AnyCondition.model_rebuild()
NotCondition.model_rebuild()

# ------------------------------------------------------------------ actions


class CommandAction(_Strict):
    kind: Literal["command"]
    target: Selector
    capability: str
    command: str
    # Checked even when left out: a command may need arguments.
    args: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    # Also command a device under a manual override (an "everybody left" scene switches off the light
    # somebody touched ten minutes ago).
    override_manual: bool = False

    # One validator per field (they run in field order and see the fields before them), so an error
    # names the key that is wrong: ``capability``, ``command`` or ``args``.
    @field_validator("capability")
    @classmethod
    def _known_capability(cls, value: str) -> str:
        if capability(value) is None:
            raise ValueError(f"unknown capability {value!r} (known: {', '.join(sorted(capabilities()))})")
        return value

    @field_validator("command")
    @classmethod
    def _known_command(cls, value: str, info: ValidationInfo) -> str:
        spec = capability(info.data.get("capability", ""))
        if spec is not None and value not in spec.commands:
            raise ValueError(f"{spec.name} has no command {value!r} (commands: {', '.join(spec.commands) or 'none'})")
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
                raise ValueError(f"{where} takes no argument {name!r} (arguments: {', '.join(cmd.args) or 'none'})")
            problem = arg.as_attribute().check(arg_value)
            if problem:
                raise ValueError(f"argument {name!r}: {problem}")
        for name, arg in cmd.args.items():
            if arg.required and name not in value:
                raise ValueError(f"{where} needs the argument {name!r}")
        return value


class SetModeAction(_Strict):
    kind: Literal["set_mode"]
    mode: Literal["home", "away", "night", "vacation"]


class NotifyAction(_Strict):
    kind: Literal["notify"]
    to: StrList = Field(min_length=1)
    title: str = ""
    message: str
    severity: Literal["info", "warning", "critical"] = "info"


class AlertAction(_Strict):
    """Raise an alert (once while it is open) and tell the contacts, in escalation order.

    The policy: ``notify[0]`` is told at once; every ``escalate_after`` without an acknowledgement the
    same contact is reminded, ``reminders`` times, and then the next contact is told (and reminded as
    many times), to the end of the list; then, with ``final_notice``, every contact gets a last
    "unanswered" notice and the escalation stops (the alert stays open, and shown, until someone
    acknowledges or it resolves). ``max_notifications`` caps the count before that final notice.
    Without ``escalate_after`` only ``notify[0]`` is told.

    ``resolve = "auto"``: the alert resolves itself when what raised it is over: activity again after an
    absence, the value back out of range after a held state trigger, or ``resolve_when`` holding; the
    contacts who were told are told it resolved. ``"manual"``: only a person or a ``clear_alert`` does."""

    kind: Literal["alert"]
    alert: str = Field(pattern=_SLUG)
    severity: Literal["info", "warning", "critical"] = "warning"
    title: str = ""
    message: str
    notify: StrList = Field(default_factory=list)
    escalate_after: Duration | None = None
    reminders: int = Field(0, ge=0, le=20)
    final_notice: bool = True
    max_notifications: int | None = Field(None, ge=1, le=100)
    resolve: Literal["auto", "manual"] = "auto"
    resolve_when: Condition | None = None


class ClearAlertAction(_Strict):
    """Close the open alerts with this key raised by scenes of the same profile."""

    kind: Literal["clear_alert"]
    alert: str = Field(pattern=_SLUG)


class DelayAction(_Strict):
    kind: Literal["delay"]
    for_: Duration = Field(alias="for")


class WaitForAction(StateTest):
    """Wait until a selected device passes the test, at most ``timeout``."""

    kind: Literal["wait_for"]
    selector: Selector
    timeout: Duration
    on_timeout: Literal["stop", "continue"] = "stop"


class SaveStateAction(_Strict):
    """Remember ``attribute`` of the target devices under ``key`` (for ``restore_state``). A device
    already saved under the key keeps its first value (a second open window must not save the
    setback as the value to restore)."""

    kind: Literal["save_state"]
    target: Selector
    attribute: AttributeRef
    key: str = Field(pattern=_SLUG)


class RestoreStateAction(_Strict):
    kind: Literal["restore_state"]
    key: str = Field(pattern=_SLUG)
    target: Selector | None = None


class ReportAction(_Strict):
    """A daily summary: ``energy`` (kWh per device and total, cost at ``price_per_kwh``) or
    ``wellbeing`` (first activity, room transitions, night-time door events)."""

    kind: Literal["report"]
    report: Literal["energy", "wellbeing"]
    to: StrList = Field(min_length=1)
    price_per_kwh: float | None = Field(None, ge=0)
    currency: str = "EUR"
    night: TimeWindow | None = None
    doors: Selector | None = None


Action = Annotated[
    CommandAction | SetModeAction | NotifyAction | AlertAction | ClearAlertAction | DelayAction | WaitForAction
    | SaveStateAction | RestoreStateAction | ReportAction,
    Field(discriminator="kind"),
]

# ------------------------------------------------------------------ scenes and profiles


class Scene(_Strict):
    id: str = Field(pattern=_SLUG, max_length=64)
    name: str = Field(min_length=1)
    description: str = ""
    enabled: bool = True
    priority: int = Field(0, ge=-100, le=100)
    # No new run within this time after one that acted (one PIR blip must not page twice).
    cooldown: Duration = 0.0
    triggers: list[Trigger] = Field(min_length=1)
    conditions: list[Condition] = Field(default_factory=list)
    actions: list[Action] = Field(min_length=1)


ParamType = Literal[
    "area", "areas", "duration", "time", "number", "integer", "bool", "string", "selector", "notify_targets", "tag",
]


class Parameter(_Strict):
    type: ParamType
    description: str = ""
    default: Any = None
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None


class _ProfileHeader(_Strict):
    name: str = Field(pattern=_SLUG)
    version: int
    description: str = ""
    parameters: dict[str, Parameter] = Field(default_factory=dict)
    scenes: list[dict[str, Any]] = Field(min_length=1)

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
            reasons = "; ".join(
                ".".join(map(str, e["loc"])) + ": " + _describe(e) if e["loc"] else _describe(e)
                for e in err.errors())
            raise ValueError(f"a valid selector ({reasons})") from None
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
                    problems.append((path, f"unknown parameter ${{{name}}}"))
                return node
            return values[name]

        def text(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                if name not in declared:
                    problems.append((path, f"unknown parameter ${{{name}}}"))
                return match.group(0)
            value = values[name]
            return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

        return _REF.sub(text, node)
    if isinstance(node, list):
        return [_substitute(v, values, (*path, i), problems, declared) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {k: _substitute(v, values, (*path, k), problems, declared) for k, v in node.items()}
    return node


def _describe(error: Any) -> str:
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown kind {ctx.get('tag')!r} (expected one of {ctx.get('expected_tags')})"
    if kind == "union_tag_not_found":
        return "needs a 'kind'"
    # Our validators word their own messages ("expected a duration ...", "unknown capability ...").
    return message.removeprefix("Value error, ")


def _clean_loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    # pydantic puts the discriminator value of a tagged union into the location, right after the list
    # index (or after ``not``'s single ``condition``): drop that one part, and the validator wrappers
    # ("function-after[...]") around it. Only one: in ``set_mode`` the field after the tag is ``mode``.
    out: list[str | int] = []
    kinds = {"state", "absence", "time", "sun", "button", "mode", "start", "weekday", "any", "not", "command",
             "occupancy",
             "last_activity", "set_mode", "notify", "alert", "clear_alert", "delay", "wait_for", "save_state",
             "restore_state", "report"}
    state = "field"  # "index": a union tag may come next; "tagged": only wrappers may come next
    for part in loc:
        if isinstance(part, str) and state != "field":
            if part.startswith("function-"):
                continue
            if state == "index" and part in kinds:
                state = "tagged"
                continue
        out.append(part)
        state = "index" if isinstance(part, int) or part == "condition" else "field"
    return tuple("for" if p == "for_" else "from" if p == "from_" else "is" if p == "is_" else p for p in out)


def _validation_problems(err: ValidationError,
                         problem: Callable[[tuple[str | int, ...], str], ConfigProblem]) -> list[ConfigProblem]:
    """pydantic's errors as problems, in the order of the file."""
    found = []
    for error in err.errors():
        loc = _clean_loc(error["loc"])
        if error.get("type") == "union_tag_invalid":
            loc = (*loc, "kind")  # the wrong part is the kind: name its key (and line)
        found.append(problem(loc, _describe(error)))
    return sorted(found, key=lambda p: p.line if p.line is not None else 0)


def load_profile_text(text: str, source: str, params: Mapping[str, Any] | None = None,
                      params_source: str | None = None) -> Profile:
    """Parse, bind ``params`` and validate a profile. Raises ConfigError listing every problem."""
    from gateway.tomlloc import TomlLocator

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"line (\d+)", str(err))
        raise ConfigError([ConfigProblem(source, int(match.group(1)) if match else None, "",
                                         f"not valid TOML: {err}")]) from err
    locator = TomlLocator(text)

    def problem(loc: tuple[str | int, ...], message: str) -> ConfigProblem:
        return ConfigProblem(source, locator.line_of(loc), ".".join(map(str, loc)), message)

    try:
        header = _ProfileHeader.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_validation_problems(err, problem)) from err

    problems: list[ConfigProblem] = []
    values: dict[str, Any] = {}
    given = dict(params or {})
    for name, spec in header.parameters.items():
        if name in given:
            value, where = given.pop(name), "params"
        elif spec.default is not None:
            value, where = spec.default, "default"
        else:
            problems.append(ConfigProblem(params_source or source, None, f"params.{name}",
                                          f"required parameter ({spec.type}) has no value: set it in the "
                                          f"[profiles.params] of your config"))
            continue
        try:
            values[name] = _convert_param(name, spec, value)
        except ValueError as err:
            if where == "params":
                problems.append(ConfigProblem(params_source or source, None, f"params.{name}",
                                              f"expected {err} (got {value!r})"))
            else:
                problems.append(problem(("parameters", name, "default"), f"expected {err} (got {value!r})"))
    for name in given:
        known = ", ".join(sorted(header.parameters)) or "none"
        problems.append(ConfigProblem(params_source or source, None, f"params.{name}",
                                      f"profile {header.name!r} has no parameter {name!r} (parameters: {known})"))
    # Durations are bound as seconds and times as text; both validate again in the scene models.
    subst: list[tuple[tuple[str | int, ...], str]] = []
    bound = _substitute(raw.get("scenes", []), values, ("scenes",), subst, frozenset(header.parameters))
    problems += [problem(loc, message) for loc, message in subst]
    if problems:
        raise ConfigError(problems)
    try:
        scenes = _Scenes.model_validate({"scenes": bound}).scenes
    except ValidationError as err:
        raise ConfigError(_validation_problems(err, problem)) from err
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
    targets: set[str] = set()
    for scene in scenes:
        for action in scene.actions:
            if isinstance(action, (NotifyAction, ReportAction)):
                targets.update(action.to)
            elif isinstance(action, AlertAction):
                targets.update(action.notify)
    return Profile(header.name, header.version, header.description, source, header.parameters, values, scenes,
                   targets)


def load_profile(path: Path, params: Mapping[str, Any] | None = None, params_source: str | None = None) -> Profile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {err.strerror}")]) from err
    except UnicodeDecodeError as err:
        raise ConfigError([ConfigProblem(str(path), None, "", "not UTF-8 text")]) from err
    return load_profile_text(text, str(path), params, params_source)


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
    """A profile by file path, by name in ``extra_dirs``, or by name among the shipped ones."""
    candidate = Path(name_or_file)
    if candidate.suffix == ".toml" or candidate.exists():
        if candidate.is_file():
            return candidate
        raise ConfigError([ConfigProblem(name_or_file, None, "", "no such profile file")])
    for directory in extra_dirs or ():
        path = directory / f"{name_or_file}.toml"
        if path.is_file():
            return path
    shipped = shipped_profiles()
    if name_or_file in shipped:
        return shipped[name_or_file]
    known = ", ".join(sorted(shipped)) or "none"
    raise ConfigError([ConfigProblem(name_or_file, None, "", f"no profile named {name_or_file!r} "
                                                             f"(shipped profiles: {known})")])
