"""The owner's edits of a device from the UI: its name, area and tags, kept across restarts.

Rule (documented in the README): **an edit made in the UI wins** over the name the adapter reports and
over ``[areas]``/``[tags]`` in config; clearing it (``null`` in ``PATCH /api/devices/{id}``) gives the
device back the adapter's name and the config's area and tags. Tags set in the UI replace the config's
tags of that device (the UI shows and edits the whole list).

Edits live in the store's key-value scope ``device_meta``, one entry per device id::

    {"name": "Desk lamp", "area": "study", "base": {"name": "0x00158d...", "area": null, "tags": []}}

``base`` is what the adapter and config said when last seen. The store persists a device as it is shown
(with the edit applied), so after a restart only ``base`` knows the adapter's name of an edited field;
it is what a cleared edit falls back to until the adapter announces the device again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from gateway.bus import DeviceUpdated
from gateway.model.types import Device

if TYPE_CHECKING:
    from gateway.hub import Hub

__all__ = ["FIELDS", "DeviceMeta", "MetaStorage"]

FIELDS = ("name", "area", "tags")
STORAGE_SCOPE = "device_meta"


class MetaStorage(Protocol):
    """What :meth:`gateway.store.Store.kv` returns (and a dict-backed fake in tests)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


def _shown(device: Device) -> dict[str, Any]:
    return {"name": device.name, "area": device.area, "tags": list(device.tags)}


class DeviceMeta:
    """Applies the owner's edits to the hub's devices. ``attach()`` hooks into the hub; ``detach()`` undoes it.

    Attach it before ``hub.restore()`` if you can; attaching later applies the edits to the devices the
    hub holds already (and says so on the bus).
    """

    def __init__(self, hub: Hub, storage: MetaStorage) -> None:
        self.hub = hub
        self._storage = storage
        # device id -> the name, area and tags from the adapter and config (without the owner's edits)
        self._base: dict[str, dict[str, Any]] = {}

    def attach(self) -> None:
        if self.hub.meta_hook is not None and self.hub.meta_hook != self._apply:
            raise RuntimeError("the hub has another device-metadata hook already")
        self.hub.meta_hook = self._apply
        for device in list(self.hub.devices.values()):
            before = _shown(device)
            self._apply(device, True)
            if _shown(device) != before:
                self.hub.bus.publish(DeviceUpdated(self.hub.clock.time(), device.id))

    def detach(self) -> None:
        if self.hub.meta_hook == self._apply:
            self.hub.meta_hook = None

    # ---------------------------------------------------------------- reading

    def overrides(self, device_id: str) -> dict[str, Any]:
        """The owner's edits of one device: ``{"name": ..., "area": ..., "tags": ...}``, ``None`` where unset."""
        entry = self._entry(device_id)
        return {field: entry.get(field) for field in FIELDS}

    def base(self, device_id: str) -> dict[str, Any] | None:
        """What the adapter and config say about the device (what a cleared edit falls back to)."""
        base = self._base.get(device_id)
        return None if base is None else dict(base)

    # ---------------------------------------------------------------- editing

    def update(self, device_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Set (a value) or clear (``None``) the owner's edits of a device the hub holds. Returns the edits.

        Raises KeyError for a device the hub does not hold, ValueError for a field that is not editable.
        """
        device = self.hub.devices[device_id]
        unknown = set(changes) - set(FIELDS)
        if unknown:
            raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
        entry = self._entry(device_id)
        base = self._base.get(device_id) or _shown(device)
        for field, value in changes.items():
            if value is None:
                entry.pop(field, None)
            else:
                entry[field] = list(value) if field == "tags" else value
        if any(field in entry for field in FIELDS):
            entry["base"] = base
            self._storage.set(device_id, entry)
        else:
            self._storage.delete(device_id)
        self._base[device_id] = base
        before = _shown(device)
        self._show(device, base, entry)
        if _shown(device) != before:
            self.hub.bus.publish(DeviceUpdated(self.hub.clock.time(), device_id))
        return self.overrides(device_id)

    # ---------------------------------------------------------------- hub hook

    def _apply(self, device: Device, restored: bool) -> None:
        """Called by the hub with the adapter's and config's values set on ``device``."""
        entry = self._entry(device.id)
        base = _shown(device)
        if restored:
            # A restored device is stored as it was shown: its edited fields hold the edits, not the
            # adapter's values; those are in the entry's base.
            stored_base = entry.get("base") or {}
            for field in FIELDS:
                if field in entry and field in stored_base:
                    base[field] = stored_base[field]
        elif entry and entry.get("base") != base:
            entry["base"] = base  # the adapter renamed the device, or config moved it: remember
            self._storage.set(device.id, entry)
        self._base[device.id] = base
        if entry:
            self._show(device, base, entry)

    def _entry(self, device_id: str) -> dict[str, Any]:
        entry = self._storage.get(device_id)
        return dict(entry) if isinstance(entry, dict) else {}

    @staticmethod
    def _show(device: Device, base: dict[str, Any], entry: dict[str, Any]) -> None:
        device.name = entry.get("name", base["name"])
        device.area = entry.get("area", base["area"])
        device.tags = tuple(entry.get("tags", base["tags"]))
