"""Hearth adapter plugin for Nordvik heat-pump controllers: their own MQTT JSON, read by a pure codec
(:mod:`hearth_heatpump.codec`) behind a thin adapter (:mod:`hearth_heatpump.adapter`)."""

from hearth_heatpump.adapter import HeatPumpAdapter, HeatPumpConfig
from hearth_heatpump.codec import HeatPumpCodec, Setpoints

__all__ = ["HeatPumpAdapter", "HeatPumpCodec", "HeatPumpConfig", "Setpoints"]
