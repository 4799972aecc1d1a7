"""Electrical loads behind the simulated metering plugs: what each draws, second by second.

The figures are typical of measured appliances: a modern TV draws ~0.5-1.5 W in standby and 60-120 W
on; a fridge's compressor cycles, ~60-90 W for 15-25 minutes, then almost nothing for 30-50; a kettle
draws ~2 kW for the 2-4 minutes it boils and nothing otherwise; a washing machine heats its water at
~2 kW, washes at 100-250 W, spins at 300-550 W, and idles at ~1 W. Pure: time and randomness are
passed in, so a seeded run is reproducible.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass

__all__ = ["Appliance", "Fridge", "Kettle", "Load", "Tv", "WashingMachine", "load_for"]


class Load(ABC):
    """A load on a plug. ``watts(now)`` is what it draws with the relay on (the plug reports 0 when off)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    @abstractmethod
    def watts(self, now: float) -> float:
        """What the load draws at ``now`` (epoch seconds) with the relay on."""

    def relay_changed(self, on: bool, now: float) -> None:  # noqa: B027 - optional hook, most loads ignore it
        """The plug's relay was switched (by the resident, a scene, the UI)."""


class Tv(Load):
    STANDBY_W = (0.6, 1.2)
    ON_W = (70.0, 95.0)

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.on = False

    def watts(self, now: float) -> float:
        low, high = self.ON_W if self.on else self.STANDBY_W
        return round(self.rng.uniform(low, high), 1)

    def relay_changed(self, on: bool, now: float) -> None:
        if not on:
            self.on = False  # cut power: it comes back in standby


class Fridge(Load):
    """Compressor cycling. The cycle runs whatever the relay does (the fridge keeps its own thermostat)."""

    def __init__(self, rng: random.Random, now: float) -> None:
        super().__init__(rng)
        self.running = rng.random() < 0.35
        self.next_switch = now + rng.uniform(0, 30) * 60
        self.run_w = rng.uniform(60, 90)

    def _advance(self, now: float) -> None:
        while now >= self.next_switch:
            self.running = not self.running
            if self.running:
                self.run_w = self.rng.uniform(60, 90)
                self.next_switch += self.rng.uniform(15, 25) * 60
            else:
                self.next_switch += self.rng.uniform(30, 50) * 60

    def watts(self, now: float) -> float:
        self._advance(now)
        if self.running:
            return round(self.run_w + self.rng.uniform(-3, 3), 1)
        return round(self.rng.uniform(0.0, 1.5), 1)  # controller, and the light when the door opens


class Kettle(Load):
    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.boiling_until = 0.0
        self.boil_w = 2000.0

    def boil(self, now: float) -> float:
        """Switch it on; returns when it will click off."""
        self.boil_w = self.rng.uniform(1850, 2200)
        self.boiling_until = now + self.rng.uniform(150, 240)
        return self.boiling_until

    def watts(self, now: float) -> float:
        return round(self.boil_w + self.rng.uniform(-20, 20), 1) if now < self.boiling_until else 0.0


@dataclass(slots=True)
class _Phase:
    name: str
    minutes: float
    watts: tuple[float, float]


class WashingMachine(Load):
    """Idle at ~1 W until loaded and powered; then one cycle, then idle again."""

    STANDBY_W = (0.8, 1.5)

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.loaded = False
        self.cycle_started: float | None = None
        self.phases: list[_Phase] = []

    def load(self) -> None:
        self.loaded = True

    def relay_changed(self, on: bool, now: float) -> None:
        if on and self.loaded and self.cycle_started is None:
            self.start(now)
        elif not on and self.cycle_started is not None:
            self.cycle_started = None  # power cut mid-cycle: it stops (and stays loaded)

    def start(self, now: float) -> None:
        rng = self.rng
        self.cycle_started = now
        self.phases = [
            _Phase("fill", rng.uniform(3, 6), (8, 15)),
            _Phase("heat", rng.uniform(12, 20), (1900, 2150)),
            _Phase("wash", rng.uniform(40, 60), (100, 250)),
            _Phase("rinse", rng.uniform(12, 18), (80, 200)),
            _Phase("spin", rng.uniform(8, 12), (300, 550)),
        ]

    @property
    def cycle_s(self) -> float:
        return sum(p.minutes for p in self.phases) * 60

    def phase(self, now: float) -> str | None:
        if self.cycle_started is None:
            return None
        elapsed = now - self.cycle_started
        for phase in self.phases:
            if elapsed < phase.minutes * 60:
                return phase.name
            elapsed -= phase.minutes * 60
        self.cycle_started = None
        self.loaded = False
        return None

    def watts(self, now: float) -> float:
        name = self.phase(now)
        if name is None:
            return round(self.rng.uniform(*self.STANDBY_W), 1)
        low, high = next(p.watts for p in self.phases if p.name == name)
        return round(self.rng.uniform(low, high), 1)


class Appliance(Load):
    """A generic load for the scaled benchmark house: a few watts of standby, now and then 20-200 W."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.base = rng.uniform(0.5, 3.0)
        self.active_w = rng.uniform(20, 200)

    def watts(self, now: float) -> float:
        active = self.rng.random() < 0.3
        return round(self.active_w if active else self.base + self.rng.uniform(-0.3, 0.3), 1)


def load_for(role: str, rng: random.Random, now: float) -> Load:
    if role == "tv":
        return Tv(rng)
    if role == "fridge":
        return Fridge(rng, now)
    if role == "kettle":
        return Kettle(rng)
    if role == "washer":
        return WashingMachine(rng)
    return Appliance(rng)
