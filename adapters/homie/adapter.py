"""The Homie adapter (v4 and v5): the thin I/O shell around :mod:`adapters.homie.codec`.

It subscribes to ``<base_topic>/#``, hands every message to the codec and applies what it decoded. Commands are
published, not retained, on ``…/<node>/<property>/set`` (Homie is state based: the device answers by publishing
the property, from which the hub confirms the command). Properties without a clear capability are logged once
per description at debug level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

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

if TYPE_CHECKING:
    from adapters.homie.codec import Decoded, HomieCodec

__all__ = ["HomieAdapter", "HomieConfig"]


class HomieConfig(BaseModel):
    """``[adapters.homie]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    base_topic: str = "homie"

    @field_validator("base_topic")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        return plain_topic(value)


class HomieAdapter:
    """Homie devices under one base topic, as Hearth devices ``homie:<device id>``."""

    needs_mqtt: ClassVar[bool] = True
    config_model: ClassVar[type[BaseModel]] = HomieConfig

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._base_topic = HomieConfig().base_topic
        self._codec: HomieCodec | None = None
        self._unsubscribe: Unsubscribe | None = None

    async def __aenter__(self) -> HomieAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def codec(self) -> HomieCodec | None:
        return self._codec

    async def start(self, ctx: AdapterContext) -> None:
        try:
            config = HomieConfig.model_validate(ctx.config or {})
        except ValidationError as err:
            raise HearthError(f"[adapters.{ctx.name}]: {err}") from err
        if ctx.mqtt is None:
            raise AdapterNotReadyError("homie needs the gateway's MQTT session ([mqtt] in config)")
        self._ctx, self._base_topic = ctx, config.base_topic
        self._codec = None  # made by the first message (_loaded_codec)
        self._unsubscribe = ctx.mqtt.subscribe(f"{config.base_topic}/#", self._on_message)
        ctx.log.info("homie: listening on %s/#", config.base_topic)

    async def stop(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    def _loaded_codec(self) -> HomieCodec:
        if self._codec is None:
            # Imported when the first Homie message (or command) comes, not at start: a house without Homie
            # devices never loads the codec (bench/memory.py).
            from adapters.homie.codec import HomieCodec

            self._codec = HomieCodec(self._base_topic)
        return self._codec

    async def execute(self, command: Command) -> CommandResult:
        if self._ctx is None:
            return CommandResult("failed", "the homie adapter is not running")
        codec = self._loaded_codec()
        # Not retained (the convention, and publish_command's default): a retained /set would replay the
        # command on every reconnect.
        return publish_command(self._ctx, "homie", codec.encode, command)

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        try:
            self._apply((self._codec or self._loaded_codec()).decode(topic, payload))
        except Exception as err:
            ctx.log.exception("homie: failed on %s", topic)
            ctx.report_bad_input(f"homie: could not handle {topic!r}: {err!r}")

    def _apply(self, decoded: Decoded) -> None:
        if self._ctx is not None:
            apply_decoded(self._ctx, decoded)
