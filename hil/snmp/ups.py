"""A UPS behind an SNMP network card (`python -m hil.snmp --profile ups`): UPS-MIB (RFC 1628). No SNMP here
but the OIDs of `snapshot()`.

The model: a 24 V lead-acid battery (2 x 12 V, 18 Ah: 432 Wh) behind an inverter feeding a
constant load. On mains the charger refills the battery at `charge_w`; on battery the
state of charge falls at load / inverter efficiency. Values are computed when read, from
the time-scaled clock, so nothing runs in the background.

UPS-MIB objects served (upsMIB = 1.3.6.1.2.1.33; all read-only):

  .1.1.1.0 upsIdentManufacturer, .1.1.2.0 upsIdentModel
  .1.2.1.0 upsBatteryStatus (1 unknown, 2 batteryNormal, 3 batteryLow, 4 batteryDepleted)
  .1.2.2.0 upsSecondsOnBattery, .1.2.3.0 upsEstimatedMinutesRemaining, .1.2.4.0 upsEstimatedChargeRemaining (%)
  .1.2.5.0 upsBatteryVoltage (0.1 V), .1.2.6.0 upsBatteryCurrent (0.1 A, + charging), .1.2.7.0 upsBatteryTemperature (°C)
  .1.3.2.0 upsInputNumLines; .1.3.3.1.{1,2,3}.1 upsInputLineIndex, upsInputFrequency (0.1 Hz), upsInputVoltage (V)
  .1.4.1.0 upsOutputSource (3 normal, 5 battery); .1.4.2.0 upsOutputFrequency; .1.4.3.0 upsOutputNumLines;
  .1.4.4.1.{2,3,4,5}.1 upsOutputVoltage (V), upsOutputCurrent (0.1 A), upsOutputPower (W), upsOutputPercentLoad
  .1.6.1.0 upsAlarmsPresent; .1.6.2.1.{1,2}.N upsAlarmId, upsAlarmDescr (upsAlarmOnBattery .1.6.3.2,
           upsAlarmLowBattery .1.6.3.3)
  .1.9.7.0 upsConfigLowBattTime (minutes: below this the battery is "low")

Traps (upsTraps .2): upsTrapOnBattery (.2.1, with upsEstimatedMinutesRemaining, upsSecondsOnBattery,
upsConfigLowBattTime) when the mains fails, resent every `repeat_s` while on battery (RFC 1628);
upsTrapAlarmEntryAdded (.2.3, upsAlarmId, upsAlarmDescr) when the battery becomes low;
upsTrapAlarmEntryRemoved (.2.4) for upsAlarmOnBattery when the mains returns.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from pysnmp.proto import rfc1902

from .mib import SYS_DESCR, SYS_NAME, SYS_OBJECT_ID, SYS_UPTIME, Oid
from .router import WRAP32

UPS: Oid = (1, 3, 6, 1, 2, 1, 33)
IDENT, BATTERY, INPUT, OUTPUT, ALARM, CONFIG = (UPS + (1, n) for n in (1, 2, 3, 4, 6, 9))
ALARM_ON_BATTERY: Oid = ALARM + (3, 2)
ALARM_LOW_BATTERY: Oid = ALARM + (3, 3)
TRAP_ON_BATTERY: Oid = UPS + (2, 1)
TRAP_ALARM_ADDED: Oid = UPS + (2, 3)
TRAP_ALARM_REMOVED: Oid = UPS + (2, 4)
PRODUCT_OID: Oid = (1, 3, 6, 1, 4, 1, 99999, 2, 2)
NORMAL, LOW, DEPLETED = 2, 3, 4            # upsBatteryStatus
SOURCE_NORMAL, SOURCE_BATTERY = 3, 5       # upsOutputSource
MAX_STEP_S = 10.0


class Ups:
    """Battery, charger, inverter and load, integrated over (scaled) time when read."""

    def __init__(self, time_scale: float = 1.0, name: str = "ups", capacity_wh: float = 432.0, load_w: float = 150.0,
                 charge_w: float = 80.0, soc: float = 100.0, low_batt_min: int = 5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.time_scale = time_scale
        self.name = name
        self.descr = "HIL UPS 1500 VA, network card firmware 1.4 (fieldgw simulator)"
        self.capacity_wh = capacity_wh
        self.load_w = load_w
        self.charge_w = charge_w
        self.soc = soc
        self.low_batt_min = low_batt_min
        self.efficiency = 0.9
        self.nominal_v = 24.0
        self.mains = True
        self.temp_pin: float | None = None
        self._clock = clock
        self.boot = self._t = clock()
        self.on_battery_since: float | None = None
        self.reboots = 0

    # -- time ----------------------------------------------------------------------------------
    def uptime_ticks(self) -> int:
        return int((self._clock() - self.boot) * self.time_scale * 100) % WRAP32

    def update(self) -> None:
        now = self._clock()
        dt = (now - self._t) * self.time_scale
        self._t = now
        while dt > 0:
            step = min(dt, MAX_STEP_S)
            self.soc = min(100.0, max(0.0, self.soc + self.battery_w() * step / 3600.0 / self.capacity_wh * 100.0))
            dt -= step

    # -- physics -------------------------------------------------------------------------------
    def battery_w(self) -> float:
        """Power into the battery (+ charging, - discharging)."""
        if self.mains:
            return self.charge_w if self.soc < 100.0 else 0.0
        return -self.load_w / self.efficiency if self.soc > 0.0 else 0.0

    def battery_v(self) -> float:
        k = self.nominal_v / 12.0
        ocv = k * (11.8 + 0.9 * self.soc / 100.0)
        if self.mains:
            return k * 13.65 if self.soc >= 100.0 else min(k * 14.4, ocv + k * 0.9)
        return max(0.0, ocv - self.load_w / self.efficiency / ocv * 0.05)

    def minutes_left(self) -> int:
        return int(self.soc / 100.0 * self.capacity_wh * self.efficiency / max(1.0, self.load_w) * 60.0)

    def battery_status(self) -> int:
        if self.soc <= 0.0:
            return DEPLETED
        return LOW if self.minutes_left() < self.low_batt_min else NORMAL

    def temp_c(self) -> float:
        if self.temp_pin is not None:
            return self.temp_pin
        return 25.0 + (3.0 if not self.mains else 0.0)

    def seconds_on_battery(self) -> int:
        if self.on_battery_since is None:
            return 0
        return int((self._clock() - self.on_battery_since) * self.time_scale)

    def alarms(self) -> list[Oid]:
        out = [] if self.mains else [ALARM_ON_BATTERY]
        if self.battery_status() != NORMAL:
            out.append(ALARM_LOW_BATTERY)
        return out

    # -- control -------------------------------------------------------------------------------
    def set_mains(self, on: bool) -> bool:
        """Mains present or not; True if it changed."""
        self.update()
        if on == self.mains:
            return False
        self.mains = on
        self.on_battery_since = None if on else self._clock()
        return True

    def values(self) -> dict[str, Any]:
        self.update()
        return {"mains": self.mains, "soc": round(self.soc, 3), "minutes_left": self.minutes_left(),
                "battery_v": round(self.battery_v(), 2), "battery_status": self.battery_status(),
                "temp_c": self.temp_c(), "load_w": self.load_w, "seconds_on_battery": self.seconds_on_battery(),
                "output_source": SOURCE_NORMAL if self.mains else SOURCE_BATTERY}

    def stats(self) -> dict[str, Any]:
        return {"uptime_ticks": self.uptime_ticks(), "reboots": self.reboots, "time_scale": self.time_scale,
                "ups": self.values()}


def snapshot(ups: Ups) -> dict[Oid, Any]:
    """Every instance the UPS's agent serves, with its value now."""
    ups.update()
    i32, g32 = rfc1902.Integer32, rfc1902.Gauge32
    mains = ups.mains
    volts_in = 230 if mains else 0
    out_a = ups.load_w / 230.0
    t: dict[Oid, Any] = {
        SYS_DESCR: rfc1902.OctetString(ups.descr),
        SYS_OBJECT_ID: rfc1902.ObjectIdentifier(PRODUCT_OID),
        SYS_UPTIME: rfc1902.TimeTicks(ups.uptime_ticks()),
        SYS_NAME: rfc1902.OctetString(ups.name),
        IDENT + (1, 0): rfc1902.OctetString("HIL Power"),
        IDENT + (2, 0): rfc1902.OctetString("UPS-1500"),
        BATTERY + (1, 0): i32(ups.battery_status()),
        BATTERY + (2, 0): i32(ups.seconds_on_battery()),
        BATTERY + (3, 0): i32(ups.minutes_left()),
        BATTERY + (4, 0): i32(round(ups.soc)),
        BATTERY + (5, 0): i32(round(ups.battery_v() * 10)),
        BATTERY + (6, 0): i32(round(ups.battery_w() / max(0.1, ups.battery_v()) * 10)),
        BATTERY + (7, 0): i32(round(ups.temp_c())),
        INPUT + (2, 0): i32(1),
        INPUT + (3, 1, 1, 1): i32(1),
        INPUT + (3, 1, 2, 1): i32(500 if mains else 0),
        INPUT + (3, 1, 3, 1): i32(volts_in),
        OUTPUT + (1, 0): i32(SOURCE_NORMAL if mains else SOURCE_BATTERY),
        OUTPUT + (2, 0): i32(500),
        OUTPUT + (3, 0): i32(1),
        OUTPUT + (4, 1, 1, 1): i32(1),
        OUTPUT + (4, 1, 2, 1): i32(230),
        OUTPUT + (4, 1, 3, 1): i32(round(out_a * 10)),
        OUTPUT + (4, 1, 4, 1): i32(round(ups.load_w)),
        OUTPUT + (4, 1, 5, 1): i32(round(ups.load_w / 1050.0 * 100)),   # of 1050 W (1500 VA at PF 0.7)
        CONFIG + (7, 0): i32(ups.low_batt_min),
    }
    alarms = ups.alarms()
    t[ALARM + (1, 0)] = g32(len(alarms))
    for n, descr in enumerate(alarms, start=1):
        t[ALARM + (2, 1, 1, n)] = i32(n)
        t[ALARM + (2, 1, 2, n)] = rfc1902.ObjectIdentifier(descr)
    return t


Trap = Callable[[Oid, list[tuple[Oid, Any]]], None]


async def watch(ups: Ups, trap: Trap, repeat_s: float = 60.0, every_s: float = 0.2) -> None:
    """Send the UPS's traps on its transitions (checked every `every_s`): upsTrapOnBattery when the mains fails
    (again every `repeat_s` while on battery), upsTrapAlarmEntryAdded when the battery becomes low,
    upsTrapAlarmEntryRemoved (upsAlarmOnBattery) when the mains returns."""
    was_mains, was_low, last_on_battery = ups.mains, False, 0.0
    while True:
        await asyncio.sleep(every_s)
        ups.update()
        now = time.monotonic()
        low = ups.battery_status() != NORMAL
        if not ups.mains and (was_mains or now - last_on_battery >= repeat_s):
            trap(TRAP_ON_BATTERY, [(BATTERY + (3, 0), rfc1902.Integer32(ups.minutes_left())),
                                   (BATTERY + (2, 0), rfc1902.Integer32(ups.seconds_on_battery())),
                                   (CONFIG + (7, 0), rfc1902.Integer32(ups.low_batt_min))])
            last_on_battery = now
        if ups.mains and not was_mains:
            trap(TRAP_ALARM_REMOVED, [(ALARM + (2, 1, 1, 1), rfc1902.Integer32(1)),
                                      (ALARM + (2, 1, 2, 1), rfc1902.ObjectIdentifier(ALARM_ON_BATTERY))])
        if low and not was_low:
            trap(TRAP_ALARM_ADDED, [(ALARM + (2, 1, 1, 2), rfc1902.Integer32(2)),
                                    (ALARM + (2, 1, 2, 2), rfc1902.ObjectIdentifier(ALARM_LOW_BATTERY))])
        was_mains, was_low = ups.mains, low
