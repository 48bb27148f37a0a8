"""End-to-end tests of the Modbus power simulator (hil.power), run as a real subprocess.

The test side is pymodbus's async *client* (RTU on the pty, TCP for the GX) plus the control
port; registers are decoded here (scaling, 32-bit low word first, int16) and compared with the
model's engineering values from `values UNIT`. `hold on` freezes the model between the read and
the comparison.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from tests.serial_sims import SimProcess

TIMEOUT = 0.4


class Power(SimProcess):
    def __init__(self, tmp: Path, device: str, extra: list[str]) -> None:
        where = ["--link", str(tmp / "epever0"), "--unit", "1", "--unit", "2"] if device == "epever" else []
        super().__init__("hil.power", [device, *where, "--seed", "7", "--log-level", "INFO", *extra],
                         ready_timeout=15.0, log=tmp / "sim.log", keep_control=True)

    def ok(self, line: str) -> dict[str, Any]:
        reply = self.control(line)
        assert reply["ok"], (line, reply)
        return reply

    def values(self, unit: int) -> dict[str, Any]:
        return self.ok(f"values {unit}")


def with_args(*args: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("sim_args", [list(args)], ids=[""])


@pytest.fixture
def sim_args() -> list[str]:
    return []


@pytest.fixture
def epever(tmp_path: Path, sim_args: list[str]) -> Iterator[Power]:
    s = Power(tmp_path, "epever", sim_args)
    yield s
    assert s.stop() == 0, s.log.read_text() if s.log else ""


@pytest.fixture
def victron(tmp_path: Path, sim_args: list[str]) -> Iterator[Power]:
    s = Power(tmp_path, "victron", sim_args)
    yield s
    assert s.stop() == 0, s.log.read_text() if s.log else ""


@pytest.fixture
async def rtu(epever: Power) -> AsyncIterator[AsyncModbusSerialClient]:
    client = AsyncModbusSerialClient(str(epever.link), baudrate=115200, timeout=TIMEOUT, retries=0)
    assert await client.connect()
    yield client
    client.close()


@pytest.fixture
async def tcp(victron: Power) -> AsyncIterator[AsyncModbusTcpClient]:
    host, port = victron.ready["listen"]
    client = AsyncModbusTcpClient(host, port=port, timeout=TIMEOUT, retries=0)
    assert await client.connect()
    yield client
    client.close()


def u32_low_first(lo: int, hi: int) -> int:
    return lo | hi << 16


def int16(x: int) -> int:
    return x - 0x10000 if x & 0x8000 else x


async def read_inputs(client: AsyncModbusSerialClient, unit: int) -> dict[int, int]:
    regs: dict[int, int] = {}
    for start, count in ((0x3100, 8), (0x310C, 5), (0x311A, 1), (0x3201, 1)):
        r = await client.read_input_registers(start, count=count, device_id=unit)
        assert not r.isError(), r
        regs.update({start + i: x for i, x in enumerate(r.registers)})
    return regs


async def exception_of(call: Any) -> int:
    r = await call
    assert r.isError(), r
    return int(r.exception_code)


# -- EPEVER (RTU) ------------------------------------------------------------------------------

async def test_input_registers_decode_to_the_model(epever: Power, rtu: AsyncModbusSerialClient) -> None:
    epever.ok("pv 900 1")           # more than the charger takes: its 32-bit PV watts stay below 655.35 W
    epever.ok("load 700 1")         # load watts ×100 needs the high word
    epever.ok("temp -5.5 1")
    epever.ok("soc 60 1")
    epever.ok("hold on")
    regs = await read_inputs(rtu, 1)
    v = epever.values(1)
    assert v["registers"]["input"] == {f"0x{a:04X}": x for a, x in regs.items()}
    assert regs[0x3100] == round(v["pv_v"] * 100) and regs[0x3101] == round(v["pv_a"] * 100)
    assert u32_low_first(regs[0x3102], regs[0x3103]) == round(v["pv_w"] * 100) > 0
    assert regs[0x3104] == round(v["battery_v"] * 100)
    assert regs[0x3105] == round(v["charge_a"] * 100)
    assert u32_low_first(regs[0x3106], regs[0x3107]) == round(v["charge_w"] * 100)
    assert regs[0x310C] == round(v["load_v"] * 100) and regs[0x310D] == round(v["load_a"] * 100)
    load_w = u32_low_first(regs[0x310E], regs[0x310F])
    assert regs[0x310F] >= 1 and load_w == round(v["load_w"] * 100)
    assert abs(load_w / 100 - 700) < 700 * 0.15          # constant + a few % of noise
    assert int16(regs[0x3110]) == -550 and v["temp_c"] == -5.5
    assert regs[0x311A] == 60 and regs[0x311A] == round(v["soc"])
    assert (regs[0x3201] >> 2) & 3 == v["stage"] == 2 and not regs[0x3201] & 0x12   # boost, no fault
    assert v["pv_w"] == pytest.approx(v["pv_v"] * v["pv_a"]) and v["charge_w"] == pytest.approx(
        v["battery_v"] * v["charge_a"])
    assert v["charge_w"] == pytest.approx(v["pv_w"] * 0.96)


async def test_holding_registers_write_and_read_back(epever: Power, rtu: AsyncModbusSerialClient) -> None:
    r = await rtu.read_holding_registers(0x9000, count=15, device_id=1)
    assert r.registers[:9] == [1, 100, 300, 1600, 1500, 1500, 1460, 1440, 1380]  # type, Ah, coeff, OVD … float
    w = await rtu.write_register(0x9007, 1420, device_id=1)          # boost 14.20 V
    assert not w.isError() and w.registers == [1420]
    assert (await rtu.read_holding_registers(0x9007, count=1, device_id=1)).registers == [1420]
    assert epever.values(1)["settings"]["boost_v"] == 14.2
    assert (await rtu.read_holding_registers(0x9007, count=1, device_id=2)).registers == [1440]   # its own
    assert not (await rtu.write_registers(0x9006, [1450, 1430, 1370], device_id=1)).isError()
    assert (await rtu.read_holding_registers(0x9006, count=3, device_id=1)).registers == [1450, 1430, 1370]
    assert (await rtu.write_register(0x9000, 2, device_id=1)).registers == [2]                   # GEL
    assert await exception_of(rtu.write_register(0x9000, 9, device_id=1)) == 3                   # no such type
    assert await exception_of(rtu.write_register(0x9007, 1550, device_id=1)) == 4                # boost > limit
    assert await exception_of(rtu.write_register(0x3100, 1, device_id=1)) == 2                   # no such holding
    assert (await rtu.read_holding_registers(0x9000, count=1, device_id=1)).registers == [2]
    # the load coil switches the load output
    assert (await rtu.read_coils(2, count=1, device_id=1)).bits[0] is True
    assert not (await rtu.write_coil(2, False, device_id=1)).isError()
    epever.ok("hold on")
    regs = await read_inputs(rtu, 1)
    assert regs[0x310C] == regs[0x310D] == regs[0x310E] == 0 and epever.values(1)["load_on"] is False
    # a broadcast write reaches both units and nobody answers
    await rtu.write_register(0x9008, 1370, device_id=0, no_response_expected=True)
    await asyncio.sleep(0.1)
    for unit in (1, 2):
        assert (await rtu.read_holding_registers(0x9008, count=1, device_id=unit)).registers == [1370]


async def test_settings_changed_behind_the_masters_back(epever: Power, rtu: AsyncModbusSerialClient) -> None:
    """`holding UNIT ADDR RAW` is the keypad: the register changes for the next read, refused like a write."""
    assert epever.ok("holding 2 0x9007 1420") == {"ok": True, "unit": 2, "address": "0x9007", "raw": 1420}
    assert (await rtu.read_holding_registers(0x9007, count=1, device_id=2)).registers == [1420]
    assert (await rtu.read_holding_registers(0x9007, count=1, device_id=1)).registers == [1440]   # unit 1 untouched
    assert epever.values(2)["settings"]["boost_v"] == 14.2
    assert epever.ok("holding 1 36865 200")["address"] == "0x9001"                                # decimal too
    assert epever.values(1)["settings"]["capacity_ah"] == 200
    for bad, why in (("holding 1 0x9007 1550", "thresholds out of order"), ("holding 1 0x9000 9", "out of range"),
                     ("holding 1 0x3100 5", "no writable holding register 0x3100"), ("holding 1 0x9007 x", "whole numbers"),
                     ("holding 1 0x9007 70000", "0..65535"), ("holding 3 0x9007 1", "no unit"), ("holding 1", "usage")):
        reply = epever.control(bad)
        assert reply["ok"] is False and why in str(reply), (bad, reply)
    assert (await rtu.read_holding_registers(0x9007, count=1, device_id=1)).registers == [1440]   # nothing taken


async def test_unmapped_addresses_answer_exception_2(rtu: AsyncModbusSerialClient) -> None:
    assert await exception_of(rtu.read_input_registers(0x3108, count=1, device_id=1)) == 2       # hole
    assert await exception_of(rtu.read_input_registers(0x3100, count=16, device_id=1)) == 2      # spans it
    assert await exception_of(rtu.read_input_registers(0x3300, count=2, device_id=1)) == 2
    assert await exception_of(rtu.read_input_registers(0x9000, count=1, device_id=1)) == 2       # FC04 ≠ FC03
    assert await exception_of(rtu.read_holding_registers(0x3100, count=1, device_id=1)) == 2
    assert await exception_of(rtu.read_holding_registers(0x900F, count=1, device_id=1)) == 2
    assert await exception_of(rtu.read_holding_registers(0x900E, count=2, device_id=1)) == 2
    assert await exception_of(rtu.readwrite_registers(read_address=0x9000, read_count=1, write_address=0x9000,
                                                      values=[1], device_id=1)) == 1          # FC23 unsupported
    r = await rtu.read_input_registers(0x3104, count=1, device_id=1)
    assert not r.isError() and 1100 < r.registers[0] < 1500


async def test_units_answer_independently_and_a_dead_unit_times_out(epever: Power,
                                                                    rtu: AsyncModbusSerialClient) -> None:
    epever.ok("hold on")
    epever.ok("soc 20 1")
    epever.ok("soc 90 2")
    soc = {u: (await rtu.read_input_registers(0x311A, count=1, device_id=u)).registers[0] for u in (1, 2)}
    assert soc == {1: 20, 2: 90}
    assert epever.ok("dead 1 on") == {"ok": True, "unit": 1, "dead": True}
    t0 = time.monotonic()
    with pytest.raises(ModbusIOException):
        await rtu.read_input_registers(0x311A, count=1, device_id=1)
    assert time.monotonic() - t0 >= TIMEOUT * 0.9
    assert (await rtu.read_input_registers(0x311A, count=1, device_id=2)).registers == [90]
    with pytest.raises(ModbusIOException):
        await rtu.read_input_registers(0x311A, count=1, device_id=3)                           # nobody there
    epever.ok("dead 1 off")
    assert (await rtu.read_input_registers(0x311A, count=1, device_id=1)).registers == [20]
    stats = epever.ok("stats")
    assert stats["units"]["1"]["ignored_while_dead"] == 1 and stats["units"]["2"]["ignored_while_dead"] == 0
    assert stats["unknown_unit"] == 1 and stats["requests"]["4"] == 6
    assert stats["units"]["1"]["values"]["soc"] == 20 and stats["plugged"] is True


async def test_corrupted_crc_is_an_error_for_the_client(epever: Power, rtu: AsyncModbusSerialClient) -> None:
    assert epever.ok("crc 2")["crc_pending"] == 2
    for unit in (1, 2):
        with pytest.raises(ModbusIOException):
            await rtu.read_input_registers(0x3104, count=1, device_id=unit)
    assert not (await rtu.read_input_registers(0x3104, count=1, device_id=1)).isError()
    stats = epever.ok("stats")
    assert stats["crc_corrupted"] == 2 and stats["crc_pending"] == 0


async def test_fault_and_charging_stages(epever: Power, rtu: AsyncModbusSerialClient) -> None:
    async def status(unit: int) -> int:
        return (await rtu.read_input_registers(0x3201, count=1, device_id=unit)).registers[0]

    epever.ok("pv 300")
    epever.ok("soc 70")
    assert (await status(1) >> 2) & 3 == 2                                   # boost
    assert epever.ok("fault on 1")["units"] == [1]
    s1, s2 = await status(1), await status(2)
    assert s1 & 0x10 and s1 & 0x02 and (s1 >> 2) & 3 == 0                   # fault: charging stops
    assert not s2 & 0x12 and (s2 >> 2) & 3 == 2
    charge = (await rtu.read_input_registers(0x3105, count=1, device_id=1)).registers[0]
    assert charge == 0
    epever.ok("fault off 1")
    epever.ok("soc 100")
    assert (await status(1) >> 2) & 3 == 1                                   # float
    epever.ok("soc 30")
    epever.ok("pv 0")
    assert await status(1) & 0x400C == 0x4000                                # no PV: not charging, no input
    epever.ok("pv auto")
    assert epever.ok("values 1")["pv_pinned"] is None


@with_args("--time-scale", "3600", "--start-hour", "17", "--load", "300", "--soc", "90")
async def test_day_turns_to_night_and_the_battery_drains(epever: Power, rtu: AsyncModbusSerialClient) -> None:
    first = epever.values(1)
    assert not first["night"] and first["pv_v"] > 0
    await asyncio.sleep(1.2)                                                 # 17:00 → past 18:00
    regs = await read_inputs(rtu, 1)
    assert regs[0x3100] == 0 and regs[0x3201] & 0x4000
    assert (await rtu.read_discrete_inputs(0x200C, count=1, device_id=1)).bits[0] is True       # night
    epever.ok("hold on")
    a = epever.values(1)
    epever.ok("hold off")
    await asyncio.sleep(0.5)
    b = epever.values(1)
    hours = (b["hour"] - a["hour"]) % 24
    assert 0.4 < hours < 1.0
    expected = (a["load_w"] + b["load_w"]) / 2 * hours / (12 * 100) * 100   # % of a 12 V 100 Ah battery
    assert a["soc"] - b["soc"] == pytest.approx(expected, rel=0.25)
    assert epever.ok("clock 12")["hour"] == pytest.approx(12, abs=0.1)
    assert epever.values(1)["pv_v"] > 0


async def test_unplug_and_control_errors(epever: Power) -> None:
    assert epever.ok("unplug 0.3")["unplugged_s"] == 0.3
    await asyncio.sleep(0.05)
    assert not epever.link.exists()
    deadline = time.monotonic() + 3
    while not epever.link.exists():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    client = AsyncModbusSerialClient(str(epever.link), baudrate=115200, timeout=TIMEOUT, retries=0)
    assert await client.connect()
    try:
        assert not (await client.read_input_registers(0x311A, count=1, device_id=2)).isError()
    finally:
        client.close()
    assert epever.ok("stats")["unplugs"] == 1
    for bad in ("soc 120", "soc x", "dead 9 on", "dead 1 maybe", "values", "values 5", "crc -1", "pv 5 7",
                "fault sometimes", "temp 500", "clock 25", "bogus"):
        assert epever.control(bad)["ok"] is False, bad


# -- Victron GX (TCP) --------------------------------------------------------------------------

async def test_victron_battery_registers(victron: Power, tcp: AsyncModbusTcpClient) -> None:
    assert victron.ready["units"] == [100]
    victron.ok("pv 0")
    victron.ok("load 1500")
    victron.ok("hold on")
    r = await tcp.read_holding_registers(840, count=5, device_id=100)
    v = victron.values(100)
    volts, amps, watts, soc, state = r.registers
    assert volts == round(v["battery_v"] * 10) and 440 < volts < 520
    assert int16(amps) == round(v["battery_a"] * 10) < -250                  # discharging
    assert int16(watts) == round(v["battery_w"]) < -1300
    assert soc == round(v["soc"]) and state == 2
    victron.ok("hold off")
    victron.ok("pv 3000")
    victron.ok("load 100")
    victron.ok("soc 50")
    victron.ok("hold on")
    r = await tcp.read_holding_registers(840, count=5, device_id=100)
    assert int16(r.registers[1]) > 0 and int16(r.registers[2]) > 0 and r.registers[3] == 50 and r.registers[4] == 1
    assert (await tcp.read_holding_registers(843, count=1, device_id=0)).registers == [50]       # 0 is 100
    assert await exception_of(tcp.read_holding_registers(845, count=1, device_id=100)) == 2
    assert await exception_of(tcp.read_holding_registers(839, count=2, device_id=100)) == 2
    assert await exception_of(tcp.write_register(843, 1, device_id=100)) == 2                     # read-only
    assert await exception_of(tcp.read_holding_registers(840, count=1, device_id=7)) == 0x0B     # no such unit
    assert await exception_of(tcp.read_coils(0, count=1, device_id=100)) == 1
    victron.ok("dead 100 on")
    with pytest.raises(ModbusIOException):
        await tcp.read_holding_registers(840, count=1, device_id=100)
    victron.ok("dead 100 off")
    stats = victron.ok("stats")
    assert stats["requests"]["3"] == 7 and stats["exceptions"] == {"1": 1, "2": 3, "11": 1}
    assert stats["units"]["100"]["ignored_while_dead"] == 1 and stats["connections"] == 1


async def test_epever_over_modbus_tcp_and_read_counts(tmp_path: Path) -> None:
    """`epever --listen`: the same controllers behind an RS-485/Ethernet gateway; `reads` counts what pollers got."""
    sim = SimProcess("hil.power", ["epever", "--listen", "127.0.0.1:0", "--unit", "1", "--unit", "7", "--seed", "7"],
                     ready_timeout=15.0, log=tmp_path / "sim.log")
    try:
        host, port = sim.ready["listen"]
        client = AsyncModbusTcpClient(host, port=port, timeout=TIMEOUT, retries=0)
        assert await client.connect()
        try:
            r = await client.read_input_registers(0x3100, count=8, device_id=7)
            assert not r.isError() and len(r.registers) == 8
            assert not (await client.read_holding_registers(0x9000, count=15, device_id=1)).isError()
            assert await exception_of(client.read_input_registers(0x3108, count=1, device_id=1)) == 2
            assert await exception_of(client.read_input_registers(0x3100, count=1, device_id=3)) == 0x0B
        finally:
            client.close()
        reads = sim.control("reads")
        assert reads == {"ok": True, "units": {"1": {"requests": 2, "registers": 15}, "7": {"requests": 1, "registers": 8}}}
        assert sim.control("reads 1")["ok"] is False
    finally:
        assert sim.stop() == 0
