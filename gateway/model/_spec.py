"""Types that describe a capability: attributes, commands and their arguments, as frozen data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ValueType = Literal["bool", "number", "integer", "string", "enum", "timestamp"]

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,),
    "number": (int, float),
    "integer": (int,),
    "string": (str,),
    "enum": (str,),
    "timestamp": (str,),
}


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """One attribute: its type, canonical unit and range. ``settable``: some command of the capability sets it."""

    type: ValueType
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[str, ...] = ()
    settable: bool = False
    description: str = ""

    def check(self, value: Any) -> str | None:
        """Why ``value`` does not fit, or None. ``None`` values (reported but unknown) always fit."""
        if value is None:
            return None
        if isinstance(value, bool) and self.type != "bool":
            return f"expected {self.type}, got a boolean"
        if not isinstance(value, _PY_TYPES[self.type]):
            return f"expected {self.type}, got {type(value).__name__}"
        if self.type == "enum" and value not in self.values:
            return f"expected one of {', '.join(self.values)}, got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"{value} is below the minimum {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"{value} is above the maximum {self.maximum:g}"
        return None


@dataclass(frozen=True, slots=True)
class ArgSpec:
    type: ValueType
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    values: tuple[str, ...] = ()
    required: bool = True

    def as_attribute(self) -> AttributeSpec:
        return AttributeSpec(self.type, self.unit, self.minimum, self.maximum, self.values)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    args: dict[str, ArgSpec] = field(default_factory=dict)
    # The attribute values a device reports once it has carried the command out: used to confirm a
    # command. Keys are attribute names; values are an argument name ("$percent"), a constant, or
    # "$not:<attr>" for a toggle. A command with no entry cannot be confirmed, only sent.
    expect: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    # Expected values a device can only reach in steps: attribute -> the attribute that says how many steps
    # the device has (a 3-speed fan reports 67 % after ``set_speed 50``). See gateway.model.expected_state.
    steps: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CapabilitySpec:
    name: str
    attributes: dict[str, AttributeSpec]
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    events: dict[str, dict[str, ArgSpec]] = field(default_factory=dict)
    description: str = ""
    # What the same thing is called in Home Assistant and in Matter (for the reference, and for bridges).
    ha: str = ""
    matter: str = ""
