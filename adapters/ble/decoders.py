"""Pure BLE advertisement decoding: BTHome v2 (plain and encrypted) and Xiaomi MiBeacon, into our model.

One entry point, :func:`decode_advertisement`, serves the local scanner (``adapters.ble.adapter``), the
BLE-to-MQTT gateways (``adapters.mqtt.ble_gateway``) and ``hearth replay``. It takes everything it needs
as arguments: the advertisement (with its time), the bind keys, and the per-device state that packet-id
deduplication and replay protection need. No I/O, no clock, no logging; bad input becomes ``problems``
in the result, never an exception.

Why our own table-driven decoder and not ``bthome-ble``/``xiaomi-ble``: measured on this project's
machine, importing those two pulls 31 packages (HA's whole Bluetooth stack: habluetooth, dbus-fast,
bluetooth-auto-recovery, aiohttp, pycryptodomex, ...), +44 MiB RSS and ~300 ms of imports, against
+9 MiB for ``cryptography`` alone, which is all the formats need (AES-CCM). The formats are small;
the tests use those projects' published vectors, so both read a device the same way.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.ble import _bthome, _mibeacon
from gateway.sdk import CapabilitySupport, DeviceEventUpdate, DeviceInfo, Update, capability

__all__ = [
    "BTHOME_UUID",
    "MIBEACON_UUID",
    "Advertisement",
    "DecodeResult",
    "DecoderState",
    "KeyRing",
    "advertisement_from_capture",
    "decode_advertisement",
    "device_id_for",
    "normalize_mac",
    "normalize_uuid",
]

_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"
BTHOME_UUID = "0000fcd2" + _BASE_UUID_SUFFIX
MIBEACON_UUID = "0000fe95" + _BASE_UUID_SUFFIX
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_HEX_RE = re.compile(r"^[0-9a-fA-F]*$")

# A device repeats each advertisement many times, and receivers (a proxy, an MQTT gateway) may deliver
# them late or out of order: within this window an old or equal packet id / counter is a duplicate.
# 4 s is what bthome-ble uses (it assumes no more than 16 advertisements a second).
DUPLICATE_WINDOW_S = 4.0
# An encrypted counter that went down is replay protection's business, except right after a device
# reset (battery change), when it restarts near zero (bthome-ble allows below 100 as well).
COUNTER_RESET_BELOW = 100
# Per-device decoder state is kept for at most this many devices (a busy street has hundreds of
# advertisers; state for the ones that never decode is not kept at all).
MAX_TRACKED_DEVICES = 2048


def normalize_mac(address: str) -> str:
    """``AA-BB-CC-DD-EE-FF``, ``aabbccddeeff`` or ``AA:BB:...`` -> ``aa:bb:cc:dd:ee:ff``; ValueError if not a MAC."""
    text = address.strip().lower().replace("-", ":")
    if ":" not in text and len(text) == 12:
        text = ":".join(text[i:i + 2] for i in range(0, 12, 2))
    if not _MAC_RE.match(text):
        raise ValueError(f"not a Bluetooth address: {address!r}")
    return text


def normalize_uuid(uuid: str) -> str:
    """A 16-bit (``fcd2``, ``0xfcd2``) or 32-bit UUID in its full 128-bit form, lowercase."""
    text = uuid.strip().lower()
    if text.startswith("0x"):
        text = text[2:]
    if len(text) == 4 and _HEX_RE.match(text):
        return f"0000{text}{_BASE_UUID_SUFFIX}"
    if len(text) == 8 and _HEX_RE.match(text):
        return f"{text}{_BASE_UUID_SUFFIX}"
    return text


def device_id_for(mac: str) -> str:
    return f"ble:{mac}"


@dataclass(frozen=True, slots=True)
class Advertisement:
    """One received advertisement, as every receiver reports it (the capture format's ``ble`` line)."""

    address: str  # normalised: aa:bb:cc:dd:ee:ff
    rssi: int | None
    name: str | None
    service_data: Mapping[str, bytes]  # full 128-bit UUID (lowercase) -> bytes
    manufacturer_data: Mapping[int, bytes]  # company id -> bytes (without the id)
    t: float  # epoch seconds when it was received

    @classmethod
    def create(cls, address: str, rssi: int | None, name: str | None, service_data: Mapping[str, bytes],
               manufacturer_data: Mapping[int, bytes], t: float) -> Advertisement:
        """Normalise address and UUIDs (ValueError on a bad address)."""
        return cls(normalize_mac(address), rssi, name or None,
                   {normalize_uuid(k): bytes(v) for k, v in service_data.items()},
                   {int(k): bytes(v) for k, v in manufacturer_data.items()}, t)


def advertisement_from_capture(line: Mapping[str, Any], t: float) -> Advertisement:
    """A capture line ``{"source": "ble", "address", "rssi", "name", "service_data": {uuid: hex},
    "manufacturer_data": {id: hex}}`` as an Advertisement. ValueError (with the field) when it is wrong."""
    address = line.get("address")
    if not isinstance(address, str):
        raise ValueError("ble line without an address")
    rssi = line.get("rssi")
    if rssi is not None and (isinstance(rssi, bool) or not isinstance(rssi, (int, float))):
        raise ValueError("rssi must be a number")
    name = line.get("name")
    if name is not None and not isinstance(name, str):
        raise ValueError("name must be a string")
    service: dict[str, bytes] = {}
    for key, value in _mapping(line.get("service_data"), "service_data").items():
        service[normalize_uuid(str(key))] = _hex(value, f"service_data[{key}]")
    manufacturer: dict[int, bytes] = {}
    for key, value in _mapping(line.get("manufacturer_data"), "manufacturer_data").items():
        try:
            company = int(key, 0) if isinstance(key, str) else int(key)
        except ValueError as err:
            raise ValueError(f"manufacturer_data: company id {key!r} is not a number") from err
        manufacturer[company] = _hex(value, f"manufacturer_data[{key}]")
    return Advertisement(normalize_mac(address), None if rssi is None else int(rssi), name or None,
                         service, manufacturer, t)


def _mapping(value: Any, what: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be an object")
    return value


def _hex(value: Any, what: str) -> bytes:
    if not isinstance(value, str) or len(value) % 2 or not _HEX_RE.match(value):
        raise ValueError(f"{what} must be a hex string")
    return bytes.fromhex(value)


class KeyRing:
    """Bind keys by MAC (16 bytes: BTHome and MiBeacon v4/v5). The AES-CCM ciphers are made once per key."""

    def __init__(self, keys: Mapping[str, str | bytes] | None = None) -> None:
        self._keys: dict[str, bytes] = {}
        self._ciphers: dict[str, Any] = {}
        for mac, key in (keys or {}).items():
            self.set(mac, key)

    def set(self, mac: str, key: str | bytes) -> None:
        raw = bytes.fromhex(key) if isinstance(key, str) else bytes(key)
        if len(raw) != 16:
            raise ValueError(f"bind key for {mac} must be 16 bytes (32 hex digits), got {len(raw)}")
        normalized = normalize_mac(mac)
        self._keys[normalized] = raw
        self._ciphers.pop(normalized, None)

    def update(self, other: KeyRing) -> None:
        for mac, key in other._keys.items():
            self.set(mac, key)

    def __contains__(self, mac: str) -> bool:
        return mac in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def cipher(self, mac: str) -> Any | None:
        """An ``AESCCM`` with a 4-byte tag for this device's key, or None."""
        key = self._keys.get(mac)
        if key is None:
            return None
        cipher = self._ciphers.get(mac)
        if cipher is None:
            # Imported here: only a gateway with bind keys pays for cryptography (~9 MiB).
            from cryptography.hazmat.primitives.ciphers.aead import AESCCM

            cipher = self._ciphers[mac] = AESCCM(key, tag_length=4)
        return cipher


@dataclass(slots=True)
class _MacState:
    packet_id: int | None = None
    packet_t: float = 0.0
    counter: int | None = None
    counter_t: float = 0.0
    frame: int | None = None
    frame_t: float = 0.0


class DecoderState:
    """What decoding remembers between advertisements, per device: last packet id, counter, frame."""

    def __init__(self, max_devices: int = MAX_TRACKED_DEVICES) -> None:
        self._by_mac: OrderedDict[str, _MacState] = OrderedDict()
        self._max = max_devices

    def get(self, mac: str) -> _MacState:
        state = self._by_mac.get(mac)
        if state is None:
            state = self._by_mac[mac] = _MacState()
            while len(self._by_mac) > self._max:
                self._by_mac.popitem(last=False)
        else:
            self._by_mac.move_to_end(mac)
        return state

    def __len__(self) -> int:
        return len(self._by_mac)


@dataclass(slots=True)
class DecodeResult:
    """What one advertisement means. ``info`` is set when it decoded into something of our model."""

    address: str
    device_id: str
    protocol: str | None = None  # "bthome" | "mibeacon"
    info: DeviceInfo | None = None
    updates: list[Update] = field(default_factory=list)
    events: list[DeviceEventUpdate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    duplicate: bool = False
    # Encrypted, and we have no key for this MAC: not ours, or a key is missing (the caller decides).
    needs_key: bool = False
    # BTHome "trigger based" device: sends on events, not on a schedule (availability must not expect it).
    trigger_based: bool = False

    @property
    def decoded(self) -> bool:
        return self.info is not None


def press_updates(device_id: str, data: dict[str, Any]) -> list[Update]:
    """A press's state, as every adapter reports it: the button's last event (its kind) and which button.
    A dimmer turned or an event with no kind of ours changes neither."""
    if "kind" not in data:
        return []
    return [Update(device_id, "main", "button", "last_event", data["kind"]),
            Update(device_id, "main", "button", "button", data["button"])]


def decode_advertisement(adv: Advertisement, keys: KeyRing, state: DecoderState) -> DecodeResult:
    """Everything our model can take from one advertisement. Never raises."""
    result = DecodeResult(adv.address, device_id_for(adv.address))
    try:
        _decode(adv, keys, state, result)
    except Exception as err:  # a decoder bug must cost one advertisement, never the receiver
        result.info, result.updates, result.events = None, [], []
        result.problems.append(f"{adv.address}: could not decode advertisement: {err!r}")
    return result


def _decode(adv: Advertisement, keys: KeyRing, state: DecoderState, result: DecodeResult) -> None:
    bthome = adv.service_data.get(BTHOME_UUID)
    if bthome is not None:
        _decode_bthome(adv, bthome, keys, state, result)
        return
    mibeacon = adv.service_data.get(MIBEACON_UUID)
    if mibeacon is not None:
        _decode_mibeacon(adv, mibeacon, keys, state, result)


def _short(mac: str) -> str:
    return mac.replace(":", "")[-4:].upper()


def _display_name(adv: Advertisement, fallback: str) -> str:
    name = (adv.name or "").strip()
    if not name or name.lower().replace("-", ":") == adv.address:
        return f"{fallback} {_short(adv.address)}"
    return name[:64]


def _finish(result: DecodeResult, adv: Advertisement, protocol: str, readings: list[tuple[str, str, Any]],
            events: list[dict[str, Any]], *, name: str, manufacturer: str | None, model: str,
            sw_version: str | None) -> None:
    """Readings -> checked Updates (a repeated attribute becomes channel ``ch2``, ``ch3``...) + DeviceInfo."""
    result.protocol = protocol
    seen: dict[tuple[str, str], int] = {}
    components: dict[str, dict[str, set[str]]] = {}
    for cap, attr, value in readings:
        count = seen[(cap, attr)] = seen.get((cap, attr), 0) + 1
        component = "main" if count == 1 else f"ch{count}"
        spec = capability(cap)
        problem = spec.attributes[attr].check(value) if spec is not None and attr in spec.attributes else "unknown"
        if problem is not None:
            result.problems.append(f"{adv.address}: {protocol} {cap}.{attr}: {problem}")
            continue
        result.updates.append(Update(result.device_id, component, cap, attr, value))
        components.setdefault(component, {}).setdefault(cap, set()).add(attr)
    for data in events:
        result.events.append(DeviceEventUpdate(result.device_id, "main", "button", "pressed", data))
        attrs = components.setdefault("main", {}).setdefault("button", set())
        result.updates.extend(press_updates(result.device_id, data))
        if "kind" in data:
            attrs |= {"last_event", "button"}
    if not components:
        return
    result.info = DeviceInfo(
        id=result.device_id, name=name, source="ble", manufacturer=manufacturer, model=model,
        sw_version=sw_version, mac=adv.address,
        components={comp: {cap: CapabilitySupport(frozenset(attrs)) for cap, attrs in caps.items()}
                    for comp, caps in components.items()},
    )


# ---------------------------------------------------------------------------------------------- BTHome


def _decode_bthome(adv: Advertisement, data: bytes, keys: KeyRing, state: DecoderState,
                   result: DecodeResult) -> None:
    if not data:
        result.problems.append(f"{adv.address}: empty BTHome service data")
        return
    info = data[0]
    version = (info >> 5) & 7
    if version != 2:
        result.problems.append(f"{adv.address}: BTHome version {version} is not supported (only v2)")
        return
    encrypted = bool(info & 0x01)
    mac_included = bool(info & 0x02)
    result.trigger_based = bool(info & 0x04)
    body = data[1:]
    mac_bytes = bytes.fromhex(adv.address.replace(":", ""))
    if mac_included:
        if len(body) < 6:
            result.problems.append(f"{adv.address}: BTHome frame too short for its included MAC")
            return
        mac_bytes = body[:6][::-1]
        body = body[6:]
    mac_state = None
    if encrypted:
        cipher = keys.cipher(adv.address)
        if cipher is None:
            result.needs_key = True
            return
        if len(body) < 8 + 1:
            result.problems.append(f"{adv.address}: encrypted BTHome frame too short ({len(data)} bytes)")
            return
        counter = int.from_bytes(body[-8:-4], "little")
        mac_state = state.get(adv.address)
        if mac_state.counter is not None:
            if counter == mac_state.counter:
                result.duplicate = True
                return
            if counter < mac_state.counter and counter >= COUNTER_RESET_BELOW:
                if adv.t - mac_state.counter_t <= DUPLICATE_WINDOW_S:
                    result.duplicate = True  # a late copy through a slower receiver
                else:
                    result.problems.append(
                        f"{adv.address}: BTHome counter went back from {mac_state.counter} to {counter}: "
                        "ignored (a replayed advertisement?)")
                return
        nonce = mac_bytes + b"\xd2\xfc" + bytes([info]) + body[-8:-4]
        try:
            payload = cipher.decrypt(nonce, body[:-8] + body[-4:], None)
        except Exception:  # cryptography's InvalidTag: wrong key, or a corrupted frame
            result.problems.append(f"{adv.address}: BTHome decryption failed (wrong bind key?)")
            return
        mac_state.counter, mac_state.counter_t = counter, adv.t
    else:
        if adv.address in keys:
            result.problems.append(
                f"{adv.address}: unencrypted BTHome frame from a device with a bind key: ignored (downgrade)")
            return
        payload = body
    packet = _bthome.parse_objects(payload)
    if packet.packet_id is not None:
        mac_state = mac_state or state.get(adv.address)
        last = mac_state.packet_id
        if last is not None and adv.t - mac_state.packet_t <= DUPLICATE_WINDOW_S:
            ahead = (packet.packet_id - last) % 256
            if ahead == 0 or ahead >= 64:
                result.duplicate = True
                return
        mac_state.packet_id, mac_state.packet_t = packet.packet_id, adv.t
    result.problems += [f"{adv.address}: {p}" for p in packet.problems]
    manufacturer, model = _bthome.name_model(adv.name)
    sw = "BTHome v2" + (" (encrypted)" if encrypted else "") + (f", firmware {packet.firmware}" if packet.firmware
                                                                   else "")
    _finish(result, adv, "bthome", packet.readings, packet.events, name=_display_name(adv, model),
            manufacturer=manufacturer, model=model, sw_version=sw)


# -------------------------------------------------------------------------------------------- MiBeacon


def _decode_mibeacon(adv: Advertisement, data: bytes, keys: KeyRing, state: DecoderState,
                     result: DecodeResult) -> None:
    if len(data) < 5:
        result.problems.append(f"{adv.address}: MiBeacon frame too short ({len(data)} bytes)")
        return
    control = data[0] | (data[1] << 8)
    version = control >> 12
    if control & 0x80 or version < 2:
        return  # mesh and pre-v2 frames carry nothing we read (xiaomi-ble skips them too)
    product = data[2] | (data[3] << 8)
    frame = data[4]
    pos = 5
    mac_bytes = bytes.fromhex(adv.address.replace(":", ""))
    if control & 0x10:
        if len(data) < pos + 6:
            result.problems.append(f"{adv.address}: MiBeacon frame too short for its MAC")
            return
        if data[pos:pos + 6][::-1] != mac_bytes:
            return  # someone else's frame relayed or spoofed: not this device's data
        pos += 6
    if control & 0x20:
        if len(data) < pos + 1:
            result.problems.append(f"{adv.address}: MiBeacon frame too short for its capability byte")
            return
        capability_byte = data[pos]
        pos += 1
        if capability_byte & 0x20:
            pos += 1
    if not control & 0x40:
        return  # no objects (a pairing or presence beacon)
    model, name = _mibeacon.PRODUCTS.get(product, (f"0x{product:04x}", f"Xiaomi 0x{product:04x}"))
    mac_state = state.get(adv.address)
    if mac_state.frame == frame and adv.t - mac_state.frame_t <= 60.0:
        # Xiaomi devices repeat each frame for several seconds; a new frame gets a new counter.
        result.duplicate = True
        return
    encrypted = bool(control & 0x08)
    if encrypted:
        if version < 4:
            result.problems.append(f"{adv.address}: MiBeacon v{version} (legacy) encryption is not supported")
            return
        cipher = keys.cipher(adv.address)
        if cipher is None:
            result.needs_key = True
            return
        if len(data) < pos + 9:
            result.problems.append(f"{adv.address}: encrypted MiBeacon frame too short")
            return
        nonce = mac_bytes[::-1] + data[2:5] + data[-7:-4]
        try:
            payload = cipher.decrypt(nonce, data[pos:-7] + data[-4:], b"\x11")
        except Exception:  # InvalidTag
            result.problems.append(f"{adv.address}: MiBeacon decryption failed (wrong bind key?)")
            return
    else:
        payload = data[pos:]
    mac_state.frame, mac_state.frame_t = frame, adv.t
    parsed = _mibeacon.parse_objects(payload, model)
    result.problems += [f"{adv.address}: {p}" for p in parsed.problems]
    sw = f"MiBeacon v{version}" + (" (encrypted)" if encrypted else "")
    _finish(result, adv, "mibeacon", parsed.readings, parsed.events, name=_display_name(adv, name),
            manufacturer="Xiaomi", model=model, sw_version=sw)
