"""Pure BLE advertisement decoding into our model: BTHome v2 (plain and encrypted), Xiaomi MiBeacon (v2-v5,
plain, legacy and AES-CCM encrypted) and the custom formats of pvvx's thermometer firmware (0x181A).

One entry point, :func:`decode_advertisement`, serves the local scanner (``adapters.ble.adapter``), the
BLE-to-MQTT gateways (``adapters.ble.mqtt_gateway``) and ``hearth replay``. It takes everything it needs
as arguments: the advertisement (with its time), the bind keys, and the per-device state that packet-id
deduplication, replay protection and the pvvx opening flag need. No I/O, no clock, no logging; whatever
is not applied becomes a :class:`Drop` with its reason in the result (``adapters.ble._drops``), never an
exception and never silence.

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

from adapters.ble import _bthome, _mibeacon, _pvvx
from adapters.ble._drops import Drop, DropReason, Said, Severity
from gateway.sdk import CapabilitySupport, DeviceEventUpdate, DeviceInfo, Update, capability

__all__ = [
    "BTHOME_UUID",
    "MIBEACON_UUID",
    "Advertisement",
    "DecodeResult",
    "DecoderState",
    "Drop",
    "DropReason",
    "KeyRing",
    "Severity",
    "advertisement_from_capture",
    "decode_advertisement",
    "device_id_for",
    "normalize_mac",
    "normalize_uuid",
]

_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"
BTHOME_UUID = "0000fcd2" + _BASE_UUID_SUFFIX
MIBEACON_UUID = "0000fe95" + _BASE_UUID_SUFFIX
ENVIRONMENTAL_SENSING_UUID = "0000181a" + _BASE_UUID_SUFFIX  # pvvx/atc1441 custom formats
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
# Xiaomi devices and pvvx's firmware repeat each frame (same frame counter, same bytes) for several seconds
# (pvvx: every 2.5 s until the next measurement, 10 s by default); a new reading gets a new counter.
REPEAT_WINDOW_S = 60.0
# MiBeacon v2/v3 ("legacy") bind keys are 12 bytes; the AES key is them with 4 fixed bytes in the middle
# (xiaomi-ble set_bindkey).
_LEGACY_KEY_FILLER = bytes.fromhex("8d3d3c97")


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
    """Bind keys by MAC: 16 bytes (BTHome, MiBeacon v4/v5) or 12 bytes (MiBeacon v2/v3, "legacy").

    The AES-CCM ciphers are made once per key."""

    def __init__(self, keys: Mapping[str, str | bytes] | None = None) -> None:
        self._keys: dict[str, bytes] = {}  # always the 16-byte AES key
        self._legacy: set[str] = set()  # MACs whose key was given as a 12-byte legacy key
        self._ciphers: dict[str, Any] = {}
        for mac, key in (keys or {}).items():
            self.set(mac, key)

    def set(self, mac: str, key: str | bytes) -> None:
        raw = bytes.fromhex(key) if isinstance(key, str) else bytes(key)
        if len(raw) not in (12, 16):
            raise ValueError(f"bind key for {mac} must be 16 bytes (32 hex digits), or 12 (24 hex digits) for "
                             f"MiBeacon v2/v3, got {len(raw)}")
        normalized = normalize_mac(mac)
        if len(raw) == 12:
            self._keys[normalized] = raw[:6] + _LEGACY_KEY_FILLER + raw[6:]
            self._legacy.add(normalized)
        else:
            self._keys[normalized] = raw
            self._legacy.discard(normalized)
        self._ciphers.pop(normalized, None)

    def update(self, other: KeyRing) -> None:
        for mac, key in other._keys.items():
            self._keys[mac] = key
            if mac in other._legacy:
                self._legacy.add(mac)
            else:
                self._legacy.discard(mac)
            self._ciphers.pop(mac, None)

    def __contains__(self, mac: str) -> bool:
        return mac in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def is_legacy(self, mac: str) -> bool:
        """Whether this MAC's key was given as a 12-byte MiBeacon v2/v3 key (it cannot open anything else)."""
        return mac in self._legacy

    def aes_key(self, mac: str) -> bytes | None:
        """The 16-byte AES key (a legacy key already expanded), or None."""
        return self._keys.get(mac)

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


def _ccm_decrypt_untagged(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    """AES-CCM decryption without checking the tag: MiBeacon v2/v3 frames carry none (only a 1-byte stub).

    CCM encrypts in CTR mode with counter blocks ``flags | nonce | i`` (flags = L - 1, L = 15 - nonce length),
    the payload starting at i = 1 (RFC 3610 section 2.3), so CTR with that first block decrypts it;
    ``cryptography``'s AESCCM insists on a tag, and pycryptodome (xiaomi-ble's way) would be one more
    dependency for one mode.
    """
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    size = 15 - len(nonce)
    first_block = bytes([size - 1]) + nonce + (1).to_bytes(size, "big")
    decryptor = Cipher(algorithms.AES(key), modes.CTR(first_block)).decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


@dataclass(slots=True)
class _MacState:
    packet_id: int | None = None
    packet_t: float = 0.0
    counter: int | None = None
    counter_t: float = 0.0
    frame: int | None = None
    frame_t: float = 0.0
    mi_counter: int | None = None
    mi_counter_t: float = 0.0
    custom_frame: bytes | None = None
    custom_t: float = 0.0
    # The generic "opening" flag (BTHome 0x11, pvvx flags bit0): last values, and whether it has shown that
    # it means something (see _opening_readings).
    openings: tuple[bool, ...] | None = None
    opening_used: bool = False


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

    def opening_in_use(self, mac: str) -> None:
        """This device's opening flag is known to mean something (a contact restored from the store)."""
        self.get(mac).opening_used = True

    def __len__(self) -> int:
        return len(self._by_mac)


@dataclass(slots=True)
class DecodeResult:
    """What one advertisement means. ``info`` is set when it decoded into something of our model; ``drops``
    says what was not applied, and why."""

    address: str
    device_id: str
    protocol: str | None = None  # "bthome" | "mibeacon" | "pvvx" once the format was recognised
    info: DeviceInfo | None = None
    updates: list[Update] = field(default_factory=list)
    events: list[DeviceEventUpdate] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    duplicate: bool = False
    # Encrypted, and we have no key for this MAC: not ours, or a key is missing (the caller decides).
    needs_key: bool = False
    # Sends on events, not on a schedule (a BTHome "trigger based" device, a sleepy Xiaomi sensor):
    # availability must not expect it at the usual interval.
    trigger_based: bool = False

    @property
    def decoded(self) -> bool:
        return self.info is not None

    @property
    def problems(self) -> list[str]:
        """What was wrong with the input (for ``report_bad_input``)."""
        return [d.message for d in self.drops if d.severity is Severity.PROBLEM]

    @property
    def notes(self) -> list[str]:
        """What was understood and not used."""
        return [d.message for d in self.drops if d.severity is Severity.NOTE]

    def drop(self, reason: DropReason, message: str, severity: Severity, topic: str = "") -> None:
        self.drops.append(Drop(reason, f"{self.address}: {message}", severity, topic))

    def problem(self, reason: DropReason, message: str) -> None:
        self.drop(reason, message, Severity.PROBLEM)

    def note(self, reason: DropReason, message: str, topic: str = "") -> None:
        self.drop(reason, message, Severity.NOTE, topic)

    def repeat(self, what: str) -> None:
        self.duplicate = True
        self.drop(DropReason.DUPLICATE, what, Severity.COUNT)


def press_updates(device_id: str, data: dict[str, Any]) -> list[Update]:
    """A press's state, as every adapter reports it: the button's last event (its kind) and which button.
    A dimmer turned or an event with no kind of ours changes neither."""
    if "kind" not in data:
        return []
    return [Update(device_id, "main", "button", "last_event", data["kind"]),
            Update(device_id, "main", "button", "button", data["button"])]


def decode_advertisement(adv: Advertisement, keys: KeyRing, state: DecoderState) -> DecodeResult:
    """Everything our model can take from one advertisement, and a reason for everything it cannot. Never raises.

    An advertisement in none of our formats (a phone, a tracker) gives an empty result: not a device of ours.
    """
    result = DecodeResult(adv.address, device_id_for(adv.address))
    try:
        _decode(adv, keys, state, result)
    except Exception as err:  # a decoder bug must cost one advertisement, never the receiver
        result.info, result.updates, result.events = None, [], []
        result.problem(DropReason.DECODER_ERROR, f"could not decode advertisement: {err!r}")
    if result.protocol is not None and not result.decoded and not result.drops:
        result.drop(DropReason.NO_DATA, f"{result.protocol} frame without readings", Severity.COUNT)
    return result


def _decode(adv: Advertisement, keys: KeyRing, state: DecoderState, result: DecodeResult) -> None:
    bthome = adv.service_data.get(BTHOME_UUID)
    if bthome is not None:
        _decode_bthome(adv, bthome, keys, state, result)
        return
    mibeacon = adv.service_data.get(MIBEACON_UUID)
    if mibeacon is not None:
        _decode_mibeacon(adv, mibeacon, keys, state, result)
        return
    custom = adv.service_data.get(ENVIRONMENTAL_SENSING_UUID)
    if custom is not None:
        _decode_custom(adv, custom, state, result)


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
            result.problem(DropReason.INVALID_VALUE, f"{protocol} {cap}.{attr}: {problem}")
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


def _counter_ok(result: DecodeResult, adv: Advertisement, counter: int, last: int | None, last_t: float,
                protocol: str) -> bool:
    """Replay protection of an encrypted frame's counter: False (and the reason recorded) when it must not be
    applied. Equal is a repeat; lower is a late copy within DUPLICATE_WINDOW_S (a slower receiver), a
    replayed frame after it, except right after a device reset (the counter restarts near zero)."""
    if last is None:
        return True
    if counter == last:
        result.repeat(f"{protocol} counter {counter} again")
        return False
    if last > counter >= COUNTER_RESET_BELOW:
        if adv.t - last_t <= DUPLICATE_WINDOW_S:
            result.repeat(f"{protocol} counter {counter} after {last}: a late copy")
        else:
            result.problem(DropReason.REPLAY, f"{protocol} counter went back from {last} to {counter}: ignored "
                                              "(a replayed advertisement?)")
        return False
    return True


def _no_key(result: DecodeResult, what: str) -> None:
    result.needs_key = True
    result.note(DropReason.NO_KEY, f"{what} is encrypted and there is no bind key for this device: add it "
                                   "under [adapters.ble] keys to read it")


def _opening_readings(result: DecodeResult, mac_state: _MacState, values: list[bool], *, trusted: bool,
                      what: str) -> list[tuple[str, str, Any]]:
    """The generic opening flag(s) as contact readings, once they mean something.

    pvvx's thermometer firmware sends its reed-switch input (BTHome 0x11 in every other measurement packet,
    bit0 of its custom format's flags) whether or not a reed switch is fitted (``src/bthome_beacon.c``,
    ``src/rds_count.c``): a bare thermometer would show a door that never moves. So the flag is used once it
    has shown it is a switch: it changed, or it came in an event (a trigger-based BTHome device, or pvvx's
    reed-switch event beacon, sent only when a switch is configured), or the device already has a contact
    (``DecoderState.opening_in_use``). Until then a note says it was not used.
    """
    if not values:
        return []
    current = tuple(values)
    previous, mac_state.openings = mac_state.openings, current
    if not mac_state.opening_used:
        if not (trusted or (previous is not None and previous != current)):
            shown = ", ".join("open" if v else "closed" for v in values)
            result.note(DropReason.NOT_USED, f"{what} opening flag ({shown}) not used: unchanged since first "
                                             "heard and sent with every measurement (pvvx firmware sends its "
                                             "reed-switch input whether or not a switch is fitted); it is used "
                                             "once it changes", "opening")
            return []
        mac_state.opening_used = True
    return [("contact", "open", value) for value in values]


def _add_parsed(result: DecodeResult, problems: list[Said], notes: list[Said]) -> None:
    for reason, message, _topic in problems:
        result.problem(reason, message)
    for reason, message, topic in notes:
        result.note(reason, message, topic)


# ---------------------------------------------------------------------------------------------- BTHome


def _decode_bthome(adv: Advertisement, data: bytes, keys: KeyRing, state: DecoderState,
                   result: DecodeResult) -> None:
    result.protocol = "bthome"
    if not data:
        result.problem(DropReason.TOO_SHORT, "empty BTHome service data")
        return
    info = data[0]
    version = (info >> 5) & 7
    if version != 2:
        result.problem(DropReason.UNSUPPORTED, f"BTHome version {version} is not supported (only v2)")
        return
    encrypted = bool(info & 0x01)
    mac_included = bool(info & 0x02)
    result.trigger_based = bool(info & 0x04)
    body = data[1:]
    mac_bytes = bytes.fromhex(adv.address.replace(":", ""))
    if mac_included:
        if len(body) < 6:
            result.problem(DropReason.TOO_SHORT, "BTHome frame too short for its included MAC")
            return
        mac_bytes = body[:6][::-1]
        body = body[6:]
    mac_state = None
    if encrypted:
        cipher = keys.cipher(adv.address)
        if cipher is None:
            _no_key(result, "BTHome advertisement")
            return
        if keys.is_legacy(adv.address):
            result.problem(DropReason.DECRYPTION_FAILED, "the bind key set for this device is a 12-byte MiBeacon "
                                                         "v2/v3 key; BTHome needs its 16-byte key")
            return
        if len(body) < 8 + 1:
            result.problem(DropReason.TOO_SHORT, f"encrypted BTHome frame too short ({len(data)} bytes)")
            return
        counter = int.from_bytes(body[-8:-4], "little")
        mac_state = state.get(adv.address)
        if not _counter_ok(result, adv, counter, mac_state.counter, mac_state.counter_t, "BTHome"):
            return
        nonce = mac_bytes + b"\xd2\xfc" + bytes([info]) + body[-8:-4]
        try:
            payload = cipher.decrypt(nonce, body[:-8] + body[-4:], None)
        except Exception:  # cryptography's InvalidTag: wrong key, or a corrupted frame
            result.problem(DropReason.DECRYPTION_FAILED, "BTHome decryption failed (wrong bind key?)")
            return
        mac_state.counter, mac_state.counter_t = counter, adv.t
    else:
        if adv.address in keys:
            result.problem(DropReason.DOWNGRADE, "unencrypted BTHome frame from a device with a bind key: ignored "
                                                 "(downgrade)")
            return
        payload = body
    packet = _bthome.parse_objects(payload)
    if packet.packet_id is not None:
        mac_state = mac_state or state.get(adv.address)
        last = mac_state.packet_id
        if last is not None and adv.t - mac_state.packet_t <= DUPLICATE_WINDOW_S:
            ahead = (packet.packet_id - last) % 256
            if ahead == 0 or ahead >= 64:
                result.repeat(f"BTHome packet id {packet.packet_id} after {last}")
                return
        mac_state.packet_id, mac_state.packet_t = packet.packet_id, adv.t
    _add_parsed(result, packet.problems, packet.notes)
    readings = list(packet.readings)
    if packet.openings:
        mac_state = mac_state or state.get(adv.address)
        readings += _opening_readings(result, mac_state, packet.openings,
                                      trusted=result.trigger_based or not packet.measurement, what="BTHome 0x11")
    manufacturer, model = _bthome.name_model(adv.name)
    sw = "BTHome v2" + (" (encrypted)" if encrypted else "") + (f", firmware {packet.firmware}" if packet.firmware
                                                                   else "")
    _finish(result, adv, "bthome", readings, packet.events, name=_display_name(adv, model),
            manufacturer=manufacturer, model=model, sw_version=sw)


# -------------------------------------------------------------------------------------------- MiBeacon


def _decode_mibeacon(adv: Advertisement, data: bytes, keys: KeyRing, state: DecoderState,
                     result: DecodeResult) -> None:
    result.protocol = "mibeacon"
    if len(data) < 5:
        result.problem(DropReason.TOO_SHORT, f"MiBeacon frame too short ({len(data)} bytes)")
        return
    control = data[0] | (data[1] << 8)
    version = control >> 12
    if control & 0x80:
        result.note(DropReason.UNSUPPORTED, "MiBeacon mesh frame: not supported (xiaomi-ble skips them too)")
        return
    if version < 2:
        result.note(DropReason.UNSUPPORTED, f"MiBeacon v{version} frame: only v2 to v5 are supported")
        return
    product = data[2] | (data[3] << 8)
    frame = data[4]
    pos = 5
    mac_bytes = bytes.fromhex(adv.address.replace(":", ""))
    if control & 0x10:
        if len(data) < pos + 6:
            result.problem(DropReason.TOO_SHORT, "MiBeacon frame too short for its MAC")
            return
        named = data[pos:pos + 6][::-1]
        if named != mac_bytes:
            # someone else's frame relayed or spoofed: not this device's data
            result.note(DropReason.OTHER_DEVICE, f"MiBeacon frame names another device ({named.hex(':')}): ignored")
            return
        pos += 6
    if control & 0x20:
        if len(data) < pos + 1:
            result.problem(DropReason.TOO_SHORT, "MiBeacon frame too short for its capability byte")
            return
        capability_byte = data[pos]
        pos += 1
        if capability_byte & 0x20:
            pos += 1
    model, name, manufacturer = _mibeacon.PRODUCTS.get(product, (f"0x{product:04x}", f"Xiaomi 0x{product:04x}",
                                                                 "Xiaomi"))
    result.trigger_based = model in _mibeacon.SLEEPY_MODELS
    if not control & 0x40:
        result.drop(DropReason.NO_DATA, "MiBeacon frame without objects", Severity.COUNT)  # pairing, presence
        return
    mac_state = state.get(adv.address)
    if mac_state.frame == frame and adv.t - mac_state.frame_t <= REPEAT_WINDOW_S:
        result.repeat(f"MiBeacon frame {frame} again")
        return
    encrypted = bool(control & 0x08)
    legacy = encrypted and version < 4
    if legacy:
        key = keys.aes_key(adv.address)
        if key is None:
            _no_key(result, f"MiBeacon v{version} (legacy) advertisement")
            return
        if len(data) < pos + 7:
            result.problem(DropReason.TOO_SHORT, "encrypted MiBeacon frame too short")
            return
        # xiaomi-ble _decrypt_mibeacon_legacy: nonce = frame head (5) + 3 counter bytes + MAC (5 of 6)
        nonce = data[0:5] + data[-4:-1] + mac_bytes[::-1][:-1]
        payload = _ccm_decrypt_untagged(key, nonce, data[pos:-4])
    elif encrypted:
        cipher = keys.cipher(adv.address)
        if cipher is None:
            _no_key(result, f"MiBeacon v{version} advertisement")
            return
        if keys.is_legacy(adv.address):
            result.problem(DropReason.DECRYPTION_FAILED, f"the bind key set for this device is a 12-byte "
                                                         f"(v2/v3) key; MiBeacon v{version} needs its 16-byte key")
            return
        if len(data) < pos + 9:
            result.problem(DropReason.TOO_SHORT, "encrypted MiBeacon frame too short")
            return
        counter = frame | (int.from_bytes(data[-7:-4], "little") << 8)
        if not _counter_ok(result, adv, counter, mac_state.mi_counter, mac_state.mi_counter_t, "MiBeacon"):
            return
        nonce = mac_bytes[::-1] + data[2:5] + data[-7:-4]
        try:
            payload = cipher.decrypt(nonce, data[pos:-7] + data[-4:], b"\x11")
        except Exception:  # InvalidTag
            result.problem(DropReason.DECRYPTION_FAILED, "MiBeacon decryption failed (wrong bind key?)")
            return
        mac_state.mi_counter, mac_state.mi_counter_t = counter, adv.t
    else:
        payload = data[pos:]
    parsed = _mibeacon.parse_objects(payload, model)
    if legacy and parsed.malformed:
        # No tag to check: a wrong key shows as objects that do not parse (xiaomi-ble judges the same way).
        result.problem(DropReason.DECRYPTION_FAILED, f"MiBeacon v{version} (legacy) decryption gave no valid "
                                                     "objects (wrong bind key?)")
        return
    mac_state.frame, mac_state.frame_t = frame, adv.t
    _add_parsed(result, parsed.problems, parsed.notes)
    sw = f"MiBeacon v{version}" + (" (encrypted)" if encrypted else "")
    _finish(result, adv, "mibeacon", parsed.readings, parsed.events, name=_display_name(adv, name),
            manufacturer=manufacturer, model=model, sw_version=sw)


# --------------------------------------------------------------------------------- pvvx custom (0x181A)


def _decode_custom(adv: Advertisement, data: bytes, state: DecoderState, result: DecodeResult) -> None:
    result.protocol = "pvvx"
    parsed = _pvvx.parse_custom(data, bytes.fromhex(adv.address.replace(":", "")))
    if isinstance(parsed, tuple):
        reason, message = parsed
        result.note(reason, message, "0x181a")
        return
    mac_state = state.get(adv.address)
    if mac_state.custom_frame == data and adv.t - mac_state.custom_t <= REPEAT_WINDOW_S:
        result.repeat("pvvx custom frame again")
        return
    mac_state.custom_frame, mac_state.custom_t = data, adv.t
    _add_parsed(result, [], parsed.notes)
    readings = list(parsed.readings)
    if parsed.reed_switch is not None:
        readings += _opening_readings(result, mac_state, [parsed.reed_switch], trusted=False,
                                      what="pvvx reed switch")
    _finish(result, adv, "pvvx", readings, [], name=_display_name(adv, "Thermometer"), manufacturer="pvvx/ATC",
            model="Thermometer (custom firmware)", sw_version=f"{parsed.format} custom format")
