"""The Acme adapter: the thin I/O shell around :class:`hearth_acme.codec.AcmeCodec`. It subscribes, hands what the
codec made of each message to the gateway, and publishes commands; everything it knows comes through ``ctx``."""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.sdk import (
    AdapterContext,
    AdapterNotReadyError,
    Command,
    CommandResult,
    Unsubscribe,
    apply_decoded,
    plain_topic,
    publish_command,
    register_capability,
)
from pydantic import BaseModel, ConfigDict, field_validator

from hearth_acme.codec import FILTER_CAPABILITY, AcmeCodec


class AcmeConfig(BaseModel):
    """``[adapters.acme]`` in the gateway's config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: The base topic the purifiers publish under (set in their app).
    base_topic: str = "acme"

    @field_validator("base_topic")
    @classmethod
    def _base_topic(cls, value: str) -> str:
        return plain_topic(value)


class AcmeAdapter:
    """Acme air purifiers over the gateway's MQTT session."""

    needs_mqtt: ClassVar[bool] = True
    requires_sdk: ClassVar[str] = ">=1.1,<2"
    config_model: ClassVar[type[BaseModel]] = AcmeConfig

    def __init__(self) -> None:
        # Constructors only store: everything starts in start().
        self._ctx: AdapterContext | None = None
        self._codec = AcmeCodec()
        self._unsubscribes: list[Unsubscribe] = []

    async def start(self, ctx: AdapterContext) -> None:
        if ctx.mqtt is None:
            raise AdapterNotReadyError("the acme adapter needs the gateway's MQTT session ([mqtt] in config)")
        config = AcmeConfig.model_validate(ctx.config or {})
        # The plugin's own capability: the hub accepts its values (and commands) once it is registered.
        register_capability(FILTER_CAPABILITY)
        self._ctx = ctx
        self._codec = AcmeCodec(config.base_topic)
        self._unsubscribes = [ctx.mqtt.subscribe(topic, self._on_message) for topic in self._codec.subscriptions]

    async def stop(self) -> None:
        unsubscribes, self._unsubscribes = self._unsubscribes, []
        for unsubscribe in unsubscribes:
            unsubscribe()
        self._ctx = None

    async def execute(self, command: Command) -> CommandResult:
        # "sent": the hub confirms from what the purifier reports (67 % after set_speed 50 on 3 speeds,
        # from the fan capability's speed_steps).
        return publish_command(self._ctx, "acme", self._codec.encode, command)

    def stats(self) -> dict[str, Any]:
        return {"purifiers": len(self._codec.fan_speeds)}

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        try:
            decoded = self._codec.decode(topic, payload)
        except Exception as err:  # a bug of ours must not take the MQTT dispatch down with it
            ctx.log.exception("acme: failed on %s", topic)
            ctx.report_bad_input(f"acme: could not handle {topic!r}: {err!r}")
            return
        apply_decoded(ctx, decoded)
