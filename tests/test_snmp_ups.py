"""A UPS over SNMP (UPS-MIB, RFC 1628): the shipped profile, the simulator's battery model (`hil.snmp --profile
ups`), the snmp driver's telemetry and status against it, traps as events (once per state), and the kit's
battery time left (gateway/kit_health.py) from the UPS's charge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.snmp.driver import SnmpDriver
from drivers.snmp.profile import SnmpProfile, check_profile
from gateway.bus import Bus
from gateway.driver_api import DeviceSpec, LinkSpec
from gateway.kit_health import KitHealth
from gateway.model import Device, Event, StatusUpdate, Telemetry
from gateway.registry import DeviceRegistry
from tests.serial_sims import Collector, SimProcess, supervised
from tests.test_snmp import _free_udp_port

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
PROFILE = yaml.safe_load((ROOT / "firmware_configs/snmp/ups.yaml").read_text())
POWER_NAMES = {"soc_pct", "battery_v", "battery_temp_c", "battery_runtime_s", "input_v", "output_v", "output_w",
               "load_pct"}


def _sim(*extra: str) -> SimProcess:
    return SimProcess("hil.snmp", ["--profile", "ups", "--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", *extra])


def _driver(sim: SimProcess, ctx: Collector, **opts: Any) -> SnmpDriver:
    host, port = sim.ready["listen"][:2]
    transport = f"udp://{host}:{port}"
    options = {"poll_s": 0.3, "timeout_s": 0.5, "retries": 0} | opts
    return SnmpDriver(LinkSpec("snmp", transport, (DeviceSpec("ups-1", "power", "UPS", transport, PROFILE, options),)),
                      ctx)


def _status(ctx: Collector) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for m in ctx.of(StatusUpdate):
        merged.update(m.status)
    return merged


def _events(ctx: Collector) -> list[Event]:
    return [e for e in ctx.of(Event) if e.type in ("on_battery", "on_mains", "battery_low")]


def test_profile_is_valid_and_names_match_the_modbus_driver() -> None:
    assert check_profile(PROFILE) == [] and SnmpDriver.check_profile(PROFILE) == []
    prof = SnmpProfile.from_dict(PROFILE)
    numbers = {o.name for o in prof.oids if not o.states}
    assert numbers == POWER_NAMES and {o.name for o in prof.oids if o.states} == {"battery_status", "output_source"}
    assert [(t.event, t.severity) for t in prof.traps] == [("on_battery", "warning"), ("battery_low", "critical"),
                                                           ("on_mains", "info")]
    assert prof.cleared() == {"on_battery", "battery_low", "on_mains"}


@pytest.mark.parametrize("bad, words", [
    ({"oids": [{"name": "x", "oid": "1.3.6.1.2.1.33.1.4.1.0", "states": {"3": "normal"}}]}, "states: a mapping of codes"),
    ({"traps": [{"oid": "1.3.6.1.2.1.33.2.1", "event": "on_battery", "severity": "loud", "text": "t"}]}, "severity"),
    ({"traps": [{"oid": "1.3.6.1.2.1.33.2.1", "event": "on_battery", "severity": "info", "text": "t",
                 "clears": ["on_mars"]}]}, "on_mars is no event"),
    ({"traps": [{"oid": "upsTrapOnBattery", "event": "on_battery", "severity": "info", "text": "t"}]}, "numeric OID"),
    ({"traps": {"oid": "1.3.6.1.2.1.33.2.1"}}, "traps: a list"),
])
def test_bad_ups_profiles_are_named(bad: dict[str, Any], words: str) -> None:
    problems = check_profile({**PROFILE, **bad})
    assert any(words in p for p in problems), problems


async def test_telemetry_and_status_equal_the_ups_model() -> None:
    sim = _sim()
    try:
        sim.control("soc 80")
        ctx = Collector()
        async with supervised(_driver(sim, ctx)) as failures:
            await ctx.wait(lambda: len(ctx.of(Telemetry)) >= 2, 10, "two polls")
            ups = sim.control("stats")["ups"]
            last = ctx.of(Telemetry)[-1].values
        assert failures == [] and ctx.online == {"ups-1": True}
        assert POWER_NAMES <= set(last), last
        assert last["soc_pct"] == pytest.approx(ups["soc"], abs=1)
        assert last["battery_v"] == pytest.approx(ups["battery_v"], abs=0.15)
        assert last["battery_runtime_s"] == pytest.approx(ups["minutes_left"] * 60, abs=60)
        assert last["input_v"] == 230 and last["output_w"] == 150 and last["battery_temp_c"] == 25
        status = _status(ctx)
        assert status["battery_status"] == "normal" and status["output_source"] == "normal"
        assert status["sys_name"] == "ups" and status["interfaces"] == {}   # a UPS card without ifTable: fine
        assert status["snmp"]["state"] == "ok" and status["snmp"]["missing"] == []
    finally:
        sim.stop()


async def test_on_battery_trap_once_then_low_battery_then_mains() -> None:
    trap_port = _free_udp_port()
    sim = _sim("--trap-to", f"127.0.0.1:{trap_port}", "--trap-repeat", "0.5")
    try:
        ctx = Collector()
        drv = _driver(sim, ctx, poll_s=0.5, trap_listen=f"udp://127.0.0.1:{trap_port}")
        async with supervised(drv) as failures:
            await ctx.wait(lambda: ctx.of(StatusUpdate), 10, "a first poll")
            sim.control("mains off")
            await ctx.wait(lambda: _events(ctx), 5, "on_battery")
            await ctx.wait(lambda: drv.stats()["devices"]["ups-1"].get("traps_repeated", 0) >= 2, 5,
                           "upsTrapOnBattery repeated (every 0.5 s here)")
            await ctx.wait(lambda: _status(ctx).get("output_source") == "battery", 5, "output source battery")
            await ctx.wait(lambda: ctx.of(Telemetry)[-1].values.get("input_v") == 0, 5, "no input voltage")
            sim.control("soc 1")           # under upsConfigLowBattTime (5 min): upsAlarmLowBattery
            await ctx.wait(lambda: len(_events(ctx)) >= 2, 5, "battery_low")
            await ctx.wait(lambda: _status(ctx).get("battery_status") == "low", 5, "battery status low")
            sim.control("mains on")
            await ctx.wait(lambda: len(_events(ctx)) >= 3, 5, "on_mains")
            sim.control("mains off")       # a second outage is a new on_battery event
            await ctx.wait(lambda: len(_events(ctx)) >= 4, 5, "on_battery again")
        assert failures == []
        events = _events(ctx)
        assert [(e.type, e.severity) for e in events] == [("on_battery", "warning"), ("battery_low", "critical"),
                                                          ("on_mains", "info"), ("on_battery", "warning")]
        assert events[0].extra["trap"] == "1.3.6.1.2.1.33.2.1"
        assert "1.3.6.1.2.1.33.1.2.3.0" in events[0].extra["varbinds"]   # upsEstimatedMinutesRemaining
        assert not [e for e in ctx.of(Event) if e.type == "snmp_trap"]   # every UPS trap had its rule
    finally:
        sim.stop()


async def test_kit_battery_time_left_from_a_ups() -> None:
    """The UPS on battery at 60x time: its soc_pct trend through KitHealth (timestamps mapped to simulated
    time) gives the time left the UPS itself estimates, and the critical event under 2 h."""
    sim = _sim("--time-scale", "60")
    try:
        sim.control("load 600")             # 1500 VA UPS, 432 Wh: ~39 min at 600 W
        sim.control("mains off")
        ctx = Collector()
        async with supervised(_driver(sim, ctx, poll_s=0.2)):
            await ctx.wait(lambda: len(ctx.of(Telemetry)) >= 25, 15, "five seconds of polls")
            ups = sim.control("stats")["ups"]
        bus, registry = Bus(), DeviceRegistry()
        registry.add(Device(id="ups-1", kind="power", driver="snmp", name="UPS"))
        bus.add_tap(registry.tap)
        health = KitHealth(bus, registry, lambda: (0, 0))
        sub = bus.subscribe("test", (Event,))
        telemetry = ctx.of(Telemetry)
        t0 = telemetry[0].ts
        for m in telemetry:
            bus.publish(Telemetry(m.device, t0 + (m.ts - t0) * 60, m.values))
        left = health.summary()["batteries"]["ups-1"]["time_left_h"]
        assert left is not None and left == pytest.approx(ups["minutes_left"] / 60, rel=0.3, abs=0.1), (left, ups)
        events = [sub.get_nowait() for _ in range(sub.queue.qsize())]
        assert [(e.type, e.severity) for e in events] == [("battery_time_left", "critical")]
    finally:
        sim.stop()


def test_simulator_controls_refuse_bad_input() -> None:
    sim = _sim()
    try:
        assert sim.control("soc 50") == {"ok": True, "soc": 50.0}
        for bad, words in (("soc 120", "0..100"), ("load x", "a number"), ("mains maybe", "usage: mains on|off"),
                           ("temp 300", "-20..80"), ("link 2 down", "unknown")):
            reply = sim.control(bad)
            assert reply["ok"] is False and words in reply["error"], (bad, reply)
        assert sim.control("mains off")["changed"] is True and sim.control("mains off")["changed"] is False
        assert sim.control("stats")["ups"]["output_source"] == 5
    finally:
        sim.stop()
