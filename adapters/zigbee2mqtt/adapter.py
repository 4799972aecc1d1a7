"""The Zigbee2MQTT adapter: the thin I/O shell around :mod:`adapters.zigbee2mqtt.codec`.

It subscribes to ``<base_topic>/#`` on the gateway's shared MQTT session, hands every message to the codec
and applies what the codec decoded to its context (devices, state, events, availability, bad input). It
publishes commands on ``<base_topic>/<friendly_name>/set``; the hub confirms them from the state the device
reports back. The bridge's device definitions are remembered in the adapter's storage so that devices
restored after a restart take commands before Zigbee2MQTT republishes ``bridge/devices``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from adapters.zigbee2mqtt.codec import Decoded, Zigbee2MqttCodec
from gateway.sdk import (
    AdapterContext,
    AdapterNotReadyError,
    Command,
    CommandResult,
    HearthError,
    Unsubscribe,
    apply_decoded,
    plain_topic,
    publish_command,
)

__all__ = ["Zigbee2MqttAdapter", "Zigbee2MqttConfig"]

STORAGE_KEY = "bridge_devices"


class Zigbee2MqttConfig(BaseModel):
    """``[adapters.zigbee2mqtt]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Zigbee2MQTT's ``mqtt.base_topic``.
    base_topic: str = "zigbee2mqtt"

    @field_validator("base_topic")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        return plain_topic(value)


class Zigbee2MqttAdapter:
    """Zigbee devices of one Zigbee2MQTT bridge, as Hearth devices ``zigbee2mqtt:<ieee address>``."""

    needs_mqtt: ClassVar[bool] = True
    config_model: ClassVar[type[BaseModel]] = Zigbee2MqttConfig

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._codec: Zigbee2MqttCodec | None = None
        self._unsubscribe: Unsubscribe | None = None

    async def __aenter__(self) -> Zigbee2MqttAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, ctx: AdapterContext) -> None:
        try:
            config = Zigbee2MqttConfig.model_validate(ctx.config or {})
        except ValidationError as err:
            raise HearthError(f"[adapters.{ctx.name}]: {err}") from err
        if ctx.mqtt is None:
            raise AdapterNotReadyError("zigbee2mqtt needs the gateway's MQTT session ([mqtt] in config)")
        self._ctx = ctx
        codec = self._codec = Zigbee2MqttCodec(config.base_topic)
        known = [device.id for device in ctx.devices()]
        self._apply(codec.restore(ctx.storage.get(STORAGE_KEY), known))
        self._unsubscribe = ctx.mqtt.subscribe(f"{config.base_topic}/#", self._on_message)
        ctx.log.info("zigbee2mqtt: listening on %s/# (%d devices remembered)", config.base_topic, len(codec.by_id))

    async def stop(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    async def execute(self, command: Command) -> CommandResult:
        codec = self._codec
        if codec is None:
            return CommandResult("failed", "the zigbee2mqtt adapter is not running")
        return publish_command(self._ctx, "zigbee2mqtt", codec.encode, command)

    # -- the hot path: called on the event loop for every message under <base>/#

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        ctx, codec = self._ctx, self._codec
        if ctx is None or codec is None:
            return
        try:
            self._apply(codec.decode(topic, payload))
        except Exception as err:
            # The codec reports what it understands as bad input itself; this is a bug of ours, and one
            # message must never take the MQTT session's dispatch down with it.
            ctx.log.exception("zigbee2mqtt: failed on %s", topic)
            ctx.report_bad_input(f"zigbee2mqtt: could not handle {topic!r}: {err!r}")

    def _apply(self, decoded: Decoded) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        apply_decoded(ctx, decoded)
        if decoded.definitions_changed and self._codec is not None:
            ctx.storage.set(STORAGE_KEY, self._codec.definitions())

    # For tests and tools: what the adapter currently knows.
    @property
    def codec(self) -> Zigbee2MqttCodec | None:
        return self._codec

    def __repr__(self) -> str:
        base = self._codec.base_topic if self._codec else "-"
        return f"<Zigbee2MqttAdapter base_topic={base!r} running={self._unsubscribe is not None}>"
