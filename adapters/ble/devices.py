"""BLE devices in the hub: decoded advertisements -> devices, state, events, connectivity and availability.

Used by both the local BLE adapter and the BLE-to-MQTT gateway adapter, so a sensor is one device
``ble:<mac>`` with one set of rules whichever receiver heard it. Only advertisements that decode into our
model make devices: a street's hundreds of phones and trackers never do.

Availability comes from silence: a device not heard for longer than its expected interval is offline.
Trigger-based BTHome devices (buttons, door sensors) only send on events, so they get a day. The sweep
runs on the gateway clock; "heard" also counts what the other BLE adapter pushed (``Device.last_update``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.ble.decoders import Advertisement, DecodeResult, decode_advertisement, device_id_for
from adapters.ble.shared import SharedBle
from gateway.sdk import AdapterContext, CapabilitySupport, DeviceEventUpdate, DeviceInfo, Update, iso_utc

__all__ = ["BleDevices"]

# Trigger-based devices send on events plus a sparse heartbeat (Shelly BLU: every few hours).
TRIGGER_BASED_INTERVAL_S = 86_400.0
# Connectivity (RSSI, last seen) is pushed at most this often per device when nothing else changed:
# each push is a state change on the bus and, in the end, a row in the store (SD cards wear out).
CONNECTIVITY_EVERY_S = 30.0
_CONNECTIVITY = CapabilitySupport(frozenset({"online", "last_seen", "rssi_dbm"}))


class BleDevices:
    def __init__(self, ctx: AdapterContext, shared: SharedBle, *, expected_interval_s: float,
                 device_intervals: Mapping[str, float] | None = None) -> None:
        self._ctx = ctx
        self._shared = shared
        self._expected_s = expected_interval_s
        self._intervals = dict(device_intervals or {})
        self._last_heard: dict[str, float] = {}  # device id -> epoch s
        self._trigger_based: set[str] = set()
        self._support: dict[str, dict[str, dict[str, frozenset[str]]]] = {}
        self._last_connectivity: dict[str, float] = {}
        self._missing_key_reported: set[str] = set()
        # receiver -> RSSI per device id: which gateway hears what, and how well (for presence and the UI).
        self.rssi_by_receiver: dict[str, dict[str, tuple[int, float]]] = {}
        self._timer: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        now = self._ctx.clock.time()
        for device in self._ctx.devices():
            if device.id.startswith("ble:") and device.id.count(":") == 6:
                # Restored from the store: offline too if it never comes back.
                self._last_heard[device.id] = device.last_update or now
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        # A quarter of the shortest interval keeps "offline" within 25 % of when it is due.
        every = max(1.0, min(60.0, self._expected_s / 4, *(v / 4 for v in self._intervals.values())))
        self._timer = self._ctx.clock.call_later(every, self._sweep)

    def _sweep(self) -> None:
        try:
            self.check_availability(self._ctx.clock.time())
        except Exception as err:
            self._ctx.log.exception("ble: availability sweep failed")
            self._ctx.report_bad_input(f"ble: availability sweep failed: {err!r}")
        finally:
            self._schedule()

    def check_availability(self, now: float) -> None:
        ctx = self._ctx
        for device_id, heard in list(self._last_heard.items()):
            device = ctx.device(device_id)
            if device is None:
                del self._last_heard[device_id]
                continue
            last = max(heard, device.last_update or 0.0)
            if now - last > self.interval_for(device_id) and device.available is not False:
                ctx.set_available(device_id, False)
                ctx.push([Update(device_id, "main", "connectivity", "online", False)])

    def interval_for(self, device_id: str) -> float:
        mac = device_id[4:]
        if mac in self._intervals:
            return self._intervals[mac]
        return TRIGGER_BASED_INTERVAL_S if device_id in self._trigger_based else self._expected_s

    # ------------------------------------------------------------------ the hot path

    def handle(self, adv: Advertisement, receiver: str) -> DecodeResult:
        """Decode and apply one advertisement heard by ``receiver``. Never raises."""
        ctx = self._ctx
        result = decode_advertisement(adv, self._shared.keys, self._shared.decoder_state)
        try:
            self._apply(adv, receiver, result)
        except Exception as err:  # a broken hub call must cost one advertisement, not the receiver
            ctx.log.exception("ble: failed to apply an advertisement of %s", adv.address)
            ctx.report_bad_input(f"ble: could not apply advertisement of {adv.address}: {err!r}")
        return result

    def _apply(self, adv: Advertisement, receiver: str, result: DecodeResult) -> None:
        ctx = self._ctx
        for problem in result.problems:
            ctx.report_bad_input(f"ble ({receiver}): {problem}")
        if result.needs_key and result.device_id not in self._missing_key_reported:
            self._missing_key_reported.add(result.device_id)
            ctx.log.info("ble: %s sends encrypted data; add its bind key under keys to read it", adv.address)
        device_id = result.device_id
        known = device_id in self._last_heard
        if not (result.decoded or (result.duplicate and known)):
            return
        self._last_heard[device_id] = adv.t
        if result.trigger_based:
            self._trigger_based.add(device_id)
        if adv.rssi is not None:
            self.rssi_by_receiver.setdefault(receiver, {})[device_id] = (adv.rssi, adv.t)
        if result.info is not None:
            self.ensure_device(result.info)
        updates = list(result.updates)
        device = ctx.device(device_id)
        if device is not None and device.available is not True:
            ctx.set_available(device_id, True)
            updates.append(Update(device_id, "main", "connectivity", "online", True))
            self._last_connectivity.pop(device_id, None)
        if adv.t - self._last_connectivity.get(device_id, float("-inf")) >= CONNECTIVITY_EVERY_S:
            self._last_connectivity[device_id] = adv.t
            updates.append(Update(device_id, "main", "connectivity", "last_seen", iso_utc(adv.t)))
            if adv.rssi is not None and -150 <= adv.rssi <= 20:
                updates.append(Update(device_id, "main", "connectivity", "rssi_dbm", int(adv.rssi)))
        if updates:
            ctx.push(updates)
        for event in result.events:
            ctx.push_event(event)

    def ensure_device(self, info: DeviceInfo) -> None:
        """Upsert when the device is new or shows capabilities it did not have; merge, never shrink.

        A device may be reported by both BLE adapters (and as a presence tag): each only ever adds to
        what the hub knows, so neither takes the other's capabilities away.
        """
        ctx = self._ctx
        wanted = {comp: {cap: sup.attributes for cap, sup in caps.items()} for comp, caps in info.components.items()}
        wanted.setdefault("main", {}).setdefault("connectivity", _CONNECTIVITY.attributes)
        known = self._support.get(info.id)
        if known is not None and all(
            attrs <= known.get(comp, {}).get(cap, frozenset())
            for comp, caps in wanted.items() for cap, attrs in caps.items()
        ):
            return
        existing = ctx.device(info.id)
        merged: dict[str, dict[str, frozenset[str]]] = {}
        if existing is not None:
            for comp, caps in existing.support.items():
                for cap, sup in caps.items():
                    merged.setdefault(comp, {})[cap] = sup.attributes
        for comp, caps in wanted.items():
            for cap, attrs in caps.items():
                merged.setdefault(comp, {})[cap] = merged.get(comp, {}).get(cap, frozenset()) | attrs
        self._support[info.id] = merged
        if existing is not None and all(
            attrs <= existing.support.get(comp, {}).get(cap, CapabilitySupport(frozenset())).attributes
            for comp, caps in merged.items() for cap, attrs in caps.items()
        ):
            return
        ctx.upsert_device(DeviceInfo(
            id=info.id, name=existing.name if existing is not None else info.name, source="ble",
            manufacturer=info.manufacturer or (existing.manufacturer if existing else None),
            model=info.model or (existing.model if existing else None),
            sw_version=info.sw_version or (existing.sw_version if existing else None),
            mac=info.mac, components={comp: {cap: CapabilitySupport(attrs) for cap, attrs in caps.items()}
                                      for comp, caps in merged.items()},
        ))

    def decoded_fields_device(self, device_id: str, name: str, manufacturer: str | None, model: str | None,
                              updates: list[Update], t: float, receiver: str, rssi: int | None,
                              events: Sequence[DeviceEventUpdate] = ()) -> None:
        """Apply values (and button presses) a gateway decoded itself (Theengs fields) for a device we cannot
        decode raw."""
        ctx = self._ctx
        components: dict[str, dict[str, set[str]]] = {}
        for update in updates:
            components.setdefault(update.component, {}).setdefault(update.capability, set()).add(update.attribute)
        for event in events:
            components.setdefault(event.component, {}).setdefault(event.capability, set())
        self.ensure_device(DeviceInfo(
            id=device_id, name=name, source="ble", manufacturer=manufacturer, model=model, mac=device_id[4:],
            components={c: {cap: CapabilitySupport(frozenset(a)) for cap, a in caps.items()}
                        for c, caps in components.items()}))
        self._last_heard[device_id] = t
        if rssi is not None:
            self.rssi_by_receiver.setdefault(receiver, {})[device_id] = (rssi, t)
        extra: list[Update] = []
        device = ctx.device(device_id)
        if device is not None and device.available is not True:
            ctx.set_available(device_id, True)
            extra.append(Update(device_id, "main", "connectivity", "online", True))
        if t - self._last_connectivity.get(device_id, float("-inf")) >= CONNECTIVITY_EVERY_S:
            self._last_connectivity[device_id] = t
            extra.append(Update(device_id, "main", "connectivity", "last_seen", iso_utc(t)))
            if rssi is not None and -150 <= rssi <= 20:
                extra.append(Update(device_id, "main", "connectivity", "rssi_dbm", int(rssi)))
        ctx.push([*updates, *extra])
        for event in events:
            ctx.push_event(event)

    @staticmethod
    def id_for(mac: str) -> str:
        return device_id_for(mac)
