"""``GET /api/matter``: the Matter bridge's state and its pairing codes (the web UI's Matter panel).

The answer is ``{"enabled": false}`` when ``[matter] enabled`` is off; otherwise the sidecar's state (``starting``,
``running``, ``restarting``, ``failed``), the pairing codes (``pairing.manual_code``, ``pairing.qr_payload``), the
controllers that paired (``fabric_list``), the bridged endpoints and what does not map (``unmapped``: per
device, the capabilities or attributes the bridge does not show, and why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from gateway.api.responses import _json

__all__ = ["MATTER_KEY", "add_matter_routes"]

#: Returns the running bridge (gateway.matter.sidecar.MatterBridge), or None when it is off.
MatterSource = Callable[[], Any]
MATTER_KEY = web.AppKey("hearth.matter", object)


async def _get_matter(request: web.Request) -> web.Response:
    """The Matter bridge: whether it runs, its pairing codes, the controllers that paired, and the devices or
    attributes it cannot show."""
    bridge = request.app[MATTER_KEY]()  # type: ignore[operator]
    if bridge is None:
        return _json({"enabled": False})
    return _json(bridge.details())


def add_matter_routes(app: web.Application, source: MatterSource) -> None:
    """Serve ``GET /api/matter`` from ``source`` (a callable: the bridge starts after the routes are fixed)."""
    app[MATTER_KEY] = source
    app.router.add_get("/api/matter", _get_matter)
