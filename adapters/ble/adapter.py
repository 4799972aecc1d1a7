"""The local BLE adapter: a bleak scanner on one Bluetooth adapter, the decoders, devices and presence.

``start`` checks that the radio is there (a first scanner start); if BlueZ, the system bus or the
adapter is missing it raises :class:`AdapterNotReadyError` with the reason, so the supervisor retries
with its jittered back-off (1 s doubling to 5 min: one warning line every few minutes on a machine
without Bluetooth, which is why ``enabled`` can default to true; ``enabled = false`` silences it).

Once running, a watchdog task (on the gateway clock) restarts the scanner with its own back-off when
the D-Bus connection to BlueZ is lost or no advertisement arrived for ``stall_restart_s`` (scanners that
stall silently are a known field problem), without touching devices or presence state.

Advertisements arrive in bleak's detection callback on the event loop; decoding is pure and quick, so
nothing here blocks. :meth:`BleAdapter.feed` takes an advertisement from elsewhere (``hearth replay``).
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid as uuid_module
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapters.ble.decoders import Advertisement, KeyRing, advertisement_from_capture, normalize_mac
from adapters.ble.devices import BleDevices
from adapters.ble.presence import PresenceTracker, Tag
from adapters.ble.shared import SharedBle, shared_for
from gateway.sdk import AdapterContext, AdapterNotReadyError, Command, CommandResult, HearthError

__all__ = ["BleAdapter", "BleConfig", "TagConfig"]

LOCAL_RECEIVER = "local"
# How long a first scanner start may take before we call the radio "not ready" (BlueZ answers in
# milliseconds; a hung bus must not hold the supervisor).
SCANNER_START_TIMEOUT_S = 15.0


def _check_key(value: str) -> str:
    text = value.strip().lower()
    if len(text) not in (24, 32) or any(c not in "0123456789abcdef" for c in text):
        raise ValueError("a bind key is 32 hex digits (16 bytes), or 24 (12 bytes) for a MiBeacon v2/v3 device")
    return text


class TagConfig(BaseModel):
    """A presence tag: a MAC, or an iBeacon (``uuid``, optionally ``major``/``minor``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    mac: str | None = None
    uuid: str | None = None
    major: int | None = Field(default=None, ge=0, le=65535)
    minor: int | None = Field(default=None, ge=0, le=65535)

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None) -> str | None:
        return None if value is None else normalize_mac(value)

    @field_validator("uuid")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        return None if value is None else str(uuid_module.UUID(value))

    @model_validator(mode="after")
    def _one_identity(self) -> TagConfig:
        if (self.mac is None) == (self.uuid is None):
            raise ValueError("a tag needs either mac or uuid (iBeacon), not both")
        if self.mac is not None and (self.major is not None or self.minor is not None):
            raise ValueError("major/minor belong to an iBeacon tag (uuid)")
        return self

    def tag(self) -> Tag:
        if self.mac is not None:
            return Tag(self.name, mac=self.mac)
        assert self.uuid is not None
        return Tag(self.name, ibeacon=(self.uuid, self.major, self.minor))


class BleConfig(BaseModel):
    """``[adapters.ble]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: false: no local radio; decode what is fed (replay) and track tags heard by BLE-to-MQTT gateways.
    scanner: bool = True
    #: The BlueZ adapter (``hciconfig``/``bluetoothctl list``).
    adapter: str = Field(default="hci0", pattern=r"^hci[0-9]+$")
    #: "passive" needs BlueZ's advertisement monitor API (bluetoothd -E, BlueZ >= 5.56) and only sees
    #: BTHome, MiBeacon and iBeacon frames; "active" works everywhere.
    scanning_mode: Literal["active", "passive"] = "active"
    #: The area the local receiver is in (for presence).
    area: str | None = None
    #: Bind keys by MAC, 32 hex digits: encrypted BTHome and MiBeacon v4/v5; 24 hex digits: MiBeacon v2/v3.
    keys: dict[str, str] = Field(default_factory=dict)
    tags: list[TagConfig] = Field(default_factory=list)
    #: A tag unseen this long is away.
    away_after_s: float = Field(default=300.0, gt=0)
    #: A tag changes area when another receiver hears it this much stronger (smoothed).
    hysteresis_db: float = Field(default=6.0, ge=0)
    #: No advertisement at all for this long means the scanner stalled: restart it.
    stall_restart_s: float = Field(default=300.0, gt=0)
    #: A sensor unheard this long is offline (trigger-based BTHome devices: a day).
    expected_interval_s: float = Field(default=600.0, gt=0)
    #: Per-device override of expected_interval_s, by MAC.
    device_intervals: dict[str, float] = Field(default_factory=dict)
    #: Back-off between scanner restarts, doubling from min to max (jittered).
    restart_backoff_min_s: float = Field(default=2.0, gt=0)
    restart_backoff_max_s: float = Field(default=300.0, gt=0)

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: dict[str, str]) -> dict[str, str]:
        return {normalize_mac(mac): _check_key(key) for mac, key in value.items()}

    @field_validator("device_intervals")
    @classmethod
    def _intervals(cls, value: dict[str, float]) -> dict[str, float]:
        for seconds in value.values():
            if seconds <= 0:
                raise ValueError("intervals must be positive seconds")
        return {normalize_mac(mac): float(s) for mac, s in value.items()}


def passive_patterns() -> list[Any]:
    """BlueZ advertisement-monitor patterns for passive scanning: BTHome, MiBeacon, iBeacon."""
    from bleak.assigned_numbers import AdvertisementDataType
    from bleak.backends.bluezdbus.advertisement_monitor import OrPattern

    return [
        OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\xd2\xfc"),
        OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, b"\x95\xfe"),
        OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\x4c\x00\x02\x15"),
    ]


class BleAdapter:
    """BLE sensors (``ble:<mac>``) and presence tags from the local Bluetooth radio."""

    needs_mqtt: ClassVar[bool] = False
    config_model: ClassVar[type[BaseModel]] = BleConfig
    #: ``hearth replay`` hands this adapter the capture's ``ble`` lines (CaptureReplayer).
    capture_source: ClassVar[str] = "ble"

    def __init__(self) -> None:
        self._ctx: AdapterContext | None = None
        self._config: BleConfig | None = None
        self._shared: SharedBle | None = None
        self._devices: BleDevices | None = None
        self._presence: PresenceTracker | None = None
        self._presence_timer: Any = None
        self._unlisten: Any = None
        self._scanner: Any = None
        self._last_advert: float = 0.0
        self.scanner_restarts = 0
        self.scanner_state: Literal["off", "running", "restarting"] = "off"

    async def __aenter__(self) -> BleAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, ctx: AdapterContext) -> None:
        try:
            config = BleConfig.model_validate(ctx.config or {})
        except ValidationError as err:
            raise HearthError(f"[adapters.{ctx.name}]: {err}") from err
        self._ctx, self._config = ctx, config
        shared = self._shared = shared_for(ctx.clock)
        shared.keys.update(KeyRing(config.keys))
        devices = self._devices = BleDevices(ctx, shared, expected_interval_s=config.expected_interval_s,
                                             device_intervals=config.device_intervals)
        presence = self._presence = PresenceTracker([t.tag() for t in config.tags], away_after_s=config.away_after_s,
                                                    hysteresis_db=config.hysteresis_db)
        for info in presence.device_infos():
            devices.ensure_device(info)
            ctx.set_available(info.id, True)
        devices.start()
        self._unlisten = shared.listen(self._on_sighting)
        self._schedule_presence()
        if not config.scanner:
            ctx.log.info("ble: no local scanner (scanner = false); %d tags", len(presence.tags))
            return
        if _is_simulated(ctx.clock):
            # Replay (or a test) runs on a simulated clock: a real radio's advertisements would be stamped
            # with made-up times and mixed into a recorded day. Only fed advertisements count there.
            ctx.log.info("ble: simulated clock (replay): no local scanner, advertisements come from feed()")
            return
        try:
            await self._start_scanner()
        except Exception as err:
            await self.stop()
            raise AdapterNotReadyError(
                f"Bluetooth adapter {config.adapter} not usable ({_describe(err)}); set [adapters.{ctx.name}] "
                "enabled = false, or scanner = false, on a machine without Bluetooth") from err
        ctx.create_task(self._watch_scanner(), "scanner-watchdog")
        ctx.log.info("ble: scanning on %s (%s), %d bind keys, %d tags", config.adapter, config.scanning_mode,
                     len(config.keys), len(presence.tags))

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        if self._presence_timer is not None:
            self._presence_timer.cancel()
            self._presence_timer = None
        if self._devices is not None:
            self._devices.stop()
        await self._stop_scanner()
        self.scanner_state = "off"

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("rejected", "BLE sensors and tags take no commands")

    # ------------------------------------------------------------------ advertisements

    def feed(self, adv: Advertisement) -> None:
        """Take one advertisement as if the local radio heard it (``hearth replay``). Sync, never raises."""
        self._handle(adv)

    def replay_capture_line(self, line: Mapping[str, Any], t: float) -> None:
        """A capture's ``ble`` line, as if the local radio heard it (CaptureReplayer). ValueError for a line that
        is not an advertisement; what the advertisement itself holds wrong is reported like a live one."""
        self.feed(advertisement_from_capture(line, t))

    def _handle(self, adv: Advertisement) -> None:
        ctx, devices, config = self._ctx, self._devices, self._config
        if ctx is None or devices is None or config is None:
            return
        devices.handle(adv, LOCAL_RECEIVER)
        self._on_sighting(adv, LOCAL_RECEIVER, config.area)

    def _on_sighting(self, adv: Advertisement, receiver: str, area: str | None) -> None:
        """Any receiver's advertisement, for the presence tags (a gateway's arrive through SharedBle)."""
        ctx, presence, devices = self._ctx, self._presence, self._devices
        if ctx is None or presence is None or devices is None:
            return
        try:
            tag = presence.match(adv.address, adv.manufacturer_data)
            if tag is None:
                return
            updates = presence.observe(tag, receiver, area, adv.rssi, adv.t)
            if updates:
                ctx.push(updates)
            self._schedule_presence()
        except Exception as err:
            ctx.log.exception("ble: presence failed for %s", adv.address)
            ctx.report_bad_input(f"ble: presence failed for {adv.address}: {err!r}")

    def _schedule_presence(self) -> None:
        ctx, presence = self._ctx, self._presence
        if ctx is None or presence is None:
            return
        if self._presence_timer is not None:
            self._presence_timer.cancel()
            self._presence_timer = None
        due = presence.next_expiry()
        if due is not None:
            self._presence_timer = ctx.clock.call_later(due - ctx.clock.time(), self._expire_presence)

    def _expire_presence(self) -> None:
        ctx, presence = self._ctx, self._presence
        self._presence_timer = None
        if ctx is None or presence is None:
            return
        updates = presence.expire(ctx.clock.time())
        if updates:
            ctx.push(updates)
        self._schedule_presence()

    def _on_detection(self, device: Any, data: Any) -> None:
        """bleak's detection callback (on the event loop)."""
        ctx = self._ctx
        if ctx is None:
            return
        self._last_advert = ctx.clock.monotonic()
        try:
            adv = Advertisement.create(device.address, data.rssi, data.local_name, data.service_data,
                                       data.manufacturer_data, ctx.clock.time())
        except (ValueError, TypeError) as err:
            ctx.report_bad_input(f"ble: unusable advertisement from {getattr(device, 'address', '?')}: {err}")
            return
        self._handle(adv)

    # ------------------------------------------------------------------ the scanner

    async def _start_scanner(self) -> None:
        config, ctx = self._config, self._ctx
        assert config is not None and ctx is not None
        from bleak import BleakScanner  # lazy: `import adapters.ble` stays light

        bluez: dict[str, Any] = {"adapter": config.adapter}
        if config.scanning_mode == "passive":
            bluez["or_patterns"] = passive_patterns()
        scanner = BleakScanner(detection_callback=self._on_detection, scanning_mode=config.scanning_mode,
                               bluez=bluez)  # type: ignore[arg-type]
        await asyncio.wait_for(scanner.start(), SCANNER_START_TIMEOUT_S)
        self._scanner = scanner
        self._last_advert = ctx.clock.monotonic()
        self.scanner_state = "running"

    async def _stop_scanner(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is None:
            return
        try:
            await asyncio.wait_for(scanner.stop(), 5.0)
        except Exception as err:  # the bus may already be gone: nothing left to stop
            if self._ctx is not None:
                self._ctx.log.debug("ble: scanner stop: %s", _describe(err))

    def _scanner_problem(self) -> str | None:
        ctx, config = self._ctx, self._config
        assert ctx is not None and config is not None
        if not _bluez_bus_connected():
            return "lost the D-Bus connection to BlueZ"
        silent = ctx.clock.monotonic() - self._last_advert
        if silent > config.stall_restart_s:
            return f"no advertisement for {silent:.0f} s"
        return None

    async def _watch_scanner(self) -> None:
        ctx, config = self._ctx, self._config
        assert ctx is not None and config is not None
        # Check often enough to notice a lost bus within seconds, and a stall within 25 % of its limit.
        check_every_s = max(0.2, min(5.0, config.stall_restart_s / 4))
        rng = random.Random()
        while True:
            await ctx.clock.sleep(check_every_s)
            problem = self._scanner_problem()
            if problem is None:
                continue
            ctx.log.warning("ble: %s; restarting the scanner on %s", problem, config.adapter)
            self.scanner_state = "restarting"
            await self._stop_scanner()
            backoff = config.restart_backoff_min_s
            attempt = 0
            while True:
                attempt += 1
                try:
                    await self._start_scanner()
                except Exception as err:
                    delay = backoff * (0.5 + rng.random() / 2)  # jitter: receivers do not retry in step
                    log = ctx.log.warning if attempt == 1 else ctx.log.debug
                    log("ble: scanner restart failed (%s); retrying in %.1f s", _describe(err), delay)
                    await ctx.clock.sleep(delay)
                    backoff = min(backoff * 2, config.restart_backoff_max_s)
                    continue
                self.scanner_restarts += 1
                ctx.log.info("ble: scanner running again on %s (after %d attempts)", config.adapter, attempt)
                break

    def stats(self) -> dict[str, Any]:
        """The scanner's state and what was not applied, by reason, with how many devices: the supervisor's
        optional adapter hook (shown in /healthz, which needs no token: no addresses of the neighbours' sensors
        there; ``dropped.by_reason`` is exported by /metrics as hearth_adapter_dropped_total)."""
        return {"scanner": self.scanner_state, "scanner_restarts": self.scanner_restarts,
                "dropped": _counts(self.drops())}

    def drops(self) -> dict[str, Any]:
        """What was not applied, by reason and by device (``{"by_reason": …, "by_device": {id: {reason: n}}}``)."""
        devices = self._devices
        return devices.drop_stats() if devices is not None else {"by_reason": {}, "by_device": {}}

    # For tests and tools
    @property
    def devices(self) -> BleDevices | None:
        return self._devices

    @property
    def presence(self) -> PresenceTracker | None:
        return self._presence


def _is_simulated(clock: Any) -> bool:
    """The gateway's SimulatedClock moves only when told (``advance_to``); the system clock has no such thing."""
    return callable(getattr(clock, "advance_to", None))


def _describe(err: BaseException) -> str:
    text = str(err) or type(err).__name__
    return text if len(text) < 300 else text[:300] + "…"


def _bluez_bus_connected() -> bool:
    """Whether bleak's BlueZ manager of this loop still has its D-Bus connection.

    bleak notices a lost bus (it resets its state) but its scanner API does not say so, so this looks at
    the manager; if bleak's internals change, it answers True and the stall check still recovers.
    """
    if sys.platform != "linux":
        return True
    try:
        from bleak.backends.bluezdbus import manager as bluez_manager

        instance = getattr(bluez_manager, "_global_instances", {}).get(asyncio.get_running_loop())
        bus = getattr(instance, "_bus", None)
        return bus is None or bool(getattr(bus, "connected", True))
    except Exception:
        return True


def _counts(drops: dict[str, Any]) -> dict[str, Any]:
    """Drops by reason and the number of devices they came from (no addresses)."""
    return {"by_reason": drops["by_reason"], "devices": len(drops["by_device"])}
