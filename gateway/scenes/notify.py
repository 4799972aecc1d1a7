"""Notification delivery for scenes and alerts: MQTT topics, HTTP webhooks, Apprise services (ntfy,
e-mail, Telegram, …: a person's phone) and the gateway log.

Owns the ``[notify.<name>]`` target models, the ``[notify]`` settings (``public_url``, the acknowledge
links' lifetime), the one-time acknowledge-link tokens (:class:`AckTokens`) and the :class:`Notifier`
that delivers to targets with retries. A notification is never silently dropped: every one ends in exactly one
:class:`DeliveryResult` (delivered, failed, unknown_target, cancelled or skipped) handed to ``on_result``
(``on_progress`` hears of a notification held for quiet hours or a channel failing while it is retried;
a held one is kept in the store, so a restart in the night does not lose it),
and every failed attempt is logged once at warning. Secrets stay out of logs and results: webhook
header values are never logged, and URLs appear only as ``scheme://host:port`` (userinfo, query and
path are dropped: webhook services such as Slack and Discord put their token in the path). An Apprise
URL is shown only as its scheme and position (``ntfy#1``): its host may itself be the secret (a Telegram
bot token), and a message's acknowledge link is a credential too; both are scrubbed from every log line
(Apprise's own included) and every error.

Back-off waits go through the injected clock, so simulated time drives retries in tests and replay.
:class:`RecordingNotifier` is the stand-in for ``hearth replay``, which must not touch the network.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import re
import secrets
import traceback
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.clock import iso_utc
from gateway.i18n import DEFAULT_LANGUAGE, available_languages, normalise, translate

if TYPE_CHECKING:
    import aiohttp  # imported on the first webhook delivery, not with this module

    from gateway.clock import Clock
    from gateway.sdk import MqttClient

__all__ = [
    "AckLink",
    "AckTokens",
    "AppriseTarget",
    "DeliveryResult",
    "DeliveryStatus",
    "LogTarget",
    "MqttTarget",
    "Notification",
    "NotificationSender",
    "Notifier",
    "NotifySettings",
    "NotifyTargets",
    "RecordingNotifier",
    "Severity",
    "Target",
    "WebhookTarget",
    "notify_settings",
    "quiet_until",
    "redact_url",
]

_log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]
# Final: delivered, failed, unknown_target, cancelled (the notifier stopped), skipped (held in quiet
# hours, and by their end the alert was no longer open). Only reported as progress: held, pending.
DeliveryStatus = Literal["delivered", "failed", "unknown_target", "cancelled", "skipped", "held", "pending"]

# RFC 9110 token: what a header name may be made of.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# 408 (request timeout) and 429 (too many requests) are the 4xx a later attempt can cure.
_RETRYABLE_4XX = frozenset({408, 429})
# Webhook fields whose values may appear in a config error; every other input is hidden.
_PLAIN_FIELDS = frozenset({"kind", "method", "timeout_s"})
_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
# How long a delivery to an MQTT target waits for the broker connection before its first attempt: a
# gateway restarting connects within seconds; longer than that, the retries and their back-off take over.
CONNECT_WAIT_S = 30.0


# ------------------------------------------------------------------ configuration


class _TargetModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The language of what the gateway itself writes to this contact (the final notice, "resolved", the
    #: acknowledge page): a family reads in more than one. A catalogue's tag ("zh-Hans"); unset: English.
    #: What profiles write (their alert titles and messages) is sent as the installer wrote it.
    language: str | None = None

    @field_validator("language")
    @classmethod
    def _check_language(cls, language: str | None) -> str | None:
        if language is None:
            return None
        found = normalise(language)
        if found is None:
            raise ValueError(f"no catalogue for the language {language!r} (languages: "
                             f"{', '.join(available_languages())})")
        return found


class MqttTarget(_TargetModel):
    """Publish the notification as JSON to a topic of the gateway's MQTT session.

    The JSON: ``id``, ``t``, ``title``, ``message``, ``severity``, ``scene``, ``alert_id``, ``data`` and
    ``ack_url``, the alert's one-time acknowledge link for this target (null without ``public_url``).
    """

    kind: Literal["mqtt"]
    #: The topic to publish to (no wildcards).
    topic: str
    #: The MQTT QoS of the message.
    qos: int = Field(1, ge=0, le=2)
    #: Publish it retained.
    retain: bool = False

    @field_validator("topic")
    @classmethod
    def _check_topic(cls, topic: str) -> str:
        if not topic:
            raise ValueError("the topic must not be empty")
        if "+" in topic or "#" in topic:
            raise ValueError("a topic to publish to cannot contain the wildcards '+' or '#'")
        if "\0" in topic:
            raise ValueError("the topic must not contain a NUL character")
        if len(topic.encode("utf-8")) > 65535:
            raise ValueError("the topic is longer than MQTT's 65535 bytes")
        return topic


class WebhookTarget(_TargetModel):
    """POST (or PUT) the notification as JSON to an HTTP(S) URL: the JSON that ``kind = "mqtt"`` publishes,
    ``ack_url`` included.

    ``headers`` usually carry credentials (``Authorization = "Bearer …"``): they are hidden from the
    repr and never logged. Redirects are not followed, so those headers only ever go to ``url``'s host.
    """

    kind: Literal["webhook"]
    #: The http:// or https:// URL to send it to.
    url: str
    #: The HTTP method.
    method: Literal["POST", "PUT"] = "POST"
    #: Extra request headers (``{ Authorization = "Bearer ..." }``); never logged.
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    #: A receiver that takes longer than this is treated like one that is down: retried.
    timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a port that is not a number in 0..65535)
        except ValueError as err:
            raise ValueError(f"not a valid URL: {err}") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError("the URL must start with http:// or https://")
        if not parts.hostname:
            raise ValueError("the URL has no host")
        if any(c.isspace() for c in url):
            raise ValueError("the URL must not contain whitespace")
        return url

    @model_validator(mode="after")
    def _check_headers(self) -> WebhookTarget:
        for name, value in self.headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if "\r" in value or "\n" in value or "\0" in value:
                raise ValueError(f"the value of header {name!r} contains a line break or NUL")
        parts = urlsplit(self.url)
        if (parts.username or parts.password) and any(name.lower() == "authorization" for name in self.headers):
            raise ValueError(
                "give credentials either in the URL (user:password@) or in an Authorization header, not both"
            )
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _hide_secrets_in_errors(cls, data: Any, handler: ModelWrapValidatorHandler[WebhookTarget]) -> WebhookTarget:
        """A validation error carries its input, and config errors print it: keep only what is not secret.

        Defined after the other validators so that it wraps them too (pydantic applies them in order).
        """
        try:
            return handler(data)
        except ValidationError as err:
            errors: list[Any] = []
            for error in err.errors():
                field_name = error["loc"][0] if error["loc"] else None
                if field_name == "url" and isinstance(error.get("input"), str):
                    error["input"] = redact_url(error["input"])
                elif field_name not in _PLAIN_FIELDS:
                    error["input"] = "<hidden>"
                errors.append(error)
            raise ValidationError.from_exception_data(err.title, errors) from None

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name == "url" else value


class LogTarget(_TargetModel):
    """Write the notification to the gateway log (for tests, the demo and a first setup)."""

    kind: Literal["log"]


class AppriseTarget(_TargetModel):
    """A person reached through Apprise (https://github.com/caronc/apprise): ntfy, e-mail, Telegram, Gotify,
    Signal, Matrix, Pushover, … one URL per channel.

    ``urls`` are all notified at once, as Apprise itself does with several URLs: the phone's push and the
    e-mail both get it. Only when none of them got through (each retried) is ``fallback_urls`` tried, one
    at a time in order until one does (an SMS gateway that costs money per message, say). ``quiet_hours``
    (``"22:00-07:00"``, the house's local time) holds every notification that is not ``critical`` until
    they end; a held one is kept in the store, so a restart in the night does not lose it. The URLs carry
    credentials: they are hidden from the repr, from config errors and from logs.
    """

    kind: Literal["apprise"]
    #: Apprise URLs, all notified at once (``"ntfys://ntfy.sh/topic"``, ``"mailtos://..."``).
    urls: list[str] = Field(min_length=1, repr=False)
    #: Tried one at a time, in order, only when none of ``urls`` got through.
    fallback_urls: list[str] = Field(default_factory=list, repr=False)
    #: ``"22:00-07:00"`` (the house's local time): notifications that are not critical wait until it ends.
    quiet_hours: str | None = None
    #: One attempt on one channel that takes longer than this is a failed attempt (and is retried). Apprise
    #: is synchronous: it runs in a worker thread, which cannot be killed; past this we stop waiting for it.
    timeout_s: float = Field(30.0, gt=0, le=300)

    @field_validator("urls", "fallback_urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        for index, url in enumerate(urls):
            scheme, sep, rest = url.partition("://")
            if not sep or not scheme or not rest:
                raise ValueError(f"URL {index + 1} is not an Apprise URL (scheme://…, e.g. ntfy://host/topic)")
            if any(c.isspace() for c in url):
                raise ValueError(f"URL {index + 1} ({scheme}://…) must not contain whitespace")
            if not _apprise_understands(url):
                raise ValueError(
                    f"URL {index + 1} ({scheme}://…) is not one Apprise understands (a misspelt scheme, or a "
                    f"part missing: see the service's page at https://github.com/caronc/apprise/wiki)"
                )
        return urls

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet_hours(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_quiet_hours(value)
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _hide_secrets_in_errors(cls, data: Any, handler: ModelWrapValidatorHandler[AppriseTarget]) -> AppriseTarget:
        """As :meth:`WebhookTarget._hide_secrets_in_errors`: a config error shows no URL."""
        try:
            return handler(data)
        except ValidationError as err:
            errors: list[Any] = []
            for error in err.errors():
                field_name = error["loc"][0] if error["loc"] else None
                if field_name not in ("kind", "quiet_hours", "timeout_s"):
                    error["input"] = "<hidden>"
                errors.append(error)
            raise ValidationError.from_exception_data(err.title, errors) from None

    @property
    def quiet_minutes(self) -> tuple[int, int] | None:
        """``quiet_hours`` as (start, end) minutes of the day; the end may be earlier (past midnight)."""
        return None if self.quiet_hours is None else _parse_quiet_hours(self.quiet_hours)

    def channels(self) -> list[tuple[int, str, str]]:
        """(tier, label, url) of every channel: tier 0 is ``urls``, tier n the n-th fallback."""
        out = [(0, f"{_scheme(url)}#{i + 1}", url) for i, url in enumerate(self.urls)]
        out += [(i + 1, f"{_scheme(url)}#fallback{i + 1}", url) for i, url in enumerate(self.fallback_urls)]
        return out


_QUIET_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def _parse_quiet_hours(value: str) -> tuple[int, int]:
    match = _QUIET_HOURS.match(value)
    if not match:
        raise ValueError('quiet hours as "HH:MM-HH:MM" in the house\'s local time, e.g. "22:00-07:00"')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ValueError(f"times of day 00:00-23:59 (got {value!r})")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError(f"a start and an end that differ (got {value!r})")
    return start, end


def quiet_until(t: float, quiet: tuple[int, int], tz: tzinfo) -> float | None:
    """When the quiet hours ``quiet`` that contain ``t`` end (epoch seconds), or None outside them."""
    start, end = quiet
    local = datetime.fromtimestamp(t, tz)
    minute = local.hour * 60 + local.minute + local.second / 60
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    day = local.date() if minute < end else local.date() + timedelta(days=1)
    # A wall-clock time in the house's zone (a DST change in the night moves the end with it).
    until = datetime(day.year, day.month, day.day, end // 60, end % 60, tzinfo=tz).timestamp()
    return max(until, t)


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() or "?"


def _apprise_understands(url: str) -> bool:
    try:
        import apprise  # lazily: only a config with an Apprise target pays for its ~190 plugins
    except ImportError as err:
        raise ValueError(f'the apprise package, which kind = "apprise" needs, is not installed ({err})') from None
    _hide_in_apprise_logs(url)
    try:
        return apprise.Apprise.instantiate(url, suppress_exceptions=True) is not None
    except Exception:
        return False


class NotifySettings(BaseModel):
    """The plain keys of the ``[notify]`` table (its sub-tables are the targets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Where a phone reaches this gateway's API from outside ("https://hearth.example.org"): acknowledge
    #: links are ``<public_url>/api/ack/<token>``, one per contact, at the end of an Apprise message and as
    #: ``ack_url`` in a webhook's or MQTT topic's JSON. None: messages carry no link (the API listens on
    #: loopback by default, and a link a phone cannot open is worse than none).
    public_url: str | None = None
    #: How long an acknowledge link works (a link in an old e-mail must not acknowledge next month's alert).
    ack_link_ttl_h: float = Field(24.0, gt=0, le=24 * 30)

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 (raises ValueError for a bad port)
        except ValueError as err:
            raise ValueError(f"a URL such as 'https://hearth.example.org' ({err})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("a URL such as 'https://hearth.example.org' (http:// or https:// and a host)")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("a URL without user, password, query or fragment")
        return url.rstrip("/")


_SETTING_KEYS = frozenset(NotifySettings.model_fields)


def _targets_only(section: Any) -> Any:
    """``[notify]`` holds both settings (plain keys) and targets (tables): the targets' validator sees
    only the tables, so ``public_url`` is never taken for a target named "public_url"."""
    if isinstance(section, dict):
        return {k: v for k, v in section.items() if not (k in _SETTING_KEYS and not isinstance(v, dict))}
    return section


def notify_settings(section: dict[str, Any], source: str = "<config>") -> NotifySettings:
    """The ``[notify]`` settings from the config's ``notify`` table (``config.notify``)."""
    from gateway.errors import ConfigError, ConfigProblem

    plain = {k: v for k, v in section.items() if k in _SETTING_KEYS and not isinstance(v, dict)}
    try:
        return NotifySettings.model_validate(plain)
    except ValidationError as err:
        raise ConfigError(
            [
                ConfigProblem(source, None, ".".join(map(str, ("notify", *e["loc"]))), str(e.get("msg", "invalid")))
                for e in err.errors()
            ]
        ) from err


_AnyTarget = MqttTarget | WebhookTarget | LogTarget | AppriseTarget
Target = Annotated[_AnyTarget, Field(discriminator="kind")]
#: The ``[notify.<name>]`` tables of the config: target name -> target (the plain keys of ``[notify]``,
#: its settings, are left out: see :func:`notify_settings`).
NotifyTargets = Annotated[dict[str, Target], BeforeValidator(_targets_only)]


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what a log line may show of a webhook URL."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


# ------------------------------------------------------------------ values


@dataclass(frozen=True, slots=True)
class Notification:
    id: str
    t: float  # epoch seconds (UTC)
    title: str
    message: str
    severity: Severity = "info"
    scene: str | None = None
    alert_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self, ack_url: str | None = None) -> bytes:
        """The body sent to webhooks and MQTT topics (``t`` in ISO-8601 UTC).

        ``ack_url`` is the one-time acknowledge link of this message (a receiver can show it as a button);
        null when there is none (no ``[notify] public_url``, or not an open alert's notification).
        """
        return orjson.dumps(
            {
                "id": self.id,
                "t": iso_utc(self.t),
                "title": self.title,
                "message": self.message,
                "severity": self.severity,
                "scene": self.scene,
                "alert_id": self.alert_id,
                "data": self.data,
                "ack_url": ack_url,
            },
            option=orjson.OPT_NON_STR_KEYS,
        )

    def to_record(self) -> dict[str, Any]:
        """As JSON data, for the store (a notification held for quiet hours outlives a restart)."""
        return {"id": self.id, "t": self.t, "title": self.title, "message": self.message, "severity": self.severity,
                "scene": self.scene, "alert_id": self.alert_id, "data": self.data}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Notification:
        """The notification :meth:`to_record` stored."""
        return cls(id=str(record["id"]), t=float(record["t"]), title=str(record["title"]),
                   message=str(record["message"]), severity=record.get("severity", "info"),
                   scene=record.get("scene"), alert_id=record.get("alert_id"), data=dict(record.get("data") or {}))


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The final outcome of one :meth:`Notifier.send`; ``attempts`` counts attempts actually made."""

    target: str
    notification_id: str
    status: DeliveryStatus
    attempts: int
    error: str | None
    t: float  # epoch seconds, from the notifier's clock
    # Apprise targets: one entry per channel tried (``{"channel": "ntfy#1", "tier": 0, "status",
    # "attempts", "error", "t"}``) and one for quiet hours (``{"channel": "quiet hours", "status": "held",
    # "until"}``). Labels and errors carry no secret. Empty for the other kinds.
    deliveries: tuple[dict[str, Any], ...] = ()


class NotificationSender(Protocol):
    """What the scene engine needs from a notifier: :class:`Notifier` live, :class:`RecordingNotifier` in replay."""

    def send(self, target: str, notification: Notification) -> None: ...


class _AttemptFailed(Exception):
    """One attempt failed; ``retry`` says whether another attempt could succeed."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(slots=True)
class _Delivery:
    target: str
    notification: Notification
    attempts: int = 0
    reported: bool = False
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    # Held for quiet hours and kept in the notifier's storage until it ends (see Notifier._keep_held).
    kept: bool = False


# ------------------------------------------------------------------ acknowledge links

# secrets.token_urlsafe(32): 32 random bytes, 43 URL-safe characters.
_ACK_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
# In a log line or an error, an acknowledge link shows its path but not its token.
_ACK_LINK = re.compile(r"(/api/ack/)[A-Za-z0-9_-]+")
AckState = Literal["valid", "used", "expired"]
AckCheck = Literal["unknown", "valid", "used", "expired"]


@dataclass(frozen=True, slots=True)
class AckLink:
    """What an acknowledge token stands for (never the token itself)."""

    alert_id: str
    target: str
    issued_at: float
    expires_at: float
    used_at: float | None

    def state(self, now: float) -> AckState:
        if self.used_at is not None:
            return "used"
        return "expired" if now >= self.expires_at else "valid"


class AckTokens:
    """One-time, expiring acknowledge links: a random token per message, bound to one alert.

    Only the token's SHA-256 is kept: a token is 256 random bits, so its hash cannot be searched back
    (a slow password hash would add nothing), and a copy of the database opens no alert. Kept in
    ``storage`` (the store's key-value scope) so that links sent before a restart still work; a used or
    expired record stays another lifetime so its link can say "already used" or "expired" rather than
    "unknown", then it is purged.
    """

    _KEY = "tokens"

    def __init__(self, clock: Clock, storage: Any = None, *, ttl_s: float = 24 * 3600.0) -> None:
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, not {ttl_s}")
        self._clock = clock
        self._storage = storage
        self.ttl_s = ttl_s
        stored = storage.get(self._KEY, {}) if storage is not None else {}
        self._records: dict[str, dict[str, Any]] = dict(stored) if isinstance(stored, dict) else {}

    def issue(self, alert_id: str, target: str) -> str:
        """A new token for ``alert_id``; the caller puts it in one message and forgets it."""
        now = self._clock.time()
        self._purge(now)
        token = secrets.token_urlsafe(32)
        self._records[_token_hash(token)] = {
            "alert_id": alert_id, "target": target, "issued_at": now, "expires_at": now + self.ttl_s, "used_at": None,
        }  # fmt: skip
        self._save()
        return token

    def check(self, token: str) -> tuple[AckCheck, AckLink | None]:
        """Whether ``token`` would acknowledge its alert now, and the link it stands for (None if unknown)."""
        record = self._records.get(_token_hash(token)) if _ACK_TOKEN.match(token) else None
        if record is None:
            return "unknown", None
        link = AckLink(record["alert_id"], record["target"], record["issued_at"], record["expires_at"],
                       record.get("used_at"))  # fmt: skip
        return link.state(self._clock.time()), link

    def redeem(self, token: str) -> tuple[AckCheck, AckLink | None]:
        """As :meth:`check`, and a valid token is used up: the caller acknowledges the alert only when the
        answer is "valid" (a second call answers "used")."""
        state, link = self.check(token)
        if state == "valid":
            self._records[_token_hash(token)]["used_at"] = self._clock.time()
            self._save()
        return state, link

    def __len__(self) -> int:
        return len(self._records)

    def _purge(self, now: float) -> None:
        old = [h for h, r in self._records.items() if now >= r["expires_at"] + self.ttl_s]
        for token_hash in old:
            del self._records[token_hash]

    def _save(self) -> None:
        if self._storage is not None:
            self._storage.set(self._KEY, dict(self._records))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


# ------------------------------------------------------------------ Apprise log scrubbing


class _AppriseLogScrubber(logging.Filter):
    """Apprise logs payloads at debug (the message, with its acknowledge link) and sometimes URLs: every
    record of its logger goes through here before any handler sees it."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a broken record is logging's problem, not ours
            return True
        clean = _scrub_secrets(text, self.secrets)
        if clean != text:
            record.msg, record.args = clean, None
        return True


_APPRISE_LOG_SCRUBBER = _AppriseLogScrubber()
# The loggers that see Apprise's requests. A logger's filter applies only to its own records, not to its
# children's, so urllib3's modules are named one by one: at debug, its connection pool logs each request
# line, and a Telegram bot token or an ntfy topic is in the path.
_APPRISE_LOGGERS = (
    "apprise",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests_oauthlib.oauth2_session",
)


def _watch_apprise_logs(targets: dict[str, _AnyTarget]) -> None:
    for target in targets.values():
        if isinstance(target, AppriseTarget):
            for url in (*target.urls, *target.fallback_urls):
                _hide_in_apprise_logs(url)


def _hide_in_apprise_logs(url: str) -> None:
    """From now on, Apprise's log lines show no part of ``url`` (it logs a URL as soon as it parses one)."""
    _APPRISE_LOG_SCRUBBER.secrets |= _apprise_secrets(url)
    for name in _APPRISE_LOGGERS:
        logger = logging.getLogger(name)
        if _APPRISE_LOG_SCRUBBER not in logger.filters:
            logger.addFilter(_APPRISE_LOG_SCRUBBER)


def _apprise_secrets(url: str) -> set[str]:
    """Every part of an Apprise URL that may be secret: all but the scheme, the query's keys and ports.

    Hosts are included: Telegram's "host" is the bot token. Short parts (under 3 characters) are left:
    replacing every "1" in a message would hide nothing and garble everything."""
    _scheme_part, _, rest = url.partition("://")
    rest_no_fragment, _, fragment = rest.partition("#")
    head, _, query = rest_no_fragment.partition("?")
    pieces = {url, rest, head, query, fragment, *re.split(r"[/@:]", head)}
    pieces |= {head.rpartition("@")[0]}
    pieces |= {value for _key, value in parse_qsl(query, keep_blank_values=False)}
    pieces |= {unquote(p) for p in pieces}
    return {p for p in pieces if len(p) >= 3 and not (p.isdigit() and len(p) <= 5)}


def _scrub_secrets(text: str, secret_parts: set[str] | frozenset[str]) -> str:
    text = _ACK_LINK.sub(r"\1***", text)
    for secret in sorted(secret_parts, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


# Apprise's notify types, by severity: the icon, colour or priority each service shows.
_APPRISE_TYPES = {"info": "info", "warning": "warning", "critical": "failure"}
# Apprise's log lines at these levels are the reason an attempt failed.
_APPRISE_REASON_LEVELS = frozenset({"WARNING", "ERROR", "CRITICAL"})


def _apprise_notify(url: str, title: str, body: str, severity: str, timeout_s: float) -> None:
    """One attempt on one channel. Blocking (requests, smtplib): runs in a worker thread, never on the loop."""
    import apprise

    # In memory: nothing of Apprise's (its e-mail plugin caches) is written to the Pi's SD card.
    asset = apprise.AppriseAsset(storage_mode="memory", secure_logging=True)
    client = apprise.Apprise(asset=asset)
    if not client.add(url):
        raise _AttemptFailed("Apprise does not understand this URL", retry=False)
    try:
        # Plain text, said so: Apprise then escapes it for the services that take HTML (e-mail), where a
        # "<" in a message would otherwise be markup, and keeps its line breaks.
        result = client.notify(body=body, title=title, notify_type=_APPRISE_TYPES.get(severity, "info"),
                               body_format="text", timeout=timeout_s)  # fmt: skip
    except Exception as err:  # a plugin's bug: this attempt failed, the next may not
        raise _AttemptFailed(_describe(err), retry=True) from None
    if result:
        return
    reasons: list[str] = []
    logs = getattr(result, "logs", None)
    if callable(logs):
        for entry in logs():
            if getattr(entry, "level", "") in _APPRISE_REASON_LEVELS and entry.message not in reasons:
                reasons.append(entry.message)
    status = getattr(getattr(result, "status", None), "name", "")
    if status == "TIMEOUT" and not reasons:
        reasons.append(f"no answer within {timeout_s:g} s")
    raise _AttemptFailed("; ".join(reasons[-3:]) or "Apprise reported a failure", retry=True)


# ------------------------------------------------------------------ the notifier


class Notifier:
    """Delivers notifications to named targets, with retries, as tracked background tasks.

    ``async with Notifier(targets, clock, mqtt=session, on_result=record) as notifier:`` then
    ``notifier.send("phone", notification)`` from anywhere on the loop. Each delivery makes up to
    ``attempts`` attempts, waiting ``backoff_s[i]`` (the last value repeating) on the clock between
    them. A webhook 2xx is delivered; 4xx other than 408/429 fails at once (it will not fix itself);
    5xx, 408, 429, connection errors and timeouts are retried. An MQTT target is delivered once the
    message is handed to a connected session (which then owns the QoS handshake); no session or a
    disconnected one is retried. On exit, deliveries still pending are cancelled and reported as such.

    An Apprise target: outside its quiet hours (or for a critical notification) each of its ``urls`` is
    tried at once, each channel with its own attempts and back-off, in a worker thread; if none got
    through, each ``fallback_urls`` in turn. Delivered when one channel got through; the result's
    ``deliveries`` says what each did. Inside quiet hours the notification waits (on the clock, in
    ``timezone``) for their end, then goes out marked as held, or is skipped if ``alert_state`` says its
    alert was acknowledged or resolved meanwhile. Several notifications of one alert held for one
    contact go out as one, the latest. With ``storage`` (the store's key-value scope) a held notification
    outlives a restart: it is kept there, committed through ``commit``, until it has gone out (or been
    skipped), and a Notifier started on that storage holds it again until the end of its quiet hours (at
    once if they are over), as if there had been no restart. Those restored deliveries start at the first
    ``await`` after ``async with``: what ``alert_state`` reads (the scene engine's alerts) should be loaded
    by then.

    With ``ack_tokens`` and ``settings.public_url``, a notification of an open alert carries a one-time
    acknowledge link, issued per target: an Apprise message ends with it, a webhook's or MQTT topic's
    JSON has it as ``ack_url``. ``commit`` (the store's flush) is awaited before such a message leaves,
    so the link outlives a power cut.
    """

    def __init__(
        self,
        targets: dict[str, _AnyTarget],
        clock: Clock,
        *,
        mqtt: MqttClient | None,
        on_result: Callable[[DeliveryResult], None] | None = None,
        on_progress: Callable[[DeliveryResult], None] | None = None,
        settings: NotifySettings | None = None,
        timezone: tzinfo = UTC,
        ack_tokens: AckTokens | None = None,
        alert_state: Callable[[str], str | None] | None = None,
        commit: Callable[[], Awaitable[None]] | None = None,
        storage: Any = None,
        attempts: int = 4,
        # 2 s rides out a receiver restarting; 10 and 30 s a Wi-Fi or DSL reconnect. Four attempts
        # span ~42 s: long enough for a blip, short enough that an alert is not silently late.
        backoff_s: tuple[float, ...] = (2, 10, 30),
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self._targets = dict(targets)
        self._configured = dict(targets)  # as the config has them: a person's own settings apply over these
        self._clock = clock
        self._mqtt = mqtt
        self._on_result = on_result
        self._on_progress = on_progress
        self._settings = settings or NotifySettings()
        self._tz = timezone
        self._ack_tokens = ack_tokens
        self._alert_state = alert_state
        self._commit = commit
        # (target, alert id) -> when a notification of it last got through: whom a "resolved" notice is
        # news to, and who is awake waiting for it.
        self._told: dict[tuple[str, str], float] = {}
        # (target, alert id) -> the ids of its notifications held for quiet hours now; and the (target,
        # notification id) of those a later one of the same alert superseded (skipped when they end).
        self._holding: dict[tuple[str, str], set[str]] = {}
        self._superseded: set[tuple[str, str]] = set()
        # The store's key-value scope: held notifications, by target and notification id (see _keep_held).
        self._storage = storage
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._attempts = attempts
        self._backoff_s = tuple(backoff_s)
        self._tasks: dict[asyncio.Task[None], _Delivery] = {}
        self._session: aiohttp.ClientSession | None = None
        self._running = False
        self._closed = False
        self._delivered = 0
        self._failed = 0
        self._unknown_target = 0
        self._cancelled = 0
        self._skipped = 0
        self._retries = 0
        _watch_apprise_logs(self._targets)

    # ------------------------------------------------------------------ public API

    def has_target(self, target: str) -> bool:
        return target in self._targets

    def target_names(self) -> list[str]:
        return list(self._targets)

    def personalise(self, target: str, *, language: str | None = None,
                    settings: dict[str, Any] | None = None) -> None:
        """A contact's own settings over what the config says of it: the person's ``language`` (None: the
        config's) and ``settings`` (None: none), ``quiet_hours`` (a string, or None for none) and ``urls``
        of an Apprise contact. Checked as the config's are; a ValueError says what is wrong, and nothing
        changes then. Notifications sent from now on (and those held, when their quiet hours end) use it."""
        base = self._configured.get(target)
        if base is None:
            raise ValueError(f"no notify target named {target!r}")
        settings = settings or {}
        unknown = set(settings) - {"quiet_hours", "urls"}
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        data = base.model_dump()
        if language is not None:
            data["language"] = language
        if settings and not isinstance(base, AppriseTarget):
            raise ValueError(f"quiet hours and channels are settings of an Apprise contact; {target!r} is a "
                             f"{base.kind} target")
        data.update(settings)
        try:
            spec = type(base).model_validate(data)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"{where}: {first['msg']}" if where else first["msg"]) from None
        self._targets[target] = spec
        _watch_apprise_logs({target: spec})

    def describe(self, target: str) -> dict[str, Any]:
        """What a contact's person may see of it: kind, language, quiet hours, its channels by kind and
        number (``ntfy#1``), never their URLs (they carry credentials)."""
        spec = self._targets[target]
        out: dict[str, Any] = {"contact": target, "kind": spec.kind, "language": spec.language}
        if isinstance(spec, AppriseTarget):
            out["quiet_hours"] = spec.quiet_hours
            out["channels"] = [label for tier, label, _ in spec.channels() if tier == 0]
            out["fallbacks"] = [label for tier, label, _ in spec.channels() if tier > 0]
        return out

    def language_of(self, target: str) -> str:
        """The language ``target``'s contact reads (``language =`` of its table), English by default."""
        spec = self._targets.get(target)
        return (spec.language if spec is not None else None) or DEFAULT_LANGUAGE

    def send(self, target: str, notification: Notification) -> None:
        """Deliver ``notification`` to the target named ``target`` in the background.

        Never blocks and never raises: every outcome, including "no such target" and "the notifier is
        not running", arrives at ``on_result``.
        """
        try:
            delivery = _Delivery(target, notification)
            spec = self._targets.get(target)
            if spec is None:
                _log.warning("notification %s: no notify target named %r", notification.id, target)
                self._finish(delivery, "unknown_target", f"no notify target named {target!r}")
                return
            if not self._running:
                state = "closed" if self._closed else "not started"
                _log.warning("notification %s to %r not sent: the notifier is %s", notification.id, target, state)
                self._finish(delivery, "cancelled", f"notifier {state}")
                return
            deliver = (
                self._deliver_apprise(delivery, spec)
                if isinstance(spec, AppriseTarget)
                else self._deliver(delivery, spec)
            )
            self._start(delivery, deliver)
        except Exception as err:  # a bug here must not take the caller (a scene run) down with it
            _log.exception("notification %s to %r could not be scheduled", getattr(notification, "id", "?"), target)
            self._finish(_Delivery(target, notification), "failed", f"not scheduled: {type(err).__name__}")

    def _start(self, delivery: _Delivery, deliver: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(
            deliver, name=f"notify:{delivery.target}:{delivery.notification.id}")  # fmt: skip
        self._tasks[task] = delivery
        task.add_done_callback(self._on_task_done)

    def stats(self) -> dict[str, int]:
        return {
            "delivered": self._delivered,
            "failed": self._failed,
            "unknown_target": self._unknown_target,
            "cancelled": self._cancelled,
            "skipped": self._skipped,
            "retries": self._retries,
            "pending": len(self._tasks),
        }

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Notifier:
        if self._running or self._closed:
            raise RuntimeError("a Notifier can be started only once")
        self._running = True
        self._restore_held()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._running = False
        self._closed = True
        try:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                # Each cancelled task reports itself "cancelled" from its done callback.
                await asyncio.wait(tasks)
        finally:
            session, self._session = self._session, None
            if session is not None:
                await session.close()
            executor, self._executor = self._executor, None
            if executor is not None:
                # Not waited for: a call stuck in a service's socket ends by its own timeout, and the
                # gateway's shutdown must not wait for a mail server.
                executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, delivery: _Delivery, spec: _AnyTarget) -> None:
        notification = delivery.notification
        try:
            body = notification.to_json()
        except TypeError as err:  # data that is not JSON: no attempt can succeed
            self._finish(delivery, "failed", f"notification is not JSON-serialisable: {err}")
            return
        # A log line is no place for a credential: only webhooks and topics carry the link.
        link = None if isinstance(spec, LogTarget) else self._ack_link(notification, delivery.target)
        if link is not None:
            body = notification.to_json(ack_url=link)  # one link per delivery: every retry carries the same
            await self._commit_link(notification)
        if isinstance(spec, MqttTarget) and self._mqtt is not None and not self._mqtt.connected:
            # Steps found overdue at start (an escalation due while the gateway was down) come before the
            # broker connection: wait for it rather than spend the first attempt on it.
            wait = getattr(self._mqtt, "wait_connected", None)
            if wait is not None:
                await wait(CONNECT_WAIT_S)
        while True:
            delivery.attempts += 1
            try:
                await self._attempt(spec, notification, body)
            except _AttemptFailed as failure:
                reason, retry = failure.reason, failure.retry
            else:
                self._finish(delivery, "delivered", None)
                return
            _log.warning(
                "notification %s to %r failed (attempt %d of %d): %s",
                notification.id, delivery.target, delivery.attempts, self._attempts, reason,
            )  # fmt: skip
            if not retry or delivery.attempts >= self._attempts:
                self._finish(delivery, "failed", reason)
                return
            self._retries += 1
            await self._clock.sleep(self._backoff_before(delivery.attempts))

    async def _deliver_apprise(
        self, delivery: _Delivery, spec: AppriseTarget, restored: tuple[float, float] | None = None
    ) -> None:
        """Quiet hours, then the ``urls`` all at once, then each fallback in turn until one gets through.

        ``restored``: (held at, until) of a notification held before a restart (see :meth:`_restore_held`).
        """
        notification = delivery.notification
        hold = restored if restored is not None else self._quiet_hold(delivery, spec)
        if hold is not None:
            released = await self._wait_out_quiet_hours(delivery, *hold, restored=restored is not None)
            if released is None:
                return
            notification = released
        body = notification.message
        link = self._ack_link(notification, delivery.target)
        if link is not None:
            body += "\n\n" + translate(self.language_of(delivery.target), "notify.acknowledge_link", link=link)
            await self._commit_link(notification)
        tiers: dict[int, list[tuple[str, str]]] = {}
        for tier, label, url in spec.channels():
            tiers.setdefault(tier, []).append((label, url))
        for tier, channels in tiers.items():
            outcomes = await asyncio.gather(*(
                self._apprise_channel(delivery, spec, tier, label, url, notification, body) for label, url in channels
            ))  # fmt: skip
            if any(outcomes):
                if notification.alert_id is not None:
                    self._told[(delivery.target, notification.alert_id)] = self._clock.time()
                self._finish(delivery, "delivered", None)
                return
        failed = [f"{d['channel']}: {d.get('error') or 'failed'}"
                  for d in delivery.deliveries if d.get("tier") is not None]  # fmt: skip
        self._finish(delivery, "failed", "every channel failed (" + "; ".join(failed) + ")")

    def _quiet_hold(self, delivery: _Delivery, spec: AppriseTarget) -> tuple[float, float] | None:
        """(now, when the quiet hours end) if ``delivery`` is to wait for them, else None."""
        quiet = spec.quiet_minutes
        if quiet is None or delivery.notification.severity == "critical":
            return None
        held_at = self._clock.time()
        until = quiet_until(held_at, quiet, self._tz)
        quiet_began = None if until is None else until - ((quiet[1] - quiet[0]) % 1440) * 60
        if until is None or until <= held_at or self._awaited(delivery, quiet_began):
            return None
        return held_at, until

    async def _wait_out_quiet_hours(
        self, delivery: _Delivery, held_at: float, until: float, *, restored: bool
    ) -> Notification | None:
        """Hold ``delivery`` until ``until``; then the notification to send (marked as held since
        ``held_at``), or None when it was skipped (reported)."""
        notification = delivery.notification
        hold = {"channel": "quiet hours", "status": "held", "t": iso_utc(held_at), "until": iso_utc(until)}
        delivery.deliveries.append(hold)
        until_text = datetime.fromtimestamp(until, self._tz).strftime("%H:%M")
        if restored:  # already among the held (_restore_held) and in the storage
            _log.info("notification %s to %r held for quiet hours since before the restart, until %s",
                      notification.id, delivery.target, until_text)  # fmt: skip
        else:
            _log.info("notification %s to %r held for quiet hours until %s", notification.id, delivery.target,
                      until_text)  # fmt: skip
            self._begin_hold(delivery)
        try:
            self._progress(delivery, "held")
            if not restored:
                await self._keep_held(delivery, held_at, until)
            await self._clock.sleep(max(0.0, until - self._clock.time()))
            stale = self._stale(delivery)
        finally:
            self._end_hold(delivery)
        hold["status"] = "skipped" if stale else "released"
        if stale:
            self._finish(delivery, "skipped", stale)
            return None
        since = datetime.fromtimestamp(held_at, self._tz).strftime("%H:%M")
        held_note = translate(self.language_of(delivery.target), "notify.held_for_quiet_hours", time=since)
        return replace(notification, message=held_note + notification.message)

    def _begin_hold(self, delivery: _Delivery) -> None:
        """``delivery`` is held: the notifications of its alert held for its contact before it are superseded."""
        held_key = self._held_key(delivery)
        if held_key is None:
            return
        holding = self._holding.setdefault(held_key, set())
        self._superseded.update((delivery.target, other) for other in holding)
        holding.add(delivery.notification.id)

    def _end_hold(self, delivery: _Delivery) -> None:
        notification_id = delivery.notification.id
        self._superseded.discard((delivery.target, notification_id))
        held_key = self._held_key(delivery)
        if held_key is None or held_key not in self._holding:
            return
        holding = self._holding[held_key]
        holding.discard(notification_id)
        if not holding:
            del self._holding[held_key]

    # ------------------------------------------------------------------ held notifications across restarts

    _HELD_KEY = "held"

    def _stored_held(self) -> dict[str, dict[str, Any]]:
        """What the storage holds: target -> notification id -> record (a copy, to change and set back)."""
        stored = self._storage.get(self._HELD_KEY, {}) if self._storage is not None else {}
        if not isinstance(stored, dict):
            return {}
        return {target: dict(held) for target, held in stored.items() if isinstance(held, dict)}

    async def _keep_held(self, delivery: _Delivery, held_at: float, until: float) -> None:
        """Store a notification held for quiet hours (and commit it): a restart in the night must not lose it."""
        if self._storage is None:
            return
        notification = delivery.notification
        told_at = self._told.get((delivery.target, notification.alert_id)) if notification.alert_id else None
        record = {"notification": notification.to_record(), "held_at": held_at, "until": until, "told_at": told_at}
        held = self._stored_held()
        held.setdefault(delivery.target, {})[notification.id] = record
        try:
            self._storage.set(self._HELD_KEY, held)
        except (TypeError, ValueError) as err:  # data that is not JSON: it waits in memory only
            _log.error("notification %s to %r is held for quiet hours but cannot be stored (%s): a restart "
                       "before they end loses it", notification.id, delivery.target, err)  # fmt: skip
            return
        delivery.kept = True
        if self._commit is not None:
            try:
                await self._commit()
            except Exception as err:  # the store's own commit loop tries again within seconds
                _log.error("could not commit the held notification %s (%s)", notification.id, err)

    def _forget_held(self, delivery: _Delivery) -> None:
        delivery.kept = False
        held = self._stored_held()
        mine = held.get(delivery.target)
        if self._storage is None or mine is None or delivery.notification.id not in mine:
            return
        del mine[delivery.notification.id]
        if not mine:
            del held[delivery.target]
        self._storage.set(self._HELD_KEY, held)

    def _restore_held(self) -> None:
        """Hold again what was held for quiet hours when the last notifier stopped: each goes out when its
        quiet hours end (at once if they are over), unless stale by then, the latest of an alert only."""
        stored = self._stored_held()
        restored: list[tuple[float, float, _Delivery]] = []
        readable: dict[str, dict[str, Any]] = {}
        for target, held in stored.items():
            for notification_id, record in held.items():
                try:
                    notification = Notification.from_record(record["notification"])
                    held_at, until = float(record["held_at"]), float(record["until"])
                    told_at = record.get("told_at")
                    told_at = None if told_at is None else float(told_at)
                except (KeyError, TypeError, ValueError) as err:
                    _log.warning("a notification to %r held for quiet hours (%s) could not be restored: %s",
                                 target, notification_id, _describe(err))  # fmt: skip
                    continue
                readable.setdefault(target, {})[notification_id] = record
                if told_at is not None and notification.alert_id is not None:
                    self._told.setdefault((target, notification.alert_id), told_at)
                restored.append((held_at, until, _Delivery(target, notification, kept=True)))
        if readable != stored and self._storage is not None:  # what cannot be read is not tried again
            self._storage.set(self._HELD_KEY, readable)
        restored.sort(key=lambda item: item[0])  # in the order they were held: the last one of an alert wins
        for held_at, until, delivery in restored:
            spec = self._targets.get(delivery.target)
            if spec is None:
                _log.warning("notification %s held for quiet hours: no notify target named %r any more",
                             delivery.notification.id, delivery.target)  # fmt: skip
                self._finish(delivery, "unknown_target", f"no notify target named {delivery.target!r}")
                continue
            if not isinstance(spec, AppriseTarget):  # its kind changed: no quiet hours to wait for
                self._start(delivery, self._deliver(delivery, spec))
                continue
            if spec.quiet_minutes is None:  # its quiet hours were removed from the config
                until = min(until, self._clock.time())
            self._begin_hold(delivery)
            self._start(delivery, self._deliver_apprise(delivery, spec, restored=(held_at, until)))

    async def _apprise_channel(
        self,
        delivery: _Delivery,
        spec: AppriseTarget,
        tier: int,
        label: str,
        url: str,
        notification: Notification,
        body: str,
    ) -> bool:
        record: dict[str, Any] = {"channel": label, "tier": tier, "status": "pending", "attempts": 0, "error": None,
                                  "t": iso_utc(self._clock.time())}  # fmt: skip
        delivery.deliveries.append(record)
        secret_parts = _apprise_secrets(url)
        for attempt in range(1, self._attempts + 1):
            record["attempts"] = attempt
            delivery.attempts += 1
            try:
                await self._apprise_attempt(spec, url, notification, body)
            except _AttemptFailed as failure:
                reason = _scrub_secrets(failure.reason, secret_parts | _APPRISE_LOG_SCRUBBER.secrets)
                retry = failure.retry and attempt < self._attempts
            else:
                record.update(status="delivered", error=None, t=iso_utc(self._clock.time()))
                return True
            record["error"] = reason
            _log.warning(
                "notification %s to %r via %s failed (attempt %d of %d): %s",
                notification.id, delivery.target, label, attempt, self._attempts, reason,
            )  # fmt: skip
            if not retry:
                break
            self._progress(delivery, "pending")  # the UI shows the failure while the retries run
            self._retries += 1
            await self._clock.sleep(self._backoff_before(attempt))
        record.update(status="failed", t=iso_utc(self._clock.time()))
        self._progress(delivery, "pending")
        return False

    async def _apprise_attempt(self, spec: AppriseTarget, url: str, notification: Notification, body: str) -> None:
        if self._executor is None:
            # Apprise blocks (requests, smtplib, its own worker threads): its calls run here, off the loop.
            # Four threads: the channels of one contact go out together; more would only queue on a Pi.
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="hearth-apprise")
        loop = asyncio.get_running_loop()
        try:
            call = loop.run_in_executor(self._executor, _apprise_notify, url, notification.title, body,
                                        notification.severity, spec.timeout_s)  # fmt: skip
            # Real time, not clock time: this bounds a network call. Apprise enforces timeout_s itself; the
            # extra seconds cover its set-up, and past them we stop waiting for a thread we cannot stop.
            async with asyncio.timeout(spec.timeout_s + 5):
                await call
        except TimeoutError:
            raise _AttemptFailed(f"no answer within {spec.timeout_s:g} s", retry=True) from None
        except _AttemptFailed:
            raise
        except RuntimeError as err:  # the executor was shut down under us (the notifier is stopping)
            raise _AttemptFailed(_describe(err), retry=False) from None

    def _ack_link(self, notification: Notification, target: str) -> str | None:
        """A new acknowledge link for an open alert's notification to ``target`` (none for its "resolved"
        notice, a report, or an alert already acknowledged or resolved)."""
        public_url = self._settings.public_url
        if self._ack_tokens is None or public_url is None or notification.alert_id is None:
            return None
        if notification.data.get("kind", "alert") not in ("alert", "reminder", "unanswered"):
            return None
        if self._alert_state is not None and self._alert_state(notification.alert_id) not in (None, "open"):
            return None
        token = self._ack_tokens.issue(notification.alert_id, target)
        return f"{public_url}/api/ack/{token}"

    async def _commit_link(self, notification: Notification) -> None:
        """Before a message with an acknowledge link leaves, as the engine does before it notifies: a link
        that answers "not recognised" after a power cut is worse than a message a few milliseconds later."""
        if self._commit is None:
            return
        try:
            await self._commit()
        except Exception as err:
            _log.error("could not commit the acknowledge link of %s (%s); sending anyway", notification.id, err)

    def _awaited(self, delivery: _Delivery, quiet_began: float | None) -> bool:
        """A "resolved" notice of an alert that reached this contact in these quiet hours (a critical one
        woke her): she is awake and waiting for it, so it is not held."""
        notification = delivery.notification
        if notification.alert_id is None or notification.data.get("kind") != "resolved" or quiet_began is None:
            return False
        told_at = self._told.get((delivery.target, notification.alert_id))
        return told_at is not None and told_at >= quiet_began

    @staticmethod
    def _held_key(delivery: _Delivery) -> tuple[str, str] | None:
        notification = delivery.notification
        if notification.alert_id is None or notification.data.get("kind") == "resolved":
            return None
        return delivery.target, notification.alert_id

    def _stale(self, delivery: _Delivery) -> str | None:
        """Why a notification held through quiet hours is no longer worth sending, or None."""
        notification = delivery.notification
        if (delivery.target, notification.id) in self._superseded:
            # Reminders of one alert piled up overnight: one message in the morning, the latest.
            return "a later notification of this alert, held for quiet hours too, went out instead"
        if self._alert_state is None or notification.alert_id is None:
            return None
        state = self._alert_state(notification.alert_id)
        if notification.data.get("kind") == "resolved":
            if (delivery.target, notification.alert_id) not in self._told:
                return "the alert was resolved before this contact was told of it (held for quiet hours)"
            return None
        if state in ("acknowledged", "resolved"):
            return f"the alert was {state} while this notification was held for quiet hours"
        return None

    def _progress(self, delivery: _Delivery, status: DeliveryStatus) -> None:
        if self._on_progress is None:
            return
        result = DeliveryResult(
            target=delivery.target, notification_id=delivery.notification.id, status=status,
            attempts=delivery.attempts, error=None, t=self._clock.time(),
            deliveries=tuple(dict(d) for d in delivery.deliveries),
        )  # fmt: skip
        try:
            self._on_progress(result)
        except Exception:
            _log.exception("on_progress callback failed for notification %s", delivery.notification.id)

    def _backoff_before(self, attempt_done: int) -> float:
        if not self._backoff_s:
            return 0.0
        return self._backoff_s[min(attempt_done - 1, len(self._backoff_s) - 1)]

    async def _attempt(self, spec: _AnyTarget, notification: Notification, body: bytes) -> None:
        if isinstance(spec, WebhookTarget):
            await self._post(spec, body)
        elif isinstance(spec, MqttTarget):
            self._publish(spec, body)
        else:
            _log.log(
                _LOG_LEVELS.get(notification.severity, logging.WARNING),
                "notification %s [%s] %s: %s",
                notification.id, notification.severity, notification.title, notification.message,
            )  # fmt: skip

    def _publish(self, spec: MqttTarget, body: bytes) -> None:
        if self._mqtt is None:
            raise _AttemptFailed("no MQTT session (MQTT is disabled)", retry=True)
        if not self._mqtt.connected:
            raise _AttemptFailed("MQTT session not connected", retry=True)
        try:
            self._mqtt.publish(spec.topic, body, qos=spec.qos, retain=spec.retain)
        except ValueError as err:
            raise _AttemptFailed(f"MQTT publish refused: {err}", retry=False) from None

    async def _post(self, spec: WebhookTarget, body: bytes) -> None:
        import aiohttp  # lazily: only gateways with a webhook target pay for the HTTP client

        if self._session is None:
            # One session for every webhook: one connection pool, keep-alive between notifications.
            self._session = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json", **spec.headers}
        # A network timeout is real time, not clock time: in replay no webhook is ever called.
        timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        try:
            async with self._session.request(
                spec.method, spec.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                status = response.status
                phrase = response.reason or ""
                await response.read()  # let the connection go back to the pool
        except TimeoutError:
            raise _AttemptFailed(f"no response within {spec.timeout_s:g} s", retry=True) from None
        except aiohttp.InvalidURL:
            raise _AttemptFailed("invalid URL", retry=False) from None
        except (aiohttp.ClientError, OSError) as err:
            raise _AttemptFailed(_scrub(_describe(err), spec), retry=True) from None
        if 200 <= status < 300:
            return
        what = f"HTTP {status} {phrase}".rstrip()
        if status >= 500 or status in _RETRYABLE_4XX:
            raise _AttemptFailed(what, retry=True)
        if 300 <= status < 400:
            raise _AttemptFailed(f"{what}: redirects are not followed (headers may carry secrets)", retry=False)
        raise _AttemptFailed(what, retry=False)

    # ------------------------------------------------------------------ outcomes

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        delivery = self._tasks.pop(task, None)
        if delivery is None or delivery.reported:
            return
        if task.cancelled():
            self._finish(delivery, "cancelled", "notifier stopped")
            return
        err = task.exception()
        # A bug in delivery: the notification is still reported, never lost in a task nobody awaits.
        # The traceback is logged as text with the target's secrets scrubbed: exception messages
        # (aiohttp's among them) may quote the URL or a header.
        trace = "".join(traceback.format_exception(err)) if err is not None else ""
        spec = self._targets.get(delivery.target)
        if isinstance(spec, WebhookTarget):
            trace = _scrub(trace, spec)
        elif isinstance(spec, AppriseTarget):
            trace = _scrub_secrets(trace, _APPRISE_LOG_SCRUBBER.secrets)
        _log.error("notification %s to %r: delivery crashed\n%s", delivery.notification.id, delivery.target, trace)
        self._finish(delivery, "failed", f"delivery crashed: {type(err).__name__}")

    def _finish(self, delivery: _Delivery, status: DeliveryStatus, error: str | None) -> None:
        delivery.reported = True
        if delivery.kept and status != "cancelled":  # cancelled (the gateway stopping): held again at start
            try:
                self._forget_held(delivery)
            except Exception:
                _log.exception("could not remove the held notification %s from the store", delivery.notification.id)
        if status == "delivered":
            self._delivered += 1
        elif status == "failed":
            self._failed += 1
        elif status == "unknown_target":
            self._unknown_target += 1
        elif status == "skipped":
            self._skipped += 1
        else:
            self._cancelled += 1
        if self._on_result is None:
            return
        result = DeliveryResult(
            target=delivery.target,
            notification_id=delivery.notification.id,
            status=status,
            attempts=delivery.attempts,
            error=error,
            t=self._clock.time(),
            deliveries=tuple(dict(d) for d in delivery.deliveries),
        )
        try:
            self._on_result(result)
        except Exception:
            _log.exception("on_result callback failed for notification %s", delivery.notification.id)


def _describe(err: BaseException) -> str:
    """A short reason for a failed request (the exception's class, and its message when it has one)."""
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _scrub(text: str, spec: WebhookTarget) -> str:
    """Remove anything secret that an exception message may have quoted from the request."""
    secrets = [spec.url, *spec.headers.values()]
    parts = urlsplit(spec.url)
    secrets += [parts.query, parts.path, parts.password or "", parts.username or ""]
    for secret in sorted((s for s in secrets if len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


# ------------------------------------------------------------------ replay


class RecordingNotifier:
    """Records ``(target, notification)`` instead of delivering: ``hearth replay`` has no network."""

    def __init__(self, languages: dict[str, str] | None = None) -> None:
        self.sent: list[tuple[str, Notification]] = []
        self._languages = dict(languages or {})

    def language_of(self, target: str) -> str:
        return self._languages.get(target, DEFAULT_LANGUAGE)

    def send(self, target: str, notification: Notification) -> None:
        self.sent.append((target, notification))

    def stats(self) -> dict[str, int]:
        return {"recorded": len(self.sent)}

    async def __aenter__(self) -> RecordingNotifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None
