"""Units as devices publish them, and the factor to each canonical unit (capabilities.md).

Part of the plugin SDK (re-exported by :mod:`gateway.sdk`): every codec that reads a published unit needs the
same table (the Home Assistant discovery codec, the device-definition format, a maker's own adapter), and one
table means one answer to "is this unit understood, and how is it converted"."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["UNIT_FACTORS", "fahrenheit_to_celsius"]


def fahrenheit_to_celsius(value: float) -> float:
    """Degrees Fahrenheit to degrees Celsius (an offset, not a factor: why UNIT_FACTORS holds functions too)."""
    return (value - 32) * 5 / 9


def _k_to_c(value: float) -> float:
    return value - 273.15


#: unit family -> unit -> factor to the canonical unit (or a function for offsets). Units are compared as
#: published; a unit that is not listed makes the entity unsupported (reported), never silently wrong.
UNIT_FACTORS: dict[str, dict[str, float | Callable[[float], float]]] = {
    "temperature": {"°C": 1, "C": 1, "℃": 1, "°F": fahrenheit_to_celsius, "F": fahrenheit_to_celsius,
                    "℉": fahrenheit_to_celsius, "K": _k_to_c},
    "percent": {"%": 1},
    "illuminance": {"lx": 1, "lux": 1, "klx": 1000},
    # hPa is mbar; 1 kPa = 10 hPa, 1 bar = 1000 hPa, 1 mmHg = 1.333224 hPa, 1 inHg = 33.8639 hPa, 1 psi = 68.9476 hPa
    "pressure": {"hPa": 1, "mbar": 1, "kPa": 10, "Pa": 0.01, "cbar": 10, "bar": 1000, "mmHg": 1.333224,
                 "inHg": 33.8639, "psi": 68.9476},
    "power": {"W": 1, "kW": 1000, "mW": 0.001, "MW": 1_000_000},
    "energy": {"Wh": 0.001, "kWh": 1, "MWh": 1000, "mWh": 0.000001},
    "voltage": {"V": 1, "mV": 0.001, "kV": 1000, "µV": 0.000001},
    "current": {"A": 1, "mA": 0.001},
    "frequency": {"Hz": 1, "kHz": 1000},
    "power_factor": {"%": 0.01},
    "ppm": {"ppm": 1},
    "ppb": {"ppb": 1},
    "ugm3": {"µg/m³": 1, "μg/m³": 1, "ug/m3": 1},
    "dbm": {"dBm": 1},
}
