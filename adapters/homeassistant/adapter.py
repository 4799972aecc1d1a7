"""The Home Assistant MQTT discovery adapter: the thin I/O shell around :mod:`adapters.homeassistant.codec`.

It subscribes to ``<discovery_prefix>/#`` on the gateway's shared MQTT session, hands discovery configs to the
codec, and subscribes (and unsubscribes) the state and availability topics the configs name as they come and
go, keeping one handle per topic. Commands are published on the entity's command topic, as its config says;
the hub confirms them from the state the device reports back.

Devices that a native adapter represents better (Zigbee2MQTT, Tasmota, Shelly announcing themselves through
HA discovery too) are skipped, and said so at debug level; see :mod:`adapters.homeassistant.codec` for the rule and
the ``skip_native`` option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from gateway.sdk import (
    AdapterContext,
    AdapterNotReadyError,
    CodecError,
    Command,
    CommandResult,
    HearthError,
    TimerHandle,
    Unsubscribe,
    Update,
    apply_decoded,
    plain_topic,
)

if TYPE_CHECKING:
    from adapters.homeassistant.codec import Decoded, HomeAssistantCodec

__all__ = ["HomeAssistantDiscoveryAdapter", "HomeAssistantDiscoveryConfig"]

# Also codec.DEFAULT_SKIP_NATIVE (a test keeps them equal): the codec is not imported for the config's default.
NATIVE_SOURCES = ("zigbee2mqtt", "tasmota", "shelly")


class HomeAssistantDiscoveryConfig(BaseModel):
    """``[adapters.homeassistant]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Home Assistant's ``discovery_prefix``.
    discovery_prefix: str = "homeassistant"
    #: Sources whose devices are read natively: their HA discovery configs are skipped. Remove a source here
    #: when you do not run its native adapter and want its devices through HA discovery instead.
    skip_native: list[str] = list(NATIVE_SOURCES)

    @field_validator("discovery_prefix")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        return plain_topic(value)

    @field_validator("skip_native")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(NATIVE_SOURCES))
        if unknown:
            raise ValueError(f"unknown source(s) {', '.join(unknown)}; known: {', '.join(NATIVE_SOURCES)}")
        return value


class HomeAssistantDiscoveryAdapter:
    """Devices announced through Home Assistant MQTT discovery, as Hearth devices ``ha:<identifier>``."""

    needs_mqtt: ClassVar[bool] = True
    config_model: ClassVar[type[BaseModel]] = HomeAssistantDiscoveryConfig

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._config = HomeAssistantDiscoveryConfig()
        self._codec: HomeAssistantCodec | None = None
        self._handles: dict[str, Unsubscribe] = {}
        self._timers: dict[str, TimerHandle] = {}  # expire_after / off_delay, armed again by each message

    async def __aenter__(self) -> HomeAssistantDiscoveryAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self, ctx: AdapterContext) -> None:
        try:
            config = HomeAssistantDiscoveryConfig.model_validate(ctx.config or {})
        except ValidationError as err:
            raise HearthError(f"[adapters.{ctx.name}]: {err}") from err
        if ctx.mqtt is None:
            raise AdapterNotReadyError("homeassistant needs the gateway's MQTT session ([mqtt] in config)")
        self._ctx, self._config = ctx, config
        self._codec = None  # made by the first message (_loaded_codec)
        root = f"{config.discovery_prefix}/#"
        self._handles[root] = ctx.mqtt.subscribe(root, self._on_message)
        ctx.log.info("homeassistant: listening on %s (skipping devices read natively by %s)", root,
                     ", ".join(config.skip_native) or "none")

    async def stop(self) -> None:
        handles, self._handles = self._handles, {}
        for unsubscribe in handles.values():
            unsubscribe()
        timers, self._timers = self._timers, {}
        for timer in timers.values():
            timer.cancel()

    def _loaded_codec(self) -> HomeAssistantCodec:
        if self._codec is None:
            # Imported when the first discovery message (or command) comes, not at start: a house without Home
            # Assistant discovery never loads the codec and its tables (~1 MB of RSS, bench/memory.py).
            from adapters.homeassistant.codec import HomeAssistantCodec

            self._codec = HomeAssistantCodec(self._config.discovery_prefix, self._config.skip_native)
        return self._codec

    async def execute(self, command: Command) -> CommandResult:
        ctx = self._ctx
        if ctx is None or ctx.mqtt is None:
            return CommandResult("failed", "the homeassistant adapter is not running")
        codec = self._loaded_codec()
        try:
            topic, payload, retain = codec.encode(command)
        except CodecError as err:
            return CommandResult("rejected", str(err))
        ctx.mqtt.publish(topic, payload, retain=retain)
        return CommandResult("sent", f"published to {topic}")

    # -- the hot path: every discovery config, and every state/availability message the configs named

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        try:
            decoded = (self._codec or self._loaded_codec()).decode(topic, payload, self._known)
            self._apply(decoded)
            if decoded.topics_changed:
                self._sync_subscriptions()
        except Exception as err:
            # The codec reports what it understands as bad input itself; this is a bug of ours, and one
            # message must never take the MQTT session's dispatch down with it.
            ctx.log.exception("homeassistant: failed on %s", topic)
            ctx.report_bad_input(f"homeassistant: could not handle {topic!r}: {err!r}")

    def _known(self, device_id: str) -> bool:
        return self._ctx is not None and self._ctx.device(device_id) is not None

    def _apply(self, decoded: Decoded) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        apply_decoded(ctx, decoded)
        for key, delay_s, updates in decoded.timers:
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            self._timers[key] = ctx.clock.call_later(delay_s, lambda key=key, updates=updates: self._fire(key, updates))

    def _fire(self, key: str, updates: list[Update]) -> None:
        # On the adapter's clock (simulated in `hearth replay`): the value was not renewed in time.
        self._timers.pop(key, None)
        if self._ctx is not None:
            self._ctx.push(updates)

    def _sync_subscriptions(self) -> None:
        ctx, codec = self._ctx, self._codec
        if ctx is None or codec is None or ctx.mqtt is None:
            return
        root = f"{codec.prefix}/#"
        wanted = codec.topics() | {root}
        for topic in [t for t in self._handles if t not in wanted]:
            self._handles.pop(topic)()
        for topic in sorted(wanted - set(self._handles)):
            self._handles[topic] = ctx.mqtt.subscribe(topic, self._on_message)

    # For tests and tools: what the adapter currently knows.
    @property
    def codec(self) -> HomeAssistantCodec | None:
        return self._codec

    @property
    def subscriptions(self) -> list[str]:
        return sorted(self._handles)

    def __repr__(self) -> str:
        prefix = self._config.discovery_prefix if self._ctx else "-"
        return f"<HomeAssistantDiscoveryAdapter prefix={prefix!r} topics={len(self._handles)}>"
