"""BLE devices in the hub: decoded advertisements -> devices, state, events, connectivity and availability.

Used by both the local BLE adapter and the BLE-to-MQTT gateway adapter, so a sensor is one device
``ble:<mac>`` with one set of rules whichever receiver heard it. Only advertisements that decode into our
model make devices: a street's hundreds of phones and trackers never do.

Availability comes from silence: a device not heard for longer than its expected interval is offline.
Trigger-based BTHome devices (buttons, door sensors) and sleepy Xiaomi sensors (motion sensors) only send
on events, so they get a day. The sweep runs on the gateway clock; "heard" also counts what the other BLE
adapter pushed (``Device.last_update``).

Nothing is dropped without a word: every reason a decoder gives for not applying (part of) an advertisement
(``adapters.ble._drops``) is counted per device and reason (:meth:`BleDevices.drop_stats`, the adapters'
``stats()``), and said: problems through ``report_bad_input`` (the hub's counter and rate-limited warning,
replay's errors), notes as replay notes and an info line. A note is said once per device, reason and topic
(an object id): what a device sends that we do not use does not change. Only a missing bind key and a
frame naming another device are said again, every ``NOTE_EVERY_S`` (with how many were left unsaid), so a
neighbour's encrypted sensor costs one line an hour, and a forgotten key keeps being mentioned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from adapters.ble.decoders import (
    MAX_TRACKED_DEVICES,
    Advertisement,
    DecodeResult,
    Drop,
    DropReason,
    Severity,
    decode_advertisement,
    device_id_for,
)
from adapters.ble.shared import SharedBle
from gateway.sdk import (
    AdapterContext,
    CapabilitySupport,
    DeviceEventUpdate,
    DeviceInfo,
    Update,
    apply_decoded,
    iso_utc,
)

__all__ = ["BleDevices"]

# Trigger-based devices send on events plus a sparse heartbeat (Shelly BLU: every few hours).
TRIGGER_BASED_INTERVAL_S = 86_400.0
# Connectivity (RSSI, last seen) is pushed at most this often per device when nothing else changed:
# each push is a state change on the bus and, in the end, a row in the store (SD cards wear out).
CONNECTIVITY_EVERY_S = 30.0
_CONNECTIVITY = CapabilitySupport(frozenset({"online", "last_seen", "rssi_dbm"}))
# A repeated note (and its log line) is said at most this often per device: a sensor repeats its frame every
# few seconds, and a neighbour's encrypted sensor would otherwise fill the log and the replay.
NOTE_EVERY_S = 3600.0
_REPEATED_NOTES = frozenset({DropReason.NO_KEY, DropReason.OTHER_DEVICE})
_QUIET_NOTES = frozenset({DropReason.NOT_USED, DropReason.NO_DATA, DropReason.TOO_SHORT})
# Devices beyond this many get their drops counted under OTHER_DEVICES (a busy street has hundreds).
OTHER_DEVICES = "other"


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
        # (device id or OTHER_DEVICES, reason) -> advertisements (or parts) not applied
        self.dropped: Counter[tuple[str, str]] = Counter()
        self._dropped_devices: set[str] = set()
        # (device id, reason, topic) -> (monotonic time of the last note said, how many since were not said)
        self._noted: dict[tuple[str, str, str], tuple[float, int]] = {}
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
                if "contact" in device.support.get("main", {}):
                    # A contact it had: its opening flag was shown to mean something before the restart.
                    self._shared.decoder_state.opening_in_use(device.id[4:])
        self._schedule()

    def stop(self) -> None:
        if self._timer is None:
            return  # not started, or already stopped
        self._timer.cancel()
        self._timer = None
        summary = self.drop_summary()
        if summary:
            # What `hearth replay` lists at the end of a capture, and the log of a stopping gateway.
            self._ctx.log.info("ble: %s", summary)
            self._say_notes([summary])

    # ------------------------------------------------------------------ drops

    def drop_stats(self) -> dict[str, Any]:
        """Advertisements (or parts) not applied: ``{"by_reason": {reason: n}, "by_device": {id: {reason: n}}}``."""
        by_reason: Counter[str] = Counter()
        by_device: dict[str, dict[str, int]] = {}
        for (device_id, reason), count in sorted(self.dropped.items()):
            by_reason[reason] += count
            by_device.setdefault(device_id, {})[reason] = count
        return {"by_reason": dict(sorted(by_reason.items())), "by_device": by_device}

    def drop_summary(self) -> str:
        stats = self.drop_stats()["by_device"]
        if not stats:
            return ""
        parts = [f"{device_id} " + ", ".join(f"{reason} {n}" for reason, n in reasons.items())
                 for device_id, reasons in stats.items()]
        return "advertisements (or parts) not applied, by device and reason: " + "; ".join(parts)

    def _count(self, device_id: str, reason: str) -> None:
        if device_id not in self._dropped_devices:
            if len(self._dropped_devices) >= MAX_TRACKED_DEVICES:
                device_id = OTHER_DEVICES
            else:
                self._dropped_devices.add(device_id)
        self.dropped[(device_id, reason)] += 1

    def _report(self, device_id: str, drop: Drop, receiver: str) -> None:
        """Count one drop, and say it where it belongs (see the module's docstring)."""
        self._count(device_id, drop.reason.value)
        if drop.severity is Severity.PROBLEM:
            self._ctx.report_bad_input(f"ble ({receiver}): {drop.message}")
        elif drop.severity is Severity.NOTE:
            key = (device_id, drop.reason.value, drop.topic)
            now = self._ctx.clock.monotonic()
            last = self._noted.get(key)
            if last is not None and (drop.reason not in _REPEATED_NOTES or now - last[0] < NOTE_EVERY_S):
                self._noted[key] = (last[0], last[1] + 1)
                return
            if len(self._noted) >= 4 * MAX_TRACKED_DEVICES:
                self._noted.clear()  # bounded; the worst case is a note said again early
            self._noted[key] = (now, 0)
            unsaid = f" ({last[1]} more since the last note)" if last is not None and last[1] else ""
            message = f"{drop.message} [{drop.reason}]{unsaid}"
            # What the user may act on (a key to add, a frame nobody knows) is info; what we only do not use
            # (an object with no capability) is debug, like every codec's notes.
            log = self._ctx.log.debug if drop.reason in _QUIET_NOTES else self._ctx.log.info
            log("ble (%s): %s", receiver, message)
            self._say_notes([message])

    def _say_notes(self, notes: list[str]) -> None:
        # The SDK's way for what a codec understood and did not use: debug log, listed by `hearth replay`.
        apply_decoded(self._ctx, SimpleNamespace(notes=notes))

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
        device_id = result.device_id
        for drop in result.drops:
            self._report(device_id, drop, receiver)
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
