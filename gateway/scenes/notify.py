"""Notification delivery for scenes and alerts: MQTT topics, HTTP webhooks and the gateway log.

Owns the ``[notify.<name>]`` target models and the :class:`Notifier` that delivers to them with
retries. A notification is never silently dropped: every one ends in exactly one
:class:`DeliveryResult` (delivered, failed, unknown_target or cancelled) handed to ``on_result``,
and every failed attempt is logged once at warning. Secrets stay out of logs and results: webhook
header values are never logged, and URLs appear only as ``scheme://host:port`` (userinfo, query and
path are dropped: webhook services such as Slack and Discord put their token in the path).

Back-off waits go through the injected clock, so simulated time drives retries in tests and replay.
:class:`RecordingNotifier` is the stand-in for ``hearth replay``, which must not touch the network.
"""

from __future__ import annotations

import asyncio
import logging
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.clock import iso_utc

if TYPE_CHECKING:
    import aiohttp  # imported on the first webhook delivery, not with this module

    from gateway.clock import Clock
    from gateway.sdk import MqttClient

__all__ = [
    "DeliveryResult",
    "DeliveryStatus",
    "LogTarget",
    "MqttTarget",
    "Notification",
    "NotificationSender",
    "Notifier",
    "NotifyTargets",
    "RecordingNotifier",
    "Severity",
    "Target",
    "WebhookTarget",
    "redact_url",
]

_log = logging.getLogger(__name__)

Severity = Literal["info", "warning", "critical"]
DeliveryStatus = Literal["delivered", "failed", "unknown_target", "cancelled"]

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


class MqttTarget(_TargetModel):
    """Publish the notification as JSON to a topic of the gateway's MQTT session."""

    kind: Literal["mqtt"]
    topic: str
    qos: int = Field(1, ge=0, le=2)
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
    """POST (or PUT) the notification as JSON to an HTTP(S) URL.

    ``headers`` usually carry credentials (``Authorization = "Bearer …"``): they are hidden from the
    repr and never logged. Redirects are not followed, so those headers only ever go to ``url``'s host.
    """

    kind: Literal["webhook"]
    url: str
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    # A receiver that takes longer than this is treated like one that is down: retried.
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


_AnyTarget = MqttTarget | WebhookTarget | LogTarget
Target = Annotated[_AnyTarget, Field(discriminator="kind")]
#: The ``[notify.<name>]`` tables of the config: target name -> target.
NotifyTargets = dict[str, Target]


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

    def to_json(self) -> bytes:
        """The body sent to webhooks and MQTT topics (``t`` in ISO-8601 UTC)."""
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
            },
            option=orjson.OPT_NON_STR_KEYS,
        )


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The final outcome of one :meth:`Notifier.send`; ``attempts`` counts attempts actually made."""

    target: str
    notification_id: str
    status: DeliveryStatus
    attempts: int
    error: str | None
    t: float  # epoch seconds, from the notifier's clock


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
    """

    def __init__(
        self,
        targets: dict[str, _AnyTarget],
        clock: Clock,
        *,
        mqtt: MqttClient | None,
        on_result: Callable[[DeliveryResult], None] | None = None,
        attempts: int = 4,
        # 2 s rides out a receiver restarting; 10 and 30 s a Wi-Fi or DSL reconnect. Four attempts
        # span ~42 s: long enough for a blip, short enough that an alert is not silently late.
        backoff_s: tuple[float, ...] = (2, 10, 30),
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {attempts}")
        self._targets = dict(targets)
        self._clock = clock
        self._mqtt = mqtt
        self._on_result = on_result
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
        self._retries = 0

    # ------------------------------------------------------------------ public API

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
            task = asyncio.get_running_loop().create_task(
                self._deliver(delivery, spec), name=f"notify:{target}:{notification.id}"
            )
            self._tasks[task] = delivery
            task.add_done_callback(self._on_task_done)
        except Exception as err:  # a bug here must not take the caller (a scene run) down with it
            _log.exception("notification %s to %r could not be scheduled", getattr(notification, "id", "?"), target)
            self._finish(_Delivery(target, notification), "failed", f"not scheduled: {type(err).__name__}")

    def stats(self) -> dict[str, int]:
        return {
            "delivered": self._delivered,
            "failed": self._failed,
            "unknown_target": self._unknown_target,
            "cancelled": self._cancelled,
            "retries": self._retries,
            "pending": len(self._tasks),
        }

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Notifier:
        if self._running or self._closed:
            raise RuntimeError("a Notifier can be started only once")
        self._running = True
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

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, delivery: _Delivery, spec: _AnyTarget) -> None:
        notification = delivery.notification
        try:
            body = notification.to_json()
        except TypeError as err:  # data that is not JSON: no attempt can succeed
            self._finish(delivery, "failed", f"notification is not JSON-serialisable: {err}")
            return
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
        _log.error("notification %s to %r: delivery crashed\n%s", delivery.notification.id, delivery.target, trace)
        self._finish(delivery, "failed", f"delivery crashed: {type(err).__name__}")

    def _finish(self, delivery: _Delivery, status: DeliveryStatus, error: str | None) -> None:
        delivery.reported = True
        if status == "delivered":
            self._delivered += 1
        elif status == "failed":
            self._failed += 1
        elif status == "unknown_target":
            self._unknown_target += 1
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

    def __init__(self) -> None:
        self.sent: list[tuple[str, Notification]] = []

    def send(self, target: str, notification: Notification) -> None:
        self.sent.append((target, notification))

    def stats(self) -> dict[str, int]:
        return {"recorded": len(self.sent)}

    async def __aenter__(self) -> RecordingNotifier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None
