"""4S LiPo model: linear discharge over a configured flight time."""
from __future__ import annotations

from dataclasses import dataclass

CELLS = 4
V_FULL = 16.8
V_EMPTY = 13.6
CURRENT_FLIGHT_A = 15.0
CURRENT_GROUND_A = 0.5
LOW_PCT = 30
CRITICAL_PCT = 15


@dataclass
class BatteryEvent:
    level: str  # "low" | "critical" | "empty"
    percent: int


class Battery:
    def __init__(self, flight_minutes: float, capacity_mah: float = 5200.0) -> None:
        self.flight_seconds = max(1.0, flight_minutes * 60.0)
        self.capacity_mah = capacity_mah
        self.fraction = 1.0
        self.current_a = CURRENT_GROUND_A
        self.consumed_mah = 0.0
        self.consumed_wh = 0.0
        self._announced: set[str] = set()

    def step(self, dt: float, flying: bool, load: float = 1.0) -> list[BatteryEvent]:
        """Advance ``dt`` s. ``load`` ~1 in hover/cruise, higher when climbing."""
        events: list[BatteryEvent] = []
        if flying:
            self.current_a = CURRENT_FLIGHT_A * load
            self.fraction = max(0.0, self.fraction - dt * load / self.flight_seconds)
        else:
            self.current_a = CURRENT_GROUND_A
        # consumption is reported against BATT_CAPACITY, consistent with remaining %
        self.consumed_mah = (1.0 - self.fraction) * self.capacity_mah
        self.consumed_wh += self.voltage * self.current_a * dt / 3600.0
        pct = self.percent
        for level, threshold in (("low", LOW_PCT), ("critical", CRITICAL_PCT), ("empty", 0)):
            if level not in self._announced and (pct < threshold or (threshold == 0 and self.fraction <= 0.0)):
                self._announced.add(level)
                events.append(BatteryEvent(level, pct))
        return events

    @property
    def percent(self) -> int:
        return int(round(self.fraction * 100.0))

    @property
    def voltage(self) -> float:
        sag = 0.25 * self.current_a / CURRENT_FLIGHT_A
        return V_EMPTY + (V_FULL - V_EMPTY) * self.fraction - sag

    @property
    def voltage_mv(self) -> int:
        return int(round(self.voltage * 1000.0))

    @property
    def current_ca(self) -> int:
        return int(round(self.current_a * 100.0))

    @property
    def critical(self) -> bool:
        return self.percent < CRITICAL_PCT

    def seconds_remaining(self) -> int:
        return int(self.fraction * self.flight_seconds)
