"""The loop watchdog in the gateway (issue 20 finding 3): a plugin that blocks the event loop in a callback is
found, named with its stack, counted in /healthz, and disabled after its strikes; the other adapters go on."""

from __future__ import annotations

import asyncio
import textwrap
import types
from typing import Any, ClassVar

from gateway.clock import SystemClock
from gateway.hub import Hub
from gateway.loopwatch import LoopWatch, adapter_owners
from gateway.replay import ReplayMqtt
from gateway.sdk import AdapterContext, Command, CommandResult
from gateway.supervisor import Supervisor

# A plugin of its own package (frames say whose code they run by their module's name, as an installed one's do).
_PLUGIN = types.ModuleType("hearth_sleepy")
exec(textwrap.dedent("""
    import time
    from typing import ClassVar

    class Sleepy:
        needs_mqtt: ClassVar[bool] = True

        async def start(self, ctx):
            self._unsubscribe = ctx.mqtt.subscribe("sleepy/#", self.on_message)

        def on_message(self, topic, payload, retain):
            time.sleep(0.4)  # a maker's synchronous HTTP call, say

        async def stop(self):
            self._unsubscribe()

        async def execute(self, command):
            return None
    """), _PLUGIN.__dict__)
Sleepy: type[Any] = _PLUGIN.Sleepy


class Steady:
    needs_mqtt: ClassVar[bool] = True

    async def start(self, ctx: AdapterContext) -> None:
        assert ctx.mqtt is not None
        self._unsubscribe = ctx.mqtt.subscribe("steady/#", self.on_message)

    def on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        pass

    async def stop(self) -> None:
        self._unsubscribe()

    async def execute(self, command: Command) -> CommandResult:
        return CommandResult("failed", "no commands")


async def test_a_plugin_that_blocks_the_loop_is_named_counted_and_disabled_after_its_strikes() -> None:
    hub = Hub(SystemClock())
    mqtt = ReplayMqtt(hub.clock)  # type: ignore[arg-type]
    classes: dict[str, type[Any]] = {"sleepy": Sleepy, "steady": Steady}
    loop = asyncio.get_running_loop()
    async with Supervisor(hub, classes, {}, mqtt=mqtt) as supervisor:
        for _ in range(50):
            await asyncio.sleep(0)
            if all(h.state == "running" for h in supervisor.health.values()):
                break

        def blocked(block: Any) -> None:
            loop.call_soon_threadsafe(supervisor.loop_blocked, block, 3)

        async with LoopWatch(threshold_s=0.15, poll_s=0.03, owners=adapter_owners(classes), on_block=blocked):
            for index in range(10):
                if supervisor.health["sleepy"].state == "disabled":
                    break
                mqtt.deliver(f"sleepy/{index}", b"{}", False)
                await asyncio.sleep(0.1)  # the loop turns: the watchdog's report arrives
            mqtt.deliver("steady/1", b"{}", False)
            await asyncio.sleep(0.2)
        report = supervisor.health_report()
    sleepy = report["sleepy"]
    assert sleepy["state"] == "disabled"
    assert sleepy["loop_blocks"] == 3
    assert sleepy["last_loop_block"].startswith("sleepy: held the event loop") and "in on_message" in sleepy[
        "last_loop_block"]
    assert sleepy["last_error"].startswith("disabled: its code held the event loop 3 times")
    assert report["steady"]["state"] == "running" and report["steady"]["loop_blocks"] == 0
