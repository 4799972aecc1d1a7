"""The embedded MQTT broker (``[mqtt] mode = "embedded"``): an amqtt broker inside the gateway process.

For a house that has no broker yet (and for ``hearth demo``): one process, nothing else to install.
amqtt is the maintained asyncio broker; it speaks MQTT 3.1.1 only, which is what the gateway's own
session speaks (gateway/mqtt.py) and what Zigbee2MQTT, Tasmota, Shelly and OpenMQTTGateway all speak.
It runs on the gateway's event loop: measured here, it starts in ~0.1 s (most of it the import) and
carries several thousand messages a second, far more than a house sends. A house with many bridges,
clients on other machines that need TLS, or traffic beyond that, is better served by Mosquitto
(``mode = "external"``); the README says when.

Security: the broker listens on loopback unless ``[mqtt] embedded_host`` says otherwise, and when it
listens beyond loopback it accepts only the configured username and password (the config refuses to
load without them; :class:`EmbeddedBroker` checks again). There is no default password.

amqtt is imported lazily, in ``__aenter__``, so that ``import gateway`` (and a gateway on an external
broker) never pays for it.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from gateway.config import MqttSection, is_loopback_host
from gateway.errors import ConfigError, ConfigProblem, HearthError

__all__ = ["BrokerStartError", "EmbeddedBroker"]

_log = logging.getLogger("hearth.broker")

_LISTENER = "default"  # amqtt requires a listener named "default"
# amqtt logs every connection and packet at INFO; the gateway's log is for the owner, so only its
# warnings go through unless the gateway itself logs at debug level.
_AMQTT_LOGGERS = ("amqtt", "transitions")


class BrokerStartError(HearthError):
    """The embedded broker could not start (port in use, amqtt missing, ...)."""


def _password_plugin() -> type:
    """The authentication plugin class, built on first use so that amqtt is imported only then."""
    from amqtt.plugins.base import BaseAuthPlugin

    class PasswordAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
        """Accepts exactly the one configured username and password (compared in constant time)."""

        @dataclass
        class Config:
            username: str = ""
            password: str = ""

        async def authenticate(self, *, session: Any) -> bool:
            config = self.config
            username = getattr(session, "username", None) or ""
            password = getattr(session, "password", None) or ""
            if isinstance(password, bytes):
                password = password.decode("utf-8", "replace")
            user_ok = hmac.compare_digest(username.encode(), config.username.encode())
            password_ok = hmac.compare_digest(str(password).encode(), config.password.encode())
            if not (user_ok and password_ok):
                _log.warning("embedded broker: refused a client (client id %r): wrong username or password",
                             getattr(session, "client_id", "?"))
                return False
            return True

    return PasswordAuthPlugin


class EmbeddedBroker:
    """``async with EmbeddedBroker(settings) as broker:`` runs an MQTT broker on the current loop.

    ``settings`` is the ``[mqtt]`` section: the broker listens on ``embedded_host:port`` (port 0: a free
    port, see :attr:`port`) and, when ``username``/``password`` are set, accepts only them.
    :meth:`client_settings` is the section the gateway's own :class:`~gateway.mqtt.MqttSession` connects with.
    """

    def __init__(self, settings: MqttSection) -> None:
        self._settings = settings
        self._broker: Any = None
        self._port: int | None = None
        self.started_in_s: float | None = None
        host = settings.embedded_host
        if not is_loopback_host(host) and not (settings.username and settings.password):
            # The config refuses this already; checked again for code that builds settings itself.
            raise ConfigError([ConfigProblem(
                "[mqtt]", None, "mqtt.embedded_host",
                f"the embedded broker would listen beyond loopback ({host!r}) without authentication: "
                "set [mqtt] username and password (there is no default password)")])

    @property
    def host(self) -> str:
        return self._settings.embedded_host

    @property
    def port(self) -> int:
        """The port the broker listens on (the real one when the settings said 0)."""
        if self._port is None:
            raise RuntimeError("the embedded broker is not running")
        return self._port

    @property
    def requires_auth(self) -> bool:
        return bool(self._settings.username)

    def client_settings(self) -> MqttSection:
        """``[mqtt]`` as the gateway's own session uses it: to this broker, over loopback when it can."""
        host = self.host
        if not is_loopback_host(host):
            # Listening on all interfaces (or on a LAN address): loopback reaches it too, unless it is
            # bound to one specific non-loopback address, which we must then use.
            host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        return self._settings.model_copy(update={"host": host, "port": self.port, "tls": False})

    async def __aenter__(self) -> EmbeddedBroker:
        import time

        started = time.perf_counter()
        try:
            from amqtt.broker import Broker
            from amqtt.errors import BrokerError
        except ImportError as err:
            raise BrokerStartError(
                "the embedded MQTT broker needs the 'amqtt' package (pip install amqtt), "
                "or use [mqtt] mode = \"external\" with a broker such as Mosquitto") from err
        if _log.getEffectiveLevel() > logging.DEBUG:
            for name in _AMQTT_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
        settings = self._settings
        if settings.username:
            auth = {f"{__name__}.PasswordAuthPlugin": {"username": settings.username, "password": settings.password}}
        else:
            auth = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
        config = {
            "listeners": {_LISTENER: {"type": "tcp", "bind": f"{settings.embedded_host}:{settings.port}"}},
            # Only authentication: no $SYS plugin (psutil, a timer), no packet logging.
            "plugins": auth,
        }
        broker = Broker(config)
        try:
            await broker.start()
        except BrokerError as err:
            raise BrokerStartError(
                f"the embedded MQTT broker cannot listen on {settings.embedded_host}:{settings.port}: "
                f"{err.__cause__ or err}") from err
        self._broker = broker
        self._port = _bound_port(broker) or settings.port
        self.started_in_s = time.perf_counter() - started
        _log.info("embedded MQTT broker listening on %s:%d (%s) after %.2f s", settings.embedded_host, self._port,
                  "username and password required" if settings.username else "loopback only, no authentication",
                  self.started_in_s)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            await broker.shutdown()
            self._port = None


def _bound_port(broker: Any) -> int | None:
    """The port the listener really bound (amqtt keeps its servers private; best effort)."""
    try:
        server = broker._servers[_LISTENER].instance
        return int(server.sockets[0].getsockname()[1])
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def __getattr__(name: str) -> Any:
    # amqtt loads plugins by dotted path (gateway.broker.PasswordAuthPlugin); building the class on
    # that first access keeps the amqtt import out of `import gateway.broker`.
    if name == "PasswordAuthPlugin":
        cls = _password_plugin()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
