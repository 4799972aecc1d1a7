"""Out-of-process adapters: a third-party plugin run in a worker process of its own, so that a maker's bug
(a call that blocks, memory that leaks, a crash) cannot take the house down.

``[adapters.NAME] isolation = "process"`` (and ``memory_limit_mb``, default 256) in the config: the supervisor
takes these keys out of the section before the adapter's own ``config_model`` sees it
(:func:`split_isolation`), and runs :class:`gateway.isolation.proxy.ProcessAdapter` in the plugin's place. The
proxy starts ``python -m gateway.isolation.worker``, which loads the plugin and gives it the same SDK
(:mod:`gateway.sdk`), every call of its context carried over a socket as JSON lines (:mod:`._wire`).

Importing this package is light (pydantic only): the proxy and the worker are imported when used.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.errors import HearthError

if TYPE_CHECKING:
    from gateway.isolation.proxy import ProcessAdapter

__all__ = [
    "DEFAULT_MEMORY_LIMIT_MB",
    "ISOLATION_KEYS",
    "IsolationError",
    "IsolationSettings",
    "PluginError",
    "WorkerDiedError",
    "process_adapter_class",
    "split_isolation",
]

log = logging.getLogger("hearth.isolation")

# 256 MB of address space: a worker with the SDK imported maps about 45 MB (measured: VmSize after
# `import gateway.sdk` and a plugin), so a plugin has some 200 MB, and a Pi with 1 GB survives two leaking ones.
DEFAULT_MEMORY_LIMIT_MB = 256
# Below this the interpreter itself cannot start under the limit (its VmSize is ~45 MB with the SDK imported).
MIN_MEMORY_LIMIT_MB = 64

#: The keys of an ``[adapters.NAME]`` section that are the supervisor's, not the adapter's.
ISOLATION_KEYS = ("isolation", "memory_limit_mb")


class IsolationSettings(BaseModel):
    """How the supervisor runs one adapter: ``isolation`` and ``memory_limit_mb`` of its ``[adapters.NAME]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: "inline": in the gateway's own process and event loop (the default, and what built-in adapters use);
    #: "process": in a worker process of its own, with a memory limit, restarted with back-off when it dies.
    isolation: Literal["inline", "process"] = "inline"
    #: The worker's address-space limit (RLIMIT_AS) in MB, with ``isolation = "process"``; reaching it ends the
    #: worker ("memory limit N MB reached" in /healthz) and it is restarted with back-off.
    memory_limit_mb: int = Field(DEFAULT_MEMORY_LIMIT_MB, ge=MIN_MEMORY_LIMIT_MB, le=1_048_576)


def split_isolation(section: dict[str, Any]) -> tuple[IsolationSettings, dict[str, Any]]:
    """The isolation settings of an ``[adapters.NAME]`` section, and the section without them (what the
    adapter's ``config_model`` sees). Raises pydantic's ``ValidationError`` (located at the key) when they are
    wrong, like any other mistake in the section."""
    mine = {key: section[key] for key in ISOLATION_KEYS if key in section}
    rest = {key: value for key, value in section.items() if key not in ISOLATION_KEYS}
    return IsolationSettings.model_validate(mine), rest


class IsolationError(HearthError):
    """Something went wrong between the gateway and a plugin's worker process."""


class WorkerDiedError(IsolationError):
    """The worker process ended (crash, memory limit, killed). ``reason`` says how, for people and /healthz;
    ``exit_code`` (negative: the signal's number, as :attr:`subprocess.Popen.returncode`) and
    ``memory_limit_reached`` for programs."""

    def __init__(self, reason: str, *, exit_code: int | None = None, memory_limit_reached: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
        self.memory_limit_reached = memory_limit_reached


class PluginError(IsolationError):
    """The plugin raised in its worker (in ``start``, ``execute`` or a task of its own): its type and message
    come back as text (``remote_type``)."""

    def __init__(self, message: str, remote_type: str = "Exception") -> None:
        super().__init__(f"{remote_type}: {message}" if remote_type else message)
        self.remote_type = remote_type


def process_adapter_class(name: str, plugin: type[Any], section: dict[str, Any], *, real_time: bool = True
                          ) -> type[Any]:
    """The class the supervisor runs instead of ``plugin`` for ``[adapters.NAME]`` ``section``: ``plugin`` itself
    when its isolation is "inline", else a :class:`~gateway.isolation.proxy.ProcessAdapter` made for it.

    ``real_time`` False (the gateway runs on a simulated clock: ``hearth replay``): the plugin runs inline all the
    same, since a worker's clock is the real one and cannot follow a simulated day."""
    settings, rest = split_isolation(section)
    if settings.isolation != "process":
        return plugin
    if not real_time:
        log.info("adapter %s runs in the gateway's process here: isolation = \"process\" needs the real clock", name)
        return plugin
    from gateway.isolation.proxy import make_process_adapter

    proxy: type[ProcessAdapter] = make_process_adapter(name, plugin, rest, settings.memory_limit_mb)
    return proxy
