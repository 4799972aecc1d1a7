"""The Tasmota adapter: the thin I/O shell around :mod:`adapters.tasmota.codec`.

It subscribes to the native discovery topics (``<discovery_prefix>/#``) and to the ``stat``/``tele`` topics of
every device with the configured FullTopic (and a Zigbee bridge's per-device ``tele/<t>/<short>/SENSOR``), plus the
topics of any discovered device whose own FullTopic or prefixes differ (one handle per filter, kept and undone on
stop). Commands are published on
``cmnd/<topic>/<Command>``; the hub confirms them from the ``stat/<topic>/RESULT`` the device answers with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from adapters.tasmota.topics import DEFAULT_FULL_TOPIC, subscription_filters
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
    from adapters.tasmota.codec import Decoded, TasmotaCodec

__all__ = ["TasmotaAdapter", "TasmotaConfig"]


class TasmotaConfig(BaseModel):
    """``[adapters.tasmota]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Tasmota's FullTopic as set on the devices (``%prefix%/%topic%/`` or, swapped, ``%topic%/%prefix%/``).
    full_topic: str = DEFAULT_FULL_TOPIC
    #: Where Tasmota publishes its native discovery (SetOption19 0).
    discovery_prefix: str = "tasmota/discovery"

    @field_validator("full_topic")
    @classmethod
    def _full_topic(cls, value: str) -> str:
        if "%prefix%" not in value or "%topic%" not in value:
            raise ValueError("must contain %prefix% and %topic% (Tasmota's default is '%prefix%/%topic%/')")
        if "+" in value or "#" in value or "\x00" in value:
            raise ValueError("must not contain MQTT wildcards ('+', '#')")
        return value

    @field_validator("discovery_prefix")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        return plain_topic(value)


class TasmotaAdapter:
    """Tasmota devices on the broker, as Hearth devices ``tasmota:<topic>``."""

    needs_mqtt: ClassVar[bool] = True
    config_model: ClassVar[type[BaseModel]] = TasmotaConfig

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._config = TasmotaConfig()
        self._codec: TasmotaCodec | None = None
        self._handles: dict[str, Unsubscribe] = {}

    async def __aenter__(self) -> TasmotaAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, ctx: AdapterContext) -> None:
        try:
            config = TasmotaConfig.model_validate(ctx.config or {})
        except ValidationError as err:
            raise HearthError(f"[adapters.{ctx.name}]: {err}") from err
        if ctx.mqtt is None:
            raise AdapterNotReadyError("tasmota needs the gateway's MQTT session ([mqtt] in config)")
        self._ctx, self._config = ctx, config
        self._codec = None  # made by the first message (_loaded_codec)
        self._sync_subscriptions()
        ctx.log.info("tasmota: listening on %s", ", ".join(sorted(self._handles)))

    async def stop(self) -> None:
        handles, self._handles = self._handles, {}
        for unsubscribe in handles.values():
            unsubscribe()

    def _loaded_codec(self) -> TasmotaCodec:
        if self._codec is None:
            # Imported when the first Tasmota message (or command) comes, not at start: a house without Tasmota
            # devices never loads the codec and its tables (bench/memory.py).
            from adapters.tasmota.codec import TasmotaCodec

            self._codec = TasmotaCodec(self._config.full_topic, self._config.discovery_prefix)
        return self._codec

    async def execute(self, command: Command) -> CommandResult:
        if self._ctx is None:
            return CommandResult("failed", "the tasmota adapter is not running")
        codec = self._loaded_codec()
        return publish_command(self._ctx, "tasmota", codec.encode, command)

    # -- the hot path

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        try:
            decoded = (self._codec or self._loaded_codec()).decode(topic, payload)
            self._apply(decoded)
            if decoded.topics_changed:
                self._sync_subscriptions()
        except Exception as err:
            # A bug of ours: one message must never take the MQTT session's dispatch down with it.
            ctx.log.exception("tasmota: failed on %s", topic)
            ctx.report_bad_input(f"tasmota: could not handle {topic!r}: {err!r}")

    def _apply(self, decoded: Decoded) -> None:
        if self._ctx is not None:
            apply_decoded(self._ctx, decoded)

    def _sync_subscriptions(self) -> None:
        ctx, codec = self._ctx, self._codec
        if ctx is None or ctx.mqtt is None:
            return
        if codec is not None:
            wanted = codec.filters()
        else:  # what a new codec's filters() are, without loading it
            config = self._config
            wanted = {*subscription_filters(config.full_topic), config.discovery_prefix + "/#"}
        for topic in [t for t in self._handles if t not in wanted]:
            self._handles.pop(topic)()
        for topic in sorted(wanted - set(self._handles)):
            self._handles[topic] = ctx.mqtt.subscribe(topic, self._on_message)

    # For tests and tools: what the adapter currently knows.
    @property
    def codec(self) -> TasmotaCodec | None:
        return self._codec

    @property
    def subscriptions(self) -> list[str]:
        return sorted(self._handles)

    def __repr__(self) -> str:
        return f"<TasmotaAdapter topics={len(self._handles)}>"
