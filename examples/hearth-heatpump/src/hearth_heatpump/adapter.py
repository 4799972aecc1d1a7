"""The heat-pump adapter: the thin I/O shell around :class:`hearth_heatpump.codec.HeatPumpCodec`. It subscribes,
hands what the codec made of each message to the gateway, and publishes commands, telling the hub what the
controller will report back; everything it knows comes through ``ctx``."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.sdk import (
    AdapterContext,
    AdapterNotReadyError,
    CodecError,
    Command,
    CommandResult,
    Unsubscribe,
    apply_decoded,
    plain_topic,
)
from pydantic import BaseModel, ConfigDict, field_validator

from hearth_heatpump.codec import HeatPumpCodec


class HeatPumpConfig(BaseModel):
    """``[adapters.heatpump]`` in the gateway's config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: The base topic the controllers publish under (set on their web page).
    base_topic: str = "heatpump"

    @field_validator("base_topic")
    @classmethod
    def _base_topic(cls, value: str) -> str:
        return plain_topic(value)


class HeatPumpAdapter:
    """Nordvik heat-pump controllers over the gateway's MQTT session."""

    needs_mqtt: ClassVar[bool] = True
    requires_sdk: ClassVar[str] = ">=1.1,<2"
    config_model: ClassVar[type[BaseModel]] = HeatPumpConfig

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._codec = HeatPumpCodec()
        self._unsubscribes: list[Unsubscribe] = []

    async def start(self, ctx: AdapterContext) -> None:
        if ctx.mqtt is None:
            raise AdapterNotReadyError("the heatpump adapter needs the gateway's MQTT session ([mqtt] in config)")
        config = HeatPumpConfig.model_validate(ctx.config or {})
        self._ctx = ctx
        self._codec = HeatPumpCodec(config.base_topic)
        self._unsubscribes = [ctx.mqtt.subscribe(topic, self._on_message) for topic in self._codec.subscriptions]

    async def stop(self) -> None:
        unsubscribes, self._unsubscribes = self._unsubscribes, []
        for unsubscribe in unsubscribes:
            unsubscribe()
        self._ctx = None

    async def execute(self, command: Command) -> CommandResult:
        ctx = self._ctx
        if ctx is None or ctx.mqtt is None:
            return CommandResult("failed", "the heatpump adapter is not running")
        try:
            topic, payload, expected = self._codec.encode(command)
        except CodecError as err:
            return CommandResult("rejected", str(err))
        ctx.mqtt.publish(topic, payload)
        # The controller steps its setpoint (21.3 asked, 21.5 set): the hub waits for what it will report,
        # not for the model's "the argument as given" (SDK 1.1 keeps an adapter's expected).
        return CommandResult("sent", f"published to {topic}", expected=expected)

    def stats(self) -> dict[str, Any]:
        return {"controllers": len(self._codec.setpoints)}

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        try:
            decoded = self._codec.decode(topic, payload)
        except Exception as err:  # a bug of ours must not take the MQTT dispatch down with it
            ctx.log.exception("heatpump: failed on %s", topic)
            ctx.report_bad_input(f"heatpump: could not handle {topic!r}: {err!r}")
            return
        apply_decoded(ctx, decoded)
