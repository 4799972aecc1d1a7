"""``hearth doctor``: checks what a gateway on a Raspberry Pi depends on, and says what is wrong and what to do.

Each check gives a status (``ok``, ``warn``, ``fail``), a one-line finding and, when it is not ok, a hint. The
exit code is for scripts, as ``brew doctor``'s: 0 when every check is ok, 1 when the worst is a warning, 2 when
any check failed. A check that breaks is itself a failure with its reason, never a traceback.

What the checks touch, on purpose: the broker gets one MQTT CONNECT (and DISCONNECT) on its configured address;
BlueZ one read-only D-Bus call on the system bus; the database a read-only connection (``PRAGMA quick_check``),
never a write; nothing multicasts (mDNS is judged from the interfaces' flags); nothing is bound.

Config and data directory are found as ``hearth run`` finds them (``--config``, ``[gateway] data_dir``,
``$HEARTH_DATA_DIR``, ``$XDG_DATA_HOME/hearth``); without ``--config`` and ``$HEARTH_DATA_DIR``, an installed
``hearth.service`` (gateway/service.py) names both, so that ``sudo hearth doctor`` checks the service's house.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import platform
import re
import shlex
import shutil
import socket
import sqlite3
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateway import __version__

__all__ = ["Check", "DoctorContext", "exit_code", "render_text", "run_checks"]

Status = Literal["ok", "warn", "fail"]
_RANK: dict[str, int] = {"ok": 0, "warn": 1, "fail": 2}

# Each network or subprocess step waits at most this long: the doctor is run when something hangs, and must not.
STEP_TIMEOUT_S = 3.0
# The free space below which the data directory is a warning / a failure. SQLite needs room for its WAL and
# a VACUUM (up to the database's size again); an SD card that fills up stops every commit.
DISK_WARN_FREE_BYTES = 500 * 1024 * 1024
DISK_FAIL_FREE_BYTES = 50 * 1024 * 1024
DISK_WARN_FREE_FRACTION = 0.10
# A WAL above this means checkpoints are not keeping up (the store truncates it at each daily checkpoint).
WAL_WARN_BYTES = 64 * 1024 * 1024
SECTOR_BYTES = 512  # /proc/diskstats counts 512-byte sectors whatever the device's own sector size
DEFAULT_UNIT = Path("/etc/systemd/system/hearth.service")
MOSQUITTO_CONFS = (Path("/etc/mosquitto/mosquitto.conf"), Path("/usr/local/etc/mosquitto/mosquitto.conf"))


@dataclass
class Check:
    id: str
    title: str
    status: Status
    finding: str
    hint: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status, "finding": self.finding,
                "hint": self.hint, "details": self.details}


@dataclass
class DoctorContext:
    """Where the checks look: the config ``hearth run`` would use, and the files a check may read."""

    config_path: Path | None = None
    #: Why this config / data directory (``--config``, the service unit, the defaults).
    source: str = "no config file: the defaults"
    #: The data directory the service unit sets ($HEARTH_DATA_DIR of the unit), when the unit was the source.
    data_dir_override: Path | None = None
    mosquitto_conf: Path | None = None
    unit_path: Path = DEFAULT_UNIT
    config: Any = None  # gateway.config.Config once loaded
    config_problems: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        if self.config is not None and self.config.gateway.data_dir is not None:
            return Path(self.config.gateway.data_dir)
        if self.data_dir_override is not None:
            return self.data_dir_override
        from gateway.config import default_data_dir

        return default_data_dir()

    @property
    def store_path(self) -> Path:
        if self.config is not None and self.config.store.path is not None:
            return Path(self.config.store.path)
        return self.data_dir / "hearth.db"


def unit_settings(unit: Path) -> tuple[Path | None, Path | None]:
    """The ``--config`` of an installed unit's ExecStart, and the $HEARTH_DATA_DIR of its Environment."""
    config = data_dir = None
    for raw in unit.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if line.startswith("ExecStart="):
            words = shlex.split(line.split("=", 1)[1].lstrip("-@+!:"))
            if "--config" in words[:-1]:
                config = Path(words[words.index("--config") + 1])
        elif line.startswith("Environment="):
            for word in shlex.split(line.split("=", 1)[1]):
                if word.startswith("HEARTH_DATA_DIR="):
                    data_dir = Path(word.split("=", 1)[1])
    return config, data_dir


def discover(config: str | None, unit: Path = DEFAULT_UNIT, environ: dict[str, str] | None = None,
             mosquitto_conf: str | None = None) -> DoctorContext:
    env = os.environ if environ is None else environ
    context = DoctorContext(unit_path=unit, mosquitto_conf=Path(mosquitto_conf) if mosquitto_conf else None)
    if config is not None:
        context.config_path, context.source = Path(config), f"--config {config}"
    elif not env.get("HEARTH_DATA_DIR") and unit.is_file():
        with contextlib.suppress(OSError, ValueError):
            context.config_path, context.data_dir_override = unit_settings(unit)
            context.source = f"the service unit {unit}"
    return context


def _load_config(context: DoctorContext) -> Check:
    from gateway.config import load_config
    from gateway.errors import ConfigError

    if context.config_path is None:
        context.config = load_config(None)
        return Check("config", "Config", "ok", "no config file: the built-in defaults",
                     details={"file": None, "source": context.source})
    try:
        context.config = load_config(context.config_path)
    except ConfigError as err:
        context.config_problems = [str(p) for p in err.problems]
        first = context.config_problems[0] if context.config_problems else "invalid"
        more = f" (and {len(err.problems) - 1} more)" if len(err.problems) > 1 else ""
        return Check("config", "Config", "fail", f"{first}{more}",
                     f"fix it (hearth config check {context.config_path} lists every problem); the checks that "
                     "need the config were not run", {"file": str(context.config_path), "source": context.source,
                                                       "problems": context.config_problems})
    return Check("config", "Config", "ok", f"{context.config_path} loads",
                 details={"file": str(context.config_path), "source": context.source})


# ----------------------------------------------------------------------------------------------- broker


def _mqtt_string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("!H", len(data)) + data


def _mqtt_connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02  # clean session
    payload = _mqtt_string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _mqtt_string(username)
        if password is not None:
            flags |= 0x40
            payload += _mqtt_string(password)
    body = _mqtt_string("MQTT") + bytes([4, flags]) + struct.pack("!H", 10) + payload
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return b"\x10" + encoded + body


_CONNACK_REASONS = {1: "unacceptable protocol version", 2: "client id rejected", 3: "server unavailable",
                    4: "bad user name or password", 5: "not authorised"}


def mqtt_probe(host: str, port: int, *, username: str | None = None, password: str | None = None,
               tls: bool = False, ca_file: Path | None = None, tls_insecure: bool = False,
               timeout_s: float = STEP_TIMEOUT_S) -> tuple[bool, str]:
    """One MQTT 3.1.1 CONNECT: (accepted, what happened)."""
    started = time.monotonic()
    try:
        raw = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as err:
        return False, f"cannot connect to {host}:{port}: {err.strerror or err}"
    try:
        sock: socket.socket = raw
        if tls:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
            if tls_insecure:
                context.check_hostname = False
            sock = context.wrap_socket(raw, server_hostname=host)
        sock.settimeout(timeout_s)
        sock.sendall(_mqtt_connect_packet(f"hearth-doctor-{os.getpid()}", username, password))
        answer = b""
        while len(answer) < 4 and time.monotonic() - started < timeout_s:
            chunk = sock.recv(4 - len(answer))
            if not chunk:
                break
            answer += chunk
        if len(answer) < 4 or answer[0] != 0x20:
            return False, f"{host}:{port} accepted the connection but did not answer as an MQTT broker"
        code = answer[3]
        if code != 0:
            return False, f"{host}:{port} refused the login: {_CONNACK_REASONS.get(code, f'code {code}')}"
        with contextlib.suppress(OSError):
            sock.sendall(b"\xe0\x00")  # DISCONNECT: the broker publishes no will for us
        elapsed_ms = (time.monotonic() - started) * 1000
        return True, f"{host}:{port} accepted an MQTT login in {elapsed_ms:.0f} ms"
    except ssl.SSLError as err:
        return False, f"TLS with {host}:{port} failed: {err.reason or err}"
    except OSError as err:
        return False, f"{host}:{port}: {err.strerror or err}"
    finally:
        raw.close()


def check_broker(context: DoctorContext) -> Check:
    mqtt = context.config.mqtt
    if not mqtt.enabled:
        return Check("broker", "MQTT broker", "ok", "MQTT is off ([mqtt] enabled = false)")
    if mqtt.mode == "embedded":
        host = "127.0.0.1" if mqtt.embedded_host in ("0.0.0.0", "::", "") else mqtt.embedded_host
        if mqtt.port == 0:
            return Check("broker", "MQTT broker", "ok", "embedded broker on a free port chosen at each start "
                         "(port = 0): nothing to check while the gateway is stopped")
        ok, what = mqtt_probe(host, mqtt.port, username=mqtt.username, password=mqtt.password)
        if ok:
            return Check("broker", "MQTT broker", "ok", f"embedded broker: {what}", details={"mode": "embedded"})
        return Check("broker", "MQTT broker", "warn", f"embedded broker: {what}",
                     "the embedded broker runs inside `hearth run`: is the gateway running?",
                     {"mode": "embedded"})
    ok, what = mqtt_probe(mqtt.host, mqtt.port, username=mqtt.username, password=mqtt.password, tls=mqtt.tls,
                          ca_file=mqtt.ca_file, tls_insecure=mqtt.tls_insecure)
    details = {"mode": "external", "host": mqtt.host, "port": mqtt.port, "tls": mqtt.tls}
    if ok:
        return Check("broker", "MQTT broker", "ok", what, details=details)
    if "refused the login" in what:
        hint = "check [mqtt] username and password against the broker's password file"
    else:
        hint = ("start the broker (sudo systemctl start mosquitto), or set [mqtt] host and port; with no broker, "
                '[mqtt] mode = "embedded" runs one inside the gateway')
    return Check("broker", "MQTT broker", "fail", what, hint, details)


def _conf_lines(path: Path, depth: int = 0) -> Iterator[tuple[Path, str]]:
    """The lines of a mosquitto.conf and of the files its ``include_dir`` lines name (as Mosquitto reads them)."""
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split(None, 1)
        if words[0] == "include_dir" and len(words) == 2 and depth < 3:
            folder = Path(words[1].strip())
            for child in sorted(folder.glob("*.conf")) if folder.is_dir() else []:
                with contextlib.suppress(OSError):
                    yield from _conf_lines(child, depth + 1)
        else:
            yield path, line


def check_nodelay(context: DoctorContext) -> Check:
    title = "Mosquitto set_tcp_nodelay"
    mqtt = context.config.mqtt
    if not mqtt.enabled:
        return Check("nodelay", title, "ok", "MQTT is off")
    if mqtt.mode == "embedded":
        return Check("nodelay", title, "ok", "embedded broker: every connection has TCP_NODELAY (asyncio and "
                     "uvloop set it on each TCP transport)", details={"nodelay": True})
    from gateway.config import is_loopback_host

    conf = context.mosquitto_conf
    if conf is None and (is_loopback_host(mqtt.host) or mqtt.host in (socket.gethostname(), socket.getfqdn())):
        conf = next((c for c in MOSQUITTO_CONFS if c.is_file()), None)
    if conf is None:
        return Check("nodelay", title, "warn", f"cannot tell: no mosquitto.conf of the broker at {mqtt.host} on "
                     "this machine", "in the broker's mosquitto.conf, set `set_tcp_nodelay true`: without it each "
                     "command waits ~20 ms more (Nagle's algorithm); hearth doctor --mosquitto-conf FILE checks it",
                     {"nodelay": None})
    try:
        settings = [(where, line.split()) for where, line in _conf_lines(conf)]
    except OSError as err:
        return Check("nodelay", title, "warn", f"cannot read {conf}: {err.strerror or err}",
                     "run hearth doctor as a user who may read it (sudo)", {"nodelay": None, "file": str(conf)})
    values = [(where, words[1].lower()) for where, words in settings if words[0] == "set_tcp_nodelay" and
              len(words) > 1]
    if values and values[-1][1] == "true":
        return Check("nodelay", title, "ok", f"set_tcp_nodelay true ({values[-1][0]})",
                     details={"nodelay": True, "file": str(values[-1][0])})
    said = f"set_tcp_nodelay {values[-1][1]} in {values[-1][0]}" if values else f"not set in {conf} (default false)"
    return Check("nodelay", title, "warn", f"{said}: every command to a device costs ~20 ms more (Nagle's algorithm "
                 "holds the broker's small packets)", f"add `set_tcp_nodelay true` to {conf} and restart Mosquitto "
                 "(sudo systemctl restart mosquitto)", {"nodelay": False, "file": str(conf)})


# ----------------------------------------------------------------------------------------------- BLE


def _ble_settings(context: DoctorContext) -> tuple[bool, bool, str]:
    section = context.config.adapter_section("ble")
    enabled = bool(section.get("enabled", True))
    scanner = bool(section.get("scanner", True))
    adapter = str(section.get("adapter", "hci0"))
    return enabled, scanner, adapter


def _capabilities() -> set[str]:
    """The effective capabilities of this process that BLE scanning cares about."""
    found: set[str] = set()
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                bits = int(line.split()[1], 16)
                found |= {name for name, bit in (("CAP_NET_ADMIN", 12), ("CAP_NET_RAW", 13)) if bits >> bit & 1}
    return found


def _system_bus_path(environ: dict[str, str] | os._Environ[str]) -> str | None:
    address = environ.get("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/var/run/dbus/system_bus_socket")
    match = re.search(r"unix:path=([^,;]+)", address)
    return match.group(1) if match else None


def _bluez_reachable(bus_address: str) -> tuple[bool, str]:
    """One read-only call to BlueZ over the system bus (its ObjectManager): can this user talk to it?"""
    import asyncio

    async def ask() -> tuple[bool, str]:
        from dbus_fast import BusType, Message, MessageType
        from dbus_fast.aio import MessageBus

        bus = await MessageBus(bus_address=bus_address, bus_type=BusType.SYSTEM).connect()
        try:
            reply = await bus.call(Message(destination="org.bluez", path="/", interface=
                                           "org.freedesktop.DBus.ObjectManager", member="GetManagedObjects"))
        finally:
            bus.disconnect()
        if reply is None:
            return False, "no answer from BlueZ"
        if reply.message_type == MessageType.ERROR:
            return False, f"BlueZ answered {reply.error_name}"
        adapters = sorted(path.rsplit("/", 1)[-1] for path, ifaces in reply.body[0].items()
                          if "org.bluez.Adapter1" in ifaces)
        return True, f"BlueZ answers (adapters: {', '.join(adapters) or 'none'})"

    try:
        return asyncio.run(asyncio.wait_for(ask(), STEP_TIMEOUT_S))
    except TimeoutError:
        return False, f"BlueZ did not answer within {STEP_TIMEOUT_S:g} s"
    except Exception as err:  # dbus_fast's own errors, a refused connection: all mean "not reachable"
        return False, f"{type(err).__name__}: {err}"


def check_ble(context: DoctorContext, sys_root: Path = Path("/")) -> Check:
    title = "BLE adapter"
    enabled, scanner, adapter = _ble_settings(context)
    if not enabled or not scanner:
        return Check("ble", title, "ok", "no local radio used ([adapters.ble] " +
                     ("enabled = false)" if not enabled else "scanner = false)"))
    folder = sys_root / "sys/class/bluetooth"
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    details: dict[str, Any] = {"adapter": adapter, "present": present}
    if adapter not in present:
        have = f" (this machine has {', '.join(present)})" if present else ""
        return Check("ble", title, "warn", f"no Bluetooth adapter {adapter}{have}: BLE sensors nearby are not heard",
                     "on a Raspberry Pi: sudo rfkill unblock bluetooth and check `bluetoothctl list`; without a radio, "
                     "set [adapters.ble] scanner = false to silence the BLE adapter", details)
    for rfkill in sorted((folder / adapter).glob("rfkill*")):
        blocked = [kind for kind in ("soft", "hard") if (rfkill / kind).is_file()
                   and (rfkill / kind).read_text().strip() == "1"]
        if blocked:
            details["rfkill"] = blocked
            return Check("ble", title, "warn", f"{adapter} is blocked by rfkill ({' and '.join(blocked)})",
                         "sudo rfkill unblock bluetooth" if "soft" in blocked else "a hardware switch blocks it",
                         details)
    bus = _system_bus_path(os.environ)
    if bus is None or not Path(bus).exists():
        return Check("ble", title, "warn", f"{adapter} is present, but there is no system D-Bus to reach BlueZ",
                     "install and start BlueZ: sudo apt install bluez; sudo systemctl enable --now bluetooth", details)
    reachable, what = _bluez_reachable(f"unix:path={bus}")
    details["bluez"] = what
    details["capabilities"] = sorted(_capabilities())
    if not reachable:
        hint = ("add the user to the bluetooth group (sudo usermod -aG bluetooth $USER; the service unit does it)"
                if "AccessDenied" in what else "sudo systemctl enable --now bluetooth")
        return Check("ble", title, "warn", f"{adapter} is present, but {what}", hint, details)
    return Check("ble", title, "ok", f"{adapter} present; {what}", details=details)


# ----------------------------------------------------------------------------------------------- mDNS


_IFF_UP, _IFF_LOOPBACK, _IFF_MULTICAST = 0x1, 0x8, 0x1000


def multicast_interfaces(sys_root: Path = Path("/")) -> list[str]:
    """Interfaces that are up, not loopback and multicast-capable (from their flags: nothing is sent)."""
    found = []
    folder = sys_root / "sys/class/net"
    for iface in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            flags = int((iface / "flags").read_text().strip(), 16)
        except (OSError, ValueError):
            continue
        if flags & _IFF_UP and flags & _IFF_MULTICAST and not flags & _IFF_LOOPBACK:
            found.append(iface.name)
    return found


def check_mdns(context: DoctorContext, sys_root: Path = Path("/")) -> Check:
    title = "mDNS"
    section = context.config.mdns
    if not section.enabled:
        return Check("mdns", title, "ok", "mDNS is off ([mdns] enabled = false): no discovery of Wi-Fi devices, "
                     "no announcement of the gateway")
    usable = multicast_interfaces(sys_root)
    details: dict[str, Any] = {"interfaces": usable, "configured": section.interfaces}
    if not usable:
        return Check("mdns", title, "warn", "no network interface but loopback can multicast: Shelly and other "
                     "Wi-Fi devices are not discovered, apps do not find the gateway",
                     "connect the machine to the house's network (Ethernet or Wi-Fi)", details)
    if section.interfaces != "all":
        wanted = [name for name in section.interfaces if not re.fullmatch(r"[\d.]+", name)]
        missing = [name for name in wanted if name not in usable]
        if missing:
            return Check("mdns", title, "warn", f"[mdns] interfaces names {', '.join(missing)}, not up and "
                         f"multicast-capable here (usable: {', '.join(usable)})",
                         'fix [mdns] interfaces, or set it to "all"', details)
    return Check("mdns", title, "ok", f"multicast-capable: {', '.join(usable)} (checked from interface flags; "
                 "nothing was sent)", details=details)


# ----------------------------------------------------------------------------------------------- clock


class _Timex(ctypes.Structure):
    # struct timex (adjtimex(2)); only ``status`` is read, the rest reserves room (with the kernel's padding).
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("rest", ctypes.c_byte * 256)]


_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


def clock_synchronised(run_root: Path = Path("/run"), timedatectl: str | None = None) -> tuple[bool | None, str]:
    """(synchronised?, how that was found); None when it cannot be told."""
    if (run_root / "systemd/timesync/synchronized").exists():
        return True, "systemd-timesyncd's flag /run/systemd/timesync/synchronized"
    tool = timedatectl or shutil.which("timedatectl")
    if tool:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run([tool, "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                                  text=True, timeout=STEP_TIMEOUT_S)
            value = done.stdout.strip()
            if done.returncode == 0 and value in ("yes", "no"):
                return value == "yes", f"timedatectl's NTPSynchronized={value}"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            timex = _Timex()  # modes = 0: read only
            state = libc.adjtimex(ctypes.byref(timex))
        except (OSError, AttributeError):
            state = -1
        if state >= 0:
            synced = state != _TIME_ERROR and not timex.status & _STA_UNSYNC
            return synced, "the kernel's NTP state, read with adjtimex"
    return None, "no timesyncd flag, no timedatectl answer, no adjtimex"


def check_clock(context: DoctorContext) -> Check:
    title = "Clock"
    synced, how = clock_synchronised()
    now = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    details = {"synchronised": synced, "source": how, "now": now}
    if synced:
        return Check("clock", title, "ok", f"synchronised, per {how}; now {now}", details=details)
    hint = ("enable time synchronisation: sudo timedatectl set-ntp true (a Pi has no battery-backed clock: "
            "without the network it starts at the last shutdown's time)")
    if synced is None:
        return Check("clock", title, "warn", f"cannot tell whether the clock is synchronised: {how}; now {now}: "
                     "time scenes (sunset, 'at 07:00', quiet hours) depend on it", hint, details)
    return Check("clock", title, "warn", f"not synchronised, per {how}; now {now}: time scenes (sunset, 'at 07:00', "
                 "quiet hours) run at the wrong time", hint, details)


# ----------------------------------------------------------------------------------------------- disk


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the data directory may not exist before the first start)."""
    for candidate in [path, *path.parents]:
        if candidate.exists():
            return candidate
    return Path("/")


def device_writes(path: Path, proc: Path = Path("/proc"), sys_root: Path = Path("/")) -> dict[str, Any] | None:
    """The block device holding ``path`` and the bytes written to it since boot (/proc/diskstats)."""
    st_dev = path.stat().st_dev
    major, minor = os.major(st_dev), os.minor(st_dev)
    link = sys_root / f"sys/dev/block/{major}:{minor}"
    if not link.exists():
        return None  # not a block device (overlay, tmpfs, NFS): no device figures
    name = link.resolve().name
    for line in (proc / "diskstats").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 10 and fields[2] == name:
            uptime_s = float((proc / "uptime").read_text().split()[0])
            written = int(fields[9]) * SECTOR_BYTES
            return {"device": name, "written_since_boot_bytes": written, "uptime_s": uptime_s,
                    "written_per_day_bytes": int(written / max(uptime_s, 1.0) * 86400)}
    return None


def gateway_pid(store_path: Path, proc: Path = Path("/proc")) -> int | None:
    """The process holding the store's lock (a running gateway), from /proc/locks; nothing is locked here."""
    from gateway.store import lock_path

    try:
        inode = lock_path(store_path).stat().st_ino
        locks = (proc / "locks").read_text()
    except OSError:
        return None
    for line in locks.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  READ  1234 fd:00:5678 0 EOF" (the pid and major:minor:inode positions)
        for index, value in enumerate(fields):
            if value.count(":") == 2 and value.rsplit(":", 1)[-1] == str(inode) and index > 0:
                with contextlib.suppress(ValueError):
                    return int(fields[index - 1])
    return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB" if value < 1e9 else f"{value / 1e9:.1f} GB"


def check_disk(context: DoctorContext) -> Check:
    title = "Disk and SD card"
    data_dir = context.data_dir
    where = _existing(data_dir)
    usage = shutil.disk_usage(where)
    db = context.store_path
    files = {"database_bytes": _size(db), "wal_bytes": _size(Path(f"{db}-wal"))}
    details: dict[str, Any] = {"data_dir": str(data_dir), "free_bytes": usage.free, "total_bytes": usage.total,
                               **files}
    with contextlib.suppress(OSError, ValueError):
        device = device_writes(where)
        if device is not None:
            details.update(device)
    pid = gateway_pid(db)
    if pid is not None:
        details["gateway_pid"] = pid
        with contextlib.suppress(OSError, ValueError):
            io = dict(line.split(": ", 1) for line in Path(f"/proc/{pid}/io").read_text().splitlines())
            details["gateway_write_bytes"] = int(io["write_bytes"])
    parts = [f"{_mb(usage.free)} free of {_mb(usage.total)} at {where}",
             f"database {_mb(files['database_bytes'])} + WAL {_mb(files['wal_bytes'])}"]
    if "written_since_boot_bytes" in details:
        parts.append(f"{details['device']}: {_mb(details['written_since_boot_bytes'])} written since boot "
                     f"(~{_mb(details['written_per_day_bytes'])}/day)")
    if "gateway_write_bytes" in details:
        parts.append(f"the gateway (pid {pid}) wrote {_mb(details['gateway_write_bytes'])} since it started")
    finding = "; ".join(parts)
    fraction = usage.free / usage.total if usage.total else 1.0
    if usage.free < DISK_FAIL_FREE_BYTES:
        return Check("disk", title, "fail", finding, "free space now: the store cannot commit on a full disk "
                     "(hearth data delete --history-only, or [store] retention_days lower)", details)
    if usage.free < DISK_WARN_FREE_BYTES or fraction < DISK_WARN_FREE_FRACTION:
        return Check("disk", title, "warn", finding, "free some space soon (old logs: journalctl --vacuum-size=100M; "
                     "history: [store] retention_days)", details)
    if files["wal_bytes"] > WAL_WARN_BYTES:
        return Check("disk", title, "warn", finding, "the WAL is large: checkpoints are not keeping up (is a "
                     "reader holding the database open for long?)", details)
    return Check("disk", title, "ok", finding, details=details)


# ----------------------------------------------------------------------------------------------- database


def check_database(context: DoctorContext) -> Check:
    from gateway.store import SCHEMA_VERSION

    title = "Database"
    path = context.store_path
    details: dict[str, Any] = {"path": str(path), "code_schema_version": SCHEMA_VERSION}
    if not path.exists():
        return Check("database", title, "ok", f"no database yet at {path} (made at the gateway's first start)",
                     details=details)
    # Read-only, and no file made beside it: a reader of a WAL database would create -wal and -shm when they are
    # missing (owned by whoever runs the doctor: root's files in the service's directory would lock the gateway
    # out). With both there (a gateway has it open, or was killed), read through them as any reader does; without
    # (a clean stop), immutable=1: SQLite then takes no lock and creates nothing.
    live = Path(f"{path}-wal").exists() and Path(f"{path}-shm").exists()
    uri = f"{path.resolve().as_uri()}?mode=ro" + ("" if live else "&immutable=1")
    details["read"] = "through the live WAL" if live else "immutable (no WAL: the gateway is stopped)"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=STEP_TIMEOUT_S)
    except sqlite3.Error as err:
        return Check("database", title, "fail", f"cannot open {path} read-only: {err}",
                     "check its owner and mode (the service's user owns /var/lib/hearth: sudo hearth doctor)", details)
    try:
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        version = 0
        if "schema_version" in tables:
            version = int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])
        journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    except sqlite3.Error as err:
        return Check("database", title, "fail", f"{path} is not a readable SQLite database: {err}",
                     "move it away and restore a backup (the gateway refuses to start on it)", details)
    finally:
        conn.close()
    details.update({"quick_check": problems[:10], "schema_version": version, "journal_mode": journal})
    if problems != ["ok"]:
        return Check("database", title, "fail", f"{path} is damaged: {'; '.join(problems[:3])}",
                     "stop the gateway, move the file away and restore a backup", details)
    if tables and "schema_version" not in tables:
        return Check("database", title, "fail", f"{path} is an SQLite database, but not a Hearth store",
                     "set [store] path to Hearth's own database", details)
    size = f"{_mb(_size(path))}, schema {version}"
    if version > SCHEMA_VERSION:
        return Check("database", title, "fail", f"{path}: schema {version} is newer than this Hearth knows "
                     f"({SCHEMA_VERSION}); the gateway refuses it (and leaves it untouched)",
                     "upgrade Hearth to the version that wrote it", details)
    if version < SCHEMA_VERSION:
        return Check("database", title, "ok", f"intact ({size}); the next start migrates it to schema "
                     f"{SCHEMA_VERSION}", details=details)
    return Check("database", title, "ok", f"intact ({size}, current)", details=details)


# ----------------------------------------------------------------------------------------------- exposure


def check_exposure(context: DoctorContext) -> Check:
    from gateway.config import is_loopback_host

    title = "Exposed ports and TLS"
    config = context.config
    api, mqtt = config.api, config.mqtt
    listeners: list[dict[str, Any]] = []
    notes: list[str] = []
    status: Status = "ok"
    hint = ""
    if api.enabled:
        tls = api.serves_tls()
        beyond = not is_loopback_host(api.host)
        entry: dict[str, Any] = {"what": "api", "host": api.host, "port": api.port, "beyond_loopback": beyond,
                                 "tls": tls}
        if tls:
            cert = Path(api.certfile) if api.certfile is not None else context.data_dir / "tls" / "api-cert.pem"
            entry.update({"certificate": str(cert), "self_signed": api.certfile is None})
            if cert.is_file():
                from gateway.tlscert import fingerprint_of

                with contextlib.suppress(Exception):  # an unreadable certificate: the gateway itself says why
                    entry["fingerprint"] = fingerprint_of(cert)
            elif api.certfile is None:
                entry["certificate"] += " (made at the first start)"
            else:
                entry["certificate"] += " (missing)"
                status, hint = "fail", f"[api] certfile {cert} does not exist: the gateway cannot serve HTTPS"
        listeners.append(entry)
        scheme = "HTTPS" if tls else "HTTP"
        notes.append(f"API {scheme} on {api.host}:{api.port}" + (" (beyond loopback)" if beyond else " (loopback)"))
        if beyond and not tls:
            status, hint = "warn", ("[api] insecure_http = true: passwords and tokens cross the LAN readable; set "
                                    '[api] tls = "auto"')
    else:
        notes.append("API off")
    if mqtt.embedded:
        beyond = not is_loopback_host(mqtt.embedded_host)
        listeners.append({"what": "embedded_broker", "host": mqtt.embedded_host, "port": mqtt.port,
                          "beyond_loopback": beyond, "tls": False, "auth": mqtt.username is not None})
        notes.append(f"embedded MQTT broker on {mqtt.embedded_host}:{mqtt.port}" +
                     (" (beyond loopback, plain MQTT, login required)" if beyond else " (loopback)"))
    elif mqtt.enabled and not is_loopback_host(mqtt.host):
        notes.append(f"to the broker at {mqtt.host}:{mqtt.port} " + ("over TLS" if mqtt.tls else "without TLS"))
        if not mqtt.tls and status == "ok":
            status, hint = "warn", ("the broker is on another machine and the link has no TLS: anyone on the LAN "
                                    "reads the house's traffic ([mqtt] tls = true with a broker listener on 8883)")
    if config.mdns.enabled:
        notes.append("mDNS on UDP 5353 (" + ("announces the API" if config.mdns.announce else "browse only") + ")")
        listeners.append({"what": "mdns", "host": "0.0.0.0", "port": 5353, "beyond_loopback": True, "tls": False})
    return Check("exposure", title, status, "; ".join(notes), hint, {"listeners": listeners})


# ----------------------------------------------------------------------------------------------- versions


def check_versions(context: DoctorContext) -> Check:
    from importlib.metadata import PackageNotFoundError, entry_points, version

    from gateway.supervisor import ENTRY_POINT_GROUP, sdk_incompatibility

    plugins: list[dict[str, Any]] = []
    broken: list[str] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = getattr(ep, "dist", None)
        entry: dict[str, Any] = {"name": ep.name, "value": ep.value,
                                 "distribution": dist.metadata["Name"] if dist is not None else None,
                                 "version": dist.version if dist is not None else None}
        try:
            problem = sdk_incompatibility(ep.load())
        except Exception as err:  # a plugin that cannot import: said, never raised
            problem = f"fails to import: {type(err).__name__}: {err}"
        if problem:
            entry["problem"] = problem
            broken.append(f"{ep.name} ({problem})")
        plugins.append(entry)
    try:
        loop = f"uvloop {version('uvloop')}"
    except PackageNotFoundError:
        loop = "asyncio (no uvloop)"
    details = {"hearth": __version__, "python": platform.python_version(),
               "implementation": platform.python_implementation(), "machine": platform.machine(),
               "event_loop": loop, "sqlite": sqlite3.sqlite_version, "executable": sys.executable, "plugins": plugins}
    own = "hearth-gateway"
    third = [p for p in plugins if p["distribution"] and p["distribution"].lower() != own]
    listed = ", ".join(f"{p['name']} {p['version']}" for p in third) or "none"
    finding = (f"Hearth {__version__}, Python {platform.python_version()} ({platform.machine()}), {loop}, SQLite "
               f"{sqlite3.sqlite_version}; {len(plugins) - len(third)} built-in adapters; plugins: {listed}")
    if broken:
        return Check("versions", "Versions and plugins", "warn", f"{finding}; left out: {'; '.join(broken)}",
                     "upgrade or remove the plugin (pip install -U NAME); hearth plugin check NAME says more",
                     details)
    return Check("versions", "Versions and plugins", "ok", finding, details=details)


# ----------------------------------------------------------------------------------------------- running

CHECKS: tuple[tuple[str, str, Callable[[DoctorContext], Check]], ...] = (
    ("broker", "MQTT broker", check_broker),
    ("nodelay", "Mosquitto set_tcp_nodelay", check_nodelay),
    ("ble", "BLE adapter", check_ble),
    ("mdns", "mDNS", check_mdns),
    ("clock", "Clock", check_clock),
    ("disk", "Disk and SD card", check_disk),
    ("database", "Database", check_database),
    ("exposure", "Exposed ports and TLS", check_exposure),
    ("versions", "Versions and plugins", check_versions),
)
# Checks that need no config: run even when it does not load.
_WITHOUT_CONFIG = {"clock", "versions"}


def _guarded(check_id: str, title: str, run: Callable[[], Check]) -> Check:
    try:
        return run()
    except Exception as err:  # a check that breaks is a finding, never a traceback
        return Check(check_id, title, "fail", f"the check itself failed: {type(err).__name__}: {err}",
                     "please report this (hearth doctor --json shows the details)")


def run_checks(context: DoctorContext, only: set[str] | None = None) -> list[Check]:
    results = [_guarded("config", "Config", lambda: _load_config(context))]
    for check_id, title, function in CHECKS:
        if only is not None and check_id not in only:
            continue
        if context.config is None and check_id not in _WITHOUT_CONFIG:
            continue
        results.append(_guarded(check_id, title, functools.partial(function, context)))
    return results


def worst(checks: list[Check]) -> Status:
    return max((c.status for c in checks), key=_RANK.__getitem__, default="ok")


def exit_code(checks: list[Check]) -> int:
    """0: all ok; 1: the worst is a warning; 2: something failed."""
    return _RANK[worst(checks)]


def report(context: DoctorContext, checks: list[Check]) -> dict[str, Any]:
    return {"hearth": __version__, "status": worst(checks), "exit_code": exit_code(checks),
            "config": str(context.config_path) if context.config_path else None, "source": context.source,
            "data_dir": str(context.data_dir) if context.config is not None else None,
            "checks": [c.as_dict() for c in checks]}


def render_text(context: DoctorContext, checks: list[Check]) -> str:
    marks = {"ok": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]"}
    width = max(len(c.title) for c in checks)
    data = f"; data directory {context.data_dir}" if context.config is not None else ""
    lines = [f"Hearth {__version__} doctor: config from {context.source}{data}"]
    for c in checks:
        lines.append(f"{marks[c.status]} {c.title.ljust(width)}  {c.finding}")
        if c.hint and c.status != "ok":
            lines.append(f"       {' ' * width}  -> {c.hint}")
    warns = sum(c.status == "warn" for c in checks)
    fails = sum(c.status == "fail" for c in checks)
    lines.append(f"{len(checks)} checks: {fails} failed, {warns} warnings (exit {exit_code(checks)}: 0 all ok, "
                 "1 warnings, 2 failures)")
    return "\n".join(lines) + "\n"
