"""Room presence from BLE tags, pure: which receiver hears a tag best, with hysteresis, and "away" after silence.

A tag is a configured MAC or an iBeacon (UUID/major/minor: phones rotate their MAC, iBeacon ids stay).
Every receiver (the local scanner, each BLE-to-MQTT gateway) is bound to an area in config. Each receiver's
RSSI for a tag is smoothed (exponential moving average, because single readings jump by 10 dB); the tag's
area is the area of the receiver with the strongest smoothed RSSI, but it only moves to another area when
that one is stronger by ``hysteresis_db`` (or the current receiver stopped hearing the tag), so a tag
between two rooms does not flap. Time comes in with every call (the caller's clock); nothing here waits.
"""

from __future__ import annotations

import uuid as uuid_module
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gateway.sdk import CapabilitySupport, DeviceInfo, Update

__all__ = ["IBEACON_COMPANY_ID", "PresenceTracker", "Tag", "parse_ibeacon"]

IBEACON_COMPANY_ID = 0x004C  # Apple
# A receiver that has not heard a tag for this long no longer holds it in its area.
RECEIVER_STALE_S = 60.0
# Weight of a new reading in the moving average: ~3 readings to follow a real move.
SMOOTHING = 0.3
# The reported RSSI changes state (and so the store) only when it moved at least this much.
RSSI_REPORT_STEP_DB = 3


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    mac: str | None = None  # normalised aa:bb:..
    ibeacon: tuple[str, int | None, int | None] | None = None  # uuid (lowercase, dashed), major, minor

    @property
    def device_id(self) -> str:
        if self.mac is not None:
            return f"ble:{self.mac}"
        assert self.ibeacon is not None
        uuid, major, minor = self.ibeacon
        return "ble:ibeacon:" + ":".join(str(p) for p in (uuid.replace("-", ""), major, minor) if p is not None)


def parse_ibeacon(manufacturer_data: Mapping[int, bytes]) -> tuple[str, int, int] | None:
    """(uuid, major, minor) of an iBeacon frame (Apple 0x004C, type 0x02, length 0x15), else None."""
    data = manufacturer_data.get(IBEACON_COMPANY_ID)
    if data is None or len(data) < 22 or data[0] != 0x02 or data[1] != 0x15:
        return None
    return (str(uuid_module.UUID(bytes=bytes(data[2:18]))), int.from_bytes(data[18:20], "big"),
            int.from_bytes(data[20:22], "big"))


@dataclass(slots=True)
class _Heard:
    smoothed: float
    last_t: float
    area: str | None


@dataclass(slots=True)
class _TagState:
    receivers: dict[str, _Heard] = field(default_factory=dict)
    present: bool | None = None
    area: str | None = None
    area_receiver: str | None = None
    last_seen: float | None = None
    reported_rssi: int | None = None


class PresenceTracker:
    def __init__(self, tags: Iterable[Tag], *, away_after_s: float, hysteresis_db: float = 6.0) -> None:
        self.tags = list(tags)
        self.away_after_s = away_after_s
        self.hysteresis_db = hysteresis_db
        self._by_mac = {t.mac: t for t in self.tags if t.mac is not None}
        self._beacons = [t for t in self.tags if t.ibeacon is not None]
        self._state: dict[str, _TagState] = {t.device_id: _TagState() for t in self.tags}

    def device_infos(self) -> list[DeviceInfo]:
        support = CapabilitySupport(frozenset({"present", "area", "rssi_dbm"}))
        return [DeviceInfo(id=t.device_id, name=t.name, source="ble", model="BLE presence tag", mac=t.mac,
                           components={"main": {"presence": support}}) for t in self.tags]

    def match(self, address: str, manufacturer_data: Mapping[int, bytes]) -> Tag | None:
        tag = self._by_mac.get(address)
        if tag is not None or not self._beacons:
            return tag
        beacon = parse_ibeacon(manufacturer_data)
        if beacon is None:
            return None
        uuid, major, minor = beacon
        for tag in self._beacons:
            assert tag.ibeacon is not None
            want_uuid, want_major, want_minor = tag.ibeacon
            if want_uuid == uuid and want_major in (None, major) and want_minor in (None, minor):
                return tag
        return None

    def observe(self, tag: Tag, receiver: str, area: str | None, rssi: float | None, t: float) -> list[Update]:
        """One sighting of ``tag`` by ``receiver`` (bound to ``area``, or None) at time ``t``."""
        state = self._state[tag.device_id]
        state.last_seen = t if state.last_seen is None else max(state.last_seen, t)
        if rssi is not None:
            heard = state.receivers.get(receiver)
            if heard is None:
                state.receivers[receiver] = _Heard(float(rssi), t, area)
            else:
                heard.smoothed += SMOOTHING * (float(rssi) - heard.smoothed)
                heard.last_t, heard.area = t, area
        out: list[Update] = []
        if state.present is not True:
            state.present = True
            out.append(Update(tag.device_id, "main", "presence", "present", True))
        best = self._choose(state, t)
        if best is not None:
            best_receiver, heard = best
            if state.area_receiver != best_receiver:
                state.area_receiver = best_receiver
                if heard.area != state.area:
                    state.area = heard.area
                    out.append(Update(tag.device_id, "main", "presence", "area", heard.area))
            rounded = round(heard.smoothed)
            if state.reported_rssi is None or abs(rounded - state.reported_rssi) >= RSSI_REPORT_STEP_DB:
                state.reported_rssi = rounded
                out.append(Update(tag.device_id, "main", "presence", "rssi_dbm", rounded))
        return out

    def _choose(self, state: _TagState, t: float) -> tuple[str, _Heard] | None:
        fresh = {name: h for name, h in state.receivers.items()
                 if h.area is not None and t - h.last_t <= RECEIVER_STALE_S}
        if not fresh:
            return None
        strongest = max(fresh.items(), key=lambda item: item[1].smoothed)
        current = fresh.get(state.area_receiver) if state.area_receiver is not None else None
        if current is None:
            return strongest
        if strongest[1].area == current.area:
            # Same room, maybe another receiver in it: follow the strongest without hysteresis.
            return strongest
        if strongest[1].smoothed >= current.smoothed + self.hysteresis_db:
            return strongest
        return state.area_receiver, current  # type: ignore[return-value]

    def expire(self, t: float) -> list[Update]:
        """Tags unseen for ``away_after_s`` become not present (area unknown)."""
        out: list[Update] = []
        for tag in self.tags:
            state = self._state[tag.device_id]
            if state.present and state.last_seen is not None and t - state.last_seen >= self.away_after_s:
                state.present = False
                state.area = state.area_receiver = state.reported_rssi = None
                state.receivers.clear()
                out += [Update(tag.device_id, "main", "presence", "present", False),
                        Update(tag.device_id, "main", "presence", "area", None)]
        return out

    def next_expiry(self) -> float | None:
        deadlines = [s.last_seen + self.away_after_s for s in self._state.values()
                     if s.present and s.last_seen is not None]
        return min(deadlines, default=None)
