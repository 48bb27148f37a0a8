"""The kit's own health: how long its batteries last, what is online, what video is live.

A bus tap keeps, per `power` device, the state-of-charge readings of the
last `WINDOW_S` (bounded) and fits a straight line through them: the slope
is the discharge trend, and SOC / trend the time left. The summary goes to
`GET /api/v1/health` and the retained gateway status. When the time left
falls below `critical_h` a `critical` event says so, once; it clears (an
`info` event) only above `critical_h × CLEAR_FACTOR`, so it does not flap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.bus import Bus
from gateway.model import Event, Telemetry
from gateway.registry import DeviceRegistry

WINDOW_S = 1800.0  # the trend looks at the last 30 minutes
MIN_SPAN_S = 60.0  # … and needs readings over at least a minute
MAX_SAMPLES = 720  # per device (one every 2.5 s over the window); older ones go first
REFIT_S = 5.0  # the trend is refitted at most this often (sample time)
CLEAR_FACTOR = 1.5
DEFAULT_CRITICAL_H = 2.0


@dataclass
class _Battery:
    samples: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))  # (t s, soc %)
    alarmed: bool = False
    _trend: tuple[float, float | None] | None = None  # (sample time it was fitted at, slope)

    def add(self, t: float, soc: float) -> None:
        self.samples.append((t, soc))
        while self.samples and t - self.samples[0][0] > WINDOW_S:
            self.samples.popleft()

    def trend_pct_per_h(self) -> float | None:
        """The least-squares slope of SOC over time (negative while discharging), or None if too little data.

        Refitted at most every REFIT_S of sample time: a unit polled at 10 Hz would otherwise pay a fit over
        up to MAX_SAMPLES readings per message, for a figure that moves over minutes."""
        if not self.samples:
            return None
        now = self.samples[-1][0]
        if self._trend is None or not 0 <= now - self._trend[0] < REFIT_S:
            self._trend = (now, self._fit())
        return self._trend[1]

    def _fit(self) -> float | None:
        n = len(self.samples)
        if n < 3 or self.samples[-1][0] - self.samples[0][0] < MIN_SPAN_S:
            return None
        mt = sum(t for t, _ in self.samples) / n
        ms = sum(s for _, s in self.samples) / n
        var = sum((t - mt) ** 2 for t, _ in self.samples)
        if var == 0:
            return None
        return sum((t - mt) * (s - ms) for t, s in self.samples) / var * 3600.0

    def time_left_h(self) -> float | None:
        trend = self.trend_pct_per_h()
        if trend is None or trend >= -0.05 or not self.samples:  # charging or flat: no end in sight
            return None
        return self.samples[-1][1] / -trend


class KitHealth:
    def __init__(self, bus: Bus, registry: DeviceRegistry, streams_live: Callable[[], tuple[int, int]],
                 critical_h: float = DEFAULT_CRITICAL_H) -> None:
        self.bus = bus
        self.registry = registry
        self.streams_live = streams_live
        self.critical_h = critical_h
        self.batteries: dict[str, _Battery] = {}
        bus.add_tap(self._tap)

    def _tap(self, msg: object) -> list[Any] | None:
        if not isinstance(msg, Telemetry) or "soc_pct" not in msg.values:
            return None
        dev = self.registry.get(msg.device)
        if dev is None or dev.kind != "power":
            return None
        battery = self.batteries.setdefault(msg.device, _Battery())
        battery.add(msg.ts / 1000.0, float(msg.values["soc_pct"]))
        left = battery.time_left_h()
        if left is not None and left < self.critical_h and not battery.alarmed:
            battery.alarmed = True
            return [Event(msg.device, msg.ts, "battery_time_left", "critical",
                          f"{dev.name}: about {left:.1f} h of battery left at the present drain "
                          f"({battery.samples[-1][1]:.0f} %, {battery.trend_pct_per_h():.1f} %/h)",
                          {"time_left_h": round(left, 2)})]
        if battery.alarmed and (left is None or left > self.critical_h * CLEAR_FACTOR):
            battery.alarmed = False
            return [Event(msg.device, msg.ts, "battery_time_left", "info",
                          f"{dev.name}: battery no longer running out soon", {"time_left_h": left})]
        return None

    def summary(self) -> dict[str, Any]:
        batteries = {}
        for dev_id, b in self.batteries.items():
            trend, left = b.trend_pct_per_h(), b.time_left_h()
            batteries[dev_id] = {"soc_pct": b.samples[-1][1] if b.samples else None,
                                 "trend_pct_per_h": None if trend is None else round(trend, 2),
                                 "time_left_h": None if left is None else round(left, 2)}
        lefts = [v["time_left_h"] for v in batteries.values() if v["time_left_h"] is not None]
        online, total = self.registry.counts()
        live, streams = self.streams_live()
        return {"battery_time_left_h": min(lefts) if lefts else None, "batteries": batteries,
                "devices_online": online, "devices_total": total, "streams_live": live, "streams_total": streams}
