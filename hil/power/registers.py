"""Register maps of the simulated devices, built on pymodbus's SimDevice/SimData datastore.

The datastore marks which addresses exist (everything else answers exception
0x02, ILLEGAL_ADDRESS); the SimDevice `action`, called by pymodbus on every
access, fills the registers from the unit's model just before a read and
checks (and applies) a write before pymodbus stores it.

EPEVER Tracer (RTU), after the research notes (device-protocols.md, "Power equipment (Modbus)"):
  FC04 0x3100 PV V/100, 0x3101 PV A/100, 0x3102/03 PV W/100 (u32, low word first),
       0x3104 battery V/100, 0x3105 charge A/100, 0x3106/07 charge W/100 (u32, low word first),
       0x310C load V/100, 0x310D load A/100, 0x310E/0F load W/100 (u32, low word first),
       0x3110 battery °C/100 (int16), 0x311A SOC %, 0x3201 charging equipment status
       (D0 running, D1 fault, D3–D2 stage 0 none/1 float/2 boost/3 equalize, D4 PV input short,
       D15–D14 01 = no input power).
  FC03/06/16 0x9000–0x900E settings (vendor layout: 0x9000 battery type, 0x9001 capacity Ah,
       0x9003 high-voltage disconnect, 0x9006 equalize, 0x9007 boost, 0x9008 float, …, V/100).
  FC01/05/15 coil 0x0002 load on/off; FC02 discrete inputs 0x2000 over-temperature, 0x200C night.
Victron GX (TCP), unit 100: FC03/04 840 battery V/10, 841 A/10 (int16), 842 W (int16), 843 SOC %,
  844 state (0 idle, 1 charging, 2 discharging); read-only.
"""
from __future__ import annotations

from dataclasses import fields, replace

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from .model import PowerSystem, Settings, Values

Registers = dict[int, int]
SETTINGS = [f.name for f in fields(Settings)]          # 0x9000 + index, in this order
SETTING_SCALE = {"battery_type": 1, "capacity_ah": 1}  # the rest are ×100
HOLDING_BASE = 0x9000
LOAD_COIL = 0x0002
OVER_TEMP_INPUT, NIGHT_INPUT = 0x2000, 0x200C
OVER_TEMP_C = 65.0
EPEVER_FUNCTIONS = frozenset({1, 2, 3, 4, 5, 6, 15, 16})
VICTRON_FUNCTIONS = frozenset({3, 4, 6, 16})


def u16(x: float) -> int:
    return max(0, min(0xFFFF, round(x)))


def s16(x: float) -> int:
    return max(-0x8000, min(0x7FFF, round(x))) & 0xFFFF


def u32_low_first(x: float) -> tuple[int, int]:
    v = max(0, min(0xFFFFFFFF, round(x)))
    return v & 0xFFFF, v >> 16


# -- EPEVER -----------------------------------------------------------------------------------

def charger_status(v: Values) -> int:
    status = 0x0001 | (v.stage << 2)
    if v.fault:
        status |= 0x0002 | 0x0010
    if v.pv_v == 0.0:
        status |= 0x4000
    return status


def epever_inputs(v: Values) -> Registers:
    pv_w, charge_w, load_w = (u32_low_first(w * 100) for w in (v.pv_w, v.charge_w, v.load_w))
    return {0x3100: u16(v.pv_v * 100), 0x3101: u16(v.pv_a * 100), 0x3102: pv_w[0], 0x3103: pv_w[1],
            0x3104: u16(v.battery_v * 100), 0x3105: u16(v.charge_a * 100), 0x3106: charge_w[0], 0x3107: charge_w[1],
            0x310C: u16(v.load_v * 100), 0x310D: u16(v.load_a * 100), 0x310E: load_w[0], 0x310F: load_w[1],
            0x3110: s16(v.temp_c * 100), 0x311A: u16(v.soc), 0x3201: charger_status(v)}


def epever_holding(s: Settings) -> Registers:
    return {HOLDING_BASE + i: u16(getattr(s, name) * SETTING_SCALE.get(name, 100)) for i, name in enumerate(SETTINGS)}


def settings_with(s: Settings, address: int, values: list[int]) -> Settings:
    changes: dict[str, float] = {}
    for i, raw in enumerate(values):
        name = SETTINGS[address - HOLDING_BASE + i]
        scale = SETTING_SCALE.get(name, 100)
        changes[name] = raw if scale == 1 else raw / scale
    return replace(s, **changes)  # type: ignore[arg-type]


def _set_bit(registers: list[int], start: int, bit_address: int, on: bool) -> None:
    i, bit = bit_address // 16 - start, bit_address % 16
    registers[i] = (registers[i] & ~(1 << bit)) | (int(on) << bit)


def epever_device(unit_id: int, model: PowerSystem) -> SimDevice:
    async def action(fc: int, start: int, address: int, count: int, registers: list[int],
                     values: list[int] | list[bool] | None) -> ExcCodes | None:
        v = model.update()
        if values is not None:
            return _epever_write(model, fc, address, values)
        if fc == 4:
            regs = epever_inputs(v)
        elif fc in (3, 6, 16):
            regs = epever_holding(model.settings)
        else:   # bit blocks: `start` counts 16-bit registers
            bits = {LOAD_COIL: model.load_switch} if fc in (1, 5, 15) else {
                OVER_TEMP_INPUT: v.temp_c > OVER_TEMP_C, NIGHT_INPUT: v.night}
            for addr, on in bits.items():
                _set_bit(registers, start, addr, on)
            return None
        for addr, value in regs.items():
            registers[addr - start] = value
        return None

    return SimDevice(unit_id, simdata=(
        [SimData(LOAD_COIL, values=[True], datatype=DataType.BITS)],
        [SimData(OVER_TEMP_INPUT, values=[False], datatype=DataType.BITS),
         SimData(NIGHT_INPUT, values=[False], datatype=DataType.BITS)],
        [SimData(HOLDING_BASE, values=list(epever_holding(model.settings).values()), datatype=DataType.REGISTERS)],
        [SimData(0x3100, count=8, datatype=DataType.REGISTERS, readonly=True),
         SimData(0x310C, count=5, datatype=DataType.REGISTERS, readonly=True),
         SimData(0x311A, datatype=DataType.REGISTERS, readonly=True),
         SimData(0x3201, datatype=DataType.REGISTERS, readonly=True)],
    ), action=action)


def _epever_write(model: PowerSystem, fc: int, address: int, values: list[int] | list[bool]) -> ExcCodes | None:
    if fc in (5, 15):
        if address <= LOAD_COIL < address + len(values):
            model.load_switch = bool(values[LOAD_COIL - address])
            model.refresh()
        return None
    new = settings_with(model.settings, address, [int(x) for x in values])
    problem = new.problem(model.cfg.nominal_v)
    if problem == "value":
        return ExcCodes.ILLEGAL_VALUE
    if problem == "order":      # the controller refuses inconsistent thresholds with a device failure
        return ExcCodes.DEVICE_FAILURE
    model.settings = new
    model.refresh()
    return None


def set_holding(kind: str, model: PowerSystem, address: int, raw: int) -> None:
    """Change one setting register as the device's own keypad (or another master) would, behind the
    gateway's back; ValueError with the reason when the device would refuse it."""
    if kind != "epever" or not HOLDING_BASE <= address < HOLDING_BASE + len(SETTINGS):
        where = f"0x{HOLDING_BASE:04X}..0x{HOLDING_BASE + len(SETTINGS) - 1:04X}" if kind == "epever" else "none"
        raise ValueError(f"a {kind} unit has no writable holding register 0x{address:04X} (writable: {where})")
    if not 0 <= raw <= 0xFFFF:
        raise ValueError(f"a register holds 0..65535, got {raw}")
    code = _epever_write(model, 6, address, [raw])
    if code is not None:
        why = "out of range" if code == ExcCodes.ILLEGAL_VALUE else "thresholds out of order"
        raise ValueError(f"the controller refuses {raw} at 0x{address:04X} ({why})")


# -- Victron ----------------------------------------------------------------------------------

def victron_state(v: Values) -> int:
    amps = s16(v.battery_a * 10)
    return 0 if amps == 0 else (1 if amps < 0x8000 else 2)


def victron_holding(v: Values) -> Registers:
    return {840: u16(v.battery_v * 10), 841: s16(v.battery_a * 10), 842: s16(v.battery_w), 843: u16(v.soc),
            844: victron_state(v)}


def victron_device(unit_id: int, model: PowerSystem) -> SimDevice:
    async def action(fc: int, start: int, address: int, count: int, registers: list[int],
                     values: list[int] | list[bool] | None) -> ExcCodes | None:
        if values is None:
            for addr, value in victron_holding(model.update()).items():
                registers[addr - start] = value
        return None

    return SimDevice(unit_id, simdata=[SimData(840, count=5, datatype=DataType.REGISTERS, readonly=True)],
                     action=action)



def register_view(kind: str, model: PowerSystem) -> dict[str, Registers]:
    """The registers the unit serves now (for `values`), by table."""
    if kind == "epever":
        return {"input": epever_inputs(model.now), "holding": epever_holding(model.settings)}
    return {"holding": victron_holding(model.now)}
