"""SNMP driver: counter rates (wrap, reset), profiles and options, and end to end against hil.snmp."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.snmp.agent import iface_names
from drivers.snmp.driver import SnmpDriver
from drivers.snmp.options import check_options
from drivers.snmp.profile import SnmpProfile, check_profile
from drivers.snmp.rates import WRAP32, CounterRate, Sample
from gateway.driver_api import DeviceSpec, LinkSpec
from gateway.model import Event, StatusUpdate, Telemetry
from tests.serial_sims import Collector, SimProcess, supervised

ROOT = Path(__file__).resolve().parent.parent
PROFILE = yaml.safe_load((ROOT / "firmware_configs/snmp/lte_router.yaml").read_text())
V3 = ["--v3-user", "fgw", "--v3-auth-key", "authpass123", "--v3-priv-key", "privpass123"]
V3_OPTS = {"version": "3", "user": "fgw", "auth_key": "authpass123", "priv_key": "privpass123"}


# -- rates ---------------------------------------------------------------------------------
def test_rate_steady_and_first_sample() -> None:
    r = CounterRate()
    assert r.update(Sample(1000, 32, 0.0, 100)) is None
    assert r.update(Sample(1000 + 125_000, 32, 1.0, 200)) == pytest.approx(1_000_000)


def test_rate_32bit_wrap_is_no_spike() -> None:
    r = CounterRate()
    r.update(Sample(WRAP32 - 50_000, 32, 0.0, 100))
    assert r.update(Sample(75_000, 32, 1.0, 200)) == pytest.approx(125_000 * 8)
    assert r.wraps == 1 and r.resets == 0


def test_rate_reset_by_uptime_is_skipped() -> None:
    r = CounterRate()
    r.update(Sample(10_000_000, 64, 0.0, 50_000))
    assert r.update(Sample(20_000_000, 64, 1.0, 30)) is None  # agent rebooted, counter grew past the old value
    assert r.resets == 1
    assert r.update(Sample(20_125_000, 64, 2.0, 130)) == pytest.approx(1_000_000)


@pytest.mark.parametrize("bits", [32, 64])
def test_rate_counter_drop_is_skipped(bits: int) -> None:
    r = CounterRate()
    r.update(Sample(1_500_000_000, bits, 0.0, None))
    assert r.update(Sample(1_000, bits, 1.0, None)) is None  # cleared, not wrapped (wrapped delta > 2^31)
    assert r.resets == 1
    assert r.update(Sample(126_000, bits, 2.0, None)) == pytest.approx(1_000_000)


def test_rate_implausible_and_width_change_skipped() -> None:
    r = CounterRate(max_bps=1e9)
    r.update(Sample(0, 64, 0.0, None))
    assert r.update(Sample(10**12, 64, 1.0, None)) is None
    assert r.update(Sample(10**12 + 1000, 32, 2.0, None)) is None
    assert r.update(Sample(10**12 + 1000, 32, 2.0, None)) is None  # no time passed


def test_iface_names() -> None:
    assert iface_names({1: "eth0", 2: "wwan0 LTE modem", 3: "", 4: "eth0", 5: "42"}) == {
        1: "eth0", 2: "wwan0_lte_modem", 3: "3", 4: "4", 5: "5"}


# -- profiles and options ----------------------------------------------------------------------
def test_shipped_profile_is_valid() -> None:
    assert check_profile(PROFILE) == []
    assert SnmpDriver.check_profile(PROFILE) == []
    prof = SnmpProfile.from_dict(PROFILE)
    assert [o.name for o in prof.oids] == ["rssi_dbm", "rsrp_dbm", "sinr_db", "rsrq_db"]
    assert all(o.oid.startswith("1.3.6.1.4.1.99999.1.1.") for o in prof.oids)


@pytest.mark.parametrize("bad, words", [
    ("not a map", "mapping"),
    ({"model": "x", "version": 1}, "oids"),
    ({"model": "", "version": 0, "oids": [{"name": "a", "oid": "1.3.6.1.4.1.1.0"}]}, "model"),
    ({"model": "x", "version": 1, "oids": [{"name": "Bad-Name", "oid": "1.3.6.1.4.1.1.0"}]}, "snake_case"),
    ({"model": "x", "version": 1, "oids": [{"name": "a", "oid": "iso.3.6"}]}, "numeric OID"),
    ({"model": "x", "version": 1, "oids": [{"name": "a", "oid": "1.3.6.1.4.1.1.0", "scale": 0}]}, "scale"),
    ({"model": "x", "version": 1, "oids": [{"name": "a", "oid": "1.3.6.1.4.1.1.0"},
                                           {"name": "a", "oid": "1.3.6.1.4.1.2.0"}]}, "twice"),
    ({"model": "x", "version": 1, "oids": [{"name": "a", "oid": "1.3.6.1.4.1.1.0", "typo": 1}]}, "unknown key"),
])
def test_bad_profiles_are_named(bad: Any, words: str) -> None:
    problems = check_profile(bad)
    assert problems and any(words in p for p in problems), problems
    with pytest.raises(ValueError):
        SnmpProfile.from_dict(bad if isinstance(bad, dict) else {"x": bad})


def test_options_checked() -> None:
    assert check_options({"poll_s": 5, "community": "c"}, "udp://10.0.0.1:161") == []
    assert check_options(V3_OPTS | {"trap_listen": "udp://127.0.0.1:1162"}, "udp://10.0.0.1") == []
    found = dict(check_options({"version": "3", "auth_key": "short", "poll_s": 0, "color": 1, "priv": "des",
                                "trap_listen": "tcp://x"}, "tcp://10.0.0.1:161"))
    assert set(found) == {(), ("user",), ("auth_key",), ("priv_key",), ("poll_s",), ("color",), ("priv",),
                          ("trap_listen",)}


# -- end to end against the simulator -------------------------------------------------------------
def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sim(*extra: str) -> SimProcess:
    return SimProcess("hil.snmp", ["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0", *extra])


def _driver(sim: SimProcess, ctx: Collector, **opts: Any) -> SnmpDriver:
    host, port = sim.ready["listen"][:2]
    transport = f"udp://{host}:{port}"
    options = {"poll_s": 0.5, "timeout_s": 0.5, "retries": 0} | opts
    return SnmpDriver(LinkSpec("snmp", transport, (DeviceSpec("rtr", "network", "rtr", transport, PROFILE, options),)),
                      ctx)


def _values(ctx: Collector, key: str) -> list[float]:
    return [m.values[key] for m in ctx.of(Telemetry) if key in m.values]


@pytest.mark.parametrize("v3", [False, True], ids=["v2c", "v3"])
async def test_poll_values_equal_simulator(v3: bool) -> None:
    sim = _sim(*(V3 + ["--no-v2c"] if v3 else []))
    try:
        sim.control("signal -71 -101 9 -13")
        sim.control("rate 2 8000000 1000000")
        ctx = Collector()
        async with supervised(_driver(sim, ctx, **(V3_OPTS if v3 else {}))) as failures:
            await ctx.wait(lambda: len(_values(ctx, "if_wwan0_in_bps")) >= 3, 10, "three throughput values")
            stats = sim.control("stats")
        assert failures == []
        sig = stats["signal"]
        last = ctx.of(Telemetry)[-1].values
        for name, key in (("rssi_dbm", "rssi"), ("rsrp_dbm", "rsrp"), ("sinr_db", "sinr"), ("rsrq_db", "rsrq")):
            assert abs(last[name] - sig[key]) <= 1, (name, last[name], sig)  # the simulator's slow swing
        assert last["uptime_s"] == pytest.approx(stats["uptime_ticks"] / 100, abs=1.0)
        for v in _values(ctx, "if_wwan0_in_bps")[-2:]:
            assert v == pytest.approx(8_000_000, rel=0.05)
        for v in _values(ctx, "if_wwan0_out_bps")[-2:]:
            assert v == pytest.approx(1_000_000, rel=0.05)
        status: dict[str, Any] = {}
        for m in ctx.of(StatusUpdate):
            status.update(m.status)
        assert status["sys_name"] == "lte-router"
        assert status["interfaces"] == {"eth0": "up", "wwan0": "up"}
        assert status["snmp"]["state"] == "ok" and status["snmp"]["version"] == ("3" if v3 else "2c")
        assert ctx.online == {"rtr": True}
    finally:
        sim.stop()


async def test_wrap_and_reset_give_no_spike() -> None:
    sim = _sim()
    try:
        sim.control("rate 2 8000000 8000000")  # 1 MB/s each way
        ctx = Collector()
        drv = _driver(sim, ctx, hc_counters=False)  # Counter32 only: they wrap
        async with supervised(drv) as failures:
            await ctx.wait(lambda: len(_values(ctx, "if_wwan0_in_bps")) >= 1, 10, "a first rate")
            sim.control(f"counter 2 {WRAP32 - 700_000}")
            await ctx.wait(lambda: drv.stats()["devices"]["rtr"]["wraps"] >= 2, 10, "a wrap in and out")
            n = len(_values(ctx, "if_wwan0_in_bps"))
            sim.control("reset")
            await ctx.wait(lambda: drv.stats()["devices"]["rtr"]["resets"] >= 4, 10, "a reset seen on every counter")
            await ctx.wait(lambda: len(_values(ctx, "if_wwan0_in_bps")) >= n + 3, 15, "rates after the reset")
        assert failures == []
        values = _values(ctx, "if_wwan0_in_bps") + _values(ctx, "if_wwan0_out_bps")
        # `counter` jumps the counter forward (faster than ifSpeed: skipped); a wrap or a reset: no spike
        assert max(values) < 8_000_000 * 1.2, values
        # the first rate after the reset covers a part of its interval (lower, never a spike); the next are whole
        after_reset = _values(ctx, "if_wwan0_in_bps")[-2:]
        assert all(v == pytest.approx(8_000_000, rel=0.1) for v in after_reset), after_reset
        assert max(_values(ctx, "if_eth0_in_bps")) < 800_000 * 1.2  # eth0 (no jump) steady through the reset
    finally:
        sim.stop()


@pytest.mark.parametrize("v3", [False, True], ids=["v2c", "v3"])
async def test_link_down_trap_gives_event(v3: bool) -> None:
    trap_port = _free_udp_port()
    sim = _sim("--trap-to", f"127.0.0.1:{trap_port}", *(V3 + ["--trap-v3"] if v3 else []))
    try:
        ctx = Collector()
        drv = _driver(sim, ctx, poll_s=60, trap_listen=f"udp://127.0.0.1:{trap_port}", **(V3_OPTS if v3 else {}))
        async with supervised(drv) as failures:
            await ctx.wait(lambda: ctx.of(StatusUpdate), 10, "a first poll")
            sim.control("link 2 down")
            ev = await ctx.wait(lambda: [e for e in ctx.of(Event) if e.type == "interface"], 5, "a link event")
            sim.control("link 2 up")
            await ctx.wait(lambda: len([e for e in ctx.of(Event) if e.type == "interface"]) >= 2, 5, "link up")
        assert failures == []
        down, up = [e for e in ctx.of(Event) if e.type == "interface"]
        assert ev[0] is down
        assert (down.severity, down.extra["up"], down.extra["index"], down.extra["source"]) == ("warning", False, 2,
                                                                                               "trap")
        assert down.extra["interface"] == "wwan0"
        assert (up.severity, up.extra["up"]) == ("info", True)
        assert drv.stats()["traps"] == 2
    finally:
        sim.stop()


async def test_link_down_seen_by_poll_without_traps() -> None:
    sim = _sim()
    try:
        ctx = Collector()
        async with supervised(_driver(sim, ctx)):
            await ctx.wait(lambda: ctx.of(StatusUpdate), 10, "a first poll")
            sim.control("link 1 down")
            ev = await ctx.wait(lambda: [e for e in ctx.of(Event) if e.type == "interface"], 5, "a link event")
        assert ev[0].extra["source"] == "poll" and ev[0].extra["interface"] == "eth0"
    finally:
        sim.stop()


@pytest.mark.parametrize("v3", [False, True], ids=["wrong-community", "wrong-v3-key"])
async def test_wrong_credentials_status_no_crash(v3: bool) -> None:
    sim = _sim(*(V3 if v3 else []))
    try:
        ctx = Collector()
        opts = V3_OPTS | {"auth_key": "wrongpass99"} if v3 else {"community": "nope"}
        drv = _driver(sim, ctx, poll_s=0.3, timeout_s=0.3, max_failures=3, retry_max_s=1, **opts)
        async with supervised(drv) as failures:
            first = await ctx.wait(lambda: ctx.of(StatusUpdate), 10, "a status after one failed poll")
            assert not ctx.of(Event) and "rtr" not in ctx.online  # one bad read: no alarm
            await ctx.wait(lambda: [e for e in ctx.of(Event) if e.type == "agent_unreachable"], 10, "unreachable")
            await asyncio.sleep(1.0)
        assert failures == []
        snmp = first[0].status["snmp"]
        if v3:
            assert snmp["state"] == "auth_failed", snmp
            assert "credentials refused" in snmp["error"]
        else:
            assert snmp["state"] == "no_answer" and "wrong community" in snmp["error"]
        assert len([e for e in ctx.of(Event) if e.type == "agent_unreachable"]) == 1
        assert not ctx.of(Telemetry)
        assert drv.stats()["devices"]["rtr"]["polls"] >= 3
    finally:
        sim.stop()
