"""Where a Shelly is reached over HTTP and how often: what the mDNS adapter's config needs, apart from the HTTP
transport (:mod:`adapters.shelly.http`), which is loaded only when there is a Shelly to talk to."""

from __future__ import annotations

__all__ = ["POLL_INTERVAL_S", "REQUEST_TIMEOUT_S", "parse_host"]

# Without a WebSocket the state is only as fresh as the last poll: 30 s keeps a dashboard useful and a
# Shelly (an ESP32 serving one request at a time) unbothered.
POLL_INTERVAL_S = 30.0
# A Shelly answers an RPC in tens of ms on Wi-Fi; 10 s covers a device busy with a cloud reconnect.
REQUEST_TIMEOUT_S = 10.0


def parse_host(text: str, default_port: int = 80) -> tuple[str, int]:
    """``192.168.1.20``, ``192.168.1.20:8080``, ``[fe80::1]:80``, ``shelly.lan`` -> (host, port)."""
    text = text.strip()
    if not text:
        raise ValueError("a host must not be empty")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not host or "/" in host or " " in host:
        raise ValueError(f"{text!r} is not a host or host:port")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
            raise ValueError(f"{text!r}: the port must be 1..65535")
        port = int(port_text)
    return host, port
