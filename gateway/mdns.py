"""The gateway's one mDNS/DNS-SD responder and browser (``[mdns]`` in config.toml).

:class:`MdnsService` owns the single :class:`zeroconf.asyncio.AsyncZeroconf` of the process. The core opens
it once and hands it to adapters (their context's ``mdns``); adapters browse through :meth:`MdnsService.browse`
and get plain :class:`ServiceRecord` values back, never zeroconf objects, so that ``hearth replay`` can feed
them the ``mdns`` lines of a capture instead (:class:`RecordedMdns`, DESIGN.md contract 4).
:class:`GatewayAnnouncement` registers the gateway itself (``_hearth._tcp`` and ``_http._tcp``).

zeroconf is imported only when the service starts: ``import gateway.mdns`` stays light (STYLE 10).
Production listens on every interface; tests run inside a private network namespace with
``interfaces=["127.0.0.1"]`` (DESIGN.md "Testing and safety").
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from gateway.errors import HearthError
from gateway.logsafe import LogLimiter

if TYPE_CHECKING:
    from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

__all__ = [
    "GATEWAY_SERVICE_TYPE",
    "HTTP_SERVICE_TYPE",
    "GatewayAnnouncement",
    "MdnsError",
    "MdnsSection",
    "MdnsService",
    "RecordedMdns",
    "ServiceCallback",
    "ServiceChange",
    "ServiceRecord",
    "normalize_service_type",
    "service_record_from_capture",
]

log = logging.getLogger("hearth.mdns")

GATEWAY_SERVICE_TYPE = "_hearth._tcp.local."
HTTP_SERVICE_TYPE = "_http._tcp.local."
# A resolve is a few multicast round trips on a LAN (tens of ms); 3 s covers a Wi-Fi device that is
# slow to answer. Past it the service is resolved again on its next update.
RESOLVE_TIMEOUT_MS = 3000
# Bounds on what a record may carry into the gateway (a hostile responder can send anything).
MAX_ADDRESSES = 16
MAX_TXT_KEYS = 64
MAX_TXT_VALUE_BYTES = 255  # one DNS TXT string is at most 255 bytes (RFC 6763 6.1)

ServiceChange = Literal["added", "updated", "removed"]
#: (change, record). Called on the event loop; must not block. ``removed`` records carry no addresses.
ServiceCallback = Callable[[ServiceChange, "ServiceRecord"], None]
Unsubscribe = Callable[[], None]
TxtValue = str | bytes | None


class MdnsError(HearthError):
    """The mDNS service cannot start (an unknown interface, no socket)."""


class MdnsSection(BaseModel):
    """``[mdns]`` in config.toml: the gateway's one mDNS responder/browser."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Off: no multicast at all (no discovery of Wi-Fi devices, no announcement of the gateway).
    enabled: bool = True
    #: ``"all"`` (every interface, the default), or interface names / IPv4 addresses: ``["eth0"]``.
    interfaces: Literal["all"] | list[str] = "all"
    #: Announce the gateway's API as ``_hearth._tcp`` and ``_http._tcp`` so apps find it.
    announce: bool = True

    @field_validator("interfaces")
    @classmethod
    def _interfaces(cls, value: Literal["all"] | list[str]) -> Literal["all"] | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError('give at least one interface, or "all"')
            for item in value:
                if not item.strip():
                    raise ValueError("an interface name must not be empty")
        return value


def normalize_service_type(service_type: str) -> str:
    """``_shelly._tcp`` / ``_shelly._tcp.local`` / ``_shelly._tcp.local.`` -> ``_shelly._tcp.local.``"""
    text = service_type.strip().lower().rstrip(".")
    if not text.endswith(".local"):
        text += ".local"
    return text + "."


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    """One resolved DNS-SD service instance, as plain data.

    ``instance`` is the instance label (``shellyplus1pm-441793d69718``), not the full name; ``properties`` is
    the TXT record as received (keys and values may be bytes, values ``None`` for a boolean attribute).
    """

    #: The service type, fully qualified: ``_shelly._tcp.local.``.
    type: str
    #: The instance label: ``shellyplus1pm-441793d69718``.
    instance: str
    #: The instance's addresses as text, as resolved; empty when not resolved or when the instance went away.
    addresses: tuple[str, ...] = ()
    #: The SRV record's port, or None when not resolved.
    port: int | None = None
    #: The TXT record as received (keys and values may be bytes; ``None`` for a boolean attribute).
    properties: Mapping[str | bytes, TxtValue] = field(default_factory=dict)
    #: The SRV record's host name (``shellyplus1pm-441793d69718.local.``), or None.
    server: str | None = None

    @property
    def full_name(self) -> str:
        """``<instance>.<type>``, the DNS-SD name of the instance."""
        return f"{self.instance}.{self.type}"


def _instance_of(name: str, service_type: str) -> str:
    suffix = "." + service_type
    if name.lower().endswith(suffix.lower()):
        return name[: -len(suffix)]
    return name.rstrip(".")


def service_record_from_capture(data: Mapping[str, Any]) -> ServiceRecord:
    """A capture line ``{"source": "mdns", "type", "name", "addresses", "port", "properties"}`` as a record.

    Raises ValueError naming the bad field. ``name`` may be the instance label or the full service name.
    """
    raw_type = data.get("type")
    if not isinstance(raw_type, str) or not raw_type.strip():
        raise ValueError("type: expected a service type such as \"_shelly._tcp.local.\"")
    service_type = normalize_service_type(raw_type)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name: expected the service instance name")
    addresses = data.get("addresses", [])
    if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
        raise ValueError("addresses: expected a list of IP address strings")
    for address in addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError as err:
            raise ValueError(f"addresses: {address!r} is not an IP address") from err
    port = data.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
        raise ValueError("port: expected a number 0..65535")
    properties = data.get("properties", {})
    if properties is None:
        properties = {}
    if not isinstance(properties, dict):
        raise ValueError("properties: expected an object of TXT keys and values")
    txt: dict[str | bytes, TxtValue] = {}
    for key, value in properties.items():
        if value is None or isinstance(value, str):
            txt[key] = value
        elif isinstance(value, (bool, int, float)):
            # JSON numbers in a hand-written capture: TXT values are strings on the wire.
            txt[key] = str(value).lower() if isinstance(value, bool) else str(value)
        else:
            raise ValueError(f"properties.{key}: expected a string, number or null")
    server = data.get("server")
    return ServiceRecord(
        type=service_type,
        instance=_instance_of(name.strip(), service_type),
        addresses=tuple(addresses[:MAX_ADDRESSES]),
        port=port,
        properties=txt,
        server=server if isinstance(server, str) else None,
    )


def _resolve_interfaces(interfaces: Literal["all"] | list[str]) -> Any:
    """zeroconf's ``interfaces`` argument: ``InterfaceChoice.All`` or a list of IPv4 addresses."""
    from zeroconf import InterfaceChoice

    if interfaces == "all":
        return InterfaceChoice.All
    import ifaddr  # a zeroconf dependency

    adapters = ifaddr.get_adapters()
    found: list[str] = []
    for item in interfaces:
        name = item.strip()
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            found.append(name)
            continue
        ips = [
            ip.ip for adapter in adapters if name in (adapter.name, adapter.nice_name)
            for ip in adapter.ips if isinstance(ip.ip, str)
        ]
        if not ips:
            known = ", ".join(sorted({a.nice_name for a in adapters})) or "none"
            raise MdnsError(f"[mdns] interfaces: no interface {name!r} with an IPv4 address (have: {known})")
        found.extend(ips)
    return found


class _Browse:
    """One :meth:`MdnsService.browse` subscription: a zeroconf browser plus the resolves it started."""

    def __init__(self, service: MdnsService, types: list[str], callback: ServiceCallback) -> None:
        self._service = service
        self._callback = callback
        self._types = types
        self._browser: Any = None
        # Resolves started from the browser's (synchronous) callback: kept here so none is lost (STYLE 2).
        self._resolving: dict[str, asyncio.Task[None]] = {}
        # A neighbour announcing thousands of names that fail to resolve: a few lines a minute, counted.
        self._resolve_failures = LogLimiter(log, burst=10, window_s=60.0)
        self.closed = False

    def start(self) -> None:
        from zeroconf.asyncio import AsyncServiceBrowser

        self._browser = AsyncServiceBrowser(self._service.zeroconf.zeroconf, self._types,
                                            handlers=[self._on_state_change])

    def _on_state_change(self, zeroconf: Any, service_type: str, name: str, state_change: Any) -> None:
        from zeroconf import ServiceStateChange

        if self.closed:
            return
        service_type = normalize_service_type(service_type)
        pending = self._resolving.pop(name, None)
        if pending is not None:
            pending.cancel()
        if state_change is ServiceStateChange.Removed:
            self._deliver("removed", ServiceRecord(service_type, _instance_of(name, service_type)))
            return
        change: ServiceChange = "added" if state_change is ServiceStateChange.Added else "updated"
        task = asyncio.get_running_loop().create_task(self._resolve(service_type, name, change),
                                                      name=f"mdns:resolve:{name}")
        self._resolving[name] = task
        task.add_done_callback(lambda t, name=name: self._resolved(name, t))

    def _resolved(self, name: str, task: asyncio.Task[None]) -> None:
        if self._resolving.get(name) is task:
            del self._resolving[name]
        if not task.cancelled() and task.exception() is not None:
            self._resolve_failures.log(logging.WARNING, "mDNS: resolving %s failed: %r", name, task.exception())

    async def _resolve(self, service_type: str, name: str, change: ServiceChange) -> None:
        from zeroconf.asyncio import AsyncServiceInfo

        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(self._service.zeroconf.zeroconf, RESOLVE_TIMEOUT_MS):
            log.debug("mDNS: %s did not resolve within %d ms", name, RESOLVE_TIMEOUT_MS)
            return
        self._deliver(change, record_from_info(info))

    def _deliver(self, change: ServiceChange, record: ServiceRecord) -> None:
        try:
            self._callback(change, record)
        except Exception:
            # One consumer's bug must not stop the browser that every consumer shares.
            log.exception("mDNS: a browse callback failed on %s", record.full_name)

    async def close(self) -> None:
        self.closed = True
        for task in self._resolving.values():
            task.cancel()
        await asyncio.gather(*self._resolving.values(), return_exceptions=True)
        self._resolving.clear()
        if self._browser is not None:
            browser, self._browser = self._browser, None
            await browser.async_cancel()


def record_from_info(info: AsyncServiceInfo) -> ServiceRecord:
    """A resolved zeroconf ``ServiceInfo`` as a :class:`ServiceRecord` (bounded in size)."""
    service_type = normalize_service_type(info.type)
    properties: dict[str | bytes, TxtValue] = {}
    for key, value in list((info.properties or {}).items())[:MAX_TXT_KEYS]:
        properties[key] = value
    return ServiceRecord(
        type=service_type,
        instance=_instance_of(info.name, service_type),
        addresses=tuple(info.parsed_scoped_addresses()[:MAX_ADDRESSES]),
        port=info.port,
        properties=properties,
        server=info.server,
    )


class MdnsService:
    """The process's one zeroconf instance. ``async with MdnsService(interfaces) as mdns: ...``.

    ``zeroconf`` may be given (an AsyncZeroconf someone else owns and closes); otherwise one is made on
    ``interfaces`` when the context opens and closed when it exits.
    """

    #: Records come from the network (a replay's :class:`RecordedMdns` says False: do not dial them).
    live = True

    def __init__(self, interfaces: Literal["all"] | list[str] = "all", *,
                 zeroconf: AsyncZeroconf | None = None) -> None:
        self._interfaces = interfaces
        self._zeroconf = zeroconf
        self._owns_zeroconf = zeroconf is None
        self._browses: set[_Browse] = set()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def zeroconf(self) -> AsyncZeroconf:
        """The running AsyncZeroconf; MdnsError when the service is not running."""
        if self._zeroconf is None:
            raise MdnsError("the mDNS service is not running")
        return self._zeroconf

    @property
    def interfaces(self) -> Literal["all"] | list[str]:
        """Where it listens, as it was given: ``"all"``, or interface names and IPv4 addresses."""
        return self._interfaces

    @property
    def running(self) -> bool:
        """Whether it is open (between entering and leaving its ``async with``)."""
        return self._zeroconf is not None

    async def __aenter__(self) -> MdnsService:
        if self._zeroconf is None:
            from zeroconf.asyncio import AsyncZeroconf

            choice = _resolve_interfaces(self._interfaces)
            try:
                self._zeroconf = AsyncZeroconf(interfaces=choice)
            except OSError as err:
                raise MdnsError(f"cannot open the mDNS sockets: {err}") from err
            log.info("mDNS on %s", "all interfaces" if self._interfaces == "all" else ", ".join(self._interfaces))
        return self

    async def __aexit__(self, *exc: object) -> None:
        browses, self._browses = list(self._browses), set()
        for browse in browses:
            await browse.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._owns_zeroconf and self._zeroconf is not None:
            zc, self._zeroconf = self._zeroconf, None
            await zc.async_close()

    def browse(self, service_types: Iterable[str], callback: ServiceCallback) -> Unsubscribe:
        """Browse and resolve ``service_types``; ``callback(change, record)`` for each instance that comes,
        changes (TXT, address, port) or goes. Returns the unsubscribe handle."""
        types = sorted({normalize_service_type(t) for t in service_types})
        browse = _Browse(self, types, callback)
        browse.start()
        self._browses.add(browse)

        def unsubscribe() -> None:
            if browse in self._browses:
                self._browses.discard(browse)
                task = asyncio.get_running_loop().create_task(browse.close(), name="mdns:browse-close")
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

        return unsubscribe

    async def register(self, info: AsyncServiceInfo) -> None:
        """Announce a service (name conflicts are resolved by renaming, as RFC 6762 9 asks)."""
        await self.zeroconf.async_register_service(info, allow_name_change=True)

    async def unregister(self, info: AsyncServiceInfo) -> None:
        """Send the goodbye (TTL 0) for a service this process registered."""
        if self._zeroconf is not None:
            await self._zeroconf.async_unregister_service(info)


class RecordedMdns:
    """What ``hearth replay`` gives adapters instead of :class:`MdnsService`: the capture's ``mdns`` lines.

    ``live`` is False, so adapters list what they see but do not connect to it (replay has no network).
    """

    live = False

    def __init__(self) -> None:
        self._subscriptions: list[tuple[frozenset[str], ServiceCallback]] = []

    def browse(self, service_types: Iterable[str], callback: ServiceCallback) -> Unsubscribe:
        entry = (frozenset(normalize_service_type(t) for t in service_types), callback)
        self._subscriptions.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscriptions:
                self._subscriptions.remove(entry)

        return unsubscribe

    def deliver(self, record: ServiceRecord, change: ServiceChange = "added") -> int:
        """Hand one record to every browse of its type; the number of subscribers that got it."""
        delivered = 0
        for types, callback in tuple(self._subscriptions):
            if record.type in types:
                callback(change, record)
                delivered += 1
        return delivered


_LABEL_UNSAFE = re.compile(r"[^a-z0-9-]+")


def _host_label(name: str) -> str:
    label = _LABEL_UNSAFE.sub("-", name.lower()).strip("-")
    return (label or "hearth")[:63]


class GatewayAnnouncement:
    """Registers the gateway's API as ``_hearth._tcp`` and ``_http._tcp`` while the context is open.

    TXT: ``version``, ``api`` (the API path, ``/api``), ``auth`` (``bearer`` or ``none``), ``path`` (for
    ``_http._tcp`` browsers, the web UI at ``/``). ``host`` is where the API listens: a wildcard (``0.0.0.0``,
    ``::``) announces the addresses of the mDNS interfaces; a loopback address on a gateway whose mDNS
    runs on real interfaces is not announced at all (nobody else could reach it).
    """

    def __init__(self, mdns: MdnsService, *, name: str, port: int, version: str, host: str = "0.0.0.0",
                 auth_required: bool = True, api_path: str = "/api") -> None:
        self._mdns = mdns
        self._name = name.strip() or "Hearth"
        self._port = port
        self._version = version
        self._host = host
        self._auth_required = auth_required
        self._api_path = api_path
        self.infos: list[AsyncServiceInfo] = []

    async def _addresses(self) -> list[bytes]:
        host = self._host.strip("[]")
        try:
            ip = ipaddress.ip_address(host or "0.0.0.0")
        except ValueError:
            # A host name: announce what it resolves to (the API is bound to it). Resolved off the loop's
            # thread by asyncio: a DNS lookup can take seconds.
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, family=socket.AF_INET)
            return [socket.inet_aton(a) for a in sorted({str(i[4][0]) for i in infos})]
        if ip.version != 4:
            return []  # IPv6-only API: zeroconf here answers on IPv4 (its default); not announced
        if not ip.is_unspecified:
            return [ip.packed]
        if self._mdns.interfaces == "all":
            import ifaddr  # a zeroconf dependency

            found = {ip.ip for a in ifaddr.get_adapters() for ip in a.ips if isinstance(ip.ip, str)}
            return [socket.inet_aton(a) for a in sorted(found) if not a.startswith("127.")]
        return [socket.inet_aton(a) for a in _resolve_interfaces(self._mdns.interfaces)]

    async def __aenter__(self) -> GatewayAnnouncement:
        from zeroconf.asyncio import AsyncServiceInfo

        addresses = await self._addresses()
        loopback_only = all(ipaddress.ip_address(a).is_loopback for a in addresses)
        mdns_on_loopback = self._mdns.interfaces != "all" and all(
            ipaddress.ip_address(a).is_loopback for a in _resolve_interfaces(self._mdns.interfaces))
        if not addresses or (loopback_only and not mdns_on_loopback):
            log.info("mDNS: the API listens on %s only: not announcing it", self._host)
            return self
        label = _host_label(f"{self._name}-{socket.gethostname()}")
        properties = {
            "version": self._version,
            "api": self._api_path,
            "auth": "bearer" if self._auth_required else "none",
            "path": "/",
        }
        for service_type in (GATEWAY_SERVICE_TYPE, HTTP_SERVICE_TYPE):
            info = AsyncServiceInfo(service_type, f"{self._name}.{service_type}", addresses=addresses,
                                    port=self._port, properties=properties, server=f"{label}.local.")
            await self._mdns.register(info)
            self.infos.append(info)
        log.info("mDNS: announcing %r on port %d", self._name, self._port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        infos, self.infos = self.infos, []
        for info in infos:
            with contextlib.suppress(Exception):
                # Best effort: a gateway going down must go down even if the goodbye cannot be sent.
                await self._mdns.unregister(info)
