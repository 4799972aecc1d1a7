"""Hearth adapter plugin for Acme air purifiers: their own MQTT JSON, read by a pure codec
(:mod:`hearth_acme.codec`) behind a thin adapter (:mod:`hearth_acme.adapter`)."""

from hearth_acme.adapter import AcmeAdapter, AcmeConfig
from hearth_acme.codec import FILTER_CAPABILITY, AcmeCodec, Decoded

__all__ = ["FILTER_CAPABILITY", "AcmeAdapter", "AcmeCodec", "AcmeConfig", "Decoded"]
