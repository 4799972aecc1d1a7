"""The simulated house in motion: device states, the resident's steps, loads, room temperatures, and
the Zigbee2MQTT bridge that answers ``<name>/set`` — as a discrete-event model.

Pure: no I/O and no clock of its own. :meth:`HouseModel.advance_to` runs every event due up to a time
and returns the MQTT messages the house published meanwhile, each stamped with its own time; the live
runner (:mod:`gateway.sim.live`) publishes them as time passes on the injected clock, the capture
writer (:mod:`gateway.sim.capture`) writes them to a file without waiting at all.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any, NamedTuple

import orjson

from gateway.sim.bthome import bthome_v2_frame, theengs_message
from gateway.sim.house import BASE_TOPIC, House, SimDevice
from gateway.sim.loads import Kettle, Load, Tv, WashingMachine, load_for
from gateway.sim.resident import OUT, Outing, Step, day_dates, outings_of, plan_day

__all__ = ["HouseModel", "Message"]


class Message(NamedTuple):
    t: float
    topic: str
    payload: bytes
    retain: bool = False


# Aqara RTCGQ11LM: reports occupancy false 90 s after the last movement it saw (Zigbee2MQTT's default
# occupancy_timeout for it).
OCCUPANCY_TIMEOUT_S = 90.0
# Metering plugs are read every 30 s and report when the reading moved (Zigbee reporting on change),
# and at least every 5 minutes.
PLUG_READ_S = 30.0
PLUG_HEARTBEAT_S = 300.0
# Room temperatures move slowly: recomputed, and the TRV and BLE thermometers report, every 5 minutes.
CLIMATE_TICK_S = 300.0
# Leaving: the hall's PIR sees her, the front door opens this long after and closes again. Coming
# home: the door opens, the hall's PIR sees her as she steps in, the door closes behind her.
LEAVE_DOOR_OPEN_S, LEAVE_DOOR_CLOSED_S = 15.0, 40.0
RETURN_MOTION_S, RETURN_DOOR_CLOSED_S = 8.0, 25.0
# Lights come on when someone enters a room before this hour or after that one (no sun model needed).
DARK_BEFORE_H, DARK_AFTER_H = 8, 18
_PLUG_ROLES = frozenset({"tv", "fridge", "kettle", "washer", "appliance"})


def _lqi(rng: random.Random) -> int:
    return rng.randint(60, 200)


class HouseModel:
    """``HouseModel(house, start=epoch, tz=zone, seed=1)``; :meth:`start` returns the bridge's first
    messages (bridge state, ``bridge/devices``, availability, every device's state).

    ``outings``: local dates whose outings are scripted (an empty list: she stays home) instead of
    drawn. :attr:`outings` lists the outings of every day planned so far (a day is planned at its
    midnight, the first one at start), from the first that leaves after start."""

    def __init__(self, house: House, *, start: float, tz: tzinfo, seed: int = 0, bad_morning_day: int | None = 1,
                 narrate: Callable[[float, str], None] | None = None,
                 outings: Mapping[date, Sequence[Outing]] | None = None) -> None:
        self.house = house
        self.tz = tz
        self.seed = seed
        self.bad_morning_day = bad_morning_day
        self.narrate = narrate
        self.scripted_outings = dict(outings or {})
        self.outings: list[Outing] = []
        self.now = start
        self.rng = random.Random(seed)
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._out: list[Message] = []
        self.states: dict[str, dict[str, Any]] = {}
        self.loads: dict[str, Load] = {}
        self.temperatures: dict[str, float] = {}
        self.humidity: dict[str, float] = {}
        self.window_open: dict[str, bool] = {}
        self.resident_room: str | None = "bedroom" if house.resident else None
        self.asleep = house.resident
        self.motion_log: list[tuple[float, str]] = []  # (t, room): every movement the sensors saw
        self._last_motion: dict[str, float] = {}
        self._last_report: dict[str, tuple[float, float]] = {}  # plug name -> (t, watts)
        self._energy_t: dict[str, float] = {}
        self._packet_ids: dict[str, int] = {}
        self._day0 = day_dates(start, tz)[0]
        self._started = False

    # ------------------------------------------------------------------ public

    def start(self) -> list[Message]:
        if self._started:
            raise RuntimeError("the house model has started already")
        self._started = True
        now = self.now
        self._emit(f"{BASE_TOPIC}/bridge/state", {"state": "online"}, retain=True)
        self._emit(f"{BASE_TOPIC}/bridge/devices", self.house.bridge_devices(), retain=True)
        for device in self.house.devices:
            if not device.is_ble:
                self._emit(f"{device.topic}/availability", {"state": "online"}, retain=True)
        self._init_climate()
        for offset, device in enumerate(self.house.devices):
            self._init_device(device)
            if device.role in _PLUG_ROLES:
                # Staggered, as real devices are: not every plug reports in the same instant.
                self._every(now + (offset % 30) + 1.0, PLUG_READ_S, lambda d=device: self._read_plug(d))
        self._every(now + CLIMATE_TICK_S, CLIMATE_TICK_S, self._climate_tick)
        if self.house.resident:
            self._plan(0)
        return self._take()

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def advance_to(self, t: float) -> list[Message]:
        """Run every event due up to ``t`` (in order); the messages published meanwhile."""
        while self._queue and self._queue[0][0] <= t:
            due, _, action = heapq.heappop(self._queue)
            self.now = max(self.now, due)
            action()
        self.now = max(self.now, t)
        return self._take()

    def handle_set(self, name: str, payload: Any, t: float) -> list[Message]:
        """The bridge's answer to ``<base>/<name>/set``: apply what it can, publish the new state."""
        self.advance_to(t)
        device = self._device(name)
        if device is None or not isinstance(payload, dict) or device.is_ble:
            return self._take()
        state = self.states[name]
        if device.kind == "light":
            self._set_light(device, payload)
        elif device.role in _PLUG_ROLES:
            wanted = _on_off(payload.get("state"), state.get("state") == "ON")
            if wanted is not None:
                self._switch_plug(device, wanted, publish=False)
        elif device.kind == "thermostat":
            setpoint = payload.get("occupied_heating_setpoint")
            if isinstance(setpoint, (int, float)) and not isinstance(setpoint, bool):
                state["occupied_heating_setpoint"] = round(min(30.0, max(7.0, float(setpoint))) * 2) / 2
            mode = payload.get("system_mode")
            if mode in ("off", "heat", "auto"):
                state["system_mode"] = mode
            self._update_trv(device)
        self._publish_state(device)
        return self._take()

    def handle_get(self, name: str, t: float) -> list[Message]:
        self.advance_to(t)
        device = self._device(name)
        if device is not None and not device.is_ble:
            self._publish_state(device)
        return self._take()

    def press_panic(self, t: float) -> list[Message]:
        """Someone presses the panic button (for the UI and tests; the routine never does)."""
        self.advance_to(t)
        for device in self.house.find("panic"):
            self._emit(device.topic, {**self.states[device.name], "action": "single"})
        return self._take()

    def day_index(self, t: float) -> int:
        return (datetime.fromtimestamp(t, self.tz).date() - self._day0).days

    # ------------------------------------------------------------------ scheduling

    def _at(self, t: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (t, next(self._seq), action))

    def _every(self, first: float, interval_s: float, action: Callable[[], None]) -> None:
        def tick() -> None:
            action()
            self._at(self.now + interval_s, tick)

        self._at(first, tick)

    def _take(self) -> list[Message]:
        out, self._out = self._out, []
        return out

    def _emit(self, topic: str, payload: Any, retain: bool = False) -> None:
        self._out.append(Message(self.now, topic, orjson.dumps(payload), retain))

    def _device(self, name: str) -> SimDevice | None:
        try:
            return self.house.device(name)
        except KeyError:
            return None

    # ------------------------------------------------------------------ devices

    def _init_device(self, device: SimDevice) -> None:
        rng = self.rng
        if device.is_ble:
            self._packet_ids[device.name] = rng.randrange(256)
            self._advertise(device)
            return
        battery = {"battery": rng.randint(70, 100), "voltage": rng.randint(2950, 3100)}
        if device.kind == "light":
            state: dict[str, Any] = {"state": "OFF", "brightness": 200, "color_temp": 300, "linkquality": _lqi(rng)}
        elif device.kind == "motion":
            state = {"occupancy": False, "illuminance": 50, "illuminance_lux": 50, "device_temperature": 21,
                     "power_outage_count": 3, "linkquality": _lqi(rng), **battery}
        elif device.kind == "contact":
            state = {"contact": True, "power_outage_count": 1, "linkquality": _lqi(rng), **battery}
        elif device.kind == "thermostat":
            state = {"occupied_heating_setpoint": 21.0, "system_mode": "heat", "battery": battery["battery"]}
        elif device.kind == "button":
            state = {"linkquality": _lqi(rng), **battery}
        else:  # plugs
            state = {"state": "ON", "power": 0.0, "energy": round(rng.uniform(5, 300), 2), "linkquality": _lqi(rng)}
            if device.kind == "metering_plug":
                state.update(voltage=230, current=0.0)
            self.loads[device.name] = load_for(device.role, random.Random(f"{self.seed}:{device.name}"), self.now)
            self._energy_t[device.name] = self.now
        self.states[device.name] = state
        if device.kind == "thermostat":
            self._update_trv(device)
        elif device.role in _PLUG_ROLES:
            self._read_plug(device, force=True)
            return
        self._publish_state(device)

    def _publish_state(self, device: SimDevice) -> None:
        self._emit(device.topic, self.states[device.name])

    def _set_light(self, device: SimDevice, payload: dict[str, Any]) -> None:
        state = self.states[device.name]
        brightness = payload.get("brightness")
        if isinstance(brightness, (int, float)) and not isinstance(brightness, bool):
            brightness = int(min(254, max(0, brightness)))
            if brightness == 0:
                state["state"] = "OFF"
            else:
                state["brightness"] = brightness
                state["state"] = "ON"
        wanted = _on_off(payload.get("state"), state["state"] == "ON")
        if wanted is not None:
            state["state"] = "ON" if wanted else "OFF"
        color_temp = payload.get("color_temp")
        if isinstance(color_temp, (int, float)) and not isinstance(color_temp, bool):
            state["color_temp"] = int(min(370, max(153, color_temp)))

    def _switch_light(self, room: str, on: bool) -> None:
        for device in self.house.find("light", room):
            state = self.states[device.name]
            if (state["state"] == "ON") == on:
                continue
            state["state"] = "ON" if on else "OFF"
            if on:
                hour = datetime.fromtimestamp(self.now, self.tz).hour
                evening = hour >= 20 or hour < 6
                state["brightness"] = 60 if evening else 200
                state["color_temp"] = 370 if evening else 250
            self._publish_state(device)

    def _switch_plug(self, device: SimDevice, on: bool, *, publish: bool = True) -> None:
        state = self.states[device.name]
        self._integrate_energy(device)
        state["state"] = "ON" if on else "OFF"
        self.loads[device.name].relay_changed(on, self.now)
        self._read_plug(device, force=True, publish=publish)

    def _integrate_energy(self, device: SimDevice) -> None:
        state = self.states[device.name]
        since = self._energy_t.get(device.name, self.now)
        state["energy"] = round(state["energy"] + state["power"] * (self.now - since) / 3.6e6, 3)
        self._energy_t[device.name] = self.now

    def _read_plug(self, device: SimDevice, *, force: bool = False, publish: bool = True) -> None:
        state = self.states[device.name]
        self._integrate_energy(device)
        watts = self.loads[device.name].watts(self.now) if state["state"] == "ON" else 0.0
        state["power"] = watts
        if device.kind == "metering_plug":
            state["voltage"] = round(self.rng.uniform(228, 234))
            state["current"] = round(watts / state["voltage"], 2)
        last_t, last_w = self._last_report.get(device.name, (-math.inf, math.nan))
        moved = not (abs(watts - last_w) < max(1.0, 0.1 * abs(last_w)))
        if force or moved or self.now - last_t >= PLUG_HEARTBEAT_S:
            self._last_report[device.name] = (self.now, watts)
            if publish:
                self._publish_state(device)

    # ------------------------------------------------------------------ climate

    def _outdoor_celsius(self) -> float:
        local = datetime.fromtimestamp(self.now, self.tz)
        hour = local.hour + local.minute / 60
        return 7.0 + 5.0 * math.sin(2 * math.pi * (hour - 9) / 24)

    def _init_climate(self) -> None:
        # In the house's order, not a set's: the climate tick draws random numbers room by room, and a
        # set's order changes with the interpreter's string hashing (the same seed gave other captures).
        rooms = dict.fromkeys(self.house.rooms)
        base = {"living_room": 20.5, "bedroom": 19.0, "bathroom": 22.0, "kitchen": 20.0, "hall": 18.5}
        for room in rooms:
            self.temperatures[room] = base.get(room, 20.0)
            self.humidity[room] = 50.0
            self.window_open[room] = False
        self.temperatures["outside"] = self._outdoor_celsius()
        self.humidity["outside"] = 75.0

    def _climate_tick(self) -> None:
        rng = self.rng
        outside = self.temperatures["outside"] = self._outdoor_celsius() + rng.uniform(-0.2, 0.2)
        self.humidity["outside"] = min(99.0, max(40.0, self.humidity["outside"] + rng.uniform(-2, 2)))
        heated = {d.room: d for d in self.house.find("thermostat")}
        for room in self.temperatures:
            if room == "outside":
                continue
            t = self.temperatures[room]
            if self.window_open.get(room):
                t += (outside - t) * 0.08  # airing: a few degrees in ten minutes
            elif room in heated:
                state = self.states[heated[room].name]
                heating = state["system_mode"] != "off" and state["occupied_heating_setpoint"] > t + 0.1
                t += 0.12 if heating else (outside - t) * 0.004
            else:
                rest = {"bathroom": 22.0, "bedroom": 19.0}.get(room, 20.0)
                t += (rest - t) * 0.05
            self.temperatures[room] = round(t + rng.uniform(-0.03, 0.03), 2)
            self.humidity[room] = round(min(95.0, max(30.0, self.humidity[room] + (50 - self.humidity[room]) * 0.1
                                                      + rng.uniform(-1, 1))), 1)
        for device in heated.values():
            self._update_trv(device)
            self._publish_state(device)
        for device in self.house.devices:
            if device.is_ble:
                self._advertise(device)

    def _update_trv(self, device: SimDevice) -> None:
        state = self.states[device.name]
        local = self.temperatures.get(device.room, 20.0)
        demand = 0.0 if state["system_mode"] == "off" else min(100.0, max(0.0, (state["occupied_heating_setpoint"]
                                                                               - local) * 40))
        state["local_temperature"] = round(local, 1)
        state["pi_heating_demand"] = round(demand)
        state["running_state"] = "heat" if demand > 0 else "idle"

    def _advertise(self, device: SimDevice) -> None:
        packet = self._packet_ids[device.name] = (self._packet_ids[device.name] + 1) % 256
        frame = bthome_v2_frame(packet_id=packet, celsius=self.temperatures.get(device.room, 20.0),
                                humidity_percent=self.humidity.get(device.room, 50.0), battery_percent=87,
                                battery_volts=2.95)
        self._emit(device.topic, theengs_message(device.address, device.name, self.rng.randint(-90, -55), frame))

    # ------------------------------------------------------------------ the resident

    def _plan(self, day_index: int) -> None:
        day: date = self._day0 + timedelta(days=day_index)
        bad = self.bad_morning_day is not None and day_index == self.bad_morning_day
        steps = plan_day(day, day_index, self.tz, seed=self.seed, bad_morning=bad,
                         outings=self.scripted_outings.get(day))
        self.outings.extend(o for o in outings_of(steps) if o.leaves >= self.now)  # not those before start
        for step in steps:
            if step.t >= self.now:
                self._at(step.t, lambda s=step: self._do(s))
        next_midnight = datetime.combine(day + timedelta(days=1), time(0), self.tz).timestamp()
        self._at(next_midnight, lambda: self._plan(day_index + 1))

    def _say(self, text: str) -> None:
        if text and self.narrate is not None:
            self.narrate(self.now, text)

    def _dark(self) -> bool:
        hour = datetime.fromtimestamp(self.now, self.tz).hour
        return hour < DARK_BEFORE_H or hour >= DARK_AFTER_H

    def _do(self, step: Step) -> None:
        action, room = step.action, step.room
        self._say(step.note)
        if action == "enter" and room is not None:
            old = self.resident_room
            self.asleep = False
            self.resident_room = room
            if old not in (None, room) and self.rng.random() < 0.7:
                self._switch_light(old, False)  # sometimes forgotten: the energy-saving profile's job
            if room == "bathroom" or self._dark():
                self._switch_light(room, True)
            if room == "bathroom" and step.note.startswith("washes"):
                self.humidity["bathroom"] = 80.0
                self.temperatures["bathroom"] += 1.0
            self._motion(room)
        elif action == "pulse" and room is not None:
            self._motion(room)
        elif action == "sleep":
            self.asleep = True
            self._switch_light(room or "bedroom", False)
        elif action == "leave_house":
            # She puts out every light on her way (a forgotten one would burn all the time she is out),
            # is seen in the hall, and the door closes behind her: from then on, nothing moves inside.
            for light_room in self.house.rooms:
                self._switch_light(light_room, False)
            self.asleep = False
            self.resident_room = OUT
            self._motion("hall")
            self._at(self.now + LEAVE_DOOR_OPEN_S, lambda: self._door(True))
            self._at(self.now + LEAVE_DOOR_CLOSED_S, lambda: self._door(False))
        elif action == "come_home":
            self._door(True)
            self._at(self.now + RETURN_MOTION_S, self._step_in)
            self._at(self.now + RETURN_DOOR_CLOSED_S, lambda: self._door(False))
        elif action == "kettle":
            for device in self.house.find("kettle"):
                self._plug_on_by_hand(device)
                load = self.loads[device.name]
                assert isinstance(load, Kettle)
                off_at = load.boil(self.now)
                self._read_plug(device, force=True)
                self._at(off_at + 1, lambda d=device: self._read_plug(d, force=True))
        elif action in ("tv_on", "tv_off"):
            for device in self.house.find("tv"):
                if action == "tv_on":
                    self._plug_on_by_hand(device)
                load = self.loads[device.name]
                assert isinstance(load, Tv)
                load.on = action == "tv_on"
                self._read_plug(device, force=True)
        elif action in ("window_open", "window_close") and room is not None:
            opened = action == "window_open"
            self.window_open[room] = opened
            for device in self.house.find("window", room):
                self.states[device.name]["contact"] = not opened  # Zigbee2MQTT: contact true = closed
                self._publish_state(device)
        elif action == "laundry":
            for device in self.house.find("washer"):
                load = self.loads[device.name]
                assert isinstance(load, WashingMachine)
                load.load()
                if self.states[device.name]["state"] == "ON":
                    # Switched off at the plug, so that the off-peak scene starts it at night.
                    self._switch_plug(device, False)

    def _step_in(self) -> None:
        self.resident_room = "hall"
        if self._dark():
            self._switch_light("hall", True)
        self._motion("hall")

    @property
    def is_out(self) -> bool:
        """Whether the resident is out of the house now."""
        return self.resident_room == OUT

    def _plug_on_by_hand(self, device: SimDevice) -> None:
        if self.states[device.name]["state"] != "ON":
            self._switch_plug(device, True)  # the button on the plug: Zigbee2MQTT reports the new state

    def _motion(self, room: str) -> None:
        self.motion_log.append((self.now, room))
        self._last_motion[room] = self.now
        for device in self.house.find("motion", room):
            state = self.states[device.name]
            lights_on = any(self.states[d.name]["state"] == "ON" for d in self.house.find("light", room))
            lux = (300 if not self._dark() else 5) + (150 if lights_on else 0) + self.rng.randint(-4, 4)
            state["illuminance"] = state["illuminance_lux"] = max(0, lux)
            if not state["occupancy"]:
                state["occupancy"] = True
                self._publish_state(device)
        self._at(self.now + OCCUPANCY_TIMEOUT_S, lambda: self._motion_timeout(room))

    def _motion_timeout(self, room: str) -> None:
        if self.now - self._last_motion.get(room, -math.inf) < OCCUPANCY_TIMEOUT_S:
            return
        for device in self.house.find("motion", room):
            state = self.states[device.name]
            if state["occupancy"]:
                state["occupancy"] = False
                self._publish_state(device)

    def _door(self, opened: bool) -> None:
        for device in self.house.find("door"):
            self.states[device.name]["contact"] = not opened
            self._publish_state(device)


def _on_off(value: Any, current: bool) -> bool | None:
    if not isinstance(value, str):
        return None
    value = value.upper()
    if value == "TOGGLE":
        return not current
    return {"ON": True, "OFF": False}.get(value)
