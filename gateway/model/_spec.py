"""Types that describe a capability: attributes, commands and their arguments, as frozen data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: The type of an attribute or argument: ``timestamp`` is an ISO-8601 string, ``enum`` one of ``values``.
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

    #: The value's type.
    type: ValueType
    #: The canonical unit (``"celsius"``, ``"percent"``, ``"kwh"``): adapters convert to it. None: no unit.
    unit: str | None = None
    #: The smallest valid value (numbers), or None.
    minimum: float | None = None
    #: The largest valid value (numbers), or None.
    maximum: float | None = None
    #: The values an ``enum`` takes.
    values: tuple[str, ...] = ()
    #: Some command of the capability sets it (shown in the reference; the UI offers a control).
    settable: bool = False
    #: What it means, for the reference (docs/capabilities.md).
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
    """One argument of a command, or one field of an event's data: its type, unit and range."""

    #: The value's type.
    type: ValueType
    #: The canonical unit; callers send it in this unit.
    unit: str | None = None
    #: The smallest valid value (numbers), or None.
    minimum: float | None = None
    #: The largest valid value (numbers), or None.
    maximum: float | None = None
    #: The values an ``enum`` takes.
    values: tuple[str, ...] = ()
    #: A command without it is rejected; an optional one may be left out (absent from ``Command.args``).
    required: bool = True

    def as_attribute(self) -> AttributeSpec:
        """The same type and range as an :class:`AttributeSpec` (to check a value with its ``check``)."""
        return AttributeSpec(self.type, self.unit, self.minimum, self.maximum, self.values)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One command of a capability: its arguments, and the state that confirms it was carried out."""

    #: Argument name -> its spec.
    args: dict[str, ArgSpec] = field(default_factory=dict)
    #: The attribute values a device reports once it has carried the command out: used to confirm a
    #: command. Keys are attribute names; values are an argument name (``"$percent"``), a constant, or
    #: ``"$not:<attr>"`` for a toggle. A command with no entry cannot be confirmed, only sent.
    expect: dict[str, Any] = field(default_factory=dict)
    #: What it does, for the reference.
    description: str = ""
    #: Expected values a device can only reach in steps: attribute -> the attribute that says how many steps
    #: the device has (a 3-speed fan reports 67 % after ``set_speed 50``).
    steps: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CapabilitySpec:
    """A capability: a named set of attributes, commands and events (``on_off``, ``thermostat``).

    A plugin defines its own with a dotted name (``acme.coffee_maker``) and registers it with
    :func:`register_capability` before its devices use it.
    """

    #: The capability's name: undotted for the core model, dotted (``vendor.thing``) for a plugin's.
    name: str
    #: Attribute name -> its spec.
    attributes: dict[str, AttributeSpec]
    #: Command name -> its spec.
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    #: Event name -> its data fields (``{"pressed": {"button": ArgSpec("integer"), ...}}``).
    events: dict[str, dict[str, ArgSpec]] = field(default_factory=dict)
    #: What it stands for, for the reference.
    description: str = ""
    #: What the same thing is called in Home Assistant (for the reference, and for bridges).
    ha: str = ""
    #: What the same thing is called in Matter (its cluster).
    matter: str = ""
