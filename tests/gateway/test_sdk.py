"""gateway.sdk helpers shared by adapters."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapters.homeassistant.adapter import HomeAssistantDiscoveryConfig
from adapters.homie.adapter import HomieConfig
from adapters.tasmota.adapter import TasmotaConfig
from adapters.zigbee2mqtt.adapter import Zigbee2MqttConfig
from gateway.sdk import plain_topic

FIELDS = [(Zigbee2MqttConfig, "base_topic"), (HomieConfig, "base_topic"),
          (HomeAssistantDiscoveryConfig, "discovery_prefix"), (TasmotaConfig, "discovery_prefix")]


@pytest.mark.parametrize(("value", "why"), [
    ("", "must not be empty"), ("  ", "must not be empty"),
    ("zigbee2mqtt/#", "without MQTT wildcards"), ("a/+/b", "without MQTT wildcards"), ("a\x00b", "NUL"),
    ("zigbee2mqtt/", "write 'zigbee2mqtt', not 'zigbee2mqtt/'"),
])
@pytest.mark.parametrize(("model", "field"), FIELDS)
def test_every_adapter_refuses_a_base_topic_that_is_not_plain(model: type, field: str, value: str, why: str) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate({field: value})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,) and why in error["msg"]


def test_a_plain_topic_passes_unchanged() -> None:
    assert plain_topic("home/zigbee") == "home/zigbee"
    for model, field in FIELDS:
        assert getattr(model.model_validate({field: "home/x"}), field) == "home/x"
