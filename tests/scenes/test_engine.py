"""The scene engine on its own: a hub of a few fake devices that obey every command, a simulated clock,
small inline profiles. Each test says what a user of the house would see: a light switched, a
notification sent, an alert raised and escalated, at the right (simulated) time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.bus import ModeChanged
from gateway.clock import SimulatedClock
from gateway.errors import ConfigError
from gateway.hub import Hub
from gateway.model import expected_state
from gateway.model.types import CapabilitySupport, Command, CommandResult, DeviceEventUpdate, DeviceInfo, Update
from gateway.scenes.engine import CHECK_IN_RESOLUTION, EngineSettings, SceneEngine
from gateway.scenes.notify import RecordingNotifier
from gateway.scenes.profile import load_profile_text

DAY = datetime(2026, 3, 10, tzinfo=UTC)  # a Tuesday, midnight UTC

KITCHEN_MOTION = "fake:kitchen-motion"
HALL_MOTION = "fake:hall-motion"
KITCHEN_LIGHT = "fake:kitchen-light"
HALL_LIGHT = "fake:hall-light"
RADIATOR = "fake:radiator"
DOOR = "fake:door"
BUTTON = "fake:button"
OTHER_BUTTON = "fake:other-button"


def _support(attributes: set[str], commands: set[str] = frozenset()) -> CapabilitySupport:  # type: ignore[assignment]
    return CapabilitySupport(frozenset(attributes), frozenset(commands))


DEVICES = [
    DeviceInfo(KITCHEN_MOTION, "Kitchen motion", "fake", {"main": {"occupancy": _support({"occupied"})}},
               suggested_area="kitchen"),
    DeviceInfo(HALL_MOTION, "Hall motion", "fake", {"main": {"occupancy": _support({"occupied"})}},
               suggested_area="hall"),
    DeviceInfo(KITCHEN_LIGHT, "Kitchen light", "fake", {"main": {
        "on_off": _support({"on"}, {"on", "off", "toggle"}), "level": _support({"percent"}, {"set"})}},
        suggested_area="kitchen"),
    DeviceInfo(HALL_LIGHT, "Hall light", "fake", {"main": {
        "on_off": _support({"on"}, {"on", "off", "toggle"}), "level": _support({"percent"}, {"set"})}},
        suggested_area="hall"),
    DeviceInfo(RADIATOR, "Radiator", "fake", {"main": {
        "thermostat": _support({"target_celsius", "mode"}, {"set_target", "set_mode"})}}, suggested_area="living"),
    DeviceInfo(DOOR, "Front door", "fake", {"main": {"contact": _support({"open"})}}, suggested_area="hall"),
    DeviceInfo(BUTTON, "Bedside button", "fake", {"main": {"button": _support({"last_event"})}},
               suggested_area="bedroom"),
    DeviceInfo(OTHER_BUTTON, "Kitchen button", "fake", {"main": {"button": _support({"last_event"})}},
               suggested_area="kitchen"),
]
TAGS = {BUTTON: ["panic"]}
INITIAL = [
    (KITCHEN_MOTION, "occupancy", "occupied", False), (HALL_MOTION, "occupancy", "occupied", False),
    (KITCHEN_LIGHT, "on_off", "on", True), (KITCHEN_LIGHT, "level", "percent", 50.0),
    (HALL_LIGHT, "on_off", "on", False), (HALL_LIGHT, "level", "percent", 0.0),
    (RADIATOR, "thermostat", "target_celsius", 21.0), (RADIATOR, "thermostat", "mode", "heat"),
    (DOOR, "contact", "open", False),
]


def at(clock: str, days: int = 0) -> float:
    hh, mm, *ss = (int(p) for p in clock.split(":"))
    return (DAY + timedelta(days=days, hours=hh, minutes=mm, seconds=ss[0] if ss else 0)).timestamp()


def hhmm(t: float | str) -> str:
    if isinstance(t, str):  # ISO-8601 from a trace
        return t[11:16]
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M")


class DictStorage:
    """The engine's key-value scope, in a dict that outlives an engine (as the SQLite store does)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value


class House:
    """A hub with obedient fake devices, a simulated clock and an engine over one inline profile."""

    def __init__(self, profile: str, params: dict[str, Any] | None = None, *, start: float = at("00:00"),
                 storage: DictStorage | None = None, **settings: Any) -> None:
        self.clock = SimulatedClock(start)
        self.hub = Hub(self.clock, tags=TAGS)
        for info in DEVICES:
            self.hub.upsert_device(info, "fake")
            self.hub.set_available(info.id, True)
        self.hub.apply([Update(d, "main", c, a, v) for d, c, a, v in INITIAL])
        self.commands: list[tuple[str, str, str, str, dict[str, Any]]] = []  # (time, device, cap, command, args)
        self.hub.set_command_handler("fake", self._obey)
        self.profile = load_profile_text(profile, "test.toml", params)
        self.notifier = RecordingNotifier()
        self.storage = storage or DictStorage()
        self.settings = EngineSettings(**settings)
        self.engine = self.new_engine()
        self.modes: list[tuple[str, str, str]] = []
        self.hub.bus.subscribe(ModeChanged, lambda e: self.modes.append((e.old, e.new, e.source)))

    def new_engine(self) -> SceneEngine:
        return SceneEngine(self.hub, [self.profile], notifier=self.notifier, storage=self.storage,
                           settings=self.settings)

    async def _obey(self, command: Command) -> CommandResult:
        self.commands.append((hhmm(self.clock.time()), command.device_id, command.capability, command.command,
                              dict(command.args)))
        device = self.hub.devices[command.device_id]
        self.hub.apply([Update(command.device_id, command.component, command.capability, attribute, value)
                        for attribute, value in expected_state(command, device).items()])
        return CommandResult("sent", "published")

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    async def start(self) -> None:
        await self.engine.start()
        await self.settle()

    async def until(self, clock: str, days: int = 0) -> None:
        """Let time run to ``clock``, letting runs progress at every timer on the way."""
        target = at(clock, days)
        while True:
            due = self.clock.next_due()
            if due is None or due > target:
                break
            self.clock.advance_to(due)
            await self.settle()
        self.clock.advance_to(target)
        await self.settle()

    async def set(self, device: str, capability: str, attribute: str, value: Any) -> None:
        self.hub.apply([Update(device, "main", capability, attribute, value)])
        await self.settle()

    async def press(self, device: str = BUTTON, kind: str = "single") -> None:
        self.hub.emit_event(DeviceEventUpdate(device, "main", "button", "pressed", {"kind": kind}))
        await self.settle()

    def sent(self) -> list[tuple[str, str, str]]:
        """(time, target, message) of every notification."""
        return [(hhmm(n.t), target, n.message) for target, n in self.notifier.sent]

    def traces(self, scene: str) -> list[dict[str, Any]]:
        return list(self.engine.scenes[f"{self.profile.name}.{scene}"].traces)

    def runs(self, scene: str) -> list[tuple[str, str]]:
        """(time, result) of the runs of a scene that got past their trigger."""
        return [(hhmm(t["t"]), t["result"]) for t in self.traces(scene)]

    def value(self, device: str, capability: str, attribute: str) -> Any:
        return self.hub.devices[device].value("main", capability, attribute)


def profile(*scenes: str, parameters: str = "") -> str:
    return f'name = "t"\nversion = 1\n{parameters}\n' + "\n".join(scenes)


def scene(sid: str, triggers: str, actions: str, conditions: str = "", extra: str = "") -> str:
    return (f'[[scenes]]\nid = "{sid}"\nname = "{sid}"\n{extra}\ntriggers = [{triggers}]\n'
            + (f"conditions = [{conditions}]\n" if conditions else "") + f"actions = [{actions}]\n")


NOTE = '{{ kind = "notify", to = "log", message = "{}" }}'.format
PRESS = '{ kind = "button", selector = { tag = "panic" } }'


@pytest.fixture
async def houses() -> Any:
    made: list[House] = []

    async def make(text: str, **kwargs: Any) -> House:
        house = House(text, **kwargs)
        made.append(house)
        await house.start()
        return house

    yield make
    for house in made:
        await house.engine.stop()


# ------------------------------------------------------------------ triggers


LIGHTS_OFF = scene(
    "lights-off",
    '{ kind = "state", selector = { capability = "occupancy" }, attribute = "occupancy.occupied", to = false, '
    'for = "10m" }',
    '{ kind = "command", target = { area = "@trigger", capability = "on_off" }, capability = "on_off", '
    'command = "off" }')


async def test_state_trigger_with_for_fires_after_the_duration(houses: Any) -> None:
    house = await houses(profile(LIGHTS_OFF))
    await house.until("08:00")
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await house.until("08:01")
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", False)
    await house.until("08:10:59")
    assert house.commands == []
    await house.until("08:11")
    assert house.commands == [("08:11", KITCHEN_LIGHT, "on_off", "off", {})]
    assert house.value(KITCHEN_LIGHT, "on_off", "on") is False
    assert house.value(HALL_LIGHT, "on_off", "on") is False  # another room's light: never touched
    (trace,) = house.traces("lights-off")
    assert trace["trigger"]["device_id"] == KITCHEN_MOTION and trace["trigger"]["held_s"] == 600


async def test_state_trigger_is_cancelled_when_the_value_moves_away(houses: Any) -> None:
    house = await houses(profile(LIGHTS_OFF))
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await house.until("08:00")
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", False)
    await house.until("08:09")
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)  # back before the 10 minutes
    await house.until("08:30")
    assert house.commands == [] and house.traces("lights-off") == []
    # ... and the clock starts again from the next "empty"
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", False)
    await house.until("08:39")
    assert house.commands == []
    await house.until("08:40")
    assert house.commands == [("08:40", KITCHEN_LIGHT, "on_off", "off", {})]


async def test_a_value_that_moves_away_and_back_within_the_hold_is_held_from_its_return(houses: Any) -> None:
    # The first hold's timer is not cancelled when the room fills again (flapping costs no timer per
    # flap): when it runs out at 08:10 it must find the newer hold and wait until 08:15, not fire.
    house = await houses(profile(LIGHTS_OFF))
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await house.until("08:00")
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", False)
    await house.until("08:03")
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await house.until("08:05")
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", False)
    await house.until("08:14:59")
    assert house.commands == [] and house.traces("lights-off") == []
    await house.until("08:15")
    assert house.commands == [("08:15", KITCHEN_LIGHT, "on_off", "off", {})]
    assert len(house.traces("lights-off")) == 1


QUIET = scene(
    "quiet",
    '{ kind = "absence", selector = { capability = "occupancy" }, for = "1h", '
    'window = { after = "07:00", before = "22:00" } }',
    NOTE("quiet for {duration} at {time}"))


async def test_absence_fires_inside_the_window_once_per_absence(houses: Any) -> None:
    house = await houses(profile(QUIET))
    await house.until("07:59")
    assert house.sent() == []  # the night does not count: the hour starts at 07:00
    await house.until("12:00")
    # once, not every hour; {duration} is the time since the last activity (here: the engine's start)
    assert house.sent() == [("08:00", "log", "quiet for 8 h at 08:00")]
    await house.set(HALL_MOTION, "occupancy", "occupied", True)  # activity re-arms it
    await house.set(HALL_MOTION, "occupancy", "occupied", False)  # (a change to "empty" is no activity)
    await house.until("13:30")
    assert house.sent()[1:] == [("13:00", "log", "quiet for 1 h at 13:00")]
    await house.until("21:30")
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await house.until("07:59", days=1)  # 22:30 is outside the window: the hour runs on in the morning
    assert len(house.sent()) == 2
    await house.until("09:00", days=1)
    assert house.sent()[2:] == [("08:00", "log", "quiet for 10 h 30 min at 08:00")]


async def test_absence_without_for_fires_at_the_end_of_an_empty_window(houses: Any) -> None:
    morning = scene("morning", '{ kind = "absence", selector = { capability = "occupancy" }, '
                               'window = { after = "06:00", before = "09:30" } }', NOTE("nobody up"))
    house = await houses(profile(morning))
    await house.until("12:00")
    assert house.sent() == [("09:30", "log", "nobody up")]
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await house.until("07:00", days=1)  # up at 07:00 the next day: no alarm at 09:30
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", False)
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await house.until("12:00", days=1)
    assert len(house.sent()) == 1


async def test_time_trigger_on_weekdays(houses: Any) -> None:
    weekly = scene("bins", '{ kind = "time", at = "07:30", weekdays = ["mon", "wed"] }', NOTE("bins {date}"))
    house = await houses(profile(weekly))
    await house.until("23:59", days=7)
    # 2026-03-10 is a Tuesday
    assert [m for _, _, m in house.sent()] == ["bins 2026-03-11", "bins 2026-03-16"]
    assert {t for t, _, _ in house.sent()} == {"07:30"}


async def test_sun_trigger_needs_a_location(houses: Any) -> None:
    dusk = scene("dusk", '{ kind = "sun", event = "sunset", offset = "-30m" }', NOTE("dusk at {time}"))
    with pytest.raises(ConfigError) as info:
        House(profile(dusk))
    assert "set [location] latitude and longitude" in str(info.value)
    house = await houses(profile(dusk), latitude=52.52, longitude=13.40)  # Berlin
    await house.until("23:59", days=1)
    # sunset in Berlin on 10 and 11 March 2026 is at about 16:55 UTC: half an hour before it
    times = [datetime.strptime(t, "%H:%M") for t, _, _ in house.sent()]
    assert len(times) == 2
    for fired in times:
        assert datetime(1900, 1, 1, 16, 15) <= fired <= datetime(1900, 1, 1, 16, 40), fired
    assert times[1] > times[0]  # the days get longer in March


async def test_button_trigger_with_a_press_filter(houses: Any) -> None:
    double = scene("double", '{ kind = "button", selector = { capability = "button", area = "bedroom" }, '
                             'press = ["double", "long"] }', NOTE("{device}: {value}"))
    house = await houses(profile(double))
    await house.press(BUTTON, "single")
    await house.press(OTHER_BUTTON, "double")  # not in the bedroom
    assert house.sent() == []
    await house.press(BUTTON, "double")
    await house.press(BUTTON, "long")
    assert [m for _, _, m in house.sent()] == ["Bedside button: double", "Bedside button: long"]


AWAY = profile(
    scene("leave", PRESS, '{ kind = "set_mode", mode = "away" }'),
    scene("eco", '{ kind = "mode", to = "away" }',
          '{ kind = "save_state", target = { capability = "thermostat" }, attribute = "thermostat.target_celsius", '
          'key = "away" }, { kind = "command", target = { capability = "thermostat" }, capability = "thermostat", '
          'command = "set_target", args = { celsius = 16 } }'),
    scene("back", '{ kind = "mode", to = "home", from = "away" }', '{ kind = "restore_state", key = "away" }'),
    scene("night-only", '{ kind = "mode", to = "home", from = "night" }', NOTE("good morning")),
)


async def test_mode_trigger_and_set_mode_save_and_restore(houses: Any) -> None:
    house = await houses(AWAY)
    await house.until("08:00")
    await house.press()
    assert house.engine.mode == "away"
    assert house.modes == [("home", "away", "scene:t.leave")]
    assert house.value(RADIATOR, "thermostat", "target_celsius") == 16
    await house.press()  # away again: the eco setpoint must not be saved as the one to restore
    await house.until("18:00")
    house.engine.set_mode("home", source="api")
    await house.settle()
    assert house.value(RADIATOR, "thermostat", "target_celsius") == 21.0
    assert [c[2:] for c in house.commands] == [("thermostat", "set_target", {"celsius": 16}),
                                               ("thermostat", "set_target", {"celsius": 21.0})]
    assert house.sent() == []  # "from night" did not match
    assert house.engine.saved == {}


# ------------------------------------------------------------------ conditions


def checked(condition: str) -> str:
    return profile(scene("c", PRESS, NOTE("ran"), conditions=condition))


async def run_at(house: House, clock: str, days: int = 0) -> str:
    await house.until(clock, days)
    await house.press()
    return house.traces("c")[-1]["result"]


async def test_time_window_across_midnight(houses: Any) -> None:
    house = await houses(checked('{ kind = "time", after = "23:00", before = "06:00" }'))
    assert await run_at(house, "05:59") == "done"
    assert await run_at(house, "06:00") == "conditions not met"
    assert await run_at(house, "12:00") == "conditions not met"
    assert await run_at(house, "23:00") == "done"
    assert house.traces("c")[-1]["conditions"] == [{"kind": "time", "result": True, "now": "23:00"}]
    assert await run_at(house, "00:30", days=1) == "done"
    assert len(house.sent()) == 3


async def test_weekday_condition(houses: Any) -> None:
    house = await houses(checked('{ kind = "weekday", days = ["sat", "sun"] }'))
    assert await run_at(house, "12:00") == "conditions not met"  # Tuesday
    assert house.traces("c")[-1]["conditions"] == [{"kind": "weekday", "result": False, "today": "tue"}]
    assert await run_at(house, "12:00", days=4) == "done"  # Saturday


async def test_state_conditions_any_all_none_with_for(houses: Any) -> None:
    def state(match: str) -> str:
        return scene(f"{match}-empty", PRESS, NOTE(match), conditions=(
            '{ kind = "state", selector = { capability = "occupancy" }, attribute = "occupancy.occupied", '
            f'equals = false, for = "30m", match = "{match}" }}'))

    def not_moving(match: str) -> str:
        return scene(f"{match}-moving", PRESS, NOTE(f"{match}-moving"), conditions=(
            '{ kind = "state", selector = { capability = "occupancy" }, attribute = "occupancy.occupied", '
            f'equals = true, match = "{match}" }}'))

    house = await houses(profile(*(state(m) for m in ("any", "all", "none")),
                                 *(not_moving(m) for m in ("any", "all", "none"))))

    async def passing() -> list[str]:
        before = len(house.sent())
        await house.press()
        return [m for _, _, m in house.sent()[before:]]

    await house.until("00:10")
    assert await passing() == ["none", "none-moving"]  # empty, but not yet for 30 minutes
    await house.until("00:31")
    assert await passing() == ["any", "all", "none-moving"]
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    assert await passing() == ["any", "any-moving"]  # the hall is still empty
    trace = house.traces("all-empty")[-1]
    assert trace["conditions"][0]["values"] == {HALL_MOTION: False, KITCHEN_MOTION: True}
    assert trace["conditions"][0]["passing"] == [HALL_MOTION]
    await house.set(HALL_MOTION, "occupancy", "occupied", True)
    assert await passing() == ["none", "any-moving", "all-moving"]


async def test_mode_any_and_not_conditions(houses: Any) -> None:
    house = await houses(checked(
        '{ kind = "any", conditions = [{ kind = "mode", is = ["away", "vacation"] }, '
        '{ kind = "not", condition = { kind = "time", after = "07:00", before = "23:00" } }] }'))
    assert await run_at(house, "12:00") == "conditions not met"  # home, daytime
    house.engine.set_mode("vacation")
    assert await run_at(house, "12:01") == "done"
    detail = house.traces("c")[-1]["conditions"][0]
    assert detail["result"] is True and detail["conditions"][0] == {"kind": "mode", "result": True, "mode": "vacation"}
    house.engine.set_mode("home")
    assert await run_at(house, "23:30") == "done"  # night


async def test_last_activity_condition(houses: Any) -> None:
    house = await houses(checked('{ kind = "last_activity", area = "kitchen" }'))
    assert await run_at(house, "08:00") == "conditions not met"  # no activity at all yet
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    assert await run_at(house, "08:01") == "done"
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", False)  # leaving is not activity elsewhere
    assert await run_at(house, "08:02") == "done"
    await house.set(HALL_MOTION, "occupancy", "occupied", True)
    assert await run_at(house, "08:03") == "conditions not met"
    assert house.traces("c")[-1]["conditions"] == [{"kind": "last_activity", "result": False, "last_area": "hall"}]


# ------------------------------------------------------------------ actions


async def test_delay_action(houses: Any) -> None:
    house = await houses(profile(scene("d", PRESS, f'{NOTE("first")}, {{ kind = "delay", for = "5m" }}, '
                                                   f'{NOTE("second at {time}")}')))
    await house.until("08:00")
    await house.press()
    await house.until("08:04:59")
    assert house.sent() == [("08:00", "log", "first")]
    await house.until("08:06")
    assert house.sent()[1:] == [("08:05", "log", "second at 08:05")]
    assert house.runs("d") == [("08:00", "done")]


async def test_a_run_acts_within_its_trigger_and_only_what_waits_becomes_a_task(houses: Any) -> None:
    # The light is switched while the motion report is being taken, not on a later turn of the loop
    # (scene latency: bench/latency.py); a run that then waits carries on as a task, and stopping the
    # engine cancels it with its trace saying so.
    house = await houses(profile(scene(
        "on-then-wait", '{ kind = "state", selector = { area = "hall", capability = "occupancy" }, '
                        'attribute = "occupancy.occupied", to = true }',
        '{ kind = "command", target = { area = "@trigger", capability = "on_off" }, capability = "on_off", '
        'command = "on" }, { kind = "delay", for = "10m" }, ' + NOTE("later"))))
    await house.until("08:00")
    house.hub.apply([Update(HALL_MOTION, "main", "occupancy", "occupied", True)])  # no await in between
    assert house.commands == [("08:00", HALL_LIGHT, "on_off", "on", {})]
    assert len(house.engine._tasks) == 1  # the delay
    await house.engine.stop()
    assert house.runs("on-then-wait") == [("08:00", "cancelled")]
    assert house.sent() == []


def waiting(on_timeout: str) -> str:
    return profile(scene("w", PRESS, f'{NOTE("door opened")}, {{ kind = "wait_for", selector = {{ capability = '
                                     f'"contact" }}, attribute = "contact.open", equals = false, timeout = "10m", '
                                     f'on_timeout = "{on_timeout}" }}, {NOTE("closed at {time}")}'))


async def test_wait_for_that_happens(houses: Any) -> None:
    house = await houses(waiting("stop"))
    await house.set(DOOR, "contact", "open", True)
    await house.until("08:00")
    await house.press()
    await house.until("08:03")
    await house.set(DOOR, "contact", "open", False)
    assert [m for _, _, m in house.sent()] == ["door opened", "closed at 08:03"]
    assert house.traces("w")[-1]["actions"][1]["result"] == "happened"


async def test_wait_for_that_times_out_and_stops(houses: Any) -> None:
    house = await houses(waiting("stop"))
    await house.set(DOOR, "contact", "open", True)
    await house.until("08:00")
    await house.press()
    await house.until("09:00")
    assert [m for _, _, m in house.sent()] == ["door opened"]
    trace = house.traces("w")[-1]
    assert trace["result"] == "done" and trace["actions"][1]["result"] == "timed out" and len(trace["actions"]) == 2


async def test_wait_for_that_times_out_and_continues(houses: Any) -> None:
    house = await houses(waiting("continue"))
    await house.set(DOOR, "contact", "open", True)
    await house.until("08:00")
    await house.press()
    await house.until("09:00")
    assert house.sent()[1:] == [("08:10", "log", "closed at 08:10")]


async def test_notify_message_placeholders(houses: Any) -> None:
    cold = scene("cold", '{ kind = "state", selector = { capability = "thermostat" }, '
                         'attribute = "thermostat.target_celsius", below = 10, for = "1h30m" }',
                 '{ kind = "notify", to = ["log", "phone"], title = "Cold in {area}", severity = "warning", '
                 'message = "{device} in {area}: {value} °C at {time} for {duration} ({scene}, {date}) {unknown}" }')
    house = await houses(profile(cold))
    await house.until("06:00")
    await house.set(RADIATOR, "thermostat", "target_celsius", 8.5)
    await house.until("08:00")
    message = "Radiator in living: 8.5 °C at 07:30 for 1 h 30 min (cold, 2026-03-10) {unknown}"
    assert house.sent() == [("07:30", "log", message), ("07:30", "phone", message)]
    notification = house.notifier.sent[0][1]
    assert notification.title == "Cold in living" and notification.severity == "warning"


ALERT = scene("help", PRESS, '{ kind = "alert", alert = "help", severity = "critical", '
                             'message = "{device} pressed", notify = ["daughter", "son", "neighbour"], '
                             'escalate_after = "5m", max_notifications = 5 }')
CLEAR = scene("all-clear", '{ kind = "button", selector = { device = "fake:other-button" } }',
              '{ kind = "clear_alert", alert = "help" }')


def notified(house: House) -> list[tuple[str, str]]:
    return [(t, target) for t, target, _ in house.sent()]


async def test_alert_is_raised_once_while_open_and_escalates_until_acknowledged(houses: Any) -> None:
    house = await houses(profile(ALERT, CLEAR))
    await house.until("08:00")
    await house.press()
    await house.until("08:02")
    await house.press()  # pressed again: the same alert, not a second one
    (alert,) = house.engine.list_alerts()
    assert alert["state"] == "open" and alert["severity"] == "critical" and alert["message"] == "Bedside button pressed"
    assert "already open as" in house.traces("help")[-1]["actions"][0]["note"]
    await house.until("08:11")
    assert notified(house) == [("08:00", "daughter"), ("08:05", "son"), ("08:10", "neighbour")]
    assert house.sent()[1][2] == "[not acknowledged by daughter] Bedside button pressed"
    acknowledged = house.engine.acknowledge(alert["id"], "token:carer")
    assert acknowledged["acknowledged_by"] == "token:carer" and acknowledged["next_escalation_at"] is None
    assert acknowledged["state"] == "acknowledged" and house.engine.list_alerts(state="open") == []
    await house.until("10:00")
    assert len(house.sent()) == 3  # nobody else is paged


async def test_escalation_goes_down_the_contacts_then_a_final_unanswered_notice(houses: Any) -> None:
    house = await houses(profile(ALERT))
    await house.until("08:00")
    await house.press()
    await house.until("12:00")
    assert notified(house) == [("08:00", "daughter"), ("08:05", "son"), ("08:10", "neighbour"),
                               ("08:15", "daughter"), ("08:15", "son"), ("08:15", "neighbour")]
    assert house.sent()[-1][2].startswith("Nobody has acknowledged this alert since 08:00 (3 notifications)")
    (alert,) = house.engine.list_alerts()
    assert alert["state"] == "open" and alert["unanswered_at"] and alert["next_escalation_at"] is None


async def test_each_contact_is_told_in_their_own_language(houses: Any) -> None:
    # The son reads English, the neighbour Chinese ([notify.neighbour] language = "zh-Hans"): what the
    # gateway writes is in each one's language; what the profile wrote is sent as written.
    house = await houses(profile(ALERT))
    house.notifier = house.engine.notifier = RecordingNotifier({"neighbour": "zh-Hans"})
    await house.until("08:00")
    await house.press()
    await house.until("12:00")
    final = {target: n for target, n in house.notifier.sent if n.data["kind"] == "unanswered"}
    assert final["son"].title == "Unanswered: help"
    assert final["son"].message.startswith("Nobody has acknowledged this alert since 08:00 (3 notifications)")
    # (Chinese text with Chinese punctuation, on purpose: RUF001.)
    assert final["neighbour"].title == "无人回应：help"  # noqa: RUF001
    assert final["neighbour"].message == \
        "自 08:00 起无人确认此警报（已发送 3 条通知）：Bedside button pressed"  # noqa: RUF001
    assert next(n.message for t, n in house.notifier.sent if t == "neighbour") == "[son 未确认] Bedside button pressed"

    (alert,) = house.engine.list_alerts()
    told = len(house.notifier.sent)
    house.engine.resolve(alert["id"], "nai-nai", CHECK_IN_RESOLUTION)
    await house.settle()
    resolved = {target: n for target, n in house.notifier.sent[told:]}
    assert (resolved["son"].title, resolved["son"].message) == ("Resolved: help", "resident checked in (12:00).")
    assert (resolved["neighbour"].title, resolved["neighbour"].message) == \
        ("已解决：help", "老人已报平安（12:00）。")  # noqa: RUF001


REMINDED = scene("help", PRESS, '{ kind = "alert", alert = "help", message = "{device} pressed", '
                                'notify = ["daughter", "son"], escalate_after = "5m", reminders = 2, '
                                'final_notice = false, max_notifications = 5 }')


async def test_reminders_per_contact_capped_by_max_notifications(houses: Any) -> None:
    house = await houses(profile(REMINDED))
    await house.until("08:00")
    await house.press()
    await house.until("12:00")
    assert notified(house) == [("08:00", "daughter"), ("08:05", "daughter"), ("08:10", "daughter"),
                               ("08:15", "son"), ("08:20", "son")]


async def test_clear_alert_closes_it_and_a_new_one_can_be_raised(houses: Any) -> None:
    house = await houses(profile(ALERT, CLEAR))
    await house.until("08:00")
    await house.press()
    await house.press(OTHER_BUTTON)
    (alert,) = house.engine.list_alerts()
    assert alert["state"] == "resolved" and house.engine.list_alerts(open_only=True) == []
    assert alert["resolved_by"] == "scene:t.all-clear"
    await house.until("09:00")
    # clearing stops the escalation, and the one who was told is told it is over
    assert notified(house) == [("08:00", "daughter"), ("08:00", "daughter")]
    assert house.sent()[-1][2] == "cleared by all-clear (08:00)."
    await house.press()
    assert [a["state"] for a in house.engine.list_alerts()] == ["open", "resolved"]


async def test_cooldown(houses: Any) -> None:
    house = await houses(profile(scene("c", PRESS, NOTE("pressed at {time}"), extra='cooldown = "10m"')))
    for clock in ("08:00", "08:05", "08:09:59", "08:10", "08:15"):
        await house.until(clock)
        await house.press()
    assert [t for t, _, _ in house.sent()] == ["08:00", "08:10"]
    assert house.traces("c")[1]["result"].startswith("skipped: cooldown until 2026-03-10T08:10:00")


# ------------------------------------------------------------------ scenes that do not fight

PRIORITIES = profile(
    scene("bright", PRESS, '{ kind = "command", target = { device = "fake:hall-light" }, capability = "level", '
                           'command = "set", args = { percent = 100 } }', extra="priority = 50"),
    scene("dim", '{ kind = "button", selector = { device = "fake:other-button" } }',
          '{ kind = "command", target = { device = "fake:hall-light" }, capability = "level", command = "set", '
          'args = { percent = 10 } }', extra="priority = 10"),
)


async def test_a_lower_priority_scene_does_not_override_a_higher_one(houses: Any) -> None:
    house = await houses(PRIORITIES, priority_hold_s=300.0)
    await house.until("08:00")
    await house.press(BUTTON)  # bright (50)
    await house.until("08:04")
    await house.press(OTHER_BUTTON)  # dim (10): held
    assert house.value(HALL_LIGHT, "level", "percent") == 100
    target = house.traces("dim")[-1]["actions"][0]["targets"][0]
    assert target["status"] == "skipped: held by higher-priority scene t.bright"
    await house.until("08:05")
    await house.press(OTHER_BUTTON)  # the hold is over: last writer wins
    assert house.value(HALL_LIGHT, "level", "percent") == 10
    await house.until("08:06")
    await house.press(BUTTON)  # the higher one may always override the lower
    assert house.value(HALL_LIGHT, "level", "percent") == 100
    assert [(c[0], c[4]["percent"]) for c in house.commands] == [("08:00", 100), ("08:05", 10), ("08:06", 100)]


LIGHTS_OFF_EMPTY = profile(scene(
    "lights-off",
    '{ kind = "state", selector = { capability = "occupancy" }, attribute = "occupancy.occupied", to = false, '
    'for = "10m" }',
    '{ kind = "command", target = { area = "@trigger", capability = "on_off" }, capability = "on_off", '
    'command = "off" }',
    conditions='{ kind = "state", selector = { area = "@trigger", capability = "occupancy" }, '
               'attribute = "occupancy.occupied", equals = false }'))


@pytest.mark.parametrize("manual", ["api", "wall switch"])
async def test_a_manual_change_suspends_light_control_and_the_scene_retries_after(houses: Any, manual: str) -> None:
    house = await houses(LIGHTS_OFF_EMPTY, manual_override_s=1800.0)
    await house.until("08:00")
    if manual == "api":
        result = await house.hub.execute(Command(HALL_LIGHT, "main", "on_off", "on", source="api"))
        assert result.status == "confirmed"
        house.commands.clear()
    else:
        await house.set(HALL_LIGHT, "on_off", "on", True)  # a change the engine did not cause
    await house.set(HALL_MOTION, "occupancy", "occupied", True)
    await house.set(HALL_MOTION, "occupancy", "occupied", False)
    await house.until("08:10")
    assert house.value(HALL_LIGHT, "on_off", "on") is True  # left alone
    target = house.traces("lights-off")[-1]["actions"][0]["targets"][0]
    assert target["status"] == "skipped: manual override until 2026-03-10T08:30:00.000Z"
    await house.until("08:31")  # the override ended and the room is still empty: now it goes off
    assert house.commands == [("08:30", HALL_LIGHT, "on_off", "off", {})]
    assert house.traces("lights-off")[-1]["trigger"]["retry"] == "manual override ended"


async def test_the_retry_after_an_override_respects_the_conditions(houses: Any) -> None:
    house = await houses(LIGHTS_OFF_EMPTY, manual_override_s=1800.0)
    await house.until("08:00")
    await house.set(HALL_LIGHT, "on_off", "on", True)
    await house.set(HALL_MOTION, "occupancy", "occupied", True)
    await house.set(HALL_MOTION, "occupancy", "occupied", False)
    await house.until("08:20")
    await house.set(HALL_MOTION, "occupancy", "occupied", True)  # somebody is back in the hall
    await house.until("09:00")
    assert house.commands == []
    assert house.runs("lights-off")[-1] == ("08:30", "conditions not met")


async def test_own_changes_are_not_taken_for_manual_ones(houses: Any) -> None:
    house = await houses(LIGHTS_OFF_EMPTY, manual_override_s=1800.0)
    await house.until("08:00")
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", False)
    await house.until("08:10")
    assert house.commands == [("08:10", KITCHEN_LIGHT, "on_off", "off", {})]
    assert KITCHEN_LIGHT not in house.engine.overrides


# ------------------------------------------------------------------ restarts

RESTART = profile(
    scene("cold", '{ kind = "state", selector = { capability = "thermostat" }, attribute = '
                  '"thermostat.target_celsius", below = 10, for = "30m" }', NOTE("cold at {time}")),
    ALERT,
    AWAY.split("\n", 2)[2],
)


async def restart(house: House) -> None:
    await house.engine.stop()
    house.engine = house.new_engine()
    await house.start()


async def test_a_pending_timer_survives_a_restart(houses: Any) -> None:
    house = await houses(RESTART)
    await house.until("08:00")
    await house.set(RADIATOR, "thermostat", "target_celsius", 8.0)
    await house.until("08:10")
    await restart(house)
    await house.until("08:29")
    assert house.sent() == []
    await house.until("08:31")
    assert house.sent() == [("08:30", "log", "cold at 08:30")]  # at the original due time


async def test_a_timer_due_while_down_fires_at_start(houses: Any) -> None:
    house = await houses(RESTART)
    await house.until("08:00")
    await house.set(RADIATOR, "thermostat", "target_celsius", 8.0)
    await house.until("08:10")
    await house.engine.stop()
    house.clock.advance_to(at("09:00"))  # the gateway was down at 08:30
    house.engine = house.new_engine()
    await house.start()
    await house.until("09:00")  # at once: a due timer runs on the next turn of the clock
    assert house.sent() == [("09:00", "log", "cold at 09:00")]


async def test_escalation_open_alert_mode_and_saved_states_survive_a_restart(houses: Any) -> None:
    house = await houses(RESTART)
    await house.until("08:00")
    await house.press()  # the alert, and the house goes away (eco setpoint, 21 °C saved)
    assert house.engine.mode == "away" and house.value(RADIATOR, "thermostat", "target_celsius") == 16
    await house.until("08:07")
    await restart(house)
    assert house.engine.mode == "away"
    (alert,) = house.engine.list_alerts(open_only=True)
    await house.until("08:11")
    assert notified(house) == [("08:00", "daughter"), ("08:05", "son"), ("08:10", "neighbour")]
    await restart(house)
    house.engine.acknowledge(alert["id"], "token:carer")
    await house.until("09:00")
    assert len(house.sent()) == 3
    await restart(house)
    assert house.engine.list_alerts()[0]["acknowledged_by"] == "token:carer"
    house.engine.set_mode("home")  # the setpoint saved before the first restart comes back
    await house.settle()
    assert house.value(RADIATOR, "thermostat", "target_celsius") == 21.0


async def test_traces_record_trigger_conditions_and_action_results(houses: Any) -> None:
    house = await houses(profile(scene(
        "t", '{ kind = "state", selector = { capability = "occupancy" }, attribute = "occupancy.occupied", '
             'to = true }',
        '{ kind = "command", target = { area = "@trigger", capability = "level" }, capability = "level", '
        'command = "set", args = { percent = 80 } }',
        conditions='{ kind = "mode", is = ["home"] }')))
    await house.until("08:00")
    await house.set(HALL_MOTION, "occupancy", "occupied", True)
    (trace,) = house.traces("t")
    assert trace["trigger"] == {"kind": "state", "t": "2026-03-10T08:00:00.000Z", "device_id": HALL_MOTION,
                                "component": "main", "area": "hall", "value": True, "old": False,
                                "attribute": "occupancy.occupied"}
    assert trace["conditions"] == [{"kind": "mode", "result": True, "mode": "home"}]
    (action,) = trace["actions"]
    assert action["kind"] == "command" and action["acted"] is True
    assert action["targets"] == [{"device": HALL_LIGHT, "component": "main", "status": "confirmed"}]
    assert trace["result"] == "done" and trace["finished"] == "2026-03-10T08:00:00.000Z"
    await house.set(HALL_MOTION, "occupancy", "occupied", False)
    await house.set(HALL_MOTION, "occupancy", "occupied", True)  # already at 80: nothing sent
    assert house.traces("t")[-1]["actions"][0]["targets"][0]["status"] == "skipped: already in that state"
    # kept where the API reads them after a restart
    assert [t["id"] for t in house.engine.trace_storage.get("t.t")] == [t["id"] for t in house.traces("t")]


async def test_an_acknowledged_alert_does_not_swallow_the_next_one(houses: Any) -> None:
    # Nothing closes a panic alert: once acknowledged, a press the next day must page again.
    house = await houses(profile(ALERT))
    await house.until("08:00")
    await house.press()
    (alert,) = house.engine.list_alerts()
    house.engine.acknowledge(alert["id"], "token:carer")
    await house.until("08:00", days=1)
    await house.press()
    alerts = house.engine.list_alerts()
    assert len(alerts) == 2 and alerts[0]["acknowledged_at"] is None
    assert notified(house) == [("08:00", "daughter"), ("08:00", "daughter")]
    await house.until("08:05", days=1)
    assert notified(house)[2:] == [("08:05", "son")]  # and escalates


async def test_manual_overrides_in_two_rooms_are_both_retried(houses: Any) -> None:
    house = await houses(LIGHTS_OFF_EMPTY, manual_override_s=1800.0)
    await house.until("08:00")
    await house.set(HALL_LIGHT, "on_off", "on", True)  # both switched by hand
    await house.set(KITCHEN_LIGHT, "on_off", "on", False)
    await house.set(KITCHEN_LIGHT, "on_off", "on", True)
    for sensor in (HALL_MOTION, KITCHEN_MOTION):
        await house.set(sensor, "occupancy", "occupied", True)
        await house.set(sensor, "occupancy", "occupied", False)
    await house.until("09:00")
    assert sorted(house.commands) == [("08:30", HALL_LIGHT, "on_off", "off", {}),
                                      ("08:30", KITCHEN_LIGHT, "on_off", "off", {})]


async def test_a_disabled_scene_runs_on_no_trigger(houses: Any) -> None:
    triggers = f'{{ kind = "start" }}, {PRESS}, {{ kind = "time", at = "08:00" }}, {{ kind = "mode" }}'
    text = profile(scene("off", triggers, NOTE("ran"), extra="enabled = false"),
                   scene("on", '{ kind = "start" }', NOTE("started")))
    house = await houses(text)
    await house.press()
    house.engine.set_mode("away")
    await house.until("09:00")
    assert [m for _, _, m in house.sent()] == ["started"]
    house.engine.set_enabled("t.off", True)  # and enabled again (by the API), it does
    await house.press()
    assert [m for _, _, m in house.sent()] == ["started", "ran"]
    await restart(house)  # the choice survives a restart: now it runs on start
    assert [m for _, _, m in house.sent()][2:] == ["ran", "started"]


async def test_a_restart_with_an_edited_profile_drops_timers_of_triggers_that_are_gone(houses: Any) -> None:
    cold = ('{ kind = "state", selector = { capability = "thermostat" }, attribute = "thermostat.target_celsius", '
            'below = 10, for = "30m" }')
    house = await houses(profile(scene("cold", f'{PRESS}, {cold}', NOTE("cold"))))
    await house.until("08:00")
    await house.set(RADIATOR, "thermostat", "target_celsius", 8.0)  # pending on trigger 2
    await house.engine.stop()
    house.profile = load_profile_text(profile(scene("cold", PRESS, NOTE("cold"))), "edited.toml")
    house.engine = house.new_engine()
    await house.start()
    await house.until("09:00")  # no crash in the timer, and nothing fires
    assert house.sent() == []
    await house.press()
    assert house.sent() == [("09:00", "log", "cold")]


async def test_a_device_moved_to_another_room_is_named_by_that_rooms_selectors(houses: Any) -> None:
    # What a selector names in a room is remembered between runs: a move must show at the next run.
    house = await houses(checked(
        '{ kind = "state", selector = { area = "hall", capability = "occupancy" }, attribute = "occupancy.occupied", '
        'equals = false, match = "all" }'))
    await house.set(KITCHEN_MOTION, "occupancy", "occupied", True)
    await house.press()
    assert house.traces("c")[-1]["conditions"][0]["values"] == {HALL_MOTION: False}
    house.hub.set_device_meta(KITCHEN_MOTION, area="hall")
    await house.press()
    assert house.traces("c")[-1]["result"] == "conditions not met"
    assert house.traces("c")[-1]["conditions"][0]["values"] == {HALL_MOTION: False, KITCHEN_MOTION: True}
    house.hub.set_device_meta(KITCHEN_MOTION, area="kitchen")
    await house.press()
    assert house.traces("c")[-1]["result"] == "done"
