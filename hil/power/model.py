"""The physics behind the simulated power devices: sun, load, battery, charger.

One `PowerSystem` per Modbus unit (a PV array, an MPPT charger, a battery and a
load); every unit shares one `Clock` (one site, one sun). Nothing runs in the
background: a model is advanced to the clock's time when it is read, in steps
of at most a simulated minute, so the state of charge integrates charge − load
however often (or seldom) a driver polls.

Lead-acid numbers are for a 12 V battery and scale with the system voltage.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

NONE, FLOAT, BOOST, EQUALIZE = 0, 1, 2, 3
STAGES = ("none", "float", "boost", "equalize")
BATTERY_TYPES = ("user", "sealed", "gel", "flooded")
GEL = 2
SUNRISE_H, SUNSET_H = 6.0, 18.0
MPPT_EFFICIENCY = 0.96
R_INTERNAL_12V = 0.01      # ohm, a 12 V 100 Ah battery (× cells in series, ÷ capacity)
MAX_STEP_S = 60.0          # simulated seconds per integration step
MAX_STEPS = 5000           # per read: a long-idle model at a high time scale catches up coarsely
DAY_S = 86400.0


class Clock:
    """Simulated time: `scale` simulated seconds per real second, from `start_hour` on day 0.
    `hold` stops it; `set_hour` jumps (models skip the jump instead of integrating across it)."""

    def __init__(self, start_hour: float, scale: float, now: Callable[[], float] = time.monotonic) -> None:
        self.scale = scale
        self._now = now
        self._real0 = now()
        self._sim0 = start_hour * 3600.0
        self.held = False
        self.epoch = 0

    def seconds(self) -> float:
        if self.held:
            return self._sim0
        return self._sim0 + (self._now() - self._real0) * self.scale

    def hour(self) -> float:
        return (self.seconds() % DAY_S) / 3600.0

    def hold(self, on: bool) -> None:
        if on != self.held:
            self._sim0, self._real0 = self.seconds(), self._now()
            self.held = on

    def set_hour(self, hour: float) -> None:
        now = self.seconds()
        self._sim0, self._real0 = now - now % DAY_S + hour * 3600.0, self._now()
        self.epoch += 1


@dataclass
class Settings:
    """Charger settings (what an EPEVER keeps in holding registers 0x9000–0x900E), volts for the system."""
    battery_type: int = 1              # 0 user, 1 sealed, 2 GEL, 3 flooded
    capacity_ah: int = 100
    temp_comp: float = 3.0             # mV/°C/2V
    ovd_v: float = 16.0                # high (over-) voltage disconnect
    charge_limit_v: float = 15.0
    ov_reconnect_v: float = 15.0
    equalize_v: float = 14.6
    boost_v: float = 14.4
    float_v: float = 13.8
    boost_reconnect_v: float = 13.2
    lv_reconnect_v: float = 12.6
    uv_recover_v: float = 12.2
    uv_warning_v: float = 12.0
    lvd_v: float = 11.1                # low voltage disconnect (load off)
    discharge_limit_v: float = 10.6

    @classmethod
    def for_system(cls, nominal_v: float, capacity_ah: float) -> Settings:
        k = nominal_v / 12.0
        base = cls()
        volts = {f.name: round(getattr(base, f.name) * k, 2) for f in fields(cls) if f.name.endswith("_v")}
        return replace(base, capacity_ah=round(capacity_ah), **volts)

    def problem(self, nominal_v: float) -> str | None:
        """None if these settings are acceptable; else "value" (out of range) or "order" (thresholds inverted)."""
        k = nominal_v / 12.0
        if self.battery_type not in range(len(BATTERY_TYPES)) or not 1 <= self.capacity_ah <= 9999:
            return "value"
        if not 0 <= self.temp_comp <= 9:
            return "value"
        if any(not 9.0 * k <= getattr(self, f.name) <= 17.0 * k for f in fields(self) if f.name.endswith("_v")):
            return "value"
        chains = ((self.ovd_v, self.charge_limit_v, self.equalize_v, self.boost_v, self.float_v, self.boost_reconnect_v),
                  (self.ovd_v, self.ov_reconnect_v), (self.lv_reconnect_v, self.lvd_v, self.discharge_limit_v),
                  (self.uv_recover_v, self.uv_warning_v))
        if any(a < b for chain in chains for a, b in zip(chain, chain[1:])) or self.ovd_v == self.charge_limit_v:
            return "order"
        return None


@dataclass
class SystemConfig:
    nominal_v: float = 12.0
    capacity_ah: float = 100.0
    pv_peak_w: float = 400.0
    load_w: float = 60.0
    soc: float = 80.0
    max_charge_a: float = 40.0


@dataclass
class Values:
    """What the system is doing now, in engineering units (battery current: + charging, − discharging)."""
    hour: float
    night: bool
    pv_v: float
    pv_a: float
    pv_w: float
    battery_v: float
    battery_a: float
    battery_w: float
    charge_a: float
    charge_w: float
    load_v: float
    load_a: float
    load_w: float
    load_on: bool
    temp_c: float
    soc: float
    stage: int
    fault: bool

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "stage_name": STAGES[self.stage]}


def ambient_c(hour: float) -> float:
    """Air temperature: 12 °C at 03:00, 28 °C at 15:00."""
    return 20.0 + 8.0 * math.sin(2 * math.pi * (hour - 9.0) / 24.0)


def sun(hour: float) -> float:
    """Clear-sky irradiance 0..1 by time of day."""
    if not SUNRISE_H < hour < SUNSET_H:
        return 0.0
    return math.sin(math.pi * (hour - SUNRISE_H) / (SUNSET_H - SUNRISE_H)) ** 1.2


class PowerSystem:
    """PV array → MPPT charger → battery → load, integrated over simulated time."""

    def __init__(self, cfg: SystemConfig, clock: Clock, rng: random.Random) -> None:
        self.cfg = cfg
        self.clock = clock
        self.rng = rng
        self.k = cfg.nominal_v / 12.0
        self.settings = Settings.for_system(cfg.nominal_v, cfg.capacity_ah)
        self.soc = cfg.soc
        self.load_w = cfg.load_w
        self.pv_pin: float | None = None
        self.temp_pin: float | None = None
        self.fault = False
        self.load_switch = True
        self._t = clock.seconds()
        self._epoch = clock.epoch
        self._temp = ambient_c(clock.hour())
        self._cloud = 0.9
        self._noise = 0.0
        self._stage = NONE
        self._lvd = False
        self.now = self._instant()

    # -- time -----------------------------------------------------------------------------------
    def update(self) -> Values:
        """Advance to the clock's time; the values now."""
        t = self.clock.seconds()
        if self.clock.epoch != self._epoch:
            self._epoch, self._t = self.clock.epoch, t
        dt = t - self._t
        if dt > 0:
            n = min(MAX_STEPS, math.ceil(dt / MAX_STEP_S))
            for _ in range(n):
                self._step(dt / n)
        return self.refresh()

    def refresh(self) -> Values:
        """Recompute the instantaneous values (after a setting changed) without advancing time."""
        self.now = self._instant()
        self._stage = self.now.stage
        return self.now

    def _step(self, dt: float) -> None:
        v = self._instant()
        self._stage = v.stage
        if v.battery_v < self.settings.lvd_v:
            self._lvd = True
        elif self._lvd and v.battery_v > self.settings.lv_reconnect_v:
            self._lvd = False
        self.soc = min(100.0, max(0.0, self.soc + v.battery_w * dt / 3600.0 / self._capacity_wh() * 100.0))
        hour = (self._t % DAY_S) / 3600.0
        target = ambient_c(hour) + 3.0 * abs(v.battery_a) / self.cfg.max_charge_a
        self._temp += (target - self._temp) * (1 - math.exp(-dt / 7200.0)) + self.rng.gauss(0, 0.02 * math.sqrt(dt / 60))
        self._cloud += (0.9 - self._cloud) * (1 - math.exp(-dt / 1800.0)) + self.rng.gauss(0, 0.05 * math.sqrt(dt / 600))
        self._cloud = min(1.0, max(0.2, self._cloud))
        self._noise = self.rng.gauss(0, 0.03)
        self._t += dt

    def _capacity_wh(self) -> float:
        return max(1, self.settings.capacity_ah) * self.cfg.nominal_v

    # -- physics --------------------------------------------------------------------------------
    def _next_stage(self, available_w: float) -> int:
        if self.fault or available_w < 1.0:
            return NONE
        if (self._stage == FLOAT and self.soc >= 95.0) or self.soc >= 99.5:
            return FLOAT
        deep = self._stage == EQUALIZE or (self._stage == NONE and self.soc < 40.0)
        if self.settings.battery_type != GEL and self.soc < 98.0 and deep:
            return EQUALIZE
        return BOOST

    def _ocv(self) -> float:
        """Resting voltage by state of charge (12.7 V full, 11.8 V at 10 %, falling fast below)."""
        soc = self.soc
        return self.k * (11.8 + 0.9 * soc / 100.0 - 0.8 * max(0.0, (10.0 - soc) / 10.0))

    def _instant(self) -> Values:
        s, k = self.settings, self.k
        hour = (self._t % DAY_S) / 3600.0
        night = sun(hour) == 0.0
        available = self.pv_pin if self.pv_pin is not None else self.cfg.pv_peak_w * sun(hour) * self._cloud
        load_on = self.load_switch and not self._lvd
        load_w = max(0.0, self.load_w * (1 + self._noise)) if load_on else 0.0
        stage = self._next_stage(available)
        ocv = self._ocv()
        charge_w = 0.0
        if stage != NONE:
            charge_w = min(available * MPPT_EFFICIENCY, self.cfg.max_charge_a * ocv)
            if stage == FLOAT or self.soc >= 100.0:   # full: take only what the load uses, plus a trickle
                charge_w = min(charge_w, load_w + 0.003 * self._capacity_wh())
        net_w = charge_w - load_w
        volts = ocv + net_w / ocv * R_INTERNAL_12V * k * 100.0 / max(1, s.capacity_ah)
        if charge_w > 0:
            volts += max(0.0, s.boost_v - 12.9 * k) * max(0.0, (self.soc - 80.0) / 20.0)
            volts = min(volts, {BOOST: s.boost_v, EQUALIZE: s.equalize_v, FLOAT: s.float_v}[stage])
        volts = max(0.1, volts)
        if available < 0.5:
            pv_v = pv_w = 0.0
        else:   # MPP voltage while harvesting, towards open circuit when the charger takes less
            pv_w = charge_w / MPPT_EFFICIENCY
            vmp = k * (17.0 + 1.0 * min(1.0, available / max(1.0, self.cfg.pv_peak_w)))
            voc = k * 21.6
            pv_v = voc - (voc - vmp) * min(1.0, pv_w / available)
        return Values(
            hour=hour, night=night, pv_v=pv_v, pv_a=pv_w / pv_v if pv_v else 0.0, pv_w=pv_w,
            battery_v=volts, battery_a=net_w / volts, battery_w=net_w, charge_a=charge_w / volts, charge_w=charge_w,
            load_v=volts if load_on else 0.0, load_a=load_w / volts, load_w=load_w, load_on=load_on,
            temp_c=self.temp_pin if self.temp_pin is not None else self._temp, soc=self.soc, stage=stage,
            fault=self.fault)
