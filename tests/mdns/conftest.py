"""mDNS tests: the multicasting ones run only inside a private network namespace with nothing but loopback
(``scripts/test`` makes one with ``unshare -n``); anywhere else they skip, with the reason, so that no mDNS
packet ever leaves the machine (DESIGN.md "Testing and safety")."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest


def interface_names() -> list[str]:
    try:
        return sorted(name for _, name in socket.if_nameindex())
    except OSError:
        net = Path("/sys/class/net")
        return sorted(p.name for p in net.iterdir()) if net.is_dir() else []


def in_private_namespace() -> bool:
    """Only ``lo`` exists: a network namespace of our own, where multicast cannot reach a real network."""
    return interface_names() == ["lo"]


multicast = [
    pytest.mark.mdns,
    pytest.mark.skipif(
        not in_private_namespace(),
        reason="sends mDNS multicast: runs only in a private network namespace with loopback only "
               f"(interfaces here: {', '.join(interface_names()) or 'none'}); use scripts/test",
    ),
]
