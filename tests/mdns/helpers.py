"""Shared by the mDNS tests: a hub with the mDNS adapter under the real supervisor, and waiting for things."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from adapters.shelly.mdns_adapter import MdnsAdapter
from gateway.bus import InputRejected
from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.supervisor import AdapterContextImpl, Supervisor


async def wait_for(predicate: Callable[[], Any], timeout_s: float = 10.0, what: str = "condition") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class Gateway:
    """What a test needs of a running gateway: the hub, the supervisor, the adapter, bad input seen."""

    def __init__(self, hub: Hub, supervisor: Supervisor) -> None:
        self.hub = hub
        self.supervisor = supervisor
        self.bad_input: list[str] = []
        hub.bus.subscribe(InputRejected, lambda e: self.bad_input.append(e.message))

    @property
    def adapter(self) -> MdnsAdapter:
        adapter = self.supervisor.instance("mdns")
        assert adapter is not None, self.supervisor.health_report()
        return adapter

    def value(self, device_id: str, component: str, capability: str, attribute: str) -> Any:
        device = self.hub.devices.get(device_id)
        return None if device is None else device.value(component, capability, attribute)


@contextlib.asynccontextmanager
async def running_gateway(config: dict[str, Any], *, mdns: Any = None) -> AsyncIterator[Gateway]:
    """The mDNS adapter under the real supervisor. ``mdns``: the shared service to inject as ``ctx.mdns``
    (what the core will do once wired), else whatever ``config`` says."""
    hub = Hub(SystemClock())
    original_init = AdapterContextImpl.__init__

    def init_with_mdns(self: AdapterContextImpl, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.mdns = mdns  # type: ignore[attr-defined]

    if mdns is not None:
        AdapterContextImpl.__init__ = init_with_mdns  # type: ignore[method-assign]
    try:
        async with Supervisor(hub, {"mdns": MdnsAdapter}, {"mdns": config}, mqtt=None) as supervisor:
            gateway = Gateway(hub, supervisor)
            await wait_for(lambda: supervisor.health["mdns"].state not in ("stopped", "starting"),
                           what="the adapter to start")
            assert supervisor.health["mdns"].state == "running", supervisor.health_report()
            yield gateway
    finally:
        AdapterContextImpl.__init__ = original_init  # type: ignore[method-assign]
