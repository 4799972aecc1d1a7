"""Adapters load their codecs when their protocol first shows up, not at start: a house that has only
Zigbee2MQTT devices must not pay (in memory, on a Pi) for the Home Assistant, Tasmota, Homie and Shelly codecs
(bench/memory.py). What they subscribe to at start must not change because of it."""

from __future__ import annotations

import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest

from adapters.homeassistant.adapter import NATIVE_SOURCES
from adapters.homeassistant.codec import DEFAULT_SKIP_NATIVE
from adapters.tasmota.adapter import TasmotaAdapter, TasmotaConfig
from adapters.tasmota.codec import TasmotaCodec
from gateway.clock import SystemClock

LAZY = ("adapters.homeassistant.codec", "adapters.tasmota.codec", "adapters.homie.codec",
        "adapters.shelly.codec", "adapters.shelly.mqtt_codec", "adapters.shelly.http", "adapters.shelly.discovery")


def test_importing_the_adapters_loads_no_codec_of_theirs() -> None:
    # A fresh interpreter, as `hearth run` imports them (every entry point but Bluetooth).
    code = (
        "import sys\n"
        "from gateway.supervisor import discover_adapters\n"
        "assert discover_adapters(lambda name: name != 'ble')\n"
        f"print(','.join(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_config_default_of_skipped_sources_is_the_codecs() -> None:
    assert tuple(NATIVE_SOURCES) == tuple(DEFAULT_SKIP_NATIVE)


class _Mqtt:
    def __init__(self) -> None:
        self.filters: list[str] = []

    def subscribe(self, topic_filter: str, callback: object, qos: int = 0) -> object:
        self.filters.append(topic_filter)
        return lambda: None


@pytest.mark.parametrize("settings", [{}, {"full_topic": "%topic%/%prefix%/", "discovery_prefix": "tas/disc"},
                                      {"full_topic": "home/%prefix%/%topic%/"}])
async def test_tasmota_subscribes_at_start_to_what_its_codec_would(settings: dict[str, str]) -> None:
    mqtt = _Mqtt()
    ctx = SimpleNamespace(name="tasmota", config=settings, mqtt=mqtt, log=logging.getLogger("test"),
                          clock=SystemClock())
    adapter = TasmotaAdapter()
    await adapter.start(ctx)  # type: ignore[arg-type]
    config = TasmotaConfig.model_validate(settings)
    assert set(mqtt.filters) == TasmotaCodec(config.full_topic, config.discovery_prefix).filters()
    assert adapter.codec is None
