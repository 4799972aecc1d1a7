"""``[adapters.NAME] isolation = "process"``: a plugin in a worker process of its own, with real processes, a real
Mosquitto and the real supervisor. A plugin in process mode works end to end; one that blocks does not block the
gateway's loop; one that leaks is ended at its memory limit and restarted while the gateway's memory stays put; one
that crashes is restarted with back-off, and /healthz says why."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

import gateway.supervisor as supervisor_module
from gateway.bus import DeviceEvent
from gateway.clock import SystemClock
from gateway.config import MqttSection
from gateway.hub import Hub
from gateway.isolation import process_adapter_class, split_isolation
from gateway.isolation.proxy import ProcessAdapter
from gateway.model.types import Command
from gateway.mqtt import MqttSession
from gateway.supervisor import Supervisor, adapter_config_problems
from tests.broker import Mosquitto
from tests.isolation.plugins import (
    BLOCK_S,
    BlockingAdapter,
    CrashingAdapter,
    FailingTaskAdapter,
    HostileAdapter,
    LeakingAdapter,
    ProbeAdapter,
)

pytestmark = pytest.mark.timeout(60)

FIXTURE_PLUGINS = Path(__file__).resolve().parent.parent / "fixtures" / "plugins"
# Bounds of the waits below (real seconds): a worker starts in about 0.3 s here; a loaded CI runner is slower.
WAIT_S = 20.0


async def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm", "rb") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1_048_576


@pytest.fixture
async def session(mosquitto_session: Mosquitto) -> AsyncIterator[MqttSession]:
    settings = MqttSection.model_validate({
        "host": mosquitto_session.host, "port": mosquitto_session.port, "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2, "keepalive_s": 5, "status_topic": f"hearth-test/{uuid.uuid4().hex[:8]}/status",
    })
    async with MqttSession(settings, SystemClock(), client_id=f"test-{uuid.uuid4().hex[:8]}") as mqtt:
        assert await mqtt.wait_connected(10.0)
        yield mqtt


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Restarts within the test's time: 0.2 s doubling (the real one starts at 1 s).
    monkeypatch.setattr(supervisor_module, "BACKOFF_MIN_S", 0.2)


async def test_a_plugin_in_process_mode_works_end_to_end(session: MqttSession, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURE_PLUGINS))  # the worker gets the gateway's import path
    from hearth_good import GoodAdapter

    base = f"iso-{uuid.uuid4().hex[:8]}"
    hub = Hub(SystemClock())
    config = {"good": {"isolation": "process", "memory_limit_mb": 128, "base_topic": base}}
    # A simulated plug: it obeys what is published to its set topic and reports its new state.
    session.subscribe(f"{base}/+/set", lambda topic, payload, retained: session.publish(
        topic.replace("/set", "/state"), payload))
    async with Supervisor(hub, {"good": GoodAdapter}, config, mqtt=session) as supervisor:
        await wait_for(lambda: supervisor.health["good"].state == "running", "the good adapter to run")
        proxy = supervisor.instance("good")
        assert isinstance(proxy, ProcessAdapter)
        worker_pid = proxy.stats()["process"]["pid"]
        assert worker_pid != os.getpid()

        session.publish(f"{base}/plug1/state", '{"temperature": 21.5, "power": 12.0, "on": true}')
        device = await wait_for(lambda: hub.devices.get("good:plug1"), "the plug to appear in the hub")
        assert device.adapter == "good" and device.manufacturer == "Good"
        await wait_for(lambda: device.value("main", "power_meter", "watts") == 12.0, "its power")
        assert device.value("main", "temperature", "celsius") == 21.5
        assert device.value("main", "on_off", "on") is True

        result = await hub.execute(Command("good:plug1", "main", "on_off", "off"), timeout_s=10.0)
        assert result.status == "confirmed", result
        assert device.value("main", "on_off", "on") is False
        # toggle reads the worker's copy of the device (ctx.device), which followed the state it pushed
        result = await hub.execute(Command("good:plug1", "main", "on_off", "toggle"), timeout_s=10.0)
        assert result.status == "confirmed", result
        assert device.value("main", "on_off", "on") is True

        session.publish(f"{base}/plug1/state", "garbage")
        await wait_for(lambda: hub.bad_input_by_source["good"] >= 1, "the garbage to be reported as bad input")
        assert supervisor.health["good"].restarts == 0
        report = supervisor.health_report()["good"]
        assert report["state"] == "running"
        assert report["stats"]["process"]["memory_limit_mb"] == 128
        assert report["stats"]["process"]["protocol_errors"] == 0
    with pytest.raises(ProcessLookupError):  # stopped with the supervisor
        for _ in range(100):
            os.kill(worker_pid, 0)
            await asyncio.sleep(0.05)


class MemoryKV:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def items(self) -> list[tuple[str, Any]]:
        return list(self.data.items())


async def test_the_context_in_a_worker_is_the_sdks(session: MqttSession, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    base = f"iso-{uuid.uuid4().hex[:8]}"
    hub = Hub(SystemClock(), areas={"probe:1": "Loft"})
    events: list[DeviceEvent] = []
    hub.bus.subscribe(DeviceEvent, events.append)
    stored: dict[str, Any] = {"runs": 2, "forget me": True}
    echoes: list[bytes] = []
    session.subscribe(f"{base}/echo/back", lambda topic, payload, retained: echoes.append(payload))
    config = {"probe": {"isolation": "process", "memory_limit_mb": 128, "base_topic": base, "greeting": "hi"}}
    async with Supervisor(hub, {"probe": ProbeAdapter}, config, mqtt=session,
                          storage_for=lambda name: MemoryKV(stored)) as supervisor:
        await wait_for(lambda: supervisor.health["probe"].state == "running", "the probe to run")
        device = await wait_for(lambda: hub.devices.get("probe:1"), "its device")
        # Its own capability, registered in its start in the worker, reached the gateway's model first.
        await wait_for(lambda: device.value("main", "probe.gauge", "level") == 7, "its level")
        assert device.area == "Loft" and device.available is True
        await wait_for(lambda: events, "its event")
        assert (events[0].device_id, events[0].event, events[0].data) == ("probe:1", "pressed", {"button": 1})
        assert stored == {"runs": 3}  # read the gateway's storage, wrote it back, deleted a key

        said = await wait_for(lambda: [r for r in caplog.records if r.name == "hearth.adapter.probe"
                                       and r.getMessage().startswith("hi from pid")], "its log line")
        line = said[0].getMessage()
        assert f"pid {os.getpid()}:" not in line  # another process
        assert "run 3, config ['base_topic', 'greeting']" in line  # validated by its model; no isolation keys
        assert "at level 7" in line and "1 device(s)" in line  # ctx.device / devices answered in the worker

        session.publish(f"{base}/echo", b"\xff\x00abc")  # not UTF-8: carried as base64
        await wait_for(lambda: echoes, "the echo")
        assert echoes == [b"cba\x00\xff"]
        session.publish(f"{base}/raise", "x")
        await wait_for(lambda: supervisor.health["probe"].message_failures == 1, "the failed callback counted")
        assert "ValueError: cannot read b'x'" in (supervisor.health["probe"].last_error or "")
        assert supervisor.health["probe"].state == "running"


def test_replay_time_runs_a_process_plugin_inline() -> None:
    # A simulated clock cannot reach a worker's: under one (hearth replay) the plugin runs in the gateway's process.
    assert process_adapter_class("good", ProbeAdapter, {"isolation": "process"}, real_time=False) is ProbeAdapter
    assert process_adapter_class("good", ProbeAdapter, {}) is ProbeAdapter
    proxy = process_adapter_class("good", ProbeAdapter, {"isolation": "process", "base_topic": "x"})
    assert issubclass(proxy, ProcessAdapter) and proxy.needs_mqtt is True
    assert proxy.section == {"base_topic": "x"} and proxy.memory_limit_mb == 256
    assert proxy.target == "tests.isolation.plugins:ProbeAdapter"


async def test_a_plugin_that_blocks_does_not_block_the_gateway(session: MqttSession) -> None:
    base = f"iso-{uuid.uuid4().hex[:8]}"
    hub = Hub(SystemClock())
    config = {"blocking": {"isolation": "process", "memory_limit_mb": 128, "base_topic": base}}
    async with Supervisor(hub, {"blocking": BlockingAdapter}, config, mqtt=session) as supervisor:
        await wait_for(lambda: supervisor.health["blocking"].state == "running", "the adapter to run")
        device = hub.devices["blocking:1"]
        session.publish(f"{base}/block", "now")
        # The gateway's loop meanwhile: a 10 ms tick, its longest gap measured while the plugin sleeps 2 s.
        longest = 0.0
        started = time.monotonic()
        last = started
        while device.value("main", "on_off", "on") is not True and time.monotonic() - started < WAIT_S:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest = max(longest, now - last)
            last = now
        assert device.value("main", "on_off", "on") is True, "the blocking callback never ran"
        assert time.monotonic() - started >= BLOCK_S * 0.9  # it did block (its own loop)
        assert longest < 0.5, f"the gateway's loop was held {longest:.2f} s"
        assert supervisor.health["blocking"].state == "running"


async def test_a_worker_stuck_in_a_plugin_is_still_stopped_in_bounded_time(session: MqttSession) -> None:
    base = f"iso-{uuid.uuid4().hex[:8]}"
    hub = Hub(SystemClock())
    config = {"blocking": {"isolation": "process", "memory_limit_mb": 128, "base_topic": base, "block_s": 60}}
    async with Supervisor(hub, {"blocking": BlockingAdapter}, config, mqtt=session) as supervisor:
        await wait_for(lambda: supervisor.health["blocking"].state == "running", "the adapter to run")
        pid = supervisor.instance("blocking").stats()["process"]["pid"]
        session.publish(f"{base}/block", "now")
        await asyncio.sleep(0.5)  # it is asleep in its callback now, deaf to "stop"
        started = time.monotonic()
    took = time.monotonic() - started
    # Asked to stop (4 s), then terminated: within the supervisor's 10 s for an adapter's stop.
    assert 3.5 < took < 9.0, took
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_leaking_plugin_is_ended_at_its_limit_and_restarted(fast_backoff: None) -> None:
    hub = Hub(SystemClock())
    config = {"leaking": {"isolation": "process", "memory_limit_mb": 96}}
    before = rss_mb(os.getpid())
    async with Supervisor(hub, {"leaking": LeakingAdapter}, config, mqtt=None,
                          rng=random.Random(1)) as supervisor:
        health = supervisor.health["leaking"]
        await wait_for(lambda: health.restarts >= 2 and health.state == "running", "two restarts")
        assert health.failures >= 2
        assert health.last_error is not None
        assert "memory limit 96 MB reached" in health.last_error, health.last_error
        assert "WorkerDiedError" in health.last_error
    grown = rss_mb(os.getpid()) - before
    # Each worker reached ~96 MB; the gateway's own memory does not follow (bounded generously: imports, buffers).
    assert grown < 40, f"the gateway's RSS grew {grown:.0f} MB"


async def test_a_crashing_worker_is_restarted_with_backoff_and_health_says_why(fast_backoff: None) -> None:
    hub = Hub(SystemClock())
    config = {"crashing": {"isolation": "process", "memory_limit_mb": 96}}
    async with Supervisor(hub, {"crashing": CrashingAdapter}, config, mqtt=None,
                          rng=random.Random(1)) as supervisor:
        health = supervisor.health["crashing"]
        delays: list[float] = []

        def seen_three() -> bool:
            if health.retry_in_s is not None and (not delays or delays[-1] != health.retry_in_s):
                delays.append(health.retry_in_s)
            return len(delays) >= 3

        await wait_for(seen_three, "three restarts")
        assert delays == sorted(delays) and delays[-1] > delays[0], delays  # back-off: longer each time
        assert health.last_error is not None
        assert "exited with code 17" in health.last_error, health.last_error
        assert "relay board: lost the serial port" in health.last_error  # its last words
        assert supervisor.health_report()["crashing"]["failures"] >= 3


async def test_a_failing_task_in_the_worker_restarts_the_adapter_as_in_process(fast_backoff: None) -> None:
    hub = Hub(SystemClock())
    stored: dict[str, Any] = {}
    async with Supervisor(hub, {"failing": FailingTaskAdapter}, {"failing": {"isolation": "process"}}, mqtt=None,
                          storage_for=lambda name: MemoryKV(stored)) as supervisor:
        health = supervisor.health["failing"]
        await wait_for(lambda: health.restarts >= 2, "two restarts")
        assert health.last_error == "PluginError: RuntimeError: the cloud said 503"
        await wait_for(lambda: stored.get("stopped", 0) >= 2, "its stop() to have run in the worker")


async def test_a_worker_that_sends_garbage_is_reported_not_fatal() -> None:
    hub = Hub(SystemClock())
    config = {"hostile": {"isolation": "process", "memory_limit_mb": 128}}
    async with Supervisor(hub, {"hostile": HostileAdapter}, config, mqtt=None) as supervisor:
        await wait_for(lambda: supervisor.health["hostile"].state == "running", "the adapter to run")
        # Its well-formed calls, sent after the garbage, arrive all the same.
        await wait_for(lambda: hub.devices.get("hostile:1") is not None
                       and hub.devices["hostile:1"].value("main", "on_off", "on") is True, "its device")
        stats = supervisor.instance("hostile").stats()["process"]
        assert stats["protocol_errors"] >= len(HostileAdapter.GARBAGE) - 1, stats
        assert hub.bad_input_by_source["hostile"] >= len(HostileAdapter.GARBAGE) - 1
        result = await hub.execute(Command("hostile:1", "main", "on_off", "off"))
        assert result.status == "confirmed" and result.details["pid"] != os.getpid()
        assert supervisor.health["hostile"].restarts == 0


def test_isolation_keys_are_the_supervisors_for_any_adapter() -> None:
    from pydantic import BaseModel, ConfigDict

    class Strict(BaseModel):
        model_config = ConfigDict(extra="forbid")
        base_topic: str = "x"

    class WithModel:
        config_model = Strict

    class WithoutModel:
        pass

    text = ('[adapters.a]\nisolation = "process"\nmemory_limit_mb = 128\nbase_topic = "y"\n'
            '[adapters.b]\nisolation = "process"\n'
            '[adapters.c]\nisolation = "thread"\nmemory_limit_mb = 1\n')
    sections = {"a": {"isolation": "process", "memory_limit_mb": 128, "base_topic": "y"},
                "b": {"isolation": "process"}, "c": {"isolation": "thread", "memory_limit_mb": 1}}
    problems = adapter_config_problems("config.toml", text, sections, {"a": WithModel, "b": WithoutModel,
                                                                       "c": WithoutModel})
    assert [(p.key, p.line) for p in problems] == [("adapters.c.isolation", 8), ("adapters.c.memory_limit_mb", 9)]
    settings, rest = split_isolation(sections["a"])
    assert (settings.isolation, settings.memory_limit_mb, rest) == ("process", 128, {"base_topic": "y"})
    assert split_isolation({})[0].isolation == "inline"
    assert supervisor_module.validate_adapter_config("a", WithModel, sections["a"]) == {"base_topic": "y"}
