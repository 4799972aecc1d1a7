"""The device-definitions adapter: the thin I/O shell around :mod:`adapters.definitions.codec`.

It loads the shipped definitions (``adapters/definitions/definitions/*.toml``) and those of the configured folders
(strictly: a broken file stops the adapter with ``file:line: key: message``, shown in ``/healthz``, and is
read again at the next retry), subscribes to the topics they read on the gateway's shared MQTT session, hands
every message to the codec and applies the result to its context. Commands are published as the definition
says; the hub confirms them from the state the device reports back.

``[adapters.definitions]`` in config.toml::

    enabled = true
    folders = ["/etc/hearth/definitions"]      # your own *.toml definitions (a name of a shipped one replaces it)
    use = ["opendtu", "heishamon"]             # only these definitions (default: every one loaded)
    devices = [                                # pin devices: a definition listed here takes only these
      { definition = "heishamon", device = "panasonic_heat_pump", name = "Heat pump" },
    ]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from adapters.definitions.codec import Decoded, DefinitionCodec, Instance
from adapters.definitions.format import Definition, load_definition, load_definitions
from gateway.sdk import (
    AdapterContext,
    AdapterNotReadyError,
    CodecError,
    Command,
    CommandResult,
    ConfigError,
    ConfigProblem,
    HearthError,
    Unsubscribe,
    apply_decoded,
)

__all__ = ["DefinitionsAdapter", "DefinitionsConfig", "DeviceEntry"]

STORAGE_KEY = "natives"


class DeviceEntry(BaseModel):
    """One device pinned in the config: which definition, its native id as it appears in its topics."""

    model_config = ConfigDict(extra="forbid")

    definition: str
    device: str
    name: str | None = None

    @field_validator("device")
    @classmethod
    def _one_level(cls, value: str) -> str:
        if not value or any(c in value for c in "/+#\x00"):
            raise ValueError("the device's native id: one MQTT topic level, without '/', '+', '#'")
        return value


class DefinitionsConfig(BaseModel):
    """``[adapters.definitions]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Folders of your own definitions (``*.toml``); relative paths are taken from the working directory.
    folders: list[str] = Field(default_factory=list)
    #: Load the definitions that come with the gateway.
    shipped: bool = True
    #: Only these definitions, by name (default: all loaded).
    use: list[str] | None = None
    #: Devices pinned by hand; a definition with pinned devices takes no others.
    devices: list[DeviceEntry] = Field(default_factory=list)


class DefinitionsAdapter:
    """Vendor devices described by TOML definitions, as Hearth devices ``def:<definition>:<native id>``."""

    needs_mqtt: ClassVar[bool] = True
    config_model: ClassVar[type[BaseModel]] = DefinitionsConfig

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._codec: DefinitionCodec | None = None
        self._unsubscribes: list[Unsubscribe] = []

    async def __aenter__(self) -> DefinitionsAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @classmethod
    def check_config(cls, config: dict[str, object]) -> list[ConfigProblem]:
        """For ``hearth config check``: every problem of every definition file this section loads (and of
        its ``use`` list), as starting the adapter would find them."""
        section = DefinitionsConfig.model_validate(config)
        if not section.enabled:
            return []
        try:
            definitions = load_definitions([Path(f) for f in section.folders], shipped=section.shipped)
            cls._select("definitions", definitions, section)
        except ConfigError as err:
            return list(err.problems)
        return []

    @staticmethod
    def check_files(paths: list[Path]) -> tuple[list[str], list[ConfigProblem]]:
        """For ``hearth definition check``: the names of the definitions that load, and every problem of
        the others (a folder stands for its ``*.toml`` files)."""
        names: list[str] = []
        problems: list[ConfigProblem] = []
        for path in paths:
            files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
            if path.is_dir() and not files:
                problems.append(ConfigProblem(str(path), None, "", "no *.toml device definitions in this folder"))
            for file in files:
                try:
                    names.append(load_definition(file).name)
                except ConfigError as err:
                    problems.extend(err.problems)
        return names, problems

    async def start(self, ctx: AdapterContext) -> None:
        try:
            config = DefinitionsConfig.model_validate(ctx.config or {})
        except ValidationError as err:
            raise HearthError(f"[adapters.{ctx.name}]: {err}") from err
        if ctx.mqtt is None:
            raise AdapterNotReadyError("device definitions need the gateway's MQTT session ([mqtt] in config)")
        # Read on the loop, deliberately: a few small files (each at most 512 KiB, in practice 2-5 KiB) once per
        # start, and `hearth replay` waits a fixed number of loop turns for adapters to subscribe before the
        # first captured message, which a thread hop can outlast (the capture's first messages would be lost).
        definitions = load_definitions([Path(f) for f in config.folders], shipped=config.shipped)
        definitions = self._select(ctx.name, definitions, config)
        instances = [Instance(d.definition, d.device, d.name) for d in config.devices]
        self._ctx = ctx
        codec = self._codec = DefinitionCodec(definitions, instances)
        self._apply(codec.pinned_devices())
        known = [device.id for device in ctx.devices()]
        self._apply(codec.restore(ctx.storage.get(STORAGE_KEY), known))
        for topic_filter in codec.subscriptions():
            self._unsubscribes.append(ctx.mqtt.subscribe(topic_filter, self._callback_for(topic_filter)))
        ctx.log.info(
            "definitions: %d loaded (%s), %d subscriptions",
            len(definitions),
            ", ".join(sorted(codec.definitions)) or "none",
            len(self._unsubscribes),
        )

    @staticmethod
    def _select(name: str, definitions: list[Definition], config: DefinitionsConfig) -> list[Definition]:
        loaded = {d.name: d for d in definitions}
        problems = []
        wanted = config.use if config.use is not None else list(loaded)
        for index, wanted_name in enumerate(wanted):
            if wanted_name not in loaded:
                problems.append(
                    ConfigProblem(
                        "config",
                        None,
                        f"adapters.{name}.use.{index}",
                        f"no device definition named {wanted_name!r} (loaded: {', '.join(sorted(loaded)) or 'none'})",
                    )
                )
        for index, entry in enumerate(config.devices):
            if entry.definition not in wanted or entry.definition not in loaded:
                problems.append(
                    ConfigProblem(
                        "config",
                        None,
                        f"adapters.{name}.devices.{index}.definition",
                        f"no device definition named {entry.definition!r} in use "
                        f"(in use: {', '.join(sorted(set(wanted) & set(loaded))) or 'none'})",
                    )
                )
        if problems:
            raise ConfigError(problems)
        return [loaded[n] for n in wanted]

    async def stop(self) -> None:
        unsubscribes, self._unsubscribes = self._unsubscribes, []
        for unsubscribe in unsubscribes:
            unsubscribe()

    async def execute(self, command: Command) -> CommandResult:
        ctx, codec = self._ctx, self._codec
        if ctx is None or codec is None or ctx.mqtt is None:
            return CommandResult("failed", "the definitions adapter is not running")
        try:
            topic, payload, qos, retain = codec.encode(command)
        except CodecError as err:
            return CommandResult("rejected", str(err))
        ctx.mqtt.publish(topic, payload, qos=qos, retain=retain)
        return CommandResult("sent", f"published to {topic}")

    # -- the hot path: called on the event loop for every message on a subscribed topic

    def _callback_for(self, topic_filter: str) -> Callable[[str, bytes, bool], None]:
        def on_message(topic: str, payload: bytes, retain: bool) -> None:
            self._on_message(topic, payload, retain, topic_filter)

        return on_message

    def _on_message(self, topic: str, payload: bytes, retain: bool, via: str | None = None) -> None:
        ctx, codec = self._ctx, self._codec
        if ctx is None or codec is None:
            return
        try:
            self._apply(codec.decode(topic, payload, via))
        except Exception as err:
            # The codec reports what it understands as bad input itself; this is a bug of ours, and one
            # message must never take the MQTT session's dispatch down with it.
            ctx.log.exception("definitions: failed on %s", topic)
            ctx.report_bad_input(f"definitions: could not handle {topic!r}: {err!r}")

    def _apply(self, decoded: Decoded) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        apply_decoded(ctx, decoded)
        if decoded.natives_changed and self._codec is not None:
            ctx.storage.set(STORAGE_KEY, self._codec.remembered())

    # For tests and tools: what the adapter currently knows.
    @property
    def codec(self) -> DefinitionCodec | None:
        return self._codec

    def __repr__(self) -> str:
        names = ",".join(sorted(self._codec.definitions)) if self._codec else "-"
        return f"<DefinitionsAdapter definitions={names} running={bool(self._unsubscribes)}>"
