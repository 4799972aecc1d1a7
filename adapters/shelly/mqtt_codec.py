"""Shelly Gen2+ over MQTT, pure: topics and payloads in, :class:`~adapters.shelly.codec.Decoded` out.

Topics of one device under its ``topic_prefix`` (default: the device id, e.g. ``shellyplus1pm-441793d69718``;
users may set anything, ``aiida/<uuid>`` included):

* ``<prefix>/online`` ``true``/``false`` (retained; the device's last will): availability;
* ``<prefix>/events/rpc``: notification frames (NotifyStatus, NotifyFullStatus, NotifyEvent), whose ``src`` is
  the device id;
* ``<prefix>/status/<component:id>``: one component's full status (``status_ntf``). Enough to build the device
  (:meth:`~adapters.shelly.codec.ShellyDevice.apply_component_status`): a sleeping battery device (Plus H&T,
  H&T Gen3, Plus Smoke, Flood Gen4) never answers the adapter's requests, and may publish nothing else.

The device id comes from a frame's ``src`` (or from a ``Shelly.GetDeviceInfo`` reply, or the ``id`` a Wall
Display's ``status/sys`` carries), never from the prefix, except that a prefix that *is* a Shelly id (the default)
is taken as one. Messages for a prefix whose device is not known yet are kept (last per topic, bounded) and
decoded once it is; that is said once per prefix (a note), since under a custom prefix a sleeping device that
publishes only status topics is known only once it sends a frame or answers.

A new prefix is asked for its device info and status once (``discover``), unless its id names a model that
sleeps: it would never answer.

The model itself (components, units, commands) is :mod:`adapters.shelly.codec`, shared with the HTTP transport.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from adapters.shelly.codec import (
    SOURCE,
    Decoded,
    ShellyDevice,
    looks_like_shelly_id,
    model_for,
    parse_json,
    reads_status_key,
)
from gateway.sdk import CodecError

__all__ = ["MAX_PENDING_TOPICS", "ShellyMqttCodec", "TopicDecoded"]

# Kept per unknown prefix until its device id is learnt; bounded so junk topics cannot grow memory.
MAX_PENDING_TOPICS = 500


@dataclass(slots=True)
class TopicDecoded(Decoded):
    """What a message means, plus the prefixes the adapter should ask for GetDeviceInfo/GetStatus."""

    discover: list[str] = field(default_factory=list)


class ShellyMqttCodec:
    """Every Shelly on one broker. Pure: holds only what the devices said."""

    def __init__(self, topic_prefixes: Iterable[str] = ()) -> None:
        self.fixed_prefixes = tuple(topic_prefixes)
        self.devices: dict[str, ShellyDevice] = {}  # device id -> device
        self.device_of_prefix: dict[str, str] = {}  # prefix -> device id
        self.prefix_of_device: dict[str, str] = {}
        self.seen_prefixes: set[str] = set()
        self._online: dict[str, bool] = {}  # prefix -> last online payload
        self._pending: dict[str, bytes] = {}
        self._noted_pending: set[str] = set()  # prefixes whose kept status topics were said

    # -- routing

    def split(self, topic: str) -> tuple[str, str] | None:
        """(prefix, rest) for ``<prefix>/online``, ``<prefix>/events/rpc``, ``<prefix>/status/<key>``."""
        for suffix in ("/online", "/events/rpc"):
            if topic.endswith(suffix) and len(topic) > len(suffix):
                return topic[: -len(suffix)], suffix[1:]
        head, sep, key = topic.rpartition("/status/")
        if sep and head and key and "/" not in key:
            return head, "status/" + key
        return None

    def device_for_prefix(self, prefix: str) -> ShellyDevice | None:
        dev_id = self.device_of_prefix.get(prefix)
        return self.devices.get(dev_id) if dev_id else None

    def decode(self, topic: str, payload: bytes) -> TopicDecoded:
        out = TopicDecoded()
        parts = self.split(topic)
        if parts is None:
            return out  # not a Shelly topic shape (our subscriptions are wider than the convention)
        prefix, rest = parts
        # Only a Shelly publishes <prefix>/online true|false and events/rpc: those trigger discovery.
        new_prefix = prefix not in self.seen_prefixes and (
            rest == "events/rpc" or (rest == "online" and payload.strip().lower() in (b"true", b"false")))
        if new_prefix:
            self.seen_prefixes.add(prefix)
        self._decode_rest(prefix, rest, topic, payload, out)
        if new_prefix and not self._sleeps(prefix):
            out.discover.append(prefix)
        return out

    def _sleeps(self, prefix: str) -> bool:
        device = self.device_for_prefix(prefix)
        if device is not None:
            return device.sleeps
        model = model_for(prefix) if looks_like_shelly_id(prefix) else None
        return model is not None and model.sleeps

    def _decode_rest(self, prefix: str, rest: str, topic: str, payload: bytes, out: TopicDecoded) -> None:
        if rest == "online":
            self._decode_online(prefix, payload, out)
            return
        if not payload:
            return  # a retained message being cleared
        if rest == "events/rpc":
            self._decode_frame(prefix, topic, payload, out)
            return
        key = rest[len("status/"):]
        if not reads_status_key(key):
            return  # cloud, mqtt, ble, ws, ht_ui, script:1 …: nothing of ours, not worth parsing or keeping
        device = self._device_or_default(prefix, out)
        if device is None and key == "sys":
            device = self._bind_by_sys(prefix, payload, out)
        if device is None:
            self._buffer(topic, payload)
            if prefix not in self._noted_pending and len(self._noted_pending) < MAX_PENDING_TOPICS:
                self._noted_pending.add(prefix)
                out.notes.append(
                    f"{SOURCE} {prefix}: status topics kept until the device's id is known (from a frame on "
                    f"{prefix}/events/rpc or an answer to Shelly.GetDeviceInfo); under a custom topic prefix a "
                    f"sleeping device that publishes only status topics cannot be told apart, so give it the "
                    f"default prefix (its device id) or turn on RPC notifications over MQTT")
            return
        try:
            status = parse_json(payload)
        except CodecError as err:
            out.problems.append(f"{SOURCE} {topic}: {err}")
            return
        out.extend(device.apply_component_status(key, status))

    def _bind_by_sys(self, prefix: str, payload: bytes, out: TopicDecoded) -> ShellyDevice | None:
        """A Wall Display's ``status/sys`` names the device (``"id": "ShellyWallDisplay-00082261E102"``)."""
        try:
            status = parse_json(payload)
        except CodecError:
            return None  # said when decoded as a status
        shelly_id = status.get("id") if isinstance(status, dict) else None
        if not isinstance(shelly_id, str) or not looks_like_shelly_id(shelly_id):
            return None
        return self.bind(prefix, shelly_id, out)

    def _decode_online(self, prefix: str, payload: bytes, out: TopicDecoded) -> None:
        word = payload.strip().lower()
        if word not in (b"true", b"false"):
            return  # someone else's "<x>/online" (not a Shelly's true/false): not ours to judge
        online = word == b"true"
        if not online and self._sleeps(prefix):
            # A battery Shelly says "offline" each time it goes back to sleep: that is not being unreachable
            # (as ha-shellies-discovery-gen2 treats these models). Its next wake-up says it is still there.
            return
        self._online[prefix] = online
        device = self._device_or_default(prefix, out)
        if device is not None and device.info is not None:
            out.availability.append((device.id, online))

    def _decode_frame(self, prefix: str, topic: str, payload: bytes, out: TopicDecoded) -> None:
        try:
            frame = parse_json(payload)
        except CodecError as err:
            out.problems.append(f"{SOURCE} {topic}: {err}")
            return
        src = frame.get("src") if isinstance(frame, dict) else None
        if not isinstance(src, str) or not src.strip():
            out.problems.append(f"{SOURCE} {topic}: notification without a src (device id): {payload[:80]!r}")
            return
        device = self.bind(prefix, src, out)
        out.extend(device.apply_notification(frame))

    def _device_or_default(self, prefix: str, out: TopicDecoded) -> ShellyDevice | None:
        device = self.device_for_prefix(prefix)
        if device is None and looks_like_shelly_id(prefix.rsplit("/", 1)[-1]) and "/" not in prefix:
            device = self.bind(prefix, prefix, out)
        return device

    def bind(self, prefix: str, shelly_id: str, out: Decoded) -> ShellyDevice:
        """The device ``shelly_id`` publishes under ``prefix`` (learnt from a frame's src or a reply)."""
        dev_id = "shelly:" + shelly_id.strip().lower()
        device = self.devices.get(dev_id)
        if device is None:
            device = self.devices[dev_id] = ShellyDevice(shelly_id)
        if self.device_of_prefix.get(prefix) != dev_id:
            self.device_of_prefix[prefix] = dev_id
            self.prefix_of_device[dev_id] = prefix
            pending = [(t, p) for t, p in self._pending.items() if t.startswith(prefix + "/")]
            for topic, payload in pending:
                del self._pending[topic]
                decoded = self.decode(topic, payload)
                out.extend(decoded)
        return device

    def _buffer(self, topic: str, payload: bytes) -> None:
        if topic in self._pending or len(self._pending) < MAX_PENDING_TOPICS:
            self._pending.pop(topic, None)
            self._pending[topic] = payload

    def after_upserts(self, decoded: Decoded) -> None:
        """Availability known before a device was described is applied once it is."""
        for info in decoded.upserts:
            prefix = self.prefix_of_device.get(info.id)
            if prefix is not None and prefix in self._online:
                decoded.availability.append((info.id, self._online[prefix]))

    # -- RPC results the adapter asked for (GetDeviceInfo / GetStatus)

    def apply_result(self, prefix: str, method: str, src: str | None, result: Any) -> Decoded:
        out = TopicDecoded()
        shelly_id = src
        if method == "Shelly.GetDeviceInfo" and isinstance(result, dict) and isinstance(result.get("id"), str):
            shelly_id = result["id"]
        if not isinstance(shelly_id, str) or not shelly_id.strip():
            out.problems.append(f"{SOURCE} {prefix}: {method} reply without a device id")
            return out
        device = self.bind(prefix, shelly_id, out)
        if method == "Shelly.GetDeviceInfo":
            out.extend(device.apply_device_info(result))
        elif method == "Shelly.GetStatus":
            out.extend(device.apply_full_status(result))
        return out

    def encode_target(self, device_id: str) -> tuple[ShellyDevice, str]:
        device = self.devices.get(device_id)
        prefix = self.prefix_of_device.get(device_id)
        if device is None or prefix is None:
            raise CodecError(f"{device_id} has not been seen on MQTT (yet)")
        return device, prefix
