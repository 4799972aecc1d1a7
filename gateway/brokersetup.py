"""``hearth mqtt secure``: credentials and an ACL for a Mosquitto reachable beyond loopback.

The broker is the house's trust boundary: any client that may publish ``zigbee2mqtt/bridge/devices`` can make
every Zigbee device vanish, and any that may publish a ``/set`` topic can switch the house. A Mosquitto that
listens on loopback only (what ``./scripts/run`` starts) is safe as it is; one that Zigbee2MQTT, Tasmota or a
Shelly on another machine must reach needs a user per client and an ACL that keeps each bridge to its own
topics. This writes the three files Mosquitto reads (``mosquitto.conf``, ``passwd``, ``acl``) and says once
the passwords it made up.

The password file uses Mosquitto 2's own format (``$7$``: PBKDF2-HMAC-SHA512), so ``mosquitto_passwd`` is not
needed on the machine that runs Hearth.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import HearthError

# Mosquitto's own choice for `mosquitto_passwd` ($7$, 101 iterations of PBKDF2-SHA512, a 12-byte salt).
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12

# The topics each kind of bridge publishes and subscribes to, under its default prefixes (the adapters' own).
PRESETS: dict[str, tuple[str, ...]] = {
    "zigbee2mqtt": ("zigbee2mqtt/#",),
    "tasmota": ("tele/#", "stat/#", "cmnd/#", "tasmota/#"),
    "shelly": ("shellies/#", "shelly/#", "+/events/rpc", "+/online", "+/rpc", "+/status/#"),
    "homie": ("homie/#",),
    "homeassistant": ("homeassistant/#",),
}
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Client:
    """One MQTT user: its name, the topic filters it may read and write, its password (said once)."""

    name: str
    topics: tuple[str, ...]
    password: str


def parse_client(spec: str) -> tuple[str, tuple[str, ...]]:
    """``zigbee2mqtt`` (a preset) or ``washer=acme/#,acme-cmd/#``: a name and its topic filters."""
    name, _, topics = spec.partition("=")
    name = name.strip()
    if not _NAME.match(name):
        raise HearthError(f"--client {spec!r}: a name is lowercase letters, digits, '-' and '_' (e.g. zigbee2mqtt)")
    if name == "hearth":
        raise HearthError("--client hearth: that user is the gateway's own, made every time")
    if topics:
        filters = tuple(t.strip() for t in topics.split(",") if t.strip())
    elif name in PRESETS:
        filters = PRESETS[name]
    else:
        raise HearthError(f"--client {name!r}: not a known bridge ({', '.join(sorted(PRESETS))}); say its topics: "
                          f"--client {name}=prefix/#")
    for topic in filters:
        if any(c in topic for c in "\0\n\r ") or not topic:
            raise HearthError(f"--client {spec!r}: {topic!r} is not a topic filter")
    return name, filters


def password_line(user: str, password: str, salt: bytes | None = None) -> str:
    """A line of Mosquitto's password file (``user:$7$101$salt$hash``)."""
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS)
    return f"{user}:$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def acl_text(clients: list[Client]) -> str:
    lines = ["# Written by `hearth mqtt secure`. Each bridge reads and writes its own topics only; the gateway all.",
             "# Clients without a user (anonymous) are refused by mosquitto.conf.", "", "user hearth",
             "topic readwrite #", "topic read $SYS/#", ""]
    for client in clients:
        lines.append(f"user {client.name}")
        lines += [f"topic readwrite {topic}" for topic in client.topics]
        lines.append("")
    return "\n".join(lines)


def conf_text(folder: Path, listen: str, port: int) -> str:
    return "\n".join([
        "# Written by `hearth mqtt secure`: Mosquitto for a house whose bridges are on other machines.",
        f"listener {port} {listen}".rstrip(),
        "allow_anonymous false",
        f"password_file {folder / 'passwd'}",
        f"acl_file {folder / 'acl'}",
        "# Debian's default (false) adds ~20 ms to every command's round trip (Nagle).",
        "set_tcp_nodelay true",
        "",
    ])


def write_broker_files(folder: Path, specs: list[str], *, listen: str = "0.0.0.0", port: int = 1883,
                       force: bool = False) -> list[Client]:
    """Write ``mosquitto.conf``, ``passwd`` and ``acl`` into ``folder``; return the users with their new
    passwords (the gateway's own, ``hearth``, first)."""
    parsed = [parse_client(spec) for spec in specs]
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        raise HearthError("each --client once")
    folder = folder.resolve()
    files = [folder / "mosquitto.conf", folder / "passwd", folder / "acl"]
    existing = [f for f in files if f.exists()]
    if existing and not force:
        raise HearthError(f"{existing[0]} exists: its passwords would be lost (use --force to write new ones)")
    folder.mkdir(parents=True, exist_ok=True)
    clients = [Client(name, topics, secrets.token_urlsafe(18)) for name, topics in [("hearth", ("#",)), *parsed]]
    _write(folder / "passwd", "".join(password_line(c.name, c.password) + "\n" for c in clients), 0o600)
    _write(folder / "acl", acl_text(clients[1:]), 0o644)
    _write(folder / "mosquitto.conf", conf_text(folder, listen, port), 0o644)
    return clients


def _write(path: Path, text: str, mode: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)
