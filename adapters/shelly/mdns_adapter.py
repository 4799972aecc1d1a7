"""The mDNS adapter: lists the Wi-Fi devices that announce themselves, and runs the Shelly Gen2+ ones over HTTP.

* Discovery: browses the service types of :data:`adapters.shelly.discovery.BROWSED_TYPES` through the gateway's
  one shared mDNS service (``ctx.mdns``) and keeps :class:`~adapters.shelly.discovery.DiscoveryRegistry`, shown by
  ``GET /api/discovered``: what was seen, who can take it, "supported" or "seen only".
* Shelly Gen2+: every discovered one (and every ``shelly_hosts`` entry) gets a
  :class:`~adapters.shelly.http.ShellyHttpDevice`: the device ``shelly:<id>``, live over its WebSocket, polled
  when that fails, commands over ``POST /rpc``. A new address (DHCP) moves the connection, the device stays the
  same; a service that goes away makes the device unavailable, never deletes it.

What the gateway injects, and what happens without it:

* ``ctx.mdns`` (the shared :class:`gateway.mdns.MdnsService`, or a replay's recorded one): browsed. ``None`` or
  absent: no discovery, unless ``own_zeroconf = true`` makes the adapter open a private one on ``interfaces``
  (off by default, so that nothing multicasts unless the gateway's ``[mdns]`` says so).
* ``ctx.http`` (the shared ``aiohttp.ClientSession``): used for every device. Absent: the adapter opens one of
  its own. ``None``: no HTTP at all (replay). A recorded mDNS (``live = False``) never causes a connection either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from adapters.shelly.hosts import POLL_INTERVAL_S, REQUEST_TIMEOUT_S, parse_host
from gateway.sdk import AdapterContext, Command, CommandResult, HearthError, LogLimiter

if TYPE_CHECKING:
    import aiohttp

    from adapters.shelly.codec import Decoded
    from adapters.shelly.discovery import DiscoveryRegistry, ServiceRecord
    from adapters.shelly.http import ShellyHttpDevice

__all__ = ["MdnsAdapter", "MdnsAdapterConfig"]

SRC_STORAGE_KEY = "src"
_MISSING: Any = object()


def _shelly_key(device_id: str) -> str:
    key = device_id.strip().lower()
    return key[len("shelly:"):] if key.startswith("shelly:") else key


class MdnsAdapterConfig(BaseModel):
    """``[adapters.mdns]`` in config.toml."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    #: Shellys reached by address, with or without mDNS: ``["192.168.1.20", "192.168.1.21:8080"]``.
    shelly_hosts: list[str] = Field(default_factory=list)
    #: Device id (``shellyplus1pm-441793d69718``) -> password, for devices with authentication on.
    shelly_passwords: dict[str, SecretStr] = Field(default_factory=dict)
    #: Connect to the Shellys discovered over mDNS (off: only list them).
    connect_discovered: bool = True
    #: How often a Shelly without a working WebSocket is polled.
    poll_interval_s: float = Field(POLL_INTERVAL_S, ge=0.1, le=3600)
    request_timeout_s: float = Field(REQUEST_TIMEOUT_S, gt=0, le=120)
    #: Our JSON-RPC source name (the ``dst`` of notifications). Default ``hearth-<random>``, kept in storage.
    src: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    #: Without the gateway's shared mDNS service, open a private one (tests, a host without ``[mdns]``).
    own_zeroconf: bool = False
    #: Interfaces of that private one only (the shared one follows ``[mdns] interfaces``).
    interfaces: Literal["all"] | list[str] = "all"

    @field_validator("shelly_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            parse_host(host)
        return value

    @field_validator("shelly_passwords")
    @classmethod
    def _passwords(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        out: dict[str, SecretStr] = {}
        for key, password in value.items():
            if not key.strip():
                raise ValueError("a device id must not be empty")
            out[_shelly_key(key)] = password
        return out


class MdnsAdapter:
    """Discovered Wi-Fi devices, and Shelly Gen2+ devices over HTTP RPC, as ``shelly:<device id>``."""

    needs_mqtt: ClassVar[bool] = False
    config_model: ClassVar[type[BaseModel]] = MdnsAdapterConfig

    def __init__(self) -> None:
        self._registry: DiscoveryRegistry | None = None
        self._ctx: AdapterContext | None = None
        self._config = MdnsAdapterConfig()
        self._session: aiohttp.ClientSession | None = None
        self._own_session: aiohttp.ClientSession | None = None
        self._mdns: Any = None
        self._own_mdns: Any = None
        self._live = True
        # One line per new name, at most 20 a minute: a neighbour can announce thousands.
        self._discovered_lines: LogLimiter | None = None
        self._unsubscribe: Any = None
        self._src = ""
        self._devices: list[ShellyHttpDevice] = []
        self._configured: set[int] = set()  # id() of the devices from shelly_hosts
        self._by_device: dict[str, ShellyHttpDevice] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}

    async def __aenter__(self) -> MdnsAdapter:
        return self

    @property
    def registry(self) -> DiscoveryRegistry:
        if self._registry is None:
            # Imported with the first service seen, not at start: without mDNS (the default with [mdns] off)
            # the registry and the Shelly codec it uses are never loaded (bench/memory.py).
            from adapters.shelly.discovery import DiscoveryRegistry

            self._registry = DiscoveryRegistry()
        return self._registry

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- lifecycle

    async def start(self, ctx: AdapterContext) -> None:
        self._discovered_lines = LogLimiter(ctx.log, burst=20, window_s=60.0, monotonic=ctx.clock.monotonic)
        try:
            config = MdnsAdapterConfig.model_validate(ctx.config or {})
        except ValidationError as err:
            raise HearthError(f"[adapters.{ctx.name}]: {err}") from err
        self._ctx, self._config = ctx, config
        src = config.src or ctx.storage.get(SRC_STORAGE_KEY)
        if not isinstance(src, str) or not src:
            # Random, so two gateways never read each other's notifications; stored, so stable.
            src = f"hearth-{secrets.token_hex(3)}"
            ctx.storage.set(SRC_STORAGE_KEY, src)
        self._src = src

        try:
            await self._open(ctx, config)
        except BaseException:
            await self.stop()  # nothing half-open is left behind (a session, a zeroconf)
            raise

    async def _open(self, ctx: AdapterContext, config: MdnsAdapterConfig) -> None:
        http = getattr(ctx, "http", _MISSING)
        if http is _MISSING:
            import aiohttp  # here, not at import: a replay, which has no HTTP, never loads it

            self._own_session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=config.request_timeout_s))
            self._session = self._own_session
        else:
            self._session = http

        mdns = getattr(ctx, "mdns", None)
        if mdns is None and config.own_zeroconf:
            from gateway.sdk import MdnsService
            self._own_mdns = MdnsService(config.interfaces)
            await self._own_mdns.__aenter__()
            mdns = self._own_mdns
        self._mdns = mdns
        self._live = bool(getattr(mdns, "live", True)) if mdns is not None else True

        for host_text in config.shelly_hosts:
            host, port = parse_host(host_text)
            device = self._new_device(host, port, None)
            if device is not None:
                self._configured.add(id(device))
        browsing = "no mDNS service (discovery off)"
        if mdns is not None:
            from adapters.shelly.discovery import BROWSED_TYPES  # only with mDNS, see registry

            self._unsubscribe = mdns.browse(BROWSED_TYPES, self._on_service)
            browsing = "browsing " + ", ".join(BROWSED_TYPES)
        ctx.log.info("mdns: %s; %d Shelly host(s) configured", browsing, len(config.shelly_hosts))

    async def stop(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._devices.clear()
        self._by_device.clear()
        self._configured.clear()
        own_mdns, self._own_mdns = self._own_mdns, None
        if own_mdns is not None:
            await own_mdns.__aexit__(None, None, None)
        session, self._own_session = self._own_session, None
        self._session = None
        if session is not None:
            await session.close()

    # -- what the API shows

    def discovered(self) -> list[dict[str, Any]]:
        """``GET /api/discovered``: every device seen over mDNS, with the state of its connection if any."""
        if self._registry is None:
            return []  # nothing seen yet
        out = self._registry.as_list()
        for item in out:
            device = self._by_device.get(item["device_id"]) if item["device_id"] else None
            if device is not None:
                item["connection"] = {"mode": device.mode, "address": device.address, "error": device.last_error}
        return out

    @property
    def devices(self) -> list[ShellyHttpDevice]:
        return list(self._devices)

    # -- discovery (called on the event loop by the mDNS service; never raises)

    def _on_service(self, change: str, record: ServiceRecord) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        try:
            self._handle_service(ctx, change, record)
        except Exception as err:
            ctx.log.exception("mdns: failed on %s %s", change, record.full_name)
            ctx.report_bad_input(f"mdns: could not handle {record.full_name!r:.120}: {err!r:.200}")

    def _handle_service(self, ctx: AdapterContext, change: str, record: ServiceRecord) -> None:
        now = ctx.clock.time()
        if change == "removed":
            entry = self.registry.remove(record.type, record.instance, now)
            if entry is None or entry.available or not entry.device_id:
                return
            ctx.log.info("mdns: %s is gone", entry.key)
            device = self._by_device.get(entry.device_id)
            if device is not None and id(device) not in self._configured:
                self._stop_device(device)
            ctx.set_available(entry.device_id, False)
            return
        observation = self.registry.observe(record, now)
        if observation is None:
            return
        for problem in observation.problems:
            ctx.report_bad_input(f"mdns {record.full_name!r:.120}: {problem}")
        entry = observation.entry
        if observation.new and self._discovered_lines is not None:
            self._discovered_lines.log(logging.INFO, "mdns: discovered %s (%s, %s)", entry.key, entry.support,
                                       record.type)
        if entry.adapter != "mdns" or not entry.device_id or not self._config.connect_discovered:
            return
        hosts = _rank_addresses(entry.addresses)
        if not hosts or entry.port is None:
            return
        device = self._by_device.get(entry.device_id)
        if device is None:
            device = self._new_device(hosts[0], entry.port, entry.device_id)
            if device is not None:
                device.move_to(hosts[0], entry.port, hosts[1:])
        elif id(device) in self._configured:
            return  # its address comes from the config
        elif device.move_to(hosts[0], entry.port, hosts[1:]) or id(device) not in self._tasks:
            self._restart(device)

    # -- Shelly connections

    def _new_device(self, host: str, port: int, device_id: str | None) -> ShellyHttpDevice | None:
        ctx = self._ctx
        if ctx is None or self._session is None or not self._live:
            return None  # no HTTP (replay) or records of a capture: list, do not dial
        # Imported with the first Shelly to talk to (a configured host, or one discovered): a house without
        # Shellys on HTTP never loads the transport, its digest auth and the Shelly codec (bench/memory.py).
        from adapters.shelly.http import ShellyHttpDevice

        device = ShellyHttpDevice(
            self._session, host, port, src=self._src, clock=ctx.clock,
            # The closure reads `device` when called, after it is bound below.
            on_decoded=lambda decoded: self._apply(device, decoded),
            on_available=self._on_available, password_for=self._password_for, log=ctx.log,
            shelly_id=_shelly_key(device_id) if device_id else None,
            poll_interval_s=self._config.poll_interval_s, request_timeout_s=self._config.request_timeout_s,
        )
        self._devices.append(device)
        if device.device_id is not None:
            self._by_device[device.device_id] = device
        self._restart(device)
        return device

    def _restart(self, device: ShellyHttpDevice) -> None:
        ctx = self._ctx
        assert ctx is not None
        old = self._tasks.pop(id(device), None)
        if old is not None:
            old.cancel()
        task = ctx.create_task(device.run(), name=f"shelly:{device.device_id or device.address}")
        self._tasks[id(device)] = task

    def _stop_device(self, device: ShellyHttpDevice) -> None:
        task = self._tasks.pop(id(device), None)
        if task is not None:
            task.cancel()
        device.mode = "offline"

    def _password_for(self, shelly_id: str) -> str | None:
        secret = self._config.shelly_passwords.get(_shelly_key(shelly_id))
        return secret.get_secret_value() if secret is not None else None

    def _on_available(self, device_id: str, available: bool) -> None:
        if self._ctx is not None:
            self._ctx.set_available(device_id, available)

    def _apply(self, device: ShellyHttpDevice, decoded: Decoded) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        for info in decoded.upserts:
            owner = self._by_device.get(info.id)
            if owner is not None and owner is not device:
                if id(owner) in self._configured and id(device) not in self._configured:
                    self._stop_device(device)  # discovered twice: the configured connection stays
                    return
                self._stop_device(owner)
            self._by_device[info.id] = device
            ctx.upsert_device(info)
        if decoded.updates:
            ctx.push(decoded.updates)
        for event in decoded.events:
            ctx.push_event(event)
        for device_id, available in decoded.availability:
            ctx.set_available(device_id, available)
        for problem in decoded.problems:
            ctx.report_bad_input(problem)

    # -- commands

    async def execute(self, command: Command) -> CommandResult:
        device = self._by_device.get(command.device_id)
        if device is None or id(device) not in self._tasks:
            return CommandResult("unavailable", f"{command.device_id} is not connected over HTTP")
        return await device.execute(command)

    def __repr__(self) -> str:
        discovered = len(self._registry.entries) if self._registry is not None else 0
        return f"<MdnsAdapter discovered={discovered} shellys={len(self._devices)}>"


def _rank_addresses(addresses: tuple[str, ...]) -> list[str]:
    """The addresses to dial, best first: as announced (the newest lease first, as zeroconf lists them), IPv4
    before IPv6 (a Shelly's web server always listens on IPv4), link-local last; junk left out."""
    def rank(text: str) -> tuple[int, int]:
        ip = ipaddress.ip_address(text.split("%")[0])
        return (0 if ip.version == 4 else 1, 1 if ip.is_link_local else 0)

    usable: list[str] = []
    for address in addresses:
        try:
            rank(address)
        except ValueError:
            continue
        usable.append(address)
    return sorted(usable, key=rank)
