"""``[matter]``: the Matter bridge's settings (see gateway.matter)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["MatterSection"]


class MatterSection(BaseModel):
    """The Matter bridge: Hearth's devices in Apple Home, Google Home, Alexa, SmartThings (docs/matter.md).
    A Node sidecar (matter.js) that the gateway starts and supervises; ``hearth matter pair`` shows the
    pairing code."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Run the bridge. It needs Node.js 20.19+ and the sidecar's packages (``npm ci --prefix matter``;
    #: ``scripts/run`` and ``scripts/test`` install them). Its mDNS announcements go to every interface unless
    #: ``mdns_interface`` says one.
    enabled: bool = False
    #: The UDP port Matter controllers reach the bridge on (5540 is Matter's usual one).
    port: int = Field(5540, ge=1, le=65535)
    #: The Node.js executable: a name looked up in PATH, or a path.
    node: str = "node"
    #: The folder with ``bridge.mjs`` and its ``node_modules``; unset: ``$HEARTH_MATTER_DIR`` (``scripts/run`` sets
    #: it to the checkout's ``matter``), else the ``matter`` folder of this Hearth's source tree.
    sidecar_dir: Path | None = None
    #: Announce the bridge (mDNS) on this network interface only (e.g. "eth0"); unset: all of them.
    mdns_interface: str | None = Field(None, min_length=1, max_length=64)
    #: The Matter vendor id the bridge announces. 0xFFF1 (65521) is a test vendor id: controllers show the
    #: bridge as uncertified, which it is.
    vendor_id: int = Field(0xFFF1, ge=1, le=0xFFFE)
    #: The Matter product id the bridge announces.
    product_id: int = Field(0x8000, ge=1, le=0xFFFE)
    #: How much matter.js logs (into Hearth's log, at debug level, prefixed "matter:").
    log_level: Literal["debug", "info", "notice", "warn", "error"] = "notice"
