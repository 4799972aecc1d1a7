"""``hearth service install|uninstall``: Hearth as a systemd service that starts at boot and restarts itself.

The unit runs the gateway as a dedicated system user (``hearth``, made with ``useradd --system`` if missing),
keeps its data in ``StateDirectory=hearth`` (``/var/lib/hearth``), sees the rest of the file system read-only
(``ProtectSystem=strict``, ``ProtectHome=yes``, ``PrivateTmp=yes``), can never gain privileges
(``NoNewPrivileges=yes``) and holds only the two capabilities BLE scanning needs (``CAP_NET_RAW``,
``CAP_NET_ADMIN``, ambient and as the bounding set). It is ``Type=notify`` with ``WatchdogSec=``: the gateway
says READY=1 once started and pings from its event loop (gateway/sdnotify.py), so a hung gateway is restarted
(``Restart=on-failure``). Its output goes to the journal (``journalctl -u hearth``).

:func:`unit_text` is pure (what ``--print`` shows and the tests verify with ``systemd-analyze verify``);
:func:`install_steps` and :func:`uninstall_steps` say what would be done, as data, so that ``--dry-run`` shows
exactly what ``install`` does; :func:`apply` does it.
"""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import HearthError

__all__ = ["ServiceError", "ServiceOptions", "Step", "apply", "install_steps", "uninstall_steps", "unit_text"]

DEFAULT_UNIT_NAME = "hearth"
DEFAULT_USER = "hearth"
DEFAULT_CONFIG = Path("/etc/hearth/config.toml")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
STATE_DIR = Path("/var/lib/hearth")  # what StateDirectory=hearth makes: the unit's $HEARTH_DATA_DIR
# systemd kills and restarts the gateway when its loop sent no ping for this long. Far above any legitimate
# pause (a store commit, a start-up under load take well under a second); short enough that a hung house is
# back within a minute. The gateway pings at half of it.
DEFAULT_WATCHDOG_S = 30
# Start-up on a Pi with a thousand devices restored and every adapter importing: seconds; an SD card at the
# end of its life: much more. Beyond this, systemd gives up and restarts.
START_TIMEOUT_S = 120
# Between restarts: a crash loop must not keep a small machine busy (systemd's default 100 ms would).
RESTART_DELAY_S = 5
# Where a service's executable must not live: ProtectHome=yes hides these directories from the service.
_HIDDEN_BY_PROTECT_HOME = (Path("/home"), Path("/root"), Path("/run/user"))

CONFIG_TEMPLATE = """\
# Hearth's settings (hearth service install made this file; it is never overwritten).
# Every setting, its default and what it does: docs/config.md, or config.example.toml in the sources.
# The data directory is /var/lib/hearth (the unit's StateDirectory); check with `hearth doctor`.
"""


class ServiceError(HearthError):
    """The service cannot be installed or removed as asked (not root, a path systemd would hide, ...)."""


@dataclass(frozen=True)
class ServiceOptions:
    name: str = DEFAULT_UNIT_NAME
    user: str = DEFAULT_USER
    #: The config file the service runs with; None: no ``--config`` (the built-in defaults).
    config: Path | None = DEFAULT_CONFIG
    #: The interpreter that has Hearth installed (a venv's ``bin/python``, not resolved: the venv is what counts).
    python: Path = field(default_factory=lambda: Path(sys.executable))
    watchdog_s: int = DEFAULT_WATCHDOG_S
    #: Extra groups for the user, e.g. ["bluetooth"] (BlueZ's D-Bus policy admits that group on Debian).
    groups: tuple[str, ...] = ()
    #: Everything is written below this directory instead of / (tests, image builders); then no user is made
    #: and systemctl runs with ``--root``.
    root: Path | None = None
    start: bool = True

    @property
    def unit_file(self) -> str:
        return f"{self.name}.service"

    def under_root(self, path: Path) -> Path:
        return path if self.root is None else self.root / path.relative_to("/")


def default_groups() -> tuple[str, ...]:
    """``bluetooth`` when this machine has that group (Debian, Raspberry Pi OS: BlueZ admits it over D-Bus)."""
    try:
        grp.getgrnam("bluetooth")
    except KeyError:
        return ()
    return ("bluetooth",)


def problems(options: ServiceOptions) -> list[str]:
    """What would stop the service from running as written (said before anything is installed)."""
    found = []
    python = options.python if options.python.is_absolute() else Path.cwd() / options.python
    for hidden in _HIDDEN_BY_PROTECT_HOME:
        if python.is_relative_to(hidden):
            found.append(f"{python} is under {hidden}, which ProtectHome=yes hides from the service (and the "
                         f"{options.user} user may not read): install Hearth where every user can read it, e.g. "
                         f"python3 -m venv /opt/hearth && /opt/hearth/bin/pip install hearth-gateway, then run "
                         f"/opt/hearth/bin/hearth service install")
    if options.config is not None and not options.config.is_absolute():
        found.append(f"--config {options.config}: give an absolute path (the service does not start where you are)")
    if not 1 <= options.watchdog_s <= 3600:
        found.append(f"--watchdog-s {options.watchdog_s}: between 1 and 3600 seconds")
    return found


def unit_text(options: ServiceOptions) -> str:
    """The unit file. Every hardening line says why it is there or what it costs."""
    command = [str(options.python), "-m", "gateway.cli", "run"]
    if options.config is not None:
        command += ["--config", str(options.config)]
    groups = f"SupplementaryGroups={' '.join(options.groups)}\n" if options.groups else ""
    return f"""\
# Written by `hearth service install`; `hearth service uninstall` removes it.
[Unit]
Description=Hearth smart-home gateway
# The broker (when Mosquitto runs on this machine) and the network come first; neither is required:
# the gateway reconnects on its own.
Wants=network-online.target
After=network-online.target mosquitto.service bluetooth.service

[Service]
Type=notify
NotifyAccess=main
ExecStart={shlex.join(command)}
User={options.user}
Group={options.user}
{groups}Environment=HEARTH_DATA_DIR={STATE_DIR} PYTHONUNBUFFERED=1
# /var/lib/hearth, owned by the user, 0700: the database, tokens, users, the TLS key.
StateDirectory=hearth
StateDirectoryMode=0700
UMask=0077
# The gateway pings from its event loop at half this period; a loop held this long is a hung gateway.
WatchdogSec={options.watchdog_s}s
TimeoutStartSec={START_TIMEOUT_S}s
TimeoutStopSec=30s
Restart=on-failure
RestartSec={RESTART_DELAY_S}s
StandardOutput=journal
StandardError=journal
SyslogIdentifier={options.name}
# The rest of the system read-only, homes and other users' /tmp invisible, no way to gain privileges.
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
NoNewPrivileges=yes
# BLE scanning (bleak through BlueZ, raw HCI for passive scans) needs these two, and nothing else does.
AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN
CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
# D-Bus (BlueZ) and the notify socket, IPv4/IPv6, netlink (interfaces for mDNS), Bluetooth sockets.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_BLUETOOTH

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class Step:
    """One thing install/uninstall does: write a file, remove one, or run a command."""

    what: str  # "write", "remove", "run"
    path: Path | None = None
    text: str | None = None
    mode: int = 0o644
    argv: tuple[str, ...] = ()
    only_if_missing: bool = False  # write: keep an existing file
    group: str | None = None  # write: the file's group (the config: readable by the service's user, no one else)

    def describe(self) -> str:
        if self.what == "run":
            return f"run: {shlex.join(self.argv)}"
        if self.what == "write":
            keep = " (unless it exists)" if self.only_if_missing else ""
            group = f", group {self.group}" if self.group else ""
            return f"write {self.path} (mode {self.mode:04o}{group}){keep}"
        return f"remove {self.path}"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _systemctl(options: ServiceOptions, *args: str) -> Step:
    root = [f"--root={options.root}"] if options.root is not None else []
    return Step("run", argv=("systemctl", *root, *args))


def install_steps(options: ServiceOptions) -> list[Step]:
    unit_path = options.under_root(SYSTEM_UNIT_DIR / options.unit_file)
    steps: list[Step] = []
    if options.root is None and not _user_exists(options.user):
        steps.append(Step("run", argv=("useradd", "--system", "--user-group", "--no-create-home",
                                       "--home-dir", str(STATE_DIR), "--shell", "/usr/sbin/nologin",
                                       "--comment", "Hearth smart-home gateway", options.user)))
    if options.config is not None:
        # 0640, group of the service's user: the config may hold the broker's password.
        steps.append(Step("write", options.under_root(options.config), CONFIG_TEMPLATE, 0o640, only_if_missing=True,
                          group=options.user if options.root is None else None))
    steps.append(Step("write", unit_path, unit_text(options), 0o644))
    if options.root is None:
        steps.append(_systemctl(options, "daemon-reload"))
    enable = ["enable", "--now"] if options.start and options.root is None else ["enable"]
    steps.append(_systemctl(options, *enable, options.unit_file))
    return steps


def uninstall_steps(options: ServiceOptions) -> list[Step]:
    """Disable, stop and remove the unit; the user, the config and /var/lib/hearth (the house) stay. Nothing
    when the unit is not installed."""
    unit_path = options.under_root(SYSTEM_UNIT_DIR / options.unit_file)
    if not unit_path.exists():
        return []
    disable = ["disable", "--now"] if options.root is None else ["disable"]
    steps = [_systemctl(options, *disable, options.unit_file), Step("remove", unit_path)]
    if options.root is None:
        steps.append(_systemctl(options, "daemon-reload"))
    return steps


Runner = Callable[[Sequence[str]], int]


def _run(argv: Sequence[str]) -> int:
    # Bounded: systemctl enable --now waits for the start (TimeoutStartSec), useradd for nothing.
    return subprocess.run(list(argv), timeout=START_TIMEOUT_S + 30, check=False).returncode


def apply(steps: list[Step], say: Callable[[str], None], run: Runner = _run) -> None:
    """Do ``steps`` in order, saying each; the first that fails stops the rest (ServiceError)."""
    for step in steps:
        if step.what == "write":
            assert step.path is not None and step.text is not None
            if step.only_if_missing and step.path.exists():
                say(f"keep {step.path} (exists)")
                continue
            say(step.describe())
            try:
                step.path.parent.mkdir(parents=True, exist_ok=True)
                temporary = step.path.with_name(step.path.name + ".tmp")
                temporary.write_text(step.text, encoding="utf-8")
                temporary.chmod(step.mode)
                if step.group is not None:
                    shutil.chown(temporary, group=step.group)
                os.replace(temporary, step.path)
            except (OSError, LookupError) as err:
                raise ServiceError(f"cannot write {step.path}: {getattr(err, 'strerror', None) or err}") from err
        elif step.what == "remove":
            assert step.path is not None
            if not step.path.exists():
                say(f"{step.path}: not there")
                continue
            say(step.describe())
            try:
                step.path.unlink()
            except OSError as err:
                raise ServiceError(f"cannot remove {step.path}: {err.strerror or err}") from err
        else:
            say(step.describe())
            try:
                code = run(step.argv)
            except FileNotFoundError as err:
                raise ServiceError(f"{step.argv[0]} not found: is this a systemd machine?") from err
            except subprocess.TimeoutExpired as err:
                raise ServiceError(f"{shlex.join(step.argv)} did not finish in {err.timeout:.0f} s") from err
            if code != 0:
                raise ServiceError(f"{shlex.join(step.argv)} exited {code}")
