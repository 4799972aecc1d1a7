"""Tasmota's topic layout (FullTopic), apart from the codec: what the adapter subscribes to at start, before it
loads the codec on the first Tasmota message (a house without Tasmota devices never loads it)."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["DEFAULT_FULL_TOPIC", "fill_full_topic", "subscription_filters"]

DEFAULT_FULL_TOPIC = "%prefix%/%topic%/"


def fill_full_topic(full_topic: str, prefix: str, topic: str, hostname: str = "", mac: str = "") -> str:
    base = full_topic if full_topic.endswith("/") else full_topic + "/"
    return (base.replace("%prefix%", prefix).replace("%topic%", topic).replace("%hostname%", hostname)
            .replace("%id%", mac[-6:]))


def subscription_filters(full_topic: str, prefixes: Iterable[str] = ("stat", "tele")) -> list[str]:
    """MQTT filters for the stat/tele topics of every device with this FullTopic, and the per-device topics of a
    Zigbee bridge (SetOption89: ``tele/<t>/<short address>/SENSOR``)."""
    out = []
    for prefix in prefixes:
        base = fill_full_topic(full_topic, prefix, "+")
        base = re.sub(r"%[a-z]+%", "+", base)
        out.append(base + "+")
        if prefix == "tele":
            out.append(base + "+/SENSOR")
    return out
