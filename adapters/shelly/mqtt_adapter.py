"""The Shelly Gen2+ MQTT adapter: the thin I/O shell around :mod:`adapters.shelly.mqtt_codec`.

It subscribes to ``+/online``, ``+/events/rpc`` and ``+/status/+`` (or to the configured ``topic_prefixes``)
and to its own reply topic ``<src>/rpc``. When it sees a new prefix it asks the device for
``Shelly.GetDeviceInfo`` and ``Shelly.GetStatus`` over MQTT, once per prefix and run, and not at all when the
device id names a model that sleeps (it would never answer). A device that does not answer is not waited for: it is
built from its status topics (``<prefix>/status/<component>``) as they come; after :data:`DISCOVERY_TIMEOUT_S` the
request is forgotten. Commands are JSON-RPC frames on ``<prefix>/rpc``;
the reply (same ``id``, on ``<src>/rpc``) decides the result: an error reply is ``failed`` with the device's
message, a success or no reply within :data:`REPLY_TIMEOUT_S` is ``sent`` and the hub confirms the command
from the status the device then reports.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from gateway.sdk import (
    AdapterContext,
    AdapterNotReadyError,
    CodecError,
    Command,
    CommandResult,
    HearthError,
    Unsubscribe,
    apply_decoded,
    plain_topic,
)

if TYPE_CHECKING:
    from adapters.shelly.codec import Decoded
    from adapters.shelly.mqtt_codec import ShellyMqttCodec

__all__ = ["DISCOVERY_TIMEOUT_S", "REPLY_TIMEOUT_S", "ShellyMqttAdapter", "ShellyMqttConfig"]

# A Shelly answers an RPC over MQTT in tens of milliseconds; 3 s covers a loaded broker and Wi-Fi retries.
# Past it the command is still "sent": the hub confirms from the status notification anyway.
REPLY_TIMEOUT_S = 3.0
# How long a discovery request (GetDeviceInfo/GetStatus) is remembered: a device that is busy booting may answer late,
# but one that has not answered in a minute is asleep or has RPC over MQTT off, and is built from its status topics.
DISCOVERY_TIMEOUT_S = 60.0
SRC_STORAGE_KEY = "src"


class _Timer(Protocol):
    """What ``ctx.clock.call_later`` returns."""

    def cancel(self) -> None: ...


def _plain_topic(value: str, what: str) -> str:
    try:
        plain_topic(value)
    except ValueError as err:
        raise ValueError(f"{what} {err}") from None
    if value.startswith("/"):
        raise ValueError(f"{what} must not start with '/'")
    return value


class ShellyMqttConfig(BaseModel):
    """``[adapters.shelly]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Our JSON-RPC source name: replies come on ``<src>/rpc``. Default: ``hearth-<random>``, kept in storage.
    src: str | None = None
    #: The devices' MQTT ``topic_prefix`` values. Default: discover any one-level prefix (the factory default).
    topic_prefixes: list[str] | None = None

    @field_validator("src")
    @classmethod
    def _src(cls, value: str | None) -> str | None:
        return None if value is None else _plain_topic(value, "src")

    @field_validator("topic_prefixes")
    @classmethod
    def _prefixes(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_plain_topic(v, "a topic prefix") for v in value]


class ShellyMqttAdapter:
    """Shelly Gen2+ devices talking MQTT, as Hearth devices ``shelly:<device id>``."""

    needs_mqtt: ClassVar[bool] = True
    config_model: ClassVar[type[BaseModel]] = ShellyMqttConfig

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._codec: ShellyMqttCodec | None = None
        self._topic_prefixes: list[str] = []
        self._src = ""
        self._unsubscribes: list[Unsubscribe] = []
        self._next_id = 0
        # request id -> (future for a command) or (prefix, method) of a discovery request
        self._pending: dict[int, asyncio.Future[Any] | tuple[str, str]] = {}
        self._discovery_timers: dict[int, _Timer] = {}  # request id -> its expiry

    async def __aenter__(self) -> ShellyMqttAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def src(self) -> str:
        return self._src

    @property
    def codec(self) -> ShellyMqttCodec | None:
        return self._codec

    async def start(self, ctx: AdapterContext) -> None:
        try:
            config = ShellyMqttConfig.model_validate(ctx.config or {})
        except ValidationError as err:
            raise HearthError(f"[adapters.{ctx.name}]: {err}") from err
        if ctx.mqtt is None:
            raise AdapterNotReadyError("shelly needs the gateway's MQTT session ([mqtt] in config)")
        self._ctx = ctx
        src = config.src or ctx.storage.get(SRC_STORAGE_KEY)
        if not isinstance(src, str) or not src:
            # Random, so two gateways on one broker never read each other's replies; stored, so stable.
            src = f"hearth-{secrets.token_hex(3)}"
            ctx.storage.set(SRC_STORAGE_KEY, src)
        self._src = src
        self._topic_prefixes = config.topic_prefixes or []
        self._codec = None  # made by the first message (_loaded_codec)
        mqtt = ctx.mqtt
        self._unsubscribes.append(mqtt.subscribe(f"{src}/rpc", self._on_reply))
        heads = config.topic_prefixes or ["+"]
        for head in heads:
            for suffix in ("online", "events/rpc", "status/+"):
                self._unsubscribes.append(mqtt.subscribe(f"{head}/{suffix}", self._on_message))
        ctx.log.info("shelly: listening on %s, replies on %s/rpc", ", ".join(heads), src)

    async def stop(self) -> None:
        unsubscribes, self._unsubscribes = self._unsubscribes, []
        for unsubscribe in unsubscribes:
            unsubscribe()
        for pending in self._pending.values():
            if isinstance(pending, asyncio.Future) and not pending.done():
                pending.cancel()
        self._pending.clear()
        timers, self._discovery_timers = self._discovery_timers, {}
        for timer in timers.values():
            timer.cancel()

    def _loaded_codec(self) -> ShellyMqttCodec:
        if self._codec is None:
            # Imported when the first Shelly message (or command) comes, not at start: a house without Shelly
            # devices on MQTT never loads the Shelly codecs (bench/memory.py).
            from adapters.shelly.mqtt_codec import ShellyMqttCodec

            self._codec = ShellyMqttCodec(self._topic_prefixes)
        return self._codec

    # -- commands

    def _request(self, prefix: str, method: str, params: dict[str, Any] | None,
                 waiter: asyncio.Future[Any] | tuple[str, str]) -> int:
        ctx = self._ctx
        assert ctx is not None and ctx.mqtt is not None
        self._next_id += 1
        request_id = self._next_id
        self._pending[request_id] = waiter
        from adapters.shelly.codec import rpc_request  # loaded with the codec (_loaded_codec)

        ctx.mqtt.publish(f"{prefix}/rpc", rpc_request(request_id, self._src, method, params))
        return request_id

    async def execute(self, command: Command) -> CommandResult:
        ctx = self._ctx
        if ctx is None or ctx.mqtt is None:
            return CommandResult("failed", "the shelly adapter is not running")
        codec = self._loaded_codec()
        try:
            device, prefix = codec.encode_target(command.device_id)
            method, params = device.encode(command)
        except CodecError as err:
            return CommandResult("rejected", str(err))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        request_id = self._request(prefix, method, params, future)
        try:
            reply = await asyncio.wait_for(future, REPLY_TIMEOUT_S)
        except TimeoutError:
            return CommandResult("sent", f"{method} published to {prefix}/rpc (no reply yet)",
                                 details={"method": method, "params": params})
        finally:
            self._pending.pop(request_id, None)
        if not reply.ok:
            return CommandResult("failed", f"{device.shelly_id} refused {method}: {reply.error}",
                                 details={"method": method, "params": params})
        return CommandResult("sent", f"{device.shelly_id} accepted {method}",
                             details={"method": method, "params": params, "result": reply.result})

    # -- the hot path (called on the event loop; never raises)

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        try:
            decoded = (self._codec or self._loaded_codec()).decode(topic, payload)
            for prefix in decoded.discover:
                self._discover(prefix)
            self._apply(decoded)
        except Exception as err:
            ctx.log.exception("shelly: failed on %s", topic)
            ctx.report_bad_input(f"shelly: could not handle {topic!r}: {err!r}")

    def _discover(self, prefix: str) -> None:
        # Name, model and the whole set of components are learnt by asking: a device announces itself only by being
        # online. Asked once (the codec reports a prefix once); never retried, so a sleeping device is not spammed.
        ctx = self._ctx
        assert ctx is not None
        for method in ("Shelly.GetDeviceInfo", "Shelly.GetStatus"):
            request_id = self._request(prefix, method, None, (prefix, method))
            self._discovery_timers[request_id] = ctx.clock.call_later(
                DISCOVERY_TIMEOUT_S, lambda rid=request_id: self._forget_discovery(rid))

    def _forget_discovery(self, request_id: int) -> None:
        self._discovery_timers.pop(request_id, None)
        waiter = self._pending.pop(request_id, None)
        if isinstance(waiter, tuple) and waiter[1] == "Shelly.GetStatus" and self._ctx is not None:
            self._ctx.log.info("shelly: no answer from %s to Shelly.GetStatus (asleep, or RPC over MQTT off): "
                               "it is known by its status topics and notifications only", waiter[0])

    def _on_reply(self, topic: str, payload: bytes, retain: bool) -> None:
        ctx = self._ctx
        if ctx is None or not payload:
            return
        try:
            codec = self._loaded_codec()
            from adapters.shelly.codec import decode_rpc_reply, parse_json  # loaded with the codec

            try:
                reply = decode_rpc_reply(parse_json(payload))
            except CodecError as err:
                ctx.report_bad_input(f"shelly {topic}: {err}")
                return
            waiter = self._pending.get(reply.id) if isinstance(reply.id, int) else None
            if waiter is None:
                return  # a late reply (the command already gave up waiting) or another gateway's
            if isinstance(waiter, asyncio.Future):
                if not waiter.done():
                    waiter.set_result(reply)
                return
            del self._pending[reply.id]  # type: ignore[arg-type]
            timer = self._discovery_timers.pop(reply.id, None)  # type: ignore[arg-type]
            if timer is not None:
                timer.cancel()
            prefix, method = waiter
            if not reply.ok:
                ctx.log.info("shelly: %s of %s failed: %s", method, prefix, reply.error)
                return
            self._apply(codec.apply_result(prefix, method, reply.src, reply.result))
        except Exception as err:
            ctx.log.exception("shelly: failed on reply %s", topic)
            ctx.report_bad_input(f"shelly: could not handle reply on {topic!r}: {err!r}")

    def _apply(self, decoded: Decoded) -> None:
        ctx, codec = self._ctx, self._codec
        if ctx is None or codec is None:
            return
        codec.after_upserts(decoded)
        apply_decoded(ctx, decoded)

    def __repr__(self) -> str:
        return f"<ShellyMqttAdapter src={self._src!r} running={bool(self._unsubscribes)}>"
