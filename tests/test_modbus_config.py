"""Modbus settings (issue 7, configuration profiles): the map's writable holding registers audited and
applied (FC03 read, FC06/FC16 write, read back) by the modbus_power driver against the power simulator,
in-process and through `fieldgw config audit|apply`; the audit when a unit comes online; writes that share
the RTU line with the poller; an offline unit; a refused write."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from drivers.modbus_power.maps import RegisterMap
from drivers.modbus_power.settings import differences, setting_blocks, wanted
from gateway.driver_api import CommandError, ConfigDiff
from tests.procs import ROOT, free_port, write_kit
from tests.serial_sims import SimProcess
from tests.test_modbus_power import EPEVER, VICTRON, epever, make_driver, running, victron_sim

__all__ = ["epever"]  # the simulator fixture (two EPEVER units on a pty), shared with test_modbus_power

pytestmark = pytest.mark.timeout(60)


# -- planning and comparing, without a device ----------------------------------------------------

def test_settings_are_one_block_and_compared_as_words() -> None:
    rmap = RegisterMap.from_profile(EPEVER)
    [block] = setting_blocks(rmap)
    assert (block.function, block.address, block.count) == (3, 0x9000, 15)   # written together (FC16)
    profile = [1, 100, 300, 1600, 1500, 1500, 1460, 1440, 1380, 1320, 1260, 1220, 1200, 1110, 1060]
    assert wanted(block, [0] * 15) == profile and differences(block, profile) == []
    held = list(profile)
    held[7] = 1420
    assert differences(block, held) == [ConfigDiff("boost_v", 14.4, 14.2)]
    assert setting_blocks(RegisterMap.from_profile(VICTRON)) == []   # nothing to audit: read-only map


def test_signed_32_bit_word_order_and_unvalued_registers_in_a_block() -> None:
    rmap = RegisterMap.from_profile({"model": "test", "version": 1, "function": 3, "registers": [
        {"name": "offset_a", "address": 10, "type": "int16", "scale": 0.1, "writable": True, "value": -2.5},
        {"name": "keep", "address": 11, "type": "uint16", "writable": True},              # no value: kept as is
        {"name": "energy_limit_wh", "address": 12, "type": "int32", "word_order": "low_first", "writable": True,
         "value": -70000},
        {"name": "gap", "address": 20, "type": "uint16", "writable": True},              # no value: not planned
        {"name": "soc_pct", "address": 30, "type": "uint16"}]})
    [block] = setting_blocks(rmap)
    assert (block.address, block.count) == (10, 4)
    raw = (-70000) & 0xFFFFFFFF
    assert wanted(block, [0, 77, 0, 0]) == [(-25) & 0xFFFF, 77, raw & 0xFFFF, raw >> 16]
    assert differences(block, [0xFFE7, 5, raw & 0xFFFF, raw >> 16]) == []
    swapped = (raw & 0xFFFF) << 16 | raw >> 16          # high word first: another number altogether
    assert differences(block, [0xFFE7, 5, raw >> 16, raw & 0xFFFF]) == [
        ConfigDiff("energy_limit_wh", -70000, swapped - (1 << 32) if swapped >= 1 << 31 else swapped)]


# -- the driver against the simulator --------------------------------------------------------------

async def test_audit_apply_and_drift_in_process(epever: SimProcess) -> None:
    driver, ctx = make_driver(f"serial://{epever.link}", EPEVER, {"tracer-1": 1, "tracer-2": 2})
    async with running(driver, ctx) as failures:
        await ctx.wait(lambda: ctx.status("tracer-1").get("config") and ctx.status("tracer-2").get("config"), 8.0,
                       "the audit at start")
        assert ctx.status("tracer-1")["config"] == "matches profile" and ctx.events() == []
        assert await driver.config_audit("tracer-1") == []

        await epever.control_ok("holding 1 0x9007 1420")          # boost 14.2 V, set at the keypad
        await epever.control_ok("holding 1 0x9001 200")           # a bigger bank
        assert await driver.config_audit("tracer-1") == [ConfigDiff("battery_capacity_ah", 100, 200),
                                                         ConfigDiff("boost_v", 14.4, 14.2)]
        assert await driver.config_audit("tracer-2") == []        # its own settings
        before = (await epever.control_ok("stats"))["requests"].get("16", 0)
        assert await driver.config_apply("tracer-1") == []
        after = await epever.control_ok("stats")
        assert after["requests"]["16"] == before + 1              # one FC16 for the whole block
        settings = (await epever.control_ok("values 1"))["settings"]
        assert settings["boost_v"] == 14.4 and settings["capacity_ah"] == 100
        assert await driver.config_apply("tracer-1") == []        # nothing to write: no second FC16
        assert (await epever.control_ok("stats"))["requests"]["16"] == before + 1
        assert failures == [] and ctx.events() == []


async def test_drift_found_when_a_unit_comes_online_is_an_event(epever: SimProcess) -> None:
    await epever.control_ok("holding 2 0x9008 1370")
    driver, ctx = make_driver(f"serial://{epever.link}", EPEVER, {"tracer-1": 1, "tracer-2": 2})
    async with running(driver, ctx):
        await ctx.wait(lambda: ctx.events("config_drift"), 8.0, "config_drift")
        [event] = ctx.events("config_drift")
        assert event.device == "tracer-2" and event.severity == "warning"
        assert "float_v=13.7 (profile 13.8)" in event.text
        assert event.extra["diffs"] == [{"name": "float_v", "want": 13.8, "have": 13.7}]
        assert ctx.status("tracer-2")["config"] == "1 differ"
        await ctx.wait(lambda: ctx.status("tracer-1").get("config"), 5.0, "tracer-1 audited")
        assert ctx.status("tracer-1")["config"] == "matches profile"


async def test_writes_share_the_rtu_line_with_fast_polls(epever: SimProcess) -> None:
    """Polls every 50 ms on two units while settings are written and read back over and over: every
    request gets its own answer (no timeouts, CRC errors or mismatched answers) and polling goes on."""
    driver, ctx = make_driver(f"serial://{epever.link}", EPEVER, {"tracer-1": 1, "tracer-2": 2}, poll_s=0.05)
    async with running(driver, ctx) as failures:
        await ctx.wait(lambda: ctx.telemetry("tracer-1") and ctx.telemetry("tracer-2"), 8.0, "first telemetry")
        seen = len(ctx.telemetry("tracer-2"))
        rounds, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < 1.0 or rounds < 10:        # ~3 ms a round: a second of them
            raw = 1420 if rounds % 2 else 1430
            await epever.control_ok(f"holding 1 0x9007 {raw}")
            if rounds % 4 == 3:
                # the next answer on the line leaves with a broken CRC: it must be charged to the request it
                # answers (a poll, or this audit), never to another one waiting its turn
                await epever.control_ok("crc 1")
                try:
                    await driver.config_audit("tracer-1")
                except CommandError as exc:
                    assert "CRC error in the answer to FC03 0x9000+15" in exc.detail
            assert await driver.config_audit("tracer-1") == [ConfigDiff("boost_v", 14.4, raw / 100)]
            assert await driver.config_apply("tracer-1") == []
            rounds += 1
        assert len(ctx.telemetry("tracer-2")) - seen >= 8, "polls stopped while settings were written"
        units = driver.stats()["units"]
        assert sum(units[d].get("crc_errors", 0) for d in units) == rounds // 4, units
        for stats in units.values():
            assert stats.get("timeouts", 0) == stats.get("bad_answers", 0) == 0, stats
        assert failures == [] and ctx.onlines("tracer-1") == [True]


async def test_offline_unit_and_refused_write_are_clear_errors(epever: SimProcess) -> None:
    profile = copy.deepcopy(EPEVER)
    for reg in profile["registers"]:
        if reg["name"] == "boost_v":
            reg["value"] = 15.5    # above the charging limit (15.0): the controller refuses the block
    driver, ctx = make_driver(f"serial://{epever.link}", profile, {"tracer-1": 1, "tracer-2": 2})
    async with running(driver, ctx):
        await ctx.wait(lambda: ctx.status("tracer-1").get("config"), 8.0, "the audit at start")
        assert ctx.status("tracer-1")["config"] == "1 differ"
        with pytest.raises(CommandError) as err:
            await driver.config_apply("tracer-1")
        assert "unit 1 answered FC16 0x9000+15 with exception 0x04" in err.value.detail
        assert "thresholds out of order" in err.value.detail
        assert (await epever.control_ok("values 1"))["settings"]["boost_v"] == 14.4   # nothing half-written

        await epever.control_ok("dead 2 on")
        t0 = time.monotonic()
        with pytest.raises(CommandError) as err:                  # silent, not yet given up: one timeout
            await driver.config_audit("tracer-2")
        assert time.monotonic() - t0 < 1.0 and "no answer to FC03 0x9000+15 from unit 2 within 0.3 s" in err.value.detail
        await ctx.wait(lambda: ctx.onlines("tracer-2")[-1:] == [False], 5.0, "tracer-2 offline")
        t0 = time.monotonic()
        with pytest.raises(CommandError) as err:                  # offline: refused at once
            await driver.config_apply("tracer-2")
        assert time.monotonic() - t0 < 0.1 and "unit 2 is offline" in err.value.detail
        with pytest.raises(CommandError):
            await driver.config_audit("nobody")


async def test_a_read_only_map_has_nothing_to_audit() -> None:
    port = free_port()
    sim = victron_sim(port)
    try:
        driver, ctx = make_driver(f"tcp://127.0.0.1:{port}", VICTRON, {"gx": 100})
        async with running(driver, ctx):
            await ctx.wait(lambda: ctx.telemetry("gx"), 8.0, "first telemetry")
            assert await driver.config_audit("gx") == [] and "config" not in ctx.status("gx")
            assert set((await sim.control_ok("stats"))["requests"]) == {"3"}
            assert (await sim.control_ok("stats"))["exceptions"] == {}
    finally:
        sim.stop()


# -- fieldgw config audit|apply ------------------------------------------------------------------

def fieldgw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_config_cli_apply_then_audit_then_drift(epever: SimProcess, tmp_path: Path) -> None:
    port = free_port()
    gx = victron_sim(port)
    try:
        transport = f"serial://{epever.link}?baud=115200"
        devices: list[dict[str, Any]] = [
            {"id": f"tracer-{u}", "driver": "modbus_power", "transport": transport, "profile": "modbus/epever_tracer.yaml",
             "options": {"unit": u, "poll_s": 0.5}} for u in (1, 2)]
        devices.append({"id": "gx", "driver": "modbus_power", "transport": f"tcp://127.0.0.1:{port}",
                        "profile": "modbus/victron_gx.yaml", "options": {"unit": 100}})
        kit = write_kit(tmp_path / "kit.yaml", devices)
        epever.control("holding 1 0x900D 1080")                   # low voltage disconnect 10.8 V
        before = fieldgw("config", "audit", str(kit), "--timeout", "15")
        assert before.returncode == 1, before.stdout + before.stderr
        assert "low_voltage_disconnect_v: profile 11.1, device 10.8" in before.stdout

        applied = fieldgw("config", "apply", str(kit), "--timeout", "15")
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert applied.stdout.count("applied; matches its profile") == 3
        audited = fieldgw("config", "audit", str(kit), "--timeout", "15")
        assert audited.returncode == 0 and audited.stdout.count("matches its profile") == 3, audited.stdout

        assert epever.control("holding 2 0x9004 1480")["ok"]      # charging limit 14.8 V on unit 2
        drift = fieldgw("config", "audit", str(kit), "--timeout", "15")
        assert drift.returncode == 1, drift.stdout + drift.stderr
        assert "tracer-2: 1 setting(s) differ" in drift.stdout
        assert "charging_limit_v: profile 15, device 14.8" in drift.stdout
        assert "tracer-1: matches its profile" in drift.stdout and "gx: matches its profile" in drift.stdout

        epever.control("dead 1 on")
        silent = fieldgw("config", "audit", str(kit), "tracer-1", "--timeout", "3")
        assert silent.returncode == 1 and "tracer-1: not online within 3 s" in silent.stdout, silent.stdout
    finally:
        gx.stop()
