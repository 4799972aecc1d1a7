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


class _Recorder:
    """An adapter context that records what apply_decoded hands it, in order."""

    name = "acme"

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def upsert_device(self, info: object) -> None:
        self.calls.append(("upsert", info))

    def remove_device(self, device_id: str) -> None:
        self.calls.append(("remove", device_id))

    def push(self, updates: object) -> None:
        self.calls.append(("push", list(updates)))  # type: ignore[call-overload]

    def push_event(self, event: object) -> None:
        self.calls.append(("event", event))

    def set_available(self, device_id: str, available: object) -> None:
        self.calls.append(("available", (device_id, available)))

    def report_bad_input(self, message: str) -> None:
        self.calls.append(("problem", message))

    def note(self, text: str) -> None:
        self.calls.append(("note", text))


def test_every_codec_result_is_applied_whole_in_order_whatever_its_shape() -> None:
    # apply_decoded reads a type with all seven lists the quick way: the same calls, in the same order, as
    # for a type with only some of them, or one whose instance turns out to lack one.
    from types import SimpleNamespace

    from gateway.sdk import apply_decoded

    full = dict(upserts=["info"], removals=["gone"], updates=[1, 2], events=["pressed"],
                availability=[("d", True)], problems=["bad"], notes=["unused"])
    expected = [("upsert", "info"), ("remove", "gone"), ("push", [1, 2]), ("event", "pressed"),
                ("available", ("d", True)), ("problem", "bad"), ("note", "unused")]
    for _ in range(3):  # learnt on the first, then the quick way
        ctx = _Recorder()
        apply_decoded(ctx, SimpleNamespace(**full))  # type: ignore[arg-type]
        assert ctx.calls == expected
        ctx = _Recorder()
        apply_decoded(ctx, SimpleNamespace(**{**full, "upserts": [], "removals": [], "events": [], "availability": [],
                                                "problems": [], "notes": []}))  # type: ignore[arg-type]
        assert ctx.calls == [("push", [1, 2])]
    partial = SimpleNamespace(updates=[3], problems=["odd"])  # the same type, without five of the lists
    ctx = _Recorder()
    apply_decoded(ctx, partial)  # type: ignore[arg-type]
    assert ctx.calls == [("push", [3]), ("problem", "odd")]
    ctx = _Recorder()
    apply_decoded(ctx, SimpleNamespace(**full))  # type: ignore[arg-type]
    assert ctx.calls == expected
