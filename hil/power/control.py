"""Control-port commands of the power simulator (added to ControlPort's `stats` and, on RTU, `unplug`).

UNIT at the end is optional: without it a setting applies to every unit.

fault on|off [UNIT]     charger fault (status D1 + D4 "PV input short"): charging stops
soc PERCENT [UNIT]      set the state of charge (it integrates on from there)
load WATTS [UNIT]       the load's constant part (noise of ±3 % stays on top)
pv WATTS|auto [UNIT]    pin the PV power available (the charger may take less), or follow the sun again
temp C|auto [UNIT]      pin the battery temperature, or let it drift again
dead UNIT on|off        the unit stops answering (the others go on)
crc N                   the next N responses leave with a broken CRC
holding UNIT ADDR RAW   set a setting register (0x9000..0x900E, raw 0..65535) behind the gateway's back,
                        as the keypad would (refused like a Modbus write: out of range, thresholds out of order)
reads                   requests and registers read per unit so far (cheap: no model update; benchmarks)
values UNIT             the unit's model now: engineering values, settings, the registers it serves
hold on|off             stop / restart simulated time (values stay put while held)
clock HOUR              jump to that time of day (no integration across the jump)
"""
from __future__ import annotations

import math
from typing import Any

from ..serialport import Handler
from .bus import Bus, Unit
from .model import Clock
from .registers import set_holding

MAX_WATTS = 100_000.0


def _number(text: str, low: float, high: float, what: str) -> float:
    v = float(text)
    if not math.isfinite(v) or not low <= v <= high:
        raise ValueError(f"{what} must be {low:g}..{high:g}, got {text}")
    return v


def _on_off(text: str) -> bool:
    if text.lower() not in ("on", "off"):
        raise ValueError(f"expected on or off, got {text!r}")
    return text.lower() == "on"


def handlers(bus: Bus, clock: Clock) -> dict[str, Handler]:
    def unit_of(text: str) -> Unit:
        if not text.isdigit() or int(text) not in bus.units:
            raise ValueError(f"no unit {text!r}; units: {', '.join(map(str, bus.units))}")
        return bus.units[int(text)]

    def targets(args: list[str], usage: str) -> tuple[str, list[Unit]]:
        if len(args) not in (1, 2):
            raise ValueError(f"usage: {usage}")
        return args[0], [unit_of(args[1])] if len(args) == 2 else list(bus.units.values())

    def done(units: list[Unit], **what: Any) -> dict[str, Any]:
        for u in units:
            u.model.refresh()
        return {"ok": True, **what, "units": [u.id for u in units]}

    async def fault(args: list[str]) -> dict[str, Any]:
        value, units = targets(args, "fault on|off [UNIT]")
        on = _on_off(value)
        for u in units:
            u.model.update()
            u.model.fault = on
        return done(units, fault=on)

    async def soc(args: list[str]) -> dict[str, Any]:
        value, units = targets(args, "soc PERCENT [UNIT]")
        pct = _number(value, 0, 100, "soc")
        for u in units:
            u.model.update()
            u.model.soc = pct
        return done(units, soc=pct)

    async def load(args: list[str]) -> dict[str, Any]:
        value, units = targets(args, "load WATTS [UNIT]")
        watts = _number(value, 0, MAX_WATTS, "load")
        for u in units:
            u.model.update()
            u.model.load_w = watts
        return done(units, load_w=watts)

    async def pv(args: list[str]) -> dict[str, Any]:
        value, units = targets(args, "pv WATTS|auto [UNIT]")
        watts = None if value.lower() == "auto" else _number(value, 0, MAX_WATTS, "pv")
        for u in units:
            u.model.update()
            u.model.pv_pin = watts
        return done(units, pv_w=watts)

    async def temp(args: list[str]) -> dict[str, Any]:
        value, units = targets(args, "temp C|auto [UNIT]")
        celsius = None if value.lower() == "auto" else _number(value, -40, 120, "temp")
        for u in units:
            u.model.update()
            u.model.temp_pin = celsius
        return done(units, temp_c=celsius)

    async def dead(args: list[str]) -> dict[str, Any]:
        if len(args) != 2:
            raise ValueError("usage: dead UNIT on|off")
        unit, on = unit_of(args[0]), _on_off(args[1])
        unit.dead = on
        return {"ok": True, "unit": unit.id, "dead": on}

    async def crc(args: list[str]) -> dict[str, Any]:
        if len(args) != 1 or not args[0].isdigit():
            raise ValueError("usage: crc N")
        bus.corrupt_next = int(args[0])
        return {"ok": True, "crc_pending": bus.corrupt_next}

    async def holding(args: list[str]) -> dict[str, Any]:
        if len(args) != 3:
            raise ValueError("usage: holding UNIT ADDRESS RAW (address 0x9007 or 36871)")
        unit = unit_of(args[0])
        try:
            address, raw = int(args[1], 0), int(args[2], 0)
        except ValueError:
            raise ValueError(f"address and value are whole numbers (0x9007, 1420), got {args[1]!r} {args[2]!r}") from None
        unit.model.update()
        set_holding(unit.kind, unit.model, address, raw)
        return {"ok": True, "unit": unit.id, "address": f"0x{address:04X}", "raw": raw}

    async def values(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: values UNIT")
        unit = unit_of(args[0])
        return {"ok": True, "unit": unit.id, "device": unit.kind, "dead": unit.dead, **unit.values()}

    async def reads(args: list[str]) -> dict[str, Any]:
        if args:
            raise ValueError("usage: reads")
        return {"ok": True, "units": {str(u.id): u.reads() for u in bus.units.values()}}

    async def hold(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: hold on|off")
        on = _on_off(args[0])
        for u in bus.units.values():
            u.model.update()
        clock.hold(on)
        return {"ok": True, "held": on, "hour": clock.hour()}

    async def set_clock(args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise ValueError("usage: clock HOUR (0..24)")
        hour = _number(args[0], 0, 24, "hour")
        for u in bus.units.values():
            u.model.update()
        clock.set_hour(hour % 24)
        for u in bus.units.values():
            u.model.update()
        return {"ok": True, "hour": clock.hour()}

    return {"fault": fault, "soc": soc, "load": load, "pv": pv, "temp": temp, "dead": dead, "crc": crc,
            "holding": holding, "reads": reads, "values": values, "hold": hold, "clock": set_clock}
