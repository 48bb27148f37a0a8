"""Alarms from the kit's thresholds, with hysteresis so they do not flap.

Each alarm fires once when its value crosses the threshold and clears (an
`info` event of the same type) only after the value has gone back beyond
the threshold by the hysteresis. Alarms see only values that were read in
this poll: a value missing because a read failed (timeout, CRC error,
exception) leaves the alarm as it is, so a bad read can neither raise nor
clear anything.

Kit options (all optional):

    thresholds:
      battery_low_pct: 30        # warning at or below; null turns the alarm off
      battery_critical_pct: 15   # critical at or below
      over_temp_c: 50            # warning at or above (battery temperature)
      hysteresis: {soc_pct: 5, temp_c: 3}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.model import Event, Severity, now_ms

Loc = tuple[str | int, ...]
LIMITS: dict[str, tuple[float, float]] = {"battery_low_pct": (0, 100), "battery_critical_pct": (0, 100),
                                          "over_temp_c": (-40, 150)}
HYSTERESIS_LIMITS: dict[str, tuple[float, float]] = {"soc_pct": (0, 50), "temp_c": (0, 50)}


@dataclass(frozen=True)
class Thresholds:
    battery_low_pct: float | None = 30.0
    battery_critical_pct: float | None = 15.0
    over_temp_c: float | None = 50.0
    soc_hysteresis_pct: float = 5.0
    temp_hysteresis_c: float = 3.0

    @classmethod
    def from_options(cls, raw: dict[str, Any] | None) -> Thresholds:
        raw = raw or {}
        hyst = raw.get("hysteresis") or {}
        base = cls()
        return cls(battery_low_pct=raw.get("battery_low_pct", base.battery_low_pct),
                   battery_critical_pct=raw.get("battery_critical_pct", base.battery_critical_pct),
                   over_temp_c=raw.get("over_temp_c", base.over_temp_c),
                   soc_hysteresis_pct=hyst.get("soc_pct", base.soc_hysteresis_pct),
                   temp_hysteresis_c=hyst.get("temp_c", base.temp_hysteresis_c))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_thresholds(raw: Any) -> list[tuple[Loc, str]]:
    """Problems with `options.thresholds` (paths below `thresholds`)."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        return [((), "thresholds is a mapping: battery_low_pct, battery_critical_pct, over_temp_c, hysteresis")]
    known = set(LIMITS) | {"hysteresis"}
    out: list[tuple[Loc, str]] = [((k,), f"unknown threshold (known: {', '.join(sorted(known))})")
                                  for k in raw if k not in known]
    for key, (lo, hi) in LIMITS.items():
        v = raw.get(key)
        if v is not None and (not _number(v) or not lo <= v <= hi):
            out.append(((key,), f"a number {lo:g}..{hi:g}, or null to turn this alarm off"))
    low, crit = raw.get("battery_low_pct", 30.0), raw.get("battery_critical_pct", 15.0)
    if _number(low) and _number(crit) and crit >= low:
        out.append((("battery_critical_pct",), f"battery_critical_pct ({crit:g}) must be below battery_low_pct ({low:g})"))
    hyst = raw.get("hysteresis")
    if hyst is not None:
        if not isinstance(hyst, dict):
            out.append((("hysteresis",), "hysteresis is a mapping: soc_pct, temp_c"))
        else:
            for k in hyst:
                if k not in HYSTERESIS_LIMITS:
                    out.append((("hysteresis", k), f"unknown hysteresis (known: {', '.join(HYSTERESIS_LIMITS)})"))
            for key, (lo, hi) in HYSTERESIS_LIMITS.items():
                v = hyst.get(key)
                if v is not None and (not _number(v) or not lo <= v <= hi):
                    out.append((("hysteresis", key), f"a number {lo:g}..{hi:g}"))
    return out


class Alarm:
    """One alarm: active from `trip` on (at or below it when `falling`, else at or above), inactive again
    only once the value is beyond `clear` (strictly past the threshold by the hysteresis)."""

    def __init__(self, type_: str, severity: Severity, quantity: str, trip: float, hysteresis: float,
                 falling: bool, unit: str) -> None:
        self.type = type_
        self.severity: Severity = severity
        self.quantity = quantity
        self.trip = trip
        self.clear = trip + hysteresis if falling else trip - hysteresis
        self.falling = falling
        self.unit = unit
        self.active = False

    def update(self, value: float) -> bool | None:
        """True when the alarm fires, False when it clears, None when nothing changed."""
        if not self.active:
            tripped = value <= self.trip if self.falling else value >= self.trip
            if tripped:
                self.active = True
                return True
            return None
        cleared = value >= self.clear if self.falling else value <= self.clear
        if cleared and value != self.trip:
            self.active = False
            return False
        return None


class Alarms:
    """The alarms of one device, fed each poll's values and status."""

    def __init__(self, device: str, t: Thresholds) -> None:
        self.device = device
        self.alarms: list[Alarm] = []
        if t.battery_low_pct is not None:
            self.alarms.append(Alarm("battery_low", "warning", "soc_pct", t.battery_low_pct, t.soc_hysteresis_pct, True, "%"))
        if t.battery_critical_pct is not None:
            self.alarms.append(Alarm("battery_critical", "critical", "soc_pct", t.battery_critical_pct,
                                     t.soc_hysteresis_pct, True, "%"))
        if t.over_temp_c is not None:
            self.alarms.append(Alarm("over_temperature", "warning", "battery_temp_c", t.over_temp_c,
                                     t.temp_hysteresis_c, False, " °C"))
        self.fault = Alarm("charger_fault", "critical", "charger_fault", 1.0, 1.0, False, "")

    def evaluate(self, values: dict[str, float], status: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        for alarm in self.alarms:
            value = values.get(alarm.quantity)
            if value is None:
                continue
            change = alarm.update(value)
            if change is not None:
                out.append(self._event(alarm, change, value))
        fault = status.get("charger_fault")
        if isinstance(fault, bool):
            change = self.fault.update(1.0 if fault else 0.0)
            if change is not None:
                text = "charger reports a fault" if change else "charger fault cleared"
                out.append(Event(self.device, now_ms(), "charger_fault", "critical" if change else "info", text,
                                 {"active": change, "charger_stage": status.get("charger_stage")}))
        return out

    def _event(self, alarm: Alarm, fired: bool, value: float) -> Event:
        what = {"soc_pct": "battery", "battery_temp_c": "battery temperature"}[alarm.quantity]
        if fired:
            side = "at or below" if alarm.falling else "at or above"
            text = f"{what} {value:g}{alarm.unit}: {side} the {alarm.trip:g}{alarm.unit} threshold"
        else:
            side = "above" if alarm.falling else "below"
            text = f"{what} back to {value:g}{alarm.unit} ({side} {alarm.clear:g}{alarm.unit})"
        extra = {"active": fired, alarm.quantity: value, "threshold": alarm.trip, "clear_at": alarm.clear}
        return Event(self.device, now_ms(), alarm.type, alarm.severity if fired else "info", text, extra)

    def active(self) -> list[str]:
        return [a.type for a in [*self.alarms, self.fault] if a.active]
