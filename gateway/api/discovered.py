"""``GET /api/discovered``: the devices seen on the network (mDNS) and who can take them.

Each item: ``id``, ``family``, ``type``/``types`` (service types), ``name``, ``instance``, ``model``,
``addresses``/``address``, ``port``, ``txt``, ``adapter`` (which adapter can take it, or null), ``support``
(``"supported"`` or ``"seen only"``), ``device_id`` (the Hearth device it is, when supported), ``available``,
``first_seen``/``last_seen`` (ISO-8601 UTC) and, for a device being talked to, ``connection``.
Query filters: ``?support=supported|seen only``, ``?family=shelly``, ``?available=true|false``.
The answer is ``{"discovered": [...], "mdns": "on" | "off"}``: ``off`` when no mDNS discovery is running
(the mdns adapter is disabled, as in ``hearth demo``, or not started), so an empty list can say why.
Bearer auth applies as to every ``/api`` route (the middleware of :mod:`gateway.api.app`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from gateway.api.keys import HUB_KEY
from gateway.api.responses import _error, _json

__all__ = ["DISCOVERED_KEY", "DiscoveredSource", "add_discovered_routes"]


@runtime_checkable
class DiscoveredSource(Protocol):
    """Anything that can list what it discovered (the mDNS adapter does)."""

    def discovered(self) -> list[dict[str, Any]]: ...


#: A source, or a callable returning the current one (or None while it is not running): the mDNS adapter
#: is a new instance after each restart, so the gateway passes ``lambda: supervisor.instance("mdns")``.
Registry = DiscoveredSource | Callable[[], DiscoveredSource | list[dict[str, Any]] | None]

DISCOVERED_KEY = web.AppKey("hearth.discovered", object)
_SUPPORT = ("supported", "seen only")
_FILTERS = ("support", "family", "available")


def _current(registry: Any) -> tuple[list[dict[str, Any]], bool]:
    """What the source found, and whether a source is running at all."""
    source = registry
    if not isinstance(source, DiscoveredSource) and callable(source):
        source = source()
    if source is None:
        return [], False
    if isinstance(source, list):
        return source, True
    if isinstance(source, DiscoveredSource):
        return source.discovered(), True
    return [], False


async def _list_discovered(request: web.Request) -> web.Response:
    """What mDNS discovery found on the network, "supported" or "seen only": ``?support=``, ``?family=``,
    ``?available=`` filter."""
    query = request.query
    unknown = sorted(set(query) - set(_FILTERS))
    if unknown:
        return _error(400, f"unknown filter {unknown[0]!r} (filters: {', '.join(_FILTERS)})",
                      field=f"query.{unknown[0]}")
    support = query.get("support")
    if support is not None and support not in _SUPPORT:
        return _error(400, "support: expected 'supported' or 'seen only'", field="query.support")
    available_text = query.get("available")
    if available_text is not None and available_text not in ("true", "false"):
        return _error(400, "available: expected true or false", field="query.available")
    family = query.get("family")
    items, running = _current(request.app[DISCOVERED_KEY])
    # One availability: a discovered entry that is a Hearth device is as available as the device's own
    # connection says (zeroconf keeps a frozen device's record for up to its TTL, an hour).
    devices = request.app[HUB_KEY].devices
    items = [_with_device_availability(item, devices) for item in items]
    if support is not None:
        items = [i for i in items if i.get("support") == support]
    if family is not None:
        items = [i for i in items if i.get("family") == family]
    if available_text is not None:
        items = [i for i in items if i.get("available") is (available_text == "true")]
    return _json({"discovered": items, "mdns": "on" if running else "off"})


def _with_device_availability(item: dict[str, Any], devices: dict[str, Any]) -> dict[str, Any]:
    device = devices.get(item.get("device_id") or "")
    if device is None or device.available is None or device.available == item.get("available"):
        return item
    return {**item, "available": device.available, "announced": item.get("available")}


def add_discovered_routes(app: web.Application, registry: Registry) -> None:
    """Serve ``GET /api/discovered`` from ``registry`` (see :data:`Registry`)."""
    app[DISCOVERED_KEY] = registry
    app.router.add_get("/api/discovered", _list_discovered)
