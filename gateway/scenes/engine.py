"""The scene engine: runs the scenes of the enabled profiles on the hub's event bus.

Everything time-based goes through the injected clock, so a recorded day replays in seconds with the
same results. What must survive a restart (pending "for" timers, absence tracking, open alerts and
their escalation, the house mode, saved states) is kept in the store's key-value scope ``scenes``.

Rules that keep scenes from fighting:
- **Priority hold**: a scene does not command a device that a scene of *higher* priority commanded in
  the last ``priority_hold_s``; otherwise the last writer wins.
- **Manual override**: a manual change of a light (a command from the API, or a change the engine did
  not cause, such as a wall switch) suspends automatic light control of that device for
  ``manual_override_s``.
- **Single run**: a scene that is still running is not started again; **cooldown** keeps a scene
  quiet for a while after a run that acted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import sys
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from gateway.bus import (
    AlertChanged,
    CommandResultEvent,
    DeviceAdded,
    DeviceEvent,
    DeviceRemoved,
    DeviceUpdated,
    Event,
    ModeChanged,
    OccupancyChanged,
    SceneRan,
    StateChanged,
)
from gateway.clock import Clock, TimerHandle, iso_utc
from gateway.errors import CommandValidationError, ConfigError, ConfigProblem, HearthError
from gateway.hub import Hub
from gateway.i18n import DEFAULT_LANGUAGE, catalogue, translate
from gateway.model import expected_state, matches_expected
from gateway.model.types import Command, Device
from gateway.scenes.profile import (
    TRIGGER_REF,
    AbsenceTrigger,
    AlertAction,
    AnyCondition,
    ButtonTrigger,
    ClearAlertAction,
    CommandAction,
    Condition,
    DelayAction,
    EventSpec,
    HappenedCondition,
    LastActivityCondition,
    ModeCondition,
    ModeTrigger,
    NotCondition,
    NotifyAction,
    OccupancyCondition,
    OccupancyTrigger,
    Profile,
    ReportAction,
    RestoreStateAction,
    SaveStateAction,
    Scene,
    Selector,
    SetModeAction,
    StartTrigger,
    StateCondition,
    StateTest,
    StateTrigger,
    SunTrigger,
    TimeCondition,
    TimeTrigger,
    TimeWindow,
    WaitForAction,
    WeekdayCondition,
    _same,
)

log = logging.getLogger("hearth.scenes")

LIGHT_CAPABILITIES = frozenset({"on_off", "level", "color_temperature", "color"})
# What the day's statistics count (see _track_day).
_DAY_CAPABILITIES = frozenset({"occupancy", "contact", "energy_meter"})
# What the house's occupancy (home / away) is worked out from (see _track_occupancy).
_HOUSE_CAPABILITIES = frozenset({"occupancy", "contact", "presence"})
# Every change of these is looked at whatever the scenes say (manual override, day statistics, occupancy).
_WATCHED_CAPABILITIES = LIGHT_CAPABILITIES | _DAY_CAPABILITIES | _HOUSE_CAPABILITIES
# Movement this soon after the entrance door closed is the person who just left (a PIR in the hall
# reports the walk to the door a moment late), not somebody inside.
ENTRANCE_GRACE_S = 60.0
# An urgent commit (a room change, the house's occupancy) is made at most this often: a kill -9 loses
# at most this much of it, and a busy house does not turn into one commit per motion event.
URGENT_COMMIT_MIN_S = 0.5
# A change of a light within this long after the engine commanded it is taken as the engine's own.
OWN_CHANGE_WINDOW_S = 15.0
# A timer that runs out more than this before its wall-clock due time is early because the wall clock was
# set back since it was armed (timers run on monotonic time); it waits again. Above the early wake-ups of
# an event loop's timers (a clock resolution, times the speed of hearth demo's scaled clock).
WALL_CLOCK_SLACK_S = 1.0
TRACES_KEPT = 50
TRACES_STORED = 20
ALERTS_KEPT = 200
# The resident page (check_in, call_for_help): a second tap this soon after the first is the same one (a
# double tap, or a shaky hand, must not page the family twice); long enough for a tap and a re-tap.
RESIDENT_REPEAT_S = 10.0
RESIDENT_KEPT = 100  # check-ins and calls for help remembered (about three months of daily check-ins)
# "I'm fine" answers the alerts that ask whether she is all right: no movement, nobody up in the morning.
CHECK_IN_RESOLVES = frozenset({"inactivity", "morning"})
CHECK_IN_RESOLUTION = "resident checked in"
# Resolutions the gateway writes itself, translated for each contact (gateway.i18n); others are people's notes.
_RESOLUTION_KEYS = {CHECK_IN_RESOLUTION: "notify.resolution_checked_in",
                    "resolved by hand": "notify.resolution_by_hand"}


def resolution_text(language: str, resolution: str) -> str:
    """How an alert's resolution reads in ``language``: the gateway's own words translated, a person's
    note (or a profile's) as written."""
    key = _RESOLUTION_KEYS.get(resolution)
    return translate(language, key) if key else resolution
# A call for help is the panic button's alert: the same key reaches the same contacts and escalates alike.
HELP_ALERT_KEY = "panic"
HELP_TITLE = "Call for help"
WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Which command puts a saved attribute back.
RESTORE_COMMANDS: dict[tuple[str, str], Callable[[Any], tuple[str, dict[str, Any]]]] = {
    ("thermostat", "target_celsius"): lambda v: ("set_target", {"celsius": v}),
    ("thermostat", "mode"): lambda v: ("set_mode", {"mode": v}),
    ("on_off", "on"): lambda v: ("on" if v else "off", {}),
    ("level", "percent"): lambda v: ("set", {"percent": v}),
    ("cover", "position_percent"): lambda v: ("set_position", {"percent": v}),
    ("valve", "position_percent"): lambda v: ("set_position", {"percent": v}),
    ("fan", "speed_percent"): lambda v: ("set_speed", {"percent": v}),
    ("color_temperature", "kelvin"): lambda v: ("set", {"kelvin": v}),
}


class NotifierLike(Protocol):
    def send(self, target: str, notification: Any) -> None: ...


class Storage(Protocol):
    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


class _MemoryStorage:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value


@dataclass
class EngineSettings:
    timezone: tzinfo = UTC
    latitude: float | None = None
    longitude: float | None = None
    manual_override_s: float = 1800.0
    priority_hold_s: float = 300.0
    command_timeout_s: float = 5.0
    # The entrance door closed and then no activity inside for this long: the house is away.
    away_after_s: float = 600.0
    # What a manual change suspends automatic control of: "lights" (dimmable, coloured or tagged
    # "light"), "switches" (anything else with on_off: plugs, relays).
    override_covers: frozenset[str] = frozenset({"lights"})


@dataclass
class TriggerContext:
    kind: str
    t: float
    device_id: str | None = None
    component: str | None = None
    area: str | None = None
    value: Any = None
    old: Any = None
    detail: dict[str, Any] = field(default_factory=dict)
    # What ends the situation that triggered the run (see _resolve_key): an alert it raises resolves then.
    resolve_key: str | None = None
    # The run's actions so far (its trace entries), for a message's {done}.
    actions: list[dict[str, Any]] | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "t": iso_utc(self.t)}
        for key in ("device_id", "component", "area", "value", "old"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.detail)
        return out


@dataclass
class SceneRuntime:
    id: str  # "<profile>.<scene>"
    profile: str
    scene: Scene
    enabled: bool
    # Runs in progress, by what triggered them (the device, else the scene itself): one room's
    # "lights off" must not stop another room's from running at the same moment.
    running: set[str] = field(default_factory=set)
    last_acted: float | None = None
    traces: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRACES_KEPT))

    def as_dict(self) -> dict[str, Any]:
        last = self.traces[-1] if self.traces else None
        return {
            "id": self.id,
            "profile": self.profile,
            "scene": self.scene.id,
            "name": self.scene.name,
            "description": self.scene.description,
            "enabled": self.enabled,
            "priority": self.scene.priority,
            "running": bool(self.running),
            "triggers": [t.kind for t in self.scene.triggers],
            "last_run": last and {"t": last["t"], "result": last["result"]},
        }


def _split(attribute: str) -> tuple[str, str]:
    # At the last dot, as the profile loader does: a plugin's capability may have dots of its own.
    cap, _, attr = attribute.rpartition(".")
    return cap, attr


_T = TypeVar("_T")


def _found(node: Any, kind: type[_T]) -> Iterator[_T]:
    """Every ``kind`` anywhere in a scene's models, in the order of the file (nested any/not, selectors'
    ``where``, alerts' ``resolve_when``): the order gives the stable keys of what is persisted."""
    if isinstance(node, kind):
        yield node
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _found(getattr(node, name), kind)
    elif isinstance(node, (list, tuple)):
        for item in node:
            yield from _found(item, kind)
    elif isinstance(node, dict):
        for item in node.values():
            yield from _found(item, kind)


def _state_tests(node: Any) -> Iterator[StateTest]:
    return _found(node, StateTest)


def _last_activity(node: Any) -> Iterator[LastActivityCondition]:
    return _found(node, LastActivityCondition)


def _happened(node: Any) -> Iterator[HappenedCondition]:
    return _found(node, HappenedCondition)


_PLACEHOLDER = re.compile(r"\{(device|area|value|scene|time|date|duration|since|done)\}")


def _start_eagerly(coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None] | None:
    """Run ``coro`` up to its first real wait in the caller, and the rest as a task (None: it finished).

    Python 3.12's eager tasks; on 3.11 the first step is driven here and the suspended coroutine is
    handed to a task as a :class:`_Resumed`.
    """
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        task = asyncio.Task(coro, loop=loop, name=name, eager_start=True)  # type: ignore[call-arg]
        return None if task.done() else task
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return loop.create_task(_Resumed(coro, waiting), name=name)


class _Resumed(Coroutine[Any, Any, None]):
    """A coroutine already started and suspended on ``waiting``, as a task takes it: the task's first
    step gets ``waiting`` back, every later step and any cancellation (even one before that first step)
    goes to the coroutine itself."""

    __slots__ = ("_coro", "_waiting")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting: Any) -> None:
        self._coro = coro
        self._waiting: Any = _BARE_YIELD if waiting is None else waiting

    def send(self, value: Any) -> Any:
        waiting = self._waiting
        if waiting is _NOT_WAITING:
            return self._coro.send(value)
        self._waiting = _NOT_WAITING
        return None if waiting is _BARE_YIELD else waiting

    def throw(self, *args: Any) -> Any:  # type: ignore[override]
        self._waiting = _NOT_WAITING
        return self._coro.throw(*args)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:  # pragma: no cover - only a task drives it
        raise TypeError("a resumed scene run is driven by its task")


_NOT_WAITING = object()
_BARE_YIELD = object()


class HelpNotConfiguredError(HearthError):
    """A call for help with no scene to raise it: no enabled profile has a panic alert."""


@dataclass(slots=True)
class ResidentCheckedIn(Event):
    """The resident said "I'm fine" (the resident page); ``resolved``: the alerts it answered."""

    by: str
    resolved: tuple[str, ...] = ()


class SceneEngine:
    def __init__(
        self,
        hub: Hub,
        profiles: Iterable[Profile],
        *,
        notifier: NotifierLike,
        storage: Storage | None = None,
        trace_storage: Storage | None = None,
        settings: EngineSettings | None = None,
        on_action: Callable[[dict[str, Any]], None] | None = None,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
        commit: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.hub = hub
        self.clock: Clock = hub.clock
        self.notifier = notifier
        self.storage: Storage = storage or _MemoryStorage()
        self._set_deferred: Callable[[str, Callable[[], Any]], None] | None = getattr(
            self.storage, "set_deferred", None)
        self.trace_storage: Storage = trace_storage or _MemoryStorage()
        self.settings = settings or EngineSettings()
        self.on_action = on_action
        self.on_alert = on_alert
        # Writes what is pending to the store now (Store.flush). Alert transitions and safety-relevant
        # state are committed through it before anybody is told; None (replay, tests): nothing to wait for.
        self._commit = commit
        self._outbox: list[tuple[str, Any]] = []
        self._outbox_task: asyncio.Task[None] | None = None
        self._urgent_task: asyncio.Task[None] | None = None
        self._urgent_again = False
        self.scenes: dict[str, SceneRuntime] = {}
        for profile in profiles:
            for scene in profile.scenes:
                sid = f"{profile.name}.{scene.id}"
                self.scenes[sid] = SceneRuntime(sid, profile.name, scene, scene.enabled)
        self._check_sun()
        self.mode = "home"
        self.alerts: dict[str, dict[str, Any]] = {}
        self.saved: dict[str, dict[str, Any]] = {}
        self.overrides: dict[str, float] = {}
        self.day: dict[str, Any] = {}
        self.last_area: str | None = None
        self.occupancy: dict[str, Any] = {"state": "unknown", "since": None, "reason": "nothing seen yet"}
        self.occupancy_log: deque[dict[str, Any]] = deque(maxlen=20)
        self._absence: dict[str, dict[str, Any]] = {}
        # resolve key (see TriggerContext.resolve_key) -> the alerts that resolve when it ends
        self._resolvers: dict[str, set[str]] = {}
        self._pending: dict[str, dict[str, Any]] = {}  # "for" timers, persisted
        # When each of those holds ends on the monotonic clock, for the holds begun in this process: a hold is a
        # duration, so a wall clock set back during it must not make it longer (after a restart: the wall time).
        self._hold_mono: dict[str, float] = {}
        # The same for the durations measured from a moment: an absence's last activity, the house's
        # occupancy since, the entrance door's closing (monotonic seconds, for those seen in this process). A
        # Raspberry Pi has no clock of its own: it boots on the time it shut down and NTP steps it hours on;
        # "no activity for 2 h" must not fire at once then, nor 3 h late after a step back.
        self._moment_mono: dict[str, float] = {}
        self._timers: dict[str, TimerHandle] = {}
        # "for" of a state test (condition, selector ``where``, wait_for): since when the test has been true
        # and stayed true, by test and "<device>#<component>" (as Home Assistant's ``for:``: a plug reading
        # 1.2, 1.6, 1.4 W is below 5 W the whole time). Persisted, so a hold survives a restart.
        self._held: dict[str, dict[tuple[str, str], float]] = {}
        self._events: dict[str, float] = {}  # event key -> when it last happened (see _index_triggers)
        self._engine_sent: dict[str, float] = {}
        self._holds: dict[str, tuple[int, float, str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._blocked = 0
        self._unsubscribe: list[Callable[[], None]] = []
        self._ids = itertools.count(1)
        self._waiters: list[tuple[WaitForAction, TriggerContext, asyncio.Future[bool]]] = []
        self._selector_cache: dict[tuple[int, str], bool] = {}
        self._covered: dict[str, bool] = {}  # device id -> a manual change of it is an override
        self._device_order: tuple[list[Device], dict[str | None, list[Device]]] | None = None
        # (selector, area or None) -> the devices it names there, state aside (see select)
        self._named: dict[tuple[int, str | None], list[Device]] = {}
        self._day_bounds: tuple[float, float, str] | None = None
        self.counters: dict[str, int] = defaultdict(int)
        self._started_at = self.clock.time()
        self._index_triggers()

    # ------------------------------------------------------------------ set-up

    def _check_sun(self) -> None:
        problems = []
        for rt in self.scenes.values():
            for trigger in rt.scene.triggers:
                no_location = self.settings.latitude is None or self.settings.longitude is None
                if isinstance(trigger, SunTrigger) and no_location:
                    problems.append(ConfigProblem("config", None, "location",
                                                  f"scene {rt.id} has a sunrise/sunset trigger: set [location] "
                                                  "latitude and longitude"))
        if problems:
            raise ConfigError(problems)

    def _index_triggers(self) -> None:
        self._state_triggers: dict[tuple[str, str], list[tuple[SceneRuntime, int, StateTrigger]]] = defaultdict(list)
        self._absence_triggers: dict[tuple[str, str], list[tuple[SceneRuntime, int, AbsenceTrigger]]] = defaultdict(
            list)
        self._button_triggers: list[tuple[SceneRuntime, int, ButtonTrigger]] = []
        self._mode_triggers: list[tuple[SceneRuntime, int, ModeTrigger]] = []
        self._occupancy_triggers: list[tuple[SceneRuntime, int, OccupancyTrigger]] = []
        for rt in self.scenes.values():
            for index, trigger in enumerate(rt.scene.triggers):
                if isinstance(trigger, StateTrigger):
                    self._state_triggers[_split(trigger.attribute)].append((rt, index, trigger))
                elif isinstance(trigger, AbsenceTrigger):
                    self._absence_triggers[_split(trigger.attribute)].append((rt, index, trigger))
                elif isinstance(trigger, ButtonTrigger):
                    self._button_triggers.append((rt, index, trigger))
                elif isinstance(trigger, ModeTrigger):
                    self._mode_triggers.append((rt, index, trigger))
                elif isinstance(trigger, OccupancyTrigger):
                    self._occupancy_triggers.append((rt, index, trigger))
        # Scenes whose state is safety-relevant (they raise alerts): their holds are committed at once.
        self._alerting: frozenset[str] = frozenset(
            rt.id for rt in self.scenes.values() if any(isinstance(a, AlertAction) for a in rt.scene.actions))
        # Areas a ``last_activity`` condition of an alerting scene names: going in or out is committed at once.
        self._watched_areas: frozenset[str | None] = frozenset(
            area for rt in self.scenes.values() if rt.id in self._alerting
            for condition in _last_activity(rt.scene) for area in condition.area)
        # Attributes a ``resolve_when`` condition looks at: a change of one re-checks the open alerts.
        self._resolve_attributes: frozenset[tuple[str, str]] = frozenset(
            _split(test.attribute) for rt in self.scenes.values() for action in rt.scene.actions
            if isinstance(action, AlertAction) and action.resolve_when is not None
            for test in _state_tests(action.resolve_when))
        # The state tests held "for" a while (see _passes), by attribute, with a key that is stable across
        # restarts ("<scene>:<n>", n counting the scene's tests in order): their hold starts are persisted.
        self._timed_tests: dict[tuple[str, str], list[tuple[str, StateTest]]] = defaultdict(list)
        self._test_keys: dict[int, str] = {}
        for rt in self.scenes.values():
            for n, test in enumerate(_state_tests(rt.scene)):
                if test.for_ > 0:
                    key = f"{rt.id}:{n}"
                    self._test_keys[id(test)] = key
                    self._timed_tests[_split(test.attribute)].append((key, test))
        self._timed: frozenset[tuple[str, str]] = frozenset(self._timed_tests)
        # The events ``happened`` conditions ask about, by attribute, with a key stable across restarts:
        # the last time each happened is remembered (and persisted).
        self._event_specs: dict[tuple[str, str], list[tuple[str, EventSpec]]] = defaultdict(list)
        self._event_keys: dict[int, str] = {}
        for rt in self.scenes.values():
            for n, condition in enumerate(_happened(rt.scene)):
                specs: list[tuple[str, EventSpec]] = [(f"{rt.id}:e{n}", condition)]
                if condition.after is not None:
                    specs.append((f"{rt.id}:e{n}:after", condition.after))
                for key, spec in specs:
                    self._event_keys[id(spec)] = key
                    self._event_specs[_split(spec.attribute)].append((key, spec))
        # What _on_state looks at: a change of anything else (link quality, voltage, illuminance with no
        # scene about it: much of a house's traffic) is dropped on its first line.
        self._watched: frozenset[tuple[str, str]] = frozenset(
            {*self._state_triggers, *self._absence_triggers, *self._timed, *self._resolve_attributes,
             *self._event_specs}
        )

    async def start(self) -> None:
        self._restore()
        bus = self.hub.bus
        self._unsubscribe = [
            bus.subscribe(StateChanged, self._on_state),
            bus.subscribe(DeviceEvent, self._on_device_event),
            bus.subscribe(CommandResultEvent, self._on_command_result),
            bus.subscribe(DeviceAdded, self._on_device_changed),
            bus.subscribe(DeviceUpdated, self._on_device_changed),
            bus.subscribe(DeviceRemoved, self._on_device_changed),
        ]
        for rt in self.scenes.values():
            for index, trigger in enumerate(rt.scene.triggers):
                if isinstance(trigger, (TimeTrigger, SunTrigger)):
                    self._arm_clock_trigger(rt, index, trigger)
                elif isinstance(trigger, AbsenceTrigger):
                    self._arm_absence(rt, index, trigger)
        for key, pending in list(self._pending.items()):
            self._arm_pending(key, pending)
        for alert in self.alerts.values():
            if alert.get("next_escalation_at") is not None and alert["state"] == "open":
                self._arm_escalation(alert)
        self._arm_occupancy_triggers()
        closed = self.occupancy.get("door_closed_at")
        if closed is not None and self.occupancy["state"] != "away" and self.occupancy.get("opened_while") != "away":
            # The door closed shortly before a restart: the check that makes the house away still comes.
            self._call_at("occupancy:away-check", closed + self.settings.away_after_s, self._check_away)
        self._log_restored()
        for rt in self.scenes.values():
            for trigger in rt.scene.triggers:
                if isinstance(trigger, StartTrigger) and rt.enabled:  # like every other trigger
                    self._fire(rt, TriggerContext("start", self.clock.time()))
        log.info("scene engine running %d scenes (mode %s, occupancy %s, %d open alerts)", len(self.scenes),
                 self.mode, self.occupancy["state"], sum(a["state"] == "open" for a in self.alerts.values()))

    def _log_restored(self) -> None:
        """Say what was restored from before the restart and when each is due (overdue: now)."""
        now = self.clock.time()

        def due_text(due: float) -> str:
            return "overdue, now" if due <= now else self._local(due).strftime("%Y-%m-%d %H:%M:%S")

        for pending in self._pending.values():
            log.info("restored hold: %s on %s (%s), due %s", pending["scene"], pending["device"],
                     pending["component"], due_text(pending["due"]))
        for tkey, record in self._absence.items():
            sid, _, index = tkey.rpartition("#")
            rt = self.scenes.get(sid)
            if rt is None or not index.isdigit() or int(index) >= len(rt.scene.triggers):
                continue
            trigger = rt.scene.triggers[int(index)]
            if isinstance(trigger, AbsenceTrigger) and "last_activity" in record:
                due = self.next_absence_due(trigger, record["last_activity"], record.get("fired"), now)
                if due is not None:
                    log.info("restored absence: %s (last activity %s), due %s", sid,
                             self._local(record["last_activity"]).strftime("%Y-%m-%d %H:%M:%S"), due_text(due))
        for alert in self.alerts.values():
            if alert["state"] == "open" and alert.get("next_escalation_at") is not None:
                log.info("restored escalation: alert %s (%s), next step due %s", alert["id"], alert["scene"],
                         due_text(alert["next_escalation_at"]))

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._save()

    async def __aenter__(self) -> SceneEngine:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def has_runs(self) -> bool:
        return bool(self._tasks)

    @property
    def busy(self) -> bool:
        """Some run can make progress without time passing (used by replay to let runs settle)."""
        return len(self._tasks) > self._blocked

    # ------------------------------------------------------------------ persistence

    def _restore(self) -> None:
        data = self.storage.get("state") or {}
        self.mode = data.get("mode", "home")
        self.alerts = {a["id"]: a for a in data.get("alerts", [])}
        self.saved = data.get("saved", {})
        self.overrides = data.get("overrides", {})
        self.day = data.get("day", {})
        self.last_area = data.get("last_area")
        occupancy = data.get("occupancy")
        if isinstance(occupancy, dict) and occupancy.get("state") in ("home", "away", "unknown"):
            self.occupancy = occupancy
        for alert in self.alerts.values():
            _upgrade_alert(alert)
            if alert["state"] != "resolved" and alert.get("resolve_key"):
                self._resolvers.setdefault(alert["resolve_key"], set()).add(alert["id"])
        self._absence = data.get("absence", {})
        self._pending = data.get("pending", {})
        known_tests = set(self._test_keys.values())
        self._held = {key: {tuple(where.rsplit("#", 1)): t for where, t in held.items() if "#" in where}  # type: ignore[misc]
                      for key, held in (data.get("held") or {}).items() if key in known_tests}
        known_events = set(self._event_keys.values())
        self._events = {key: t for key, t in (data.get("events") or {}).items() if key in known_events}
        for sid, enabled in data.get("enabled", {}).items():
            if sid in self.scenes:
                self.scenes[sid].enabled = enabled
        for sid, t in data.get("last_acted", {}).items():
            if sid in self.scenes:
                self.scenes[sid].last_acted = t
        for sid, rt in self.scenes.items():
            rt.traces.extend(self.trace_storage.get(sid) or [])

    def _save(self) -> None:
        # Called on every change of what must survive a restart, which under a busy house is most
        # messages (a motion sensor's "for" timer). The store's storage serialises the state once per
        # commit instead (set_deferred); a plain storage (tests, replay) gets it at once.
        set_deferred = self._set_deferred
        if set_deferred is not None:
            set_deferred("state", self._snapshot)
        else:
            self.storage.set("state", self._snapshot())

    def _snapshot(self) -> dict[str, Any]:
        # Alerts: every one not resolved yet, and the most recent of the resolved ones.
        alerts = sorted(self.alerts.values(), key=lambda a: a["raised_at"])
        waiting = [a for a in alerts if a["state"] != "resolved"]
        done = [a for a in alerts if a["state"] == "resolved"]
        keep = sorted(waiting + done[-ALERTS_KEPT:], key=lambda a: a["raised_at"])
        return {
            "mode": self.mode,
            "alerts": keep,
            "saved": self.saved,
            "overrides": {d: t for d, t in self.overrides.items() if t > self.clock.time()},
            "day": self.day,
            "last_area": self.last_area,
            "occupancy": self.occupancy,
            "absence": self._absence,
            "pending": self._pending,
            "held": {key: {f"{d}#{c}": t for (d, c), t in held.items()} for key, held in self._held.items() if held},
            "events": self._events,
            "enabled": {sid: rt.enabled for sid, rt in self.scenes.items() if rt.enabled != rt.scene.enabled},
            "last_acted": {sid: rt.last_acted for sid, rt in self.scenes.items() if rt.last_acted is not None},
        }

    # ------------------------------------------------------------------ time helpers

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.settings.timezone)

    def _minute_of_day(self, t: float) -> float:
        local = self._local(t)
        return local.hour * 60 + local.minute + local.second / 60

    def _at_local(self, day: date, minute: int) -> float:
        naive = datetime.combine(day, time(minute // 60, minute % 60))
        return naive.replace(tzinfo=self.settings.timezone).timestamp()

    def _call_at(self, key: str, due: float, callback: Callable[[], None]) -> None:
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            # The timer ran on monotonic time and ``due`` is wall time: if the wall clock was set back since
            # (NTP, a fixed RTC), it is early. Wait for the wall clock to get there: a 07:00 trigger fired at
            # 04:00 after a 3-hour step back, then again at 07:00 (tests/campaigns: clock-jumps).
            early_s = due - self.clock.time()
            if early_s > WALL_CLOCK_SLACK_S:
                self._timers[key] = self.clock.call_later(early_s, fire)
                return
            self._timers.pop(key, None)
            callback()

        self._timers[key] = self.clock.call_later(max(0.0, due - self.clock.time()), fire)

    def _call_after(self, key: str, delay_s: float, callback: Callable[[], None]) -> None:
        """A timer for a duration (a hold): it runs out after ``delay_s`` whatever the wall clock does."""
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            callback()

        self._timers[key] = self.clock.call_later(max(0.0, delay_s), fire)

    def _cancel(self, key: str) -> None:
        handle = self._timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    # ------------------------------------------------------------------ selectors

    def _on_device_changed(self, event: Any) -> None:
        self._selector_cache.clear()
        self._covered.clear()
        self._device_order = None  # and with it what selectors named (see _indexed)

    def _indexed(self) -> tuple[list[Device], dict[str | None, list[Device]]]:
        """Every device sorted by id, and by area: built once, dropped when a device is added, changed or
        removed. A selector with an area (most of them) then looks at ten devices, not a thousand."""
        devices = self.hub.devices
        order = self._device_order
        if order is None or len(order[0]) != len(devices):
            ordered = [d for _, d in sorted(devices.items())]
            by_area: dict[str | None, list[Device]] = {}
            for device in ordered:
                by_area.setdefault(device.area, []).append(device)
            order = self._device_order = (ordered, by_area)
            self._named.clear()
        return order

    def matches(self, selector: Selector, device: Device, ctx: TriggerContext | None = None) -> bool:
        # What does not depend on the trigger or on state is worked out once per (selector, device):
        # 0 no, 1 yes, 2 yes if the trigger's device/area fits too. Then only the "@trigger" part and
        # the state test ``where`` are checked per call.
        static = self._selector_static(selector, device)
        if not static:
            return False
        if static == 2 and not self._trigger_match(selector, device, ctx):
            return False
        return selector.where is None or self._passes(selector.where, device)

    def _matches(self, selector: Selector, device: Device, ctx: TriggerContext | None) -> bool:
        """:meth:`matches` without the cache (for a selector that is not the engine's own)."""
        static = self._static_match(selector, device)
        if not static or (static == 2 and not self._trigger_match(selector, device, ctx)):
            return False
        return selector.where is None or self._passes(selector.where, device)

    @staticmethod
    def _static_match(selector: Selector, device: Device) -> int:
        dynamic = False
        if selector.device is not None:
            if TRIGGER_REF in selector.device:
                dynamic = True
            elif device.id not in selector.device:
                return 0
        if selector.area is not None:
            if TRIGGER_REF in selector.area:
                dynamic = True
            elif device.area not in selector.area:
                return 0
        if selector.capability is not None and not any(
            cap in caps for caps in device.support.values() for cap in selector.capability
        ):
            return 0
        if selector.tag is not None and not set(selector.tag) & set(device.tags):
            return 0
        if selector.exclude_device and device.id in selector.exclude_device:
            return 0
        if selector.exclude_area and device.area in selector.exclude_area:
            return 0
        if selector.exclude_tag and set(selector.exclude_tag) & set(device.tags):
            return 0
        return 2 if dynamic else 1

    @staticmethod
    def _trigger_match(selector: Selector, device: Device, ctx: TriggerContext | None) -> bool:
        """The lists that name "@trigger": it stands for the trigger's device (area); without a trigger
        (or one with no device/area) it stands for nothing."""
        if selector.device is not None and TRIGGER_REF in selector.device:
            trigger_device = ctx.device_id if ctx else None
            if not any(v == device.id if v != TRIGGER_REF else (trigger_device and trigger_device == device.id)
                       for v in selector.device):
                return False
        if selector.area is not None and TRIGGER_REF in selector.area:
            trigger_area = ctx.area if ctx else None
            if not any(v == device.area if v != TRIGGER_REF else (trigger_area and trigger_area == device.area)
                       for v in selector.area):
                return False
        return True

    def select(self, selector: Selector, ctx: TriggerContext | None = None) -> list[Device]:
        """The devices ``selector`` names (for the trigger ``ctx``), sorted by id. For the engine's own
        selectors only (results are cached by the selector's identity)."""
        ordered, by_area = self._indexed()
        candidates = ordered
        area: str | None = None
        if selector.area is not None:
            areas = {ctx.area if v == TRIGGER_REF else v for v in selector.area
                     if v != TRIGGER_REF or (ctx is not None and ctx.area)}
            if len(areas) != 1:
                candidates = sorted((d for a in areas for d in by_area.get(a, ())), key=lambda d: d.id)
                return [d for d in candidates if self.matches(selector, d, ctx)]
            area = next(iter(areas))
            candidates = by_area.get(area, [])
        if selector.device is not None and TRIGGER_REF in selector.device:
            return [d for d in candidates if self.matches(selector, d, ctx)]
        # With its one area resolved (or none named) and no "@trigger" device, what a selector names
        # apart from state is the same at every call until a device changes: the scene that checks all
        # the windows of the trigger's room at every window closed looks at its windows, not the room.
        key = (id(selector), area)
        named = self._named.get(key)
        if named is None:
            named = self._named[key] = [d for d in candidates if self._selector_static(selector, d)]
        if selector.where is None:
            return list(named)
        return [d for d in named if self._passes(selector.where, d)]

    def _selector_static(self, selector: Selector, device: Device) -> int:
        """:meth:`_static_match`, once per (selector, device) until a device changes."""
        key = (id(selector), device.id)
        static = self._selector_cache.get(key)
        if static is None:
            static = self._selector_cache[key] = self._static_match(selector, device)
        return static

    def _passes(self, test: StateTest, device: Device) -> bool:
        """Some component of ``device`` passes ``test`` (and has, without a break, for ``test.for_``)."""
        cap, attr = _split(test.attribute)
        for component, caps in device.state.items():
            if cap not in caps or attr not in caps[cap]:
                continue
            if not test.test(caps[cap][attr]):
                continue
            if test.for_ > 0 and self._held_for(test, device.id, component) < test.for_:
                continue
            return True
        return False

    def _hold_start(self, test: StateTest, device_id: str, component: str) -> float:
        key = self._test_keys.get(id(test))
        held = self._held.get(key) if key is not None else None
        since = held.get((device_id, component)) if held else None
        # Passing with no start recorded: a value restored from the store and not reported since, or a
        # test outside the scenes (explain): counted from the engine's start, never from before it.
        return self._started_at if since is None else since

    def _held_for(self, test: StateTest, device_id: str, component: str) -> float:
        """How long ``test`` has held for the component: a duration, on the monotonic clock when its hold
        began in this process (see ``_moment_mono``), else from its recorded start on the wall clock."""
        key = self._test_keys.get(id(test))
        mono = self._moment_mono.get(f"held:{key}:{device_id}#{component}") if key is not None else None
        if mono is not None:
            return self.clock.monotonic() - mono
        return self.clock.time() - self._hold_start(test, device_id, component)

    def held_since(self, test: StateTest, device: Device) -> float | None:
        """Since when ``test`` (its comparison, ``for`` aside) has been true without a break for some
        component of ``device``; None when it is not true now. For explanations (replay --explain)."""
        cap, attr = _split(test.attribute)
        starts = [self._hold_start(test, device.id, component) for component, caps in device.state.items()
                  if attr in caps.get(cap, ()) and test.test(caps[cap][attr])]
        return min(starts) if starts else None

    def _track_holds(self, event: StateChanged, tests: list[tuple[str, StateTest]]) -> None:
        """Start or end the holds of the timed tests on this attribute (only a change of value gets
        here: a repeated value is no event, and the hold goes on)."""
        where = (event.device_id, event.component)
        changed = False
        for key, test in tests:
            held = self._held.get(key)
            if test.test(event.new):
                if held is None:
                    held = self._held[key] = {}
                if where not in held:
                    held[where] = event.t
                    self._moment_mono[f"held:{key}:{where[0]}#{where[1]}"] = self._mono_of(event.t)
                    changed = True
            elif held is not None and held.pop(where, None) is not None:
                self._moment_mono.pop(f"held:{key}:{where[0]}#{where[1]}", None)
                changed = True
        if changed:
            self._save()

    # ------------------------------------------------------------------ events

    def _on_state(self, event: StateChanged) -> None:
        capability = event.capability
        key = (capability, event.attribute)
        if key not in self._watched and capability not in _WATCHED_CAPABILITIES and not self._waiters:
            return
        if key in self._timed:
            self._track_holds(event, self._timed_tests[key])
        specs = self._event_specs.get(key) if self._event_specs else None
        if specs is not None and event.old is not None:
            device = self.hub.devices.get(event.device_id)
            if device is not None:
                for ekey, spec in specs:
                    if (spec.to is None or _same(event.new, spec.to)) and self.matches(spec.selector, device):
                        self._events[ekey] = event.t
                        self._save()
        device = self.hub.devices.get(event.device_id)
        if device is None:
            return
        if capability in LIGHT_CAPABILITIES:
            self._detect_manual_change(device, event)
        elif capability in _DAY_CAPABILITIES:
            self._track_day(device, event)
        if capability in _HOUSE_CAPABILITIES:
            self._track_occupancy(device, event)
        for rt, index, trigger in self._state_triggers.get(key, ()):
            if rt.enabled and self.matches(trigger.selector, device):
                self._state_trigger(rt, index, trigger, device, event)
        for rt, index, trigger in self._absence_triggers.get(key, ()):
            if rt.enabled and self.matches(trigger.selector, device) and (
                trigger.activity is None or _same(event.new, trigger.activity)
            ):
                tkey = f"{rt.id}#{index}"
                previous = self._absence.get(tkey)
                self._absence[tkey] = {"last_activity": event.t}
                self._moment_mono[f"absence:{tkey}"] = self._mono_of(event.t)
                if previous is not None and "fired" in previous:
                    self._resolve_by_key(f"absence:{tkey}", f"activity again: {self._where(device)} at "
                                                            f"{self._local(event.t).strftime('%H:%M')}")
                # Activity only moves an armed absence later, and its timer checks again when it fires
                # (see _arm_absence): no date arithmetic per motion event. After a firing ("fired"), the
                # next one may be sooner than the timer armed for the next window: arm it again.
                if previous is None or "fired" in previous or f"absence:{tkey}" not in self._timers:
                    self._arm_absence(rt, index, trigger)
                self._save()
        if self._resolve_attributes and key in self._resolve_attributes:
            self._check_resolve_when(f"{device.name}: {event.attribute} {_format(event.new)}")
        if self._waiters:
            for wait, ctx, future in list(self._waiters):
                if not future.done() and (wait.attribute == f"{event.capability}.{event.attribute}") and \
                        self.matches(wait.selector, device, ctx) and wait.test(event.new):
                    future.set_result(True)

    def _state_trigger(self, rt: SceneRuntime, index: int, trigger: StateTrigger, device: Device,
                       event: StateChanged) -> None:
        if event.old is None:
            # A first report (a device never seen, or an attribute it never sent) is no transition: a door
            # reporting "closed" when the gateway starts has not just closed. After a restart the value
            # restored from the store is the previous one, so a real change is still one.
            return
        has_level = trigger.to is not None or trigger.above is not None or trigger.below is not None
        now_ok = _trigger_level(trigger, event.new) if has_level else True
        was_ok = _trigger_level(trigger, event.old) if has_level else False
        from_ok = trigger.from_ is None or _same(event.old, trigger.from_)
        if trigger.for_ <= 0:
            if now_ok and not was_ok and from_ok:
                self._fire(rt, TriggerContext("state", event.t, device.id, event.component, device.area, event.new,
                                              event.old, {"attribute": trigger.attribute}))
            return
        pkey = f"{rt.id}#{index}#{device.id}#{event.component}"
        if not now_ok:
            if has_level and self._resolvers and f"state:{pkey}" in self._resolvers:
                self._resolve_by_key(f"state:{pkey}", f"{self._where(device)}: {trigger.attribute} is "
                                                      f"{_format(event.new)} again")
            if pkey in self._pending:
                # Its timer is left to run out and then finds nothing to do (or a newer hold, which it
                # waits for): a value flapping faster than the hold costs no timer per flap.
                self._pending.pop(pkey)
                self._hold_mono.pop(pkey, None)
                self._save()
            return
        if pkey in self._pending or (was_ok and has_level) or not from_ok:
            return
        pending = {"due": event.t + trigger.for_, "scene": rt.id, "trigger": index, "device": device.id,
                   "component": event.component, "value": event.new, "old": event.old}
        self._pending[pkey] = pending
        self._hold_mono[pkey] = self.clock.monotonic() + max(0.0, pending["due"] - self.clock.time())
        self._arm_pending(pkey, pending)
        self._save()
        if rt.id in self._alerting:
            self._urgent()  # a bathroom stay's hold lost in a crash would be an alert that never comes

    def _arm_pending(self, key: str, pending: dict[str, Any]) -> None:
        rt = self.scenes.get(pending["scene"])
        index = pending.get("trigger")
        # Saved before a restart with another version of the profile: that trigger is gone.
        if rt is None or not isinstance(index, int) or not 0 <= index < len(rt.scene.triggers) or \
                not isinstance(rt.scene.triggers[index], StateTrigger):
            self._pending.pop(key, None)
            return
        if key in self._timers:
            return  # an earlier hold's timer is still running: when it ends, it waits for this one

        def fire() -> None:
            pending = self._pending.get(key)
            if pending is None:
                return  # the value moved away before the hold ended
            remaining = self._hold_remaining(key, pending)
            if remaining > 0:
                self._call_after(key, remaining, fire)  # it moved away and back: a newer, later hold
                return
            self._pending.pop(key, None)
            self._hold_mono.pop(key, None)
            self._save()
            device = self.hub.devices.get(pending["device"])
            if device is None:
                return
            trigger = rt.scene.triggers[pending["trigger"]]
            assert isinstance(trigger, StateTrigger)
            cap, attr = _split(trigger.attribute)
            value = device.value(pending["component"], cap, attr)
            if not _trigger_level(trigger, value):
                return  # the value moved away in the meantime (a change we did not see, e.g. while down)
            self._fire(rt, TriggerContext("state", self.clock.time(), device.id, pending["component"], device.area,
                                          value, pending.get("old"),
                                          {"attribute": trigger.attribute, "held_s": trigger.for_,
                                           "test": _describe_level(trigger),
                                           "held_since": iso_utc(pending["due"] - trigger.for_)},
                                          resolve_key=f"state:{key}"))

        self._call_after(key, max(0.0, self._hold_remaining(key, pending)), fire)

    def _hold_remaining(self, key: str, pending: dict[str, Any]) -> float:
        """Seconds left of a hold: on the monotonic clock when it began in this process, else (restored from
        the store) until its wall-clock due time."""
        mono = self._hold_mono.get(key)
        if mono is not None:
            return mono - self.clock.monotonic()
        return float(pending["due"]) - self.clock.time()

    def _on_device_event(self, event: DeviceEvent) -> None:
        if event.capability != "button" or event.event != "pressed":
            return
        device = self.hub.devices.get(event.device_id)
        if device is None:
            return
        kind = event.data.get("kind")
        for rt, _index, trigger in self._button_triggers:
            if not rt.enabled or not self.matches(trigger.selector, device):
                continue
            if trigger.press is not None and kind not in trigger.press:
                continue
            self._fire(rt, TriggerContext("button", event.t, device.id, event.component, device.area, kind,
                                          detail={"button": event.data.get("button")}))

    def _on_command_result(self, event: CommandResultEvent) -> None:
        command = event.command
        if command.source.startswith("scene:") or command.capability not in LIGHT_CAPABILITIES:
            return
        device = self.hub.devices.get(command.device_id)
        if device is None or not self._override_covers(device, command.capability):
            return
        if event.result.status in ("confirmed", "sent", "timeout"):
            self._set_override(command.device_id, f"manual command from {command.source}")

    def _detect_manual_change(self, device: Device, event: StateChanged) -> None:
        sent = self._engine_sent.get(device.id)
        if event.old is None:
            return  # a first report, not a change anybody made
        if sent is not None and event.t - sent <= OWN_CHANGE_WINDOW_S:
            return
        if not self._override_covers(device, event.capability):
            return  # a plug switched by hand is not a light somebody wants left on
        self._set_override(device.id, "changed outside the scenes (switch or another controller)")

    def _set_override(self, device_id: str, why: str) -> None:
        if self.settings.manual_override_s <= 0:
            return
        self.overrides[device_id] = self.clock.time() + self.settings.manual_override_s
        log.debug("manual override of %s: %s", device_id, why)

    # ------------------------------------------------------------------ day statistics

    def _today(self, t: float) -> str:
        """The local date of ``t`` (ISO), without date arithmetic per event: the day's bounds are kept."""
        bounds = self._day_bounds
        if bounds is None or not bounds[0] <= t < bounds[1]:
            day = self._local(t).date()
            bounds = self._day_bounds = (self._at_local(day, 0), self._at_local(day + timedelta(days=1), 0),
                                         day.isoformat())
            if not bounds[0] <= t < bounds[1]:  # a zone whose midnight is skipped: no caching that day
                self._day_bounds = None
        return bounds[2]

    def _track_day(self, device: Device, event: StateChanged) -> None:
        today = self._today(event.t)
        if self.day.get("date") != today:
            self.day = {"date": today, "first_activity": None, "transitions": 0, "last_area": None,
                        "door_events": [], "energy_start": {}, "activity": []}
        if event.capability == "occupancy" and event.new is True:
            if device.area and device.area != self.last_area:
                if device.area in self._watched_areas or self.last_area in self._watched_areas:
                    self._urgent()  # a bathroom entry lost in a crash is a long-stay alert that never comes
                self.last_area = device.area
            if self.day["first_activity"] is None:
                self.day["first_activity"] = event.t
            # The day's movement, one entry a minute at most (<= 1,440): the summary tells the morning's
            # first activity from a 03:30 trip to the bathroom, and counts the night's on its own.
            activity = self.day.setdefault("activity", [])
            if not activity or event.t - activity[-1] >= 60:
                activity.append(int(event.t))
            if device.area and device.area != self.day["last_area"]:
                if self.day["last_area"] is not None:
                    self.day["transitions"] += 1
                self.day["last_area"] = device.area
        elif event.capability == "contact" and event.new is True:
            self.day["door_events"].append([event.t, device.id])
            del self.day["door_events"][:-500]
        elif event.capability == "energy_meter" and event.attribute == "kwh" and isinstance(event.new, (int, float)):
            start = self.day["energy_start"]
            if device.id not in start:
                start[device.id] = event.old if isinstance(event.old, (int, float)) else event.new

    # ------------------------------------------------------------------ clock triggers

    def _next_time(self, trigger: TimeTrigger, after: float) -> float:
        local_day = self._local(after).date()
        for offset in range(9):
            day = local_day + timedelta(days=offset)
            if trigger.weekdays and WEEKDAY_NAMES[day.weekday()] not in trigger.weekdays:
                continue
            due = self._at_local(day, trigger.at)
            if due > after:
                return due
        raise AssertionError("no weekday in a week")  # pragma: no cover - weekdays is never empty

    def _arm_clock_trigger(self, rt: SceneRuntime, index: int, trigger: TimeTrigger | SunTrigger) -> None:
        now = self.clock.time()
        if isinstance(trigger, TimeTrigger):
            due: float | None = self._next_time(trigger, now)
        else:
            from gateway.scenes.sun import next_sun_event

            assert self.settings.latitude is not None and self.settings.longitude is not None
            when = next_sun_event(datetime.fromtimestamp(now, UTC), trigger.event, trigger.offset,
                                  self.settings.latitude, self.settings.longitude)
            due = when.timestamp() if when else now + 86400  # polar day/night: look again tomorrow
        key = f"clock:{rt.id}#{index}"

        def fire() -> None:
            if rt.enabled and (isinstance(trigger, TimeTrigger) or due is not None):
                detail = {"at": self._local(self.clock.time()).strftime("%H:%M")}
                if isinstance(trigger, SunTrigger):
                    detail["event"] = trigger.event
                self._fire(rt, TriggerContext(trigger.kind, self.clock.time(), detail=detail))
            self._arm_clock_trigger(rt, index, trigger)

        assert due is not None
        self._call_at(key, due, fire)

    def _window_bounds(self, window: TimeWindow, day: date) -> tuple[float, float]:
        start = self._at_local(day, window.after)
        end_day = day if window.after < window.before else day + timedelta(days=1)
        return start, self._at_local(end_day, window.before)

    def next_absence_due(self, trigger: AbsenceTrigger, last_activity: float, fired: float | None,
                         now: float) -> float | None:
        """When the absence fires next (``now`` if it is overdue), or None until new activity."""
        if trigger.window is None:
            assert trigger.for_ is not None
            if fired is not None and fired >= last_activity:
                return None
            return max(now, last_activity + trigger.for_)
        today = self._local(now).date()
        for offset in (-1, 0, 1, 2):
            start, end = self._window_bounds(trigger.window, today + timedelta(days=offset))
            if end <= now:
                continue
            if fired is not None and fired >= start and fired >= last_activity:
                continue  # already fired in this window for this absence
            if trigger.for_ is None:
                # The whole window: due at its end ("nobody up by 09:30" fires at 09:30).
                if last_activity >= start:
                    continue
                due = end
            else:
                due = max(last_activity, start) + trigger.for_
                if due >= end:
                    continue
            return max(due, now)
        return None

    def _mono_of(self, t: float) -> float:
        """The monotonic time of the wall time ``t`` (a moment just seen: an event's time)."""
        return self.clock.monotonic() + (t - self.clock.time())

    def _elapsed_since(self, key: str, t: float) -> float:
        """Seconds since the moment ``t`` that ``key`` names: on the monotonic clock when it was seen in this
        process (see ``_moment_mono``), else on the wall clock (restored from before a restart)."""
        mono = self._moment_mono.get(key)
        if mono is not None:
            return self.clock.monotonic() - mono
        return self.clock.time() - t

    def _call_when_held(self, key: str, moment_key: str, t: float, hold_s: float,
                        callback: Callable[[], None]) -> None:
        """Call ``callback`` when ``hold_s`` seconds have passed since the moment ``t`` (see _elapsed_since)."""
        if moment_key in self._moment_mono:
            self._call_after(key, hold_s - self._elapsed_since(moment_key, t), callback)
        else:
            self._call_at(key, t + hold_s, callback)

    def _arm_absence(self, rt: SceneRuntime, index: int, trigger: AbsenceTrigger) -> None:
        tkey = f"{rt.id}#{index}"
        key = f"absence:{tkey}"
        if tkey not in self._absence:
            self._absence[tkey] = {"last_activity": self._started_at}
            self._moment_mono[key] = self._mono_of(self._started_at)
        record = self._absence[tkey]
        now = self.clock.time()
        if trigger.window is None:
            # A plain duration ("no activity for 2 h"): measured from the last activity, as a duration.
            assert trigger.for_ is not None
            if record.get("fired") is not None and record["fired"] >= record["last_activity"]:
                self._cancel(key)
                return
            due = None
        else:
            due = self.next_absence_due(trigger, record["last_activity"], record.get("fired"), now)
            if due is None:
                self._cancel(key)
                return

        armed_for = record

        def fire() -> None:
            nonlocal armed_for
            record = self._absence.setdefault(tkey, {"last_activity": self._started_at})
            if record is not armed_for:
                # Activity since this was armed (it replaces the record): when that activity would have
                # made it due, computed as of the activity's own time.
                if trigger.window is None:
                    assert trigger.for_ is not None
                    if self._elapsed_since(key, record["last_activity"]) < trigger.for_ - WALL_CLOCK_SLACK_S:
                        armed_for = record
                        self._call_when_held(key, key, record["last_activity"], trigger.for_, fire)
                        return
                else:
                    due = self.next_absence_due(trigger, record["last_activity"], record.get("fired"),
                                                record["last_activity"])
                    if due is None:
                        return
                    if due > self.clock.time():
                        armed_for = record
                        self._call_at(key, due, fire)
                        return
            # Never before the activity it is for, whatever the wall clock did since: it fires once per absence.
            record["fired"] = max(self.clock.time(), record["last_activity"])
            self._save()
            if rt.enabled:
                quiet = self._elapsed_since(key, record["last_activity"])
                self._fire(rt, TriggerContext("absence", self.clock.time(), value=None, detail={
                    "attribute": trigger.attribute, "quiet_s": round(quiet),
                    "last_activity": iso_utc(record["last_activity"])}, resolve_key=f"absence:{tkey}"))
            self._arm_absence(rt, index, trigger)

        if due is None:
            assert trigger.for_ is not None
            self._call_when_held(key, key, record["last_activity"], trigger.for_, fire)
        else:
            self._call_at(key, due, fire)

    # ------------------------------------------------------------------ who is home

    def _where(self, device: Device) -> str:
        return f"{device.name} ({device.area})" if device.area else device.name

    def _track_occupancy(self, device: Device, event: StateChanged) -> None:
        """Work out whether anybody is home from what the house reports (issue: a resident out shopping
        is not a resident who has fallen): movement inside -> home; the entrance door opened and closed
        and then nothing inside for ``away_after_s`` -> away; presence tags when there are any."""
        capability = event.capability
        occupancy = self.occupancy
        t = event.t
        if capability == "occupancy":
            if event.new is not True or "outdoor" in device.tags or device.area == "outdoor":
                return
            occupancy["last_inside"] = t
            closed = occupancy.get("door_closed_at")
            if closed is not None and t - closed < ENTRANCE_GRACE_S and occupancy["state"] != "away":
                return  # the walk to the door, reported a moment late
            if occupancy["state"] != "home":
                self._set_occupancy("home", f"movement in {self._where(device)}", t)
        elif capability == "contact":
            if event.attribute != "open" or "entrance" not in device.tags:
                return
            if event.new is True:
                occupancy["door_opened_at"] = t
                occupancy["opened_while"] = occupancy["state"]
            elif event.new is False and event.old is True:
                occupancy["door_closed_at"] = t
                occupancy["door"] = device.name
                if occupancy.get("opened_while") == "away":
                    return  # somebody came in: the movement inside that follows says home
                self._moment_mono["occupancy:door_closed"] = self._mono_of(t)
                self._call_when_held("occupancy:away-check", "occupancy:door_closed", t,
                                     self.settings.away_after_s, self._check_away)
        elif capability == "presence" and event.attribute == "present":
            if event.new is True:
                if occupancy["state"] != "home":
                    self._set_occupancy("home", f"{device.name} is present", t)
                return
            tags = [d for d in self.hub.devices.values()
                    if any("presence" in caps and "present" in caps["presence"] for caps in d.state.values())]
            if tags and all(d.value(c, "presence", "present") is not True
                            for d in tags for c in d.state if "presence" in d.state[c]):
                self._set_occupancy("away", f"every presence tag is away (last: {device.name})", t)

    def _check_away(self) -> None:
        occupancy = self.occupancy
        closed = occupancy.get("door_closed_at")
        if closed is None or occupancy["state"] == "away":
            return
        last_inside = occupancy.get("last_inside")
        if last_inside is not None and last_inside >= closed + ENTRANCE_GRACE_S:
            return  # somebody moved inside after the door closed: still home
        if self._elapsed_since("occupancy:door_closed", closed) < self.settings.away_after_s - WALL_CLOCK_SLACK_S:
            return  # the door closed again later: that check comes
        when = self._local(closed).strftime("%H:%M")
        self._set_occupancy("away", f"{occupancy.get('door', 'the entrance door')} closed at {when} and no "
                                    f"movement inside for {_human_duration(self.settings.away_after_s)}")

    def _set_occupancy(self, state: str, reason: str, t: float | None = None) -> None:
        old = self.occupancy["state"]
        if state == old:
            return
        now = self.clock.time() if t is None else t
        old_since = self.occupancy.get("since")
        self.occupancy.update(state=state, since=now, reason=reason)
        self._moment_mono["occupancy:since"] = self._mono_of(now)
        self._resolve_by_key(f"occupancy:{old_since}", f"house {state}: {reason}")
        self.occupancy_log.append({"t": iso_utc(now), "state": state, "reason": reason})
        log.info("house is %s: %s", state, reason)
        self._save()
        self._urgent()
        self.hub.bus.publish(OccupancyChanged(now, old, state, reason))
        self._arm_occupancy_triggers(old)
        self._check_resolve_when(f"house {state}: {reason}")

    def _arm_occupancy_triggers(self, old: str | None = None) -> None:
        """Fire (or time) the occupancy triggers for the state the house is in now. ``old`` None: at
        start, where only held triggers are re-armed (a change before the restart was already seen)."""
        state = self.occupancy["state"]
        since = self.occupancy.get("since") or self.clock.time()
        for rt, index, trigger in self._occupancy_triggers:
            key = f"occupancy:{rt.id}#{index}"
            self._cancel(key)
            if trigger.to is not None and trigger.to != state:
                continue
            if old is not None and trigger.from_ is not None and trigger.from_ != old:
                continue
            if trigger.for_ <= 0:
                if old is not None and rt.enabled:
                    self._fire(rt, TriggerContext("occupancy", self.clock.time(), value=state, old=old,
                                                  detail={"reason": self.occupancy.get("reason")}))
                continue
            fired = self.occupancy.setdefault("fired", {})
            if fired.get(key) == since:
                continue  # this stretch already fired it (before a restart)

            def fire(rt: SceneRuntime = rt, key: str = key, trigger: OccupancyTrigger = trigger,
                     since: float = since) -> None:
                if (trigger.to is not None and self.occupancy["state"] != trigger.to) or \
                        self.occupancy.get("since") != since:
                    return
                self.occupancy.setdefault("fired", {})[key] = since
                self._save()
                if rt.enabled:
                    self._fire(rt, TriggerContext("occupancy", self.clock.time(), value=self.occupancy["state"],
                                                  detail={"held_s": trigger.for_, "since": iso_utc(since),
                                                          "reason": self.occupancy.get("reason")},
                                                  resolve_key=f"occupancy:{since}"))

            self._call_when_held(key, "occupancy:since", since, trigger.for_, fire)

    # ------------------------------------------------------------------ mode

    def house(self) -> dict[str, Any]:
        """The house mode and occupancy, for the API and the UI."""
        occupancy = self.occupancy
        since = occupancy.get("since")
        return {"mode": self.mode, "occupancy": occupancy["state"], "since": iso_utc(since) if since else None,
                "reason": occupancy.get("reason"), "last_area": self.last_area,
                "history": list(reversed(self.occupancy_log)), "last_check_in": self.last_check_in()}

    def set_mode(self, mode: str, source: str = "api") -> None:
        old = self.mode
        if mode == old:
            return
        self.mode = mode
        self._save()
        self.hub.bus.publish(ModeChanged(self.clock.time(), old, mode, source))
        if mode in ("away", "vacation"):
            self._set_occupancy("away", f"house mode set to {mode} ({source})")
        elif mode == "home":
            self._set_occupancy("home", f"house mode set to home ({source})")
        for rt, _index, trigger in self._mode_triggers:
            if rt.enabled and (trigger.to is None or trigger.to == mode) and (
                    trigger.from_ is None or trigger.from_ == old):
                self._fire(rt, TriggerContext("mode", self.clock.time(), value=mode, old=old))

    # ------------------------------------------------------------------ runs

    def set_enabled(self, scene_id: str, enabled: bool) -> None:
        self.scenes[scene_id].enabled = enabled
        self._save()

    def run_now(self, scene_id: str, *, skip_conditions: bool = False) -> str:
        """Start a scene by hand (API). Returns the run's trace id."""
        rt = self.scenes[scene_id]
        return self._fire(rt, TriggerContext("manual", self.clock.time()), manual=True,
                          skip_conditions=skip_conditions) or ""

    def _fire(self, rt: SceneRuntime, ctx: TriggerContext, *, manual: bool = False,
              skip_conditions: bool = False) -> str | None:
        now = self.clock.time()
        trace: dict[str, Any] = {"id": f"{rt.id}-{next(self._ids)}-{int(now)}", "scene": rt.id, "t": iso_utc(now),
                                 "trigger": ctx.as_dict(), "conditions": [], "actions": [], "result": "running"}
        self.counters["triggers"] += 1
        run_key = ctx.device_id or ""
        if run_key in rt.running:
            trace["result"] = "skipped: still running"
            self._finish(rt, trace, store=False)
            return None
        if not manual and rt.scene.cooldown and rt.last_acted is not None and now - rt.last_acted < rt.scene.cooldown:
            trace["result"] = f"skipped: cooldown until {iso_utc(rt.last_acted + rt.scene.cooldown)}"
            self._finish(rt, trace, store=False)
            return None
        if not skip_conditions:
            for condition in rt.scene.conditions:
                ok, detail = self._evaluate(condition, ctx)
                trace["conditions"].append(detail)
                if not ok:
                    trace["result"] = "conditions not met"
                    self._finish(rt, trace, store=False)
                    return trace["id"]
        rt.running.add(run_key)
        # Started eagerly: its first actions (most runs: a command, published at once) happen here, on
        # the trigger's turn of the loop, not on the next one; only what then waits becomes a task.
        task = _start_eagerly(self._run(rt, ctx, trace), name=f"scene:{rt.id}")
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return trace["id"]

    def _finish(self, rt: SceneRuntime, trace: dict[str, Any], *, store: bool = True) -> None:
        trace["finished"] = iso_utc(self.clock.time())
        rt.traces.append(trace)
        if store:
            set_deferred = getattr(self.trace_storage, "set_deferred", None)
            if set_deferred is not None:  # see _save
                set_deferred(rt.id, lambda: list(rt.traces)[-TRACES_STORED:])
            else:
                self.trace_storage.set(rt.id, list(rt.traces)[-TRACES_STORED:])
        self.hub.bus.publish(SceneRan(self.clock.time(), rt.id, trace))

    async def _run(self, rt: SceneRuntime, ctx: TriggerContext, trace: dict[str, Any]) -> None:
        acted = False
        ctx.actions = trace["actions"]
        try:
            for action in rt.scene.actions:
                entry: dict[str, Any] = {"kind": action.kind, "t": iso_utc(self.clock.time())}
                trace["actions"].append(entry)
                carry_on = await self._act(rt, action, ctx, entry)
                acted = acted or entry.get("acted", False)
                if not carry_on:
                    break
            trace["result"] = "done"
        except asyncio.CancelledError:
            trace["result"] = "cancelled"
            raise
        except Exception as err:  # a bug must not take the engine down; the trace shows it
            log.exception("scene %s failed", rt.id)
            trace["result"] = f"error: {err}"
            self.counters["errors"] += 1
        finally:
            rt.running.discard(ctx.device_id or "")
            if acted:
                rt.last_acted = self.clock.time()
                self._save()
            self.counters["runs"] += 1
            self._finish(rt, trace)

    async def _blocked_on(self, awaitable: Any) -> Any:
        self._blocked += 1
        try:
            return await awaitable
        finally:
            self._blocked -= 1

    # ------------------------------------------------------------------ conditions

    def _evaluate(self, condition: Condition, ctx: TriggerContext) -> tuple[bool, dict[str, Any]]:
        now = self.clock.time()
        if isinstance(condition, TimeCondition):
            minute = self._minute_of_day(now)
            ok = condition.window.contains(minute)
            return ok, {"kind": "time", "result": ok, "now": self._local(now).strftime("%H:%M")}
        if isinstance(condition, WeekdayCondition):
            day = WEEKDAY_NAMES[self._local(now).weekday()]
            ok = day in condition.days
            return ok, {"kind": "weekday", "result": ok, "today": day}
        if isinstance(condition, ModeCondition):
            ok = self.mode in condition.is_
            return ok, {"kind": "mode", "result": ok, "mode": self.mode}
        if isinstance(condition, StateCondition):
            devices = self.select(condition.selector, ctx)
            cap, attr = _split(condition.attribute)
            values = {d.id: self._first_value(d, cap, attr) for d in devices}
            passing = [d.id for d in devices if self._passes(condition, d)]
            if condition.match == "any":
                ok = bool(passing)
            elif condition.match == "all":
                ok = bool(devices) and len(passing) == len(devices)
            else:
                ok = not passing
            return ok, {"kind": "state", "result": ok, "attribute": condition.attribute, "match": condition.match,
                        "values": values, "passing": passing}
        if isinstance(condition, OccupancyCondition):
            state = self.occupancy["state"]
            ok = state in condition.is_
            since = self.occupancy.get("since")
            return ok, {"kind": "occupancy", "result": ok, "occupancy": state, "wanted": list(condition.is_),
                        "since": iso_utc(since) if since else None, "reason": self.occupancy.get("reason")}
        if isinstance(condition, HappenedCondition):
            last = self._events.get(self._event_keys.get(id(condition), ""))
            detail: dict[str, Any] = {"kind": "happened", "attribute": condition.attribute,
                                      "last": iso_utc(last) if last else None}
            if condition.after is not None:
                before = self._events.get(self._event_keys.get(id(condition.after), ""))
                detail["after"] = condition.after.attribute
                detail["after_last"] = iso_utc(before) if before else None
                ok = last is not None and before is not None and last > before and (
                    condition.within is None or last - before <= condition.within)
            else:
                assert condition.within is not None
                ok = last is not None and now - last <= condition.within
            if condition.within is not None:
                detail["within_s"] = condition.within
            detail["result"] = ok
            return ok, detail
        if isinstance(condition, LastActivityCondition):
            last = self.last_area
            ok = last in condition.area
            return ok, {"kind": "last_activity", "result": ok, "last_area": last}
        if isinstance(condition, AnyCondition):
            details = [self._evaluate(c, ctx) for c in condition.conditions]
            ok = any(r for r, _ in details)
            return ok, {"kind": "any", "result": ok, "conditions": [d for _, d in details]}
        if isinstance(condition, NotCondition):
            inner_ok, inner = self._evaluate(condition.condition, ctx)
            return not inner_ok, {"kind": "not", "result": not inner_ok, "condition": inner}
        raise AssertionError(f"unknown condition {condition!r}")  # pragma: no cover

    @staticmethod
    def _first_value(device: Device, cap: str, attr: str) -> Any:
        for caps in device.state.values():
            if cap in caps and attr in caps[cap]:
                return caps[cap][attr]
        return None

    # ------------------------------------------------------------------ actions

    def _text(self, template: str, rt: SceneRuntime, ctx: TriggerContext) -> str:
        device = self.hub.devices.get(ctx.device_id) if ctx.device_id else None
        local = self._local(self.clock.time())
        values = {
            "device": device.name if device else (ctx.device_id or ""),
            "area": ctx.area or (device.area if device else "") or "",
            "value": "" if ctx.value is None else str(ctx.value),
            "scene": rt.scene.name,
            "time": local.strftime("%H:%M"),
            "date": local.date().isoformat(),
            "duration": _human_duration(ctx.detail.get("quiet_s") or ctx.detail.get("held_s") or 0),
            # when the house's current occupancy began ("Out since 10:05")
            "since": self._local(self.occupancy["since"]).strftime("%H:%M") if self.occupancy.get("since") else "?",
            "done": self._done(ctx.actions) if "{done}" in template else "",
        }
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)

    def _done(self, entries: list[dict[str, Any]] | None) -> str:
        """What this run's commands actually did, for a notification: "Hall light: off; Lamp: left alone
        (manual override until 14:20)". Devices already in the wanted state are not mentioned."""
        parts: list[str] = []
        for entry in entries or ():
            for target in entry.get("targets", ()):
                device = self.hub.devices.get(target["device"])
                name = device.name if device else target["device"]
                status = str(target.get("status", ""))
                if status.startswith("skipped: already"):
                    continue
                if status.startswith("skipped: manual override until "):
                    until = status.removeprefix("skipped: manual override until ")
                    with contextlib.suppress(ValueError):
                        until = self._local(datetime.fromisoformat(until).timestamp()).strftime("%H:%M")
                    parts.append(f"{name}: left alone (manual override until {until})")
                elif status.startswith("skipped: "):
                    parts.append(f"{name}: left alone ({status.removeprefix('skipped: ')})")
                elif status in ("rejected", "failed", "timeout"):
                    parts.append(f"{name}: {entry.get('command')} {status}")
                else:
                    parts.append(f"{name}: {entry.get('command')}")
        return "; ".join(parts) or "nothing needed doing"

    def _override_covers(self, device: Device, capability: str) -> bool:
        """Whether a manual change of ``capability`` on ``device`` is held against the scenes."""
        if capability not in LIGHT_CAPABILITIES:
            return False
        covered = self._covered.get(device.id)
        if covered is None:  # once per device until a device changes (a busy house's lights toggle a lot)
            covers = self.settings.override_covers
            is_light = "light" in device.tags or any(
                cap in caps for caps in device.support.values() for cap in ("level", "color", "color_temperature"))
            covered = self._covered[device.id] = ("lights" in covers) if is_light else ("switches" in covers)
        return covered

    async def _act(self, rt: SceneRuntime, action: Any, ctx: TriggerContext, entry: dict[str, Any]) -> bool:
        if isinstance(action, CommandAction):
            await self._command(rt, action.target, action.capability, action.command, action.args, ctx, entry,
                                override_manual=action.override_manual)
            return True
        if isinstance(action, SetModeAction):
            entry.update(mode=action.mode, acted=self.mode != action.mode)
            self.set_mode(action.mode, source=f"scene:{rt.id}")
            return True
        if isinstance(action, NotifyAction):
            from gateway.scenes.notify import Notification

            message = self._text(action.message, rt, ctx)
            for target in action.to:
                self._tell(target, Notification(
                    id=f"{rt.id}-{next(self._ids)}", t=self.clock.time(), title=self._text(action.title, rt, ctx)
                    or rt.scene.name, message=message, severity=action.severity, scene=rt.id, alert_id=None,
                    data={}))
            entry.update(to=action.to, message=message, acted=True)
            return True
        if isinstance(action, AlertAction):
            self._raise_alert(rt, action, ctx, entry)
            return True
        if isinstance(action, ClearAlertAction):
            cleared = [a["id"] for a in self.alerts.values()
                       if a["state"] != "resolved" and a["key"] == action.alert
                       and a["scene"].startswith(f"{rt.profile}.")]
            for alert_id in cleared:
                self.resolve(alert_id, f"scene:{rt.id}", f"cleared by {rt.scene.name}")
            entry.update(alert=action.alert, cleared=cleared, acted=bool(cleared))
            return True
        if isinstance(action, DelayAction):
            entry["for_s"] = action.for_
            await self._blocked_on(self.clock.sleep(action.for_))
            return True
        if isinstance(action, WaitForAction):
            return await self._wait_for(action, ctx, entry)
        if isinstance(action, SaveStateAction):
            cap, attr = _split(action.attribute)
            record = self.saved.setdefault(action.key, {"attribute": action.attribute, "values": {}})
            saved: dict[str, Any] = {}
            for device in self.select(action.target, ctx):
                for component, caps in device.state.items():
                    key = f"{device.id}|{component}"
                    if attr in caps.get(cap, {}) and key not in record["values"]:
                        saved[key] = caps[cap][attr]
            record["values"].update(saved)
            self._save()
            entry.update(key=action.key, saved=saved)
            return True
        if isinstance(action, RestoreStateAction):
            await self._restore_state(rt, action, ctx, entry)
            return True
        if isinstance(action, ReportAction):
            self._report(rt, action, entry)
            return True
        raise AssertionError(f"unknown action {action!r}")  # pragma: no cover

    async def _command(self, rt: SceneRuntime, target: Selector | list[tuple[Device, str]], capability: str,
                       command: str, args: dict[str, Any], ctx: TriggerContext, entry: dict[str, Any], *,
                       override_manual: bool = False) -> None:
        now = self.clock.time()
        results: list[dict[str, Any]] = []
        jobs = []
        pairs: list[tuple[Device, str]]
        if isinstance(target, Selector):
            pairs = [(device, component) for device in self.select(target, ctx)
                     for component, caps in sorted(device.support.items())
                     if capability in caps and command in caps[capability].commands]
        else:
            pairs = target
        for device, component in pairs:
            result: dict[str, Any] = {"device": device.id, "component": component}
            results.append(result)
            override = self.overrides.get(device.id)
            if override is not None and override > now and not override_manual and \
                    self._override_covers(device, capability):
                result["status"] = f"skipped: manual override until {iso_utc(override)}"
                self._retry_after_override(rt, ctx, override)
                continue
            hold = self._holds.get(device.id)
            if hold is not None and hold[2] != rt.id and hold[0] > rt.scene.priority and \
                    now - hold[1] < self.settings.priority_hold_s:
                result["status"] = f"skipped: held by higher-priority scene {hold[2]}"
                continue
            if device.available is False:
                result["status"] = "skipped: device offline"
                continue
            cmd = Command(device.id, component, capability, command, dict(args), source=f"scene:{rt.id}")
            wanted = expected_state(cmd, device)
            if wanted and all(matches_expected(v, device.value(component, capability, a)) for a, v in wanted.items()):
                result["status"] = "skipped: already in that state"
                continue
            self._holds[device.id] = (rt.scene.priority, now, rt.id)
            self._engine_sent[device.id] = now
            if self.on_action is not None:
                self.on_action({"t": iso_utc(now), "scene": rt.id, "device": device.id, "component": component,
                                "capability": capability, "command": command, "args": dict(args)})
            self.counters["commands"] += 1
            jobs.append(self._execute(cmd, result))
        entry.update(capability=capability, command=command, args=args, targets=results,
                     acted=bool(jobs))
        if not pairs:
            entry["note"] = "no device matched the target"
        if len(jobs) == 1:
            await self._blocked_on(jobs[0])  # gather would make it a task: one more turn of the loop
        elif jobs:
            await self._blocked_on(asyncio.gather(*jobs))

    def _retry_after_override(self, rt: SceneRuntime, ctx: TriggerContext, until: float) -> None:
        """Run the scene again when the override ends: its conditions decide then (a room still empty
        has its light switched off after all; one in use again does not)."""
        # One retry per scene *and triggering device*: two rooms overridden at once each get theirs.
        key = f"override-retry:{rt.id}:{ctx.device_id or ''}"
        if key in self._timers:
            return

        def retry() -> None:
            if rt.enabled:
                self._fire(rt, TriggerContext(ctx.kind, self.clock.time(), ctx.device_id, ctx.component, ctx.area,
                                              ctx.value, ctx.old, {**ctx.detail, "retry": "manual override ended"}))

        self._call_at(key, until + 1.0, retry)

    async def _execute(self, command: Command, result: dict[str, Any]) -> None:
        try:
            outcome = await self.hub.execute(command, timeout_s=self.settings.command_timeout_s)
            result["status"] = outcome.status
            if outcome.message and outcome.status != "confirmed":
                result["message"] = outcome.message
        except CommandValidationError as err:
            result["status"] = "rejected"
            result["message"] = str(err)

    async def _wait_for(self, action: WaitForAction, ctx: TriggerContext, entry: dict[str, Any]) -> bool:
        entry.update(attribute=action.attribute, timeout_s=action.timeout)
        if any(self._passes(action, d) for d in self.select(action.selector, ctx)):
            entry["result"] = "already true"
            return True
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        waiter = (action, ctx, future)
        self._waiters.append(waiter)
        timer = self.clock.call_later(action.timeout, lambda: future.done() or future.set_result(False))
        try:
            happened = await self._blocked_on(future)
        finally:
            timer.cancel()
            self._waiters.remove(waiter)
        entry["result"] = "happened" if happened else "timed out"
        return happened or action.on_timeout == "continue"

    async def _restore_state(self, rt: SceneRuntime, action: RestoreStateAction, ctx: TriggerContext,
                             entry: dict[str, Any]) -> None:
        saved = self.saved.get(action.key)
        entry["key"] = action.key
        if not saved:
            entry["note"] = "nothing saved under this key"
            return
        cap, attr = _split(saved["attribute"])
        to_command = RESTORE_COMMANDS.get((cap, attr))
        if to_command is None:
            entry["note"] = f"{saved['attribute']} cannot be restored by a command"
            return
        wanted = set(d.id for d in self.select(action.target, ctx)) if action.target else None
        remaining = dict(saved["values"])
        for key, value in saved["values"].items():
            device_id, _, component = key.partition("|")
            device = self.hub.devices.get(device_id)
            if device is None or (wanted is not None and device_id not in wanted):
                continue
            command, args = to_command(value)
            remaining.pop(key)
            sub: dict[str, Any] = {"kind": "command", "t": iso_utc(self.clock.time())}
            await self._command(rt, [(device, component)], cap, command, args, ctx, sub)
            entry.setdefault("targets", []).extend(sub.get("targets", []))
            entry["acted"] = entry.get("acted", False) or sub.get("acted", False)
        if remaining:
            self.saved[action.key]["values"] = remaining
        else:
            self.saved.pop(action.key, None)
        self._save()

    # ------------------------------------------------------------------ alerts

    def _raise_alert(self, rt: SceneRuntime, action: AlertAction, ctx: TriggerContext, entry: dict[str, Any]) -> None:
        entry["alert"] = action.alert
        # Not again while one is open. An acknowledged one that resolves itself stands for the same
        # situation until it does; one that does not (a panic press has no "all clear") must not swallow
        # the next press.
        for alert in self.alerts.values():
            if alert["key"] == action.alert and alert["scene"] == rt.id and (
                    alert["state"] == "open" or (alert["state"] == "acknowledged"
                                                 and (alert.get("resolve_key") or alert.get("resolve_when")))):
                entry["note"] = f"already {alert['state']} as {alert['id']}"
                return
        now = self.clock.time()
        alert_id = f"{action.alert}-{int(now)}-{next(self._ids)}"
        resolve_key = ctx.resolve_key if action.resolve == "auto" else None
        alert = {
            "id": alert_id, "key": action.alert, "scene": rt.id, "severity": action.severity,
            "title": self._text(action.title, rt, ctx) or rt.scene.name,
            "message": self._text(action.message, rt, ctx), "state": "open",
            "raised_at": now, "acknowledged_at": None, "acknowledged_by": None,
            "resolved_at": None, "resolved_by": None, "resolution": None, "unanswered_at": None,
            "device_id": ctx.device_id, "area": ctx.area,
            "notify": list(action.notify), "escalate_after_s": action.escalate_after,
            "reminders": action.reminders, "final_notice": action.final_notice,
            "max_notifications": action.max_notifications, "step": 0, "resolve_key": resolve_key,
            "resolve_when": action.resolve == "auto" and action.resolve_when is not None,
            "notifications": [], "next_escalation_at": None,
        }
        self.alerts[alert_id] = alert
        if resolve_key:
            self._resolvers.setdefault(resolve_key, set()).add(alert_id)
        self.counters["alerts"] += 1
        entry.update(id=alert_id, acted=True)
        if self.on_alert is not None:
            self.on_alert({"t": iso_utc(now), "scene": rt.id, "severity": action.severity,
                           "message": alert["message"], "id": alert_id})
        self._notify_alert(alert)
        self._save()
        self.hub.bus.publish(AlertChanged(now, public_alert(alert), "raised"))

    def _tell(self, target: str, notification: Any) -> None:
        """Hand a notification over once what it speaks of is on disk: an acknowledgement link that
        answers 404 after a crash, or a page repeated under a new id, is worse than 40 ms later."""
        if self._commit is None:
            self.notifier.send(target, notification)
            return
        self._outbox.append((target, notification))
        if self._outbox_task is None or self._outbox_task.done():
            self._outbox_task = asyncio.get_running_loop().create_task(self._send_outbox(), name="scenes:outbox")

    async def _send_outbox(self) -> None:
        while self._outbox:
            try:
                assert self._commit is not None
                await self._commit()
            except Exception as err:  # the page matters more than the disk: say so and send
                log.error("could not commit before notifying (%s); notifying anyway", err)
            batch, self._outbox = self._outbox, []
            for target, notification in batch:
                self.notifier.send(target, notification)

    def _urgent(self) -> None:
        """Commit soon (not at the next 5-second batch): safety-relevant state, at most every
        URGENT_COMMIT_MIN_S."""
        if self._commit is None:
            return
        if self._urgent_task is not None and not self._urgent_task.done():
            self._urgent_again = True
            return
        self._urgent_task = asyncio.get_running_loop().create_task(self._urgent_commits(), name="scenes:commit")

    async def _urgent_commits(self) -> None:
        while True:
            self._urgent_again = False
            try:
                assert self._commit is not None
                await self._commit()
            except Exception as err:
                log.error("urgent commit failed: %s", err)
            await self.clock.sleep(URGENT_COMMIT_MIN_S)
            if not self._urgent_again:
                return

    async def durable(self) -> None:
        """Wait until what changed so far is on disk (the API answers an acknowledgement after it)."""
        if self._commit is not None:
            await self._commit()

    def _policy_steps(self, alert: dict[str, Any]) -> int:
        """How many notifications the escalation sends before its final notice."""
        if not alert["notify"]:
            return 0
        if not alert["escalate_after_s"]:
            return 1
        steps = len(alert["notify"]) * (1 + alert.get("reminders", 0))
        cap = alert.get("max_notifications")
        return min(steps, cap) if cap else steps

    def _notify_alert(self, alert: dict[str, Any], why: str | None = None) -> None:
        """Send the alert's next step (``alert["step"]``) and arm the one after; ``why`` it goes out now,
        when that is not the escalation timer, is kept on the notification (the alert's history)."""
        step = alert.get("step", len(alert["notifications"]))
        steps = self._policy_steps(alert)
        now = self.clock.time()
        if step < steps:
            per_contact = 1 + alert.get("reminders", 0)
            tier, reminder = divmod(step, per_contact)
            target = alert["notify"][tier]
            language = self._language_of(target)
            if step == 0:
                prefix = ""
            elif reminder:
                prefix = translate(language, "notify.reminder_prefix", number=reminder)
            else:
                prefix = translate(language, "notify.not_acknowledged_by", name=alert["notify"][tier - 1])
            self._send_alert_notification(alert, target, f"{alert['id']}#{step}", alert["title"],
                                          prefix + alert["message"], "reminder" if reminder else "alert", why=why)
        elif step == steps and alert.get("final_notice", True) and steps:
            raised = self._local(alert["raised_at"]).strftime("%H:%M")
            told = len(alert["notifications"])
            for target in dict.fromkeys(alert["notify"]):
                language = self._language_of(target)
                self._send_alert_notification(
                    alert, target, f"{alert['id']}#{step}:{target}",
                    translate(language, "notify.unanswered_title", title=alert["title"]),
                    translate(language, "notify.unanswered_message", time=raised, count=told,
                              message=alert["message"]),
                    "unanswered")
            alert["unanswered_at"] = now
            self.hub.bus.publish(AlertChanged(now, public_alert(alert), "unanswered"))
        alert["step"] = step + 1
        more = alert["step"] < steps or (alert["step"] == steps and alert.get("final_notice", True) and steps)
        if alert["escalate_after_s"] and more:
            alert["next_escalation_at"] = now + alert["escalate_after_s"]
            self._arm_escalation(alert)
        else:
            alert["next_escalation_at"] = None

    def _language_of(self, target: str) -> str:
        """The language the contact ``target`` reads (its ``language`` in [notify.<target>])."""
        language_of = getattr(self.notifier, "language_of", None)
        return language_of(target) if language_of is not None else DEFAULT_LANGUAGE

    def language_of(self, target: str) -> str:
        """The same, for the acknowledge page (gateway.api.ack) a message to ``target`` links to."""
        return self._language_of(target)

    def _send_alert_notification(self, alert: dict[str, Any], target: str, notification_id: str, title: str,
                                 message: str, kind: str, *, why: str | None = None) -> None:
        from gateway.scenes.notify import Notification

        now = self.clock.time()
        alert["notifications"].append({"t": now, "target": target, "id": notification_id, "kind": kind,
                                       "status": "pending", **({"why": why} if why else {})})
        severity = "info" if kind == "resolved" else alert["severity"]
        self._tell(target, Notification(
            id=notification_id, t=now, title=title, message=message, severity=severity, scene=alert["scene"],
            alert_id=alert["id"], data={"step": alert.get("step", 0), "kind": kind, "state": alert["state"],
                                        "device_id": alert["device_id"], "area": alert["area"]}))

    def _arm_escalation(self, alert: dict[str, Any]) -> None:
        alert_id = alert["id"]

        def escalate() -> None:
            current = self.alerts.get(alert_id)
            if current is None or current["state"] != "open":
                return
            self._notify_alert(current)
            self._save()
            self.hub.bus.publish(AlertChanged(self.clock.time(), public_alert(current), "escalated"))

        self._call_at(f"escalate:{alert_id}", alert["next_escalation_at"], escalate)

    def notification_result(self, result: Any) -> None:
        """A delivery finished (delivered, failed, …): shown on the alert it belongs to."""
        alert_id = result.notification_id.partition("#")[0]
        alert = self.alerts.get(alert_id)
        if alert is None:
            return
        for entry in alert["notifications"]:
            if entry.get("id") == result.notification_id:
                entry["status"] = result.status
                if result.error:
                    entry["error"] = result.error
                if getattr(result, "deliveries", None):  # Apprise: each channel tried, quiet hours
                    entry["deliveries"] = [dict(d) for d in result.deliveries]
                self._save()
                self.hub.bus.publish(AlertChanged(self.clock.time(), public_alert(alert), "notified"))
                if result.status in ("failed", "unknown_target"):
                    self._contact_unreachable(alert, result.notification_id, result.status)

    def _contact_unreachable(self, alert: dict[str, Any], notification_id: str, status: str) -> None:
        """A step's notification ended ``failed`` (every channel of its contact, after the notifier's
        retries) or found no such target: waiting ``escalate_after`` for an acknowledgement that contact
        cannot give would only lose time, so the next contact is told now (the failed contact's reminders
        are skipped). The last contact failing changes nothing: the final notice keeps its time.

        The result may arrive while that very step is being sent (a notifier that fails at once): the
        escalation runs from a timer due now, once the step is done."""
        alert_id, _, step_text = notification_id.partition("#")
        if not step_text.isdigit() or alert["state"] != "open" or not alert["escalate_after_s"]:
            return  # a final, "resolved" or manual notice; or no escalation to speed up
        per_contact = 1 + alert.get("reminders", 0)
        tier = int(step_text) // per_contact
        next_step = (tier + 1) * per_contact
        if next_step >= self._policy_steps(alert) or alert.get("step", 0) > next_step:
            return  # no next contact, or already told
        contact = alert["notify"][tier]
        why = (f"every channel of {contact} failed" if status == "failed"
               else f"{contact} is not a notify target")  # fmt: skip

        def escalate_now() -> None:
            current = self.alerts.get(alert_id)
            if current is None or current["state"] != "open" or current.get("step", 0) > next_step:
                return
            log.info("alert %s: %s; telling %s now", alert_id, why, current["notify"][tier + 1])
            current["step"] = next_step
            self._cancel(f"escalate:{alert_id}")
            self._notify_alert(current, why=why)
            self._save()
            self.hub.bus.publish(AlertChanged(self.clock.time(), public_alert(current), "escalated"))

        self._call_at(f"unreachable:{alert_id}", self.clock.time(), escalate_now)

    def acknowledge(self, alert_id: str, by: str) -> dict[str, Any]:
        """open -> acknowledged: the escalation stops. Acknowledging again (or a resolved alert) changes
        nothing. The caller answers once ``durable()`` has returned."""
        alert = self.alerts[alert_id]
        if alert["acknowledged_at"] is None and alert["state"] == "open":
            alert["acknowledged_at"] = self.clock.time()
            alert["acknowledged_by"] = by
            alert["state"] = "acknowledged"
            alert["next_escalation_at"] = None
            self._cancel(f"escalate:{alert_id}")
            self._cancel(f"unreachable:{alert_id}")
            self._save()
            self._urgent()
            self.hub.bus.publish(AlertChanged(self.clock.time(), public_alert(alert), "acknowledged"))
        return public_alert(alert)

    def resolve(self, alert_id: str, by: str, resolution: str = "resolved by hand") -> dict[str, Any]:
        """-> resolved (by a person, a ``clear_alert`` or the situation ending); the contacts who were
        told are told it is over."""
        alert = self.alerts[alert_id]
        if alert["state"] == "resolved":
            return public_alert(alert)
        now = self.clock.time()
        alert.update(state="resolved", resolved_at=now, resolved_by=by, resolution=resolution,
                     next_escalation_at=None)
        self._cancel(f"escalate:{alert_id}")
        self._cancel(f"unreachable:{alert_id}")
        key = alert.get("resolve_key")
        if key and key in self._resolvers:
            self._resolvers[key].discard(alert_id)
            if not self._resolvers[key]:
                del self._resolvers[key]
        told = dict.fromkeys(n["target"] for n in alert["notifications"] if n.get("kind") != "resolved")
        at = self._local(now).strftime("%H:%M")
        for target in told:
            language = self._language_of(target)
            # The gateway's own words are translated; a person's note is sent as they wrote it.
            said = resolution_text(language, resolution)
            self._send_alert_notification(alert, target, f"{alert_id}#resolved:{target}",
                                          translate(language, "notify.resolved_title", title=alert["title"]),
                                          translate(language, "notify.resolved_message", resolution=said, time=at),
                                          "resolved")
        self._save()
        self._urgent()
        self.hub.bus.publish(AlertChanged(now, public_alert(alert), "resolved"))
        return public_alert(alert)

    def _resolve_by_key(self, key: str, why: str) -> None:
        for alert_id in list(self._resolvers.get(key, ())):
            self.resolve(alert_id, "situation ended", why)

    def _check_resolve_when(self, why: str) -> None:
        """Open alerts with a ``resolve_when`` condition: resolved once it holds."""
        for alert in list(self.alerts.values()):
            if alert["state"] == "resolved" or not alert.get("resolve_when"):
                continue
            rt = self.scenes.get(alert["scene"])
            action = next((a for a in rt.scene.actions if isinstance(a, AlertAction) and a.alert == alert["key"]),
                          None) if rt else None
            if action is None or action.resolve_when is None:
                continue
            ok, _detail = self._evaluate(action.resolve_when, TriggerContext(
                "resolve", self.clock.time(), alert.get("device_id"), None, alert.get("area")))
            if ok:
                self.resolve(alert["id"], "situation ended", why)

    def list_alerts(self, *, open_only: bool = False, state: str | None = None) -> list[dict[str, Any]]:
        """Newest first. ``state``: open, acknowledged, resolved, or "active" (open or acknowledged);
        ``open_only`` is ``state="open"``."""
        if open_only:
            state = "open"
        alerts = sorted(self.alerts.values(), key=lambda a: a["raised_at"], reverse=True)
        if state == "active":
            return [public_alert(a) for a in alerts if a["state"] != "resolved"]
        return [public_alert(a) for a in alerts if state is None or a["state"] == state]

    # ------------------------------------------------------------------ the resident (resident page)

    def _resident_log(self) -> dict[str, Any]:
        """Check-ins and calls for help, kept under their own storage key so the engine's snapshot
        (``state``) stays as it is; read once, on first use."""
        kept = getattr(self, "_resident", None)
        if kept is None:
            stored = self.storage.get("resident") or {}
            kept = {"check_ins": [c for c in stored.get("check_ins", []) if isinstance(c, dict) and "t" in c],
                    "calls": [c for c in stored.get("calls", []) if isinstance(c, dict) and "t" in c]}
            self._resident = kept
        return kept

    def _save_resident_log(self) -> None:
        kept = self._resident_log()
        for key in ("check_ins", "calls"):
            del kept[key][:-RESIDENT_KEPT]
        self.storage.set("resident", kept)

    def _public_check_in(self, record: dict[str, Any]) -> dict[str, Any]:
        return {"t": iso_utc(record["t"]), "by": record["by"], "resolved": list(record["resolved"]),
                "told": list(record["told"])}

    def last_check_in(self) -> dict[str, Any] | None:
        """The resident's most recent check-in ("I'm fine"), for the caregivers; None if there was none."""
        check_ins = self._resident_log()["check_ins"]
        return self._public_check_in(check_ins[-1]) if check_ins else None

    def check_in(self, who: str) -> dict[str, Any]:
        """The resident says "I'm fine". Every inactivity or morning alert not resolved yet resolves
        ("resident checked in"), and :meth:`resolve` tells the contacts who were told about it. With none
        open the check-in is recorded all the same (``last_check_in``, a ``ResidentCheckedIn`` event).

        A second tap within ``RESIDENT_REPEAT_S`` is the same check-in (``repeated``): a double tap must
        not record twice. The caller answers once ``durable()`` has returned."""
        now = self.clock.time()
        log_ = self._resident_log()
        answered = [a for a in sorted(self.alerts.values(), key=lambda a: a["raised_at"])
                    if a["key"] in CHECK_IN_RESOLVES and a["state"] != "resolved"]
        last = log_["check_ins"][-1] if log_["check_ins"] else None
        # (An alert raised between the two taps is answered by the second.)
        if last is not None and 0 <= now - last["t"] < RESIDENT_REPEAT_S and not answered:
            return {**self._public_check_in(last), "repeated": True}
        resolved_ids: list[str] = []
        told: dict[str, None] = {}
        for alert in answered:
            told.update(dict.fromkeys(n["target"] for n in alert["notifications"] if n.get("kind") != "resolved"))
            self.resolve(alert["id"], who, CHECK_IN_RESOLUTION)
            resolved_ids.append(alert["id"])
        record = {"t": now, "by": who, "resolved": resolved_ids, "told": list(told)}
        log_["check_ins"].append(record)
        self._save_resident_log()
        self._urgent()
        self.hub.bus.publish(ResidentCheckedIn(now, who, tuple(resolved_ids)))
        return {**self._public_check_in(record), "repeated": False}

    def _help_action(self) -> tuple[SceneRuntime, AlertAction] | None:
        """The alert a panic button raises (key ``panic``): the resident's call for help is the same
        alert, so it reaches the same contacts and escalates the same way. An enabled scene first."""
        found: list[tuple[bool, str, SceneRuntime, AlertAction]] = []
        for sid, rt in self.scenes.items():
            for action in rt.scene.actions:
                if isinstance(action, AlertAction) and action.alert == HELP_ALERT_KEY:
                    found.append((not rt.enabled, sid, rt, action))
        if not found:
            return None
        _disabled, _sid, rt, action = min(found, key=lambda f: (f[0], f[1]))
        return rt, action

    def help_configured(self) -> bool:
        """Whether a call for help has a scene to raise it (and so contacts to tell)."""
        return self._help_action() is not None

    def call_for_help(self, who: str) -> dict[str, Any]:
        """The resident asks for help: a critical ``panic`` alert, raised as the panic button's scene
        raises it (its contacts, its escalation). While that alert is open, or within
        ``RESIDENT_REPEAT_S`` of the last call, a call is the same one (``repeated``): a double tap must
        not page the family twice. Raises :class:`HelpNotConfiguredError` when no profile has a panic
        alert (nobody would be told)."""
        found = self._help_action()
        if found is None:
            raise HelpNotConfiguredError(
                "no scene raises a panic alert (enable a profile with a panic button, e.g. elderly-monitoring)")
        rt, action = found
        now = self.clock.time()
        log_ = self._resident_log()
        last = log_["calls"][-1] if log_["calls"] else None
        if last is not None and 0 <= now - last["t"] < RESIDENT_REPEAT_S and last["alert"] in self.alerts:
            return {"alert": public_alert(self.alerts[last["alert"]]), "repeated": True}
        for alert in self.alerts.values():
            if alert["key"] == action.alert and alert["scene"] == rt.id and alert["state"] == "open":
                return {"alert": public_alert(alert), "repeated": True}
        # The profile's message speaks of a button ("{device} was pressed"); this call came from the page.
        help_action = action.model_copy(update={
            "severity": "critical", "title": HELP_TITLE, "message": "The resident asked for help at {time}."})
        entry: dict[str, Any] = {}
        self._raise_alert(rt, help_action, TriggerContext("resident", now, detail={"by": who}), entry)
        alert_id = entry["id"]
        log_["calls"].append({"t": now, "by": who, "alert": alert_id})
        self._save_resident_log()
        self._urgent()
        return {"alert": public_alert(self.alerts[alert_id]), "repeated": False}

    def schedule_today(self) -> list[dict[str, Any]]:
        """What the enabled scenes expect or do at a set time today, local day, in time order: a time
        trigger's ``at``, and the end of an absence trigger's window (the morning check's "up by 09:30").
        Each with the scene, its alert keys and report kinds, and whether the time has passed."""
        now = self.clock.time()
        today = self._local(now).date()
        items: list[dict[str, Any]] = []
        for sid, rt in sorted(self.scenes.items()):
            if not rt.enabled:
                continue
            alerts = [a.alert for a in rt.scene.actions if isinstance(a, AlertAction)]
            reports = [a.report for a in rt.scene.actions if isinstance(a, ReportAction)]
            for trigger in rt.scene.triggers:
                if isinstance(trigger, TimeTrigger):
                    if trigger.weekdays and WEEKDAY_NAMES[today.weekday()] not in trigger.weekdays:
                        continue
                    due, kind = self._at_local(today, trigger.at), "at"
                elif isinstance(trigger, AbsenceTrigger) and trigger.window is not None and trigger.for_ is None:
                    due, kind = self._window_bounds(trigger.window, today)[1], "by"
                else:
                    continue
                items.append({"t": iso_utc(due), "time": self._local(due).strftime("%H:%M"), "kind": kind,
                              "scene": sid, "name": rt.scene.name, "alerts": alerts, "reports": reports,
                              "past": due <= now})
        return sorted(items, key=lambda item: (item["t"], item["scene"]))

    # ------------------------------------------------------------------ reports

    def _report(self, rt: SceneRuntime, action: ReportAction, entry: dict[str, Any]) -> None:
        from gateway.scenes.notify import Notification

        now = self.clock.time()
        day = self.day if self.day.get("date") == self._local(now).date().isoformat() else {}
        data: dict[str, Any]
        if action.report == "energy":
            per_device: dict[str, float] = {}
            for device_id, start in day.get("energy_start", {}).items():
                device = self.hub.devices.get(device_id)
                current = self._first_value(device, "energy_meter", "kwh") if device else None
                if isinstance(current, (int, float)) and isinstance(start, (int, float)) and current >= start:
                    per_device[device_id] = round(current - start, 3)
            total = round(sum(per_device.values()), 3)
            data = {"kwh": per_device, "total_kwh": total}
            lines: list[tuple[str, dict[str, Any]]] = [("summary.energy_total", {"kwh": f"{total:.2f}"})]
            if action.price_per_kwh is not None:
                data["cost"] = round(total * action.price_per_kwh, 2)
                data["currency"] = action.currency
                lines[0] = ("summary.energy_total_cost", {"kwh": f"{total:.2f}", "cost": f"{data['cost']:.2f}",
                                                          "currency": action.currency})
            for device_id, kwh in sorted(per_device.items(), key=lambda kv: -kv[1]):
                device = self.hub.devices.get(device_id)
                lines.append(("summary.energy_device", {"name": device.name if device else device_id,
                                                        "kwh": f"{kwh:.2f}"}))
        else:
            first = day.get("first_activity")
            doors = day.get("door_events", [])
            night_activity: list[float] = []
            if action.night is not None:
                night = action.night
                doors = [e for e in doors if night.contains(self._minute_of_day(e[0]))]
                activity = day.get("activity")
                if activity is not None:
                    # The first activity is the first after the night (a 03:30 trip to the bathroom is not
                    # getting up); what happened in the night is counted on its own line.
                    night_activity = [t for t in activity if night.contains(self._minute_of_day(t))]
                    first = next((t for t in activity if not night.contains(self._minute_of_day(t))
                                  and self._minute_of_day(t) >= night.before), None)
            if action.doors is not None:
                wanted = {d.id for d in self.select(action.doors)}
                doors = [e for e in doors if e[1] in wanted]
            data = {"first_activity": iso_utc(first) if first else None,
                    "room_transitions": day.get("transitions", 0), "night_door_events": len(doors),
                    "night_activity": len(night_activity)}
            lines = [("summary.first_activity", {"time": self._local(first).strftime("%H:%M")}) if first
                     else ("summary.no_activity", {}),
                     ("summary.room_moves", {"count": data["room_transitions"]}),
                     ("summary.night_doors", {"count": len(doors)})]
            if action.night is not None:
                times = ", ".join(self._local(t).strftime("%H:%M") for t in night_activity[:5])
                count = len(night_activity)
                if not times:
                    lines.append(("summary.night_movement", {"count": count}))
                elif count > 5:
                    lines.append(("summary.night_movement_more", {"count": count, "times": times, "more": count - 5}))
                else:
                    lines.append(("summary.night_movement_times", {"count": count, "times": times}))
            outings = [e for e in self.occupancy_log if e["state"] == "away" and e["t"][:10] == day.get("date")]
            if outings:
                lines.append(("summary.outings", {"count": len(outings)}))
                data["outings"] = len(outings)
        for target in action.to:
            # Each contact reads the summary in their own language ([notify.<name>] language).
            language = self._language_of(target)
            message = "\n".join(translate(language, key, **values) for key, values in lines)
            title_key = f"summary.title.{action.report}"
            title = translate(language, title_key) if title_key in catalogue(DEFAULT_LANGUAGE) \
                else f"Daily {action.report} summary"
            self._tell(target, Notification(
                id=f"{rt.id}-{next(self._ids)}", t=now, title=title, message=message,
                severity="info", scene=rt.id, alert_id=None, data=data))
        entry.update(report=action.report, data=data, acted=True)


def _trigger_level(trigger: StateTrigger, value: Any) -> bool:
    """Whether ``value`` is where the trigger wants it (``to``, ``above``, ``below``)."""
    if value is None:
        return False
    if trigger.to is not None and not _same(value, trigger.to):
        return False
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if trigger.above is not None and not (numeric and value > trigger.above):
        return False
    return not (trigger.below is not None and not (numeric and value < trigger.below))


_PRIVATE_ALERT_KEYS = frozenset({"notify", "max_notifications", "reminders", "final_notice", "step", "resolve_key",
                                 "resolve_when"})


def public_alert(alert: dict[str, Any]) -> dict[str, Any]:
    """The API form of an alert: times in ISO-8601, and its escalation policy."""
    out = {k: v for k, v in alert.items() if k not in _PRIVATE_ALERT_KEYS}
    for key in ("raised_at", "acknowledged_at", "resolved_at", "unanswered_at", "next_escalation_at"):
        if out.get(key) is not None:
            out[key] = iso_utc(out[key])
    out["notifications"] = [{"t": iso_utc(n["t"]), "target": n["target"], "status": n.get("status", "pending"),
                             "kind": n.get("kind", "alert"), **({"error": n["error"]} if n.get("error") else {}),
                             **({"why": n["why"]} if n.get("why") else {}),
                             **({"deliveries": n["deliveries"]} if n.get("deliveries") else {})}
                            for n in alert["notifications"]]
    out["policy"] = {"contacts": list(alert.get("notify", ())), "escalate_after_s": alert.get("escalate_after_s"),
                     "reminders": alert.get("reminders", 0), "final_notice": alert.get("final_notice", True),
                     "resolves_itself": bool(alert.get("resolve_key") or alert.get("resolve_when"))}
    return out


def _upgrade_alert(alert: dict[str, Any]) -> None:
    """An alert stored by an older version: its state in the open -> acknowledged -> resolved lifecycle."""
    if alert.get("state") in ("cleared", "closed"):
        alert["state"] = "resolved"
        alert.setdefault("resolved_at", alert.get("closed_at"))
        alert.setdefault("resolution", "cleared")
    elif alert.get("state") == "open" and alert.get("acknowledged_at") is not None:
        alert["state"] = "acknowledged"
    alert.pop("closed_at", None)
    for key in ("resolved_at", "resolved_by", "resolution", "unanswered_at", "resolve_key"):
        alert.setdefault(key, None)
    alert.setdefault("step", len(alert.get("notifications", ())))


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return "unknown" if value is None else str(value)


def _describe_level(trigger: StateTrigger) -> str:
    parts = []
    if trigger.to is not None:
        parts.append(f"= {_format(trigger.to)}")
    if trigger.above is not None:
        parts.append(f"> {trigger.above:g}")
    if trigger.below is not None:
        parts.append(f"< {trigger.below:g}")
    return f"{trigger.attribute} {' and '.join(parts) or 'changes'}"


def _human_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours and minutes:
        return f"{hours} h {minutes} min"
    if hours:
        return f"{hours} h"
    return f"{minutes} min"

