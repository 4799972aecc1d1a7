"""``hearth matter pair`` and ``hearth matter reset``: commissioning the bridge from a terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from gateway.matter.pairing import PairingError, fabric_dir, load_or_create, matter_dir, pairing_info, reset_fabrics
from gateway.matter.settings import MatterSection

__all__ = ["pair_command", "reset_command", "sidecar_running"]


def sidecar_running(data_dir: Path) -> int | None:
    """The pid of a running sidecar of this data directory (its supervisor keeps ``sidecar.pid``), or None."""
    try:
        pid = int((matter_dir(data_dir) / "sidecar.pid").read_text(encoding="utf-8").strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def pair_command(settings: MatterSection, data_dir: Path, out: TextIO, *, as_json: bool = False) -> int:
    info: dict[str, Any] = {**pairing_info(load_or_create(data_dir), settings.vendor_id, settings.product_id),
                            "enabled": settings.enabled, "port": settings.port}
    if as_json:
        json.dump(info, out, indent=2)
        out.write("\n")
        return 0
    print(f"Manual pairing code: {info['manual_code_formatted']}", file=out)
    print(f"QR code payload:     {info['qr_payload']}", file=out)
    print("In Apple Home, Google Home, Alexa or SmartThings: add a device, choose Matter, and type the code (or "
          "scan a QR code made from the payload). Several controllers can pair, one after the other.", file=out)
    if not settings.enabled:
        print("The bridge is off: set [matter] enabled = true in the config and restart Hearth.", file=out)
    return 0


def reset_command(data_dir: Path, out: TextIO, *, yes: bool = False) -> int:
    pid = sidecar_running(data_dir)
    if pid is not None:
        raise PairingError(f"the Matter bridge runs (pid {pid}): stop Hearth first, then reset")
    if not yes:
        if not sys.stdin.isatty():
            raise PairingError("no terminal to ask on: add --yes to forget every paired controller")
        answer = input("Forget every controller paired with the bridge (Apple Home, Google Home, ...)? "
                       "They must pair again. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing changed.", file=out)
            return 1
    if reset_fabrics(data_dir):
        print(f"Every paired controller is forgotten ({fabric_dir(data_dir)} removed); the pairing code stays.",
              file=out)
    else:
        print("No controller had paired; nothing to forget.", file=out)
    return 0
