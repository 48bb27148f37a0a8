"""The Modbus power driver: register maps (checks, decoding, block planning), alarms with hysteresis,
kit checks, and the driver against the power simulator (hil.power) with no gateway process."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.modbus_power.driver import ModbusPowerDriver
from drivers.modbus_power.maps import Block, MapError, Register, RegisterMap, check_map, plan
from drivers.modbus_power.thresholds import Alarms, Thresholds, check_thresholds
from gateway.backoff import Backoff
from gateway.driver_api import DeviceSpec, LinkSpec
from gateway.model import Event, OnlineChange, StatusUpdate, Telemetry
from tests.procs import FIRMWARE, free_port, write_kit
from tests.serial_sims import OrderedCollector, SimProcess, supervised

pytestmark = pytest.mark.timeout(30)

EPEVER = yaml.safe_load((FIRMWARE / "modbus" / "epever_tracer.yaml").read_text())
VICTRON = yaml.safe_load((FIRMWARE / "modbus" / "victron_gx.yaml").read_text())
THRESHOLDS = {"battery_low_pct": 30, "battery_critical_pct": 15, "over_temp_c": 50,
              "hysteresis": {"soc_pct": 5, "temp_c": 3}}


# -- register maps ---------------------------------------------------------------------------

def test_shipped_maps_are_valid_and_one_request_per_block() -> None:
    assert check_map(EPEVER) == [] and ModbusPowerDriver.check_profile(VICTRON) == []
    epever = RegisterMap.from_profile(EPEVER)
    assert [(b.function, b.address, b.count) for b in epever.blocks] == [
        (4, 0x3100, 8), (4, 0x310C, 5), (4, 0x311A, 1), (4, 0x3201, 1)]  # settings (0x9000…) are not polled
    assert [r.name for r in epever.registers if r.writable] == [r.name for r in epever.registers if r.function == 3]
    victron = RegisterMap.from_profile(VICTRON)
    assert [(b.function, b.address, b.count) for b in victron.blocks] == [(3, 840, 5)]
    assert victron.default_unit == 100 and epever.default_unit == 1


def _reg(**kw: Any) -> dict[str, Any]:
    return {"name": "battery_v", "address": 0x3104, "type": "uint16", "scale": 0.01, **kw}


def _with(*regs: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"model": "test", "version": 1, "function": 4, "registers": list(regs), **top}


@pytest.mark.parametrize(("data", "expected"), [
    (_with(_reg(type="uint64")), "unknown type 'uint64' (known: uint16, int16, uint32, int32)"),
    (_with(_reg(scale=0)), "bad scale 0"),
    (_with(_reg(scale="1/100")), "bad scale '1/100'"),
    (_with(_reg(type="uint32")), "word_order None: a 32-bit register says low_first or high_first"),
    (_with(_reg(word_order="low_first")), "word_order is for 32-bit registers, not uint16"),
    (_with(_reg(type="uint32", word_order="middle")), "word_order 'middle'"),
    (_with(_reg(), _reg(name="pv_w", address=0x3103, type="uint32", word_order="low_first")),
     "registers battery_v (FC04 0x3104) and pv_w (FC04 0x3103) overlap: they share a register"),
    (_with(_reg(name="charger_stage", bits=[2, 3]), _reg(name="charger_fault", bits=[3, 4])),
     "overlap: their bit fields overlap"),
    (_with(_reg(name="charger_stage", bits=[2, 3]), _reg(name="x")), "only bit fields of one register may share it"),
    (_with(_reg(type="int16", bits=1)), "bits: a bit field reads an unsigned register"),
    (_with(_reg(bits=[3, 16])), "bits [3, 16]: one bit number or [first, last] within 0..15"),
    (_with(_reg(writable=True)), "input registers (function 4) are read-only"),
    (_with(_reg(function=5)), "function 5: 3 (holding registers) or 4 (input registers)"),
    (_with(_reg(address=0x10000)), "address 65536: a register address 0..0xFFFF"),
    (_with(_reg(address="0x3104")), "address '0x3104'"),
    (_with(_reg(), _reg(address=0x3105)), "name 'battery_v' is also registers[0]"),
    (_with(_reg(name="Battery V")), "name 'Battery V': lower-case snake_case"),
    (_with(_reg(scal=0.01)), "unknown key 'scal'"),
    (_with(_reg(name="charger_stage", states={0: "charging hard"})), "'charging hard' not a normalized charger stage"),
    (_with(_reg(function=3, value=12)), "value: only a writable register has a value to apply"),
    ({"version": 1, "registers": [_reg()]}, "model: name the device model"),
    (_with(_reg(), version="1"), "version: a whole number >= 1"),
    (_with(_reg(), protocol="snmp"), "a Modbus register map says protocol: modbus"),
    (_with(), "registers: a list of registers"),
    ([1, 2], "a register map is a YAML mapping"),
])
def test_bad_maps_give_clear_problems(data: Any, expected: str) -> None:
    problems = check_map(data)
    assert any(expected in p for p in problems), problems
    with pytest.raises(MapError):
        RegisterMap.from_profile(data)


def test_every_problem_of_a_map_is_listed_with_its_register() -> None:
    bad = copy.deepcopy(EPEVER)
    bad["registers"][2]["type"] = "float32"   # pv_w
    bad["registers"][3]["scale"] = 0          # battery_v
    problems = check_map(bad)
    assert any(p.startswith("registers[2] (pv_w): unknown type 'float32'") for p in problems), problems
    assert any(p.startswith("registers[3] (battery_v): bad scale 0") for p in problems), problems


def test_decode_32_bit_word_orders_signed_values_and_bits() -> None:
    low_first = Register("pv_w", 4, 0x3102, "uint32", 0.01, "low_first")
    high_first = Register("pv_w", 4, 0x3102, "uint32", 0.01, "high_first")
    words = [0x5678, 0x0001]  # as they arrive: register 0x3102, then 0x3103
    assert low_first.decode(words) == pytest.approx(0x0001_5678 * 0.01)
    assert high_first.decode(words) == pytest.approx(0x5678_0001 * 0.01)
    signed32 = Register("battery_a", 4, 0x331B, "int32", 0.01, "low_first")
    assert signed32.decode([0xFF38, 0xFFFF]) == pytest.approx(-2.0)      # -200
    assert signed32.decode([0x00C8, 0x0000]) == pytest.approx(2.0)
    assert Register("battery_temp_c", 4, 0x3110, "int16", 0.01).decode([0xFC18]) == pytest.approx(-10.0)
    assert Register("battery_temp_c", 4, 0x3110, "int16", 0.01).decode([0x07D0]) == pytest.approx(20.0)
    assert Register("battery_a", 3, 841, "int16", 0.1).decode([0xFFFF]) == pytest.approx(-0.1)
    assert Register("soc_pct", 4, 0x311A, "uint16").decode([0xFFFF]) == 65535
    assert Register("battery_v", 4, 0x3104, "uint16", 0.01).decode([1235]) == 12.35  # no float noise
    stage = Register("charger_stage", 4, 0x3201, "uint16", bits=(2, 3))
    fault = Register("charger_fault", 4, 0x3201, "uint16", bits=(1, 1))
    assert (stage.decode([0b1011]), fault.decode([0b1011])) == (2, 1)
    # writing is the inverse (config apply)
    assert signed32.encode(-2.0) == [0xFF38, 0xFFFF] and high_first.encode(0x5678_0001 * 0.01) == words
    with pytest.raises(ValueError, match="does not fit"):
        Register("x", 3, 0x9001, "uint16").encode(70000)


def test_blocks_are_contiguous_per_function_and_never_split_a_value() -> None:
    regs = [Register("a", 4, 10, "uint16"), Register("b", 4, 11, "uint32", word_order="low_first"),
            Register("c", 4, 14, "uint16"),                       # gap at 13: a new block
            Register("s1", 4, 20, "uint16", bits=(0, 1)), Register("s2", 4, 20, "uint16", bits=(2, 3)),
            Register("h", 3, 11, "uint16"),                       # same address, other table
            Register("d", 4, 21, "int16")]
    blocks = plan(regs)
    assert [(b.function, b.address, b.count, [r.name for r in b.registers]) for b in blocks] == [
        (3, 11, 1, ["h"]), (4, 10, 3, ["a", "b"]), (4, 14, 1, ["c"]), (4, 20, 2, ["s1", "s2", "d"])]
    # a block limit never cuts a 32-bit register in two
    assert [(b.address, b.count) for b in plan(regs[:2], max_block=2)] == [(10, 1), (11, 2)]
    block = blocks[1]
    assert block.decode([7, 0x0002, 0x0001]) == {"a": 7, "b": 0x0001_0002}
    assert [(b.address, b.count) for b in blocks[3].split()] == [(20, 1), (21, 1)]
    assert isinstance(blocks[0], Block) and blocks[3].label() == "FC04 0x0014+2"


# -- alarms ----------------------------------------------------------------------------------

def _run(alarms: Alarms, seq: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for values in seq:
        status = {"charger_fault": values.pop("fault")} if "fault" in values else {}
        out += [(e.type, e.severity) for e in alarms.evaluate(values, status)]
    return out


def test_soc_alarms_fire_once_and_clear_only_past_the_hysteresis() -> None:
    alarms = Alarms("pw", Thresholds.from_options(THRESHOLDS))
    socs = [80, 31, 30, 29, 25, 33, 29, 34.9, 35, 40, 29, 14, 16, 19.9, 20, 36]
    events = _run(alarms, [{"soc_pct": s} for s in socs])
    assert events == [("battery_low", "warning"),          # 30: at the threshold
                      ("battery_low", "info"),             # 35: back past 30 + 5
                      ("battery_low", "warning"),          # 29
                      ("battery_critical", "critical"),    # 14
                      ("battery_critical", "info"),        # 20
                      ("battery_low", "info")]             # 36


def test_missing_values_neither_raise_nor_clear() -> None:
    alarms = Alarms("pw", Thresholds.from_options(THRESHOLDS))
    assert _run(alarms, [{"soc_pct": 10}]) == [("battery_low", "warning"), ("battery_critical", "critical")]
    # a poll whose SOC block failed: no value, no change (never a 0 % or a clear from nothing)
    assert _run(alarms, [{}, {"battery_v": 12.1}, {}]) == []
    assert alarms.active() == ["battery_low", "battery_critical"]


def test_temperature_and_fault_alarms() -> None:
    alarms = Alarms("pw", Thresholds.from_options({"over_temp_c": 50, "hysteresis": {"temp_c": 3}}))
    temps = [20, 49.9, 50, 60, 48, 47.1, 47, 55]
    assert _run(alarms, [{"battery_temp_c": t} for t in temps]) == [
        ("over_temperature", "warning"), ("over_temperature", "info"), ("over_temperature", "warning")]
    faults = [False, True, True, False, False, True]
    assert _run(alarms, [{"fault": f} for f in faults]) == [
        ("charger_fault", "critical"), ("charger_fault", "info"), ("charger_fault", "critical")]
    off = Alarms("pw", Thresholds.from_options({"over_temp_c": None}))
    assert _run(off, [{"battery_temp_c": 99}]) == []


def test_kit_options_are_checked() -> None:
    check = ModbusPowerDriver.check_device
    assert check({"unit": 1, "poll_s": 5, "timeout_s": 0.5, "thresholds": THRESHOLDS}, "serial:///dev/ttyUSB0?baud=115200") == []
    assert check({"unit": 100}, "tcp://192.168.1.20:502") == []
    problems = dict(check({"unit": 300, "poll_s": 0, "colour": 1, "max_failures": 1.5,
                           "thresholds": {"battery_low_pct": 20, "battery_critical_pct": 25,
                                          "over_temp": 40, "hysteresis": {"soc": 2, "temp_c": -1}}},
                          "serial:///dev/ttyUSB0?baud=fast"))
    assert "unit (slave) id: a whole number 1..247" in problems[("unit",)]
    assert "poll_s must be a number" in problems[("poll_s",)]
    assert "unknown option 'colour'" in problems[("colour",)]
    assert "whole number" in problems[("max_failures",)]
    assert "must be below battery_low_pct (20)" in problems[("thresholds", "battery_critical_pct")]
    assert "unknown threshold" in problems[("thresholds", "over_temp")]
    assert "unknown hysteresis" in problems[("thresholds", "hysteresis", "soc")]
    assert "0..50" in problems[("thresholds", "hysteresis", "temp_c")]
    assert "serial baud must be a number" in problems[()]
    assert check_thresholds(None) == []
    link = ModbusPowerDriver.check_link([
        {"id": "a", "transport": "t", "profile": "modbus/epever_tracer.yaml", "options": {"unit": 1}},
        {"id": "b", "transport": "t", "profile": "modbus/epever_tracer.yaml", "options": {"unit": 1}},
        {"id": "c", "transport": "t", "profile": None, "options": {"unit": 2}}])
    assert (1, ("unit",), "unit 1 is also 'a' on t: each device on one line needs its own unit id") in link
    assert any(i == 2 and "profile: modbus/MODEL.yaml" in m for i, _, m in link)


def test_a_kit_with_modbus_devices_is_checked_with_its_maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through gateway/kit.py (the entry point is in pyproject.toml; registered here so that a stale
    editable install does not matter)."""
    from gateway import driver_registry
    from gateway.kit import KitError, load_kit

    real_available, real_load = driver_registry.available, driver_registry.load
    monkeypatch.setattr(driver_registry, "available",
                        lambda: {**real_available(), "modbus_power": "drivers.modbus_power.driver:ModbusPowerDriver"})
    monkeypatch.setattr(driver_registry, "load",
                        lambda name: ModbusPowerDriver if name == "modbus_power" else real_load(name))
    line = "serial:///dev/serial/by-id/usb-rs485?baud=115200"
    devices = [{"id": "tracer-1", "driver": "modbus_power", "transport": line, "profile": "modbus/epever_tracer.yaml",
                "options": {"unit": 1, "thresholds": THRESHOLDS}},
               {"id": "tracer-2", "driver": "modbus_power", "transport": line, "profile": "modbus/epever_tracer.yaml",
                "options": {"unit": 2}},
               {"id": "gx", "driver": "modbus_power", "transport": "tcp://192.168.8.20:502",
                "profile": "modbus/victron_gx.yaml"}]
    loaded = load_kit(write_kit(tmp_path / "kit.yaml", devices))
    assert loaded.profiles["gx"]["model"] == "Victron GX (system)" and loaded.device_kind(loaded.kit.devices[0]) == "power"
    bad_dir = tmp_path / "configs" / "modbus"
    bad_dir.mkdir(parents=True)
    broken = copy.deepcopy(EPEVER)
    broken["registers"][0]["type"] = "float"
    (bad_dir / "epever_tracer.yaml").write_text(yaml.safe_dump(broken))
    devices[1]["options"]["unit"] = 1
    with pytest.raises(KitError) as err:
        load_kit(write_kit(tmp_path / "bad.yaml", devices, profiles_dir=str(tmp_path / "configs")))
    text = str(err.value)
    assert "epever_tracer.yaml: registers[0] (pv_v): unknown type 'float'" in text
    assert "devices.1.options.unit: unit 1 is also 'tracer-1'" in text


# -- against the simulator ---------------------------------------------------------------------

class Ctx(OrderedCollector):
    def events(self, type_: str | None = None, device: str | None = None) -> list[Event]:
        return [e for e in self.of(Event, device) if type_ is None or e.type == type_]

    def telemetry(self, device: str) -> list[Telemetry]:
        return self.of(Telemetry, device)

    def status(self, device: str) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for m in self.of(StatusUpdate, device):
            merged.update(m.status)
        return merged

    def onlines(self, device: str) -> list[bool]:
        return [m.online for m in self.of(OnlineChange, device)]


def make_driver(transport: str, profile: dict[str, Any], units: dict[str, int],
                **options: Any) -> tuple[ModbusPowerDriver, Ctx]:
    opts = {"poll_s": 0.2, "timeout_s": 0.3, "max_failures": 2, "retry_max_s": 0.8, "thresholds": THRESHOLDS, **options}
    devices = tuple(DeviceSpec(dev, "power", dev, transport, profile, {"unit": unit, **opts}) for dev, unit in units.items())
    ctx = Ctx()
    return ModbusPowerDriver(LinkSpec("modbus_power", transport, devices), ctx), ctx


def running(driver: ModbusPowerDriver, ctx: Ctx) -> Any:
    return supervised(driver, ctx=ctx, backoff=Backoff(initial=0.2, maximum=1.0))


@pytest.fixture
def epever(tmp_path: Path) -> Iterator[SimProcess]:
    sim = SimProcess("hil.power", ["epever", "--link", str(tmp_path / "tracer"), "--control", "127.0.0.1:0",
                                   "--unit", "1", "--unit", "2"], ready_timeout=20.0)
    yield sim
    sim.stop()


def victron_sim(port: int) -> SimProcess:
    return SimProcess("hil.power", ["victron", "--listen", f"127.0.0.1:{port}", "--control", "127.0.0.1:0"],
                      ready_timeout=20.0)


EPEVER_MODEL = {"pv_v": ("pv_v", 0.01), "pv_a": ("pv_a", 0.01), "pv_w": ("pv_w", 0.01), "battery_v": ("battery_v", 0.01),
                "charge_a": ("charge_a", 0.01), "charge_w": ("charge_w", 0.01), "load_v": ("load_v", 0.01),
                "load_a": ("load_a", 0.01), "load_w": ("load_w", 0.01), "battery_temp_c": ("temp_c", 0.01),
                "soc_pct": ("soc", 1)}
VICTRON_MODEL = {"battery_v": ("battery_v", 0.1), "battery_a": ("battery_a", 0.1), "battery_w": ("battery_w", 1),
                 "soc_pct": ("soc", 1)}
STAGE_NAMES = {"none": "idle", "float": "float", "boost": "boost", "equalize": "equalize"}


async def fresh_telemetry(ctx: Ctx, device: str, after: int) -> Telemetry:
    return (await ctx.wait(lambda: ctx.telemetry(device)[after:], 5.0, f"telemetry of {device}"))[-1]


def assert_matches_model(values: dict[str, float], model: dict[str, Any], names: dict[str, tuple[str, float]]) -> None:
    assert set(values) == set(names), values
    for ours, (theirs, step) in names.items():   # the register holds round(value / step)
        assert values[ours] == pytest.approx(model[theirs], abs=step / 2 + 1e-6), (ours, values[ours], model[theirs])


async def test_epever_rtu_two_units_telemetry_equals_the_model(epever: SimProcess) -> None:
    transport = f"serial://{epever.link}?baud=115200"
    driver, ctx = make_driver(transport, EPEVER, {"tracer-1": 1, "tracer-2": 2})
    async with running(driver, ctx) as failures:
        await ctx.wait(lambda: ctx.telemetry("tracer-1") and ctx.telemetry("tracer-2"), 8.0, "first telemetry")
        await epever.control_ok("hold on")   # simulated time stands still: the model and the registers agree
        for dev, unit in (("tracer-1", 1), ("tracer-2", 2)):
            seen = len(ctx.telemetry(dev))
            await fresh_telemetry(ctx, dev, seen + 1)   # one whole poll after the hold
            model = await epever.control_ok(f"values {unit}")
            assert_matches_model(ctx.telemetry(dev)[-1].values, model, EPEVER_MODEL)
            status = ctx.status(dev)
            assert status["charger_stage"] == STAGE_NAMES[model["stage_name"]] and status["charger_fault"] is False
            assert status["modbus"]["unit"] == unit and status["modbus"]["last_error"] == ""
        assert ctx.onlines("tracer-1") == [True] and ctx.onlines("tracer-2") == [True] and failures == []
        assert ctx.events() == []
        sim_stats = await epever.control_ok("stats")
        # FC04 polls, and FC03 only for the settings audited once as each unit came online; no refusals
        assert sim_stats["requests"]["3"] == 2 and set(sim_stats["requests"]) == {"3", "4"}
        assert sim_stats["exceptions"] == {}


async def test_epever_temperature_and_fault_events_fire_once_with_hysteresis(epever: SimProcess) -> None:
    driver, ctx = make_driver(f"serial://{epever.link}", EPEVER, {"tracer-1": 1})

    async def settle(command: str) -> None:
        await epever.control_ok(command)
        await fresh_telemetry(ctx, "tracer-1", len(ctx.telemetry("tracer-1")) + 2)

    async with running(driver, ctx):
        await ctx.wait(lambda: ctx.telemetry("tracer-1"), 8.0, "first telemetry")
        for command in ("temp 60", "temp 70", "temp 48"):   # over 50; still over; back, but within 3 °C
            await settle(command)
        assert [(e.type, e.severity) for e in ctx.events()] == [("over_temperature", "warning")]
        assert ctx.events()[0].extra["battery_temp_c"] == pytest.approx(60.0)
        assert ctx.status("tracer-1")["alarms"] == ["over_temperature"]
        await settle("temp 46")
        assert [e.severity for e in ctx.events("over_temperature")] == ["warning", "info"]

        await settle("fault on")
        await settle("fault on")
        faults = ctx.events("charger_fault")
        assert [(e.severity, e.extra["active"]) for e in faults] == [("critical", True)]
        assert ctx.status("tracer-1")["charger_fault"] is True
        assert ctx.status("tracer-1")["charger_stage"] == "idle"   # a faulted charger stops charging
        await settle("fault off")
        assert [e.severity for e in ctx.events("charger_fault")] == ["critical", "info"]
        assert ctx.status("tracer-1")["charger_fault"] is False


async def test_one_dead_rtu_unit_does_not_stop_the_other(epever: SimProcess) -> None:
    driver, ctx = make_driver(f"serial://{epever.link}", EPEVER, {"tracer-1": 1, "tracer-2": 2})
    async with running(driver, ctx) as failures:
        await ctx.wait(lambda: ctx.onlines("tracer-1") == [True] and ctx.onlines("tracer-2") == [True], 8.0, "both online")
        await epever.control_ok("dead 2 on")
        await ctx.wait(lambda: ctx.onlines("tracer-2") == [True, False], 5.0, "tracer-2 offline")
        offline = ctx.of(OnlineChange, "tracer-2")[-1]
        assert "unit 2 did not answer 2 polls in a row" in offline.reason and "from unit 2" in offline.reason
        seen = len(ctx.telemetry("tracer-1"))
        await asyncio.sleep(1.5)   # tracer-2 is retried with backoff meanwhile; tracer-1 keeps its 0.2 s cadence
        assert len(ctx.telemetry("tracer-1")) - seen >= 4
        assert ctx.onlines("tracer-1") == [True] and failures == []
        assert ctx.status("tracer-2")["modbus"]["timeouts"] >= 2
        await epever.control_ok("dead 2 off")
        await ctx.wait(lambda: ctx.onlines("tracer-2") == [True, False, True], 5.0, "tracer-2 back")
        assert failures == [] and ctx.events() == []
        stats = driver.stats()["units"]
        assert stats["tracer-2"]["failed_polls"] >= 2 and stats["tracer-1"].get("failed_polls", 0) == 0


async def test_crc_errors_are_counted_and_raise_or_clear_nothing(epever: SimProcess) -> None:
    driver, ctx = make_driver(f"serial://{epever.link}", EPEVER, {"tracer-1": 1, "tracer-2": 2}, max_failures=3)
    async with running(driver, ctx) as failures:
        await epever.control_ok("soc 20")   # below the 30 % warning: raised once, for both units
        await ctx.wait(lambda: len(ctx.events("battery_low")) == 2, 8.0, "battery_low")
        await epever.control_ok("crc 2")
        await ctx.wait(lambda: sum(ctx.status(d).get("modbus", {}).get("crc_errors", 0)
                                   for d in ("tracer-1", "tracer-2")) == 2, 5.0, "two CRC errors counted")
        for dev in ("tracer-1", "tracer-2"):
            await fresh_telemetry(ctx, dev, len(ctx.telemetry(dev)) + 2)
        crc = [ctx.status(d)["modbus"] for d in ("tracer-1", "tracer-2") if ctx.status(d)["modbus"]["crc_errors"]]
        assert crc and all("CRC error in the answer to FC04" in s["last_error"] for s in crc)
        assert driver.stats()["crc_errors_on_line"] == 2 and driver.stats()["frames"]["crc_errors"] == 2
        assert [(e.type, e.severity) for e in ctx.events()] == [("battery_low", "warning")] * 2  # nothing else
        assert ctx.onlines("tracer-1") == [True] and ctx.onlines("tracer-2") == [True] and failures == []
        sim_stats = await epever.control_ok("stats")
        assert sim_stats["crc_corrupted"] == 2


async def test_refused_registers_are_left_out_and_the_rest_still_read(epever: SimProcess) -> None:
    """A map with a register this firmware lacks (0x3111): the block is refused with exception 0x02,
    read register by register from then on, and only 0x3111 is left out (named in the status)."""
    profile = copy.deepcopy(EPEVER)
    profile["registers"].append({"name": "device_temp_c", "address": 0x3111, "type": "int16", "scale": 0.01})
    driver, ctx = make_driver(f"serial://{epever.link}", profile, {"tracer-1": 1})
    async with running(driver, ctx) as failures:
        await ctx.wait(lambda: ctx.status("tracer-1").get("modbus", {}).get("unsupported"), 8.0, "unsupported register")
        await ctx.wait(lambda: "load_w" in ctx.telemetry("tracer-1")[-1].values, 5.0, "the rest of the block")
        modbus = ctx.status("tracer-1")["modbus"]
        assert modbus["unsupported"] == {"device_temp_c (FC04 0x3111)": "exception 0x02 (illegal data address)"}
        assert modbus["exceptions"] == {"0x02 illegal data address": 2}   # the block, then the register alone
        assert "exception 0x02 (illegal data address)" in modbus["last_error"]
        seen = len(ctx.telemetry("tracer-1"))
        values = (await fresh_telemetry(ctx, "tracer-1", seen + 1)).values
        assert set(values) == set(EPEVER_MODEL) and ctx.status("tracer-1")["modbus"]["exceptions"] == modbus["exceptions"]
        assert ctx.onlines("tracer-1") == [True] and failures == [] and ctx.events() == []


async def test_unplugged_rtu_line_is_reopened(epever: SimProcess) -> None:
    driver, ctx = make_driver(f"serial://{epever.link}", EPEVER, {"tracer-1": 1})
    async with running(driver, ctx) as failures:
        await ctx.wait(lambda: ctx.onlines("tracer-1") == [True], 8.0, "online")
        await epever.control_ok("unplug 1")
        await ctx.wait(lambda: ctx.onlines("tracer-1")[-1:] == [False] and failures, 5.0, "offline with the line")
        assert all(isinstance(f, ConnectionError) for f in failures)
        await ctx.wait(lambda: ctx.onlines("tracer-1")[-1:] == [True], 8.0, "online again after the replug")
        seen = len(ctx.telemetry("tracer-1"))
        await fresh_telemetry(ctx, "tracer-1", seen + 1)
        assert ctx.events() == []


async def test_victron_tcp_telemetry_soc_hysteresis_and_reconnect() -> None:
    port = free_port()
    sim = victron_sim(port)
    try:
        driver, ctx = make_driver(f"tcp://127.0.0.1:{port}", VICTRON, {"gx": 100, "gx-nobody": 101})
        async with running(driver, ctx) as failures:
            await ctx.wait(lambda: ctx.telemetry("gx"), 8.0, "first telemetry")
            # a unit the GX does not have: exception 0x0B (gateway target failed to respond) is silence
            await ctx.wait(lambda: ctx.onlines("gx-nobody") == [False], 5.0, "gx-nobody offline")
            assert "exception 0x0B" in ctx.of(OnlineChange, "gx-nobody")[0].reason and failures == []
            await sim.control_ok("hold on")
            await fresh_telemetry(ctx, "gx", len(ctx.telemetry("gx")) + 1)
            model = await sim.control_ok("values 100")
            assert_matches_model(ctx.telemetry("gx")[-1].values, model, VICTRON_MODEL)
            assert model["battery_a"] != 0
            assert ctx.status("gx")["charger_stage"] == ("charging" if model["battery_a"] > 0 else "discharging")

            async def soc(pct: int) -> None:
                await sim.control_ok(f"soc {pct}")
                await ctx.wait(lambda: ctx.telemetry("gx")[-1].values["soc_pct"] == pct, 5.0, f"SOC {pct}")
                await fresh_telemetry(ctx, "gx", len(ctx.telemetry("gx")) + 1)

            for pct in (25, 24, 10, 17, 21, 33, 36):
                await soc(pct)
            assert [(e.type, e.severity) for e in ctx.events()] == [
                ("battery_low", "warning"),        # 25
                ("battery_critical", "critical"),  # 10; 17 is within the 5 % hysteresis
                ("battery_critical", "info"),      # 21
                ("battery_low", "info")]           # 36; 33 was not enough
            assert ctx.status("gx")["alarms"] == []

            sim.stop()   # the GX goes away: the line fails, the device goes offline
            await ctx.wait(lambda: ctx.onlines("gx")[-1:] == [False] and failures, 5.0, "offline")
            sim = victron_sim(port)
            await ctx.wait(lambda: ctx.onlines("gx")[-1:] == [True], 8.0, "back online")
            assert ctx.onlines("gx") == [True, False, True]
    finally:
        sim.stop()
