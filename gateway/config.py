"""Configuration: one TOML file, validated by pydantic; every setting has a default (config.example.toml).

Errors name the file, the line and the key, and say what was expected.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.errors import ConfigError, ConfigProblem
from gateway.matter.settings import MatterSection
from gateway.mdns import MdnsSection
from gateway.tomlloc import loads_toml


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default_data_dir() -> Path:
    """Where the gateway keeps its database and token file unless told otherwise."""
    explicit = os.environ.get("HEARTH_DATA_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "hearth"


class GatewaySection(_Section):
    """The gateway itself: its name, where it keeps its data, how much it logs."""

    #: The gateway's name, as it announces itself on the network (mDNS ``_hearth._tcp``).
    name: str = Field("hearth", min_length=1, max_length=64)
    #: Where the database, the token, user and session files live. Unset: ``$HEARTH_DATA_DIR``, else
    #: ``$XDG_DATA_HOME/hearth``, else ``~/.local/share/hearth``.
    data_dir: Path | None = None
    #: How much the gateway logs.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: The event loop ``hearth run`` runs on: "auto" is uvloop when it is installed (it is, with Hearth,
    #: where it has a wheel), else asyncio's own; "uvloop" insists on it; "asyncio" declines it.
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    #: The loop watchdog: a call that holds the event loop (every adapter, the API and the scenes share it)
    #: for more than half of this many seconds is found within this many, logged with the adapter whose code it
    #: was and its stack, and counted in /healthz. 0: off.
    loop_watchdog_s: float = Field(1.0, ge=0, le=60)
    #: An adapter whose code held the loop this many times is stopped and shown as disabled (a maker's bug
    #: must not take the house down); the next start of the gateway tries it again. 0: never.
    loop_block_strikes: int = Field(5, ge=0)
    #: The CPU time slice, in microseconds, that ``hearth run`` asks Linux for on its event loop's thread (and the
    #: threads it starts): with a short one, a message that arrives while another task has the core is handled as
    #: soon as the kernel can switch, not after that task's slice (0.7-3 ms). Linux 6.12 or later; elsewhere it
    #: changes nothing. 0: the kernel's default; otherwise at least 100 (the kernel's minimum).
    loop_slice_us: int = Field(100, ge=0, le=100_000)

    @field_validator("loop_slice_us")
    @classmethod
    def _slice_at_least_the_kernel_minimum(cls, value: int) -> int:
        if 0 < value < 100:
            raise ValueError("at least 100 (the kernel's shortest slice), or 0 for the kernel's default")
        return value


def is_loopback_host(host: str) -> bool:
    """Whether a listening address reaches only this machine ("localhost", 127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve to anything


class MqttSection(_Section):
    """The MQTT broker the devices' bridges (Zigbee2MQTT, Tasmota, Shelly, ...) talk to: the gateway holds
    one session with it, shared by every adapter."""

    #: false: no MQTT at all (adapters that need it are not started).
    enabled: bool = True
    #: "external": connect to a broker that runs on its own (Mosquitto, EMQX) at host:port.
    #: "embedded": run an MQTT 3.1.1 broker (amqtt) inside the gateway, listening on embedded_host:port,
    #: and connect to it; devices' bridges then point at this machine.
    mode: Literal["external", "embedded"] = "external"
    #: Where the embedded broker listens. Loopback by default: listening beyond it (e.g. "0.0.0.0" so
    #: that a Zigbee2MQTT on another machine can connect) requires username and password.
    embedded_host: str = "127.0.0.1"
    #: The external broker's host.
    host: str = "127.0.0.1"
    #: The broker's port. 0 (embedded mode only): any free port, for tests.
    port: int = Field(1883, ge=0, le=65535)
    #: The user name to log in with (external), or that the embedded broker requires.
    username: str | None = None
    #: Its password; never logged, nor shown in config errors.
    password: str | None = Field(None, repr=False)
    #: Connect to the external broker over TLS.
    tls: bool = False
    #: The CA certificate to check the broker's certificate with; unset: the system's CAs.
    ca_file: Path | None = None
    #: Skip the check of the certificate's host name (test set-ups only).
    tls_insecure: bool = False
    #: The MQTT client id; unset: one made from the host name and process id.
    client_id: str | None = Field(None, max_length=64)
    #: The MQTT keepalive: a broker that says nothing this long is taken as gone.
    keepalive_s: int = Field(30, ge=5, le=3600)
    #: Back-off between reconnect attempts: doubles from min to max, with jitter so that many
    #: gateways restarted by one power cut do not hammer the broker in step.
    reconnect_min_s: float = Field(0.5, gt=0, le=60)
    #: The longest wait between reconnect attempts (see ``reconnect_min_s``).
    reconnect_max_s: float = Field(30.0, gt=0, le=600)
    #: Gets a retained "online" on every connect and is the last will ("offline", retained); empty: neither.
    status_topic: str = "hearth/status"

    @model_validator(mode="after")
    def _embedded_rules(self) -> MqttSection:
        if self.mode == "external":
            if self.port == 0:
                raise ValueError("a broker port 1-65535 (port 0 means 'any free port', for mode = \"embedded\" only)")
            return self
        if self.tls:
            raise ValueError("tls = false with mode = \"embedded\" (the embedded broker speaks plain MQTT; "
                             "use an external broker for TLS)")
        if (self.username is None) != (self.password is None) or self.password == "":
            raise ValueError("both username and password, or neither, for the embedded broker")
        if not is_loopback_host(self.embedded_host) and self.username is None:
            raise ValueError(f"username and password: the embedded broker listens beyond loopback "
                             f"(embedded_host = {self.embedded_host!r}) and must not accept anonymous clients "
                             f"(there is no default password; set [mqtt] username and password, or "
                             f"embedded_host = \"127.0.0.1\")")
        return self

    @property
    def embedded(self) -> bool:
        return self.enabled and self.mode == "embedded"


class HaDiscoverySection(_Section):
    """Home Assistant MQTT discovery, published: Hearth's devices as Home Assistant entities (gateway.hapublish)."""

    #: Publish discovery configs, states and command topics for Home Assistant on the gateway's MQTT session.
    #: Off: nothing is subscribed, and configs announced before are cleared from the broker once.
    enabled: bool = False
    #: Home Assistant's discovery prefix (its MQTT integration's ``discovery_prefix``).
    prefix: str = "homeassistant"
    #: "not_native": only devices Home Assistant cannot read on its own (BLE, Shelly over HTTP, plugins,
    #: definitions); devices that came from Home Assistant discovery, Zigbee2MQTT, Tasmota or ESPHome are left
    #: out, so none is doubled. "all": every device.
    devices: Literal["not_native", "all"] = "not_native"
    #: Where Hearth publishes the devices' states (``<base_topic>/<device>/<component>/<capability>``) and takes
    #: Home Assistant's commands (``…/set``).
    base_topic: str = "hearth"

    @field_validator("prefix", "base_topic")
    @classmethod
    def _plain_topic(cls, value: str) -> str:
        from gateway.sdk import plain_topic

        return plain_topic(value)


class StoreSection(_Section):
    """The SQLite store: the devices' last state, their history, and what scenes must remember."""

    #: The database file; unset: ``hearth.db`` in the data directory.
    path: Path | None = None
    #: Seconds between commits. One commit per few seconds, not one per message: SD cards wear out.
    #: A crash or power cut loses at most this much.
    commit_interval_s: float = Field(5.0, gt=0, le=3600)
    #: Seconds between writes of the history (the state, alerts and timers are still written every commit); unset:
    #: with every commit. Writes to an SD card: 300 s cuts a small house's bytes a day several times (see
    #: storage.md), and a power cut then loses up to this much history, never more than a commit of state.
    history_interval_s: float | None = Field(None, gt=0, le=3600)
    #: History of state changes older than this is deleted (daily), except the kinds below that have their own.
    retention_days: float = Field(30.0, gt=0, le=3650)
    #: History of presence, occupancy, contact and motion: when somebody moved, which door opened, whether anybody
    #: was home. Health-adjacent data about the resident, kept shorter; two weeks cover the history page's views.
    presence_retention_days: float = Field(14.0, gt=0, le=3650)
    #: History of energy and power meters; the energy page shows up to 31 days (and looks a week before them).
    energy_retention_days: float = Field(400.0, gt=0, le=3650)
    #: Resolved alerts (who acknowledged and resolved them, when) older than this are deleted; open ones never.
    alert_retention_days: float = Field(180.0, gt=0, le=3650)
    #: Scene run traces (what set a scene off, what it saw and did) older than this are deleted.
    trace_retention_days: float = Field(14.0, gt=0, le=3650)
    #: The delivery records of a resolved alert's notifications (who was told, on which channel, whether it got
    #: through) older than this are deleted; the alert itself stays for ``alert_retention_days``.
    notification_retention_days: float = Field(90.0, gt=0, le=3650)
    #: The audit log (who acknowledged, changed, exported or deleted what, and failed logins) is kept this long.
    audit_retention_days: float = Field(365.0, gt=0, le=3650)

    def retention(self) -> Any:
        """These settings as the store takes them (a ``gateway.store.Retention``)."""
        from gateway.store import Retention

        return Retention(history_days=self.retention_days, presence_days=self.presence_retention_days,
                         energy_days=self.energy_retention_days, alert_days=self.alert_retention_days,
                         trace_days=self.trace_retention_days, notification_days=self.notification_retention_days,
                         audit_days=self.audit_retention_days)


class BackupSection(_Section):
    """Scheduled backups (``hearth backup`` by the gateway itself; see backup.md): the database copied online with
    SQLite's backup API, with the tokens, accounts, config file and definitions, in one archive."""

    #: Make backups on a schedule while the gateway runs. Off by default: the folder they go to should be on
    #: another disk than the database (a USB stick, a network share), which only the owner can choose.
    enabled: bool = False
    #: The local time of day of the daily backup ("HH:MM", in ``[location] timezone``).
    at: str = Field("03:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    #: Instead of daily at ``at``: every this many hours from the gateway's start.
    interval_h: float | None = Field(None, gt=0, le=24 * 366)
    #: Where the archives go (``hearth-backup-<UTC time>.tar.gz``, mode 0600); unset: ``backups`` in the data
    #: directory (then left out of the backups themselves).
    directory: Path | None = None
    #: How many scheduled archives to keep in ``directory``; older ones are deleted (other files are never).
    keep: int = Field(7, ge=1, le=1000)


class ApiSection(_Section):
    """The HTTP API and the web UI (see http-api.md)."""

    #: false: no HTTP server (no API, no web UI).
    enabled: bool = True
    #: Where the API listens. Loopback by default: exposing the API to the LAN ("0.0.0.0") is a decision
    #: the owner makes in config.
    host: str = "127.0.0.1"
    #: Its port. Not 8123: Home Assistant uses it, and many homes run both.
    port: int = Field(8470, ge=0, le=65535)
    #: The API tokens' file (hashes only, mode 0600); unset: ``tokens.json`` in the data directory.
    token_file: Path | None = None
    #: How long a command waits for the device to confirm before it answers "timeout" (202).
    command_timeout_s: float = Field(5.0, gt=0, le=120)
    #: HTTPS: "auto" serves it whenever ``host`` is beyond loopback (with ``certfile``/``keyfile``, or a
    #: self-signed certificate made at first start, whose SHA-256 fingerprint the start-up and /healthz say);
    #: "on" also on loopback; "off" never (beyond loopback only with ``insecure_http = true``).
    tls: Literal["auto", "on", "off"] = "auto"
    #: Your own certificate for HTTPS (PEM, with its chain); unset: the self-signed one, kept in the data
    #: directory.
    certfile: Path | None = None
    #: The key of ``certfile`` (PEM).
    keyfile: Path | None = None
    #: Plain HTTP beyond loopback (passwords and tokens readable by anyone on the LAN): only by this
    #: explicit setting, which the log and /healthz repeat.
    insecure_http: bool = False

    @model_validator(mode="after")
    def _tls_rules(self) -> ApiSection:
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile: both, or neither (the self-signed certificate)")
        if self.enabled and self.tls == "off" and not is_loopback_host(self.host) and not self.insecure_http:
            raise ValueError(f"tls = \"off\" with host {self.host!r} (beyond loopback) would send passwords and "
                             "tokens in clear text: use tls = \"auto\", or set insecure_http = true to insist")
        return self

    def serves_tls(self) -> bool:
        return self.tls == "on" or (self.tls == "auto" and not is_loopback_host(self.host))


class LocationSection(_Section):
    """Where the house is: for sunrise/sunset (computed locally) and local time of day."""

    #: Degrees north (negative: south); needed by ``sun`` triggers.
    latitude: float | None = Field(None, ge=-90, le=90)
    #: Degrees east (negative: west); needed by ``sun`` triggers.
    longitude: float | None = Field(None, ge=-180, le=180)
    #: IANA name such as "Europe/Berlin"; unset: the machine's local time zone.
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            raise ValueError(f"an IANA time zone such as 'Europe/Berlin' ({err})") from None
        return value


class ScenesSection(_Section):
    """The scene engine's settings (the profiles it runs are ``[[profiles]]``)."""

    #: A manual command (API, wall switch) on a light suspends automatic control of it this long.
    manual_override_min: float = Field(30.0, ge=0, le=24 * 60)
    #: A scene may not override a device that a higher-priority scene commanded this recently.
    priority_hold_s: float = Field(300.0, ge=0, le=86400)
    #: How long a scene's command waits for the device to confirm.
    command_timeout_s: float = Field(5.0, gt=0, le=120)
    #: What a manual change suspends automatic control of: "lights" (dimmable or coloured lights, and
    #: devices tagged "light"), "switches" (anything else with on/off: plugs, relays).
    manual_override_covers: list[Literal["lights", "switches"]] = Field(default_factory=lambda: ["lights"])
    #: The entrance door (a contact tagged "entrance") closed, then no movement inside this long: away.
    away_after_min: float = Field(10.0, gt=0, le=24 * 60)
    #: Extra folders searched for ``use = "name"`` before the shipped profiles.
    profile_dirs: list[Path] = Field(default_factory=list)


class SceneSettings(_Section):
    """``[profiles.scenes.<scene id>]``: one scene of a profile changed without copying the profile
    (as Home Assistant's blueprint inputs): switched off or on, parameters of its own, extra conditions."""

    # Its field docstrings are its reference (docs/profile-language.md, gateway.scenes.reference).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    enabled: bool | None = None
    """false: the scene does not run; true: it runs even if the profile ships it disabled."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Parameter values for this scene only (they win over [profiles.params])."""
    conditions: list[dict[str, Any]] = Field(default_factory=list)
    """Conditions appended to the scene's own, in the profile language; ``${name}`` takes this scene's values."""


class ProfileUse(_Section):
    """A scene profile to run, with its parameters; one ``[[profiles]]`` table each."""

    #: A shipped profile's name, a name in ``[scenes] profile_dirs``, or a file path.
    use: str = Field(min_length=1)
    #: false: the profile is not run.
    enabled: bool = True
    #: The profile's parameters (``hearth profile show NAME`` lists them with their defaults).
    params: dict[str, Any] = Field(default_factory=dict)
    #: Scene id -> its settings; checked against the profile when it is loaded.
    scenes: dict[str, SceneSettings] = Field(default_factory=dict)

    def scene_settings(self) -> dict[str, dict[str, Any]]:
        """The per-scene settings as the profile loader takes them (only what the config sets)."""
        return {scene_id: s.model_dump(exclude_unset=True) for scene_id, s in self.scenes.items()}


class Config(_Section):
    gateway: GatewaySection = GatewaySection()
    mqtt: MqttSection = MqttSection()
    ha_discovery: HaDiscoverySection = HaDiscoverySection()
    store: StoreSection = StoreSection()
    backup: BackupSection = BackupSection()
    api: ApiSection = ApiSection()
    mdns: MdnsSection = MdnsSection()
    matter: MatterSection = MatterSection()
    location: LocationSection = LocationSection()
    scenes: ScenesSection = ScenesSection()
    profiles: list[ProfileUse] = Field(default_factory=list)
    #: Notification targets by name (``[notify.<name>]``, each of a ``kind``: "mqtt", "webhook", "apprise",
    #: "log"), and the plain keys of acknowledge links, ``public_url`` and ``ack_link_ttl_h``
    notify: dict[str, Any] = Field(default_factory=dict)
    #: Device id or name -> area
    areas: dict[str, str] = Field(default_factory=dict)
    #: Device id or name -> tags (profiles select by tag: "always_on", "deferrable", "entrance", ...)
    tags: dict[str, list[str]] = Field(default_factory=dict)
    #: Adapter name -> its own section (validated by the adapter); ``enabled = false`` turns one off
    adapters: dict[str, dict[str, Any]] = Field(default_factory=dict)

    source: str = Field("<defaults>", exclude=True)

    @property
    def data_dir(self) -> Path:
        return self.gateway.data_dir or default_data_dir()

    @property
    def store_path(self) -> Path:
        return self.store.path or self.data_dir / "hearth.db"

    @property
    def token_file(self) -> Path:
        return self.api.token_file or self.data_dir / "tokens.json"

    def adapter_section(self, name: str) -> dict[str, Any]:
        return dict(self.adapters.get(name, {}))

    def adapter_enabled(self, name: str) -> bool:
        return bool(self.adapters.get(name, {}).get("enabled", True))


def _line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The line where the key at ``loc`` (a pydantic error location) is written, best effort."""
    from gateway.tomlloc import TomlLocator

    return TomlLocator(text).line_of(loc)


_IS_SENTENCE = re.compile(r"^(must|the|not|no|cannot|expected)\b|\b(must|cannot|is not|are not|has no|contains)\b")


# Keys whose values are never repeated in a message (a config error is printed, logged, shown in a UI).
_SECRET_KEY = re.compile(r"pass(word|wd|phrase)?|secret|token|bindkey|api_?key|psk|credential", re.IGNORECASE)


def _describe(error: Any, holder: type[BaseModel] | None = None, settings_of: str | None = None) -> str:
    """A pydantic error as a config message. ``settings_of``: the adapter whose section it is (an unknown key
    is then checked against that adapter's settings, not against config.example.toml)."""
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    if kind == "extra_forbidden":
        from gateway.suggest import did_you_mean, model_keys

        keys = model_keys(holder) if holder else []
        hint = did_you_mean(str(error["loc"][-1]), keys) if keys and error.get("loc") else ""
        if hint:
            return f"unknown key{hint}"
        if settings_of is not None:
            return f"unknown key (the {settings_of} adapter's settings here: {', '.join(keys) or 'none'})"
        return "unknown key (check the spelling against config.example.toml)"
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
        # A validator says either what it expected ("a broker port 1-65535") or what is wrong ("must not
        # be empty", "the URL has no host"): only the first reads right after "expected".
        if not _IS_SENTENCE.search(message):
            message = "expected " + message
    # Not for a whole section (a model validator's error): it may hold a password.
    secret = any(isinstance(part, str) and _SECRET_KEY.search(part) for part in error.get("loc", ()))
    if "input" in error and kind not in ("missing",) and not isinstance(error["input"], dict) and not secret:
        message += f" (got {error['input']!r})"
    return message


def parse_config(text: str, source: str = "<string>") -> Config:
    try:
        data = loads_toml(text)
    except tomllib.TOMLDecodeError as err:
        line = None
        match = re.search(r"line (\d+)", str(err))
        if match:
            line = int(match.group(1))
        raise ConfigError([ConfigProblem(source, line, "", f"not valid TOML: {err}")]) from err
    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        from gateway.suggest import walk_loc

        problems = [
            ConfigProblem(source, _line_of(text, e["loc"]), ".".join(str(p) for p in e["loc"]),
                          _describe(e, walk_loc(Config, e["loc"])[1]))
            for e in err.errors()
        ]
        raise ConfigError(problems) from err
    return config.model_copy(update={"source": source})


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Load ``path``; with None, the embedded defaults."""
    if path is None:
        return Config()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([ConfigProblem(str(file), None, "", f"cannot read: {err.strerror}")]) from err
    except UnicodeDecodeError as err:
        raise ConfigError([ConfigProblem(str(file), None, "", "not UTF-8 text")]) from err
    return parse_config(text, str(file))
