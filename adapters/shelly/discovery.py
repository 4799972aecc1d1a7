"""What mDNS tells us about the devices on the network, pure: service records in, discovered entries out.

No I/O and no clock (the time is passed in): :class:`DiscoveryRegistry` is what the mDNS adapter, the
replay of a capture's ``mdns`` lines and the tests (fuzz tests included) drive alike.

One entry per *device*, not per service: a Shelly announces ``_shelly._tcp`` and ``_http._tcp``, both land on
``shelly:<device id>``. The key comes from the hardware (TXT ``id``/``mac``, or the id in the instance name),
so a new address (DHCP) or port updates the entry and never makes a second one. A service that goes away
(goodbye or TTL expiry) makes its entry unavailable once none of the entry's services is left; entries are
never deleted (the list shows what was seen, and when).

Device support is data: :data:`FAMILIES` lists each known service type, how to read its TXT, and which
adapter can take it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from adapters.shelly.codec import device_id_for, looks_like_shelly_id
from gateway.sdk import ServiceRecord, iso_utc

__all__ = [
    "BROWSED_TYPES",
    "FAMILIES",
    "MAX_ENTRIES",
    "Classified",
    "DiscoveredEntry",
    "DiscoveryRegistry",
    "Family",
    "Observation",
    "ServiceRecord",
    "classify",
    "decode_txt",
]

Support = Literal["supported", "seen only"]
#: The adapter (entry-point name) that turns a supported Shelly into a device: this one.
SHELLY_ADAPTER = "mdns"
# A hostile or broken network could announce thousands of names; the list keeps this many entries
# (the oldest unavailable ones go first) so that memory stays bounded.
MAX_ENTRIES = 1000
MAX_TXT_KEYS = 64
MAX_TXT_VALUE_CHARS = 255
MAX_NAME_CHARS = 255
MAX_ADDRESSES = 16
SHELLY_GENERATIONS = ("2", "3", "4")


def _text(raw: Any, limit: int) -> str | None:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    elif isinstance(raw, (bool, int, float)):
        raw = str(raw)
    if not isinstance(raw, str):
        return None
    # Control characters have no business in a name or TXT value and would garble logs and the UI.
    cleaned = "".join(ch if ch.isprintable() else "\ufffd" for ch in raw)
    return cleaned[:limit]


def decode_txt(properties: Any) -> tuple[dict[str, str | None], list[str]]:
    """A TXT record (zeroconf's ``dict[bytes, bytes | None]``, or a capture's JSON object) as text.

    Keys are case-insensitive (RFC 6763 6.4), so they are lowercased; the first of duplicate keys wins
    (6.4 again). Values are UTF-8 with bad bytes replaced; ``None`` is a boolean attribute (key only).
    Returns (txt, problems): anything unusable is dropped and named, never raised.
    """
    problems: list[str] = []
    txt: dict[str, str | None] = {}
    if properties is None:
        return txt, problems
    if not isinstance(properties, Mapping):
        return txt, [f"TXT record is not a key/value map: {type(properties).__name__}"]
    for index, (raw_key, raw_value) in enumerate(properties.items()):
        if index >= MAX_TXT_KEYS:
            problems.append(f"TXT record has over {MAX_TXT_KEYS} keys; the rest were dropped")
            break
        key = _text(raw_key, 64)
        if not key or not key.strip() or "=" in key:
            problems.append(f"TXT key {raw_key!r:.40} is not usable")
            continue
        key = key.strip().lower()
        if key in txt:
            continue
        if raw_value is None:
            txt[key] = None
            continue
        value = _text(raw_value, MAX_TXT_VALUE_CHARS)
        if value is None:
            problems.append(f"TXT value of {key!r} is not text")
            continue
        txt[key] = value
    return txt, problems


# ---------------------------------------------------------------------------------------------- families


@dataclass(frozen=True, slots=True)
class Classified:
    """What a service record is: the device it belongs to and who can take it."""

    family: str
    key: str  # "<family>:<native id>", the entry's identity
    adapter: str | None
    support: Support
    model: str | None = None
    device_id: str | None = None  # the Hearth device id, for a supported device
    label: str | None = None  # a friendly name, if the TXT has one


Classifier = Callable[[ServiceRecord, dict[str, str | None]], Classified | None]


@dataclass(frozen=True, slots=True)
class Family:
    service_types: tuple[str, ...]
    classify: Classifier
    description: str


_MAC = re.compile(r"^[0-9a-f]{12}$")


def _native(raw: str | None) -> str | None:
    if raw is None:
        return None
    text = raw.strip().lower()
    return text or None


def _mac(raw: str | None) -> str | None:
    text = (raw or "").replace(":", "").replace("-", "").strip().lower()
    return text if _MAC.match(text) else None


def _shelly(record: ServiceRecord, txt: dict[str, str | None]) -> Classified | None:
    instance = record.instance.strip().lower()
    gen = (txt.get("gen") or "").strip()
    txt_id = _native(txt.get("id"))
    shelly_named = bool(txt_id and txt_id.startswith("shelly")) or instance.startswith("shelly")
    if record.type == "_shelly._tcp.local.":
        gen2 = True  # only Gen2+ announce _shelly._tcp (shelly-api-docs gen2 mDNS)
    elif not shelly_named:
        return None  # any other web server on _http._tcp ("gen" alone is no Shelly): not ours to list
    else:
        # Gen2+ carry gen=2/3/4; Gen1 has no gen (TXT id/arch/fw_id, micropython-mdns #34).
        gen2 = gen in SHELLY_GENERATIONS
    native = txt_id if txt_id and looks_like_shelly_id(txt_id) else instance if looks_like_shelly_id(instance) \
        else txt_id or instance
    model = txt.get("app") or None
    if gen2:
        return Classified("shelly", device_id_for(native), SHELLY_ADAPTER, "supported", model,
                          device_id=device_id_for(native))
    # Gen1 speaks a different HTTP API (and CoIoT), which Hearth does not implement.
    return Classified("shelly", device_id_for(native), None, "seen only", model)


def _esphome(record: ServiceRecord, txt: dict[str, str | None]) -> Classified | None:
    native = _mac(txt.get("mac")) or record.instance.strip().lower()
    return Classified("esphome", f"esphome:{native}", None, "seen only",
                      txt.get("board") or txt.get("platform") or None, label=txt.get("friendly_name"))


def _homekit(record: ServiceRecord, txt: dict[str, str | None]) -> Classified | None:
    native = _native(txt.get("id")) or record.instance.strip().lower()
    return Classified("homekit", f"homekit:{native}", None, "seen only", txt.get("md") or None)


def _matter(record: ServiceRecord, txt: dict[str, str | None]) -> Classified | None:
    # Operational names are <fabric>-<node>; commissionable ones are random per boot: the name is all we have.
    return Classified("matter", f"matter:{record.instance.strip().lower()}", None, "seen only",
                      txt.get("vp") or None, label=txt.get("dn"))


def _googlecast(record: ServiceRecord, txt: dict[str, str | None]) -> Classified | None:
    native = _native(txt.get("id")) or record.instance.strip().lower()
    return Classified("googlecast", f"googlecast:{native}", None, "seen only", txt.get("md") or None,
                      label=txt.get("fn"))


#: Service types browsed, by device family. Supporting a new family is adding a row.
FAMILIES: tuple[Family, ...] = (
    Family(("_shelly._tcp.local.", "_http._tcp.local."), _shelly, "Shelly (Gen2+ over HTTP RPC; Gen1 listed)"),
    Family(("_esphomelib._tcp.local.",), _esphome, "ESPHome native API"),
    Family(("_hap._tcp.local.",), _homekit, "HomeKit accessory"),
    Family(("_matter._tcp.local.", "_matterc._udp.local."), _matter, "Matter node"),
    Family(("_googlecast._tcp.local.",), _googlecast, "Google Cast"),
)
BROWSED_TYPES: tuple[str, ...] = tuple(sorted({t for f in FAMILIES for t in f.service_types}))


def classify(record: ServiceRecord, txt: dict[str, str | None]) -> Classified | None:
    """The first family that recognises ``record``; None for a service no family claims."""
    for family in FAMILIES:
        if record.type in family.service_types:
            found = family.classify(record, txt)
            if found is not None:
                return found
    return None


# ---------------------------------------------------------------------------------------------- registry


@dataclass(slots=True)
class DiscoveredEntry:
    key: str
    family: str
    name: str
    adapter: str | None
    support: Support
    first_seen: float
    last_seen: float
    model: str | None = None
    device_id: str | None = None
    label: str | None = None
    addresses: tuple[str, ...] = ()
    port: int | None = None
    txt: dict[str, str | None] = field(default_factory=dict)
    # (service type, instance) -> still announced; the entry is available while any is.
    services: dict[tuple[str, str], bool] = field(default_factory=dict)
    type: str = ""  # the service type last seen
    server: str | None = None

    @property
    def available(self) -> bool:
        return any(self.services.values())

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/discovered``."""
        return {
            "id": self.key,
            "family": self.family,
            "type": self.type,
            "types": sorted({t for t, _ in self.services}),
            "name": self.label or self.name,
            "instance": self.name,
            "model": self.model,
            "addresses": list(self.addresses),
            "address": self.addresses[0] if self.addresses else None,
            "port": self.port,
            "txt": dict(self.txt),
            "adapter": self.adapter,
            "support": self.support,
            "device_id": self.device_id,
            "available": self.available,
            "first_seen": iso_utc(self.first_seen),
            "last_seen": iso_utc(self.last_seen),
        }


@dataclass(slots=True)
class Observation:
    entry: DiscoveredEntry
    new: bool = False
    moved: bool = False  # its address or port changed (DHCP): connections must follow it
    came_back: bool = False  # it was unavailable and is announced again
    problems: list[str] = field(default_factory=list)


class DiscoveryRegistry:
    """Every device seen over mDNS. Pure: records and times in, entries out."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.entries: dict[str, DiscoveredEntry] = {}
        self._key_of_service: dict[tuple[str, str], str] = {}
        self._max_entries = max_entries

    def observe(self, record: ServiceRecord, now: float) -> Observation | None:
        """A service was announced or changed. None if no family claims it (problems are then dropped
        with it: another vendor's odd TXT is not a fault)."""
        txt, problems = decode_txt(record.properties)
        instance = _text(record.instance, MAX_NAME_CHARS) or ""
        if instance != record.instance:
            problems.append(f"instance name {record.instance!r:.60} is not printable text")
        safe = ServiceRecord(record.type, instance, record.addresses, record.port, record.properties, record.server)
        found = classify(safe, txt)
        if found is None:
            return None
        service = (record.type, record.instance.lower())
        old_key = self._key_of_service.get(service)
        if old_key is not None and old_key != found.key and old_key in self.entries:
            # The same service now describes another device (a TXT id that changed): it left the old one.
            self.entries[old_key].services[service] = False
        self._key_of_service[service] = found.key
        addresses = tuple(a for a in record.addresses if isinstance(a, str))[:MAX_ADDRESSES]
        port = record.port if isinstance(record.port, int) and 0 < record.port <= 65535 else None
        entry = self.entries.get(found.key)
        if entry is None:
            entry = DiscoveredEntry(
                key=found.key, family=found.family, name=instance, adapter=found.adapter, support=found.support,
                first_seen=now, last_seen=now, model=found.model, device_id=found.device_id, label=found.label,
                addresses=addresses, port=port, txt=txt, services={service: True}, type=record.type,
                server=_text(record.server, MAX_NAME_CHARS),
            )
            self.entries[found.key] = entry
            self._trim()
            return Observation(entry, new=True, problems=problems)
        came_back = not entry.available
        moved = bool(addresses) and (addresses != entry.addresses or (port is not None and port != entry.port))
        entry.services[service] = True
        entry.last_seen = now
        entry.type = record.type
        if addresses:
            entry.addresses = addresses
        if port is not None:
            entry.port = port
        # _http._tcp and _shelly._tcp of one Shelly carry the same TXT; a richer one is kept.
        entry.txt = {**entry.txt, **txt}
        entry.model = found.model or entry.model
        entry.label = found.label or entry.label
        if found.support == "supported" and entry.support != "supported":
            entry.support, entry.adapter, entry.device_id = found.support, found.adapter, found.device_id
        if record.server:
            entry.server = _text(record.server, MAX_NAME_CHARS)
        return Observation(entry, moved=moved, came_back=came_back, problems=problems)

    def remove(self, service_type: str, instance: str, now: float) -> DiscoveredEntry | None:
        """A service went away (goodbye, or its TTL ran out). The entry it belonged to, if any: it is
        unavailable once none of its services is left, and kept."""
        service = (service_type, instance.lower())
        key = self._key_of_service.get(service)
        entry = self.entries.get(key) if key else None
        if entry is None:
            return None
        # last_seen stays the time it was last announced: that is what "last seen" means to a user.
        entry.services[service] = False
        return entry

    def get(self, key: str) -> DiscoveredEntry | None:
        return self.entries.get(key)

    def by_device(self, device_id: str) -> DiscoveredEntry | None:
        for entry in self.entries.values():
            if entry.device_id == device_id:
                return entry
        return None

    def as_list(self) -> list[dict[str, Any]]:
        return [self.entries[k].as_dict() for k in sorted(self.entries)]

    def _trim(self) -> None:
        if len(self.entries) <= self._max_entries:
            return
        # Oldest unavailable first, then oldest seen: a flood of names pushes out only what is stale.
        victims = sorted(self.entries.values(), key=lambda e: (e.available, e.last_seen))
        for entry in victims[: len(self.entries) - self._max_entries]:
            del self.entries[entry.key]
            for service in list(entry.services):
                if self._key_of_service.get(service) == entry.key:
                    del self._key_of_service[service]
