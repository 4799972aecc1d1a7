"""The Matter bridge: Hearth's devices as bridged endpoints of a Matter node, for Apple Home, Google Home,
Alexa, SmartThings and any other Matter controller.

The Matter side is a Node sidecar built on matter.js (``matter/bridge.mjs``); this package owns what Hearth does
for it: its settings (``[matter]``), the pairing data (generated once, kept in ``<data>/matter/``), the table of
capability -> device type (:mod:`gateway.matter.mapping`), and the supervisor that starts it, restarts it with
back-off, reports its health and stops it (:mod:`gateway.matter.sidecar`). Light to import: nothing here starts
a process or imports aiohttp until asked.
"""

from gateway.matter.settings import MatterSection

__all__ = ["MatterSection"]
