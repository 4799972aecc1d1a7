"""The hub: one owner of state, typed events, availability, command routing with confirmation."""

from __future__ import annotations

import asyncio

import pytest

from gateway.bus import AvailabilityChanged, CommandResultEvent, DeviceAdded, InputRejected, StateChanged
from gateway.clock import SimulatedClock, SystemClock
from gateway.errors import CommandValidationError
from gateway.hub import Hub
from gateway.model.types import CapabilitySupport, Command, CommandResult, DeviceInfo, Update


def plug_info(device_id: str = "test:plug", name: str = "Plug") -> DeviceInfo:
    return DeviceInfo(
        id=device_id, name=name, source="test",
        components={
            "main": {
                "on_off": CapabilitySupport(frozenset({"on"}), frozenset({"on", "off", "toggle"})),
                "power_meter": CapabilitySupport(frozenset({"watts"})),
            }
        },
        aliases=("kitchen/plug",),
    )


def test_state_changes_are_published_with_old_and_new_values() -> None:
    hub = Hub(SimulatedClock(100.0))
    events: list[object] = []
    hub.bus.subscribe(StateChanged, events.append)
    hub.bus.subscribe(DeviceAdded, events.append)
    hub.upsert_device(plug_info(), "test")
    hub.apply([Update("test:plug", "main", "power_meter", "watts", 3.5)])
    hub.apply([Update("test:plug", "main", "power_meter", "watts", 3.5)])  # same value: no event
    hub.apply([Update("test:plug", "main", "power_meter", "watts", 60.0)])
    assert events[0] == DeviceAdded(100.0, "test:plug")
    changes = [(e.old, e.new) for e in events if isinstance(e, StateChanged)]
    assert changes == [(None, 3.5), (3.5, 60.0)]
    assert hub.devices["test:plug"].value("main", "power_meter", "watts") == 60.0


def test_bad_updates_are_counted_and_reported_not_applied() -> None:
    hub = Hub(SimulatedClock())
    rejected: list[InputRejected] = []
    hub.bus.subscribe(InputRejected, rejected.append)
    hub.upsert_device(plug_info(), "test")
    hub.apply([
        Update("test:plug", "main", "power_meter", "watts", "lots"),
        Update("test:plug", "main", "on_off", "on", 1),
        Update("test:plug", "main", "level", "brightness", 3),
        Update("test:nope", "main", "on_off", "on", True),
        Update("test:plug", "main", "on_off", "on", True),
    ])
    assert hub.counters["bad_input"] == 4
    assert [r.source for r in rejected] == ["test", "test", "test", "test"]
    assert "expected number" in rejected[0].message
    assert hub.devices["test:plug"].state["main"] == {"on_off": {"on": True}}


def test_areas_from_config_match_id_or_name_case_insensitively() -> None:
    hub = Hub(SimulatedClock(), areas={"Kitchen/Plug": "kitchen", "test:other": "hall"})
    assert hub.upsert_device(plug_info(), "test").area == "kitchen"
    assert hub.upsert_device(plug_info("test:other", "Other"), "test").area == "hall"


def test_availability_changes_once() -> None:
    hub = Hub(SimulatedClock())
    seen: list[AvailabilityChanged] = []
    hub.bus.subscribe(AvailabilityChanged, seen.append)
    hub.upsert_device(plug_info(), "test")
    hub.set_available("test:plug", True)
    hub.set_available("test:plug", True)
    hub.set_available("test:plug", False)
    assert [e.available for e in seen] == [True, False]


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    hub = Hub(SimulatedClock())
    got: list[StateChanged] = []

    def broken(event: StateChanged) -> None:
        raise RuntimeError("boom")

    hub.bus.subscribe(StateChanged, broken)
    hub.bus.subscribe(StateChanged, got.append)
    hub.upsert_device(plug_info(), "test")
    hub.apply([Update("test:plug", "main", "on_off", "on", True)])
    assert len(got) == 1
    assert hub.bus.subscriber_errors == 1


async def test_command_is_confirmed_when_the_device_reports_the_new_state() -> None:
    hub = Hub(SystemClock())
    hub.upsert_device(plug_info(), "test")
    hub.apply([Update("test:plug", "main", "on_off", "on", False)])
    results: list[CommandResultEvent] = []
    hub.bus.subscribe(CommandResultEvent, results.append)
    sent: list[Command] = []

    async def handler(command: Command) -> CommandResult:
        sent.append(command)
        # the device answers a moment later, as a real one does over MQTT
        asyncio.get_running_loop().call_later(
            0.01, hub.apply, [Update("test:plug", "main", "on_off", "on", True)]
        )
        return CommandResult("sent")

    hub.set_command_handler("test", handler)
    result = await hub.execute(Command("test:plug", "main", "on_off", "toggle"), timeout_s=2)
    assert result.status == "confirmed"
    assert result.expected == {"on": True}
    assert sent[0].command == "toggle"
    assert results[0].result.status == "confirmed"


async def test_command_times_out_when_the_device_stays_silent() -> None:
    hub = Hub(SystemClock())
    hub.upsert_device(plug_info(), "test")
    hub.apply([Update("test:plug", "main", "on_off", "on", False)])

    async def handler(command: Command) -> CommandResult:
        return CommandResult("sent")

    hub.set_command_handler("test", handler)
    results: list[CommandResult] = []
    hub.bus.subscribe(CommandResultEvent, lambda e: results.append(e.result))
    result = await hub.execute(Command("test:plug", "main", "on_off", "on"), timeout_s=0.05)
    assert result.status == "timeout"
    assert "did not confirm" in result.message
    # The device carries it out after all: the outcome is corrected, and nothing is left behind.
    hub.apply([Update("test:plug", "main", "on_off", "on", True)])
    await asyncio.sleep(0)
    assert [(r.status, r.details.get("late")) for r in results] == [("timeout", None), ("confirmed", True)]
    assert not hub._waiters


async def _advance(clock: SimulatedClock, seconds: float) -> None:
    """Simulated time forward in small steps, letting the loop run the tasks each step wakes."""
    target = clock.time() + seconds
    while clock.time() < target:
        clock.advance_to(min(target, clock.time() + 0.1))
        for _ in range(3):
            await asyncio.sleep(0)


async def test_one_deadline_for_every_transport_and_a_late_outcome_is_not_lost() -> None:
    # A Shelly whose Switch.Set hangs: the caller hears "timeout" at the configured deadline (it used to be
    # "failed" after the HTTP client's own 10 s, for a command the device then carried out).
    clock = SimulatedClock(1000.0)
    hub = Hub(clock)
    hub.upsert_device(plug_info(), "test")
    hub.apply([Update("test:plug", "main", "on_off", "on", False)])
    cancelled: list[str] = []

    async def handler(command: Command) -> CommandResult:
        try:
            await asyncio.get_running_loop().create_future()  # the HTTP request that hangs
        except asyncio.CancelledError:
            cancelled.append(command.command)
            raise
        return CommandResult("sent")

    hub.set_command_handler("test", handler)
    results: list[CommandResult] = []
    hub.bus.subscribe(CommandResultEvent, lambda e: results.append(e.result))
    pending = asyncio.ensure_future(hub.execute(Command("test:plug", "main", "on_off", "on"), timeout_s=5))
    await _advance(clock, 4.9)
    assert not pending.done()
    await _advance(clock, 0.2)
    result = await pending
    assert result.status == "timeout" and "may still carry the command out" in result.message
    assert cancelled == ["on"]  # the adapter's wait ends with the deadline, not with its HTTP client's
    await _advance(clock, 20)
    hub.apply([Update("test:plug", "main", "on_off", "on", True)])  # ...and the relay switched after all
    for _ in range(5):
        await asyncio.sleep(0)
    assert [(r.status, r.details.get("late")) for r in results] == [("timeout", None), ("confirmed", True)]
    assert hub.counters["commands_late_confirmed"] == 1
    assert not hub._waiters and not hub._late_tasks

    # A device that never answers is followed for a minute, then let go.
    pending = asyncio.ensure_future(hub.execute(Command("test:plug", "main", "on_off", "off"), timeout_s=5))
    await _advance(clock, 5.1)
    assert (await pending).status == "timeout"
    await _advance(clock, 61)
    for _ in range(5):
        await asyncio.sleep(0)
    assert not hub._waiters and not hub._late_tasks


async def test_offline_devices_and_missing_adapters_say_so() -> None:
    hub = Hub(SystemClock())
    hub.upsert_device(plug_info(), "test")
    result = await hub.execute(Command("test:plug", "main", "on_off", "on"))
    assert result.status == "failed" and "not running" in result.message
    hub.set_available("test:plug", False)
    result = await hub.execute(Command("test:plug", "main", "on_off", "on"))
    assert result.status == "unavailable"
    with pytest.raises(CommandValidationError) as info:
        await hub.execute(Command("test:ghost", "main", "on_off", "on"))
    assert info.value.field == "device_id"


async def test_a_three_speed_fan_confirms_half_speed_at_its_second_step() -> None:
    # A fan with 3 speeds asked for 50 % runs at speed 2 and reports 67 %: that confirms the command
    # (it used to time out: "did not confirm within 5 s").
    hub = Hub(SystemClock())
    fan = CapabilitySupport(frozenset({"on", "speed_percent", "speed_steps"}), frozenset({"set_speed"}))
    hub.upsert_device(DeviceInfo(id="test:fan", name="Fan", source="test", components={"main": {"fan": fan}}), "test")
    hub.apply([Update("test:fan", "main", "fan", "speed_steps", 3),
               Update("test:fan", "main", "fan", "speed_percent", 0)])

    async def handler(command: Command) -> CommandResult:
        asyncio.get_running_loop().call_later(0.01, hub.apply, [Update("test:fan", "main", "fan", "speed_percent", 67)])
        return CommandResult("sent")

    hub.set_command_handler("test", handler)
    result = await hub.execute(Command("test:fan", "main", "fan", "set_speed", {"percent": 50}), timeout_s=2)
    assert (result.status, result.expected) == ("confirmed", {"speed_percent": 67})
